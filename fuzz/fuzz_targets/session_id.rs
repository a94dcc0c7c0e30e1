#![no_main]
//! Any string: parsing never panics, and what parses is exactly its canonical form.
use app::SessionId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Ok(id) = SessionId::parse(s) {
        assert_eq!(id.as_string(), s);
        assert_eq!(SessionId::parse(&id.as_string()), Ok(id));
    }
});
