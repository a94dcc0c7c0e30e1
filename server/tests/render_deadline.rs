//! A page whose render never finishes is cut off at the request's deadline.
//!
//! Alone in its own process: to make a render wait forever it holds back resource loading,
//! which Leptos does for the whole process, and would stall any other test's pages.

mod common;

use server::Config;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_never_finishes_rendering_is_cut_off_at_its_deadline() {
    let app = common::spawn_with(Config {
        request_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let b = common::started(&app).await;

    // The page's data never arrives: its render waits forever once its head has gone.
    let held = leptos::server::SuppressResourceLoad::new();
    let res = common::page_request(&app, &b.cookie_header(), Duration::from_secs(60))
        .send()
        .await
        .expect("the page's head arrives");
    drop(held);
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let body = res.text().await;
    let err = body.expect_err("the body is cut off, not ended as if complete");
    assert!(
        !err.is_timeout(),
        "cut off by the server, not the client: {err}"
    );

    // The server serves on: the next page renders whole.
    let page = common::page_request(&app, &b.cookie_header(), Duration::from_secs(60))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .expect("a page that renders ends");
    assert!(page.contains("</html>"), "{page}");
}
