//! Cues that a `position: top` row names the document's issuer (the seller
//! of an invoice, the shop of a receipt), beyond its rank and keywords.
//!
//! General rules, never a dataset's names. A candidate row's score is
//! multiplied by `1 + bonus` (the bonus capped at [`MAX_BONUS`]), where the
//! bonus adds up:
//!
//! - **letterhead** ([`SIZE_BONUS`] at most): the row is the largest text of
//!   the candidate rows (within 90 % of the largest) and at least 1.25 times
//!   the page's median line; the font size of the text layer, else the box
//!   height (OCR). `0.5 × min(ratio − 1, 1)`; bold on a page that is not
//!   mostly bold adds [`BOLD_BONUS`];
//! - **domain** ([`DOMAIN_BONUS`]): the row's words spell an e-mail or web
//!   domain printed on the document (`info@acme-tools.com` supports
//!   `ACME Tools GmbH`; `aws.amazon.com` supports `Amazon Web Services`; the
//!   initials count too);
//! - **registration** ([`ID_BONUS`]): the row sits just above, or to the
//!   left on the same row of, a line with a VAT / tax / registration number
//!   or a bank account (`VAT`, `IBAN`, `KvK`, `GSTIN`, ...), or (in a text
//!   layer) heads the left-aligned block that holds such a line, or its text is repeated
//!   before such a number elsewhere;
//! - **label** ([`LABEL_BONUS`]): the row is the one below a `From` /
//!   `Seller` / `Supplier` / `Vendor` / `Issued by` label standing on its
//!   own; a row that is nothing but such a label is multiplied by
//!   [`LABEL_ONLY`] instead (it names no one);
//! - **footer** ([`FOOTER_BONUS`]): the row's text is repeated in the last
//!   lines of a page (a company footer).
//!
//! A row whose letters are all lower case (handwriting, a slogan, a web
//! address: a printed name has capitals) is then multiplied by
//! [`LOWER_CASE`].
//!
//! The weights were set by hand so that a letterhead twice the body size
//! outranks a keyword row three rows below it (`0.6 × 1.5 > 0.9³`); they
//! were not tuned on any corpus's names.

use super::text::{find_label, letters, words, L};
use crate::types::BBox;

pub const SIZE_BONUS: f32 = 0.5;
pub const BOLD_BONUS: f32 = 0.1;
pub const DOMAIN_BONUS: f32 = 0.4;
pub const ID_BONUS: f32 = 0.3;
pub const LABEL_BONUS: f32 = 0.6;
pub const FOOTER_BONUS: f32 = 0.3;
pub const MAX_BONUS: f32 = 1.0;
pub const LABEL_ONLY: f32 = 0.3;
pub const LOWER_CASE: f32 = 0.5;

/// Labels that introduce the issuer, lower case.
const SELLER_LABELS: &[&str] = &[
    "from",
    "seller",
    "supplier",
    "vendor",
    "issued by",
    "sold by",
    "bill from",
    "invoice from",
    "verkäufer",
    "lieferant",
    "fournisseur",
    "vendeur",
    "leverancier",
    "sprzedawca",
];

/// Words that introduce a seller's tax, registration or bank number.
const ID_WORDS: &[&str] = &[
    "vat",
    "vat no",
    "vat reg",
    "tax id",
    "tax no",
    "gst",
    "gstin",
    "ust-id",
    "ust-idnr",
    "ustid",
    "uid",
    "btw",
    "tva",
    "nip",
    "siret",
    "siren",
    "kvk",
    "coc",
    "company no",
    "company number",
    "registration no",
    "registration number",
    "reg no",
    "reg. no",
    "iban",
    "bic",
    "swift",
    "abn",
];

/// Mail and hosting domains that say nothing of the sender.
const GENERIC_DOMAINS: &[&str] = &[
    "gmail",
    "googlemail",
    "yahoo",
    "hotmail",
    "outlook",
    "live",
    "icloud",
    "gmx",
    "aol",
    "mail",
];

/// The name part of the domains of e-mail addresses and web addresses in
/// `text` (`info@acme-tools.co.uk` → `acmetools`).
pub fn domains(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for tok in text.split_whitespace() {
        let t = tok.to_lowercase();
        let host = if let Some((_, h)) = t.split_once('@') {
            h.to_string()
        } else if let Some((_, h)) = t.split_once("://") {
            h.to_string()
        } else if t.starts_with("www.") {
            t.clone()
        } else {
            continue;
        };
        let host: String = host
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '.' || *c == '-')
            .collect();
        let mut parts: Vec<&str> = host.split('.').filter(|p| !p.is_empty()).collect();
        if parts.len() < 2 {
            continue;
        }
        parts.pop(); // the top-level domain
        if parts.len() > 1
            && ["co", "com", "org", "net", "ac", "gov", "or", "ne"]
                .contains(parts.last().unwrap_or(&""))
        {
            parts.pop();
        }
        let Some(name) = parts.last() else { continue };
        let name: String = name.chars().filter(|c| c.is_alphanumeric()).collect();
        if name.len() >= 2 && name != "www" && !GENERIC_DOMAINS.contains(&name.as_str()) {
            out.push(name);
        }
    }
    out
}

/// The words of a name spell `domain`: their first words run together, the
/// first word and the domain begin one another (4 letters at least), or
/// their initials (3 at least).
pub fn name_matches_domain(name: &str, domain: &str) -> bool {
    let w = words(name);
    if w.is_empty() || domain.is_empty() {
        return false;
    }
    let mut joined = String::new();
    for x in &w {
        joined.push_str(x);
        if joined == domain {
            return true;
        }
        if joined.len() > domain.len() {
            break;
        }
    }
    let first = &w[0];
    if first.len() >= 4
        && domain.len() >= 4
        && (domain.starts_with(first.as_str()) || first.starts_with(domain))
    {
        return true;
    }
    let initials: String = w.iter().filter_map(|x| x.chars().next()).collect();
    domain.len() >= 3 && initials.starts_with(domain)
}

fn has_any(lower: &str, terms: &[&str]) -> bool {
    terms.iter().any(|t| find_label(lower, t).is_some())
}

/// The row is a seller label and nothing else (`From:`, `Supplier`).
pub fn is_label_only(lower: &str) -> bool {
    let rest = lower.trim().trim_end_matches([':', '.', ' ']);
    SELLER_LABELS.contains(&rest)
}

fn union(ls: &[&L]) -> Option<BBox> {
    let first = ls.first()?;
    Some(ls.iter().fold(first.bbox, |b, l| b.union(&l.bbox)))
}

fn median(mut v: Vec<f32>) -> Option<f32> {
    v.retain(|x| x.is_finite() && *x > 0.0);
    v.sort_by(f32::total_cmp);
    v.get(v.len() / 2).copied()
}

/// The lines (reading-order indices) of the block that starts under box
/// `b`: left-aligned with it (within one line height), each within two line
/// heights of the one above, at most [`BLOCK_LINES`].
fn block_below(on_page: &[&L], b: BBox) -> Vec<usize> {
    const BLOCK_LINES: usize = 12;
    let h = b.height().max(1.0);
    let mut col: Vec<&&L> = on_page
        .iter()
        .filter(|l| (l.bbox.x0 - b.x0).abs() <= h && l.bbox.y0 >= b.y1 - 0.25 * h)
        .collect();
    col.sort_by(|x, y| x.bbox.y0.total_cmp(&y.bbox.y0));
    let mut out = Vec::new();
    let mut bottom = b.y1;
    for l in col {
        if l.bbox.y0 - bottom > 2.0 * h || out.len() >= BLOCK_LINES {
            break;
        }
        out.push(l.order);
        bottom = bottom.max(l.bbox.y1);
    }
    out
}

/// The factor for each candidate row (its lines, of the first page) of a
/// `position: top` field, given all the document's prepared `lines`.
pub(super) fn row_factors(lines: &[L], rows: &[Vec<&L>]) -> Vec<f32> {
    let Some(page) = rows.iter().flatten().map(|l| l.page).min() else {
        return Vec::new();
    };
    let on_page: Vec<&L> = lines.iter().filter(|l| l.page == page).collect();
    // Size: font sizes when every line of the page has one, else heights.
    let by_font = !on_page.is_empty() && on_page.iter().all(|l| l.font_size.is_some());
    let size = |l: &L| {
        if by_font {
            l.font_size.unwrap_or(0.0)
        } else {
            l.bbox.height()
        }
    };
    let median_size = median(on_page.iter().map(|l| size(l)).collect()).unwrap_or(0.0);
    let row_size = |r: &Vec<&L>| r.iter().map(|l| size(l)).fold(0.0f32, f32::max);
    let largest = rows.iter().map(row_size).fold(0.0f32, f32::max);
    let mostly_bold = 2 * on_page.iter().filter(|l| l.bold).count() > on_page.len();
    let doc_domains: Vec<String> = lines.iter().flat_map(|l| domains(&l.text)).collect();
    let id_lines: Vec<&L> = lines
        .iter()
        .filter(|l| has_any(&l.lower, ID_WORDS))
        .collect();
    // Texts printed before an ID word on its own line (`ACME Ltd, VAT ...`).
    let id_names: Vec<String> = id_lines
        .iter()
        .filter_map(|l| {
            let cut = ID_WORDS
                .iter()
                .filter_map(|t| find_label(&l.lower, t).map(|(s, _)| s))
                .min()?;
            let before = l.lower[..cut].trim();
            (letters(before) >= 4).then(|| words(before).join(" "))
        })
        .collect();
    // The last three lines of each page.
    let mut footers: Vec<&L> = Vec::new();
    let mut pages: Vec<u32> = lines.iter().map(|l| l.page).collect();
    pages.dedup();
    for p in pages {
        let mut ls: Vec<&L> = lines.iter().filter(|l| l.page == p).collect();
        let top = ls.iter().map(|l| l.bbox.y0).fold(f32::INFINITY, f32::min);
        let bottom = ls
            .iter()
            .map(|l| l.bbox.y1)
            .fold(f32::NEG_INFINITY, f32::max);
        // In the bottom quarter of the page's text.
        let floor = top + 0.75 * (bottom - top);
        ls.retain(|l| l.bbox.y0 >= floor);
        ls.sort_by(|a, b| b.bbox.y1.total_cmp(&a.bbox.y1));
        footers.extend(ls.into_iter().take(3));
    }
    let label_rows: Vec<BBox> = on_page
        .iter()
        .filter(|l| is_label_only(&l.lower))
        .map(|l| l.bbox)
        .collect();

    rows.iter()
        .map(|r| {
            let Some(b) = union(r) else { return 1.0 };
            let text = r
                .iter()
                .map(|l| l.lower.trim())
                .collect::<Vec<_>>()
                .join(" ");
            if is_label_only(&text) {
                return LABEL_ONLY;
            }
            let h = b.height().max(1.0);
            let mut bonus = 0.0;
            // Letterhead.
            let s = row_size(r);
            if median_size > 0.0 && s >= 0.9 * largest {
                let ratio = s / median_size;
                if ratio >= 1.25 {
                    bonus += SIZE_BONUS * (ratio - 1.0).min(1.0);
                }
            }
            if !mostly_bold && r.iter().all(|l| l.bold) {
                bonus += BOLD_BONUS;
            }
            // Domain.
            if doc_domains.iter().any(|d| name_matches_domain(&text, d)) {
                bonus += DOMAIN_BONUS;
            }
            // Registration: the line just below or beside, or the same name
            // before a number elsewhere.
            // A scan's lines are the detector's, a receipt one column: the
            // block reading is for text layers.
            let block = if by_font {
                block_below(&on_page, b)
            } else {
                Vec::new()
            };
            let ids_near = id_lines.iter().any(|m| {
                if m.page != page || r.iter().any(|l| l.order == m.order) {
                    return false;
                }
                let overlap_x = m.bbox.x1.min(b.x1) > m.bbox.x0.max(b.x0);
                let below = m.bbox.y0 >= b.y1 - 0.25 * h && m.bbox.y0 <= b.y1 + 1.5 * h;
                let beside = super::text::vertical_overlap(&m.bbox, &b) >= 0.5 && m.bbox.x0 >= b.x1;
                let in_block = block.contains(&m.order);
                (overlap_x && below) || beside || in_block
            });
            let joined = words(&text).join(" ");
            let named = letters(&joined) >= 4 && id_names.iter().any(|n| n.starts_with(&joined));
            if ids_near || named {
                bonus += ID_BONUS;
            }
            // Label above.
            if label_rows.iter().any(|lb| {
                b.y0 >= lb.y1 - 0.25 * h
                    && b.y0 <= lb.y1 + 1.5 * h
                    && b.x1.min(lb.x1 + 2.0 * h) > b.x0.max(lb.x0 - h)
            }) {
                bonus += LABEL_BONUS;
            }
            // Footer.
            let short = joined.split(' ').count() <= 6 && letters(&joined) >= 4;
            if short
                && footers.iter().any(|f| {
                    !r.iter().any(|l| l.order == f.order)
                        && find_label(&words(&f.text).join(" "), &joined).is_some()
                })
            {
                bonus += FOOTER_BONUS;
            }
            // A name printed at the head of a document has capitals; a
            // row of lower-case letters only is handwriting, a slogan or a
            // web address.
            let raw: String = r.iter().map(|l| l.text.as_str()).collect();
            let lower_only = letters(&raw) > 0 && !raw.chars().any(char::is_uppercase);
            let case = if lower_only { LOWER_CASE } else { 1.0 };
            (1.0 + f32::min(bonus, MAX_BONUS)) * case
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::text::prepare;
    use super::super::{Line, PageLines};
    use super::*;

    /// A line at (x, y), `h` px high, 0.5·h px per character.
    fn line(text: &str, x: f32, y: f32, h: f32) -> Line {
        Line {
            text: text.into(),
            bbox: BBox {
                x0: x,
                y0: y,
                x1: x + 0.5 * h * text.chars().count() as f32,
                y1: y + h,
            },
            confidence: 1.0,
            font_size: None,
            bold: false,
        }
    }

    /// The factors of each line taken as its own row, first page.
    fn factors(lines: Vec<Line>) -> Vec<f32> {
        let prepared = prepare(&[PageLines {
            page: 0,
            width: 1000.0,
            height: 1400.0,
            lines,
        }]);
        let rows: Vec<Vec<&L>> = prepared.iter().map(|l| vec![l]).collect();
        row_factors(&prepared, &rows)
    }

    #[test]
    fn domains_of_mail_and_web_addresses() {
        struct Case {
            text: &'static str,
            want: &'static [&'static str],
        }
        for c in [
            Case {
                text: "E-mail: info@acme-tools.com",
                want: &["acmetools"],
            },
            Case {
                text: "www.northwind.co.uk | Tel 123",
                want: &["northwind"],
            },
            Case {
                text: "https://aws.amazon.com/billing",
                want: &["amazon"],
            },
            Case {
                text: "jane.doe@gmail.com",
                want: &[],
            },
            Case {
                text: "ACME B.V. Total 12.00",
                want: &[],
            },
        ] {
            assert_eq!(domains(c.text), c.want, "{}", c.text);
        }
    }

    #[test]
    fn names_that_spell_a_domain() {
        assert!(name_matches_domain("ACME Tools GmbH", "acmetools"));
        assert!(name_matches_domain("Northwind Traders Ltd", "northwind"));
        assert!(name_matches_domain("Amazon Web Services", "amazon"));
        assert!(name_matches_domain("Foo Bar Consulting", "fbc"));
        assert!(!name_matches_domain("Bill to: Jane Doe", "acmetools"));
        assert!(!name_matches_domain("Invoice date 2024-01-01", "acmetools"));
    }

    #[test]
    fn a_name_matching_the_mail_domain_is_favoured() {
        let f = factors(vec![
            line("Invoice date: 2024-03-14", 50.0, 40.0, 20.0),
            line("ACME Tools GmbH", 50.0, 70.0, 20.0),
            line("Jane Doe", 500.0, 70.0, 20.0),
            line("Questions? info@acme-tools.com", 50.0, 900.0, 20.0),
        ]);
        assert_eq!(f[0], 1.0);
        assert!(f[1] > 1.3, "{f:?}");
        assert_eq!(f[2], 1.0);
    }

    #[test]
    fn the_block_above_a_vat_number_is_favoured() {
        let f = factors(vec![
            line("Northwind Traders", 50.0, 40.0, 20.0),
            line("VAT No: GB123456789", 50.0, 62.0, 20.0),
            line("Customer Ltd", 600.0, 200.0, 20.0),
            line("12 High Street", 600.0, 222.0, 20.0),
        ]);
        assert!(f[0] > 1.2, "{f:?}");
        assert_eq!(f[2], 1.0, "{f:?}");
    }

    #[test]
    fn a_seller_label_points_below_and_names_no_one_itself() {
        let f = factors(vec![
            line("From:", 50.0, 100.0, 20.0),
            line("Globex Corporation", 50.0, 122.0, 20.0),
            line("Bill to:", 500.0, 100.0, 20.0),
            line("Initech", 500.0, 122.0, 20.0),
        ]);
        // Reading order: the label row, then the names row.
        assert_eq!(f[0], LABEL_ONLY);
        assert_eq!(f[1], 1.0, "`Bill to` names the buyer: {f:?}");
        assert!(f[2] > 1.5, "{f:?}");
        assert_eq!(f[3], 1.0, "{f:?}");
    }

    #[test]
    fn the_largest_text_and_a_footer_repeat_are_favoured() {
        let mut lines = vec![
            line("Date 2024-03-14", 50.0, 20.0, 12.0),
            line("Globex", 50.0, 40.0, 30.0),
            line("Item one 12.00", 50.0, 300.0, 12.0),
            line("Item two 3.00", 50.0, 320.0, 12.0),
            line("Globex · 1 Main St · Springfield", 50.0, 1300.0, 12.0),
        ];
        let f = factors(lines.clone());
        // Twice the median height: the full size bonus; plus the footer.
        assert!(
            (f[1] - (1.0 + SIZE_BONUS + FOOTER_BONUS)).abs() < 1e-4,
            "{f:?}"
        );
        assert_eq!(f[0], 1.0);
        // With a text layer the font size decides, not the box.
        for (l, size) in lines.iter_mut().zip([9.0, 9.0, 9.0, 9.0, 9.0]) {
            l.font_size = Some(size);
        }
        let f = factors(lines);
        assert!(f[1] < 1.0 + SIZE_BONUS, "{f:?}");
    }
}
