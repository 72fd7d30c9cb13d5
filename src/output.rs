//! Parquet sink for docpipe's tables: `documents/`, `pages/`, `lines/`,
//! `regions/`, `captions/`, and the dead-letter table `failures/`.
//!
//! Rows are plain owned structs ([`DocumentRow`], [`PageRow`], [`LineRow`],
//! [`FailureRow`]);
//! [`OutputWriter`] buffers them into Arrow `RecordBatch`es and writes zstd
//! Parquet part files that are renamed into place only when complete. The
//! Arrow schemas are public ([`schemas`], [`schema_markdown`]) so that others
//! can document and query them.
//!
//! Errors here stop the run: they are I/O on the output or an encoder failure,
//! never a property of one document.

mod failures;
mod field_types;
mod fields;
mod rows;
mod schema;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use failures::{
    failures_markdown, failures_schema, truncate_message, FailureRow, MAX_MESSAGE_BYTES,
};
pub use field_types::{arrow_type, field_columns_schema};
pub use rows::{
    micros_since_epoch, CaptionRow, DocStatus, DocumentRow, LineRow, PageRow, PageSource, RegionRow,
};
pub use schema::{
    captions_schema, documents_schema_for, fields_markdown, regions_schema, schema_markdown,
    schemas, type_name, UTC,
};
pub use writer::{
    parse_any_part, part_stem, CommitHook, CommittedDoc, CommittedPart, OutputWriter, PartFiles,
    SealedPart, TableFile, WriteSummary, WriterOptions, TABLES,
};

/// One document's rows in every table, written together (in one part).
#[derive(Clone, Debug, PartialEq)]
pub struct DocRows {
    pub doc: DocumentRow,
    pub pages: Vec<PageRow>,
    pub lines: Vec<LineRow>,
    /// Empty without a `layout` section or a VLM `od` task.
    pub regions: Vec<RegionRow>,
    /// Empty without a VLM caption task.
    pub captions: Vec<CaptionRow>,
    /// Pages whose text was read but a later stage failed on: each a
    /// `failures` row of its own.
    pub stage_failures: Vec<StageFailure>,
}

/// A page that a stage after its text (layout, the VLM) failed on.
#[derive(Clone, Debug, PartialEq)]
pub struct StageFailure {
    pub page_index: i32,
    /// `layout` or `extract`.
    pub stage: &'static str,
    /// The document's class for it, e.g. `layout_failed`, `timeout`.
    pub class: &'static str,
    pub message: String,
}

/// Where a document's rows go. The real sink writes Parquet; tests may stall.
pub trait DocSink: Send {
    fn write(&mut self, rows: DocRows) -> anyhow::Result<()>;
}

impl DocSink for crate::output::OutputWriter {
    fn write(&mut self, rows: DocRows) -> anyhow::Result<()> {
        self.write_rows(rows, Vec::new())?;
        Ok(())
    }
}

/// Failure of the Parquet sink.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Creating, writing, syncing or renaming a file or folder failed.
    #[error("output I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Parquet encoder failed (also: invalid writer options).
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building an Arrow batch failed (e.g. a batch too large for 32-bit offsets).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
