//! Currencies: the ISO 4217 codes, the symbols that print them, and which
//! code an ambiguous symbol (`$`, `¥`, `kr`, `Rs`) means on a given page.
//!
//! A symbol that only one currency uses (`€`, `£`, `₹`, `zł`, `RM`) gives its
//! code. One that several use is resolved from the rest of the document's
//! [`Evidence`]: ISO codes printed on it, a country named, a company legal
//! form used in one country (`Sdn. Bhd.`, `Pty Ltd`), a phone country code, a
//! web or e-mail domain's country, a national tax id, a postcode in a
//! country's format, the script. The code with the most cues among the
//! symbol's candidates wins; with no cue, or a tie, the symbol gives nothing:
//! a `$` is never taken to be dollars of one country by default.

use std::collections::BTreeMap;

use super::{tokenize, Kind, Tok};

/// The active ISO 4217 alphabetic codes (2024 list, funds and metals left out).
pub const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Codes that are also everyday upper-case words (`ALL`, `TOP`, `PEN`) or
/// company forms (`BHD`, Berhad): they count as a currency only next to a
/// number.
const WORDLIKE: &[&str] = &[
    "ALL", "AMD", "ANG", "BAM", "BOB", "CUP", "GEL", "MAD", "MOP", "NAD", "PEN", "SOS", "TOP",
    "TRY", "ERN", "CAD", "PAB", "SAR", "SCR", "SRD", "YER", "BHD",
];

/// Whether `code` is an active ISO 4217 code (upper-case).
pub fn is_iso_code(code: &str) -> bool {
    ISO_4217.binary_search(&code).is_ok()
}

/// Symbols and the codes they may mean, matched on the lower-cased text.
/// Prefixed dollars (`US$`, `A$`) are read as one symbol.
const SYMBOLS: &[(&str, &[&str])] = &[
    ("€", &["EUR"]),
    ("£", &["GBP"]),
    ("₹", &["INR"]),
    ("zł", &["PLN"]),
    ("zl", &["PLN"]),
    ("rm", &["MYR"]),
    ("₩", &["KRW"]),
    ("₽", &["RUB"]),
    ("₺", &["TRY"]),
    ("₪", &["ILS"]),
    ("฿", &["THB"]),
    ("₫", &["VND"]),
    ("₱", &["PHP"]),
    ("₴", &["UAH"]),
    ("₦", &["NGN"]),
    ("kč", &["CZK"]),
    ("ft", &["HUF"]),
    ("lei", &["RON"]),
    ("rp", &["IDR"]),
    ("円", &["JPY"]),
    ("元", &["CNY"]),
    ("fr", &["CHF"]),
    ("sfr", &["CHF"]),
    ("us$", &["USD"]),
    ("a$", &["AUD"]),
    ("au$", &["AUD"]),
    ("c$", &["CAD"]),
    ("ca$", &["CAD"]),
    ("nz$", &["NZD"]),
    ("s$", &["SGD"]),
    ("sg$", &["SGD"]),
    ("hk$", &["HKD"]),
    ("r$", &["BRL"]),
    ("mx$", &["MXN"]),
    ("nt$", &["TWD"]),
    (
        "$",
        &[
            "USD", "CAD", "AUD", "NZD", "SGD", "HKD", "MXN", "TWD", "ARS", "CLP", "COP",
        ],
    ),
    ("¥", &["JPY", "CNY"]),
    ("￥", &["JPY", "CNY"]),
    ("kr", &["SEK", "NOK", "DKK", "ISK"]),
    ("rs", &["INR", "PKR", "LKR", "NPR"]),
];

/// The codes a symbol (lower-case, as [`Mention::symbol`]) may mean.
pub fn symbol_codes(symbol: &str) -> Option<&'static [&'static str]> {
    SYMBOLS.iter().find(|(s, _)| *s == symbol).map(|(_, c)| *c)
}

/// One currency mention in a text: the codes it may mean (one for a code
/// or an unambiguous symbol) and the symbol as matched (lower-case), or
/// `None` when the code itself was printed.
#[derive(Clone, Debug, PartialEq)]
pub struct Mention {
    pub codes: &'static [&'static str],
    pub symbol: Option<&'static str>,
}

fn near_num(t: &[Tok], first: usize, last: usize) -> bool {
    t.get(last + 1).is_some_and(|n| n.kind == Kind::Num)
        || first.checked_sub(1).is_some_and(|p| t[p].kind == Kind::Num)
        || (first >= 2 && t[first - 1].text == "-" && t[first - 2].kind == Kind::Num)
        || t.get(last + 2)
            .is_some_and(|n| t[last + 1].text == "-" && n.kind == Kind::Num)
}

/// Whether tokens `first..=last` stand alone or glued to one number only,
/// not inside a longer run of letters and digits.
fn alone_or_by_number(t: &[Tok], first: usize, last: usize) -> bool {
    let alnum = |x: &Tok| x.kind != Kind::Sym;
    let mut a = first;
    while a > 0 && !t[a].space_before && alnum(&t[a - 1]) {
        a -= 1;
    }
    let mut b = last;
    while b + 1 < t.len() && !t[b + 1].space_before && alnum(&t[b + 1]) {
        b += 1;
    }
    let others: Vec<&Tok> = t[a..first].iter().chain(&t[last + 1..=b]).collect();
    match others.as_slice() {
        [] => true,
        [one] => one.kind == Kind::Num,
        _ => false,
    }
}

/// Every currency mention in `text`, left to right, with its byte span:
/// ISO codes written in capitals (word-bounded; a code that is also a word
/// only next to a number) and symbols of a currency next to a number
/// (`$ 12`, `12 €`, `12,00 kr`), so that a stray `$` or the word "Rs" in a
/// name does not count; a symbol or code that is the whole text (a column
/// header `RM`) counts too.
pub fn find_mentions(text: &str) -> Vec<super::Found<Mention>> {
    let t = tokenize(text);
    let mut out = Vec::new();
    let mut k = 0;
    while k < t.len() {
        let tok = &t[k];
        // `US$`, `A$`: a short word glued to a dollar sign.
        let glued_dollar = tok.kind == Kind::Word
            && t.get(k + 1)
                .is_some_and(|n| n.text == "$" && !n.space_before);
        let (key, last) = if glued_dollar {
            (format!("{}$", tok.text), k + 1)
        } else {
            (tok.text.clone(), k)
        };
        let raw = &text[tok.start..t[last].end];
        let sym = SYMBOLS.iter().find(|(s, _)| *s == key);
        let code = (tok.kind == Kind::Word && !glued_dollar && raw.len() == 3)
            .then(|| ISO_4217.iter().find(|c| **c == raw))
            .flatten();
        // Inside an id (`HELADEF1GEL`, `X1RM`) a code or a symbol word is
        // no currency; glued to a number alone (`EUR12`, `RM9.00`) it is.
        if tok.kind == Kind::Word && !alone_or_by_number(&t, k, last) {
            k = last + 1;
            continue;
        }
        // A symbol or code alone on its line heads a column of amounts.
        let money = near_num(&t, k, last) || (k == 0 && last + 1 == t.len());
        let m = match (code, sym) {
            (Some(c), _) if !WORDLIKE.contains(c) || money => Some(Mention {
                codes: std::slice::from_ref(c),
                symbol: None,
            }),
            (_, Some((s, codes))) if money => Some(Mention {
                codes,
                symbol: Some(s),
            }),
            _ => None,
        };
        if let Some(value) = m {
            out.push(super::Found {
                value,
                start: tok.start,
                end: t[last].end,
            });
        }
        k = last + 1;
    }
    out
}

/// Cues to the country whose currency a document uses: per code, how many.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evidence {
    votes: BTreeMap<&'static str, u32>,
}

/// Country names (lower-case, whole words) and their currency.
const COUNTRIES: &[(&str, &str)] = &[
    ("united states", "USD"),
    ("usa", "USD"),
    ("u.s.a", "USD"),
    ("canada", "CAD"),
    ("australia", "AUD"),
    ("new zealand", "NZD"),
    ("singapore", "SGD"),
    ("hong kong", "HKD"),
    ("mexico", "MXN"),
    ("méxico", "MXN"),
    ("taiwan", "TWD"),
    ("argentina", "ARS"),
    ("chile", "CLP"),
    ("colombia", "COP"),
    ("japan", "JPY"),
    ("china", "CNY"),
    ("p.r. china", "CNY"),
    ("sweden", "SEK"),
    ("sverige", "SEK"),
    ("norway", "NOK"),
    ("norge", "NOK"),
    ("denmark", "DKK"),
    ("danmark", "DKK"),
    ("iceland", "ISK"),
    ("india", "INR"),
    ("pakistan", "PKR"),
    ("sri lanka", "LKR"),
    ("nepal", "NPR"),
];

/// Company legal forms used in one country (dots dropped, lower-case):
/// `Sdn. Bhd.` is Malaysian, `Pty Ltd` Australian, `Pvt. Ltd.` Indian,
/// `B.V.` Dutch, `Sp. z o.o.` Polish, `Kft.` Hungarian.
const LEGAL_FORMS: &[(&str, &str)] = &[
    ("sdn bhd", "MYR"),
    ("pty ltd", "AUD"),
    ("pvt ltd", "INR"),
    ("bv", "EUR"),
    ("sp z oo", "PLN"),
    ("kft", "HUF"),
];

/// Phone country codes (`+61 2 …`) and their currency; `+1` is shared.
const PHONE: &[(&str, &[&str])] = &[
    ("1", &["USD", "CAD"]),
    ("61", &["AUD"]),
    ("64", &["NZD"]),
    ("65", &["SGD"]),
    ("852", &["HKD"]),
    ("52", &["MXN"]),
    ("886", &["TWD"]),
    ("54", &["ARS"]),
    ("56", &["CLP"]),
    ("57", &["COP"]),
    ("81", &["JPY"]),
    ("86", &["CNY"]),
    ("46", &["SEK"]),
    ("47", &["NOK"]),
    ("45", &["DKK"]),
    ("354", &["ISK"]),
    ("91", &["INR"]),
    ("92", &["PKR"]),
    ("94", &["LKR"]),
    ("977", &["NPR"]),
];

/// Country-code top-level domains (`shop.com.au`, `x@y.se`).
const DOMAINS: &[(&str, &str)] = &[
    ("us", "USD"),
    ("ca", "CAD"),
    ("au", "AUD"),
    ("nz", "NZD"),
    ("sg", "SGD"),
    ("hk", "HKD"),
    ("mx", "MXN"),
    ("tw", "TWD"),
    ("ar", "ARS"),
    ("cl", "CLP"),
    ("co", "COP"),
    ("jp", "JPY"),
    ("cn", "CNY"),
    ("se", "SEK"),
    ("no", "NOK"),
    ("dk", "DKK"),
    ("is", "ISK"),
    ("in", "INR"),
    ("pk", "PKR"),
    ("lk", "LKR"),
    ("np", "NPR"),
];

/// National tax and business ids, as words that name them.
const TAX_IDS: &[(&str, &str)] = &[
    ("abn", "AUD"),
    ("acn", "AUD"),
    ("nzbn", "NZD"),
    ("ird", "NZD"),
    ("uen", "SGD"),
    ("gstin", "INR"),
    ("ntn", "PKR"),
    ("mva", "NOK"),
    ("cvr", "DKK"),
    ("hst", "CAD"),
    ("qst", "CAD"),
];

/// USPS state codes (a `ST 12345` postcode is a US address).
const US_STATES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM",
    "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA",
    "WV", "WI", "WY",
];

/// Australian states (a `ST 1234` postcode is an Australian address).
const AU_STATES: &[&str] = &["NSW", "VIC", "QLD", "WA", "SA", "TAS", "ACT", "NT"];

/// Canadian provinces (a `ST A1B 2C3` postcode is a Canadian address).
const CA_PROVINCES: &[&str] = &[
    "AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT",
];

impl Evidence {
    /// The cues in a document's lines.
    pub fn of<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut e = Self::default();
        for line in lines {
            e.add_line(line);
        }
        e
    }

    fn vote(&mut self, code: &'static str) {
        *self.votes.entry(code).or_default() += 1;
    }

    fn add_line(&mut self, line: &str) {
        for m in find_mentions(line) {
            if let [code] = m.value.codes {
                self.vote(code);
            }
        }
        let t = tokenize(line);
        let lower = line.to_lowercase();
        for (name, code) in COUNTRIES {
            if whole_word(&lower, name) {
                self.vote(code);
            }
        }
        let undotted: String = lower.chars().filter(|c| *c != '.').collect();
        for (form, code) in LEGAL_FORMS {
            if whole_word(&undotted, form) {
                self.vote(code);
            }
        }
        for (i, tok) in t.iter().enumerate() {
            let next = t.get(i + 1);
            let glued_next = next.filter(|n| !n.space_before);
            // `+61 2 9999 0000`, `(+61)`: a phone's country code.
            if tok.text == "+" {
                if let Some(n) = glued_next.filter(|n| n.kind == Kind::Num) {
                    if let Some((_, codes)) = PHONE.iter().find(|(p, _)| *p == n.text) {
                        codes.iter().for_each(|c| self.vote(c));
                    }
                }
            }
            if is_tld(&t, i) {
                if let Some((_, code)) = DOMAINS.iter().find(|(d, _)| *d == tok.text) {
                    self.vote(code);
                }
            }
            if tok.kind == Kind::Word {
                if let Some((_, code)) = TAX_IDS.iter().find(|(w, _)| *w == tok.text) {
                    // The word names an id only when a number follows.
                    if t[i + 1..].iter().take(3).any(|n| n.kind == Kind::Num) {
                        self.vote(code);
                    }
                }
                self.postcode(line, &t, i);
            }
        }
        // Kana is written only in Japanese; Han without kana is Chinese.
        let kana = line.chars().any(|c| ('\u{3040}'..='\u{30ff}').contains(&c));
        let han = line.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        if kana {
            self.vote("JPY");
        } else if han {
            self.vote("CNY");
        }
    }

    /// A state or province code in capitals followed by its country's
    /// postcode: `NY 10001`, `NSW 2000`, `ON M5V 2T6`.
    fn postcode(&mut self, line: &str, t: &[Tok], i: usize) {
        let raw = &line[t[i].start..t[i].end];
        let Some(n) = t.get(i + 1).filter(|n| n.space_before) else {
            return;
        };
        let digits = |len: usize| n.kind == Kind::Num && n.text.len() == len;
        let after_ok = t.get(i + 2).is_none_or(|a| a.space_before || a.text != ".");
        if US_STATES.contains(&raw) && digits(5) && after_ok {
            self.vote("USD");
        } else if AU_STATES.contains(&raw) && digits(4) && after_ok {
            self.vote("AUD");
        } else if CA_PROVINCES.contains(&raw) {
            // A1B 2C3: letter digit letter, space, digit letter digit.
            let rest: String = line[n.start..].chars().take(7).collect();
            let c: Vec<char> = rest.chars().collect();
            let ok = c.len() == 7
                && c[0].is_ascii_uppercase()
                && c[1].is_ascii_digit()
                && c[2].is_ascii_uppercase()
                && c[3] == ' '
                && c[4].is_ascii_digit()
                && c[5].is_ascii_uppercase()
                && c[6].is_ascii_digit();
            if ok {
                self.vote("CAD");
            }
        }
    }

    /// The cues for `codes`, and for every other currency.
    pub fn split(&self, codes: &[&str]) -> (u32, u32) {
        self.votes.iter().fold((0, 0), |(a, b), (c, n)| {
            if codes.contains(c) {
                (a + n, b)
            } else {
                (a, b + n)
            }
        })
    }

    /// The code a mention of `codes` (a [`Mention::codes`]) means on this
    /// document: its only code, or the one of its codes with the most cues
    /// (and among `allowed`, when given); `None` when no cue decides.
    pub fn resolve(
        &self,
        codes: &[&'static str],
        allowed: Option<&[String]>,
    ) -> Option<&'static str> {
        let ok = |c: &&str| allowed.is_none_or(|a| a.iter().any(|x| x == c));
        let codes: Vec<&'static str> = codes.iter().copied().filter(ok).collect();
        if let [only] = codes[..] {
            return Some(only);
        }
        let mut best: Option<(&'static str, u32)> = None;
        let mut tie = false;
        for c in codes {
            let n = self.votes.get(c).copied().unwrap_or(0);
            match best {
                Some((_, b)) if n == b => tie = true,
                Some((_, b)) if n < b => {}
                _ => {
                    best = Some((c, n));
                    tie = false;
                }
            }
        }
        best.filter(|(_, n)| *n > 0 && !tie).map(|(c, _)| c)
    }
}

/// Second-level labels under a country's domain (`example.com.au`).
const SECOND_LEVEL: &[&str] = &["com", "co", "org", "net", "gov", "edu", "ac", "ne", "or"];

/// Whether token `i` is the last label of a web or e-mail domain: after a
/// glued `.`, at the end of the glued run, in a run that has an `@`, starts
/// with `www` or `http`, or has a second-level label before it
/// (`x@shop.se`, `www.shop.no`, `shop.com.au`; not `Ref.No`).
fn is_tld(t: &[Tok], i: usize) -> bool {
    let tok = &t[i];
    if tok.kind != Kind::Word || i < 2 || tok.space_before {
        return false;
    }
    if t[i - 1].text != "." || t[i - 1].space_before || t[i - 2].kind != Kind::Word {
        return false;
    }
    let last = match t.get(i + 1) {
        None => true,
        Some(n) if n.space_before => true,
        Some(n) if n.text == "." => t.get(i + 2).is_none_or(|a| a.space_before),
        Some(n) => n.kind == Kind::Sym && n.text != "-",
    };
    if !last {
        return false;
    }
    let mut start = i;
    while start > 0 && !t[start].space_before {
        start -= 1;
    }
    let run = &t[start..i];
    SECOND_LEVEL.contains(&t[i - 2].text.as_str())
        || run.iter().any(|x| x.text == "@")
        || run
            .first()
            .is_some_and(|x| x.text == "www" || x.text == "http" || x.text == "https")
}

/// Whether `term` occurs in `lower` between non-alphanumeric characters.
fn whole_word(lower: &str, term: &str) -> bool {
    lower.match_indices(term).any(|(i, _)| {
        let before = lower[..i].chars().next_back();
        let after = lower[i + term.len()..].chars().next();
        before.is_none_or(|c| !c.is_alphanumeric()) && after.is_none_or(|c| !c.is_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(lines: &[&str], text: &str) -> Vec<Option<&'static str>> {
        let e = Evidence::of(lines.iter().copied());
        find_mentions(text)
            .iter()
            .map(|m| e.resolve(m.value.codes, None))
            .collect()
    }

    #[test]
    fn list_is_sorted_and_complete_enough() {
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
        for c in ["JPY", "SEK", "CNY", "AUD", "EUR", "USD", "MYR", "CHF"] {
            assert!(is_iso_code(c), "{c}");
        }
        assert!(!is_iso_code("XYZ") && !is_iso_code("usd"));
    }

    #[test]
    fn mentions_need_a_number_unless_a_plain_code() {
        let m = find_mentions("Total € 12,00 (EUR), ₹ 5, Rs name, $ sign, ALL items, 9 ALL");
        let got: Vec<(&[&str], Option<&str>)> =
            m.iter().map(|m| (m.value.codes, m.value.symbol)).collect();
        assert_eq!(
            got,
            [
                (&["EUR"][..], Some("€")),
                (&["EUR"][..], None),
                (&["INR"][..], Some("₹")),
                (&["ALL"][..], None),
            ]
        );
        assert!(find_mentions("SWIFT HELADEF1GEL, X1RM").is_empty());
        let header: Vec<&[&str]> = find_mentions(" RM ")
            .iter()
            .map(|m| m.value.codes)
            .collect();
        assert_eq!(header, [&["MYR"][..]]);
        let glued = find_mentions("US$12.00 and A$ 5 and 7 zł and EUR12");
        let codes: Vec<&[&str]> = glued.iter().map(|m| m.value.codes).collect();
        assert_eq!(codes, [&["USD"][..], &["AUD"], &["PLN"], &["EUR"]]);
    }

    #[test]
    fn ambiguous_symbols_follow_the_page_or_stay_unknown() {
        // No cue: a dollar is not guessed.
        assert_eq!(resolve(&["Total $ 12.00"], "Total $ 12.00"), [None]);
        // +1 alone is the US or Canada: still unknown.
        assert_eq!(resolve(&["Tel +1 555 0100"], "$ 12.00"), [None]);
        assert_eq!(
            resolve(&["Tel +1 555 0100", "Springfield, IL 62704"], "$ 12.00"),
            [Some("USD")]
        );
        assert_eq!(resolve(&["ABN 12 345 678 901"], "$5"), [Some("AUD")]);
        assert_eq!(resolve(&["www.example.com.au"], "$5"), [Some("AUD")]);
        assert_eq!(resolve(&["orders@shop.se"], "5 kr"), [Some("SEK")]);
        // Not domains: a short form after a dot, a UK second level.
        assert_eq!(resolve(&["Ref.No 12", "shop.co.uk"], "5 kr"), [None]);
        assert_eq!(resolve(&["Toronto ON M5V 2T6"], "$5"), [Some("CAD")]);
        assert_eq!(resolve(&["Amounts in SGD"], "$5"), [Some("SGD")]);
        assert_eq!(resolve(&["東京都渋谷区 ひかり"], "¥1,200"), [Some("JPY")]);
        assert_eq!(resolve(&["上海市 发票"], "¥1,200"), [Some("CNY")]);
        assert_eq!(
            resolve(&["Org.nr 556000-0000, Sverige"], "120 kr"),
            [Some("SEK")]
        );
        let e = Evidence::of(["RM", "Item Amount (MYR)", "Total 5.00", "Tel +1 555"]);
        assert_eq!(e.split(&["USD"]), (1, 3), "RM, MYR, +1 as CAD");
        assert_eq!(Evidence::of(["X LIMITED"]).split(&[]), (0, 0));
        assert_eq!(Evidence::of(["X SDN. BHD."]).split(&["MYR"]), (1, 0));
        // Conflicting cues tie: unknown.
        assert_eq!(resolve(&["ABN 1234", "+65 6000 0000"], "$5"), [None]);
    }

    #[test]
    fn allowed_codes_narrow_a_symbol() {
        let e = Evidence::default();
        let m = find_mentions("$ 5")[0].value.codes;
        assert_eq!(e.resolve(m, None), None);
        let allowed = ["USD".to_string(), "EUR".to_string()];
        assert_eq!(e.resolve(m, Some(&allowed)), Some("USD"));
    }
}
