//! The `failures/` table (dead letter): one row per failed document and one
//! per failed page, each with the attempt number across runs and the input
//! pointer that `docpipe run --retry-failed` replays.
//!
//! Rows are written in the same part as the document's other rows, so they
//! are committed (or lost) together with them.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, Int32Array, RecordBatch, StringArray, StringDictionaryBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use super::rows::RowSize;
use super::schema::UTC;

/// Longest `message` kept, bytes (cut at a character boundary). Error
/// messages longer than this are noise, and the cap bounds a batch's size.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// One row of `failures/`.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureRow {
    /// Document id (as in `documents.doc_id`).
    pub doc_id: String,
    /// Where the input was read from.
    pub uri: String,
    /// SHA-256 of the input bytes, lower-case hex; empty when it could not be read.
    pub sha256: String,
    /// The failed page, 0-based; `None` for a row about the whole document.
    pub page_index: Option<i32>,
    /// Stage that failed: `ingest`, `render`, `ocr`, `layout`, `extract`, `internal`.
    pub stage: String,
    /// Short error class (as in `documents.error_class`, or `page_error`).
    pub error_class: String,
    /// Error message, at most [`MAX_MESSAGE_BYTES`] bytes.
    pub message: String,
    /// Attempt number across runs for this input under this configuration, from 1.
    pub attempt: i32,
    /// Input pointer: the local path that `--retry-failed` reads again.
    pub input: String,
    /// Hash of the effective pipeline configuration.
    pub config_hash: String,
    /// Id of the run that wrote the row (also the part files' prefix).
    pub run_id: String,
    /// When the failure was recorded: microseconds since the Unix epoch, UTC.
    pub failed_at: i64,
}

/// `s` cut to at most `max` bytes at a character boundary.
pub fn truncate_message(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl RowSize for FailureRow {
    fn approx_bytes(&self) -> usize {
        self.doc_id.len()
            + self.uri.len()
            + self.sha256.len()
            + self.stage.len()
            + self.error_class.len()
            + self.message.len()
            + self.input.len()
            + self.config_hash.len()
            + self.run_id.len()
            + 4 * 4
            + 8
    }
}

fn dict_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The Arrow schema of `failures/`. Built once.
pub fn failures_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("doc_id", DataType::Utf8, false),
                Field::new("uri", DataType::Utf8, false),
                Field::new("sha256", DataType::Utf8, false),
                Field::new("page_index", DataType::Int32, true),
                Field::new("stage", dict_utf8(), false),
                Field::new("error_class", dict_utf8(), false),
                Field::new("message", DataType::Utf8, false),
                Field::new("attempt", DataType::Int32, false),
                Field::new("input", DataType::Utf8, false),
                Field::new("config_hash", DataType::Utf8, false),
                Field::new("run_id", dict_utf8(), false),
                Field::new(
                    "failed_at",
                    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
                    false,
                ),
            ]))
        })
        .clone()
}

const FAILURES_DOCS: &[(&str, &str)] = &[
    ("doc_id", "Document id"),
    ("uri", "Where the input was read from"),
    (
        "sha256",
        "SHA-256 of the input bytes; empty when it could not be read",
    ),
    (
        "page_index",
        "Failed page, 0-based; null for a row about the whole document",
    ),
    (
        "stage",
        "`ingest`, `render`, `ocr`, `layout`, `extract` or `internal`",
    ),
    (
        "error_class",
        "Error class, as in `documents.error_class`; `page_error` for a page whose text failed, the stage's class (`layout_failed`, `extract_failed`, `timeout`, `internal`) for a page a later stage failed on",
    ),
    ("message", "Error message (at most 4 KiB)"),
    (
        "attempt",
        "Attempt number across runs for this input and config hash, from 1",
    ),
    (
        "input",
        "Input pointer: the path `--retry-failed` reads again",
    ),
    (
        "config_hash",
        "Hash of the effective pipeline configuration",
    ),
    (
        "run_id",
        "Run that wrote the row (the prefix of its part files)",
    ),
    (
        "failed_at",
        "When the failure was recorded (UTC, microseconds)",
    ),
];

/// Markdown documentation of `failures/`, in the format of
/// [`super::schema_markdown`].
pub fn failures_markdown() -> String {
    super::schema::markdown_table(
        "`failures/`",
        failures_schema().fields().iter().map(|f| f.as_ref()),
        |c| super::schema::doc_of(FAILURES_DOCS, c),
    )
}

fn dict<'a>(values: impl Iterator<Item = &'a str>) -> Result<ArrayRef, ArrowError> {
    let mut b = StringDictionaryBuilder::<Int32Type>::new();
    for v in values {
        b.append(v)?;
    }
    Ok(Arc::new(b.finish()))
}

fn utf8<'a>(values: impl Iterator<Item = &'a str>) -> Result<ArrayRef, ArrowError> {
    // Checked total so that an oversized batch is an error, not a panic.
    let values: Vec<&str> = values.collect();
    let total: usize = values.iter().map(|v| v.len()).sum();
    if i32::try_from(total).is_err() {
        return Err(ArrowError::OffsetOverflowError(total));
    }
    Ok(Arc::new(StringArray::from(values)))
}

/// `failures` rows to a batch with [`failures_schema`].
pub(crate) fn failures_batch(rows: &[FailureRow]) -> Result<RecordBatch, ArrowError> {
    let it = || rows.iter();
    let columns: Vec<ArrayRef> = vec![
        utf8(it().map(|r| r.doc_id.as_str()))?,
        utf8(it().map(|r| r.uri.as_str()))?,
        utf8(it().map(|r| r.sha256.as_str()))?,
        Arc::new(it().map(|r| r.page_index).collect::<Int32Array>()),
        dict(it().map(|r| r.stage.as_str()))?,
        dict(it().map(|r| r.error_class.as_str()))?,
        utf8(it().map(|r| r.message.as_str()))?,
        Arc::new(Int32Array::from_iter_values(it().map(|r| r.attempt))),
        utf8(it().map(|r| r.input.as_str()))?,
        utf8(it().map(|r| r.config_hash.as_str()))?,
        dict(it().map(|r| r.run_id.as_str()))?,
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(it().map(|r| r.failed_at))
                .with_timezone(UTC),
        ),
    ];
    RecordBatch::try_new(failures_schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    fn row(page: Option<i32>) -> FailureRow {
        FailureRow {
            doc_id: "d1".into(),
            uri: "file:///in/a.pdf".into(),
            sha256: "ab".repeat(32),
            page_index: page,
            stage: "render".into(),
            error_class: "corrupt".into(),
            message: "bad xref".into(),
            attempt: 2,
            input: "/in/a.pdf".into(),
            config_hash: "cfg".into(),
            run_id: "r1".into(),
            failed_at: 1_700_000_000_000_000,
        }
    }

    #[test]
    fn batch_matches_schema_and_keeps_nulls() {
        let b = failures_batch(&[row(None), row(Some(3))]).unwrap();
        assert_eq!(b.num_rows(), 2);
        let pi = b
            .column_by_name("page_index")
            .unwrap()
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap();
        assert!(pi.is_null(0));
        assert_eq!(pi.value(1), 3);
        assert_eq!(failures_batch(&[]).unwrap().num_rows(), 0);
    }

    #[test]
    fn every_column_documented_in_order() {
        let names: Vec<String> = failures_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let docs: Vec<&str> = FAILURES_DOCS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, docs);
        let md = failures_markdown();
        assert!(md.contains("| `page_index` | `int32` | yes |"), "{md}");
        assert!(md.contains("| `failed_at` | `timestamp[us, tz=UTC]` | no |"));
    }

    #[test]
    fn messages_cut_at_char_boundaries() {
        struct Case {
            s: &'static str,
            max: usize,
            want: &'static str,
        }
        for c in [
            Case {
                s: "abc",
                max: 5,
                want: "abc",
            },
            Case {
                s: "abcdef",
                max: 3,
                want: "abc",
            },
            Case {
                s: "aé",
                max: 2,
                want: "a",
            },
            Case {
                s: "é",
                max: 0,
                want: "",
            },
        ] {
            assert_eq!(truncate_message(c.s, c.max), c.want, "{:?}", c.s);
        }
    }
}
