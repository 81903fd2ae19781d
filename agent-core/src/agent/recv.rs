//! Received frames: the downlink messages and what each does.

use super::*;

impl Core<'_> {
    pub(super) fn on_frame(&mut self, now: Instant, frame: &Frame<'_>) {
        self.stats.frames_received += 1;
        self.last_rx = now;
        if frame.version != frame::VERSION {
            self.fail(now, DisconnectReason::Incompatible, Some(CloseCode::Incompatible), Duration::ZERO);
            return;
        }
        let Some(kind) = Kind::from_u8(frame.kind) else {
            self.stats.unknown_kinds += 1;
            return;
        };
        if self.on_message(now, kind, frame.body).is_err() {
            self.stats.malformed += 1;
        }
    }

    /// Handles one downlink message. Only the kinds an agent can receive
    /// are decoded here, by the hand-written readers of [`crate::body`]; a
    /// kind that is
    /// unexpected in the current state is an error, counted as malformed.
    pub(super) fn on_message(&mut self, now: Instant, kind: Kind, body: &[u8]) -> Result<(), DecodeError> {
        let handshaking = matches!(self.state, State::Handshaking { .. });
        let connected = matches!(self.state, State::Connected { .. });
        match kind {
            Kind::Ping => self.pong_pending = Some(read_body::<Ping>(body)?.nonce),
            Kind::Pong => {
                let nonce = read_body::<Pong>(body)?.nonce;
                if let Some(ping) = self.ping.filter(|ping| ping.nonce == nonce) {
                    let rtt = now.saturating_since(ping.sent).as_millis();
                    self.stats.last_rtt_ms = Some(u32::try_from(rtt).unwrap_or(u32::MAX));
                    self.ping = None;
                }
            }
            Kind::Close => {
                // Even an unreadable Close means the peer is going away.
                let _ = read_body::<Close<'_>>(body);
                self.fail(now, DisconnectReason::PeerClosed, None, Duration::ZERO);
            }
            // An Accept before our Hello went out answers nothing: ignored
            // (counted), the handshake waits for a real one.
            Kind::Accept if handshaking && !self.hello_pending => {
                if let State::Handshaking { endpoint, .. } = self.state {
                    self.on_accept(now, endpoint, read_body(body)?);
                }
            }
            Kind::Reject if handshaking => {
                let r = read_body::<message::Reject<'_>>(body)?;
                self.fail(now, DisconnectReason::Rejected, None, Duration::from_millis(u64::from(r.retry_after_ms)));
            }
            Kind::Ack if connected => {
                let out = self.ring.ack(read_body::<message::Ack>(body)?.up_to);
                if out.beyond_sent {
                    self.stats.protocol_errors += 1;
                }
                if out.acked > 0 {
                    self.delivered_pending = true;
                    self.ack_progress = now;
                }
            }
            Kind::Task if connected => self.on_task(now, read_body(body)?),
            Kind::Config if connected => self.on_config(read_body(body)?),
            _ => return Err(DecodeError::Malformed),
        }
        Ok(())
    }

    pub(super) fn on_accept(&mut self, now: Instant, endpoint: u8, a: message::Accept) {
        // The server must take a batch holding the largest record.
        if a.max_frame < min_peer_frame(&self.cfg) {
            self.fail(now, DisconnectReason::Incompatible, Some(CloseCode::Incompatible), Duration::ZERO);
            return;
        }
        self.peer_max_frame = a.max_frame as usize;
        if a.next_seq > crate::ring::MAX_RESUME_SEQ {
            self.stats.protocol_errors += 1;
        }
        self.ring.resume(a.next_seq);
        self.stats.connections += 1;
        self.state = State::Connected { endpoint, since: now, healthy: false };
        if self.ring.pending_records() > 0 {
            self.pending_since = Some(now);
        }
        self.emit(Event::Connected { endpoint });
    }

    pub(super) fn on_task(&mut self, now: Instant, t: message::Task<'_>) {
        // A server that saw no result (the connection dropped) resends the
        // task; the result is already in the ring, so the task is not run
        // twice. Tokens are remembered as 64-bit hashes, the last 8.
        if !t.token.is_empty() {
            let h = fnv1a(t.token).max(1);
            if self.recent_tasks.contains(&h) {
                self.stats.tasks_duplicate += 1;
                return;
            }
            let i = usize::from(self.recent_task_next);
            self.recent_tasks[i] = h;
            self.recent_task_next = ((i + 1) % RECENT_TASKS) as u8;
        }
        let for_agent = t.object_name.is_empty() || t.object_name == self.id.product;
        let target = if for_agent {
            TaskTarget::Agent
        } else if let Some(id) = self.plugins.find(t.object_name) {
            TaskTarget::Plugin(id)
        } else {
            self.stats.tasks_unroutable += 1;
            let _ = self.push_task_result(now, t.token, task_status::UNKNOWN_TARGET, "no such plugin");
            return;
        };
        let queued = if for_agent && t.data_type == data_type::SHUTDOWN_TASK {
            self.emit_droppable(Event::Shutdown { token: t.token })
        } else {
            self.emit_droppable(Event::Task {
                target,
                object_name: t.object_name,
                data_type: t.data_type,
                payload: t.payload,
                token: t.token,
            })
        };
        if !queued {
            let _ = self.push_task_result(now, t.token, task_status::DROPPED, "agent event queue full");
        }
    }

    pub(super) fn on_config(&mut self, c: message::Config<'_>) {
        let (name, version) = (fnv1a(c.name), fnv1a(c.version));
        let slot = self.configs.iter().position(|(n, _)| *n == name);
        if let Some(i) = slot {
            if self.configs[i].1 == version {
                return;
            }
        }
        if self.emit_droppable(Event::Config { name: c.name, version: c.version, payload: c.payload }) {
            let i = slot.unwrap_or_else(|| {
                let v = usize::from(self.config_victim);
                self.config_victim = ((v + 1) % MAX_CONFIGS) as u8;
                v
            });
            self.configs[i] = (name, version);
        }
    }

}
