//! The only code that touches ONNX Runtime.
//!
//! [`Infer`] is the seam: the OCR engine calls models through it, so tests can
//! swap in a fake. [`OrtModel`] is the real thing.

use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use ort::value::Tensor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Debug, Clone, thiserror::Error)]
pub enum InferError {
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    Runtime { path: PathBuf, message: String },
    #[error("cannot load model {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("model {model}: {message}")]
    Run { model: String, message: String },
    /// The caller's stop check said so between two model calls (a page
    /// over its document's time budget).
    #[error("stopped between model calls")]
    Stopped,
}

/// A model with one f32 input and one f32 output.
pub trait Infer: Send {
    /// Runs the model on a tensor of `shape` holding `data` (row-major);
    /// returns the first output's shape and data.
    fn run(
        &mut self,
        shape: &[usize],
        data: Vec<f32>,
    ) -> Result<(Vec<usize>, Vec<f32>), InferError>;
}

static ENV: OnceLock<Result<ort::environment::Environment, InferError>> = OnceLock::new();

/// Loads ONNX Runtime from `lib` once per process and sets up its environment.
pub fn init_runtime(lib: &Path) -> Result<(), InferError> {
    let env = ENV.get_or_init(|| {
        let fail = |message: String| InferError::Runtime {
            path: lib.to_path_buf(),
            message,
        };
        ort::init_from(lib)
            .map_err(|e| fail(e.to_string()))?
            .with_name("docpipe")
            .with_telemetry(false)
            .build()
            .map_err(|e| fail(e.to_string()))
    });
    env.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// Where a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Cpu,
    /// ONNX Runtime's CUDA execution provider; `required` makes a failure to
    /// register it an error instead of a quiet fallback to the CPU.
    Cuda {
        required: bool,
    },
}

/// A session builder for `threads` intra-op threads on `accel`, with the
/// settings docpipe uses for every model. `reuse_memory` keeps ONNX
/// Runtime's CPU arena, so a call reuses the buffers of the last one instead
/// of mapping (and the kernel zeroing) fresh pages. Errors are strings: ONNX
/// Runtime's builder errors are not `Send`.
pub fn session_builder(
    threads: usize,
    accel: Accel,
    reuse_memory: bool,
) -> Result<SessionBuilder, String> {
    let env = match ENV.get() {
        Some(Ok(env)) => env,
        Some(Err(e)) => return Err(e.to_string()),
        None => return Err("ONNX Runtime is not initialised".into()),
    };
    let builder = Session::builder(env)
        .map_err(|e| e.to_string())?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| e.to_string())?
        .with_intra_threads(threads.max(1))
        .map_err(|e| e.to_string())?
        .with_inter_threads(1)
        .map_err(|e| e.to_string())?
        // docpipe runs detection and recognition (and, with `threads: auto`,
        // more threads than cores) at once: threads that spin while they
        // wait for work take the cores the other stage needs. Without
        // spinning, `scripts/eval-ocr --limit 20` read 0.88-0.98 receipts/s
        // against 0.82-0.83.
        .with_intra_op_spinning(false)
        .map_err(|e| e.to_string())?;
    let builder = match accel {
        // Page and crop shapes change with every call. Memory patterns are
        // planned per shape and make resident memory grow with the archive
        // (3.1 GiB over 100 receipts), so they stay off. The arena alone is
        // bounded by the largest call. On the OCR models it was worth 26%
        // (`scripts/eval-ocr --limit 20`: 0.82 against 0.65 pages/s, peak
        // RSS 745-797 against 701-770 MiB): without it, a tenth of the run
        // went to the kernel's page faults.
        Accel::Cpu => builder
            .with_execution_providers([ort::ep::CPU::default()
                .with_arena_allocator(reuse_memory)
                .build()])
            .map_err(|e| e.to_string())?
            .with_memory_pattern(false)
            .map_err(|e| e.to_string())?,
        Accel::Cuda { required } => {
            // Heuristic algorithm choice: an exhaustive cuDNN search runs
            // again for every new input shape, and OCR crops come in many.
            let cuda = ort::ep::CUDA::default()
                .with_conv_algorithm_search(ort::ep::cuda::ConvAlgorithmSearch::Heuristic)
                .build();
            let cuda = if required {
                cuda.error_on_failure()
            } else {
                cuda
            };
            builder
                .with_execution_providers([cuda])
                .map_err(|e| format!("cannot use the CUDA execution provider: {e}"))?
        }
    };
    Ok(builder)
}

/// The process's ONNX Runtime environment, for the other modules that build
/// their own sessions (the VLM engine). ort allows one environment per
/// process, so everyone shares this one; [`init_runtime`] must have
/// succeeded first.
pub fn environment() -> Result<&'static ort::environment::Environment, InferError> {
    match ENV.get() {
        Some(Ok(env)) => Ok(env),
        Some(Err(e)) => Err(e.clone()),
        None => Err(InferError::Runtime {
            path: PathBuf::new(),
            message: "ONNX Runtime is not initialised".into(),
        }),
    }
}

/// An ONNX Runtime session with one input and one output.
pub struct OrtModel {
    name: String,
    session: Session,
}

impl OrtModel {
    /// Loads a model; `threads` is ONNX Runtime's intra-op thread count.
    /// [`init_runtime`] must have succeeded first.
    pub fn load(
        path: &Path,
        threads: usize,
        accel: Accel,
        reuse_memory: bool,
    ) -> Result<Self, InferError> {
        let fail = |message: String| InferError::Load {
            path: path.to_path_buf(),
            message,
        };
        let session = session_builder(threads, accel, reuse_memory)
            .map_err(fail)?
            .commit_from_file(path)
            .map_err(|e| fail(e.to_string()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self { name, session })
    }

    /// A custom metadata value of the model (e.g. the rec model's `character`).
    pub fn metadata(&self, key: &str) -> Option<String> {
        self.session.metadata().ok()?.custom(key)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl OrtModel {
    /// Runs the model on one input tensor and hands its outputs to `take`.
    fn with_outputs<T>(
        &mut self,
        shape: &[usize],
        data: Vec<f32>,
        take: impl FnOnce(&ort::session::SessionOutputs<'_>) -> Result<T, ort::Error>,
    ) -> Result<T, InferError> {
        let fail = |message: String| InferError::Run {
            model: self.name.clone(),
            message,
        };
        let input_name = self
            .session
            .inputs()
            .first()
            .map(|i| i.name().to_string())
            .ok_or_else(|| fail("model has no inputs".into()))?;
        let tensor = Tensor::from_array((shape.to_vec(), data)).map_err(|e| fail(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![input_name.as_str() => tensor])
            .map_err(|e| fail(e.to_string()))?;
        take(&outputs).map_err(|e| fail(e.to_string()))
    }

    /// Runs the model on one input tensor: every output's data, in the
    /// graph's output order (a model with several heads, e.g. the layout
    /// model's strides).
    pub fn run_all(
        &mut self,
        shape: &[usize],
        data: Vec<f32>,
    ) -> Result<Vec<Vec<f32>>, InferError> {
        self.with_outputs(shape, data, |outputs| {
            outputs
                .values()
                .map(|v| v.try_extract_tensor::<f32>().map(|(_, d)| d.to_vec()))
                .collect()
        })
    }
}

impl Infer for OrtModel {
    fn run(
        &mut self,
        shape: &[usize],
        data: Vec<f32>,
    ) -> Result<(Vec<usize>, Vec<f32>), InferError> {
        self.with_outputs(shape, data, |outputs| {
            let (out_shape, out) = outputs[0].try_extract_tensor::<f32>()?;
            let dims = out_shape.iter().map(|d| (*d).max(0) as usize).collect();
            Ok((dims, out.to_vec()))
        })
    }
}
