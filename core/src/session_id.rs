//! The session handle a browser presents.
//!
//! A `SessionId` is public: it travels in a readable cookie and a header, so it names a
//! session but proves nothing. Possession is proven separately (see the server's guard).
//! The only ways to get one are parsing a canonical string or drawing a fresh random one,
//! so code holding a `SessionId` never holds an unchecked string.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr};
use uuid::Uuid;

/// Length of the canonical hyphenated form, e.g. `0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5e6f`.
pub const SESSION_ID_LEN: usize = 36;
/// A session ends after this long without a verified request, unless configured otherwise.
pub const DEFAULT_IDLE_SECS: u64 = 24 * 3600;
/// A session ends this long after it was claimed, unless configured otherwise; the id
/// cookie lives as long before the server has said how long this one has left.
pub const DEFAULT_ABSOLUTE_SECS: u64 = 30 * 24 * 3600;

/// A session's public handle: a canonical UUID v4 (v8 for a signed-in user's home).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Uuid);

/// Why a string is not a session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionIdError {
    /// Not 36 characters long.
    #[error("a session id is exactly 36 characters")]
    Length,
    /// Not lowercase hexadecimal in 8-4-4-4-12 groups.
    #[error("a session id is lowercase hexadecimal in 8-4-4-4-12 groups")]
    NotCanonical,
    /// A well-formed UUID of the wrong version or variant (for a stored id, neither a v4
    /// session nor a v8 home).
    #[error("a session id is a random (version 4, RFC 4122 variant) UUID")]
    NotVersion4,
}

impl SessionId {
    /// Accepts only the canonical lowercase hyphenated form of a v4 UUID. Every other
    /// spelling `uuid` would tolerate (braces, URNs, uppercase, no hyphens) is refused so
    /// one session cannot be addressed by two different strings.
    pub fn parse(s: &str) -> Result<Self, SessionIdError> {
        let b = s.as_bytes();
        if b.len() != SESSION_ID_LEN {
            return Err(SessionIdError::Length);
        }
        for (i, &c) in b.iter().enumerate() {
            let ok = match i {
                8 | 13 | 18 | 23 => c == b'-',
                _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            };
            if !ok {
                return Err(SessionIdError::NotCanonical);
            }
        }
        if b[14] != b'4' || !matches!(b[19], b'8' | b'9' | b'a' | b'b') {
            return Err(SessionIdError::NotVersion4);
        }
        Uuid::try_parse_ascii(b)
            .map(Self)
            .map_err(|_| SessionIdError::NotCanonical)
    }

    /// A fresh id from the platform CSPRNG (the browser's `crypto.getRandomValues` on wasm,
    /// the OS generator on the server).
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The home of a signed-in user: where their threads live, whichever browser they use.
    /// Derived from the account (`kind` is the login method, `key` the account name, e.g.
    /// issuer and subject), so creating an account twice finds the same home. It is a
    /// version 8 UUID, which `parse` refuses: no browser can name a home as its session.
    #[cfg(feature = "server")]
    pub fn home(kind: &str, key: &str) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        // Length-prefixed, so no choice of `kind` and `key` can collide with another.
        h.update(b"confide/home/v1");
        h.update((kind.len() as u64).to_be_bytes());
        h.update(kind.as_bytes());
        h.update(key.as_bytes());
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// Whether this is a user's home rather than a browser session.
    pub fn is_home(&self) -> bool {
        self.0.get_version_num() == 8
    }

    /// Any stored id, home or session, from its 16 bytes: for store backends reading their
    /// own records back. Never for input from a client.
    #[cfg(feature = "server")]
    pub fn from_stored_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }

    /// Any stored id from its canonical string (a v4 session or a v8 home); for store
    /// backends and server-side records. Never for input from a client.
    #[cfg(feature = "server")]
    pub fn parse_stored(s: &str) -> Result<Self, SessionIdError> {
        if s.len() != SESSION_ID_LEN {
            return Err(SessionIdError::Length);
        }
        let id = Uuid::try_parse(s).map_err(|_| SessionIdError::NotCanonical)?;
        if id.hyphenated().to_string() != s {
            return Err(SessionIdError::NotCanonical);
        }
        match id.get_version_num() {
            4 | 8 => Ok(Self(id)),
            _ => Err(SessionIdError::NotVersion4),
        }
    }

    /// The canonical string form, for the cookie, the header and storage keys.
    pub fn as_string(&self) -> String {
        self.0.hyphenated().to_string()
    }

    /// The first 8 characters: enough for a person to tell sessions apart on screen.
    pub fn short(&self) -> String {
        let mut s = self.as_string();
        s.truncate(8);
        s
    }

    /// The 16 raw bytes, for stores and hashing.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// A tag for logs: the first 8 hex digits of SHA-256(id). It lets an operator follow one
    /// session through the logs without the logs ever holding a usable handle.
    #[cfg(feature = "server")]
    pub fn log_tag(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.as_bytes());
        digest[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

// Debug never prints the id itself, so `{:?}` in a log line or a panic message is harmless.
impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[cfg(feature = "server")]
        return write!(f, "SessionId(#{})", self.log_tag());
        #[cfg(not(feature = "server"))]
        return f.write_str("SessionId(..)");
    }
}

impl FromStr for SessionId {
    type Err = SessionIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "server")]
    #[test]
    fn homes_are_stable_distinct_and_never_parse_as_sessions() {
        let a = SessionId::home("password", "alice");
        assert_eq!(a, SessionId::home("password", "alice"));
        assert_ne!(a, SessionId::home("password", "bob"));
        assert_ne!(a, SessionId::home("oidc", "alice"));
        // Length prefixes keep ("a", "b\0c") and ("a\0b", "c") apart.
        assert_ne!(SessionId::home("a", "b\0c"), SessionId::home("a\0b", "c"));
        assert!(a.is_home());
        assert!(!SessionId::random().is_home());
        assert_eq!(
            SessionId::parse(&a.as_string()),
            Err(SessionIdError::NotVersion4)
        );
        assert_eq!(SessionId::parse_stored(&a.as_string()), Ok(a));
        assert_eq!(SessionId::from_stored_bytes(*a.as_bytes()), a);
        let s = SessionId::random();
        assert_eq!(SessionId::parse_stored(&s.as_string()), Ok(s));
        assert!(SessionId::parse_stored(&s.as_string().to_uppercase()).is_err());
    }

    const VALID: &str = "0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5e6f";

    #[test]
    fn accepts_canonical_v4() {
        for s in [
            VALID,
            "00000000-0000-4000-8000-000000000000",
            "ffffffff-ffff-4fff-bfff-ffffffffffff",
            "12345678-9abc-4def-a123-456789abcdef",
        ] {
            let id = SessionId::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(id.as_string(), s, "round trip keeps the exact string");
        }
    }

    #[test]
    fn rejects_everything_else() {
        let long = "a".repeat(10_000);
        let cases: &[(&str, SessionIdError)] = &[
            ("", SessionIdError::Length),
            (
                "0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5e6",
                SessionIdError::Length,
            ), // 35
            (
                "0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5e6f0",
                SessionIdError::Length,
            ), // 37
            (&long, SessionIdError::Length),
            (
                "{0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5e6f}",
                SessionIdError::Length,
            ),
            ("0b3e5c1e8f2a4c6d9e7f1a2b3c4d5e6f", SessionIdError::Length), // simple form
            (
                "0B3E5C1E-8F2A-4C6D-9E7F-1A2B3C4D5E6F",
                SessionIdError::NotCanonical,
            ),
            (
                "0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5e6F",
                SessionIdError::NotCanonical,
            ),
            (
                "0b3e5c1g-8f2a-4c6d-9e7f-1a2b3c4d5e6f",
                SessionIdError::NotCanonical,
            ),
            (
                "0b3e5c1e_8f2a-4c6d-9e7f-1a2b3c4d5e6f",
                SessionIdError::NotCanonical,
            ),
            (
                "0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5e6 ",
                SessionIdError::NotCanonical,
            ),
            (
                " 0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5e6",
                SessionIdError::NotCanonical,
            ),
            (
                "0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5eé",
                SessionIdError::NotCanonical,
            ),
            (
                "0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5e\0f",
                SessionIdError::NotCanonical,
            ),
            (
                "00000000-0000-0000-0000-000000000000",
                SessionIdError::NotVersion4,
            ), // nil
            (
                "ffffffff-ffff-ffff-ffff-ffffffffffff",
                SessionIdError::NotVersion4,
            ), // max
            (
                "0b3e5c1e-8f2a-1c6d-9e7f-1a2b3c4d5e6f",
                SessionIdError::NotVersion4,
            ), // v1
            (
                "0b3e5c1e-8f2a-7c6d-9e7f-1a2b3c4d5e6f",
                SessionIdError::NotVersion4,
            ), // v7
            (
                "0b3e5c1e-8f2a-4c6d-7e7f-1a2b3c4d5e6f",
                SessionIdError::NotVersion4,
            ), // NCS variant
            (
                "0b3e5c1e-8f2a-4c6d-ce7f-1a2b3c4d5e6f",
                SessionIdError::NotVersion4,
            ), // MS variant
        ];
        for (input, want) in cases {
            assert_eq!(SessionId::parse(input), Err(*want), "input {input:?}");
        }
    }

    #[test]
    fn random_ids_are_valid_and_distinct() {
        let a = SessionId::random();
        let b = SessionId::random();
        assert_ne!(a, b);
        assert_eq!(SessionId::parse(&a.as_string()), Ok(a));
    }

    #[test]
    fn debug_does_not_reveal_the_id() {
        let id = SessionId::parse(VALID).unwrap();
        let dbg = format!("{id:?}");
        assert!(!dbg.contains(&id.short()), "{dbg}");
    }

    #[test]
    fn serde_validates() {
        let ok: SessionId = serde_json::from_str(&format!("\"{VALID}\"")).unwrap();
        assert_eq!(ok.as_string(), VALID);
        assert!(serde_json::from_str::<SessionId>("\"not-a-uuid\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), format!("\"{VALID}\""));
    }
}
