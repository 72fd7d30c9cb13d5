//! One bad item fails only itself: a page whose detection panics, a crop
//! whose recognition fails or panics, and a page that would take all night
//! each become their own document's `failed` row with the right class,
//! while every other document of the same run (and of the same batch) comes
//! out `ok` with exactly the text it has in a clean run.
//!
//! Faults come from the pipeline's test-only switch `DOCPIPE_STAGE_FAULT`
//! (`KIND:NEEDLE`, matched against the document's URI).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A document's row and its pages' text, as one run wrote them.
#[derive(Debug, Clone, PartialEq)]
struct Doc {
    status: String,
    class: Option<String>,
    message: Option<String>,
    text: String,
}

/// Inputs: three small scans, the middle one the one the faults name.
const INPUTS: [(&str, &str); 3] = [
    ("a-photo.jpg", "photo-exif.jpg"),
    ("b-bad.bmp", "small.bmp"),
    ("c-small.webp", "small.webp"),
];

fn setup(name: &str, inputs: &[(&str, &str)]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("in")).unwrap();
    for (to, from) in inputs {
        std::fs::copy(
            fixtures().join("samples").join(from),
            dir.join("in").join(to),
        )
        .unwrap();
    }
    dir
}

/// Runs an OCR pipeline over `dir/in` (recognition batches of 16, formed
/// once every page is detected, so the documents' crops share calls) with `fault` set, and reads back each
/// document by file name.
fn run_with(
    dir: &Path,
    fault: Option<&str>,
    runtime: &str,
) -> (Option<i32>, BTreeMap<String, Doc>) {
    let out = dir.join(if fault.is_some() {
        "out-fault"
    } else {
        "out-clean"
    });
    let yaml = dir.join("p.yaml");
    std::fs::write(
        &yaml,
        format!(
            "name: isolation\ninput: {{path: {}}}\nocr: {{batch_size: 16}}\noutput: {{path: {}}}\nruntime: {runtime}\n",
            dir.join("in").display(),
            out.display()
        ),
    )
    .unwrap();
    let mut cmd = docpipe();
    cmd.args(["run", yaml.to_str().unwrap(), "-q", "--overwrite"]);
    // Recognition waits for every page before its first batch, so the
    // documents' crops share calls.
    cmd.env("DOCPIPE_TEST_REC_GATHER_MS", "20000");
    match fault {
        Some(f) => cmd.env("DOCPIPE_STAGE_FAULT", f),
        None => cmd.env_remove("DOCPIPE_STAGE_FAULT"),
    };
    let o = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        matches!(o.status.code(), Some(0 | 3)),
        "docpipe ended {:?}:\n{stderr}",
        o.status.code()
    );
    let docs = read_table(&out, "documents");
    let pages = read_table(&out, "pages");
    let (ids, uris) = (strings(&docs, "doc_id"), strings(&docs, "uri"));
    let (status, class, message) = (
        strings(&docs, "status"),
        strings(&docs, "error_class"),
        strings(&docs, "error_message"),
    );
    let (page_doc, page_text) = (strings(&pages, "doc_id"), strings(&pages, "text"));
    let mut got = BTreeMap::new();
    for i in 0..ids.len() {
        let text: Vec<String> = page_doc
            .iter()
            .zip(&page_text)
            .filter(|(d, _)| **d == ids[i])
            .map(|(_, t)| t.clone().unwrap_or_default())
            .collect();
        let name = uris[i]
            .clone()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let doc = Doc {
            status: status[i].clone().unwrap(),
            class: class[i].clone(),
            message: message[i].clone(),
            text: text.join("\n\n"),
        };
        assert!(got.insert(name, doc).is_none());
    }
    (o.status.code(), got)
}

/// The others are exactly as in the clean run; the bad one failed with
/// `class` and a message holding `says`.
fn only_the_bad_one_failed(fault: &str, class: &str, says: &str) {
    // The folder is named by the fault's kind alone: the needle is matched
    // against the whole URI.
    let kind = fault.split(':').next().unwrap();
    let dir = setup(&format!("isolation-{kind}"), &INPUTS);
    // One recognition session (threads: 2), so one group holds every page.
    let (code, clean) = run_with(&dir, None, "{threads: 2}");
    assert_eq!(code, Some(0), "{clean:#?}");
    for (name, d) in &clean {
        assert_eq!(d.status, "ok", "{name}: {d:?}");
        assert!(
            !d.text.trim().is_empty(),
            "{name} has text in the clean run"
        );
    }
    let (code, got) = run_with(&dir, Some(fault), "{threads: 2}");
    assert_eq!(code, Some(3));
    assert_eq!(got.len(), 3, "{got:#?}");
    for (name, d) in &got {
        if name == "b-bad.bmp" {
            assert_eq!(d.status, "failed", "{d:?}");
            assert_eq!(d.class.as_deref(), Some(class), "{d:?}");
            let m = d.message.as_deref().unwrap_or_default();
            assert!(m.contains(says), "{m}");
        } else {
            assert_eq!(d, &clean[name], "{name} is untouched");
        }
    }
}

#[test]
fn a_page_whose_detection_panics_fails_only_its_document() {
    only_the_bad_one_failed("det-panic:b-bad", "internal", "detection panics");
}

#[test]
fn a_crop_whose_recognition_fails_fails_only_its_document() {
    only_the_bad_one_failed("rec-error:b-bad", "page_errors", "recognition fails");
}

#[test]
fn a_crop_whose_recognition_panics_fails_only_its_document() {
    only_the_bad_one_failed("rec-panic:b-bad", "internal", "recognition panics");
}

/// A page packed with text: `copies` x `copies` copies of the first page of
/// the scanned TIFF fixture, as one PNG.
fn packed_page(path: &Path, copies: u32) {
    let tiff = std::fs::read(fixtures().join("samples/scan-pages.tiff")).unwrap();
    let page = image::load_from_memory(&tiff).unwrap().to_rgb8();
    let (w, h) = page.dimensions();
    let mut big = image::RgbImage::new(w * copies, h * copies);
    for y in 0..copies {
        for x in 0..copies {
            image::imageops::replace(&mut big, &page, i64::from(x * w), i64::from(y * h));
        }
    }
    big.save(path).unwrap();
}

#[test]
fn a_page_that_would_take_all_night_stops_at_the_deadline() {
    let dir = setup(
        "isolation-deadline",
        &[
            ("normal.pdf", "born-digital.pdf"),
            ("small.webp", "small.webp"),
        ],
    );
    packed_page(&dir.join("in/packed.png"), 3);
    let (code, got) = run_with(&dir, None, "{doc_timeout_s: 2}");
    assert_eq!(code, Some(3), "{got:#?}");
    let packed = &got["packed.png"];
    assert_eq!(packed.status, "failed", "{packed:?}");
    assert_eq!(packed.class.as_deref(), Some("timeout"), "{packed:?}");
    let m = packed.message.as_deref().unwrap_or_default();
    assert!(m.contains("runtime.doc_timeout_s"), "{m}");
    for name in ["normal.pdf", "small.webp"] {
        let d = &got[name];
        assert_eq!(
            (d.status.as_str(), d.class.as_ref()),
            ("ok", None),
            "{name}: {d:?}"
        );
        assert!(!d.text.trim().is_empty());
    }
}
