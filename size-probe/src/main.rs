//! Links the whole sans-IO agent into a bare-metal image for size reports.
//!
//! Every public operation of `Agent` is called with inputs the optimizer
//! cannot see through (`black_box`), so nothing is discarded. There is no
//! vector table or HAL: the numbers are the agent's own cost plus `core`.
#![no_std]
#![no_main]

use agent_core::{Agent, AgentConfig, AgentStorage, Identity, Instant, Record};
use core::hint::black_box;

// The Agent's own state must stay within 1.5 KiB on the target itself
// (the measured sizes are in NOTES.md).
const _: () = assert!(core::mem::size_of::<Agent<'static>>() <= 1536);

static mut RING: [u8; 8192] = [0; 8192];
static mut RX: [u8; 2048] = [0; 2048];
static mut EVENTS: [u8; 512] = [0; 512];
static mut TX: [u8; 2048] = [0; 2048];

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[no_mangle]
pub extern "C" fn _start() -> ! {
    // SAFETY: single-threaded entry point; each static is borrowed once.
    let (ring, rx, events, tx) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(RING),
            &mut *core::ptr::addr_of_mut!(RX),
            &mut *core::ptr::addr_of_mut!(EVENTS),
            &mut *core::ptr::addr_of_mut!(TX),
        )
    };
    let id = Identity { agent_id: "probe", product: "edge", ..Identity::default() };
    let cfg = black_box(AgentConfig::default());
    let Ok(mut agent) = Agent::new(cfg, id, AgentStorage { ring, rx, events }) else { loop {} };
    let plugin = agent.register_plugin("plugin", "1");
    let mut t = 0u64;
    loop {
        t = black_box(t + 1);
        let now = Instant(t);
        let _ = agent.push(now, &Record::new(black_box(2001), t, black_box(b"payload")));
        agent.handle_timeout(now);
        if black_box(t) == 3 {
            agent.handle_connected(now);
        }
        if black_box(t) == 5 {
            agent.handle_disconnected(now, agent_core::TransportError::Reset);
        }
        agent.handle_received(now, black_box(&tx[..16]));
        let n = agent.poll_transmit(now, tx);
        black_box(n);
        while let Some(ev) = agent.poll_event() {
            black_box(&ev);
        }
        if let Ok(p) = plugin {
            let _ = agent.set_plugin_status(p, 1, agent_core::PluginStatus::Running);
        }
        let _ = agent.task_result(now, "tok", 0, "ok");
        black_box(agent.poll_timeout());
        black_box(agent.stats());
    }
}
