//! The run: stages joined by bounded channels.
//!
//! ```text
//! list ─▶ ingest ─▶ render/decode ─▶ detect ─▶ recognise ─▶ assemble ─▶ sink
//!                        ├──── text-layer pages ─────────────┤
//!                        └──── VLM page images ─▶ vlm ───────┘
//! ```
//!
//! Every channel is bounded, so a slow stage blocks the ones before it and
//! memory stays flat whatever the archive's size. Every stage but the lister
//! is CPU or FFI work and runs on a blocking thread, never on the async
//! executor. Recognition gathers crops from many pages and documents into
//! batches grouped by width.

mod assemble;
mod detect;
pub mod faults;
mod ingest;
mod items;
mod layout;
pub mod metrics;
mod pool;
pub mod progress;
mod recognise;
mod render;
mod rows;
mod shared_pdf;
mod vlm;
pub mod write;

use crate::config::{Pipeline, RecordPolicy};
use crate::extract::FieldSchema;
use crate::ingest::{DocRef, SourceFile};
use crate::journal::FileStat;
use crate::ocr::engine::{Detector, Recogniser};
use anyhow::Context;
use progress::{Counters, Progress};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub use crate::output::DocSink;
pub use assemble::LayoutRows;
pub use layout::{LayoutFactory, LayoutStats};
pub use vlm::{VlmFactory, VlmStats, VLM_DPI};

/// Decides, once a file has been read and hashed, whether the run processes
/// it. A run journal skips documents already done (see
/// [`crate::journal::Journal::admit`]).
pub trait Admission: Send + Sync {
    /// `stat` is the file's size and mtime from just before it was read.
    fn admit(&self, doc: &DocRef, stat: Option<FileStat>) -> bool;
}

impl Admission for crate::journal::Journal {
    fn admit(&self, doc: &DocRef, stat: Option<FileStat>) -> bool {
        crate::journal::Journal::admit(self, doc, stat)
    }
}

/// Builds a worker's detector (or recogniser) on the worker's own thread, so
/// each worker owns its ONNX Runtime sessions.
pub type DetectorFactory = Arc<dyn Fn() -> anyhow::Result<Detector> + Send + Sync>;
pub type RecogniserFactory = Arc<dyn Fn() -> anyhow::Result<Recogniser> + Send + Sync>;
pub type ExtractorFactory =
    Arc<dyn Fn() -> anyhow::Result<Box<dyn write::DocExtractor>> + Send + Sync>;

/// How a run fills in extracted fields.
pub enum Extractor {
    /// On finished documents, in the write stage (the layout engine).
    Documents(ExtractorFactory),
    /// A vision-language model in its own stage, fed page images by the
    /// render stage.
    Vlm(VlmResources),
}

/// What the VLM stage needs.
pub struct VlmResources {
    /// Builds the engine, once per run, on the stage's thread.
    pub engine: VlmFactory,
    pub schema: Arc<FieldSchema>,
    /// `extract.on_invalid` and `extract.review_below`.
    pub policy: RecordPolicy,
    /// Most pages in one generation call (`extract.batch_size`).
    pub batch_size: usize,
    /// `extract.tasks` (`fields` and the others run on the same batches).
    pub tasks: Vec<crate::extract::vlm::tasks::Task>,
    /// `source` of the task rows: the model folder's name.
    pub source: String,
}

/// What the layout stage needs (`layout:`).
pub struct LayoutResources {
    /// Builds a worker's model, on the worker's thread.
    pub factory: LayoutFactory,
    /// Workers, each with its own session, taking pages from one queue.
    pub workers: usize,
    pub rows: LayoutRows,
}

/// What a run needs besides the pipeline file.
pub struct Resources {
    /// PDFium shared library; `None` makes every PDF a failed row.
    pub pdfium: Option<PathBuf>,
    /// Fills in extracted fields; `None` for OCR-only pipelines.
    pub extractor: Option<Extractor>,
    /// OCR models; `None` is allowed only with `ocr.mode: never` (pages
    /// that need OCR then fail).
    pub detector: Option<DetectorFactory>,
    pub recogniser: Option<RecogniserFactory>,
    /// The layout model; `None` without a `layout` section.
    pub layout: Option<LayoutResources>,
    pub model_ids: Vec<String>,
}

/// Figures for the end-of-run summary.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    pub docs: u64,
    pub docs_ok: u64,
    pub docs_partial: u64,
    pub docs_failed: u64,
    pub pages: u64,
    pub pages_text_layer: u64,
    pub pages_ocr: u64,
    pub pages_empty: u64,
    pub lines: u64,
    /// `regions` rows written (pipelines with `layout` or a VLM `od` task).
    pub regions: u64,
    /// `captions` rows written (a VLM caption task).
    pub captions: u64,
    /// What the layout stage did, with a layout model.
    pub layout: Option<LayoutStats>,
    pub elapsed: Duration,
    /// Busy time per stage, summed over its workers.
    pub stage_busy: Vec<(&'static str, Duration)>,
    /// Failed documents by error class.
    pub failures: Vec<(String, u64)>,
    /// Largest recognition batch formed.
    pub max_rec_batch: usize,
    /// Documents given an extracted record (pipelines with `extract`).
    pub records: u64,
    /// Of those, records that do not satisfy the field schema.
    pub records_invalid: u64,
    /// Fields marked for review (`extract.review_below`), and the records
    /// that have at least one; `None` without a threshold.
    pub review: Option<(u64, u64)>,
    /// The extractor's own line (e.g. VLM tokens/s), when it has one.
    pub extract_report: Option<String>,
    /// Stage and queue figures, and the bottleneck.
    pub metrics: metrics::RunMetrics,
    /// Files read and then skipped because their content was already done
    /// (see [`Admission`]).
    pub skipped: u64,
    /// The run was stopped ([`RunOptions::stop`]) before every file was read.
    pub stopped: bool,
}

impl RunSummary {
    pub fn pages_per_second(&self) -> f64 {
        self.pages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A short human summary, several lines.
    pub fn render(&self) -> String {
        let mut s = format!(
            "documents: {} ({} ok, {} partial, {} failed)\n\
             pages:     {} ({} text layer, {} OCR, {} empty), {} lines\n\
             time:      {:.1}s, {:.2} pages/s\n",
            self.docs,
            self.docs_ok,
            self.docs_partial,
            self.docs_failed,
            self.pages,
            self.pages_text_layer,
            self.pages_ocr,
            self.pages_empty,
            self.lines,
            self.elapsed.as_secs_f64(),
            self.pages_per_second()
        );
        let stages: Vec<String> = self
            .stage_busy
            .iter()
            .map(|(n, d)| format!("{n} {:.1}s", d.as_secs_f64()))
            .collect();
        s.push_str(&format!("stages:    {} busy\n", stages.join(", ")));
        let m = &self.metrics;
        if !m.bottleneck.is_empty() {
            s.push_str(&format!("bottleneck: {}\n", m.bottleneck_reason));
        }
        let b = &m.recognition_batches;
        if b.batches > 0 {
            s.push_str(&format!(
                "batches:   recognition {} calls, {:.1} crops each on average, at most {} (batch_size {})\n",
                b.batches,
                b.mean(),
                b.max,
                b.limit
            ));
        }
        if let Some(l) = &self.layout {
            s.push_str(&format!(
                "layout:    {} regions on {} pages, {:.0} ms a page\n",
                self.regions,
                l.pages,
                l.busy.as_secs_f64() * 1000.0 / (l.pages.max(1) as f64)
            ));
        }
        if self.records > 0 {
            s.push_str(&format!(
                "records:   {} extracted, {} valid, {} invalid against the field schema\n",
                self.records,
                self.records - self.records_invalid,
                self.records_invalid
            ));
        }
        if let Some((fields, records)) = self.review {
            s.push_str(&format!(
                "review:    {fields} fields in {records} records under extract.review_below or required and not found\n"
            ));
        }
        if let Some(r) = &self.extract_report {
            s.push_str(&format!("extract:   {r}\n"));
        }
        if !self.failures.is_empty() {
            let f: Vec<String> = self
                .failures
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            s.push_str(&format!("failures:  {}\n", f.join(", ")));
        }
        if self.skipped > 0 {
            s.push_str(&format!(
                "skipped:   {} (read, content already done)\n",
                self.skipped
            ));
        }
        s
    }
}

/// Channel capacities. Small on purpose: they bound memory, not throughput.
#[derive(Clone, Copy, Debug)]
pub struct Capacities {
    pub files: usize,
    pub docs: usize,
    pub pages: usize,
    pub crops: usize,
    pub results: usize,
    pub finished: usize,
}

impl Default for Capacities {
    fn default() -> Self {
        Self {
            files: 16,
            docs: 2,
            pages: 4,
            crops: 4,
            results: 16,
            finished: 4,
        }
    }
}

/// How the render stage runs PDFium.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Renderer {
    /// In this process, on `runtime.workers` threads that PDFium's lock
    /// serialises: no isolation from a crash or hang, no parallel rendering.
    /// For tests and library use, where the docpipe binary may not be at
    /// hand.
    #[default]
    InProcess,
    /// In a pool of `runtime.workers` worker processes running `program`
    /// (the docpipe binary) with its hidden render-worker subcommand; see
    /// [`crate::worker`]. What `docpipe run` uses.
    Workers { program: PathBuf },
}

/// A run's input files, produced lazily in listing order.
pub type Files = Box<dyn Iterator<Item = anyhow::Result<SourceFile>> + Send>;

/// The files a run reads, as a stream, never collected (so memory does not
/// grow with their number).
pub struct Listing {
    pub files: Files,
    /// How many files `files` yields, where the caller knows it (e.g. from a
    /// journal's [`crate::journal::Plan`]): the progress total. `None`
    /// leaves the total unknown (no ETA) until the stream ends.
    pub total: Option<u64>,
}

impl Listing {
    /// A stream whose length is known.
    pub fn counted(files: Files, total: u64) -> Self {
        Self {
            files,
            total: Some(total),
        }
    }
}

pub struct RunOptions {
    pub quiet: bool,
    /// How PDFs are rendered; images are decoded in this process either way.
    pub renderer: Renderer,
    pub capacities: Capacities,
    /// Counters shared with the caller (tests watch `files_listed`).
    pub counters: Arc<Counters>,
    /// The files to read, in order; `None` walks `pipeline.input` lazily
    /// ([`crate::ingest::walk`]) and counts it for the progress total in a
    /// second streaming pass on a background thread. A run journal passes
    /// the listing filtered by its [`crate::journal::Plan`].
    pub files: Option<Listing>,
    /// Asked about each file once it is read and hashed; `None` admits all.
    pub admission: Option<Arc<dyn Admission>>,
    /// Graceful drain: once it reads `true`, the lister stops and ingest
    /// reads no further file; documents already read are finished and
    /// written, and `run` returns with [`RunSummary::stopped`] set.
    pub stop: Option<watch::Receiver<bool>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            quiet: false,
            renderer: Renderer::default(),
            capacities: Capacities::default(),
            counters: Arc::new(Counters::default()),
            files: None,
            admission: None,
            stop: None,
        }
    }
}

/// Counts the files of `input` on a background thread (a second lazy walk:
/// no file is held) and sets the progress total when done. Best effort: a
/// listing error is the run's lister's to report.
fn count_in_background(input: crate::config::InputConfig, progress: Arc<Progress>) {
    let spawned = std::thread::Builder::new()
        .name("docpipe-count".into())
        .spawn(move || {
            if let Ok(walk) = crate::storage::list(&input) {
                let n = walk.map_while(Result::ok).count();
                progress.set_total(n as u64);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot count the input; the progress has no total");
    }
}

/// Whether `stop` has been set.
fn is_stopped(stop: &Option<watch::Receiver<bool>>) -> bool {
    stop.as_ref().is_some_and(|s| *s.borrow())
}

/// Threads for the detection and recognition models, from `runtime.threads`.
///
/// A number is split between the two: half (at least 1) to detection, the
/// rest (at least 1) to recognition. `0` (auto) gives each of the two one
/// thread per core: they run at once, and which of them is the slower one
/// changes with the pages (recognition on text-dense receipts, detection on
/// large scanned pages), so each may use every core while the other waits;
/// ONNX Runtime's threads do not spin, so the two share the cores when both
/// are busy. On 2 cores (1 + 2 before) that read 1.20 against 1.13 receipts/s
/// (10 SROIE receipts) and 0.95 against 0.79 pages/s (12 scanned PDF pages of
/// `bench/run`'s scanned-pdf set), two runs each.
pub fn thread_split(threads: usize) -> (usize, usize) {
    if threads == 0 {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        return (cores, cores);
    }
    let det = (threads / 2).max(1);
    (det, threads.saturating_sub(det).max(1))
}

/// How the OCR models share the machine: detection as `det_workers`
/// sessions of `det_threads` intra-op threads each, recognition as
/// `rec_workers` sessions of `rec_threads`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OcrThreads {
    pub det_workers: usize,
    pub det_threads: usize,
    pub rec_workers: usize,
    pub rec_threads: usize,
}

/// Recognition calls are small (a few 48-px crops), and one ONNX Runtime
/// session spreads them poorly over threads: on 2 cores, two one-thread
/// sessions read 1.04 receipts/s against 0.94 for one two-thread session
/// (`scripts/eval-ocr --limit 20`, two runs each), for 140 MiB more memory.
/// Recognition's threads from [`thread_split`] therefore go to one-thread
/// sessions while there are fewer than four, and to two-thread sessions
/// beyond, which halves the sessions' memory on large machines.
///
/// Detection's pre- and post-processing (resizing, the box search, cutting
/// out and classifying crops) runs on its worker's thread between model
/// calls, so one worker cannot keep many cores (or a GPU) busy: from four
/// detection threads on, they go to two-thread workers, each on its own
/// pages.
pub fn ocr_threads(threads: usize) -> OcrThreads {
    let (det, rec) = thread_split(threads);
    let (det_workers, det_threads) = if det < 4 { (1, det) } else { (det / 2, 2) };
    let per = if rec < 4 { 1 } else { 2 };
    OcrThreads {
        det_workers,
        det_threads,
        rec_workers: (rec / per).max(1),
        rec_threads: per,
    }
}

/// Runs a pipeline to the end and returns its summary. Errors here stop the
/// run (listing the input, loading models, writing output); problems with one
/// document become its `failed` row instead.
pub async fn run<S: DocSink + 'static>(
    pipeline: &Pipeline,
    resources: Resources,
    sink: S,
    opts: RunOptions,
) -> anyhow::Result<(RunSummary, S)> {
    let started = Instant::now();
    let progress = Arc::new(Progress::new(opts.counters.clone(), opts.quiet));
    let (files, total): (Files, Option<u64>) = match opts.files {
        Some(l) => (l.files, l.total),
        None => {
            let walk = crate::storage::list(&pipeline.input)?;
            count_in_background(pipeline.input.clone(), progress.clone());
            (Box::new(walk.map(|f| f.map_err(anyhow::Error::from))), None)
        }
    };
    if let Some(n) = total {
        progress.set_total(n);
    }
    let stamp = assemble::RowStamp {
        pipeline: pipeline.name.clone(),
        config_hash: pipeline.config_hash(),
        model_ids: resources.model_ids.clone(),
    };
    let caps = opts.capacities;
    let (file_tx, file_rx) = async_channel::bounded(caps.files);
    let (doc_tx, doc_rx) = async_channel::bounded(caps.docs);
    let (page_tx, page_rx) = async_channel::bounded(caps.pages);
    let (crop_tx, crop_rx) = async_channel::bounded(caps.crops);
    let (res_tx, res_rx) = async_channel::bounded(caps.results);
    let (fin_tx, fin_rx) = async_channel::bounded(caps.finished);
    let (doc_extractor, vlm_res) = match resources.extractor {
        Some(Extractor::Documents(f)) => (Some(f), None),
        Some(Extractor::Vlm(v)) => (None, Some(v)),
        None => (None, None),
    };
    // Room for a full batch, so the model's next call can take one while
    // it works on this one.
    let (vlm_tx, vlm_rx) = match &vlm_res {
        Some(v) => {
            let (tx, rx) = async_channel::bounded(v.batch_size.max(caps.pages).max(1));
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    // Room for a page per worker and as many waiting.
    let (layout_tx, layout_rx) = match &resources.layout {
        Some(l) => {
            let (tx, rx) = async_channel::bounded((2 * l.workers).max(caps.pages).max(1));
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let sampling_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        use metrics::Probe;
        let probes = vec![
            Probe::new("files", "list", "ingest", &file_rx),
            Probe::new("docs", "ingest", "render", &doc_rx),
            Probe::new("pages", "render", "detect", &page_rx),
            Probe::new("crops", "detect", "recognise", &crop_rx),
            Probe::new("results", "recognise", "assemble", &res_rx),
            Probe::new("finished", "assemble", "extract", &fin_rx),
        ]
        .into_iter()
        .chain(
            vlm_rx
                .as_ref()
                .map(|rx| Probe::new("vlm_pages", "render", "extract", rx)),
        )
        .chain(
            layout_rx
                .as_ref()
                .map(|rx| Probe::new("layout_pages", "render", "layout", rx)),
        )
        .collect();
        tokio::spawn(metrics::sample(probes, sampling_done.clone()))
    };

    let counters = opts.counters.clone();
    let stop = opts.stop.clone();
    // Walking folders is file-system work: on a blocking thread. Once `stop`
    // is set it sends nothing more; a send blocked on a full channel ends
    // when ingest, stopping, drops its end.
    let lister = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for f in files {
            if is_stopped(&stop) {
                break;
            }
            let f = f.context("listing the input")?;
            if file_tx.send_blocking(f).is_err() {
                break;
            }
            counters.files_listed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });

    let p = progress.clone();
    let r = res_tx.clone();
    let admission = opts.admission.clone();
    let ingest_stop = opts.stop.clone();
    let settings = ingest::IngestSettings {
        limits: pipeline.limits.clone(),
        doc_timeout: Duration::from_secs(pipeline.runtime.doc_timeout_s),
    };
    // Object storage answers each read after tens of milliseconds: several
    // reads in flight keep the models fed. A local disk needs one.
    let fetchers = if pipeline
        .input
        .paths
        .iter()
        .any(|p| crate::storage::url::is_remote(p) || crate::storage::is_manifest(p))
    {
        pipeline.runtime.fetch_concurrency.max(1)
    } else {
        1
    };
    let ingest = tokio::task::spawn_blocking(move || {
        let each = pool::run_pool("docpipe-ingest", fetchers, || {
            Ok(ingest::ingest(
                &settings,
                &p,
                file_rx.clone(),
                doc_tx.clone(),
                r.clone(),
                admission.as_deref(),
                &|| is_stopped(&ingest_stop),
            ))
        });
        // Dropped here, not when the last thread's clone goes: the stages
        // after see their input end once every fetcher is done.
        drop((file_rx, doc_tx, r));
        each.map(|v| {
            v.into_iter()
                .fold((Duration::ZERO, 0u64), |(b, n), (b2, n2)| (b + b2, n + n2))
        })
    });
    let r = res_tx.clone();
    let pdfium = resources.pdfium.clone();
    let renderer = opts.renderer.clone();
    // The layout model gets the VLM's page images: 150 dpi is more than
    // its 608x800 input needs.
    let settings = render::RenderStage {
        vlm_dpi: (vlm_tx.is_some() || layout_tx.is_some()).then_some(VLM_DPI),
        ..render::RenderStage::from_pipeline(pipeline)
    };
    let images = render::ImageQueues {
        vlm: vlm_tx,
        layout: layout_tx,
    };
    let render = tokio::task::spawn_blocking(move || {
        render::render(settings, pdfium, renderer, doc_rx, page_tx, images, r)
    });
    let layout_rows = resources.layout.as_ref().map(|l| l.rows.clone());
    let layout_workers = resources.layout.as_ref().map_or(0, |l| l.workers);
    let layout_stage = match (resources.layout, layout_rx) {
        (Some(l), Some(rx)) => {
            let r = res_tx.clone();
            Some(tokio::task::spawn_blocking(move || {
                layout::layout_pool(&l.factory, l.workers, rx, r)
            }))
        }
        _ => None,
    };
    let vlm_fields = vlm_res.as_ref().map(|v| assemble::VlmFields {
        schema: v.schema.clone(),
        policy: v.policy,
        source: v.source.clone(),
    });
    let vlm_stage = match (vlm_res, vlm_rx) {
        (Some(v), Some(rx)) => {
            let r = res_tx.clone();
            Some(tokio::task::spawn_blocking(move || {
                vlm::vlm_stage(&v.engine, v.batch_size, &v.tasks, rx, r)
            }))
        }
        _ => None,
    };

    let models = resources.detector.clone();
    let r = res_tx.clone();
    let layout = ocr_threads(pipeline.runtime.threads);
    let detect = tokio::task::spawn_blocking(move || {
        detect::detect_pool(models, layout.det_workers, page_rx, crop_tx, r)
    });
    let models = resources.recogniser.clone();
    let p = progress.clone();
    let settings = recognise::RecogniseSettings {
        batch_size: pipeline.ocr.batch_size,
        min_confidence: pipeline.ocr.min_confidence,
        source: pipeline.ocr.engine.as_str(),
    };
    let recog = tokio::task::spawn_blocking(move || {
        recognise::recognise_pool(&settings, &p, models, layout.rec_workers, crop_rx, res_tx)
    });
    let assemble = tokio::task::spawn_blocking(move || {
        let how = assemble::Finish {
            stamp: &stamp,
            vlm: vlm_fields.as_ref(),
            layout: layout_rows.as_ref(),
        };
        assemble::assemble(how, res_rx, fin_tx)
    });
    let p = progress.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let x = doc_extractor.map(|f| f()).transpose()?;
        write::write(&p, fin_rx, sink, x)
    });

    // A listing error stops the run, once what was listed is finished.
    let listed = lister.await?;
    let (ingest_busy, skipped) = ingest.await??;
    let (render_busy, render_threads) = render.await?;
    let (detect_busy, normalise_busy) = detect.await??;
    let (rec_busy, max_batch) = recog.await??;
    let vlm_stats = match vlm_stage {
        Some(h) => Some(h.await??),
        None => None,
    };
    let layout_stats = match layout_stage {
        Some(h) => Some(h.await??),
        None => None,
    };
    assemble.await??;
    let (mut summary, sink, mut extract_busy, write_busy) = writer.await??;
    listed?;
    if let Some(v) = &vlm_stats {
        extract_busy += v.busy;
        summary.extract_report = Some(v.report());
    }
    sampling_done.store(true, Ordering::Relaxed);
    let queues = sampler.await.unwrap_or_default();
    progress.finish();
    summary.elapsed = started.elapsed();
    summary.max_rec_batch = max_batch;
    summary.skipped = skipped;
    summary.stopped = is_stopped(&opts.stop);
    summary.stage_busy = vec![
        ("ingest", ingest_busy),
        ("render", render_busy),
        ("normalise", normalise_busy),
        ("detect", detect_busy),
        ("recognise", rec_busy),
        ("extract", extract_busy),
    ];
    let layout_busy = layout_stats.as_ref().map(|l| l.busy);
    if let Some(busy) = layout_busy {
        summary.stage_busy.push(("layout", busy));
    }
    summary.layout = layout_stats;
    let elapsed = summary.elapsed;
    let stage = |name, threads, busy| metrics::StageStats::new(name, threads, busy, elapsed);
    let mut m = metrics::RunMetrics {
        elapsed_s: elapsed.as_secs_f64(),
        documents: summary.docs,
        pages: summary.pages,
        pages_per_s: summary.pages_per_second(),
        stages: vec![
            stage("ingest", fetchers, ingest_busy),
            stage("render", render_threads, render_busy),
            stage("normalise", layout.det_workers, normalise_busy),
            stage("detect", layout.det_workers, detect_busy),
            stage("recognise", layout.rec_workers, rec_busy),
            stage("extract", 1, extract_busy),
            stage("write", 1, write_busy),
        ]
        .into_iter()
        .chain(layout_busy.map(|busy| stage("layout", layout_workers, busy)))
        .collect(),
        queues,
        recognition_batches: metrics::BatchStats {
            limit: pipeline.ocr.batch_size,
            batches: opts.counters.rec_batches.load(Ordering::Relaxed),
            crops: opts.counters.rec_crops.load(Ordering::Relaxed),
            max: max_batch,
        },
        ..metrics::RunMetrics::default()
    };
    m.decide();
    summary.metrics = m;
    Ok((summary, sink))
}

#[cfg(test)]
mod tests {
    use super::{ocr_threads, thread_split, OcrThreads};

    #[test]
    fn ocr_threads_go_to_small_sessions() {
        let t = |det_workers, det_threads, rec_workers, rec_threads| OcrThreads {
            det_workers,
            det_threads,
            rec_workers,
            rec_threads,
        };
        // (runtime.threads, expected layout)
        let cases = [
            (1, t(1, 1, 1, 1)),
            (2, t(1, 1, 1, 1)),
            (3, t(1, 1, 2, 1)),
            (4, t(1, 2, 2, 1)),
            (8, t(2, 2, 2, 2)),
            (16, t(4, 2, 4, 2)),
        ];
        for (threads, want) in cases {
            assert_eq!(ocr_threads(threads), want, "threads {threads}");
        }
    }

    #[test]
    fn auto_threads_give_each_model_every_core() {
        assert_eq!(thread_split(1), (1, 1));
        assert_eq!(thread_split(2), (1, 1));
        assert_eq!(thread_split(3), (1, 2));
        assert_eq!(thread_split(16), (8, 8));
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        assert_eq!(thread_split(0), (cores, cores));
    }
}
