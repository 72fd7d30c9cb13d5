//! The JSON Schema to Arrow mapping: the `documents/` columns of a
//! [`FieldSchema`].
//!
//! Each top-level property becomes one nullable column:
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
//! `f__review` (`Boolean`: under `extract.review_below`, or required and not
//! found; null without a threshold), `f__page` (`Int32`, 0-based) and
//! `f__bbox` (`List<Float32>`: x0, y0, x1, y1 in page pixels); the columns end with `record_valid` (`Boolean`) and
//! `record_errors` (`List<Struct<path, keyword, message>>`).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Fields, TimeUnit};

use super::UTC;
use crate::extract::schema::{
    BBOX_SUFFIX, CONFIDENCE_SUFFIX, PAGE_SUFFIX, RECORD_ERRORS, RECORD_VALID, REVIEW_SUFFIX,
};
use crate::extract::{FieldDef, FieldSchema, FieldType};

/// The Arrow type of a field's column.
pub fn arrow_type(ty: &FieldType) -> DataType {
    match ty {
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
        FieldType::List(item) => DataType::List(list_item(arrow_type(item))),
        FieldType::Struct(fields) => DataType::Struct(struct_fields(fields)),
    }
}

/// The (nullable) item of a field's list column.
pub(crate) fn list_item(dt: DataType) -> FieldRef {
    Arc::new(Field::new("item", dt, true))
}

/// The (nullable) children of a field's struct column, in schema order.
pub(crate) fn struct_fields(fields: &[FieldDef]) -> Fields {
    fields
        .iter()
        .map(|f| Field::new(&f.name, arrow_type(&f.ty), true))
        .collect()
}

/// The fields of one `record_errors` item.
pub(crate) fn error_fields() -> Fields {
    Fields::from(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("keyword", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
    ])
}

/// The columns `schema` adds to `documents/`, in order: per field the
/// value, `__confidence`, `__review`, `__page`, `__bbox`; then
/// `record_valid` and `record_errors`. All nullable.
pub fn field_columns_schema(schema: &FieldSchema) -> Vec<Field> {
    let mut out = Vec::with_capacity(schema.fields().len() * 5 + 2);
    for f in schema.fields() {
        out.push(Field::new(&f.name, arrow_type(&f.ty), true));
        out.push(Field::new(
            format!("{}{CONFIDENCE_SUFFIX}", f.name),
            DataType::Float32,
            true,
        ));
        out.push(Field::new(
            format!("{}{REVIEW_SUFFIX}", f.name),
            DataType::Boolean,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::SchemaError;
    use crate::output::type_name;
    use serde_json::{json, Value};

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
            let cols = field_columns_schema(&s);
            assert_eq!(cols[0].data_type(), &c.want, "{}", c.prop);
            assert!(cols[0].is_nullable());
        }
    }

    #[test]
    fn generated_columns() {
        let s = one(json!({"type": "string"})).unwrap();
        let cols = field_columns_schema(&s);
        let names: Vec<&str> = cols.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "f",
                "f__confidence",
                "f__review",
                "f__page",
                "f__bbox",
                "record_valid",
                "record_errors"
            ]
        );
        assert_eq!(cols[1].data_type(), &DataType::Float32);
        assert_eq!(cols[2].data_type(), &DataType::Boolean);
        assert_eq!(cols[3].data_type(), &DataType::Int32);
        assert_eq!(
            cols[4].data_type(),
            &DataType::List(Arc::new(Field::new("item", DataType::Float32, false)))
        );
        assert_eq!(cols[5].data_type(), &DataType::Boolean);
        assert!(cols.iter().all(|c| c.is_nullable()));
    }

    #[test]
    fn column_type_names_match_arrow() {
        let s = FieldSchema::from_value(json!({"type": "object", "properties": {
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "n": {"type": "number"},
            "d": {"type": "number", "x-docpipe": {"decimal": [12, 2]}},
            "b": {"type": "boolean"},
            "day": {"type": "string", "format": "date"},
            "at": {"type": "string", "format": "date-time"},
            "e": {"enum": ["A", "B"]},
            "l": {"type": "array", "items": {"type": "number", "x-docpipe": {"decimal": [5, 1]}}},
            "o": {"type": "object", "properties": {
                "q": {"type": "integer"},
                "xs": {"type": "array", "items": {"type": "string", "format": "date"}}}}
        }}))
        .unwrap();
        for f in s.fields() {
            assert_eq!(
                f.ty.column_type_name(),
                type_name(&arrow_type(&f.ty)),
                "{}",
                f.name
            );
        }
    }
}
