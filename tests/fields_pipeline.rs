//! Field extraction through the binary: the shipped invoice pipeline (layout
//! engine) over the fixtures, the VLM engine with the tiny fixture models,
//! `on_invalid: fail`, and refusals of unusable schemas. Parquet is read back
//! with pyarrow, so the typed columns are checked by a real reader.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs a Python snippet with pyarrow importable; `OUT` is the output folder.
/// Returns stdout; panics with stderr when it fails.
fn pyarrow(out: &Path, code: &str) -> String {
    let (python, path) = python_with_pyarrow();
    let o = std::process::Command::new(python)
        .env("PYTHONPATH", path)
        .env("OUT", out)
        .args(["-c", code])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The text after `label` on the line of the fixture manifest that starts
/// with it (the ground truth the fixture generator wrote into the page).
fn manifest_value(label: &str) -> String {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("manifest.json")).unwrap()).unwrap();
    let files = m["files"].as_array().unwrap();
    let doc = files
        .iter()
        .find(|f| f["path"] == "samples/born-digital.pdf")
        .unwrap();
    doc["pages"][0]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no `{label}` line in the manifest"))
        .trim()
        .to_string()
}

#[test]
fn invoice_pipeline_writes_typed_fields_that_match_the_fixtures() {
    let out = tmp("fields-invoices");
    let pipeline = root().join("pipelines/invoices.yaml");
    let o = run(&[
        "run",
        pipeline.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("records:   5 extracted, 4 valid, 1 invalid"),
        "{stderr}"
    );
    let issuer = manifest_value("");
    let number = manifest_value("Invoice Number:");
    let amount = manifest_value("Total amount due:");
    let (amount, currency) = amount.split_once(' ').unwrap();
    let amount: f64 = amount.replace(',', "").parse().unwrap();
    assert_eq!(manifest_value("Invoice Date:"), "March 14, 2024");
    let got = pyarrow(
        &out,
        r#"
import os, pyarrow as pa, pyarrow.dataset as ds
t = ds.dataset(os.path.join(os.environ["OUT"], "documents"), format="parquet").to_table()
s = t.schema
print("types", s.field("date").type, s.field("amount").type, s.field("currency").type,
      s.field("amount__confidence").type, s.field("amount__page").type,
      s.field("amount__bbox").type, s.field("record_valid").type)
for r in sorted(t.to_pylist(), key=lambda r: r["uri"]):
    name = r["uri"].rsplit("/", 1)[1]
    bbox = r["amount__bbox"]
    print("row", name, r["issuer"], r["invoice_number"], r["date"].isoformat() if r["date"] else None,
          repr(r["amount"]), r["currency"], r["amount__page"],
          len(bbox) if bbox else None, r["record_valid"],
          ";".join(e["path"] + " " + e["keyword"] for e in r["record_errors"]))
"#,
    );
    assert!(
        got.contains("types date32[day] double string float int32 list<item: float not null> bool"),
        "{got}"
    );
    // The four renderings of the Northwind invoice: text layer, scanned
    // PDF, multi-page TIFF, EXIF-rotated photo.
    for name in [
        "born-digital.pdf",
        "scanned.pdf",
        "scan-pages.tiff",
        "photo-exif.jpg",
    ] {
        let want =
            format!("row {name} {issuer} {number} 2024-03-14 {amount:?} {currency} 0 4 True ");
        assert!(
            got.lines().any(|l| format!("{l} ").starts_with(&want)),
            "{name}: want `{want}` in\n{got}"
        );
    }
    // The wide page is a shipment summary, not an invoice: no number, so the
    // record is kept and flagged.
    let wide = got
        .lines()
        .find(|l| l.starts_with("row wide-page.png"))
        .unwrap();
    assert!(wide.contains(" None "), "{wide}");
    assert!(wide.ends_with("False  required"), "{wide}");
}

/// A schema the invoice fixture cannot satisfy: a purchase-order number it
/// does not have is required.
const PO_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["invoice_number", "po_number"],
  "properties": {
    "invoice_number": {"type": "string", "title": "Invoice number"},
    "po_number": {"type": "string", "title": "PO number", "x-docpipe": {"labels": ["purchase order"]}}
  }
}"#;

#[test]
fn on_invalid_fail_fails_the_document_and_lists_it_in_failures() {
    let dir = tmp("fields-fail");
    std::fs::write(dir.join("po.schema.json"), PO_SCHEMA).unwrap();
    let pipeline = dir.join("p.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: po\ninput: {{path: {}}}\nocr: {{mode: never}}\nextract: {{schema: po.schema.json, on_invalid: fail}}\noutput: {{path: out}}\n",
            fixtures().join("samples/born-digital.pdf").display()
        ),
    )
    .unwrap();
    let o = run(&["run", pipeline.to_str().unwrap(), "--quiet"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("invalid_record 1"), "{stderr}");
    let out = dir.join("out");
    let docs = read_table(&out, "documents");
    assert_eq!(strings(&docs, "status"), [Some("failed".into())]);
    assert_eq!(
        strings(&docs, "error_class"),
        [Some("invalid_record".into())]
    );
    let msg = strings(&docs, "error_message")[0].clone().unwrap();
    assert!(
        msg.contains("required") && msg.contains("po_number"),
        "{msg}"
    );
    // The record is still there, with what was found.
    assert_eq!(
        strings(&docs, "invoice_number"),
        [Some(manifest_value("Invoice Number:"))]
    );
    assert_eq!(strings(&docs, "record_valid"), [Some("false".into())]);
    let failures = read_table(&out, "failures");
    assert_eq!(strings(&failures, "stage"), [Some("extract".into())]);
    assert_eq!(
        strings(&failures, "error_class"),
        [Some("invalid_record".into())]
    );
}

/// `extract.review_below` marks found fields under it and required fields
/// not found; the summary counts them; without it the column is null.
#[test]
fn review_below_marks_low_confidence_and_missing_required_fields() {
    let dir = tmp("fields-review");
    std::fs::write(dir.join("po.schema.json"), PO_SCHEMA).unwrap();
    let sample = fixtures().join("samples/born-digital.pdf");
    let mut seen = Vec::new();
    for (name, review) in [
        ("none", ""),
        ("zero", ", review_below: 0"),
        ("all", ", review_below: 1"),
    ] {
        let pipeline = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &pipeline,
            format!(
                "name: po\ninput: {{path: {}}}\nocr: {{mode: never}}\nextract: {{schema: po.schema.json{review}}}\noutput: {{path: out-{name}}}\n",
                sample.display()
            ),
        )
        .unwrap();
        let o = run(&["run", pipeline.to_str().unwrap(), "--quiet"]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{stderr}");
        let got = pyarrow(
            &dir.join(format!("out-{name}")),
            r#"
import os, pyarrow.dataset as ds
t = ds.dataset(os.path.join(os.environ["OUT"], "documents"), format="parquet").to_table()
assert t.schema.field("po_number__review").type == "bool"
r = t.to_pylist()[0]
print(r["invoice_number"] is not None, r["invoice_number__confidence"] < 1.0,
      r["invoice_number__review"], r["po_number"], r["po_number__review"])
"#,
        );
        seen.push((name, got.trim().to_string(), stderr.into_owned()));
    }
    // The number is found, the PO number (required) is not.
    let (_, none, stderr) = &seen[0];
    let under_one = seen_conf(none);
    assert_eq!(none, &format!("True {under_one} None None None"));
    assert!(!stderr.contains("review:"), "{stderr}");
    let (_, zero, stderr) = &seen[1];
    assert_eq!(zero, &format!("True {under_one} False None True"));
    assert!(
        stderr.contains("review:    1 fields in 1 records"),
        "{stderr}"
    );
    // At 1 the number is flagged exactly when its confidence is under 1.
    let (_, all, stderr) = &seen[2];
    assert_eq!(all, &format!("True {under_one} {under_one} None True"));
    let n = 1 + usize::from(under_one == "True");
    assert!(
        stderr.contains(&format!("review:    {n} fields in 1 records")),
        "{stderr}"
    );
}

/// The second word of a printed row: whether the confidence is under 1.
fn seen_conf(row: &str) -> String {
    row.split(' ').nth(1).unwrap_or("").to_string()
}

#[test]
fn unusable_schemas_are_refused_before_anything_runs() {
    let dir = tmp("fields-refused");
    std::fs::write(
        dir.join("s.json"),
        r#"{"type": "object", "properties": {"total": {"oneOf": [{"type": "number"}, {"type": "string"}]}}}"#,
    )
    .unwrap();
    let pipeline = dir.join("p.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: t\ninput: {{path: {}}}\nextract: {{schema: s.json}}\noutput: {{path: out}}\n",
            fixtures().join("samples").display()
        ),
    )
    .unwrap();
    for cmd in ["check", "run"] {
        let o = docpipe()
            .args([cmd, pipeline.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {stderr}");
        assert!(
            stderr.contains("s.json: /properties/total/oneOf: `oneOf` has no single column type"),
            "{cmd}: {stderr}"
        );
    }
    assert!(!dir.join("out").exists(), "run wrote output");
    // A JSON syntax error names its line and column.
    std::fs::write(
        dir.join("s.json"),
        "{\"type\": \"object\",\n \"properties\": {]}",
    )
    .unwrap();
    let o = docpipe()
        .args(["check", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not JSON (line 2, column"), "{stderr}");
}

#[test]
fn check_and_schema_describe_the_field_columns() {
    let pipeline = root().join("pipelines/receipts.yaml");
    let o = run(&["check", pipeline.to_str().unwrap()]);
    assert!(o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("fields: 4 (company, address, date, total), layout engine"),
        "{stdout}"
    );
    let o = run(&["schema", pipeline.to_str().unwrap()]);
    assert!(o.status.success());
    let md = String::from_utf8_lossy(&o.stdout);
    for row in [
        "| `date` | `date32[day]` | yes |",
        "| `total` | `double` | yes |",
        "| `total__bbox` | `list<float>` | yes |",
        "| `record_valid` | `bool` | yes |",
    ] {
        assert!(md.contains(row), "{row} not in\n{md}");
    }
}

#[test]
fn vlm_pipeline_with_each_tiny_model_writes_valid_typed_records() {
    for model in ["florence2-tiny", "smolvlm-tiny"] {
        let dir = tmp(&format!("fields-vlm-{model}"));
        std::fs::copy(
            fixtures().join("vlm/fields.schema.json"),
            dir.join("s.json"),
        )
        .unwrap();
        let pipeline = dir.join("p.yaml");
        let samples = fixtures().join("samples");
        std::fs::write(
            &pipeline,
            format!(
                "name: vlm\ninput:\n  path: {}\n  include: ['born-digital.pdf', 'small.*', 'scan-pages.tiff']\nocr: {{mode: never}}\n\
                 extract: {{schema: s.json, engine: vlm, model: {}, batch_size: 4, max_new_tokens: 96}}\n\
                 runtime: {{device: cpu}}\noutput: {{path: out}}\n",
                samples.display(),
                fixtures().join("vlm").join(model).display()
            ),
        )
        .unwrap();
        let o = run(&["run", pipeline.to_str().unwrap(), "--quiet"]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{model}: {stderr}");
        // born-digital.pdf (2 pages), small.bmp, small.webp, scan-pages.tiff.
        assert!(
            stderr.contains("records:   4 extracted, 4 valid, 0 invalid"),
            "{model}: {stderr}"
        );
        assert!(stderr.contains("extract:   VLM "), "{model}: {stderr}");
        assert!(stderr.contains(" tokens/s"), "{model}: {stderr}");
        let got = pyarrow(
            &dir.join("out"),
            r#"
import os, pyarrow.dataset as ds
t = ds.dataset(os.path.join(os.environ["OUT"], "documents"), format="parquet").to_table()
s = t.schema
print("types", s.field("total").type, s.field("date").type, s.field("items").type, s.field("kind").type)
for r in t.to_pylist():
    print("row", r["status"], r["record_valid"], len(r["record_errors"]),
          all(r[f] is not None for f in ["vendor", "total", "date", "kind", "items"]),
          all(0.0 <= r[f + "__confidence"] <= 1.0 for f in ["vendor", "total", "date", "kind", "items"]),
          r["model_ids"])
"#,
        );
        assert!(
            got.contains("types double date32[day] int64 dictionary<values=string"),
            "{model}: {got}"
        );
        let rows: Vec<&str> = got.lines().filter(|l| l.starts_with("row ")).collect();
        assert_eq!(rows.len(), 4, "{model}: {got}");
        for r in rows {
            assert!(
                r.starts_with(&format!("row ok True 0 True True ['vlm:{model}']")),
                "{model}: {r}"
            );
        }
    }
}

/// The seller's name is the largest (and bold) text at the top of the page,
/// but not its first line, has no legal suffix, and a buyer with one (`Ltd`)
/// sits below: the text layer's font size makes the name the issuer.
#[test]
fn issuer_is_the_letterhead_in_the_largest_font() {
    let dir = tmp("fields-letterhead");
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let at = |x: f32, y: f32, size: f32, bold: bool, text| TextRun {
        x,
        y,
        size,
        bold,
        text,
    };
    let pdf = pdf_of_runs(&[
        at(72.0, 750.0, 9.0, false, "Date: 14 March 2024"),
        at(72.0, 715.0, 22.0, true, "Brightwater Analytics"),
        at(72.0, 690.0, 9.0, false, "Invoice No: BW-2024-0042"),
        at(72.0, 640.0, 9.0, false, "Bill to:"),
        at(72.0, 628.0, 9.0, false, "Harbour Holdings Ltd"),
        at(72.0, 616.0, 9.0, false, "7 Quay Road, Portsmouth"),
        at(72.0, 560.0, 9.0, false, "Consulting, March 2024"),
        at(400.0, 560.0, 9.0, false, "1,200.00"),
        at(72.0, 530.0, 9.0, false, "Total: EUR 1,200.00"),
    ]);
    std::fs::write(dir.join("in/letterhead.pdf"), pdf).unwrap();
    let schema = root().join("schemas/invoice.schema.json");
    let pipeline = dir.join("p.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: letterhead\ninput: {{path: {}}}\nocr: {{mode: never}}\n\
             extract: {{schema: {}, engine: layout, on_invalid: keep}}\noutput: {{path: {}}}\n",
            dir.join("in").display(),
            schema.display(),
            dir.join("out").display()
        ),
    )
    .unwrap();
    let o = run_docpipe(&pipeline);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let docs = read_table(&dir.join("out"), "documents");
    assert_eq!(
        strings(&docs, "issuer"),
        [Some("Brightwater Analytics".to_string())]
    );
    // The lines table carries the size and weight it was found by.
    let lines = read_table(&dir.join("out"), "lines");
    let text = strings(&lines, "text");
    let size = strings(&lines, "font_size");
    let bold = strings(&lines, "bold");
    let i = text
        .iter()
        .position(|t| t.as_deref() == Some("Brightwater Analytics"))
        .unwrap();
    assert_eq!(
        (size[i].as_deref(), bold[i].as_deref()),
        (Some("22.0"), Some("true"))
    );
    let j = text
        .iter()
        .position(|t| t.as_deref() == Some("Harbour Holdings Ltd"))
        .unwrap();
    assert_eq!(
        (size[j].as_deref(), bold[j].as_deref()),
        (Some("9.0"), Some("false"))
    );
}

fn run_docpipe(pipeline: &Path) -> std::process::Output {
    run(&["run", pipeline.to_str().unwrap(), "--quiet"])
}
