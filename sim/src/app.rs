//! The application on each agent, as data: its product and plugin names,
//! the records it pushes (unique, self-describing payloads: [`app_payload`])
//! and how long it takes to answer a task. What it does at each instant is
//! `world/app.rs`.

pub(crate) const PRODUCT: &str = "edge";
pub(crate) const PLUGIN_NAMES: [&str; 2] = ["scanner", "updater"];
/// App records use data types from here up (never reserved ones).
pub(crate) const APP_TYPE_BASE: u32 = 2000;
/// An app record's payload starts with its index (8 bytes) and the agent's.
pub(crate) const APP_HEADER: usize = 9;
/// Longest time the app takes to answer a task.
pub(crate) const ANSWER_DELAY_MAX: u64 = 500;

/// One record the app pushed (accepted or not), as the checks need it.
pub(crate) struct AppRec {
    pub(crate) data_type: u32,
    pub(crate) ts: u64,
    pub(crate) len: usize,
    pub(crate) ord: u64,
    pub(crate) accepted: bool,
}

/// The payload of app record `n` of agent `a`, `len` bytes long.
pub(crate) fn app_payload(a: usize, n: u64, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[..8].copy_from_slice(&n.to_le_bytes());
    p[8] = a as u8;
    for (i, b) in p.iter_mut().enumerate().skip(APP_HEADER) {
        *b = (n.wrapping_mul(131) as usize + i * 7 + a) as u8;
    }
    p
}
