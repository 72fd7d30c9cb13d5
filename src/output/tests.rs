//! Round trips through a temporary folder, read back with the parquet crate.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{
    Array, AsArray, BooleanArray, DictionaryArray, Float32Array, Float64Array, Int32Array,
    Int64Array, ListArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Int32Type, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::*;

const T0: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z in microseconds

fn doc(id: &str, status: DocStatus, pages: Option<i32>) -> DocumentRow {
    let failed = status == DocStatus::Failed;
    DocumentRow {
        doc_id: id.into(),
        uri: format!("file:///archive/{id}.pdf"),
        sha256: format!("{:0>64}", id.len()),
        bytes: 12_345,
        mime: "application/pdf".into(),
        pages,
        status,
        error_class: failed.then(|| "pdf_encrypted".to_string()),
        error_message: failed.then(|| "document is encrypted".to_string()),
        pipeline: "invoices".into(),
        config_hash: "cfg0123".into(),
        model_ids: if failed {
            vec![]
        } else {
            vec!["ppocr-v4-det".into(), "ppocr-v4-rec".into()]
        },
        started_at: T0 + 1_500,
        pages_text_layer: pages.unwrap_or(0),
        pages_ocr: 0,
        time_ingest_ms: 1.5,
        time_render_ms: 20.25,
        time_normalise_ms: 3.0,
        time_ocr_ms: 0.0,
        time_total_ms: 24.75,
        extracted: None,
    }
}

fn page(id: &str, index: i32, pdf: bool) -> PageRow {
    PageRow {
        doc_id: id.into(),
        page_index: index,
        width_px: 1700,
        height_px: 2200,
        dpi: Some(200.0),
        width_pt: pdf.then_some(612.0),
        height_pt: pdf.then_some(792.0),
        source: if pdf {
            PageSource::TextLayer
        } else {
            PageSource::Ocr
        },
        rotation: 90,
        skew_deg: -0.5,
        text: format!("{id} page {index} line 0\n{id} page {index} line 1"),
        mean_confidence: (!pdf).then_some(0.93),
        line_count: 2,
        error: None,
    }
}

fn line(id: &str, page: i32, index: i32, pdf: bool) -> LineRow {
    let y = 100.0 + 40.0 * index as f32;
    LineRow {
        doc_id: id.into(),
        page_index: page,
        line_index: index,
        text: format!("{id} page {page} line {index}"),
        confidence: 0.9,
        x0: 10.0,
        y0: y,
        x1: 500.0,
        y1: y + 30.0,
        polygon: vec![10.0, y, 500.0, y, 500.0, y + 30.0, 10.0, y + 30.0],
        bbox_pt: pdf.then_some([3.6, y * 0.36, 180.0, (y + 30.0) * 0.36]),
        font_size: pdf.then_some(10.0 + index as f32),
        bold: pdf.then_some(index == 0),
        region_index: None,
        region_class: None,
        source: if pdf { "text_layer" } else { "ppocr-v6" }.into(),
    }
}

/// A document with `n_pages` pages of two lines each.
fn document(id: &str, n_pages: i32, pdf: bool) -> (DocumentRow, Vec<PageRow>, Vec<LineRow>) {
    let pages = (0..n_pages).map(|p| page(id, p, pdf)).collect();
    let lines = (0..n_pages)
        .flat_map(|p| (0..2).map(move |l| line(id, p, l, pdf)))
        .collect();
    (doc(id, DocStatus::Ok, Some(n_pages)), pages, lines)
}

fn read(path: &Path) -> RecordBatch {
    let file = File::open(path).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    concat_batches(&schema, &batches).unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn col<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("column {name} has type {:?}", batch.schema()))
}

fn dict_values(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let d: &DictionaryArray<Int32Type> = col(batch, name);
    let values = d.values().as_string::<i32>();
    d.keys()
        .iter()
        .map(|k| k.map(|k| values.value(k as usize).to_string()))
        .collect()
}

fn write_three(dir: &Path) -> WriteSummary {
    let mut w = OutputWriter::create(dir, "run1", WriterOptions::default()).unwrap();
    let (d, p, l) = document("a", 2, true);
    w.write_document(d, p, l).unwrap();
    w.write_document(doc("b", DocStatus::Failed, None), vec![], vec![])
        .unwrap();
    let (d, p, l) = document("c", 1, false);
    w.write_document(d, p, l).unwrap();
    w.close().unwrap()
}

#[test]
fn round_trip_three_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = write_three(tmp.path());

    assert_eq!((summary.documents, summary.pages, summary.lines), (3, 3, 6));
    assert_eq!(summary.parts.len(), 1);
    assert_eq!(summary.committed.len(), 1);
    assert_eq!(summary.committed[0].doc_ids, vec!["a", "b", "c"]);
    let part = &summary.parts[0];
    assert_eq!(part.number, 0);
    let want_path: PathBuf = tmp.path().join("documents/part-run1-00000.parquet");
    assert_eq!(part.documents.path, want_path);
    for (table, file) in [
        ("documents", &part.documents),
        ("pages", &part.pages),
        ("lines", &part.lines),
    ] {
        assert_eq!(
            files_in(&tmp.path().join(table)),
            vec!["part-run1-00000.parquet"]
        );
        assert_eq!(
            file.bytes,
            std::fs::metadata(&file.path).unwrap().len(),
            "{table}"
        );
    }

    // documents
    let d = read(&part.documents.path);
    assert_eq!(d.num_rows(), 3);
    assert_eq!(d.schema().fields(), schemas().0.fields());
    let ts = d.schema().field_with_name("started_at").unwrap().clone();
    assert_eq!(
        ts.data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert!(!ts.is_nullable());
    let started: &TimestampMicrosecondArray = col(&d, "started_at");
    assert_eq!(started.value(0), T0 + 1_500);
    assert_eq!(started.timezone(), Some("UTC"));
    let ids: &StringArray = col(&d, "doc_id");
    assert_eq!(
        ids.iter().collect::<Vec<_>>(),
        [Some("a"), Some("b"), Some("c")]
    );
    assert_eq!(
        dict_values(&d, "status"),
        [Some("ok".into()), Some("failed".into()), Some("ok".into())]
    );
    assert_eq!(
        dict_values(&d, "error_class"),
        [None, Some("pdf_encrypted".to_string()), None]
    );
    assert_eq!(
        dict_values(&d, "mime")[1].as_deref(),
        Some("application/pdf")
    );
    assert_eq!(dict_values(&d, "pipeline")[2].as_deref(), Some("invoices"));
    let msg: &StringArray = col(&d, "error_message");
    assert!(msg.is_null(0) && msg.is_null(2));
    assert_eq!(msg.value(1), "document is encrypted");
    let pages: &Int32Array = col(&d, "pages");
    assert_eq!(pages.iter().collect::<Vec<_>>(), [Some(2), None, Some(1)]);
    let bytes: &Int64Array = col(&d, "bytes");
    assert_eq!(bytes.value(0), 12_345);
    let total: &Float64Array = col(&d, "time_total_ms");
    assert_eq!(total.value(2), 24.75);
    let models: &ListArray = col(&d, "model_ids");
    assert_eq!(models.value_length(0), 2);
    assert_eq!(models.value_length(1), 0);
    assert!(models.is_valid(1), "empty list, not null");
    assert_eq!(models.value(2).as_string::<i32>().value(1), "ppocr-v4-rec");
    let sha: &StringArray = col(&d, "sha256");
    assert_eq!(sha.value(0).len(), 64);

    // pages
    let p = read(&part.pages.path);
    assert_eq!(p.num_rows(), 3);
    assert_eq!(p.schema().fields(), schemas().1.fields());
    assert_eq!(
        dict_values(&p, "source"),
        [
            Some("text_layer".into()),
            Some("text_layer".into()),
            Some("ocr".into())
        ]
    );
    let w_pt: &Float32Array = col(&p, "width_pt");
    assert_eq!(
        w_pt.iter().collect::<Vec<_>>(),
        [Some(612.0), Some(612.0), None]
    );
    let conf: &Float32Array = col(&p, "mean_confidence");
    assert_eq!(conf.iter().collect::<Vec<_>>(), [None, None, Some(0.93)]);
    let text: &StringArray = col(&p, "text");
    assert_eq!(text.value(1), "a page 1 line 0\na page 1 line 1");
    let idx: &Int32Array = col(&p, "page_index");
    assert_eq!(idx.values().to_vec(), [0, 1, 0]);
    let rot: &Int32Array = col(&p, "rotation");
    assert_eq!(rot.value(2), 90);
    let err: &StringArray = col(&p, "error");
    assert_eq!(err.null_count(), 3);

    // lines
    let l = read(&part.lines.path);
    assert_eq!(l.num_rows(), 6);
    assert_eq!(l.schema().fields(), schemas().2.fields());
    let poly_field = l.schema().field_with_name("polygon").unwrap().clone();
    assert!(
        matches!(poly_field.data_type(), DataType::List(f) if f.data_type() == &DataType::Float32)
    );
    let poly: &ListArray = col(&l, "polygon");
    let row3 = poly.value(3);
    let row3 = row3.as_any().downcast_ref::<Float32Array>().unwrap();
    assert_eq!(
        row3.values().to_vec(),
        [10.0, 140.0, 500.0, 140.0, 500.0, 170.0, 10.0, 170.0]
    );
    let x0_pt: &Float32Array = col(&l, "x0_pt");
    let y1_pt: &Float32Array = col(&l, "y1_pt");
    assert_eq!(x0_pt.value(0), 3.6);
    assert_eq!(y1_pt.value(1), 170.0 * 0.36);
    assert!(x0_pt.is_null(4) && x0_pt.is_null(5) && y1_pt.is_null(5));
    assert_eq!(x0_pt.null_count(), 2);
    let size: &Float32Array = col(&l, "font_size");
    let bold: &BooleanArray = col(&l, "bold");
    assert_eq!(
        (size.value(1), bold.value(0), bold.value(1)),
        (11.0, true, false)
    );
    assert!(size.is_null(4) && bold.is_null(5));
    let lt: &StringArray = col(&l, "text");
    assert_eq!(lt.value(5), "c page 0 line 1");
    let ldoc: &StringArray = col(&l, "doc_id");
    assert_eq!(
        ldoc.iter().flatten().collect::<Vec<_>>(),
        ["a", "a", "a", "a", "c", "c"]
    );
}

#[test]
fn parquet_metadata_has_zstd_and_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = write_three(tmp.path());
    let reader =
        SerializedFileReader::new(File::open(&summary.parts[0].documents.path).unwrap()).unwrap();
    let meta = reader.metadata();
    assert_eq!(meta.file_metadata().num_rows(), 3);
    let rg = meta.row_group(0);
    for c in rg.columns() {
        assert!(
            matches!(c.compression(), Compression::ZSTD(_)),
            "{:?}",
            c.column_path()
        );
        assert!(c.statistics().is_some(), "{:?}", c.column_path());
    }
    let created = meta.file_metadata().created_by().unwrap_or_default();
    assert!(created.starts_with("docpipe "), "{created}");
}

#[test]
fn rollover_keeps_documents_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = WriterOptions {
        max_part_bytes: 600,
        batch_rows: 4,
        ..WriterOptions::default()
    };
    let mut w = OutputWriter::create(tmp.path(), "r", opts).unwrap();
    let ids: Vec<String> = (0..12).map(|i| format!("doc{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let (d, p, l) = document(id, 1 + (i as i32 % 4), i % 2 == 0);
        w.write_document(d, p, l).unwrap();
    }
    let mut taken = w.take_committed();
    let summary = w.close().unwrap();
    taken.extend(summary.committed.clone());

    assert!(summary.parts.len() >= 3, "{} parts", summary.parts.len());
    assert_eq!(taken.len(), summary.parts.len());
    let all_ids: Vec<String> = taken.iter().flat_map(|c| c.doc_ids.clone()).collect();
    assert_eq!(all_ids, ids);

    let mut seen = BTreeSet::new();
    let (mut n_docs, mut n_pages, mut n_lines) = (0, 0, 0);
    for (i, c) in taken.iter().enumerate() {
        assert_eq!(c.files.number, i as u32);
        let want: BTreeSet<&str> = c.doc_ids.iter().map(String::as_str).collect();
        for (file, expect_rows) in [
            (&c.files.documents, Some(c.doc_ids.len())),
            (&c.files.pages, None),
            (&c.files.lines, None),
        ] {
            let name = file
                .path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert_eq!(name, format!("part-r-{i:05}.parquet"));
            let b = read(&file.path);
            assert_eq!(b.num_rows() as u64, file.rows);
            if let Some(n) = expect_rows {
                assert_eq!(b.num_rows(), n);
            }
            let got: BTreeSet<&str> = col::<StringArray>(&b, "doc_id").iter().flatten().collect();
            assert_eq!(got, want, "{}", file.path.display());
        }
        // every page and line of each document is in this part
        let pages = read(&c.files.pages.path);
        let lines = read(&c.files.lines.path);
        let want_pages: usize = c
            .doc_ids
            .iter()
            .map(|id| 1 + (id[3..].parse::<usize>().unwrap() % 4))
            .sum();
        assert_eq!(pages.num_rows(), want_pages);
        assert_eq!(lines.num_rows(), 2 * want_pages);
        n_docs += c.files.documents.rows;
        n_pages += c.files.pages.rows;
        n_lines += c.files.lines.rows;
        for id in &c.doc_ids {
            assert!(seen.insert(id.clone()), "{id} in two parts");
        }
    }
    assert_eq!(
        (n_docs, n_pages, n_lines),
        (summary.documents, summary.pages, summary.lines)
    );
    for table in ["documents", "pages", "lines"] {
        let names = files_in(&tmp.path().join(table));
        assert_eq!(names.len(), summary.parts.len(), "{names:?}");
        assert!(names
            .iter()
            .all(|n| n.ends_with(".parquet") && !n.starts_with('.')));
    }
}

#[test]
fn dropped_writer_leaves_only_tmp_files() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut w = OutputWriter::create(tmp.path(), "crash", WriterOptions::default()).unwrap();
        let (d, p, l) = document("a", 2, true);
        w.write_document(d, p, l).unwrap();
    }
    for table in ["documents", "pages", "lines"] {
        assert_eq!(
            files_in(&tmp.path().join(table)),
            vec![".part-crash-00000.parquet.tmp"]
        );
    }
    // A new writer with the same prefix clears the leftovers and starts at 0.
    let mut w = OutputWriter::create(tmp.path(), "crash", WriterOptions::default()).unwrap();
    for table in ["documents", "pages", "lines"] {
        assert!(files_in(&tmp.path().join(table)).is_empty());
    }
    let (d, p, l) = document("a", 1, true);
    w.write_document(d, p, l).unwrap();
    let s = w.close().unwrap();
    assert_eq!(s.parts[0].number, 0);
}

#[test]
fn rerun_with_same_prefix_continues_numbering() {
    let tmp = tempfile::tempdir().unwrap();
    write_three(tmp.path());
    let summary = write_three(tmp.path());
    assert_eq!(summary.parts[0].number, 1);
    assert_eq!(
        files_in(&tmp.path().join("pages")),
        vec!["part-run1-00000.parquet", "part-run1-00001.parquet"]
    );
    // another prefix is independent
    let w = OutputWriter::create(tmp.path(), "run2", WriterOptions::default()).unwrap();
    let (d, p, l) = document("z", 1, false);
    let mut w = w;
    w.write_document(d, p, l).unwrap();
    assert_eq!(w.close().unwrap().parts[0].number, 0);
}

#[test]
fn empty_writer_creates_no_files() {
    let tmp = tempfile::tempdir().unwrap();
    let w = OutputWriter::create(tmp.path(), "empty", WriterOptions::default()).unwrap();
    let s = w.close().unwrap();
    assert_eq!(s, WriteSummary::default());
    for table in ["documents", "pages", "lines"] {
        assert!(tmp.path().join(table).is_dir());
        assert!(files_in(&tmp.path().join(table)).is_empty());
    }
}

#[test]
fn invalid_prefix_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["", "../x", "a b"] {
        let r = OutputWriter::create(tmp.path(), bad, WriterOptions::default());
        match r {
            Err(OutputError::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}")
            }
            Err(e) => panic!("{bad:?}: unexpected {e}"),
            Ok(_) => panic!("{bad:?} accepted"),
        }
    }
}

#[test]
fn odd_values_round_trip() {
    // NaN, empty strings, empty polygon, a page error, unicode text.
    let tmp = tempfile::tempdir().unwrap();
    let mut w = OutputWriter::create(tmp.path(), "odd", WriterOptions::default()).unwrap();
    let mut d = doc("ü", DocStatus::Partial, Some(1));
    d.time_ocr_ms = f64::NAN;
    let mut p = page("ü", 0, false);
    p.text = String::new();
    p.error = Some("ocr timeout".into());
    p.source = PageSource::Empty;
    p.skew_deg = f32::NAN;
    let mut l = line("ü", 0, 0, false);
    l.polygon = vec![];
    l.text = "Grüße — 東京".into();
    w.write_document(d, vec![p], vec![l]).unwrap();
    let s = w.close().unwrap();
    let part = &s.parts[0];
    let d = read(&part.documents.path);
    assert!(col::<Float64Array>(&d, "time_ocr_ms").value(0).is_nan());
    assert_eq!(dict_values(&d, "status"), [Some("partial".to_string())]);
    let p = read(&part.pages.path);
    assert_eq!(col::<StringArray>(&p, "text").value(0), "");
    assert_eq!(col::<StringArray>(&p, "error").value(0), "ocr timeout");
    assert_eq!(dict_values(&p, "source"), [Some("empty".to_string())]);
    assert!(col::<Float32Array>(&p, "skew_deg").value(0).is_nan());
    let l = read(&part.lines.path);
    assert_eq!(col::<StringArray>(&l, "text").value(0), "Grüße — 東京");
    assert_eq!(col::<ListArray>(&l, "polygon").value_length(0), 0);
}

#[test]
fn many_rows_span_batches_and_row_groups() {
    // batch_rows and row_group_bytes small enough to exercise both paths.
    let tmp = tempfile::tempdir().unwrap();
    let opts = WriterOptions {
        batch_rows: 7,
        row_group_bytes: 4_096,
        ..WriterOptions::default()
    };
    let mut w = OutputWriter::create(tmp.path(), "big", opts).unwrap();
    for i in 0..20 {
        let (d, p, l) = document(&format!("d{i}"), 10, i % 3 == 0);
        w.write_document(d, p, l).unwrap();
    }
    let s = w.close().unwrap();
    assert_eq!((s.documents, s.pages, s.lines), (20, 200, 400));
    let part = &s.parts[0];
    let reader = SerializedFileReader::new(File::open(&part.lines.path).unwrap()).unwrap();
    assert!(reader.metadata().num_row_groups() > 1);
    let l = read(&part.lines.path);
    assert_eq!(l.num_rows(), 400);
    let li: &Int32Array = col(&l, "line_index");
    assert_eq!(li.values().iter().filter(|v| **v == 1).count(), 200);
    let ld: &StringArray = col(&l, "doc_id");
    assert_eq!(ld.value(399), "d19");
}

// ---------------------------------------------------------------------------
// Typed field columns of `documents/`.

fn field_schema() -> std::sync::Arc<crate::extract::FieldSchema> {
    std::sync::Arc::new(
        crate::extract::FieldSchema::from_value(serde_json::json!({
            "type": "object",
            "required": ["total"],
            "properties": {
                "date": {"type": "string", "format": "date"},
                "total": {"type": "number"},
                "net": {"type": "number", "x-docpipe": {"decimal": [10, 2]}},
                "count": {"type": "integer"},
                "paid": {"type": "boolean"},
                "currency": {"enum": ["EUR", "USD"]},
                "issued_at": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "seller": {"type": "object", "properties": {
                    "name": {"type": "string"}, "vat": {"type": ["string", "null"]}}}
            }
        }))
        .unwrap(),
    )
}

fn extracted(
    pairs: &[(&str, serde_json::Value)],
    schema: &crate::extract::FieldSchema,
) -> crate::extract::Extracted {
    let record = crate::extract::Record {
        fields: pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    crate::extract::FieldValue {
                        value: v.clone(),
                        confidence: 0.75,
                        page: Some(1),
                        bbox: Some(crate::types::BBox {
                            x0: 1.0,
                            y0: 2.0,
                            x1: 3.0,
                            y1: 4.0,
                        }),
                    },
                )
            })
            .collect(),
    };
    crate::extract::Extracted::new(record, schema)
}

#[test]
fn field_columns_round_trip_typed() {
    use serde_json::json;
    let schema = field_schema();
    let tmp = tempfile::tempdir().unwrap();
    let opts = WriterOptions {
        fields: Some(schema.clone()),
        ..WriterOptions::default()
    };
    let mut w = OutputWriter::create(tmp.path(), "f", opts).unwrap();
    let mut a = doc("a", DocStatus::Ok, Some(1));
    a.extracted = Some(extracted(
        &[
            ("date", json!("2018-12-25")),
            ("total", json!(9.0)),
            ("net", json!(1234.56)),
            ("count", json!(3)),
            ("paid", json!(true)),
            ("currency", json!("EUR")),
            ("issued_at", json!("1970-01-01T00:00:01Z")),
            ("tags", json!(["x", "y"])),
            ("seller", json!({"name": "ACME", "vat": null})),
        ],
        &schema,
    ));
    // Invalid: no total, a date that is no date, an unknown currency.
    let mut b = doc("b", DocStatus::Ok, Some(1));
    b.extracted = Some(extracted(
        &[("date", json!("2018-02-30")), ("currency", json!("GBP"))],
        &schema,
    ));
    // Failed before extraction: no record at all.
    let c = doc("c", DocStatus::Failed, None);
    for d in [a, b, c] {
        w.write_document(d, vec![], vec![]).unwrap();
    }
    let summary = w.close().unwrap();
    let d = read(&summary.parts[0].documents.path);
    assert_eq!(d.num_rows(), 3);
    let ty = |name: &str| {
        d.schema()
            .field_with_name(name)
            .unwrap()
            .data_type()
            .clone()
    };
    assert_eq!(ty("date"), DataType::Date32);
    assert_eq!(ty("total"), DataType::Float64);
    assert_eq!(ty("net"), DataType::Decimal128(10, 2));
    assert_eq!(ty("count"), DataType::Int64);
    assert_eq!(ty("paid"), DataType::Boolean);
    assert_eq!(
        ty("currency"),
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
    );
    assert_eq!(
        ty("issued_at"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert!(matches!(ty("tags"), DataType::List(_)));
    assert!(matches!(ty("seller"), DataType::Struct(_)));
    assert_eq!(
        d.schema().fields().len(),
        schemas().0.fields().len() + 9 * 5 + 2
    );

    let date = d
        .column_by_name("date")
        .unwrap()
        .as_primitive::<arrow::datatypes::Date32Type>();
    assert_eq!(date.value(0), 17890);
    assert!(date.is_null(1), "an impossible date is stored as null");
    assert!(date.is_null(2));
    let total: &Float64Array = col(&d, "total");
    assert_eq!(total.value(0), 9.0);
    assert!(total.is_null(1) && total.is_null(2));
    let net = d
        .column_by_name("net")
        .unwrap()
        .as_primitive::<arrow::datatypes::Decimal128Type>();
    assert_eq!(net.value(0), 123_456);
    let count: &Int64Array = col(&d, "count");
    assert_eq!(count.value(0), 3);
    assert!(d.column_by_name("paid").unwrap().as_boolean().value(0));
    assert_eq!(
        dict_values(&d, "currency"),
        [Some("EUR".to_string()), None, None]
    );
    let ts: &TimestampMicrosecondArray = col(&d, "issued_at");
    assert_eq!(ts.value(0), 1_000_000);
    let tags: &ListArray = col(&d, "tags");
    let t0 = tags.value(0);
    let t0: Vec<_> = t0.as_string::<i32>().iter().collect();
    assert_eq!(t0, [Some("x"), Some("y")]);
    assert!(tags.is_null(1));
    let seller = d.column_by_name("seller").unwrap().as_struct();
    assert_eq!(
        seller
            .column_by_name("name")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "ACME"
    );
    assert!(seller.column_by_name("vat").unwrap().is_null(0));
    assert!(seller.is_null(1));

    let conf: &Float32Array = col(&d, "total__confidence");
    assert_eq!(conf.value(0), 0.75);
    assert!(conf.is_null(1));
    let page: &Int32Array = col(&d, "total__page");
    assert_eq!(page.value(0), 1);
    let bbox: &ListArray = col(&d, "total__bbox");
    let b0 = bbox.value(0);
    assert_eq!(
        b0.as_primitive::<arrow::datatypes::Float32Type>()
            .values()
            .to_vec(),
        [1.0, 2.0, 3.0, 4.0]
    );
    assert!(bbox.is_null(2));

    let valid = d.column_by_name("record_valid").unwrap().as_boolean();
    assert!(valid.value(0));
    assert!(!valid.value(1));
    assert!(valid.is_null(2), "no record: null, not false");
    let errors: &ListArray = col(&d, "record_errors");
    assert_eq!(errors.value(0).len(), 0);
    assert!(errors.is_null(2));
    let e1 = errors.value(1);
    let e1 = e1.as_struct();
    let paths: Vec<_> = e1
        .column_by_name("path")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    let keywords: Vec<_> = e1
        .column_by_name("keyword")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    let mut pairs: Vec<(&str, &str)> = paths.into_iter().zip(keywords).collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [("", "required"), ("/currency", "enum"), ("/date", "format")]
    );
}

#[test]
fn writer_without_fields_ignores_records() {
    let tmp = tempfile::tempdir().unwrap();
    let schema = field_schema();
    let mut w = OutputWriter::create(tmp.path(), "nf", WriterOptions::default()).unwrap();
    let mut a = doc("a", DocStatus::Ok, Some(1));
    a.extracted = Some(extracted(&[("total", serde_json::json!(1.0))], &schema));
    w.write_document(a, vec![], vec![]).unwrap();
    let summary = w.close().unwrap();
    let d = read(&summary.parts[0].documents.path);
    assert_eq!(d.schema().fields(), schemas().0.fields());
}

#[test]
fn regions_go_in_the_same_part_and_only_where_there_are_some() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = WriterOptions {
        commit_every_docs: 2,
        ..WriterOptions::default()
    };
    let mut w = OutputWriter::create(tmp.path(), "run1", opts).unwrap();
    let region = |page: i32, index: i32, class: &str, pdf: bool| crate::output::RegionRow {
        doc_id: "a".into(),
        page_index: page,
        region_index: index,
        class: class.into(),
        score: 0.5 + index as f32 / 10.0,
        x0: 10.0,
        y0: 20.0 * index as f32,
        x1: 500.0,
        y1: 20.0 * index as f32 + 15.0,
        bbox_pt: pdf.then_some([3.6, 700.0, 180.0, 705.4]),
        source: "rapid-layout".into(),
    };
    let (d, p, mut l) = document("a", 1, true);
    l[1].region_index = Some(1);
    l[1].region_class = Some("table".into());
    let rows = crate::output::DocRows {
        doc: d,
        pages: p,
        lines: l,
        regions: vec![region(0, 0, "title", true), region(0, 1, "table", false)],
        captions: vec![CaptionRow {
            doc_id: "a".into(),
            page_index: 0,
            region_index: None,
            source: "florence2-tiny".into(),
            task: "caption".into(),
            text: "A page.".into(),
            confidence: 0.25,
        }],
        stage_failures: Vec::new(),
    };
    w.write_rows(rows, Vec::new()).unwrap();
    let (d, p, l) = document("b", 1, false);
    w.write_document(d, p, l).unwrap();
    // The second part has no region rows: no regions file.
    let (d, p, l) = document("c", 1, false);
    w.write_document(d, p, l).unwrap();
    let summary = w.close().unwrap();
    assert_eq!(summary.regions, 2);
    assert_eq!(summary.parts.len(), 2);
    let first = &summary.parts[0];
    let tables: Vec<&str> = first.tables().iter().map(|(t, _)| *t).collect();
    assert_eq!(
        tables,
        ["documents", "pages", "lines", "regions", "captions"]
    );
    assert!(summary.parts[1].regions.is_none());
    assert!(summary.parts[1].captions.is_none());
    assert_eq!(summary.captions, 1);
    let c = read(&first.captions.as_ref().unwrap().path);
    assert_eq!(
        c.schema().fields(),
        crate::output::captions_schema().fields()
    );
    assert_eq!(dict_values(&c, "task"), [Some("caption".into())]);
    assert_eq!(dict_values(&c, "source"), [Some("florence2-tiny".into())]);
    let ri: &Int32Array = col(&c, "region_index");
    assert_eq!(ri.iter().collect::<Vec<_>>(), [None]);
    assert_eq!(
        files_in(&tmp.path().join("regions")),
        vec!["part-run1-00000.parquet"]
    );
    let r = read(&first.regions.as_ref().unwrap().path);
    assert_eq!(
        r.schema().fields(),
        crate::output::regions_schema().fields()
    );
    assert_eq!(
        dict_values(&r, "class"),
        [Some("title".into()), Some("table".into())]
    );
    assert_eq!(
        dict_values(&r, "source"),
        [Some("rapid-layout".into()), Some("rapid-layout".into())]
    );
    let y1_pt: &Float32Array = col(&r, "y1_pt");
    assert_eq!(y1_pt.iter().collect::<Vec<_>>(), [Some(705.4), None]);
    let l = read(&first.lines.path);
    let idx: &Int32Array = col(&l, "region_index");
    // Documents a and b, two lines each.
    assert_eq!(idx.iter().collect::<Vec<_>>(), [None, Some(1), None, None]);
    assert_eq!(
        dict_values(&l, "region_class"),
        [None, Some("table".into()), None, None]
    );
    assert_eq!(
        dict_values(&l, "source"),
        [
            Some("text_layer".into()),
            Some("text_layer".into()),
            Some("ppocr-v6".into()),
            Some("ppocr-v6".into())
        ]
    );
}
