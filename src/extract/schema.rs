//! The user's JSON Schema, checked and read into [`FieldDef`]s.
//!
//! The root must be `{"type": "object", "properties": {...}}`; each top-level
//! property becomes one nullable column of `documents/` (the JSON Schema to
//! Arrow mapping is in `output/field_types.rs`). Accepted: `string` (with
//! `format: date` or `date-time`), `enum` of strings (`type` `string` or
//! absent), `integer`, `number`, `boolean`, `array` with `items`, `object`
//! with `properties` (recursively), and `["T", "null"]` as `T` (every column
//! is nullable).
//!
//! Each top-level field `f` also gets `f__confidence`, `f__page` and
//! `f__bbox` columns; the table ends with `record_valid` and `record_errors`.
//!
//! Refused, each with the JSON Pointer of the place: `$ref` and friends,
//! `oneOf`/`anyOf`/`allOf`/`not`, `patternProperties`, `if`/`then`/`else`,
//! dependent schemas, tuple `items`, a schema-valued `additionalProperties`,
//! type lists other than `[T, "null"]`, non-string enums, a missing type,
//! arrays without `items`, objects without `properties`, and top-level names
//! that collide with the `documents/` table's own columns or end in one of the
//! generated suffixes.
//!
//! # `x-docpipe` hints
//!
//! A property may carry `"x-docpipe": {...}`; any key not listed here or in
//! [`super::layout::hints`] (the layout engine's: `labels`, `exclude`,
//! `pattern`, `pick`, `position`, `after`, ...) is refused. Below the top
//! level only `decimal` applies.
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `decimal` | `[p, s]`, 1 ≤ p ≤ 38, 0 ≤ s ≤ p | a `number` stored as `Decimal128(p, s)` |

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::{err, pointer_join, SchemaError};
use super::field::{FieldDef, FieldType};
use super::layout::hints::{self, Hints};

/// Suffixes of the per-field provenance columns.
pub const CONFIDENCE_SUFFIX: &str = "__confidence";
/// Suffix of the column that marks a field for a person to check.
pub const REVIEW_SUFFIX: &str = "__review";
pub const PAGE_SUFFIX: &str = "__page";
pub const BBOX_SUFFIX: &str = "__bbox";
/// Names of the record-level columns.
pub const RECORD_VALID: &str = "record_valid";
pub const RECORD_ERRORS: &str = "record_errors";

/// The fixed columns of the `documents/` table, in order, which no field
/// may take. `output` builds the table; a test there keeps the two equal.
pub const DOCUMENTS_COLUMNS: &[&str] = &[
    "doc_id",
    "uri",
    "sha256",
    "bytes",
    "mime",
    "pages",
    "status",
    "error_class",
    "error_message",
    "pipeline",
    "config_hash",
    "model_ids",
    "started_at",
    "pages_text_layer",
    "pages_ocr",
    "time_ingest_ms",
    "time_render_ms",
    "time_normalise_ms",
    "time_ocr_ms",
    "time_total_ms",
];

/// A checked JSON Schema of the fields to extract, with a compiled validator.
#[derive(Clone)]
pub struct FieldSchema {
    raw: Value,
    fields: Vec<FieldDef>,
    validator: Arc<jsonschema::Validator>,
}

impl fmt::Debug for FieldSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldSchema")
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl PartialEq for FieldSchema {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

/// Keywords that would make the mapping ambiguous or need references.
const REFUSED: &[(&str, &str)] = &[
    (
        "$ref",
        "references are not supported; write the schema inline",
    ),
    (
        "$dynamicRef",
        "references are not supported; write the schema inline",
    ),
    (
        "$recursiveRef",
        "references are not supported; write the schema inline",
    ),
    ("oneOf", "`oneOf` has no single column type"),
    ("anyOf", "`anyOf` has no single column type"),
    ("allOf", "`allOf` is not supported; merge the schemas"),
    ("not", "`not` is not supported"),
    (
        "patternProperties",
        "`patternProperties` have no fixed columns",
    ),
    ("if", "`if`/`then`/`else` are not supported"),
    ("then", "`if`/`then`/`else` are not supported"),
    ("else", "`if`/`then`/`else` are not supported"),
    ("dependentSchemas", "`dependentSchemas` are not supported"),
    ("dependencies", "`dependencies` are not supported"),
    (
        "prefixItems",
        "tuples have no single item type; use `items`",
    ),
    (
        "unevaluatedProperties",
        "`unevaluatedProperties` is not supported",
    ),
];

/// The `x-docpipe` key read here; the others are the layout engine's.
const DECIMAL: &str = "decimal";

impl FieldSchema {
    /// Read and check a schema file.
    pub fn load(path: &Path) -> Result<FieldSchema, SchemaError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("", format!("cannot read {}: {e}", path.display())))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            err(
                "",
                format!(
                    "{} is not JSON (line {}, column {}): {e}",
                    path.display(),
                    e.line(),
                    e.column()
                ),
            )
        })?;
        Self::from_value(value)
    }

    /// Check a schema given as JSON.
    pub fn from_value(raw: Value) -> Result<FieldSchema, SchemaError> {
        let root = raw
            .as_object()
            .ok_or_else(|| err("", "the schema must be a JSON object"))?;
        check_refused(root, "")?;
        match root.get("type") {
            Some(Value::String(t)) if t == "object" => {}
            Some(_) => return Err(err("/type", "the root must have `\"type\": \"object\"`")),
            None => return Err(err("", "the root must have `\"type\": \"object\"`")),
        }
        let fields = object_fields(root, "", true)?;
        let named: Vec<hints::Named<'_>> = fields
            .iter()
            .map(|f| (f.name.as_str(), f.pointer.as_str(), &f.hints))
            .collect();
        for (f, n) in fields.iter().zip(&named) {
            if is_reserved(&f.name) {
                return Err(err(
                    &f.pointer,
                    format!(
                        "`{}` is a column of the documents table; rename the field",
                        f.name
                    ),
                ));
            }
            if let Some(sfx) = [CONFIDENCE_SUFFIX, PAGE_SUFFIX, BBOX_SUFFIX]
                .iter()
                .find(|s| f.name.ends_with(*s))
            {
                return Err(err(
                    &f.pointer,
                    format!("field names must not end in `{sfx}` (generated columns do)"),
                ));
            }
            hints::check_after_target(*n, &named)?;
        }
        hints::check_after_cycles(&named)?;
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&raw)
            .map_err(|e| {
                err(
                    e.instance_path().as_str(),
                    format!("not a valid JSON Schema: {e}"),
                )
            })?;
        Ok(FieldSchema {
            raw,
            fields,
            validator: Arc::new(validator),
        })
    }

    /// The top-level fields, in the order of the schema's `properties`
    /// (serde_json's `preserve_order` is on, which llguidance needs too).
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    /// One top-level field by name.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The schema as given.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The top-level property names the schema lists as `required`.
    pub fn required(&self) -> Vec<String> {
        self.raw
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The compiled validator of the schema (see `validate.rs`).
    pub(crate) fn validator(&self) -> &jsonschema::Validator {
        &self.validator
    }
}

/// Whether a top-level field may not be called `name`: a fixed column of
/// `documents/` or a record-level one.
fn is_reserved(name: &str) -> bool {
    DOCUMENTS_COLUMNS.contains(&name) || name == RECORD_VALID || name == RECORD_ERRORS
}

fn check_refused(node: &Map<String, Value>, ptr: &str) -> Result<(), SchemaError> {
    for (key, why) in REFUSED {
        if node.contains_key(*key) {
            return Err(err(&pointer_join(ptr, key), *why));
        }
    }
    if let Some(ap) = node.get("additionalProperties") {
        if !ap.is_boolean() {
            return Err(err(
                &pointer_join(ptr, "additionalProperties"),
                "only `true` or `false` is supported: extra properties have no column",
            ));
        }
    }
    Ok(())
}

/// The properties of an object schema node.
fn object_fields(
    node: &Map<String, Value>,
    ptr: &str,
    top: bool,
) -> Result<Vec<FieldDef>, SchemaError> {
    let props_ptr = pointer_join(ptr, "properties");
    let props = match node.get("properties") {
        Some(Value::Object(p)) => p,
        Some(_) => return Err(err(&props_ptr, "`properties` must be an object")),
        None => return Err(err(ptr, "an object needs `properties`")),
    };
    if props.is_empty() {
        return Err(err(&props_ptr, "an object needs at least one property"));
    }
    if let Some(req) = node.get("required") {
        let rptr = pointer_join(ptr, "required");
        let list = req
            .as_array()
            .ok_or_else(|| err(&rptr, "`required` must be a list of names"))?;
        for (i, r) in list.iter().enumerate() {
            let iptr = pointer_join(&rptr, &i.to_string());
            match r.as_str() {
                Some(name) if props.contains_key(name) => {}
                Some(name) => {
                    return Err(err(&iptr, format!("`{name}` is not in `properties`")));
                }
                None => return Err(err(&iptr, "`required` must list names")),
            }
        }
    }
    let mut out = Vec::with_capacity(props.len());
    for (name, schema) in props {
        let fptr = pointer_join(&props_ptr, name);
        if name.is_empty() {
            return Err(err(&fptr, "a property name must not be empty"));
        }
        out.push(field_def(name, schema, &fptr, top)?);
    }
    Ok(out)
}

fn field_def(name: &str, schema: &Value, ptr: &str, top: bool) -> Result<FieldDef, SchemaError> {
    let node = schema
        .as_object()
        .ok_or_else(|| err(ptr, "a property's schema must be an object"))?;
    let (ty, nullable) = node_type(node, ptr)?;
    let (hints, decimal) = read_hints(node, ptr, top, &ty)?;
    let ty = match (&ty, decimal) {
        (FieldType::Number, Some((precision, scale))) => FieldType::Decimal { precision, scale },
        _ => ty,
    };
    let text = |k: &str| node.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(FieldDef {
        name: name.to_string(),
        ty,
        nullable,
        title: text("title"),
        description: text("description"),
        hints,
        pointer: ptr.to_string(),
    })
}

/// The type of a schema node and whether it allows null.
fn node_type(node: &Map<String, Value>, ptr: &str) -> Result<(FieldType, bool), SchemaError> {
    check_refused(node, ptr)?;
    let tptr = pointer_join(ptr, "type");
    let (ty, nullable) = match node.get("type") {
        Some(Value::String(t)) => (Some(t.as_str()), false),
        Some(Value::Array(list)) => {
            let names: Vec<Option<&str>> = list.iter().map(Value::as_str).collect();
            match names.as_slice() {
                [Some(t), Some("null")] | [Some("null"), Some(t)] if *t != "null" => {
                    (Some(*t), true)
                }
                _ => {
                    return Err(err(
                        &tptr,
                        "a type list must be `[T, \"null\"]`: one column has one type",
                    ))
                }
            }
        }
        Some(_) => return Err(err(&tptr, "`type` must be a string")),
        None => (None, false),
    };
    if let Some(e) = node.get("enum") {
        let eptr = pointer_join(ptr, "enum");
        if !matches!(ty, None | Some("string")) {
            return Err(err(&eptr, "only enums of strings are supported"));
        }
        let list = e
            .as_array()
            .ok_or_else(|| err(&eptr, "`enum` must be a list"))?;
        let mut members = Vec::with_capacity(list.len());
        let mut has_null = false;
        for (i, v) in list.iter().enumerate() {
            match v {
                Value::String(s) => members.push(s.clone()),
                Value::Null => has_null = true,
                _ => {
                    return Err(err(
                        &pointer_join(&eptr, &i.to_string()),
                        "only enums of strings are supported",
                    ))
                }
            }
        }
        if members.is_empty() {
            return Err(err(&eptr, "`enum` needs at least one string"));
        }
        return Ok((FieldType::Enum(members), nullable || has_null));
    }
    let Some(t) = ty else {
        return Err(err(ptr, "missing `type`"));
    };
    let ty = match t {
        "string" => match node.get("format").and_then(Value::as_str) {
            Some("date") => FieldType::Date,
            Some("date-time") => FieldType::DateTime,
            _ => FieldType::String,
        },
        "integer" => FieldType::Integer,
        "number" => FieldType::Number,
        "boolean" => FieldType::Boolean,
        "array" => {
            let iptr = pointer_join(ptr, "items");
            let items = match node.get("items") {
                Some(Value::Object(o)) => o,
                Some(Value::Array(_)) => {
                    return Err(err(&iptr, "tuples have no single item type"));
                }
                Some(_) => return Err(err(&iptr, "`items` must be a schema object")),
                None => return Err(err(ptr, "an array needs `items`")),
            };
            let (item, _) = node_type(items, &iptr)?;
            let item = match (item, items.get("x-docpipe").and_then(|h| h.get("decimal"))) {
                (FieldType::Number, Some(d)) => {
                    let (precision, scale) = read_decimal(
                        d,
                        &pointer_join(&pointer_join(&iptr, "x-docpipe"), "decimal"),
                    )?;
                    FieldType::Decimal { precision, scale }
                }
                (item, _) => item,
            };
            FieldType::List(Box::new(item))
        }
        "object" => FieldType::Struct(object_fields(node, ptr, false)?),
        "null" => return Err(err(&tptr, "a field of type `null` has no column")),
        other => return Err(err(&tptr, format!("unknown type `{other}`"))),
    };
    Ok((ty, nullable))
}

fn read_decimal(v: &Value, ptr: &str) -> Result<(u8, i8), SchemaError> {
    let pair = v.as_array().filter(|a| a.len() == 2);
    let nums = pair.and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)));
    match nums {
        Some((p, s)) if (1..=38).contains(&p) && s <= p => Ok((p as u8, s as i8)),
        _ => Err(err(
            ptr,
            "`decimal` must be [precision, scale] with 1 <= precision <= 38 and 0 <= scale <= precision",
        )),
    }
}

/// The `x-docpipe` object of a property: `decimal` here, the rest by the
/// layout engine's reader. `ty` is the type before `decimal` applies.
fn read_hints(
    node: &Map<String, Value>,
    ptr: &str,
    top: bool,
    ty: &FieldType,
) -> Result<(Hints, Option<(u8, i8)>), SchemaError> {
    let mut h = Hints::default();
    let mut decimal = None;
    let hptr = pointer_join(ptr, "x-docpipe");
    let Some(hv) = node.get("x-docpipe") else {
        return Ok((h, decimal));
    };
    let hm = hv
        .as_object()
        .ok_or_else(|| err(&hptr, "`x-docpipe` must be an object"))?;
    for (k, v) in hm {
        let kptr = pointer_join(&hptr, k);
        if k != DECIMAL && !hints::KEYS.contains(&k.as_str()) {
            return Err(err(
                &kptr,
                format!(
                    "unknown hint `{k}` (expected one of: {DECIMAL}, {})",
                    hints::KEYS.join(", ")
                ),
            ));
        }
        if !top && k != DECIMAL {
            return Err(err(&kptr, "only `decimal` applies below the top level"));
        }
        if k == DECIMAL {
            if *ty != FieldType::Number {
                return Err(err(&kptr, "`decimal` applies to `number` fields only"));
            }
            decimal = Some(read_decimal(v, &kptr)?);
        } else {
            hints::read(&mut h, k, v, &kptr, *ty == FieldType::Number)?;
        }
    }
    hints::check(&h, &hptr)?;
    Ok((h, decimal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::layout::hints::{Pick, Position};
    use serde_json::json;

    fn one(prop: Value) -> Result<FieldSchema, SchemaError> {
        FieldSchema::from_value(json!({"type": "object", "properties": {"f": prop}}))
    }

    #[test]
    fn refusals_name_the_place() {
        struct Case {
            schema: Value,
            pointer: &'static str,
            contains: &'static str,
        }
        let cases = [
            Case {
                schema: json!([1]),
                pointer: "",
                contains: "JSON object",
            },
            Case {
                schema: json!({"type": "array"}),
                pointer: "/type",
                contains: "object",
            },
            Case {
                schema: json!({"type": "object"}),
                pointer: "",
                contains: "properties",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"$ref": "#/x"}}}),
                pointer: "/properties/a/$ref",
                contains: "references",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"oneOf": []}}}),
                pointer: "/properties/a/oneOf",
                contains: "oneOf",
            },
            Case {
                schema: json!({"type": "object", "anyOf": [], "properties": {"a": {"type": "string"}}}),
                pointer: "/anyOf",
                contains: "anyOf",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"type": "object",
                    "properties": {"b": {"allOf": []}}}}}),
                pointer: "/properties/a/properties/b/allOf",
                contains: "allOf",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"type": "string", "not": {}}}}),
                pointer: "/properties/a/not",
                contains: "not",
            },
            Case {
                schema: json!({"type": "object", "patternProperties": {}, "properties": {"a": {"type": "string"}}}),
                pointer: "/patternProperties",
                contains: "patternProperties",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"type": "string", "if": {}}}}),
                pointer: "/properties/a/if",
                contains: "if",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"type": ["string", "integer"]}}}),
                pointer: "/properties/a/type",
                contains: "[T, \"null\"]",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"enum": [1, 2]}}}),
                pointer: "/properties/a/enum/0",
                contains: "strings",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"type": "integer", "enum": [1]}}}),
                pointer: "/properties/a/enum",
                contains: "strings",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"description": "x"}}}),
                pointer: "/properties/a",
                contains: "missing `type`",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a/b": {"type": "array"}}}),
                pointer: "/properties/a~1b",
                contains: "items",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"type": "array", "items": [{"type": "string"}]}}}),
                pointer: "/properties/a/items",
                contains: "tuples",
            },
            Case {
                schema: json!({"type": "object", "properties": {"status": {"type": "string"}}}),
                pointer: "/properties/status",
                contains: "documents table",
            },
            Case {
                schema: json!({"type": "object", "properties": {"record_valid": {"type": "boolean"}}}),
                pointer: "/properties/record_valid",
                contains: "documents table",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a__page": {"type": "integer"}}}),
                pointer: "/properties/a__page",
                contains: "__page",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"type": "string",
                    "x-docpipe": {"colour": "red"}}}}),
                pointer: "/properties/a/x-docpipe/colour",
                contains: "unknown hint",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"type": "number",
                    "x-docpipe": {"decimal": [40, 2]}}}}),
                pointer: "/properties/a/x-docpipe/decimal",
                contains: "precision",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"type": "string",
                    "x-docpipe": {"pattern": "(["}}}}),
                pointer: "/properties/a/x-docpipe/pattern",
                contains: "regular expression",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"type": "string",
                    "x-docpipe": {"after": "b"}}}}),
                pointer: "/properties/a/x-docpipe/after",
                contains: "no top-level field",
            },
            Case {
                schema: json!({"type": "object", "properties": {
                    "a": {"type": "string", "x-docpipe": {"after": "b"}},
                    "b": {"type": "string", "x-docpipe": {"after": "a"}}}}),
                pointer: "/properties/a/x-docpipe/after",
                contains: "cycle",
            },
            Case {
                schema: json!({"type": "object", "required": ["zz"], "properties": {"a": {"type": "string"}}}),
                pointer: "/required/0",
                contains: "not in `properties`",
            },
            Case {
                schema: json!({"type": "object", "additionalProperties": {"type": "string"},
                    "properties": {"a": {"type": "string"}}}),
                pointer: "/additionalProperties",
                contains: "no column",
            },
            Case {
                schema: json!({"type": "object", "properties": {"a": {"type": "string", "minLength": "x"}}}),
                pointer: "/properties/a/minLength",
                contains: "not a valid JSON Schema",
            },
        ];
        for c in cases {
            let e = FieldSchema::from_value(c.schema.clone())
                .expect_err(&format!("accepted {}", c.schema));
            assert_eq!(e.pointer, c.pointer, "{} -> {e}", c.schema);
            assert!(e.message.contains(c.contains), "{} -> {e}", c.schema);
        }
    }

    #[test]
    fn unknown_hint_lists_every_key() {
        let e = one(json!({"type": "string", "x-docpipe": {"colour": "red"}})).unwrap_err();
        assert_eq!(
            e.message,
            "unknown hint `colour` (expected one of: decimal, labels, exclude, pattern, pick, \
             position, after, lines, stop, keywords, skip, strip, start, rounding, separator, kind)"
        );
        let e = one(
            json!({"type": "object", "properties": {"n": {"type": "string",
            "x-docpipe": {"labels": ["x"]}}}}),
        )
        .unwrap_err();
        assert_eq!(e.pointer, "/properties/f/properties/n/x-docpipe/labels");
        let ok = one(json!({"type": "number", "x-docpipe": {"decimal": [6, 2], "rounding": 0.05}}))
            .unwrap();
        assert_eq!(
            ok.fields()[0].ty,
            FieldType::Decimal {
                precision: 6,
                scale: 2
            }
        );
        assert_eq!(ok.fields()[0].hints.rounding, Some(0.05));
    }

    #[test]
    fn hints_and_labels() {
        let s = FieldSchema::from_value(json!({"type": "object", "properties": {
            "total_amount": {"type": "number", "title": "Total",
                "description": "Also printed as \"Amount due\".",
                "x-docpipe": {"labels": ["Grand Total"], "exclude": ["subtotal"], "pick": "largest"}},
            "company": {"type": "string", "x-docpipe": {"position": "top", "lines": 2}},
            "address": {"type": "string", "x-docpipe": {"after": "company", "lines": 3, "stop": ["tel"]}}
        }}))
        .unwrap();
        let t = s.field("total_amount").unwrap();
        assert_eq!(
            t.labels(),
            [
                "total amount",
                "grand total",
                "amount due",
                "total amt.",
                "total amt",
                "total"
            ]
        );
        assert_eq!(t.hints.pick, Pick::Largest);
        assert_eq!(t.hints.exclude, ["subtotal"]);
        let c = s.field("company").unwrap();
        assert_eq!(c.hints.position, Some(Position::Top));
        assert_eq!(c.hints.lines, 2);
        assert!(c.labels().is_empty());
        let a = s.field("address").unwrap();
        assert_eq!(a.hints.after.as_deref(), Some("company"));
        assert_eq!(a.hints.stop, ["tel"]);
    }
}
