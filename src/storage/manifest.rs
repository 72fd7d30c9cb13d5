//! Manifests: an input listing written down, so that shards do not walk a
//! huge archive N times. A text file of paths or URLs, one a line (blank
//! lines and lines starting with `#` skipped), or a Parquet file with a
//! `uri` column (what users export from a catalogue). Both are streamed: a
//! line, or one record batch of a row group, at a time. Relative paths
//! resolve against the manifest's folder. An input path is a manifest when
//! it is a file named `*.txt`, `*.lst`, `*.list`, `*.manifest` or
//! `*.parquet` ([`is_manifest`]); a manifest on object storage is copied
//! to a temporary file in ranges first.

use super::url::{self, Target};
use super::{ListError, Objects, SourceFile};
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

const EXTENSIONS: [&str; 5] = ["txt", "lst", "list", "manifest", "parquet"];
/// Bytes fetched a request when a manifest is copied from object storage.
const COPY_RANGE: u64 = 8 * 1024 * 1024;
/// Rows a record batch of a Parquet manifest.
const BATCH_ROWS: usize = 8192;

/// Whether input path `path` is a manifest rather than a document or a
/// folder of them.
pub fn is_manifest(path: &Path) -> bool {
    let ext_ok = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    ext_ok && (url::is_remote(path) || path.is_file())
}

fn err(path: &Path, message: impl ToString) -> ListError {
    ListError::Manifest {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Streams the inputs a manifest names.
pub fn read(path: &Path) -> Result<Objects, ListError> {
    let file = open(path)?;
    // Relative entries resolve against the manifest's folder (a local one;
    // for a manifest on object storage, its prefix).
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let is_parquet = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let shown = path.to_path_buf();
    if !is_parquet {
        let lines = BufReader::new(file).lines();
        return Ok(Box::new(lines.filter_map(move |l| match l {
            Err(e) => Some(Err(err(&shown, e))),
            Ok(l) => {
                let entry = l.trim();
                (!entry.is_empty() && !entry.starts_with('#'))
                    .then(|| entry_source(&base, entry).map_err(|m| err(&shown, m)))
            }
        })));
    }
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| err(path, e))?;
    let schema = builder.parquet_schema();
    let col = (0..schema.num_columns())
        .find(|&i| schema.column(i).path().string() == "uri")
        .ok_or_else(|| err(path, "no `uri` column"))?;
    let mask = ProjectionMask::leaves(schema, [col]);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| err(path, e))?;
    Ok(Box::new(reader.flat_map(move |batch| {
        let rows: Vec<Result<SourceFile, ListError>> = match batch {
            Err(e) => vec![Err(err(&shown, e))],
            Ok(b) => match uri_strings(b.column(0)) {
                Err(m) => vec![Err(err(&shown, m))],
                Ok(v) => v
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| entry_source(&base, s.trim()).map_err(|m| err(&shown, m)))
                    .collect(),
            },
        };
        rows
    })))
}

/// The strings of a `uri` column (plain, large or dictionary-encoded).
fn uri_strings(col: &dyn Array) -> Result<Vec<Option<String>>, String> {
    let col = match col.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            arrow::compute::cast(col, &DataType::Utf8).map_err(|e| e.to_string())?
        }
        other => return Err(format!("the `uri` column is {other}, not strings")),
    };
    let s = col.as_string::<i32>();
    Ok((0..s.len())
        .map(|i| s.is_valid(i).then(|| s.value(i).to_string()))
        .collect())
}

/// The input a manifest entry names; its stable key is the entry as
/// written.
fn entry_source(base: &Path, entry: &str) -> Result<SourceFile, String> {
    let key = entry.to_string();
    match url::parse(entry)? {
        Target::Object(u) => {
            let path = u.to_path();
            Ok(SourceFile {
                uri: path.display().to_string(),
                path,
                key,
                meta: None,
            })
        }
        Target::Local(p) => {
            let joined = if p.is_absolute() { p } else { base.join(&p) };
            if url::is_remote(&joined) {
                return Ok(SourceFile {
                    uri: joined.display().to_string(),
                    path: joined,
                    key,
                    meta: None,
                });
            }
            Ok(super::source(&joined, key))
        }
    }
}

/// The manifest as a local file: itself, or a copy of the object taken a
/// range at a time and unlinked once open (it goes when the listing does).
fn open(path: &Path) -> Result<File, ListError> {
    if !url::is_remote(path) {
        return File::open(path).map_err(|e| err(path, e));
    }
    let storage = super::for_path(path).map_err(|e| err(path, e))?;
    let size = storage.stat(path).map_err(|e| err(path, e))?.size;
    let tmp: PathBuf = std::env::temp_dir().join(format!(
        "docpipe-manifest-{}-{:016x}",
        std::process::id(),
        crate::shard::bucket(&path.to_string_lossy())
    ));
    let copy = || -> std::io::Result<File> {
        let mut f = File::create(&tmp)?;
        let mut at = 0u64;
        while at < size {
            let chunk = storage.read_range(path, at..(at + COPY_RANGE).min(size))?;
            if chunk.is_empty() {
                break;
            }
            f.write_all(&chunk)?;
            at += chunk.len() as u64;
        }
        f.sync_all()?;
        let opened = File::open(&tmp)?;
        #[cfg(unix)]
        std::fs::remove_file(&tmp)?;
        Ok(opened)
    };
    copy().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(path, e)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    #[test]
    fn text_and_parquet_manifests_stream_their_entries() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let txt = d.join("list.txt");
        std::fs::write(
            &txt,
            "# exported 2026-12-01\nscans/a.pdf\n\n  /abs/b.png \ns3://bucket-x/c.pdf\n",
        )
        .unwrap();
        assert!(is_manifest(&txt));
        assert!(!is_manifest(&d.join("missing.txt")));
        let got: Vec<SourceFile> = read(&txt).unwrap().map(Result::unwrap).collect();
        let keys: Vec<&str> = got.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["scans/a.pdf", "/abs/b.png", "s3://bucket-x/c.pdf"]);
        assert_eq!(got[0].path, d.join("scans/a.pdf"));
        assert_eq!(got[1].uri, "file:///abs/b.png");
        assert_eq!(got[2].uri, "s3://bucket-x/c.pdf");

        // Parquet: the `uri` column only, across several small row groups.
        let pq = d.join("catalogue.parquet");
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("id", DataType::Int32, false),
            arrow::datatypes::Field::new("uri", DataType::Utf8, true),
        ]));
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(
            File::create(&pq).unwrap(),
            schema.clone(),
            Some(props),
        )
        .unwrap();
        let uris: Vec<Option<String>> = (0..5)
            .map(|i| (i != 3).then(|| format!("docs/{i}.pdf")))
            .collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from((0..5).collect::<Vec<i32>>())),
                Arc::new(StringArray::from(uris)),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let got: Vec<String> = read(&pq).unwrap().map(|s| s.unwrap().key).collect();
        assert_eq!(
            got,
            ["docs/0.pdf", "docs/1.pdf", "docs/2.pdf", "docs/4.pdf"]
        );

        // No `uri` column: said at once.
        let bad = d.join("bad.parquet");
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("path", DataType::Utf8, true),
        ]));
        let mut w =
            parquet::arrow::ArrowWriter::try_new(File::create(&bad).unwrap(), schema.clone(), None)
                .unwrap();
        w.write(
            &RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["x"]))]).unwrap(),
        )
        .unwrap();
        w.close().unwrap();
        assert!(matches!(read(&bad), Err(ListError::Manifest { .. })));
    }
}
