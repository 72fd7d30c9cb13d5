//! Field exact-match accuracy of the layout engine on OCR lines with ground truth.
//!
//! ```sh
//! cargo run --release --example layout-eval -- /work/data/sroie-ocr ../shared/corpus/sroie-dev/key
//! cargo run --release --example layout-eval -- /work/data/invoices-ocr ../shared/corpus/invoices/compare
//! ```
//!
//! The first argument is a docpipe output folder (`documents/`, `pages/`,
//! `lines/` Parquet) or a folder of SROIE `box/NNN.csv` files; the second a
//! folder of ground-truth JSON files named after the input files' stems
//! (SROIE `key/NNN.json` objects, or invoice2data `NAME.json` lists of one
//! object). The schema defaults to `schemas/receipt.schema.json` for object
//! truth and `schemas/invoice.schema.json` for list truth (`--schema` to
//! choose). `--misses` prints every wrong value, `--explain STEM` every
//! candidate of one document.
//!
//! Comparison: strings case-folded with whitespace runs collapsed (and, in a
//! second column, with all whitespace removed); dates as dates (the truth is
//! read with the engine's own date parser); numbers within 0.005; an empty
//! truth value matches a field not found.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float32Type, Int32Type};
use docpipe::extract::parse::{find_amounts, find_dates};
use docpipe::extract::{FieldSchema, FieldType, LayoutEngine, Line, PageLines};
use docpipe::types::BBox;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

fn read_table(dir: &Path) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    for f in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&f)?)?.build()?;
        for b in reader {
            out.push(b?);
        }
    }
    Ok(out)
}

fn string_col<'a>(b: &'a RecordBatch, name: &str) -> Result<Vec<&'a str>> {
    let c = b
        .column_by_name(name)
        .with_context(|| format!("no column {name}"))?;
    Ok(c.as_string::<i32>()
        .iter()
        .map(|s| s.unwrap_or(""))
        .collect())
}

fn i32_col(b: &RecordBatch, name: &str) -> Result<Vec<i32>> {
    let c = b
        .column_by_name(name)
        .with_context(|| format!("no column {name}"))?;
    Ok(c.as_primitive::<Int32Type>().values().to_vec())
}

fn f32_col(b: &RecordBatch, name: &str) -> Result<Vec<f32>> {
    let c = b
        .column_by_name(name)
        .with_context(|| format!("no column {name}"))?;
    Ok(c.as_primitive::<Float32Type>().values().to_vec())
}

fn stem(uri: &str) -> String {
    Path::new(uri.trim_start_matches("file://"))
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

/// Documents from a docpipe output folder: (name, input stem, pages).
fn from_parquet(dir: &Path) -> Result<Vec<(String, String, Vec<PageLines>)>> {
    let mut docs: BTreeMap<String, (String, BTreeMap<u32, PageLines>)> = BTreeMap::new();
    for b in read_table(&dir.join("documents"))? {
        for (id, uri) in string_col(&b, "doc_id")?
            .into_iter()
            .zip(string_col(&b, "uri")?)
        {
            docs.insert(id.to_string(), (uri.to_string(), BTreeMap::new()));
        }
    }
    for b in read_table(&dir.join("pages"))? {
        let (ids, idx) = (string_col(&b, "doc_id")?, i32_col(&b, "page_index")?);
        let (w, h) = (i32_col(&b, "width_px")?, i32_col(&b, "height_px")?);
        for i in 0..b.num_rows() {
            if let Some((_, pages)) = docs.get_mut(ids[i]) {
                let page = idx[i].max(0) as u32;
                pages.insert(
                    page,
                    PageLines {
                        page,
                        width: w[i] as f32,
                        height: h[i] as f32,
                        lines: Vec::new(),
                    },
                );
            }
        }
    }
    for b in read_table(&dir.join("lines"))? {
        let (ids, idx, text) = (
            string_col(&b, "doc_id")?,
            i32_col(&b, "page_index")?,
            string_col(&b, "text")?,
        );
        let conf = f32_col(&b, "confidence")?;
        let (x0, y0, x1, y1) = (
            f32_col(&b, "x0")?,
            f32_col(&b, "y0")?,
            f32_col(&b, "x1")?,
            f32_col(&b, "y1")?,
        );
        for i in 0..b.num_rows() {
            let Some((_, pages)) = docs.get_mut(ids[i]) else {
                continue;
            };
            if let Some(p) = pages.get_mut(&(idx[i].max(0) as u32)) {
                p.lines.push(Line {
                    text: text[i].to_string(),
                    bbox: BBox {
                        x0: x0[i],
                        y0: y0[i],
                        x1: x1[i],
                        y1: y1[i],
                    },
                    confidence: conf[i],
                    font_size: None,
                    bold: false,
                });
            }
        }
    }
    // Inputs that were not documents (failed rows: no pages) are not evaluated.
    Ok(docs
        .into_values()
        .filter(|(_, pages)| !pages.is_empty())
        .map(|(uri, pages)| (uri.clone(), stem(&uri), pages.into_values().collect()))
        .collect())
}

/// Documents from SROIE `box/NNN.csv` files (ground-truth line boxes).
fn from_boxes(dir: &Path) -> Result<Vec<(String, String, Vec<PageLines>)>> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f)?).into_owned();
        let mut lines = Vec::new();
        for row in text.lines() {
            let parts: Vec<&str> = row.splitn(9, ',').collect();
            if parts.len() < 9 {
                continue;
            }
            let n: Vec<f32> = parts[..8]
                .iter()
                .filter_map(|s| s.trim().parse().ok())
                .collect();
            if n.len() != 8 {
                continue;
            }
            let xs = [n[0], n[2], n[4], n[6]];
            let ys = [n[1], n[3], n[5], n[7]];
            lines.push(Line {
                text: parts[8].to_string(),
                bbox: BBox {
                    x0: xs.iter().copied().fold(f32::MAX, f32::min),
                    y0: ys.iter().copied().fold(f32::MAX, f32::min),
                    x1: xs.iter().copied().fold(f32::MIN, f32::max),
                    y1: ys.iter().copied().fold(f32::MIN, f32::max),
                },
                confidence: 1.0,
                font_size: None,
                bold: false,
            });
        }
        let name = f.display().to_string();
        out.push((
            name,
            stem(&f.display().to_string()),
            vec![PageLines {
                page: 0,
                width: 0.0,
                height: 0.0,
                lines,
            }],
        ));
    }
    Ok(out)
}

fn norm(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn truth_as_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// (strict match, whitespace-free match).
fn compare(ty: &FieldType, got: Option<&Value>, truth: &Value) -> (bool, bool) {
    let t = truth_as_string(truth);
    if t.trim().is_empty() {
        let ok = got.is_none_or(|g| truth_as_string(g).trim().is_empty());
        return (ok, ok);
    }
    let Some(g) = got else { return (false, false) };
    match ty {
        FieldType::Date => {
            let want = find_dates(&t).into_iter().next().map(|f| f.value);
            let ok = want.is_some() && want.as_deref() == g.as_str();
            (ok, ok)
        }
        FieldType::Number | FieldType::Decimal { .. } | FieldType::Integer => {
            let want = truth
                .as_f64()
                .or_else(|| find_amounts(&t).first().map(|a| a.value.value));
            let ok = match (want, g.as_f64()) {
                (Some(a), Some(b)) => (a - b).abs() < 0.005,
                _ => false,
            };
            (ok, ok)
        }
        _ => {
            let gs = truth_as_string(g);
            let strict = norm(&gs) == norm(&t);
            let squash = |s: &str| {
                s.chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>()
                    .to_lowercase()
            };
            (strict, squash(&gs) == squash(&t))
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let mut schema_path = None;
    let mut misses = false;
    let mut explain: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--schema" => schema_path = it.next().map(PathBuf::from),
            "--misses" => misses = true,
            "--explain" => explain = it.next().cloned(),
            _ => pos.push(PathBuf::from(a)),
        }
    }
    let [input, truth_dir] = pos.as_slice() else {
        bail!("usage: layout-eval <docpipe output folder | SROIE box folder> <truth folder> [--schema FILE] [--misses] [--explain STEM]");
    };
    let docs = if input.join("lines").is_dir() {
        from_parquet(input)?
    } else {
        from_boxes(input)?
    };
    let mut truths = BTreeMap::new();
    for (_, st, _) in &docs {
        let p = truth_dir.join(format!("{st}.json"));
        if let Ok(text) = std::fs::read_to_string(&p) {
            let v: Value = serde_json::from_str(&text).with_context(|| p.display().to_string())?;
            let v = match v {
                Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
                v => v,
            };
            truths.insert(st.clone(), (v, text.trim_start().starts_with('[')));
        }
    }
    let list_truth = truths.values().next().is_some_and(|(_, list)| *list);
    let schema_path = schema_path.unwrap_or_else(|| {
        let name = if list_truth {
            "invoice.schema.json"
        } else {
            "receipt.schema.json"
        };
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("schemas")
            .join(name)
    });
    let schema = FieldSchema::load(&schema_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", schema_path.display()))?;
    let engine = LayoutEngine::new(&schema);
    let mut stats: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut seen = BTreeMap::new();
    let start = std::time::Instant::now();
    for (name, st, pages) in &docs {
        let Some((truth, _)) = truths.get(st) else {
            continue;
        };
        // The same input as PDF and PNG: evaluate both, under their names.
        *seen.entry(st.clone()).or_insert(0) += 1;
        let rec = engine.extract(pages);
        if explain.as_deref() == Some(st.as_str()) {
            for (field, cands) in engine.candidates(pages) {
                for c in cands {
                    println!(
                        "{field:<16} {:.3} p{} {:>7.0},{:<7.0} {}",
                        c.confidence,
                        c.page.unwrap_or(0),
                        c.bbox.map_or(0.0, |b| b.x0),
                        c.bbox.map_or(0.0, |b| b.y0),
                        c.value
                    );
                }
            }
        }
        for f in schema.fields() {
            let Some(want) = truth.get(&f.name) else {
                continue;
            };
            let got = rec.fields.get(&f.name).map(|v| &v.value);
            let (ok, ok_loose) = compare(&f.ty, got, want);
            let s = stats.entry(f.name.clone()).or_default();
            s.0 += 1;
            s.1 += usize::from(ok);
            s.2 += usize::from(ok_loose);
            if misses && !ok {
                println!(
                    "{:<16} {:<40} want {:<45} got {}",
                    f.name,
                    Path::new(name)
                        .file_name()
                        .map_or(String::new(), |s| s.to_string_lossy().into_owned()),
                    want.to_string(),
                    got.map_or("-".into(), Value::to_string)
                );
            }
        }
    }
    println!(
        "{} documents with truth ({} inputs read), schema {}, {:.1} ms per document",
        seen.values().sum::<usize>(),
        docs.len(),
        schema_path
            .file_name()
            .map_or(String::new(), |s| s.to_string_lossy().into_owned()),
        start.elapsed().as_secs_f64() * 1000.0 / docs.len().max(1) as f64
    );
    println!(
        "{:<16} {:>5} {:>8} {:>9} {:>14}",
        "field", "n", "correct", "accuracy", "no-space acc."
    );
    let (mut n_all, mut c_all) = (0, 0);
    for f in schema.fields() {
        if let Some((n, c, l)) = stats.get(&f.name) {
            n_all += n;
            c_all += c;
            println!(
                "{:<16} {:>5} {:>8} {:>9.3} {:>14.3}",
                f.name,
                n,
                c,
                *c as f64 / (*n).max(1) as f64,
                *l as f64 / (*n).max(1) as f64
            );
        }
    }
    println!(
        "{:<16} {:>5} {:>8} {:>9.3}",
        "all",
        n_all,
        c_all,
        c_all as f64 / n_all.max(1) as f64
    );
    Ok(())
}
