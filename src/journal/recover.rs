//! Bringing an output in line with its journal at start-up: part files of
//! committed parts finished, part files no entry lists removed, committed
//! parts found incomplete marked lost.

use super::files::{journal_path, journals, load};
use super::record::Record;
use super::{append, io_err, now_us, Journal, JournalError};
use crate::output::{parse_any_part, TABLES};
use crate::shard::Shard;
use crate::storage::Place;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// What [`Journal::recover`] did at start-up.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// Part files renamed into place (committed, not yet renamed at the crash).
    pub renamed: usize,
    /// Temporary part files of uncommitted parts deleted.
    pub deleted_tmp: usize,
    /// Final part files that no record lists, deleted.
    pub deleted_unlisted: usize,
    /// Part files of runs no journal of this output knows (another tool,
    /// or a docpipe without a journal), left alone.
    pub foreign: usize,
    /// Committed parts found incomplete; their documents will be redone.
    pub lost_parts: Vec<String>,
    /// Lines of the journal that did not parse and were skipped (their
    /// parts count as not committed), plus a torn last line that was cut.
    pub bad_lines: usize,
    pub torn_tail: bool,
}

/// Whose a part file is, told by its writer prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// A run this journal knows.
    Ours,
    /// A run of another journal of this output (another shard, or the
    /// whole-run journal beside shards): not ours to touch.
    Sibling,
    /// Nobody's that we know of.
    Foreign,
}

impl Journal {
    /// Brings the output in line with the journal (see the module docs of
    /// [`crate::journal`]). A committed part missing one of its files is
    /// *lost*: its other files are deleted, a `lost` record is appended,
    /// and its documents are no longer done.
    pub fn recover(&self) -> Result<RecoveryReport, JournalError> {
        let place = &self.place;
        let storage = place.storage;
        let siblings: Vec<Shard> = journals(place)
            .map_err(io_err(&place.root))?
            .into_iter()
            .filter(|s| *s != self.shard)
            .collect();
        let mut inner = self.lock_inner();
        let owner = |prefix: &str| {
            if inner.state.knows_run(prefix) {
                return Owner::Ours;
            }
            let of = Shard::of_part_prefix(prefix).unwrap_or(Shard::ALL);
            if of != self.shard && siblings.contains(&of) {
                Owner::Sibling
            } else {
                Owner::Foreign
            }
        };
        let mut report = RecoveryReport {
            bad_lines: self.opened.bad_lines.len(),
            torn_tail: self.opened.good_len < self.opened.file_len,
            ..RecoveryReport::default()
        };
        // The final part files present, per table, for the lost-part check.
        let mut present: HashMap<&str, HashSet<String>> = HashMap::new();
        for table in TABLES {
            let dir = place.root.join(table);
            let mut names = storage.names(&dir).map_err(io_err(&dir))?;
            // Temporary files live in the local folder (the same one for a
            // local output; the staging folder, emptied at open, otherwise).
            if place.is_staged() {
                names.retain(|n| !n.starts_with('.'));
            }
            let mut changed = false;
            let mut finals = HashSet::new();
            for name in names {
                let Some((stem, prefix, tmp)) = parse_any_part(&name) else {
                    continue;
                };
                let path = dir.join(&name);
                match owner(&prefix) {
                    Owner::Sibling => continue,
                    Owner::Foreign => {
                        tracing::warn!(file = %path.display(), "a part file of a run no journal of this output knows; left alone (readers will see its rows)");
                        report.foreign += 1;
                        continue;
                    }
                    Owner::Ours => {}
                }
                match (tmp, inner.state.committed(&stem, table)) {
                    (true, true) => {
                        let to = dir.join(format!("{stem}.parquet"));
                        storage.put_file(&path, &to).map_err(io_err(&to))?;
                        report.renamed += 1;
                        finals.insert(stem);
                    }
                    (true, false) => {
                        storage.remove(&path).map_err(io_err(&path))?;
                        report.deleted_tmp += 1;
                    }
                    (false, false) => {
                        tracing::warn!(file = %path.display(), "deleted a part file that the journal does not list");
                        storage.remove(&path).map_err(io_err(&path))?;
                        report.deleted_unlisted += 1;
                    }
                    (false, true) => {
                        finals.insert(stem);
                        continue;
                    }
                }
                changed = true;
            }
            if changed {
                storage.sync_folder(&dir).map_err(io_err(&dir))?;
            }
            present.insert(table, finals);
        }
        let mut lost = Vec::new();
        for (stem, tables) in inner.state.parts() {
            let missing: Vec<String> = tables
                .iter()
                .filter(|t| !present.get(t.as_str()).is_some_and(|p| p.contains(&stem)))
                .cloned()
                .collect();
            if !missing.is_empty() {
                lost.push((stem, tables, missing));
            }
        }
        lost.sort();
        for (stem, tables, missing) in &lost {
            tracing::warn!(part = %stem, missing = ?missing, "a committed part is incomplete; its documents will be processed again");
            for t in tables {
                let f = place.root.join(t).join(format!("{stem}.parquet"));
                storage.remove(&f).map_err(io_err(&f))?;
            }
            append(
                &mut inner.file,
                &self.path,
                &Record::Lost {
                    part: stem.clone(),
                    reason: format!("missing {}", missing.join(", ")),
                    at_us: now_us(),
                },
            )?;
            report.lost_parts.push(stem.clone());
        }
        if !lost.is_empty() {
            let cache = self.cache_dir();
            inner.state = load(place, &journal_path(&place.root, self.shard), cache)?.0;
        }
        Ok(report)
    }

    /// The local folder of the done-set's files.
    pub(super) fn cache_dir(&self) -> PathBuf {
        cache_dir(&self.place)
    }
}

/// The local folder of a journal's done-set files: `_journal/` of the
/// output, or of its staging folder.
pub(super) fn cache_dir(place: &Place) -> PathBuf {
    place.local.join(super::JOURNAL_DIR)
}
