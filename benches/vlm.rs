//! `cargo bench --bench vlm`: generation speed of the VLMs in
//! `fixtures/vlm/` at batch 1 and batch 8 (KV cache on, 1 intra-op thread):
//! pages and tokens per second, and where the time goes: the prefill (vision
//! encoder, prompt embedding, text encoder, first decoder pass), the later
//! decoder steps, and llguidance's mask.
//!
//! The tiny models are random-weight and a few hundred kB, so their figures
//! measure the engine's own overhead (ONNX Runtime calls, mask computation,
//! token choice) far more than model compute. The trained model
//! (`florence2-docfields`, 1.2 M parameters, 400 image tokens) reads its 8
//! committed pages twice over, constrained and not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use docpipe::extract::vlm::{VlmEngine, VlmOptions};
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PAGES: usize = 16;
const MAX_NEW_TOKENS: usize = 96;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vlm")
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("schema fixture")).expect("schema is JSON")
}

/// Random-pixel pages for the tiny models.
fn noise_pages() -> Vec<RgbImage> {
    (0..PAGES as u32)
        .map(|k| {
            RgbImage::from_fn(96, 128, move |x, y| {
                image::Rgb([
                    (x * 3 + k * 17) as u8,
                    (y * 2 + k * 5) as u8,
                    ((x ^ y) + k) as u8,
                ])
            })
        })
        .collect()
}

/// The trained model's committed generated pages, repeated to `PAGES`.
fn docfields_pages() -> Vec<RgbImage> {
    let dir = fixtures().join("florence2-docfields/pages");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("pages folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    files.sort();
    let imgs: Vec<RgbImage> = files
        .iter()
        .map(|f| image::open(f).expect("page decodes").to_rgb8())
        .collect();
    imgs.iter().cycle().take(PAGES).cloned().collect()
}

struct Row {
    model: &'static str,
    constrained: bool,
    batch: usize,
    tokens: usize,
    wall: Duration,
    prefill: Duration,
    steps: Duration,
    mask: Duration,
}

fn run(
    model: &'static str,
    schema: &Path,
    constrained: bool,
    batch: usize,
    pages: &[&RgbImage],
) -> Row {
    let opts = VlmOptions {
        batch_size: batch,
        max_new_tokens: MAX_NEW_TOKENS,
        threads: 1,
        accel: docpipe::extract::vlm::Accel::Cpu,
        constrained,
    };
    let mut engine =
        VlmEngine::load(&fixtures().join(model), &read_json(schema), opts).expect("model loads");
    // Warm-up: one batch (session allocations, llguidance caches).
    engine
        .generate(&pages[..batch.min(pages.len())], true)
        .unwrap();
    let t0 = Instant::now();
    let out = engine.generate(pages, true).unwrap();
    let wall = t0.elapsed();
    Row {
        model,
        constrained,
        batch,
        tokens: out.iter().map(|g| g.tokens.len()).sum(),
        wall,
        prefill: out.iter().map(|g| g.prefill_time).sum(),
        steps: out.iter().map(|g| g.step_time).sum(),
        mask: out.iter().map(|g| g.mask_time).sum(),
    }
}

fn main() {
    let noise = noise_pages();
    let noise: Vec<&RgbImage> = noise.iter().collect();
    let docs = docfields_pages();
    let docs: Vec<&RgbImage> = docs.iter().collect();
    let tiny_schema = fixtures().join("fields.schema.json");
    let trained_schema = fixtures().join("florence2-docfields/fields.schema.json");
    let mut rows = Vec::new();
    for model in ["florence2-tiny", "smolvlm-tiny"] {
        for batch in [1, 8] {
            rows.push(run(model, &tiny_schema, true, batch, &noise));
        }
    }
    for constrained in [true, false] {
        for batch in [1, 8] {
            rows.push(run(
                "florence2-docfields",
                &trained_schema,
                constrained,
                batch,
                &docs,
            ));
        }
    }
    println!("{PAGES} pages, max {MAX_NEW_TOKENS} new tokens, KV cache, 1 intra-op thread\n");
    println!(
        "{:<20} {:>4} {:>5} {:>6} {:>8} {:>7} {:>8} {:>10} {:>9} {:>7} {:>11}",
        "model",
        "mask",
        "batch",
        "tokens",
        "wall ms",
        "pages/s",
        "tokens/s",
        "prefill %",
        "steps %",
        "mask %",
        "mask us/tok"
    );
    for r in rows {
        let secs = r.wall.as_secs_f64().max(1e-9);
        let pct = |d: Duration| 100.0 * d.as_secs_f64() / secs;
        println!(
            "{:<20} {:>4} {:>5} {:>6} {:>8.1} {:>7.2} {:>8.0} {:>9.1}% {:>8.1}% {:>6.1}% {:>11.1}",
            r.model,
            if r.constrained { "yes" } else { "no" },
            r.batch,
            r.tokens,
            secs * 1e3,
            PAGES as f64 / secs,
            r.tokens as f64 / secs,
            pct(r.prefill),
            pct(r.steps),
            pct(r.mask),
            r.mask.as_secs_f64() * 1e6 / r.tokens.max(1) as f64,
        );
    }
}
