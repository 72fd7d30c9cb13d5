//! String values written in running text, for fields whose label never
//! stands on the page: "This Agreement shall be governed by the laws of the
//! State of Oregon" for a field described as "the state whose law governs
//! the agreement".
//!
//! The field's own words (its name, title and description, stop words
//! dropped, crudely stemmed: `governs`, `governed` and `governing` are one
//! word) find the sentence that speaks of it: each sentence of the document
//! scores the words of the field it holds, each weighted by how rare it is
//! among the document's sentences (a word every sentence has, such as
//! `agreement` in a contract, counts for little). At least two of the
//! field's words must be in it. In that sentence the value is read by kind:
//!
//! - a **name** (the default): the run of capitalised words (with `of`,
//!   `and`, `the`, `&` inside) nearest after one of the field's words, the
//!   field's words and stop words at its start dropped (`State of New York`
//!   reads `New York` for a field that says "state"); a run that still holds
//!   one of the field's words, or ends in a colon (a heading), is none;
//! - a **duration** ([`Plan::duration`]): `two (2) years`, `24 months`,
//!   `a three-year period` read as `2 years`, `24 months`, `3 years`;
//! - for an array of strings, the **parties**: the names in the first
//!   sentence that holds one of the field's words, a name being capitalised
//!   words that end in a legal form (`Kite Pharma, Inc.`) or that a defined
//!   term follows (`Jane Q. Roe ("Employee")`), and that reads as a name
//!   rather than a place, a heading, a description or a clause (see
//!   `plausible`). A list found here is the field's whole answer: a label's
//!   value is one string however many members it holds.
//!
//! Confidence: the line's `ocr` × 0.6 × (0.5 + 0.5 × the share of the
//! field's word weight the sentence holds): a value read from prose is
//! never as sure as one after a label, and most go to review. The share
//! finds the sentence but ranked right answers above wrong ones no better
//! than chance on the tune split of the agreements, so it moves the
//! confidence by half at most. A duration is also weighed by how plainly
//! its sentence says how long the field's subject lasts (see [`lasting`]).
//! A party's name leaves the share out; the list's length sets how sure it
//! is (see `list_value`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::text::{word_spans, L, OPEN_QUOTES};
use super::{Cand, Plan};
use crate::extract::field::FieldType;
use crate::extract::parse::address::is_country;
use crate::types::BBox;

/// Words that say nothing of a field in its description.
const STOP: &[&str] = &[
    "a", "about", "all", "an", "and", "any", "are", "as", "at", "be", "by", "can", "do", "does",
    "each", "for", "from", "has", "have", "he", "her", "his", "how", "if", "in", "into", "is",
    "it", "its", "long", "many", "may", "much", "must", "no", "not", "of", "on", "one", "or",
    "other", "our", "per", "shall", "she", "so", "such", "than", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "those", "to", "under", "upon", "was", "we", "were",
    "what", "when", "where", "which", "who", "whom", "whose", "will", "with", "you", "your",
];

/// Lower-case words that may join the capitalised words of a name.
const CONNECTORS: &[&str] = &[
    "of", "and", "the", "&", "de", "du", "des", "la", "von", "van", "der",
];

/// Most tokens between a field's word and the value it introduces.
const REACH: usize = 12;

/// A word of the document: its text, line and byte span in the line.
struct Tok<'a> {
    text: &'a str,
    line: &'a L,
    start: usize,
    end: usize,
    /// Lower-case, outer punctuation trimmed, stemmed.
    stem: String,
}

/// `word` lower-cased with a plural or verb ending cut (`parties` →
/// `party`, `governed` → `govern`, `laws` → `law`).
pub(super) fn stem(word: &str) -> String {
    let w = word.to_lowercase();
    let n = w.chars().count();
    let cut = |k: usize| w.chars().take(n - k).collect::<String>();
    if n > 4 && w.ends_with("ies") {
        return format!("{}y", cut(3));
    }
    if n > 5 && w.ends_with("ing") {
        return cut(3);
    }
    if n > 4 && w.ends_with("ed") {
        return cut(2);
    }
    if n > 4
        && (w.ends_with("ches") || w.ends_with("shes") || w.ends_with("xes") || w.ends_with("sses"))
    {
        return cut(2);
    }
    if n > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") {
        return cut(1);
    }
    w
}

/// Whether token `t` is a stop word (see [`STOP`]), whatever its case.
fn is_stop(t: &str) -> bool {
    STOP.contains(&core(t).to_lowercase().as_str())
}

/// A token's core: the word without outer punctuation.
fn core(t: &str) -> &str {
    t.trim_matches(|c: char| !c.is_alphanumeric())
}

/// The field's words: name, title and description, stop words dropped,
/// stemmed, without repeats.
pub(super) fn cue_words(
    name: &[String],
    title: Option<&str>,
    description: Option<&str>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let text = [title.unwrap_or(""), description.unwrap_or("")].join(" ");
    for w in name
        .iter()
        .map(String::as_str)
        .chain(text.split(|c: char| !c.is_alphanumeric()))
    {
        let lw = w.to_lowercase();
        if lw.chars().count() < 3
            || STOP.contains(&lw.as_str())
            || lw.chars().all(|c| c.is_ascii_digit())
        {
            continue;
        }
        let s = stem(&lw);
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// The document's words, page by page in reading order, cut into
/// sentences (at `.`, `;`, `!`, `?` after a word that is no short form,
/// and at a page's end).
fn sentences(lines: &[L]) -> Vec<Vec<Tok<'_>>> {
    let mut out: Vec<Vec<Tok>> = Vec::new();
    let mut cur: Vec<Tok> = Vec::new();
    let mut page = lines.first().map(|l| l.page);
    for l in lines {
        if Some(l.page) != page {
            out.push(std::mem::take(&mut cur));
            page = Some(l.page);
        }
        for (s, end) in word_spans(&l.text) {
            let text = &l.text[s..end];
            cur.push(Tok {
                text,
                line: l,
                start: s,
                end,
                stem: stem(core(text)),
            });
            if ends_sentence(text) {
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out.push(cur);
    out.retain(|s| !s.is_empty());
    out
}

/// A token that ends a sentence: it ends with `.`, `;`, `!` or `?` (closing
/// quotes and brackets aside) and is not a short form (`Inc.`, `No.`,
/// `U.S.`, `J.`).
fn ends_sentence(tok: &str) -> bool {
    let t = tok.trim_end_matches(['"', '\'', ')', '\u{201d}', '\u{2019}']);
    if t.ends_with([';', '!', '?']) {
        return true;
    }
    let Some(body) = t.strip_suffix('.') else {
        return false;
    };
    let body = body.trim_start_matches(|c: char| !c.is_alphanumeric());
    let letters = body.chars().filter(|c| c.is_alphabetic()).count();
    // A legal form's abbreviation (`CORP.`, `GmbH.`), not a spelled-out
    // one that may end a sentence (`... to the Company.`).
    let form = legal_form(body) && !SPELLED_FORMS.contains(&body.to_lowercase().as_str());
    let short = body.contains('.')
        || (letters <= 3 && body.chars().next().is_some_and(char::is_uppercase))
        || body.chars().all(|c| c.is_ascii_digit())
        || form;
    !short
}

/// The legal forms of [`LEGAL_FORMS`] that are whole words.
const SPELLED_FORMS: &[&str] = &["company", "corporation", "incorporated", "limited"];

/// Capitalised: starts with an upper-case letter (or is all digits inside a
/// name such as `Route 66`: not allowed to start one).
fn capital(t: &str) -> bool {
    core(t).chars().next().is_some_and(char::is_uppercase)
}

/// Values of `plan` read from running text (see the module documentation).
pub(super) fn prose_candidates(plan: &Plan, lines: &[L]) -> Vec<Cand> {
    if plan.cues.len() < 2 {
        return Vec::new();
    }
    let sents = sentences(lines);
    // The field's words each sentence holds, and how many sentences hold
    // each of them.
    let held: Vec<BTreeSet<&str>> = sents
        .iter()
        .map(|s| {
            s.iter()
                .map(|t| t.stem.as_str())
                .filter(|w| plan.cues.iter().any(|c| c == w))
                .collect()
        })
        .collect();
    let mut df: BTreeMap<&str, usize> = BTreeMap::new();
    for w in held.iter().flatten() {
        *df.entry(w).or_default() += 1;
    }
    let n = sents.len() as f32;
    let weight = |c: &str| (n / (1.0 + *df.get(c).unwrap_or(&0) as f32)).ln().max(0.05);
    let total: f32 = plan.cues.iter().map(|c| weight(c)).sum();
    // The share of the field's word weight in a sentence.
    let share = |have: &BTreeSet<&str>| have.iter().map(|c| weight(c)).sum::<f32>() / total;
    if matches!(plan.def.ty, FieldType::List(_)) {
        return parties(plan, &sents, &held);
    }
    // A duration is found by its own shape: one word of the field places
    // it; a name needs two. Only sentences that can hold a value of the
    // field's kind compete.
    let least = if plan.duration { 1 } else { 2 };
    let mut scored: Vec<(f32, &Vec<Tok>)> = sents
        .iter()
        .zip(&held)
        .filter(|(_, have)| have.len() >= least)
        .map(|(s, have)| (share(have), s))
        .collect();
    if plan.duration {
        scored.retain(|(_, s)| {
            let words: Vec<&str> = s.iter().map(|t| t.text).collect();
            !durations(&words).is_empty()
        });
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = Vec::new();
    for (share, s) in scored.into_iter().take(5) {
        let found = if plan.duration {
            duration_in(plan, s)
        } else {
            name_in(plan, s).map(|(value, toks)| (value, toks, 1.0))
        };
        let weight = 0.5 + 0.5 * share;
        out.extend(found.map(|(value, toks, said)| prose_cand(value, &toks, weight * said)));
    }
    out
}

/// The candidate for `value`, read from tokens `toks` of a sentence, with
/// `share` the weight of what the sentence says of it (see the module
/// documentation): the least OCR confidence of its lines × 0.6 × `share`;
/// the box of its words on the first one's page.
fn prose_cand(value: String, toks: &[&Tok], share: f32) -> Cand {
    let first = toks[0];
    let conf = toks.iter().map(|t| t.line.conf).fold(1.0f32, f32::min);
    let bbox = toks
        .iter()
        .filter(|t| t.line.page == first.line.page)
        .map(|t| t.line.span_box(t.start, t.end))
        .reduce(|a: BBox, b| a.union(&b))
        .unwrap_or(first.line.bbox);
    Cand {
        value: Value::String(value),
        score: conf * 0.6 * share.min(1.0),
        page: first.line.page,
        bbox,
        order: first.line.order,
        num: None,
        sure: true,
        alt: None,
        copy: 1.0,
    }
}

/// Legal forms that end a company's name (lower case, dots dropped).
const LEGAL_FORMS: &[&str] = &[
    "ab",
    "ag",
    "asa",
    "bhd",
    "bv",
    "co",
    "company",
    "corp",
    "corporation",
    "gmbh",
    "inc",
    "incorporated",
    "kk",
    "limited",
    "llc",
    "llp",
    "lp",
    "ltd",
    "nv",
    "oy",
    "plc",
    "pte",
    "pty",
    "sa",
    "sarl",
    "sas",
    "spa",
    "srl",
];

pub(super) fn legal_form(t: &str) -> bool {
    let w: String = core(t)
        .chars()
        .filter(|c| *c != '.')
        .collect::<String>()
        .to_lowercase();
    LEGAL_FORMS.contains(&w.as_str())
}

/// What opens a defined term or an aside after a name.
const OPENERS: &[char] = &['(', '"', '\u{201c}', '\''];

/// Token `t` (and the one after it, `next`) opens a defined term: `("Kite")`,
/// `(the`, `(hereinafter`.
fn defines(t: &str, next: Option<&Tok>) -> bool {
    let Some(rest) = t.strip_prefix('(') else {
        return false;
    };
    let quoted = rest.starts_with(OPEN_QUOTES);
    let word = core(rest).to_lowercase();
    let lead = ["the", "hereinafter", "each", "collectively", "together"].contains(&word.as_str())
        && (rest.len() > word.len() || next.is_some());
    quoted || lead
}

/// Party names in sentence `s`: runs of capitalised words (connectors
/// inside) that end in a legal form, a comma before the form allowed
/// (`Kite Pharma, Inc.`), or that a defined term follows.
fn party_names<'a, 'b>(
    plan: &Plan,
    s: &'b [Tok<'a>],
    defined: &BTreeMap<String, usize>,
) -> Vec<(String, Vec<&'b Tok<'a>>)> {
    let mut out: Vec<(String, Vec<&Tok>)> = Vec::new();
    // Each name once, whatever its case; not the document's defined terms
    // standing for the parties (`Kite and Company`, `Employee`): a name
    // whose every word, a legal form too, the document defines elsewhere
    // than right after it.
    let mut add = |name: String, toks: Vec<&'b Tok<'a>>, b: usize| {
        let after = defined_at(s, b + 1);
        let reference = toks
            .iter()
            .map(|t| core(t.text).to_lowercase())
            .filter(|w| !w.is_empty() && !CONNECTORS.contains(&w.as_str()))
            .all(|w| defined.get(&w).copied().unwrap_or(0) > usize::from(after.contains(&w)));
        if reference {
            return;
        }
        if !out
            .iter()
            .any(|(n, _)| n.to_lowercase() == name.to_lowercase())
        {
            out.push((name, toks));
        }
    };
    let mut i = 0;
    while i < s.len() {
        if !capital(s[i].text) || s[i].text.starts_with(OPENERS) {
            i += 1;
            continue;
        }
        let a = i;
        let mut b = i;
        let mut named = None;
        loop {
            if legal_form(s[b].text) && b > a {
                named = Some(b);
            }
            let t = s[b].text;
            let next = s.get(b + 1);
            let comma_form = t.ends_with(',') && next.is_some_and(|n| legal_form(n.text));
            let ends = t.ends_with([';', ':', ')', '"', '\u{201d}'])
                || (t.ends_with([',', '.']) && !comma_form && !legal_form(t) && !is_initial(t));
            if ends || named == Some(b) && !next.is_some_and(|n| legal_form(n.text)) {
                break;
            }
            let join = next.is_some_and(|n| {
                !n.text.starts_with(OPENERS)
                    && (capital(n.text)
                        || (CONNECTORS.contains(&n.text)
                            && s.get(b + 2).is_some_and(|m| capital(m.text))))
            });
            if !join {
                break;
            }
            b += 1;
        }
        // A name without a legal form counts when a defined term follows
        // it: `Mark G. Parker ("Employee")`, `Affinity Gaming (the
        // "Company")`; the field's own words and stop words at its start
        // are dropped (`This Agreement ("Agreement")` names no one).
        if named.is_none() && s.get(b + 1).is_some_and(|n| defines(n.text, s.get(b + 2))) {
            let mut a2 = a;
            while a2 <= b && (is_cue(plan, &s[a2]) || is_stop(s[a2].text)) {
                a2 += 1;
            }
            let bare = a2 <= b
                && !s[a2..=b].iter().any(|t| is_cue(plan, t))
                && !s[b].text.ends_with([',', ';', ':', '.']);
            // Not a sentence's first word alone, nor a place a phrase
            // names (`the laws of Norway ("Governing Law")`).
            let before = |k: usize| {
                a2.checked_sub(k)
                    .map(|j| core(s[j].text).to_lowercase())
                    .unwrap_or_default()
            };
            let of = |w: String| ["of", "in", "under"].contains(&w.as_str());
            let placed = of(before(1)) || (before(1) == "the" && of(before(2)));
            // An aside the run closed (`Officer)`) is not a name.
            let closed = s[b].text.ends_with([')', '"', '\u{201d}']);
            let lone_first = a2 == 0 && b == 0;
            let clear = !(lone_first || placed || closed);
            if bare && clear && plausible(plan, s, a2, b) {
                let toks: Vec<&Tok> = s[a2..=b].iter().collect();
                let name = toks.iter().map(|t| t.text).collect::<Vec<_>>().join(" ");
                add(name, toks, b);
                i = b + 1;
                continue;
            }
        }
        // A person's name without a defined term: given name, initial,
        // surname (`Patrick J. Mahaffy`).
        let len = b + 1 - a;
        let person = named.is_none()
            && (3..=4).contains(&len)
            && !is_initial(s[a].text)
            && s[a + 1..b].iter().any(|t| is_initial(t.text))
            && core(s[b].text).chars().count() > 1
            && !s[a..=b]
                .iter()
                .any(|t| !is_initial(t.text) && is_stop(t.text))
            && plausible(plan, s, a, b);
        if person {
            add(name_text(&s[a..=b], true), s[a..=b].iter().collect(), b);
            i = b + 1;
            continue;
        }
        if let Some(end) = named.filter(|&end| plausible(plan, s, a, end)) {
            add(
                name_text(&s[a..=end], false),
                s[a..=end].iter().collect(),
                end,
            );
        }
        i = b + 1;
    }
    out
}

/// A name's text from its tokens: the punctuation after its last word cut
/// (`,` `;` `:`, and `.` when `stop` says the full stop is not part of the
/// name, as after a person's surname but not after `Inc.`), and a closing
/// bracket the name did not open (`Screens, Inc.)`).
fn name_text(toks: &[Tok], stop: bool) -> String {
    let mut words: Vec<&str> = toks.iter().map(|t| t.text).collect();
    if let Some(last) = words.last_mut() {
        let cut: &[char] = if stop {
            &[',', ';', ':', '.']
        } else {
            &[',', ';', ':']
        };
        *last = last.trim_end_matches(cut);
        if last.ends_with(')') && !last.contains('(') {
            *last = last.trim_end_matches(')');
        }
    }
    words.join(" ")
}

/// Whether words `s[a..=b]` read as a party's name rather than a place
/// (`State of Florida`, a country), a description (`a Delaware
/// corporation`), a heading (`I. EMPLOYMENT`), a clause run on (`Party-2
/// is employed`), the field's own words (`Board of Directors` for the
/// parties who sign) or a legal form alone (`Company`).
fn plausible(plan: &Plan, s: &[Tok], a: usize, b: usize) -> bool {
    const MOST_WORDS: usize = 8;
    const PLACES: &[&str] = &[
        "state of ",
        "commonwealth of ",
        "province of ",
        "republic of ",
        "country of ",
    ];
    let toks = &s[a..=b];
    let name = toks
        .iter()
        .map(|t| core(t.text))
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let first = toks[0].text;
    let roman = first.len() > 1
        && first.ends_with('.')
        && first[..first.len() - 1].chars().all(|c| "IVX".contains(c));
    let starts_like_a_name = core(first).chars().next().is_some_and(char::is_alphabetic) && !roman;
    // A lower-case word inside that joins no name: a clause run on.
    let runs_on = toks[1..].iter().any(|t| {
        let c = core(t.text);
        c.chars().next().is_some_and(char::is_lowercase)
            && !CONNECTORS.contains(&c)
            && !legal_form(t.text)
    });
    // An aside or quotation closed inside.
    let closes = toks[..toks.len() - 1]
        .iter()
        .any(|t| t.text.contains([')', '"', '\u{201d}']));
    let described = a > 0 && ["a", "an"].contains(&core(s[a - 1].text).to_lowercase().as_str());
    let cued = toks.iter().any(|t| is_cue(plan, t));
    let only_forms = toks.iter().all(|t| legal_form(t.text) || is_stop(t.text));
    let place = is_country(&name) || PLACES.iter().any(|p| name.starts_with(p));
    let rejected = runs_on || closes || described || cued || only_forms || place;
    toks.len() <= MOST_WORDS && starts_like_a_name && !rejected
}

/// The words (lower case) of the defined term that token `i` of `s` opens
/// (`("Kite")`, `(the "Company")`, `(“Second Party”)`), or none (also
/// past the sentence's end).
fn defined_at(s: &[Tok], i: usize) -> Vec<String> {
    const MOST_WORDS: usize = 6;
    if !s.get(i).is_some_and(|t| defines(t.text, s.get(i + 1))) {
        return Vec::new();
    }
    // The quote opens in this token or the next (`(the "Company")`).
    let Some(open) = (i..(i + 2).min(s.len()))
        .find(|&k| s[k].text.trim_start_matches('(').starts_with(OPEN_QUOTES))
    else {
        return Vec::new();
    };
    let mut words = Vec::new();
    for t in s.iter().skip(open).take(MOST_WORDS) {
        let w = core(t.text).to_lowercase();
        if !w.is_empty() {
            words.push(w);
        }
        let body = t
            .text
            .trim_start_matches(|c| c == '(' || OPEN_QUOTES.contains(&c));
        if body.contains(['"', '\u{201d}', '\u{2019}', ')']) {
            break;
        }
    }
    words
}

/// How many times the document defines each word of a defined term (see
/// [`defined_at`]).
fn defined_words(sents: &[Vec<Tok>]) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = BTreeMap::new();
    for s in sents {
        for i in 0..s.len() {
            for w in defined_at(s, i) {
                *out.entry(w).or_default() += 1;
            }
        }
    }
    out
}

/// A person's initial (`A.`, `J.`).
fn is_initial(t: &str) -> bool {
    let c: Vec<char> = t.chars().collect();
    c.len() == 2 && c[0].is_uppercase() && c[1] == '.'
}

/// A list of names (the parties to an agreement): the names in the first
/// sentence, among the document's first [`PARTY_SENTENCES`], that holds
/// one of the field's words (`held[i]`: those sentence `i` holds) and a
/// name. Each name's score is its lines' OCR confidence × 0.6, without the
/// sentence's share of the field's word weight: on the tune split that
/// share ranked right lists below wrong ones as often as above; how sure
/// the list is comes from its length (see `list_value`).
fn parties(plan: &Plan, sents: &[Vec<Tok>], held: &[BTreeSet<&str>]) -> Vec<Cand> {
    const PARTY_SENTENCES: usize = 40;
    let defined = defined_words(sents);
    for (s, have) in sents.iter().zip(held).take(PARTY_SENTENCES) {
        if have.is_empty() {
            continue;
        }
        let names = party_names(plan, s, &defined);
        if names.is_empty() {
            continue;
        }
        return names
            .into_iter()
            .map(|(name, toks)| prose_cand(name, &toks, 1.0))
            .collect();
    }
    Vec::new()
}

/// Whether token `t` is one of the field's words.
fn is_cue(plan: &Plan, t: &Tok) -> bool {
    plan.cues.contains(&t.stem)
}

/// The name nearest after one of the field's words in sentence `s`.
fn name_in<'a, 'b>(plan: &Plan, s: &'b [Tok<'a>]) -> Option<(String, Vec<&'b Tok<'a>>)> {
    // Runs of capitalised words, connectors inside; a run ends after a
    // word with a comma, semicolon, colon, full stop or bracket after it.
    let mut runs: Vec<(usize, usize, bool)> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if !capital(s[i].text)
            || s[i].text.starts_with(['(', '"', '\u{201c}']) && core(s[i].text).is_empty()
        {
            i += 1;
            continue;
        }
        let a = i;
        let mut b = i;
        let mut heading = false;
        loop {
            let t = s[b].text;
            if t.ends_with([',', ';', ':', '.', ')', '"', '\u{201d}']) {
                heading = t.ends_with(':');
                break;
            }
            let next = b + 1;
            let join = s.get(next).is_some_and(|n| {
                capital(n.text)
                    || (CONNECTORS.contains(&n.text)
                        && s.get(next + 1).is_some_and(|m| capital(m.text)))
            });
            if !join {
                break;
            }
            b = next;
        }
        runs.push((a, b, heading));
        i = b + 1;
    }
    let mut best: Option<(usize, String, Vec<&Tok>)> = None;
    for (a, b, heading) in runs {
        // A heading, or a sentence's first word (capitalised because it
        // starts the sentence), names nothing.
        if heading || (a == 0 && b == 0) {
            continue;
        }
        // Drop the field's words, stop words and connectors at the start.
        let mut a = a;
        while a <= b
            && (is_cue(plan, &s[a])
                || is_stop(s[a].text)
                || CONNECTORS.contains(&core(s[a].text).to_lowercase().as_str()))
        {
            a += 1;
        }
        if a > b || s[a..=b].iter().any(|t| is_cue(plan, t)) {
            continue;
        }
        // Only the last REACH words can introduce it: a bounded look back,
        // so that a hostile page of one endless sentence stays linear.
        let Some(cue) = (a.saturating_sub(REACH)..a)
            .rev()
            .find(|&k| is_cue(plan, &s[k]))
        else {
            continue;
        };
        let dist = a - cue;
        if dist > REACH || best.as_ref().is_some_and(|(d, _, _)| *d <= dist) {
            continue;
        }
        let toks: Vec<&Tok> = s[a..=b].iter().collect();
        let mut words: Vec<&str> = toks.iter().map(|t| t.text).collect();
        if let Some(last) = words.last_mut() {
            *last = last.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '.');
            *last = last.trim_end_matches('.');
        }
        let value = words.join(" ");
        if value.chars().filter(|c| c.is_alphabetic()).count() >= 2 {
            best = Some((dist, value, toks));
        }
    }
    best.map(|(_, v, t)| (v, t))
}

/// Number words up to ninety.
fn number_word(w: &str) -> Option<u32> {
    const UNITS: &[&str] = &[
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: &[&str] = &[
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let w = w.to_lowercase();
    if let Some(i) = UNITS.iter().position(|u| *u == w) {
        return Some(i as u32);
    }
    if let Some(i) = TENS.iter().position(|u| *u == w) {
        return Some(20 + 10 * i as u32);
    }
    let (t, u) = w.split_once('-')?;
    let t = TENS.iter().position(|x| *x == t)?;
    let u = UNITS
        .iter()
        .position(|x| *x == u)
        .filter(|&u| (1..10).contains(&u))?;
    Some(20 + 10 * t as u32 + u as u32)
}

/// A count: digits or a number word.
fn count_of(w: &str) -> Option<u32> {
    let c = core(w);
    if !c.is_empty() && c.len() <= 3 && c.chars().all(|ch| ch.is_ascii_digit()) {
        return c.parse().ok();
    }
    number_word(c)
}

/// A unit of time, singular (`years` → `year`).
fn unit_of(w: &str) -> Option<&'static str> {
    let w = w.to_lowercase().replace("(s)", "s");
    let c = core(&w);
    ["day", "week", "month", "year"]
        .into_iter()
        .find(|u| c == *u || c == format!("{u}s"))
}

/// Durations among `words`: (first word, last word, `N units`).
fn durations(words: &[&str]) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let text = |n: u32, u: &str| format!("{n} {u}{}", if n == 1 { "" } else { "s" });
    for i in 0..words.len() {
        // `three-year`, `12-month`.
        if let Some((n, u)) = core(words[i]).rsplit_once('-') {
            if let (Some(n), Some(u)) = (count_of(n), unit_of(u)) {
                out.push((i, i, text(n, u)));
                continue;
            }
        }
        let Some(n) = count_of(words[i]) else {
            continue;
        };
        // `two (2) years`: the figure in brackets decides.
        let (n, k) = match words.get(i + 1) {
            Some(t) if t.starts_with('(') && t.ends_with(')') => (count_of(t).unwrap_or(n), i + 2),
            _ => (n, i + 1),
        };
        if let Some(u) = words.get(k).and_then(|t| unit_of(t)) {
            if n > 0 {
                out.push((i, k, text(n, u)));
            }
        }
    }
    out
}

/// The first duration in `text`, with its byte span.
pub(super) fn find_duration(text: &str) -> Option<(String, usize, usize)> {
    let spans: Vec<(usize, usize)> = word_spans(text);
    let words: Vec<&str> = spans.iter().map(|&(a, b)| &text[a..b]).collect();
    let (i, k, v) = durations(&words).into_iter().next()?;
    Some((v, spans[i].0, spans[k].1))
}

/// The duration nearest after one of the field's words in sentence `s`
/// (or the first one, when none follows a word of the field), and how
/// plainly the sentence says it is how long the field's subject lasts (see
/// [`lasting`]).
fn duration_in<'a, 'b>(plan: &Plan, s: &'b [Tok<'a>]) -> Option<(String, Vec<&'b Tok<'a>>, f32)> {
    let words: Vec<&str> = s.iter().map(|t| t.text).collect();
    let after_cue = |i: usize| {
        (i.saturating_sub(4 * REACH)..i)
            .rev()
            .find(|&k| is_cue(plan, &s[k]))
            .map(|k| i - k)
    };
    let (i, k, v) = durations(&words)
        .into_iter()
        .min_by_key(|(i, _, _)| after_cue(*i).unwrap_or(usize::MAX / 2 + i))?;
    Some((v, s[i..=k].iter().collect(), lasting(plan, s, i)))
}

/// Verbs (stemmed, see [`stem`]) that say how long something lasts or
/// when it ends: `shall terminate two years after`, `expires`, `remain in
/// effect for`, `continue for`, `end`.
const LASTING: &[&str] = &[
    "terminate",
    "terminat",
    "expire",
    "expir",
    "remain",
    "continue",
    "continu",
    "last",
    "effect",
    "effective",
    "end",
];

/// How plainly sentence `s` says that the duration starting at token `i`
/// is how long the field's subject lasts: 1/3 by default; 2/3 when a verb
/// of lasting or ending (see [`LASTING`]) comes at most 8 words before it
/// (`shall terminate two (2) years`, not `for a period of two years,
/// neither party shall solicit`); 1 when, besides, the field's own subject
/// (a word of its own that is no word of time: `agreement` for "how long
/// the agreement lasts") comes at most 12 words before that verb (`this
/// Agreement shall expire`, not `the Company shall continue his salary`).
fn lasting(plan: &Plan, s: &[Tok], i: usize) -> f32 {
    let verb = (i.saturating_sub(8)..i)
        .rev()
        .find(|&k| LASTING.contains(&s[k].stem.as_str()));
    let Some(v) = verb else {
        return 1.0 / 3.0;
    };
    let subject = (v.saturating_sub(12)..v)
        .any(|k| is_cue(plan, &s[k]) && !DURATION_WORDS.contains(&s[k].stem.as_str()));
    if subject {
        1.0
    } else {
        2.0 / 3.0
    }
}

/// Words that speak of a length of time, added to a duration field's own.
pub(super) const DURATION_WORDS: &[&str] = &[
    "period",
    "term",
    "duration",
    "expire",
    "expiration",
    "terminate",
    "continue",
    "remain",
    "last",
    "until",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_fold_plurals_and_verb_endings() {
        for (w, want) in [
            ("governs", "govern"),
            ("governed", "govern"),
            ("Governing", "govern"),
            ("laws", "law"),
            ("parties", "party"),
            ("lasts", "last"),
            ("status", "status"),
            ("address", "address"),
        ] {
            assert_eq!(stem(w), want, "{w}");
        }
    }

    #[test]
    fn cue_words_drop_stop_words() {
        let c = cue_words(
            &["jurisdiction".into()],
            Some("Jurisdiction"),
            Some("The state or country whose law governs the agreement."),
        );
        assert_eq!(
            c,
            [
                "jurisdiction",
                "state",
                "country",
                "law",
                "govern",
                "agreement"
            ]
        );
    }

    #[test]
    fn short_forms_do_not_end_a_sentence() {
        assert!(ends_sentence("Delaware."));
        assert!(ends_sentence("hereto;"));
        assert!(!ends_sentence("Inc."));
        assert!(!ends_sentence("U.S."));
        assert!(!ends_sentence("CORP."));
        assert!(ends_sentence("Company."));
        assert!(!ends_sentence("No."));
        assert!(!ends_sentence("1."));
    }

    #[test]
    fn counts_and_units() {
        assert_eq!(count_of("two"), Some(2));
        assert_eq!(count_of("(24)"), Some(24));
        assert_eq!(count_of("thirty-six"), Some(36));
        assert_eq!(unit_of("years,"), Some("year"));
        assert_eq!(unit_of("month(s)"), Some("month"));
        assert_eq!(unit_of("yearly"), None);
    }
}
