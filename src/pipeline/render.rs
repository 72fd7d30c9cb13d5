//! The render stage: PDFs through PDFium (in worker processes, or in this
//! process for tests and library use), images through the pure-Rust
//! decoders. Text-layer pages go straight to the assembler, page images on
//! to detection. With a VLM or a layout model, every page's image for them
//! goes to their stages as well, one page at a time: for PDFs the worker
//! renders it next to the page's own event, so the main process never
//! opens PDFium and never reads a file a second time.

mod pdf;
mod raster;

use super::items::{DocJob, Msg, PageImage, PageJob};
use super::shared_pdf::{SharedPdf, Sharing, FIRST_PART};
use super::Renderer;
use crate::config::{OcrMode, Pipeline};
use crate::ingest::Kind;
use crate::render::{self as pdfium_render, RenderSettings};
use crate::worker::{self, Worker, WorkerSpec};
use async_channel::{Receiver, Sender};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use raster::RasterSettings;

/// What the render stage needs from the pipeline.
#[derive(Clone, Debug)]
pub struct RenderStage {
    /// Threads, each with its own worker process (`runtime.workers`, 0 =
    /// one per core).
    pub workers: usize,
    /// Longest a worker may spend on one request (`runtime.doc_timeout_s`).
    pub doc_timeout: Duration,
    /// Largest resident memory of a worker, bytes (`runtime.worker_memory_mb`).
    pub worker_memory: u64,
    /// What each PDF request asks of PDFium.
    pub pdf: RenderSettings,
    pub raster: RasterSettings,
    /// With a VLM or a layout model: the resolution their page images are
    /// rendered at, dots per inch ([`super::vlm::VLM_DPI`]); `None`: no
    /// such images.
    pub vlm_dpi: Option<f32>,
}

impl RenderStage {
    pub fn from_pipeline(p: &Pipeline) -> Self {
        Self {
            workers: p.runtime.workers,
            doc_timeout: Duration::from_secs(p.runtime.doc_timeout_s),
            worker_memory: p.runtime.worker_memory_mb.saturating_mul(1 << 20),
            pdf: RenderSettings::from_pipeline(p),
            raster: RasterSettings {
                max_pages: p.limits.max_pages,
                max_image_pixels: p.limits.max_image_pixels,
                ocr: p.ocr.mode != OcrMode::Never,
            },
            vlm_dpi: None,
        }
    }
}

/// Where page images go besides detection: the VLM stage's queue (with a
/// VLM) and the layout stage's (with `layout`).
#[derive(Clone, Default)]
pub struct ImageQueues {
    pub vlm: Option<Sender<PageImage>>,
    pub layout: Option<Sender<PageImage>>,
}

/// Documents being read at once by the render stage, and the most seen.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl InFlight {
    fn enter(&self) -> usize {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        n
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What every render thread shares.
struct RenderPlan {
    lib: Option<PathBuf>,
    /// `Some` when PDFs go to worker processes.
    spec: Option<WorkerSpec>,
    settings: RenderStage,
    in_flight: InFlight,
    sharing: Sharing<DocJob>,
}

/// Reads documents on `settings.workers` threads pulling from one channel,
/// each thread owning one render worker process (or rendering in this
/// process with [`Renderer::InProcess`]). Returns busy time summed over the
/// threads, and the number of threads.
pub fn render(
    settings: RenderStage,
    pdfium: Option<PathBuf>,
    renderer: Renderer,
    docs: Receiver<DocJob>,
    pages: Sender<PageJob>,
    images: ImageQueues,
    results: Sender<Msg>,
) -> (Duration, usize) {
    let threads = worker::pool_size(settings.workers);
    let spec = match (&renderer, &pdfium) {
        (Renderer::Workers { program }, Some(lib)) => Some(WorkerSpec {
            program: program.clone(),
            pdfium: lib.clone(),
            doc_timeout: settings.doc_timeout,
            memory_limit: settings.worker_memory,
        }),
        _ => None,
    };
    let plan = RenderPlan {
        lib: pdfium,
        spec,
        settings,
        in_flight: InFlight::default(),
        sharing: Sharing::new(threads),
    };
    let busy = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let (plan, docs, pages, images, results) = (
                &plan,
                docs.clone(),
                pages.clone(),
                images.clone(),
                results.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("render-{i}"))
                .spawn_scoped(s, move || render_thread(plan, docs, pages, images, results));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => tracing::warn!("cannot start render thread {i}: {e}"),
            }
        }
        if handles.is_empty() {
            return render_thread(
                &plan,
                docs.clone(),
                pages.clone(),
                images.clone(),
                results.clone(),
            );
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .sum()
    });
    let most = plan.in_flight.max.load(Ordering::SeqCst);
    tracing::debug!(
        threads,
        workers = plan.spec.is_some(),
        "render stage finished: {threads} threads, at most {most} documents at once"
    );
    (busy, threads)
}

fn render_thread(
    plan: &RenderPlan,
    docs: Receiver<DocJob>,
    pages: Sender<PageJob>,
    images: ImageQueues,
    results: Sender<Msg>,
) -> Duration {
    let mut worker: Option<Worker> = None;
    let mut busy = Duration::ZERO;
    let waited = Cell::new(Duration::ZERO);
    let mut closed = false;
    let out = Outputs {
        pages: &pages,
        images: &images,
        results: &results,
        waited: &waited,
    };
    loop {
        // Parts of PDFs already started come first: they finish documents.
        if let Some((shared, range)) = plan.sharing.claim() {
            let t = Instant::now();
            waited.set(Duration::ZERO);
            let go_on = pdf::render_part(plan, &mut worker, &shared, range, &out);
            busy += t.elapsed().saturating_sub(waited.get());
            if go_on {
                continue;
            }
            break;
        }
        if closed {
            // No more documents: stay while a PDF may still be shared.
            if plan.sharing.nothing_left() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        // Counted as opening from before the document is taken: a thread
        // that finds the input closed must not leave while another holds a
        // PDF it has taken but not yet shared.
        plan.sharing.opening();
        let Ok(job) = docs.recv_blocking() else {
            plan.sharing.opened();
            closed = true;
            continue;
        };
        if job.doc.kind != Kind::Pdf {
            plan.sharing.opened();
        }
        let t = Instant::now();
        waited.set(Duration::ZERO);
        let _span =
            tracing::debug_span!("document", doc = %job.doc.id, uri = %job.doc.uri).entered();
        let reading = plan.in_flight.enter();
        let job = Arc::new(job);
        let outcome = match job.doc.kind {
            Kind::Pdf => {
                let sharing = plan.sharing.enabled();
                let settings = RenderSettings {
                    pages: sharing.then_some((0, FIRST_PART)),
                    ..plan.settings.pdf.clone()
                };
                let read = pdf::read_first_part(plan, &mut worker, &job, &settings, &out, reading);
                let read = match read {
                    Ok((go_on, Some(count))) if go_on && sharing && count > FIRST_PART => {
                        plan.sharing
                            .share(SharedPdf::new(Arc::clone(&job), FIRST_PART, count));
                        Ok(true)
                    }
                    Ok((go_on, _)) => Ok(go_on),
                    Err(f) => Err(f),
                };
                plan.sharing.opened();
                read.map_err(|f| (f.class.as_str(), f.message))
            }
            // A bug tripped by one hostile file must not take the run down:
            // it becomes that document's failed row.
            _ => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                raster::decode_raster(&plan.settings.raster, &job, &out)
            }))
            .unwrap_or_else(|panic| {
                let f = pdfium_render::panic_failure(panic.as_ref());
                Err((f.class.as_str(), f.message))
            }),
        };
        plan.in_flight.leave();
        busy += t.elapsed().saturating_sub(waited.get());
        match outcome {
            Ok(true) => {}
            Ok(false) => break,
            Err((class, message)) => {
                if !send_failed(&results, &job, class, message) {
                    break;
                }
            }
        }
    }
    busy
}

/// Where a render thread sends what it reads, and the time it spent
/// waiting for room downstream (detection's slowness, not its own work).
struct Outputs<'a> {
    pages: &'a Sender<PageJob>,
    /// The VLM's and the layout model's queues.
    images: &'a ImageQueues,
    results: &'a Sender<Msg>,
    waited: &'a Cell<Duration>,
}

impl Outputs<'_> {
    /// Sends a page image on to detection, adding the time spent waiting
    /// for room in the queue to `waited`. False when the pipeline is closing.
    fn page(&self, job: PageJob) -> bool {
        let t = Instant::now();
        let sent = self.pages.send_blocking(job).is_ok();
        self.waited.set(self.waited.get() + t.elapsed());
        sent
    }

    /// Whether pages' images go to a VLM or a layout stage.
    fn wants_images(&self) -> bool {
        self.images.vlm.is_some() || self.images.layout.is_some()
    }

    /// Sends a page's image on to the VLM and the layout stages (and drops
    /// it without them), adding the time spent waiting for room to
    /// `waited`. False when the pipeline is closing.
    fn page_image(&self, page: PageImage) -> bool {
        let t = Instant::now();
        let sent = match (&self.images.vlm, &self.images.layout) {
            (Some(vlm), Some(layout)) => {
                vlm.send_blocking(page.clone()).is_ok() && layout.send_blocking(page).is_ok()
            }
            (Some(q), None) | (None, Some(q)) => q.send_blocking(page).is_ok(),
            (None, None) => true,
        };
        self.waited.set(self.waited.get() + t.elapsed());
        sent
    }

    /// A message to the assembler. False when the pipeline is closing.
    fn result(&self, msg: Msg) -> bool {
        self.results.send_blocking(msg).is_ok()
    }

    /// The document's start, with its page count.
    fn start(&self, job: &DocJob, pages: u32) -> bool {
        self.result(Msg::Start {
            doc: job.doc.clone(),
            pages,
            started_at_us: job.started_at_us,
            ingest_ms: job.ingest_ms,
            mime: job.doc.kind.mime(),
        })
    }
}

/// The document's failed row. False when the pipeline is closing.
fn send_failed(results: &Sender<Msg>, job: &DocJob, class: &'static str, message: String) -> bool {
    let msg = Msg::Failed {
        doc: job.doc.clone(),
        class,
        message,
        started_at_us: job.started_at_us,
        ingest_ms: job.ingest_ms,
    };
    results.send_blocking(msg).is_ok()
}
