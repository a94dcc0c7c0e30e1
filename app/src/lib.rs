//! Confide's application: the page (components rendered on the server and hydrated in the
//! browser), the server functions and the types both sides share.

pub mod account;
pub mod api;
mod browser;
pub mod client;
mod components;
pub mod derived;
#[cfg(feature = "ssr")]
mod ssr;

pub use components::App;
// The shared types live in confide-core (which the server's domain uses without Leptos);
// the app names them as its own.
pub use confide_core::{
    ApiError, DEFAULT_ABSOLUTE_SECS, DEFAULT_IDLE_SECS, ERROR_HEADER_NAME, ErrorCode,
    INSECURE_SID_COOKIE_NAME, SESSION_HEADER_NAME, SESSION_ID_LEN, SID_COOKIE_NAME, SessionId,
    SessionIdError, model,
};

use leptos::prelude::*;
use leptos_meta::MetaTags;

/// localStorage key of the session id.
pub const SID_STORAGE_KEY: &str = "confide.sid";

/// The page's Content-Security-Policy: scripts only from this origin or carrying this
/// response's nonce (Leptos' hydration scripts do), wasm compilation allowed, nothing inline
/// otherwise, no framing. The server's edge sets it on every page with the nonce it minted
/// for the request (see `page_nonce`), so a page never goes without it.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// The nonce the server minted for this page's request (a request extension) becomes the
/// one Leptos puts on the page's scripts. Run as the render's additional context, after
/// Leptos provided its own.
#[cfg(feature = "ssr")]
pub fn page_nonce() {
    if let Some(nonce) = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<leptos::nonce::Nonce>().cloned())
    {
        provide_context(nonce);
    }
}

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                // A plain link, not leptos_meta's <Stylesheet>: the latter fails to hydrate
                // in erase_components (debug) builds.
                <link rel="stylesheet" id="leptos" href="/pkg/confide.css" />
                <title>"Confide"</title>
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}
