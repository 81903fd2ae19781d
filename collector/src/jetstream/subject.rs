//! Per-agent subjects and message ids: how an agent id becomes one NATS
//! subject token. Pure.

/// The subject token of `agent`: the id itself when it is non-empty and
/// only `A-Z a-z 0-9 _ -`, else `~` and the id's bytes in lowercase hex.
/// Distinct ids give distinct tokens (a plain token never starts with `~`),
/// and every token is a valid single NATS subject token.
pub fn token(agent: &str) -> String {
    let plain = !agent.is_empty() && agent.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        return agent.to_string();
    }
    let mut out = String::with_capacity(1 + 2 * agent.len());
    out.push('~');
    for b in agent.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The subject of `agent`'s records: `<prefix>.<token>`.
pub fn subject(prefix: &str, agent: &str) -> String {
    format!("{prefix}.{}", token(agent))
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
        assert_eq!(subject("edge.records", "a b"), "edge.records.~612062");
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
