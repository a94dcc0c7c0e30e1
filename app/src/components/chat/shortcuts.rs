//! The page's keyboard shortcuts, and the list of them.

use super::state::ChatState;
#[cfg(feature = "hydrate")]
use super::{composer::stop_streaming, focus_after_ms, focus_later};
use crate::components::DrawerCtx;
use leptos::prelude::*;
#[cfg(feature = "hydrate")]
use leptos_router::NavigateOptions;
use leptos_router::hooks::use_navigate;

/// Whether a key press is typing into a field (where `?` is a character, not a command).
#[cfg(feature = "hydrate")]
fn typing_in_field(ev: &leptos::ev::KeyboardEvent) -> bool {
    use wasm_bindgen::JsCast;
    ev.target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .is_some_and(|el| {
            matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                || el.closest("[contenteditable]").ok().flatten().is_some()
        })
}

/// Keyboard shortcuts for the whole page, and the list of them that `?` opens.
#[component]
pub(super) fn Shortcuts() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let drawer = expect_context::<DrawerCtx>();
    let navigate = use_navigate();
    let dialog = NodeRef::<leptos::html::Dialog>::new();
    // Where the focus was when the list opened; it goes back there when it closes. Browser
    // only: a DOM handle held by the page's owner would be dropped on whichever server thread
    // ends the render, which `new_local` forbids (it panics there, cutting the page short).
    #[cfg(feature = "hydrate")]
    let opener = StoredValue::new_local(None::<leptos::web_sys::HtmlElement>);

    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.default_prevented() || dialog.get_untracked().is_some_and(|d| d.open()) {
                return;
            }
            let command = ev.ctrl_key() || ev.meta_key();
            let key = ev.key();
            if key == "Escape" && !drawer.open.get_untracked() && state.streaming().is_some() {
                ev.prevent_default();
                stop_streaming(state);
            } else if command && ev.shift_key() && key.eq_ignore_ascii_case("o") {
                ev.prevent_default();
                drawer.open.set(false);
                navigate("/", NavigateOptions::default());
                focus_later("[data-testid=composer]");
            } else if command && !ev.shift_key() && key.eq_ignore_ascii_case("k") {
                ev.prevent_default();
                drawer.open.set(true);
                focus_after_ms("#sidebar [data-testid=search]".into(), 60);
            } else if key == "?" && !command && !typing_in_field(&ev) {
                ev.prevent_default();
                use wasm_bindgen::JsCast;
                let active = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.active_element())
                    .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
                opener.set_value(active);
                if let Some(d) = dialog.get_untracked() {
                    let _ = d.show_modal();
                }
            }
        });
        on_cleanup(move || handle.remove());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (state, drawer, navigate);

    let close = move |_| {
        if let Some(d) = dialog.get_untracked() {
            d.close();
        }
    };
    let on_close = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(el) = opener.get_value() {
            let _ = el.focus();
        }
    };
    // The list's only control is Close: Tab stays on it rather than leaving the dialog.
    let trap = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Tab" {
            ev.prevent_default();
        }
    };
    view! {
        <dialog
            class="shortcuts card"
            node_ref=dialog
            aria-labelledby="shortcuts-title"
            data-testid="shortcuts"
            on:close=on_close
            on:keydown=trap
        >
            <h2 id="shortcuts-title">"Keyboard shortcuts"</h2>
            <dl>
                <dt><kbd>"Enter"</kbd></dt><dd>"Send"</dd>
                <dt><kbd>"Shift"</kbd>" + "<kbd>"Enter"</kbd></dt><dd>"New line"</dd>
                <dt><kbd>"Esc"</kbd></dt><dd>"Stop the reply being written; close a menu or this list"</dd>
                <dt><kbd>"Ctrl/⌘"</kbd>" + "<kbd>"Shift"</kbd>" + "<kbd>"O"</kbd></dt><dd>"New chat"</dd>
                <dt><kbd>"Ctrl/⌘"</kbd>" + "<kbd>"K"</kbd></dt><dd>"Search chats"</dd>
                <dt><kbd>"?"</kbd></dt><dd>"This list"</dd>
            </dl>
            <button class="primary" data-testid="close-shortcuts" on:click=close>"Close"</button>
        </dialog>
    }
}
