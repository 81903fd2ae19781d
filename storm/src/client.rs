//! What the simulation asks of a fleet of clients: the real agents
//! ([`crate::fleet::Fleet`]) and the model clients
//! ([`crate::model::Models`]) answer the same inputs and act through the
//! same [`Net`].

use agent_core::TransportError;

use crate::net::{Net, Payload};

/// A fleet of clients, indexed `0..N`. Each input may make the client
/// connect, send, close, or set its timer, through `net`.
pub trait Clients {
    /// The client's timer fired (the first one is its boot).
    fn on_timer(&mut self, client: usize, now: u64, net: &mut Net);
    /// Its connect went through (`ok`) or was refused.
    fn on_connect(&mut self, client: usize, now: u64, ok: bool, net: &mut Net);
    /// Something arrived on its current connection.
    fn on_payload(&mut self, client: usize, now: u64, payload: Payload, net: &mut Net);
    /// Its current connection is gone.
    fn on_lost(&mut self, client: usize, now: u64, error: TransportError, net: &mut Net);
    /// Signs that a client and the collector disagree about the protocol
    /// (for the real agents: their protocol-error, malformed-frame,
    /// incompatible-peer, ack-timeout and dropped-event counters); 0 for
    /// model clients, which cannot tell.
    fn anomalies(&self) -> u64 {
        0
    }
}
