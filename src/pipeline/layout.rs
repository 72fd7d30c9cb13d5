//! The layout stage (`layout:`): finds each page's regions with the layout
//! model.
//!
//! The render stage makes each page's image as it reads the page (the same
//! 150-dpi image a VLM gets; PDFs in the render workers, text-layer pages
//! included) and sends it here through a bounded channel. The stage's
//! workers take pages from that one queue whatever their document, so the
//! model is kept busy across documents; each call holds one page, since
//! the model's graph fixes a batch of one. Each page's regions (or why it
//! has none) go to the assembler, which orders the page's lines by them.
//!
//! One page fails alone: a model error or a spent budget gives that page
//! no regions and its document a reason (`partial`); a panic does the same
//! (class `internal`) and the model is loaded anew.

use super::faults::{self, StageFault, STAGE_FAULT_ENV};
use super::items::{Msg, PageFailure, PageImage, RegionsDone};
use super::pool::run_pool;
use crate::regions::page::PageRegions;
use crate::regions::LayoutDetector;
use async_channel::{Receiver, Sender};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds a layout worker's model on the worker's own thread.
pub type LayoutFactory = Arc<dyn Fn() -> anyhow::Result<LayoutDetector> + Send + Sync>;

/// What the layout stage did, for the summary and metrics.
#[derive(Clone, Debug, Default)]
pub struct LayoutStats {
    /// Pages given regions.
    pub pages: u64,
    /// Regions found on them.
    pub regions: u64,
    /// Time busy (pre-processing, the model, post-processing), summed over
    /// the workers.
    pub busy: Duration,
}

impl LayoutStats {
    fn add(mut self, o: LayoutStats) -> Self {
        self.pages += o.pages;
        self.regions += o.regions;
        self.busy += o.busy;
        self
    }
}

/// Runs `workers` layout workers until `pages` closes. `Err` only when the
/// model cannot be loaded.
pub fn layout_pool(
    factory: &LayoutFactory,
    workers: usize,
    pages: Receiver<PageImage>,
    results: Sender<Msg>,
) -> anyhow::Result<LayoutStats> {
    let each = run_pool("layout", workers.max(1), || {
        layout_worker(factory, pages.clone(), results.clone())
    })?;
    Ok(each
        .into_iter()
        .fold(LayoutStats::default(), LayoutStats::add))
}

fn layout_worker(
    factory: &LayoutFactory,
    pages: Receiver<PageImage>,
    results: Sender<Msg>,
) -> anyhow::Result<LayoutStats> {
    let mut model = factory()?;
    let mut stats = LayoutStats::default();
    while let Ok(page) = pages.recv_blocking() {
        let _span = tracing::debug_span!("layout", doc = %page.meta.doc_id, page = page.meta.index)
            .entered();
        let t = Instant::now();
        let (result, broken) = find(&mut model, &page);
        let took = t.elapsed();
        page.meta.budget.charge(took);
        stats.busy += took;
        if let Ok(r) = &result {
            stats.pages += 1;
            stats.regions += r.regions.len() as u64;
        }
        let done = RegionsDone {
            doc_id: page.meta.doc_id,
            page: page.meta.index,
            result,
            render_ms: page.render_ms,
        };
        if results.send_blocking(Msg::Regions(Box::new(done))).is_err() {
            break;
        }
        if broken {
            tracing::warn!("the layout model panicked: loading it anew");
            model = factory()?;
        }
    }
    Ok(stats)
}

/// One page's regions; the flag says the model panicked.
fn find(model: &mut LayoutDetector, page: &PageImage) -> (Result<PageRegions, PageFailure>, bool) {
    let image = match &page.image {
        Ok(i) => i,
        Err(e) => {
            return (
                Err(PageFailure::error(format!("no page image: {e}"))),
                false,
            )
        }
    };
    let budget = &page.meta.budget;
    if budget.exhausted() {
        return (
            Err(PageFailure::timeout(budget, "layout of this page")),
            false,
        );
    }
    let uri = &page.meta.uri;
    let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if faults::hits(StageFault::LayoutPanic, uri) {
            panic!("test fault: the layout model panics on this page ({STAGE_FAULT_ENV})");
        }
        if faults::hits(StageFault::LayoutError, uri) {
            return Err(format!(
                "test fault: the layout model fails on this page ({STAGE_FAULT_ENV})"
            ));
        }
        model.detect(image).map_err(|e| e.to_string())
    }));
    match caught {
        Ok(Ok(regions)) => (
            Ok(PageRegions {
                regions,
                image_size: image.dimensions(),
                to_points: page.to_points,
            }),
            false,
        ),
        Ok(Err(message)) => (Err(PageFailure::error(message)), false),
        Err(panic) => (
            Err(PageFailure::panic("the layout model", panic.as_ref())),
            true,
        ),
    }
}
