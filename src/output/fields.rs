//! The `documents/` columns of a field schema, built from extracted records.
//!
//! JSON values are converted to the column types of
//! [`field_columns_schema`]; a value that does not convert (which validation
//! has already reported with keyword `type`) becomes null.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int32Array,
    Int64Array, ListArray, StringArray, StringDictionaryBuilder, StructArray,
    TimestampMicrosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Int32Type};
use arrow::error::ArrowError;
use serde_json::Value;

#[cfg(doc)]
use super::field_types::field_columns_schema;
use super::field_types::{arrow_type, error_fields, list_item, struct_fields};
use super::UTC;
use crate::extract::parse::{decimal_units, iso_date_days, rfc3339_micros};
use crate::extract::{json_i64, Extracted, FieldSchema, FieldType};

fn offset(len: usize) -> Result<i32, ArrowError> {
    i32::try_from(len).map_err(|_| ArrowError::OffsetOverflowError(len))
}

fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
    (!valid.iter().all(|v| *v)).then(|| NullBuffer::from(valid))
}

/// One column of type `ty` from per-row values (`None` = null).
pub(crate) fn values_array(
    ty: &FieldType,
    values: &[Option<&Value>],
) -> Result<ArrayRef, ArrowError> {
    let it = || values.iter().map(|v| v.filter(|v| !v.is_null()));
    Ok(match ty {
        FieldType::String => Arc::new(
            it().map(|v| v.and_then(Value::as_str))
                .collect::<StringArray>(),
        ),
        FieldType::Integer => Arc::new(it().map(|v| v.and_then(json_i64)).collect::<Int64Array>()),
        FieldType::Number => Arc::new(
            it().map(|v| v.and_then(Value::as_f64))
                .collect::<Float64Array>(),
        ),
        FieldType::Decimal { precision, scale } => Arc::new(
            it().map(|v| v.and_then(|v| decimal_units(v, *precision, *scale)))
                .collect::<Decimal128Array>()
                .with_precision_and_scale(*precision, *scale)?,
        ),
        FieldType::Boolean => Arc::new(
            it().map(|v| v.and_then(Value::as_bool))
                .collect::<BooleanArray>(),
        ),
        FieldType::Date => Arc::new(
            it().map(|v| v.and_then(Value::as_str).and_then(iso_date_days))
                .collect::<Date32Array>(),
        ),
        FieldType::DateTime => Arc::new(
            it().map(|v| v.and_then(Value::as_str).and_then(rfc3339_micros))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone(UTC),
        ),
        FieldType::Enum(members) => {
            let mut b = StringDictionaryBuilder::<Int32Type>::new();
            for v in it() {
                match v
                    .and_then(Value::as_str)
                    .filter(|s| members.iter().any(|m| m == s))
                {
                    Some(s) => {
                        b.append(s)?;
                    }
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        FieldType::List(item) => {
            let mut offsets = vec![0i32];
            let mut items: Vec<Option<&Value>> = Vec::new();
            let mut valid = Vec::with_capacity(values.len());
            for v in it() {
                let arr = v.and_then(Value::as_array);
                valid.push(arr.is_some());
                if let Some(a) = arr {
                    items.extend(a.iter().map(Some));
                }
                offsets.push(offset(items.len())?);
            }
            let child = values_array(item, &items)?;
            Arc::new(ListArray::try_new(
                list_item(arrow_type(item)),
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                child,
                nulls(valid),
            )?)
        }
        FieldType::Struct(fields) => {
            let objects: Vec<Option<&serde_json::Map<String, Value>>> =
                it().map(|v| v.and_then(Value::as_object)).collect();
            let children = fields
                .iter()
                .map(|f| {
                    let vals: Vec<Option<&Value>> = objects
                        .iter()
                        .map(|o| o.and_then(|o| o.get(&f.name)))
                        .collect();
                    values_array(&f.ty, &vals)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(StructArray::try_new(
                struct_fields(fields),
                children,
                nulls(objects.iter().map(Option::is_some).collect()),
            )?)
        }
    })
}

/// A nullable `List<Float32>` column (non-null items) from per-row slices.
fn f32_lists(rows: &[Option<Vec<f32>>]) -> Result<ArrayRef, ArrowError> {
    let mut offsets = vec![0i32];
    let mut items = Vec::new();
    for r in rows {
        if let Some(v) = r {
            items.extend_from_slice(v);
        }
        offsets.push(offset(items.len())?);
    }
    Ok(Arc::new(ListArray::try_new(
        Arc::new(Field::new("item", DataType::Float32, false)),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(Float32Array::from(items)),
        nulls(rows.iter().map(Option::is_some).collect()),
    )?))
}

/// `record_errors`: null where nothing was extracted, else the list of errors.
fn errors_array(rows: &[Option<&Extracted>]) -> Result<ArrayRef, ArrowError> {
    let mut offsets = vec![0i32];
    let (mut path, mut keyword, mut message) = (Vec::new(), Vec::new(), Vec::new());
    for e in rows.iter().flatten() {
        for err in &e.errors {
            path.push(err.instance_path.as_str());
            keyword.push(err.keyword.as_str());
            message.push(err.message.as_str());
        }
    }
    let mut n = 0usize;
    for r in rows {
        n += r.map_or(0, |e| e.errors.len());
        offsets.push(offset(n)?);
    }
    let items = StructArray::try_new(
        error_fields(),
        vec![
            Arc::new(StringArray::from(path)) as ArrayRef,
            Arc::new(StringArray::from(keyword)),
            Arc::new(StringArray::from(message)),
        ],
        None,
    )?;
    Ok(Arc::new(ListArray::try_new(
        Arc::new(Field::new("item", DataType::Struct(error_fields()), false)),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(items),
        nulls(rows.iter().map(Option::is_some).collect()),
    )?))
}

/// The columns of [`field_columns_schema`], in that order, for `rows`
/// (`None`: the document has no record, e.g. it failed before extraction).
pub(crate) fn field_columns(
    schema: &FieldSchema,
    rows: &[Option<&Extracted>],
) -> Result<Vec<ArrayRef>, ArrowError> {
    let mut out = Vec::with_capacity(schema.fields().len() * 5 + 2);
    for f in schema.fields() {
        let fv: Vec<_> = rows
            .iter()
            .map(|r| r.and_then(|e| e.record.fields.get(&f.name)))
            .collect();
        let values: Vec<Option<&Value>> = fv.iter().map(|v| v.map(|v| &v.value)).collect();
        out.push(values_array(&f.ty, &values)?);
        out.push(Arc::new(
            fv.iter()
                .map(|v| v.map(|v| v.confidence))
                .collect::<Float32Array>(),
        ));
        out.push(Arc::new(
            rows.iter()
                .map(|r| r.and_then(|e| e.needs_review(&f.name)))
                .collect::<BooleanArray>(),
        ));
        out.push(Arc::new(
            fv.iter()
                .map(|v| v.and_then(|v| v.page).and_then(|p| i32::try_from(p).ok()))
                .collect::<Int32Array>(),
        ));
        let boxes: Vec<Option<Vec<f32>>> = fv
            .iter()
            .map(|v| v.and_then(|v| v.bbox).map(|b| vec![b.x0, b.y0, b.x1, b.y1]))
            .collect();
        out.push(f32_lists(&boxes)?);
    }
    out.push(Arc::new(
        rows.iter()
            .map(|r| r.map(Extracted::valid))
            .collect::<BooleanArray>(),
    ));
    out.push(errors_array(rows)?);
    Ok(out)
}
