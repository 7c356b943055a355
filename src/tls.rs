//! TLS for the listeners that ask for it: the server's certificate and key read from
//! PEM files into one acceptor (rustls; TLS 1.2 and 1.3 only), and the handshake
//! that turns an accepted socket into an encrypted byte stream any front can serve.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::Tls;
use crate::protocols::socket::Duplex;

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {what} {}: {message}", path.display())]
pub struct TlsError {
    what: &'static str,
    path: PathBuf,
    message: String,
}

/// Builds the acceptor every TLS listener shares from the configured PEM files.
pub(crate) fn acceptor(files: &Tls) -> Result<TlsAcceptor, TlsError> {
    let fail = |what, path: &Path, message: String| TlsError {
        what,
        path: path.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail("certificate", &files.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(fail(
            "certificate",
            &files.cert,
            "no CERTIFICATE in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| fail("key", &files.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| fail("certificate", &files.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| fail("key", &files.key, e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Runs the server side of the handshake within `timeout`. A client that is not
/// speaking TLS (plain text on a TLS port) fails here: the error says what arrived.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, String> {
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no TLS handshake in time".into()),
    }
}

/// The negotiated version and cipher suite, for the connection's log line.
pub(crate) fn describe(stream: &TlsStream<TcpStream>) -> (String, String) {
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
}
