//! Keeps each entry point of `Agent` a function of its own on the target, so
//! its worst-case stack can be read off the image (scripts/stack-report.sh),
//! and paints the stack around each call for a measured high-water mark when
//! run under QEMU (`mps2-an386`, a Cortex-M4; results by semihosting).
//!
//! Each `stack_*` wrapper is `#[inline(never)]` and `#[no_mangle]` and takes
//! what the entry point takes, borrowed where the entry point borrows it
//! (`stack_new` also borrows the config and identity it copies for
//! `Agent::new`; taking them by value gives the same frame), so its stack is
//! what a firmware caller pays below its own frame.
//!
//! Built only with `--features stack-probe` and the linker script
//! `stack-probe.ld` (see scripts/stack-report.sh); not a firmware template:
//! no interrupts, and `.data` is left where QEMU loads it.
#![no_std]
#![no_main]

use agent_core::message::{Accept, Ack, Config, Message, Ping, Task};
use agent_core::{
    Agent, AgentConfig, AgentStats, AgentStorage, ConfigError, Event, Identity, Instant, OverflowPolicy, PushError,
    Record, TransportError,
};
use core::arch::asm;
use core::hint::black_box;

// ---- the entry points, one function each -------------------------------

#[no_mangle]
#[inline(never)]
pub fn stack_new(
    cfg: &AgentConfig,
    id: &Identity<'static>,
    storage: AgentStorage<'static>,
) -> Result<Agent<'static>, ConfigError> {
    Agent::new(*cfg, *id, storage)
}

#[no_mangle]
#[inline(never)]
pub fn stack_push(agent: &mut Agent<'_>, now: Instant, rec: &Record<'_>) -> Result<(), PushError> {
    agent.push(now, rec)
}

#[no_mangle]
#[inline(never)]
pub fn stack_poll_transmit(agent: &mut Agent<'_>, now: Instant, out: &mut [u8]) -> usize {
    agent.poll_transmit(now, out)
}

#[no_mangle]
#[inline(never)]
pub fn stack_handle_received(agent: &mut Agent<'_>, now: Instant, bytes: &[u8]) {
    agent.handle_received(now, bytes)
}

#[no_mangle]
#[inline(never)]
pub fn stack_handle_timeout(agent: &mut Agent<'_>, now: Instant) {
    agent.handle_timeout(now)
}

#[no_mangle]
#[inline(never)]
pub fn stack_poll_event<'a>(agent: &'a mut Agent<'_>) -> Option<Event<'a>> {
    agent.poll_event()
}

#[no_mangle]
#[inline(never)]
pub fn stack_heartbeat_now(agent: &mut Agent<'_>, now: Instant) {
    agent.heartbeat_now(now)
}

#[no_mangle]
#[inline(never)]
pub fn stack_handle_connected(agent: &mut Agent<'_>, now: Instant) {
    agent.handle_connected(now)
}

#[no_mangle]
#[inline(never)]
pub fn stack_handle_disconnected(agent: &mut Agent<'_>, now: Instant, error: TransportError) {
    agent.handle_disconnected(now, error)
}

#[no_mangle]
#[inline(never)]
pub fn stack_task_result(agent: &mut Agent<'_>, now: Instant, token: &str, status: u32, msg: &str) -> Result<(), PushError> {
    agent.task_result(now, token, status, msg)
}

#[no_mangle]
#[inline(never)]
pub fn stack_close(agent: &mut Agent<'_>, now: Instant) {
    agent.close(now)
}

#[no_mangle]
#[inline(never)]
pub fn stack_poll_timeout(agent: &Agent<'_>) -> Option<Instant> {
    agent.poll_timeout()
}

#[no_mangle]
#[inline(never)]
pub fn stack_stats(agent: &Agent<'_>) -> AgentStats {
    agent.stats()
}

// ---- painting and semihosting (QEMU) -------------------------------------

const PAINT: u32 = 0xDEAD_BEEF;
/// Words of stack painted below the caller's stack pointer before each call.
const PAINT_WORDS: usize = 8 * 1024;

extern "C" {
    /// The lowest address the stack may reach (from stack-probe.ld).
    static _stack_limit: u32;
}

fn sp() -> usize {
    let sp: usize;
    // SAFETY: reads the stack pointer; no memory is touched.
    unsafe { asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// Paints the words below `top`, down to `PAINT_WORDS` below it. Inlined, so
/// it runs in the caller's frame and writes only below the stack pointer.
#[inline(always)]
fn paint(top: usize) -> usize {
    let limit = core::ptr::addr_of!(_stack_limit) as usize;
    let bottom = top.saturating_sub(PAINT_WORDS * 4).max(limit) & !3;
    let mut p = bottom;
    while p < top & !3 {
        // SAFETY: [bottom, top) is unused stack below the stack pointer; no
        // interrupt is enabled, so nothing else writes there.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
    bottom
}

/// Bytes below `top` written since `paint(top)`.
#[inline(always)]
fn used(top: usize, bottom: usize) -> usize {
    let mut p = bottom;
    // SAFETY: as in `paint`; only reads.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    top - p
}

fn semihost(op: u32, arg: usize) -> u32 {
    let r: u32;
    // SAFETY: an Angel semihosting call (QEMU `-semihosting`); `arg` points
    // to what `op` expects.
    unsafe { asm!("bkpt #0xab", inout("r0") op => r, in("r1") arg, options(nostack)) };
    r
}

fn exit(ok: bool) -> ! {
    // SYS_EXIT with ADP_Stopped_ApplicationExit, or ADP_Stopped_RunTimeError.
    semihost(0x18, if ok { 0x20026 } else { 0x20023 });
    loop {
        core::hint::spin_loop();
    }
}

/// Prints `name value\n` (SYS_WRITE0).
fn print(name: &str, value: usize) {
    let mut line = [0u8; 64];
    let mut n = 0;
    for &b in name.as_bytes().iter().take(40) {
        line[n] = b;
        n += 1;
    }
    line[n] = b' ';
    n += 1;
    let mut digits = [0u8; 10];
    let (mut v, mut d) = (value, 0);
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        line[n] = digits[d];
        n += 1;
    }
    line[n] = b'\n';
    semihost(0x04, line.as_ptr() as usize);
}

/// The most stack any measured call of one entry point used.
struct Peak {
    name: &'static str,
    bytes: usize,
}

impl Peak {
    const fn new(name: &'static str) -> Self {
        Peak { name, bytes: 0 }
    }
    fn report(&self) {
        print(self.name, self.bytes);
    }
}

/// Runs `$call` on freshly painted stack and keeps its high-water mark.
macro_rules! measure {
    ($peak:expr, $call:expr) => {{
        let top = sp();
        let bottom = paint(top);
        let r = $call;
        let u = used(top, bottom);
        if u >= top - bottom {
            print("overflow-of-painted-window", u);
            exit(false);
        }
        $peak.bytes = $peak.bytes.max(u);
        r
    }};
}

// ---- the run ------------------------------------------------------------

static mut RING: [u8; 8192] = [0; 8192];
static mut RX: [u8; 2048] = [0; 2048];
static mut EVENTS: [u8; 512] = [0; 512];
static mut TX: [u8; 4608] = [0; 4608];
static mut WIRE: [u8; 1024] = [0; 1024];

// A handler as small as a firmware's `loop {}`: it prints a fixed string,
// so it cannot panic itself.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    semihost(0x04, c"panic\n".as_ptr() as usize);
    exit(false)
}

extern "C" fn fault() -> ! {
    semihost(0x04, c"fault\n".as_ptr() as usize);
    exit(false)
}

/// The vector table after the initial stack pointer (stack-probe.ld):
/// reset, NMI, HardFault.
#[link_section = ".vectors"]
#[used]
static VECTORS: [extern "C" fn() -> !; 3] = [_start, fault, fault];

/// Encodes `m` at `wire[at..]`; returns the end.
fn put(wire: &mut [u8], at: usize, seq: u32, m: Message<'_>) -> usize {
    match m.encode(seq, &mut wire[at..]) {
        Ok(n) => at + n,
        Err(_) => exit(false),
    }
}

#[no_mangle]
pub extern "C" fn _start() -> ! {
    // SAFETY: turns on the FPU (CPACR, CP10 and CP11 full access), as a
    // reset handler for an eabihf target must.
    unsafe { core::ptr::write_volatile(0xE000_ED88 as *mut u32, 0xF << 20) };
    // SAFETY: single-threaded entry point; each static is borrowed once.
    let (ring, rx, events, tx, wire) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(RING),
            &mut *core::ptr::addr_of_mut!(RX),
            &mut *core::ptr::addr_of_mut!(EVENTS),
            &mut *core::ptr::addr_of_mut!(TX),
            &mut *core::ptr::addr_of_mut!(WIRE),
        )
    };
    let mut p_new = Peak::new("stack_new");
    let mut p_push = Peak::new("stack_push");
    let mut p_tx = Peak::new("stack_poll_transmit");
    let mut p_rx = Peak::new("stack_handle_received");
    let mut p_timeout = Peak::new("stack_handle_timeout");
    let mut p_event = Peak::new("stack_poll_event");
    let mut p_hb = Peak::new("stack_heartbeat_now");
    let mut p_conn = Peak::new("stack_handle_connected");
    let mut p_disc = Peak::new("stack_handle_disconnected");
    let mut p_result = Peak::new("stack_task_result");
    let mut p_close = Peak::new("stack_close");
    let mut p_ptimeout = Peak::new("stack_poll_timeout");
    let mut p_stats = Peak::new("stack_stats");

    let id = Identity { agent_id: "probe", product: "edge", hostname: "mcu", version: "1.0", ..Identity::default() };
    let mut cfg = AgentConfig::default();
    cfg.ring.policy = OverflowPolicy::DropOldest;
    cfg.ring.max_record = 512;
    // Heartbeats fall due among the pushes below.
    cfg.heartbeat_interval = agent_core::Duration::from_secs(1);
    let cfg = black_box(cfg);
    let Ok(mut agent) = measure!(p_new, stack_new(&cfg, &id, AgentStorage { ring, rx, events })) else {
        exit(false)
    };
    let plugin = agent.register_plugin("plugin", "1");
    if let Ok(p) = plugin {
        let _ = agent.set_plugin_status(p, 7, agent_core::PluginStatus::Running);
    }
    let drain = |agent: &mut Agent<'_>, p_event: &mut Peak| {
        while measure!(p_event, stack_poll_event(black_box(&mut *agent))).is_some() {}
    };

    // Two sessions: connect, handshake, records under overflow, heartbeats,
    // acks, pings, a task, a config, the task's result, a disconnect.
    let mut t = 0u64;
    for session in 0..2u32 {
        // The collector's frame counter, per connection.
        let mut seq = 0u32;
        // Backoff until the Connect event (the first is due at once).
        for _ in 0..1000 {
            let now = Instant(black_box(t));
            measure!(p_timeout, stack_handle_timeout(black_box(&mut agent), now));
            if agent.state() == agent_core::StateKind::Connecting {
                break;
            }
            t = measure!(p_ptimeout, stack_poll_timeout(black_box(&agent))).map_or(t + 1, |d| d.0.max(t + 1));
        }
        drain(&mut agent, &mut p_event);
        measure!(p_conn, stack_handle_connected(black_box(&mut agent), Instant(black_box(t))));
        let n = measure!(p_tx, stack_poll_transmit(black_box(&mut agent), Instant(black_box(t)), &mut *tx));
        black_box(&tx[..n]);

        let end = put(wire, 0, seq, Message::Accept(Accept { next_seq: 0, max_frame: 65536, retry_window_ms: 0 }));
        seq += 1;
        measure!(p_rx, stack_handle_received(black_box(&mut agent), Instant(black_box(t)), black_box(&wire[..end])));
        drain(&mut agent, &mut p_event);

        // Records, past the ring's capacity (DropOldest evicts), with the
        // agent's timers and transmits in between.
        let payload = [0x5au8; 200];
        for i in 0..200u64 {
            t += 7;
            let now = Instant(black_box(t));
            let len = black_box(16 + (i as usize * 37) % 180);
            let rec = Record::new(black_box(2001), t, &payload[..len]);
            let _ = measure!(p_push, stack_push(black_box(&mut agent), now, &rec));
            measure!(p_timeout, stack_handle_timeout(black_box(&mut agent), now));
            if i % 16 == 0 {
                let n = measure!(p_tx, stack_poll_transmit(black_box(&mut agent), now, &mut *tx));
                black_box(&tx[..n]);
            }
        }
        // A heartbeat when due (handle_timeout), and one on demand.
        t += 1_000;
        measure!(p_timeout, stack_handle_timeout(black_box(&mut agent), Instant(black_box(t))));
        measure!(p_hb, stack_heartbeat_now(black_box(&mut agent), Instant(black_box(t))));
        while measure!(p_tx, stack_poll_transmit(black_box(&mut agent), Instant(black_box(t)), &mut *tx)) > 0 {}

        // One read with an ack, a ping, two tasks and a config in it.
        let acked = agent.ring().next_seq().saturating_sub(1);
        let mut end = put(wire, 0, seq, Message::Ack(Ack { up_to: acked }));
        end = put(wire, end, seq + 1, Message::Ping(Ping { nonce: 42 }));
        let task = Task { object_name: "edge".into(), data_type: 2100, payload: b"args", token: "tok-1".into() };
        end = put(wire, end, seq + 2, Message::Task(task));
        let config = Config { name: "sampling".into(), version: "v2".into(), payload: b"{\"hz\":10}" };
        end = put(wire, end, seq + 3, Message::Config(config));
        // A task for no registered plugin: the agent answers it itself.
        let lost = Task { object_name: "nobody".into(), data_type: 2100, payload: b"", token: "tok-2".into() };
        end = put(wire, end, seq + 4, Message::Task(lost));
        measure!(p_rx, stack_handle_received(black_box(&mut agent), Instant(black_box(t)), black_box(&wire[..end])));
        drain(&mut agent, &mut p_event);
        let _ = measure!(p_result, stack_task_result(black_box(&mut agent), Instant(black_box(t)), "tok-1", 0, "done"));
        while measure!(p_tx, stack_poll_transmit(black_box(&mut agent), Instant(black_box(t)), &mut *tx)) > 0 {}
        black_box(measure!(p_stats, stack_stats(black_box(&agent))));

        // Garbage, then the transport drops.
        measure!(p_rx, stack_handle_received(black_box(&mut agent), Instant(black_box(t)), black_box(&payload[..64])));
        t += 10;
        if session == 0 {
            let e = TransportError::Reset;
            measure!(p_disc, stack_handle_disconnected(black_box(&mut agent), Instant(black_box(t)), e));
        } else {
            measure!(p_close, stack_close(black_box(&mut agent), Instant(black_box(t))));
        }
        drain(&mut agent, &mut p_event);
    }

    for p in [
        &p_new, &p_push, &p_tx, &p_rx, &p_timeout, &p_event, &p_hb, &p_conn, &p_disc, &p_result, &p_close,
        &p_ptimeout, &p_stats,
    ] {
        p.report();
    }
    let s = agent.stats();
    print("records_pushed", s.pushed as usize);
    print("records_evicted", s.dropped_evicted as usize);
    print("records_acked", s.acked as usize);
    print("frames_received", s.frames_received as usize);
    // Sizes of what the entry points take and return, for reading the frames.
    print("size_of::<Agent>", core::mem::size_of::<Agent<'static>>());
    print("size_of::<AgentConfig>", core::mem::size_of::<AgentConfig>());
    print("size_of::<Identity>", core::mem::size_of::<Identity<'static>>());
    print("size_of::<AgentStats>", core::mem::size_of::<AgentStats>());
    print("size_of::<HostStats>", core::mem::size_of::<agent_core::HostStats>());
    print("size_of::<Event>", core::mem::size_of::<Option<Event<'static>>>());
    exit(true)
}
