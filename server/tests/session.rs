//! The session protocol over real HTTP against `app()` on a random port.

mod common;

use app::SessionId;
use common::{Browser, send, spawn, spawn_with};
use confide_core::Probe;
use futures::{StreamExt, stream};
use reqwest::StatusCode;
use serde_json::json;
use server::Config;
use std::time::Duration;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn().await;
    let res = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_on_one_ip_never_cross() {
    // Isolation, not throttling, is under test: lift the per-address limit.
    let app = spawn_with(Config {
        ip_rate: 100_000,
        ip_burst: 100_000,
        new_sessions_per_minute: 100_000,
        ..Config::default()
    })
    .await;
    let mut browsers: Vec<Browser> = (0..500).map(|_| Browser::new()).collect();

    // Every phase runs all 500 clients interleaved, 100 requests in flight.
    browsers = stream::iter(browsers)
        .map(|mut b| {
            let app = &app;
            async move {
                let r = b.start(app).await;
                assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                assert_eq!(r.body["new"], true);
                assert!(b.proof.is_some(), "a claim issues a proof");
                b
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;

    let texts: Vec<String> = browsers
        .iter()
        .map(|b| format!("private note of {} ({})", &b.sid, b.sid.len()))
        .collect();
    let pairs: Vec<(Browser, String)> = browsers.into_iter().zip(texts).collect();
    let pairs: Vec<(Browser, String)> = stream::iter(pairs)
        .map(|(mut b, text)| {
            let app = &app;
            async move {
                let r = b.set_note(app, &text).await;
                assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                (b, text)
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;

    // Read back in a different order from the writes.
    let mut pairs = pairs;
    pairs.reverse();
    let cross_reads: usize = stream::iter(pairs)
        .map(|(mut b, text)| {
            let app = &app;
            async move {
                let r = b.get_note(app).await;
                assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                usize::from(r.body["text"].as_str() != Some(text.as_str()))
            }
        })
        .buffer_unordered(100)
        .fold(0, |acc, x| async move { acc + x })
        .await;
    assert_eq!(
        cross_reads, 0,
        "no client may read anything but its own note"
    );
    assert_eq!(app.store.len(), 500);
}

#[tokio::test]
async fn a_guid_without_its_proof_is_refused_and_changes_nothing() {
    let app = spawn().await;
    let mut alice = Browser::new();
    alice.start(&app).await;
    assert_eq!(
        alice.set_note(&app, "alice's secret").await.status,
        StatusCode::OK
    );

    // Past the claim-race window a proof-less request is plainly a stranger's.
    tokio::time::sleep(Duration::from_millis(
        confide_core::guard::CLAIM_RACE_WINDOW_MS as u64 + 100,
    ))
    .await;
    // Mallory learns Alice's id (it is not a secret) but has no proof.
    let mut mallory = Browser {
        sid: alice.sid.clone(),
        proof: None,
    };
    for r in [
        mallory.get_note(&app).await,
        mallory.set_note(&app, "overwritten").await,
        mallory.start(&app).await,
    ] {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
        assert_eq!(r.code(), "session_proof_mismatch");
        assert!(!r.body.to_string().contains("alice's secret"));
        assert!(
            r.issued_proof().is_none(),
            "no proof is issued for a claimed id"
        );
    }

    // A forged proof (well-formed, wrong) fares no better.
    let mut forger = Browser {
        sid: alice.sid.clone(),
        proof: Some("A".repeat(43)),
    };
    let r = forger.set_note(&app, "forged").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "session_proof_mismatch");
    // A malformed proof too.
    let mut garbage = Browser {
        sid: alice.sid.clone(),
        proof: Some("not-a-proof".into()),
    };
    assert_eq!(garbage.get_note(&app).await.status, StatusCode::FORBIDDEN);

    let r = alice.get_note(&app).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["text"], "alice's secret",
        "Alice's state is unchanged"
    );
}

#[tokio::test]
async fn malformed_guids_are_refused_with_400() {
    let app = spawn().await;
    for sid in [
        "not-a-uuid",
        "0B3E5C1E-8F2A-4C6D-9E7F-1A2B3C4D5E6F",
        "{0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5e6f}",
        "0b3e5c1e-8f2a-1c6d-9e7f-1a2b3c4d5e6f",
        "00000000-0000-0000-0000-000000000000",
        "../../etc/passwd",
    ] {
        let mut b = Browser {
            sid: sid.into(),
            proof: None,
        };
        let r = b.start(&app).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{sid}: {:?}", r.body);
        assert_eq!(r.code(), "invalid_session_id", "{sid}");
    }
    assert_eq!(app.store.len(), 0, "nothing was claimed");
}

/// A server function names its session in the header, which only this site's script can
/// set; the id cookie is for page loads and the event stream. So a stray or planted id
/// cookie (cookie tossing from a sibling subdomain) cannot break a call, while anything that
/// makes the proof ambiguous is refused.
#[tokio::test]
async fn the_header_names_the_session_and_a_repeated_proof_is_refused() {
    let app = spawn().await;
    let mut a = Browser::new();
    a.start(&app).await;
    let proof = a.proof.clone().unwrap();
    let other = SessionId::random().as_string();
    let call = |cookie: String| {
        app.http
            .post(format!("{}/api/notes/get", app.base))
            .header("x-confide-session", &a.sid)
            .header("cookie", cookie)
            .json(&json!({}))
    };
    for cookie in [
        format!("__Host-confide_sid={other}; __Host-confide_proof={proof}"),
        format!(
            "__Host-confide_sid={}; __Host-confide_sid={other}; __Host-confide_proof={proof}",
            a.sid
        ),
        format!("confide_sid={other}; __Host-confide_proof={proof}"),
    ] {
        let r = send(call(cookie.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "{cookie}: {:?}", r.body);
    }

    // Two proof cookies, equal or not, answer 400: the guard does not pick one.
    for cookie in [
        format!("__Host-confide_proof={proof}; __Host-confide_proof={proof}"),
        format!(
            "__Host-confide_proof={proof}; __Host-confide_proof={}",
            "A".repeat(43)
        ),
        format!("__Host-confide_proof={proof}; __Host-confide_proof ={proof}"),
    ] {
        let r = send(call(cookie.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{cookie}");
        assert_eq!(r.code(), "session_mismatch", "{cookie}");
    }

    // Without the header (the event stream), a repeated id cookie is a conflict, equal
    // values included.
    for cookie in [
        format!(
            "__Host-confide_sid={}; __Host-confide_sid={other}; __Host-confide_proof={proof}",
            a.sid
        ),
        format!(
            "__Host-confide_sid={0}; __Host-confide_sid={0}; __Host-confide_proof={proof}",
            a.sid
        ),
    ] {
        let res = app
            .http
            .get(format!("{}/api/events", app.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{cookie}");
    }
}

#[tokio::test]
async fn server_functions_without_a_guid_answer_401() {
    let app = spawn().await;
    let r = send(
        app.http
            .post(format!("{}/api/notes/get", app.base))
            .json(&json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "no_session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_of_one_guid_over_http_have_one_winner() {
    let app = spawn().await;
    let sid = SessionId::random().as_string();
    let replies: Vec<_> = stream::iter(0..50)
        .map(|_| {
            let app = &app;
            let mut b = Browser {
                sid: sid.clone(),
                proof: None,
            };
            async move { b.start(app).await }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let won = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let lost = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT && r.code() == "session_claimed")
        .count();
    assert_eq!(
        (won, lost),
        (1, 49),
        "exactly one claim wins; the rest get 409 session_claimed"
    );
}

/// Expiry is nobody's announcement, but its moment is known: the stream closes then, not
/// at the next periodic look (an hour away here) or sweep.
#[tokio::test]
async fn an_expired_sessions_event_stream_closes_when_it_expires() {
    let app = spawn_with(Config {
        idle_timeout: Duration::from_secs(1),
        sweep_interval: Duration::from_secs(3600),
        stream_recheck: Duration::from_secs(3600),
        ..Config::default()
    })
    .await;
    let mut b = Browser::new();
    b.start(&app).await;
    let opened = std::time::Instant::now();
    let res = reqwest::Client::new()
        .get(format!("{}/api/events", app.base))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.bytes_stream();
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(_)) = body.next().await {}
    })
    .await;
    assert!(closed.is_ok(), "the stream outlived its session by 20 s");
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_millis(900),
        "the stream closed before the session expired ({lived:?})"
    );
    assert!(
        lived < Duration::from_secs(4),
        "the stream closed {lived:?} after opening, long after the 1 s expiry"
    );
    assert_eq!(b.get_note(&app).await.code(), "session_ended");
}

#[tokio::test]
async fn expired_sessions_are_deleted_and_never_come_back() {
    let app = spawn_with(Config {
        idle_timeout: Duration::from_secs(1),
        sweep_interval: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut b = Browser::new();
    b.start(&app).await;
    b.set_note(&app, "short-lived").await;
    let id = SessionId::parse(&b.sid).unwrap();
    assert!(app.store.exists_raw(&id).await.unwrap());

    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        !app.store.exists_raw(&id).await.unwrap(),
        "the sweeper deleted the expired session"
    );

    // The browser still holds the proof of the ended session: it is told so, rather than
    // the id quietly coming back to life. The cookie is left alone: a request may carry a
    // newer session's proof, and the next claim replaces a stale one.
    let old_proof = b.proof.clone();
    let r = b.get_note(&app).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.code(), "session_ended");
    assert_eq!(r.issued_proof(), None, "no cookie is set or cleared");
    // Without its proof the id is not claimable either.
    let mut bare = Browser {
        sid: b.sid.clone(),
        proof: None,
    };
    assert_eq!(bare.get_note(&app).await.code(), "session_ended");
    assert!(
        !app.store.exists_raw(&id).await.unwrap(),
        "nothing was claimed"
    );

    // The client's next start, under a new id and still with the stale proof, is a fresh
    // session whose own proof replaces it.
    let mut fresh = Browser {
        sid: Browser::new().sid,
        proof: old_proof.clone(),
    };
    let r = fresh.get_note(&app).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["text"], "", "a new session starts empty");
    assert!(fresh.proof.is_some() && fresh.proof != old_proof);
}

#[tokio::test]
async fn server_functions_take_json_only() {
    let app = spawn().await;
    let mut b = Browser::new();
    b.start(&app).await;
    for (ctype, body) in [
        ("application/x-www-form-urlencoded", "text=from+a+form"),
        ("text/plain", r#"{"text":"from text/plain"}"#),
        ("multipart/form-data; boundary=x", "--x--"),
    ] {
        let r = send(
            app.http
                .post(format!("{}/api/notes/set", app.base))
                .header("x-confide-session", &b.sid)
                .header("cookie", b.cookie_header())
                .header("content-type", ctype)
                .body(body),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ctype}");
        assert_eq!(r.code(), "unsupported_media_type");
    }
    assert_eq!(b.get_note(&app).await.body["text"], "");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let app = spawn().await;
    let mut b = Browser::new();
    b.start(&app).await;
    b.set_note(&app, "kept").await;

    let r = b.set_note(&app, &"x".repeat(10_001)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "too_large");

    let r = b.call(&app, "notes/set", json!({ "wrong": 1 })).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.code(), "invalid_input");

    let r = b.call(&app, "notes/nope", json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");

    assert_eq!(b.get_note(&app).await.body["text"], "kept");
}

#[tokio::test]
async fn pages_render_the_public_shell_whatever_the_cookie() {
    let app = spawn().await;
    let mut owner = Browser::new();
    owner.start(&app).await;
    for cookie in [
        None,
        Some("__Host-confide_sid=garbage".to_owned()),
        Some(format!("__Host-confide_sid={}", owner.sid)), // known id, no proof
        Some(owner.cookie_header()),
    ] {
        let mut req = app.http.get(format!("{}/", app.base));
        if let Some(c) = &cookie {
            req = req.header("cookie", c);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{cookie:?}");
        assert_eq!(res.headers()["cache-control"], "private, no-store");
        assert!(res.headers().get_all("vary").iter().any(|v| v == "Cookie"));
        assert!(
            res.headers().get("set-cookie").is_none(),
            "page loads never claim"
        );
        let html = res.text().await.unwrap();
        assert!(
            html.contains("Confide") && html.contains("<main"),
            "{cookie:?}"
        );
    }
    assert_eq!(app.store.len(), 1, "no page load created a session");
}

/// A page of a session that has chats lists them, however its loads interleave with the
/// store. The list arrives from SQLite on another thread while the page renders; the page
/// must show it (inline or streamed in after), never "No chats yet" beside the real list
/// in the hydration data, which the browser could not hydrate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_s_page_lists_its_chats_however_the_store_answers_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        echo_delay: Duration::ZERO,
        ..Config::default()
    };
    let app = common::spawn_on_sqlite(config, &dir.path().join("confide.db")).await;
    let mut b = common::started(&app).await;
    let sent = b
        .call(
            &app,
            "messages/send",
            json!({ "content": "listed on every load" }),
        )
        .await;
    common::settled(&app, &mut b, sent.body["thread"]["id"].as_str().unwrap()).await;

    let cookie = b.cookie_header();
    // Bounded: a render that never finishes is a failure to report, not a run that hangs.
    let pages: Vec<String> = stream::iter(0..100)
        .map(|_| {
            let req = common::page_request(&app, &cookie, Duration::from_secs(60));
            async move {
                let res = req.send().await.expect("the page answers");
                res.text().await.expect("the page's render finishes")
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for html in pages {
        assert!(
            html.contains(r#"data-testid="thread-item""#) && !html.contains("No chats yet."),
            "{html}"
        );
    }
}

/// Pages render while another app is built in the same process (as the tests do all the
/// time). Building an app finds its routes by rendering it with resource loading switched
/// off, and Leptos switches it off for the whole process: every page rendering meanwhile
/// waited for resources that never loaded, and never finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_while_another_app_is_built() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };
    let app = spawn().await;
    let mut b = common::started(&app).await;
    let sent = b
        .call(&app, "messages/send", json!({ "content": "still listed" }))
        .await;
    common::settled(&app, &mut b, sent.body["thread"]["id"].as_str().unwrap()).await;

    let other = server::AppState::new(
        Config::default(),
        Arc::new(server::MemoryStore::new(server::lifetimes(
            &Config::default(),
        ))),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let builder = tokio::task::spawn_blocking({
        let stop = stop.clone();
        move || {
            let mut built = 0u32;
            while !stop.load(Ordering::Relaxed) {
                drop(server::app(other.clone()));
                built += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            built
        }
    });

    let cookie = b.cookie_header();
    let pages: Vec<Result<String, reqwest::Error>> = stream::iter(0..24)
        .map(|_| {
            let req = common::page_request(&app, &cookie, Duration::from_secs(30));
            async move { req.send().await?.text().await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    stop.store(true, Ordering::Relaxed);
    let built = builder.await.unwrap();
    assert!(built > 0, "another app was built meanwhile");
    for page in pages {
        let html = page.expect("the page's render finishes");
        assert!(html.contains(r#"data-testid="thread-item""#), "{html}");
    }
}

/// Why the page's derived values are `app::derived` ones: on the server a resource settles
/// on another thread, and a memo that is computing at that moment keeps the value from
/// before it (the interleaving below, made certain). The page's values read afresh there.
#[test]
fn a_derived_value_sees_a_change_made_while_it_was_computing() {
    use leptos::prelude::*;
    use std::sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    };

    /// Reads `derive(source)` while another thread changes the source mid-computation,
    /// then once more: the second read's value.
    fn read_after_a_change_mid_computation(
        derive: impl FnOnce(Box<dyn Fn() -> u32 + Send + Sync>) -> Box<dyn Fn() -> u32>,
    ) -> u32 {
        let source = ArcRwSignal::new(0u32);
        let (reached, reached_rx) = mpsc::channel::<()>();
        let (go, go_rx) = mpsc::channel::<()>();
        let (reached, go_rx) = (Mutex::new(reached), Mutex::new(go_rx));
        let first = AtomicBool::new(true);
        let read = source.clone();
        let value = derive(Box::new(move || {
            let v = read.get();
            if first.swap(false, Ordering::SeqCst) {
                reached.lock().unwrap().send(()).unwrap();
                go_rx.lock().unwrap().recv().unwrap();
            }
            v
        }));
        let writer = std::thread::spawn(move || {
            reached_rx.recv().unwrap();
            source.set(1);
            go.send(()).unwrap();
        });
        value();
        writer.join().unwrap();
        value()
    }

    let owner = Owner::new();
    owner.with(|| {
        let page = read_after_a_change_mid_computation(|f| {
            let v = app::derived::memo(f);
            Box::new(move || v.get())
        });
        assert_eq!(page, 1, "the page's derived value missed the change");

        let plain = read_after_a_change_mid_computation(|f| {
            let m = ArcMemo::new(move |_| f());
            Box::new(move || m.get())
        });
        assert_eq!(
            plain, 0,
            "reactive_graph's memo no longer misses it: `app::derived` can become plain memos"
        );
    });
}

#[tokio::test]
async fn proof_cookie_has_the_protective_attributes() {
    let app = spawn().await;
    let mut b = Browser::new();
    let r = b.start(&app).await;
    let cookie = r
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-confide_proof="), "{cookie}");
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    assert!(
        !cookie.contains("Domain"),
        "__Host- cookies carry no Domain"
    );
    assert_eq!(r.headers["cache-control"], "private, no-store");
}
