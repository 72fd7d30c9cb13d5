//! `docpipe status`: one view of an output's journals (one per shard),
//! read without taking any lock, so it can watch a run under way.

use super::files::{journal_path, journals};
use super::record::{read_records, Record};
use crate::shard::Shard;
use crate::storage::Place;
use serde::Serialize;
use std::collections::HashMap;
use std::io;

/// Progress of one shard (or of a whole run), from its journal.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ShardStatus {
    /// `K/N`, or `all` for a whole run.
    pub shard: String,
    /// Whether a journal was found (a shard of the same N without one has
    /// not started).
    pub started: bool,
    /// Documents whose latest state under the latest run's config is ok,
    /// failed or partial; their sum is `documents`.
    pub documents: u64,
    pub ok: u64,
    pub failed: u64,
    pub partial: u64,
    /// Pages of those documents.
    pub pages: u64,
    /// Pages per second of the latest run: its pages over the time from its
    /// start to its last commit.
    pub pages_per_s: Option<f64>,
    /// Files of the listing the shard owns, as its latest run counted them.
    pub inputs: Option<u64>,
    /// When the latest run started, its last commit, and its end; µs since
    /// the Unix epoch.
    pub run_started_us: Option<i64>,
    pub last_commit_us: Option<i64>,
    pub ended_us: Option<i64>,
    /// Seconds to finish at the latest run's rate, where it is known and
    /// the run is under way.
    pub eta_s: Option<f64>,
    /// `finished`, `running`, `stalled` (no commit for `stale_after`, no
    /// end record: the process may be gone), `stopped` (drained by a
    /// signal) or `not started`.
    pub state: String,
}

/// What [`status`] found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StatusReport {
    pub output: String,
    pub shards: Vec<ShardStatus>,
    pub total: ShardStatus,
    /// Shards named stalled or not started.
    pub attention: Vec<String>,
}

/// Reads every journal of the output at `place`. `now_us` is the time
/// compared against; a running shard with no commit (or start) for
/// `stale_after_s` seconds is `stalled`.
pub fn status(place: &Place, now_us: i64, stale_after_s: u64) -> io::Result<StatusReport> {
    let found = journals(place)?;
    let mut shards = Vec::new();
    for &s in &found {
        shards.push(shard_status(place, s, now_us, stale_after_s)?);
    }
    // Shards of a split that have no journal yet.
    let mut counts: Vec<u32> = found
        .iter()
        .filter(|s| !s.is_all())
        .map(|s| s.count)
        .collect();
    counts.sort_unstable();
    counts.dedup();
    for n in counts {
        for k in 0..n {
            let s = Shard { index: k, count: n };
            if !found.contains(&s) {
                shards.push(ShardStatus {
                    shard: s.to_string(),
                    state: "not started".into(),
                    ..ShardStatus::default()
                });
            }
        }
    }
    shards.sort_by_key(|s| {
        let mut it = s.shard.split('/');
        let k = it.next().and_then(|k| k.parse::<u32>().ok()).unwrap_or(0);
        let n = it.next().and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
        (n, k)
    });
    let mut total = ShardStatus {
        shard: "total".into(),
        started: shards.iter().any(|s| s.started),
        ..ShardStatus::default()
    };
    let mut inputs_known = true;
    for s in &shards {
        total.documents += s.documents;
        total.ok += s.ok;
        total.failed += s.failed;
        total.partial += s.partial;
        total.pages += s.pages;
        match s.inputs {
            Some(n) => total.inputs = Some(total.inputs.unwrap_or(0) + n),
            None => inputs_known = false,
        }
        total.pages_per_s = match (total.pages_per_s, s.pages_per_s) {
            (a, None) => a,
            (None, b) => b,
            (Some(a), Some(b)) => Some(a + b),
        };
        total.last_commit_us = total.last_commit_us.max(s.last_commit_us);
        total.eta_s = match (total.eta_s, s.eta_s) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    if !inputs_known {
        total.inputs = None;
    }
    let states: Vec<&str> = shards.iter().map(|s| s.state.as_str()).collect();
    total.state = if states.iter().all(|s| *s == "finished") {
        "finished".into()
    } else if states.contains(&"running") {
        "running".into()
    } else if states.contains(&"stalled") {
        "stalled".into()
    } else {
        "incomplete".into()
    };
    let attention = shards
        .iter()
        .filter(|s| s.state == "stalled" || s.state == "not started")
        .map(|s| format!("{} {}", s.shard, s.state))
        .collect();
    Ok(StatusReport {
        output: place.root.display().to_string(),
        shards,
        total,
        attention,
    })
}

/// A document's latest state under a config, as status counts it.
#[derive(Clone, Copy)]
struct Latest {
    status: u8,
    pages: u32,
}

fn shard_status(
    place: &Place,
    shard: Shard,
    now_us: i64,
    stale_after_s: u64,
) -> io::Result<ShardStatus> {
    let path = journal_path(&place.root, shard);
    let mut out = ShardStatus {
        shard: if shard.is_all() {
            "all".into()
        } else {
            shard.to_string()
        },
        started: true,
        ..ShardStatus::default()
    };
    let Some(log) = place.storage.read_log(&path)? else {
        out.state = "not started".into();
        out.started = false;
        return Ok(out);
    };
    // Replayed in order: the latest run's config decides which documents
    // count; each document's latest state under it.
    let mut per_config: HashMap<String, HashMap<String, Latest>> = HashMap::new();
    let mut config = String::new();
    let mut run_pages = 0u64;
    let mut run_docs = 0u64;
    let mut todo: Option<u64> = None;
    let mut ended_drained = false;
    let mut lost: Vec<String> = Vec::new();
    read_records(log, None, |r| match r {
        Record::Run {
            config: c,
            at_us,
            inputs,
            todo: t,
            ..
        } => {
            config = c;
            out.run_started_us = Some(at_us);
            out.last_commit_us = None;
            out.ended_us = None;
            out.inputs = inputs.or(out.inputs);
            todo = t;
            run_pages = 0;
            run_docs = 0;
            ended_drained = false;
        }
        Record::Part {
            at_us, docs, part, ..
        } => {
            if lost.contains(&part) {
                return;
            }
            out.last_commit_us = Some(at_us);
            for d in docs {
                run_pages += u64::from(d.pages);
                run_docs += 1;
                let status = match d.status.as_str() {
                    "ok" => 0,
                    "partial" => 1,
                    _ => 2,
                };
                per_config.entry(d.config).or_default().insert(
                    d.doc_id,
                    Latest {
                        status,
                        pages: d.pages,
                    },
                );
            }
        }
        Record::End { at_us, drained, .. } => {
            out.ended_us = Some(at_us);
            ended_drained = drained;
        }
        Record::Lost { part, .. } => lost.push(part),
    })?;
    if let Some(docs) = per_config.get(&config) {
        for l in docs.values() {
            out.documents += 1;
            out.pages += u64::from(l.pages);
            match l.status {
                0 => out.ok += 1,
                1 => out.partial += 1,
                _ => out.failed += 1,
            }
        }
    }
    if let (Some(start), Some(last)) = (out.run_started_us, out.last_commit_us) {
        let secs = (last - start) as f64 / 1e6;
        if secs > 0.0 {
            out.pages_per_s = Some(run_pages as f64 / secs);
            if let Some(t) = todo {
                let left = t.saturating_sub(run_docs);
                if out.ended_us.is_none() && left > 0 && run_docs > 0 {
                    out.eta_s = Some(left as f64 * secs / run_docs as f64);
                }
            }
        }
    }
    let last_sign = out.last_commit_us.or(out.run_started_us).unwrap_or(0);
    out.state = match out.ended_us {
        Some(_) if ended_drained => "stopped".into(),
        Some(_) => "finished".into(),
        None if now_us - last_sign > (stale_after_s as i64).saturating_mul(1_000_000) => {
            "stalled".into()
        }
        None => "running".into(),
    };
    Ok(out)
}

impl StatusReport {
    /// The report as a table for a terminal.
    pub fn render(&self) -> String {
        let time = |us: Option<i64>| us.map(format_utc).unwrap_or_else(|| "-".into());
        let mut s = format!("output: {}\n", self.output);
        s.push_str(&format!(
            "{:<8} {:>9} {:>7} {:>7} {:>9} {:>8} {:>9}  {:<20} {}\n",
            "shard",
            "documents",
            "failed",
            "partial",
            "pages",
            "pages/s",
            "of inputs",
            "last commit (UTC)",
            "state"
        ));
        for r in self.shards.iter().chain(std::iter::once(&self.total)) {
            let eta = r
                .eta_s
                .map(|e| format!(", ETA {}", format_secs(e)))
                .unwrap_or_default();
            s.push_str(&format!(
                "{:<8} {:>9} {:>7} {:>7} {:>9} {:>8} {:>9}  {:<20} {}{}\n",
                r.shard,
                r.documents,
                r.failed,
                r.partial,
                r.pages,
                r.pages_per_s.map_or("-".into(), |p| format!("{p:.2}")),
                r.inputs.map_or("-".into(), |n| n.to_string()),
                time(r.last_commit_us),
                r.state,
                eta
            ));
        }
        if !self.attention.is_empty() {
            s.push_str(&format!("attention: {}\n", self.attention.join("; ")));
        }
        s
    }
}

/// `YYYY-MM-DD HH:MM:SS` of µs since the epoch, UTC.
fn format_utc(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn format_secs(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(1_796_470_583_000_000), "2026-12-05 11:36:23");
        assert_eq!(format_secs(59.4), "59s");
        assert_eq!(format_secs(3723.0), "1h02m");
    }
}
