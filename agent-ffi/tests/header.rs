//! The checked-in `include/edge_agent.h` is exactly what the pinned cbindgen
//! (a dev-dependency, `=0.29.0`) generates from this crate with
//! `agent-ffi/cbindgen.toml`, laid out in reading order by
//! `tests/header/layout.rs` (cbindgen itself puts every type before every
//! function). When this fails, regenerate the header with
//!
//! ```text
//! EDGE_REGENERATE_HEADER=1 cargo test -p agent-ffi --test header
//! ```

use std::path::Path;

#[path = "header/layout.rs"]
mod layout;

/// cbindgen's own output for this crate (every type before every function)
/// and cbindgen.toml's `after_includes`.
fn cbindgen_output() -> (String, String) {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("agent-ffi/cbindgen.toml");
    let after_includes = config.after_includes.clone().expect("after_includes in cbindgen.toml marks where the declarations start");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_crate(crate_dir)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    (String::from_utf8(generated).expect("cbindgen writes UTF-8"), after_includes)
}

#[test]
fn header_matches_a_fresh_generation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let (generated, after_includes) = cbindgen_output();
    let fresh = layout::lay_out(&generated, &after_includes).unwrap_or_else(|e| panic!("laying out the header: {e}"));
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

/// The layout step loses nothing and invents nothing: a declaration that
/// no section names, or a name that cbindgen did not generate, is an error
/// that names it.
#[test]
fn layout_refuses_an_unplaced_or_missing_declaration() {
    let (generated, after_includes) = cbindgen_output();
    let close = generated.rfind("#ifdef __cplusplus\n}").expect("cbindgen's closing extern \"C\"");
    let extra = format!("{}/**\n * New.\n */\nea_result ea_agent_new_thing(struct ea_agent *agent);\n\n{}", &generated[..close], &generated[close..]);
    let err = layout::lay_out(&extra, &after_includes).unwrap_err();
    assert!(err.contains("ea_agent_new_thing"), "{err}");
    let poll_event = generated.find("ea_result ea_agent_poll_event(").unwrap();
    let doc_start = generated[..poll_event].rfind("/**").unwrap();
    let end = poll_event + generated[poll_event..].find("\n\n").unwrap();
    let missing = format!("{}{}", &generated[..doc_start], &generated[end + 2..]);
    let err = layout::lay_out(&missing, &after_includes).unwrap_err();
    assert!(err.contains("ea_agent_poll_event") && err.contains("did not generate"), "{err}");
}

/// The functions' doc comments with their declarations: `(doc, declaration)`.
fn functions(h: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = h.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let is_fn = !l.starts_with(' ') && !l.starts_with('#') && !l.starts_with("typedef") && !l.starts_with('/') && !l.starts_with(" *")
            && l.contains(" ea_") && l.contains('(') && l.ends_with(");");
        if !is_fn {
            continue;
        }
        let start = (0..i).rev().find(|&j| lines[j].starts_with("/**")).expect("a doc comment above every function");
        out.push((lines[start..i].join("\n"), l.to_string()));
    }
    out
}

/// Every function that takes a pointer says, in C terms, what each pointer
/// must point to: a "Pointers:" note naming every pointer parameter (this
/// stands in for clippy's `missing_safety_doc`, allowed in src/lib.rs, whose
/// `# Safety` heading read as Rust in the C header).
#[test]
fn every_pointer_parameter_has_a_c_style_note() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let h = std::fs::read_to_string(root.join("include/edge_agent.h")).unwrap();
    assert!(!h.contains("# Safety"), "a Rust `# Safety` heading is left in the header");
    let fns = functions(&h);
    assert!(fns.len() > 60, "found only {} functions", fns.len());
    let mut missing = Vec::new();
    for (doc, decl) in &fns {
        let params = &decl[decl.find('(').unwrap() + 1..decl.rfind(')').unwrap()];
        let pointers: Vec<&str> = params
            .split(',')
            .filter(|p| p.contains('*'))
            .map(|p| p.trim().rsplit([' ', '*']).next().unwrap())
            .collect();
        if pointers.is_empty() {
            continue;
        }
        let Some(note) = doc.find("Pointers:").map(|i| &doc[i..]) else {
            missing.push(format!("{decl}: no \"Pointers:\" note"));
            continue;
        };
        if note.contains("Pointers: as for `") {
            continue;
        }
        for p in pointers {
            if !note.contains(&format!("`{p}`")) {
                missing.push(format!("{decl}: `{p}` not named in its Pointers note"));
            }
        }
    }
    assert!(missing.is_empty(), "functions whose pointer rules are not stated:\n{}", missing.join("\n"));
}

/// The header reads top-down: the overview, then the results, setup, the
/// loop, commands, getters and the host layer, with the first function
/// near the top, not after every type.
#[test]
fn header_is_in_reading_order() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let h = std::fs::read_to_string(root.join("include/edge_agent.h")).unwrap();
    // The first line declaring `needle` (not the overview's mention of it).
    let line_of = |needle: &str| {
        h.lines().position(|l| l.contains(needle) && !l.starts_with(" *") && !l.starts_with("/*")).unwrap_or_else(|| panic!("{needle} not declared in the header")) + 1
    };
    let order = [
        "ea_result_message(",
        "ea_agent_init(",
        "ea_agent_handle_received(",
        "ea_agent_poll_transmit(",
        "ea_agent_poll_event(",
        "ea_agent_push(",
        "ea_agent_task_result(",
        "ea_agent_stats(",
        "ea_host_new(",
    ];
    let lines: Vec<usize> = order.iter().map(|n| line_of(n)).collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "sections out of order: {:?}", order.iter().zip(&lines).collect::<Vec<_>>());
    let first_fn = functions(&h).iter().map(|(_, d)| line_of(d)).min().unwrap();
    let types_before: usize = h.lines().take(first_fn).filter(|l| l.starts_with("typedef struct")).count();
    assert!(types_before <= 1, "{types_before} structs come before the first function (line {first_fn})");
    // Each struct comes before the first function that takes it.
    for (_, decl) in functions(&h) {
        for word in decl.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("ea_")) {
            if let Some(def) = h.lines().position(|l| l.starts_with(&format!("typedef struct {word} "))) {
                assert!(def < line_of(&decl), "{word} is defined after {decl}");
            }
        }
    }
}
