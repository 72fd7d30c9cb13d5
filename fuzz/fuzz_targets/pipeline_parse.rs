//! The pipeline-file parser on arbitrary input: any bytes, read as UTF-8
//! (lossy, as a text editor would), must give `Ok` or `Err`, never a panic,
//! a hang or unbounded memory (alias bombs, deep nesting).
//!
//! Seeds: `pipelines/*.yaml` (copied in by `scripts/fuzz`).
#![no_main]

use docpipe::config::Pipeline;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Only the parse itself: `config_hash` would read the `extract.schema`
    // file from disk, which is not the parser's business.
    if let Err(e) = Pipeline::parse(&text, Path::new("f.yaml"), Path::new("/")) {
        // Rendering the issues is what `docpipe check` prints.
        let _ = e.to_string();
    }
});
