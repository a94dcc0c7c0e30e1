//! The `openai` assistant against a fake OpenAI-compatible server on a random port: real
//! HTTP and SSE, with the failures real endpoints produce.

mod common;

use app::model::Role;
use axum::{
    Json, Router,
    body::Body,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use confide_core::UserSession;
use confide_core::assistant::{Assistant, AssistantErrorKind as Kind, ReplyContext, Turn};
use confide_core::model::{Step, StepKind, StepStatus};
use confide_core::tools::{ToolContext, Tools, tool};
use futures::{StreamExt, stream};
use serde_json::{Value, json};
use server::{
    Config,
    assistant::{OpenAiAssistant, OpenAiConfig, Secret},
};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::net::TcpListener;
use url::Url;

#[derive(Default)]
struct Seen {
    auth: Vec<Option<String>>,
    bodies: Vec<Value>,
}

fn chunk(text: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({ "choices": [{ "delta": { "content": text } }] })
    )
}

/// The model name picks the behaviour.
async fn completions(
    seen: Arc<Mutex<Seen>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    {
        let mut s = seen.lock().unwrap();
        s.auth.push(
            headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned()),
        );
        s.bodies.push(body.clone());
    }
    let sse = |parts: Vec<Result<String, std::io::Error>>, delay_ms: u64| {
        let s = stream::iter(parts).then(move |p| async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            p
        });
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(s))
            .unwrap()
    };
    match body["model"].as_str().unwrap_or("") {
        "ok" => {
            // Split one event across two network chunks, as proxies do.
            let first = chunk("Hel");
            let (a, b) = first.split_at(10);
            sse(
                vec![
                    Ok(": keep-alive\n\n".into()),
                    Ok(format!(
                        "data: {}\n\n",
                        json!({ "choices": [{ "delta": { "role": "assistant" } }] })
                    )),
                    Ok(a.into()),
                    Ok(b.into()),
                    Ok(chunk("lo, ")),
                    Ok(chunk("world")),
                    Ok(format!(
                        "data: {}\n\n",
                        json!({ "choices": [{ "delta": {}, "finish_reason": "stop" }] })
                    )),
                    Ok("data: [DONE]\n\n".into()),
                ],
                5,
            )
        }
        // Reports what the request took, as OpenAI does with `include_usage`.
        "usage" => sse(
            vec![
                Ok(chunk("Counted")),
                Ok(format!(
                    "data: {}\n\n",
                    json!({ "choices": [], "usage": { "prompt_tokens": 600, "completion_tokens": 400, "total_tokens": 1000 } })
                )),
                Ok("data: [DONE]\n\n".into()),
            ],
            1,
        ),
        "e401" => (StatusCode::UNAUTHORIZED, "bad key").into_response(),
        "e404" => (StatusCode::NOT_FOUND, "no such model").into_response(),
        "e429" => (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response(),
        "e500" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "malformed" => sse(
            vec![
                Ok(chunk("Partial ")),
                Ok("data: {this is not json\n\n".into()),
            ],
            5,
        ),
        "disconnect" => sse(
            vec![
                Ok(chunk("Cut ")),
                Ok(chunk("off ")),
                Err(std::io::Error::other("connection reset")),
            ],
            5,
        ),
        "truncated" => sse(vec![Ok(chunk("No done marker"))], 5),
        "stall" => sse(vec![Ok(chunk("Then ")), Ok(chunk("silence"))], 3_000),
        "error-event" => sse(
            vec![Ok(format!(
                "data: {}\n\n",
                json!({ "error": { "message": "model overloaded" } })
            ))],
            5,
        ),
        "tools" | "tools-unknown" | "tools-loop" | "tools-slow" => {
            let last = body["messages"]
                .as_array()
                .and_then(|m| m.last())
                .cloned()
                .unwrap_or_default();
            let model = body["model"].as_str().unwrap_or("");
            let answer =
                |text: String| sse(vec![Ok(chunk(&text)), Ok("data: [DONE]\n\n".into())], 5);
            if last["role"] == "tool" && (model != "tools-loop" || body["tool_choice"] == "none") {
                return answer(format!(
                    "The tool said {}.",
                    last["content"].as_str().unwrap_or("")
                ));
            }
            let (name, args) = match model {
                "tools-unknown" => ("nope", "{}"),
                "tools-slow" => ("sleep", "{}"),
                _ => ("add", r#"{"a": 2, "b": 40}"#),
            };
            // The call arrives in pieces: its name first, then its arguments split mid-token.
            let call = |delta: Value| {
                format!(
                    "data: {}\n\n",
                    json!({ "choices": [{ "delta": { "tool_calls": [delta] } }] })
                )
            };
            let (a, b) = args.split_at(args.len() / 2);
            sse(
                vec![
                    Ok(chunk("Let me check.")),
                    Ok(call(
                        json!({ "index": 0, "id": "call_1", "type": "function", "function": { "name": name, "arguments": "" } }),
                    )),
                    Ok(call(json!({ "index": 0, "function": { "arguments": a } }))),
                    Ok(call(json!({ "index": 0, "function": { "arguments": b } }))),
                    Ok(format!(
                        "data: {}\n\n",
                        json!({ "choices": [{ "delta": {}, "finish_reason": "tool_calls" }] })
                    )),
                    Ok("data: [DONE]\n\n".into()),
                ],
                5,
            )
        }
        _ => (StatusCode::BAD_REQUEST, "unknown model").into_response(),
    }
}

async fn fake_openai() -> (Url, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |h: HeaderMap, b: Json<Value>| completions(s.clone(), h, b)),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn assistant(base: &Url, model: &str) -> OpenAiAssistant {
    OpenAiAssistant::new(OpenAiConfig {
        base_url: base.clone(),
        api_key: Some(Secret("sk-test".into())),
        model: model.into(),
        system_prompt: Some("Be brief.".into()),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(800),
        ..OpenAiConfig::new(base.clone(), model)
    })
    .unwrap()
}

fn history() -> Vec<Turn> {
    vec![
        Turn::new(Role::User, "hi"),
        Turn::new(Role::Assistant, "hello"),
        Turn::new(Role::User, "say hello"),
    ]
}

/// Collects a reply: its text and the error that ended it, if any.
async fn run(base: &Url, model: &str) -> (String, Option<Kind>) {
    let a = assistant(base, model);
    let cx = confide_core::assistant::ReplyContext::for_session(
        server::testing::user_session().await,
        history(),
    );
    let mut s = match a.reply(cx).await {
        Ok(s) => s,
        Err(e) => return (String::new(), Some(e.kind)),
    };
    let mut text = String::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(t) => text.push_str(&t),
            Err(e) => {
                assert!(!e.message.contains("sk-test"), "errors never carry the key");
                return (text, Some(e.kind));
            }
        }
    }
    (text, None)
}

#[tokio::test]
async fn streams_a_reply_and_sends_the_conversation() {
    let (base, seen) = fake_openai().await;
    assert_eq!(run(&base, "ok").await, ("Hello, world".into(), None));
    let s = seen.lock().unwrap();
    assert_eq!(s.auth[0].as_deref(), Some("Bearer sk-test"));
    let body = &s.bodies[0];
    assert_eq!(body["stream"], true);
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(body["messages"][3]["content"], "say hello");
}

#[tokio::test]
async fn http_errors_are_clear() {
    let (base, _) = fake_openai().await;
    assert_eq!(run(&base, "e401").await.1, Some(Kind::Unauthorized));
    assert_eq!(run(&base, "e404").await.1, Some(Kind::NotFound));
    assert_eq!(run(&base, "e429").await.1, Some(Kind::RateLimited));
    assert_eq!(run(&base, "e500").await.1, Some(Kind::Upstream));
}

#[tokio::test]
async fn broken_streams_keep_what_arrived() {
    let (base, _) = fake_openai().await;
    assert_eq!(
        run(&base, "malformed").await,
        ("Partial ".into(), Some(Kind::Protocol))
    );
    assert_eq!(
        run(&base, "disconnect").await,
        ("Cut off ".into(), Some(Kind::Interrupted))
    );
    assert_eq!(
        run(&base, "truncated").await,
        ("No done marker".into(), Some(Kind::Interrupted))
    );
    assert_eq!(
        run(&base, "error-event").await,
        (String::new(), Some(Kind::Upstream))
    );
}

#[tokio::test]
async fn a_stalled_endpoint_times_out() {
    let (base, _) = fake_openai().await;
    let (text, err) = run(&base, "stall").await;
    assert_eq!(err, Some(Kind::Unavailable));
    assert!(text.len() <= "Then ".len(), "{text}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_reported() {
    // A port nothing listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = Url::parse(&format!("http://{}", l.local_addr().unwrap())).unwrap();
    drop(l);
    assert_eq!(run(&base, "ok").await.1, Some(Kind::Unavailable));
}

#[tokio::test]
async fn confide_shows_model_replies_and_model_failures() {
    let (base, _) = fake_openai().await;
    for (model, status, content) in [
        ("ok", "done", "Hello, world"),
        ("e429", "error", ""),
        ("disconnect", "error", "Cut off "),
    ] {
        let app = common::spawn_with(Config {
            assistant: server::config::AssistantKind::Openai,
            openai_base_url: Some(base.clone()),
            model: model.into(),
            ..Config::default()
        })
        .await;
        let mut b = common::Browser::new();
        b.start(&app).await;
        let sent = b
            .call(&app, "messages/send", json!({ "content": "hi" }))
            .await;
        assert_eq!(sent.status, reqwest::StatusCode::OK, "{:?}", sent.body);
        let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
        let mut reply = Value::Null;
        for _ in 0..200 {
            let t = b
                .call(&app, "threads/get", json!({ "thread_id": tid }))
                .await;
            reply = t.body["messages"][1].clone();
            if reply["status"] != "streaming" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(reply["status"], status, "{model}: {reply}");
        assert_eq!(reply["content"], content, "{model}");
        if status == "error" {
            assert!(
                !reply["error"].as_str().unwrap().is_empty(),
                "{model}: a reason is given"
            );
        }
    }
}

/// The endpoint's usage reports count against the daily token quota: two replies of
/// 1,000 tokens each use up 1,500, and the third message is refused with a clear 429
/// (its text alone would be estimated at a handful of tokens).
#[tokio::test]
async fn reported_usage_counts_against_the_daily_token_quota() {
    let (base, seen) = fake_openai().await;
    let app = common::spawn_with(Config {
        assistant: server::config::AssistantKind::Openai,
        openai_base_url: Some(base.clone()),
        model: "usage".into(),
        quota_tokens_per_day: 1500,
        ..Config::default()
    })
    .await;
    let mut b = common::Browser::new();
    b.start(&app).await;
    let sent = b
        .call(&app, "messages/send", json!({ "content": "hi" }))
        .await;
    assert_eq!(sent.status, reqwest::StatusCode::OK, "{:?}", sent.body);
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    common::settled(&app, &mut b, &tid).await;
    let again = b
        .call(
            &app,
            "messages/send",
            json!({ "thread_id": tid, "content": "more" }),
        )
        .await;
    assert_eq!(
        again.status,
        reqwest::StatusCode::OK,
        "under the quota still"
    );
    common::settled(&app, &mut b, &tid).await;
    let refused = b
        .call(
            &app,
            "messages/send",
            json!({ "thread_id": tid, "content": "and more" }),
        )
        .await;
    assert_eq!(refused.status, reqwest::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "quota_exceeded");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("resets at 00:00 UTC"),
        "{:?}",
        refused.body
    );
    let t = common::settled(&app, &mut b, &tid).await;
    assert_eq!(
        t["messages"].as_array().unwrap().len(),
        4,
        "the refused message was not kept"
    );
    let body = seen.lock().unwrap().bodies[0].clone();
    assert_eq!(body["stream_options"]["include_usage"], true, "{body}");

    // Someone else's quota is untouched.
    let mut other = common::Browser::new();
    other.start(&app).await;
    let r = other
        .call(&app, "messages/send", json!({ "content": "hi" }))
        .await;
    assert_eq!(r.status, reqwest::StatusCode::OK, "{:?}", r.body);
}

/// A new chat is named by the model from its first exchange; later turns and chats the
/// person renamed keep their titles, and the echo assistant keeps the first words.
#[tokio::test]
async fn the_model_names_a_new_chat_from_its_first_exchange() {
    let (base, seen) = fake_openai().await;
    let app = common::spawn_with(Config {
        assistant: server::config::AssistantKind::Openai,
        openai_base_url: Some(base.clone()),
        model: "ok".into(),
        ..Config::default()
    })
    .await;
    let mut b = common::Browser::new();
    b.start(&app).await;
    let sent = b
        .call(
            &app,
            "messages/send",
            json!({ "content": "tell me something friendly" }),
        )
        .await;
    assert_eq!(sent.status, reqwest::StatusCode::OK, "{:?}", sent.body);
    assert_eq!(sent.body["thread"]["title"], "tell me something friendly");
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let mut title = Value::Null;
    for _ in 0..250 {
        let t = b
            .call(&app, "threads/get", json!({ "thread_id": tid }))
            .await;
        title = t.body["thread"]["title"].clone();
        if title == "Hello, world" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The fake model answers every request with "Hello, world".
    assert_eq!(title, "Hello, world");
    {
        let s = seen.lock().unwrap();
        let naming = s
            .bodies
            .iter()
            .find(|b| {
                b["messages"][0]["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("title"))
            })
            .expect("a naming request was made");
        let asked = naming["messages"][1]["content"].as_str().unwrap();
        assert!(asked.contains("tell me something friendly") && asked.contains("Hello, world"));
    }

    // A second turn does not rename; neither does a reply in a chat the person renamed.
    let requests = seen.lock().unwrap().bodies.len();
    b.call(
        &app,
        "threads/rename",
        json!({ "thread_id": tid, "title": "Mine" }),
    )
    .await;
    b.call(
        &app,
        "messages/send",
        json!({ "thread_id": tid, "content": "again" }),
    )
    .await;
    common::settled(&app, &mut b, &tid).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = b
        .call(&app, "threads/get", json!({ "thread_id": tid }))
        .await;
    assert_eq!(t.body["thread"]["title"], "Mine");
    assert_eq!(
        seen.lock().unwrap().bodies.len(),
        requests + 1,
        "only the reply was asked for"
    );
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Sum {
    /// The first number.
    a: i64,
    b: i64,
}

/// Sets its flag when dropped: shows that a tool's future was let go of.
struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn toolbox(dropped: Arc<std::sync::atomic::AtomicBool>) -> Tools {
    Tools::new()
        .with(tool(
            "add",
            "Adds two integers.",
            |s: Sum, cx: ToolContext| async move {
                // A tool runs in the reply's own session.
                cx.session.set("last_sum", &(s.a + s.b)).await?;
                Ok((s.a + s.b).to_string())
            },
        ))
        .with(tool("sleep", "Never answers.", move |_: (), _| {
            let flag = DropFlag(dropped.clone());
            async move {
                let _flag = flag;
                std::future::pending::<()>().await;
                Ok(String::new())
            }
        }))
}

async fn run_tools(
    base: &Url,
    model: &str,
    rounds: usize,
) -> (String, Option<String>, Vec<Step>, UserSession) {
    let a = OpenAiAssistant::new(OpenAiConfig {
        max_tool_rounds: rounds,
        ..OpenAiConfig::new(base.clone(), model)
    })
    .unwrap()
    .with_tools(toolbox(Default::default()));
    let session = server::testing::user_session().await;
    let cx = ReplyContext::for_session(session.clone(), history());
    let steps = cx.steps.clone();
    let mut s = a.reply(cx).await.unwrap();
    let mut text = String::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(t) => text.push_str(&t),
            Err(e) => return (text, Some(e.message), steps.snapshot(), session),
        }
    }
    (text, None, steps.snapshot(), session)
}

#[tokio::test]
async fn the_model_calls_a_typed_tool_and_answers_with_its_result() {
    let (base, seen) = fake_openai().await;
    let (text, error, steps, session) = run_tools(&base, "tools", 8).await;
    assert_eq!(error, None);
    assert_eq!(text, "Let me check.\n\nThe tool said 42.");
    assert_eq!(steps.len(), 1);
    assert_eq!(
        (steps[0].kind, steps[0].name.as_str()),
        (StepKind::Tool, "add")
    );
    assert_eq!(steps[0].input, r#"{"a": 2, "b": 40}"#);
    assert_eq!(
        (steps[0].status, steps[0].output.as_str()),
        (StepStatus::Done, "42")
    );
    assert_eq!(session.get::<i64>("last_sum").await.unwrap(), Some(42));

    let s = seen.lock().unwrap();
    assert_eq!(s.bodies.len(), 2, "one request per round");
    let spec = &s.bodies[0]["tools"];
    let add = spec
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "add")
        .unwrap();
    assert_eq!(add["type"], "function");
    assert_eq!(
        add["function"]["parameters"]["properties"]["a"]["type"],
        "integer"
    );
    assert_eq!(
        add["function"]["parameters"]["properties"]["a"]["description"],
        "The first number."
    );
    assert_eq!(s.bodies[0]["tool_choice"], "auto");
    let second = s.bodies[1]["messages"].as_array().unwrap();
    let call = &second[second.len() - 2];
    assert_eq!(call["role"], "assistant");
    assert_eq!(call["content"], "Let me check.");
    assert_eq!(call["tool_calls"][0]["id"], "call_1");
    assert_eq!(call["tool_calls"][0]["function"]["name"], "add");
    assert_eq!(
        call["tool_calls"][0]["function"]["arguments"],
        r#"{"a": 2, "b": 40}"#
    );
    let result = &second[second.len() - 1];
    assert_eq!(result["role"], "tool");
    assert_eq!(result["tool_call_id"], "call_1");
    assert_eq!(result["content"], "42");
}

#[tokio::test]
async fn a_call_of_no_such_tool_fails_its_step_and_the_model_is_told() {
    let (base, seen) = fake_openai().await;
    let (text, error, steps, _) = run_tools(&base, "tools-unknown", 8).await;
    assert_eq!(error, None);
    assert_eq!(steps[0].status, StepStatus::Failed);
    assert!(
        steps[0].output.contains("no tool named \"nope\""),
        "{}",
        steps[0].output
    );
    assert!(
        text.contains("The tool said error: there is no tool named"),
        "{text}"
    );
    let s = seen.lock().unwrap();
    let last = s.bodies[1]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "tool");
}

#[tokio::test]
async fn tool_rounds_are_bounded_and_the_last_asks_for_an_answer() {
    let (base, seen) = fake_openai().await;
    let (text, error, steps, _) = run_tools(&base, "tools-loop", 3).await;
    assert_eq!(error, None);
    assert_eq!(steps.len(), 3, "one call per round");
    assert!(text.ends_with("The tool said 42."), "{text}");
    let s = seen.lock().unwrap();
    let choices: Vec<&str> = s
        .bodies
        .iter()
        .map(|b| b["tool_choice"].as_str().unwrap())
        .collect();
    assert_eq!(choices, ["auto", "auto", "auto", "none"]);
}

#[tokio::test]
async fn dropping_the_reply_cancels_a_running_tool() {
    let (base, _) = fake_openai().await;
    let dropped: Arc<std::sync::atomic::AtomicBool> = Default::default();
    let a = OpenAiAssistant::new(OpenAiConfig::new(base.clone(), "tools-slow"))
        .unwrap()
        .with_tools(toolbox(dropped.clone()));
    let cx = ReplyContext::for_session(server::testing::user_session().await, history());
    let steps = cx.steps.clone();
    let mut s = a.reply(cx).await.unwrap();
    assert_eq!(s.next().await.unwrap().unwrap(), "Let me check.");
    // Poll until the tool is running; it never answers.
    let polled = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                _ = s.next() => panic!("the reply went on past a tool that never answers"),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            if steps
                .snapshot()
                .first()
                .is_some_and(|st| st.status == StepStatus::Running)
            {
                break;
            }
        }
    })
    .await;
    assert!(polled.is_ok(), "the sleep tool never started");
    assert!(!dropped.load(std::sync::atomic::Ordering::SeqCst));
    drop(s);
    assert!(
        dropped.load(std::sync::atomic::Ordering::SeqCst),
        "the tool's future was dropped"
    );
    assert_eq!(steps.snapshot()[0].status, StepStatus::Stopped);
}

#[tokio::test]
async fn arguments_are_checked_against_the_type() {
    let tools = Tools::new()
        .with(tool("add", "", |s: Sum, _| async move {
            Ok((s.a + s.b).to_string())
        }))
        .with(tool(
            "now",
            "",
            |(): (), _| async move { Ok("noon".into()) },
        ))
        .with(tool("boom", "", |(): (), _| async move {
            panic!("a bug in a tool")
        }));
    let session = server::testing::user_session().await;
    let cx = || ToolContext::of(&ReplyContext::for_session(session.clone(), history()));
    assert_eq!(
        tools.call("add", r#"{"a":1,"b":2}"#, cx()).await,
        Ok("3".into())
    );
    for empty in ["", "{}", "null"] {
        assert_eq!(
            tools.call("now", empty, cx()).await,
            Ok("noon".into()),
            "{empty:?}"
        );
    }
    let wrong = tools.call("add", r#"{"a":"one"}"#, cx()).await.unwrap_err();
    assert!(
        wrong.0.starts_with("the arguments do not fit the tool"),
        "{wrong}"
    );
    let broken = tools.call("add", r#"{"a":1,"#, cx()).await.unwrap_err();
    assert!(
        broken.0.starts_with("the arguments are not valid JSON"),
        "{broken}"
    );
    let missing = tools.call("sub", "{}", cx()).await.unwrap_err();
    assert_eq!(missing.0, r#"there is no tool named "sub""#);
    let panicked = tools.call("boom", "{}", cx()).await.unwrap_err();
    assert_eq!(panicked.0, "the tool failed unexpectedly");
}

#[tokio::test]
async fn a_chosen_profile_picks_its_model_and_system_prompt() {
    let (base, seen) = fake_openai().await;
    let profile =
        |id: &str, model: Option<&str>, prompt: Option<&str>| server::assistant::ModelProfile {
            id: id.into(),
            name: id.to_uppercase(),
            description: String::new(),
            model: model.map(Into::into),
            system_prompt: prompt.map(Into::into),
            starters: vec![],
        };
    let a = OpenAiAssistant::new(OpenAiConfig {
        system_prompt: Some("Be brief.".into()),
        profiles: vec![
            profile("fast", Some("ok"), Some("Be quick.")),
            profile("plain", None, None),
        ],
        // The base model fails: a reply that reaches it did not take the profile's.
        ..OpenAiConfig::new(base.clone(), "e404")
    })
    .unwrap();
    let offered: Vec<String> = a.profiles().into_iter().map(|p| p.name).collect();
    assert_eq!(offered, ["FAST", "PLAIN"]);
    let ask = |p: Option<confide_core::model::Profile>| async {
        let cx = ReplyContext::for_session(server::testing::user_session().await, history())
            .with_settings(Default::default(), p);
        match a.reply(cx).await {
            Ok(s) => Ok(s.map(Result::unwrap).collect::<String>().await),
            Err(e) => Err(e.kind),
        }
    };
    let profiles = a.profiles();
    assert_eq!(
        ask(Some(profiles[0].clone())).await,
        Ok("Hello, world".into())
    );
    assert_eq!(
        ask(Some(profiles[1].clone())).await,
        Err(Kind::NotFound),
        "the base model"
    );
    assert_eq!(ask(None).await, Err(Kind::NotFound));
    let s = seen.lock().unwrap();
    assert_eq!(s.bodies[0]["model"], "ok");
    assert_eq!(s.bodies[0]["messages"][0]["content"], "Be quick.");
    assert_eq!(
        s.bodies[1]["messages"][0]["content"], "Be brief.",
        "the base prompt"
    );
}

/// A picture sent with a message reaches the model as an image part (a data URL of its
/// bytes), and a text file as its contents in a fence, beside the message's words.
#[tokio::test]
async fn files_reach_the_model_as_image_and_text_parts() {
    const PNG_1X1: &[u8] = &[
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
        0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8,
        0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00,
        0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ];
    use base64::Engine;
    let (base, seen) = fake_openai().await;
    let app = common::spawn_with(Config {
        assistant: server::config::AssistantKind::Openai,
        openai_base_url: Some(base.clone()),
        model: "ok".into(),
        ..Config::default()
    })
    .await;
    let mut b = common::Browser::new();
    b.start(&app).await;
    let mut ids = Vec::new();
    let pdf = include_bytes!("fixtures/hello.pdf");
    for (name, bytes) in [
        ("shot.png", PNG_1X1),
        ("todo.txt", b"buy milk".as_slice()),
        ("hello.pdf", pdf.as_slice()),
    ] {
        let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name);
        let up = common::send(
            app.http
                .post(format!("{}/api/files", app.base))
                .header("x-confide-session", &b.sid)
                .header("cookie", b.cookie_header())
                .multipart(reqwest::multipart::Form::new().part("file", part)),
        )
        .await;
        assert_eq!(up.status, reqwest::StatusCode::OK, "{:?}", up.body);
        ids.push(up.body["id"].clone());
    }
    let sent = b
        .call(
            &app,
            "messages/send",
            json!({ "content": "what is this?", "files": ids }),
        )
        .await;
    assert_eq!(sent.status, reqwest::StatusCode::OK, "{:?}", sent.body);
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    common::settled(&app, &mut b, &tid).await;
    let body = seen.lock().unwrap().bodies[0].clone();
    let user = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "user")
        .unwrap()
        .clone();
    let parts = user["content"].as_array().expect("content parts");
    assert_eq!(parts[0], json!({ "type": "text", "text": "what is this?" }));
    let expected = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(PNG_1X1)
    );
    assert_eq!(parts[1]["type"], "image_url");
    assert_eq!(parts[1]["image_url"]["url"], expected);
    assert_eq!(parts[2]["type"], "text");
    let text = parts[2]["text"].as_str().unwrap();
    assert!(
        text.contains("todo.txt") && text.contains("```\nbuy milk\n```"),
        "{text}"
    );
    let text = parts[3]["text"].as_str().unwrap();
    assert!(
        text.contains("hello.pdf") && text.contains("Hello from a PDF"),
        "{text}"
    );
}
