//! Progress while a run goes: a bar with pages/s and ETA on a terminal, plain
//! log lines every few seconds otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counters shared by all stages.
#[derive(Default)]
pub struct Counters {
    pub files_listed: AtomicU64,
    pub files_read: AtomicU64,
    pub docs_done: AtomicU64,
    pub docs_failed: AtomicU64,
    pub pages_done: AtomicU64,
    pub docs_total: AtomicU64,
    /// Recognition model calls, and the crops they took.
    pub rec_batches: AtomicU64,
    pub rec_crops: AtomicU64,
}

pub struct Progress {
    pub counters: Arc<Counters>,
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Mutex<Instant>,
    every: Duration,
}

impl Progress {
    /// `quiet` turns off both the bar and the log lines.
    pub fn new(counters: Arc<Counters>, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} docs  {msg}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Self {
            counters,
            bar,
            started: Instant::now(),
            last_log: Mutex::new(Instant::now()),
            every: if quiet {
                Duration::MAX
            } else {
                Duration::from_secs(5)
            },
        }
    }

    pub fn set_total(&self, docs: u64) {
        self.counters.docs_total.store(docs, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_length(docs);
        }
    }

    /// Called after each document is written.
    pub fn tick(&self) {
        let c = &self.counters;
        let done = c.docs_done.load(Ordering::Relaxed);
        let pages = c.pages_done.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = pages as f64 / secs;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            bar.set_message(format!("{pages} pages  {rate:.2} pages/s"));
            return;
        }
        let Ok(mut last) = self.last_log.lock() else {
            return;
        };
        if last.elapsed() >= self.every {
            *last = Instant::now();
            let total = c.docs_total.load(Ordering::Relaxed);
            let eta = if done > 0 && total > done {
                let per_doc = secs / done as f64;
                format!("{:.0}s", per_doc * (total - done) as f64)
            } else {
                "-".to_string()
            };
            tracing::info!(
                docs_done = done,
                docs_total = total,
                pages = pages,
                pages_per_s = format!("{rate:.2}"),
                eta = eta,
                "progress"
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
