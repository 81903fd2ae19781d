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
//! rotation) and then every line of every sink file (rotated ones and the
//! current `records.jsonl`), and takes per agent one past the highest
//! sequence number found. A torn tail (a crash in the middle of a write) is
//! cut off the current file, damage anywhere else is set aside
//! ([`crate::recovery`]), and the files are fsync'd before anything is acked
//! or accepted. Because the commit thread writes an
//! agent's records only in increasing sequence order and never below its
//! resume point, "highest sequence number in the files + 1" is exactly the
//! point below which every record is in the sink: nothing that reached the
//! file, acked or not, is written again, and nothing acked is missing.

use crate::recovery::{self, at};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use crate::ledger::ResumePoints;
pub use crate::recovery::QUARANTINE;

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

impl Recovery {
    fn note(&mut self, (lines, r): &(u64, recovery::Repaired)) {
        self.files += 1;
        self.lines += lines;
        self.quarantined += r.quarantined;
        self.quarantined_bytes += r.quarantined_bytes;
    }
}

/// What [`FileSink::open`] found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Resume points rebuilt from the checkpoint and every sink file.
    pub resume: ResumePoints,
    /// Good lines read, in every file.
    pub lines: u64,
    /// Sink files read (rotated ones and the current one).
    pub files: u64,
    /// Bytes cut off the end of the current file (a torn write).
    pub truncated_bytes: u64,
    /// Damaged stretches (each one or more lines) set aside in the
    /// quarantine file ([`crate::recovery::QUARANTINE`]).
    pub quarantined: u64,
    /// Their bytes.
    pub quarantined_bytes: u64,
    /// The checkpoint was missing or empty and rebuilt from the files.
    pub checkpoint_rebuilt: bool,
    /// Nothing was found: no checkpoint, no sink file with a byte in it.
    pub fresh: bool,
    /// Every task result in the good lines, oldest file first: the server
    /// applies them to the registry before it serves.
    pub results: Vec<recovery::FoundResult>,
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| at(dir, e))
}

fn rotated_name(i: u64) -> String {
    format!("records-{i:06}.jsonl")
}

/// The checkpoint as written since checksummed lines: the resume points at
/// the last rotation and the number of that rotation (so that rotated
/// names are never reused, even after old files were moved away).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Checkpoint {
    rotated: u64,
    resume: ResumePoints,
}

/// Reads the checkpoint: `None` if missing; an older checkpoint (the bare
/// map of resume points) is read as one with no rotation count. A
/// checkpoint that does not parse is an error naming it.
fn read_checkpoint(dir: &Path) -> io::Result<Option<Checkpoint>> {
    let path = dir.join(CHECKPOINT);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Checkpoint>(&bytes)
            .or_else(|_| serde_json::from_slice::<ResumePoints>(&bytes).map(|resume| Checkpoint { rotated: 0, resume }))
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: not a checkpoint ({e}); restore it from a backup, or move it away to have it rebuilt from the sink files", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at(&path, e)),
    }
}

/// Writes the checkpoint atomically (temporary file, fsync, rename, fsync
/// of the directory).
fn write_checkpoint(dir: &Path, rotated: u64, resume: &ResumePoints) -> io::Result<()> {
    let tmp = dir.join("checkpoint.json.tmp");
    let mut f = File::create(&tmp).map_err(|e| at(&tmp, e))?;
    #[derive(Serialize)]
    struct Out<'a> {
        rotated: u64,
        resume: &'a ResumePoints,
    }
    f.write_all(&serde_json::to_vec(&Out { rotated, resume }).expect("a map of strings to numbers serializes"))?;
    f.sync_all().map_err(|e| at(&tmp, e))?;
    fs::rename(&tmp, dir.join(CHECKPOINT)).map_err(|e| at(&dir.join(CHECKPOINT), e))?;
    sync_dir(dir)
}

/// The rotated files in `dir`, by number.
fn rotated_files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| at(dir, e))? {
        let entry = entry.map_err(|e| at(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(i) = name.strip_prefix("records-").and_then(|r| r.strip_suffix(".jsonl")).and_then(|n| n.parse::<u64>().ok()) {
            out.push((i, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

impl FileSink {
    /// Opens (or creates) the sink in `dir`: checks every line of every
    /// sink file, sets damage aside, cuts the current file's torn tail
    /// ([`crate::recovery`]), rebuilds the resume points (the checkpoint's,
    /// raised by every good line) and writes the checkpoint. A missing or
    /// empty checkpoint is rebuilt from the files when they are all there
    /// (rotated files numbered from 1 without a hole); when some are gone
    /// it is refused: their agents' resume points are lost with them. Every
    /// error names its file.
    pub fn open(dir: &Path, rotate_bytes: u64) -> io::Result<(FileSink, Recovery)> {
        fs::create_dir_all(dir).map_err(|e| at(dir, e))?;
        let rotated = rotated_files(dir)?;
        let path = dir.join(CURRENT);
        let current_len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(at(&path, e)),
        };
        let mut rec = Recovery::default();
        let checkpoint = match read_checkpoint(dir)? {
            Some(c) if !(c.resume.is_empty() && c.rotated == 0 && !rotated.is_empty()) => c,
            // Missing, or `{}` although files were rotated (a rotation
            // always records at least one agent): rebuilt if every file is
            // here.
            found => {
                let holes = rotated.iter().enumerate().any(|(i, (n, _))| *n != i as u64 + 1);
                if holes {
                    let first = rotated.first().map_or(0, |(n, _)| *n);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: {} while rotated sink files are gone (the first left is {}): the resume points of agents whose records were only in them cannot be rebuilt, and starting would write their unacked records twice; restore the checkpoint from a backup",
                            dir.join(CHECKPOINT).display(),
                            if found.is_some() { "empty" } else { "missing" },
                            rotated_name(first),
                        ),
                    ));
                }
                rec.fresh = found.is_none() && rotated.is_empty() && current_len == 0;
                rec.checkpoint_rebuilt = !rec.fresh;
                Checkpoint::default()
            }
        };
        rec.resume = checkpoint.resume;
        let last_rotated = rotated.last().map_or(0, |(n, _)| *n).max(checkpoint.rotated);
        for (_, p) in &rotated {
            let mut s = recovery::scan(p, &mut rec.resume).map_err(|e| at(p, e))?;
            let r = recovery::repair(dir, p, &s, false)?;
            rec.note(&(s.lines, r));
            rec.results.append(&mut s.results);
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(|e| at(&path, e))?;
        let mut s = recovery::scan(&path, &mut rec.resume).map_err(|e| at(&path, e))?;
        let r = recovery::repair(dir, &path, &s, true)?;
        rec.truncated_bytes = r.tail_bytes;
        rec.note(&(s.lines, r));
        rec.results.append(&mut s.results);
        if !s.damaged.is_empty() {
            // Rewritten: a new inode.
            file = OpenOptions::new().read(true).append(true).open(&path).map_err(|e| at(&path, e))?;
        }
        let len = file.metadata().map_err(|e| at(&path, e))?.len();
        // Whatever the file holds now is made durable before it is relied
        // on, and the checkpoint covers everything found.
        file.sync_all().map_err(|e| at(&path, e))?;
        write_checkpoint(dir, last_rotated, &rec.resume)?;
        if rec.checkpoint_rebuilt {
            tracing::warn!(checkpoint = %dir.join(CHECKPOINT).display(), files = rec.files, agents = rec.resume.len(), "the checkpoint was missing or empty; rebuilt from every sink file");
        }
        Ok((FileSink { dir: dir.to_path_buf(), file, len, rotate_bytes, next_index: last_rotated + 1 }, rec))
    }

    fn rotate(&mut self, resume: &ResumePoints) -> io::Result<()> {
        write_checkpoint(&self.dir, self.next_index, resume)?;
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

    fn rotated_run(dir: &Path) {
        let (mut s, _) = FileSink::open(dir, 4096).unwrap();
        let mut resume = ResumePoints::new();
        for round in 0..10u64 {
            s.append(&lines("a", round * 20..round * 20 + 20)).unwrap();
            resume.insert("a".into(), round * 20 + 20);
            s.commit(&resume).unwrap();
        }
        // Written, not acked, in the current file: the checkpoint does not know.
        s.append(&lines("b", 0..3)).unwrap();
        s.commit(&resume).unwrap();
    }

    #[test]
    fn a_missing_or_empty_checkpoint_is_rebuilt_or_refused() {
        for how in ["deleted", "{}"] {
            let dir = tmpdir(&format!("ckpt{}", how.len()));
            rotated_run(&dir);
            match how {
                "deleted" => fs::remove_file(dir.join(CHECKPOINT)).unwrap(),
                _ => fs::write(dir.join(CHECKPOINT), "{}").unwrap(),
            }
            let (_, rec) = FileSink::open(&dir, 4096).unwrap();
            assert!(rec.checkpoint_rebuilt && !rec.fresh, "{how}");
            assert_eq!((rec.resume.get("a"), rec.resume.get("b")), (Some(&200), Some(&3)), "{how}: rebuilt from every file");
            // Written back: the next start needs no rebuild.
            let (_, rec) = FileSink::open(&dir, 4096).unwrap();
            assert!(!rec.checkpoint_rebuilt);
            assert_eq!(rec.resume.get("a"), Some(&200));
            // With a rotated file gone as well, the points cannot be known: refused, naming the checkpoint.
            fs::remove_file(dir.join(rotated_name(1))).unwrap();
            fs::remove_file(dir.join(CHECKPOINT)).unwrap();
            let e = FileSink::open(&dir, 4096).unwrap_err();
            assert!(e.to_string().contains(&dir.join(CHECKPOINT).display().to_string()), "{e}");
            // A checkpoint that is not one is refused too, by name.
            fs::write(dir.join(CHECKPOINT), "{\"a\": \"x\"").unwrap();
            let e = FileSink::open(&dir, 4096).unwrap_err();
            assert!(e.to_string().contains(CHECKPOINT), "{e}");
            fs::remove_dir_all(&dir).unwrap();
        }
        // A checkpoint of the older form (the bare map) still reads.
        let dir = tmpdir("legacy");
        rotated_run(&dir);
        fs::write(dir.join(CHECKPOINT), "{\"a\": 200, \"gone\": 7}").unwrap();
        let (_, rec) = FileSink::open(&dir, 4096).unwrap();
        assert!(!rec.checkpoint_rebuilt);
        assert_eq!((rec.resume.get("a"), rec.resume.get("gone")), (Some(&200), Some(&7)));
        fs::remove_dir_all(&dir).unwrap();
        // A new directory is fresh, and gets a checkpoint at once.
        let dir = tmpdir("fresh");
        let (_, rec) = FileSink::open(&dir, 4096).unwrap();
        assert!(rec.fresh && !rec.checkpoint_rebuilt);
        assert!(dir.join(CHECKPOINT).exists());
        let (_, rec) = FileSink::open(&dir, 4096).unwrap();
        assert!(!rec.fresh);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damage_in_a_rotated_file_is_set_aside() {
        let dir = tmpdir("rotdmg");
        rotated_run(&dir);
        let p = dir.join(rotated_name(1));
        let mut bytes = fs::read(&p).unwrap();
        let before = bytes.iter().filter(|&&b| b == b'\n').count();
        bytes[40] ^= 0x10;
        // And its last line cut short: in a rotated file that is damage too.
        bytes.truncate(bytes.len() - 7);
        fs::write(&p, &bytes).unwrap();
        let (_, rec) = FileSink::open(&dir, 4096).unwrap();
        assert_eq!((rec.quarantined, rec.truncated_bytes), (2, 0));
        assert_eq!(fs::read_to_string(&p).unwrap().lines().count(), before - 2);
        assert_eq!(fs::read_to_string(dir.join(QUARANTINE)).unwrap().lines().count(), 2);
        assert_eq!(rec.resume.get("a"), Some(&200));
        fs::remove_dir_all(&dir).unwrap();
    }
}
