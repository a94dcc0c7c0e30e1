//! The browser half of the session protocol.
//!
//! The id lives in localStorage (the source of truth for this browser profile) and is
//! mirrored in the `confide_sid` cookie so the server sees it on page loads. Every server
//! function goes through `SessionClient`, which adds the `X-Confide-Session` header: no call
//! can forget it.

use crate::SessionId;
use futures::{Sink, Stream};
#[cfg(feature = "hydrate")]
use leptos::server_fn::response::ClientRes;
use leptos::server_fn::{
    Bytes,
    client::{Client, browser::BrowserClient},
    error::FromServerFnError,
    request::browser::BrowserRequest,
    response::browser::BrowserResponse,
};
use std::{cell::RefCell, future::Future};

thread_local! {
    static CURRENT: RefCell<Option<SessionId>> = const { RefCell::new(None) };
}

/// The id that outgoing server-function calls carry.
pub fn current_session() -> Option<SessionId> {
    CURRENT.with(|c| *c.borrow())
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn set_current_session(id: SessionId) {
    CURRENT.with(|c| *c.borrow_mut() = Some(id));
}

/// The client of every server function: the browser's own, with the session header added.
pub struct SessionClient;

impl<E, IS, OS> Client<E, IS, OS> for SessionClient
where
    E: FromServerFnError,
    IS: FromServerFnError,
    OS: FromServerFnError,
{
    type Request = BrowserRequest;
    type Response = BrowserResponse;

    fn send(req: Self::Request) -> impl Future<Output = Result<Self::Response, E>> + Send {
        let id = current_session();
        if let Some(id) = id {
            req.headers()
                .set(crate::SESSION_HEADER_NAME, &id.as_string());
        }
        let sent = <BrowserClient as Client<E, IS, OS>>::send(req);
        async move {
            let res = sent.await?;
            // The session ended (elsewhere, or by time) or another tab switched this
            // browser to a new one: the page moves on to the browser's session now rather
            // than fail each call after this one.
            // Those answers are 401 or 403; the headers are read for those alone.
            #[cfg(feature = "hydrate")]
            if matches!(ClientRes::<E>::status(&res), 401 | 403)
                && let Some(code) = res.generate_headers().get(crate::ERROR_HEADER_NAME)
                && crate::ErrorCode::from_name(code.to_str().unwrap_or_default()).session_gone()
                && id.is_some()
                && id == current_session()
            {
                browser::restart_session();
            }
            Ok(res)
        }
    }

    #[allow(clippy::type_complexity)]
    fn open_websocket(
        path: &str,
    ) -> impl Future<
        Output = Result<
            (
                impl Stream<Item = Result<Bytes, Bytes>> + Send + 'static,
                impl Sink<Bytes> + Send + 'static,
            ),
            E,
        >,
    > + Send {
        <BrowserClient as Client<E, IS, OS>>::open_websocket(path)
    }

    fn spawn(future: impl Future<Output = ()> + Send + 'static) {
        <BrowserClient as Client<E, IS, OS>>::spawn(future)
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::*;
    use crate::{
        ApiError, ErrorCode, api,
        components::{SessionCtx, SessionState},
    };
    use gloo_storage::{LocalStorage, Storage};
    use leptos::prelude::{Set, WithUntracked};
    use wasm_bindgen::JsCast;

    const STORAGE_KEY: &str = crate::SID_STORAGE_KEY;
    /// Set (and cleared with everything else at once) by a tab that has just forgotten this
    /// browser: the other tabs hear of the setting. A cleared storage alone could as well
    /// be a sign-out.
    const FORGOTTEN_KEY: &str = "confide.forgotten";
    /// Cookie lifetime before the server has told us the real one (the default absolute
    /// lifetime); `remember` rewrites it after session start.
    const DEFAULT_MAX_AGE: u64 = crate::DEFAULT_ABSOLUTE_SECS;

    fn html_document() -> Option<web_sys::HtmlDocument> {
        web_sys::window()?
            .document()?
            .dyn_into::<web_sys::HtmlDocument>()
            .ok()
    }

    fn read_cookie(name: &str) -> Option<String> {
        let all = html_document()?.cookie().ok()?;
        all.split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    }

    fn is_https() -> bool {
        web_sys::window()
            .and_then(|w| w.location().protocol().ok())
            .as_deref()
            == Some("https:")
    }

    /// Where cookies can be `Secure` (https, loopback) the id cookie is `__Host-` prefixed, as
    /// the server expects (it decides the same way); elsewhere the server runs with
    /// `insecure_cookies` and uses the plain name.
    fn secure_context() -> bool {
        web_sys::window().is_some_and(|w| w.is_secure_context())
    }

    fn cookie_name() -> &'static str {
        if secure_context() {
            crate::SID_COOKIE_NAME
        } else {
            crate::INSECURE_SID_COOKIE_NAME
        }
    }

    fn write_cookie(id: &SessionId, max_age: u64) {
        let secure = if secure_context() || is_https() {
            "; Secure"
        } else {
            ""
        };
        let value = format!(
            "{}={}; Path=/; SameSite=Strict; Max-Age={max_age}{secure}",
            cookie_name(),
            id.as_string()
        );
        if let Some(doc) = html_document() {
            let _ = doc.set_cookie(&value);
        }
    }

    /// Removes both spellings of the id cookie that this site can remove.
    fn delete_cookies() {
        if let Some(doc) = html_document() {
            for name in [crate::SID_COOKIE_NAME, crate::INSECURE_SID_COOKIE_NAME] {
                let secure = if name.starts_with("__Host-") {
                    "; Secure"
                } else {
                    ""
                };
                let _ = doc.set_cookie(&format!(
                    "{name}=; Path=/; SameSite=Strict; Max-Age=0{secure}"
                ));
            }
        }
    }

    fn persist(id: &SessionId, max_age: u64) {
        // gloo-storage JSON-encodes: the stored item is "\"<uuid>\"".
        let _ = LocalStorage::set(STORAGE_KEY, id.as_string());
        write_cookie(id, max_age);
        set_current_session(*id);
    }

    /// The id localStorage holds now (another tab may have changed it).
    pub fn stored_session_id() -> Option<SessionId> {
        LocalStorage::get::<String>(STORAGE_KEY)
            .ok()
            .and_then(|s| SessionId::parse(&s).ok())
    }

    /// The id this browser uses: localStorage first, then the cookie, else a fresh one.
    /// Both places hold it afterwards.
    pub fn ensure_session_id() -> SessionId {
        let stored = LocalStorage::get::<String>(STORAGE_KEY)
            .ok()
            .and_then(|s| SessionId::parse(&s).ok());
        let id = stored
            .or_else(|| read_cookie(cookie_name()).and_then(|s| SessionId::parse(&s).ok()))
            .unwrap_or_else(SessionId::random);
        persist(&id, DEFAULT_MAX_AGE);
        id
    }

    /// Drops the current id for a fresh one (after the server refused the old one).
    pub fn replace_session_id() -> SessionId {
        let id = SessionId::random();
        persist(&id, DEFAULT_MAX_AGE);
        id
    }

    /// After a sign-in: this browser now uses the session the server created (its proof
    /// came as a cookie); a fresh page load starts everything under it.
    pub fn adopt_session_and_reload(id: &SessionId) {
        persist(id, DEFAULT_MAX_AGE);
        // Replace, not push: the callback URL (with its used code) must not stay in history.
        if let Some(w) = web_sys::window() {
            let _ = w.location().replace("/");
        }
    }

    /// After a sign-out: drop every trace here and start over on a fresh page.
    pub fn forget_and_restart() {
        LocalStorage::clear();
        delete_cookies();
        if let Some(w) = web_sys::window() {
            let _ = w.location().assign("/");
        }
    }

    /// After "forget this browser": as after a sign-out, and the other tabs say why their
    /// chats are gone.
    pub fn forgotten_restart() {
        let _ = LocalStorage::set(FORGOTTEN_KEY, true);
        forget_and_restart();
    }

    /// Re-writes the cookie with the lifetime the server reported.
    pub fn remember(id: &SessionId, remaining_secs: u64) {
        persist(id, remaining_secs.max(1));
    }

    thread_local! {
        /// The page's session state, once its session has started the first time.
        static SESSION: std::cell::Cell<Option<SessionCtx>> = const { std::cell::Cell::new(None) };
    }

    /// Starts the session again under the id the browser holds now, once the page's session
    /// is gone: another tab signed in, signed out or forgot this browser (and stored the new
    /// id), or the session ended. The page reloads what it shows under that session, and
    /// what the person was typing stays.
    pub fn restart_session() {
        let Some(ctx) = SESSION.with(|s| s.get()) else {
            return;
        };
        // Once: a start already running picks the id it needs.
        if !ctx
            .state
            .with_untracked(|s| matches!(s, SessionState::Ready(_)))
        {
            return;
        }
        ctx.state.set(SessionState::Starting);
        leptos::task::spawn_local(start_session(ctx));
    }

    /// Follows the other tabs: when one of them stores another session id, this page moves
    /// to it at once instead of failing on its next call.
    fn follow_other_tabs() {
        use wasm_bindgen::closure::Closure;
        let on_storage =
            Closure::<dyn FnMut(web_sys::StorageEvent)>::new(|ev: web_sys::StorageEvent| {
                let Some(key) = ev.key() else {
                    return;
                };
                // Another tab forgot this browser: this tab's session and its chats are gone
                // too, and the person is told so here as well.
                if key == FORGOTTEN_KEY && ev.new_value().is_some() {
                    if let Some(ctx) = SESSION.with(|s| s.get()) {
                        ctx.notice.set(Some(FORGOTTEN_ELSEWHERE.into()));
                    }
                    return;
                }
                // A cleared storage (a sign-out or a forgetting in another tab) is followed
                // by the new id that tab stores as it starts again: that is the change to
                // follow.
                if key != STORAGE_KEY {
                    return;
                }
                let stored = stored_session_id();
                if stored.is_some() && stored != current_session() {
                    restart_session();
                }
            });
        if let Some(w) = web_sys::window() {
            let _ =
                w.add_event_listener_with_callback("storage", on_storage.as_ref().unchecked_ref());
        }
        // It listens as long as the page lives.
        on_storage.forget();
    }

    /// Runs the start of the session protocol: pick the id, call session start, recover from
    /// the server's refusals.
    pub async fn start_session(ctx: SessionCtx) {
        if SESSION.with(|s| s.replace(Some(ctx))).is_none() {
            follow_other_tabs();
        }
        let mut id = ensure_session_id();
        let mut mismatches = 0;
        let mut hiccups = 0u32;
        for attempt in 0..9u32 {
            match api::start_session().await {
                Ok(info) => {
                    remember(&id, info.remaining_secs);
                    ctx.state.set(SessionState::Ready(info));
                    // After the page has taken in the new state.
                    leptos::prelude::set_timeout(
                        crate::browser::focus_composer_on_load,
                        std::time::Duration::ZERO,
                    );
                    return;
                }
                Err(e) => match e.code {
                    // Someone else's id (or our proof is gone): never retry it, start afresh.
                    // Another tab may have just signed in and stored a new id: adopt it, once,
                    // rather than throwing away that sign-in.
                    ErrorCode::SessionEnded | ErrorCode::SessionProofMismatch
                        if mismatches == 0 && stored_session_id().is_some_and(|s| s != id) =>
                    {
                        mismatches += 1;
                        id = ensure_session_id();
                    }
                    ErrorCode::SessionProofMismatch
                    | ErrorCode::SessionEnded
                    | ErrorCode::InvalidSessionId
                    | ErrorCode::NoSession => {
                        id = replace_session_id();
                        ctx.notice.set(Some(why_replaced(e.code).into()));
                    }
                    // Another tab may have switched ids: adopt what storage holds now, once.
                    ErrorCode::SessionMismatch if mismatches == 0 => {
                        mismatches += 1;
                        id = ensure_session_id();
                    }
                    ErrorCode::SessionMismatch => {
                        id = replace_session_id();
                        ctx.notice.set(Some(why_replaced(e.code).into()));
                    }
                    // A concurrent claim (another tab) won; its proof cookie is ours too, once
                    // that tab's answer lands.
                    ErrorCode::SessionClaimed if attempt < 2 => {
                        crate::browser::sleep_ms(150 * (attempt + 1)).await
                    }
                    // Still no proof: the claim's answer never reached this browser (a page left
                    // while its session was starting), so the id can never be ours. Start afresh
                    // rather than give up.
                    ErrorCode::SessionClaimed => {
                        id = replace_session_id();
                        ctx.notice.set(Some(why_replaced(e.code).into()));
                    }
                    // A busy or briefly unreachable server is not a reason to give up on the
                    // page: try again a few times, further apart each time.
                    ErrorCode::StoreUnavailable
                    | ErrorCode::Timeout
                    | ErrorCode::RequestTimeout
                    | ErrorCode::Overloaded
                    | ErrorCode::RateLimited
                    | ErrorCode::Network
                        if hiccups < 4 =>
                    {
                        hiccups += 1;
                        crate::browser::sleep_ms(250 << hiccups).await;
                    }
                    _ => {
                        ctx.state.set(SessionState::Failed(e));
                        return;
                    }
                },
            }
        }
        ctx.state.set(SessionState::Failed(ApiError::new(
            ErrorCode::Internal,
            "could not start a session; reload the page to try again",
        )));
    }

    const FORGOTTEN_ELSEWHERE: &str = "This browser was forgotten in another tab: the chats and notes of its session were deleted, and a new session was started.";

    /// What the person is told when their session had to be replaced: what happened, and
    /// what it means for the chats they had.
    fn why_replaced(code: ErrorCode) -> &'static str {
        match code {
            ErrorCode::SessionEnded => {
                "Your previous session had ended (it was idle too long, reached its time limit, or was ended from another browser), so a new one was started. Chats of the ended session cannot be opened again."
            }
            ErrorCode::SessionProofMismatch | ErrorCode::NoSession => {
                "This browser's session was replaced; chats of the old session cannot be recovered without it. Its cookies were cleared or blocked, and only they prove the old session is yours, so a new session was started."
            }
            ErrorCode::SessionClaimed => {
                "This browser's session was replaced: it was started moments ago, but the cookie that proves it is yours never reached this browser (a page left while it was starting, or cookies blocked). A new session was started."
            }
            _ => {
                "This browser's session was replaced; what it had stored was not a valid session, so a new session was started."
            }
        }
    }
}

#[cfg(feature = "hydrate")]
pub use browser::{adopt_session_and_reload, forget_and_restart, forgotten_restart, start_session};

/// The server never starts a session for the page nor stores its id: these only have to
/// compile to the same names (effects and handlers run in the browser alone).
#[cfg(not(feature = "hydrate"))]
mod inert {
    use crate::{SessionId, components::SessionCtx};
    /// Starts the session in the browser; nothing to do on the server.
    pub async fn start_session(_ctx: SessionCtx) {}
    /// Switches the browser to a signed-in session; nothing to do on the server.
    pub fn adopt_session_and_reload(_id: &SessionId) {}
    /// Forgets the browser's session and starts over; nothing to do on the server.
    pub fn forget_and_restart() {}
    /// Forgets this browser and starts over; nothing to do on the server.
    pub fn forgotten_restart() {}
}

#[cfg(not(feature = "hydrate"))]
pub use inert::*;
