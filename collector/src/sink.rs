//! Where records go: the [`Sink`] trait, the JSON-lines [`FileSink`] and
//! the [`StdoutSink`].
//!
//! A sink receives whole lines ([`crate::line`]) and makes them durable on
//! [`Sink::commit`]. It is driven by one thread ([`crate::commit`]), which
//! groups many batches into one append and one commit (group commit).
//!
//! # Crash consistency of the file sink
//!
//! The file sink is its own source of truth for resume points: at start,
//! [`FileSink::open`] reads `checkpoint.json` (the resume points at the last
//! rotation) and then every line of the current `records.jsonl`, and takes
//! per agent one past the highest sequence number found. A torn last line (a
//! crash in the middle of a write) is cut off, and the file is fsync'd
//! before anything is acked or accepted. Because the commit thread writes an
//! agent's records only in increasing sequence order and never below its
//! resume point, "highest sequence number in the files + 1" is exactly the
//! point below which every record is in the sink: nothing that reached the
//! file, acked or not, is written again, and nothing acked is missing.

use crate::line::LineKey;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub use crate::ledger::ResumePoints;

/// A destination for JSON lines.
pub trait Sink: Send {
    /// Appends whole lines (each ending in `\n`). Not durable yet.
    fn append(&mut self, lines: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far as durable as this sink can, then
    /// (file sink) rotates if the file is full, recording `resume` in the
    /// checkpoint first.
    fn commit(&mut self, resume: &ResumePoints) -> io::Result<()>;
    /// True if a commit survives a crash of the process (and of the host).
    fn durable(&self) -> bool;
}

/// JSON lines on standard output, flushed on commit. Not durable, and
/// exactly once only within one process: resume points are kept in memory,
/// so after a restart the collector resumes each agent at its
/// `first_unacked_seq`, and records written but not acked before the
/// restart are written again (at least once across restarts).
#[derive(Debug, Default)]
pub struct StdoutSink;

impl Sink for StdoutSink {
    fn append(&mut self, lines: &[u8]) -> io::Result<()> {
        io::stdout().lock().write_all(lines)
    }
    fn commit(&mut self, _: &ResumePoints) -> io::Result<()> {
        io::stdout().lock().flush()
    }
    fn durable(&self) -> bool {
        false
    }
}

/// The current file's name in the data directory.
pub const CURRENT: &str = "records.jsonl";
/// The checkpoint's name in the data directory.
pub const CHECKPOINT: &str = "checkpoint.json";

/// JSON lines in `<dir>/records.jsonl`, fsync'd on every commit, rotated to
/// `records-NNNNNN.jsonl` (increasing numbers) once larger than
/// `rotate_bytes`.
#[derive(Debug)]
pub struct FileSink {
    dir: PathBuf,
    file: File,
    len: u64,
    rotate_bytes: u64,
    next_index: u64,
}

/// What [`FileSink::open`] found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Resume points rebuilt from the checkpoint and the current file.
    pub resume: ResumePoints,
    /// Lines read from the current file.
    pub lines: u64,
    /// Bytes cut off the end of the current file (a torn write).
    pub truncated_bytes: u64,
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn rotated_name(i: u64) -> String {
    format!("records-{i:06}.jsonl")
}

/// Reads the checkpoint (missing: empty).
fn read_checkpoint(dir: &Path) -> io::Result<ResumePoints> {
    match fs::read(dir.join(CHECKPOINT)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{CHECKPOINT}: {e}"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ResumePoints::new()),
        Err(e) => Err(e),
    }
}

/// Writes the checkpoint atomically (temporary file, fsync, rename, fsync
/// of the directory).
fn write_checkpoint(dir: &Path, resume: &ResumePoints) -> io::Result<()> {
    let tmp = dir.join("checkpoint.json.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(resume).expect("a map of strings to numbers serializes"))?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(CHECKPOINT))?;
    sync_dir(dir)
}

impl FileSink {
    /// Opens (or creates) the sink in `dir` and rebuilds the resume points;
    /// see the module docs.
    pub fn open(dir: &Path, rotate_bytes: u64) -> io::Result<(FileSink, Recovery)> {
        fs::create_dir_all(dir)?;
        let mut rec = Recovery { resume: read_checkpoint(dir)?, ..Recovery::default() };
        let mut next_index = 1;
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(i) = name.strip_prefix("records-").and_then(|r| r.strip_suffix(".jsonl")).and_then(|n| n.parse::<u64>().ok()) {
                next_index = next_index.max(i + 1);
            }
        }
        let path = dir.join(CURRENT);
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        // Read every whole, well-formed line; the first that is not ends the
        // good part of the file.
        let mut good: u64 = 0;
        {
            let mut reader = BufReader::new(&mut file);
            reader.seek(SeekFrom::Start(0))?;
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line)?;
                if n == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                let Ok(key) = serde_json::from_slice::<LineKey<'_>>(&line) else { break };
                let next = key.seq.saturating_add(1);
                let e = rec.resume.entry(key.agent.into_owned()).or_insert(next);
                *e = (*e).max(next);
                good += n as u64;
                rec.lines += 1;
            }
        }
        let len = file.metadata()?.len();
        if good < len {
            rec.truncated_bytes = len - good;
            file.set_len(good)?;
        }
        // Whatever the file holds now is made durable before it is relied on.
        file.sync_all()?;
        sync_dir(dir)?;
        Ok((FileSink { dir: dir.to_path_buf(), file, len: good, rotate_bytes, next_index }, rec))
    }

    fn rotate(&mut self, resume: &ResumePoints) -> io::Result<()> {
        write_checkpoint(&self.dir, resume)?;
        let to = self.dir.join(rotated_name(self.next_index));
        fs::rename(self.dir.join(CURRENT), &to)?;
        self.next_index += 1;
        self.file = OpenOptions::new().read(true).append(true).create(true).open(self.dir.join(CURRENT))?;
        sync_dir(&self.dir)?;
        self.len = 0;
        tracing::info!(rotated_to = %to.display(), "sink file rotated");
        Ok(())
    }
}

impl Sink for FileSink {
    fn append(&mut self, lines: &[u8]) -> io::Result<()> {
        self.file.write_all(lines)?;
        self.len += lines.len() as u64;
        Ok(())
    }

    fn commit(&mut self, resume: &ResumePoints) -> io::Result<()> {
        self.file.sync_data()?;
        if self.len >= self.rotate_bytes {
            self.rotate(resume)?;
        }
        Ok(())
    }

    fn durable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::RecordLine;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("edge-sink-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn lines(agent: &str, seqs: std::ops::Range<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in seqs {
            RecordLine { agent, host: "h", seq, data_type: 2001, ts: 0, recv: 0, payload: b"x" }.write(&mut out);
        }
        out
    }

    #[test]
    fn resume_points_rebuilt_and_torn_line_cut() {
        let dir = tmpdir("torn");
        let (mut s, rec) = FileSink::open(&dir, 1 << 20).unwrap();
        assert!(rec.resume.is_empty());
        s.append(&lines("a", 0..5)).unwrap();
        s.append(&lines("b", 7..9)).unwrap();
        s.commit(&ResumePoints::new()).unwrap();
        // A torn write: half a line at the end.
        s.append(&lines("a", 5..6)[..20]).unwrap();
        drop(s);
        let (_, rec) = FileSink::open(&dir, 1 << 20).unwrap();
        assert_eq!(rec.resume.get("a"), Some(&5));
        assert_eq!(rec.resume.get("b"), Some(&9));
        assert_eq!(rec.lines, 7);
        assert_eq!(rec.truncated_bytes, 20);
        let text = fs::read_to_string(dir.join(CURRENT)).unwrap();
        assert!(text.ends_with('\n') && text.lines().count() == 7);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotation_keeps_resume_points_in_checkpoint() {
        let dir = tmpdir("rotate");
        let (mut s, _) = FileSink::open(&dir, 4096).unwrap();
        let mut resume = ResumePoints::new();
        for round in 0..10u64 {
            s.append(&lines("a", round * 20..round * 20 + 20)).unwrap();
            resume.insert("a".into(), round * 20 + 20);
            s.commit(&resume).unwrap();
        }
        drop(s);
        let rotated = fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("records-")).count();
        assert!(rotated >= 2, "rotated {rotated} times");
        // The current file may even be empty: the checkpoint still knows.
        let (_, rec) = FileSink::open(&dir, 4096).unwrap();
        assert_eq!(rec.resume.get("a"), Some(&200));
        // Every record is in exactly one file.
        let mut seen = Vec::new();
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "jsonl") {
                for l in fs::read_to_string(&p).unwrap().lines() {
                    seen.push(serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64().unwrap());
                }
            }
        }
        seen.sort();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        fs::remove_dir_all(&dir).unwrap();
    }
}
