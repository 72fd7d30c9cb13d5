//! Layout regions: where a page's text blocks, titles, tables, figures,
//! headers and footers are, from a layout model, and the page's reading
//! order from them.
//!
//! - [`model`]: the ONNX Runtime seam ([`model::LayoutInfer`]).
//! - [`decode`]: pre-processing and the PicoDet post-processing (distance
//!   distributions, per-class NMS), pure.
//! - [`order`]: which region a line falls in and the reading order, pure.
//! - [`page`]: a page's regions made into rows, its lines given their
//!   region and its text put in reading order.

pub mod decode;
pub mod model;
pub mod order;
pub mod page;

use crate::config::LayoutConfig;
use crate::ocr::model::{Accel, InferError};
use crate::types::BBox;
use decode::{DecodeParams, Level, INPUT_H, INPUT_W, STRIDES};
use image::RgbImage;
use model::{LayoutInfer, OrtLayout};
use std::path::Path;

/// A region the model found on a page image, in that image's pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    /// The model's class name, e.g. `text`, `table`, `header`.
    pub class: String,
    /// Score in `[0, 1]`.
    pub score: f32,
    pub bbox: BBox,
}

/// Finds the regions of page images: pre-processing, one model call per
/// page (the model's graph fixes a batch of one), post-processing.
pub struct LayoutDetector {
    model: Box<dyn LayoutInfer>,
    params: DecodeParams,
}

impl LayoutDetector {
    pub fn new(model: Box<dyn LayoutInfer>, params: DecodeParams) -> Self {
        Self { model, params }
    }

    /// Loads the ONNX model at `path` with the section's thresholds.
    pub fn load(
        path: &Path,
        config: &LayoutConfig,
        threads: usize,
        accel: Accel,
    ) -> Result<Self, InferError> {
        let model = OrtLayout::load(path, threads, accel)?;
        Ok(Self::new(
            Box::new(model),
            DecodeParams::new(config.min_score, config.nms_iou),
        ))
    }

    /// The regions of `image`, in its pixels, best first within a class.
    pub fn detect(&mut self, image: &RgbImage) -> Result<Vec<Region>, InferError> {
        let fail = |message: String| InferError::Run {
            model: "layout".into(),
            message,
        };
        if image.width() == 0 || image.height() == 0 {
            return Err(fail("the page image is empty".into()));
        }
        let input = decode::preprocess(image);
        let outputs = self.model.run(input)?;
        let n = STRIDES.len();
        if outputs.len() != 2 * n {
            return Err(fail(format!(
                "{} outputs, expected {} (scores and box distributions at {n} strides)",
                outputs.len(),
                2 * n
            )));
        }
        // Scores at every stride first, then the distance logits, as
        // PicoDet exports them.
        let levels: Vec<Level> = STRIDES
            .iter()
            .enumerate()
            .map(|(i, &stride)| Level {
                stride,
                scores: &outputs[i],
                distances: &outputs[n + i],
            })
            .collect();
        let classes = self.model.classes();
        let found = decode::decode(
            &levels,
            classes.len(),
            (INPUT_W, INPUT_H),
            image.dimensions(),
            &self.params,
        )
        .map_err(|e| fail(e.to_string()))?;
        Ok(found
            .into_iter()
            .map(|d| Region {
                class: classes.get(d.class).cloned().unwrap_or_default(),
                score: d.score,
                bbox: d.bbox,
            })
            .collect())
    }
}
