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

/// A small MCP server for trying and testing MCP tools: it keeps notes per MCP session
/// (`add_note`, `list_notes`), so it shows whose connection a call went through. `fail`
/// answers with an error; `wait` answers only when the call is cancelled, and `cancelled`
/// says how many were. Serve it with [`notes_mcp_http`] or over stdio (the `mcp_notes`
/// example).
#[derive(Clone, Default)]
pub struct NotesMcp {
    notes: Arc<std::sync::Mutex<Vec<String>>>,
    cancelled: Arc<std::sync::atomic::AtomicUsize>,
}

impl NotesMcp {
    /// A server for one MCP session, counting cancelled waits with `cancelled`, which the
    /// sessions of one server share.
    fn for_session(cancelled: Arc<std::sync::atomic::AtomicUsize>) -> Self {
        Self {
            notes: Default::default(),
            cancelled,
        }
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct NoteArgs {
    /// What to note.
    text: String,
}

impl rmcp::ServerHandler for NotesMcp {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            rmcp::model::ServerCapabilities::builder()
                .enable_tools()
                .build(),
        )
    }

    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _cx: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, rmcp::ErrorData> {
        use confide_core::tools::schema_of;
        let schema = |v: serde_json::Value| Arc::new(v.as_object().cloned().unwrap_or_default());
        let tool = |name: &'static str, description: &'static str, args: serde_json::Value| {
            rmcp::model::Tool::new(name, description, schema(args))
        };
        Ok(rmcp::model::ListToolsResult::with_all_items(vec![
            tool(
                "add_note",
                "Notes a text for later.",
                schema_of::<NoteArgs>(),
            ),
            tool("list_notes", "Lists the notes so far.", schema_of::<()>()),
            tool("fail", "Always fails.", schema_of::<()>()),
            tool("wait", "Answers only when cancelled.", schema_of::<()>()),
            tool(
                "cancelled",
                "How many waits were cancelled.",
                schema_of::<()>(),
            ),
        ]))
    }

    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        cx: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        use rmcp::model::{CallToolResult, ContentBlock};
        use std::sync::atomic::Ordering;
        let text = |t: String| Ok(CallToolResult::success(vec![ContentBlock::text(t)]).into());
        let notes = || self.notes.lock().unwrap_or_else(|e| e.into_inner());
        match request.name.as_ref() {
            "add_note" => {
                let args = serde_json::Value::Object(request.arguments.unwrap_or_default());
                let args: NoteArgs = serde_json::from_value(args)
                    .map_err(|e| rmcp::ErrorData::invalid_params(e.to_string(), None))?;
                let count = {
                    let mut n = notes();
                    n.push(args.text);
                    n.len()
                };
                text(format!("Noted ({count} in all)."))
            }
            "list_notes" => {
                let n = notes();
                if n.is_empty() {
                    text("No notes.".into())
                } else {
                    text(n.join("; "))
                }
            }
            "fail" => Ok(CallToolResult::error(vec![ContentBlock::text(
                "the notebook is on fire",
            )])
            .into()),
            "wait" => {
                cx.ct.cancelled().await;
                self.cancelled.fetch_add(1, Ordering::SeqCst);
                text("cancelled".into())
            }
            "cancelled" => text(self.cancelled.load(Ordering::SeqCst).to_string()),
            other => Err(rmcp::ErrorData::invalid_params(
                format!("no tool named {other:?}"),
                None,
            )),
        }
    }
}

/// Serves [`NotesMcp`] over Streamable HTTP on a free port of 127.0.0.1; each MCP session
/// has its own notes. Returns the endpoint's URL. Runs until the runtime ends.
pub async fn notes_mcp_http() -> std::io::Result<url::Url> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let cancelled: Arc<std::sync::atomic::AtomicUsize> = Default::default();
    let service: StreamableHttpService<NotesMcp, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(NotesMcp::for_session(cancelled.clone())),
        Default::default(),
        StreamableHttpServerConfig::default().with_sse_keep_alive(None),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = url::Url::parse(&format!("http://{}/mcp", listener.local_addr()?))
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(url)
}

/// Serves [`NotesMcp`] on stdin and stdout until the client goes away.
pub async fn notes_mcp_stdio() -> Result<(), Box<dyn std::error::Error>> {
    use rmcp::ServiceExt;
    NotesMcp::default()
        .serve(rmcp::transport::stdio())
        .await?
        .waiting()
        .await?;
    Ok(())
}
