//! A record validated against the user's schema.
//!
//! The record's JSON (field name to value, absent fields left out) goes
//! through the `jsonschema` crate with format checking on (so a `date` must be
//! a real `YYYY-MM-DD` date). Every error is kept with its instance path
//! (a JSON Pointer; empty for the record itself, e.g. a missing `required`
//! field), keyword and message. A value the schema accepts but its column
//! cannot hold (an integer beyond `Int64`, a number beyond its decimal
//! precision) is reported too, with keyword `type`: it is stored as null.

use std::collections::BTreeSet;

use super::error::pointer_join;
use super::record::Record;
use super::schema::FieldSchema;

/// One way in which a record does not satisfy the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// JSON Pointer into the record, e.g. `/total` or `/items/0/qty`; empty
    /// for the record itself (e.g. a missing `required` field).
    pub instance_path: String,
    /// The JSON Schema keyword that failed, e.g. `required`, `type`, `format`.
    pub keyword: String,
    /// Human-readable message.
    pub message: String,
}

/// A record with the outcome of its validation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extracted {
    pub record: Record,
    /// Empty when the record is valid.
    pub errors: Vec<ValidationError>,
    /// Top-level fields the schema lists as `required` that were not found.
    pub missing_required: Vec<String>,
    /// Fields a person should check (see [`Extracted::mark_review`]);
    /// `None` when no threshold was set.
    pub review: Option<BTreeSet<String>>,
}

impl Extracted {
    /// Validate `record` against `schema` and keep both.
    pub fn new(record: Record, schema: &FieldSchema) -> Self {
        let errors = schema.validate(&record);
        let missing_required = schema
            .required()
            .into_iter()
            .filter(|f| !record.fields.contains_key(f))
            .collect();
        Self {
            record,
            errors,
            missing_required,
            review: None,
        }
    }

    /// Marks for review every found field whose confidence is under
    /// `below`, and every required field that was not found.
    pub fn mark_review(&mut self, below: f32) {
        let mut set: BTreeSet<String> = self
            .record
            .fields
            .iter()
            .filter(|(_, v)| v.confidence < below)
            .map(|(k, _)| k.clone())
            .collect();
        set.extend(self.missing_required.iter().cloned());
        self.review = Some(set);
    }

    /// `F__review` of `field`: `None` without a threshold, or for an
    /// optional field that was not found (nothing to check).
    pub fn needs_review(&self, field: &str) -> Option<bool> {
        let set = self.review.as_ref()?;
        if set.contains(field) {
            Some(true)
        } else {
            self.record.fields.contains_key(field).then_some(false)
        }
    }

    /// How many fields are marked for review.
    pub fn review_count(&self) -> usize {
        self.review.as_ref().map_or(0, BTreeSet::len)
    }

    /// Whether the record satisfies the schema.
    pub fn valid(&self) -> bool {
        self.errors.is_empty()
    }
}

impl FieldSchema {
    /// Validate a record's JSON (field name to value) against the schema.
    /// Also reports, with keyword `type`, values that pass the schema but
    /// would not fit their column (e.g. an integer beyond `Int64`), since
    /// those are stored as null.
    pub fn validate(&self, record: &Record) -> Vec<ValidationError> {
        let json = record.to_json();
        let mut out: Vec<ValidationError> = self
            .validator()
            .iter_errors(&json)
            .map(|e| ValidationError {
                instance_path: e.instance_path().as_str().to_string(),
                keyword: e.kind().keyword().to_string(),
                message: e.to_string(),
            })
            .collect();
        for f in self.fields() {
            let Some(v) = record.fields.get(&f.name) else {
                continue;
            };
            let path = pointer_join("", &f.name);
            let reported = out.iter().any(|e| {
                e.instance_path == path || e.instance_path.starts_with(&format!("{path}/"))
            });
            if !reported && !f.ty.accepts(&v.value) {
                out.push(ValidationError {
                    instance_path: path,
                    keyword: "type".into(),
                    message: format!(
                        "{} does not fit a {} column",
                        v.value,
                        f.ty.column_type_name()
                    ),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::record::FieldValue;
    use serde_json::{json, Value};

    fn record(pairs: &[(&str, Value)]) -> Record {
        Record {
            fields: pairs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        FieldValue {
                            value: v.clone(),
                            confidence: 1.0,
                            page: Some(0),
                            bbox: None,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn errors_carry_path_and_keyword() {
        let schema = FieldSchema::from_value(json!({
            "type": "object",
            "required": ["total", "date"],
            "properties": {
                "date": {"type": "string", "format": "date"},
                "total": {"type": "number", "minimum": 0},
                "qty": {"type": "integer"},
                "price": {"type": "number", "x-docpipe": {"decimal": [4, 2]}},
                "currency": {"enum": ["EUR", "USD"]},
                "items": {"type": "array", "items": {"type": "object",
                    "properties": {"n": {"type": "integer"}}}}
            }
        }))
        .unwrap();
        struct Case {
            record: Record,
            want: &'static [(&'static str, &'static str)],
        }
        let cases = [
            Case {
                record: record(&[("date", json!("2018-12-25")), ("total", json!(9.0))]),
                want: &[],
            },
            Case {
                record: record(&[("date", json!("2018-12-25"))]),
                want: &[("", "required")],
            },
            Case {
                record: record(&[("date", json!("2018-02-30")), ("total", json!(-1))]),
                want: &[("/date", "format"), ("/total", "minimum")],
            },
            Case {
                record: record(&[
                    ("date", json!("2018-12-25")),
                    ("total", json!("9.00")),
                    ("currency", json!("GBP")),
                ]),
                want: &[("/currency", "enum"), ("/total", "type")],
            },
            Case {
                record: record(&[
                    ("date", json!("2018-12-25")),
                    ("total", json!(1)),
                    ("items", json!([{"n": 1}, {"n": "x"}])),
                ]),
                want: &[("/items/1/n", "type")],
            },
            // Valid JSON Schema, but the column cannot hold it.
            Case {
                record: record(&[
                    ("date", json!("2018-12-25")),
                    ("total", json!(1)),
                    ("price", json!(123.45)),
                ]),
                want: &[("/price", "type")],
            },
        ];
        for c in cases {
            let e = Extracted::new(c.record, &schema);
            let mut got: Vec<(String, String)> = e
                .errors
                .iter()
                .map(|e| (e.instance_path.clone(), e.keyword.clone()))
                .collect();
            got.sort();
            let want: Vec<(String, String)> = c
                .want
                .iter()
                .map(|(p, k)| (p.to_string(), k.to_string()))
                .collect();
            assert_eq!(got, want);
            assert_eq!(e.valid(), c.want.is_empty());
            assert!(e.errors.iter().all(|e| !e.message.is_empty()));
        }
        let too_precise = Extracted::new(
            record(&[
                ("date", json!("2018-12-25")),
                ("total", json!(1)),
                ("price", json!(123.45)),
            ]),
            &schema,
        );
        assert_eq!(
            too_precise.errors[0].message,
            "123.45 does not fit a decimal128(4, 2) column"
        );
    }

    #[test]
    fn review_marks_low_confidence_and_missing_required() {
        let schema = FieldSchema::from_value(json!({
            "type": "object",
            "required": ["total", "date"],
            "properties": {
                "date": {"type": "string"},
                "total": {"type": "number"},
                "note": {"type": "string"},
                "ref": {"type": "string"}
            }
        }))
        .unwrap();
        let mut r = record(&[("total", json!(9.0)), ("note", json!("x"))]);
        r.fields.get_mut("note").unwrap().confidence = 0.4;
        let mut x = Extracted::new(r, &schema);
        assert_eq!(x.missing_required, ["date"]);
        assert_eq!(x.needs_review("note"), None, "no threshold, no flag");
        x.mark_review(0.6);
        assert_eq!(x.needs_review("total"), Some(false));
        assert_eq!(x.needs_review("note"), Some(true));
        assert_eq!(x.needs_review("date"), Some(true), "required, not found");
        assert_eq!(x.needs_review("ref"), None, "optional, not found");
        assert_eq!(x.review_count(), 2);
    }
}
