//! Where a run's time went: busy and idle time per stage, how full the
//! queues between stages were, the batch sizes recognition reached, and the
//! stage that bounds the run. Printed in the summary and written as JSON by
//! `docpipe run --metrics FILE`.
//!
//! A stage's **utilisation** is its busy time over its threads' wall time
//! (`threads × elapsed`); the rest is idle: waiting for input or for room
//! downstream. The **bottleneck** is the stage with the highest
//! utilisation; the queue in front of it being full most of the time, and
//! the queue after it empty, confirm it.

use async_channel::{Receiver, WeakReceiver};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often queue lengths are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// One stage's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StageStats {
    pub name: &'static str,
    /// Threads running the stage's loop (render: one per worker).
    pub threads: usize,
    pub busy_s: f64,
    /// `threads × elapsed − busy`: time waiting for input or for room.
    pub idle_s: f64,
    /// `busy / (threads × elapsed)`, 0..1.
    pub utilisation: f64,
}

impl StageStats {
    pub fn new(name: &'static str, threads: usize, busy: Duration, elapsed: Duration) -> Self {
        let threads = threads.max(1);
        let capacity = elapsed.as_secs_f64() * threads as f64;
        let busy_s = busy.as_secs_f64();
        StageStats {
            name,
            threads,
            busy_s,
            idle_s: (capacity - busy_s).max(0.0),
            utilisation: if capacity > 0.0 {
                (busy_s / capacity).min(1.0)
            } else {
                0.0
            },
        }
    }
}

/// One queue's figures over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueueStats {
    pub name: &'static str,
    /// The stage that fills it and the one that empties it.
    pub from: &'static str,
    pub to: &'static str,
    pub capacity: usize,
    pub samples: u64,
    pub mean_len: f64,
    pub max_len: usize,
    /// Share of samples at capacity (the consumer is behind).
    pub full_share: f64,
    /// Share of samples empty (the consumer waits).
    pub empty_share: f64,
}

/// Recognition batches formed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BatchStats {
    /// `ocr.batch_size`: the most crops one model call takes.
    pub limit: usize,
    pub batches: u64,
    pub crops: u64,
    pub max: usize,
}

impl BatchStats {
    pub fn mean(&self) -> f64 {
        self.crops as f64 / (self.batches.max(1)) as f64
    }
}

/// Everything `--metrics` writes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunMetrics {
    pub elapsed_s: f64,
    pub documents: u64,
    pub pages: u64,
    pub pages_per_s: f64,
    pub stages: Vec<StageStats>,
    pub queues: Vec<QueueStats>,
    pub recognition_batches: BatchStats,
    /// Name of the stage that bounds the run; empty when nothing was busy.
    pub bottleneck: String,
    /// One line saying why.
    pub bottleneck_reason: String,
}

impl RunMetrics {
    /// Picks the bottleneck: the busiest stage by utilisation.
    pub fn decide(&mut self) {
        let Some(top) = self
            .stages
            .iter()
            .filter(|s| s.busy_s > 0.0)
            .max_by(|a, b| a.utilisation.total_cmp(&b.utilisation))
        else {
            self.bottleneck.clear();
            self.bottleneck_reason = "no stage was busy".into();
            return;
        };
        let mut why = format!(
            "{} busy {:.0}% of the run on {} thread(s)",
            top.name,
            top.utilisation * 100.0,
            top.threads
        );
        if let Some(q) = self.queues.iter().find(|q| q.to == top.name) {
            why.push_str(&format!(
                "; its input queue `{}` full {:.0}% of the time",
                q.name,
                q.full_share * 100.0
            ));
        }
        if let Some(q) = self.queues.iter().find(|q| q.from == top.name) {
            why.push_str(&format!(
                ", its output queue `{}` empty {:.0}%",
                q.name,
                q.empty_share * 100.0
            ));
        }
        self.bottleneck = top.name.to_string();
        self.bottleneck_reason = why;
    }
}

type LenFn = Box<dyn Fn() -> Option<usize> + Send + Sync>;

/// A queue to sample. Holds the channel weakly, so sampling never keeps a
/// channel open (a stage that stops early still closes its input).
pub struct Probe {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    capacity: usize,
    len: LenFn,
}

impl Probe {
    pub fn new<T: Send + 'static>(
        name: &'static str,
        from: &'static str,
        to: &'static str,
        rx: &Receiver<T>,
    ) -> Self {
        let weak: WeakReceiver<T> = rx.downgrade();
        Probe {
            name,
            from,
            to,
            capacity: rx.capacity().unwrap_or(0),
            len: Box::new(move || weak.upgrade().map(|r| r.len())),
        }
    }
}

#[derive(Default)]
struct Acc {
    samples: u64,
    sum: u64,
    max: usize,
    full: u64,
    empty: u64,
}

/// Samples `probes` every [`SAMPLE_EVERY`] until `done` is set; a closed
/// queue stops being sampled.
pub async fn sample(probes: Vec<Probe>, done: Arc<AtomicBool>) -> Vec<QueueStats> {
    let mut acc: Vec<Acc> = probes.iter().map(|_| Acc::default()).collect();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !done.load(Ordering::Relaxed) {
        tick.tick().await;
        for (p, a) in probes.iter().zip(acc.iter_mut()) {
            if let Some(n) = (p.len)() {
                a.samples += 1;
                a.sum += n as u64;
                a.max = a.max.max(n);
                a.full += u64::from(p.capacity > 0 && n >= p.capacity);
                a.empty += u64::from(n == 0);
            }
        }
    }
    probes
        .iter()
        .zip(acc)
        .map(|(p, a)| {
            let n = a.samples.max(1) as f64;
            QueueStats {
                name: p.name,
                from: p.from,
                to: p.to,
                capacity: p.capacity,
                samples: a.samples,
                mean_len: a.sum as f64 / n,
                max_len: a.max,
                full_share: a.full as f64 / n,
                empty_share: a.empty as f64 / n,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilisation_and_idle_come_from_threads_and_wall_time() {
        let s = StageStats::new("render", 2, Duration::from_secs(3), Duration::from_secs(2));
        assert_eq!(s.threads, 2);
        assert!((s.utilisation - 0.75).abs() < 1e-9);
        assert!((s.idle_s - 1.0).abs() < 1e-9);
        let zero = StageStats::new("x", 1, Duration::ZERO, Duration::ZERO);
        assert_eq!(zero.utilisation, 0.0);
    }

    #[test]
    fn the_busiest_stage_is_the_bottleneck_and_its_queues_say_why() {
        let e = Duration::from_secs(10);
        let mut m = RunMetrics {
            stages: vec![
                StageStats::new("render", 2, Duration::from_secs(4), e),
                StageStats::new("detect", 1, Duration::from_secs(9), e),
                StageStats::new("recognise", 1, Duration::from_secs(5), e),
            ],
            queues: vec![
                QueueStats {
                    name: "pages",
                    from: "render",
                    to: "detect",
                    capacity: 4,
                    full_share: 0.8,
                    ..QueueStats::default()
                },
                QueueStats {
                    name: "crops",
                    from: "detect",
                    to: "recognise",
                    capacity: 4,
                    empty_share: 0.6,
                    ..QueueStats::default()
                },
            ],
            ..RunMetrics::default()
        };
        m.decide();
        assert_eq!(m.bottleneck, "detect");
        assert_eq!(
            m.bottleneck_reason,
            "detect busy 90% of the run on 1 thread(s); its input queue `pages` full 80% of the time, its output queue `crops` empty 60%"
        );
        let mut idle = RunMetrics::default();
        idle.decide();
        assert_eq!(idle.bottleneck, "");
    }

    #[tokio::test]
    async fn sampling_sees_a_full_queue_and_does_not_keep_it_open() {
        let (tx, rx) = async_channel::bounded::<u32>(2);
        tx.try_send(1).unwrap_or_default();
        tx.try_send(2).unwrap_or_default();
        let done = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(sample(vec![Probe::new("q", "a", "b", &rx)], done.clone()));
        tokio::time::sleep(SAMPLE_EVERY * 4).await;
        // The probe holds the channel weakly: dropping the only receiver
        // closes it for the sender while the sampler still runs.
        drop(rx);
        assert!(tx.is_closed());
        done.store(true, Ordering::Relaxed);
        let stats = task.await.unwrap_or_default();
        assert_eq!(stats.len(), 1);
        assert!(stats[0].samples >= 2, "{stats:?}");
        assert_eq!(stats[0].max_len, 2);
        assert_eq!(stats[0].full_share, 1.0);
    }
}
