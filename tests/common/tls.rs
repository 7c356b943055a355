//! A test PKI made with rcgen: a CA, a server certificate for localhost and
//! 127.0.0.1 signed by it, written as PEM files a broker can be configured with,
//! client certificates, and client-side rustls configurations that trust (or do
//! not trust) the CA.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// A CA and a server certificate, in PEM files under a temporary directory.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM): what clients trust; also in the file `ca_file`.
    pub ca_pem: String,
    pub ca_file: PathBuf,
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
        let dir = tempfile::tempdir().expect("temporary dir");
        let mut pki = Pki {
            ca_file: dir.path().join("ca.pem"),
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
            dir,
            ca: ca("dwbroker test CA"),
            ca_pem: String::new(),
        };
        pki.write();
        pki
    }

    /// A new CA and server certificate in the same files (a certificate rotation).
    pub fn rotate(&mut self) {
        self.ca = ca("dwbroker test CA, rotated");
        self.write();
    }

    fn write(&mut self) {
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params");
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.ca)
            .expect("server certificate");
        self.ca_pem = self.ca.pem();
        std::fs::write(&self.ca_file, &self.ca_pem).expect("writes the CA");
        std::fs::write(&self.cert, cert.pem()).expect("writes the certificate");
        std::fs::write(&self.key, key.serialize_pem()).expect("writes the key");
    }

    /// The broker's `[tls]` setting for this PKI.
    pub fn config(&self) -> dwbroker::config::Tls {
        dwbroker::config::Tls::new(&self.cert, &self.key)
    }

    /// The broker's `[tls]` setting asking clients for certificates of this CA.
    pub fn config_with_clients(&self, auth: dwbroker::config::ClientAuth) -> dwbroker::config::Tls {
        let mut tls = self.config();
        tls.client_ca = Some(self.ca_file.clone());
        tls.client_auth = auth;
        tls
    }

    /// A client configuration trusting this PKI's CA.
    pub fn client(&self) -> Arc<ClientConfig> {
        Arc::new(builder(&self.ca_pem).with_no_client_auth())
    }

    /// A client configuration trusting this PKI's CA and presenting a client
    /// certificate (common name `cn`) it issued.
    pub fn client_with_certificate(&self, cn: &str) -> Arc<ClientConfig> {
        self.client_with_certificate_from(self, cn)
    }

    /// A client configuration trusting this PKI's CA and presenting a client
    /// certificate issued by `issuer`'s CA.
    pub fn client_with_certificate_from(&self, issuer: &Pki, cn: &str) -> Arc<ClientConfig> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().expect("client key");
        let cert = params
            .signed_by(&key, &issuer.ca)
            .expect("client certificate");
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key");
        let config = builder(&self.ca_pem)
            .with_client_auth_cert(vec![cert.der().clone()], key)
            .expect("client certificate accepted");
        Arc::new(config)
    }

    /// A client configuration trusting another CA only.
    pub fn stranger() -> Arc<ClientConfig> {
        Arc::new(builder(&ca("another CA").pem()).with_no_client_auth())
    }

    /// A file in this PKI's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn builder(ca_pem: &str) -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA added");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
}
