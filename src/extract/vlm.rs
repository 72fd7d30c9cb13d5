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
pub mod tasks;

pub use runner::{concat_seq, inject_image, left_pad};

pub use crate::ocr::model::Accel;
use grammar::Grammar;
use manifest::Manifest;
use runner::Models;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tasks::{Detection, LocNotation, Task, TextQuad};

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
    /// Each token chosen under the task's grammar (true), or the plain
    /// argmax of the logits until end of text (false: what the model
    /// itself says; its output may not parse).
    pub constrained: bool,
}

impl Default for VlmOptions {
    /// Batch 8, 256 new tokens (enough for a dozen short fields), 1 thread,
    /// CPU, constrained.
    fn default() -> Self {
        VlmOptions {
            batch_size: 8,
            max_new_tokens: 256,
            threads: 1,
            accel: Accel::Cpu,
            constrained: true,
        }
    }
}

/// Errors of the VLM engine. All stop the run except [`VlmError::Image`],
/// [`VlmError::Output`] and [`VlmError::TaskOutput`], which belong to one
/// page.
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
    #[error("VLM page {page}: {task} output: {message}")]
    TaskOutput {
        page: usize,
        task: Task,
        message: String,
    },
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
    /// This page's share (1/batch) of the batch's first model call: vision
    /// encoder, prompt embedding, text encoder (encoder-decoder) and the
    /// first decoder pass.
    pub prefill_time: Duration,
    /// This page's share of the batch's later decoder steps.
    pub step_time: Duration,
}

/// One page's output of a task other than `fields`, in the pixels of the
/// image the engine was given.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutput {
    /// `caption`, `detailed_caption`: non-empty text.
    Caption(String),
    /// `od`: labelled boxes.
    Detections(Vec<Detection>),
    /// `ocr_with_region`: text lines with quads.
    Lines(Vec<TextQuad>),
}

/// One page's result of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    pub output: TaskOutput,
    /// The generated text, `<loc_N>` written out.
    pub text: String,
    /// Tokens generated (end of text included when it was chosen).
    pub tokens: usize,
    /// Mean probability (0..=1, the model's unconstrained softmax) of the
    /// generated tokens.
    pub mean_prob: f32,
    /// Pieces of the output left out as malformed, and why (the token
    /// budget can cut the last item short).
    pub dropped: Vec<String>,
}

/// A task's compiled grammar and prompt.
struct Plan {
    grammar: Grammar,
    prompt: Vec<u32>,
}

/// A loaded model with the compiled grammar and prompt of each task it was
/// loaded for.
pub struct VlmEngine {
    models: Models,
    plans: BTreeMap<Task, Plan>,
    loc: LocNotation,
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
        Self::load_tasks(model_dir, Some(schema), &[Task::Fields], opts)
    }

    /// [`VlmEngine::load`] for a list of tasks: each must be in the
    /// manifest's `tasks` ([`VlmError::Unsupported`] otherwise); `fields`
    /// needs `schema`. Each task gets its prompt and grammar (see
    /// [`tasks::task_grammar`]).
    pub fn load_tasks(
        model_dir: &Path,
        schema: Option<&serde_json::Value>,
        tasks: &[Task],
        opts: VlmOptions,
    ) -> Result<Self, VlmError> {
        let manifest = Manifest::read(model_dir)
            .map_err(|(path, message)| VlmError::Manifest { path, message })?;
        let supported = manifest.supported_tasks();
        if let Some(t) = tasks.iter().find(|t| !supported.contains(t)) {
            return Err(VlmError::Unsupported(format!(
                "the VLM export {} does not support task {t}: its manifest lists {}",
                model_dir.display(),
                supported
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        // Tokenizer: the HF file for the prompt, its vocabulary for llguidance.
        let tok_path = model_dir.join("tokenizer.json");
        let tok_fail = |message: String| VlmError::Tokenizer {
            path: tok_path.clone(),
            message,
        };
        let tok_text = read_text(&tok_path).map_err(tok_fail)?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(tok_text.as_bytes())
            .map_err(|e| tok_fail(e.to_string()))?;
        let schema_json = match schema {
            Some(s) => serde_json::to_string(s).map_err(|e| VlmError::Grammar(e.to_string()))?,
            None if tasks.contains(&Task::Fields) => {
                return Err(VlmError::Grammar("task fields needs a field schema".into()))
            }
            None => String::new(),
        };
        let manifest_fail = |message: String| VlmError::Manifest {
            path: model_dir.join("docpipe.json"),
            message,
        };
        let loc = LocNotation::detect(|t| tokenizer.token_to_id(t));
        let mut prompts = BTreeMap::new();
        for &task in tasks {
            let text = manifest
                .task_prompt_text(task, &schema_json)
                .ok_or_else(|| manifest_fail(format!("no prompt for task {task}")))?;
            let text = manifest.expand_image_placeholder(&text);
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
                    return Err(manifest_fail(format!(
                        "the {task} prompt encodes to {n} tokens.image ({image}) tokens, image.image_tokens is {}: does the tokenizer map <image> to {image}?",
                        manifest.image.image_tokens
                    )));
                }
            }
            if prompt.is_empty() {
                return Err(manifest_fail(format!("the {task} prompt is empty")));
            }
            prompts.insert(task, prompt);
        }
        let env = grammar::tok_env(&tok_text, tokenizer, manifest.tokens.eos).map_err(tok_fail)?;
        let mut plans = BTreeMap::new();
        for (task, prompt) in prompts {
            let grammar = match (task, schema, tasks::task_grammar(task, loc)) {
                (_, _, Some((lark, reserve))) => Grammar::compile_lark(env.clone(), &lark, reserve)
                    .map_err(|e| VlmError::Grammar(format!("task {task}: {e}")))?,
                (_, Some(schema), None) => {
                    Grammar::compile(env.clone(), schema).map_err(VlmError::Grammar)?
                }
                (_, None, None) => {
                    return Err(VlmError::Grammar(format!(
                        "task {task} needs a field schema"
                    )))
                }
            };
            if opts.max_new_tokens < grammar.reserve() {
                return Err(VlmError::Grammar(format!(
                    "max_new_tokens {} is below the {} tokens that finishing {} may need",
                    opts.max_new_tokens,
                    grammar.reserve(),
                    if task == Task::Fields {
                        "a record of this schema".to_string()
                    } else {
                        format!("the {task} output")
                    }
                )));
            }
            plans.insert(task, Plan { grammar, prompt });
        }
        ort_environment()?;
        let models = Models::load(model_dir, manifest, opts.threads, opts.accel)?;
        Ok(VlmEngine {
            models,
            plans,
            loc,
            opts,
        })
    }

    /// The tasks the engine was loaded for.
    pub fn tasks(&self) -> Vec<Task> {
        self.plans.keys().copied().collect()
    }

    /// How the tokenizer writes `<loc_N>`.
    pub fn loc_notation(&self) -> LocNotation {
        self.loc
    }

    fn plan(&self, task: Task) -> Result<&Plan, VlmError> {
        self.plans.get(&task).ok_or_else(|| {
            VlmError::Unsupported(format!("the engine was not loaded for task {task}"))
        })
    }

    /// One result per page image for `task` (not `fields`: see
    /// [`VlmEngine::extract_pages`]), in order, coordinates in each image's
    /// pixels. A page whose image cannot be prepared, or whose output gives
    /// nothing (an empty caption), fails alone; the outer `Err` is a model
    /// call that failed.
    pub fn run_task(
        &mut self,
        task: Task,
        pages: &[&image::RgbImage],
    ) -> Result<Vec<Result<TaskResult, VlmError>>, VlmError> {
        if task == Task::Fields {
            return Err(VlmError::Unsupported(
                "run_task does not run fields: use extract_pages".into(),
            ));
        }
        self.plan(task)?;
        let gens = self.generate_pages(task, pages)?;
        let trie = self.plan(task)?.grammar.trie();
        Ok(gens
            .into_iter()
            .enumerate()
            .map(|(page, g)| {
                let g = g?;
                let size = pages[page].dimensions();
                to_task_result(task, trie, self.loc, page, size, g)
            })
            .collect())
    }

    /// Generation for every page under `task`, one result per page: a page
    /// whose image cannot be prepared fails alone.
    fn generate_pages(
        &mut self,
        task: Task,
        pages: &[&image::RgbImage],
    ) -> Result<Vec<Result<Generated, VlmError>>, VlmError> {
        let mut out: Vec<Option<Result<Generated, VlmError>>> =
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
            let gens = self.generate_batch(task, pixels, chunk.len(), true)?;
            for ((page, _), g) in chunk.iter().zip(gens) {
                out[*page] = Some(Ok(g));
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

    /// The manifest the engine was loaded with.
    pub fn manifest(&self) -> &Manifest {
        &self.models.manifest
    }

    /// The `fields` prompt's token ids (the same for every page); empty
    /// when the engine was loaded without `fields`.
    pub fn prompt_ids(&self) -> &[u32] {
        self.plans
            .get(&Task::Fields)
            .map_or(&[][..], |p| p.prompt.as_slice())
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
        self.plan(Task::Fields)?;
        let gens = self.generate_pages(Task::Fields, pages)?;
        let grammar = &self.plan(Task::Fields)?.grammar;
        Ok(gens
            .into_iter()
            .enumerate()
            .map(|(page, g)| to_record(grammar, page, g?))
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
            out.extend(self.generate_batch(Task::Fields, pixels, chunk.len(), use_cache)?);
        }
        Ok(out)
    }

    fn generate_batch(
        &mut self,
        task: Task,
        pixels: Vec<f32>,
        b: usize,
        use_cache: bool,
    ) -> Result<Vec<Generated>, VlmError> {
        let plan = self.plans.get(&task).ok_or_else(|| {
            VlmError::Unsupported(format!("the engine was not loaded for task {task}"))
        })?;
        let prompts = vec![plan.prompt.clone(); b];
        let grammar = &plan.grammar;
        let max_new = self.opts.max_new_tokens;
        let closing_at = max_new.saturating_sub(grammar.reserve());
        let pad = self.models.manifest.tokens.pad;
        let eos = grammar.eos();
        let constrained = self.opts.constrained;
        let mut seqs: Vec<Seq> = (0..b).map(|_| Seq::new(grammar)).collect();
        let t0 = Instant::now();
        let (mut run, mut logits) = self.models.start(pixels, &prompts, use_cache)?;
        let prefill = t0.elapsed();
        let mut steps = Duration::ZERO;
        for step in 0..max_new {
            let mut next = vec![pad; b];
            for (i, seq) in seqs.iter_mut().enumerate() {
                if seq.done {
                    continue;
                }
                let tok = if constrained {
                    seq.choose(grammar, logits.row(i), step >= closing_at)?
                } else {
                    grammar::argmax(logits.row(i))
                        .ok_or_else(|| VlmError::Grammar("the model returned no logits".into()))?
                };
                seq.tokens.push(tok);
                seq.probs.push(grammar::token_prob(logits.row(i), tok));
                if tok == eos {
                    seq.done = true;
                } else if !constrained {
                    next[i] = tok;
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
            let t0 = Instant::now();
            logits = run.step(&next)?;
            steps += t0.elapsed();
        }
        let share = |d: Duration| d / b.max(1) as u32;
        Ok(seqs
            .into_iter()
            .map(|s| {
                let (text, _) = grammar::token_text(grammar.trie(), &s.tokens);
                Generated {
                    tokens: s.tokens,
                    text,
                    token_probs: s.probs,
                    mask_time: s.mask_time,
                    prefill_time: share(prefill),
                    step_time: share(steps),
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
            g.closing_pick(&mask, logits)
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

fn to_task_result(
    task: Task,
    trie: &llguidance::toktrie::TokTrie,
    loc: LocNotation,
    page: usize,
    (w, h): (u32, u32),
    gen: Generated,
) -> Result<TaskResult, VlmError> {
    let text = grammar::task_text(trie, &gen.tokens, loc);
    let size = (w as f32, h as f32);
    let (output, dropped) = match task {
        Task::Caption | Task::DetailedCaption => match tasks::parse_caption(&text) {
            Some(c) => (TaskOutput::Caption(c), Vec::new()),
            None => {
                return Err(VlmError::TaskOutput {
                    page,
                    task,
                    message: "the caption is empty".into(),
                })
            }
        },
        Task::Od => {
            let p = tasks::parse_od(&text, size);
            (TaskOutput::Detections(p.items), p.dropped)
        }
        Task::OcrWithRegion => {
            let p = tasks::parse_ocr_with_region(&text, size);
            (TaskOutput::Lines(p.items), p.dropped)
        }
        Task::Fields => {
            return Err(VlmError::Unsupported(
                "fields output is a record, not a task result".into(),
            ))
        }
    };
    let mean_prob = if gen.token_probs.is_empty() {
        0.0
    } else {
        gen.token_probs.iter().sum::<f32>() / gen.token_probs.len() as f32
    };
    Ok(TaskResult {
        output,
        text,
        tokens: gen.tokens.len(),
        mean_prob,
        dropped,
    })
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
