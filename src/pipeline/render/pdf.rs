//! One PDF request: in this thread's worker process or in this process,
//! its render events turned into the pipeline's messages.

use super::{send_failed, Outputs, RenderPlan};
use crate::pdf::PageInfo;
use crate::pipeline::items::{DocJob, Msg, PageImage, PageJob, PageMeta};
use crate::pipeline::rows::{page_error, text_layer_page};
use crate::pipeline::shared_pdf::SharedPdf;
use crate::render::{self, DocFailure, ErrorClass, RenderEvent, RenderSettings};
use crate::worker::{Outcome, Worker, WorkerSpec};
use std::time::Duration;

/// Reads the first part of a PDF (all of it when the stage does not share).
/// `Ok((go_on, page count))`; `go_on` is false when the pipeline is closing.
pub(super) fn read_first_part(
    plan: &RenderPlan,
    worker: &mut Option<Worker>,
    job: &DocJob,
    settings: &RenderSettings,
    out: &Outputs,
    reading: usize,
) -> Result<(bool, Option<u32>), DocFailure> {
    let mut pages = PdfPages {
        job,
        dpi: plan.settings.pdf.dpi,
        out,
        announce: true,
        count: None,
    };
    let go_on = read_pdf(worker, plan, settings, &mut pages, reading)?;
    Ok((go_on, pages.count))
}

/// Reads pages `range` of a shared PDF. False when the pipeline is closing.
pub(super) fn render_part(
    plan: &RenderPlan,
    worker: &mut Option<Worker>,
    pdf: &SharedPdf<DocJob>,
    range: (u32, u32),
    out: &Outputs,
) -> bool {
    let _span = tracing::debug_span!(
        "part",
        doc = %pdf.job.doc.id,
        first = range.0,
        end = range.1
    )
    .entered();
    let settings = RenderSettings {
        pages: Some(range),
        ..plan.settings.pdf.clone()
    };
    let mut pages = PdfPages {
        job: &pdf.job,
        dpi: plan.settings.pdf.dpi,
        out,
        announce: false,
        count: None,
    };
    let reading = plan.in_flight.enter();
    let read = read_pdf(worker, plan, &settings, &mut pages, reading);
    plan.in_flight.leave();
    match read {
        Ok(go_on) => go_on,
        // Only the first failing part speaks for the document.
        Err(f) if pdf.fail_first() => {
            send_failed(out.results, &pdf.job, f.class.as_str(), f.message)
        }
        Err(_) => true,
    }
}

/// Reads a PDF (the pages `settings` asks for) in this thread's worker
/// process, or in this process when there are no workers.
fn read_pdf(
    worker: &mut Option<Worker>,
    plan: &RenderPlan,
    settings: &RenderSettings,
    out: &mut PdfPages,
    reading: usize,
) -> Result<bool, DocFailure> {
    let vlm_dpi = plan.settings.vlm_dpi.filter(|_| out.out.wants_images());
    match (&plan.spec, plan.lib.as_deref()) {
        (Some(spec), _) => pdf_in_worker(worker, spec, settings, vlm_dpi, out, reading),
        (None, Some(lib)) => {
            render::render_pdf_guarded(lib, &out.job.data, settings, vlm_dpi, &mut |ev| {
                out.emit(ev)
            })
        }
        (None, None) => Err(DocFailure::new(
            ErrorClass::Render,
            "PDFium is not available",
        )),
    }
}

/// Reads a PDF in this thread's worker process, starting one if there is
/// none (the first PDF, or the one after a worker was lost).
fn pdf_in_worker(
    slot: &mut Option<Worker>,
    spec: &WorkerSpec,
    settings: &RenderSettings,
    vlm_dpi: Option<f32>,
    out: &mut PdfPages,
    reading: usize,
) -> Result<bool, DocFailure> {
    let w = match slot {
        Some(w) => w,
        None => slot.insert(Worker::spawn(spec)?),
    };
    let pid = w.pid();
    tracing::debug!(
        worker = pid,
        reading,
        "render worker took a document ({reading} being read)"
    );
    let job = out.job;
    match w.render_for(&job.doc.id, &job.data, settings, vlm_dpi, &mut |ev| {
        out.emit(ev)
    }) {
        Outcome::Done => Ok(true),
        Outcome::Failed(f) => Err(f),
        Outcome::Stopped => {
            *slot = None;
            Ok(false)
        }
        Outcome::Lost(f) => {
            tracing::warn!(
                worker = pid,
                class = f.class.as_str(),
                "render worker lost; a new one starts with the next PDF"
            );
            *slot = None;
            Err(f)
        }
    }
}

/// Turns one PDF's render events into the pipeline's messages, the same way
/// whether PDFium ran in this process or in a worker.
struct PdfPages<'a> {
    job: &'a DocJob,
    dpi: f32,
    out: &'a Outputs<'a>,
    /// Pass the document's start on to the assembler: true for the first
    /// part, false for the later parts of a shared PDF.
    announce: bool,
    /// The document's page count, once its `Start` was seen.
    count: Option<u32>,
}

impl PdfPages<'_> {
    /// False when the pipeline is closing.
    fn emit(&mut self, ev: RenderEvent) -> bool {
        match ev {
            RenderEvent::Start { pages } => {
                self.count = Some(pages);
                !self.announce || self.out.start(self.job, pages)
            }
            RenderEvent::TextPage {
                index,
                info,
                layer,
                usable,
                ms,
            } => {
                let (meta, size_px) = self.meta(index, Some(info), ms);
                let done = text_layer_page(&meta, size_px, layer, usable);
                self.out.result(Msg::Page(Box::new(done)))
            }
            RenderEvent::Image {
                index,
                info,
                image,
                to_points,
                ms,
            } => {
                let (mut meta, _) = self.meta(index, Some(info), ms);
                meta.to_points = Some(to_points);
                self.out.page(PageJob { meta, image })
            }
            RenderEvent::PageError {
                index,
                info,
                message,
                ms,
            } => {
                let (meta, size_px) = self.meta(index, info, ms);
                let done = page_error(&meta, size_px, None, message);
                self.out.result(Msg::Page(Box::new(done)))
            }
            RenderEvent::VlmImage {
                index,
                image,
                to_points,
                ms,
            } => {
                let meta = self.job.page_meta(index);
                meta.budget
                    .charge(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
                self.out.page_image(PageImage {
                    meta,
                    image,
                    to_points,
                    render_ms: ms,
                })
            }
        }
    }

    /// A page's facts, and its size in pixels at the render DPI ((0, 0) when
    /// its size could not be read).
    fn meta(&self, index: u32, info: Option<PageInfo>, ms: f64) -> (PageMeta, (u32, u32)) {
        let dpi = self.dpi;
        let size_pt = info.map(|i| (i.width_pt, i.height_pt));
        let size_px = size_pt
            .map(|(w, h)| {
                (
                    (w * dpi / 72.0).round() as u32,
                    (h * dpi / 72.0).round() as u32,
                )
            })
            .unwrap_or((0, 0));
        let meta = PageMeta {
            dpi: Some(dpi),
            size_pt,
            rotation: info.map_or(0, |i| i.rotation),
            render_ms: ms,
            ..self.job.page_meta(index)
        };
        meta.budget
            .charge(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
        (meta, size_px)
    }
}
