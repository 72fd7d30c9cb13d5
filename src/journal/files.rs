//! Where an output's journals live and what is done with them as wholes:
//! their names (one per shard), the lock a writer holds, replaying one
//! into a [`State`], and clearing for `--overwrite`.

use super::record::{read_records, ReadInfo, Record};
use super::state::State;
use super::{io_err, JournalError, JOURNAL_DIR};
use crate::output::{parse_any_part, TABLES};
use crate::shard::Shard;
use crate::storage::Place;
use fs4::fs_std::FileExt;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The journal of `shard` in the output at `root`:
/// `_journal/journal.jsonl` for a whole run, `_journal/shard-K-of-N.jsonl`
/// for a shard (on object storage, a folder of entry objects of that name).
pub fn journal_path(root: &Path, shard: Shard) -> PathBuf {
    root.join(JOURNAL_DIR)
        .join(format!("{}.jsonl", shard.journal_name()))
}

/// The shards whose journals the output holds, in name order.
pub fn journals(place: &Place) -> io::Result<Vec<Shard>> {
    let mut out: Vec<Shard> = place
        .storage
        .names(&place.root.join(JOURNAL_DIR))?
        .iter()
        .filter_map(|n| Shard::of_journal_name(n.strip_suffix(".jsonl")?))
        .collect();
    out.sort_by_key(|s| (s.count, s.index));
    out.dedup();
    Ok(out)
}

/// Whether the output has `shard`'s journal.
pub fn exists(place: &Place, shard: Shard) -> bool {
    journals(place).is_ok_and(|j| j.contains(&shard))
}

/// Whether any table folder of the output holds part files (final or
/// temporary) — e.g. from a docpipe without a journal.
pub fn has_part_files(place: &Place) -> bool {
    TABLES.iter().any(|t| {
        place
            .storage
            .names(&place.root.join(t))
            .is_ok_and(|names| names.iter().any(|n| parse_any_part(n).is_some()))
    })
}

/// Takes `shard`'s writer lock, an exclusive lock on a local file
/// (`_journal/lock` for a whole run, `_journal/shard-K-of-N.lock`; in the
/// staging folder for an output on object storage, where a journal entry
/// created put-if-absent keeps a second writer out instead).
pub fn lock(place: &Place, shard: Shard) -> Result<File, JournalError> {
    let dir = place.local.join(JOURNAL_DIR);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let name = if shard.is_all() {
        "lock".to_string()
    } else {
        format!("{}.lock", shard.name())
    };
    let path = dir.join(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    match FileExt::try_lock_exclusive(&file) {
        Ok(true) => Ok(file),
        Ok(false) => Err(JournalError::Locked(place.root.clone())),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            Err(JournalError::Locked(place.root.clone()))
        }
        Err(e) => Err(JournalError::Io { path, source: e }),
    }
}

/// Deletes what `shard` wrote (for `--overwrite`), holding its lock while
/// it does: for a whole run every table folder and every journal, for a
/// shard its own part files and journal only (the other shards' stay).
/// Other files are kept.
pub fn clear(place: &Place, shard: Shard) -> Result<(), JournalError> {
    let _lock = lock(place, shard)?;
    let storage = place.storage;
    if shard.is_all() {
        for t in TABLES {
            let d = place.root.join(t);
            storage.remove_folder(&d).map_err(io_err(&d))?;
        }
        for s in journals(place).map_err(io_err(&place.root))? {
            remove_journal(place, s)?;
        }
        return Ok(());
    }
    let mine = format!("part-{}-", shard.name());
    for t in TABLES {
        let d = place.root.join(t);
        for name in storage.names(&d).map_err(io_err(&d))? {
            if name.trim_start_matches('.').starts_with(&mine) {
                let f = d.join(&name);
                storage.remove(&f).map_err(io_err(&f))?;
            }
        }
    }
    remove_journal(place, shard)
}

fn remove_journal(place: &Place, shard: Shard) -> Result<(), JournalError> {
    let j = journal_path(&place.root, shard);
    if crate::storage::url::is_remote(&place.root) {
        place.storage.remove_folder(&j).map_err(io_err(&j))
    } else {
        place.storage.remove(&j).map_err(io_err(&j))
    }
}

/// Replays the journal at `path` into a [`State`] whose done-set files go
/// to `cache` (a local folder).
pub fn load(place: &Place, path: &Path, cache: PathBuf) -> Result<(State, ReadInfo), JournalError> {
    let storage = place.storage;
    let mut lost: HashSet<String> = HashSet::new();
    if let Some(f) = storage.read_log(path).map_err(io_err(path))? {
        read_records(f, Some("{\"type\":\"lost\""), |r| {
            if let Record::Lost { part, .. } = r {
                lost.insert(part);
            }
        })
        .map_err(io_err(path))?;
    }
    fs::create_dir_all(&cache).map_err(io_err(&cache))?;
    let mut state = State::new(cache);
    let mut failed: Option<io::Error> = None;
    let info = if let Some(f) = storage.read_log(path).map_err(io_err(path))? {
        read_records(f, None, |r| {
            if failed.is_none() {
                failed = state.apply(&r, &lost).err();
            }
        })
        .map_err(io_err(path))?
    } else {
        ReadInfo::default()
    };
    if let Some(e) = failed {
        return Err(io_err(path)(e));
    }
    state.compact().map_err(io_err(path))?;
    Ok((state, info))
}
