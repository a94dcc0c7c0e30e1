//! Hostile input: each answered with a clear 4xx, or handled correctly; never a panic,
//! never corrupted state, and the server keeps serving.

mod common;

use common::{Browser, TestApp, send, spawn_with};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use server::Config;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn app() -> TestApp {
    spawn_with(Config {
        echo_delay: Duration::from_millis(5),
        ..Config::default()
    })
    .await
}

async fn still_serving(app: &TestApp) {
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the server survived");
}

/// Sends raw bytes and returns the status line.
async fn raw(app: &TestApp, request: &[u8]) -> String {
    let addr = app.base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn huge_headers_and_cookies_are_refused() {
    let app = app().await;
    let big = "a".repeat(64 * 1024);
    let r = send(
        app.http
            .post(format!("{}/api/notes/get", app.base))
            .header("x-confide-session", &big)
            .header("cookie", format!("__Host-confide_sid={big}"))
            .json(&json!({})),
    )
    .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    // Past hyper's header limit the connection is refused with 431, not a crash.
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: __Host-confide_sid={}\r\n\r\n",
        "b".repeat(1024 * 1024)
    );
    let status = raw(&app, huge.as_bytes()).await;
    assert!(
        status.is_empty() || status.contains(" 431 ") || status.contains(" 400 "),
        "{status}"
    );
    still_serving(&app).await;
}

#[tokio::test]
async fn null_bytes_and_control_characters_in_the_session_header() {
    let app = app().await;
    for value in [
        "0b3e5c1e-8f2a-4c6d-9e7f-1a2b3c4d5e6f\0",
        "\u{1b}[31m",
        "0b3e5c1e\t8f2a",
    ] {
        let req = format!(
            "POST /api/notes/get HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-Confide-Session: {value}\r\n\r\n{{}}"
        );
        let status = raw(&app, req.as_bytes()).await;
        assert!(
            status.contains(" 400 ") || status.contains(" 401 "),
            "{value:?}: {status}"
        );
    }
    still_serving(&app).await;
}

#[tokio::test]
async fn unicode_and_control_characters_round_trip_in_every_field() {
    let app = app().await;
    let mut b = Browser::new();
    b.start(&app).await;
    let weird =
        "zero\u{200b}width \u{202e}rtl-override\u{202c} emoji 🧪 nul\u{0}byte bell\u{7} ｆｕｌｌ";
    let r = b.call(&app, "notes/set", json!({ "text": weird })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(b.get_note(&app).await.body["text"], weird);
    let sent = b
        .call(&app, "messages/send", json!({ "content": weird }))
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let r = b
        .call(
            &app,
            "threads/rename",
            json!({ "thread_id": tid, "title": weird }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let t = b
        .call(&app, "threads/get", json!({ "thread_id": tid }))
        .await;
    assert_eq!(t.body["thread"]["title"], weird);
    assert_eq!(t.body["messages"][0]["content"], weird);
    let r = b
        .call(&app, "threads/search", json!({ "query": "🧪" }))
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
}

/// The code-block placeholder attack, through the API: character references for private-use
/// characters next to code blocks must stay text in what the server renders, for the
/// person's message and for the assistant's echo of it alike.
#[tokio::test]
async fn entity_encoded_markers_never_become_markup() {
    let app = app().await;
    let mut b = Browser::new();
    b.start(&app).await;
    let fence = "\n\n```rust\nlet a = 1;\n```\n";
    for payload in [
        "[x](https://ok.example/ \"&#xE000;\")&#xE000; \" onmouseover=\"alert(1)\" x=\"",
        "[x](javascript:alert(1) \"&#xE000;\")&#xE000; \" onmouseover=\"alert(1)\" x=\"",
        "&#57344;0&#57344; \u{E000}1\u{E000} odd &#xe000; tail",
        "%EE%80%80 \u{F8FF} \u{10FFFD}",
    ] {
        let content = format!("{payload}{fence}after");
        let sent = b
            .call(&app, "messages/send", json!({ "content": content }))
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
        let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
        let t = common::settled(&app, &mut b, &tid).await;
        for m in t["messages"].as_array().unwrap() {
            let html = m["html"].as_str().unwrap_or_default().to_ascii_lowercase();
            // Text may say anything (quotes are not escaped in text); tags may not.
            for tag in html.split('<').skip(1).filter_map(|t| t.split('>').next()) {
                assert!(!tag.contains("onmouseover"), "<{tag}> in {html}");
                assert!(!tag.contains("javascript"), "<{tag}> in {html}");
            }
            assert!(
                html.contains("after"),
                "text after the markers was lost: {html}"
            );
            assert_eq!(html.matches("class=\"code-block\"").count(), 1, "{html}");
        }
    }
    still_serving(&app).await;
}

#[tokio::test]
async fn deeply_nested_json_is_a_clear_400() {
    let app = app().await;
    let mut b = Browser::new();
    b.start(&app).await;
    let nested = format!("{{\"text\":{}{}}}", "[".repeat(20_000), "]".repeat(20_000));
    let r = send(
        app.http
            .post(format!("{}/api/notes/set", app.base))
            .header("x-confide-session", &b.sid)
            .header("cookie", b.cookie_header())
            .header("content-type", "application/json")
            .body(nested),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_input"),
        "{:?}",
        r.body
    );
    assert_eq!(b.get_note(&app).await.body["text"], "");
}

#[tokio::test]
async fn a_ten_megabyte_message_is_413() {
    let app = app().await;
    let mut b = Browser::new();
    b.start(&app).await;
    let r = b
        .call(
            &app,
            "messages/send",
            json!({ "content": "x".repeat(10 * 1024 * 1024) }),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    assert!(
        b.call(&app, "threads/list", json!({}))
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_abandoned_event_stream_does_not_disturb_the_reply() {
    let app = app().await;
    let mut b = Browser::new();
    b.start(&app).await;
    let res = app
        .http
        .get(format!("{}/api/events", app.base))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    let sent = b
        .call(
            &app,
            "messages/send",
            json!({ "content": "one two three four five six" }),
        )
        .await;
    let _ = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
    drop(stream); // the tab goes away mid-reply
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let mut status = String::new();
    for _ in 0..200 {
        let t = b
            .call(&app, "threads/get", json!({ "thread_id": tid }))
            .await;
        status = t.body["messages"][1]["status"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if status != "streaming" {
            assert_eq!(
                t.body["messages"][1]["content"],
                "one two three four five six"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, "done");
    still_serving(&app).await;
}

/// Two tabs edit the same question at once, round after round. Once, the later edit's
/// truncation dropped the reply the earlier one had just started, and the chat was left with
/// a question and no answer; one round in tens showed it on a busy machine, so the test plays
/// fifty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_from_two_tabs_leave_one_consistent_thread() {
    let app = spawn_with(Config {
        echo_delay: Duration::from_millis(5),
        // Two edits and some reads a round, many rounds: past a person's pace.
        messages_per_minute: 60_000,
        session_rate: 1_000,
        session_burst: 1_000,
        address_messages_per_minute: 60_000,
        address_messages_burst: 1_000,
        ..Config::default()
    })
    .await;
    let mut b = Browser::new();
    b.start(&app).await;
    let sent = b
        .call(&app, "messages/send", json!({ "content": "original" }))
        .await;
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let uid = sent.body["user"]["id"].as_str().unwrap().to_owned();
    for round in 0..50 {
        let (one, two) = (
            format!("tab one, round {round}"),
            format!("tab two, round {round}"),
        );
        let (mut tab1, mut tab2) = (b.clone(), b.clone());
        let (r1, r2) = tokio::join!(
            tab1.call(
                &app,
                "messages/edit",
                json!({ "message_id": uid, "content": one })
            ),
            tab2.call(
                &app,
                "messages/edit",
                json!({ "message_id": uid, "content": two })
            ),
        );
        for r in [&r1, &r2] {
            assert!(
                r.status == StatusCode::OK
                    || (r.status == StatusCode::CONFLICT && r.code() == "busy"),
                "{:?}",
                r.body
            );
        }
        assert!(
            r1.status == StatusCode::OK || r2.status == StatusCode::OK,
            "at least one edit wins"
        );
        // Let whatever reply is running finish.
        let mut last = serde_json::Value::Null;
        for _ in 0..500 {
            last = b
                .call(&app, "threads/get", json!({ "thread_id": tid }))
                .await
                .body;
            if last["messages"]
                .as_array()
                .unwrap_or_else(|| panic!("round {round}: {last}"))
                .iter()
                .all(|m| m["status"] != "streaming")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let msgs = last["messages"].as_array().unwrap();
        assert_eq!(
            msgs.len(),
            2,
            "round {round}: one question, one answer: {last}"
        );
        let q = msgs[0]["content"].as_str().unwrap();
        assert!(q == one || q == two, "round {round}: {q}");
        assert_eq!(msgs[0]["id"], uid.as_str());
        assert_eq!(msgs[1]["role"], "assistant");
        assert_eq!(msgs[1]["status"], "done", "round {round}: {last}");
    }
}

/// A server past a person's pace, for tests that play many rounds of racing requests.
async fn racing_app(echo_delay: Duration) -> TestApp {
    spawn_with(Config {
        echo_delay,
        messages_per_minute: 60_000,
        session_rate: 1_000,
        session_burst: 1_000,
        address_messages_per_minute: 60_000,
        address_messages_burst: 1_000,
        ..Config::default()
    })
    .await
}

/// The thread's messages once no reply in it streams any more.
async fn settled(app: &TestApp, b: &mut Browser, tid: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..1_000 {
        last = b
            .call(app, "threads/get", json!({ "thread_id": tid }))
            .await
            .body;
        let msgs = last["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{last}"));
        if msgs.iter().all(|m| m["status"] != "streaming") {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a reply never finished: {last}");
}

/// Two tabs edit two questions of one chat at once, the later one's reply still streaming.
/// Editing the first drops the second, and so the other edit: it once read the second
/// question before waiting its turn and wrote it back after, at the chat's end, beside the
/// first edit's reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_of_two_questions_at_once_leave_the_earlier_edit_whole() {
    let app = racing_app(Duration::from_millis(20)).await;
    let mut b = Browser::new();
    b.start(&app).await;
    for round in 0..10 {
        let first = b
            .call(&app, "messages/send", json!({ "content": "first" }))
            .await;
        let tid = first.body["thread"]["id"].as_str().unwrap().to_owned();
        let u1 = first.body["user"]["id"].as_str().unwrap().to_owned();
        settled(&app, &mut b, &tid).await;
        let second = b
            .call(
                &app,
                "messages/send",
                json!({ "thread_id": tid, "content": "second ".repeat(30) }),
            )
            .await;
        assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
        let u2 = second.body["user"]["id"].as_str().unwrap().to_owned();
        let (mut tab1, mut tab2) = (b.clone(), b.clone());
        let (r1, r2) = tokio::join!(
            tab1.call(
                &app,
                "messages/edit",
                json!({ "message_id": u1, "content": "first, edited" })
            ),
            tab2.call(
                &app,
                "messages/edit",
                json!({ "message_id": u2, "content": "second, edited" })
            ),
        );
        assert_eq!(r1.status, StatusCode::OK, "round {round}: {:?}", r1.body);
        assert!(
            r2.status == StatusCode::OK || r2.status == StatusCode::NOT_FOUND,
            "round {round}: {:?}",
            r2.body
        );
        let last = settled(&app, &mut b, &tid).await;
        let msgs = last["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 2, "round {round}: {last}");
        assert_eq!(msgs[0]["content"], "first, edited", "round {round}: {last}");
        assert_eq!(msgs[1]["role"], "assistant", "round {round}: {last}");
    }
}

/// A rating given while the reply streams would be written over by the reply's own saves;
/// it is refused until the reply is done, and kept after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_reply_cannot_be_rated_and_a_finished_one_keeps_its_rating() {
    let app = racing_app(Duration::from_millis(20)).await;
    let mut b = Browser::new();
    b.start(&app).await;
    let sent = b
        .call(
            &app,
            "messages/send",
            json!({ "content": "word ".repeat(40) }),
        )
        .await;
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let rid = sent.body["reply"]["id"].as_str().unwrap().to_owned();
    let early = b
        .call(
            &app,
            "messages/feedback",
            json!({ "message_id": rid, "rating": "up", "comment": "great" }),
        )
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{:?}", early.body);
    assert_eq!(early.code(), "busy");
    let done = settled(&app, &mut b, &tid).await;
    assert_eq!(done["messages"][1]["feedback"], serde_json::Value::Null);
    let rated = b
        .call(
            &app,
            "messages/feedback",
            json!({ "message_id": rid, "rating": "up", "comment": "great" }),
        )
        .await;
    assert_eq!(rated.status, StatusCode::OK, "{:?}", rated.body);
    let kept = settled(&app, &mut b, &tid).await;
    assert_eq!(kept["messages"][1]["feedback"]["rating"], "up", "{kept}");
    assert_eq!(kept["messages"][1]["feedback"]["comment"], "great");
}

/// A chat renamed while its first message is sent keeps the new name, in the store and in
/// the tabs' last word on it: the send once titled the chat from the copy it read before the
/// rename, and wrote that copy back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_chat_while_its_first_message_is_sent_keeps_the_rename() {
    let app = racing_app(Duration::ZERO).await;
    let mut b = Browser::new();
    b.start(&app).await;
    for round in 0..20 {
        let created = b.call(&app, "threads/create", json!({})).await;
        let tid = created.body["id"].as_str().unwrap().to_owned();
        let name = format!("renamed {round}");
        let (mut tab1, mut tab2) = (b.clone(), b.clone());
        let (sent, renamed) = tokio::join!(
            tab1.call(
                &app,
                "messages/send",
                json!({ "thread_id": tid, "content": "the first words" })
            ),
            tab2.call(
                &app,
                "threads/rename",
                json!({ "thread_id": tid, "title": name })
            ),
        );
        assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
        assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
        let last = settled(&app, &mut b, &tid).await;
        assert_eq!(
            last["thread"]["title"],
            name.as_str(),
            "round {round}: {last}"
        );
    }
}

/// Found by the `markdown` fuzz target (kept in `fuzz/corpus/markdown/`): a link whose
/// relative URL happens to spell `style=`, beside a script tag and an `<img onerror>` in a
/// table. The link stays a harmless relative one; the script and the handler are gone.
#[test]
fn markdown_found_by_the_fuzzer_stays_inert() {
    let input = include_bytes!("../../fuzz/corpus/markdown/regression-style-in-relative-url");
    let html = confide_core::markdown::render(&String::from_utf8_lossy(input));
    assert!(html.contains(r#"href="javascristyle=rt(1)""#), "{html}");
    // As markup, not as escaped text (the rest of the input ends up in a code block).
    for bad in ["<script", "<img", "onerror=\"", "javascript:", "style=\""] {
        assert!(!html.contains(bad), "{bad} in {html}");
    }
    assert!(
        html.contains("&lt;/script&gt;"),
        "the script is shown as text: {html}"
    );
}
