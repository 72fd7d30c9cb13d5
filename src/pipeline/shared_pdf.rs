//! Sharing a long PDF's pages between the render threads.
//!
//! The first request for a PDF reads its first [`FIRST_PART`] pages. When
//! the document turns out longer, its remaining pages are put on a list that
//! every render thread looks at before it takes a new document: a thread
//! without work takes the next part, so one long PDF does not keep one
//! thread busy while the others idle. Parts shrink towards the end, so the
//! threads finish together.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Pages the first request for a PDF reads when the stage has more than one
/// thread.
pub const FIRST_PART: u32 = 16;

/// Fewest pages a later part holds; each covers about 1/(2 x threads) of
/// the pages left.
pub const MIN_PART: u32 = 4;

/// A long document (`J` is its job) whose remaining pages the threads share.
pub struct SharedPdf<J> {
    pub job: Arc<J>,
    /// First page not yet handed out.
    next: AtomicU32,
    /// The document's page count.
    end: u32,
    /// Set by the first part that fails: the document's one failed row is
    /// that part's, and no more parts are handed out.
    failed: AtomicBool,
}

impl<J> SharedPdf<J> {
    /// A document of `pages` pages whose pages from `first` on are to share.
    pub fn new(job: Arc<J>, first: u32, pages: u32) -> Self {
        Self {
            job,
            next: AtomicU32::new(first),
            end: pages,
            failed: AtomicBool::new(false),
        }
    }

    /// Hands out the next part, `None` when none is left.
    fn take(&self, threads: usize) -> Option<(u32, u32)> {
        let share = 2 * u32::try_from(threads).unwrap_or(u32::MAX).max(1);
        let mut first = self.next.load(Ordering::SeqCst);
        loop {
            if first >= self.end || self.failed.load(Ordering::SeqCst) {
                return None;
            }
            let n = (self.end - first).div_ceil(share).max(MIN_PART);
            let end = first.saturating_add(n).min(self.end);
            match self
                .next
                .compare_exchange(first, end, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Some((first, end)),
                Err(now) => first = now,
            }
        }
    }

    /// Marks the document failed; true for the first part to do so, which
    /// alone speaks for the document.
    pub fn fail_first(&self) -> bool {
        !self.failed.swap(true, Ordering::SeqCst)
    }

    fn exhausted(&self) -> bool {
        self.next.load(Ordering::SeqCst) >= self.end || self.failed.load(Ordering::SeqCst)
    }
}

/// A part handed out: the document and its pages `first..end`.
pub type Part<J> = (Arc<SharedPdf<J>>, (u32, u32));

/// The list of shared documents, and the PDFs whose first part is still
/// being read (they may yet be shared).
pub struct Sharing<J> {
    threads: usize,
    list: Mutex<Vec<Arc<SharedPdf<J>>>>,
    opening: AtomicUsize,
}

impl<J> Sharing<J> {
    pub fn new(threads: usize) -> Self {
        Self {
            threads,
            list: Mutex::new(Vec::new()),
            opening: AtomicUsize::new(0),
        }
    }

    /// True when PDFs are split into parts at all (more than one thread).
    pub fn enabled(&self) -> bool {
        self.threads > 1
    }

    /// The next part of a shared PDF, if any is left.
    pub fn claim(&self) -> Option<Part<J>> {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.retain(|p| !p.exhausted());
        list.iter()
            .find_map(|p| p.take(self.threads).map(|r| (Arc::clone(p), r)))
    }

    pub fn share(&self, pdf: SharedPdf<J>) {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.push(Arc::new(pdf));
    }

    /// A thread is about to take a document that may be a PDF to share
    /// (call it before taking one from the queue, so that no other thread
    /// sees "nothing left" in between).
    pub fn opening(&self) {
        self.opening.fetch_add(1, Ordering::SeqCst);
    }

    /// ... and has shared it ([`Sharing::share`]), or found it is not to be
    /// shared, or found the queue closed.
    pub fn opened(&self) {
        self.opening.fetch_sub(1, Ordering::SeqCst);
    }

    /// True when no thread can be handed another part, now or later.
    pub fn nothing_left(&self) -> bool {
        if self.opening.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.iter().all(|p| p.exhausted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(sharing: &Sharing<()>) -> Vec<(u32, u32)> {
        std::iter::from_fn(|| sharing.claim().map(|(_, r)| r)).collect()
    }

    #[test]
    fn parts_cover_the_rest_in_order_and_shrink() {
        struct Case {
            threads: usize,
            pages: u32,
            want: Vec<(u32, u32)>,
        }
        let cases = [
            // 24 left, shares of 1/4: 6, then 18/4 -> 5, 13/4 -> 4, then at least 4.
            Case {
                threads: 2,
                pages: 40,
                want: vec![(16, 22), (22, 27), (27, 31), (31, 35), (35, 39), (39, 40)],
            },
            // Fewer pages left than a part: one part.
            Case {
                threads: 2,
                pages: 18,
                want: vec![(16, 18)],
            },
            Case {
                threads: 4,
                pages: 48,
                want: vec![
                    (16, 20),
                    (20, 24),
                    (24, 28),
                    (28, 32),
                    (32, 36),
                    (36, 40),
                    (40, 44),
                    (44, 48),
                ],
            },
        ];
        for c in cases {
            let sharing = Sharing::new(c.threads);
            sharing.share(SharedPdf::new(Arc::new(()), FIRST_PART, c.pages));
            assert_eq!(
                parts(&sharing),
                c.want,
                "{} threads, {} pages",
                c.threads,
                c.pages
            );
            assert!(sharing.nothing_left());
        }
    }

    #[test]
    fn a_failed_document_hands_out_nothing_more_and_fails_once() {
        let sharing = Sharing::new(2);
        sharing.share(SharedPdf::new(Arc::new(()), FIRST_PART, 100));
        let (pdf, first) = sharing.claim().expect("a part");
        assert_eq!(first, (16, 37));
        assert!(pdf.fail_first());
        assert!(!pdf.fail_first(), "only the first failing part speaks");
        assert!(sharing.claim().is_none());
        assert!(sharing.nothing_left());
    }

    #[test]
    fn a_pdf_being_opened_may_still_be_shared() {
        let sharing: Sharing<()> = Sharing::new(2);
        assert!(sharing.nothing_left());
        sharing.opening();
        assert!(!sharing.nothing_left());
        sharing.opened();
        assert!(sharing.nothing_left());
        assert!(!Sharing::<()>::new(1).enabled());
    }
}
