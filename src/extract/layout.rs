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
//! `skip` or contain a `stop` text (but a row that ends in one, after a
//! part with a keyword, is read without it: `Acme Services Invoice`); a
//! row of keywords only, such as a legal
//! suffix `SDN BHD` on its own, continues the row above, and a row ending
//! in `&` the row below); `"after": "<field>"` reads up to `lines` lines
//! below that field's value, passing over lines that match `skip` and
//! stopping at a line with one of its `stop` texts, a date, no letters, or
//! after a vertical gap of more than 2.5 line heights. `strip` cuts a
//! trailing part off such values.
//!
//! A string field may also be read from **running text** (see [`prose`]):
//! the sentence that holds the field's own words, then a name, a duration
//! or, for a list, the company names in it. An address (`kind: address`,
//! or `address` in the name or title) ends at its postcode line (see
//! [`super::parse::address`]).
//!
//! When several candidates compete the field's `pick` hint decides (best
//! confidence by default; `largest` for totals).
//!
//! # Confidence
//!
//! `confidence = ocr × label × place × parse`, each in `[0, 1]`:
//! - `ocr`: the recognition confidence of the line the value came from (the
//!   mean over lines for multi-line values; for an address, the chance that
//!   its weakest line was read without one wrong character, halved when
//!   its street lines are missing: see `placed::address_sureness`);
//! - `label`: 1.0 when the label starts its line, 0.9 when it is inside it;
//!   × 0.95 for a one-word label (a phrase is more specific); × 0.9 for a
//!   synonym taken from the description; × 0.8 for a label read with one
//!   OCR error;
//! - `place`: same line 1.0; right on the same row 0.95 (next one 0.85);
//!   below 0.85 (next one 0.7); unlabelled dates 0.5, enum votes 0.5;
//!   `position: top` 0.9^rank among the candidate rows × (1.0 with a
//!   keyword, 0.6 without); `after` 0.9; running text 0.6 × (0.5 + 0.5 ×
//!   the share of the field's word weight the sentence holds), and for a
//!   duration × how plainly the sentence says it is how long the field's
//!   subject lasts (1/3, 2/3 or 1: see `prose::lasting`);
//! - `parse`: 1.0, or 0.8 for an amount written without decimals;
//! - for a `position: top` string, once the winner is chosen (past the
//!   rivals below), × its lines' mean OCR confidence to the power of its
//!   characters less one: the chance of an exact copy.
//!
//! These factors were set by hand on the SROIE receipts and the invoices of
//! the development corpus (`examples/layout-eval.rs`); they rank candidates
//! and are not calibrated probabilities.
//!
//! Provenance: the page and the box of the text the value came from (a span
//! of a line gets the part of the line's box in proportion to its characters).

pub mod hints;
pub mod issuer;
mod labelled;
mod pick;
mod placed;
mod prose;
mod text;

use std::collections::BTreeMap;

use serde_json::Value;

use super::field::{FieldDef, FieldType};
use super::parse::currency::{is_iso_code, symbol_codes, Evidence, ISO_4217};
use super::parse::{find_date_readings, DateOrder};
use super::record::{FieldValue, Record};
use super::schema::FieldSchema;
use crate::types::BBox;
use hints::{Kind, Position};
use labelled::{labelled_candidates, unlabelled_candidates};
use pick::{apply_rounding, pick};
use placed::{after_candidates, top_candidates};
use text::{prepare, Matcher};

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

struct Plan {
    def: FieldDef,
    /// The type of one value: the field's, or its items' for a list.
    ty: FieldType,
    /// For a date field named as one end of a range (`period_start`,
    /// `valid_to`): which end.
    role: Option<Role>,
    /// Every other field's labels (lower-case): a value on a line stops
    /// where one of them starts, and a label inside a longer one of another
    /// field (`customer` in `customer code`) is that field's.
    others: Vec<String>,
    /// Labels (lower-case, longest first) with their quality factor.
    labels: Vec<(String, f32)>,
    exclude: Vec<String>,
    keywords: Vec<String>,
    stop: Vec<String>,
    pattern: Option<Matcher>,
    skip: Option<Matcher>,
    strip: Option<Matcher>,
    start: Option<Matcher>,
    /// For a currency field: the ISO 4217 codes it may take.
    currency: Option<Vec<String>>,
    /// A postal address: a multi-line value ends at its postcode line (see
    /// [`super::parse::address`]).
    address: bool,
    /// A length of time read from running text (see [`prose`]).
    duration: bool,
    /// For a string field read from running text: its own words, stemmed
    /// (see [`prose`]); empty for other fields.
    cues: Vec<String>,
}

/// Whether string field `f` is a postal address: `kind: address`, or the
/// word `address` in its name or title.
fn is_address(f: &FieldDef, ty: &FieldType) -> bool {
    let word = |s: &str| hints::name_words(s).iter().any(|w| w == "address");
    *ty == FieldType::String
        && (f.hints.kind == Some(Kind::Address)
            || word(&f.name)
            || f.title.as_deref().is_some_and(|t| {
                t.split_whitespace()
                    .any(|w| w.eq_ignore_ascii_case("address"))
            }))
}

/// Whether string field `f` is a length of time: `kind: duration`, or a
/// title or description that asks how long, or names a duration.
fn is_duration(f: &FieldDef, ty: &FieldType) -> bool {
    let text = format!(
        "{} {}",
        f.title.as_deref().unwrap_or(""),
        f.description.as_deref().unwrap_or("")
    )
    .to_lowercase();
    *ty == FieldType::String
        && (f.hints.kind == Some(Kind::Duration)
            || ["how long", "duration", "length of time", "period of time"]
                .iter()
                .any(|p| text.contains(p)))
}

/// The codes a currency field may take: an enum's members when they are
/// all ISO 4217 codes, else every code for a string field with `kind:
/// currency` or a name whose last word is `currency`; `None` for any other
/// field.
fn currency_codes(f: &FieldDef, ty: &FieldType) -> Option<Vec<String>> {
    let named = hints::name_words(&f.name).last().map(String::as_str) == Some("currency");
    match ty {
        FieldType::Enum(members) if members.iter().all(|m| is_iso_code(m)) => Some(members.clone()),
        FieldType::String
            if f.hints.kind == Some(Kind::Currency) || (named && f.hints.pattern.is_none()) =>
        {
            Some(ISO_4217.iter().map(|c| c.to_string()).collect())
        }
        _ => None,
    }
}

/// Which end of a range a date field is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Start,
    End,
}

/// The range end a field's name words name, and those words without it
/// (`period_end`: `End`, `period`).
fn role_of(words: &[String]) -> Option<(Role, String)> {
    const START: &[&str] = &[
        "start",
        "from",
        "begin",
        "beginning",
        "commencement",
        "since",
    ];
    const END: &[&str] = &[
        "end",
        "to",
        "until",
        "through",
        "thru",
        "ending",
        "expiry",
        "expiration",
        "till",
    ];
    let rest = |w: &str| {
        words
            .iter()
            .filter(|x| x.as_str() != w && x.as_str() != "date")
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    };
    words.iter().find_map(|w| {
        if START.contains(&w.as_str()) {
            Some((Role::Start, rest(w)))
        } else if END.contains(&w.as_str()) {
            Some((Role::End, rest(w)))
        } else {
            None
        }
    })
}

/// The layout engine for one schema. Build once, use for every document.
pub struct LayoutEngine {
    /// In extraction order: `after` fields follow the field they name.
    plans: Vec<Plan>,
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
    /// A numeric date that reads either way (`04/05/2020`): its month-first
    /// reading; `value` holds the day-first one. Resolved per document.
    alt: Option<Value>,
    /// What the winner's confidence is multiplied by at the end, past the
    /// rivals (see [`LayoutEngine::choose`]): for a `position: top` string
    /// (a receipt's company, an invoice's issuer) its lines' mean OCR
    /// confidence to the power of its characters less one, so that the
    /// confidence is the chance of an exact copy (one wrong character, a
    /// lost space or a comma read as a full stop, makes the name wrong);
    /// 1.0 for every other value. Not in `score`, so it decides no pick.
    copy: f32,
}

impl LayoutEngine {
    /// Prepare the engine for `schema`'s top-level scalar fields (lists and
    /// objects are never found by this engine).
    pub fn new(schema: &FieldSchema) -> Self {
        let mut plans: Vec<Plan> = schema
            .fields()
            .iter()
            .filter(|f| match &f.ty {
                FieldType::List(item) => item.is_scalar(),
                ty => ty.is_scalar(),
            })
            .map(|f| {
                let ty = match &f.ty {
                    FieldType::List(item) => (**item).clone(),
                    ty => ty.clone(),
                };
                let role = (ty == FieldType::Date)
                    .then(|| role_of(&hints::name_words(&f.name)))
                    .flatten();
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
                    .collect::<Vec<_>>();
                // A range end is also found by the range's own label
                // (`Period: 04/20/20 - 04/26/20` for `period_end`).
                let mut labels = labels;
                if let Some((_, rest)) = role.as_ref().filter(|_| !f.hints.unlabelled()) {
                    if !rest.is_empty() && !labels.iter().any(|(l, _)| l == rest) {
                        labels.push((rest.clone(), 0.9));
                    }
                }
                let low = |v: &[String]| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
                let currency = currency_codes(f, &ty);
                let address = is_address(f, &ty);
                let duration = is_duration(f, &ty);
                let prose = ty == FieldType::String
                    && !f.hints.unlabelled()
                    && f.hints.pattern.is_none()
                    && currency.is_none()
                    && !address;
                let mut cues = if prose {
                    prose::cue_words(
                        &hints::name_words(&f.name),
                        f.title.as_deref(),
                        f.description.as_deref(),
                    )
                } else {
                    Vec::new()
                };
                if prose && duration {
                    for w in prose::DURATION_WORDS {
                        if !cues.iter().any(|c| c == w) {
                            cues.push(w.to_string());
                        }
                    }
                }
                Plan {
                    address,
                    duration,
                    cues,
                    ty,
                    role: role.map(|(r, _)| r),
                    others: Vec::new(),
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
                    currency,
                    def: f.clone(),
                }
            })
            .collect();
        let all: Vec<(String, Vec<String>)> = plans
            .iter()
            .map(|p| {
                let own = p.labels.iter().map(|(l, _)| l.clone()).collect();
                (p.def.name.clone(), own)
            })
            .collect();
        for p in &mut plans {
            p.others = all
                .iter()
                .filter(|(n, _)| *n != p.def.name)
                .flat_map(|(_, ls)| ls.iter().cloned())
                .filter(|l| !p.labels.iter().any(|(own, _)| own == l))
                .collect();
        }
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
        let money = Evidence::of(lines.iter().map(|l| l.text.as_str()));
        let order = date_order(&lines, &money);
        let mut record = Record::default();
        // Line (reading order) of each found field's value, for `after`.
        let mut found_at: BTreeMap<String, usize> = BTreeMap::new();
        // The spans taken so far: (page, box, score, field).
        let mut taken: Vec<(u32, BBox, f32, usize)> = Vec::new();
        let mut kept: Vec<Vec<Cand>> = Vec::with_capacity(self.plans.len());
        for (k, plan) in self.plans.iter().enumerate() {
            let cands = if let Some(after) = &plan.def.hints.after {
                match found_at.get(after) {
                    Some(&anchor) => after_candidates(plan, &lines, anchor),
                    None => Vec::new(),
                }
            } else if plan.def.hints.position == Some(Position::Top) {
                top_candidates(plan, &lines)
            } else {
                let prose = prose::prose_candidates(plan, &lines);
                // A list stated in running text is read there: a label's
                // value is one string however many members it holds.
                if matches!(plan.def.ty, FieldType::List(_)) && !prose.is_empty() {
                    prose
                } else {
                    let mut c = labelled_candidates(plan, &lines);
                    c.extend(unlabelled_candidates(plan, &lines));
                    c.extend(prose);
                    c
                }
            };
            let cands = resolve_dates(cands, order);
            let cands = match &plan.currency {
                Some(allowed) => resolve_currencies(cands, &money, allowed),
                None => cands,
            };
            if let Some(all) = all.as_deref_mut() {
                all.insert(
                    plan.def.name.clone(),
                    cands.iter().map(Cand::field_value).collect(),
                );
            }
            // A span another field took with a better claim is not this
            // field's (two date fields, one printed date).
            let free: Vec<Cand> = cands
                .iter()
                .filter(|c| {
                    !taken
                        .iter()
                        .any(|(p, b, sc, _)| *p == c.page && *b == c.bbox && *sc >= c.score)
                })
                .cloned()
                .collect();
            if let Some(best) = self.choose(plan, &lines, free) {
                found_at.insert(plan.def.name.clone(), best.order);
                // A field that held this span with a weaker claim gives it up.
                let lost: Vec<usize> = taken
                    .iter()
                    .filter(|(p, b, sc, _)| *p == best.page && *b == best.bbox && *sc < best.score)
                    .map(|t| t.3)
                    .collect();
                taken.push((best.page, best.bbox, best.score, k));
                for j in lost {
                    let other = &self.plans[j];
                    taken.retain(|t| t.3 != j);
                    let rest: Vec<Cand> = kept[j]
                        .iter()
                        .filter(|c| !(c.page == best.page && c.bbox == best.bbox))
                        .cloned()
                        .collect();
                    match self.choose(other, &lines, rest) {
                        Some(c) => {
                            taken.push((c.page, c.bbox, c.score, j));
                            record
                                .fields
                                .insert(other.def.name.clone(), c.field_value());
                        }
                        None => {
                            record.fields.remove(&other.def.name);
                        }
                    }
                }
                let value = if matches!(plan.def.ty, FieldType::List(_)) {
                    list_value(&cands, &best)
                } else {
                    best.field_value()
                };
                record.fields.insert(plan.def.name.clone(), value);
            }
            kept.push(cands);
        }
        record
    }

    /// The winning candidate of `plan` among `cands`, with its confidence
    /// (see [`pick::confidence`]).
    fn choose(&self, plan: &Plan, lines: &[text::L], cands: Vec<Cand>) -> Option<Cand> {
        let alternatives = if plan.def.hints.rounding.is_some() {
            cands.clone()
        } else {
            Vec::new()
        };
        let all = cands.clone();
        let best = pick(plan, cands)?;
        let best = apply_rounding(plan, lines, &alternatives, best);
        let mut best = pick::confidence(best, &all);
        best.score = (best.score * best.copy).clamp(0.0, 1.0);
        Some(best)
    }
}

/// A list field's value: every distinct value among the candidates of at
/// least half the winner's score, in reading order, a value that is
/// another with words before it (`CONFIDENTIAL Acme Inc.` beside `Acme,
/// Inc`) dropped; the winner's page and box.
///
/// Its confidence is the list's own, not the winner's among rivals (the
/// other members are not rivals): its weakest member's score × a factor of
/// its length. A list field asks for several, so a list of one is halved
/// (most often the others were missed); two, the fewest that make several,
/// keep the score; each member past two is one more chance of a wrong one
/// and multiplies it by [`LIST_MEMBER_RIGHT`].
fn list_value(cands: &[Cand], best: &Cand) -> FieldValue {
    let mut sorted: Vec<&Cand> = cands
        .iter()
        .filter(|c| c.score >= 0.5 * best.score)
        .collect();
    sorted.sort_by_key(|c| c.order);
    let mut members: Vec<(&Value, String, f32)> = Vec::new();
    for c in sorted {
        let key = member_key(&c.value);
        match members.iter_mut().find(|m| m.1 == key) {
            Some(m) => m.2 = m.2.max(c.score),
            None => members.push((&c.value, key, c.score)),
        }
    }
    let keys: Vec<String> = members.iter().map(|m| m.1.clone()).collect();
    members.retain(|m| !keys.iter().any(|k| m.1.ends_with(&format!(" {k}"))));
    let weakest = members
        .iter()
        .map(|m| m.2)
        .reduce(f32::min)
        .unwrap_or(best.score);
    let mut values: Vec<Value> = members.into_iter().map(|m| m.0.clone()).collect();
    if values.is_empty() {
        values.push(best.value.clone());
    }
    let length = match values.len() {
        1 => 0.5,
        n => LIST_MEMBER_RIGHT.powi(n as i32 - 2),
    };
    FieldValue {
        value: Value::Array(values),
        confidence: (weakest * length).clamp(0.0, 1.0),
        ..best.field_value()
    }
}

/// What each member of a list past two multiplies its confidence by (see
/// [`list_value`]): chosen among 0.6, 0.5 and 0.4 on the tune split of the
/// agreements, where lists of three or more names were never all right.
const LIST_MEMBER_RIGHT: f32 = 0.4;

/// A list member as compared for repeats: its lower-case words (see
/// [`text::words`]), one space between them.
fn member_key(v: &Value) -> String {
    match v {
        Value::String(s) => text::words(s),
        other => text::words(&other.to_string()),
    }
    .join(" ")
}

/// Numeric dates that read either way take the document's reading (see
/// [`date_order`]); with no evidence they are dropped rather than guessed.
fn resolve_dates(cands: Vec<Cand>, order: DateOrder) -> Vec<Cand> {
    cands
        .into_iter()
        .filter_map(|mut c| match (c.alt.take(), order) {
            (None, _) | (Some(_), DateOrder::DayFirst) => Some(c),
            (Some(alt), DateOrder::MonthFirst) => {
                c.value = alt;
                Some(c)
            }
            (Some(_), DateOrder::Unknown) => None,
        })
        .collect()
}

/// Currency candidates as codes: a symbol that may mean several allowed
/// codes (`$`) takes the one the document's evidence points to, or is
/// dropped when nothing decides.
fn resolve_currencies(cands: Vec<Cand>, money: &Evidence, allowed: &[String]) -> Vec<Cand> {
    cands
        .into_iter()
        .filter_map(|mut c| {
            let Value::String(s) = &c.value else {
                return Some(c);
            };
            if is_iso_code(s) {
                return Some(c);
            }
            let code = money.resolve(symbol_codes(s)?, Some(allowed))?;
            c.value = Value::String(code.to_string());
            Some(c)
        })
        .collect()
}

/// Whether `text` holds a GST registration number: the word `GST`, then
/// within three words a number of at least six digits (`GST ID:
/// 002116837376`, `GST Reg. No : 000416321536`).
fn gst_number(text: &str) -> bool {
    let w = text::words(text);
    w.iter().enumerate().any(|(i, x)| {
        x == "gst"
            && w[i + 1..].iter().take(3).any(|n| {
                n.chars().filter(char::is_ascii_digit).count() >= 6
                    && n.chars().all(|c| c.is_ascii_alphanumeric())
            })
    })
}

/// How the document writes numeric dates, from its own evidence: a date
/// whose first number is over 12 is day-first, one whose second is over 12
/// is month-first; failing that, the document's currency cues (see
/// [`Evidence`]: printed codes and symbols, the country named, phone code,
/// domain, tax id, postcode, and a GST number: see [`gst_number`]): more
/// cues for US dollars say month-first, more for currencies of countries
/// that write dates day first (or a GST number) say day-first
/// (Canada and the Philippines write both and count for neither); a tie:
/// unknown.
fn date_order(lines: &[text::L], money: &Evidence) -> DateOrder {
    let (mut day, mut month) = (0, 0);
    for l in lines {
        for d in find_date_readings(&l.text) {
            match d.evidence {
                Some(DateOrder::DayFirst) => day += 1,
                Some(DateOrder::MonthFirst) => month += 1,
                _ => {}
            }
        }
    }
    if day != month {
        return if day > month {
            DateOrder::DayFirst
        } else {
            DateOrder::MonthFirst
        };
    }
    let (us, rest) = money.split(&["USD"]);
    let (either, _) = money.split(&["CAD", "PHP"]);
    // A GST registration number: the countries that call their sales tax
    // so (Australia, New Zealand, Singapore, Malaysia, India) write dates
    // day first; with a Canadian cue on the page (Canada writes both) it
    // counts for neither.
    let gst = if either == 0 {
        lines.iter().filter(|l| gst_number(&l.text)).count() as u32
    } else {
        0
    };
    let day_first = rest - either + gst;
    match us.cmp(&day_first) {
        std::cmp::Ordering::Greater => DateOrder::MonthFirst,
        std::cmp::Ordering::Less => DateOrder::DayFirst,
        std::cmp::Ordering::Equal => DateOrder::Unknown,
    }
}
