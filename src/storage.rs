//! The storage seam: what docpipe lists and reads of its input, how it puts
//! part files in place and how it appends to and reads its run journal go
//! through [`Storage`]. Two implementations: the local file system
//! ([`Local`]) and object storage ([`Remote`]: `s3://`, `gs://`, `az://`),
//! chosen by [`for_path`] from the path itself.
//!
//! Paths are `Path`s: local paths, or URLs for objects
//! (`s3://bucket/a/b.pdf`, see [`url`]). An output on object storage is
//! written through a local staging folder ([`Place`]): part files are
//! closed there, then put whole.

mod local;
mod manifest;
mod profile;
mod remote;
pub mod url;
mod walk;

pub use local::Local;
pub use manifest::is_manifest;
pub use remote::Remote;
pub use walk::{walk, Walk};

use crate::config::InputConfig;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A file found in the input, before it is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Its absolute local path, or its URL on object storage.
    pub path: PathBuf,
    /// `file://` URI of the absolute path, or the object's URL.
    pub uri: String,
    /// The stable key that picks its shard: the path relative to the input
    /// folder or prefix it was listed under (`/`-separated), its file name
    /// when the input path is the file itself, or the line of a manifest
    /// (see [`crate::shard`]).
    pub key: String,
    /// Size and modification time where the listing gave them (object
    /// storage lists them); `None` has them read when needed.
    pub meta: Option<ObjectMeta>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("input path {0} does not exist")]
    Missing(PathBuf),
    #[error("bad glob: {0}")]
    Glob(#[from] globset::Error),
    #[error("cannot list {path}: {message}")]
    Walk { path: PathBuf, message: String },
    #[error("cannot read the manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
}

/// A listed local input, named by its absolute path, with the stable key
/// `key`.
pub(crate) fn source(path: &Path, key: String) -> SourceFile {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    SourceFile {
        uri: format!("file://{}", abs.display()),
        path: abs,
        key,
        meta: None,
    }
}

/// The stable key of `rel`, a path relative to its input folder: its
/// components joined with `/` whatever the platform.
pub(crate) fn key_of(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// An object's size and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Bytes.
    pub size: u64,
    /// Nanoseconds since the Unix epoch; `None` where the store gives none.
    pub mtime_ns: Option<i64>,
}

impl ObjectMeta {
    /// The size and modification time of `path` in whatever storage holds
    /// it; `None` when it cannot be had (it is then read, and fails).
    pub fn of(path: &Path) -> Option<Self> {
        for_path(path).ok()?.stat(path).ok()
    }
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

/// When a part's files are put in place, relative to the journal entry
/// that makes them count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitOrder {
    /// The entry is written first, then the files renamed into place
    /// (a local folder: a crash between the two leaves `.tmp` files that
    /// recovery renames).
    RecordThenPut,
    /// The files are uploaded first, then the entry written (object
    /// storage: an upload cut off leaves no object; a part uploaded but
    /// never recorded is deleted by recovery).
    PutThenRecord,
}

/// Where inputs are listed and read and part files put.
pub trait Storage: Send + Sync {
    /// Streams the inputs of `input` (whose paths are all in this
    /// storage): files under its paths that its globs select, in a
    /// repeatable order. A missing path or a bad glob fails at once; errors
    /// met later come from the stream.
    fn list(&self, input: &InputConfig) -> Result<Objects, ListError>;

    /// Size and modification time of an object.
    fn stat(&self, path: &Path) -> io::Result<ObjectMeta>;

    /// Reads a whole object of at most `limit` bytes, with the size and
    /// modification time of what was read. A larger object is refused from
    /// its metadata, before any of it is read.
    fn read(&self, path: &Path, limit: u64) -> Result<(Vec<u8>, ObjectMeta), ReadError>;

    /// Reads bytes `range` of an object (fewer where it ends first).
    fn read_range(&self, path: &Path, range: Range<u64>) -> io::Result<Vec<u8>>;

    /// Puts the complete, synced local file `tmp` at `to`, atomically: a
    /// reader sees all of it or nothing. `tmp` is gone afterwards. Durable
    /// once `sync` of its folder returns ([`sync_folder`](Self::sync_folder)).
    fn put_file(&self, tmp: &Path, to: &Path) -> io::Result<()>;

    /// Makes the puts into folder `dir` durable (a no-op where a put is
    /// durable by itself).
    fn sync_folder(&self, dir: &Path) -> io::Result<()>;

    /// Streams a journal's entries (JSON lines) from its start; `None` when
    /// there is no journal.
    fn read_log(&self, path: &Path) -> io::Result<Option<Box<dyn Read + Send>>>;

    /// Opens a journal for appending entries, creating it if need be.
    fn open_log(&self, path: &Path) -> io::Result<Box<dyn Log>>;

    /// The names of the entries directly in folder `dir` (files, and
    /// folders or common prefixes), sorted; none when it does not exist.
    fn names(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Deletes an object; one that is not there is no error.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Deletes a folder and everything under it; none is no error.
    fn remove_folder(&self, dir: &Path) -> io::Result<()>;

    /// Whether part files are put before or after their journal entry.
    fn commit_order(&self) -> CommitOrder;

    /// Checks that `path`'s folder can be reached (credentials, network,
    /// bucket), without changing anything.
    fn probe(&self, path: &Path) -> io::Result<()>;

    /// Whether an object is there.
    fn exists(&self, path: &Path) -> io::Result<bool> {
        match self.stat(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
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

/// The storage that holds `path`: object storage for an `s3://`, `gs://`
/// or `az://` URL (connected on first use, then shared), else the local
/// file system. Fails on a malformed URL or an object store that cannot be
/// set up (e.g. bad credentials settings).
pub fn for_path(path: &Path) -> io::Result<&'static dyn Storage> {
    match path.to_str().map(url::parse) {
        Some(Ok(url::Target::Object(u))) => Ok(remote::for_url(&u)?),
        Some(Err(why)) => Err(io::Error::new(io::ErrorKind::InvalidInput, why)),
        _ => Ok(&LOCAL),
    }
}

/// Streams every input of `input`: its folders and files walked on the
/// local file system, its prefixes listed on object storage, its
/// manifests ([`is_manifest`]) read a line or a row group at a time.
pub fn list(input: &InputConfig) -> Result<Objects, ListError> {
    let mut local = Vec::new();
    let mut remote: Vec<(PathBuf, &'static dyn Storage)> = Vec::new();
    let mut manifests = Vec::new();
    for p in &input.paths {
        if is_manifest(p) {
            manifests.push(p.clone());
        } else if url::is_remote(p) {
            let s = for_path(p).map_err(|e| ListError::Walk {
                path: p.clone(),
                message: e.to_string(),
            })?;
            remote.push((p.clone(), s));
        } else {
            local.push(p.clone());
        }
    }
    let mut out: Objects = Box::new(std::iter::empty());
    if !local.is_empty() {
        let sub = InputConfig {
            paths: local,
            ..input.clone()
        };
        out = Box::new(out.chain(walk(&sub)?));
    }
    for (p, s) in remote {
        let sub = InputConfig {
            paths: vec![p],
            ..input.clone()
        };
        out = Box::new(out.chain(s.list(&sub)?));
    }
    for m in manifests {
        out = Box::new(out.chain(manifest::read(&m)?));
    }
    Ok(out)
}

/// Where an output is written: its `root` (a local folder or an object
/// storage URL), its storage, and the local folder part files and the
/// journal's lock and caches are written to first (`root` itself for a
/// local output; a staging folder, emptied at open, for object storage).
#[derive(Clone)]
pub struct Place {
    pub root: PathBuf,
    pub storage: &'static dyn Storage,
    pub local: PathBuf,
    /// For a staging folder: its lock, held while the place is.
    _lock: Option<std::sync::Arc<std::fs::File>>,
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Place")
            .field("root", &self.root)
            .field("local", &self.local)
            .finish()
    }
}

impl Place {
    /// The place of output `root`. For object storage the staging folder
    /// is `$DOCPIPE_STAGING` (else the system's temporary folder) joined
    /// with `docpipe-stage/<hash of root>-<tag>`, emptied here: nothing in
    /// it outlives a run (the object store holds everything that counts).
    /// `tag` tells apart runs of one output on one machine (a shard name).
    pub fn open(root: &Path, tag: &str) -> io::Result<Self> {
        let storage = for_path(root)?;
        if !url::is_remote(root) {
            return Ok(Self {
                root: root.to_path_buf(),
                storage,
                local: root.to_path_buf(),
                _lock: None,
            });
        }
        let base = std::env::var_os("DOCPIPE_STAGING")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join("docpipe-stage");
        std::fs::create_dir_all(&base)?;
        let id = crate::shard::bucket(&root.to_string_lossy());
        let local = base.join(format!("{id:016x}-{tag}"));
        // Locked before it is emptied: a second run of the same output and
        // shard on this machine must not take the first one's files.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(base.join(format!("{id:016x}-{tag}.lock")))?;
        if !fs4::fs_std::FileExt::try_lock_exclusive(&lock).unwrap_or(false) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "another docpipe run on this machine is writing {} ({tag})",
                    root.display()
                ),
            ));
        }
        if local.exists() {
            std::fs::remove_dir_all(&local)?;
        }
        std::fs::create_dir_all(&local)?;
        Ok(Self {
            root: root.to_path_buf(),
            storage,
            local,
            _lock: Some(std::sync::Arc::new(lock)),
        })
    }

    /// A place to read an output's journals from, with nothing staged or
    /// locked (`docpipe status`).
    pub fn reader(root: &Path, storage: &'static dyn Storage) -> Self {
        Self {
            root: root.to_path_buf(),
            storage,
            local: root.to_path_buf(),
            _lock: None,
        }
    }

    /// Whether the output is on object storage (staged locally).
    pub fn is_staged(&self) -> bool {
        self.local != self.root
    }
}
