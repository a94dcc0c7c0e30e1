//! A small per-session notepad: the visible proof that state is scoped to one session.

use super::{SessionCtx, SessionState};
use crate::api::{self, MAX_NOTE_CHARS};
use leptos::{prelude::*, task::spawn_local};

#[component]
pub fn Notepad() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let text = RwSignal::new(String::new());
    let status = RwSignal::new(String::new());
    let loaded = RwSignal::new(false);
    let busy = RwSignal::new(false);

    // Load once the session is ready; never before (the protocol's ordering rule).
    Effect::new(move |_| {
        if matches!(ctx.state.get(), SessionState::Ready(_)) {
            spawn_local(async move {
                match api::get_note().await {
                    Ok(note) => {
                        text.set(note.text);
                        loaded.set(true);
                    }
                    Err(e) => status.set(format!("Could not load: {}", e.message)),
                }
            });
        }
    });

    let save = move |_| {
        let body = text.get_untracked();
        busy.set(true);
        status.set("Saving…".into());
        spawn_local(async move {
            match api::set_note(body).await {
                Ok(_) => status.set("Saved".into()),
                Err(e) => status.set(format!("Not saved: {}", e.message)),
            }
            busy.set(false);
        });
    };

    let count = move || text.with(|t| t.chars().count());
    let disabled = move || !loaded.get() || busy.get();

    view! {
        <section class="card notepad" aria-labelledby="notepad-title">
            <h1 id="notepad-title">"Your private notepad"</h1>
            <p class="muted">
                "What you write here belongs to this browser session alone. Another browser — even one behind the same network address — starts with an empty page."
            </p>
            <label for="note" class="visually-hidden">
                "Note"
            </label>
            <textarea
                id="note"
                data-testid="note"
                rows="10"
                maxlength=MAX_NOTE_CHARS.to_string()
                placeholder="Write something only you can read…"
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
                disabled=move || !loaded.get()
            ></textarea>
            <div class="row">
                <span class="counter" class:over={move || count() > MAX_NOTE_CHARS}>
                    {move || format!("{} / {}", count(), MAX_NOTE_CHARS)}
                </span>
                <span class="status" data-testid="note-status" role="status" aria-live="polite">
                    {move || status.get()}
                </span>
                <button class="primary" data-testid="save-note" on:click=save disabled=disabled>
                    "Save"
                </button>
            </div>
        </section>
    }
}
