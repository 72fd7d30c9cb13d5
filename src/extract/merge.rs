//! Per-page records of one document merged into one record.
//!
//! Strategy: per field, the value with the highest confidence across pages
//! wins; on a tie the earliest page (the earlier record) wins, so a header
//! field printed on every page is taken from the first. A `null` value counts
//! only when no page has a non-null one, and a NaN confidence ranks lowest.
//! Values are not combined (an array found in part on two pages is taken from
//! one page): combining needs knowledge of the field's meaning.

use super::record::{FieldValue, Record};

fn better(new: &FieldValue, old: &FieldValue) -> bool {
    let rank = |v: &FieldValue| {
        (
            !v.value.is_null(),
            if v.confidence.is_nan() {
                f32::NEG_INFINITY
            } else {
                v.confidence
            },
        )
    };
    let (a, b) = (rank(new), rank(old));
    (a.0 && !b.0) || (a.0 == b.0 && a.1 > b.1)
}

/// Merge per-page records (in page order) into one, field by field.
pub fn merge_pages(records: Vec<Record>) -> Record {
    let mut out = Record::default();
    for r in records {
        for (name, v) in r.fields {
            match out.fields.get(&name) {
                Some(old) if !better(&v, old) => {}
                _ => {
                    out.fields.insert(name, v);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn fv(value: Value, confidence: f32, page: u32) -> FieldValue {
        FieldValue {
            value,
            confidence,
            page: Some(page),
            bbox: None,
        }
    }

    fn rec(fields: Vec<(&str, FieldValue)>) -> Record {
        Record {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    #[test]
    fn highest_confidence_wins_per_field() {
        let merged = merge_pages(vec![
            rec(vec![
                ("number", fv(json!("A-1"), 0.9, 0)),
                ("total", fv(json!(10.0), 0.4, 0)),
                ("date", fv(json!(null), 0.99, 0)),
            ]),
            rec(vec![
                ("number", fv(json!("A-1"), 0.9, 1)),
                ("total", fv(json!(12.5), 0.8, 1)),
                ("date", fv(json!("2024-01-02"), 0.1, 1)),
                ("nan", fv(json!(1), f32::NAN, 1)),
            ]),
            rec(vec![("nan", fv(json!(2), 0.0, 2))]),
        ]);
        assert_eq!(
            merged.fields["number"].page,
            Some(0),
            "tie keeps the first page"
        );
        assert_eq!(merged.fields["total"].value, json!(12.5));
        assert_eq!(merged.fields["total"].page, Some(1));
        assert_eq!(merged.fields["date"].value, json!("2024-01-02"));
        assert_eq!(merged.fields["nan"].value, json!(2));
        assert_eq!(merged.fields.len(), 4);
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(merge_pages(vec![]), Record::default());
        assert_eq!(merge_pages(vec![Record::default()]), Record::default());
    }
}
