//! Test-only fault switches for the model stages, read in the pipeline's
//! own process (the render worker has its own, [`crate::worker::child::FAULT_ENV`]).
//!
//! `DOCPIPE_STAGE_FAULT` is a comma-separated list of `KIND:NEEDLE`; a page
//! of a document whose URI contains `NEEDLE` triggers `KIND`:
//!
//! - `det-panic`: detection panics on the page;
//! - `orient-error`: the page orientation classifier returns an error on
//!   the page;
//! - `rec-error`: a recognition call that holds one of the page's crops
//!   returns an error;
//! - `rec-panic`: such a call panics;
//! - `vlm-error`: a VLM generation call that holds the page returns an
//!   error;
//! - `vlm-panic`: such a call panics;
//! - `vlm-task-error`: a generation call of a VLM task other than `fields`
//!   (a caption, `ocr_with_region`, `od`) that holds the page returns an
//!   error;
//! - `layout-error`: the layout model's call on the page returns an error;
//! - `layout-panic`: it panics.
//!
//! It is never set in normal use; tests set it to show that one bad item
//! fails only itself.

use std::sync::OnceLock;

/// Environment variable of the switch.
pub const STAGE_FAULT_ENV: &str = "DOCPIPE_STAGE_FAULT";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageFault {
    DetPanic,
    OrientError,
    RecError,
    RecPanic,
    VlmError,
    VlmPanic,
    /// A VLM task other than `fields` fails on the page.
    VlmTaskError,
    LayoutError,
    LayoutPanic,
}

fn parse(spec: &str) -> Vec<(StageFault, String)> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = item.split_once(':').and_then(|(kind, needle)| {
            let kind = match kind {
                "det-panic" => StageFault::DetPanic,
                "orient-error" => StageFault::OrientError,
                "rec-error" => StageFault::RecError,
                "rec-panic" => StageFault::RecPanic,
                "vlm-error" => StageFault::VlmError,
                "vlm-panic" => StageFault::VlmPanic,
                "vlm-task-error" => StageFault::VlmTaskError,
                "layout-error" => StageFault::LayoutError,
                "layout-panic" => StageFault::LayoutPanic,
                _ => return None,
            };
            (!needle.is_empty()).then(|| (kind, needle.to_string()))
        });
        match parsed {
            Some(f) => out.push(f),
            None => tracing::warn!("ignoring {STAGE_FAULT_ENV} entry {item:?}"),
        }
    }
    out
}

fn faults() -> &'static [(StageFault, String)] {
    static FAULTS: OnceLock<Vec<(StageFault, String)>> = OnceLock::new();
    FAULTS.get_or_init(|| {
        std::env::var(STAGE_FAULT_ENV)
            .map(|s| parse(&s))
            .unwrap_or_default()
    })
}

/// Whether `kind` is switched on for the document at `uri`.
pub fn hits(kind: StageFault, uri: &str) -> bool {
    faults()
        .iter()
        .any(|(k, needle)| *k == kind && uri.contains(needle.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_parses_kinds_and_needles() {
        let got =
            parse("det-panic:a.png, rec-error:b,bogus:c,vlm-error:,rec-panic:d,vlm-task-error:e");
        assert_eq!(
            got,
            vec![
                (StageFault::DetPanic, "a.png".to_string()),
                (StageFault::RecError, "b".to_string()),
                (StageFault::RecPanic, "d".to_string()),
                (StageFault::VlmTaskError, "e".to_string()),
            ]
        );
    }
}
