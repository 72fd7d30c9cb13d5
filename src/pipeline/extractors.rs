//! The field extractors the write stage runs: the layout engine over a
//! document's lines, or a VLM over its page images.

use super::write::{DocExtractor, FinishedDoc};
use crate::config::OnInvalid;
use crate::extract::vlm::VlmEngine;
use crate::extract::{merge_pages, FieldValue, Record};
use crate::extract::{Extracted, FieldSchema, LayoutEngine, Line, PageLines};
use crate::ingest::Kind;
use crate::output::DocStatus;
use crate::output::LineRow;
use crate::types::BBox;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Validates a record, attaches it to its document, and fails the document
/// when the pipeline says an invalid record should.
fn attach(d: &mut FinishedDoc, extracted: Extracted, on_invalid: OnInvalid) {
    if !extracted.valid() && on_invalid == OnInvalid::Fail && d.doc.status != DocStatus::Failed {
        d.doc.status = DocStatus::Failed;
        d.doc.error_class = Some("invalid_record".into());
        let first: Vec<String> = extracted
            .errors
            .iter()
            .take(3)
            .map(|e| format!("{} {}: {}", e.instance_path, e.keyword, e.message))
            .collect();
        d.doc.error_message = Some(format!(
            "the extracted record does not satisfy the schema ({} error(s)): {}",
            extracted.errors.len(),
            first.join("; ")
        ));
    }
    d.doc.extracted = Some(extracted);
}

/// The document's lines grouped by page, as the layout engine wants them.
pub fn page_lines(d: &FinishedDoc) -> Vec<PageLines> {
    d.pages
        .iter()
        .map(|p| PageLines {
            page: p.page_index.max(0) as u32,
            width: p.width_px as f32,
            height: p.height_px as f32,
            lines: d
                .lines
                .iter()
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
                })
                .collect(),
        })
        .collect()
}

/// Finds fields from lines and their positions.
pub struct LayoutExtractor {
    schema: Arc<FieldSchema>,
    engine: LayoutEngine,
    on_invalid: OnInvalid,
}

impl LayoutExtractor {
    pub fn new(schema: Arc<FieldSchema>, on_invalid: OnInvalid) -> Self {
        let engine = LayoutEngine::new(&schema);
        Self {
            schema,
            engine,
            on_invalid,
        }
    }
}

impl DocExtractor for LayoutExtractor {
    fn extract(&mut self, docs: &mut [FinishedDoc]) {
        for d in docs {
            if d.doc.status == DocStatus::Failed {
                continue;
            }
            let record = self.engine.extract(&page_lines(d));
            let extracted = Extracted::new(record, &self.schema);
            attach(d, extracted, self.on_invalid);
        }
    }
}

/// Resolution page images are made at for the VLM, dots per inch. The
/// models resize to their own input (768 px for Florence-2, 512 px tiles for
/// SmolVLM): 150 dpi gives a Letter page 1275x1650, enough for both.
const VLM_DPI: f32 = 150.0;

/// Reads fields with an ONNX vision-language model: one record per page
/// (pages of every document in the group batched together), merged per
/// document by confidence ([`merge_pages`]). The model gives no boxes, so
/// each value is grounded on the page's OCR / text-layer lines: the box of
/// the line that contains it ([`ground`]); a value found on no line keeps
/// its page and has no box.
pub struct VlmExtractor {
    schema: Arc<FieldSchema>,
    engine: VlmEngine,
    on_invalid: OnInvalid,
    batch_pages: usize,
    pdfium: Option<PathBuf>,
    max_pixels: u64,
    /// Pages generated, tokens generated and time in generation, for the
    /// summary.
    pages: u64,
    tokens: u64,
    generating: std::time::Duration,
}

impl VlmExtractor {
    pub fn new(
        schema: Arc<FieldSchema>,
        engine: VlmEngine,
        on_invalid: OnInvalid,
        batch_pages: usize,
        pdfium: Option<PathBuf>,
        max_pixels: u64,
    ) -> Self {
        Self {
            schema,
            engine,
            on_invalid,
            batch_pages,
            pdfium,
            max_pixels,
            pages: 0,
            tokens: 0,
            generating: std::time::Duration::ZERO,
        }
    }

    /// The page images of one document, read again from its file.
    fn images(&self, d: &FinishedDoc) -> Result<Vec<image::RgbImage>, String> {
        let data = std::fs::read(&d.path)
            .map_err(|e| format!("cannot read {} again: {e}", d.path.display()))?;
        let mut out = Vec::with_capacity(d.pages.len());
        match d.kind {
            Kind::Pdf => {
                let lib = self.pdfium.as_deref().ok_or("PDFium is not available")?;
                let pdfium = crate::pdf::library(lib).map_err(|e| e.to_string())?;
                let doc = crate::pdf::PdfDoc::open(pdfium, &data).map_err(|e| e.to_string())?;
                for p in &d.pages {
                    let r = doc
                        .render(p.page_index.max(0) as u32, VLM_DPI, self.max_pixels)
                        .map_err(|e| e.to_string())?;
                    out.push(r.image);
                }
            }
            kind => {
                for p in &d.pages {
                    let index = p.page_index.max(0) as u32;
                    let page = crate::decode::decode_page(kind, &data, index, self.max_pixels)
                        .map_err(|e| e.to_string())?;
                    out.push(page.image);
                }
            }
        }
        Ok(out)
    }
}

impl DocExtractor for VlmExtractor {
    fn batch_pages(&self) -> usize {
        self.batch_pages
    }

    fn report(&self) -> Option<String> {
        let secs = self.generating.as_secs_f64();
        Some(format!(
            "VLM {} page(s), {} tokens in {:.1}s: {:.1} pages/s, {:.0} tokens/s",
            self.pages,
            self.tokens,
            secs,
            self.pages as f64 / secs.max(1e-9),
            self.tokens as f64 / secs.max(1e-9)
        ))
    }

    fn extract(&mut self, docs: &mut [FinishedDoc]) {
        // Page images of every document in the group, generated in one go
        // so batches span documents.
        let mut images: Vec<image::RgbImage> = Vec::new();
        let mut owner: Vec<(usize, u32)> = Vec::new();
        let mut failed: Vec<(usize, String)> = Vec::new();
        for (di, d) in docs.iter().enumerate() {
            if d.doc.status == DocStatus::Failed || d.pages.is_empty() {
                continue;
            }
            match self.images(d) {
                Ok(imgs) => {
                    for (p, img) in d.pages.iter().zip(imgs) {
                        owner.push((di, p.page_index.max(0) as u32));
                        images.push(img);
                    }
                }
                Err(e) => failed.push((di, e)),
            }
        }
        let refs: Vec<&image::RgbImage> = images.iter().collect();
        let t = std::time::Instant::now();
        let results = if refs.is_empty() {
            Ok(Vec::new())
        } else {
            self.engine.extract(&refs)
        };
        self.generating += t.elapsed();
        if let Ok(r) = &results {
            self.pages += r.len() as u64;
            self.tokens += r.iter().map(|p| p.tokens as u64).sum::<u64>();
        }
        let mut per_doc: BTreeMap<usize, Vec<Record>> = BTreeMap::new();
        match results {
            Ok(records) => {
                for ((di, page), rec) in owner.iter().zip(records) {
                    let lines: Vec<&LineRow> = docs[*di]
                        .lines
                        .iter()
                        .filter(|l| l.page_index.max(0) as u32 == *page)
                        .collect();
                    let mut r = Record::default();
                    if let serde_json::Value::Object(map) = rec.value {
                        for (k, v) in map {
                            if v.is_null() {
                                continue;
                            }
                            let confidence = rec.field_confidence.get(&k).copied().unwrap_or(0.0);
                            let bbox = ground(&v, &lines);
                            r.fields.insert(
                                k,
                                FieldValue {
                                    value: v,
                                    confidence,
                                    page: Some(*page),
                                    bbox,
                                },
                            );
                        }
                    }
                    per_doc.entry(*di).or_default().push(r);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for (di, _) in &owner {
                    failed.push((*di, msg.clone()));
                }
            }
        }
        for (di, msg) in failed {
            let d = &mut docs[di];
            per_doc.remove(&di);
            if d.doc.status == DocStatus::Ok {
                d.doc.status = DocStatus::Partial;
                d.doc.error_class = Some("extract_failed".into());
                d.doc.error_message = Some(format!("field extraction failed: {msg}"));
            }
        }
        for (di, records) in per_doc {
            let record = merge_pages(records);
            let extracted = Extracted::new(record, &self.schema);
            attach(&mut docs[di], extracted, self.on_invalid);
        }
    }
}

/// Lower-case alphanumerics of `s`, everything else dropped, so "1,234.50"
/// and "1234.50", or "ACME  Ltd." and "acme ltd" compare equal.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric() || *c == '.')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The text forms a value may take on the page.
fn value_texts(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Number(n) => {
            let mut out = vec![n.to_string()];
            if let Some(f) = n.as_f64() {
                out.push(format!("{f:.2}"));
            }
            out
        }
        _ => Vec::new(),
    }
}

/// The box of `value` on its page: the shortest line whose text contains
/// it; else, for a value that spans lines (an address), the union of the
/// lines it contains when they cover at least half of it. `None` when the
/// value is not on the page as text (e.g. a date the model normalised).
pub fn ground(value: &serde_json::Value, lines: &[&LineRow]) -> Option<BBox> {
    let bbox = |l: &LineRow| BBox {
        x0: l.x0,
        y0: l.y0,
        x1: l.x1,
        y1: l.y1,
    };
    for text in value_texts(value) {
        let want = squash(&text);
        if want.chars().count() < 2 {
            continue;
        }
        let squashed: Vec<String> = lines.iter().map(|l| squash(&l.text)).collect();
        if let Some((l, _)) = lines
            .iter()
            .zip(&squashed)
            .filter(|(_, s)| s.contains(&want))
            .min_by_key(|(_, s)| s.len())
        {
            return Some(bbox(l));
        }
        let parts: Vec<(&LineRow, usize)> = lines
            .iter()
            .zip(&squashed)
            .filter(|(_, s)| s.chars().count() >= 3 && want.contains(s.as_str()))
            .map(|(l, s)| (*l, s.len()))
            .collect();
        let covered: usize = parts.iter().map(|(_, n)| n).sum();
        if !parts.is_empty() && covered * 2 >= want.len() {
            return parts
                .iter()
                .map(|(l, _)| bbox(l))
                .reduce(|a, b| a.union(&b));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(text: &str, y: f32) -> LineRow {
        LineRow {
            doc_id: "d".into(),
            page_index: 0,
            line_index: 0,
            text: text.into(),
            confidence: 1.0,
            x0: 10.0,
            y0: y,
            x1: 200.0,
            y1: y + 20.0,
            polygon: Vec::new(),
            bbox_pt: None,
        }
    }

    #[test]
    fn values_are_grounded_on_the_line_that_holds_them() {
        let ls = [
            line("ACME TRADING SDN BHD", 0.0),
            line("12, Jalan Besar,", 30.0),
            line("81100 Johor Bahru", 60.0),
            line("TOTAL RM 1,234.50", 90.0),
        ];
        let refs: Vec<&LineRow> = ls.iter().collect();
        let b = ground(&json!("Acme Trading Sdn Bhd"), &refs).unwrap();
        assert_eq!(b.y0, 0.0);
        let b = ground(&json!(1234.5), &refs).unwrap();
        assert_eq!(b.y0, 90.0);
        // Spans two lines: their union.
        let b = ground(&json!("12, Jalan Besar, 81100 Johor Bahru"), &refs).unwrap();
        assert_eq!((b.y0, b.y1), (30.0, 80.0));
        assert_eq!(ground(&json!("2018-03-05"), &refs), None);
        assert_eq!(ground(&json!(true), &refs), None);
    }
}
