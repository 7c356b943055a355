//! TLS for the listeners that ask for it: the server's certificate and key (and,
//! if configured, the CA client certificates must chain to) read from PEM files
//! into a rustls configuration (TLS 1.2 and 1.3 only), reloaded on demand (SIGHUP)
//! without touching connections already made, and the handshake that turns an
//! accepted socket into an encrypted byte stream any front can serve.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use crate::config::{ClientAuth, Tls};
use crate::transport::Duplex;

/// The first byte of a TLS record carrying a handshake (a ClientHello).
pub(crate) const HANDSHAKE_RECORD: u8 = 0x16;

/// Why the certificate, key or client CA cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {what} {}: {message}", path.display())]
pub struct TlsError {
    what: &'static str,
    path: PathBuf,
    message: String,
}

/// The TLS configuration every TLS listener shares, as last loaded.
#[derive(Debug)]
pub(crate) struct Certificates {
    files: Tls,
    current: RwLock<Arc<ServerConfig>>,
    /// Handshakes that failed or timed out, since the start (`/metrics`).
    failed_handshakes: std::sync::atomic::AtomicU64,
}

impl Certificates {
    /// Handshakes that failed or timed out so far.
    pub(crate) fn failed_handshakes(&self) -> u64 {
        self.failed_handshakes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads the configured files.
    pub(crate) fn load(files: &Tls) -> Result<Certificates, TlsError> {
        Ok(Certificates {
            files: files.clone(),
            current: RwLock::new(Arc::new(server_config(files)?)),
            failed_handshakes: Default::default(),
        })
    }

    /// Reads the files again; new handshakes use them, connections already made
    /// keep what they negotiated. On an error the previous configuration stays.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(server_config(&self.files)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// An acceptor with the current configuration.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        TlsAcceptor::from(current.clone())
    }
}

fn server_config(files: &Tls) -> Result<ServerConfig, TlsError> {
    let fail = |what, path: &Path, message: String| TlsError {
        what,
        path: path.to_owned(),
        message,
    };
    let chain = read_certificates(&files.cert).map_err(|m| fail("certificate", &files.cert, m))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| fail("key", &files.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| fail("certificate", &files.cert, e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let fail = |m| fail("client CA", ca, m);
            let mut roots = RootCertStore::empty();
            for cert in read_certificates(ca).map_err(fail)? {
                roots.add(cert).map_err(|e| fail(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
            let verifier = match files.client_auth {
                ClientAuth::Required => verifier.build(),
                ClientAuth::Optional => verifier.allow_unauthenticated().build(),
            };
            builder.with_client_cert_verifier(verifier.map_err(|e| fail(e.to_string()))?)
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| fail("key", &files.key, e.to_string()))
}

/// The certificates of a PEM file; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no CERTIFICATE in the file".into());
    }
    Ok(certs)
}

/// Runs the server side of the handshake within `timeout`, logged for `front`: the
/// negotiated version and cipher suite at debug, a failure at info. A client that is
/// not speaking TLS (plain text on a TLS port) fails here; the log says so.
pub(crate) async fn handshake(
    certificates: &Certificates,
    stream: TcpStream,
    peer: SocketAddr,
    front: &(dyn fmt::Debug + Sync),
    timeout: Duration,
) -> Option<TlsStream<TcpStream>> {
    let accepting = certificates.acceptor().accept(stream);
    let why = match tokio::time::timeout(timeout, accepting).await {
        Ok(Ok(tls)) => {
            let (version, suite) = describe(&tls);
            debug!(%peer, ?front, %version, %suite, "TLS connection");
            return Some(tls);
        }
        Ok(Err(e)) => explain(&e),
        Err(_) => "no TLS handshake in time".into(),
    };
    info!(%peer, ?front, why = %why, "TLS handshake failed");
    certificates
        .failed_handshakes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    None
}

/// A failed handshake's reason, saying so when the client was not speaking TLS.
fn explain(e: &std::io::Error) -> String {
    let not_tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
            )
        });
    if not_tls {
        format!("{e} (the client is not speaking TLS: plain text on a TLS port?)")
    } else {
        e.to_string()
    }
}

/// The negotiated version and cipher suite, for the connection's log line.
fn describe(stream: &TlsStream<TcpStream>) -> (String, String) {
    let (_, session) = stream.get_ref();
    let version = session
        .protocol_version()
        .map_or_else(|| "?".into(), |v| format!("{v:?}"));
    let suite = session
        .negotiated_cipher_suite()
        .map_or_else(|| "?".into(), |s| format!("{:?}", s.suite()));
    (version, suite)
}

impl Duplex for TlsStream<TcpStream> {
    type Read = ReadHalf<TlsStream<TcpStream>>;
    type Write = WriteHalf<TlsStream<TcpStream>>;

    /// The halves share the TLS session behind a lock.
    fn halves(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }

    fn client_certificate(&self) -> Option<&[u8]> {
        let (_, session) = self.get_ref();
        session.peer_certificates()?.first().map(|c| c.as_ref())
    }
}
