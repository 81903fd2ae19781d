//! The checked-in `include/edge_agent.h` is exactly what the pinned cbindgen
//! (a dev-dependency, `=0.29.0`) generates from this crate with
//! `agent-ffi/cbindgen.toml`. When this fails, regenerate the header with
//!
//! ```text
//! EDGE_REGENERATE_HEADER=1 cargo test -p agent-ffi --test header
//! ```

use std::path::Path;

#[test]
fn header_matches_a_fresh_generation() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir.parent().unwrap();
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("agent-ffi/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_crate(crate_dir)
        .generate()
        .expect("cbindgen generates the header");
    let fresh_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("edge_agent.h");
    bindings.write_to_file(&fresh_path);
    let fresh = std::fs::read_to_string(&fresh_path).unwrap();
    let header = root.join("include/edge_agent.h");
    if std::env::var_os("EDGE_REGENERATE_HEADER").is_some() {
        std::fs::write(&header, &fresh).unwrap();
        println!("wrote {}", header.display());
    }
    let checked_in = std::fs::read_to_string(&header).unwrap();
    if fresh != checked_in {
        let line = fresh.lines().zip(checked_in.lines()).position(|(a, b)| a != b).map_or(0, |i| i + 1);
        panic!(
            "include/edge_agent.h is stale (first difference near line {line}); regenerate it with\n  \
             EDGE_REGENERATE_HEADER=1 cargo test -p agent-ffi --test header"
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
