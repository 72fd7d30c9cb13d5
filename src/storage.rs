//! The storage seam: what docpipe lists and reads of its input, how it puts
//! part files in place and how it appends to and reads its run journal go
//! through [`Storage`]. One implementation
//! today, the local file system ([`Local`]); object storage (`s3://`,
//! `gs://`, `az://`) is to come behind the same trait, chosen by
//! [`for_path`], without changes above it.
//!
//! Paths are `Path`s: local paths today, object keys under a bucket later.

mod local;
mod walk;

pub use local::Local;
pub use walk::{walk, Walk};

use crate::config::InputConfig;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A file found in the input, before it is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    /// `file://` URI of the absolute path.
    pub uri: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("input path {0} does not exist")]
    Missing(PathBuf),
    #[error("bad glob: {0}")]
    Glob(#[from] globset::Error),
    #[error("cannot list {path}: {message}")]
    Walk { path: PathBuf, message: String },
}

/// A listed input, named by its absolute path.
pub(crate) fn source(path: &Path) -> SourceFile {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    SourceFile {
        uri: format!("file://{}", abs.display()),
        path: abs,
    }
}

/// An object's size and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Bytes.
    pub size: u64,
    /// Nanoseconds since the Unix epoch; `None` where the store gives none.
    pub mtime_ns: Option<i64>,
}

/// A listing, streamed in order (see [`walk`]).
pub type Objects = Box<dyn Iterator<Item = Result<SourceFile, ListError>> + Send>;

/// Why a whole object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The object is larger than the caller's limit; nothing was read.
    #[error("{size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
}

/// Where inputs are listed and read and part files put.
pub trait Storage: Send + Sync {
    /// Streams the inputs of `input`: files under its paths that its globs
    /// select, in a repeatable order. A missing path or a bad glob fails at
    /// once; errors met later come from the stream.
    fn list(&self, input: &InputConfig) -> Result<Objects, ListError>;

    /// Size and modification time of an object.
    fn stat(&self, path: &Path) -> io::Result<ObjectMeta>;

    /// Reads a whole object of at most `limit` bytes.
    fn read(&self, path: &Path, limit: u64) -> Result<Vec<u8>, ReadError>;

    /// Reads bytes `range` of an object (fewer where it ends first).
    fn read_range(&self, path: &Path, range: Range<u64>) -> io::Result<Vec<u8>>;

    /// Puts the complete, synced local file `tmp` at `to`, atomically: a
    /// reader sees all of it or nothing. Durable once `sync` of its folder
    /// returns ([`sync_folder`](Self::sync_folder)).
    fn put_file(&self, tmp: &Path, to: &Path) -> io::Result<()>;

    /// Makes the puts into folder `dir` durable (a no-op where a put is
    /// durable by itself).
    fn sync_folder(&self, dir: &Path) -> io::Result<()>;

    /// Streams a journal's entries (JSON lines) from its start; `None` when
    /// there is no journal.
    fn read_log(&self, path: &Path) -> io::Result<Option<Box<dyn Read + Send>>>;

    /// Opens a journal for appending entries, creating it if need be.
    fn open_log(&self, path: &Path) -> io::Result<Box<dyn Log>>;
}

/// A journal open for appending.
pub trait Log: Send {
    /// Appends `bytes` (whole lines) with one write, durably.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// Cuts the journal to its first `len` bytes, durably (a torn last
    /// entry).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

static LOCAL: Local = Local;

/// The storage that holds `path`: the local file system (the only one so
/// far).
pub fn for_path(_path: &Path) -> &'static dyn Storage {
    &LOCAL
}

/// The storage of an input: that of its first path.
pub fn for_input(input: &InputConfig) -> &'static dyn Storage {
    for_path(input.paths.first().map_or(Path::new("."), |p| p.as_path()))
}
