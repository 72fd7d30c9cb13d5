//! `docpipe.json`: the manifest beside an ONNX VLM export that names the
//! graphs' roles, the image pre-processing, the prompt and the special tokens
//! (format `docpipe-vlm/1`, see the README and `VLM-EXPORTS.md`).

use super::tasks::Task;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The manifest format this engine reads.
pub const FORMAT: &str = "docpipe-vlm/1";

/// How the graphs fit together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// Florence-2: vision encoder + text encoder over `[image; prompt]`, then a
    /// merged decoder with self- and cross-attention caches.
    EncoderDecoder,
    /// SmolVLM / Idefics3: image features replace the `<image>` embeddings of
    /// the prompt, and one merged decoder runs over the whole sequence.
    DecoderOnly,
}

/// File names of the graphs, relative to the model folder.
#[derive(Debug, Clone, Deserialize)]
pub struct Graphs {
    pub vision_encoder: PathBuf,
    pub embed_tokens: PathBuf,
    /// Encoder-decoder only.
    #[serde(default)]
    pub encoder: Option<PathBuf>,
    pub decoder: PathBuf,
}

/// Image pre-processing.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageSpec {
    /// Model input size `[height, width]` in pixels (Florence-2 768x768,
    /// SmolVLM 512x512 per tile; the tiny fixtures 64x64). The page is resized
    /// to exactly this size; the aspect ratio is not kept (as the reference
    /// processors do).
    pub size: [u32; 2],
    /// Per-channel mean and standard deviation applied after scaling to
    /// 0..=1 (`(v / 255 - mean) / std`), in RGB order.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// `bicubic` (default), `bilinear`, `lanczos` or `nearest`.
    #[serde(default = "default_resample")]
    pub resample: String,
    /// SmolVLM's tiling (512 px tiles plus a global image). Only `false` is
    /// implemented: every page is one global image.
    #[serde(default)]
    pub tiles: bool,
    /// Feature vectors the vision encoder gives per image (Florence-2 base
    /// 577, SmolVLM 64 per tile).
    pub image_tokens: usize,
}

fn default_resample() -> String {
    "bicubic".into()
}

/// Special token ids. `bos`, `pad` and `eos` are required; the others depend
/// on the layout. Unknown keys are kept in `other`.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    #[serde(default)]
    pub bos: Option<u32>,
    pub pad: u32,
    pub eos: u32,
    /// Encoder-decoder: the first decoder input (Florence-2: 2).
    #[serde(default)]
    pub decoder_start: Option<u32>,
    /// Decoder-only: the `<image>` placeholder whose embeddings the image
    /// features replace.
    #[serde(default)]
    pub image: Option<u32>,
    /// Encoder-decoder: the token forced as the first generated one
    /// (Florence-2's `forced_bos_token_id`, 0).
    #[serde(default)]
    pub forced_bos: Option<u32>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Decoder sizes: the past key/value tensors are `[b, kv_heads, past, head_dim]`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct DecoderSpec {
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub hidden: usize,
}

/// Encoder sizes (encoder-decoder only; informative).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct EncoderSpec {
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
}

/// The parsed `docpipe.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub architecture: Architecture,
    /// `florence2`, `smolvlm`, ... (selects small family conventions such as
    /// Florence-2's forced `<s>` after the decoder start token).
    pub family: String,
    pub graphs: Graphs,
    pub image: ImageSpec,
    /// Prompt template; `{schema}` becomes the compact field schema and, for
    /// decoder-only models, `{question}` becomes [`Manifest::question`].
    pub prompt: String,
    #[serde(default)]
    pub question: Option<String>,
    pub tokens: Tokens,
    pub decoder: DecoderSpec,
    #[serde(default)]
    pub encoder: Option<EncoderSpec>,
    /// What the export can be asked for ([`Manifest::supported_tasks`]);
    /// absent: `["fields"]` only (manifests written before tasks existed).
    #[serde(default)]
    pub tasks: Option<Vec<Task>>,
    /// Per task other than `fields`, its question: for a decoder-only
    /// export it takes `{question}`'s place in `prompt`; for an
    /// encoder-decoder export it is the whole prompt text. Family
    /// `florence2` needs none: `<s>` + Florence-2's own text prompt + `</s>`
    /// ([`Task::florence_prompt`]).
    #[serde(default)]
    pub task_prompts: BTreeMap<Task, String>,
}

impl Manifest {
    /// Parses and checks a manifest; `Err` holds a message naming the
    /// offending field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let m: Manifest = serde_json::from_str(text).map_err(|e| e.to_string())?;
        m.check()?;
        Ok(m)
    }

    /// Reads `dir/docpipe.json`.
    pub fn read(dir: &Path) -> Result<Self, (PathBuf, String)> {
        let path = dir.join("docpipe.json");
        let text = std::fs::read_to_string(&path).map_err(|e| (path.clone(), e.to_string()))?;
        Self::parse(&text).map_err(|e| (path, e))
    }

    fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format is {:?}, this docpipe reads {FORMAT:?}",
                self.format
            ));
        }
        let [h, w] = self.image.size;
        if h == 0 || w == 0 || h > 8192 || w > 8192 {
            return Err(format!("image.size {h}x{w} is outside 1..=8192"));
        }
        if self.image.std.iter().any(|s| !s.is_finite() || *s <= 0.0)
            || self.image.mean.iter().any(|m| !m.is_finite())
        {
            return Err("image.mean must be finite and image.std positive".into());
        }
        if resample_filter(&self.image.resample).is_none() {
            return Err(format!(
                "image.resample {:?} is not one of bicubic, bilinear, lanczos, nearest",
                self.image.resample
            ));
        }
        if self.image.tiles {
            return Err(
                "image.tiles = true (SmolVLM tiling) is not supported yet; set it to false to feed one global image per page"
                    .into(),
            );
        }
        if self.image.image_tokens == 0 {
            return Err("image.image_tokens must be at least 1".into());
        }
        let d = &self.decoder;
        if d.layers == 0 || d.kv_heads == 0 || d.head_dim == 0 || d.hidden == 0 {
            return Err("decoder.layers, kv_heads, head_dim and hidden must be at least 1".into());
        }
        if let Some(tasks) = &self.tasks {
            if tasks.is_empty() {
                return Err(
                    "tasks is empty: list what the export can do (e.g. [\"fields\"])".into(),
                );
            }
        }
        let tasks = self.supported_tasks();
        for task in self.task_prompts.keys() {
            if !tasks.contains(task) {
                return Err(format!(
                    "task_prompts.{task}: {task} is not in tasks {:?}",
                    tasks.iter().map(|t| t.name()).collect::<Vec<_>>()
                ));
            }
        }
        for &task in &tasks {
            if task != Task::Fields
                && !self.task_prompts.contains_key(&task)
                && self.family != "florence2"
            {
                return Err(format!(
                    "tasks lists {task} but task_prompts.{task} is missing (only family florence2 has built-in task prompts)"
                ));
            }
        }
        match self.architecture {
            Architecture::EncoderDecoder => {
                if self.graphs.encoder.is_none() {
                    return Err("graphs.encoder is required for an encoder-decoder model".into());
                }
                if self.tokens.decoder_start.is_none() {
                    return Err(
                        "tokens.decoder_start is required for an encoder-decoder model".into(),
                    );
                }
            }
            Architecture::DecoderOnly => {
                if !self.prompt.contains("<image>") {
                    return Err("a decoder-only prompt must contain the <image> placeholder".into());
                }
                if self.tokens.image.is_none() {
                    return Err(
                        "tokens.image (the <image> token id) is required for a decoder-only model"
                            .into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// The tasks this export supports: `tasks`, or `fields` alone.
    pub fn supported_tasks(&self) -> Vec<Task> {
        self.tasks.clone().unwrap_or_else(|| vec![Task::Fields])
    }

    /// The prompt text for `task` (before the `<image>` expansion);
    /// `schema_json` is used by `fields` only. `None` when the manifest
    /// does not list the task.
    pub fn task_prompt_text(&self, task: Task, schema_json: &str) -> Option<String> {
        if !self.supported_tasks().contains(&task) {
            return None;
        }
        if task == Task::Fields {
            return Some(self.prompt_text(schema_json));
        }
        let question = match self.task_prompts.get(&task) {
            Some(q) => q.clone(),
            None => task.florence_prompt()?.to_string(),
        };
        Some(match self.architecture {
            Architecture::DecoderOnly => self
                .prompt
                .replace("{question}", &question)
                .replace("{schema}", ""),
            Architecture::EncoderDecoder if self.task_prompts.contains_key(&task) => question,
            Architecture::EncoderDecoder => format!("<s>{question}</s>"),
        })
    }

    /// The prompt text for a field schema given in compact JSON.
    pub fn prompt_text(&self, schema_json: &str) -> String {
        let question = self
            .question
            .as_deref()
            .unwrap_or("")
            .replace("{schema}", schema_json);
        self.prompt
            .replace("{question}", &question)
            .replace("{schema}", schema_json)
    }

    /// Decoder-only: `<image>` in the prompt becomes Idefics3's single-image
    /// block, `<fake_token_around_image><global-img>` + `image_tokens` x
    /// `<image>` + `<fake_token_around_image>` (transformers'
    /// `_prompt_single_image`, used when the image is not split into tiles).
    pub fn expand_image_placeholder(&self, prompt: &str) -> String {
        match self.architecture {
            Architecture::EncoderDecoder => prompt.to_string(),
            Architecture::DecoderOnly => {
                let block = format!(
                    "<fake_token_around_image><global-img>{}<fake_token_around_image>",
                    "<image>".repeat(self.image.image_tokens)
                );
                prompt.replace("<image>", &block)
            }
        }
    }

    /// The decoder's first inputs for an encoder-decoder model: the start
    /// token, then the forced first token (`tokens.forced_bos`; for family
    /// `florence2` without it, `tokens.bos`, after Florence-2's
    /// `forced_bos_token_id`), so that generation under the grammar begins
    /// at the first content token.
    pub fn decoder_prefix(&self) -> Vec<u32> {
        let mut ids = Vec::new();
        if let Some(start) = self.tokens.decoder_start {
            ids.push(start);
        }
        let forced = self.tokens.forced_bos.or(if self.family == "florence2" {
            self.tokens.bos
        } else {
            None
        });
        ids.extend(forced);
        ids
    }
}

/// The tasks `dir/docpipe.json` lists (`fields` alone without `tasks`),
/// read without checking the rest of the manifest (for `docpipe check`);
/// `None` when the file or its `tasks` cannot be read.
pub fn read_tasks(dir: &Path) -> Option<Vec<Task>> {
    let text = std::fs::read_to_string(dir.join("docpipe.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    match v.get("tasks") {
        None | Some(serde_json::Value::Null) => Some(vec![Task::Fields]),
        Some(t) => serde_json::from_value(t.clone()).ok(),
    }
}

/// The `image` crate filter for a manifest's `resample` name.
pub fn resample_filter(name: &str) -> Option<image::imageops::FilterType> {
    use image::imageops::FilterType;
    match name {
        "bicubic" => Some(FilterType::CatmullRom),
        "bilinear" => Some(FilterType::Triangle),
        "lanczos" => Some(FilterType::Lanczos3),
        "nearest" => Some(FilterType::Nearest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn florence() -> serde_json::Value {
        serde_json::json!({
            "format": "docpipe-vlm/1",
            "architecture": "encoder-decoder",
            "family": "florence2",
            "graphs": {"vision_encoder": "onnx/vision_encoder.onnx", "embed_tokens": "onnx/embed_tokens.onnx",
                       "encoder": "onnx/encoder_model.onnx", "decoder": "onnx/decoder_model_merged.onnx"},
            "image": {"size": [64, 64], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                      "resample": "bicubic", "tiles": false, "image_tokens": 16},
            "prompt": "<s>Extract the fields as JSON: {schema}</s>",
            "tokens": {"bos": 0, "pad": 1, "eos": 2, "decoder_start": 2},
            "decoder": {"layers": 2, "kv_heads": 2, "head_dim": 16, "hidden": 32},
            "encoder": {"layers": 1, "heads": 2, "head_dim": 16}
        })
    }

    #[test]
    fn parses_and_rejects() {
        struct Case {
            name: &'static str,
            edit: fn(&mut serde_json::Value),
            error: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "valid",
                edit: |_| {},
                error: None,
            },
            Case {
                name: "wrong format",
                edit: |v| v["format"] = "docpipe-vlm/2".into(),
                error: Some("format"),
            },
            Case {
                name: "no encoder graph",
                edit: |v| {
                    v["graphs"].as_object_mut().map(|g| g.remove("encoder"));
                },
                error: Some("graphs.encoder"),
            },
            Case {
                name: "zero size",
                edit: |v| v["image"]["size"] = serde_json::json!([0, 64]),
                error: Some("image.size"),
            },
            Case {
                name: "bad resample",
                edit: |v| v["image"]["resample"] = "cubic".into(),
                error: Some("resample"),
            },
            Case {
                name: "tiles",
                edit: |v| v["image"]["tiles"] = true.into(),
                error: Some("tiles"),
            },
            Case {
                name: "unknown architecture",
                edit: |v| v["architecture"] = "mixture".into(),
                error: Some("unknown variant"),
            },
            Case {
                name: "decoder-only without <image>",
                edit: |v| v["architecture"] = "decoder-only".into(),
                error: Some("<image>"),
            },
        ];
        for case in cases {
            let mut v = florence();
            (case.edit)(&mut v);
            let got = Manifest::parse(&v.to_string());
            match (case.error, got) {
                (None, Ok(m)) => {
                    assert_eq!(m.architecture, Architecture::EncoderDecoder);
                    assert_eq!(m.decoder_prefix(), vec![2, 0]);
                }
                (Some(want), Err(e)) => assert!(e.contains(want), "{}: {e}", case.name),
                (want, got) => panic!("{}: wanted {want:?}, got {got:?}", case.name),
            }
        }
    }

    #[test]
    fn tasks_and_their_prompts() {
        // No `tasks`: fields only.
        let m = Manifest::parse(&florence().to_string()).unwrap();
        assert_eq!(m.supported_tasks(), vec![Task::Fields]);
        assert_eq!(m.task_prompt_text(Task::Caption, ""), None);
        let mut v = florence();
        v["tasks"] = serde_json::json!(["fields", "caption", "od", "ocr_with_region"]);
        let m = Manifest::parse(&v.to_string()).unwrap();
        assert_eq!(
            m.task_prompt_text(Task::Od, "").as_deref(),
            Some("<s>Locate the objects with category name in the image.</s>")
        );
        assert_eq!(m.task_prompt_text(Task::DetailedCaption, ""), None);
        assert_eq!(
            m.task_prompt_text(Task::Fields, "{}").as_deref(),
            Some("<s>Extract the fields as JSON: {}</s>")
        );
        v["task_prompts"] = serde_json::json!({"caption": "<s>Caption it.</s>"});
        let m = Manifest::parse(&v.to_string()).unwrap();
        assert_eq!(
            m.task_prompt_text(Task::Caption, "").as_deref(),
            Some("<s>Caption it.</s>")
        );
        struct Case {
            tasks: serde_json::Value,
            prompts: serde_json::Value,
            error: &'static str,
        }
        let cases = [
            Case {
                tasks: serde_json::json!(["fields", "segment"]),
                prompts: serde_json::json!({}),
                error: "unknown variant `segment`",
            },
            Case {
                tasks: serde_json::json!([]),
                prompts: serde_json::json!({}),
                error: "tasks is empty",
            },
            Case {
                tasks: serde_json::json!(["fields"]),
                prompts: serde_json::json!({"od": "boxes"}),
                error: "task_prompts.od",
            },
        ];
        for c in cases {
            let mut v = florence();
            v["tasks"] = c.tasks;
            v["task_prompts"] = c.prompts;
            let e = Manifest::parse(&v.to_string()).unwrap_err();
            assert!(e.contains(c.error), "{e}");
        }
        // Decoder-only: a prompt per task, put in `{question}`.
        let mut v = florence();
        v["architecture"] = "decoder-only".into();
        v["family"] = "smolvlm".into();
        v["tokens"]["image"] = 9.into();
        v["prompt"] = "<|im_start|>User:<image>{question}<end_of_utterance>\nAssistant:".into();
        v["tasks"] = serde_json::json!(["caption", "od"]);
        v["task_prompts"] = serde_json::json!({"caption": "Describe the page."});
        let e = Manifest::parse(&v.to_string()).unwrap_err();
        assert!(e.contains("task_prompts.od is missing"), "{e}");
        v["task_prompts"]["od"] = "Boxes.".into();
        let m = Manifest::parse(&v.to_string()).unwrap();
        assert_eq!(
            m.task_prompt_text(Task::Caption, "").as_deref(),
            Some("<|im_start|>User:<image>Describe the page.<end_of_utterance>\nAssistant:")
        );
        assert_eq!(m.task_prompt_text(Task::Fields, ""), None);
    }

    #[test]
    fn prompt_and_image_block() {
        let mut v = florence();
        v["architecture"] = "decoder-only".into();
        v["family"] = "smolvlm".into();
        v["image"]["image_tokens"] = 2.into();
        v["prompt"] = "<|im_start|>User:<image>{question}<end_of_utterance>\nAssistant:".into();
        v["question"] = "Fields: {schema}".into();
        assert!(Manifest::parse(&v.to_string())
            .unwrap_err()
            .contains("tokens.image"));
        v["tokens"]["image"] = 9.into();
        let m = Manifest::parse(&v.to_string()).unwrap();
        let p = m.prompt_text("{\"a\":1}");
        assert_eq!(
            p,
            "<|im_start|>User:<image>Fields: {\"a\":1}<end_of_utterance>\nAssistant:"
        );
        assert_eq!(
            m.expand_image_placeholder(&p),
            "<|im_start|>User:<fake_token_around_image><global-img><image><image><fake_token_around_image>Fields: {\"a\":1}<end_of_utterance>\nAssistant:"
        );
        // No forced <s> outside Florence-2 unless the manifest names one.
        assert_eq!(m.decoder_prefix(), vec![2]);
        v["tokens"]["forced_bos"] = 7.into();
        let m = Manifest::parse(&v.to_string()).unwrap();
        assert_eq!(m.decoder_prefix(), vec![2, 7]);
    }
}
