//! The done-set: the latest committed state of every (input, config hash),
//! in 32 bytes an entry.
//!
//! A journal holds one entry per input of the archive, so this is the part
//! of a run whose memory grows with the archive. Entries are fixed-size
//! [`Slot`]s, no strings: the document's 64-bit key, a 64-bit digest of the
//! file's size and mtime, the first 8 bytes of its content hash, the attempt
//! number, an interned config and the status. They live in a `Vec` sorted by
//! key (binary search; no per-entry allocation or hash-table slack) and a
//! small hash map of recent inserts, merged into the `Vec` in place once it
//! holds 1/16 of it (at least [`MIN_RECENT`]).

use std::collections::HashMap;

/// Inserts held unsorted before a merge, at the least. Entries.
pub const MIN_RECENT: usize = 4096;

/// One (document, config) entry. 32 bytes.
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

impl Slot {
    /// The file could not be read: `content` holds its size, not a hash.
    pub const UNREAD: u8 = 0b100;

    fn id(&self) -> (u64, u16) {
        (self.key, self.cfg)
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

/// The entries, by (key, config).
#[derive(Debug, Default)]
pub struct DoneSet {
    /// Sorted by (key, cfg); no two alike.
    base: Vec<Slot>,
    /// Inserts whose (key, cfg) is not in `base`.
    recent: HashMap<(u64, u16), Slot>,
}

impl DoneSet {
    pub fn get(&self, key: u64, cfg: u16) -> Option<&Slot> {
        if let Some(s) = self.recent.get(&(key, cfg)) {
            return Some(s);
        }
        self.base
            .binary_search_by_key(&(key, cfg), Slot::id)
            .ok()
            .and_then(|i| self.base.get(i))
    }

    /// Inserts `slot`, replacing the entry of its (key, cfg).
    pub fn put(&mut self, slot: Slot) {
        if let Ok(i) = self.base.binary_search_by_key(&slot.id(), Slot::id) {
            self.base[i] = slot;
            return;
        }
        self.recent.insert(slot.id(), slot);
        if self.recent.len() >= MIN_RECENT.max(self.base.len() / 16) {
            self.merge();
        }
    }

    /// Moves the recent inserts into `base`, keeping it sorted: grown once
    /// to its exact new length and merged from the back, in place.
    fn merge(&mut self) {
        let mut new: Vec<Slot> = self.recent.drain().map(|(_, s)| s).collect();
        self.recent.shrink_to(MIN_RECENT);
        new.sort_unstable_by_key(Slot::id);
        let old = self.base.len();
        self.base.reserve_exact(new.len());
        self.base.resize(old + new.len(), Slot::default());
        let (mut i, mut j) = (old, new.len());
        while j > 0 {
            let w = i + j - 1;
            if i > 0 && self.base[i - 1].id() > new[j - 1].id() {
                self.base[w] = self.base[i - 1];
                i -= 1;
            } else {
                self.base[w] = new[j - 1];
                j -= 1;
            }
        }
    }

    /// Entries under config `cfg`.
    pub fn count(&self, cfg: u16) -> usize {
        self.base.iter().filter(|s| s.cfg == cfg).count()
            + self.recent.values().filter(|s| s.cfg == cfg).count()
    }

    /// All entries.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.base.len() + self.recent.len()
    }

    /// Bytes held by the entries (capacity, not length).
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.base.capacity() * std::mem::size_of::<Slot>()
            + self.recent.capacity() * std::mem::size_of::<((u64, u16), Slot)>()
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
            ..Slot::default()
        }
    }

    /// A scrambled but repeatable sequence of keys.
    fn key(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
    }

    #[test]
    fn a_slot_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
    }

    #[test]
    fn latest_insert_wins_across_merges() {
        let mut d = DoneSet::default();
        let n = 3 * MIN_RECENT as u64 + 123;
        for i in 0..n {
            d.put(slot(key(i), (i % 2) as u16, 1));
        }
        assert_eq!(d.len() as u64, n);
        assert!(d.base.len() >= 2 * MIN_RECENT, "merged: {}", d.base.len());
        assert!(d.base.windows(2).all(|w| w[0].id() < w[1].id()));
        // overwrite every third, some in base and some recent
        for i in (0..n).step_by(3) {
            d.put(slot(key(i), (i % 2) as u16, 2));
        }
        assert_eq!(d.len() as u64, n);
        for i in 0..n {
            let want = if i % 3 == 0 { 2 } else { 1 };
            let s = d.get(key(i), (i % 2) as u16).unwrap();
            assert_eq!(s.attempt, want, "{i}");
            assert!(d.get(key(i), 1 - (i % 2) as u16).is_none(), "{i}");
        }
        assert_eq!(d.count(0) + d.count(1), n as usize);
        assert_eq!(d.count(0) as u64, n.div_ceil(2));
        assert!(d.get(key(n), 0).is_none());
    }

    #[test]
    fn memory_is_about_32_bytes_an_entry() {
        let mut d = DoneSet::default();
        let n = 200_000u64;
        for i in 0..n {
            d.put(slot(key(i), 0, 1));
        }
        let per = d.heap_bytes() as f64 / n as f64;
        // the sorted Vec (32 bytes) plus the recent map's capacity (under
        // 1/16 of the entries at 48 bytes, and hash-map slack)
        assert!(per < 40.0, "{per:.1} bytes an entry");
    }

    #[test]
    fn stat_digests_tell_stats_apart() {
        assert_ne!(stat_digest(10, 7), stat_digest(10, 8));
        assert_ne!(stat_digest(10, 7), stat_digest(11, 7));
        assert_eq!(stat_digest(10, 7), stat_digest(10, 7));
        assert_ne!(stat_digest(0, 0), 0);
    }
}
