//! Overnight runs with the real binary: `kill -9` at varied moments and
//! re-runs give exactly the rows of an uninterrupted run; SIGINT drains;
//! `--retry-failed` replays exactly the failed documents; a file added after
//! a complete run is the only one processed.
//!
//! `ocr.mode: never` keeps these fast: PDFs give their text layer, images
//! come out as `empty` pages.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

mod common;

use common::rows::{columns, make_inputs, rows, workdir, Rows};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn write_pipeline(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("pipeline.yaml");
    std::fs::write(
        &p,
        format!(
            "name: resume\ninput: {{path: {}}}\nocr: {{mode: never}}\noutput: {{path: {}}}\n{extra}",
            dir.join("in").display(),
            dir.join("out").display()
        ),
    )
    .unwrap();
    p
}

fn args<'a>(pipeline: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["run", pipeline.to_str().unwrap(), "--quiet"];
    v.extend_from_slice(extra);
    v
}

/// Runs that the tests interrupt are paced (a few ms per document) so the
/// interruption lands mid-run on any machine; see `SINK_DELAY_ENV`.
fn spawn(args: &[&str]) -> Child {
    docpipe()
        .args(args)
        .env("DOCPIPE_TEST_SINK_DELAY_MS", "15")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends SIG`name` (e.g. `INT`) to `child` with kill(1).
fn signal(child: &Child, name: &str) {
    let k = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success(), "kill -{name} failed");
}

fn stderr_of(child: Child) -> (ExitStatus, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Number of `part` records in the journal (0 when there is none yet).
fn committed_parts(out: &Path) -> usize {
    std::fs::read_to_string(out.join("_journal/journal.jsonl"))
        .map(|t| {
            t.lines()
                .filter(|l| l.starts_with("{\"type\":\"part\""))
                .count()
        })
        .unwrap_or(0)
}

/// Waits until the journal has more than `parts` part records or `child`
/// has exited; false on exit.
fn wait_for_commit(child: &mut Child, out: &Path, parts: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if committed_parts(out) > parts {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no commit within 120 s");
}

/// A timestamp column as microseconds, across batches.
fn micros(out: &Path, table: &str, column: &str) -> Vec<i64> {
    use arrow::array::AsArray;
    let mut v = Vec::new();
    for b in read_table(out, table) {
        let c = b.column_by_name(column).unwrap();
        let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Int64).unwrap();
        v.extend(
            c.as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .iter(),
        );
    }
    v
}

/// No temporary part file is left in any table folder.
fn assert_no_tmp(out: &Path) {
    for t in ["documents", "pages", "lines", "failures"] {
        for e in std::fs::read_dir(out.join(t)).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "{t}/{name} left behind");
        }
    }
}

/// Distinct run ids among the part files of `table`.
fn runs_with_parts(out: &Path, table: &str) -> BTreeSet<String> {
    std::fs::read_dir(out.join(table))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let stem = n.strip_suffix(".parquet")?.strip_prefix("part-")?;
            Some(stem.rsplit_once('-')?.0.to_string())
        })
        .collect()
}

/// An uninterrupted run of the same inputs into `ref_out`.
fn reference(dir: &Path) -> Rows {
    let pipeline = dir.join("pipeline.yaml");
    let ref_out = dir.join("ref-out");
    let o = run(&[
        "run",
        pipeline.to_str().unwrap(),
        "--output",
        ref_out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.code() == Some(0) || o.status.code() == Some(3));
    rows(&ref_out)
}

#[test]
fn kill_9_at_varied_moments_loses_and_duplicates_nothing() {
    let dir = workdir("resume-kill");
    make_inputs(&dir.join("in"), 30, 30);
    std::fs::write(dir.join("in/notes.txt"), b"not a document").unwrap();
    let pipeline = write_pipeline(&dir, "");
    let out = dir.join("out");
    let want = reference(&dir);
    assert_eq!(want.docs.len(), 61);
    assert!(want.lines.len() >= 300, "{} lines", want.lines.len());

    // Kill after the k-th commit of each run plus a varied extra delay, so
    // that kills land before, during and after commits.
    let extra_ms = [0u64, 7, 23, 41, 3, 60, 15];
    let a = args(&pipeline, &["--commit-every-docs", "3"]);
    let mut kills = 0;
    for (i, extra) in extra_ms.iter().enumerate() {
        let before = committed_parts(&out);
        let mut child = spawn(&a);
        if !wait_for_commit(&mut child, &out, before + (i % 2)) {
            break; // it finished before we could kill it
        }
        std::thread::sleep(Duration::from_millis(*extra));
        child.kill().unwrap(); // SIGKILL
        let (status, stderr) = stderr_of(child);
        if status.signal() == Some(9) {
            kills += 1;
        } else {
            assert!(status.code() == Some(3), "{status:?}\n{stderr}");
            break;
        }
    }
    assert!(kills >= 5, "only {kills} kills landed");
    // Run to the end.
    let (status, last) = stderr_of(spawn(&a));
    assert_eq!(status.code(), Some(3), "{last}");
    assert!(last.contains("resuming: "), "{last}");
    assert_no_tmp(&out);
    let got = rows(&out);
    assert_eq!(got.docs.len(), want.docs.len());
    assert_eq!(got, want);
    // Work was spread over several runs, i.e. resumed, not redone.
    assert!(runs_with_parts(&out, "documents").len() >= 3);
    // And one more run does nothing.
    let o = run(&a);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("resuming: 61 of 61 document(s) already done"),
        "{stderr}"
    );
    assert!(stderr.contains("documents: 0 "), "{stderr}");
    assert_eq!(rows(&out), want);
}

#[test]
fn sigint_drains_and_the_same_command_finishes() {
    let dir = workdir("resume-sigint");
    make_inputs(&dir.join("in"), 20, 20);
    let pipeline = write_pipeline(&dir, "");
    let out = dir.join("out");
    let want = reference(&dir);
    let a = args(&pipeline, &["--commit-every-docs", "2"]);
    let mut child = spawn(&a);
    assert!(wait_for_commit(&mut child, &out, 0), "finished too early");
    signal(&child, "INT");
    let (status, stderr) = stderr_of(child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("SIGINT: stopping"), "{stderr}");
    assert!(stderr.contains("Resume with the same command"), "{stderr}");
    assert_no_tmp(&out);
    let partial = rows(&out);
    assert!(
        !partial.docs.is_empty() && partial.docs.len() < 40,
        "{}",
        partial.docs.len()
    );
    let journal = std::fs::read_to_string(out.join("_journal/journal.jsonl")).unwrap();
    assert!(journal.contains("\"drained\":true"));

    let o = run(&a);
    assert_eq!(o.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let done = partial.docs.len();
    assert!(
        stderr.contains(&format!("resuming: {done} of 40 document(s) already done")),
        "{stderr}"
    );
    assert_eq!(rows(&out), want);
}

/// The parent that read docpipe's stderr is gone (its pipe has no reader):
/// a signal still drains and exits 130, and a second run finishes the job.
#[test]
fn a_signal_still_drains_when_stderr_is_gone() {
    let dir = workdir("resume-nostderr");
    make_inputs(&dir.join("in"), 20, 20);
    let pipeline = write_pipeline(&dir, "");
    let out = dir.join("out");
    let want = reference(&dir);
    let a = args(&pipeline, &["--commit-every-docs", "2"]);
    let mut child = spawn(&a);
    drop(child.stderr.take()); // close the only reader
    assert!(wait_for_commit(&mut child, &out, 0), "finished too early");
    signal(&child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit 60 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert_no_tmp(&out);
    let o = run(&a);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(rows(&out), want);
}

#[test]
fn retry_failed_replays_exactly_the_failed_documents() {
    let dir = workdir("resume-retry");
    make_inputs(&dir.join("in"), 2, 3);
    let fixable = dir.join("in/fixable.pdf");
    let bad = dir.join("in/stays-bad.pdf");
    std::fs::write(&fixable, b"%PDF-1.4\nbroken for now").unwrap();
    std::fs::write(&bad, b"%PDF-1.4\nbroken for good").unwrap();
    let pipeline = write_pipeline(&dir, "");
    let out = dir.join("out");
    let a = args(&pipeline, &[]);
    let o = run(&a);
    assert_eq!(o.status.code(), Some(3));
    let failures = columns(
        &out,
        "failures",
        &[
            "uri",
            "attempt",
            "stage",
            "error_class",
            "page_index",
            "input",
        ],
    );
    assert_eq!(failures.len(), 2, "{failures:?}");
    for f in &failures {
        assert_eq!(f[1].as_deref(), Some("1"));
        assert_eq!(f[2].as_deref(), Some("render"));
        assert_eq!(f[3].as_deref(), Some("corrupt"));
        assert_eq!(f[4], None);
        assert!(f[0].as_deref().unwrap().ends_with(f[5].as_deref().unwrap()));
    }

    // Fix one in place; retry.
    std::fs::copy(fixtures().join("samples/born-digital.pdf"), &fixable).unwrap();
    let o = run(&args(&pipeline, &["--retry-failed"]));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("retrying 2 document(s)"), "{stderr}");
    assert!(
        stderr.contains("documents: 2 (1 ok, 0 partial, 1 failed)"),
        "{stderr}"
    );

    // documents: the good ones once, the two retried ones twice; the latest
    // row of each (by started_at) is the new state.
    let docs = columns(&out, "documents", &["uri", "status"]);
    let started = micros(&out, "documents", "started_at");
    assert_eq!(docs.len(), 7 + 2);
    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for (d, at) in docs.iter().zip(started) {
        let (uri, status) = (d[0].clone().unwrap(), d[1].clone().unwrap());
        *count.entry(uri.clone()).or_default() += 1;
        let e = latest.entry(uri).or_insert((at, status.clone()));
        if at > e.0 {
            *e = (at, status);
        }
    }
    let key = |p: &Path| format!("file://{}", p.display());
    assert_eq!(count[&key(&fixable)], 2);
    assert_eq!(count[&key(&bad)], 2);
    assert_eq!(count.values().filter(|n| **n == 1).count(), 5);
    assert_eq!(latest[&key(&fixable)].1, "ok");
    assert_eq!(latest[&key(&bad)].1, "failed");

    // failures: the one that stays bad has attempts 1 and 2; the fixed one
    // got no new row.
    let failures = columns(&out, "failures", &["uri", "attempt"]);
    let mut attempts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in failures {
        attempts
            .entry(f[0].clone().unwrap())
            .or_default()
            .push(f[1].clone().unwrap());
    }
    for v in attempts.values_mut() {
        v.sort();
    }
    assert_eq!(attempts[&key(&bad)], vec!["1", "2"]);
    assert_eq!(attempts[&key(&fixable)], vec!["1"]);

    // Retry again: only the one still failing.
    let o = run(&args(&pipeline, &["--retry-failed"]));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("retrying 1 document(s)"), "{stderr}");
    let failures = columns(&out, "failures", &["uri", "attempt"]);
    assert!(failures.iter().any(|f| f[1].as_deref() == Some("3")));
    // A plain run now skips everything and still says some failed.
    let o = run(&a);
    assert_eq!(o.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("documents: 0 "), "{stderr}");
    assert!(
        stderr.contains("1 of the skipped document(s) failed earlier"),
        "{stderr}"
    );
}

#[test]
fn only_an_added_file_is_processed_and_a_new_config_redoes_all() {
    let dir = workdir("resume-added");
    make_inputs(&dir.join("in"), 3, 3);
    let pipeline = write_pipeline(&dir, "");
    let out = dir.join("out");
    let a = args(&pipeline, &[]);
    assert_eq!(run(&a).status.code(), Some(0));
    let before = rows(&out);
    assert_eq!(before.docs.len(), 6);

    std::fs::copy(
        fixtures().join("samples/born-digital.pdf"),
        dir.join("in/added.pdf"),
    )
    .unwrap();
    let o = run(&a);
    assert_eq!(o.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("resuming: 6 of 7 document(s) already done, skipped; 1 to do"),
        "{stderr}"
    );
    assert!(stderr.contains("documents: 1 (1 ok"), "{stderr}");
    let after = rows(&out);
    assert_eq!(after.docs.len(), 7);
    for (uri, row) in &before.docs {
        assert_eq!(&after.docs[uri], row);
    }

    // A touched file with the same content is read, hashed and skipped.
    let f = dir.join("in/doc000.pdf");
    let bytes = std::fs::read(&f).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&f, bytes).unwrap();
    let o = run(&a);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("skipped:   1 (read, content already done)"),
        "{stderr}"
    );
    assert_eq!(rows(&out), after);

    // Another config: everything again, under the new config hash; the
    // earlier rows stay.
    let pipeline = write_pipeline(&dir, "render: {dpi: 100}\n");
    let o = run(&args(&pipeline, &[]));
    assert_eq!(o.status.code(), Some(0));
    let docs = columns(&out, "documents", &["config_hash"]);
    let hashes: BTreeSet<String> = docs.iter().map(|d| d[0].clone().unwrap()).collect();
    assert_eq!(docs.len(), 14);
    assert_eq!(hashes.len(), 2);

    // --overwrite starts afresh.
    let o = run(&args(&pipeline, &["--overwrite"]));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(columns(&out, "documents", &["uri"]).len(), 7);
}

#[test]
fn an_output_without_a_journal_is_refused() {
    let dir = workdir("resume-legacy");
    make_inputs(&dir.join("in"), 1, 0);
    let pipeline = write_pipeline(&dir, "");
    let out = dir.join("out");
    std::fs::create_dir_all(out.join("documents")).unwrap();
    std::fs::write(out.join("documents/part-old-00000.parquet"), b"x").unwrap();
    let o = run(&args(&pipeline, &[]));
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("no run journal"), "{stderr}");
    assert!(out.join("documents/part-old-00000.parquet").exists());
}

#[test]
fn ocr_run_killed_after_its_first_commit_resumes_to_the_same_text() {
    let dir = workdir("resume-ocr");
    for f in ["small.bmp", "small.webp", "photo-exif.jpg"] {
        std::fs::copy(fixtures().join("samples").join(f), dir.join("in").join(f)).unwrap();
    }
    let pipeline = dir.join("pipeline.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: resume-ocr\ninput: {{path: {}}}\noutput: {{path: {}}}\n",
            dir.join("in").display(),
            dir.join("out").display()
        ),
    )
    .unwrap();
    let out = dir.join("out");
    // Text only: recognition floats may differ in the last bits between runs.
    let text = |o: &Path| {
        let mut pages: Vec<Vec<Option<String>>> =
            columns(o, "pages", &["doc_id", "page_index", "source", "text"]);
        pages.sort();
        let mut docs: Vec<Vec<Option<String>>> =
            columns(o, "documents", &["uri", "doc_id", "status", "pages"]);
        docs.sort();
        (docs, pages)
    };
    let ref_out = dir.join("ref-out");
    let o = run(&[
        "run",
        pipeline.to_str().unwrap(),
        "--output",
        ref_out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let want = text(&ref_out);
    assert_eq!(want.0.len(), 3);

    let a = args(&pipeline, &["--commit-every-docs", "1"]);
    let mut child = spawn(&a);
    assert!(wait_for_commit(&mut child, &out, 0), "finished too early");
    child.kill().unwrap();
    let (status, _) = stderr_of(child);
    assert_eq!(status.signal(), Some(9));
    let (status, stderr) = stderr_of(spawn(&a));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("resuming: "), "{stderr}");
    assert_no_tmp(&out);
    assert_eq!(text(&out), want);
    let _ = rows(&out); // no duplicate rows
}
