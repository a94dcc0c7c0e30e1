//! What the page asks of the browser: navigation, the event stream, files, the clipboard,
//! focus, timers, dialogs, the theme. On the server, where there is no browser, each does
//! nothing (or answers "nothing"), so components call them without `cfg` lines of their own.
//! The two halves have the same signatures; each build checks the half it uses.

#[cfg(feature = "hydrate")]
pub use web::*;

#[cfg(not(feature = "hydrate"))]
pub use inert::*;

/// Focuses the first element matching `selector` after the page has rendered the change
/// that revealed it (a hidden element cannot take the focus).
pub fn focus_later(selector: &str) {
    focus_after_ms(selector.to_owned(), 0);
}

#[cfg(feature = "hydrate")]
mod web {
    use gloo_storage::{LocalStorage, Storage};
    use std::cell::RefCell;
    use wasm_bindgen::JsCast;

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

    /// Tells the browser tests (and anyone curious) that the page is live.
    pub fn mark_hydrated() {
        if let Some(body) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.body())
        {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    }

    thread_local! {
        /// Uploads in flight, by the key their chip has, so taking a chip off stops its upload.
        static UPLOADS: RefCell<std::collections::HashMap<u64, web_sys::XmlHttpRequest>> =
            RefCell::new(std::collections::HashMap::new());
        /// The live event stream's state (see `open_event_stream`).
        static LIVE: RefCell<Option<Live>> = const { RefCell::new(None) };
        /// Where the focus was when a modal dialog opened; it goes back there on close.
        static OPENER: RefCell<Option<web_sys::HtmlElement>> = const { RefCell::new(None) };
    }

    /// Opens the session's live event stream and feeds each event to `apply`; called again
    /// (Resume, after a `Replaced`), it takes the stream back.
    ///
    /// The tabs of one browser share a single stream: the tab holding the `confide-events`
    /// Web Lock opens it and passes every event on to the others over a `BroadcastChannel`,
    /// and when that tab goes, the lock passes to another which opens it again. Over plain
    /// HTTP/1.1 a browser keeps at most six connections to a host, and a stream per tab
    /// would hold them all from the seventh tab on, so that tab would never load. Where
    /// either API is missing, each tab has a stream of its own.
    pub fn open_event_stream(apply: impl Fn(crate::model::ChatEvent) + 'static) {
        let resume = LIVE.with(|live| {
            let mut live = live.borrow_mut();
            match live.as_mut() {
                Some(live) => Some((live.lead, live.channel.clone())),
                None => {
                    *live = Some(Live {
                        apply: std::rc::Rc::new(apply),
                        channel: None,
                        source: None,
                        stream_session: None,
                        lead: false,
                    });
                    None
                }
            }
        });
        match resume {
            Some((true, _)) | Some((false, None)) => lead_stream(),
            Some((false, Some(channel))) => {
                let _ = channel.post_message(&wasm_bindgen::JsValue::from_str(RESUME));
            }
            None => {
                if !share_stream() {
                    lead_stream();
                }
            }
        }
    }

    /// What a tab's stream needs: the page's handler, the channel to the other tabs (when
    /// shared), and the stream itself while this tab is the one holding it.
    struct Live {
        apply: std::rc::Rc<dyn Fn(crate::model::ChatEvent)>,
        channel: Option<web_sys::BroadcastChannel>,
        source: Option<web_sys::EventSource>,
        /// The session the page had when its stream opened (the stream is that session's).
        stream_session: Option<crate::SessionId>,
        lead: bool,
    }

    /// The one message on the channel that is not an event (events are JSON objects): a
    /// tab's Resume, asking the tab that holds the stream to open it again.
    const RESUME: &str = "resume";

    #[wasm_bindgen::prelude::wasm_bindgen]
    extern "C" {
        /// The Web Locks API (`navigator.locks`), which web-sys lists as unstable.
        type LockManager;
        #[wasm_bindgen(method, catch)]
        fn request(
            this: &LockManager,
            name: &str,
            callback: &web_sys::js_sys::Function,
        ) -> Result<web_sys::js_sys::Promise, wasm_bindgen::JsValue>;
        #[wasm_bindgen(method, catch, js_name = request)]
        fn request_with_options(
            this: &LockManager,
            name: &str,
            options: &web_sys::js_sys::Object,
            callback: &web_sys::js_sys::Function,
        ) -> Result<web_sys::js_sys::Promise, wasm_bindgen::JsValue>;
    }

    /// The Web Lock whose holder opens the stream for every tab.
    const LOCK: &str = "confide-events";

    /// Called once this tab holds the lock: it opens the stream, and keeps the lock until
    /// the page goes (the promise the lock waits on never settles), when it passes to
    /// another tab.
    fn take_stream() -> web_sys::js_sys::Promise {
        LIVE.with(|l| {
            if let Some(l) = l.borrow_mut().as_mut() {
                l.lead = true;
            }
        });
        lead_stream();
        web_sys::js_sys::Promise::new(&mut |_, _| {})
    }

    fn live_apply() -> Option<std::rc::Rc<dyn Fn(crate::model::ChatEvent)>> {
        LIVE.with(|l| l.borrow().as_ref().map(|l| l.apply.clone()))
    }

    /// Listens to the other tabs and queues for the lock; false when the browser lacks
    /// either API.
    fn share_stream() -> bool {
        use wasm_bindgen::closure::Closure;
        let Some(locks) = web_sys::window()
            .and_then(|w| web_sys::js_sys::Reflect::get(&w.navigator(), &"locks".into()).ok())
            .filter(|l| l.is_object())
            .map(|l| l.unchecked_into::<LockManager>())
        else {
            return false;
        };
        let Ok(channel) = web_sys::BroadcastChannel::new("confide-events") else {
            return false;
        };
        let on_message =
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
                let Some(text) = ev.data().as_string() else {
                    return;
                };
                if text == RESUME {
                    if LIVE.with(|l| l.borrow().as_ref().is_some_and(|l| l.lead)) {
                        lead_stream();
                    }
                } else if let Ok(event) = serde_json::from_str(&text)
                    && let Some(apply) = live_apply()
                {
                    apply(event);
                }
            });
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        // First only if no tab holds the stream: a tab that finds it held listens from now
        // on, so it reloads what it shows once (what changed before it listened is lost to
        // it), and then queues for the lock. A tab that takes the stream reloads when the
        // stream opens instead.
        let options = web_sys::js_sys::Object::new();
        let _ = web_sys::js_sys::Reflect::set(&options, &"ifAvailable".into(), &true.into());
        let queue: LockManager = locks.clone().unchecked_into();
        let on_first = Closure::once_into_js(move |lock: wasm_bindgen::JsValue| {
            if !lock.is_null() {
                return take_stream();
            }
            if let Some(apply) = live_apply() {
                apply(crate::model::ChatEvent::Resync);
            }
            let on_granted = Closure::once_into_js(|_: wasm_bindgen::JsValue| take_stream());
            if queue.request(LOCK, on_granted.unchecked_ref()).is_err() {
                // The lock cannot be had after all: this tab streams for itself.
                LIVE.with(|l| {
                    if let Some(channel) = l.borrow_mut().as_mut().and_then(|l| l.channel.take()) {
                        channel.close();
                    }
                });
                lead_stream();
            }
            web_sys::js_sys::Promise::resolve(&wasm_bindgen::JsValue::UNDEFINED)
        });
        if locks
            .request_with_options(LOCK, &options, on_first.unchecked_ref())
            .is_err()
        {
            return false;
        }
        LIVE.with(|l| {
            if let Some(l) = l.borrow_mut().as_mut() {
                l.channel = Some(channel);
            }
        });
        true
    }

    /// Opens this tab's stream (unless it is open) and hands each event to the page and to
    /// the other tabs. The browser reconnects by itself. Every time the stream opens, the
    /// first time included, every tab resyncs: events sent before it was open are lost, and
    /// a page's first load can race the stream (a reply may end before a slow stream
    /// connects).
    fn lead_stream() {
        use wasm_bindgen::closure::Closure;
        // A stream the server refused for good (its session gone) stays closed, and one of a
        // session the browser has left would go on with that session's events: the page's
        // next session opens a new one.
        let session = crate::client::current_session();
        let keep = LIVE.with(|l| match l.borrow_mut().as_mut() {
            None => true,
            Some(l) => match l.source.take() {
                Some(s)
                    if s.ready_state() != web_sys::EventSource::CLOSED
                        && l.stream_session == session =>
                {
                    l.source = Some(s);
                    true
                }
                Some(s) => {
                    s.close();
                    false
                }
                None => false,
            },
        });
        if keep {
            return;
        }
        let Ok(source) = web_sys::EventSource::new("/api/events") else {
            return;
        };
        let pass_on = |text: &str| {
            LIVE.with(|l| {
                if let Some(channel) = l.borrow().as_ref().and_then(|l| l.channel.as_ref()) {
                    let _ = channel.post_message(&wasm_bindgen::JsValue::from_str(text));
                }
            });
        };
        let on_message =
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
                if let Some(text) = ev.data().as_string()
                    && let Ok(event) = serde_json::from_str::<crate::model::ChatEvent>(&text)
                {
                    // A newer stream took this one's place: reconnecting would push the
                    // next one out, and so on round them. It stays closed until asked again.
                    if event == crate::model::ChatEvent::Replaced
                        && let Some(source) =
                            LIVE.with(|l| l.borrow_mut().as_mut().and_then(|l| l.source.take()))
                    {
                        source.close();
                    }
                    pass_on(&text);
                    if let Some(apply) = live_apply() {
                        apply(event);
                    }
                }
            });
        let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            pass_on(crate::model::ChatEvent::RESYNC_JSON);
            if let Some(apply) = live_apply() {
                apply(crate::model::ChatEvent::Resync);
            }
        });
        // The browser gave up on the stream (the server refused it), and an EventSource does
        // not say why. If it is because the session ended (by time, or from elsewhere), one
        // call learns so and `SessionClient` moves the page on at once, instead of at the
        // person's next step; any other refusal (too many streams) leaves it closed.
        let closed = source.clone();
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            if closed.ready_state() == web_sys::EventSource::CLOSED {
                leptos::task::spawn_local(async {
                    let _ = crate::api::start_session().await;
                });
            }
        });
        source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        // The handlers live as long as the page.
        on_message.forget();
        on_open.forget();
        on_error.forget();
        LIVE.with(|l| {
            if let Some(l) = l.borrow_mut().as_mut() {
                l.source = Some(source);
                l.stream_session = session;
            }
        });
    }

    /// Saves `content` as a file through a temporary object URL.
    pub fn download(filename: &str, mime: &str, content: &str) {
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
            return;
        };
        let parts = web_sys::js_sys::Array::new();
        parts.push(&wasm_bindgen::JsValue::from_str(content));
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

    pub fn copy_text(text: &str) {
        if let Some(w) = web_sys::window() {
            let _ = w.navigator().clipboard().write_text(text);
        }
    }

    /// Copy buttons inside rendered markdown (code blocks) are plain HTML from the server;
    /// one listener on the message list handles them all.
    pub fn copy_code_on_click(ev: leptos::ev::MouseEvent) {
        let Some(button) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        else {
            return;
        };
        if !button.class_list().contains("copy-code") {
            return;
        }
        let code = button
            .closest(".code-block")
            .ok()
            .flatten()
            .and_then(|block| block.query_selector("code").ok().flatten())
            .and_then(|code| code.text_content());
        if let Some(code) = code {
            copy_text(&code);
            button.set_text_content(Some("Copied"));
        }
    }

    /// As `focus_later`, after `ms`: for an element that another pending focus move (such
    /// as the drawer's own) must not win over.
    pub fn focus_after_ms(selector: String, ms: u64) {
        leptos::prelude::set_timeout(
            move || {
                if let Some(el) = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.query_selector(&selector).ok().flatten())
                    .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
                {
                    let _ = el.focus();
                }
            },
            std::time::Duration::from_millis(ms),
        );
    }

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

    /// Remembers what has the focus now, for `return_focus` (a modal about to open).
    pub fn hold_focus() {
        let active = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.active_element())
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
        OPENER.with(|o| *o.borrow_mut() = active);
    }

    /// Gives the focus back to what `hold_focus` remembered (the modal closed).
    pub fn return_focus() {
        if let Some(el) = OPENER.with(|o| o.borrow_mut().take()) {
            let _ = el.focus();
        }
    }

    /// Whether a key press is typing into a field (where `?` is a character, not a command).
    pub fn typing_in_field(ev: &leptos::ev::KeyboardEvent) -> bool {
        ev.target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .is_some_and(|el| {
                matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                    || el.closest("[contenteditable]").ok().flatten().is_some()
            })
    }

    /// The browser's own yes/no question.
    pub fn confirm(question: &str) -> bool {
        web_sys::window()
            .and_then(|w| w.confirm_with_message(question).ok())
            .unwrap_or(false)
    }

    /// A time (ms since the epoch) in the person's own locale and zone.
    pub fn local_time(ms: i64) -> String {
        let d = web_sys::js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
        d.to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED)
            .as_string()
            .unwrap_or_default()
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

    /// A file the person picked, dropped or pasted, not yet uploaded.
    #[derive(Clone)]
    pub struct Picked(web_sys::File);

    impl Picked {
        pub fn name(&self) -> String {
            self.0.name()
        }
        pub fn size(&self) -> u64 {
            self.0.size() as u64
        }
    }

    fn picked(list: Option<web_sys::FileList>) -> Vec<Picked> {
        let Some(list) = list else {
            return Vec::new();
        };
        (0..list.length())
            .filter_map(|i| list.get(i))
            .map(Picked)
            .collect()
    }

    /// The files chosen in a file input; the input is emptied, so choosing the same file
    /// again is a change too.
    pub fn picked_from_input(ev: &leptos::ev::Event) -> Vec<Picked> {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return Vec::new();
        };
        let files = picked(input.files());
        input.set_value("");
        files
    }

    /// The files dropped on the page.
    pub fn picked_from_drop(ev: &leptos::ev::DragEvent) -> Vec<Picked> {
        picked(ev.data_transfer().and_then(|d| d.files()))
    }

    /// The files pasted (a screenshot, say); text pastes carry none.
    pub fn picked_from_paste(ev: &leptos::ev::ClipboardEvent) -> Vec<Picked> {
        picked(ev.clipboard_data().and_then(|d| d.files()))
    }

    /// Whether a drag carries files (not text or a link being moved on the page).
    pub fn drags_files(ev: &leptos::ev::DragEvent) -> bool {
        ev.data_transfer().is_some_and(|d| {
            let types = d.types();
            (0..types.length()).any(|i| types.get(i).as_string().as_deref() == Some("Files"))
        })
    }

    /// Uploads `file` (`POST /api/files`), telling `progress` how far it is (in percent). A
    /// request of its own, not a server function: its body streams from the disk, and
    /// only this kind of request reports upload progress.
    pub async fn upload(
        file: Picked,
        key: u64,
        progress: impl Fn(u32) + 'static,
    ) -> Result<crate::model::Attachment, crate::ApiError> {
        use crate::{ApiError, ErrorCode};
        use wasm_bindgen::closure::Closure;
        let network = || ApiError::new(ErrorCode::Network, "the upload could not reach the server");
        let xhr = web_sys::XmlHttpRequest::new().map_err(|_| network())?;
        xhr.open("POST", "/api/files").map_err(|_| network())?;
        if let Some(id) = crate::client::current_session() {
            let _ = xhr.set_request_header(crate::SESSION_HEADER_NAME, &id.as_string());
        }
        let form = web_sys::FormData::new().map_err(|_| network())?;
        form.append_with_blob_and_filename("file", &file.0, &file.0.name())
            .map_err(|_| network())?;
        let (tx, rx) = futures::channel::oneshot::channel::<bool>();
        let tx = std::rc::Rc::new(RefCell::new(Some(tx)));
        let done = {
            let tx = tx.clone();
            Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                if let Some(tx) = tx.borrow_mut().take() {
                    let _ = tx.send(true);
                }
            })
        };
        let failed = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            if let Some(tx) = tx.borrow_mut().take() {
                let _ = tx.send(false);
            }
        });
        let on_progress =
            Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |ev: web_sys::ProgressEvent| {
                if ev.length_computable() && ev.total() > 0.0 {
                    progress((ev.loaded() * 100.0 / ev.total()).clamp(0.0, 100.0) as u32);
                }
            });
        xhr.set_onload(Some(done.as_ref().unchecked_ref()));
        xhr.set_onerror(Some(failed.as_ref().unchecked_ref()));
        xhr.set_onabort(Some(failed.as_ref().unchecked_ref()));
        if let Ok(up) = xhr.upload() {
            up.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
        }
        xhr.send_with_opt_form_data(Some(&form))
            .map_err(|_| network())?;
        UPLOADS.with(|u| u.borrow_mut().insert(key, xhr.clone()));
        // The handlers live until the request is over.
        let loaded = rx.await.unwrap_or(false);
        UPLOADS.with(|u| u.borrow_mut().remove(&key));
        drop((done, failed, on_progress));
        if !loaded {
            return Err(network());
        }
        let status = xhr.status().unwrap_or(0);
        let text = xhr.response_text().ok().flatten().unwrap_or_default();
        if status == 200 {
            serde_json::from_str(&text).map_err(|_| {
                ApiError::new(ErrorCode::BadResponse, "the upload's answer was unreadable")
            })
        } else {
            Err(serde_json::from_str::<ApiError>(&text).unwrap_or_else(|_| {
                ApiError::new(
                    ErrorCode::BadResponse,
                    format!("the upload failed ({status})"),
                )
            }))
        }
    }

    /// Stops the upload of chip `key`, if it is still going: nothing of it is kept.
    pub fn abort_upload(key: u64) {
        if let Some(xhr) = UPLOADS.with(|u| u.borrow_mut().remove(&key)) {
            let _ = xhr.abort();
        }
    }

    const THEME_KEY: &str = "confide.theme";

    fn set_theme_attr(theme: &str) {
        if let Some(el) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
        {
            let _ = el.set_attribute("data-theme", theme);
        }
    }

    /// Applies the theme saved in this browser, if any.
    pub fn apply_saved_theme() {
        if let Some(theme) = LocalStorage::get::<String>(THEME_KEY)
            .ok()
            .filter(|t| t == "light" || t == "dark")
        {
            set_theme_attr(&theme);
        }
    }

    /// Switches between light and dark and remembers the choice.
    pub fn toggle_theme() {
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
        let next = if current == "dark" { "light" } else { "dark" };
        set_theme_attr(next);
        let _ = LocalStorage::set(THEME_KEY, next);
    }
}

/// The server renders the page once and never runs an effect or a handler, so nothing here
/// is ever called for real; it only has to compile to the same names.
#[cfg(not(feature = "hydrate"))]
mod inert {
    pub fn go(_url: &str) {}
    pub fn query_param(_name: &str) -> Option<String> {
        None
    }
    pub fn mark_hydrated() {}
    pub fn open_event_stream(_apply: impl Fn(crate::model::ChatEvent) + 'static) {}
    pub fn download(_filename: &str, _mime: &str, _content: &str) {}
    pub fn copy_text(_text: &str) {}
    pub fn copy_code_on_click(_ev: leptos::ev::MouseEvent) {}
    pub fn focus_after_ms(_selector: String, _ms: u64) {}
    pub fn hold_focus() {}
    pub fn return_focus() {}
    pub fn typing_in_field(_ev: &leptos::ev::KeyboardEvent) -> bool {
        false
    }
    pub fn confirm(_question: &str) -> bool {
        false
    }
    /// Rendered on the server (before the browser knows the zone): the raw number, which
    /// the browser replaces when the page hydrates.
    pub fn local_time(ms: i64) -> String {
        ms.to_string()
    }
    pub async fn sleep_ms(_ms: u32) {}
    #[derive(Clone)]
    pub struct Picked;
    impl Picked {
        pub fn name(&self) -> String {
            String::new()
        }
        pub fn size(&self) -> u64 {
            0
        }
    }
    pub fn picked_from_input(_ev: &leptos::ev::Event) -> Vec<Picked> {
        Vec::new()
    }
    pub fn picked_from_drop(_ev: &leptos::ev::DragEvent) -> Vec<Picked> {
        Vec::new()
    }
    pub fn picked_from_paste(_ev: &leptos::ev::ClipboardEvent) -> Vec<Picked> {
        Vec::new()
    }
    pub fn drags_files(_ev: &leptos::ev::DragEvent) -> bool {
        false
    }
    pub fn abort_upload(_key: u64) {}
    pub async fn upload(
        _file: Picked,
        _key: u64,
        _progress: impl Fn(u32) + 'static,
    ) -> Result<crate::model::Attachment, crate::ApiError> {
        Err(crate::ApiError::new(
            crate::ErrorCode::Network,
            "no browser",
        ))
    }
    pub fn apply_saved_theme() {}
    pub fn toggle_theme() {}
}
