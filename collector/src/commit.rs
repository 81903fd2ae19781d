//! The commit thread: the one writer of the sink, the authority on resume
//! points, and where duplicates are dropped.
//!
//! Connection tasks send requests (through a [`CommitHandle`]) over a bounded queue (when it is full
//! they wait: backpressure). The thread takes every request waiting, up to
//! [`MAX_GROUP`], appends their lines in one write, commits once (fsync for
//! the file sink) and only then answers each one. So:
//!
//! * a [`StoreOutcome::Stored`] answer means every record of that agent up
//!   to `up_to` is durable: the connection may Ack it;
//! * a resume point handed out is durable too (an Accept acks implicitly):
//!   it covers only records of groups already committed (a group that
//!   writes nothing, such as the handshakes of a reconnect storm, skips
//!   the commit and its fsync);
//! * per agent, records are written in increasing sequence order, each at
//!   most once: a record below the agent's resume point is a duplicate and
//!   skipped, a batch starting above it is a gap and refused whole. This
//!   holds across sessions of the same agent id racing each other.
//!
//! A failed write or sync makes the sink unusable: every later request is
//! refused ([`StoreOutcome::Failed`], resume `None`), nothing more is acked,
//! and [`CommitHandle::failed`] fires. The program then shuts down and
//! exits with status 3, for its supervisor to restart it: a start re-reads
//! the files, cuts the failed write's torn tail and resumes every agent
//! where the files end. (Retrying in place is not safe: after a failed
//! fsync the kernel may have dropped the dirty pages and reports the error
//! once, so whether the bytes reached the disk is unknown until re-read.)

pub use crate::ledger::{Lines, StoreOutcome};
use crate::ledger::{claim, plan, Claim};
use crate::metrics::Metrics;
use crate::sink::{ResumePoints, Sink};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};

/// Most requests grouped into one commit.
pub const MAX_GROUP: usize = 4096;

/// The commit thread hands lines to the sink in appends of about this
/// size; it holds at most this plus one batch's lines beyond what the
/// connections' queues hold.
pub const APPEND_CHUNK: usize = 1 << 20;

enum Request {
    Store(Lines, oneshot::Sender<StoreOutcome>),
    Resume(Arc<str>, u64, Claim, oneshot::Sender<Option<Option<u64>>>),
}

/// A handle to the commit thread (cheap to clone).
#[derive(Clone, Debug)]
pub struct CommitHandle {
    tx: mpsc::Sender<Request>,
    failed: watch::Receiver<bool>,
}

impl CommitHandle {
    /// Queues a batch's lines (waits while the queue is full); the answer
    /// comes once they are committed.
    pub async fn store(&self, lines: Lines) -> oneshot::Receiver<StoreOutcome> {
        let (tx, rx) = oneshot::channel();
        // If the thread is gone, `tx` is dropped and the receiver reports it.
        let _ = self.tx.send(Request::Store(lines, tx)).await;
        rx
    }

    /// Returns once the sink has failed (never, while it works).
    pub async fn failed(&self) {
        let mut f = self.failed.clone();
        let _ = f.wait_for(|failed| *failed).await;
    }

    /// The agent's durable resume point, first raised to `floor` (the
    /// Hello's `first_unacked_seq`: records below it were acked elsewhere).
    /// `None` if the sink failed.
    pub async fn resume(&self, agent: Arc<str>, floor: u64) -> Option<u64> {
        self.claim(agent, floor, Claim::Raise).await?
    }

    /// The agent's durable resume point after applying `claim` with the
    /// Hello's `first_unacked_seq` = `floor` (see [`crate::ledger::claim`]):
    /// `Some(None)` for an agent without one, `None` if the sink failed.
    pub async fn claim(&self, agent: Arc<str>, floor: u64, claim: Claim) -> Option<Option<u64>> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Request::Resume(agent, floor, claim, tx)).await.ok()?;
        rx.await.ok().flatten()
    }
}

/// Starts the commit thread over `sink`, with resume points `resume` (from
/// [`crate::sink::FileSink::open`], or empty) and a queue of `queue`
/// requests. The thread ends when every handle is dropped.
pub fn spawn(mut sink: Box<dyn Sink>, mut resume: ResumePoints, metrics: Arc<Metrics>, queue: usize) -> (CommitHandle, std::thread::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Request>(queue.max(1));
    let (failed_tx, failed_rx) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("edge-commit".into())
        .spawn(move || {
            let mut failed = false;
            let mut group = Vec::with_capacity(64);
            let mut buf = Vec::with_capacity(1 << 20);
            while let Some(first) = rx.blocking_recv() {
                group.push(first);
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(r) => group.push(r),
                        Err(_) => break,
                    }
                }
                buf.clear();
                let mut appended = false;
                let fail = |e: &std::io::Error, failed: &mut bool| {
                    tracing::error!(error = %e, "sink failed; refusing every record, shutting down to be restarted");
                    Metrics::inc(&metrics.sink_errors_total);
                    *failed = true;
                    let _ = failed_tx.send(true);
                };
                let mut outcomes = Vec::with_capacity(group.len());
                let mut written_total = 0u64;
                for req in &group {
                    match req {
                        Request::Store(l, _) => {
                            let o = if failed { StoreOutcome::Failed } else { plan(&mut resume, l, &mut buf) };
                            if !failed && buf.len() >= APPEND_CHUNK {
                                if let Err(e) = sink.append(&buf) {
                                    fail(&e, &mut failed);
                                }
                                appended = true;
                                buf.clear();
                            }
                            if let StoreOutcome::Stored { written, .. } = o {
                                written_total += u64::from(written);
                                Metrics::add(&metrics.records_duplicate_total, l.ends.len() as u64 - u64::from(written));
                            }
                            outcomes.push(Some(o));
                        }
                        Request::Resume(agent, floor, how, _) => {
                            claim(&mut resume, agent, *floor, *how);
                            outcomes.push(None);
                        }
                    }
                }
                // A group that wrote nothing (resume points only, or only
                // duplicates) has nothing to make durable: every earlier
                // group was committed before it was answered. So a
                // reconnect storm's handshakes do not wait for an fsync.
                if !failed && (appended || !buf.is_empty()) {
                    let t = Instant::now();
                    let r = sink.append(&buf).and_then(|()| sink.commit(&resume));
                    buf.clear();
                    buf.shrink_to(APPEND_CHUNK);
                    let micros = t.elapsed().as_micros() as u64;
                    Metrics::inc(&metrics.sink_commits_total);
                    Metrics::add(&metrics.sink_commit_micros_total, micros);
                    metrics.sink_commit_micros_max.fetch_max(micros, std::sync::atomic::Ordering::Relaxed);
                    if let Err(e) = r {
                        fail(&e, &mut failed);
                    } else {
                        Metrics::add(&metrics.records_stored_total, written_total);
                    }
                }
                for (req, o) in group.drain(..).zip(outcomes) {
                    match req {
                        Request::Store(_, done) => {
                            let o = if failed { StoreOutcome::Failed } else { o.expect("store outcome") };
                            let _ = done.send(o);
                        }
                        Request::Resume(agent, _, _, done) => {
                            let _ = done.send(if failed { None } else { Some(resume.get(&*agent).copied()) });
                        }
                    }
                }
            }
        })
        .expect("spawn the commit thread");
    (CommitHandle { tx, failed: failed_rx }, thread)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Mem(Arc<Mutex<Vec<u8>>>, Arc<Mutex<bool>>, Arc<Mutex<u32>>);

    impl Sink for Mem {
        fn append(&mut self, lines: &[u8]) -> io::Result<()> {
            self.0.lock().unwrap().extend_from_slice(lines);
            Ok(())
        }
        fn commit(&mut self, _: &ResumePoints) -> io::Result<()> {
            *self.2.lock().unwrap() += 1;
            if *self.1.lock().unwrap() { Err(io::Error::other("disk gone")) } else { Ok(()) }
        }
        fn durable(&self) -> bool {
            true
        }
    }

    fn lines(agent: &Arc<str>, first_seq: u64, n: u64) -> Lines {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for s in first_seq..first_seq + n {
            bytes.extend_from_slice(format!("{s}\n").as_bytes());
            ends.push(bytes.len());
        }
        Lines { agent: agent.clone(), first_seq, bytes, ends }
    }

    #[tokio::test]
    async fn groups_that_write_nothing_do_not_commit() {
        let mem = Mem::default();
        let (h, _t) = spawn(Box::new(mem.clone()), ResumePoints::new(), Arc::new(Metrics::default()), 16);
        let a: Arc<str> = "a".into();
        for i in 0..5 {
            assert_eq!(h.resume(a.clone(), i).await, Some(i), "resume points need no commit");
        }
        assert_eq!(*mem.2.lock().unwrap(), 0);
        assert_eq!(h.store(lines(&a, 4, 2)).await.await.unwrap(), StoreOutcome::Stored { up_to: 5, written: 2 });
        assert_eq!(*mem.2.lock().unwrap(), 1, "written records are committed before the answer");
        assert_eq!(h.store(lines(&a, 4, 2)).await.await.unwrap(), StoreOutcome::Stored { up_to: 5, written: 0 });
        assert_eq!(*mem.2.lock().unwrap(), 1, "duplicates only: nothing new to commit");
        assert_eq!(h.resume(a, 0).await, Some(6));
    }

    #[tokio::test]
    async fn dedup_gap_and_failure() {
        let mem = Mem::default();
        let (h, _t) = spawn(Box::new(mem.clone()), ResumePoints::new(), Arc::new(Metrics::default()), 16);
        let a: Arc<str> = "a".into();
        assert_eq!(h.store(lines(&a, 0, 2)).await.await.unwrap(), StoreOutcome::Gap { expected: 0 }, "no resume point asked");
        assert_eq!(h.resume(a.clone(), 3).await, Some(3));
        assert_eq!(h.store(lines(&a, 4, 2)).await.await.unwrap(), StoreOutcome::Gap { expected: 3 });
        assert_eq!(h.store(lines(&a, 3, 3)).await.await.unwrap(), StoreOutcome::Stored { up_to: 5, written: 3 });
        assert_eq!(h.store(lines(&a, 2, 6)).await.await.unwrap(), StoreOutcome::Stored { up_to: 7, written: 2 });
        assert_eq!(h.store(lines(&a, 4, 2)).await.await.unwrap(), StoreOutcome::Stored { up_to: 5, written: 0 });
        assert_eq!(h.resume(a.clone(), 0).await, Some(8), "never lowered");
        assert_eq!(String::from_utf8(mem.0.lock().unwrap().clone()).unwrap(), "3\n4\n5\n6\n7\n");
        *mem.1.lock().unwrap() = true;
        assert!(tokio::time::timeout(std::time::Duration::from_millis(10), h.failed()).await.is_err(), "not failed yet");
        assert_eq!(h.store(lines(&a, 8, 1)).await.await.unwrap(), StoreOutcome::Failed);
        h.failed().await;
        assert_eq!(h.store(lines(&a, 9, 1)).await.await.unwrap(), StoreOutcome::Failed);
        assert_eq!(h.resume(a, 0).await, None);
    }
}
