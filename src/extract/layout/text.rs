//! Text lines prepared for matching: reading order, rows, lower-case text
//! mapped back to the original, whole-word and one-edit label matching.

use serde_json::{json, Value};

use super::{Line, PageLines};
use crate::types::BBox;

/// A regex that must match a whole string, compiled by the `jsonschema`
/// crate (ECMA-262 syntax, like the schema's own `pattern`).
pub(super) struct Matcher(jsonschema::Validator);

impl Matcher {
    /// `ignore_case`: letters match either case.
    pub(super) fn new(pattern: &str, ignore_case: bool) -> Option<Self> {
        let p = if ignore_case {
            format!("^(?i:{pattern})$")
        } else {
            format!("^(?:{pattern})$")
        };
        jsonschema::validator_for(&json!({"type": "string", "pattern": p}))
            .ok()
            .map(Self)
    }

    pub(super) fn full_match(&self, s: &str) -> bool {
        self.0.is_valid(&Value::String(s.to_string()))
    }
}

/// A line prepared for matching.
pub(super) struct L {
    pub(super) page: u32,
    /// Index in reading order over the whole document.
    pub(super) order: usize,
    pub(super) text: String,
    /// Lower-case text; `map[i]` is the byte in `text` where `lower`'s byte `i` came from.
    pub(super) lower: String,
    pub(super) map: Vec<usize>,
    pub(super) bbox: BBox,
    pub(super) conf: f32,
    pub(super) font_size: Option<f32>,
    pub(super) bold: bool,
}

impl L {
    pub(super) fn h(&self) -> f32 {
        self.bbox.height().max(1.0)
    }

    /// The approximate box of the byte span `start..end` of `text`.
    pub(super) fn span_box(&self, start: usize, end: usize) -> BBox {
        let n = self.text.chars().count().max(1) as f32;
        let a = self.text.get(..start).map_or(0, |s| s.chars().count()) as f32;
        let b = self
            .text
            .get(..end)
            .map_or(n as usize, |s| s.chars().count()) as f32;
        let w = self.bbox.width();
        BBox {
            x0: self.bbox.x0 + w * a / n,
            y0: self.bbox.y0,
            x1: self.bbox.x0 + w * b / n,
            y1: self.bbox.y1,
        }
    }
}

pub(super) fn lower_with_map(text: &str) -> (String, Vec<usize>) {
    let mut lower = String::with_capacity(text.len());
    let mut map = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        for lc in c.to_lowercase() {
            let before = lower.len();
            lower.push(lc);
            map.extend(std::iter::repeat_n(i, lower.len() - before));
        }
    }
    map.push(text.len());
    (lower, map)
}

pub(super) fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Where the first whole-word occurrence of `label` starts in `lower`, and
/// the byte offset just past it. Spaces in the label match any run of spaces
/// (or none) in the line.
pub(super) fn find_label(lower: &str, label: &str) -> Option<(usize, usize)> {
    let words: Vec<&str> = label.split_whitespace().collect();
    let first = *words.first()?;
    let mut from = 0;
    while let Some(pos) = lower.get(from..)?.find(first) {
        let start = from + pos;
        let mut end = start + first.len();
        let mut ok = true;
        for w in &words[1..] {
            let rest = &lower[end..];
            let trimmed = rest.trim_start();
            if trimmed.starts_with(w) {
                end += rest.len() - trimmed.len() + w.len();
            } else {
                ok = false;
                break;
            }
        }
        let word = |c: char| c.is_alphanumeric() || c == '_';
        // A label that ends in a sign (`n°`, `#`) may touch its value.
        let ends_in_word = label.chars().next_back().is_some_and(word);
        let boundary_before = lower[..start].chars().next_back().is_none_or(|c| !word(c));
        let boundary_after = !ends_in_word || lower[end..].chars().next().is_none_or(|c| !word(c));
        if ok && boundary_before && boundary_after {
            return Some((start, end));
        }
        from = start + first.len().max(1);
        while !lower.is_char_boundary(from) {
            from += 1;
        }
    }
    None
}

/// Label quality of a label read with one OCR error (see [`find_fuzzy`]).
pub(super) const FUZZY: f32 = 0.8;

/// Levenshtein distance of `a` and `b` is at most 1.
pub(super) fn within_one_edit(a: &[char], b: &[char]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    if short.len() == long.len() {
        short[prefix + 1.min(short.len() - prefix)..] == long[prefix + 1.min(long.len() - prefix)..]
    } else {
        short[prefix..] == long[prefix + 1..]
    }
}

/// A single-word label of 5 or more letters read with one OCR error (`TOTL`,
/// `T0TAL`, `INVOlCE`): the first word of `lower` (split at non-alphanumerics)
/// within one edit of it. Shorter labels and phrases are matched exactly only.
pub(super) fn find_fuzzy(lower: &str, label: &str) -> Option<(usize, usize)> {
    let lab: Vec<char> = label.chars().collect();
    if lab.len() < 5 || !lab.iter().all(|c| c.is_alphabetic()) {
        return None;
    }
    let mut start = None;
    for (i, c) in lower
        .char_indices()
        .chain(std::iter::once((lower.len(), ' ')))
    {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                let w: Vec<char> = lower[s..i].chars().collect();
                if w.len() >= 4 && within_one_edit(&w, &lab) {
                    return Some((s, i));
                }
                start = None;
            }
            _ => {}
        }
    }
    None
}

/// Leading punctuation between a label and its value.
pub(super) fn trim_lead(s: &str) -> (&str, usize) {
    let t = s.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, ':' | '-' | '.' | '=' | '|' | '/' | ')' | ']')
    });
    (t, s.len() - t.len())
}

pub(super) fn mean(xs: impl Iterator<Item = f32>) -> f32 {
    let (s, n) = xs.fold((0.0f32, 0u32), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f32
    }
}

pub(super) fn contains_any(lower: &str, terms: &[String]) -> bool {
    let sq = squash(lower);
    terms
        .iter()
        .any(|t| find_label(lower, t).is_some() || (t.contains(' ') && sq.contains(&squash(t))))
}

pub(super) fn vertical_overlap(a: &BBox, b: &BBox) -> f32 {
    let o = a.y1.min(b.y1) - a.y0.max(b.y0);
    o.max(0.0) / a.height().min(b.height()).max(1.0)
}

/// Fullwidth ASCII forms (U+FF01..U+FF5E, as CJK OCR models often emit for
/// brackets and punctuation) and the ideographic space folded to ASCII.
pub(super) fn fold_fullwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect()
}

/// Lines in reading order: by page, then rows (lines whose vertical centres
/// are within half a line height), then left to right.
pub(super) fn prepare(pages: &[PageLines]) -> Vec<L> {
    let mut out = Vec::new();
    let mut pages: Vec<&PageLines> = pages.iter().collect();
    pages.sort_by_key(|p| p.page);
    for p in pages {
        let mut lines: Vec<&Line> = p
            .lines
            .iter()
            .filter(|l| {
                !l.text.trim().is_empty()
                    && [l.bbox.x0, l.bbox.y0, l.bbox.x1, l.bbox.y1]
                        .iter()
                        .all(|v| v.is_finite())
            })
            .collect();
        let cy = |l: &Line| (l.bbox.y0 + l.bbox.y1) / 2.0;
        lines.sort_by(|a, b| cy(a).total_cmp(&cy(b)));
        let mut rows: Vec<Vec<&Line>> = Vec::new();
        for l in lines {
            // One row: centres within half a line height, and no line of
            // it above or below this one (boxes that share most of their
            // width are stacked, however tall a tilted scan's boxes are).
            let joins = rows.last().is_some_and(|r| {
                r.first().is_some_and(|first| {
                    (cy(first) - cy(l)).abs()
                        <= 0.5 * first.bbox.height().min(l.bbox.height()).max(1.0)
                }) && !r.iter().any(|m| stacked(&m.bbox, &l.bbox))
            });
            match rows.last_mut() {
                Some(r) if joins => r.push(l),
                _ => rows.push(vec![l]),
            }
        }
        for mut r in rows {
            r.sort_by(|a, b| a.bbox.x0.total_cmp(&b.bbox.x0));
            for l in r {
                let text = fold_fullwidth(&l.text);
                let (lower, map) = lower_with_map(&text);
                out.push(L {
                    page: p.page,
                    order: out.len(),
                    text,
                    lower,
                    map,
                    bbox: l.bbox,
                    font_size: l.font_size,
                    bold: l.bold,
                    conf: if l.confidence.is_finite() {
                        l.confidence.clamp(0.0, 1.0)
                    } else {
                        0.0
                    },
                });
            }
        }
    }
    out
}

/// Whether boxes `a` and `b` share more than half the narrower one's width
/// (so they cannot stand side by side on one row).
fn stacked(a: &BBox, b: &BBox) -> bool {
    let shared = a.x1.min(b.x1) - a.x0.max(b.x0);
    let narrower = a.width().min(b.width()).max(1.0);
    shared > 0.5 * narrower
}

/// Lower-case alphanumeric words of `s`.
pub(super) fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

pub(super) fn letters(s: &str) -> usize {
    s.chars().filter(|c| c.is_alphabetic()).count()
}

/// One row of lines (same page, overlapping vertically), left to right.
pub(super) struct Row<'a> {
    pub(super) lines: Vec<&'a L>,
    pub(super) text: String,
    pub(super) lower: String,
    pub(super) bbox: BBox,
}

impl<'a> Row<'a> {
    pub(super) fn new(lines: Vec<&'a L>) -> Option<Self> {
        let first = lines.first()?;
        let text = lines
            .iter()
            .map(|l| l.text.trim())
            .collect::<Vec<_>>()
            .join(" ");
        let bbox = lines.iter().fold(first.bbox, |b, l| b.union(&l.bbox));
        Some(Self {
            lower: text.to_lowercase(),
            text,
            lines,
            bbox,
        })
    }

    pub(super) fn conf(&self) -> f32 {
        mean(self.lines.iter().map(|l| l.conf))
    }

    pub(super) fn last_order(&self) -> usize {
        self.lines.iter().map(|l| l.order).max().unwrap_or(0)
    }
}

/// The rows of `page` in reading order (`lines` is already in reading order,
/// row by row).
/// Quotation marks that open a quoted or defined term (`"Kite"`,
/// `“Company”`, `'Agent'`).
pub(super) const OPEN_QUOTES: &[char] = &['"', '\u{201c}', '\'', '\u{2018}'];

/// Byte spans of the whitespace-separated words of `text`.
pub(super) fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(a)) => {
                out.push((a, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(a) = start {
        out.push((a, text.len()));
    }
    out
}

/// The widest gap, in line heights, between two lines of one row.
const ROW_GAP: f32 = 4.0;

pub(super) fn rows_of(lines: &[L], page: u32) -> Vec<Row<'_>> {
    let mut groups: Vec<Vec<&L>> = Vec::new();
    for l in lines.iter().filter(|l| l.page == page) {
        // Side by side: overlapping vertically, not horizontally, and, in
        // a text layer, close (a wide gap parts two columns: a title on the
        // left, the letterhead on the right). OCR lines are the detector's:
        // two boxes on one row of a scan are one row whatever the gap.
        let same = groups.last().is_some_and(|g| {
            let layer = l.font_size.is_some() && g.iter().all(|m| m.font_size.is_some());
            let h = g.iter().map(|m| m.h()).fold(l.h(), f32::min);
            let gap = g
                .iter()
                .map(|m| (l.bbox.x0 - m.bbox.x1).max(m.bbox.x0 - l.bbox.x1))
                .fold(f32::INFINITY, f32::min);
            g.first()
                .is_some_and(|f| vertical_overlap(&f.bbox, &l.bbox) >= 0.5)
                && g.iter()
                    .all(|m| m.bbox.x1.min(l.bbox.x1) <= m.bbox.x0.max(l.bbox.x0))
                && (!layer || gap <= ROW_GAP * h)
        });
        match groups.last_mut() {
            Some(g) if same => g.push(l),
            _ => groups.push(vec![l]),
        }
    }
    groups.into_iter().filter_map(Row::new).collect()
}

/// Letters of `lower` outside whole-word occurrences of `terms`.
pub(super) fn letters_besides(lower: &str, terms: &[String]) -> usize {
    let mut rest = lower.to_string();
    for t in terms {
        while let Some((a, b)) = find_label(&rest, t) {
            rest.replace_range(a..b, &" ".repeat(b - a));
        }
    }
    letters(&rest)
}

/// The part of a one-line letterhead before a separator (` - `, ` | `,
/// ` · `, ` • `, ` – `) when a later part holds a digit: `Acme AG - 1 Main
/// St - 12345 Town` is `Acme AG`; `Acme - For Testing` stays whole.
pub(super) fn cut_at_separator(text: &str) -> &str {
    const SEPARATORS: &[&str] = &[" - ", " | ", " · ", " • ", " – ", " — "];
    let Some((at, _)) = SEPARATORS
        .iter()
        .filter_map(|s| text.find(s).map(|i| (i, s.len())))
        .min()
    else {
        return text;
    };
    let (head, tail) = (&text[..at], &text[at..]);
    if letters(head) >= 3 && tail.chars().any(|c| c.is_ascii_digit()) {
        head.trim_end()
    } else {
        text
    }
}

/// Cut a trailing part that `strip` matches whole (e.g. a registration
/// number after a company name), at a word start.
pub(super) fn strip_tail(text: &str, strip: Option<&Matcher>) -> String {
    let text = text.trim();
    let Some(m) = strip else {
        return text.to_string();
    };
    let starts = text
        .char_indices()
        .filter(|(i, c)| *i > 0 && !c.is_whitespace() && text[..*i].ends_with(char::is_whitespace));
    for (i, _) in starts {
        if m.full_match(text[i..].trim()) {
            return text[..i].trim_end().to_string();
        }
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letterhead_is_cut_before_its_address() {
        assert_eq!(
            cut_at_separator("QualityHosting AG - Uferweg 40-42 - D-63571 Gelnhausen"),
            "QualityHosting AG"
        );
        assert_eq!(cut_at_separator("Acme - For Testing"), "Acme - For Testing");
        assert_eq!(cut_at_separator("Acme | 12 Main St"), "Acme");
        assert_eq!(cut_at_separator("Acme Ltd"), "Acme Ltd");
    }

    #[test]
    fn a_wide_gap_parts_a_row() {
        let mk = |text: &str, x: f32| Line {
            text: text.into(),
            bbox: BBox {
                x0: x,
                y0: 100.0,
                x1: x + 10.0 * text.chars().count() as f32,
                y1: 130.0,
            },
            confidence: 1.0,
            font_size: Some(10.0),
            bold: false,
        };
        let prepared = prepare(&[PageLines {
            page: 0,
            width: 1600.0,
            height: 2000.0,
            lines: vec![
                mk("INVOICE", 100.0),
                mk("Acme", 200.0),
                mk("Globex B.V.", 1200.0),
            ],
        }]);
        let rows = rows_of(&prepared, 0);
        let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["INVOICE Acme", "Globex B.V."]);
    }

    #[test]
    fn labels_match_whole_words() {
        struct Case {
            line: &'static str,
            label: &'static str,
            want: Option<(usize, usize)>,
        }
        let cases = [
            Case {
                line: "total: 9.00",
                label: "total",
                want: Some((0, 5)),
            },
            Case {
                line: "facture n°562044387 du",
                label: "facture n°",
                want: Some((0, "facture n°".len())),
            },
            Case {
                line: "totals 9.00",
                label: "total",
                want: None,
            },
            Case {
                line: "subtotal 9.00",
                label: "total",
                want: None,
            },
            Case {
                line: "sub total 9.00",
                label: "total",
                want: Some((4, 9)),
            },
            Case {
                line: "grand  total 9",
                label: "grand total",
                want: Some((0, 12)),
            },
            Case {
                line: "totals",
                label: "total",
                want: None,
            },
            Case {
                line: "",
                label: "total",
                want: None,
            },
            Case {
                line: "invoice no.: 12",
                label: "invoice no",
                want: Some((0, 10)),
            },
            Case {
                line: "invoice_number_1",
                label: "invoice",
                want: None,
            },
        ];
        for c in cases {
            assert_eq!(find_label(c.line, c.label), c.want, "{:?}", c.line);
        }
    }

    #[test]
    fn fuzzy_labels_allow_one_edit() {
        struct Case {
            line: &'static str,
            label: &'static str,
            want: Option<(usize, usize)>,
        }
        let cases = [
            Case {
                line: "totl, :",
                label: "total",
                want: Some((0, 4)),
            },
            Case {
                line: "t0tal 9.00",
                label: "total",
                want: Some((0, 5)),
            },
            Case {
                line: "the totaal",
                label: "total",
                want: Some((4, 10)),
            },
            Case {
                line: "tot 9.00",
                label: "total",
                want: None,
            },
            Case {
                line: "data",
                label: "dated",
                want: None,
            },
            Case {
                line: "subtotal",
                label: "total",
                want: None,
            },
            Case {
                line: "totals",
                label: "grand total",
                want: None,
            },
        ];
        for c in cases {
            assert_eq!(find_fuzzy(c.line, c.label), c.want, "{:?}", c.line);
        }
    }

    #[test]
    fn matcher_is_whole_and_case_blind_when_asked() {
        let m = Matcher::new("[a-z]+[0-9]", true).unwrap();
        assert!(m.full_match("ABc1"));
        assert!(!m.full_match("abc1 x"));
        let m = Matcher::new("[a-z]+[0-9]", false).unwrap();
        assert!(!m.full_match("ABc1"));
        assert!(m.full_match("abc1"));
    }

    #[test]
    fn fullwidth_folds() {
        assert_eq!(fold_fullwidth("MOTOR （SUNGAI）：１"), "MOTOR (SUNGAI):1");
    }

    #[test]
    fn lowercase_map_points_back() {
        let (lower, map) = lower_with_map("İx TOTAL");
        let (s, e) = find_label(&lower, "total").unwrap();
        assert_eq!(&"İx TOTAL"[map[s]..map[e]], "TOTAL");
    }
}
