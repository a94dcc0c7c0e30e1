//! Passwords: the policy, one spelling of usernames, and Argon2id run off the async
//! workers.

use super::Auth;
use crate::{ApiError, SessionId, model::SignInMethod};
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};

/// Shortest password allowed, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password allowed, in characters.
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

/// Usernames are compared in one spelling: trimmed, lowercase, a small alphabet.
pub fn normalize_username(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim().to_lowercase();
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_USERNAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(name)
    } else {
        Err(ApiError::invalid_input(format!(
            "a username is 1 to {MAX_USERNAME_CHARS} characters of a-z, 0-9, '.', '_', '-', '@'"
        )))
    }
}

/// Refuses a password shorter than `MIN_PASSWORD_CHARS` or longer than `MAX_PASSWORD_CHARS`.
pub fn check_password_policy(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(ApiError::invalid_input(format!(
            "a password is {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// Argon2id with the crate's defaults (19 MiB, 2 passes: the OWASP baseline).
/// What an unknown user's password is checked against, so that "no such user" costs the
/// same Argon2 work as "wrong password". A constant with `Argon2::default()`'s parameters
/// (`dummy_hash_costs_what_a_real_one_does` holds them equal) rather than a hash made at
/// start-up, which would add ~30 ms to every cold start.
pub(super) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$tSH+jzfysn9wuEUrDae4lw$jGmH6hrvo8DdTpXFSjWvCch1R+WAkNelQpnwjsDvIG0";

/// An Argon2id hash of `password` with a fresh random salt, in PHC string form.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| ApiError::internal())?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| ApiError::internal())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| ApiError::internal())
}

pub(super) fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The home of the password account with this (normalised) username.
pub fn password_home(username: &str) -> SessionId {
    SessionId::home(SignInMethod::Password.as_str(), username)
}

impl Auth {
    /// Runs Argon2 off the async workers (it takes tens of milliseconds of CPU by design),
    /// a bounded number at a time.
    pub(super) async fn argon<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| ApiError::internal())?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| ApiError::internal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_costs_what_a_real_one_does() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let fresh_hash = hash_password("x").unwrap();
        let fresh = PasswordHash::new(&fresh_hash).unwrap();
        assert_eq!(dummy.algorithm, fresh.algorithm);
        assert_eq!(dummy.version, fresh.version);
        assert_eq!(dummy.params, fresh.params);
        assert!(!verify_password("", DUMMY_HASH));
    }

    #[test]
    fn usernames_have_one_spelling() {
        assert_eq!(normalize_username("  Alice ").unwrap(), "alice");
        assert_eq!(normalize_username("a.b_c-d@e").unwrap(), "a.b_c-d@e");
        for bad in ["", "   ", "has space", "ünï", "a/b", &"x".repeat(65)] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(h, hash_password("correct horse").unwrap(), "salted");
    }
}
