//! Confide's application: the page (components rendered on the server and hydrated in the
//! browser), the server functions and the types both sides share.

pub mod api;
pub mod client;
mod components;
mod error;
mod session_id;
pub mod model;
#[cfg(feature = "ssr")]
pub mod server;

pub use components::App;
pub use error::{ApiError, ErrorCode};
pub use session_id::{SESSION_ID_LEN, SessionId, SessionIdError};

use leptos::prelude::*;
use leptos_meta::MetaTags;

/// Name of the readable cookie that mirrors the browser's session id.
pub const SID_COOKIE_NAME: &str = "confide_sid";
/// Header carrying the session id on every server-function call.
pub const SESSION_HEADER_NAME: &str = "x-confide-session";
/// localStorage key of the session id.
pub const SID_STORAGE_KEY: &str = "confide.sid";

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
