//! What the loop hands to the application's handler, copied out of the
//! agent's event queue into a buffer sized at init, so the handler runs
//! without any lock held (it may push and answer tasks).

use agent_core::{DisconnectReason, Event, PluginId, TaskTarget};

/// An event for the application, on the loop thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostEvent<'a> {
    /// The handshake completed with endpoint `endpoint` (an index into
    /// `HostConfig::endpoints`).
    Connected {
        /// Endpoint index.
        endpoint: u8,
    },
    /// The connection ended (the agent reconnects by itself).
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
    /// A task; answer with `Host::task_result(token, ...)`, from any thread.
    Task {
        /// The plugin it is for, `None` for the agent itself.
        plugin: Option<PluginId>,
        /// The object name as the server sent it.
        object_name: &'a str,
        /// What the task is.
        data_type: u32,
        /// Arguments.
        payload: &'a [u8],
        /// Token to echo in the result.
        token: &'a str,
    },
    /// A configuration whose version differs from the one held.
    Config {
        /// Which configuration.
        name: &'a str,
        /// Its version.
        version: &'a str,
        /// The configuration.
        payload: &'a [u8],
    },
    /// The server asks the program to shut down; answer with
    /// `Host::task_result(token, ...)`. The host layer does not stop by
    /// itself: call `Host::stop` if the program agrees.
    Shutdown {
        /// Token to echo in the result.
        token: &'a str,
    },
    /// The agent's give-up limit was reached: no more attempts.
    GaveUp,
}

impl<'a> HostEvent<'a> {
    /// The same event in `agent_core`'s terms (for the C API).
    pub fn to_core(&self) -> Event<'a> {
        match *self {
            HostEvent::Connected { endpoint } => Event::Connected { endpoint },
            HostEvent::Disconnected { reason } => Event::Disconnect { reason },
            HostEvent::Task { plugin, object_name, data_type, payload, token } => Event::Task {
                target: plugin.map_or(TaskTarget::Agent, TaskTarget::Plugin),
                object_name: object_name.into(),
                data_type,
                payload,
                token: token.into(),
            },
            HostEvent::Config { name, version, payload } => Event::Config { name: name.into(), version: version.into(), payload },
            HostEvent::Shutdown { token } => Event::Shutdown { token: token.into() },
            HostEvent::GaveUp => Event::GaveUp,
        }
    }
}

/// An owned copy of one [`HostEvent`], in a buffer allocated at init.
#[derive(Debug)]
pub(crate) struct EventCopy {
    kind: Kind,
    bytes: Vec<u8>,
    cuts: [usize; 3],
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    None,
    Connected(u8),
    Disconnected(DisconnectReason),
    Task(Option<PluginId>, u32),
    Config,
    Shutdown,
    GaveUp,
}

impl EventCopy {
    /// Room for events whose strings and payload total `capacity` bytes (a
    /// received frame's size bounds them).
    pub(crate) fn new(capacity: usize) -> Self {
        EventCopy { kind: Kind::None, bytes: Vec::with_capacity(capacity), cuts: [0; 3] }
    }

    /// Copies `ev` if the application sees it; false for events the loop
    /// handles alone (Connect, Delivered).
    pub(crate) fn set(&mut self, ev: &Event<'_>) -> bool {
        self.bytes.clear();
        self.kind = match *ev {
            Event::Connected { endpoint } => Kind::Connected(endpoint),
            Event::Disconnect { reason } => Kind::Disconnected(reason),
            Event::Task { target, object_name, data_type, payload, token } => {
                self.parts([object_name.as_bytes(), payload, token.as_bytes()]);
                let plugin = match target {
                    TaskTarget::Agent => None,
                    TaskTarget::Plugin(p) => Some(p),
                };
                Kind::Task(plugin, data_type)
            }
            Event::Config { name, version, payload } => {
                self.parts([name.as_bytes(), version.as_bytes(), payload]);
                Kind::Config
            }
            Event::Shutdown { token } => {
                self.parts([token.as_bytes(), b"", b""]);
                Kind::Shutdown
            }
            Event::GaveUp => Kind::GaveUp,
            Event::Connect { .. } | Event::Delivered { .. } => return false,
        };
        true
    }

    fn parts(&mut self, parts: [&[u8]; 3]) {
        for (i, p) in parts.iter().enumerate() {
            // Within capacity: the parts came out of one received frame.
            self.bytes.extend_from_slice(p);
            self.cuts[i] = self.bytes.len();
        }
    }

    fn part(&self, i: usize) -> &[u8] {
        let from = if i == 0 { 0 } else { self.cuts[i - 1] };
        &self.bytes[from..self.cuts[i]]
    }

    fn str_part(&self, i: usize) -> &str {
        // The parts were `&str` when copied.
        std::str::from_utf8(self.part(i)).unwrap_or("")
    }

    /// The event, borrowed from the copy.
    pub(crate) fn get(&self) -> Option<HostEvent<'_>> {
        Some(match self.kind {
            Kind::None => return None,
            Kind::Connected(endpoint) => HostEvent::Connected { endpoint },
            Kind::Disconnected(reason) => HostEvent::Disconnected { reason },
            Kind::Task(plugin, data_type) => HostEvent::Task {
                plugin,
                object_name: self.str_part(0),
                data_type,
                payload: self.part(1),
                token: self.str_part(2),
            },
            Kind::Config => HostEvent::Config { name: self.str_part(0), version: self.str_part(1), payload: self.part(2) },
            Kind::Shutdown => HostEvent::Shutdown { token: self.str_part(0) },
            Kind::GaveUp => HostEvent::GaveUp,
        })
    }
}
