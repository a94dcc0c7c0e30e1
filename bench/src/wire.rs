//! A second baseline: a bare axum server that speaks Confide's wire for a chat turn and does
//! nothing else. It answers `session/start` with a proof cookie, keeps one event stream per
//! session id and, for `messages/send`, publishes the same events with the same fields
//! (a new chat's title, the person's message, the reply as it starts and as it ends) and
//! answers with the same body, the echo reply complete at once. No store, no checks, no
//! markdown, no quotas: what any server speaking this protocol must at least spend on a turn
//! (the HTTP request, its JSON both ways, three or four server-sent events), so the load
//! tool can tell how much of the gap to the echo baseline is the protocol's and how much is
//! Confide's.

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, header},
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
    routing::{get, post},
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};
use tokio::sync::mpsc;
use uuid::Uuid;

type Streams = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Arc<WireEvent>>>>>;

#[derive(Clone, Serialize)]
struct Thread {
    id: String,
    title: String,
    created_ms: i64,
    updated_ms: i64,
}

#[derive(Clone, Serialize)]
struct Message {
    id: String,
    thread_id: String,
    role: &'static str,
    content: String,
    created_ms: i64,
    status: &'static str,
    feedback: Option<()>,
    error: Option<()>,
    html: String,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    Thread { thread: Thread },
    Message { message: Message },
}

#[derive(Deserialize)]
struct Send {
    thread_id: Option<String>,
    content: String,
}

#[derive(Serialize)]
struct Sent {
    thread: Thread,
    user: Message,
    reply: Message,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The session id the cookie names (what Confide's guard reads first).
fn sid(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("__Host-confide_sid="))
        .map(str::to_owned)
}

async fn start(headers: HeaderMap) -> Response {
    let proof = Uuid::new_v4().simple().to_string();
    let cookie = format!(
        "{}={proof}; Path=/; Secure; HttpOnly; SameSite=Lax",
        crate::client::PROOF_COOKIE
    );
    let body = serde_json::json!({
        "short_id": sid(&headers).unwrap_or_default().chars().take(8).collect::<String>(),
        "new": true,
        "idle_timeout_secs": 86400,
        "absolute_timeout_secs": 2592000,
        "remaining_secs": 2592000,
        "user": null,
        "sign_in_enabled": false,
    });
    ([(header::SET_COOKIE, cookie)], Json(body)).into_response()
}

async fn events(State(streams): State<Streams>, headers: HeaderMap) -> Response {
    let Some(sid) = sid(&headers) else {
        return axum::http::StatusCode::UNAUTHORIZED.into_response();
    };
    let (tx, rx) = mpsc::unbounded_channel();
    streams.lock().expect("streams").insert(sid, tx);
    let feed = futures::stream::unfold(rx, |mut rx| async move {
        let e = rx.recv().await?;
        Some((Event::default().json_data(&*e), rx))
    })
    .map(|e| Ok::<_, Infallible>(e.unwrap_or_default()));
    Sse::new(feed).into_response()
}

async fn send(
    State(streams): State<Streams>,
    headers: HeaderMap,
    Json(req): Json<Send>,
) -> Response {
    let Some(sid) = sid(&headers) else {
        return axum::http::StatusCode::UNAUTHORIZED.into_response();
    };
    let now = now_ms();
    let new = req.thread_id.is_none();
    let thread = Thread {
        id: req.thread_id.unwrap_or_else(|| Uuid::new_v4().to_string()),
        title: req.content.chars().take(60).collect(),
        created_ms: now,
        updated_ms: now,
    };
    let message = |id: &str, role, content: &str, status| Message {
        id: id.to_owned(),
        thread_id: thread.id.clone(),
        role,
        content: content.to_owned(),
        created_ms: now,
        status,
        feedback: None,
        error: None,
        html: if content.is_empty() {
            String::new()
        } else {
            format!("<p>{content}</p>\n")
        },
    };
    let (user_id, reply_id) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let user = message(&user_id, "user", &req.content, "done");
    let reply = message(&reply_id, "assistant", "", "streaming");
    let tx = streams.lock().expect("streams").get(&sid).cloned();
    if let Some(tx) = tx {
        if new {
            let _ = tx.send(Arc::new(WireEvent::Thread {
                thread: thread.clone(),
            }));
        }
        for m in [
            user.clone(),
            reply.clone(),
            message(&reply_id, "assistant", &req.content, "done"),
        ] {
            let _ = tx.send(Arc::new(WireEvent::Message { message: m }));
        }
    }
    Json(Sent {
        user,
        reply,
        thread,
    })
    .into_response()
}

/// The routes the load's users call, at the paths Confide serves them.
pub fn routes() -> Router {
    Router::new()
        .route("/api/session/start", post(start))
        .route("/api/events", get(events))
        .route("/api/messages/send", post(send))
        .with_state(Streams::default())
}
