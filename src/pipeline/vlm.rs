//! The VLM stage (`extract.engine: vlm`): reads fields from page images
//! with a vision-language model.
//!
//! The render stage makes each page's image for the model as it reads the
//! page (PDFs in the render workers, under their isolation, time and memory
//! limits; images from the page it decoded) and sends it here, a page at a
//! time through a bounded channel. This stage batches pages across
//! documents up to `extract.batch_size`, generates one record per page, and
//! sends each page's outcome to the assembler, which merges a document's
//! records once it has every page's text and record.
//!
//! The pipeline's other VLM tasks (`extract.tasks`: captions,
//! `ocr_with_region`, `od`) run on the same batch after the records, one
//! generation call per task; each page's task outcomes travel with its
//! record, and a task that fails on a page is that page's reason alone.
//!
//! A failed generation call is retried page by page before anything fails;
//! then only the page that fails again fails (its document is `partial`,
//! or `failed` when no page gave a record). A panic in the model becomes
//! the page's error (class `internal`), and the engine is loaded anew.

use super::faults::{self, StageFault, STAGE_FAULT_ENV};
use super::items::{Msg, PageFailure, PageImage, VlmDone};
use crate::extract::vlm::tasks::Task;
use crate::extract::vlm::{PageRecord, TaskResult, VlmEngine, VlmError};
use async_channel::{Receiver, Sender};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Resolution page images are made at for the VLM, dots per inch. The
/// models resize to their own input (768 px for Florence-2, 512 px tiles
/// for SmolVLM): 150 dpi gives a Letter page 1275x1650, enough for both.
/// Image documents give their decoded page as it is.
pub const VLM_DPI: f32 = 150.0;

/// Builds the run's VLM engine, once, on the VLM stage's thread.
pub type VlmFactory = Arc<dyn Fn() -> anyhow::Result<VlmEngine> + Send + Sync>;

/// What the VLM stage did, for the summary.
#[derive(Clone, Debug, Default)]
pub struct VlmStats {
    /// Pages given a record.
    pub pages: u64,
    /// Tokens generated for them.
    pub tokens: u64,
    /// Time in generation calls.
    pub generating: Duration,
    /// Time busy (generation, and handing outcomes on).
    pub busy: Duration,
}

impl VlmStats {
    /// The summary's `extract:` line.
    pub fn report(&self) -> String {
        let secs = self.generating.as_secs_f64();
        format!(
            "VLM {} page(s), {} tokens in {:.1}s: {:.1} pages/s, {:.0} tokens/s",
            self.pages,
            self.tokens,
            secs,
            self.pages as f64 / secs.max(1e-9),
            self.tokens as f64 / secs.max(1e-9)
        )
    }
}

/// Runs the stage until `pages` closes. `batch_size` pages at most go into
/// one generation call (`extract.batch_size`; 0 counts as 1); `tasks` are
/// the pipeline's tasks besides `fields`. `Err` only when the engine cannot
/// be loaded.
pub fn vlm_stage(
    factory: &VlmFactory,
    batch_size: usize,
    tasks: &[Task],
    pages: Receiver<PageImage>,
    results: Sender<Msg>,
) -> anyhow::Result<VlmStats> {
    let batch_size = batch_size.max(1);
    let mut engine = factory()?;
    let mut stats = VlmStats::default();
    while let Ok(first) = pages.recv_blocking() {
        // What is queued joins the first page, so batches span documents
        // without waiting for pages that are not there yet.
        let mut batch = vec![first];
        while batch.len() < batch_size {
            match pages.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let t = Instant::now();
        let mut calls = Calls {
            engine: &mut engine,
            stats: &mut stats,
            broken: false,
        };
        let outcomes = calls.run(&batch, &|e: &mut VlmEngine, images: &[&image::RgbImage]| {
            e.extract_pages(images)
        });
        let mut per_task: Vec<(Task, Vec<Result<TaskResult, PageFailure>>)> = Vec::new();
        for &task in tasks.iter().filter(|t| **t != Task::Fields) {
            let op = move |e: &mut VlmEngine, images: &[&image::RgbImage]| e.run_task(task, images);
            per_task.push((task, calls.run(&batch, &op)));
        }
        let broken = calls.broken;
        for (i, (page, result)) in batch.into_iter().zip(outcomes).enumerate() {
            let tasks = per_task
                .iter_mut()
                .map(|(t, outs)| {
                    let r = std::mem::replace(&mut outs[i], Err(no_output()));
                    (*t, r)
                })
                .collect();
            let done = VlmDone {
                doc_id: page.meta.doc_id,
                page: page.meta.index,
                result,
                tasks,
                image_size: page.image.as_ref().map_or((0, 0), |i| i.dimensions()),
                to_points: page.to_points,
                render_ms: page.render_ms,
            };
            if results.send_blocking(Msg::Vlm(Box::new(done))).is_err() {
                return Ok(stats);
            }
        }
        if broken {
            tracing::warn!("a VLM call panicked: loading the engine anew");
            engine = factory()?;
        }
        stats.busy += t.elapsed();
    }
    Ok(stats)
}

/// The generation calls of one batch.
struct Calls<'a> {
    engine: &'a mut VlmEngine,
    stats: &'a mut VlmStats,
    /// A call panicked: the engine is loaded anew after this batch.
    broken: bool,
}

/// What one generation call gives per page: a record, or a task's result.
trait PageOutput {
    /// Tokens generated for the page.
    fn tokens(&self) -> usize;
    /// The task, for the fault switch and messages.
    fn task() -> Task;
}

impl PageOutput for PageRecord {
    fn tokens(&self) -> usize {
        self.tokens
    }
    fn task() -> Task {
        Task::Fields
    }
}

impl PageOutput for TaskResult {
    fn tokens(&self) -> usize {
        self.tokens
    }
    fn task() -> Task {
        // Any task but fields: only the fault switch asks.
        Task::Caption
    }
}

/// One generation call of the engine on some pages' images.
type Op<'o, T> =
    dyn Fn(&mut VlmEngine, &[&image::RgbImage]) -> Result<Vec<Result<T, VlmError>>, VlmError> + 'o;

impl Calls<'_> {
    /// One outcome per page of `batch`, in order.
    fn run<T: PageOutput>(
        &mut self,
        batch: &[PageImage],
        op: &Op<'_, T>,
    ) -> Vec<Result<T, PageFailure>> {
        let mut out: Vec<Option<Result<T, PageFailure>>> = Vec::with_capacity(batch.len());
        let mut live: Vec<usize> = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            let failed = match &p.image {
                Err(e) => Some(PageFailure::error(format!("no page image: {e}"))),
                Ok(_) if p.meta.budget.exhausted() => Some(PageFailure::timeout(
                    &p.meta.budget,
                    "field extraction of this page",
                )),
                Ok(_) => None,
            };
            if failed.is_none() {
                live.push(i);
            }
            out.push(failed.map(Err));
        }
        if !live.is_empty() {
            match self.call(batch, &live, op) {
                Ok(results) => {
                    for (i, r) in live.iter().zip(results) {
                        out[*i] = Some(r);
                    }
                }
                // A failed call is retried page by page: only the page that
                // fails again fails.
                Err(_) if live.len() > 1 => {
                    for &i in &live {
                        let r = self
                            .call(batch, &[i], op)
                            .and_then(|mut r| r.pop().unwrap_or_else(|| Err(no_output())));
                        out[i] = Some(r);
                    }
                }
                Err(f) => {
                    for &i in &live {
                        out[i] = Some(Err(f.clone()));
                    }
                }
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err(no_output())))
            .collect()
    }

    /// One generation call on pages `items` of `batch`, a panic caught as
    /// the call's error. Its time is charged to the pages' documents, a
    /// share each.
    fn call<T: PageOutput>(
        &mut self,
        batch: &[PageImage],
        items: &[usize],
        op: &Op<'_, T>,
    ) -> Result<Vec<Result<T, PageFailure>>, PageFailure> {
        let images: Vec<&image::RgbImage> = items
            .iter()
            .filter_map(|&i| batch[i].image.as_ref().ok())
            .collect();
        let hit = |kind| {
            items
                .iter()
                .any(|&i| faults::hits(kind, &batch[i].meta.uri))
        };
        let (fault, panics) = if T::task() == Task::Fields {
            (hit(StageFault::VlmError), hit(StageFault::VlmPanic))
        } else {
            (hit(StageFault::VlmTaskError), false)
        };
        let t = Instant::now();
        let engine = &mut *self.engine;
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if panics {
                panic!("test fault: VLM generation panics on this page ({STAGE_FAULT_ENV})");
            }
            if fault {
                return Err(format!(
                    "test fault: VLM generation fails on this page ({STAGE_FAULT_ENV})"
                ));
            }
            op(engine, &images).map_err(|e| e.to_string())
        }));
        let took = t.elapsed();
        self.stats.generating += took;
        let share = took / u32::try_from(items.len().max(1)).unwrap_or(u32::MAX);
        for &i in items {
            batch[i].meta.budget.charge(share);
        }
        match caught {
            Ok(Ok(results)) if results.len() == items.len() => Ok(results
                .into_iter()
                .map(|r| {
                    r.inspect(|rec| {
                        if T::task() == Task::Fields {
                            self.stats.pages += 1;
                        }
                        self.stats.tokens += rec.tokens() as u64;
                    })
                    .map_err(|e| PageFailure::error(page_message(e)))
                })
                .collect()),
            Ok(Ok(results)) => Err(PageFailure::error(format!(
                "the VLM gave {} results for {} pages",
                results.len(),
                items.len()
            ))),
            Ok(Err(message)) => Err(PageFailure::error(message)),
            Err(panic) => {
                self.broken = true;
                Err(PageFailure::panic("VLM generation", panic.as_ref()))
            }
        }
    }
}

fn no_output() -> PageFailure {
    PageFailure::error("the VLM gave no result for this page".into())
}

/// A page's own error, without the engine's index of the page in its call.
fn page_message(e: VlmError) -> String {
    match e {
        VlmError::Image { message, .. } => format!("page image: {message}"),
        VlmError::Output { message, .. } => format!("output is not a JSON record: {message}"),
        other => other.to_string(),
    }
}
