//! Builds a workspace package for a test, in a target directory of its own.
//!
//! `cargo test` builds only what the test links (the rlib, not the
//! staticlib; not other packages' binaries), and the outer cargo holds the
//! lock of the main target directory while tests run. A test that needs
//! more (the C library `libedge_agent.a`, a sanitized build of it, the
//! collector binary) builds it with [`cargo_build`] into
//! `<target>/<dir>` (next to the test's profile directory), where it is
//! reused on the next run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this crate lives in `<root>/testkit`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("testkit sits in the workspace root").to_path_buf()
}

/// The running test's target directory (`<target>` of
/// `<target>/<profile>/deps/<test>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.ancestors().nth(3).expect("a test runs from <target>/<profile>/deps").to_path_buf()
}

/// `cargo build -p <package> <args>` into `<target>/<dir>`, with `RUSTFLAGS`
/// set to `rustflags` (and `RUSTC_BOOTSTRAP=1`, for `-Z` flags) when given,
/// for `triple` when given. Returns the directory of the build's outputs
/// (`<target>/<dir>/[<triple>/]debug`), or cargo's error output.
pub fn cargo_build(package: &str, args: &[&str], dir: &str, rustflags: Option<&str>, triple: Option<&str>) -> Result<PathBuf, String> {
    let dir = target_dir().join(dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).env_remove("CARGO_TARGET_DIR").args(["build", "-p", package]).args(args);
    cmd.arg("--target-dir").arg(&dir);
    if let Some(f) = rustflags {
        cmd.env("RUSTC_BOOTSTRAP", "1").env("RUSTFLAGS", f);
    }
    if let Some(t) = triple {
        cmd.args(["--target", t]);
    }
    let o = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !o.status.success() {
        return Err(format!("cargo build -p {package} failed:\n{}", String::from_utf8_lossy(&o.stderr)));
    }
    Ok(match triple {
        Some(t) => dir.join(t).join("debug"),
        None => dir.join("debug"),
    })
}

/// `libedge_agent.a` (agent-ffi's staticlib) built into `<target>/<dir>`
/// (see [`cargo_build`]); the C tests of agent-ffi and the collector's
/// mbedTLS test share `dir = "ffi-plain"`.
pub fn agent_ffi_staticlib(dir: &str, rustflags: Option<&str>, triple: Option<&str>) -> Result<PathBuf, String> {
    let lib = cargo_build("agent-ffi", &[], dir, rustflags, triple)?.join("libedge_agent.a");
    if lib.exists() {
        Ok(lib)
    } else {
        Err(format!("{} missing after cargo build", lib.display()))
    }
}
