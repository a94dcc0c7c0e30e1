//! A short load with the isolation check, run by `make test`: 20 simulated users on one
//! address, 5 turns each, against the real app. Correctness only; no timing assertions.

use confide_bench::{LoadConfig, run};
use server::{AppState, Config, serve};
use std::time::Duration;
use tokio::net::TcpListener;

async fn start(config: Config) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        addr: listener.local_addr().unwrap(),
        ..config
    };
    let state = AppState::from_config(config).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async {
        let _ = rx.await;
    }));
    (base, tx)
}

fn load_config() -> Config {
    Config {
        echo_delay: Duration::ZERO,
        ip_rate: 100_000,
        ip_burst: 100_000,
        messages_per_minute: 10_000,
        new_sessions_per_minute: 100_000,
        address_messages_per_minute: 1_000_000,
        address_messages_burst: 1_000_000,
        ..Config::default()
    }
}

/// 20 users, 5 turns each, against `base`: every reply heard, each the user's own text.
async fn short_load(base: String) {
    let report = run(LoadConfig {
        bases: vec![base],
        users: 20,
        turns: 5,
        reply_timeout: Duration::from_secs(20),
    })
    .await;
    assert_eq!(report.isolation_failures, 0, "{:#?}", report.errors);
    assert_eq!(report.failed_turns, 0, "{:#?}", report.errors);
    assert_eq!(report.messages, 100);
}

async fn smoke(config: Config) {
    let (base, _stop) = start(config).await;
    short_load(base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_load_memory_store_is_isolated() {
    smoke(Config {
        store: server::StoreKind::Memory,
        ..load_config()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_load_sqlite_store_is_isolated() {
    // Removed when the test ends, pass or fail.
    let dir = tempfile::Builder::new()
        .prefix("confide-smoke-")
        .tempdir()
        .unwrap();
    smoke(Config {
        store: server::StoreKind::Sqlite(dir.path().join("load.db")),
        ..load_config()
    })
    .await;
}

/// A JSON value's shape: its objects' keys and the kinds of their values, not the values.
fn shape(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), shape(v))).collect(),
        Value::Array(a) => a.iter().map(shape).collect(),
        Value::String(_) => "string".into(),
        Value::Number(_) => "number".into(),
        Value::Bool(_) => "bool".into(),
        Value::Null => Value::Null,
    }
}

/// The second baseline stands for "any server speaking Confide's wire": it must answer a
/// turn with what Confide answers, field for field, or the comparison says nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_baseline_answers_a_turn_as_confide_does() {
    let (confide, _stop) = start(Config {
        store: server::StoreKind::Memory,
        ..load_config()
    })
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let wire = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, confide_bench::baseline_app())
            .await
            .unwrap()
    });
    let http = reqwest::Client::new();
    let mut sent = Vec::new();
    for base in [&confide, &wire] {
        let mut b = confide_bench::client::Browser::new();
        let started = b
            .call(&http, base, "session/start", serde_json::json!({}))
            .await
            .unwrap();
        assert!(b.proof.is_some(), "{base} gave no proof cookie");
        let first = b
            .call(
                &http,
                base,
                "messages/send",
                serde_json::json!({ "content": "hello" }),
            )
            .await
            .unwrap();
        let thread = first["thread"]["id"].as_str().unwrap().to_owned();
        let next = b
            .call(
                &http,
                base,
                "messages/send",
                serde_json::json!({ "thread_id": thread, "content": "again" }),
            )
            .await
            .unwrap();
        assert_eq!(next["thread"]["id"], thread.as_str());
        sent.push((shape(&started), shape(&first), shape(&next)));
    }
    assert_eq!(sent[0], sent[1]);

    // And the load runs against it as against Confide.
    short_load(wire).await;
}
