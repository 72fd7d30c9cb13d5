//! Reading order from regions, as pure functions on boxes: which region
//! each line falls in, and the order of regions and lines on a page.
//!
//! Headers come first and footers last (each top to bottom, then left to
//! right). The body is read by a recursive XY cut that tries a vertical
//! gutter before a horizontal gap at every level: columns left to right,
//! each top to bottom, and a full-width region (a title, a wide table)
//! splits the page into bands read top to bottom, since it spans every
//! gutter. Trying gutters first keeps two columns apart even when their
//! paragraph breaks happen to line up. Lines that fall in no region take
//! part as regions of their own, so they are read where they stand.

use crate::types::BBox;

/// Where a region's text goes in the page's reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Header,
    Body,
    Footer,
}

impl Role {
    /// The role of a layout class: `header` and `footer` are read apart
    /// from the body; every other class is body.
    pub fn of(class: &str) -> Self {
        match class {
            "header" => Role::Header,
            "footer" => Role::Footer,
            _ => Role::Body,
        }
    }
}

/// For each line, the region it overlaps most, each overlap (intersection
/// area) weighted by the region's score; `None` when it overlaps none.
/// `regions` are (box, score). The weight matters where the model gives
/// two boxes of different classes over the same place (a column called
/// both `text` and `reference`, a title block inside a weak `title` box a
/// few pixels larger): the line goes to the one the model is surer of,
/// not to whichever box happens to be a pixel taller.
pub fn assign(lines: &[BBox], regions: &[(BBox, f32)]) -> Vec<Option<usize>> {
    lines
        .iter()
        .map(|l| {
            let mut best: Option<(f32, usize)> = None;
            for (i, (r, score)) in regions.iter().enumerate() {
                let Some(inter) = l.intersection(r) else {
                    continue;
                };
                let w = inter.area() * score.max(1e-6);
                if best.is_none_or(|(bw, _)| w > bw) {
                    best = Some((w, i));
                }
            }
            best.map(|(_, i)| i)
        })
        .collect()
}

/// The reading order of `items` (box, role): their indices, headers first,
/// then the body by XY cut, then footers.
pub fn reading_order(items: &[(BBox, Role)]) -> Vec<usize> {
    let pick =
        |role: Role| -> Vec<usize> { (0..items.len()).filter(|&i| items[i].1 == role).collect() };
    let boxes: Vec<BBox> = items.iter().map(|i| i.0).collect();
    let mut out = Vec::with_capacity(items.len());
    out.extend(top_down(&boxes, pick(Role::Header)));
    xy_cut(&boxes, pick(Role::Body), &mut out);
    out.extend(top_down(&boxes, pick(Role::Footer)));
    out
}

/// Sorted top to bottom, then left to right.
fn top_down(boxes: &[BBox], mut idx: Vec<usize>) -> Vec<usize> {
    idx.sort_by(|&a, &b| {
        let (a, b) = (&boxes[a], &boxes[b]);
        a.y0.total_cmp(&b.y0).then(a.x0.total_cmp(&b.x0))
    });
    idx
}

#[derive(Clone, Copy)]
enum Axis {
    X,
    Y,
}

fn xy_cut(boxes: &[BBox], idx: Vec<usize>, out: &mut Vec<usize>) {
    if idx.len() <= 1 {
        out.extend(idx);
        return;
    }
    for axis in [Axis::X, Axis::Y] {
        if let Some((first, rest)) = split(boxes, &idx, axis) {
            xy_cut(boxes, first, out);
            xy_cut(boxes, rest, out);
            return;
        }
    }
    out.extend(top_down(boxes, idx));
}

/// Splits `idx` at the first gap along `axis` that no box spans: the
/// boxes before it (left of or above) and the rest. `None` without a gap.
/// A vertical gutter counts only between boxes that stand side by side:
/// the two sides' vertical extents must overlap by half the shorter one,
/// so a page number centred under two columns (in line with the gutter)
/// is read after them, not between them.
fn split(boxes: &[BBox], idx: &[usize], axis: Axis) -> Option<(Vec<usize>, Vec<usize>)> {
    let span = |i: usize| match axis {
        Axis::X => (boxes[i].x0, boxes[i].x1),
        Axis::Y => (boxes[i].y0, boxes[i].y1),
    };
    let mut sorted = idx.to_vec();
    sorted.sort_by(|&a, &b| span(a).0.total_cmp(&span(b).0));
    let mut end = span(sorted[0]).1;
    for k in 1..sorted.len() {
        let (start, stop) = span(sorted[k]);
        if start > end
            && (matches!(axis, Axis::Y) || side_by_side(boxes, &sorted[..k], &sorted[k..]))
        {
            let rest = sorted.split_off(k);
            return Some((sorted, rest));
        }
        end = end.max(stop);
    }
    None
}

/// Whether two groups of boxes overlap vertically by at least half the
/// shorter group's height.
fn side_by_side(boxes: &[BBox], a: &[usize], b: &[usize]) -> bool {
    let extent = |g: &[usize]| {
        g.iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &i| {
                (lo.min(boxes[i].y0), hi.max(boxes[i].y1))
            })
    };
    let (a, b) = (extent(a), extent(b));
    let overlap = a.1.min(b.1) - a.0.max(b.0);
    overlap > 0.0 && overlap >= 0.5 * (a.1 - a.0).min(b.1 - b.0)
}

/// The order of a page's regions and lines. `regions` are (box, role);
/// `line_boxes` are the lines in their current order and `assigned` their
/// regions ([`assign`]). Returns each region's rank in reading order and
/// the lines' new order (indices into `line_boxes`): each region's lines
/// in their current order, regions in reading order, and lines of no
/// region read where they stand.
pub fn page_order(
    regions: &[(BBox, Role)],
    line_boxes: &[BBox],
    assigned: &[Option<usize>],
) -> (Vec<usize>, Vec<usize>) {
    // Units: every region, then every line of no region.
    let mut units: Vec<(BBox, Role)> = regions.to_vec();
    let loose: Vec<usize> = (0..line_boxes.len())
        .filter(|&l| assigned.get(l).copied().flatten().is_none())
        .collect();
    units.extend(loose.iter().map(|&l| (line_boxes[l], Role::Body)));
    let order = reading_order(&units);
    let mut rank = vec![0usize; regions.len()];
    let mut lines = Vec::with_capacity(line_boxes.len());
    let mut next = 0;
    for u in order {
        if u < regions.len() {
            rank[u] = next;
            next += 1;
            lines.extend((0..line_boxes.len()).filter(|&l| assigned.get(l) == Some(&Some(u))));
        } else {
            lines.push(loose[u - regions.len()]);
        }
    }
    (rank, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f32, y0: f32, x1: f32, y1: f32) -> BBox {
        BBox { x0, y0, x1, y1 }
    }

    #[test]
    fn a_line_goes_to_the_region_it_overlaps_most_by_score() {
        // The line (100-500 x 20-40) is wholly in a weak box and, but for
        // the weak box's extra pixel row, in a strong one: 400 x 20 x 0.53
        // = 4240 against 400 x 19 x 0.98 = 7448.
        let regions = [
            (b(90., 20., 600., 900.), 0.53),
            (b(90., 21., 600., 899.), 0.98),
        ];
        assert_eq!(assign(&[b(100., 20., 500., 40.)], &regions), vec![Some(1)]);
    }

    #[test]
    fn a_line_goes_to_the_region_it_overlaps_most() {
        let regions = [
            (b(0., 0., 100., 100.), 0.9),
            (b(90., 0., 200., 100.), 0.6),
            // The same box as the first, scored higher: wins the tie.
            (b(0., 0., 100., 100.), 0.95),
        ];
        let lines = [
            // 70 px wide in the first/third box, 20 in the second.
            b(30., 10., 110., 20.),
            // 10 px in the first/third, 60 in the second.
            b(90., 30., 150., 40.),
            // Outside every region.
            b(300., 0., 310., 10.),
        ];
        assert_eq!(assign(&lines, &regions), vec![Some(2), Some(1), None]);
    }

    #[test]
    fn two_columns_are_read_column_by_column() {
        // A full-width title, two columns whose paragraph breaks line up
        // (a horizontal cut first would interleave them), a footer, and a
        // header given last.
        let items = [
            (b(100., 100., 900., 150.), Role::Body),   // 0 title
            (b(100., 200., 480., 500.), Role::Body),   // 1 left, para 1
            (b(520., 200., 900., 500.), Role::Body),   // 2 right, para 1
            (b(100., 520., 480., 900.), Role::Body),   // 3 left, para 2
            (b(520., 520., 900., 900.), Role::Body),   // 4 right, para 2
            (b(450., 950., 550., 970.), Role::Footer), // 5 page number
            (b(100., 20., 900., 40.), Role::Header),   // 6 running head
        ];
        assert_eq!(reading_order(&items), vec![6, 0, 1, 3, 2, 4, 5]);
    }

    #[test]
    fn a_page_number_in_line_with_the_gutter_is_read_after_the_columns() {
        let items = [
            (b(100., 100., 480., 900.), Role::Body), // 0 left column
            (b(495., 950., 505., 970.), Role::Body), // 1 page number, not a footer
            (b(520., 100., 900., 900.), Role::Body), // 2 right column
        ];
        assert_eq!(reading_order(&items), vec![0, 2, 1]);
    }

    #[test]
    fn a_full_width_block_splits_the_columns_into_bands() {
        let items = [
            (b(100., 100., 480., 400.), Role::Body), // 0 left, top band
            (b(520., 100., 900., 400.), Role::Body), // 1 right, top band
            (b(100., 450., 900., 600.), Role::Body), // 2 wide table
            (b(100., 650., 480., 900.), Role::Body), // 3 left, bottom band
            (b(520., 650., 900., 900.), Role::Body), // 4 right, bottom band
        ];
        assert_eq!(reading_order(&items), vec![0, 1, 2, 3, 4]);
        // Boxes that overlap both ways (no cut) read top-down, left-right.
        let tangled = [
            (b(0., 10., 100., 100.), Role::Body),
            (b(50., 0., 150., 50.), Role::Body),
            (b(90., 40., 200., 120.), Role::Body),
        ];
        assert_eq!(reading_order(&tangled), vec![1, 0, 2]);
    }

    #[test]
    fn page_order_reads_regions_then_loose_lines_where_they_stand() {
        let regions = [
            (b(520., 100., 900., 500.), Role::Body),   // 0 right column
            (b(100., 100., 480., 500.), Role::Body),   // 1 left column
            (b(100., 950., 900., 990.), Role::Footer), // 2 footer
        ];
        // Lines as a row-wise reader gives them: left, right, left, right,
        // then a line under both columns in no region, then the footer.
        let lines = [
            b(110., 110., 470., 130.),
            b(530., 110., 890., 130.),
            b(110., 140., 470., 160.),
            b(530., 140., 890., 160.),
            b(110., 700., 890., 720.),
            b(400., 955., 600., 985.),
        ];
        let assigned = assign(
            &lines,
            &regions.iter().map(|r| (r.0, 0.9)).collect::<Vec<_>>(),
        );
        assert_eq!(
            assigned,
            vec![Some(1), Some(0), Some(1), Some(0), None, Some(2)]
        );
        let (rank, order) = page_order(&regions, &lines, &assigned);
        assert_eq!(rank, vec![1, 0, 2]);
        assert_eq!(order, vec![0, 2, 1, 3, 4, 5]);
        // Without regions nothing holds a column together: the line under
        // both columns spans the gutter and the lines read row by row.
        let (rank, order) = page_order(&[], &lines, &[None; 6]);
        assert!(rank.is_empty());
        assert_eq!(order, vec![0, 1, 2, 3, 4, 5]);
    }
}
