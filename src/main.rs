//! The `docpipe` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use docpipe::config::{ConfigError, Pipeline};
use docpipe::fetch::Cache;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit codes, as documented in the README.
mod exit {
    /// Every document was read.
    pub const OK: u8 = 0;
    /// An unexpected error stopped the run (e.g. the output could not be written).
    pub const RUN_ERROR: u8 = 1;
    /// The pipeline file, the command line or the environment is wrong; nothing ran.
    pub const BAD_SETUP: u8 = 2;
    /// The run finished, but some documents failed or were read only in part.
    pub const SOME_FAILED: u8 = 3;
    /// Stopped by SIGINT/SIGTERM before the end (drained, or a second signal
    /// exited at once); committed documents are kept, the same command resumes.
    pub const STOPPED: u8 = 130;
}

/// `eprintln!` that never panics: when stderr is gone (the parent that read
/// it died), messages are dropped and the run still drains, commits and
/// exits as it should.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that never panics; see [`say!`].
macro_rules! say_inline {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

mod cli;

#[derive(Parser)]
#[command(
    name = "docpipe",
    version,
    about = "PDFs and scans in, typed Parquet out"
)]
struct Cli {
    /// More log output (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline.
    Run(cli::run::RunArgs),
    /// Progress of a run's shards, from their journals: documents done,
    /// failed and partial, pages, pages/s, last commit, ETA.
    Status {
        /// The run's output folder or object storage URL.
        #[arg(value_name = "OUTPUT")]
        output: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Call a shard under way stalled after this many minutes without
        /// a commit.
        #[arg(long, value_name = "MIN", default_value_t = 15)]
        stale_after: u64,
    },
    /// Check a pipeline file without running it.
    Check {
        /// The pipeline file (YAML).
        pipeline: PathBuf,
    },
    /// Print the output tables and their columns (Markdown); with a
    /// pipeline, also the typed columns its field schema adds.
    Schema {
        /// A pipeline file with an `extract` section.
        pipeline: Option<PathBuf>,
    },
    /// Fetch the runtime libraries and models ahead of time.
    Fetch {
        /// Which OCR engines, comma-separated: ppocr-v6, ppocr-v6-int8,
        /// fast, ppocr-v4; or all (every pinned model, the layout model
        /// too, and no derived model built).
        #[arg(long, default_value = "all")]
        models: String,
        /// The recogniser's classes for the engines named: full or latin.
        #[arg(long, default_value = "full")]
        charset: String,
    },
    /// Draw a page with its text lines, layout regions and extracted
    /// fields' boxes, to a PNG.
    #[command(group = clap::ArgGroup::new("target").required(true).args(["doc", "uri"]))]
    Show {
        /// The run's output folder (holding documents/, pages/, lines/).
        #[arg(value_name = "OUTPUT_DIR")]
        output: PathBuf,
        /// The document's doc_id.
        #[arg(long, value_name = "DOC_ID")]
        doc: Option<String>,
        /// Part of the document's uri; must match exactly one document.
        #[arg(long, value_name = "SUBSTRING")]
        uri: Option<String>,
        /// Page index, 0-based.
        #[arg(long, default_value_t = 0)]
        page: u32,
        /// The PNG to write (default: <doc_id>-p<page>.png in this folder).
        #[arg(short = 'o', long = "out", value_name = "PNG")]
        out: Option<PathBuf>,
    },
    /// Internal: a render worker process, driven over stdin/stdout by `run`
    /// (see `docpipe::worker`).
    #[command(name = "__render-worker", hide = true)]
    RenderWorker {
        /// The PDFium shared library.
        #[arg(long)]
        pdfium: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCPIPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("docpipe={level},warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say!("docpipe: {e:#}");
            let setup = e.downcast_ref::<ConfigError>().is_some()
                || e.downcast_ref::<docpipe::fetch::FetchError>().is_some()
                || e.downcast_ref::<SetupError>().is_some()
                || e.downcast_ref::<docpipe::resources::SchemaFileError>()
                    .is_some();
            ExitCode::from(if setup {
                exit::BAD_SETUP
            } else {
                exit::RUN_ERROR
            })
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SetupError(String);

fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::RenderWorker { pdfium } => {
            docpipe::worker::serve(&pdfium).context("render worker")?;
            Ok(exit::OK)
        }
        Command::Check { pipeline } => {
            let p = Pipeline::load(&pipeline)?;
            let fields = docpipe::resources::field_schema(&p)?;
            // An object store that cannot be reached is named at its key.
            p.probe_storage()?;
            println!(
                "{}: ok (pipeline `{}`, config hash {})",
                pipeline.display(),
                p.name,
                p.config_hash()
            );
            if let (Some(f), Some(e)) = (fields, &p.extract) {
                let names: Vec<&str> = f.fields().iter().map(|d| d.name.as_str()).collect();
                println!(
                    "fields: {} ({}), {} engine, from {}",
                    names.len(),
                    names.join(", "),
                    e.engine.as_str(),
                    e.schema.display()
                );
                if let Some(model) = &e.model {
                    let tasks: Vec<&str> = e.tasks.iter().map(|t| t.name()).collect();
                    println!("vlm tasks: {} ({})", tasks.join(", "), model.display());
                }
            }
            Ok(exit::OK)
        }
        Command::Schema { pipeline } => {
            let fields = match pipeline {
                Some(path) => docpipe::resources::field_schema(&Pipeline::load(&path)?)?,
                None => None,
            };
            print!("{}", docpipe::output::schema_markdown());
            if let Some(f) = fields {
                print!("{}", docpipe::output::fields_markdown(&f));
            }
            print!("{}", docpipe::output::failures_markdown());
            Ok(exit::OK)
        }
        Command::Fetch { models, charset } => {
            let cache = Cache::from_env();
            println!("pdfium:       {}", cache.pdfium_library()?.display());
            let ort = cache.onnxruntime_library()?;
            println!("onnxruntime:  {}", ort.display());
            let engines: Vec<&str> = match models.as_str() {
                "all" => vec!["ppocr-v6", "ppocr-v4"],
                list => list.split(',').map(str::trim).collect(),
            };
            docpipe::ocr::model::init_runtime(&ort)?;
            for engine in engines {
                let text = format!(
                    "name: fetch\ninput: {{path: in}}\noutput: {{path: out}}\n\
                     ocr: {{engine: {engine}, charset: {charset}}}\n"
                );
                let pipeline = Pipeline::parse(&text, Path::new("--models"), Path::new("."))
                    .map_err(|e| {
                        SetupError(format!("--models {engine} --charset {charset}: {e}"))
                    })?;
                let f = docpipe::resources::ocr_files(&pipeline, &cache)?;
                println!("{engine}:");
                for (role, path) in [("det", &f.det), ("rec", &f.rec), ("cls", &f.cls)] {
                    println!("  {role}: {}", path.display());
                }
            }
            println!("orientation:  {}", cache.orientation_model()?.display());
            if models == "all" {
                println!("ppocr-v3 det: {}", cache.ocr_det_v3()?.display());
                println!("layout:       {}", cache.layout_model()?.display());
            }
            Ok(exit::OK)
        }
        Command::Show {
            output,
            doc,
            uri,
            page,
            out,
        } => {
            use docpipe::show::{ShowOptions, Target};
            let target = match (doc, uri) {
                (Some(d), _) => Target::DocId(d),
                (None, Some(u)) => Target::UriContains(u),
                (None, None) => return Err(SetupError("give --doc or --uri".into()).into()),
            };
            let opts = ShowOptions {
                output_dir: output,
                target,
                page,
                out,
                style: Default::default(),
            };
            let shown = docpipe::show::show(&opts, &Cache::from_env()).map_err(|e| {
                if e.is_usage() {
                    anyhow::Error::from(SetupError(e.to_string()))
                } else {
                    e.into()
                }
            })?;
            for w in &shown.warnings {
                say!("docpipe: warning: {w}");
            }
            println!("{}", shown.summary());
            Ok(exit::OK)
        }
        Command::Run(args) => cli::run::run(args),
        Command::Status {
            output,
            json,
            stale_after,
        } => cli::status::status(&output, json, stale_after),
    }
}

/// First SIGINT/SIGTERM: stop admitting documents (drain). Second: exit at
/// once with [`exit::STOPPED`]; the journal keeps what was committed.
async fn watch_signals(stop: tokio::sync::watch::Sender<bool>) {
    #[cfg(unix)]
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM");
            None
        }
    };
    let mut first = true;
    loop {
        #[cfg(unix)]
        let got = tokio::select! {
            r = tokio::signal::ctrl_c() => r.is_ok().then_some("SIGINT"),
            Some(_) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => Some("SIGTERM"),
        };
        #[cfg(not(unix))]
        let got = tokio::signal::ctrl_c().await.is_ok().then_some("Ctrl-C");
        let Some(name) = got else {
            return;
        };
        if first {
            first = false;
            let _ = stop.send(true);
            say!(
                "\ndocpipe: {name}: stopping; no new documents, finishing and committing those in flight (send it again to exit at once)"
            );
        } else {
            say!(
                "\ndocpipe: {name} again: exiting now; committed documents are kept, resume with:\n  {}",
                resume_command()
            );
            std::process::exit(i32::from(exit::STOPPED));
        }
    }
}

/// The command line that resumes this run: this one without `--overwrite`.
fn resume_command() -> String {
    let quote = |a: &str| {
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
        {
            a.to_string()
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        }
    };
    let mut args = std::env::args();
    let bin = args
        .next()
        .map(|b| {
            Path::new(&b)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(b)
        })
        .unwrap_or_else(|| "docpipe".into());
    let mut parts = vec![quote(&bin)];
    parts.extend(args.filter(|a| a != "--overwrite").map(|a| quote(&a)));
    parts.join(" ")
}
