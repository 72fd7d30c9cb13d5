//! Schema-constrained decoding: the tokenizer as llguidance sees it, the
//! field schema compiled once into a grammar, and the choice of each token
//! (greedy over the grammar's mask; a closing phase near the token budget so
//! that every output is complete JSON). Pure apart from llguidance.

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{SimpleVob, TokEnv, TokRxInfo, TokTrie, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};
use std::sync::Arc;

/// llguidance's view of the tokenizer: the bytes of every token (from the
/// `tokenizer.json` vocabulary, byte-level BPE or byte-fallback) in a trie,
/// and the real tokenizer for canonical tokenisation. This is what
/// `toktrie_hf_tokenizers::ByteTokenizer::from_json_bytes` builds; that crate
/// pins `tokenizers` 0.21, so the same is done here against 0.23.
struct HfEnv {
    trie: TokTrie,
    tokenizer: tokenizers::Tokenizer,
}

impl TokenizerEnv for HfEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        let text = String::from_utf8_lossy(s);
        match self.tokenizer.encode(text.as_ref(), false) {
            Ok(enc) => enc.get_ids().to_vec(),
            // Never reached with a loadable tokenizer; the trie's greedy
            // tokenisation is a valid (if not canonical) fallback.
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}

/// Builds the token trie from `tokenizer.json`'s text. `eos` is the token
/// that ends generation.
pub fn tok_env(
    json_text: &str,
    tokenizer: tokenizers::Tokenizer,
    eos: u32,
) -> Result<TokEnv, String> {
    let json: serde_json::Value = serde_json::from_str(json_text).map_err(|e| e.to_string())?;
    // llguidance's reader asserts on odd vocabularies; keep a panic there an
    // error here.
    let words = std::panic::catch_unwind(|| llguidance::token_bytes_from_tokenizer_json(&json))
        .map_err(|_| "llguidance could not read the vocabulary".to_string())?
        .map_err(|e| e.to_string())?;
    let mut words = words;
    let vocab = words
        .len()
        .max(tokenizer.get_vocab_size(true))
        .max(eos as usize + 1);
    words.resize(vocab, Vec::new());
    if words[eos as usize].is_empty() {
        return Err(format!("the eos token {eos} is not in the vocabulary"));
    }
    let info = TokRxInfo {
        vocab_size: vocab as u32,
        tok_eos: eos,
        tok_bos: None,
        tok_pad: None,
        tok_unk: None,
        tok_end_of_turn: None,
    };
    let trie = std::panic::catch_unwind(|| TokTrie::from(&info, &words))
        .map_err(|_| "llguidance could not build the token trie".to_string())?;
    Ok(Arc::new(HfEnv { trie, tokenizer }))
}

/// The schema as given to llguidance: compact JSON (no free whitespace, so a
/// model cannot spend its budget on spaces), and no properties beyond the
/// declared ones at the top level unless the schema says otherwise. Every
/// output of this grammar also validates against the original schema.
pub fn grammar_schema(schema: &serde_json::Value) -> serde_json::Value {
    let mut s = schema.clone();
    if let Some(obj) = s.as_object_mut() {
        if obj.get("type").and_then(|t| t.as_str()) == Some("object")
            && !obj.contains_key("additionalProperties")
        {
            obj.insert("additionalProperties".into(), false.into());
        }
        obj.insert(
            "x-guidance".into(),
            serde_json::json!({
                "whitespace_flexible": false,
                "item_separator": ",",
                "key_separator": ":",
            }),
        );
    }
    s
}

/// How the closing phase (near the token budget) finishes an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closing {
    /// JSON: [`closing_choice`], the shortest way to a complete document.
    Json,
    /// A task grammar whose items are bounded: end of text as soon as the
    /// grammar allows it, greedy until then ([`eos_or_greedy`]).
    Eos,
}

/// A compiled grammar (the field schema's, or a task's); hands out one
/// fresh [`Matcher`] per sequence.
pub struct Grammar {
    env: TokEnv,
    template: Matcher,
    closing: Closing,
    /// Tokens the closing phase needs, at most, to finish a document from
    /// any point (estimated at load; see [`Grammar::closing_reserve`]).
    reserve: usize,
}

impl Grammar {
    /// Compiles `schema` (a JSON Schema object) for `env`.
    pub fn compile(env: TokEnv, schema: &serde_json::Value) -> Result<Self, String> {
        if !schema.is_object() {
            return Err("the field schema must be a JSON object".into());
        }
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
        factory.quiet();
        let grammar = TopLevelGrammar::from_json_schema(grammar_schema(schema));
        let parser = factory.create_parser(grammar).map_err(|e| e.to_string())?;
        let template = Matcher::new(Ok(parser));
        if let Some(e) = template.get_error() {
            return Err(e);
        }
        let mut g = Grammar {
            env,
            template,
            closing: Closing::Json,
            reserve: 0,
        };
        g.reserve = g.closing_reserve()?;
        Ok(g)
    }

    /// Compiles a task grammar in llguidance's Lark syntax
    /// ([`super::tasks::task_grammar`]); `reserve` is the most tokens an
    /// item under way may still need when the closing phase begins.
    pub fn compile_lark(env: TokEnv, lark: &str, reserve: usize) -> Result<Self, String> {
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
        factory.quiet();
        let grammar = TopLevelGrammar::from_lark(lark.to_string());
        let parser = factory.create_parser(grammar).map_err(|e| e.to_string())?;
        let template = Matcher::new(Ok(parser));
        if let Some(e) = template.get_error() {
            return Err(e);
        }
        Ok(Grammar {
            env,
            template,
            closing: Closing::Eos,
            reserve,
        })
    }

    /// How this grammar's closing phase chooses.
    pub fn closing(&self) -> Closing {
        self.closing
    }

    /// The closing phase's choice under this grammar's policy.
    pub fn closing_pick(&self, mask: &SimpleVob, logits: &[f32]) -> Option<u32> {
        match self.closing {
            Closing::Json => closing_choice(self.trie(), mask, Some(logits)),
            Closing::Eos => eos_or_greedy(self.eos(), mask, logits),
        }
    }

    pub fn trie(&self) -> &TokTrie {
        self.env.tok_trie()
    }

    pub fn eos(&self) -> u32 {
        self.trie().eos_token()
    }

    /// A fresh matcher at the start of the document.
    pub fn matcher(&self) -> Matcher {
        self.template.clone()
    }

    /// Tokens kept back from free generation for the closing phase.
    pub fn reserve(&self) -> usize {
        self.reserve
    }

    /// The shortest document the closing policy writes from the start,
    /// plus a margin of 8 tokens for finishing the value under way (closing
    /// a string, ending a number) when the phase begins mid-document.
    fn closing_reserve(&self) -> Result<usize, String> {
        let mut m = self.matcher();
        let cap = 4096;
        for n in 0..cap {
            let mask = m.compute_mask().map_err(|e| e.to_string())?;
            let tok = closing_choice(self.trie(), &mask, None)
                .ok_or("the schema admits no document (empty token mask)")?;
            if tok == self.eos() {
                return Ok(n + 8);
            }
            m.consume_token(tok).map_err(|e| e.to_string())?;
            if m.is_stopped() {
                return Ok(n + 1 + 8);
            }
        }
        Err(format!(
            "the shortest document for this schema is longer than {cap} tokens"
        ))
    }
}

/// Greedy choice: the allowed token (below `logits.len()`) with the highest
/// logit; NaN counts as lowest. `None` when nothing is allowed.
pub fn greedy_choice(mask: &SimpleVob, logits: &[f32]) -> Option<u32> {
    let mut best: Option<(u32, f32)> = None;
    let n = logits.len().min(mask.len());
    mask.iter_set_entries(|i| {
        if i < n {
            keep_first_max(&mut best, i, logits[i]);
        }
    });
    best.map(|(t, _)| t)
}

/// Greedy choice's rule, one candidate at a time: a NaN logit counts as
/// -inf, and an equal later logit does not replace the earlier one.
fn keep_first_max(best: &mut Option<(u32, f32)>, i: usize, l: f32) {
    let l = if l.is_nan() { f32::NEG_INFINITY } else { l };
    match *best {
        Some((_, b)) if b >= l => {}
        _ => *best = Some((i as u32, l)),
    }
}

/// The plain argmax of `logits` (unconstrained decoding): the first of equal
/// maxima, NaN never chosen unless everything is NaN; `None` when empty.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(u32, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        keep_first_max(&mut best, i, l);
    }
    best.map(|(t, _)| t)
}

/// End of text when the mask allows it (and the model has the token), the
/// greedy choice otherwise.
pub fn eos_or_greedy(eos: u32, mask: &SimpleVob, logits: &[f32]) -> Option<u32> {
    if (eos as usize) < logits.len().min(mask.len()) && mask.is_allowed(eos) {
        return Some(eos);
    }
    greedy_choice(mask, logits)
}

/// The byte sequences that end a JSON value or structure, best first. `"`
/// comes first: inside a string `}` would be content, and where `"` opens a
/// string (a value, a key) the next step closes it again.
const CLOSERS: [&[u8]; 5] = [b"\"", b"}", b"]", b",", b":"];

/// Closing-phase choice, to finish the document in few tokens: end of text
/// when the grammar accepts; else a closing `"` `}` `]` `,` `:` token; else
/// the allowed token with the fewest bytes (ties: the higher logit when
/// `logits` is given, else the lower id). Whitespace is avoided where
/// anything else is allowed.
pub fn closing_choice(trie: &TokTrie, mask: &SimpleVob, logits: Option<&[f32]>) -> Option<u32> {
    let eos = trie.eos_token();
    let limit = logits.map_or(mask.len(), |l| l.len().min(mask.len()));
    if (eos as usize) < limit && mask.is_allowed(eos) {
        return Some(eos);
    }
    let mut closer: Option<(usize, u32)> = None;
    let mut short: Option<(usize, f32, u32)> = None;
    mask.iter_set_entries(|i| {
        if i >= limit {
            return;
        }
        let t = i as u32;
        let bytes = trie.token(t);
        if bytes.is_empty() || bytes[0] == TokTrie::SPECIAL_TOKEN_MARKER {
            return;
        }
        if let Some(rank) = CLOSERS.iter().position(|c| *c == bytes) {
            if closer.is_none_or(|(r, _)| rank < r) {
                closer = Some((rank, t));
            }
            return;
        }
        let ws = bytes.iter().all(u8::is_ascii_whitespace);
        let len = bytes.len() + if ws { 1000 } else { 0 };
        let score = logits.map_or(0.0, |l| if l[i].is_nan() { f32::MIN } else { l[i] });
        let better = match short {
            None => true,
            Some((bl, bs, _)) => len < bl || (len == bl && score > bs),
        };
        if better {
            short = Some((len, score, t));
        }
    });
    closer.map(|(_, t)| t).or(short.map(|(_, _, t)| t))
}

/// Softmax probability of `token` under `logits` (the model's own
/// distribution, before the grammar's mask). 0 for an out-of-range token or
/// non-finite logits.
pub fn token_prob(logits: &[f32], token: u32) -> f32 {
    let Some(&lt) = logits.get(token as usize) else {
        return 0.0;
    };
    let max = logits
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() || !lt.is_finite() {
        return 0.0;
    }
    let sum: f64 = logits
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| f64::from(v - max).exp())
        .sum();
    (f64::from(lt - max).exp() / sum) as f32
}

/// The bytes of a generated sequence as text: special tokens (end of text)
/// are left out.
pub fn token_text(trie: &TokTrie, tokens: &[u32]) -> (String, Vec<(usize, usize)>) {
    let mut bytes = Vec::new();
    let mut spans = Vec::with_capacity(tokens.len());
    for &t in tokens {
        let start = bytes.len();
        push_token_bytes(trie, t, &mut bytes);
        spans.push((start, bytes.len()));
    }
    (String::from_utf8_lossy(&bytes).into_owned(), spans)
}

/// Appends token `t`'s bytes; special tokens and ids outside the
/// vocabulary add nothing.
fn push_token_bytes(trie: &TokTrie, t: u32, bytes: &mut Vec<u8>) {
    let b = if (t as usize) < trie.vocab_size() {
        trie.token(t)
    } else {
        &[]
    };
    if !b.is_empty() && b[0] != TokTrie::SPECIAL_TOKEN_MARKER {
        bytes.extend_from_slice(b);
    }
}

/// A task's generated text: like [`token_text`], but a loc token of
/// `loc` is written `<loc_N>` (the parsers in [`super::tasks`] read it).
pub fn task_text(trie: &TokTrie, tokens: &[u32], loc: super::tasks::LocNotation) -> String {
    let mut bytes = Vec::new();
    for &t in tokens {
        if let Some(bin) = loc.bin_of(t) {
            bytes.extend_from_slice(format!("<loc_{bin}>").as_bytes());
            continue;
        }
        push_token_bytes(trie, t, &mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use llguidance::toktrie::ApproximateTokEnv;

    /// Single-byte tokens 0..=255 plus an end-of-text special token 256.
    fn byte_env() -> TokEnv {
        env_of(byte_words())
    }

    fn byte_words() -> Vec<Vec<u8>> {
        let mut words: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        words.push(b"\xFF<eos>".to_vec());
        words
    }

    /// A token environment of `words`, end of text at 256.
    fn env_of(words: Vec<Vec<u8>>) -> TokEnv {
        let info = TokRxInfo {
            vocab_size: words.len() as u32,
            tok_eos: 256,
            tok_bos: None,
            tok_pad: None,
            tok_unk: None,
            tok_end_of_turn: None,
        };
        Arc::new(ApproximateTokEnv::new(TokTrie::from(&info, &words)))
    }

    /// `byte_env` plus the 1000 `<loc_N>` special tokens, ids 257..=1256.
    fn loc_env() -> TokEnv {
        let mut words = byte_words();
        for n in 0..1000 {
            let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
            w.extend(format!("<loc_{n}>").bytes());
            words.push(w);
        }
        env_of(words)
    }

    /// Consumes `toks`; then whether end of text is allowed.
    fn accepts(g: &Grammar, toks: &[u32]) -> Result<bool, String> {
        let mut m = g.matcher();
        for &t in toks {
            m.consume_token(t).map_err(|e| e.to_string())?;
        }
        let mask = m.compute_mask().map_err(|e| e.to_string())?;
        Ok(mask.is_allowed(g.eos()))
    }

    fn bytes(s: &str) -> Vec<u32> {
        s.bytes().map(u32::from).collect()
    }

    #[test]
    fn task_grammars_accept_their_format_only() {
        use super::super::tasks::{task_grammar, LocNotation, Task};
        // Loc tokens.
        let loc = LocNotation::Tokens { first: 257 };
        let (lark, reserve) = task_grammar(Task::Od, loc).unwrap();
        let g = Grammar::compile_lark(loc_env(), &lark, reserve).unwrap();
        assert_eq!(g.closing(), Closing::Eos);
        let mut toks = bytes("car");
        toks.extend([257 + 10, 257 + 20, 257 + 999, 257]);
        assert_eq!(accepts(&g, &toks), Ok(true));
        assert_eq!(
            task_text(g.trie(), &toks, loc),
            "car<loc_10><loc_20><loc_999><loc_0>"
        );
        assert_eq!(accepts(&g, &toks[..toks.len() - 1]), Ok(false));
        // A box needs its label first.
        assert!(accepts(&g, &[300]).is_err());
        // Spelt out.
        let (lark, reserve) = task_grammar(Task::OcrWithRegion, LocNotation::Text).unwrap();
        let g = Grammar::compile_lark(byte_env(), &lark, reserve).unwrap();
        let line = "Total 12<loc_1><loc_2><loc_3><loc_4><loc_5><loc_6><loc_7><loc_999>";
        assert_eq!(accepts(&g, &bytes(line)), Ok(true));
        assert_eq!(accepts(&g, &bytes(&line[..line.len() - 9])), Ok(false));
        assert!(accepts(&g, &bytes("x<loc_1000>")).is_err());
        assert!(accepts(&g, &bytes("x<loc_01>")).is_err());
        // Captions: text, no markup, not starting with a space.
        let (lark, reserve) = task_grammar(Task::Caption, LocNotation::Text).unwrap();
        let g = Grammar::compile_lark(byte_env(), &lark, reserve).unwrap();
        assert_eq!(accepts(&g, &bytes("An invoice.")), Ok(true));
        assert_eq!(accepts(&g, &[]), Ok(false));
        assert!(accepts(&g, &bytes(" x")).is_err());
        assert!(accepts(&g, &bytes("a<b")).is_err());
        assert!(accepts(&g, &bytes("a\x1bb")).is_err());
        assert!(accepts(&g, &bytes("a\tb")).is_err());
        assert_eq!(accepts(&g, &bytes("Zürich, 3 €")), Ok(true));
    }

    #[test]
    fn eos_or_greedy_prefers_end_of_text() {
        let mut mask = SimpleVob::alloc(4);
        mask.allow_token(1);
        assert_eq!(eos_or_greedy(3, &mask, &[0.0, 1.0, 0.0, 9.0]), Some(1));
        mask.allow_token(3);
        assert_eq!(eos_or_greedy(3, &mask, &[0.0, 1.0, 0.0, -9.0]), Some(3));
        // The model has no such token: greedy.
        assert_eq!(eos_or_greedy(3, &mask, &[0.0, 1.0]), Some(1));
    }

    fn schema() -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "total": {"type": "number"},
                "date": {"type": "string", "format": "date"},
                "kind": {"enum": ["invoice", "receipt"]},
                "count": {"type": "integer"}
            },
            "required": ["name", "total", "date", "kind", "count"]
        })
    }

    /// Runs the closing policy from `prefix` and returns the text.
    fn close_from(g: &Grammar, prefix: &[u8]) -> String {
        let mut m = g.matcher();
        let mut toks: Vec<u32> = prefix.iter().map(|b| u32::from(*b)).collect();
        m.consume_tokens(&toks).unwrap();
        for _ in 0..200 {
            if m.is_stopped() {
                break;
            }
            let mask = m.compute_mask().unwrap();
            let t = closing_choice(g.trie(), &mask, None).unwrap();
            if t == g.eos() {
                break;
            }
            m.consume_token(t).unwrap();
            toks.push(t);
        }
        token_text(g.trie(), &toks).0
    }

    #[test]
    fn closing_finishes_valid_documents() {
        let g = Grammar::compile(byte_env(), &schema()).unwrap();
        let prefixes: [&[u8]; 4] = [
            b"",
            b"{\"name\":\"abc",
            b"{\"name\":\"\",\"total\":12",
            b"{\"name\":\"x\",\"total\":1,\"date\":\"20",
        ];
        for p in prefixes {
            let text = close_from(&g, p);
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{:?} -> {text}: {e}", String::from_utf8_lossy(p)));
            for key in ["name", "total", "date", "kind", "count"] {
                assert!(v.get(key).is_some(), "{text}");
            }
            assert!(text.starts_with(std::str::from_utf8(p).unwrap()), "{text}");
            let date = v["date"].as_str().unwrap();
            assert_eq!(date.len(), 10, "{text}");
        }
        // The reserve covers the shortest document from the start.
        let shortest = close_from(&g, b"");
        assert_eq!(g.reserve(), shortest.len() + 8, "{shortest}");
    }

    #[test]
    fn grammar_schema_closes_top_level_object() {
        let s = grammar_schema(&schema());
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["x-guidance"]["whitespace_flexible"], false);
        let open = serde_json::json!({"type": "object", "additionalProperties": true});
        assert_eq!(grammar_schema(&open)["additionalProperties"], true);
    }

    #[test]
    fn greedy_respects_mask_and_nan() {
        let mut mask = SimpleVob::alloc(8);
        mask.allow_token(1);
        mask.allow_token(3);
        mask.allow_token(7);
        struct Case {
            logits: Vec<f32>,
            want: Option<u32>,
        }
        let cases = [
            Case {
                logits: vec![9.0, 1.0, 9.0, 2.0, 9.0, 9.0, 9.0, 0.5],
                want: Some(3),
            },
            Case {
                logits: vec![0.0, f32::NAN, 0.0, -1.0, 0.0, 0.0, 0.0, -2.0],
                want: Some(3),
            },
            // Logits narrower than the mask: token 7 does not exist.
            Case {
                logits: vec![0.0, -5.0, 0.0, -6.0],
                want: Some(1),
            },
            Case {
                logits: vec![1.0],
                want: None,
            },
        ];
        for c in cases {
            assert_eq!(greedy_choice(&mask, &c.logits), c.want, "{:?}", c.logits);
        }
    }

    #[test]
    fn argmax_is_the_first_maximum_and_skips_nan() {
        let cases: [(&[f32], Option<u32>); 4] = [
            (&[1.0, 3.0, 3.0, -1.0], Some(1)),
            (&[f32::NAN, 0.5, 0.25], Some(1)),
            (&[f32::NAN, f32::NAN], Some(0)),
            (&[], None),
        ];
        for (logits, want) in cases {
            assert_eq!(argmax(logits), want, "{logits:?}");
        }
    }

    #[test]
    fn probabilities() {
        let l = [0.0f32, 0.0, f32::NEG_INFINITY, (3.0f32).ln()];
        assert!((token_prob(&l, 3) - 0.6).abs() < 1e-6);
        assert!((token_prob(&l, 0) - 0.2).abs() < 1e-6);
        assert_eq!(token_prob(&l, 2), 0.0);
        assert_eq!(token_prob(&l, 9), 0.0);
        assert_eq!(token_prob(&[f32::NAN], 0), 0.0);
    }

    #[test]
    fn rejects_non_object_schema_and_unsatisfiable_schema() {
        assert!(Grammar::compile(byte_env(), &serde_json::json!(true)).is_err());
        let bad = serde_json::json!({"type": "object", "properties": {"a": {"type": "integer", "minimum": 5, "maximum": 1}}, "required": ["a"]});
        assert!(Grammar::compile(byte_env(), &bad).is_err());
    }
}
