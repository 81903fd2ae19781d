//! Agent authentication: one shared token, or a file of per-agent tokens,
//! compared in constant time, and what a passed check proves.
//!
//! Only a per-agent credential proves that a connection *is* the agent it
//! names ([`Identity::Proven`]); a shared token only proves membership of
//! the fleet, and an open port proves nothing ([`Identity::Unproven`]).
//! The session rules that protect one agent from another (who may raise a
//! resume point, who may replace a live session) ask only
//! [`Identity::is_proven`]; a TLS client certificate naming the agent
//! (issue 19) is one more [`Proof`].

use crate::config::ConfigError;
use std::collections::HashMap;
use std::path::Path;
use subtle::ConstantTimeEq;

/// How a connection proved the agent id it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The agent's own token from `--token-file`.
    AgentToken,
    /// A client certificate verified against `--tls-client-ca` whose
    /// subject CN is the agent id ([`crate::tls`]).
    ClientCertificate,
}

/// Why a connection is let in without proof of its agent id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// No token configured: anyone reaching the port.
    Open,
    /// The fleet's shared `--agent-token`: every holder.
    SharedToken,
}

/// Who a connection that passed the token check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// It proved it is the agent it names.
    Proven(Proof),
    /// It is let in, but could be anyone (with the shared token).
    Unproven(Trust),
}

impl Identity {
    /// True if the connection proved its agent id.
    pub fn is_proven(self) -> bool {
        matches!(self, Identity::Proven(_))
    }
}

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
        self.identify(agent_id, token).is_some()
    }

    /// [`Auth::check`], and what passing it proves: `None` if the token is
    /// wrong.
    pub fn identify(&self, agent_id: &str, token: &[u8]) -> Option<Identity> {
        let (expected, who) = match (self.per_agent.get(agent_id), &self.shared) {
            (Some(t), _) => (t, Identity::Proven(Proof::AgentToken)),
            (None, Some(t)) => (t, Identity::Unproven(Trust::SharedToken)),
            (None, None) if self.file_given => return None,
            (None, None) => return Some(Identity::Unproven(Trust::Open)),
        };
        bool::from(expected.as_slice().ct_eq(token)).then_some(who)
    }

    /// True if some agent can connect without proving its id (no token
    /// file, or a shared token beside it): the fleet trusts every holder.
    pub fn admits_unproven(&self) -> bool {
        self.shared.is_some() || !self.file_given
    }

    /// True if anyone reaching the port is let in (no token at all).
    pub fn is_open(&self) -> bool {
        self.shared.is_none() && !self.file_given
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
        assert_eq!(a.identify("sensor-1", b"s3cret"), Some(Identity::Proven(Proof::AgentToken)));
        assert_eq!(a.identify("sensor-9", b"fleet"), Some(Identity::Unproven(Trust::SharedToken)));
        assert_eq!(Auth::open().identify("x", b""), Some(Identity::Unproven(Trust::Open)));
        assert!(a.admits_unproven() && !only_file.admits_unproven() && Auth::open().is_open() && !a.is_open());
        std::fs::write(&path, "sensor-1\n").unwrap();
        assert!(Auth::load(None, Some(&path)).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
