//! The user's JSON Schema, checked and mapped to Arrow columns.
//!
//! The root must be `{"type": "object", "properties": {...}}`; each top-level
//! property becomes one nullable column of `documents/`:
//!
//! | JSON Schema | Arrow |
//! |---|---|
//! | `string` | `Utf8` |
//! | `string` + `format: date` | `Date32` |
//! | `string` + `format: date-time` | `Timestamp(Microsecond, "UTC")` |
//! | `enum` of strings (`type` `string` or absent) | `Dictionary(Int32, Utf8)` |
//! | `integer` | `Int64` |
//! | `number` | `Float64`; `Decimal128(p, s)` with `"x-docpipe": {"decimal": [p, s]}` |
//! | `boolean` | `Boolean` |
//! | `array` with `items` | `List` of the item type |
//! | `object` with `properties` | `Struct` of the properties (recursively) |
//! | `["T", "null"]` | as `T` (every column is nullable) |
//!
//! Each top-level field `f` also gets `f__confidence` (`Float32`),
//! `f__page` (`Int32`, 0-based) and `f__bbox` (`List<Float32>`: x0, y0, x1,
//! y1 in page pixels); the table ends with `record_valid` (`Boolean`) and
//! `record_errors` (`List<Struct<path, keyword, message>>`).
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
//! A property may carry `"x-docpipe": {...}` with these keys (all optional);
//! any other key is refused:
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `decimal` | `[p, s]`, 1 ≤ p ≤ 38, 0 ≤ s ≤ p | a `number` stored as `Decimal128(p, s)` |
//! | `labels` | list of strings | texts that precede the value on the page (case-insensitive); added to the field's `title`, its name with `_` read as spaces, and any `"quoted"` text in its `description` |
//! | `exclude` | list of strings | a line containing one of these is never a label of this field (e.g. `subtotal` for a total) |
//! | `pattern` | regex | a string value must match it whole; the engine looks for the first span of words that does |
//! | `pick` | `best` (default), `largest`, `first`, `last`, `top`, `bottom` | which candidate wins when several are found |
//! | `position` | `top` | the field has no label: read from the first lines of the first page |
//! | `after` | a top-level field name | the field has no label: read from the lines just below that field's value |
//! | `lines` | 1..=20 (default 1) | how many lines an unlabelled (`position` / `after`) value may span; joined with a space |
//! | `stop` | list of strings | a line containing one of these ends an unlabelled value |
//! | `keywords` | list of strings | with `position`: a line containing one of these is preferred |
//! | `skip` | regex | with `position` / `after`: lines matching it whole (either case) are passed over |
//! | `start` | regex | with `after`: lines before the first one that matches it whole (either case) are passed over (e.g. `.*[0-9].*`: an address starts at a line with a number) |
//! | `strip` | regex | with `position` / `after`: a trailing part of the value that matches it whole (either case), from a word start, is cut off |
//! | `rounding` | step, e.g. `0.05` | cash rounding of a `number`: when the value found is not a multiple of the step, a multiple within one step of it, found among the candidates or below it on the page, wins (the rounded total that was paid) |

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Fields, TimeUnit};
use serde_json::{Map, Value};

use super::{Record, ValidationError};
use crate::output::UTC;

/// Suffixes of the per-field provenance columns.
pub const CONFIDENCE_SUFFIX: &str = "__confidence";
pub const PAGE_SUFFIX: &str = "__page";
pub const BBOX_SUFFIX: &str = "__bbox";
/// Names of the record-level columns.
pub const RECORD_VALID: &str = "record_valid";
pub const RECORD_ERRORS: &str = "record_errors";

/// A schema that cannot be used, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", if pointer.is_empty() { "(schema root)" } else { pointer.as_str() })]
pub struct SchemaError {
    /// JSON Pointer (RFC 6901) into the schema document; empty for the root.
    pub pointer: String,
    pub message: String,
}

fn err(pointer: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        pointer: pointer.to_string(),
        message: message.into(),
    }
}

/// `base` + `/` + `token`, escaped per RFC 6901.
pub fn pointer_join(base: &str, token: &str) -> String {
    format!("{base}/{}", token.replace('~', "~0").replace('/', "~1"))
}

/// The type of one field, as stored.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldType {
    String,
    Integer,
    Number,
    /// `Decimal128(precision, scale)`.
    Decimal {
        precision: u8,
        scale: i8,
    },
    Boolean,
    /// `format: date`, stored as days since 1970-01-01.
    Date,
    /// `format: date-time`, stored as microseconds since the epoch, UTC.
    DateTime,
    /// `enum` of strings, in schema order.
    Enum(Vec<String>),
    List(Box<FieldType>),
    Struct(Vec<FieldDef>),
}

impl FieldType {
    /// The Arrow type of the column.
    pub fn arrow(&self) -> DataType {
        match self {
            FieldType::String => DataType::Utf8,
            FieldType::Integer => DataType::Int64,
            FieldType::Number => DataType::Float64,
            FieldType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            FieldType::Boolean => DataType::Boolean,
            FieldType::Date => DataType::Date32,
            FieldType::DateTime => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            FieldType::Enum(_) => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
            FieldType::List(item) => DataType::List(list_item(item.arrow())),
            FieldType::Struct(fields) => DataType::Struct(struct_fields(fields)),
        }
    }

    /// Whether `value` converts to this type's column (null always does).
    /// A value that does not becomes a null cell.
    pub fn accepts(&self, value: &Value) -> bool {
        use super::parse::{decimal_units, iso_date_days, rfc3339_micros};
        if value.is_null() {
            return true;
        }
        match self {
            FieldType::String => value.is_string(),
            FieldType::Integer => json_i64(value).is_some(),
            FieldType::Number => value.as_f64().is_some(),
            FieldType::Decimal { precision, scale } => {
                decimal_units(value, *precision, *scale).is_some()
            }
            FieldType::Boolean => value.is_boolean(),
            FieldType::Date => value.as_str().and_then(iso_date_days).is_some(),
            FieldType::DateTime => value.as_str().and_then(rfc3339_micros).is_some(),
            FieldType::Enum(members) => value
                .as_str()
                .is_some_and(|s| members.iter().any(|m| m == s)),
            FieldType::List(item) => value
                .as_array()
                .is_some_and(|a| a.iter().all(|v| item.accepts(v))),
            FieldType::Struct(fields) => value.as_object().is_some_and(|o| {
                fields
                    .iter()
                    .all(|f| o.get(&f.name).is_none_or(|v| f.ty.accepts(v)))
            }),
        }
    }

    /// Scalar types a layout engine can read from one line.
    pub fn is_scalar(&self) -> bool {
        !matches!(self, FieldType::List(_) | FieldType::Struct(_))
    }
}

/// A JSON integer as `i64`; integral floats (e.g. `12.0`) count, as in JSON Schema.
pub fn json_i64(value: &Value) -> Option<i64> {
    if let Some(i) = value.as_i64() {
        return Some(i);
    }
    let f = value.as_f64()?;
    // i64::MAX as f64 rounds up to 2^63, which is out of range: use a strict bound.
    // 2^63 as f64 is exact; i64::MAX is not representable.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    (f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f)).then_some(f as i64)
}

pub(crate) fn list_item(dt: DataType) -> FieldRef {
    Arc::new(Field::new("item", dt, true))
}

pub(crate) fn struct_fields(fields: &[FieldDef]) -> Fields {
    fields
        .iter()
        .map(|f| Field::new(&f.name, f.ty.arrow(), true))
        .collect()
}

/// Which candidate wins when a layout engine finds several.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pick {
    /// Highest confidence.
    #[default]
    Best,
    /// Largest number (amounts); ties by confidence.
    Largest,
    /// First in reading order.
    First,
    /// Last in reading order.
    Last,
    /// Highest on the page (smallest y, first page first).
    Top,
    /// Lowest on the page (largest y, last page last).
    Bottom,
}

/// Where an unlabelled field is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// The first lines of the first page.
    Top,
}

/// The `x-docpipe` hints of one field (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hints {
    pub decimal: Option<(u8, i8)>,
    pub labels: Vec<String>,
    pub exclude: Vec<String>,
    pub pattern: Option<String>,
    pub pick: Pick,
    pub position: Option<Position>,
    pub after: Option<String>,
    /// Most lines an unlabelled value spans, 1..=20.
    pub lines: usize,
    pub stop: Vec<String>,
    pub keywords: Vec<String>,
    pub skip: Option<String>,
    pub strip: Option<String>,
    pub start: Option<String>,
    /// Cash rounding step of a number field (e.g. 0.05), > 0.
    pub rounding: Option<f64>,
}

/// One property of the schema.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldDef {
    pub name: String,
    pub ty: FieldType,
    /// Whether the schema allows `null` (`["T", "null"]`). The column is
    /// nullable either way (a field may not be found).
    pub nullable: bool,
    pub title: Option<String>,
    pub description: Option<String>,
    pub hints: Hints,
    /// JSON Pointer of the property's schema.
    pub pointer: String,
}

impl FieldDef {
    /// Label texts of the field, lower-case, longest first: `x-docpipe.labels`,
    /// the `title`, the name with `_` read as spaces, and every `"quoted"`
    /// text of the `description`. Empty for `position` / `after` fields
    /// without explicit labels (they have none).
    pub fn labels(&self) -> Vec<String> {
        let mut out: Vec<String> = self.hints.labels.clone();
        let unlabelled = self.hints.position.is_some() || self.hints.after.is_some();
        if !unlabelled {
            if let Some(t) = &self.title {
                out.push(t.clone());
            }
            out.push(self.name.replace('_', " "));
        }
        if let Some(d) = &self.description {
            let mut parts = d.split('"');
            parts.next();
            while let Some(q) = parts.next() {
                out.push(q.to_string());
                parts.next();
            }
        }
        let mut out: Vec<String> = out
            .into_iter()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
        out
    }
}

/// A checked JSON Schema of the fields to extract, with its Arrow mapping and
/// a compiled validator.
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

const HINT_KEYS: &[&str] = &[
    "decimal", "labels", "exclude", "pattern", "pick", "position", "after", "lines", "stop",
    "keywords", "skip", "strip", "start", "rounding",
];

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
        let reserved = reserved_names();
        for f in &fields {
            if reserved.contains(f.name.as_str()) {
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
            if let Some(after) = &f.hints.after {
                let target = fields.iter().find(|g| &g.name == after);
                let ptr = pointer_join(&pointer_join(&f.pointer, "x-docpipe"), "after");
                match target {
                    None => return Err(err(&ptr, format!("no top-level field `{after}`"))),
                    Some(g) if g.name == f.name => {
                        return Err(err(&ptr, "a field cannot follow itself"))
                    }
                    Some(_) => {}
                }
            }
        }
        check_after_cycles(&fields)?;
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

    /// The columns this schema adds to `documents/`, in order: per field the
    /// value, `__confidence`, `__page`, `__bbox`; then `record_valid` and
    /// `record_errors`. All nullable.
    pub fn columns(&self) -> Vec<Field> {
        let mut out = Vec::with_capacity(self.fields.len() * 4 + 2);
        for f in &self.fields {
            out.push(Field::new(&f.name, f.ty.arrow(), true));
            out.push(Field::new(
                format!("{}{CONFIDENCE_SUFFIX}", f.name),
                DataType::Float32,
                true,
            ));
            out.push(Field::new(
                format!("{}{PAGE_SUFFIX}", f.name),
                DataType::Int32,
                true,
            ));
            out.push(Field::new(
                format!("{}{BBOX_SUFFIX}", f.name),
                DataType::List(Arc::new(Field::new("item", DataType::Float32, false))),
                true,
            ));
        }
        out.push(Field::new(RECORD_VALID, DataType::Boolean, true));
        out.push(Field::new(
            RECORD_ERRORS,
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(error_fields()),
                false,
            ))),
            true,
        ));
        out
    }

    /// Validate a record's JSON (field name to value) against the schema.
    /// Also reports, with keyword `type`, values that pass the schema but
    /// would not fit their column (e.g. an integer beyond `Int64`), since
    /// those are stored as null.
    pub fn validate(&self, record: &Record) -> Vec<ValidationError> {
        super::validate::validate(&self.validator, &self.fields, record)
    }
}

/// The fields of one `record_errors` item.
pub(crate) fn error_fields() -> Fields {
    Fields::from(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("keyword", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
    ])
}

fn reserved_names() -> BTreeSet<String> {
    let (docs, _, _) = crate::output::schemas();
    let mut names: BTreeSet<String> = docs.fields().iter().map(|f| f.name().clone()).collect();
    names.insert(RECORD_VALID.into());
    names.insert(RECORD_ERRORS.into());
    names
}

fn check_after_cycles(fields: &[FieldDef]) -> Result<(), SchemaError> {
    for f in fields {
        let mut seen = BTreeSet::new();
        let mut cur = f;
        while let Some(next) = &cur.hints.after {
            if !seen.insert(cur.name.clone()) {
                return Err(err(
                    &pointer_join(&pointer_join(&f.pointer, "x-docpipe"), "after"),
                    "`after` hints form a cycle",
                ));
            }
            match fields.iter().find(|g| &g.name == next) {
                Some(g) => cur = g,
                None => break,
            }
        }
    }
    Ok(())
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
    let hints = read_hints(node, ptr, top, &ty)?;
    let ty = match (&ty, hints.decimal) {
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

fn strings(v: &Value, ptr: &str) -> Result<Vec<String>, SchemaError> {
    let list = v
        .as_array()
        .ok_or_else(|| err(ptr, "expected a list of strings"))?;
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.as_str()
                .map(str::to_string)
                .ok_or_else(|| err(&pointer_join(ptr, &i.to_string()), "expected a string"))
        })
        .collect()
}

/// Compile `pattern` as the validator would, so that a bad regex is refused
/// at load time with its place.
fn check_regex(p: &str, ptr: &str) -> Result<(), SchemaError> {
    jsonschema::validator_for(&serde_json::json!({"type": "string", "pattern": p}))
        .map(|_| ())
        .map_err(|e| err(ptr, format!("not a valid regular expression: {e}")))
}

fn read_hints(
    node: &Map<String, Value>,
    ptr: &str,
    top: bool,
    ty: &FieldType,
) -> Result<Hints, SchemaError> {
    let mut h = Hints {
        lines: 1,
        ..Hints::default()
    };
    let hptr = pointer_join(ptr, "x-docpipe");
    let Some(hv) = node.get("x-docpipe") else {
        return Ok(h);
    };
    let hm = hv
        .as_object()
        .ok_or_else(|| err(&hptr, "`x-docpipe` must be an object"))?;
    for (k, v) in hm {
        let kptr = pointer_join(&hptr, k);
        if !HINT_KEYS.contains(&k.as_str()) {
            return Err(err(
                &kptr,
                format!(
                    "unknown hint `{k}` (expected one of: {})",
                    HINT_KEYS.join(", ")
                ),
            ));
        }
        if !top && k != "decimal" {
            return Err(err(&kptr, "only `decimal` applies below the top level"));
        }
        match k.as_str() {
            "decimal" => {
                if *ty != FieldType::Number {
                    return Err(err(&kptr, "`decimal` applies to `number` fields only"));
                }
                h.decimal = Some(read_decimal(v, &kptr)?);
            }
            "labels" => h.labels = strings(v, &kptr)?,
            "exclude" => h.exclude = strings(v, &kptr)?,
            "stop" => h.stop = strings(v, &kptr)?,
            "keywords" => h.keywords = strings(v, &kptr)?,
            "pattern" | "skip" | "strip" | "start" => {
                let p = v
                    .as_str()
                    .ok_or_else(|| err(&kptr, "expected a regular expression string"))?;
                check_regex(p, &kptr)?;
                match k.as_str() {
                    "pattern" => h.pattern = Some(p.to_string()),
                    "skip" => h.skip = Some(p.to_string()),
                    "start" => h.start = Some(p.to_string()),
                    _ => h.strip = Some(p.to_string()),
                }
            }
            "pick" => {
                h.pick = match v.as_str() {
                    Some("best") => Pick::Best,
                    Some("largest") => Pick::Largest,
                    Some("first") => Pick::First,
                    Some("last") => Pick::Last,
                    Some("top") => Pick::Top,
                    Some("bottom") => Pick::Bottom,
                    _ => {
                        return Err(err(
                            &kptr,
                            "expected one of best, largest, first, last, top, bottom",
                        ))
                    }
                }
            }
            "position" => {
                h.position = match v.as_str() {
                    Some("top") => Some(Position::Top),
                    _ => return Err(err(&kptr, "expected `top`")),
                }
            }
            "after" => {
                h.after = Some(
                    v.as_str()
                        .ok_or_else(|| err(&kptr, "expected a field name"))?
                        .to_string(),
                )
            }
            "rounding" => {
                if !matches!(ty, FieldType::Number) {
                    return Err(err(&kptr, "`rounding` applies to `number` fields only"));
                }
                h.rounding = match v.as_f64() {
                    Some(step) if step > 0.0 && step.is_finite() => Some(step),
                    _ => return Err(err(&kptr, "expected a positive number, e.g. 0.05")),
                }
            }
            "lines" => {
                h.lines = match v.as_u64() {
                    Some(n @ 1..=20) => n as usize,
                    _ => return Err(err(&kptr, "expected an integer from 1 to 20")),
                }
            }
            _ => {}
        }
    }
    if h.position.is_some() && h.after.is_some() {
        return Err(err(
            &pointer_join(&hptr, "after"),
            "`position` and `after` exclude each other",
        ));
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(prop: Value) -> Result<FieldSchema, SchemaError> {
        FieldSchema::from_value(json!({"type": "object", "properties": {"f": prop}}))
    }

    #[test]
    fn mapping_table() {
        struct Case {
            prop: Value,
            want: DataType,
        }
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let cases = [
            Case {
                prop: json!({"type": "string"}),
                want: DataType::Utf8,
            },
            Case {
                prop: json!({"type": "integer"}),
                want: DataType::Int64,
            },
            Case {
                prop: json!({"type": "number"}),
                want: DataType::Float64,
            },
            Case {
                prop: json!({"type": "number", "x-docpipe": {"decimal": [12, 2]}}),
                want: DataType::Decimal128(12, 2),
            },
            Case {
                prop: json!({"type": "boolean"}),
                want: DataType::Boolean,
            },
            Case {
                prop: json!({"type": "string", "format": "date"}),
                want: DataType::Date32,
            },
            Case {
                prop: json!({"type": "string", "format": "date-time"}),
                want: DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            },
            Case {
                prop: json!({"type": "string", "format": "email"}),
                want: DataType::Utf8,
            },
            Case {
                prop: json!({"type": "string", "enum": ["USD", "EUR"]}),
                want: dict.clone(),
            },
            Case {
                prop: json!({"enum": ["USD", "EUR", null]}),
                want: dict,
            },
            Case {
                prop: json!({"type": ["integer", "null"]}),
                want: DataType::Int64,
            },
            Case {
                prop: json!({"type": ["null", "string"], "format": "date"}),
                want: DataType::Date32,
            },
            Case {
                prop: json!({"type": "array", "items": {"type": "string"}}),
                want: DataType::List(list_item(DataType::Utf8)),
            },
            Case {
                prop: json!({"type": "array", "items": {"type": "number", "x-docpipe": {"decimal": [5, 1]}}}),
                want: DataType::List(list_item(DataType::Decimal128(5, 1))),
            },
            Case {
                prop: json!({"type": "object", "properties": {
                    "qty": {"type": "integer"}, "name": {"type": "string"}}}),
                // Struct fields keep the schema's order.
                want: DataType::Struct(Fields::from(vec![
                    Field::new("qty", DataType::Int64, true),
                    Field::new("name", DataType::Utf8, true),
                ])),
            },
            Case {
                prop: json!({"type": "array", "items": {"type": "object", "properties": {
                    "d": {"type": "string", "format": "date"}}}}),
                want: DataType::List(list_item(DataType::Struct(Fields::from(vec![Field::new(
                    "d",
                    DataType::Date32,
                    true,
                )])))),
            },
        ];
        for c in cases {
            let s = one(c.prop.clone()).unwrap_or_else(|e| panic!("{}: {e}", c.prop));
            let cols = s.columns();
            assert_eq!(cols[0].data_type(), &c.want, "{}", c.prop);
            assert!(cols[0].is_nullable());
        }
    }

    #[test]
    fn generated_columns() {
        let s = one(json!({"type": "string"})).unwrap();
        let cols = s.columns();
        let names: Vec<&str> = cols.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "f",
                "f__confidence",
                "f__page",
                "f__bbox",
                "record_valid",
                "record_errors"
            ]
        );
        assert_eq!(cols[1].data_type(), &DataType::Float32);
        assert_eq!(cols[2].data_type(), &DataType::Int32);
        assert_eq!(
            cols[3].data_type(),
            &DataType::List(Arc::new(Field::new("item", DataType::Float32, false)))
        );
        assert_eq!(cols[4].data_type(), &DataType::Boolean);
        assert!(cols.iter().all(|c| c.is_nullable()));
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
            ["total amount", "grand total", "amount due", "total"]
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

    #[test]
    fn accepts_matches_columns() {
        struct Case {
            ty: FieldType,
            value: Value,
            ok: bool,
        }
        let cases = [
            Case {
                ty: FieldType::Integer,
                value: json!(3),
                ok: true,
            },
            Case {
                ty: FieldType::Integer,
                value: json!(3.0),
                ok: true,
            },
            Case {
                ty: FieldType::Integer,
                value: json!(3.5),
                ok: false,
            },
            Case {
                ty: FieldType::Integer,
                value: json!(1e30),
                ok: false,
            },
            Case {
                ty: FieldType::Date,
                value: json!("2018-12-25"),
                ok: true,
            },
            Case {
                ty: FieldType::Date,
                value: json!("2018-02-30"),
                ok: false,
            },
            Case {
                ty: FieldType::Decimal {
                    precision: 4,
                    scale: 2,
                },
                value: json!(12.34),
                ok: true,
            },
            Case {
                ty: FieldType::Decimal {
                    precision: 4,
                    scale: 2,
                },
                value: json!(123.4),
                ok: false,
            },
            Case {
                ty: FieldType::Enum(vec!["A".into()]),
                value: json!("B"),
                ok: false,
            },
            Case {
                ty: FieldType::String,
                value: json!(null),
                ok: true,
            },
            Case {
                ty: FieldType::List(Box::new(FieldType::Integer)),
                value: json!([1, "x"]),
                ok: false,
            },
        ];
        for c in cases {
            assert_eq!(c.ty.accepts(&c.value), c.ok, "{:?} {}", c.ty, c.value);
        }
    }
}
