//! The layout engine on a schema written without hints (titles and names
//! only), the way a new user writes one: labels from the words, values cut
//! at the next key, labels inside longer keys, ranges, day- or month-first
//! dates from the document's own evidence, block values and confidence.

use docpipe::extract::{FieldSchema, LayoutEngine, Line, PageLines, Record};
use docpipe::types::BBox;
use serde_json::{json, Value};

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
        confidence: 0.95,
        font_size: None,
        bold: false,
    }
}

fn page(lines: Vec<Line>) -> Vec<PageLines> {
    vec![PageLines {
        page: 0,
        width: 1000.0,
        height: 1400.0,
        lines,
    }]
}

fn value(r: &Record, name: &str) -> Option<Value> {
    r.fields.get(name).map(|v| v.value.clone())
}

fn conf(r: &Record, name: &str) -> f32 {
    r.fields.get(name).map_or(0.0, |v| v.confidence)
}

fn engine(properties: Value) -> LayoutEngine {
    let schema = FieldSchema::from_value(json!({
        "type": "object",
        "properties": properties,
    }))
    .expect("schema loads");
    LayoutEngine::new(&schema)
}

fn statement_engine() -> LayoutEngine {
    engine(json!({
        "customer": {"type": "string", "title": "Customer"},
        "customer_code": {"type": "string"},
        "invoice_number": {"type": "string", "title": "Invoice number"},
        "invoice_date": {"type": "string", "format": "date"},
        "due_date": {"type": "string", "format": "date"},
        "period_start": {"type": "string", "format": "date"},
        "period_end": {"type": "string", "format": "date"},
        "total": {"type": "number", "title": "Total"}
    }))
}

#[test]
fn a_schema_without_hints_reads_a_statement() {
    let r = statement_engine().extract(&page(vec![
        line("Customer Code: C-991", 50.0, 40.0),
        line("Invoice No. 58213", 600.0, 40.0),
        line(
            "Customer: Northwind Traders Region: East Total $: $1,050.00",
            50.0,
            80.0,
        ),
        line("Invoice Date: 04/27/20", 50.0, 120.0),
        line("Due Date: 05/11/20", 50.0, 160.0),
        line("Period: 04/20/20 - 04/26/20", 50.0, 200.0),
    ]));
    // The value stops at the next key on its row.
    assert_eq!(value(&r, "customer"), Some(json!("Northwind Traders")));
    // `Customer` inside `Customer Code` is the code's label.
    assert_eq!(value(&r, "customer_code"), Some(json!("C-991")));
    // `number` is also printed `No.`.
    assert_eq!(value(&r, "invoice_number"), Some(json!("58213")));
    assert_eq!(value(&r, "total"), Some(json!(1050.0)));
    // Month first: the document prints days over 12 in the second place.
    assert_eq!(value(&r, "invoice_date"), Some(json!("2020-04-27")));
    assert_eq!(value(&r, "due_date"), Some(json!("2020-05-11")));
    // A range gives its start and its end.
    assert_eq!(value(&r, "period_start"), Some(json!("2020-04-20")));
    assert_eq!(value(&r, "period_end"), Some(json!("2020-04-26")));
}

#[test]
fn two_date_fields_do_not_share_one_printed_date() {
    let e = engine(json!({
        "order_date": {"type": "string", "format": "date"},
        "delivery_date": {"type": "string", "format": "date"}
    }));
    let r = e.extract(&page(vec![
        line("Order date: 25.03.2021", 50.0, 40.0),
        line("Printed 26.03.2021", 50.0, 400.0),
    ]));
    assert_eq!(value(&r, "order_date"), Some(json!("2021-03-25")));
    assert_ne!(value(&r, "delivery_date"), Some(json!("2021-03-25")));
}

#[test]
fn dates_that_read_either_way_follow_the_document_or_stay_null() {
    let e = engine(json!({"date": {"type": "string", "format": "date"}}));
    // No evidence: 04/05/2020 is April 5th or May 4th; left null.
    let r = e.extract(&page(vec![line("Date: 04/05/2020", 50.0, 40.0)]));
    assert_eq!(value(&r, "date"), None);
    // Another date with a day over 12 first: day first.
    let r = e.extract(&page(vec![
        line("Date: 04/05/2020", 50.0, 40.0),
        line("Valid until 28/05/2020", 50.0, 300.0),
    ]));
    assert_eq!(value(&r, "date"), Some(json!("2020-05-04")));
    // Amounts in ringgit (a day-first country): day first.
    let r = e.extract(&page(vec![
        line("Date: 04/05/2020", 50.0, 40.0),
        line("TOTAL RM 12.00", 50.0, 300.0),
    ]));
    assert_eq!(value(&r, "date"), Some(json!("2020-05-04")));
    // A US address: month first.
    let r = e.extract(&page(vec![
        line("Date: 04/05/2020", 50.0, 40.0),
        line("Springfield, IL 62701, USA", 50.0, 300.0),
    ]));
    assert_eq!(value(&r, "date"), Some(json!("2020-04-05")));
}

#[test]
fn a_gst_number_says_day_first() {
    let e = engine(json!({"date": {"type": "string", "format": "date"}}));
    let r = e.extract(&page(vec![
        line("GST ID: 002116837376", 50.0, 20.0),
        line("Date: 04/05/2020", 50.0, 40.0),
    ]));
    assert_eq!(value(&r, "date"), Some(json!("2020-05-04")));
    // The word alone, with no number after it, is no registration.
    let r = e.extract(&page(vec![
        line("Prices include GST", 50.0, 20.0),
        line("Date: 04/05/2020", 50.0, 40.0),
    ]));
    assert_eq!(value(&r, "date"), None, "{r:?}");
}

#[test]
fn a_block_value_runs_down_while_its_lines_stay_aligned() {
    let e = engine(json!({
        "bill_to": {
            "type": "string",
            "title": "Bill to",
            "x-docpipe": {"lines": "block", "separator": ", "}
        },
        "date": {"type": "string", "format": "date"}
    }));
    let r = e.extract(&page(vec![
        line("Bill to:", 50.0, 100.0),
        line("Harbour Supplies Ltd", 50.0, 125.0),
        line("12 Quay Road", 50.0, 150.0),
        line("Portsmouth PO1 3AX", 50.0, 175.0),
        // Another column on the same rows is not part of it.
        line("Ship to:", 500.0, 100.0),
        line("Warehouse 7", 500.0, 125.0),
        // A key ends the block.
        line("Date: 14/03/2024", 50.0, 200.0),
    ]));
    assert_eq!(
        value(&r, "bill_to"),
        Some(json!(
            "Harbour Supplies Ltd, 12 Quay Road, Portsmouth PO1 3AX"
        ))
    );

    // A gap ends it too.
    let r = e.extract(&page(vec![
        line("Bill to:", 50.0, 100.0),
        line("Harbour Supplies Ltd", 50.0, 125.0),
        line("Thank you for your order", 50.0, 400.0),
    ]));
    assert_eq!(value(&r, "bill_to"), Some(json!("Harbour Supplies Ltd")));
}

#[test]
fn the_shipped_invoice_schema_reads_the_bill_to_block_under_its_heading() {
    let schema = FieldSchema::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/invoice.schema.json"),
    )
    .expect("the shipped invoice schema loads");
    let e = LayoutEngine::new(&schema);
    let r = e.extract(&page(vec![
        line("Northwind Traders Ltd", 50.0, 30.0),
        line("Invoice No: 2024-117", 600.0, 30.0),
        // Two headings on one row, each over its own block: the cell right
        // of the label is the next column's heading, not the buyer.
        line("Billing Address", 50.0, 200.0),
        line("Shipping Address", 500.0, 200.0),
        line("Harbour Supplies Ltd", 50.0, 225.0),
        line("Warehouse 7", 500.0, 225.0),
        line("12 Quay Road", 50.0, 250.0),
        line("3 Dock Lane", 500.0, 250.0),
        line("Portsmouth PO1 3AX", 50.0, 275.0),
        line("Southampton SO14 2AA", 500.0, 275.0),
        line("Total: 120.00 GBP", 600.0, 500.0),
    ]));
    assert_eq!(
        value(&r, "bill_to"),
        Some(json!(
            "Harbour Supplies Ltd, 12 Quay Road, Portsmouth PO1 3AX"
        )),
        "{r:?}"
    );
    // A label with its value beside it on the row reads there.
    let r = e.extract(&page(vec![
        line("Northwind Traders Ltd", 50.0, 30.0),
        line("Bill to:", 50.0, 200.0),
        line("Harbour Supplies Ltd", 200.0, 200.0),
        line("12 Quay Road", 200.0, 225.0),
        line("Total: 120.00 GBP", 600.0, 500.0),
    ]));
    assert_eq!(
        value(&r, "bill_to"),
        Some(json!("Harbour Supplies Ltd, 12 Quay Road")),
        "{r:?}"
    );
}

#[test]
fn an_issuer_run_into_the_document_title_is_read_without_it() {
    let schema = FieldSchema::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/invoice.schema.json"),
    )
    .expect("the shipped invoice schema loads");
    let e = LayoutEngine::new(&schema);
    let r = e.extract(&page(vec![
        line("Northwind Trading Services Invoice", 400.0, 30.0),
        line("Invoice Summary", 400.0, 70.0),
        line("Invoice Number: 42183017", 400.0, 100.0),
        line("Total: 4.11 EUR", 400.0, 500.0),
    ]));
    assert_eq!(
        value(&r, "issuer"),
        Some(json!("Northwind Trading Services")),
        "{r:?}"
    );
    // A title with no name before it (no keyword) is still no issuer.
    let r = e.extract(&page(vec![
        line("Monthly Statement Invoice", 400.0, 30.0),
        line("Acme Services Ltd", 400.0, 60.0),
        line("Total: 4.11 EUR", 400.0, 500.0),
    ]));
    assert_eq!(
        value(&r, "issuer"),
        Some(json!("Acme Services Ltd")),
        "{r:?}"
    );
}

#[test]
fn a_receipt_address_is_the_centred_lines_under_the_company() {
    let schema = FieldSchema::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/receipt.schema.json"),
    )
    .expect("the shipped receipt schema loads");
    let e = LayoutEngine::new(&schema);
    // Centred lines of different widths around x = 300.
    let centred = |t: &str, y: f32| line(t, 300.0 - 5.0 * t.chars().count() as f32, y);
    let r = e.extract(&page(vec![
        centred("KEDAI RUNCIT MAJU SDN BHD", 20.0),
        centred("(123456-X)", 45.0),
        centred("NO 5, JALAN MERAH 3,", 70.0),
        centred("TAMAN SERI, 81200 JOHOR BAHRU", 95.0),
        centred("TEL: 07-1234567", 120.0),
        centred("TOTAL 12.00", 400.0),
    ]));
    assert_eq!(
        value(&r, "address"),
        Some(json!("NO 5, JALAN MERAH 3, TAMAN SERI, 81200 JOHOR BAHRU"))
    );
}

fn receipt_engine() -> LayoutEngine {
    let schema = FieldSchema::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/receipt.schema.json"),
    )
    .expect("the shipped receipt schema loads");
    LayoutEngine::new(&schema)
}

#[test]
fn a_company_is_printed_with_capitals_and_as_sure_as_an_exact_copy() {
    let e = receipt_engine();
    // A handwritten name at the top, taller than the print: lower case
    // only, it is not the shop.
    let mut hand = line("tan woon yann", 70.0, 20.0);
    hand.bbox.y1 = 60.0;
    let r = e.extract(&page(vec![
        hand,
        line("INDAH GIFT & HOME DECO", 110.0, 120.0),
        line("27, JALAN DEDAP 13,", 120.0, 145.0),
        line("81100 JOHOR BAHRU", 120.0, 170.0),
        line("TOTAL 12.00", 120.0, 400.0),
    ]));
    assert_eq!(value(&r, "company"), Some(json!("INDAH GIFT & HOME DECO")));
    // Read alike, a longer name is less sure: each character is one more
    // chance of a wrong one.
    let alone = |name: &str| {
        e.extract(&page(vec![
            line(name, 110.0, 20.0),
            line("TOTAL 12.00", 120.0, 400.0),
        ]))
    };
    let short = alone("ABC TRADING");
    let long = alone("KEDAI RUNCIT DAN BORONG MAJU JAYA TRADING");
    assert!(
        conf(&long, "company") < 0.5 * conf(&short, "company"),
        "{long:?} {short:?}"
    );
}

#[test]
fn a_rival_reading_lowers_the_confidence() {
    let e = engine(json!({"reference": {"type": "string", "title": "Reference"}}));
    let lone = e.extract(&page(vec![line("Reference: AB-1", 50.0, 40.0)]));
    let rivals = e.extract(&page(vec![
        line("Reference: AB-1", 50.0, 40.0),
        line("Reference: XY-2", 50.0, 400.0),
    ]));
    assert!(
        conf(&lone, "reference") > 0.8,
        "{}",
        conf(&lone, "reference")
    );
    assert!(
        conf(&rivals, "reference") < 0.7 * conf(&lone, "reference"),
        "lone {} rivals {}",
        conf(&lone, "reference"),
        conf(&rivals, "reference")
    );
}

#[test]
fn a_list_field_collects_every_labelled_value() {
    let e = engine(json!({
        "signatory": {"type": "array", "items": {"type": "string"}, "title": "Signatory"}
    }));
    let r = e.extract(&page(vec![
        line("Signatory: Jane Roe", 50.0, 40.0),
        line("Signatory: John Doe", 50.0, 400.0),
    ]));
    assert_eq!(
        value(&r, "signatory"),
        Some(json!(["Jane Roe", "John Doe"]))
    );
}

#[test]
fn a_defined_term_reads_the_date_before_it() {
    let e = engine(json!({
        "effective_date": {"type": "string", "format": "date", "title": "Effective date"}
    }));
    let r = e.extract(&page(vec![line(
        "This agreement is entered into as of March 3, 2011 (the \"Effective Date\") by",
        50.0,
        40.0,
    )]));
    assert_eq!(value(&r, "effective_date"), Some(json!("2011-03-03")));
}

/// A currency field named `currency`, no hints: any ISO 4217 code.
fn currency_of(lines: Vec<Line>) -> Option<Value> {
    let e = engine(json!({
        "currency": {"type": "string", "title": "Currency"},
        "total": {"type": "number", "title": "Total"}
    }));
    value(&e.extract(&page(lines)), "currency")
}

#[test]
fn currency_symbols_follow_the_page_or_stay_null() {
    let total = || line("Total: $ 120.00", 50.0, 400.0);
    // A dollar with nothing else on the page is not guessed.
    assert_eq!(currency_of(vec![total()]), None);
    // The country of the address, a phone code, a domain decide it.
    assert_eq!(
        currency_of(vec![
            line("12 Harbour St, Sydney NSW 2000", 50.0, 40.0),
            total()
        ]),
        Some(json!("AUD"))
    );
    assert_eq!(
        currency_of(vec![line("Tel +65 6123 4567", 50.0, 40.0), total()]),
        Some(json!("SGD"))
    );
    assert_eq!(
        currency_of(vec![line("Springfield, IL 62704 USA", 50.0, 40.0), total()]),
        Some(json!("USD"))
    );
    // Conflicting cues: null.
    assert_eq!(
        currency_of(vec![
            line("ABN 51 824 753 556", 50.0, 40.0),
            line("Tel +65 6123 4567", 50.0, 60.0),
            total()
        ]),
        None
    );
    // A yen sign on a page with kana is Japanese yen.
    assert_eq!(
        currency_of(vec![
            line("株式会社 サンプル", 50.0, 40.0),
            line("Total: ¥ 1,200", 50.0, 400.0)
        ]),
        Some(json!("JPY"))
    );
    // Codes outside the seven the old schema listed.
    assert_eq!(
        currency_of(vec![line("Total: 1.200,00 SEK", 50.0, 400.0)]),
        Some(json!("SEK"))
    );
    assert_eq!(
        currency_of(vec![line("Amount due CNY 5,000.00", 50.0, 400.0)]),
        Some(json!("CNY"))
    );
}

#[test]
fn an_enum_of_codes_narrows_a_symbol() {
    let e = engine(json!({
        "currency": {"enum": ["EUR", "USD"]},
        "total": {"type": "number", "title": "Total"}
    }));
    let r = e.extract(&page(vec![line("Total: $ 120.00", 50.0, 400.0)]));
    assert_eq!(value(&r, "currency"), Some(json!("USD")));
}

#[test]
fn an_enum_of_words_reads_the_member_after_its_label() {
    let e = engine(json!({
        "payment": {"enum": ["paid", "unpaid"], "title": "Payment"}
    }));
    let r = e.extract(&page(vec![line("Payment: Unpaid", 50.0, 40.0)]));
    assert_eq!(value(&r, "payment"), Some(json!("unpaid")));
    let b = r.fields["payment"].bbox.expect("a box");
    assert!(b.x0 < b.x1, "{b:?}");
    assert!(
        b.x0 >= 50.0 + 10.0 * 8.0 && b.x1 <= 50.0 + 10.0 * 15.0 + 0.5,
        "{b:?}"
    );
}

/// Lines of running text, one under the other, 30 px apart.
fn paragraph(lines: &[&str]) -> Vec<Line> {
    lines
        .iter()
        .enumerate()
        .map(|(i, t)| line(t, 100.0, 100.0 + 30.0 * i as f32))
        .collect()
}

fn agreement_engine() -> LayoutEngine {
    engine(json!({
        "jurisdiction": {
            "type": "string",
            "title": "Jurisdiction",
            "description": "The state or country whose law governs the agreement."
        },
        "term": {
            "type": "string",
            "title": "Term",
            "description": "How long the agreement lasts."
        }
    }))
}

#[test]
fn prose_values_come_from_the_sentence_that_speaks_of_the_field() {
    let e = agreement_engine();
    let r = e.extract(&page(paragraph(&[
        "MUTUAL NONDISCLOSURE AGREEMENT",
        "This Agreement is made between Northwind Traders Inc. and Globex LLC.",
        "Each party shall notify the other within thirty (30) days of any breach.",
        "This Agreement shall remain in effect for a term of two (2) years from",
        "the date first written above. Governing Law. This Agreement shall be",
        "governed by and construed in accordance with the laws of the State of",
        "New York, without regard to its conflict of laws principles.",
        "Any dispute shall be heard in the courts of competent jurisdiction.",
    ])));
    assert_eq!(value(&r, "jurisdiction"), Some(json!("New York")));
    assert_eq!(value(&r, "term"), Some(json!("2 years")));
    // Read from prose, never as sure as a labelled value: both go to review.
    assert!(conf(&r, "jurisdiction") < 0.6, "{r:?}");
    assert!(conf(&r, "term") < 0.6, "{r:?}");
}

#[test]
fn a_labelled_value_beats_the_prose_and_a_heading_is_no_value() {
    let e = agreement_engine();
    let mut lines = vec![
        line("Jurisdiction: Ontario", 100.0, 40.0),
        line("Term: 18 months", 100.0, 70.0),
    ];
    lines.extend(
        paragraph(&[
            "This Agreement shall be governed by the laws of the State of Texas and",
            "shall last for a period of five years.",
        ])
        .into_iter()
        .map(|mut l| {
            l.bbox.y0 += 100.0;
            l.bbox.y1 += 100.0;
            l
        }),
    );
    let r = e.extract(&page(lines));
    assert_eq!(value(&r, "jurisdiction"), Some(json!("Ontario")));
    assert_eq!(value(&r, "term"), Some(json!("18 months")));
    // With no sentence about the law, a heading is not taken for a value.
    let r = e.extract(&page(paragraph(&[
        "GOVERNING LAW; JURISDICTION:",
        "Each party keeps the other's secrets safe and returns all copies on request.",
    ])));
    assert_eq!(value(&r, "jurisdiction"), None, "{r:?}");
}

#[test]
fn an_address_ends_at_its_postcode_line() {
    let e = engine(json!({
        "shop": {"type": "string", "x-docpipe": {"position": "top"}},
        "address": {"type": "string", "x-docpipe": {"after": "shop", "lines": 5}}
    }));
    let r = e.extract(&page(vec![
        line("NORTHWIND TRADERS LTD", 300.0, 40.0),
        line("12 HIGH STREET,", 300.0, 70.0),
        line("47400 SPRINGFIELD", 300.0, 100.0),
        line("(RIVERSIDE MALL)", 300.0, 130.0),
        line("THANK YOU", 300.0, 160.0),
    ]));
    assert_eq!(
        value(&r, "address"),
        Some(json!("12 HIGH STREET, 47400 SPRINGFIELD"))
    );
    let r = e.extract(&page(vec![
        line("NORTHWIND TRADERS LTD", 300.0, 40.0),
        line("12 HIGH STREET,", 300.0, 70.0),
        line("47400 SPRINGFIELD", 300.0, 100.0),
        line("WESTSHIRE", 300.0, 130.0),
        line("UNITED KINGDOM", 300.0, 160.0),
        line("BRANCH 7", 300.0, 190.0),
    ]));
    assert_eq!(
        value(&r, "address"),
        Some(json!(
            "12 HIGH STREET, 47400 SPRINGFIELD WESTSHIRE UNITED KINGDOM"
        ))
    );
}

#[test]
fn an_address_is_as_sure_as_its_weakest_line_and_its_street() {
    let e = engine(json!({
        "shop": {"type": "string", "x-docpipe": {"position": "top"}},
        "address": {"type": "string", "x-docpipe": {"after": "shop", "lines": 5}}
    }));
    let shop = |lines: Vec<Line>| {
        let mut all = vec![line("NORTHWIND TRADERS LTD", 300.0, 40.0)];
        all.extend(lines);
        e.extract(&page(all))
    };
    let whole = shop(vec![
        line("12 HIGH STREET,", 300.0, 70.0),
        line("47400 SPRINGFIELD", 300.0, 100.0),
    ]);
    assert_eq!(
        value(&whole, "address"),
        Some(json!("12 HIGH STREET, 47400 SPRINGFIELD"))
    );
    // The chance of an exact copy: a line of 0.95 per character over its
    // 15 characters is far from sure, whatever its mean.
    let c = conf(&whole, "address");
    assert!(c > 0.3 && c < 0.6, "{c}");
    // One poorly read line makes the whole address less sure.
    let mut blurred = line("12 HIGH STREET,", 300.0, 70.0);
    blurred.confidence = 0.8;
    let weak = shop(vec![blurred, line("47400 SPRINGFIELD", 300.0, 100.0)]);
    assert!(conf(&weak, "address") < 0.5 * c, "{weak:?}");
    // Its postcode line first, with no number before the postcode: the
    // street was not read, and the address is half as sure.
    let headless = shop(vec![line("47400 SPRINGFIELD", 300.0, 70.0)]);
    assert_eq!(
        value(&headless, "address"),
        Some(json!("47400 SPRINGFIELD"))
    );
    let one_line = shop(vec![line("12 HIGH ST, 47400 SPRINGFIELD", 300.0, 70.0)]);
    let street_only = shop(vec![line("HIGH ST, 47400 SPRINGFIELD", 300.0, 70.0)]);
    assert!(
        conf(&street_only, "address") < 0.6 * conf(&one_line, "address"),
        "{street_only:?} {one_line:?}"
    );
}

#[test]
fn tall_boxes_of_a_tilted_scan_are_read_top_to_bottom() {
    let schema = FieldSchema::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/receipt.schema.json"),
    )
    .expect("the shipped receipt schema loads");
    let e = LayoutEngine::new(&schema);
    // A tilted receipt: each line's box is three lines tall, so the centres
    // of two stacked lines are less than half a box apart; they share
    // their width, so they are two rows, the upper one first.
    let tall = |t: &str, x: f32, y: f32| {
        let mut l = line(t, x, y);
        l.bbox.y1 = y + 75.0;
        l
    };
    let r = e.extract(&page(vec![
        tall("ASIA TRADING SDN BHD", 310.0, 20.0),
        tall("NO.23 BATU 10, TAMAN SENTOSA,", 180.0, 127.0),
        tall("JALAN KAPAR, 42200 KLANG, SELANGOR.", 130.0, 157.0),
        tall("GST ID: 001609584640", 260.0, 241.0),
    ]));
    assert_eq!(
        value(&r, "address"),
        Some(json!(
            "NO.23 BATU 10, TAMAN SENTOSA, JALAN KAPAR, 42200 KLANG, SELANGOR."
        ))
    );
}

#[test]
fn a_term_said_of_the_agreement_is_surer_than_a_period_of_a_promise() {
    let e = agreement_engine();
    // The period of a promise (not to solicit), and the agreement's own
    // end: the sentence that says the agreement ends wins.
    let r = e.extract(&page(paragraph(&[
        "7. For a period of one (1) year, neither party shall solicit the",
        "employees of the other. 8. Term. This Agreement shall expire two (2)",
        "years after the Effective Date.",
    ])));
    assert_eq!(value(&r, "term"), Some(json!("2 years")), "{r:?}");
    let said = conf(&r, "term");
    // The period of a promise alone is read, and less sure.
    let r = e.extract(&page(paragraph(&[
        "7. For a period of one (1) year, neither party shall solicit the",
        "employees of the other or disclose the terms of this Agreement.",
    ])));
    assert_eq!(value(&r, "term"), Some(json!("1 year")), "{r:?}");
    assert!(
        conf(&r, "term") < 0.5 * said,
        "{} vs {said}",
        conf(&r, "term")
    );
}

fn parties_engine() -> LayoutEngine {
    engine(json!({
        "party": {
            "type": "array",
            "items": {"type": "string"},
            "title": "Parties",
            "description": "The parties who sign the agreement."
        }
    }))
}

#[test]
fn the_parties_are_the_companies_the_opening_sentence_names() {
    let e = parties_engine();
    let r = e.extract(&page(paragraph(&[
        "CONFIDENTIALITY AGREEMENT",
        "This Agreement is entered into by and between Northwind Traders, Inc., a",
        "Delaware corporation (\"Northwind\"), and Globex Holdings LLC (\"Globex\",",
        "together the \"Parties\"). Each party shall keep the other's secrets.",
        "The receiving party shall return all copies on request.",
        "Initech Ltd. is not a party to this Agreement.",
    ])));
    assert_eq!(
        value(&r, "party"),
        Some(json!(["Northwind Traders, Inc.", "Globex Holdings LLC"])),
        "{r:?}"
    );
    // A person, or a company without a legal form, is named by the defined
    // term that follows; the agreement's own defined term names no one.
    let r = e.extract(&page(paragraph(&[
        "This Agreement (the \"Agreement\") is made between Northwind Traders",
        "(the \"Company\") and Jane Q. Roe (\"Employee\"). Both parties sign it.",
    ])));
    assert_eq!(
        value(&r, "party"),
        Some(json!(["Northwind Traders", "Jane Q. Roe"])),
        "{r:?}"
    );
}

#[test]
fn places_and_descriptions_are_not_parties_and_a_person_needs_no_defined_term() {
    let r = parties_engine().extract(&page(paragraph(&[
        "This Agreement is made between Globex Holdings ASA, organised under the laws of the",
        "Cayman Islands (\"Cayman\"), Northwind Traders, Inc., a Delaware Corporation",
        "(\"Northwind\"), and Patrick J. Mahaffy, who together sign it.",
    ])));
    assert_eq!(
        value(&r, "party"),
        Some(json!([
            "Globex Holdings ASA",
            "Northwind Traders, Inc.",
            "Patrick J. Mahaffy"
        ])),
        "{r:?}"
    );
}

#[test]
fn a_party_list_is_surest_with_two_members() {
    let e = parties_engine();
    let conf_of = |text: &str| {
        let r = e.extract(&page(paragraph(&[text])));
        assert!(value(&r, "party").is_some(), "{text}: {r:?}");
        conf(&r, "party")
    };
    let one = conf_of("This Agreement is made by Globex Holdings LLC for its own use.");
    let two = conf_of("This Agreement is made between Globex Holdings LLC and Initech Ltd.");
    let three = conf_of(
        "This Agreement is made between Globex Holdings LLC, Initech Ltd. and Hooli Inc. today.",
    );
    assert!(
        two > one && two > three,
        "one {one} two {two} three {three}"
    );
    // The second member is not a rival of the first.
    assert!(two >= 0.5, "{two}");
}

#[test]
fn a_party_repeated_with_words_before_it_is_one_party() {
    let r = parties_engine().extract(&page(paragraph(&[
        "This Agreement is made between CONFIDENTIAL Globex Holdings, Inc. and Globex",
        "Holdings, Inc, who sign it with Initech Ltd. as the parties.",
    ])));
    assert_eq!(
        value(&r, "party"),
        Some(json!(["Globex Holdings, Inc", "Initech Ltd."])),
        "{r:?}"
    );
}

#[test]
fn the_defined_terms_standing_for_the_parties_are_no_party() {
    let r = parties_engine().extract(&page(paragraph(&[
        "This Agreement between Globex Holdings, Inc. (\"Globex\") and Initech CORP. (the",
        "\"Company\"), under which Globex and Company agree, binds the parties.",
    ])));
    assert_eq!(
        value(&r, "party"),
        Some(json!(["Globex Holdings, Inc.", "Initech CORP."])),
        "{r:?}"
    );
}
