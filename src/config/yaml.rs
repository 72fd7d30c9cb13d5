//! A YAML document as a tree of nodes that remember where they came from.
//!
//! The pipeline reader walks this tree itself (rather than going through serde)
//! so that it can report every problem at once, each with its line, column and
//! field path.

use saphyr_parser_bw::{Event, Parser, ScalarStyle};
use std::collections::HashMap;

/// Most nodes a document may expand to (aliases included): a guard against
/// "billion laughs" alias bombs in a file that is only a few lines long.
const MAX_NODES: usize = 100_000;

/// Deepest nesting accepted; pipeline files need four or five levels.
const MAX_DEPTH: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    /// 1-based line of the node's first character.
    pub line: usize,
    /// 1-based column of the node's first character.
    pub col: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    Null,
    /// A scalar's text; `plain` is false for quoted and block scalars, which
    /// are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// What the node is, in words, for error messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Null => "null".to_string(),
            NodeKind::Scalar { text, .. } => format!("{text:?}"),
            NodeKind::Seq(_) => "a list".to_string(),
            NodeKind::Map(_) => "a mapping".to_string(),
        }
    }
}

/// A syntax error, with the place it was found.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Parses the first document of `text`. An empty file gives a `Null` node.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
    };
    builder.document()
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser_bw::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, usize, usize), SyntaxError> {
        match self.parser.next_event() {
            Some(Ok((event, span))) => Ok((event, span.start.line(), span.start.col() + 1)),
            Some(Err(e)) => Err(SyntaxError {
                line: e.marker().line(),
                col: e.marker().col() + 1,
                message: e.info().to_string(),
            }),
            None => Err(SyntaxError {
                line: 0,
                col: 0,
                message: "unexpected end of input".to_string(),
            }),
        }
    }

    fn document(&mut self) -> Result<Node, SyntaxError> {
        loop {
            let (event, line, col) = self.next()?;
            match event {
                Event::StreamStart | Event::Nothing => continue,
                Event::StreamEnd => {
                    return Ok(Node {
                        kind: NodeKind::Null,
                        line: line.max(1),
                        col: col.max(1),
                    })
                }
                Event::DocumentStart(_) => {
                    let (event, line, col) = self.next()?;
                    if matches!(event, Event::DocumentEnd) {
                        return Ok(Node {
                            kind: NodeKind::Null,
                            line,
                            col,
                        });
                    }
                    return self.node(event, line, col, 0);
                }
                other => return self.node(other, line, col, 0),
            }
        }
    }

    fn count(&mut self, line: usize, col: usize, n: usize) -> Result<(), SyntaxError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                line,
                col,
                message: format!("document expands to more than {MAX_NODES} nodes"),
            });
        }
        Ok(())
    }

    fn node(
        &mut self,
        event: Event<'a>,
        line: usize,
        col: usize,
        depth: usize,
    ) -> Result<Node, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(SyntaxError {
                line,
                col,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        self.count(line, col, 1)?;
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = matches!(style, ScalarStyle::Plain);
                let kind = if plain && is_null(&text) {
                    NodeKind::Null
                } else {
                    NodeKind::Scalar {
                        text: text.into_owned(),
                        plain,
                    }
                };
                (Node { kind, line, col }, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, l, c) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, l, c, depth + 1)?);
                }
                (
                    Node {
                        kind: NodeKind::Seq(items),
                        line,
                        col,
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _) => {
                let mut entries = Vec::new();
                loop {
                    let (ev, l, c) = self.next()?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(ev, l, c, depth + 1)?;
                    let (ev, l, c) = self.next()?;
                    let value = self.node(ev, l, c, depth + 1)?;
                    entries.push((key, value));
                }
                (
                    Node {
                        kind: NodeKind::Map(entries),
                        line,
                        col,
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id).cloned() else {
                    return Err(SyntaxError {
                        line,
                        col,
                        message: "alias to an unknown anchor".to_string(),
                    });
                };
                self.count(line, col, weight(&target))?;
                return Ok(target);
            }
            other => {
                return Err(SyntaxError {
                    line,
                    col,
                    message: format!("unexpected YAML event {other:?}"),
                })
            }
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

fn weight(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Seq(items) => 1 + items.iter().map(weight).sum::<usize>(),
        NodeKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| weight(k) + weight(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_with_locations() {
        let node = parse("a: 1\nb:\n  - x\n  - 'y'\nc: ~\n").unwrap();
        let NodeKind::Map(entries) = node.kind else {
            panic!("not a map")
        };
        assert_eq!(entries.len(), 3);
        let (k, v) = &entries[1];
        assert_eq!((k.line, k.col), (2, 1));
        let NodeKind::Seq(items) = &v.kind else {
            panic!("not a seq")
        };
        assert_eq!((items[1].line, items[1].col), (4, 5));
        assert_eq!(
            items[1].kind,
            NodeKind::Scalar {
                text: "y".into(),
                plain: false
            }
        );
        assert_eq!(entries[2].1.kind, NodeKind::Null);
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(parse("").unwrap().kind, NodeKind::Null);
        assert_eq!(parse("# only a comment\n").unwrap().kind, NodeKind::Null);
    }

    #[test]
    fn syntax_error_has_location() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.line >= 1, "{err:?}");
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&doc).unwrap_err();
        assert!(err.message.contains("nodes"), "{err:?}");
    }
}
