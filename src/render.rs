//! Reading one PDF with PDFium, as a stream of events.
//!
//! [`render_pdf`] opens a document and walks its pages: a page whose text
//! layer is usable (or any page when OCR is off) becomes a
//! [`RenderEvent::TextPage`], other pages are rendered into a
//! [`RenderEvent::Image`] with the affine that maps its pixels to PDF points,
//! and a page that cannot be read becomes a [`RenderEvent::PageError`];
//! with a VLM, every page also gives its [`RenderEvent::VlmImage`]. The
//! same function runs in the pipeline's own process (tests, library use) and
//! inside a render worker process ([`crate::worker`]), which serialises the
//! events to its parent; the pipeline turns them into its messages in one
//! place, so both paths give the same rows.

use crate::config::{OcrMode, Pipeline};
use crate::pdf::{self, Affine, PageInfo, PdfDoc, PdfError, TextLayer};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// What the renderer needs from the pipeline, small enough to send to a
/// worker with every document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenderSettings {
    /// Render resolution, dots per inch (`render.dpi`, default 200).
    pub dpi: f32,
    /// Read the text layer (false with `ocr.mode: always`).
    pub read_text_layer: bool,
    /// Render pages without a usable text layer for OCR (false with
    /// `ocr.mode: never`, whose such pages come out empty).
    pub render_for_ocr: bool,
    /// A text layer with fewer readable characters counts as absent
    /// (`ocr.min_text_layer_chars`, default 8).
    pub min_text_layer_chars: usize,
    /// Most pages read from one document (`limits.max_pages`).
    pub max_pages: u32,
    /// Most pixels in one rendered page (`limits.max_image_megapixels`).
    pub max_image_pixels: u64,
    /// Read only pages `first..end` (clamped to the document); `None` reads
    /// them all. The render stage sets it per request when it shares a long
    /// PDF's pages between its threads.
    #[serde(default)]
    pub pages: Option<(u32, u32)>,
}

impl RenderSettings {
    pub fn from_pipeline(p: &Pipeline) -> Self {
        Self {
            dpi: p.render.dpi,
            read_text_layer: p.ocr.mode != OcrMode::Always,
            render_for_ocr: p.ocr.mode != OcrMode::Never,
            min_text_layer_chars: p.ocr.min_text_layer_chars,
            max_pages: p.limits.max_pages,
            max_image_pixels: p.limits.max_image_pixels,
            pages: None,
        }
    }
}

/// Why a whole document could not be read. The `documents.error_class`
/// values of the render stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// PDFium itself is missing or cannot be loaded.
    Render,
    Encrypted,
    Corrupt,
    Empty,
    TooManyPages,
    /// A bug tripped by the document (a panic).
    Internal,
    /// A render worker spent longer than `runtime.doc_timeout_s` on it.
    Timeout,
    /// A render worker died while reading it.
    Crashed,
    /// A render worker grew past `runtime.worker_memory_mb` while reading it.
    OutOfMemory,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Render => "render",
            ErrorClass::Encrypted => "encrypted",
            ErrorClass::Corrupt => "corrupt",
            ErrorClass::Empty => "empty",
            ErrorClass::TooManyPages => "too_many_pages",
            ErrorClass::Internal => "internal",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Crashed => "crashed",
            ErrorClass::OutOfMemory => "out_of_memory",
        }
    }
}

/// A document-level failure: one `failed` row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct DocFailure {
    pub class: ErrorClass,
    pub message: String,
}

impl DocFailure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
        }
    }
}

/// One step of reading a document. Every page gives exactly one of
/// `TextPage`, `Image` or `PageError`, in page order, after one `Start`;
/// with a VLM resolution ([`render_pdf_for`]) each is followed by the
/// page's `VlmImage`.
/// `ms` is the time spent on that page, milliseconds; the first page's also
/// holds the time to open the document.
#[derive(Debug)]
pub enum RenderEvent {
    /// The document opened; this many pages follow.
    Start { pages: u32 },
    /// A page read from its text layer. `usable` is false when the layer is
    /// too thin to count and OCR is off (the page comes out empty).
    TextPage {
        index: u32,
        info: PageInfo,
        layer: TextLayer,
        usable: bool,
        ms: f64,
    },
    /// A page rendered for OCR.
    Image {
        index: u32,
        info: PageInfo,
        image: RgbImage,
        to_points: Affine,
        ms: f64,
    },
    /// A page that could not be read. `info` is `None` when even its size
    /// could not be read.
    PageError {
        index: u32,
        info: Option<PageInfo>,
        message: String,
        ms: f64,
    },
    /// The page's image for a vision-language model or the layout model,
    /// rendered at their resolution (only when one was asked for): one per
    /// page, right after the page's `TextPage`, `Image` or `PageError`,
    /// text-layer pages included. `Err` says why the page has no such
    /// image. `to_points` maps its pixels to PDF user-space points.
    VlmImage {
        index: u32,
        image: Result<RgbImage, String>,
        to_points: Option<Affine>,
        ms: f64,
    },
}

/// Reads a PDF from memory with the PDFium library at `lib`, handing each
/// event to `emit`. `emit` returns false when nobody listens any more; the
/// walk then stops and this returns `Ok(false)`. `Ok(true)` means every page
/// (of `settings.pages`, when set; `Start` always counts the whole document)
/// was emitted; `Err` means the document as a whole could not be read (no
/// page event was emitted then, unless it is an `Internal` failure).
pub fn render_pdf(
    lib: &Path,
    data: &[u8],
    settings: &RenderSettings,
    emit: &mut dyn FnMut(RenderEvent) -> bool,
) -> Result<bool, DocFailure> {
    render_pdf_for(lib, data, settings, None, emit)
}

/// [`render_pdf`], and with `vlm_dpi` also each page's image for a
/// vision-language model at that resolution (dots per inch), as a
/// [`RenderEvent::VlmImage`] after the page's own event. The two images of
/// a page are made one after the other, and each is handed to `emit` as
/// soon as it is made: no more than one page is held.
pub fn render_pdf_for(
    lib: &Path,
    data: &[u8],
    settings: &RenderSettings,
    vlm_dpi: Option<f32>,
    emit: &mut dyn FnMut(RenderEvent) -> bool,
) -> Result<bool, DocFailure> {
    let pdfium =
        pdf::library(lib).map_err(|e| DocFailure::new(ErrorClass::Render, e.to_string()))?;
    let t_open = Instant::now();
    let doc = PdfDoc::open(pdfium, data).map_err(|e| match e {
        PdfError::Encrypted => DocFailure::new(ErrorClass::Encrypted, e.to_string()),
        other => DocFailure::new(ErrorClass::Corrupt, other.to_string()),
    })?;
    let count = doc.page_count();
    if count == 0 {
        return Err(DocFailure::new(ErrorClass::Empty, "the PDF has no pages"));
    }
    if count > settings.max_pages {
        return Err(DocFailure::new(
            ErrorClass::TooManyPages,
            format!(
                "the PDF has {count} pages, over the limit of {} (limits.max_pages)",
                settings.max_pages
            ),
        ));
    }
    if !emit(RenderEvent::Start { pages: count }) {
        return Ok(false);
    }
    let dpi = settings.dpi;
    let mut open_ms = ms_since(t_open);
    let range = match settings.pages {
        Some((first, end)) => first.min(count)..end.min(count),
        None => 0..count,
    };
    for index in range {
        let t = Instant::now();
        let _span = tracing::trace_span!("page", page = index).entered();
        let mut took = || ms_since(t) + std::mem::take(&mut open_ms);
        // One load per page: PDFium parses the content streams on load,
        // which is most of a text-layer page's cost.
        let page = match doc.page_at(index) {
            Ok(p) => p,
            Err(e) => {
                let message = e.to_string();
                let ev = RenderEvent::PageError {
                    index,
                    info: None,
                    message: message.clone(),
                    ms: took(),
                };
                if !emit(ev) {
                    return Ok(false);
                }
                if vlm_dpi.is_some() {
                    let ev = RenderEvent::VlmImage {
                        index,
                        image: Err(message),
                        to_points: None,
                        ms: 0.0,
                    };
                    if !emit(ev) {
                        return Ok(false);
                    }
                }
                continue;
            }
        };
        let info = page.info();
        let layer = if settings.read_text_layer {
            page.text_layer(dpi).ok()
        } else {
            None
        };
        let usable = layer
            .as_ref()
            .is_some_and(|l| l.readable_chars >= settings.min_text_layer_chars);
        let ev = if usable || !settings.render_for_ocr {
            RenderEvent::TextPage {
                index,
                info,
                layer: layer.unwrap_or_default(),
                usable,
                ms: took(),
            }
        } else {
            match page.render(dpi, settings.max_image_pixels) {
                Ok(r) => RenderEvent::Image {
                    index,
                    info,
                    image: r.image,
                    to_points: r.to_points,
                    ms: took(),
                },
                Err(e) => RenderEvent::PageError {
                    index,
                    info: Some(info),
                    message: e.to_string(),
                    ms: took(),
                },
            }
        };
        if !emit(ev) {
            return Ok(false);
        }
        if let Some(vlm_dpi) = vlm_dpi {
            let t = Instant::now();
            let (image, to_points) = match page.render(vlm_dpi, settings.max_image_pixels) {
                Ok(r) => (Ok(r.image), Some(r.to_points)),
                Err(e) => (Err(e.to_string()), None),
            };
            let ev = RenderEvent::VlmImage {
                index,
                image,
                to_points,
                ms: ms_since(t),
            };
            if !emit(ev) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// [`render_pdf_for`] with a panic turned into an `internal` failure, so a bug
/// tripped by one hostile file does not take its process down.
pub fn render_pdf_guarded(
    lib: &Path,
    data: &[u8],
    settings: &RenderSettings,
    vlm_dpi: Option<f32>,
    emit: &mut dyn FnMut(RenderEvent) -> bool,
) -> Result<bool, DocFailure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        render_pdf_for(lib, data, settings, vlm_dpi, emit)
    }))
    .unwrap_or_else(|panic| Err(panic_failure(panic.as_ref())))
}

/// The `internal` failure for a caught panic's payload.
pub fn panic_failure(panic: &(dyn std::any::Any + Send)) -> DocFailure {
    let what = panic_text(panic);
    DocFailure::new(
        ErrorClass::Internal,
        format!("internal error while reading the document: {what}"),
    )
}

/// A panic's message (`panic!` gives a `&str` or a `String`; empty for
/// anything else).
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_ocr_mode() {
        struct Case {
            mode: &'static str,
            read_text_layer: bool,
            render_for_ocr: bool,
        }
        let cases = [
            Case {
                mode: "auto",
                read_text_layer: true,
                render_for_ocr: true,
            },
            Case {
                mode: "always",
                read_text_layer: false,
                render_for_ocr: true,
            },
            Case {
                mode: "never",
                read_text_layer: true,
                render_for_ocr: false,
            },
        ];
        for c in cases {
            let yaml = format!(
                "name: t\ninput: {{path: .}}\nocr: {{mode: {}}}\noutput: {{path: out}}\n",
                c.mode
            );
            let p = Pipeline::parse(&yaml, Path::new("t.yaml"), Path::new("/tmp"))
                .unwrap_or_else(|e| panic!("{e}"));
            let s = RenderSettings::from_pipeline(&p);
            assert_eq!(s.read_text_layer, c.read_text_layer, "{}", c.mode);
            assert_eq!(s.render_for_ocr, c.render_for_ocr, "{}", c.mode);
            assert_eq!(s.dpi, 200.0);
            assert_eq!(s.min_text_layer_chars, 8);
        }
    }

    #[test]
    fn error_classes_have_their_documented_names() {
        let json = serde_json::to_string(&ErrorClass::OutOfMemory).unwrap_or_default();
        assert_eq!(json, "\"out_of_memory\"");
        for c in [
            ErrorClass::Render,
            ErrorClass::Encrypted,
            ErrorClass::Corrupt,
            ErrorClass::Empty,
            ErrorClass::TooManyPages,
            ErrorClass::Internal,
            ErrorClass::Timeout,
            ErrorClass::Crashed,
            ErrorClass::OutOfMemory,
        ] {
            let json = serde_json::to_string(&c).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }

    #[test]
    fn a_panic_becomes_an_internal_failure() {
        let payload: Box<dyn std::any::Any + Send> = Box::new("boom".to_string());
        let f = panic_failure(payload.as_ref());
        assert_eq!(f.class, ErrorClass::Internal);
        assert!(f.message.ends_with("boom"), "{}", f.message);
    }
}
