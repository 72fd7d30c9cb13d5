//! docpipe: a document-AI batch pipeline. PDFs and scans in, typed Parquet out.

pub mod config;
pub mod decode;
pub mod derive;
pub mod extract;
pub mod fetch;
pub mod ingest;
pub mod journal;
pub mod normalise;
pub mod ocr;
pub mod output;
pub mod pdf;
pub mod pipeline;
pub mod regions;
pub mod render;
pub mod resources;
pub mod shard;
pub mod show;
pub mod storage;
pub mod types;
pub mod worker;
