//! What an engine finds: a [`Record`] of [`FieldValue`]s.

use std::collections::BTreeMap;

use crate::types::BBox;

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
