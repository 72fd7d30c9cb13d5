//! The journal replayed into memory: the latest committed state of every
//! (input, config hash), and which parts are committed with which tables.
//!
//! Flat in the number of inputs: the entries are 32-byte slots kept on disk
//! ([`super::done`]), a committed part takes a few bytes. Only inputs whose
//! latest state is failed or partial keep their URI and path in memory (for
//! `--retry-failed`).

use super::done::{stat_digest, DoneSet, Slot};
use super::record::{DocEntry, Record};
use super::FileStat;
use crate::output::TABLES;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Latest state of one document id under one config hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub status: Status,
    pub attempt: u32,
    slot: Slot,
}

impl Entry {
    /// Whether a file with this stat is the one recorded: same size and
    /// mtime (as their 64-bit digest), and an mtime was recorded at all.
    pub fn unchanged(&self, stat: Option<FileStat>) -> bool {
        match stat {
            Some(FileStat {
                size,
                mtime_ns: Some(m),
            }) => self.slot.stat != 0 && self.slot.stat == stat_digest(size, m),
            _ => false,
        }
    }

    /// Whether a file read as `hex_sha` (empty: it could not be read) of
    /// `bytes` bytes has the recorded content: the same hash (its first 8
    /// bytes), or unread both times at the same size.
    pub fn same_content(&self, hex_sha: &str, bytes: u64) -> bool {
        let unread = self.slot.flags & Slot::UNREAD != 0;
        match sha_prefix(hex_sha) {
            Some(p) => !unread && self.slot.content == p,
            None => unread && hex_sha.is_empty() && self.slot.content == bytes,
        }
    }
}

/// A document's committed status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Partial,
    Failed,
}

impl Status {
    pub fn parse(s: &str) -> Self {
        match s {
            "ok" => Status::Ok,
            "partial" => Status::Partial,
            _ => Status::Failed,
        }
    }

    /// Whether `--retry-failed` replays a document in this state: it has
    /// rows in `failures/`.
    pub fn retried(self) -> bool {
        matches!(self, Status::Partial | Status::Failed)
    }

    fn bits(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Partial => 1,
            Status::Failed => 2,
        }
    }

    fn from_bits(b: u8) -> Self {
        match b & 0b11 {
            0 => Status::Ok,
            1 => Status::Partial,
            _ => Status::Failed,
        }
    }
}

/// An input to read again with `--retry-failed`.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedInput {
    pub uri: String,
    pub path: PathBuf,
}

/// The 64-bit key of a document id: its 16 hex digits (the form
/// `ingest::read` gives), else the first 8 bytes of its SHA-256.
pub fn doc_key(doc_id: &str) -> u64 {
    if doc_id.len() == 16 {
        if let Ok(v) = u64::from_str_radix(doc_id, 16) {
            return v;
        }
    }
    let d = Sha256::digest(doc_id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// The document id `ingest::read` gives a file with this URI: the first 16
/// hex digits of SHA-256(uri).
pub fn doc_id_of_uri(uri: &str) -> String {
    hex::encode(&Sha256::digest(uri.as_bytes())[..8])
}

/// The first 8 bytes (big-endian) of a hex SHA-256; `None` unless it is one.
fn sha_prefix(hex_sha: &str) -> Option<u64> {
    if hex_sha.len() != 64 || !hex_sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&hex_sha[..16], 16).ok()
}

/// Committed parts. Stems of the writer's form, `part-<run>-<NNNNN>`, with
/// tables among [`TABLES`], are kept as (interned run, number) and a bit
/// per table; any other is spelled out.
#[derive(Default)]
struct Parts {
    prefixes: HashMap<String, u32>,
    names: Vec<String>,
    compact: HashMap<(u32, u32), u8>,
    other: HashMap<String, Vec<String>>,
}

/// `(run, number)` of a stem the writer's `part_stem` gives.
fn parse_stem(stem: &str) -> Option<(&str, u32)> {
    let (prefix, digits) = stem.strip_prefix("part-")?.rsplit_once('-')?;
    if prefix.is_empty() || digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = digits.parse().ok()?;
    (format!("{n:05}") == digits).then_some((prefix, n))
}

fn table_mask(tables: &[String]) -> Option<u8> {
    tables.iter().try_fold(0u8, |m, t| {
        TABLES.iter().position(|x| x == t).map(|i| m | 1 << i)
    })
}

impl Parts {
    fn insert(&mut self, stem: &str, tables: &[String]) {
        if let (Some((prefix, n)), Some(mask)) = (parse_stem(stem), table_mask(tables)) {
            let next = self.names.len() as u32;
            let run = *self.prefixes.entry(prefix.to_string()).or_insert(next);
            if run == next {
                self.names.push(prefix.to_string());
            }
            self.compact.insert((run, n), mask);
        } else {
            self.other.insert(stem.to_string(), tables.to_vec());
        }
    }

    fn committed(&self, stem: &str, table: &str) -> bool {
        if let Some((prefix, n)) = parse_stem(stem) {
            let bit = TABLES.iter().position(|x| *x == table);
            let found = self
                .prefixes
                .get(prefix)
                .and_then(|r| self.compact.get(&(*r, n)));
            if let (Some(mask), Some(bit)) = (found, bit) {
                return mask & 1 << bit != 0;
            }
        }
        self.other
            .get(stem)
            .is_some_and(|t| t.iter().any(|x| x == table))
    }

    fn iter(&self) -> impl Iterator<Item = (String, Vec<String>)> + '_ {
        let compact = self.compact.iter().map(|((run, n), mask)| {
            let prefix = self.names.get(*run as usize).map_or("", String::as_str);
            let tables = TABLES
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & 1 << i != 0)
                .map(|(_, t)| t.to_string())
                .collect();
            (crate::output::part_stem(prefix, *n), tables)
        });
        let other = self.other.iter().map(|(s, t)| (s.clone(), t.clone()));
        compact.chain(other)
    }
}

#[derive(Default)]
pub struct State {
    configs: Vec<String>,
    done: DoneSet,
    failed: HashMap<(u64, u16), FailedInput>,
    /// Committed parts and their table folders.
    parts: Parts,
    /// Run ids (writer prefixes) that began in this journal.
    runs: HashSet<String>,
    /// Records applied, by type: parts, documents.
    pub parts_seen: u64,
    pub docs_seen: u64,
    /// The first error of the done-set's files, met by a lookup.
    error: OnceLock<String>,
}

impl State {
    /// An empty state whose done-set files go to `dir` (the journal's
    /// folder). `State::default()` puts them in the system's temporary
    /// folder.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            done: DoneSet::new(dir),
            ..Self::default()
        }
    }

    /// The first I/O error a lookup met (it then answered "not done"), if
    /// any: a commit fails on it.
    pub fn check(&self) -> io::Result<()> {
        match self.error.get() {
            Some(e) => Err(io::Error::other(format!("the journal's done-set: {e}"))),
            None => Ok(()),
        }
    }

    fn fail(&self, e: &io::Error) {
        if self.error.set(e.to_string()).is_ok() {
            tracing::error!(error = %e, "reading the journal's done-set failed");
        }
    }

    /// Merges the done-set's files into one (after a replay).
    pub fn compact(&mut self) -> io::Result<()> {
        self.done.compact()
    }

    fn config_index(&mut self, config: &str) -> u16 {
        if let Some(i) = self.find_config(config) {
            return i;
        }
        // More than 65,535 config hashes in one journal share the last index.
        let i = u16::try_from(self.configs.len()).unwrap_or(u16::MAX);
        if i < u16::MAX {
            self.configs.push(config.to_string());
        }
        i
    }

    fn find_config(&self, config: &str) -> Option<u16> {
        self.configs
            .iter()
            .position(|c| c == config)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// Applies one record; parts in `lost` are ignored. Fails when the
    /// done-set cannot write its files.
    pub fn apply(&mut self, r: &Record, lost: &HashSet<String>) -> io::Result<()> {
        if let Record::Run { run, .. } = r {
            self.runs.insert(run.clone());
            return Ok(());
        }
        let Record::Part {
            part, tables, docs, ..
        } = r
        else {
            return Ok(());
        };
        if lost.contains(part) {
            return Ok(());
        }
        self.parts.insert(part, tables);
        self.parts_seen += 1;
        for d in docs {
            self.apply_doc(d)?;
        }
        Ok(())
    }

    fn apply_doc(&mut self, d: &DocEntry) -> io::Result<()> {
        let cfg = self.config_index(&d.config);
        let key = doc_key(&d.doc_id);
        let status = Status::parse(&d.status);
        let (content, unread) = match sha_prefix(&d.sha256) {
            Some(p) => (p, 0),
            None => (d.size, Slot::UNREAD),
        };
        self.done.put(Slot {
            key,
            stat: d.mtime_ns.map_or(0, |m| stat_digest(d.size, m)),
            content,
            attempt: d.attempt,
            cfg,
            flags: status.bits() | unread,
        })?;
        if status.retried() {
            self.failed.insert(
                (key, cfg),
                FailedInput {
                    uri: d.uri.clone(),
                    path: PathBuf::from(&d.path),
                },
            );
        } else {
            self.failed.remove(&(key, cfg));
        }
        self.docs_seen += 1;
        Ok(())
    }

    /// Latest committed state of `doc_id` under `config`.
    pub fn get(&self, doc_id: &str, config: &str) -> Option<Entry> {
        let cfg = self.find_config(config)?;
        let slot = self.done.get(doc_key(doc_id), cfg).unwrap_or_else(|e| {
            self.fail(&e);
            None
        })?;
        Some(Entry {
            status: Status::from_bits(slot.flags),
            attempt: slot.attempt,
            slot,
        })
    }

    /// Whether a run with this id (writer prefix) began in this journal.
    pub fn knows_run(&self, run: &str) -> bool {
        self.runs.contains(run)
    }

    /// Whether part `stem` is committed with a file in `table`.
    pub fn committed(&self, stem: &str, table: &str) -> bool {
        self.parts.committed(stem, table)
    }

    /// Every committed part (its stem) and its tables.
    pub fn parts(&self) -> impl Iterator<Item = (String, Vec<String>)> + '_ {
        self.parts.iter()
    }

    /// Inputs whose latest state under `config` is failed or partial,
    /// sorted by path.
    pub fn failed_inputs(&self, config: &str) -> Vec<FailedInput> {
        let Some(cfg) = self.find_config(config) else {
            return Vec::new();
        };
        let mut v: Vec<FailedInput> = self
            .failed
            .iter()
            .filter(|((_, c), _)| *c == cfg)
            .map(|(_, f)| f.clone())
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path).then(a.uri.cmp(&b.uri)));
        v
    }

    /// Number of documents with a committed state under `config`.
    pub fn documents(&self, config: &str) -> usize {
        let Some(cfg) = self.find_config(config) else {
            return 0;
        };
        self.done.count(cfg).unwrap_or_else(|e| {
            self.fail(&e);
            0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, sha: &str, status: &str, attempt: u32) -> DocEntry {
        DocEntry {
            doc_id: id.into(),
            uri: format!("file:///in/{id}"),
            path: format!("/in/{id}"),
            sha256: sha.into(),
            config: "c1".into(),
            status: status.into(),
            error_class: None,
            attempt,
            size: 10,
            mtime_ns: Some(7),
            pages: 1,
        }
    }

    fn part(name: &str, docs: Vec<DocEntry>) -> Record {
        Record::Part {
            run: "r".into(),
            part: name.into(),
            tables: vec!["documents".into(), "pages".into(), "lines".into()],
            at_us: 0,
            docs,
        }
    }

    #[test]
    fn latest_state_wins_and_failed_are_listed() {
        let sha1 = "11".repeat(32);
        let sha2 = "22".repeat(32);
        let id = doc_id_of_uri("file:///in/a");
        let mut s = State::default();
        let none = HashSet::new();
        s.apply(&part("p0", vec![doc(&id, &sha1, "failed", 1)]), &none)
            .unwrap();
        assert_eq!(s.failed_inputs("c1").len(), 1);
        assert_eq!(s.get(&id, "c1").unwrap().status, Status::Failed);
        s.apply(&part("p1", vec![doc(&id, &sha2, "ok", 2)]), &none)
            .unwrap();
        let e = s.get(&id, "c1").unwrap();
        assert_eq!((e.status, e.attempt), (Status::Ok, 2));
        assert!(e.same_content(&sha2, 10));
        assert!(!e.same_content(&sha1, 10));
        assert!(s.failed_inputs("c1").is_empty());
        assert!(s.get(&id, "other").is_none());
        assert!(s.committed("p1", "pages") && !s.committed("p1", "failures"));
        assert_eq!(s.documents("c1"), 1);
    }

    #[test]
    fn lost_parts_are_ignored() {
        let mut s = State::default();
        let lost: HashSet<String> = ["p0".to_string()].into();
        s.apply(&part("p0", vec![doc("x", "", "ok", 1)]), &lost)
            .unwrap();
        assert!(s.get("x", "c1").is_none());
        assert!(!s.committed("p0", "documents"));
    }

    #[test]
    fn keys_and_content() {
        struct Case {
            /// Recorded content hash ("" unread) and size.
            stored: String,
            sha: String,
            bytes: u64,
            same: bool,
        }
        let a = "ab".repeat(32);
        // Content is compared by the hash's first 8 bytes.
        let b = format!("{}{}", "cd".repeat(8), "ab".repeat(24));
        for c in [
            Case {
                stored: "".into(),
                sha: "".into(),
                bytes: 10,
                same: true,
            },
            Case {
                stored: "".into(),
                sha: "".into(),
                bytes: 11,
                same: false,
            },
            Case {
                stored: "".into(),
                sha: "zz".into(),
                bytes: 10,
                same: false,
            },
            Case {
                stored: a.clone(),
                sha: "".into(),
                bytes: 10,
                same: false,
            },
            Case {
                stored: a.clone(),
                sha: a.clone(),
                bytes: 99,
                same: true,
            },
            Case {
                stored: a.clone(),
                sha: b.clone(),
                bytes: 10,
                same: false,
            },
        ] {
            let mut s = State::default();
            s.apply(
                &part("p", vec![doc("x", &c.stored, "ok", 1)]),
                &HashSet::new(),
            )
            .unwrap();
            let e = s.get("x", "c1").unwrap();
            assert_eq!(
                e.same_content(&c.sha, c.bytes),
                c.same,
                "{:?} vs {:?}",
                c.stored,
                c.sha
            );
        }
        assert_eq!(doc_key("00000000000000ff"), 255);
        assert_ne!(doc_key("not-hex"), doc_key("not-hex2"));
        assert_eq!(doc_id_of_uri("file:///a").len(), 16);
    }

    #[test]
    fn unchanged_needs_the_recorded_size_and_mtime() {
        let mut s = State::default();
        let mut d = doc("x", "", "ok", 1);
        s.apply(&part("p", vec![d.clone()]), &HashSet::new())
            .unwrap();
        let e = s.get("x", "c1").unwrap();
        let stat = |size, mtime_ns| Some(FileStat { size, mtime_ns });
        assert!(e.unchanged(stat(10, Some(7))));
        assert!(!e.unchanged(stat(10, Some(8))));
        assert!(!e.unchanged(stat(11, Some(7))));
        assert!(!e.unchanged(stat(10, None)));
        assert!(!e.unchanged(None));
        // no mtime recorded: never unchanged
        d.mtime_ns = None;
        s.apply(&part("p2", vec![d]), &HashSet::new()).unwrap();
        assert!(!s.get("x", "c1").unwrap().unchanged(stat(10, Some(7))));
    }

    #[test]
    fn parts_are_kept_compact_and_listed_back() {
        let mut s = State::default();
        let none = HashSet::new();
        let tables = |t: &[&str]| t.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let rec = |name: &str, t: Vec<String>| Record::Part {
            run: "r".into(),
            part: name.into(),
            tables: t,
            at_us: 0,
            docs: vec![],
        };
        s.apply(
            &rec("part-1764-ab-00007", tables(&["documents", "failures"])),
            &none,
        )
        .unwrap();
        s.apply(&rec("part-1764-ab-123456", tables(&["pages"])), &none)
            .unwrap();
        // not the writer's form, or an unknown table: spelled out
        s.apply(&rec("part-x-7", tables(&["documents"])), &none)
            .unwrap();
        s.apply(&rec("part-y-00001", tables(&["extra"])), &none)
            .unwrap();
        assert!(s.committed("part-1764-ab-00007", "failures"));
        assert!(!s.committed("part-1764-ab-00007", "pages"));
        assert!(s.committed("part-1764-ab-123456", "pages"));
        assert!(!s.committed("part-1764-ab-00008", "documents"));
        assert!(s.committed("part-x-7", "documents"));
        assert!(s.committed("part-y-00001", "extra"));
        assert!(!s.committed("part-y-00001", "documents"));
        let mut all: Vec<(String, Vec<String>)> = s.parts().collect();
        all.sort();
        assert_eq!(
            all,
            vec![
                (
                    "part-1764-ab-00007".into(),
                    tables(&["documents", "failures"])
                ),
                ("part-1764-ab-123456".into(), tables(&["pages"])),
                ("part-x-7".into(), tables(&["documents"])),
                ("part-y-00001".into(), tables(&["extra"])),
            ]
        );
    }
}
