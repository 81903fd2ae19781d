//! The mbedTLS template (`examples/c/tls_mbedtls.c`, issue 19 item 3)
//! built with the strict C flags under AddressSanitizer + UBSan, linked
//! against Debian's static mbedTLS archives and `libedge_agent.a`, and run
//! against the collector binary over mutual TLS: every record stored
//! exactly once, the TLS heap a static pool whose peak it reports.
//!
//! It lives beside the collector's tests because it needs the collector
//! binary. Under CI a missing C compiler or mbedTLS fails; elsewhere the
//! test skips with a notice.

mod common;
#[path = "common/tls.rs"]
mod tls_util;

use common::{collector, sink_view, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;

const NATIVE_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Skips with a notice (logged to `EDGE_SKIP_LOG`), or fails under CI.
fn missing(what: &str) {
    edge_testkit::missing("mbedtls_template_delivers_exactly_once_over_mtls_under_asan", &format!("{what} missing"));
}

/// `libedge_agent.a`, built in a target directory of its own
/// (`edge_testkit::build`); the same one agent-ffi's C tests use.
fn staticlib() -> PathBuf {
    edge_testkit::build::agent_ffi_staticlib("ffi-plain", None, None).unwrap_or_else(|e| panic!("{e}"))
}

/// The static archive `name` as the C compiler finds it.
fn archive(cc: &str, name: &str) -> Option<PathBuf> {
    let o = Command::new(cc).arg(format!("-print-file-name={name}")).output().ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    p.is_absolute().then_some(p)
}

#[test]
fn mbedtls_template_delivers_exactly_once_over_mtls_under_asan() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if Command::new(&cc).arg("--version").output().is_err() {
        return missing("a C compiler");
    }
    let libs: Vec<PathBuf> = match ["libmbedtls.a", "libmbedx509.a", "libmbedcrypto.a"].iter().map(|n| archive(&cc, n)).collect() {
        Some(v) => v,
        None => return missing("libmbedtls-dev (static archives)"),
    };
    let pki = TempDir::new("mbedtls-pki");
    if !tls_util::dev_pki(pki.path(), &["mcu-1"]) {
        return;
    }
    let lib = staticlib();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tls_mbedtls-asan");
    let o = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-g", "-O1"])
        .args(["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"])
        .arg(format!("-I{}", root().join("include").display()))
        .arg(root().join("examples/c/tls_mbedtls.c"))
        // mbedTLS's calloc/free into the example's static pool (see its header).
        .args(["-Wl,--wrap=calloc", "-Wl,--wrap=free"])
        .args(&libs)
        .arg(&lib)
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "building tls_mbedtls.c failed:\n{}", String::from_utf8_lossy(&o.stderr));

    let dir = TempDir::new("mbedtls");
    let mut args = tls_util::collector_args(pki.path());
    args.extend(["--admission-rate", "0"].map(String::from));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = collector().start(dir.path(), &refs);
    let p = |n: &str| pki.path().join(n).to_str().unwrap().to_string();
    let records = 500;
    let run = Command::new(&out)
        .args(["127.0.0.1", &c.agents.port().to_string(), &p("ca.pem"), &p("mcu-1.pem"), &p("mcu-1.key"), "mcu-1", &records.to_string()])
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success() && stdout.lines().any(|l| l == "tls_mbedtls: ok"), "tls_mbedtls failed");
    let peak = stdout.lines().find_map(|l| l.strip_prefix("tls_mbedtls: pool peak ")).expect("pool peak reported");
    eprintln!("mbedTLS static pool peak: {peak}");
    let view = sink_view(dir.path());
    let texts = &view.texts["mcu-1"];
    assert_eq!(texts.len(), records, "every record stored once");
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(t, &format!("mcu-1#{i}"));
    }
}
