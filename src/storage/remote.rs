//! [`Storage`] on object storage: S3 and S3-compatible servers, Google
//! Cloud Storage and Azure Blob Storage, through the Apache Arrow project's
//! `object_store` crate.
//!
//! - **Credentials** come from each cloud's usual chain: for S3 the `AWS_*`
//!   environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …), then the
//!   profile of `~/.aws/{credentials,config}` ([`super::profile`]), then web
//!   identity, container and instance credentials; for GCS
//!   `GOOGLE_APPLICATION_CREDENTIALS` / `GOOGLE_SERVICE_ACCOUNT`; for Azure
//!   `AZURE_STORAGE_ACCOUNT_NAME` with a key, SAS or Entra ID settings.
//!   A custom endpoint uses path-style requests (`http://host/bucket/key`),
//!   and plain `http://` is allowed for it.
//! - **Retries**: every request is retried with exponential backoff on
//!   network errors, timeouts and 5xx answers (10 tries within 3 minutes;
//!   [`ENV_RETRIES`], [`ENV_RETRY_TIMEOUT`]); a whole-object read is also
//!   tried again when its body breaks off. An input that still cannot be
//!   read is that document's `failed` row (class `io`).
//! - **Puts** of part files are whole-object uploads (multipart past
//!   [`WHOLE_PUT_BYTES`]); a reader never sees half an object. The journal
//!   is a folder of numbered entry objects, each created put-if-absent, so
//!   two writers of one shard's journal cannot both commit.
//!
//! The calls are async; they run on a small runtime of this module's own,
//! so callers (ingest threads, the writer) stay plain blocking code.

use super::url::{Scheme, StoreUrl, Target};
use super::{CommitOrder, ListError, Log, ObjectMeta, Objects, ReadError, SourceFile, Storage};
use crate::config::InputConfig;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Part files up to this size are put in one request; larger ones in
/// multipart uploads of this chunk size.
pub const WHOLE_PUT_BYTES: u64 = 16 * 1024 * 1024;
/// Chunks of a multipart upload in flight at once.
const UPLOAD_CONCURRENCY: usize = 4;
/// Journal entry objects fetched at once when a journal is read.
const LOG_READ_CONCURRENCY: usize = 16;
/// Tries of a whole-object read whose body breaks off (each request is
/// itself retried by `object_store`).
const READ_TRIES: u32 = 3;

/// One bucket or container.
pub struct Remote {
    scheme: Scheme,
    bucket: String,
    store: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({}://{})", self.scheme.as_str(), self.bucket)
    }
}

/// The connected buckets, one `Remote` each for the process's life.
fn registry() -> &'static Mutex<HashMap<String, &'static Remote>> {
    static R: OnceLock<Mutex<HashMap<String, &'static Remote>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The storage of `url`'s bucket, connected on first use.
pub fn for_url(url: &StoreUrl) -> io::Result<&'static Remote> {
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    let root = url.root();
    if let Some(r) = reg.get(&root) {
        return Ok(r);
    }
    let remote: &'static Remote = Box::leak(Box::new(Remote::connect(url)?));
    reg.insert(root, remote);
    Ok(remote)
}

fn other_err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// An `object_store` error as an `io::Error` that names the object.
fn io_of(e: object_store::Error) -> io::Error {
    let kind = match &e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            io::ErrorKind::AlreadyExists
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.to_string())
}

/// Environment variables: tries of a failing request (default 10) and the
/// time they may take in all (seconds, default 180).
pub const ENV_RETRIES: &str = "DOCPIPE_STORE_RETRIES";
pub const ENV_RETRY_TIMEOUT: &str = "DOCPIPE_STORE_RETRY_TIMEOUT_S";

fn retry_config() -> object_store::RetryConfig {
    let env = |k: &str, default: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(default)
    };
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: env(ENV_RETRIES, 10) as usize,
        retry_timeout: Duration::from_secs(env(ENV_RETRY_TIMEOUT, 180)),
    }
}

/// Test-only: `DOCPIPE_TEST_STORE_FAULT=abort-after-put:N` aborts the
/// process (as `kill -9` would) right after its Nth part file upload,
/// before the journal entry that would make it count.
const FAULT_ENV: &str = "DOCPIPE_TEST_STORE_FAULT";

fn abort_after_put() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PUTS: AtomicU64 = AtomicU64::new(0);
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var(FAULT_ENV)
            .ok()?
            .strip_prefix("abort-after-put:")?
            .parse()
            .ok()
    });
    if let Some(n) = at {
        if PUTS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            tracing::error!("{FAULT_ENV}: aborting after upload {n}");
            std::process::abort();
        }
    }
}

impl Remote {
    fn connect(url: &StoreUrl) -> io::Result<Self> {
        let store: Arc<dyn ObjectStore> = match url.scheme {
            Scheme::S3 => Arc::new(s3_builder(&url.bucket).build().map_err(io_of)?),
            Scheme::Gcs => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&url.bucket)
                    .with_retry(retry_config())
                    .build()
                    .map_err(io_of)?,
            ),
            Scheme::Azure => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(&url.bucket)
                    .with_retry(retry_config())
                    .build()
                    .map_err(io_of)?,
            ),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("docpipe-store")
            .enable_all()
            .build()?;
        Ok(Self {
            scheme: url.scheme,
            bucket: url.bucket.clone(),
            store,
            rt,
        })
    }

    /// Runs `f` on this storage's runtime and waits for it.
    fn run<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> io::Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv()
            .map_err(|_| other_err("an object storage call panicked"))
    }

    /// The object key of `path`, which must be a URL of this bucket.
    fn key(&self, path: &Path) -> io::Result<Key> {
        let s = path.to_str().unwrap_or_default();
        match super::url::parse(s) {
            Ok(Target::Object(u)) if u.scheme == self.scheme && u.bucket == self.bucket => {
                Key::parse(&u.key).map_err(|e| other_err(format!("{s}: {e}")))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{s} is not in {}://{}", self.scheme.as_str(), self.bucket),
            )),
        }
    }

    /// The URL of `key` in this bucket.
    fn url(&self, key: &Key) -> String {
        format!("{}://{}/{}", self.scheme.as_str(), self.bucket, key)
    }

    /// Puts `bytes` at `key`; `create` fails if the object exists.
    fn put_bytes(&self, key: Key, bytes: Vec<u8>, create: bool) -> io::Result<()> {
        let store = self.store.clone();
        let mode = if create {
            PutMode::Create
        } else {
            PutMode::Overwrite
        };
        self.run(async move {
            store
                .put_opts(&key, PutPayload::from(bytes), PutOptions::from(mode))
                .await
                .map(|_| ())
                .map_err(io_of)
        })?
    }

    /// The objects under `prefix` (a folder), sorted by key, with sizes.
    fn objects_under(&self, prefix: &Key) -> io::Result<Vec<(Key, u64)>> {
        let store = self.store.clone();
        let prefix = prefix.clone();
        let mut objects: Vec<(Key, u64)> = self.run(async move {
            store
                .list(Some(&prefix))
                .map_ok(|m| (m.location, m.size))
                .try_collect::<Vec<_>>()
                .await
                .map_err(io_of)
        })??;
        objects.sort();
        Ok(objects)
    }

    /// The entry objects of the journal at `path`, in order: number, key,
    /// size.
    fn log_entries(&self, path: &Path) -> io::Result<Vec<(u64, Key, u64)>> {
        let prefix = self.key(path)?;
        let mut v: Vec<(u64, Key, u64)> = self
            .objects_under(&prefix)?
            .into_iter()
            .filter_map(|(k, size)| {
                let n = k.filename()?.strip_suffix(".jsonl")?.parse::<u64>().ok()?;
                Some((n, k, size))
            })
            .collect();
        v.sort_by_key(|e| e.0);
        Ok(v)
    }
}

/// S3 settings: the environment, then the shared profile for what it
/// leaves unset; path-style requests and plain HTTP for custom endpoints.
fn s3_builder(bucket: &str) -> object_store::aws::AmazonS3Builder {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as K};
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry_config());
    let profile = super::profile::load(env);
    let from_profile = [
        ("AWS_ACCESS_KEY_ID", "aws_access_key_id", K::AccessKeyId),
        (
            "AWS_SECRET_ACCESS_KEY",
            "aws_secret_access_key",
            K::SecretAccessKey,
        ),
        ("AWS_SESSION_TOKEN", "aws_session_token", K::Token),
    ];
    // Keys come as a set: the profile's only when the environment has none.
    if env("AWS_ACCESS_KEY_ID").is_none() {
        for (_, name, key) in from_profile {
            if let Some(v) = profile.get(name) {
                b = b.with_config(key, v);
            }
        }
    }
    if env("AWS_REGION").or(env("AWS_DEFAULT_REGION")).is_none() {
        if let Some(v) = profile.get("region") {
            b = b.with_region(v);
        }
    }
    let endpoint = env("AWS_ENDPOINT_URL_S3")
        .or(env("AWS_ENDPOINT_URL"))
        .or(env("AWS_ENDPOINT"))
        .or_else(|| profile.get("endpoint_url").cloned());
    if let Some(e) = endpoint {
        if e.starts_with("http://") {
            b = b.with_allow_http(true);
        }
        b = b.with_endpoint(e);
    }
    b
}

impl Storage for Remote {
    fn list(&self, input: &InputConfig) -> Result<Objects, ListError> {
        let include = super::walk::globs(&input.include)?;
        let exclude = super::walk::globs(&input.exclude)?;
        let mut roots: Vec<Key> = Vec::new();
        let mut singles: Vec<SourceFile> = Vec::new();
        for p in &input.paths {
            let key = self.key(p).map_err(|e| ListError::Walk {
                path: p.clone(),
                message: e.to_string(),
            })?;
            // An object named whole is listed whatever the globs.
            if !key.as_ref().is_empty() {
                if let Ok(m) = self.head_meta(&key) {
                    singles.push(self.source(&key, key.filename().unwrap_or("").into(), m));
                    continue;
                }
            }
            let store = self.store.clone();
            let k = key.clone();
            let any = self
                .run(async move { store.list(Some(&k)).next().await.transpose() })
                .and_then(|r| r.map_err(io_of))
                .map_err(|e| ListError::Walk {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
            if any.is_none() {
                return Err(ListError::Missing(p.clone()));
            }
            roots.push(key);
        }
        roots.sort();
        roots.dedup();
        // A root inside an earlier one lists nothing new.
        let mut kept: Vec<Key> = Vec::new();
        for r in roots {
            if !kept.iter().any(|k| r.prefix_matches(k)) {
                kept.push(r);
            }
        }
        let me: &'static Remote = for_url(&StoreUrl {
            scheme: self.scheme,
            bucket: self.bucket.clone(),
            key: String::new(),
        })
        .map_err(|e| ListError::Walk {
            path: PathBuf::from(format!("{}://{}", self.scheme.as_str(), self.bucket)),
            message: e.to_string(),
        })?;
        let listed = kept.into_iter().flat_map(move |root| {
            let (include, exclude) = (include.clone(), exclude.clone());
            me.stream(root.clone()).filter_map(move |item| match item {
                Err(e) => Some(Err(ListError::Walk {
                    path: PathBuf::from(me.url(&root)),
                    message: e.to_string(),
                })),
                Ok(m) => {
                    let rel = m
                        .location
                        .prefix_match(&root)
                        .map(|parts| {
                            parts
                                .map(|p| p.as_ref().to_string())
                                .collect::<Vec<_>>()
                                .join("/")
                        })
                        .unwrap_or_else(|| m.location.to_string());
                    let rel_path = Path::new(&rel);
                    (include.is_match(rel_path) && !exclude.is_match(rel_path))
                        .then(|| Ok(me.source(&m.location, rel, meta_of(&m))))
                }
            })
        });
        Ok(Box::new(singles.into_iter().map(Ok).chain(listed)))
    }

    fn stat(&self, path: &Path) -> io::Result<ObjectMeta> {
        let key = self.key(path)?;
        self.head_meta(&key)
    }

    fn read(&self, path: &Path, limit: u64) -> Result<(Vec<u8>, ObjectMeta), ReadError> {
        let key = self.key(path)?;
        let mut last = None;
        for attempt in 0..READ_TRIES {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 << attempt));
            }
            let store = self.store.clone();
            let k = key.clone();
            let got = self.run(async move {
                let r = store.get(&k).await.map_err(io_of)?;
                let meta = meta_of(&r.meta);
                if meta.size > limit {
                    return Ok(Err((meta.size, limit)));
                }
                let bytes = r.bytes().await.map_err(io_of)?;
                Ok::<_, io::Error>(Ok((bytes.to_vec(), meta)))
            })?;
            match got {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err((size, limit))) => return Err(ReadError::TooLarge { size, limit }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e.into()),
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Err(e.into()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| other_err("no read attempt")).into())
    }

    fn read_range(&self, path: &Path, range: Range<u64>) -> io::Result<Vec<u8>> {
        let key = self.key(path)?;
        let store = self.store.clone();
        self.run(async move {
            let size = store.head(&key).await.map_err(io_of)?.size;
            let end = range.end.min(size);
            if range.start >= end {
                return Ok(Vec::new());
            }
            store
                .get_range(&key, range.start..end)
                .await
                .map(|b| b.to_vec())
                .map_err(io_of)
        })?
    }

    fn put_file(&self, tmp: &Path, to: &Path) -> io::Result<()> {
        let key = self.key(to)?;
        let size = std::fs::metadata(tmp)?.len();
        if size <= WHOLE_PUT_BYTES {
            let data = std::fs::read(tmp)?;
            self.put_bytes(key, data, false)?;
        } else {
            let store = self.store.clone();
            let file = tmp.to_path_buf();
            self.run(async move { multipart(store, key, file).await })??;
        }
        abort_after_put();
        std::fs::remove_file(tmp)
    }

    fn sync_folder(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn read_log(&self, path: &Path) -> io::Result<Option<Box<dyn Read + Send>>> {
        let entries = self.log_entries(path)?;
        if entries.is_empty() {
            return Ok(None);
        }
        // Fetched a few at once, in order, through a bounded channel: the
        // journal is streamed, never held whole.
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(LOG_READ_CONCURRENCY);
        let store = self.store.clone();
        self.rt.spawn(async move {
            let mut s = futures::stream::iter(entries)
                .map(|(_, k, _)| {
                    let store = store.clone();
                    async move {
                        let b = store.get(&k).await?.bytes().await?;
                        Ok::<_, object_store::Error>(b.to_vec())
                    }
                })
                .buffered(LOG_READ_CONCURRENCY);
            while let Some(item) = s.next().await {
                let stop = item.is_err();
                // A full channel blocks this task's thread, not the reader:
                // hand the send to the blocking pool.
                let tx = tx.clone();
                let sent =
                    tokio::task::spawn_blocking(move || tx.send(item.map_err(io_of)).is_ok())
                        .await
                        .unwrap_or(false);
                if !sent || stop {
                    break;
                }
            }
        });
        Ok(Some(Box::new(LogReader {
            rx,
            current: io::Cursor::new(Vec::new()),
        })))
    }

    fn open_log(&self, path: &Path) -> io::Result<Box<dyn Log>> {
        let prefix = self.key(path)?;
        let me = for_url(&StoreUrl {
            scheme: self.scheme,
            bucket: self.bucket.clone(),
            key: String::new(),
        })?;
        let mut entries = Vec::new();
        let mut start = 0u64;
        for (n, k, len) in self.log_entries(path)? {
            entries.push((n, k, start, len));
            start += len;
        }
        Ok(Box::new(RemoteLog {
            remote: me,
            prefix,
            entries,
        }))
    }

    fn names(&self, dir: &Path) -> io::Result<Vec<String>> {
        let key = self.key(dir)?;
        let store = self.store.clone();
        let listed = self
            .run(async move { store.list_with_delimiter(Some(&key)).await })?
            .map_err(io_of)?;
        let mut out: Vec<String> = listed
            .objects
            .iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .chain(
                listed
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_string)),
            )
            .collect();
        out.sort();
        Ok(out)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let key = self.key(path)?;
        let store = self.store.clone();
        match self.run(async move { store.delete(&key).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_of(e)),
        }
    }

    fn remove_folder(&self, dir: &Path) -> io::Result<()> {
        let prefix = self.key(dir)?;
        for (k, _) in self.objects_under(&prefix)? {
            self.remove(Path::new(&self.url(&k)))?;
        }
        Ok(())
    }

    fn commit_order(&self) -> CommitOrder {
        CommitOrder::PutThenRecord
    }

    fn probe(&self, path: &Path) -> io::Result<()> {
        let key = self.key(path)?;
        let store = self.store.clone();
        self.run(async move { store.list_with_delimiter(Some(&key)).await.map(|_| ()) })?
            .map_err(io_of)
    }
}

impl Remote {
    fn head_meta(&self, key: &Key) -> io::Result<ObjectMeta> {
        let store = self.store.clone();
        let k = key.clone();
        let m = self
            .run(async move { store.head(&k).await })?
            .map_err(io_of)?;
        Ok(meta_of(&m))
    }

    fn source(&self, key: &Key, rel: String, meta: ObjectMeta) -> SourceFile {
        let url = self.url(key);
        SourceFile {
            path: PathBuf::from(&url),
            uri: url,
            key: rel,
            meta: Some(meta),
        }
    }

    /// The objects under `root`, streamed in listing order through a
    /// bounded channel (never collected).
    fn stream(
        &'static self,
        root: Key,
    ) -> impl Iterator<Item = io::Result<object_store::ObjectMeta>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1024);
        let store = self.store.clone();
        self.rt.spawn(async move {
            let mut s = store.list(Some(&root));
            while let Some(item) = s.next().await {
                let stop = item.is_err();
                if tx.send(item.map_err(io_of)).is_err() || stop {
                    break;
                }
            }
        });
        rx.into_iter()
    }
}

fn meta_of(m: &object_store::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        size: m.size,
        mtime_ns: m.last_modified.timestamp_nanos_opt(),
    }
}

/// Uploads the local file `file` to `key` in chunks of
/// [`WHOLE_PUT_BYTES`], a few at once; aborts the upload on error.
async fn multipart(store: Arc<dyn ObjectStore>, key: Key, file: PathBuf) -> io::Result<()> {
    let upload = store.put_multipart(&key).await.map_err(io_of)?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, WHOLE_PUT_BYTES as usize);
    let result: io::Result<()> = async {
        let mut f = std::fs::File::open(&file)?;
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            w.wait_for_capacity(UPLOAD_CONCURRENCY)
                .await
                .map_err(io_of)?;
            w.write(&buf[..n]);
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => w.finish().await.map(|_| ()).map_err(io_of),
        Err(e) => {
            let _ = w.abort().await;
            Err(e)
        }
    }
}

/// A journal's entries read in order as one stream of bytes.
struct LogReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    current: io::Cursor<Vec<u8>>,
}

impl Read for LogReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            match self.rx.recv() {
                Ok(next) => self.current = io::Cursor::new(next?),
                Err(_) => return Ok(0),
            }
        }
    }
}

/// A journal on object storage: a folder of entry objects
/// `NNNNNNNNNN.jsonl`, one per append, each created put-if-absent.
struct RemoteLog {
    remote: &'static Remote,
    prefix: Key,
    /// (number, key, offset of its first byte in the whole journal, bytes).
    entries: Vec<(u64, Key, u64, u64)>,
}

impl Log for RemoteLog {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let n = self.entries.last().map_or(1, |e| e.0 + 1);
        let key = self.prefix.clone().join(format!("{n:010}.jsonl"));
        let start = self.entries.last().map_or(0, |e| e.2 + e.3);
        match self.remote.put_bytes(key.clone(), bytes.to_vec(), true) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists: another docpipe run is writing this journal",
                        self.remote.url(&key)
                    ),
                ))
            }
            Err(e) => return Err(e),
        }
        self.entries.push((n, key, start, bytes.len() as u64));
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        while let Some((_, key, start, bytes)) = self.entries.last().cloned() {
            if start + bytes <= len {
                break;
            }
            if start >= len {
                self.remote.remove(Path::new(&self.remote.url(&key)))?;
                self.entries.pop();
                continue;
            }
            // The entry holding the cut keeps its first part.
            let url = self.remote.url(&key);
            let (data, _) = self
                .remote
                .read(Path::new(&url), u64::MAX)
                .map_err(|e| match e {
                    ReadError::Io(e) => e,
                    other => other_err(other.to_string()),
                })?;
            let keep = (len - start) as usize;
            self.remote
                .put_bytes(key.clone(), data[..keep].to_vec(), false)?;
            if let Some(e) = self.entries.last_mut() {
                e.3 = keep as u64;
            }
            break;
        }
        Ok(())
    }
}
