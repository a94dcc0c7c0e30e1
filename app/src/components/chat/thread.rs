//! The open chat: its header (title, export) and its messages, each a bubble with its
//! actions (edit, rate with an optional comment, copy, regenerate), read out to screen
//! readers as replies arrive.

use super::{focus_rating, state::ChatState};
use crate::browser::{copy_code_on_click, copy_text, download, focus_after_ms, focus_later};
use crate::{
    api::{self},
    components::icon::{Icon, IconName},
    model::{
        ExportFormat, MAX_COMMENT_CHARS, MessageId, MessageStatus, MessageView, Rating, Role,
        ThreadId,
    },
};
use leptos::{prelude::*, task::spawn_local};

#[component]
pub(super) fn ThreadHeader(id: ThreadId) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let title = Memo::new(move |_| {
        state.current.with(|c| {
            c.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .filter(|t| t.thread.id == id)
                .map(|t| t.thread.title.clone())
                .unwrap_or_default()
        })
    });
    let export = move |format: ExportFormat| {
        spawn_local(async move {
            if let Ok(file) = api::export_thread(id, format).await {
                download(&file.filename, &file.mime, &file.content);
            }
        })
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
                .map(|t| t.messages.clone())
                .unwrap_or_default()
        })
    };
    // Only the last reply offers Regenerate; an earlier one stops offering it when a newer
    // reply arrives, without being rebuilt.
    let last_assistant = Memo::new(move |_| {
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
                // A message's version changes with the state kept for it, so For rebuilds
                // exactly the bubbles whose message changed (a streaming reply, a rating).
                key=move |m| (m.message.id, state.version(&m.message.id))
                children=move |m| {
                    let id = m.message.id;
                    let is_last = Signal::derive(move || last_assistant.get() == Some(id));
                    view! { <Bubble m=m is_last=is_last /> }
                }
            />
        </div>
        </div>
    }
}

#[component]
fn Bubble(m: MessageView, is_last: Signal<bool>) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let msg = m.message.clone();
    let id = msg.id;
    let role_class = match msg.role {
        Role::User => "bubble user",
        Role::Assistant => "bubble assistant",
    };
    let status = match msg.status {
        MessageStatus::Streaming => "streaming",
        MessageStatus::Done => "done",
        MessageStatus::Stopped => "stopped",
        MessageStatus::Error => "error",
    };
    let editing = RwSignal::new(false);
    let draft = RwSignal::new(msg.content.clone());
    let streaming_here = move || state.streaming().is_some();

    let (role, msg_status, thread_id, error) =
        (msg.role, msg.status, msg.thread_id, msg.error.clone());
    let (text, html) = (msg.content.clone(), m.html.clone());
    let body = move || match role {
        Role::User => view! { <div class="text">{text.clone()}</div> }.into_any(),
        Role::Assistant => {
            view! { <div class="markdown" inner_html=html.clone()></div> }.into_any()
        }
    };

    let rate = move |r: Rating| {
        let current = state.current.with_untracked(|c| {
            c.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .and_then(|t| {
                    t.messages
                        .iter()
                        .find(|x| x.message.id == id)
                        .and_then(|x| x.message.feedback.as_ref().map(|f| f.rating))
                })
        });
        let next = if current == Some(r) { None } else { Some(r) };
        // A rating invites a comment; taking it back closes the invitation.
        state.commenting.set(next.map(|_| id));
        spawn_local(async move {
            if let Ok(v) = api::set_feedback(id, next, None).await {
                // The new state rebuilds the bubble, and the focus with it goes: put it where
                // the person is now, the comment field or the button they pressed.
                state.upsert_message(v);
                match next {
                    Some(_) => focus_later("[data-testid=feedback-comment]"),
                    None => focus_rating(id, r),
                }
            }
        });
    };
    // Both replace the reply, and the button or form the focus was on goes with it: the
    // focus moves to the composer, where Esc stops the new reply and the next message is typed.
    let regenerate = move |_| {
        let tid = thread_id;
        focus_later("[data-testid=composer]");
        spawn_local(async move {
            let _ = api::regenerate_reply(tid).await;
        });
    };
    let save_edit = move |_| {
        let text = draft.get_untracked();
        editing.set(false);
        focus_later("[data-testid=composer]");
        spawn_local(async move {
            let _ = api::edit_message(id, text).await;
        });
    };
    let content = msg.content.clone();
    let rating = msg.feedback.as_ref().map(|f| f.rating);
    let comment = msg.feedback.as_ref().and_then(|f| f.comment.clone());
    let comment_draft = RwSignal::new(comment.clone().unwrap_or_default());
    let close_comment = move || {
        state.commenting.set(None);
        // The focus goes back to the rating it came from, never to <body>.
        if let Some(r) = rating {
            focus_rating(id, r);
        }
    };
    let send_comment = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(r) = rating else { return };
        let text = comment_draft.get_untracked();
        close_comment();
        spawn_local(async move {
            if let Ok(v) = api::set_feedback(id, Some(r), Some(text)).await {
                state.upsert_message(v);
                focus_rating(id, r);
            }
        });
    };
    let commenting = move || state.commenting.get() == Some(id) && rating.is_some();

    view! {
        <article class=role_class aria-label=if msg.role == Role::User { "You" } else { "Assistant" } data-role=if msg.role == Role::User { "user" } else { "assistant" } data-status=status data-message=id.to_string() data-testid="message">
            <Show
                when=move || editing.get()
                fallback=move || {
                    view! {
                        {body()}
                        {(msg_status == MessageStatus::Streaming).then(|| view! { <span class="typing" aria-label="Assistant is writing">"●●●"</span> })}
                        {(msg_status == MessageStatus::Stopped).then(|| view! { <p class="meta">"Stopped"</p> })}
                        {error.clone().map(|e| view! {
                            <p class="meta error" role="alert">{format!("The reply failed: {e}")}</p>
                        })}
                    }
                }
            >
                <textarea class="edit" aria-label="Edit message" prop:value=move || draft.get() on:input=move |ev| draft.set(event_target_value(&ev))></textarea>
                <div class="edit-actions">
                    <button class="primary" on:click=save_edit>"Save & ask again"</button>
                    <button class="ghost" on:click=move |_| {
                        editing.set(false);
                        focus_after_ms(format!("[data-message='{id}'] [aria-label='Edit message']"), 0);
                    }>"Cancel"</button>
                </div>
            </Show>
            <div class="actions">
                {match msg.role {
                    Role::User => view! {
                        <button class="icon" title="Edit" aria-label="Edit message" disabled=streaming_here on:click=move |_| {
                            editing.set(true);
                            focus_after_ms(format!("[data-message='{id}'] textarea.edit"), 0);
                        }><Icon name=IconName::Edit /></button>
                    }.into_any(),
                    Role::Assistant if msg.status != MessageStatus::Streaming => view! {
                        <button class="icon" title="Good reply" aria-label="Good reply" aria-pressed=(rating == Some(Rating::Up)).to_string() class:active=rating == Some(Rating::Up) on:click=move |_| rate(Rating::Up) data-testid="rate-up"><Icon name=IconName::ThumbUp /></button>
                        <button class="icon" title="Bad reply" aria-label="Bad reply" aria-pressed=(rating == Some(Rating::Down)).to_string() class:active=rating == Some(Rating::Down) on:click=move |_| rate(Rating::Down) data-testid="rate-down"><Icon name=IconName::ThumbDown /></button>
                        <button class="icon" title="Copy" aria-label="Copy reply" on:click=move |_| copy_text(&content)><Icon name=IconName::Copy /></button>
                        {move || is_last.get().then(|| view! {
                            <button class="icon" title="Regenerate" aria-label=if msg_status == MessageStatus::Error { "Retry" } else { "Regenerate reply" } data-testid="regenerate" on:click=regenerate><Icon name=IconName::Retry /></button>
                        })}
                    }.into_any(),
                    Role::Assistant => ().into_any(),
                }}
            </div>
            {move || (!commenting()).then(|| comment.clone()).flatten().map(|c| view! {
                <p class="meta feedback-note" data-testid="feedback-note">{format!("Your comment: {c}")}</p>
            })}
            <Show when=commenting>
                <form class="feedback-comment" on:submit=send_comment data-testid="feedback-form">
                    <label for=format!("comment-{id}")>
                        {if rating == Some(Rating::Down) { "What went wrong? (optional)" } else { "What was good? (optional)" }}
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
                                close_comment();
                            }
                        }
                    />
                    <div class="edit-actions">
                        <button class="primary" type="submit" data-testid="feedback-send">"Send"</button>
                        <button class="ghost" type="button" data-testid="feedback-skip" on:click=move |_| close_comment()>"Not now"</button>
                    </div>
                </form>
            </Show>
        </article>
    }
}
