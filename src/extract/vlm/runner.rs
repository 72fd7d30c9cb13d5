//! The only part of the VLM engine that touches ONNX Runtime: the sessions,
//! checked against the layout's contract at load, and the two ways of
//! driving them step by step (encoder-decoder, decoder-only), with or without
//! the KV cache. Array helpers are pure and tested on their own.

use super::contract::{self, CacheNames, Declared, Role};
use super::manifest::{Architecture, Manifest};
use super::VlmError;
use crate::ocr::model::{session_builder, Accel};
use ort::session::{Session, SessionInputValue};
use ort::value::{DynTensor, DynValue, Outlet, Tensor, TensorElementType, ValueType};
use std::path::Path;

/// One ONNX session in its role.
pub struct Graph {
    /// `decoder (onnx/decoder_model_merged.onnx)`, for messages.
    label: String,
    session: Session,
    /// Optional contract inputs this graph declares.
    optional: Vec<String>,
}

fn declared(outlets: &[Outlet]) -> Vec<Declared> {
    outlets
        .iter()
        .map(|o| match o.dtype() {
            ValueType::Tensor { ty, shape, .. } => Declared {
                name: o.name().to_string(),
                dtype: Some(ty.to_string()),
                rank: shape.len(),
                dims: shape.iter().map(|d| (*d >= 0).then_some(*d)).collect(),
            },
            _ => Declared {
                name: o.name().to_string(),
                dtype: None,
                rank: 0,
                dims: Vec::new(),
            },
        })
        .collect()
}

impl Graph {
    /// Loads `dir/rel` and checks it against the contract of `role`.
    pub fn load(
        dir: &Path,
        rel: &Path,
        role: Role,
        m: &Manifest,
        threads: usize,
        accel: Accel,
    ) -> Result<Self, VlmError> {
        let label = format!("{} ({})", role.name(), rel.display());
        let fail = |message: String| VlmError::Graph {
            graph: label.clone(),
            message,
        };
        let path = dir.join(rel);
        if !path.is_file() {
            return Err(fail(format!("{} does not exist", path.display())));
        }
        // Session-builder errors are not Send: strings right away.
        let session = session_builder(threads, accel, false)
            .map_err(&fail)?
            .commit_from_file(&path)
            .map_err(|e| fail(e.to_string()))?;
        let inputs = declared(session.inputs());
        let outputs = declared(session.outputs());
        let optional =
            contract::check(&contract::contract(m, role), &inputs, &outputs).map_err(&fail)?;
        if role == Role::Decoder {
            contract::check_cache_dims(m, &inputs).map_err(&fail)?;
        }
        Ok(Graph {
            label,
            session,
            optional,
        })
    }

    fn declares(&self, name: &str) -> bool {
        self.optional.iter().any(|n| n == name)
    }

    fn input_type(&self, name: &str) -> Option<TensorElementType> {
        self.session
            .inputs()
            .iter()
            .find(|o| o.name() == name)
            .and_then(|o| o.dtype().tensor_type())
    }

    fn fail(&self, message: impl Into<String>) -> VlmError {
        VlmError::Run {
            graph: self.label.clone(),
            message: message.into(),
        }
    }

    /// Runs the graph and takes the named outputs.
    fn run(
        &mut self,
        inputs: Vec<(String, SessionInputValue<'_>)>,
        want: &[&str],
    ) -> Result<Vec<DynValue>, VlmError> {
        let label = self.label.clone();
        let fail = |message: String| VlmError::Run {
            graph: label.clone(),
            message,
        };
        let mut out = self.session.run(inputs).map_err(|e| fail(e.to_string()))?;
        want.iter()
            .map(|n| {
                out.remove(*n)
                    .ok_or_else(|| fail(format!("no output `{n}`")))
            })
            .collect()
    }
}

/// A float tensor's shape and data.
fn f32_data<'a>(g: &Graph, v: &'a DynValue) -> Result<(Vec<usize>, &'a [f32]), VlmError> {
    let (shape, data) = v
        .try_extract_tensor::<f32>()
        .map_err(|e| g.fail(e.to_string()))?;
    Ok((shape.iter().map(|d| (*d).max(0) as usize).collect(), data))
}

/// An input tensor of `shape` holding `data` (f32 pixels and embeddings,
/// i64 ids and masks, bool flags).
fn tensor<T>(shape: Vec<usize>, data: Vec<T>) -> Result<DynValue, VlmError>
where
    T: ort::value::PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static,
{
    Tensor::from_array((shape, data))
        .map(|t| t.into_dyn())
        .map_err(|e| VlmError::Run {
            graph: "input".into(),
            message: e.to_string(),
        })
}

/// Next-token logits of a batch: row `i` is sequence `i`'s last position.
pub struct Logits {
    data: Vec<f32>,
    vocab: usize,
}

impl Logits {
    /// From a `[b, s, V]` output: the last position of each row.
    fn last_positions(shape: &[usize], data: &[f32]) -> Result<Self, String> {
        let &[b, s, v] = shape else {
            return Err(format!(
                "logits have shape {shape:?}, expected [b, s, vocab]"
            ));
        };
        if s == 0 || v == 0 || data.len() != b * s * v {
            return Err(format!("logits have shape {shape:?}"));
        }
        let mut out = Vec::with_capacity(b * v);
        for i in 0..b {
            let at = (i * s + s - 1) * v;
            out.extend_from_slice(&data[at..at + v]);
        }
        Ok(Logits {
            data: out,
            vocab: v,
        })
    }

    pub fn row(&self, i: usize) -> &[f32] {
        self.data
            .get(i * self.vocab..(i + 1) * self.vocab)
            .unwrap_or(&[])
    }
}

/// Left-pads token sequences to one length: ids, attention mask and
/// position ids (`cumsum(mask) - 1`, padding at 1 as transformers does), all
/// `[b, L]` row-major, and `L`.
pub fn left_pad(prompts: &[Vec<u32>], pad: u32) -> (Vec<i64>, Vec<i64>, Vec<i64>, usize) {
    let len = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(prompts.len() * len);
    let mut mask = Vec::with_capacity(prompts.len() * len);
    let mut pos = Vec::with_capacity(prompts.len() * len);
    for p in prompts {
        let pads = len - p.len();
        ids.extend(std::iter::repeat_n(i64::from(pad), pads));
        mask.extend(std::iter::repeat_n(0, pads));
        pos.extend(std::iter::repeat_n(1, pads));
        ids.extend(p.iter().map(|&t| i64::from(t)));
        mask.extend(std::iter::repeat_n(1, p.len()));
        pos.extend(0..p.len() as i64);
    }
    (ids, mask, pos, len)
}

/// Concatenates `[b, sa, e]` and `[b, sb, e]` along the sequence axis.
pub fn concat_seq(a: &[f32], sa: usize, bb: &[f32], sb: usize, b: usize, e: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(b * (sa + sb) * e);
    for i in 0..b {
        out.extend_from_slice(&a[i * sa * e..(i + 1) * sa * e]);
        out.extend_from_slice(&bb[i * sb * e..(i + 1) * sb * e]);
    }
    out
}

/// Replaces, row by row and in order, the embeddings at `image_id`
/// positions with that row's image features (`[b, t, e]`).
pub fn inject_image(
    embeds: &mut [f32],
    ids: &[i64],
    image_id: u32,
    feats: &[f32],
    (b, len, t, e): (usize, usize, usize, usize),
) -> Result<(), String> {
    for i in 0..b {
        let row = &ids[i * len..(i + 1) * len];
        let slots: Vec<usize> = row
            .iter()
            .enumerate()
            .filter(|(_, &id)| id == i64::from(image_id))
            .map(|(k, _)| k)
            .collect();
        if slots.len() != t {
            return Err(format!(
                "the prompt holds {} image tokens, the vision encoder gives {t} features per image (check image.image_tokens)",
                slots.len()
            ));
        }
        for (j, k) in slots.into_iter().enumerate() {
            let dst = (i * len + k) * e;
            let src = (i * t + j) * e;
            embeds[dst..dst + e].copy_from_slice(&feats[src..src + e]);
        }
    }
    Ok(())
}

/// All sessions of one model.
pub struct Models {
    pub manifest: Manifest,
    vision: Graph,
    embed: Graph,
    encoder: Option<Graph>,
    decoder: Graph,
    names: CacheNames,
}

impl Models {
    pub fn load(
        dir: &Path,
        manifest: Manifest,
        threads: usize,
        accel: Accel,
    ) -> Result<Self, VlmError> {
        let g = &manifest.graphs;
        let vision = Graph::load(
            dir,
            &g.vision_encoder,
            Role::VisionEncoder,
            &manifest,
            threads,
            accel,
        )?;
        let embed = Graph::load(
            dir,
            &g.embed_tokens,
            Role::EmbedTokens,
            &manifest,
            threads,
            accel,
        )?;
        let encoder = match (&g.encoder, manifest.architecture) {
            (Some(p), Architecture::EncoderDecoder) => Some(Graph::load(
                dir,
                p,
                Role::Encoder,
                &manifest,
                threads,
                accel,
            )?),
            _ => None,
        };
        let decoder = Graph::load(dir, &g.decoder, Role::Decoder, &manifest, threads, accel)?;
        let names = CacheNames::new(manifest.architecture, manifest.decoder.layers);
        Ok(Models {
            manifest,
            vision,
            embed,
            encoder,
            decoder,
            names,
        })
    }

    /// Token embeddings `[b, s, e]` and `e`.
    fn embed(&mut self, ids: Vec<i64>, b: usize, s: usize) -> Result<(Vec<f32>, usize), VlmError> {
        let out = self.embed.run(
            vec![("input_ids".into(), tensor(vec![b, s], ids)?.into())],
            &["inputs_embeds"],
        )?;
        let (shape, data) = f32_data(&self.embed, &out[0])?;
        match shape[..] {
            [ob, os, e] if ob == b && os == s => Ok((data.to_vec(), e)),
            _ => Err(self.embed.fail(format!(
                "inputs_embeds has shape {shape:?}, expected [{b}, {s}, e]"
            ))),
        }
    }

    /// Image features `[b, t, e]` for `b` pages of pre-processed pixels.
    fn vision(&mut self, pixels: Vec<f32>, b: usize) -> Result<(Vec<f32>, usize, usize), VlmError> {
        let [h, w] = self.manifest.image.size;
        let (h, w) = (h as usize, w as usize);
        let mut inputs: Vec<(String, SessionInputValue<'_>)> = Vec::new();
        match self.manifest.architecture {
            Architecture::EncoderDecoder => {
                inputs.push((
                    "pixel_values".into(),
                    tensor(vec![b, 3, h, w], pixels)?.into(),
                ));
            }
            Architecture::DecoderOnly => {
                // One global image per page (no tiling): n_img = 1.
                inputs.push((
                    "pixel_values".into(),
                    tensor(vec![b, 1, 3, h, w], pixels)?.into(),
                ));
                if self.vision.declares("pixel_attention_mask") {
                    inputs.push((
                        "pixel_attention_mask".into(),
                        tensor(vec![b, 1, h, w], vec![true; b * h * w])?.into(),
                    ));
                }
            }
        }
        let out = self.vision.run(inputs, &["image_features"])?;
        let (shape, data) = f32_data(&self.vision, &out[0])?;
        match shape[..] {
            [n, t, e] if n == b && t > 0 => Ok((data.to_vec(), t, e)),
            _ => Err(self.vision.fail(format!(
                "image_features has shape {shape:?}, expected [{b}, tokens, hidden]"
            ))),
        }
    }

    /// Empty past tensors `[b, kv_heads, 0, head_dim]` of the declared type.
    fn empty_past(&self, names: &[String], b: usize) -> Result<Vec<DynValue>, VlmError> {
        let d = self.manifest.decoder;
        names
            .iter()
            .map(|n| {
                let ty = self
                    .decoder
                    .input_type(n)
                    .ok_or_else(|| self.decoder.fail(format!("no input `{n}`")))?;
                DynTensor::new(
                    self.decoder.session.allocator(),
                    ty,
                    [b, d.kv_heads, 0usize, d.head_dim],
                )
                .map(|t| t.into_dyn())
                .map_err(|e| self.decoder.fail(e.to_string()))
            })
            .collect()
    }

    /// Starts a batch: runs the vision encoder (and the text encoder), then the
    /// decoder over the prompt. `prompts[i]` are page `i`'s prompt ids.
    pub fn start(
        &mut self,
        pixels: Vec<f32>,
        prompts: &[Vec<u32>],
        use_cache: bool,
    ) -> Result<(Batch<'_>, Logits), VlmError> {
        match self.manifest.architecture {
            Architecture::DecoderOnly => DecoderOnly::start(self, pixels, prompts, use_cache)
                .map(|(s, l)| (Batch::DecoderOnly(s), l)),
            Architecture::EncoderDecoder => Seq2Seq::start(self, pixels, prompts, use_cache)
                .map(|(s, l)| (Batch::Seq2Seq(s), l)),
        }
    }
}

/// A batch being decoded.
pub enum Batch<'m> {
    DecoderOnly(DecoderOnly<'m>),
    Seq2Seq(Seq2Seq<'m>),
}

impl Batch<'_> {
    /// Appends one token per sequence and returns the next logits.
    pub fn step(&mut self, next: &[u32]) -> Result<Logits, VlmError> {
        match self {
            Batch::DecoderOnly(s) => s.step(next),
            Batch::Seq2Seq(s) => s.step(next),
        }
    }
}

/// Decoder-only state (SmolVLM / Idefics3).
pub struct DecoderOnly<'m> {
    m: &'m mut Models,
    use_cache: bool,
    b: usize,
    hidden: usize,
    /// Prompt embeddings with the image features in place, `[b, len, e]`.
    prefix: Vec<f32>,
    prefix_mask: Vec<i64>,
    len: usize,
    /// Tokens fed after the prompt, `[b, t]` row-major by step.
    fed: Vec<Vec<u32>>,
    /// Attention mask so far, `[b, past + s]`, and next position per row.
    mask: Vec<Vec<i64>>,
    next_pos: Vec<i64>,
    past: Vec<DynValue>,
}

impl<'m> DecoderOnly<'m> {
    fn start(
        m: &'m mut Models,
        pixels: Vec<f32>,
        prompts: &[Vec<u32>],
        use_cache: bool,
    ) -> Result<(Self, Logits), VlmError> {
        let b = prompts.len();
        let (feats, t, fe) = m.vision(pixels, b)?;
        let pad = m.manifest.tokens.pad;
        let (ids, mask, pos, len) = left_pad(prompts, pad);
        let image_id = m.manifest.tokens.image.ok_or_else(|| VlmError::Manifest {
            path: "docpipe.json".into(),
            message: "tokens.image is required for a decoder-only model".into(),
        })?;
        let (mut embeds, e) = m.embed(ids.clone(), b, len)?;
        if fe != e {
            return Err(m.vision.fail(format!(
                "image features have width {fe}, the token embeddings {e}"
            )));
        }
        inject_image(&mut embeds, &ids, image_id, &feats, (b, len, t, e))
            .map_err(|msg| m.vision.fail(msg))?;
        let mut state = DecoderOnly {
            m,
            use_cache,
            b,
            hidden: e,
            prefix: embeds,
            prefix_mask: mask.clone(),
            len,
            fed: vec![Vec::new(); b],
            mask: mask.chunks(len.max(1)).map(<[i64]>::to_vec).collect(),
            next_pos: prompts.iter().map(|p| p.len() as i64).collect(),
            past: Vec::new(),
        };
        if len == 0 {
            state.mask = vec![Vec::new(); b];
        }
        let logits = state.run(state.prefix.clone(), len, mask, pos, None)?;
        Ok((state, logits))
    }

    /// Runs the decoder over `embeds` (`[b, s, e]`) with the given mask and
    /// positions; `past` None = empty past.
    fn run(
        &mut self,
        embeds: Vec<f32>,
        s: usize,
        mask: Vec<i64>,
        pos: Vec<i64>,
        past: Option<Vec<DynValue>>,
    ) -> Result<Logits, VlmError> {
        let b = self.b;
        let total = mask.len() / b.max(1);
        let past = match past {
            Some(p) => p,
            None => self.m.empty_past(&self.m.names.past, b)?,
        };
        let mut inputs: Vec<(String, SessionInputValue<'_>)> = vec![
            (
                "inputs_embeds".into(),
                tensor(vec![b, s, self.hidden], embeds)?.into(),
            ),
            (
                "attention_mask".into(),
                tensor(vec![b, total], mask)?.into(),
            ),
            ("position_ids".into(), tensor(vec![b, s], pos)?.into()),
        ];
        for (n, v) in self.m.names.past.iter().zip(past) {
            inputs.push((n.clone(), v.into()));
        }
        let mut want = vec!["logits"];
        if self.use_cache {
            want.extend(self.m.names.present.iter().map(String::as_str));
        }
        let mut out = self.m.decoder.run(inputs, &want)?;
        let presents = out.split_off(1);
        let (shape, data) = f32_data(&self.m.decoder, &out[0])?;
        let logits = Logits::last_positions(&shape, data).map_err(|e| self.m.decoder.fail(e))?;
        self.past = presents;
        Ok(logits)
    }

    fn step(&mut self, next: &[u32]) -> Result<Logits, VlmError> {
        let b = self.b;
        for (row, &t) in self.fed.iter_mut().zip(next) {
            row.push(t);
        }
        for row in &mut self.mask {
            row.push(1);
        }
        if self.use_cache {
            let ids = next.iter().map(|&t| i64::from(t)).collect();
            let (emb, _) = self.m.embed(ids, b, 1)?;
            let pos = self.next_pos.clone();
            for p in &mut self.next_pos {
                *p += 1;
            }
            let mask = self.mask.concat();
            let past = std::mem::take(&mut self.past);
            self.run(emb, 1, mask, pos, Some(past))
        } else {
            // Recompute the whole sequence: prompt embeddings + every token
            // fed so far, empty past.
            let t = self.fed.first().map_or(0, Vec::len);
            let ids = self
                .fed
                .iter()
                .flat_map(|r| r.iter().map(|&x| i64::from(x)))
                .collect();
            let (emb, e) = self.m.embed(ids, b, t)?;
            let embeds = concat_seq(&self.prefix, self.len, &emb, t, b, e);
            let mut mask = Vec::with_capacity(b * (self.len + t));
            let mut pos = Vec::with_capacity(b * (self.len + t));
            for i in 0..b {
                let row = &self.prefix_mask[i * self.len..(i + 1) * self.len];
                let mut seen = 0i64;
                for &v in row.iter().chain(std::iter::repeat_n(&1, t)) {
                    mask.push(v);
                    seen += v;
                    pos.push(if v == 0 { 1 } else { seen - 1 });
                }
            }
            self.run(embeds, self.len + t, mask, pos, None)
        }
    }
}

/// Encoder-decoder state (Florence-2).
pub struct Seq2Seq<'m> {
    m: &'m mut Models,
    use_cache: bool,
    b: usize,
    enc_hidden: DynValue,
    enc_mask: Vec<i64>,
    enc_len: usize,
    /// Decoder inputs so far per row (start tokens, then generated).
    dec_ids: Vec<Vec<u32>>,
    past: Vec<DynValue>,
    cross: Vec<DynValue>,
}

impl<'m> Seq2Seq<'m> {
    fn start(
        m: &'m mut Models,
        pixels: Vec<f32>,
        prompts: &[Vec<u32>],
        use_cache: bool,
    ) -> Result<(Self, Logits), VlmError> {
        let b = prompts.len();
        let (feats, t, fe) = m.vision(pixels, b)?;
        // The encoder is bidirectional: pad prompts on the right, masked.
        let p = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let pad = i64::from(m.manifest.tokens.pad);
        let mut ids = Vec::with_capacity(b * p);
        let mut enc_mask = Vec::with_capacity(b * (t + p));
        for row in prompts {
            ids.extend(row.iter().map(|&x| i64::from(x)));
            ids.extend(std::iter::repeat_n(pad, p - row.len()));
            enc_mask.extend(std::iter::repeat_n(1, t + row.len()));
            enc_mask.extend(std::iter::repeat_n(0, p - row.len()));
        }
        let (text, e) = if p > 0 {
            m.embed(ids, b, p)?
        } else {
            (Vec::new(), fe)
        };
        if fe != e {
            return Err(m.vision.fail(format!(
                "image features have width {fe}, the token embeddings {e}"
            )));
        }
        let enc_in = concat_seq(&feats, t, &text, p, b, e);
        let enc_len = t + p;
        let encoder = m.encoder.as_mut().ok_or_else(|| VlmError::Manifest {
            path: "docpipe.json".into(),
            message: "graphs.encoder is required for an encoder-decoder model".into(),
        })?;
        let mut out = encoder.run(
            vec![
                (
                    "attention_mask".into(),
                    tensor(vec![b, enc_len], enc_mask.clone())?.into(),
                ),
                (
                    "inputs_embeds".into(),
                    tensor(vec![b, enc_len, e], enc_in)?.into(),
                ),
            ],
            &["last_hidden_state"],
        )?;
        let enc_hidden = out.remove(0);
        let prefix = m.manifest.decoder_prefix();
        let mut state = Seq2Seq {
            m,
            use_cache,
            b,
            enc_hidden,
            enc_mask,
            enc_len,
            dec_ids: vec![prefix; b],
            past: Vec::new(),
            cross: Vec::new(),
        };
        let logits = state.run_full()?;
        Ok((state, logits))
    }

    /// Decoder over every decoder token so far with an empty past (step 0,
    /// and every step without the cache).
    fn run_full(&mut self) -> Result<Logits, VlmError> {
        let b = self.b;
        let s = self.dec_ids.first().map_or(0, Vec::len);
        let ids = self
            .dec_ids
            .iter()
            .flat_map(|r| r.iter().map(|&x| i64::from(x)))
            .collect();
        let (emb, e) = self.m.embed(ids, b, s)?;
        let past = self.m.empty_past(&self.m.names.past, b)?;
        let cross = self.m.empty_past(&self.m.names.cross_past, b)?;
        self.run(emb, s, e, past, cross, false)
    }

    fn run(
        &mut self,
        emb: Vec<f32>,
        s: usize,
        e: usize,
        past: Vec<DynValue>,
        cross: Vec<DynValue>,
        cached: bool,
    ) -> Result<Logits, VlmError> {
        let b = self.b;
        let mut inputs: Vec<(String, SessionInputValue<'_>)> = vec![
            ("inputs_embeds".into(), tensor(vec![b, s, e], emb)?.into()),
            ("encoder_hidden_states".into(), (&self.enc_hidden).into()),
        ];
        if self.m.decoder.declares("encoder_attention_mask") {
            inputs.push((
                "encoder_attention_mask".into(),
                tensor(vec![b, self.enc_len], self.enc_mask.clone())?.into(),
            ));
        }
        if self.m.decoder.declares("use_cache_branch") {
            inputs.push((
                "use_cache_branch".into(),
                tensor(vec![1], vec![cached])?.into(),
            ));
        }
        let names = &self.m.names;
        for (n, v) in names.past.iter().zip(past) {
            inputs.push((n.clone(), v.into()));
        }
        let keep_cross = cached;
        let cross_refs: Vec<(String, SessionInputValue<'_>)> = if keep_cross {
            names
                .cross_past
                .iter()
                .zip(&self.cross)
                .map(|(n, v)| (n.clone(), v.into()))
                .collect()
        } else {
            names
                .cross_past
                .iter()
                .cloned()
                .zip(cross)
                .map(|(n, v)| (n, v.into()))
                .collect()
        };
        inputs.extend(cross_refs);
        let mut want = vec!["logits"];
        let take_present = self.use_cache;
        let take_cross = self.use_cache && !cached;
        if take_present {
            want.extend(names.present.iter().map(String::as_str));
        }
        if take_cross {
            want.extend(names.cross_present.iter().map(String::as_str));
        }
        let n_present = names.present.len();
        let mut out = self.m.decoder.run(inputs, &want)?;
        let mut rest = out.split_off(1);
        let (shape, data) = f32_data(&self.m.decoder, &out[0])?;
        let logits = Logits::last_positions(&shape, data).map_err(|e| self.m.decoder.fail(e))?;
        if take_present {
            let cross_out = rest.split_off(n_present.min(rest.len()));
            self.past = rest;
            if take_cross {
                // Cross-attention k/v come from step 0 only; later steps of
                // a merged decoder return placeholders (Optimum's merging).
                self.cross = cross_out;
            }
        }
        Ok(logits)
    }

    fn step(&mut self, next: &[u32]) -> Result<Logits, VlmError> {
        for (row, &t) in self.dec_ids.iter_mut().zip(next) {
            row.push(t);
        }
        if !self.use_cache {
            return self.run_full();
        }
        let ids = next.iter().map(|&t| i64::from(t)).collect();
        let (emb, e) = self.m.embed(ids, self.b, 1)?;
        let past = std::mem::take(&mut self.past);
        self.run(emb, 1, e, past, Vec::new(), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_padding() {
        let (ids, mask, pos, len) = left_pad(&[vec![5, 6, 7], vec![8]], 1);
        assert_eq!(len, 3);
        assert_eq!(ids, [5, 6, 7, 1, 1, 8]);
        assert_eq!(mask, [1, 1, 1, 0, 0, 1]);
        assert_eq!(pos, [0, 1, 2, 1, 1, 0]);
        let (ids, _, _, len) = left_pad(&[], 1);
        assert!(ids.is_empty());
        assert_eq!(len, 0);
    }

    #[test]
    fn concat_along_sequence() {
        // b = 2, e = 1: [[1,2],[3,4]] ++ [[9],[8]]
        let out = concat_seq(&[1.0, 2.0, 3.0, 4.0], 2, &[9.0, 8.0], 1, 2, 1);
        assert_eq!(out, [1.0, 2.0, 9.0, 3.0, 4.0, 8.0]);
    }

    #[test]
    fn image_features_fill_placeholders_in_order() {
        // b = 2, len = 4, t = 2, e = 2; image id 7.
        let ids = [1, 7, 7, 2, 7, 3, 7, 2];
        let mut emb = vec![0.0; 2 * 4 * 2];
        let feats = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5];
        inject_image(&mut emb, &ids, 7, &feats, (2, 4, 2, 2)).unwrap();
        assert_eq!(
            emb,
            [0.0, 0.0, 1.0, 1.5, 2.0, 2.5, 0.0, 0.0, 3.0, 3.5, 0.0, 0.0, 4.0, 4.5, 0.0, 0.0]
        );
        let err = inject_image(&mut emb, &ids[..4], 7, &feats, (1, 4, 3, 2)).unwrap_err();
        assert!(err.contains("2 image tokens"), "{err}");
    }

    #[test]
    fn last_position_logits() {
        // b = 2, s = 2, v = 3
        let data = [0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11.];
        let l = Logits::last_positions(&[2, 2, 3], &data).unwrap();
        assert_eq!(l.row(0), [3., 4., 5.]);
        assert_eq!(l.row(1), [9., 10., 11.]);
        assert!(l.row(2).is_empty());
        assert!(Logits::last_positions(&[2, 0, 3], &[]).is_err());
        assert!(Logits::last_positions(&[6], &data[..6]).is_err());
    }
}
