//! The example firmware on RISC-V: the same `examples/firmware/main.c` with
//! the board of `examples/firmware/riscv` (QEMU's `virt` machine, a
//! riscv32imac hart in machine mode: the CLINT timer as the clock, the 16550
//! UART receiving through the PLIC), linked with the no_std library built
//! for `riscv32imac-unknown-none-elf` as one LTO'd object. Its UART is wired
//! to the real collector through QEMU's TCP chardev with `reconnect=1`, as
//! in `firmware.rs`: a serial-to-TCP gateway with a 1-s reconnect gap.
//!
//! The test builds the image with `scripts/firmware-build.sh --target
//! riscv32imac-unknown-none-elf` (the documented library build, then the
//! map-based size report with the RISC-V budget), starts the collector,
//! boots the firmware and, while records flow, `kill -9`s the collector
//! twice: once restarted at once, once after 2 s down. It posts a task and a
//! new configuration. The firmware ends QEMU through the SiFive test device
//! when every record it pushed was acked (a trap ends it with status 3).
//! Then the sink must hold every record exactly once, heartbeats with the
//! firmware's own figures, the task's result, and the new configuration in
//! every record after its first. Every process it starts is killed when the
//! test ends, passed or failed (QEMU and the collectors on drop).
//!
//! Needs riscv64-unknown-elf-gcc, qemu-system-riscv32 and the rustup target
//! (`.ci/run` installs them): missing ones fail the test under CI
//! (`CI=true`) and skip it elsewhere with a notice.

mod common;
#[path = "common/firmware.rs"]
mod firmware;

use firmware::Board;
use std::time::Duration;

const RISCV: Board = Board {
    test: "firmware_riscv",
    target: "riscv32imac-unknown-none-elf",
    tools: ["qemu-system-riscv32", "riscv64-unknown-elf-gcc"],
    qemu: "qemu-system-riscv32",
    // QEMU's virt machine with a riscv32imac hart (no F, no D), no firmware
    // below the image (it starts at 0x80000000 in machine mode),
    // semihosting for the firmware's log (on QEMU's stderr).
    qemu_args: &["-M", "virt", "-cpu", "rv32,f=false,d=false", "-bios", "none", "-display", "none", "-monitor", "none", "-semihosting-config", "enable=on,target=native"],
    make_dir: "examples/firmware/riscv",
    fault: "fw: TRAP",
    down: Duration::from_secs(2),
    finish: Duration::from_secs(60),
};

#[test]
fn a_trap_in_the_riscv_firmware_ends_qemu_with_status_3() {
    let Some(log) = firmware::trap_ends_qemu_with_status_3(&RISCV, "firmware-riscv-test-trap") else { return };
    // mcause 2: illegal instruction (`unimp`: what a panic executes).
    assert!(log.contains("fw: TRAP mcause=2 "), "{log}");
}

#[test]
fn riscv_firmware_on_qemu_delivers_every_record_once_across_collector_restarts() {
    // No static stack bound on this target (stack-report.py reads Thumb
    // code only): the painted figures are checked against their window.
    firmware::delivers_every_record_once(&RISCV, "firmware-riscv-test");
}
