//! A host whose socket will not take more, watched while it waits: shared
//! by the plain test (`collector.rs`) and the TLS one (`tls.rs`), which
//! differ only in the peer that accepts the handshake and then never reads.

use edge_agent_linux::{Host, LoopStats};
use edge_testkit::collector::wait_for;
use std::time::Duration;

/// utime + stime of this process, in ms.
pub fn cpu_ms() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &s[s.rfind(')').unwrap() + 1..];
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).map(|v| v.parse().unwrap()).collect();
    // SAFETY: sysconf only reads a value.
    let tck = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) } as u64;
    (f[0] + f[1]) * 1000 / tck
}

/// Once `host` is connected, pushes 3 MB (3000 records of 1000 B) until its
/// socket blocks, then watches it for 3 s: it must wait, not spin (a
/// spinning loop makes ~1e5 turns and burns the 3 s; a waiting one wakes
/// about once per flush interval, 100 ms, and for its timers), and the
/// records must wait in the ring. Returns the loop's counters at the end.
pub fn assert_a_blocked_host_waits(host: &Host, what: &str) -> LoopStats {
    wait_for(Duration::from_secs(10), || (host.stats().connections > 0).then_some(())).expect("handshake");
    let payload = [b'x'; 1000];
    for _ in 0..3000 {
        host.push(2001, &payload).unwrap();
    }
    wait_for(Duration::from_secs(10), || (host.loop_stats().blocked_writes > 0).then_some(())).expect("the socket fills up");
    std::thread::sleep(Duration::from_millis(300));
    let (l0, c0) = (host.loop_stats(), cpu_ms());
    std::thread::sleep(Duration::from_secs(3));
    let (l1, c1) = (host.loop_stats(), cpu_ms());
    let wakeups = l1.wakeups - l0.wakeups;
    let cpu = c1 - c0;
    eprintln!("{what} blocked 3 s: {wakeups} wake-ups, {cpu} ms CPU, {} deferred timeouts", l1.deferred_timeouts - l0.deferred_timeouts);
    assert!(wakeups <= 3000 / 100 * 2 + 10, "{what}: {wakeups} wake-ups in 3 s while blocked");
    assert!(cpu < 600, "{what}: {cpu} ms of CPU in 3 s while blocked");
    assert!(host.stats().ring_used_bytes > 0, "{what}: records wait in the ring, not lost");
    l1
}
