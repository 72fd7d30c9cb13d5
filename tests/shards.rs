//! Sharded runs with the real binary on a local output: N shards, run at
//! once, give exactly the rows of one run; manifests as input; `docpipe
//! status` on a half-done split.
//!
//! `ocr.mode: never` keeps these fast: PDFs give their text layer, images
//! come out as `empty` pages.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

mod common;

use common::rows::{make_inputs, rows, workdir};
use common::*;
use std::path::{Path, PathBuf};

fn write_pipeline(dir: &Path, input: &str) -> PathBuf {
    let p = dir.join("pipeline.yaml");
    std::fs::write(
        &p,
        format!(
            "name: shards\ninput: {{path: {input}}}\nocr: {{mode: never}}\noutput: {{path: out}}\n"
        ),
    )
    .unwrap();
    p
}

/// Runs `docpipe run PIPELINE --quiet ARGS…` and returns its exit code and stderr.
fn run_code(pipeline: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut a = vec!["run", pipeline.to_str().unwrap(), "--quiet"];
    a.extend_from_slice(extra);
    let o = run(&a);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Part files of `table` and the shard their names carry.
fn part_shards(out: &Path, table: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out.join(table))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let rest = n.strip_prefix("part-shard-")?;
            let (k, rest) = rest.split_once("-of-")?;
            let (n, _) = rest.split_once('-')?;
            Some(format!("{k}/{n}"))
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

fn status_json(out: &Path) -> serde_json::Value {
    let o = run(&["status", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success());
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn three_shards_at_once_give_exactly_the_rows_of_one_run() {
    let dir = workdir("shards-union");
    make_inputs(&dir.join("in"), 14, 10);
    std::fs::create_dir_all(dir.join("in/sub")).unwrap();
    std::fs::write(dir.join("in/sub/broken.pdf"), b"%PDF-1.7\nnot really").unwrap();
    let pipeline = write_pipeline(&dir, "in");
    let single = dir.join("single");
    let (code, err) = run_code(&pipeline, &["--output", single.to_str().unwrap()]);
    assert_eq!(code, Some(3), "{err}");
    let want = rows(&single);
    assert_eq!(want.docs.len(), 25);

    // Three shards at once into one output: no lock between them.
    let out = dir.join("out");
    let children: Vec<_> = (0..3)
        .map(|k| {
            docpipe()
                .args(["run", pipeline.to_str().unwrap(), "--quiet", "--shard"])
                .arg(format!("{k}/3"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut per_shard = Vec::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(matches!(o.status.code(), Some(0) | Some(3)), "{err}");
        per_shard.push(err);
    }
    let got = rows(&out);
    assert_eq!(got, want, "the union of the shards differs from one run");
    let failures = |o: &Path| {
        let cols = [
            "doc_id",
            "page_index",
            "stage",
            "error_class",
            "message",
            "attempt",
            "input",
        ];
        let mut v = common::rows::columns(o, "failures", &cols);
        v.sort();
        v
    };
    assert_eq!(failures(&out), failures(&single));
    assert_eq!(failures(&out).len(), 1);
    // Every shard did some of the work, named its parts after itself and
    // kept its own journal.
    assert_eq!(part_shards(&out, "documents"), ["0/3", "1/3", "2/3"]);
    for k in 0..3 {
        assert!(out.join(format!("_journal/shard-{k}-of-3.jsonl")).is_file());
    }
    let st = status_json(&out);
    assert_eq!(st["shards"].as_array().unwrap().len(), 3);
    assert_eq!(st["total"]["documents"], 25);
    assert_eq!(st["total"]["failed"], 1);
    assert_eq!(st["total"]["inputs"], 25);
    assert_eq!(st["total"]["state"], "finished");

    // Each shard resumes on its own: run again, nothing is redone.
    let (code, err) = run_code(&pipeline, &["--shard", "1/3"]);
    assert!(matches!(code, Some(0) | Some(3)), "{err}");
    assert!(err.contains("resuming: "), "{err}");
    assert!(err.contains("documents: 0 "), "{err}");
    // A file added later goes to one shard only, and the others' files
    // stay where they were.
    std::fs::copy(dir.join("in/doc000.pdf"), dir.join("in/zz-added.pdf")).unwrap();
    let mut added = 0;
    for k in 0..3 {
        let (code, err) = run_code(&pipeline, &["--shard", &format!("{k}/3")]);
        assert!(matches!(code, Some(0) | Some(3)), "{err}");
        if err.contains("documents: 1 ") {
            added += 1;
        } else {
            assert!(err.contains("documents: 0 "), "{err}");
        }
    }
    assert_eq!(added, 1);
    assert_eq!(rows(&out).docs.len(), 26);
    // `--shard auto` under a Kubernetes Indexed Job: the index from the
    // environment, the count passed.
    let o = docpipe()
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "--quiet",
            "--shard",
            "auto",
        ])
        .args(["--shards", "3"])
        .env("JOB_COMPLETION_INDEX", "2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("shard:     2/3"), "{err}");
}

#[test]
fn text_and_parquet_manifests_list_the_inputs() {
    let dir = workdir("shards-manifest");
    make_inputs(&dir.join("in"), 6, 4);
    // A text manifest: relative paths (against its folder), an absolute
    // one, comments; a file in the folder it does not name is not read.
    let listed = [
        "in/doc000.pdf",
        "in/doc003.pdf",
        "in/img001.png",
        "in/doc005.pdf",
    ];
    let mut text = String::from("# exported from the catalogue\n");
    for (i, f) in listed.iter().enumerate() {
        if i == 1 {
            text.push_str(&format!("{}\n\n", dir.join(f).display()));
        } else {
            text.push_str(&format!("{f}\n"));
        }
    }
    std::fs::write(dir.join("list.txt"), text).unwrap();
    let pipeline = write_pipeline(&dir, "list.txt");
    let (code, err) = run_code(&pipeline, &[]);
    assert_eq!(code, Some(0), "{err}");
    let got = rows(&dir.join("out"));
    let mut uris: Vec<String> = got.docs.keys().cloned().collect();
    uris.sort();
    let mut want: Vec<String> = listed
        .iter()
        .map(|f| format!("file://{}", dir.join(f).display()))
        .collect();
    want.sort();
    assert_eq!(uris, want);

    // The same list as Parquet (a `uri` column beside others), sharded:
    // the two shards together read what the text manifest gave.
    let pq = dir.join("catalogue.parquet");
    let (python, pythonpath) = python_with_pyarrow();
    let script = format!(
        "import pyarrow as pa, pyarrow.parquet as pq\n\
         uris = {:?}\n\
         t = pa.table({{'id': list(range(len(uris))), 'uri': uris}})\n\
         pq.write_table(t, {:?}, row_group_size=2)\n",
        listed
            .iter()
            .map(|f| dir.join(f).display().to_string())
            .collect::<Vec<_>>(),
        pq.display().to_string()
    );
    let o = std::process::Command::new(&python)
        .env("PYTHONPATH", &pythonpath)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out2 = dir.join("out2");
    for k in 0..2 {
        let (code, err) = run_code(
            &pipeline,
            &[
                "--input",
                pq.to_str().unwrap(),
                "--output",
                out2.to_str().unwrap(),
                "--shard",
                &format!("{k}/2"),
            ],
        );
        assert_eq!(code, Some(0), "{err}");
    }
    assert_eq!(rows(&out2), got);
    // status counts the manifest's entries as the inputs.
    assert_eq!(status_json(&out2)["total"]["inputs"], 4);
}

#[test]
fn status_names_the_shards_not_done() {
    let dir = workdir("shards-status");
    make_inputs(&dir.join("in"), 8, 0);
    let pipeline = write_pipeline(&dir, "in");
    let out = dir.join("out");
    // Two of three shards ran; the third never started.
    for k in [0, 2] {
        let (code, err) = run_code(&pipeline, &["--shard", &format!("{k}/3")]);
        assert_eq!(code, Some(0), "{err}");
    }
    let st = status_json(&out);
    let shards = st["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    assert_eq!(shards[1]["shard"], "1/3");
    assert_eq!(shards[1]["state"], "not started");
    assert_eq!(st["attention"], serde_json::json!(["1/3 not started"]));
    assert_ne!(st["total"]["state"], "finished");
    let done: u64 = [0, 2]
        .iter()
        .map(|&k| shards[k]["documents"].as_u64().unwrap())
        .sum();
    assert_eq!(st["total"]["documents"].as_u64().unwrap(), done);
    assert!(done < 8 && done > 0, "{done}");
    // The table names the shard too.
    let o = run(&["status", out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("attention: 1/3 not started"), "{text}");
    // A journal that says a shard started and has not committed for a
    // while is called stalled: a run record with no end, an hour old.
    let stale = format!(
        "{{\"type\":\"run\",\"run\":\"shard-1-of-3-x\",\"pipeline\":\"shards\",\"config\":\"c\",\"retry_failed\":false,\"at_us\":{},\"version\":\"0\",\"shard\":\"1/3\"}}\n",
        (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64)
            - 3_600_000_000
    );
    std::fs::write(out.join("_journal/shard-1-of-3.jsonl"), stale).unwrap();
    let st = status_json(&out);
    assert_eq!(st["shards"][1]["state"], "stalled");
    assert_eq!(st["attention"], serde_json::json!(["1/3 stalled"]));
}

#[test]
fn a_bad_shard_or_storage_url_is_refused_before_anything_runs() {
    let dir = workdir("shards-refused");
    make_inputs(&dir.join("in"), 1, 0);
    let pipeline = write_pipeline(&dir, "in");
    for bad in [
        &["--shard", "3/3"][..],
        &["--shard", "x"],
        &["--shard", "auto"],
    ] {
        let (code, err) = run_code(&pipeline, bad);
        assert_eq!(code, Some(2), "{bad:?}: {err}");
        assert!(err.contains("--shard"), "{err}");
    }
    assert!(!dir.join("out").exists());
    // A malformed URL in the pipeline file: file, line, column and key.
    let p = dir.join("bad-url.yaml");
    std::fs::write(
        &p,
        "name: t\ninput: {path: in}\noutput:\n  path: s3://Bad_Bucket/out\n",
    )
    .unwrap();
    for cmd in ["check", "run"] {
        let o = run(&[cmd, p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("bad-url.yaml:4:9: output.path"), "{err}");
        assert!(err.contains("bad bucket name"), "{err}");
    }
}
