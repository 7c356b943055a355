//! SCRAM-SHA-256 (RFC 5802, RFC 7677), the server side, without channel
//! binding: the method an MQTT 5 client may name for enhanced authentication.
//!
//! Owns: the stored verifier (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`,
//! base64, as PostgreSQL writes it; the password itself is never kept), the
//! messages of one exchange and the proof check. Sans-I/O: the MQTT front carries
//! the messages in AUTH packets, [`super::Access`] counts failures.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The method's name, as MQTT's Authentication Method carries it.
pub(crate) const METHOD: &str = "SCRAM-SHA-256";
/// PBKDF2 iterations for new verifiers (RFC 7677 asks for at least 4096).
const ITERATIONS: u32 = 4096;
/// The longest client message read (a user name of 255 bytes and a nonce fit).
const MAX_MESSAGE: usize = 1024;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// What the server keeps of a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl Verifier {
    /// The verifier of `password` with a fresh salt.
    pub(crate) fn new(password: &[u8]) -> Verifier {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        let mut salt = vec![0u8; 16];
        OsRng.fill_bytes(&mut salt);
        Verifier::derive(password, salt, ITERATIONS)
    }

    fn derive(password: &[u8], salt: Vec<u8>, iterations: u32) -> Verifier {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        Verifier {
            iterations,
            salt,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// Reads `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    pub(crate) fn parse(text: &str) -> Result<Verifier, String> {
        let bad = || format!("`{text}` is not a SCRAM-SHA-256 verifier");
        let rest = text.strip_prefix("SCRAM-SHA-256$").ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iterations, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let key = |k: &str| -> Result<[u8; 32], String> {
            B64.decode(k)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(bad)
        };
        Ok(Verifier {
            iterations: iterations.parse().ok().filter(|i| *i > 0).ok_or_else(bad)?,
            salt: B64.decode(salt).map_err(|_| bad())?,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

/// One exchange, after the client's first message.
#[derive(Debug)]
pub(crate) struct Exchange {
    user: String,
    client_first_bare: String,
    server_first: String,
    /// The client's and the server's nonce.
    nonce: String,
    /// `None` for an unknown user: the exchange goes on with a made-up salt and
    /// fails at the proof, so that it does not tell which users exist.
    verifier: Option<Verifier>,
}

/// The client's first message, `n,,n=<user>,r=<nonce>`: its user and nonce.
fn parse_client_first(message: &[u8]) -> Option<(String, String, String)> {
    if message.len() > MAX_MESSAGE {
        return None;
    }
    let text = std::str::from_utf8(message).ok()?;
    // No channel binding, and no authorization identity.
    let bare = text.strip_prefix("n,,")?;
    let mut parts = bare.split(',');
    let user = parts.next()?.strip_prefix("n=")?;
    let nonce = parts.next()?.strip_prefix("r=")?;
    if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
        return None;
    }
    // RFC 5802 §5.1: `=2C` and `=3D` stand for `,` and `=` in a user name.
    let user = user.replace("=2C", ",").replace("=3D", "=");
    Some((user, nonce.to_owned(), bare.to_owned()))
}

impl Exchange {
    /// Starts an exchange from the client's first message; `verifier` is the
    /// user's (`None`: no such user); `secret` makes an unknown user's salt
    /// stable across attempts. `None` if the message is malformed.
    pub(crate) fn start(
        client_first: &[u8],
        verifier: impl FnOnce(&str) -> Option<Verifier>,
        secret: &[u8],
    ) -> Option<Exchange> {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        let (user, client_nonce, client_first_bare) = parse_client_first(client_first)?;
        let verifier = verifier(&user);
        let (salt, iterations) = match &verifier {
            Some(v) => (v.salt.clone(), v.iterations),
            None => (hmac(secret, user.as_bytes())[..16].to_vec(), ITERATIONS),
        };
        let mut ours = [0u8; 18];
        OsRng.fill_bytes(&mut ours);
        let nonce = format!("{client_nonce}{}", B64.encode(ours));
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
        Some(Exchange {
            user,
            client_first_bare,
            server_first,
            nonce,
            verifier,
        })
    }

    /// The user the client names.
    pub(crate) fn user(&self) -> &str {
        &self.user
    }

    /// The server's first message.
    pub(crate) fn server_first(&self) -> &str {
        &self.server_first
    }

    /// Checks the client's final message `c=biws,r=<nonce>,p=<proof>`: the
    /// user's verifier and the server's final message (`v=<signature>`) if the
    /// proof is right.
    pub(crate) fn finish(&self, client_final: &[u8]) -> Option<(&Verifier, String)> {
        if client_final.len() > MAX_MESSAGE {
            return None;
        }
        let text = std::str::from_utf8(client_final).ok()?;
        let (without_proof, proof) = text.rsplit_once(",p=")?;
        let mut parts = without_proof.split(',');
        // `biws` is base64 of the GS2 header `n,,` the client sent first.
        if parts.next()? != "c=biws" || parts.next()?.strip_prefix("r=")? != self.nonce {
            return None;
        }
        let proof: [u8; 32] = B64.decode(proof).ok()?.try_into().ok()?;
        let verifier = self.verifier.as_ref()?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = hmac(&verifier.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        let stored: [u8; 32] = Sha256::digest(&client_key).into();
        // Constant time: the comparison does not tell how much of a guess was right.
        let differ = stored
            .iter()
            .zip(verifier.stored_key)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differ != 0 {
            return None;
        }
        let server_signature = hmac(&verifier.server_key, auth_message.as_bytes());
        Some((verifier, format!("v={}", B64.encode(server_signature))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side, as RFC 5802 computes it.
    fn client_final(
        password: &[u8],
        client_first_bare: &str,
        server_first: &str,
    ) -> (String, String) {
        let fields: Vec<&str> = server_first.split(',').collect();
        let nonce = fields[0].strip_prefix("r=").unwrap();
        let salt = B64.decode(fields[1].strip_prefix("s=").unwrap()).unwrap();
        let iterations: u32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_signature = hmac(&hmac(&salted, b"Server Key"), auth.as_bytes());
        (
            format!("{without_proof},p={}", B64.encode(proof)),
            format!("v={}", B64.encode(server_signature)),
        )
    }

    #[test]
    fn rfc_7677_test_vector() {
        // RFC 7677 §3: user "user", password "pencil".
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = Verifier::derive(b"pencil", salt, 4096);
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let exchange = Exchange {
            user: "user".into(),
            client_first_bare: client_first_bare.into(),
            server_first: server_first.into(),
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            verifier: Some(verifier),
        };
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let (_, server_final) = exchange.finish(client_final.as_bytes()).unwrap();
        assert_eq!(
            server_final,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn an_exchange_succeeds_with_the_password_only() {
        let verifier = Verifier::new(b"secret");
        let text = verifier.to_string();
        assert_eq!(Verifier::parse(&text).unwrap(), verifier);
        let lookup = |user: &str| (user == "alice").then(|| verifier.clone());
        let first = b"n,,n=alice,r=abc123";
        let exchange = Exchange::start(first, lookup, b"k").unwrap();
        assert_eq!(exchange.user(), "alice");
        assert!(exchange.server_first().starts_with("r=abc123"));
        let (good, expected) = client_final(b"secret", "n=alice,r=abc123", exchange.server_first());
        let (_, server_final) = exchange.finish(good.as_bytes()).unwrap();
        assert_eq!(server_final, expected);
        let (wrong, _) = client_final(b"guess", "n=alice,r=abc123", exchange.server_first());
        assert!(exchange.finish(wrong.as_bytes()).is_none());
        // A replayed final message does not fit a new exchange's nonce.
        let again = Exchange::start(first, lookup, b"k").unwrap();
        assert!(again.finish(good.as_bytes()).is_none());
        // An unknown user gets a stable made-up salt and fails at the proof.
        let ghost = Exchange::start(b"n,,n=ghost,r=x", |_| None, b"k").unwrap();
        let ghost2 = Exchange::start(b"n,,n=ghost,r=y", |_| None, b"k").unwrap();
        let salt = |e: &Exchange| e.server_first().split(',').nth(1).unwrap().to_owned();
        assert_eq!(salt(&ghost), salt(&ghost2));
        let (guess, _) = client_final(b"secret", "n=ghost,r=x", ghost.server_first());
        assert!(ghost.finish(guess.as_bytes()).is_none());
    }

    #[test]
    fn malformed_messages_are_refused() {
        for bad in [
            &b"n=alice,r=abc"[..],
            b"y,,n=alice,r=abc",
            b"p=tls-unique,,n=alice,r=abc",
            b"n,,r=abc",
            b"n,,n=alice,r=",
            b"n,,n=alice",
            b"\xff\xfe",
        ] {
            assert!(Exchange::start(bad, |_| None, b"k").is_none(), "{bad:?}");
        }
        assert!(Exchange::start(&vec![b'a'; 2000], |_| None, b"k").is_none());
        let exchange =
            Exchange::start(b"n,,n=a,r=abc", |_| Some(Verifier::new(b"x")), b"k").unwrap();
        for bad in ["", "c=biws", "c=biws,r=abc,p=AAAA", "c=eSws,r=abc,p=", "p="] {
            assert!(exchange.finish(bad.as_bytes()).is_none(), "{bad}");
        }
        assert!(Verifier::parse("SCRAM-SHA-256$0:AA==$AA==:AA==").is_err());
        assert!(Verifier::parse("$argon2id$v=19").is_err());
    }
}
