//! Unlabelled fields, found by where they are: `position: top` (the first
//! rows of the first page) and `after: <field>` (the lines below another
//! field's value).

use serde_json::Value;

use super::labelled::cand_from;
use super::text::*;
use super::{Cand, Plan};
use crate::extract::field::FieldType;
use crate::extract::parse::address::{lacks_street, takes_next};
use crate::extract::parse::find_dates;
use crate::types::BBox;

/// `position: top`: the first rows of the first page that has text. A row
/// is one candidate (its lines joined left to right). A row made of
/// keywords only (a legal suffix such as `SDN BHD` on a line of its own)
/// continues the row above; a row ending in `&` continues on the row below.
pub(super) fn top_candidates(plan: &Plan, lines: &[L]) -> Vec<Cand> {
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
        // A row with a stop text is none, unless the stop text ends it and
        // what comes before holds a keyword: a name run into the
        // document's title (`Amazon Web Services Invoice`).
        let titled = if contains_any(&r.lower, &plan.stop) {
            match before_title(&r.text, &plan.stop) {
                Some(head) if contains_any(&head.to_lowercase(), &plan.keywords) => Some(head),
                _ => continue,
            }
        } else {
            None
        };
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
            .map(|u| match titled {
                Some(head) if std::ptr::eq(*u, r) => head,
                _ => u.text.as_str(),
            })
            .collect::<Vec<_>>()
            .join(" ");
        let text = strip_tail(cut_at_separator(&text), plan.strip.as_ref());
        let Some(last) = used.last() else { continue };
        let (value, sure) = match &plan.ty {
            FieldType::String => match &plan.pattern {
                Some(m) if !m.full_match(&text) => continue,
                _ => (Value::String(text), true),
            },
            _ => match plan.parse(&text) {
                Some(p) => (p.value, p.q >= 1.0),
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
            alt: None,
            copy: 1.0,
        };
        if plan.def.hints.block {
            if let Some(from) = last.lines.iter().max_by_key(|l| l.order) {
                let x0 = used.iter().map(|r| r.bbox.x0).fold(f32::INFINITY, f32::min);
                extend_block(plan, lines, from, x0, &mut c);
            }
        } else if plan.def.hints.lines > 1 {
            if let Some(from) = last.lines.iter().max_by_key(|l| l.order) {
                extend_below(plan, lines, from, &mut c, plan.def.hints.lines - 1);
            }
        }
        if let Value::String(v) = &c.value {
            let chars = v.chars().filter(|ch| !ch.is_whitespace()).count() as i32;
            c.copy = conf.powi(chars - 1).clamp(0.0, 1.0);
        }
        groups.push(used.iter().flat_map(|r| r.lines.iter().copied()).collect());
        out.push(c);
    }
    for (c, f) in out
        .iter_mut()
        .zip(super::issuer::row_factors(lines, &groups))
    {
        c.score *= f;
    }
    out
}

/// The part of row `text` before a stop text that ends it (`Amazon Web
/// Services` of `Amazon Web Services Invoice`), with at least 4 letters and
/// no other stop text; `None` otherwise.
fn before_title<'a>(text: &'a str, stop: &[String]) -> Option<&'a str> {
    let t = text.trim_end();
    let lower = t.to_lowercase();
    // Byte offsets are shared only when lower-casing keeps them.
    if lower.len() != t.len() {
        return None;
    }
    let cut = stop
        .iter()
        .filter(|s| {
            lower.ends_with(s.as_str())
                && lower[..lower.len() - s.len()]
                    .chars()
                    .last()
                    .is_some_and(|c| !c.is_alphanumeric())
        })
        .map(|s| t.len() - s.len())
        .min()?;
    let head = t[..cut].trim_end_matches(|c: char| !c.is_alphanumeric());
    (letters(head) >= 4 && !contains_any(&head.to_lowercase(), stop)).then_some(head)
}

/// Append up to `n` following lines to a string candidate (see `after_candidates`).
pub(super) fn extend_below(plan: &Plan, lines: &[L], from: &L, c: &mut Cand, n: usize) {
    let Value::String(s) = &c.value else {
        return;
    };
    let mut text = s.clone();
    let mut confs = vec![from.conf];
    let mut read: Vec<(&str, f32)> = vec![(from.text.as_str(), from.conf)];
    let mut prev = from;
    let mut taken: Vec<&str> = vec![s.as_str()];
    for m in following(plan, lines, from).into_iter().take(n) {
        if m.bbox.y0 - prev.bbox.y1 > 2.5 * prev.h() {
            break;
        }
        if plan.address && !takes_next(&taken, &m.text) {
            break;
        }
        taken.push(m.text.as_str());
        text.push(' ');
        text.push_str(m.text.trim());
        confs.push(m.conf);
        read.push((m.text.as_str(), m.conf));
        c.bbox = c.bbox.union(&m.bbox);
        prev = m;
    }
    let sure = if plan.address {
        address_sureness(&read)
    } else {
        mean(confs.iter().copied())
    };
    c.score *= sure / from.conf.max(f32::EPSILON);
    c.value = Value::String(strip_tail(&text, plan.strip.as_ref()));
}

/// Lines below `from` on its page, in reading order, up to a stop line
/// (one with a `stop` text, a date, or no letters). Passed over: lines
/// matching `skip` (even if they hold a stop text); before the first line taken, lines not matching `start`
/// and date lines.
pub(super) fn following<'a>(plan: &Plan, lines: &'a [L], from: &L) -> Vec<&'a L> {
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

/// How sure an address read from lines `read` (text, OCR confidence) is:
/// the chance that its weakest line was read without one wrong character
/// (its confidence to the power of its characters, spaces aside: a line's
/// OCR confidence is about the mean of its characters', and one wrong
/// character makes the address wrong), halved when it lacks its street
/// (see [`lacks_street`]: the lines above its postcode line were missed).
/// The mean OCR confidence it replaces put every receipt address of the
/// tune split in the top bin and ranked right ones above wrong ones at an
/// AUROC of 0.64 (this, 0.76): it says how well the lines were read on
/// average, not whether the whole address was.
pub(super) fn address_sureness(read: &[(&str, f32)]) -> f32 {
    let weakest = read
        .iter()
        .map(|(t, c)| c.powi(t.chars().filter(|c| !c.is_whitespace()).count() as i32))
        .fold(1.0f32, f32::min);
    let street = match read.first() {
        Some((t, _)) if lacks_street(t) => 0.5,
        _ => 1.0,
    };
    weakest * street
}

/// `after: <field>`: up to `lines` lines below the anchor field's line.
pub(super) fn after_candidates(plan: &Plan, lines: &[L], anchor: usize) -> Vec<Cand> {
    let Some(a) = lines.iter().find(|l| l.order == anchor) else {
        return Vec::new();
    };
    let mut used: Vec<&L> = Vec::new();
    let mut prev = a;
    for m in following(plan, lines, a) {
        // The first line may sit below passed-over lines; after it, a gap of
        // 2.5 line heights ends the value.
        let gap = if used.is_empty() { 6.0 } else { 2.5 };
        let most = if plan.def.hints.block {
            1
        } else {
            plan.def.hints.lines
        };
        if used.len() >= most || m.bbox.y0 - prev.bbox.y1 > gap * prev.h() {
            break;
        }
        if plan.address {
            let taken: Vec<&str> = used.iter().map(|l| l.text.as_str()).collect();
            if !takes_next(&taken, &m.text) {
                break;
            }
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
    if plan.ty != FieldType::String {
        // Typed unlabelled values: parse the first line that parses.
        return used
            .iter()
            .find_map(|l| cand_from(plan, l, 0, 0.9, 1.0))
            .into_iter()
            .collect();
    }
    // A block's sureness is set as it grows (see `extend_block`).
    let sure = if plan.address && !plan.def.hints.block {
        let read: Vec<(&str, f32)> = used.iter().map(|l| (l.text.as_str(), l.conf)).collect();
        address_sureness(&read)
    } else {
        mean(used.iter().map(|l| l.conf))
    };
    let mut c = Cand {
        value,
        score: sure * 0.9,
        page: first.page,
        bbox,
        order: first.order,
        num: None,
        sure: true,
        alt: None,
        copy: 1.0,
    };
    if plan.def.hints.block {
        extend_block(plan, lines, first, first.bbox.x0, &mut c);
    }
    vec![c]
}

/// Whether `lower` starts with a key: 1 to 3 words, the first with a
/// letter, then `:` (`tel:`, `gst reg no :`), or with one of `labels`.
pub(super) fn starts_with_key(lower: &str, labels: &[String]) -> bool {
    let t = lower.trim_start();
    if let Some(colon) = t.find(':') {
        let key = &t[..colon];
        let words = key.split_whitespace().count();
        let next = t[colon + 1..].chars().next();
        if (1..=3).contains(&words)
            && key.chars().next().is_some_and(char::is_alphabetic)
            && !next.is_some_and(|c| c.is_ascii_digit() || c == '/')
        {
            return true;
        }
    }
    labels
        .iter()
        .any(|l| find_label(t, l).is_some_and(|(s, _)| s == 0))
}

/// `lines: "block"`: grow a string candidate from line `from` (the value
/// starting at `x0`) down its column (the lines that overlap the block so
/// far horizontally), one row at a time, while the next row is close (a gap under 1.2 line heights), of the same size (height
/// within a factor 1.5), aligned with the block (left edges, centres or
/// right edges within 1.5 line heights), has letters and no date, does not
/// start with a key or a label of any field, and holds no `stop` text;
/// rows matching `skip` are passed over. Rows are joined with the field's
/// `separator`; the confidence is the least of the rows' (for an address,
/// see [`address_sureness`]).
pub(super) fn extend_block(plan: &Plan, lines: &[L], from: &L, x0: f32, c: &mut Cand) {
    let Value::String(s) = &c.value else {
        return;
    };
    let mut parts = vec![s.clone()];
    let mut least = from.conf;
    let mut confs = vec![from.conf];
    let (mut left, mut right) = (x0, from.bbox.x1);
    let mut prev_bottom = from.bbox.y1;
    let mut last_order = from.order;
    let h = from.h();
    let labels: Vec<String> = plan
        .labels
        .iter()
        .map(|(l, _)| l.clone())
        .chain(plan.others.iter().cloned())
        .collect();
    while parts.len() < plan.def.hints.lines.max(2) {
        // A line of the block's column overlaps it: one that starts past
        // its right edge, however close, is the next column's (two address
        // blocks side by side may stand less than a line height apart).
        let in_column = |b: &BBox| b.x1.min(right) > b.x0.max(left);
        // The nearest row below that overlaps the block's column.
        let next = lines
            .iter()
            .filter(|m| {
                m.page == from.page
                    && m.order > last_order
                    && m.bbox.y0 >= prev_bottom - 0.3 * h
                    && in_column(&m.bbox)
            })
            .min_by(|a, b| a.bbox.y0.total_cmp(&b.bbox.y0));
        let Some(m) = next else { break };
        let row: Vec<&L> = {
            let mut r: Vec<&L> = lines
                .iter()
                .filter(|o| {
                    o.page == m.page
                        && vertical_overlap(&o.bbox, &m.bbox) >= 0.5
                        && in_column(&o.bbox)
                })
                .collect();
            r.sort_by(|a, b| a.bbox.x0.total_cmp(&b.bbox.x0));
            r
        };
        let bbox = row.iter().fold(m.bbox, |b, o| b.union(&o.bbox));
        let text = row
            .iter()
            .map(|o| o.text.trim())
            .collect::<Vec<_>>()
            .join(" ");
        let lower = text.to_lowercase();
        let order = row.iter().map(|o| o.order).max().unwrap_or(m.order);
        if plan
            .skip
            .as_ref()
            .is_some_and(|sk| sk.full_match(text.trim()))
        {
            prev_bottom = bbox.y1;
            last_order = order;
            continue;
        }
        let mh = bbox.height().max(1.0);
        let centre = |a: f32, b: f32| (a + b) / 2.0;
        let aligned = (bbox.x0 - left).abs() <= 1.5 * h
            || (centre(bbox.x0, bbox.x1) - centre(left, right)).abs() <= 1.5 * h
            || (bbox.x1 - right).abs() <= 1.5 * h;
        let ok = bbox.y0 - prev_bottom <= 1.2 * h
            && mh <= 1.5 * h
            && h <= 1.5 * mh
            && aligned
            && letters(&text) > 0
            && find_dates(&text).is_empty()
            && !starts_with_key(&lower, &labels)
            && !contains_any(&lower, &plan.stop)
            && !(plan.address && {
                let taken: Vec<&str> = parts.iter().map(String::as_str).collect();
                !takes_next(&taken, &text)
            });
        if !ok {
            break;
        }
        parts.push(text);
        confs.push(mean(row.iter().map(|o| o.conf)));
        least = least.min(mean(row.iter().map(|o| o.conf)));
        c.bbox = c.bbox.union(&bbox);
        left = left.min(bbox.x0);
        right = right.max(bbox.x1);
        prev_bottom = bbox.y1;
        last_order = order;
    }
    if plan.address {
        let read: Vec<(&str, f32)> = parts
            .iter()
            .map(String::as_str)
            .zip(confs.iter().copied())
            .collect();
        least = address_sureness(&read);
    }
    c.score *= least / from.conf.max(f32::EPSILON);
    c.value = Value::String(strip_tail(
        &parts.join(&plan.def.hints.separator),
        plan.strip.as_ref(),
    ));
}
