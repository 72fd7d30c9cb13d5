//! Bounded channels: when the sink stalls, the stages before it fill their
//! queues and stop, and the lister stops reading the input.
#![allow(clippy::unwrap_used)]

use docpipe::config::Pipeline;
use docpipe::output::DocRows;
use docpipe::pipeline::{self, DocSink, Resources, RunOptions};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A sink that blocks every write until the gate opens.
struct StalledSink {
    gate: Arc<(Mutex<bool>, Condvar)>,
    written: Arc<AtomicUsize>,
}

impl DocSink for StalledSink {
    fn write(&mut self, _rows: DocRows) -> anyhow::Result<()> {
        let (lock, cvar) = &*self.gate;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cvar.wait(open).unwrap();
        }
        self.written.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn tiny_png(path: &Path) {
    image::RgbImage::from_pixel(8, 8, image::Rgb([255, 255, 255]))
        .save(path)
        .unwrap();
}

#[test]
fn source_stops_reading_when_the_sink_stalls() {
    const FILES: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        tiny_png(&dir.path().join(format!("p{i:04}.png")));
    }
    let yaml = format!(
        "name: bp\ninput: {{path: {}}}\nocr: {{mode: never}}\noutput: {{path: {}}}\n",
        dir.path().display(),
        dir.path().join("out").display()
    );
    let p = Pipeline::parse(&yaml, Path::new("bp.yaml"), dir.path()).unwrap();
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let written = Arc::new(AtomicUsize::new(0));
    let sink = StalledSink {
        gate: gate.clone(),
        written: written.clone(),
    };
    let opts = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    let counters = opts.counters.clone();
    let resources = Resources {
        pdfium: None,
        detector: None,
        recogniser: None,
        extractor: None,
        layout: None,
        model_ids: Vec::new(),
    };
    let runner = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(pipeline::run(&p, resources, sink, opts))
            .map(|(s, _)| s)
    });

    // Let the pipeline fill every queue, then check it has stopped.
    std::thread::sleep(Duration::from_millis(1500));
    let listed = counters.files_listed.load(Ordering::SeqCst);
    let read = counters.files_read.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        counters.files_listed.load(Ordering::SeqCst),
        listed,
        "the lister kept going while the sink was stalled"
    );
    assert_eq!(counters.files_read.load(Ordering::SeqCst), read);
    assert_eq!(written.load(Ordering::SeqCst), 0);
    // Queue capacities (files 16 + docs 2 + results 16, a few in hand) bound
    // how far the source can run ahead of a stalled sink.
    assert!(listed > 0, "nothing was listed");
    assert!(
        listed < 60,
        "{listed} of {FILES} files listed with the sink stalled"
    );
    assert!(
        read < 60,
        "{read} of {FILES} files read with the sink stalled"
    );

    // Open the gate: everything drains and every file is written once.
    {
        let (lock, cvar) = &*gate;
        *lock.lock().unwrap() = true;
        cvar.notify_all();
    }
    let summary = runner.join().unwrap().unwrap();
    assert_eq!(written.load(Ordering::SeqCst), FILES);
    assert_eq!(summary.docs, FILES as u64);
    assert_eq!(summary.docs_ok, FILES as u64);
    assert_eq!(counters.files_listed.load(Ordering::SeqCst), FILES as u64);
}
