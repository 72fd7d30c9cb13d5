//! Tiling for pages larger than the detector's input limit, and the merge of
//! detections across tile seams.
//!
//! A page is cut into a grid of overlapping tiles ([`plan_tiles`]); the
//! detector runs on each; its boxes are moved to page coordinates by the
//! caller and [`merge_across_seams`] joins the pieces of a line that crossed
//! a seam and drops the duplicates found in two tiles' overlap.

use crate::types::{BBox, DetBox, Point, Quad};

/// A tile of the page, in page pixels: `x..x + w`, `y..y + h`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TileRect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Cuts a `width` x `height` page into tiles of at most `max_side` px a side.
///
/// One tile when the page fits. Otherwise, per axis, the fewest tiles of
/// exactly `max_side` px whose neighbours overlap by at least `overlap` px,
/// spread evenly so the first starts at 0 and the last ends at the page edge
/// (the overlap comes out larger than asked when the page allows). Tiles are
/// listed row by row, top-left first.
///
/// Never panics: an empty page gives no tiles; `max_side == 0` gives one tile
/// of the whole page; `overlap` is cut to `max_side / 2`, which keeps the
/// tile count near `2 * page / max_side` per axis.
pub fn plan_tiles(width: u32, height: u32, max_side: u32, overlap: u32) -> Vec<TileRect> {
    if width == 0 || height == 0 {
        return Vec::new();
    }
    let xs = axis_spans(width, max_side, overlap);
    let ys = axis_spans(height, max_side, overlap);
    ys.iter()
        .flat_map(|&(y, h)| xs.iter().map(move |&(x, w)| TileRect { x, y, w, h }))
        .collect()
}

/// (start, length) of each tile along one axis of `len` px.
fn axis_spans(len: u32, max_side: u32, overlap: u32) -> Vec<(u32, u32)> {
    if max_side == 0 || len <= max_side {
        return vec![(0, len)];
    }
    let overlap = overlap.min(max_side / 2);
    let stride = u64::from(max_side - overlap).max(1);
    let (len, side) = (u64::from(len), u64::from(max_side));
    // n tiles reach n * side - (n - 1) * overlap >= len.
    let n = (len - u64::from(overlap)).div_ceil(stride).max(2);
    let span = len - side;
    (0..n)
        .map(|i| {
            // floor(i * span / (n - 1)): steps differ by at most 1 and never
            // exceed ceil(span / (n - 1)) <= stride, so overlaps hold.
            let start = i * span / (n - 1);
            (start as u32, max_side)
        })
        .collect()
}

/// Joins detections of the same text found in different tiles. `boxes` hold
/// each box's tile index and its quad already in page coordinates.
///
/// Two groups of boxes merge when they hold boxes of two different tiles
/// (boxes of one tile never merge with each other directly: the detector
/// already separated them) and their axis-aligned extents either
/// - overlap by at least half of the smaller one's area (a duplicate), or
/// - overlap in x by more than 0 px and in y by at least half of the smaller
///   height (one text row cut at a seam: each tile sees a partial line and
///   the partials overlap in the tiles' overlap).
///
/// Merging repeats until nothing changes, so a line crossing two seams comes
/// out whole. A merged group becomes the minimum-area rectangle around all
/// its corners (corners ordered clockwise from the top-left, as the
/// detector's), with the highest score; a box that merged with nothing is
/// returned unchanged. Output order follows the first box of each group.
pub fn merge_across_seams(boxes: Vec<(usize, DetBox)>) -> Vec<DetBox> {
    let single_tile = boxes.windows(2).all(|w| w[0].0 == w[1].0);
    if single_tile {
        return boxes.into_iter().map(|(_, b)| b).collect();
    }
    let mut groups: Vec<Group> = boxes.into_iter().enumerate().map(Group::new).collect();
    loop {
        let mut merged_any = false;
        let mut i = 0;
        while i < groups.len() {
            let mut j = i + 1;
            while j < groups.len() {
                if groups[i].mergeable(&groups[j]) {
                    let other = groups.swap_remove(j);
                    groups[i].absorb(other);
                    merged_any = true;
                    // The grown box may now reach groups already passed.
                    j = i + 1;
                } else {
                    j += 1;
                }
            }
            i += 1;
        }
        if !merged_any {
            break;
        }
    }
    groups.sort_by_key(|g| g.order);
    groups.into_iter().map(Group::into_box).collect()
}

/// Boxes merged so far.
struct Group {
    /// Index of the earliest input box, for a stable output order.
    order: usize,
    /// Tile indices present, sorted, deduplicated.
    tiles: Vec<usize>,
    quads: Vec<Quad>,
    bbox: BBox,
    score: f32,
}

impl Group {
    fn new((order, (tile, b)): (usize, (usize, DetBox))) -> Self {
        let bbox = BBox::around(&b.quad).unwrap_or_default();
        Self {
            order,
            tiles: vec![tile],
            quads: vec![b.quad],
            bbox,
            score: b.score,
        }
    }

    fn mergeable(&self, other: &Group) -> bool {
        let same_single_tile = self.tiles.len() == 1 && self.tiles == other.tiles;
        !same_single_tile && same_text(&self.bbox, &other.bbox)
    }

    fn absorb(&mut self, other: Group) {
        self.order = self.order.min(other.order);
        self.tiles.extend(other.tiles);
        self.tiles.sort_unstable();
        self.tiles.dedup();
        self.quads.extend(other.quads);
        self.bbox = self.bbox.union(&other.bbox);
        self.score = if other.score > self.score || self.score.is_nan() {
            other.score
        } else {
            self.score
        };
    }

    fn into_box(self) -> DetBox {
        let quad = match self.quads.as_slice() {
            [one] => *one,
            many => {
                let points: Vec<Point> = many.iter().flatten().copied().collect();
                min_area_rect(&points).unwrap_or_else(|| self.bbox.to_quad())
            }
        };
        DetBox {
            quad,
            score: self.score,
        }
    }
}

/// The seam-merge test on two axis-aligned extents.
fn same_text(a: &BBox, b: &BBox) -> bool {
    let smaller_area = a.area().min(b.area());
    if let Some(inter) = a.intersection(b) {
        if smaller_area > 0.0 && inter.area() >= 0.5 * smaller_area {
            return true;
        }
    }
    let x_overlap = a.x1.min(b.x1) - a.x0.max(b.x0);
    let y_overlap = a.y1.min(b.y1) - a.y0.max(b.y0);
    let smaller_h = a.height().min(b.height());
    x_overlap > 0.0 && y_overlap > 0.0 && y_overlap >= 0.5 * smaller_h
}

/// Minimum-area enclosing rectangle of `points` (rotating calipers over the
/// convex hull), corners ordered as PaddleOCR's `get_mini_boxes`: the two
/// leftmost points give top-left / bottom-left, the two rightmost top-right /
/// bottom-right. `None` for fewer than one finite point.
fn min_area_rect(points: &[Point]) -> Option<Quad> {
    let hull = convex_hull(points);
    if hull.len() < 3 {
        return BBox::around(&hull).map(|b| b.to_quad());
    }
    let mut best: Option<(f32, Quad)> = None;
    for k in 0..hull.len() {
        let (p, q) = (hull[k], hull[(k + 1) % hull.len()]);
        let (dx, dy) = (q.x - p.x, q.y - p.y);
        let len = (dx * dx + dy * dy).sqrt();
        if len <= 0.0 {
            continue;
        }
        let (ux, uy) = (dx / len, dy / len);
        let (mut u0, mut u1, mut v0, mut v1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for h in &hull {
            let u = h.x * ux + h.y * uy;
            let v = -h.x * uy + h.y * ux;
            u0 = u0.min(u);
            u1 = u1.max(u);
            v0 = v0.min(v);
            v1 = v1.max(v);
        }
        let area = (u1 - u0) * (v1 - v0);
        if best.as_ref().is_none_or(|(a, _)| area < *a) {
            let at = |u: f32, v: f32| Point::new(u * ux - v * uy, u * uy + v * ux);
            best = Some((area, [at(u0, v0), at(u1, v0), at(u1, v1), at(u0, v1)]));
        }
    }
    best.map(|(_, rect)| order_corners(rect))
}

/// Orders four corners clockwise from the top-left (y down).
fn order_corners(mut pts: Quad) -> Quad {
    pts.sort_by(|a, b| a.x.total_cmp(&b.x));
    let (mut tl, mut bl) = (pts[0], pts[1]);
    if bl.y < tl.y {
        std::mem::swap(&mut tl, &mut bl);
    }
    let (mut tr, mut br) = (pts[2], pts[3]);
    if br.y < tr.y {
        std::mem::swap(&mut tr, &mut br);
    }
    [tl, tr, br, bl]
}

/// Convex hull (Andrew's monotone chain) of the finite points.
fn convex_hull(points: &[Point]) -> Vec<Point> {
    let mut pts: Vec<Point> = points
        .iter()
        .copied()
        .filter(|p| p.x.is_finite() && p.y.is_finite())
        .collect();
    pts.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross =
        |o: Point, a: Point, b: Point| (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
    let mut hull: Vec<Point> = Vec::with_capacity(pts.len() * 2);
    for pass in [&pts[..], &pts.iter().rev().copied().collect::<Vec<_>>()[..]] {
        let start = hull.len();
        for &p in pass {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// Pixels that must stand out from the background before a tile is worth
/// the detector: fewer than this cannot make a line the detector keeps (a
/// box needs a short side of 3 px at the model's scale and a mean
/// probability of 0.6) that the recogniser would read as a word.
const BLANK_MAX_INK: u64 = 64;
/// How far from the background's grey level, of 255, a pixel must be to
/// count as ink.
const INK_CONTRAST: u8 = 48;

/// True when `img` is blank: fewer than [`BLANK_MAX_INK`] pixels differ by
/// more than [`INK_CONTRAST`] from its most common grey level. The
/// detector is skipped for such a page or tile: a blank back of a scanned
/// sheet, or the margin tiles of a large page. Scanner noise keeps a page
/// from counting as blank (Gaussian noise of sigma 14 puts about 0.06% of
/// the pixels past the contrast), so only clean blank areas are skipped.
pub fn is_blank(img: &image::RgbImage) -> bool {
    let luma = |p: &[u8]| {
        ((u32::from(p[0]) * 77 + u32::from(p[1]) * 150 + u32::from(p[2]) * 29) >> 8) as u8
    };
    let mut hist = [0u64; 256];
    for p in img.as_raw().chunks_exact(3) {
        hist[usize::from(luma(p))] += 1;
    }
    let background = hist
        .iter()
        .enumerate()
        .max_by_key(|(_, n)| **n)
        .map_or(0, |(v, _)| v as i32);
    let ink: u64 = hist
        .iter()
        .enumerate()
        .filter(|(v, _)| (*v as i32 - background).unsigned_abs() > u32::from(INK_CONTRAST))
        .map(|(_, n)| *n)
        .sum();
    ink < BLANK_MAX_INK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x0: f32, y0: f32, x1: f32, y1: f32, score: f32) -> DetBox {
        DetBox {
            quad: BBox { x0, y0, x1, y1 }.to_quad(),
            score,
        }
    }

    fn extent(b: &DetBox) -> BBox {
        BBox::around(&b.quad).unwrap()
    }

    fn assert_extent(b: &DetBox, want: (f32, f32, f32, f32)) {
        let e = extent(b);
        let got = (e.x0, e.y0, e.x1, e.y1);
        let close = [
            (got.0, want.0),
            (got.1, want.1),
            (got.2, want.2),
            (got.3, want.3),
        ]
        .iter()
        .all(|(g, w)| (g - w).abs() < 0.01);
        assert!(close, "extent {got:?}, want {want:?}");
    }

    fn assert_covers(tiles: &[TileRect], width: u32, height: u32, max_side: u32, overlap: u32) {
        for t in tiles {
            if max_side > 0 {
                assert!(t.w <= max_side && t.h <= max_side, "{t:?} above {max_side}");
            }
            assert!(
                t.x + t.w <= width && t.y + t.h <= height,
                "{t:?} outside {width}x{height}"
            );
        }
        // Every column and row is covered; neighbours overlap enough.
        let mut xs: Vec<(u32, u32)> = tiles.iter().map(|t| (t.x, t.w)).collect();
        xs.sort_unstable();
        xs.dedup();
        let mut ys: Vec<(u32, u32)> = tiles.iter().map(|t| (t.y, t.h)).collect();
        ys.sort_unstable();
        ys.dedup();
        assert_eq!(tiles.len(), xs.len() * ys.len());
        for (spans, len) in [(xs, width), (ys, height)] {
            assert_eq!(spans[0].0, 0);
            let last = spans[spans.len() - 1];
            assert_eq!(last.0 + last.1, len);
            for w in spans.windows(2) {
                let ov = (w[0].0 + w[0].1).saturating_sub(w[1].0);
                assert!(
                    ov >= overlap.min(max_side / 2),
                    "overlap {ov} < {overlap} in {spans:?}"
                );
            }
        }
    }

    #[test]
    fn plan_tiles_table() {
        struct Case {
            w: u32,
            h: u32,
            max: u32,
            overlap: u32,
            tiles: usize,
        }
        let cases = [
            Case {
                w: 1700,
                h: 2000,
                max: 2000,
                overlap: 200,
                tiles: 1,
            },
            Case {
                w: 4400,
                h: 1000,
                max: 2000,
                overlap: 200,
                tiles: 3,
            },
            Case {
                w: 2001,
                h: 1000,
                max: 2000,
                overlap: 200,
                tiles: 2,
            },
            Case {
                w: 3800,
                h: 3800,
                max: 2000,
                overlap: 200,
                tiles: 4,
            },
            Case {
                w: 3801,
                h: 5000,
                max: 2000,
                overlap: 200,
                tiles: 9,
            },
            Case {
                w: 5000,
                h: 100,
                max: 1000,
                overlap: 5000,
                tiles: 9,
            },
            Case {
                w: 100,
                h: 100,
                max: 0,
                overlap: 0,
                tiles: 1,
            },
            Case {
                w: 100,
                h: 100,
                max: 10,
                overlap: 10,
                tiles: 19 * 19,
            },
        ];
        for c in cases {
            let tiles = plan_tiles(c.w, c.h, c.max, c.overlap);
            assert_eq!(tiles.len(), c.tiles, "{}x{} max {}", c.w, c.h, c.max);
            assert_covers(&tiles, c.w, c.h, c.max, c.overlap);
        }
        assert!(plan_tiles(0, 100, 2000, 200).is_empty());
        assert!(plan_tiles(100, 0, 2000, 200).is_empty());
    }

    #[test]
    fn plan_tiles_exact_layout() {
        let tiles = plan_tiles(4400, 1000, 2000, 200);
        let xs: Vec<(u32, u32)> = tiles.iter().map(|t| (t.x, t.w)).collect();
        assert_eq!(xs, vec![(0, 2000), (1200, 2000), (2400, 2000)]);
        assert!(tiles.iter().all(|t| t.y == 0 && t.h == 1000));
        let grid = plan_tiles(3000, 2500, 2000, 100);
        let want = [(0, 0), (1000, 0), (0, 500), (1000, 500)];
        assert_eq!(grid.iter().map(|t| (t.x, t.y)).collect::<Vec<_>>(), want);
    }

    #[test]
    fn seam_split_line_becomes_one_box() {
        // Tiles 0..2000 and 1200..3200; the line runs from 1500 to 2600.
        let merged = merge_across_seams(vec![
            (0, det(1500.0, 100.0, 2000.0, 130.0, 0.8)),
            (1, det(1200.0, 101.0, 2600.0, 131.0, 0.9)),
        ]);
        assert_eq!(merged.len(), 1);
        assert_extent(&merged[0], (1200.0, 100.0, 2600.0, 131.0));
        assert_eq!(merged[0].score, 0.9);
    }

    #[test]
    fn line_across_two_seams_comes_out_whole() {
        // Tiles at 0, 1200, 2400 (2000 wide); the line spans 1000..3500.
        let merged = merge_across_seams(vec![
            (2, det(2400.0, 50.0, 3500.0, 80.0, 0.7)),
            (0, det(1000.0, 50.0, 2000.0, 80.0, 0.6)),
            (1, det(1200.0, 51.0, 3200.0, 79.0, 0.9)),
            (1, det(1200.0, 300.0, 1500.0, 330.0, 0.5)),
        ]);
        assert_eq!(merged.len(), 2);
        assert_extent(&merged[0], (1000.0, 50.0, 3500.0, 80.0));
        assert_eq!(merged[0].score, 0.9);
        assert_eq!(
            extent(&merged[1]),
            BBox {
                x0: 1200.0,
                y0: 300.0,
                x1: 1500.0,
                y1: 330.0
            }
        );
    }

    #[test]
    fn separate_lines_and_same_tile_boxes_stay_apart() {
        let input = vec![
            // Two lines on one row of tile 0, and two stacked lines.
            (0, det(100.0, 100.0, 400.0, 130.0, 0.9)),
            (0, det(390.0, 100.0, 700.0, 130.0, 0.9)),
            (0, det(100.0, 135.0, 400.0, 165.0, 0.9)),
            // A line in tile 1 on another row.
            (1, det(2100.0, 500.0, 2500.0, 530.0, 0.9)),
            // Tile 1 sees a line of a row whose x does not reach tile 0's.
            (1, det(800.0, 100.0, 1000.0, 130.0, 0.9)),
        ];
        let merged = merge_across_seams(input.clone());
        assert_eq!(
            merged,
            input.into_iter().map(|(_, b)| b).collect::<Vec<_>>()
        );
    }

    #[test]
    fn duplicate_detections_collapse() {
        let merged = merge_across_seams(vec![
            (0, det(1300.0, 200.0, 1600.0, 230.0, 0.8)),
            (1, det(1301.0, 199.0, 1601.0, 231.0, 0.85)),
            (3, det(1299.0, 200.0, 1600.0, 230.0, 0.7)),
        ]);
        assert_eq!(merged.len(), 1);
        assert_extent(&merged[0], (1299.0, 199.0, 1601.0, 231.0));
        assert_eq!(merged[0].score, 0.85);
    }

    #[test]
    fn merged_tilted_line_keeps_its_angle() {
        // A line rising 10 px over 1000 px, split at x = 1000.
        let quad = |x0: f32, x1: f32| -> Quad {
            let y = |x: f32| 200.0 - (x - 500.0) / 100.0;
            [
                Point::new(x0, y(x0)),
                Point::new(x1, y(x1)),
                Point::new(x1, y(x1) + 30.0),
                Point::new(x0, y(x0) + 30.0),
            ]
        };
        let merged = merge_across_seams(vec![
            (
                0,
                DetBox {
                    quad: quad(500.0, 1100.0),
                    score: 0.9,
                },
            ),
            (
                1,
                DetBox {
                    quad: quad(900.0, 1500.0),
                    score: 0.9,
                },
            ),
        ]);
        assert_eq!(merged.len(), 1);
        // The quads are parallelograms with upright sides; the min-area
        // rectangle around both follows the slope, within a fraction of a px.
        let q = merged[0].quad;
        let want = quad(500.0, 1500.0);
        for (got, want) in q.iter().zip(want.iter()) {
            assert!(
                (got.x - want.x).abs() < 0.5 && (got.y - want.y).abs() < 0.5,
                "{q:?}"
            );
        }
        let slope = (q[1].y - q[0].y) / (q[1].x - q[0].x);
        assert!((slope + 0.01).abs() < 1e-3, "slope {slope}");
    }

    #[test]
    fn merge_handles_empty_and_degenerate_input() {
        assert!(merge_across_seams(Vec::new()).is_empty());
        let nan = DetBox {
            quad: [Point::new(f32::NAN, f32::NAN); 4],
            score: f32::NAN,
        };
        let out = merge_across_seams(vec![
            (0, nan.clone()),
            (1, nan),
            (1, det(0.0, 0.0, 0.0, 0.0, 0.5)),
        ]);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn blank_is_a_clean_page_without_ink() {
        let mut page = image::RgbImage::from_pixel(400, 300, image::Rgb([250, 250, 248]));
        assert!(is_blank(&page));
        // A dark page is blank too: the background is its commonest level.
        assert!(is_blank(&image::RgbImage::from_pixel(
            50,
            50,
            image::Rgb([20, 20, 20])
        )));
        // Faint marks (under the contrast) do not count.
        for x in 0..200 {
            page.put_pixel(x, 10, image::Rgb([215, 215, 215]));
        }
        assert!(is_blank(&page));
        // A lone digit of about 8 x 12 px is ink.
        for y in 100..112 {
            for x in 100..108 {
                page.put_pixel(x, y, image::Rgb([30, 30, 30]));
            }
        }
        assert!(!is_blank(&page));
        // So is a dim, thin underline across the page.
        let mut lined = image::RgbImage::from_pixel(400, 300, image::Rgb([255, 255, 255]));
        for x in 0..100 {
            lined.put_pixel(x, 150, image::Rgb([150, 150, 150]));
        }
        assert!(!is_blank(&lined));
    }
}
