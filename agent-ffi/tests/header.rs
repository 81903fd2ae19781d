//! The checked-in `include/edge_agent.h` is exactly what the pinned cbindgen
//! generates from this crate: regenerate it (command in
//! agent-ffi/cbindgen.toml) when this fails.
//!
//! Needs `cbindgen` at the pinned version on PATH (`.ci/run` installs it).
//! Without it, or at another version, the test prints a notice and passes
//! locally, but fails in CI (`CI` set), where the check must run.

use std::path::Path;
use std::process::Command;

/// The cbindgen version the header is generated with (also in .ci/run).
const CBINDGEN_VERSION: &str = "0.29.0";

#[test]
fn header_matches_a_fresh_generation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let in_ci = std::env::var_os("CI").is_some();
    let version = Command::new("cbindgen").arg("--version").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let expected = format!("cbindgen {CBINDGEN_VERSION}");
    if version.as_deref() != Some(expected.as_str()) {
        let msg = format!("{expected} not on PATH (found {version:?}); header drift check not run");
        assert!(!in_ci, "{msg}");
        println!("notice: {msg}");
        return;
    }
    let fresh = Path::new(env!("CARGO_TARGET_TMPDIR")).join("edge_agent.h");
    let o = Command::new("cbindgen")
        .current_dir(root)
        .args(["--config", "agent-ffi/cbindgen.toml", "--crate", "agent-ffi", "--output"])
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(o.status.success(), "cbindgen failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let fresh = std::fs::read_to_string(&fresh).unwrap();
    let checked_in = std::fs::read_to_string(root.join("include/edge_agent.h")).unwrap();
    if fresh != checked_in {
        let line = fresh.lines().zip(checked_in.lines()).position(|(a, b)| a != b).map_or(0, |i| i + 1);
        panic!(
            "include/edge_agent.h is stale (first difference near line {line}); regenerate it with\n  \
             cbindgen --config agent-ffi/cbindgen.toml --crate agent-ffi --output include/edge_agent.h"
        );
    }
    assert!(checked_in.contains("Do not edit by hand"), "the do-not-edit banner");
}

#[test]
fn every_function_type_and_field_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let h = std::fs::read_to_string(root.join("include/edge_agent.h")).unwrap();
    let lines: Vec<&str> = h.lines().collect();
    let mut undocumented = Vec::new();
    let mut checked = 0;
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        let is_decl = (t.starts_with("ea_result ea_") || t.starts_with("const char *ea_") || t.starts_with("size_t ea_")
            || t.starts_with("uint32_t ea_") || t.starts_with("ea_config ea_"))
            || (t.ends_with(';') && l.starts_with("  ") && !t.starts_with("*") && !t.starts_with("/*") && !t.starts_with("//"))
            || t.starts_with("#define EA_")
            || t.starts_with("typedef ")
            || (t.starts_with("EA_") && t.contains(" = "));
        checked += usize::from(is_decl);
        if is_decl && i > 0 && !lines[i - 1].trim().ends_with("*/") && !lines[i - 1].trim().starts_with("#if") {
            undocumented.push(format!("{}: {t}", i + 1));
        }
    }
    assert!(checked > 200, "the checker found only {checked} declarations");
    assert!(undocumented.is_empty(), "undocumented declarations:\n{}", undocumented.join("\n"));
}
