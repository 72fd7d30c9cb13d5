//! A real S3-compatible server for the tests: `s3s-fs` (crates.io), built
//! once with `cargo install --locked` into the target folder (pinned
//! version; crates.io checks each crate's checksum), started on a free
//! loopback port over a temporary folder, stopped when dropped. Its
//! objects are plain files under that folder, so a test can also look at
//! what the server holds.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VERSION: &str = "0.14.1";
pub const ACCESS_KEY: &str = "docpipe-test-access";
pub const SECRET_KEY: &str = "docpipe-test-secret-key";

/// The `s3s-fs` binary, built on first use (about 1.5 min on 2 cores).
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("DOCPIPE_S3S_FS") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("s3s-fs");
    let bin = root.join("bin").join("s3s-fs");
    if bin.is_file() {
        return bin;
    }
    std::fs::create_dir_all(&root).unwrap();
    let lock = std::fs::File::create(root.join(".lock")).unwrap();
    fs4::fs_std::FileExt::lock_exclusive(&lock).unwrap();
    if !bin.is_file() {
        eprintln!(
            "building s3s-fs {VERSION} (the tests' S3 server) into {}",
            root.display()
        );
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let o = Command::new(cargo)
            .args([
                "install",
                "s3s-fs",
                "--version",
                VERSION,
                "--features",
                "binary",
                "--locked",
                "--quiet",
                "--root",
            ])
            .arg(&root)
            .output()
            .unwrap();
        assert!(
            o.status.success() && bin.is_file(),
            "cargo install s3s-fs {VERSION} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    bin
}

/// A running server with one bucket.
pub struct S3 {
    child: Child,
    pub port: u16,
    /// The folder it serves: bucket `b` is `dir/b`.
    pub dir: tempfile::TempDir,
    pub bucket: String,
}

impl S3 {
    /// Starts a server with bucket `bucket` (empty).
    pub fn start(bucket: &str) -> Self {
        let bin = binary();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(bucket)).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Self {
            child,
            port,
            dir,
            bucket: bucket.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a client needs: keys, endpoint, region.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            // no profile file of the machine's may add settings
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
            ("AWS_CONFIG_FILE", "/nonexistent".into()),
        ]
    }

    /// `s3://bucket/key`.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key.trim_start_matches('/'))
    }

    /// The folder holding the objects under `key` (the server's own files).
    pub fn local(&self, key: &str) -> PathBuf {
        self.dir.path().join(&self.bucket).join(key)
    }

    /// Puts the files of local folder `from` under `key/` by copying them
    /// into the server's folder.
    pub fn put_tree(&self, from: &Path, key: &str) {
        let to = self.local(key);
        for e in walkdir::WalkDir::new(from).into_iter().flatten() {
            if e.file_type().is_file() {
                let rel = e.path().strip_prefix(from).unwrap();
                let dest = to.join(rel);
                std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
