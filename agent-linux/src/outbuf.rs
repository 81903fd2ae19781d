//! The bounded out buffer: frames from `poll_transmit` wait here until the
//! socket takes them. Its size is fixed at init; the agent is asked for a
//! frame only when a whole frame of the largest size fits, so nothing is
//! ever cut, dropped or grown. When the socket will not take more, the loop
//! waits for `POLLOUT` (never spins).

use std::io::{ErrorKind, Write};

/// Bytes waiting for the socket.
#[derive(Debug)]
pub struct OutBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// What a [`OutBuf::flush_to`] achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Everything was written.
    Empty,
    /// The socket would block with bytes left: wait for writable.
    Blocked,
}

impl OutBuf {
    /// A buffer of `capacity` bytes, allocated now and never again.
    pub fn new(capacity: usize) -> Self {
        OutBuf { buf: vec![0; capacity], start: 0, end: 0 }
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The buffer's size.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Forgets everything waiting (the connection is gone; the agent
    /// resends unacked records on the next one).
    pub fn clear(&mut self) {
        (self.start, self.end) = (0, 0);
    }

    /// The free tail, at least `min` bytes long, or `None` when the waiting
    /// bytes leave less (they are moved to the front first).
    pub fn room(&mut self, min: usize) -> Option<&mut [u8]> {
        if self.buf.len() - self.end < min && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.buf.len() - self.end >= min {
            Some(&mut self.buf[self.end..])
        } else {
            None
        }
    }

    /// `n` bytes were written into the slice `room` gave.
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Writes as much as `w` takes without blocking.
    pub fn flush_to(&mut self, mut w: impl Write) -> std::io::Result<Flush> {
        while self.start < self.end {
            match w.write(&self.buf[self.start..self.end]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.start += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Flush::Blocked),
                Err(e) => return Err(e),
            }
        }
        self.clear();
        Ok(Flush::Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `limit` bytes per call, then blocks.
    struct Slow<'a> {
        got: &'a mut Vec<u8>,
        budget: usize,
    }
    impl Write for Slow<'_> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.budget == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(self.budget).min(3);
            self.budget -= n;
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order_and_room_compacts() {
        let mut o = OutBuf::new(10);
        o.room(6).unwrap()[..6].copy_from_slice(b"abcdef");
        o.commit(6);
        assert!(o.room(6).is_none(), "4 free bytes are not room for 6");
        let mut got = Vec::new();
        assert_eq!(o.flush_to(Slow { got: &mut got, budget: 4 }).unwrap(), Flush::Blocked);
        assert_eq!(got, b"abcd");
        let r = o.room(8).expect("compacted: 2 waiting, 8 free");
        r[..3].copy_from_slice(b"ghi");
        o.commit(3);
        assert_eq!(o.flush_to(Slow { got: &mut got, budget: 100 }).unwrap(), Flush::Empty);
        assert_eq!(got, b"abcdefghi");
        assert!(o.is_empty());
    }
}
