//! Users for the access-control tests: a password file written by the real
//! `dwbroker passwd` command, and rule lists.

use std::path::{Path, PathBuf};

/// Writes `users` into the password file `users.pw` in `dir` with the
/// `dwbroker passwd` command (users already in it are updated).
pub fn password_file(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let file = dir.join("users.pw");
    for (user, password) in users {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_dwbroker"))
            .arg("passwd")
            .arg(&file)
            .arg(user)
            .arg("--password")
            .arg(password)
            .status()
            .expect("dwbroker passwd runs");
        assert!(status.success(), "dwbroker passwd {user}: {status}");
    }
    file
}

/// Rule patterns as the configuration holds them.
pub fn rules(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
