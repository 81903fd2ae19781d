//! Connections that have not completed a Hello, limited apart from
//! sessions: at most `max` wait at once, and a new one beyond it evicts the
//! oldest waiting one.
//!
//! A real agent sends its Hello right after connecting, so it is always
//! among the newest; sockets that never send one (a scanner, a flood, a
//! stuck gateway) age to the front and are closed first. They can no longer
//! take the session slots (`--max-connections`, counted only from the
//! Hello on) and lock agents out: to push a real agent's handshake out, a
//! client must open `max` connections within that agent's round trip.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The waiting handshakes.
#[derive(Debug)]
pub struct Handshakes {
    max: usize,
    waiting: Mutex<BTreeMap<u64, oneshot::Sender<()>>>,
}

/// One waiting handshake; leaves the table when dropped.
#[derive(Debug)]
pub struct Waiting {
    table: Arc<Handshakes>,
    id: u64,
    /// Fires when a newer connection evicted this one.
    pub evicted: oneshot::Receiver<()>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.table.waiting.lock().unwrap().remove(&self.id);
    }
}

impl Handshakes {
    /// A table of at most `max` (at least 1) waiting handshakes.
    pub fn new(max: usize) -> Arc<Handshakes> {
        Arc::new(Handshakes { max: max.max(1), waiting: Mutex::new(BTreeMap::new()) })
    }

    /// Enters connection `id` (ids grow with age); true in the second
    /// value if an older one was evicted to make room.
    pub fn enter(self: &Arc<Self>, id: u64) -> (Waiting, bool) {
        let (tx, rx) = oneshot::channel();
        let mut w = self.waiting.lock().unwrap();
        let mut evicted = false;
        while w.len() >= self.max {
            if let Some((_, oldest)) = w.pop_first() {
                let _ = oldest.send(());
                evicted = true;
            }
        }
        w.insert(id, tx);
        (Waiting { table: self.clone(), id, evicted: rx }, evicted)
    }

    /// Handshakes waiting now.
    pub fn len(&self) -> usize {
        self.waiting.lock().unwrap().len()
    }

    /// True if none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_is_evicted_and_leaving_frees_room() {
        let t = Handshakes::new(2);
        let (mut a, e) = t.enter(1);
        assert!(!e);
        let (b, _) = t.enter(2);
        let (_c, e) = t.enter(3);
        assert!(e);
        assert!(a.evicted.try_recv().is_ok(), "the oldest was told");
        drop(a);
        assert_eq!(t.len(), 2);
        drop(b);
        let (_d, e) = t.enter(4);
        assert!(!e, "a finished handshake left room");
    }
}
