//! Page normalisation: skew estimation, rotation by any angle, and the
//! mapping of points between the straightened and the original page.
//!
//! Angle conventions, in degrees, with page coordinates (x right, y down):
//! - [`rotate_rgb`] and [`PageRotation`] turn the image **clockwise** on
//!   screen for a positive angle (the usual rotation matrix applied in y-down
//!   coordinates).
//! - [`estimate_skew`] returns a positive angle when the text is rotated
//!   **counter-clockwise** (lines rise to the right). Rotating the page by
//!   that angle with [`rotate_rgb`] straightens it, which is what [`deskew`]
//!   does.

use crate::types::{Point, Quad};
use image::{GrayImage, Rgb, RgbImage};

/// White, the fill for corners uncovered by a rotation.
pub const WHITE: Rgb<u8> = Rgb([255, 255, 255]);

/// Width, px, the page is reduced to (by whole-pixel block averaging) before
/// the skew search: enough for about 0.1 deg on text lines, and keeps a
/// 1700x2200 page's search to a few milliseconds in a release build.
const SKEW_WORK_WIDTH: u32 = 800;
/// Coarse search step, degrees: a text line 800 px long smears over ~7 px at
/// 0.5 deg off, still well inside a line's profile peak.
const COARSE_STEP: f32 = 0.5;
/// Fine search step around the coarse best, degrees; the answer is then
/// refined by a parabola through the best fine step and its neighbours.
const FINE_STEP: f32 = 0.05;
/// The best coarse score must beat the median coarse score by this factor,
/// or the page has no clear line structure and the estimate is 0.
const MIN_PEAK_RATIO: f32 = 1.1;
/// Pages with fewer ink pixels than this (after downscaling) count as blank.
const MIN_INK_PIXELS: usize = 50;
/// Ink must differ from paper by this many grey levels (0..255), or the page
/// counts as blank.
const MIN_CONTRAST: u8 = 40;
/// At most this many ink pixels take part in the search (evenly subsampled).
const MAX_INK_PIXELS: usize = 250_000;

/// Estimates the small skew of a page of text, in degrees within
/// `±max_degrees` (cut to 0..=45; 10 is a good value): positive when the text
/// lines rise to the right (rotated counter-clockwise). Accurate to about
/// 0.1-0.2 deg on pages with several text lines.
///
/// Method: the page is reduced to about 800 px wide, binarised with Otsu's
/// threshold (dark ink on light paper; inverted when more than half the page
/// is "ink"), and the angle that maximises the sum of squared counts of ink
/// pixels per projected row (the variance of the row profile) is found with a
/// 0.5 deg coarse search, a 0.05 deg fine search and a parabolic refinement.
/// Returns 0.0 for blank or low-contrast pages, for non-finite or zero
/// `max_degrees`, and when no angle stands out (see `MIN_PEAK_RATIO`).
pub fn estimate_skew(gray: &GrayImage, max_degrees: f32) -> f32 {
    let (w, h) = gray.dimensions();
    skew_from_raw(gray.as_raw(), w, h, 1, max_degrees)
}

/// Estimates the skew ([`estimate_skew`]) and straightens the page when
/// `|angle| >= min_degrees` (0.1 deg is a good value: below it, resampling
/// blurs more than the skew hurts). Returns the page, rotated on an enlarged
/// white canvas, and the angle applied (clockwise degrees, as given to
/// [`rotate_rgb`]; 0.0 when untouched). Map points with
/// `PageRotation::new(img.width(), img.height(), angle)`.
pub fn deskew(img: &RgbImage, max_degrees: f32, min_degrees: f32) -> (RgbImage, f32) {
    let (w, h) = img.dimensions();
    let angle = skew_from_raw(img.as_raw(), w, h, 3, max_degrees);
    if !angle.is_finite() || angle == 0.0 || angle.abs() < min_degrees {
        return (img.clone(), 0.0);
    }
    (rotate_rgb(img, angle, WHITE), angle)
}

/// Rotates `img` clockwise by `degrees` about its centre with bilinear
/// sampling on a canvas enlarged to hold all of it ([`PageRotation`] gives
/// its size and maps points); uncovered corners get `fill`. Multiples of 90
/// deg are exact (no resampling blur). A non-finite angle or an empty image
/// gives a copy.
pub fn rotate_rgb(img: &RgbImage, degrees: f32, fill: Rgb<u8>) -> RgbImage {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 || !degrees.is_finite() {
        return img.clone();
    }
    let rot = PageRotation::new(w, h, degrees);
    let (ow, oh) = rot.out_size();
    let mut out = RgbImage::new(ow, oh);
    let src = img.as_raw();
    let stride = w as usize * 3;
    let fill_px = fill.0;
    let fill = fill.0.map(f32::from);
    let pixel = |x: i64, y: i64| -> [f32; 3] {
        if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
            return fill;
        }
        let i = y as usize * stride + x as usize * 3;
        [
            f32::from(src[i]),
            f32::from(src[i + 1]),
            f32::from(src[i + 2]),
        ]
    };
    let (wi, hi) = (i64::from(w), i64::from(h));
    for (y, row) in out.rows_mut().enumerate() {
        // Source position of this row's first pixel centre, in pixel-index
        // space; it moves by (cos, -sin) per pixel to the right.
        let start = rot.to_original(Point::new(0.5, y as f32 + 0.5));
        let (sx, sy) = (start.x - 0.5, start.y - 0.5);
        for (x, px) in row.enumerate() {
            let fx = sx + x as f32 * rot.cos;
            let fy = sy - x as f32 * rot.sin;
            let (x0, y0) = (fx.floor(), fy.floor());
            let (ax, ay) = (fx - x0, fy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            if x0 < -1 || y0 < -1 || x0 >= wi || y0 >= hi {
                px.0 = fill_px;
                continue;
            }
            let inside = x0 >= 0 && y0 >= 0 && x0 + 1 < wi && y0 + 1 < hi;
            let (p00, p01, p10, p11) = if inside {
                let i = y0 as usize * stride + x0 as usize * 3;
                let at = |i: usize| {
                    [
                        f32::from(src[i]),
                        f32::from(src[i + 1]),
                        f32::from(src[i + 2]),
                    ]
                };
                (at(i), at(i + 3), at(i + stride), at(i + stride + 3))
            } else {
                (
                    pixel(x0, y0),
                    pixel(x0 + 1, y0),
                    pixel(x0, y0 + 1),
                    pixel(x0 + 1, y0 + 1),
                )
            };
            for c in 0..3 {
                let top = p00[c] + (p01[c] - p00[c]) * ax;
                let bottom = p10[c] + (p11[c] - p10[c]) * ax;
                px.0[c] = (top + (bottom - top) * ay).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Maps `p` (page pixels of the original `src_w` x `src_h` page) to the page
/// rotated clockwise by `degrees` with [`rotate_rgb`].
pub fn rotate_point(p: Point, src_w: u32, src_h: u32, degrees: f32) -> Point {
    PageRotation::new(src_w, src_h, degrees).to_rotated(p)
}

/// The rotation [`rotate_rgb`] applies: a clockwise turn by `degrees` about
/// the page centre, onto a canvas enlarged to hold the whole page, centred.
/// Points are continuous page coordinates (a pixel's centre is at +0.5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PageRotation {
    /// Applied angle, clockwise degrees.
    pub degrees: f32,
    cos: f32,
    sin: f32,
    src_w: u32,
    src_h: u32,
    out_w: u32,
    out_h: u32,
}

impl PageRotation {
    /// The rotation of a `src_w` x `src_h` page by `degrees` (clockwise); a
    /// non-finite angle counts as 0.
    pub fn new(src_w: u32, src_h: u32, degrees: f32) -> Self {
        let degrees = if degrees.is_finite() { degrees } else { 0.0 };
        let (sin, cos) = exact_sin_cos(degrees);
        let (w, h) = (f64::from(src_w), f64::from(src_h));
        let (c, s) = (f64::from(cos).abs(), f64::from(sin).abs());
        // A small tolerance keeps e.g. 90 deg from adding a pixel column.
        let side = |v: f64| -> u32 {
            if src_w == 0 || src_h == 0 {
                0
            } else {
                ((v - 1e-3).ceil().max(1.0)).min(f64::from(u32::MAX)) as u32
            }
        };
        Self {
            degrees,
            cos,
            sin,
            src_w,
            src_h,
            out_w: side(w * c + h * s),
            out_h: side(w * s + h * c),
        }
    }

    /// Width and height of the rotated canvas, px.
    pub fn out_size(&self) -> (u32, u32) {
        (self.out_w, self.out_h)
    }

    /// Original page -> rotated page.
    pub fn to_rotated(&self, p: Point) -> Point {
        let (dx, dy) = (p.x - self.src_w as f32 / 2.0, p.y - self.src_h as f32 / 2.0);
        Point::new(
            dx * self.cos - dy * self.sin + self.out_w as f32 / 2.0,
            dx * self.sin + dy * self.cos + self.out_h as f32 / 2.0,
        )
    }

    /// Rotated page -> original page.
    pub fn to_original(&self, p: Point) -> Point {
        let (dx, dy) = (p.x - self.out_w as f32 / 2.0, p.y - self.out_h as f32 / 2.0);
        Point::new(
            dx * self.cos + dy * self.sin + self.src_w as f32 / 2.0,
            -dx * self.sin + dy * self.cos + self.src_h as f32 / 2.0,
        )
    }
}

/// sin and cos of `degrees`, exact at multiples of 90.
fn exact_sin_cos(degrees: f32) -> (f32, f32) {
    let d = f64::from(degrees).rem_euclid(360.0);
    if d == 0.0 {
        (0.0, 1.0)
    } else if d == 90.0 {
        (1.0, 0.0)
    } else if d == 180.0 {
        (0.0, -1.0)
    } else if d == 270.0 {
        (-1.0, 0.0)
    } else {
        let (s, c) = d.to_radians().sin_cos();
        (s as f32, c as f32)
    }
}

/// Skew search on a raw 8-bit buffer of `channels` (1: grey, 3: RGB).
fn skew_from_raw(raw: &[u8], w: u32, h: u32, channels: usize, max_degrees: f32) -> f32 {
    if !max_degrees.is_finite() || max_degrees <= 0.0 {
        return 0.0;
    }
    let max_degrees = max_degrees.min(45.0);
    let Some((small, sw, sh)) = downscale_luma(raw, w, h, channels) else {
        return 0.0;
    };
    let points = ink_points(&small, sw, sh);
    if points.len() < MIN_INK_PIXELS {
        return 0.0;
    }
    let diag = (sw as f32).hypot(sh as f32).ceil() as usize + 4;
    let mut hist = vec![0.0f32; diag];
    let mut score = |deg: f32| profile_score(&points, deg, &mut hist);

    let coarse_n = (max_degrees / COARSE_STEP).ceil() as i32;
    let coarse: Vec<(f32, f32)> = (-coarse_n..=coarse_n)
        .map(|i| (i as f32 * COARSE_STEP).clamp(-max_degrees, max_degrees))
        .map(|deg| (deg, score(deg)))
        .collect();
    let Some(&(best_deg, best)) = coarse.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
        return 0.0;
    };
    let mut sorted: Vec<f32> = coarse.iter().map(|c| c.1).collect();
    sorted.sort_by(f32::total_cmp);
    let median = sorted[sorted.len() / 2];
    if best.is_nan() || best <= 0.0 || best < MIN_PEAK_RATIO * median {
        return 0.0;
    }

    let fine_n = (COARSE_STEP / FINE_STEP).round() as i32;
    let fine: Vec<(f32, f32)> = (-fine_n..=fine_n)
        .map(|i| best_deg + i as f32 * FINE_STEP)
        .map(|deg| (deg, score(deg)))
        .collect();
    let Some(k) = (0..fine.len()).max_by(|&a, &b| fine[a].1.total_cmp(&fine[b].1)) else {
        return 0.0;
    };
    let mut angle = fine[k].0;
    if k > 0 && k + 1 < fine.len() {
        let (l, c, r) = (fine[k - 1].1, fine[k].1, fine[k + 1].1);
        let denom = l - 2.0 * c + r;
        if denom < 0.0 {
            angle += (0.5 * (l - r) / denom).clamp(-0.5, 0.5) * FINE_STEP;
        }
    }
    let angle = angle.clamp(-max_degrees, max_degrees);
    if angle.is_finite() {
        angle
    } else {
        0.0
    }
}

/// Sum of squared ink counts per row after projecting the points on the
/// normal of lines rising at `degrees` (y down): `r = y cos a + x sin a`.
/// Each point is split linearly between its two nearest rows, which keeps the
/// score smooth in the angle.
fn profile_score(points: &[(f32, f32)], degrees: f32, hist: &mut [f32]) -> f32 {
    hist.fill(0.0);
    let (s, c) = degrees.to_radians().sin_cos();
    let offset = hist.len() as f32 / 2.0;
    let last = hist.len().saturating_sub(2);
    for &(x, y) in points {
        let r = (y * c + x * s + offset).max(0.0);
        let i = (r as usize).min(last);
        let f = (r - i as f32).clamp(0.0, 1.0);
        if let Some(pair) = hist.get_mut(i..i + 2) {
            pair[0] += 1.0 - f;
            pair[1] += f;
        }
    }
    hist.iter().map(|v| v * v).sum()
}

/// Block-averaged luma at about [`SKEW_WORK_WIDTH`] px wide.
fn downscale_luma(raw: &[u8], w: u32, h: u32, channels: usize) -> Option<(Vec<u8>, usize, usize)> {
    let (w, h) = (w as usize, h as usize);
    if w == 0 || h == 0 || raw.len() < w * h * channels || !(channels == 1 || channels == 3) {
        return None;
    }
    let f = ((w as f32 / SKEW_WORK_WIDTH as f32).round() as usize).max(1);
    let (sw, sh) = (w / f, h / f);
    if sw == 0 || sh == 0 {
        return None;
    }
    let mut sums = vec![0u32; sw * sh];
    for y in 0..sh * f {
        let row = &raw[y * w * channels..(y + 1) * w * channels];
        let out = &mut sums[(y / f) * sw..(y / f + 1) * sw];
        for (x, px) in row.chunks_exact(channels).take(sw * f).enumerate() {
            let luma = match px {
                [r, g, b] => {
                    (u32::from(*r) * 299 + u32::from(*g) * 587 + u32::from(*b) * 114) / 1000
                }
                [v, ..] => u32::from(*v),
                [] => 0,
            };
            out[x / f] += luma;
        }
    }
    let n = (f * f) as u32;
    Some((sums.into_iter().map(|s| (s / n) as u8).collect(), sw, sh))
}

/// Centre-relative coordinates of the ink pixels (Otsu threshold), or none
/// for a low-contrast page.
fn ink_points(small: &[u8], w: usize, h: usize) -> Vec<(f32, f32)> {
    let mut hist = [0u64; 256];
    for &v in small {
        hist[v as usize] += 1;
    }
    let lo = hist.iter().position(|&c| c > 0).unwrap_or(0);
    let hi = hist.iter().rposition(|&c| c > 0).unwrap_or(0);
    if hi.saturating_sub(lo) < usize::from(MIN_CONTRAST) {
        return Vec::new();
    }
    let t = otsu(&hist);
    let dark: u64 = hist[..=t].iter().sum();
    let invert = dark * 2 > small.len() as u64;
    let count = if invert {
        small.len() as u64 - dark
    } else {
        dark
    } as usize;
    let every = count.div_ceil(MAX_INK_PIXELS).max(1);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    small
        .iter()
        .enumerate()
        .filter(|(_, &v)| (usize::from(v) <= t) != invert)
        .step_by(every)
        .map(|(i, _)| ((i % w) as f32 + 0.5 - cx, (i / w) as f32 + 0.5 - cy))
        .collect()
}

/// Otsu's threshold: the grey level `t` for which splitting at `<= t`
/// maximises the between-class variance.
fn otsu(hist: &[u64; 256]) -> usize {
    let total = hist.iter().sum::<u64>() as f64;
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| i as f64 * c as f64)
        .sum();
    let (mut w0, mut sum0) = (0.0f64, 0.0f64);
    let (mut best_t, mut best_v) = (0usize, -1.0f64);
    for (t, &c) in hist.iter().enumerate() {
        w0 += c as f64;
        sum0 += t as f64 * c as f64;
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (sum0 / w0, (sum_all - sum0) / w1);
        let v = w0 * w1 * (m0 - m1) * (m0 - m1);
        if v > best_v {
            best_v = v;
            best_t = t;
        }
    }
    best_t
}

/// A whole turn of the page by a quarter, half or three quarters, clockwise
/// on screen: what the orientation classifier asks for. Exact (pixels are
/// moved, not resampled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuarterTurn {
    Cw90,
    Cw180,
    Cw270,
}

impl QuarterTurn {
    /// The turn of `degrees` clockwise (any multiple of 90, negative too);
    /// `None` for 0 and for angles that are not a multiple of 90.
    pub fn from_degrees(degrees: i32) -> Option<Self> {
        match degrees.rem_euclid(360) {
            90 => Some(Self::Cw90),
            180 => Some(Self::Cw180),
            270 => Some(Self::Cw270),
            _ => None,
        }
    }

    /// Clockwise degrees: 90, 180 or 270.
    pub fn degrees(self) -> i32 {
        match self {
            Self::Cw90 => 90,
            Self::Cw180 => 180,
            Self::Cw270 => 270,
        }
    }

    /// The page turned.
    pub fn apply(self, img: &RgbImage) -> RgbImage {
        match self {
            Self::Cw90 => image::imageops::rotate90(img),
            Self::Cw180 => image::imageops::rotate180(img),
            Self::Cw270 => image::imageops::rotate270(img),
        }
    }

    /// Size of a `w` x `h` page once turned.
    pub fn turned_size(self, w: u32, h: u32) -> (u32, u32) {
        match self {
            Self::Cw180 => (w, h),
            Self::Cw90 | Self::Cw270 => (h, w),
        }
    }

    /// Where a point of the page as it was (`w` x `h`) lands on the
    /// turned page. Positions are continuous (a pixel's top-left corner is
    /// its integer position), so the page's corners map onto corners.
    pub fn to_turned(self, p: Point, w: u32, h: u32) -> Point {
        let (w, h) = (w as f32, h as f32);
        match self {
            Self::Cw90 => Point::new(h - p.y, p.x),
            Self::Cw180 => Point::new(w - p.x, h - p.y),
            Self::Cw270 => Point::new(p.y, w - p.x),
        }
    }

    /// A quad (corners clockwise from the top-left) of the page as it was
    /// (`w` x `h`) on the turned page, its corners again clockwise from the
    /// top-left.
    pub fn turn_quad(self, q: &Quad, w: u32, h: u32) -> Quad {
        let m = q.map(|p| self.to_turned(p, w, h));
        // The corner that comes to the top-left: bottom-left after a
        // quarter clockwise, bottom-right after a half, top-right after
        // three quarters.
        let first = match self {
            Self::Cw90 => 3,
            Self::Cw180 => 2,
            Self::Cw270 => 1,
        };
        [0, 1, 2, 3].map(|i| m[(first + i) % 4])
    }

    /// The affine map `[a, b, c, d, e, f]` (`x = a*x' + b*y' + c`,
    /// `y = d*x' + e*y' + f`) from the turned page back to the page as it
    /// was (`w` x `h`): the inverse of [`QuarterTurn::to_turned`].
    pub fn to_original_affine(self, w: u32, h: u32) -> [f32; 6] {
        let (w, h) = (w as f32, h as f32);
        match self {
            // x' = h - y, y' = x  =>  x = y', y = h - x'
            Self::Cw90 => [0.0, 1.0, 0.0, -1.0, 0.0, h],
            // x' = w - x, y' = h - y
            Self::Cw180 => [-1.0, 0.0, w, 0.0, -1.0, h],
            // x' = y, y' = w - x  =>  x = w - y', y = x'
            Self::Cw270 => [0.0, -1.0, w, 1.0, 0.0, 0.0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::buffer::ConvertBuffer;

    /// A white page with rows of dark "words" (deterministic pseudo-random
    /// widths and gaps), like a page of text.
    fn text_page(w: u32, h: u32) -> RgbImage {
        let mut img = RgbImage::from_pixel(w, h, WHITE);
        let mut seed = 12345u32;
        let mut rand = |lo: u32, hi: u32| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            lo + (seed >> 16) % (hi - lo)
        };
        let mut y = 60;
        while y + 14 < h - 60 {
            let mut x = 60 + rand(0, 40);
            let end = w - 60 - rand(0, 120);
            while x < end {
                let word = rand(20, 90).min(end - x);
                for yy in y..y + 14 {
                    for xx in x..x + word {
                        img.put_pixel(xx, yy, Rgb([20, 20, 20]));
                    }
                }
                x += word + rand(8, 18);
            }
            y += 34;
        }
        img
    }

    #[test]
    fn skew_is_recovered() {
        let page = text_page(700, 900);
        for angle in [-8.0f32, -3.0, 0.0, 0.4, 2.5, 9.0] {
            let rotated = rotate_rgb(&page, angle, WHITE);
            let est = estimate_skew(&rotated.convert(), 10.0);
            assert!(
                (est + angle).abs() <= 0.3,
                "rotated {angle}: estimated {est}"
            );
            // deskew undoes it.
            let (_, applied) = deskew(&rotated, 10.0, 0.1);
            if angle == 0.0 {
                assert_eq!(applied, 0.0);
            } else {
                assert!(
                    (applied + angle).abs() <= 0.3,
                    "rotated {angle}: applied {applied}"
                );
            }
        }
    }

    #[test]
    fn deskew_straightens() {
        let page = text_page(500, 600);
        let rotated = rotate_rgb(&page, 4.0, WHITE);
        let (straight, applied) = deskew(&rotated, 10.0, 0.1);
        assert!((applied + 4.0).abs() <= 0.3, "{applied}");
        let again = estimate_skew(&straight.convert(), 10.0);
        assert!(again.abs() <= 0.3, "residual {again}");
    }

    #[test]
    fn blank_and_degenerate_pages_give_zero() {
        struct Case {
            name: &'static str,
            img: GrayImage,
            max: f32,
        }
        let mut speck = GrayImage::from_pixel(300, 300, image::Luma([255]));
        speck.put_pixel(10, 10, image::Luma([0]));
        let text: GrayImage = rotate_rgb(&text_page(300, 300), 3.0, WHITE).convert();
        let cases = [
            Case {
                name: "white",
                img: GrayImage::from_pixel(400, 300, image::Luma([255])),
                max: 10.0,
            },
            Case {
                name: "black",
                img: GrayImage::from_pixel(400, 300, image::Luma([0])),
                max: 10.0,
            },
            Case {
                name: "speck",
                img: speck,
                max: 10.0,
            },
            Case {
                name: "empty",
                img: GrayImage::new(0, 0),
                max: 10.0,
            },
            Case {
                name: "1px",
                img: GrayImage::new(1, 1),
                max: 10.0,
            },
            Case {
                name: "nan max",
                img: text.clone(),
                max: f32::NAN,
            },
            Case {
                name: "zero max",
                img: text,
                max: 0.0,
            },
        ];
        for c in cases {
            assert_eq!(estimate_skew(&c.img, c.max), 0.0, "{}", c.name);
        }
    }

    #[test]
    fn light_text_on_dark_paper() {
        let mut page = text_page(600, 700);
        page.pixels_mut().for_each(|p| p.0 = p.0.map(|v| 255 - v));
        let rotated = rotate_rgb(&page, -5.0, Rgb([0, 0, 0]));
        let est = estimate_skew(&rotated.convert(), 10.0);
        assert!((est - 5.0).abs() <= 0.3, "{est}");
    }

    #[test]
    fn right_angles_map_dimensions_and_pixels() {
        let mut img = RgbImage::from_pixel(4, 2, WHITE);
        img.put_pixel(0, 0, Rgb([255, 0, 0]));
        img.put_pixel(3, 1, Rgb([0, 0, 255]));
        struct Case {
            degrees: f32,
            size: (u32, u32),
            red: (u32, u32),
        }
        let cases = [
            Case {
                degrees: 0.0,
                size: (4, 2),
                red: (0, 0),
            },
            Case {
                degrees: 90.0,
                size: (2, 4),
                red: (1, 0),
            },
            Case {
                degrees: 180.0,
                size: (4, 2),
                red: (3, 1),
            },
            Case {
                degrees: -90.0,
                size: (2, 4),
                red: (0, 3),
            },
            Case {
                degrees: 450.0,
                size: (2, 4),
                red: (1, 0),
            },
        ];
        for c in cases {
            let out = rotate_rgb(&img, c.degrees, WHITE);
            assert_eq!(out.dimensions(), c.size, "{}", c.degrees);
            assert_eq!(
                *out.get_pixel(c.red.0, c.red.1),
                Rgb([255, 0, 0]),
                "{}",
                c.degrees
            );
            let reds = out.pixels().filter(|p| p.0 == [255, 0, 0]).count();
            let whites = out.pixels().filter(|p| p.0 == [255, 255, 255]).count();
            assert_eq!((reds, whites), (1, 6), "exact resampling at {}", c.degrees);
        }
    }

    #[test]
    fn rotation_expands_canvas() {
        let img = RgbImage::from_pixel(100, 50, Rgb([0, 0, 0]));
        let out = rotate_rgb(&img, 30.0, WHITE);
        // 100 cos30 + 50 sin30 = 111.6; 100 sin30 + 50 cos30 = 93.3.
        assert_eq!(out.dimensions(), (112, 94));
        // Corners are fill, the centre is the image.
        assert_eq!(*out.get_pixel(0, 0), WHITE);
        assert_eq!(*out.get_pixel(56, 47), Rgb([0, 0, 0]));
        assert_eq!(
            rotate_rgb(&RgbImage::new(0, 0), 30.0, WHITE).dimensions(),
            (0, 0)
        );
        assert_eq!(rotate_rgb(&img, f32::NAN, WHITE), img);
    }

    #[test]
    fn points_round_trip() {
        for degrees in [-9.0f32, 0.0, 2.5, 90.0, 33.0] {
            let rot = PageRotation::new(1700, 2200, degrees);
            for p in [
                Point::new(0.0, 0.0),
                Point::new(850.0, 1100.0),
                Point::new(1700.0, 13.5),
            ] {
                let back = rot.to_original(rot.to_rotated(p));
                assert!(
                    (back.x - p.x).abs() < 0.01 && (back.y - p.y).abs() < 0.01,
                    "{degrees}: {p:?} -> {back:?}"
                );
            }
        }
        // The page centre goes to the canvas centre; 90 deg turns the top-left
        // corner into the top-right.
        let rot = PageRotation::new(40, 20, 90.0);
        assert_eq!(rot.out_size(), (20, 40));
        assert_eq!(
            rot.to_rotated(Point::new(20.0, 10.0)),
            Point::new(10.0, 20.0)
        );
        assert_eq!(
            rotate_point(Point::new(0.0, 0.0), 40, 20, 90.0),
            Point::new(20.0, 0.0)
        );
    }

    #[test]
    fn mapped_point_lands_on_the_rotated_mark() {
        let mut img = RgbImage::from_pixel(200, 100, WHITE);
        for y in 30..34 {
            for x in 150..154 {
                img.put_pixel(x, y, Rgb([0, 0, 0]));
            }
        }
        let out = rotate_rgb(&img, 7.0, WHITE);
        let p = rotate_point(Point::new(152.0, 32.0), 200, 100, 7.0);
        let px = out.get_pixel(p.x as u32, p.y as u32);
        assert!(px.0[0] < 60, "{p:?} is {px:?}");
    }

    #[test]
    fn quarter_turns_move_pixels_and_points_alike() {
        struct Case {
            degrees: i32,
            turn: Option<QuarterTurn>,
        }
        let cases = [
            Case {
                degrees: 0,
                turn: None,
            },
            Case {
                degrees: 90,
                turn: Some(QuarterTurn::Cw90),
            },
            Case {
                degrees: -90,
                turn: Some(QuarterTurn::Cw270),
            },
            Case {
                degrees: 540,
                turn: Some(QuarterTurn::Cw180),
            },
            Case {
                degrees: 45,
                turn: None,
            },
        ];
        for c in cases {
            assert_eq!(
                QuarterTurn::from_degrees(c.degrees),
                c.turn,
                "{}",
                c.degrees
            );
        }
        // A 5x3 page with one marked pixel at (1, 0).
        let mut img = RgbImage::from_pixel(5, 3, WHITE);
        img.put_pixel(1, 0, Rgb([0, 0, 0]));
        for turn in [QuarterTurn::Cw90, QuarterTurn::Cw180, QuarterTurn::Cw270] {
            let out = turn.apply(&img);
            assert_eq!(out.dimensions(), turn.turned_size(5, 3), "{turn:?}");
            // The marked pixel's centre (1.5, 0.5) lands on the centre of
            // the pixel the image was moved to.
            let c = turn.to_turned(Point::new(1.5, 0.5), 5, 3);
            let (x, y) = (c.x.floor() as u32, c.y.floor() as u32);
            assert_eq!(out.get_pixel(x, y), &Rgb([0, 0, 0]), "{turn:?} at {c:?}");
            assert_eq!(out.pixels().filter(|p| p.0 == [0, 0, 0]).count(), 1);
            // And the affine map takes it back.
            let [a, b, cc, d, e, f] = turn.to_original_affine(5, 3);
            let back = Point::new(a * c.x + b * c.y + cc, d * c.x + e * c.y + f);
            assert!(
                (back.x - 1.5).abs() < 1e-6 && (back.y - 0.5).abs() < 1e-6,
                "{turn:?}: {back:?}"
            );
        }
        // Hand-computed: on a 5x3 page turned 90 deg clockwise (3x5), the
        // top-left corner goes to the top-right, (3, 0).
        assert_eq!(
            QuarterTurn::Cw90.to_turned(Point::new(0.0, 0.0), 5, 3),
            Point::new(3.0, 0.0)
        );
        assert_eq!(
            QuarterTurn::Cw270.to_turned(Point::new(0.0, 0.0), 5, 3),
            Point::new(0.0, 5.0)
        );
    }

    #[test]
    fn a_turned_quad_starts_at_its_new_top_left() {
        // A box from (1, 1) to (3, 2) on a 5x3 page, clockwise from top-left.
        let p = Point::new;
        let q = [p(1.0, 1.0), p(3.0, 1.0), p(3.0, 2.0), p(1.0, 2.0)];
        // Hand-computed on the turned pages (3x5, 5x3, 3x5).
        assert_eq!(
            QuarterTurn::Cw90.turn_quad(&q, 5, 3),
            [p(1.0, 1.0), p(2.0, 1.0), p(2.0, 3.0), p(1.0, 3.0)]
        );
        assert_eq!(
            QuarterTurn::Cw180.turn_quad(&q, 5, 3),
            [p(2.0, 1.0), p(4.0, 1.0), p(4.0, 2.0), p(2.0, 2.0)]
        );
        assert_eq!(
            QuarterTurn::Cw270.turn_quad(&q, 5, 3),
            [p(1.0, 2.0), p(2.0, 2.0), p(2.0, 4.0), p(1.0, 4.0)]
        );
    }
}
