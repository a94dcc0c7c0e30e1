//! Derived values that stay true on the server.
//!
//! The server renders a page on a multi-threaded runtime, and a resource settles on whichever
//! thread ran its fetch. A memo that reads the resource and is computing at that moment misses
//! the change: `reactive_graph` marks a memo clean once its computation returns, whatever
//! arrived meanwhile. The memo then holds the value from before the resource settled,
//! `<Suspense>` sees nothing pending and renders that stale branch (an empty chat list for a
//! session that has chats), and the browser, which hydrates from the resource's real value,
//! fails to hydrate the page. A page is rendered once on the server, so memoising there buys
//! nothing: there these are plain derived values, read afresh each time. In the browser
//! (one thread) they are memos, so what depends on them reruns only when they change.

use leptos::either::Either;
use leptos::prelude::*;

/// A memo in the browser, a plain derived value on the server.
pub fn memo<T>(f: impl Fn() -> T + Send + Sync + 'static) -> Signal<T>
where
    T: Clone + PartialEq + Send + Sync + 'static,
{
    #[cfg(feature = "ssr")]
    {
        Signal::derive(f)
    }
    #[cfg(not(feature = "ssr"))]
    {
        Memo::new(move |_| f()).into()
    }
}

/// Leptos' `<Show>`, with its condition a [`memo`]: use it wherever the condition reads a
/// resource.
#[component]
pub fn When<W, C>(
    children: TypedChildrenFn<C>,
    when: W,
    #[prop(optional, into)] fallback: ViewFn,
) -> impl IntoView
where
    W: Fn() -> bool + Send + Sync + 'static,
    C: IntoView + 'static,
{
    let when = memo(when);
    let children = children.into_inner();
    move || {
        if when.get() {
            Either::Left(children())
        } else {
            Either::Right(fallback.run())
        }
    }
}
