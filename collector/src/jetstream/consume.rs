//! Reading the stream back: a durable pull consumer that writes every
//! record as the same JSON line the file sink writes (see
//! [`crate::line`]), so downstream tools see one format whichever sink
//! ran. Used by `examples/consumer.rs` and the tests.
//!
//! Lines reach `out` in stream order (per agent: sequence order, each
//! (agent, seq) once, as the stream holds them). The consumer acks a fetch
//! (ack policy "all") only after `out` was flushed, so a crash between the
//! two writes that fetch's lines again: the output is at least once, and a
//! reader that must not see a repeat drops lines whose `(agent, seq)` it
//! has seen.

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::Context;
use futures_util::StreamExt as _;
use std::io::{self, Write};
use std::time::Duration;

/// Most messages asked for per fetch.
pub const FETCH: usize = 1000;

fn io_err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

/// Copies records from stream `stream` through durable consumer `durable`
/// (created if missing: from the stream's start, ack all) to `out`, one
/// JSON line each, until a fetch waits `idle` without a message (or, with
/// `follow`, forever). Returns the lines written.
pub async fn consume<W: Write>(ctx: &Context, stream: &str, durable: &str, out: &mut W, idle: Duration, follow: bool) -> io::Result<u64> {
    let stream = ctx.get_stream(stream).await.map_err(|e| io_err("stream", e))?;
    let config = pull::Config { durable_name: Some(durable.to_string()), ack_policy: AckPolicy::All, deliver_policy: DeliverPolicy::All, ..Default::default() };
    let consumer = stream.get_or_create_consumer(durable, config).await.map_err(|e| io_err("consumer", e))?;
    let mut lines = 0u64;
    loop {
        let mut batch = consumer.fetch().max_messages(FETCH).expires(idle).messages().await.map_err(|e| io_err("fetch", e))?;
        let mut last = None;
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| io_err("fetch", e))?;
            out.write_all(&m.payload)?;
            out.write_all(b"\n")?;
            lines += 1;
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
