//! Writes the calibration tensors a derived int8 model is built from, to
//! look at them or to try the derive script by hand.
//!
//! ```sh
//! cargo run --release --example record-calibration -- DIR
//! ```
//!
//! DIR gets `det/`, `cls/` and `rec/` folders of `.npy` inputs, recorded
//! with the full-precision PP-OCRv6 models on the pages docpipe ships (see
//! `docpipe::derive::calib`).

use anyhow::Context;
use docpipe::derive::calib::Shipped;
use docpipe::derive::CalibrationSource;
use docpipe::fetch::{Cache, OcrModelVersion};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .context("usage: record-calibration DIR")?
        .into();
    let cache = Cache::from_env();
    docpipe::ocr::model::init_runtime(&cache.onnxruntime_library()?)?;
    let v6 = cache.ocr_models(OcrModelVersion::V6)?;
    let source = Shipped::new(
        cache.pdfium_library()?,
        v6.det,
        v6.rec,
        v6.cls,
        std::env::temp_dir(),
    );
    println!("calibration key {}", source.key()?);
    let recorded = source.tensors()?;
    let _ = std::fs::remove_dir_all(&dir);
    copy_tree(&recorded, &dir)?;
    for sub in ["det", "cls", "rec"] {
        let n = std::fs::read_dir(dir.join(sub)).map_or(0, |d| d.count());
        println!("{sub}: {n} tensors");
    }
    Ok(())
}

/// Copies `from` (a folder of folders of files) to `to`.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    for sub in std::fs::read_dir(from)? {
        let sub = sub?;
        let dest = to.join(sub.file_name());
        std::fs::create_dir_all(&dest)?;
        for f in std::fs::read_dir(sub.path())? {
            let f = f?;
            std::fs::copy(f.path(), dest.join(f.file_name()))?;
        }
    }
    Ok(())
}
