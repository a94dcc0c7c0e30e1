//! The smallest client of Confide's shape: a hydrated page with a router (a parent route,
//! a child, a page split off with `#[lazy_route]`), two server functions (one read through a
//! resource under `Suspense`, one called by an action), a keyed list and a form. Without
//! its features it is a counter: the framework alone.
use leptos::prelude::*;
#[cfg(feature = "router")]
use leptos_router::{
    Lazy, LazyRoute,
    components::{A, Outlet, ParentRoute, Route, Router, Routes},
    lazy_route, path,
};
#[cfg(feature = "data")]
use serde::{Deserialize, Serialize};

#[cfg(feature = "data")]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub text: String,
    pub done: bool,
}

#[cfg(feature = "data")]
#[server]
pub async fn list_items() -> Result<Vec<Item>, ServerFnError> {
    Ok(Vec::new())
}

#[cfg(feature = "data")]
#[server]
pub async fn add_item(text: String) -> Result<Item, ServerFnError> {
    Ok(Item {
        id: text.clone(),
        text,
        done: false,
    })
}

#[cfg(feature = "router")]
#[component]
pub fn App() -> impl IntoView {
    leptos_meta::provide_meta_context();
    view! {
        <Router>
            <header><A href="/">"Home"</A> <A href="/other">"Other"</A></header>
            <main>
                <Routes fallback=|| "Not found">
                    <ParentRoute path=path!("") view=Layout>
                        <Route path=path!("") view=Home />
                    </ParentRoute>
                    <Route path=path!("/other") view={Lazy::<OtherPage>::new()} />
                </Routes>
            </main>
        </Router>
    }
}

#[cfg(not(feature = "router"))]
#[component]
pub fn App() -> impl IntoView {
    view! { <main><Home /></main> }
}

#[cfg(feature = "router")]
#[component]
fn Layout() -> impl IntoView {
    view! { <div class="layout"><Outlet /></div> }
}

#[cfg(feature = "data")]
#[component]
fn Home() -> impl IntoView {
    let items = LocalResource::new(list_items);
    let added = RwSignal::new(Vec::<Item>::new());
    let add = Action::new_local(|text: &String| add_item(text.clone()));
    let draft = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(Ok(item)) = add.value().get() {
            added.update(|a| a.push(item));
        }
    });
    view! {
        <Suspense fallback=|| "Loading…">
            {move || items.get().map(|r| match r {
                Ok(list) => view! {
                    <ul>
                        <For each=move || list.clone().into_iter().chain(added.get()) key=|i| i.id.clone() let:item>
                            <li class:done=item.done>{item.text}</li>
                        </For>
                    </ul>
                }.into_any(),
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
            })}
        </Suspense>
        <form on:submit=move |ev| { ev.prevent_default(); add.dispatch(draft.get()); draft.set(String::new()); }>
            <input prop:value=draft on:input=move |ev| draft.set(event_target_value(&ev)) />
            <button disabled=move || draft.with(|d| d.is_empty())>"Add"</button>
        </form>
    }
}

#[cfg(not(feature = "data"))]
#[component]
fn Home() -> impl IntoView {
    let n = RwSignal::new(0);
    view! { <button on:click=move |_| n.update(|n| *n += 1)>{n}</button> }
}

#[cfg(feature = "router")]
struct OtherPage;

#[cfg(feature = "router")]
#[lazy_route]
impl LazyRoute for OtherPage {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <p>"Another page"</p> }.into_any()
    }
}

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_lazy(App);
}
