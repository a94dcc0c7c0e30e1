//! `/metrics` and the panic guard: a panic in a handler becomes a counted 500 with the
//! usual JSON body, and the server keeps serving.

use axum::{Router, routing::get};
use reqwest::StatusCode;
use server::{AppState, Config, MemoryStore, wrap};
use std::{net::SocketAddr, sync::Arc};
use tokio::net::TcpListener;

async fn boom() -> &'static str {
    let v: Vec<u8> = Vec::new();
    // An out-of-bounds index: the kind of bug the guard is for.
    let _ = v[std::hint::black_box(3)];
    "unreachable"
}

// Several worker threads, as in production: a page's render may end on another thread than
// the one it started on, which is where thread-bound values panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_are_caught_counted_and_answered_500() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config {
        addr,
        metrics_token: Some(server::assistant::Secret("metrics-token-for-tests".into())),
        ..Config::default()
    };
    let store = Arc::new(MemoryStore::new(server::lifetimes(&config)));
    let state = AppState::new(config, store).unwrap();
    let router =
        server::app(state.clone()).merge(wrap(Router::new().route("/boom", get(boom)), state));
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    // HEAD of a page renders without a panic anywhere, the first one after start included.
    let before = server::metrics::METRICS.panics();
    // A page's render that is dropped halfway used to leave tasks reading disposed reactive
    // state, now and then: many HEADs at once make "now and then" happen.
    let paths = [
        "/",
        "/t/0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5e6f",
        "/login",
        "/notes",
        "/no-such-page",
    ];
    let heads = (0..40).map(|i| {
        let (http, url) = (http.clone(), format!("{base}{}", paths[i % paths.len()]));
        async move { (url.clone(), http.head(url).send().await.unwrap().status()) }
    });
    for (url, status) in futures::future::join_all(heads).await {
        assert!(
            status.is_success() || status == reqwest::StatusCode::NOT_FOUND,
            "{url}: {status}"
        );
    }
    // Rendering finishes after the answer; give a panicking task time to be counted.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(server::metrics::METRICS.panics(), before, "HEAD panicked");

    // Whole pages of a session with a chat render to their end, again and again.
    let sid = uuid::Uuid::new_v4().to_string();
    let start = http
        .post(format!("{base}/api/session/start"))
        .header("x-confide-session", &sid)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let proof = start
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| {
            let v = v.to_str().ok()?;
            Some(
                v.strip_prefix("__Host-confide_proof=")?
                    .split(';')
                    .next()?
                    .to_owned(),
            )
        })
        .expect("a proof");
    let cookie = format!("__Host-confide_sid={sid}; __Host-confide_proof={proof}");
    let sent: serde_json::Value = http
        .post(format!("{base}/api/messages/send"))
        .header("x-confide-session", &sid)
        .header("cookie", &cookie)
        .json(&serde_json::json!({ "content": "hello there" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tid = sent["thread"]["id"].as_str().expect("a thread").to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for _ in 0..10 {
        for path in ["/".to_owned(), format!("/t/{tid}"), "/notes".to_owned()] {
            let body = http
                .get(format!("{base}{path}"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap_or_else(|e| panic!("{path}: the page was cut short: {e}"));
            assert!(body.contains("</body>"), "{path}: {body}");
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        server::metrics::METRICS.panics(),
        before,
        "a page render panicked"
    );

    let before = server::metrics::METRICS.panics();
    let res = http.get(format!("{base}/boom")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        res.headers()["x-content-type-options"],
        "nosniff",
        "the answer still gets the security headers"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "internal");
    assert!(
        !body.to_string().contains("index out of bounds"),
        "no internals in the answer"
    );
    assert_eq!(server::metrics::METRICS.panics(), before + 1);

    // Still serving.
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // A panic in a detached task (no request to answer) is counted too.
    let before = server::metrics::METRICS.panics();
    let task = tokio::spawn(async {
        let v: Vec<u8> = Vec::new();
        v[std::hint::black_box(7)]
    });
    assert!(task.await.is_err());
    assert_eq!(server::metrics::METRICS.panics(), before + 1);

    let text = http
        .get(format!("{base}/metrics"))
        .bearer_auth("metrics-token-for-tests")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("confide_panics_total"), "{text}");
    assert!(
        text.contains("confide_requests_total{route=\"health\",method=\"GET\",status=\"2xx\"}"),
        "{text}"
    );
    assert!(
        text.contains("confide_request_duration_seconds_bucket"),
        "{text}"
    );
}
