//! A chaos TCP proxy on loopback: cuts, stalls, bit flips, refused connects.

use super::Rng;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the proxy does to connections.
#[derive(Clone, Debug, Default)]
pub struct Chaos {
    /// Cut each connection after a random number of bytes below this
    /// (per direction); `None`: never.
    pub cut_below: Option<u64>,
    /// Per mille of chunks (agent -> collector) with one bit flipped.
    pub flip_up: u32,
    /// Per mille of chunks (collector -> agent) with one bit flipped.
    pub flip_down: u32,
    /// Per mille of chunks delayed by `stall`.
    pub stall_per_mille: u32,
    pub stall: Duration,
    /// Refuse (close at once) every n-th connection; 0: none.
    pub refuse_every: u64,
}

#[derive(Debug, Default)]
pub struct ProxyStats {
    pub connections: AtomicU64,
    pub refused: AtomicU64,
    pub cuts: AtomicU64,
    pub flips: AtomicU64,
    pub stalls: AtomicU64,
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub stats: Arc<ProxyStats>,
    stop: Arc<AtomicBool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

pub fn start(upstream: SocketAddr, chaos: Chaos, seed: u64) -> Proxy {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let stats = Arc::new(ProxyStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (st, sp) = (stats.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut rng = Rng(seed);
        let mut n = 0u64;
        for c in l.incoming() {
            if sp.load(Ordering::Relaxed) {
                return;
            }
            let Ok(client) = c else { continue };
            n += 1;
            st.connections.fetch_add(1, Ordering::Relaxed);
            if chaos.refuse_every > 0 && n.is_multiple_of(chaos.refuse_every) {
                st.refused.fetch_add(1, Ordering::Relaxed);
                drop(client);
                continue;
            }
            let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(1)) else { continue };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            for (from, to, flip) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap(), chaos.flip_up),
                (server.try_clone().unwrap(), client.try_clone().unwrap(), chaos.flip_down),
            ] {
                let chaos = chaos.clone();
                let st = st.clone();
                let mut r = Rng(rng.next());
                std::thread::spawn(move || pump(from, to, flip, &chaos, &st, &mut r));
            }
        }
    });
    Proxy { addr, stats, stop }
}

fn pump(mut from: TcpStream, mut to: TcpStream, flip: u32, c: &Chaos, st: &ProxyStats, rng: &mut Rng) {
    let mut budget = c.cut_below.map(|b| 1 + rng.below(b));
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut n = n;
        let mut cut = false;
        if let Some(b) = budget.as_mut() {
            if (n as u64) >= *b {
                n = *b as usize;
                cut = true;
            } else {
                *b -= n as u64;
            }
        }
        if flip > 0 && rng.below(1000) < u64::from(flip) {
            let i = rng.below(n as u64) as usize;
            buf[i] ^= 1 << rng.below(8);
            st.flips.fetch_add(1, Ordering::Relaxed);
        }
        if c.stall_per_mille > 0 && rng.below(1000) < u64::from(c.stall_per_mille) {
            st.stalls.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(c.stall);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if cut {
            st.cuts.fetch_add(1, Ordering::Relaxed);
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
