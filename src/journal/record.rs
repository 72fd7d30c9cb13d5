//! The journal's records (one JSON object per line) and the reading of the
//! journal file, including the repair of a last line torn by a crash.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read};

/// One line of `_journal/journal.jsonl`. The `type` field comes first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// A run started writing to this output.
    Run {
        run: String,
        pipeline: String,
        config: String,
        retry_failed: bool,
        /// Microseconds since the Unix epoch, UTC.
        at_us: i64,
        version: String,
        /// The shard this run is (`K/N`); absent for a whole run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<String>,
        /// Files of the listing this run's shard owns, and of those the
        /// ones it set out to read (not done before): what `docpipe
        /// status` counts its progress and ETA against. Absent where the
        /// run did not count them (`--retry-failed` counts the retried).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inputs: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        todo: Option<u64>,
    },
    /// A part was sealed and is committed: its documents are done. Written
    /// (and fsynced) after the part's files are fsynced under their `.tmp`
    /// names and before they are renamed into place.
    Part {
        run: String,
        /// File stem shared by the part's files, `part-<run>-<NNNNN>`.
        part: String,
        /// Table folders that hold a file of this part.
        tables: Vec<String>,
        at_us: i64,
        docs: Vec<DocEntry>,
    },
    /// A run ended normally (`drained`: it was stopped by a signal and
    /// finished the documents in flight). Not written after `kill -9`.
    End {
        run: String,
        drained: bool,
        /// Documents this run committed.
        documents: u64,
        at_us: i64,
    },
    /// A committed part was found incomplete at start-up (a file of it was
    /// missing); its remaining files were removed and its documents are not
    /// done any more.
    Lost {
        part: String,
        reason: String,
        at_us: i64,
    },
}

/// One document of a committed part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocEntry {
    pub doc_id: String,
    pub uri: String,
    /// The local path the input was read from (what `--retry-failed` reads).
    pub path: String,
    /// Content hash, lower-case hex; empty when the file could not be read.
    pub sha256: String,
    /// Pipeline config hash.
    pub config: String,
    /// `ok`, `partial` or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    /// Attempt number for this input under this config, from 1.
    pub attempt: u32,
    /// File size in bytes and modification time (ns since the epoch) seen
    /// just before the file was read: a later run that sees the same values
    /// skips the file without reading it.
    pub size: u64,
    #[serde(default)]
    pub mtime_ns: Option<i64>,
    /// Pages of the document (0 when unknown or unread).
    #[serde(default)]
    pub pages: u32,
}

/// What [`read_records`] found besides the records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadInfo {
    /// Bytes of the file up to and including the last good line. Anything
    /// after it is a torn last record (a crash during an append) to be cut.
    pub good_len: u64,
    /// The file's length.
    pub file_len: u64,
    /// The last line is a whole record that lacks its newline.
    pub missing_newline: bool,
    /// 1-based numbers of lines in the middle that did not parse (skipped).
    pub bad_lines: Vec<usize>,
}

/// Streams the records of a journal to `f`, in file order. A last line that
/// does not parse is a torn append and is not reported as a record (see
/// [`ReadInfo::good_len`]); a bad line before the end is skipped and counted
/// in [`ReadInfo::bad_lines`]. `only` filters lines cheaply by their start
/// (e.g. `{"type":"lost"`) before parsing; `None` parses all.
pub fn read_records(
    input: impl Read,
    only: Option<&str>,
    mut f: impl FnMut(Record),
) -> std::io::Result<ReadInfo> {
    let mut reader = BufReader::new(input);
    let mut info = ReadInfo::default();
    let mut line = Vec::new();
    let mut n = 0usize;
    // A bad line is only known to be "in the middle" once another follows.
    let mut pending_bad: Option<usize> = None;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        n += 1;
        info.file_len += read as u64;
        let complete = line.last() == Some(&b'\n');
        let body = if complete {
            &line[..line.len() - 1]
        } else {
            &line[..]
        };
        if let Some(b) = pending_bad.take() {
            info.bad_lines.push(b);
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            if complete {
                info.good_len = info.file_len;
            }
            continue;
        }
        if only.is_some_and(|p| !body.starts_with(p.as_bytes())) {
            // Not wanted, but it must still be a whole line to count as good.
            if complete || serde_json::from_slice::<Record>(body).is_ok() {
                info.good_len = info.file_len;
                info.missing_newline = !complete;
            }
            continue;
        }
        match serde_json::from_slice::<Record>(body) {
            Ok(r) => {
                f(r);
                info.good_len = info.file_len;
                info.missing_newline = !complete;
            }
            Err(_) => pending_bad = Some(n),
        }
    }
    // A bad last line is a torn append, cut by the caller (good_len).
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(run: &str) -> Record {
        Record::End {
            run: run.into(),
            drained: false,
            documents: 1,
            at_us: 5,
        }
    }

    fn line(r: &Record) -> String {
        format!("{}\n", serde_json::to_string(r).unwrap())
    }

    #[test]
    fn type_tag_comes_first() {
        let s = serde_json::to_string(&Record::Lost {
            part: "p".into(),
            reason: "r".into(),
            at_us: 1,
        })
        .unwrap();
        assert!(s.starts_with("{\"type\":\"lost\""), "{s}");
    }

    #[test]
    fn torn_and_bad_lines() {
        let a = line(&end("a"));
        let b = line(&end("b"));
        struct Case {
            text: String,
            runs: Vec<&'static str>,
            good_len: usize,
            missing_newline: bool,
            bad: Vec<usize>,
        }
        let cases = [
            Case {
                text: format!("{a}{b}"),
                runs: vec!["a", "b"],
                good_len: a.len() + b.len(),
                missing_newline: false,
                bad: vec![],
            },
            // the last append was torn: cut it
            Case {
                text: format!("{a}{}", &b[..b.len() / 2]),
                runs: vec!["a"],
                good_len: a.len(),
                missing_newline: false,
                bad: vec![],
            },
            // a whole record without its newline: keep it
            Case {
                text: format!("{a}{}", b.trim_end()),
                runs: vec!["a", "b"],
                good_len: a.len() + b.len() - 1,
                missing_newline: true,
                bad: vec![],
            },
            // garbage in the middle is skipped, the rest read
            Case {
                text: format!("{a}{{oops\n{b}"),
                runs: vec!["a", "b"],
                good_len: a.len() + 6 + b.len(),
                missing_newline: false,
                bad: vec![2],
            },
            Case {
                text: String::new(),
                runs: vec![],
                good_len: 0,
                missing_newline: false,
                bad: vec![],
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let mut runs = Vec::new();
            let info = read_records(c.text.as_bytes(), None, |r| {
                if let Record::End { run, .. } = r {
                    runs.push(run)
                }
            })
            .unwrap();
            assert_eq!(runs, c.runs, "case {i}");
            assert_eq!(info.good_len as usize, c.good_len, "case {i}");
            assert_eq!(info.missing_newline, c.missing_newline, "case {i}");
            assert_eq!(info.bad_lines, c.bad, "case {i}");
        }
    }

    #[test]
    fn filter_by_prefix() {
        let lost = Record::Lost {
            part: "p1".into(),
            reason: "gone".into(),
            at_us: 1,
        };
        let text = format!("{}{}", line(&end("a")), line(&lost));
        let mut got = Vec::new();
        let info =
            read_records(text.as_bytes(), Some("{\"type\":\"lost\""), |r| got.push(r)).unwrap();
        assert_eq!(got, vec![lost]);
        assert_eq!(info.good_len as usize, text.len());
    }
}
