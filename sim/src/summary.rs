//! What one seed did ([`SeedRun`], its [`Summary`]), the totals over
//! many seeds, and the digest that pins "same seed, same run".

/// What one seed did, for the summary line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Agents in the fleet.
    pub agents: u64,
    /// Simulated time at the end of the run, ms.
    pub sim_ms: u64,
    /// Faults drawn.
    pub faults: u64,
    /// Connections the agents established.
    pub connections: u64,
    /// Connect attempts that failed.
    pub failures: u64,
    /// Records the collector stored.
    pub records: u64,
    /// Duplicate records the collector received (not stored again).
    pub dups: u64,
    /// Batches the collector refused as gaps.
    pub gaps: u64,
    /// Connections the collector closed for damage (the peer's habit).
    pub damaged_closes: u64,
    /// Hellos the real collector's admission answered Busy.
    pub busy_rejects: u64,
    /// Connections the real collector closed for a newer one of the agent.
    pub replaced: u64,
    /// Tasks answered twice (resent after the agent forgot the token).
    pub double_results: u64,
    /// Records the agents evicted (`DropOldest`).
    pub evicted: u64,
    /// Records the agents refused (ring full).
    pub refused: u64,
    /// Longest drain after the faults stopped, ms.
    pub max_drain_ms: u64,
    /// Largest drain time as per mille of its bound.
    pub max_drain_permille: u64,
    /// Most `handle_timeout` calls one agent got in one simulated second.
    pub max_timeouts_per_sec: u64,
    /// Most `poll_transmit` calls one agent made in one simulated second.
    pub max_polls_per_sec: u64,
}

impl Summary {
    /// Adds `s` to these totals: counts add up, maxima stay maxima.
    pub fn add(&mut self, s: &Summary) {
        self.agents += s.agents;
        self.sim_ms += s.sim_ms;
        self.faults += s.faults;
        self.connections += s.connections;
        self.failures += s.failures;
        self.records += s.records;
        self.dups += s.dups;
        self.gaps += s.gaps;
        self.damaged_closes += s.damaged_closes;
        self.busy_rejects += s.busy_rejects;
        self.replaced += s.replaced;
        self.double_results += s.double_results;
        self.evicted += s.evicted;
        self.refused += s.refused;
        self.max_drain_ms = self.max_drain_ms.max(s.max_drain_ms);
        self.max_drain_permille = self.max_drain_permille.max(s.max_drain_permille);
        self.max_timeouts_per_sec = self.max_timeouts_per_sec.max(s.max_timeouts_per_sec);
        self.max_polls_per_sec = self.max_polls_per_sec.max(s.max_polls_per_sec);
    }
}

/// One seed's run, as far as it shows from outside.
#[derive(Clone, Copy, Debug)]
pub struct SeedRun {
    /// The seed.
    pub seed: u64,
    /// Its summary.
    pub summary: Summary,
    /// Steps the world took (one per distinct instant with something due).
    pub steps: u64,
    /// The next number the world's generator would have drawn: it moves
    /// with every draw, so two runs that drew differently (another order,
    /// another count) almost surely differ here.
    pub rng_tail: u64,
}

impl SeedRun {
    /// One line that pins this run: the seed, steps, generator tail and
    /// summary (`EDGE_SIM_DIGEST=<file>` collects them, one per seed).
    pub fn digest_line(&self) -> String {
        format!("seed {} steps {} rng {:016x} {:?}", self.seed, self.steps, self.rng_tail, self.summary)
    }
}

/// FNV-1a (64 bit) over `lines`, each followed by a newline: a fixed hash,
/// the same on every platform and Rust version (unlike `DefaultHasher`).
pub fn digest<'l>(lines: impl IntoIterator<Item = &'l str>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for line in lines {
        for &b in line.as_bytes().iter().chain(b"\n") {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
