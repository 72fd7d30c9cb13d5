//! The rows of an output, keyed so that two outputs (a run and its
//! resumed or sharded twin) can be compared, and inputs to make them from.
#![allow(dead_code, clippy::unwrap_used)]

use super::read_table;
use super::strings;
use std::collections::BTreeMap;
use std::path::Path;

/// A fresh folder `name` under the test target folder, with an empty
/// `in/` in it.
pub fn workdir(name: &str) -> std::path::PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("in")).unwrap();
    d
}

/// `n_pdf` copies of the born-digital fixture (each with its own bytes) and
/// `n_png` small distinct PNGs.
pub fn make_inputs(dir: &Path, n_pdf: usize, n_png: usize) {
    let pdf = std::fs::read(super::fixtures().join("samples/born-digital.pdf")).unwrap();
    for i in 0..n_pdf {
        let mut b = pdf.clone();
        b.extend_from_slice(format!("\n%copy {i}\n").as_bytes());
        std::fs::write(dir.join(format!("doc{i:03}.pdf")), b).unwrap();
    }
    for i in 0..n_png {
        let mut img = image::RgbImage::from_pixel(64, 48, image::Rgb([255, 255, 255]));
        img.put_pixel((i % 64) as u32, (i / 64) as u32, image::Rgb([0, 0, 0]));
        img.save(dir.join(format!("img{i:03}.png"))).unwrap();
    }
}

/// The rows of an output, keyed so that duplicates are caught and timings
/// and run ids are left out.
#[derive(Debug, PartialEq)]
pub struct Rows {
    /// uri -> (doc_id, sha256, status, error_class, pages, config_hash)
    pub docs: BTreeMap<String, Vec<Option<String>>>,
    /// (doc_id, page_index) -> page columns
    pub pages: BTreeMap<(String, String), Vec<Option<String>>>,
    /// (doc_id, page_index, line_index) -> line columns
    pub lines: BTreeMap<(String, String, String), Vec<Option<String>>>,
}

pub fn columns(out: &Path, table: &str, cols: &[&str]) -> Vec<Vec<Option<String>>> {
    let batches = read_table(out, table);
    let values: Vec<Vec<Option<String>>> = cols.iter().map(|c| strings(&batches, c)).collect();
    let n = values.first().map_or(0, Vec::len);
    (0..n)
        .map(|i| values.iter().map(|v| v[i].clone()).collect())
        .collect()
}

pub fn rows(out: &Path) -> Rows {
    let mut r = Rows {
        docs: BTreeMap::new(),
        pages: BTreeMap::new(),
        lines: BTreeMap::new(),
    };
    for row in columns(
        out,
        "documents",
        &[
            "uri",
            "doc_id",
            "sha256",
            "status",
            "error_class",
            "pages",
            "config_hash",
            "pages_text_layer",
        ],
    ) {
        let uri = row[0].clone().unwrap();
        assert!(
            r.docs.insert(uri.clone(), row[1..].to_vec()).is_none(),
            "two documents rows for {uri}"
        );
    }
    for row in columns(
        out,
        "pages",
        &[
            "doc_id",
            "page_index",
            "width_px",
            "height_px",
            "source",
            "text",
            "line_count",
            "error",
            "width_pt",
        ],
    ) {
        let key = (row[0].clone().unwrap(), row[1].clone().unwrap());
        assert!(
            r.pages.insert(key.clone(), row[2..].to_vec()).is_none(),
            "two pages rows for {key:?}"
        );
    }
    for row in columns(
        out,
        "lines",
        &[
            "doc_id",
            "page_index",
            "line_index",
            "text",
            "x0",
            "y0",
            "x1",
            "y1",
            "x0_pt",
            "y1_pt",
        ],
    ) {
        let key = (
            row[0].clone().unwrap(),
            row[1].clone().unwrap(),
            row[2].clone().unwrap(),
        );
        assert!(
            r.lines.insert(key.clone(), row[3..].to_vec()).is_none(),
            "two lines rows for {key:?}"
        );
    }
    r
}
