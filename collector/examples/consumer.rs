//! Reads the JetStream sink's stream with a durable consumer and writes the
//! same JSON lines as the file sink (one record a line, see
//! `edge_collector::line`), to standard output or appended to a file. Each
//! stream message is one writer round of one agent (headers
//! `Edge-First-Seq`, `Edge-Last-Seq`; payload the round's lines): it is
//! split into its lines, their count checked against the headers
//! (`edge_collector::jetstream::message`); a message that does not fit
//! stops the consumer with exit status 1 and its stream sequence.
//!
//! ```text
//! cargo run --release -p edge-collector --example consumer -- \
//!     --url nats://127.0.0.1:4222 --stream EDGE_RECORDS --durable archive --out records.jsonl [--follow] [--partitions N]
//! ```
//!
//! `--partitions N`: the collectors ran with `--nats-partitions N`; the
//! streams `<stream>_0` .. `<stream>_<N-1>` are read, each through its own
//! durable consumer of the same name; with `--follow` they take turns, one
//! fetch (at most 1,000 messages) each, so a busy stream never holds up
//! another for longer than one fetch.
//!
//! The durable consumer remembers where it stopped: run it again and it
//! continues. Each fetch is acked only after the output was flushed, so
//! the output is at least once across a crash of this process; drop lines
//! whose `(agent, seq)` was seen if a repeat matters (the stream itself
//! holds each record once). Without `--follow` it stops once a fetch waits
//! `--idle` seconds (default 2) without a message.

use std::io::Write;
use std::time::Duration;

fn main() {
    let mut url = "nats://127.0.0.1:4222".to_string();
    let mut stream = "EDGE_RECORDS".to_string();
    let mut durable = "edge-consumer".to_string();
    let mut out: Option<String> = None;
    let mut idle = 2.0f64;
    let mut follow = false;
    let mut partitions = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--url" => url = value(),
            "--stream" => stream = value(),
            "--durable" => durable = value(),
            "--out" => out = Some(value()),
            "--idle" => idle = value().parse().unwrap_or_else(|_| usage("--idle takes seconds")),
            "--follow" => follow = true,
            "--partitions" => partitions = value().parse().ok().filter(|n| (1..=64).contains(n)).unwrap_or_else(|| usage("--partitions takes 1..=64")),
            _ => usage(&format!("unknown argument {a}")),
        }
    }
    if !(idle.is_finite() && idle > 0.0) {
        usage("--idle must be positive");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let r = rt.block_on(async {
        let client = async_nats::connect(url.as_str()).await.map_err(|e| std::io::Error::other(format!("connecting to {url}: {e}")))?;
        let ctx = async_nats::jetstream::new(client);
        let mut w: Box<dyn Write> = match &out {
            Some(p) => Box::new(std::io::BufWriter::new(std::fs::OpenOptions::new().create(true).append(true).open(p)?)),
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        let streams: Vec<String> = (0..partitions).map(|i| edge_collector::jetstream::subject::stream_name(&stream, partitions, i)).collect();
        edge_collector::jetstream::consume::consume_all(&ctx, &streams, &durable, &mut w, Duration::from_secs_f64(idle), follow).await
    });
    match r {
        Ok(n) => eprintln!("consumer: {n} lines written"),
        Err(e) => {
            eprintln!("consumer: {e}");
            std::process::exit(1);
        }
    }
}

fn usage(why: &str) -> ! {
    eprintln!("consumer: {why}\nusage: consumer [--url nats://HOST:PORT] [--stream NAME] [--durable NAME] [--out FILE] [--idle SECS] [--follow] [--partitions N]");
    std::process::exit(2);
}
