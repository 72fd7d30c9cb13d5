//! `docpipe show` over a real run: the PNG has the page's size, the text
//! lines' outlines land on the boxes in the lines table, blank paper stays
//! blank, and fields found by their `__bbox` columns are boxed and labelled.
#![allow(clippy::unwrap_used)]

mod common;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, ListArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type, Int32Type, Schema};
use common::*;
use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

fn tmp(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("show")
        .join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// One OCR run over the wide page and the born-digital PDF, shared.
fn run_dir() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let out = tmp("run").join("out");
        let pipeline = root().join("pipelines/ocr.yaml");
        let wide = fixtures().join("samples/wide-page.png");
        let pdf = fixtures().join("samples/born-digital.pdf");
        let o = run(&[
            "run",
            pipeline.to_str().unwrap(),
            "--input",
            wide.to_str().unwrap(),
            "--input",
            pdf.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0), "the run succeeds");
        out
    })
}

fn show(args: &[&str]) -> std::process::Output {
    let mut all = vec!["show"];
    all.extend_from_slice(args);
    run(&all)
}

/// (doc_id, page size) of the document whose uri contains `part`.
fn page_size(out: &Path, part: &str) -> (String, u32, u32) {
    let docs = read_table(out, "documents");
    let ids = strings(&docs, "doc_id");
    let uris = strings(&docs, "uri");
    let i = uris
        .iter()
        .position(|u| u.as_deref().unwrap().contains(part))
        .unwrap();
    let id = ids[i].clone().unwrap();
    let pages = read_table(out, "pages");
    let pids = strings(&pages, "doc_id");
    let w = strings(&pages, "width_px");
    let h = strings(&pages, "height_px");
    let idx = strings(&pages, "page_index");
    let j = (0..pids.len())
        .find(|&j| pids[j].as_deref() == Some(id.as_str()) && idx[j].as_deref() == Some("0"))
        .unwrap();
    let parse = |v: &Option<String>| v.as_deref().unwrap().parse::<u32>().unwrap();
    (id, parse(&w[j]), parse(&h[j]))
}

/// Line boxes (x0, y0, x1, y1) and polygons of page 0 of `doc_id`.
fn line_boxes(out: &Path, doc_id: &str) -> Vec<([f32; 4], Vec<f32>)> {
    let lines = read_table(out, "lines");
    let mut v = Vec::new();
    for b in &lines {
        let ids = b.column_by_name("doc_id").unwrap().as_string::<i32>();
        let page = b
            .column_by_name("page_index")
            .unwrap()
            .as_primitive::<Int32Type>();
        let cols: Vec<_> = ["x0", "y0", "x1", "y1"]
            .iter()
            .map(|c| {
                b.column_by_name(c)
                    .unwrap()
                    .as_primitive::<Float32Type>()
                    .clone()
            })
            .collect();
        let poly = b.column_by_name("polygon").unwrap().as_list::<i32>();
        for r in 0..b.num_rows() {
            if ids.value(r) != doc_id || page.value(r) != 0 {
                continue;
            }
            let p = poly.value(r);
            let p = p.as_primitive::<Float32Type>();
            v.push((
                [
                    cols[0].value(r),
                    cols[1].value(r),
                    cols[2].value(r),
                    cols[3].value(r),
                ],
                p.values().to_vec(),
            ));
        }
    }
    v
}

fn load(path: &Path) -> RgbImage {
    image::open(path).unwrap().to_rgb8()
}

fn blueish(p: &Rgb<u8>) -> bool {
    p[2] > 180 && p[0] < 120 && p[1] < 160
}

fn orangeish(p: &Rgb<u8>) -> bool {
    p[0] > 200 && p[1] < 130 && p[2] < 80
}

/// Whether any pixel within `r` of (x, y) passes `test`.
fn near(img: &RgbImage, x: f32, y: f32, r: i64, test: fn(&Rgb<u8>) -> bool) -> bool {
    let (cx, cy) = (x.round() as i64, y.round() as i64);
    (-r..=r).any(|dy| {
        (-r..=r).any(|dx| {
            let (px, py) = (cx + dx, cy + dy);
            px >= 0
                && py >= 0
                && (px as u32) < img.width()
                && (py as u32) < img.height()
                && test(img.get_pixel(px as u32, py as u32))
        })
    })
}

#[test]
fn lines_drawn_on_the_wide_page() {
    let out = run_dir();
    let dir = tmp("wide");
    let png = dir.join("x.png");
    let o = show(&[
        out.to_str().unwrap(),
        "--uri",
        "wide-page",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("4400x900 px, 5 lines, 0 fields"),
        "{stdout}"
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let (id, w, h) = page_size(out, "wide-page");
    let img = load(&png);
    assert_eq!(img.dimensions(), (w, h));
    let original = load(&fixtures().join("samples/wide-page.png"));
    assert_eq!(original.dimensions(), (w, h));

    let lines = line_boxes(out, &id);
    assert_eq!(lines.len(), 5);
    for (i, (_, poly)) in lines.iter().enumerate() {
        // Midpoints of the polygon's four edges are on the blue outline.
        for k in 0..4 {
            let (ax, ay) = (poly[2 * k], poly[2 * k + 1]);
            let (bx, by) = (poly[(2 * k + 2) % 8], poly[(2 * k + 3) % 8]);
            let (mx, my) = ((ax + bx) / 2.0, (ay + by) / 2.0);
            assert!(
                near(&img, mx, my, 1, blueish),
                "line {i} edge {k} at ({mx}, {my}) is {:?}",
                img.get_pixel(mx as u32, my as u32)
            );
        }
        // The middle of the line is the page's own text, untouched.
        let (cx, cy) = ((poly[0] + poly[4]) / 2.0, (poly[1] + poly[5]) / 2.0);
        assert!(!near(&img, cx, cy, 2, blueish), "line {i} centre");
    }
    // Blank paper away from every line (and its index label on the left)
    // stays as the page has it.
    let mut checked = 0;
    for y in (0..h).step_by(7) {
        for x in (0..w).step_by(7) {
            let (fx, fy) = (x as f32, y as f32);
            let busy = lines.iter().any(|(b, _)| {
                fx > b[0] - 60.0 && fx < b[2] + 10.0 && fy > b[1] - 10.0 && fy < b[3] + 30.0
            });
            if busy || *original.get_pixel(x, y) != Rgb([255, 255, 255]) {
                continue;
            }
            assert_eq!(*img.get_pixel(x, y), Rgb([255, 255, 255]), "at ({x}, {y})");
            checked += 1;
        }
    }
    assert!(checked > 50_000, "only {checked} blank pixels checked");
    // Line indices are written left of each line, in the line colour.
    for (i, (b, _)) in lines.iter().enumerate() {
        let labelled = (b[1] as u32..b[1] as u32 + 20)
            .any(|y| ((b[0] - 20.0) as u32..b[0] as u32 - 3).any(|x| blueish(img.get_pixel(x, y))));
        assert!(labelled, "no index label left of line {i}");
    }
}

#[test]
fn pdf_page_is_rendered_at_its_dpi() {
    let out = run_dir();
    let dir = tmp("pdf");
    let o = docpipe()
        .current_dir(&dir)
        .args(["show", out.to_str().unwrap(), "--uri", "born-digital.pdf"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (id, w, h) = page_size(out, "born-digital.pdf");
    // No -o: <doc_id>-p0.png in the current folder.
    let img = load(&dir.join(format!("{id}-p0.png")));
    assert_eq!(img.dimensions(), (w, h));
    // The page itself is there: dark text pixels inside the first line's box.
    let (b, _) = &line_boxes(out, &id)[0];
    let dark = (b[1] as u32 + 3..b[3] as u32 - 3)
        .flat_map(|y| (b[0] as u32 + 3..b[2] as u32 - 3).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|c| *c < 100))
        .count();
    assert!(dark > 200, "{dark} dark pixels in the first line");
}

/// A copy of the run whose documents table has a `total` field (value, box,
/// page 0) on the wide page and a `notes` field on page 1.
fn with_fields(out: &Path, dest: &Path, total: [f32; 4]) {
    for t in ["pages", "lines"] {
        std::fs::create_dir_all(dest.join(t)).unwrap();
        for e in std::fs::read_dir(out.join(t)).unwrap().flatten() {
            std::fs::copy(e.path(), dest.join(t).join(e.file_name())).unwrap();
        }
    }
    let docs = read_table(out, "documents");
    std::fs::create_dir_all(dest.join("documents")).unwrap();
    let file = std::fs::File::create(dest.join("documents/part-0.parquet")).unwrap();
    let mut writer: Option<parquet::arrow::ArrowWriter<std::fs::File>> = None;
    let mut file = Some(file);
    for b in docs {
        let uris = b.column_by_name("uri").unwrap().as_string::<i32>();
        let wide: Vec<bool> = (0..b.num_rows())
            .map(|r| uris.value(r).contains("wide-page"))
            .collect();
        let boxes = |v: Option<[f32; 4]>| {
            ListArray::from_iter_primitive::<Float32Type, _, _>(wide.iter().map(|w| match (w, v) {
                (true, Some(v)) => Some(v.map(Some).to_vec()),
                _ => None,
            }))
        };
        let total_bbox = boxes(Some(total));
        let notes_bbox = boxes(Some([100.0, 300.0, 400.0, 400.0]));
        let mut fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut cols: Vec<ArrayRef> = b.columns().to_vec();
        for (name, col) in [
            (
                "total",
                Arc::new(StringArray::from_iter(
                    wide.iter().map(|w| w.then_some("4,980.75 USD")),
                )) as ArrayRef,
            ),
            ("total__bbox", Arc::new(total_bbox) as ArrayRef),
            (
                "total__page",
                Arc::new(Int32Array::from_iter(wide.iter().map(|w| w.then_some(0)))),
            ),
            ("notes__bbox", Arc::new(notes_bbox) as ArrayRef),
            (
                "notes__page",
                Arc::new(Int32Array::from_iter(wide.iter().map(|w| w.then_some(1)))),
            ),
        ] {
            fields.push(Field::new(name, col.data_type().clone(), true));
            cols.push(col);
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        if writer.is_none() {
            writer = Some(
                parquet::arrow::ArrowWriter::try_new(file.take().unwrap(), batch.schema(), None)
                    .unwrap(),
            );
        }
        writer.as_mut().unwrap().write(&batch).unwrap();
    }
    writer.unwrap().close().unwrap();
    // Sanity: the written table has the new columns with their types.
    let back = read_table(dest, "documents");
    let t = back[0].schema();
    assert!(matches!(
        t.field_with_name("total__bbox").unwrap().data_type(),
        DataType::List(_)
    ));
    assert!(!back[0].column_by_name("notes__page").unwrap().is_empty());
}

#[test]
fn fields_boxed_and_labelled_on_their_page() {
    let out = run_dir();
    let dir = tmp("fields");
    let dest = dir.join("out");
    let (id, _, _) = page_size(out, "wide-page");
    // The box of the "Total freight cost" line (the last one).
    let (tb, _) = line_boxes(out, &id).last().cloned().unwrap();
    let total = [tb[0] - 6.0, tb[1] - 6.0, tb[2] + 6.0, tb[3] + 6.0];
    with_fields(out, &dest, total);
    let png = dir.join("fields.png");
    let o = show(&[
        dest.to_str().unwrap(),
        "--doc",
        &id,
        "-o",
        png.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("5 lines, 1 fields"), "{stdout}");
    let img = load(&png);
    let [x0, y0, x1, y1] = total;
    // The box's four edges.
    let (mx, my) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    for (x, y) in [(mx, y0), (mx, y1), (x0, my), (x1, my)] {
        assert!(near(&img, x, y, 1, orangeish), "({x}, {y})");
    }
    // The label "total: 4,980.75 USD" just above the box: many orange pixels
    // in the 30 px above it, none further up.
    let count = |ya: f32, yb: f32| {
        (ya.max(0.0) as u32..yb as u32)
            .flat_map(|y| (x0 as u32..x0 as u32 + 240).map(move |x| (x, y)))
            .filter(|&(x, y)| orangeish(img.get_pixel(x, y)))
            .count()
    };
    assert!(
        count(y0 - 32.0, y0 - 3.0) > 300,
        "{}",
        count(y0 - 32.0, y0 - 3.0)
    );
    assert_eq!(count(y0 - 80.0, y0 - 34.0), 0);
    // The field on page 1 is not drawn on page 0.
    assert!(!near(&img, 250.0, 300.0, 2, orangeish));
    assert!(!near(&img, 100.0, 350.0, 2, orangeish));
}

#[test]
fn bad_targets_exit_2() {
    let out = run_dir();
    let o = out.to_str().unwrap();
    struct Case {
        args: Vec<&'static str>,
        message: &'static str,
    }
    let cases = [
        Case {
            args: vec!["--uri", "no-such-file"],
            message: "no document whose uri contains \"no-such-file\" among the 2 documents",
        },
        Case {
            args: vec!["--uri", "fixtures/samples/"],
            message: "2 documents whose uri contains",
        },
        Case {
            args: vec!["--uri", "wide-page", "--page", "1"],
            message: "has no page 1 (pages in the output: 0)",
        },
        Case {
            args: vec!["--doc", "0000000000000000"],
            message: "no document with doc_id",
        },
    ];
    for c in &cases {
        let mut args = vec![o];
        args.extend(&c.args);
        let r = show(&args);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{:?}: {stderr}", c.args);
        assert!(stderr.contains(c.message), "{:?}: {stderr}", c.args);
    }
    // Not an output folder at all.
    let r = show(&["/nonexistent-docpipe-out", "--uri", "x"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("documents"));
}

#[test]
fn a_page_turned_by_the_run_is_drawn_turned() {
    // A scanned page lying on its side: the run reads it turned upright
    // (`pages.rotation` 270), so its boxes are on the upright page, and
    // `show` draws them on the page turned the same way.
    let dir = tmp("turned");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let page = image::open(fixtures().join("samples/scan-pages.tiff")).unwrap();
    page.rotate90().save(input.join("sideways.png")).unwrap();
    let out = dir.join("out");
    let o = run(&[
        "run",
        root().join("pipelines/ocr.yaml").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let png = dir.join("x.png");
    let o = show(&[
        out.to_str().unwrap(),
        "--uri",
        "sideways",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    // No warning that the image and the recorded size differ.
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (id, w, h) = page_size(&out, "sideways");
    assert_eq!((w, h), (page.width(), page.height()));
    let img = load(&png);
    assert_eq!(img.dimensions(), (w, h));
    // Every line's box holds the page's dark text, and its outline is drawn.
    let lines = line_boxes(&out, &id);
    assert!(lines.len() > 3);
    for (i, (b, poly)) in lines.iter().enumerate() {
        let dark = (b[1] as u32 + 2..b[3] as u32 - 2)
            .flat_map(|y| (b[0] as u32 + 2..b[2] as u32 - 2).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|c| *c < 100))
            .count();
        assert!(dark > 50, "line {i}: {dark} dark pixels in {b:?}");
        let (mx, my) = ((poly[0] + poly[2]) / 2.0, (poly[1] + poly[3]) / 2.0);
        assert!(near(&img, mx, my, 1, blueish), "line {i} top edge");
    }
}
