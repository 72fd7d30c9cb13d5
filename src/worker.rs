//! Render worker processes: PDFium out of the pipeline's process.
//!
//! PDFium is process-global and not thread-safe, so threads cannot render in
//! parallel, and a hostile PDF can crash or hang it. The render stage
//! therefore runs `runtime.workers` threads, each owning one [`Worker`]: a
//! child process running this same program with the hidden subcommand
//! [`SUBCOMMAND`] ([`child::serve`]), fed one document at a time over the
//! framed protocol of [`protocol`] on its stdin/stdout.
//!
//! The parent watches each document: a worker that dies, spends more than
//! `runtime.doc_timeout_s` on it, or grows past `runtime.worker_memory_mb`
//! resident (read from `/proc/<pid>/status` every [`POLL`]) is killed, and
//! the document fails with class `crashed`, `timeout` or `out_of_memory`.
//! The caller then drops the worker and starts a new one for the next
//! document; a healthy worker lives for the whole run. The worker's stderr
//! is forwarded to ours line by line (prefixed with its pid), and its last
//! lines go into the message of a crash.

pub mod child;
pub mod protocol;

pub use child::{serve, FAULT_ENV};

use crate::render::{DocFailure, ErrorClass, RenderEvent, RenderSettings};
use protocol::{ProtocolError, Reply, Request};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The hidden subcommand that makes the binary a render worker.
pub const SUBCOMMAND: &str = "__render-worker";
/// How often the parent looks at a busy worker's clock and memory.
pub const POLL: Duration = Duration::from_millis(50);
/// How long a worker may take to start and say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker whose stdin closed may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// Bytes of a worker's stderr kept for the message of a crash.
const STDERR_TAIL: usize = 2048;

/// How to start a render worker and the limits it runs under.
#[derive(Clone, Debug)]
pub struct WorkerSpec {
    /// The docpipe binary (normally `std::env::current_exe()`).
    pub program: PathBuf,
    /// PDFium shared library, passed to the worker.
    pub pdfium: PathBuf,
    /// Longest the parent waits on a worker for one document
    /// (`runtime.doc_timeout_s`). Only time spent waiting for the worker
    /// counts: while the parent is blocked passing pages downstream (a slow
    /// OCR stage), the worker is blocked too and its clock stops.
    pub doc_timeout: Duration,
    /// Largest resident memory of a worker, bytes (`runtime.worker_memory_mb`).
    pub memory_limit: u64,
}

/// How one document went in a worker.
#[derive(Debug)]
pub enum Outcome {
    /// Every page was emitted; the worker is ready for the next document.
    Done,
    /// `emit` returned false (the pipeline is closing); the worker was killed.
    Stopped,
    /// The document could not be read; the worker is fine.
    Failed(DocFailure),
    /// The worker crashed, hung or grew too large and was killed; the
    /// failure is the document's. Start a new worker.
    Lost(DocFailure),
}

/// One live render worker process.
pub struct Worker {
    pid: u32,
    spec: WorkerSpec,
    stdin: Option<ChildStdin>,
    link: Link,
}

/// A frame as the reader thread hands it over.
type Frame = Result<(Reply, Vec<u8>), ProtocolError>;

/// The parts of a worker the waiting side uses (split from `stdin`, which a
/// writer thread holds while a document goes out).
struct Link {
    pid: u32,
    child: Child,
    replies: Option<Receiver<Frame>>,
    reader: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<()>>,
    tail: Arc<Mutex<Vec<u8>>>,
    last_memory_check: Instant,
}

impl Worker {
    /// Starts a worker and waits for it to say it is ready.
    pub fn spawn(spec: &WorkerSpec) -> Result<Worker, DocFailure> {
        let cannot = |what: String| {
            DocFailure::new(
                ErrorClass::Crashed,
                format!(
                    "the render worker ({} {SUBCOMMAND}) could not be started: {what}",
                    spec.program.display()
                ),
            )
        };
        let mut command = Command::new(&spec.program);
        command.arg(SUBCOMMAND).arg("--pdfium").arg(&spec.pdfium);
        // Its own process group: a Ctrl-C at the terminal goes to docpipe,
        // which drains (finishing the documents workers hold), not to the
        // workers themselves. A worker whose parent is gone exits by itself.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| cannot(e.to_string()))?;
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(cannot("its pipes are missing".into()));
        };
        // One frame in hand at most: a worker runs ahead of a slow pipeline
        // by one page, then blocks on its stdout.
        let (tx, rx) = mpsc::sync_channel(1);
        let reader = std::thread::Builder::new()
            .name(format!("render-worker-{pid}"))
            .spawn(move || {
                let mut r = BufReader::with_capacity(1 << 20, stdout);
                loop {
                    let frame = protocol::read_frame::<Reply>(&mut r);
                    let end = frame.is_err();
                    if tx.send(frame).is_err() || end {
                        break;
                    }
                }
            });
        let tail = Arc::new(Mutex::new(Vec::new()));
        let t = tail.clone();
        let stderr = std::thread::Builder::new()
            .name(format!("render-worker-{pid}-stderr"))
            .spawn(move || forward_stderr(pid, stderr, &t));
        let mut link = Link {
            pid,
            child,
            replies: Some(rx),
            reader: reader.ok(),
            stderr: stderr.ok(),
            tail,
            last_memory_check: Instant::now(),
        };
        if link.reader.is_none() {
            link.kill();
            return Err(cannot("no thread to read it".into()));
        }
        let mut waited = Duration::ZERO;
        let limits = Limits {
            timeout: START_TIMEOUT,
            memory: spec.memory_limit,
        };
        match link.next(&mut waited, &limits) {
            Ok((Reply::Ready { version, .. }, _)) if version == protocol::VERSION => {}
            Ok((other, _)) => {
                link.kill();
                return Err(cannot(format!(
                    "it answered {other:?} instead of protocol version {}",
                    protocol::VERSION
                )));
            }
            Err(lost) => return Err(cannot(lost.message)),
        }
        tracing::debug!(worker = pid, "render worker started");
        Ok(Worker {
            pid,
            spec: spec.clone(),
            stdin: Some(stdin),
            link,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends one document to the worker and hands each of its events to
    /// `emit`, under the spec's time and memory limits.
    pub fn render(
        &mut self,
        doc_id: &str,
        data: &[u8],
        settings: &RenderSettings,
        emit: &mut dyn FnMut(RenderEvent) -> bool,
    ) -> Outcome {
        self.render_for(doc_id, data, settings, None, emit)
    }

    /// [`Worker::render`], and with `vlm_dpi` also each page's image for a
    /// VLM at that resolution ([`RenderEvent::VlmImage`], see
    /// [`crate::render::render_pdf_for`]), under the same time and memory
    /// limits.
    pub fn render_for(
        &mut self,
        doc_id: &str,
        data: &[u8],
        settings: &RenderSettings,
        vlm_dpi: Option<f32>,
        emit: &mut dyn FnMut(RenderEvent) -> bool,
    ) -> Outcome {
        let Some(stdin) = self.stdin.as_mut() else {
            return Outcome::Lost(DocFailure::new(
                ErrorClass::Crashed,
                "the render worker was already closed",
            ));
        };
        let link = &mut self.link;
        let limits = Limits {
            timeout: self.spec.doc_timeout,
            memory: self.spec.memory_limit,
        };
        let request = Request::Render {
            doc_id: doc_id.to_string(),
            settings: settings.clone(),
            vlm_dpi,
        };
        std::thread::scope(|s| {
            // The request goes out on its own thread, so a worker that stops
            // reading cannot block us past the time limit; killing the
            // worker ends the write with a broken pipe.
            let _writer = s.spawn(move || {
                let sent = protocol::write_frame(stdin, &request, data)
                    .and_then(|()| stdin.flush().map_err(ProtocolError::from));
                if let Err(e) = sent {
                    tracing::debug!("sending a document to the render worker: {e}");
                }
            });
            let mut waited = Duration::ZERO;
            loop {
                let (reply, payload) = match link.next(&mut waited, &limits) {
                    Ok(frame) => frame,
                    Err(lost) => return Outcome::Lost(lost),
                };
                match reply {
                    Reply::Done => return Outcome::Done,
                    Reply::Failed { failure } => return Outcome::Failed(failure),
                    other => match protocol::reply_to_event(other, payload) {
                        Ok(Some(ev)) => {
                            if !emit(ev) {
                                link.kill();
                                return Outcome::Stopped;
                            }
                        }
                        Ok(None) => {
                            let e = ProtocolError::Bad("a second Ready mid-document".into());
                            return Outcome::Lost(link.broken(e));
                        }
                        Err(e) => return Outcome::Lost(link.broken(e)),
                    },
                }
            }
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing stdin tells a healthy worker to exit.
        drop(self.stdin.take());
        self.link.shut_down();
    }
}

struct Limits {
    timeout: Duration,
    memory: u64,
}

impl Link {
    /// The worker's next frame, or the failure that ended it (the worker is
    /// dead or killed then). `waited` accumulates the time spent waiting.
    fn next(
        &mut self,
        waited: &mut Duration,
        limits: &Limits,
    ) -> Result<(Reply, Vec<u8>), DocFailure> {
        loop {
            if self.last_memory_check.elapsed() >= POLL {
                self.last_memory_check = Instant::now();
                if let Some(rss) = resident_bytes(self.pid) {
                    if rss > limits.memory {
                        self.kill();
                        return Err(DocFailure::new(
                            ErrorClass::OutOfMemory,
                            format!(
                                "the render worker (pid {}) grew to {} MiB resident, over the limit of {} MiB (runtime.worker_memory_mb), and was killed",
                                self.pid,
                                rss >> 20,
                                limits.memory >> 20
                            ),
                        ));
                    }
                }
            }
            let Some(replies) = self.replies.as_ref() else {
                return Err(self.died(None));
            };
            let left = limits.timeout.saturating_sub(*waited);
            let t = Instant::now();
            let got = replies.recv_timeout(left.min(POLL));
            *waited += t.elapsed();
            match got {
                Ok(Ok(frame)) => return Ok(frame),
                Ok(Err(ProtocolError::Closed)) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.died(None))
                }
                Ok(Err(e)) => return Err(self.broken(e)),
                Err(RecvTimeoutError::Timeout) => {
                    if *waited >= limits.timeout {
                        self.kill();
                        return Err(DocFailure::new(
                            ErrorClass::Timeout,
                            format!(
                                "the render worker (pid {}) spent more than {} s on this document (runtime.doc_timeout_s) and was killed",
                                self.pid,
                                limits.timeout.as_secs_f64()
                            ),
                        ));
                    }
                }
            }
        }
    }

    /// The worker sent something that is not a frame: kill it; a crash.
    fn broken(&mut self, e: ProtocolError) -> DocFailure {
        self.kill();
        self.died(Some(e))
    }

    /// The failure of a worker whose output ended.
    fn died(&mut self, e: Option<ProtocolError>) -> DocFailure {
        let status = self.reap();
        // The stderr thread ends once the dead worker's pipe drains.
        if let Some(h) = self.stderr.take() {
            let _ = h.join();
        }
        let mut message = format!(
            "the render worker (pid {}) died while reading this document: {}",
            self.pid,
            status.map_or_else(|| "exit status unknown".to_string(), describe_status)
        );
        if let Some(e) = e {
            message.push_str(&format!(" (after a protocol error: {e})"));
        }
        let tail = self
            .tail
            .lock()
            .map(|t| String::from_utf8_lossy(&t).trim().to_string())
            .unwrap_or_default();
        if !tail.is_empty() {
            message.push_str(&format!("; its last output: {tail}"));
        }
        DocFailure::new(ErrorClass::Crashed, message)
    }

    /// Waits for the process, killing it if it lingers past [`EXIT_GRACE`].
    fn reap(&mut self) -> Option<ExitStatus> {
        let until = Instant::now() + EXIT_GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => return Some(s),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let _ = self.child.kill();
                    return self.child.wait().ok();
                }
                Err(_) => return None,
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn shut_down(&mut self) {
        // Dropping the receiver frees a reader blocked on a full channel.
        drop(self.replies.take());
        if let Some(status) = self.reap() {
            if !status.success() {
                tracing::debug!(
                    worker = self.pid,
                    "render worker ended: {}",
                    describe_status(status)
                );
            }
        }
        for h in [self.reader.take(), self.stderr.take()]
            .into_iter()
            .flatten()
        {
            let _ = h.join();
        }
    }
}

/// Copies a worker's stderr to ours, a line at a time, and keeps its last
/// [`STDERR_TAIL`] bytes.
fn forward_stderr(pid: u32, stderr: impl std::io::Read, tail: &Mutex<Vec<u8>>) {
    let mut r = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "[render worker {pid}] ");
        let _ = err.write_all(&line);
        if !line.ends_with(b"\n") {
            let _ = err.write_all(b"\n");
        }
        if let Ok(mut t) = tail.lock() {
            t.extend_from_slice(&line);
            let excess = t.len().saturating_sub(STDERR_TAIL);
            t.drain(..excess);
        }
    }
}

/// "killed by signal 6 (SIGABRT)" or "exited with status 101".
pub fn describe_status(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                4 => " (SIGILL)",
                6 => " (SIGABRT)",
                7 => " (SIGBUS)",
                8 => " (SIGFPE)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("killed by signal {sig}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "ended".to_string(),
    }
}

/// Resident memory of a process in bytes, from `/proc/<pid>/status`
/// (`VmRSS`); `None` where there is no /proc or the process is gone.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Worker count from `runtime.workers`: 0 means one per core.
pub fn pool_size(workers: usize) -> usize {
    if workers == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        workers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resident_memory_from_proc_status() {
        struct Case {
            text: &'static str,
            want: Option<u64>,
        }
        let cases = [
            Case {
                text: "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t1\n",
                want: Some(1234 * 1024),
            },
            Case {
                text: "Name:\tzombie\nState:\tZ\n",
                want: None,
            },
            Case {
                text: "VmRSS: lots kB\n",
                want: None,
            },
        ];
        for c in cases {
            assert_eq!(parse_vm_rss(c.text), c.want, "{:?}", c.text);
        }
        // Our own process is resident, and far smaller than a terabyte.
        let own = resident_bytes(std::process::id()).unwrap_or(0);
        assert!(own > 1 << 20 && own < 1 << 40, "{own}");
    }

    #[test]
    fn pool_size_zero_means_one_per_core() {
        assert_eq!(pool_size(3), 3);
        assert!(pool_size(0) >= 1);
    }

    #[cfg(unix)]
    #[test]
    fn exit_statuses_say_how_the_worker_ended() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            describe_status(ExitStatus::from_raw(6)),
            "killed by signal 6 (SIGABRT)"
        );
        assert_eq!(
            describe_status(ExitStatus::from_raw(101 << 8)),
            "exited with status 101"
        );
    }

    #[test]
    fn a_program_that_is_not_a_worker_is_refused() {
        // `true` exits at once without a Ready frame.
        let spec = WorkerSpec {
            program: PathBuf::from("true"),
            pdfium: PathBuf::from("/nonexistent"),
            doc_timeout: Duration::from_secs(5),
            memory_limit: 1 << 30,
        };
        match Worker::spawn(&spec) {
            Err(f) => {
                assert_eq!(f.class, ErrorClass::Crashed);
                assert!(f.message.contains("could not be started"), "{}", f.message);
            }
            Ok(w) => panic!("worker {} started", w.pid()),
        }
    }
}
