//! Several Confide instances on one Redis: one browser served by either, live events across
//! them, and Redis going away and coming back.

mod common;
#[allow(dead_code)]
#[path = "../src/store/redis_test_support.rs"]
mod redis_support;

use common::{Browser, TestApp};
use futures::StreamExt;
use redis_support::RedisServer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{AppState, Config, MemoryStore, serve};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::net::TcpListener;

/// A Confide instance on the given Redis, as its own process would set itself up.
async fn instance(redis: &RedisServer, prefix: &str) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        addr: listener.local_addr().unwrap(),
        store: server::StoreKind::Redis(redis.url()),
        redis_prefix: prefix.into(),
        store_timeout: Duration::from_millis(500),
        echo_delay: Duration::from_millis(20),
        ..Config::default()
    };
    let unused = Arc::new(MemoryStore::new(server::lifetimes(&config)));
    let state = AppState::from_config(config)
        .await
        .expect("Redis-backed state");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serve(listener, state, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    common::test_app(base, unused, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_browser_alternating_between_two_instances_keeps_one_session() {
    let redis = RedisServer::start();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let a = instance(&redis, &prefix).await;
    let b = instance(&redis, &prefix).await;
    let mut browser = Browser::new();

    let r = browser.start(&a).await;
    assert_eq!(
        (r.status, r.body["new"].clone()),
        (StatusCode::OK, json!(true))
    );
    // The proof A issued is accepted by B.
    let r = browser.start(&b).await;
    assert_eq!(
        (r.status, r.body["new"].clone()),
        (StatusCode::OK, json!(false))
    );
    assert_eq!(
        browser.set_note(&b, "written via B").await.status,
        StatusCode::OK
    );
    assert_eq!(browser.get_note(&a).await.body["text"], "written via B");

    let sent = browser
        .call(&a, "messages/send", json!({ "content": "asked on A" }))
        .await;
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let on_b = common::settled(&b, &mut browser, &tid).await;
    assert_eq!(on_b["messages"][1]["content"], "asked on A");
    for (i, app) in [&a, &b, &a, &b].into_iter().enumerate() {
        let r = browser
            .call(
                app,
                "messages/send",
                json!({ "thread_id": tid, "content": format!("turn {i}") }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        common::settled(app, &mut browser, &tid).await;
    }
    let t_a = browser
        .call(&a, "threads/get", json!({ "thread_id": tid }))
        .await
        .body;
    let t_b = browser
        .call(&b, "threads/get", json!({ "thread_id": tid }))
        .await
        .body;
    assert_eq!(t_a, t_b);
    assert_eq!(t_a["messages"].as_array().unwrap().len(), 10);

    // A stranger holding the id but not the proof is refused by both.
    let mut stranger = Browser {
        sid: browser.sid.clone(),
        proof: None,
    };
    tokio::time::sleep(Duration::from_millis(
        confide_core::guard::CLAIM_RACE_WINDOW_MS as u64,
    ))
    .await;
    assert_eq!(stranger.get_note(&a).await.status, StatusCode::FORBIDDEN);
    assert_eq!(stranger.get_note(&b).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_cross_instances() {
    let redis = RedisServer::start();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let a = instance(&redis, &prefix).await;
    let b = instance(&redis, &prefix).await;
    let mut browser = Browser::new();
    browser.start(&a).await;

    // A tab listening on A…
    let res = a
        .http
        .get(format!("{}/api/events", a.base))
        .header("cookie", browser.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = res.bytes_stream();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // …sees a message another tab sent through B, streamed to the end.
    browser
        .call(
            &b,
            "messages/send",
            json!({ "content": "across instances" }),
        )
        .await;
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut done = false;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, stream.next()).await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        if buf
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .any(|e| {
                e["type"] == "message"
                    && e["message"]["role"] == "assistant"
                    && e["message"]["status"] == "done"
            })
        {
            done = true;
            break;
        }
    }
    assert!(done, "A's stream carried B's reply to completion: {buf}");
    assert!(buf.contains("across instances"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_means_quick_503s_and_recovery_without_restart() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let a = instance(&redis, &prefix).await;
    let mut browser = Browser::new();
    assert_eq!(browser.start(&a).await.status, StatusCode::OK);

    redis.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let r = browser.get_note(&a).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            "{:?}",
            r.body
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "answered within the store timeout"
        );
    }
    // Pages still render (the public shell), and health stays up.
    assert_eq!(
        a.http
            .get(format!("{}/healthz", a.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let _back = RedisServer::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // The fresh Redis has no data: the session is claimed anew, then works.
        let r = browser.start(&a).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Confide did not recover: {:?}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        browser.set_note(&a, "after the outage").await.status,
        StatusCode::OK
    );
    assert_eq!(browser.get_note(&a).await.body["text"], "after the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_works_from_the_other_instance() {
    let redis = RedisServer::start();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let a = instance(&redis, &prefix).await;
    let b = instance(&redis, &prefix).await;
    let mut browser = Browser::new();
    browser.start(&a).await;
    let sent = browser
        .call(&a, "messages/send", json!({ "content": "/slow" }))
        .await;
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let rid = sent.body["reply"]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let r = browser
        .call(&b, "messages/stop", json!({ "message_id": rid }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "stopped");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = browser
        .call(&a, "threads/get", json!({ "thread_id": tid }))
        .await
        .body;
    let reply = &t["messages"][1];
    assert_eq!(reply["status"], "stopped", "{reply}");
    let text = reply["content"].as_str().unwrap().to_owned();
    assert!(
        text.starts_with("Counting slowly") && !text.contains("word120"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let again = browser
        .call(&b, "threads/get", json!({ "thread_id": tid }))
        .await
        .body;
    assert_eq!(
        again["messages"][1]["content"],
        text.as_str(),
        "the generator on A really stopped"
    );
    // The thread is free for the next message on either instance.
    assert_eq!(
        browser
            .call(
                &b,
                "messages/send",
                json!({ "thread_id": tid, "content": "next" })
            )
            .await
            .status,
        StatusCode::OK
    );
}
