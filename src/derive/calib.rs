//! Calibration tensors for int8 quantization, recorded from the pages
//! docpipe itself ships (its test fixtures, embedded in the binary), never
//! from an evaluation corpus.
//!
//! The full-precision PP-OCRv6 models read the pages as a run would, with
//! the default settings, and every model input is written as it goes in:
//! the detector's pages and tiles (`det/`), the direction classifier's line
//! batches (`cls/`) and the recogniser's batches of four, widths sorted as a
//! run sorts them (`rec/`).

use super::{io_err, npy, CalibrationSource, DeriveError};
use crate::config::Pipeline;
use crate::ingest::Kind;
use crate::ocr::engine::{Detector, Recogniser};
use crate::ocr::model::{Accel, Infer, InferError, OrtModel};
use crate::ocr::recognise;
use crate::render::{RenderEvent, RenderSettings};
use image::RgbImage;
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Bump when what is recorded, or how, changes.
const FORMAT: &str = "docpipe calibration 1";

/// The shipped pages: scans, photos and rendered PDFs of the fixtures.
const PAGES: &[(&str, &[u8])] = &[
    (
        "samples/scan-pages.tiff",
        include_bytes!("../../fixtures/samples/scan-pages.tiff"),
    ),
    (
        "samples/scanned.pdf",
        include_bytes!("../../fixtures/samples/scanned.pdf"),
    ),
    (
        "samples/photo-exif.jpg",
        include_bytes!("../../fixtures/samples/photo-exif.jpg"),
    ),
    (
        "samples/born-digital.pdf",
        include_bytes!("../../fixtures/samples/born-digital.pdf"),
    ),
    (
        "samples/wide-page.png",
        include_bytes!("../../fixtures/samples/wide-page.png"),
    ),
    (
        "layout/two-column-scan.png",
        include_bytes!("../../fixtures/layout/two-column-scan.png"),
    ),
    (
        "layout/table-figure.pdf",
        include_bytes!("../../fixtures/layout/table-figure.pdf"),
    ),
];

/// Recogniser batch size while recording (the CPU default, `ocr.batch_size`).
const REC_BATCH: usize = 4;

/// Calibration from the shipped pages, read by these full-precision models.
/// The tensors are recorded once, into a folder under `scratch` that is
/// removed when this is dropped.
pub struct Shipped {
    pub pdfium: PathBuf,
    pub det: PathBuf,
    pub rec: PathBuf,
    pub cls: PathBuf,
    scratch: PathBuf,
    recorded: Mutex<Option<PathBuf>>,
    /// [`CalibrationSource::key`], hashed once: every int8 model of an
    /// engine asks for it.
    key: OnceLock<String>,
}

impl Shipped {
    /// `scratch` is where the tensors are written (a few hundred MB, for
    /// as long as this lives).
    pub fn new(
        pdfium: PathBuf,
        det: PathBuf,
        rec: PathBuf,
        cls: PathBuf,
        scratch: PathBuf,
    ) -> Self {
        Self {
            pdfium,
            det,
            rec,
            cls,
            scratch,
            recorded: Mutex::new(None),
            key: OnceLock::new(),
        }
    }
}

impl Drop for Shipped {
    fn drop(&mut self) {
        if let Ok(Some(dir)) = self.recorded.get_mut().map(Option::take) {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

impl CalibrationSource for Shipped {
    fn key(&self) -> Result<String, DeriveError> {
        if let Some(k) = self.key.get() {
            return Ok(k.clone());
        }
        let mut h = Sha256::new();
        h.update(FORMAT.as_bytes());
        for (name, bytes) in PAGES {
            h.update(name.as_bytes());
            h.update(Sha256::digest(bytes));
        }
        for m in [&self.det, &self.rec, &self.cls] {
            h.update(crate::fetch::sha256_file(m)?.as_bytes());
        }
        h.update(format!("{:?}", default_pipeline().ocr).as_bytes());
        Ok(self.key.get_or_init(|| super::hex(&h.finalize())).clone())
    }

    fn tensors(&self) -> Result<PathBuf, DeriveError> {
        let mut recorded = self
            .recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(dir) = recorded.as_ref() {
            return Ok(dir.clone());
        }
        let dir = self
            .scratch
            .join(format!(".calibration-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        if let Err(e) = record(self, &dir) {
            let _ = fs::remove_dir_all(&dir);
            return Err(DeriveError::Build {
                what: "calibration tensors".into(),
                message: format!("{e:#}"),
            });
        }
        *recorded = Some(dir.clone());
        Ok(dir)
    }
}

/// The pipeline defaults, which set the detector's and renderer's settings.
fn default_pipeline() -> Pipeline {
    Pipeline::parse(
        "name: calibration\ninput: {path: in}\noutput: {path: out}\nocr: {mode: always}\n",
        Path::new("calibration.yaml"),
        Path::new("."),
    )
    .expect("the built-in calibration pipeline parses")
}

fn record(s: &Shipped, dir: &Path) -> anyhow::Result<()> {
    let pipeline = default_pipeline();
    let pages = pages(&s.pdfium, &RenderSettings::from_pipeline(&pipeline))?;
    let load = |p: &Path| OrtModel::load(p, 2, Accel::Cpu, true);
    let det = Recorder::new(Box::new(load(&s.det)?), &dir.join("det"))?;
    let cls = Recorder::new(Box::new(load(&s.cls)?), &dir.join("cls"))?;
    let rec_model = load(&s.rec)?;
    let meta = rec_model
        .metadata("character")
        .ok_or_else(|| anyhow::anyhow!("{} has no `character` metadata", s.rec.display()))?;
    let dict = recognise::parse_dictionary(&meta);
    let rec = Recorder::new(Box::new(rec_model), &dir.join("rec"))?;
    let settings = crate::resources::detector_settings(&pipeline);
    let mut detector = Detector::new(Box::new(det), Some(Box::new(cls)), settings);
    let mut recogniser = Recogniser::new(Box::new(rec), dict, false);
    let mut crops = Vec::new();
    for page in &pages {
        crops.extend(detector.detect(page)?.crops.into_iter().map(|c| c.image));
    }
    crops.sort_by_key(|c| recogniser.input_width(c));
    for batch in crops.chunks(REC_BATCH) {
        let refs: Vec<&RgbImage> = batch.iter().collect();
        recogniser.recognise(&refs)?;
    }
    Ok(())
}

/// Every shipped page as the render stage would hand it to OCR.
fn pages(pdfium: &Path, settings: &RenderSettings) -> anyhow::Result<Vec<RgbImage>> {
    let settings = RenderSettings {
        read_text_layer: false,
        render_for_ocr: true,
        ..settings.clone()
    };
    let mut out = Vec::new();
    for (name, data) in PAGES {
        let kind = crate::ingest::sniff(data);
        if kind == Kind::Pdf {
            crate::render::render_pdf(pdfium, data, &settings, &mut |ev| {
                if let RenderEvent::Image { image, .. } = ev {
                    out.push(image);
                }
                true
            })
            .map_err(|f| anyhow::anyhow!("{name}: {}", f.message))?;
        } else {
            let n = crate::decode::page_count(kind, data, settings.max_pages)?;
            for i in 0..n {
                out.push(
                    crate::decode::decode_page(kind, data, i, settings.max_image_pixels)?.image,
                );
            }
        }
    }
    Ok(out)
}

/// A model that writes every input it is given to `dir` before running it.
struct Recorder {
    inner: Box<dyn Infer>,
    dir: PathBuf,
    calls: usize,
}

impl Recorder {
    fn new(inner: Box<dyn Infer>, dir: &Path) -> Result<Self, DeriveError> {
        fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
        Ok(Self {
            inner,
            dir: dir.to_path_buf(),
            calls: 0,
        })
    }
}

impl Infer for Recorder {
    fn run(
        &mut self,
        shape: &[usize],
        data: Vec<f32>,
    ) -> Result<(Vec<usize>, Vec<f32>), InferError> {
        let path = self.dir.join(format!("{:04}.npy", self.calls));
        self.calls += 1;
        fs::write(&path, npy::encode(shape, &data)).map_err(|e| InferError::Run {
            model: "calibration recorder".into(),
            message: format!("cannot write {}: {e}", path.display()),
        })?;
        self.inner.run(shape, data)
    }
}
