//! The extractor adapters: what an engine gives, turned into a document's
//! validated record. They take the extract module's own types ([`PageLines`],
//! [`Line`]), so the pipeline converts its rows and this module depends on
//! neither the pipeline nor the output tables.
//!
//! - [`LayoutFields`]: the layout engine over a document's lines.
//! - [`vlm_page_record`] and [`vlm_document`]: a VLM's per-page records,
//!   each value grounded on the page's lines ([`ground`]), merged per
//!   document by confidence ([`merge_pages`]).

use super::vlm::PageRecord;
use super::{
    merge_pages, Extracted, FieldSchema, FieldValue, LayoutEngine, Line, PageLines, Record,
};
use crate::types::BBox;
use std::sync::Arc;

/// Finds fields from a document's lines and their positions.
pub struct LayoutFields {
    schema: Arc<FieldSchema>,
    engine: LayoutEngine,
}

impl LayoutFields {
    pub fn new(schema: Arc<FieldSchema>) -> Self {
        let engine = LayoutEngine::new(&schema);
        Self { schema, engine }
    }

    /// The document's record, validated against the schema.
    pub fn extract(&self, pages: &[PageLines]) -> Extracted {
        Extracted::new(self.engine.extract(pages), &self.schema)
    }
}

/// One page's VLM record as a [`Record`]: every non-null top-level value,
/// with its field confidence (0 when the model gave none), the page it
/// came from and, since the model gives no boxes, the box of the page's
/// line that holds it ([`ground`]; `None` when it is on no line).
pub fn vlm_page_record(rec: &PageRecord, page: &PageLines) -> Record {
    let mut r = Record::default();
    let serde_json::Value::Object(map) = &rec.value else {
        return r;
    };
    let lines: Vec<&Line> = page.lines.iter().collect();
    for (k, v) in map {
        if v.is_null() {
            continue;
        }
        let confidence = rec.field_confidence.get(k).copied().unwrap_or(0.0);
        r.fields.insert(
            k.clone(),
            FieldValue {
                value: v.clone(),
                confidence,
                page: Some(page.page),
                bbox: ground(v, &lines),
            },
        );
    }
    r
}

/// A document's record from its pages' records (merged by confidence),
/// validated against the schema.
pub fn vlm_document(pages: Vec<Record>, schema: &FieldSchema) -> Extracted {
    Extracted::new(merge_pages(pages), schema)
}

/// Why an invalid record fails its document (`extract.on_invalid: fail`):
/// the count of errors and the first three.
pub fn invalid_message(extracted: &Extracted) -> String {
    let first: Vec<String> = extracted
        .errors
        .iter()
        .take(3)
        .map(|e| format!("{} {}: {}", e.instance_path, e.keyword, e.message))
        .collect();
    format!(
        "the extracted record does not satisfy the schema ({} error(s)): {}",
        extracted.errors.len(),
        first.join("; ")
    )
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
pub fn ground(value: &serde_json::Value, lines: &[&Line]) -> Option<BBox> {
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
            return Some(l.bbox);
        }
        let parts: Vec<(&Line, usize)> = lines
            .iter()
            .zip(&squashed)
            .filter(|(_, s)| s.chars().count() >= 3 && want.contains(s.as_str()))
            .map(|(l, s)| (*l, s.len()))
            .collect();
        let covered: usize = parts.iter().map(|(_, n)| n).sum();
        if !parts.is_empty() && covered * 2 >= want.len() {
            return parts.iter().map(|(l, _)| l.bbox).reduce(|a, b| a.union(&b));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn line(text: &str, y: f32) -> Line {
        Line {
            text: text.into(),
            bbox: BBox {
                x0: 10.0,
                y0: y,
                x1: 200.0,
                y1: y + 20.0,
            },
            confidence: 1.0,
            font_size: None,
            bold: false,
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
        let refs: Vec<&Line> = ls.iter().collect();
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

    #[test]
    fn a_page_record_keeps_non_null_values_with_page_confidence_and_box() {
        let rec = PageRecord {
            value: json!({"vendor": "Acme Trading Sdn Bhd", "total": null, "date": "2018-03-05"}),
            text: String::new(),
            field_confidence: BTreeMap::from([("vendor".to_string(), 0.75)]),
            tokens: 12,
        };
        let page = PageLines {
            page: 3,
            width: 600.0,
            height: 800.0,
            lines: vec![line("ACME TRADING SDN BHD", 40.0)],
        };
        let r = vlm_page_record(&rec, &page);
        assert_eq!(
            r.fields.keys().collect::<Vec<_>>(),
            vec!["date", "vendor"],
            "null values are left out"
        );
        let vendor = &r.fields["vendor"];
        assert_eq!((vendor.page, vendor.confidence), (Some(3), 0.75));
        assert_eq!(vendor.bbox.map(|b| b.y0), Some(40.0));
        let date = &r.fields["date"];
        assert_eq!((date.confidence, date.bbox), (0.0, None));
    }
}
