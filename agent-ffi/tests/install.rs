//! The C developer's path, for real: `make -C agent-ffi install` into a
//! fresh prefix, then `examples/c/Makefile` builds every example against
//! the installed library with pkg-config, and runs them. When make,
//! pkg-config or a C/C++ compiler is missing: a failure under CI, a skip
//! with a notice elsewhere (`edge_testkit::require`).

use std::path::Path;
use std::process::Command;

#[test]
fn install_then_build_the_examples_with_pkg_config() {
    for tool in ["make", "pkg-config", "cc", "c++"] {
        if !edge_testkit::require("install_then_build_the_examples_with_pkg_config", tool) {
            return;
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("install");
    let _ = std::fs::remove_dir_all(&tmp);
    let prefix = tmp.join("prefix");
    // Its own target directory: this test's cargo holds the lock on ours.
    let target = root.join("target").join("install");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let o = Command::new("make")
        .args(["-C", "agent-ffi", "install", "PROFILE=dev"])
        .arg(format!("PREFIX={}", prefix.display()))
        .arg(format!("TARGET_DIR={}", target.display()))
        .arg(format!("CARGO={cargo}"))
        .current_dir(root)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(o.status.success(), "make install:\n{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    for f in ["lib/libedge_agent.a", "lib/libedge_agent.so", "include/edge_agent.h", "lib/pkgconfig/edge_agent.pc"] {
        assert!(prefix.join(f).exists(), "{f} not installed");
    }
    let pc = prefix.join("lib/pkgconfig");
    let flags = Command::new("pkg-config").args(["--cflags", "--libs", "edge_agent"]).env("PKG_CONFIG_PATH", &pc).output().unwrap();
    let flags = String::from_utf8_lossy(&flags.stdout).to_string();
    assert!(flags.contains(&format!("-I{}", prefix.join("include").display())) && flags.contains("-ledge_agent"), "{flags}");
    let o = Command::new("make")
        .args(["-C", "examples/c", "run"])
        .arg(format!("BUILD={}", tmp.join("build").display()))
        .env("PKG_CONFIG_PATH", &pc)
        .current_dir(root)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    print!("{out}");
    assert!(o.status.success(), "make run:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("bare_metal: ok") && out.contains(": ok"), "{out}");
}
