//! The detection stage: turn a page on its side upright, deskew, tile, find
//! text regions, cut them out and turn the page the right way up.

use super::faults::{self, StageFault, STAGE_FAULT_ENV};
use super::items::{ms, CropJob, Msg, PageFailure, PageJob};
use super::pool::run_pool;
use super::rows::page_error;
use super::DetectorFactory;
use crate::normalise::QuarterTurn;
use crate::ocr::engine::{DetectedPage, Detector};
use crate::ocr::model::InferError;
use crate::pdf::Affine;
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

/// Detection: turn a page on its side upright, deskew, tile, find text
/// regions, cut them out, turn it if it reads upside down. A turned page is
/// the page from then on: its size, `rotation` and the lines' pixel boxes
/// are those of the upright page (as for an EXIF orientation), and its
/// PDF-point mapping goes through the turn. Returns (busy time in detection,
/// busy time in normalisation).
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
        let mut meta = job.meta;
        let mut size_px = size_px;
        // The page as read: turned a quarter by the orientation classifier,
        // then half by the direction vote.
        let read_at = detected.as_ref().ok().and_then(|d| {
            let half = if d.page.half_turned { 180 } else { 0 };
            QuarterTurn::from_degrees(d.turn.map_or(0, QuarterTurn::degrees) + half)
        });
        if let Some(turn) = read_at {
            meta.to_points = meta
                .to_points
                .map(|a| through_turn(a, turn.to_original_affine(size_px.0, size_px.1)));
            meta.rotation = (meta.rotation + turn.degrees()).rem_euclid(360);
            meta.turned = Some(turn);
            size_px = turn.turned_size(size_px.0, size_px.1);
        }
        let normalise_ms = detected
            .as_ref()
            .map(|d| d.page.normalise_ms + d.orient_ms)
            .unwrap_or(0.0);
        let result = detected.map(|d| (d.page.crops, d.page.skew_deg));
        let took = t.elapsed();
        meta.budget.charge(took);
        let normalise = Duration::from_secs_f64(normalise_ms / 1000.0);
        busy += took.saturating_sub(normalise);
        normalise_busy += normalise;
        let out = CropJob {
            meta,
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

/// A page's detection, and the turn the orientation classifier gave it.
struct Detected {
    page: DetectedPage,
    /// Applied to the page before detection (none: read as it came).
    turn: Option<QuarterTurn>,
    /// Time the orientation classifier took, ms.
    orient_ms: f64,
}

/// Detects one page, asking its document's budget between model calls (a
/// page over it fails with `timeout`). A page on its side is turned upright
/// first ([`orient`]). A bug the page trips (in pre- or post-processing, or
/// a model call) is caught and becomes the page's error; the flag says so,
/// and the detector is then made anew.
fn detect_page(
    det: &mut Detector,
    job: &PageJob,
    started: Instant,
) -> (Result<Detected, PageFailure>, bool) {
    let budget = &job.meta.budget;
    if budget.exhausted() {
        return (Err(PageFailure::timeout(budget, "OCR of this page")), false);
    }
    let stop = || budget.exhausted_after(started.elapsed());
    let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if faults::hits(StageFault::DetPanic, &job.meta.uri) {
            panic!("test fault: detection panics on this page ({STAGE_FAULT_ENV})");
        }
        let t = Instant::now();
        let turn = orient(det, job);
        let orient_ms = ms(t.elapsed());
        let turned = turn.map(|q| q.apply(&job.image));
        det.detect_until(turned.as_ref().unwrap_or(&job.image), &stop)
            .map(|page| Detected {
                page,
                turn,
                orient_ms,
            })
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

/// The turn that makes `job`'s page upright, by the detector's
/// orientation classifier (none without one). The classifier failing on a
/// page does not fail it: the page is read as it came, and the reason is
/// logged.
fn orient(det: &mut Detector, job: &PageJob) -> Option<QuarterTurn> {
    let said = if faults::hits(StageFault::OrientError, &job.meta.uri) {
        Err(InferError::Run {
            model: "orientation".into(),
            message: format!("test fault: orientation fails on this page ({STAGE_FAULT_ENV})"),
        })
    } else {
        det.orientation(&job.image)
    };
    match said {
        Ok(Some(o)) => {
            let turn = o.upright_turn();
            tracing::debug!(
                probs = ?o.probs,
                turn = turn.map_or(0, QuarterTurn::degrees),
                "page orientation"
            );
            turn
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(
                doc = %job.meta.doc_id,
                page = job.meta.index,
                error = %e,
                "page orientation failed; the page is read as it came"
            );
            None
        }
    }
}

/// `to_points` (pixels of the page as rendered to PDF points) for the page
/// turned: first `to_original` (`[a, b, c, d, e, f]`, turned pixels to
/// rendered pixels), then `to_points`.
fn through_turn(to_points: Affine, to_original: [f32; 6]) -> Affine {
    let [a, b, c, d, e, f] = to_points.0;
    let [ua, ub, uc, ud, ue, uf] = to_original;
    Affine([
        a * ua + b * ud,
        a * ub + b * ue,
        a * uc + b * uf + c,
        d * ua + e * ud,
        d * ub + e * ue,
        d * uc + e * uf + f,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Point;

    #[test]
    fn points_of_a_turned_page_map_to_the_same_pdf_points() {
        // A Letter page rendered at 200 dpi (1700 x 2200 px): PDF points
        // with the origin bottom-left, y up.
        let (w, h) = (1700u32, 2200u32);
        let k = 72.0 / 200.0;
        let to_points = Affine([k, 0.0, 0.0, 0.0, -k, 792.0]);
        for turn in [QuarterTurn::Cw90, QuarterTurn::Cw180, QuarterTurn::Cw270] {
            let turned = through_turn(to_points, turn.to_original_affine(w, h));
            for p in [
                Point::new(0.0, 0.0),
                Point::new(100.0, 250.0),
                Point::new(1700.0, 2200.0),
            ] {
                let want = to_points.apply(p);
                let got = turned.apply(turn.to_turned(p, w, h));
                assert!(
                    (want.x - got.x).abs() < 1e-3 && (want.y - got.y).abs() < 1e-3,
                    "{turn:?} {p:?}: {got:?} against {want:?}"
                );
            }
        }
        // Hand-computed: turned 90 clockwise, the page's top-left pixel
        // corner is the turned page's top-right, (2200, 0), and is still
        // the PDF point (0, 792).
        let turned = through_turn(to_points, QuarterTurn::Cw90.to_original_affine(w, h));
        let p = turned.apply(Point::new(2200.0, 0.0));
        assert!(p.x.abs() < 1e-3 && (p.y - 792.0).abs() < 1e-3, "{p:?}");
    }
}
