//! Agent authentication: one shared token, or a file of per-agent tokens,
//! compared in constant time.

use crate::config::ConfigError;
use std::collections::HashMap;
use std::path::Path;
use subtle::ConstantTimeEq;

/// The tokens agents must present in `Hello.auth_token`.
#[derive(Debug, Default, Clone)]
pub struct Auth {
    shared: Option<Vec<u8>>,
    per_agent: HashMap<String, Vec<u8>>,
    file_given: bool,
}

impl Auth {
    /// No checks: every agent is let in (no token configured).
    pub fn open() -> Auth {
        Auth::default()
    }

    /// From a shared token and/or a token file of `agent_id token` lines
    /// (blank lines and lines starting with `#` ignored).
    pub fn load(shared: Option<&str>, file: Option<&Path>) -> Result<Auth, ConfigError> {
        let mut auth = Auth { shared: shared.map(|s| s.as_bytes().to_vec()), ..Auth::default() };
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            auth.file_given = true;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let mut parts = line.split_whitespace();
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(id), Some(token), None) => {
                        auth.per_agent.insert(id.to_string(), token.as_bytes().to_vec());
                    }
                    _ => return Err(ConfigError(format!("{}:{}: expected `agent_id token`", path.display(), i + 1))),
                }
            }
        }
        Ok(auth)
    }

    /// True if `token` is what `agent_id` must present. An agent listed in
    /// the token file must present its own token; others the shared one;
    /// with neither configured every agent passes. The comparison takes the
    /// same time whatever bytes differ (only a length mismatch is faster).
    pub fn check(&self, agent_id: &str, token: &[u8]) -> bool {
        let expected = match (self.per_agent.get(agent_id), &self.shared) {
            (Some(t), _) => t,
            (None, Some(t)) => t,
            (None, None) => return !self.file_given,
        };
        bool::from(expected.as_slice().ct_eq(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_per_agent_tokens() {
        let path = std::env::temp_dir().join(format!("edge-tokens-{}", std::process::id()));
        std::fs::write(&path, "# fleet tokens\nsensor-1 s3cret\n\nsensor-2 other\n").unwrap();
        let a = Auth::load(Some("fleet"), Some(&path)).unwrap();
        assert!(a.check("sensor-1", b"s3cret"));
        assert!(!a.check("sensor-1", b"fleet"), "a listed agent needs its own token");
        assert!(a.check("sensor-9", b"fleet"));
        assert!(!a.check("sensor-9", b"flee"));
        let only_file = Auth::load(None, Some(&path)).unwrap();
        assert!(!only_file.check("sensor-9", b""), "unlisted agents are refused when only a file is given");
        assert!(Auth::open().check("x", b"anything"));
        std::fs::write(&path, "sensor-1\n").unwrap();
        assert!(Auth::load(None, Some(&path)).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
