//! Storage URLs: `s3://bucket/prefix`, `gs://bucket/prefix`,
//! `az://container/prefix` name object storage; `file:///abs/path` and
//! plain paths name the local file system. Paths inside docpipe stay
//! `Path`s: an object's `Path` is its URL (`s3://bucket/a/b.pdf`), so
//! `join` and `parent` work on it as on a local path.

use std::fmt;
use std::path::{Path, PathBuf};

/// An object store docpipe can reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Amazon S3 and S3-compatible servers (MinIO, Ceph, R2, s3s-fs…).
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::Gcs => "gs",
            Scheme::Azure => "az",
        }
    }
}

/// A parsed object storage URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreUrl {
    pub scheme: Scheme,
    /// Bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// The object key or prefix under the bucket, without leading or
    /// trailing `/`; empty for the bucket's root.
    pub key: String,
}

impl StoreUrl {
    /// The URL of the bucket: `s3://bucket`.
    pub fn root(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.bucket)
    }

    /// As a `Path`, the form docpipe passes object locations around in.
    pub fn to_path(&self) -> PathBuf {
        if self.key.is_empty() {
            PathBuf::from(self.root())
        } else {
            PathBuf::from(format!("{}/{}", self.root(), self.key))
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_path().display())
    }
}

/// What a path or URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Local(PathBuf),
    Object(StoreUrl),
}

/// Whether `s` is written as a URL (`scheme://…`), well formed or not.
pub fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
    })
}

/// Whether `path` holds an object storage URL (see [`parse`]).
pub fn is_remote(path: &Path) -> bool {
    matches!(path.to_str().map(parse), Some(Ok(Target::Object(_))))
}

/// Reads a path or URL. Plain paths and `file://` URLs are local; `s3://`,
/// `gs://` and `az://` name object storage; any other scheme, or a bucket
/// name object storage would refuse, is an error that says why.
pub fn parse(s: &str) -> Result<Target, String> {
    if !is_url(s) {
        return Ok(Target::Local(PathBuf::from(s)));
    }
    let (scheme, rest) = s.split_once("://").unwrap_or((s, ""));
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "file" => {
            if !rest.starts_with('/') {
                return Err(format!(
                    "{s:?}: a file:// URL needs an absolute path (file:///data/archive)"
                ));
            }
            return Ok(Target::Local(PathBuf::from(rest)));
        }
        "s3" | "s3a" => Scheme::S3,
        "gs" | "gcs" => Scheme::Gcs,
        "az" | "azure" | "abfs" => Scheme::Azure,
        other => {
            return Err(format!(
            "{s:?}: unknown storage scheme `{other}://` (expected s3://, gs://, az:// or file://)"
        ))
        }
    };
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    check_bucket(scheme, bucket).map_err(|why| format!("{s:?}: {why}"))?;
    let key = key.trim_matches('/');
    if key
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        && !key.is_empty()
    {
        return Err(format!(
            "{s:?}: an object key may not hold empty, `.` or `..` segments"
        ));
    }
    Ok(Target::Object(StoreUrl {
        scheme,
        bucket: bucket.to_string(),
        key: key.to_string(),
    }))
}

/// Bucket and container names as the clouds take them: 3 to 63 lower-case
/// letters, digits, `-` and `.` (GCS also `_`), starting and ending with a
/// letter or digit.
fn check_bucket(scheme: Scheme, bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("no bucket name after the scheme".into());
    }
    let ok_char = |c: char| {
        c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || c == '-'
            || (c == '.' && scheme != Scheme::Azure)
            || (c == '_' && scheme == Scheme::Gcs)
    };
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&bucket.len())
        || !bucket.chars().all(ok_char)
        || !ends_ok(bucket.chars().next())
        || !ends_ok(bucket.chars().last())
    {
        return Err(format!(
            "bad {} name {bucket:?} (3 to 63 lower-case letters, digits, `-`{}; starting and ending with a letter or digit)",
            if scheme == Scheme::Azure { "container" } else { "bucket" },
            if scheme == Scheme::Azure { "" } else { " and `.`" }
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_and_paths() {
        let obj = |s: &str| match parse(s).unwrap() {
            Target::Object(u) => u,
            Target::Local(p) => panic!("{s} read as local {p:?}"),
        };
        let u = obj("s3://my-bucket/archive/2024/");
        assert_eq!(
            (u.scheme, u.bucket.as_str(), u.key.as_str()),
            (Scheme::S3, "my-bucket", "archive/2024")
        );
        assert_eq!(u.to_path(), PathBuf::from("s3://my-bucket/archive/2024"));
        assert_eq!(
            u.to_path().join("x.pdf"),
            PathBuf::from("s3://my-bucket/archive/2024/x.pdf")
        );
        assert_eq!(obj("gs://b_1.x/k").scheme, Scheme::Gcs);
        assert_eq!(obj("az://container").key, "");
        assert_eq!(
            parse("file:///data/in").unwrap(),
            Target::Local("/data/in".into())
        );
        assert_eq!(parse("../in").unwrap(), Target::Local("../in".into()));
        assert_eq!(parse("C:\\x").unwrap(), Target::Local("C:\\x".into()));
        for bad in [
            "s3://",
            "s3://ab/x",
            "s3://Upper/x",
            "s3://-dash/x",
            "s3://b..c/x/../y",
            "az://has.dot/x",
            "ftp://host/x",
            "file://relative",
            "s3://bucket/a//b",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        assert!(is_remote(Path::new("s3://bucket/a")));
        assert!(!is_remote(Path::new("/s3/bucket")));
    }
}
