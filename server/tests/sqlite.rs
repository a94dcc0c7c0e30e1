//! The SQLite store behind the real binary: durability across SIGKILL, and expiry that
//! removes the rows themselves (keeping only the ended id).

mod common;

use app::SessionId;
use common::{Browser, ChildServer};
use reqwest::StatusCode;
use serde_json::json;
use server::Config;
use std::{path::Path, time::Duration};

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
    let app = common::spawn_on_sqlite(config, &db).await;

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

/// A rating of a reply that another tab regenerates at the same moment: the rating once
/// wrote back the reply the regeneration had just dropped, leaving two answers to one
/// question. SQLite's commit takes long enough to show it (17 runs in 30 from outside).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rating_racing_a_regeneration_never_brings_the_old_reply_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        echo_delay: Duration::ZERO,
        messages_per_minute: 60_000,
        session_rate: 1_000,
        session_burst: 1_000,
        address_messages_per_minute: 60_000,
        address_messages_burst: 1_000,
        ..Config::default()
    };
    let app = common::spawn_on_sqlite(config, &dir.path().join("confide.db")).await;
    let mut b = Browser::new();
    b.start(&app).await;
    let settled = async |b: &mut Browser, tid: &str| {
        for _ in 0..1_000 {
            let t = b
                .call(&app, "threads/get", json!({ "thread_id": tid }))
                .await
                .body;
            if t["messages"]
                .as_array()
                .unwrap_or_else(|| panic!("{t}"))
                .iter()
                .all(|m| m["status"] != "streaming")
            {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("a reply never finished");
    };
    for round in 0..15 {
        let sent = b
            .call(&app, "messages/send", json!({ "content": "question" }))
            .await;
        let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
        let old = sent.body["reply"]["id"].as_str().unwrap().to_owned();
        settled(&mut b, &tid).await;
        let (mut tab1, mut tab2) = (b.clone(), b.clone());
        let (rated, again) = tokio::join!(
            tab1.call(
                &app,
                "messages/feedback",
                json!({ "message_id": old, "rating": "up" })
            ),
            tab2.call(&app, "messages/regenerate", json!({ "thread_id": tid })),
        );
        assert!(
            rated.status == StatusCode::OK || rated.status == StatusCode::NOT_FOUND,
            "round {round}: {:?}",
            rated.body
        );
        assert_eq!(
            again.status,
            StatusCode::OK,
            "round {round}: {:?}",
            again.body
        );
        let t = settled(&mut b, &tid).await;
        let msgs = t["messages"].as_array().unwrap();
        assert_eq!(
            msgs.len(),
            2,
            "round {round}: one question, one answer: {t}"
        );
        assert_eq!(msgs[1]["id"], again.body["id"], "round {round}: {t}");
    }
}
