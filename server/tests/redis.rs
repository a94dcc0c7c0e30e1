//! Several Confide instances on one Redis: one browser served by either, live events across
//! them, and Redis going away and coming back.

mod common;
#[allow(dead_code)]
#[path = "../src/store/redis_test_support.rs"]
mod redis_support;

use common::{Browser, TestApp};
use futures::StreamExt;
use redis_support::{RedisCluster, RedisServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{AppState, Config, MemoryStore, serve};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::net::TcpListener;

/// The echo assistant's pause between words on every instance.
const ECHO_DELAY: Duration = Duration::from_millis(20);

/// A Confide instance on the given Redis, as its own process would set itself up.
async fn instance(redis: &RedisServer, prefix: &str) -> TestApp {
    instance_on(&redis.url(), prefix).await
}

async fn instance_on(url: &str, prefix: &str) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        addr: listener.local_addr().unwrap(),
        store: server::StoreKind::Redis(url.to_owned()),
        redis_prefix: prefix.into(),
        store_timeout: Duration::from_millis(500),
        echo_delay: ECHO_DELAY,
        // The cluster test's users all chat from this one address, and the race test sends
        // past a person's pace.
        address_messages_per_minute: 10_000,
        messages_per_minute: 10_000,
        session_rate: 1_000,
        session_burst: 1_000,
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

/// Two tabs of one browser, each on its own instance (no sticky sessions), send into one chat
/// at the same moment. A turn lock holds within one instance only, so both used to read the
/// same end of the chat and both append after it: two replies streaming at once, each blind
/// to the other's question, and an edit's reply landing after a question sent meanwhile. The
/// store now lets a turn follow only the end it read: every reply follows its question, and
/// no turn starts while the reply before it streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_at_once_on_two_instances_leave_one_consistent_chat() {
    let redis = RedisServer::start();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let a = instance(&redis, &prefix).await;
    let b = instance(&redis, &prefix).await;
    let mut browser = Browser::new();
    browser.start(&a).await;
    let sent = browser
        .call(&a, "messages/send", json!({ "content": "first" }))
        .await;
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let first = sent.body["user"]["id"].as_str().unwrap().to_owned();
    common::settled(&a, &mut browser, &tid).await;
    // Replies of eight words: each streams for at least 140 ms.
    let words = |from: &str, round: usize| format!("from {from} {round} and five more words here");
    for round in 0..40 {
        // Every fourth round, tab A edits the first question while tab B sends.
        let edit = round % 4 == 3;
        let (path, body) = if edit {
            (
                "messages/edit",
                json!({ "message_id": first, "content": words("an edit", round) }),
            )
        } else {
            (
                "messages/send",
                json!({ "thread_id": tid, "content": words("A", round) }),
            )
        };
        let (mut tab_a, mut tab_b) = (browser.clone(), browser.clone());
        let (ra, rb) = tokio::join!(
            tab_a.call(&a, path, body),
            tab_b.call(
                &b,
                "messages/send",
                json!({ "thread_id": tid, "content": words("B", round) })
            ),
        );
        common::assert_one_or_both_went_through(&ra, &rb, round);
        let t = common::settled(&b, &mut browser, &tid).await;
        common::assert_turns_in_order(&t, ECHO_DELAY, round);
    }
}

/// What one simulated user of `cluster_load` had acknowledged, and where.
struct Chatter {
    browser: Browser,
    thread: Option<String>,
    /// Each acknowledged text, with when it was sent and when its acknowledgement came.
    acknowledged: Vec<(String, Instant, Instant)>,
    failed: usize,
}

/// `users` browsers, each alternating between `a` and `b`, send `turns` messages into one
/// thread each; a failed request (the store in a failover) is retried after a pause. Every
/// request must succeed within `patience` of retrying. With `warm`, each user waits there
/// once its session and thread exist, so a fault can strike the turns and not the starts.
async fn cluster_load(
    a: Arc<TestApp>,
    b: Arc<TestApp>,
    users: usize,
    turns: usize,
    patience: Duration,
    warm: Option<Arc<tokio::sync::Barrier>>,
) -> Vec<Chatter> {
    let tasks: Vec<_> = (0..users)
        .map(|u| {
            let (a, b, warm) = (a.clone(), b.clone(), warm.clone());
            tokio::spawn(async move {
                let mut me = Chatter {
                    browser: Browser::new(),
                    thread: None,
                    acknowledged: Vec::new(),
                    failed: 0,
                };
                assert_eq!(me.browser.start(&*a).await.status, StatusCode::OK);
                for turn in 0..turns {
                    if turn == 1
                        && let Some(w) = &warm
                    {
                        w.wait().await;
                    }
                    let app = if (u + turn) % 2 == 0 { &*a } else { &*b };
                    let text = format!("user {u} turn {turn} {}", uuid::Uuid::new_v4().simple());
                    let mut body = json!({ "content": text });
                    if let Some(t) = &me.thread {
                        body["thread_id"] = json!(t);
                    }
                    let given_up = Instant::now() + patience;
                    loop {
                        let sent = Instant::now();
                        let r = me.browser.call(app, "messages/send", body.clone()).await;
                        if r.status == StatusCode::OK {
                            me.thread = r.body["thread"]["id"].as_str().map(str::to_owned);
                            me.acknowledged.push((text.clone(), sent, Instant::now()));
                            break;
                        }
                        // Busy from the last turn's reply, or the store failing over.
                        assert!(
                            r.status == StatusCode::CONFLICT || r.status.is_server_error(),
                            "{}: {:?}",
                            r.status,
                            r.body
                        );
                        me.failed += 1;
                        assert!(Instant::now() < given_up, "no recovery: {:?}", r.body);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                me
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// The thread once its reply is done; a 503 (a client still learning the cluster's new
/// shape) is retried for a while.
async fn settled_through_failover(app: &TestApp, b: &mut Browser, tid: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = b
            .call(app, "threads/get", json!({ "thread_id": tid }))
            .await;
        let streaming = r.body["messages"]
            .as_array()
            .is_none_or(|m| m.iter().any(|m| m["status"] == "streaming"));
        if r.status == StatusCode::OK && !streaming {
            return r.body;
        }
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::SERVICE_UNAVAILABLE,
            "{}: {:?}",
            r.status,
            r.body
        );
        assert!(Instant::now() < deadline, "{}: {:?}", r.status, r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every acknowledged message of every user is in that user's thread, read through either
/// instance, and nothing in it is anyone else's. With a master `killed` between two
/// instants: Redis replicates after it answers, so a write acknowledged in the last moment
/// before a SIGKILL may not have reached the replica that takes over; only a message sent
/// before the kill ended and acknowledged less than a second before it began may be missing.
async fn all_kept_and_private(
    a: &TestApp,
    b: &TestApp,
    users: &mut [Chatter],
    killed: Option<(Instant, Instant)>,
) {
    let at_risk = |sent: Instant, acked: Instant| {
        killed.is_some_and(|(from, to)| sent < to && acked + Duration::from_secs(1) > from)
    };
    for (u, me) in users.iter_mut().enumerate() {
        let tid = me.thread.clone().expect("a thread");
        let on_a = settled_through_failover(a, &mut me.browser, &tid).await;
        let on_b = settled_through_failover(b, &mut me.browser, &tid).await;
        assert_eq!(on_a, on_b, "both instances read the same thread");
        let texts: Vec<&str> = on_a["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "user")
            .filter_map(|m| m["content"].as_str())
            .collect();
        for (t, sent, acked) in &me.acknowledged {
            assert!(
                texts.contains(&t.as_str()) || at_risk(*sent, *acked),
                "acknowledged and lost: {t}"
            );
        }
        let mine = format!("user {u} turn ");
        assert!(
            texts.iter().all(|t| t.starts_with(&mine)),
            "another user's text in user {u}'s thread: {texts:?}"
        );
    }
}

/// Two instances on a real Redis Cluster (three masters, each with a replica): one session
/// served by both, live events and revocation across them, and chat carrying on through a
/// planned failover of every master and the SIGKILL of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_a_redis_cluster_ride_out_failovers() {
    let cluster = Arc::new(std::sync::Mutex::new(RedisCluster::start()));
    let url = cluster.lock().unwrap().url();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let a = Arc::new(instance_on(&url, &prefix).await);
    let b = Arc::new(instance_on(&url, &prefix).await);

    // Revocation: a session forgotten through A closes its page open on B at once.
    let mut leaving = Browser::new();
    leaving.start(&*a).await;
    let page = b
        .http
        .get(format!("{}/api/events", b.base))
        .header("cookie", leaving.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let forgot = Instant::now();
    let r = leaving.call(&*a, "session/forget", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let mut body = page.bytes_stream();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = body.next().await {}
    })
    .await;
    assert!(closed.is_ok(), "the page on B stayed open");
    // Pushed, not found by a look: the instances' own recheck is 10 s away.
    assert!(
        forgot.elapsed() < Duration::from_secs(5),
        "{:?}",
        forgot.elapsed()
    );

    // Planned failovers of every master while 12 users chat: nothing acknowledged is lost.
    let failovers = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(300));
            let c = cluster.lock().unwrap();
            for master in c.masters() {
                c.fail_over(master);
            }
        })
    };
    let mut users = cluster_load(a.clone(), b.clone(), 12, 12, Duration::from_secs(20), None).await;
    failovers.await.unwrap();
    all_kept_and_private(&a, &b, &mut users, None).await;

    // A master killed outright: its replica takes over after the node timeout; requests in
    // between fail and are retried, and everything acknowledged before the kill is kept.
    let warm = Arc::new(tokio::sync::Barrier::new(9));
    let load = tokio::spawn(cluster_load(
        a.clone(),
        b.clone(),
        8,
        16,
        Duration::from_secs(30),
        Some(warm.clone()),
    ));
    warm.wait().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killing = cluster.clone();
    let killed = tokio::task::spawn_blocking(move || {
        let mut c = killing.lock().unwrap();
        let victim = c.masters()[0];
        let from = Instant::now();
        c.kill(victim);
        (from, Instant::now())
    })
    .await
    .unwrap();
    let mut users = load.await.unwrap();
    // A clone: the cluster must outlive the checks below.
    let whole = cluster.clone();
    tokio::task::spawn_blocking(move || {
        whole
            .lock()
            .unwrap()
            .wait_whole(Duration::from_secs(30))
            .unwrap()
    })
    .await
    .unwrap();
    all_kept_and_private(&a, &b, &mut users, Some(killed)).await;
    drop(cluster);
}
