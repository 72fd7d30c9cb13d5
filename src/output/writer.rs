//! `OutputWriter`: the Parquet sink for the output tables, with part files
//! that are written under a temporary name in a local folder and put in
//! place when complete (renamed into place locally, uploaded whole to
//! object storage). Recovery of what a crash leaves is the journal's
//! ([`crate::journal::Journal::recover`]).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::failures::{failures_batch, failures_schema, FailureRow};
use super::rows::{CaptionRow, DocStatus, DocumentRow, LineRow, PageRow, RegionRow, RowSize};
use super::schema::{
    captions_batch, captions_schema, documents_batch, documents_schema_for, lines_batch,
    pages_batch, regions_batch, regions_schema, schemas,
};
use super::DocRows;
use super::OutputError;
use crate::extract::FieldSchema;
use crate::storage::{CommitOrder, Place, Storage};

/// Rows of one table to a `RecordBatch` of its schema.
type ToBatch<R> = Box<dyn Fn(&[R]) -> Result<RecordBatch, ArrowError> + Send + Sync>;

/// The table folders a part can have files in, in commit order. `failures`,
/// `regions` and `captions` get a file only in parts that hold at least one
/// of their rows.
pub const TABLES: [&str; 6] = [
    "documents",
    "pages",
    "lines",
    "failures",
    "regions",
    "captions",
];

const MIB: usize = 1024 * 1024;

/// Tuning of [`OutputWriter`]. `Default` gives the values documented per field.
#[derive(Clone, Debug, PartialEq)]
pub struct WriterOptions {
    /// Roll over to a new part (all three tables together, at a document
    /// boundary) once any one table's file reaches this many bytes (estimated:
    /// bytes written + the encoder's in-progress estimate + rows still
    /// buffered). A file can exceed it by at most one document's rows.
    /// Default 512 MiB: few enough files for a million-page archive, small
    /// enough to move and to split work across readers.
    pub max_part_bytes: u64,
    /// Close the row group once the encoder's `in_progress_size()` exceeds
    /// this many bytes. Default 64 MiB, "tens of MB" per the design: large
    /// enough for sequential scans, small enough to bound writer memory.
    pub row_group_bytes: usize,
    /// Rows per `RecordBatch` handed to the encoder. Default 8192, the batch
    /// size arrow-rs readers use by default.
    pub batch_rows: usize,
    /// Also hand buffered rows to the encoder once their approximate in-memory
    /// size reaches this many bytes (bounds memory for long page texts).
    /// Default 16 MiB.
    pub batch_bytes: usize,
    /// zstd level, 1..=22. Default 3, zstd's own default: most of the ratio of
    /// higher levels at a fraction of their CPU.
    pub zstd_level: i32,
    /// Commit the open part once it holds this many documents; 0 = never for
    /// this reason. Default 64 (the figure): a crash redoes at most
    /// this many documents, at the price of one part file per table per 64
    /// documents.
    pub commit_every_docs: usize,
    /// Commit the open part once its first document is this many seconds old;
    /// 0 = never for this reason. Checked on every write and by
    /// [`OutputWriter::commit_if_due`]. Default 30 s: a crash loses about
    /// that much finished work at most.
    pub commit_every_secs: u64,
    /// The pipeline's field schema: `documents/` gets its typed columns
    /// (see [`crate::output::field_columns_schema`]), filled from [`DocumentRow::extracted`].
    /// Default `None` (an OCR-only pipeline).
    pub fields: Option<Arc<FieldSchema>>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            max_part_bytes: 512 * MIB as u64,
            row_group_bytes: 64 * MIB,
            batch_rows: 8192,
            batch_bytes: 16 * MIB,
            zstd_level: 3,
            commit_every_docs: 64,
            commit_every_secs: 30,
            fields: None,
        }
    }
}

/// One closed Parquet file.
#[derive(Clone, Debug, PartialEq)]
pub struct TableFile {
    /// Final path, `<dir>/<table>/part-<prefix>-<NNNNN>.parquet`.
    pub path: PathBuf,
    /// Rows in the file.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
}

/// The files of one part number.
#[derive(Clone, Debug, PartialEq)]
pub struct PartFiles {
    /// Part number, the `NNNNN` of the file names.
    pub number: u32,
    pub documents: TableFile,
    pub pages: TableFile,
    pub lines: TableFile,
    /// Only parts with failure rows have a `failures/` file.
    pub failures: Option<TableFile>,
    /// Only parts with region rows (a pipeline with `layout`) have a
    /// `regions/` file.
    pub regions: Option<TableFile>,
    /// Only parts with caption rows (a VLM with a caption task) have a
    /// `captions/` file.
    pub captions: Option<TableFile>,
}

impl PartFiles {
    /// `(table folder name, file)` for every file of the part, in [`TABLES`] order.
    pub fn tables(&self) -> Vec<(&'static str, &TableFile)> {
        let mut v = vec![
            ("documents", &self.documents),
            ("pages", &self.pages),
            ("lines", &self.lines),
        ];
        if let Some(f) = &self.failures {
            v.push(("failures", f));
        }
        if let Some(f) = &self.regions {
            v.push(("regions", f));
        }
        if let Some(f) = &self.captions {
            v.push(("captions", f));
        }
        v
    }
}

/// What a run journal needs to know about one document of a part.
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedDoc {
    pub doc_id: String,
    pub uri: String,
    pub sha256: String,
    pub config_hash: String,
    pub status: DocStatus,
    pub error_class: Option<String>,
    /// Pages of the document (0 when unknown).
    pub pages: u32,
}

impl CommittedDoc {
    fn of(row: &DocumentRow) -> Self {
        Self {
            doc_id: row.doc_id.clone(),
            uri: row.uri.clone(),
            sha256: row.sha256.clone(),
            config_hash: row.config_hash.clone(),
            status: row.status,
            error_class: row.error_class.clone(),
            pages: row.pages.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
        }
    }
}

/// A part whose files are complete and fsynced under their temporary names
/// and about to be renamed into place: what [`CommitHook::sealed`] sees.
#[derive(Debug)]
pub struct SealedPart<'a> {
    /// `part-<prefix>-<NNNNN>`, the file stem shared by all tables.
    pub name: &'a str,
    /// Final paths, rows and sizes.
    pub files: &'a PartFiles,
    /// The documents whose rows the part holds, in write order.
    pub docs: &'a [CommittedDoc],
}

/// Called by [`OutputWriter`] between sealing a part (files closed and
/// fsynced under `.tmp` names) and renaming its files into place. A run
/// journal records the part here: once the hook returns `Ok`, the part counts
/// as committed even if the process dies before the renames (recovery
/// finishes them, see [`recover_parts`]). An error stops the writer and
/// leaves the part's `.tmp` files, which recovery deletes.
pub trait CommitHook: Send {
    fn sealed(&mut self, part: &SealedPart<'_>) -> Result<(), OutputError>;
}

/// A part that is durably on disk (fsynced and renamed), with the ids of the
/// documents whose rows it holds: what a run journal marks as done.
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedPart {
    pub files: PartFiles,
    /// Document ids in write order.
    pub doc_ids: Vec<String>,
}

/// What [`OutputWriter::close`] returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteSummary {
    /// Every part this writer committed, in order.
    pub parts: Vec<PartFiles>,
    /// Committed parts not yet drained by [`OutputWriter::take_committed`]
    /// (always includes the part closed by `close`, if any).
    pub committed: Vec<CommittedPart>,
    /// Total rows written per table.
    pub documents: u64,
    pub pages: u64,
    pub lines: u64,
    pub failures: u64,
    pub regions: u64,
    pub captions: u64,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// File stem of part `number`, shared by its files in every table.
pub fn part_stem(prefix: &str, number: u32) -> String {
    format!("part-{prefix}-{number:05}")
}

/// Final file name of part `number`.
fn part_name(prefix: &str, number: u32) -> String {
    format!("{}.parquet", part_stem(prefix, number))
}

/// Name of part `number` while it is being written: dot-prefixed and with a
/// `.tmp` suffix so that readers globbing `*.parquet` never see it.
fn tmp_name(prefix: &str, number: u32) -> String {
    format!(".{}.tmp", part_name(prefix, number))
}

/// The part number of `name` if it is a part file (final or temporary) of `prefix`.
fn parse_part(name: &str, prefix: &str) -> Option<(u32, bool)> {
    let (rest, tmp) = match name.strip_prefix('.') {
        Some(r) => (r.strip_suffix(".tmp")?, true),
        None => (name, false),
    };
    let digits = rest
        .strip_prefix("part-")?
        .strip_prefix(prefix)?
        .strip_prefix('-')?
        .strip_suffix(".parquet")?;
    if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(|n| (n, tmp))
}

/// The stem (`part-<prefix>-<NNNNN>`) and prefix of `name` if it is a part
/// file of any prefix, and whether it is a temporary one.
pub fn parse_any_part(name: &str) -> Option<(String, String, bool)> {
    let (rest, tmp) = match name.strip_prefix('.') {
        Some(r) => (r.strip_suffix(".tmp")?, true),
        None => (name, false),
    };
    let stem = rest.strip_suffix(".parquet")?;
    let (prefix, digits) = stem.strip_prefix("part-")?.rsplit_once('-')?;
    if check_prefix(prefix).is_err()
        || digits.len() < 5
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((stem.to_string(), prefix.to_string(), tmp))
}

fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > 128 {
        return Err(format!(
            "part prefix must be 1..=128 characters, got {}",
            prefix.len()
        ));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "part prefix {prefix:?} contains {c:?}; use ASCII letters, digits, '-', '_', '.'"
        ));
    }
    Ok(())
}

/// Writer properties for one table: zstd, dictionary encoding on (off for the
/// columns named in `no_dict`, whose values are mostly unique), page and
/// chunk statistics.
fn properties(opts: &WriterOptions, no_dict: &[&str]) -> Result<WriterProperties, OutputError> {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(opts.zstd_level)?))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("docpipe {}", env!("CARGO_PKG_VERSION")));
    for col in no_dict {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*col), false);
    }
    Ok(b.build())
}

/// Sync a directory so that a rename in it is durable. Only meaningful (and
/// only possible) on Unix.
fn sync_dir(storage: &dyn Storage, dir: &Path) -> Result<(), OutputError> {
    storage.sync_folder(dir).map_err(io_err(dir))
}

struct OpenFile {
    writer: ArrowWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
}

/// A table's file of a part, closed and fsynced under its temporary name.
struct SealedFile {
    tmp: PathBuf,
    file: TableFile,
}

/// One table: its rows buffered, then encoded into the open part file.
struct Table<R> {
    /// The local folder its files are written in.
    dir: PathBuf,
    /// The folder they are put in when complete (`dir` itself for a local
    /// output).
    dest: PathBuf,
    schema: SchemaRef,
    props: WriterProperties,
    to_batch: ToBatch<R>,
    buffer: Vec<R>,
    buffered_bytes: usize,
    open: Option<OpenFile>,
    /// A lazy table creates its file of a part only when the part's first row
    /// for it arrives; `(tmp, final)` paths of that file until then.
    lazy: bool,
    pending: Option<(PathBuf, PathBuf)>,
    total_rows: u64,
}

impl<R: RowSize> Table<R> {
    fn new(
        (dir, dest): (PathBuf, PathBuf),
        schema: SchemaRef,
        props: WriterProperties,
        to_batch: ToBatch<R>,
    ) -> Result<Self, OutputError> {
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(Self {
            dir,
            dest,
            schema,
            props,
            to_batch,
            buffer: Vec::new(),
            buffered_bytes: 0,
            open: None,
            lazy: false,
            pending: None,
            total_rows: 0,
        })
    }

    fn open(&mut self, prefix: &str, number: u32) -> Result<(), OutputError> {
        let tmp = self.dir.join(tmp_name(prefix, number));
        let path = self.dest.join(part_name(prefix, number));
        if self.lazy {
            self.pending = Some((tmp, path));
            return Ok(());
        }
        self.create_file(tmp, path)
    }

    fn create_file(&mut self, tmp: PathBuf, path: PathBuf) -> Result<(), OutputError> {
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(self.props.clone()))?;
        self.open = Some(OpenFile {
            writer,
            tmp,
            path,
            rows: 0,
        });
        Ok(())
    }

    fn push(&mut self, rows: Vec<R>, opts: &WriterOptions) -> Result<(), OutputError> {
        if rows.is_empty() {
            return Ok(());
        }
        if self.open.is_none() {
            if let Some((tmp, path)) = self.pending.take() {
                self.create_file(tmp, path)?;
            }
        }
        for r in rows {
            self.buffered_bytes += r.approx_bytes();
            self.buffer.push(r);
            if self.buffer.len() >= opts.batch_rows.max(1)
                || self.buffered_bytes >= opts.batch_bytes
            {
                self.encode_buffer(opts)?;
            }
        }
        Ok(())
    }

    /// Hand the buffered rows to the encoder; close the row group when it
    /// has grown past `row_group_bytes`.
    fn encode_buffer(&mut self, opts: &WriterOptions) -> Result<(), OutputError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let Some(open) = self.open.as_mut() else {
            return Err(OutputError::Io {
                path: self.dir.clone(),
                source: io::Error::other("no part file open"),
            });
        };
        let batch = (self.to_batch)(&self.buffer)?;
        open.writer.write(&batch)?;
        if open.writer.in_progress_size() >= opts.row_group_bytes {
            open.writer.flush()?;
        }
        let n = self.buffer.len() as u64;
        open.rows += n;
        self.total_rows += n;
        self.buffer.clear();
        self.buffered_bytes = 0;
        Ok(())
    }

    /// Estimated size of the open file if it were closed now, bytes.
    fn estimated_bytes(&self) -> u64 {
        let written = self.open.as_ref().map_or(0, |o| {
            o.writer.bytes_written() + o.writer.in_progress_size()
        });
        (written + self.buffered_bytes) as u64
    }

    /// Encode what is left, write the footer and fsync, under the temporary
    /// name. `None` for a lazy table that got no row in this part.
    fn seal(&mut self, opts: &WriterOptions) -> Result<Option<SealedFile>, OutputError> {
        self.encode_buffer(opts)?;
        let Some(mut open) = self.open.take() else {
            if self.lazy && self.pending.take().is_some() {
                return Ok(None);
            }
            return Err(OutputError::Io {
                path: self.dir.clone(),
                source: io::Error::other("no part file open"),
            });
        };
        open.writer.finish()?;
        open.writer.inner().sync_all().map_err(io_err(&open.tmp))?;
        let bytes = open.writer.bytes_written() as u64;
        drop(open.writer);
        Ok(Some(SealedFile {
            tmp: open.tmp,
            file: TableFile {
                path: open.path,
                rows: open.rows,
                bytes,
            },
        }))
    }

    /// A sealed file that must exist (eager tables).
    fn seal_required(&mut self, opts: &WriterOptions) -> Result<SealedFile, OutputError> {
        self.seal(opts)?.ok_or_else(|| OutputError::Io {
            path: self.dir.clone(),
            source: io::Error::other("no part file open"),
        })
    }
}

/// Put a sealed file in place (a rename, on the local file system).
fn publish(storage: &dyn Storage, sealed: &SealedFile) -> Result<(), OutputError> {
    let to = &sealed.file.path;
    storage.put_file(&sealed.tmp, to).map_err(io_err(to))
}

/// The Parquet sink: `documents/`, `pages/`, `lines/`, `failures/` and
/// `regions/` under one folder.
///
/// Each table is written as part files `part-<prefix>-<NNNNN>.parquet`; while
/// open a part is named `.part-<prefix>-<NNNNN>.parquet.tmp`. All tables roll
/// over together at a document boundary, so a document's rows always land in
/// files with the same name. A part is committed when it reaches
/// `max_part_bytes`, `commit_every_docs` documents or `commit_every_secs`
/// seconds, and at [`close`](Self::close): its files are closed and fsynced
/// under their temporary names, the [`CommitHook`] (if any) records it, then
/// they are renamed into place and their folders fsynced. Dropping the writer
/// without `close` leaves only `.tmp` files, never a half-written `.parquet`.
///
/// After any error the writer refuses further writes (its open part may hold
/// part of a document); drop it, and the `.tmp` files stay behind.
pub struct OutputWriter {
    prefix: String,
    storage: &'static dyn Storage,
    opts: WriterOptions,
    documents: Table<DocumentRow>,
    pages: Table<PageRow>,
    lines: Table<LineRow>,
    failures: Table<FailureRow>,
    regions: Table<RegionRow>,
    captions: Table<CaptionRow>,
    /// Number of the open part, if one is open, and when it was opened.
    open_part: Option<(u32, Instant)>,
    next_part: u32,
    open_docs: Vec<CommittedDoc>,
    parts: Vec<PartFiles>,
    committed: Vec<CommittedPart>,
    hook: Option<Box<dyn CommitHook>>,
    failed: bool,
}

impl OutputWriter {
    /// Create the writer and the folders `<dir>/documents/`, `<dir>/pages/`,
    /// `<dir>/lines/`, `<dir>/failures/` of the local output folder `dir`
    /// (see [`create_in`](Self::create_in)).
    pub fn create(dir: &Path, part_prefix: &str, opts: WriterOptions) -> Result<Self, OutputError> {
        let place = Place::open(dir, "writer").map_err(io_err(dir))?;
        Self::create_in(&place, part_prefix, opts)
    }

    /// Create the writer of the output at `place`: its table folders in
    /// the place's local folder, where part files are written before they
    /// are put in place under the place's root.
    ///
    /// `part_prefix` names this writer's parts (e.g. a run id or `shard-3`):
    /// 1..=128 ASCII letters, digits, `-`, `_` or `.`. Part numbers start
    /// after the highest existing `part-<prefix>-*.parquet` in any of the
    /// local folders, so a re-run with the same prefix never overwrites
    /// committed parts; leftover `.part-<prefix>-*.parquet.tmp` files from a
    /// writer that was not closed are removed. No file is created until the
    /// first document is written.
    pub fn create_in(
        place: &Place,
        part_prefix: &str,
        opts: WriterOptions,
    ) -> Result<Self, OutputError> {
        let dir = place.local.as_path();
        let at = |t: &str| (dir.join(t), place.root.join(t));
        check_prefix(part_prefix).map_err(|msg| OutputError::Io {
            path: dir.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, msg),
        })?;
        let (_, ps, ls) = schemas();
        let fields = opts.fields.clone();
        let ds = documents_schema_for(fields.as_deref());
        let batch_schema = ds.clone();
        let documents = Table::new(
            at("documents"),
            ds,
            properties(&opts, &["doc_id", "uri", "sha256", "error_message"])?,
            Box::new(move |rows: &[DocumentRow]| {
                documents_batch(rows, &batch_schema, fields.as_deref())
            }),
        )?;
        let pages = Table::new(
            at("pages"),
            ps,
            properties(&opts, &["text"])?,
            Box::new(pages_batch),
        )?;
        let lines = Table::new(
            at("lines"),
            ls,
            properties(&opts, &["text"])?,
            Box::new(lines_batch),
        )?;
        let mut failures = Table::new(
            at("failures"),
            failures_schema(),
            properties(&opts, &["doc_id", "uri", "sha256", "message", "input"])?,
            Box::new(failures_batch),
        )?;
        failures.lazy = true;
        let mut regions = Table::new(
            at("regions"),
            regions_schema(),
            properties(&opts, &["doc_id"])?,
            Box::new(regions_batch),
        )?;
        regions.lazy = true;
        let mut captions = Table::new(
            at("captions"),
            captions_schema(),
            properties(&opts, &["doc_id", "text"])?,
            Box::new(captions_batch),
        )?;
        captions.lazy = true;
        let mut next_part = 0u32;
        for table_dir in [
            &documents.dir,
            &pages.dir,
            &lines.dir,
            &failures.dir,
            &regions.dir,
            &captions.dir,
        ] {
            for entry in fs::read_dir(table_dir).map_err(io_err(table_dir))? {
                let entry = entry.map_err(io_err(table_dir))?;
                let name = entry.file_name();
                let Some((n, tmp)) = name.to_str().and_then(|s| parse_part(s, part_prefix)) else {
                    continue;
                };
                if tmp {
                    let p = entry.path();
                    fs::remove_file(&p).map_err(io_err(&p))?;
                } else {
                    next_part = next_part.max(n.saturating_add(1));
                }
            }
        }
        Ok(Self {
            prefix: part_prefix.to_string(),
            storage: place.storage,
            opts,
            documents,
            pages,
            lines,
            failures,
            regions,
            captions,
            open_part: None,
            next_part,
            open_docs: Vec::new(),
            parts: Vec::new(),
            committed: Vec::new(),
            hook: None,
            failed: false,
        })
    }

    /// Have `hook` record every part this writer commits, between sealing
    /// its files and renaming them into place.
    pub fn set_commit_hook(&mut self, hook: Box<dyn CommitHook>) {
        self.hook = Some(hook);
    }

    /// Write one document's rows to all three tables. Rows are buffered and
    /// encoded in batches; the part may be committed (and a new one started
    /// by the next call) when it has reached `max_part_bytes`.
    ///
    /// `pages` and `lines` should carry `doc.doc_id`; they are written as given.
    pub fn write_document(
        &mut self,
        doc: DocumentRow,
        pages: Vec<PageRow>,
        lines: Vec<LineRow>,
    ) -> Result<(), OutputError> {
        self.write_document_with_failures(doc, pages, lines, Vec::new())
    }

    /// [`write_document`](Self::write_document) with the document's
    /// `failures` rows, which land in the same part as its other rows.
    pub fn write_document_with_failures(
        &mut self,
        doc: DocumentRow,
        pages: Vec<PageRow>,
        lines: Vec<LineRow>,
        failures: Vec<FailureRow>,
    ) -> Result<(), OutputError> {
        self.guard(|w| {
            w.write_inner(
                DocRows {
                    doc,
                    pages,
                    lines,
                    regions: Vec::new(),
                    captions: Vec::new(),
                    stage_failures: Vec::new(),
                },
                failures,
            )
        })
    }

    /// A document's rows in every table (its `regions` too), with its
    /// `failures` rows, all in the same part.
    pub fn write_rows(
        &mut self,
        rows: DocRows,
        failures: Vec<FailureRow>,
    ) -> Result<(), OutputError> {
        self.guard(|w| w.write_inner(rows, failures))
    }

    fn write_inner(&mut self, rows: DocRows, failures: Vec<FailureRow>) -> Result<(), OutputError> {
        let DocRows {
            doc,
            pages,
            lines,
            regions,
            captions,
            stage_failures: _,
        } = rows;
        if self.open_part.is_none() {
            let n = self.next_part;
            self.documents.open(&self.prefix, n)?;
            self.pages.open(&self.prefix, n)?;
            self.lines.open(&self.prefix, n)?;
            self.failures.open(&self.prefix, n)?;
            self.regions.open(&self.prefix, n)?;
            self.captions.open(&self.prefix, n)?;
            self.open_part = Some((n, Instant::now()));
            self.next_part = n.saturating_add(1);
        }
        self.open_docs.push(CommittedDoc::of(&doc));
        self.documents.push(vec![doc], &self.opts)?;
        self.pages.push(pages, &self.opts)?;
        self.lines.push(lines, &self.opts)?;
        self.failures.push(failures, &self.opts)?;
        self.regions.push(regions, &self.opts)?;
        self.captions.push(captions, &self.opts)?;
        let largest = self
            .documents
            .estimated_bytes()
            .max(self.pages.estimated_bytes())
            .max(self.lines.estimated_bytes())
            .max(self.failures.estimated_bytes())
            .max(self.regions.estimated_bytes())
            .max(self.captions.estimated_bytes());
        let every = self.opts.commit_every_docs;
        if largest >= self.opts.max_part_bytes
            || (every > 0 && self.open_docs.len() >= every)
            || self.part_too_old()
        {
            self.commit_part()?;
        }
        Ok(())
    }

    /// Whether the open part is older than `commit_every_secs`.
    fn part_too_old(&self) -> bool {
        let secs = self.opts.commit_every_secs;
        secs > 0
            && self
                .open_part
                .is_some_and(|(_, at)| at.elapsed() >= Duration::from_secs(secs))
    }

    /// Commit the open part if it is older than `commit_every_secs`; call it
    /// now and then when documents arrive slowly. Returns whether it did.
    pub fn commit_if_due(&mut self) -> Result<bool, OutputError> {
        if !self.part_too_old() {
            return Ok(false);
        }
        self.guard(Self::commit_part)?;
        Ok(true)
    }

    /// Commit the open part now, if there is one. Returns whether there was.
    pub fn commit(&mut self) -> Result<bool, OutputError> {
        let open = self.open_part.is_some();
        self.guard(Self::commit_part)?;
        Ok(open)
    }

    fn guard<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, OutputError>,
    ) -> Result<T, OutputError> {
        if self.failed {
            return Err(OutputError::Io {
                path: self.documents.dir.clone(),
                source: io::Error::other("output writer failed earlier; no further writes"),
            });
        }
        let r = f(self);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Seal every table's file (fsync under the temporary name), let the
    /// hook record the part, rename the files into place, fsync the folders.
    fn commit_part(&mut self) -> Result<(), OutputError> {
        let Some((number, _)) = self.open_part.take() else {
            return Ok(());
        };
        let documents = self.documents.seal_required(&self.opts)?;
        let pages = self.pages.seal_required(&self.opts)?;
        let lines = self.lines.seal_required(&self.opts)?;
        let failures = self.failures.seal(&self.opts)?;
        let regions = self.regions.seal(&self.opts)?;
        let captions = self.captions.seal(&self.opts)?;
        let files = PartFiles {
            number,
            documents: documents.file.clone(),
            pages: pages.file.clone(),
            lines: lines.file.clone(),
            failures: failures.as_ref().map(|f| f.file.clone()),
            regions: regions.as_ref().map(|f| f.file.clone()),
            captions: captions.as_ref().map(|f| f.file.clone()),
        };
        let docs = std::mem::take(&mut self.open_docs);
        let sealed = [
            Some(&documents),
            Some(&pages),
            Some(&lines),
            failures.as_ref(),
            regions.as_ref(),
            captions.as_ref(),
        ];
        let order = self.storage.commit_order();
        if order == CommitOrder::PutThenRecord {
            for s in sealed.iter().flatten() {
                publish(self.storage, s)?;
            }
        }
        if let Some(hook) = self.hook.as_mut() {
            let name = part_stem(&self.prefix, number);
            hook.sealed(&SealedPart {
                name: &name,
                files: &files,
                docs: &docs,
            })?;
        }
        if order == CommitOrder::RecordThenPut {
            for s in sealed.iter().flatten() {
                publish(self.storage, s)?;
            }
            for t in [
                &self.documents.dest,
                &self.pages.dest,
                &self.lines.dest,
                &self.failures.dest,
                &self.regions.dest,
                &self.captions.dest,
            ] {
                sync_dir(self.storage, t)?;
            }
        }
        tracing::debug!(
            part = number,
            documents = files.documents.rows,
            pages = files.pages.rows,
            lines = files.lines.rows,
            failures = files.failures.as_ref().map_or(0, |f| f.rows),
            regions = files.regions.as_ref().map_or(0, |f| f.rows),
            captions = files.captions.as_ref().map_or(0, |f| f.rows),
            "committed output part"
        );
        self.parts.push(files.clone());
        self.committed.push(CommittedPart {
            files,
            doc_ids: docs.into_iter().map(|d| d.doc_id).collect(),
        });
        Ok(())
    }

    /// Parts committed since the last call, oldest first: their documents are
    /// durably written and can be marked done in a run journal.
    pub fn take_committed(&mut self) -> Vec<CommittedPart> {
        std::mem::take(&mut self.committed)
    }

    /// Paths of the parts committed so far, oldest first.
    pub fn parts(&self) -> &[PartFiles] {
        &self.parts
    }

    /// Commit the open part (if any) and return what was written. A writer
    /// that wrote no document creates no file.
    pub fn close(mut self) -> Result<WriteSummary, OutputError> {
        self.guard(Self::commit_part)?;
        Ok(WriteSummary {
            documents: self.documents.total_rows,
            pages: self.pages.total_rows,
            lines: self.lines.total_rows,
            failures: self.failures.total_rows,
            regions: self.regions.total_rows,
            captions: self.captions.total_rows,
            parts: std::mem::take(&mut self.parts),
            committed: std::mem::take(&mut self.committed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_parse_back() {
        struct Case {
            name: &'static str,
            prefix: &'static str,
            want: Option<(u32, bool)>,
        }
        let cases = [
            Case {
                name: "part-run1-00007.parquet",
                prefix: "run1",
                want: Some((7, false)),
            },
            Case {
                name: ".part-run1-00007.parquet.tmp",
                prefix: "run1",
                want: Some((7, true)),
            },
            Case {
                name: "part-run1-123456.parquet",
                prefix: "run1",
                want: Some((123456, false)),
            },
            Case {
                name: "part-run1-x-00001.parquet",
                prefix: "run1",
                want: None,
            },
            Case {
                name: "part-run1-0001.parquet",
                prefix: "run1",
                want: None,
            },
            Case {
                name: "part-run2-00001.parquet",
                prefix: "run1",
                want: None,
            },
            Case {
                name: "part-a-b-00003.parquet",
                prefix: "a-b",
                want: Some((3, false)),
            },
            Case {
                name: "part-run1-00001.parquet.tmp",
                prefix: "run1",
                want: None,
            },
        ];
        for c in cases {
            assert_eq!(parse_part(c.name, c.prefix), c.want, "{}", c.name);
        }
        assert_eq!(part_name("p", 3), "part-p-00003.parquet");
        assert_eq!(tmp_name("p", 3), ".part-p-00003.parquet.tmp");
    }

    #[test]
    fn prefixes_checked() {
        for ok in ["run1", "shard-3_of-8", "2024.01.01"] {
            assert!(check_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "a b", "é", "..\\x", &"x".repeat(129)] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_zstd_level_is_an_error() {
        let opts = WriterOptions {
            zstd_level: 99,
            ..WriterOptions::default()
        };
        assert!(matches!(
            properties(&opts, &[]),
            Err(OutputError::Parquet(_))
        ));
    }
}
