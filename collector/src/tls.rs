//! TLS on the agent port (issue 19): rustls with the ring provider, TLS 1.3
//! and 1.2 only, optionally mutual (`--tls-client-ca`).
//!
//! With mutual TLS every agent must present a certificate chaining to the
//! client CA, and the certificate names its agent: the subject's one
//! Common Name ([`agent_id_of`]) must equal the Hello's `agent_id`, and a
//! connection whose does is [`crate::auth::Proof::ClientCertificate`]
//! (proven). The certificate files are read at start and again on SIGHUP
//! ([`Tls::reload`]); a reload changes what new handshakes use, never a
//! session already established, and a reload that fails keeps the old
//! certificates.

use crate::config::ConfigError;
use crate::metrics::Metrics;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, RootCertStore, ServerConfig};
use std::io;
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

pub use crate::config::TlsFiles;

/// The agent port's TLS: the files and the acceptor built from them.
pub struct Tls {
    files: TlsFiles,
    acceptor: RwLock<TlsAcceptor>,
}

/// What the client certificate of a connection says about its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCert {
    /// No client certificate (plain TCP, or TLS without `--tls-client-ca`).
    Absent,
    /// A verified certificate naming this agent id.
    Agent(String),
    /// A verified certificate whose subject has no single, textual Common
    /// Name: it names no agent, and every Hello over it is refused.
    Unnamed,
}

impl Tls {
    /// Reads the files and builds the acceptor; a file that cannot be read
    /// or parsed, or a key that does not fit, is a [`ConfigError`].
    pub fn load(files: TlsFiles) -> Result<Tls, ConfigError> {
        let acceptor = RwLock::new(TlsAcceptor::from(Arc::new(server_config(&files)?)));
        Ok(Tls { files, acceptor })
    }

    /// Reads the files again; new handshakes use them from now on. On an
    /// error the old ones stay in use.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let fresh = TlsAcceptor::from(Arc::new(server_config(&self.files)?));
        *self.acceptor.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// True if every client must present a certificate (mutual TLS).
    pub fn is_mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }
}

fn read_err(what: &str, path: &std::path::Path, e: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{what} {}: {e}", path.display()))
}

// rustls deprecates the ring provider for lacking post-quantum key exchange;
// aws-lc-rs has it but needs cmake and nasm to build. X25519 and P-256 stay.
#[allow(deprecated)]
fn server_config(files: &TlsFiles) -> Result<ServerConfig, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| read_err("--tls-cert", &files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_err("--tls-cert", &files.cert, e))?;
    if certs.is_empty() {
        return Err(ConfigError(format!("--tls-cert {}: no certificate in it", files.cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| read_err("--tls-key", &files.key, e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ConfigError(format!("TLS: {e}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| read_err("--tls-client-ca", ca, e))? {
                let c = c.map_err(|e| read_err("--tls-client-ca", ca, e))?;
                roots.add(c).map_err(|e| read_err("--tls-client-ca", ca, e))?;
            }
            if roots.is_empty() {
                return Err(ConfigError(format!("--tls-client-ca {}: no CA certificate in it", ca.display())));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| read_err("--tls-client-ca", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(certs, key).map_err(|e| ConfigError(format!("--tls-cert/--tls-key: {e}")))
}

/// Why a TLS handshake failed, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Mutual TLS and the client sent no certificate.
    NoCertificate,
    /// The client's certificate is expired or not valid yet.
    ExpiredCertificate,
    /// The client's certificate does not chain to `--tls-client-ca`.
    UnknownCa,
    /// The client's certificate did not verify otherwise (not for client
    /// authentication, bad signature, malformed).
    BadCertificate,
    /// The client refused the collector with an alert (it does not trust
    /// the collector's certificate, or the name does not match).
    PeerAlert,
    /// The bytes were not TLS (plaintext on the TLS port).
    NotTls,
    /// Anything else: no common version or cipher suite, the socket failed.
    Other,
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HandshakeFailure::NoCertificate => "no client certificate",
            HandshakeFailure::ExpiredCertificate => "client certificate expired or not yet valid",
            HandshakeFailure::UnknownCa => "client certificate from an unknown CA",
            HandshakeFailure::BadCertificate => "client certificate refused",
            HandshakeFailure::PeerAlert => "the client refused the handshake",
            HandshakeFailure::NotTls => "not TLS",
            HandshakeFailure::Other => "handshake failed",
        })
    }
}

impl std::error::Error for HandshakeFailure {}

impl HandshakeFailure {
    /// Classifies the error of a failed accept.
    pub fn of(e: &io::Error) -> HandshakeFailure {
        let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
            return HandshakeFailure::Other;
        };
        match tls {
            rustls::Error::NoCertificatesPresented => HandshakeFailure::NoCertificate,
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => HandshakeFailure::ExpiredCertificate,
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => HandshakeFailure::ExpiredCertificate,
                CertificateError::UnknownIssuer => HandshakeFailure::UnknownCa,
                _ => HandshakeFailure::BadCertificate,
            },
            rustls::Error::AlertReceived(_) => HandshakeFailure::PeerAlert,
            rustls::Error::InvalidMessage(_) => HandshakeFailure::NotTls,
            _ => HandshakeFailure::Other,
        }
    }

    /// Counts it.
    pub fn count(self, m: &Metrics) {
        Metrics::inc(match self {
            HandshakeFailure::NoCertificate => &m.tls_no_client_cert_total,
            HandshakeFailure::ExpiredCertificate => &m.tls_expired_client_cert_total,
            HandshakeFailure::UnknownCa => &m.tls_unknown_ca_total,
            HandshakeFailure::BadCertificate => &m.tls_bad_client_cert_total,
            HandshakeFailure::PeerAlert => &m.tls_peer_alerts_total,
            HandshakeFailure::NotTls => &m.tls_not_tls_total,
            HandshakeFailure::Other => &m.tls_handshake_failures_total,
        });
    }
}

/// The peer certificate of an established connection, read as an agent
/// identity.
pub fn peer_cert(conn: &rustls::ServerConnection) -> PeerCert {
    match conn.peer_certificates().and_then(|c| c.first()) {
        None => PeerCert::Absent,
        Some(leaf) => agent_id_of(leaf).map_or(PeerCert::Unnamed, PeerCert::Agent),
    }
}

/// The agent id a (verified) certificate names: its subject's Common Name,
/// if there is exactly one and it is a UTF8String, PrintableString or
/// IA5String. `None` for anything else (no or several CNs, another string
/// type, DER that does not parse).
pub fn agent_id_of(cert: &[u8]) -> Option<String> {
    let (tag, cert, _) = der(cert)?;
    let (_, tbs, _) = der(expect(tag, 0x30, cert)?)?;
    let mut rest = tbs;
    let (tag, _, after) = der(rest)?;
    if tag == 0xA0 {
        rest = after; // version
    }
    // serial, signature algorithm, issuer, validity, then the subject.
    for want in [0x02, 0x30, 0x30, 0x30] {
        let (tag, _, after) = der(rest)?;
        if tag != want {
            return None;
        }
        rest = after;
    }
    let (tag, mut rdns, _) = der(rest)?;
    expect(tag, 0x30, ())?;
    let mut found = None;
    while !rdns.is_empty() {
        let (tag, set, after) = der(rdns)?;
        expect(tag, 0x31, ())?;
        rdns = after;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (tag, atv, after) = der(atvs)?;
            expect(tag, 0x30, ())?;
            atvs = after;
            let (tag, oid, value) = der(atv)?;
            if tag != 0x06 || oid != [0x55, 0x04, 0x03] {
                continue;
            }
            let (tag, text, _) = der(value)?;
            if found.is_some() || !matches!(tag, 0x0C | 0x13 | 0x16) {
                return None;
            }
            found = Some(std::str::from_utf8(text).ok()?.to_string());
        }
    }
    found
}

fn expect<T>(tag: u8, want: u8, v: T) -> Option<T> {
    (tag == want).then_some(v)
}

/// One DER element: its tag, its contents and what follows it. Only
/// single-byte tags and definite lengths up to 4 bytes (all a certificate
/// uses).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER element of `tag` around `body`.
    fn el(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if body.len() < 0x80 {
            v.push(body.len() as u8);
        } else {
            v.push(0x82);
            v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    }

    fn cert_with_subject(attrs: &[(&[u8], u8, &[u8])]) -> Vec<u8> {
        let mut rdns = Vec::new();
        for (oid, tag, text) in attrs {
            let atv = [el(0x06, oid), el(*tag, text)].concat();
            rdns.extend(el(0x31, &el(0x30, &atv)));
        }
        let tbs = [el(0xA0, &el(0x02, &[2])), el(0x02, &[7]), el(0x30, &[]), el(0x30, b"issuer"), el(0x30, b"validity"), el(0x30, &rdns), el(0x30, b"spki")].concat();
        el(0x30, &[el(0x30, &tbs), el(0x30, &[]), el(0x03, &[0])].concat())
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0A];

    #[test]
    fn the_one_common_name_is_the_agent_id() {
        assert_eq!(agent_id_of(&cert_with_subject(&[(O, 0x0C, b"fleet"), (CN, 0x0C, b"sensor-1")])).as_deref(), Some("sensor-1"));
        assert_eq!(agent_id_of(&cert_with_subject(&[(CN, 0x13, b"agent-2")])).as_deref(), Some("agent-2"));
        assert_eq!(agent_id_of(&cert_with_subject(&[(O, 0x0C, b"fleet")])), None, "no CN");
        assert_eq!(agent_id_of(&cert_with_subject(&[(CN, 0x0C, b"a"), (CN, 0x0C, b"b")])), None, "two CNs are ambiguous");
        assert_eq!(agent_id_of(&cert_with_subject(&[(CN, 0x1E, b"\0a")])), None, "BMPString is not taken");
        assert_eq!(agent_id_of(&cert_with_subject(&[(CN, 0x0C, &[0xFF])])), None, "not UTF-8");
        let good = cert_with_subject(&[(CN, 0x0C, b"sensor-1")]);
        for cut in 0..good.len() {
            assert_eq!(agent_id_of(&good[..cut]), None, "truncated at {cut}");
        }
    }

    #[test]
    fn lengths_beyond_the_input_are_refused() {
        assert_eq!(der(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(der(&[0x30, 0x82, 0xFF, 0xFF, 0]), None);
        assert_eq!(der(&[0x30, 0x80]), None);
        assert_eq!(der(&[0x30, 0x01, 0xAA, 0xBB]), Some((0x30, &[0xAA][..], &[0xBB][..])));
    }
}
