//! The one owned mirror of [`Message`](agent_core::message::Message): every
//! kind with its strings and bytes owned, so a generator can build any
//! message and then borrow it ([`OwnedMessage::msg`]).
//!
//! Shared by `tests/codec_props.rs` (built by proptest strategies) and the
//! fuzz targets (`fuzz/src/lib.rs`, built by `Arbitrary`): each includes
//! this file by `#[path]` with `#[macro_use]` and invokes
//! `owned_message!` once, with the derives its generator needs (the fuzz
//! crate `#[derive(arbitrary::Arbitrary)]`, which agent-core's tests do not
//! depend on).
//!
//! Address lists are whole addresses, so every value encodes to a message
//! that decodes back. Keep the variants and fields in this order: the fuzz
//! targets' saved inputs (`fuzz/regressions`) map onto this layout.

/// Defines `OwnedMessage` (with the given extra attributes) and its
/// borrowing `msg()`.
macro_rules! owned_message {
    ($(#[$attr:meta])*) => {
        /// An owned message of any kind.
        #[derive(Clone, Debug, PartialEq, Eq)]
        $(#[$attr])*
        #[allow(missing_docs)]
        pub enum OwnedMessage {
            Hello {
                agent_id: String,
                hostname: String,
                product: String,
                version: String,
                intranet_ipv4: Vec<[u8; 4]>,
                intranet_ipv6: Vec<[u8; 16]>,
                extranet_ipv4: Vec<[u8; 4]>,
                extranet_ipv6: Vec<[u8; 16]>,
                auth_token: Vec<u8>,
                first_unacked_seq: u64,
                next_seq: u64,
                max_frame: u32,
                min_frame: u32,
            },
            Accept { next_seq: u64, max_frame: u32, retry_window_ms: u32 },
            Reject { code: u16, reason: String, retry_after_ms: u32 },
            Batch { first_seq: u64, base_ts: u64, count: u32, records: Vec<u8> },
            Ack { up_to: u64 },
            Ping { nonce: u64 },
            Pong { nonce: u64 },
            Task { object_name: String, data_type: u32, payload: Vec<u8>, token: String },
            Config { name: String, version: String, payload: Vec<u8> },
            TaskResult { token: String, status: u32, message: String },
            Close { code: u16, reason: String },
        }

        impl OwnedMessage {
            /// The message, borrowing this one's strings and bytes.
            pub fn msg(&self) -> agent_core::message::Message<'_> {
                use agent_core::message::*;
                match self {
                    OwnedMessage::Hello {
                        agent_id,
                        hostname,
                        product,
                        version,
                        intranet_ipv4,
                        intranet_ipv6,
                        extranet_ipv4,
                        extranet_ipv6,
                        auth_token,
                        first_unacked_seq,
                        next_seq,
                        max_frame,
                        min_frame,
                    } => Message::Hello(Hello {
                        agent_id: agent_id.as_str().into(),
                        hostname: hostname.as_str().into(),
                        product: product.as_str().into(),
                        version: version.as_str().into(),
                        intranet_ipv4: intranet_ipv4.as_flattened(),
                        intranet_ipv6: intranet_ipv6.as_flattened(),
                        extranet_ipv4: extranet_ipv4.as_flattened(),
                        extranet_ipv6: extranet_ipv6.as_flattened(),
                        auth_token,
                        first_unacked_seq: *first_unacked_seq,
                        next_seq: *next_seq,
                        max_frame: *max_frame,
                        min_frame: *min_frame,
                    }),
                    OwnedMessage::Accept { next_seq, max_frame, retry_window_ms } => Message::Accept(Accept {
                        next_seq: *next_seq,
                        max_frame: *max_frame,
                        retry_window_ms: *retry_window_ms,
                    }),
                    OwnedMessage::Reject { code, reason, retry_after_ms } => {
                        Message::Reject(Reject { code: *code, reason: reason.as_str().into(), retry_after_ms: *retry_after_ms })
                    }
                    OwnedMessage::Batch { first_seq, base_ts, count, records } => {
                        Message::Batch(Batch { first_seq: *first_seq, base_ts: *base_ts, count: *count, records })
                    }
                    OwnedMessage::Ack { up_to } => Message::Ack(Ack { up_to: *up_to }),
                    OwnedMessage::Ping { nonce } => Message::Ping(Ping { nonce: *nonce }),
                    OwnedMessage::Pong { nonce } => Message::Pong(Pong { nonce: *nonce }),
                    OwnedMessage::Task { object_name, data_type, payload, token } => {
                        Message::Task(Task { object_name: object_name.as_str().into(), data_type: *data_type, payload, token: token.as_str().into() })
                    }
                    OwnedMessage::Config { name, version, payload } => {
                        Message::Config(Config { name: name.as_str().into(), version: version.as_str().into(), payload })
                    }
                    OwnedMessage::TaskResult { token, status, message } => {
                        Message::TaskResult(TaskResult { token: token.as_str().into(), status: *status, message: message.as_str().into() })
                    }
                    OwnedMessage::Close { code, reason } => Message::Close(Close { code: *code, reason: reason.as_str().into() }),
                }
            }
        }
    };
}
