//! Gives the Linux shared library its soname, `libedge_agent.so.<ABI>`,
//! where `<ABI>` is `EA_ABI_VERSION` (src/sizing.rs): a program linked
//! against it records that name, so an incompatible library is never picked
//! up at run time. Only the cdylib gets the flag (not the static library,
//! not the rlib), and only on Linux.

fn main() {
    println!("cargo:rerun-if-changed=src/sizing.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let sizing = std::fs::read_to_string("src/sizing.rs").expect("src/sizing.rs");
    let abi = sizing
        .lines()
        .find_map(|l| l.trim().strip_prefix("pub const EA_ABI_VERSION: u32 = ")?.strip_suffix(';'))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .expect("`pub const EA_ABI_VERSION: u32 = N;` in src/sizing.rs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libedge_agent.so.{abi}");
}
