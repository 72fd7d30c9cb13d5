//! One field of the user's schema: its stored type ([`FieldType`]) and its
//! definition ([`FieldDef`]).
//!
//! These are the types every engine, the validator and the Parquet sink
//! share; the JSON Schema that produces them is read in
//! [`super::schema`], and their Arrow columns are built in
//! [`crate::output`].

use serde_json::Value;

use super::layout::hints::Hints;
use super::parse::{decimal_units, iso_date_days, rfc3339_micros};

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
    /// Whether `value` converts to this type's column (null always does).
    /// A value that does not becomes a null cell.
    pub fn accepts(&self, value: &Value) -> bool {
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

    /// The name of the column's type in pyarrow's spelling, as the schema
    /// documentation prints it (`string`, `decimal128(12, 2)`,
    /// `list<int64>`, ...). A test in `output` keeps it equal to the name of
    /// the Arrow type the column is built with.
    pub fn column_type_name(&self) -> String {
        match self {
            FieldType::String => "string".into(),
            FieldType::Integer => "int64".into(),
            FieldType::Number => "double".into(),
            FieldType::Decimal { precision, scale } => format!("decimal128({precision}, {scale})"),
            FieldType::Boolean => "bool".into(),
            FieldType::Date => "date32[day]".into(),
            FieldType::DateTime => "timestamp[us, tz=UTC]".into(),
            FieldType::Enum(_) => "dictionary<int32, string>".into(),
            FieldType::List(item) => format!("list<{}>", item.column_type_name()),
            FieldType::Struct(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{}: {}", f.name, f.ty.column_type_name()))
                    .collect();
                format!("struct<{}>", inner.join(", "))
            }
        }
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
    /// The layout engine's `x-docpipe` hints (default below the top level).
    pub hints: Hints,
    /// JSON Pointer of the property's schema.
    pub pointer: String,
}

impl FieldDef {
    /// Label texts of the field, lower-case, longest first (see
    /// [`Hints::labels`]).
    pub fn labels(&self) -> Vec<String> {
        self.hints.labels(
            &self.name,
            self.title.as_deref(),
            self.description.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
