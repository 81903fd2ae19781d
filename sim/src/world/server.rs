//! The collector wired to the network: what it receives is handed to it and
//! every resulting note checked (each stored record by
//! `invariants::validate_new`), its answers written back, connections it
//! closes or replaces closed; the tasks it resends after an Accept and the
//! tasks and configs it sends unprompted.

use super::World;
use crate::app::{PLUGIN_NAMES, PRODUCT};
use crate::invariants::validate_new;
use crate::link::Dir;
use crate::peer::{Answer, BatchOutcome, Note, Push};

impl<'a> World<'a> {
    /// The collector drops its side: socket closed, decoder slot freed.
    pub(crate) fn server_release(&mut self, id: u64) {
        let c = self.conn_mut(id).unwrap();
        c.server_open = false;
        c.up.q.clear();
        self.server.collector.release(id);
    }

    /// The collector closes after its last frame: the agent sees EOF after it.
    pub(crate) fn server_close(&mut self, id: u64) {
        let now = self.now;
        self.server_release(id);
        let c = self.conn_mut(id).unwrap();
        if c.agent_open && c.notify_at.is_none() {
            c.notify_at = Some(c.down.last_at.max(now) + 1);
        }
    }

    /// Writes every frame the peer has for the agent, one write each.
    pub(crate) fn server_flush(&mut self, id: u64) {
        while let Some(frame) = self.server.collector.poll_transmit(id) {
            self.send(id, Dir::Down, frame);
        }
    }

    /// The collector receives `bytes` on `id`: every resulting note checked,
    /// its answers written, the connection closed when it closed it.
    pub(crate) fn server_rx(&mut self, id: u64, bytes: &[u8]) {
        let now = self.now;
        let c = self.conn(id).unwrap();
        let (a, up_corrupted) = (c.agent, c.up_corrupted);
        let busy = self.faults.busy(now);
        let collector = &mut self.server.collector;
        let notes = collector.handle_received(id, bytes, now, busy);
        if !up_corrupted {
            let skips = collector.frame_seq_skips(id).expect("open collector connection");
            assert_eq!(skips, 0, "t={now} agent {a}: frame counter skipped on a clean link");
        }
        let mut agent_closed = false;
        for note in notes {
            agent_closed |= matches!(note, Note::Close(_));
            self.server_note(id, note);
        }
        self.server_flush(id);
        if !self.server.collector.is_open(id) {
            if agent_closed {
                self.server_release(id);
            } else {
                // Reject, gap or damage: the collector closed after its frame.
                self.server_close(id);
            }
        }
        // An older connection of the agent, replaced by this one (the real
        // collector's rule): Close 0 went out on it; then it is closed.
        for old in self.server.collector.take_closed_elsewhere() {
            if self.conn(old).is_some_and(|c| c.server_open) {
                self.server_flush(old);
                self.server_close(old);
            }
        }
    }

    /// Checks what the collector saw and did with one frame.
    pub(crate) fn server_note(&mut self, id: u64, note: Note) {
        let now = self.now;
        let c = self.conn(id).unwrap();
        let a = c.agent;
        match note {
            Note::Hello { agent_id, first_unacked_seq, next_seq, max_frame, stored_next, answer, .. } => {
                assert_eq!(agent_id, self.sims[a].name);
                assert_eq!(max_frame as usize, self.sims[a].plan.rx_len, "t={now} agent {a}: Hello.max_frame");
                let have = stored_next;
                assert!(
                    first_unacked_seq <= have && have <= next_seq,
                    "t={now} agent {a}: Hello resume {first_unacked_seq}..{next_seq} but the collector holds {have}"
                );
                match answer {
                    Answer::Reject { code, retry_after_ms } => {
                        if self.sims[a].conn == Some(id) {
                            self.sims[a].reject_retry = Some((code, retry_after_ms));
                        }
                    }
                    Answer::Accept { next_seq: resume } => {
                        let gap = self.server.task_gap;
                        let next = now + self.rng.range(1, 2 * gap);
                        let c = self.conn_mut(id).unwrap();
                        c.accepted = true;
                        c.accept_next = resume;
                        c.next_unsolicited = next;
                        self.resend_open_tasks(id, a);
                    }
                }
            }
            Note::Batch { first_seq, conn_next, ack_next, outcome, .. } => {
                assert!(
                    first_seq >= conn_next,
                    "t={now} agent {a}: batch from {first_seq} behind this connection's {conn_next}"
                );
                // The agent may skip ahead up to the latest Ack sent here
                // (records acked because an older connection's late batch
                // stored them), even before resending them here; until that
                // Ack arrives it may also go on from `conn_next`.
                assert!(
                    c.up_corrupted || first_seq <= conn_next.max(ack_next),
                    "t={now} agent {a}: batch from {first_seq} but this clean connection is at {conn_next} (acked to \
                     {ack_next})"
                );
                let BatchOutcome::Stored { new, dups, .. } = outcome else {
                    // A gap: frames were lost to corruption. Only a broken
                    // transport does that; the peer closed the connection.
                    return;
                };
                for d in dups {
                    let seq = d.seq;
                    let (first_conn, same) = d.earlier.expect("the collector stores every record below its resume point");
                    assert!(same, "t={now} agent {a}: seq {seq} received twice with different content");
                    assert_ne!(first_conn, id, "t={now} agent {a}: seq {seq} duplicated on one connection");
                }
                for seq in new {
                    let r = self.server.collector.record(self.sims[a].name, seq).unwrap();
                    let (dt, ts, payload) = (r.data_type, r.ts, r.payload.clone());
                    validate_new(a, now, &self.sims[a], &mut self.server.checks[a], dt, ts, &payload);
                }
            }
            Note::Ping(_) | Note::Close(_) => {}
            n => panic!("t={now} agent {a}: agent broke the protocol: {n:?}"),
        }
    }

    /// Resends on `id` every task of agent `a` without a stored result, in
    /// the order first sent (what the collector does after an Accept).
    pub(crate) fn resend_open_tasks(&mut self, id: u64, a: usize) {
        let open = self.server.checks[a].open.clone();
        for (token, p) in open {
            self.server.checks[a].resent.insert(token);
            self.server.collector.push(id, &p);
        }
    }

    /// The collector's unprompted frames on `id`: a Task (sometimes for an
    /// unknown target) or a Config, sometimes several at once.
    pub(crate) fn unsolicited(&mut self, id: u64) {
        let now = self.now;
        let a = self.conn(id).unwrap().agent;
        let gap = self.server.task_gap;
        self.conn_mut(id).unwrap().next_unsolicited = now + self.rng.range(1, 2 * gap);
        let burst = if self.rng.chance(200) { self.rng.range(2, 6) } else { 1 };
        for _ in 0..burst {
            if self.rng.chance(800) {
                let object = ["", PRODUCT, PLUGIN_NAMES[0], PLUGIN_NAMES[1], "nosuch"][self.rng.below(5) as usize];
                let known =
                    object.is_empty() || object == PRODUCT || PLUGIN_NAMES[..self.sims[a].plan.plugins].contains(&object);
                self.server.task_seq += 1;
                let token = format!("T{a}-{}", self.server.task_seq);
                let payload: Vec<u8> = (0..self.rng.range(0, 32)).map(|i| i as u8).collect();
                self.server.checks[a].tasks.insert(token.clone(), known);
                let p = Push::task(object, 6000, &payload, &token);
                self.server.checks[a].open.push((token, p.clone()));
                self.server.collector.push(id, &p);
            } else {
                let name = ["rules", "limits"][self.rng.below(2) as usize];
                let version = ["1", "2", "3"][self.rng.below(3) as usize];
                let payload = vec![b'x'; self.rng.range_usize(2, 64)];
                self.server.collector.push(id, &Push::config(name, version, &payload));
            }
            self.server_flush(id);
        }
    }
}
