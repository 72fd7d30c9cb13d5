//! The Python packages the derive script runs with: those of
//! `scripts/derive-requirements.txt`, every wheel pinned by sha256,
//! installed by pip (`--require-hashes --no-deps --only-binary=:all:`) into
//! `<cache>/derive-env-<requirements hash>-py<version>/site` on first use.

use super::{io_err, DeriveError, REQUIREMENTS};
use crate::fetch::Cache;
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs;
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
    let lock = super::lock(&cache.root().join(".lock-derive-env"))?;
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
    dir: &std::path::Path,
    req_hash: &str,
) -> Result<(), DeriveError> {
    eprintln!(
        "docpipe: installing the pinned onnx/onnxruntime Python packages for building derived models into {} ...",
        dir.display()
    );
    let staged = super::staging(dir)?;
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
        return Err(DeriveError::Build {
            what: "the derive environment".into(),
            message: format!(
                "pip install of scripts/derive-requirements.txt with Python {version} failed \
                 (the file pins wheels for CPython 3.11 to 3.13; set DOCPIPE_PYTHON to one of them):\n{}",
                super::last_lines(&out.stderr, 10)
            ),
        });
    }
    super::publish(&staged, dir, req_hash)
}
