//! Typed reading of a YAML tree that collects every problem instead of
//! stopping at the first.

use super::yaml::{Node, NodeKind};
use super::ConfigIssue;

/// Collects issues while the pipeline is read.
#[derive(Default)]
pub struct Reader {
    pub issues: Vec<ConfigIssue>,
    /// Every path or URL that names storage, with where it was written.
    pub places: Vec<super::PlaceRef>,
}

impl Reader {
    pub fn issue(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            line: node.line,
            col: node.col,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Reads a mapping, reporting unknown and repeated keys. Returns the
    /// entries by key. A `null` node is an empty mapping.
    pub fn map<'n>(&mut self, node: &'n Node, path: &str, known: &[&str]) -> Option<Map<'n>> {
        let entries = match &node.kind {
            NodeKind::Map(entries) => entries,
            NodeKind::Null => return Some(Map::default()),
            _ => {
                self.issue(
                    node,
                    path,
                    format!("expected a mapping, found {}", node.describe()),
                );
                return None;
            }
        };
        let mut map = Map::default();
        for (key, value) in entries {
            let NodeKind::Scalar { text, .. } = &key.kind else {
                self.issue(key, path, "keys must be plain strings");
                continue;
            };
            let child = join(path, text);
            if !known.contains(&text.as_str()) {
                let hint = suggest(text, known)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                self.issue(
                    key,
                    &child,
                    format!(
                        "unknown field `{text}`{hint} (expected one of: {})",
                        known.join(", ")
                    ),
                );
                continue;
            }
            if map.entries.iter().any(|(k, _, _)| k == text) {
                self.issue(key, &child, format!("field `{text}` is given twice"));
                continue;
            }
            map.entries.push((text.clone(), child, value));
        }
        Some(map)
    }

    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.issue(
                    node,
                    path,
                    format!("expected a string, found {}", node.describe()),
                );
                None
            }
        }
    }

    /// A string or a list of strings.
    pub fn strings(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        match &node.kind {
            NodeKind::Scalar { text, .. } => Some(vec![text.clone()]),
            NodeKind::Seq(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = self.string(item, &format!("{path}[{i}]")) {
                        out.push(s);
                    }
                }
                Some(out)
            }
            _ => {
                self.issue(
                    node,
                    path,
                    format!(
                        "expected a string or a list of strings, found {}",
                        node.describe()
                    ),
                );
                None
            }
        }
    }

    pub fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        if let NodeKind::Scalar { text, plain: true } = &node.kind {
            match text.as_str() {
                "true" | "True" | "TRUE" => return Some(true),
                "false" | "False" | "FALSE" => return Some(false),
                _ => {}
            }
        }
        self.issue(
            node,
            path,
            format!("expected true or false, found {}", node.describe()),
        );
        None
    }

    /// An integer in `min..=max`.
    pub fn int(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
        let value = match &node.kind {
            NodeKind::Scalar { text, plain: true } => text.replace('_', "").parse::<i64>().ok(),
            _ => None,
        };
        match value {
            Some(v) if (min..=max).contains(&v) => Some(v),
            Some(v) => {
                self.issue(
                    node,
                    path,
                    format!("{v} is out of range (expected {min} to {max})"),
                );
                None
            }
            None => {
                self.issue(
                    node,
                    path,
                    format!("expected an integer, found {}", node.describe()),
                );
                None
            }
        }
    }

    /// A number in `min..=max`.
    pub fn number(&mut self, node: &Node, path: &str, min: f64, max: f64) -> Option<f64> {
        let value = match &node.kind {
            NodeKind::Scalar { text, plain: true } => text.parse::<f64>().ok(),
            _ => None,
        };
        match value {
            Some(v) if v.is_finite() && (min..=max).contains(&v) => Some(v),
            Some(v) => {
                self.issue(
                    node,
                    path,
                    format!("{v} is out of range (expected {min} to {max})"),
                );
                None
            }
            None => {
                self.issue(
                    node,
                    path,
                    format!("expected a number, found {}", node.describe()),
                );
                None
            }
        }
    }

    /// One of a closed set of words.
    pub fn choice<T: Copy>(&mut self, node: &Node, path: &str, options: &[(&str, T)]) -> Option<T> {
        let text = match &node.kind {
            NodeKind::Scalar { text, .. } => text.as_str(),
            _ => "",
        };
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == text) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        self.issue(
            node,
            path,
            format!(
                "expected one of {}, found {}",
                names.join(", "),
                node.describe()
            ),
        );
        None
    }
}

/// A mapping's known entries: key, field path, value.
#[derive(Default)]
pub struct Map<'n> {
    entries: Vec<(String, String, &'n Node)>,
}

impl<'n> Map<'n> {
    /// The value and field path of `key`, if present and not null.
    pub fn get(&self, key: &str) -> Option<(&'n Node, &str)> {
        self.entries
            .iter()
            .find(|(k, _, v)| k == key && v.kind != NodeKind::Null)
            .map(|(_, path, v)| (*v, path.as_str()))
    }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The known name closest to `word`, when it is close enough to be a typo.
fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        struct Case {
            word: &'static str,
            want: Option<&'static str>,
        }
        let known = ["input", "output", "render", "runtime"];
        for c in [
            Case {
                word: "inptu",
                want: Some("input"),
            },
            Case {
                word: "rendr",
                want: Some("render"),
            },
            Case {
                word: "zzzzzz",
                want: None,
            },
        ] {
            assert_eq!(suggest(c.word, &known), c.want, "{}", c.word);
        }
    }
}
