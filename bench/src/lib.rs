//! Confide's load runner: simulated users, each a browser with its own session id and
//! proof, talking to a running server exactly as the web client does (server functions
//! with the session header, replies followed on the session's event stream).
//!
//! Every run checks isolation: a user may only ever see its own text. Any event carrying
//! text that is not the user's own, or a reply that is not the user's own text back (the
//! echo assistant), counts as an isolation failure.

pub mod client;
/// The throwaway PostgreSQL server of the server's own tests, shared so the load and soak
/// tools start it the same way.
#[path = "../../server/src/store/postgres_test_support.rs"]
pub mod postgres;
pub mod procs;
/// The throwaway Redis Cluster of the server's own tests, for the soak.
#[allow(dead_code, unreachable_pub)]
#[path = "../../server/src/store/redis_test_support.rs"]
pub mod redis_cluster;
pub mod soak;
pub mod wire;

use client::Browser;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::{Barrier, mpsc};

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

/// What the load checks of a stream event: every field that carries a person's text. Parsed
/// into this rather than a `serde_json::Value`, so the client spends its time on load, not
/// on building maps (the rendered HTML and the rest are skipped unread).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    message: Option<EventMessage>,
    content: Option<String>,
    /// Set on a delta that carries only the text after this many bytes.
    from: Option<usize>,
    thread: Option<EventThread>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct EventMessage {
    id: String,
    content: String,
    status: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EventThread {
    title: String,
}

enum Heard {
    Subscribed,
    Event(Event),
}

/// The events of one session's stream that matter here: messages, by id.
async fn follow_events(
    http: reqwest::Client,
    base: String,
    cookie: String,
    tx: mpsc::UnboundedSender<Heard>,
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
    if !res.status().is_success() || tx.send(Heard::Subscribed).is_err() {
        return;
    }
    let mut body = res.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        buf.extend_from_slice(&chunk);
        let mut done = 0;
        while let Some(end) = buf[done..].windows(2).position(|w| w == b"\n\n") {
            let frame = &buf[done..done + end];
            for data in frame
                .split(|&b| b == b'\n')
                .filter_map(|l| l.strip_prefix(b"data: "))
            {
                if let Ok(e) = serde_json::from_slice::<Event>(data)
                    && tx.send(Heard::Event(e)).is_err()
                {
                    return;
                }
            }
            done += end + 2;
        }
        buf.drain(..done);
    }
}

struct UserResult {
    ready: Option<Duration>,
    /// When this user's chat turns began (after every user was set up) and ended.
    turns_from: Option<Instant>,
    turns_to: Option<Instant>,
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
fn foreign_text(event: &Event, own_prefix: &str) -> bool {
    let text = match event.kind.as_str() {
        "message" => event.message.as_ref().map(|m| m.content.as_str()),
        // Only a whole delta starts with the text's start; the messages carry it whole.
        "delta" if event.from.is_none() => event.content.as_deref(),
        "thread" => event.thread.as_ref().map(|t| t.title.as_str()),
        _ => None,
    };
    text.is_some_and(|t| !t.is_empty() && !t.starts_with(own_prefix))
}

async fn one_user(
    cfg: LoadConfig,
    http: reqwest::Client,
    user: usize,
    gate: Arc<Barrier>,
) -> UserResult {
    let mut r = UserResult {
        ready: None,
        turns_from: None,
        turns_to: None,
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
        gate.wait().await;
        return r;
    }
    r.ready = Some(t0.elapsed());

    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = tokio::spawn(follow_events(http.clone(), base_for(0), b.cookie(), tx));
    match tokio::time::timeout(cfg.reply_timeout, rx.recv()).await {
        Ok(Some(Heard::Subscribed)) => {}
        _ => {
            r.errors
                .push(format!("user {user}: the event stream did not open"));
            r.failed = cfg.turns;
            listener.abort();
            gate.wait().await;
            return r;
        }
    }
    // Every user is set up before any turn starts, so the turn rate is measured apart from
    // session set-up (reported as session-ready time).
    gate.wait().await;
    r.turns_from = Some(Instant::now());
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut thread: Option<String> = None;
    let mut seen: HashMap<String, EventMessage> = HashMap::new();

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
            if seen.get(&reply_id).is_some_and(|m| m.status != "streaming") {
                break seen.remove(&reply_id);
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Heard::Event(event))) => {
                    if foreign_text(&event, &own_prefix) {
                        r.isolation_failures += 1;
                        r.errors
                            .push(format!("user {user} saw foreign content: {event:?}"));
                    }
                    if event.kind == "message"
                        && let Some(m) = event.message
                    {
                        seen.insert(m.id.clone(), m);
                    }
                }
                Ok(Some(Heard::Subscribed)) => {}
                _ => break None,
            }
        };
        match finished {
            Some(m) if m.status == "done" => {
                r.latencies.push(started.elapsed());
                if m.content != text {
                    r.isolation_failures += 1;
                    r.errors.push(format!(
                        "user {user} got a reply that is not its own text: {m:?}"
                    ));
                }
            }
            Some(m) => {
                r.failed += 1;
                r.errors.push(format!("reply ended as {}", m.status));
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
    r.turns_to = Some(Instant::now());
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
    let gate = Arc::new(Barrier::new(cfg.users));
    let tasks: Vec<_> = (0..cfg.users)
        .map(|u| {
            let cfg = cfg.clone();
            let http = http.clone();
            let gate = gate.clone();
            tokio::spawn(async move { one_user(cfg, http, u, gate).await })
        })
        .collect();
    let mut report = Report {
        users: cfg.users,
        turns: cfg.turns,
        ..Report::default()
    };
    let mut latencies = Vec::new();
    let mut ready = Vec::new();
    let mut span = Span::default();
    for t in tasks {
        match t.await {
            Ok(u) => {
                span.add(u.turns_from, u.turns_to);
                latencies.extend(u.latencies);
                ready.extend(u.ready);
                report.failed_turns += u.failed;
                report.isolation_failures += u.isolation_failures;
                report.errors.extend(u.errors.into_iter().take(3));
            }
            Err(e) => report.errors.push(format!("user task failed: {e}")),
        }
    }
    let elapsed = span.duration();
    report.messages = latencies.len();
    report.elapsed_s = elapsed.as_secs_f64();
    report.msgs_per_s = report.messages as f64 / elapsed.as_secs_f64().max(1e-9);
    report.latency_ms = Percentiles::of(&mut latencies);
    report.session_ready_ms = Percentiles::of(&mut ready);
    report.errors.truncate(20);
    report
}

/// From the first user's first measured request to the last user's last answer.
#[derive(Default)]
struct Span {
    from: Option<Instant>,
    to: Option<Instant>,
}

impl Span {
    fn add(&mut self, from: Option<Instant>, to: Option<Instant>) {
        self.from = match (self.from, from) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.to = self.to.max(to);
    }

    fn duration(&self) -> Duration {
        match (self.from, self.to) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        }
    }
}

/// The floor to compare with: a bare axum JSON echo, the same client shape (one request in
/// flight per user, `turns` requests each).
pub async fn run_baseline(base: &str, users: usize, turns: usize) -> (f64, Percentiles) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(users)
        .build()
        .expect("HTTP client");
    let gate = Arc::new(Barrier::new(users));
    let tasks: Vec<_> = (0..users)
        .map(|u| {
            let http = http.clone();
            let url = format!("{base}/echo");
            let gate = gate.clone();
            tokio::spawn(async move {
                // The connection is opened outside the measured part, as a session is
                // set up outside it in `run`.
                let _ = http
                    .post(&url)
                    .json(&json!({ "content": "warm-up" }))
                    .send()
                    .await;
                gate.wait().await;
                let from = Instant::now();
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
                (lat, from, Instant::now())
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut span = Span::default();
    for t in tasks {
        if let Ok((lat, from, to)) = t.await {
            span.add(Some(from), Some(to));
            all.extend(lat);
        }
    }
    let rate = all.len() as f64 / span.duration().as_secs_f64().max(1e-9);
    (rate, Percentiles::of(&mut all))
}

/// The bare axum echo endpoint the baseline measures, and beside it the bare server of
/// Confide's wire (`wire`), the second baseline.
pub fn baseline_app() -> axum::Router {
    wire::routes()
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

    fn ev(v: Value) -> Event {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn foreign_text_is_detected() {
        let own = "user3 ";
        assert!(!foreign_text(
            &ev(json!({"type":"message","message":{"content":"user3 turn0 x"}})),
            own
        ));
        assert!(foreign_text(
            &ev(json!({"type":"message","message":{"content":"user4 turn0 x"}})),
            own
        ));
        assert!(foreign_text(
            &ev(json!({"type":"delta","content":"user30 turn1"})),
            own
        ));
        assert!(
            !foreign_text(&ev(json!({"type":"message","message":{"content":""}})), own),
            "an empty reply placeholder is fine"
        );
        assert!(!foreign_text(&ev(json!({"type":"resync"})), own));
        assert!(
            !foreign_text(
                &ev(json!({"type":"delta","content":" more words","from":12,"keep":20})),
                own
            ),
            "a delta's added text does not start with the text's start"
        );
    }
}
