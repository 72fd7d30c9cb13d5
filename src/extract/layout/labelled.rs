//! Labelled fields: a value read after, right of or below one of the
//! field's labels; dates and enum members also taken without a label.
//!
//! A label is the field's only when no other field's label covers more of
//! its key (`Customer Code:` is not `customer`'s), and counts for less when
//! its key has words of its own (`Customer Region:`). A string value on the
//! label's line ends where the next key (`Region:`) or another field's label
//! starts. A label in a defined term (`1 May 2020 (the "Effective Date")`)
//! reads its date before it.

use serde_json::{json, Value};

use super::placed::{extend_block, starts_with_key};
use super::text::*;
use super::{Cand, Plan, Role};
use crate::extract::field::FieldType;
use crate::extract::parse::currency::find_mentions;
use crate::extract::parse::{find_amounts, find_date_readings, find_integers, DateFound};

/// A typed value read from a text: the value, its byte span, the parse
/// factor, the number (for `pick: largest`) and a date's month-first reading.
pub(super) struct Parsed {
    pub(super) value: Value,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) q: f32,
    pub(super) num: Option<f64>,
    pub(super) alt: Option<Value>,
}

impl Parsed {
    fn new(value: Value, start: usize, end: usize, q: f32, num: Option<f64>) -> Self {
        Self {
            value,
            start,
            end,
            q,
            num,
            alt: None,
        }
    }
}

impl Plan {
    /// The currencies mentioned in `text` that this field allows: a code,
    /// or a symbol's text (`$`) when the symbol may mean several allowed
    /// codes; the document's evidence resolves those later
    /// ([`super::resolve_currencies`]).
    pub(super) fn currencies(&self, text: &str) -> Vec<Parsed> {
        let allowed = self.currency.as_deref().unwrap_or_default();
        find_mentions(text)
            .into_iter()
            .filter_map(|f| {
                let codes: Vec<&str> = f
                    .value
                    .codes
                    .iter()
                    .copied()
                    .filter(|c| allowed.iter().any(|a| a == c))
                    .collect();
                let value = match (codes.as_slice(), f.value.symbol) {
                    ([], _) => return None,
                    ([one], _) => one.to_string(),
                    (_, Some(sym)) => sym.to_string(),
                    (_, None) => return None,
                };
                Some(Parsed::new(Value::String(value), f.start, f.end, 1.0, None))
            })
            .collect()
    }
}

/// Words a line must have to be running text.
const PROSE_WORDS: usize = 8;

/// Whether the label ending at `end` of `lower` sits in running text: the
/// line has [`PROSE_WORDS`] words or more and no separator (`:`, `-`, `#`,
/// `=`, `|`) follows the label.
fn in_prose(lower: &str, end: usize) -> bool {
    let sep = lower
        .get(end..)
        .and_then(|r| r.trim_start().chars().next())
        .is_some_and(|c| matches!(c, ':' | '-' | '–' | '—' | '#' | '=' | '|'));
    !sep && lower.split_whitespace().count() >= PROSE_WORDS
}

/// A heading rather than a value: numbered (`1. PURPOSE`, `(a)`), ending
/// in a colon, or a few capitalised words ending in a full stop
/// (`Acknowledgment.`).
fn heading(t: &str) -> bool {
    let t = t.trim();
    let first = t.split_whitespace().next().unwrap_or("");
    let numbered = first.len() <= 4
        && first.ends_with(['.', ')'])
        && first
            .trim_matches(|c: char| matches!(c, '(' | ')' | '.'))
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() && first.starts_with('('));
    let words: Vec<&str> = t.split_whitespace().collect();
    // A name may end in a short form or a legal form (`Acme, Inc.`).
    let last = words.last().copied().unwrap_or("").trim_end_matches('.');
    let short = last.chars().filter(|c| c.is_alphabetic()).count() <= 3
        || last.contains('.')
        || super::prose::legal_form(last);
    let titled = t.ends_with('.')
        && !short
        && words.len() <= 5
        && words.iter().all(|w| {
            w.chars()
                .next()
                .is_some_and(|c| !c.is_alphabetic() || c.is_uppercase())
        });
    numbered || t.ends_with(':') || titled
}

/// `t` without a defined term that follows a name: `Jane Roe ("Employee")`
/// is `Jane Roe`.
fn cut_alias(t: &str) -> &str {
    match t.find(" (") {
        Some(i)
            if t[i + 2..].starts_with(OPEN_QUOTES)
                || t[i + 2..].to_lowercase().starts_with("the ") =>
        {
            t[..i].trim_end_matches([',', ' '])
        }
        _ => t,
    }
}

/// Words between two dates that make them a range (`04/20/20 - 04/26/20`).
const RANGE_WORDS: &[&str] = &[
    "-", "–", "—", "~", "to", "through", "thru", "until", "till", "bis", "au", "tot",
];

impl Plan {
    /// A typed value read from `text` (a line or the part after a label).
    pub(super) fn parse(&self, text: &str) -> Option<Parsed> {
        if self.currency.is_some() {
            return self.currencies(text).into_iter().next();
        }
        match &self.ty {
            FieldType::Date => {
                let dates = find_date_readings(text);
                // The end of a range takes the range's second date.
                let pick = match (self.role, dates.first(), dates.get(1)) {
                    (Some(Role::End), Some(a), Some(b))
                        if RANGE_WORDS
                            .contains(&text[a.end..b.start].trim().to_lowercase().as_str()) =>
                    {
                        b
                    }
                    (_, Some(a), _) => a,
                    _ => return None,
                };
                let mut p = Parsed::new(
                    Value::String(pick.value.clone()),
                    pick.start,
                    pick.end,
                    1.0,
                    None,
                );
                p.alt = pick.month_first.clone().map(Value::String);
                Some(p)
            }
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
                Some(Parsed::new(
                    Value::Number(v),
                    a.start,
                    a.end,
                    q,
                    Some(a.value.value),
                ))
            }
            FieldType::Integer => find_integers(text)
                .into_iter()
                .next()
                .map(|f| Parsed::new(json!(f.value), f.start, f.end, 1.0, Some(f.value as f64))),
            FieldType::Enum(members) => {
                let lower = text.to_lowercase();
                members.iter().find_map(|m| {
                    let (start, end) = find_label(&lower, &m.to_lowercase())?;
                    Some(Parsed::new(Value::String(m.clone()), start, end, 1.0, None))
                })
            }
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
                Some(Parsed::new(Value::Bool(v), off, off + w.len(), 1.0, None))
            }
            FieldType::String if self.duration => {
                let (v, a, b) = super::prose::find_duration(text)?;
                Some(Parsed::new(Value::String(v), a, b, 1.0, None))
            }
            FieldType::String => {
                let (t, off) = trim_lead(text);
                let t = t.trim_end();
                if t.is_empty() {
                    return None;
                }
                // A field read from running text takes a name after its
                // label: not the sentence that follows a heading, not a
                // heading, and a name starts with a capital or a digit
                // (`shall agree` after `party` is the sentence going on).
                let named = t
                    .chars()
                    .find(|c| c.is_alphanumeric())
                    .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit());
                if !self.cues.is_empty()
                    && (t.split_whitespace().count() > PROSE_WORDS || !named || heading(t))
                {
                    return None;
                }
                // A defined term after a name is not part of it (`Jane Roe
                // ("Employee")`).
                let t = if self.cues.is_empty() {
                    t
                } else {
                    cut_alias(t)
                };
                match &self.pattern {
                    None => Some(Parsed::new(
                        Value::String(t.to_string()),
                        off,
                        off + t.len(),
                        1.0,
                        None,
                    )),
                    Some(m) => pattern_span(t, m).map(|(a, b)| {
                        Parsed::new(
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
pub(super) fn pattern_span(text: &str, m: &Matcher) -> Option<(usize, usize)> {
    let words = word_spans(text);
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

pub(super) fn cand_from(
    plan: &Plan,
    line: &L,
    text_from: usize,
    place: f32,
    label_q: f32,
) -> Option<Cand> {
    let rest = line.text.get(text_from..)?;
    // A line of its own that starts with a key is another label, not a value.
    if text_from == 0 && plan.ty == FieldType::String && starts_with_key(&line.lower, &[]) {
        return None;
    }
    // A string stops where the next key or another field's label starts.
    let text = match plan.ty {
        FieldType::String => &rest[..value_end(rest, &plan.others)],
        _ => rest,
    };
    let p = plan.parse(text)?;
    Some(Cand {
        value: p.value,
        score: line.conf * label_q * place * p.q,
        page: line.page,
        bbox: line.span_box(text_from + p.start, text_from + p.end),
        order: line.order,
        num: p.num,
        sure: p.q >= 1.0,
        alt: p.alt,
        copy: 1.0,
    })
}

/// Where a value that starts `text` ends: before the next key (1 to 3
/// words, the first with a letter, then `:`; not a time such as `12:30` or
/// a URL), or before another field's label that is a phrase or is
/// followed by `:`; else the end of `text`.
pub(super) fn value_end(text: &str, others: &[String]) -> usize {
    let (body, lead) = trim_lead(text);
    let (lower, map) = lower_with_map(body);
    let mut end = body.len();
    // Keys: a colon after a word. The key is the word before the colon, and
    // the word before that when it is a symbol or a short form (`Total $:`,
    // `Ref No.:`).
    for (i, c) in body.char_indices() {
        if c != ':' {
            continue;
        }
        let after = body[i + 1..].chars().next();
        if after.is_some_and(|n| n == '/' || n.is_ascii_digit()) {
            continue;
        }
        let words = word_starts(body[..i].trim_end());
        let Some(mut k) = words.len().checked_sub(1) else {
            continue;
        };
        let short =
            |w: &str| !w.chars().any(char::is_alphabetic) || (w.len() <= 4 && w.ends_with('.'));
        if k >= 1 && short(words[k].1) {
            k -= 1;
        }
        // At least one word of value before the key.
        if k >= 1 && words[k].1.chars().next().is_some_and(char::is_alphabetic) {
            end = end.min(words[k].0);
            break;
        }
    }
    // Other fields' labels.
    for o in others {
        let phrase = o.split_whitespace().count() > 1;
        let mut from = 0;
        while let Some((s, e)) = lower.get(from..).and_then(|r| find_label(r, o)) {
            let (s, e) = (from + s, from + e);
            let colon = lower[e..].trim_start().starts_with(':');
            let at = map.get(s).copied().unwrap_or(body.len());
            if s > 0 && (phrase || colon) && !body[..at].trim().is_empty() {
                end = end.min(at);
                break;
            }
            from = e;
        }
    }
    lead + body[..end].trim_end().len()
}

/// `(byte offset, word)` of each whitespace-separated word of `s`.
fn word_starts(s: &str) -> Vec<(usize, &str)> {
    word_spans(s)
        .into_iter()
        .map(|(a, b)| (a, &s[a..b]))
        .collect()
}

/// How much the key around a label found at `start..end` of `lower`
/// belongs to this field: `None` when another field's label covers more of
/// it (`customer code` for `customer`), 0.6 when the key (the words up to a
/// colon right after the label) has other words, else 1.0.
fn key_factor(plan: &Plan, lower: &str, start: usize, end: usize) -> Option<f32> {
    for o in &plan.others {
        let mut from = 0;
        while let Some((s, e)) = lower.get(from..).and_then(|r| find_label(r, o)) {
            let (s, e) = (from + s, from + e);
            if s <= start && e >= end && e - s > end - start {
                return None;
            }
            from = e;
        }
    }
    let rest = &lower[end..];
    if let Some(colon) = rest.find(':') {
        let between = &rest[..colon];
        let words: Vec<&str> = between.split_whitespace().collect();
        let extra = words
            .iter()
            .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2)
            .count();
        if extra > 0 && words.len() <= 3 && !between.chars().any(|c| c.is_ascii_digit()) {
            return Some(0.6);
        }
    }
    Some(1.0)
}

/// A label inside a defined term: `("Label")` or `(the "Label")` (any
/// quotes), with the byte where the parenthesis opens.
fn defined_term_open(lower: &str, start: usize, end: usize) -> Option<usize> {
    let quote = |c: char| {
        matches!(
            c,
            '"' | '\u{201c}' | '\u{201d}' | '\'' | '\u{2018}' | '\u{2019}'
        )
    };
    let before = lower[..start].trim_end();
    let before = before.strip_suffix(quote)?.trim_end();
    let after = lower[end..].trim_start();
    if !after.starts_with(quote) {
        return None;
    }
    let open = before.rfind('(')?;
    let inside = before[open + 1..].trim();
    let lead_ok = inside.is_empty()
        || [
            "the",
            "hereinafter",
            "hereinafter the",
            "hereinafter called",
            "hereinafter referred to as",
            "hereinafter referred to as the",
            "referred to as",
            "referred to as the",
            "each a",
            "collectively the",
            "together the",
            "a",
        ]
        .contains(&inside);
    lead_ok.then_some(open)
}

/// A candidate for date `d` found in line `l`'s text, with `score`.
fn date_cand(l: &L, d: DateFound, score: f32) -> Cand {
    Cand {
        bbox: l.span_box(d.start, d.end),
        value: Value::String(d.value),
        alt: d.month_first.map(Value::String),
        copy: 1.0,
        score,
        page: l.page,
        order: l.order,
        num: None,
        sure: true,
    }
}

pub(super) fn labelled_candidates(plan: &Plan, lines: &[L]) -> Vec<Cand> {
    let mut out = Vec::new();
    for (li, l) in lines.iter().enumerate() {
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
        let start_orig = l.map.get(start).copied().unwrap_or(0);
        // 0. A defined term: the date is written before it.
        if plan.ty == FieldType::Date {
            if let Some(open) = defined_term_open(&l.lower, start, end) {
                let open_orig = l.map.get(open).copied().unwrap_or(0);
                let dates = find_date_readings(&l.text[..open_orig]);
                let prev = li
                    .checked_sub(1)
                    .map(|k| &lines[k])
                    .filter(|p| p.page == l.page);
                if let Some(d) = dates.into_iter().last() {
                    out.push(date_cand(l, d, l.conf * q));
                    continue;
                }
                if let Some(p) = prev {
                    if let Some(d) = find_date_readings(&p.text).into_iter().last() {
                        out.push(date_cand(p, d, p.conf * q * 0.9));
                        continue;
                    }
                }
            }
        }
        let Some(key_q) = key_factor(plan, &l.lower, start, end) else {
            continue;
        };
        let at_start = l.lower[..start]
            .trim()
            .chars()
            .all(|c| !c.is_alphanumeric());
        // A word in running text ("the other party agrees", a wrapped line
        // that starts "jurisdiction over ...") is no key: a text label
        // counts there only before a separator. Such values are read from
        // the sentence instead (see `prose`).
        if plan.ty == FieldType::String && in_prose(&l.lower, end) {
            continue;
        }
        // A phrase (`invoice date`) is more specific than a word (`date`).
        let phrase = l.lower[start..end].split_whitespace().count() > 1;
        let label_q =
            q * key_q * if at_start { 1.0 } else { 0.9 } * if phrase { 1.0 } else { 0.95 };
        let end_orig = l.map.get(end).copied().unwrap_or(l.text.len());
        // 1. Same line, after the label (when in doubt, look further too).
        if let Some(mut c) = cand_from(plan, l, end_orig, 1.0, label_q) {
            let sure = c.sure;
            if plan.def.hints.block {
                let x0 = c.bbox.x0;
                extend_block(plan, lines, l, x0, &mut c);
            }
            out.push(c);
            if sure {
                continue;
            }
        }
        let label_box = l.span_box(start_orig, end_orig);
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
        // A block's label heads its column: the block is read below it
        // first (the cell to the right of a heading is most often the next
        // column's heading: `Billing Address  Shipping Address`).
        if !plan.def.hints.block {
            if let Some(c) = first_cand(plan, lines, &right, [0.95, 0.85], label_q) {
                out.push(c);
                continue;
            }
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
        let under = first_cand(plan, lines, &below, [0.85, 0.7], label_q);
        if plan.def.hints.block && under.is_none() {
            out.extend(first_cand(plan, lines, &right, [0.95, 0.85], label_q));
        }
        out.extend(under);
    }
    out
}

/// The value of the first of the two nearest `near` lines that holds one,
/// with their place factors (extended down for a block field).
fn first_cand(
    plan: &Plan,
    lines: &[L],
    near: &[&L],
    places: [f32; 2],
    label_q: f32,
) -> Option<Cand> {
    near.iter().zip(places).find_map(|(m, place)| {
        let mut c = cand_from(plan, m, 0, place, label_q)?;
        if plan.def.hints.block {
            extend_block(plan, lines, m, m.bbox.x0, &mut c);
        }
        Some(c)
    })
}

/// Dates and enum members anywhere, for labelled fields of those types.
pub(super) fn unlabelled_candidates(plan: &Plan, lines: &[L]) -> Vec<Cand> {
    let mut out = Vec::new();
    let take_all = matches!(plan.ty, FieldType::Enum(_)) || plan.currency.is_some();
    if !(take_all || plan.ty == FieldType::Date) {
        return out;
    }
    for l in lines {
        match &plan.ty {
            FieldType::Date => {
                for f in find_date_readings(&l.text) {
                    out.push(date_cand(l, f, l.conf * 0.5));
                }
            }
            _ => {
                let found = if plan.currency.is_some() {
                    plan.currencies(&l.text)
                } else {
                    plan.parse(&l.text).into_iter().collect()
                };
                for f in found {
                    out.push(Cand {
                        alt: None,
                        copy: 1.0,
                        value: f.value,
                        score: l.conf * 0.5,
                        page: l.page,
                        bbox: l.span_box(f.start, f.end),
                        order: l.order,
                        num: None,
                        sure: true,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{cut_alias, heading, in_prose, value_end};

    #[test]
    fn headings_and_defined_terms_are_not_names() {
        for h in [
            "1. PURPOSE",
            "(a) Scope",
            "Acknowledgment.",
            "Purpose of disclosure:",
        ] {
            assert!(heading(h), "{h}");
        }
        for v in [
            "Northwind Traders, Inc.",
            "Jane Roe",
            "Acme Ltd. and Globex LLC, both of them here",
        ] {
            assert!(!heading(v), "{v}");
        }
        assert_eq!(cut_alias("Jane Roe (\"Employee\")"), "Jane Roe");
        assert_eq!(
            cut_alias("Acme, Inc. (the \u{201c}Company\u{201d})"),
            "Acme, Inc."
        );
        assert_eq!(cut_alias("Acme (Europe) Ltd"), "Acme (Europe) Ltd");
    }

    #[test]
    fn a_label_in_running_text_is_no_key() {
        let l = "each party agrees that the other party shall keep it secret";
        assert!(in_prose(l, "each party".len()));
        let k = "the receiving party: acme holdings ltd of some long street name";
        assert!(!in_prose(k, "the receiving party".len()));
        assert!(!in_prose("party acme ltd", "party".len()));
    }

    #[test]
    fn values_end_at_the_next_key() {
        let others = vec!["total".to_string(), "invoice date".to_string()];
        let cases = [
            (
                ": Northwind Traders Region: East Total $: $1,050.00",
                ": Northwind Traders",
            ),
            (" Acme Ltd Invoice Date 04/05/20", " Acme Ltd"),
            (": 10:30 Gate 5", ": 10:30 Gate 5"),
            (": see http://example.com", ": see http://example.com"),
            (": Jane Roe Ref No.: 55", ": Jane Roe"),
            (" Total: 5", " Total: 5"),
        ];
        for (text, want) in cases {
            assert_eq!(&text[..value_end(text, &others)], want, "{text:?}");
        }
    }
}
