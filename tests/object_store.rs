//! Input from and output to a real S3-compatible server (`s3s-fs`, started
//! by the test): three shards give exactly the rows of one run, pyarrow's
//! S3 filesystem reads the output, `kill -9` during uploads loses and
//! duplicates nothing, an object that cannot be read is its document's
//! `failed` row, and a store that cannot be reached is refused at its key.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

mod common;

use common::rows::{make_inputs, rows, workdir, Rows};
use common::s3::S3;
use common::*;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A pipeline reading `input` and writing `output` (URLs or paths).
fn write_pipeline(dir: &Path, input: &str, output: &str) -> PathBuf {
    let p = dir.join("pipeline.yaml");
    std::fs::write(
        &p,
        format!(
            "name: s3\ninput: {{path: {input}}}\nocr: {{mode: never}}\noutput: {{path: {output}}}\n"
        ),
    )
    .unwrap();
    p
}

/// `docpipe ARGS` against the server, with a staging folder of its own.
fn cmd(s3: &S3, dir: &Path, args: &[&str]) -> Command {
    let mut c = docpipe();
    c.args(args)
        .envs(s3.env())
        .env("DOCPIPE_STAGING", dir.join("staging"));
    c
}

fn run_s3(s3: &S3, dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let o = cmd(s3, dir, args).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Journal entries under `journal` (a shard's journal folder, or
/// `_journal/` for all) that commit a part.
fn journal_entries(journal: &Path) -> usize {
    walkdir::WalkDir::new(journal)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            std::fs::read_to_string(e.path()).is_ok_and(|t| t.starts_with("{\"type\":\"part\""))
        })
        .count()
}

/// Part objects named in no journal entry.
fn unlisted_parts(out: &Path) -> Vec<String> {
    let mut journal = String::new();
    for e in walkdir::WalkDir::new(out.join("_journal"))
        .into_iter()
        .flatten()
    {
        if e.file_type().is_file() {
            journal.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    let mut out_v = Vec::new();
    for t in ["documents", "pages", "lines", "failures"] {
        for e in std::fs::read_dir(out.join(t))
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = n.strip_suffix(".parquet") {
                if !journal.contains(&format!("\"{stem}\"")) {
                    out_v.push(format!("{t}/{n}"));
                }
            }
        }
    }
    out_v
}

#[test]
fn shards_on_s3_give_the_rows_of_one_run_and_pyarrow_reads_them() {
    let dir = workdir("s3-shards");
    make_inputs(&dir.join("in"), 12, 6);
    let s3 = S3::start("docpipe-shards");
    s3.put_tree(&dir.join("in"), "archive/in");
    let pipeline = write_pipeline(&dir, &s3.url("archive/in"), &s3.url("runs/single"));
    let p = pipeline.to_str().unwrap();
    let (code, err) = run_s3(&s3, &dir, &["check", p]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run_s3(&s3, &dir, &["run", p, "--quiet"]);
    assert_eq!(code, Some(0), "{err}");
    let want = rows(&s3.local("runs/single"));
    assert_eq!(want.docs.len(), 18);
    assert!(want
        .docs
        .keys()
        .all(|u| u.starts_with("s3://docpipe-shards/archive/in/")));

    // Three shards at once, each with its own staging folder.
    let sharded = s3.url("runs/sharded");
    let children: Vec<Child> = (0..3)
        .map(|k| {
            cmd(&s3, &dir.join(format!("k{k}")), &["run", p, "--quiet"])
                .args(["--output", &sharded, "--shard", &format!("{k}/3")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let got = rows(&s3.local("runs/sharded"));
    assert_eq!(got, want);
    assert!(unlisted_parts(&s3.local("runs/sharded")).is_empty());
    for k in 0..3 {
        assert!(s3
            .local(&format!("runs/sharded/_journal/shard-{k}-of-3.jsonl"))
            .is_dir());
    }
    // status reads the journals on the server.
    let o = cmd(&s3, &dir, &["status", &sharded, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["total"]["documents"], 18);
    assert_eq!(st["total"]["state"], "finished");

    // A real reader: pyarrow's S3 filesystem over the same server.
    let (python, pythonpath) = python_with_pyarrow();
    let script = format!(
        "import pyarrow.dataset as ds, pyarrow.fs as fs\n\
         s3 = fs.S3FileSystem(access_key={:?}, secret_key={:?}, endpoint_override={:?}, scheme='http', region='us-east-1')\n\
         for t in ['documents', 'pages', 'lines']:\n\
         \x20   sel = fs.FileSelector('docpipe-shards/runs/sharded/' + t)\n\
         \x20   files = [f.path for f in s3.get_file_info(sel) if f.path.endswith('.parquet')]\n\
         \x20   d = ds.dataset(files, filesystem=s3, format='parquet').to_table()\n\
         \x20   print(t, d.num_rows, len(set(d.column('doc_id').to_pylist())))\n",
        common::s3::ACCESS_KEY,
        common::s3::SECRET_KEY,
        s3.endpoint()
    );
    let o = Command::new(&python)
        .env("PYTHONPATH", &pythonpath)
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("documents 18 18"), "{text}");
    assert!(
        text.contains(&format!("pages {} 18", want.pages.len())),
        "{text}"
    );
    assert!(
        text.contains(&format!("lines {} ", want.lines.len())),
        "{text}"
    );
}

/// Runs `args` until a journal entry past `entries` appears, waits
/// `extra_ms`, then `kill -9`. False when it finished first.
fn kill_after_commit(mut c: Command, journal: &Path, entries: usize, extra_ms: u64) -> bool {
    let mut child = c
        .env("DOCPIPE_TEST_SINK_DELAY_MS", "15")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if journal_entries(journal) > entries {
            break;
        }
        assert!(Instant::now() < deadline, "no commit within 120 s");
        std::thread::sleep(Duration::from_millis(3));
    }
    std::thread::sleep(Duration::from_millis(extra_ms));
    child.kill().unwrap();
    let o = child.wait_with_output().unwrap();
    o.status.signal() == Some(9)
}

#[test]
fn kill_9_during_uploads_to_s3_loses_and_duplicates_nothing() {
    let dir = workdir("s3-kill");
    make_inputs(&dir.join("in"), 24, 12);
    let s3 = S3::start("docpipe-kill");
    s3.put_tree(&dir.join("in"), "in");
    let pipeline = write_pipeline(&dir, &s3.url("in"), &s3.url("ref"));
    let p = pipeline.to_str().unwrap();
    let (code, err) = run_s3(&s3, &dir, &["run", p, "--quiet"]);
    assert_eq!(code, Some(0), "{err}");
    let want: Rows = rows(&s3.local("ref"));
    assert_eq!(want.docs.len(), 36);

    // Two shards into one output; shard 0 is the one that dies.
    let out_url = s3.url("out");
    let out = s3.local("out");
    let shard_args = |k: &'static str| {
        vec![
            "run".to_string(),
            p.to_string(),
            "--quiet".into(),
            "--output".into(),
            out_url.clone(),
            "--commit-every-docs".into(),
            "2".into(),
            "--shard".into(),
            k.into(),
        ]
    };
    let (a0, a1) = (shard_args("0/2"), shard_args("1/2"));
    let args: Vec<&str> = a0.iter().map(String::as_str).collect();
    let other: Vec<&str> = a1.iter().map(String::as_str).collect();
    // Shard 1 runs alongside, untouched by what happens to shard 0.
    let shard1 = cmd(&s3, &dir.join("k1"), &other)
        .env("DOCPIPE_TEST_SINK_DELAY_MS", "15")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // 1. Aborted right after a part file's upload, before its journal
    //    entry: the uploaded part is not counted and is removed at restart.
    let o = cmd(&s3, &dir, &args)
        .env("DOCPIPE_TEST_STORE_FAULT", "abort-after-put:5")
        .output()
        .unwrap();
    assert_eq!(
        o.status.signal(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !unlisted_parts(&out).is_empty(),
        "the abort left no unlisted part"
    );
    // 2. kill -9 at varied moments after commits (during the uploads and
    //    entries of the next parts).
    let journal0 = out.join("_journal/shard-0-of-2.jsonl");
    let mut kills = 0;
    for extra in [0u64, 9, 21, 4, 35] {
        let before = journal_entries(&journal0);
        if !kill_after_commit(cmd(&s3, &dir, &args), &journal0, before, extra) {
            break;
        }
        kills += 1;
    }
    eprintln!("{kills} kills of shard 0 landed");
    assert!(kills >= 3, "only {kills} kills landed");
    let o = shard1.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // 3. Run shard 0 to the end: the union is exactly the reference rows,
    //    nothing unlisted.
    let (code, err) = run_s3(&s3, &dir, &args);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("resuming: "), "{err}");
    assert!(
        unlisted_parts(&out).is_empty(),
        "{:?}",
        unlisted_parts(&out)
    );
    assert_eq!(rows(&out), want);
    // And one more run of shard 0 does nothing.
    let (code, err) = run_s3(&s3, &dir, &args);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("already done"), "{err}");
    assert!(err.contains("documents: 0 "), "{err}");
}

#[test]
fn an_object_that_cannot_be_read_is_its_documents_failed_row() {
    let dir = workdir("s3-missing");
    make_inputs(&dir.join("in"), 3, 0);
    let s3 = S3::start("docpipe-missing");
    s3.put_tree(&dir.join("in"), "in");
    // A manifest on the server naming two objects that are there, one that
    // is not, and one in a bucket that does not exist.
    std::fs::create_dir_all(s3.local("lists")).unwrap();
    std::fs::write(
        s3.local("lists/batch.txt"),
        format!(
            "{}\n{}\n{}\ns3://no-such-bucket-here/x.pdf\n",
            s3.url("in/doc000.pdf"),
            s3.url("in/gone.pdf"),
            s3.url("in/doc002.pdf")
        ),
    )
    .unwrap();
    let pipeline = write_pipeline(&dir, &s3.url("lists/batch.txt"), "out");
    let o = cmd(&s3, &dir, &["run", pipeline.to_str().unwrap(), "--quiet"])
        .env("DOCPIPE_STORE_RETRIES", "1")
        .env("DOCPIPE_STORE_RETRY_TIMEOUT_S", "5")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    let docs = common::rows::columns(
        &dir.join("out"),
        "documents",
        &["uri", "status", "error_class"],
    );
    assert_eq!(docs.len(), 4, "{docs:?}");
    for d in &docs {
        let uri = d[0].clone().unwrap();
        let failed = uri.contains("gone.pdf") || uri.contains("no-such-bucket");
        let want = if failed {
            ("failed", Some("io"))
        } else {
            ("ok", None)
        };
        assert_eq!((d[1].as_deref().unwrap(), d[2].as_deref()), want, "{uri}");
    }
}

#[test]
fn a_store_that_cannot_be_reached_is_refused_at_its_key() {
    let dir = workdir("s3-unreachable");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = dir.join("p.yaml");
    std::fs::write(
        &p,
        "name: t\ninput: {path: in}\noutput:\n  path: s3://unreachable-bucket/out\n",
    )
    .unwrap();
    for c in ["check", "run"] {
        let o = docpipe()
            .args([c, p.to_str().unwrap()])
            .env("AWS_ACCESS_KEY_ID", "k")
            .env("AWS_SECRET_ACCESS_KEY", "s")
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{closed}"))
            .env("AWS_REGION", "us-east-1")
            .env("DOCPIPE_STORE_RETRIES", "1")
            .env("DOCPIPE_STORE_RETRY_TIMEOUT_S", "3")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{c}: {err}");
        assert!(
            err.contains("p.yaml:4:9: output.path: s3://unreachable-bucket/out cannot be reached"),
            "{c}: {err}"
        );
    }
}
