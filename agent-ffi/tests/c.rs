//! The C side, for real: the examples and C tests compiled with the system's
//! C and C++ compilers (strict flags), linked against `libedge_agent.a`, and
//! run plainly, with a heap-call counter, under valgrind memcheck, under
//! AddressSanitizer + UBSan (the Rust side instrumented too) and under
//! ThreadSanitizer. Each sanitizer run has a negative control that must be
//! caught, so a silently disabled tool cannot pass.
//!
//! A missing tool (no C or C++ compiler, no valgrind, a host other than
//! x86_64 Linux for the sanitizers) fails the test under CI and skips it
//! with a notice elsewhere (`edge_testkit::missing`); a sanitized build
//! that fails is a failure everywhere, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The libraries the Rust standard library in `libedge_agent.a` needs
/// (`--print native-static-libs`).
const NATIVE_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];
const CFLAGS: &[&str] = &["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-g"];
const CXXFLAGS: &[&str] = &["-std=c++11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-g"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The static library, as `cargo build -p agent-ffi` makes it. `cargo test`
/// builds only the rlib its tests link, so the staticlib is built here, in
/// a target directory of its own (`edge_testkit::build`).
fn plain_lib() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| edge_testkit::build::agent_ffi_staticlib("ffi-plain", None, None).unwrap_or_else(|e| panic!("{e}"))).clone()
}

fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tool(var: &str, default: &str) -> Option<String> {
    let t = std::env::var(var).unwrap_or_else(|_| default.to_string());
    Command::new(&t).arg("--version").output().ok().filter(|o| o.status.success()).map(|_| t)
}

/// The C compiler for `test`; `None` (skip, or under CI a failure) when
/// there is none.
fn cc(test: &str) -> Option<String> {
    let c = tool("CC", "cc");
    if c.is_none() {
        edge_testkit::missing(test, "no C compiler (cc / $CC)");
    }
    c
}

/// The C++ compiler for `test`; `None` (its C++ part skipped, or under CI
/// a failure) when there is none.
fn cxx(test: &str) -> Option<String> {
    let c = tool("CXX", "c++");
    if c.is_none() {
        edge_testkit::missing(&format!("{test} (C++ part)"), "no C++ compiler (c++ / $CXX)");
    }
    c
}

/// Compiles and links `sources` into `out`; panics with the compiler's
/// output on failure.
fn build(compiler: &str, flags: &[&str], extra: &[&str], sources: &[PathBuf], lib: &Path, out: &Path) {
    let r = root();
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .args(extra)
        .arg(format!("-I{}", r.join("include").display()))
        .arg(format!("-I{}", r.join("examples/c").display()))
        .args(sources)
        .arg(lib)
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(out);
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "compiling {sources:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
}

/// An object file (for sources compiled with other flags than the program).
fn object(compiler: &str, flags: &[&str], src: &Path, out: &Path) -> PathBuf {
    let o = Command::new(compiler).args(flags).arg("-c").arg(src).arg("-o").arg(out).output().unwrap();
    assert!(o.status.success(), "compiling {} failed:\n{}", src.display(), String::from_utf8_lossy(&o.stderr));
    out.to_path_buf()
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap();
    print!("{}", String::from_utf8_lossy(&o.stdout));
    eprint!("{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn assert_ok(o: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{what} exited with {:?}:\n{stdout}\n{}", o.status, String::from_utf8_lossy(&o.stderr));
    assert!(stdout.lines().any(|l| l.ends_with(": ok") || l.ends_with(" ok")), "{what} did not report ok:\n{stdout}");
}

fn example(name: &str) -> PathBuf {
    root().join("examples/c").join(name)
}

fn ctest(name: &str) -> PathBuf {
    root().join("agent-ffi/tests/c").join(name)
}

/// The three programs, built against `lib` with `extra` flags.
struct Programs {
    bare_metal: PathBuf,
    raii: Option<PathBuf>,
    threads: PathBuf,
}

fn programs(test: &str, cc: &str, tag: &str, extra: &[&str], lib: &Path, extra_sources: &[PathBuf]) -> Programs {
    let d = out_dir();
    let bare_metal = d.join(format!("bare_metal-{tag}"));
    let mut srcs = vec![example("bare_metal.c")];
    srcs.extend_from_slice(extra_sources);
    build(cc, CFLAGS, extra, &srcs, lib, &bare_metal);
    let threads = d.join(format!("threads-{tag}"));
    let mut srcs = vec![ctest("threads.c")];
    srcs.extend_from_slice(extra_sources);
    build(cc, CFLAGS, extra, &srcs, lib, &threads);
    let raii = cxx(test).map(|cxx| {
        let p = d.join(format!("raii-{tag}"));
        let mut srcs = vec![example("raii.cpp")];
        srcs.extend_from_slice(extra_sources);
        build(&cxx, CXXFLAGS, extra, &srcs, lib, &p);
        p
    });
    Programs { bare_metal, raii, threads }
}

#[test]
fn examples_compile_strictly_and_run() {
    let test = "examples_compile_strictly_and_run";
    let Some(cc) = cc(test) else { return };
    let p = programs(test, &cc, "plain", &[], &plain_lib(), &[]);
    assert_ok(&run(&mut Command::new(&p.bare_metal)), "bare_metal");
    assert_ok(&run(&mut Command::new(&p.threads)), "threads");
    if let Some(raii) = &p.raii {
        assert_ok(&run(&mut Command::new(raii)), "raii");
    }
}

fn heap_calls(o: &Output) -> u64 {
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err.lines().find_map(|l| l.strip_prefix("heap calls: ")).expect("no heap-call report");
    line.trim().parse().unwrap()
}

#[test]
fn the_library_makes_no_heap_calls() {
    let test = "the_library_makes_no_heap_calls";
    let Some(cc) = cc(test) else { return };
    let d = out_dir();
    let counter = object(&cc, &["-O1", "-g"], &ctest("count_malloc.c"), &d.join("count_malloc.o"));

    // Control: the counter sees a program's own malloc.
    let control_src = d.join("control.c");
    std::fs::write(&control_src, "#include <stdlib.h>\nint main(void) { void *volatile p = malloc(16); free(p); return 0; }\n").unwrap();
    let control = d.join("control");
    build(&cc, CFLAGS, &[], &[control_src, counter.clone()], &plain_lib(), &control);
    assert_eq!(heap_calls(&run(&mut Command::new(&control))), 2, "the counter counts malloc and free");

    let p = programs(test, &cc, "counted", &[], &plain_lib(), &[counter]);
    let o = run(&mut Command::new(&p.bare_metal));
    assert_ok(&o, "bare_metal");
    assert_eq!(heap_calls(&o), 0, "bare_metal: init, connect, batches, tasks, reconnect, close, deinit");
    if let Some(raii) = &p.raii {
        let o = run(&mut Command::new(raii));
        assert_ok(&o, "raii");
        assert_eq!(heap_calls(&o), 0, "raii");
    }
}

#[test]
fn valgrind_memcheck_is_clean() {
    let test = "valgrind_memcheck_is_clean";
    let Some(cc) = cc(test) else { return };
    if tool("VALGRIND", "valgrind").is_none() {
        edge_testkit::missing(test, "valgrind not found ($VALGRIND)");
        return;
    }
    let p = programs(test, &cc, "valgrind", &[], &plain_lib(), &[]);
    let mut progs = vec![("bare_metal", p.bare_metal)];
    progs.extend(p.raii.map(|r| ("raii", r)));
    for (name, prog) in progs {
        let o = run(Command::new("valgrind").args(["--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=all"]).arg(&prog));
        assert_ok(&o, name);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("ERROR SUMMARY: 0 errors"), "{name}: valgrind found errors:\n{err}");
    }
}

/// Builds libedge_agent.a with `-Zsanitizer=<which>` in its own target
/// directory. `None` (skip, or under CI a failure) on a host other than
/// x86_64 Linux; a build that fails panics: a failure, never a skip.
fn sanitized_lib(test: &str, which: &str) -> Option<PathBuf> {
    let triple = "x86_64-unknown-linux-gnu";
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        edge_testkit::missing(test, &format!("sanitizer builds need a {triple} host"));
        return None;
    }
    let mut flags = format!("-Zsanitizer={which}");
    if which != "address" {
        flags.push_str(" -Cunsafe-allow-abi-mismatch=sanitizer");
    }
    let lib = edge_testkit::build::agent_ffi_staticlib(&format!("sanitize-{which}"), Some(&flags), Some(triple));
    Some(lib.unwrap_or_else(|e| panic!("building agent-ffi with -Zsanitizer={which}: {e}")))
}

#[test]
fn asan_and_ubsan_are_clean() {
    let test = "asan_and_ubsan_are_clean";
    let Some(cc) = cc(test) else { return };
    let Some(lib) = sanitized_lib(test, "address") else { return };
    let san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"];
    let p = programs(test, &cc, "asan", &san, &lib, &[]);
    let asan_env = [("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0"), ("UBSAN_OPTIONS", "print_stacktrace=1")];
    let mut progs = vec![("bare_metal", p.bare_metal), ("threads", p.threads)];
    progs.extend(p.raii.map(|r| ("raii", r)));
    for (name, prog) in progs {
        let o = run(Command::new(&prog).envs(asan_env));
        assert_ok(&o, name);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("Sanitizer") && !err.contains("runtime error"), "{name}: sanitizer report:\n{err}");
    }

    // Control: a caller that lies about its ring's length makes the *Rust*
    // side write out of bounds; ASan must catch it there.
    let d = out_dir();
    let liar = d.join("asan-control");
    build(&cc, CFLAGS, &san, &[ctest("asan_control.c")], &lib, &liar);
    let o = run(Command::new(&liar).envs(asan_env));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the out-of-bounds control passed unnoticed");
    assert!(err.contains("AddressSanitizer: global-buffer-overflow"), "ASan did not report the overflow:\n{err}");
    assert!(err.contains("agent_core") || err.contains("edge_agent"), "the overflow was not seen in Rust code:\n{err}");
}

#[test]
fn threads_are_clean_under_tsan() {
    let test = "threads_are_clean_under_tsan";
    let Some(cc) = cc(test) else { return };
    let Some(lib) = sanitized_lib(test, "thread") else { return };
    let d = out_dir();
    let shim = ctest("tsan_shim.c");
    let prog = d.join("threads-tsan");
    build(&cc, CFLAGS, &["-fsanitize=thread"], &[ctest("threads.c"), shim.clone()], &lib, &prog);
    let o = run(Command::new(&prog).env("TSAN_OPTIONS", "halt_on_error=1"));
    assert_ok(&o, "threads under tsan");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("ThreadSanitizer"), "tsan report:\n{err}");

    // Control: the same program without lock hooks races inside the
    // library; TSan must report it.
    let racy = d.join("threads-tsan-nolock");
    build(&cc, CFLAGS, &["-fsanitize=thread", "-DTHREADS_NO_LOCK"], &[ctest("threads.c"), shim], &lib, &racy);
    let o = run(Command::new(&racy).env("TSAN_OPTIONS", "halt_on_error=1"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ThreadSanitizer: data race"), "TSan missed the race without lock hooks:\n{err}");
}

/// A daemon loop over a real loopback socket whose peer stops reading
/// (`tests/c/blocked.c`): with `ea_agent_handle_blocked` it sleeps from
/// timer to timer; the control, a loop that only stops calling
/// `ea_agent_poll_transmit` on EAGAIN, must be caught spinning.
#[test]
fn a_blocked_socket_does_not_make_the_loop_spin() {
    let Some(cc) = cc("a_blocked_socket_does_not_make_the_loop_spin") else { return };
    let d = out_dir();
    let prog = d.join("blocked");
    build(&cc, CFLAGS, &[], &[ctest("blocked.c")], &plain_lib(), &prog);
    assert_ok(&run(&mut Command::new(&prog)), "blocked");
    let control = d.join("blocked-control");
    build(&cc, CFLAGS, &["-DBLOCKED_CONTROL"], &[ctest("blocked.c")], &plain_lib(), &control);
    let o = run(&mut Command::new(&control));
    assert_eq!(o.status.code(), Some(3), "the control must spin:\n{}", String::from_utf8_lossy(&o.stdout));
}
