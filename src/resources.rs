//! Turns a pipeline into what a run needs: the PDFium library, ONNX Runtime,
//! the OCR models and the page orientation model, fetched on first use (see
//! [`crate::fetch`]).

use crate::config::{
    Charset, Device, ExtractConfig, ExtractEngine, LayoutConfig, OcrEngine, OcrMode, Pipeline,
};
use crate::derive::{self, calib::Shipped, ModelRole, Recipe};
use crate::extract::vlm::manifest::Manifest;
use crate::extract::vlm::{VlmEngine, VlmOptions};
use crate::extract::FieldSchema;
use crate::fetch::{Cache, OcrModelVersion};
use crate::ocr::detect::DetParams;
use crate::ocr::engine::{Detector, DetectorSettings, Recogniser};
use crate::ocr::model::{self, Accel, OrtModel};
use crate::ocr::orient::{self, Orienter};
use crate::ocr::recognise;
use crate::pipeline::write::{DocExtractor, LayoutExtractor};
use crate::pipeline::{thread_split, Resources};
use crate::pipeline::{Extractor, ExtractorFactory, VlmFactory, VlmResources};
use crate::pipeline::{LayoutResources, LayoutRows};
use crate::regions::LayoutDetector;
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;

/// The model files of one OCR engine.
#[derive(Clone, Debug)]
pub struct OcrFiles {
    pub det: PathBuf,
    pub rec: PathBuf,
    pub cls: PathBuf,
    /// The whole-page orientation model, with `normalise.orientation`.
    pub orientation: Option<PathBuf>,
    pub engine: OcrEngine,
}

impl OcrFiles {
    /// Model ids as written to the `documents` table.
    pub fn ids(&self) -> Vec<String> {
        self.orientation
            .iter()
            .chain([&self.det, &self.cls, &self.rec])
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect()
    }
}

/// Fetches (or finds) everything `pipeline` needs. `fields` is the
/// pipeline's field schema as [`field_schema`] read it (the caller checks it
/// before anything runs and gives the writer the same one). Errors name what
/// is missing and how to provide it.
pub fn prepare(
    pipeline: &Pipeline,
    cache: &Cache,
    fields: Option<Arc<FieldSchema>>,
) -> anyhow::Result<Resources> {
    let pdfium = cache.pdfium_library()?;
    let needs_ort = pipeline.ocr.mode != OcrMode::Never
        || pipeline.layout.is_some()
        || pipeline
            .extract
            .as_ref()
            .is_some_and(|e| e.engine == ExtractEngine::Vlm);
    let accel = if needs_ort {
        Some(init_onnxruntime(pipeline.runtime.device, cache)?)
    } else {
        None
    };
    let mut resources = match accel {
        Some(accel) if pipeline.ocr.mode != OcrMode::Never => {
            ocr_files(pipeline, cache).map(|files| ocr_resources(pipeline, pdfium, files, accel))?
        }
        _ => Resources {
            pdfium: Some(pdfium),
            detector: None,
            recogniser: None,
            extractor: None,
            layout: None,
            model_ids: Vec::new(),
        },
    };
    if let Some(cfg) = &pipeline.layout {
        let path = cache.layout_model()?;
        resources
            .model_ids
            .extend(path.file_stem().map(|s| s.to_string_lossy().into_owned()));
        resources.layout = Some(layout_resources(
            pipeline,
            cfg,
            path,
            accel.unwrap_or(Accel::Cpu),
        ));
    }
    if let (Some(cfg), Some(fields)) = (&pipeline.extract, fields) {
        let (x, ids) = extractor(pipeline, cfg, fields, accel.unwrap_or(Accel::Cpu))?;
        resources.extractor = Some(x);
        resources.model_ids.extend(ids);
    }
    Ok(resources)
}

/// The layout stage of a `layout` section: as many workers as detection
/// has, with as many threads each (on 2 cores one worker of 2 threads).
fn layout_resources(
    pipeline: &Pipeline,
    cfg: &LayoutConfig,
    path: PathBuf,
    accel: Accel,
) -> LayoutResources {
    let threads = crate::pipeline::ocr_threads(pipeline.runtime.threads);
    let c = cfg.clone();
    let factory = Arc::new(move || -> anyhow::Result<LayoutDetector> {
        Ok(LayoutDetector::load(&path, &c, threads.det_threads, accel)?)
    });
    LayoutResources {
        factory,
        workers: threads.det_workers,
        rows: LayoutRows {
            source: cfg.engine.as_str(),
            reading_order: cfg.reading_order,
        },
    }
}

/// The pipeline's field schema, read and checked; `None` without an
/// `extract` section. Errors name the schema file and the JSON Pointer of
/// the offending place.
pub fn field_schema(pipeline: &Pipeline) -> anyhow::Result<Option<Arc<FieldSchema>>> {
    let Some(cfg) = &pipeline.extract else {
        return Ok(None);
    };
    let schema = FieldSchema::load(&cfg.schema).map_err(|e| {
        anyhow::Error::from(SchemaFileError(format!(
            "{}: {e}\n  (extract.schema of {})",
            cfg.schema.display(),
            pipeline.file.display()
        )))
    })?;
    if let (ExtractEngine::Vlm, Some(model)) = (cfg.engine, &cfg.model) {
        Manifest::read(model).map_err(|(path, message)| {
            anyhow::Error::from(SchemaFileError(format!(
                "{}: {message}\n  (extract.model of {})",
                path.display(),
                pipeline.file.display()
            )))
        })?;
    }
    Ok(Some(Arc::new(schema)))
}

/// A field schema or model manifest that cannot be used: a setup error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SchemaFileError(pub String);

/// The extractor of an `extract` section, and the model ids it adds to the
/// `documents` table.
fn extractor(
    pipeline: &Pipeline,
    cfg: &ExtractConfig,
    fields: Arc<FieldSchema>,
    accel: Accel,
) -> anyhow::Result<(Extractor, Vec<String>)> {
    let policy = cfg.policy();
    match (cfg.engine, &cfg.model) {
        (ExtractEngine::Vlm, Some(model)) => {
            // `auto` gives each OCR model every core; the VLM gets them too.
            let threads = match pipeline.runtime.threads {
                0 => thread_split(0).0,
                n => n,
            };
            let opts = VlmOptions {
                batch_size: cfg.batch_size.max(1),
                max_new_tokens: cfg.max_new_tokens,
                threads,
                accel,
                constrained: cfg.constrained,
            };
            let dir = model.clone();
            let id = format!(
                "vlm:{}",
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            let schema = fields.clone();
            let tasks = cfg.tasks.clone();
            let load_tasks = tasks.clone();
            let engine: VlmFactory = Arc::new(move || {
                VlmEngine::load_tasks(&dir, Some(schema.raw()), &load_tasks, opts)
                    .with_context(|| format!("cannot load the VLM in {}", dir.display()))
            });
            let vlm = VlmResources {
                engine,
                schema: fields,
                policy,
                batch_size: cfg.batch_size.max(1),
                tasks,
                source: id.trim_start_matches("vlm:").to_string(),
            };
            Ok((Extractor::Vlm(vlm), vec![id]))
        }
        (ExtractEngine::Vlm, None) => {
            anyhow::bail!("extract.engine `vlm` needs extract.model")
        }
        (ExtractEngine::Layout, _) => {
            let factory: ExtractorFactory = Arc::new(move || {
                Ok(Box::new(LayoutExtractor::new(fields.clone(), policy)) as Box<dyn DocExtractor>)
            });
            Ok((Extractor::Documents(factory), vec!["layout".into()]))
        }
    }
}

/// The OCR model files of the pipeline's engine, fetched on first use;
/// derived variants (int8, the Latin head) are built the first time and
/// checked against their recorded hash on every load (see [`crate::derive`]).
/// ONNX Runtime must be initialised: building a derived model runs the
/// full-precision models on the shipped pages.
pub fn ocr_files(pipeline: &Pipeline, cache: &Cache) -> anyhow::Result<OcrFiles> {
    let ocr = &pipeline.ocr;
    let orientation = if pipeline.normalise.orientation {
        Some(cache.orientation_model()?)
    } else {
        None
    };
    if ocr.engine == OcrEngine::PpOcrV4 {
        let paths = cache.ocr_models(OcrModelVersion::V4)?;
        return Ok(OcrFiles {
            det: paths.det,
            rec: paths.rec,
            cls: paths.cls,
            orientation,
            engine: ocr.engine,
        });
    }
    let v6 = cache.ocr_models(OcrModelVersion::V6)?;
    let calib = Shipped::new(
        cache.pdfium_library()?,
        v6.det.clone(),
        v6.rec.clone(),
        v6.cls.clone(),
        cache.root().join("derived"),
    );
    let int8 = matches!(ocr.engine, OcrEngine::PpOcrV6Int8 | OcrEngine::Fast);
    let (det_src, det_int8) = match ocr.engine {
        OcrEngine::Fast => (cache.ocr_det_v3()?, FAST_DET_INT8),
        _ => (v6.det.clone(), int8),
    };
    let name = ocr.engine.as_str();
    let derive = |src: &std::path::Path, recipe: Recipe| -> anyhow::Result<PathBuf> {
        let (path, _) = derive::derived(cache, src, recipe, &calib, name)?;
        Ok(path)
    };
    let det = derive(
        &det_src,
        Recipe {
            role: ModelRole::Det,
            latin: false,
            int8: det_int8,
        },
    )?;
    let rec = derive(
        &v6.rec,
        Recipe {
            role: ModelRole::Rec,
            latin: ocr.charset == Charset::Latin,
            int8,
        },
    )?;
    let cls = derive(
        &v6.cls,
        Recipe {
            role: ModelRole::Cls,
            latin: false,
            int8: int8 && CLS_INT8,
        },
    )?;
    Ok(OcrFiles {
        det,
        rec,
        cls,
        orientation,
        engine: ocr.engine,
    })
}

/// Whether the `fast` engine's PP-OCRv3 detector is quantized too.
const FAST_DET_INT8: bool = true;
/// Whether the int8 engines quantize the direction classifier.
const CLS_INT8: bool = false;

/// The orientation classifier at `path`, its classes read from the model's
/// metadata `character`.
pub fn orienter(path: &std::path::Path, threads: usize, accel: Accel) -> anyhow::Result<Orienter> {
    let model = OrtModel::load(path, threads, accel, true)?;
    let meta = model.metadata("character").ok_or_else(|| {
        anyhow::anyhow!(
            "orientation model {} has no `character` metadata (its classes)",
            path.display()
        )
    })?;
    let labels = orient::parse_labels(&meta).map_err(|e| {
        anyhow::anyhow!(
            "orientation model {}: metadata `character`: {e}",
            path.display()
        )
    })?;
    Ok(Orienter::new(Box::new(model), labels))
}

/// Whether an NVIDIA GPU is visible to this process (the driver's device
/// nodes exist).
pub fn gpu_visible() -> bool {
    std::path::Path::new("/dev/nvidiactl").exists()
        || std::path::Path::new("/proc/driver/nvidia/version").exists()
}

/// Loads ONNX Runtime for `device` and says where the models will run.
/// `cuda` without a GPU is an error before anything is downloaded; `auto`
/// without one runs on the CPU and says so once.
pub fn init_onnxruntime(device: Device, cache: &Cache) -> anyhow::Result<Accel> {
    match device {
        Device::Cpu => {
            model::init_runtime(&cache.onnxruntime_library()?)?;
            Ok(Accel::Cpu)
        }
        Device::Cuda => {
            if !gpu_visible() {
                anyhow::bail!(
                    "runtime.device is `cuda` but no NVIDIA GPU is visible here (no /dev/nvidiactl); \
                     use `device: auto` or `cpu`"
                );
            }
            model::init_runtime(&cache.onnxruntime_gpu_library()?)?;
            Ok(Accel::Cuda { required: true })
        }
        Device::Auto if gpu_visible() => {
            model::init_runtime(&cache.onnxruntime_gpu_library()?)?;
            tracing::info!(
                "NVIDIA GPU found: models run on CUDA where ONNX Runtime can, else on the CPU"
            );
            Ok(Accel::Cuda { required: false })
        }
        Device::Auto => {
            tracing::info!("no NVIDIA GPU found: models run on the CPU (runtime.device: auto)");
            model::init_runtime(&cache.onnxruntime_library()?)?;
            Ok(Accel::Cpu)
        }
    }
}

/// Shorter page side, in pixels, below which a page is scaled up for the
/// detector. RapidOCR scales every page up to 736 px; a 460 px wide receipt
/// then costs the detector 2.4 times the pixels for the same word recall on
/// `scripts/eval-ocr --limit 20` (0.900 at 0 against 0.901 at 736, at 0.68
/// against 0.59 pages/s). Pages smaller than this still get scaled up, so
/// thumbnails keep readable text.
const DET_MIN_SIDE: u32 = 480;

/// The detector's settings for a pipeline.
pub fn detector_settings(pipeline: &Pipeline) -> DetectorSettings {
    DetectorSettings {
        det: DetParams {
            max_side_len: pipeline.ocr.det_max_side,
            limit_side_len: DET_MIN_SIDE,
            ..DetParams::default()
        },
        max_side: pipeline.ocr.det_max_side,
        tile_overlap: 200,
        deskew: pipeline.normalise.deskew,
        max_skew_deg: pipeline.normalise.max_skew_deg,
        direction: pipeline.normalise.direction,
        batch_size: pipeline.ocr.batch_size,
    }
}

/// Builds the detector and recogniser factories for a pipeline.
pub fn ocr_resources(
    pipeline: &Pipeline,
    pdfium: PathBuf,
    files: OcrFiles,
    accel: Accel,
) -> Resources {
    let crate::pipeline::OcrThreads {
        det_threads,
        rec_threads,
        ..
    } = crate::pipeline::ocr_threads(pipeline.runtime.threads);
    let settings = detector_settings(pipeline);
    let model_ids = files.ids();
    let f = files.clone();
    let detector = Arc::new(move || -> anyhow::Result<Detector> {
        let det = OrtModel::load(&f.det, det_threads, accel, true)?;
        let cls = if settings.direction {
            Some(Box::new(OrtModel::load(&f.cls, 1, accel, false)?) as Box<dyn model::Infer>)
        } else {
            None
        };
        let detector = Detector::new(Box::new(det), cls, settings.clone());
        match &f.orientation {
            // On the detector's threads: it runs just before detection, in
            // the same worker, on the same page.
            Some(path) => Ok(detector.with_orienter(orienter(path, det_threads, accel)?)),
            None => Ok(detector),
        }
    });
    let f = files;
    let recogniser = Arc::new(move || -> anyhow::Result<Recogniser> {
        let rec = OrtModel::load(&f.rec, rec_threads, accel, true)?;
        let meta = rec.metadata("character").ok_or_else(|| {
            anyhow::anyhow!(
                "recognition model {} has no `character` metadata (its dictionary)",
                f.rec.display()
            )
        })?;
        let dict = recognise::parse_dictionary(&meta);
        // PP-OCRv4's recogniser drops the spaces between words; v6 keeps them.
        let word_gaps = f.engine == OcrEngine::PpOcrV4;
        Ok(Recogniser::new(Box::new(rec), dict, word_gaps))
    });
    Resources {
        pdfium: Some(pdfium),
        detector: Some(detector),
        recogniser: Some(recogniser),
        extractor: None,
        layout: None,
        model_ids,
    }
}
