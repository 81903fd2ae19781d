//! Reading the stream back: a durable pull consumer that splits every
//! message ([`super::message`]: one writer round of one agent) back into
//! its records' JSON lines, the same lines the file sink writes (see
//! [`crate::line`]), so downstream tools see one format whichever sink
//! ran. Used by `examples/consumer.rs` and the tests.
//!
//! A message whose headers or line count do not fit the layout (not
//! written by the sink) stops the copy with an `InvalidData` error naming
//! its stream sequence; nothing of it is written and it is not acked.
//!
//! Lines reach `out` in stream order (per agent: sequence order, each
//! (agent, seq) once, as the stream holds them). The consumer acks a fetch
//! (ack policy "all") only after `out` was flushed, so a crash between the
//! two writes that fetch's lines again: the output is at least once, and a
//! reader that must not see a repeat drops lines whose `(agent, seq)` it
//! has seen.
//!
//! Opening the consumer and each fetch are retried when they fail (a 503
//! or a request that times out while the stream's or the consumer's leader
//! is being elected after a node loss, a dropped connection): every
//! [`RETRY_PAUSE`] for up to [`RETRY_FOR`] in a row, a fetch's retry after
//! the messages already written are acked; only a failure that lasts
//! longer ends the copy with its error. A stream that does not exist is
//! not waited for.

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use super::message;
use async_nats::jetstream::Context;
use futures_util::StreamExt as _;
use std::io::{self, Write};
use std::time::Duration;

/// Most messages asked for per fetch.
pub const FETCH: usize = 1000;
/// Most bytes asked for per fetch: the largest message a collector may
/// write (`--nats-max-message-bytes` at most 64 MiB) plus its headers.
pub const FETCH_BYTES: usize = crate::config::MAX_NATS_MAX_MESSAGE_BYTES + (1 << 20);

/// Longest run of failed fetches retried before the copy gives up.
pub const RETRY_FOR: Duration = Duration::from_secs(30);
/// Pause between two attempts of a failed fetch.
pub const RETRY_PAUSE: Duration = Duration::from_millis(250);

fn io_err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

/// Longest a fetch waits on an empty stream in a [`consume_all`] turn
/// that follows a turn which brought messages (`--follow` over several
/// streams): while any stream has news, an empty one costs at most this.
pub const TURN_WAIT: Duration = Duration::from_millis(50);

/// What one fetch of a [`Reader`] did.
enum Step {
    /// Messages written, flushed and acked; their lines.
    Got(u64),
    /// None within the wait.
    Idle,
    /// The fetch failed and is to be tried again (within [`RETRY_FOR`]).
    Retry,
}

/// One stream's durable consumer, read one fetch at a time.
struct Reader {
    consumer: async_nats::jetstream::consumer::PullConsumer,
    failing_since: Option<std::time::Instant>,
}

impl Reader {
    /// Durable consumer `durable` on `stream` (created if missing: from the
    /// stream's start, ack all).
    async fn open(ctx: &Context, stream: &str, durable: &str) -> io::Result<Reader> {
        let since = std::time::Instant::now();
        loop {
            match Self::try_open(ctx, stream, durable).await {
                Ok(consumer) => return Ok(Reader { consumer, failing_since: None }),
                Err((e, true)) if since.elapsed() < RETRY_FOR => {
                    tracing::warn!(error = %e, "opening the consumer failed; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// One attempt at opening the consumer; on failure its error and
    /// whether another attempt can help (not for a stream that does not
    /// exist or a name that cannot be one).
    async fn try_open(ctx: &Context, stream: &str, durable: &str) -> Result<async_nats::jetstream::consumer::PullConsumer, (io::Error, bool)> {
        use async_nats::jetstream::context::GetStreamErrorKind as Kind;
        let stream = ctx.get_stream(stream).await.map_err(|e| {
            let retry = match e.kind() {
                Kind::EmptyName | Kind::InvalidStreamName => false,
                Kind::JetStream(j) => j.error_code() != async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND,
                _ => true,
            };
            (io_err("stream", e), retry)
        })?;
        let config = pull::Config { durable_name: Some(durable.to_string()), ack_policy: AckPolicy::All, deliver_policy: DeliverPolicy::All, ..Default::default() };
        stream.get_or_create_consumer(durable, config).await.map_err(|e| (io_err("consumer", e), true))
    }

    /// One fetch (at most [`FETCH`] messages and [`FETCH_BYTES`], waiting
    /// up to `wait` for the first): its lines to `out`, flushed, then acked.
    /// A failed fetch is [`Step::Retry`] after [`RETRY_PAUSE`] until
    /// failures have lasted [`RETRY_FOR`]; then its error.
    async fn step<W: Write>(&mut self, out: &mut W, wait: Duration) -> io::Result<Step> {
        let mut lines = 0u64;
        let mut last = None;
        let mut failed = None;
        match self.consumer.fetch().max_messages(FETCH).max_bytes(FETCH_BYTES).expires(wait).messages().await {
            Err(e) => failed = Some(io_err("fetch", e)),
            Ok(mut batch) => {
                while let Some(m) = batch.next().await {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) => {
                            failed = Some(io_err("fetch", e));
                            break;
                        }
                    };
                    let bad = |e: message::LayoutError| {
                        let at = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                        io::Error::new(io::ErrorKind::InvalidData, format!("stream sequence {at} on {}: {e}", m.subject))
                    };
                    let (first, last_seq) = message::range(|name| m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str())).map_err(bad)?;
                    lines += message::lines_in(first, last_seq, &m.payload).map_err(bad)?;
                    out.write_all(&m.payload)?;
                    if m.payload.last() != Some(&b'\n') {
                        out.write_all(b"\n")?;
                    }
                    last = Some(m);
                }
            }
        }
        let got = last.is_some();
        if let Some(m) = last {
            out.flush()?;
            m.double_ack().await.map_err(|e| io_err("ack", e))?;
        }
        match failed {
            Some(e) => {
                let since = *self.failing_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= RETRY_FOR {
                    return Err(e);
                }
                tracing::warn!(error = %e, "fetch failed; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
                Ok(if got { Step::Got(lines) } else { Step::Retry })
            }
            None => {
                self.failing_since = None;
                Ok(if got { Step::Got(lines) } else { Step::Idle })
            }
        }
    }
}

/// Copies records from stream `stream` through durable consumer `durable`
/// (created if missing: from the stream's start, ack all) to `out`, one
/// JSON line each, until a fetch waits `idle` without a message (or, with
/// `follow`, forever). Returns the lines (records) written.
pub async fn consume<W: Write>(ctx: &Context, stream: &str, durable: &str, out: &mut W, idle: Duration, follow: bool) -> io::Result<u64> {
    let mut reader = Reader::open(ctx, stream, durable).await?;
    let mut lines = 0u64;
    loop {
        match reader.step(out, idle).await? {
            Step::Got(n) => lines += n,
            Step::Idle if !follow => return Ok(lines),
            Step::Idle | Step::Retry => {}
        }
    }
}

/// [`consume`] over every stream of a partitioned sink
/// (`--nats-partitions`; [`super::subject::stream_name`] gives the names),
/// each through its own durable consumer `durable`. Each agent is in one
/// stream, so per agent the lines keep their order; across streams they
/// interleave by fetch. Without `follow` it drains each stream in turn
/// and returns. With `follow` it takes turns: one fetch per stream per
/// turn (at most [`FETCH`] messages), so a busy stream delays another by
/// at most one fetch and never starves it; in a turn after one that
/// brought messages an empty stream is waited on for at most
/// [`TURN_WAIT`], after a turn without any for `idle / streams` (at least
/// [`TURN_WAIT`]), so an idle turn lasts about `idle`.
pub async fn consume_all<W: Write>(ctx: &Context, streams: &[String], durable: &str, out: &mut W, idle: Duration, follow: bool) -> io::Result<u64> {
    if !follow || streams.len() == 1 {
        let mut lines = 0;
        for s in streams {
            lines += consume(ctx, s, durable, out, idle, follow).await?;
        }
        return Ok(lines);
    }
    let mut readers = Vec::with_capacity(streams.len());
    for s in streams {
        readers.push(Reader::open(ctx, s, durable).await?);
    }
    let quiet_wait = (idle / streams.len() as u32).max(TURN_WAIT);
    let mut busy = true;
    loop {
        let wait = if busy { TURN_WAIT } else { quiet_wait };
        busy = false;
        for r in &mut readers {
            // Following never ends but by an error: no count to return.
            if let Step::Got(_) = r.step(out, wait).await? {
                busy = true;
            }
        }
    }
}
