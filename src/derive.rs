//! Derived OCR models: faster variants of the pinned models, built on the
//! user's machine the first time an engine needs them, and checked on every
//! load.
//!
//! A [`Recipe`] says what to do to a source model: cut the recogniser's
//! output head to a character set (`ocr.charset: latin`), and/or convert the
//! graph to opset 17 and quantize it to int8 (static QDQ, per channel),
//! calibrated on tensors docpipe records from the pages it ships
//! ([`calib`]). The graph work is done by `scripts/derive-ocr-model.py`,
//! embedded in the binary, run with the pinned `onnx` and `onnxruntime`
//! Python packages of `scripts/derive-requirements.txt` ([`pyenv`]).
//!
//! A derived model lives in `<cache>/derived/<source stem>.<recipe>-<key>/`,
//! where the key hashes everything it is made from: the recipe, the source
//! model's bytes, the script, the requirements and (for int8) the
//! calibration inputs. Change any of them and the key changes, so the model
//! is built again rather than trusted. The built file's sha256 is recorded
//! beside it (`.complete`) and compared on every load; a file whose bytes no
//! longer match is refused and rebuilt.

pub mod calib;
mod npy;
pub mod pyenv;

use crate::fetch::{sha256_file, Cache};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The graph editing and quantization script, run with the pinned packages.
pub const SCRIPT: &str = include_str!("../scripts/derive-ocr-model.py");
/// Its pinned, hash-checked Python packages.
pub const REQUIREMENTS: &str = include_str!("../scripts/derive-requirements.txt");
/// Marker beside a derived model: its sha256, lower-case hex, and a newline.
pub const MARKER: &str = ".complete";

#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    #[error("cannot build {what}: {message}")]
    Build { what: String, message: String },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(
        "derived model {what} is missing and DOCPIPE_OFFLINE is set; run once online \
         (`docpipe fetch --models {engine}`) to build it"
    )]
    Offline { what: String, engine: String },
}

pub(crate) fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> DeriveError {
    let path = path.to_path_buf();
    move |source| DeriveError::Io {
        action,
        path,
        source,
    }
}

/// Which OCR model a recipe applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelRole {
    Det,
    Rec,
    Cls,
}

impl ModelRole {
    fn as_str(self) -> &'static str {
        match self {
            ModelRole::Det => "det",
            ModelRole::Rec => "rec",
            ModelRole::Cls => "cls",
        }
    }
}

/// What to do to a source model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Recipe {
    pub role: ModelRole,
    /// Keep only the Latin-script classes of the recogniser's head.
    pub latin: bool,
    /// Opset 17, then int8 static QDQ quantization.
    pub int8: bool,
}

impl Recipe {
    /// No change: the source model is used as it is.
    pub fn is_identity(&self) -> bool {
        !self.latin && !self.int8
    }

    /// Short name, part of the file name: `latin`, `int8`, `latin-int8`.
    pub fn name(&self) -> String {
        let mut parts = Vec::new();
        if self.latin {
            parts.push("latin");
        }
        if self.int8 {
            parts.push("int8");
        }
        if parts.is_empty() {
            parts.push("fp32");
        }
        parts.join("-")
    }

    /// The script's arguments.
    fn args(&self, src: &Path, out: &Path, calib: Option<&Path>) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec![
            self.role.as_str().into(),
            "--src".into(),
            src.into(),
            "--out".into(),
            out.into(),
        ];
        if self.latin {
            a.extend(["--charset".into(), "latin".into()]);
        }
        if let (true, Some(dir)) = (self.int8, calib) {
            a.extend([
                "--int8".into(),
                "--calib".into(),
                dir.join(self.role.as_str()).into(),
            ]);
        }
        a
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the calibration tensors come from, and a hash of what makes them.
pub trait CalibrationSource {
    /// A hash of everything the recorded tensors depend on.
    fn key(&self) -> Result<String, DeriveError>;
    /// A folder holding the tensors (`det/`, `rec/`, `cls/` of `.npy`
    /// files), recorded on the first call and reused after it.
    fn tensors(&self) -> Result<PathBuf, DeriveError>;
}

/// The folder and file a derived model gets, from its key.
fn location(cache: &Cache, src: &Path, recipe: Recipe, key: &str) -> (PathBuf, PathBuf) {
    let stem = src
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let dir = cache
        .root()
        .join("derived")
        .join(format!("{stem}.{}-{}", recipe.name(), &key[..16]));
    let file = dir.join(format!("{stem}.{}.onnx", recipe.name()));
    (dir, file)
}

/// The key of a derived model: a hash of all it is made from.
pub fn key(
    src: &Path,
    recipe: Recipe,
    calib: &dyn CalibrationSource,
) -> Result<String, DeriveError> {
    let mut h = Sha256::new();
    h.update(b"docpipe derived model 1\n");
    h.update(recipe.name().as_bytes());
    h.update(b"\n");
    h.update(recipe.role.as_str().as_bytes());
    h.update(b"\n");
    h.update(sha256_file(src)?.as_bytes());
    h.update(b"\n");
    h.update(sha256_hex(SCRIPT.as_bytes()).as_bytes());
    h.update(b"\n");
    h.update(sha256_hex(REQUIREMENTS.as_bytes()).as_bytes());
    h.update(b"\n");
    if recipe.int8 {
        h.update(calib.key()?.as_bytes());
    }
    Ok(hex(&h.finalize()))
}

/// What a load found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Built before, bytes as recorded.
    Checked,
    /// Built now (first use, or the recorded hash no longer matched).
    Built,
}

/// The derived model for `src` and `recipe`: checked against its recorded
/// hash, or built (again). `engine` names the engine in messages.
pub fn derived(
    cache: &Cache,
    src: &Path,
    recipe: Recipe,
    calib: &dyn CalibrationSource,
    engine: &str,
) -> Result<(PathBuf, Found), DeriveError> {
    if recipe.is_identity() {
        return Ok((src.to_path_buf(), Found::Checked));
    }
    let key = key(src, recipe, calib)?;
    let (dir, file) = location(cache, src, recipe, &key);
    let what = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if check(&dir, &file)? {
        return Ok((file, Found::Checked));
    }
    if cache.overrides().offline {
        return Err(DeriveError::Offline {
            what,
            engine: engine.into(),
        });
    }
    let lock = lock(&cache.root().join("derived").join(format!(".lock-{what}")))?;
    let result = if check(&dir, &file)? {
        Ok((file, Found::Checked))
    } else {
        build(cache, src, recipe, calib, &dir, &file, &what).map(|f| (f, Found::Built))
    };
    drop(lock);
    result
}

/// True when `file` is there and its sha256 is the one recorded; a file
/// whose bytes changed is reported and its folder removed.
fn check(dir: &Path, file: &Path) -> Result<bool, DeriveError> {
    let Ok(recorded) = fs::read_to_string(dir.join(MARKER)) else {
        return Ok(false);
    };
    if file.is_file() && sha256_file(file)?.eq_ignore_ascii_case(recorded.trim()) {
        return Ok(true);
    }
    tracing::warn!(
        model = %file.display(),
        "derived model does not match the sha256 recorded when it was built: refused, building it again"
    );
    eprintln!(
        "docpipe: {} does not match the sha256 recorded when it was built; building it again",
        file.display()
    );
    fs::remove_dir_all(dir).map_err(io_err("cannot remove", dir))?;
    Ok(false)
}

fn build(
    cache: &Cache,
    src: &Path,
    recipe: Recipe,
    calib: &dyn CalibrationSource,
    dir: &Path,
    file: &Path,
    what: &str,
) -> Result<PathBuf, DeriveError> {
    let env = pyenv::ensure(cache)?;
    eprintln!("docpipe: building {what} from {} ...", src.display());
    let staged = staging(dir)?;
    let result = (|| {
        let calib_dir = if recipe.int8 {
            Some(calib.tensors()?)
        } else {
            None
        };
        let out = staged.join(file.file_name().unwrap_or_default());
        run_script(&env, &recipe.args(src, &out, calib_dir.as_deref()), what)?;
        publish(&staged, dir, &sha256_file(&out)?)?;
        Ok(file.to_path_buf())
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staged);
    }
    result
}

/// Runs the embedded script with the pinned packages.
fn run_script(env: &pyenv::Env, args: &[OsString], what: &str) -> Result<(), DeriveError> {
    let script = env.dir.join("derive-ocr-model.py");
    if fs::read_to_string(&script).ok().as_deref() != Some(SCRIPT) {
        fs::write(&script, SCRIPT).map_err(io_err("cannot write", &script))?;
    }
    let out = Command::new(&env.python)
        .arg(&script)
        .args(args)
        .env("PYTHONPATH", env.dir.join("site"))
        .env("PYTHONNOUSERSITE", "1")
        .env("PYTHONHASHSEED", "0")
        .env("OMP_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DeriveError::Build {
            what: what.into(),
            message: format!("cannot start {}: {e}", env.python.to_string_lossy()),
        })?;
    if !out.status.success() {
        return Err(DeriveError::Build {
            what: what.into(),
            message: format!(
                "scripts/derive-ocr-model.py failed ({}):\n{}",
                out.status,
                last_lines(&out.stderr, 12)
            ),
        });
    }
    let said = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = said.lines().last() {
        eprintln!("docpipe: {what}: {line}");
    }
    Ok(())
}

/// An exclusive lock on `path` (created when missing), held until the file
/// is dropped.
pub(crate) fn lock(path: &Path) -> Result<File, DeriveError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
    }
    crate::fetch::lock_exclusive(path).map_err(io_err("cannot lock", path))
}

/// A fresh, empty `<dir>.partial-<pid>` folder beside `dir`, to build in.
pub(crate) fn staging(dir: &Path) -> Result<PathBuf, DeriveError> {
    let staged = dir.with_file_name(format!(
        "{}.partial-{}",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&staged);
    fs::create_dir_all(&staged).map_err(io_err("cannot create", &staged))?;
    Ok(staged)
}

/// Writes `marker` (a hash) into `staged`, then puts `staged` where `dir`
/// was. The caller holds the lock.
pub(crate) fn publish(staged: &Path, dir: &Path, marker: &str) -> Result<(), DeriveError> {
    fs::write(staged.join(MARKER), format!("{marker}\n"))
        .map_err(io_err("cannot write", staged))?;
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(io_err("cannot remove", dir))?;
    }
    fs::rename(staged, dir).map_err(io_err("cannot move into place", dir))
}

/// The last `n` lines of a child's stderr.
pub(crate) fn last_lines(stderr: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str);

    impl CalibrationSource for Fixed {
        fn key(&self) -> Result<String, DeriveError> {
            Ok(self.0.into())
        }
        fn tensors(&self) -> Result<PathBuf, DeriveError> {
            Ok(PathBuf::new())
        }
    }

    #[test]
    fn the_key_changes_with_every_input_it_is_made_from() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.onnx"), dir.path().join("b.onnx"));
        fs::write(&a, b"model a").unwrap();
        fs::write(&b, b"model b").unwrap();
        let rec = |latin, int8| Recipe {
            role: ModelRole::Rec,
            latin,
            int8,
        };
        let k = |src: &Path, r: Recipe, c: &'static str| key(src, r, &Fixed(c)).unwrap();
        let base = k(&a, rec(true, true), "c1");
        assert_eq!(base, k(&a, rec(true, true), "c1"));
        assert_ne!(base, k(&b, rec(true, true), "c1"), "source bytes");
        assert_ne!(base, k(&a, rec(false, true), "c1"), "recipe");
        assert_ne!(base, k(&a, rec(true, true), "c2"), "calibration");
        // Calibration does not enter a model that is not quantized.
        assert_eq!(k(&a, rec(true, false), "c1"), k(&a, rec(true, false), "c2"));
        let det = Recipe {
            role: ModelRole::Det,
            latin: false,
            int8: true,
        };
        assert_ne!(k(&a, det, "c1"), k(&a, rec(false, true), "c1"), "role");
    }

    #[test]
    fn recipe_names_and_args() {
        let r = Recipe {
            role: ModelRole::Rec,
            latin: true,
            int8: true,
        };
        assert_eq!(r.name(), "latin-int8");
        let a = r.args(
            Path::new("a.onnx"),
            Path::new("b.onnx"),
            Some(Path::new("/c")),
        );
        let a: Vec<String> = a.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert_eq!(
            a,
            [
                "rec",
                "--src",
                "a.onnx",
                "--out",
                "b.onnx",
                "--charset",
                "latin",
                "--int8",
                "--calib",
                "/c/rec"
            ]
        );
        let d = Recipe {
            role: ModelRole::Det,
            latin: false,
            int8: false,
        };
        assert!(d.is_identity());
        assert_eq!(d.name(), "fp32");
    }
}
