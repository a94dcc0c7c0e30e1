//! Confide's load runner: simulated users, each a browser with its own session id and
//! proof, talking to a running server exactly as the web client does (server functions
//! with the session header, replies followed on the session's event stream).
//!
//! Every run checks isolation: a user may only ever see its own text. Any event carrying
//! text that is not the user's own, or a reply that is not the user's own text back (the
//! echo assistant), counts as an isolation failure.

pub mod client;
pub mod procs;
pub mod soak;

use client::Browser;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Base URLs of the servers; user `i` talks to `bases[i % len]` for even turns and the
    /// next one for odd turns, so with two instances every user alternates between them.
    pub bases: Vec<String>,
    pub users: usize,
    pub turns: usize,
    /// Bound on one reply.
    pub reply_timeout: Duration,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub users: usize,
    pub turns: usize,
    pub messages: usize,
    pub failed_turns: usize,
    pub isolation_failures: usize,
    pub elapsed_s: f64,
    pub msgs_per_s: f64,
    pub latency_ms: Percentiles,
    pub session_ready_ms: Percentiles,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i].as_secs_f64() * 1000.0
        };
        Self {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// The events of one session's stream that matter here: messages, by id.
async fn follow_events(
    http: reqwest::Client,
    base: String,
    cookie: String,
    tx: mpsc::UnboundedSender<Value>,
) {
    let Ok(res) = http
        .get(format!("{base}/api/events"))
        .header("cookie", cookie)
        .send()
        .await
    else {
        return;
    };
    // The server subscribes before it answers, so from here on no event can be missed.
    if !res.status().is_success() || tx.send(json!({ "type": "__subscribed" })).is_err() {
        return;
    }
    let mut body = res.bytes_stream();
    let mut buf = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            for data in frame.lines().filter_map(|l| l.strip_prefix("data: ")) {
                if let Ok(v) = serde_json::from_str::<Value>(data)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        }
    }
}

struct UserResult {
    ready: Option<Duration>,
    latencies: Vec<Duration>,
    failed: usize,
    isolation_failures: usize,
    errors: Vec<String>,
}

/// Text a user sends: its own prefix, a per-session counter and a random token.
fn text_for(user: usize, turn: usize, token: &str) -> String {
    format!("user{user} turn{turn} {token}")
}

/// Whether an event's text (if any) could only have come from this user.
fn foreign_text(event: &Value, own_prefix: &str) -> bool {
    let texts: Vec<&str> = match event["type"].as_str() {
        Some("message") => vec![event["message"]["content"].as_str().unwrap_or("")],
        Some("delta") => vec![event["content"].as_str().unwrap_or("")],
        Some("thread") => vec![event["thread"]["title"].as_str().unwrap_or("")],
        _ => vec![],
    };
    texts
        .into_iter()
        .any(|t| !t.is_empty() && !t.starts_with(own_prefix))
}

async fn one_user(cfg: LoadConfig, http: reqwest::Client, user: usize) -> UserResult {
    let mut r = UserResult {
        ready: None,
        latencies: Vec::new(),
        failed: 0,
        isolation_failures: 0,
        errors: Vec::new(),
    };
    let mut b = Browser::new();
    let base_for = |turn: usize| cfg.bases[(user + turn) % cfg.bases.len()].clone();
    let own_prefix = format!("user{user} ");

    let t0 = Instant::now();
    if let Err(e) = b
        .call(&http, &base_for(0), "session/start", json!({}))
        .await
    {
        r.errors.push(e);
        r.failed = cfg.turns;
        return r;
    }
    r.ready = Some(t0.elapsed());

    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = tokio::spawn(follow_events(http.clone(), base_for(0), b.cookie(), tx));
    match tokio::time::timeout(cfg.reply_timeout, rx.recv()).await {
        Ok(Some(e)) if e["type"] == "__subscribed" => {}
        _ => {
            r.errors
                .push(format!("user {user}: the event stream did not open"));
            r.failed = cfg.turns;
            listener.abort();
            return r;
        }
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut thread: Option<String> = None;
    let mut seen: HashMap<String, Value> = HashMap::new();

    for turn in 0..cfg.turns {
        let text = text_for(user, turn, &token);
        let started = Instant::now();
        let body = match &thread {
            Some(t) => json!({ "thread_id": t, "content": text }),
            None => json!({ "content": text }),
        };
        let sent = match b.call(&http, &base_for(turn), "messages/send", body).await {
            Ok(v) => v,
            Err(e) => {
                r.failed += 1;
                r.errors.push(e);
                continue;
            }
        };
        thread = sent["thread"]["id"].as_str().map(str::to_owned);
        let Some(reply_id) = sent["reply"]["id"].as_str().map(str::to_owned) else {
            r.failed += 1;
            continue;
        };
        // The reply is complete when its final message event arrives (it may already have).
        let deadline = tokio::time::Instant::now() + cfg.reply_timeout;
        let finished = loop {
            if let Some(m) = seen.get(&reply_id).filter(|m| m["status"] != "streaming") {
                break Some(m.clone());
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(event)) => {
                    if foreign_text(&event, &own_prefix) {
                        r.isolation_failures += 1;
                        r.errors
                            .push(format!("user {user} saw foreign content: {event}"));
                    }
                    if event["type"] == "message"
                        && let Some(id) = event["message"]["id"].as_str()
                    {
                        seen.insert(id.to_owned(), event["message"].clone());
                    }
                }
                _ => break None,
            }
        };
        match finished {
            Some(m) if m["status"] == "done" => {
                r.latencies.push(started.elapsed());
                if m["content"].as_str() != Some(text.as_str()) {
                    r.isolation_failures += 1;
                    r.errors.push(format!(
                        "user {user} got a reply that is not its own text: {m}"
                    ));
                }
            }
            Some(m) => {
                r.failed += 1;
                r.errors.push(format!("reply ended as {}", m["status"]));
            }
            None => {
                r.failed += 1;
                r.errors.push(format!(
                    "user {user}: no complete reply within {:?}",
                    cfg.reply_timeout
                ));
            }
        }
    }
    listener.abort();
    r
}

/// Runs the load: every user starts at once, one turn in flight per user.
pub async fn run(cfg: LoadConfig) -> Report {
    assert!(!cfg.bases.is_empty(), "at least one server");
    // No client-wide timeout: event streams live for the whole run; replies are bounded
    // by `reply_timeout` instead.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(cfg.users * 2)
        .build()
        .expect("HTTP client");
    let started = Instant::now();
    let tasks: Vec<_> = (0..cfg.users)
        .map(|u| {
            let cfg = cfg.clone();
            let http = http.clone();
            tokio::spawn(async move { one_user(cfg, http, u).await })
        })
        .collect();
    let mut report = Report {
        users: cfg.users,
        turns: cfg.turns,
        ..Report::default()
    };
    let mut latencies = Vec::new();
    let mut ready = Vec::new();
    for t in tasks {
        match t.await {
            Ok(u) => {
                latencies.extend(u.latencies);
                ready.extend(u.ready);
                report.failed_turns += u.failed;
                report.isolation_failures += u.isolation_failures;
                report.errors.extend(u.errors.into_iter().take(3));
            }
            Err(e) => report.errors.push(format!("user task failed: {e}")),
        }
    }
    let elapsed = started.elapsed();
    report.messages = latencies.len();
    report.elapsed_s = elapsed.as_secs_f64();
    report.msgs_per_s = report.messages as f64 / elapsed.as_secs_f64().max(1e-9);
    report.latency_ms = Percentiles::of(&mut latencies);
    report.session_ready_ms = Percentiles::of(&mut ready);
    report.errors.truncate(20);
    report
}

/// The floor to compare with: a bare axum JSON echo, the same client shape (one request in
/// flight per user, `turns` requests each).
pub async fn run_baseline(base: &str, users: usize, turns: usize) -> (f64, Percentiles) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(users)
        .build()
        .expect("HTTP client");
    let started = Instant::now();
    let tasks: Vec<_> = (0..users)
        .map(|u| {
            let http = http.clone();
            let url = format!("{base}/echo");
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(turns);
                for t in 0..turns {
                    let text = text_for(u, t, "baseline");
                    let s = Instant::now();
                    let ok = match http
                        .post(&url)
                        .json(&json!({ "content": text }))
                        .send()
                        .await
                    {
                        Ok(res) => res
                            .json::<Value>()
                            .await
                            .ok()
                            .is_some_and(|v| v["content"] == text.as_str()),
                        Err(_) => false,
                    };
                    if ok {
                        lat.push(s.elapsed());
                    }
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
    (rate, Percentiles::of(&mut all))
}

/// The bare axum echo endpoint the baseline measures.
pub fn baseline_app() -> axum::Router {
    axum::Router::new()
        .route(
            "/echo",
            axum::routing::post(|axum::Json(v): axum::Json<Value>| async move { axum::Json(v) }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_samples() {
        let mut s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut s);
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&mut []).max, 0.0);
    }

    #[test]
    fn foreign_text_is_detected() {
        let own = "user3 ";
        assert!(!foreign_text(
            &json!({"type":"message","message":{"content":"user3 turn0 x"}}),
            own
        ));
        assert!(foreign_text(
            &json!({"type":"message","message":{"content":"user4 turn0 x"}}),
            own
        ));
        assert!(foreign_text(
            &json!({"type":"delta","content":"user30 turn1"}),
            own
        ));
        assert!(
            !foreign_text(&json!({"type":"message","message":{"content":""}}), own),
            "an empty reply placeholder is fine"
        );
        assert!(!foreign_text(&json!({"type":"resync"}), own));
    }
}
