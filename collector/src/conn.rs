//! One agent connection on tokio: reads into a `BytesMut`, frames with
//! `agent_core`'s decoder, follows [`crate::session`]'s verdicts, and
//! pipelines batches to the commit thread.
//!
//! # Bounds
//!
//! Per connection the collector holds at most: the read buffer (about two
//! [`READ_CHUNK`]s), the decoder's buffer (`max_frame`), the lines of the
//! batches waiting for the sink (up to `max_inflight` batches and
//! `max_inflight_bytes` bytes, counted by capacity, plus the batch that
//! crossed the limit; a batch holds at most `max_batch_records` records,
//! checked before its lines are made), and the frames queued to send.
//! When either limit is reached the socket is not read: the agent's send
//! window fills and it waits (backpressure), memory does not grow. The
//! formulas are [`crate::bounds`].
//!
//! With TLS (`--tls-cert`), rustls adds its record buffers (up to about
//! 2 x 16 KiB while a record is in flight) to each connection.
//!
//! # Handshake
//!
//! With TLS the TLS handshake comes first, under the same deadline
//! (`handshake_timeout` from accept) and in the same `--max-handshakes`
//! place as the Hello; with mutual TLS the certificate's agent id must be
//! the Hello's (Reject 4 otherwise, before the token check).
//! Until its Hello a connection is one of the `--max-handshakes` waiting
//! ones ([`crate::handshakes`]; a newer one may evict it). Garbage and whole
//! frames of other kinds before the Hello are skipped and counted, within
//! `--prehello-bytes` and the handshake timeout ([`crate::handshake`]).
//! The Hello is judged by [`crate::handshake::pre_hello`] (Reject 5 for
//! another version or identity fields beyond their bounds, Reject 1 for an
//! impossible Hello, Close 1 for a malformed one), then its token (Reject 4
//! with `--retry-after-ms`), then the admission rate ([`crate::admission`]:
//! Reject 6 with the agent's slot), then a session slot (`--max-connections`:
//! Reject 6), then the agent's resume point by what the connection proved
//! ([`crate::auth::Identity`]; an unproven one never raises a known point,
//! takes a new id only within `--new-agents-per-sec` and `--max-agents`, and
//! never replaces a live session: Reject 7 or 6), and only then does the
//! agent take a session; the Accept carries the pacing advice
//! `retry_window_ms` ([`Shared::retry_window_ms`]).
//!
//! # Timers
//!
//! The Hello must arrive within `handshake_timeout`. After it, a connection
//! from which no whole frame arrived for `ping_after` is sent a Ping, and
//! one silent (no whole frame) for `idle_timeout` is closed with code 3
//! (Timeout); bytes that never complete a frame (a slowloris) do not count.
//! A write that does not finish within `idle_timeout` ends the connection.

use crate::admission::Decision;
use crate::auth::Identity;
use crate::handshake::{frame_len, pre_hello, PreHello, PreHelloBudget};
use crate::handshakes::Waiting;
use crate::ledger::Claim;
use crate::commit::StoreOutcome;
use crate::metrics::Metrics;
use crate::registry::{ConfigRow, TaskRow};
use crate::shared::{unix_ms, Command, Shared, COMMAND_QUEUE};
use crate::session::{HelloInfo, Refusal, Session, Step};
use agent_core::decoder::{DecoderStats, Feed, FrameDecoder};
use agent_core::message::{Accept, Ack, Close, CloseCode, Config, Message, Ping, Pong, Reject, Task};
use bytes::{Buf, BytesMut};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use crate::auth::Proof;
use crate::tls::{HandshakeFailure, PeerCert};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout, timeout_at, Instant};

/// A connection's byte stream: plain TCP or TLS over it.
pub trait AgentIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AgentIo for T {}

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
async fn finish_ref(stream: &mut dyn AgentIo, bytes: &[u8]) {
    let _ = timeout(LINGER, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await;
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
            push_frame(&mut out, &mut seq, &Message::Reject(Reject { code: *code as u16, reason: reason.into(), retry_after_ms: *retry_after_ms }))
        }
        Refusal::Close { code, reason } => {
            push_frame(&mut out, &mut seq, &Message::Close(Close { code: *code as u16, reason: fit(reason, peer_max_frame).into() }))
        }
    }
    out
}

/// The batches of one connection waiting for the sink, and their bytes.
struct Inflight {
    queue: VecDeque<(oneshot::Receiver<StoreOutcome>, usize)>,
    bytes: usize,
    metrics: Arc<Metrics>,
}

/// Heap bytes held by a batch's lines (by capacity: what it costs).
fn lines_bytes(l: &crate::ledger::Lines) -> usize {
    l.bytes.capacity() + l.ends.capacity() * std::mem::size_of::<usize>()
}

impl Inflight {
    fn push(&mut self, rx: oneshot::Receiver<StoreOutcome>, bytes: usize) {
        self.queue.push_back((rx, bytes));
        self.bytes += bytes;
        Metrics::add(&self.metrics.sink_queued_bytes, bytes as u64);
    }

    fn pop_front(&mut self) -> Option<oneshot::Receiver<StoreOutcome>> {
        let (rx, bytes) = self.queue.pop_front()?;
        self.bytes -= bytes;
        self.metrics.sink_queued_bytes.fetch_sub(bytes as u64, std::sync::atomic::Ordering::Relaxed);
        Some(rx)
    }

    /// True when the socket must not be read: `--max-inflight` batches or
    /// `--max-inflight-bytes` wait.
    fn full(&self, cfg: &crate::config::Config) -> bool {
        self.queue.len() >= cfg.max_inflight || self.bytes >= cfg.max_inflight_bytes
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.metrics.sink_queued_bytes.fetch_sub(self.bytes as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Moves the decoder's counters since `last` into the metrics.
fn note_decoder(m: &Metrics, now: DecoderStats, last: &mut DecoderStats) {
    Metrics::add(&m.decoder_skipped_bytes_total, now.skipped_bytes - last.skipped_bytes);
    Metrics::add(&m.decoder_bad_crc_total, now.bad_crc - last.bad_crc);
    Metrics::add(&m.decoder_oversized_total, now.oversized - last.oversized);
    *last = now;
}

/// Serves one connection to its end; `waiting` is its place among the
/// connections waiting for a Hello, left once the Hello is judged. With TLS
/// the handshake comes first, within the same `handshake_timeout` as the
/// Hello and in the same `waiting` place.
pub async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, conn_id: u64, mut waiting: Waiting) {
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + shared.cfg.handshake_timeout;
    let (stream, cert): (Box<dyn AgentIo>, PeerCert) = match &shared.tls {
        None => (Box::new(stream), PeerCert::Absent),
        Some(tls) => {
            let mut stop = shared.shutdown.clone();
            let accept = timeout_at(deadline, tls.acceptor().accept(stream));
            let r = tokio::select! {
                r = accept => r,
                _ = &mut waiting.evicted => return,
                _ = stop.changed() => return,
            };
            match r {
                Ok(Ok(s)) => {
                    Metrics::inc(&shared.metrics.tls_handshakes_total);
                    let cert = crate::tls::peer_cert(s.get_ref().1);
                    (Box::new(s), cert)
                }
                Ok(Err(e)) => {
                    let why = HandshakeFailure::of(&e);
                    why.count(&shared.metrics);
                    // Debug, not info: a flood of bad handshakes must not
                    // flood the log; the counters show them.
                    tracing::debug!(%peer, reason = %why, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    Metrics::inc(&shared.metrics.tls_handshake_timeouts_total);
                    tracing::debug!(%peer, "TLS handshake not finished within the handshake timeout");
                    return;
                }
            }
        }
    };
    let mut conn = Conn {
        shared: shared.clone(),
        stream,
        peer,
        cert,
        deadline,
        storage: vec![0u8; shared.cfg.max_frame as usize],
        rbuf: BytesMut::with_capacity(READ_CHUNK),
        out: Vec::with_capacity(1024),
        tx_seq: 0,
        last_stats: DecoderStats::default(),
        peer_max_frame: agent_core::frame::MIN_MAX_FRAME,
    };
    conn.run(conn_id, waiting).await;
}

struct Conn {
    shared: Arc<Shared>,
    stream: Box<dyn AgentIo>,
    peer: SocketAddr,
    /// The client certificate's agent, with mutual TLS.
    cert: PeerCert,
    /// When the Hello must have arrived (`handshake_timeout` after accept).
    deadline: Instant,
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
    async fn run(&mut self, conn_id: u64, mut waiting: Waiting) {
        // The decoder borrows its buffer for the whole connection.
        let mut storage = std::mem::take(&mut self.storage);
        let mut decoder = FrameDecoder::new(&mut storage);
        let mut stop = self.shared.shutdown.clone();
        let read = timeout_at(self.deadline, self.read_hello(&mut decoder));
        let hello = tokio::select! {
            r = read => r,
            _ = &mut waiting.evicted => {
                tracing::debug!(peer = %self.peer, "evicted before its Hello by a newer connection (--max-handshakes)");
                return;
            }
            _ = stop.changed() => return,
        };
        note_decoder(&self.shared.metrics, decoder.stats(), &mut self.last_stats);
        drop(waiting);
        let hello = match hello {
            Ok(Ok(h)) => h,
            Ok(Err(Some(r))) => return self.refuse(r).await,
            Ok(Err(None)) => return,
            Err(_) => {
                Metrics::inc(&self.shared.metrics.timeouts_total);
                tracing::debug!(peer = %self.peer, "no Hello within the handshake timeout");
                return self.refuse(Refusal::Close { code: CloseCode::Timeout, reason: "no Hello in time".into() }).await;
            }
        };
        self.peer_max_frame = hello.max_frame as usize;
        // With mutual TLS the certificate names the agent: another id is
        // refused before anything else (Reject 4), whatever the token.
        let certified = match &self.cert {
            PeerCert::Absent => false,
            PeerCert::Agent(id) if *id == hello.agent_id => true,
            PeerCert::Agent(_) | PeerCert::Unnamed => {
                Metrics::inc(&self.shared.metrics.rejects_cert_mismatch_total);
                tracing::warn!(peer = %self.peer, agent = %hello.agent_id, cert = ?self.cert, "Hello agent_id does not match the client certificate");
                let retry_after_ms = self.shared.cfg.retry_after_ms;
                let reason = "agent_id is not the one the client certificate names".into();
                return self.refuse(Refusal::Reject { code: CloseCode::Unauthorized, reason, retry_after_ms }).await;
            }
        };
        let Some(identity) = self.shared.auth.identify(&hello.agent_id, &hello.auth_token) else {
            Metrics::inc(&self.shared.metrics.rejects_unauthorized_total);
            tracing::warn!(peer = %self.peer, agent = %hello.agent_id, "bad auth token");
            let retry_after_ms = self.shared.cfg.retry_after_ms;
            return self.refuse(Refusal::Reject { code: CloseCode::Unauthorized, reason: "bad auth token".into(), retry_after_ms }).await;
        };
        let identity = if certified { Identity::Proven(Proof::ClientCertificate) } else { identity };
        // Admission after the token check: a bad token takes no capacity.
        if let Decision::Busy { retry_after_ms } = self.shared.admit(&hello.agent_id) {
            tracing::debug!(peer = %self.peer, agent = %hello.agent_id, retry_after_ms, "admission: busy");
            let reason = "handshake rate exceeded; come back after retry_after_ms".into();
            return self.refuse(Refusal::Reject { code: CloseCode::Busy, reason, retry_after_ms }).await;
        }
        // A session slot, counted from the Hello on (pre-Hello sockets
        // cannot take them).
        let Ok(_slot) = self.shared.session_slots.clone().try_acquire_owned() else {
            Metrics::inc(&self.shared.metrics.rejects_busy_total);
            let retry_after_ms = self.shared.busy_hint();
            return self.refuse(Refusal::Reject { code: CloseCode::Busy, reason: "too many connections".into(), retry_after_ms }).await;
        };
        let agent: Arc<str> = hello.agent_id.as_str().into();
        let resume = match self.resume_point(&hello, &agent, identity).await {
            Ok(r) => r,
            Err(r) => return self.refuse(r).await,
        };
        // A second connection for a live id: a proven one replaces it; an
        // unproven one only if the live one fails a liveness probe (a
        // half-open connection whose agent has moved on).
        let mut may_replace = identity.is_proven();
        if !may_replace {
            if let Some(alive) = self.shared.probe(&agent) {
                may_replace = timeout(self.shared.cfg.liveness_probe, alive.notified()).await.is_err();
            }
        }
        let (cmd_tx, mut cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        if !self.shared.register(&agent, conn_id, cmd_tx, may_replace) {
            Metrics::inc(&self.shared.metrics.rejects_conflict_total);
            tracing::info!(peer = %self.peer, %agent, "an unproven connection for an agent id that is live (and answered a probe) on another connection; refused");
            let retry_after_ms = self.shared.cfg.retry_after_ms;
            let reason = "agent id live on another connection; only a proven connection (--token-file) replaces it".into();
            return self.refuse(Refusal::Reject { code: CloseCode::Conflict, reason, retry_after_ms }).await;
        }
        self.shared.registry.hello(&hello, self.peer.to_string(), unix_ms());
        let end = self.session(&mut decoder, &hello, agent.clone(), resume, &mut cmd_rx).await;
        note_decoder(&self.shared.metrics, decoder.stats(), &mut self.last_stats);
        if self.shared.unregister(&agent, conn_id) {
            self.shared.registry.offline(&agent, unix_ms());
        }
        if let End::Send(r) = end {
            self.refuse(r).await;
        }
    }

    /// The resume point to Accept `hello` at, by what the connection
    /// proved (PROTOCOL.md, Identity), or why not.
    async fn resume_point(&mut self, hello: &HelloInfo, agent: &Arc<str>, identity: Identity) -> Result<u64, Refusal> {
        let m = self.shared.metrics.clone();
        let failed = || Refusal::Close { code: CloseCode::Shutdown, reason: "sink unavailable".into() };
        let floor = hello.first_unacked_seq;
        let point = if identity.is_proven() {
            self.shared.commit.claim(agent.clone(), floor, Claim::Raise).await.ok_or_else(failed)?
        } else {
            match self.shared.commit.claim(agent.clone(), floor, Claim::Lookup).await.ok_or_else(failed)? {
                Some(p) => Some(p),
                None => {
                    // A new id without proof: within the new-id budget and
                    // the agent table's bound only.
                    if let Err(retry_after_ms) = self.shared.take_new_id() {
                        Metrics::inc(&m.new_agents_refused_total);
                        let reason = "new agent ids arrive faster than --new-agents-per-sec".into();
                        return Err(Refusal::Reject { code: CloseCode::Busy, reason, retry_after_ms });
                    }
                    self.shared.commit.claim(agent.clone(), floor, Claim::Create { max_agents: self.shared.cfg.max_agents }).await.ok_or_else(failed)?
                }
            }
        };
        let Some(point) = point else {
            Metrics::inc(&m.new_agents_refused_total);
            tracing::warn!(%agent, max_agents = self.shared.cfg.max_agents, "agent table full; a new unproven id refused");
            return Err(Refusal::Reject { code: CloseCode::Busy, reason: "agent table full (--max-agents)".into(), retry_after_ms: self.shared.cfg.retry_after_ms });
        };
        if floor > point {
            // Only an unproven connection gets here: its claim that records
            // up to `floor` were acked elsewhere would free another agent's
            // records, so it is not taken.
            Metrics::inc(&m.resume_raises_refused_total);
            Metrics::inc(&m.rejects_conflict_total);
            tracing::info!(%agent, peer = %self.peer, first_unacked_seq = floor, "an unproven Hello above the stored resume point; refused (a per-agent token lets an agent resume beyond it)");
            let reason = "first_unacked_seq above the stored resume point; raising it needs a per-agent credential".into();
            return Err(Refusal::Reject { code: CloseCode::Conflict, reason, retry_after_ms: self.shared.cfg.retry_after_ms });
        }
        if hello.next_seq != 0 && point > hello.next_seq {
            Metrics::inc(&m.resume_conflicts_total);
            Metrics::inc(&m.rejects_conflict_total);
            tracing::warn!(%agent, resume = point, agent_next_seq = hello.next_seq, "agent's next_seq is below the stored resume point (cloned agent id?); refused");
            let reason = "next_seq below the stored resume point: another device uses this agent id, or the store is not this agent's".into();
            return Err(Refusal::Reject { code: CloseCode::Conflict, reason, retry_after_ms: self.shared.cfg.retry_after_ms });
        }
        Ok(point)
    }

    async fn refuse(&mut self, r: Refusal) {
        match &r {
            Refusal::Reject { code: CloseCode::Incompatible, .. } => Metrics::inc(&self.shared.metrics.rejects_incompatible_total),
            Refusal::Reject { code: CloseCode::ProtocolError, reason, .. } => {
                Metrics::inc(&self.shared.metrics.protocol_errors_total);
                tracing::info!(peer = %self.peer, %reason, "impossible Hello; refused");
            }
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
                push_frame(&mut bytes, &mut self.tx_seq, &Message::Close(Close { code: *code as u16, reason: reason.into() }))
            }
            Refusal::Reject { .. } => bytes = refusal_frame(&r, self.peer_max_frame),
        }
        finish_ref(self.stream.as_mut(), &bytes).await;
    }

    /// Reads until the Hello and judges it, skipping (and counting) the
    /// garbage and whole frames of other kinds before it, within
    /// `--prehello-bytes`.
    async fn read_hello(&mut self, decoder: &mut FrameDecoder<'_>) -> Result<HelloInfo, Option<Refusal>> {
        let m = self.shared.metrics.clone();
        let mut budget = PreHelloBudget::new(self.shared.cfg.prehello_bytes);
        let mut skipped_before = decoder.stats().skipped_bytes;
        let mut first_read = true;
        loop {
            let judged = match decoder.feed(&self.rbuf) {
                Feed::Consumed => None,
                Feed::Frame { frame, remaining } => {
                    Some((pre_hello(&frame, self.shared.cfg.max_frame, &self.shared.cfg.hello_bounds), frame_len(&frame), self.rbuf.len() - remaining.len()))
                }
            };
            let garbage = decoder.stats().skipped_bytes - skipped_before;
            skipped_before += garbage;
            Metrics::add(&m.prehello_bytes_skipped_total, garbage);
            let mut within = budget.spend(garbage);
            let skipped = matches!(judged, Some((PreHello::Skip, ..)));
            match judged {
                Some((PreHello::Hello(h), _, used)) => {
                    self.rbuf.advance(used);
                    return Ok(h);
                }
                Some((PreHello::Refuse(r), _, used)) => {
                    self.rbuf.advance(used);
                    return Err(Some(r));
                }
                Some((PreHello::Skip, len, used)) => {
                    self.rbuf.advance(used);
                    Metrics::inc(&m.prehello_frames_skipped_total);
                    Metrics::add(&m.prehello_bytes_skipped_total, len);
                    within &= budget.spend(len);
                }
                None => self.rbuf.clear(),
            }
            note_decoder(&m, decoder.stats(), &mut self.last_stats);
            if !within {
                Metrics::inc(&m.prehello_budget_exceeded_total);
                let reason = format!("no Hello within {} bytes", self.shared.cfg.prehello_bytes);
                return Err(Some(Refusal::Close { code: CloseCode::ProtocolError, reason }));
            }
            if skipped {
                // More frames may be buffered already.
                continue;
            }
            self.make_room();
            let first = std::mem::replace(&mut first_read, false);
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => return Err(None),
                Ok(n) => Metrics::add(&self.shared.metrics.bytes_in_total, n as u64),
            }
            // A TLS ClientHello (handshake record, version 3.x) on a plain
            // port: no Hello will come, say nothing and close.
            if first && self.shared.tls.is_none() && self.rbuf.starts_with(&[0x16, 0x03]) {
                Metrics::inc(&m.tls_on_plain_port_total);
                tracing::debug!(peer = %self.peer, "TLS ClientHello on the plain-TCP agent port; closed");
                return Err(None);
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
        // TLS buffers records: flush, so an Ack never waits in rustls (a
        // no-op on plain TCP).
        let stream = &mut self.stream;
        let out = &self.out;
        let write = async move {
            stream.write_all(out).await?;
            stream.flush().await
        };
        let ok = matches!(timeout(self.shared.cfg.idle_timeout, write).await, Ok(Ok(())));
        self.out.clear();
        ok
    }

    fn push(&mut self, msg: &Message<'_>) {
        push_frame(&mut self.out, &mut self.tx_seq, msg);
    }

    fn push_task(&mut self, t: &TaskRow, agent_max_frame: u32) {
        let msg = Message::Task(Task { object_name: t.object_name.as_str().into(), data_type: t.data_type, payload: &t.payload, token: t.token.as_str().into() });
        let start = self.out.len();
        self.push(&msg);
        if self.out.len() - start > agent_max_frame as usize {
            self.out.truncate(start);
            self.tx_seq = self.tx_seq.wrapping_sub(1);
            tracing::warn!(token = %t.token, "task larger than the agent's max_frame; failed");
            let r = crate::session::ResultInfo { token: t.token.clone(), status: 1, message: "task frame larger than the agent's max_frame".into() };
            self.shared.task_result(&t.agent_id, r, unix_ms());
            return;
        }
        Metrics::inc(&self.shared.metrics.tasks_sent_total);
        self.shared.task_sent(&t.token, unix_ms());
    }

    fn push_config(&mut self, c: &ConfigRow, agent_max_frame: u32) {
        let start = self.out.len();
        self.push(&Message::Config(Config { name: c.name.as_str().into(), version: c.version.as_str().into(), payload: &c.payload }));
        if self.out.len() - start > agent_max_frame as usize {
            self.out.truncate(start);
            self.tx_seq = self.tx_seq.wrapping_sub(1);
            tracing::warn!(config = %c.name, "config larger than the agent's max_frame; not sent");
            return;
        }
        Metrics::inc(&self.shared.metrics.configs_sent_total);
    }

    /// What a Hello is sent: every config, and the agent's tasks without a
    /// result (from the shared registry with the JetStream sink, else from
    /// SQLite).
    async fn open_tasks_and_configs(shared: Arc<Shared>, agent: &str) -> (Result<Vec<TaskRow>, String>, Result<Vec<ConfigRow>, String>) {
        #[cfg(feature = "jetstream")]
        if let Some(kv) = &shared.kv {
            let tasks = kv.open_tasks(agent).await;
            if let Err(e) = &tasks {
                tracing::warn!(%agent, error = %e, "JetStream KV: the agent's open tasks not read; they go out at its next Hello");
            }
            return (tasks, Ok(kv.configs()));
        }
        let reg = shared.registry.clone();
        let a = agent.to_string();
        tokio::task::spawn_blocking(move || (reg.open_tasks(&a), reg.configs())).await.unwrap_or((Ok(vec![]), Ok(vec![])))
    }

    /// The accepted part of the connection.
    async fn session(&mut self, decoder: &mut FrameDecoder<'_>, hello: &HelloInfo, agent: Arc<str>, resume: u64, cmds: &mut mpsc::Receiver<Command>) -> End {
        let m = self.shared.metrics.clone();
        let cfg = self.shared.cfg.clone();
        Metrics::inc(&m.accepts_total);
        tracing::debug!(%agent, peer = %self.peer, resume, "accepted");
        let retry_window_ms = self.shared.retry_window_ms();
        self.push(&Message::Accept(Accept { next_seq: resume, max_frame: cfg.max_frame, retry_window_ms }));
        let (tasks, configs) = Self::open_tasks_and_configs(self.shared.clone(), &agent).await;
        for c in configs.unwrap_or_default() {
            self.push_config(&c, hello.max_frame);
        }
        for t in tasks.unwrap_or_default() {
            self.push_task(&t, hello.max_frame);
        }
        if !self.write_out().await {
            return End::Quiet;
        }

        let mut session = Session::new(agent.clone(), hello.hostname.clone(), resume).with_max_records(cfg.max_batch_records);
        let mut pending = Inflight { queue: VecDeque::new(), bytes: 0, metrics: m.clone() };
        let mut acked: Option<u64> = None;
        let mut last_frame = Instant::now();
        let mut pinged = false;
        let mut nonce = 0u64;
        let mut stop = self.shared.shutdown.clone();
        let mut probes: Vec<Arc<tokio::sync::Notify>> = Vec::new();
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
                for p in probes.drain(..) {
                    p.notify_one();
                }
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
                            self.shared.task_result_before_ack(&agent, r, now).await;
                        }
                        let bytes = lines_bytes(&lines);
                        pending.push(self.shared.commit.store(lines).await, bytes);
                        while pending.full(&cfg) {
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
                        self.shared.task_result(&agent, r, unix_ms());
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
            let reading = !pending.full(&cfg);
            self.make_room();
            tokio::select! {
                biased;
                _ = stop.changed() => {
                    return End::Send(Refusal::Close { code: CloseCode::Shutdown, reason: "collector shutting down".into() });
                }
                r = async { (&mut pending.queue.front_mut().expect("guarded").0).await }, if !pending.queue.is_empty() => {
                    pending.pop_front();
                    if let Err(end) = self.committed(r, &mut pending, &mut acked).await {
                        return end;
                    }
                }
                cmd = cmds.recv() => match cmd {
                    Some(Command::Replaced) | None => {
                        tracing::info!(%agent, "replaced by a newer, proven connection of the same agent id");
                        return End::Send(Refusal::Close { code: CloseCode::Conflict, reason: "replaced by a newer connection of this agent id".into() });
                    }
                    Some(Command::Probe(p)) => {
                        // One Ping answers every probe waiting: a flood of
                        // claims on this id costs the agent one Ping per
                        // round trip, not one per claim.
                        if probes.is_empty() {
                            nonce += 1;
                            Metrics::inc(&m.pings_sent_total);
                            self.push(&Message::Ping(Ping { nonce }));
                        }
                        probes.push(p);
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
        pending: &mut Inflight,
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
                    return Err(End::Send(Refusal::Close { code: CloseCode::Conflict, reason: "another collector writes this agent".into() }))
                }
                Ok(StoreOutcome::Failed) | Err(_) => {
                    return Err(End::Send(Refusal::Close { code: CloseCode::Shutdown, reason: "sink unavailable".into() }))
                }
            }
            match pending.queue.front_mut().map(|(r, _)| r.try_recv()) {
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
