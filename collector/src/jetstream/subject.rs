//! Per-agent subjects and message ids: how an agent id becomes one NATS
//! subject token. Pure.

/// The subject token of `agent`: the id itself when it is non-empty and
/// only `A-Z a-z 0-9 _ -`, else `~` and the id's bytes in lowercase hex.
/// Distinct ids give distinct tokens (a plain token never starts with `~`),
/// and every token is a valid single NATS subject token.
pub fn token(agent: &str) -> String {
    plain_or_hex(agent, '~')
}

/// `s` itself when it is non-empty and only `A-Z a-z 0-9 _ -`, else
/// `marker` and its bytes in lowercase hex: one name for a subject token
/// (marker `~`) or a KV key (marker `=`, since KV keys may not hold `~`).
pub fn plain_or_hex(s: &str, marker: char) -> String {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        return s.to_string();
    }
    let mut out = String::with_capacity(1 + 2 * s.len());
    out.push(marker);
    for b in s.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The partition (stream index) of `agent` among `partitions` streams:
/// the CRC-32C (Castagnoli, as the frames') of the id's bytes modulo
/// `partitions`; 0 with one stream.
pub fn partition(agent: &str, partitions: usize) -> usize {
    if partitions <= 1 {
        return 0;
    }
    agent_core::frame::crc32c(agent.as_bytes()) as usize % partitions
}

/// The subject of `agent`'s records: `<prefix>.<token>` with one stream,
/// `<prefix>.<partition>.<token>` with more.
pub fn subject(prefix: &str, partitions: usize, agent: &str) -> String {
    if partitions <= 1 {
        format!("{prefix}.{}", token(agent))
    } else {
        format!("{prefix}.{}.{}", partition(agent, partitions), token(agent))
    }
}

/// The name of stream `i` of `partitions` named `stream`: `stream` itself
/// with one, `<stream>_<i>` with more.
pub fn stream_name(stream: &str, partitions: usize, i: usize) -> String {
    if partitions <= 1 {
        stream.to_string()
    } else {
        format!("{stream}_{i}")
    }
}

/// The subjects stream `i` of `partitions` takes: `<prefix>.>` with one
/// stream, `<prefix>.<i>.>` with more.
pub fn stream_subjects(prefix: &str, partitions: usize, i: usize) -> String {
    if partitions <= 1 {
        format!("{prefix}.>")
    } else {
        format!("{prefix}.{i}.>")
    }
}

/// `Nats-Msg-Id` of the message holding records `first..=last` of
/// `agent`: `<token>:<first>-<last>`.
pub fn msg_id(agent: &str, first: u64, last: u64) -> String {
    format!("{}:{first}-{last}", token(agent))
}

/// True if `prefix` is a usable subject prefix: dot-separated tokens, none
/// empty, no wildcards or whitespace.
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty() && prefix.split('.').all(|t| !t.is_empty() && !t.contains(['*', '>']) && !t.chars().any(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_valid() {
        assert_eq!(token("gw-7_a"), "gw-7_a");
        assert_eq!(token("a.b"), "~612e62");
        assert_eq!(token(""), "~");
        assert_ne!(token("~61"), "~61", "an id that looks encoded is encoded itself");
        assert_eq!(subject("edge.records", 1, "a b"), "edge.records.~612062");
        let p = partition("gw-7", 4);
        assert!(p < 4);
        assert_eq!(p, agent_core::frame::crc32c(b"gw-7") as usize % 4, "the documented hash");
        assert_eq!(subject("e", 4, "gw-7"), format!("e.{p}.gw-7"));
        assert_eq!((stream_name("S", 1, 0), stream_name("S", 4, 3)), ("S".to_string(), "S_3".to_string()));
        assert_eq!((stream_subjects("e", 1, 0), stream_subjects("e", 4, 3)), ("e.>".to_string(), "e.3.>".to_string()));
        assert_eq!((0..64).map(|i| partition(&format!("agent-{i}"), 1)).max(), Some(0));
        assert_eq!(msg_id("a", 7, 9), "a:7-9");
        for id in ["x>", "x*", "é", "a\r\nb"] {
            let t = token(id);
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'~'), "{t}");
        }
    }

    #[test]
    fn prefixes() {
        assert!(valid_prefix("edge.records"));
        for bad in ["", ".a", "a.", "a..b", "a.*", "a.>", "a b"] {
            assert!(!valid_prefix(bad), "{bad}");
        }
    }
}
