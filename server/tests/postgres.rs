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
        // Two tabs sending round after round: past a person's pace.
        ("CONFIDE_SESSION_RATE", "1000".into()),
        ("CONFIDE_SESSION_BURST", "1000".into()),
        ("CONFIDE_MESSAGES_PER_MINUTE", "1000".into()),
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
    let mut settings = env(&url);
    // Replies that stream long enough to tell a turn admitted meanwhile.
    settings.retain(|(k, _)| *k != "CONFIDE_ECHO_DELAY");
    settings.push(("CONFIDE_ECHO_DELAY", "20ms".into()));
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
    // Two tabs, one on each instance, send at the same moment: only one turn may follow the
    // chat's end, whichever instance reads it (the store checks it as it appends).
    for round in 0..12 {
        let (mut tab_a, mut tab_b) = (ann.clone(), ann.clone());
        let body = |from: &str| json!({ "thread_id": tid, "content": format!("from {from} {round} and five more words here") });
        let (ra, rb) = tokio::join!(
            tab_a.call(&a, "messages/send", body("A")),
            tab_b.call(&b, "messages/send", body("B")),
        );
        common::assert_one_or_both_went_through(&ra, &rb, round);
        let t = common::settled(&a, &mut ann, &tid).await;
        common::assert_turns_in_order(&t, std::time::Duration::from_millis(20), round);
    }
    // A browser on the other instance finds nothing of it.
    let mut bob = Browser::new();
    assert_eq!(bob.start(&b).await.status, StatusCode::OK);
    let r = bob
        .call(&b, "threads/get", json!({ "thread_id": tid }))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Opens `browser`'s event stream on `on`.
async fn events(on: &ChildServer, browser: &Browser) -> reqwest::Response {
    let res = on
        .http
        .get(format!("{}/api/events", on.base))
        .header("cookie", browser.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_stop_and_the_end_of_a_session_cross_instances() {
    use futures::StreamExt;
    use std::time::{Duration, Instant};

    let pg = PostgresServer::start();
    let url = pg.fresh_database().await;
    // The stream's own recheck is far away: only the pushed end can close it in time.
    let settings = vec![
        ("CONFIDE_STORE", url.clone()),
        ("CONFIDE_ECHO_DELAY", "20ms".into()),
        ("CONFIDE_STREAM_RECHECK", "300s".into()),
    ];
    let (a, b) = tokio::join!(
        ChildServer::launch(&settings),
        ChildServer::launch(&settings)
    );
    let mut ann = Browser::new();
    assert_eq!(ann.start(&a).await.status, StatusCode::OK);

    // A tab listening on B sees a reply that A runs, to the end, text and all.
    let mut stream = events(&b, &ann).await.bytes_stream();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Few words, each long: a reply of 12 kB in 20 steps.
    let long = format!("{} ", "w".repeat(600)).repeat(20);
    let sent = ann
        .call(&a, "messages/send", json!({ "content": long.trim() }))
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut done = None;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, stream.next()).await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        done = buf
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .find(|e| {
                e["type"] == "message"
                    && e["message"]["role"] == "assistant"
                    && e["message"]["status"] == "done"
            });
        if done.is_some() {
            break;
        }
    }
    // Larger than a notification carries, and it arrives whole.
    let done = done.unwrap_or_else(|| panic!("B's stream carried A's reply to the end: {buf}"));
    assert_eq!(done["message"]["content"], long.trim());

    // Stop pressed on B ends the reply A is writing.
    let sent = ann
        .call(&a, "messages/send", json!({ "content": "/slow" }))
        .await;
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let rid = sent.body["reply"]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let r = ann
        .call(&b, "messages/stop", json!({ "message_id": rid }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let t = common::settled(&a, &mut ann, &tid).await;
    let reply = &t["messages"][1];
    assert_eq!(reply["status"], "stopped", "{reply}");
    assert!(!reply["content"].as_str().unwrap().contains("word120"));

    // "Forget this browser" on A closes the stream open on B at once.
    let started = Instant::now();
    let r = ann.call(&a, "session/forget", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(closed.is_ok(), "B's stream outlived its session");
    let took = started.elapsed();
    // The push itself takes milliseconds; the bound leaves room for a busy machine.
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
}

async fn log_in(on: &ChildServer, name: &str) -> (Browser, common::Reply) {
    let mut b = common::started(on).await;
    let r = b
        .call(
            on,
            "auth/login",
            json!({ "username": name, "password": common::PW }),
        )
        .await;
    if r.status == StatusCode::OK {
        common::adopt(&mut b, &r);
    }
    (b, r)
}

/// Whether `stream` ends within `wait`.
async fn closes(stream: reqwest::Response, wait: std::time::Duration) -> bool {
    use futures::StreamExt;
    let mut body = stream.bytes_stream();
    tokio::time::timeout(wait, async { while let Some(Ok(_)) = body.next().await {} })
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_end_and_disable_an_accounts_sessions_on_every_instance() {
    use std::time::Duration;
    let pg = PostgresServer::start();
    let url = pg.fresh_database().await;
    let (ok, out) = common::confide(&url, &["user", "add", "kim"], &format!("{}\n", common::PW));
    assert!(ok, "{out}");
    let settings = vec![
        ("CONFIDE_STORE", url.clone()),
        ("CONFIDE_AUTH_PASSWORD", "true".into()),
        ("CONFIDE_STREAM_RECHECK", "300s".into()),
        ("CONFIDE_MAX_SESSIONS_PER_ACCOUNT", "2".into()),
    ];
    let (a, b) = tokio::join!(
        ChildServer::launch(&settings),
        ChildServer::launch(&settings)
    );
    let (mut first, r) = log_in(&a, "kim").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let (mut second, r) = log_in(&b, "kim").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let (ok, out) = common::confide(&url, &["sessions", "list", "kim"], "");
    assert!(ok && out.starts_with("2 session(s)"), "{out}");
    let handles: Vec<String> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    assert_eq!(handles.len(), 2, "{out}");
    let (ok, out) = common::confide(&url, &["sessions", "list", "nobody"], "");
    assert!(!ok && out.contains("not_found"), "{out}");

    // Ending the oldest (the first browser's) closes its page open on the other instance.
    let page = events(&b, &first).await;
    let (ok, out) = common::confide(&url, &["sessions", "end", "kim", &handles[0]], "");
    assert!(ok && out.contains("1 session(s) ended"), "{out}");
    assert!(
        closes(page, Duration::from_secs(5)).await,
        "its page stayed open"
    );
    assert_eq!(first.get_note(&a).await.code(), "session_ended");
    assert_eq!(second.get_note(&b).await.status, StatusCode::OK);

    // Disabled: every session ends, and no sign-in succeeds until it is enabled again.
    let page = events(&a, &second).await;
    let (ok, out) = common::confide(&url, &["user", "disable", "kim"], "");
    assert!(ok && out.contains("1 session(s) ended"), "{out}");
    assert!(
        closes(page, Duration::from_secs(5)).await,
        "its page stayed open"
    );
    assert_eq!(second.get_note(&b).await.code(), "session_ended");
    assert_eq!(log_in(&a, "kim").await.1.status, StatusCode::UNAUTHORIZED);
    let (ok, out) = common::confide(&url, &["user", "enable", "kim"], "");
    assert!(ok, "{out}");

    // At most two at once: a third sign-in ends the oldest.
    let (mut one, _) = log_in(&a, "kim").await;
    let (mut two, _) = log_in(&b, "kim").await;
    let (mut three, r) = log_in(&a, "kim").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(one.get_note(&a).await.code(), "session_ended");
    assert_eq!(two.get_note(&b).await.status, StatusCode::OK);
    assert_eq!(three.get_note(&a).await.status, StatusCode::OK);
    let (_, out) = common::confide(&url, &["sessions", "list", "kim"], "");
    assert!(out.starts_with("2 session(s)"), "{out}");

    // Everyone's: signed in or anonymous, on either instance; the accounts stay.
    let mut anonymous = common::started(&b).await;
    anonymous.set_note(&b, "mine").await;
    let pages = [events(&b, &three).await, events(&a, &anonymous).await];
    let (ok, out) = common::confide(&url, &["sessions", "end-all"], "");
    assert!(ok && out.trim_end().ends_with("session(s) ended"), "{out}");
    let ended: usize = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(ended >= 3, "{out}");
    for page in pages {
        assert!(
            closes(page, Duration::from_secs(5)).await,
            "a page stayed open"
        );
    }
    for (who, on) in [(&mut two, &b), (&mut three, &a), (&mut anonymous, &b)] {
        assert_eq!(who.get_note(on).await.code(), "session_ended");
    }
    let (_, out) = common::confide(&url, &["sessions", "list", "kim"], "");
    assert!(out.starts_with("0 session(s)"), "{out}");
    assert_eq!(log_in(&a, "kim").await.1.status, StatusCode::OK);
}

#[tokio::test]
async fn tls_to_postgres_is_verified_against_the_configured_authority() {
    use std::time::Duration;
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let pg = PostgresServer::start_tls(&cert.cert.pem(), &cert.signing_key.serialize_pem());
    let url = format!("{}?sslmode=require", pg.fresh_database().await);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let lifetimes = confide_core::Lifetimes::default();
    let timeout = Duration::from_secs(10);

    // Trusted through `postgres_ca`: the store works over TLS.
    let store = server::PostgresStore::connect(&url, lifetimes, 2, timeout, Some(&ca))
        .await
        .expect("TLS with the configured authority");
    use confide_core::Sessions;
    let id = app::SessionId::random();
    let proof = confide_core::Proof::generate().unwrap().hash();
    assert_eq!(
        store.claim(&id, &proof, None).await.unwrap(),
        confide_core::Claim::Won
    );
    assert!(
        server::PostgresHub::connect(&url, Some(&ca)).await.is_ok(),
        "the events connection too"
    );
    // Not trusted: refused, not silently downgraded to plain text.
    let e = server::PostgresStore::connect(&url, lifetimes, 2, timeout, None)
        .await
        .err()
        .expect("an unknown authority is refused");
    assert!(
        matches!(e, confide_core::StoreError::Unavailable(_)),
        "{e:?}"
    );
    // A file that holds no certificate is a clear configuration error.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let e = server::PostgresStore::connect(&url, lifetimes, 2, timeout, Some(&empty))
        .await
        .err()
        .expect("an empty CA file is refused");
    assert!(e.to_string().contains("holds no certificate"), "{e}");
}
