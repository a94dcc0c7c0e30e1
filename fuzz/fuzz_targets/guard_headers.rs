#![no_main]
//! Arbitrary session headers and cookies through the guard: never a panic; a request it
//! lets through names a canonical id, and a page load is never refused.
use confide_core::{GuardConfig, Lifetimes, SessionStore, guard};
use libfuzzer_sys::fuzz_target;
use std::{sync::Arc, sync::LazyLock};

static RT: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());

fuzz_target!(|data: &[u8]| {
    let mut headers = http::HeaderMap::new();
    // Split the input into header values: session header, then cookie headers.
    for (i, part) in data.split(|b| *b == b'\n').take(4).enumerate() {
        let Ok(v) = http::HeaderValue::from_bytes(part) else { continue };
        let name = if i == 0 { "x-confide-session" } else { "cookie" };
        headers.append(name, v);
    }
    let store: Arc<dyn SessionStore> = Arc::new(server::MemoryStore::new(Lifetimes::default()));
    let cfg = GuardConfig { lifetimes: Lifetimes::default(), secure_cookies: true };
    RT.block_on(async {
        for mode in [guard::Mode::Api, guard::Mode::Stream, guard::Mode::Page] {
            match guard::check(&store, &cfg, &headers, mode).await {
                Ok(outcome) => {
                    if let Some(s) = outcome.session {
                        assert_eq!(app::SessionId::parse(&s.id().as_string()), Ok(*s.id()));
                    }
                }
                Err(e) => assert!(mode != guard::Mode::Page, "a page load was refused: {e:?}"),
            }
        }
    });
});
