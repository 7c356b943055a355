//! Who a client is and what it may do: one user store and one set of permissions
//! for every front (see "Transports and access" in the design).
//!
//! Owns: authentication ([`Access::authenticate`]: a password checked against the
//! password file or the configuration's users, a NATS token or nkey, a client
//! certificate's user, a SCRAM-SHA-256 exchange ([`Access::scram_start`]),
//! anonymous clients by the `[auth] anonymous` rule; failed logins logged, counted
//! and delayed per address), the [`Grant`] a connection holds afterwards, which
//! answers the fronts' permission questions, and reloads: [`Access::reloads`]
//! tells open connections, [`Access::regrant`] what each may do now.
//! Refuses: each protocol's way of saying no (fronts turn [`Refused`] and a `false`
//! into CONNACK codes, 403s, ERROR frames and `-ERR`s).
//!
//! Without users (no password file and no `[auth.users]`) the broker is open, as
//! before: anonymous clients may do everything, and the only password is RabbitMQ's
//! guest/guest for the protocols that always send one (AMQP, STOMP).

mod certificates;
mod grant;
pub(crate) mod passwords;
pub(crate) mod rules;
pub(crate) mod scram;

use crate::connections::Protocol;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::{Anonymous, Auth, CertificateIdentity};
pub(crate) use grant::{Grant, Guard};
use grant::{Origin, Permissions};
pub(crate) use rules::{FilterVerdict, Kind};

/// The user an open broker accepts from clients that must send a password.
const GUEST: (&str, &[u8]) = ("guest", b"guest");
/// Failed logins from one address are forgotten after this long without another.
const FAILURE_MEMORY: Duration = Duration::from_secs(60);
/// The delay after the first failed login from an address; it doubles with each
/// further one up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Password checks (argon2) that run at once.
const CONCURRENT_CHECKS: usize = 4;
/// Addresses whose failures are remembered at once; beyond it the oldest are
/// forgotten first (memory stays bounded whoever guesses).
const MAX_REMEMBERED: usize = 10_000;

/// What a client presented.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Login<'a> {
    /// No credentials.
    Anonymous,
    /// A user name and password.
    Password {
        /// The user.
        user: &'a str,
        /// The password, as sent.
        password: &'a [u8],
    },
    /// A NATS token (CONNECT `auth_token`).
    Token(&'a str),
    /// A NATS nkey: the public key and its signature of the nonce INFO sent.
    Nkey {
        /// The user's public nkey (`U...`).
        key: &'a str,
        /// The nonce the server sent.
        nonce: &'a str,
        /// The client's signature of the nonce, base64 (URL alphabet, as the
        /// NATS clients send it, or standard).
        signature: &'a str,
    },
    /// The user a verified client certificate names (AMQP EXTERNAL, or no
    /// credentials over TLS with a client certificate).
    Certificate(&'a str),
}

impl<'a> Login<'a> {
    /// Who the log line names: the user, the nkey, or nothing (never a secret).
    fn shown(&self) -> &str {
        match self {
            Login::Password { user, .. } | Login::Certificate(user) => user,
            Login::Nkey { key, .. } => key,
            Login::Anonymous | Login::Token(_) => "",
        }
    }

    /// A user name and password if the client sent a user name, else anonymous
    /// (a password without a user name names nobody).
    pub(crate) fn password(user: Option<&'a str>, password: &'a [u8]) -> Login<'a> {
        match user {
            Some(user) => Login::Password { user, password },
            None => Login::Anonymous,
        }
    }

    /// This login, or, if the client sent no credentials, the user its
    /// certificate names (as mosquitto's `use_identity_as_username` and
    /// nats-server's `verify_and_map`).
    pub(crate) fn or_certificate(self, certificate_user: Option<&'a str>) -> Login<'a> {
        match (self, certificate_user) {
            (Login::Anonymous, Some(user)) => Login::Certificate(user),
            (login, _) => login,
        }
    }
}

/// Why a client was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Unknown user or wrong password.
    BadCredentials,
    /// No credentials, and anonymous clients are not let in.
    NotAuthorized,
}

/// The users and permissions in force (replaced whole on reload).
#[derive(Debug, Default)]
struct Policy {
    /// Password hashes by user.
    users: BTreeMap<String, String>,
    /// SCRAM-SHA-256 verifiers by user.
    scram: HashMap<String, String>,
    /// Users by public nkey.
    nkeys: HashMap<String, String>,
    /// (user, token hash).
    tokens: Vec<(String, String)>,
    /// Users who may log in with a client certificate naming them.
    certificates: HashSet<String>,
    certificate_identity: CertificateIdentity,
    /// `None`: no permissions configured, every user may do everything.
    permissions: Option<HashMap<String, Arc<Permissions>>>,
    anonymous: Anonymous,
}

impl Policy {
    fn load(auth: &Auth) -> Result<Policy, String> {
        let stored = match &auth.password_file {
            Some(path) => passwords::read(path)?,
            None => BTreeMap::new(),
        };
        let mut scram: HashMap<String, String> = stored
            .iter()
            .filter_map(|(user, s)| Some((user.clone(), s.scram.clone()?)))
            .collect();
        let mut users: BTreeMap<String, String> =
            stored.into_iter().map(|(user, s)| (user, s.hash)).collect();
        let mut nkeys = HashMap::new();
        let mut tokens = Vec::new();
        let mut certificates = HashSet::new();
        for (user, spec) in &auth.users {
            if !passwords::valid_user(user) {
                return Err(format!("[auth.users]: `{user}` is not a valid user name"));
            }
            let bad = |e: String| format!("[auth.users.{user}]: {e}");
            if let Some(hash) = &spec.password_hash {
                passwords::check_hash(hash).map_err(bad)?;
                users.insert(user.clone(), hash.clone());
            }
            if let Some(key) = &spec.nkey {
                if !key.starts_with('U') || nkeys::from_public_key(key).is_err() {
                    return Err(bad(format!("`{key}` is not a user nkey (U...)")));
                }
                if let Some(other) = nkeys.insert(key.clone(), user.clone()) {
                    return Err(bad(format!("the nkey is also {other}'s")));
                }
            }
            if let Some(hash) = &spec.token_hash {
                passwords::check_hash(hash).map_err(bad)?;
                tokens.push((user.clone(), hash.clone()));
            }
            if spec.certificate {
                certificates.insert(user.clone());
            }
            if let Some(verifier) = &spec.scram_sha_256 {
                scram::Verifier::parse(verifier).map_err(bad)?;
                scram.insert(user.clone(), verifier.clone());
            }
            let credentials = [
                &spec.password_hash,
                &spec.nkey,
                &spec.token_hash,
                &spec.scram_sha_256,
            ];
            if credentials.iter().all(|c| c.is_none()) && !spec.certificate {
                return Err(bad(
                    "no password_hash, nkey, token_hash, scram_sha_256 or certificate".into(),
                ));
            }
        }
        let permissions = if auth.permissions.is_empty() {
            None
        } else {
            let mut all = HashMap::new();
            for (user, spec) in &auth.permissions {
                let p = Permissions::parse(spec)
                    .map_err(|e| format!("[auth.permissions.{user}]: {e}"))?;
                all.insert(user.clone(), Arc::new(p));
            }
            Some(all)
        };
        if let Anonymous::As(user) = &auth.anonymous {
            let known = users.contains_key(user)
                || auth.users.contains_key(user)
                || permissions.as_ref().is_some_and(|p| p.contains_key(user));
            if !known {
                return Err(format!(
                    "[auth] anonymous = \"{user}\": no such user and no permissions for it"
                ));
            }
        }
        Ok(Policy {
            users,
            scram,
            nkeys,
            tokens,
            certificates,
            certificate_identity: auth.certificate_identity,
            permissions,
            anonymous: auth.anonymous.clone(),
        })
    }

    fn open(&self) -> bool {
        self.users.is_empty()
            && self.nkeys.is_empty()
            && self.tokens.is_empty()
            && self.certificates.is_empty()
    }

    /// Checks credentials against the users (argon2 on the blocking pool).
    async fn check(&self, login: Login<'_>) -> Result<Grant, Refused> {
        match login {
            Login::Anonymous => Err(Refused::NotAuthorized),
            Login::Password { user, password } => {
                // An unknown user costs as much as a wrong password: the time to
                // answer does not tell which users exist.
                let known = self.users.get(user);
                let hash = known.cloned().unwrap_or_else(|| decoy_hash().to_owned());
                let password = password.to_vec();
                let matched = blocking(move || passwords::verify(&hash, &password)).await;
                match (known, matched) {
                    (Some(hash), true) => {
                        Ok(self.grant(user, Origin::Credential(hash.as_str().into())))
                    }
                    _ => Err(Refused::BadCredentials),
                }
            }
            Login::Token(token) => {
                let hashes = self.tokens.clone();
                let token = token.as_bytes().to_vec();
                let found = blocking(move || {
                    hashes
                        .into_iter()
                        .find(|(_, hash)| passwords::verify(hash, &token))
                })
                .await;
                found
                    .map(|(user, hash)| self.grant(&user, Origin::Credential(hash.into())))
                    .ok_or(Refused::BadCredentials)
            }
            Login::Nkey {
                key,
                nonce,
                signature,
            } => match self.nkeys.get(key) {
                Some(user) if verify_nkey(key, nonce, signature) => {
                    Ok(self.grant(user, Origin::Credential(key.into())))
                }
                _ => Err(Refused::BadCredentials),
            },
            Login::Certificate(user) if self.certificates.contains(user) => {
                Ok(self.grant(user, Origin::Certificate))
            }
            Login::Certificate(_) => Err(Refused::BadCredentials),
        }
    }

    fn grant(&self, user: &str, origin: Origin) -> Grant {
        Grant {
            user: Some(user.into()),
            permissions: self.permissions.as_ref().map(|all| {
                // With permissions configured, a user without any may do nothing.
                all.get(user).cloned().unwrap_or_default()
            }),
            origin,
        }
    }

    /// Whether `credential` is still one of `user`'s.
    fn holds(&self, user: &str, credential: &str) -> bool {
        self.users.get(user).is_some_and(|hash| hash == credential)
            || self.scram.get(user).is_some_and(|v| v == credential)
            || self.nkeys.get(credential).is_some_and(|u| u == user)
            || self
                .tokens
                .iter()
                .any(|(u, hash)| u == user && hash == credential)
    }

    /// What `grant` becomes under this policy: its user's permissions now, or
    /// `None` if the user, its credential or anonymous access is gone.
    fn regrant(&self, grant: &Grant) -> Option<Grant> {
        match &grant.origin {
            Origin::Nobody => Some(grant.clone()),
            Origin::Open => self.open().then(|| grant.clone()),
            _ if self.open() => Some(Grant {
                permissions: None,
                origin: Origin::Open,
                ..grant.clone()
            }),
            Origin::Anonymous => match &self.anonymous {
                Anonymous::As(user) => Some(self.grant(user, Origin::Anonymous)),
                Anonymous::Refused => None,
            },
            Origin::Credential(credential) => {
                let user = grant.user.as_deref()?;
                self.holds(user, credential)
                    .then(|| self.grant(user, grant.origin.clone()))
            }
            Origin::Certificate => {
                let user = grant.user.as_deref()?;
                self.certificates
                    .contains(user)
                    .then(|| self.grant(user, Origin::Certificate))
            }
        }
    }
}

/// Failed logins from one address.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Who is logging in: the address its failures are counted against, and its
/// protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) ip: IpAddr,
    pub(crate) via: Protocol,
}

/// The user store and permissions every front authenticates against.
#[derive(Debug)]
pub(crate) struct Access {
    config: Auth,
    policy: RwLock<Arc<Policy>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    /// Logins refused since the start, by the protocol they came by (`/metrics`).
    refused_logins: [std::sync::atomic::AtomicU64; crate::connections::PROTOCOLS],
    /// Password checks running at once: argon2 takes 19 MiB and tens of
    /// milliseconds each, so a storm of logins waits here instead of filling the
    /// blocking pool and memory.
    checks: tokio::sync::Semaphore,
    /// Counts reloads; connections watch it to have their grants checked again.
    reloads: tokio::sync::watch::Sender<u64>,
    /// Makes the SCRAM salt an unknown user is answered with stable for the
    /// process (the same user asked twice gets the same salt, as a real one would).
    scram_secret: [u8; 32],
}

impl Access {
    /// Reads the password file and checks the configuration's users and rules.
    pub(crate) fn load(config: &Auth) -> Result<Access, String> {
        let policy = Policy::load(config)?;
        if !policy.open() {
            info!(
                users = policy.users.len(),
                permissions = policy.permissions.as_ref().map_or(0, HashMap::len),
                "authentication required"
            );
        }
        Ok(Access {
            config: config.clone(),
            policy: RwLock::new(Arc::new(policy)),
            failures: Mutex::new(HashMap::new()),
            refused_logins: Default::default(),
            checks: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
            reloads: tokio::sync::watch::Sender::new(0),
            scram_secret: {
                use argon2::password_hash::rand_core::{OsRng, RngCore};
                let mut secret = [0u8; 32];
                OsRng.fill_bytes(&mut secret);
                secret
            },
        })
    }

    /// Reads the password file and rules again (SIGHUP). On an error the users and
    /// permissions in force stay.
    pub(crate) fn reload(&self) -> Result<(), String> {
        let policy = Policy::load(&self.reread()?)?;
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policy);
        self.reloads.send_modify(|n| *n += 1);
        Ok(())
    }

    /// The `[auth]` section of the configuration file again (the users,
    /// anonymous rule and permissions in it may have changed); the password file
    /// stays the one the broker started with, which a flag may have named.
    fn reread(&self) -> Result<Auth, String> {
        let Some(path) = &self.config.reload_from else {
            return Ok(self.config.clone());
        };
        let mut fresh = crate::config::Config::default();
        fresh.merge_file(path).map_err(|e| e.to_string())?;
        Ok(Auth {
            password_file: self.config.password_file.clone(),
            ..fresh.auth
        })
    }

    /// How many reloads there have been (a grant made under an earlier one may
    /// have changed).
    pub(crate) fn generation(&self) -> u64 {
        *self.reloads.borrow()
    }

    /// Changes on every reload: a connection waits on it, then asks
    /// [`Access::regrant`] what its user may do now.
    pub(crate) fn reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// What `grant` becomes under the users and permissions now in force: `None`
    /// if its user was removed or its credential changed (or anonymous clients
    /// are no longer let in), and the connection must close.
    pub(crate) fn regrant(&self, grant: &Grant) -> Option<Grant> {
        self.policy().regrant(grant)
    }

    fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether no users are configured: MQTT and NATS then ignore credentials, as
    /// mosquitto and nats-server do without a user store.
    pub(crate) fn is_open(&self) -> bool {
        self.policy().open()
    }

    /// [`Access::authenticate`] for protocols whose credentials are optional (MQTT,
    /// NATS): while the broker has no users they are ignored, as mosquitto and
    /// nats-server without a user store ignore them.
    pub(crate) async fn authenticate_optional(
        &self,
        peer: Peer,
        login: Login<'_>,
    ) -> Result<Grant, Refused> {
        let login = if self.is_open() {
            Login::Anonymous
        } else {
            login
        };
        self.authenticate(peer, login).await
    }

    /// The user the DER client certificate `der` names (by the configured
    /// identity), if any; whether that user may log in with it is for
    /// [`Access::authenticate`].
    pub(crate) fn certificate_user(&self, der: Option<&[u8]>) -> Option<String> {
        certificates::identity(der?, self.policy().certificate_identity)
    }

    /// Whether some user logs in with an nkey (NATS INFO then carries a nonce).
    pub(crate) fn has_nkeys(&self) -> bool {
        !self.policy().nkeys.is_empty()
    }

    /// Authenticates a client from `peer`. The password hash is checked on the
    /// blocking pool (argon2 takes tens of milliseconds by design); a refusal is
    /// logged and returned only after the address's failure delay.
    pub(crate) async fn authenticate(
        &self,
        peer: Peer,
        login: Login<'_>,
    ) -> Result<Grant, Refused> {
        let policy = self.policy();
        let shown = login.shown();
        let outcome = match login {
            Login::Anonymous => match (&policy.anonymous, policy.open()) {
                (_, true) => Ok(Grant::everything()),
                (Anonymous::As(user), false) => Ok(policy.grant(user, Origin::Anonymous)),
                (Anonymous::Refused, false) => Err(Refused::NotAuthorized),
            },
            Login::Password { user, password } if policy.open() => {
                if (user, password) == GUEST {
                    Ok(Grant {
                        user: Some(user.into()),
                        permissions: None,
                        origin: Origin::Open,
                    })
                } else {
                    Err(Refused::BadCredentials)
                }
            }
            _ if policy.open() => Err(Refused::BadCredentials),
            login => {
                // Closed only if the Access is dropped, which outlives every login.
                let _permit = self.checks.acquire().await;
                policy.check(login).await
            }
        };
        self.settle(peer, shown, outcome).await
    }

    /// Starts a SCRAM-SHA-256 exchange with the client's first message; `None`
    /// if it is malformed.
    pub(crate) fn scram_start(&self, client_first: &[u8]) -> Option<scram::Exchange> {
        let policy = self.policy();
        let verifier = |user: &str| {
            let text = policy.scram.get(user)?;
            scram::Verifier::parse(text).ok()
        };
        scram::Exchange::start(client_first, verifier, &self.scram_secret)
    }

    /// Checks the client's final message of `exchange`: the grant and the
    /// server's final message, or a refusal (logged, counted and delayed as any
    /// failed login).
    pub(crate) async fn scram_finish(
        &self,
        peer: Peer,
        exchange: &scram::Exchange,
        client_final: &[u8],
    ) -> Result<(Grant, String), Refused> {
        let policy = self.policy();
        let user = exchange.user();
        let checked = exchange.finish(client_final).and_then(|(_, server_final)| {
            // The verifier in force now (a reload may have changed it meanwhile).
            let credential = policy.scram.get(user)?;
            let grant = policy.grant(user, Origin::Credential(credential.as_str().into()));
            Some((grant, server_final))
        });
        self.settle(peer, user, checked.ok_or(Refused::BadCredentials))
            .await
    }

    /// A login's outcome: a success forgets the address's failures; a refusal
    /// is logged (the user, never the password) and answered after its delay.
    async fn settle<T>(
        &self,
        Peer { ip: peer, via }: Peer,
        user: &str,
        outcome: Result<T, Refused>,
    ) -> Result<T, Refused> {
        match outcome {
            Ok(granted) => {
                self.forget_failures(peer);
                Ok(granted)
            }
            Err(refused) => {
                self.refused_logins[via as usize]
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (count, delay) = self.count_failure(peer);
                warn!(%peer, user, failures = count, ?refused, "login refused");
                tokio::time::sleep(delay).await;
                Err(refused)
            }
        }
    }

    /// Logins refused since the start by clients of `via`.
    pub(crate) fn refused_logins(&self, via: Protocol) -> u64 {
        self.refused_logins[via as usize].load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_failure(&self, peer: IpAddr) -> (u32, Duration) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_REMEMBERED && !failures.contains_key(&peer) {
            failures.retain(|_, f| now.duration_since(f.last) < FAILURE_MEMORY);
            if failures.len() >= MAX_REMEMBERED {
                if let Some(oldest) = failures.iter().min_by_key(|(_, f)| f.last).map(|(a, _)| *a) {
                    failures.remove(&oldest);
                }
            }
        }
        let entry = failures.entry(peer).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(entry.last) >= FAILURE_MEMORY {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        let doublings = entry.count.saturating_sub(1).min(16);
        (
            entry.count,
            (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY),
        )
    }

    fn forget_failures(&self, peer: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&peer);
    }
}

/// Runs a password check on the blocking pool (argon2 takes tens of
/// milliseconds by design); a check that could not run counts as failed.
async fn blocking<T: Default + Send + 'static>(check: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(check).await.unwrap_or_default()
}

/// Whether `signature` (base64) is `key`'s ed25519 signature of `nonce`.
fn verify_nkey(key: &str, nonce: &str, signature: &str) -> bool {
    use base64::Engine;
    let engines = [
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let trimmed = signature.trim_end_matches('=');
    let Some(bytes) = engines.iter().find_map(|e| e.decode(trimmed).ok()) else {
        return false;
    };
    nkeys::KeyPair::from_public_key(key).is_ok_and(|k| k.verify(nonce.as_bytes(), &bytes).is_ok())
}

/// A hash no password is checked against successfully, for unknown users.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| passwords::hash(b"dwbroker decoy").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::grant::RESPONSE_WINDOW_MS;
    use super::*;
    use crate::config::PermissionSpec;
    use crate::router::Subject;

    fn auth_with(users: &[(&str, &str)]) -> Auth {
        let mut auth = Auth::default();
        for (user, password) in users {
            let spec = crate::config::UserSpec {
                password_hash: Some(passwords::hash(password.as_bytes()).unwrap()),
                ..Default::default()
            };
            auth.users.insert(user.to_string(), spec);
        }
        auth
    }

    fn peer() -> Peer {
        Peer {
            ip: IpAddr::from([127, 0, 0, 1]),
            via: Protocol::Mqtt,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_broker_lets_anonymous_clients_and_guest_in() {
        let access = Access::load(&Auth::default()).unwrap();
        assert!(access.is_open());
        let anonymous = access.authenticate(peer(), Login::Anonymous).await.unwrap();
        assert!(anonymous.unrestricted());
        let guest = Login::Password {
            user: "guest",
            password: b"guest",
        };
        assert_eq!(
            access.authenticate(peer(), guest).await.unwrap().user(),
            Some("guest")
        );
        let other = Login::Password {
            user: "guest",
            password: b"nope",
        };
        assert_eq!(
            access.authenticate(peer(), other).await.unwrap_err(),
            Refused::BadCredentials
        );
    }

    #[tokio::test(start_paused = true)]
    async fn users_need_their_password_and_anonymous_clients_their_rule() {
        let mut auth = auth_with(&[("alice", "secret")]);
        let access = Access::load(&auth).unwrap();
        let good = Login::Password {
            user: "alice",
            password: b"secret",
        };
        let grant = access.authenticate(peer(), good).await.unwrap();
        assert_eq!(grant.user(), Some("alice"));
        assert!(
            grant.unrestricted(),
            "no permissions configured: everything"
        );
        for bad in [
            Login::Password {
                user: "alice",
                password: b"Secret",
            },
            Login::Password {
                user: "mallory",
                password: b"secret",
            },
        ] {
            assert_eq!(
                access.authenticate(peer(), bad).await.unwrap_err(),
                Refused::BadCredentials
            );
        }
        assert_eq!(
            access
                .authenticate(peer(), Login::Anonymous)
                .await
                .unwrap_err(),
            Refused::NotAuthorized
        );
        auth.anonymous = Anonymous::As("alice".into());
        let access = Access::load(&auth).unwrap();
        let grant = access.authenticate(peer(), Login::Anonymous).await.unwrap();
        assert_eq!(grant.user(), Some("alice"));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_delayed_more_each_time_and_forgotten_on_success() {
        let access = Access::load(&auth_with(&[("alice", "secret")])).unwrap();
        let bad = Login::Password {
            user: "alice",
            password: b"guess",
        };
        let mut delays = Vec::new();
        for _ in 0..3 {
            let started = tokio::time::Instant::now();
            access.authenticate(peer(), bad).await.unwrap_err();
            delays.push(started.elapsed());
        }
        assert!(
            delays[0] >= FIRST_DELAY
                && delays[1] >= 2 * FIRST_DELAY
                && delays[2] >= 4 * FIRST_DELAY,
            "{delays:?}"
        );
        let good = Login::Password {
            user: "alice",
            password: b"secret",
        };
        access.authenticate(peer(), good).await.unwrap();
        assert_eq!(access.count_failure(peer().ip).0, 1);
    }

    #[test]
    fn permissions_restrict_users_and_users_without_any_get_nothing() {
        let mut auth = auth_with(&[("alice", "a"), ("bob", "b")]);
        auth.permissions.insert(
            "alice".into(),
            PermissionSpec {
                publish: vec!["sensors.>".into()],
                subscribe: vec!["sensors.>".into()],
                configure: vec!["queue:orders.*".into()],
                ..PermissionSpec::default()
            },
        );
        let policy = Policy::load(&auth).unwrap();
        let alice = policy.grant("alice", Origin::Anonymous);
        assert!(alice.may_publish(&Subject::new("sensors.a").unwrap()));
        assert!(!alice.may_publish(&Subject::new("orders.a").unwrap()));
        assert!(alice.may_configure(Kind::Queue, "orders.eu"));
        assert!(!alice.may_consume(Kind::Queue, "orders.eu"));
        let bob = policy.grant("bob", Origin::Anonymous);
        assert!(!bob.unrestricted());
        assert!(!bob.may_publish(&Subject::new("sensors.a").unwrap()));
        let mut guard = Guard::new(alice);
        for _ in 0..2 {
            assert!(guard.may_publish(&Subject::new("sensors.a").unwrap(), 0));
            assert!(!guard.may_publish(&Subject::new("x").unwrap(), 0));
        }
    }

    #[test]
    fn a_delivered_request_may_be_answered_once_within_the_window() {
        let mut auth = auth_with(&[("svc", "s")]);
        auth.permissions.insert(
            "svc".into(),
            PermissionSpec {
                subscribe: vec!["svc.>".into()],
                ..PermissionSpec::default()
            },
        );
        let mut guard = Guard::new(Policy::load(&auth).unwrap().grant("svc", Origin::Anonymous));
        let inbox = Subject::new("_INBOX.abc.1").unwrap();
        assert!(!guard.may_publish(&inbox, 0));
        guard.expect_response(&inbox, 1_000);
        assert!(guard.may_publish(&inbox, 2_000));
        assert!(!guard.may_publish(&inbox, 2_001), "one response only");
        guard.expect_response(&inbox, 1_000);
        assert!(
            !guard.may_publish(&inbox, 1_000 + RESPONSE_WINDOW_MS + 1),
            "too late"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_regrants_new_permissions_and_takes_back_removed_credentials() {
        let mut auth = auth_with(&[("alice", "a"), ("bob", "b")]);
        let only = |subject: &str| PermissionSpec {
            publish: vec![subject.into()],
            ..PermissionSpec::default()
        };
        auth.permissions.insert("alice".into(), only("a.>"));
        let before = Policy::load(&auth).unwrap();
        let log_in = |user, password| Login::Password { user, password };
        let alice = before.check(log_in("alice", b"a")).await.unwrap();
        let bob = before.check(log_in("bob", b"b")).await.unwrap();
        assert!(alice.may_open_vhost() && !bob.may_open_vhost());

        auth.permissions.insert("alice".into(), only("b.>"));
        auth.users.remove("bob");
        let after = Policy::load(&auth).unwrap();
        let regranted = after.regrant(&alice).unwrap();
        assert!(regranted.may_publish(&Subject::new("b.x").unwrap()));
        assert!(!regranted.may_publish(&Subject::new("a.x").unwrap()));
        assert!(after.regrant(&bob).is_none(), "bob was removed");
        assert!(after
            .regrant(&Grant::nothing())
            .is_some_and(|g| !g.may_open_vhost()));
        assert!(
            after.regrant(&Grant::everything()).is_none(),
            "no longer open"
        );

        let changed = auth_with(&[("alice", "new")])
            .users
            .remove("alice")
            .unwrap();
        auth.users.insert("alice".into(), changed);
        assert!(
            Policy::load(&auth).unwrap().regrant(&alice).is_none(),
            "new password"
        );

        auth.anonymous = Anonymous::As("alice".into());
        let anonymous = Policy::load(&auth)
            .unwrap()
            .grant("alice", Origin::Anonymous);
        auth.anonymous = Anonymous::Refused;
        assert!(Policy::load(&auth).unwrap().regrant(&anonymous).is_none());
        let open = Policy::load(&Auth::default()).unwrap();
        assert!(open.regrant(&anonymous).is_some_and(|g| g.unrestricted()));
    }

    #[test]
    fn a_bad_rule_or_an_unknown_anonymous_user_stops_the_load() {
        let mut auth = auth_with(&[("alice", "a")]);
        auth.permissions.insert(
            "alice".into(),
            PermissionSpec {
                publish: vec!["a..b".into()],
                ..PermissionSpec::default()
            },
        );
        assert!(Policy::load(&auth).unwrap_err().contains("alice"));
        let mut auth = auth_with(&[("alice", "a")]);
        auth.anonymous = Anonymous::As("nobody".into());
        assert!(Policy::load(&auth).unwrap_err().contains("nobody"));
    }
}
