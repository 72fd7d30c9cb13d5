//! Text detection pre- and post-processing for PP-OCR DB detectors.
//!
//! Mirrors RapidOCR 3.x (`rapidocr/ch_ppocr_det/utils.py`: `DetPreProcess`,
//! `DBPostProcess` with `score_mode: fast`, and `filter_det_res`), with the
//! defaults of its `config.yaml`. The model call itself lives elsewhere; the
//! functions here work on images and arrays only.

use image::RgbImage;
use ndarray::ArrayView2;

use crate::ocr::geometry::{components, min_area_rect, order_quad, unclip_rect};
use crate::types::{DetBox, Point, Quad};

/// Knobs of the DB detector's pre- and post-processing.
#[derive(Clone, Debug, PartialEq)]
pub struct DetParams {
    /// Probability above which a map pixel is text, 0..1. Default 0.3
    /// (RapidOCR `config.yaml`, `Det.thresh`).
    pub thresh: f32,
    /// Minimum mean probability inside a box to keep it, 0..1. Default 0.5
    /// (RapidOCR `Det.box_thresh`; PaddleOCR's own default is 0.6 / 0.7).
    pub box_thresh: f32,
    /// Outward offset of each box, as `area * unclip_ratio / perimeter`.
    /// Default 1.6 (RapidOCR `Det.unclip_ratio`).
    pub unclip_ratio: f32,
    /// Most components examined per map; as with OpenCV's contour order, the
    /// bottom-most ones (by first pixel in raster order) are kept. Default
    /// 1000 (RapidOCR `Det.max_candidates`).
    pub max_candidates: usize,
    /// Boxes whose shorter side is below this, in map pixels, are dropped
    /// (and below `min_size + 2` after unclipping). Default 3 (hard-coded
    /// `min_size` in `DBPostProcess`).
    pub min_size: f32,
    /// Dilate the binary map with a 2x2 kernel before finding components.
    /// Default true (RapidOCR `Det.use_dilation`).
    pub use_dilation: bool,
    /// The shorter side of the detector input is scaled up to at least this
    /// many pixels (`limit_type: min`). Default 736 (RapidOCR
    /// `Det.limit_side_len`).
    pub limit_side_len: u32,
    /// The longer side of the detector input is capped at this many pixels
    /// (before rounding to 32). Default 2000 (RapidOCR `Global.max_side_len`).
    pub max_side_len: u32,
}

impl Default for DetParams {
    fn default() -> Self {
        Self {
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            max_candidates: 1000,
            min_size: 3.0,
            use_dilation: true,
            limit_side_len: 736,
            max_side_len: 2000,
        }
    }
}

/// Errors of detector input preparation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DetError {
    /// The output buffer does not hold `3 * width * height` values.
    #[error("detector input buffer has {got} values, expected {expected}")]
    BufferSize { expected: usize, got: usize },
    /// The page image has no pixels.
    #[error("page image is empty ({width}x{height})")]
    EmptyImage { width: u32, height: u32 },
}

/// The detector input size (width, height) for a page of `width` x `height`
/// pixels.
///
/// RapidOCR's rule with `limit_type: min`: scale up so the shorter side
/// reaches `limit_side_len` (never down), then scale down so the longer side
/// is at most `max_side_len`; truncate each side to whole pixels and round it
/// to the nearest multiple of 32 (ties to even, as Python's `round`), at
/// least 32. RapidOCR applies the cap first (`resize_image_within_bounds`)
/// and the upscale second, which can exceed the cap for very elongated pages;
/// here the cap wins. `(0, 0)` for an empty page.
pub fn det_input_size(width: u32, height: u32, p: &DetParams) -> (u32, u32) {
    if width == 0 || height == 0 {
        return (0, 0);
    }
    let (w, h) = (width as f64, height as f64);
    let mut ratio = 1.0f64;
    let short = w.min(h);
    if short < p.limit_side_len as f64 {
        ratio = p.limit_side_len as f64 / short;
    }
    let long = w.max(h) * ratio;
    if p.max_side_len > 0 && long > p.max_side_len as f64 {
        ratio = p.max_side_len as f64 / w.max(h);
    }
    let round32 = |v: f64| -> u32 {
        let v = (v * ratio).floor();
        let r = (v / 32.0).round_ties_even() * 32.0;
        r.clamp(32.0, u32::MAX as f64 - 31.0) as u32
    };
    (round32(w), round32(h))
}

/// Resizes the page to `w` x `h` (bilinear, OpenCV `INTER_LINEAR` sampling
/// with half-pixel centres and no antialiasing) and writes it to `out` as
/// planar CHW f32 in **BGR** channel order (PaddleOCR models were trained on
/// OpenCV images), each value `(px / 255 - 0.5) / 0.5`, i.e. in -1..1.
///
/// `out.len()` must be `3 * w * h`.
pub fn fill_det_input(img: &RgbImage, w: u32, h: u32, out: &mut [f32]) -> Result<(), DetError> {
    let (sw, sh) = img.dimensions();
    let plane = w as usize * h as usize;
    let expected = plane.saturating_mul(3);
    if out.len() != expected {
        return Err(DetError::BufferSize {
            expected,
            got: out.len(),
        });
    }
    if plane == 0 {
        return Ok(());
    }
    if sw == 0 || sh == 0 {
        return Err(DetError::EmptyImage {
            width: sw,
            height: sh,
        });
    }
    let taps = |dst: u32, src: u32| -> Vec<(usize, usize, f32)> {
        let scale = src as f64 / dst as f64;
        (0..dst)
            .map(|d| {
                let s = (d as f64 + 0.5) * scale - 0.5;
                let s0 = s.floor();
                let (i0, f) = if s0 < 0.0 {
                    (0usize, 0.0)
                } else if s0 >= (src - 1) as f64 {
                    ((src - 1) as usize, 0.0)
                } else {
                    (s0 as usize, (s - s0) as f32)
                };
                (i0, (i0 + 1).min(src as usize - 1), f)
            })
            .collect()
    };
    let xt = taps(w, sw);
    let yt = taps(h, sh);
    let src = img.as_raw();
    let stride = sw as usize * 3;
    let (b_plane, rest) = out.split_at_mut(plane);
    let (g_plane, r_plane) = rest.split_at_mut(plane);
    let norm = |v: f32| v * (1.0 / 127.5) - 1.0;
    for (y, &(y0, y1, fy)) in yt.iter().enumerate() {
        let (Some(row0), Some(row1)) = (
            src.get(y0 * stride..(y0 + 1) * stride),
            src.get(y1 * stride..(y1 + 1) * stride),
        ) else {
            continue;
        };
        let o = y * w as usize;
        let (bo, go, ro) = (
            &mut b_plane[o..o + w as usize],
            &mut g_plane[o..o + w as usize],
            &mut r_plane[o..o + w as usize],
        );
        for (x, &(x0, x1, fx)) in xt.iter().enumerate() {
            let (a, b) = (x0 * 3, x1 * 3);
            let mut px = [0f32; 3];
            for (c, v) in px.iter_mut().enumerate() {
                let top = row0[a + c] as f32 + (row0[b + c] as f32 - row0[a + c] as f32) * fx;
                let bot = row1[a + c] as f32 + (row1[b + c] as f32 - row1[a + c] as f32) * fx;
                *v = top + (bot - top) * fy;
            }
            ro[x] = norm(px[0]);
            go[x] = norm(px[1]);
            bo[x] = norm(px[2]);
        }
    }
    Ok(())
}

/// DB post-processing: text boxes from the detector's probability map
/// (`H` x `W`, values 0..1), in the coordinates of a `src_w` x `src_h` page.
///
/// As RapidOCR's `DBPostProcess` (`score_mode: fast`) + `filter_det_res`:
/// threshold at `thresh` -> optional 2x2 dilation -> 8-connected components
/// (the last `max_candidates`, as OpenCV lists them) -> minimum-area
/// rectangle, dropped when its
/// short side is < `min_size` -> score = mean probability over the pixels of
/// the rectangle, dropped when < `box_thresh` -> unclip by `unclip_ratio` ->
/// minimum-area rectangle, dropped when its short side is < `min_size + 2` ->
/// scale to the page, round to whole pixels, clip to the page -> order
/// clockwise from the top-left ([`order_quad`]) -> drop boxes whose width or
/// height is <= 3 page pixels.
///
/// Boxes come in component order (top of the page first); sort them with
/// [`crate::ocr::geometry::sort_reading_order`]. O(map pixels) plus a little
/// per component. Empty for an empty map or page.
pub fn boxes_from_prob_map(
    prob: ArrayView2<f32>,
    src_w: u32,
    src_h: u32,
    p: &DetParams,
) -> Vec<DetBox> {
    let (h, w) = prob.dim();
    if h == 0 || w == 0 || src_w == 0 || src_h == 0 {
        return Vec::new();
    }
    let prob = prob.as_standard_layout();
    let Some(data) = prob.as_slice() else {
        return Vec::new();
    };
    let mask = binarize(data, w, p.thresh, p.use_dilation);
    let (sx, sy) = (src_w as f64 / w as f64, src_h as f64 / h as f64);
    let mut out = Vec::new();
    // cv2.findContours lists contours last-found first, so DB keeps the
    // bottom-most `max_candidates` components; report them top-first.
    let comps = components(&mask, w, h);
    let skip = comps.len().saturating_sub(p.max_candidates);
    for comp in &comps[skip..] {
        let Some(rect) = min_area_rect(&comp.points) else {
            continue;
        };
        if below(rect.short_side(), p.min_size) {
            continue;
        }
        let quad = rect.corners();
        let score = box_score_fast(data, w, h, &quad);
        if below(score, p.box_thresh) {
            continue;
        }
        let Some(big) = unclip_rect(&quad, p.unclip_ratio) else {
            continue;
        };
        if below(big.short_side(), p.min_size + 2.0) {
            continue;
        }
        // Scale to the page, round (numpy rounds ties to even), clip to
        // 0..=size, then filter_det_res clips to 0..=size-1.
        let to_page = |v: f32, s: f64, max: u32| -> f32 {
            let v = (v as f64 * s).round_ties_even().clamp(0.0, max as f64);
            v.min(max.saturating_sub(1) as f64) as f32
        };
        let corners = big.corners();
        let q: Quad = corners.map(|c| Point::new(to_page(c.x, sx, src_w), to_page(c.y, sy, src_h)));
        if q.iter().any(|c| !c.x.is_finite() || !c.y.is_finite()) {
            continue;
        }
        let q = order_quad(q);
        let side = |a: Point, b: Point| (a.x - b.x).hypot(a.y - b.y).trunc();
        if side(q[0], q[1]) <= 3.0 || side(q[0], q[3]) <= 3.0 {
            continue;
        }
        out.push(DetBox { quad: q, score });
    }
    out
}

/// `a < b`, and also true when either is NaN (a NaN score or size drops the
/// box, where Python's `box_thresh > score` would keep it).
fn below(a: f32, b: f32) -> bool {
    !matches!(
        a.partial_cmp(&b),
        Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
    )
}

/// `prob > thresh` (NaN is background), then optionally OpenCV's
/// `cv2.dilate` with a 2x2 kernel (anchor at its centre (1,1)): a pixel is
/// set when it or its left, upper or upper-left neighbour is.
fn binarize(data: &[f32], w: usize, thresh: f32, dilate: bool) -> Vec<bool> {
    let mut mask: Vec<bool> = data.iter().map(|&v| v > thresh).collect();
    if !dilate {
        return mask;
    }
    let mut above = vec![false; w];
    let mut cur = vec![false; w];
    for row in mask.chunks_exact_mut(w) {
        cur.copy_from_slice(row);
        let mut prev_or = false;
        for x in 0..w {
            let or = cur[x] | above[x];
            row[x] = or | prev_or;
            prev_or = or;
        }
        std::mem::swap(&mut above, &mut cur);
    }
    mask
}

/// RapidOCR's `box_score_fast`: the mean of `prob` over the pixels that
/// `cv2.fillPoly` paints for the quad (corners truncated toward zero, as
/// `.astype(np.int32)` does) inside the quad's bounding box clipped to the
/// map. NaN when no pixel qualifies or the quad is absurdly large.
fn box_score_fast(data: &[f32], w: usize, h: usize, quad: &Quad) -> f32 {
    let clip = |v: f64, max: usize| v.clamp(0.0, (max - 1) as f64) as i64;
    let xs = quad.map(|p| p.x as f64);
    let ys = quad.map(|p| p.y as f64);
    if xs
        .iter()
        .chain(&ys)
        .any(|v| !v.is_finite() || v.abs() > 1e7)
    {
        return f32::NAN;
    }
    let min4 = |a: [f64; 4]| a.iter().copied().fold(f64::INFINITY, f64::min);
    let max4 = |a: [f64; 4]| a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let xmin = clip(min4(xs).floor(), w);
    let xmax = clip(max4(xs).ceil(), w);
    let ymin = clip(min4(ys).floor(), h);
    let ymax = clip(max4(ys).ceil(), h);
    // Polygon in mask coordinates (origin at xmin, ymin), truncated.
    let poly: [(i64, i64); 4] =
        std::array::from_fn(|i| ((xs[i] - xmin as f64) as i64, (ys[i] - ymin as f64) as i64));
    let rows = (ymax - ymin + 1) as usize;
    let spans = fill_poly_spans(&poly, rows);
    let mw = xmax - xmin + 1;
    let mut sum = 0.0f64;
    let mut n = 0usize;
    for (r, &(lo, hi)) in spans.iter().enumerate() {
        let (lo, hi) = (lo.max(0), hi.min(mw - 1));
        if lo > hi {
            continue;
        }
        let start = (ymin as usize + r) * w + (xmin + lo) as usize;
        let end = start + (hi - lo) as usize;
        if let Some(vals) = data.get(start..=end) {
            sum += vals.iter().map(|&v| v as f64).sum::<f64>();
            n += vals.len();
        }
    }
    if n == 0 {
        f32::NAN
    } else {
        (sum / n as f64) as f32
    }
}

/// Per-row inclusive x spans (`lo > hi` when empty) of the pixels that
/// OpenCV's `fillPoly` paints for a convex integer polygon, for rows
/// `0..rows`: the span between the 8-connected lines drawn along its edges.
/// Line pixels follow OpenCV's Bresenham, which steps along the major axis
/// from the endpoint with the smaller x; a minor coordinate exactly halfway
/// between two pixels rounds towards that endpoint. Matches `cv2.fillPoly`
/// pixel for pixel for polygons inside the mask (OpenCV clips lines that
/// leave it slightly differently).
fn fill_poly_spans(poly: &[(i64, i64)], rows: usize) -> Vec<(i64, i64)> {
    let mut spans = vec![(i64::MAX, i64::MIN); rows];
    let mut put = |x: i64, y: i64| {
        if y >= 0 && (y as usize) < rows {
            let s = &mut spans[y as usize];
            s.0 = s.0.min(x);
            s.1 = s.1.max(x);
        }
    };
    let half_down = |v: f64| (v - 0.5).ceil() as i64;
    let half_up = |v: f64| (v + 0.5).floor() as i64;
    for i in 0..poly.len() {
        let (ax, ay) = poly[i];
        let (bx, by) = poly[(i + 1) % poly.len()];
        let (dx, dy) = (bx - ax, by - ay);
        if dy != 0 && dy.abs() >= dx.abs() {
            // Steep: one pixel per row; the minor axis x ties round down
            // (towards the endpoint with the smaller x).
            let (y0, y1) = (ay.min(by).max(0), ay.max(by).min(rows as i64 - 1));
            for y in y0..=y1 {
                let x = ax as f64 + (dx * (y - ay)) as f64 / dy as f64;
                put(half_down(x), y);
            }
        } else if dx != 0 {
            // Shallow: one pixel per column; y ties round towards the y of
            // the endpoint with the smaller x.
            let (sy, ey) = if ax < bx { (ay, by) } else { (by, ay) };
            for x in ax.min(bx)..=ax.max(bx) {
                let y = ay as f64 + (dy * (x - ax)) as f64 / dx as f64;
                put(x, if ey > sy { half_down(y) } else { half_up(y) });
            }
        } else {
            put(ax, ay);
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// A `w` x `h` map, `val` inside the `bw` x `bh` rectangle rotated by
    /// `deg` around (cx, cy) (pixel centres), 0 elsewhere.
    fn rect_map(w: usize, h: usize, r: (f64, f64, f64, f64, f64), val: f32) -> Array2<f32> {
        let (cx, cy, bw, bh, deg) = r;
        let (s, c) = deg.to_radians().sin_cos();
        Array2::from_shape_fn((h, w), |(y, x)| {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let (u, v) = (dx * c + dy * s, -dx * s + dy * c);
            if u.abs() <= bw / 2.0 && v.abs() <= bh / 2.0 {
                val
            } else {
                0.0
            }
        })
    }

    fn quad(pts: [[f32; 2]; 4]) -> Quad {
        pts.map(|[x, y]| Point::new(x, y))
    }

    #[test]
    fn det_params_defaults_are_rapidocr() {
        let p = DetParams::default();
        assert_eq!(
            (p.thresh, p.box_thresh, p.unclip_ratio, p.min_size),
            (0.3, 0.5, 1.6, 3.0)
        );
        assert_eq!((p.max_candidates, p.use_dilation), (1000, true));
        assert_eq!((p.limit_side_len, p.max_side_len), (736, 2000));
    }

    #[test]
    fn det_input_size_table() {
        struct Case {
            page: (u32, u32),
            want: (u32, u32),
        }
        let cases = [
            // Shorter side already >= 736: only rounding (1710/32 = 53.4).
            Case {
                page: (930, 1710),
                want: (928, 1696),
            },
            // Upscaled: 500x700 -> 736x1030 -> 736x1024.
            Case {
                page: (500, 700),
                want: (736, 1024),
            },
            // Capped: 2000x3000 -> 1333x2000; 62.5 rounds to even -> 1984.
            Case {
                page: (2000, 3000),
                want: (1344, 1984),
            },
            // Upscale then cap: a thin strip.
            Case {
                page: (100, 5000),
                want: (32, 1984),
            },
            Case {
                page: (10, 10),
                want: (736, 736),
            },
            Case {
                page: (1, 1),
                want: (736, 736),
            },
            Case {
                page: (0, 5),
                want: (0, 0),
            },
            Case {
                page: (1000, 1000),
                want: (992, 992),
            },
        ];
        let p = DetParams::default();
        for c in &cases {
            assert_eq!(
                det_input_size(c.page.0, c.page.1, &p),
                c.want,
                "{:?}",
                c.page
            );
        }
        let no_cap = DetParams {
            max_side_len: 0,
            ..p
        };
        assert_eq!(det_input_size(100, 5000, &no_cap), (736, 36800));
    }

    #[test]
    fn fill_det_input_same_size_is_bgr_normalised() {
        let img = RgbImage::from_vec(2, 1, vec![255, 0, 0, 0, 51, 255]).expect("2x1");
        let mut out = vec![9.0; 6];
        fill_det_input(&img, 2, 1, &mut out).expect("fill");
        let want = [-1.0, 1.0, -1.0, 51.0 / 127.5 - 1.0, 1.0, -1.0];
        for (g, w) in out.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn fill_det_input_resizes_like_cv2_linear() {
        // Upscale 2x1 -> 4x1: taps at -0.25 (clamped), 0.25, 0.75, 1.25
        // (clamped) give 0, 63.75, 191.25, 255.
        let img = RgbImage::from_vec(2, 1, vec![0, 0, 0, 255, 255, 255]).expect("2x1");
        let mut out = vec![0.0; 12];
        fill_det_input(&img, 4, 1, &mut out).expect("fill");
        let want = [0.0, 63.75, 191.25, 255.0].map(|v: f32| v / 127.5 - 1.0);
        for c in 0..3 {
            for x in 0..4 {
                assert!((out[c * 4 + x] - want[x]).abs() < 1e-5, "{out:?}");
            }
        }
        // Downscale 4x2 -> 2x1: each output averages a 2x2 block.
        let img = RgbImage::from_fn(4, 2, |x, y| {
            let v = (x * 40 + y * 10) as u8;
            image::Rgb([v, v, v])
        });
        let mut out = vec![0.0; 6];
        fill_det_input(&img, 2, 1, &mut out).expect("fill");
        let want = [25.0f32, 105.0].map(|v| v / 127.5 - 1.0);
        assert!((out[0] - want[0]).abs() < 1e-5 && (out[1] - want[1]).abs() < 1e-5);
    }

    #[test]
    fn fill_det_input_rejects_bad_buffers() {
        let img = RgbImage::new(3, 3);
        let mut out = vec![0.0; 10];
        assert_eq!(
            fill_det_input(&img, 2, 2, &mut out),
            Err(DetError::BufferSize {
                expected: 12,
                got: 10
            })
        );
        let mut none: Vec<f32> = Vec::new();
        assert_eq!(fill_det_input(&img, 0, 5, &mut none), Ok(()));
        let empty = RgbImage::new(0, 4);
        let mut out = vec![0.0; 12];
        assert_eq!(
            fill_det_input(&empty, 2, 2, &mut out),
            Err(DetError::EmptyImage {
                width: 0,
                height: 4
            })
        );
    }

    #[test]
    fn boxes_match_rapidocr_reference() {
        // Expected boxes and scores from RapidOCR 3.10 DBPostProcess (with
        // OpenCV and pyclipper) on the same synthetic maps.
        struct Case {
            name: &'static str,
            rect: (f64, f64, f64, f64, f64),
            src: (u32, u32),
            dilation: bool,
            want: Quad,
            score: f32,
        }
        let cases = [
            Case {
                name: "axis-aligned",
                rect: (149.5, 64.5, 99.0, 29.0, 0.0),
                src: (400, 300),
                dilation: true,
                want: quad([[82., 32.], [218., 32.], [218., 98.], [82., 98.]]),
                score: 0.862_344_3,
            },
            Case {
                name: "axis-aligned, no dilation",
                rect: (149.5, 64.5, 99.0, 29.0, 0.0),
                src: (400, 300),
                dilation: false,
                want: quad([[82., 32.], [217., 32.], [217., 97.], [82., 97.]]),
                score: 0.9,
            },
            Case {
                name: "scaled to a page twice the map",
                rect: (149.5, 64.5, 99.0, 29.0, 0.0),
                src: (800, 600),
                dilation: true,
                want: quad([[164., 64.], [436., 64.], [436., 196.], [164., 196.]]),
                score: 0.862_344_3,
            },
            Case {
                name: "rotated 15",
                rect: (200.0, 150.0, 160.0, 40.0, 15.0),
                src: (400, 300),
                dilation: true,
                want: quad([[109., 77.], [315., 133.], [291., 223.], [85., 167.]]),
                score: 0.839_886_2,
            },
            Case {
                name: "rotated -30, page 1.5x",
                rect: (200.0, 150.0, 160.0, 30.0, -30.0),
                src: (600, 450),
                dilation: true,
                want: quad([[140., 254.], [405., 101.], [460., 196.], [195., 349.]]),
                score: 0.823_970_2,
            },
            Case {
                name: "clipped at the page corner",
                rect: (20.0, 8.0, 50.0, 30.0, 0.0),
                src: (400, 300),
                dilation: true,
                want: quad([[0., 0.], [59., 0.], [59., 37.], [0., 37.]]),
                score: 0.845_617,
            },
        ];
        for c in &cases {
            let map = rect_map(400, 300, c.rect, 0.9);
            let p = DetParams {
                use_dilation: c.dilation,
                ..DetParams::default()
            };
            let got = boxes_from_prob_map(map.view(), c.src.0, c.src.1, &p);
            assert_eq!(got.len(), 1, "{}: {got:?}", c.name);
            assert_eq!(got[0].quad, c.want, "{}", c.name);
            assert!(
                (got[0].score - c.score).abs() < 1e-4,
                "{}: {}",
                c.name,
                got[0].score
            );
        }
    }

    #[test]
    fn boxes_from_empty_or_bad_maps() {
        let p = DetParams::default();
        let zeros = Array2::<f32>::zeros((64, 64));
        assert!(boxes_from_prob_map(zeros.view(), 64, 64, &p).is_empty());
        let none = Array2::<f32>::zeros((0, 10));
        assert!(boxes_from_prob_map(none.view(), 64, 64, &p).is_empty());
        let map = rect_map(100, 60, (50.0, 30.0, 40.0, 10.0, 0.0), 0.9);
        assert!(boxes_from_prob_map(map.view(), 0, 64, &p).is_empty());
        let nan = Array2::from_elem((32, 32), f32::NAN);
        assert!(boxes_from_prob_map(nan.view(), 32, 32, &p).is_empty());
        let inf = Array2::from_elem((32, 32), f32::INFINITY);
        // An all-text map is one box over the whole page; no panic.
        assert_eq!(boxes_from_prob_map(inf.view(), 32, 32, &p).len(), 1);
    }

    #[test]
    fn weak_and_tiny_blobs_are_dropped() {
        struct Case {
            name: &'static str,
            rect: (f64, f64, f64, f64, f64),
            val: f32,
        }
        let cases = [
            Case {
                name: "below thresh",
                rect: (50.0, 30.0, 40.0, 10.0, 0.0),
                val: 0.25,
            },
            Case {
                name: "above thresh, below box_thresh",
                rect: (50.0, 30.0, 40.0, 10.0, 0.0),
                val: 0.45,
            },
            Case {
                name: "2 px tall (3 after dilation, short side 2)",
                rect: (50.5, 30.5, 40.0, 1.0, 0.0),
                val: 0.9,
            },
        ];
        let p = DetParams::default();
        for c in &cases {
            let map = rect_map(100, 60, c.rect, c.val);
            let got = boxes_from_prob_map(map.view(), 100, 60, &p);
            assert!(got.is_empty(), "{}: {got:?}", c.name);
        }
    }

    #[test]
    fn several_boxes_and_max_candidates() {
        let mut map = rect_map(300, 200, (100.0, 30.0, 120.0, 16.0, 0.0), 0.9);
        map += &rect_map(300, 200, (150.0, 100.0, 200.0, 16.0, 0.0), 0.8);
        map += &rect_map(300, 200, (80.0, 160.0, 100.0, 20.0, 5.0), 0.7);
        let p = DetParams::default();
        let got = boxes_from_prob_map(map.view(), 300, 200, &p);
        assert_eq!(got.len(), 3, "{got:?}");
        let ys: Vec<f32> = got.iter().map(|b| b.quad[0].y).collect();
        assert!(ys[0] < ys[1] && ys[1] < ys[2], "top first: {ys:?}");
        for (b, s) in got.iter().zip([0.9f32, 0.8, 0.7]) {
            assert!(b.score > s * 0.8 && b.score <= s + 1e-6, "{b:?}");
        }
        // OpenCV lists contours bottom-up, so DB keeps the lowest ones.
        let one = DetParams {
            max_candidates: 1,
            ..p
        };
        let got1 = boxes_from_prob_map(map.view(), 300, 200, &one);
        assert_eq!(got1.len(), 1);
        assert_eq!(got1[0], got[2]);
    }

    #[test]
    fn strided_views_work() {
        let map = rect_map(200, 120, (100.0, 60.0, 120.0, 20.0, 10.0), 0.9);
        let p = DetParams::default();
        let want = boxes_from_prob_map(map.view(), 200, 120, &p);
        let transposed = map.t().to_owned();
        let got = boxes_from_prob_map(transposed.t(), 200, 120, &p);
        assert_eq!(got, want);
        assert_eq!(want.len(), 1);
    }

    #[test]
    fn dilation_grows_right_and_down() {
        let m = binarize(&[0.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0], 3, 0.3, true);
        let want = [false, false, false, false, true, true, false, true, true];
        assert_eq!(m, want);
    }

    #[test]
    fn fill_poly_spans_match_opencv() {
        // Rows painted by cv2.fillPoly for [[44,62],[28,38],[36,33],[52,57]]
        // (rows 33..=36) and a quad with exact half-pixel ties.
        let poly = [(44, 62), (28, 38), (36, 33), (52, 57)];
        let spans = fill_poly_spans(&poly, 63);
        assert_eq!(&spans[33..37], &[(36, 36), (34, 37), (33, 37), (31, 38)]);
        let tie = [(53, 47), (39, 27), (56, 15), (70, 35)];
        let spans = fill_poly_spans(&tie, 48);
        assert_eq!(spans[32].0, 42);
        assert_eq!(spans[42].0, 49);
        assert_eq!(spans[20].1, 59);
    }
}
