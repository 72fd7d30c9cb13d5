//! Sharded runs launched by the shipped `deploy/` files.
//!
//! Slurm: a real one-node cluster on 127.0.0.1 (`common::slurm`, started by
//! each test and stopped on drop) runs `deploy/slurm/docpipe.sbatch` as a
//! job array; the union of the shards' rows equals one unsharded run's, a
//! task rerun on its own resumes, and a task warned of its time limit drains,
//! requeues itself and resumes. The cluster needs root; Slurm and MUNGE are
//! installed with apt-get on first use when missing.
//!
//! Kubernetes cannot run here: the Indexed Job manifest is parsed, and its
//! container command is run as it stands, locally, as index 1 of 3.
//!
//! `ocr.mode: never` keeps the runs fast: PDFs give their text layer, images
//! come out as `empty` pages.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

mod common;

use common::rows::{columns, workdir};
use common::slurm::Cluster;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One cluster at a time: the tests share the machine's two cores.
static CLUSTER: Mutex<()> = Mutex::new(());

const TABLES: [&str; 4] = ["documents", "pages", "lines", "failures"];

fn sbatch_script() -> PathBuf {
    root().join("deploy/slurm/docpipe.sbatch")
}

fn k8s_manifest() -> PathBuf {
    root().join("deploy/k8s/docpipe-job.yaml")
}

/// `n` text-layer PDFs of one to three pages (in `in/` and `in/sub/`), the
/// born-digital fixture, two images and a truncated PDF (a `failed` row).
fn make_inputs(dir: &Path, n: usize) {
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    for i in 0..n {
        let pdf = pdf_of_lines(1 + i % 3, "", |p| {
            format!("Document {i} page {p} of the archive")
        });
        let name = if i % 2 == 0 {
            format!("doc{i:03}.pdf")
        } else {
            format!("sub/doc{i:03}.pdf")
        };
        std::fs::write(input.join(name), pdf).unwrap();
    }
    let samples = fixtures().join("samples");
    for f in ["born-digital.pdf", "small.bmp", "wide-page.png"] {
        std::fs::copy(samples.join(f), input.join(f)).unwrap();
    }
    std::fs::copy(
        fixtures().join("bad/truncated.pdf"),
        input.join("sub/truncated.pdf"),
    )
    .unwrap();
}

fn write_pipeline(dir: &Path) -> PathBuf {
    let p = dir.join("pipeline.yaml");
    std::fs::write(
        &p,
        format!(
            "name: sharded\ninput: {{path: {}}}\nocr: {{mode: never}}\noutput: {{path: {}}}\n",
            dir.join("in").display(),
            dir.join("out").display()
        ),
    )
    .unwrap();
    p
}

/// The unsharded run everything is compared with, into `dir/single`.
fn single_run(dir: &Path, pipeline: &Path) -> PathBuf {
    let out = dir.join("single");
    let o = run(&[
        "run",
        pipeline.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(3), "the truncated PDF fails");
    out
}

/// The rows of an output (see [`common::rows::Rows`]) and its failures,
/// keyed by (doc_id, page_index, stage).
#[derive(Debug, PartialEq)]
struct Rows {
    docs: BTreeMap<String, Vec<Option<String>>>,
    pages: BTreeMap<(String, String), Vec<Option<String>>>,
    lines: BTreeMap<(String, String, String), Vec<Option<String>>>,
    failures: BTreeMap<(String, String, String), Vec<Option<String>>>,
}

fn rows(out: &Path) -> Rows {
    let common::rows::Rows { docs, pages, lines } = common::rows::rows(out);
    let mut r = Rows {
        docs,
        pages,
        lines,
        failures: BTreeMap::new(),
    };
    let failures = [
        "doc_id",
        "page_index",
        "stage",
        "uri",
        "sha256",
        "error_class",
        "attempt",
        "config_hash",
    ];
    for row in columns(out, "failures", &failures) {
        let key = (
            row[0].clone().unwrap(),
            row[1].clone().unwrap_or_default(),
            row[2].clone().unwrap(),
        );
        assert!(
            r.failures.insert(key.clone(), row[3..].to_vec()).is_none(),
            "two failures rows for {key:?} in {}",
            out.display()
        );
    }
    r
}

/// The part files of `table`, by name.
fn parts(out: &Path, table: &str) -> BTreeSet<String> {
    std::fs::read_dir(out.join(table))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".parquet"))
                .collect()
        })
        .unwrap_or_default()
}

/// The shard a part file's name says it comes from, checking the name's form
/// `part-shard-K-of-N-<run>-NNNNN.parquet`; and its run.
fn shard_of(name: &str, n: usize) -> (usize, String) {
    let rest = name
        .strip_prefix("part-shard-")
        .unwrap_or_else(|| panic!("{name}: not part-shard-K-of-N-..."));
    let (k, rest) = rest.split_once("-of-").unwrap();
    let (count, rest) = rest.split_once('-').unwrap();
    assert_eq!(count, n.to_string(), "{name}: not of {n} shards");
    let stem = rest.strip_suffix(".parquet").unwrap();
    let (run, seq) = stem.rsplit_once('-').unwrap();
    assert!(
        !run.is_empty() && seq.len() == 5 && seq.bytes().all(|b| b.is_ascii_digit()),
        "{name}: not ...-<run>-NNNNN.parquet"
    );
    (k.parse().unwrap(), run.to_string())
}

/// The job id `sbatch --parsable` printed.
fn job_id(out: &Output) -> String {
    let s = String::from_utf8_lossy(&out.stdout);
    let line = s.lines().next().unwrap_or_default();
    let id = line
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "no job id in sbatch's output: {s:?}"
    );
    id
}

/// `sbatch --parsable --wait ... docpipe.sbatch PIPELINE [docpipe args]`
/// from `dir`, with the test binary as `DOCPIPE_BIN`.
fn sbatch(cluster: &Cluster, dir: &Path, sbatch_args: &[&str], docpipe_args: &[&str]) -> Command {
    let mut c = cluster.command("sbatch");
    c.current_dir(dir)
        .env("DOCPIPE_BIN", env!("CARGO_BIN_EXE_docpipe"))
        .env_remove("DOCPIPE_SHARDS")
        .env_remove("DOCPIPE_THREADS")
        .args(["--parsable", "--wait", "--mem=1G", "--time=15"])
        .args(sbatch_args)
        .arg(sbatch_script())
        .arg(dir.join("pipeline.yaml"))
        .args(docpipe_args);
    c
}

fn assert_ok(out: &Output, what: &str, cluster: &Cluster, dir: &Path) {
    assert!(
        out.status.success(),
        "{what} exited {:?}\nstdout: {}\nstderr: {}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        job_logs(dir),
        cluster.diagnostics()
    );
}

/// Every task log (`docpipe-*.out`) in `dir`, for assertion messages.
fn job_logs(dir: &Path) -> String {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("docpipe-"))
        })
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            format!(
                "--- {} ---\n{}",
                p.display(),
                std::fs::read_to_string(p).unwrap_or_default()
            )
        })
        .collect()
}

fn task_log(dir: &Path, job: &str, task: usize) -> String {
    let p = dir.join(format!("docpipe-{job}_{task}.out"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "no log {} ({e}): the script's --output=docpipe-%A_%a.out\n{}",
            p.display(),
            job_logs(dir)
        )
    })
}

#[test]
fn slurm_test_cluster_runs_an_array_with_the_variables_docpipe_reads() {
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = Cluster::start("cluster");
    let dir = workdir("slurm-cluster");
    let mut c = cluster.command("sbatch");
    c.current_dir(&dir).args([
        "--parsable",
        "--wait",
        "--array=2-4",
        "--output=task-%a.out",
        "--wrap",
        "echo $SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_MIN $SLURM_ARRAY_TASK_COUNT $SLURM_CPUS_PER_TASK",
        "--cpus-per-task=1",
    ]);
    let o = cluster.run(c, Duration::from_secs(120));
    assert_ok(&o, "sbatch --wrap", &cluster, &dir);
    for k in 2..=4 {
        let said = std::fs::read_to_string(dir.join(format!("task-{k}.out"))).unwrap();
        assert_eq!(said.trim(), format!("{k} 2 3 1"));
    }
}

#[test]
fn slurm_array_of_three_shards_gives_the_rows_of_one_run() {
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = Cluster::start("array");
    let dir = workdir("slurm-array");
    make_inputs(&dir, 30);
    let pipeline = write_pipeline(&dir);
    let out = dir.join("out");

    let started = Instant::now();
    let o = cluster.run(
        sbatch(&cluster, &dir, &["--array=0-2", "--cpus-per-task=1"], &[]),
        Duration::from_secs(300),
    );
    assert_ok(&o, "sbatch --array=0-2 --wait", &cluster, &dir);
    eprintln!("array of 3 done in {:?}", started.elapsed());
    let job = job_id(&o);

    // One log per task, saying which shard it ran and with how many threads.
    for k in 0..3 {
        let log = task_log(&dir, &job, k);
        assert!(
            log.contains(&format!("shard auto = {k}/3, 1 threads")),
            "task {k}'s log:\n{log}"
        );
        assert!(log.contains("done"), "task {k}'s log:\n{log}");
    }

    // Every part file carries its shard; every shard wrote documents.
    let mut shards_with_docs = BTreeSet::new();
    for table in TABLES {
        for name in parts(&out, table) {
            let (k, _) = shard_of(&name, 3);
            assert!(k < 3, "{table}/{name}");
            if table == "documents" {
                shards_with_docs.insert(k);
            }
            // The truncated PDF failed: its shard's task passed docpipe's
            // exit 3 on as success, and said so in its log.
            if table == "failures" {
                let log = task_log(&dir, &job, k);
                assert!(
                    log.contains("some documents failed"),
                    "task {k} wrote {name} but its log says nothing of it:\n{log}"
                );
            }
        }
    }
    assert_eq!(shards_with_docs, BTreeSet::from([0, 1, 2]));
    for k in 0..3 {
        let journal = out.join(format!("_journal/shard-{k}-of-3.jsonl"));
        assert!(journal.is_file(), "no journal {}", journal.display());
    }
    assert!(
        !parts(&out, "failures").is_empty(),
        "the truncated PDF fails"
    );

    // The union of the shards is exactly one unsharded run.
    let single = single_run(&dir, &pipeline);
    let sharded = rows(&out);
    assert_eq!(
        sharded.docs.len(),
        34,
        "30 PDFs, the fixture, 2 images, 1 bad"
    );
    assert_eq!(sharded, rows(&single));

    // A task rerun on its own, with the array's shard count, resumes: it
    // finds its shard done and adds nothing.
    let before: Vec<BTreeSet<String>> = TABLES.iter().map(|t| parts(&out, t)).collect();
    let mut rerun = sbatch(&cluster, &dir, &["--array=1", "--cpus-per-task=1"], &[]);
    rerun.env("DOCPIPE_SHARDS", "3");
    let o = cluster.run(rerun, Duration::from_secs(120));
    assert_ok(
        &o,
        "DOCPIPE_SHARDS=3 sbatch --array=1 --wait",
        &cluster,
        &dir,
    );
    let log = task_log(&dir, &job_id(&o), 1);
    assert!(log.contains("shard 1/3"), "{log}");
    let after: Vec<BTreeSet<String>> = TABLES.iter().map(|t| parts(&out, t)).collect();
    assert_eq!(before, after, "the rerun of a finished shard wrote parts");
    assert_eq!(rows(&out), rows(&single));

    // `docpipe status` sees the three shards and their total.
    let o = run(&["status", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "docpipe status failed");
    let status: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", String::from_utf8_lossy(&o.stdout)));
    check_status(&status, 3, &sharded);
    let o = run(&["status", out.to_str().unwrap()]);
    assert!(o.status.success(), "docpipe status failed");
    let text = String::from_utf8_lossy(&o.stdout);
    for k in 0..3 {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{k}/3 "))),
            "status has a line for shard {k}/3:\n{text}"
        );
    }
}

/// `docpipe status --json` of a finished `n`-shard run whose rows are `rows`.
fn check_status(status: &serde_json::Value, n: usize, rows: &Rows) {
    let shards = status["shards"]
        .as_array()
        .unwrap_or_else(|| panic!("no shards list in {status:#}"));
    let names: BTreeSet<String> = shards
        .iter()
        .map(|s| s["shard"].as_str().unwrap_or_default().to_string())
        .collect();
    let want: BTreeSet<String> = (0..n).map(|k| format!("{k}/{n}")).collect();
    assert_eq!(names, want, "{status:#}");
    let num =
        |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v:#}"));
    for s in shards {
        assert_eq!(s["state"], "finished", "{status:#}");
    }
    let total = &status["total"];
    let status_of = |want: &str| {
        rows.docs
            .values()
            .filter(|d| d[2].as_deref() == Some(want))
            .count() as u64
    };
    assert_eq!(
        num(total, "documents"),
        rows.docs.len() as u64,
        "{status:#}"
    );
    assert_eq!(num(total, "ok"), status_of("ok"), "{status:#}");
    assert_eq!(num(total, "failed"), status_of("failed"), "{status:#}");
    assert_eq!(num(total, "partial"), status_of("partial"), "{status:#}");
    assert_eq!(num(total, "pages"), rows.pages.len() as u64, "{status:#}");
    for k in ["documents", "ok", "failed", "pages"] {
        let sum: u64 = shards.iter().map(|s| num(s, k)).sum();
        assert_eq!(sum, num(total, k), "{k}: {status:#}");
    }
}

#[test]
fn slurm_task_warned_of_its_time_limit_drains_requeues_and_resumes() {
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = Cluster::start("requeue");
    let dir = workdir("slurm-requeue");
    // More documents than docpipe holds in flight (its queues), so that the
    // drain leaves some for the requeued run.
    make_inputs(&dir, 120);
    let pipeline = write_pipeline(&dir);
    let out = dir.join("out");

    // Two shards, paced so that task 1 is still running when it is warned.
    let mut c = sbatch(
        &cluster,
        &dir,
        &["--array=0-1", "--cpus-per-task=1"],
        &["--commit-every-docs", "2"],
    );
    c.env("DOCPIPE_TEST_SINK_DELAY_MS", "100");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(c.output().unwrap()));

    // Once shard 1 has committed a part, send its batch shell what
    // `--signal=B:USR1@600` sends ten minutes before the time limit.
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        assert!(
            Instant::now() < deadline,
            "shard 1 committed nothing within 120 s\n{}\n{}",
            job_logs(&dir),
            cluster.diagnostics()
        );
        let committed = parts(&out, "documents")
            .iter()
            .any(|n| n.starts_with("part-shard-1-of-2-"));
        let job = std::fs::read_dir(&dir).unwrap().flatten().find_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix("docpipe-")
                .and_then(|r| r.strip_suffix("_1.out"))
                .map(str::to_string)
        });
        if let (true, Some(job)) = (committed, job) {
            break job;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut usr1 = cluster.command("scancel");
    usr1.args(["--batch", "--signal=USR1", &format!("{job}_1")]);
    let o = cluster.run(usr1, Duration::from_secs(30));
    assert_ok(&o, "scancel --batch --signal=USR1", &cluster, &dir);

    let o = rx
        .recv_timeout(Duration::from_secs(300))
        .unwrap_or_else(|_| {
            panic!(
                "the array did not finish within 300 s\n{}\n{}",
                job_logs(&dir),
                cluster.diagnostics()
            )
        });
    assert_ok(&o, "sbatch --array=0-1 --wait", &cluster, &dir);

    let log = task_log(&dir, &job, 1);
    for said in [
        "time limit near: docpipe drains",
        "requeueing task",
        "restart 1",
        "shard auto = 1/2 done",
    ] {
        assert!(log.contains(said), "task 1's log lacks {said:?}:\n{log}");
    }
    let (_, second) = log.split_once("restart 1").unwrap();
    assert!(
        second.contains("resuming: "),
        "the requeued task did not resume:\n{log}"
    );
    // Shard 1 committed parts in two runs (before and after its requeue).
    let runs: BTreeSet<String> = parts(&out, "documents")
        .iter()
        .map(|n| shard_of(n, 2))
        .filter(|(k, _)| *k == 1)
        .map(|(_, run)| run)
        .collect();
    assert!(
        runs.len() >= 2,
        "shard 1 did not resume in a second run: {runs:?}"
    );
    assert_eq!(rows(&out), rows(&single_run(&dir, &pipeline)));
}

/// A mapping's value for `key` in the parsed manifest.
fn get<'a>(node: &'a docpipe::config::yaml::Node, key: &str) -> &'a docpipe::config::yaml::Node {
    use docpipe::config::yaml::NodeKind;
    match &node.kind {
        NodeKind::Map(entries) => entries
            .iter()
            .find(|(k, _)| matches!(&k.kind, NodeKind::Scalar { text, .. } if text == key))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {key} at line {}", node.line)),
        _ => panic!("not a mapping at line {} (looking for {key})", node.line),
    }
}

fn scalar(node: &docpipe::config::yaml::Node) -> String {
    match &node.kind {
        docpipe::config::yaml::NodeKind::Scalar { text, .. } => text.clone(),
        _ => panic!("not a scalar at line {}", node.line),
    }
}

fn seq(node: &docpipe::config::yaml::Node) -> &[docpipe::config::yaml::Node] {
    match &node.kind {
        docpipe::config::yaml::NodeKind::Seq(items) => items,
        _ => panic!("not a list at line {}", node.line),
    }
}

/// The manifest's container command: the script its `sh -c` runs.
fn pod_script() -> String {
    let text = std::fs::read_to_string(k8s_manifest()).unwrap();
    let doc = docpipe::config::yaml::parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let pod = get(get(get(&doc, "spec"), "template"), "spec");
    let container = &seq(get(pod, "containers"))[0];
    scalar(&seq(get(container, "args"))[0])
}

/// `sh -c SCRIPT` as pod index 1 of 3 would run it, with the test binary
/// as the image's `docpipe` on PATH and `pipeline` as `PIPELINE`; the
/// caller adds `INPUT`, `OUTPUT` and anything else.
fn pod_command(script: &str, pipeline: &Path) -> Command {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_docpipe"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(script)
        .env("PATH", path)
        .env("JOB_COMPLETION_INDEX", "1")
        .env("DOCPIPE_SHARDS", "3")
        .env("DOCPIPE_THREADS", "1")
        .env("PIPELINE", pipeline)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .env_remove("SLURM_ARRAY_TASK_MIN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn k8s_indexed_job_manifest_runs_its_shard_from_job_completion_index() {
    let text = std::fs::read_to_string(k8s_manifest()).unwrap();
    let doc = docpipe::config::yaml::parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(scalar(get(&doc, "kind")), "Job");
    let spec = get(&doc, "spec");
    assert_eq!(scalar(get(spec, "completionMode")), "Indexed");
    let completions = scalar(get(spec, "completions"));
    assert!(
        scalar(get(spec, "backoffLimitPerIndex"))
            .parse::<u32>()
            .unwrap()
            > 0
    );
    let pod = get(get(spec, "template"), "spec");
    assert_eq!(scalar(get(pod, "restartPolicy")), "Never");
    let container = &seq(get(pod, "containers"))[0];
    assert_eq!(scalar(get(container, "name")), "docpipe");

    let env: BTreeMap<String, &docpipe::config::yaml::Node> = seq(get(container, "env"))
        .iter()
        .map(|e| (scalar(get(e, "name")), e))
        .collect();
    let value = |k: &str| scalar(get(env[k], "value"));
    assert_eq!(
        value("DOCPIPE_SHARDS"),
        completions,
        "DOCPIPE_SHARDS = completions"
    );
    assert!(value("INPUT").starts_with("s3://") && value("OUTPUT").starts_with("s3://"));
    assert_eq!(value("DOCPIPE_CACHE"), "/cache");
    assert_eq!(value("DOCPIPE_OFFLINE"), "1");
    let threads = get(get(env["DOCPIPE_THREADS"], "valueFrom"), "resourceFieldRef");
    assert_eq!(scalar(get(threads, "resource")), "limits.cpu");
    let secret = get(&seq(get(container, "envFrom"))[0], "secretRef");
    assert_eq!(scalar(get(secret, "name")), "docpipe-s3");
    for key in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
    ] {
        assert!(text.contains(key), "the manifest documents {key}");
    }

    // The same docpipe command as the Slurm script.
    let command: Vec<String> = seq(get(container, "command")).iter().map(scalar).collect();
    assert_eq!(command, ["/bin/sh", "-c"]);
    let script = pod_script();
    let slurm = std::fs::read_to_string(sbatch_script()).unwrap();
    assert!(
        script.contains("docpipe run \"$PIPELINE\" --shard auto"),
        "{script}"
    );
    assert!(slurm.contains("\"$bin\" run \"$pipeline\" --shard \"$shard\""));
    assert!(slurm.contains("shard=auto"));

    // Run that command as it stands, as index 1 of 3, on local folders:
    // first stopped by the SIGTERM a pod gets (it reaches only the shell,
    // which passes it on: docpipe drains, exit 130), then again to the end,
    // resuming.
    let dir = workdir("k8s-index");
    make_inputs(&dir, 30);
    let pipeline = write_pipeline(&dir);
    let out = dir.join("out");
    let pod = |delay_ms: &str| {
        let mut c = pod_command(&script, &pipeline);
        c.env("INPUT", dir.join("in"))
            .env("OUTPUT", &out)
            .env("DOCPIPE_TEST_SINK_DELAY_MS", delay_ms);
        c
    };
    let first = pod("400").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let k = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    let o = first.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(130),
        "SIGTERM to the pod's shell\n{}",
        said(&o)
    );
    let o = pod("0").output().unwrap();
    assert!(
        o.status.success(),
        "the manifest's command exited {:?}\n{}",
        o.status.code(),
        said(&o)
    );
    let docs = parts(&out, "documents");
    assert!(!docs.is_empty(), "index 1 wrote no documents");
    for table in TABLES {
        for name in parts(&out, table) {
            assert_eq!(shard_of(&name, 3).0, 1, "{table}/{name}");
        }
    }
    // Its rows are those of shard 1 of 3 run directly.
    let direct = dir.join("direct");
    let o = run(&[
        "run",
        pipeline.to_str().unwrap(),
        "--shard",
        "1/3",
        "--output",
        direct.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(matches!(o.status.code(), Some(0 | 3)));
    assert_eq!(rows(&out), rows(&direct));
}

#[test]
fn k8s_manifest_command_reads_and_writes_object_storage() {
    // What the pod gets from the docpipe-s3 Secret, pointing at a real S3
    // server on 127.0.0.1; INPUT and OUTPUT on it, as in the manifest.
    let s3 = common::s3::S3::start("archive");
    let dir = workdir("k8s-s3");
    make_inputs(&dir, 12);
    s3.put_tree(&dir.join("in"), "scans");
    let pipeline = write_pipeline(&dir);
    let o = pod_command(&pod_script(), &pipeline)
        .envs(s3.env())
        .env("INPUT", s3.url("scans/"))
        .env("OUTPUT", s3.url("ocr/"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the manifest's command on S3 exited {:?}\n{}",
        o.status.code(),
        said(&o)
    );
    let out = s3.local("ocr");
    assert!(
        !parts(&out, "documents").is_empty(),
        "index 1 wrote no documents"
    );
    for table in TABLES {
        for name in parts(&out, table) {
            assert_eq!(shard_of(&name, 3).0, 1, "{table}/{name}");
        }
    }
    // The rows of `--shard 1/3` run directly on the same objects.
    let o = docpipe()
        .envs(s3.env())
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "--quiet",
            "--shard",
            "1/3",
        ])
        .args(["--input", &s3.url("scans/"), "--output", &s3.url("direct/")])
        .output()
        .unwrap();
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", said(&o));
    assert_eq!(rows(&out), rows(&s3.local("direct")));
    // `docpipe status` on the bucket: shard 1 of 3 finished, 0 and 2 not started.
    let o = docpipe()
        .envs(s3.env())
        .args(["status", &s3.url("ocr/"), "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", said(&o));
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let states: BTreeMap<String, String> = status["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["shard"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(states["1/3"], "finished", "{status:#}");
    assert_eq!(
        status["total"]["documents"].as_u64(),
        Some(rows(&out).docs.len() as u64),
        "{status:#}"
    );
}
