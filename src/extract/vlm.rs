//! The `vlm` extraction engine: an ONNX vision-language model, in one of the
//! two public export layouts (encoder-decoder Florence-2; decoder-only with a
//! vision encoder, SmolVLM / Idefics3), described by a `docpipe.json`
//! manifest, generating one JSON record per page, batched across pages with
//! a KV cache, and constrained by the field schema (llguidance) so that every
//! record parses and validates while the model's logits choose the values.
//!
//! Layout of the module: [`manifest`] (the manifest), [`contract`] (the
//! graphs' input/output contracts and their check), [`preprocess`] (page
//! image to pixels), [`grammar`] (tokenizer for llguidance, schema grammar,
//! token choice), [`fields`] (per-field confidence), `runner` (the only
//! code touching ONNX Runtime: sessions and the two decoding layouts).
//!
//! Qwen2-VL (decoder-only with 3-D rotary positions) would be a third
//! `runner::Batch` variant: its vision contract (`pixel_values`
//! `[n_patches, 1176]` + `grid_thw`) in [`contract`], and position ids
//! `[3, b, s]` computed from the image grid at prefill and `past + delta` per
//! step. Today a rank-3 `position_ids` is refused at load with that hint.

pub mod contract;
pub mod fields;
pub mod grammar;
pub mod manifest;
pub mod preprocess;
mod runner;

pub use runner::{concat_seq, inject_image, left_pad};

pub use crate::ocr::model::Accel;
use grammar::Grammar;
use manifest::Manifest;
use runner::Models;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Engine settings.
#[derive(Debug, Clone, Copy)]
pub struct VlmOptions {
    /// Pages decoded together (one batch through every graph). 0 counts as 1.
    pub batch_size: usize,
    /// Most tokens generated per page, the closing phase included (see
    /// [`VlmEngine::generate`]).
    pub max_new_tokens: usize,
    /// ONNX Runtime intra-op threads per session (0 counts as 1).
    pub threads: usize,
    /// Where the sessions run: the CPU, or ONNX Runtime's CUDA execution
    /// provider (`required` makes a missing provider an error at load).
    pub accel: Accel,
}

impl Default for VlmOptions {
    /// Batch 8, 256 new tokens (enough for a dozen short fields), 1 thread,
    /// CPU.
    fn default() -> Self {
        VlmOptions {
            batch_size: 8,
            max_new_tokens: 256,
            threads: 1,
            accel: Accel::Cpu,
        }
    }
}

/// Errors of the VLM engine. All stop the run except [`VlmError::Image`]
/// and [`VlmError::Output`], which belong to one page.
#[derive(Debug, thiserror::Error)]
pub enum VlmError {
    #[error("VLM manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("VLM tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("VLM graph {graph}: {message}")]
    Graph { graph: String, message: String },
    #[error("VLM field schema: {0}")]
    Grammar(String),
    #[error("VLM graph {graph} failed: {message}")]
    Run { graph: String, message: String },
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    #[error("VLM page {page}: {message}")]
    Image { page: usize, message: String },
    #[error("VLM page {page}: output is not a JSON record: {message}")]
    Output { page: usize, message: String },
    #[error("{0}")]
    Unsupported(String),
}

/// One page's extraction.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRecord {
    /// The parsed JSON object (valid against the field schema).
    pub value: serde_json::Value,
    /// The generated text.
    pub text: String,
    /// Per top-level field: mean probability (0..=1, under the model's
    /// unconstrained softmax) of the tokens that wrote the field's value.
    pub field_confidence: BTreeMap<String, f32>,
    /// Tokens generated (end of text included when it was chosen).
    pub tokens: usize,
}

/// Raw generation for one page.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// Generated token ids (end of text included when it was chosen).
    pub tokens: Vec<u32>,
    /// Their text, special tokens left out.
    pub text: String,
    /// Probability of each token under the model's softmax (same length as
    /// `tokens`).
    pub token_probs: Vec<f32>,
    /// Time spent in llguidance's `compute_mask` for this page.
    pub mask_time: Duration,
}

/// A loaded model with its compiled field grammar.
pub struct VlmEngine {
    models: Models,
    grammar: Grammar,
    prompt: Vec<u32>,
    opts: VlmOptions,
}

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

impl VlmEngine {
    /// Loads the manifest, tokenizer and ONNX sessions (checking every
    /// graph's input/output names and dtypes against the layout; clear error
    /// on mismatch), and compiles the field schema (a JSON Schema object)
    /// into an llguidance grammar. ONNX Runtime is initialised here (once
    /// per process) from `docpipe::fetch`'s cache if nobody did it before.
    pub fn load(
        model_dir: &Path,
        schema: &serde_json::Value,
        opts: VlmOptions,
    ) -> Result<Self, VlmError> {
        let manifest = Manifest::read(model_dir)
            .map_err(|(path, message)| VlmError::Manifest { path, message })?;
        // Tokenizer: the HF file for the prompt, its vocabulary for llguidance.
        let tok_path = model_dir.join("tokenizer.json");
        let tok_fail = |message: String| VlmError::Tokenizer {
            path: tok_path.clone(),
            message,
        };
        let tok_text = read_text(&tok_path).map_err(tok_fail)?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(tok_text.as_bytes())
            .map_err(|e| tok_fail(e.to_string()))?;
        let schema_json =
            serde_json::to_string(schema).map_err(|e| VlmError::Grammar(e.to_string()))?;
        let text = manifest.expand_image_placeholder(&manifest.prompt_text(&schema_json));
        let prompt: Vec<u32> = tokenizer
            .encode(text.as_str(), false)
            .map_err(|e| tok_fail(e.to_string()))?
            .get_ids()
            .to_vec();
        if let (manifest::Architecture::DecoderOnly, Some(image)) =
            (manifest.architecture, manifest.tokens.image)
        {
            let n = prompt.iter().filter(|&&t| t == image).count();
            if n != manifest.image.image_tokens {
                return Err(VlmError::Manifest {
                    path: model_dir.join("docpipe.json"),
                    message: format!(
                        "the prompt encodes to {n} tokens.image ({image}) tokens, image.image_tokens is {}: does the tokenizer map <image> to {image}?",
                        manifest.image.image_tokens
                    ),
                });
            }
        }
        if prompt.is_empty() {
            return Err(VlmError::Manifest {
                path: model_dir.join("docpipe.json"),
                message: "the prompt is empty".into(),
            });
        }
        let env = grammar::tok_env(&tok_text, tokenizer, manifest.tokens.eos).map_err(tok_fail)?;
        let grammar = Grammar::compile(env, schema).map_err(VlmError::Grammar)?;
        if opts.max_new_tokens < grammar.reserve() {
            return Err(VlmError::Grammar(format!(
                "max_new_tokens {} is below the {} tokens that finishing a record of this schema may need",
                opts.max_new_tokens,
                grammar.reserve()
            )));
        }
        ort_environment()?;
        let models = Models::load(model_dir, manifest, opts.threads, opts.accel)?;
        Ok(VlmEngine {
            models,
            grammar,
            prompt,
            opts,
        })
    }

    /// The manifest the engine was loaded with.
    pub fn manifest(&self) -> &Manifest {
        &self.models.manifest
    }

    /// The prompt token ids (the same for every page).
    pub fn prompt_ids(&self) -> &[u32] {
        &self.prompt
    }

    /// One record per page image; pages are processed in batches of
    /// `opts.batch_size`. The first page that gives no record (its image
    /// or its output) is the error; see [`VlmEngine::extract_pages`] for
    /// one result per page.
    pub fn extract(&mut self, pages: &[&image::RgbImage]) -> Result<Vec<PageRecord>, VlmError> {
        self.extract_pages(pages)?.into_iter().collect()
    }

    /// One result per page image, in order: a page whose image cannot be
    /// prepared ([`VlmError::Image`]) or whose output is not a record
    /// ([`VlmError::Output`]) fails alone, and the other pages are still
    /// generated, in batches of `opts.batch_size`. The outer `Err` is a
    /// model call that failed (every page of the call is without a record).
    pub fn extract_pages(
        &mut self,
        pages: &[&image::RgbImage],
    ) -> Result<Vec<Result<PageRecord, VlmError>>, VlmError> {
        let mut out: Vec<Option<Result<PageRecord, VlmError>>> =
            (0..pages.len()).map(|_| None).collect();
        let mut ready: Vec<(usize, Vec<f32>)> = Vec::with_capacity(pages.len());
        for (page, img) in pages.iter().enumerate() {
            let mut pixels = Vec::new();
            match preprocess::push_pixels(img, &self.models.manifest.image, &mut pixels) {
                Ok(()) => ready.push((page, pixels)),
                Err(message) => out[page] = Some(Err(VlmError::Image { page, message })),
            }
        }
        let batch = self.opts.batch_size.max(1);
        for chunk in ready.chunks(batch) {
            let pixels: Vec<f32> = chunk.iter().flat_map(|(_, p)| p.iter().copied()).collect();
            let gens = self.generate_batch(pixels, chunk.len(), true)?;
            for ((page, _), g) in chunk.iter().zip(gens) {
                out[*page] = Some(to_record(&self.grammar, *page, g));
            }
        }
        Ok(out
            .into_iter()
            .enumerate()
            .map(|(page, r)| {
                r.unwrap_or_else(|| {
                    Err(VlmError::Output {
                        page,
                        message: "the model gave no output for this page".into(),
                    })
                })
            })
            .collect())
    }

    /// Lower level, for tests and the bench: generated token ids per page,
    /// with or without the KV cache (`use_cache = false` recomputes the
    /// whole sequence at every step).
    ///
    /// Per page: greedy over the tokens the grammar allows until the
    /// grammar is complete (end of text chosen, or nothing can follow);
    /// once `max_new_tokens - reserve` tokens are out, a closing phase
    /// finishes the record in as few tokens as the schema allows
    /// ([`grammar::closing_choice`]); `reserve` is measured on the schema at
    /// load.
    pub fn generate(
        &mut self,
        pages: &[&image::RgbImage],
        use_cache: bool,
    ) -> Result<Vec<Generated>, VlmError> {
        let batch = self.opts.batch_size.max(1);
        let mut out = Vec::with_capacity(pages.len());
        for (k, chunk) in pages.chunks(batch).enumerate() {
            let first = k * batch;
            let mut pixels = Vec::new();
            for (i, img) in chunk.iter().enumerate() {
                preprocess::push_pixels(img, &self.models.manifest.image, &mut pixels).map_err(
                    |message| VlmError::Image {
                        page: first + i,
                        message,
                    },
                )?;
            }
            out.extend(self.generate_batch(pixels, chunk.len(), use_cache)?);
        }
        Ok(out)
    }

    fn generate_batch(
        &mut self,
        pixels: Vec<f32>,
        b: usize,
        use_cache: bool,
    ) -> Result<Vec<Generated>, VlmError> {
        let prompts = vec![self.prompt.clone(); b];
        let grammar = &self.grammar;
        let max_new = self.opts.max_new_tokens;
        let closing_at = max_new.saturating_sub(grammar.reserve());
        let pad = self.models.manifest.tokens.pad;
        let eos = grammar.eos();
        let mut seqs: Vec<Seq> = (0..b).map(|_| Seq::new(grammar)).collect();
        let (mut run, mut logits) = self.models.start(pixels, &prompts, use_cache)?;
        for step in 0..max_new {
            let mut next = vec![pad; b];
            for (i, seq) in seqs.iter_mut().enumerate() {
                if seq.done {
                    continue;
                }
                let tok = seq.choose(grammar, logits.row(i), step >= closing_at)?;
                seq.tokens.push(tok);
                seq.probs.push(grammar::token_prob(logits.row(i), tok));
                if tok == eos {
                    seq.done = true;
                } else {
                    seq.matcher
                        .consume_token(tok)
                        .map_err(|e| VlmError::Grammar(e.to_string()))?;
                    seq.done = seq.matcher.is_stopped();
                    next[i] = tok;
                }
            }
            if seqs.iter().all(|s| s.done) || step + 1 == max_new {
                break;
            }
            logits = run.step(&next)?;
        }
        Ok(seqs
            .into_iter()
            .map(|s| {
                let (text, _) = grammar::token_text(grammar.trie(), &s.tokens);
                Generated {
                    tokens: s.tokens,
                    text,
                    token_probs: s.probs,
                    mask_time: s.mask_time,
                }
            })
            .collect())
    }
}

/// One sequence's decoding state.
struct Seq {
    matcher: llguidance::Matcher,
    tokens: Vec<u32>,
    probs: Vec<f32>,
    mask_time: Duration,
    done: bool,
}

impl Seq {
    fn new(g: &Grammar) -> Self {
        Seq {
            matcher: g.matcher(),
            tokens: Vec::new(),
            probs: Vec::new(),
            mask_time: Duration::ZERO,
            done: false,
        }
    }

    fn choose(&mut self, g: &Grammar, logits: &[f32], closing: bool) -> Result<u32, VlmError> {
        let t0 = Instant::now();
        let mask = self
            .matcher
            .compute_mask()
            .map_err(|e| VlmError::Grammar(e.to_string()))?;
        self.mask_time += t0.elapsed();
        let tok = if closing {
            grammar::closing_choice(g.trie(), &mask, Some(logits))
        } else {
            grammar::greedy_choice(&mask, logits)
        };
        tok.ok_or_else(|| {
            VlmError::Grammar(format!(
                "no token the grammar allows is among the model's {} logits",
                logits.len()
            ))
        })
    }
}

fn to_record(g: &Grammar, page: usize, gen: Generated) -> Result<PageRecord, VlmError> {
    let (text, spans) = grammar::token_text(g.trie(), &gen.tokens);
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| VlmError::Output {
        page,
        message: format!("{e}: {text}"),
    })?;
    let field_confidence = fields::field_confidence(&text, &spans, &gen.token_probs);
    Ok(PageRecord {
        value,
        text,
        field_confidence,
        tokens: gen.tokens.len(),
    })
}

/// Makes sure the process's ONNX Runtime environment exists, initialising
/// it from the fetch cache (`DOCPIPE_ORT_LIB` or the pinned wheel) when
/// nobody has yet.
fn ort_environment() -> Result<&'static ort::environment::Environment, VlmError> {
    if let Ok(env) = crate::ocr::model::environment() {
        return Ok(env);
    }
    let lib = crate::fetch::Cache::from_env()
        .onnxruntime_library()
        .map_err(|e| VlmError::Runtime(e.to_string()))?;
    crate::ocr::model::init_runtime(&lib).map_err(|e| VlmError::Runtime(e.to_string()))?;
    crate::ocr::model::environment().map_err(|e| VlmError::Runtime(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_send() {
        fn send<T: Send>() {}
        send::<VlmEngine>();
        send::<VlmError>();
    }

    #[test]
    fn missing_manifest_is_named() {
        let err = VlmEngine::load(
            Path::new("/nonexistent"),
            &serde_json::json!({}),
            VlmOptions::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("/nonexistent/docpipe.json"), "{err}");
    }
}
