//! `ea_intake`: a lock-free single-producer, single-consumer queue of
//! records in caller memory, for pushing from an interrupt handler (or any
//! one context that must not take the agent's lock) while the main loop
//! drains it into the agent's ring with `ea_agent_drain_intake`.
//!
//! Promises:
//! * `ea_intake_push` never blocks, never takes a lock and never calls the
//!   agent: it copies the record into a fixed-size slot and publishes it
//!   with one release store. It is wait-free and interrupt-safe.
//! * Exactly **one producer** (one interrupt handler, or one thread) may
//!   push into an intake, and exactly one consumer (the agent draining it)
//!   may drain it. Two producers need two intakes.
//! * A record that does not fit is refused and counted (`dropped_full`,
//!   `dropped_too_large`): nothing is lost silently. Records come out in
//!   the order they went in.
//! * Counters are 32-bit and wrap (no 64-bit atomics on Cortex-M4).
//!
//! Layout: `slots` slots of `16 + max_payload` bytes each
//! (`len: u32 | data_type: u32 | timestamp: u64 | payload`), indexed by
//! free-running 32-bit head and tail counters.

use crate::args;
use crate::result::{ea_result, Res};
use agent_core::record::MAX_ENTRY_HEADER;
use agent_core::{Agent, Instant, OverflowPolicy, Record};
use core::mem::{align_of, size_of};
use core::num::NonZeroU32;
use core::sync::atomic::{AtomicU32, Ordering};

/// Bytes of an `ea_intake`.
pub const EA_INTAKE_STORAGE_SIZE: usize = 64;
/// `EA_INTAKE_STORAGE_SIZE` in 8-byte words.
pub const EA_INTAKE_STORAGE_WORDS: usize = EA_INTAKE_STORAGE_SIZE / 8;
/// Bytes of slot header beside each record's payload in the intake buffer.
pub const EA_INTAKE_SLOT_OVERHEAD: usize = 16;

/// Storage for one intake queue (the queue's records live in the buffer
/// given to `ea_intake_init`). Contents private; do not move or copy while
/// initialized.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct ea_intake {
    /// Private.
    pub _opaque: [u64; EA_INTAKE_STORAGE_WORDS],
}

/// Counters of an intake queue (32-bit, wrapping).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ea_intake_counters {
    /// Records accepted by `ea_intake_push`.
    pub pushed: u32,
    /// Records moved into the agent's ring by `ea_agent_drain_intake`. A
    /// record the ring has no room for stays queued (with
    /// `EA_OVERFLOW_REJECT_NEW`; `EA_OVERFLOW_DROP_OLDEST` evicts as for any
    /// push); one larger than `max_record` is counted in the agent's
    /// `dropped_too_large`.
    pub drained: u32,
    /// Records refused because every slot was taken.
    pub dropped_full: u32,
    /// Records refused as larger than the intake's `max_payload`.
    pub dropped_too_large: u32,
    /// Records waiting in the queue now (`pushed - drained`).
    pub queued: u32,
    /// Slots in the queue.
    pub slots: u32,
}

const MAGIC: u32 = 0xEA_17_A4_E0;

/// What lives in an `ea_intake`.
///
/// The fields that start at zero alternate with those that do not: five
/// zero words in a row are cleared by a call to `__aeabi_memclr4` on Arm,
/// a runtime helper nothing else in a firmware image needs.
#[repr(C)]
pub(crate) struct Inner {
    magic: u32,
    /// Written by the producer only.
    head: AtomicU32,
    /// Never zero (refused at init): the slot index is `% slots`.
    slots: NonZeroU32,
    /// Written by the consumer only.
    tail: AtomicU32,
    slot_len: u32,
    pushed: AtomicU32,
    dropped_full: AtomicU32,
    dropped_too_large: AtomicU32,
    buf: *mut u8,
}

const _: () = assert!(size_of::<Inner>() <= EA_INTAKE_STORAGE_SIZE);
const _: () = assert!(align_of::<Inner>() <= 8);

/// The live intake behind `q`: NULL, misaligned and uninitialized storage
/// refused (also what `ea_agent_drain_intake` checks before any work, then
/// drains).
pub(crate) fn inner<'a>(q: *const ea_intake) -> Res<&'a Inner> {
    if q.is_null() {
        return Err(ea_result::EA_NULL_PARAMETER);
    }
    if !(q as usize).is_multiple_of(align_of::<Inner>()) {
        return Err(ea_result::EA_STORAGE_MISALIGNED);
    }
    let p = q as *const Inner;
    // SAFETY: non-NULL, aligned; the storage is the caller's ea_intake. The
    // magic is written only by init/deinit.
    if unsafe { core::ptr::addr_of!((*p).magic).read() } != MAGIC {
        return Err(ea_result::EA_NOT_INITIALIZED);
    }
    // SAFETY: a live intake; all shared fields are atomics or immutable.
    Ok(unsafe { &*p })
}

/// Bumps a counter written by one side only.
fn bump(c: &AtomicU32) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

impl Inner {
    fn slot(&self, n: u32) -> *mut u8 {
        let i = (n % self.slots) as usize;
        // SAFETY: `i < slots` and the buffer holds `slots * slot_len` bytes.
        unsafe { self.buf.add(i * self.slot_len as usize) }
    }

    fn push(&self, data_type: u32, timestamp_ms: u64, payload: &[u8]) -> Res {
        if payload.len() > self.slot_len as usize - EA_INTAKE_SLOT_OVERHEAD {
            bump(&self.dropped_too_large);
            return Err(ea_result::EA_RECORD_TOO_LARGE);
        }
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        if head.wrapping_sub(tail) >= self.slots.get() {
            bump(&self.dropped_full);
            return Err(ea_result::EA_INTAKE_FULL);
        }
        let s = self.slot(head);
        let mut hdr = [0u8; EA_INTAKE_SLOT_OVERHEAD];
        hdr[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        hdr[4..8].copy_from_slice(&data_type.to_le_bytes());
        hdr[8..16].copy_from_slice(&timestamp_ms.to_le_bytes());
        // SAFETY: slot `head` is free (the consumer is behind it), so only
        // this producer touches it until the release store below.
        unsafe {
            core::ptr::copy_nonoverlapping(hdr.as_ptr(), s, hdr.len());
            core::ptr::copy_nonoverlapping(payload.as_ptr(), s.add(hdr.len()), payload.len());
        }
        self.head.store(head.wrapping_add(1), Ordering::Release);
        bump(&self.pushed);
        Ok(())
    }

    /// Moves up to `slots` records into `agent` (one pass: a producer that
    /// keeps pushing cannot keep the consumer here forever), stopping at the
    /// first one the ring has no room for under `RejectNew`.
    pub(crate) fn drain(&self, agent: &mut Agent<'_>, now: Instant) -> u32 {
        let mut n = 0;
        while n < self.slots.get() {
            let tail = self.tail.load(Ordering::Relaxed);
            if tail == self.head.load(Ordering::Acquire) {
                break;
            }
            let s = self.slot(tail);
            // SAFETY: slot `tail` was published by the producer's release
            // store (seen by the acquire load above) and is not written
            // again until the tail moves past it.
            let (hdr, payload) = unsafe {
                let hdr = core::slice::from_raw_parts(s, EA_INTAKE_SLOT_OVERHEAD);
                let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
                let len = len.min(self.slot_len as usize - EA_INTAKE_SLOT_OVERHEAD);
                (hdr, core::slice::from_raw_parts(s.add(EA_INTAKE_SLOT_OVERHEAD), len))
            };
            let data_type = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&hdr[8..16]);
            // A record the ring has no room for now stays queued (RejectNew):
            // draining must not turn a full ring into lost records.
            let need = payload.len().saturating_add(MAX_ENTRY_HEADER);
            let ring = agent.ring();
            if agent.config().ring.policy == OverflowPolicy::RejectNew && ring.free_bytes() < need && need <= ring.capacity() {
                break;
            }
            // Any other refusal (too large) is counted by the ring.
            let _ = agent.push(now, &Record::new(data_type, u64::from_le_bytes(ts), payload));
            self.tail.store(tail.wrapping_add(1), Ordering::Release);
            n += 1;
        }
        n
    }

    fn stats(&self) -> ea_intake_counters {
        let tail = self.tail.load(Ordering::Acquire);
        let head = self.head.load(Ordering::Acquire);
        ea_intake_counters {
            pushed: self.pushed.load(Ordering::Relaxed),
            drained: tail,
            dropped_full: self.dropped_full.load(Ordering::Relaxed),
            dropped_too_large: self.dropped_too_large.load(Ordering::Relaxed),
            queued: head.wrapping_sub(tail),
            slots: self.slots.get(),
        }
    }
}

/// Initializes an intake queue over `buf[0..buf_len]` holding records of at
/// most `max_payload` bytes: `buf_len / (EA_INTAKE_SLOT_OVERHEAD +
/// max_payload)` slots (at least one, else `EA_BUFFER_TOO_SMALL`). `buf`
/// must stay valid until `ea_intake_deinit`. `intake_size` is the bytes at
/// `intake` (`sizeof(ea_intake)`).
///
/// Pointers: `intake` points to `intake_size` writable bytes (an
/// `ea_intake`); `buf` to `buf_len` writable bytes used by nothing else
/// until `ea_intake_deinit`. NULL: `EA_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn ea_intake_init(
    intake: *mut ea_intake,
    intake_size: usize,
    buf: *mut u8,
    buf_len: usize,
    max_payload: usize,
) -> ea_result {
    if intake.is_null() {
        return ea_result::EA_NULL_PARAMETER;
    }
    if !(intake as usize).is_multiple_of(align_of::<Inner>()) {
        return ea_result::EA_STORAGE_MISALIGNED;
    }
    if intake_size < size_of::<Inner>() {
        return ea_result::EA_STORAGE_TOO_SMALL;
    }
    let p = intake as *mut Inner;
    // SAFETY: non-NULL, aligned, large enough.
    if unsafe { core::ptr::addr_of!((*p).magic).read() } == MAGIC {
        return ea_result::EA_ALREADY_INITIALIZED;
    }
    // SAFETY: the caller's contract for `buf`.
    let buf = match unsafe { args::bytes_mut(buf, buf_len) } {
        Ok(b) => b,
        Err(e) => return e,
    };
    let slot_len = match max_payload.checked_add(EA_INTAKE_SLOT_OVERHEAD).and_then(|n| u32::try_from(n).ok()) {
        Some(n) => n,
        None => return ea_result::EA_INVALID_ARGUMENT,
    };
    let Some(slots) = NonZeroU32::new(u32::try_from(buf.len() / slot_len as usize).unwrap_or(u32::MAX)) else {
        return ea_result::EA_BUFFER_TOO_SMALL;
    };
    let inner = Inner {
        magic: MAGIC,
        head: AtomicU32::new(0),
        slots,
        tail: AtomicU32::new(0),
        slot_len,
        pushed: AtomicU32::new(0),
        dropped_full: AtomicU32::new(0),
        dropped_too_large: AtomicU32::new(0),
        buf: buf.as_mut_ptr(),
    };
    // SAFETY: checked above; `write` because the old bytes are not an Inner.
    unsafe { p.write(inner) };
    ea_result::EA_OK
}

/// Ends an intake; records still queued are discarded (they show in
/// `ea_intake_stats` as `queued` until then). Its storage and buffer may
/// then be reused. No push or drain may run concurrently.
///
/// Pointers: `intake` points to an `ea_intake` set up by `ea_intake_init`
/// (NULL: `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_intake_deinit(intake: *mut ea_intake) -> ea_result {
    match inner(intake) {
        Ok(_) => {
            // SAFETY: a live intake, and no concurrent use by contract.
            unsafe { core::ptr::addr_of_mut!((*(intake as *mut Inner)).magic).write(0) };
            ea_result::EA_OK
        }
        Err(e) => e,
    }
}

/// Queues one record (copied). Wait-free, lock-free, interrupt-safe; for one
/// producer per intake. `EA_INTAKE_FULL` or `EA_RECORD_TOO_LARGE` when
/// refused (and counted).
///
/// Pointers: `intake` points to an `ea_intake` set up by `ea_intake_init`
/// (NULL: `EA_NULL_PARAMETER`); `payload` to `payload_len` readable bytes,
/// copied (NULL only with length 0).
#[no_mangle]
pub unsafe extern "C" fn ea_intake_push(
    intake: *const ea_intake,
    data_type: u32,
    timestamp_ms: u64,
    payload: *const u8,
    payload_len: usize,
) -> ea_result {
    let r = crate::panic::guard(|| {
        let q = inner(intake)?;
        // SAFETY: the caller's contract.
        let payload = unsafe { args::bytes(payload, payload_len) }?;
        q.push(data_type, timestamp_ms, payload)
    });
    crate::result::code(r)
}

/// The intake's counters. Callable from any context.
///
/// Pointers: `intake` points to an `ea_intake` set up by `ea_intake_init`
/// (NULL: `EA_NULL_PARAMETER`); `out` to a writable `ea_intake_counters`.
#[no_mangle]
pub unsafe extern "C" fn ea_intake_stats(intake: *const ea_intake, out: *mut ea_intake_counters) -> ea_result {
    let r = crate::panic::guard(|| {
        let out = args::out(out)?;
        let s = inner(intake)?.stats();
        // SAFETY: checked non-NULL; the caller's contract.
        unsafe { args::write(out, s) };
        Ok(())
    });
    crate::result::code(r)
}
