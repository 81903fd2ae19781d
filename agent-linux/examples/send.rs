//! An agent on Linux against a collector, in a few lines:
//!
//! ```text
//! cargo run -p edge-collector -- --data-dir /tmp/edge --listen 127.0.0.1:7070 &
//! cargo run -p edge-agent-linux --example send -- 127.0.0.1:7070 [more host:port ...]
//! ```
//!
//! Pushes ten records from a second thread, answers tasks, prints configs,
//! then stops cleanly (Ctrl-C stops it early, drained just the same).

use edge_agent_linux::agent_core::Duration;
use edge_agent_linux::{Host, HostConfig, HostEvent};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoints: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = HostConfig::new("example-agent", if endpoints.is_empty() { vec!["127.0.0.1:7070".into()] } else { endpoints });
    cfg.handle_signals = true;
    let host = Host::new(cfg, |host: &Host, ev: &HostEvent<'_>| match ev {
        HostEvent::Task { token, payload, .. } => {
            let _ = host.task_result(token, 0, &format!("got {} bytes", payload.len()));
        }
        HostEvent::Config { name, version, .. } => println!("config {name} {version}"),
        other => println!("{other:?}"),
    })?;
    host.start()?;

    let pusher = host.clone();
    std::thread::spawn(move || {
        for i in 0..10 {
            let _ = pusher.push(2001, format!("reading {i}").as_bytes());
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        pusher.begin_stop(Duration::from_secs(5));
    });

    let report = host.wait()?;
    println!("stopped: drained={} unacked={} acked={}", report.drained, report.unacked, report.stats.acked);
    Ok(())
}
