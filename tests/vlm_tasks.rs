//! The VLM's tasks (captions, `ocr_with_region`, `od`) on the tiny
//! random-weight models in `fixtures/vlm/` (Florence-2 and SmolVLM
//! layouts): every task of each model runs end to end through the engine,
//! and its output is well-formed (non-empty captions; labelled boxes and
//! text quads inside the page); batching does not change a page's result;
//! a task the manifest lacks is refused. Through `docpipe run`, both models
//! write every task into the tables (read back with pyarrow); a task that
//! fails on a page fails only its document; `docpipe check` refuses a task
//! the export lacks, at its list item.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use docpipe::extract::vlm::tasks::{self, Task};
use docpipe::extract::vlm::{Accel, TaskOutput, VlmEngine, VlmError, VlmOptions};
use image::RgbImage;
use std::collections::BTreeMap;
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
        constrained: true,
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

mod common;

use common::{docpipe, fixtures, python_with_pyarrow};

/// Environment variable of the stage fault switch (`docpipe::pipeline::faults`).
const STAGE_FAULT: &str = "DOCPIPE_STAGE_FAULT";

fn workdir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("in")).unwrap();
    for f in ["born-digital.pdf", "wide-page.png", "small.bmp"] {
        std::fs::copy(fixtures().join("samples").join(f), d.join("in").join(f)).unwrap();
    }
    std::fs::copy(fixtures().join("vlm/fields.schema.json"), d.join("s.json")).unwrap();
    d
}

/// A pipeline over `dir/in` with the model in `model` and `tasks`.
fn pipeline(dir: &Path, model: &Path, tasks: &str) -> PathBuf {
    let p = dir.join("p.yaml");
    std::fs::write(
        &p,
        format!(
            "name: vlm-tasks\ninput: {{path: {}}}\nocr: {{mode: never}}\n\
             extract:\n  schema: s.json\n  engine: vlm\n  model: {}\n  tasks: {tasks}\n  batch_size: 4\n  max_new_tokens: 192\n\
             runtime: {{device: cpu}}\noutput: {{path: {}}}\n",
            dir.join("in").display(),
            model.display(),
            dir.join("out").display()
        ),
    )
    .unwrap();
    p
}

/// Every table the tasks write, read back with pyarrow as a user would:
/// `{table: {"schema": {column: type}, "rows": [...]}}`.
fn read_back(out: &Path) -> serde_json::Value {
    let python = python_with_pyarrow();
    let script = r#"
import json, os, sys, pyarrow.dataset as ds
res = {}
for t in ["documents", "pages", "lines", "regions", "captions", "failures"]:
    d = os.path.join(sys.argv[1], t)
    if not os.path.isdir(d) or not any(f.endswith(".parquet") for f in os.listdir(d)):
        continue
    tab = ds.dataset(d, format="parquet").to_table()
    cols = [c for c in tab.column_names if t != "documents" or "__" not in c]
    res[t] = {"schema": {f.name: str(f.type) for f in tab.schema},
              "rows": tab.select(cols).to_pylist()}
print(json.dumps(res, default=str))
"#;
    let o = std::process::Command::new(&python.0)
        .env("PYTHONPATH", &python.1)
        .args(["-c", script, out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn f(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[test]
fn both_models_run_every_task_into_the_tables() {
    const DICT: &str = "dictionary<values=string, indices=int32, ordered=0>";
    for name in MODELS {
        let dir = workdir(&format!("vlm-tasks-{name}"));
        let p = pipeline(
            &dir,
            &model_dir(name),
            "[fields, caption, detailed_caption, ocr_with_region, od]",
        );
        let o = docpipe()
            .args(["run", p.to_str().unwrap(), "--quiet"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v = read_back(&dir.join("out"));
        let docs = v["documents"]["rows"].as_array().unwrap();
        assert_eq!(docs.len(), 3, "{name}");
        for d in docs {
            assert_eq!(d["status"], "ok", "{name}: {d}");
        }
        // Page sizes (pixels, points) by (doc, page).
        let pages: BTreeMap<(String, i64), &serde_json::Value> = v["pages"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let key = (
                    p["doc_id"].as_str().unwrap().to_string(),
                    p["page_index"].as_i64().unwrap(),
                );
                (key, p)
            })
            .collect();
        let key = |r: &serde_json::Value| {
            (
                r["doc_id"].as_str().unwrap().to_string(),
                r["page_index"].as_i64().unwrap(),
            )
        };
        let inside_px = |r: &serde_json::Value, x: f64, y: f64| {
            let p = pages[&key(r)];
            (0.0..=f(p, "width_px")).contains(&x) && (0.0..=f(p, "height_px")).contains(&y)
        };

        // captions/: one row per page and caption task, typed.
        let c = &v["captions"];
        assert_eq!(c["schema"]["task"], DICT, "{name}");
        assert_eq!(c["schema"]["source"], DICT, "{name}");
        assert_eq!(c["schema"]["region_index"], "int32", "{name}");
        let mut per_page: BTreeMap<(String, i64), Vec<String>> = BTreeMap::new();
        for r in c["rows"].as_array().unwrap() {
            assert_eq!(r["source"], name, "{r}");
            assert!(r["region_index"].is_null(), "{r}");
            let text = r["text"].as_str().unwrap();
            assert!(!text.is_empty() && text.trim() == text, "{r}");
            assert!(!text.chars().any(char::is_control), "{r}");
            assert!((0.0..=1.0).contains(&f(r, "confidence")), "{r}");
            per_page
                .entry(key(r))
                .or_default()
                .push(r["task"].as_str().unwrap().to_string());
        }
        assert_eq!(per_page.len(), pages.len(), "{name}: a caption per page");
        for tasks in per_page.values_mut() {
            tasks.sort();
            assert_eq!(tasks, &["caption", "detailed_caption"], "{name}");
        }

        // regions/: the od boxes, inside their page, in points on PDF pages.
        let rg = &v["regions"];
        assert_eq!(rg["schema"]["source"], DICT, "{name}");
        let boxes: Vec<&serde_json::Value> = rg["rows"].as_array().unwrap().iter().collect();
        let mut pages_with_boxes = std::collections::BTreeSet::new();
        for r in &boxes {
            assert_eq!(r["source"], name, "{r}");
            assert!(!r["class"].as_str().unwrap().trim().is_empty(), "{r}");
            assert!(f(r, "x0") <= f(r, "x1") && f(r, "y0") <= f(r, "y1"), "{r}");
            assert!(
                inside_px(r, f(r, "x0"), f(r, "y0")) && inside_px(r, f(r, "x1"), f(r, "y1")),
                "{r}"
            );
            let p = pages[&key(r)];
            if p["width_pt"].is_null() {
                assert!(r["x0_pt"].is_null(), "{r}");
            } else {
                for (k, size) in [
                    ("x0_pt", "width_pt"),
                    ("x1_pt", "width_pt"),
                    ("y0_pt", "height_pt"),
                    ("y1_pt", "height_pt"),
                ] {
                    assert!((-0.5..=f(p, size) + 0.5).contains(&f(r, k)), "{r} {p}");
                }
            }
            pages_with_boxes.insert(key(r));
        }
        assert_eq!(
            pages_with_boxes.len(),
            pages.len(),
            "{name}: od boxes on every page"
        );
        let mut idx: Vec<(String, i64, i64)> = boxes
            .iter()
            .map(|r| {
                let (d, p) = key(r);
                (d, p, r["region_index"].as_i64().unwrap())
            })
            .collect();
        idx.sort();
        idx.dedup();
        assert_eq!(
            idx.len(),
            boxes.len(),
            "{name}: region indices unique per page"
        );

        // lines/: the ocr_with_region quads beside the text layer's lines.
        let l = &v["lines"];
        assert_eq!(l["schema"]["source"], DICT, "{name}");
        let mut vlm_pages = std::collections::BTreeSet::new();
        let mut seen = std::collections::BTreeSet::new();
        for r in l["rows"].as_array().unwrap() {
            assert!(
                seen.insert((key(r), r["line_index"].as_i64().unwrap())),
                "{name}: line index twice {r}"
            );
            let source = r["source"].as_str().unwrap();
            if source == "text_layer" {
                continue;
            }
            assert_eq!(source, name, "{r}");
            assert!(!r["text"].as_str().unwrap().is_empty(), "{r}");
            let poly: Vec<f64> = r["polygon"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(poly.len(), 8, "{r}");
            for xy in poly.chunks(2) {
                assert!(inside_px(r, xy[0], xy[1]), "{r}");
            }
            vlm_pages.insert(key(r));
        }
        assert_eq!(
            vlm_pages.len(),
            pages.len(),
            "{name}: VLM lines on every page"
        );

        // `docpipe show` draws the VLM's boxes: its od boxes and quads.
        let doc = docs
            .iter()
            .find(|d| d["uri"].as_str().unwrap().ends_with("born-digital.pdf"))
            .unwrap();
        let id = doc["doc_id"].as_str().unwrap();
        let on_page = |t: &str| {
            v[t]["rows"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["doc_id"] == id && r["page_index"] == 0 && r["source"] == name)
                .count()
        };
        let want = on_page("regions") + on_page("lines");
        let png = dir.join("show.png");
        let o = docpipe()
            .args(["show", dir.join("out").to_str().unwrap(), "--doc", id])
            .args(["-o", png.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let said = String::from_utf8_lossy(&o.stdout);
        assert!(
            said.contains(&format!(", {want} VLM boxes)")),
            "{name}: {said}"
        );
        assert!(want > 0 && png.is_file(), "{name}: {said}");
    }
}

#[test]
fn a_task_failing_on_a_page_fails_only_its_document() {
    let dir = workdir("vlm-tasks-fault");
    let p = pipeline(&dir, &model_dir("florence2-tiny"), "[fields, caption]");
    let o = docpipe()
        .args(["run", p.to_str().unwrap(), "--quiet"])
        .env(STAGE_FAULT, "vlm-task-error:wide-page")
        .output()
        .unwrap();
    // Exit 3: some documents did not come out whole.
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = read_back(&dir.join("out"));
    let mut captioned = std::collections::BTreeSet::new();
    for r in v["captions"]["rows"].as_array().unwrap() {
        captioned.insert(r["doc_id"].as_str().unwrap().to_string());
    }
    for d in v["documents"]["rows"].as_array().unwrap() {
        let uri = d["uri"].as_str().unwrap();
        let id = d["doc_id"].as_str().unwrap().to_string();
        if uri.contains("wide-page") {
            assert_eq!(d["status"], "partial", "{d}");
            assert_eq!(d["error_class"], "extract_failed", "{d}");
            let m = d["error_message"].as_str().unwrap();
            assert!(
                m.contains("VLM task failed: page 1: caption: test fault"),
                "{m}"
            );
            assert!(!captioned.contains(&id), "{d}");
            // The page's own failures row, with the stage that failed.
            let rows: Vec<&serde_json::Value> = v["failures"]["rows"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["doc_id"].as_str() == Some(id.as_str()))
                .collect();
            assert_eq!(rows.len(), 1, "{rows:?}");
            let r = rows[0];
            assert_eq!(
                (&r["stage"], &r["page_index"]),
                (&"extract".into(), &0.into())
            );
            assert_eq!(r["error_class"], "extract_failed", "{r}");
            assert!(
                r["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("caption: test fault"),
                "{r}"
            );
        } else {
            assert_eq!(d["status"], "ok", "{d}");
            assert!(captioned.contains(&id), "{d}");
        }
    }
}

#[test]
fn check_refuses_a_task_the_export_lacks() {
    let dir = workdir("vlm-tasks-check");
    // The tiny Florence-2 export, its manifest cut to fields and captions.
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(model_dir("florence2-tiny").join("docpipe.json")).unwrap(),
    )
    .unwrap();
    m["tasks"] = serde_json::json!(["fields", "caption"]);
    std::fs::write(model.join("docpipe.json"), m.to_string()).unwrap();
    let p = pipeline(&dir, &model, "[fields, caption, od]");
    let o = docpipe()
        .args(["check", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    // `  tasks: [fields, caption, od]` is line 8; `od` starts at column 28.
    assert!(
        err.contains("p.yaml:8:28: extract.tasks[2]: the model")
            && err.contains("does not support task `od`: its manifest lists `fields`, `caption`"),
        "{err}"
    );
    // What it supports passes, and is listed.
    let p = pipeline(&dir, &model, "[fields, caption]");
    let o = docpipe()
        .args(["check", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("vlm tasks: fields, caption"), "{out}");
}
