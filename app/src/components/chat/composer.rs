//! The composer, and sending and stopping that other parts of the page share.

use super::settings::{SettingsButton, SettingsPanel};
use super::state::ChatState;
use crate::browser::{self, Picked, focus_later};
use crate::components::icon::{Icon, IconName};
use crate::derived::When;
use crate::{
    api::{self},
    components::{SessionCtx, SessionState},
    model::{
        Attachment, ChatEvent, FileId, MAX_MESSAGE_CHARS, MessageId, ThreadId, ThreadView,
        human_size,
    },
};
use leptos::{lazy, prelude::*};
use leptos_router::{NavigateOptions, hooks::use_navigate};

#[component]
pub(super) fn Composer() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let session = expect_context::<SessionCtx>();
    let composer = expect_context::<ComposerCtx>();
    let text = composer.text;

    let ready = move || matches!(session.state.get(), SessionState::Ready(_));
    let streaming = move || state.streaming();
    let count = move || text.with(|t| t.chars().count());
    let too_long = move || count() > MAX_MESSAGE_CHARS;
    let files = composer.files;
    let uploading = move || {
        files.with(|f| {
            f.iter()
                .any(|c| c.state.with(|s| matches!(s, Upload::Running)))
        })
    };
    let has_files = move || {
        files.with(|f| {
            f.iter()
                .any(|c| c.state.with(|s| matches!(s, Upload::Done(_))))
        })
    };
    let can_send = move || {
        ready()
            && !composer.sending()
            && streaming().is_none()
            && !too_long()
            && !uploading()
            && (has_files() || !text.with(|t| t.trim().is_empty()))
    };

    let submit = move || {
        if can_send() {
            // Send turns into Stop: the focus, if it was on Send, moves to the field.
            focus_later("[data-testid=composer]");
            composer.send_text(text.get_untracked(), true);
        }
    };
    // Files dropped anywhere on the page attach (a browser would otherwise open them in
    // place of the chat); a drag of text or a link is left alone.
    let dragging = RwSignal::new(false);
    let over = window_event_listener(leptos::ev::dragover, move |ev| {
        if browser::drags_files(&ev) {
            ev.prevent_default();
            dragging.set(true);
        }
    });
    let left = window_event_listener(leptos::ev::dragleave, move |ev| {
        // Out of the window, not just from one element to the next.
        if ev.related_target().is_none() {
            dragging.set(false);
        }
    });
    let dropped = window_event_listener(leptos::ev::drop, move |ev| {
        dragging.set(false);
        if !browser::drags_files(&ev) {
            return;
        }
        ev.prevent_default();
        if ready() {
            composer.attach(browser::picked_from_drop(&ev));
        }
    });
    on_cleanup(move || {
        over.remove();
        left.remove();
        dropped.remove();
    });
    let on_paste = move |ev: leptos::ev::ClipboardEvent| {
        let picked = browser::picked_from_paste(&ev);
        if !picked.is_empty() {
            ev.prevent_default();
            composer.attach(picked);
        }
    };
    let stop = move |_| composer.stop_streaming(state);

    view! {
        <form
            class="composer"
            class:dragging=move || dragging.get()
            on:submit=move |ev| { ev.prevent_default(); submit(); }
        >
            {move || composer.error().map(|e| view! { <p class="meta error" role="alert">{e}</p> })}
            <SettingsPanel />
            <Chips />
            <div class="composer-row">
                <label class="attach" title="Attach files" data-testid="attach">
                    <Icon name=IconName::Attach />
                    <span class="visually-hidden">"Attach files"</span>
                    <input
                        type="file"
                        multiple
                        class="visually-hidden"
                        data-testid="attach-input"
                        disabled=move || !ready()
                        on:change=move |ev| composer.attach(browser::picked_from_input(&ev))
                    />
                </label>
                <textarea
                    data-testid="composer"
                    aria-label="Message"
                    placeholder=move || if streaming().is_some() { "Wait for the reply, or stop it…" } else { "Message Confide" }
                    rows="2"
                    prop:value=move || text.get()
                    disabled=move || !ready()
                    // Read-only, not disabled, while a reply streams: browsers take the focus
                    // from a disabled field, and the person would have to click back into it
                    // after every reply.
                    readonly=move || streaming().is_some()
                    on:input=move |ev| text.set(event_target_value(&ev))
                    on:paste=on_paste
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                            ev.prevent_default();
                            submit();
                        }
                    }
                ></textarea>
                <When
                    when=move || streaming().is_some()
                    fallback=move || view! { <button class="primary" type="submit" data-testid="send" disabled=move || !can_send()>"Send"</button> }
                >
                    <button class="stop" type="button" data-testid="stop" on:click=stop>"■ Stop"</button>
                </When>
            </div>
            <div class="composer-foot">
                <span class="counter" class:over=too_long>{move || format!("{} / {}", count(), MAX_MESSAGE_CHARS)}</span>
                <SettingsButton />
                // Keys are for keyboards: phones and tablets have their own way to a new line.
                <span class="muted hint wide-only">"Enter to send · Shift+Enter for a new line · ? for shortcuts"</span>
                {move || streaming().map(|_| view! { <span class="muted small" role="status">"Assistant is replying…"</span> })}
            </div>
        </form>
    }
}

/// The files waiting to go with the next message: each uploading, uploaded or refused,
/// with its progress bar, and a button to take it off.
#[component]
fn Chips() -> impl IntoView {
    let files = expect_context::<ComposerCtx>().files;
    view! {
        // Its code is fetched the first time a file is added.
        <Show when=move || files.with(|f| !f.is_empty())>
            {move || Suspend::new(async move { chip_list().await })}
        </Show>
    }
}

#[lazy]
fn chip_list() -> AnyView {
    let composer = expect_context::<ComposerCtx>();
    let files = composer.files;
    view! {
        <ul class="chips" aria-label="Files to send">
            <For each=move || files.get() key=|c| c.key let:chip>
                <li class="chip" data-testid="chip" class:failed=move || chip.state.with(|s| matches!(s, Upload::Failed(_)))>
                    <span class="chip-name" title=chip.name.clone()>{chip.name.clone()}</span>
                    <span class="muted small">{human_size(chip.size)}</span>
                    {
                        let label = format!("Uploading {}", chip.name);
                        let (state, progress) = (chip.state, chip.progress);
                        move || state.with(|s| match s {
                        Upload::Running => view! {
                            <progress max="100" value=move || progress.get() aria-label=label.clone()></progress>
                        }.into_any(),
                        Upload::Done(_) => view! { <span class="small ok" data-testid="chip-ready">"✓"</span> }.into_any(),
                        Upload::Failed(e) => view! { <span class="small error" role="alert" data-testid="chip-error">{e.clone()}</span> }.into_any(),
                    })}
                    <button
                        type="button"
                        class="chip-remove"
                        data-testid="chip-remove"
                        aria-label=format!("Remove {}", chip.name)
                        on:click=move |_| composer.remove(chip.key)
                    >"×"</button>
                </li>
            </For>
        </ul>
    }
    .into_any()
}

/// Where one file's upload stands.
#[derive(Clone, PartialEq)]
pub(super) enum Upload {
    Running,
    Done(Attachment),
    Failed(String),
}

/// A file in the composer: what the person picked, and its upload.
#[derive(Clone)]
pub(super) struct Chip {
    key: u64,
    name: String,
    size: u64,
    /// Percent uploaded.
    progress: RwSignal<u32>,
    state: RwSignal<Upload>,
}

/// Most files the composer holds for one message (the server's default limit).
const MAX_CHIPS: usize = 10;

/// What the composer shares with the rest of the chat. It lives in the layout: a new chat
/// becomes /t/<id> mid-send, and what was typed and the send under way outlive that.
#[derive(Clone, Copy)]
pub(super) struct ComposerCtx {
    pub(super) text: RwSignal<String>,
    /// Sends a message; answers the new chat it made, if it made one, or what to tell the
    /// person if it was not sent.
    pub(super) send: Action<Outgoing, Result<Option<ThreadId>, String>>,
    /// Stops a reply being written.
    pub(super) stop: Action<MessageId, ()>,
    /// Files for the next message.
    pub(super) files: RwSignal<Vec<Chip>>,
    /// Why files could not be added (too many).
    pub(super) file_note: RwSignal<Option<String>>,
}

/// A message to send, and whether it came from the composer (whose text goes once it has
/// been sent) or from elsewhere (a starter), which leaves the composer's text alone.
#[derive(Clone)]
pub(super) struct Outgoing {
    pub(super) text: String,
    pub(super) from_composer: bool,
    /// The uploads that go with it (the composer's; none for a starter).
    pub(super) files: Vec<FileId>,
}

impl ComposerCtx {
    pub(super) fn new(state: ChatState) -> Self {
        let text = RwSignal::new(String::new());
        let files = RwSignal::new(Vec::new());
        let send = Action::new(move |out: &Outgoing| {
            let out = out.clone();
            // The thread is the one open when Send was pressed, whatever opens meanwhile.
            let thread = state.send_target();
            async move { send(state, thread, out, text, files).await }
        });
        // A new chat opens once its first message is in. Navigating here rather than in
        // the action keeps the router (which lives in the browser's one thread) out of it.
        let navigate = use_navigate();
        Effect::new(move |_| {
            if let Some(Ok(Some(id))) = send.value().get() {
                navigate(&super::thread_path(id), NavigateOptions::default());
            }
        });
        let stop = Action::new(move |id: &MessageId| {
            let id = *id;
            async move {
                if let Ok(v) = api::stop_reply(id).await {
                    state.upsert_message(v);
                }
                // The Stop button that may have had the focus is gone.
                focus_later("[data-testid=composer]");
            }
        });
        let file_note = RwSignal::new(None);
        Self {
            text,
            send,
            stop,
            files,
            file_note,
        }
    }

    /// Sends `text`, from the composer (with its files) or not, in the open thread (or a
    /// new one).
    pub(super) fn send_text(&self, text: String, from_composer: bool) {
        let files = if from_composer {
            self.files.with_untracked(|f| {
                f.iter()
                    .filter_map(|c| {
                        c.state.with_untracked(|s| match s {
                            Upload::Done(a) => Some(a.id),
                            _ => None,
                        })
                    })
                    .collect()
            })
        } else {
            Vec::new()
        };
        self.send.dispatch(Outgoing {
            text,
            from_composer,
            files,
        });
    }

    /// Starts uploading `picked`, each with its chip; past the limit, the rest are left
    /// out with a note.
    pub(super) fn attach(&self, picked: Vec<Picked>) {
        let files = self.files;
        let mut left_out = 0;
        for p in picked {
            if files.with_untracked(|f| f.len()) >= MAX_CHIPS {
                left_out += 1;
                continue;
            }
            let chip = Chip {
                key: next_key(),
                name: p.name(),
                size: p.size(),
                progress: RwSignal::new(0),
                state: RwSignal::new(Upload::Running),
            };
            files.update(|f| f.push(chip.clone()));
            leptos::task::spawn_local(async move {
                let progress = chip.progress;
                let result = browser::upload(p, chip.key, move |percent| {
                    progress.try_set(percent);
                })
                .await;
                let state = match result {
                    Ok(a) => Upload::Done(a),
                    Err(e) => Upload::Failed(e.message),
                };
                // Taken off meanwhile: what arrived is not wanted.
                if chip.state.try_set(state.clone()).is_some()
                    && let Upload::Done(a) = state
                {
                    let _ = api::discard_file(a.id).await;
                }
            });
        }
        self.file_note.set((left_out > 0).then(|| {
            format!("A message carries at most {MAX_CHIPS} files; {left_out} were left out.")
        }));
    }

    /// Takes a file off the next message (and off the server, if it got there).
    pub(super) fn remove(&self, key: u64) {
        let mut gone = None;
        self.files.update(|f| {
            if let Some(i) = f.iter().position(|c| c.key == key) {
                gone = Some(f.remove(i));
            }
        });
        self.file_note.set(None);
        if let Some(chip) = gone {
            match chip.state.get_untracked() {
                Upload::Done(a) => leptos::task::spawn_local(async move {
                    let _ = api::discard_file(a.id).await;
                }),
                // Stopped: the server keeps nothing of an upload cut off. One that finished
                // just before finds its chip gone, and discards what it made.
                Upload::Running => browser::abort_upload(chip.key),
                Upload::Failed(_) => {}
            }
            chip.state.dispose();
        }
        focus_later("[data-testid=composer]");
    }

    pub(super) fn sending(&self) -> bool {
        self.send.pending().get()
    }

    /// Why the last message was not sent, until the next one is on its way.
    pub(super) fn error(&self) -> Option<String> {
        if self.sending() {
            return None;
        }
        self.send
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| self.file_note.get())
    }

    /// Stops the reply being written, if any.
    pub(super) fn stop_streaming(&self, state: ChatState) {
        if let Some(id) = state.streaming() {
            self.stop.dispatch(id);
        }
    }
}

fn next_key() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Sends `out` in `thread` (or a new one). Answers the new chat it made, if it made one, or
/// what to tell the person if the message was not sent.
async fn send(
    state: ChatState,
    thread: Option<ThreadId>,
    out: Outgoing,
    text: RwSignal<String>,
    files: RwSignal<Vec<Chip>>,
) -> Result<Option<ThreadId>, String> {
    let sent_files = out.files.clone();
    match api::send_message(thread, out.text, out.files).await {
        Ok(sent) => {
            if out.from_composer {
                text.try_set(String::new());
                files.try_update(|f| {
                    f.retain(|c| {
                        !c.state.with_untracked(
                            |s| matches!(s, Upload::Done(a) if sent_files.contains(&a.id)),
                        )
                    })
                });
            }
            state.upsert_thread(sent.thread.clone());
            if thread.is_none() {
                let messages = vec![state.merge(sent.user), state.merge(sent.reply)];
                state.current.update(|r| {
                    *r = Some(Ok(Some(ThreadView {
                        thread: sent.thread.clone(),
                        messages,
                    })))
                });
                Ok(Some(sent.thread.id))
            } else {
                state.upsert_message(sent.user);
                state.upsert_message(sent.reply);
                Ok(None)
            }
        }
        // The chat was deleted and this page missed the news (its event stream was down):
        // leave it as if the news had come. The text stays in the composer.
        Err(e) if e.code == crate::ErrorCode::NotFound && thread.is_some() => {
            if let Some(id) = thread {
                state.apply(ChatEvent::ThreadDeleted { thread_id: id });
            }
            Err("This chat was deleted, so your message was not sent. It is still here: send it to start a new chat.".into())
        }
        // The page is already moving to the browser's current session (see
        // `client::restart_session`); the text stays in the composer for it.
        Err(e) if e.code.session_gone() => Err(
            "Your message was not sent: this browser's session changed meanwhile. It is still here: send it again.".into(),
        ),
        Err(e) => Err(e.message),
    }
}
