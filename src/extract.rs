//! Field extraction: a user's JSON Schema in, one typed record per document out.
//!
//! - [`schema`]: the JSON Schema is checked and mapped to Arrow columns
//!   ([`FieldSchema`]); unsupported constructs are refused with the JSON
//!   Pointer of the offending place ([`SchemaError`]).
//! - [`layout`]: the embedded engine that finds each field from OCR /
//!   text-layer lines and their positions ([`LayoutEngine`]), with the typed
//!   value parsers of [`parse`].
//! - [`merge`]: per-page records of one document merged into one.
//! - [`adapters`]: engines' output turned into a document's validated record.
//! - [`validate`]: a [`Record`] validated against the user's schema.
//!
//! Every engine returns a [`Record`]: field name to [`FieldValue`] (value,
//! confidence, page and box it came from). Validation turns it into an
//! [`Extracted`] (record + [`ValidationError`]s) which the `documents/`
//! table stores as typed columns.

pub mod adapters;
pub mod layout;
pub mod merge;
pub mod parse;
pub mod schema;
pub mod validate;
pub mod vlm;

use std::collections::BTreeMap;

use crate::types::BBox;

pub use layout::{LayoutEngine, Line, PageLines};
pub use merge::merge_pages;
pub use schema::{FieldDef, FieldSchema, FieldType, Hints, Pick, Position, SchemaError};

/// One extracted value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldValue {
    /// The value, typed as the schema wants it: strings, numbers, booleans,
    /// dates as `"YYYY-MM-DD"`, date-times as RFC 3339, arrays and objects.
    pub value: serde_json::Value,
    /// How sure the engine is, in `[0, 1]` (each engine documents its formula).
    pub confidence: f32,
    /// Page index the value was read from, 0-based; `None` when unknown.
    pub page: Option<u32>,
    /// Box of the text the value was read from, page pixels; `None` when unknown.
    pub bbox: Option<BBox>,
}

/// The fields found in one document (or one page). A field that is absent
/// was not found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    pub fields: BTreeMap<String, FieldValue>,
}

impl Record {
    /// The record as the JSON object that is validated: field name to value.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.fields
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
        )
    }
}

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
}

impl Extracted {
    /// Validate `record` against `schema` and keep both.
    pub fn new(record: Record, schema: &FieldSchema) -> Self {
        let errors = schema.validate(&record);
        Self { record, errors }
    }

    /// Whether the record satisfies the schema.
    pub fn valid(&self) -> bool {
        self.errors.is_empty()
    }
}
