//! TLS on the agent's connection (issue 19): a rustls client with the ring
//! provider. The agent's plaintext goes through rustls; the ciphertext goes
//! through the same non-blocking socket. rustls' `wants_write` decides
//! whether the loop waits for writable; nothing spins.
//!
//! The client trusts only the CA certificates of one PEM file (a fleet CA,
//! or the collector's own certificate pinned as a CA) and presents a client
//! certificate when one is configured (mutual TLS: the collector binds the
//! Hello's agent id to the certificate's CN). Everything is read and
//! checked at init; a file that cannot be used is refused then.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

/// What the TLS client is given (see `HostConfig::tls`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of the CA certificates trusted for the collector (at least
    /// one); the collector's own certificate may be given to pin it.
    pub ca_file: PathBuf,
    /// PEM file of the client certificate chain (mutual TLS); needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub key_file: Option<PathBuf>,
    /// The name the collector's certificate must hold; `None`: the host
    /// part of each endpoint (a DNS name or an IP literal).
    pub server_name: Option<String>,
}

/// Why a TLS configuration was refused at init.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsConfigError {
    /// The CA file is unreadable, not PEM, or holds no usable certificate.
    CaFile,
    /// The certificate file is unreadable or holds no certificate.
    CertFile,
    /// The key file is unreadable or holds no private key.
    KeyFile,
    /// A certificate without a key, or a key without a certificate.
    CertWithoutKey,
    /// The key does not fit the certificate, or rustls refused the pair.
    KeyMismatch,
    /// The server name (configured, or an endpoint's host) is not a DNS
    /// name or IP address.
    ServerName,
}

impl core::fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TlsConfigError::CaFile => "the CA file holds no usable PEM certificate",
            TlsConfigError::CertFile => "the certificate file holds no PEM certificate",
            TlsConfigError::KeyFile => "the key file holds no PEM private key",
            TlsConfigError::CertWithoutKey => "a client certificate and its key go together",
            TlsConfigError::KeyMismatch => "the private key does not fit the certificate",
            TlsConfigError::ServerName => "the server name is not a DNS name or IP address",
        })
    }
}

impl std::error::Error for TlsConfigError {}

/// Why an established or handshaking TLS session failed; kept apart from
/// network failures so a wrong certificate does not look like a flaky
/// network. The agent is told [`agent_core::TransportError::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// This client refused the collector's certificate (unknown issuer,
    /// wrong name, expired, ...).
    ServerCertificate,
    /// The collector sent an alert: it refused this client (its certificate
    /// missing, unknown, expired) or the handshake.
    PeerAlert,
    /// Anything else rustls refused (malformed records, bad MAC, a peer
    /// that is not TLS).
    Protocol,
}

impl core::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TlsFailure::ServerCertificate => "the collector's certificate was refused",
            TlsFailure::PeerAlert => "the collector sent a TLS alert",
            TlsFailure::Protocol => "TLS protocol error",
        })
    }
}

impl std::error::Error for TlsFailure {}

impl From<&rustls::Error> for TlsFailure {
    fn from(e: &rustls::Error) -> Self {
        match e {
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => TlsFailure::ServerCertificate,
            rustls::Error::AlertReceived(_) => TlsFailure::PeerAlert,
            _ => TlsFailure::Protocol,
        }
    }
}

/// The client side made at init: the rustls config and one server name per
/// endpoint.
#[derive(Debug)]
pub(crate) struct TlsClient {
    config: Arc<ClientConfig>,
    names: Vec<ServerName<'static>>,
    buffer_limit: usize,
}

impl TlsClient {
    // rustls deprecates the ring provider for lacking post-quantum key
    // exchange (aws-lc-rs needs cmake and nasm); as the collector does.
    /// Reads the files and checks every endpoint's server name.
    /// `buffer_limit` bounds rustls' outgoing buffers (plaintext and
    /// ciphertext each).
    #[allow(deprecated)]
    pub(crate) fn new(cfg: &TlsConfig, endpoints: &[String], buffer_limit: usize) -> Result<TlsClient, TlsConfigError> {
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&cfg.ca_file).map_err(|_| TlsConfigError::CaFile)?;
        for c in certs {
            roots.add(c.map_err(|_| TlsConfigError::CaFile)?).map_err(|_| TlsConfigError::CaFile)?;
        }
        if roots.is_empty() {
            return Err(TlsConfigError::CaFile);
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|_| TlsConfigError::CaFile)?
            .with_root_certificates(roots);
        let config = match (&cfg.cert_file, &cfg.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                    .map_err(|_| TlsConfigError::CertFile)?
                    .collect::<Result<_, _>>()
                    .map_err(|_| TlsConfigError::CertFile)?;
                if chain.is_empty() {
                    return Err(TlsConfigError::CertFile);
                }
                let key = PrivateKeyDer::from_pem_file(key).map_err(|_| TlsConfigError::KeyFile)?;
                builder.with_client_auth_cert(chain, key).map_err(|_| TlsConfigError::KeyMismatch)?
            }
            _ => return Err(TlsConfigError::CertWithoutKey),
        };
        let names = endpoints
            .iter()
            .map(|e| server_name(cfg.server_name.as_deref().unwrap_or_else(|| endpoint_host(e))))
            .collect::<Result<_, _>>()?;
        Ok(TlsClient { config: Arc::new(config), names, buffer_limit })
    }

    /// A new client session for endpoint `index`.
    pub(crate) fn session(&self, index: usize) -> Result<ClientConnection, TlsFailure> {
        let name = self.names.get(index).ok_or(TlsFailure::Protocol)?.clone();
        let mut c = ClientConnection::new(self.config.clone(), name).map_err(|e| TlsFailure::from(&e))?;
        c.set_buffer_limit(Some(self.buffer_limit));
        Ok(c)
    }
}

fn server_name(host: &str) -> Result<ServerName<'static>, TlsConfigError> {
    ServerName::try_from(host.to_string()).map_err(|_| TlsConfigError::ServerName)
}

/// "host:port" -> "host"; "[v6]:port" -> "v6".
fn endpoint_host(endpoint: &str) -> &str {
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

/// Writes rustls' pending ciphertext to the socket: `Ok(true)` when none is
/// left, `Ok(false)` when the socket would block.
pub(crate) fn push_ciphertext(tls: &mut ClientConnection, mut sock: &TcpStream) -> std::io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(&mut sock) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The out buffer's writer on a TLS session: plaintext into rustls (within
/// its buffer limit), ciphertext on to the socket. `WouldBlock` when rustls'
/// buffer is full because the socket does not take more.
pub(crate) struct TlsSink<'a> {
    /// The session.
    pub(crate) tls: &'a mut ClientConnection,
    /// Its socket.
    pub(crate) sock: &'a TcpStream,
}

impl Write for TlsSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        push_ciphertext(self.tls, self.sock)?;
        let n = self.tls.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            return Err(ErrorKind::WouldBlock.into());
        }
        push_ciphertext(self.tls, self.sock)?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_the_endpoints_host() {
        assert_eq!(endpoint_host("collector-a:7070"), "collector-a");
        assert_eq!(endpoint_host("[::1]:7070"), "::1");
        assert!(server_name(endpoint_host("127.0.0.1:1")).is_ok());
        assert_eq!(server_name("not a name!").unwrap_err(), TlsConfigError::ServerName);
    }

    #[test]
    fn a_missing_ca_file_is_refused_at_init() {
        let cfg = TlsConfig { ca_file: "/nonexistent/ca.pem".into(), ..TlsConfig::default() };
        assert_eq!(TlsClient::new(&cfg, &["localhost:1".into()], 4096).unwrap_err(), TlsConfigError::CaFile);
    }
}
