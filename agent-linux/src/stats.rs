//! Host stats for heartbeats, read from `/proc` into a buffer sized at init
//! (no allocation per reading).
//!
//! Whose numbers they are:
//! * **the process's** (the program that embeds the agent): CPU (per-mille of
//!   one core, averaged since the previous reading), RSS, open file
//!   descriptors;
//! * **the host's**: load averages, memory used (`MemTotal - MemAvailable`)
//!   and total, and network rates: bytes per second received and
//!   transmitted by the host, summed over every interface but loopback,
//!   averaged since the previous reading.
//!
//! Rates need two readings: the first reading leaves CPU and network rates
//! `None`. A file that cannot be read or parsed leaves its fields `None`.

use agent_core::{HostStats, Instant};
use std::io::Read;

/// Reads [`HostStats`] from `/proc`; keeps the previous reading for rates.
#[derive(Debug)]
pub struct StatsReader {
    buf: Vec<u8>,
    clk_tck: u64,
    page_size: u64,
    last_cpu: Option<(Instant, u64)>,
    last_net: Option<(Instant, u64, u64)>,
}

/// What `/proc/net/dev` says, summed over interfaces but `lo`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetTotals {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
}

impl StatsReader {
    /// A reader whose file buffer holds `buf_len` bytes (a `/proc` file
    /// longer than that is parsed as far as it fits; 16 KiB holds
    /// `/proc/net/dev` of ~100 interfaces).
    pub fn new(buf_len: usize) -> Self {
        // SAFETY: sysconf only reads configuration values.
        let (tck, page) = unsafe { (nix::libc::sysconf(nix::libc::_SC_CLK_TCK), nix::libc::sysconf(nix::libc::_SC_PAGESIZE)) };
        StatsReader {
            buf: vec![0; buf_len.max(512)],
            clk_tck: u64::try_from(tck).ok().filter(|&t| t > 0).unwrap_or(100),
            page_size: u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096),
            last_cpu: None,
            last_net: None,
        }
    }

    /// One reading at `now` (the agent's monotonic clock).
    pub fn read(&mut self, now: Instant) -> HostStats {
        let mut s = HostStats::default();
        if let Some(ticks) = self.cpu_ticks() {
            if let Some((t0, k0)) = self.last_cpu {
                let dt = now.saturating_since(t0).as_millis();
                let cpu_ms = ticks.saturating_sub(k0) * 1000 / self.clk_tck;
                s.cpu_permille = (cpu_ms * 1000).checked_div(dt).and_then(|p| u32::try_from(p).ok());
            }
            self.last_cpu = Some((now, ticks));
        }
        s.rss_bytes = self.rss_pages().map(|p| p * self.page_size);
        s.open_fds = self.open_fds();
        if let Some([l1, l5, l15]) = self.load_centi() {
            (s.load1_centi, s.load5_centi, s.load15_centi) = (Some(l1), Some(l5), Some(l15));
        }
        if let Some((total, available)) = self.mem_kib() {
            s.mem_total_bytes = Some(total * 1024);
            s.mem_used_bytes = Some(total.saturating_sub(available) * 1024);
        }
        if let Some(n) = self.net_totals() {
            if let Some((t0, rx0, tx0)) = self.last_net {
                let dt = now.saturating_since(t0).as_millis();
                s.rx_bytes_per_sec = (n.rx_bytes.saturating_sub(rx0) * 1000).checked_div(dt);
                s.tx_bytes_per_sec = (n.tx_bytes.saturating_sub(tx0) * 1000).checked_div(dt);
            }
            self.last_net = Some((now, n.rx_bytes, n.tx_bytes));
        }
        s
    }

    fn load(&mut self, path: &str) -> Option<&str> {
        let mut f = std::fs::File::open(path).ok()?;
        let mut n = 0;
        while n < self.buf.len() {
            match f.read(&mut self.buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        // A truncated file may end mid-character; keep the valid prefix.
        let bytes = &self.buf[..n];
        Some(match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        })
    }

    /// utime + stime of this process, in clock ticks.
    pub fn cpu_ticks(&mut self) -> Option<u64> {
        let text = self.load("/proc/self/stat")?;
        // Fields after the command name (which may hold spaces) start at
        // field 3 (state); utime and stime are fields 14 and 15.
        let rest = &text[text.rfind(')')? + 1..];
        let mut f = rest.split_ascii_whitespace().skip(11);
        let utime: u64 = f.next()?.parse().ok()?;
        let stime: u64 = f.next()?.parse().ok()?;
        Some(utime + stime)
    }

    /// Resident pages of this process.
    pub fn rss_pages(&mut self) -> Option<u64> {
        self.load("/proc/self/statm")?.split_ascii_whitespace().nth(1)?.parse().ok()
    }

    /// Open file descriptors of this process (entries of `/proc/self/fd`,
    /// not counting the one used to list them).
    pub fn open_fds(&mut self) -> Option<u32> {
        use nix::fcntl::{open, OFlag};
        use std::os::fd::AsRawFd;
        let dir = open("/proc/self/fd", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).ok()?;
        let mut count: u32 = 0;
        loop {
            // SAFETY: getdents64 writes at most `len` bytes into our buffer.
            let n = unsafe {
                nix::libc::syscall(nix::libc::SYS_getdents64, dir.as_raw_fd(), self.buf.as_mut_ptr(), self.buf.len())
            };
            if n < 0 {
                return None;
            }
            if n == 0 {
                break;
            }
            let mut at = 0usize;
            let n = n as usize;
            // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name.
            while at + 19 < n {
                let reclen = u16::from_ne_bytes([self.buf[at + 16], self.buf[at + 17]]) as usize;
                if reclen == 0 {
                    break;
                }
                let name = &self.buf[at + 19..(at + reclen).min(n)];
                if name[0] != b'.' {
                    count += 1;
                }
                at += reclen;
            }
        }
        Some(count.saturating_sub(1))
    }

    /// The three load averages x 100.
    pub fn load_centi(&mut self) -> Option<[u32; 3]> {
        let text = self.load("/proc/loadavg")?;
        let mut f = text.split_ascii_whitespace();
        let mut out = [0u32; 3];
        for v in &mut out {
            *v = centi(f.next()?)?;
        }
        Some(out)
    }

    /// `MemTotal` and `MemAvailable` in KiB.
    pub fn mem_kib(&mut self) -> Option<(u64, u64)> {
        let text = self.load("/proc/meminfo")?;
        let (mut total, mut avail) = (None, None);
        for line in text.lines() {
            let mut f = line.split_ascii_whitespace();
            match f.next() {
                Some("MemTotal:") => total = f.next().and_then(|v| v.parse().ok()),
                Some("MemAvailable:") => avail = f.next().and_then(|v| v.parse().ok()),
                _ => {}
            }
        }
        Some((total?, avail?))
    }

    /// Bytes received and transmitted by every interface but `lo`.
    pub fn net_totals(&mut self) -> Option<NetTotals> {
        let text = self.load("/proc/net/dev")?;
        let mut t = NetTotals::default();
        // Two header lines, then "  name: rx_bytes packets ... tx_bytes ...".
        for line in text.lines().skip(2) {
            let Some((name, rest)) = line.split_once(':') else { continue };
            if name.trim() == "lo" {
                continue;
            }
            let mut f = rest.split_ascii_whitespace();
            let rx: u64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            let tx: u64 = f.nth(7).and_then(|v| v.parse().ok()).unwrap_or(0);
            t.rx_bytes = t.rx_bytes.saturating_add(rx);
            t.tx_bytes = t.tx_bytes.saturating_add(tx);
        }
        Some(t)
    }
}

/// "0.52" -> 52.
fn centi(s: &str) -> Option<u32> {
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    let int: u32 = int.parse().ok()?;
    let mut frac2 = 0u32;
    for (i, c) in frac.bytes().take(2).enumerate() {
        let d = u32::from(c.checked_sub(b'0').filter(|d| *d < 10)?);
        frac2 += if i == 0 { d * 10 } else { d };
    }
    int.checked_mul(100)?.checked_add(frac2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centi_parses_load_averages() {
        assert_eq!(centi("0.52"), Some(52));
        assert_eq!(centi("12.5"), Some(1250));
        assert_eq!(centi("3"), Some(300));
        assert_eq!(centi("x"), None);
    }
}
