//! What a hostile client can do through the HTTP API alone: keep streams of an ended session,
//! hold connections with slow headers, open streams without end, flood from a shared
//! address, rotate session ids, and bend cookie names.

mod common;

use common::{Browser, TestApp, send, spawn_with};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::Config;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An open event stream, read frame by frame.
struct Stream {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

enum Next {
    Event(Value),
    /// The server closed the stream.
    Closed,
    /// Nothing arrived in time.
    Quiet,
}

impl Stream {
    async fn open(app: &TestApp, b: &Browser) -> Self {
        let res = app
            .http
            .get(format!("{}/api/events", app.base))
            .header("cookie", b.cookie_header())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "the stream opens");
        Self {
            body: res.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    async fn next(&mut self, wait: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return Next::Event(serde_json::from_str(data).unwrap());
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Some(Err(_)) | None) => return Next::Closed,
                Err(_) => return Next::Quiet,
            }
        }
    }

    /// Reads until the server closes the stream; false if it is still open after `wait`.
    /// Returns the events seen on the way.
    async fn closes_within(&mut self, wait: Duration) -> Result<Vec<Value>, Vec<Value>> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Next::Event(e) => seen.push(e),
                Next::Closed => return Ok(seen),
                Next::Quiet => return Err(seen),
            }
        }
    }
}

/// Streams close only when told: a recheck this rare never fires during a test.
fn no_recheck() -> Config {
    Config {
        stream_recheck: Duration::from_secs(3600),
        echo_delay: Duration::ZERO,
        ..Config::default()
    }
}

async fn started(app: &TestApp) -> Browser {
    let mut b = Browser::new();
    let r = b.start(app).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    b
}

/// The server closes `stream` soon, without waiting for a recheck.
/// The stream ends, and not as one pushed out by a newer tab (whose browser would then not
/// reconnect).
async fn closes(stream: &mut Stream, why: &str) {
    let seen = stream
        .closes_within(Duration::from_secs(10))
        .await
        .unwrap_or_else(|seen| panic!("{why}: the stream stayed open ({seen:?})"));
    assert!(
        !seen.iter().any(|e| e["type"] == "replaced"),
        "{why}: {seen:?}"
    );
}

/// Nobody can claim `sid` again: a browser presenting it without a proof is told it ended.
async fn never_claimable(app: &TestApp, sid: &str) {
    let mut someone = Browser {
        sid: sid.to_owned(),
        proof: None,
    };
    let r = someone.start(app).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "session_ended"),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn an_ended_sessions_stream_closes_at_once_and_its_id_never_comes_back() {
    let app = spawn_with(no_recheck()).await;
    let mut a = started(&app).await;
    let mut stream = Stream::open(&app, &a).await;
    let r = a.call(&app, "session/forget", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    closes(&mut stream, "forget").await;

    // Someone else presents the same id: it is not claimable again, with or without the
    // old proof, so nothing of the old session can attach to a new one.
    never_claimable(&app, &a.sid).await;
    let r = a.start(&app).await;
    assert_eq!(r.code(), "session_ended");
    assert_eq!(app.store.len(), 0, "nothing was created under the ended id");
}

#[tokio::test]
async fn signing_out_and_ending_a_session_elsewhere_close_exactly_its_streams() {
    let app = spawn_with(Config {
        auth_password: true,
        auth_registration: true,
        ..no_recheck()
    })
    .await;
    let mut one = started(&app).await;
    let r = one
        .call(
            &app,
            "auth/register",
            json!({ "username": "ann", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    one.sid = r.body["session_id"].as_str().unwrap().to_owned();
    let mut two = started(&app).await;
    let r = two
        .call(
            &app,
            "auth/login",
            json!({ "username": "ann", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    two.sid = r.body["session_id"].as_str().unwrap().to_owned();

    let mut s_one = Stream::open(&app, &one).await;
    let mut s_two = Stream::open(&app, &two).await;
    // `one` ends `two` from the sessions page.
    let rows = one.call(&app, "auth/sessions", json!({})).await;
    let handle = rows.body["sessions"]
        .as_array()
        .or(rows.body.as_array())
        .unwrap()
        .iter()
        .find(|r| r["current"] != true)
        .and_then(|r| r["handle"].as_str())
        .expect("the other session is listed")
        .to_owned();
    let r = one
        .call(&app, "auth/sessions/end", json!({ "handle": handle }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    closes(&mut s_two, "ended from another browser").await;
    // `one`'s stream is untouched and still hears the account's events.
    one.call(&app, "threads/create", json!({ "title": "still here" }))
        .await;
    match s_one.next(Duration::from_secs(10)).await {
        Next::Event(e) => assert_eq!(e["type"], "thread", "{e}"),
        _ => panic!("the remaining session's stream stopped"),
    }

    let r = one.call(&app, "auth/logout", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    closes(&mut s_one, "sign-out").await;
    never_claimable(&app, &one.sid).await;
    never_claimable(&app, &two.sid).await;
}

#[tokio::test]
async fn streams_are_capped_per_session_oldest_first_and_in_total() {
    let app = spawn_with(Config {
        streams_per_session: 2,
        max_streams: 3,
        ..no_recheck()
    })
    .await;
    let a = started(&app).await;
    let mut first = Stream::open(&app, &a).await;
    let mut second = Stream::open(&app, &a).await;
    let mut third = Stream::open(&app, &a).await;
    // The oldest makes room, and its last word says why, so that its browser does not
    // reconnect and push out the next oldest, round and round the tabs.
    let seen = first
        .closes_within(Duration::from_secs(10))
        .await
        .expect("the oldest made room");
    assert_eq!(
        seen.last().map(|e| &e["type"]),
        Some(&json!("replaced")),
        "{seen:?}"
    );
    for s in [&mut second, &mut third] {
        assert!(matches!(
            s.next(Duration::from_millis(300)).await,
            Next::Quiet
        ));
    }
    let b = started(&app).await;
    let _b1 = Stream::open(&app, &b).await;
    let refused = send(
        app.http
            .get(format!("{}/api/events", app.base))
            .header("cookie", b.cookie_header()),
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
    );
    assert!(refused.headers.contains_key("retry-after"));
    // A closed stream gives its place back.
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = app
            .http
            .get(format!("{}/api/events", app.base))
            .header("cookie", b.cookie_header())
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection; the time it took, or None if it stayed
/// open past `wait`.
async fn closed_after(sock: &mut tokio::net::TcpStream, wait: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(wait.saturating_sub(start.elapsed()), sock.read(&mut buf)).await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_cut_off() {
    let app = spawn_with(Config {
        header_timeout: Duration::from_secs(1),
        ..no_recheck()
    })
    .await;

    // One header line every 300 ms: never finished, never idle for long.
    let mut sock = tokio::net::TcpStream::connect(addr(&app)).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut cut = false;
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if sock
            .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            cut = true;
            break;
        }
        let mut probe = [0u8; 512];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), sock.read(&mut probe)).await
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "a trickling client kept its connection for 12 s");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "cut off after {:?}",
        start.elapsed()
    );

    // A keep-alive connection that goes quiet after one request is closed too.
    let mut sock = tokio::net::TcpStream::connect(addr(&app)).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = sock.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let took = closed_after(&mut sock, Duration::from_secs(10))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(took >= Duration::from_millis(500), "closed after {took:?}");

    // A connection that never sends a byte is closed as well.
    let mut sock = tokio::net::TcpStream::connect(addr(&app)).await.unwrap();
    assert!(
        closed_after(&mut sock, Duration::from_secs(10))
            .await
            .is_some()
    );

    // The event stream is one long answer, not a slow request: it outlives the bound.
    let mut a = started(&app).await;
    let mut stream = Stream::open(&app, &a).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    a.call(&app, "threads/create", json!({ "title": "later" }))
        .await;
    match stream.next(Duration::from_secs(10)).await {
        Next::Event(e) => assert_eq!(e["type"], "thread", "{e}"),
        _ => panic!("the event stream was cut by the header bound"),
    }
}

#[tokio::test]
async fn anonymous_floods_do_not_starve_proven_sessions_on_the_same_address() {
    let app = spawn_with(Config {
        ip_rate: 1,
        ip_burst: 4,
        ..no_recheck()
    })
    .await;
    let mut a = started(&app).await; // one anonymous request: the session start
    let mut limited = 0;
    for _ in 0..20 {
        let r = app.http.get(format!("{}/", app.base)).send().await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    assert!(
        limited >= 15,
        "the anonymous flood was limited ({limited} of 20)"
    );
    for _ in 0..10 {
        let r = a.call(&app, "threads/list", json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "a proven session is not starved");
    }
    // Forged proofs are anonymous: they spend the address's bucket, not the session's. The
    // bucket gains a token a second, and a busy machine may take that long over the loop
    // above, so one forged request in a row may get as far as the proof check (403); most
    // must be refused by the empty bucket.
    let forged = Browser {
        sid: a.sid.clone(),
        proof: Some("A".repeat(43)),
    };
    let mut refused = 0;
    for _ in 0..10 {
        let r = send(
            app.http
                .post(format!("{}/api/notes/get", app.base))
                .header("x-confide-session", &forged.sid)
                .header("cookie", forged.cookie_header())
                .json(&json!({})),
        )
        .await;
        match r.status {
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            StatusCode::FORBIDDEN => {}
            other => panic!("a forged proof got {other}: {:?}", r.body),
        }
    }
    assert!(refused >= 5, "forged proofs were limited ({refused} of 10)");
    // A newcomer has to wait while the flood lasts (the same allowance for a refill).
    let mut waited = 0;
    for _ in 0..10 {
        match Browser::new().start(&app).await.status {
            StatusCode::TOO_MANY_REQUESTS => waited += 1,
            StatusCode::OK => {}
            other => panic!("a newcomer's start got {other}"),
        }
    }
    assert!(waited >= 5, "newcomers were limited ({waited} of 10)");
    assert_eq!(
        a.call(&app, "threads/list", json!({})).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rotating_session_ids_does_not_escape_the_limits() {
    let app = spawn_with(Config {
        new_sessions_per_minute: 4,
        address_messages_per_minute: 6,
        address_messages_burst: 6,
        ..no_recheck()
    })
    .await;
    let mut browsers = Vec::new();
    for _ in 0..4 {
        browsers.push(started(&app).await);
    }
    let mut fifth = Browser::new();
    let r = fifth.start(&app).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert!(r.body["message"].as_str().unwrap().contains("new sessions"));
    assert!(r.headers.contains_key("retry-after"));

    // Each session is well within its own 30 a minute; together they are not.
    let mut accepted = 0;
    let mut refused = 0;
    for round in 0..3 {
        for b in browsers.iter_mut() {
            let r = b
                .call(
                    &app,
                    "messages/send",
                    json!({ "content": format!("hello {round}") }),
                )
                .await;
            match r.status {
                StatusCode::OK => accepted += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    assert!(r.body["message"].as_str().unwrap().contains("address"));
                    refused += 1
                }
                other => panic!("unexpected {other}: {:?}", r.body),
            }
        }
    }
    assert_eq!((accepted, refused), (6, 6));
}

#[tokio::test]
async fn cookie_names_are_read_as_the_cookie_parser_reads_them() {
    let app = spawn_with(no_recheck()).await;
    let mut a = started(&app).await;
    a.set_note(&app, "original").await;
    let proof = a.proof.clone().unwrap();
    for sep in [" =", "\t=", "  \t ="] {
        let r = send(
            app.http
                .post(format!("{}/api/notes/set", app.base))
                .header(
                    "cookie",
                    format!(
                        "__Host-confide_sid{sep}{}; __Host-confide_proof={proof}",
                        a.sid
                    ),
                )
                .json(&json!({ "text": "forged" })),
        )
        .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "csrf_rejected"),
            "{sep:?}"
        );
    }
    assert_eq!(a.get_note(&app).await.body["text"], "original");
}

#[tokio::test]
async fn metrics_need_the_configured_bearer_token_even_from_loopback() {
    let app = spawn_with(no_recheck()).await;
    let r = send(app.http.get(format!("{}/metrics", app.base))).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "no token configured, no metrics"
    );

    let token = "a-long-enough-metrics-token";
    let app = spawn_with(Config {
        metrics_token: Some(server::assistant::Secret(token.into())),
        ..no_recheck()
    })
    .await;
    for auth in [None, Some("Bearer wrong"), Some(token), Some("Basic eDp5")] {
        let mut req = app.http.get(format!("{}/metrics", app.base));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = send(req).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{auth:?}"
        );
    }
    let r = app
        .http
        .get(format!("{}/metrics", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("confide_panics_total"));
}

/// A sign-in renews the session; a request the page sent under the old id just before (or
/// while) the new proof arrived carries the new proof with the old id. It is refused as
/// ended, and must not take the new proof away with it.
#[tokio::test]
async fn a_request_under_the_replaced_id_does_not_undo_a_sign_in() {
    let app = spawn_with(Config {
        auth_password: true,
        auth_registration: true,
        ..no_recheck()
    })
    .await;
    let mut b = started(&app).await;
    let old_sid = b.sid.clone();
    let r = b
        .call(
            &app,
            "auth/register",
            json!({ "username": "bea", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    b.sid = r.body["session_id"].as_str().unwrap().to_owned();
    let late = send(
        app.http
            .post(format!("{}/api/threads/list", app.base))
            .header("x-confide-session", &old_sid)
            .header(
                "cookie",
                format!(
                    "__Host-confide_sid={old_sid}; __Host-confide_proof={}",
                    b.proof.clone().unwrap()
                ),
            )
            .json(&json!({})),
    )
    .await;
    assert_eq!(late.code(), "session_ended");
    assert!(
        late.headers.get("set-cookie").is_none(),
        "the new proof was not cleared: {:?}",
        late.headers.get("set-cookie")
    );
    let r = b.call(&app, "auth/me", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["name"], "bea");
}

/// A browser's event stream never ends by itself. On shutdown the server ends every stream at
/// once, so the browser reconnects (to another instance, or this one restarted) at once, and
/// the shutdown is not held for its whole grace period (10 s) by streams.
#[tokio::test]
async fn shutting_down_ends_open_streams_at_once() {
    let config = no_recheck();
    let store = std::sync::Arc::new(server::MemoryStore::new(server::lifetimes(&config)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = server::AppState::new(
        Config {
            addr: listener.local_addr().unwrap(),
            ..config
        },
        store.clone(),
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let app = common::test_app(base, store, stop);
    let mut b = Browser::new();
    assert_eq!(b.start(&app).await.status, StatusCode::OK);
    let mut streams = vec![Stream::open(&app, &b).await, Stream::open(&app, &b).await];
    // Dropping the app is the shutdown signal.
    drop(app);
    let started = Instant::now();
    for s in &mut streams {
        assert!(
            s.closes_within(Duration::from_secs(5)).await.is_ok(),
            "a stream outlived the shutdown by 5 s"
        );
    }
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("the server stopped well within its grace period")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}
