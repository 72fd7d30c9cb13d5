//! The layout model's ONNX Runtime session: the only code of the layout
//! stage that touches ONNX Runtime. [`LayoutInfer`] is the seam; the
//! pre- and post-processing around it ([`super::decode`]) are pure.

use super::decode::{INPUT_H, INPUT_W};
use crate::ocr::model::{Accel, InferError, OrtModel};
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
    model: OrtModel,
    classes: Vec<String>,
}

impl OrtLayout {
    /// Loads the model on `threads` intra-op threads. Its class names come
    /// from the metadata key `character`, one per line; a model without
    /// them is refused. [`crate::ocr::model::init_runtime`] must have
    /// succeeded first.
    pub fn load(path: &Path, threads: usize, accel: Accel) -> Result<Self, InferError> {
        // One input shape for every call: the arena is reused as it is.
        let model = OrtModel::load(path, threads, accel, true)?;
        let classes: Vec<String> = model
            .metadata("character")
            .map(|c| {
                c.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if classes.is_empty() {
            return Err(InferError::Load {
                path: path.to_path_buf(),
                message: "no class names in the metadata key `character`".into(),
            });
        }
        Ok(Self { model, classes })
    }
}

impl LayoutInfer for OrtLayout {
    fn run(&mut self, input: Vec<f32>) -> Result<Vec<Vec<f32>>, InferError> {
        let shape = [1usize, 3, INPUT_H as usize, INPUT_W as usize];
        self.model.run_all(&shape, input)
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }
}
