//! `cargo bench --bench vlm`: generation speed of the tiny VLMs in
//! `fixtures/vlm/` at batch 1 and batch 8 (tokens per second, KV cache on),
//! and the cost of llguidance's mask per generated token.
//!
//! The tiny models are random-weight and a few hundred kB, so the figures
//! measure the engine's own overhead (ONNX Runtime calls, mask computation,
//! token choice) far more than model compute.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use docpipe::extract::vlm::{VlmEngine, VlmOptions};
use image::RgbImage;
use std::path::Path;
use std::time::{Duration, Instant};

const PAGES: usize = 16;
const MAX_NEW_TOKENS: usize = 96;

/// The field schema of the VLM tests and bench: each kind of column
/// (`fixtures/vlm/fields.schema.json`).
fn schema() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vlm/fields.schema.json");
    serde_json::from_slice(&std::fs::read(path).expect("schema fixture")).expect("schema is JSON")
}

fn pages() -> Vec<RgbImage> {
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

struct Row {
    model: &'static str,
    batch: usize,
    tokens: usize,
    wall: Duration,
    mask: Duration,
}

fn run(model: &'static str, batch: usize, pages: &[&RgbImage]) -> Row {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/vlm")
        .join(model);
    let opts = VlmOptions {
        batch_size: batch,
        max_new_tokens: MAX_NEW_TOKENS,
        threads: 1,
        accel: docpipe::extract::vlm::Accel::Cpu,
    };
    let mut engine = VlmEngine::load(&dir, &schema(), opts).expect("model loads");
    // Warm-up: one batch (session allocations, llguidance caches).
    engine
        .generate(&pages[..batch.min(pages.len())], true)
        .unwrap();
    let t0 = Instant::now();
    let out = engine.generate(pages, true).unwrap();
    let wall = t0.elapsed();
    Row {
        model,
        batch,
        tokens: out.iter().map(|g| g.tokens.len()).sum(),
        wall,
        mask: out.iter().map(|g| g.mask_time).sum(),
    }
}

fn main() {
    let pages = pages();
    let refs: Vec<&RgbImage> = pages.iter().collect();
    let mut rows = Vec::new();
    for model in ["florence2-tiny", "smolvlm-tiny"] {
        for batch in [1, 8] {
            rows.push(run(model, batch, &refs));
        }
    }
    println!("{PAGES} pages, max {MAX_NEW_TOKENS} new tokens, KV cache, 1 intra-op thread\n");
    println!(
        "{:<16} {:>5} {:>7} {:>9} {:>10} {:>12} {:>7}",
        "model", "batch", "tokens", "wall ms", "tokens/s", "mask us/tok", "mask %"
    );
    for r in rows {
        let secs = r.wall.as_secs_f64();
        let per_tok = r.mask.as_secs_f64() * 1e6 / r.tokens.max(1) as f64;
        println!(
            "{:<16} {:>5} {:>7} {:>9.1} {:>10.0} {:>12.1} {:>6.1}%",
            r.model,
            r.batch,
            r.tokens,
            secs * 1e3,
            r.tokens as f64 / secs.max(1e-9),
            per_tok,
            100.0 * r.mask.as_secs_f64() / secs.max(1e-9)
        );
    }
}
