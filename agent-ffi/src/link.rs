//! `ea_agent_set_link`: what kind of link the caller's transport is.

use crate::handle::{self, ea_agent};
use crate::result::ea_result;
use agent_core::Link;

/// The kind of link the agent speaks over (PROTOCOL.md, "Links without
/// carrier"). Numbers are fixed.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ea_link {
    /// A transport that is opened and closed (a TCP socket): the default.
    EA_LINK_CARRIER = 0,
    /// A byte stream with no connect or disconnect signal (a UART to a
    /// serial-to-TCP gateway, a modem, a BLE bridge). The agent writes no
    /// parting Close after a failure (it would lead the gateway's next
    /// connection) and skips frames of any kind but Accept, Reject and
    /// Close between its Hello and the Accept (leftovers of the previous
    /// stream). Answer `EA_EVENT_CONNECT` with `ea_agent_handle_connected`
    /// at once and ignore `EA_EVENT_DISCONNECT`: there is nothing to open
    /// or close.
    EA_LINK_CARRIERLESS = 1,
}

/// Sets the kind of link (`ea_link`), once, right after `ea_agent_init`;
/// `EA_INVALID_ARGUMENT` for a number that is not an `ea_link`.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_set_link(agent: *mut ea_agent, link: u32) -> ea_result {
    let link = match link {
        x if x == ea_link::EA_LINK_CARRIER as u32 => Link::Carrier,
        x if x == ea_link::EA_LINK_CARRIERLESS as u32 => Link::Carrierless,
        _ => return ea_result::EA_INVALID_ARGUMENT,
    };
    // SAFETY: the caller's contract.
    unsafe {
        handle::with(agent, |s| {
            s.agent.set_link(link);
            Ok(())
        })
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::result::ea_result::*;

    #[test]
    fn set_link_refuses_unknown_kinds_null_and_uninitialized_handles() {
        let mut a = ea_agent { _opaque: [0; crate::handle::EA_AGENT_STORAGE_WORDS] };
        let (mut ring, mut rx, mut events) = (std::vec![0u8; 4096], std::vec![0u8; 1024], std::vec![0u8; 256]);
        let cfg = crate::ea_config_default();
        // SAFETY: all-zero is a valid ea_identity.
        let id: crate::ea_identity = unsafe { core::mem::zeroed() };
        // SAFETY: the buffers outlive the agent (deinit below).
        unsafe {
            assert_eq!(ea_agent_set_link(core::ptr::null_mut(), 1), EA_NULL_PARAMETER);
            assert_eq!(ea_agent_set_link(&mut a, 1), EA_NOT_INITIALIZED);
            let r = crate::ea_agent_init(&mut a, core::mem::size_of::<ea_agent>(), &cfg, &id, ring.as_mut_ptr(), ring.len(), rx.as_mut_ptr(), rx.len(), events.as_mut_ptr(), events.len());
            assert_eq!(r, EA_OK);
            assert_eq!(ea_agent_set_link(&mut a, 2), EA_INVALID_ARGUMENT);
            assert_eq!(ea_agent_set_link(&mut a, ea_link::EA_LINK_CARRIERLESS as u32), EA_OK);
            let mut link = Link::Carrier;
            let r = crate::handle::with(&a, |s| {
                link = s.agent.link();
                Ok(())
            });
            assert_eq!(r, EA_OK);
            assert_eq!(link, Link::Carrierless);
            assert_eq!(crate::ea_agent_deinit(&mut a), EA_OK);
        }
    }
}
