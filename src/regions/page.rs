//! A page's regions made into rows: scaled from the layout image to the
//! page's pixels (and PDF points), numbered in reading order, each line
//! given the region it falls in, and the lines and the page's text put in
//! region reading order.

use super::order::{self, Role};
use super::Region;
use crate::normalise::QuarterTurn;
use crate::output::{LineRow, PageRow, RegionRow};
use crate::pdf::Affine;
use crate::types::{BBox, Point};

/// From the image a stage was given (layout, VLM: the page as rendered) to
/// the page as read: scaled to the page's pixels as they were before OCR
/// turned it, then turned as OCR turned it (on its side, upside down).
#[derive(Clone, Copy, Debug)]
pub struct ImageToPage {
    sx: f32,
    sy: f32,
    turned: Option<QuarterTurn>,
    /// The page's size before the turn, pixels.
    before: (u32, u32),
}

impl ImageToPage {
    /// `None` when either size is empty (a failed page).
    pub fn new(image: (u32, u32), page: &PageRow, turned: Option<QuarterTurn>) -> Option<Self> {
        let (w, h) = (page.width_px, page.height_px);
        if image.0 == 0 || image.1 == 0 || w <= 0 || h <= 0 {
            return None;
        }
        let quarter = turned.is_some_and(|t| t.degrees() % 180 != 0);
        let before = if quarter { (h, w) } else { (w, h) };
        let before = (before.0 as u32, before.1 as u32);
        Some(Self {
            sx: before.0 as f32 / image.0 as f32,
            sy: before.1 as f32 / image.1 as f32,
            turned,
            before,
        })
    }

    pub fn point(&self, p: Point) -> Point {
        let scaled = Point::new(p.x * self.sx, p.y * self.sy);
        match self.turned {
            Some(t) => t.to_turned(scaled, self.before.0, self.before.1),
            None => scaled,
        }
    }

    pub fn bbox(&self, b: &BBox) -> BBox {
        let a = self.point(Point::new(b.x0, b.y0));
        let c = self.point(Point::new(b.x1, b.y1));
        BBox {
            x0: a.x.min(c.x),
            y0: a.y.min(c.y),
            x1: a.x.max(c.x),
            y1: a.y.max(c.y),
        }
    }
}

/// What the layout model found on one page.
#[derive(Clone, Debug, PartialEq)]
pub struct PageRegions {
    /// In the pixels of the image the model was given.
    pub regions: Vec<Region>,
    /// That image's size, pixels.
    pub image_size: (u32, u32),
    /// Maps a pixel of that image to PDF user-space points (PDF pages).
    pub to_points: Option<Affine>,
}

/// Makes `page`'s region rows from `found` and labels `lines` (the page's
/// own, in their current order) with their regions. With `reading_order`
/// the lines are put in region reading order, renumbered, and the page's
/// text is made anew from them. A page without regions, or without a size
/// (it failed), keeps its lines as they are. `turned` is the turn OCR gave
/// the page after the layout model saw it: the regions are turned with it.
pub fn apply(
    page: &mut PageRow,
    lines: &mut Vec<LineRow>,
    found: &PageRegions,
    turned: Option<QuarterTurn>,
    source: &str,
    reading_order: bool,
) -> Vec<RegionRow> {
    let Some(to_page) = ImageToPage::new(found.image_size, page, turned) else {
        return Vec::new();
    };
    if found.regions.is_empty() {
        return Vec::new();
    }
    let boxes: Vec<BBox> = found
        .regions
        .iter()
        .map(|r| to_page.bbox(&r.bbox))
        .collect();
    let line_boxes: Vec<BBox> = lines
        .iter()
        .map(|l| BBox {
            x0: l.x0,
            y0: l.y0,
            x1: l.x1,
            y1: l.y1,
        })
        .collect();
    let scored: Vec<(BBox, f32)> = boxes
        .iter()
        .zip(&found.regions)
        .map(|(b, r)| (*b, r.score))
        .collect();
    let assigned = order::assign(&line_boxes, &scored);
    let roles: Vec<(BBox, Role)> = boxes
        .iter()
        .zip(&found.regions)
        .map(|(b, r)| (*b, Role::of(&r.class)))
        .collect();
    let (rank, line_order) = order::page_order(&roles, &line_boxes, &assigned);
    for (line, region) in lines.iter_mut().zip(&assigned) {
        line.region_index = region.map(|r| rank[r] as i32);
        line.region_class = region.map(|r| found.regions[r].class.clone());
    }
    if reading_order {
        let mut old: Vec<Option<LineRow>> = std::mem::take(lines).into_iter().map(Some).collect();
        for (i, &k) in line_order.iter().enumerate() {
            if let Some(mut l) = old.get_mut(k).and_then(Option::take) {
                l.line_index = i as i32;
                lines.push(l);
            }
        }
        page.text = lines
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
    }
    let mut rows: Vec<RegionRow> = found
        .regions
        .iter()
        .zip(&boxes)
        .zip(&rank)
        .map(|((r, b), &rank)| RegionRow {
            doc_id: page.doc_id.clone(),
            page_index: page.page_index,
            region_index: rank as i32,
            class: r.class.clone(),
            score: r.score,
            x0: b.x0,
            y0: b.y0,
            x1: b.x1,
            y1: b.y1,
            bbox_pt: found.to_points.map(|a| {
                let p = a.apply_bbox(&r.bbox);
                [p.x0, p.y0, p.x1, p.y1]
            }),
            source: source.to_string(),
        })
        .collect();
    rows.sort_by_key(|r| r.region_index);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_follows_the_page_through_the_turn_ocr_gave_it() {
        // Rendered 2000 x 1000 at a tenth for the model (200 x 100); OCR
        // turned the page a quarter clockwise, so it was read 1000 x 2000.
        let mut read = page();
        (read.width_px, read.height_px) = (1000, 2000);
        let b = BBox {
            x0: 10.0,
            y0: 20.0,
            x1: 30.0,
            y1: 40.0,
        };
        let turned = QuarterTurn::from_degrees(90);
        let to_page = ImageToPage::new((200, 100), &read, turned).unwrap();
        // Scaled: (100, 200)-(300, 400) on the 2000 x 1000 page; a quarter
        // clockwise takes (x, y) to (1000 - y, x).
        let want = BBox {
            x0: 600.0,
            y0: 100.0,
            x1: 800.0,
            y1: 300.0,
        };
        assert_eq!(to_page.bbox(&b), want);
        // Not turned: only scaled.
        let to_page = ImageToPage::new((200, 100), &page(), None).unwrap();
        let want = BBox {
            x0: 100.0,
            y0: 200.0,
            x1: 300.0,
            y1: 400.0,
        };
        assert_eq!(to_page.bbox(&b), want);
        assert!(ImageToPage::new((0, 100), &page(), None).is_none());
    }

    fn page() -> PageRow {
        PageRow {
            doc_id: "d".into(),
            page_index: 1,
            width_px: 2000,
            height_px: 1000,
            dpi: Some(200.0),
            width_pt: Some(720.0),
            height_pt: Some(360.0),
            source: crate::output::PageSource::TextLayer,
            rotation: 0,
            skew_deg: 0.0,
            text: "L1\nR1\nL2\nR2".into(),
            mean_confidence: None,
            line_count: 4,
            error: None,
        }
    }

    fn line(i: i32, text: &str, x0: f32, y0: f32) -> LineRow {
        LineRow {
            doc_id: "d".into(),
            page_index: 1,
            line_index: i,
            text: text.into(),
            confidence: 1.0,
            x0,
            y0,
            x1: x0 + 700.0,
            y1: y0 + 40.0,
            polygon: Vec::new(),
            bbox_pt: None,
            font_size: None,
            bold: None,
            region_index: None,
            region_class: None,
            source: "ppocr-v6".into(),
        }
    }

    fn region(class: &str, x0: f32, y0: f32, x1: f32, y1: f32) -> Region {
        Region {
            class: class.into(),
            score: 0.9,
            bbox: BBox { x0, y0, x1, y1 },
        }
    }

    #[test]
    fn two_columns_come_out_column_by_column() {
        let mut p = page();
        // Row-wise lines, as a reader going across the page gives them.
        let mut lines = vec![
            line(0, "L1", 100.0, 200.0),
            line(1, "R1", 1100.0, 200.0),
            line(2, "L2", 100.0, 300.0),
            line(3, "R2", 1100.0, 300.0),
            line(4, "3", 980.0, 900.0),
        ];
        // Found on a 1000x500 image (half the page's pixels), the right
        // column first; a 72-dpi image of the 720x360 pt page has points
        // = pixels with y up.
        let found = PageRegions {
            regions: vec![
                region("text", 540.0, 90.0, 960.0, 180.0),
                region("text", 40.0, 90.0, 460.0, 180.0),
                region("footer", 480.0, 440.0, 520.0, 480.0),
            ],
            image_size: (1000, 500),
            to_points: Some(Affine([0.72, 0.0, 0.0, 0.0, -0.72, 360.0])),
        };
        let rows = apply(&mut p, &mut lines, &found, None, "rapid-layout", true);
        assert_eq!(p.text, "L1\nL2\nR1\nR2\n3");
        let got: Vec<(i32, &str, Option<i32>, Option<&str>)> = lines
            .iter()
            .map(|l| {
                (
                    l.line_index,
                    l.text.as_str(),
                    l.region_index,
                    l.region_class.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "L1", Some(0), Some("text")),
                (1, "L2", Some(0), Some("text")),
                (2, "R1", Some(1), Some("text")),
                (3, "R2", Some(1), Some("text")),
                (4, "3", Some(2), Some("footer")),
            ]
        );
        let r: Vec<(i32, &str, f32, f32)> = rows
            .iter()
            .map(|r| (r.region_index, r.class.as_str(), r.x0, r.y1))
            .collect();
        // Scaled x2 to page pixels, in reading order.
        assert_eq!(
            r,
            vec![
                (0, "text", 80.0, 360.0),
                (1, "text", 1080.0, 360.0),
                (2, "footer", 960.0, 960.0),
            ]
        );
        // Image (40, 90)-(460, 180) px is (28.8, 230.4)-(331.2, 295.2) pt.
        let pt = rows[0].bbox_pt.unwrap();
        let want = [28.8, 230.4, 331.2, 295.2];
        assert!(
            pt.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-3),
            "{pt:?}"
        );
        assert!(rows.iter().all(|r| r.source == "rapid-layout"));
    }

    #[test]
    fn without_reading_order_lines_keep_their_order_but_learn_their_region() {
        let mut p = page();
        let mut lines = vec![line(0, "L1", 100.0, 200.0), line(1, "R1", 1100.0, 200.0)];
        let found = PageRegions {
            regions: vec![region("text", 40.0, 90.0, 460.0, 180.0)],
            image_size: (1000, 500),
            to_points: None,
        };
        let rows = apply(&mut p, &mut lines, &found, None, "rapid-layout", false);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].bbox_pt, None);
        assert_eq!(p.text, "L1\nR1\nL2\nR2");
        assert_eq!(lines[0].region_index, Some(0));
        assert_eq!(lines[1].region_index, None);
        // No regions: nothing changes.
        let before = lines.clone();
        let none = PageRegions {
            regions: Vec::new(),
            ..found
        };
        assert!(apply(&mut p, &mut lines, &none, None, "rapid-layout", true).is_empty());
        assert_eq!(lines, before);
    }
}
