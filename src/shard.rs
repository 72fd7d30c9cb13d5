//! Shards: one run split into N independent runs over one output, with no
//! coordinator. Shard K of N owns the inputs whose stable key (the path
//! relative to the input folder it was listed under, or the object key
//! under the listed prefix) hashes to K mod N, so adding files later never
//! moves an existing file to another shard, and N shards together read
//! every input exactly once.
//!
//! Each shard has its own journal and names its part files after itself
//! (see [`Shard::journal_name`], [`Shard::part_prefix`]), so shards never
//! contend for a lock and each resumes (and retries its failures) alone.

use sha2::{Digest, Sha256};
use std::fmt;

/// Shard `index` of `count` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// The most shards one output can be split into.
pub const MAX_SHARDS: u32 = 100_000;

/// Why a shard could not be worked out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    #[error("--shard {0:?}: expected K/N (0 <= K < N), `auto` or `auto/N`")]
    Syntax(String),
    #[error("--shard {spec}: K must be below N and N between 1 and {MAX_SHARDS}")]
    Range { spec: String },
    #[error("--shard auto: no shard index in the environment (SLURM_ARRAY_TASK_ID, or JOB_COMPLETION_INDEX on a Kubernetes Indexed Job)")]
    NoIndex,
    #[error("--shard auto: no shard count in the environment: under Slurm SLURM_ARRAY_TASK_COUNT is set by `sbatch --array`; elsewhere pass --shard auto/N or set DOCPIPE_SHARDS")]
    NoCount,
    #[error("--shard auto: {name}={value:?} is not a number")]
    BadEnv { name: &'static str, value: String },
    #[error(
        "--shard auto: index {index} from the environment is not below the shard count {count}"
    )]
    OutOfRange { index: u32, count: u32 },
}

impl Shard {
    /// The whole input as one shard (a run without `--shard`).
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Reads `--shard SPEC`: `K/N`, `auto` or `auto/N`. `auto` takes the
    /// index from `SLURM_ARRAY_TASK_ID` or `JOB_COMPLETION_INDEX`
    /// (Kubernetes Indexed Jobs), and the count from `auto/N`, else
    /// `DOCPIPE_SHARDS`, else `SLURM_ARRAY_TASK_COUNT`. With the array's
    /// own count the index is the task id less `SLURM_ARRAY_TASK_MIN`
    /// (`--array=1-8` is shards 0..7); with a count given, the task id is
    /// the shard (`DOCPIPE_SHARDS=64 sbatch --array=5,17` reruns two).
    /// `env` stands in for `std::env::var`.
    pub fn parse(spec: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ShardError> {
        let spec = spec.trim();
        let (k, n) = spec
            .split_once('/')
            .map_or((spec, None), |(k, n)| (k, Some(n)));
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| ShardError::Syntax(spec.to_string()))
        };
        let count = n.map(num).transpose()?;
        if k.trim() != "auto" {
            let (index, count) = (num(k)?, count.ok_or(ShardError::Syntax(spec.into()))?);
            return Self::checked(index, count, spec);
        }
        let var = |name: &'static str| -> Result<Option<u32>, ShardError> {
            match env(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u32>()
                    .map(Some)
                    .map_err(|_| ShardError::BadEnv { name, value: v }),
            }
        };
        // The count given (auto/N, DOCPIPE_SHARDS) makes a task id the
        // shard itself (`--array=5,17` reruns shards 5 and 17); a count
        // from the array makes the array the shards (`--array=1-8` is
        // shards 0 to 7).
        let given = match count {
            Some(c) => Some(c),
            None => var("DOCPIPE_SHARDS")?,
        };
        let (index, count) = match (var("SLURM_ARRAY_TASK_ID")?, given) {
            (Some(id), Some(c)) => (id, c),
            (Some(id), None) => (
                id.saturating_sub(var("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0)),
                var("SLURM_ARRAY_TASK_COUNT")?.ok_or(ShardError::NoCount)?,
            ),
            (None, c) => (
                var("JOB_COMPLETION_INDEX")?.ok_or(ShardError::NoIndex)?,
                c.ok_or(ShardError::NoCount)?,
            ),
        };
        if index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Self::checked(index, count, spec)
    }

    fn checked(index: u32, count: u32, spec: &str) -> Result<Self, ShardError> {
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(ShardError::Range { spec: spec.into() });
        }
        Ok(Self { index, count })
    }

    /// Whether this is the whole input (no sharding).
    pub fn is_all(&self) -> bool {
        self.count == 1
    }

    /// Whether the input with stable key `key` is this shard's.
    pub fn owns(&self, key: &str) -> bool {
        self.count <= 1 || bucket(key) % u64::from(self.count) == u64::from(self.index)
    }

    /// Its name in file names: `shard-K-of-N`.
    pub fn name(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }

    /// The name of its journal under `_journal/`: `journal` for the whole
    /// input (the name docpipe has always used), `shard-K-of-N` otherwise.
    pub fn journal_name(&self) -> String {
        if self.is_all() {
            "journal".into()
        } else {
            self.name()
        }
    }

    /// The prefix of the part files a run of this shard writes: the run id,
    /// after `shard-K-of-N-` for a shard.
    pub fn part_prefix(&self, run: &str) -> String {
        if self.is_all() {
            run.to_string()
        } else {
            format!("{}-{run}", self.name())
        }
    }

    /// The shard named at the start of a part prefix (`shard-3-of-8-…`),
    /// if any.
    pub fn of_part_prefix(prefix: &str) -> Option<Shard> {
        let rest = prefix.strip_prefix("shard-")?;
        let (k, rest) = rest.split_once("-of-")?;
        let (n, _) = rest.split_once('-')?;
        Some(Shard {
            index: k.parse().ok()?,
            count: n.parse().ok()?,
        })
    }

    /// The shard a journal name stands for (see [`journal_name`](Self::journal_name)).
    pub fn of_journal_name(name: &str) -> Option<Shard> {
        if name == "journal" {
            return Some(Shard::ALL);
        }
        let rest = name.strip_prefix("shard-")?;
        let (k, n) = rest.split_once("-of-")?;
        let s = Shard {
            index: k.parse().ok()?,
            count: n.parse().ok()?,
        };
        (s.index < s.count && s.count <= MAX_SHARDS).then_some(s)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The 64-bit bucket of a stable key: the first 8 bytes of its SHA-256,
/// big-endian. Fixed for good: changing it would move files between shards
/// of runs already under way.
pub fn bucket(key: &str) -> u64 {
    let d = Sha256::digest(key.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn specs_parse_from_flags_and_engines() {
        struct Case {
            spec: &'static str,
            env: &'static [(&'static str, &'static str)],
            want: Result<(u32, u32), ()>,
        }
        let cases = [
            Case {
                spec: "2/5",
                env: &[],
                want: Ok((2, 5)),
            },
            Case {
                spec: " 0/1 ",
                env: &[],
                want: Ok((0, 1)),
            },
            Case {
                spec: "5/5",
                env: &[],
                want: Err(()),
            },
            Case {
                spec: "1/0",
                env: &[],
                want: Err(()),
            },
            Case {
                spec: "1",
                env: &[],
                want: Err(()),
            },
            Case {
                spec: "a/b",
                env: &[],
                want: Err(()),
            },
            // Slurm: --array=0-3 sets ID and COUNT
            Case {
                spec: "auto",
                env: &[
                    ("SLURM_ARRAY_TASK_ID", "3"),
                    ("SLURM_ARRAY_TASK_COUNT", "4"),
                ],
                want: Ok((3, 4)),
            },
            // --array=1-4: MIN is subtracted
            Case {
                spec: "auto",
                env: &[
                    ("SLURM_ARRAY_TASK_ID", "4"),
                    ("SLURM_ARRAY_TASK_MIN", "1"),
                    ("SLURM_ARRAY_TASK_COUNT", "4"),
                ],
                want: Ok((3, 4)),
            },
            // Kubernetes Indexed Job: the count is passed
            Case {
                spec: "auto/3",
                env: &[("JOB_COMPLETION_INDEX", "1")],
                want: Ok((1, 3)),
            },
            Case {
                spec: "auto",
                env: &[("JOB_COMPLETION_INDEX", "2"), ("DOCPIPE_SHARDS", "3")],
                want: Ok((2, 3)),
            },
            Case {
                spec: "auto",
                env: &[("JOB_COMPLETION_INDEX", "2")],
                want: Err(()),
            },
            // A count given: the task id is the shard, MIN or not.
            Case {
                spec: "auto",
                env: &[
                    ("SLURM_ARRAY_TASK_ID", "17"),
                    ("SLURM_ARRAY_TASK_MIN", "5"),
                    ("SLURM_ARRAY_TASK_COUNT", "2"),
                    ("DOCPIPE_SHARDS", "64"),
                ],
                want: Ok((17, 64)),
            },
            Case {
                spec: "auto",
                env: &[("DOCPIPE_SHARDS", "3")],
                want: Err(()),
            },
            Case {
                spec: "auto/2",
                env: &[("JOB_COMPLETION_INDEX", "2")],
                want: Err(()),
            },
            Case {
                spec: "auto/2",
                env: &[("JOB_COMPLETION_INDEX", "x")],
                want: Err(()),
            },
        ];
        for c in &cases {
            let got = Shard::parse(c.spec, env(c.env))
                .map(|s| (s.index, s.count))
                .map_err(|_| ());
            assert_eq!(got, c.want, "{:?} {:?}", c.spec, c.env);
        }
    }

    #[test]
    fn every_key_has_exactly_one_shard_and_keeps_it() {
        let keys: Vec<String> = (0..3000)
            .map(|i| format!("box {}/scan-{i}.pdf", i % 7))
            .collect();
        for n in [1u32, 2, 3, 8] {
            let mut per = vec![0usize; n as usize];
            for k in &keys {
                let owners: Vec<u32> = (0..n)
                    .filter(|&i| Shard { index: i, count: n }.owns(k))
                    .collect();
                assert_eq!(owners.len(), 1, "{k} under {n} shards");
                per[owners[0] as usize] += 1;
            }
            // spread about evenly
            let even = keys.len() / n as usize;
            assert!(per.iter().all(|&c| c > even * 8 / 10), "{per:?}");
        }
        // the assignment is fixed: a known key's bucket never changes
        assert_eq!(bucket("a.pdf") % 3, bucket("a.pdf") % 3);
        assert_eq!(bucket(""), 0xe3b0_c442_98fc_1c14);
    }

    #[test]
    fn names_round_trip() {
        let s = Shard { index: 3, count: 8 };
        assert_eq!(s.name(), "shard-3-of-8");
        assert_eq!(s.journal_name(), "shard-3-of-8");
        assert_eq!(Shard::of_journal_name("shard-3-of-8"), Some(s));
        assert_eq!(Shard::of_journal_name("journal"), Some(Shard::ALL));
        assert_eq!(Shard::of_journal_name("shard-8-of-8"), None);
        assert_eq!(s.part_prefix("123-ab"), "shard-3-of-8-123-ab");
        assert_eq!(Shard::of_part_prefix("shard-3-of-8-123-ab"), Some(s));
        assert_eq!(Shard::of_part_prefix("123-ab"), None);
        assert_eq!(Shard::ALL.part_prefix("r1"), "r1");
        assert_eq!(Shard::ALL.journal_name(), "journal");
    }
}
