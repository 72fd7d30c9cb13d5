//! [`Storage`] on the local file system.

use super::{CommitOrder, ListError, Log, ObjectMeta, Objects, ReadError, Storage};
use crate::config::InputConfig;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;
use std::time::SystemTime;

/// The local file system. Puts are renames; folders are fsynced on Unix.
#[derive(Clone, Copy, Debug, Default)]
pub struct Local;

impl Storage for Local {
    fn list(&self, input: &InputConfig) -> Result<Objects, ListError> {
        Ok(Box::new(super::walk(input)?))
    }

    fn stat(&self, path: &Path) -> io::Result<ObjectMeta> {
        Ok(meta_of(&fs::metadata(path)?))
    }

    fn read(&self, path: &Path, limit: u64) -> Result<(Vec<u8>, ObjectMeta), ReadError> {
        let meta = meta_of(&fs::metadata(path)?);
        if meta.size > limit {
            return Err(ReadError::TooLarge {
                size: meta.size,
                limit,
            });
        }
        Ok((fs::read(path)?, meta))
    }

    fn read_range(&self, path: &Path, range: Range<u64>) -> io::Result<Vec<u8>> {
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(range.start))?;
        let mut out = Vec::new();
        f.take(range.end.saturating_sub(range.start))
            .read_to_end(&mut out)?;
        Ok(out)
    }

    fn put_file(&self, tmp: &Path, to: &Path) -> io::Result<()> {
        fs::rename(tmp, to)
    }

    fn sync_folder(&self, dir: &Path) -> io::Result<()> {
        #[cfg(unix)]
        File::open(dir)?.sync_all()?;
        #[cfg(not(unix))]
        let _ = dir;
        Ok(())
    }

    fn read_log(&self, path: &Path) -> io::Result<Option<Box<dyn Read + Send>>> {
        match File::open(path) {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open_log(&self, path: &Path) -> io::Result<Box<dyn Log>> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Box::new(LocalLog(file)))
    }

    fn names(&self, dir: &Path) -> io::Result<Vec<String>> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in rd {
            if let Some(n) = e?.file_name().to_str() {
                out.push(n.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn remove_folder(&self, dir: &Path) -> io::Result<()> {
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn commit_order(&self) -> CommitOrder {
        CommitOrder::RecordThenPut
    }

    fn probe(&self, path: &Path) -> io::Result<()> {
        // The nearest folder that exists must be one we can write in.
        let mut p = path;
        while !p.exists() {
            match p.parent() {
                Some(q) if !q.as_os_str().is_empty() => p = q,
                _ => return Ok(()),
            }
        }
        if fs::metadata(p)?.permissions().readonly() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is read-only", p.display()),
            ));
        }
        Ok(())
    }
}

fn meta_of(m: &fs::Metadata) -> ObjectMeta {
    let mtime_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_nanos()).ok());
    ObjectMeta {
        size: m.len(),
        mtime_ns,
    }
}

/// A journal file opened for appending.
struct LocalLog(File);

impl Log for LocalLog {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)?;
        self.0.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)?;
        self.0.sync_all()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_whole_within_a_limit_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        fs::write(&p, b"0123456789").unwrap();
        let s = Local;
        assert_eq!(s.read(&p, 10).unwrap().0, b"0123456789");
        assert!(matches!(
            s.read(&p, 9),
            Err(ReadError::TooLarge { size: 10, limit: 9 })
        ));
        assert!(matches!(
            s.read(&dir.path().join("none"), 9),
            Err(ReadError::Io(_))
        ));
        assert_eq!(s.read_range(&p, 2..5).unwrap(), b"234");
        assert_eq!(s.read_range(&p, 8..20).unwrap(), b"89");
        assert_eq!(s.read_range(&p, 12..20).unwrap(), b"");
        let m = s.stat(&p).unwrap();
        assert_eq!(m.size, 10);
        assert!(m.mtime_ns.is_some_and(|t| t > 0));
    }

    #[test]
    fn journal_lines_append_read_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        assert!(Local.read_log(&p).unwrap().is_none());
        let mut log = Local.open_log(&p).unwrap();
        log.append(b"{\"a\":1}\n").unwrap();
        log.append(b"{\"b\":2}\n{\"c\"").unwrap();
        log.truncate(16).unwrap();
        log.append(b"{\"d\":4}\n").unwrap();
        let mut text = String::new();
        Local
            .read_log(&p)
            .unwrap()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n{\"d\":4}\n");
    }

    #[test]
    fn puts_replace_atomically_and_lists_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, to) = (dir.path().join(".x.tmp"), dir.path().join("x"));
        fs::write(&to, b"old").unwrap();
        fs::write(&tmp, b"new").unwrap();
        Local.put_file(&tmp, &to).unwrap();
        Local.sync_folder(dir.path()).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"new");
        assert!(!tmp.exists());
        let input = InputConfig {
            paths: vec![dir.path().to_path_buf()],
            include: vec!["*".into()],
            exclude: vec![],
        };
        let listed: Vec<_> = Local.list(&input).unwrap().map(Result::unwrap).collect();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].path.ends_with("x"));
    }
}
