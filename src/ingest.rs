//! Ingest: list the input, identify each file by its content, hash it.

pub use crate::storage::{walk, ListError, SourceFile, Walk};

use crate::config::{InputConfig, LimitsConfig};
use crate::storage::{ObjectMeta, ReadError};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// What a file holds, told from its first bytes (never its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pdf,
    Png,
    Jpeg,
    Tiff,
    Webp,
    Bmp,
    /// Empty file.
    Empty,
    /// Anything else.
    Unknown,
}

impl Kind {
    pub fn mime(self) -> &'static str {
        match self {
            Kind::Pdf => "application/pdf",
            Kind::Png => "image/png",
            Kind::Jpeg => "image/jpeg",
            Kind::Tiff => "image/tiff",
            Kind::Webp => "image/webp",
            Kind::Bmp => "image/bmp",
            Kind::Empty => "application/x-empty",
            Kind::Unknown => "application/octet-stream",
        }
    }
}

/// Identifies a file from its leading bytes. A PDF header may sit anywhere in
/// the first 1024 bytes, as readers accept (PDF 32000-1, annex H.3).
pub fn sniff(head: &[u8]) -> Kind {
    if head.is_empty() {
        return Kind::Empty;
    }
    let window = &head[..head.len().min(1024)];
    if window.windows(5).any(|w| w == b"%PDF-") {
        return Kind::Pdf;
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Kind::Png
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Kind::Jpeg
    } else if head.starts_with(b"II*\0")
        || head.starts_with(b"MM\0*")
        || head.starts_with(b"II+\0")
        || head.starts_with(b"MM\0+")
    {
        Kind::Tiff
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Kind::Webp
    } else if head.starts_with(b"BM") && head.len() >= 26 {
        Kind::Bmp
    } else {
        Kind::Unknown
    }
}

/// Lists every file of `input` into a `Vec`, in [`walk`]'s order. For small
/// inputs and tests; a run walks the listing lazily instead.
pub fn list(input: &InputConfig) -> Result<Vec<SourceFile>, ListError> {
    walk(input)?.collect()
}

/// A document read into memory, identified and hashed.
#[derive(Clone, Debug)]
pub struct DocRef {
    /// Stable id of this input: the first 16 hex digits of sha256(uri).
    pub id: String,
    pub uri: String,
    pub path: PathBuf,
    /// Hex sha256 of the content.
    pub sha256: String,
    pub bytes: u64,
    pub kind: Kind,
}

/// Why a file could not be ingested. Each becomes a `failed` row.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    #[error("file is {size} bytes, over the limit of {limit} bytes (limits.max_file_mb)")]
    TooLarge { size: u64, limit: u64 },
}

/// Reads a file (within the size limit), hashes it and tells its kind;
/// with the size and modification time of what was read (for the
/// journal), where known.
pub fn read(
    file: &SourceFile,
    limits: &LimitsConfig,
) -> (DocRef, Option<ObjectMeta>, Result<Vec<u8>, IngestError>) {
    let id = hex::encode(&Sha256::digest(file.uri.as_bytes())[..8]);
    let mut doc = DocRef {
        id,
        uri: file.uri.clone(),
        path: file.path.clone(),
        sha256: String::new(),
        bytes: 0,
        kind: Kind::Unknown,
    };
    let too_large = |mut doc: DocRef, size: u64| {
        doc.bytes = size;
        let err = IngestError::TooLarge {
            size,
            limit: limits.max_file_bytes,
        };
        let meta = ObjectMeta::of(&file.path);
        (doc, meta, Err(err))
    };
    // A size the listing gave is checked before any request.
    if let Some(m) = file.meta.filter(|m| m.size > limits.max_file_bytes) {
        return too_large(doc, m.size);
    }
    let storage = match crate::storage::for_path(&file.path) {
        Ok(s) => s,
        Err(e) => return (doc, None, Err(e.into())),
    };
    match storage.read(&file.path, limits.max_file_bytes) {
        Ok((data, meta)) => {
            doc.bytes = data.len() as u64;
            doc.sha256 = hex::encode(Sha256::digest(&data));
            doc.kind = sniff(&data);
            // What the listing said is what the next listing is compared
            // with (object stores list modification times in finer units
            // than a read reports them).
            (doc, Some(file.meta.unwrap_or(meta)), Ok(data))
        }
        Err(ReadError::TooLarge { size, .. }) => too_large(doc, size),
        Err(ReadError::Io(e)) => (doc, None, Err(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        struct Case {
            head: &'static [u8],
            want: Kind,
        }
        for c in [
            Case {
                head: b"%PDF-1.7\n",
                want: Kind::Pdf,
            },
            Case {
                head: b"garbage before\n%PDF-1.4",
                want: Kind::Pdf,
            },
            Case {
                head: b"\x89PNG\r\n\x1a\n....",
                want: Kind::Png,
            },
            Case {
                head: &[0xFF, 0xD8, 0xFF, 0xE0],
                want: Kind::Jpeg,
            },
            Case {
                head: b"II*\0\x08\0\0\0",
                want: Kind::Tiff,
            },
            Case {
                head: b"MM\0*\0\0\0\x08",
                want: Kind::Tiff,
            },
            Case {
                head: b"RIFF\x10\0\0\0WEBPVP8 ",
                want: Kind::Webp,
            },
            Case {
                head: b"BM\x36\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0\x01\0\0\0\x01\0\0\0\x01\0",
                want: Kind::Bmp,
            },
            Case {
                head: b"",
                want: Kind::Empty,
            },
            Case {
                head: b"hello, not a document",
                want: Kind::Unknown,
            },
            Case {
                head: b"BM",
                want: Kind::Unknown,
            },
        ] {
            assert_eq!(sniff(c.head), c.want, "{:?}", c.head);
        }
    }

    #[test]
    fn lists_with_globs_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.pdf", "a.png", "sub/c.pdf", "sub/skip.pdf", "x.txt"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
        }
        let input = InputConfig {
            paths: vec![dir.path().to_path_buf()],
            include: vec!["**/*.pdf".into(), "*.png".into()],
            exclude: vec!["**/skip*".into()],
        };
        let files = list(&input).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(dir.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, vec!["a.png", "b.pdf", "sub/c.pdf"]);
        assert!(files[0].uri.starts_with("file:///"));
    }

    #[test]
    fn missing_input_is_an_error() {
        let input = InputConfig {
            paths: vec![PathBuf::from("/definitely/not/here")],
            include: vec!["**/*".into()],
            exclude: vec![],
        };
        assert!(matches!(list(&input), Err(ListError::Missing(_))));
    }
}
