//! The layout engine's `x-docpipe` hints: how it finds a field on the page.
//!
//! A top-level property may carry these keys in `"x-docpipe": {...}` (all
//! optional; `decimal`, the one hint about the column type, belongs to the
//! schema, see [`crate::extract::schema`]; any other key is refused there):
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `labels` | list of strings | texts that precede the value on the page (case-insensitive); added to the field's `title`, its name with `_` read as spaces, and any `"quoted"` text in its `description` |
//! | `exclude` | list of strings | a line containing one of these is never a label of this field (e.g. `subtotal` for a total) |
//! | `pattern` | regex | a string value must match it whole; the engine looks for the first span of words that does |
//! | `pick` | `best` (default), `largest`, `first`, `last`, `top`, `bottom` | which candidate wins when several are found |
//! | `position` | `top` | the field has no label: read from the first lines of the first page |
//! | `after` | a top-level field name | the field has no label: read from the lines just below that field's value |
//! | `lines` | 1..=20 (default 1), or `"block"` | how many lines an unlabelled (`position` / `after`) value may span; `block`: the value (labelled or not) runs from its first line down while the lines stay aligned with it, close and of its size, and no line starts with a label (`Key:`, or another field's label) or holds a `stop` text |
//! | `separator` | string (default `" "`) | what joins the lines of a multi-line value |
//! | `stop` | list of strings | a line containing one of these ends an unlabelled value |
//! | `keywords` | list of strings | with `position`: a line containing one of these is preferred |
//! | `skip` | regex | with `position` / `after`: lines matching it whole (either case) are passed over |
//! | `start` | regex | with `after`: lines before the first one that matches it whole (either case) are passed over (e.g. `.*[0-9].*`: an address starts at a line with a number) |
//! | `strip` | regex | with `position` / `after`: a trailing part of the value that matches it whole (either case), from a word start, is cut off |
//! | `rounding` | step, e.g. `0.05` | cash rounding of a `number`: when the value found is not a multiple of the step, a multiple within one step of it, found among the candidates or below it on the page, wins (the rounded total that was paid) |
//! | `kind` | `currency`, `address`, `duration` | what a string value is. `currency`: an ISO 4217 code read from printed codes and symbols, an ambiguous symbol resolved from the document's evidence (see [`crate::extract::parse::currency`]); implied by an enum of ISO codes or a field named `…currency`. `address`: a postal address, which ends at its postcode line (unless that line ends with a comma) and a country line after it; implied by a field name or title with the word `address`. `duration`: a length of time written in running text (`two (2) years` reads `2 years`); implied by a title or description that asks "how long" or names a duration |
//!
//! Every hint is checked when the schema is loaded, with the JSON Pointer of
//! the offending place, so that a schema the layout engine cannot use is
//! refused before any document is read.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::extract::error::{err, pointer_join, SchemaError};

/// The keys this file reads, in the order error messages list them.
pub(crate) const KEYS: &[&str] = &[
    "labels",
    "exclude",
    "pattern",
    "pick",
    "position",
    "after",
    "lines",
    "stop",
    "keywords",
    "skip",
    "strip",
    "start",
    "rounding",
    "separator",
    "kind",
];

/// Which candidate wins when a layout engine finds several.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pick {
    /// Highest confidence.
    #[default]
    Best,
    /// Largest number (amounts); ties by confidence.
    Largest,
    /// First in reading order.
    First,
    /// Last in reading order.
    Last,
    /// Highest on the page (smallest y, first page first).
    Top,
    /// Lowest on the page (largest y, last page last).
    Bottom,
}

/// What a string value is (`kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An ISO 4217 code.
    Currency,
    /// A postal address.
    Address,
    /// A length of time (`2 years`).
    Duration,
}

/// Where an unlabelled field is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// The first lines of the first page.
    Top,
}

/// The layout hints of one field (see the module documentation); the
/// default is no hint at all.
#[derive(Clone, Debug, PartialEq)]
pub struct Hints {
    pub labels: Vec<String>,
    pub exclude: Vec<String>,
    pub pattern: Option<String>,
    pub pick: Pick,
    pub position: Option<Position>,
    pub after: Option<String>,
    /// Most lines an unlabelled value spans, 1..=20; default 1.
    pub lines: usize,
    /// `lines: "block"`: the value is a block of aligned lines.
    pub block: bool,
    /// Joins the lines of a multi-line value; default a space.
    pub separator: String,
    pub stop: Vec<String>,
    pub keywords: Vec<String>,
    pub skip: Option<String>,
    pub strip: Option<String>,
    pub start: Option<String>,
    /// Cash rounding step of a number field (e.g. 0.05), > 0.
    pub rounding: Option<f64>,
    /// `kind`: what a string value is, when the schema says so (the engine
    /// also infers it from the field's type, name and description).
    pub kind: Option<Kind>,
}

impl Default for Hints {
    fn default() -> Self {
        Self {
            labels: Vec::new(),
            exclude: Vec::new(),
            pattern: None,
            pick: Pick::Best,
            position: None,
            after: None,
            lines: 1,
            block: false,
            separator: " ".to_string(),
            stop: Vec::new(),
            keywords: Vec::new(),
            skip: None,
            strip: None,
            start: None,
            rounding: None,
            kind: None,
        }
    }
}

impl Hints {
    /// Whether the field has no label of its own (`position` or `after`).
    pub fn unlabelled(&self) -> bool {
        self.position.is_some() || self.after.is_some()
    }

    /// Label texts of a field, lower-case, longest first: `labels`, the
    /// `title`, the `name` with `_` read as spaces, and every `"quoted"` text
    /// of the `description`. Without explicit `labels` an unlabelled field
    /// (`position` / `after`) has none but the quoted ones.
    pub fn labels(
        &self,
        name: &str,
        title: Option<&str>,
        description: Option<&str>,
    ) -> Vec<String> {
        let mut out: Vec<String> = self.labels.clone();
        if !self.unlabelled() {
            // The words a user wrote, and their short forms.
            let mut derived: Vec<String> = title.map(str::to_string).into_iter().collect();
            derived.push(name_words(name).join(" "));
            out.extend(
                derived
                    .iter()
                    .flat_map(|d| abbreviated(&d.trim().to_lowercase())),
            );
        }
        if let Some(d) = description {
            let mut parts = d.split('"');
            parts.next();
            while let Some(q) = parts.next() {
                out.push(q.to_string());
                parts.next();
            }
        }
        let mut out: Vec<String> = out
            .into_iter()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
        out
    }
}

/// The words of a property name: `invoice_number`, `invoiceNumber` and
/// `InvoiceNumber` are all `invoice number`.
pub fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c == '_' || c == '-' || c == ' ' || c == '.' {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// The short forms a document prints for a word of a label.
pub const ABBREVIATIONS: &[(&str, &[&str])] = &[
    ("number", &["no", "no.", "nr", "nr.", "#", "num"]),
    ("amount", &["amt", "amt."]),
    ("quantity", &["qty", "qty."]),
    ("reference", &["ref", "ref."]),
    ("telephone", &["tel", "tel."]),
    ("phone", &["tel", "tel."]),
    ("account", &["acct", "acc", "a/c"]),
    ("identifier", &["id"]),
    ("address", &["addr", "addr."]),
    ("department", &["dept", "dept."]),
    ("description", &["desc", "desc."]),
    ("invoice", &["inv", "inv."]),
    ("purchase order", &["po", "p.o."]),
    ("order", &["ord"]),
    ("customer", &["cust", "cust."]),
];

/// `label` and its forms with one word written short (`invoice number`:
/// `invoice no`, `invoice no.`, `invoice #`, `inv number`, ...). A
/// one-word label is not shortened (a bare `no` or `#` is no label).
fn abbreviated(label: &str) -> Vec<String> {
    let mut out = vec![label.to_string()];
    if label.split_whitespace().count() < 2 {
        return out;
    }
    for (long, shorts) in ABBREVIATIONS {
        let padded = format!(" {label} ");
        let Some(at) = padded.find(&format!(" {long} ")) else {
            continue;
        };
        for short in *shorts {
            let mut v = padded.clone();
            v.replace_range(at + 1..at + 1 + long.len(), short);
            out.push(v.trim().to_string());
        }
    }
    out
}

fn strings(v: &Value, ptr: &str) -> Result<Vec<String>, SchemaError> {
    let list = v
        .as_array()
        .ok_or_else(|| err(ptr, "expected a list of strings"))?;
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.as_str()
                .map(str::to_string)
                .ok_or_else(|| err(&pointer_join(ptr, &i.to_string()), "expected a string"))
        })
        .collect()
}

/// Compile `pattern` as the validator would, so that a bad regex is refused
/// at load time with its place.
fn check_regex(p: &str, ptr: &str) -> Result<(), SchemaError> {
    jsonschema::validator_for(&serde_json::json!({"type": "string", "pattern": p}))
        .map(|_| ())
        .map_err(|e| err(ptr, format!("not a valid regular expression: {e}")))
}

/// Read hint `key` (one of [`KEYS`]) with value `v` at `ptr` into `h`;
/// `number`: whether the field is a JSON Schema `number`.
pub(crate) fn read(
    h: &mut Hints,
    key: &str,
    v: &Value,
    ptr: &str,
    number: bool,
) -> Result<(), SchemaError> {
    match key {
        "labels" => h.labels = strings(v, ptr)?,
        "exclude" => h.exclude = strings(v, ptr)?,
        "stop" => h.stop = strings(v, ptr)?,
        "keywords" => h.keywords = strings(v, ptr)?,
        "pattern" | "skip" | "strip" | "start" => {
            let p = v
                .as_str()
                .ok_or_else(|| err(ptr, "expected a regular expression string"))?;
            check_regex(p, ptr)?;
            let slot = match key {
                "pattern" => &mut h.pattern,
                "skip" => &mut h.skip,
                "start" => &mut h.start,
                _ => &mut h.strip,
            };
            *slot = Some(p.to_string());
        }
        "pick" => {
            h.pick = match v.as_str() {
                Some("best") => Pick::Best,
                Some("largest") => Pick::Largest,
                Some("first") => Pick::First,
                Some("last") => Pick::Last,
                Some("top") => Pick::Top,
                Some("bottom") => Pick::Bottom,
                _ => {
                    return Err(err(
                        ptr,
                        "expected one of best, largest, first, last, top, bottom",
                    ))
                }
            }
        }
        "position" => {
            h.position = match v.as_str() {
                Some("top") => Some(Position::Top),
                _ => return Err(err(ptr, "expected `top`")),
            }
        }
        "after" => {
            h.after = Some(
                v.as_str()
                    .ok_or_else(|| err(ptr, "expected a field name"))?
                    .to_string(),
            )
        }
        "rounding" => {
            if !number {
                return Err(err(ptr, "`rounding` applies to `number` fields only"));
            }
            h.rounding = match v.as_f64() {
                Some(step) if step > 0.0 && step.is_finite() => Some(step),
                _ => return Err(err(ptr, "expected a positive number, e.g. 0.05")),
            }
        }
        "lines" => match (v.as_u64(), v.as_str()) {
            (Some(n @ 1..=20), _) => h.lines = n as usize,
            (_, Some("block")) => {
                h.block = true;
                h.lines = 20;
            }
            _ => return Err(err(ptr, "expected an integer from 1 to 20, or \"block\"")),
        },
        "kind" => {
            h.kind = Some(match v.as_str() {
                Some("currency") => Kind::Currency,
                Some("address") => Kind::Address,
                Some("duration") => Kind::Duration,
                _ => return Err(err(ptr, "expected `currency`, `address` or `duration`")),
            })
        }
        "separator" => {
            h.separator = v
                .as_str()
                .ok_or_else(|| err(ptr, "expected a string"))?
                .to_string()
        }
        other => return Err(err(ptr, format!("`{other}` is not a layout hint"))),
    }
    Ok(())
}

/// Check the hints of one field together; `hptr` points at its `x-docpipe`.
pub(crate) fn check(h: &Hints, hptr: &str) -> Result<(), SchemaError> {
    if h.position.is_some() && h.after.is_some() {
        return Err(err(
            &pointer_join(hptr, "after"),
            "`position` and `after` exclude each other",
        ));
    }
    Ok(())
}

/// One top-level field as the `after` checks see it: name, JSON Pointer of
/// its schema, hints.
pub(crate) type Named<'a> = (&'a str, &'a str, &'a Hints);

fn after_ptr(field_ptr: &str) -> String {
    pointer_join(&pointer_join(field_ptr, "x-docpipe"), "after")
}

/// `field`'s `after` names another top-level field of `all`.
pub(crate) fn check_after_target(field: Named<'_>, all: &[Named<'_>]) -> Result<(), SchemaError> {
    let (name, ptr, h) = field;
    let Some(after) = &h.after else {
        return Ok(());
    };
    match all.iter().find(|(n, _, _)| n == after) {
        None => Err(err(
            &after_ptr(ptr),
            format!("no top-level field `{after}`"),
        )),
        Some((n, _, _)) if *n == name => Err(err(&after_ptr(ptr), "a field cannot follow itself")),
        Some(_) => Ok(()),
    }
}

/// No chain of `after` hints comes back to where it started.
pub(crate) fn check_after_cycles(all: &[Named<'_>]) -> Result<(), SchemaError> {
    for &(name, ptr, h) in all {
        let mut seen = BTreeSet::new();
        let (mut cur, mut cur_h) = (name, h);
        while let Some(next) = &cur_h.after {
            if !seen.insert(cur) {
                return Err(err(&after_ptr(ptr), "`after` hints form a cycle"));
            }
            match all.iter().find(|(n, _, _)| n == next) {
                Some((n, _, g)) => (cur, cur_h) = (n, g),
                None => break,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hints(pairs: &[(&str, Value)], number: bool) -> Result<Hints, SchemaError> {
        let mut h = Hints::default();
        for (k, v) in pairs {
            read(&mut h, k, v, &format!("/x-docpipe/{k}"), number)?;
        }
        check(&h, "/x-docpipe")?;
        Ok(h)
    }

    #[test]
    fn labels_come_from_hints_title_name_and_quotes() {
        let h = hints(&[("labels", json!(["Grand Total"]))], true).unwrap();
        assert_eq!(
            h.labels(
                "total_amount",
                Some("Total"),
                Some("Also printed as \"Amount due\".")
            ),
            [
                "total amount",
                "grand total",
                "amount due",
                "total amt.",
                "total amt",
                "total"
            ]
        );
        let top = hints(&[("position", json!("top"))], false).unwrap();
        assert!(top.labels("company", Some("Company"), None).is_empty());
        assert_eq!(
            top.labels("company", None, Some("the \"Seller\"")),
            ["seller"]
        );
    }

    #[test]
    fn values_are_checked() {
        struct Case {
            pairs: Vec<(&'static str, Value)>,
            number: bool,
            pointer: &'static str,
            contains: &'static str,
        }
        let cases = [
            Case {
                pairs: vec![("labels", json!("x"))],
                number: false,
                pointer: "/x-docpipe/labels",
                contains: "list of strings",
            },
            Case {
                pairs: vec![("stop", json!(["a", 1]))],
                number: false,
                pointer: "/x-docpipe/stop/1",
                contains: "a string",
            },
            Case {
                pairs: vec![("skip", json!("(["))],
                number: false,
                pointer: "/x-docpipe/skip",
                contains: "regular expression",
            },
            Case {
                pairs: vec![("pick", json!("middle"))],
                number: false,
                pointer: "/x-docpipe/pick",
                contains: "largest",
            },
            Case {
                pairs: vec![("rounding", json!(0.05))],
                number: false,
                pointer: "/x-docpipe/rounding",
                contains: "`number` fields only",
            },
            Case {
                pairs: vec![("rounding", json!(-1))],
                number: true,
                pointer: "/x-docpipe/rounding",
                contains: "positive",
            },
            Case {
                pairs: vec![("lines", json!(21))],
                number: false,
                pointer: "/x-docpipe/lines",
                contains: "1 to 20",
            },
            Case {
                pairs: vec![("position", json!("top")), ("after", json!("a"))],
                number: false,
                pointer: "/x-docpipe/after",
                contains: "exclude each other",
            },
        ];
        for c in cases {
            let e = hints(&c.pairs, c.number).expect_err(&format!("accepted {:?}", c.pairs));
            assert_eq!(e.pointer, c.pointer, "{:?} -> {e}", c.pairs);
            assert!(e.message.contains(c.contains), "{:?} -> {e}", c.pairs);
        }
        let h = hints(
            &[
                ("pick", json!("bottom")),
                ("lines", json!(3)),
                ("rounding", json!(0.05)),
            ],
            true,
        )
        .unwrap();
        assert_eq!((h.pick, h.lines, h.rounding), (Pick::Bottom, 3, Some(0.05)));
        assert_eq!(Hints::default().lines, 1);
    }

    #[test]
    fn after_chains_are_checked() {
        let after = |a: &str| Hints {
            after: Some(a.to_string()),
            ..Hints::default()
        };
        let (a, b, c, none) = (after("b"), after("a"), after("c"), Hints::default());
        let cycle = [("a", "/properties/a", &a), ("b", "/properties/b", &b)];
        assert!(check_after_target(cycle[0], &cycle).is_ok());
        let e = check_after_cycles(&cycle).unwrap_err();
        assert_eq!(e.pointer, "/properties/a/x-docpipe/after");
        let own = [("c", "/properties/c", &c)];
        let e = check_after_target(own[0], &own).unwrap_err();
        assert!(e.message.contains("itself"), "{e}");
        let missing = [("a", "/properties/a", &a), ("z", "/properties/z", &none)];
        let e = check_after_target(missing[0], &missing).unwrap_err();
        assert!(e.message.contains("no top-level field `b`"), "{e}");
        let chain = [("b", "/properties/b", &b), ("a", "/properties/a", &none)];
        assert!(check_after_cycles(&chain).is_ok());
    }
}
