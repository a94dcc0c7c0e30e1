//! The PostgreSQL store behind the real binary: what a browser does lands in the database,
//! survives a SIGKILL of Confide, and another browser never sees it; two instances on one
//! database serve the same browser.

mod common;
#[allow(dead_code)]
#[path = "../src/store/postgres_test_support.rs"]
mod postgres_support;

use common::{Browser, ChildServer};
use postgres_support::PostgresServer;
use reqwest::StatusCode;
use serde_json::json;

fn env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CONFIDE_STORE", url.to_owned()),
        ("CONFIDE_ECHO_DELAY", "0".into()),
    ]
}

#[tokio::test]
async fn chats_live_in_postgres_across_a_kill_and_stay_private() {
    let pg = PostgresServer::start();
    let url = pg.fresh_database().await;
    let first = ChildServer::launch(&env(&url)).await;
    let mut ann = Browser::new();
    assert_eq!(ann.start(&first).await.status, StatusCode::OK);
    assert_eq!(
        ann.set_note(&first, "kept in PostgreSQL").await.status,
        StatusCode::OK
    );
    // U+0000, which PostgreSQL's TEXT cannot hold, round-trips like everywhere else.
    let first_turn = "first turn, nul\u{0}byte";
    let sent = ann
        .call(&first, "messages/send", json!({ "content": first_turn }))
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    common::settled(&first, &mut ann, &tid).await;

    // Another browser on the same instance: the thread is not there for it.
    let mut bob = Browser::new();
    assert_eq!(bob.start(&first).await.status, StatusCode::OK);
    let r = bob
        .call(&first, "threads/get", json!({ "thread_id": tid }))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert!(
        bob.call(&first, "threads/list", json!({}))
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );

    first.kill_hard().await;
    let second = ChildServer::launch(&env(&url)).await;
    let r = ann.start(&second).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["new"], false, "the session itself survived");
    assert_eq!(
        ann.get_note(&second).await.body["text"],
        "kept in PostgreSQL"
    );
    let t = ann
        .call(&second, "threads/get", json!({ "thread_id": tid }))
        .await;
    assert_eq!(t.status, StatusCode::OK);
    let messages = t.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1]["status"], "done");
    assert_eq!(messages[0]["content"], first_turn);
    assert_eq!(messages[1]["content"], first_turn);
}

#[tokio::test]
async fn two_instances_on_one_database_serve_the_same_browser() {
    let pg = PostgresServer::start();
    let url = pg.fresh_database().await;
    let settings = env(&url);
    let (a, b) = tokio::join!(
        ChildServer::launch(&settings),
        ChildServer::launch(&settings)
    );
    let mut ann = Browser::new();
    assert_eq!(ann.start(&a).await.status, StatusCode::OK);
    let sent = ann
        .call(&a, "messages/send", json!({ "content": "asked on one" }))
        .await;
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    common::settled(&a, &mut ann, &tid).await;
    // The next turn goes to the other instance, which knows the session and the thread.
    let r = ann
        .call(
            &b,
            "messages/send",
            json!({ "thread_id": tid, "content": "asked on the other" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let t = common::settled(&b, &mut ann, &tid).await;
    assert_eq!(t["messages"].as_array().unwrap().len(), 4);
    // A browser on the other instance finds nothing of it.
    let mut bob = Browser::new();
    assert_eq!(bob.start(&b).await.status, StatusCode::OK);
    let r = bob
        .call(&b, "threads/get", json!({ "thread_id": tid }))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
