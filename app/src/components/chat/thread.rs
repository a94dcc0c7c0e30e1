//! The open chat: its header (title, export) and its messages, each a bubble with its
//! actions (edit, rate with an optional comment, copy, regenerate), read out to screen
//! readers as replies arrive.

use super::{focus_rating, state::ChatState};
use crate::browser::{copy_code_on_click, copy_text, download, focus_after_ms, focus_later};
use crate::{
    api::{self},
    components::icon::{Icon, IconName},
    model::{
        ActionId, Attachment, ExportFormat, MAX_COMMENT_CHARS, MessageId, MessageStatus,
        MessageView, Rating, Role, Step, StepId, StepKind, StepStatus, ThreadId, human_size,
    },
};
use leptos::{lazy, prelude::*};

#[component]
pub(super) fn ThreadHeader(id: ThreadId) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let title = crate::derived::memo(move || {
        state.current.with(|c| {
            c.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .filter(|t| t.thread.id == id)
                .map(|t| t.thread.title.clone())
                .unwrap_or_default()
        })
    });
    let export = Action::new(move |format: &ExportFormat| {
        let format = *format;
        async move {
            if let Ok(file) = api::export_thread(id, format).await {
                download(&file.filename, &file.mime, &file.content);
            }
        }
    });
    let export = move |format| {
        export.dispatch(format);
    };
    view! {
        <header class="thread-head">
            <h1 data-testid="thread-title">{move || title.get()}</h1>
            <div class="thread-actions">
                // A phone shows only ".md" and ".json", leaving the title room to be read.
                <button class="ghost" aria-label="Export .md" on:click=move |_| export(ExportFormat::Markdown)><span class="wide-only">"Export "</span>".md"</button>
                <button class="ghost" aria-label="Export .json" on:click=move |_| export(ExportFormat::Json)><span class="wide-only">"Export "</span>".json"</button>
            </div>
        </header>
    }
}

#[component]
pub(super) fn Messages() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let messages = move || {
        state.current.with(|c| {
            c.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .map(|t| t.messages.iter().map(|m| m.message.id).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    };
    // Only the last reply offers Regenerate; an earlier one stops offering it when a newer
    // reply arrives, without being rebuilt.
    let last_assistant = crate::derived::memo(move || {
        state.current.with(|c| {
            c.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .and_then(|t| {
                    t.messages
                        .iter()
                        .rev()
                        .find(|m| m.message.role == Role::Assistant)
                        .map(|m| m.message.id)
                })
        })
    });
    let list_ref = NodeRef::<leptos::html::Div>::new();
    // Whether the reader is at the end of the list. A reply is followed only then: someone
    // who scrolled up to read is left where they are, with a way back.
    let at_bottom = RwSignal::new(true);
    // Where following last left the list. The reader's own scroll is reported by an event
    // that can come after the next words: by then a follow would have pulled the list
    // back down and the event would find it at the bottom, as if the reader had never moved.
    let followed_to = StoredValue::new(None::<i32>);
    let to_bottom = move || {
        if let Some(el) = list_ref.get_untracked() {
            el.set_scroll_top(el.scroll_height());
            followed_to.set_value(Some(el.scroll_top()));
        }
    };
    Effect::new(move |_| {
        state.current.track();
        if !at_bottom.get_untracked() {
            return;
        }
        if let Some(el) = list_ref.get_untracked() {
            let gap = el.scroll_height() - el.scroll_top() - el.client_height();
            // Moved up since the last follow, and not merely clamped by shorter content:
            // the reader scrolled away, whatever the scroll event will say.
            let moved_up = followed_to
                .get_value()
                .is_some_and(|top| el.scroll_top() + 24 < top);
            if moved_up && gap > 24 {
                at_bottom.set(false);
                return;
            }
        }
        to_bottom();
    });
    let on_scroll = move |_| {
        if let Some(el) = list_ref.get_untracked() {
            // A few pixels of slack: zoom and rounding rarely land exactly on the end.
            let gap = el.scroll_height() - el.scroll_top() - el.client_height();
            at_bottom.set(gap <= 24);
        }
    };
    // What a screen reader hears of the newest reply: whole sentences as they complete and
    // the rest when it ends, through one polite live region, never each token.
    let announcement = RwSignal::new(String::new());
    let heard = StoredValue::new(None::<(MessageId, usize, MessageStatus)>);
    Effect::new(move |_| {
        let Some((id, content, status, role)) = state.current.with(|c| {
            c.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .and_then(|t| t.messages.last())
                .map(|m| {
                    (
                        m.message.id,
                        m.message.content.clone(),
                        m.message.status,
                        m.message.role,
                    )
                })
        }) else {
            return;
        };
        if role != Role::Assistant {
            return;
        }
        let (from, before) = match heard.get_value() {
            Some((h, n, st)) if h == id => (n, Some(st)),
            // A reply already finished when the page showed it is not read out again.
            _ if status != MessageStatus::Streaming => {
                heard.set_value(Some((id, content.len(), status)));
                return;
            }
            _ => (0, None),
        };
        let upto = if status == MessageStatus::Streaming {
            // The end of the last complete sentence so far.
            content
                .get(from..)
                .unwrap_or_default()
                .char_indices()
                .rev()
                .find(|&(i, ch)| {
                    matches!(ch, '.' | '!' | '?' | '\n')
                        && content[from + i + ch.len_utf8()..]
                            .chars()
                            .next()
                            .is_some_and(char::is_whitespace)
                })
                .map_or(from, |(i, ch)| from + i + ch.len_utf8())
        } else {
            content.len()
        };
        let mut said = content
            .get(from.min(upto)..upto)
            .unwrap_or_default()
            .trim()
            .to_owned();
        if before != Some(status) {
            match status {
                MessageStatus::Stopped => said.push_str(" Reply stopped."),
                MessageStatus::Error => said.push_str(" The reply failed."),
                _ => {}
            }
        }
        heard.set_value(Some((id, upto, status)));
        let said = said.trim().to_owned();
        if !said.is_empty() {
            announcement.set(said);
        }
    });
    let jump = move |_| {
        at_bottom.set(true);
        to_bottom();
        // The button goes away; the focus goes where the next thing is typed.
        focus_later("[data-testid=composer]");
    };

    view! {
        <div class="messages-wrap">
        <div class="visually-hidden" aria-live="polite" data-testid="live">{move || announcement.get()}</div>
        <Show when=move || !at_bottom.get()>
            <button class="jump-latest" data-testid="jump-latest" on:click=jump>"↓ Jump to latest"</button>
        </Show>
        <div class="messages" node_ref=list_ref on:click=copy_code_on_click on:scroll=on_scroll data-testid="messages">
            <For
                each=messages
                // A bubble is built once per message and follows the message's changes in
                // place (each streamed word, a rating, the end of a reply), so nothing in it
                // is rebuilt under the person's focus or their half-written text.
                key=|id| *id
                children=move |id| {
                    let is_last = Signal::derive(move || last_assistant.get() == Some(id));
                    state.shown(id).map(|m| view! { <Bubble m=m is_last=is_last /> })
                }
            />
        </div>
        </div>
    }
}

#[component]
fn Bubble(m: MessageView, is_last: Signal<bool>) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let (id, role, thread_id) = (m.message.id, m.message.role, m.message.thread_id);
    // The message as the open thread holds it now. A message that has just left the thread
    // keeps its last state until its bubble goes.
    let m = Memo::new_owning(move |prev: Option<MessageView>| {
        state.current.with(|c| {
            let now = c
                .as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .and_then(|t| t.messages.iter().find(|x| x.message.id == id));
            match (now, prev) {
                (Some(now), Some(prev)) if *now == prev => (prev, false),
                (Some(now), _) => (now.clone(), true),
                (None, Some(prev)) => (prev, false),
                (None, None) => (m.clone(), true),
            }
        })
    });
    let status = Memo::new(move |_| m.with(|m| m.message.status));
    let finished = Memo::new(move |_| status.get() != MessageStatus::Streaming);
    let rating = Memo::new(move |_| m.with(|m| m.message.feedback.as_ref().map(|f| f.rating)));
    let comment =
        Memo::new(move |_| m.with(|m| m.message.feedback.as_ref().and_then(|f| f.comment.clone())));
    let content = move || m.with_untracked(|m| m.message.content.clone());

    let editing = RwSignal::new(false);
    let draft = RwSignal::new(String::new());
    let streaming_here = move || state.streaming().is_some();

    let body = move || match role {
        Role::User => {
            view! { <div class="text">{move || m.with(|m| m.message.content.clone())}</div> }
                .into_any()
        }
        Role::Assistant => view! {
            <Steps m=m />
            <div class="markdown" inner_html=move || m.with(|m| m.html.clone())></div>
            <ActionButtons m=m finished=finished />
        }
        .into_any(),
    };

    // A rating, with or without its comment. The answer is the message as rated.
    let feedback = Action::new(move |(next, text): &(Option<Rating>, Option<String>)| {
        let (next, text) = (*next, text.clone());
        let inviting = next.is_some() && text.is_none();
        async move {
            if let Ok(v) = api::set_feedback(id, next, text).await {
                state.upsert_message(v);
                if inviting {
                    focus_later("[data-testid=feedback-comment]");
                }
            }
        }
    });
    let rate = move |r: Rating| {
        let next = if rating.get_untracked() == Some(r) {
            None
        } else {
            Some(r)
        };
        // A rating invites a comment; taking it back closes the invitation.
        state.commenting.set(next.map(|_| id));
        feedback.dispatch((next, None));
    };
    // Both replace the reply, whose new state arrives as events; the button or form the
    // focus was on goes with it: the focus moves to the composer, where Esc stops the new
    // reply and the next message is typed.
    let ask_again = Action::new(move |edit: &Option<String>| {
        let edit = edit.clone();
        async move {
            let _ = match edit {
                Some(text) => api::edit_message(id, text).await.map(drop),
                None => api::regenerate_reply(thread_id).await.map(drop),
            };
        }
    });
    let regenerate = move |_| {
        focus_later("[data-testid=composer]");
        ask_again.dispatch(None);
    };
    // The comment field starts from the saved comment, and follows it when it changes.
    let comment_draft = RwSignal::new(String::new());
    Effect::new(move |_| comment_draft.set(comment.get().unwrap_or_default()));
    let close_comment = move || {
        state.commenting.set(None);
        // The focus goes back to the rating it came from, never to <body>.
        if let Some(r) = rating.get_untracked() {
            focus_rating(id, r);
        }
    };
    let close_comment = Callback::new(move |()| close_comment());
    let commenting = move || state.commenting.get() == Some(id) && rating.get().is_some();
    let pressed = move |r: Rating| move || (rating.get() == Some(r)).to_string();
    let active = move |r: Rating| move || rating.get() == Some(r);

    view! {
        <article
            class=match role { Role::User => "bubble user", Role::Assistant => "bubble assistant" }
            aria-label=match role { Role::User => "You", Role::Assistant => "Assistant" }
            data-role=match role { Role::User => "user", Role::Assistant => "assistant" }
            data-status=move || match status.get() {
                MessageStatus::Streaming => "streaming",
                MessageStatus::Done => "done",
                MessageStatus::Stopped => "stopped",
                MessageStatus::Error => "error",
            }
            data-message=id.to_string()
            data-testid="message"
        >
            <Show
                when=move || editing.get()
                fallback=move || {
                    view! {
                        {body()}
                        <Files m=m />
                        {move || (!finished.get()).then(|| view! { <span class="typing" aria-label="Assistant is writing">"●●●"</span> })}
                        {move || (status.get() == MessageStatus::Stopped).then(|| view! { <p class="meta">"Stopped"</p> })}
                        {move || m.with(|m| m.message.error.clone()).map(|e| view! {
                            <p class="meta error" role="alert">{format!("The reply failed: {e}")}</p>
                        })}
                    }
                }
            >
                // Its code is fetched the first time a message is edited.
                {move || Suspend::new(async move { edit_form(id, draft, editing, ask_again).await })}
            </Show>
            <div class="actions">
                {match role {
                    Role::User => view! {
                        // Gone while its form is open: the form's Cancel brings it back.
                        <button class="icon" title="Edit" aria-label="Edit message" hidden=move || editing.get() disabled=streaming_here on:click=move |_| {
                            draft.set(content());
                            editing.set(true);
                        }><Icon name=IconName::Edit /></button>
                    }.into_any(),
                    Role::Assistant => view! {
                        <Show when=move || finished.get()>
                            <button class="icon" title="Good reply" aria-label="Good reply" aria-pressed=pressed(Rating::Up) class:active=active(Rating::Up) on:click=move |_| rate(Rating::Up) data-testid="rate-up"><Icon name=IconName::ThumbUp /></button>
                            <button class="icon" title="Bad reply" aria-label="Bad reply" aria-pressed=pressed(Rating::Down) class:active=active(Rating::Down) on:click=move |_| rate(Rating::Down) data-testid="rate-down"><Icon name=IconName::ThumbDown /></button>
                            <button class="icon" title="Copy" aria-label="Copy reply" on:click=move |_| copy_text(&content())><Icon name=IconName::Copy /></button>
                            {move || is_last.get().then(|| view! {
                                <button class="icon" title="Regenerate" aria-label=move || if status.get() == MessageStatus::Error { "Retry" } else { "Regenerate reply" } data-testid="regenerate" on:click=regenerate><Icon name=IconName::Retry /></button>
                            })}
                        </Show>
                    }.into_any(),
                }}
            </div>
            {move || (!commenting()).then(|| comment.get()).flatten().map(|c| view! {
                <p class="meta feedback-note" data-testid="feedback-note">{format!("Your comment: {c}")}</p>
            })}
            // Its code is fetched the first time a reply is rated.
            <Show when=commenting>
                {move || Suspend::new(async move {
                    comment_form(id, rating, comment_draft, close_comment, feedback).await
                })}
            </Show>
        </article>
    }
}

/// A message's edit form: the text to send in its place, and the reply asked again.
#[lazy]
fn edit_form(
    id: MessageId,
    draft: RwSignal<String>,
    editing: RwSignal<bool>,
    ask_again: Action<Option<String>, ()>,
) -> AnyView {
    // On the page once its code has arrived, the first time: the focus goes there then.
    focus_later(&format!("[data-message='{id}'] textarea.edit"));
    let save = move || {
        editing.set(false);
        focus_later("[data-testid=composer]");
        ask_again.dispatch(Some(draft.get_untracked()));
    };
    let cancel = move || {
        editing.set(false);
        focus_after_ms(
            format!("[data-message='{id}'] [aria-label='Edit message']"),
            0,
        );
    };
    view! {
        <textarea
            class="edit"
            aria-label="Edit message"
            prop:value=move || draft.get()
            on:input=move |ev| draft.set(event_target_value(&ev))
            // The keys of the composer, and Esc to leave the text as it was.
            on:keydown=move |ev| {
                if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                    ev.prevent_default();
                    save();
                } else if ev.key() == "Escape" {
                    // Esc here cancels the edit, not a reply's stream.
                    ev.prevent_default();
                    ev.stop_propagation();
                    cancel();
                }
            }
        ></textarea>
        <div class="edit-actions">
            <button class="primary" on:click=move |_| save()>"Save & ask again"</button>
            <button class="ghost" on:click=move |_| cancel()>"Cancel"</button>
        </div>
    }
    .into_any()
}

/// The comment a rating invites.
#[lazy]
fn comment_form(
    id: MessageId,
    rating: Memo<Option<Rating>>,
    comment_draft: RwSignal<String>,
    close_comment: Callback<()>,
    feedback: Action<(Option<Rating>, Option<String>), ()>,
) -> AnyView {
    // It opens once the rating is in, the first time once its code has arrived too.
    focus_later("[data-testid=feedback-comment]");
    let send_comment = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(r) = rating.get_untracked() else {
            return;
        };
        let text = comment_draft.get_untracked();
        close_comment.run(());
        feedback.dispatch((Some(r), Some(text)));
    };
    view! {
        <form class="feedback-comment" on:submit=send_comment data-testid="feedback-form">
            <label for=format!("comment-{id}")>
                {move || if rating.get() == Some(Rating::Down) { "What went wrong? (optional)" } else { "What was good? (optional)" }}
            </label>
            <input
                id=format!("comment-{id}")
                data-testid="feedback-comment"
                maxlength=MAX_COMMENT_CHARS.to_string()
                autocomplete="off"
                prop:value=move || comment_draft.get()
                on:input=move |ev| comment_draft.set(event_target_value(&ev))
                on:keydown=move |ev| {
                    if ev.key() == "Escape" {
                        // Esc here closes the comment, not the reply's stream.
                        ev.prevent_default();
                        ev.stop_propagation();
                        close_comment.run(());
                    }
                }
            />
            <div class="edit-actions">
                <button class="primary" type="submit" data-testid="feedback-send">"Send"</button>
                <button class="ghost" type="button" data-testid="feedback-skip" on:click=move |_| close_comment.run(())>"Not now"</button>
            </div>
        </form>
    }
    .into_any()
}

/// The buttons a finished reply offers. A click asks the server to answer it (the server
/// reads the action from its own copy of the reply); the buttons then go, here and in every
/// other tab, and the answer streams in as a new reply.
#[component]
fn ActionButtons(m: Memo<MessageView>, finished: Memo<bool>) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let id = m.with_untracked(|m| m.message.id);
    let actions = Memo::new(move |_| {
        m.with(|m| {
            m.message
                .actions
                .iter()
                .map(|a| (a.id, a.label.clone()))
                .collect::<Vec<_>>()
        })
    });
    let act = Action::new(move |action: &ActionId| {
        let action = *action;
        async move {
            match api::act(id, action).await {
                Ok(reply) => {
                    state.upsert_message(reply);
                    Ok(())
                }
                Err(e) => Err(e.message),
            }
        }
    });
    let failed = move || act.value().get().and_then(Result::err);
    view! {
        <Show when=move || finished.get() && actions.with(|a| !a.is_empty())>
            <div class="reply-actions" role="group" aria-label="Choices" data-testid="actions">
                <For
                    each=move || actions.get()
                    key=|(id, _)| *id
                    children=move |(action, label)| view! {
                        <button
                            class="choice"
                            data-testid="action"
                            disabled=move || act.pending().get()
                            on:click=move |_| {
                                // The buttons go with the answer; the focus goes where the
                                // next thing is typed.
                                focus_later("[data-testid=composer]");
                                act.dispatch(action);
                            }
                        >{label}</button>
                    }
                />
            </div>
        </Show>
        {move || failed().map(|e| view! { <p class="meta error" role="alert">{e}</p> })}
    }
}

/// A message's files: pictures as thumbnails that open full size, anything else as a card
/// that downloads. Both come from the session's own file endpoint, which serves nothing
/// of anyone else's.
#[component]
fn Files(m: Memo<MessageView>) -> impl IntoView {
    let files = Memo::new(move |_| m.with(|m| m.message.attachments.clone()));
    view! {
        <Show when=move || files.with(|f| !f.is_empty())>
            <div class="files" data-testid="files">
                <For each=move || files.get() key=|a| a.id let:a>
                    {file_view(a)}
                </For>
            </div>
        </Show>
    }
}

fn file_view(a: Attachment) -> AnyView {
    let url = a.url();
    if a.is_image() {
        view! {
            <a class="thumb" href=url.clone() target="_blank" rel="noopener" data-testid="file-image" title=a.name.clone()>
                <img src=url.clone() alt=a.name.clone() loading="lazy" />
            </a>
        }
        .into_any()
    } else {
        view! {
            <a class="file-card" href=url download=a.name.clone() data-testid="file-card">
                <span class="file-icon"><Icon name=IconName::File /></span>
                <span class="file-name">{a.name.clone()}</span>
                <span class="muted small">{format!("{} · {}", a.mime, human_size(a.size))}</span>
            </a>
        }
        .into_any()
    }
}

/// A reply's steps, each a folded block that opens to its input and output, nested as
/// they ran. Blocks are keyed by step id and follow their step in place, so one the person
/// opened stays open while the reply goes on.
#[component]
fn Steps(m: Memo<MessageView>) -> impl IntoView {
    let steps = Memo::new(move |_| m.with(|m| m.message.steps.clone()));
    // A reply that has ended leaves nothing running, whatever a step last said.
    let ended = Memo::new(move |_| m.with(|m| m.message.status != MessageStatus::Streaming));
    view! {
        <Show when=move || steps.with(|s| !s.is_empty())>
            <div class="steps" data-testid="steps">{step_list(steps, ended, None)}</div>
        </Show>
    }
}

fn step_list(steps: Memo<Vec<Step>>, ended: Memo<bool>, parent: Option<StepId>) -> AnyView {
    let ids = move || {
        steps.with(|s| {
            s.iter()
                .filter(|s| s.parent == parent)
                .map(|s| s.id)
                .collect::<Vec<_>>()
        })
    };
    view! {
        <For each=ids key=|id| *id children=move |id| step_block(steps, ended, id) />
    }
    .into_any()
}

fn step_block(steps: Memo<Vec<Step>>, ended: Memo<bool>, id: StepId) -> AnyView {
    let step = Memo::new(move |_| steps.with(|s| s.iter().find(|s| s.id == id).cloned()));
    let status = Memo::new(move |_| match step.with(|s| s.as_ref().map(|s| s.status)) {
        Some(StepStatus::Running) if ended.get() => StepStatus::Stopped,
        other => other.unwrap_or(StepStatus::Stopped),
    });
    let field =
        move |f: fn(&Step) -> String| move || step.with(|s| s.as_ref().map(f).unwrap_or_default());
    let kind = move || {
        step.with(|s| match s.as_ref().map(|s| s.kind) {
            Some(StepKind::Tool) => "Tool",
            Some(StepKind::Retrieval) => "Retrieval",
            Some(StepKind::Reasoning) => "Reasoning",
            _ => "Step",
        })
    };
    let label = move || match status.get() {
        StepStatus::Running => "running",
        StepStatus::Done => "done",
        StepStatus::Failed => "failed",
        StepStatus::Stopped => "stopped",
    };
    let took = move || {
        step.with(|s| {
            s.as_ref()
                .and_then(|s| s.ended_ms.map(|e| (e - s.started_ms).max(0)))
                .map(|ms| {
                    if ms < 1_000 {
                        format!("{ms} ms")
                    } else {
                        // Tenths in integers: float formatting would bring its own code
                        // (some 10 kB) into the module for this one label.
                        let tenths = (ms + 50) / 100;
                        format!("{}.{} s", tenths / 10, tenths % 10)
                    }
                })
        })
    };
    let input = field(|s| s.input.clone());
    let output = field(|s| s.output.clone());
    let has_children = move || steps.with(|s| s.iter().any(|s| s.parent == Some(id)));
    view! {
        <details class="step" data-testid="step" data-status=label data-step=field(|s| s.name.clone())>
            <summary>
                <span class="step-kind">{kind}</span>
                " "
                <span class="step-name">{field(|s| s.name.clone())}</span>
                <span class="step-status" aria-live="off">
                    {move || (status.get() == StepStatus::Running).then(|| view! { <span class="spinner" aria-hidden="true"></span> })}
                    {label}
                    {move || took().map(|t| format!(" · {t}"))}
                </span>
            </summary>
            <div class="step-body">
                {move || (!input().is_empty()).then(|| view! {
                    <p class="step-label">"Input"</p>
                    <pre class="step-text" data-testid="step-input">{input}</pre>
                })}
                {move || (!output().is_empty()).then(|| view! {
                    <p class="step-label">{move || if status.get() == StepStatus::Failed { "Error" } else { "Output" }}</p>
                    <pre class="step-text" data-testid="step-output">{output}</pre>
                })}
                {move || has_children().then(|| step_list(steps, ended, Some(id)))}
            </div>
        </details>
    }
    .into_any()
}
