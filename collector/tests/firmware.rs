//! The example firmware (`examples/firmware`: bare-metal C, the no_std agent
//! library linked in as one LTO'd object) on QEMU's `mps2-an386` (a
//! Cortex-M4), its UART wired to the real collector through QEMU's TCP
//! chardev with `reconnect=1`: a serial-to-TCP gateway with a 1-s reconnect
//! gap, and no carrier the firmware could see.
//!
//! The test builds the image with `scripts/firmware-build.sh` (README's
//! documented library build, then the map-based size report with its
//! failing budget), starts the collector, boots the firmware, and while
//! records flow `kill -9`s the collector twice: once restarted at once,
//! once after 3 s down. It posts a task and a new configuration. The
//! firmware exits through semihosting when every record it pushed was
//! acked; a fault exits with status 3. Then the sink must hold every
//! record exactly once, heartbeats with the firmware's own figures, the
//! task's result, and the new configuration in every record after its
//! first.
//!
//! Needs arm-none-eabi-gcc, qemu-system-arm and a thumbv7em toolchain (see
//! the script): missing ones fail the test under CI (`CI=true`) and skip it
//! elsewhere with a notice.

mod common;
#[path = "common/firmware.rs"]
mod firmware;

use firmware::Board;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const ARM: Board = Board {
    test: "firmware",
    target: "thumbv7em-none-eabihf",
    tools: ["qemu-system-arm", "arm-none-eabi-gcc"],
    qemu: "qemu-system-arm",
    qemu_args: &["-M", "mps2-an386", "-display", "none", "-monitor", "none", "-semihosting-config", "enable=on,target=native"],
    make_dir: "examples/firmware",
    fault: "fw: HARDFAULT",
    down: Duration::from_secs(3),
    finish: Duration::from_secs(90),
};

#[test]
fn a_fault_in_the_firmware_ends_qemu_with_status_3() {
    firmware::trap_ends_qemu_with_status_3(&ARM, "firmware-test-trap");
}

/// Each call's painted stack (interrupts that landed during it included)
/// against its static bound from the build script (`stack-bound.txt`: the
/// call's worst path plus one interrupt with its exception frame;
/// `ea_agent_init` runs before interrupts are enabled, so against its own).
/// A painted figure above the bound means the static analysis missed a
/// path. Without the file (no llvm-objdump outside CI: the build script
/// printed why) there is nothing to compare.
fn painted_within_static_bound(out: &Path, init_stack: u32, stack_line: &str) {
    let Ok(text) = std::fs::read_to_string(out.join("stack-bound.txt")) else {
        eprintln!("firmware test: no stack-bound.txt (see the build script's notice); painted figures not compared");
        return;
    };
    let bound: BTreeMap<&str, u32> = text.lines().filter_map(|l| l.split_once(' ')).map(|(n, b)| (n, b.parse().unwrap())).collect();
    let irq = bound["interrupt"];
    let init = bound["ea_agent_init"];
    eprintln!("stack of ea_agent_init: painted {init_stack} B, static bound {init} B");
    assert!(init_stack <= init, "ea_agent_init: painted {init_stack} B above the static bound {init} B");
    let function = |call: &str| match call {
        "push" => "ea_agent_push_tick",
        "drain" => "ea_agent_drain_intake_tick",
        "received" => "ea_agent_handle_received_tick",
        "delay" => "ea_agent_timeout_delay_tick",
        "timeout" => "ea_agent_handle_timeout_tick",
        "transmit" => "ea_agent_poll_transmit_tick",
        "poll_event" => "ea_agent_poll_event",
        "connected" => "ea_agent_handle_connected_tick",
        "task_result" => "ea_agent_task_result_tick",
        "host_stats" => "ea_agent_set_host_stats",
        other => panic!("a painted call the test does not know: {other}"),
    };
    for kv in stack_line.split(' ').skip(2) {
        let (call, painted) = kv.split_once('=').unwrap();
        let painted: u32 = painted.parse().unwrap();
        let f = function(call);
        let limit = bound[f] + irq;
        eprintln!("stack of {f}: painted {painted} B, static bound {} B + interrupt {irq} B", bound[f]);
        assert!(painted <= limit, "{f}: painted {painted} B above its static bound {limit} B");
    }
}

#[test]
fn firmware_on_qemu_delivers_every_record_once_across_collector_restarts() {
    let Some(run) = firmware::delivers_every_record_once(&ARM, "firmware-test") else { return };
    painted_within_static_bound(&run.out, run.init_stack, &run.stack_line);
}
