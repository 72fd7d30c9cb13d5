//! The layout model's ONNX Runtime session: the only code of the layout
//! stage that touches ONNX Runtime. [`LayoutInfer`] is the seam; the
//! pre- and post-processing around it ([`super::decode`]) are pure.

use super::decode::{INPUT_H, INPUT_W};
use crate::ocr::model::{session_builder, Accel, InferError};
use ort::session::Session;
use ort::value::Tensor;
use std::path::Path;

/// A layout model: one 1x3xHxW input, the raw outputs back.
pub trait LayoutInfer: Send {
    /// Runs the model on one page's input tensor (1x3x800x608, row-major)
    /// and returns every output's data, in the graph's output order.
    fn run(&mut self, input: Vec<f32>) -> Result<Vec<Vec<f32>>, InferError>;
    /// The class names, in the order of the score outputs' last axis.
    fn classes(&self) -> &[String];
}

/// The PicoDet layout model in an ONNX Runtime session.
pub struct OrtLayout {
    name: String,
    session: Session,
    classes: Vec<String>,
}

impl OrtLayout {
    /// Loads the model on `threads` intra-op threads. Its class names come
    /// from the metadata key `character`, one per line; a model without
    /// them is refused. [`crate::ocr::model::init_runtime`] must have
    /// succeeded first.
    pub fn load(path: &Path, threads: usize, accel: Accel) -> Result<Self, InferError> {
        let fail = |message: String| InferError::Load {
            path: path.to_path_buf(),
            message,
        };
        // One input shape for every call: the arena is reused as it is.
        let session = session_builder(threads, accel, true)
            .map_err(fail)?
            .commit_from_file(path)
            .map_err(|e| fail(e.to_string()))?;
        let classes: Vec<String> = session
            .metadata()
            .ok()
            .and_then(|m| m.custom("character"))
            .map(|c| {
                c.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if classes.is_empty() {
            return Err(fail(
                "no class names in the metadata key `character`".into(),
            ));
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            name,
            session,
            classes,
        })
    }
}

impl LayoutInfer for OrtLayout {
    fn run(&mut self, input: Vec<f32>) -> Result<Vec<Vec<f32>>, InferError> {
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
        let shape = vec![1usize, 3, INPUT_H as usize, INPUT_W as usize];
        let tensor = Tensor::from_array((shape, input)).map_err(|e| fail(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![input_name.as_str() => tensor])
            .map_err(|e| fail(e.to_string()))?;
        let mut all = Vec::with_capacity(outputs.len());
        for value in outputs.values() {
            let (_, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| fail(e.to_string()))?;
            all.push(data.to_vec());
        }
        Ok(all)
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }
}
