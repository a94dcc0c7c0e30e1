//! A small per-session notepad: the visible proof that state is scoped to one session.

use super::{SessionCtx, SessionState, failure, load_when};
use crate::api::{self, MAX_NOTE_CHARS};
use leptos::prelude::*;

#[component]
pub fn Notepad() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let text = RwSignal::new(String::new());

    let note = load_when(
        move || matches!(ctx.state.get(), SessionState::Ready(_)),
        api::get_note,
    );
    let loaded = move || note.map(|n| matches!(n, Some(Ok(_)))).unwrap_or(false);
    Effect::new(move |_| {
        if let Some(Some(Ok(n))) = note.get() {
            text.set(n.text);
        }
    });

    let save = Action::new(|body: &String| api::set_note(body.clone()));
    let busy = save.pending();
    let status = move || {
        if busy.get() {
            return "Saving…".to_owned();
        }
        match save.value().get() {
            Some(Ok(_)) => "Saved".to_owned(),
            Some(Err(e)) => format!("Not saved: {}", e.message),
            None => match note.map(failure).flatten() {
                Some(e) => format!("Could not load: {e}"),
                None => String::new(),
            },
        }
    };

    let count = move || text.with(|t| t.chars().count());
    let disabled = move || !loaded() || busy.get();

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
                disabled=move || !loaded()
            ></textarea>
            <div class="row">
                <span class="counter" class:over={move || count() > MAX_NOTE_CHARS}>
                    {move || format!("{} / {}", count(), MAX_NOTE_CHARS)}
                </span>
                <span class="status" data-testid="note-status" role="status" aria-live="polite">
                    {status}
                </span>
                <button class="primary" data-testid="save-note" on:click=move |_| {
                    save.dispatch(text.get_untracked());
                } disabled=disabled>
                    "Save"
                </button>
            </div>
        </section>
    }
}
