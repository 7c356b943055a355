//! The password file: one `user:hash` line per user, the hash an argon2id PHC
//! string (`$argon2id$v=19$m=...`), as `dwbroker passwd` writes it.
//!
//! Owns: reading and writing the file, hashing a new password and verifying one
//! against its hash (argon2's own comparison, constant time).
//! Refuses: permissions, and passwords in plain text in the file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

/// A user name as the file may hold it: no `:` (the separator), no whitespace or
/// control characters, 1 to 255 bytes.
pub(crate) fn valid_user(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && !name
            .chars()
            .any(|c| c == ':' || c.is_whitespace() || c.is_control())
}

/// An argon2id PHC string for `password`, with a fresh salt and argon2's default
/// cost (19 MiB, 2 passes: OWASP's recommendation).
pub(crate) fn hash(password: &[u8]) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `hash` (a PHC string, already checked by [`check_hash`]) is the hash of
/// `password`.
pub(crate) fn verify(hash: &str, password: &[u8]) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password, &h).is_ok())
}

/// Whether `hash` is an argon2id PHC string this build can verify.
pub(crate) fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| format!("not a PHC hash string: {e}"))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "the hash is {}, not argon2id (write it with `dwbroker passwd`)",
            parsed.algorithm
        ));
    }
    Ok(())
}

/// What a password file keeps of one user's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// The argon2id PHC string (PLAIN-style logins).
    pub(crate) hash: String,
    /// The SCRAM-SHA-256 verifier (MQTT 5 enhanced authentication), if the
    /// line has one.
    pub(crate) scram: Option<String>,
}

/// The users of a password file, by name.
pub(crate) fn read(path: &Path) -> Result<BTreeMap<String, Stored>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("password file {}: {e}", path.display()))
}

/// Lines are `user:<argon2id PHC string>`, optionally followed by a space and the
/// SCRAM-SHA-256 verifier of the same password.
fn parse(text: &str) -> Result<BTreeMap<String, Stored>, String> {
    let mut users = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, rest)) = line.split_once(':') else {
            return Err(format!("line {}: not `user:hash`", n + 1));
        };
        if !valid_user(user) {
            return Err(format!("line {}: not a valid user name", n + 1));
        }
        let mut fields = rest.split_whitespace();
        let hash = fields.next().unwrap_or_default();
        check_hash(hash).map_err(|e| format!("line {} ({user}): {e}", n + 1))?;
        let scram = fields.next().map(str::to_owned);
        if let Some(verifier) = &scram {
            super::scram::Verifier::parse(verifier)
                .map_err(|e| format!("line {} ({user}): {e}", n + 1))?;
        }
        if fields.next().is_some() {
            return Err(format!(
                "line {} ({user}): more than a hash and a verifier",
                n + 1
            ));
        }
        let stored = Stored {
            hash: hash.to_owned(),
            scram,
        };
        if users.insert(user.to_owned(), stored).is_some() {
            return Err(format!("line {}: {user} appears twice", n + 1));
        }
    }
    Ok(users)
}

/// Creates `path` or sets `user`'s password in it, keeping every other line.
/// The file is written whole beside the old one and renamed over it, mode 0600.
pub(crate) fn set(path: &Path, user: &str, password: &[u8]) -> Result<(), String> {
    if !valid_user(user) {
        return Err(format!(
            "`{user}` is not a valid user name (1 to 255 bytes, no `:`, whitespace or control characters)"
        ));
    }
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    parse(&old).map_err(|e| format!("{}: {e}", path.display()))?;
    let scram = super::scram::Verifier::new(password);
    let line = format!("{user}:{} {scram}", hash(password)?);
    let mut replaced = false;
    let mut lines: Vec<String> = old
        .lines()
        .map(|l| match l.trim().split_once(':') {
            Some((u, _)) if u == user && !l.trim().starts_with('#') => {
                replaced = true;
                line.clone()
            }
            _ => l.to_owned(),
        })
        .collect();
    if !replaced {
        lines.push(line);
    }
    let mut text = lines.join("\n");
    text.push('\n');
    let temporary = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_adds_and_replaces_users_and_verify_checks_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.pw");
        set(&path, "alice", b"first").unwrap();
        set(&path, "bob", b"bobs").unwrap();
        set(&path, "alice", b"second").unwrap();
        let users = read(&path).unwrap();
        assert_eq!(users.len(), 2);
        assert!(verify(&users["alice"].hash, b"second"));
        assert!(!verify(&users["alice"].hash, b"first"));
        assert!(verify(&users["bob"].hash, b"bobs"));
        assert!(users["alice"].hash.starts_with("$argon2id$"));
        let scram = users["alice"].scram.as_deref().unwrap();
        assert!(scram.starts_with("SCRAM-SHA-256$4096:"), "{scram}");
        // A file written before verifiers were kept still reads.
        let old = format!("carol:{}\n", hash(b"c").unwrap());
        assert_eq!(parse(&old).unwrap()["carol"].scram, None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn malformed_files_and_names_are_refused() {
        assert!(parse("# comment\n\n").unwrap().is_empty());
        assert!(parse("alice").unwrap_err().contains("line 1"));
        assert!(parse("alice:plaintext").unwrap_err().contains("PHC"));
        let h = hash(b"x").unwrap();
        assert!(parse(&format!("a:{h}\na:{h}\n"))
            .unwrap_err()
            .contains("twice"));
        assert!(!valid_user(""));
        assert!(!valid_user("a:b"));
        assert!(!valid_user("a b"));
        assert!(valid_user("alice@example"));
    }
}
