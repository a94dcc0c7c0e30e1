//! The page's keyboard shortcuts, and the list of them.

use super::{composer::ComposerCtx, state::ChatState};
use crate::browser::{focus_after_ms, focus_later, hold_focus, return_focus, typing_in_field};
use crate::components::DrawerCtx;
use leptos::prelude::*;
use leptos_router::{NavigateOptions, hooks::use_navigate};

/// Keyboard shortcuts for the whole page, and the list of them that `?` opens.
#[component]
pub(super) fn Shortcuts() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let drawer = expect_context::<DrawerCtx>();
    let composer = expect_context::<ComposerCtx>();
    let navigate = use_navigate();
    let dialog = NodeRef::<leptos::html::Dialog>::new();

    // A window listener is a no-op on the server, which renders the page and leaves.
    let handle = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.default_prevented() || dialog.get_untracked().is_some_and(|d| d.open()) {
            return;
        }
        let command = ev.ctrl_key() || ev.meta_key();
        let key = ev.key();
        if key == "Escape" && !drawer.open.get_untracked() && state.streaming().is_some() {
            ev.prevent_default();
            composer.stop_streaming(state);
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
            // Where the focus was when the list opened; it goes back there when it closes.
            hold_focus();
            if let Some(d) = dialog.get_untracked() {
                let _ = d.show_modal();
            }
        }
    });
    on_cleanup(move || handle.remove());

    let close = move |_| {
        if let Some(d) = dialog.get_untracked() {
            d.close();
        }
    };
    let on_close = move |_| return_focus();
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
                <dt><kbd>"Enter"</kbd></dt><dd>"Send; save an edited message"</dd>
                <dt><kbd>"Shift"</kbd>" + "<kbd>"Enter"</kbd></dt><dd>"New line"</dd>
                <dt><kbd>"Esc"</kbd></dt><dd>"Stop the reply being written; cancel an edit; close a menu or this list"</dd>
                <dt><kbd>"Ctrl/⌘"</kbd>" + "<kbd>"Shift"</kbd>" + "<kbd>"O"</kbd></dt><dd>"New chat"</dd>
                <dt><kbd>"Ctrl/⌘"</kbd>" + "<kbd>"K"</kbd></dt><dd>"Search chats"</dd>
                <dt><kbd>"?"</kbd></dt><dd>"This list"</dd>
            </dl>
            <button class="primary" data-testid="close-shortcuts" on:click=close>"Close"</button>
        </dialog>
    }
}
