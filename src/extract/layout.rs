//! The layout engine: each schema field found from text lines and their
//! positions, with no model.
//!
//! For a **labelled** field (the default) every line that contains one of the
//! field's labels (see [`FieldDef::labels`]; whole words, case-insensitive,
//! and no `exclude` text on the line) gives value candidates, read by the
//! field's type (see [`super::parse`]) from, in order of preference:
//!
//! 1. the rest of the same line after the label (`Total: 9.00`);
//! 2. the nearest lines to the right on the same row (`TOTAL:` … `9.00`);
//! 3. the next lines below that overlap the label horizontally (a label over
//!    its value, or a table header over its cell).
//!
//! Dates and enum members (e.g. currency codes) are also taken without a
//! label, anywhere in the document, with a lower confidence; enum members are
//! voted on (the most frequent wins).
//!
//! An **unlabelled** field says where it is: `"position": "top"` reads the
//! first 8 rows of the first page (a row: the lines side by side, joined;
//! preferring rows with one of its `keywords`, passing over rows that match
//! `skip` or contain a `stop` text; a row of keywords only, such as a legal
//! suffix `SDN BHD` on its own, continues the row above, and a row ending
//! in `&` the row below); `"after": "<field>"` reads up to `lines` lines
//! below that field's value, passing over lines that match `skip` and
//! stopping at a line with one of its `stop` texts, a date, no letters, or
//! after a vertical gap of more than 2.5 line heights. `strip` cuts a
//! trailing part off such values.
//!
//! When several candidates compete the field's `pick` hint decides (best
//! confidence by default; `largest` for totals).
//!
//! # Confidence
//!
//! `confidence = ocr × label × place × parse`, each in `[0, 1]`:
//! - `ocr`: the recognition confidence of the line the value came from (the
//!   mean over lines for multi-line values);
//! - `label`: 1.0 when the label starts its line, 0.9 when it is inside it;
//!   × 0.95 for a one-word label (a phrase is more specific); × 0.9 for a
//!   synonym taken from the description; × 0.8 for a label read with one
//!   OCR error;
//! - `place`: same line 1.0; right on the same row 0.95 (next one 0.85);
//!   below 0.85 (next one 0.7); unlabelled dates 0.5, enum votes 0.5;
//!   `position: top` 0.9^rank among the candidate rows × (1.0 with a
//!   keyword, 0.6 without); `after` 0.9;
//! - `parse`: 1.0, or 0.8 for an amount written without decimals.
//!
//! These factors were set by hand on the SROIE receipts and the invoices of
//! the development corpus (`examples/layout-eval.rs`); they rank candidates
//! and are not calibrated probabilities.
//!
//! Provenance: the page and the box of the text the value came from (a span
//! of a line gets the part of the line's box in proportion to its characters).

pub mod hints;
pub mod issuer;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::field::{FieldDef, FieldType};
use super::parse::{find_amounts, find_currencies, find_dates, find_integers};
use super::record::{FieldValue, Record};
use super::schema::FieldSchema;
use crate::types::BBox;
use hints::{Pick, Position};

/// One text line of a page, in page pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub text: String,
    pub bbox: BBox,
    /// Recognition confidence in `[0, 1]` (1.0 for text-layer lines).
    pub confidence: f32,
    /// Font size, points, from a PDF's text layer; `None` for OCR lines
    /// (their box height is the only evidence of size).
    pub font_size: Option<f32>,
    /// Set in a bold font (text layer only; `false` for OCR lines).
    pub bold: bool,
}

/// The lines of one page.
#[derive(Clone, Debug, PartialEq)]
pub struct PageLines {
    /// Page index, 0-based.
    pub page: u32,
    /// Page size, pixels.
    pub width: f32,
    pub height: f32,
    pub lines: Vec<Line>,
}

/// A regex that must match a whole string, compiled by the `jsonschema`
/// crate (ECMA-262 syntax, like the schema's own `pattern`).
struct Matcher(jsonschema::Validator);

impl Matcher {
    /// `ignore_case`: letters match either case.
    fn new(pattern: &str, ignore_case: bool) -> Option<Self> {
        let p = if ignore_case {
            format!("^(?i:{pattern})$")
        } else {
            format!("^(?:{pattern})$")
        };
        jsonschema::validator_for(&json!({"type": "string", "pattern": p}))
            .ok()
            .map(Self)
    }

    fn full_match(&self, s: &str) -> bool {
        self.0.is_valid(&Value::String(s.to_string()))
    }
}

struct Plan {
    def: FieldDef,
    /// Labels (lower-case, longest first) with their quality factor.
    labels: Vec<(String, f32)>,
    exclude: Vec<String>,
    keywords: Vec<String>,
    stop: Vec<String>,
    pattern: Option<Matcher>,
    skip: Option<Matcher>,
    strip: Option<Matcher>,
    start: Option<Matcher>,
}

/// The layout engine for one schema. Build once, use for every document.
pub struct LayoutEngine {
    /// In extraction order: `after` fields follow the field they name.
    plans: Vec<Plan>,
}

/// A line prepared for matching.
struct L {
    page: u32,
    /// Index in reading order over the whole document.
    order: usize,
    text: String,
    /// Lower-case text; `map[i]` is the byte in `text` where `lower`'s byte `i` came from.
    lower: String,
    map: Vec<usize>,
    bbox: BBox,
    conf: f32,
    font_size: Option<f32>,
    bold: bool,
}

impl L {
    fn h(&self) -> f32 {
        self.bbox.height().max(1.0)
    }

    /// The approximate box of the byte span `start..end` of `text`.
    fn span_box(&self, start: usize, end: usize) -> BBox {
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

fn lower_with_map(text: &str) -> (String, Vec<usize>) {
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

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Byte offset (in `lower`) just past the first whole-word occurrence of
/// `label`, and where it starts. Spaces in the label match any run of spaces
/// (or none) in the line.
fn find_label(lower: &str, label: &str) -> Option<(usize, usize)> {
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
        let boundary_before = lower[..start].chars().next_back().is_none_or(|c| !word(c));
        let boundary_after = lower[end..].chars().next().is_none_or(|c| !word(c));
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
const FUZZY: f32 = 0.8;

/// Levenshtein distance of `a` and `b` is at most 1.
fn within_one_edit(a: &[char], b: &[char]) -> bool {
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
fn find_fuzzy(lower: &str, label: &str) -> Option<(usize, usize)> {
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

/// A candidate value.
#[derive(Clone)]
struct Cand {
    value: Value,
    score: f32,
    page: u32,
    bbox: BBox,
    order: usize,
    /// Numeric value for `pick: largest`.
    num: Option<f64>,
    /// Parsed without doubt (e.g. an amount with decimals): `pick: largest`
    /// prefers these, so that `3100` (a lost decimal point) loses to `31.00`.
    sure: bool,
}

/// Leading punctuation between a label and its value.
fn trim_lead(s: &str) -> (&str, usize) {
    let t = s.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, ':' | '-' | '.' | '=' | '|' | '/' | ')' | ']')
    });
    (t, s.len() - t.len())
}

fn mean(xs: impl Iterator<Item = f32>) -> f32 {
    let (s, n) = xs.fold((0.0f32, 0u32), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f32
    }
}

fn contains_any(lower: &str, terms: &[String]) -> bool {
    let sq = squash(lower);
    terms
        .iter()
        .any(|t| find_label(lower, t).is_some() || (t.contains(' ') && sq.contains(&squash(t))))
}

impl Plan {
    /// A typed value read from `text` (a line or the part after a label):
    /// the value, its byte span, and the parse factor.
    fn parse(&self, text: &str) -> Option<(Value, usize, usize, f32, Option<f64>)> {
        match &self.def.ty {
            FieldType::Date => find_dates(text)
                .into_iter()
                .next()
                .map(|f| (Value::String(f.value), f.start, f.end, 1.0, None)),
            FieldType::DateTime => None,
            FieldType::Number | FieldType::Decimal { .. } => {
                let amounts = find_amounts(text);
                // The last amount with decimals (`TOTAL 2 ITEMS 25.00`), else the first.
                let a = amounts
                    .iter()
                    .rev()
                    .find(|a| a.value.has_decimals)
                    .or(amounts.first())?;
                let q = if a.value.has_decimals { 1.0 } else { 0.8 };
                let v = serde_json::Number::from_f64(a.value.value)?;
                Some((Value::Number(v), a.start, a.end, q, Some(a.value.value)))
            }
            FieldType::Integer => find_integers(text)
                .into_iter()
                .next()
                .map(|f| (json!(f.value), f.start, f.end, 1.0, Some(f.value as f64))),
            FieldType::Enum(members) => find_currencies(text, members)
                .into_iter()
                .next()
                .map(|f| (Value::String(f.value), f.start, f.end, 1.0, None)),
            FieldType::Boolean => {
                let (t, off) = trim_lead(text);
                let w: String = t
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || matches!(c, '✓' | '☑'))
                    .collect();
                let v = match w.to_lowercase().as_str() {
                    "yes" | "true" | "y" | "x" | "ja" | "oui" | "si" | "✓" | "☑" => true,
                    "no" | "false" | "n" | "nee" | "nein" | "non" => false,
                    _ => return None,
                };
                Some((Value::Bool(v), off, off + w.len(), 1.0, None))
            }
            FieldType::String => {
                let (t, off) = trim_lead(text);
                let t = t.trim_end();
                if t.is_empty() {
                    return None;
                }
                match &self.pattern {
                    None => Some((Value::String(t.to_string()), off, off + t.len(), 1.0, None)),
                    Some(m) => pattern_span(t, m).map(|(a, b)| {
                        (
                            Value::String(t[a..b].to_string()),
                            off + a,
                            off + b,
                            1.0,
                            None,
                        )
                    }),
                }
            }
            FieldType::List(_) | FieldType::Struct(_) => None,
        }
    }
}

/// The first span of 1 to 3 whitespace-separated words of `text` (shortest
/// first at each start; outer punctuation `:`, `,`, `;`, `(`, `)` stripped)
/// that `m` matches whole.
fn pattern_span(text: &str, m: &Matcher) -> Option<(usize, usize)> {
    let words: Vec<(usize, usize)> = {
        let mut v = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            match (c.is_whitespace(), start) {
                (true, Some(s)) => {
                    v.push((s, i));
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            v.push((s, text.len()));
        }
        v
    };
    for i in 0..words.len() {
        for j in i..words.len().min(i + 3) {
            let (mut a, mut b) = (words[i].0, words[j].1);
            let strip = |c: char| matches!(c, ':' | ',' | ';' | '(' | ')');
            while a < b && text[a..].starts_with(strip) {
                a += text[a..].chars().next().map_or(1, char::len_utf8);
            }
            while b > a && text[..b].ends_with(strip) {
                b -= text[..b].chars().next_back().map_or(1, char::len_utf8);
            }
            if a < b && m.full_match(&text[a..b]) {
                return Some((a, b));
            }
        }
    }
    None
}

fn vertical_overlap(a: &BBox, b: &BBox) -> f32 {
    let o = a.y1.min(b.y1) - a.y0.max(b.y0);
    o.max(0.0) / a.height().min(b.height()).max(1.0)
}

/// Fullwidth ASCII forms (U+FF01..U+FF5E, as CJK OCR models often emit for
/// brackets and punctuation) and the ideographic space folded to ASCII.
fn fold_fullwidth(s: &str) -> String {
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
fn prepare(pages: &[PageLines]) -> Vec<L> {
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
            let joins = rows.last().and_then(|r| r.first()).is_some_and(|first| {
                (cy(first) - cy(l)).abs() <= 0.5 * first.bbox.height().min(l.bbox.height()).max(1.0)
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
                    conf: if l.confidence.is_finite() {
                        l.confidence.clamp(0.0, 1.0)
                    } else {
                        0.0
                    },
                    font_size: l.font_size,
                    bold: l.bold,
                });
            }
        }
    }
    out
}

impl LayoutEngine {
    /// Prepare the engine for `schema`'s top-level scalar fields (lists and
    /// objects are never found by this engine).
    pub fn new(schema: &FieldSchema) -> Self {
        let mut plans: Vec<Plan> = schema
            .fields()
            .iter()
            .filter(|f| f.ty.is_scalar())
            .map(|f| {
                let explicit: Vec<String> =
                    f.hints.labels.iter().map(|s| s.to_lowercase()).collect();
                let title = f.title.as_deref().map(str::to_lowercase);
                let labels = f
                    .labels()
                    .into_iter()
                    .map(|l| {
                        let from_desc = !explicit.contains(&l)
                            && title.as_deref() != Some(l.as_str())
                            && l != f.name.replace('_', " ");
                        let q = if from_desc { 0.9 } else { 1.0 };
                        (l, q)
                    })
                    .collect();
                let low = |v: &[String]| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
                Plan {
                    labels,
                    exclude: low(&f.hints.exclude),
                    keywords: low(&f.hints.keywords),
                    stop: low(&f.hints.stop),
                    pattern: f
                        .hints
                        .pattern
                        .as_deref()
                        .and_then(|p| Matcher::new(p, false)),
                    skip: f.hints.skip.as_deref().and_then(|p| Matcher::new(p, true)),
                    strip: f.hints.strip.as_deref().and_then(|p| Matcher::new(p, true)),
                    start: f.hints.start.as_deref().and_then(|p| Matcher::new(p, true)),
                    def: f.clone(),
                }
            })
            .collect();
        // Fields named by `after` first (the schema refuses cycles).
        let mut ordered: Vec<Plan> = Vec::with_capacity(plans.len());
        while !plans.is_empty() {
            let ready = plans.iter().position(|p| {
                p.def.hints.after.as_ref().is_none_or(|a| {
                    ordered.iter().any(|o| &o.def.name == a)
                        || !plans.iter().any(|q| &q.def.name == a)
                })
            });
            let i = ready.unwrap_or(0);
            ordered.push(plans.remove(i));
        }
        Self { plans: ordered }
    }

    /// Find every field in the lines of one document's pages.
    pub fn extract(&self, pages: &[PageLines]) -> Record {
        self.run(pages, None)
    }

    /// Every candidate of every field, as [`FieldValue`]s in the order they
    /// were found (the value [`extract`](Self::extract) picks among them is
    /// decided by the field's `pick`): for tuning hints on a document.
    pub fn candidates(&self, pages: &[PageLines]) -> BTreeMap<String, Vec<FieldValue>> {
        let mut all = BTreeMap::new();
        self.run(pages, Some(&mut all));
        all
    }

    fn run(
        &self,
        pages: &[PageLines],
        mut all: Option<&mut BTreeMap<String, Vec<FieldValue>>>,
    ) -> Record {
        let lines = prepare(pages);
        let mut record = Record::default();
        // Line (reading order) of each found field's value, for `after`.
        let mut found_at: BTreeMap<String, usize> = BTreeMap::new();
        for plan in &self.plans {
            let cands = if let Some(after) = &plan.def.hints.after {
                match found_at.get(after) {
                    Some(&anchor) => after_candidates(plan, &lines, anchor),
                    None => Vec::new(),
                }
            } else if plan.def.hints.position == Some(Position::Top) {
                top_candidates(plan, &lines)
            } else {
                let mut c = labelled_candidates(plan, &lines);
                c.extend(unlabelled_candidates(plan, &lines));
                c
            };
            if let Some(all) = all.as_deref_mut() {
                all.insert(
                    plan.def.name.clone(),
                    cands.iter().map(Cand::field_value).collect(),
                );
            }
            let alternatives = if plan.def.hints.rounding.is_some() {
                cands.clone()
            } else {
                Vec::new()
            };
            if let Some(best) = pick(plan, cands) {
                let best = apply_rounding(plan, &lines, &alternatives, best);
                found_at.insert(plan.def.name.clone(), best.order);
                record
                    .fields
                    .insert(plan.def.name.clone(), best.field_value());
            }
        }
        record
    }
}

impl Cand {
    fn field_value(&self) -> FieldValue {
        FieldValue {
            value: self.value.clone(),
            confidence: self.score.clamp(0.0, 1.0),
            page: Some(self.page),
            bbox: Some(self.bbox),
        }
    }
}

/// The `rounding` hint: a picked amount that is not a multiple of the step
/// gives way to one that is, within one step of it: first among the other
/// candidates (best confidence), else the first such amount with decimals
/// at or after it in reading order on its page (an unlabelled rounded total
/// printed below), with 0.9 times its confidence.
fn apply_rounding(plan: &Plan, lines: &[L], cands: &[Cand], best: Cand) -> Cand {
    let (Some(step), Some(v)) = (plan.def.hints.rounding, best.num) else {
        return best;
    };
    let is_multiple = |x: f64| ((x / step) - (x / step).round()).abs() < 1e-6;
    if is_multiple(v) {
        return best;
    }
    let near = |x: f64| x > 0.0 && is_multiple(x) && (x - v).abs() < step;
    if let Some(c) = cands
        .iter()
        .filter(|c| c.num.is_some_and(near))
        .max_by(|a, b| a.score.total_cmp(&b.score))
    {
        return c.clone();
    }
    for l in lines
        .iter()
        .filter(|l| l.page == best.page && l.order >= best.order)
    {
        for a in find_amounts(&l.text) {
            if a.value.has_decimals && near(a.value.value) {
                let Some(n) = serde_json::Number::from_f64(a.value.value) else {
                    continue;
                };
                return Cand {
                    value: Value::Number(n),
                    score: best.score * 0.9,
                    page: l.page,
                    bbox: l.span_box(a.start, a.end),
                    order: l.order,
                    num: Some(a.value.value),
                    sure: true,
                };
            }
        }
    }
    best
}

fn pick(plan: &Plan, mut cands: Vec<Cand>) -> Option<Cand> {
    if cands.is_empty() {
        return None;
    }
    if let FieldType::Enum(_) = plan.def.ty {
        // Vote: the value with the largest summed score; its best candidate.
        let mut votes: Vec<(Value, f32)> = Vec::new();
        for c in &cands {
            match votes.iter_mut().find(|(v, _)| *v == c.value) {
                Some((_, sum)) => *sum += c.score,
                None => votes.push((c.value.clone(), c.score)),
            }
        }
        let winner = votes
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(v, _)| v)?;
        cands.retain(|c| c.value == winner);
    }
    let by_score = |a: &Cand, b: &Cand| a.score.total_cmp(&b.score).then(b.order.cmp(&a.order));
    match plan.def.hints.pick {
        Pick::Best => cands.into_iter().max_by(by_score),
        Pick::Largest => {
            // Among labelled candidates of at least half the best confidence.
            let best = cands.iter().map(|c| c.score).fold(0.0f32, f32::max);
            cands
                .into_iter()
                .filter(|c| c.score >= 0.5 * best)
                .max_by(|a, b| {
                    a.sure
                        .cmp(&b.sure)
                        .then(
                            a.num
                                .unwrap_or(f64::NEG_INFINITY)
                                .total_cmp(&b.num.unwrap_or(f64::NEG_INFINITY)),
                        )
                        .then(by_score(a, b))
                })
        }
        Pick::First => cands.into_iter().min_by_key(|c| c.order),
        Pick::Last => cands.into_iter().max_by_key(|c| c.order),
        Pick::Top => cands
            .into_iter()
            .min_by(|a, b| a.page.cmp(&b.page).then(a.bbox.y0.total_cmp(&b.bbox.y0))),
        Pick::Bottom => cands
            .into_iter()
            .max_by(|a, b| a.page.cmp(&b.page).then(a.bbox.y1.total_cmp(&b.bbox.y1))),
    }
}

fn cand_from(plan: &Plan, line: &L, text_from: usize, place: f32, label_q: f32) -> Option<Cand> {
    let text = line.text.get(text_from..)?;
    let (value, a, b, parse_q, num) = plan.parse(text)?;
    Some(Cand {
        value,
        score: line.conf * label_q * place * parse_q,
        page: line.page,
        bbox: line.span_box(text_from + a, text_from + b),
        order: line.order,
        num,
        sure: parse_q >= 1.0,
    })
}

fn labelled_candidates(plan: &Plan, lines: &[L]) -> Vec<Cand> {
    let mut out = Vec::new();
    for l in lines {
        if contains_any(&l.lower, &plan.exclude) {
            continue;
        }
        let exact = plan
            .labels
            .iter()
            .find_map(|(lab, q)| find_label(&l.lower, lab).map(|(s, e)| (s, e, *q)));
        let fuzzy = || {
            plan.labels
                .iter()
                .find_map(|(lab, q)| find_fuzzy(&l.lower, lab).map(|(s, e)| (s, e, *q * FUZZY)))
        };
        let Some((start, end, q)) = exact.or_else(fuzzy) else {
            continue;
        };
        let at_start = l.lower[..start]
            .trim()
            .chars()
            .all(|c| !c.is_alphanumeric());
        // A phrase (`invoice date`) is more specific than a word (`date`).
        let phrase = l.lower[start..end].split_whitespace().count() > 1;
        let label_q = q * if at_start { 1.0 } else { 0.9 } * if phrase { 1.0 } else { 0.95 };
        let end_orig = l.map.get(end).copied().unwrap_or(l.text.len());
        // 1. Same line, after the label (when in doubt, look further too).
        if let Some(c) = cand_from(plan, l, end_orig, 1.0, label_q) {
            let sure = c.sure;
            out.push(c);
            if sure {
                continue;
            }
        }
        let label_box = l.span_box(l.map.get(start).copied().unwrap_or(0), end_orig);
        // 2. Right, same row.
        let mut right: Vec<&L> = lines
            .iter()
            .filter(|m| {
                m.page == l.page
                    && m.order != l.order
                    && vertical_overlap(&m.bbox, &l.bbox) >= 0.5
                    && m.bbox.x0 >= label_box.x1 - 0.5 * l.h()
            })
            .collect();
        right.sort_by(|a, b| a.bbox.x0.total_cmp(&b.bbox.x0));
        let mut got = false;
        for (m, place) in right.iter().zip([0.95, 0.85]) {
            if let Some(c) = cand_from(plan, m, 0, place, label_q) {
                out.push(c);
                got = true;
                break;
            }
        }
        if got {
            continue;
        }
        // 3. Below, overlapping the label horizontally.
        let h = l.h();
        let mut below: Vec<&L> = lines
            .iter()
            .filter(|m| {
                m.page == l.page
                    && m.order != l.order
                    && m.bbox.y0 >= l.bbox.y1 - 0.25 * h
                    && m.bbox.y0 <= l.bbox.y1 + 2.5 * h
                    && m.bbox.x1.min(label_box.x1.max(label_box.x0 + 2.0 * h) + h)
                        > m.bbox.x0.max(label_box.x0 - h)
            })
            .collect();
        below.sort_by(|a, b| {
            a.bbox
                .y0
                .total_cmp(&b.bbox.y0)
                .then(a.bbox.x0.total_cmp(&b.bbox.x0))
        });
        for (m, place) in below.iter().zip([0.85, 0.7]) {
            if let Some(c) = cand_from(plan, m, 0, place, label_q) {
                out.push(c);
                break;
            }
        }
    }
    out
}

/// Dates and enum members anywhere, for labelled fields of those types.
fn unlabelled_candidates(plan: &Plan, lines: &[L]) -> Vec<Cand> {
    let mut out = Vec::new();
    let take_all = matches!(plan.def.ty, FieldType::Enum(_));
    if !(take_all || plan.def.ty == FieldType::Date) {
        return out;
    }
    for l in lines {
        match &plan.def.ty {
            FieldType::Date => {
                for f in find_dates(&l.text) {
                    out.push(Cand {
                        value: Value::String(f.value),
                        score: l.conf * 0.5,
                        page: l.page,
                        bbox: l.span_box(f.start, f.end),
                        order: l.order,
                        num: None,
                        sure: true,
                    });
                }
            }
            FieldType::Enum(members) => {
                for f in find_currencies(&l.text, members) {
                    out.push(Cand {
                        value: Value::String(f.value),
                        score: l.conf * 0.5,
                        page: l.page,
                        bbox: l.span_box(f.start, f.end),
                        order: l.order,
                        num: None,
                        sure: true,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

fn letters(s: &str) -> usize {
    s.chars().filter(|c| c.is_alphabetic()).count()
}

/// One row of lines (same page, overlapping vertically), left to right.
struct Row<'a> {
    lines: Vec<&'a L>,
    text: String,
    lower: String,
    bbox: BBox,
}

impl<'a> Row<'a> {
    fn new(lines: Vec<&'a L>) -> Option<Self> {
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

    fn conf(&self) -> f32 {
        mean(self.lines.iter().map(|l| l.conf))
    }

    fn last_order(&self) -> usize {
        self.lines.iter().map(|l| l.order).max().unwrap_or(0)
    }
}

/// The rows of `page` in reading order (`lines` is already in reading order,
/// row by row).
fn rows_of(lines: &[L], page: u32) -> Vec<Row<'_>> {
    let mut groups: Vec<Vec<&L>> = Vec::new();
    for l in lines.iter().filter(|l| l.page == page) {
        // Side by side: overlapping vertically, not horizontally.
        let same = groups.last().is_some_and(|g| {
            g.first()
                .is_some_and(|f| vertical_overlap(&f.bbox, &l.bbox) >= 0.5)
                && g.iter()
                    .all(|m| m.bbox.x1.min(l.bbox.x1) <= m.bbox.x0.max(l.bbox.x0))
        });
        match groups.last_mut() {
            Some(g) if same => g.push(l),
            _ => groups.push(vec![l]),
        }
    }
    groups.into_iter().filter_map(Row::new).collect()
}

/// Letters of `lower` outside whole-word occurrences of `terms`.
fn letters_besides(lower: &str, terms: &[String]) -> usize {
    let mut rest = lower.to_string();
    for t in terms {
        while let Some((a, b)) = find_label(&rest, t) {
            rest.replace_range(a..b, &" ".repeat(b - a));
        }
    }
    letters(&rest)
}

/// Cut a trailing part that `strip` matches whole (e.g. a registration
/// number after a company name), at a word start.
fn strip_tail(text: &str, strip: Option<&Matcher>) -> String {
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

/// `position: top`: the first rows of the first page that has text. A row
/// is one candidate (its lines joined left to right). A row made of
/// keywords only (a legal suffix such as `SDN BHD` on a line of its own)
/// continues the row above; a row ending in `&` continues on the row below.
fn top_candidates(plan: &Plan, lines: &[L]) -> Vec<Cand> {
    let Some(first_page) = lines.first().map(|l| l.page) else {
        return Vec::new();
    };
    // Up to 8 rows with at least 3 letters, from the top of the page.
    const TOP_ROWS: usize = 8;
    let rows = rows_of(lines, first_page);
    let usable = |r: &Row| {
        letters(&r.text) >= 3
            && !plan
                .skip
                .as_ref()
                .is_some_and(|m| m.full_match(r.text.trim()))
            && !contains_any(&r.lower, &plan.stop)
    };
    let close = |upper: &Row, lower: &Row| {
        let h = upper.bbox.height().min(lower.bbox.height()).max(1.0);
        lower.bbox.y0 - upper.bbox.y1 < 1.0 * h
    };
    let mut out = Vec::new();
    let mut groups: Vec<Vec<&L>> = Vec::new();
    let mut rank = 0;
    for (k, r) in rows.iter().enumerate() {
        if rank >= TOP_ROWS {
            break;
        }
        if letters(&r.text) < 3
            || plan
                .skip
                .as_ref()
                .is_some_and(|m| m.full_match(r.text.trim()))
        {
            continue;
        }
        rank += 1;
        if contains_any(&r.lower, &plan.stop) {
            continue;
        }
        let has_kw = !plan.keywords.is_empty() && contains_any(&r.lower, &plan.keywords);
        let kw = if plan.keywords.is_empty() || has_kw {
            1.0
        } else {
            0.6
        };
        let mut used: Vec<&Row> = vec![r];
        if has_kw && letters_besides(&r.lower, &plan.keywords) < 4 {
            if let Some(above) = k.checked_sub(1).map(|i| &rows[i]) {
                if usable(above) && close(above, r) {
                    used.insert(0, above);
                }
            }
        }
        if r.text.trim_end().ends_with('&') {
            if let Some(below) = rows.get(k + 1) {
                if usable(below) && close(r, below) {
                    used.push(below);
                }
            }
        }
        let text = used
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let text = strip_tail(&text, plan.strip.as_ref());
        let Some(last) = used.last() else { continue };
        let (value, sure) = match &plan.def.ty {
            FieldType::String => match &plan.pattern {
                Some(m) if !m.full_match(&text) => continue,
                _ => (Value::String(text), true),
            },
            _ => match plan.parse(&text) {
                Some((v, _, _, q, _)) => (v, q >= 1.0),
                None => continue,
            },
        };
        let conf = mean(used.iter().map(|r| r.conf()));
        let mut c = Cand {
            value,
            score: conf * 0.9f32.powi(rank as i32 - 1) * kw,
            page: first_page,
            bbox: used.iter().fold(r.bbox, |b, r| b.union(&r.bbox)),
            order: last.last_order(),
            num: None,
            sure,
        };
        if plan.def.hints.lines > 1 {
            if let Some(from) = last.lines.iter().max_by_key(|l| l.order) {
                extend_below(plan, lines, from, &mut c, plan.def.hints.lines - 1);
            }
        }
        groups.push(used.iter().flat_map(|r| r.lines.iter().copied()).collect());
        out.push(c);
    }
    for (c, f) in out.iter_mut().zip(issuer::row_factors(lines, &groups)) {
        c.score *= f;
    }
    out
}

/// Append up to `n` following lines to a string candidate (see `after_candidates`).
fn extend_below(plan: &Plan, lines: &[L], from: &L, c: &mut Cand, n: usize) {
    let Value::String(s) = &c.value else {
        return;
    };
    let mut text = s.clone();
    let mut confs = vec![from.conf];
    let mut prev = from;
    for m in following(plan, lines, from).into_iter().take(n) {
        if m.bbox.y0 - prev.bbox.y1 > 2.5 * prev.h() {
            break;
        }
        text.push(' ');
        text.push_str(m.text.trim());
        confs.push(m.conf);
        c.bbox = c.bbox.union(&m.bbox);
        prev = m;
    }
    c.score *= mean(confs.iter().copied()) / from.conf.max(f32::EPSILON);
    c.value = Value::String(strip_tail(&text, plan.strip.as_ref()));
}

/// Lines below `from` on its page, in reading order, up to a stop line
/// (one with a `stop` text, a date, or no letters). Passed over: lines
/// matching `skip` (even if they hold a stop text); before the first line taken, lines not matching `start`
/// and date lines.
fn following<'a>(plan: &Plan, lines: &'a [L], from: &L) -> Vec<&'a L> {
    let mut out: Vec<&L> = Vec::new();
    for m in lines.iter().filter(|m| {
        m.page == from.page
            && m.order > from.order
            && m.bbox.y0 >= (from.bbox.y0 + from.bbox.y1) / 2.0
    }) {
        if plan
            .skip
            .as_ref()
            .is_some_and(|s| s.full_match(m.text.trim()))
        {
            continue;
        }
        if contains_any(&m.lower, &plan.stop) || letters(&m.text) == 0 {
            break;
        }
        let dated = !find_dates(&m.text).is_empty();
        if out.is_empty() {
            if dated
                || plan
                    .start
                    .as_ref()
                    .is_some_and(|s| !s.full_match(m.text.trim()))
            {
                continue;
            }
        } else if dated {
            break;
        }
        out.push(m);
    }
    out
}

/// `after: <field>`: up to `lines` lines below the anchor field's line.
fn after_candidates(plan: &Plan, lines: &[L], anchor: usize) -> Vec<Cand> {
    let Some(a) = lines.iter().find(|l| l.order == anchor) else {
        return Vec::new();
    };
    let mut used: Vec<&L> = Vec::new();
    let mut prev = a;
    for m in following(plan, lines, a) {
        // The first line may sit below passed-over lines; after it, a gap of
        // 2.5 line heights ends the value.
        let gap = if used.is_empty() { 6.0 } else { 2.5 };
        if used.len() >= plan.def.hints.lines || m.bbox.y0 - prev.bbox.y1 > gap * prev.h() {
            break;
        }
        used.push(m);
        prev = m;
    }
    let Some(first) = used.first() else {
        return Vec::new();
    };
    let text = used
        .iter()
        .map(|l| l.text.trim())
        .collect::<Vec<_>>()
        .join(" ");
    let text = strip_tail(&text, plan.strip.as_ref());
    let mut bbox = first.bbox;
    for l in &used {
        bbox = bbox.union(&l.bbox);
    }
    let value = match &plan.pattern {
        Some(m) if !m.full_match(&text) => return Vec::new(),
        _ => Value::String(text),
    };
    if plan.def.ty != FieldType::String {
        // Typed unlabelled values: parse the first line that parses.
        return used
            .iter()
            .find_map(|l| cand_from(plan, l, 0, 0.9, 1.0))
            .into_iter()
            .collect();
    }
    vec![Cand {
        value,
        score: mean(used.iter().map(|l| l.conf)) * 0.9,
        page: first.page,
        bbox,
        order: first.order,
        num: None,
        sure: true,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

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
