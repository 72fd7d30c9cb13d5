//! `docpipe run`: a pipeline over its input (or one shard of it) into its
//! output, resumable, on the local file system or object storage.

use crate::{exit, SetupError};
use anyhow::Context;
use docpipe::config::Pipeline;
use docpipe::fetch::Cache;
use docpipe::journal::{self, Journal, JournalError, JournaledSink, Mode, Plan};
use docpipe::output::{OutputWriter, WriterOptions};
use docpipe::pipeline::{self, RunOptions};
use docpipe::shard::Shard;
use docpipe::storage::{self, url, Place};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `docpipe run` was asked.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The pipeline file (YAML).
    pub pipeline: PathBuf,
    /// Read these files, folders, prefixes (`s3://bucket/prefix`) or
    /// manifests instead of the pipeline's `input.path`.
    #[arg(long = "input", value_name = "PATH")]
    pub inputs: Vec<PathBuf>,
    /// Write to this folder or object storage URL instead of the
    /// pipeline's `output.path`.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Process one shard of the input: `K/N` (0-based), or `auto` to take
    /// it from Slurm's array (`SLURM_ARRAY_TASK_ID`,
    /// `SLURM_ARRAY_TASK_COUNT`) or a Kubernetes Indexed Job
    /// (`JOB_COMPLETION_INDEX`, with `--shards N` or `DOCPIPE_SHARDS`).
    #[arg(long, value_name = "K/N|auto")]
    pub shard: Option<String>,
    /// The number of shards, for `--shard auto` where the engine does not
    /// say it.
    #[arg(long, value_name = "N", requires = "shard")]
    pub shards: Option<u32>,
    /// Start afresh: delete the output tables and the run journal first
    /// (a shard's own part files and journal only).
    /// Without it a run resumes: documents already done are skipped.
    #[arg(long)]
    pub overwrite: bool,
    /// Process again exactly the documents whose latest state is failed
    /// or partial, read from their recorded paths.
    #[arg(long, conflicts_with = "overwrite")]
    pub retry_failed: bool,
    /// Commit the open part file every N documents (0: only by time and size).
    #[arg(long, value_name = "N", default_value_t = WriterOptions::default().commit_every_docs)]
    pub commit_every_docs: usize,
    /// Commit the open part file once it is S seconds old (0: only by count and size).
    #[arg(long, value_name = "S", default_value_t = WriterOptions::default().commit_every_secs)]
    pub commit_every_secs: u64,
    /// No progress bar or progress lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also write the run's stage, queue and batch figures (busy and idle
    /// time per stage, queue fill, the bottleneck) to FILE as JSON.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
}

/// Environment variable: model threads, overriding `runtime.threads`, and
/// render workers where `runtime.workers` is `auto` (what a cluster script
/// sets from the cores it was given; 0 = every core).
pub const ENV_THREADS: &str = "DOCPIPE_THREADS";

/// A path from the command line: URLs as given, local paths made absolute.
fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    match url::parse(&p.to_string_lossy()) {
        Ok(url::Target::Object(u)) => Ok(u.to_path()),
        Ok(url::Target::Local(l)) => Ok(std::path::absolute(&l).unwrap_or(l)),
        Err(why) => Err(SetupError(why).into()),
    }
}

/// The shard of `--shard SPEC` (with `--shards N` for `auto`).
fn shard_of(spec: Option<&str>, shards: Option<u32>) -> anyhow::Result<Shard> {
    let Some(spec) = spec else {
        return Ok(Shard::ALL);
    };
    let spec = match shards {
        Some(n) if spec.trim() == "auto" => format!("auto/{n}"),
        _ => spec.to_string(),
    };
    Shard::parse(&spec, |k| std::env::var(k).ok()).map_err(|e| SetupError(e.to_string()).into())
}

pub fn run(a: RunArgs) -> anyhow::Result<u8> {
    let mut p = Pipeline::load(&a.pipeline)?;
    // A bad field schema is refused before anything runs.
    let fields = docpipe::resources::field_schema(&p)?;
    if !a.inputs.is_empty() {
        p.input.paths = a
            .inputs
            .iter()
            .map(|i| absolute(i))
            .collect::<anyhow::Result<_>>()?;
        p.places.retain(|r| !r.key.starts_with("input."));
    }
    if let Some(o) = &a.output {
        p.output.path = absolute(o)?;
        p.places.retain(|r| r.key != "output.path");
    }
    // Object stores the pipeline file names are reached before anything
    // runs; a failure is reported at its key.
    p.probe_storage()?;
    if let Some(t) = std::env::var(ENV_THREADS)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        p.runtime.threads = t
            .trim()
            .parse()
            .map_err(|_| SetupError(format!("{ENV_THREADS}={t:?} is not a number of threads")))?;
        // The cores a scheduler gave bound the render workers too, where
        // the pipeline leaves their number to docpipe.
        if p.runtime.workers == 0 {
            p.runtime.workers = p.runtime.threads;
        }
    }
    let shard = shard_of(a.shard.as_deref(), a.shards)?;
    if !a.retry_failed {
        for path in &p.input.paths {
            if !url::is_remote(path) && !path.exists() {
                return Err(
                    SetupError(format!("input path {} does not exist", path.display())).into(),
                );
            }
        }
    }
    let place = Place::open(&p.output.path, &shard.journal_name())
        .map_err(|e| SetupError(format!("output.path {}: {e}", p.output.path.display())))?;
    place.storage.probe(&place.root).map_err(|e| {
        SetupError(format!(
            "output.path {} cannot be reached: {e}",
            place.root.display()
        ))
    })?;
    let journal = Arc::new(prepare_output(&place, shard, a.overwrite)?);
    let rec = journal.recover()?;
    if rec.renamed + rec.deleted_tmp + rec.deleted_unlisted > 0 || !rec.lost_parts.is_empty() {
        say!(
            "recovered: {} part file(s) finished, {} unfinished part file(s) removed{}",
            rec.renamed,
            rec.deleted_tmp + rec.deleted_unlisted,
            if rec.lost_parts.is_empty() {
                String::new()
            } else {
                format!(", {} incomplete part(s) to redo", rec.lost_parts.len())
            }
        );
    }
    if rec.foreign > 0 {
        say!(
            "warning: {} part file(s) in {} come from runs this output's journals do not know; they were left alone and readers will see their rows",
            rec.foreign,
            p.output.path.display()
        );
    }
    if !shard.is_all() {
        say!("shard:     {shard} ({})", shard.name());
    }
    let config = p.config_hash();
    let mode = if a.retry_failed {
        Mode::RetryFailed
    } else {
        Mode::Resume
    };
    // The listing is streamed, never held: a first pass counts what is
    // done (for this line and the progress total), and the run walks it
    // again, skipping the same files. A shard keeps the files it owns.
    let owned = move |f: &Result<storage::SourceFile, storage::ListError>| match f {
        Ok(f) => shard.owns(&f.key),
        Err(_) => true,
    };
    let (files, plan) = match mode {
        Mode::RetryFailed => {
            let retry = journal.retry_inputs(&config);
            say!(
                "retrying {} document(s) whose latest state is failed or partial",
                retry.len()
            );
            let n = retry.len() as u64;
            let files: pipeline::Files = Box::new(retry.into_iter().map(Ok));
            let plan = Plan {
                listed: n,
                todo: n,
                ..Plan::default()
            };
            (pipeline::Listing::counted(files, n), plan)
        }
        Mode::Resume => {
            let plan = journal.plan(storage::list(&p.input)?.filter(owned), &config)?;
            if plan.done > 0 {
                say!(
                    "resuming: {} of {} document(s) already done, skipped; {} to do",
                    plan.done,
                    plan.listed,
                    plan.todo
                );
            }
            let todo = journal
                .todo(storage::list(&p.input)?.filter(owned), &config)
                .map(|f| f.map_err(anyhow::Error::from));
            (pipeline::Listing::counted(Box::new(todo), plan.todo), plan)
        }
    };
    if plan.done_failed > 0 {
        say!(
            "{} of the skipped document(s) failed earlier; add --retry-failed to try them again",
            plan.done_failed
        );
    }
    let cache = Cache::from_env();
    let resources = docpipe::resources::prepare(&p, &cache, fields.clone())?;
    let run_id = shard.part_prefix(&run_id());
    let opts = WriterOptions {
        commit_every_docs: a.commit_every_docs,
        commit_every_secs: a.commit_every_secs,
        fields,
        ..WriterOptions::default()
    };
    let writer = OutputWriter::create_in(&place, &run_id, opts)
        .with_context(|| format!("cannot create output in {}", p.output.path.display()))?;
    let sink = JournaledSink::new(writer, journal.clone(), &run_id);
    journal.begin(&run_id, &p.name, &config, mode, Some(&plan))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    rt.spawn(crate::watch_signals(stop_tx));
    let program = std::env::current_exe()
        .context("cannot find the docpipe binary to start render workers")?;
    let opts = RunOptions {
        quiet: a.quiet,
        files: Some(files),
        admission: Some(journal.clone()),
        stop: Some(stop_rx),
        renderer: pipeline::Renderer::Workers { program },
        ..RunOptions::default()
    };
    let (summary, sink) = rt.block_on(pipeline::run(&p, resources, sink, opts))?;
    sink.close()?;
    journal.end_run(summary.stopped)?;
    say_inline!("{}", summary.render());
    say!("output:    {}", p.output.path.display());
    if let Some(path) = a.metrics {
        let json = serde_json::to_vec_pretty(&summary.metrics)?;
        std::fs::write(&path, json)
            .with_context(|| format!("cannot write metrics to {}", path.display()))?;
        say!("metrics:   {}", path.display());
    }
    if summary.stopped {
        say!(
            "stopped:   {} document(s) committed by this run; the rest were not started.\n           Resume with the same command:\n  {}",
            journal.committed_docs(),
            crate::resume_command()
        );
        return Ok(exit::STOPPED);
    }
    Ok(
        if summary.docs_failed + summary.docs_partial + plan.done_failed > 0 {
            exit::SOME_FAILED
        } else {
            exit::OK
        },
    )
}

/// Opens `shard`'s run journal of the output at `place` (creating both if
/// need be). `overwrite` deletes what the shard wrote first. An output
/// that holds part files but no journal at all (written by a docpipe
/// without one) is refused unless `overwrite`, as its rows could not be
/// told apart from new ones.
fn prepare_output(place: &Place, shard: Shard, overwrite: bool) -> anyhow::Result<Journal> {
    if !place.is_staged() {
        std::fs::create_dir_all(&place.root)
            .with_context(|| format!("cannot create {}", place.root.display()))?;
    }
    let setup = |e: JournalError| -> anyhow::Error {
        match e {
            JournalError::Locked(_) => SetupError(e.to_string()).into(),
            other => other.into(),
        }
    };
    let no_journal = journal::journals(place)
        .with_context(|| format!("cannot list {}", place.root.display()))?
        .is_empty();
    if overwrite {
        journal::clear(place, shard).map_err(setup)?;
    } else if no_journal && journal::has_part_files(place) {
        return Err(SetupError(format!(
            "{} holds part files but no run journal (written by an older docpipe?); pass --overwrite to replace them, or choose another --output",
            place.root.display()
        ))
        .into());
    }
    Journal::open_in(place, shard).map_err(setup)
}

fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{secs}-{}", &rand[..8])
}
