//! The second step of generating `include/edge_agent.h`: cbindgen writes
//! every declaration in its own order (constants, then enums, then structs,
//! then functions), which put the first function 1,500 lines down. This
//! step cuts cbindgen's output into its declarations (each with its doc
//! comment and `#if` guard) and lays them out in reading order: results,
//! setup, the loop, commands, getters, then the host layer, each type next
//! to the first function that uses it.
//!
//! Nothing is written by hand here except the section banners: every
//! declaration comes from cbindgen, and [`lay_out`] fails if one is left
//! out, placed twice, or unknown (a new function must be given a section
//! in [`SECTIONS`]).

/// One part of the header: a banner, then the named declarations in order.
pub struct Section {
    /// The banner's title line.
    pub title: &'static str,
    /// What the section is for, in a few lines (already wrapped).
    pub intro: &'static str,
    /// The declarations, by the name each declares.
    pub names: &'static [&'static str],
}

/// The reading order of the header.
pub const SECTIONS: &[Section] = &[
    Section {
        title: "RESULTS",
        intro: "Every fallible call returns one of these; ea_result_message names it.",
        names: &["ea_result", "ea_result_message"],
    },
    Section {
        title: "SETUP: storage, config, identity, init",
        intro: "Declare an ea_agent, fill an ea_config (from ea_config_default) and an\n\
                ea_identity, size the buffers, then ea_agent_init. ea_agent_deinit ends it.",
        names: &[
            "EA_ABI_VERSION",
            "ea_abi_version",
            "ea_version",
            "EA_AGENT_STORAGE_SIZE",
            "EA_AGENT_STORAGE_WORDS",
            "EA_AGENT_STORAGE_ALIGN",
            "ea_agent",
            "ea_agent_storage_size",
            "ea_agent_storage_align",
            "EA_MIN_EVENT_QUEUE",
            "ea_overflow_policy",
            "ea_lock_fn",
            "ea_config",
            "ea_config_default",
            "ea_identity",
            "ea_config_validate",
            "ea_min_transmit_len",
            "ea_agent_init",
            "ea_agent_deinit",
            "ea_link",
            "ea_agent_set_link",
            "ea_agent_set_auth_token",
            "ea_agent_set_clock_offset",
        ],
    },
    Section {
        title: "THE LOOP: inputs (ea_agent_handle_*), then outputs (ea_agent_poll_*)",
        intro: "Report what the transport did, then poll transmits, events and the next\n\
                deadline, as in the loop at the top of this file.",
        names: &[
            "ea_agent_handle_connected",
            "ea_agent_handle_connected_tick",
            "ea_agent_handle_received",
            "ea_agent_handle_received_tick",
            "ea_transport_error",
            "ea_agent_handle_disconnected",
            "ea_agent_handle_disconnected_tick",
            "ea_agent_handle_blocked",
            "ea_agent_handle_timeout",
            "ea_agent_handle_timeout_tick",
            "ea_agent_poll_transmit",
            "ea_agent_poll_transmit_tick",
            "ea_event_kind",
            "ea_disconnect_reason",
            "EA_PLUGIN_NONE",
            "ea_event",
            "ea_agent_poll_event",
            "EA_NEVER",
            "ea_agent_poll_timeout",
            "EA_NEVER_DELAY",
            "ea_agent_timeout_delay",
            "ea_agent_timeout_delay_tick",
            "ea_agent_wake_needed",
        ],
    },
    Section {
        title: "COMMANDS: records, tasks, plugins, close",
        intro: "Calls the application makes between turns of the loop. After one, poll\n\
                transmits (and, from another thread, check ea_agent_wake_needed).",
        names: &[
            "ea_agent_push",
            "ea_agent_push_tick",
            "EA_INTAKE_STORAGE_SIZE",
            "EA_INTAKE_STORAGE_WORDS",
            "EA_INTAKE_SLOT_OVERHEAD",
            "ea_intake",
            "ea_intake_init",
            "ea_intake_deinit",
            "ea_intake_push",
            "ea_intake_counters",
            "ea_intake_stats",
            "ea_agent_drain_intake",
            "ea_agent_drain_intake_tick",
            "ea_agent_task_result",
            "ea_agent_task_result_tick",
            "ea_agent_flush_now",
            "ea_agent_flush_now_tick",
            "ea_agent_heartbeat_now",
            "ea_agent_heartbeat_now_tick",
            "ea_host_stats",
            "ea_agent_set_host_stats",
            "ea_plugin_status",
            "ea_agent_register_plugin",
            "ea_agent_set_plugin_status",
            "ea_agent_unregister_plugin",
            "ea_agent_close",
            "ea_agent_close_tick",
            "ea_agent_reconnect_now",
            "ea_agent_reconnect_now_tick",
        ],
    },
    Section {
        title: "GETTERS: state and counters",
        intro: "Read-only; each takes the lock (if any) for a consistent snapshot.",
        names: &["ea_state", "ea_agent_state", "ea_agent_is_drained", "ea_stats", "ea_agent_stats"],
    },
    Section {
        title: "LINUX HOST LAYER (ea_host_*): the library runs the socket, loop and clock",
        intro: "Linux builds with the \"host\" feature only (on by default); bare-metal\n\
                builds have none of these symbols.",
        names: &[
            "ea_host",
            "ea_tls_failure",
            "ea_host_event_fn",
            "ea_host_config",
            "ea_host_config_default",
            "ea_host_new",
            "ea_host_start",
            "ea_host_push",
            "ea_host_push_at",
            "ea_host_task_result",
            "ea_host_report",
            "ea_host_begin_stop",
            "ea_host_stop",
            "ea_host_wait",
            "ea_host_fd",
            "ea_host_timeout_ms",
            "ea_host_process",
            "ea_host_agent_stats",
            "ea_host_loop_stats",
            "ea_host_loop_counters",
            "ea_host_free",
        ],
    },
];

const CPP_OPEN: &str = "#ifdef __cplusplus\nextern \"C\" {\n#endif // __cplusplus";
const CPP_CLOSE: &str = "#ifdef __cplusplus\n}  // extern \"C\"\n#endif  // __cplusplus";
const GUARD_END: &str = "#endif  /* EDGE_AGENT_H */\n";

/// The name a declaration chunk declares: its first line that is neither
/// comment nor preprocessor, read as a `#define`, an enum, a struct, a
/// function-pointer typedef or a function.
fn declared_name(chunk: &str) -> Option<&str> {
    if let Some(define) = chunk.lines().find_map(|l| l.strip_prefix("#define ")) {
        return define.split_whitespace().next();
    }
    let line = chunk.lines().find(|l| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with("/*") && !t.starts_with('*') && !t.starts_with('#')
    })?;
    fn ident_at(s: &str, start: usize) -> Option<&str> {
        let rest = &s[start..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        Some(&rest[..end]).filter(|n| !n.is_empty())
    }
    if let Some(rest) = line.strip_prefix("enum ") {
        return ident_at(rest, 0);
    }
    if let Some(rest) = line.strip_prefix("typedef struct ") {
        return ident_at(rest, 0);
    }
    if line.starts_with("typedef ") {
        return ident_at(line, line.find("(*")? + 2);
    }
    let paren = line.find('(')?;
    let before = line[..paren].trim_end();
    let start = before.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
    ident_at(before, start)
}

/// Lays cbindgen's output out in the order of [`SECTIONS`]. The part up to
/// and including `after_includes` (the overview, the guard, the includes)
/// is kept as it is; the C++ `extern "C"` block then wraps every section.
pub fn lay_out(generated: &str, after_includes: &str) -> Result<String, String> {
    let prefix_end = generated.find(after_includes).ok_or("after_includes not found in cbindgen's output")? + after_includes.len();
    let (prefix, body) = generated.split_at(prefix_end);
    let mut chunks: Vec<(&str, &str)> = Vec::new();
    for chunk in body.split("\n\n").map(|c| c.trim_matches('\n')).filter(|c| !c.is_empty()) {
        if chunk == CPP_OPEN || chunk == CPP_CLOSE || chunk == GUARD_END.trim_end() {
            continue;
        }
        let name = declared_name(chunk).ok_or_else(|| format!("cannot tell what this declares:\n{chunk}"))?;
        chunks.push((name, chunk));
    }
    let mut used = vec![false; chunks.len()];
    let mut out = String::from(prefix);
    out.push_str("\n\n");
    out.push_str(CPP_OPEN);
    out.push_str("\n\n");
    for section in SECTIONS {
        out.push_str("/* ========================================================================\n");
        out.push_str(&format!(" * {}\n", section.title));
        for line in section.intro.lines() {
            out.push_str(&format!(" * {}\n", line.trim()));
        }
        out.push_str(" * ======================================================================== */\n\n");
        for &name in section.names {
            let mut found = false;
            for (i, (n, chunk)) in chunks.iter().enumerate() {
                if *n == name {
                    if used[i] {
                        return Err(format!("{name} is placed twice in SECTIONS"));
                    }
                    used[i] = true;
                    found = true;
                    out.push_str(chunk);
                    out.push_str("\n\n");
                }
            }
            if !found {
                return Err(format!("{name} is in SECTIONS but cbindgen did not generate it"));
            }
        }
    }
    let left: Vec<&str> = chunks.iter().zip(&used).filter(|(_, u)| !**u).map(|((n, _), _)| *n).collect();
    if !left.is_empty() {
        return Err(format!("not placed in any section of tests/header/layout.rs: {}", left.join(", ")));
    }
    out.push_str(CPP_CLOSE);
    out.push_str("\n\n");
    out.push_str(GUARD_END);
    Ok(out)
}
