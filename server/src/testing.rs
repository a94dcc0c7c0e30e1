//! For testing an assistant without a running server: browser sessions made the way a
//! request's are (the guard claims a new id and issues its proof), in a memory store.
//!
//! ```ignore
//! let cx = ReplyContext::for_session(server::testing::user_session().await, history);
//! let stream = my_assistant.reply(cx).await?;
//! ```

use crate::{Config, MemoryStore, lifetimes};
use confide_core::{
    GuardConfig, Mode, SESSION_HEADER_NAME, SessionId, SessionStore, UserSession, guard,
};
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;

/// A new browser session in a store of its own.
pub async fn user_session() -> UserSession {
    claim(&memory_store()).await
}

/// Two browser sessions in one store, as two people behind one address would have.
pub async fn two_user_sessions() -> (UserSession, UserSession) {
    let store = memory_store();
    (claim(&store).await, claim(&store).await)
}

fn memory_store() -> Arc<dyn SessionStore> {
    Arc::new(MemoryStore::new(lifetimes(&Config::default())))
}

/// Claims a new id through the guard, as a browser's first call does.
async fn claim(store: &Arc<dyn SessionStore>) -> UserSession {
    let cfg = GuardConfig {
        lifetimes: lifetimes(&Config::default()),
        secure_cookies: true,
    };
    let mut headers = HeaderMap::new();
    let id = HeaderValue::from_str(&SessionId::random().as_string())
        .expect("a session id is a valid header value");
    headers.insert(SESSION_HEADER_NAME, id);
    let outcome = guard::check(store, &cfg, &headers, Mode::Api)
        .await
        .expect("a new id is claimed");
    UserSession::from_verified(outcome.session.expect("a claim verifies its session"))
}

/// What a scripted model does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Scripted {
    /// Answers with this text.
    Say(String),
    /// Calls the tool `name` with these arguments.
    Call {
        /// The tool's name.
        name: String,
        /// The arguments the call carries, as JSON.
        arguments: serde_json::Value,
    },
}

/// A stand-in for a model: an OpenAI-compatible `/v1/chat/completions` endpoint on a free
/// port of 127.0.0.1 that streams what `script` decides from the conversation so far (the
/// request's `messages`). It speaks the protocol as real endpoints do (server-sent events,
/// tool calls in pieces, `[DONE]`), so an app's tools can be run and tested offline through
/// the real OpenAI-compatible assistant. A request that asks for no more tools
/// (`tool_choice: "none"`) is answered, never given a call. Runs until the runtime ends.
pub async fn scripted_model(
    script: impl Fn(&[serde_json::Value]) -> Scripted + Send + Sync + 'static,
) -> std::io::Result<url::Url> {
    use axum::{Json, response::IntoResponse, routing::post};
    use serde_json::{Value, json};
    let script = Arc::new(script);
    let answer = move |Json(body): Json<Value>| {
        let script = script.clone();
        async move {
            let messages = body["messages"].as_array().cloned().unwrap_or_default();
            let next = match script(&messages) {
                Scripted::Call { .. } if body["tool_choice"] == "none" => {
                    Scripted::Say("I have used my tools enough for one answer.".into())
                }
                next => next,
            };
            let data = |v: Value| format!("data: {v}\n\n");
            let mut events = Vec::new();
            match next {
                Scripted::Say(text) => {
                    for word in text.split_inclusive(' ') {
                        events.push(data(
                            json!({ "choices": [{ "delta": { "content": word } }] }),
                        ));
                    }
                    events.push(data(
                        json!({ "choices": [{ "delta": {}, "finish_reason": "stop" }] }),
                    ));
                }
                Scripted::Call { name, arguments } => {
                    let call =
                        |v: Value| data(json!({ "choices": [{ "delta": { "tool_calls": [v] } }] }));
                    let args = arguments.to_string();
                    let cut = args
                        .char_indices()
                        .nth(args.chars().count() / 2)
                        .map_or(0, |(i, _)| i);
                    let id = format!("call_{}", messages.len());
                    events.push(call(json!({ "index": 0, "id": id, "type": "function",
                        "function": { "name": name, "arguments": &args[..cut] } })));
                    events.push(call(
                        json!({ "index": 0, "function": { "arguments": &args[cut..] } }),
                    ));
                    events.push(data(
                        json!({ "choices": [{ "delta": {}, "finish_reason": "tool_calls" }] }),
                    ));
                }
            }
            events.push("data: [DONE]\n\n".into());
            (
                [(http::header::CONTENT_TYPE, "text/event-stream")],
                events.concat(),
            )
                .into_response()
        }
    };
    let router = axum::Router::new().route("/v1/chat/completions", post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = url::Url::parse(&format!("http://{}", listener.local_addr()?))
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(url)
}
