//! The names of the session's deadlines ([`Timer`]) and the order in which
//! `handle_timeout` fires those due together. When each runs and what it
//! does when it fires is `timers.rs`.

/// A named deadline of the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Timer {
    /// The backoff wait is over: the next attempt (`Connect` event).
    Reconnect = 0,
    /// The transport was not reported up within `connect_timeout`.
    ConnectTimeout = 1,
    /// No Accept within `handshake_timeout`.
    HandshakeTimeout = 2,
    /// No frame received for `idle_timeout`: `poll_transmit` sends a Ping.
    /// While the transport is blocked (`Agent::handle_blocked`) no Ping can
    /// go: the timer then runs to `idle_timeout + pong_timeout` and
    /// `handle_timeout` ends the connection as a pong timeout.
    Idle = 3,
    /// No frame received within `pong_timeout` of the Ping.
    PongTimeout = 4,
    /// Records in flight without ack progress for `ack_timeout`.
    AckTimeout = 5,
    /// The connection has been up for `healthy_after`.
    Healthy = 6,
    /// Pending records are due: `poll_transmit` sends a batch. Stopped while
    /// the transport is blocked.
    Flush = 7,
    /// A heartbeat is due.
    Heartbeat = 8,
}

impl Timer {
    /// Every timer, in the order `handle_timeout` fires those due together.
    pub const ALL: [Timer; 9] = [
        Timer::Healthy,
        Timer::AckTimeout,
        Timer::PongTimeout,
        Timer::ConnectTimeout,
        Timer::HandshakeTimeout,
        Timer::Reconnect,
        Timer::Heartbeat,
        Timer::Idle,
        Timer::Flush,
    ];

    /// Timers that `poll_transmit` serves (by sending a Ping or a batch)
    /// rather than `handle_timeout`, while the transport is not blocked.
    pub const fn is_transmit(self) -> bool {
        matches!(self, Timer::Idle | Timer::Flush)
    }
}
