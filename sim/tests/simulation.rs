//! The fleet simulation (crate docs of `edge_sim`: the model, the faults,
//! what is asserted and how to replay a seed): `EDGE_SIM_SEEDS` seeds
//! (default 200; CI uses 2000), or the one `EDGE_SIM_SEED`, against the
//! collector `EDGE_SIM_COLLECTOR` names. Every invariant is checked inside
//! each seed's run; a broken one fails that seed.

use edge_sim::{env_u64, run_fleet, Options};

const DEFAULT_SEEDS: u64 = 200;

#[test]
fn fleet_simulation() {
    let seeds: Vec<u64> = match env_u64("EDGE_SIM_SEED") {
        Some(s) => vec![s],
        None => (0..env_u64("EDGE_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    };
    let threads = env_u64("EDGE_SIM_THREADS")
        .map(|t| t.max(1) as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)));
    // EDGE_SIM_KEEP_GOING=1 runs every seed even after a failure.
    let keep_going = env_u64("EDGE_SIM_KEEP_GOING").is_some_and(|v| v != 0);
    let fleet = run_fleet(&seeds, threads, keep_going, &Options::from_env());
    if let Some(path) = std::env::var_os("EDGE_SIM_DIGEST") {
        let lines: String = fleet.runs.iter().map(|r| r.digest_line() + "\n").collect();
        std::fs::write(&path, lines).unwrap_or_else(|e| panic!("EDGE_SIM_DIGEST={path:?}: {e}"));
    }
    println!("{} seeds: {:?}", seeds.len(), fleet.total);
    assert!(fleet.failed.is_empty(), "simulation failed for EDGE_SIM_SEED={:?}", fleet.failed);
}
