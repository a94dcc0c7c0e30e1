//! Chat settings and profiles: the panel that sets what the assistant declares, and the
//! profile picker and starters of an empty chat. The choice is the session's; every tab
//! reads it from the server.

use super::composer::ComposerCtx;
use crate::browser::{focus_later, typing_in_field};
use crate::derived::When;
use crate::{
    ApiError,
    api::{self},
    model::{ChatSettings, Profile, SettingKind, SettingSpec, SettingValue},
};
use leptos::{lazy, prelude::*};
use std::collections::BTreeMap;

/// The settings the page shows, and the way to change them.
#[derive(Clone, Copy)]
pub(super) struct SettingsCtx {
    pub(super) data: Resource<Result<ChatSettings, ApiError>>,
    /// Saves a profile and/or values (from the panel, which then closes, or not); answers
    /// why not, if it failed.
    save: Action<Saving, Result<(), String>>,
    /// The panel is open.
    open: RwSignal<bool>,
}

#[derive(Clone)]
struct Saving {
    profile: Option<String>,
    values: BTreeMap<String, SettingValue>,
    from_panel: bool,
}

impl SettingsCtx {
    pub(super) fn new(epoch: RwSignal<u32>) -> Self {
        let data = Resource::new(move || epoch.get(), |_| api::get_settings());
        let open = RwSignal::new(false);
        let save = Action::new(move |s: &Saving| {
            let s = s.clone();
            async move {
                match api::set_settings(s.profile, s.values).await {
                    Ok(now) => {
                        data.set(Some(Ok(now)));
                        if s.from_panel {
                            open.set(false);
                            focus_later("[data-testid=settings-open]");
                        }
                        Ok(())
                    }
                    Err(e) => Err(e.message),
                }
            }
        });
        Self { data, save, open }
    }

    fn current(&self) -> Option<ChatSettings> {
        self.data.get().and_then(Result::ok)
    }

    /// The chosen profile, if the assistant offers any.
    pub(super) fn profile(&self) -> Option<Profile> {
        self.current().and_then(|s| {
            let id = s.profile?;
            s.profiles.into_iter().find(|p| p.id == id)
        })
    }

    fn choose_profile(&self, id: String) {
        self.save.dispatch(Saving {
            profile: Some(id),
            values: BTreeMap::new(),
            from_panel: false,
        });
    }
}

/// The composer's "Settings" button, when the assistant has anything to set.
#[component]
pub(super) fn SettingsButton() -> impl IntoView {
    let ctx = expect_context::<SettingsCtx>();
    let offered = move || {
        ctx.current()
            .is_some_and(|s| !s.settings.is_empty() || s.profiles.len() > 1)
    };
    view! {
        <When when=offered>
            <button
                type="button"
                class="ghost small"
                data-testid="settings-open"
                aria-expanded=move || ctx.open.get().to_string()
                aria-controls="chat-settings"
                on:click=move |_| {
                    // The panel takes the focus when it is there (see `PanelBody`).
                    ctx.open.update(|o| *o = !*o);
                }
            >"⚙ Settings"</button>
        </When>
    }
}

/// The settings panel above the composer: a draft of every value, saved at once.
#[component]
pub(super) fn SettingsPanel() -> impl IntoView {
    let ctx = expect_context::<SettingsCtx>();
    view! {
        <Show when=move || ctx.open.get()>
            // Built from the settings as they are when the panel opens: an answer arriving
            // meanwhile (its own save) must not rebuild the draft under the person's hands.
            // Its code is fetched the first time it opens: most visits never open it.
            {move || {
                ctx.data
                    .get_untracked()
                    .and_then(Result::ok)
                    .map(|s| Suspend::new(async move { panel_body(s).await }))
            }}
        </Show>
    }
}

#[lazy]
fn panel_body(s: ChatSettings) -> AnyView {
    view! { <PanelBody s=s /> }.into_any()
}

#[component]
fn PanelBody(s: ChatSettings) -> impl IntoView {
    let ctx = expect_context::<SettingsCtx>();
    // Into the panel, where Esc closes it and Enter saves; once it is on the page, which
    // the first time is after its code has arrived.
    focus_later("#chat-settings select, #chat-settings input");
    let draft = RwSignal::new(s.values.clone());
    let profile = RwSignal::new(s.profile.clone());
    let close = move || {
        ctx.open.set(false);
        focus_later("[data-testid=settings-open]");
    };
    // The panel closes once its save has gone through; a failure stays to be read.
    let saved_here = RwSignal::new(false);
    let save = move |_: ()| {
        saved_here.set(true);
        ctx.save.dispatch(Saving {
            profile: profile.get_untracked(),
            values: draft.get_untracked(),
            from_panel: true,
        });
    };
    let error = move || {
        saved_here
            .get()
            .then(|| ctx.save.value().get().and_then(Result::err))
            .flatten()
    };
    let profiles = s.profiles.clone();
    view! {
        // Not a form of its own: it sits inside the composer's form, and forms do not nest.
        <div
            id="chat-settings"
            class="settings-panel"
            role="dialog"
            aria-label="Chat settings"
            data-testid="settings"
            on:keydown=move |ev| {
                if ev.key() == "Escape" {
                    // Esc here closes the panel, not the reply's stream.
                    ev.prevent_default();
                    ev.stop_propagation();
                    close();
                } else if ev.key() == "Enter" && typing_in_field(&ev) {
                    // Enter in a field saves the settings; left alone it would send the
                    // composer's message, whose form the panel is in.
                    ev.prevent_default();
                    save(());
                }
            }
        >
            {(profiles.len() > 1).then(|| view! {
                <label class="setting">
                    <span>"Profile"</span>
                    <select
                        data-testid="setting-profile"
                        on:change=move |ev| profile.set(Some(event_target_value(&ev)))
                    >
                        {profiles.iter().map(|p| {
                            let id = p.id.clone();
                            let selected = s.profile.as_deref() == Some(p.id.as_str());
                            view! { <option value=id selected=selected>{p.name.clone()}</option> }
                        }).collect_view()}
                    </select>
                </label>
            })}
            {s.settings.into_iter().map(|spec| control(spec, draft)).collect_view()}
            {move || error().map(|e| view! { <p class="meta error" role="alert">{e}</p> })}
            <div class="edit-actions">
                <button class="primary" type="button" data-testid="settings-save" disabled=move || ctx.save.pending().get() on:click=move |_| save(())>"Save"</button>
                <button class="ghost" type="button" on:click=move |_| close()>"Cancel"</button>
            </div>
        </div>
    }
}

/// One setting's control, writing into `draft`.
fn control(spec: SettingSpec, draft: RwSignal<BTreeMap<String, SettingValue>>) -> AnyView {
    let id = spec.id.clone();
    let value = {
        let id = id.clone();
        Signal::derive(move || draft.with(|d| d.get(&id).cloned()))
    };
    let set = {
        let id = id.clone();
        move |v: SettingValue| {
            draft.update(|d| {
                d.insert(id.clone(), v);
            })
        }
    };
    let testid = format!("setting-{id}");
    let help = spec
        .help
        .clone()
        .map(|h| view! { <small class="muted">{h}</small> });
    match spec.kind {
        SettingKind::Select { options, .. } => {
            let current = value
                .get_untracked()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            view! {
                <label class="setting">
                    <span>{spec.label}</span>
                    <select data-testid=testid on:change=move |ev| set(SettingValue::Text(event_target_value(&ev)))>
                        {options.into_iter().map(|o| {
                            let selected = o.value == current;
                            view! { <option value=o.value selected=selected>{o.label}</option> }
                        }).collect_view()}
                    </select>
                    {help}
                </label>
            }
            .into_any()
        }
        SettingKind::Slider { min, max, step, .. } => view! {
            <label class="setting">
                <span>{spec.label}" "<output>{move || value.get().and_then(|v| v.as_f64()).map(|v| format!("{v}")).unwrap_or_default()}</output></span>
                <input
                    type="range"
                    data-testid=testid
                    min=min.to_string()
                    max=max.to_string()
                    step=step.to_string()
                    prop:value=move || value.get().and_then(|v| v.as_f64()).unwrap_or(min).to_string()
                    on:input=move |ev| {
                        if let Ok(v) = event_target_value(&ev).parse::<f64>() {
                            set(SettingValue::Number(v));
                        }
                    }
                />
                {help}
            </label>
        }
        .into_any(),
        SettingKind::Switch { .. } => view! {
            <label class="setting switch">
                <input
                    type="checkbox"
                    role="switch"
                    data-testid=testid
                    prop:checked=move || value.get().and_then(|v| v.as_bool()).unwrap_or(false)
                    on:change=move |ev| set(SettingValue::Switch(event_target_checked(&ev)))
                />
                <span>{spec.label}</span>
                {help}
            </label>
        }
        .into_any(),
        SettingKind::Text { max_chars, .. } => view! {
            <label class="setting">
                <span>{spec.label}</span>
                <input
                    type="text"
                    data-testid=testid
                    maxlength=max_chars.to_string()
                    autocomplete="off"
                    prop:value=move || value.get().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
                    on:input=move |ev| set(SettingValue::Text(event_target_value(&ev)))
                />
                {help}
            </label>
        }
        .into_any(),
    }
}

/// The empty chat's profile picker (when there is a choice) and the chosen profile's
/// starters.
#[component]
pub(super) fn Starters() -> impl IntoView {
    let ctx = expect_context::<SettingsCtx>();
    let composer = expect_context::<ComposerCtx>();
    let profiles = move || ctx.current().map(|s| s.profiles).unwrap_or_default();
    let chosen = move || ctx.current().and_then(|s| s.profile);
    view! {
        <When when=move || { profiles().len() > 1 }>
            <div class="profiles" role="group" aria-label="Profile" data-testid="profiles">
                {move || profiles().into_iter().map(|p| {
                    let id = p.id.clone();
                    let pressed = {
                        let id = id.clone();
                        move || (chosen().as_deref() == Some(id.as_str())).to_string()
                    };
                    view! {
                        <button
                            type="button"
                            class="profile"
                            aria-pressed=pressed
                            title=p.description.clone()
                            data-testid="profile"
                            on:click=move |_| ctx.choose_profile(id.clone())
                        >{p.name}</button>
                    }
                }).collect_view()}
            </div>
        </When>
        <div class="starters" data-testid="starters">
            {move || ctx.profile().map(|p| p.starters).unwrap_or_default().into_iter().map(|st| {
                let message = st.message.clone();
                view! {
                    <button class="starter" data-testid="starter" on:click=move |_| composer.send_text(message.clone(), false)>
                        {st.label}
                    </button>
                }
            }).collect_view()}
        </div>
    }
}
