//! `ea_stats` tells the application's records from the agent's own
//! heartbeats: `pushed` / `dropped_full` count both, `heartbeats_*` the
//! heartbeats alone, so an application reconciles its own pushes from the
//! differences.

use edge_agent::result::ea_result::*;
use edge_agent::*;

#[test]
fn the_application_reconciles_its_pushes_from_the_differences() {
    let mut a = Box::new(ea_agent { _opaque: [0; EA_AGENT_STORAGE_WORDS] });
    let (mut ring, mut rx, mut events) = (vec![0u8; 4096], vec![0u8; 2048], vec![0u8; 1024]);
    let mut cfg = ea_config_default();
    cfg.heartbeat_interval_ms = 1000;
    // SAFETY: all-zero is a valid identity.
    let id: ea_identity = unsafe { core::mem::zeroed() };
    let a = &mut *a as *mut ea_agent;
    // SAFETY: the buffers outlive the agent (deinit at the end).
    unsafe {
        let r = ea_agent_init(a, size_of::<ea_agent>(), &cfg, &id, ring.as_mut_ptr(), ring.len(), rx.as_mut_ptr(), rx.len(), events.as_mut_ptr(), events.len());
        assert_eq!(r, EA_OK);
        assert_eq!(ea_agent_handle_timeout(a, 0), EA_OK); // the first heartbeat
        let (mut ok, mut full) = (0u64, 0u64);
        for len in [300usize, 1] {
            for _ in 0..100 {
                let p = vec![1u8; len];
                match ea_agent_push(a, 1, 2001, 1, p.as_ptr(), p.len()) {
                    EA_OK => ok += 1,
                    EA_RING_FULL => full += 1,
                    r => panic!("{r:?}"),
                }
            }
        }
        // Two more heartbeats find the ring full.
        assert_eq!(ea_agent_handle_timeout(a, 1000), EA_OK);
        assert_eq!(ea_agent_handle_timeout(a, 2000), EA_OK);
        let mut st = ea_stats::default();
        assert_eq!(ea_agent_stats(a, &mut st), EA_OK);
        assert_eq!((st.heartbeats_pushed, st.heartbeats_dropped_full, st.heartbeats_dropped_evicted), (1, 2, 0));
        assert_eq!(st.pushed - st.heartbeats_pushed, ok);
        assert_eq!(st.dropped_full - st.heartbeats_dropped_full, full);
        assert_eq!(ea_agent_deinit(a), EA_OK);
    }
}
