//! The recognition stage: crops from many pages and documents, sorted by
//! width, recognised in batches, scattered back to their pages.

use super::faults::{self, StageFault, STAGE_FAULT_ENV};
use super::items::{ms, CropJob, Msg, PageDone, PageFailure};
use super::pool::run_pool;
use super::progress::Progress;
use super::rows::{line_row, page_error, page_row};
use super::RecogniserFactory;
use crate::ocr::engine::Recogniser;
use crate::output::PageSource;
use crate::types::BBox;
use async_channel::{Receiver, Sender};
use image::RgbImage;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Test-only pacing switch: milliseconds a recognition worker waits for
/// more pages before it forms a group (until the group is full or its
/// input closes). Tests set it so that crops of several documents surely
/// share a batch; it is never set in normal use.
pub const GATHER_ENV: &str = "DOCPIPE_TEST_REC_GATHER_MS";

fn gather_wait() -> Option<Duration> {
    let ms: u64 = std::env::var(GATHER_ENV).ok()?.trim().parse().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms.min(60_000)))
}

/// The next page waiting before `until`; `None` once it passes or the
/// input closes.
fn wait_for_next(jobs: &Receiver<CropJob>, until: Instant) -> Option<CropJob> {
    loop {
        match jobs.try_recv() {
            Ok(j) => return Some(j),
            Err(async_channel::TryRecvError::Closed) => return None,
            Err(async_channel::TryRecvError::Empty) if Instant::now() >= until => return None,
            Err(async_channel::TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// What recognition needs from the pipeline.
#[derive(Clone, Copy, Debug)]
pub struct RecogniseSettings {
    /// Crops per model call (`ocr.batch_size`).
    pub batch_size: usize,
    /// Lines recognised with less confidence are dropped (`ocr.min_confidence`).
    pub min_confidence: f32,
    /// `lines.source` of the lines read: the OCR engine (`ppocr-v6`).
    pub source: &'static str,
}

/// [`recognise`] on `workers` threads, each with its own recogniser, all
/// taking pages from one queue. Returns busy time summed over the threads
/// and the largest batch any of them ran.
pub fn recognise_pool(
    settings: &RecogniseSettings,
    progress: &Progress,
    factory: Option<RecogniserFactory>,
    workers: usize,
    jobs: Receiver<CropJob>,
    results: Sender<Msg>,
) -> anyhow::Result<(Duration, usize)> {
    let done = run_pool("recognise", workers, || {
        recognise(
            settings,
            progress,
            factory.clone(),
            jobs.clone(),
            results.clone(),
        )
    })?;
    Ok(done
        .into_iter()
        .fold((Duration::ZERO, 0), |a, b| (a.0 + b.0, a.1.max(b.1))))
}

/// Recognition: gathers crops from as many pages as are waiting, sorts them
/// by input width, runs full batches, and scatters the text back to pages.
/// Returns (busy time, largest batch).
pub fn recognise(
    settings: &RecogniseSettings,
    progress: &Progress,
    factory: Option<RecogniserFactory>,
    jobs: Receiver<CropJob>,
    results: Sender<Msg>,
) -> anyhow::Result<(Duration, usize)> {
    let batch = settings.batch_size.max(1);
    let min_conf = settings.min_confidence;
    let mut rec: Option<Recogniser> = None;
    let mut busy = Duration::ZERO;
    let mut max_batch = 0usize;
    let gather = gather_wait();
    while let Ok(first) = jobs.recv_blocking() {
        // Take every page already waiting, up to a few batches' worth of crops.
        let mut group = vec![first];
        let mut n: usize = group[0].result.as_ref().map(|c| c.0.len()).unwrap_or(0);
        let gather_until = gather.map(|d| Instant::now() + d);
        while n < batch * 4 {
            let next = match gather_until {
                Some(until) => wait_for_next(&jobs, until),
                None => jobs.try_recv().ok(),
            };
            match next {
                Some(j) => {
                    n += j.result.as_ref().map(|c| c.0.len()).unwrap_or(0);
                    group.push(j);
                }
                None => break,
            }
        }
        if rec.is_none() && n > 0 {
            match factory.as_ref().map(|f| f()) {
                Some(Ok(r)) => rec = Some(r),
                Some(Err(e)) => return Err(e.context("loading the OCR recogniser")),
                None => {}
            }
        }
        let t = Instant::now();
        // (page in group, crop in page, input width)
        let mut order: Vec<(usize, usize, u32)> = Vec::with_capacity(n);
        if let Some(r) = rec.as_ref() {
            for (gi, j) in group.iter().enumerate() {
                if let Ok((crops, _)) = &j.result {
                    for (ci, c) in crops.iter().enumerate() {
                        order.push((gi, ci, r.input_width(&c.image)));
                    }
                }
            }
        }
        order.sort_by_key(|o| o.2);
        let mut texts: HashMap<(usize, usize), (String, f32)> = HashMap::new();
        let mut failed: HashMap<usize, PageFailure> = HashMap::new();
        if let Some(r) = rec.as_mut() {
            let mut calls = Calls {
                rec: r,
                group: &group,
                progress,
                max_batch: &mut max_batch,
                broken: false,
            };
            for chunk in order.chunks(batch) {
                calls.chunk(chunk, &mut texts, &mut failed);
            }
            if calls.broken {
                // A panic may have left the sessions in any state.
                rec = None;
            }
        }
        let elapsed = t.elapsed();
        busy += elapsed;
        let per_crop_ms = if n > 0 { ms(elapsed) / n as f64 } else { 0.0 };
        for (gi, job) in group.into_iter().enumerate() {
            let error = match (&job.result, failed.remove(&gi)) {
                (Err(e), _) => Some(e.clone()),
                (Ok(_), e) => e,
            };
            let done = match (&job.result, error) {
                (Ok((crops, skew)), None) => {
                    let mut lines = Vec::new();
                    for (ci, c) in crops.iter().enumerate() {
                        let Some((text, conf)) = texts.remove(&(gi, ci)) else {
                            continue;
                        };
                        let text = text.trim();
                        if text.is_empty() || conf < min_conf {
                            continue;
                        }
                        let bbox_pt = job
                            .meta
                            .to_points
                            .map(|a| a.apply_bbox(&BBox::around(&c.quad).unwrap_or_default()));
                        lines.push(line_row(
                            &job.meta,
                            lines.len(),
                            text,
                            conf,
                            &c.quad,
                            bbox_pt,
                            settings.source,
                        ));
                    }
                    PageDone {
                        page: page_row(
                            &job.meta,
                            job.size_px,
                            PageSource::Ocr,
                            *skew,
                            &lines,
                            None,
                        ),
                        lines,
                        error_class: None,
                        render_ms: job.meta.render_ms,
                        normalise_ms: job.normalise_ms,
                        ocr_ms: job.det_ms + per_crop_ms * crops.len() as f64,
                        turned: job.meta.turned,
                    }
                }
                (_, e) => {
                    let e = e.unwrap_or_else(|| PageFailure::error(String::new()));
                    let message = match e.class {
                        Some("timeout") => e.message,
                        _ => format!("OCR failed: {}", e.message),
                    };
                    let mut d = page_error(&job.meta, job.size_px, e.class, message);
                    d.ocr_ms = job.det_ms;
                    d
                }
            };
            if results.send_blocking(Msg::Page(Box::new(done))).is_err() {
                return Ok((busy, max_batch));
            }
        }
    }
    Ok((busy, max_batch))
}

/// The recognition calls of one group of pages.
struct Calls<'a> {
    rec: &'a mut Recogniser,
    group: &'a [CropJob],
    progress: &'a Progress,
    max_batch: &'a mut usize,
    /// A call panicked: the recogniser is made anew for the next group.
    broken: bool,
}

/// A crop: (page in group, crop in page, input width).
type Item = (usize, usize, u32);

impl Calls<'_> {
    /// Recognises one batch of crops into `texts`. Crops of pages that
    /// already failed are skipped, and so are those of pages whose
    /// document's time budget is spent (the page fails with `timeout`).
    /// When the call fails, each crop is tried alone, so that only the
    /// pages whose own crops fail again get the error.
    fn chunk(
        &mut self,
        chunk: &[Item],
        texts: &mut HashMap<(usize, usize), (String, f32)>,
        failed: &mut HashMap<usize, PageFailure>,
    ) {
        let mut live: Vec<Item> = Vec::with_capacity(chunk.len());
        for &item in chunk {
            if failed.contains_key(&item.0) {
                continue;
            }
            let budget = &self.group[item.0].meta.budget;
            if budget.exhausted() {
                failed.insert(item.0, PageFailure::timeout(budget, "OCR of this page"));
                continue;
            }
            live.push(item);
        }
        if live.is_empty() {
            return;
        }
        // Crops tried alone keep the batch's padding (its widest input).
        let widest = live.iter().map(|i| i.2).max().unwrap_or(0);
        match self.call(&live, widest) {
            Ok(decoded) => {
                for ((gi, ci, _), d) in live.iter().zip(decoded) {
                    texts.insert((*gi, *ci), d);
                }
            }
            Err(_) if live.len() > 1 => {
                tracing::debug!(
                    crops = live.len(),
                    "a recognition call failed; trying its crops one by one"
                );
                for item in &live {
                    if failed.contains_key(&item.0) {
                        continue;
                    }
                    match self.call(std::slice::from_ref(item), widest) {
                        Ok(mut d) => {
                            if let Some(d) = d.pop() {
                                texts.insert((item.0, item.1), d);
                            }
                        }
                        Err(e) => {
                            failed.entry(item.0).or_insert(e);
                        }
                    }
                }
            }
            Err(e) => {
                failed.entry(live[0].0).or_insert(e);
            }
        }
    }

    /// One model call on `items`, padded to at least `pad_to` input pixels,
    /// a panic caught as the call's error. Its
    /// time is charged to the crops' documents, a share each.
    fn call(&mut self, items: &[Item], pad_to: u32) -> Result<Vec<(String, f32)>, PageFailure> {
        let group = self.group;
        let images: Vec<&RgbImage> = items
            .iter()
            .filter_map(|(gi, ci, _)| group[*gi].result.as_ref().ok().map(|c| &c.0[*ci].image))
            .collect();
        *self.max_batch = (*self.max_batch).max(images.len());
        let counters = &self.progress.counters;
        counters.rec_batches.fetch_add(1, Ordering::Relaxed);
        counters
            .rec_crops
            .fetch_add(images.len() as u64, Ordering::Relaxed);
        let hit = |kind| {
            items
                .iter()
                .any(|(gi, _, _)| faults::hits(kind, &group[*gi].meta.uri))
        };
        let t = Instant::now();
        let rec = &mut *self.rec;
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if hit(StageFault::RecPanic) {
                panic!("test fault: recognition panics on this crop ({STAGE_FAULT_ENV})");
            }
            if hit(StageFault::RecError) {
                return Err(format!(
                    "test fault: recognition fails on this crop ({STAGE_FAULT_ENV})"
                ));
            }
            rec.recognise_padded(&images, pad_to)
                .map_err(|e| e.to_string())
        }));
        let share = t.elapsed() / u32::try_from(items.len().max(1)).unwrap_or(u32::MAX);
        for (gi, _, _) in items {
            group[*gi].meta.budget.charge(share);
        }
        match caught {
            Ok(Ok(decoded)) => Ok(decoded
                .into_iter()
                .map(|d| (d.text, d.confidence))
                .collect()),
            Ok(Err(e)) => Err(PageFailure::error(e)),
            Err(panic) => {
                self.broken = true;
                Err(PageFailure::panic("text recognition", panic.as_ref()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocr::engine::Crop;
    use crate::ocr::model::{Infer, InferError};
    use crate::pipeline::items::{DocBudget, PageMeta};
    use crate::pipeline::progress::Counters;
    use crate::types::{BBox, Quad};
    use std::sync::Arc;

    /// A recogniser model that reads every crop as "ok", and fails (or
    /// panics) on any call that holds a black crop.
    struct Fake {
        panic: bool,
    }

    impl Infer for Fake {
        fn run(
            &mut self,
            shape: &[usize],
            data: Vec<f32>,
        ) -> Result<(Vec<usize>, Vec<f32>), InferError> {
            let (n, per) = (shape[0], shape[1] * shape[2] * shape[3]);
            if (0..n).any(|i| data[i * per] < -0.99) {
                if self.panic {
                    panic!("the fake model cannot read a black crop");
                }
                return Err(InferError::Run {
                    model: "fake".into(),
                    message: "a black crop".into(),
                });
            }
            // Steps: "o", blank, "k"; classes: blank, o, k, space.
            let (t, c) = (3, 4);
            let mut out = vec![0f32; n * t * c];
            for i in 0..n {
                out[i * t * c + 1] = 1.0;
                out[i * t * c + c] = 1.0;
                out[i * t * c + 2 * c + 2] = 1.0;
            }
            Ok((vec![n, t, c], out))
        }
    }

    fn page(doc: &str, crops: usize, black: bool, budget: Duration) -> CropJob {
        let quad: Quad = BBox {
            x0: 0.0,
            y0: 0.0,
            x1: 96.0,
            y1: 24.0,
        }
        .to_quad();
        let shade = if black { 0 } else { 220 };
        let crops = (0..crops)
            .map(|_| Crop {
                image: RgbImage::from_pixel(96, 24, image::Rgb([shade; 3])),
                quad,
                det_score: 0.9,
            })
            .collect();
        CropJob {
            meta: PageMeta {
                doc_id: doc.into(),
                index: 0,
                dpi: None,
                size_pt: None,
                rotation: 0,
                to_points: None,
                render_ms: 0.0,
                turned: None,
                uri: Arc::from(doc),
                budget: DocBudget::new(budget),
            },
            size_px: (100, 100),
            result: Ok((crops, 0.0)),
            normalise_ms: 0.0,
            det_ms: 0.0,
        }
    }

    /// Runs the stage over `pages`, all waiting before it starts (so their
    /// crops share one batch), and returns each page's (doc, text, error
    /// class, error).
    fn recognise_all(
        pages: Vec<CropJob>,
        panic: bool,
    ) -> Vec<(String, String, Option<&'static str>, Option<String>)> {
        let (tx, rx) = async_channel::unbounded();
        let (res_tx, res_rx) = async_channel::unbounded();
        for p in pages {
            tx.send_blocking(p).unwrap();
        }
        drop(tx);
        let factory: RecogniserFactory = Arc::new(move || {
            let dict = ["", "o", "k", " "].map(String::from).to_vec();
            Ok(Recogniser::new(Box::new(Fake { panic }), dict, false))
        });
        let settings = RecogniseSettings {
            batch_size: 16,
            min_confidence: 0.0,
            source: "ppocr-v6",
        };
        let progress = Progress::new(Arc::new(Counters::default()), true);
        let (_, max) = recognise(&settings, &progress, Some(factory), rx, res_tx).unwrap();
        assert!(max > 1, "the crops were recognised together");
        let mut out = Vec::new();
        while let Ok(Msg::Page(d)) = res_rx.try_recv() {
            out.push((d.page.doc_id, d.page.text, d.error_class, d.page.error));
        }
        out.sort();
        out
    }

    #[test]
    fn a_failing_crop_fails_only_its_own_page() {
        for panic in [false, true] {
            let long = Duration::from_secs(600);
            let got = recognise_all(
                vec![
                    page("a", 2, false, long),
                    page("b", 1, true, long),
                    page("c", 3, false, long),
                ],
                panic,
            );
            assert_eq!(got.len(), 3);
            assert_eq!(
                (got[0].1.as_str(), got[0].3.as_ref()),
                ("ok\nok", None),
                "{got:?}"
            );
            assert_eq!((got[2].1.as_str(), got[2].3.as_ref()), ("ok\nok\nok", None));
            let (_, text, class, error) = &got[1];
            assert_eq!(text, "");
            let error = error.as_deref().unwrap_or_default();
            if panic {
                assert_eq!(*class, Some("internal"));
                assert!(error.contains("cannot read a black crop"), "{error}");
            } else {
                assert_eq!(*class, None);
                assert!(error.contains("a black crop"), "{error}");
            }
        }
    }

    #[test]
    fn a_page_over_its_budget_stops_with_timeout() {
        let got = recognise_all(
            vec![
                page("a", 2, false, Duration::from_secs(600)),
                page("b", 2, false, Duration::ZERO),
            ],
            false,
        );
        assert_eq!(got[0].3, None);
        assert_eq!(got[1].2, Some("timeout"));
        assert!(got[1]
            .3
            .as_deref()
            .unwrap_or_default()
            .contains("runtime.doc_timeout_s"));
    }
}
