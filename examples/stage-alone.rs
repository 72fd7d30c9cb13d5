//! Each OCR stage run alone over the same pages, with the sessions and
//! threads a pipeline run gives it, to compare a whole run against its
//! slowest stage.
//!
//! ```sh
//! cargo run --release --example stage-alone -- pipelines/ocr.yaml DIR [--json FILE]
//! ```
//!
//! Reads every image and PDF in DIR (not recursive). Pages are first read
//! into memory (images decoded, PDF pages without a usable text layer
//! rendered, as the pipeline's render stage does) on the pipeline's render
//! threads; then detection runs alone on all of them, on the detection
//! workers `runtime.threads` gives (each with its own session); then
//! recognition alone on all the crops found, on the recognition workers,
//! grouping crops across pages, sorting them by width and batching them by
//! `ocr.batch_size` as a run does. Each stage prints its pages/s; `--json`
//! writes them too. `bench/run` compares a docpipe run's pages/s with the
//! slowest of them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use docpipe::config::Pipeline;
use docpipe::fetch::Cache;
use docpipe::ingest::Kind;
use docpipe::ocr::engine::Crop;
use docpipe::pipeline::ocr_threads;
use docpipe::render::{RenderEvent, RenderSettings};
use image::RgbImage;

/// CPU seconds this process has used (user + system), from
/// `/proc/self/stat`, in Linux's fixed 100 ticks per second; 0 elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name: state is the first,
    // utime the 12th and stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

/// Wall-clock and CPU seconds of a stage.
#[derive(Clone, Copy)]
struct Took {
    wall: f64,
    cpu: f64,
}

/// Calls `work(i)` for i in 0..n on `threads` threads, each with its own
/// state from `init`; returns the wall-clock and CPU seconds.
fn timed_pool<S: Send>(
    threads: usize,
    n: usize,
    init: impl Fn() -> Result<S> + Sync,
    work: impl Fn(&mut S, usize) -> Result<()> + Sync,
) -> Result<Took> {
    let next = AtomicUsize::new(0);
    // Sessions are built before the clock starts: loading is not the stage.
    let states: Vec<S> = (0..threads.max(1)).map(|_| init()).collect::<Result<_>>()?;
    let t = Instant::now();
    let cpu = cpu_seconds();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = states
            .into_iter()
            .map(|mut st| {
                let (next, work) = (&next, &work);
                s.spawn(move || -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        work(&mut st, i)?;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        Ok(())
    })?;
    Ok(Took {
        wall: t.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - cpu,
    })
}

/// The page images of one file, as the render stage would pass them on.
fn read_pages(path: &Path, pdfium: &Path, settings: &RenderSettings) -> Result<Vec<RgbImage>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let kind = docpipe::ingest::sniff(&data);
    let mut out = Vec::new();
    match kind {
        Kind::Pdf => {
            docpipe::render::render_pdf(pdfium, &data, settings, &mut |ev| {
                if let RenderEvent::Image { image, .. } = ev {
                    out.push(image);
                }
                true
            })
            .map_err(|f| anyhow::anyhow!("{}: {}", path.display(), f.message))?;
        }
        _ => {
            let pages = docpipe::decode::page_count(kind, &data, settings.max_pages)
                .with_context(|| format!("{}", path.display()))?;
            for i in 0..pages {
                let p = docpipe::decode::decode_page(kind, &data, i, settings.max_image_pixels)
                    .with_context(|| format!("{} page {i}", path.display()))?;
                out.push(p.image);
            }
        }
    }
    Ok(out)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut positional, mut json) = (Vec::new(), None);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = Some(PathBuf::from(it.next().context("--json needs a file")?)),
            _ => positional.push(a),
        }
    }
    let [pipeline_file, dir] = positional.as_slice() else {
        bail!("usage: stage-alone PIPELINE DIR [--json FILE]");
    };
    let pipeline = Pipeline::load(Path::new(pipeline_file))?;
    let cache = Cache::from_env();
    let resources = docpipe::resources::prepare(&pipeline, &cache, None)?;
    let (Some(detector), Some(recogniser), Some(pdfium)) = (
        resources.detector.clone(),
        resources.recogniser.clone(),
        resources.pdfium.clone(),
    ) else {
        bail!("the pipeline has no OCR models (ocr.mode: never?)");
    };
    let layout = ocr_threads(pipeline.runtime.threads);
    let render_threads = docpipe::worker::pool_size(pipeline.runtime.workers);
    let settings = RenderSettings::from_pipeline(&pipeline);

    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {dir}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();

    // Render (or decode) alone.
    let pages: Mutex<Vec<(usize, Vec<RgbImage>)>> = Mutex::new(Vec::new());
    let render_s = timed_pool(
        render_threads,
        files.len(),
        || Ok(()),
        |_, i| {
            let p = read_pages(&files[i], &pdfium, &settings)?;
            pages
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .push((i, p));
            Ok(())
        },
    )?;
    let mut pages = pages
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    pages.sort_by_key(|p| p.0);
    let pages: Vec<RgbImage> = pages.into_iter().flat_map(|p| p.1).collect();
    let n = pages.len();
    if n == 0 {
        bail!("no page in {dir} needs OCR");
    }

    // Detection alone.
    let found: Vec<Mutex<Vec<Crop>>> = (0..n).map(|_| Mutex::new(Vec::new())).collect();
    let detect_s = timed_pool(
        layout.det_workers,
        n,
        || detector(),
        |d, i| {
            let page = d.detect(&pages[i])?;
            *found[i].lock().map_err(|_| anyhow::anyhow!("poisoned"))? = page.crops;
            Ok(())
        },
    )?;
    let crops: Vec<Vec<Crop>> = found
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_default())
        .collect();
    let lines: usize = crops.iter().map(Vec::len).sum();

    // Recognition alone: crops of consecutive pages grouped as the stage
    // groups waiting pages (up to four batches' worth), sorted by width.
    let batch = pipeline.ocr.batch_size.max(1);
    let mut groups: Vec<Vec<&RgbImage>> = vec![Vec::new()];
    for page in &crops {
        let g = groups.last_mut().context("no group")?;
        if g.len() >= batch * 4 {
            groups.push(Vec::new());
        }
        groups
            .last_mut()
            .context("no group")?
            .extend(page.iter().map(|c| &c.image));
    }
    let recognise_s = timed_pool(
        layout.rec_workers,
        groups.len(),
        || recogniser(),
        |r, i| {
            let mut g = groups[i].clone();
            g.sort_by_key(|c| r.input_width(c));
            for chunk in g.chunks(batch) {
                r.recognise(chunk)?;
            }
            Ok(())
        },
    )?;

    let rate = |s: f64| n as f64 / s.max(1e-9);
    // (name, workers, threads in all, time)
    let stages = [
        ("render", render_threads, render_threads, render_s),
        (
            "detect",
            layout.det_workers,
            layout.det_workers * layout.det_threads,
            detect_s,
        ),
        (
            "recognise",
            layout.rec_workers,
            layout.rec_workers * layout.rec_threads,
            recognise_s,
        ),
    ];
    println!("{n} pages, {lines} lines");
    for (name, workers, threads, t) in stages {
        println!(
            "{name:<10} alone: {:7.2} s  {:8.2} pages/s  {:6.2} CPU s  ({workers} worker(s), {threads} thread(s))",
            t.wall,
            rate(t.wall),
            t.cpu
        );
    }
    let slowest = stages
        .iter()
        .max_by(|a, b| a.3.wall.total_cmp(&b.3.wall))
        .context("no stage")?;
    println!(
        "slowest:   {} at {:.2} pages/s",
        slowest.0,
        rate(slowest.3.wall)
    );
    // When the stages share the cores, their CPU time adds up: a run cannot
    // beat cores / (CPU seconds per page over all stages).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_page: f64 = stages.iter().map(|st| st.3.cpu / n as f64).sum();
    let cpu_bound = cores as f64 / per_page.max(1e-9);
    println!(
        "cpu bound: {per_page:.2} CPU seconds per page on {cores} cores: at most {cpu_bound:.2} pages/s"
    );
    if let Some(path) = json {
        let v = serde_json::json!({
            "pages": n,
            "lines": lines,
            "stages": stages.iter().map(|(name, workers, threads, t)| serde_json::json!({
                "name": name, "workers": workers, "threads": threads, "seconds": t.wall,
                "cpu_seconds": t.cpu, "pages_per_s": rate(t.wall),
            })).collect::<Vec<_>>(),
            "slowest": slowest.0,
            "slowest_pages_per_s": rate(slowest.3.wall),
            "cpu_seconds_per_page": per_page,
            "cores": cores,
            "cpu_bound_pages_per_s": cpu_bound,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
