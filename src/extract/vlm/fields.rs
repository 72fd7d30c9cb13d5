//! Per-field confidence: where each top-level value sits in the generated
//! JSON text, and the mean probability of the tokens that wrote it. Pure.

use std::collections::BTreeMap;

/// Byte spans `[start, end)` of the values of a top-level JSON object's
/// members, keyed by member name. Empty for anything that is not an object;
/// a truncated document gives the members seen so far.
pub fn value_spans(text: &str) -> Vec<(String, usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return out;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'"') {
            return out;
        }
        let key_start = i;
        let Some(key_end) = string_end(b, i) else {
            return out;
        };
        let key: String = serde_json::from_str(&text[key_start..key_end]).unwrap_or_default();
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return out;
        }
        let start = skip_ws(b, i + 1);
        let Some(end) = value_end(b, start) else {
            return out;
        };
        out.push((key, start, end));
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return out,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// End (exclusive) of the string starting at `b[i] == '"'`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// End (exclusive) of the value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']') && !b[j].is_ascii_whitespace()
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// Mean probability of the tokens overlapping each top-level value.
/// `spans[k]` is token k's byte span in `text`; `probs[k]` its probability.
pub fn field_confidence(
    text: &str,
    spans: &[(usize, usize)],
    probs: &[f32],
) -> BTreeMap<String, f32> {
    let mut out = BTreeMap::new();
    for (key, vs, ve) in value_spans(text) {
        let (mut sum, mut n) = (0.0f32, 0usize);
        for (&(ts, te), &p) in spans.iter().zip(probs) {
            if ts < ve && te > vs {
                sum += p;
                n += 1;
            }
        }
        out.insert(key, if n == 0 { 0.0 } else { sum / n as f32 });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_of_top_level_values() {
        struct Case {
            text: &'static str,
            want: Vec<(&'static str, &'static str)>,
        }
        let cases = [
            Case {
                text: r#"{"a":"x,}\"y","b":-1.5e3,"c":{"d":[1,"]"]},"e":null}"#,
                want: vec![
                    ("a", r#""x,}\"y""#),
                    ("b", "-1.5e3"),
                    ("c", r#"{"d":[1,"]"]}"#),
                    ("e", "null"),
                ],
            },
            Case {
                text: r#" { "k\u0041" : true , "z" : [] } "#,
                want: vec![("kA", "true"), ("z", "[]")],
            },
            Case {
                text: r#"{"a":1,"b":"unterminated"#,
                want: vec![("a", "1")],
            },
            Case {
                text: "[1,2]",
                want: vec![],
            },
            Case {
                text: "",
                want: vec![],
            },
        ];
        for c in cases {
            let got: Vec<(String, &str)> = value_spans(c.text)
                .into_iter()
                .map(|(k, s, e)| (k, &c.text[s..e]))
                .collect();
            let want: Vec<(String, &str)> =
                c.want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            assert_eq!(got, want, "{}", c.text);
        }
    }

    #[test]
    fn confidence_averages_overlapping_tokens() {
        // Tokens: `{"a":` `"x` `y"` `,"b":` `12` `}`
        let text = r#"{"a":"xy","b":12}"#;
        let spans = [(0, 5), (5, 7), (7, 9), (9, 14), (14, 16), (16, 17)];
        let probs = [1.0, 0.2, 0.4, 1.0, 0.9, 1.0];
        let c = field_confidence(text, &spans, &probs);
        assert!((c["a"] - 0.3).abs() < 1e-6, "{c:?}");
        assert!((c["b"] - 0.9).abs() < 1e-6, "{c:?}");
        assert_eq!(c.len(), 2);
    }
}
