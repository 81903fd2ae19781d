//! Many seeds on a few threads: each seed's run is caught if it panics
//! (a broken invariant), reported with its replay line, and the summaries
//! add up to the totals.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::options::Options;
use crate::seed::run_seed;
use crate::summary::{SeedRun, Summary};

/// What a fleet of seeds did.
#[derive(Debug, Default)]
pub struct FleetOutcome {
    /// The seeds whose run broke an invariant, in the order they failed.
    pub failed: Vec<u64>,
    /// The summaries of the seeds that passed, added up.
    pub total: Summary,
    /// Every passed seed's run, by seed.
    pub runs: Vec<SeedRun>,
}

/// Runs `seeds` on `threads` threads (at least one). After the first
/// failure no new seed starts unless `keep_going`. A lone seed prints its
/// summary; a failed one prints `EDGE_SIM_SEED=<n>` to replay it.
pub fn run_fleet(seeds: &[u64], threads: usize, keep_going: bool, options: &Options) -> FleetOutcome {
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let failed = Mutex::new(Vec::new());
    let runs = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= seeds.len() || stop.load(Ordering::Relaxed) {
                    return;
                }
                let seed = seeds[i];
                match panic::catch_unwind(AssertUnwindSafe(|| run_seed(seed, options))) {
                    Ok(run) => {
                        if seeds.len() == 1 {
                            println!("seed {seed}: {:?}", run.summary);
                        }
                        runs.lock().unwrap().push(run);
                    }
                    Err(_) => {
                        eprintln!("simulation failed: replay with EDGE_SIM_SEED={seed}");
                        failed.lock().unwrap().push(seed);
                        stop.store(!keep_going, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut runs = runs.into_inner().unwrap();
    runs.sort_by_key(|r| r.seed);
    let mut total = Summary::default();
    for r in &runs {
        total.add(&r.summary);
    }
    FleetOutcome { failed: failed.into_inner().unwrap(), total, runs }
}
