//! The detection stage: deskew, tile, find text regions, cut them out and
//! turn the page the right way up.

use super::faults::{self, StageFault, STAGE_FAULT_ENV};
use super::items::{ms, CropJob, Msg, PageFailure, PageJob};
use super::pool::run_pool;
use super::rows::page_error;
use super::DetectorFactory;
use crate::ocr::engine::{DetectedPage, Detector};
use crate::ocr::model::InferError;
use async_channel::{Receiver, Sender};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// [`detect`] on `workers` threads, each with its own detector, all taking
/// pages from one queue. Returns detection and deskew busy time, each summed
/// over the threads.
pub fn detect_pool(
    factory: Option<DetectorFactory>,
    workers: usize,
    pages: Receiver<PageJob>,
    crops: Sender<CropJob>,
    results: Sender<Msg>,
) -> anyhow::Result<(Duration, Duration)> {
    let done = run_pool("detect", workers, || {
        detect(
            factory.clone(),
            pages.clone(),
            crops.clone(),
            results.clone(),
        )
    })?;
    Ok(done
        .into_iter()
        .fold((Duration::ZERO, Duration::ZERO), |a, b| {
            (a.0 + b.0, a.1 + b.1)
        }))
}

/// Detection: deskew, tile, find text regions, cut them out.
/// Returns (busy time in detection, busy time in normalisation).
pub fn detect(
    factory: Option<DetectorFactory>,
    pages: Receiver<PageJob>,
    crops: Sender<CropJob>,
    results: Sender<Msg>,
) -> anyhow::Result<(Duration, Duration)> {
    let mut detector: Option<Detector> = None;
    let mut load_error: Option<String> = None;
    let mut busy = Duration::ZERO;
    let mut normalise_busy = Duration::ZERO;
    while let Ok(job) = pages.recv_blocking() {
        let _span =
            tracing::debug_span!("detect", doc = %job.meta.doc_id, page = job.meta.index).entered();
        if detector.is_none() && load_error.is_none() {
            match factory.as_ref().map(|f| f()) {
                Some(Ok(d)) => detector = Some(d),
                Some(Err(e)) => return Err(e.context("loading the OCR detector")),
                None => {
                    load_error = Some("this page needs OCR but no OCR models are configured".into())
                }
            }
        }
        let size_px = job.image.dimensions();
        let Some(det) = detector.as_mut() else {
            let msg = load_error.clone().unwrap_or_default();
            if results
                .send_blocking(Msg::Page(Box::new(page_error(
                    &job.meta, size_px, None, msg,
                ))))
                .is_err()
            {
                break;
            }
            continue;
        };
        let t = Instant::now();
        let (detected, broken) = detect_page(det, &job, t);
        if broken {
            // A panic may have left the sessions in any state.
            detector = None;
        }
        let normalise_ms = detected.as_ref().map(|d| d.normalise_ms).unwrap_or(0.0);
        let result = detected.map(|d| (d.crops, d.skew_deg));
        let took = t.elapsed();
        job.meta.budget.charge(took);
        let normalise = Duration::from_secs_f64(normalise_ms / 1000.0);
        busy += took.saturating_sub(normalise);
        normalise_busy += normalise;
        let out = CropJob {
            meta: job.meta,
            size_px,
            result,
            normalise_ms,
            det_ms: (ms(took) - normalise_ms).max(0.0),
        };
        if crops.send_blocking(out).is_err() {
            break;
        }
    }
    Ok((busy, normalise_busy))
}

/// Detects one page, asking its document's budget between model calls (a
/// page over it fails with `timeout`). A bug the page trips (in pre- or
/// post-processing, or a model call) is caught and becomes the page's
/// error; the flag says so, and the detector is then made anew.
fn detect_page(
    det: &mut Detector,
    job: &PageJob,
    started: Instant,
) -> (Result<DetectedPage, PageFailure>, bool) {
    let budget = &job.meta.budget;
    if budget.exhausted() {
        return (Err(PageFailure::timeout(budget, "OCR of this page")), false);
    }
    let stop = || budget.exhausted_after(started.elapsed());
    let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if faults::hits(StageFault::DetPanic, &job.meta.uri) {
            panic!("test fault: detection panics on this page ({STAGE_FAULT_ENV})");
        }
        det.detect_until(&job.image, &stop)
    }));
    match caught {
        Ok(Ok(d)) => (Ok(d), false),
        Ok(Err(InferError::Stopped)) => {
            (Err(PageFailure::timeout(budget, "OCR of this page")), false)
        }
        Ok(Err(e)) => (Err(PageFailure::error(e.to_string())), false),
        Err(panic) => (
            Err(PageFailure::panic("text detection", panic.as_ref())),
            true,
        ),
    }
}
