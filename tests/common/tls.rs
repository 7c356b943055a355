//! A test PKI made with rcgen: a CA, a server certificate for localhost and
//! 127.0.0.1 signed by it, written as PEM files a broker can be configured with,
//! and client-side rustls configurations that trust (or do not trust) the CA.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio_rustls::rustls::{self, pki_types::CertificateDer, ClientConfig, RootCertStore};

/// A CA and a server certificate, in PEM files under a temporary directory.
pub struct Pki {
    _dir: tempfile::TempDir,
    /// The CA certificate (PEM): what clients trust.
    pub ca_pem: String,
    /// The server's certificate and key files.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A self-signed CA named `name`.
fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA")
}

impl Pki {
    /// A new CA and a server certificate for `localhost` and `127.0.0.1`.
    pub fn new() -> Pki {
        let ca = ca("dwbroker test CA");
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &ca).expect("server certificate");
        let dir = tempfile::tempdir().expect("temporary dir");
        let cert_path = dir.path().join("server.pem");
        let key_path = dir.path().join("server.key");
        std::fs::write(&cert_path, cert.pem()).expect("writes the certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("writes the key");
        Pki {
            _dir: dir,
            ca_pem: ca.pem(),
            cert: cert_path,
            key: key_path,
        }
    }

    /// The broker's `[tls]` setting for this PKI.
    pub fn config(&self) -> dwbroker::config::Tls {
        dwbroker::config::Tls {
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }

    /// A client configuration trusting this PKI's CA.
    pub fn client(&self) -> Arc<ClientConfig> {
        client_trusting(&self.ca_pem)
    }

    /// A client configuration trusting another CA only.
    pub fn stranger() -> Arc<ClientConfig> {
        client_trusting(&ca("another CA").pem())
    }
}

fn client_trusting(ca_pem: &str) -> Arc<ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA added");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}
