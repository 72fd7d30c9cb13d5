//! The ingest stage: read, identify and hash each listed file.

use super::items::{ms, now_us, DocBudget, DocJob, Msg};
use super::progress::Progress;
use super::Admission;
use crate::config::LimitsConfig;
use crate::ingest::{self, DocRef, Kind, SourceFile};
use async_channel::{Receiver, Sender};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What ingest needs from the pipeline.
#[derive(Clone, Debug)]
pub struct IngestSettings {
    /// File size limit (`limits.max_file_mb`) and the rest of `limits`.
    pub limits: LimitsConfig,
    /// Each document's time budget (`runtime.doc_timeout_s`).
    pub doc_timeout: Duration,
}

/// Reads, identifies and hashes each file, asks `admission` whether to go
/// on with it, and sends it to render (or its failed row to the assembler).
/// Reads no further file once `stopped()` (graceful drain). Returns (busy
/// time, files skipped by `admission`).
pub fn ingest(
    settings: &IngestSettings,
    progress: &Progress,
    files: Receiver<SourceFile>,
    docs: Sender<DocJob>,
    results: Sender<Msg>,
    admission: Option<&dyn Admission>,
    stopped: &dyn Fn() -> bool,
) -> (Duration, u64) {
    let mut busy = Duration::ZERO;
    let mut skipped = 0u64;
    while let Ok(file) = files.recv_blocking() {
        if stopped() {
            break;
        }
        let t = Instant::now();
        let started_at_us = now_us();
        let _span = tracing::debug_span!("ingest", uri = %file.uri).entered();
        let (doc, stat, data) = ingest::read(&file, &settings.limits);
        progress.counters.files_read.fetch_add(1, Ordering::Relaxed);
        let ingest_ms = ms(t.elapsed());
        busy += t.elapsed();
        if admission.is_some_and(|a| !a.admit(&doc, stat)) {
            tracing::debug!(uri = %doc.uri, "already done (same content), skipped");
            skipped += 1;
            let total = progress.counters.docs_total.load(Ordering::Relaxed);
            progress.set_total(total.saturating_sub(1));
            continue;
        }
        let fail = |class: &'static str, message: String, doc: DocRef| Msg::Failed {
            doc,
            class,
            message,
            started_at_us,
            ingest_ms,
        };
        let msg = match data {
            Err(e @ ingest::IngestError::TooLarge { .. }) => Some(fail("too_large", e.to_string(), doc)),
            Err(e) => Some(fail("io", e.to_string(), doc)),
            Ok(_) if doc.kind == Kind::Empty => Some(fail("empty", "the file is empty".into(), doc)),
            Ok(_) if doc.kind == Kind::Unknown => Some(fail(
                "not_a_document",
                "not a supported document (PDF, PNG, JPEG, TIFF, WebP or BMP), judged by its content".into(),
                doc,
            )),
            Ok(data) => {
                let job = DocJob {
                    doc,
                    data,
                    started_at_us,
                    ingest_ms,
                    budget: DocBudget::new(settings.doc_timeout),
                };
                if docs.send_blocking(job).is_err() {
                    break;
                }
                None
            }
        };
        if let Some(msg) = msg {
            if results.send_blocking(msg).is_err() {
                break;
            }
        }
    }
    (busy, skipped)
}
