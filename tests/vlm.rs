//! The VLM engine against the tiny random-weight models in `fixtures/vlm/`
//! (Florence-2 and SmolVLM layouts): schema-valid records, batch = singles,
//! cache = no cache, and refusal of graphs that break the contract.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use docpipe::extract::vlm::{VlmEngine, VlmError, VlmOptions};
use image::RgbImage;
use std::path::{Path, PathBuf};

const MODELS: [&str; 2] = ["florence2-tiny", "smolvlm-tiny"];

fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/vlm")
        .join(name)
}

/// The field schema of the VLM tests and bench: each kind of column
/// (`fixtures/vlm/fields.schema.json`).
fn schema() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vlm/fields.schema.json");
    serde_json::from_slice(&std::fs::read(path).expect("schema fixture")).expect("schema is JSON")
}

/// Pages: synthetic renders (flat, gradient, bars, seeded noise, a
/// non-square one) and the sample scans decoded with the image crate.
fn pages() -> Vec<RgbImage> {
    let mut pages = vec![
        RgbImage::from_pixel(80, 100, image::Rgb([255, 255, 255])),
        RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 4) as u8, ((x + y) * 2) as u8])
        }),
        RgbImage::from_fn(120, 90, |x, _| {
            let v = if (x / 10) % 2 == 0 { 0 } else { 255 };
            image::Rgb([v, v, v])
        }),
    ];
    let mut seed = 0x2545_f491_u32;
    pages.push(RgbImage::from_fn(50, 70, |_, _| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let b = seed.to_le_bytes();
        image::Rgb([b[0], b[1], b[2]])
    }));
    pages.push(RgbImage::from_fn(300, 20, |x, y| {
        image::Rgb([(x % 256) as u8, 255 - (y * 10) as u8, 128])
    }));
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/samples");
    for f in ["small.bmp", "wide-page.png", "small.webp"] {
        let img = image::open(samples.join(f)).expect("sample decodes");
        pages.push(img.to_rgb8());
    }
    pages
}

fn opts(batch_size: usize) -> VlmOptions {
    VlmOptions {
        batch_size,
        max_new_tokens: 96,
        threads: 1,
        accel: docpipe::extract::vlm::Accel::Cpu,
        constrained: true,
    }
}

fn load(name: &str, o: VlmOptions) -> VlmEngine {
    VlmEngine::load(&model_dir(name), &schema(), o).unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

fn validator() -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema())
        .unwrap()
}

#[test]
fn every_record_parses_and_validates() {
    let pages = pages();
    let refs: Vec<&RgbImage> = pages.iter().collect();
    let v = validator();
    for name in MODELS {
        // Batches of 3 over 8 pages: two full batches and a partial one.
        let mut engine = load(name, opts(3));
        let records = engine.extract(&refs).unwrap();
        assert_eq!(records.len(), pages.len(), "{name}");
        for (i, r) in records.iter().enumerate() {
            let errors: Vec<String> = v.iter_errors(&r.value).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{name} page {i}: {} -> {errors:?}",
                r.text
            );
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&r.text).unwrap(),
                r.value
            );
            let keys: Vec<&str> = r.field_confidence.keys().map(String::as_str).collect();
            assert_eq!(keys, ["date", "items", "kind", "total", "vendor"], "{name}");
            for (k, c) in &r.field_confidence {
                assert!((0.0..=1.0).contains(c) && *c > 0.0, "{name} {k}: {c}");
            }
            assert!(
                r.tokens > 0 && r.tokens <= 96,
                "{name}: {} tokens",
                r.tokens
            );
        }
        println!("{name}: {}", records[1].text);
    }
}

#[test]
fn records_stay_valid_when_the_budget_is_tight() {
    // With the token budget just above the schema's closing reserve, the
    // closing phase does most of the writing; every record must still be
    // complete and valid.
    let pages = pages();
    let refs: Vec<&RgbImage> = pages[..4].iter().collect();
    let v = validator();
    for name in MODELS {
        let mut o = opts(4);
        o.max_new_tokens = 1;
        let err = VlmEngine::load(&model_dir(name), &schema(), o)
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(matches!(err, VlmError::Grammar(_)), "{msg}");
        assert!(msg.contains("max_new_tokens 1"), "{msg}");
        let reserve: usize = msg
            .split("below the ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        o.max_new_tokens = reserve + 4;
        let mut engine = VlmEngine::load(&model_dir(name), &schema(), o).unwrap();
        for r in engine.extract(&refs).unwrap() {
            assert!(v.is_valid(&r.value), "{name}: {}", r.text);
            assert!(r.tokens <= reserve + 4, "{name}: {}", r.tokens);
        }
    }
}

#[test]
fn a_batch_of_eight_gives_the_tokens_of_eight_single_runs() {
    let pages = pages();
    let refs: Vec<&RgbImage> = pages.iter().take(8).collect();
    assert_eq!(refs.len(), 8);
    for name in MODELS {
        let batched = load(name, opts(8)).generate(&refs, true).unwrap();
        let mut single = load(name, opts(1));
        for (i, page) in refs.iter().enumerate() {
            let one = single.generate(&[page], true).unwrap();
            assert_eq!(one[0].tokens, batched[i].tokens, "{name} page {i}");
            assert_eq!(one[0].text, batched[i].text, "{name} page {i}");
        }
        // Pages differ, so the test would see a batching mix-up.
        let distinct: std::collections::BTreeSet<&Vec<u32>> =
            batched.iter().map(|g| &g.tokens).collect();
        assert!(
            distinct.len() > 1,
            "{name}: every page gave the same tokens"
        );
    }
}

#[test]
fn the_kv_cache_gives_the_tokens_of_full_recomputation() {
    let pages = pages();
    let refs: Vec<&RgbImage> = pages.iter().take(4).collect();
    for name in MODELS {
        let mut engine = load(name, opts(4));
        let cached = engine.generate(&refs, true).unwrap();
        let full = engine.generate(&refs, false).unwrap();
        for (i, (c, f)) in cached.iter().zip(&full).enumerate() {
            assert_eq!(c.tokens, f.tokens, "{name} page {i}");
            assert_eq!(c.token_probs.len(), c.tokens.len());
            for (a, b) in c.token_probs.iter().zip(&f.token_probs) {
                assert!((a - b).abs() < 1e-3, "{name} page {i}: {a} vs {b}");
            }
        }
    }
}

/// Copies a model folder into a temp dir.
fn copy_model(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let src = model_dir(name);
    std::fs::create_dir_all(tmp.path().join("onnx")).unwrap();
    for entry in walk(&src) {
        let rel = entry.strip_prefix(&src).unwrap();
        std::fs::copy(&entry, tmp.path().join(rel)).unwrap();
    }
    tmp
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_graph_with_a_wrong_input_name_is_refused_at_load() {
    for name in MODELS {
        // 1. The manifest points a role at another role's graph.
        let tmp = copy_model(name);
        let manifest = tmp.path().join("docpipe.json");
        let mut m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        m["graphs"]["embed_tokens"] = "onnx/vision_encoder.onnx".into();
        std::fs::write(&manifest, m.to_string()).unwrap();
        let err = VlmEngine::load(tmp.path(), &schema(), opts(1))
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(matches!(err, VlmError::Graph { .. }), "{msg}");
        assert!(
            msg.contains("embed_tokens (onnx/vision_encoder.onnx)"),
            "{msg}"
        );
        assert!(msg.contains("missing input `input_ids`"), "{msg}");
        assert!(msg.contains("unexpected input `pixel_values`"), "{msg}");

        // 2. The decoder's `inputs_embeds` renamed inside the ONNX file (same
        // length, so the protobuf stays valid and the graph still runs).
        let tmp = copy_model(name);
        let path = tmp.path().join("onnx/decoder_model_merged.onnx");
        let bytes = std::fs::read(&path).unwrap();
        let renamed = replace_all(&bytes, b"inputs_embeds", b"inputs_embedz");
        assert_ne!(bytes, renamed, "the decoder names inputs_embeds");
        std::fs::write(&path, renamed).unwrap();
        let err = VlmEngine::load(tmp.path(), &schema(), opts(1))
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(matches!(err, VlmError::Graph { .. }), "{msg}");
        assert!(
            msg.contains("decoder (onnx/decoder_model_merged.onnx)"),
            "{msg}"
        );
        assert!(
            msg.contains("missing input `inputs_embeds` (f32, rank 3)"),
            "{msg}"
        );
        assert!(msg.contains("unexpected input `inputs_embedz`"), "{msg}");
    }
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn zero_sized_pages_and_empty_input() {
    let mut engine = load("smolvlm-tiny", opts(2));
    assert!(engine.extract(&[]).unwrap().is_empty());
    let empty = RgbImage::new(0, 10);
    let ok = RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3]));
    let err = engine.extract(&[&ok, &empty]).expect_err("refused");
    assert!(matches!(err, VlmError::Image { page: 1, .. }), "{err}");
}
