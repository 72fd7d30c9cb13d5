//! The work items that travel between the stages, and the clocks they carry.

use crate::extract::vlm::tasks::Task;
use crate::extract::vlm::{PageRecord, TaskResult};
use crate::extract::{Line, PageLines};
use crate::ingest::DocRef;
use crate::normalise::QuarterTurn;
use crate::ocr::engine::Crop;
use crate::output::{CaptionRow, DocumentRow, LineRow, PageRow, RegionRow};
use crate::pdf::Affine;
use crate::regions::page::PageRegions;
use crate::types::BBox;
use image::RgbImage;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A document read into memory.
pub struct DocJob {
    pub doc: DocRef,
    pub data: Vec<u8>,
    pub started_at_us: i64,
    pub ingest_ms: f64,
    /// Its time budget (`runtime.doc_timeout_s`), shared by its pages.
    pub budget: Arc<DocBudget>,
}

impl DocJob {
    /// Facts of page `index` as far as the document knows them; the reader
    /// fills in size, resolution and rotation.
    pub fn page_meta(&self, index: u32) -> PageMeta {
        PageMeta {
            doc_id: self.doc.id.clone(),
            index,
            dpi: None,
            size_pt: None,
            rotation: 0,
            to_points: None,
            render_ms: 0.0,
            turned: None,
            uri: Arc::from(self.doc.uri.as_str()),
            budget: Arc::clone(&self.budget),
        }
    }
}

/// A document's time budget: the work spent on it in every stage (render,
/// detection, recognition), summed over its pages, may not pass
/// `runtime.doc_timeout_s`. Stages charge what they spend and check it
/// between model calls, so a page that would take all night stops within
/// about one model call of the limit.
#[derive(Debug)]
pub struct DocBudget {
    limit: Duration,
    spent_us: AtomicU64,
}

impl DocBudget {
    pub fn new(limit: Duration) -> Arc<Self> {
        Arc::new(Self {
            limit,
            spent_us: AtomicU64::new(0),
        })
    }

    pub fn charge(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.spent_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn spent(&self) -> Duration {
        Duration::from_micros(self.spent_us.load(Ordering::Relaxed))
    }

    pub fn exhausted(&self) -> bool {
        self.exhausted_after(Duration::ZERO)
    }

    /// Whether the budget is spent counting `running`, work not charged
    /// yet (the model call in progress on one of its pages).
    pub fn exhausted_after(&self, running: Duration) -> bool {
        self.spent() + running >= self.limit
    }

    /// The message of a page stopped because the budget ran out.
    pub fn message(&self, what: &str) -> String {
        format!(
            "{what} stopped: the document's work passed {:.1} s, its limit of {} s (runtime.doc_timeout_s)",
            self.spent().as_secs_f64(),
            self.limit.as_secs()
        )
    }
}

/// Facts about a page that travel with it to the assembler.
#[derive(Clone)]
pub struct PageMeta {
    pub doc_id: String,
    pub index: u32,
    pub dpi: Option<f32>,
    pub size_pt: Option<(f32, f32)>,
    pub rotation: i32,
    pub to_points: Option<Affine>,
    pub render_ms: f64,
    /// The turn OCR gave the page after it was rendered (the orientation
    /// classifier's quarter and the direction vote's half): the layout
    /// and VLM stages saw the page before it.
    pub turned: Option<QuarterTurn>,
    /// The document's URI (fault switches and logs).
    pub uri: Arc<str>,
    pub budget: Arc<DocBudget>,
}

/// A page image on its way to OCR.
pub struct PageJob {
    pub meta: PageMeta,
    pub image: RgbImage,
}

/// A page's image on its way to the VLM or the layout stage, made by the
/// render stage (for PDFs in the render workers); `Err` says why the page
/// has none.
#[derive(Clone)]
pub struct PageImage {
    pub meta: PageMeta,
    pub image: Result<RgbImage, String>,
    /// Maps a pixel of `image` to PDF user-space points (PDF pages).
    pub to_points: Option<Affine>,
    /// Time spent making the image, milliseconds.
    pub render_ms: f64,
}

/// A page's layout regions, on their way to the assembler.
pub struct RegionsDone {
    pub doc_id: String,
    pub page: u32,
    /// What the model found, or why it found nothing (`class` `None` for a
    /// failed model call, `internal` for a panic, `timeout` for a spent
    /// budget).
    pub result: Result<PageRegions, PageFailure>,
    /// Time spent making the page's image, milliseconds.
    pub render_ms: f64,
}

/// A page's VLM outcome, on its way to the assembler.
pub struct VlmDone {
    pub doc_id: String,
    pub page: u32,
    /// The page's record, or why it has none (`class` `None` for a failed
    /// generation, `internal` for a panic, `timeout` for a spent budget).
    pub result: Result<PageRecord, PageFailure>,
    /// Its other tasks' outcomes (`extract.tasks` besides `fields`), in
    /// the order the pipeline lists them; coordinates in the image's pixels.
    pub tasks: Vec<(Task, Result<TaskResult, PageFailure>)>,
    /// The size of the image the model was given, pixels.
    pub image_size: (u32, u32),
    /// Maps a pixel of that image to PDF points (PDF pages).
    pub to_points: Option<Affine>,
    /// Time spent making the page's image, milliseconds.
    pub render_ms: f64,
}

/// A page's text regions on their way to recognition.
pub struct CropJob {
    pub meta: PageMeta,
    pub size_px: (u32, u32),
    pub result: Result<(Vec<Crop>, f32), PageFailure>,
    pub normalise_ms: f64,
    pub det_ms: f64,
}

/// Why a page failed in a model stage.
#[derive(Clone, Debug, PartialEq)]
pub struct PageFailure {
    /// The class the page gives its document (`timeout`, `internal`);
    /// `None` for a plain page error (its document is `partial` with
    /// `some_pages_failed`, or `failed` with `page_errors`).
    pub class: Option<&'static str>,
    pub message: String,
}

impl PageFailure {
    pub fn error(message: String) -> Self {
        Self {
            class: None,
            message,
        }
    }

    /// `what` (e.g. "OCR of this page") ran past its document's budget.
    pub fn timeout(budget: &DocBudget, what: &str) -> Self {
        Self {
            class: Some("timeout"),
            message: budget.message(what),
        }
    }

    /// A panic in `what` (a bug a page tripped), with the panic's message.
    pub fn panic(what: &str, panic: &(dyn std::any::Any + Send)) -> Self {
        let text = crate::render::panic_text(panic);
        Self {
            class: Some("internal"),
            message: format!("internal error in {what}: {text}"),
        }
    }
}

/// A finished page.
pub struct PageDone {
    pub page: PageRow,
    pub lines: Vec<LineRow>,
    /// The class a failed page gives its document (`timeout`, `internal`);
    /// `None` for a page that did not fail, or whose failure is only a
    /// page error.
    pub error_class: Option<&'static str>,
    pub render_ms: f64,
    pub normalise_ms: f64,
    pub ocr_ms: f64,
    /// As [`PageMeta::turned`]: how the page as read differs from the
    /// image the layout and VLM stages saw.
    pub turned: Option<QuarterTurn>,
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
    /// A page's VLM outcome (pipelines with `extract.engine: vlm`, whose
    /// documents finish when every page has both its text and this).
    Vlm(Box<VlmDone>),
    /// A page's layout regions (pipelines with `layout`, whose documents
    /// finish when every page has its text and this).
    Regions(Box<RegionsDone>),
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A document whose pages are all in, on its way to extraction and the sink.
pub struct FinishedDoc {
    pub doc: DocumentRow,
    pub pages: Vec<PageRow>,
    pub lines: Vec<LineRow>,
    /// Empty without a `layout` section or a VLM `od` task.
    pub regions: Vec<RegionRow>,
    /// Empty without a VLM caption task.
    pub captions: Vec<CaptionRow>,
    /// Pages a stage after their text failed on (layout, the VLM).
    pub stage_failures: Vec<crate::output::StageFailure>,
}

impl FinishedDoc {
    /// The document's lines grouped by page, as the extractors want them.
    pub fn page_lines(&self) -> Vec<PageLines> {
        self.pages
            .iter()
            .map(|p| page_lines(p, self.lines.iter()))
            .collect()
    }
}

/// Page `p`'s lines among `lines`, as the extractors want them.
pub fn page_lines<'a>(p: &PageRow, lines: impl Iterator<Item = &'a LineRow>) -> PageLines {
    PageLines {
        page: p.page_index.max(0) as u32,
        width: p.width_px as f32,
        height: p.height_px as f32,
        lines: lines
            .filter(|l| l.page_index == p.page_index)
            .map(|l| Line {
                text: l.text.clone(),
                bbox: BBox {
                    x0: l.x0,
                    y0: l.y0,
                    x1: l.x1,
                    y1: l.y1,
                },
                confidence: l.confidence,
                font_size: l.font_size,
                bold: l.bold.unwrap_or(false),
            })
            .collect(),
    }
}
