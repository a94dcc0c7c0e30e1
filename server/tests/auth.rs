//! Signing in with a password or a trusted proxy's header: session renewal, isolation
//! between users, one user across browsers, ending sessions, password changes, and the
//! `confide user` command.

mod common;

use common::{
    Browser, ChildServer, Endpoint, PW, Reply, TestApp, adopt, register, send, settled, spawn_with,
    started,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::Config;

fn password_config() -> Config {
    Config {
        auth_password: true,
        auth_registration: true,
        ..Config::default()
    }
}

async fn log_in(app: &impl Endpoint, name: &str, password: &str) -> (Browser, Reply) {
    let mut b = started(app).await;
    let r = b
        .call(
            app,
            "auth/login",
            json!({ "username": name, "password": password }),
        )
        .await;
    if r.status == StatusCode::OK {
        adopt(&mut b, &r);
    }
    (b, r)
}

async fn thread_ids(app: &impl Endpoint, b: &mut Browser) -> Vec<String> {
    let r = b.call(app, "threads/list", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn new_thread(app: &TestApp, b: &mut Browser, text: &str) -> String {
    let r = b
        .call(app, "messages/send", json!({ "content": text }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let thread = r.body["thread"]["id"].as_str().unwrap().to_owned();
    settled(app, b, &thread).await;
    thread
}

#[tokio::test]
async fn sign_in_replaces_the_session_and_the_old_id_and_proof_die() {
    let app = spawn_with(password_config()).await;
    let mut b = started(&app).await;
    b.set_note(&app, "written before sign-in").await;
    let thread = new_thread(&app, &mut b, "an anonymous question").await;
    let before = b.clone();

    let r = b
        .call(
            &app,
            "auth/register",
            json!({ "username": "Alice", "password": PW }),
        )
        .await;
    adopt(&mut b, &r);
    assert_eq!(r.body["account"]["name"], "alice");
    assert_ne!(b.sid, before.sid, "a new id");
    assert_ne!(b.proof, before.proof, "a new proof");

    // The pre-login id with its proof: ended, and it does not come back to life.
    let mut old = before.clone();
    let r = old.get_note(&app).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.code(), "session_ended");
    // Said in a header too, for the browser's client, which hands the answer on unread.
    assert_eq!(r.headers["x-confide-error"], "session_ended");
    // The old id with the new proof, and the new id with the old proof: refused too.
    let mut mixed = Browser {
        sid: before.sid.clone(),
        proof: b.proof.clone(),
    };
    assert_eq!(mixed.get_note(&app).await.status, StatusCode::UNAUTHORIZED);
    let mut mixed = Browser {
        sid: b.sid.clone(),
        proof: before.proof.clone(),
    };
    let r = mixed.get_note(&app).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.code(), "session_proof_mismatch");

    // The new pair works, with this browser's note and the anonymous thread brought along.
    let r = b.get_note(&app).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["text"], "written before sign-in");
    assert_eq!(thread_ids(&app, &mut b).await, vec![thread.clone()]);
    let me = b.call(&app, "auth/me", json!({})).await;
    assert_eq!(me.body["name"], "alice");
    let start = b.start(&app).await;
    assert_eq!(start.body["user"]["name"], "alice");
}

#[tokio::test]
async fn signing_in_without_keeping_threads_leaves_them_behind() {
    let app = spawn_with(password_config()).await;
    register(&app, "dora").await;
    let mut b = started(&app).await;
    new_thread(&app, &mut b, "stays anonymous").await;
    let r = b
        .call(
            &app,
            "auth/login",
            json!({ "username": "dora", "password": PW, "keep_threads": false }),
        )
        .await;
    adopt(&mut b, &r);
    assert!(thread_ids(&app, &mut b).await.is_empty());
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_indistinguishable() {
    let app = spawn_with(password_config()).await;
    register(&app, "bob").await;
    let (_, wrong) = log_in(&app, "bob", "not the password").await;
    let (_, unknown) = log_in(&app, "nobody-here", "not the password").await;
    let (_, invalid_name) = log_in(&app, "not a valid name!", "whatever").await;
    for r in [&wrong, &unknown, &invalid_name] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(r.body, wrong.body, "one answer for every failure");
        assert!(r.issued_proof().is_none(), "no session is issued");
    }
    assert_eq!(wrong.code(), "login_failed");
    let (mut ok, r) = log_in(&app, "BOB", PW).await;
    assert_eq!(r.status, StatusCode::OK, "names are case-insensitive");
    assert_eq!(
        ok.call(&app, "auth/me", json!({})).await.body["name"],
        "bob"
    );
}

#[tokio::test]
async fn password_attempts_are_limited_per_account_and_per_address() {
    let app = spawn_with(Config {
        login_attempts_per_account: 3,
        login_attempts_per_address: 6,
        ..password_config()
    })
    .await;
    register(&app, "carol").await;
    for _ in 0..3 {
        let (_, r) = log_in(&app, "carol", "guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // The limit holds even for the right password: guessing must not be able to tell.
    let (_, r) = log_in(&app, "carol", PW).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.code(), "rate_limited");

    // Spreading guesses over many names runs into the per-address limit.
    let mut last = StatusCode::OK;
    for i in 0..4 {
        let (_, r) = log_in(&app, &format!("user{i}"), "guess").await;
        last = r.status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn two_users_never_see_each_others_threads_and_one_user_sees_the_same_everywhere() {
    let app = spawn_with(password_config()).await;
    let mut alice = register(&app, "alice").await;
    let mut bob = register(&app, "bob").await;
    let a_thread = new_thread(&app, &mut alice, "alice's secret").await;
    let b_thread = new_thread(&app, &mut bob, "bob's secret").await;

    assert_eq!(thread_ids(&app, &mut alice).await, vec![a_thread.clone()]);
    assert_eq!(thread_ids(&app, &mut bob).await, vec![b_thread.clone()]);
    let r = bob
        .call(&app, "threads/get", json!({ "thread_id": a_thread }))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Alice in a second browser: the same threads, the reply included; her notes are
    // per browser and stay apart.
    let (mut alice2, r) = log_in(&app, "alice", PW).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(thread_ids(&app, &mut alice2).await, vec![a_thread.clone()]);
    let t = settled(&app, &mut alice2, &a_thread).await;
    let texts: Vec<&str> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 2, "{t}");
    assert!(texts[1].contains("alice's secret"), "{t}");
    alice.set_note(&app, "first browser").await;
    assert_eq!(alice2.get_note(&app).await.body["text"], "");

    // A thread started in the second browser shows in the first.
    let more = new_thread(&app, &mut alice2, "from the second browser").await;
    assert!(thread_ids(&app, &mut alice).await.contains(&more));
    assert!(!thread_ids(&app, &mut bob).await.contains(&more));
}

#[tokio::test]
async fn my_sessions_lists_and_ends_sessions() {
    let app = spawn_with(password_config()).await;
    let mut a = register(&app, "erin").await;
    let (mut b, _) = log_in(&app, "erin", PW).await;
    let mut stranger = register(&app, "frank").await;

    let rows = a.call(&app, "auth/sessions", json!({})).await;
    let rows = rows.body.as_array().unwrap().clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r["current"] == true).count(), 1);
    let other: &Value = rows.iter().find(|r| r["current"] == false).unwrap();
    let handle = other["handle"].as_str().unwrap().to_owned();
    assert!(
        !handle.is_empty() && !b.sid.contains(&handle),
        "never the id itself"
    );

    // Another user cannot end it: the handle is not found in their account.
    let r = stranger
        .call(&app, "auth/sessions/end", json!({ "handle": handle }))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(b.get_note(&app).await.status, StatusCode::OK);

    let r = a
        .call(&app, "auth/sessions/end", json!({ "handle": handle }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = b.get_note(&app).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.code(), "session_ended");
    let rows = a.call(&app, "auth/sessions", json!({})).await;
    assert_eq!(rows.body.as_array().unwrap().len(), 1);

    // Anonymous sessions have no account to list.
    let mut anon = started(&app).await;
    let r = anon.call(&app, "auth/sessions", json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "login_required");
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let app = spawn_with(Config {
        login_attempts_per_account: 20,
        ..password_config()
    })
    .await;
    let mut a = register(&app, "gina").await;
    let (mut b, _) = log_in(&app, "gina", PW).await;
    let (mut c, _) = log_in(&app, "gina", PW).await;

    let r = a
        .call(
            &app,
            "auth/password",
            json!({ "current": "wrong one", "new": "a new secret" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        b.get_note(&app).await.status,
        StatusCode::OK,
        "nothing changed"
    );

    let r = a
        .call(
            &app,
            "auth/password",
            json!({ "current": PW, "new": "a new secret" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!(2));
    assert_eq!(b.get_note(&app).await.code(), "session_ended");
    assert_eq!(c.get_note(&app).await.code(), "session_ended");
    assert_eq!(a.get_note(&app).await.status, StatusCode::OK);
    assert_eq!(
        log_in(&app, "gina", PW).await.1.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        log_in(&app, "gina", "a new secret").await.1.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sign_out_ends_the_session_but_keeps_the_account() {
    let app = spawn_with(password_config()).await;
    let mut a = register(&app, "hank").await;
    let thread = new_thread(&app, &mut a, "keep me").await;
    let r = a.call(&app, "auth/logout", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let csd = r.headers.get("clear-site-data").unwrap().to_str().unwrap();
    assert!(csd.contains("\"cookies\"") && csd.contains("\"storage\""));
    assert_eq!(a.get_note(&app).await.code(), "session_ended");
    let (mut again, _) = log_in(&app, "hank", PW).await;
    assert_eq!(thread_ids(&app, &mut again).await, vec![thread]);

    // "Sign out everywhere" ends this session and every other.
    let (mut other, _) = log_in(&app, "hank", PW).await;
    let r = again.call(&app, "auth/sessions/end_all", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(other.get_note(&app).await.code(), "session_ended");
    assert_eq!(again.get_note(&app).await.code(), "session_ended");
}

#[tokio::test]
async fn sign_in_endpoints_follow_the_csrf_rules() {
    let app = spawn_with(password_config()).await;
    register(&app, "ivan").await;
    let b = started(&app).await;
    let r = send(
        app.http
            .post(format!("{}/api/auth/login", app.base))
            .header("x-confide-session", &b.sid)
            .header("cookie", b.cookie_header())
            .header("sec-fetch-site", "cross-site")
            .json(&json!({ "username": "ivan", "password": PW })),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "csrf_rejected");
    let r = send(
        app.http
            .post(format!("{}/api/auth/login", app.base))
            .header("x-confide-session", &b.sid)
            .header("cookie", b.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body("username=ivan&password=x"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn registration_and_password_sign_in_can_be_off() {
    let app = spawn_with(Config {
        auth_password: true,
        ..Config::default()
    })
    .await;
    let mut b = started(&app).await;
    let r = b
        .call(
            &app,
            "auth/register",
            json!({ "username": "x", "password": PW }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let anon = spawn_with(Config::default()).await;
    let mut b = started(&anon).await;
    let r = b
        .call(
            &anon,
            "auth/login",
            json!({ "username": "x", "password": PW }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(b.start(&anon).await.body["sign_in_enabled"], false);
}

async fn header_sign_in(app: &TestApp, user: &str) -> (Browser, Reply) {
    let mut b = started(app).await;
    let r = send(
        app.http
            .post(format!("{}/api/auth/header", app.base))
            .header("x-confide-session", &b.sid)
            .header("cookie", b.cookie_header())
            .header("x-forwarded-user", user)
            .json(&json!({})),
    )
    .await;
    if r.status == StatusCode::OK {
        b.proof = r.issued_proof();
        adopt(&mut b, &r);
    }
    (b, r)
}

#[tokio::test]
async fn header_sign_in_is_believed_only_from_trusted_proxies() {
    // The proxy is somewhere else: a header from 127.0.0.1 means nothing.
    let untrusting = spawn_with(Config {
        auth_header: Some("X-Forwarded-User".into()),
        trusted_proxies: vec!["10.9.9.9".parse().unwrap()],
        ..Config::default()
    })
    .await;
    let (_, r) = header_sign_in(&untrusting, "mallory").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.code(), "login_failed");

    let trusting = spawn_with(Config {
        auth_header: Some("X-Forwarded-User".into()),
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..Config::default()
    })
    .await;
    // A header sent twice (a proxy that appends) is not believed either.
    let mut twice = started(&trusting).await;
    let r = send(
        trusting
            .http
            .post(format!("{}/api/auth/header", trusting.base))
            .header("x-confide-session", &twice.sid)
            .header("cookie", twice.cookie_header())
            .header("x-forwarded-user", "mallory")
            .header("x-forwarded-user", "judy")
            .json(&json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        twice.call(&trusting, "auth/me", json!({})).await.body,
        json!(null)
    );

    let (mut b, r) = header_sign_in(&trusting, "Judy").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        b.call(&trusting, "auth/me", json!({})).await.body["name"],
        "judy"
    );
}

#[tokio::test]
async fn the_user_command_manages_password_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("confide.db").display());
    let run = |args: &[&str], stdin: &str| common::confide(&store, args, stdin);
    let (ok, out) = run(&["user", "add", "Kim"], &format!("{PW}\n"));
    assert!(ok, "{out}");
    let (ok, out) = run(&["user", "add", "kim"], &format!("{PW}\n"));
    assert!(!ok && out.contains("username_taken"), "{out}");
    let (ok, out) = run(&["user", "add", "lee"], "short\n");
    assert!(!ok && out.contains("invalid_input"), "{out}");
    let (ok, _) = run(&["user", "frobnicate", "kim"], "");
    assert!(!ok);

    let env = [
        ("CONFIDE_STORE", store.clone()),
        ("CONFIDE_AUTH_PASSWORD", "true".to_owned()),
    ];
    let server = ChildServer::launch(&env).await;
    let (mut b, r) = log_in(&server, "kim", PW).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(b.get_note(&server).await.status, StatusCode::OK);

    let (ok, out) = run(&["user", "passwd", "kim"], "another password\n");
    assert!(ok && out.contains("1 session"), "{out}");
    assert_eq!(b.get_note(&server).await.code(), "session_ended");
    assert_eq!(
        log_in(&server, "kim", "another password").await.1.status,
        StatusCode::OK
    );

    let (ok, out) = run(&["user", "remove", "kim"], "");
    assert!(ok, "{out}");
    assert_eq!(
        log_in(&server, "kim", "another password").await.1.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Collects the data of `b`'s event stream until one mentions `needle` or `wait` passes.
async fn stream_mentions(
    app_base: String,
    b: Browser,
    needle: String,
    wait: std::time::Duration,
) -> bool {
    use futures::StreamExt;
    let res = reqwest::Client::new()
        .get(format!("{app_base}/api/events"))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if seen.contains(&needle) {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn every_browser_of_a_user_hears_the_users_live_events_and_nobody_else_does() {
    let app = spawn_with(password_config()).await;
    let mut a = register(&app, "kate").await;
    let (b, _) = log_in(&app, "kate", PW).await;
    let stranger = register(&app, "leo").await;
    let needle = format!("live-{}", uuid::Uuid::new_v4().simple());
    let wait = std::time::Duration::from_secs(5);
    let same_user = tokio::spawn(stream_mentions(app.base.clone(), b, needle.clone(), wait));
    let other_user = tokio::spawn(stream_mentions(
        app.base.clone(),
        stranger,
        needle.clone(),
        wait,
    ));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    new_thread(&app, &mut a, &needle).await;
    assert!(
        same_user.await.unwrap(),
        "the user's other browser hears the reply"
    );
    assert!(
        !other_user.await.unwrap(),
        "another user hears nothing of it"
    );
}

#[tokio::test]
async fn an_ended_sessions_event_stream_closes_and_hears_nothing_more() {
    let app = spawn_with(Config {
        stream_recheck: std::time::Duration::from_millis(100),
        ..password_config()
    })
    .await;
    let mut a = register(&app, "mona").await;
    let (b, _) = log_in(&app, "mona", PW).await;
    let needle = format!("after-end-{}", uuid::Uuid::new_v4().simple());
    let wait = std::time::Duration::from_secs(4);
    let started_at = std::time::Instant::now();
    let listener = tokio::spawn(stream_mentions(
        app.base.clone(),
        b.clone(),
        needle.clone(),
        wait,
    ));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let rows = a.call(&app, "auth/sessions", json!({})).await;
    let other = rows
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["current"] == false)
        .unwrap()["handle"]
        .clone();
    let r = a
        .call(&app, "auth/sessions/end", json!({ "handle": other }))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    new_thread(&app, &mut a, &needle).await;
    assert!(
        !listener.await.unwrap(),
        "the ended session's stream heard the user's new reply"
    );
    assert!(
        started_at.elapsed() < wait,
        "the stream was closed, not merely quiet"
    );
}

#[tokio::test]
async fn sign_in_prunes_the_entries_of_sessions_that_ended_without_signing_out() {
    let app = spawn_with(password_config()).await;
    let mut a = register(&app, "nina").await;
    let home = app::SessionId::home("password", "nina");
    // "Forget this browser" ends the session without a sign-out.
    assert_eq!(
        a.call(&app, "session/forget", json!({})).await.status,
        StatusCode::OK
    );
    use confide_core::Values;
    assert_eq!(app.store.keys(&home, "confide:s:").await.unwrap().len(), 1);
    log_in(&app, "nina", PW).await;
    assert_eq!(
        app.store.keys(&home, "confide:s:").await.unwrap().len(),
        1,
        "the dead entry went, the new one came"
    );
}

#[tokio::test]
async fn a_reply_streaming_at_sign_in_does_not_leave_the_thread_busy() {
    let app = spawn_with(password_config()).await;
    let mut b = started(&app).await;
    let r = b
        .call(&app, "messages/send", json!({ "content": "/slow" }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let thread = r.body["thread"]["id"].as_str().unwrap().to_owned();
    let r = b
        .call(
            &app,
            "auth/register",
            json!({ "username": "olga", "password": PW }),
        )
        .await;
    adopt(&mut b, &r);
    let t = settled(&app, &mut b, &thread).await;
    assert_eq!(t["messages"][1]["status"], "stopped", "{t}");
    let r = b
        .call(
            &app,
            "messages/send",
            json!({ "thread_id": thread, "content": "next" }),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the thread is not busy: {}",
        r.body
    );
}

/// A sign-in attempt as if from `addr`, through a trusted proxy.
async fn log_in_from(app: &TestApp, addr: &str, name: &str, password: &str) -> Reply {
    let b = started(app).await;
    send(
        app.http
            .post(format!("{}/api/auth/login", app.base))
            .header("x-confide-session", &b.sid)
            .header("cookie", b.cookie_header())
            .header("x-forwarded-for", addr)
            .json(&json!({ "username": name, "password": password })),
    )
    .await
}

#[tokio::test]
async fn a_guesser_cannot_lock_the_owner_out_from_elsewhere() {
    let app = spawn_with(Config {
        login_attempts_per_account: 2,
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..password_config()
    })
    .await;
    register(&app, "pia").await;
    for _ in 0..2 {
        assert_eq!(
            log_in_from(&app, "203.0.113.5", "pia", "guess")
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        log_in_from(&app, "203.0.113.5", "pia", "guess")
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let r = log_in_from(&app, "198.51.100.7", "pia", PW).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// The chat settings a browser chose come along when it signs in, as its other values do.
#[tokio::test]
async fn chat_settings_come_along_at_sign_in() {
    let app = spawn_with(password_config()).await;
    register(&app, "settler").await;
    let mut b = started(&app).await;
    let r = b
        .call(
            &app,
            "settings/set",
            json!({ "profile": "reverse", "values": { "style": "shout" } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = b
        .call(
            &app,
            "auth/login",
            json!({ "username": "settler", "password": PW }),
        )
        .await;
    let before = b.sid.clone();
    adopt(&mut b, &r);
    assert_ne!(b.sid, before, "a new session");
    let r = b.call(&app, "settings/get", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["profile"], "reverse");
    assert_eq!(r.body["values"]["style"], "shout");
}

/// The daily message quota is the account's, whichever browser sends: two browsers of one
/// user share three messages, a refused message changes nothing, and another user and an
/// anonymous visitor each have their own three.
#[tokio::test]
async fn the_daily_message_quota_is_per_account_across_browsers() {
    let app = spawn_with(Config {
        quota_messages_per_day: 3,
        ..password_config()
    })
    .await;
    let mut a = register(&app, "quota-kim").await;
    let (mut b, _) = log_in(&app, "quota-kim", PW).await;
    let mut tid: Option<String> = None;
    for i in 0..3 {
        let who = if i == 1 { &mut b } else { &mut a };
        let mut body = json!({ "content": format!("message {i}") });
        if let Some(t) = &tid {
            body["thread_id"] = json!(t);
        }
        let r = who.call(&app, "messages/send", body).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let t = r.body["thread"]["id"].as_str().unwrap().to_owned();
        settled(&app, who, &t).await;
        tid = Some(t);
    }
    let tid = tid.unwrap();
    let r = b
        .call(
            &app,
            "messages/send",
            json!({ "thread_id": tid, "content": "a fourth" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert_eq!(r.code(), "quota_exceeded");
    let message = r.body["message"].as_str().unwrap();
    assert!(
        message.contains("3 messages") && message.contains("resets at 00:00 UTC ("),
        "{message}"
    );
    let t = settled(&app, &mut a, &tid).await;
    assert_eq!(
        t["messages"].as_array().unwrap().len(),
        6,
        "nothing of the fourth was kept"
    );
    // A new chat is no way around it.
    let r = a
        .call(&app, "messages/send", json!({ "content": "elsewhere" }))
        .await;
    assert_eq!(r.code(), "quota_exceeded");
    assert_eq!(
        thread_ids(&app, &mut a).await.len(),
        1,
        "no empty chat was left behind"
    );

    let mut other = register(&app, "quota-leo").await;
    let mut anonymous = started(&app).await;
    for who in [&mut other, &mut anonymous] {
        let r = who
            .call(&app, "messages/send", json!({ "content": "mine" }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
}
