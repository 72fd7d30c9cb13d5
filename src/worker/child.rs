//! The render worker process: `docpipe __render-worker --pdfium LIB`.
//!
//! It reads [`Request`] frames from stdin, one document at a time, runs
//! [`crate::render::render_pdf`] on each and writes the events back as
//! [`Reply`] frames on stdout, ending every document with `Done` or
//! `Failed`. It exits when stdin closes. Nothing else may write to stdout;
//! logs go to stderr, which the pipeline forwards.

use super::protocol::{self, ProtocolError, Reply, Request};
use crate::render::{self, RenderEvent};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

/// Environment variable of the test-only fault switch, read by the worker
/// process only. A comma-separated list of `KIND:NEEDLE`; a document whose
/// bytes contain `NEEDLE` (any bytes, e.g. a `%comment` after `%%EOF`)
/// triggers `KIND` before it is read:
///
/// - `hang`: sleep forever (the pipeline's `runtime.doc_timeout_s` ends it);
/// - `crash`: abort (SIGABRT);
/// - `oom`: allocate and touch 16 MiB every 5 ms until killed (the
///   pipeline's `runtime.worker_memory_mb` ends it; past 8 GiB it stops
///   growing and hangs instead, so a broken watchdog cannot take the machine);
/// - `slow`: sleep 1.5 s, then read the document normally (tests use it to
///   make two documents overlap);
/// - `crash-later`: abort, but only on a request for a later part of a
///   long PDF that the render threads share (pages from after page 0).
pub const FAULT_ENV: &str = "DOCPIPE_WORKER_FAULT";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Hang,
    Crash,
    Oom,
    Slow,
    CrashLater,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub needle: Vec<u8>,
}

/// Parses the fault switch; unknown kinds and empty needles are ignored (and
/// said on stderr).
pub fn parse_faults(spec: &str) -> Vec<Fault> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = item.split_once(':').and_then(|(kind, needle)| {
            let kind = match kind {
                "hang" => FaultKind::Hang,
                "crash" => FaultKind::Crash,
                "oom" => FaultKind::Oom,
                "slow" => FaultKind::Slow,
                "crash-later" => FaultKind::CrashLater,
                _ => return None,
            };
            (!needle.is_empty()).then(|| Fault {
                kind,
                needle: needle.as_bytes().to_vec(),
            })
        });
        match parsed {
            Some(f) => out.push(f),
            None => eprintln!("docpipe render worker: ignoring {FAULT_ENV} entry {item:?}"),
        }
    }
    out
}

/// The first fault whose needle is in `data`.
pub fn fault_for<'a>(faults: &'a [Fault], data: &[u8]) -> Option<&'a Fault> {
    faults.iter().find(|f| contains(data, &f.needle))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn trigger(kind: FaultKind) {
    match kind {
        FaultKind::Hang => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        FaultKind::Crash | FaultKind::CrashLater => std::process::abort(),
        FaultKind::Oom => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            while hoard.len() < 512 {
                hoard.push(vec![0xA5; 16 << 20]);
                std::thread::sleep(Duration::from_millis(5));
            }
            trigger(FaultKind::Hang);
        }
        FaultKind::Slow => std::thread::sleep(Duration::from_millis(1500)),
    }
}

/// Exits when the pipeline that started this worker is gone, so a worker
/// stuck inside PDFium (where it would never see its stdin close) does not
/// outlive a pipeline that was killed.
fn watch_parent() {
    #[cfg(unix)]
    {
        let parent = std::os::unix::process::parent_id();
        let watcher = std::thread::Builder::new()
            .name("parent-watch".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                if std::os::unix::process::parent_id() != parent {
                    std::process::exit(1);
                }
            });
        if let Err(e) = watcher {
            tracing::warn!("cannot watch the parent process: {e}");
        }
    }
}

/// Runs the worker loop on stdin/stdout until stdin closes. `Err` only when
/// the pipes themselves fail.
pub fn serve(pdfium: &Path) -> Result<(), ProtocolError> {
    let faults = std::env::var(FAULT_ENV)
        .map(|s| parse_faults(&s))
        .unwrap_or_default();
    watch_parent();
    crate::pdf::mark_render_worker();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    protocol::write_frame(
        &mut out,
        &Reply::Ready {
            version: protocol::VERSION,
            pid: std::process::id(),
        },
        &[],
    )?;
    out.flush()?;
    loop {
        let (request, data) = match protocol::read_frame::<Request>(&mut input) {
            Ok(r) => r,
            Err(ProtocolError::Closed) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Request::Render {
            doc_id,
            settings,
            vlm_dpi,
        } = request;
        let _span = tracing::debug_span!("worker", doc = %doc_id).entered();
        if let Some(f) = fault_for(&faults, &data) {
            let later_part = settings.pages.is_some_and(|(first, _)| first > 0);
            if f.kind != FaultKind::CrashLater || later_part {
                tracing::warn!(fault = ?f.kind, "{FAULT_ENV} matched this document");
                trigger(f.kind);
            }
        }
        let mut broken: Option<ProtocolError> = None;
        let mut emit = |ev: RenderEvent| {
            let (reply, payload) = protocol::event_to_reply(ev);
            let sent = protocol::write_frame(&mut out, &reply, &payload).and_then(|()| {
                // Flush page by page so the pipeline can pass pages on while
                // later ones render.
                out.flush().map_err(ProtocolError::from)
            });
            match sent {
                Ok(()) => true,
                Err(e) => {
                    broken = Some(e);
                    false
                }
            }
        };
        let outcome = render::render_pdf_guarded(pdfium, &data, &settings, vlm_dpi, &mut emit);
        if let Some(e) = broken {
            return Err(e);
        }
        drop(data);
        let last = match outcome {
            Ok(_) => Reply::Done,
            Err(failure) => Reply::Failed { failure },
        };
        protocol::write_frame(&mut out, &last, &[])?;
        out.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_switch_parses_kinds_and_needles() {
        struct Case {
            spec: &'static str,
            want: Vec<(FaultKind, &'static str)>,
        }
        let cases = [
            Case {
                spec: "",
                want: vec![],
            },
            Case {
                spec: "hang:AAA",
                want: vec![(FaultKind::Hang, "AAA")],
            },
            Case {
                spec: "crash:B, oom:C:D ,slow:E,crash-later:F",
                want: vec![
                    (FaultKind::Crash, "B"),
                    (FaultKind::Oom, "C:D"),
                    (FaultKind::Slow, "E"),
                    (FaultKind::CrashLater, "F"),
                ],
            },
            Case {
                spec: "explode:X,hang:,nocolon",
                want: vec![],
            },
        ];
        for c in cases {
            let got: Vec<(FaultKind, Vec<u8>)> = parse_faults(c.spec)
                .into_iter()
                .map(|f| (f.kind, f.needle))
                .collect();
            let want: Vec<(FaultKind, Vec<u8>)> = c
                .want
                .iter()
                .map(|(k, n)| (*k, n.as_bytes().to_vec()))
                .collect();
            assert_eq!(got, want, "{:?}", c.spec);
        }
    }

    #[test]
    fn faults_match_on_the_document_bytes() {
        let faults = parse_faults("hang:%HANG-ME,crash:%CRASH-ME");
        let doc = b"%PDF-1.7\n...%%EOF\n%CRASH-ME\n";
        assert_eq!(
            fault_for(&faults, doc).map(|f| f.kind),
            Some(FaultKind::Crash)
        );
        assert!(fault_for(&faults, b"%PDF-1.7 plain").is_none());
        assert!(fault_for(&faults, b"").is_none());
    }
}
