//! How a fault acts when it starts: a cut kills one agent's connection, a
//! restart every connection and the collector's state, a stall postpones
//! what is queued. Refusals, corruption and busy answers act on each
//! connect or write while active (`Faults`' queries).

use super::World;
use crate::faults::{Fault, FaultKind};
use crate::link::Dir;

impl<'a> World<'a> {
    /// A fault starts: cuts and restarts act now; stalls postpone what is
    /// queued; the others act on each write or connect while active.
    pub(crate) fn apply_fault(&mut self, f: Fault) {
        match f.kind {
            FaultKind::Cut { agent, notify } => {
                if let Some(id) = self.sims[agent].conn {
                    self.cut(id, notify);
                }
            }
            FaultKind::Restart { lose_index, .. } => {
                let ids: Vec<u64> = self.conns.iter().filter(|c| !c.dead).map(|c| c.id).collect();
                for id in ids {
                    let notify = self.rng.chance(700).then(|| self.rng.range(1, 100));
                    self.cut(id, notify);
                }
                let names: Vec<&str> = self.sims.iter().map(|s| s.name).collect();
                self.server.collector.restart(lose_index, &names);
            }
            FaultKind::Stall { agent, dir } => {
                for c in self.conns.iter_mut().filter(|c| c.agent == agent) {
                    if dir != Some(Dir::Down) {
                        c.up.postpone(f.end);
                    }
                    if dir != Some(Dir::Up) {
                        c.down.postpone(f.end);
                    }
                }
            }
            FaultKind::Refuse { .. } | FaultKind::Corrupt { .. } | FaultKind::Busy { .. } => {}
        }
    }
}
