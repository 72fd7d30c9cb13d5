//! The input listing, walked lazily: never collected, so its memory does not
//! grow with the number of inputs.
//!
//! Each folder's entries are sorted by name as the walk reaches it
//! (`walkdir`'s `sort_by_file_name`), which yields a folder's files in the
//! order of their whole paths (component by component, byte-wise: the order
//! of [`Path`]'s `Ord`). Input paths are walked one after another, sorted by
//! their absolute paths, so the listing is the one a collected, sorted and
//! de-duplicated list gives, without holding it.

use super::{key_of, source, ListError, SourceFile};
use crate::config::InputConfig;
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::path::{Path, PathBuf};

/// One input path of the listing.
#[derive(Debug)]
struct Root {
    /// As configured: globs match paths relative to it, and the walk starts
    /// from it.
    path: PathBuf,
    /// Absolute form: the sort key, and what overlaps are told by.
    abs: PathBuf,
    is_file: bool,
    /// Earlier roots that hold this one or are held by it: a file one of
    /// them lists is not listed again.
    overlaps: Vec<usize>,
}

/// The listing of an input, an iterator of its files in order (see the
/// module docs). Made by [`walk`]. After an error (a folder that cannot be
/// read) it yields nothing more.
pub struct Walk {
    roots: Vec<Root>,
    include: GlobSet,
    exclude: GlobSet,
    /// Index of the next root to start.
    next: usize,
    /// The root being walked, and its walk.
    current: Option<(usize, walkdir::IntoIter)>,
    failed: bool,
}

impl std::fmt::Debug for Walk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walk")
            .field("roots", &self.roots)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// Starts the listing of `input`: every file under its paths that the
/// include globs match and the exclude globs do not, in a repeatable order.
/// Globs match the path relative to the input folder it was found under; an
/// input path that is a file is listed whatever the globs. A file reached
/// from two input paths is listed once. Fails at once when an input path is
/// missing or a glob is bad; errors met while walking come from the
/// iterator.
pub fn walk(input: &InputConfig) -> Result<Walk, ListError> {
    let include = globs(&input.include)?;
    let exclude = globs(&input.exclude)?;
    let mut roots: Vec<Root> = Vec::with_capacity(input.paths.len());
    for path in &input.paths {
        if !path.exists() {
            return Err(ListError::Missing(path.clone()));
        }
        roots.push(Root {
            abs: std::path::absolute(path).unwrap_or_else(|_| path.clone()),
            is_file: path.is_file(),
            path: path.clone(),
            overlaps: Vec::new(),
        });
    }
    roots.sort_by(|a, b| a.abs.cmp(&b.abs));
    // The same path twice lists the same files twice over: keep one.
    roots.dedup_by(|a, b| a.abs == b.abs);
    for i in 0..roots.len() {
        let overlaps = (0..i)
            .filter(|&j| {
                roots[i].abs.starts_with(&roots[j].abs) || roots[j].abs.starts_with(&roots[i].abs)
            })
            .collect();
        roots[i].overlaps = overlaps;
    }
    Ok(Walk {
        roots,
        include,
        exclude,
        next: 0,
        current: None,
        failed: false,
    })
}

/// The key of an input path that is a file: its name.
fn file_key(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| key_of(path), |n| n.to_string_lossy().into_owned())
}

/// The glob set of `globs`.
pub(super) fn globs(globs: &[String]) -> Result<GlobSet, globset::Error> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(Glob::new(g)?);
    }
    b.build()
}

impl Walk {
    /// Whether root `r` lists the file at absolute path `abs`.
    fn lists(&self, r: &Root, abs: &Path) -> bool {
        if r.is_file {
            return r.abs == abs;
        }
        match abs.strip_prefix(&r.abs) {
            Ok(rel) => self.matches(rel),
            Err(_) => false,
        }
    }

    fn matches(&self, rel: &Path) -> bool {
        self.include.is_match(rel) && !self.exclude.is_match(rel)
    }

    /// Whether an earlier root than `i` lists `file` already.
    fn listed_before(&self, i: usize, file: &SourceFile) -> bool {
        self.roots[i]
            .overlaps
            .iter()
            .any(|&j| self.lists(&self.roots[j], &file.path))
    }
}

impl Iterator for Walk {
    type Item = Result<SourceFile, ListError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            let Some((i, it)) = self.current.as_mut() else {
                let i = self.next;
                let root = self.roots.get(i)?;
                self.next += 1;
                if root.is_file {
                    let file = source(&root.path, file_key(&root.path));
                    if !self.listed_before(i, &file) {
                        return Some(Ok(file));
                    }
                    continue;
                }
                let it = walkdir::WalkDir::new(&root.path)
                    .follow_links(true)
                    .sort_by_file_name()
                    .into_iter();
                self.current = Some((i, it));
                continue;
            };
            let i = *i;
            let entry = match it.next() {
                None => {
                    self.current = None;
                    continue;
                }
                Some(Err(e)) => {
                    self.failed = true;
                    return Some(Err(ListError::Walk {
                        path: self.roots[i].path.clone(),
                        message: e.to_string(),
                    }));
                }
                Some(Ok(entry)) => entry,
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let root = &self.roots[i].path;
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
            if !self.matches(rel) {
                continue;
            }
            let file = source(entry.path(), key_of(rel));
            if self.listed_before(i, &file) {
                continue;
            }
            return Some(Ok(file));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The listing as docpipe collected it before it was walked lazily:
    /// everything, then sorted by path and de-duplicated.
    fn collected(input: &InputConfig) -> Vec<SourceFile> {
        let include = globs(&input.include).unwrap();
        let exclude = globs(&input.exclude).unwrap();
        let mut out = Vec::new();
        for root in &input.paths {
            if root.is_file() {
                out.push(source(root, file_key(root)));
                continue;
            }
            for entry in walkdir::WalkDir::new(root).follow_links(true) {
                let entry = entry.unwrap();
                if !entry.file_type().is_file() {
                    continue;
                }
                let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
                if include.is_match(rel) && !exclude.is_match(rel) {
                    out.push(source(entry.path(), key_of(rel)));
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup_by(|a, b| a.path == b.path);
        out
    }

    /// A nested tree whose names sort differently as strings and as paths
    /// (`a` / `a b` / `a-x` / `a.txt`, `B` before `a`, digits).
    fn tree(dir: &Path) {
        for f in [
            "a.txt",
            "a/z.pdf",
            "a/b/c.pdf",
            "a/b/c.png",
            "a b/1.pdf",
            "a-x/2.pdf",
            "a.d/3.pdf",
            "B/4.pdf",
            "10.pdf",
            "9.pdf",
            "deep/1/2/3/4/5.pdf",
            "deep/1/2/skip-me.pdf",
            "deep/1/2b.pdf",
            "x.PDF",
            "empty/.keep",
        ] {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f.as_bytes()).unwrap();
        }
    }

    fn input(paths: Vec<PathBuf>, include: &[&str], exclude: &[&str]) -> InputConfig {
        InputConfig {
            paths,
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn same_order_as_the_collected_listing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        tree(d);
        let cases = [
            input(vec![d.into()], &["**/*"], &[]),
            input(vec![d.into()], &["**/*.pdf", "*.txt"], &["**/skip*"]),
            // disjoint roots given out of order
            input(
                vec![d.join("deep"), d.join("a"), d.join("B")],
                &["**/*.pdf"],
                &[],
            ),
            // the same root twice
            input(vec![d.join("a"), d.join("a")], &["**/*"], &[]),
        ];
        for (i, c) in cases.iter().enumerate() {
            let lazy: Vec<SourceFile> = walk(c).unwrap().map(Result::unwrap).collect();
            assert_eq!(lazy, collected(c), "case {i}");
            assert!(!lazy.is_empty(), "case {i}");
        }
        // Nested roots are walked one after another: the same files as the
        // collected listing, each once, each root's in order. Here the file
        // root `a.txt` (inside `d`, but not matched by its globs) comes after
        // `d`'s walk; `a/b` lists nothing `d` has not.
        let cases = [
            input(
                vec![d.join("a/b"), d.into(), d.join("a.txt")],
                &["**/*.pdf"],
                &[],
            ),
            input(vec![d.into(), d.join("a/b")], &["**/*.pdf", "*.png"], &[]),
        ];
        for (i, c) in cases.iter().enumerate() {
            let lazy: Vec<SourceFile> = walk(c).unwrap().map(Result::unwrap).collect();
            // A file under two roots has the key of the first root in
            // sorted order, whatever order the roots were given in.
            let paths = |v: &[SourceFile]| v.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
            let mut got = lazy.clone();
            got.sort_by(|a, b| a.path.cmp(&b.path));
            got.dedup();
            assert_eq!(got.len(), lazy.len(), "listed twice: {lazy:?}");
            assert_eq!(paths(&got), paths(&collected(c)), "nested case {i}");
            assert!(got.iter().all(|f| !f.key.starts_with('/')), "{got:?}");
        }
        let lazy: Vec<SourceFile> = walk(&cases[0]).unwrap().map(Result::unwrap).collect();
        assert!(lazy.last().unwrap().path.ends_with("a.txt"), "{lazy:?}");
    }

    #[test]
    fn a_folder_that_cannot_be_read_ends_the_listing_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let gone = dir.path().join("deep");
        let mut w = walk(&input(vec![dir.path().into()], &["**/*"], &[])).unwrap();
        // the walk is lazy: a folder removed after it started is met later
        let first = w.next().unwrap().unwrap();
        assert!(first.path.ends_with("10.pdf"), "{first:?}");
        std::fs::remove_dir_all(&gone).unwrap();
        let rest: Vec<_> = w.by_ref().collect();
        assert!(
            matches!(rest.last(), Some(Err(ListError::Walk { .. }))),
            "{rest:?}"
        );
        assert!(w.next().is_none());
    }
}
