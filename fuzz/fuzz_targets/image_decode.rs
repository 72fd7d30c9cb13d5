//! Raster ingest on arbitrary bytes, the way the pipeline's raster path does
//! it: `sniff` the kind, `page_count`, then `decode_page` for every page,
//! under a small pixel limit. Any outcome but a panic is fine; memory must
//! stay bounded by the limit (run with `-rss_limit_mb=512`, which
//! `scripts/fuzz` passes, so a decoder that allocates past it is a finding).
//!
//! Seeds: the images in `fixtures/samples` and `fixtures/bad` (copied in by
//! `scripts/fuzz`).
#![no_main]

use docpipe::decode::{decode_page, page_count};
use docpipe::ingest::{sniff, Kind};
use libfuzzer_sys::fuzz_target;

/// Pixel limit per page: 4 Mpx (the pipeline's default is 100 Mpx; a small
/// limit keeps every accepted page cheap so that the fuzzer runs fast).
const MAX_PIXELS: u64 = 4_000_000;

/// Most pages read from one file (the pipeline refuses more than
/// `limits.max_pages`; `page_count` stops counting one past it).
const MAX_PAGES: u32 = 8;

fuzz_target!(|data: &[u8]| {
    let kind = sniff(data);
    if !matches!(
        kind,
        Kind::Png | Kind::Jpeg | Kind::Tiff | Kind::Webp | Kind::Bmp
    ) {
        return;
    }
    let Ok(count) = page_count(kind, data, MAX_PAGES) else {
        return;
    };
    if count > MAX_PAGES {
        return;
    }
    for index in 0..count {
        if let Ok(page) = decode_page(kind, data, index, MAX_PIXELS) {
            let (w, h) = page.image.dimensions();
            assert!(
                u64::from(w) * u64::from(h) <= MAX_PIXELS,
                "page {index} is {w}x{h}, over the {MAX_PIXELS}-pixel limit"
            );
            assert!(w > 0 && h > 0, "page {index} has no pixels");
        }
    }
});
