//! Plane geometry for text detection: connected components of a binary mask,
//! convex hull, minimum-area rotated rectangle, DB "unclip" expansion, quad
//! ordering, perspective crops and reading order.
//!
//! Everything here is pure Rust (no OpenCV / Clipper) and written to give the
//! same results as the OpenCV / pyclipper calls that RapidOCR and PaddleOCR
//! make (`cv2.findContours`, `cv2.minAreaRect`, `cv2.boxPoints`,
//! `pyclipper.PyclipperOffset`, `cv2.warpPerspective`), up to sub-pixel
//! rounding. Nothing here panics on empty, degenerate or non-finite input.
//!
//! Coordinates follow `crate::types`: x to the right, y down. For masks and
//! probability maps a pixel's coordinate is its column / row index (OpenCV's
//! convention for contour points), so a component covering columns 10..=19
//! spans 9 units, not 10, exactly as `cv2.minAreaRect` on its contour does.

use image::RgbImage;

use crate::types::{BBox, DetBox, Point, Quad};

/// One 8-connected foreground component of a binary mask.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    /// The two end pixels of every horizontal run of the component, in
    /// pixel-index coordinates. Their convex hull equals the hull of the whole
    /// component (and of its OpenCV outer contour).
    pub points: Vec<Point>,
    /// Smallest and largest column / row index of the component (inclusive).
    pub bbox: BBox,
    /// Number of foreground pixels.
    pub pixels: usize,
}

/// A horizontal run of foreground pixels, `x0..=x1` on row `y`.
#[derive(Clone, Copy, Debug)]
struct Run {
    y: u32,
    x0: u32,
    x1: u32,
}

/// The 8-connected components of a row-major `width` x `height` mask, in
/// raster order of each component's first pixel.
///
/// Holes are not reported separately (OpenCV's `RETR_LIST` also returns hole
/// contours; DB post-processing drops nearly all of those on their score).
/// Returns nothing when `mask.len() != width * height`.
/// Cost: one pass over the pixels plus near-linear union-find over runs.
pub fn components(mask: &[bool], width: usize, height: usize) -> Vec<Component> {
    if width == 0 || height == 0 || width.checked_mul(height) != Some(mask.len()) {
        return Vec::new();
    }
    let mut runs: Vec<Run> = Vec::new();
    let mut parent: Vec<u32> = Vec::new();
    let mut prev = 0..0;
    for (y, row) in mask.chunks_exact(width).enumerate() {
        let start = runs.len();
        let mut x = 0;
        while x < width {
            if !row[x] {
                x += 1;
                continue;
            }
            let x0 = x;
            while x < width && row[x] {
                x += 1;
            }
            let id = runs.len() as u32;
            runs.push(Run {
                y: y as u32,
                x0: x0 as u32,
                x1: (x - 1) as u32,
            });
            parent.push(id);
        }
        // Link this row's runs to the previous row's (8-connectivity: runs
        // touch when they overlap or meet at a corner). Both lists are sorted.
        let mut j = prev.start;
        for i in start..runs.len() {
            let r = runs[i];
            while j < prev.end && runs[j].x1 + 1 < r.x0 {
                j += 1;
            }
            let mut k = j;
            while k < prev.end && runs[k].x0 <= r.x1 + 1 {
                union(&mut parent, i as u32, k as u32);
                k += 1;
            }
        }
        prev = start..runs.len();
    }

    // Roots are the smallest run index of each set, so numbering roots in run
    // order numbers components in raster order of their first pixel.
    let mut comp_of_root = vec![u32::MAX; runs.len()];
    let mut comps: Vec<Component> = Vec::new();
    for (i, &r) in runs.iter().enumerate() {
        let root = find(&mut parent, i as u32) as usize;
        let c = if comp_of_root[root] == u32::MAX {
            comp_of_root[root] = comps.len() as u32;
            comps.push(Component {
                points: Vec::new(),
                bbox: BBox {
                    x0: r.x0 as f32,
                    y0: r.y as f32,
                    x1: r.x1 as f32,
                    y1: r.y as f32,
                },
                pixels: 0,
            });
            comps.len() - 1
        } else {
            comp_of_root[root] as usize
        };
        let comp = &mut comps[c];
        let (x0, x1, y) = (r.x0 as f32, r.x1 as f32, r.y as f32);
        comp.points.push(Point::new(x0, y));
        if r.x1 != r.x0 {
            comp.points.push(Point::new(x1, y));
        }
        comp.pixels += (r.x1 - r.x0 + 1) as usize;
        comp.bbox.x0 = comp.bbox.x0.min(x0);
        comp.bbox.x1 = comp.bbox.x1.max(x1);
        comp.bbox.y1 = comp.bbox.y1.max(y);
    }
    comps
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    let mut root = i;
    while parent[root as usize] != root {
        root = parent[root as usize];
    }
    while parent[i as usize] != root {
        let next = parent[i as usize];
        parent[i as usize] = root;
        i = next;
    }
    root
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let ra = find(parent, a);
    let rb = find(parent, b);
    if ra < rb {
        parent[rb as usize] = ra;
    } else if rb < ra {
        parent[ra as usize] = rb;
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct P64 {
    x: f64,
    y: f64,
}

impl P64 {
    fn of(p: Point) -> Self {
        Self {
            x: p.x as f64,
            y: p.y as f64,
        }
    }
    fn to_point(self) -> Point {
        Point::new(self.x as f32, self.y as f32)
    }
    fn sub(self, o: P64) -> P64 {
        P64 {
            x: self.x - o.x,
            y: self.y - o.y,
        }
    }
    fn dot(self, o: P64) -> f64 {
        self.x * o.x + self.y * o.y
    }
    fn cross(self, o: P64) -> f64 {
        self.x * o.y - self.y * o.x
    }
    fn len(self) -> f64 {
        self.x.hypot(self.y)
    }
}

fn hull64(points: &[Point]) -> Vec<P64> {
    let mut pts: Vec<P64> = points
        .iter()
        .filter(|p| p.x.is_finite() && p.y.is_finite())
        .map(|&p| P64::of(p))
        .collect();
    pts.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    // Andrew's monotone chain; collinear points are dropped. All-collinear
    // input ends up as its two extremes.
    let chain = |iter: &mut dyn Iterator<Item = P64>| -> Vec<P64> {
        let mut h: Vec<P64> = Vec::new();
        for p in iter {
            while h.len() >= 2
                && h[h.len() - 1]
                    .sub(h[h.len() - 2])
                    .cross(p.sub(h[h.len() - 2]))
                    <= 0.0
            {
                h.pop();
            }
            h.push(p);
        }
        h.pop();
        h
    };
    let mut hull = chain(&mut pts.iter().copied());
    hull.extend(chain(&mut pts.iter().rev().copied()));
    hull
}

/// Convex hull of the finite points, counter-clockwise in (x, y) axes (which
/// is clockwise on screen, y down), without repeated or collinear points.
pub fn convex_hull(points: &[Point]) -> Vec<Point> {
    hull64(points).into_iter().map(P64::to_point).collect()
}

/// A rotated rectangle, like OpenCV's `RotatedRect`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RotatedRect {
    /// Centre, in the coordinates of the input points.
    pub center: Point,
    /// Side length along the direction `angle`.
    pub width: f32,
    /// Side length perpendicular to `angle`.
    pub height: f32,
    /// Direction of the `width` side in degrees, measured from +x towards +y
    /// (clockwise on screen), normalised to (-45, 45].
    pub angle: f32,
}

impl RotatedRect {
    /// The shorter side (PaddleOCR's `sside`).
    pub fn short_side(&self) -> f32 {
        self.width.min(self.height)
    }

    /// The four corners ordered as PaddleOCR's `get_mini_boxes` orders
    /// `cv2.boxPoints`: top-left, top-right, bottom-right, bottom-left.
    pub fn corners(&self) -> Quad {
        let a = (self.angle as f64).to_radians();
        let u = P64 {
            x: a.cos(),
            y: a.sin(),
        };
        let v = P64 { x: -u.y, y: u.x };
        let c = P64::of(self.center);
        let (hw, hh) = (self.width as f64 / 2.0, self.height as f64 / 2.0);
        let at = |su: f64, sv: f64| {
            Point::new(
                (c.x + su * hw * u.x + sv * hh * v.x) as f32,
                (c.y + su * hw * u.y + sv * hh * v.y) as f32,
            )
        };
        // The same corner sequence as cv2.boxPoints (bottom-left first when
        // the angle is 0), so ties in the sort below break the same way.
        let pts = [at(-1.0, 1.0), at(-1.0, -1.0), at(1.0, -1.0), at(1.0, 1.0)];
        mini_box_order(pts)
    }
}

/// PaddleOCR's `get_mini_boxes` ordering: sort by x (stable), the upper of
/// the two left points is first, the upper of the two right points second.
fn mini_box_order(mut pts: Quad) -> Quad {
    pts.sort_by(|a, b| a.x.total_cmp(&b.x));
    let (i1, i4) = if pts[1].y > pts[0].y { (0, 1) } else { (1, 0) };
    let (i2, i3) = if pts[3].y > pts[2].y { (2, 3) } else { (3, 2) };
    [pts[i1], pts[i2], pts[i3], pts[i4]]
}

/// The minimum-area rectangle around the points (rotating calipers over the
/// convex hull), like `cv2.minAreaRect`. Non-finite points are ignored;
/// `None` when no finite point is left. One point gives a 0x0 rectangle, a
/// collinear set a rectangle of height 0.
pub fn min_area_rect(points: &[Point]) -> Option<RotatedRect> {
    let hull = hull64(points);
    match hull.len() {
        0 => None,
        1 => Some(RotatedRect {
            center: hull[0].to_point(),
            width: 0.0,
            height: 0.0,
            angle: 0.0,
        }),
        _ => {
            let n = hull.len();
            // (area, origin, u, umin, umax, vmin, vmax)
            let mut best: Option<(f64, P64, P64, f64, f64, f64, f64)> = None;
            let edges = if n == 2 { 1 } else { n };
            for i in 0..edges {
                let o = hull[i];
                let e = hull[(i + 1) % n].sub(o);
                let len = e.len();
                if len <= 0.0 {
                    continue;
                }
                let u = P64 {
                    x: e.x / len,
                    y: e.y / len,
                };
                let v = P64 { x: -u.y, y: u.x };
                let (mut umin, mut umax, mut vmin, mut vmax) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
                for &p in &hull {
                    let d = p.sub(o);
                    let (a, b) = (d.dot(u), d.dot(v));
                    umin = umin.min(a);
                    umax = umax.max(a);
                    vmin = vmin.min(b);
                    vmax = vmax.max(b);
                }
                let area = (umax - umin) * (vmax - vmin);
                let better = match best {
                    None => true,
                    Some(b) => area < b.0 * (1.0 - 1e-12),
                };
                if better {
                    best = Some((area, o, u, umin, umax, vmin, vmax));
                }
            }
            let (_, o, u, umin, umax, vmin, vmax) = best?;
            let v = P64 { x: -u.y, y: u.x };
            let (cu, cv) = ((umin + umax) / 2.0, (vmin + vmax) / 2.0);
            let center = P64 {
                x: o.x + cu * u.x + cv * v.x,
                y: o.y + cu * u.y + cv * v.y,
            };
            let mut angle = u.y.atan2(u.x).to_degrees();
            let (mut w, mut h) = (umax - umin, vmax - vmin);
            while angle > 45.0 {
                angle -= 90.0;
                std::mem::swap(&mut w, &mut h);
            }
            while angle <= -45.0 {
                angle += 90.0;
                std::mem::swap(&mut w, &mut h);
            }
            Some(RotatedRect {
                center: center.to_point(),
                width: w as f32,
                height: h as f32,
                angle: angle as f32,
            })
        }
    }
}

/// Absolute area of a simple polygon (shoelace formula); 0 for < 3 points.
pub fn polygon_area(poly: &[Point]) -> f32 {
    signed_area(poly).abs() as f32
}

fn signed_area(poly: &[Point]) -> f64 {
    if poly.len() < 3 {
        return 0.0;
    }
    let mut s = 0.0f64;
    for i in 0..poly.len() {
        let a = P64::of(poly[i]);
        let b = P64::of(poly[(i + 1) % poly.len()]);
        s += a.cross(b);
    }
    s / 2.0
}

/// Perimeter of a closed polygon; 0 for < 2 points.
pub fn polygon_perimeter(poly: &[Point]) -> f32 {
    if poly.len() < 2 {
        return 0.0;
    }
    let mut s = 0.0f64;
    for i in 0..poly.len() {
        s += P64::of(poly[(i + 1) % poly.len()])
            .sub(P64::of(poly[i]))
            .len();
    }
    s as f32
}

/// Clipper's default arc tolerance for round joins, in coordinate units
/// (`pyclipper.PyclipperOffset(arc_tolerance=0.25)`).
const ARC_TOLERANCE: f64 = 0.25;

/// DB "unclip": offset the quad outward by `d = area * ratio / perimeter`
/// with round joins and return the minimum-area rectangle around the result.
///
/// This reproduces what PaddleOCR / RapidOCR get from
/// `pyclipper.PyclipperOffset` with `JT_ROUND` / `ET_CLOSEDPOLYGON`
/// (Clipper 6 `ClipperOffset`): `d` comes from the quad as given, the corners
/// are then truncated toward zero (pyclipper's integer conversion), each
/// corner's arc is drawn with Clipper's step count for an arc tolerance of
/// 0.25, and every outline point is rounded half away from zero. `None` for
/// a degenerate (fewer than 3 distinct corners, zero-area or non-finite) quad.
pub fn unclip_rect(quad: &Quad, ratio: f32) -> Option<RotatedRect> {
    let area = signed_area(quad);
    let perimeter = polygon_perimeter(quad) as f64;
    if !area.is_finite()
        || area == 0.0
        || perimeter.is_nan()
        || perimeter <= 0.0
        || !ratio.is_finite()
    {
        return None;
    }
    let delta = area.abs() * ratio as f64 / perimeter;
    if !delta.is_finite() || delta.abs() >= 1e9 {
        return None;
    }
    let outline = clipper_round_offset(quad, delta)?;
    min_area_rect(&outline)
}

/// Clipper 6 `ClipperOffset` of one closed polygon with round joins by
/// `delta` (>= 0), as integer-valued points.
fn clipper_round_offset(quad: &Quad, delta: f64) -> Option<Vec<Point>> {
    // AddPath: integer points, consecutive duplicates (and a closing
    // duplicate) removed; fewer than 3 points is dropped.
    let mut src: Vec<P64> = Vec::with_capacity(4);
    for p in quad {
        let q = P64 {
            x: (p.x as f64).trunc(),
            y: (p.y as f64).trunc(),
        };
        if src.last() != Some(&q) {
            src.push(q);
        }
    }
    while src.len() > 1 && src.first() == src.last() {
        src.pop();
    }
    if src.len() < 3 {
        return None;
    }
    // FixOrientations: make the signed area non-negative so that the normal
    // (dy, -dx) points outward.
    let mut s = 0.0;
    for i in 0..src.len() {
        s += src[i].cross(src[(i + 1) % src.len()]);
    }
    if s < 0.0 {
        src.reverse();
    }
    let round = |v: f64| v.round() as f32;
    if delta < 1e-20 {
        return Some(
            src.iter()
                .map(|p| Point::new(round(p.x), round(p.y)))
                .collect(),
        );
    }
    let y = if ARC_TOLERANCE > delta * 0.25 {
        delta * 0.25
    } else {
        ARC_TOLERANCE
    };
    let mut steps = std::f64::consts::PI / (1.0 - y / delta).acos();
    if steps > delta * std::f64::consts::PI {
        steps = delta * std::f64::consts::PI;
    }
    let two_pi = 2.0 * std::f64::consts::PI;
    let (m_sin, m_cos) = ((two_pi / steps).sin(), (two_pi / steps).cos());
    let steps_per_rad = steps / two_pi;
    let n = src.len();
    let normals: Vec<P64> = (0..n)
        .map(|j| {
            let e = src[(j + 1) % n].sub(src[j]);
            let len = e.len();
            if len == 0.0 {
                P64 { x: 0.0, y: 0.0 }
            } else {
                P64 {
                    x: e.y / len,
                    y: -e.x / len,
                }
            }
        })
        .collect();
    let mut out: Vec<Point> = Vec::new();
    let at =
        |p: P64, nx: f64, ny: f64| Point::new(round(p.x + nx * delta), round(p.y + ny * delta));
    let mut k = n - 1;
    for j in 0..n {
        let (nk, nj, p) = (normals[k], normals[j], src[j]);
        let mut sin_a = nk.x * nj.y - nj.x * nk.y;
        if (sin_a * delta).abs() < 1.0 {
            if nk.dot(nj) > 0.0 {
                out.push(at(p, nk.x, nk.y));
                k = j;
                continue;
            }
        } else {
            sin_a = sin_a.clamp(-1.0, 1.0);
        }
        if sin_a * delta < 0.0 {
            out.push(at(p, nk.x, nk.y));
            out.push(Point::new(p.x as f32, p.y as f32));
            out.push(at(p, nj.x, nj.y));
        } else {
            let a = sin_a.atan2(nk.dot(nj));
            let count = ((steps_per_rad * a.abs()).round() as i64).clamp(1, 10_000);
            let (mut x, mut yy) = (nk.x, nk.y);
            for _ in 0..count {
                out.push(at(p, x, yy));
                let x2 = x;
                x = x * m_cos - m_sin * yy;
                yy = x2 * m_sin + yy * m_cos;
            }
            out.push(at(p, nj.x, nj.y));
        }
        k = j;
    }
    Some(out)
}

/// [`unclip_rect`] as a quad (top-left first, clockwise); the input quad
/// unchanged when it is degenerate.
pub fn unclip(quad: &Quad, ratio: f32) -> Quad {
    unclip_rect(quad, ratio).map_or(*quad, |r| r.corners())
}

/// Orders four points clockwise on screen starting from the top-left.
///
/// First RapidOCR's `order_points_clockwise` (imutils): sort by x, the upper
/// of the two leftmost points is the top-left, the upper of the two
/// rightmost the top-right. For any rectangle or parallelogram, rotated or
/// not, that is a proper clockwise order and is returned as is, so boxes
/// match the reference exactly. Where it is not (boxes clipped at the page
/// border, where imutils returns a self-crossing quad, repeated or
/// non-finite points), the points are instead sorted clockwise by angle
/// around their centroid and the first corner is the one whose outgoing edge
/// runs furthest to the right (largest dx; ties to the smaller x + y, then
/// the smaller y), which keeps the longer, flatter side on top.
pub fn order_quad(quad: Quad) -> Quad {
    let imutils = order_points_clockwise(quad);
    if is_strictly_clockwise(&imutils) {
        return imutils;
    }
    let cx = quad.iter().map(|p| p.x as f64).sum::<f64>() / 4.0;
    let cy = quad.iter().map(|p| p.y as f64).sum::<f64>() / 4.0;
    let mut pts = quad;
    let ang = |p: &Point| (p.y as f64 - cy).atan2(p.x as f64 - cx);
    pts.sort_by(|a, b| ang(a).total_cmp(&ang(b)));
    let key = |i: usize| {
        let (a, b) = (pts[i], pts[(i + 1) % 4]);
        let dx = b.x as f64 - a.x as f64;
        let dx = if dx.is_finite() {
            dx
        } else {
            f64::NEG_INFINITY
        };
        (dx, -(a.x as f64 + a.y as f64), -(a.y as f64))
    };
    let mut best = 0;
    for i in 1..4 {
        let (k, b) = (key(i), key(best));
        let better = if (k.0 - b.0).abs() > 1e-3 {
            k.0 > b.0
        } else if k.1 != b.1 {
            k.1 > b.1
        } else {
            k.2 > b.2
        };
        if better {
            best = i;
        }
    }
    [
        pts[best],
        pts[(best + 1) % 4],
        pts[(best + 2) % 4],
        pts[(best + 3) % 4],
    ]
}

/// imutils' `order_points_clockwise` (stable sorts, as numpy's argsort is
/// for four elements).
fn order_points_clockwise(quad: Quad) -> Quad {
    let mut pts = quad;
    pts.sort_by(|a, b| a.x.total_cmp(&b.x));
    let (mut left, mut right) = ([pts[0], pts[1]], [pts[2], pts[3]]);
    left.sort_by(|a, b| a.y.total_cmp(&b.y));
    right.sort_by(|a, b| a.y.total_cmp(&b.y));
    [left[0], right[0], right[1], left[1]]
}

/// True when every turn of the closed quad is clockwise on screen (a convex
/// quad without repeated points, self-crossings or non-finite values).
fn is_strictly_clockwise(q: &Quad) -> bool {
    (0..4).all(|i| {
        let a = P64::of(q[i]);
        let b = P64::of(q[(i + 1) % 4]);
        let c = P64::of(q[(i + 2) % 4]);
        let t = b.sub(a).cross(c.sub(b));
        t.is_finite() && t > 0.0
    })
}

fn dist(a: Point, b: Point) -> f64 {
    P64::of(b).sub(P64::of(a)).len()
}

/// Straightens the region inside `quad` (top-left, top-right, bottom-right,
/// bottom-left) into an upright crop, like RapidOCR's `get_rotate_crop_image`:
/// width `max(|p0p1|, |p2p3|)`, height `max(|p0p3|, |p1p2|)` (truncated to
/// whole pixels, at least 1), a perspective warp sampled bilinearly with
/// replicated borders (RapidOCR uses bicubic), and a 90° counter-clockwise
/// turn (`np.rot90`) when height / width >= 1.5.
///
/// Never panics: an empty page or a degenerate quad gives a small image;
/// each side is capped at the page's width + height.
pub fn crop_quad(img: &RgbImage, quad: &Quad) -> RgbImage {
    let (iw, ih) = img.dimensions();
    if iw == 0 || ih == 0 {
        return RgbImage::new(1, 1);
    }
    let cap = (iw as f64 + ih as f64).max(1.0);
    let side = |a: f64, b: f64| -> u32 {
        let s = a.max(b);
        if s.is_finite() {
            s.clamp(1.0, cap) as u32
        } else {
            1
        }
    };
    let cw = side(dist(quad[0], quad[1]), dist(quad[2], quad[3]));
    let ch = side(dist(quad[0], quad[3]), dist(quad[1], quad[2]));
    let map = SquareToQuad::new(quad);
    let mut out = RgbImage::new(cw, ch);
    let src = img.as_raw();
    let (w, h) = (iw as usize, ih as usize);
    let (fw, fh) = (cw as f64, ch as f64);
    for (y, row) in (*out).chunks_exact_mut(cw as usize * 3).enumerate() {
        let t = y as f64 / fh;
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let (sx, sy) = map.apply(x as f64 / fw, t);
            px.copy_from_slice(&sample_bilinear(src, w, h, sx, sy));
        }
    }
    if ch as f64 / cw as f64 >= 1.5 {
        out = image::imageops::rotate270(&out);
    }
    out
}

/// The projective map taking the unit square (0,0),(1,0),(1,1),(0,1) onto the
/// quad's corners (Heckbert's closed form); affine when the quad is a
/// parallelogram or the projective solve is singular.
struct SquareToQuad {
    a: f64,
    b: f64,
    c: f64,
    d: f64,
    e: f64,
    f: f64,
    g: f64,
    h: f64,
}

impl SquareToQuad {
    fn new(q: &Quad) -> Self {
        let [p0, p1, p2, p3] = q.map(P64::of);
        let affine = Self {
            a: p1.x - p0.x,
            b: p3.x - p0.x,
            c: p0.x,
            d: p1.y - p0.y,
            e: p3.y - p0.y,
            f: p0.y,
            g: 0.0,
            h: 0.0,
        };
        let (dx1, dx2, dx3) = (p1.x - p2.x, p3.x - p2.x, p0.x - p1.x + p2.x - p3.x);
        let (dy1, dy2, dy3) = (p1.y - p2.y, p3.y - p2.y, p0.y - p1.y + p2.y - p3.y);
        let scale = (dx1.abs() + dx2.abs() + dy1.abs() + dy2.abs()).max(1e-12);
        if (dx3.abs() + dy3.abs()) <= 1e-9 * scale {
            return affine;
        }
        let den = dx1 * dy2 - dx2 * dy1;
        if den.abs() <= 1e-9 * scale * scale {
            return affine;
        }
        let g = (dx3 * dy2 - dx2 * dy3) / den;
        let h = (dx1 * dy3 - dx3 * dy1) / den;
        let m = Self {
            a: p1.x - p0.x + g * p1.x,
            b: p3.x - p0.x + h * p3.x,
            c: p0.x,
            d: p1.y - p0.y + g * p1.y,
            e: p3.y - p0.y + h * p3.y,
            f: p0.y,
            g,
            h,
        };
        if [m.a, m.b, m.d, m.e, m.g, m.h].iter().all(|v| v.is_finite()) {
            m
        } else {
            affine
        }
    }

    fn apply(&self, s: f64, t: f64) -> (f64, f64) {
        let w = self.g * s + self.h * t + 1.0;
        let w = if w.abs() < 1e-12 { 1e-12 } else { w };
        (
            (self.a * s + self.b * t + self.c) / w,
            (self.d * s + self.e * t + self.f) / w,
        )
    }
}

/// Bilinear sample of a packed RGB buffer at (x, y) in pixel-index
/// coordinates, clamping to the border (OpenCV's `BORDER_REPLICATE`).
fn sample_bilinear(src: &[u8], w: usize, h: usize, x: f64, y: f64) -> [u8; 3] {
    let clampc = |v: f64, max: usize| -> f64 {
        if v.is_nan() {
            0.0
        } else {
            v.clamp(0.0, (max - 1) as f64)
        }
    };
    let (x, y) = (clampc(x, w), clampc(y, h));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let at = |xx: usize, yy: usize, c: usize| src.get((yy * w + xx) * 3 + c).copied();
    let mut out = [0u8; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let (Some(a), Some(b), Some(cc), Some(d)) =
            (at(x0, y0, c), at(x1, y0, c), at(x0, y1, c), at(x1, y1, c))
        else {
            continue;
        };
        let top = a as f64 + (b as f64 - a as f64) * fx;
        let bot = cc as f64 + (d as f64 - cc as f64) * fx;
        *o = (top + (bot - top) * fy).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// Height of a quad: `max(|p0p3|, |p1p2|)`.
fn quad_height(q: &Quad) -> f64 {
    dist(q[0], q[3]).max(dist(q[1], q[2]))
}

/// Fraction of the taller of two neighbouring boxes by which their top edges
/// may differ and still count as one line. PaddleOCR's `sorted_boxes` uses a
/// fixed 10 px, about half the height of a text line at its usual scale.
const LINE_TOLERANCE: f64 = 0.5;

/// Sorts boxes into reading order, like PaddleOCR / RapidOCR `sorted_boxes`:
/// stable sort by the top-left corner's y; walking down that order, a box
/// starts a new line when its y exceeds the previous box's by at least
/// `0.5 * max(height of both)` (at least 1 px; PaddleOCR uses a fixed 10 px);
/// within a line, boxes go left to right by the top-left x.
pub fn sort_reading_order(boxes: &mut [DetBox]) {
    if boxes.len() < 2 {
        return;
    }
    boxes.sort_by(|a, b| a.quad[0].y.total_cmp(&b.quad[0].y));
    let mut keys: Vec<(usize, f32, usize)> = Vec::with_capacity(boxes.len());
    let mut line = 0usize;
    for i in 0..boxes.len() {
        if i > 0 {
            let (a, b) = (&boxes[i - 1].quad, &boxes[i].quad);
            let dy = b[0].y as f64 - a[0].y as f64;
            let tol = (LINE_TOLERANCE * quad_height(a).max(quad_height(b))).max(1.0);
            // NaN coordinates start a new line.
            if dy.is_nan() || dy >= tol {
                line += 1;
            }
        }
        keys.push((line, boxes[i].quad[0].x, i));
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let sorted: Vec<DetBox> = keys.iter().map(|k| boxes[k.2].clone()).collect();
    boxes.clone_from_slice(&sorted);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f32, y: f32) -> Point {
        Point::new(x, y)
    }

    fn close(a: Point, b: Point, tol: f32) -> bool {
        (a.x - b.x).abs() <= tol && (a.y - b.y).abs() <= tol
    }

    fn assert_quad(got: &Quad, want: &Quad, tol: f32) {
        for k in 0..4 {
            assert!(
                close(got[k], want[k], tol),
                "corner {k}: got {got:?}, want {want:?}"
            );
        }
    }

    /// A mask from rows of '#' (foreground) and '.'.
    fn mask(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let w = rows.first().map_or(0, |r| r.len());
        let m = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| b == b'#'))
            .collect();
        (m, w, rows.len())
    }

    #[test]
    fn components_table() {
        struct Case {
            name: &'static str,
            rows: &'static [&'static str],
            // (pixels, bbox x0, y0, x1, y1) per component, raster order.
            want: &'static [(usize, f32, f32, f32, f32)],
        }
        let cases = [
            Case {
                name: "empty",
                rows: &["....", "...."],
                want: &[],
            },
            Case {
                name: "single pixel",
                rows: &["....", "..#."],
                want: &[(1, 2.0, 1.0, 2.0, 1.0)],
            },
            Case {
                name: "diagonal pixels join (8-connectivity)",
                rows: &["#...", ".#..", "..#."],
                want: &[(3, 0.0, 0.0, 2.0, 2.0)],
            },
            Case {
                name: "gap separates",
                rows: &["##.##", "....."],
                want: &[(2, 0.0, 0.0, 1.0, 0.0), (2, 3.0, 0.0, 4.0, 0.0)],
            },
            Case {
                name: "U shape merges late",
                rows: &["#..#", "#..#", "####"],
                want: &[(8, 0.0, 0.0, 3.0, 2.0)],
            },
            Case {
                name: "ring is one component (hole not reported)",
                rows: &["###", "#.#", "###"],
                want: &[(8, 0.0, 0.0, 2.0, 2.0)],
            },
            Case {
                name: "raster order of first pixel",
                rows: &["...#", "#...", "#..."],
                want: &[(1, 3.0, 0.0, 3.0, 0.0), (2, 0.0, 1.0, 0.0, 2.0)],
            },
        ];
        for c in &cases {
            let (m, w, h) = mask(c.rows);
            let got = components(&m, w, h);
            assert_eq!(got.len(), c.want.len(), "{}", c.name);
            for (g, &(n, x0, y0, x1, y1)) in got.iter().zip(c.want) {
                assert_eq!(g.pixels, n, "{}", c.name);
                assert_eq!(g.bbox, BBox { x0, y0, x1, y1 }, "{}", c.name);
            }
        }
    }

    #[test]
    fn components_rejects_bad_sizes() {
        assert!(components(&[true; 5], 2, 2).is_empty());
        assert!(components(&[], 0, 0).is_empty());
        assert!(components(&[true; 4], usize::MAX, 2).is_empty());
    }

    #[test]
    fn hull_drops_interior_and_collinear_points() {
        let mut pts = Vec::new();
        for y in 0..=4 {
            for x in 0..=4 {
                pts.push(p(x as f32, y as f32));
            }
        }
        let h = convex_hull(&pts);
        assert_eq!(h.len(), 4);
        for c in [p(0.0, 0.0), p(4.0, 0.0), p(4.0, 4.0), p(0.0, 4.0)] {
            assert!(h.contains(&c), "{h:?}");
        }
        assert_eq!(
            convex_hull(&[p(0.0, 0.0), p(1.0, 1.0), p(2.0, 2.0)]).len(),
            2
        );
    }

    fn rect_corners(cx: f64, cy: f64, w: f64, h: f64, deg: f64) -> Quad {
        let (s, c) = deg.to_radians().sin_cos();
        let at = |a: f64, b: f64| {
            p(
                (cx + a * w / 2.0 * c - b * h / 2.0 * s) as f32,
                (cy + a * w / 2.0 * s + b * h / 2.0 * c) as f32,
            )
        };
        [at(-1.0, -1.0), at(1.0, -1.0), at(1.0, 1.0), at(-1.0, 1.0)]
    }

    #[test]
    fn min_area_rect_known_sets() {
        struct Case {
            name: &'static str,
            points: Vec<Point>,
            // center, width, height, angle
            want: Option<(Point, f32, f32, f32)>,
        }
        // Pixels of columns 10..=19, rows 5..=8: spans 9 x 3 like OpenCV.
        let mut block = Vec::new();
        for y in 5..=8 {
            for x in 10..=19 {
                block.push(p(x as f32, y as f32));
            }
        }
        let mut r30: Vec<Point> = rect_corners(50.0, 50.0, 40.0, 10.0, 30.0).to_vec();
        r30.push(p(50.0, 50.0));
        let r60 = rect_corners(50.0, 50.0, 40.0, 10.0, 60.0).to_vec();
        let cases = [
            Case {
                name: "axis-aligned block",
                points: block,
                want: Some((p(14.5, 6.5), 9.0, 3.0, 0.0)),
            },
            Case {
                name: "rotated 30",
                points: r30,
                want: Some((p(50.0, 50.0), 40.0, 10.0, 30.0)),
            },
            Case {
                name: "rotated 60 normalises to -30",
                points: r60,
                want: Some((p(50.0, 50.0), 10.0, 40.0, -30.0)),
            },
            Case {
                name: "single point",
                points: vec![p(3.0, 4.0)],
                want: Some((p(3.0, 4.0), 0.0, 0.0, 0.0)),
            },
            Case {
                name: "collinear",
                points: vec![p(0.0, 0.0), p(3.0, 4.0), p(6.0, 8.0), p(f32::NAN, 1.0)],
                want: Some((p(3.0, 4.0), 0.0, 10.0, -36.870)),
            },
            Case {
                name: "empty",
                points: vec![],
                want: None,
            },
            Case {
                name: "only non-finite",
                points: vec![p(f32::NAN, 0.0), p(f32::INFINITY, 1.0)],
                want: None,
            },
        ];
        for c in &cases {
            let got = min_area_rect(&c.points);
            match (got, c.want) {
                (None, None) => {}
                (Some(r), Some((center, w, h, a))) => {
                    assert!(close(r.center, center, 1e-3), "{}: {r:?}", c.name);
                    assert!((r.width - w).abs() < 1e-3, "{}: {r:?}", c.name);
                    assert!((r.height - h).abs() < 1e-3, "{}: {r:?}", c.name);
                    // A zero-height rectangle has no preferred angle.
                    if h > 0.0 {
                        assert!((r.angle - a).abs() < 1e-2, "{}: {r:?}", c.name);
                    }
                }
                (g, w) => panic!("{}: got {g:?}, want {w:?}", c.name),
            }
        }
    }

    #[test]
    fn corners_follow_get_mini_boxes_order() {
        let r = RotatedRect {
            center: p(14.5, 6.5),
            width: 9.0,
            height: 3.0,
            angle: 0.0,
        };
        assert_quad(
            &r.corners(),
            &[p(10.0, 5.0), p(19.0, 5.0), p(19.0, 8.0), p(10.0, 8.0)],
            1e-5,
        );
        let r = RotatedRect {
            center: p(50.0, 50.0),
            width: 40.0,
            height: 10.0,
            angle: 30.0,
        };
        assert_quad(
            &r.corners(),
            &rect_corners(50.0, 50.0, 40.0, 10.0, 30.0),
            1e-3,
        );
    }

    #[test]
    fn area_and_perimeter() {
        let tri = [p(0.0, 0.0), p(4.0, 0.0), p(0.0, 3.0)];
        assert_eq!(polygon_area(&tri), 6.0);
        assert_eq!(polygon_perimeter(&tri), 12.0);
        let rect = BBox {
            x0: 1.0,
            y0: 1.0,
            x1: 11.0,
            y1: 6.0,
        }
        .to_quad();
        assert_eq!(polygon_area(&rect), 50.0);
        assert_eq!(polygon_perimeter(&rect), 30.0);
        assert_eq!(polygon_area(&rect[..2]), 0.0);
        assert_eq!(polygon_perimeter(&rect[..1]), 0.0);
    }

    #[test]
    fn unclip_axis_aligned_matches_clipper() {
        // 100 x 20: d = 2000 * 1.5 / 240 = 12.5, Clipper rounds -12.5 to -13.
        let q = [p(0.0, 0.0), p(100.0, 0.0), p(100.0, 20.0), p(0.0, 20.0)];
        assert_quad(
            &unclip(&q, 1.5),
            &[
                p(-13.0, -13.0),
                p(113.0, -13.0),
                p(113.0, 33.0),
                p(-13.0, 33.0),
            ],
            1e-4,
        );
        // Vertex order and orientation do not matter.
        let rev = [q[3], q[2], q[1], q[0]];
        assert_quad(&unclip(&rev, 1.5), &unclip(&q, 1.5), 1e-4);
        // Ratio 0 leaves the box.
        assert_quad(&unclip(&q, 0.0), &q, 1e-4);
    }

    #[test]
    fn unclip_rotated_grows_each_side_by_d() {
        let q = rect_corners(200.0, 100.0, 100.0, 20.0, 30.0);
        let r = unclip_rect(&q, 1.5).expect("rect");
        // d = 12.5; integer snapping moves sides by well under a pixel.
        assert!((r.width - 125.0).abs() < 1.5, "{r:?}");
        assert!((r.height - 45.0).abs() < 1.5, "{r:?}");
        assert!((r.angle - 30.0).abs() < 1.0, "{r:?}");
        assert!(close(r.center, p(200.0, 100.0), 1.0), "{r:?}");
    }

    #[test]
    fn unclip_degenerate_is_safe() {
        let dot = [p(5.0, 5.0); 4];
        assert_eq!(unclip_rect(&dot, 1.6), None);
        assert_eq!(unclip(&dot, 1.6), dot);
        let line = [p(0.0, 0.0), p(10.0, 0.0), p(10.0, 0.0), p(0.0, 0.0)];
        assert_eq!(unclip_rect(&line, 1.6), None);
        let nan = [p(f32::NAN, 0.0), p(1.0, 0.0), p(1.0, 1.0), p(0.0, 1.0)];
        assert_eq!(unclip_rect(&nan, 1.6), None);
        assert_eq!(unclip_rect(&line, f32::NAN), None);
    }

    fn signed_area_screen(q: &Quad) -> f64 {
        // Positive for clockwise on screen (y down).
        signed_area(q)
    }

    #[test]
    fn order_quad_table() {
        struct Case {
            name: &'static str,
            input: Quad,
            want: Quad,
        }
        let axis = [p(10.0, 10.0), p(50.0, 10.0), p(50.0, 20.0), p(10.0, 20.0)];
        let r15 = rect_corners(100.0, 100.0, 80.0, 20.0, 15.0);
        let rm15 = rect_corners(100.0, 100.0, 80.0, 20.0, -15.0);
        // A steep, long box from RapidOCR output: the long edge stays on top
        // because it spans more x than the short one (x-sort rule).
        let steep = [
            p(56.0, 246.0),
            p(150.0, 456.0),
            p(75.0, 545.0),
            p(0.0, 335.0),
        ];
        let cases = [
            Case {
                name: "axis shuffled",
                input: [axis[2], axis[0], axis[3], axis[1]],
                want: axis,
            },
            Case {
                name: "rotated 15 shuffled",
                input: [r15[3], r15[1], r15[0], r15[2]],
                want: r15,
            },
            Case {
                name: "rotated -15 shuffled",
                input: [rm15[1], rm15[3], rm15[2], rm15[0]],
                want: rm15,
            },
            Case {
                name: "steep long box",
                input: [steep[2], steep[0], steep[3], steep[1]],
                want: steep,
            },
            Case {
                name: "clipped, two corners on y=0 (imutils crosses these)",
                input: [
                    p(312.0, 0.0),
                    p(528.0, 106.0),
                    p(457.0, 146.0),
                    p(383.0, 0.0),
                ],
                want: [
                    p(383.0, 0.0),
                    p(528.0, 106.0),
                    p(457.0, 146.0),
                    p(312.0, 0.0),
                ],
            },
            Case {
                name: "diamond at 45 degrees (x ties keep input order)",
                input: [p(5.0, 10.0), p(0.0, 5.0), p(10.0, 5.0), p(5.0, 0.0)],
                want: [p(0.0, 5.0), p(5.0, 0.0), p(10.0, 5.0), p(5.0, 10.0)],
            },
            Case {
                name: "clipped at the right border, imutils still valid",
                input: [
                    p(121.0, 193.0),
                    p(171.0, 285.0),
                    p(193.0, 246.0),
                    p(161.0, 153.0),
                ],
                want: [
                    p(161.0, 153.0),
                    p(193.0, 246.0),
                    p(171.0, 285.0),
                    p(121.0, 193.0),
                ],
            },
            Case {
                name: "clipped at the top, imutils still valid",
                input: [p(23.0, 0.0), p(4.0, 65.0), p(0.0, 54.0), p(5.0, 0.0)],
                want: [p(0.0, 54.0), p(5.0, 0.0), p(23.0, 0.0), p(4.0, 65.0)],
            },
        ];
        for c in &cases {
            let got = order_quad(c.input);
            assert_quad(&got, &c.want, 1e-4);
            assert!(signed_area_screen(&got) > 0.0, "{}: not clockwise", c.name);
        }
        // Degenerate input returns a permutation, never panics.
        let nan = order_quad([p(f32::NAN, 0.0), p(1.0, 1.0), p(0.0, 0.0), p(1.0, 0.0)]);
        assert_eq!(nan.iter().filter(|q| q.x.is_nan()).count(), 1);
        let same = order_quad([p(1.0, 1.0); 4]);
        assert_eq!(same, [p(1.0, 1.0); 4]);
    }

    /// A 200x150 grey page with a 80x30 box rotated by `deg` around
    /// (100, 75): its left half red, its right half blue.
    fn page_with_box(deg: f64) -> (RgbImage, Quad) {
        let (s, c) = deg.to_radians().sin_cos();
        let img = RgbImage::from_fn(200, 150, |x, y| {
            let (dx, dy) = (x as f64 - 100.0, y as f64 - 75.0);
            let (u, v) = (dx * c + dy * s, -dx * s + dy * c);
            if u.abs() <= 40.0 && v.abs() <= 15.0 {
                if u < 0.0 {
                    image::Rgb([255, 0, 0])
                } else {
                    image::Rgb([0, 0, 255])
                }
            } else {
                image::Rgb([128, 128, 128])
            }
        });
        (img, rect_corners(100.0, 75.0, 80.0, 30.0, deg))
    }

    #[test]
    fn crop_quad_straightens_rotated_box() {
        for deg in [0.0, 20.0, -35.0] {
            let (img, quad) = page_with_box(deg);
            let crop = crop_quad(&img, &quad);
            let (w, h) = crop.dimensions();
            assert!(
                (79..=80).contains(&w) && (29..=30).contains(&h),
                "{deg}: {w}x{h}"
            );
            // Away from the edges and the red/blue seam the colours are pure.
            for y in 4..h - 4 {
                for x in 3..w / 2 - 3 {
                    assert!(crop.get_pixel(x, y)[0] > 200, "{deg}: ({x},{y}) not red");
                }
                for x in w / 2 + 3..w - 3 {
                    assert!(crop.get_pixel(x, y)[2] > 200, "{deg}: ({x},{y}) not blue");
                }
            }
        }
    }

    #[test]
    fn crop_quad_axis_aligned_is_exact_copy() {
        let img = RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 5, y as u8 * 7, 9]));
        let q = [p(10.0, 5.0), p(30.0, 5.0), p(30.0, 17.0), p(10.0, 17.0)];
        let crop = crop_quad(&img, &q);
        assert_eq!(crop.dimensions(), (20, 12));
        for (x, y, px) in crop.enumerate_pixels() {
            assert_eq!(px, img.get_pixel(x + 10, y + 5), "({x},{y})");
        }
    }

    #[test]
    fn crop_quad_turns_tall_crops_counter_clockwise() {
        // 20 wide, 60 tall: top third red, the rest blue.
        let img = RgbImage::from_fn(100, 100, |_, y| {
            if y < 40 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let q = [p(20.0, 20.0), p(40.0, 20.0), p(40.0, 80.0), p(20.0, 80.0)];
        let crop = crop_quad(&img, &q);
        assert_eq!(crop.dimensions(), (60, 20));
        // np.rot90: the top of the region ends up on the left.
        assert_eq!(crop.get_pixel(2, 10)[0], 255);
        assert_eq!(crop.get_pixel(57, 10)[2], 255);
        // 1.5 exactly also turns; just below does not.
        let q15 = [p(0.0, 0.0), p(20.0, 0.0), p(20.0, 30.0), p(0.0, 30.0)];
        assert_eq!(crop_quad(&img, &q15).dimensions(), (30, 20));
        let q14 = [p(0.0, 0.0), p(20.0, 0.0), p(20.0, 29.0), p(0.0, 29.0)];
        assert_eq!(crop_quad(&img, &q14).dimensions(), (20, 29));
    }

    #[test]
    fn crop_quad_degenerate_never_panics() {
        let img = RgbImage::from_pixel(50, 40, image::Rgb([1, 2, 3]));
        struct Case {
            name: &'static str,
            quad: Quad,
            max_side: u32,
        }
        let cases = [
            Case {
                name: "point",
                quad: [p(5.0, 5.0); 4],
                max_side: 1,
            },
            Case {
                name: "nan",
                quad: [p(f32::NAN, 0.0), p(1.0, 0.0), p(1.0, 1.0), p(0.0, f32::NAN)],
                max_side: 90,
            },
            Case {
                name: "huge",
                quad: [
                    p(-1e30, -1e30),
                    p(1e30, -1e30),
                    p(1e30, 1e30),
                    p(-1e30, 1e30),
                ],
                max_side: 90,
            },
            Case {
                name: "bow tie",
                quad: [p(0.0, 0.0), p(10.0, 10.0), p(10.0, 0.0), p(0.0, 10.0)],
                max_side: 90,
            },
            Case {
                name: "outside the page",
                quad: [
                    p(500.0, 500.0),
                    p(520.0, 500.0),
                    p(520.0, 510.0),
                    p(500.0, 510.0),
                ],
                max_side: 90,
            },
        ];
        for c in &cases {
            let crop = crop_quad(&img, &c.quad);
            let (w, h) = crop.dimensions();
            assert!(
                w >= 1 && h >= 1 && w <= c.max_side && h <= c.max_side,
                "{}",
                c.name
            );
            assert_eq!(crop.get_pixel(0, 0), &image::Rgb([1, 2, 3]), "{}", c.name);
        }
        let empty = RgbImage::new(0, 0);
        assert_eq!(crop_quad(&empty, &cases[0].quad).dimensions(), (1, 1));
    }

    fn det(x: f32, y: f32, w: f32, h: f32) -> DetBox {
        DetBox {
            quad: BBox {
                x0: x,
                y0: y,
                x1: x + w,
                y1: y + h,
            }
            .to_quad(),
            score: x * 1000.0 + y,
        }
    }

    #[test]
    fn sort_reading_order_table() {
        struct Case {
            name: &'static str,
            boxes: Vec<DetBox>,
            // Expected order as (x, y) of the top-left corners.
            want: Vec<(f32, f32)>,
        }
        let cases = [
            Case {
                name: "two lines with jitter",
                boxes: vec![
                    det(300.0, 52.0, 80.0, 20.0),
                    det(10.0, 10.0, 80.0, 20.0),
                    det(10.0, 50.0, 80.0, 20.0),
                    det(200.0, 14.0, 80.0, 20.0),
                    det(100.0, 8.0, 80.0, 20.0),
                ],
                want: vec![
                    (10.0, 10.0),
                    (100.0, 8.0),
                    (200.0, 14.0),
                    (10.0, 50.0),
                    (300.0, 52.0),
                ],
            },
            Case {
                name: "tall boxes tolerate more than 10 px",
                boxes: vec![
                    det(200.0, 112.0, 100.0, 40.0),
                    det(10.0, 100.0, 100.0, 40.0),
                ],
                want: vec![(10.0, 100.0), (200.0, 112.0)],
            },
            Case {
                name: "small boxes split at less than 10 px",
                boxes: vec![det(200.0, 100.0, 30.0, 8.0), det(10.0, 106.0, 30.0, 8.0)],
                want: vec![(200.0, 100.0), (10.0, 106.0)],
            },
            Case {
                name: "empty",
                boxes: vec![],
                want: vec![],
            },
        ];
        for mut c in cases {
            sort_reading_order(&mut c.boxes);
            let got: Vec<(f32, f32)> = c.boxes.iter().map(|b| (b.quad[0].x, b.quad[0].y)).collect();
            assert_eq!(got, c.want, "{}", c.name);
            for b in &c.boxes {
                assert_eq!(
                    b.score,
                    b.quad[0].x * 1000.0 + b.quad[0].y,
                    "{}: box moved apart from its score",
                    c.name
                );
            }
        }
        // NaN coordinates do not panic.
        let mut odd = vec![
            det(f32::NAN, 1.0, 1.0, 1.0),
            det(0.0, f32::NAN, 1.0, 1.0),
            det(0.0, 0.0, 1.0, 1.0),
        ];
        sort_reading_order(&mut odd);
        assert_eq!(odd.len(), 3);
    }
}
