//! Reading one document's rows back from a run's Parquet tables
//! (`documents/`, `pages/`, `lines/`, `regions/`, each a folder of part
//! files).

use super::{ShowError, Target};
use crate::types::{BBox, Point};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Int32Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use std::path::{Path, PathBuf};

/// Suffix of the documents columns holding a field's box (`list<float32>`
/// x0, y0, x1, y1 in page pixels); `<field>__page` holds its page index and
/// `<field>` its value.
pub const BBOX_SUFFIX: &str = "__bbox";
/// Suffix of the documents columns holding a field's 0-based page index.
pub const PAGE_SUFFIX: &str = "__page";

/// The documents row of the document shown.
#[derive(Clone, Debug, PartialEq)]
pub struct DocRow {
    pub doc_id: String,
    pub uri: String,
    /// Lower-case hex SHA-256 of the input when it was run.
    pub sha256: Option<String>,
    /// Page count; `None` when the file could not be opened.
    pub pages: Option<i32>,
    pub status: Option<String>,
    /// Every field with a non-null, finite box, in column order.
    pub fields: Vec<FieldBox>,
}

/// An extracted field's box, from the `<field>__bbox` column.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldBox {
    pub name: String,
    /// The `<field>` column's value as text; `None` when null or absent.
    pub value: Option<String>,
    /// Page pixels.
    pub bbox: BBox,
    /// 0-based page index from `<field>__page`; `None` when null or absent.
    pub page: Option<i32>,
}

/// The pages row of the page shown.
#[derive(Clone, Debug, PartialEq)]
pub struct PageRow {
    pub width_px: i32,
    pub height_px: i32,
    /// Clockwise degrees the page was turned by (`/Rotate` or EXIF, and the
    /// run's own turns: orientation classifier, direction vote).
    pub rotation: i32,
    /// Render or scan resolution, dots per inch.
    pub dpi: Option<f32>,
    /// `text_layer`, `ocr` or `empty`.
    pub source: Option<String>,
    /// Why the page failed; `None` when it did not.
    pub error: Option<String>,
}

/// One lines row of the page shown.
#[derive(Clone, Debug, PartialEq)]
pub struct LineRow {
    pub line_index: i32,
    pub text: String,
    /// Page pixels.
    pub bbox: BBox,
    /// Corners clockwise from the top-left, page pixels; empty when the
    /// polygon column is null or does not hold 8 finite values.
    pub polygon: Vec<Point>,
    /// `lines.source`; empty in outputs written before the column existed.
    pub source: String,
}

/// Whether a `source` value names a VLM rather than the text layer, an
/// OCR engine or the layout model (whose names docpipe knows).
pub fn is_vlm_source(source: &str) -> bool {
    !source.is_empty()
        && !matches!(
            source,
            "text_layer" | "ppocr-v6" | "ppocr-v4" | "rapid-layout"
        )
}

/// A string column that older outputs may lack: `None` then.
fn strings_opt(
    batch: &RecordBatch,
    name: &str,
    path: &Path,
) -> Result<Option<Vec<Option<String>>>, ShowError> {
    if batch.column_by_name(name).is_none() {
        return Ok(None);
    }
    strings(batch, name, path).map(Some)
}

/// The committed part files of `table` in `dir` (`*.parquet`; part files
/// still being written end in `.tmp` and are skipped), sorted.
pub fn part_files(dir: &Path, table: &str) -> Result<Vec<PathBuf>, ShowError> {
    let folder = dir.join(table);
    let rd = std::fs::read_dir(&folder).map_err(|e| ShowError::Read {
        path: folder.clone(),
        message: format!("{e} (is this a docpipe output folder?)"),
    })?;
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    Ok(files)
}

/// Every batch of one part file, with only `columns` read when given
/// (columns the file lacks are left out, not an error here).
fn read_file(path: &Path, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>, ShowError> {
    let err = |message: String| ShowError::Read {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| err(e.to_string()))?;
    if let Some(cols) = columns {
        let indices: Vec<usize> = builder
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| cols.contains(&f.name().as_str()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        builder = builder.with_projection(mask);
    }
    let reader = builder.build().map_err(|e| err(e.to_string()))?;
    reader.map(|b| b.map_err(|e| err(e.to_string()))).collect()
}

fn column<'a>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a ArrayRef, ShowError> {
    batch.column_by_name(name).ok_or_else(|| ShowError::Read {
        path: path.to_path_buf(),
        message: format!("no column `{name}`"),
    })
}

fn cast(col: &ArrayRef, to: &DataType, path: &Path) -> Result<ArrayRef, ShowError> {
    arrow::compute::cast(col, to).map_err(|e| ShowError::Read {
        path: path.to_path_buf(),
        message: format!("cannot read a column as {to}: {e}"),
    })
}

/// A string column (plain or dictionary-encoded) as owned values.
fn strings(batch: &RecordBatch, name: &str, path: &Path) -> Result<Vec<Option<String>>, ShowError> {
    let col = cast(column(batch, name, path)?, &DataType::Utf8, path)?;
    let s = col.as_string::<i32>();
    Ok((0..s.len())
        .map(|i| s.is_valid(i).then(|| s.value(i).to_string()))
        .collect())
}

fn i32s(batch: &RecordBatch, name: &str, path: &Path) -> Result<Vec<Option<i32>>, ShowError> {
    let col = cast(column(batch, name, path)?, &DataType::Int32, path)?;
    let a = col.as_primitive::<Int32Type>();
    Ok((0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect())
}

fn f32s(batch: &RecordBatch, name: &str, path: &Path) -> Result<Vec<Option<f32>>, ShowError> {
    let col = cast(column(batch, name, path)?, &DataType::Float32, path)?;
    let a = col.as_primitive::<Float32Type>();
    Ok((0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect())
}

/// The numbers of row `row` of a list column (`list`, `large_list` or
/// `fixed_size_list` of any numeric type); `None` when null or not a list.
fn list_f32(col: &ArrayRef, row: usize) -> Option<Vec<f32>> {
    if row >= col.len() || col.is_null(row) {
        return None;
    }
    let values = if let Some(l) = col.as_list_opt::<i32>() {
        l.value(row)
    } else if let Some(l) = col.as_list_opt::<i64>() {
        l.value(row)
    } else if let Some(l) = col.as_fixed_size_list_opt() {
        l.value(row)
    } else {
        return None;
    };
    let values = arrow::compute::cast(&values, &DataType::Float32).ok()?;
    let a = values.as_primitive::<Float32Type>();
    Some(
        (0..a.len())
            .map(|i| if a.is_valid(i) { a.value(i) } else { f32::NAN })
            .collect(),
    )
}

/// A box from `[x0, y0, x1, y1]`, corners put in order; `None` unless there
/// are exactly four finite numbers.
pub fn bbox_from(values: &[f32]) -> Option<BBox> {
    let [x0, y0, x1, y1] = <[f32; 4]>::try_from(values).ok()?;
    if ![x0, y0, x1, y1].iter().all(|v| v.is_finite()) {
        return None;
    }
    Some(BBox {
        x0: x0.min(x1),
        y0: y0.min(y1),
        x1: x0.max(x1),
        y1: y0.max(y1),
    })
}

/// Corners from `[x0, y0, x1, y1, ...]`: empty unless 8 finite numbers.
pub fn polygon_from(values: &[f32]) -> Vec<Point> {
    if values.len() != 8 || !values.iter().all(|v| v.is_finite()) {
        return Vec::new();
    }
    values
        .chunks_exact(2)
        .map(|c| Point::new(c[0], c[1]))
        .collect()
}

/// The fields of row `row`: every `<name>__bbox` column with a box.
pub fn fields_of(batch: &RecordBatch, row: usize) -> Vec<FieldBox> {
    let schema = batch.schema();
    let mut out = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        let Some(name) = f.name().strip_suffix(BBOX_SUFFIX) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let Some(bbox) = list_f32(batch.column(i), row).and_then(|v| bbox_from(&v)) else {
            continue;
        };
        let page = batch
            .column_by_name(&format!("{name}{PAGE_SUFFIX}"))
            .and_then(|c| arrow::compute::cast(c, &DataType::Int32).ok())
            .and_then(|c| {
                let a = c.as_primitive::<Int32Type>();
                (row < a.len() && a.is_valid(row)).then(|| a.value(row))
            });
        let value = batch.column_by_name(name).and_then(|c| {
            if row >= c.len() || c.is_null(row) {
                return None;
            }
            let fmt = ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).ok()?;
            Some(fmt.value(row).to_string())
        });
        out.push(FieldBox {
            name: name.to_string(),
            value,
            bbox,
            page,
        });
    }
    out
}

/// Finds the one document `target` names.
pub fn find_document(dir: &Path, target: &Target) -> Result<DocRow, ShowError> {
    let mut found: Vec<DocRow> = Vec::new();
    let mut seen = 0usize;
    for path in part_files(dir, "documents")? {
        for batch in read_file(&path, None)? {
            let ids = strings(&batch, "doc_id", &path)?;
            let uris = strings(&batch, "uri", &path)?;
            seen += ids.len();
            for (row, (id, uri)) in ids.iter().zip(&uris).enumerate() {
                let (Some(id), Some(uri)) = (id, uri) else {
                    continue;
                };
                let hit = match target {
                    Target::DocId(want) => id == want,
                    Target::UriContains(part) => uri.contains(part.as_str()),
                };
                if !hit || found.iter().any(|d| &d.doc_id == id) {
                    continue;
                }
                let sha256 = strings(&batch, "sha256", &path)
                    .ok()
                    .and_then(|v| v[row].clone());
                let pages = i32s(&batch, "pages", &path).ok().and_then(|v| v[row]);
                let status = strings(&batch, "status", &path)
                    .ok()
                    .and_then(|v| v[row].clone());
                found.push(DocRow {
                    doc_id: id.clone(),
                    uri: uri.clone(),
                    sha256,
                    pages,
                    status,
                    fields: fields_of(&batch, row),
                });
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(ShowError::NotFound {
            dir: dir.to_path_buf(),
            target: target.to_string(),
            documents: seen,
        }),
        n => {
            let mut uris: Vec<String> = found.into_iter().map(|d| d.uri).collect();
            uris.sort();
            uris.truncate(5);
            Err(ShowError::Ambiguous {
                target: target.to_string(),
                count: n,
                examples: uris,
            })
        }
    }
}

/// The pages row of (`doc_id`, `page`), or the indices of the pages the
/// document has when it has no such page.
pub fn find_page(
    dir: &Path,
    doc_id: &str,
    page: u32,
) -> Result<Result<PageRow, Vec<i32>>, ShowError> {
    let cols = [
        "doc_id",
        "page_index",
        "width_px",
        "height_px",
        "rotation",
        "dpi",
        "source",
        "error",
    ];
    let mut indices = Vec::new();
    for path in part_files(dir, "pages")? {
        for batch in read_file(&path, Some(&cols))? {
            let ids = strings(&batch, "doc_id", &path)?;
            let index = i32s(&batch, "page_index", &path)?;
            for (row, (id, ix)) in ids.iter().zip(&index).enumerate() {
                if id.as_deref() != Some(doc_id) {
                    continue;
                }
                let Some(ix) = *ix else { continue };
                if i64::from(ix) != i64::from(page) {
                    indices.push(ix);
                    continue;
                }
                let width_px = i32s(&batch, "width_px", &path)?[row].unwrap_or(0);
                let height_px = i32s(&batch, "height_px", &path)?[row].unwrap_or(0);
                let rotation = i32s(&batch, "rotation", &path)?[row].unwrap_or(0);
                let dpi = f32s(&batch, "dpi", &path)?[row];
                let source = strings(&batch, "source", &path)?[row].clone();
                let error = strings(&batch, "error", &path)?[row].clone();
                return Ok(Ok(PageRow {
                    width_px,
                    height_px,
                    rotation,
                    dpi,
                    source,
                    error,
                }));
            }
        }
    }
    indices.sort_unstable();
    indices.dedup();
    Ok(Err(indices))
}

/// The lines rows of (`doc_id`, `page`), by line index.
pub fn find_lines(dir: &Path, doc_id: &str, page: u32) -> Result<Vec<LineRow>, ShowError> {
    let cols = [
        "doc_id",
        "page_index",
        "line_index",
        "text",
        "x0",
        "y0",
        "x1",
        "y1",
        "polygon",
        "source",
    ];
    let mut out = Vec::new();
    for path in part_files(dir, "lines")? {
        for batch in read_file(&path, Some(&cols))? {
            let ids = strings(&batch, "doc_id", &path)?;
            let pages = i32s(&batch, "page_index", &path)?;
            let rows: Vec<usize> = (0..batch.num_rows())
                .filter(|&r| {
                    ids[r].as_deref() == Some(doc_id)
                        && pages[r].is_some_and(|p| i64::from(p) == i64::from(page))
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            let line_index = i32s(&batch, "line_index", &path)?;
            let text = strings(&batch, "text", &path)?;
            let [x0, y0, x1, y1] = ["x0", "y0", "x1", "y1"].map(|c| f32s(&batch, c, &path));
            let (x0, y0, x1, y1) = (x0?, y0?, x1?, y1?);
            let polygon = column(&batch, "polygon", &path)?.clone();
            let source = strings_opt(&batch, "source", &path)?;
            for r in rows {
                let nan = f32::NAN;
                let bbox = bbox_from(&[
                    x0[r].unwrap_or(nan),
                    y0[r].unwrap_or(nan),
                    x1[r].unwrap_or(nan),
                    y1[r].unwrap_or(nan),
                ]);
                let polygon = list_f32(&polygon, r)
                    .map(|v| polygon_from(&v))
                    .unwrap_or_default();
                out.push(LineRow {
                    line_index: line_index[r].unwrap_or(-1),
                    text: text[r].clone().unwrap_or_default(),
                    bbox: bbox.unwrap_or(BBox {
                        x0: nan,
                        y0: nan,
                        x1: nan,
                        y1: nan,
                    }),
                    polygon,
                    source: source
                        .as_ref()
                        .and_then(|s| s[r].clone())
                        .unwrap_or_default(),
                });
            }
        }
    }
    out.sort_by_key(|l| l.line_index);
    Ok(out)
}

/// One regions row of the page shown.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionRow {
    pub region_index: i32,
    pub class: String,
    pub score: f32,
    /// Page pixels.
    pub bbox: BBox,
    /// `regions.source`: `rapid-layout`, or a VLM's name.
    pub source: String,
}

/// The regions rows of (`doc_id`, `page`), by region index; none when the
/// output has no `regions/` folder (a run without `layout`, or before it
/// existed).
pub fn find_regions(dir: &Path, doc_id: &str, page: u32) -> Result<Vec<RegionRow>, ShowError> {
    if !dir.join("regions").is_dir() {
        return Ok(Vec::new());
    }
    let cols = [
        "doc_id",
        "page_index",
        "region_index",
        "class",
        "score",
        "x0",
        "y0",
        "x1",
        "y1",
        "source",
    ];
    let mut out = Vec::new();
    for path in part_files(dir, "regions")? {
        for batch in read_file(&path, Some(&cols))? {
            let ids = strings(&batch, "doc_id", &path)?;
            let pages = i32s(&batch, "page_index", &path)?;
            let index = i32s(&batch, "region_index", &path)?;
            let class = strings(&batch, "class", &path)?;
            let score = f32s(&batch, "score", &path)?;
            let [x0, y0, x1, y1] = ["x0", "y0", "x1", "y1"].map(|c| f32s(&batch, c, &path));
            let (x0, y0, x1, y1) = (x0?, y0?, x1?, y1?);
            let source = strings_opt(&batch, "source", &path)?;
            for r in 0..batch.num_rows() {
                if ids[r].as_deref() != Some(doc_id)
                    || pages[r].is_none_or(|p| i64::from(p) != i64::from(page))
                {
                    continue;
                }
                let nan = f32::NAN;
                let Some(bbox) = bbox_from(&[
                    x0[r].unwrap_or(nan),
                    y0[r].unwrap_or(nan),
                    x1[r].unwrap_or(nan),
                    y1[r].unwrap_or(nan),
                ]) else {
                    continue;
                };
                out.push(RegionRow {
                    region_index: index[r].unwrap_or(-1),
                    class: class[r].clone().unwrap_or_default(),
                    score: score[r].unwrap_or(0.0),
                    bbox,
                    source: source
                        .as_ref()
                        .and_then(|s| s[r].clone())
                        .unwrap_or_default(),
                });
            }
        }
    }
    out.sort_by_key(|r| r.region_index);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float32Array, Int32Array, ListArray, StringArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn boxes_and_polygons_need_finite_numbers() {
        struct Case {
            values: Vec<f32>,
            want: Option<(f32, f32, f32, f32)>,
        }
        let cases = [
            Case {
                values: vec![1.0, 2.0, 3.0, 4.0],
                want: Some((1.0, 2.0, 3.0, 4.0)),
            },
            // Swapped corners are put in order.
            Case {
                values: vec![3.0, 4.0, 1.0, 2.0],
                want: Some((1.0, 2.0, 3.0, 4.0)),
            },
            Case {
                values: vec![1.0, f32::NAN, 3.0, 4.0],
                want: None,
            },
            Case {
                values: vec![1.0, 2.0, 3.0],
                want: None,
            },
            Case {
                values: vec![],
                want: None,
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let got = bbox_from(&c.values).map(|b| (b.x0, b.y0, b.x1, b.y1));
            assert_eq!(got, c.want, "case {i}");
        }
        assert_eq!(
            polygon_from(&[0.0, 1.0, 2.0, 1.0, 2.0, 3.0, 0.0, 3.0]).len(),
            4
        );
        assert!(polygon_from(&[0.0; 6]).is_empty());
        assert!(polygon_from(&[0.0, 1.0, 2.0, 1.0, 2.0, 3.0, 0.0, f32::INFINITY]).is_empty());
    }

    fn bbox_list(rows: Vec<Option<Vec<f32>>>) -> ListArray {
        ListArray::from_iter_primitive::<Float32Type, _, _>(
            rows.into_iter()
                .map(|r| r.map(|v| v.into_iter().map(Some).collect::<Vec<_>>())),
        )
    }

    #[test]
    fn fields_are_found_by_their_bbox_suffix() {
        let total_bbox = bbox_list(vec![Some(vec![10.0, 20.0, 110.0, 40.0]), None]);
        let date_bbox = bbox_list(vec![
            Some(vec![1.0, 2.0, 3.0]),
            Some(vec![5.0, 6.0, 7.0, 8.0]),
        ]);
        let schema = Schema::new(vec![
            Field::new("doc_id", DataType::Utf8, false),
            Field::new("total", DataType::Float32, true),
            Field::new("total__bbox", total_bbox.data_type().clone(), true),
            Field::new("total__page", DataType::Int32, true),
            // No value or page column: the box alone is enough.
            Field::new("date__bbox", date_bbox.data_type().clone(), true),
            // A bare suffix is no field.
            Field::new("__bbox", date_bbox.data_type().clone(), true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Float32Array::from(vec![Some(12.5), None])),
                Arc::new(total_bbox),
                Arc::new(Int32Array::from(vec![Some(0), Some(1)])),
                Arc::new(date_bbox.clone()),
                Arc::new(date_bbox),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let row0 = fields_of(&batch, 0);
        assert_eq!(
            row0,
            vec![FieldBox {
                name: "total".into(),
                value: Some("12.5".into()),
                bbox: BBox {
                    x0: 10.0,
                    y0: 20.0,
                    x1: 110.0,
                    y1: 40.0
                },
                page: Some(0),
            }],
            "date's box has 3 numbers and is skipped"
        );
        let row1 = fields_of(&batch, 1);
        assert_eq!(row1.len(), 1);
        assert_eq!(row1[0].name, "date");
        assert_eq!(row1[0].page, None);
        assert_eq!(row1[0].value, None);
        assert!(fields_of(&batch, 2).is_empty(), "past the last row");
    }
}
