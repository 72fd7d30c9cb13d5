//! docpipe: a document-AI batch pipeline. PDFs and scans in, typed Parquet out.

pub mod normalise;
pub mod ocr;
pub mod types;
