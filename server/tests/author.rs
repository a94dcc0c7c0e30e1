//! The author's API over real HTTP: an application's handler works inside the session that
//! asked for the reply, and nowhere else.

mod common;

use common::{Browser, TestApp, ok, started};
use confide_core::assistant::{Assistant, AssistantError, DeltaStream, ReplyContext};
use futures::StreamExt;
use serde_json::json;
use server::Config;
use std::sync::{Arc, Mutex};

/// What a handler saw of one reply.
#[derive(Clone, Debug)]
struct Seen {
    thread: String,
    account: Option<String>,
    question: String,
}

/// Counts the questions of each browser session in that session's own values and answers
/// the count; remembers what it saw of each reply. `/wait` waits for the reply to be
/// cancelled and records that it was.
#[derive(Default)]
struct Counter {
    seen: Mutex<Vec<Seen>>,
    cancelled: Arc<tokio::sync::Notify>,
}

const COUNT_KEY: &str = "counter.questions";

#[async_trait::async_trait]
impl Assistant for Counter {
    async fn reply(&self, cx: ReplyContext) -> Result<DeltaStream, AssistantError> {
        self.seen.lock().unwrap().push(Seen {
            thread: cx.thread.id.to_string(),
            account: cx.account.as_ref().map(|a| a.name.clone()),
            question: cx.question().to_owned(),
        });
        if cx.question() == "/early" {
            // Asks before it has a stream to hand over.
            let who = cx.ask("Who is there?").await;
            let answer = match who {
                Ok(name) => format!("Hello, {name}."),
                Err(e) => format!("No answer: {e}"),
            };
            return Ok(futures::stream::iter([Ok(answer)]).boxed());
        }
        if cx.question() == "/wait" {
            // Work beside the stream, as a tool call would run: it watches the signal.
            let (cancel, cancelled) = (cx.cancel.clone(), self.cancelled.clone());
            tokio::spawn(async move {
                cancel.cancelled().await;
                cancelled.notify_one();
            });
            return Ok(futures::stream::pending().boxed());
        }
        let n = cx.session.get::<u32>(COUNT_KEY).await?.unwrap_or(0) + 1;
        cx.session.set(COUNT_KEY, &n).await?;
        Ok(futures::stream::iter([Ok(format!("question {n} of this session"))]).boxed())
    }
}

async fn with_counter() -> (TestApp, Arc<Counter>) {
    let counter = Arc::new(Counter::default());
    let app = common::spawn_with_assistant(
        Config {
            auth_password: true,
            auth_registration: true,
            ..Config::default()
        },
        counter.clone(),
    )
    .await;
    (app, counter)
}

/// Sends `text` in a new chat and answers the chat's id and the finished reply's text.
async fn ask(app: &TestApp, b: &mut Browser, text: &str) -> (String, String) {
    let sent = ok(b
        .call(app, "messages/send", json!({ "content": text }))
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    let t = common::settled(app, b, &tid).await;
    let reply = t["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(reply["status"], "done", "{t}");
    (tid, reply["content"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_handlers_session_values_belong_to_the_browser_that_asked() {
    let (app, _) = with_counter().await;
    // Two browsers behind one address, as every test client here is.
    let mut browsers = [started(&app).await, started(&app).await];
    // (browser, the count it should answer), in the order asked.
    for (i, n) in [(0, 1), (0, 2), (1, 1), (0, 3), (1, 2)] {
        let (_, answer) = ask(&app, &mut browsers[i], &format!("q{n}")).await;
        assert_eq!(answer, format!("question {n} of this session"));
    }
}

#[tokio::test]
async fn a_handler_sees_its_chat_and_who_is_signed_in() {
    let (app, counter) = with_counter().await;
    let mut anon = started(&app).await;
    let (anon_thread, _) = ask(&app, &mut anon, "who am I?").await;

    let mut alice = common::register(&app, "Alice").await;
    let (alice_thread, _) = ask(&app, &mut alice, "and me?").await;

    let seen = counter.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        (
            seen[0].thread.as_str(),
            seen[0].account.as_deref(),
            seen[0].question.as_str()
        ),
        (anon_thread.as_str(), None, "who am I?")
    );
    assert_eq!(
        (
            seen[1].thread.as_str(),
            seen[1].account.as_deref(),
            seen[1].question.as_str()
        ),
        (alice_thread.as_str(), Some("alice"), "and me?")
    );
}

#[tokio::test]
async fn stop_reaches_the_handler_as_its_cancellation_signal() {
    let (app, counter) = with_counter().await;
    let mut a = started(&app).await;
    let sent = ok(a
        .call(&app, "messages/send", json!({ "content": "/wait" }))
        .await);
    let reply_id = sent["reply"]["id"].as_str().unwrap().to_owned();
    let cancelled = counter.cancelled.notified();
    ok(
        a.call(&app, "messages/stop", json!({ "message_id": reply_id }))
            .await,
    );
    tokio::time::timeout(std::time::Duration::from_secs(20), cancelled)
        .await
        .expect("the handler saw the Stop");
}

#[tokio::test]
async fn a_handler_may_ask_before_it_streams_and_goes_on_after_the_answer() {
    let (app, _) = with_counter().await;
    let mut a = started(&app).await;
    let sent = ok(a
        .call(&app, "messages/send", json!({ "content": "/early" }))
        .await);
    let tid = sent["thread"]["id"].as_str().unwrap().to_owned();
    let t = common::settled(&app, &mut a, &tid).await;
    assert_eq!(t["messages"][1]["content"], "Who is there?", "{t}");
    assert_eq!(t["messages"][1]["status"], "done");
    ok(a.call(
        &app,
        "messages/send",
        json!({ "thread_id": tid, "content": "Bob" }),
    )
    .await);
    let t = common::settled(&app, &mut a, &tid).await;
    let last = &t["messages"][3];
    assert_eq!(
        (last["content"].as_str(), last["status"].as_str()),
        (Some("Hello, Bob."), Some("done")),
        "{t}"
    );
}
