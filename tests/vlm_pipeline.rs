//! The VLM engine through the binary, with the tiny fixture models: its
//! pages come from the render workers, and a page that fails fails only its
//! own document.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Environment variable of the stage fault switch (`docpipe::pipeline::faults`).
const STAGE_FAULT: &str = "DOCPIPE_STAGE_FAULT";
/// Environment variable of the render worker's fault switch.
const WORKER_FAULT: &str = "DOCPIPE_WORKER_FAULT";
/// Environment variable that makes PDFium refuse to load outside a worker.
const WORKERS_ONLY: &str = "DOCPIPE_TEST_PDFIUM_IN_WORKERS_ONLY";

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("in")).unwrap();
    d
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("samples").join(name)).unwrap()
}

/// Writes the input files and a VLM pipeline over them (tiny Florence-2,
/// no OCR, `extract.batch_size` 8: more than the pages of most documents,
/// so batches span documents); returns the pipeline file.
fn setup(dir: &Path, files: &[(&str, Vec<u8>)], runtime: &str) -> PathBuf {
    for (name, bytes) in files {
        std::fs::write(dir.join("in").join(name), bytes).unwrap();
    }
    std::fs::copy(
        fixtures().join("vlm/fields.schema.json"),
        dir.join("s.json"),
    )
    .unwrap();
    let pipeline = dir.join("p.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: vlm\ninput: {{path: {}}}\nocr: {{mode: never}}\n\
             extract: {{schema: s.json, engine: vlm, model: {}, batch_size: 8, max_new_tokens: 96}}\n\
             runtime: {{device: cpu, {runtime}}}\noutput: {{path: {}}}\n",
            dir.join("in").display(),
            fixtures().join("vlm/florence2-tiny").display(),
            dir.join("out").display()
        ),
    )
    .unwrap();
    pipeline
}

fn run_with(pipeline: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = docpipe();
    cmd.args(["run", pipeline.to_str().unwrap(), "--quiet"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// A documents row: status, class, message, and the record (field values,
/// and confidences to 4 places).
#[derive(Debug, Clone, PartialEq)]
struct Row {
    status: String,
    class: Option<String>,
    message: Option<String>,
    record: Vec<Option<String>>,
}

const FIELDS: [&str; 5] = ["vendor", "total", "date", "kind", "items"];

/// The documents rows by file name (every row of a file, to catch doubles).
fn rows(out: &Path) -> BTreeMap<String, Vec<Row>> {
    let t = read_table(out, "documents");
    let uris = strings(&t, "uri");
    let status = strings(&t, "status");
    let class = strings(&t, "error_class");
    let message = strings(&t, "error_message");
    let values: Vec<Vec<Option<String>>> = FIELDS.iter().map(|f| strings(&t, f)).collect();
    let conf: Vec<Vec<Option<String>>> = FIELDS
        .iter()
        .map(|f| strings(&t, &format!("{f}__confidence")))
        .collect();
    let mut by_name: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for i in 0..uris.len() {
        let uri = uris[i].clone().unwrap();
        let name = uri.rsplit('/').next().unwrap().to_string();
        let mut record = Vec::new();
        for (v, c) in values.iter().zip(&conf) {
            record.push(v[i].clone());
            record.push(
                c[i].as_deref()
                    .map(|c| format!("{:.4}", c.parse::<f64>().unwrap())),
            );
        }
        by_name.entry(name).or_default().push(Row {
            status: status[i].clone().unwrap(),
            class: class[i].clone(),
            message: message[i].clone(),
            record,
        });
    }
    by_name
}

fn one(rows: &BTreeMap<String, Vec<Row>>, name: &str) -> Row {
    let r = rows
        .get(name)
        .unwrap_or_else(|| panic!("no row for {name}: {rows:?}"));
    assert_eq!(r.len(), 1, "{name}: {r:?}");
    r[0].clone()
}

/// Several documents, one of them (a two-page TIFF) named for the fault.
fn mixed_inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("a-born-digital.pdf", sample("born-digital.pdf")),
        ("b-small.bmp", sample("small.bmp")),
        ("c-VLMFAULT-scan-pages.tiff", sample("scan-pages.tiff")),
        ("d-small.webp", sample("small.webp")),
        ("e-scanned.pdf", sample("scanned.pdf")),
        ("f-wide-page.png", sample("wide-page.png")),
    ]
}

/// The faulted document failed with `class`, its pages' messages saying
/// `says`; every other document is as in the clean run.
fn only_the_faulted_document_failed(fault: &str, class: &str, says: &str) {
    let inputs = mixed_inputs();
    let kind = fault.split(':').next().unwrap();
    let clean_dir = tmp(&format!("vlm-fault-clean-{kind}"));
    let o = run_with(&setup(&clean_dir, &inputs, "workers: 2"), &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let clean = rows(&clean_dir.join("out"));

    let dir = tmp(&format!("vlm-fault-{kind}"));
    let o = run_with(&setup(&dir, &inputs, "workers: 2"), &[(STAGE_FAULT, fault)]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let got = rows(&dir.join("out"));
    assert_eq!(got.len(), inputs.len(), "{got:?}");
    // Both of its pages failed: the document failed, for its extraction.
    let bad = one(&got, "c-VLMFAULT-scan-pages.tiff");
    assert_eq!(bad.status, "failed", "{bad:?}");
    assert_eq!(bad.class.as_deref(), Some(class), "{bad:?}");
    let m = bad.message.unwrap_or_default();
    assert!(m.contains(&format!("page 1: {says}")), "{m}");
    assert!(m.contains(&format!("page 2: {says}")), "{m}");
    assert!(bad.record.iter().all(Option::is_none), "{:?}", bad.record);
    // Every other document is as in the clean run: ok, the same record.
    for (name, _) in inputs.iter().filter(|(n, _)| !n.contains("VLMFAULT")) {
        let r = one(&got, name);
        let want = one(&clean, name);
        assert_eq!(r.status, "ok", "{name}: {r:?}\n{stderr}");
        assert!(r.record.iter().all(Option::is_some), "{name}: {r:?}");
        assert_eq!(r, want, "{name}");
    }
    assert!(
        stderr.contains("documents: 6 (5 ok, 0 partial, 1 failed)"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{class} 1")), "{stderr}");
}

#[test]
fn a_failed_vlm_page_fails_only_its_document() {
    only_the_faulted_document_failed("vlm-error:VLMFAULT", "extract_failed", "test fault");
}

#[test]
fn a_vlm_page_that_panics_fails_only_its_document() {
    only_the_faulted_document_failed(
        "vlm-panic:VLMFAULT",
        "internal",
        "internal error in VLM generation: test fault",
    );
}

#[test]
fn vlm_pages_of_pdfs_come_from_the_render_workers() {
    let dir = tmp("vlm-workers-only");
    let inputs = vec![
        ("born-digital.pdf", sample("born-digital.pdf")),
        ("scanned.pdf", sample("scanned.pdf")),
    ];
    let pipeline = setup(&dir, &inputs, "workers: 1");
    let o = run_with(&pipeline, &[(WORKERS_ONLY, "1")]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("records:   2 extracted, 2 valid, 0 invalid"),
        "{stderr}"
    );
    let got = rows(&dir.join("out"));
    for (name, _) in &inputs {
        let r = one(&got, name);
        assert_eq!(r.status, "ok", "{name}: {r:?}");
        assert!(r.record.iter().all(Option::is_some), "{name}: {r:?}");
    }
    // The switch does refuse PDFium in the main process: `show`, which
    // renders the page there, cannot (it says so, and draws on a blank).
    let o = docpipe()
        .args([
            "show",
            dir.join("out").to_str().unwrap(),
            "--uri",
            "born-digital",
        ])
        .arg("-o")
        .arg(dir.join("page.png"))
        .env(WORKERS_ONLY, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("cannot load PDFium") && stderr.contains("refused outside a render worker"),
        "{stderr}"
    );
}

/// A PDF of `pages` Letter pages, each with a line of text, and `%needle`
/// after its `%%EOF`.
fn long_pdf(pages: usize, needle: &str) -> Vec<u8> {
    pdf_of_lines(pages, needle, |i| format!("Invoice page {i}"))
}

#[test]
fn a_crashing_worker_gives_its_vlm_document_one_crashed_row() {
    let dir = tmp("vlm-crash");
    let mut crash = sample("born-digital.pdf");
    crash.extend_from_slice(b"\n%DOCPIPE-TEST-CRASH\n");
    let inputs = vec![
        ("born-digital.pdf", sample("born-digital.pdf")),
        ("crash.pdf", crash),
        // 20 pages: two workers share it, and the one reading pages 16-19
        // crashes after the first 16 pages' VLM images went out.
        ("crash-later.pdf", long_pdf(20, "DOCPIPE-TEST-LATER")),
        ("small.bmp", sample("small.bmp")),
    ];
    let pipeline = setup(&dir, &inputs, "workers: 2");
    let o = run_with(
        &pipeline,
        &[(
            WORKER_FAULT,
            "crash:DOCPIPE-TEST-CRASH,crash-later:DOCPIPE-TEST-LATER",
        )],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    let got = rows(&dir.join("out"));
    assert_eq!(got.len(), inputs.len(), "{got:?}\n{stderr}");
    for name in ["crash.pdf", "crash-later.pdf"] {
        let r = one(&got, name);
        assert_eq!(r.status, "failed", "{name}: {r:?}");
        assert_eq!(r.class.as_deref(), Some("crashed"), "{name}: {r:?}");
        assert!(r.record.iter().all(Option::is_none), "{name}: {r:?}");
    }
    for name in ["born-digital.pdf", "small.bmp"] {
        let r = one(&got, name);
        assert_eq!(r.status, "ok", "{name}: {r:?}\n{stderr}");
        assert!(r.record.iter().all(Option::is_some), "{name}: {r:?}");
    }
}
