//! The run's sink: the Parquet writer with the journal as its commit hook,
//! failure rows for the dead-letter table, and a ticker that commits the open
//! part when it gets old even while no document arrives.

use super::Journal;
use crate::output::DocSink;
use crate::output::{
    micros_since_epoch, truncate_message, DocRows, DocStatus, DocumentRow, FailureRow, OutputError,
    OutputWriter, PageRow, StageFailure, WriteSummary, MAX_MESSAGE_BYTES,
};
use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How often the ticker asks the writer whether the open part is due. One
/// second: small against any sensible `commit_every_secs`.
const TICK: Duration = Duration::from_secs(1);

/// The stage a document-level error class comes from.
pub fn stage_of(error_class: &str, pages: &[PageRow]) -> &'static str {
    match error_class {
        "empty" | "not_a_document" | "io" | "too_large" => "ingest",
        "corrupt" | "encrypted" | "too_many_pages" | "too_many_pixels" | "unsupported"
        | "render" | "timeout" | "crashed" | "out_of_memory" => "render",
        "internal" => "internal",
        "page_errors" | "some_pages_failed" => {
            if pages
                .iter()
                .filter_map(|p| p.error.as_deref())
                .any(|e| e.starts_with("OCR failed"))
            {
                "ocr"
            } else {
                "render"
            }
        }
        c if c.contains("extract") || c.contains("schema") || c.contains("invalid") => "extract",
        _ => "other",
    }
}

fn page_stage(error: &str) -> &'static str {
    if error.starts_with("OCR failed") {
        "ocr"
    } else {
        "render"
    }
}

/// The `failures/` rows of one document: one about the whole document when
/// it `failed` (page_index null), one per page that has an error, and one
/// per page a later stage (layout, the VLM) failed on.
pub fn failure_rows(
    doc: &DocumentRow,
    pages: &[PageRow],
    later: &[StageFailure],
    attempt: u32,
    input: &str,
    run_id: &str,
    failed_at: i64,
) -> Vec<FailureRow> {
    let base = |page_index: Option<i32>, stage: &str, class: &str, message: &str| FailureRow {
        doc_id: doc.doc_id.clone(),
        uri: doc.uri.clone(),
        sha256: doc.sha256.clone(),
        page_index,
        stage: stage.to_string(),
        error_class: class.to_string(),
        message: truncate_message(message, MAX_MESSAGE_BYTES),
        attempt: i32::try_from(attempt).unwrap_or(i32::MAX),
        input: input.to_string(),
        config_hash: doc.config_hash.clone(),
        run_id: run_id.to_string(),
        failed_at,
    };
    let mut rows = Vec::new();
    if doc.status == DocStatus::Failed {
        let class = doc.error_class.as_deref().unwrap_or("unknown");
        rows.push(base(
            None,
            stage_of(class, pages),
            class,
            doc.error_message.as_deref().unwrap_or(""),
        ));
    }
    for p in pages {
        if let Some(e) = &p.error {
            rows.push(base(Some(p.page_index), page_stage(e), "page_error", e));
        }
    }
    for f in later {
        rows.push(base(Some(f.page_index), f.stage, f.class, &f.message));
    }
    rows
}

struct Shared {
    writer: Mutex<Option<OutputWriter>>,
    /// The first error the ticker met, reported by the next write.
    ticker_error: Mutex<Option<String>>,
}

impl Shared {
    fn writer(&self) -> MutexGuard<'_, Option<OutputWriter>> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The run's [`DocSink`]: writes each document's rows and failure rows with
/// the journal as the writer's commit hook.
pub struct JournaledSink {
    shared: Arc<Shared>,
    journal: Arc<Journal>,
    run_id: String,
    /// Dropping it stops the ticker.
    tick_stop: Option<mpsc::Sender<()>>,
    ticker: Option<JoinHandle<()>>,
}

impl JournaledSink {
    /// Wraps `writer` (installing the journal's commit hook) and starts the
    /// ticker thread that commits an open part once it is older than the
    /// writer's `commit_every_secs`.
    pub fn new(mut writer: OutputWriter, journal: Arc<Journal>, run_id: &str) -> Self {
        writer.set_commit_hook(journal.hook());
        let shared = Arc::new(Shared {
            writer: Mutex::new(Some(writer)),
            ticker_error: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel::<()>();
        let s = shared.clone();
        let ticker = std::thread::Builder::new()
            .name("docpipe-commit".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(TICK) {
                    let mut guard = s.writer();
                    let Some(w) = guard.as_mut() else { break };
                    if let Err(e) = w.commit_if_due() {
                        tracing::error!(error = %e, "committing an output part failed");
                        let mut slot = s.ticker_error.lock().unwrap_or_else(|e| e.into_inner());
                        slot.get_or_insert_with(|| e.to_string());
                        break;
                    }
                }
            })
            .ok();
        Self {
            shared,
            journal,
            run_id: run_id.to_string(),
            tick_stop: Some(tx),
            ticker,
        }
    }

    fn stop_ticker(&mut self) {
        self.tick_stop.take();
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }

    /// Stops the ticker and closes the writer, committing the open part.
    /// The summary's `committed` holds only the parts committed since the
    /// last document was written (the journal has them all).
    pub fn close(mut self) -> Result<WriteSummary, OutputError> {
        self.stop_ticker();
        let writer = self.shared.writer().take();
        match writer {
            Some(w) => w.close(),
            None => Err(OutputError::Io {
                path: self.journal.path().to_path_buf(),
                source: io::Error::other("output writer already closed"),
            }),
        }
    }
}

impl Drop for JournaledSink {
    fn drop(&mut self) {
        self.stop_ticker();
    }
}

impl DocSink for JournaledSink {
    fn write(&mut self, rows: DocRows) -> anyhow::Result<()> {
        let doc = &rows.doc;
        if let Some(e) = self
            .shared
            .ticker_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            anyhow::bail!("output: {e}");
        }
        let attempt = self.journal.attempt_of(&doc.uri);
        let input = self.journal.path_of(&doc.uri).map_or_else(
            || {
                doc.uri
                    .strip_prefix("file://")
                    .unwrap_or(&doc.uri)
                    .to_string()
            },
            |p| p.display().to_string(),
        );
        let failures = failure_rows(
            doc,
            &rows.pages,
            &rows.stage_failures,
            attempt,
            &input,
            &self.run_id,
            micros_since_epoch(SystemTime::now()),
        );
        let mut guard = self.shared.writer();
        let Some(w) = guard.as_mut() else {
            anyhow::bail!("output writer already closed");
        };
        w.write_rows(rows, failures)?;
        // The journal records each commit through its hook; the writer's own
        // list of committed parts (every document id) would grow with the run.
        drop(w.take_committed());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(status: DocStatus, class: Option<&str>) -> DocumentRow {
        DocumentRow {
            doc_id: "d".into(),
            uri: "file:///in/a.pdf".into(),
            sha256: "ab".into(),
            bytes: 1,
            mime: "application/pdf".into(),
            pages: Some(2),
            status,
            error_class: class.map(str::to_string),
            error_message: class.map(|c| format!("{c} happened")),
            pipeline: "t".into(),
            config_hash: "cfg".into(),
            model_ids: vec![],
            started_at: 0,
            pages_text_layer: 0,
            pages_ocr: 0,
            time_ingest_ms: 0.0,
            time_render_ms: 0.0,
            time_normalise_ms: 0.0,
            time_ocr_ms: 0.0,
            time_total_ms: 0.0,
            extracted: None,
        }
    }

    fn page(index: i32, error: Option<&str>) -> PageRow {
        PageRow {
            doc_id: "d".into(),
            page_index: index,
            width_px: 1,
            height_px: 1,
            dpi: None,
            width_pt: None,
            height_pt: None,
            source: crate::output::PageSource::Empty,
            rotation: 0,
            skew_deg: 0.0,
            text: String::new(),
            mean_confidence: None,
            line_count: 0,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn one_row_per_failed_document_and_page() {
        struct Case {
            doc: DocumentRow,
            pages: Vec<PageRow>,
            /// (page_index, stage, error_class)
            want: Vec<(Option<i32>, &'static str, &'static str)>,
        }
        let cases = [
            Case {
                doc: doc(DocStatus::Ok, None),
                pages: vec![page(0, None)],
                want: vec![],
            },
            Case {
                doc: doc(DocStatus::Failed, Some("not_a_document")),
                pages: vec![],
                want: vec![(None, "ingest", "not_a_document")],
            },
            Case {
                doc: doc(DocStatus::Failed, Some("encrypted")),
                pages: vec![],
                want: vec![(None, "render", "encrypted")],
            },
            Case {
                doc: doc(DocStatus::Partial, Some("some_pages_failed")),
                pages: vec![page(0, None), page(1, Some("OCR failed: boom"))],
                want: vec![(Some(1), "ocr", "page_error")],
            },
            Case {
                doc: doc(DocStatus::Failed, Some("page_errors")),
                pages: vec![page(0, Some("render: x")), page(1, Some("render: y"))],
                want: vec![
                    (None, "render", "page_errors"),
                    (Some(0), "render", "page_error"),
                    (Some(1), "render", "page_error"),
                ],
            },
            Case {
                doc: doc(DocStatus::Failed, Some("something_new")),
                pages: vec![],
                want: vec![(None, "other", "something_new")],
            },
        ];
        for c in cases {
            let rows = failure_rows(&c.doc, &c.pages, &[], 3, "/in/a.pdf", "run1", 42);
            let got: Vec<(Option<i32>, &str, &str)> = rows
                .iter()
                .map(|r| (r.page_index, r.stage.as_str(), r.error_class.as_str()))
                .collect();
            assert_eq!(got, c.want, "{:?}", c.doc.error_class);
            for r in &rows {
                assert_eq!((r.attempt, r.failed_at), (3, 42));
                assert_eq!((r.input.as_str(), r.run_id.as_str()), ("/in/a.pdf", "run1"));
                assert!(!r.message.is_empty());
            }
        }
    }
}
