//! Host stats checked against `/proc`, read independently here with std.

use agent_core::Instant;
use edge_agent_linux::clock;
use edge_agent_linux::stats::StatsReader;

fn proc(path: &str) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn host_stats_agree_with_proc() {
    let mut r = StatsReader::new(16 * 1024);
    let t0 = clock::monotonic();
    let first = r.read(t0);
    assert_eq!(first.cpu_permille, None, "a rate needs two readings");
    assert_eq!(first.rx_bytes_per_sec, None);

    // Memory total: exactly MemTotal.
    let meminfo = proc("/proc/meminfo");
    let kib = |k: &str| -> u64 {
        meminfo.lines().find(|l| l.starts_with(k)).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(first.mem_total_bytes, Some(kib("MemTotal:") * 1024));
    let used = first.mem_used_bytes.unwrap();
    assert!(used > 0 && used < kib("MemTotal:") * 1024);

    // Open fds: the entries of /proc/self/fd (std's listing holds one more).
    let listed = std::fs::read_dir("/proc/self/fd").unwrap().count() as u32 - 1;
    assert_eq!(first.open_fds, Some(listed), "fds");
    let extra: Vec<_> = (0..5).map(|_| std::fs::File::open("/proc/self/stat").unwrap()).collect();
    assert_eq!(r.read(clock::monotonic()).open_fds, Some(listed + 5), "five more files open");
    drop(extra);

    // RSS: statm's resident pages times the page size.
    let pages: u64 = proc("/proc/self/statm").split_whitespace().nth(1).unwrap().parse().unwrap();
    let rss = first.rss_bytes.unwrap();
    assert!(rss.abs_diff(pages * 4096) <= rss / 5, "rss {rss} vs {} (statm)", pages * 4096);

    // Load averages: /proc/loadavg's first three fields x 100.
    let load: Vec<u32> = proc("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .map(|v| (v.parse::<f64>().unwrap() * 100.0).round() as u32)
        .collect();
    let ours = [first.load1_centi.unwrap(), first.load5_centi.unwrap(), first.load15_centi.unwrap()];
    for (a, b) in ours.iter().zip(&load) {
        assert!(a.abs_diff(*b) <= 50, "load {ours:?} vs {load:?}");
    }

    // Network totals: /proc/net/dev summed without lo, never decreasing.
    let n0 = r.net_totals().unwrap();
    let mut rx = 0u64;
    let mut tx = 0u64;
    for l in proc("/proc/net/dev").lines().skip(2) {
        let (name, rest) = l.split_once(':').unwrap();
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest.split_whitespace().map(|v| v.parse().unwrap()).collect();
        rx += f[0];
        tx += f[8];
    }
    assert!(n0.rx_bytes <= rx && n0.tx_bytes <= tx, "{n0:?} vs rx {rx} tx {tx}");

    // CPU: burn 200 ms of CPU time (however long that takes on a busy
    // machine) between two readings; the per-mille times the interval is
    // the CPU time /proc counted.
    let cpu_ms = || -> u64 {
        let stat = proc("/proc/self/stat");
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).map(|v| v.parse().unwrap()).collect();
        (f[0] + f[1]) * 10 // USER_HZ is 100 on Linux
    };
    let mut r2 = StatsReader::new(4096);
    let c0 = cpu_ms();
    let a = clock::monotonic();
    r2.read(a);
    let mut x = 0u64;
    while cpu_ms() < c0 + 200 {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }
    let b = clock::monotonic();
    let s = r2.read(b);
    let c1 = cpu_ms();
    let permille = u64::from(s.cpu_permille.unwrap());
    let ours_ms = permille * (b - a).as_millis() / 1000;
    let burned = c1 - c0;
    assert!(ours_ms + 40 + burned / 10 >= burned && ours_ms <= burned + 40, "{permille} per-mille over {:?} = {ours_ms} ms; /proc: {burned} ms", b - a);
    assert!(s.rx_bytes_per_sec.is_some() && s.tx_bytes_per_sec.is_some(), "rates on the second reading");
    let _ = Instant::ZERO;
}
