//! `storm`: runs the reconnect-storm matrix of issue 10 and prints it as
//! markdown (see BENCHMARKS.md, "Reconnect storm").
//!
//! ```text
//! storm [--quick] [--seed N] [--csv DIR] [--threads K] [--only NAME]
//! ```
//!
//! * the matrix: N in {1000, 10000} (`--quick`: 1000 only), outage in
//!   {5, 10, 60, 120} s, R in {500, 2000}/s, 2 restarts; for the agent
//!   against the paced collector (ours), the agent against the unpaced one,
//!   and the four model strategies against the paced one;
//! * `--csv DIR`: the per-100-ms series of every run, and `DIR/index.csv`;
//! * `--threads K`: scenarios run K at a time (default 2);
//! * `--seed N`: the seed of every run (default 1);
//! * `--only NAME`: only the runs whose `strategy-collector` (e.g.
//!   `agent-paced`, `no-jitter-paced`) contains NAME.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use edge_storm::{csv, run, table, targets, Report, Scenario, ServerKind, Strategy};

struct Args {
    quick: bool,
    seed: u64,
    csv: Option<PathBuf>,
    threads: usize,
    only: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args { quick: false, seed: 1, csv: None, threads: 2, only: None };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => args.quick = true,
            "--seed" => args.seed = value("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--csv" => args.csv = Some(PathBuf::from(value("--csv")?)),
            "--threads" => args.threads = value("--threads")?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--only" => args.only = Some(value("--only")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    args.threads = args.threads.max(1);
    Ok(args)
}

/// Every scenario of the matrix, the most expensive first (the real
/// agents at the largest fleet), so the threads finish together.
fn matrix(args: &Args) -> Vec<Scenario> {
    let sizes: &[usize] = if args.quick { &[1000] } else { &[10_000, 1000] };
    let mut kinds = vec![(Strategy::Agent, ServerKind::Paced), (Strategy::Agent, ServerKind::Unpaced)];
    kinds.extend(Strategy::MODELS.iter().map(|&s| (s, ServerKind::Paced)));
    let mut out = Vec::new();
    for &agents in sizes {
        for &(strategy, server) in &kinds {
            for rate in [500, 2000] {
                for outage_s in [5, 10, 60, 120] {
                    let name = format!("{}-{}", strategy.name(), server.name());
                    if args.only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
                        continue;
                    }
                    out.push(Scenario { agents, outage_ms: outage_s * 1000, rate, restarts: 2, strategy, server, seed: args.seed });
                }
            }
        }
    }
    out
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("storm: {e}");
            }
            eprintln!("usage: storm [--quick] [--seed N] [--csv DIR] [--threads K] [--only NAME]");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let scenarios = matrix(&args);
    let results: Mutex<Vec<Option<Report>>> = Mutex::new(vec![None; scenarios.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..args.threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(sc) = scenarios.get(i) else { break };
                let t = Instant::now();
                let r = run(sc);
                let missed = targets::check(&r).iter().filter(|c| !c.met()).count();
                eprintln!("[{:>3}/{}] {sc}: {:.1} s wall, {} events, {missed} targets missed", i + 1, scenarios.len(), t.elapsed().as_secs_f64(), r.events);
                results.lock().expect("no thread panicked")[i] = Some(r);
            });
        }
    });
    // Tables in a fixed order: N descending, then as the matrix lists them.
    let reports: Vec<Report> = results.into_inner().expect("no thread panicked").into_iter().map(|r| r.expect("every scenario ran")).collect();
    let seed = args.seed;
    println!("### Reconnect storm: every scenario (seed {seed})\n");
    println!("Each cell: 1st / 2nd restart. Times in s after the collector is back.\n");
    for agents in [10_000, 1000] {
        let mine: Vec<Report> = reports.iter().filter(|r| r.scenario.agents == agents).cloned().collect();
        if !mine.is_empty() {
            println!("### N = {}\n", table::thousands(agents as u64));
            println!("{}", table::markdown(&mine));
        }
    }
    let agents = if args.quick { 1000 } else { 10_000 };
    println!("### Summary: N = {}, outages 10 s and 60 s\n", table::thousands(agents as u64));
    println!("{}", table::summary(&reports, agents, &[10_000, 60_000]));
    if let Some(dir) = &args.csv {
        match csv::write_all(dir, &reports) {
            Ok(()) => eprintln!("series written to {}", dir.display()),
            Err(e) => {
                eprintln!("storm: writing {}: {e}", dir.display());
                std::process::exit(1);
            }
        }
    }
    eprintln!("{} scenarios in {:.1} s wall ({} threads)", scenarios.len(), started.elapsed().as_secs_f64(), args.threads);
}
