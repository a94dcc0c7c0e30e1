//! The chat over real HTTP: threads, streaming replies, stop, edit, and isolation of ids.

mod common;

use common::{Browser, Reply, TestApp, spawn_with};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::Config;
use std::time::Duration;

async fn app() -> TestApp {
    spawn_with(Config {
        echo_delay: Duration::from_millis(2),
        ..Config::default()
    })
    .await
}

async fn started(app: &TestApp) -> Browser {
    let mut b = Browser::new();
    assert_eq!(b.start(app).await.status, StatusCode::OK);
    b
}

fn ok(r: Reply) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn a_sent_message_gets_a_persisted_reply() {
    let app = app().await;
    let mut b = started(&app).await;
    let sent = ok(b
        .call(
            &app,
            "messages/send",
            json!({ "content": "hello there world" }),
        )
        .await);
    assert_eq!(sent["user"]["content"], "hello there world");
    assert_eq!(sent["reply"]["status"], "streaming");
    assert_eq!(sent["thread"]["title"], "hello there world");
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();

    let t = common::settled(&app, &mut b, &tid).await;
    let msgs = t["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["status"], "done");
    assert_eq!(msgs[1]["content"], "hello there world");
    assert!(
        msgs[1]["html"]
            .as_str()
            .unwrap()
            .contains("<p>hello there world</p>")
    );

    let list = ok(b.call(&app, "threads/list", json!({})).await);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], tid.as_str());
}

#[tokio::test]
async fn foreign_thread_and_message_ids_answer_404_and_change_nothing() {
    let app = app().await;
    let mut alice = started(&app).await;
    let sent = ok(alice
        .call(&app, "messages/send", json!({ "content": "alice only" }))
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    let uid = sent["user"]["id"].as_str().unwrap().to_owned();
    let before = common::settled(&app, &mut alice, &tid).await;
    let rid = before["messages"][1]["id"].as_str().unwrap().to_owned();

    let mut bob = started(&app).await;
    let attempts = [
        ("threads/get", json!({ "thread_id": tid })),
        (
            "threads/rename",
            json!({ "thread_id": tid, "title": "pwned" }),
        ),
        ("threads/delete", json!({ "thread_id": tid })),
        (
            "threads/export",
            json!({ "thread_id": tid, "format": "json" }),
        ),
        (
            "messages/send",
            json!({ "thread_id": tid, "content": "injected" }),
        ),
        ("messages/regenerate", json!({ "thread_id": tid })),
        ("messages/stop", json!({ "message_id": rid })),
        (
            "messages/edit",
            json!({ "message_id": uid, "content": "edited by bob" }),
        ),
        (
            "messages/feedback",
            json!({ "message_id": rid, "rating": "down" }),
        ),
    ];
    for (endpoint, body) in attempts {
        let r = bob.call(&app, endpoint, body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{endpoint}: {:?}", r.body);
        assert_eq!(r.code(), "not_found", "{endpoint}");
        assert!(
            !r.body.to_string().contains("alice only"),
            "{endpoint} leaked content"
        );
    }
    assert!(
        ok(bob.call(&app, "threads/list", json!({})).await)
            .as_array()
            .unwrap()
            .is_empty()
    );
    let found = ok(bob
        .call(&app, "threads/search", json!({ "query": "alice" }))
        .await);
    assert!(found.as_array().unwrap().is_empty());

    let after = ok(alice
        .call(&app, "threads/get", json!({ "thread_id": tid }))
        .await);
    assert_eq!(after, before, "Alice's thread is exactly as it was");
}

#[tokio::test]
async fn stop_keeps_the_partial_text() {
    let app = app().await;
    let mut b = started(&app).await;
    let sent = ok(b
        .call(&app, "messages/send", json!({ "content": "/slow" }))
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    let rid = sent["reply"]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(700)).await;

    // While it streams, the thread is busy.
    let r = b
        .call(
            &app,
            "messages/send",
            json!({ "thread_id": tid, "content": "more" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "busy");

    let stopped = ok(b
        .call(&app, "messages/stop", json!({ "message_id": rid }))
        .await);
    assert_eq!(stopped["status"], "stopped");
    let partial = stopped["content"].as_str().unwrap().to_owned();
    assert!(partial.starts_with("Counting slowly:"), "{partial}");
    assert!(
        !partial.contains("word120"),
        "stopped before the end: {partial}"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = ok(b
        .call(&app, "threads/get", json!({ "thread_id": tid }))
        .await);
    assert_eq!(
        t["messages"][1]["content"],
        partial.as_str(),
        "nothing more arrives after stop"
    );
    assert_eq!(t["messages"][1]["status"], "stopped");
}

#[tokio::test]
async fn edit_drops_later_turns_and_asks_again() {
    let app = app().await;
    let mut b = started(&app).await;
    let first = ok(b
        .call(&app, "messages/send", json!({ "content": "one" }))
        .await);
    let tid = first["thread"]["id"].as_str().unwrap().to_owned();
    common::settled(&app, &mut b, &tid).await;
    ok(b.call(
        &app,
        "messages/send",
        json!({ "thread_id": tid, "content": "two" }),
    )
    .await);
    assert_eq!(
        common::settled(&app, &mut b, &tid).await["messages"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    let uid = first["user"]["id"].as_str().unwrap();
    ok(b.call(
        &app,
        "messages/edit",
        json!({ "message_id": uid, "content": "uno" }),
    )
    .await);
    let t = common::settled(&app, &mut b, &tid).await;
    let contents: Vec<&str> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["uno", "uno"]);

    // Regenerate replaces the last reply.
    let old_reply = t["messages"][1]["id"].clone();
    let fresh = ok(b
        .call(&app, "messages/regenerate", json!({ "thread_id": tid }))
        .await);
    assert_ne!(fresh["id"], old_reply);
    let t = common::settled(&app, &mut b, &tid).await;
    assert_eq!(t["messages"].as_array().unwrap().len(), 2);
    assert_eq!(t["messages"][1]["id"], fresh["id"]);

    // Only the person's messages can be edited.
    let r = b
        .call(
            &app,
            "messages/edit",
            json!({ "message_id": fresh["id"], "content": "x" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_failing_reply_keeps_what_arrived_and_says_why() {
    let app = app().await;
    let mut b = started(&app).await;
    let sent = ok(b
        .call(&app, "messages/send", json!({ "content": "/error" }))
        .await);
    let t = common::settled(&app, &mut b, sent["thread"]["id"].as_str().unwrap()).await;
    let reply = &t["messages"][1];
    assert_eq!(reply["status"], "error");
    assert_eq!(reply["content"], "This reply starts well and ");
    assert!(reply["error"].as_str().unwrap().contains("failed"));
}

#[tokio::test]
async fn threads_rename_search_feedback_export_delete() {
    let app = app().await;
    let mut b = started(&app).await;
    let sent = ok(b
        .call(
            &app,
            "messages/send",
            json!({ "content": "the quick brown fox" }),
        )
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    let t = common::settled(&app, &mut b, &tid).await;
    let rid = t["messages"][1]["id"].clone();
    ok(b.call(&app, "threads/create", json!({})).await);

    let renamed = ok(b
        .call(
            &app,
            "threads/rename",
            json!({ "thread_id": tid, "title": "Foxes" }),
        )
        .await);
    assert_eq!(renamed["title"], "Foxes");
    let r = b
        .call(
            &app,
            "threads/rename",
            json!({ "thread_id": tid, "title": "  " }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let hits = ok(b
        .call(&app, "threads/search", json!({ "query": "BROWN" }))
        .await);
    assert_eq!(hits.as_array().unwrap().len(), 1);
    assert!(hits[0]["snippet"].as_str().unwrap().contains("brown"));

    let fb = ok(b
        .call(
            &app,
            "messages/feedback",
            json!({ "message_id": rid, "rating": "up", "comment": "nice" }),
        )
        .await);
    assert_eq!(fb["feedback"]["rating"], "up");
    // A comment over the limit, an unknown rating or a stranger's id changes nothing.
    let long = "é".repeat(2_001);
    let r = b
        .call(
            &app,
            "messages/feedback",
            json!({ "message_id": rid, "rating": "down", "comment": long }),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);
    let r = b
        .call(
            &app,
            "messages/feedback",
            json!({ "message_id": rid, "rating": "sideways" }),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    let mut stranger = Browser::new();
    stranger.start(&app).await;
    let r = stranger
        .call(
            &app,
            "messages/feedback",
            json!({ "message_id": rid, "rating": "down", "comment": "not yours" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let kept = ok(b
        .call(&app, "threads/get", json!({ "thread_id": tid }))
        .await);
    assert_eq!(
        kept["messages"][1]["feedback"],
        json!({ "rating": "up", "comment": "nice" })
    );
    // Exactly at the limit (in characters, not bytes) is fine; blank is no comment.
    let at_limit = "é".repeat(2_000);
    let fb2 = ok(b
        .call(
            &app,
            "messages/feedback",
            json!({ "message_id": rid, "rating": "down", "comment": at_limit }),
        )
        .await);
    assert_eq!(
        fb2["feedback"]["comment"].as_str().unwrap().chars().count(),
        2_000
    );
    let fb3 = ok(b
        .call(
            &app,
            "messages/feedback",
            json!({ "message_id": rid, "rating": "up", "comment": " \n\t " }),
        )
        .await);
    assert_eq!(fb3["feedback"], json!({ "rating": "up", "comment": null }));
    ok(b.call(
        &app,
        "messages/feedback",
        json!({ "message_id": rid, "rating": "up", "comment": "nice" }),
    )
    .await);
    let uid = t["messages"][0]["id"].clone();
    assert_eq!(
        b.call(
            &app,
            "messages/feedback",
            json!({ "message_id": uid, "rating": "up" })
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );

    let md = ok(b
        .call(
            &app,
            "threads/export",
            json!({ "thread_id": tid, "format": "markdown" }),
        )
        .await);
    assert_eq!(md["filename"], "foxes.md");
    assert!(
        md["content"]
            .as_str()
            .unwrap()
            .contains("## You\n\nthe quick brown fox")
    );
    let js = ok(b
        .call(
            &app,
            "threads/export",
            json!({ "thread_id": tid, "format": "json" }),
        )
        .await);
    let parsed: Value = serde_json::from_str(js["content"].as_str().unwrap()).unwrap();
    assert_eq!(parsed["messages"][1]["feedback"]["comment"], "nice");
    assert_eq!(
        b.call(
            &app,
            "threads/export",
            json!({ "thread_id": tid, "format": "pdf" })
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );

    ok(b.call(&app, "threads/delete", json!({ "thread_id": tid }))
        .await);
    assert_eq!(
        b.call(&app, "threads/get", json!({ "thread_id": tid }))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ok(b.call(&app, "threads/list", json!({})).await)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn bad_chat_input_is_refused_clearly() {
    let app = app().await;
    let mut b = started(&app).await;
    let r = b
        .call(&app, "messages/send", json!({ "content": "   " }))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    let r = b
        .call(
            &app,
            "messages/send",
            json!({ "content": "x".repeat(16_001) }),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    let r = b
        .call(&app, "threads/get", json!({ "thread_id": "not-an-id" }))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    assert!(
        ok(b.call(&app, "threads/list", json!({})).await)
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// Reads Server-Sent Events until `done` says stop or the time runs out.
async fn read_events(
    app: &TestApp,
    b: &Browser,
    wait: Duration,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    read_from(open_events(app, b).await, wait, done).await
}

/// The session's event stream, subscribed: every event published from now on is in it.
async fn open_events(app: &TestApp, b: &Browser) -> reqwest::Response {
    let res = app
        .http
        .get(format!("{}/api/events", app.base))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    res
}

async fn read_from(
    res: reqwest::Response,
    wait: Duration,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut body = res.bytes_stream();
    let mut buf = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: "))
                && let Ok(v) = serde_json::from_str::<Value>(data)
            {
                let stop = done(&v);
                events.push(v);
                if stop {
                    return events;
                }
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_stream_to_the_session_and_only_to_it() {
    let app = spawn_with(Config {
        echo_delay: Duration::from_millis(60),
        ..Config::default()
    })
    .await;
    let mut alice = started(&app).await;
    let bob = started(&app).await;

    let listen_a = {
        let alice = alice.clone();
        let app = &app;
        async move {
            read_events(app, &alice, Duration::from_secs(10), |e| {
                e["type"] == "message"
                    && e["message"]["role"] == "assistant"
                    && e["message"]["status"] == "done"
            })
            .await
        }
    };
    let listen_b = read_events(&app, &bob, Duration::from_millis(1500), |_| true);
    let send = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ok(alice
            .call(
                &app,
                "messages/send",
                json!({ "content": "one two three four five six seven eight" }),
            )
            .await)
    };
    let (ea, eb, _) = tokio::join!(listen_a, listen_b, send);

    assert!(eb.is_empty(), "Bob's stream carried Alice's events: {eb:?}");
    // The text as a listener that heard every delta holds it after each one.
    let mut text = String::new();
    let mut deltas = Vec::new();
    for e in ea.iter().filter(|e| e["type"] == "delta") {
        let content = e["content"].as_str().unwrap();
        match e["from"].as_u64() {
            None => text = content.to_owned(),
            Some(from) => {
                assert_eq!(
                    from as usize,
                    text.len(),
                    "a change to the state before: {e}"
                );
                text.push_str(content);
            }
        }
        deltas.push(text.clone());
    }
    assert!(deltas.len() >= 2, "the reply arrived in pieces: {ea:?}");
    assert!(
        deltas.windows(2).all(|w| w[1].starts_with(&w[0])),
        "each delta extends the last"
    );
    let last = ea.last().unwrap();
    assert_eq!(
        last["message"]["content"],
        "one two three four five six seven eight"
    );
    assert!(
        ea.iter().any(|e| e["type"] == "thread"),
        "thread changes are announced too"
    );
}

/// A chat's page answers the session that has the chat: 200, with its words. Another
/// session's chat, or one that never was, answers 404 and shows none of it. On SQLite, whose
/// reads answer from another thread: the chat is not read yet when a page's first part is
/// ready to go.
#[tokio::test]
async fn a_chat_page_of_another_session_answers_404() {
    let dir = tempfile::tempdir().unwrap();
    let app = common::spawn_on_sqlite(Config::default(), &dir.path().join("confide.db")).await;
    let mut alice = started(&app).await;
    let sent = ok(alice
        .call(
            &app,
            "messages/send",
            json!({ "content": "alice's private words" }),
        )
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    common::settled(&app, &mut alice, &tid).await;
    let bob = started(&app).await;
    let page = |b: &Browser, path: String| {
        let req = app
            .http
            .get(format!("{}{path}", app.base))
            .header("cookie", b.cookie_header())
            .timeout(Duration::from_secs(60));
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.text().await.unwrap())
        }
    };
    let (status, body) = page(&alice, format!("/t/{tid}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("alice&#x27;s private words") || body.contains("alice's private words"));
    for path in [
        format!("/t/{tid}"),
        format!("/t/{}", app::model::ThreadId::random()),
        "/t/not-an-id".to_owned(),
    ] {
        let (status, body) = page(&bob, path.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body.contains("Chat not found"), "{path}");
        assert!(!body.contains("private words"), "{path}");
    }
    assert_eq!(page(&bob, "/".to_owned()).await.0, StatusCode::OK);
}

/// A long reply costs a listener about its own size, not its size for every delta: all but
/// about one delta a second carry only what changed. With `--nocapture` it prints the bytes
/// (BENCHMARKS.md).
#[tokio::test]
async fn a_long_reply_costs_a_listener_about_its_own_size() {
    let app = app().await;
    let mut b = started(&app).await;
    let text: String = (0..1_500)
        .map(|i| match i % 40 {
            39 => format!("w{i}\n\n"),
            _ => format!("w{i} "),
        })
        .collect();
    let events = open_events(&app, &b).await;
    let asked = std::time::Instant::now();
    ok(b.call(&app, "messages/send", json!({ "content": text }))
        .await);
    let events = read_from(events, Duration::from_secs(120), |e| {
        e["type"] == "message"
            && e["message"]["role"] == "assistant"
            && e["message"]["status"] == "done"
    })
    .await;
    let secs = asked.elapsed().as_secs_f64();
    let last = events.last().expect("events");
    assert_eq!(last["message"]["status"], "done", "{last}");
    let deltas: Vec<&Value> = events.iter().filter(|e| e["type"] == "delta").collect();
    let (whole, changes): (Vec<&Value>, Vec<&Value>) =
        deltas.iter().partition(|e| e["from"].is_null());
    let bytes: usize = deltas.iter().map(|e| e.to_string().len()).sum();
    let reply = last["message"]["content"].as_str().unwrap().len()
        + last["message"]["html"].as_str().unwrap().len();
    eprintln!(
        "a reply of {reply} B (text and HTML): {} deltas, {} whole, in {secs:.1} s: {bytes} B of deltas",
        deltas.len(),
        whole.len()
    );
    assert!(!changes.is_empty(), "{deltas:?}");
    assert!(
        whole.len() as f64 <= 2.0 + secs,
        "{} whole deltas in {secs:.1} s",
        whole.len()
    );
    // The HTML a change carries is the added words' and the paragraph they continue, not
    // everything before (however many words a delta adds on a busy machine).
    for e in changes {
        let (added, html) = (e["content"].as_str().unwrap(), e["html"].as_str().unwrap());
        assert!(html.len() < 1_000 + 2 * added.len(), "{e}");
    }
}

/// A turn in a chat that has its title says so with its messages alone: listeners move the
/// chat up by the new messages' times, which are the chat's new `updated_ms`.
#[tokio::test]
async fn a_turn_sends_no_thread_event_unless_it_names_the_chat() {
    let app = app().await;
    let mut b = started(&app).await;
    let first = ok(b
        .call(&app, "messages/send", json!({ "content": "first words" }))
        .await);
    let tid = first["thread"]["id"].as_str().unwrap().to_owned();
    common::settled(&app, &mut b, &tid).await;

    let events = open_events(&app, &b).await;
    ok(b.call(
        &app,
        "messages/send",
        json!({ "thread_id": tid, "content": "second words" }),
    )
    .await);
    let events = read_from(events, Duration::from_secs(30), |e| {
        e["type"] == "message"
            && e["message"]["role"] == "assistant"
            && e["message"]["status"] == "done"
    })
    .await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"message"), "{events:?}");
    assert_eq!(
        kinds.last(),
        Some(&"message"),
        "the reply ended: {events:?}"
    );
    assert!(!kinds.contains(&"thread"), "{events:?}");
    let newest = events
        .iter()
        .filter_map(|e| e["message"]["created_ms"].as_i64())
        .max();
    let list = ok(b.call(&app, "threads/list", json!({})).await);
    assert_eq!(list[0]["id"], tid.as_str());
    assert_eq!(list[0]["updated_ms"].as_i64(), newest, "{list}");

    // A chat made empty takes its title from its first message, and says so.
    let made = ok(b.call(&app, "threads/create", json!({})).await);
    let empty = made["id"].as_str().unwrap().to_owned();
    let events = open_events(&app, &b).await;
    ok(b.call(
        &app,
        "messages/send",
        json!({ "thread_id": empty, "content": "a title from here" }),
    )
    .await);
    let events = read_from(events, Duration::from_secs(30), |e| e["type"] == "thread").await;
    let last = events.last().expect("a thread event");
    assert_eq!(last["thread"]["id"], empty.as_str(), "{events:?}");
    assert_eq!(last["thread"]["title"], "a title from here", "{events:?}");
}

#[tokio::test]
async fn the_event_stream_needs_a_proven_session() {
    let app = app().await;
    let r = common::send(app.http.get(format!("{}/api/events", app.base))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "no_session")
    );
    let stranger = Browser::new();
    let r = common::send(
        app.http
            .get(format!("{}/api/events", app.base))
            .header("cookie", stranger.cookie_header()),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "no_session"),
        "a GET never claims"
    );
    assert_eq!(app.store.len(), 0);
}

/// A reply is saved in its final state a moment before its task lets go of the thread; a
/// client that reads the thread in between (a poll, or a reload) sees it finished and sends
/// the next message at once. That send must not answer 409 `busy`: the stored state is the
/// later word. The moment is held open here by saving the final state directly.
#[tokio::test]
async fn a_reply_stored_as_finished_frees_its_thread_before_its_task_lets_go() {
    use app::{
        SessionId,
        model::{MessageId, MessageStatus},
    };
    use confide_core::Chats;
    let app = spawn_with(Config {
        echo_delay: Duration::from_millis(150),
        ..Config::default()
    })
    .await;
    let mut b = Browser::new();
    b.start(&app).await;
    let sent = b
        .call(
            &app,
            "messages/send",
            json!({ "content": "one two three four five six seven eight nine ten" }),
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let rid: MessageId = serde_json::from_value(sent.body["reply"]["id"].clone()).unwrap();
    let sid = SessionId::parse(&b.sid).unwrap();
    let mut reply = app.store.get_message(&sid, &rid).await.unwrap().unwrap();
    reply.status = MessageStatus::Done;
    reply.content = "one two".into();
    assert!(app.store.put_message(&sid, &reply).await.unwrap());

    let next = b
        .call(
            &app,
            "messages/send",
            json!({ "thread_id": tid, "content": "next a b c d e f g h i j" }),
        )
        .await;
    assert_eq!(next.status, StatusCode::OK, "{:?}", next.body);
    // The new reply holds the thread: a send now is refused, as always while one streams.
    let again = b
        .call(
            &app,
            "messages/send",
            json!({ "thread_id": tid, "content": "too soon" }),
        )
        .await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "busy"));
    let t = common::settled(&app, &mut b, &tid).await;
    let last = t["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["content"], "next a b c d e f g h i j", "{t}");
    assert_eq!(last["status"], "done");
}

/// Answers every question with "r<n>" (the n-th reply) and remembers the history it was shown;
/// proposes the title "Named" for a new chat.
struct Recorder(std::sync::Mutex<Vec<Vec<String>>>);

#[async_trait::async_trait]
impl confide_core::assistant::Assistant for Recorder {
    async fn reply(
        &self,
        cx: confide_core::assistant::ReplyContext,
    ) -> Result<confide_core::assistant::DeltaStream, confide_core::assistant::AssistantError> {
        let mut seen = self.0.lock().unwrap();
        seen.push(cx.history.into_iter().map(|t| t.content).collect());
        let answer = format!("r{}", seen.len() - 1);
        Ok(futures::stream::iter([Ok(answer)]).boxed())
    }

    async fn title(&self, _exchange: &[confide_core::assistant::Turn]) -> Option<String> {
        Some("Named".into())
    }
}

async fn recorded(history_turns: usize) -> (TestApp, std::sync::Arc<Recorder>) {
    use std::sync::Arc;
    let config = Config {
        history_turns,
        ..Config::default()
    };
    let store = Arc::new(server::MemoryStore::new(server::lifetimes(&config)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let recorder = Arc::new(Recorder(Default::default()));
    let state = server::AppState::new(
        Config {
            addr: listener.local_addr().unwrap(),
            ..config
        },
        store.clone(),
    )
    .unwrap()
    .with_assistant(recorder.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        server::serve(listener, state, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (common::test_app(base, store, tx), recorder)
}

async fn title_of(app: &TestApp, b: &mut Browser, tid: &str) -> Value {
    ok(b.call(app, "threads/get", json!({ "thread_id": tid }))
        .await)["thread"]["title"]
        .clone()
}

#[tokio::test]
async fn the_assistant_sees_only_the_latest_history_turns() {
    let (app, recorder) = recorded(3).await;
    let mut b = started(&app).await;
    let sent = ok(b
        .call(&app, "messages/send", json!({ "content": "q0" }))
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    common::settled(&app, &mut b, &tid).await;
    for i in 1..5 {
        ok(b.call(
            &app,
            "messages/send",
            json!({ "thread_id": tid, "content": format!("q{i}") }),
        )
        .await);
        common::settled(&app, &mut b, &tid).await;
    }
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(seen[0], ["q0"]);
    assert_eq!(seen[1], ["q0", "r0", "q1"]);
    assert_eq!(
        seen[4],
        ["q3", "r3", "q4"],
        "the latest three, oldest first"
    );
    let t = common::settled(&app, &mut b, &tid).await;
    assert_eq!(
        t["messages"].as_array().unwrap().len(),
        10,
        "the thread keeps all"
    );

    // Edit and regenerate see the same window, ending at the question.
    let q2 = t["messages"][4]["id"].clone();
    ok(b.call(
        &app,
        "messages/edit",
        json!({ "message_id": q2, "content": "q2 again" }),
    )
    .await);
    common::settled(&app, &mut b, &tid).await;
    ok(
        b.call(&app, "messages/regenerate", json!({ "thread_id": tid }))
            .await,
    );
    let t = common::settled(&app, &mut b, &tid).await;
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(seen[5], ["q1", "r1", "q2 again"]);
    assert_eq!(seen[6], ["q1", "r1", "q2 again"]);
    assert_eq!(t["messages"].as_array().unwrap().len(), 6);
    assert_eq!(t["messages"][5]["content"], "r6");
}

#[tokio::test]
async fn only_a_first_exchange_names_a_chat_however_short_the_history() {
    let (app, recorder) = recorded(1).await;
    let mut b = started(&app).await;
    let sent = ok(b
        .call(&app, "messages/send", json!({ "content": "q0" }))
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    common::settled(&app, &mut b, &tid).await;
    for _ in 0..100 {
        if title_of(&app, &mut b, &tid).await == "Named" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(title_of(&app, &mut b, &tid).await, "Named");

    // A title that reads like the next question's first words would be renamed if that
    // question passed for the first one: the model sees it alone.
    ok(b.call(
        &app,
        "threads/rename",
        json!({ "thread_id": tid, "title": "q1" }),
    )
    .await);
    ok(b.call(
        &app,
        "messages/send",
        json!({ "thread_id": tid, "content": "q1" }),
    )
    .await);
    common::settled(&app, &mut b, &tid).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorder.0.lock().unwrap()[1], ["q1"]);
    assert_eq!(title_of(&app, &mut b, &tid).await, "q1");
}

/// A reply's steps reach the page live (each begins and ends in its own event, before the
/// text), are saved with the reply, nest, and go out in both exports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_stream_live_are_saved_and_exported() {
    let app = spawn_with(Config {
        echo_delay: Duration::from_millis(40),
        ..Config::default()
    })
    .await;
    let mut b = started(&app).await;
    let listen = {
        let b = b.clone();
        let app = &app;
        async move {
            read_events(app, &b, Duration::from_secs(20), |e| {
                e["type"] == "message"
                    && e["message"]["role"] == "assistant"
                    && e["message"]["status"] == "done"
            })
            .await
        }
    };
    let send = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ok(b.clone()
            .call(
                &app,
                "messages/send",
                json!({ "content": "/steps one two three" }),
            )
            .await)
    };
    let (events, sent) = tokio::join!(listen, send);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();

    let states: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "message" && e["message"]["role"] == "assistant")
        .map(|e| &e["message"])
        .collect();
    let running_tool = states.iter().any(|m| {
        m["status"] == "streaming"
            && m["steps"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["name"] == "word_count" && s["status"] == "running")
            })
    });
    assert!(
        running_tool,
        "the tool step was shown while it ran: {states:?}"
    );
    assert!(
        states
            .iter()
            .filter(|m| m["steps"].is_array())
            .all(|m| m["status"] != "streaming" || m["content"] == ""),
        "the steps came before the text: {states:?}"
    );

    let t = common::settled(&app, &mut b, &tid).await;
    let reply = &t["messages"][1];
    assert_eq!(reply["content"], "I counted **3** words.");
    let steps = reply["steps"]
        .as_array()
        .expect("steps saved with the reply");
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["plan", "word_count", "split"]);
    assert!(
        steps
            .iter()
            .all(|s| s["status"] == "done" && s["ended_ms"].is_i64()),
        "{steps:?}"
    );
    assert_eq!(steps[1]["kind"], "tool");
    assert_eq!(steps[1]["input"], r#"{"text":"one two three"}"#);
    assert_eq!(steps[1]["output"], "3");
    assert_eq!(
        steps[2]["parent"], steps[1]["id"],
        "split runs inside word_count"
    );
    assert!(
        t["messages"][0].get("steps").is_none(),
        "the question has none"
    );

    let md = ok(b
        .call(
            &app,
            "threads/export",
            json!({ "thread_id": tid, "format": "markdown" }),
        )
        .await);
    let md = md["content"].as_str().unwrap();
    assert!(
        md.contains("<details><summary>Tool: word_count (done)</summary>"),
        "{md}"
    );
    assert!(
        md.contains("<summary>↳ Step: split (done)</summary>"),
        "{md}"
    );
    assert!(md.contains("Output:\n\n```\n3\n```"), "{md}");
    let json_export = ok(b
        .call(
            &app,
            "threads/export",
            json!({ "thread_id": tid, "format": "json" }),
        )
        .await);
    let exported: Value = serde_json::from_str(json_export["content"].as_str().unwrap()).unwrap();
    assert_eq!(exported["messages"][1]["steps"], reply["steps"]);

    // Another browser on the same address sees none of it.
    let mut other = started(&app).await;
    let r = other
        .call(&app, "threads/get", json!({ "thread_id": tid }))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A tool that runs without writing is saved as running (a reload shows it), and Stop ends
/// it as stopped.
#[tokio::test]
async fn stop_ends_a_running_step() {
    let app = app().await;
    let mut b = started(&app).await;
    let sent = ok(b
        .call(&app, "messages/send", json!({ "content": "/steps slow" }))
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    let rid = sent["reply"]["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let t = ok(b
            .call(&app, "threads/get", json!({ "thread_id": tid }))
            .await);
        if t["messages"][1]["steps"][0]["status"] == "running" {
            assert_eq!(t["messages"][1]["steps"][0]["name"], "wait");
            assert_eq!(t["messages"][1]["status"], "streaming");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the running step was never saved: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = ok(b
        .call(&app, "messages/stop", json!({ "message_id": rid }))
        .await);
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["steps"][0]["status"], "stopped", "{stopped}");
    assert!(stopped["steps"][0]["ended_ms"].is_i64());
    let t = common::settled(&app, &mut b, &tid).await;
    assert_eq!(t["messages"][1]["steps"][0]["status"], "stopped");
}

/// A reply's buttons answer a click once, from their own session only: another browser, a
/// made-up action id or one of another message answers 404 and changes nothing.
#[tokio::test]
async fn actions_answer_once_and_only_in_their_own_session() {
    let app = app().await;
    let mut b = started(&app).await;
    let sent = ok(b
        .call(&app, "messages/send", json!({ "content": "/actions" }))
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    let t = common::settled(&app, &mut b, &tid).await;
    let offered = t["messages"][1].clone();
    let labels: Vec<&str> = offered["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Red", "Green", "Blue"]);
    let mid = offered["id"].as_str().unwrap().to_owned();
    let green = offered["actions"][1]["id"].as_str().unwrap().to_owned();
    let user_mid = t["messages"][0]["id"].as_str().unwrap().to_owned();

    let other = started(&app).await;
    let made_up = uuid::Uuid::new_v4().to_string();
    for (who, message, action) in [
        (&other, &mid, &green),
        (&b, &mid, &made_up),
        (&b, &user_mid, &green),
    ] {
        let r = who
            .clone()
            .call(
                &app,
                "messages/act",
                json!({ "message_id": message, "action_id": action }),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
        assert_eq!(r.code(), "not_found");
    }
    let unchanged = ok(b
        .call(&app, "threads/get", json!({ "thread_id": tid }))
        .await);
    assert_eq!(unchanged["messages"], t["messages"], "nothing changed");

    let reply = ok(b
        .call(
            &app,
            "messages/act",
            json!({ "message_id": mid, "action_id": green }),
        )
        .await);
    assert_eq!(reply["role"], "assistant");
    let t = common::settled(&app, &mut b, &tid).await;
    let msgs = t["messages"].as_array().unwrap();
    assert_eq!(
        msgs.len(),
        3,
        "the answer follows the reply that offered the action"
    );
    assert_eq!(msgs[2]["content"], "You picked **green**.");
    assert!(
        msgs[1].get("actions").is_none(),
        "the buttons went: {}",
        msgs[1]
    );
    let again = b
        .call(
            &app,
            "messages/act",
            json!({ "message_id": mid, "action_id": green }),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "a choice is made once");
}

/// Settings and profiles: declared by the assistant, chosen per session, checked on the way
/// in (a bad value changes nothing), and seen by the next reply, in that session only.
#[tokio::test]
async fn settings_and_profiles_reach_the_replies_of_their_session_only() {
    let app = app().await;
    let mut b = started(&app).await;
    let panel = ok(b.call(&app, "settings/get", json!({})).await);
    let ids: Vec<&str> = panel["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["style", "sign"]);
    assert_eq!(panel["settings"][0]["kind"]["type"], "select");
    assert_eq!(panel["values"], json!({ "style": "plain", "sign": false }));
    assert_eq!(
        panel["profile"], "echo",
        "the first profile until one is chosen"
    );
    assert_eq!(panel["profiles"][1]["starters"][2]["message"], "/actions");

    for (body, code) in [
        (json!({ "values": { "style": "SHOUT" } }), "invalid_input"),
        (json!({ "values": { "style": 1 } }), "invalid_input"),
        (json!({ "values": { "sign": "yes" } }), "invalid_input"),
        (
            json!({ "values": { "style": "shout", "nope": true } }),
            "invalid_input",
        ),
        (json!({ "profile": "../echo" }), "invalid_input"),
        (json!({ "values": "style=shout" }), "invalid_input"),
    ] {
        let r = b.call(&app, "settings/set", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
        assert_eq!(r.code(), code, "{body}");
    }
    assert_eq!(
        ok(b.call(&app, "settings/get", json!({})).await),
        panel,
        "nothing changed"
    );

    let set = ok(b
        .call(
            &app,
            "settings/set",
            json!({ "profile": "reverse", "values": { "style": "shout", "sign": true } }),
        )
        .await);
    assert_eq!(set["values"], json!({ "style": "shout", "sign": true }));
    assert_eq!(set["profile"], "reverse");
    let sent = ok(b
        .call(&app, "messages/send", json!({ "content": "one two three" }))
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    let t = common::settled(&app, &mut b, &tid).await;
    assert_eq!(t["messages"][1]["content"], "THREE TWO ONE\n\n— echo");

    // A partial change keeps the rest.
    let set = ok(b
        .call(&app, "settings/set", json!({ "values": { "sign": false } }))
        .await);
    assert_eq!(set["values"], json!({ "style": "shout", "sign": false }));
    assert_eq!(set["profile"], "reverse");

    let mut other = started(&app).await;
    let theirs = ok(other.call(&app, "settings/get", json!({})).await);
    assert_eq!(theirs["values"], json!({ "style": "plain", "sign": false }));
    let sent = ok(other
        .call(&app, "messages/send", json!({ "content": "one two three" }))
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    let t = common::settled(&app, &mut other, &tid).await;
    assert_eq!(t["messages"][1]["content"], "one two three");
}

/// Sends `text` into thread `tid` as `b`; the raw answer.
async fn say(app: &TestApp, b: &mut Browser, tid: &str, text: &str) -> Reply {
    b.call(
        app,
        "messages/send",
        json!({ "thread_id": tid, "content": text }),
    )
    .await
}

/// The contents and statuses of a thread's messages, in order.
fn transcript(thread: &Value) -> Vec<(String, String, String)> {
    thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
                m["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn said(role: &str, content: &str) -> (String, String, String) {
    (role.into(), content.into(), "done".into())
}

#[tokio::test]
async fn a_reply_asks_waits_for_the_answer_and_goes_on_after_it() {
    let app = app().await;
    // Two browsers on one address, each asked at once: each answer reaches its own reply.
    let (mut a, mut b) = (started(&app).await, started(&app).await);
    let ta = ok(a
        .call(&app, "messages/send", json!({ "content": "/ask" }))
        .await);
    let tb = ok(b
        .call(&app, "messages/send", json!({ "content": "/ask" }))
        .await);
    let (ta, tb) = (
        ta["thread"]["id"].as_str().unwrap().to_owned(),
        tb["thread"]["id"].as_str().unwrap().to_owned(),
    );
    let question = "Let me ask you something.\n\nWhat is your name?";
    for (browser, tid) in [(&mut a, &ta), (&mut b, &tb)] {
        let t = common::settled(&app, browser, tid).await;
        assert_eq!(
            transcript(&t),
            [said("user", "/ask"), said("assistant", question)]
        );
    }
    // Another session cannot answer a question it was not asked.
    let foreign = say(&app, &mut b, &ta, "Mallory").await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);

    let answered = ok(say(&app, &mut a, &ta, "Ada").await);
    assert_eq!(answered["user"]["content"], "Ada");
    ok(say(&app, &mut b, &tb, "Grace").await);
    let t = common::settled(&app, &mut a, &ta).await;
    assert_eq!(
        transcript(&t),
        [
            said("user", "/ask"),
            said("assistant", question),
            said("user", "Ada"),
            said("assistant", "Nice to meet you, Ada!"),
        ]
    );
    assert_eq!(
        t["messages"][3]["id"], answered["reply"]["id"],
        "the reply goes on in the message the answer's request named"
    );
    let t = common::settled(&app, &mut b, &tb).await;
    assert_eq!(t["messages"][3]["content"], "Nice to meet you, Grace!");

    // Answered, the thread is an ordinary one again: the next message gets its own reply.
    ok(say(&app, &mut a, &ta, "hello").await);
    let t = common::settled(&app, &mut a, &ta).await;
    assert_eq!(transcript(&t)[5], said("assistant", "hello"));
}

#[tokio::test]
async fn a_question_takes_one_answer_and_a_second_message_meanwhile_is_busy() {
    let app = app().await;
    let mut a = started(&app).await;
    let sent = ok(a
        .call(&app, "messages/send", json!({ "content": "/ask" }))
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    common::settled(&app, &mut a, &tid).await;
    let mut a2 = a.clone();
    let (one, two) = tokio::join!(
        a.call(
            &app,
            "messages/send",
            json!({ "thread_id": tid, "content": "Ada" })
        ),
        a2.call(
            &app,
            "messages/send",
            json!({ "thread_id": tid, "content": "Grace" })
        ),
    );
    let statuses = [one.status, two.status];
    assert!(
        statuses.contains(&StatusCode::OK) && statuses.contains(&StatusCode::CONFLICT),
        "{statuses:?}: {:?} {:?}",
        one.body,
        two.body
    );
    let winner = if one.status == StatusCode::OK {
        "Ada"
    } else {
        "Grace"
    };
    let t = common::settled(&app, &mut a, &tid).await;
    let messages = transcript(&t);
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(
        messages[3],
        said("assistant", &format!("Nice to meet you, {winner}!"))
    );
}

#[tokio::test]
async fn an_unanswered_question_ends_its_reply_and_the_next_message_is_a_new_turn() {
    let app = spawn_with(Config {
        echo_delay: Duration::from_millis(2),
        ask_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut a = started(&app).await;
    let sent = ok(a
        .call(&app, "messages/send", json!({ "content": "/ask" }))
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    common::settled(&app, &mut a, &tid).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    ok(say(&app, &mut a, &tid, "Ada").await);
    let t = common::settled(&app, &mut a, &tid).await;
    assert_eq!(
        transcript(&t)[2..],
        [said("user", "Ada"), said("assistant", "Ada")],
        "too late, the answer is an ordinary message"
    );
}

#[tokio::test]
async fn a_stopped_reply_keeps_no_buttons_and_none_can_be_clicked() {
    let app = spawn_with(Config {
        echo_delay: Duration::from_millis(400),
        ..Config::default()
    })
    .await;
    let mut b = started(&app).await;
    let sent = ok(b
        .call(&app, "messages/send", json!({ "content": "/actions" }))
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    let mid = sent["reply"]["id"].as_str().unwrap().to_owned();
    // The buttons exist from the start of the reply: wait until the page could see them.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let offered = loop {
        let t = ok(b
            .call(&app, "threads/get", json!({ "thread_id": tid }))
            .await);
        if let Some(a) = t["messages"][1]["actions"]
            .as_array()
            .filter(|a| !a.is_empty())
        {
            break a[0]["id"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no buttons: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    ok(b.call(&app, "messages/stop", json!({ "message_id": mid }))
        .await);
    let t = common::settled(&app, &mut b, &tid).await;
    assert_eq!(t["messages"][1]["status"], "stopped");
    assert!(
        t["messages"][1]
            .get("actions")
            .is_none_or(|a| a.as_array().is_some_and(|a| a.is_empty())),
        "{t}"
    );
    let click = b
        .call(
            &app,
            "messages/act",
            json!({ "message_id": mid, "action_id": offered }),
        )
        .await;
    assert_eq!(click.status, StatusCode::NOT_FOUND, "{:?}", click.body);
}

/// An edit asks anew, so it counts as a message; one refused by the daily quota changes
/// nothing, the reply it would have replaced included.
#[tokio::test]
async fn an_edit_counts_against_the_daily_message_quota_and_a_refused_one_changes_nothing() {
    let app = common::spawn_with(server::Config {
        quota_messages_per_day: 2,
        ..server::Config::default()
    })
    .await;
    let mut b = common::Browser::new();
    b.start(&app).await;
    let sent = b
        .call(&app, "messages/send", json!({ "content": "first" }))
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let mid = sent.body["user"]["id"].clone();
    common::settled(&app, &mut b, &tid).await;
    let edited = b
        .call(
            &app,
            "messages/edit",
            json!({ "message_id": mid, "content": "second" }),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    let before = common::settled(&app, &mut b, &tid).await;
    let refused = b
        .call(
            &app,
            "messages/edit",
            json!({ "message_id": mid, "content": "third" }),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        refused.body
    );
    assert_eq!(refused.code(), "quota_exceeded");
    let after = common::settled(&app, &mut b, &tid).await;
    assert_eq!(before, after, "the thread is as it was");
    assert_eq!(after["messages"][0]["content"], "second");
    assert_eq!(after["messages"][1]["status"], "done");
}
