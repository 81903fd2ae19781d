//! Test helpers shared by the workspace's crates (a dev-dependency only).
//!
//! Without features: the outside-tool rule below and [`build`] (a workspace
//! package built for a test in a target directory of its own). The rest is
//! behind features (modules named after them), so that a crate that needs
//! only [`require`] builds nothing more:
//!
//! * feature `peer`: module `peer`, the test collector (PROTOCOL.md's
//!   collector side, sans-IO); `pair`, an agent and the peer on one
//!   simulated clock (`pair::Pair::drive`); `events`, agent events owned and
//!   compared by value. `agent_core` is re-exported: agent-core's own unit
//!   tests build a second copy of the crate and name the peer's through it.
//! * feature `ring-model`: module `ring_model`, the send ring's reference
//!   model and harness (agent-core's proptest and the `ring_ops` fuzz
//!   target).
//! * feature `collector`: module `collector`, the `edge-collector` binary
//!   as a child process, its HTTP API and its sink read back.
//!
//! # Outside tools: green means tested
//!
//! A test that needs a tool from outside Rust (a C compiler, valgrind,
//! pkg-config, QEMU, mosquitto, ...) asks for it with [`require`] (or, when
//! it finds out another way, reports the gap with [`missing`]):
//!
//! * under CI (`CI=true` or `CI=1` in the environment) a missing tool is a
//!   **failure**: the call panics, so the test fails with the reason;
//! * elsewhere the test is **skipped** with a notice: the call prints
//!   `notice: <test> skipped: <reason>` to stderr and, when
//!   `EDGE_SKIP_LOG` names a file, appends `<test>: <reason>` to it (one
//!   line per skip), which is how `scripts/test-all.sh` shows every skip in
//!   its closing summary; the caller then returns without asserting.
//!
//! A tool that is present but fails (a build that breaks, a tool that
//! crashes) is not "missing": the test asserts on it and fails, in CI and
//! out.
//!
//! ```
//! fn c_test() {
//!     if !edge_testkit::require("c_test", "definitely-not-a-tool-xyz") {
//!         return; // skipped outside CI (under CI `require` panicked)
//!     }
//!     // ... the test proper ...
//! }
//! # if !edge_testkit::in_ci() { c_test(); }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(feature = "peer", feature = "ring-model"))]
pub use agent_core;

pub mod build;
#[cfg(feature = "collector")]
pub mod collector;
#[cfg(feature = "peer")]
pub mod events;
#[cfg(feature = "peer")]
pub mod pair;
#[cfg(feature = "peer")]
pub mod peer;
// The model's fields and steps mirror the ring's own, documented there.
#[cfg(feature = "ring-model")]
#[allow(missing_docs)]
pub mod ring_model;

use std::io::Write as _;
use std::process::Command;

/// The environment variable naming the file skips are appended to.
pub const SKIP_LOG_VAR: &str = "EDGE_SKIP_LOG";

/// Whether this runs under CI: `CI` is `true` (any case) or `1`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Whether `tool` runs: `tool --version` starts and exits 0.
pub fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Reports that `test` cannot run because of `reason` (a missing tool or
/// capability). Under CI: panics (the test fails). Otherwise: prints the
/// notice, logs it to `EDGE_SKIP_LOG` if set, and returns; the caller then
/// returns without testing.
pub fn missing(test: &str, reason: &str) {
    if in_ci() {
        panic!("{test}: {reason}; under CI (CI=true) a missing tool is a failure, not a skip (.ci/run installs every required tool)");
    }
    eprintln!("notice: {test} skipped: {reason}");
    if let Some(path) = std::env::var_os(SKIP_LOG_VAR) {
        // Whole lines in one write: tests of several binaries may append at once.
        let line = format!("{test}: {reason}\n");
        let logged = std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = logged {
            eprintln!("notice: could not log the skip to {}: {e}", path.to_string_lossy());
        }
    }
}

/// `true` if `tool` runs ([`have`]); otherwise reports it [`missing`] for
/// `test` (under CI: panics) and returns `false`.
pub fn require(test: &str, tool: &str) -> bool {
    if have(tool) {
        return true;
    }
    missing(test, &format!("`{tool}` not found or not runnable"));
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_tool_is_found_and_an_absent_one_is_not() {
        // cargo runs this test, so `cargo --version` works (via $CARGO).
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        assert!(have(&cargo));
        assert!(!have("edge-testkit-no-such-tool-7f3a"));
    }

    /// Both behaviours in child processes (the environment is per process):
    /// under CI a missing tool panics, outside it is logged and returns.
    #[test]
    fn missing_fails_under_ci_and_logs_a_skip_otherwise() {
        if let Ok(mode) = std::env::var("EDGE_TESTKIT_CHILD") {
            // The child: report a missing tool.
            let ok = require("child_test", "edge-testkit-no-such-tool-7f3a");
            assert!(!ok && mode == "local", "require returned under CI");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let dir = std::env::temp_dir().join(format!("edge-testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("skips.txt");
        let _ = std::fs::remove_file(&log);
        let run = |ci: &str, mode: &str| {
            Command::new(&exe)
                .args(["--exact", "tests::missing_fails_under_ci_and_logs_a_skip_otherwise", "--nocapture", "--test-threads=1"])
                .env("EDGE_TESTKIT_CHILD", mode)
                .env("CI", ci)
                .env(SKIP_LOG_VAR, &log)
                .output()
                .unwrap()
        };
        let local = run("false", "local");
        assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));
        assert!(String::from_utf8_lossy(&local.stderr).contains("notice: child_test skipped: `edge-testkit-no-such-tool-7f3a`"));
        let logged = std::fs::read_to_string(&log).unwrap();
        assert_eq!(logged, "child_test: `edge-testkit-no-such-tool-7f3a` not found or not runnable\n");
        for ci in ["true", "TRUE", "1"] {
            let o = run(ci, "ci");
            assert!(!o.status.success(), "CI={ci}: a missing tool must fail the test");
            let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            assert!(out.contains("under CI (CI=true) a missing tool is a failure"), "{out}");
        }
        assert_eq!(std::fs::read_to_string(&log).unwrap(), logged, "a failure under CI is not logged as a skip");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
