//! What the file sink does at start with what it finds on disk: every
//! line of every sink file checked, damage set aside, the torn tail of the
//! current file cut, the resume points rebuilt.
//!
//! # The rules
//!
//! * A line is *good* if its checksum matches ([`crate::line::check`]), or
//!   if it has no checksum, parses, and comes before the file's first
//!   checksummed line (files written before checksums existed).
//! * In the current file, the bytes after the last good line are the *torn
//!   tail* of a write that never finished: cut. If they hold a whole line
//!   (ending in `\n`), that line may have been acked and damaged at rest,
//!   so they are quarantined first (WARN).
//! * Every other line that is not good (anywhere in a rotated file, or in
//!   the current file before its last good line) is *damage*: it is
//!   appended to [`QUARANTINE`] (with its file, offset and bytes), logged
//!   at ERROR, counted, and the file is rewritten without it (temporary
//!   file, fsync, rename, directory fsync). Every good line stays, and
//!   counts into the resume points.
//! * The quarantine file is fsync'd before any file is cut or rewritten, so
//!   no byte leaves the data directory unrecorded.
//! * Every good line of a task result (type 1050 with a decoded
//!   `task_result`) is collected ([`FoundResult`]): the registry marks a
//!   task done only on its flush, once a second, so a collector killed
//!   between acking a result and that flush would otherwise send the task
//!   again and have it run twice. The server applies them to the registry
//!   before it serves.

use crate::ledger::ResumePoints;
use crate::line::{check, Checked};
use crate::session::ResultInfo;
use base64::Engine as _;
use serde::Deserialize;
use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;

/// The quarantine's name in the data directory: JSON lines
/// `{"file","offset","bytes","reason","b64"}`, one per damaged stretch.
pub const QUARANTINE: &str = "quarantine.log";

/// Longest line read whole; a longer one is damage (read past, not held).
/// Far above any line the collector writes (a `--max-frame` of 16 MiB
/// escaped at most 6x, plus the identity).
pub const MAX_LINE: usize = 128 << 20;

/// A task result found in a sink line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundResult {
    /// The agent that answered.
    pub agent: String,
    /// The result, as the line holds it.
    pub result: ResultInfo,
    /// The collector's receive time of the record (Unix ms).
    pub recv_ms: u64,
}

/// The fields of a task result's line that [`FoundResult`] keeps.
#[derive(Deserialize)]
struct ResultLine<'a> {
    #[serde(borrow)]
    agent: Cow<'a, str>,
    recv: u64,
    task_result: Option<ResultFields<'a>>,
}

#[derive(Deserialize)]
struct ResultFields<'a> {
    #[serde(borrow)]
    token: Cow<'a, str>,
    status: u32,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

/// The task result a good line of type 1050 holds (`None` if its payload
/// did not decode: then the line has `b64`, no `task_result`).
fn result_in(line: &[u8]) -> Option<FoundResult> {
    let l: ResultLine<'_> = serde_json::from_slice(line.strip_suffix(b"\n").unwrap_or(line)).ok()?;
    let r = l.task_result?;
    Some(FoundResult { agent: l.agent.into_owned(), result: ResultInfo { token: r.token.into_owned(), status: r.status, message: r.message.into_owned() }, recv_ms: l.recv })
}

/// What one file held.
#[derive(Debug, Default)]
pub struct FileScan {
    /// Good lines.
    pub lines: u64,
    /// Damaged whole lines before the last good line, as byte ranges.
    pub damaged: Vec<Range<u64>>,
    /// Offset just past the last good line.
    pub good_end: u64,
    /// The file's length.
    pub len: u64,
    /// True if the bytes after `good_end` hold a whole line.
    pub tail_has_line: bool,
    /// The task results among the good lines, in file order.
    pub results: Vec<FoundResult>,
}

/// Reads one line (up to and with `\n`) into `buf`, holding at most
/// [`MAX_LINE`] bytes of it; the bytes consumed, whether it ended in `\n`,
/// and whether it was longer than held.
fn next_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<(u64, bool, bool)> {
    buf.clear();
    let (mut n, mut over) = (0u64, false);
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok((n, false, over));
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take <= MAX_LINE {
            buf.extend_from_slice(&chunk[..take]);
        } else {
            over = true;
        }
        r.consume(take);
        n += take as u64;
        if done {
            return Ok((n, true, over));
        }
    }
}

/// Checks every line of `path`, raising `resume` for each good one.
pub fn scan(path: &Path, resume: &mut ResumePoints) -> io::Result<FileScan> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut s = FileScan::default();
    let mut line = Vec::new();
    let mut seen_checksum = false;
    // Bad lines since the last good one: damage if a good line follows.
    let mut bad: Vec<Range<u64>> = Vec::new();
    let mut offset = 0u64;
    loop {
        let (n, whole, over) = next_line(&mut r, &mut line)?;
        if n == 0 {
            break;
        }
        let key = match (whole && !over).then(|| check(&line)) {
            Some(Checked::Sound(k)) => {
                seen_checksum = true;
                Some(k)
            }
            Some(Checked::Unchecked(k)) if !seen_checksum => Some(k),
            _ => None,
        };
        match key {
            Some(k) => {
                if k.data_type == Some(agent_core::data_type::TASK_RESULT) {
                    s.results.extend(result_in(&line));
                }
                let next = k.seq.saturating_add(1);
                match resume.get_mut(&*k.agent) {
                    Some(e) => *e = (*e).max(next),
                    None => {
                        resume.insert(k.agent.into_owned(), next);
                    }
                }
                s.lines += 1;
                s.damaged.append(&mut bad);
                s.good_end = offset + n;
                s.tail_has_line = false;
            }
            None => {
                if whole {
                    s.tail_has_line = true;
                }
                bad.push(offset..offset + n);
            }
        }
        offset += n;
    }
    s.len = offset;
    Ok(s)
}

/// One stretch of bytes set aside.
struct Stretch<'a> {
    file: &'a str,
    range: Range<u64>,
    reason: &'a str,
}

/// Appends `stretches` of `src` to the quarantine file and fsyncs it (and
/// the directory). The bytes are copied in chunks: a huge damaged stretch
/// is never held whole.
fn quarantine(dir: &Path, src: &Path, stretches: &[Stretch<'_>]) -> io::Result<()> {
    if stretches.is_empty() {
        return Ok(());
    }
    let qpath = dir.join(QUARANTINE);
    let mut q = OpenOptions::new().create(true).append(true).open(&qpath).map_err(|e| at(&qpath, e))?;
    let mut f = File::open(src)?;
    // A multiple of 3: base64 of consecutive chunks concatenates.
    let mut chunk = vec![0u8; 3 * 16 * 1024];
    for s in stretches {
        let head = serde_json::json!({"file": s.file, "offset": s.range.start, "bytes": s.range.end - s.range.start, "reason": s.reason});
        let mut head = serde_json::to_vec(&head).expect("serializes");
        head.pop();
        head.extend_from_slice(b",\"b64\":\"");
        q.write_all(&head)?;
        f.seek(SeekFrom::Start(s.range.start))?;
        let mut left = s.range.end - s.range.start;
        while left > 0 {
            let n = (chunk.len() as u64).min(left) as usize;
            f.read_exact(&mut chunk[..n])?;
            q.write_all(base64::engine::general_purpose::STANDARD.encode(&chunk[..n]).as_bytes())?;
            left -= n as u64;
        }
        q.write_all(b"\"}\n")?;
    }
    q.sync_all().map_err(|e| at(&qpath, e))?;
    sync_dir(dir)
}

/// `e` with `path` in its message: every start-up error names its file.
pub fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| at(dir, e))
}

/// What [`repair`] did to one file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Repaired {
    /// Damaged stretches set aside (each one or more lines' worth).
    pub quarantined: u64,
    /// Their bytes.
    pub quarantined_bytes: u64,
    /// Bytes cut off the end (the torn tail), quarantined or not.
    pub tail_bytes: u64,
}

/// Sets aside what [`scan`] found wrong in `path` (the current file if
/// `current`, else a rotated one) and leaves the file holding exactly its
/// good lines; see the module docs.
pub fn repair(dir: &Path, path: &Path, s: &FileScan, current: bool) -> io::Result<Repaired> {
    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut stretches: Vec<Stretch<'_>> = s.damaged.iter().map(|r| Stretch { file: &name, range: r.clone(), reason: "damaged" }).collect();
    let tail = s.good_end..s.len;
    let mut out = Repaired { tail_bytes: tail.end - tail.start, ..Repaired::default() };
    // A rotated file was whole when it was rotated: all of it is at rest.
    let keep_tail = !tail.is_empty() && (s.tail_has_line || !current);
    if keep_tail {
        stretches.push(Stretch { file: &name, range: tail.clone(), reason: if current { "torn tail" } else { "damaged" } });
    }
    out.quarantined = stretches.len() as u64;
    out.quarantined_bytes = stretches.iter().map(|s| s.range.end - s.range.start).sum();
    quarantine(dir, path, &stretches).map_err(|e| at(path, e))?;
    if !s.damaged.is_empty() {
        tracing::error!(file = %path.display(), stretches = s.damaged.len(), bytes = s.damaged.iter().map(|r| r.end - r.start).sum::<u64>(), quarantine = QUARANTINE,
            "damaged lines in a sink file: set aside in the quarantine file, every intact line kept");
        rewrite_without(path, &s.damaged, s.good_end).map_err(|e| at(path, e))?;
    } else if !tail.is_empty() {
        let f = OpenOptions::new().write(true).open(path).map_err(|e| at(path, e))?;
        f.set_len(s.good_end)?;
        f.sync_all().map_err(|e| at(path, e))?;
    }
    if !tail.is_empty() {
        if keep_tail {
            tracing::warn!(file = %path.display(), bytes = out.tail_bytes, quarantine = QUARANTINE, "bytes after the last intact line held a whole line: set aside in the quarantine file and cut");
        } else {
            tracing::info!(file = %path.display(), bytes = out.tail_bytes, "torn tail of an unfinished write cut");
        }
    }
    Ok(out)
}

/// Replaces `path` by a copy of its bytes below `end` without `holes`
/// (sorted, disjoint): temporary file, fsync, rename, directory fsync.
fn rewrite_without(path: &Path, holes: &[Range<u64>], end: u64) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("jsonl.repair");
    let mut src = File::open(path)?;
    let mut dst = File::create(&tmp)?;
    let mut at_ = 0u64;
    for h in holes.iter().chain(std::iter::once(&(end..end))) {
        src.seek(SeekFrom::Start(at_))?;
        io::copy(&mut (&mut src).take(h.start - at_), &mut dst)?;
        at_ = h.end;
    }
    dst.sync_all()?;
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::RecordLine;

    fn lines(agent: &str, seqs: Range<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in seqs {
            RecordLine { agent, host: "h", seq, data_type: 2001, ts: 0, recv: 0, payload: b"x" }.write(&mut out);
        }
        out
    }

    #[test]
    fn task_results_are_found_in_good_lines_only() {
        use agent_core::message::{encode_task_result, TaskResult};
        let mut body = [0u8; 64];
        let n = encode_task_result(&TaskResult { token: "t-1".into(), status: 2, message: "no \"disk\"".into() }, &mut body).unwrap();
        let mut file = lines("a", 0..2);
        RecordLine { agent: "a", host: "h", seq: 2, data_type: agent_core::data_type::TASK_RESULT, ts: 0, recv: 77, payload: &body[..n] }.write(&mut file);
        // A type-1050 payload that does not decode is kept as b64: no result.
        RecordLine { agent: "a", host: "h", seq: 3, data_type: agent_core::data_type::TASK_RESULT, ts: 0, recv: 78, payload: b"\xff" }.write(&mut file);
        file.extend(lines("a", 4..5));
        // A result line torn at the end is not read.
        let mut torn = Vec::new();
        RecordLine { agent: "b", host: "h", seq: 0, data_type: agent_core::data_type::TASK_RESULT, ts: 0, recv: 79, payload: &body[..n] }.write(&mut torn);
        file.extend_from_slice(&torn[..torn.len() - 3]);
        let dir = std::env::temp_dir().join(format!("edge-recovery-results-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("records.jsonl");
        fs::write(&path, &file).unwrap();
        let s = scan(&path, &mut ResumePoints::new()).unwrap();
        assert_eq!(s.results, vec![FoundResult { agent: "a".into(), result: ResultInfo { token: "t-1".into(), status: 2, message: "no \"disk\"".into() }, recv_ms: 77 }]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damage_is_set_aside_and_the_rest_kept() {
        let dir = std::env::temp_dir().join(format!("edge-recovery-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("records.jsonl");
        let mut bytes = b"{\"agent\":\"old\",\"seq\":4}\n".to_vec();
        bytes.extend(lines("a", 0..10));
        let line3 = bytes.iter().enumerate().filter(|(_, &b)| b == b'\n').nth(3).unwrap().0 - 5;
        bytes[line3] ^= 0x04;
        let torn = lines("a", 10..11);
        bytes.extend_from_slice(&torn[..torn.len() / 2]);
        fs::write(&path, &bytes).unwrap();
        let mut resume = ResumePoints::new();
        let s = scan(&path, &mut resume).unwrap();
        assert_eq!((s.lines, s.damaged.len(), s.tail_has_line), (10, 1, false));
        assert_eq!((resume["a"], resume["old"]), (10, 5));
        let r = repair(&dir, &path, &s, true).unwrap();
        assert_eq!((r.quarantined, r.tail_bytes), (1, (torn.len() / 2) as u64));
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 10);
        assert!(text.lines().skip(1).all(|l| matches!(check(l.as_bytes()), Checked::Sound(_))));
        let q = fs::read_to_string(dir.join(QUARANTINE)).unwrap();
        let q: serde_json::Value = serde_json::from_str(q.trim()).unwrap();
        assert_eq!(q["reason"], "damaged");
        let held = base64::engine::general_purpose::STANDARD.decode(q["b64"].as_str().unwrap()).unwrap();
        assert_eq!(held.len() as u64, q["bytes"].as_u64().unwrap());
        // A second scan finds nothing more.
        let s = scan(&path, &mut ResumePoints::new()).unwrap();
        assert_eq!((s.lines, s.damaged.len(), s.good_end), (10, 0, s.len));
        // A tail holding a whole line (acked, then damaged?) is kept aside before it is cut.
        let mut bytes = fs::read(&path).unwrap();
        let good = bytes.len() as u64;
        let mut last = lines("a", 10..11);
        last[12] ^= 0x01;
        bytes.extend_from_slice(&last);
        fs::write(&path, &bytes).unwrap();
        let s = scan(&path, &mut ResumePoints::new()).unwrap();
        assert!(s.tail_has_line && s.damaged.is_empty() && s.good_end == good);
        let r = repair(&dir, &path, &s, true).unwrap();
        assert_eq!((r.quarantined, r.tail_bytes), (1, last.len() as u64));
        assert_eq!(fs::metadata(&path).unwrap().len(), good);
        let q = fs::read_to_string(dir.join(QUARANTINE)).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(q.lines().last().unwrap()).unwrap()["reason"], "torn tail");
        // After the first checksummed line, a line without one is damage.
        fs::write(&path, [lines("a", 0..2), b"{\"agent\":\"a\",\"seq\":7}\n".to_vec(), lines("a", 2..3)].concat()).unwrap();
        let s = scan(&path, &mut ResumePoints::new()).unwrap();
        assert_eq!((s.lines, s.damaged.len()), (3, 1));
        fs::remove_dir_all(&dir).unwrap();
    }
}
