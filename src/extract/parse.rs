//! Typed values read from free text: dates, amounts, currencies, integers;
//! and the strict conversions of typed JSON values to column values.
//!
//! The finders (`find_dates`, `find_amounts`, ...) scan a line of text and
//! return every match with its byte span, so that the layout engine can prefer
//! the one nearest a label. They never panic and accept any UTF-8.

pub mod address;
pub mod currency;

use serde_json::Value;

/// A value found in a text, with the byte range `start..end` it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Found<T> {
    pub value: T,
    pub start: usize,
    pub end: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A run of ASCII digits.
    Num,
    /// A run of letters (any script), lower-cased in `text`.
    Word,
    /// One other non-space character.
    Sym,
}

#[derive(Clone, Debug)]
struct Tok {
    kind: Kind,
    text: String,
    start: usize,
    end: usize,
    /// Whitespace directly before the token.
    space_before: bool,
}

fn tokenize(s: &str) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::new();
    let mut space = false;
    for (i, c) in s.char_indices() {
        let end = i + c.len_utf8();
        if c.is_whitespace() {
            space = true;
            continue;
        }
        let kind = if c.is_ascii_digit() {
            Kind::Num
        } else if c.is_alphabetic() {
            Kind::Word
        } else {
            Kind::Sym
        };
        if let Some(last) = out.last_mut() {
            if !space && last.kind == kind && kind != Kind::Sym {
                last.text.extend(c.to_lowercase());
                last.end = end;
                continue;
            }
        }
        out.push(Tok {
            kind,
            text: c.to_lowercase().collect(),
            start: i,
            end,
            space_before: space,
        });
        space = false;
    }
    out
}

// ---------------------------------------------------------------------------
// Dates

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`). `None` for an invalid month or day.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i32> {
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    i32::try_from(era * 146_097 + doe - 719_468).ok()
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Days since the epoch of a strict `YYYY-MM-DD` string.
pub fn iso_date_days(s: &str) -> Option<i32> {
    let mut it = s.split('-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    days_from_civil(i64::from(digits(y, 4)?), digits(m, 2)?, digits(d, 2)?)
}

/// Microseconds since the epoch of an RFC 3339 date-time
/// (`YYYY-MM-DDTHH:MM:SS[.f+](Z|±HH:MM)`; `t` and a space accepted for `T`).
pub fn rfc3339_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() < 20 || !s.is_char_boundary(10) {
        return None;
    }
    let (date, rest) = s.split_at(10);
    let days = i64::from(iso_date_days(date)?);
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (time, offset_s) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0i64)
    } else {
        let pos = rest.rfind(['+', '-'])?;
        let (t, off) = rest.split_at(pos);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off.get(1..)?.split_once(':')?;
        let (oh, om) = (digits(oh, 2)?, digits(om, 2)?);
        if oh > 23 || om > 59 {
            return None;
        }
        (t, sign * i64::from(oh * 3600 + om * 60))
    };
    let (hms, frac) = match time.split_once('.') {
        Some((a, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (a, f),
        Some(_) => return None,
        None => (time, ""),
    };
    let mut it = hms.split(':');
    let (h, m, sec) = (
        digits(it.next()?, 2)?,
        digits(it.next()?, 2)?,
        digits(it.next()?, 2)?,
    );
    if it.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut micros = 0i64;
    for (i, b) in frac.bytes().take(6).enumerate() {
        micros += i64::from(b - b'0') * 10i64.pow(5 - i as u32);
    }
    let secs = days * 86_400 + i64::from(h * 3600 + m * 60 + sec) - offset_s;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// Month number of an English, Dutch, German, French, Spanish, Italian or
/// Malay month name or its common abbreviation (lower-case input).
pub fn month_number(w: &str) -> Option<u32> {
    const MONTHS: &[(&str, u32)] = &[
        ("january", 1),
        ("jan", 1),
        ("januari", 1),
        ("januar", 1),
        ("janvier", 1),
        ("janv", 1),
        ("enero", 1),
        ("gennaio", 1),
        ("february", 2),
        ("feb", 2),
        ("februari", 2),
        ("februar", 2),
        ("février", 2),
        ("fevrier", 2),
        ("févr", 2),
        ("feb", 2),
        ("febrero", 2),
        ("febbraio", 2),
        ("feb", 2),
        ("march", 3),
        ("mar", 3),
        ("maart", 3),
        ("märz", 3),
        ("mars", 3),
        ("marzo", 3),
        ("mac", 3),
        ("mrt", 3),
        ("april", 4),
        ("apr", 4),
        ("avril", 4),
        ("abril", 4),
        ("aprile", 4),
        ("avr", 4),
        ("may", 5),
        ("mei", 5),
        ("mai", 5),
        ("mayo", 5),
        ("maggio", 5),
        ("june", 6),
        ("jun", 6),
        ("juni", 6),
        ("juin", 6),
        ("junio", 6),
        ("giugno", 6),
        ("july", 7),
        ("jul", 7),
        ("juli", 7),
        ("juillet", 7),
        ("juil", 7),
        ("julio", 7),
        ("luglio", 7),
        ("julai", 7),
        ("august", 8),
        ("aug", 8),
        ("augustus", 8),
        ("août", 8),
        ("aout", 8),
        ("agosto", 8),
        ("ogos", 8),
        ("september", 9),
        ("sep", 9),
        ("sept", 9),
        ("septembre", 9),
        ("septiembre", 9),
        ("settembre", 9),
        ("october", 10),
        ("oct", 10),
        ("oktober", 10),
        ("octobre", 10),
        ("octubre", 10),
        ("ottobre", 10),
        ("okt", 10),
        ("november", 11),
        ("nov", 11),
        ("novembre", 11),
        ("noviembre", 11),
        ("december", 12),
        ("dec", 12),
        ("dezember", 12),
        ("décembre", 12),
        ("decembre", 12),
        ("diciembre", 12),
        ("dicembre", 12),
        ("dis", 12),
        ("dez", 12),
    ];
    MONTHS.iter().find(|(n, _)| *n == w).map(|(_, m)| *m)
}

fn year_of(t: &Tok) -> Option<i64> {
    if t.kind != Kind::Num {
        return None;
    }
    match t.text.len() {
        4 => t.text.parse().ok().filter(|y| (1900..=2199).contains(y)),
        // Two-digit years: 00-69 are 20xx, 70-99 are 19xx (POSIX strptime's pivot).
        2 => t
            .text
            .parse::<i64>()
            .ok()
            .map(|y| if y < 70 { 2000 + y } else { 1900 + y }),
        _ => None,
    }
}

/// The year at the start of a number that OCR glued to the time after it
/// (`25/01/20181:22:56PM`, `26/02/1808:28`): the token must be followed
/// directly by `:`; the first 4 digits are the year when they make one
/// (1900-2199) and 1-2 hour digits remain, else the first 2.
fn year_glued_to_time(t: &Tok, next: Option<&Tok>) -> Option<i64> {
    let colon = next.is_some_and(|n| n.text == ":" && !n.space_before);
    if t.kind != Kind::Num || !colon || !(3..=6).contains(&t.text.len()) {
        return None;
    }
    let four = (t.text.len() >= 5)
        .then(|| t.text[..4].parse::<i64>().ok())
        .flatten()
        .filter(|y| (1900..=2199).contains(y));
    four.or_else(|| {
        (t.text.len() <= 4)
            .then(|| t.text[..2].parse::<i64>().ok())
            .flatten()
            .map(|y| if y < 70 { 2000 + y } else { 1900 + y })
    })
}

fn small(t: &Tok) -> Option<u32> {
    (t.kind == Kind::Num && (1..=2).contains(&t.text.len()))
        .then(|| t.text.parse().ok())
        .flatten()
}

fn is_sep(t: &Tok, seps: &[&str]) -> bool {
    t.kind == Kind::Sym && seps.contains(&t.text.as_str())
}

fn iso(y: i64, m: u32, d: u32) -> Option<String> {
    days_from_civil(y, m, d).map(|_| format!("{y:04}-{m:02}-{d:02}"))
}

/// An ordinal suffix after a day number: `st`, `nd`, `rd`, `th`, `er` (fr).
fn ordinal(t: &Tok) -> bool {
    t.kind == Kind::Word
        && !t.space_before
        && matches!(t.text.as_str(), "st" | "nd" | "rd" | "th" | "er")
}

/// How a document writes numeric dates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateOrder {
    DayFirst,
    MonthFirst,
    Unknown,
}

/// A date as found at a token: its (day-first) ISO value, the last token
/// used, the month-first reading when both are valid and differ, and what
/// it tells of the document's order (`25/12/2018`: day first).
struct Reading {
    value: String,
    last: usize,
    month_first: Option<String>,
    evidence: Option<DateOrder>,
}

impl Reading {
    fn plain(value: String, last: usize) -> Self {
        Self {
            value,
            last,
            month_first: None,
            evidence: None,
        }
    }
}

/// Try a date starting at token `i`.
fn reading_at(t: &[Tok], i: usize) -> Option<Reading> {
    let g = |k: usize| t.get(i + k);
    let a = g(0)?;
    // Numeric: d/m/y, y-m-d (same separator twice; spaces around it allowed).
    if a.kind == Kind::Num {
        if let (Some(s1), Some(b), Some(s2), Some(c)) = (g(1), g(2), g(3), g(4)) {
            if is_sep(s1, &["/", "-", "."]) && s2.text == s1.text && b.kind == Kind::Num {
                if a.text.len() == 4 {
                    if let (Ok(y), Some(m), Some(d)) = (a.text.parse::<i64>(), small(b), small(c)) {
                        if let Some(v) = iso(y, m, d) {
                            return Some(Reading::plain(v, i + 4));
                        }
                    }
                } else if let (Some(x), Some(y2), Some(yr)) = (
                    small(a),
                    small(b),
                    year_of(c).or_else(|| year_glued_to_time(c, g(5))),
                ) {
                    // Day first (the convention of most of the world); month
                    // first only when the day-first reading is impossible.
                    let (dmy, mdy) = (iso(yr, y2, x), iso(yr, x, y2));
                    let evidence = match (&dmy, &mdy) {
                        (Some(_), None) if x > 12 => Some(DateOrder::DayFirst),
                        (None, Some(_)) if y2 > 12 => Some(DateOrder::MonthFirst),
                        _ => None,
                    };
                    let month_first = match (&dmy, &mdy) {
                        (Some(a), Some(b)) if a != b => Some(b.clone()),
                        _ => None,
                    };
                    if let Some(v) = dmy.or(mdy) {
                        return Some(Reading {
                            value: v,
                            last: i + 4,
                            month_first,
                            evidence,
                        });
                    }
                }
            }
        }
        // d [th] [day of] Month[.] [,] y  (25 Dec 2018, 25-Dec-18, 14th
        // March 2024, the 16th day of May, 2011)
        if let Some(d) = small(a) {
            let mut k = 1;
            if g(k).is_some_and(ordinal) {
                k += 1;
            }
            let word =
                |k: usize, w: &str| g(k).is_some_and(|t| t.kind == Kind::Word && t.text == w);
            if word(k, "day") && word(k + 1, "of") {
                k += 2;
            } else if k == 2 && word(k, "of") {
                k += 1;
            }
            if g(k).is_some_and(|s| is_sep(s, &["-", "/", "."])) {
                k += 1;
            }
            if let Some(m) = g(k)
                .filter(|w| w.kind == Kind::Word)
                .and_then(|w| month_number(&w.text))
            {
                k += 1;
                while g(k).is_some_and(|s| is_sep(s, &["-", "/", ".", ","])) {
                    k += 1;
                }
                if let Some(y) = g(k).and_then(year_of) {
                    if let Some(v) = iso(y, m, d) {
                        return Some(Reading::plain(v, i + k));
                    }
                }
            }
        }
    }
    // Month d[th][,] y  (Dec 25, 2018; March 14 2024)
    if a.kind == Kind::Word {
        let m = month_number(&a.text)?;
        let mut k = 1;
        if g(k).is_some_and(|s| is_sep(s, &["."])) {
            k += 1;
        }
        let d = g(k).and_then(small)?;
        k += 1;
        if g(k).is_some_and(ordinal) {
            k += 1;
        }
        if g(k).is_some_and(|s| is_sep(s, &[","])) {
            k += 1;
        }
        let y = g(k).filter(|t| t.text.len() == 4).and_then(year_of)?;
        return iso(y, m, d).map(|v| Reading::plain(v, i + k));
    }
    None
}

/// Every date in `text`, as ISO `YYYY-MM-DD`, left to right.
///
/// Formats: `25/12/2018`, `25-12-18`, `14.03.2024`, `2018-12-25`,
/// `2018/12/25`, `25 Dec 2018`, `25-Dec-18`, `14th March 2024`,
/// `16th day of May, 2011`, `6th of February 1999`,
/// `Dec 25, 2018`, `March 14 2024`, with month names in English, Dutch,
/// German, French, Spanish, Italian and Malay. Numeric dates are read day
/// first unless only month first is a valid date. Two-digit years 00-69 are
/// 20xx. A number glued to a longer number (`123/12/2018`) is no date.
pub fn find_dates(text: &str) -> Vec<Found<String>> {
    find_date_readings(text)
        .into_iter()
        .map(|d| Found {
            value: d.value,
            start: d.start,
            end: d.end,
        })
        .collect()
}

/// A date found in a text, with what [`find_dates`] leaves out: the
/// month-first reading of a numeric date that reads either way
/// (`04/05/2020`; `value` is the day-first one), and the order a date
/// proves (`25/12/2018` is day first, `12/25/2018` month first).
#[derive(Clone, Debug, PartialEq)]
pub struct DateFound {
    pub value: String,
    pub month_first: Option<String>,
    pub evidence: Option<DateOrder>,
    pub start: usize,
    pub end: usize,
}

/// Every date in `text` (see [`find_dates`]), with its readings.
pub fn find_date_readings(text: &str) -> Vec<DateFound> {
    let t = tokenize(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        // A date does not start inside a number or word.
        let glued = i > 0 && !t[i].space_before && t[i - 1].kind == t[i].kind;
        if !glued {
            if let Some(r) = reading_at(&t, i) {
                let after_glued = t
                    .get(r.last + 1)
                    .is_some_and(|n| !n.space_before && n.kind == Kind::Num);
                if !after_glued {
                    out.push(DateFound {
                        value: r.value,
                        month_first: r.month_first,
                        evidence: r.evidence,
                        start: t[i].start,
                        end: t[r.last].end,
                    });
                    i = r.last + 1;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------
// Amounts

/// An amount found in a text.
#[derive(Clone, Debug, PartialEq)]
pub struct Amount {
    pub value: f64,
    /// Whether it had decimals (`12.50`, `12,50`), which makes it more likely
    /// to be money than a count or an id.
    pub has_decimals: bool,
    /// A currency symbol or code right before or after it, upper-case as written
    /// (e.g. `RM`, `€`, `USD`).
    pub currency: Option<String>,
}

/// The value of a numeric string made of digit groups and `.`/`,`/`'`
/// separators, deciding which separator is the decimal mark:
/// - both `.` and `,`: the last one is the decimal mark (`1,234.56`, `1.234,56`);
/// - one kind, used once, followed by 1-2 digits: decimal (`12.5`, `12,50`);
/// - `,` followed by exactly 3 digits, or used more than once: thousands;
/// - `.` followed by 3 digits once: decimal (`9.000` on receipts is nine);
///   used more than once: thousands (`1.234.567`).
fn number_value(s: &str) -> Option<(f64, bool)> {
    let last_dot = s.rfind('.');
    let last_comma = s.rfind(',');
    let count = |c: char| s.matches(c).count();
    let decimal_mark = match (last_dot, last_comma) {
        (Some(d), Some(c)) => Some(if d > c { '.' } else { ',' }),
        (Some(d), None) => {
            let after = s.len() - d - 1;
            (count('.') == 1 && (1..=3).contains(&after)).then_some('.')
        }
        (None, Some(c)) => {
            let after = s.len() - c - 1;
            (count(',') == 1 && (1..=2).contains(&after)).then_some(',')
        }
        (None, None) => None,
    };
    let mut clean = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '0'..='9' => clean.push(ch),
            c if Some(c) == decimal_mark => clean.push('.'),
            '.' | ',' | '\'' => {}
            _ => return None,
        }
    }
    // Thousands groups must have 3 digits.
    if let Some(dm) = decimal_mark {
        let int_part = s.rsplit_once(dm).map_or(s, |(a, _)| a);
        if !groups_ok(int_part) {
            return None;
        }
    } else if !groups_ok(s) {
        return None;
    }
    let v: f64 = clean.parse().ok()?;
    Some((v, decimal_mark.is_some()))
}

fn groups_ok(int_part: &str) -> bool {
    let groups: Vec<&str> = int_part.split(['.', ',', '\'']).collect();
    groups.len() == 1
        || (!groups[0].is_empty()
            && groups[0].len() <= 3
            && groups[1..].iter().all(|g| g.len() == 3))
}

fn currency_of(tok: &Tok, raw: &str) -> Option<String> {
    let w = tok.text.as_str();
    // Symbols that are also units or words (`ft`, `fr`) do not tag amounts.
    if currency::symbol_codes(w).is_some() && !matches!(w, "ft" | "fr" | "sfr" | "lei" | "rp") {
        return Some(raw[tok.start..tok.end].to_uppercase());
    }
    (tok.kind == Kind::Word
        && w.len() == 3
        && raw[tok.start..tok.end]
            .chars()
            .all(|c| c.is_ascii_uppercase()))
    .then(|| raw[tok.start..tok.end].to_string())
}

/// Every amount in `text`, left to right: digits with optional thousands
/// separators and decimal mark (see the rules above), an optional leading
/// `-` (or trailing `-`, as some tills print), and a currency symbol or
/// three-letter upper-case code directly before or after (`RM 1,234.56`,
/// `€1.234,56`, `$ 12.50`, `12.50 USD`). Numbers that are part of a date
/// or a time (`12:30`), percentages (`6%`) or glued to letters (`A123`,
/// `12KG`) are skipped, but a
/// currency prefix glued on (`RM9.00`) and one-letter tax codes after a
/// space (`5.20 S`) are fine.
pub fn find_amounts(text: &str) -> Vec<Found<Amount>> {
    let t = tokenize(text);
    let dates = find_dates(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if t[i].kind != Kind::Num
            || dates
                .iter()
                .any(|d| t[i].start >= d.start && t[i].start < d.end)
        {
            i += 1;
            continue;
        }
        // Extend over separator + digits without spaces.
        let mut j = i;
        while j + 2 < t.len()
            && is_sep(&t[j + 1], &[".", ",", "'"])
            && !t[j + 1].space_before
            && t[j + 2].kind == Kind::Num
            && !t[j + 2].space_before
        {
            j += 2;
        }
        let raw = &text[t[i].start..t[j].end];
        let prev = i.checked_sub(1).map(|k| &t[k]);
        let next = t.get(j + 1);
        // Glued to a word that is not a currency: part of an id or a unit.
        let prev_cur = prev.and_then(|p| currency_of(p, text));
        let next_cur = next.and_then(|n| currency_of(n, text));
        let glued_prev =
            prev.is_some_and(|p| !t[i].space_before && p.kind == Kind::Word && prev_cur.is_none());
        let glued_next =
            next.is_some_and(|n| !n.space_before && n.kind == Kind::Word && next_cur.is_none());
        let timeish = next.is_some_and(|n| is_sep(n, &[":"]) && !n.space_before)
            || prev.is_some_and(|p| is_sep(p, &[":"]) && !t[i].space_before);
        let idish = prev.is_some_and(|p| is_sep(p, &["/", "#"]) && !t[i].space_before)
            || next.is_some_and(|n| is_sep(n, &["/"]) && !n.space_before);
        let percent = next.is_some_and(|n| is_sep(n, &["%"]));
        if glued_prev || glued_next || timeish || idish || percent {
            i = j + 1;
            continue;
        }
        if let Some((mut v, has_decimals)) = number_value(raw) {
            let mut start = t[i].start;
            let mut end = t[j].end;
            let minus_before = prev.is_some_and(|p| is_sep(p, &["-", "−"]) && !t[i].space_before);
            let minus_after = next.is_some_and(|n| is_sep(n, &["-"]) && !n.space_before)
                && t.get(j + 2).is_none_or(|n| n.kind != Kind::Num);
            if minus_before || minus_after {
                v = -v;
                if minus_before {
                    start = prev.map_or(start, |p| p.start);
                } else {
                    end = next.map_or(end, |n| n.end);
                }
            }
            // A currency sits next to the number; look past a minus sign.
            let currency = prev_cur.or(next_cur).or_else(|| {
                (minus_before && i >= 2)
                    .then(|| currency_of(&t[i - 2], text))
                    .flatten()
            });
            out.push(Found {
                value: Amount {
                    value: v,
                    has_decimals,
                    currency,
                },
                start,
                end,
            });
        }
        i = j + 1;
    }
    out
}

/// Every plain integer in `text` (digits with optional thousands
/// separators, optional leading `-`), skipping dates and decimals.
pub fn find_integers(text: &str) -> Vec<Found<i64>> {
    find_amounts(text)
        .into_iter()
        .filter(|a| !a.value.has_decimals && a.value.value.abs() < 9.0e15)
        .map(|a| Found {
            value: a.value.value as i64,
            start: a.start,
            end: a.end,
        })
        .collect()
}

/// The number `value` scaled to `scale` decimals as an integer of at most
/// `precision` digits: the unscaled value of a `Decimal128(precision, scale)`.
/// Exact for decimal literals (it reads the number's own digits, not a binary
/// float); `None` when it does not fit or would lose digits.
pub fn decimal_units(value: &Value, precision: u8, scale: i8) -> Option<i128> {
    let n = value.as_number()?;
    let s = n.to_string();
    let (mant, exp) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().ok()?),
        None => (s, 0),
    };
    let neg = mant.starts_with('-');
    let mant = mant.trim_start_matches('-');
    let (int_part, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let mut digits_str = format!("{int_part}{frac}");
    // value = digits * 10^(exp - frac.len()); we want digits * 10^(exp - frac.len() + scale)
    let shift = exp - frac.len() as i32 + i32::from(scale);
    if shift >= 0 {
        digits_str.extend(std::iter::repeat_n('0', usize::try_from(shift).ok()?));
    } else {
        let cut = usize::try_from(-shift).ok()?;
        let keep = digits_str.len().saturating_sub(cut);
        if digits_str[keep..].bytes().any(|b| b != b'0') {
            return None;
        }
        digits_str.truncate(keep);
    }
    let trimmed = digits_str.trim_start_matches('0');
    if trimmed.len() > usize::from(precision) {
        return None;
    }
    let v: i128 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_table() {
        struct Case {
            text: &'static str,
            want: &'static [&'static str],
        }
        let cases = [
            Case {
                text: "25/12/2018",
                want: &["2018-12-25"],
            },
            Case {
                text: "DATE: 25/12/2018 8:13:39 PM",
                want: &["2018-12-25"],
            },
            Case {
                text: "25-12-18",
                want: &["2018-12-25"],
            },
            Case {
                text: "12-01-19",
                want: &["2019-01-12"],
            },
            Case {
                text: "2018-12-25",
                want: &["2018-12-25"],
            },
            Case {
                text: "2018/12/25",
                want: &["2018-12-25"],
            },
            Case {
                text: "14.03.2024",
                want: &["2024-03-14"],
            },
            Case {
                text: "25 Dec 2018",
                want: &["2018-12-25"],
            },
            Case {
                text: "10 MAR 2018 18:24",
                want: &["2018-03-10"],
            },
            Case {
                text: "25-Dec-18",
                want: &["2018-12-25"],
            },
            Case {
                text: "Dec 25, 2018",
                want: &["2018-12-25"],
            },
            Case {
                text: "March 14, 2024",
                want: &["2024-03-14"],
            },
            Case {
                text: "14th March 2024",
                want: &["2024-03-14"],
            },
            Case {
                text: "made this 16th day of May, 2011 and the 22ND day of May 2001",
                want: &["2011-05-16", "2001-05-22"],
            },
            Case {
                text: "this 6th of February, 1999; 3 of May 2001",
                want: &["1999-02-06"],
            },
            Case {
                text: "Orderdatum: 18 april 2014",
                want: &["2014-04-18"],
            },
            Case {
                text: "29 maart 2014",
                want: &["2014-03-29"],
            },
            Case {
                text: "12/25/2018",
                want: &["2018-12-25"],
            },
            Case {
                text: "from 01/05/14 to 31/05/14",
                want: &["2014-05-01", "2014-05-31"],
            },
            Case {
                text: "31/02/2018",
                want: &[],
            },
            Case {
                text: "123/12/2018",
                want: &[],
            },
            Case {
                text: "25/12/20181",
                want: &[],
            },
            Case {
                text: "25/01/20181:22:56PM",
                want: &["2018-01-25"],
            },
            Case {
                text: "30/05/201710:18:02AM",
                want: &["2017-05-30"],
            },
            Case {
                text: "26/02/1808:2810886 09",
                want: &["2018-02-26"],
            },
            Case {
                text: "Date:5/3/201822:52:33",
                want: &["2018-03-05"],
            },
            Case {
                text: "17JAN 2018 000",
                want: &["2018-01-17"],
            },
            Case {
                text: "TEL: 07-355 2616",
                want: &[],
            },
            Case {
                text: "1.5.2",
                want: &[],
            },
            Case {
                text: "",
                want: &[],
            },
        ];
        for c in cases {
            let got: Vec<String> = find_dates(c.text).into_iter().map(|f| f.value).collect();
            assert_eq!(got, c.want, "{:?}", c.text);
        }
    }

    #[test]
    fn date_spans() {
        let f = find_dates("Date: 25 Dec 2018 x");
        assert_eq!(f.len(), 1);
        assert_eq!(&"Date: 25 Dec 2018 x"[f[0].start..f[0].end], "25 Dec 2018");
    }

    #[test]
    fn amounts_table() {
        struct Case {
            text: &'static str,
            want: &'static [(f64, Option<&'static str>)],
        }
        let cases = [
            Case {
                text: "RM 1,234.56",
                want: &[(1234.56, Some("RM"))],
            },
            Case {
                text: "€1.234,56",
                want: &[(1234.56, Some("€"))],
            },
            Case {
                text: "$ 12.50",
                want: &[(12.5, Some("$"))],
            },
            Case {
                text: "12.50 USD",
                want: &[(12.5, Some("USD"))],
            },
            Case {
                text: "TOTAL: RM9.00",
                want: &[(9.0, Some("RM"))],
            },
            Case {
                text: "316,83 PLN",
                want: &[(316.83, Some("PLN"))],
            },
            Case {
                text: "1 X 5.20 S",
                want: &[(1.0, None), (5.2, None)],
            },
            Case {
                text: "-5.59",
                want: &[(-5.59, None)],
            },
            Case {
                text: "5.59-",
                want: &[(-5.59, None)],
            },
            Case {
                text: "1,234",
                want: &[(1234.0, None)],
            },
            Case {
                text: "9.000",
                want: &[(9.0, None)],
            },
            Case {
                text: "1.234.567,00",
                want: &[(1_234_567.0, None)],
            },
            Case {
                text: "Rs. 1939",
                want: &[(1939.0, None)],
            },
            Case {
                text: "DATE 25/12/2018 8:13:39",
                want: &[],
            },
            Case {
                text: "INV/2023/03/0008",
                want: &[],
            },
            Case {
                text: "TD01167104",
                want: &[],
            },
            Case {
                text: "12KG",
                want: &[],
            },
            Case {
                text: "Total Incl. GST@6%",
                want: &[],
            },
            Case {
                text: "VAT 21 % 4.20",
                want: &[(4.2, None)],
            },
            Case {
                text: "1,23,4",
                want: &[],
            },
            Case {
                text: "",
                want: &[],
            },
        ];
        for c in cases {
            let got: Vec<(f64, Option<String>)> = find_amounts(c.text)
                .into_iter()
                .map(|f| (f.value.value, f.value.currency))
                .collect();
            let want: Vec<(f64, Option<String>)> = c
                .want
                .iter()
                .map(|(v, c)| (*v, c.map(str::to_string)))
                .collect();
            assert_eq!(got, want, "{:?}", c.text);
        }
    }

    #[test]
    fn integers() {
        let ints: Vec<i64> = find_integers("qty 12, price 3.50, 1,000 pcs")
            .into_iter()
            .map(|f| f.value)
            .collect();
        assert_eq!(ints, [12, 1000]);
    }

    #[test]
    fn conversions() {
        assert_eq!(iso_date_days("1970-01-01"), Some(0));
        assert_eq!(iso_date_days("2018-12-25"), Some(17890));
        assert_eq!(iso_date_days("2000-02-29"), Some(11016));
        assert_eq!(iso_date_days("1900-02-29"), None);
        assert_eq!(iso_date_days("2018-1-25"), None);
        assert_eq!(iso_date_days("25/12/2018"), None);
        assert_eq!(rfc3339_micros("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(rfc3339_micros("1970-01-01T01:00:00.5+01:00"), Some(500_000));
        assert_eq!(
            rfc3339_micros("2018-12-25T20:13:39-00:30"),
            Some((17890 * 86400 + 20 * 3600 + 13 * 60 + 39 + 1800) * 1_000_000)
        );
        assert_eq!(rfc3339_micros("2018-12-25"), None);
        assert_eq!(rfc3339_micros("2018-12-25T25:00:00Z"), None);
        assert_eq!(decimal_units(&json!(1234.56), 10, 2), Some(123_456));
        assert_eq!(decimal_units(&json!(-0.5), 3, 2), Some(-50));
        assert_eq!(decimal_units(&json!(12), 4, 2), Some(1200));
        assert_eq!(decimal_units(&json!(1.005), 10, 2), None);
        assert_eq!(decimal_units(&json!(123.4), 4, 2), None);
        assert_eq!(decimal_units(&json!(1e3), 6, 2), Some(100_000));
        assert_eq!(decimal_units(&json!("12"), 6, 2), None);
    }
}
