//! Render worker processes: a worker that hangs, crashes or grows too large
//! costs one document (a `failed` row with class `timeout`, `crashed` or
//! `out_of_memory`) and is replaced; two workers read two PDFs at once; and
//! a worker gives exactly the rows and pixels that PDFium in-process gives.
//!
//! Faults come from the worker's test-only switch `DOCPIPE_WORKER_FAULT`
//! (`KIND:NEEDLE`, matched against the document's bytes): the bad documents
//! are copies of the sample PDFs with a `%NEEDLE` comment after `%%EOF`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use docpipe::config::Pipeline;
use docpipe::output::{DocRows, DocumentRow, LineRow, PageRow};
use docpipe::pipeline::{self, DocSink, Renderer, Resources, RunOptions};
use docpipe::render::{self, RenderEvent, RenderSettings};
use docpipe::worker::{Outcome, Worker, WorkerSpec, FAULT_ENV};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("samples").join(name)).unwrap()
}

/// A copy of a sample PDF with `%needle` appended after its `%%EOF`.
fn with_needle(name: &str, needle: &str) -> Vec<u8> {
    let mut bytes = sample(name);
    bytes.extend_from_slice(format!("%{needle}\n").as_bytes());
    bytes
}

fn pipeline_file(dir: &Path, runtime: &str) -> PathBuf {
    let path = dir.join("p.yaml");
    std::fs::write(
        &path,
        format!(
            "name: workers\ninput: {{path: {}}}\nocr: {{mode: never}}\noutput: {{path: {}}}\nruntime: {runtime}\n",
            dir.join("in").display(),
            dir.join("out").display()
        ),
    )
    .unwrap();
    path
}

struct FaultRun {
    out: PathBuf,
    code: Option<i32>,
    stderr: String,
    /// documents rows by file name.
    docs: HashMap<String, DocRow>,
}

/// The columns of a documents row that these tests read.
#[derive(Debug)]
struct DocRow {
    status: String,
    class: Option<String>,
    message: Option<String>,
    pages: Option<String>,
}

const FAULTS: &str = "hang:DOCPIPE-TEST-HANG,crash:DOCPIPE-TEST-CRASH,oom:DOCPIPE-TEST-OOM";

/// One worker, one document at a time, in name order: good documents
/// between and after each bad one.
fn fault_run() -> &'static FaultRun {
    static RUN: OnceLock<FaultRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("worker-faults");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("in")).unwrap();
        let files: Vec<(&str, Vec<u8>)> = vec![
            ("a-ok.pdf", sample("born-digital.pdf")),
            (
                "b-hang.pdf",
                with_needle("born-digital.pdf", "DOCPIPE-TEST-HANG"),
            ),
            ("c-ok.pdf", sample("scanned.pdf")),
            (
                "d-crash.pdf",
                with_needle("born-digital.pdf", "DOCPIPE-TEST-CRASH"),
            ),
            ("e-ok.pdf", sample("born-digital.pdf")),
            ("f-oom.pdf", with_needle("scanned.pdf", "DOCPIPE-TEST-OOM")),
            ("g-ok.pdf", sample("born-digital.pdf")),
            ("h-ok.png", sample("wide-page.png")),
        ];
        for (name, bytes) in &files {
            std::fs::write(dir.join("in").join(name), bytes).unwrap();
        }
        let pipeline = pipeline_file(
            &dir,
            "{workers: 1, doc_timeout_s: 2, worker_memory_mb: 256}",
        );
        let out = dir.join("out");
        let o = docpipe()
            .args(["run", pipeline.to_str().unwrap(), "--quiet"])
            .env(FAULT_ENV, FAULTS)
            .env("DOCPIPE_LOG", "docpipe=debug")
            .output()
            .unwrap();
        let batches = read_table(&out, "documents");
        let cols: Vec<Vec<Option<String>>> =
            ["uri", "status", "error_class", "error_message", "pages"]
                .iter()
                .map(|c| strings(&batches, c))
                .collect();
        let mut docs = HashMap::new();
        for (i, uri) in cols[0].iter().enumerate() {
            let uri = uri.clone().unwrap();
            let name = uri.rsplit('/').next().unwrap().to_string();
            let row = DocRow {
                status: cols[1][i].clone().unwrap(),
                class: cols[2][i].clone(),
                message: cols[3][i].clone(),
                pages: cols[4][i].clone(),
            };
            assert!(
                docs.insert(name.clone(), row).is_none(),
                "two rows for {name}"
            );
        }
        FaultRun {
            out,
            code: o.status.code(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            docs,
        }
    })
}

fn failed_row(name: &str) -> (String, String) {
    let run = fault_run();
    let row = run
        .docs
        .get(name)
        .unwrap_or_else(|| panic!("no row for {name}; stderr:\n{}", run.stderr));
    assert_eq!(row.status, "failed", "{name}: {row:?}");
    assert_eq!(row.pages, None, "{name}");
    (row.class.clone().unwrap(), row.message.clone().unwrap())
}

#[test]
fn a_hanging_worker_is_a_timeout_row() {
    let (class, message) = failed_row("b-hang.pdf");
    assert_eq!(class, "timeout", "{message}");
    assert!(message.contains("more than 2 s"), "{message}");
    assert!(message.contains("runtime.doc_timeout_s"), "{message}");
}

#[test]
fn a_crashing_worker_is_a_crashed_row_with_its_signal() {
    let (class, message) = failed_row("d-crash.pdf");
    assert_eq!(class, "crashed", "{message}");
    assert!(
        message.contains("killed by signal 6 (SIGABRT)"),
        "{message}"
    );
    // Its stderr's last lines are in the message.
    assert!(message.contains(FAULT_ENV), "{message}");
}

#[test]
fn a_worker_over_its_memory_limit_is_an_out_of_memory_row() {
    let (class, message) = failed_row("f-oom.pdf");
    assert_eq!(class, "out_of_memory", "{message}");
    assert!(message.contains("over the limit of 256 MiB"), "{message}");
    assert!(message.contains("runtime.worker_memory_mb"), "{message}");
}

#[test]
fn every_other_document_succeeds_and_the_exit_code_says_some_failed() {
    let run = fault_run();
    assert_eq!(run.code, Some(3), "stderr:\n{}", run.stderr);
    assert_eq!(run.docs.len(), 8, "{:?}", run.docs.keys());
    let want_pages = [
        ("a-ok.pdf", "2"),
        ("c-ok.pdf", "2"),
        ("e-ok.pdf", "2"),
        ("g-ok.pdf", "2"),
        ("h-ok.png", "1"),
    ];
    for (name, pages) in want_pages {
        let row = &run.docs[name];
        assert_eq!(row.status, "ok", "{name}: {row:?}");
        assert_eq!(row.pages.as_deref(), Some(pages), "{name}");
    }
    assert!(
        run.stderr
            .contains("failures:  crashed 1, out_of_memory 1, timeout 1"),
        "{}",
        run.stderr
    );
    // The born-digital copies before and after each failure give their
    // text layer: a, e and g (b and d failed).
    let pages = read_table(&run.out, "pages");
    let texts = strings(&pages, "text");
    let first_pages = texts
        .iter()
        .filter(|t| {
            t.as_deref().is_some_and(|t| {
                t.starts_with("Northwind Supply Company\nInvoice Number: INV-2024-0387")
            })
        })
        .count();
    assert_eq!(first_pages, 3, "{texts:?}");
}

#[test]
fn a_new_worker_replaces_each_lost_one() {
    let run = fault_run();
    // One worker for a, b (lost); one for c, d (lost); one for e, f (lost);
    // one for g. Each started once, none for the PNG.
    let started: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("render worker started"))
        .collect();
    assert_eq!(started.len(), 4, "{}", run.stderr);
    let pids: BTreeSet<String> = started.iter().filter_map(|l| field(l, "worker")).collect();
    assert_eq!(pids.len(), 4, "{started:?}");
    let lost = run
        .stderr
        .lines()
        .filter(|l| l.contains("render worker lost"))
        .count();
    assert_eq!(lost, 3, "{}", run.stderr);
}

/// The value of `name=` in a tracing line.
fn field(line: &str, name: &str) -> Option<String> {
    let key = format!("{name}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key.as_str()))
        .map(str::to_string)
}

/// The render worker processes that took a document or part, by pid, from
/// a debug log.
fn worker_pids(stderr: &str) -> BTreeSet<String> {
    stderr
        .lines()
        .filter(|l| l.contains("render worker took a document"))
        .filter_map(|l| field(l, "worker"))
        .collect()
}

#[test]
fn two_workers_read_two_pdfs_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Each of these makes its worker wait 1.5 s before reading, so the two
    // overlap whenever both are handed out before the first is done.
    let slow = with_needle("born-digital.pdf", "DOCPIPE-TEST-SLOW");
    let (_, code, stderr) = two_worker_run(
        dir.path(),
        &[("one.pdf", slow.clone()), ("two.pdf", slow)],
        "slow:DOCPIPE-TEST-SLOW",
    );
    assert_eq!(code, Some(0), "{stderr}");
    let pids = worker_pids(&stderr);
    assert_eq!(pids.len(), 2, "{stderr}");
    assert!(
        stderr.contains("render stage finished: 2 threads, at most 2 documents at once"),
        "{stderr}"
    );
    assert!(stderr.contains("documents: 2 (2 ok"), "{stderr}");
}

/// A PDF of `pages` US Letter pages, page i (from 1) reading
/// "Page i of the long document".
fn long_pdf(pages: usize, needle: &str) -> Vec<u8> {
    pdf_of_lines(pages, needle, |i| format!("Page {i} of the long document"))
}

/// Runs the text-only pipeline over `files` on two workers with the fault
/// switch set to `faults`; returns the output folder, the exit code and
/// the log.
fn two_worker_run(
    dir: &Path,
    files: &[(&str, Vec<u8>)],
    faults: &str,
) -> (PathBuf, Option<i32>, String) {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join("in").join(name), bytes).unwrap();
    }
    let pipeline = pipeline_file(dir, "{workers: 2}");
    let o = docpipe()
        .args(["run", pipeline.to_str().unwrap(), "--quiet"])
        .env(FAULT_ENV, faults)
        .env("DOCPIPE_LOG", "docpipe=debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    (dir.join("out"), o.status.code(), stderr)
}

#[test]
fn a_long_pdf_is_shared_between_the_workers_and_comes_out_whole() {
    let dir = tempfile::tempdir().unwrap();
    // Every request sleeps 1.5 s in its worker, so while one worker reads a
    // part the other takes the next: 24 pages are 16 + 4 + 4.
    let (out, code, stderr) = two_worker_run(
        dir.path(),
        &[("long.pdf", long_pdf(24, "DOCPIPE-TEST-SLOW"))],
        "slow:DOCPIPE-TEST-SLOW",
    );
    assert_eq!(code, Some(0), "{stderr}");
    let pids = worker_pids(&stderr);
    assert_eq!(
        pids.len(),
        2,
        "one document, read by both workers:\n{stderr}"
    );
    assert!(stderr.contains("documents: 1 (1 ok"), "{stderr}");
    let docs = read_table(&out, "documents");
    assert_eq!(strings(&docs, "pages"), vec![Some("24".to_string())]);
    let pages = read_table(&out, "pages");
    let index = strings(&pages, "page_index");
    let text = strings(&pages, "text");
    let got: Vec<(usize, String)> = index
        .iter()
        .zip(&text)
        .map(|(i, t)| (i.clone().unwrap().parse().unwrap(), t.clone().unwrap()))
        .collect();
    let want: Vec<(usize, String)> = (0..24)
        .map(|i| (i, format!("Page {} of the long document", i + 1)))
        .collect();
    assert_eq!(got, want, "each page once, in order, with its own text");
}

#[test]
fn a_failed_part_fails_its_document_once_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // The worker aborts on every request for pages after the first part:
    // both later parts fail, in two workers.
    let (out, code, stderr) = two_worker_run(
        dir.path(),
        &[
            ("a-long.pdf", long_pdf(40, "DOCPIPE-TEST-LATER")),
            ("b-ok.pdf", sample("born-digital.pdf")),
        ],
        "crash-later:DOCPIPE-TEST-LATER",
    );
    assert_eq!(code, Some(3), "some documents failed:\n{stderr}");
    let docs = read_table(&out, "documents");
    let mut rows: Vec<(String, String, Option<String>)> = strings(&docs, "uri")
        .into_iter()
        .zip(strings(&docs, "status"))
        .zip(strings(&docs, "error_class"))
        .map(|((u, s), c)| {
            (
                u.unwrap().rsplit('/').next().unwrap().to_string(),
                s.unwrap(),
                c,
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("a-long.pdf".into(), "failed".into(), Some("crashed".into())),
            ("b-ok.pdf".into(), "ok".into(), None),
        ],
        "{stderr}"
    );
    assert!(!stderr.contains("was not started"), "{stderr}");
    let pages = read_table(&out, "pages");
    assert_eq!(strings(&pages, "page_index").len(), 2, "only b-ok's pages");
}

/// Collects every row in memory.
#[derive(Default)]
struct Rows {
    docs: Vec<DocumentRow>,
    pages: Vec<PageRow>,
    lines: Vec<LineRow>,
}

impl DocSink for Rows {
    fn write(&mut self, rows: DocRows) -> anyhow::Result<()> {
        let DocRows {
            mut doc,
            pages,
            lines,
            ..
        } = rows;
        // Timings differ from run to run; everything else must not.
        doc.started_at = 0;
        doc.time_ingest_ms = 0.0;
        doc.time_render_ms = 0.0;
        doc.time_normalise_ms = 0.0;
        doc.time_ocr_ms = 0.0;
        doc.time_total_ms = 0.0;
        self.docs.push(doc);
        self.pages.extend(pages);
        self.lines.extend(lines);
        Ok(())
    }
}

fn pdfium() -> PathBuf {
    docpipe::fetch::Cache::from_env().pdfium_library().unwrap()
}

fn library_run(renderer: Renderer, workers: usize) -> Rows {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: same\ninput: {{path: [{}, {}]}}\noutput: {{path: {}}}\nruntime: {{workers: {workers}}}\n",
        fixtures().join("samples").display(),
        fixtures().join("bad").display(),
        dir.path().join("out").display()
    );
    let p = Pipeline::parse(&yaml, Path::new("same.yaml"), dir.path()).unwrap();
    // No OCR models: scanned pages are rendered (and cross the pipe as
    // images) and then fail at detection, the same way in both modes.
    let resources = Resources {
        pdfium: Some(pdfium()),
        detector: None,
        recogniser: None,
        extractor: None,
        layout: None,
        model_ids: Vec::new(),
    };
    let opts = RunOptions {
        quiet: true,
        renderer,
        ..RunOptions::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_, mut rows) = rt
        .block_on(pipeline::run(&p, resources, Rows::default(), opts))
        .unwrap();
    rows.docs.sort_by(|a, b| a.uri.cmp(&b.uri));
    rows.pages
        .sort_by(|a, b| (&a.doc_id, a.page_index).cmp(&(&b.doc_id, b.page_index)));
    rows.lines.sort_by(|a, b| {
        (&a.doc_id, a.page_index, a.line_index).cmp(&(&b.doc_id, b.page_index, b.line_index))
    });
    rows
}

#[test]
fn workers_give_the_rows_that_in_process_rendering_gives() {
    let program = PathBuf::from(env!("CARGO_BIN_EXE_docpipe"));
    let inproc = library_run(Renderer::InProcess, 1);
    let pooled = library_run(Renderer::Workers { program }, 2);
    assert_eq!(inproc.docs.len(), 13);
    assert_eq!(inproc.docs, pooled.docs);
    assert_eq!(inproc.pages, pooled.pages);
    assert_eq!(inproc.lines, pooled.lines);
    // The text-layer lines carry PDF-point boxes; the classes of the bad
    // PDFs come through the pipe.
    assert!(pooled.lines.iter().any(|l| l.bbox_pt.is_some()));
    let classes: BTreeSet<_> = pooled
        .docs
        .iter()
        .filter_map(|d| d.error_class.clone())
        .collect();
    for c in ["corrupt", "encrypted", "empty"] {
        assert!(classes.contains(c), "{classes:?}");
    }
}

fn events(mut each: impl FnMut(&mut dyn FnMut(RenderEvent) -> bool)) -> Vec<RenderEvent> {
    let mut got = Vec::new();
    each(&mut |ev| {
        got.push(ev);
        true
    });
    got
}

#[test]
fn a_worker_renders_the_same_pixels_and_affine_as_in_process() {
    let lib = pdfium();
    let settings = RenderSettings {
        dpi: 100.0,
        read_text_layer: false,
        render_for_ocr: true,
        min_text_layer_chars: 8,
        max_pages: 100,
        max_image_pixels: 100_000_000,
        pages: None,
    };
    let data = sample("scanned.pdf");
    let spec = WorkerSpec {
        program: PathBuf::from(env!("CARGO_BIN_EXE_docpipe")),
        pdfium: lib.clone(),
        doc_timeout: Duration::from_secs(60),
        memory_limit: 2 << 30,
    };
    let mut worker = Worker::spawn(&spec).unwrap();
    let mut outcome = None;
    let remote = events(|emit| outcome = Some(worker.render("d", &data, &settings, emit)));
    assert!(matches!(outcome, Some(Outcome::Done)), "{outcome:?}");
    let local = events(|emit| {
        assert!(render::render_pdf(&lib, &data, &settings, emit).unwrap());
    });
    assert_eq!(remote.len(), 3, "{remote:?}");
    assert_eq!(local.len(), remote.len());
    for (l, r) in local.iter().zip(&remote) {
        match (l, r) {
            (RenderEvent::Start { pages: a }, RenderEvent::Start { pages: b }) => {
                assert_eq!((a, b), (&2, &2))
            }
            (
                RenderEvent::Image {
                    index: ia,
                    info: fa,
                    image: a,
                    to_points: ta,
                    ..
                },
                RenderEvent::Image {
                    index: ib,
                    info: fb,
                    image: b,
                    to_points: tb,
                    ..
                },
            ) => {
                assert_eq!((ia, fa, ta), (ib, fb, tb));
                assert!(a.width() > 100 && a.height() > 100);
                assert!(a == b, "page {ia}: pixels differ");
            }
            other => panic!("{other:?}"),
        }
    }
    // The same worker takes the next document, and reports a bad one as a
    // failure of the document, not of the worker.
    let pid = worker.pid();
    let mut outcome = None;
    let got = events(|emit| {
        outcome = Some(worker.render("bad", b"%PDF-1.7 not really", &settings, emit))
    });
    assert!(got.is_empty());
    match outcome {
        Some(Outcome::Failed(f)) => assert_eq!(f.class.as_str(), "corrupt"),
        other => panic!("{other:?}"),
    }
    let again = events(|emit| {
        assert!(matches!(
            worker.render("d2", &data, &settings, emit),
            Outcome::Done
        ));
    });
    assert_eq!(again.len(), 3);
    assert_eq!(worker.pid(), pid);
}
