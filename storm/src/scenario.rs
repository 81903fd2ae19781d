//! What one run simulates: the fleet, the outage, the collector's rate, the
//! clients' reconnect strategy and the collector's kind; and the timeline
//! every run follows.

use core::fmt;

/// The agents boot at uniform random instants in `[0, BOOT_SPREAD_MS]`.
pub const BOOT_SPREAD_MS: u64 = 10_000;
/// The first restart: the collector goes down at this instant (every agent
/// has been connected and healthy for a long while by then).
pub const FIRST_RESTART_MS: u64 = 120_000;
/// The second restart goes down this long after the collector came back
/// from the first.
pub const SECOND_RESTART_AFTER_MS: u64 = 90_000;
/// A run stops this long after the last restart's collector came back,
/// whether or not every agent is back.
pub const LIMIT_AFTER_MS: u64 = 600_000;

/// How the clients reconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// The real `agent_core::Agent` at its default configuration.
    Agent,
    /// Model: exponential backoff from 500 ms, doubling to a 60-s cap, no
    /// jitter.
    NoJitter,
    /// Model: a retry every 5 s (the Elkeid agent's).
    Fixed5s,
    /// Model: "decorrelated jitter", `sleep = min(cap, uniform(base, prev * 3))`.
    Decorrelated,
    /// Model: "equal jitter", `c = min(cap, base * 2^n)`, `c/2 + uniform(0, c/2)`.
    EqualJitter,
}

impl Strategy {
    /// The model strategies, compared with the agent.
    pub const MODELS: [Strategy; 4] = [Strategy::NoJitter, Strategy::Fixed5s, Strategy::Decorrelated, Strategy::EqualJitter];

    /// Short name, as used in tables and file names.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Agent => "agent",
            Strategy::NoJitter => "no-jitter",
            Strategy::Fixed5s => "fixed-5s",
            Strategy::Decorrelated => "decorrelated",
            Strategy::EqualJitter => "equal-jitter",
        }
    }
}

/// What the collector does with Hellos beyond its rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// The collector since issue 10: `edge_collector::admission::Admission`
    /// (GCRA, Busy slots by agent id), `Accept.retry_window_ms` = the advice
    /// for the whole fleet.
    Paced,
    /// The collector before issue 10: the same GCRA rate, but a Hello beyond
    /// it is refused (the connection closes), no slots, no advice.
    Unpaced,
}

impl ServerKind {
    /// Short name, as used in tables and file names.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Paced => "paced",
            ServerKind::Unpaced => "unpaced",
        }
    }
}

/// One run's parameters. Everything random in the run derives from `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scenario {
    /// Agents in the fleet, `N`.
    pub agents: usize,
    /// How long the collector stays down at each restart, ms.
    pub outage_ms: u64,
    /// The collector's admission rate, handshakes per second, `R`.
    pub rate: u32,
    /// Restarts: 1 or 2.
    pub restarts: u8,
    /// How the clients reconnect.
    pub strategy: Strategy,
    /// What the collector does beyond its rate.
    pub server: ServerKind,
    /// The seed of every draw.
    pub seed: u64,
}

impl Scenario {
    /// `N / R` in ms, rounded up: the least time the collector needs to
    /// admit the whole fleet (the advice a paced collector sends).
    pub fn n_over_r_ms(&self) -> u64 {
        (1000 * self.agents as u64).div_ceil(u64::from(self.rate.max(1)))
    }

    /// When the collector goes down and comes back.
    pub fn timeline(&self) -> Timeline {
        let mut restarts = Vec::new();
        let mut down = FIRST_RESTART_MS;
        for _ in 0..self.restarts.max(1) {
            let up = down + self.outage_ms;
            restarts.push((down, up));
            down = up + SECOND_RESTART_AFTER_MS;
        }
        let limit = restarts.last().map_or(0, |&(_, up)| up) + LIMIT_AFTER_MS;
        Timeline { restarts, limit }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}+{} N={} R={}/s outage={}s restarts={} seed={}",
            self.strategy.name(),
            self.server.name(),
            self.agents,
            self.rate,
            self.outage_ms / 1000,
            self.restarts,
            self.seed
        )
    }
}

/// The restarts of a run, in ms on the fake clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// `(down, up)` of each restart: the collector is down in `[down, up)`.
    pub restarts: Vec<(u64, u64)>,
    /// The run stops here at the latest.
    pub limit: u64,
}

impl Timeline {
    /// The phase `t` falls in: 0 before the first restart (boot), `k` from
    /// the `k`-th restart's `down` until the next one's.
    pub fn phase(&self, t: u64) -> usize {
        self.restarts.iter().take_while(|&&(down, _)| down <= t).count()
    }

    /// Where phase `k` ends (the next restart, or the limit).
    pub fn phase_end(&self, k: usize) -> u64 {
        self.restarts.get(k).map_or(self.limit, |&(down, _)| down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_of_two_restarts() {
        let sc = Scenario {
            agents: 1000,
            outage_ms: 10_000,
            rate: 500,
            restarts: 2,
            strategy: Strategy::Agent,
            server: ServerKind::Paced,
            seed: 1,
        };
        let t = sc.timeline();
        assert_eq!(t.restarts, [(120_000, 130_000), (220_000, 230_000)]);
        assert_eq!(t.limit, 830_000);
        assert_eq!((t.phase(0), t.phase(119_999), t.phase(120_000), t.phase(229_999), t.phase(230_000)), (0, 0, 1, 2, 2));
        assert_eq!((t.phase_end(0), t.phase_end(1), t.phase_end(2)), (120_000, 220_000, 830_000));
        assert_eq!(sc.n_over_r_ms(), 2000);
    }
}
