//! The journal with a real writer in a temporary folder: commits, crash
//! leftovers, recovery, torn records, planning and admission.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::ingest::Kind;
use crate::output::{DocStatus, DocumentRow, OutputWriter, WriterOptions};
use crate::shard::Shard;
use std::fs;

fn row(uri: &str, sha: &str, status: DocStatus) -> DocumentRow {
    DocumentRow {
        doc_id: doc_id_of_uri(uri),
        uri: uri.into(),
        sha256: sha.into(),
        bytes: 3,
        mime: "application/pdf".into(),
        pages: Some(0),
        status,
        error_class: (status == DocStatus::Failed).then(|| "corrupt".to_string()),
        error_message: (status == DocStatus::Failed).then(|| "bad".to_string()),
        pipeline: "t".into(),
        config_hash: "cfg".into(),
        model_ids: vec![],
        started_at: 0,
        pages_text_layer: 0,
        pages_ocr: 0,
        time_ingest_ms: 0.0,
        time_render_ms: 0.0,
        time_normalise_ms: 0.0,
        time_ocr_ms: 0.0,
        time_total_ms: 0.0,
        extracted: None,
    }
}

fn docref(dir: &Path, name: &str, content: &[u8]) -> DocRef {
    let path = dir.join(name);
    fs::write(&path, content).unwrap();
    let uri = format!("file://{}", path.display());
    DocRef {
        id: doc_id_of_uri(&uri),
        uri,
        path,
        sha256: hex::encode(sha2::Sha256::digest(content)),
        bytes: content.len() as u64,
        kind: Kind::Pdf,
    }
}

use sha2::Digest;

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Admits and writes `docs` through a writer with the journal hook.
fn write_run(out: &Path, j: &Arc<Journal>, run: &str, docs: &[(&DocRef, DocStatus)]) {
    j.begin_run(run, "t", "cfg", Mode::Resume).unwrap();
    let mut w = OutputWriter::create(
        out,
        run,
        WriterOptions {
            commit_every_docs: 2,
            ..WriterOptions::default()
        },
    )
    .unwrap();
    w.set_commit_hook(j.hook());
    for (d, status) in docs {
        assert!(j.admit(d, FileStat::of(&d.path)));
        w.write_document(row(&d.uri, &d.sha256, *status), vec![], vec![])
            .unwrap();
    }
    w.close().unwrap();
    j.end_run(false).unwrap();
}

#[test]
fn commits_are_recorded_and_resume_skips_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, input) = (tmp.path().join("out"), tmp.path().join("in"));
    fs::create_dir_all(&input).unwrap();
    let a = docref(&input, "a.pdf", b"aaa");
    let b = docref(&input, "b.pdf", b"bbb");
    let c = docref(&input, "c.pdf", b"ccc");
    {
        let j = Arc::new(Journal::open(&out).unwrap());
        j.recover().unwrap();
        write_run(
            &out,
            &j,
            "r1",
            &[
                (&a, DocStatus::Ok),
                (&b, DocStatus::Failed),
                (&c, DocStatus::Ok),
            ],
        );
        assert_eq!(j.committed_docs(), 3);
        // two parts (commit every 2 documents); no failure rows were given
        assert_eq!(
            files(&out.join("documents")),
            vec!["part-r1-00000.parquet", "part-r1-00001.parquet"]
        );
        assert_eq!(files(&out.join("failures")), Vec::<String>::new());
    }
    let j = Journal::open(&out).unwrap();
    let rec = j.recover().unwrap();
    assert_eq!(
        (rec.renamed, rec.deleted_tmp, rec.deleted_unlisted),
        (0, 0, 0)
    );
    assert_eq!(j.documents("cfg"), 3);
    assert_eq!(j.latest(&b.id, "cfg").unwrap().status, Status::Failed);
    let listed: Vec<SourceFile> = [&a, &b, &c]
        .iter()
        .map(|d| SourceFile {
            path: d.path.clone(),
            uri: d.uri.clone(),
            key: String::new(),
            meta: None,
        })
        .collect();
    let ok = |v: &Vec<SourceFile>| v.clone().into_iter().map(Ok::<_, ()>);
    let plan = j.plan(ok(&listed), "cfg").unwrap();
    assert_eq!((plan.todo, plan.done, plan.done_failed), (0, 3, 1));
    assert_eq!(plan.listed, 3);
    // another config does everything again
    assert_eq!(j.plan(ok(&listed), "other").unwrap().todo, 3);
    // retry lists exactly the failed one, from its recorded path
    let retry = j.retry_inputs("cfg");
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].path, b.path);
}

#[test]
fn the_todo_of_a_listing_is_filtered_as_it_is_walked() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, input) = (tmp.path().join("out"), tmp.path().join("in"));
    fs::create_dir_all(&input).unwrap();
    let a = docref(&input, "a.pdf", b"aaa");
    let b = docref(&input, "b.pdf", b"bbb");
    let j = Arc::new(Journal::open(&out).unwrap());
    write_run(&out, &j, "r1", &[(&a, DocStatus::Ok), (&b, DocStatus::Ok)]);
    // b changes size, c is new: both are read again, a is skipped
    let b2 = docref(&input, "b.pdf", b"bbbb");
    let c = docref(&input, "c.pdf", b"ccc");
    let src = |d: &DocRef| SourceFile {
        path: d.path.clone(),
        uri: d.uri.clone(),
        key: String::new(),
        meta: None,
    };
    let listing = || {
        vec![
            Ok(src(&a)),
            Err("unreadable folder"),
            Ok(src(&b2)),
            Ok(src(&c)),
        ]
    };
    let todo: Vec<Result<SourceFile, &str>> = j.todo(listing(), "cfg").collect();
    assert_eq!(
        todo,
        vec![Err("unreadable folder"), Ok(src(&b2)), Ok(src(&c))]
    );
    // the counting pass stops at the listing's error
    assert_eq!(j.plan(listing(), "cfg"), Err("unreadable folder"));
    let ok: Vec<Result<SourceFile, &str>> = listing().into_iter().filter(|f| f.is_ok()).collect();
    let plan = j.plan(ok, "cfg").unwrap();
    assert_eq!(
        plan,
        Plan {
            listed: 3,
            todo: 2,
            done: 1,
            done_failed: 0
        }
    );
}

#[test]
fn admission_compares_content_and_counts_attempts() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, input) = (tmp.path().join("out"), tmp.path().join("in"));
    fs::create_dir_all(&input).unwrap();
    let a = docref(&input, "a.pdf", b"aaa");
    let j = Arc::new(Journal::open(&out).unwrap());
    write_run(&out, &j, "r1", &[(&a, DocStatus::Failed)]);
    j.begin_run("r2", "t", "cfg", Mode::Resume).unwrap();
    // same content: skipped even when its mtime changed
    assert!(!j.admit(&a, None));
    // changed content: admitted as attempt 2
    let a2 = docref(&input, "a.pdf", b"aaaa");
    assert!(j.admit(&a2, None));
    assert_eq!(j.attempt_of(&a2.uri), 2);
    // retry admits the same content again
    j.begin_run("r3", "t", "cfg", Mode::RetryFailed).unwrap();
    assert!(j.admit(&a, None));
}

#[test]
fn recovery_finishes_committed_parts_and_removes_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let input = tmp.path().join("in");
    fs::create_dir_all(&input).unwrap();
    let a = docref(&input, "a.pdf", b"aaa");
    let b = docref(&input, "b.pdf", b"bbb");
    {
        let j = Arc::new(Journal::open(&out).unwrap());
        write_run(&out, &j, "r1", &[(&a, DocStatus::Ok), (&b, DocStatus::Ok)]);
    }
    // As if the crash came after the record and before the renames: move
    // the committed files back to their temporary names.
    for t in ["documents", "pages", "lines"] {
        fs::rename(
            out.join(t).join("part-r1-00000.parquet"),
            out.join(t).join(".part-r1-00000.parquet.tmp"),
        )
        .unwrap();
    }
    // An uncommitted part of the same run (crash before its record), a
    // final file no record lists, a part of an unknown run, another file.
    fs::write(out.join("pages/.part-r1-00001.parquet.tmp"), b"x").unwrap();
    fs::write(out.join("lines/part-r1-00002.parquet"), b"x").unwrap();
    fs::write(out.join("lines/part-elsewhere-00000.parquet"), b"x").unwrap();
    fs::write(out.join("lines/notes.txt"), b"keep me").unwrap();
    let j = Journal::open(&out).unwrap();
    let rec = j.recover().unwrap();
    assert_eq!(
        (
            rec.renamed,
            rec.deleted_tmp,
            rec.deleted_unlisted,
            rec.foreign
        ),
        (3, 1, 1, 1)
    );
    assert!(rec.lost_parts.is_empty() && !rec.torn_tail);
    assert_eq!(files(&out.join("pages")), vec!["part-r1-00000.parquet"]);
    assert_eq!(
        files(&out.join("lines")),
        vec![
            "notes.txt",
            "part-elsewhere-00000.parquet",
            "part-r1-00000.parquet"
        ]
    );
    assert_eq!(j.documents("cfg"), 2);
}

#[test]
fn an_incomplete_committed_part_is_lost_and_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let input = tmp.path().join("in");
    fs::create_dir_all(&input).unwrap();
    let a = docref(&input, "a.pdf", b"aaa");
    let b = docref(&input, "b.pdf", b"bbb");
    let c = docref(&input, "c.pdf", b"ccc");
    {
        let j = Arc::new(Journal::open(&out).unwrap());
        write_run(
            &out,
            &j,
            "r1",
            &[
                (&a, DocStatus::Ok),
                (&b, DocStatus::Ok),
                (&c, DocStatus::Ok),
            ],
        );
    }
    fs::remove_file(out.join("lines/part-r1-00000.parquet")).unwrap();
    {
        let j = Journal::open(&out).unwrap();
        let rec = j.recover().unwrap();
        assert_eq!(rec.lost_parts, vec!["part-r1-00000".to_string()]);
        assert!(j.latest(&a.id, "cfg").is_none());
        assert!(j.latest(&c.id, "cfg").is_some());
        assert_eq!(files(&out.join("documents")), vec!["part-r1-00001.parquet"]);
    }
    // the `lost` record persists
    let j = Journal::open(&out).unwrap();
    assert!(j.recover().unwrap().lost_parts.is_empty());
    assert!(j.latest(&b.id, "cfg").is_none());
    assert_eq!(j.documents("cfg"), 1);
}

#[test]
fn torn_last_record_is_cut_and_appends_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let input = tmp.path().join("in");
    fs::create_dir_all(&input).unwrap();
    let a = docref(&input, "a.pdf", b"aaa");
    {
        let j = Arc::new(Journal::open(&out).unwrap());
        write_run(&out, &j, "r1", &[(&a, DocStatus::Ok)]);
    }
    let path = out.join(JOURNAL_DIR).join(JOURNAL_FILE);
    let good = fs::read(&path).unwrap();
    let mut torn = good.clone();
    torn.extend_from_slice(b"{\"type\":\"part\",\"run\":\"r2\",\"part\":\"part-r2-0");
    fs::write(&path, &torn).unwrap();
    let j = Journal::open(&out).unwrap();
    assert_eq!(fs::read(&path).unwrap(), good);
    assert!(j.recover().unwrap().torn_tail);
    j.begin_run("r2", "t", "cfg", Mode::Resume).unwrap();
    drop(j);
    let j = Journal::open(&out).unwrap();
    assert_eq!(j.documents("cfg"), 1);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.ends_with("\n") && text.lines().last().unwrap().contains("\"r2\""));
}

#[test]
fn one_run_at_a_time_and_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let place = Place::open(&out, "t").unwrap();
    let j = Journal::open(&out).unwrap();
    assert!(matches!(Journal::open(&out), Err(JournalError::Locked(_))));
    assert!(matches!(
        clear(&place, Shard::ALL),
        Err(JournalError::Locked(_))
    ));
    drop(j);
    fs::create_dir_all(out.join("documents")).unwrap();
    fs::write(out.join("documents/part-x-00000.parquet"), b"x").unwrap();
    assert!(has_part_files(&place) && exists(&place, Shard::ALL));
    clear(&place, Shard::ALL).unwrap();
    assert!(!has_part_files(&place) && !exists(&place, Shard::ALL));
}

/// Runs shard `s` over `docs` with its own journal and part prefix.
fn write_shard(place: &Place, s: Shard, run: &str, docs: &[&DocRef]) -> Arc<Journal> {
    let j = Arc::new(Journal::open_in(place, s).unwrap());
    j.recover().unwrap();
    let prefix = s.part_prefix(run);
    j.begin_run(&prefix, "t", "cfg", Mode::Resume).unwrap();
    let mut w = OutputWriter::create_in(place, &prefix, WriterOptions::default()).unwrap();
    w.set_commit_hook(j.hook());
    for d in docs {
        assert!(j.admit(d, FileStat::of(&d.path)));
        w.write_document(row(&d.uri, &d.sha256, DocStatus::Ok), vec![], vec![])
            .unwrap();
    }
    w.close().unwrap();
    j.end_run(false).unwrap();
    j
}

#[test]
fn shards_keep_their_own_journals_and_leave_each_other_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, input) = (tmp.path().join("out"), tmp.path().join("in"));
    fs::create_dir_all(&input).unwrap();
    let a = docref(&input, "a.pdf", b"aaa");
    let b = docref(&input, "b.pdf", b"bbb");
    let place = Place::open(&out, "t").unwrap();
    let (s0, s1) = (Shard { index: 0, count: 2 }, Shard { index: 1, count: 2 });
    // Both shards open at once: separate locks.
    let j0 = write_shard(&place, s0, "r0", &[&a]);
    let j1 = write_shard(&place, s1, "r1", &[&b]);
    assert_eq!(journals(&place).unwrap(), vec![s0, s1]);
    assert_eq!(
        files(&out.join("documents")),
        vec![
            "part-shard-0-of-2-r0-00000.parquet",
            "part-shard-1-of-2-r1-00000.parquet"
        ]
    );
    drop((j0, j1));
    // A shard's recovery leaves the other shard's parts alone without
    // calling them foreign; a part of its own name from a run its journal
    // does not know is foreign (left alone, reported).
    fs::write(out.join("lines/part-shard-0-of-2-r9-00000.parquet"), b"x").unwrap();
    let j0 = Journal::open_in(&place, s0).unwrap();
    let rec = j0.recover().unwrap();
    assert_eq!((rec.foreign, rec.deleted_unlisted), (1, 0), "{rec:?}");
    drop(j0);
    fs::remove_file(out.join("lines/part-shard-0-of-2-r9-00000.parquet")).unwrap();
    // Each shard resumes alone: its own documents are done, not the other's.
    let j1 = Journal::open_in(&place, s1).unwrap();
    assert!(j1.latest(&b.id, "cfg").is_some() && j1.latest(&a.id, "cfg").is_none());
    drop(j1);
    // --overwrite of one shard removes its files and journal only.
    clear(&place, s0).unwrap();
    assert_eq!(journals(&place).unwrap(), vec![s1]);
    assert_eq!(
        files(&out.join("documents")),
        vec!["part-shard-1-of-2-r1-00000.parquet"]
    );
    // status sees the one journal left and names the shard never run.
    let st = status(&place, i64::MAX / 2, 60).unwrap();
    assert_eq!(st.shards.len(), 2);
    assert_eq!(st.total.documents, 1);
    assert_eq!(st.attention, vec!["0/2 not started".to_string()]);
}
