//! Stand-ins for sizing functions arriving in agent-core (the hardening
//! issue): removed when they land.

use crate::result::{ea_result, Res};
use agent_core::agent::BATCH_HEADER_MAX;
use agent_core::frame::OVERHEAD;
use agent_core::{AgentConfig, Identity};

use crate::sizing::EA_MIN_EVENT_QUEUE as MIN_EVENT_QUEUE;

/// Checks what `Agent::new` does not check yet: the event queue size.
pub fn validate(_cfg: &AgentConfig, _id: &Identity<'_>, _rx_len: usize, events_len: usize) -> Res {
    if events_len < MIN_EVENT_QUEUE {
        return Err(ea_result::EA_BUFFER_TOO_SMALL);
    }
    Ok(())
}

/// An upper bound of the largest frame the agent writes: a full batch, or
/// the Hello (every field with a 5-byte length prefix, 4 varints).
pub fn min_transmit_len(cfg: &AgentConfig, id: &Identity<'_>) -> usize {
    let batch = OVERHEAD + BATCH_HEADER_MAX + cfg.batch_max_bytes;
    let fields = [
        id.agent_id.len(),
        id.hostname.len(),
        id.product.len(),
        id.version.len(),
        id.intranet_ipv4.len(),
        id.intranet_ipv6.len(),
        id.extranet_ipv4.len(),
        id.extranet_ipv6.len(),
        id.auth_token.len(),
    ];
    let hello = OVERHEAD + fields.iter().map(|n| n + 5).sum::<usize>() + 10 + 10 + 5 + 5;
    batch.max(hello)
}
