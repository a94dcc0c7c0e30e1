//! Security rules over real HTTP: CSRF, https mode, native TLS, headers, limits, and
//! "forget this browser".

mod common;

use app::SessionId;
use common::{Browser, Reply, TestApp, send, spawn, spawn_with};
use confide_core::Probe;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{AppState, Config, MemoryStore};
use std::{sync::Arc, time::Duration};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every server function with a body it would accept.
fn endpoints(thread: &str, message: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("session/start", json!({})),
        ("notes/get", json!({})),
        ("notes/set", json!({ "text": "forged" })),
        ("threads/list", json!({})),
        ("threads/create", json!({ "title": "forged" })),
        ("threads/get", json!({ "thread_id": thread })),
        (
            "threads/rename",
            json!({ "thread_id": thread, "title": "forged" }),
        ),
        ("threads/delete", json!({ "thread_id": thread })),
        ("threads/search", json!({ "query": "x" })),
        (
            "threads/export",
            json!({ "thread_id": thread, "format": "json" }),
        ),
        (
            "messages/send",
            json!({ "thread_id": thread, "content": "forged" }),
        ),
        ("messages/stop", json!({ "message_id": message })),
        (
            "messages/edit",
            json!({ "message_id": message, "content": "forged" }),
        ),
        ("messages/regenerate", json!({ "thread_id": thread })),
        (
            "messages/feedback",
            json!({ "message_id": message, "rating": "down" }),
        ),
        ("session/export", json!({})),
        ("session/forget", json!({})),
    ]
}

async fn post(
    app: &TestApp,
    b: &Browser,
    endpoint: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> Reply {
    let mut req = app
        .http
        .post(format!("{}/api/{endpoint}", app.base))
        .header("x-confide-session", &b.sid)
        .header("cookie", b.cookie_header())
        .json(body);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    send(req).await
}

async fn fixture(app: &TestApp) -> (Browser, String, String, Value) {
    let mut b = Browser::new();
    b.start(app).await;
    b.set_note(app, "original").await;
    let sent = b
        .call(app, "messages/send", json!({ "content": "hello" }))
        .await;
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let mid = sent.body["user"]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let snapshot = b
        .call(app, "threads/get", json!({ "thread_id": tid }))
        .await
        .body;
    (b, tid, mid, snapshot)
}

#[tokio::test]
async fn cross_site_requests_to_every_server_function_are_refused() {
    let app = spawn().await;
    let (mut b, tid, mid, snapshot) = fixture(&app).await;
    let attacks: [&[(&str, &str)]; 4] = [
        &[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        &[("origin", "https://evil.example")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
    ];
    for (endpoint, body) in endpoints(&tid, &mid) {
        for headers in attacks {
            let r = post(&app, &b, endpoint, &body, headers).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{endpoint} {headers:?}: {:?}",
                r.body
            );
            assert_eq!(r.code(), "csrf_rejected");
        }
    }
    // Nothing changed.
    assert_eq!(b.get_note(&app).await.body["text"], "original");
    assert_eq!(
        b.call(&app, "threads/list", json!({}))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        b.call(&app, "threads/get", json!({ "thread_id": tid }))
            .await
            .body,
        snapshot
    );

    // The same calls from the site itself work.
    let own = app.base.to_string();
    let r = post(
        &app,
        &b,
        "notes/get",
        &json!({}),
        &[("origin", &own), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn cookies_alone_never_authorise_a_server_function() {
    let app = spawn().await;
    let (b, _, _, _) = fixture(&app).await;
    let r = send(
        app.http
            .post(format!("{}/api/notes/set", app.base))
            .header("cookie", b.cookie_header())
            .json(&json!({ "text": "no header" })),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "csrf_rejected")
    );
    let r = send(
        app.http
            .get(format!("{}/api/notes/get", app.base))
            .header("cookie", b.cookie_header()),
    )
    .await;
    assert_ne!(r.status, StatusCode::OK, "no server function answers GET");
}

#[tokio::test]
async fn the_event_stream_checks_the_origin() {
    let app = spawn().await;
    let (b, _, _, _) = fixture(&app).await;
    for headers in [
        [("origin", "https://evil.example")],
        [("sec-fetch-site", "cross-site")],
    ] {
        let mut req = app
            .http
            .get(format!("{}/api/events", app.base))
            .header("cookie", b.cookie_header());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let r = send(req).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "csrf_rejected")
        );
    }
}

#[tokio::test]
async fn responses_carry_security_headers_and_pages_a_nonce_csp() {
    let app = spawn().await;
    let res = app.http.get(format!("{}/", app.base)).send().await.unwrap();
    let h = res.headers().clone();
    let html = res.text().await.unwrap();
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("a nonce in the CSP");
    assert!(nonce.len() >= 16);
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "the page's scripts carry the CSP nonce"
    );
    assert!(
        !csp.contains("unsafe-inline")
            && csp.contains("frame-ancestors 'none'")
            && csp.contains("'wasm-unsafe-eval'")
    );
    // A new response, a new nonce.
    let again = app.http.get(format!("{}/", app.base)).send().await.unwrap();
    assert!(
        !again.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains(nonce)
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(
        h["permissions-policy"]
            .to_str()
            .unwrap()
            .contains("camera=()")
    );
    assert_eq!(h["cache-control"], "private, no-store");
    assert!(
        h.get("strict-transport-security").is_none(),
        "no HSTS on plain http"
    );

    let mut b = Browser::new();
    let r = b.start(&app).await;
    assert!(
        r.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert_eq!(r.headers["cache-control"], "private, no-store");
}

#[tokio::test]
async fn https_mode_redirects_plain_http_and_trusts_only_configured_proxies() {
    let mut config = Config {
        public_url: Some("https://chat.example.test".parse().unwrap()),
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..Config::default()
    };
    // First: the local peer is not a trusted proxy.
    config.trusted_proxies = vec!["10.9.9.9".parse().unwrap()];
    let app = spawn_with(config.clone()).await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .get(format!("{}/t/x?y=1", app.base))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::PERMANENT_REDIRECT,
        "X-Forwarded-Proto from an untrusted peer is ignored"
    );
    assert_eq!(r.headers()["location"], "https://chat.example.test/t/x?y=1");
    assert_eq!(
        no_redirect
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // Then behind a trusted proxy that terminated TLS.
    config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let app = spawn_with(config).await;
    let r = no_redirect
        .get(format!("{}/", app.base))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let r = no_redirect
        .get(format!("{}/", app.base))
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
}

#[tokio::test]
async fn native_tls_serves_https_with_host_only_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let redirect_port = common::free_port();
    let config = Config {
        addr,
        tls_cert: Some(cert_path),
        tls_key: Some(key_path),
        redirect_addr: Some(format!("127.0.0.1:{redirect_port}").parse().unwrap()),
        ..Config::default()
    };
    let store = Arc::new(MemoryStore::new(server::lifetimes(&config)));
    let state = AppState::new(config, store).unwrap();
    let (_stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, state, async {
        let _ = rx.await;
    }));

    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", addr.port());
    let mut ok = false;
    for _ in 0..50 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the TLS listener answers");

    let sid = SessionId::random().as_string();
    let res = client
        .post(format!("{base}/api/session/start"))
        .header("x-confide-session", &sid)
        .header("cookie", format!("__Host-confide_sid={sid}"))
        .header("origin", format!("https://localhost:{}", addr.port()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-confide_proof="), "{cookie}");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );

    // Plain http on the redirect port goes to the https site.
    let r = client
        .get(format!("http://127.0.0.1:{redirect_port}/t/abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        r.headers()["location"],
        format!("https://127.0.0.1:{}/t/abc", addr.port())
    );
}

#[tokio::test]
async fn oversized_and_slow_bodies_are_refused_clearly() {
    let app = spawn_with(Config {
        body_limit: 4 * 1024,
        request_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let mut b = Browser::new();
    b.start(&app).await;
    let big = json!({ "text": "x".repeat(8 * 1024) });
    let r = post(&app, &b, "notes/set", &big, &[]).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );

    // Without a Content-Length (chunked), the limit still holds.
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(
        serde_json::to_vec(&big).unwrap(),
    )]);
    let r = send(
        app.http
            .post(format!("{}/api/notes/set", app.base))
            .header("x-confide-session", &b.sid)
            .header("cookie", b.cookie_header())
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );

    // A body that trickles in slower than the timeout (slowloris).
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/notes/set HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\
         X-Confide-Session: {}\r\nCookie: {}\r\n\r\n{{\"te",
        b.sid,
        b.cookie_header()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
        .await
        .expect("answered in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"));
    assert_eq!(
        b.get_note(&app).await.body["text"],
        "",
        "nothing was written"
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let app = spawn_with(Config {
        session_rate: 1,
        session_burst: 3,
        ..Config::default()
    })
    .await;
    let mut b = Browser::new();
    b.start(&app).await; // 1
    b.call(&app, "threads/list", json!({})).await; // 2
    b.call(&app, "threads/list", json!({})).await; // 3
    let r = b.call(&app, "threads/list", json!({})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert!(
        r.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // Another person behind the same address is not affected by this session's bucket.
    let mut other = Browser::new();
    assert_eq!(other.start(&app).await.status, StatusCode::OK);
    assert_eq!(
        other.call(&app, "threads/list", json!({})).await.status,
        StatusCode::OK
    );

    let app = spawn_with(Config {
        ip_rate: 1,
        ip_burst: 2,
        ..Config::default()
    })
    .await;
    // The address's bucket is for requests without a proven session: page loads and
    // session starts. A proven session spends its own.
    let mut c = Browser::new();
    c.start(&app).await;
    send(app.http.get(format!("{}/", app.base))).await;
    let r = send(app.http.get(format!("{}/", app.base))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert!(r.headers.contains_key("retry-after"));
    let r = c.call(&app, "threads/list", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);

    let app = spawn_with(Config {
        messages_per_minute: 2,
        echo_delay: Duration::ZERO,
        ..Config::default()
    })
    .await;
    let mut d = Browser::new();
    d.start(&app).await;
    for _ in 0..2 {
        assert_eq!(
            d.call(&app, "messages/send", json!({ "content": "hi" }))
                .await
                .status,
            StatusCode::OK
        );
    }
    let r = d
        .call(&app, "messages/send", json!({ "content": "hi" }))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
}

#[tokio::test]
async fn too_many_threads_is_a_clear_409() {
    let app = spawn_with(Config {
        session_rate: 100_000,
        session_burst: 100_000,
        ip_rate: 100_000,
        ip_burst: 100_000,
        ..Config::default()
    })
    .await;
    let mut b = Browser::new();
    b.start(&app).await;
    for i in 0..confide_core::store::MAX_THREADS {
        let r = b
            .call(&app, "threads/create", json!({ "title": format!("t{i}") }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{i}: {:?}", r.body);
    }
    let r = b.call(&app, "threads/create", json!({})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "limit_reached")
    );
}

#[tokio::test]
async fn forget_this_browser_deletes_everything_and_kills_the_old_credentials() {
    let app = spawn().await;
    let (mut b, tid, _, _) = fixture(&app).await;
    let export = b.call(&app, "session/export", json!({})).await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(export.body["note"]["text"], "original");
    assert_eq!(export.body["threads"][0]["thread"]["id"], tid.as_str());

    let id = SessionId::parse(&b.sid).unwrap();
    assert!(app.store.exists_raw(&id).await.unwrap());
    let r = b.call(&app, "session/forget", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.headers["clear-site-data"], "\"cookies\", \"storage\"");
    assert!(
        !app.store.exists_raw(&id).await.unwrap(),
        "the store holds nothing of the session"
    );
    assert_eq!(app.store.len(), 0);

    // The old id and proof are dead: refused, and nothing comes back to life.
    let old_proof = b.proof.clone();
    let r = b.get_note(&app).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.code(), "session_ended");
    assert_eq!(app.store.len(), 0);
    // Without the proof (the browser obeyed Clear-Site-Data) the id does not start over
    // either: an ended id is never claimed again, so the browser takes a new one.
    b.proof = None;
    let r = b.get_note(&app).await;
    assert_eq!(r.code(), "session_ended", "{}", r.body);
    assert!(
        b.proof.as_deref().unwrap_or("").is_empty(),
        "no proof was issued for the ended id (at most the old one cleared)"
    );
    assert_ne!(b.proof, old_proof);
    assert_eq!(app.store.len(), 0);
    let mut fresh = Browser::new();
    assert_eq!(fresh.start(&app).await.status, StatusCode::OK);
    let r = fresh
        .call(&app, "threads/get", json!({ "thread_id": tid }))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
