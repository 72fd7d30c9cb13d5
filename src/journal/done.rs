//! The done-set: the latest committed state of every (input, config hash),
//! kept on disk so that a run's memory does not grow with the archive.
//!
//! Entries are fixed-size [`Slot`]s of 32 bytes, no strings: the document's
//! 64-bit key, a 64-bit digest of the file's size and mtime, the first 8
//! bytes of its content hash, the attempt number, an interned config and the
//! status. New entries gather in a small map ([`SPILL`] entries, about
//! 0.5 MiB); a full map is written out as a sorted *run* to an unlinked
//! temporary file in the journal's folder, and runs of similar length are
//! merged (so there are about log2(entries / SPILL) of them; after the
//! journal is replayed they are merged into one). A lookup checks the map,
//! then each run, newest first: an in-memory fence (every [`BLOCK`]th key,
//! a quarter byte an entry) picks the one 2 KiB block to read. The files are
//! a cache of the journal, rebuilt from it at every open; the page cache,
//! not the process, holds them.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Entries gathered in memory before they are written out as a run.
pub const SPILL: usize = 8192;
/// Entries a fence covers: one 2 KiB read a lookup a run.
pub const BLOCK: usize = 64;
const SLOT_BYTES: usize = 32;

/// One (document, config) entry: 32 bytes in memory and on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// The document's key ([`super::doc_key`]).
    pub key: u64,
    /// [`stat_digest`] of the size and mtime seen before the file was read;
    /// 0 when no mtime was recorded (the file is then never skipped unread).
    pub stat: u64,
    /// The first 8 bytes of the content's SHA-256 (big-endian), or, with
    /// [`Slot::UNREAD`] set, the file's size in bytes.
    pub content: u64,
    pub attempt: u32,
    /// Index of the config hash in the state's interned list.
    pub cfg: u16,
    /// Status in the low two bits (see [`super::Status`]), plus
    /// [`Slot::UNREAD`].
    pub flags: u8,
}

type Id = (u64, u16);

impl Slot {
    /// The file could not be read: `content` holds its size, not a hash.
    pub const UNREAD: u8 = 0b100;

    fn id(&self) -> Id {
        (self.key, self.cfg)
    }

    fn encode(&self) -> [u8; SLOT_BYTES] {
        let mut b = [0u8; SLOT_BYTES];
        b[0..8].copy_from_slice(&self.key.to_le_bytes());
        b[8..16].copy_from_slice(&self.stat.to_le_bytes());
        b[16..24].copy_from_slice(&self.content.to_le_bytes());
        b[24..28].copy_from_slice(&self.attempt.to_le_bytes());
        b[28..30].copy_from_slice(&self.cfg.to_le_bytes());
        b[30] = self.flags;
        b
    }

    fn decode(b: &[u8]) -> Slot {
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        Slot {
            key: u64_at(0),
            stat: u64_at(8),
            content: u64_at(16),
            attempt: u32::from_le_bytes([b[24], b[25], b[26], b[27]]),
            cfg: u16::from_le_bytes([b[28], b[29]]),
            flags: b[30],
        }
    }
}

/// A 64-bit digest of a file's size (bytes) and mtime (ns since the epoch),
/// never 0. Two stats with equal digests are taken as the same stat (a
/// chance of 2^-64 that a changed file is skipped unread).
pub fn stat_digest(size: u64, mtime_ns: i64) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(size.to_le_bytes());
    h.update(mtime_ns.to_le_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b).max(1)
}

/// A sorted run of slots, no two with one id, in a temporary file.
struct Run {
    file: File,
    /// Slots in the file.
    len: usize,
    /// Id of every `BLOCK`th slot.
    fences: Vec<Id>,
    /// Where the file could not be unlinked while open: removed on drop.
    path: Option<PathBuf>,
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Run {
    /// Writes `slots` (sorted by id, unique) to a new temporary file in `dir`.
    fn write(dir: &Path, slots: impl Iterator<Item = io::Result<Slot>>) -> io::Result<Run> {
        let path = dir.join(format!(
            ".done-{}-{}.run",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        // Unlinked while open (Unix): nothing is left behind by a crash.
        let path = std::fs::remove_file(&path).err().map(|_| path);
        let mut w = BufWriter::with_capacity(64 * 1024, &file);
        let mut fences = Vec::new();
        let mut len = 0usize;
        for s in slots {
            let s = s?;
            if len % BLOCK == 0 {
                fences.push(s.id());
            }
            w.write_all(&s.encode())?;
            len += 1;
        }
        w.flush()?;
        drop(w);
        Ok(Run {
            file,
            len,
            fences,
            path,
        })
    }

    fn get(&self, id: Id) -> io::Result<Option<Slot>> {
        let block = match self.fences.binary_search(&id) {
            Ok(i) => i,
            Err(0) => return Ok(None),
            Err(i) => i - 1,
        };
        let start = block * BLOCK;
        let n = BLOCK.min(self.len - start);
        let mut buf = [0u8; BLOCK * SLOT_BYTES];
        let buf = &mut buf[..n * SLOT_BYTES];
        let mut f = &self.file;
        f.seek(SeekFrom::Start((start * SLOT_BYTES) as u64))?;
        f.read_exact(buf)?;
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let s = Slot::decode(&buf[mid * SLOT_BYTES..(mid + 1) * SLOT_BYTES]);
            match s.id().cmp(&id) {
                std::cmp::Ordering::Equal => return Ok(Some(s)),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(None)
    }

    /// The run's slots in order, read in 64 KiB chunks.
    fn iter(&self) -> impl Iterator<Item = io::Result<Slot>> + '_ {
        let mut buf = Vec::new();
        let mut at = 0usize;
        let mut next = 0usize;
        std::iter::from_fn(move || {
            if next >= self.len {
                return None;
            }
            if next == at {
                let n = (64 * 1024 / SLOT_BYTES).min(self.len - at);
                buf.resize(n * SLOT_BYTES, 0);
                let mut f = &self.file;
                let read = f
                    .seek(SeekFrom::Start((at * SLOT_BYTES) as u64))
                    .and_then(|_| f.read_exact(&mut buf));
                if let Err(e) = read {
                    next = self.len;
                    return Some(Err(e));
                }
                at += n;
            }
            let i = next - (at - buf.len() / SLOT_BYTES);
            next += 1;
            Some(Ok(Slot::decode(&buf[i * SLOT_BYTES..(i + 1) * SLOT_BYTES])))
        })
    }
}

type Slots<'a> = Box<dyn Iterator<Item = io::Result<Slot>> + 'a>;

/// Every run, oldest first, and then the `recent` entries (sorted by id),
/// merged: the newest slot of each id.
fn merge_all<'a>(
    runs: &'a [Run],
    recent: Vec<Slot>,
) -> impl Iterator<Item = io::Result<Slot>> + 'a {
    let mut sources: Vec<Slots<'a>> = runs
        .iter()
        .map(|r| Box::new(r.iter()) as Slots<'a>)
        .collect();
    sources.push(Box::new(recent.into_iter().map(Ok)));
    merge(sources)
}

/// Merges sorted `sources`, oldest first: of slots with one id, the newest
/// source's is kept.
fn merge<'a>(sources: Vec<Slots<'a>>) -> impl Iterator<Item = io::Result<Slot>> + 'a {
    let mut sources: Vec<std::iter::Peekable<Slots<'a>>> =
        sources.into_iter().map(Iterator::peekable).collect();
    std::iter::from_fn(move || {
        let mut min: Option<Id> = None;
        for s in sources.iter_mut() {
            match s.peek() {
                Some(Ok(slot)) if min.is_none_or(|m| slot.id() < m) => min = Some(slot.id()),
                Some(Err(_)) => return s.next(),
                _ => {}
            }
        }
        let min = min?;
        let mut out = None;
        for s in sources.iter_mut() {
            if let Some(Ok(slot)) = s.peek() {
                if slot.id() == min {
                    out = s.next();
                }
            }
        }
        out
    })
}

/// The entries, by (key, config). See the module docs.
pub struct DoneSet {
    /// Where runs are written.
    dir: PathBuf,
    /// Oldest first.
    runs: Vec<Run>,
    recent: HashMap<Id, Slot>,
}

impl Default for DoneSet {
    /// Runs go to the system's temporary folder.
    fn default() -> Self {
        Self::new(std::env::temp_dir())
    }
}

impl DoneSet {
    /// An empty set whose runs are written to `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            runs: Vec::new(),
            recent: HashMap::new(),
        }
    }

    pub fn get(&self, key: u64, cfg: u16) -> io::Result<Option<Slot>> {
        let id = (key, cfg);
        if let Some(s) = self.recent.get(&id) {
            return Ok(Some(*s));
        }
        for r in self.runs.iter().rev() {
            if let Some(s) = r.get(id)? {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// Inserts `slot`, replacing the entry of its (key, cfg).
    pub fn put(&mut self, slot: Slot) -> io::Result<()> {
        self.recent.insert(slot.id(), slot);
        if self.recent.len() >= SPILL {
            self.spill()?;
        }
        Ok(())
    }

    fn recent_sorted(&mut self) -> Vec<Slot> {
        let mut v: Vec<Slot> = self.recent.drain().map(|(_, s)| s).collect();
        self.recent.shrink_to(SPILL);
        v.sort_unstable_by_key(Slot::id);
        v
    }

    /// Writes the recent entries out as a run, then merges the newest runs
    /// while the older of the two is at most twice the newer's length.
    fn spill(&mut self) -> io::Result<()> {
        let recent = self.recent_sorted();
        let run = Run::write(&self.dir, recent.into_iter().map(Ok))?;
        self.runs.push(run);
        while let [.., a, b] = self.runs.as_slice() {
            if a.len > 2 * b.len {
                break;
            }
            let merged = Run::write(
                &self.dir,
                merge(vec![Box::new(a.iter()), Box::new(b.iter())]),
            )?;
            self.runs.truncate(self.runs.len() - 2);
            self.runs.push(merged);
        }
        Ok(())
    }

    /// Merges every run and the recent entries into one run (after the
    /// journal is replayed: a lookup then reads one block).
    pub fn compact(&mut self) -> io::Result<()> {
        if self.recent.is_empty() && self.runs.len() <= 1 {
            return Ok(());
        }
        let recent = self.recent_sorted();
        let merged = Run::write(&self.dir, merge_all(&self.runs, recent))?;
        self.runs = vec![merged];
        Ok(())
    }

    /// Entries under config `cfg` (a pass over every run).
    pub fn count(&self, cfg: u16) -> io::Result<usize> {
        let mut recent: Vec<Slot> = self.recent.values().copied().collect();
        recent.sort_unstable_by_key(Slot::id);
        let mut n = 0;
        for s in merge_all(&self.runs, recent) {
            if s?.cfg == cfg {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Runs on disk.
    #[cfg(test)]
    fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Bytes held in memory (capacities, not lengths).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.runs
            .iter()
            .map(|r| r.fences.capacity() * std::mem::size_of::<Id>())
            .sum::<usize>()
            + self.recent.capacity() * std::mem::size_of::<(Id, Slot)>()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn slot(key: u64, cfg: u16, attempt: u32) -> Slot {
        Slot {
            key,
            cfg,
            attempt,
            stat: key ^ 1,
            content: key.rotate_left(7),
            flags: (key % 7) as u8,
        }
    }

    /// A scrambled but repeatable sequence of keys.
    fn key(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
    }

    #[test]
    fn slots_round_trip() {
        assert_eq!(std::mem::size_of::<Slot>(), SLOT_BYTES);
        let s = Slot {
            key: u64::MAX - 3,
            stat: 1 << 60,
            content: 12345,
            attempt: 70_000,
            cfg: 513,
            flags: 0b110,
        };
        assert_eq!(Slot::decode(&s.encode()), s);
    }

    #[test]
    fn latest_insert_wins_across_spills_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = DoneSet::new(dir.path().to_path_buf());
        let n = 5 * SPILL as u64 + 123;
        for i in 0..n {
            d.put(slot(key(i), (i % 2) as u16, 1)).unwrap();
        }
        assert!(d.runs() >= 1 && d.runs() <= 3, "{} runs", d.runs());
        // overwrite every third: some on disk, some recent
        for i in (0..n).step_by(3) {
            d.put(slot(key(i), (i % 2) as u16, 2)).unwrap();
        }
        let check = |d: &DoneSet| {
            for i in 0..n {
                let want = if i % 3 == 0 { 2 } else { 1 };
                let s = d.get(key(i), (i % 2) as u16).unwrap().unwrap();
                assert_eq!(s, slot(key(i), (i % 2) as u16, want), "{i}");
                assert!(d.get(key(i), 1 - (i % 2) as u16).unwrap().is_none(), "{i}");
            }
            assert!(d.get(key(n), 0).unwrap().is_none());
            // before the first key and after the last
            assert!(d.get(1, 1).unwrap().is_none() && d.get(u64::MAX, 1).unwrap().is_none());
            assert_eq!(d.count(0).unwrap() as u64, n.div_ceil(2));
            assert_eq!(d.count(1).unwrap() as u64, n / 2);
        };
        check(&d);
        d.compact().unwrap();
        assert_eq!(d.runs(), 1);
        check(&d);
        // the runs' files are unlinked: nothing is left in the folder
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn memory_stays_flat_as_entries_grow() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = DoneSet::new(dir.path().to_path_buf());
        let mut held = Vec::new();
        for n in [20_000u64, 200_000] {
            for i in 0..n {
                d.put(slot(key(i), 0, 1)).unwrap();
            }
            d.compact().unwrap();
            held.push(d.heap_bytes());
        }
        // 10 times the entries: the fences grow (16 bytes per 64 entries),
        // the rest does not
        let grown = held[1] as f64 - held[0] as f64;
        assert!(grown < 200_000.0 * 0.5, "{held:?}");
    }

    #[test]
    fn stat_digests_tell_stats_apart() {
        assert_ne!(stat_digest(10, 7), stat_digest(10, 8));
        assert_ne!(stat_digest(10, 7), stat_digest(11, 7));
        assert_eq!(stat_digest(10, 7), stat_digest(10, 7));
        assert_ne!(stat_digest(0, 0), 0);
    }
}
