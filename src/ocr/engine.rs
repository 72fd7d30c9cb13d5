//! Page-level OCR: detection (with deskew and tiling) and crop preparation in
//! [`Detector`], batched recognition in [`Recogniser`]. Models are reached only
//! through [`Infer`].

use super::detect::{self, DetParams};
use super::model::{Infer, InferError};
use super::orient::{Orienter, PageOrientation};
use super::{geometry, recognise, tile};
use crate::normalise::{self, QuarterTurn};
use crate::types::{DetBox, Point, Quad};
use image::RgbImage;

/// Detector settings beyond the DB post-processing parameters.
#[derive(Clone, Debug)]
pub struct DetectorSettings {
    pub det: DetParams,
    /// Longest side (pixels) the detector sees. Pages up to twice this are
    /// scaled down to it, as RapidOCR does; larger ones are cut into tiles
    /// of this size, so small text is not shrunk by more than half.
    pub max_side: u32,
    /// Overlap between neighbouring tiles, pixels. 200 px holds a text line
    /// of up to ~150 px height whole in at least one tile vertically.
    pub tile_overlap: u32,
    pub deskew: bool,
    pub max_skew_deg: f32,
    /// Run the 180° direction classifier on the page's lines and turn the
    /// page when most say it is upside down.
    pub direction: bool,
    /// Crops per classifier call.
    pub batch_size: usize,
}

/// A text region cut out of the page, upright, ready for recognition.
pub struct Crop {
    pub image: RgbImage,
    /// Where it sits on the original (not deskewed) page, in pixels.
    pub quad: Quad,
    pub det_score: f32,
}

pub struct DetectedPage {
    /// In reading order; their quads on the page as given, or on it turned
    /// half a turn when `half_turned`.
    pub crops: Vec<Crop>,
    /// The direction vote found the page upside down: the crops are turned
    /// upright and their quads are on the page turned half a turn.
    pub half_turned: bool,
    /// Skew corrected before detection, clockwise degrees.
    pub skew_deg: f32,
    /// Time spent deskewing, ms.
    pub normalise_ms: f64,
}

pub struct Detector {
    det: Box<dyn Infer>,
    cls: Option<Box<dyn Infer>>,
    orienter: Option<Orienter>,
    settings: DetectorSettings,
}

const CLS_H: usize = recognise::CLS_HEIGHT as usize;
const CLS_W: usize = recognise::CLS_WIDTH as usize;

/// Lines of a page the direction classifier looks at. It decides for the
/// whole page: a page is scanned upside down as a whole, while one line's
/// verdict is often wrong (on the 100 upright SROIE receipts, flipping
/// lines one by one cost 0.6 points of word recall).
const CLS_VOTERS: usize = 12;

impl Detector {
    pub fn new(
        det: Box<dyn Infer>,
        cls: Option<Box<dyn Infer>>,
        settings: DetectorSettings,
    ) -> Self {
        Self {
            det,
            cls,
            orienter: None,
            settings,
        }
    }

    /// With the whole-page orientation classifier (`normalise.orientation`).
    pub fn with_orienter(mut self, orienter: Orienter) -> Self {
        self.orienter = Some(orienter);
        self
    }

    /// What the orientation classifier says of `page`; `None` without one.
    /// The caller turns the page (see [`PageOrientation::upright_turn`])
    /// before [`Detector::detect_until`].
    pub fn orientation(&mut self, page: &RgbImage) -> Result<Option<PageOrientation>, InferError> {
        match self.orienter.as_mut() {
            Some(o) => Ok(o.classify(&[page])?.pop()),
            None => Ok(None),
        }
    }

    /// Finds the text regions of a page and cuts them out.
    pub fn detect(&mut self, page: &RgbImage) -> Result<DetectedPage, InferError> {
        self.detect_until(page, &|| false)
    }

    /// [`Detector::detect`], asking `stop` before every model call (each
    /// tile, the direction classifier) and giving up with
    /// [`InferError::Stopped`] when it says so.
    pub fn detect_until(
        &mut self,
        page: &RgbImage,
        stop: &dyn Fn() -> bool,
    ) -> Result<DetectedPage, InferError> {
        let s = &self.settings;
        let t = std::time::Instant::now();
        let (work, skew) = if s.deskew {
            normalise::deskew(page, s.max_skew_deg, 0.1)
        } else {
            (page.clone(), 0.0)
        };
        let normalise_ms = t.elapsed().as_secs_f64() * 1000.0;
        let (w, h) = work.dimensions();
        // Tiling a page only slightly over the limit gives tiles that
        // overlap on most of the page, and on SROIE receipts of 2,044-2,333
        // px it cost the header lines (011 and 017: 96 and 135 words read of
        // 141 and 182, against 119 and 170 scaled down in one piece).
        let tile_side = if w.max(h) <= s.max_side.saturating_mul(2) {
            0
        } else {
            s.max_side
        };
        let tiles = tile::plan_tiles(w, h, tile_side, s.tile_overlap);
        let mut found: Vec<(usize, DetBox)> = Vec::new();
        for (ti, t) in tiles.iter().enumerate() {
            if stop() {
                return Err(InferError::Stopped);
            }
            let view = if tiles.len() == 1 {
                None
            } else {
                Some(image::imageops::crop_imm(&work, t.x, t.y, t.w, t.h).to_image())
            };
            let img = view.as_ref().unwrap_or(&work);
            if tile::is_blank(img) {
                continue;
            }
            for mut b in self.detect_tile(img)? {
                for p in &mut b.quad {
                    p.x += t.x as f32;
                    p.y += t.y as f32;
                }
                found.push((ti, b));
            }
        }
        let mut boxes = if tiles.len() > 1 {
            tile::merge_across_seams(found)
        } else {
            found.into_iter().map(|(_, b)| b).collect()
        };
        geometry::sort_reading_order(&mut boxes);
        let unrotate =
            (skew != 0.0).then(|| normalise::PageRotation::new(page.width(), page.height(), skew));
        let mut crops: Vec<Crop> = boxes
            .iter()
            .map(|b| {
                let image = geometry::crop_quad(&work, &b.quad);
                let quad = match &unrotate {
                    Some(m) => b.quad.map(|p| m.to_original(p)),
                    None => b.quad,
                };
                Crop {
                    image,
                    quad,
                    det_score: b.score,
                }
            })
            .collect();
        let mut half_turned = false;
        if self.settings.direction {
            if stop() {
                return Err(InferError::Stopped);
            }
            half_turned = self.classify(&mut crops)?;
        }
        if half_turned {
            // The page is read turned: its lines' places are those of the
            // upright page, as `pages.rotation` will say.
            let (w, h) = page.dimensions();
            for c in &mut crops {
                c.quad = QuarterTurn::Cw180.turn_quad(&c.quad, w, h);
            }
        }
        Ok(DetectedPage {
            crops,
            half_turned,
            skew_deg: skew,
            normalise_ms,
        })
    }

    fn detect_tile(&mut self, img: &RgbImage) -> Result<Vec<DetBox>, InferError> {
        let (w, h) = img.dimensions();
        if w < 4 || h < 4 {
            return Ok(Vec::new());
        }
        let (iw, ih) = detect::det_input_size(w, h, &self.settings.det);
        let mut input = vec![0f32; 3 * iw as usize * ih as usize];
        detect::fill_det_input(img, iw, ih, &mut input).map_err(|e| InferError::Run {
            model: "det".into(),
            message: e.to_string(),
        })?;
        let (shape, prob) = self.det.run(&[1, 3, ih as usize, iw as usize], input)?;
        let (mh, mw) = match shape.as_slice() {
            [_, _, mh, mw] => (*mh, *mw),
            other => {
                return Err(InferError::Run {
                    model: "det".into(),
                    message: format!("unexpected output shape {other:?}"),
                })
            }
        };
        let map = ndarray::ArrayView2::from_shape((mh, mw), &prob[..mh * mw]).map_err(|e| {
            InferError::Run {
                model: "det".into(),
                message: e.to_string(),
            }
        })?;
        Ok(detect::boxes_from_prob_map(map, w, h, &self.settings.det))
    }

    /// The direction vote; turns the crops (and their order) and says so
    /// when the page reads upside down.
    fn classify(&mut self, crops: &mut [Crop]) -> Result<bool, InferError> {
        let Some(cls) = self.cls.as_mut() else {
            return Ok(false);
        };
        // The voters: the lines with the most text (the widest for their
        // height), at most CLS_VOTERS of them.
        let mut voters: Vec<usize> = (0..crops.len()).collect();
        voters.sort_by_key(|&i| {
            let (w, h) = crops[i].image.dimensions();
            std::cmp::Reverse(u64::from(w) * 1024 / u64::from(h.max(1)))
        });
        voters.truncate(CLS_VOTERS);
        // (voter, columns) for every window the classifier looks at.
        let windows: Vec<(usize, (u32, u32))> = voters
            .iter()
            .enumerate()
            .flat_map(|(v, &i)| {
                let (w, h) = crops[i].image.dimensions();
                recognise::cls_windows(w, h)
                    .into_iter()
                    .map(move |x| (v, x))
            })
            .collect();
        // Per voter: summed "0" and "180" probabilities, windows seen.
        let mut votes = vec![(0f32, 0f32, 0u32); voters.len()];
        let batch = self.settings.batch_size.max(1);
        let per = 3 * CLS_H * CLS_W;
        for chunk in windows.chunks(batch) {
            let n = chunk.len();
            let mut input = vec![0f32; n * per];
            for (slot, &(v, (x0, x1))) in input.chunks_exact_mut(per).zip(chunk) {
                let image = &crops[voters[v]].image;
                if (x0, x1) == (0, image.width()) {
                    recognise::fill_cls_input(image, slot);
                } else {
                    let part =
                        image::imageops::crop_imm(image, x0, 0, x1 - x0, image.height()).to_image();
                    recognise::fill_cls_input(&part, slot);
                }
            }
            let (shape, out) = cls.run(&[n, 3, CLS_H, CLS_W], input)?;
            let classes = shape.get(1).copied().unwrap_or(0);
            if classes < 2 || out.len() < n * classes {
                return Err(InferError::Run {
                    model: "cls".into(),
                    message: format!("unexpected output shape {shape:?}"),
                });
            }
            for (p, &(v, _)) in out.chunks_exact(classes).zip(chunk) {
                let v = &mut votes[v];
                *v = (v.0 + p[0], v.1 + p[1], v.2 + 1);
            }
        }
        let upside_down = votes
            .iter()
            .filter(|(p0, p180, seen)| {
                let k = (*seen).max(1) as f32;
                recognise::cls_is_upside_down(&[p0 / k, p180 / k], recognise::CLS_THRESH)
            })
            .count();
        if recognise::page_is_upside_down(upside_down, voters.len()) {
            for c in crops.iter_mut() {
                image::imageops::rotate180_in_place(&mut c.image);
            }
            // Reading order was taken on the page as scanned: turned half a
            // turn, the last line is the first.
            crops.reverse();
            return Ok(true);
        }
        Ok(false)
    }
}

use recognise::REC_HEIGHT;

pub struct Recogniser {
    rec: Box<dyn Infer>,
    dict: Vec<String>,
    word_gaps: bool,
    /// Widest input fed to the model; wider crops are squeezed. 3200 px holds
    /// a full line across a 300-dpi A4 page at 48 px height.
    max_width: u32,
}

impl Recogniser {
    pub fn new(rec: Box<dyn Infer>, dict: Vec<String>, word_gaps: bool) -> Self {
        Self {
            rec,
            dict,
            word_gaps,
            max_width: 3200,
        }
    }

    /// Input width a crop will get; the batcher groups crops by it.
    pub fn input_width(&self, img: &RgbImage) -> u32 {
        let (w, h) = img.dimensions();
        recognise::rec_input_width(w, h, REC_HEIGHT, self.max_width)
    }

    /// Recognises one batch; crops should have similar widths (the batch is
    /// padded to the widest).
    pub fn recognise(
        &mut self,
        crops: &[&RgbImage],
    ) -> Result<Vec<recognise::Decoded>, InferError> {
        self.recognise_padded(crops, 0)
    }

    /// [`Recogniser::recognise`] with the batch padded to at least
    /// `min_width` input pixels. A crop tried again on its own after its
    /// batch failed is padded as it was in the batch, so it reads the same
    /// as it would have there (the padding changes what the model reads at
    /// a line's end, e.g. a word gap).
    pub fn recognise_padded(
        &mut self,
        crops: &[&RgbImage],
        min_width: u32,
    ) -> Result<Vec<recognise::Decoded>, InferError> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let widths: Vec<u32> = crops.iter().map(|c| self.input_width(c)).collect();
        let padded = widths
            .iter()
            .copied()
            .max()
            .unwrap_or(REC_HEIGHT)
            .max(min_width);
        let padded = recognise::bucket_width(padded, 32, self.max_width.max(32));
        let per = 3 * REC_HEIGHT as usize * padded as usize;
        let mut input = vec![0f32; crops.len() * per];
        for (i, (c, w)) in crops.iter().zip(&widths).enumerate() {
            recognise::fill_rec_input(
                c,
                REC_HEIGHT,
                *w,
                padded,
                &mut input[i * per..(i + 1) * per],
            );
        }
        let n = crops.len();
        let (shape, out) = self
            .rec
            .run(&[n, 3, REC_HEIGHT as usize, padded as usize], input)?;
        let (t, c) = match shape.as_slice() {
            [_, t, c] => (*t, *c),
            other => {
                return Err(InferError::Run {
                    model: "rec".into(),
                    message: format!("unexpected output shape {other:?}"),
                })
            }
        };
        let mut results = Vec::with_capacity(n);
        for i in 0..n {
            let slice = out.get(i * t * c..(i + 1) * t * c).unwrap_or(&[]);
            let view =
                ndarray::ArrayView2::from_shape((t, c), slice).map_err(|e| InferError::Run {
                    model: "rec".into(),
                    message: e.to_string(),
                })?;
            results.push(recognise::ctc_decode(view, &self.dict, self.word_gaps));
        }
        Ok(results)
    }
}

/// The four corners of a quad as a flat `[x0,y0,…,x3,y3]` polygon.
pub fn polygon(q: &Quad) -> Vec<f32> {
    q.iter().flat_map(|p: &Point| [p.x, p.y]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A detector model that records input shapes and finds no text.
    struct Shapes(Arc<Mutex<Vec<Vec<usize>>>>);

    impl Infer for Shapes {
        fn run(
            &mut self,
            shape: &[usize],
            _data: Vec<f32>,
        ) -> Result<(Vec<usize>, Vec<f32>), InferError> {
            self.0
                .lock()
                .map_err(|_| InferError::Run {
                    model: "det".into(),
                    message: "poisoned".into(),
                })?
                .push(shape.to_vec());
            let (h, w) = (shape[2], shape[3]);
            Ok((vec![1, 1, h, w], vec![0.0; h * w]))
        }
    }

    /// The detector's input shapes for a page with ink everywhere (a
    /// check pattern), or a blank one.
    fn detector_calls(width: u32, height: u32) -> Vec<Vec<usize>> {
        detector_calls_on(width, height, true)
    }

    fn detector_calls_on(width: u32, height: u32, ink: bool) -> Vec<Vec<usize>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let settings = DetectorSettings {
            det: DetParams {
                limit_side_len: 480,
                ..DetParams::default()
            },
            max_side: 2000,
            tile_overlap: 200,
            deskew: false,
            max_skew_deg: 0.0,
            direction: false,
            batch_size: 4,
        };
        let mut d = Detector::new(Box::new(Shapes(seen.clone())), None, settings);
        let page = RgbImage::from_fn(width, height, |x, y| {
            let dark = ink && (x / 8 + y / 8) % 2 == 0;
            image::Rgb(if dark { [0, 0, 0] } else { [255, 255, 255] })
        });
        let found = d.detect(&page).expect("detect");
        assert!(found.crops.is_empty());
        let calls = seen.lock().expect("lock").clone();
        calls
    }

    #[test]
    fn pages_up_to_twice_the_limit_are_scaled_down_whole() {
        // A tall SROIE receipt: one call, its long side scaled to 2000 (and
        // rounded to a multiple of 32).
        assert_eq!(detector_calls(752, 2214), vec![vec![1, 3, 1984, 672]]);
        assert_eq!(detector_calls(1600, 4000).len(), 1);
    }

    #[test]
    fn pages_over_twice_the_limit_are_tiled() {
        let calls = detector_calls(4400, 900);
        assert!(calls.len() >= 3, "{calls:?}");
        assert!(
            calls.iter().all(|s| s[2] <= 2000 && s[3] <= 2000),
            "{calls:?}"
        );
    }

    #[test]
    fn a_blank_page_or_tile_is_not_given_to_the_detector() {
        assert!(detector_calls_on(752, 2214, false).is_empty());
        assert!(detector_calls_on(4400, 900, false).is_empty());
    }
}
