//! The stage loops. Each runs on a blocking thread and ends when its input
//! channel closes.

use super::progress::{Counters, Progress};
use super::write::FinishedDoc;
use super::{Admission, DetectorFactory, RecogniserFactory, Renderer};
use crate::config::{OcrMode, Pipeline};
use crate::decode;
use crate::ingest::{self, DocRef, Kind, SourceFile};
use crate::ocr::engine::{polygon, Crop, Detector, Recogniser};
use crate::output::{DocStatus, DocumentRow, LineRow, PageRow, PageSource};
use crate::pdf::{self, Affine, PageInfo};
use crate::render::{self, DocFailure, ErrorClass, RenderEvent, RenderSettings};
use crate::types::BBox;
use crate::worker::{self, Outcome, Worker, WorkerSpec};
use async_channel::{Receiver, Sender};
use image::RgbImage;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub struct Ctx {
    pub pipeline: Pipeline,
    pub config_hash: String,
    pub model_ids: Vec<String>,
    pub counters: Arc<Counters>,
    pub progress: Arc<Progress>,
}

/// A document read into memory.
pub struct DocJob {
    doc: DocRef,
    data: Vec<u8>,
    started_at_us: i64,
    ingest_ms: f64,
}

/// Facts about a page that travel with it to the assembler.
#[derive(Clone)]
pub struct PageMeta {
    doc_id: String,
    index: u32,
    dpi: Option<f32>,
    size_pt: Option<(f32, f32)>,
    rotation: i32,
    to_points: Option<Affine>,
    render_ms: f64,
}

/// A page image on its way to OCR.
pub struct PageJob {
    meta: PageMeta,
    image: RgbImage,
}

/// A page's text regions on their way to recognition.
pub struct CropJob {
    meta: PageMeta,
    size_px: (u32, u32),
    result: Result<(Vec<Crop>, f32), String>,
    normalise_ms: f64,
    det_ms: f64,
}

/// A finished page.
pub struct PageDone {
    page: PageRow,
    lines: Vec<LineRow>,
    render_ms: f64,
    normalise_ms: f64,
    ocr_ms: f64,
}

/// What the assembler hears.
pub enum Msg {
    Start {
        doc: DocRef,
        pages: u32,
        started_at_us: i64,
        ingest_ms: f64,
        mime: &'static str,
    },
    Failed {
        doc: DocRef,
        class: &'static str,
        message: String,
        started_at_us: i64,
        ingest_ms: f64,
    },
    Page(Box<PageDone>),
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Reads, identifies and hashes each file, asks `admission` whether to go
/// on with it, and sends it to render (or its failed row to the assembler).
/// Reads no further file once `stopped()` (graceful drain). Returns (busy
/// time, files skipped by `admission`).
pub fn ingest(
    ctx: &Ctx,
    files: Receiver<SourceFile>,
    docs: Sender<DocJob>,
    results: Sender<Msg>,
    admission: Option<&dyn Admission>,
    stopped: &dyn Fn() -> bool,
) -> (Duration, u64) {
    let mut busy = Duration::ZERO;
    let mut skipped = 0u64;
    while let Ok(file) = files.recv_blocking() {
        if stopped() {
            break;
        }
        let t = Instant::now();
        let started_at_us = now_us();
        let _span = tracing::debug_span!("ingest", uri = %file.uri).entered();
        let stat = crate::journal::FileStat::of(&file.path);
        let (doc, data) = ingest::read(&file, &ctx.pipeline.limits);
        ctx.counters.files_read.fetch_add(1, Ordering::Relaxed);
        let ingest_ms = ms(t.elapsed());
        busy += t.elapsed();
        if admission.is_some_and(|a| !a.admit(&doc, stat)) {
            tracing::debug!(uri = %doc.uri, "already done (same content), skipped");
            skipped += 1;
            let total = ctx.counters.docs_total.load(Ordering::Relaxed);
            ctx.progress.set_total(total.saturating_sub(1));
            continue;
        }
        let fail = |class: &'static str, message: String, doc: DocRef| Msg::Failed {
            doc,
            class,
            message,
            started_at_us,
            ingest_ms,
        };
        let msg = match data {
            Err(e @ ingest::IngestError::TooLarge { .. }) => Some(fail("too_large", e.to_string(), doc)),
            Err(e) => Some(fail("io", e.to_string(), doc)),
            Ok(_) if doc.kind == Kind::Empty => Some(fail("empty", "the file is empty".into(), doc)),
            Ok(_) if doc.kind == Kind::Unknown => Some(fail(
                "not_a_document",
                "not a supported document (PDF, PNG, JPEG, TIFF, WebP or BMP), judged by its content".into(),
                doc,
            )),
            Ok(data) => {
                let job = DocJob {
                    doc,
                    data,
                    started_at_us,
                    ingest_ms,
                };
                if docs.send_blocking(job).is_err() {
                    break;
                }
                None
            }
        };
        if let Some(msg) = msg {
            if results.send_blocking(msg).is_err() {
                break;
            }
        }
    }
    (busy, skipped)
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

/// Reads documents on `runtime.workers` threads pulling from one channel:
/// PDFs through PDFium (each thread owning one render worker process, or in
/// this process with [`Renderer::InProcess`]), images with the pure-Rust
/// decoders. Text-layer pages go straight to the assembler, page images on
/// to detection. Returns busy time summed over the threads, and the number
/// of threads.
pub fn render(
    ctx: &Ctx,
    pdfium: Option<PathBuf>,
    renderer: Renderer,
    docs: Receiver<DocJob>,
    pages: Sender<PageJob>,
    results: Sender<Msg>,
) -> (Duration, usize) {
    let rt = &ctx.pipeline.runtime;
    let threads = worker::pool_size(rt.workers);
    let spec = match (&renderer, &pdfium) {
        (Renderer::Workers { program }, Some(lib)) => Some(WorkerSpec {
            program: program.clone(),
            pdfium: lib.clone(),
            doc_timeout: Duration::from_secs(rt.doc_timeout_s),
            memory_limit: rt.worker_memory_mb.saturating_mul(1 << 20),
        }),
        _ => None,
    };
    let plan = RenderPlan {
        lib: pdfium,
        spec,
        settings: RenderSettings::from_pipeline(&ctx.pipeline),
        in_flight: InFlight::default(),
        threads,
        shared: Mutex::new(Vec::new()),
        opening: AtomicUsize::new(0),
    };
    let busy = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let (plan, docs, pages, results) =
                (&plan, docs.clone(), pages.clone(), results.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("render-{i}"))
                .spawn_scoped(s, move || render_thread(ctx, plan, docs, pages, results));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => tracing::warn!("cannot start render thread {i}: {e}"),
            }
        }
        if handles.is_empty() {
            return render_thread(ctx, &plan, docs.clone(), pages.clone(), results.clone());
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

/// Pages the first request for a PDF reads when the stage has more than one
/// thread. The pages of a longer PDF after these are shared out: any thread
/// without work takes the next part, so one long PDF does not keep one
/// thread busy while the others idle.
const FIRST_PART: u32 = 16;

/// Fewest pages a later part holds; each covers about 1/(2 x threads) of
/// the pages left, so parts shrink towards the end and threads finish
/// together.
const MIN_PART: u32 = 4;

/// A long PDF whose remaining pages the render threads share.
struct SharedPdf {
    job: Arc<DocJob>,
    /// First page not yet handed out.
    next: AtomicU32,
    /// The document's page count.
    end: u32,
    /// Set by the first part that fails: the document's one failed row is
    /// that part's, and no more parts are handed out.
    failed: AtomicBool,
}

impl SharedPdf {
    /// Hands out the next part, `None` when none is left.
    fn take(&self, threads: usize) -> Option<(u32, u32)> {
        let share = 2 * u32::try_from(threads).unwrap_or(u32::MAX).max(1);
        let mut first = self.next.load(Ordering::SeqCst);
        loop {
            if first >= self.end || self.failed.load(Ordering::SeqCst) {
                return None;
            }
            let n = (self.end - first).div_ceil(share).max(MIN_PART);
            let end = first.saturating_add(n).min(self.end);
            match self
                .next
                .compare_exchange(first, end, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Some((first, end)),
                Err(now) => first = now,
            }
        }
    }

    fn exhausted(&self) -> bool {
        self.next.load(Ordering::SeqCst) >= self.end || self.failed.load(Ordering::SeqCst)
    }
}

/// What every render thread shares.
struct RenderPlan {
    lib: Option<PathBuf>,
    /// `Some` when PDFs go to worker processes.
    spec: Option<WorkerSpec>,
    settings: RenderSettings,
    in_flight: InFlight,
    threads: usize,
    /// Long PDFs with parts left to read.
    shared: Mutex<Vec<Arc<SharedPdf>>>,
    /// PDFs whose first part is being read: they may yet be shared.
    opening: AtomicUsize,
}

impl RenderPlan {
    /// The next part of a shared PDF, if any is left.
    fn claim(&self) -> Option<(Arc<SharedPdf>, (u32, u32))> {
        let mut list = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        list.retain(|p| !p.exhausted());
        list.iter()
            .find_map(|p| p.take(self.threads).map(|r| (Arc::clone(p), r)))
    }

    fn share(&self, pdf: SharedPdf) {
        let mut list = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        list.push(Arc::new(pdf));
    }

    /// True when no thread can be handed another part, now or later.
    fn nothing_left_to_share(&self) -> bool {
        if self.opening.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let list = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        list.iter().all(|p| p.exhausted())
    }
}

fn render_thread(
    ctx: &Ctx,
    plan: &RenderPlan,
    docs: Receiver<DocJob>,
    pages: Sender<PageJob>,
    results: Sender<Msg>,
) -> Duration {
    let mut worker: Option<Worker> = None;
    let mut busy = Duration::ZERO;
    let waited = Cell::new(Duration::ZERO);
    let mut closed = false;
    loop {
        // Parts of PDFs already started come first: they finish documents.
        if let Some((pdf, range)) = plan.claim() {
            let t = Instant::now();
            waited.set(Duration::ZERO);
            let go_on = render_part(plan, &mut worker, &pdf, range, &pages, &results, &waited);
            busy += t.elapsed().saturating_sub(waited.get());
            if go_on {
                continue;
            }
            break;
        }
        if closed {
            // No more documents: stay while a PDF may still be shared.
            if plan.nothing_left_to_share() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let Ok(job) = docs.recv_blocking() else {
            closed = true;
            continue;
        };
        let t = Instant::now();
        waited.set(Duration::ZERO);
        let _span =
            tracing::debug_span!("document", doc = %job.doc.id, uri = %job.doc.uri).entered();
        let reading = plan.in_flight.enter();
        let job = Arc::new(job);
        let outcome = match job.doc.kind {
            Kind::Pdf => {
                let sharing = plan.threads > 1;
                let settings = RenderSettings {
                    pages: sharing.then_some((0, FIRST_PART)),
                    ..plan.settings.clone()
                };
                let mut out = PdfPages {
                    job: &job,
                    dpi: plan.settings.dpi,
                    pages: &pages,
                    results: &results,
                    waited: &waited,
                    announce: true,
                    count: None,
                };
                plan.opening.fetch_add(1, Ordering::SeqCst);
                let read = read_pdf(&mut worker, plan, &settings, &mut out, reading);
                if let (Ok(true), Some(count)) = (&read, out.count) {
                    if sharing && count > FIRST_PART {
                        plan.share(SharedPdf {
                            job: Arc::clone(&job),
                            next: AtomicU32::new(FIRST_PART),
                            end: count,
                            failed: AtomicBool::new(false),
                        });
                    }
                }
                plan.opening.fetch_sub(1, Ordering::SeqCst);
                read.map_err(|f| (f.class.as_str(), f.message))
            }
            // A bug tripped by one hostile file must not take the run down:
            // it becomes that document's failed row.
            _ => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                decode_raster(ctx, &job, &pages, &results, &waited)
            }))
            .unwrap_or_else(|panic| {
                let f = render::panic_failure(panic.as_ref());
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

/// Reads pages `range` of a shared PDF. False when the pipeline is closing.
fn render_part(
    plan: &RenderPlan,
    worker: &mut Option<Worker>,
    pdf: &SharedPdf,
    range: (u32, u32),
    pages: &Sender<PageJob>,
    results: &Sender<Msg>,
    waited: &Cell<Duration>,
) -> bool {
    let _span = tracing::debug_span!(
        "part",
        doc = %pdf.job.doc.id,
        first = range.0,
        end = range.1
    )
    .entered();
    let settings = RenderSettings {
        pages: Some(range),
        ..plan.settings.clone()
    };
    let mut out = PdfPages {
        job: &pdf.job,
        dpi: plan.settings.dpi,
        pages,
        results,
        waited,
        announce: false,
        count: None,
    };
    let reading = plan.in_flight.enter();
    let read = read_pdf(worker, plan, &settings, &mut out, reading);
    plan.in_flight.leave();
    match read {
        Ok(go_on) => go_on,
        // Only the first failing part speaks for the document.
        Err(f) if !pdf.failed.swap(true, Ordering::SeqCst) => {
            send_failed(results, &pdf.job, f.class.as_str(), f.message)
        }
        Err(_) => true,
    }
}

/// Reads a PDF (the pages `settings` asks for) in this thread's worker
/// process, or in this process when there are no workers.
fn read_pdf(
    worker: &mut Option<Worker>,
    plan: &RenderPlan,
    settings: &RenderSettings,
    out: &mut PdfPages,
    reading: usize,
) -> Result<bool, DocFailure> {
    match (&plan.spec, plan.lib.as_deref()) {
        (Some(spec), _) => pdf_in_worker(worker, spec, settings, out, reading),
        (None, Some(lib)) => {
            render::render_pdf_guarded(lib, &out.job.data, settings, &mut |ev| out.emit(ev))
        }
        (None, None) => Err(DocFailure::new(
            ErrorClass::Render,
            "PDFium is not available",
        )),
    }
}

/// Reads a PDF in this thread's worker process, starting one if there is
/// none (the first PDF, or the one after a worker was lost).
fn pdf_in_worker(
    slot: &mut Option<Worker>,
    spec: &WorkerSpec,
    settings: &RenderSettings,
    out: &mut PdfPages,
    reading: usize,
) -> Result<bool, DocFailure> {
    let w = match slot {
        Some(w) => w,
        None => slot.insert(Worker::spawn(spec)?),
    };
    let pid = w.pid();
    tracing::debug!(
        worker = pid,
        reading,
        "render worker took a document ({reading} being read)"
    );
    match w.render(&out.job.doc.id, &out.job.data, settings, &mut |ev| {
        out.emit(ev)
    }) {
        Outcome::Done => Ok(true),
        Outcome::Failed(f) => Err(f),
        Outcome::Stopped => {
            *slot = None;
            Ok(false)
        }
        Outcome::Lost(f) => {
            tracing::warn!(
                worker = pid,
                class = f.class.as_str(),
                "render worker lost; a new one starts with the next PDF"
            );
            *slot = None;
            Err(f)
        }
    }
}

type StageResult = Result<bool, (&'static str, String)>;

fn start(results: &Sender<Msg>, job: &DocJob, pages: u32) -> bool {
    results
        .send_blocking(Msg::Start {
            doc: job.doc.clone(),
            pages,
            started_at_us: job.started_at_us,
            ingest_ms: job.ingest_ms,
            mime: job.doc.kind.mime(),
        })
        .is_ok()
}

fn page_error(meta: &PageMeta, size_px: (u32, u32), message: String) -> PageDone {
    PageDone {
        page: PageRow {
            doc_id: meta.doc_id.clone(),
            page_index: meta.index as i32,
            width_px: size_px.0 as i32,
            height_px: size_px.1 as i32,
            dpi: meta.dpi,
            width_pt: meta.size_pt.map(|s| s.0),
            height_pt: meta.size_pt.map(|s| s.1),
            source: PageSource::Empty,
            rotation: meta.rotation,
            skew_deg: 0.0,
            text: String::new(),
            mean_confidence: None,
            line_count: 0,
            error: Some(message),
        },
        lines: Vec::new(),
        render_ms: meta.render_ms,
        normalise_ms: 0.0,
        ocr_ms: 0.0,
    }
}

/// Turns one PDF's render events into the pipeline's messages, the same way
/// whether PDFium ran in this process or in a worker.
struct PdfPages<'a> {
    job: &'a DocJob,
    dpi: f32,
    pages: &'a Sender<PageJob>,
    results: &'a Sender<Msg>,
    waited: &'a Cell<Duration>,
    /// Pass the document's start on to the assembler: true for the first
    /// part, false for the later parts of a shared PDF.
    announce: bool,
    /// The document's page count, once its `Start` was seen.
    count: Option<u32>,
}

/// Sends a page image on to detection, adding the time spent waiting for
/// room in the queue to `waited`: that is detection's slowness, not the
/// render stage's work. False when the pipeline is closing.
fn send_page(pages: &Sender<PageJob>, job: PageJob, waited: &Cell<Duration>) -> bool {
    let t = Instant::now();
    let sent = pages.send_blocking(job).is_ok();
    waited.set(waited.get() + t.elapsed());
    sent
}

impl PdfPages<'_> {
    /// False when the pipeline is closing.
    fn emit(&mut self, ev: RenderEvent) -> bool {
        match ev {
            RenderEvent::Start { pages } => {
                self.count = Some(pages);
                !self.announce || start(self.results, self.job, pages)
            }
            RenderEvent::TextPage {
                index,
                info,
                layer,
                usable,
                ms,
            } => {
                let (meta, size_px) = self.meta(index, Some(info), ms);
                let done = text_layer_page(&meta, size_px, layer, usable);
                self.results
                    .send_blocking(Msg::Page(Box::new(done)))
                    .is_ok()
            }
            RenderEvent::Image {
                index,
                info,
                image,
                to_points,
                ms,
            } => {
                let (mut meta, _) = self.meta(index, Some(info), ms);
                meta.to_points = Some(to_points);
                send_page(self.pages, PageJob { meta, image }, self.waited)
            }
            RenderEvent::PageError {
                index,
                info,
                message,
                ms,
            } => {
                let (meta, size_px) = self.meta(index, info, ms);
                let done = page_error(&meta, size_px, message);
                self.results
                    .send_blocking(Msg::Page(Box::new(done)))
                    .is_ok()
            }
        }
    }

    /// A page's facts, and its size in pixels at the render DPI ((0, 0) when
    /// its size could not be read).
    fn meta(&self, index: u32, info: Option<PageInfo>, ms: f64) -> (PageMeta, (u32, u32)) {
        let dpi = self.dpi;
        let size_pt = info.map(|i| (i.width_pt, i.height_pt));
        let size_px = size_pt
            .map(|(w, h)| {
                (
                    (w * dpi / 72.0).round() as u32,
                    (h * dpi / 72.0).round() as u32,
                )
            })
            .unwrap_or((0, 0));
        let meta = PageMeta {
            doc_id: self.job.doc.id.clone(),
            index,
            dpi: Some(dpi),
            size_pt,
            rotation: info.map_or(0, |i| i.rotation),
            to_points: None,
            render_ms: ms,
        };
        (meta, size_px)
    }
}

fn text_layer_page(
    meta: &PageMeta,
    size_px: (u32, u32),
    layer: pdf::TextLayer,
    usable: bool,
) -> PageDone {
    let lines: Vec<LineRow> = layer
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| line_row(meta, i, &l.text, 1.0, &l.bbox_px.to_quad(), Some(l.bbox_pt)))
        .collect();
    let text = lines
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    PageDone {
        page: PageRow {
            doc_id: meta.doc_id.clone(),
            page_index: meta.index as i32,
            width_px: size_px.0 as i32,
            height_px: size_px.1 as i32,
            dpi: meta.dpi,
            width_pt: meta.size_pt.map(|s| s.0),
            height_pt: meta.size_pt.map(|s| s.1),
            source: if usable && !lines.is_empty() {
                PageSource::TextLayer
            } else {
                PageSource::Empty
            },
            rotation: meta.rotation,
            skew_deg: 0.0,
            text,
            mean_confidence: (!lines.is_empty()).then_some(1.0),
            line_count: lines.len() as i32,
            error: None,
        },
        lines,
        render_ms: meta.render_ms,
        normalise_ms: 0.0,
        ocr_ms: 0.0,
    }
}

fn line_row(
    meta: &PageMeta,
    index: usize,
    text: &str,
    confidence: f32,
    quad: &crate::types::Quad,
    bbox_pt: Option<BBox>,
) -> LineRow {
    let b = BBox::around(quad).unwrap_or_default();
    LineRow {
        doc_id: meta.doc_id.clone(),
        page_index: meta.index as i32,
        line_index: index as i32,
        text: text.to_string(),
        confidence,
        x0: b.x0,
        y0: b.y0,
        x1: b.x1,
        y1: b.y1,
        polygon: polygon(quad),
        bbox_pt: bbox_pt.map(|b| [b.x0, b.y0, b.x1, b.y1]),
    }
}

fn decode_raster(
    ctx: &Ctx,
    job: &DocJob,
    pages: &Sender<PageJob>,
    results: &Sender<Msg>,
    waited: &Cell<Duration>,
) -> StageResult {
    let p = &ctx.pipeline;
    let classify = |e: decode::DecodeError| match e {
        decode::DecodeError::TooManyPixels { .. } => ("too_many_pixels", e.to_string()),
        decode::DecodeError::Unsupported(_) => ("unsupported", e.to_string()),
        decode::DecodeError::Corrupt(_) => ("corrupt", e.to_string()),
    };
    let count =
        decode::page_count(job.doc.kind, &job.data, p.limits.max_pages).map_err(classify)?;
    if count > p.limits.max_pages {
        return Err((
            "too_many_pages",
            format!(
                "the image has more than {} pages (limits.max_pages)",
                p.limits.max_pages
            ),
        ));
    }
    // Decode the first page before announcing the document, so a file that
    // cannot be decoded at all is one failed row rather than a partial one.
    let t = Instant::now();
    let first = decode::decode_page(job.doc.kind, &job.data, 0, p.limits.max_image_pixels)
        .map_err(classify)?;
    if !start(results, job, count) {
        return Ok(false);
    }
    let mut next = Some((first, ms(t.elapsed())));
    for index in 0..count {
        let t = Instant::now();
        let decoded = match next.take() {
            Some((page, took)) => Ok((page, took)),
            None => decode::decode_page(job.doc.kind, &job.data, index, p.limits.max_image_pixels)
                .map(|page| (page, ms(t.elapsed()))),
        };
        let mut meta = PageMeta {
            doc_id: job.doc.id.clone(),
            index,
            dpi: None,
            size_pt: None,
            rotation: 0,
            to_points: None,
            render_ms: 0.0,
        };
        match decoded {
            Ok((page, took)) => {
                meta.rotation = page.rotation;
                meta.dpi = page.dpi;
                meta.render_ms = took;
                if p.ocr.mode == OcrMode::Never {
                    let dims = page.image.dimensions();
                    let done = text_layer_page(&meta, dims, pdf::TextLayer::default(), false);
                    if results.send_blocking(Msg::Page(Box::new(done))).is_err() {
                        return Ok(false);
                    }
                } else if !send_page(
                    pages,
                    PageJob {
                        meta,
                        image: page.image,
                    },
                    waited,
                ) {
                    return Ok(false);
                }
            }
            Err(e) => {
                meta.render_ms = ms(t.elapsed());
                if results
                    .send_blocking(Msg::Page(Box::new(page_error(
                        &meta,
                        (0, 0),
                        e.to_string(),
                    ))))
                    .is_err()
                {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

/// Detection: deskew, tile, find text regions, cut them out.
/// Returns (busy time in detection, busy time in normalisation).
pub fn detect(
    _ctx: &Ctx,
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
                .send_blocking(Msg::Page(Box::new(page_error(&job.meta, size_px, msg))))
                .is_err()
            {
                break;
            }
            continue;
        };
        let t = Instant::now();
        let detected = det.detect(&job.image);
        let normalise_ms = detected.as_ref().map(|d| d.normalise_ms).unwrap_or(0.0);
        let result = detected
            .map(|d| (d.crops, d.skew_deg))
            .map_err(|e| e.to_string());
        let took = t.elapsed();
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

/// Runs `work` on `workers` threads named `name-N` and collects what each
/// returned; the first error wins. One worker runs on the calling thread.
fn run_pool<R: Send>(
    name: &str,
    workers: usize,
    work: impl Fn() -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    if workers <= 1 {
        return Ok(vec![work()?]);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|i| {
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn_scoped(s, &work)
            })
            .collect();
        let mut out = Vec::with_capacity(workers);
        let mut first_error = None;
        for h in handles {
            let outcome = match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a {name} thread panicked"))),
                Err(e) => Err(anyhow::anyhow!("cannot start a {name} thread: {e}")),
            };
            match outcome {
                Ok(r) => out.push(r),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    })
}

/// [`detect`] on `workers` threads, each with its own detector, all taking
/// pages from one queue. Returns detection and deskew busy time, each summed
/// over the threads.
pub fn detect_pool(
    ctx: &Ctx,
    factory: Option<DetectorFactory>,
    workers: usize,
    pages: Receiver<PageJob>,
    crops: Sender<CropJob>,
    results: Sender<Msg>,
) -> anyhow::Result<(Duration, Duration)> {
    let done = run_pool("detect", workers, || {
        detect(
            ctx,
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

/// [`recognise`] on `workers` threads, each with its own recogniser, all
/// taking pages from one queue. Returns busy time summed over the threads
/// and the largest batch any of them ran.
pub fn recognise_pool(
    ctx: &Ctx,
    factory: Option<RecogniserFactory>,
    workers: usize,
    jobs: Receiver<CropJob>,
    results: Sender<Msg>,
) -> anyhow::Result<(Duration, usize)> {
    let done = run_pool("recognise", workers, || {
        recognise(ctx, factory.clone(), jobs.clone(), results.clone())
    })?;
    Ok(done
        .into_iter()
        .fold((Duration::ZERO, 0), |a, b| (a.0 + b.0, a.1.max(b.1))))
}

/// Recognition: gathers crops from as many pages as are waiting, sorts them
/// by input width, runs full batches, and scatters the text back to pages.
/// Returns (busy time, largest batch).
pub fn recognise(
    ctx: &Ctx,
    factory: Option<RecogniserFactory>,
    jobs: Receiver<CropJob>,
    results: Sender<Msg>,
) -> anyhow::Result<(Duration, usize)> {
    let batch = ctx.pipeline.ocr.batch_size.max(1);
    let min_conf = ctx.pipeline.ocr.min_confidence;
    let mut rec: Option<Recogniser> = None;
    let mut busy = Duration::ZERO;
    let mut max_batch = 0usize;
    while let Ok(first) = jobs.recv_blocking() {
        // Take every page already waiting, up to a few batches' worth of crops.
        let mut group = vec![first];
        let mut n: usize = group[0].result.as_ref().map(|c| c.0.len()).unwrap_or(0);
        while n < batch * 4 {
            match jobs.try_recv() {
                Ok(j) => {
                    n += j.result.as_ref().map(|c| c.0.len()).unwrap_or(0);
                    group.push(j);
                }
                Err(_) => break,
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
        let mut errors: HashMap<usize, String> = HashMap::new();
        if let Some(r) = rec.as_mut() {
            for chunk in order.chunks(batch) {
                let images: Vec<&RgbImage> = chunk
                    .iter()
                    .filter_map(|(gi, ci, _)| {
                        group[*gi].result.as_ref().ok().map(|c| &c.0[*ci].image)
                    })
                    .collect();
                max_batch = max_batch.max(images.len());
                ctx.counters.rec_batches.fetch_add(1, Ordering::Relaxed);
                ctx.counters
                    .rec_crops
                    .fetch_add(images.len() as u64, Ordering::Relaxed);
                match r.recognise(&images) {
                    Ok(decoded) => {
                        for ((gi, ci, _), d) in chunk.iter().zip(decoded) {
                            texts.insert((*gi, *ci), (d.text, d.confidence));
                        }
                    }
                    Err(e) => {
                        for (gi, _, _) in chunk {
                            errors.insert(*gi, e.to_string());
                        }
                    }
                }
            }
        }
        let elapsed = t.elapsed();
        busy += elapsed;
        let per_crop_ms = if n > 0 { ms(elapsed) / n as f64 } else { 0.0 };
        for (gi, job) in group.into_iter().enumerate() {
            let error = match (&job.result, errors.remove(&gi)) {
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
                        ));
                    }
                    let mean = (!lines.is_empty()).then(|| {
                        lines.iter().map(|l| l.confidence).sum::<f32>() / lines.len() as f32
                    });
                    let text = lines
                        .iter()
                        .map(|l| l.text.as_str())
                        .collect::<Vec<_>>()
                        .join("\n");
                    PageDone {
                        page: PageRow {
                            doc_id: job.meta.doc_id.clone(),
                            page_index: job.meta.index as i32,
                            width_px: job.size_px.0 as i32,
                            height_px: job.size_px.1 as i32,
                            dpi: job.meta.dpi,
                            width_pt: job.meta.size_pt.map(|s| s.0),
                            height_pt: job.meta.size_pt.map(|s| s.1),
                            source: PageSource::Ocr,
                            rotation: job.meta.rotation,
                            skew_deg: *skew,
                            text,
                            mean_confidence: mean,
                            line_count: lines.len() as i32,
                            error: None,
                        },
                        lines,
                        render_ms: job.meta.render_ms,
                        normalise_ms: job.normalise_ms,
                        ocr_ms: job.det_ms + per_crop_ms * crops.len() as f64,
                    }
                }
                (_, e) => {
                    let mut d = page_error(
                        &job.meta,
                        job.size_px,
                        format!("OCR failed: {}", e.unwrap_or_default()),
                    );
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

struct DocState {
    doc: DocRef,
    mime: &'static str,
    expected: u32,
    started_at_us: i64,
    ingest_ms: f64,
    pages: BTreeMap<u32, PageDone>,
}

/// Collects pages into documents and hands each finished one on.
pub fn assemble(ctx: &Ctx, results: Receiver<Msg>, out: Sender<FinishedDoc>) -> anyhow::Result<()> {
    let mut open: HashMap<String, DocState> = HashMap::new();
    // Documents given their failed row: pages of theirs still on the way
    // (other parts of a shared PDF) are dropped.
    let mut failed: HashSet<String> = HashSet::new();
    while let Ok(msg) = results.recv_blocking() {
        let finished = match msg {
            Msg::Start {
                doc,
                pages,
                started_at_us,
                ingest_ms,
                mime,
            } => {
                open.insert(
                    doc.id.clone(),
                    DocState {
                        doc,
                        mime,
                        expected: pages,
                        started_at_us,
                        ingest_ms,
                        pages: BTreeMap::new(),
                    },
                );
                None
            }
            Msg::Failed {
                doc,
                class,
                message,
                started_at_us,
                ingest_ms,
            } => {
                // A document that failed after it was announced (e.g. a panic
                // mid-way) gives this one row, not a second partial one.
                open.remove(&doc.id);
                failed.insert(doc.id.clone());
                let row = document_row(ctx, &doc, doc.kind.mime(), started_at_us, ingest_ms);
                Some(FinishedDoc {
                    doc: DocumentRow {
                        status: DocStatus::Failed,
                        error_class: Some(class.to_string()),
                        error_message: Some(message),
                        pages: None,
                        ..row
                    },
                    pages: Vec::new(),
                    lines: Vec::new(),
                    path: doc.path.clone(),
                    kind: doc.kind,
                })
            }
            Msg::Page(done) => {
                let id = done.page.doc_id.clone();
                let complete = match open.get_mut(&id) {
                    Some(state) => {
                        state.pages.insert(done.page.page_index as u32, *done);
                        state.pages.len() as u32 >= state.expected
                    }
                    None if failed.contains(&id) => false,
                    None => {
                        tracing::error!(doc = %id, "page for a document that was not started");
                        false
                    }
                };
                if complete {
                    open.remove(&id).map(|s| finish_doc(ctx, s))
                } else {
                    None
                }
            }
        };
        if let Some(doc) = finished {
            if out.send_blocking(doc).is_err() {
                return Ok(());
            }
        }
    }
    // Documents still open here lost pages to a stage that stopped early.
    for (_, state) in open.drain() {
        if out.send_blocking(finish_doc(ctx, state)).is_err() {
            break;
        }
    }
    Ok(())
}

fn document_row(
    ctx: &Ctx,
    doc: &DocRef,
    mime: &str,
    started_at_us: i64,
    ingest_ms: f64,
) -> DocumentRow {
    DocumentRow {
        doc_id: doc.id.clone(),
        uri: doc.uri.clone(),
        sha256: doc.sha256.clone(),
        bytes: doc.bytes as i64,
        mime: mime.to_string(),
        pages: None,
        status: DocStatus::Ok,
        error_class: None,
        error_message: None,
        pipeline: ctx.pipeline.name.clone(),
        config_hash: ctx.config_hash.clone(),
        model_ids: ctx.model_ids.clone(),
        started_at: started_at_us,
        pages_text_layer: 0,
        pages_ocr: 0,
        time_ingest_ms: ingest_ms,
        time_render_ms: 0.0,
        time_normalise_ms: 0.0,
        time_ocr_ms: 0.0,
        time_total_ms: (now_us() - started_at_us).max(0) as f64 / 1000.0,
        extracted: None,
    }
}

fn finish_doc(ctx: &Ctx, state: DocState) -> FinishedDoc {
    let mut row = document_row(
        ctx,
        &state.doc,
        state.mime,
        state.started_at_us,
        state.ingest_ms,
    );
    row.pages = Some(state.expected as i32);
    let mut pages = Vec::with_capacity(state.pages.len());
    let mut lines = Vec::new();
    let mut page_errors = Vec::new();
    for (_, done) in state.pages {
        row.time_render_ms += done.render_ms;
        row.time_normalise_ms += done.normalise_ms;
        row.time_ocr_ms += done.ocr_ms;
        match done.page.source {
            PageSource::TextLayer => row.pages_text_layer += 1,
            PageSource::Ocr => row.pages_ocr += 1,
            PageSource::Empty => {}
        }
        if let Some(e) = &done.page.error {
            page_errors.push(format!("page {}: {e}", done.page.page_index + 1));
        }
        pages.push(done.page);
        lines.extend(done.lines);
    }
    let missing = state.expected as usize - pages.len().min(state.expected as usize);
    if missing > 0 {
        page_errors.push(format!("{missing} page(s) never came back from OCR"));
    }
    if !page_errors.is_empty() {
        let all_failed = page_errors.len() >= state.expected as usize;
        row.status = if all_failed {
            DocStatus::Failed
        } else {
            DocStatus::Partial
        };
        row.error_class = Some(
            if all_failed {
                "page_errors"
            } else {
                "some_pages_failed"
            }
            .to_string(),
        );
        row.error_message = Some(page_errors.join("; "));
    }
    FinishedDoc {
        doc: row,
        pages,
        lines,
        path: state.doc.path.clone(),
        kind: state.doc.kind,
    }
}
