//! The VLM's tasks (captions, `ocr_with_region`, `od`) on the tiny
//! random-weight models in `fixtures/vlm/` (Florence-2 and SmolVLM
//! layouts): every task of each model runs end to end through the engine,
//! and its output is well-formed (non-empty captions; labelled boxes and
//! text quads inside the page); batching does not change a page's result;
//! a task the manifest lacks is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use docpipe::extract::vlm::tasks::{self, Task};
use docpipe::extract::vlm::{Accel, TaskOutput, VlmEngine, VlmError, VlmOptions};
use image::RgbImage;
use std::path::{Path, PathBuf};

const MODELS: [&str; 2] = ["florence2-tiny", "smolvlm-tiny"];
const TASKS: [Task; 4] = [
    Task::Caption,
    Task::DetailedCaption,
    Task::OcrWithRegion,
    Task::Od,
];

fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/vlm")
        .join(name)
}

/// Pages of different sizes and aspect ratios (the boxes must come back in
/// each page's own pixels).
fn pages() -> Vec<RgbImage> {
    let mut seed = 0x9e37_79b9_u32;
    vec![
        RgbImage::from_pixel(80, 100, image::Rgb([255, 255, 255])),
        RgbImage::from_fn(300, 20, |x, y| {
            image::Rgb([(x % 256) as u8, 255 - (y * 10) as u8, 128])
        }),
        RgbImage::from_fn(640, 480, |_, _| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let b = seed.to_le_bytes();
            image::Rgb([b[0], b[1], b[2]])
        }),
    ]
}

fn opts(batch_size: usize) -> VlmOptions {
    VlmOptions {
        batch_size,
        // ocr_with_region's closing phase may need 144 tokens (a 64-byte
        // line and 8 spelt-out coordinates).
        max_new_tokens: 192,
        threads: 1,
        accel: Accel::Cpu,
    }
}

fn inside(x: f32, y: f32, (w, h): (u32, u32)) -> bool {
    (0.0..=w as f32).contains(&x) && (0.0..=h as f32).contains(&y)
}

#[test]
fn every_task_gives_well_formed_output_on_both_models() {
    let pages = pages();
    let refs: Vec<&RgbImage> = pages.iter().collect();
    for name in MODELS {
        let mut engine = VlmEngine::load_tasks(&model_dir(name), None, &TASKS, opts(2))
            .unwrap_or_else(|e| panic!("{name} loads: {e}"));
        assert_eq!(engine.tasks(), TASKS.to_vec());
        assert_eq!(engine.loc_notation(), tasks::LocNotation::Text);
        for task in TASKS {
            let results = engine.run_task(task, &refs).unwrap();
            assert_eq!(results.len(), pages.len());
            for (img, r) in pages.iter().zip(results) {
                let size = img.dimensions();
                let r = r.unwrap_or_else(|e| panic!("{name} {task}: {e}"));
                let what = format!("{name} {task} on {size:?}: {:?}", r.text);
                assert!(r.tokens > 0 && r.tokens <= 192, "{what}");
                assert!((0.0..=1.0).contains(&r.mean_prob), "{what}");
                let fsize = (size.0 as f32, size.1 as f32);
                match (&r.output, task) {
                    (TaskOutput::Caption(c), Task::Caption | Task::DetailedCaption) => {
                        assert!(!c.is_empty() && c.trim() == c, "{what}");
                        assert!(!c.contains('<') && !c.contains('>'), "{what}");
                        assert!(!c.chars().any(char::is_control), "{what}");
                    }
                    (TaskOutput::Detections(d), Task::Od) => {
                        // The grammar asks for at least one item, and the
                        // closing phase finishes the one under way.
                        assert!(!d.is_empty(), "{what}");
                        assert!(r.dropped.is_empty(), "{what}: {:?}", r.dropped);
                        for det in d {
                            assert!(!det.label.trim().is_empty(), "{what}");
                            let b = det.bbox;
                            assert!(b.x0 <= b.x1 && b.y0 <= b.y1, "{what}");
                            assert!(inside(b.x0, b.y0, size), "{what}");
                            assert!(inside(b.x1, b.y1, size), "{what}");
                        }
                        assert_eq!(tasks::parse_od(&r.text, fsize).items, *d, "{what}");
                    }
                    (TaskOutput::Lines(l), Task::OcrWithRegion) => {
                        assert!(!l.is_empty(), "{what}");
                        assert!(r.dropped.is_empty(), "{what}: {:?}", r.dropped);
                        for line in l {
                            assert!(!line.text.is_empty(), "{what}");
                            for p in line.quad {
                                assert!(inside(p.x, p.y, size), "{what}");
                            }
                        }
                        assert_eq!(
                            tasks::parse_ocr_with_region(&r.text, fsize).items,
                            *l,
                            "{what}"
                        );
                    }
                    (out, _) => panic!("{what}: wrong kind of output {out:?}"),
                }
            }
        }
    }
}

#[test]
fn batch_equals_singles() {
    let pages = pages();
    let refs: Vec<&RgbImage> = pages.iter().collect();
    for name in MODELS {
        let mut batched = VlmEngine::load_tasks(&model_dir(name), None, &TASKS, opts(3)).unwrap();
        let mut single = VlmEngine::load_tasks(&model_dir(name), None, &TASKS, opts(1)).unwrap();
        for task in [Task::Caption, Task::Od] {
            let a: Vec<String> = batched
                .run_task(task, &refs)
                .unwrap()
                .into_iter()
                .map(|r| r.unwrap().text)
                .collect();
            let b: Vec<String> = single
                .run_task(task, &refs)
                .unwrap()
                .into_iter()
                .map(|r| r.unwrap().text)
                .collect();
            assert_eq!(a, b, "{name} {task}");
        }
    }
}

#[test]
fn tasks_the_manifest_lacks_are_refused() {
    // A manifest without `tasks` supports fields only.
    let tmp = tempfile::tempdir().unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(model_dir("florence2-tiny").join("docpipe.json")).unwrap(),
    )
    .unwrap();
    m.as_object_mut().unwrap().remove("tasks");
    std::fs::write(tmp.path().join("docpipe.json"), m.to_string()).unwrap();
    let err = VlmEngine::load_tasks(tmp.path(), None, &[Task::Od], opts(1))
        .err()
        .unwrap();
    assert!(matches!(err, VlmError::Unsupported(_)), "{err}");
    assert!(
        err.to_string().contains("does not support task od"),
        "{err}"
    );
    assert!(err.to_string().contains("lists fields"), "{err}");
    // fields needs a schema; the budget must fit a task's closing phase.
    let err = VlmEngine::load_tasks(&model_dir("smolvlm-tiny"), None, &[Task::Fields], opts(1))
        .err()
        .unwrap();
    assert!(err.to_string().contains("needs a field schema"), "{err}");
    let small = VlmOptions {
        max_new_tokens: 64,
        ..opts(1)
    };
    let err = VlmEngine::load_tasks(
        &model_dir("smolvlm-tiny"),
        None,
        &[Task::OcrWithRegion],
        small,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("max_new_tokens 64"), "{err}");
    // An engine loaded for captions does not run od.
    let mut engine = VlmEngine::load_tasks(
        &model_dir("florence2-tiny"),
        None,
        &[Task::Caption],
        opts(1),
    )
    .unwrap();
    let page = RgbImage::from_pixel(10, 10, image::Rgb([0, 0, 0]));
    assert!(engine.run_task(Task::Od, &[&page]).is_err());
}
