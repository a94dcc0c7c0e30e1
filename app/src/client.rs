//! The browser half of the session protocol.
//!
//! The id lives in localStorage (the source of truth for this browser profile) and is
//! mirrored in the `confide_sid` cookie so the server sees it on page loads. Every server
//! function goes through `SessionClient`, which adds the `X-Confide-Session` header: no call
//! can forget it.

use crate::SessionId;
use futures::{Sink, Stream};
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
        if let Some(id) = current_session() {
            req.headers()
                .set(crate::SESSION_HEADER_NAME, &id.as_string());
        }
        <BrowserClient as Client<E, IS, OS>>::send(req)
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
    use gloo_storage::{LocalStorage, Storage};
    use wasm_bindgen::JsCast;

    const STORAGE_KEY: &str = crate::SID_STORAGE_KEY;
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

    /// Navigates the whole page (to a provider's sign-in page, or home).
    pub fn go(url: &str) {
        if let Some(w) = web_sys::window() {
            let _ = w.location().assign(url);
        }
    }

    /// The current page's query parameter `name`.
    pub fn query_param(name: &str) -> Option<String> {
        let search = web_sys::window()?.location().search().ok()?;
        web_sys::UrlSearchParams::new_with_str(&search)
            .ok()?
            .get(name)
    }

    /// After "forget this browser": drop every trace here and start over on a fresh page.
    pub fn forget_and_restart() {
        LocalStorage::clear();
        delete_cookies();
        if let Some(w) = web_sys::window() {
            let _ = w.location().assign("/");
        }
    }

    /// Re-writes the cookie with the lifetime the server reported.
    pub fn remember(id: &SessionId, remaining_secs: u64) {
        persist(id, remaining_secs.max(1));
    }

    pub fn mark_hydrated() {
        if let Some(body) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.body())
        {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    }

    thread_local! {
        static EVENTS: std::cell::RefCell<Option<web_sys::EventSource>> = const { std::cell::RefCell::new(None) };
    }

    /// Opens (once) the session's live event stream and feeds each event to `apply`. The
    /// browser reconnects by itself. Every time the stream opens, the first time included,
    /// we ask for a resync: events sent before it was open are lost, and the page's first
    /// load can race the stream (a reply may end before a slow stream connects).
    pub fn open_event_stream(apply: impl Fn(crate::model::ChatEvent) + 'static) {
        use wasm_bindgen::closure::Closure;
        if EVENTS.with(|e| e.borrow().is_some()) {
            return;
        }
        let Ok(source) = web_sys::EventSource::new("/api/events") else {
            return;
        };
        let apply = std::rc::Rc::new(apply);
        let on_message = {
            let apply = apply.clone();
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
                if let Some(text) = ev.data().as_string()
                    && let Ok(event) = serde_json::from_str::<crate::model::ChatEvent>(&text)
                {
                    apply(event);
                }
            })
        };
        let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            apply(crate::model::ChatEvent::Resync);
        });
        source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        // The stream lives as long as the page.
        on_message.forget();
        on_open.forget();
        EVENTS.with(|e| *e.borrow_mut() = Some(source));
    }

    /// Saves `content` as a file through a temporary object URL.
    pub fn download(filename: &str, mime: &str, content: &str) {
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
            return;
        };
        let parts = js_sys_array(content);
        let opts = web_sys::BlobPropertyBag::new();
        opts.set_type(mime);
        let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts) else {
            return;
        };
        let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
            return;
        };
        if let Ok(a) = doc.create_element("a") {
            let _ = a.set_attribute("href", &url);
            let _ = a.set_attribute("download", filename);
            if let Some(a) = a.dyn_ref::<web_sys::HtmlElement>() {
                a.click();
            }
        }
        let _ = web_sys::Url::revoke_object_url(&url);
    }

    fn js_sys_array(s: &str) -> wasm_bindgen::JsValue {
        let arr = web_sys::js_sys::Array::new();
        arr.push(&wasm_bindgen::JsValue::from_str(s));
        arr.into()
    }

    const THEME_KEY: &str = "confide.theme";

    /// On load, the composer takes the focus, so typing starts the conversation: only when
    /// nothing else has it (the person may already be somewhere) and only with a fine
    /// pointer, where there is a physical keyboard (a phone would pop its on-screen
    /// keyboard over the page).
    pub fn focus_composer_on_load() {
        let Some(window) = web_sys::window() else {
            return;
        };
        let fine = window
            .match_media("(pointer: fine)")
            .ok()
            .flatten()
            .is_some_and(|m| m.matches());
        let Some(document) = window.document() else {
            return;
        };
        let idle = document
            .active_element()
            .is_none_or(|e| e.tag_name().eq_ignore_ascii_case("body"));
        if !(fine && idle) {
            return;
        }
        if let Some(el) = document
            .query_selector("[data-testid=composer]")
            .ok()
            .flatten()
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = el.focus();
        }
    }

    /// Applies the theme saved in this browser, if any.
    pub fn apply_saved_theme() -> Option<String> {
        let theme = LocalStorage::get::<String>(THEME_KEY)
            .ok()
            .filter(|t| t == "light" || t == "dark")?;
        set_theme_attr(&theme);
        Some(theme)
    }

    /// Switches between light and dark and remembers the choice.
    pub fn toggle_theme() -> String {
        let current = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
            .and_then(|e| e.get_attribute("data-theme"))
            .unwrap_or_else(|| {
                let dark = web_sys::window()
                    .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
                    .is_some_and(|m| m.matches());
                if dark { "dark".into() } else { "light".into() }
            });
        let next = if current == "dark" { "light" } else { "dark" }.to_owned();
        set_theme_attr(&next);
        let _ = LocalStorage::set(THEME_KEY, &next);
        next
    }

    fn set_theme_attr(theme: &str) {
        if let Some(el) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
        {
            let _ = el.set_attribute("data-theme", theme);
        }
    }

    pub async fn sleep_ms(ms: u32) {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        leptos::prelude::set_timeout(
            move || {
                let _ = tx.send(());
            },
            std::time::Duration::from_millis(ms as u64),
        );
        let _ = rx.await;
    }
}

#[cfg(feature = "hydrate")]
pub use browser::*;
