//! The assembler: collects pages into documents, decides each document's
//! status from its pages, and hands each finished one on. With a VLM, a
//! document is finished once every page has both its text and its VLM
//! outcome; its pages' records are merged into its record here. With a
//! layout model, likewise every page's regions: its lines are given their
//! regions and put in region reading order here.

use super::items::{now_us, page_lines, FinishedDoc, Msg, PageDone, RegionsDone, VlmDone};
use super::write::attach;
use crate::config::RecordPolicy;
use crate::extract::adapters;
use crate::extract::vlm::tasks::Task;
use crate::extract::vlm::TaskOutput;
use crate::extract::FieldSchema;
use crate::ingest::DocRef;
use crate::normalise::QuarterTurn;
use crate::output::{
    CaptionRow, DocStatus, DocumentRow, LineRow, PageRow, PageSource, RegionRow, StageFailure,
};
use crate::regions::page::ImageToPage;
use crate::types::BBox;
use async_channel::{Receiver, Sender};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// What every document row of a run carries.
#[derive(Clone, Debug)]
pub struct RowStamp {
    /// Pipeline name.
    pub pipeline: String,
    pub config_hash: String,
    pub model_ids: Vec<String>,
}

/// What the assembler needs to give pages their regions (`layout:`).
#[derive(Clone, Debug)]
pub struct LayoutRows {
    /// `regions.source`: the layout engine's name.
    pub source: &'static str,
    /// `layout.reading_order`.
    pub reading_order: bool,
}

/// What the assembler needs to give documents their VLM record.
#[derive(Clone)]
pub struct VlmFields {
    pub schema: Arc<FieldSchema>,
    /// `extract.on_invalid` and `extract.review_below`.
    pub policy: RecordPolicy,
    /// `source` of the rows the VLM's other tasks make: the model folder's
    /// name.
    pub source: String,
}

struct DocState {
    doc: DocRef,
    mime: &'static str,
    expected: u32,
    started_at_us: i64,
    ingest_ms: f64,
    pages: BTreeMap<u32, PageDone>,
    /// The pages' VLM outcomes; `None` without a VLM.
    vlm: Option<BTreeMap<u32, VlmDone>>,
    /// The pages' regions; `None` without a layout model.
    regions: Option<BTreeMap<u32, RegionsDone>>,
}

impl DocState {
    fn complete(&self) -> bool {
        let n = self.expected as usize;
        self.pages.len() >= n
            && self.vlm.as_ref().is_none_or(|v| v.len() >= n)
            && self.regions.as_ref().is_none_or(|r| r.len() >= n)
    }
}

/// How the assembler finishes documents.
#[derive(Clone, Copy)]
pub struct Finish<'a> {
    pub stamp: &'a RowStamp,
    /// `Some` when a VLM stage sends every page's outcome.
    pub vlm: Option<&'a VlmFields>,
    /// `Some` when a layout stage sends every page's regions.
    pub layout: Option<&'a LayoutRows>,
}

/// Collects pages into documents and hands each finished one on.
pub fn assemble(
    how: Finish<'_>,
    results: Receiver<Msg>,
    out: Sender<FinishedDoc>,
) -> anyhow::Result<()> {
    let stamp = how.stamp;
    let mut open: HashMap<String, DocState> = HashMap::new();
    // Documents given their failed row: pages of theirs still on the way
    // (other parts of a shared PDF) are dropped.
    let mut failed: HashSet<String> = HashSet::new();
    while let Ok(msg) = results.recv_blocking() {
        let finished = match msg {
            Msg::Start {
                doc,
                pages,
                started_at_us,
                ingest_ms,
                mime,
            } => {
                open.insert(
                    doc.id.clone(),
                    DocState {
                        doc,
                        mime,
                        expected: pages,
                        started_at_us,
                        ingest_ms,
                        pages: BTreeMap::new(),
                        vlm: how.vlm.map(|_| BTreeMap::new()),
                        regions: how.layout.map(|_| BTreeMap::new()),
                    },
                );
                None
            }
            Msg::Failed {
                doc,
                class,
                message,
                started_at_us,
                ingest_ms,
            } => {
                // A document that failed after it was announced (e.g. a panic
                // mid-way) gives this one row, not a second partial one.
                open.remove(&doc.id);
                failed.insert(doc.id.clone());
                let row = document_row(stamp, &doc, doc.kind.mime(), started_at_us, ingest_ms);
                Some(FinishedDoc {
                    doc: DocumentRow {
                        status: DocStatus::Failed,
                        error_class: Some(class.to_string()),
                        error_message: Some(message),
                        pages: None,
                        ..row
                    },
                    pages: Vec::new(),
                    lines: Vec::new(),
                    regions: Vec::new(),
                    captions: Vec::new(),
                    stage_failures: Vec::new(),
                })
            }
            Msg::Page(done) => {
                let id = done.page.doc_id.clone();
                let complete = open_doc(&mut open, &failed, &id).is_some_and(|state| {
                    state.pages.insert(done.page.page_index as u32, *done);
                    state.complete()
                });
                complete
                    .then(|| open.remove(&id).map(|s| finish_doc(how, s)))
                    .flatten()
            }
            Msg::Vlm(done) => {
                let id = done.doc_id.clone();
                let complete = open_doc(&mut open, &failed, &id).is_some_and(|state| {
                    match state.vlm.as_mut() {
                        Some(v) => {
                            v.insert(done.page, *done);
                            state.complete()
                        }
                        None => {
                            tracing::error!(doc = %id, "a VLM outcome in a run without a VLM");
                            false
                        }
                    }
                });
                complete
                    .then(|| open.remove(&id).map(|s| finish_doc(how, s)))
                    .flatten()
            }
            Msg::Regions(done) => {
                let id = done.doc_id.clone();
                let complete = open_doc(&mut open, &failed, &id).is_some_and(|state| {
                    match state.regions.as_mut() {
                        Some(r) => {
                            r.insert(done.page, *done);
                            state.complete()
                        }
                        None => {
                            tracing::error!(doc = %id, "regions in a run without a layout model");
                            false
                        }
                    }
                });
                complete
                    .then(|| open.remove(&id).map(|s| finish_doc(how, s)))
                    .flatten()
            }
        };
        if let Some(doc) = finished {
            if out.send_blocking(doc).is_err() {
                return Ok(());
            }
        }
    }
    // Documents still open here lost pages to a stage that stopped early.
    for (_, state) in open.drain() {
        if out.send_blocking(finish_doc(how, state)).is_err() {
            break;
        }
    }
    Ok(())
}

/// The open document a message is about. `None` when there is none: it
/// failed already (pages of other parts of a shared PDF still on the way
/// are dropped quietly) or, a bug, it was never started.
fn open_doc<'a>(
    open: &'a mut HashMap<String, DocState>,
    failed: &HashSet<String>,
    id: &str,
) -> Option<&'a mut DocState> {
    let state = open.get_mut(id);
    if state.is_none() && !failed.contains(id) {
        tracing::error!(doc = %id, "a page for a document that was not started");
    }
    state
}

fn document_row(
    stamp: &RowStamp,
    doc: &DocRef,
    mime: &str,
    started_at_us: i64,
    ingest_ms: f64,
) -> DocumentRow {
    DocumentRow {
        doc_id: doc.id.clone(),
        uri: doc.uri.clone(),
        sha256: doc.sha256.clone(),
        bytes: doc.bytes as i64,
        mime: mime.to_string(),
        pages: None,
        status: DocStatus::Ok,
        error_class: None,
        error_message: None,
        pipeline: stamp.pipeline.clone(),
        config_hash: stamp.config_hash.clone(),
        model_ids: stamp.model_ids.clone(),
        started_at: started_at_us,
        pages_text_layer: 0,
        pages_ocr: 0,
        time_ingest_ms: ingest_ms,
        time_render_ms: 0.0,
        time_normalise_ms: 0.0,
        time_ocr_ms: 0.0,
        time_total_ms: (now_us() - started_at_us).max(0) as f64 / 1000.0,
        extracted: None,
    }
}

fn finish_doc(how: Finish<'_>, mut state: DocState) -> FinishedDoc {
    let (stamp, fields) = (how.stamp, how.vlm);
    let vlm = state.vlm.take();
    let mut regions = state.regions.take();
    let mut region_rows = Vec::new();
    let mut layout_errors = Vec::new();
    // The turns OCR gave pages after the layout and VLM stages saw them.
    let mut turns = BTreeMap::new();
    let mut row = document_row(
        stamp,
        &state.doc,
        state.mime,
        state.started_at_us,
        state.ingest_ms,
    );
    row.pages = Some(state.expected as i32);
    let mut pages = Vec::with_capacity(state.pages.len());
    let mut lines = Vec::new();
    let mut page_errors = Vec::new();
    // The first class a failed page names (`timeout`, `internal`) is the
    // document's; plain page errors leave it to the counts below.
    let mut class: Option<&'static str> = None;
    for (_, mut done) in state.pages {
        if let (Some(how), Some(found)) = (how.layout, regions.as_mut()) {
            let index = done.page.page_index.max(0) as u32;
            let outcome = found.remove(&index);
            row.time_render_ms += outcome.as_ref().map_or(0.0, |o| o.render_ms);
            // A page whose text failed is already its document's error.
            if done.page.error.is_none() {
                match outcome.map(|o| o.result) {
                    Some(Ok(f)) => region_rows.extend(crate::regions::page::apply(
                        &mut done.page,
                        &mut done.lines,
                        &f,
                        done.turned,
                        how.source,
                        how.reading_order,
                    )),
                    Some(Err(f)) => layout_errors.push((index, f.class, f.message)),
                    None => layout_errors.push((index, None, "no layout outcome came back".into())),
                }
            }
        }
        if let Some(t) = done.turned {
            turns.insert(done.page.page_index, t);
        }
        row.time_render_ms += done.render_ms;
        row.time_normalise_ms += done.normalise_ms;
        row.time_ocr_ms += done.ocr_ms;
        match done.page.source {
            PageSource::TextLayer => row.pages_text_layer += 1,
            PageSource::Ocr => row.pages_ocr += 1,
            PageSource::Empty => {}
        }
        if let Some(e) = &done.page.error {
            page_errors.push(format!("page {}: {e}", done.page.page_index + 1));
            class = class.or(done.error_class);
        }
        pages.push(done.page);
        lines.extend(done.lines);
    }
    let missing = state.expected as usize - pages.len().min(state.expected as usize);
    if missing > 0 {
        page_errors.push(format!("{missing} page(s) never came back from OCR"));
    }
    if !page_errors.is_empty() {
        let all_failed = page_errors.len() >= state.expected as usize;
        row.status = if all_failed {
            DocStatus::Failed
        } else {
            DocStatus::Partial
        };
        row.error_class = Some(
            match class {
                Some(c) => c,
                None if all_failed => "page_errors",
                None => "some_pages_failed",
            }
            .to_string(),
        );
        row.error_message = Some(page_errors.join("; "));
    }
    let mut doc = FinishedDoc {
        doc: row,
        pages,
        lines,
        regions: region_rows,
        captions: Vec::new(),
        stage_failures: Vec::new(),
    };
    let layout = StageFailed {
        stage: "layout",
        what: "layout failed",
        class: "layout_failed",
    };
    layout.record(&mut doc, layout_errors);
    if let (Some(fields), Some(mut vlm)) = (fields, vlm) {
        let tasks: BTreeMap<u32, PageTasks> = vlm
            .iter_mut()
            .map(|(&i, v)| {
                let page = PageTasks {
                    outcomes: std::mem::take(&mut v.tasks),
                    image_size: v.image_size,
                    to_points: v.to_points,
                };
                (i, page)
            })
            .collect();
        vlm_record(&mut doc, vlm, fields);
        vlm_task_rows(&mut doc, tasks, &turns, &fields.source);
    }
    doc
}

/// A page's outcomes of the VLM's tasks besides `fields`.
struct PageTasks {
    outcomes: Vec<(
        Task,
        Result<crate::extract::vlm::TaskResult, super::items::PageFailure>,
    )>,
    image_size: (u32, u32),
    to_points: Option<crate::pdf::Affine>,
}

/// Gives a document the rows of its pages' VLM task outputs: captions to
/// `captions`, `od` boxes to `regions` and `ocr_with_region` lines to
/// `lines` (numbered after the page's own), scaled from the model's image
/// to page pixels (and PDF points), `source` = the model. A page whose text
/// failed is already the document's error and is left out; a task that
/// failed on a page makes an `ok` document `partial` (class
/// `extract_failed`, or the page's own) with the task and page named.
fn vlm_task_rows(
    d: &mut FinishedDoc,
    mut tasks: BTreeMap<u32, PageTasks>,
    turns: &BTreeMap<i32, QuarterTurn>,
    source: &str,
) {
    if d.doc.status == DocStatus::Failed {
        return;
    }
    let mut errors = Vec::new();
    for p in d.pages.iter().filter(|p| p.error.is_none()) {
        let index = p.page_index.max(0) as u32;
        let Some(page) = tasks.remove(&index) else {
            continue;
        };
        let turned = turns.get(&p.page_index).copied();
        let Some(to_page) = ImageToPage::new(page.image_size, p, turned) else {
            continue;
        };
        let scale = Scale {
            to_page,
            to_points: page.to_points,
        };
        for (task, outcome) in page.outcomes {
            let r = match outcome {
                Ok(r) => r,
                Err(f) => {
                    errors.push((index, f.class, format!("{task}: {}", f.message)));
                    continue;
                }
            };
            match r.output {
                TaskOutput::Caption(text) => d.captions.push(CaptionRow {
                    doc_id: p.doc_id.clone(),
                    page_index: p.page_index,
                    region_index: None,
                    source: source.to_string(),
                    task: task.name().to_string(),
                    text,
                    confidence: r.mean_prob,
                }),
                TaskOutput::Detections(found) => {
                    let first = d
                        .regions
                        .iter()
                        .filter(|g| g.page_index == p.page_index)
                        .map(|g| g.region_index + 1)
                        .max()
                        .unwrap_or(0);
                    for (k, det) in found.into_iter().enumerate() {
                        d.regions
                            .push(scale.region(p, first + k as i32, det, r.mean_prob, source));
                    }
                }
                TaskOutput::Lines(found) => {
                    let first = d
                        .lines
                        .iter()
                        .filter(|l| l.page_index == p.page_index)
                        .map(|l| l.line_index + 1)
                        .max()
                        .unwrap_or(0);
                    for (k, line) in found.into_iter().enumerate() {
                        d.lines
                            .push(scale.line(p, first + k as i32, line, r.mean_prob, source));
                    }
                }
            }
        }
    }
    let tasks = StageFailed {
        stage: "extract",
        what: "VLM task failed",
        class: "extract_failed",
    };
    tasks.record(d, errors);
}

/// What a stage after the text (layout, the VLM) failing on some of a
/// document's pages does to it: each page a `failures` row (`stage`, the
/// page's own class or `class`), and an `ok` document `partial` with the
/// first class a page names (else `class`), its message naming `what` failed on which pages.
struct StageFailed {
    stage: &'static str,
    what: &'static str,
    class: &'static str,
}

impl StageFailed {
    /// Records `failed` (page index, the page's class, why); whether
    /// anything failed.
    fn record(
        &self,
        d: &mut FinishedDoc,
        failed: Vec<(u32, Option<&'static str>, String)>,
    ) -> bool {
        if failed.is_empty() {
            return false;
        }
        let row = &mut d.doc;
        if row.status == DocStatus::Ok {
            row.status = DocStatus::Partial;
            let class = failed.iter().find_map(|f| f.1).unwrap_or(self.class);
            row.error_class = Some(class.to_string());
        }
        let pages: Vec<String> = failed
            .iter()
            .map(|(i, _, m)| format!("page {}: {m}", i + 1))
            .collect();
        let message = format!("{}: {}", self.what, pages.join("; "));
        row.error_message = Some(match row.error_message.take() {
            Some(before) => format!("{before}; {message}"),
            None => message,
        });
        d.stage_failures
            .extend(failed.into_iter().map(|(i, class, message)| StageFailure {
                page_index: i as i32,
                stage: self.stage,
                class: class.unwrap_or(self.class),
                message,
            }));
        true
    }
}

/// From the VLM's image to the page: pixels scaled, points mapped.
struct Scale {
    to_page: ImageToPage,
    to_points: Option<crate::pdf::Affine>,
}

impl Scale {
    fn bbox(&self, b: &BBox) -> BBox {
        self.to_page.bbox(b)
    }

    fn points(&self, b: &BBox) -> Option<[f32; 4]> {
        self.to_points.map(|a| {
            let p = a.apply_bbox(b);
            [p.x0, p.y0, p.x1, p.y1]
        })
    }

    fn region(
        &self,
        p: &PageRow,
        index: i32,
        det: crate::extract::vlm::tasks::Detection,
        score: f32,
        source: &str,
    ) -> RegionRow {
        let b = self.bbox(&det.bbox);
        RegionRow {
            doc_id: p.doc_id.clone(),
            page_index: p.page_index,
            region_index: index,
            class: det.label,
            score,
            x0: b.x0,
            y0: b.y0,
            x1: b.x1,
            y1: b.y1,
            bbox_pt: self.points(&det.bbox),
            source: source.to_string(),
        }
    }

    fn line(
        &self,
        p: &PageRow,
        index: i32,
        line: crate::extract::vlm::tasks::TextQuad,
        confidence: f32,
        source: &str,
    ) -> LineRow {
        let around = BBox::around(&line.quad).unwrap_or_default();
        let b = self.bbox(&around);
        LineRow {
            doc_id: p.doc_id.clone(),
            page_index: p.page_index,
            line_index: index,
            text: line.text,
            confidence,
            x0: b.x0,
            y0: b.y0,
            x1: b.x1,
            y1: b.y1,
            polygon: line
                .quad
                .iter()
                .flat_map(|&q| {
                    let p = self.to_page.point(q);
                    [p.x, p.y]
                })
                .collect(),
            bbox_pt: self.points(&around),
            font_size: None,
            bold: None,
            region_index: None,
            region_class: None,
            source: source.to_string(),
        }
    }
}

/// Gives a document the record of its pages' VLM outcomes: each page's
/// record grounded on that page's lines, merged, validated. A page whose
/// text failed is already the document's error and is left out; a page
/// whose generation failed makes an `ok` document `partial` (class
/// `extract_failed`, or the page's own: `internal` for a panic, `timeout`),
/// and `failed` when no page gave a record. Documents without a failed
/// page are as if nothing had failed anywhere.
fn vlm_record(d: &mut FinishedDoc, mut vlm: BTreeMap<u32, VlmDone>, fields: &VlmFields) {
    d.doc.time_render_ms += vlm.values().map(|v| v.render_ms).sum::<f64>();
    if d.doc.status == DocStatus::Failed {
        return;
    }
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for p in d.pages.iter().filter(|p| p.error.is_none()) {
        let index = p.page_index.max(0) as u32;
        match vlm.remove(&index).map(|v| v.result) {
            Some(Ok(rec)) => {
                let lines = page_lines(p, d.lines.iter());
                records.push(adapters::vlm_page_record(&rec, &lines));
            }
            Some(Err(f)) => errors.push((index, f.class, f.message)),
            None => errors.push((index, None, "no VLM outcome came back".into())),
        }
    }
    let fields_failed = StageFailed {
        stage: "extract",
        what: "field extraction failed",
        class: "extract_failed",
    };
    if fields_failed.record(d, errors) && records.is_empty() {
        d.doc.status = DocStatus::Failed;
    }
    if !records.is_empty() {
        let extracted = adapters::vlm_document(records, &fields.schema);
        attach(&mut d.doc, extracted, fields.policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnInvalid;
    use crate::extract::vlm::PageRecord;
    use crate::ingest::Kind;
    use crate::pdf::{LayerLine, TextLayer};
    use crate::pipeline::items::{DocBudget, PageFailure, PageMeta};
    use crate::pipeline::rows::{page_error, text_layer_page};
    use crate::types::BBox;
    use std::time::Duration;

    fn doc(id: &str) -> DocRef {
        DocRef {
            id: id.into(),
            uri: format!("file:///in/{id}.pdf"),
            path: format!("/in/{id}.pdf").into(),
            sha256: "00".into(),
            bytes: 1,
            kind: Kind::Pdf,
        }
    }

    fn meta(id: &str, index: u32) -> PageMeta {
        PageMeta {
            doc_id: id.into(),
            index,
            dpi: Some(72.0),
            size_pt: None,
            rotation: 0,
            to_points: None,
            render_ms: 0.0,
            turned: None,
            uri: Arc::from(id),
            budget: DocBudget::new(Duration::from_secs(60)),
        }
    }

    /// A text-layer page with one line, "ACME LTD".
    fn page(id: &str, index: u32) -> Msg {
        let layer = TextLayer {
            lines: vec![LayerLine {
                text: "ACME LTD".into(),
                bbox_px: BBox {
                    x0: 1.0,
                    y0: 2.0,
                    x1: 30.0,
                    y1: 12.0,
                },
                bbox_pt: BBox::default(),
                font_size: Some(12.0),
                bold: true,
            }],
            readable_chars: 8,
            unmapped_chars: 0,
        };
        Msg::Page(Box::new(text_layer_page(
            &meta(id, index),
            (100, 100),
            layer,
            true,
        )))
    }

    fn vlm(id: &str, index: u32, result: Result<&str, PageFailure>) -> Msg {
        Msg::Vlm(Box::new(VlmDone {
            doc_id: id.into(),
            page: index,
            result: result.map(|vendor| PageRecord {
                value: serde_json::json!({ "vendor": vendor }),
                text: String::new(),
                field_confidence: BTreeMap::from([("vendor".to_string(), 0.5)]),
                tokens: 3,
            }),
            tasks: Vec::new(),
            image_size: (100, 100),
            to_points: None,
            render_ms: 1.0,
        }))
    }

    /// Runs the assembler over `msgs` (each document announced with
    /// `pages` pages first) and returns the finished documents by id.
    fn assembled(docs: &[(&str, u32)], msgs: Vec<Msg>) -> BTreeMap<String, FinishedDoc> {
        let schema = FieldSchema::from_value(serde_json::json!({
            "type": "object",
            "properties": {"vendor": {"type": "string"}},
            "required": ["vendor"]
        }))
        .unwrap();
        let fields = VlmFields {
            schema: Arc::new(schema),
            policy: RecordPolicy {
                on_invalid: OnInvalid::Keep,
                review_below: None,
            },
            source: "tiny-vlm".into(),
        };
        let stamp = RowStamp {
            pipeline: "t".into(),
            config_hash: "h".into(),
            model_ids: Vec::new(),
        };
        let (tx, rx) = async_channel::unbounded();
        let (out_tx, out_rx) = async_channel::unbounded();
        for (id, pages) in docs {
            let start = Msg::Start {
                doc: doc(id),
                pages: *pages,
                started_at_us: 0,
                ingest_ms: 0.0,
                mime: "application/pdf",
            };
            tx.send_blocking(start).unwrap();
        }
        for m in msgs {
            tx.send_blocking(m).unwrap();
        }
        drop(tx);
        let how = Finish {
            stamp: &stamp,
            vlm: Some(&fields),
            layout: None,
        };
        assemble(how, rx, out_tx).unwrap();
        let mut got = BTreeMap::new();
        while let Ok(d) = out_rx.try_recv() {
            got.insert(d.doc.doc_id.clone(), d);
        }
        got
    }

    #[test]
    fn a_failed_vlm_page_fails_only_its_document() {
        let failed = || PageFailure::error("the call failed".into());
        let msgs = vec![
            page("ok", 0),
            vlm("ok", 0, Ok("ACME LTD")),
            // The record may come before the text.
            vlm("ok", 1, Ok("Acme Ltd")),
            page("ok", 1),
            page("half", 0),
            page("half", 1),
            vlm("half", 0, Err(failed())),
            vlm("half", 1, Ok("ACME LTD")),
            page("none", 0),
            vlm("none", 0, Err(failed())),
            page("panic", 0),
            page("panic", 1),
            vlm("panic", 0, Ok("ACME LTD")),
            vlm(
                "panic",
                1,
                Err(PageFailure::panic("VLM generation", &"boom")),
            ),
            // Its text failed: its VLM failure adds nothing.
            Msg::Page(Box::new(page_error(
                &meta("textfail", 0),
                (0, 0),
                None,
                "broken page".into(),
            ))),
            vlm("textfail", 0, Err(failed())),
            page("textfail", 1),
            vlm("textfail", 1, Ok("ACME LTD")),
        ];
        let docs = [
            ("ok", 2),
            ("half", 2),
            ("none", 1),
            ("panic", 2),
            ("textfail", 2),
        ];
        let got = assembled(&docs, msgs);
        assert_eq!(got.len(), 5);
        let ok = &got["ok"].doc;
        assert_eq!(
            (ok.status, ok.error_class.as_deref()),
            (DocStatus::Ok, None)
        );
        let x = ok.extracted.as_ref().unwrap();
        assert!(x.valid());
        let vendor = &x.record.fields["vendor"];
        // Grounded on the page's line.
        assert_eq!(vendor.bbox.map(|b| b.x1), Some(30.0));
        assert_eq!(ok.time_render_ms, 2.0);

        let half = &got["half"].doc;
        assert_eq!(half.status, DocStatus::Partial);
        assert_eq!(half.error_class.as_deref(), Some("extract_failed"));
        let m = half.error_message.as_deref().unwrap_or_default();
        assert_eq!(m, "field extraction failed: page 1: the call failed");
        assert_eq!(
            half.extracted.as_ref().unwrap().record.fields["vendor"].page,
            Some(1)
        );

        let none = &got["none"].doc;
        assert_eq!(none.status, DocStatus::Failed);
        assert_eq!(none.error_class.as_deref(), Some("extract_failed"));
        assert!(none.extracted.is_none());

        let panic = &got["panic"].doc;
        assert_eq!(panic.status, DocStatus::Partial);
        assert_eq!(panic.error_class.as_deref(), Some("internal"));
        let m = panic.error_message.as_deref().unwrap_or_default();
        assert!(
            m.contains("page 2: internal error in VLM generation: boom"),
            "{m}"
        );

        let textfail = &got["textfail"].doc;
        assert_eq!(textfail.status, DocStatus::Partial);
        assert_eq!(textfail.error_class.as_deref(), Some("some_pages_failed"));
        let m = textfail.error_message.as_deref().unwrap_or_default();
        assert_eq!(m, "page 1: broken page");
        assert!(textfail.extracted.is_some());
    }
}
