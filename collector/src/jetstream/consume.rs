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

fn io_err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

/// Copies records from stream `stream` through durable consumer `durable`
/// (created if missing: from the stream's start, ack all) to `out`, one
/// JSON line each, until a fetch waits `idle` without a message (or, with
/// `follow`, forever). Returns the lines (records) written.
pub async fn consume<W: Write>(ctx: &Context, stream: &str, durable: &str, out: &mut W, idle: Duration, follow: bool) -> io::Result<u64> {
    let stream = ctx.get_stream(stream).await.map_err(|e| io_err("stream", e))?;
    let config = pull::Config { durable_name: Some(durable.to_string()), ack_policy: AckPolicy::All, deliver_policy: DeliverPolicy::All, ..Default::default() };
    let consumer = stream.get_or_create_consumer(durable, config).await.map_err(|e| io_err("consumer", e))?;
    let mut lines = 0u64;
    loop {
        let mut batch = consumer.fetch().max_messages(FETCH).max_bytes(FETCH_BYTES).expires(idle).messages().await.map_err(|e| io_err("fetch", e))?;
        let mut last = None;
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| io_err("fetch", e))?;
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
        match last {
            Some(m) => {
                out.flush()?;
                m.double_ack().await.map_err(|e| io_err("ack", e))?;
            }
            None if follow => {}
            None => return Ok(lines),
        }
    }
}

/// [`consume`] over every stream of a partitioned sink
/// (`--nats-partitions`; [`super::subject::stream_name`] gives the names),
/// each through its own durable consumer `durable`. Each agent is in one
/// stream, so per agent the lines keep their order; across streams they
/// interleave by fetch. Without `follow` it drains each stream in turn
/// and returns; with `follow` it keeps visiting them, waiting up to `idle`
/// on each.
pub async fn consume_all<W: Write>(ctx: &Context, streams: &[String], durable: &str, out: &mut W, idle: Duration, follow: bool) -> io::Result<u64> {
    let mut lines = 0;
    loop {
        for s in streams {
            lines += consume(ctx, s, durable, out, idle, follow && streams.len() == 1).await?;
        }
        if !follow {
            return Ok(lines);
        }
    }
}
