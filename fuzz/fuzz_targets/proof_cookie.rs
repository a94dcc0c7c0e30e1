#![no_main]
//! Any cookie value: hashing never panics and accepts only 43-character base64url.
use confide_core::Proof;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if Proof::hash_cookie_value(s).is_some() {
        assert_eq!(s.len(), 43);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
});
