//! `docpipe status OUTPUT`: every shard's progress from its journal.

use crate::SetupError;
use docpipe::storage::{url, Place};
use std::path::{Path, PathBuf};

/// Prints the status of the output at `output` (a folder or an object
/// storage URL): a table, or JSON with `json`. A shard under way with no
/// commit for `stale_after_min` minutes is called stalled.
pub fn status(output: &Path, json: bool, stale_after_min: u64) -> anyhow::Result<u8> {
    let root: PathBuf = match url::parse(&output.to_string_lossy()) {
        Ok(url::Target::Object(u)) => u.to_path(),
        Ok(url::Target::Local(p)) => {
            if !p.is_dir() {
                return Err(SetupError(format!("{} is not an output folder", p.display())).into());
            }
            p
        }
        Err(why) => return Err(SetupError(why).into()),
    };
    let storage = docpipe::storage::for_path(&root)
        .map_err(|e| SetupError(format!("{}: {e}", root.display())))?;
    // Read only: no staging folder, no lock.
    let place = Place::reader(&root, storage);
    let now = docpipe::output::micros_since_epoch(std::time::SystemTime::now());
    let report = docpipe::journal::status(&place, now, stale_after_min.saturating_mul(60))?;
    if report.shards.is_empty() {
        return Err(SetupError(format!("{} has no run journal", root.display())).into());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(crate::exit::OK)
}
