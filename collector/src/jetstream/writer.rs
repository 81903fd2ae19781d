//! The JetStream writer: one task per agent that publishes that agent's
//! records in rounds, and the handle the connections use. See the module
//! docs of [`crate::jetstream`] for the rules.

use super::message::{self, Packed, Packer, FIRST_SEQ_HEADER, LAST_SEQ_HEADER};
use super::subject;
use crate::config::NatsSettings;
use crate::ledger::{plan, raise, Lines, ResumePoints, StoreOutcome};
use crate::metrics::Metrics;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use async_nats::jetstream::{self, Context};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Store requests queued per agent before a connection waits.
const AGENT_QUEUE: usize = 64;
/// Requests merged into one publishing round.
const MAX_ROUND: usize = 64;
/// Bytes of a message's headers beyond `--nats-max-message-bytes` that
/// the servers' `max_payload` must leave room for: the four headers with a
/// hex-encoded 4,096-byte agent id in `Nats-Msg-Id`.
pub const HEADER_ROOM: usize = 16 << 10;
/// A writer with nothing to do for this long ends (the next request of its
/// agent starts a fresh one, which re-reads the stream).
const WRITER_IDLE: Duration = Duration::from_secs(60);

enum Job {
    Resume(u64, oneshot::Sender<Option<u64>>),
    Store(Lines, oneshot::Sender<StoreOutcome>),
}

struct Entry {
    id: u64,
    tx: mpsc::Sender<Job>,
}

struct Inner {
    ctx: Context,
    /// The streams, one per partition ([`subject::partition`]).
    streams: Vec<Stream>,
    partitions: usize,
    prefix: String,
    metrics: Arc<Metrics>,
    writers: Mutex<HashMap<Arc<str>, Entry>>,
    /// Per agent, held by its writer for a lookup or a round: a new writer
    /// (a reconnect to this collector) reads the stream only after the old
    /// one's round landed.
    gates: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
    next_id: AtomicU64,
    /// Most payload bytes of one message (`--nats-max-message-bytes`).
    max_message: usize,
}

/// The JetStream sink: a connection to NATS and the per-agent writers
/// (cheap to clone).
#[derive(Clone)]
pub struct JetStream {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStream").field("prefix", &self.inner.prefix).finish_non_exhaustive()
    }
}

fn io_err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

impl JetStream {
    /// Connects to the servers and gets (or creates) the stream. Refuses
    /// servers whose `max_payload` cannot take a message of
    /// `--nats-max-message-bytes` plus 16 KiB for the headers, and an existing
    /// stream that does not take `<prefix>.>` or has fewer replicas than
    /// `--nats-replicas`.
    pub async fn connect(s: &NatsSettings, metrics: Arc<Metrics>) -> io::Result<JetStream> {
        let addrs = s.urls.iter().map(|u| u.parse::<async_nats::ServerAddr>().map_err(|e| io_err(u, e))).collect::<io::Result<Vec<_>>>()?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(s.ack_timeout))
            .max_reconnects(None)
            .connect(addrs)
            .await
            .map_err(|e| io_err("connecting to NATS", e))?;
        let max_payload = client.max_payload();
        if max_payload < s.max_message_bytes + HEADER_ROOM {
            return Err(io_err(
                "NATS",
                format!("the server's max_payload is {max_payload} bytes, below --nats-max-message-bytes {} plus {HEADER_ROOM} for the headers; lower the flag or raise max_payload", s.max_message_bytes),
            ));
        }
        let ctx = jetstream::ContextBuilder::new().timeout(s.ack_timeout).ack_timeout(s.ack_timeout).build(client);
        let mut streams = Vec::with_capacity(s.partitions);
        for i in 0..s.partitions {
            streams.push(open_stream(&ctx, s, i).await?);
        }
        Ok(JetStream {
            inner: Arc::new(Inner {
                ctx,
                streams,
                partitions: s.partitions,
                prefix: s.subject_prefix.clone(),
                metrics,
                writers: Mutex::new(HashMap::new()),
                gates: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                max_message: s.max_message_bytes,
            }),
        })
    }

    /// Starts a writer for `agent` (replacing the map's entry if `fresh`,
    /// else reusing a live one) and returns its queue.
    fn writer(&self, agent: &Arc<str>, fresh: bool) -> mpsc::Sender<Job> {
        let mut w = self.inner.writers.lock().unwrap();
        if !fresh {
            if let Some(e) = w.get(agent) {
                if !e.tx.is_closed() {
                    return e.tx.clone();
                }
            }
        }
        let (tx, rx) = mpsc::channel(AGENT_QUEUE);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let gate = self.inner.gates.lock().unwrap().entry(agent.clone()).or_default().clone();
        w.insert(agent.clone(), Entry { id, tx: tx.clone() });
        tokio::spawn(Writer { inner: self.inner.clone(), agent: agent.clone(), id, gate, state: None, broken: None }.run(rx));
        tx
    }

    /// The agent's resume point read from the stream, raised to `floor`;
    /// `None` if the stream could not be read. Starts a fresh writer for
    /// the agent (a new session).
    pub async fn resume(&self, agent: Arc<str>, floor: u64) -> Option<u64> {
        let (tx, rx) = oneshot::channel();
        self.writer(&agent, true).send(Job::Resume(floor, tx)).await.ok()?;
        rx.await.ok().flatten()
    }

    /// The number of subjects in the streams (agents with records there),
    /// from the streams' leaders; `None` if one could not be read.
    pub async fn agents(&self) -> Option<u64> {
        let mut sum = 0;
        for stream in &self.inner.streams {
            match stream.get_info().await {
                Ok(info) => sum += info.state.subjects_count,
                Err(e) => {
                    Metrics::inc(&self.inner.metrics.jetstream_errors_total);
                    tracing::warn!(error = %e, "reading the stream's subject count failed");
                    return None;
                }
            }
        }
        Some(sum)
    }

    /// Queues a batch's lines with the agent's writer; the answer comes once
    /// JetStream acked them (or refused).
    pub async fn store(&self, lines: Lines) -> oneshot::Receiver<StoreOutcome> {
        let (tx, rx) = oneshot::channel();
        let agent = lines.agent.clone();
        let mut job = Job::Store(lines, tx);
        for _ in 0..2 {
            match self.writer(&agent, false).send(job).await {
                Ok(()) => break,
                // The writer ended idle between the lookup and the send.
                Err(mpsc::error::SendError(j)) => job = j,
            }
        }
        rx
    }
}

/// Metadata key recording the partition count in every stream.
const PARTITIONS_KEY: &str = "edge.partitions";

/// Gets (or creates) stream `i` of `s.partitions`. Refuses one that does
/// not take its subjects, has fewer replicas than `--nats-replicas`, or
/// records another partition count.
async fn open_stream(ctx: &Context, s: &NatsSettings, i: usize) -> io::Result<Stream> {
    let name = subject::stream_name(&s.stream, s.partitions, i);
    let wanted = subject::stream_subjects(&s.subject_prefix, s.partitions, i);
    let config = jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![wanted.clone()],
        num_replicas: s.replicas,
        max_age: s.max_age,
        duplicate_window: s.duplicate_window,
        storage: jetstream::stream::StorageType::File,
        description: Some("edge-agent records, one subject per agent (edge-collector)".into()),
        metadata: HashMap::from([(PARTITIONS_KEY.to_string(), s.partitions.to_string())]),
        ..Default::default()
    };
    let mut stream = ctx.get_or_create_stream(config).await.map_err(|e| io_err("getting or creating the stream", e))?;
    let info = stream.info().await.map_err(|e| io_err("stream info", e))?;
    if !info.config.subjects.iter().any(|x| *x == wanted || x == ">") {
        return Err(io_err("stream", format!("{name} exists with subjects {:?}, not {wanted}", info.config.subjects)));
    }
    if info.config.num_replicas < s.replicas {
        return Err(io_err("stream", format!("{name} exists with {} replicas, fewer than --nats-replicas {}", info.config.num_replicas, s.replicas)));
    }
    // A stream from before partitions has no count: it is a single stream.
    let recorded = info.config.metadata.get(PARTITIONS_KEY).map_or("1", String::as_str);
    if recorded != s.partitions.to_string() {
        return Err(io_err("stream", format!("{name} was made for --nats-partitions {recorded}, not {}: agents would change streams", s.partitions)));
    }
    tracing::info!(stream = %name, subjects = %wanted, replicas = info.config.num_replicas, messages = info.state.messages, "JetStream sink ready");
    Ok(stream)
}

/// What a writer knows of its agent's subject.
#[derive(Debug, Clone, Copy)]
struct State {
    /// Stream sequence of the last message on the subject (0: none).
    last_sseq: u64,
}

struct Writer {
    inner: Arc<Inner>,
    agent: Arc<str>,
    id: u64,
    gate: Arc<tokio::sync::Mutex<()>>,
    /// `None` until read from the stream.
    state: Option<(State, ResumePoints)>,
    /// A round failed: every later store gets this.
    broken: Option<StoreOutcome>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(MAX_ROUND);
        let mut closing = false;
        loop {
            let first = if closing {
                rx.recv().await
            } else {
                match tokio::time::timeout(WRITER_IDLE, rx.recv()).await {
                    Ok(j) => j,
                    Err(_) => {
                        // Idle: leave the map, then serve what was queued.
                        let mut w = self.inner.writers.lock().unwrap();
                        if w.get(&self.agent).is_some_and(|e| e.id == self.id) {
                            w.remove(&self.agent);
                        }
                        drop(w);
                        rx.close();
                        closing = true;
                        continue;
                    }
                }
            };
            let Some(first) = first else { break };
            jobs.push(first);
            while jobs.len() < MAX_ROUND {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            let gate = self.gate.clone();
            let _held = gate.lock().await;
            let mut stores = Vec::new();
            for job in jobs.drain(..) {
                match job {
                    Job::Resume(floor, done) => {
                        // Stores queued before it belong to the old session.
                        self.round(std::mem::take(&mut stores)).await;
                        self.broken = None;
                        self.state = None;
                        let r = self.lookup().await.map(|()| {
                            let (_, resume) = self.state.as_mut().expect("looked up");
                            raise(resume, &self.agent, floor)
                        });
                        let _ = done.send(r);
                    }
                    Job::Store(l, done) => stores.push((l, done)),
                }
            }
            self.round(stores).await;
        }
        // The gate map keeps one small entry per agent seen; drop it when
        // nobody else holds this agent's gate.
        let mut gates = self.inner.gates.lock().unwrap();
        if gates.get(&self.agent).is_some_and(|g| Arc::strong_count(g) == 2) {
            gates.remove(&self.agent);
        }
    }

    /// Reads the agent's last message from the stream leader into `state`.
    async fn lookup(&mut self) -> Option<()> {
        Metrics::inc(&self.inner.metrics.jetstream_lookups_total);
        let subj = subject::subject(&self.inner.prefix, self.inner.partitions, &self.agent);
        let stream = &self.inner.streams[subject::partition(&self.agent, self.inner.partitions)];
        let (last_sseq, next) = match stream.get_last_raw_message_by_subject(&subj).await {
            Ok(m) => match message::range(|name| m.headers.get(name).map(|v| v.as_str())) {
                Ok((_, last)) => (m.sequence, last + 1),
                Err(e) => {
                    tracing::error!(agent = %self.agent, stream_seq = m.sequence, error = %e, "the last message on the agent's subject is not the sink's");
                    return None;
                }
            },
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => (0, 0),
            Err(e) => {
                Metrics::inc(&self.inner.metrics.jetstream_errors_total);
                tracing::warn!(agent = %self.agent, error = %e, "reading the agent's last record from the stream failed");
                return None;
            }
        };
        let mut resume = ResumePoints::new();
        resume.insert(self.agent.to_string(), next);
        self.state = Some((State { last_sseq }, resume));
        Some(())
    }

    /// Publishes the records of `stores` not yet in the stream, pipelined,
    /// then answers each.
    async fn round(&mut self, stores: Vec<(Lines, oneshot::Sender<StoreOutcome>)>) {
        if stores.is_empty() {
            return;
        }
        let m = self.inner.metrics.clone();
        if self.broken.is_none() && self.state.is_none() && self.lookup().await.is_none() {
            self.broken = Some(StoreOutcome::Failed);
        }
        if let Some(b) = self.broken {
            for (_, done) in stores {
                let _ = done.send(b);
            }
            return;
        }
        let (mut state, mut resume) = self.state.take().expect("looked up");
        // Plan every request: what is new, in order (contiguous: each store
        // planned starts at or below the resume point and moves it to its
        // end; a store overlapping it is trimmed to its new tail).
        let mut outcomes = Vec::with_capacity(stores.len());
        let mut packer = Packer::new(self.inner.max_message);
        let mut records = 0u64;
        let mut scratch = Vec::new();
        for (l, _) in &stores {
            scratch.clear();
            let o = plan(&mut resume, l, &mut scratch);
            if let StoreOutcome::Stored { written, .. } = o {
                let count = l.ends.len();
                let skip = count - written as usize;
                Metrics::add(&m.records_duplicate_total, skip as u64);
                for i in skip..count {
                    let from = if i == 0 { 0 } else { l.ends[i - 1] };
                    packer.push(l.first_seq + i as u64, &l.bytes[from..l.ends[i]]);
                }
                records += u64::from(written);
            }
            outcomes.push(o);
        }
        let messages = packer.finish();
        let result = if messages.is_empty() { Ok(()) } else { self.publish(&mut state, messages, records).await };
        if let Err(why) = result {
            self.broken = Some(why);
            for (_, done) in stores {
                let _ = done.send(why);
            }
            return;
        }
        self.state = Some((state, resume));
        for ((_, done), o) in stores.into_iter().zip(outcomes) {
            let _ = done.send(o);
        }
    }

    /// Publishes a round's `messages` (in sequence order, `records` records
    /// in all) one after the other, each fenced by the subject's last stream
    /// sequence (the previous message's, from its ack): one message and one
    /// ack per round unless the round is longer than
    /// `--nats-max-message-bytes`. A failure stops the round; the messages
    /// before it stay in the stream, and the next session's resume point
    /// (read from the stream) starts after them.
    async fn publish(&self, state: &mut State, messages: Vec<Packed>, records: u64) -> Result<(), StoreOutcome> {
        let m = &self.inner.metrics;
        let subj: async_nats::Subject = subject::subject(&self.inner.prefix, self.inner.partitions, &self.agent).into();
        let t = Instant::now();
        let mut stored = 0u64;
        let mut result = Ok(());
        Metrics::add(&m.jetstream_acks_pending, records);
        for msg in messages {
            let n = msg.last - msg.first + 1;
            match self.publish_one(&subj, state.last_sseq, msg).await {
                Ok(sseq) => {
                    state.last_sseq = sseq;
                    stored += n;
                }
                Err(o) => {
                    result = Err(o);
                    break;
                }
            }
        }
        m.jetstream_acks_pending.fetch_sub(records, Ordering::Relaxed);
        let micros = t.elapsed().as_micros() as u64;
        Metrics::inc(&m.jetstream_rounds_total);
        Metrics::add(&m.jetstream_publish_micros_total, micros);
        m.jetstream_publish_micros_max.fetch_max(micros, Ordering::Relaxed);
        Metrics::add(&m.records_stored_total, stored);
        if let Err(o) = result {
            if o == StoreOutcome::Fenced {
                Metrics::inc(&m.jetstream_fenced_total);
                tracing::info!(agent = %self.agent, "another writer wrote this agent's subject; closing the session");
            } else {
                Metrics::inc(&m.jetstream_errors_total);
            }
        }
        result
    }

    /// One message, fenced by `fence` (the subject's last stream sequence
    /// as this writer knows it); returns its stream sequence. A wrong last
    /// sequence, or a duplicate `Nats-Msg-Id` (another writer stored this
    /// very range), is [`StoreOutcome::Fenced`]; anything else that keeps
    /// it from being acked is [`StoreOutcome::Failed`].
    async fn publish_one(&self, subj: &async_nats::Subject, fence: u64, msg: Packed) -> Result<u64, StoreOutcome> {
        let mut h = async_nats::HeaderMap::new();
        h.insert(FIRST_SEQ_HEADER, msg.first.to_string().as_str());
        h.insert(LAST_SEQ_HEADER, msg.last.to_string().as_str());
        h.insert(async_nats::header::NATS_MESSAGE_ID, subject::msg_id(&self.agent, msg.first, msg.last).as_str());
        h.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, fence.to_string().as_str());
        let publish = PublishMessage::build().payload(msg.payload.into()).headers(h);
        let ack = self.inner.ctx.send_publish(subj.clone(), publish).await.map_err(|e| {
            tracing::warn!(agent = %self.agent, first = msg.first, error = %e, "publish failed");
            StoreOutcome::Failed
        })?;
        let ack = ack.await.map_err(|e| {
            if e.kind() == PublishErrorKind::WrongLastSequence {
                StoreOutcome::Fenced
            } else {
                tracing::warn!(agent = %self.agent, first = msg.first, error = %e, "message not stored");
                StoreOutcome::Failed
            }
        })?;
        if ack.duplicate {
            return Err(StoreOutcome::Fenced);
        }
        Ok(ack.sequence)
    }
}
