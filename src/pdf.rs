//! Every PDFium call in docpipe lives in this module.
//!
//! PDFium is process-global and not thread-safe; the library is bound once per
//! process and the pipeline drives it from one thread at a time.

use crate::types::{BBox, Point};
use image::RgbImage;
use pdfium_render::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

#[derive(Debug, Clone, thiserror::Error)]
pub enum PdfError {
    #[error("cannot load PDFium from {path}: {message}")]
    Library { path: String, message: String },
    #[error("the PDF is encrypted and needs a password")]
    Encrypted,
    #[error("the PDF is damaged and cannot be opened: {0}")]
    Corrupt(String),
    #[error("page {page}: {message}")]
    Page { page: u32, message: String },
    #[error("page {page} would render at {width}x{height} px, over the limit of {limit} pixels (limits.max_image_megapixels)")]
    TooManyPixels {
        page: u32,
        width: u32,
        height: u32,
        limit: u64,
    },
}

static PDFIUM: OnceLock<Result<Pdfium, PdfError>> = OnceLock::new();

/// Test-only switch: when set (to anything), [`library`] refuses to bind
/// PDFium in any process but a render worker. Tests set it to show that a
/// run reads its PDFs only in the workers; it is never set in normal use.
pub const WORKERS_ONLY_ENV: &str = "DOCPIPE_TEST_PDFIUM_IN_WORKERS_ONLY";

static RENDER_WORKER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks this process as a render worker (for [`WORKERS_ONLY_ENV`]).
pub fn mark_render_worker() {
    RENDER_WORKER.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The refusal of [`WORKERS_ONLY_ENV`], when it applies to this process.
fn refused(lib: &Path) -> Option<PdfError> {
    let in_worker = RENDER_WORKER.load(std::sync::atomic::Ordering::SeqCst);
    (!in_worker && std::env::var_os(WORKERS_ONLY_ENV).is_some()).then(|| PdfError::Library {
        path: lib.display().to_string(),
        message: format!("refused outside a render worker ({WORKERS_ONLY_ENV} is set)"),
    })
}

/// Binds PDFium from `lib` the first time; later calls return the same binding.
pub fn library(lib: &Path) -> Result<&'static Pdfium, PdfError> {
    if let Some(e) = refused(lib) {
        return Err(e);
    }
    let bound = PDFIUM.get_or_init(|| {
        Pdfium::bind_to_library(lib)
            .map(Pdfium::new)
            .map_err(|e| PdfError::Library {
                path: lib.display().to_string(),
                message: format!("{e:?}"),
            })
    });
    bound.as_ref().map_err(Clone::clone)
}

/// An open PDF document.
pub struct PdfDoc<'a> {
    doc: PdfDocument<'a>,
}

/// Size and orientation of one page.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PageInfo {
    /// Width and height as displayed (after /Rotate), in PDF points (1/72 in).
    pub width_pt: f32,
    pub height_pt: f32,
    /// The page's /Rotate, clockwise degrees (0, 90, 180, 270).
    pub rotation: i32,
}

/// A line of the page's own text layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerLine {
    pub text: String,
    /// In page pixels at the requested DPI (as displayed, /Rotate applied).
    pub bbox_px: BBox,
    /// In PDF user-space points (origin bottom-left, unrotated).
    pub bbox_pt: BBox,
    /// The median font size of the line's characters, points (the font size
    /// times the vertical scale of the character's matrix, so `/F1 1 Tf`
    /// under a `12 0 0 12 Tm` reads 12). The median, not the maximum, so a
    /// drop cap or one large symbol does not make a line large. `None` when
    /// PDFium gave no usable size.
    pub font_size: Option<f32>,
    /// Most of the line's characters are bold: a font weight of 600 or more,
    /// a font name with `Bold`, `Black`, `Heavy` or `Semibold` in it, or the
    /// font's force-bold flag.
    pub bold: bool,
}

/// The text layer of one page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TextLayer {
    pub lines: Vec<LayerLine>,
    /// Characters that read as text (letters, digits, punctuation); a page
    /// with few of these has no usable text layer.
    pub readable_chars: usize,
    /// Characters PDFium could not map to Unicode.
    pub unmapped_chars: usize,
}

/// A page rendered for OCR.
pub struct Rendered {
    pub image: RgbImage,
    /// Maps a pixel of `image` to PDF user-space points.
    pub to_points: Affine,
}

/// `x' = a*x + b*y + c`, `y' = d*x + e*y + f`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine(pub [f32; 6]);

impl Affine {
    pub fn apply(&self, p: Point) -> Point {
        let [a, b, c, d, e, f] = self.0;
        Point::new(a * p.x + b * p.y + c, d * p.x + e * p.y + f)
    }

    /// The box around a pixel box's four mapped corners.
    pub fn apply_bbox(&self, b: &BBox) -> BBox {
        let corners = b.to_quad().map(|p| self.apply(p));
        BBox::around(&corners).unwrap_or_default()
    }
}

fn classify_open_error(e: PdfiumError) -> PdfError {
    match e {
        PdfiumError::PdfiumLibraryInternalError(
            PdfiumInternalError::PasswordError | PdfiumInternalError::SecurityError,
        ) => PdfError::Encrypted,
        PdfiumError::PdfiumLibraryInternalError(inner) => {
            PdfError::Corrupt(format!("PDFium: {inner:?}"))
        }
        other => PdfError::Corrupt(format!("{other:?}")),
    }
}

impl<'a> PdfDoc<'a> {
    /// Opens a document from memory, with no password.
    pub fn open(pdfium: &'a Pdfium, data: &'a [u8]) -> Result<Self, PdfError> {
        let doc = pdfium
            .load_pdf_from_byte_slice(data, None)
            .map_err(classify_open_error)?;
        Ok(Self { doc })
    }

    pub fn page_count(&self) -> u32 {
        self.doc.pages().len().max(0) as u32
    }

    fn page(&self, index: u32) -> Result<PdfPage<'_>, PdfError> {
        self.doc
            .pages()
            .get(index as PdfPageIndex)
            .map_err(|e| PdfError::Page {
                page: index,
                message: format!("cannot load page: {e:?}"),
            })
    }

    /// Loads page `index` once (PDFium parses its content streams) for
    /// [`Page::info`], [`Page::text_layer`] and [`Page::render`].
    pub fn page_at(&self, index: u32) -> Result<Page<'_>, PdfError> {
        Ok(Page {
            page: self.page(index)?,
            index,
        })
    }

    /// Renders a page at `dpi` (the page's /Rotate applied), refusing pages
    /// over `max_pixels` before allocating the bitmap.
    pub fn render(&self, index: u32, dpi: f32, max_pixels: u64) -> Result<Rendered, PdfError> {
        self.page_at(index)?.render(dpi, max_pixels)
    }
}

/// One loaded page of a [`PdfDoc`].
pub struct Page<'a> {
    page: PdfPage<'a>,
    index: u32,
}

impl Page<'_> {
    pub fn info(&self) -> PageInfo {
        let page = &self.page;
        let rotation = match page.rotation() {
            Ok(PdfPageRenderRotation::Degrees90) => 90,
            Ok(PdfPageRenderRotation::Degrees180) => 180,
            Ok(PdfPageRenderRotation::Degrees270) => 270,
            _ => 0,
        };
        PageInfo {
            width_pt: page.width().value,
            height_pt: page.height().value,
            rotation,
        }
    }

    /// Reads the page's text layer, grouped into lines as PDFium breaks them,
    /// with boxes in pixels at `dpi`.
    pub fn text_layer(&self, dpi: f32) -> Result<TextLayer, PdfError> {
        let (page, index) = (&self.page, self.index);
        let text = page.text().map_err(|e| PdfError::Page {
            page: index,
            message: format!("cannot read text layer: {e:?}"),
        })?;
        let config = render_config(dpi);
        let mut layer = TextLayer::default();
        let mut current = String::new();
        let mut bbox: Option<BBox> = None;
        let mut style = LineStyle::default();
        let flush = |current: &mut String,
                     bbox: &mut Option<BBox>,
                     style: &mut LineStyle,
                     layer: &mut TextLayer| {
            let t = current.trim();
            if let (false, Some(b)) = (t.is_empty(), *bbox) {
                let bbox_px = points_box_to_pixels(page, &b, &config);
                layer.lines.push(LayerLine {
                    text: collapse_spaces(t),
                    bbox_px,
                    bbox_pt: b,
                    font_size: style.font_size(),
                    bold: style.bold(),
                });
            }
            current.clear();
            *bbox = None;
            *style = LineStyle::default();
        };
        for ch in text.chars().iter() {
            let Some(c) = ch.unicode_char() else {
                layer.unmapped_chars += 1;
                continue;
            };
            if c == '\r' || c == '\n' {
                flush(&mut current, &mut bbox, &mut style, &mut layer);
                continue;
            }
            if c == '\u{FFFD}' || c == '\u{FFFE}' {
                layer.unmapped_chars += 1;
                continue;
            }
            if c.is_control() && c != '\t' {
                continue;
            }
            if c.is_whitespace() {
                current.push(' ');
                continue;
            }
            if c.is_alphanumeric() || c.is_ascii_punctuation() {
                layer.readable_chars += 1;
            }
            current.push(c);
            style.add(&ch);
            if let Ok(r) = ch.loose_bounds() {
                let b = BBox {
                    x0: r.left().value,
                    y0: r.bottom().value,
                    x1: r.right().value,
                    y1: r.top().value,
                };
                if b.width() > 0.0 || b.height() > 0.0 {
                    bbox = Some(bbox.map_or(b, |old| old.union(&b)));
                }
            }
        }
        flush(&mut current, &mut bbox, &mut style, &mut layer);
        Ok(layer)
    }

    /// Renders the page at `dpi` (its /Rotate applied), refusing pages over
    /// `max_pixels` before allocating the bitmap.
    pub fn render(&self, dpi: f32, max_pixels: u64) -> Result<Rendered, PdfError> {
        let (page, index) = (&self.page, self.index);
        let scale = dpi / 72.0;
        let w = (page.width().value * scale).round().max(1.0) as u32;
        let h = (page.height().value * scale).round().max(1.0) as u32;
        if u64::from(w) * u64::from(h) > max_pixels {
            return Err(PdfError::TooManyPixels {
                page: index,
                width: w,
                height: h,
                limit: max_pixels,
            });
        }
        let config = render_config(dpi);
        let bitmap = page
            .render_with_config(&config)
            .map_err(|e| PdfError::Page {
                page: index,
                message: format!("cannot render: {e:?}"),
            })?;
        let image = bitmap
            .as_image()
            .map_err(|e| PdfError::Page {
                page: index,
                message: format!("cannot read rendered bitmap: {e:?}"),
            })?
            .to_rgb8();
        let (iw, ih) = image.dimensions();
        let p0 = pixel_to_points(page, 0, 0, &config);
        let px = pixel_to_points(page, iw as i32, 0, &config);
        let py = pixel_to_points(page, 0, ih as i32, &config);
        let (iw, ih) = (iw.max(1) as f32, ih.max(1) as f32);
        let to_points = Affine([
            (px.x - p0.x) / iw,
            (py.x - p0.x) / ih,
            p0.x,
            (px.y - p0.y) / iw,
            (py.y - p0.y) / ih,
            p0.y,
        ]);
        Ok(Rendered { image, to_points })
    }
}

/// The font sizes and boldness of one line's visible characters.
#[derive(Default)]
struct LineStyle {
    sizes: Vec<f32>,
    bold: usize,
    chars: usize,
}

impl LineStyle {
    fn add(&mut self, ch: &PdfPageTextChar) {
        self.chars += 1;
        // The vertical scale is the length of the matrix's y column, so a
        // rotated or flipped line reads the same size.
        let scale = ch
            .matrix()
            .map(|m| m.c().hypot(m.d()))
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(1.0);
        let size = ch.unscaled_font_size().value * scale;
        if size.is_finite() && size > 0.0 {
            self.sizes.push(size);
        }
        if is_bold(ch) {
            self.bold += 1;
        }
    }

    fn font_size(&self) -> Option<f32> {
        median(&self.sizes)
    }

    fn bold(&self) -> bool {
        self.chars > 0 && 2 * self.bold > self.chars
    }
}

fn is_bold(ch: &PdfPageTextChar) -> bool {
    let heavy = ch.font_weight().is_some_and(|w| match w {
        PdfFontWeight::Weight600
        | PdfFontWeight::Weight700Bold
        | PdfFontWeight::Weight800
        | PdfFontWeight::Weight900 => true,
        PdfFontWeight::Custom(w) => (600..=1000).contains(&w),
        _ => false,
    });
    heavy || ch.font_is_bold_reenforced() || bold_font_name(&ch.font_name())
}

/// A font name that says bold (`Helvetica-Bold`, `ABCDEF+Arial-BoldMT`,
/// `Roboto-Black`, `OpenSans-Semibold`).
fn bold_font_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["bold", "black", "heavy", "semibold", "demibold"]
        .iter()
        .any(|w| n.contains(w))
}

/// The median of `xs` (the mean of the middle two for an even count).
fn median(xs: &[f32]) -> Option<f32> {
    let mut v = xs.to_vec();
    v.sort_by(f32::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn render_config(dpi: f32) -> PdfRenderConfig {
    PdfRenderConfig::new()
        .scale_page_by_factor(dpi / 72.0)
        .render_form_data(true)
        .render_annotations(true)
}

fn pixel_to_points(page: &PdfPage, x: i32, y: i32, config: &PdfRenderConfig) -> Point {
    page.pixels_to_points(x, y, config)
        .map(|(px, py)| Point::new(px.value, py.value))
        .unwrap_or_default()
}

fn points_box_to_pixels(page: &PdfPage, b: &BBox, config: &PdfRenderConfig) -> BBox {
    let corners: Vec<Point> = b
        .to_quad()
        .iter()
        .filter_map(|p| {
            page.points_to_pixels(PdfPoints::new(p.x), PdfPoints::new(p.y), config)
                .ok()
                .map(|(x, y)| Point::new(x as f32, y as f32))
        })
        .collect();
    BBox::around(&corners).unwrap_or_default()
}

fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c == ' ' {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_maps_boxes() {
        // 2 px per point, y flipped, origin at the bottom of a 100-pt page.
        let a = Affine([0.5, 0.0, 0.0, 0.0, -0.5, 100.0]);
        let b = a.apply_bbox(&BBox {
            x0: 10.0,
            y0: 20.0,
            x1: 30.0,
            y1: 40.0,
        });
        assert_eq!(
            b,
            BBox {
                x0: 5.0,
                y0: 80.0,
                x1: 15.0,
                y1: 90.0
            }
        );
    }

    #[test]
    fn median_of_sizes() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[9.0]), Some(9.0));
        // One large initial does not make the line large.
        assert_eq!(median(&[24.0, 9.0, 9.0]), Some(9.0));
        assert_eq!(median(&[10.0, 12.0, 9.0, 20.0]), Some(11.0));
    }

    #[test]
    fn bold_font_names() {
        for (name, bold) in [
            ("Helvetica-Bold", true),
            ("ABCDEF+Arial-BoldMT", true),
            ("Roboto-Black", true),
            ("OpenSans-Semibold", true),
            ("Helvetica", false),
            ("TimesNewRomanPSMT", false),
            ("", false),
        ] {
            assert_eq!(bold_font_name(name), bold, "{name}");
        }
    }

    #[test]
    fn collapses_runs_of_spaces() {
        assert_eq!(collapse_spaces("a  b   c"), "a b c");
    }
}
