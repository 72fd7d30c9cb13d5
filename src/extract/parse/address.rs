//! Where a postal address ends: at the line with its postcode, or at a
//! country name after it.
//!
//! A receipt or an invoice prints the address of the shop over a few lines
//! and then something else in the same block (a branch name, a mall, a
//! slogan). The postcode line (`47400 Petaling Jaya, Selangor`) is the
//! address's last line unless it ends with a comma (`43300 Seri Kembangan,`
//! / `Selangor`); a line that is nothing but a country name may follow it.

/// Country names (lower case) that end an address when they stand alone on
/// a line after the postcode line. A general list, in English and in the
/// country's own language where that differs.
const COUNTRIES: &[&str] = &[
    "argentina",
    "australia",
    "austria",
    "bangladesh",
    "belgique",
    "belgium",
    "belgië",
    "brasil",
    "brazil",
    "canada",
    "chile",
    "china",
    "colombia",
    "czech republic",
    "czechia",
    "danmark",
    "denmark",
    "deutschland",
    "egypt",
    "españa",
    "finland",
    "france",
    "germany",
    "greece",
    "hong kong",
    "hungary",
    "india",
    "indonesia",
    "ireland",
    "israel",
    "italia",
    "italy",
    "japan",
    "kenya",
    "korea",
    "malaysia",
    "mexico",
    "méxico",
    "nederland",
    "netherlands",
    "new zealand",
    "nigeria",
    "norge",
    "norway",
    "österreich",
    "pakistan",
    "philippines",
    "poland",
    "polska",
    "portugal",
    "saudi arabia",
    "schweiz",
    "singapore",
    "south africa",
    "spain",
    "sri lanka",
    "suisse",
    "suomi",
    "sverige",
    "sweden",
    "switzerland",
    "taiwan",
    "thailand",
    "the netherlands",
    "turkey",
    "türkiye",
    "uae",
    "uk",
    "united arab emirates",
    "united kingdom",
    "united states",
    "united states of america",
    "us",
    "usa",
    "vietnam",
    "viet nam",
];

/// The line holds a postcode: a run of 5 or 6 digits standing alone
/// (`47400`, `226010`; not part of `1851-A`, `SS21/39` or a longer
/// number), a country letter before it (`D-63571`), or 4 digits and two
/// capitals (`3012 CN`), and letters besides (the town).
pub fn has_postcode(text: &str) -> bool {
    postcode_start(text).is_some()
}

/// Where the postcode of [`has_postcode`] starts in `text` (a char index),
/// if the line holds one.
fn postcode_start(text: &str) -> Option<usize> {
    let chars: Vec<char> = text.chars().collect();
    let letters = chars.iter().filter(|c| c.is_alphabetic()).count();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let n = i - start;
        let before = start.checked_sub(1).map(|k| chars[k]);
        let after = chars.get(i).copied();
        let joined = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || "/.".contains(c));
        // `D-63571`: one capital and a hyphen before the digits.
        let country_prefix = before == Some('-')
            && start >= 2
            && chars[start - 2].is_ascii_uppercase()
            && (start < 3 || !chars[start - 3].is_alphanumeric());
        let hyphen_before = before == Some('-') && !country_prefix;
        let clean = !joined(before) && !hyphen_before && !joined(after) && after != Some('-');
        let own_letters = letters >= 3;
        // The town follows the postcode (`47400 Petaling Jaya`), or a state
        // code precedes it (`Springfield, IL 62704`).
        let town_after = chars[i..].iter().any(|c| c.is_alphabetic());
        let state_before = {
            let head: String = chars[..start].iter().collect();
            let w = head.trim_end();
            let code: String = w.chars().rev().take_while(|c| c.is_alphabetic()).collect();
            code.chars().count() == 2 && code.chars().all(|c| c.is_ascii_uppercase())
        };
        if clean && own_letters && (n == 5 || n == 6) && (town_after || state_before) {
            return Some(start);
        }
        if clean && own_letters && n == 4 {
            let rest: String = chars[i..].iter().take(3).collect();
            let r: Vec<char> = rest.chars().collect();
            if r.len() == 3
                && r[0] == ' '
                && r[1].is_ascii_uppercase()
                && r[2].is_ascii_uppercase()
                && chars.get(i + 3).is_none_or(|c| !c.is_alphanumeric())
            {
                return Some(start);
            }
        }
        if country_prefix && own_letters && (n == 4 || n == 5) && !joined(after) {
            return Some(start);
        }
    }
    None
}

/// Whether an address whose first line is `first` lacks its street: the
/// postcode is on that line and no number comes before it (no house, lot
/// or unit number: `JALAN KAPAR, 42200 KLANG` or `81750 JOHOR BAHRU`, where
/// `75, JALAN SS 22/19, 47400 PJ` is whole). The street lines above were
/// not read (passed over, or taken for something else).
pub fn lacks_street(first: &str) -> bool {
    postcode_start(first).is_some_and(|at| !first.chars().take(at).any(|c| c.is_ascii_digit()))
}

/// The line is a country name and nothing else (outer punctuation aside).
pub fn is_country(text: &str) -> bool {
    let t = text
        .trim()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    COUNTRIES.contains(&t.as_str())
}

/// Whether line `text` completes an address: it has a postcode and does
/// not end with a comma (or `&`, `-`), or it is a country name.
pub fn completes(text: &str) -> bool {
    let t = text.trim_end();
    (has_postcode(t) && !t.ends_with([',', '&', '-'])) || is_country(t)
}

/// The line is a country name, or ends with one after a comma (`56000
/// Kuala Lumpur, Malaysia`).
fn ends_with_country(text: &str) -> bool {
    is_country(text)
        || text
            .rsplit_once(',')
            .is_some_and(|(_, last)| is_country(last))
}

/// A region line (`Selangor Darul Ehsan`, `Bavaria`): 1 to 3 words of
/// letters (periods and commas aside), not in brackets.
fn is_region(text: &str) -> bool {
    let t = text.trim();
    let words = t.split_whitespace().count();
    (1..=3).contains(&words)
        && t.chars()
            .all(|c| c.is_alphabetic() || c.is_whitespace() || c == '.' || c == ',')
}

/// Whether an address whose lines so far are `taken` goes on with line
/// `next`: always before a line completes it; after the completing line,
/// one region line and then a country line, or a country line alone.
pub fn takes_next(taken: &[&str], next: &str) -> bool {
    let Some(k) = taken.iter().position(|t| completes(t)) else {
        return true;
    };
    let after = &taken[k + 1..];
    if ends_with_country(taken[k]) || after.iter().any(|t| is_country(t)) {
        return false;
    }
    match after.len() {
        0 => is_country(next) || is_region(next),
        _ => is_country(next),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcodes_stand_alone() {
        for yes in [
            "47400 Petaling Jaya Selangor",
            "Jalan SS21/39,47400 PETALING JAYA",
            "D-63571 Gelnhausen",
            "3012 CN Rotterdam",
            "Lucknow 226010 Uttar Pradesh",
            "Springfield, IL 62704",
        ] {
            assert!(has_postcode(yes), "{yes}");
        }
        for no in [
            "LOT 1851-A & 1851-B, JALAN KPB 6",
            "Tel: 03-7890 1234",
            "GST No: 000123456789",
            "NO.113G & 115G, JALAN SETIA",
            "12345",
            "Invoice 2022/10583",
        ] {
            assert!(!has_postcode(no), "{no}");
        }
    }

    #[test]
    fn an_address_lacks_its_street_when_no_number_comes_before_its_postcode() {
        assert!(lacks_street("81750 JOHOR BAHRU"));
        assert!(lacks_street("JALAN KAPAR, 42200 KLANG, SELANGOR."));
        assert!(lacks_street("Springfield, IL 62704"));
        assert!(!lacks_street(
            "75, JALAN SS 22/19, DAMANSARA JAYA, 47400 PJ."
        ));
        assert!(!lacks_street("Hauptstr. 5, D-63571 Gelnhausen"));
        assert!(
            !lacks_street("LOT 1851-A & 1851-B, JALAN KPB 6,"),
            "no postcode"
        );
    }

    #[test]
    fn an_address_ends_at_its_postcode_line_unless_a_comma_continues_it() {
        assert!(completes("43300 SERI KEMBANGAN, SELANGOR"));
        assert!(!completes("43300 SERI KEMBANGAN,"));
        assert!(completes("MALAYSIA."));
        assert!(!completes("JALAN KPB 6, KAWASAN PERINDUSTRIAN"));
        assert!(
            !completes("BANDAR BUKIT RAJA, 41050"),
            "the town is on the next line"
        );
        assert!(is_country("The Netherlands"));
        assert!(!is_country("SUNWAY VELOCITY"));
    }

    #[test]
    fn a_region_and_a_country_may_follow_the_postcode_line() {
        let street = "NO. 53, JALAN BESAR,";
        let town = "45600 BATANG BERJUNTAI";
        assert!(takes_next(&[street], town));
        assert!(takes_next(&[street, town], "SELANGOR DARUL EHSAN"));
        assert!(takes_next(
            &[street, town, "SELANGOR DARUL EHSAN"],
            "MALAYSIA"
        ));
        assert!(!takes_next(
            &[street, town, "SELANGOR DARUL EHSAN"],
            "KLANG"
        ));
        assert!(!takes_next(&[street, town], "(CHERAS LEISURE MALL)"));
        assert!(!takes_next(
            &[street, "56000 Kuala Lumpur, Malaysia"],
            "SUNWAY VELOCITY"
        ));
        assert!(!takes_next(&[street, town, "Malaysia"], "SUNWAY VELOCITY"));
    }
}
