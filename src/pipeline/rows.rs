//! The one place a page's and a line's rows are made, for text-layer pages,
//! OCR pages and pages that failed alike.

use super::items::{PageDone, PageMeta};
use crate::ocr::engine::polygon;
use crate::output::{LineRow, PageRow, PageSource};
use crate::pdf;
use crate::types::{BBox, Quad};

/// A page's row: its text is its lines' joined by `\n`, its confidence their
/// mean (none without lines).
pub fn page_row(
    meta: &PageMeta,
    size_px: (u32, u32),
    source: PageSource,
    skew_deg: f32,
    lines: &[LineRow],
    error: Option<String>,
) -> PageRow {
    let text = lines
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let mean_confidence = (!lines.is_empty())
        .then(|| lines.iter().map(|l| l.confidence).sum::<f32>() / lines.len() as f32);
    PageRow {
        doc_id: meta.doc_id.clone(),
        page_index: meta.index as i32,
        width_px: size_px.0 as i32,
        height_px: size_px.1 as i32,
        dpi: meta.dpi,
        width_pt: meta.size_pt.map(|s| s.0),
        height_pt: meta.size_pt.map(|s| s.1),
        source,
        rotation: meta.rotation,
        skew_deg,
        text,
        mean_confidence,
        line_count: lines.len() as i32,
        error,
    }
}

/// A page that failed: no text, its reason in `pages.error`, and the
/// document's error class when it is a page's (e.g. `timeout`).
pub fn page_error(
    meta: &PageMeta,
    size_px: (u32, u32),
    class: Option<&'static str>,
    message: String,
) -> PageDone {
    PageDone {
        page: page_row(meta, size_px, PageSource::Empty, 0.0, &[], Some(message)),
        lines: Vec::new(),
        error_class: class,
        render_ms: meta.render_ms,
        normalise_ms: 0.0,
        ocr_ms: 0.0,
        turned: meta.turned,
    }
}

/// A page read from its text layer (or an image page with OCR off: no lines).
pub fn text_layer_page(
    meta: &PageMeta,
    size_px: (u32, u32),
    layer: pdf::TextLayer,
    usable: bool,
) -> PageDone {
    let lines: Vec<LineRow> = layer
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| LineRow {
            font_size: l.font_size,
            bold: Some(l.bold),
            ..line_row(
                meta,
                i,
                &l.text,
                1.0,
                &l.bbox_px.to_quad(),
                Some(l.bbox_pt),
                "text_layer",
            )
        })
        .collect();
    let source = if usable && !lines.is_empty() {
        PageSource::TextLayer
    } else {
        PageSource::Empty
    };
    PageDone {
        page: page_row(meta, size_px, source, 0.0, &lines, None),
        lines,
        error_class: None,
        render_ms: meta.render_ms,
        normalise_ms: 0.0,
        ocr_ms: 0.0,
        turned: meta.turned,
    }
}

pub fn line_row(
    meta: &PageMeta,
    index: usize,
    text: &str,
    confidence: f32,
    quad: &Quad,
    bbox_pt: Option<BBox>,
    source: &str,
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
        font_size: None,
        bold: None,
        region_index: None,
        region_class: None,
        source: source.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> PageMeta {
        PageMeta {
            doc_id: "d".into(),
            index: 2,
            dpi: Some(200.0),
            size_pt: Some((612.0, 792.0)),
            rotation: 90,
            to_points: None,
            render_ms: 3.0,
            turned: None,
            uri: std::sync::Arc::from("d.pdf"),
            budget: crate::pipeline::items::DocBudget::new(std::time::Duration::from_secs(1)),
        }
    }

    #[test]
    fn a_page_row_joins_its_lines_and_averages_their_confidence() {
        let m = meta();
        let quad = BBox {
            x0: 1.0,
            y0: 2.0,
            x1: 30.0,
            y1: 12.0,
        }
        .to_quad();
        let lines = vec![
            line_row(&m, 0, "first", 0.5, &quad, None, "ppocr-v6"),
            line_row(&m, 1, "second", 1.0, &quad, None, "ppocr-v6"),
        ];
        let p = page_row(&m, (1700, 2200), PageSource::Ocr, 1.5, &lines, None);
        assert_eq!(p.text, "first\nsecond");
        assert_eq!(p.mean_confidence, Some(0.75));
        assert_eq!((p.line_count, p.page_index, p.rotation), (2, 2, 90));
        assert_eq!((p.width_pt, p.height_pt), (Some(612.0), Some(792.0)));
        let failed = page_error(&m, (0, 0), Some("timeout"), "too slow".into());
        assert_eq!(failed.page.error.as_deref(), Some("too slow"));
        assert_eq!(failed.page.mean_confidence, None);
        assert_eq!(failed.error_class, Some("timeout"));
        assert_eq!(failed.page.source, PageSource::Empty);
    }
}
