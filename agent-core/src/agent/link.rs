//! What the transport tells the agent about itself: whether it has a
//! carrier (a connect and a disconnect signal) or is a bare byte stream.

/// The kind of link the agent speaks over (PROTOCOL.md, "Links without
/// carrier"). Set with [`super::Agent::set_link`]; [`Link::Carrier`] until
/// then.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Link {
    /// A transport that is opened and closed (TCP, TLS): every connection
    /// is a stream of its own, and the agent's parting Close (after a
    /// timeout or a protocol error) ends the stream it was written on.
    #[default]
    Carrier,
    /// A byte stream with no connect or disconnect signal (a UART to a
    /// serial-to-TCP gateway, a modem, a BLE/UART bridge): whatever the
    /// agent writes after a failure may become the first bytes of the
    /// gateway's *next* connection. So the agent
    /// * writes no parting frame: a failure queues no Close (an explicit
    ///   `close()` still does, as the last frame it ever writes);
    /// * treats its own Hello as the start of a stream: from
    ///   `handle_connected` until the Accept, frames of any other kind
    ///   (stale acks, tasks, configs or pings of the previous stream) are
    ///   skipped and counted in `decoder_skipped_bytes`, not a protocol
    ///   error.
    ///
    /// A dead stream is found by the agent's own timers (`ack_timeout`,
    /// `pong_timeout`, `handshake_timeout`) or a Close from the peer; the
    /// caller answers `Connect` with `handle_connected` at once and ignores
    /// `Disconnect` (there is nothing to close).
    Carrierless,
}
