//! The last stage: field extraction on finished documents (batched across
//! documents), then the sink. Counting for the summary happens here, on what
//! is actually written. The layout extractor runs here; a VLM reads its
//! pages in its own stage ([`super::vlm`]) and its records are in the
//! documents by the time they get here.

pub use super::items::FinishedDoc;
use super::items::PageFailure;
use super::progress::Progress;
use super::{DocSink, RunSummary};
use crate::config::{OnInvalid, RecordPolicy};
use crate::extract::adapters::{self, LayoutFields};
use crate::extract::{Extracted, FieldSchema};
use crate::output::{DocRows, DocStatus, DocumentRow, PageSource};
use async_channel::Receiver;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fills in the extracted fields of documents (and their status, when an
/// invalid record fails its document). Implementations batch across the
/// documents they are given.
pub trait DocExtractor: Send {
    /// How many pages to gather before calling [`DocExtractor::extract`].
    fn batch_pages(&self) -> usize {
        1
    }
    fn extract(&mut self, docs: &mut [FinishedDoc]);
    /// One line for the end-of-run summary (e.g. a model's tokens/s).
    fn report(&self) -> Option<String> {
        None
    }
}

/// Attaches a validated record to its document, marks the fields a person
/// should check, and fails the document when the pipeline says an invalid
/// record should.
pub fn attach(doc: &mut DocumentRow, mut extracted: Extracted, policy: RecordPolicy) {
    if let Some(below) = policy.review_below {
        extracted.mark_review(below);
    }
    if !extracted.valid() && policy.on_invalid == OnInvalid::Fail && doc.status != DocStatus::Failed
    {
        doc.status = DocStatus::Failed;
        doc.error_class = Some("invalid_record".into());
        doc.error_message = Some(adapters::invalid_message(&extracted));
    }
    doc.extracted = Some(extracted);
}

/// Finds fields from lines and their positions ([`LayoutFields`]).
pub struct LayoutExtractor {
    fields: LayoutFields,
    policy: RecordPolicy,
}

impl LayoutExtractor {
    pub fn new(schema: Arc<FieldSchema>, policy: RecordPolicy) -> Self {
        Self {
            fields: LayoutFields::new(schema),
            policy,
        }
    }
}

impl DocExtractor for LayoutExtractor {
    fn extract(&mut self, docs: &mut [FinishedDoc]) {
        for d in docs {
            if d.doc.status == DocStatus::Failed {
                continue;
            }
            // A bug a document trips in the layout engine costs that
            // document its record, not the run.
            let fields = &self.fields;
            let lines = d.page_lines();
            match std::panic::catch_unwind(AssertUnwindSafe(|| fields.extract(&lines))) {
                Ok(extracted) => attach(&mut d.doc, extracted, self.policy),
                Err(panic) => {
                    let f = PageFailure::panic("field extraction", panic.as_ref());
                    d.doc.status = DocStatus::Partial;
                    d.doc.error_class = f.class.map(str::to_string);
                    d.doc.error_message = Some(f.message);
                }
            }
        }
    }
}

/// Test-only pacing switch: milliseconds to wait before writing each
/// document. The resume tests set it so that a SIGKILL reliably lands in the
/// middle of a run however fast the machine is; it is never set in normal use.
pub const SINK_DELAY_ENV: &str = "DOCPIPE_TEST_SINK_DELAY_MS";

fn sink_delay() -> Option<Duration> {
    let ms: u64 = std::env::var(SINK_DELAY_ENV).ok()?.trim().parse().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms.min(10_000)))
}

/// Writes documents as they come, extracting fields first when asked.
/// Returns the summary, the sink, time busy in extraction and time busy
/// writing.
pub fn write<S: DocSink>(
    progress: &Progress,
    docs: Receiver<FinishedDoc>,
    mut sink: S,
    mut extractor: Option<Box<dyn DocExtractor>>,
) -> anyhow::Result<(RunSummary, S, Duration, Duration)> {
    let mut summary = RunSummary::default();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut busy = Duration::ZERO;
    let mut writing = Duration::ZERO;
    let delay = sink_delay();
    while let Ok(first) = docs.recv_blocking() {
        let mut group = vec![first];
        if let Some(x) = extractor.as_ref() {
            let want = x.batch_pages().max(1);
            let mut pages: usize = group[0].pages.len();
            while pages < want {
                match docs.try_recv() {
                    Ok(d) => {
                        pages += d.pages.len();
                        group.push(d);
                    }
                    Err(_) => break,
                }
            }
        }
        if let Some(x) = extractor.as_mut() {
            let t = Instant::now();
            x.extract(&mut group);
            busy += t.elapsed();
        }
        for d in group {
            if let Some(delay) = delay {
                std::thread::sleep(delay);
            }
            account(progress, &mut summary, &mut failures, &d);
            let t = Instant::now();
            sink.write(DocRows {
                doc: d.doc,
                pages: d.pages,
                lines: d.lines,
                regions: d.regions,
                captions: d.captions,
                stage_failures: d.stage_failures,
            })?;
            writing += t.elapsed();
            progress.counters.docs_done.fetch_add(1, Ordering::Relaxed);
            progress.tick();
        }
    }
    summary.failures = failures.into_iter().collect();
    summary.extract_report = extractor.as_ref().and_then(|x| x.report());
    Ok((summary, sink, busy, writing))
}

fn account(
    progress: &Progress,
    summary: &mut RunSummary,
    failures: &mut BTreeMap<String, u64>,
    d: &FinishedDoc,
) {
    summary.docs += 1;
    match d.doc.status {
        DocStatus::Ok => summary.docs_ok += 1,
        DocStatus::Partial => summary.docs_partial += 1,
        DocStatus::Failed => {
            summary.docs_failed += 1;
            progress
                .counters
                .docs_failed
                .fetch_add(1, Ordering::Relaxed);
            *failures
                .entry(d.doc.error_class.clone().unwrap_or_default())
                .or_default() += 1;
            tracing::warn!(
                uri = %d.doc.uri,
                class = ?d.doc.error_class,
                message = ?d.doc.error_message,
                "document failed"
            );
        }
    }
    if let Some(x) = &d.doc.extracted {
        summary.records += 1;
        if !x.valid() {
            summary.records_invalid += 1;
        }
        if x.review.is_some() {
            let (fields, records) = summary.review.get_or_insert((0, 0));
            let n = x.review_count() as u64;
            *fields += n;
            *records += u64::from(n > 0);
        }
    }
    for p in &d.pages {
        summary.pages += 1;
        match p.source {
            PageSource::TextLayer => summary.pages_text_layer += 1,
            PageSource::Ocr => summary.pages_ocr += 1,
            PageSource::Empty => summary.pages_empty += 1,
        }
    }
    summary.lines += d.lines.len() as u64;
    summary.regions += d.regions.len() as u64;
    summary.captions += d.captions.len() as u64;
    progress
        .counters
        .pages_done
        .fetch_add(d.pages.len() as u64, Ordering::Relaxed);
}
