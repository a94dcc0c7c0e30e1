//! The browser entry point: hydrates the server-rendered page.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Lazy: a page loaded on a split-off route waits for its chunk before it hydrates.
    leptos::mount::hydrate_lazy(app::App);
}
