//! Counters of one collector process, and their Prometheus text form.
//!
//! Every counter is a relaxed atomic: cheap to bump from any connection
//! task, read all at once by `GET /metrics`. Counts are since the process
//! started.

use crate::admission::AdmissionStats;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! metrics {
    ($( $(#[doc = $doc:literal])* $name:ident : $kind:literal ),* $(,)?) => {
        /// The collector's counters and gauges.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $( $(#[doc = $doc])* pub $name: AtomicU64, )*
        }

        impl Metrics {
            /// Prometheus text exposition format (version 0.0.4), every
            /// metric prefixed `edge_collector_`.
            pub fn render(&self) -> String {
                let mut out = String::new();
                $(
                    let help = concat!($($doc),*).trim();
                    let _ = writeln!(out, "# HELP edge_collector_{} {}", stringify!($name), help);
                    let _ = writeln!(out, "# TYPE edge_collector_{} {}", stringify!($name), $kind);
                    let _ = writeln!(out, "edge_collector_{} {}", stringify!($name), self.$name.load(Ordering::Relaxed));
                )*
                out
            }
        }
    };
}

metrics! {
    /// JetStream sink: records published whose atomic batch JetStream has not acked yet.
    jetstream_acks_pending: "gauge",
    /// JetStream sink: publishing rounds (per agent, every batch waiting, as atomic batches).
    jetstream_rounds_total: "counter",
    /// JetStream sink: microseconds from a round's first publish to its last ack, summed.
    jetstream_publish_micros_total: "counter",
    /// JetStream sink: the longest round, in microseconds.
    jetstream_publish_micros_max: "gauge",
    /// JetStream sink: resume points read from the stream.
    jetstream_lookups_total: "counter",
    /// JetStream sink: rounds refused because another writer wrote the agent's subject (session closed with code 0).
    jetstream_fenced_total: "counter",
    /// JetStream sink: failed publishes and stream reads (session closed with code 2).
    jetstream_errors_total: "counter",
    /// Shared registry (JetStream KV): reads of one key (an entry or a value).
    kv_reads_total: "counter",
    /// Shared registry (JetStream KV): writes of one key (puts, creates, updates at a revision), refused and failed ones included.
    kv_writes_total: "counter",
    /// Shared registry (JetStream KV): writes refused because another writer changed the key first (re-read and retried).
    kv_conflicts_total: "counter",
    /// Shared registry (JetStream KV): reads, writes and listings that failed or got no answer within 5 s.
    kv_errors_total: "counter",
    /// Shared registry (JetStream KV): microseconds from a read's or write's request to its answer, summed (divide by reads + writes for the mean).
    kv_micros_total: "counter",
    /// Shared registry (JetStream KV): the longest read or write, in microseconds.
    kv_micros_max: "gauge",
    /// Shared registry (JetStream KV): listings of a whole bucket (GET /agents), each through its own consumer.
    kv_listings_total: "counter",
    /// Shared registry (JetStream KV): followers of the tasks and configs buckets started again after their consumer failed (a NATS restart or a lost connection).
    kv_follow_restarts_total: "counter",
    /// Shared registry (JetStream KV): task updates ("sent", results) waiting to be written.
    kv_updates_queued: "gauge",
    /// Shared registry (JetStream KV): task updates dropped because their queue (4096) was full (the task stays open and is resent).
    kv_updates_dropped_total: "counter",
    /// Shared registry (JetStream KV): entries in the tasks bucket (open tasks and finished ones within --nats-task-retention), as of the last look (every 5 s).
    kv_task_entries: "gauge",
    /// Shared registry (JetStream KV): bytes of the tasks bucket, as of the last look (every 5 s).
    kv_task_bytes: "gauge",
    /// Connections open now.
    connections_open: "gauge",
    /// Connections accepted (TCP) since start.
    connections_total: "counter",
    /// Handshakes answered with Accept.
    accepts_total: "counter",
    /// Rejects sent: bad token (code 4).
    rejects_unauthorized_total: "counter",
    /// Rejects sent: the Hello's agent_id is not the one its client certificate names (code 4, mutual TLS).
    rejects_cert_mismatch_total: "counter",
    /// TLS handshakes completed on the agent port.
    tls_handshakes_total: "counter",
    /// TLS handshakes refused: mutual TLS and no client certificate.
    tls_no_client_cert_total: "counter",
    /// TLS handshakes refused: the client certificate is expired or not yet valid.
    tls_expired_client_cert_total: "counter",
    /// TLS handshakes refused: the client certificate does not chain to --tls-client-ca.
    tls_unknown_ca_total: "counter",
    /// TLS handshakes refused: the client certificate did not verify otherwise (wrong use, bad signature, malformed).
    tls_bad_client_cert_total: "counter",
    /// TLS handshakes the client gave up with an alert (it does not trust the collector's certificate or name).
    tls_peer_alerts_total: "counter",
    /// Connections to the TLS port that did not speak TLS (plaintext).
    tls_not_tls_total: "counter",
    /// TLS handshakes failed otherwise (no common version or suite, socket errors).
    tls_handshake_failures_total: "counter",
    /// TLS handshakes not finished within --handshake-timeout.
    tls_handshake_timeouts_total: "counter",
    /// Connections to a plain-TCP agent port that opened with a TLS ClientHello (closed at once).
    tls_on_plain_port_total: "counter",
    /// Certificate reloads (SIGHUP) that took effect.
    tls_reloads_total: "counter",
    /// Certificate reloads that failed (the old certificates stay in use).
    tls_reload_failures_total: "counter",
    /// Rejects sent: incompatible version or frame size (code 5).
    rejects_incompatible_total: "counter",
    /// Rejects sent: too many connections (code 6).
    rejects_busy_total: "counter",
    /// Hellos the admission step let through (at the rate, or claiming their slot).
    admissions_total: "counter",
    /// Rejects sent: the admission rate (code 6, with a slot or the time until the last one).
    rejects_paced_total: "counter",
    /// Admission slots promised and not yet claimed or lapsed.
    reservations: "gauge",
    /// Admission slots that lapsed unclaimed.
    reservations_expired_total: "counter",
    /// Admission slots claimed: the agent came back in time and was admitted.
    reservations_claimed_total: "counter",
    /// Sessions closed because a newer connection of the same agent id arrived.
    sessions_replaced_total: "counter",
    /// Connections closed with code 1 (protocol error: malformed body, gap, wrong kind).
    protocol_errors_total: "counter",
    /// Connections closed for silence (idle timeout) or a handshake that did not finish in time.
    timeouts_total: "counter",
    /// Bytes read from agent sockets.
    bytes_in_total: "counter",
    /// Batches received.
    batches_in_total: "counter",
    /// Records received (duplicates included).
    records_in_total: "counter",
    /// Records written to the sink (each exactly once).
    records_stored_total: "counter",
    /// Records received again below the resume point (not stored again, acked again).
    records_duplicate_total: "counter",
    /// Acks sent.
    acks_total: "counter",
    /// Bytes skipped by the frame decoders (garbage, resync).
    decoder_skipped_bytes_total: "counter",
    /// Frames with a bad CRC.
    decoder_bad_crc_total: "counter",
    /// Frames announcing more than max_frame.
    decoder_oversized_total: "counter",
    /// Frames of unknown kinds (skipped).
    unknown_kinds_total: "counter",
    /// Hellos whose next_seq is below the collector's resume point (e.g. cloned agent ids), refused with code 7.
    resume_conflicts_total: "counter",
    /// Rejects sent: code 7 (Conflict): the id is live on another connection, or a resume point the connection may not set.
    rejects_conflict_total: "counter",
    /// Unproven Hellos whose first_unacked_seq was above the stored resume point (refused, code 7: not raised).
    resume_raises_refused_total: "counter",
    /// Unproven Hellos of a new agent id refused by the new-id rate or --max-agents (code 6).
    new_agents_refused_total: "counter",
    /// Connections closed before their Hello to make room for newer ones (--max-handshakes).
    handshakes_evicted_total: "counter",
    /// Whole frames that were not a Hello, skipped before the Hello (stale Close or Ping of a serial gateway, Pong, unknown kinds).
    prehello_frames_skipped_total: "counter",
    /// Bytes skipped before a Hello: garbage and skipped frames (also in decoder_skipped_bytes_total for the garbage).
    prehello_bytes_skipped_total: "counter",
    /// Connections closed (code 1) for skipping more than --prehello-bytes before their Hello.
    prehello_budget_exceeded_total: "counter",
    /// Pings sent to idle agents.
    pings_sent_total: "counter",
    /// Pongs sent in answer to agents' Pings.
    pongs_sent_total: "counter",
    /// Tasks sent (resends included).
    tasks_sent_total: "counter",
    /// Task results received (repeats included).
    task_results_total: "counter",
    /// Configs sent.
    configs_sent_total: "counter",
    /// Sink commits (one write + fsync for a group of batches).
    sink_commits_total: "counter",
    /// Total time spent in sink commits, microseconds.
    sink_commit_micros_total: "counter",
    /// Longest sink commit so far, microseconds.
    sink_commit_micros_max: "gauge",
    /// Sink write or sync failures (the sink then refuses everything and the process exits with status 3).
    sink_errors_total: "counter",
    /// Bytes of lines waiting for the sink (queued or being written), every connection together.
    sink_queued_bytes: "gauge",
    /// Damaged stretches of sink files (one or more lines each) set aside in quarantine.log at start.
    sink_quarantined_total: "counter",
    /// Bytes of sink files set aside in quarantine.log at start.
    sink_quarantined_bytes_total: "counter",
    /// Bytes of a torn tail cut off the current sink file at start.
    sink_truncated_bytes_total: "counter",
    /// Registry flushes (one SQLite transaction each).
    registry_flushes_total: "counter",
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Copies the admission step's counts (kept by [`Admission`] since the
    /// start, like these) into the admission metrics.
    ///
    /// [`Admission`]: crate::admission::Admission
    pub fn note_admission(&self, s: &AdmissionStats) {
        self.admissions_total.store(s.admitted, Ordering::Relaxed);
        self.rejects_paced_total.store(s.rejected, Ordering::Relaxed);
        self.reservations.store(s.reservations as u64, Ordering::Relaxed);
        self.reservations_expired_total.store(s.expired, Ordering::Relaxed);
        self.reservations_claimed_total.store(s.claimed, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::add(&m.records_stored_total, 7);
        let text = m.render();
        assert!(text.contains("# TYPE edge_collector_records_stored_total counter\n"));
        assert!(text.contains("\nedge_collector_records_stored_total 7\n"));
        assert!(text.contains("# HELP edge_collector_connections_open Connections open now.\n"));
        m.note_admission(&AdmissionStats { reservations: 3, admitted: 9, rejected: 5, claimed: 2, expired: 1 });
        let text = m.render();
        for line in ["admissions_total 9", "rejects_paced_total 5", "reservations 3", "reservations_claimed_total 2", "reservations_expired_total 1"] {
            assert!(text.contains(&format!("\nedge_collector_{line}\n")), "{line}");
        }
        assert!(text.contains("# TYPE edge_collector_reservations gauge\n"));
    }
}
