//! Image documents (PNG, JPEG, TIFF, WebP, BMP): decoded in this process
//! with the pure-Rust decoders, under the pixel limit.

use super::Outputs;
use crate::decode;
use crate::pdf;
use crate::pipeline::items::{ms, DocJob, Msg, PageImage, PageJob};
use crate::pipeline::rows::{page_error, text_layer_page};
use std::time::{Duration, Instant};

/// What decoding an image document needs from the pipeline.
#[derive(Clone, Debug)]
pub struct RasterSettings {
    /// Most pages read from one document (`limits.max_pages`).
    pub max_pages: u32,
    /// Most pixels in one decoded page (`limits.max_image_megapixels`).
    pub max_image_pixels: u64,
    /// Pages go on to OCR (false with `ocr.mode: never`: they come out empty).
    pub ocr: bool,
}

/// Decodes an image document page by page. `Ok(false)` when the pipeline
/// is closing; `Err` is the document's failed row (class, message).
pub(super) fn decode_raster(
    p: &RasterSettings,
    job: &DocJob,
    out: &Outputs,
) -> Result<bool, (&'static str, String)> {
    let classify = |e: decode::DecodeError| match e {
        decode::DecodeError::TooManyPixels { .. } => ("too_many_pixels", e.to_string()),
        decode::DecodeError::Unsupported(_) => ("unsupported", e.to_string()),
        decode::DecodeError::Corrupt(_) => ("corrupt", e.to_string()),
    };
    let count = decode::page_count(job.doc.kind, &job.data, p.max_pages).map_err(classify)?;
    if count > p.max_pages {
        return Err((
            "too_many_pages",
            format!(
                "the image has more than {} pages (limits.max_pages)",
                p.max_pages
            ),
        ));
    }
    // Decode the first page before announcing the document, so a file that
    // cannot be decoded at all is one failed row rather than a partial one.
    let t = Instant::now();
    let first =
        decode::decode_page(job.doc.kind, &job.data, 0, p.max_image_pixels).map_err(classify)?;
    if !out.start(job, count) {
        return Ok(false);
    }
    let mut next = Some((first, ms(t.elapsed())));
    for index in 0..count {
        let t = Instant::now();
        let decoded = match next.take() {
            Some((page, took)) => Ok((page, took)),
            None => decode::decode_page(job.doc.kind, &job.data, index, p.max_image_pixels)
                .map(|page| (page, ms(t.elapsed()))),
        };
        let mut meta = job.page_meta(index);
        match decoded {
            Ok((page, took)) => {
                job.budget.charge(Duration::from_secs_f64(took / 1000.0));
                meta.rotation = page.rotation;
                meta.dpi = page.dpi;
                meta.render_ms = took;
                // The decoded page serves the VLM and the layout model as
                // it is (the models resize to their own input).
                let dims = page.image.dimensions();
                let (ocr_image, vlm_image) = match (p.ocr, out.wants_images()) {
                    (true, true) => (Some(page.image.clone()), Some(page.image)),
                    (true, false) => (Some(page.image), None),
                    (false, true) => (None, Some(page.image)),
                    (false, false) => (None, None),
                };
                let vlm_meta = vlm_image.as_ref().map(|_| meta.clone());
                let sent = match ocr_image {
                    Some(image) => out.page(PageJob { meta, image }),
                    None => {
                        let done = text_layer_page(&meta, dims, pdf::TextLayer::default(), false);
                        out.result(Msg::Page(Box::new(done)))
                    }
                };
                if !sent {
                    return Ok(false);
                }
                if let (Some(meta), Some(image)) = (vlm_meta, vlm_image) {
                    if !out.page_image(vlm_page(meta, Ok(image))) {
                        return Ok(false);
                    }
                }
            }
            Err(e) => {
                meta.render_ms = ms(t.elapsed());
                let message = e.to_string();
                if !out.result(Msg::Page(Box::new(page_error(
                    &meta,
                    (0, 0),
                    None,
                    message.clone(),
                )))) {
                    return Ok(false);
                }
                if out.wants_images() && !out.page_image(vlm_page(meta, Err(message))) {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

/// A decoded page's VLM image (made with the page, so it took no time of
/// its own).
fn vlm_page(
    meta: crate::pipeline::items::PageMeta,
    image: Result<image::RgbImage, String>,
) -> PageImage {
    PageImage {
        meta,
        image,
        to_points: None,
        render_ms: 0.0,
    }
}
