//! One agent connection on tokio: reads into a `BytesMut`, frames with
//! `agent_core`'s decoder, follows [`crate::session`]'s verdicts, and
//! pipelines batches to the commit thread.
//!
//! # Bounds
//!
//! Per connection the collector holds at most: the read buffer
//! ([`READ_CHUNK`] bytes), the decoder's buffer (`max_frame`), the lines of
//! at most `max_inflight` batches waiting for the sink (each about 2x its
//! frame plus ~100 bytes per record), and one outgoing frame. When
//! `max_inflight` batches wait, the socket is not read: the agent's send
//! window fills and it waits (backpressure), memory does not grow.
//!
//! # Handshake
//!
//! The Hello is judged by [`crate::session::first_frame`] (Reject 5, Close
//! 1), then its token (Reject 4 with `--retry-after-ms`), then the
//! admission rate ([`crate::admission`]: Reject 6 with the agent's slot),
//! and only then does the agent take a session; the Accept carries the
//! pacing advice `retry_window_ms` ([`Shared::retry_window_ms`]).
//!
//! # Timers
//!
//! The Hello must arrive within `handshake_timeout`. After it, a connection
//! from which no whole frame arrived for `ping_after` is sent a Ping, and
//! one silent (no whole frame) for `idle_timeout` is closed with code 3
//! (Timeout); bytes that never complete a frame (a slowloris) do not count.
//! A write that does not finish within `idle_timeout` ends the connection.

use crate::admission::Decision;
use crate::commit::StoreOutcome;
use crate::metrics::Metrics;
use crate::registry::{ConfigRow, TaskRow};
use crate::server::{unix_ms, Command, Shared, COMMAND_QUEUE};
use crate::session::{first_frame, HelloInfo, Refusal, Session, Step};
use agent_core::decoder::{DecoderStats, Feed, FrameDecoder};
use agent_core::message::{Accept, Ack, Close, CloseCode, Config, Message, Ping, Pong, Reject, Task};
use bytes::{Buf, BytesMut};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout, Instant};

/// Bytes read from a socket at a time.
pub const READ_CHUNK: usize = 16 * 1024;
/// How long a closing connection waits for the peer to read its last frame.
const LINGER: Duration = Duration::from_millis(500);

/// Writes `msg` as one frame onto `out`, numbering it with `seq`.
fn push_frame(out: &mut Vec<u8>, seq: &mut u32, msg: &Message<'_>) {
    let start = out.len();
    let mut room = 256;
    loop {
        out.resize(start + room, 0);
        match msg.encode(*seq, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                *seq = seq.wrapping_add(1);
                return;
            }
            Err(_) if room < (64 << 20) => room *= 4,
            Err(e) => panic!("a frame of more than 64 MiB: {e:?}"),
        }
    }
}

/// Writes `bytes`, half-closes, and waits briefly for the peer to close, so
/// the last frame is not lost to a reset.
async fn finish(mut stream: TcpStream, bytes: &[u8]) {
    finish_ref(&mut stream, bytes).await
}

async fn finish_ref(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = timeout(LINGER, stream.write_all(bytes)).await;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = timeout(LINGER, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// `reason` cut (at a character boundary) so that a Reject or Close
/// carrying it fits a peer `max_frame` of `peer_max_frame` bytes: 17 bytes
/// of framing, at most 13 of other fields.
fn fit(reason: &str, peer_max_frame: usize) -> &str {
    let room = peer_max_frame.saturating_sub(agent_core::frame::OVERHEAD + 13);
    if reason.len() <= room {
        return reason;
    }
    let mut end = room;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// The first (and only) frame of a refused handshake.
fn refusal_frame(r: &Refusal, peer_max_frame: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut seq = 0;
    match r {
        Refusal::Reject { code, reason, retry_after_ms } => {
            let reason = fit(reason, peer_max_frame);
            push_frame(&mut out, &mut seq, &Message::Reject(Reject { code: *code as u16, reason, retry_after_ms: *retry_after_ms }))
        }
        Refusal::Close { code, reason } => {
            push_frame(&mut out, &mut seq, &Message::Close(Close { code: *code as u16, reason: fit(reason, peer_max_frame) }))
        }
    }
    out
}

/// Answers a connection beyond `max_connections` with Reject 6 (Busy).
pub async fn reject_busy(stream: TcpStream, retry_after_ms: u32) {
    let mut out = Vec::new();
    let reject = Reject { code: CloseCode::Busy as u16, reason: "too many connections", retry_after_ms };
    push_frame(&mut out, &mut 0, &Message::Reject(reject));
    finish(stream, &out).await;
}

/// Moves the decoder's counters since `last` into the metrics.
fn note_decoder(m: &Metrics, now: DecoderStats, last: &mut DecoderStats) {
    Metrics::add(&m.decoder_skipped_bytes_total, now.skipped_bytes - last.skipped_bytes);
    Metrics::add(&m.decoder_bad_crc_total, now.bad_crc - last.bad_crc);
    Metrics::add(&m.decoder_oversized_total, now.oversized - last.oversized);
    *last = now;
}

/// Serves one connection to its end.
pub async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut conn = Conn {
        shared: shared.clone(),
        stream,
        peer,
        storage: vec![0u8; shared.cfg.max_frame as usize],
        rbuf: BytesMut::with_capacity(READ_CHUNK),
        out: Vec::with_capacity(1024),
        tx_seq: 0,
        last_stats: DecoderStats::default(),
        peer_max_frame: agent_core::frame::MIN_MAX_FRAME,
    };
    conn.run().await;
}

struct Conn {
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    storage: Vec<u8>,
    rbuf: BytesMut,
    out: Vec<u8>,
    tx_seq: u32,
    last_stats: DecoderStats,
    /// The agent's `Hello.max_frame` once known; until then the smallest
    /// any agent may announce.
    peer_max_frame: usize,
}

/// How the main loop ended.
enum End {
    /// Send this and close.
    Send(Refusal),
    /// Just close (the peer closed, or the socket failed).
    Quiet,
}

impl Conn {
    async fn run(&mut self) {
        // The decoder borrows its buffer for the whole connection.
        let mut storage = std::mem::take(&mut self.storage);
        let mut decoder = FrameDecoder::new(&mut storage);
        let hello = match timeout(self.shared.cfg.handshake_timeout, self.read_hello(&mut decoder)).await {
            Ok(Ok(h)) => h,
            Ok(Err(Some(r))) => return self.refuse(r).await,
            Ok(Err(None)) => return,
            Err(_) => {
                Metrics::inc(&self.shared.metrics.timeouts_total);
                tracing::debug!(peer = %self.peer, "no Hello within the handshake timeout");
                return self.refuse(Refusal::Close { code: CloseCode::Timeout, reason: "no Hello in time".into() }).await;
            }
        };
        self.peer_max_frame = (hello.max_frame as usize).max(agent_core::frame::MIN_MAX_FRAME);
        if !self.shared.auth.check(&hello.agent_id, &hello.auth_token) {
            Metrics::inc(&self.shared.metrics.rejects_unauthorized_total);
            tracing::warn!(peer = %self.peer, agent = %hello.agent_id, "bad auth token");
            let retry_after_ms = self.shared.cfg.retry_after_ms;
            return self.refuse(Refusal::Reject { code: CloseCode::Unauthorized, reason: "bad auth token".into(), retry_after_ms }).await;
        }
        // Admission after the token check: a bad token takes no capacity.
        if let Decision::Busy { retry_after_ms } = self.shared.admit(&hello.agent_id) {
            tracing::debug!(peer = %self.peer, agent = %hello.agent_id, retry_after_ms, "admission: busy");
            let reason = "handshake rate exceeded; come back after retry_after_ms".into();
            return self.refuse(Refusal::Reject { code: CloseCode::Busy, reason, retry_after_ms }).await;
        }
        let agent: Arc<str> = hello.agent_id.as_str().into();
        let conn_id = self.shared.conn_id();
        let (cmd_tx, mut cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        self.shared.register(&agent, conn_id, cmd_tx);
        self.shared.registry.hello(&hello, self.peer.to_string(), unix_ms());
        let end = self.session(&mut decoder, &hello, agent.clone(), &mut cmd_rx).await;
        note_decoder(&self.shared.metrics, decoder.stats(), &mut self.last_stats);
        if self.shared.unregister(&agent, conn_id) {
            self.shared.registry.offline(&agent, unix_ms());
        }
        if let End::Send(r) = end {
            self.refuse(r).await;
        }
    }

    async fn refuse(&mut self, r: Refusal) {
        match &r {
            Refusal::Reject { code: CloseCode::Incompatible, .. } => Metrics::inc(&self.shared.metrics.rejects_incompatible_total),
            Refusal::Close { code: CloseCode::ProtocolError, reason } => {
                Metrics::inc(&self.shared.metrics.protocol_errors_total);
                tracing::info!(peer = %self.peer, %reason, "protocol error; closing");
            }
            _ => {}
        }
        // Whatever was queued goes first; a Close continues this side's
        // frame count, a Reject is the first frame anyway.
        let mut bytes = std::mem::take(&mut self.out);
        match &r {
            Refusal::Close { code, reason } => {
                let reason = fit(reason, self.peer_max_frame);
                push_frame(&mut bytes, &mut self.tx_seq, &Message::Close(Close { code: *code as u16, reason }))
            }
            Refusal::Reject { .. } => bytes = refusal_frame(&r, self.peer_max_frame),
        }
        finish_ref(&mut self.stream, &bytes).await;
    }

    /// Reads until the first frame and judges it.
    async fn read_hello(&mut self, decoder: &mut FrameDecoder<'_>) -> Result<HelloInfo, Option<Refusal>> {
        loop {
            let judged = match decoder.feed(&self.rbuf) {
                Feed::Consumed => None,
                Feed::Frame { frame, remaining } => Some((first_frame(&frame, self.shared.cfg.max_frame), self.rbuf.len() - remaining.len())),
            };
            match judged {
                Some((r, used)) => {
                    self.rbuf.advance(used);
                    note_decoder(&self.shared.metrics, decoder.stats(), &mut self.last_stats);
                    return r.map_err(Some);
                }
                None => self.rbuf.clear(),
            }
            self.make_room();
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => return Err(None),
                Ok(n) => Metrics::add(&self.shared.metrics.bytes_in_total, n as u64),
            }
        }
    }

    /// Gives the read buffer room for a whole chunk again. (`BytesMut` only
    /// reclaims consumed space when asked to reserve; without this, reads
    /// shrink to whatever sliver is left at its end.)
    fn make_room(&mut self) {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 2 {
            self.rbuf.reserve(READ_CHUNK);
        }
    }

    async fn write_out(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let ok = matches!(timeout(self.shared.cfg.idle_timeout, self.stream.write_all(&self.out)).await, Ok(Ok(())));
        self.out.clear();
        ok
    }

    fn push(&mut self, msg: &Message<'_>) {
        push_frame(&mut self.out, &mut self.tx_seq, msg);
    }

    fn push_task(&mut self, t: &TaskRow, agent_max_frame: u32) {
        let msg = Message::Task(Task { object_name: &t.object_name, data_type: t.data_type, payload: &t.payload, token: &t.token });
        let start = self.out.len();
        self.push(&msg);
        if self.out.len() - start > agent_max_frame as usize {
            self.out.truncate(start);
            self.tx_seq = self.tx_seq.wrapping_sub(1);
            tracing::warn!(token = %t.token, "task larger than the agent's max_frame; failed");
            let r = crate::session::ResultInfo { token: t.token.clone(), status: 1, message: "task frame larger than the agent's max_frame".into() };
            self.shared.registry.task_result(&t.agent_id, r, unix_ms());
            return;
        }
        Metrics::inc(&self.shared.metrics.tasks_sent_total);
        self.shared.registry.task_sent(&t.token, unix_ms());
    }

    fn push_config(&mut self, c: &ConfigRow, agent_max_frame: u32) {
        let start = self.out.len();
        self.push(&Message::Config(Config { name: &c.name, version: &c.version, payload: &c.payload }));
        if self.out.len() - start > agent_max_frame as usize {
            self.out.truncate(start);
            self.tx_seq = self.tx_seq.wrapping_sub(1);
            tracing::warn!(config = %c.name, "config larger than the agent's max_frame; not sent");
            return;
        }
        Metrics::inc(&self.shared.metrics.configs_sent_total);
    }

    /// The accepted part of the connection.
    async fn session(&mut self, decoder: &mut FrameDecoder<'_>, hello: &HelloInfo, agent: Arc<str>, cmds: &mut mpsc::Receiver<Command>) -> End {
        let m = self.shared.metrics.clone();
        let cfg = self.shared.cfg.clone();
        let Some(resume) = self.shared.commit.resume(agent.clone(), hello.first_unacked_seq).await else {
            return End::Send(Refusal::Close { code: CloseCode::Shutdown, reason: "sink unavailable".into() });
        };
        if hello.next_seq != 0 && resume > hello.next_seq {
            Metrics::inc(&m.resume_conflicts_total);
            tracing::warn!(%agent, resume, agent_next_seq = hello.next_seq, "agent's next_seq is below the stored resume point (cloned agent id?)");
        }
        Metrics::inc(&m.accepts_total);
        tracing::debug!(%agent, peer = %self.peer, resume, "accepted");
        let retry_window_ms = self.shared.retry_window_ms();
        self.push(&Message::Accept(Accept { next_seq: resume, max_frame: cfg.max_frame, retry_window_ms }));
        let reg = self.shared.registry.clone();
        let a = agent.to_string();
        let (tasks, configs) = tokio::task::spawn_blocking(move || (reg.open_tasks(&a), reg.configs())).await.unwrap_or((Ok(vec![]), Ok(vec![])));
        for c in configs.unwrap_or_default() {
            self.push_config(&c, hello.max_frame);
        }
        for t in tasks.unwrap_or_default() {
            self.push_task(&t, hello.max_frame);
        }
        if !self.write_out().await {
            return End::Quiet;
        }

        let mut session = Session::new(agent.clone(), hello.hostname.clone(), resume);
        let mut pending: VecDeque<oneshot::Receiver<StoreOutcome>> = VecDeque::new();
        let mut acked: Option<u64> = None;
        let mut last_frame = Instant::now();
        let mut pinged = false;
        let mut nonce = 0u64;
        let mut stop = self.shared.shutdown.clone();
        loop {
            // Every whole frame already buffered.
            loop {
                let (step, used) = match decoder.feed(&self.rbuf) {
                    Feed::Consumed => {
                        self.rbuf.clear();
                        break;
                    }
                    Feed::Frame { frame, remaining } => (session.on_frame(&frame, unix_ms()), self.rbuf.len() - remaining.len()),
                };
                self.rbuf.advance(used);
                last_frame = Instant::now();
                pinged = false;
                match step {
                    Step::Store { lines, news } => {
                        Metrics::inc(&m.batches_in_total);
                        Metrics::add(&m.records_in_total, lines.ends.len() as u64);
                        let now = unix_ms();
                        self.shared.registry.seen(&agent, now);
                        if let Some(hb) = news.heartbeat {
                            self.shared.registry.heartbeat(&agent, *hb, now);
                        }
                        for p in news.plugins {
                            self.shared.registry.plugin(&agent, p, now);
                        }
                        for r in news.results {
                            Metrics::inc(&m.task_results_total);
                            self.shared.registry.task_result(&agent, r, now);
                        }
                        pending.push_back(self.shared.commit.store(lines).await);
                        while pending.len() >= cfg.max_inflight {
                            // Backpressure: the socket waits for the sink.
                            let front = pending.pop_front().expect("non-empty");
                            if let Err(end) = self.committed(front.await, &mut pending, &mut acked).await {
                                return end;
                            }
                        }
                    }
                    Step::Pong(nonce) => {
                        Metrics::inc(&m.pongs_sent_total);
                        self.push(&Message::Pong(Pong { nonce }));
                    }
                    Step::PongReceived(_) => {}
                    Step::Skip => Metrics::inc(&m.unknown_kinds_total),
                    Step::TaskResult(r) => {
                        Metrics::inc(&m.task_results_total);
                        self.shared.registry.task_result(&agent, r, unix_ms());
                    }
                    Step::PeerClosed { code, reason } => {
                        tracing::debug!(%agent, code, %reason, "agent closed");
                        let _ = self.write_out().await;
                        return End::Quiet;
                    }
                    Step::Refuse(r) => return End::Send(r),
                }
            }
            note_decoder(&m, decoder.stats(), &mut self.last_stats);
            if !self.write_out().await {
                return End::Quiet;
            }
            let deadline = if pinged { last_frame + cfg.idle_timeout } else { last_frame + cfg.ping_after };
            let reading = pending.len() < cfg.max_inflight;
            self.make_room();
            tokio::select! {
                biased;
                _ = stop.changed() => {
                    return End::Send(Refusal::Close { code: CloseCode::Shutdown, reason: "collector shutting down".into() });
                }
                r = async { pending.front_mut().expect("guarded").await }, if !pending.is_empty() => {
                    pending.pop_front();
                    if let Err(end) = self.committed(r, &mut pending, &mut acked).await {
                        return end;
                    }
                }
                cmd = cmds.recv() => match cmd {
                    Some(Command::Replaced) | None => {
                        tracing::info!(%agent, "replaced by a newer connection of the same agent id");
                        return End::Send(Refusal::Close { code: CloseCode::Normal, reason: "replaced by a newer connection".into() });
                    }
                    Some(Command::Task(t)) => self.push_task(&t, hello.max_frame),
                    Some(Command::Config(c)) => self.push_config(&c, hello.max_frame),
                },
                r = self.stream.read_buf(&mut self.rbuf), if reading => match r {
                    Ok(0) | Err(_) => return End::Quiet,
                    Ok(n) => Metrics::add(&m.bytes_in_total, n as u64),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if pinged {
                        Metrics::inc(&m.timeouts_total);
                        tracing::info!(%agent, "silent for the idle timeout; closing");
                        return End::Send(Refusal::Close { code: CloseCode::Timeout, reason: "idle timeout".into() });
                    }
                    pinged = true;
                    nonce += 1;
                    Metrics::inc(&m.pings_sent_total);
                    self.push(&Message::Ping(Ping { nonce }));
                }
            }
        }
    }

    /// Handles one commit answer (and any others already in), then sends
    /// one cumulative Ack.
    async fn committed(
        &mut self,
        first: Result<StoreOutcome, oneshot::error::RecvError>,
        pending: &mut VecDeque<oneshot::Receiver<StoreOutcome>>,
        acked: &mut Option<u64>,
    ) -> Result<(), End> {
        let mut outcome = first;
        loop {
            match outcome {
                Ok(StoreOutcome::Stored { up_to, .. }) => {
                    *acked = Some(acked.map_or(up_to, |a| a.max(up_to)));
                }
                Ok(StoreOutcome::Gap { expected }) => {
                    return Err(End::Send(Refusal::Close {
                        code: CloseCode::ProtocolError,
                        reason: format!("gap: the next record expected is {expected}"),
                    }))
                }
                Ok(StoreOutcome::Fenced) => {
                    return Err(End::Send(Refusal::Close { code: CloseCode::Normal, reason: "another collector writes this agent".into() }))
                }
                Ok(StoreOutcome::Failed) | Err(_) => {
                    return Err(End::Send(Refusal::Close { code: CloseCode::Shutdown, reason: "sink unavailable".into() }))
                }
            }
            match pending.front_mut().map(|r| r.try_recv()) {
                Some(Ok(o)) => {
                    pending.pop_front();
                    outcome = Ok(o);
                }
                _ => break,
            }
        }
        if let Some(up_to) = *acked {
            Metrics::inc(&self.shared.metrics.acks_total);
            self.push(&Message::Ack(Ack { up_to }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_fit_the_smallest_peer_frame() {
        let long = "é".repeat(100);
        for r in [
            Refusal::Reject { code: CloseCode::Busy, reason: long.clone(), retry_after_ms: u32::MAX },
            Refusal::Close { code: CloseCode::ProtocolError, reason: long.clone() },
        ] {
            let f = refusal_frame(&r, 64);
            assert!(f.len() <= 64, "{} bytes", f.len());
        }
        assert_eq!(fit("short", 64), "short");
        assert!(fit(&long, 64).chars().all(|c| c == 'é'));
    }
}
