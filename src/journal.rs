//! The run journal: what makes `docpipe run` resumable and exactly-once.
//!
//! `<output>/_journal/journal.jsonl` is an append-only file of JSON lines
//! ([`Record`]), each appended with one `write` and fsynced. A part's record
//! is appended after the part's files are closed and fsynced under their
//! `.tmp` names and before they are renamed into place, so:
//!
//! - a document is done exactly when a `part` record lists it;
//! - at start-up ([`Journal::recover`]) the `.tmp` files of recorded parts
//!   are renamed into place (a crash between the record and the renames),
//!   and every other `.tmp` file and every final part file that no record
//!   lists is deleted (a crash before the record);
//! - a torn last line (a crash during an append) is cut off.
//!
//! A re-run skips every listed file whose latest record under the same
//! config hash has the same content hash ([`Plan`], [`Journal::admit`]):
//! cheaply, without reading the file, when its size and modification time
//! are the recorded ones; otherwise after reading and hashing it. A changed
//! config hash processes everything again and adds rows under the new hash;
//! the old rows stay (see README, "Overnight runs", for the query that picks
//! each document's latest rows).
//!
//! `_journal/lock` is held (an exclusive file lock) while a run writes, so
//! two runs cannot write to one output at once.
//!
//! **Shards** ([`crate::shard`]) each keep a journal of their own,
//! `_journal/shard-K-of-N.jsonl` with the lock `_journal/shard-K-of-N.lock`,
//! and name their part files `part-shard-K-of-N-<run>-NNNNN.parquet`: a
//! shard's recovery leaves the other shards' files alone.
//!
//! **On object storage** ([`Place`] with a staging folder) the journal is a
//! folder of entry objects, each created put-if-absent, and a part's files
//! are uploaded whole *before* its record is written
//! ([`crate::storage::CommitOrder::PutThenRecord`]): an upload cut off
//! leaves no object, and a part uploaded but never recorded is deleted at
//! the next start.

mod done;
mod files;
mod record;
mod recover;
mod sink;
mod state;
mod status;

pub use files::{clear, exists, has_part_files, journal_path, journals};
pub use record::{read_records, DocEntry, ReadInfo, Record};
pub use recover::RecoveryReport;
pub use sink::{failure_rows, stage_of, JournaledSink};
pub use state::{doc_id_of_uri, doc_key, Entry, FailedInput, State, Status};
pub use status::{status, ShardStatus, StatusReport};

use crate::ingest::{DocRef, SourceFile};
use crate::output::{micros_since_epoch, CommitHook, OutputError, SealedPart};
use crate::shard::Shard;
use crate::storage::{Log, Place};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Folder of the journal inside the output folder.
pub const JOURNAL_DIR: &str = "_journal";
/// The whole-run journal's file inside [`JOURNAL_DIR`] (see
/// [`journal_path`] for a shard's).
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another process holds the output's lock.
    #[error("another docpipe run is writing to {0} (its journal lock is held)")]
    Locked(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn now_us() -> i64 {
    micros_since_epoch(SystemTime::now())
}

/// A file's size and modification time, taken just before it is read.
pub use crate::storage::ObjectMeta as FileStat;

/// What a run does with the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Process every listed file not already done under this config.
    Resume,
    /// Process exactly the documents whose latest state under this config is
    /// `failed` or `partial`, read again from their recorded paths.
    RetryFailed,
}

/// What a resumed run reads of its listing and what it skips, counted in
/// one pass over the listing ([`Journal::plan`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Files listed.
    pub listed: u64,
    /// Of those, files to read (not already done).
    pub todo: u64,
    /// Listed files already done under this config (skipped unread).
    pub done: u64,
    /// Of `done`, those whose latest state is failed or partial.
    pub done_failed: u64,
}

/// What the journal knows about a document between its admission (read and
/// hashed) and the commit of its part.
#[derive(Clone, Debug)]
struct InFlight {
    path: PathBuf,
    stat: Option<FileStat>,
    attempt: u32,
}

struct Inner {
    file: Box<dyn Log>,
    state: State,
    in_flight: HashMap<String, InFlight>,
    run: String,
    config: String,
    mode: Mode,
    committed_docs: u64,
}

/// An open run journal. Shared (`Arc`) by the run's ingest stage (which asks
/// [`admit`](Journal::admit)), the sink (attempt numbers) and the writer's
/// commit hook ([`hook`](Journal::hook)).
pub struct Journal {
    place: Place,
    shard: Shard,
    path: PathBuf,
    inner: Mutex<Inner>,
    /// What reading the journal found at open.
    opened: ReadInfo,
    _lock: File,
}

impl Journal {
    /// Opens (or creates) the whole-run journal of the local output folder
    /// `output` (see [`open_in`](Self::open_in)).
    pub fn open(output: &Path) -> Result<Self, JournalError> {
        let place = Place::open(output, "journal").map_err(io_err(output))?;
        Self::open_in(&place, Shard::ALL)
    }

    /// Opens (or creates) `shard`'s journal of the output at `place`,
    /// taking its lock. Replays the journal; cuts a torn last line. Call
    /// [`recover`](Self::recover) before writing.
    pub fn open_in(place: &Place, shard: Shard) -> Result<Self, JournalError> {
        let lock = files::lock(place, shard)?;
        let path = journal_path(&place.root, shard);
        let dir = place.root.join(JOURNAL_DIR);
        if !place.is_staged() {
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        let (state, info) = files::load(place, &path, recover::cache_dir(place))?;
        let mut file = place.storage.open_log(&path).map_err(io_err(&path))?;
        if info.good_len < info.file_len {
            tracing::warn!(
                journal = %path.display(),
                cut = info.file_len - info.good_len,
                "cutting a torn last record (a crash during an append)"
            );
            file.truncate(info.good_len).map_err(io_err(&path))?;
        } else if info.missing_newline {
            file.append(b"\n").map_err(io_err(&path))?;
        }
        if !info.bad_lines.is_empty() {
            tracing::warn!(
                journal = %path.display(),
                lines = ?info.bad_lines,
                "skipping journal lines that do not parse; their parts are redone"
            );
        }
        // A new journal file must survive a power loss with its folder entry.
        place.storage.sync_folder(&dir).map_err(io_err(&dir))?;
        Ok(Self {
            opened: info,
            place: place.clone(),
            shard,
            path,
            inner: Mutex::new(Inner {
                file,
                state,
                in_flight: HashMap::new(),
                run: String::new(),
                config: String::new(),
                mode: Mode::Resume,
                committed_docs: 0,
            }),
            _lock: lock,
        })
    }

    fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every
        // change is one insert or one append), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The latest state under `config` of a listed file that a resumed run
    /// skips unread: one recorded with its current size and mtime. `None`:
    /// the run reads it (and [`admit`](Self::admit) decides by its hash).
    pub fn done_entry(&self, file: &SourceFile, config: &str) -> Option<Entry> {
        let id = doc_id_of_uri(&file.uri);
        let entry = self.lock_inner().state.get(&id, config)?;
        // A file never recorded is not stat'ed.
        entry
            .unchanged(file.meta.or_else(|| FileStat::of(&file.path)))
            .then_some(entry)
    }

    /// Counts, in one streaming pass over a listing, what a resumed run
    /// under `config` reads and skips ([`done_entry`](Self::done_entry)).
    /// Holds no file; stops at the listing's first error.
    pub fn plan<E>(
        &self,
        files: impl IntoIterator<Item = Result<SourceFile, E>>,
        config: &str,
    ) -> Result<Plan, E> {
        let mut plan = Plan::default();
        for f in files {
            let f = f?;
            plan.listed += 1;
            match self.done_entry(&f, config) {
                Some(e) => {
                    plan.done += 1;
                    if e.status.retried() {
                        plan.done_failed += 1;
                    }
                }
                None => plan.todo += 1,
            }
        }
        Ok(plan)
    }

    /// The files of a listing that a resumed run under `config` reads (the
    /// `todo` of [`plan`](Self::plan)), filtered lazily as the listing is
    /// walked. Errors of the listing pass through.
    pub fn todo<I, E>(
        self: &Arc<Self>,
        files: I,
        config: &str,
    ) -> impl Iterator<Item = Result<SourceFile, E>> + Send + 'static
    where
        I: IntoIterator<Item = Result<SourceFile, E>>,
        I::IntoIter: Send + 'static,
        E: Send + 'static,
    {
        let journal = self.clone();
        let config = config.to_string();
        files.into_iter().filter(move |f| match f {
            Ok(f) => journal.done_entry(f, &config).is_none(),
            Err(_) => true,
        })
    }

    /// What a `--retry-failed` run under `config` reads: the recorded paths
    /// of the documents whose latest state is failed or partial, sorted by
    /// path. (These are few; the listing is not walked.)
    pub fn retry_inputs(&self, config: &str) -> Vec<SourceFile> {
        self.lock_inner()
            .state
            .failed_inputs(config)
            .into_iter()
            .map(|f| SourceFile {
                key: String::new(),
                meta: None,
                path: f.path,
                uri: f.uri,
            })
            .collect()
    }

    /// Appends the `run` record; from now on commits are recorded as this run's.
    pub fn begin_run(
        &self,
        run: &str,
        pipeline: &str,
        config: &str,
        mode: Mode,
    ) -> Result<(), JournalError> {
        self.begin(run, pipeline, config, mode, None)
    }

    /// [`begin_run`](Self::begin_run), with what the run set out to do
    /// (for `docpipe status`): the listing's plan.
    pub fn begin(
        &self,
        run: &str,
        pipeline: &str,
        config: &str,
        mode: Mode,
        plan: Option<&Plan>,
    ) -> Result<(), JournalError> {
        let mut inner = self.lock_inner();
        inner.run = run.to_string();
        inner.config = config.to_string();
        inner.mode = mode;
        let rec = Record::Run {
            run: run.to_string(),
            pipeline: pipeline.to_string(),
            config: config.to_string(),
            retry_failed: mode == Mode::RetryFailed,
            at_us: now_us(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            shard: (!self.shard.is_all()).then(|| self.shard.to_string()),
            inputs: plan.map(|p| p.listed),
            todo: plan.map(|p| p.todo),
        };
        append(&mut inner.file, &self.path, &rec)
    }

    /// The shard this journal is.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// Appends the `end` record of the run.
    pub fn end_run(&self, drained: bool) -> Result<(), JournalError> {
        let mut inner = self.lock_inner();
        let rec = Record::End {
            run: inner.run.clone(),
            drained,
            documents: inner.committed_docs,
            at_us: now_us(),
        };
        append(&mut inner.file, &self.path, &rec)
    }

    /// Documents committed by this run so far.
    pub fn committed_docs(&self) -> u64 {
        self.lock_inner().committed_docs
    }

    /// Documents with a committed state under `config`.
    pub fn documents(&self, config: &str) -> usize {
        self.lock_inner().state.documents(config)
    }

    /// Latest committed state of `doc_id` under `config`.
    pub fn latest(&self, doc_id: &str, config: &str) -> Option<Entry> {
        self.lock_inner().state.get(doc_id, config)
    }

    /// Called once a file is read and hashed, with its stat from just
    /// before it was read: `false` skips it (in `Resume` mode, a document
    /// whose latest state under this run's config has the same content).
    /// An admitted document gets its attempt number here.
    pub fn admit(&self, doc: &DocRef, stat: Option<FileStat>) -> bool {
        let mut inner = self.lock_inner();
        let prev = inner.state.get(&doc.id, &inner.config);
        if inner.mode == Mode::Resume
            && prev.is_some_and(|p| p.same_content(&doc.sha256, doc.bytes))
        {
            return false;
        }
        let attempt = prev.map_or(1, |p| p.attempt.saturating_add(1));
        inner.in_flight.insert(
            doc.uri.clone(),
            InFlight {
                path: doc.path.clone(),
                stat,
                attempt,
            },
        );
        true
    }

    /// The attempt number of an admitted document (1 for one never admitted).
    pub fn attempt_of(&self, uri: &str) -> u32 {
        self.lock_inner()
            .in_flight
            .get(uri)
            .map_or(1, |f| f.attempt)
    }

    /// The input path of an admitted document, if known.
    pub fn path_of(&self, uri: &str) -> Option<PathBuf> {
        self.lock_inner().in_flight.get(uri).map(|f| f.path.clone())
    }

    /// The commit hook to give the run's [`crate::output::OutputWriter`].
    pub fn hook(self: &Arc<Self>) -> Box<dyn CommitHook> {
        Box::new(Hook(self.clone()))
    }

    fn record_part(&self, part: &SealedPart<'_>) -> Result<(), JournalError> {
        let mut inner = self.lock_inner();
        // A lookup that failed answered "not done": commit nothing more.
        inner.state.check().map_err(io_err(&self.path))?;
        let mut docs = Vec::with_capacity(part.docs.len());
        for d in part.docs {
            let f = inner.in_flight.remove(&d.uri);
            let attempt = f.as_ref().map_or_else(
                || {
                    inner
                        .state
                        .get(&d.doc_id, &d.config_hash)
                        .map_or(1, |p| p.attempt.saturating_add(1))
                },
                |f| f.attempt,
            );
            let path = f.as_ref().map_or_else(
                || d.uri.strip_prefix("file://").unwrap_or(&d.uri).to_string(),
                |f| f.path.display().to_string(),
            );
            let stat = f.and_then(|f| f.stat);
            docs.push(DocEntry {
                doc_id: d.doc_id.clone(),
                uri: d.uri.clone(),
                path,
                sha256: d.sha256.clone(),
                config: d.config_hash.clone(),
                status: d.status.as_str().to_string(),
                error_class: d.error_class.clone(),
                attempt,
                size: stat.map_or(0, |s| s.size),
                mtime_ns: stat.and_then(|s| s.mtime_ns),
                pages: d.pages,
            });
        }
        let rec = Record::Part {
            run: inner.run.clone(),
            part: part.name.to_string(),
            tables: part
                .files
                .tables()
                .into_iter()
                .map(|(t, _)| t.to_string())
                .collect(),
            at_us: now_us(),
            docs,
        };
        append(&mut inner.file, &self.path, &rec)?;
        inner
            .state
            .apply(&rec, &HashSet::new())
            .map_err(io_err(&self.path))?;
        inner.committed_docs += part.docs.len() as u64;
        Ok(())
    }
}

struct Hook(Arc<Journal>);

impl CommitHook for Hook {
    fn sealed(&mut self, part: &SealedPart<'_>) -> Result<(), OutputError> {
        self.0.record_part(part).map_err(|e| match e {
            JournalError::Io { path, source } => OutputError::Io { path, source },
            other => OutputError::Io {
                path: self.0.path.clone(),
                source: io::Error::other(other.to_string()),
            },
        })
    }
}

/// One record as one line, appended with a single write, durably.
fn append(file: &mut Box<dyn Log>, path: &Path, rec: &Record) -> Result<(), JournalError> {
    let mut line = serde_json::to_vec(rec).map_err(|e| JournalError::Io {
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    line.push(b'\n');
    file.append(&line).map_err(io_err(path))
}

#[cfg(test)]
mod tests;
