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
    make_install(root, &prefix);
    for f in ["lib/libedge_agent.a", "lib/libedge_agent.so", "include/edge_agent.h", "lib/pkgconfig/edge_agent.pc", "lib/pkgconfig/edge_agent-static.pc"] {
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

/// The dynamic section's entries of one kind (`NEEDED`, `SONAME`), by readelf.
fn dynamic(file: &Path, kind: &str) -> Vec<String> {
    let o = Command::new("readelf").arg("-d").arg(file).output().unwrap();
    assert!(o.status.success(), "readelf -d {}", file.display());
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains(&format!("({kind})")))
        .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
        .collect()
}

fn pkg_config(pc: &Path, args: &[&str]) -> Vec<String> {
    let o = Command::new("pkg-config").args(args).env("PKG_CONFIG_PATH", pc).output().unwrap();
    assert!(o.status.success(), "pkg-config {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).split_whitespace().map(String::from).collect()
}

/// `make install` into a temp prefix (both libraries installed), then the
/// three link recipes of README: `edge_agent-static` truly links
/// statically (no NEEDED libedge_agent, runs without LD_LIBRARY_PATH),
/// `edge_agent` links the shared library by its soname, and the old
/// `pkg-config --static edge_agent` recipe is shown to link the shared one
/// (why the static `.pc` exists).
#[test]
fn static_and_shared_link_recipes_and_the_soname() {
    for tool in ["make", "pkg-config", "cc", "readelf"] {
        if !edge_testkit::require("static_and_shared_link_recipes_and_the_soname", tool) {
            return;
        }
    }
    let abi = edge_agent::ea_abi_version();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("link-recipes");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let prefix = tmp.join("prefix");
    make_install(root, &prefix);
    let lib = prefix.join("lib");
    let so = lib.join(format!("libedge_agent.so.{abi}"));
    assert_eq!(dynamic(&so, "SONAME"), vec![format!("libedge_agent.so.{abi}")]);
    assert_eq!(std::fs::read_link(lib.join("libedge_agent.so")).unwrap(), Path::new(&format!("libedge_agent.so.{abi}")));
    let pc = lib.join("pkgconfig");
    let app = root.join("examples/c/bare_metal.c");
    let link = |name: &str, recipe: &[&str], extra: &[&str]| {
        let out = tmp.join(name);
        let mut cmd = Command::new("cc");
        cmd.args(["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2"])
            .arg(format!("-I{}", root.join("examples/c").display()))
            .arg(&app)
            .args(extra)
            .args(pkg_config(&pc, recipe))
            .arg("-o")
            .arg(&out);
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "cc ({recipe:?}):\n{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let ours = |bin: &Path| dynamic(bin, "NEEDED").into_iter().filter(|n| n.starts_with("libedge_agent")).collect::<Vec<_>>();
    let runs = |bin: &Path, ld_path: Option<&Path>| {
        let mut cmd = Command::new(bin);
        cmd.env_remove("LD_LIBRARY_PATH");
        if let Some(p) = ld_path {
            cmd.env("LD_LIBRARY_PATH", p);
        }
        let o = cmd.output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(o.status.success() && out.contains("bare_metal: ok"), "{}:\n{out}", bin.display());
    };
    // Static, by the static .pc, with --gc-sections as README advises.
    let st = link("app-static", &["--cflags", "--libs", "edge_agent-static"], &["-Wl,--gc-sections"]);
    assert!(ours(&st).is_empty(), "a static link needs no libedge_agent: {:?}", ours(&st));
    runs(&st, None);
    // Shared, by the plain .pc: the soname is recorded.
    let dy = link("app-shared", &["--cflags", "--libs", "edge_agent"], &[]);
    assert_eq!(ours(&dy), vec![format!("libedge_agent.so.{abi}")]);
    runs(&dy, Some(&lib));
    // The old recipe: --static on the plain .pc still picks the .so.
    let old = link("app-old-recipe", &["--cflags", "--libs", "--static", "edge_agent"], &[]);
    assert_eq!(ours(&old), vec![format!("libedge_agent.so.{abi}")], "the pitfall edge_agent-static.pc avoids");
}

/// `make -C agent-ffi install PROFILE=dev` into `prefix`, from the clone at
/// `root`, with a target directory of its own (this test's cargo holds the
/// lock on ours); fails the test if make fails.
fn make_install(root: &Path, prefix: &Path) {
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
}
