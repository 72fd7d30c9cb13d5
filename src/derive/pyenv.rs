//! The Python packages the derive script runs with: those of
//! `scripts/derive-requirements.txt`, every wheel pinned by sha256,
//! installed by pip (`--require-hashes --no-deps --only-binary=:all:`) into
//! `<cache>/derive-env-<requirements hash>-py<version>/site` on first use.

use super::{io_err, DeriveError, REQUIREMENTS};
use crate::fetch::Cache;
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// An installed environment.
pub struct Env {
    /// The Python that runs the script (the one pip installed for).
    pub python: OsString,
    /// The environment's folder; the packages are in `site/`.
    pub dir: PathBuf,
}

/// The first of `DOCPIPE_PYTHON` (alone, when set), `python3`, `python`
/// with pip, and its `major.minor`.
fn python(cache: &Cache) -> Result<(OsString, String), DeriveError> {
    let candidates: Vec<OsString> = match &cache.overrides().python {
        Some(p) => vec![p.clone()],
        None => vec!["python3".into(), "python".into()],
    };
    for c in &candidates {
        let out = Command::new(c)
            .args([
                "-c",
                "import sys, pip; print('%d.%d' % sys.version_info[:2])",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        if let Ok(o) = out {
            if o.status.success() {
                let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
                return Ok((c.clone(), v));
            }
        }
    }
    Err(DeriveError::Build {
        what: "the derive environment".into(),
        message: format!(
            "no Python with pip found (tried {}); set DOCPIPE_PYTHON",
            candidates
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// The installed environment, installing it first if needed.
pub fn ensure(cache: &Cache) -> Result<Env, DeriveError> {
    let (python, version) = python(cache)?;
    let req_hash = super::hex(&Sha256::digest(REQUIREMENTS.as_bytes()));
    let dir = cache
        .root()
        .join(format!("derive-env-{}-py{version}", &req_hash[..12]));
    let complete =
        |d: &PathBuf| fs::read_to_string(d.join(super::MARKER)).is_ok_and(|m| m.trim() == req_hash);
    if complete(&dir) {
        return Ok(Env { python, dir });
    }
    if cache.overrides().offline {
        return Err(DeriveError::Offline {
            what: format!(
                "Python packages of scripts/derive-requirements.txt ({})",
                dir.display()
            ),
            engine: "ppocr-v6-int8".into(),
        });
    }
    fs::create_dir_all(cache.root()).map_err(io_err("cannot create", cache.root()))?;
    let lock_path = cache.root().join(".lock-derive-env");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err("cannot open lock file", &lock_path))?;
    fs4::fs_std::FileExt::lock_exclusive(&lock).map_err(io_err("cannot lock", &lock_path))?;
    let result = if complete(&dir) {
        Ok(())
    } else {
        install(&python, &version, &dir, &req_hash)
    };
    drop(lock);
    result.map(|()| Env { python, dir })
}

fn install(
    python: &OsString,
    version: &str,
    dir: &PathBuf,
    req_hash: &str,
) -> Result<(), DeriveError> {
    eprintln!(
        "docpipe: installing the pinned onnx/onnxruntime Python packages for building derived models into {} ...",
        dir.display()
    );
    let staged = dir.with_file_name(format!(
        "{}.partial-{}",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&staged);
    fs::create_dir_all(&staged).map_err(io_err("cannot create", &staged))?;
    let req = staged.join("requirements.txt");
    fs::write(&req, REQUIREMENTS).map_err(io_err("cannot write", &req))?;
    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "--disable-pip-version-check",
            "--no-input",
            "--no-compile",
            "--target",
        ])
        .arg(staged.join("site"))
        .arg("-r")
        .arg(&req)
        .stdin(Stdio::null())
        .output()
        .map_err(io_err("cannot run pip for", &staged))?;
    if !out.status.success() {
        let _ = fs::remove_dir_all(&staged);
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.trim_end().lines().rev().take(10).collect();
        return Err(DeriveError::Build {
            what: "the derive environment".into(),
            message: format!(
                "pip install of scripts/derive-requirements.txt with Python {version} failed \
                 (the file pins wheels for CPython 3.11 to 3.13; set DOCPIPE_PYTHON to one of them):\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        });
    }
    fs::write(staged.join(super::MARKER), format!("{req_hash}\n"))
        .map_err(io_err("cannot write", &staged))?;
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(io_err("cannot remove", dir))?;
    }
    fs::rename(&staged, dir).map_err(io_err("cannot move", dir))?;
    Ok(())
}
