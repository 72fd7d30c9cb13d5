//! The `docpipe` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use docpipe::config::{ConfigError, Pipeline};
use docpipe::fetch::Cache;
use docpipe::output::{OutputWriter, WriterOptions};
use docpipe::pipeline::{self, RunOptions};
use std::path::PathBuf;
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
}

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
    Run {
        /// The pipeline file (YAML).
        pipeline: PathBuf,
        /// Read these files or folders instead of the pipeline's `input.path`.
        #[arg(long = "input", value_name = "PATH")]
        inputs: Vec<PathBuf>,
        /// Write to this folder instead of the pipeline's `output.path`.
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Replace the results of an earlier run in the output folder.
        #[arg(long)]
        overwrite: bool,
        /// No progress bar or progress lines.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Check a pipeline file without running it.
    Check {
        /// The pipeline file (YAML).
        pipeline: PathBuf,
    },
    /// Print the output tables and their columns (Markdown).
    Schema,
    /// Fetch the runtime libraries and models ahead of time.
    Fetch {
        /// Which OCR models: ppocr-v6, ppocr-v4 or all.
        #[arg(long, default_value = "all")]
        models: String,
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
            eprintln!("docpipe: {e:#}");
            let setup = e.downcast_ref::<ConfigError>().is_some()
                || e.downcast_ref::<docpipe::fetch::FetchError>().is_some()
                || e.downcast_ref::<SetupError>().is_some();
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
            println!(
                "{}: ok (pipeline `{}`, config hash {})",
                pipeline.display(),
                p.name,
                p.config_hash()
            );
            Ok(exit::OK)
        }
        Command::Schema => {
            print!("{}", docpipe::output::schema_markdown());
            Ok(exit::OK)
        }
        Command::Fetch { models } => {
            let cache = Cache::from_env();
            println!("pdfium:       {}", cache.pdfium_library()?.display());
            println!("onnxruntime:  {}", cache.onnxruntime_library()?.display());
            let versions: &[(&str, docpipe::fetch::OcrModelVersion)] = match models.as_str() {
                "ppocr-v6" => &[("ppocr-v6", docpipe::fetch::OcrModelVersion::V6)],
                "ppocr-v4" => &[("ppocr-v4", docpipe::fetch::OcrModelVersion::V4)],
                "all" => &[
                    ("ppocr-v6", docpipe::fetch::OcrModelVersion::V6),
                    ("ppocr-v4", docpipe::fetch::OcrModelVersion::V4),
                ],
                other => {
                    return Err(SetupError(format!(
                        "--models must be ppocr-v6, ppocr-v4 or all, not {other:?}"
                    ))
                    .into())
                }
            };
            for (name, v) in versions {
                let m = cache.ocr_models(*v)?;
                println!("{name}:     {}", m.det.parent().unwrap_or(&m.det).display());
            }
            Ok(exit::OK)
        }
        Command::Run {
            pipeline,
            inputs,
            output,
            overwrite,
            quiet,
        } => {
            let mut p = Pipeline::load(&pipeline)?;
            if !inputs.is_empty() {
                p.input.paths = inputs
                    .iter()
                    .map(|i| std::path::absolute(i).unwrap_or_else(|_| i.clone()))
                    .collect();
            }
            if let Some(o) = output {
                p.output.path = std::path::absolute(&o).unwrap_or(o);
            }
            for path in &p.input.paths {
                if !path.exists() {
                    return Err(SetupError(format!(
                        "input path {} does not exist",
                        path.display()
                    ))
                    .into());
                }
            }
            prepare_output(&p.output.path, overwrite)?;
            let cache = Cache::from_env();
            let resources = docpipe::resources::prepare(&p, &cache)?;
            let run_id = run_id();
            let writer = OutputWriter::create(&p.output.path, &run_id, WriterOptions::default())
                .with_context(|| format!("cannot create output in {}", p.output.path.display()))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let program = std::env::current_exe()
                .context("cannot find the docpipe binary to start render workers")?;
            let opts = RunOptions {
                quiet,
                renderer: pipeline::Renderer::Workers { program },
                ..RunOptions::default()
            };
            let (summary, writer) = rt.block_on(pipeline::run(&p, resources, writer, opts))?;
            writer.close()?;
            eprint!("{}", summary.render());
            eprintln!("output:    {}", p.output.path.display());
            Ok(if summary.docs_failed + summary.docs_partial > 0 {
                exit::SOME_FAILED
            } else {
                exit::OK
            })
        }
    }
}

/// Refuses to mix a new run's rows with an earlier run's unless asked to
/// replace them.
fn prepare_output(dir: &std::path::Path, overwrite: bool) -> anyhow::Result<()> {
    let tables = ["documents", "pages", "lines"];
    let has_parts = tables.iter().any(|t| {
        std::fs::read_dir(dir.join(t))
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
            })
            .unwrap_or(false)
    });
    if has_parts && !overwrite {
        return Err(SetupError(format!(
            "{} already holds the results of an earlier run; pass --overwrite to replace them, or choose another --output",
            dir.display()
        ))
        .into());
    }
    if has_parts {
        for t in tables {
            let d = dir.join(t);
            if d.exists() {
                std::fs::remove_dir_all(&d)
                    .with_context(|| format!("cannot clear {}", d.display()))?;
            }
        }
    }
    Ok(())
}

fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{secs}-{}", &rand[..8])
}
