//! Field extraction from the outside: the shipped schemas and pipelines, the
//! layout engine on synthetic pages, validation and merging.

use std::path::Path;

use docpipe::config::Pipeline;
use docpipe::extract::{
    merge_pages, Extracted, FieldSchema, FieldValue, LayoutEngine, Line, PageLines, Record,
};
use docpipe::types::BBox;
use serde_json::{json, Value};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A line of text at (x, y), 20 px high, 10 px per character.
fn line(text: &str, x: f32, y: f32) -> Line {
    Line {
        text: text.to_string(),
        bbox: BBox {
            x0: x,
            y0: y,
            x1: x + 10.0 * text.chars().count() as f32,
            y1: y + 20.0,
        },
        confidence: 0.9,
        font_size: None,
        bold: false,
    }
}

fn page(index: u32, lines: Vec<Line>) -> PageLines {
    PageLines {
        page: index,
        width: 800.0,
        height: 1200.0,
        lines,
    }
}

fn value(r: &Record, name: &str) -> Option<Value> {
    r.fields.get(name).map(|v| v.value.clone())
}

fn receipt_schema() -> FieldSchema {
    FieldSchema::load(&root().join("schemas/receipt.schema.json"))
        .expect("the shipped receipt schema loads")
}

#[test]
fn shipped_schemas_load_and_pipelines_check() {
    for (pipeline, schema, fields) in [
        (
            "pipelines/receipts.yaml",
            "schemas/receipt.schema.json",
            // The schema's own order.
            &["company", "address", "date", "total"][..],
        ),
        (
            "pipelines/invoices.yaml",
            "schemas/invoice.schema.json",
            &[
                "issuer",
                "invoice_number",
                "date",
                "amount",
                "currency",
                "bill_to",
            ][..],
        ),
    ] {
        let p =
            Pipeline::load(&root().join(pipeline)).unwrap_or_else(|e| panic!("{pipeline}: {e}"));
        let e = p.extract.as_ref().expect("an extract section");
        assert!(e.schema.ends_with(schema), "{}", e.schema.display());
        let s = FieldSchema::load(&e.schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
        let names: Vec<&str> = s.fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, fields);
    }
}

#[test]
fn refusal_names_the_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        r##"{"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"$ref": "#/x"}}}}}"##,
    )
    .unwrap();
    let e = FieldSchema::load(&file).unwrap_err();
    assert_eq!(e.pointer, "/properties/a/properties/b/$ref");
    assert!(
        e.to_string()
            .starts_with("/properties/a/properties/b/$ref: "),
        "{e}"
    );
    std::fs::write(&file, "{nope").unwrap();
    let e = FieldSchema::load(&file).unwrap_err();
    assert!(e.message.contains("line 1"), "{e}");
}

#[test]
fn receipt_fields_from_a_synthetic_receipt() {
    let engine = LayoutEngine::new(&receipt_schema());
    let lines = vec![
        line("TAN WOON YANN", 70.0, 20.0),
        line("BOOK TA .K(TAMAN DAYA) SDN BHD", 50.0, 80.0),
        line("789417-W", 200.0, 120.0),
        line("NO.53 55,57 & 59, JALAN SAGU 18,", 110.0, 145.0),
        line("TAMAN DAYA,", 190.0, 170.0),
        line("81100 JOHOR BAHRU, JOHOR.", 160.0, 195.0),
        line("TEL: 07-3507405", 150.0, 220.0),
        line("DOCUMENT NO : TD01167104", 50.0, 340.0),
        // Label left, value right on the same row (separate boxes).
        line("DATE:", 50.0, 370.0),
        line("25/12/2018 8:13:39 PM", 165.0, 371.0),
        line("SUB TOTAL:", 100.0, 600.0),
        line("8.49", 400.0, 600.0),
        line("TOTAL GST:", 100.0, 630.0),
        line("0.51", 400.0, 630.0),
        line("TOTAL:", 245.0, 660.0),
        line("9.00", 400.0, 661.0),
        line("CASH", 200.0, 700.0),
        line("10.00", 400.0, 700.0),
        line("CHANGE", 200.0, 730.0),
        line("1.00", 400.0, 730.0),
    ];
    let r = engine.extract(&[page(0, lines)]);
    assert_eq!(
        value(&r, "company"),
        Some(json!("BOOK TA .K(TAMAN DAYA) SDN BHD"))
    );
    assert_eq!(
        value(&r, "address"),
        Some(json!(
            "NO.53 55,57 & 59, JALAN SAGU 18, TAMAN DAYA, 81100 JOHOR BAHRU, JOHOR."
        ))
    );
    assert_eq!(value(&r, "date"), Some(json!("2018-12-25")));
    assert_eq!(value(&r, "total"), Some(json!(9.0)));
    let total = &r.fields["total"];
    assert_eq!(total.page, Some(0));
    let b = total.bbox.unwrap();
    assert_eq!(
        (b.x0, b.y0),
        (400.0, 661.0),
        "the box of the value, not the label"
    );
    assert!(
        total.confidence > 0.5 && total.confidence <= 0.9,
        "{}",
        total.confidence
    );
    let e = Extracted::new(r, &receipt_schema());
    assert!(e.valid(), "{:?}", e.errors);
}

fn invoice_schema() -> FieldSchema {
    FieldSchema::from_value(json!({
        "type": "object",
        "properties": {
            "invoice_number": {"type": "string", "title": "Invoice number",
                "x-docpipe": {"labels": ["invoice no"], "pattern": "[A-Z0-9/-]*[0-9][A-Z0-9/-]*"}},
            "date": {"type": "string", "format": "date", "title": "Invoice date",
                "x-docpipe": {"exclude": ["due"]}},
            "amount": {"type": "number", "title": "Total",
                "x-docpipe": {"exclude": ["subtotal", "sub total"], "pick": "largest"}},
            "qty": {"type": "integer", "title": "Quantity"},
            "currency": {"enum": ["EUR", "USD"]},
            "paid": {"type": "boolean", "title": "Paid"}
        }
    }))
    .expect("a valid test schema")
}

#[test]
fn label_same_line_right_and_below() {
    let engine = LayoutEngine::new(&invoice_schema());
    let lines = vec![
        line("ACME GmbH", 50.0, 40.0),
        // Label over its value (a header row over a cell row).
        line("Invoice date", 50.0, 100.0),
        line("Due date", 300.0, 100.0),
        line("14.03.2024", 50.0, 125.0),
        line("28.03.2024", 300.0, 125.0),
        // Label and value in one line.
        line("Invoice No.: INV/2024/0042 (copy)", 50.0, 170.0),
        line("Quantity: 12 pcs", 50.0, 200.0),
        line("Paid: yes", 50.0, 230.0),
        line("Subtotal € 1.000,00", 400.0, 500.0),
        line("VAT 21% € 210,00", 400.0, 530.0),
        line("Total € 1.210,00", 400.0, 560.0),
    ];
    let r = engine.extract(&[page(0, lines)]);
    assert_eq!(value(&r, "date"), Some(json!("2024-03-14")));
    assert_eq!(value(&r, "invoice_number"), Some(json!("INV/2024/0042")));
    assert_eq!(value(&r, "amount"), Some(json!(1210.0)));
    assert_eq!(value(&r, "qty"), Some(json!(12)));
    assert_eq!(value(&r, "currency"), Some(json!("EUR")));
    assert_eq!(value(&r, "paid"), Some(json!(true)));
    let d = &r.fields["date"];
    assert_eq!(
        d.bbox.map(|b| b.y0),
        Some(125.0),
        "value read from the line below"
    );
}

#[test]
fn competing_totals_pick_the_largest_total_not_subtotal_or_tax() {
    let engine = LayoutEngine::new(&invoice_schema());
    let lines = vec![
        line("Subtotal", 100.0, 400.0),
        line("120.00", 500.0, 400.0),
        line("Total tax", 100.0, 430.0),
        line("25.20", 500.0, 430.0),
        line("Total", 100.0, 460.0),
        line("145.20", 500.0, 460.0),
        line("Cash", 100.0, 490.0),
        line("200.00", 500.0, 490.0),
        line("Total items 3", 100.0, 520.0),
    ];
    let r = engine.extract(&[page(0, lines)]);
    assert_eq!(value(&r, "amount"), Some(json!(145.2)));
}

#[test]
fn nothing_found_in_nothing() {
    let engine = LayoutEngine::new(&receipt_schema());
    assert!(engine.extract(&[]).fields.is_empty());
    let r = engine.extract(&[page(
        0,
        vec![line("", 0.0, 0.0), line("...", f32::NAN, 0.0)],
    )]);
    assert!(r.fields.is_empty());
    let e = Extracted::new(r, &receipt_schema());
    assert!(!e.valid());
    let mut req: Vec<&str> = e.errors.iter().map(|e| e.keyword.as_str()).collect();
    req.dedup();
    assert_eq!(req, ["required"]);
    assert!(e.errors.iter().all(|e| e.instance_path.is_empty()));
}

#[test]
fn later_pages_are_read_and_merge_keeps_the_surest() {
    let engine = LayoutEngine::new(&invoice_schema());
    let p0 = page(0, vec![line("Invoice No: A-100", 50.0, 50.0)]);
    let p1 = page(
        1,
        vec![line("Total", 50.0, 900.0), line("99.50", 400.0, 900.0)],
    );
    let r = engine.extract(&[p0.clone(), p1.clone()]);
    assert_eq!(r.fields["amount"].page, Some(1));
    assert_eq!(value(&r, "invoice_number"), Some(json!("A-100")));
    // Per-page records merged: each field from the page that had it.
    let merged = merge_pages(vec![engine.extract(&[p0]), engine.extract(&[p1])]);
    assert_eq!(merged, r);
    // And by confidence where two pages disagree.
    let fv = |v: Value, c: f32, p: u32| FieldValue {
        value: v,
        confidence: c,
        page: Some(p),
        bbox: None,
    };
    let a = Record {
        fields: [("amount".to_string(), fv(json!(1.0), 0.3, 0))].into(),
    };
    let b = Record {
        fields: [("amount".to_string(), fv(json!(2.0), 0.7, 1))].into(),
    };
    assert_eq!(merge_pages(vec![a, b]).fields["amount"].value, json!(2.0));
}

/// A text-layer line: `size` points, drawn at 2 px per point.
fn styled(text: &str, y: f32, size: f32, bold: bool) -> Line {
    Line {
        text: text.to_string(),
        bbox: BBox {
            x0: 100.0,
            y0: y,
            x1: 100.0 + size * text.chars().count() as f32,
            y1: y + 2.4 * size,
        },
        confidence: 1.0,
        font_size: Some(size),
        bold,
    }
}

#[test]
fn issuer_is_the_largest_text_at_the_top_not_the_first_line_or_the_buyer() {
    let schema = FieldSchema::load(&root().join("schemas/invoice.schema.json")).unwrap();
    let engine = LayoutEngine::new(&schema);
    let lines = vec![
        styled("Date: 14 March 2024", 40.0, 9.0, false),
        styled("Brightwater Analytics", 80.0, 22.0, true),
        styled("Invoice No: BW-2024-0042", 150.0, 9.0, false),
        styled("Bill to:", 250.0, 9.0, false),
        styled("Harbour Holdings Ltd", 275.0, 9.0, false),
        styled("7 Quay Road, Portsmouth", 300.0, 9.0, false),
        styled("Total: EUR 1,200.00", 500.0, 9.0, false),
    ];
    let r = engine.extract(&[page(0, lines.clone())]);
    assert_eq!(value(&r, "issuer"), Some(json!("Brightwater Analytics")));
    // The same page with every line the same size: the buyer's legal suffix
    // wins, as before (the cue is the size, not the position).
    let flat: Vec<Line> = lines
        .into_iter()
        .map(|l| styled(&l.text, l.bbox.y0, 9.0, false))
        .collect();
    let r = engine.extract(&[page(0, flat)]);
    assert_eq!(value(&r, "issuer"), Some(json!("Harbour Holdings Ltd")));
}
