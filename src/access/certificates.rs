//! The user a client certificate names: its subject's common name or its first
//! subject alternative name, as configured. The certificate was verified in the
//! TLS handshake (against `[tls] client_ca`); this only reads it.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::CertificateIdentity;

/// The name `which` picks from the DER certificate `der`, if it has one.
pub(crate) fn identity(der: &[u8], which: CertificateIdentity) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    match which {
        CertificateIdentity::Cn => cert
            .subject()
            .iter_common_name()
            .next()?
            .as_str()
            .ok()
            .map(str::to_owned),
        CertificateIdentity::San => {
            let names = cert.subject_alternative_name().ok()??;
            names.value.general_names.iter().find_map(|n| match n {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    Some((*s).to_owned())
                }
                _ => None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_name_or_the_first_alternative_name_is_the_user() {
        let mut params = rcgen::CertificateParams::new(vec!["device-7.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sensor-7");
        let key = rcgen::KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(
            identity(&der, CertificateIdentity::Cn).as_deref(),
            Some("sensor-7")
        );
        assert_eq!(
            identity(&der, CertificateIdentity::San).as_deref(),
            Some("device-7.example")
        );
        assert_eq!(
            identity(b"not a certificate", CertificateIdentity::Cn),
            None
        );
    }
}
