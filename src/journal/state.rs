//! The journal replayed into memory: the latest committed state of every
//! (input, config hash), and which parts are committed with which tables.
//!
//! Kept compact (about 100 bytes per input) because it holds one entry per
//! input of the archive: the key is the 64-bit document id and an interned
//! config hash, the content hash is stored as bytes. Only inputs whose latest
//! state is failed or partial keep their URI and path (for `--retry-failed`).

use super::record::{DocEntry, Record};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// Latest state of one document id under one config hash.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Content hash; `None` when the file could not be read.
    pub sha256: Option<[u8; 32]>,
    pub status: Status,
    pub attempt: u32,
    pub size: u64,
    pub mtime_ns: Option<i64>,
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

fn sha_bytes(hex_sha: &str) -> Option<[u8; 32]> {
    let v = hex::decode(hex_sha).ok()?;
    v.try_into().ok()
}

/// Whether a committed content hash equals `hex_sha` (both unknown counts
/// as equal: a file that could not be read either time).
pub fn same_content(stored: Option<[u8; 32]>, hex_sha: &str) -> bool {
    match (stored, sha_bytes(hex_sha)) {
        (Some(a), Some(b)) => a == b,
        (None, None) => hex_sha.is_empty(),
        _ => false,
    }
}

#[derive(Default)]
pub struct State {
    configs: Vec<String>,
    latest: HashMap<(u64, u32), Entry>,
    failed: HashMap<(u64, u32), FailedInput>,
    /// Committed part stem -> its table folders.
    parts: HashMap<String, Vec<String>>,
    /// Run ids (writer prefixes) that began in this journal.
    runs: HashSet<String>,
    /// Records applied, by type: parts, documents.
    pub parts_seen: u64,
    pub docs_seen: u64,
}

impl State {
    fn config_index(&mut self, config: &str) -> u32 {
        if let Some(i) = self.configs.iter().position(|c| c == config) {
            return i as u32;
        }
        self.configs.push(config.to_string());
        (self.configs.len() - 1) as u32
    }

    fn find_config(&self, config: &str) -> Option<u32> {
        self.configs
            .iter()
            .position(|c| c == config)
            .map(|i| i as u32)
    }

    /// Applies one record; parts in `lost` are ignored.
    pub fn apply(&mut self, r: &Record, lost: &HashSet<String>) {
        if let Record::Run { run, .. } = r {
            self.runs.insert(run.clone());
            return;
        }
        let Record::Part {
            part, tables, docs, ..
        } = r
        else {
            return;
        };
        if lost.contains(part) {
            return;
        }
        self.parts.insert(part.clone(), tables.clone());
        self.parts_seen += 1;
        for d in docs {
            self.apply_doc(d);
        }
    }

    fn apply_doc(&mut self, d: &DocEntry) {
        let cfg = self.config_index(&d.config);
        let key = (doc_key(&d.doc_id), cfg);
        let status = Status::parse(&d.status);
        self.latest.insert(
            key,
            Entry {
                sha256: sha_bytes(&d.sha256),
                status,
                attempt: d.attempt,
                size: d.size,
                mtime_ns: d.mtime_ns,
            },
        );
        if status.retried() {
            self.failed.insert(
                key,
                FailedInput {
                    uri: d.uri.clone(),
                    path: PathBuf::from(&d.path),
                },
            );
        } else {
            self.failed.remove(&key);
        }
        self.docs_seen += 1;
    }

    /// Latest committed state of `doc_id` under `config`.
    pub fn get(&self, doc_id: &str, config: &str) -> Option<&Entry> {
        let cfg = self.find_config(config)?;
        self.latest.get(&(doc_key(doc_id), cfg))
    }

    /// Whether a run with this id (writer prefix) began in this journal.
    pub fn knows_run(&self, run: &str) -> bool {
        self.runs.contains(run)
    }

    /// Whether part `stem` is committed with a file in `table`.
    pub fn committed(&self, stem: &str, table: &str) -> bool {
        self.parts
            .get(stem)
            .is_some_and(|t| t.iter().any(|x| x == table))
    }

    /// Every committed part and its tables.
    pub fn parts(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
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
        self.find_config(config).map_or(0, |cfg| {
            self.latest.keys().filter(|(_, c)| *c == cfg).count()
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
        s.apply(&part("p0", vec![doc(&id, &sha1, "failed", 1)]), &none);
        assert_eq!(s.failed_inputs("c1").len(), 1);
        assert_eq!(s.get(&id, "c1").unwrap().status, Status::Failed);
        s.apply(&part("p1", vec![doc(&id, &sha2, "ok", 2)]), &none);
        let e = s.get(&id, "c1").unwrap();
        assert_eq!((e.status, e.attempt), (Status::Ok, 2));
        assert!(same_content(e.sha256, &sha2));
        assert!(!same_content(e.sha256, &sha1));
        assert!(s.failed_inputs("c1").is_empty());
        assert!(s.get(&id, "other").is_none());
        assert!(s.committed("p1", "pages") && !s.committed("p1", "failures"));
        assert_eq!(s.documents("c1"), 1);
    }

    #[test]
    fn lost_parts_are_ignored() {
        let mut s = State::default();
        let lost: HashSet<String> = ["p0".to_string()].into();
        s.apply(&part("p0", vec![doc("x", "", "ok", 1)]), &lost);
        assert!(s.get("x", "c1").is_none());
        assert!(!s.committed("p0", "documents"));
    }

    #[test]
    fn keys_and_content() {
        struct Case {
            stored: Option<[u8; 32]>,
            sha: &'static str,
            same: bool,
        }
        for c in [
            Case {
                stored: None,
                sha: "",
                same: true,
            },
            Case {
                stored: None,
                sha: "zz",
                same: false,
            },
            Case {
                stored: Some([0; 32]),
                sha: "",
                same: false,
            },
        ] {
            assert_eq!(same_content(c.stored, c.sha), c.same, "{:?}", c.sha);
        }
        assert_eq!(doc_key("00000000000000ff"), 255);
        assert_ne!(doc_key("not-hex"), doc_key("not-hex2"));
        assert_eq!(doc_id_of_uri("file:///a").len(), 16);
    }
}
