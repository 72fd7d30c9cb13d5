//! The VLM's tasks besides field extraction, pure: their names and
//! Florence-2 prompts, the grammars that constrain their output, and the
//! parsers that turn the output into captions, boxes and text quads in page
//! pixels.
//!
//! Florence-2 writes a coordinate as a `<loc_N>` token, N in `0..=999`: the
//! image's width (for x) or height (for y) split into 1000 equal bins,
//! quantised with `floor` (`processing_florence2.py`, `CoordinatesQuantizer`
//! / `BoxQuantizer`, mode `floor`). The bin is de-quantised to its centre,
//! `(N + 0.5) * size / 1000`. The bins are fractions of the image, so the
//! same formula with the *page's* size gives page pixels directly (equal to
//! de-quantising in the model's resized input and scaling back).
//!
//! Output formats (Florence-2's, also asked of decoder-only exports):
//! - `od`: `label<loc_x0><loc_y0><loc_x1><loc_y1>` repeated;
//! - `ocr_with_region`: `text<loc_x1><loc_y1>…<loc_x4><loc_y4>` repeated,
//!   the quad's corners clockwise from the top-left;
//! - `caption` / `detailed_caption`: plain text.
//!
//! A `<loc_N>` is a single special token where the tokenizer has the 1000
//! of them ([`LocNotation::Tokens`], Florence-2's), and is spelt out as text
//! otherwise ([`LocNotation::Text`]); the parsers read the text either way.

use crate::types::{BBox, Point, Quad};
use serde::{Deserialize, Serialize};

/// Coordinate bins per axis (Florence-2's `coordinates_quantizer` bins).
pub const LOC_BINS: u32 = 1000;

/// Longest OD label, bytes (Florence-2's labels are a few words).
pub const MAX_LABEL_BYTES: usize = 32;
/// Longest text of one `ocr_with_region` line, bytes.
pub const MAX_LINE_BYTES: usize = 64;
/// A character of caption or line text in the task grammars: anything but
/// `<`, `>` (which open and close coordinates) and control characters.
const TEXT_CHAR: &str = "[^<>\\x00-\\x1f\\x7f]";
/// The first character: not a space either.
const TEXT_START: &str = "[^<>\\s\\x00-\\x1f\\x7f]";

/// Longest caption, bytes; the token budget (`max_new_tokens`) usually ends
/// a caption first.
pub const MAX_CAPTION_BYTES: usize = 2000;

/// Something the VLM can be asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// One JSON record per page, constrained by the field schema.
    Fields,
    /// A short caption (Florence-2 `<CAPTION>`).
    Caption,
    /// A longer caption (Florence-2 `<DETAILED_CAPTION>`).
    DetailedCaption,
    /// Text lines with quadrilaterals (Florence-2 `<OCR_WITH_REGION>`).
    OcrWithRegion,
    /// Labelled boxes (Florence-2 `<OD>`).
    Od,
}

impl Task {
    pub const ALL: [Task; 5] = [
        Task::Fields,
        Task::Caption,
        Task::DetailedCaption,
        Task::OcrWithRegion,
        Task::Od,
    ];

    /// The name in manifests and pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            Task::Fields => "fields",
            Task::Caption => "caption",
            Task::DetailedCaption => "detailed_caption",
            Task::OcrWithRegion => "ocr_with_region",
            Task::Od => "od",
        }
    }

    pub fn from_name(name: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Florence-2's task token (`None` for `fields`, which is docpipe's).
    pub fn florence_token(self) -> Option<&'static str> {
        match self {
            Task::Fields => None,
            Task::Caption => Some("<CAPTION>"),
            Task::DetailedCaption => Some("<DETAILED_CAPTION>"),
            Task::OcrWithRegion => Some("<OCR_WITH_REGION>"),
            Task::Od => Some("<OD>"),
        }
    }

    /// The text prompt Florence-2's processor puts in place of the task
    /// token (`task_prompts_without_inputs` in `processing_florence2.py`).
    pub fn florence_prompt(self) -> Option<&'static str> {
        match self {
            Task::Fields => None,
            Task::Caption => Some("What does the image describe?"),
            Task::DetailedCaption => Some("Describe in detail what is shown in the image."),
            Task::OcrWithRegion => Some("What is the text in the image, with regions?"),
            Task::Od => Some("Locate the objects with category name in the image."),
        }
    }

    /// Captions (plain text output).
    pub fn is_caption(self) -> bool {
        matches!(self, Task::Caption | Task::DetailedCaption)
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The centre of bin `bin` of an axis `size` long (pixels or points):
/// `(bin + 0.5) * size / 1000`. Bins above 999 count as 999.
pub fn dequantize(bin: u32, size: f32) -> f32 {
    (bin.min(LOC_BINS - 1) as f32 + 0.5) * size / LOC_BINS as f32
}

/// The bin of coordinate `v` on an axis `size` long: `floor(v / (size /
/// 1000))`, clamped to `0..=999` (Florence-2's `floor` quantiser).
pub fn quantize(v: f32, size: f32) -> u32 {
    if size <= 0.0 || v.is_nan() {
        return 0;
    }
    let bin = (v / (size / LOC_BINS as f32)).floor();
    bin.clamp(0.0, (LOC_BINS - 1) as f32) as u32
}

/// How a model writes `<loc_N>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocNotation {
    /// One special token each: `<loc_N>` is token `first + N`.
    Tokens { first: u32 },
    /// Spelt out as text (a tokenizer without the loc tokens).
    Text,
}

impl LocNotation {
    /// The notation of a tokenizer: `Tokens` when `<loc_0>` … `<loc_999>`
    /// are consecutive ids (`id_of` looks a token up), `Text` otherwise.
    pub fn detect(id_of: impl Fn(&str) -> Option<u32>) -> LocNotation {
        let Some(first) = id_of("<loc_0>") else {
            return LocNotation::Text;
        };
        let consecutive = (1..LOC_BINS).all(|n| id_of(&format!("<loc_{n}>")) == Some(first + n));
        if consecutive {
            LocNotation::Tokens { first }
        } else {
            LocNotation::Text
        }
    }

    /// The bin of token `tok`, when it is a loc token.
    pub fn bin_of(self, tok: u32) -> Option<u32> {
        match self {
            LocNotation::Tokens { first } if tok >= first && tok - first < LOC_BINS => {
                Some(tok - first)
            }
            _ => None,
        }
    }

    /// Bytes one coordinate may take, at most (to bound the tokens an item
    /// needs).
    fn max_bytes(self) -> usize {
        match self {
            LocNotation::Tokens { .. } => 1,
            LocNotation::Text => "<loc_999>".len(),
        }
    }

    fn lark_rule(self) -> String {
        match self {
            LocNotation::Tokens { first } => {
                format!("loc: <[{first}-{}]>\n", first + LOC_BINS - 1)
            }
            LocNotation::Text => "loc: LOC\nLOC: /<loc_(0|[1-9][0-9]{0,2})>/\n".into(),
        }
    }
}

/// The llguidance (Lark syntax) grammar that constrains a task's output,
/// and the tokens its closing phase may need (the longest item, plus a
/// margin of 8 for a UTF-8 character under way): near the token budget the
/// engine ends the output as soon as the grammar allows, and an item under
/// way is bounded. `None` for `fields` (a JSON Schema grammar).
pub fn task_grammar(task: Task, loc: LocNotation) -> Option<(String, usize)> {
    let item = |text: &str, max: usize, locs: usize| {
        let rule = format!(
            "start: item+\nitem: {text} {}\n{}",
            vec!["loc"; locs].join(" "),
            loc.lark_rule()
        );
        (rule, max + locs * loc.max_bytes() + 8)
    };
    match task {
        Task::Fields => None,
        Task::Caption | Task::DetailedCaption => Some((
            format!(
                "start: CAPTION\nCAPTION: /{TEXT_START}{TEXT_CHAR}{{0,{}}}/\n",
                MAX_CAPTION_BYTES - 1
            ),
            8,
        )),
        Task::Od => {
            let (mut g, reserve) = item("LABEL", MAX_LABEL_BYTES, 4);
            g.push_str(&format!(
                "LABEL: /[A-Za-z0-9][A-Za-z0-9 ]{{0,{}}}/\n",
                MAX_LABEL_BYTES - 1
            ));
            Some((g, reserve))
        }
        Task::OcrWithRegion => {
            let (mut g, reserve) = item("TEXT", MAX_LINE_BYTES, 8);
            g.push_str(&format!(
                "TEXT: /{TEXT_START}{TEXT_CHAR}{{0,{}}}/\n",
                MAX_LINE_BYTES - 1
            ));
            Some((g, reserve))
        }
    }
}

/// A run of text followed by the coordinates written after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub text: String,
    /// Bins, in order; a `<loc_N>` with N above 999 is kept as N (and makes
    /// its item malformed).
    pub locs: Vec<u32>,
}

/// Splits output text into spans of text + `<loc_N>` coordinates. The
/// sequence markers `<s>`, `</s>` and `<pad>` are removed; a `<` that does
/// not open a well-formed `<loc_N>` is text.
pub fn split_locs(text: &str) -> Vec<Span> {
    let text = text
        .replace("</s>", "")
        .replace("<s>", "")
        .replace("<pad>", "");
    let mut spans: Vec<Span> = Vec::new();
    let mut cur = Span {
        text: String::new(),
        locs: Vec::new(),
    };
    let mut rest = text.as_str();
    while !rest.is_empty() {
        if let Some(bin) = loc_prefix(rest) {
            cur.locs.push(bin.0);
            rest = &rest[bin.1..];
            continue;
        }
        let ch = rest.chars().next().unwrap_or(' ');
        if !cur.locs.is_empty() {
            spans.push(std::mem::replace(
                &mut cur,
                Span {
                    text: String::new(),
                    locs: Vec::new(),
                },
            ));
        }
        cur.text.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    if !cur.text.is_empty() || !cur.locs.is_empty() {
        spans.push(cur);
    }
    spans
}

/// `<loc_N>` at the start of `s`: (N, bytes taken). At most 6 digits.
fn loc_prefix(s: &str) -> Option<(u32, usize)> {
    let digits = s.strip_prefix("<loc_")?;
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 || n > 6 || digits.as_bytes().get(n) != Some(&b'>') {
        return None;
    }
    let bin = digits[..n].parse().ok()?;
    Some((bin, "<loc_".len() + n + 1))
}

/// A labelled box (`od`), page pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub label: String,
    pub bbox: BBox,
}

/// A text line with its quadrilateral (`ocr_with_region`), page pixels,
/// corners as the model wrote them (clockwise from the top-left).
#[derive(Clone, Debug, PartialEq)]
pub struct TextQuad {
    pub text: String,
    pub quad: Quad,
}

/// Items parsed from one output, and why each malformed piece was left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed<T> {
    pub items: Vec<T>,
    pub dropped: Vec<String>,
}

fn bins_ok(locs: &[u32]) -> Result<(), String> {
    match locs.iter().find(|&&b| b >= LOC_BINS) {
        Some(b) => Err(format!("<loc_{b}> is outside 0..=999")),
        None => Ok(()),
    }
}

/// `od` output to boxes on a page `size` = (width, height) pixels. A label
/// may carry several boxes (4 coordinates each); a span whose coordinate
/// count is not a positive multiple of 4, whose label is empty or whose bin
/// is out of range is dropped. Corners are put in order (`x0 <= x1`).
pub fn parse_od(text: &str, size: (f32, f32)) -> Parsed<Detection> {
    let mut out = Parsed {
        items: Vec::new(),
        dropped: Vec::new(),
    };
    for span in split_locs(text) {
        let label = span.text.trim();
        let fault = if span.locs.is_empty() {
            (!label.is_empty()).then(|| format!("{label:?} has no box"))
        } else if span.locs.len() % 4 != 0 {
            Some(format!(
                "{label:?} has {} coordinates, not a multiple of 4",
                span.locs.len()
            ))
        } else if label.is_empty() {
            Some("a box without a label".to_string())
        } else {
            bins_ok(&span.locs).err()
        };
        if let Some(f) = fault {
            out.dropped.push(f);
            continue;
        }
        for b in span.locs.chunks_exact(4) {
            let (xa, ya) = (dequantize(b[0], size.0), dequantize(b[1], size.1));
            let (xb, yb) = (dequantize(b[2], size.0), dequantize(b[3], size.1));
            out.items.push(Detection {
                label: label.to_string(),
                bbox: BBox {
                    x0: xa.min(xb),
                    y0: ya.min(yb),
                    x1: xa.max(xb),
                    y1: ya.max(yb),
                },
            });
        }
    }
    out
}

/// `ocr_with_region` output to text quads on a page `size` = (width,
/// height) pixels. A span needs non-empty text and exactly 8 coordinates
/// in range; others are dropped.
pub fn parse_ocr_with_region(text: &str, size: (f32, f32)) -> Parsed<TextQuad> {
    let mut out = Parsed {
        items: Vec::new(),
        dropped: Vec::new(),
    };
    for span in split_locs(text) {
        let line = span.text.trim();
        let fault = if span.locs.len() != 8 {
            (!(line.is_empty() && span.locs.is_empty())).then(|| {
                format!(
                    "{line:?} has {} coordinates, a quad needs 8",
                    span.locs.len()
                )
            })
        } else if line.is_empty() {
            Some("a quad without text".to_string())
        } else {
            bins_ok(&span.locs).err()
        };
        if let Some(f) = fault {
            out.dropped.push(f);
            continue;
        }
        let p = |i: usize| {
            Point::new(
                dequantize(span.locs[2 * i], size.0),
                dequantize(span.locs[2 * i + 1], size.1),
            )
        };
        out.items.push(TextQuad {
            text: line.to_string(),
            quad: [p(0), p(1), p(2), p(3)],
        });
    }
    out
}

/// A caption's text: sequence markers and any `<loc_N>` removed, whitespace
/// trimmed; `None` when nothing is left.
pub fn parse_caption(text: &str) -> Option<String> {
    let joined: String = split_locs(text)
        .into_iter()
        .map(|s| s.text)
        .collect::<Vec<_>>()
        .concat();
    let t = joined.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn dequantize_against_hand_computed_values() {
        struct Case {
            bin: u32,
            size: f32,
            want: f32,
        }
        let cases = [
            // (0 + 0.5) * 768 / 1000
            Case {
                bin: 0,
                size: 768.0,
                want: 0.384,
            },
            // (999 + 0.5) * 768 / 1000
            Case {
                bin: 999,
                size: 768.0,
                want: 767.616,
            },
            // (500 + 0.5) * 1275 / 1000: a Letter page at 150 dpi
            Case {
                bin: 500,
                size: 1275.0,
                want: 638.1375,
            },
            // (123 + 0.5) * 1650 / 1000
            Case {
                bin: 123,
                size: 1650.0,
                want: 203.775,
            },
            // (250 + 0.5) * 612 / 1000: Letter width in points
            Case {
                bin: 250,
                size: 612.0,
                want: 153.306,
            },
            // Out of range counts as 999.
            Case {
                bin: 4000,
                size: 1000.0,
                want: 999.5,
            },
        ];
        for c in cases {
            let got = dequantize(c.bin, c.size);
            assert!(close(got, c.want), "bin {} of {}: {got}", c.bin, c.size);
        }
    }

    #[test]
    fn quantize_is_floor_and_round_trips_to_the_bin_centre() {
        assert_eq!(quantize(0.0, 768.0), 0);
        assert_eq!(quantize(0.767, 768.0), 0); // 0.767 / 0.768 = 0.998
        assert_eq!(quantize(0.768, 768.0), 1);
        assert_eq!(quantize(767.9, 768.0), 999);
        assert_eq!(quantize(2000.0, 768.0), 999);
        assert_eq!(quantize(-3.0, 768.0), 0);
        assert_eq!(quantize(5.0, 0.0), 0);
        for bin in [0, 1, 417, 998, 999] {
            assert_eq!(quantize(dequantize(bin, 1275.0), 1275.0), bin);
        }
    }

    #[test]
    fn page_scaling_equals_model_input_then_resize() {
        // A 1275x1650 page given to a 768x768 model: de-quantise in the
        // model's input, then scale by page/model, as the page's own size.
        for bin in [0u32, 7, 333, 999] {
            let via_model_x = dequantize(bin, 768.0) * (1275.0 / 768.0);
            let via_model_y = dequantize(bin, 768.0) * (1650.0 / 768.0);
            assert!(close(via_model_x, dequantize(bin, 1275.0)), "{bin}");
            assert!(close(via_model_y, dequantize(bin, 1650.0)), "{bin}");
        }
    }

    #[test]
    fn od_boxes_in_page_pixels() {
        // Page 2000x1000. car: x (100.5, 300.5) * 2 = 201, 601;
        // y (50.5, 250.5) * 1 = 50.5, 250.5.
        let p = parse_od(
            "<s>car<loc_100><loc_50><loc_300><loc_250>door<loc_10><loc_900><loc_0><loc_999></s>",
            (2000.0, 1000.0),
        );
        assert!(p.dropped.is_empty(), "{:?}", p.dropped);
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.items[0].label, "car");
        let b = p.items[0].bbox;
        assert!(close(b.x0, 201.0) && close(b.y0, 50.5), "{b:?}");
        assert!(close(b.x1, 601.0) && close(b.y1, 250.5), "{b:?}");
        // x corners swapped by the model are put in order: x (10.5, 0.5) * 2
        // = 21, 1 -> 1..21; y (900.5, 999.5) * 1.
        let d = p.items[1].bbox;
        assert_eq!(p.items[1].label, "door");
        assert!(close(d.x0, 1.0) && close(d.x1, 21.0), "{d:?}");
        assert!(close(d.y0, 900.5) && close(d.y1, 999.5), "{d:?}");
    }

    #[test]
    fn od_label_with_two_boxes_and_malformed_pieces() {
        struct Case {
            text: &'static str,
            labels: Vec<&'static str>,
            dropped: usize,
        }
        let cases = [
            Case {
                text: "wheel<loc_1><loc_2><loc_3><loc_4><loc_5><loc_6><loc_7><loc_8>",
                labels: vec!["wheel", "wheel"],
                dropped: 0,
            },
            // Three coordinates: the span is dropped, the next one kept.
            Case {
                text: "cat<loc_1><loc_2><loc_3>dog<loc_1><loc_2><loc_3><loc_4>",
                labels: vec!["dog"],
                dropped: 1,
            },
            // A bin out of range.
            Case {
                text: "cat<loc_1><loc_2><loc_3><loc_1000>",
                labels: vec![],
                dropped: 1,
            },
            // No label; then a label cut off without its box.
            Case {
                text: "<loc_1><loc_2><loc_3><loc_4>sign",
                labels: vec![],
                dropped: 2,
            },
            // Broken loc syntax is text: the label has no box.
            Case {
                text: "cat<loc_1<loc_x>",
                labels: vec![],
                dropped: 1,
            },
            Case {
                text: "",
                labels: vec![],
                dropped: 0,
            },
            Case {
                text: "  </s>",
                labels: vec![],
                dropped: 0,
            },
        ];
        for c in cases {
            let p = parse_od(c.text, (100.0, 100.0));
            let labels: Vec<&str> = p.items.iter().map(|d| d.label.as_str()).collect();
            assert_eq!(labels, c.labels, "{}", c.text);
            assert_eq!(p.dropped.len(), c.dropped, "{}: {:?}", c.text, p.dropped);
        }
    }

    #[test]
    fn ocr_with_region_quads() {
        // Page 1000x500: x = bin + 0.5, y = (bin + 0.5) / 2.
        let text = "TOTAL 12.50<loc_100><loc_200><loc_300><loc_200><loc_300><loc_240><loc_100><loc_240>Date<loc_1><loc_2><loc_3>";
        let p = parse_ocr_with_region(text, (1000.0, 500.0));
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.dropped.len(), 1, "{:?}", p.dropped);
        let q = &p.items[0];
        assert_eq!(q.text, "TOTAL 12.50");
        let want = [
            (100.5, 100.25),
            (300.5, 100.25),
            (300.5, 120.25),
            (100.5, 120.25),
        ];
        for (pt, (x, y)) in q.quad.iter().zip(want) {
            assert!(close(pt.x, x) && close(pt.y, y), "{pt:?} vs {x},{y}");
        }
        // Text without coordinates, a quad without text, 9 coordinates.
        for bad in [
            "hello",
            "<loc_1><loc_2><loc_3><loc_4><loc_5><loc_6><loc_7><loc_8>",
            "x<loc_1><loc_2><loc_3><loc_4><loc_5><loc_6><loc_7><loc_8><loc_9>",
        ] {
            let p = parse_ocr_with_region(bad, (10.0, 10.0));
            assert!(p.items.is_empty(), "{bad}");
            assert_eq!(p.dropped.len(), 1, "{bad}");
        }
    }

    #[test]
    fn captions() {
        assert_eq!(
            parse_caption("<s>A scanned invoice.</s>").as_deref(),
            Some("A scanned invoice.")
        );
        assert_eq!(parse_caption(" <pad> ").as_deref(), None);
        assert_eq!(parse_caption("a<loc_5>b").as_deref(), Some("ab"));
        assert_eq!(parse_caption("1 < 2").as_deref(), Some("1 < 2"));
    }

    #[test]
    fn loc_notation() {
        let tokens = |id: &str| {
            id.strip_prefix("<loc_")
                .and_then(|s| s.strip_suffix('>'))
                .and_then(|n| n.parse::<u32>().ok())
                .map(|n| 5000 + n)
        };
        let n = LocNotation::detect(tokens);
        assert_eq!(n, LocNotation::Tokens { first: 5000 });
        assert_eq!(n.bin_of(5000), Some(0));
        assert_eq!(n.bin_of(5999), Some(999));
        assert_eq!(n.bin_of(6000), None);
        assert_eq!(n.bin_of(4999), None);
        assert_eq!(LocNotation::detect(|_| None), LocNotation::Text);
        // A gap in the ids: spelt out.
        let gap = |id: &str| if id == "<loc_500>" { None } else { tokens(id) };
        assert_eq!(LocNotation::detect(gap), LocNotation::Text);
        assert_eq!(LocNotation::Text.bin_of(5000), None);
    }

    #[test]
    fn task_names_round_trip() {
        for t in Task::ALL {
            assert_eq!(Task::from_name(t.name()), Some(t));
            let json = serde_json::to_string(&t).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", t.name()));
        }
        assert_eq!(Task::from_name("OD"), None);
        assert!(task_grammar(Task::Fields, LocNotation::Text).is_none());
        let (g, reserve) =
            task_grammar(Task::Od, LocNotation::Tokens { first: 10 }).unwrap_or_default();
        assert!(g.contains("<[10-1009]>"), "{g}");
        assert_eq!(reserve, MAX_LABEL_BYTES + 4 + 8);
    }
}
