//! `edge-collector`: the collector as a program. See `--help` and the
//! crate's README.

use clap::Parser as _;
use edge_collector::config::Args;
use edge_collector::Collector;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// Exit status after a sink failure (a write or fsync error): a supervisor
/// restarts the collector, whose start re-reads the files.
const SINK_FAILED: u8 = 3;

fn main() -> ExitCode {
    let args = match Args::parse().with_file() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("edge-collector: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = match &args.log {
        Some(f) => EnvFilter::try_new(f),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            eprintln!("edge-collector: --log: {e}");
            return ExitCode::from(2);
        }
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
    let cfg = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edge-collector: {e}");
            return ExitCode::from(2);
        }
    };
    let fds = raise_fd_limit();
    if let Some(limit) = fds {
        let needed = cfg.descriptors_needed();
        if needed > limit {
            eprintln!(
                "edge-collector: invalid configuration: the open-file limit (RLIMIT_NOFILE) is {limit}, below the {needed} descriptors \
                 this configuration may hold (--max-connections {} + --api-max-connections {} + {} for files and refusals); \
                 raise the limit (ulimit -n, systemd LimitNOFILE=) or lower the connection limits",
                cfg.max_connections,
                cfg.api.as_ref().map_or(0, |_| cfg.api_limits.max_connections),
                edge_collector::config::FD_RESERVE,
            );
            return ExitCode::from(2);
        }
    }
    let stdout_sink = cfg.sink == edge_collector::config::SinkKind::Stdout;
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edge-collector: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let collector = match Collector::start(cfg).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        // Ready line for scripts and tests: the bound addresses. On stdout,
        // unless the records go there.
        let ready = format!("listening agents={} api={}", collector.agent_addr, collector.api_addr.map_or("off".to_string(), |a| a.to_string()));
        if stdout_sink {
            eprintln!("{ready}");
        } else {
            println!("{ready}");
        }
        let term = async {
            #[cfg(unix)]
            {
                let mut t = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
                tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = t.recv() => {} }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
        };
        let code = tokio::select! {
            _ = term => ExitCode::SUCCESS,
            _ = collector.sink_failed() => {
                tracing::error!("the sink failed: exiting with status {SINK_FAILED} to be restarted");
                ExitCode::from(SINK_FAILED)
            }
        };
        tracing::info!("shutting down");
        collector.shutdown().await;
        code
    })
}

/// Each connection costs a file descriptor: the soft limit (often 1024) is
/// raised to the hard limit, as servers do. The limit in force after that,
/// if it could be read.
fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
            tracing::warn!(soft, hard, "could not raise the open-file limit");
            return Some(soft);
        }
        return Some(hard);
    }
    Some(soft)
}
