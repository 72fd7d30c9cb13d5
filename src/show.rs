//! `docpipe show`: one page of a run drawn with its text lines and the
//! extracted fields' boxes, to a PNG, for checking an extraction by eye.
//!
//! The page image is made again from the input the run read (PDF pages
//! rendered by PDFium at the page's `dpi`, images decoded with their EXIF
//! orientation, then turned as the run turned the page (`pages.rotation`
//! beyond the `/Rotate` or EXIF turn: the orientation classifier's and the
//! direction vote's), as the pipeline does), so the boxes in the tables
//! land on the pixels they were measured on. Drawn on it:
//! - each `lines` row's polygon, thin and blue, with its `line_index` to its left;
//! - each field of the `documents` row that has a `<field>__bbox` column
//!   (x0, y0, x1, y1 in page pixels) and whose `<field>__page` is the page
//!   shown, as a thick orange-red box with `name: value` above it;
//! - each `regions` row of the page (a run with `layout`), under the rest:
//!   a box in a colour per class, labelled `region_index class score`
//!   inside its top-left corner.

pub mod draw;
pub mod font;
pub mod read;

use crate::fetch::Cache;
use crate::ingest::{self, Kind};
use crate::types::Point;
use draw::{FieldMark, LineMark, RegionMark, Style, VlmMark};
use image::RgbImage;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};

/// Which document to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `documents.doc_id`, exactly.
    DocId(String),
    /// A substring of `documents.uri`; exactly one document must match.
    UriContains(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::DocId(id) => write!(f, "with doc_id {id:?}"),
            Target::UriContains(s) => write!(f, "whose uri contains {s:?}"),
        }
    }
}

/// What to show and where to write it.
#[derive(Clone, Debug, PartialEq)]
pub struct ShowOptions {
    /// The run's output folder, holding `documents/`, `pages/` and `lines/`.
    pub output_dir: PathBuf,
    pub target: Target,
    /// Page index, 0-based.
    pub page: u32,
    /// The PNG to write; `None`: [`default_out`] in the current folder.
    pub out: Option<PathBuf>,
    pub style: Style,
}

/// What [`show`] drew.
#[derive(Clone, Debug, PartialEq)]
pub struct Shown {
    pub path: PathBuf,
    pub doc_id: String,
    pub uri: String,
    pub page: u32,
    /// Size of the PNG, pixels.
    pub width: u32,
    pub height: u32,
    /// Text lines outlined.
    pub lines: usize,
    /// Fields boxed (those on this page).
    pub fields: usize,
    /// Layout regions boxed.
    pub regions: usize,
    /// The VLM's boxes drawn (`od` regions and `ocr_with_region` quads).
    pub vlm_boxes: usize,
    /// Things the picture may be wrong about: the input changed or is gone
    /// since the run (then the page is drawn on white), a size mismatch.
    pub warnings: Vec<String>,
}

impl Shown {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} page {} ({}x{} px, {} lines, {} fields, {} regions, {} VLM boxes)",
            self.path.display(),
            self.uri,
            self.page,
            self.width,
            self.height,
            self.lines,
            self.fields,
            self.regions,
            self.vlm_boxes
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("no document {target} among the {documents} documents in {dir}")]
    NotFound {
        dir: PathBuf,
        target: String,
        documents: usize,
    },
    #[error("{count} documents {target}, e.g. {}; give a longer part of the uri or --doc", examples.join(", "))]
    Ambiguous {
        target: String,
        count: usize,
        examples: Vec<String>,
    },
    #[error("document {doc_id} has no page {page} (pages in the output: {available})")]
    NoSuchPage {
        doc_id: String,
        page: u32,
        available: String,
    },
    #[error("cannot re-create page {page} of {uri}, and the pages table gives no size to draw on: {message}")]
    NoImage {
        uri: String,
        page: u32,
        message: String,
    },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
}

impl ShowError {
    /// The command line named something the output does not hold (a
    /// document, a page); the rest are I/O or data problems.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ShowError::NotFound { .. } | ShowError::Ambiguous { .. } | ShowError::NoSuchPage { .. }
        )
    }
}

/// `<doc_id>-p<page>.png`.
pub fn default_out(doc_id: &str, page: u32) -> PathBuf {
    let safe: String = doc_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(format!("{safe}-p{page}.png"))
}

/// Pixel limit for re-creating a page: twice the page's size in the pages
/// table, and never under 100 megapixels (the pipeline's default
/// `limits.max_image_megapixels`), so an image the run read is read again.
fn max_pixels(width_px: i32, height_px: i32) -> u64 {
    let w = u64::try_from(width_px).unwrap_or(0);
    let h = u64::try_from(height_px).unwrap_or(0);
    w.saturating_mul(h).saturating_mul(2).max(100_000_000)
}

/// Resolution PDF pages are rendered at when the pages table has no `dpi`:
/// the pipeline's default `render.dpi`.
const DEFAULT_DPI: f32 = 200.0;

/// The local path of a `file://` uri (docpipe writes them unencoded); other
/// uris are taken as paths.
pub fn uri_path(uri: &str) -> PathBuf {
    PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri))
}

/// Draws the page `opts` names and writes it as a PNG.
pub fn show(opts: &ShowOptions, cache: &Cache) -> Result<Shown, ShowError> {
    let doc = read::find_document(&opts.output_dir, &opts.target)?;
    let page = match read::find_page(&opts.output_dir, &doc.doc_id, opts.page)? {
        Ok(p) => p,
        Err(available) => {
            let available = if available.is_empty() {
                match &doc.status {
                    Some(s) => format!("none; the document is {s}"),
                    None => "none".to_string(),
                }
            } else {
                available
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(ShowError::NoSuchPage {
                doc_id: doc.doc_id,
                page: opts.page,
                available,
            });
        }
    };
    let lines = read::find_lines(&opts.output_dir, &doc.doc_id, opts.page)?;
    let regions = read::find_regions(&opts.output_dir, &doc.doc_id, opts.page)?;
    let mut warnings = Vec::new();
    if let Some(e) = &page.error {
        warnings.push(format!("the page failed in the run: {e}"));
    }
    let want = (
        u32::try_from(page.width_px).unwrap_or(0),
        u32::try_from(page.height_px).unwrap_or(0),
    );
    let mut img = match page_image(&doc, &page, opts.page, cache, &mut warnings) {
        Ok(img) => {
            if img.dimensions() != want {
                warnings.push(format!(
                    "the page image is {}x{} px but the run recorded {}x{}; boxes may be off",
                    img.width(),
                    img.height(),
                    want.0,
                    want.1
                ));
            }
            img
        }
        Err(message) if want.0 > 0 && want.1 > 0 => {
            warnings.push(format!(
                "cannot re-create the page image ({message}); drawing on a blank page"
            ));
            RgbImage::from_pixel(want.0, want.1, image::Rgb([255, 255, 255]))
        }
        Err(message) => {
            return Err(ShowError::NoImage {
                uri: doc.uri,
                page: opts.page,
                message,
            })
        }
    };
    // The VLM's own boxes (`od` regions, `ocr_with_region` quads) get their
    // own style, with labels; the text's lines and the layout's regions are
    // drawn as before.
    let (vlm_lines, lines): (Vec<_>, Vec<_>) = lines
        .into_iter()
        .partition(|l| read::is_vlm_source(&l.source));
    let (vlm_regions, regions): (Vec<_>, Vec<_>) = regions
        .into_iter()
        .partition(|r| read::is_vlm_source(&r.source));
    let vlm_marks: Vec<VlmMark> = vlm_regions
        .iter()
        .map(|r| VlmMark {
            label: format!("{} {} {:.2}", r.source, r.class, r.score),
            outline: r.bbox.to_quad().to_vec(),
        })
        .chain(vlm_lines.iter().map(|l| VlmMark {
            label: format!("{} {}", l.source, l.text),
            outline: outline_of(l),
        }))
        .collect();
    let line_marks: Vec<LineMark> = lines
        .iter()
        .map(|l| LineMark {
            index: l.line_index,
            outline: outline_of(l),
        })
        .collect();
    let single_page = doc.pages == Some(1);
    let field_marks: Vec<FieldMark> = doc
        .fields
        .iter()
        .filter(|f| match f.page {
            Some(p) => i64::from(p) == i64::from(opts.page),
            // No page recorded: only unambiguous on a one-page document.
            None => single_page,
        })
        .map(|f| FieldMark {
            label: match &f.value {
                Some(v) if !v.is_empty() => format!("{}: {}", f.name, v),
                _ => f.name.clone(),
            },
            bbox: f.bbox,
        })
        .collect();
    let region_marks: Vec<RegionMark> = regions
        .iter()
        .map(|r| RegionMark {
            class: r.class.clone(),
            label: format!("{} {} {:.2}", r.region_index, r.class, r.score),
            bbox: r.bbox,
        })
        .collect();
    draw::draw_regions(&mut img, &region_marks, &opts.style);
    draw::draw_vlm(&mut img, &vlm_marks, &opts.style);
    draw::annotate(&mut img, &line_marks, &field_marks, &opts.style);
    let path = opts
        .out
        .clone()
        .unwrap_or_else(|| default_out(&doc.doc_id, opts.page));
    write_png(&img, &path)?;
    Ok(Shown {
        path,
        doc_id: doc.doc_id,
        uri: doc.uri,
        page: opts.page,
        width: img.width(),
        height: img.height(),
        lines: line_marks.len(),
        fields: field_marks.len(),
        regions: region_marks.len(),
        vlm_boxes: vlm_marks.len(),
        warnings,
    })
}

fn write_png(img: &RgbImage, path: &Path) -> Result<(), ShowError> {
    let err = |message: String| ShowError::Write {
        path: path.to_path_buf(),
        message,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
    }
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| err(e.to_string()))
}

/// Re-creates the page image the run measured its boxes on; the error is a
/// message for the user.
fn page_image(
    doc: &read::DocRow,
    page: &read::PageRow,
    index: u32,
    cache: &Cache,
    warnings: &mut Vec<String>,
) -> Result<RgbImage, String> {
    let path = uri_path(&doc.uri);
    let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(want) = &doc.sha256 {
        let got = hex::encode(Sha256::digest(&data));
        if &got != want {
            warnings.push(format!(
                "{} has changed since the run (sha256 {got}, was {want}); boxes may not match",
                path.display()
            ));
        }
    }
    let limit = max_pixels(page.width_px, page.height_px);
    match ingest::sniff(&data) {
        Kind::Pdf => {
            let lib = cache.pdfium_library().map_err(|e| e.to_string())?;
            let pdfium = crate::pdf::library(&lib).map_err(|e| e.to_string())?;
            let pdf = crate::pdf::PdfDoc::open(pdfium, &data).map_err(|e| e.to_string())?;
            let dpi = page.dpi.filter(|d| d.is_finite() && *d > 0.0);
            let p = pdf.page_at(index).map_err(|e| e.to_string())?;
            let r = p
                .render(dpi.unwrap_or(DEFAULT_DPI), limit)
                .map_err(|e| e.to_string())?;
            Ok(turned_as_read(r.image, page.rotation - p.info().rotation))
        }
        kind @ (Kind::Png | Kind::Jpeg | Kind::Tiff | Kind::Webp | Kind::Bmp) => {
            crate::decode::decode_page(kind, &data, index, limit)
                .map(|p| turned_as_read(p.image, page.rotation - p.rotation))
                .map_err(|e| e.to_string())
        }
        other => Err(format!("{} is not a document ({other:?})", path.display())),
    }
}

/// `image` turned by the run's own turns, `degrees` clockwise (a multiple of
/// 90; anything else leaves it as it is).
fn turned_as_read(image: RgbImage, degrees: i32) -> RgbImage {
    match crate::normalise::QuarterTurn::from_degrees(degrees) {
        Some(turn) => turn.apply(&image),
        None => image,
    }
}

/// The outline drawn for a line: its polygon, or its box when the polygon
/// is missing.
pub fn outline_of(line: &read::LineRow) -> Vec<Point> {
    if line.polygon.len() == 4 {
        line.polygon.clone()
    } else {
        line.bbox.to_quad().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_names() {
        assert_eq!(uri_path("file:///a/b c.png"), PathBuf::from("/a/b c.png"));
        assert_eq!(uri_path("/x/y.pdf"), PathBuf::from("/x/y.pdf"));
        assert_eq!(default_out("0123abcd", 2), PathBuf::from("0123abcd-p2.png"));
        assert_eq!(default_out("../x", 0), PathBuf::from("___x-p0.png"));
    }

    #[test]
    fn pixel_limit_covers_the_page() {
        assert_eq!(max_pixels(0, 0), 100_000_000);
        assert_eq!(max_pixels(-5, 10), 100_000_000);
        assert_eq!(max_pixels(20_000, 10_000), 400_000_000);
        assert_eq!(max_pixels(i32::MAX, i32::MAX), (i32::MAX as u64).pow(2) * 2);
    }

    #[test]
    fn usage_errors_are_told_apart() {
        let not_found = ShowError::NotFound {
            dir: "out".into(),
            target: Target::UriContains("x".into()).to_string(),
            documents: 3,
        };
        assert!(not_found.is_usage());
        assert_eq!(
            not_found.to_string(),
            "no document whose uri contains \"x\" among the 3 documents in out"
        );
        let write = ShowError::Write {
            path: "a.png".into(),
            message: "denied".into(),
        };
        assert!(!write.is_usage());
    }
}
