//! The SQLite store behind the real binary: durability across SIGKILL, and expiry that
//! removes the rows themselves (keeping only the ended id).

mod common;

use app::SessionId;
use common::{Browser, ChildServer};
use reqwest::StatusCode;
use serde_json::json;
use server::{Config, MemoryStore, SqliteStore};
use std::{path::Path, sync::Arc, time::Duration};

fn sqlite_env(db: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("CONFIDE_STORE", format!("sqlite:{}", db.display())),
        ("CONFIDE_ECHO_DELAY", "0".into()),
    ]
}

#[tokio::test]
async fn acknowledged_data_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("confide.db");
    let first = ChildServer::launch(&sqlite_env(&db)).await;

    let mut b = Browser::new();
    assert_eq!(b.start(&first).await.status, StatusCode::OK);
    assert_eq!(
        b.set_note(&first, "kept across a crash").await.status,
        StatusCode::OK
    );
    let sent = b
        .call(&first, "messages/send", json!({ "content": "first turn" }))
        .await;
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    common::settled(&first, &mut b, &tid).await;
    for turn in ["second turn", "third turn"] {
        let r = b
            .call(
                &first,
                "messages/send",
                json!({ "thread_id": tid, "content": turn }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        common::settled(&first, &mut b, &tid).await;
    }
    let before = b
        .call(&first, "threads/get", json!({ "thread_id": tid }))
        .await
        .body;
    assert_eq!(before["messages"].as_array().unwrap().len(), 6);

    first.kill_hard().await;
    let second = ChildServer::launch(&sqlite_env(&db)).await;

    // The same browser (same id, same proof) carries on where it was.
    let r = b.start(&second).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["new"], false, "the session itself survived");
    assert_eq!(
        b.get_note(&second).await.body["text"],
        "kept across a crash"
    );
    let after = b
        .call(&second, "threads/get", json!({ "thread_id": tid }))
        .await
        .body;
    assert_eq!(
        after, before,
        "every acknowledged message is there, unchanged"
    );
    second.kill_hard().await;
}

#[tokio::test]
async fn expired_sessions_leave_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("confide.db");
    let config = Config {
        idle_timeout: Duration::from_secs(1),
        sweep_interval: Duration::from_millis(300),
        echo_delay: Duration::ZERO,
        ..Config::default()
    };
    let store = Arc::new(
        SqliteStore::open(&db, server::lifetimes(&config), Duration::from_secs(2))
            .await
            .unwrap(),
    );
    let unused = Arc::new(MemoryStore::new(server::lifetimes(&config)));
    let app = common::spawn_with_store(config, store, unused).await;

    let mut b = Browser::new();
    b.start(&app).await;
    b.set_note(&app, "short-lived").await;
    let sent = b
        .call(&app, "messages/send", json!({ "content": "gone soon" }))
        .await;
    common::settled(&app, &mut b, sent.body["thread"]["id"].as_str().unwrap()).await;

    let id = SessionId::parse(&b.sid).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let count = |table: &'static str, column: &'static str| {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = ?");
        conn.query_row(&sql, [&id.as_bytes()[..]], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    assert_eq!(count("sessions", "id"), 1);
    assert_eq!(count("kv", "session_id"), 1);
    assert_eq!(count("threads", "session_id"), 1);
    assert_eq!(count("messages", "session_id"), 2);

    tokio::time::sleep(Duration::from_millis(2000)).await;
    for (table, column) in [
        ("sessions", "id"),
        ("kv", "session_id"),
        ("threads", "session_id"),
        ("messages", "session_id"),
    ] {
        assert_eq!(
            count(table, column),
            0,
            "{table} still holds rows of the expired session"
        );
    }
    assert_eq!(
        count("ended_sessions", "id"),
        1,
        "the background sweep keeps the id from being claimed again"
    );
}
