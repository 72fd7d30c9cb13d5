//! Helpers shared by the integration tests: running the binary, reading the
//! Parquet it wrote, comparing text.
#![allow(dead_code, clippy::unwrap_used)]

pub mod rows;
pub mod s3;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
pub mod slurm;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    root().join("fixtures")
}

pub fn docpipe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_docpipe"))
}

/// Runs `docpipe` with `args` and returns its output (stderr printed on failure).
pub fn run(args: &[&str]) -> Output {
    let out = docpipe().args(args).output().expect("docpipe runs");
    if !out.status.success() {
        eprintln!(
            "docpipe {args:?} exited {:?}\n--- stderr ---\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Every row of one table (all its committed part files), as batches.
pub fn read_table(out: &Path, table: &str) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(out.join(table))
        .expect("table folder exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    for f in files {
        let file = std::fs::File::open(&f).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for b in reader {
            batches.push(b.unwrap());
        }
    }
    batches
}

/// A column's values as strings (None for null), across batches. Works for
/// plain and dictionary-encoded strings and for numbers.
pub fn strings(batches: &[RecordBatch], column: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for b in batches {
        let col = b
            .column_by_name(column)
            .unwrap_or_else(|| panic!("no column {column}"));
        let col = match col.data_type() {
            DataType::Dictionary(_, _) => arrow::compute::cast(col, &DataType::Utf8).unwrap(),
            DataType::Utf8 => col.clone(),
            _ => arrow::compute::cast(col, &DataType::Utf8).unwrap(),
        };
        let s = col.as_string::<i32>();
        for i in 0..s.len() {
            out.push(s.is_valid(i).then(|| s.value(i).to_string()));
        }
    }
    out
}

/// Character error rate of `got` against `want`: edit distance over the
/// length of `want`, on whitespace-normalised text.
pub fn cer(got: &str, want: &str) -> f64 {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let (g, w): (Vec<char>, Vec<char>) =
        (norm(got).chars().collect(), norm(want).chars().collect());
    let mut prev: Vec<usize> = (0..=w.len()).collect();
    for (i, cg) in g.iter().enumerate() {
        let mut cur = vec![i + 1; w.len() + 1];
        for (j, cw) in w.iter().enumerate() {
            let cost = usize::from(cg != cw);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[w.len()] as f64 / w.len().max(1) as f64
}

/// The fixtures manifest.
pub fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A Python that can import pyarrow: the system one if it can, otherwise
/// pyarrow is installed (pinned) into the test cache with pip.
pub fn python_with_pyarrow() -> (String, String) {
    let python = std::env::var("DOCPIPE_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = |pp: &str| {
        std::process::Command::new(&python)
            .env("PYTHONPATH", pp)
            .args(["-c", "import pyarrow"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has("") {
        return (python, String::new());
    }
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pyarrow-lib");
    let target_s = target.to_str().unwrap().to_string();
    if !has(&target_s) {
        let lock =
            std::fs::File::create(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pyarrow.lock"))
                .unwrap();
        fs4::fs_std::FileExt::lock_exclusive(&lock).unwrap();
        if !has(&target_s) {
            eprintln!("installing pyarrow==22.0.0 for the read-back test into {target_s}");
            let o = std::process::Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--only-binary=:all:",
                    "--target",
                    &target_s,
                    "pyarrow==22.0.0",
                ])
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "pip install pyarrow failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    (python, target_s)
}

/// A PDF of `pages` US Letter pages, page i (from 1) holding the line
/// `line(i)` in Helvetica, in a real text layer, and `%needle` after its
/// `%%EOF` (for the workers' fault switch).
pub fn pdf_of_lines(pages: usize, needle: &str, line: impl Fn(usize) -> String) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    let mut object = |out: &mut Vec<u8>, body: String| {
        offsets.push(out.len());
        let n = offsets.len();
        out.extend_from_slice(format!("{n} 0 obj\n{body}\nendobj\n").as_bytes());
    };
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    object(&mut out, "<< /Type /Catalog /Pages 2 0 R >>".into());
    object(
        &mut out,
        format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            kids.join(" ")
        ),
    );
    object(
        &mut out,
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into(),
    );
    for i in 0..pages {
        object(
            &mut out,
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
                 /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                5 + 2 * i
            ),
        );
        let text = format!("BT /F1 24 Tf 72 700 Td ({}) Tj ET", line(i + 1));
        object(
            &mut out,
            format!("<< /Length {} >>\nstream\n{text}\nendstream", text.len()),
        );
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes(),
    );
    for o in &offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n%{needle}\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// One run of text on a test page: where its baseline starts (PDF points,
/// origin bottom-left), its font size in points, and whether it is set in
/// Helvetica-Bold (else Helvetica).
pub struct TextRun<'a> {
    pub x: f32,
    pub y: f32,
    pub size: f32,
    pub bold: bool,
    pub text: &'a str,
}

/// A one-page US Letter PDF with `runs` in its text layer (text without
/// `(`, `)` or `\`).
pub fn pdf_of_runs(runs: &[TextRun]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    let mut object = |out: &mut Vec<u8>, body: String| {
        offsets.push(out.len());
        let n = offsets.len();
        out.extend_from_slice(format!("{n} 0 obj\n{body}\nendobj\n").as_bytes());
    };
    object(&mut out, "<< /Type /Catalog /Pages 2 0 R >>".into());
    object(&mut out, "<< /Type /Pages /Kids [5 0 R] /Count 1 >>".into());
    object(
        &mut out,
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into(),
    );
    object(
        &mut out,
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>".into(),
    );
    object(
        &mut out,
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
         /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents 6 0 R >>"
            .into(),
    );
    let text: String = runs
        .iter()
        .map(|r| {
            let font = if r.bold { "F2" } else { "F1" };
            format!(
                "BT /{font} {} Tf {} {} Td ({}) Tj ET\n",
                r.size, r.x, r.y, r.text
            )
        })
        .collect();
    object(
        &mut out,
        format!("<< /Length {} >>\nstream\n{text}endstream", text.len()),
    );
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes(),
    );
    for o in &offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    out
}
