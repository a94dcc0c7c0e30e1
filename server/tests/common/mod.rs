//! Spawns the real application on a random port and talks to it over HTTP, as a browser
//! would, keeping each simulated browser's cookies by hand.
#![allow(dead_code)]

pub mod fake_oidc;

use reqwest::{StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use server::{AppState, Config, MemoryStore, serve};
use std::sync::Arc;
use tokio::{net::TcpListener, sync::oneshot};

pub const PROOF_COOKIE: &str = "__Host-confide_proof";

pub struct TestApp {
    pub base: String,
    pub store: Arc<MemoryStore>,
    pub http: reqwest::Client,
    /// The app's file store, when the app runs in this process.
    pub files: Option<Arc<confide_core::files::FileStore>>,
    /// The app's accounts, when the app runs in this process (what `confide user` does).
    pub auth: Option<Arc<confide_core::auth::Auth>>,
    _stop: oneshot::Sender<()>,
}

impl TestApp {
    /// How many files anything is kept of for session `sid` (a test's look behind the API).
    pub async fn state_files_kept(&self, sid: &str) -> usize {
        let files = self.files.as_ref().expect("an in-process app");
        let sid = confide_core::SessionId::parse(sid).expect("a session id");
        files
            .count_kept(&sid)
            .await
            .expect("the file store answers")
    }
}

pub async fn spawn() -> TestApp {
    spawn_with(Config::default()).await
}

/// The port of a listener that was just closed: free for a child process to take.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn spawn_with(config: Config) -> TestApp {
    let store = Arc::new(MemoryStore::new(server::lifetimes(&config)));
    spawn_with_store(config, store.clone(), store).await
}

/// Serves the app on a random port with the given store; `memory` is what tests inspect.
pub async fn spawn_with_store(
    config: Config,
    store: Arc<dyn confide_core::SessionStore>,
    memory: Arc<MemoryStore>,
) -> TestApp {
    spawn_app(config, store, memory, None).await
}

/// Serves an application's own assistant (the author's handler) on a memory store.
pub async fn spawn_with_assistant(
    config: Config,
    assistant: Arc<dyn confide_core::assistant::Assistant>,
) -> TestApp {
    let store = Arc::new(MemoryStore::new(server::lifetimes(&config)));
    spawn_app(config, store.clone(), store, Some(assistant)).await
}

async fn spawn_app(
    mut config: Config,
    store: Arc<dyn confide_core::SessionStore>,
    memory: Arc<MemoryStore>,
    assistant: Option<Arc<dyn confide_core::assistant::Assistant>>,
) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    config.addr = listener.local_addr().unwrap();
    let mut state = AppState::new(config, store).expect("valid test config");
    if let Some(a) = assistant {
        state = state.with_assistant(a);
    }
    let files = Some(state.files.clone());
    let auth = Some(state.auth.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        serve(listener, state, async {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    TestApp {
        base,
        store: memory,
        http,
        files,
        auth,
        _stop: tx,
    }
}

/// Wraps a server already running at `base` (stopped when `stop` is dropped).
pub fn test_app(base: String, store: Arc<MemoryStore>, stop: oneshot::Sender<()>) -> TestApp {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    TestApp {
        base,
        store,
        http,
        files: None,
        auth: None,
        _stop: stop,
    }
}

/// Anything a simulated browser can talk to: an in-process app or a child process.
pub trait Endpoint {
    fn base(&self) -> &str;
    fn http(&self) -> &reqwest::Client;
}

impl Endpoint for TestApp {
    fn base(&self) -> &str {
        &self.base
    }
    fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// The real `confide` binary as a child process (killed when dropped).
pub struct ChildServer {
    pub base: String,
    pub http: reqwest::Client,
    pub child: tokio::process::Child,
}

impl Endpoint for ChildServer {
    fn base(&self) -> &str {
        &self.base
    }
    fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

impl ChildServer {
    /// Starts the binary with `CONFIDE_*` settings and waits for `/healthz`.
    pub async fn launch(env: &[(&str, String)]) -> ChildServer {
        let port = free_port();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_confide"));
        cmd.env("CONFIDE_ADDR", format!("127.0.0.1:{port}"))
            .env("CONFIDE_CONFIG", "/nonexistent/confide.toml")
            .env("CONFIDE_LOG", "warn")
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("the confide binary starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "confide did not come up on {base}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        ChildServer { base, http, child }
    }

    /// SIGKILL: no shutdown, no flushing.
    pub async fn kill_hard(mut self) {
        self.child.kill().await.expect("kill");
    }
}

/// What one answer looked like.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// The proof the server issued in this answer, if any.
    pub fn issued_proof(&self) -> Option<String> {
        self.headers.get_all("set-cookie").iter().find_map(|v| {
            let s = v.to_str().ok()?;
            let rest = s.strip_prefix(&format!("{PROOF_COOKIE}="))?;
            Some(rest.split(';').next()?.to_owned())
        })
    }
}

/// One simulated browser profile: its session id and the proof cookie it was given.
#[derive(Clone, Debug)]
pub struct Browser {
    pub sid: String,
    pub proof: Option<String>,
}

impl Browser {
    pub fn new() -> Self {
        Self {
            sid: uuid::Uuid::new_v4().to_string(),
            proof: None,
        }
    }

    pub fn cookie_header(&self) -> String {
        match &self.proof {
            Some(p) => format!("__Host-confide_sid={}; {PROOF_COOKIE}={p}", self.sid),
            None => format!("__Host-confide_sid={}", self.sid),
        }
    }

    /// Calls a server function as the Confide client does: header + cookies + JSON body.
    pub async fn call(&mut self, app: &impl Endpoint, endpoint: &str, body: Value) -> Reply {
        let req = app
            .http()
            .post(format!("{}/api/{endpoint}", app.base()))
            .header("x-confide-session", &self.sid)
            .header("cookie", self.cookie_header())
            .json(&body);
        let reply = send(req).await;
        if let Some(p) = reply.issued_proof() {
            self.proof = Some(p);
        }
        reply
    }

    pub async fn start(&mut self, app: &impl Endpoint) -> Reply {
        self.call(app, "session/start", json!({})).await
    }

    pub async fn get_note(&mut self, app: &impl Endpoint) -> Reply {
        self.call(app, "notes/get", json!({})).await
    }

    pub async fn set_note(&mut self, app: &impl Endpoint, text: &str) -> Reply {
        self.call(app, "notes/set", json!({ "text": text })).await
    }
}

/// Serves the app on a SQLite store in the file `db` (what the tests inspect of memory stays
/// empty).
pub async fn spawn_on_sqlite(config: Config, db: &std::path::Path) -> TestApp {
    let store = Arc::new(
        server::SqliteStore::open(
            db,
            server::lifetimes(&config),
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap(),
    );
    let unused = Arc::new(MemoryStore::new(server::lifetimes(&config)));
    spawn_with_store(config, store, unused).await
}

/// A new browser whose session has started.
pub async fn started(app: &impl Endpoint) -> Browser {
    let mut b = Browser::new();
    assert_eq!(b.start(app).await.status, StatusCode::OK);
    b
}

/// A password the sign-in policy accepts.
pub const PW: &str = "correct horse battery";

/// Takes on the session a successful sign-in created (its proof came as a cookie).
pub fn adopt(b: &mut Browser, r: &Reply) {
    assert_eq!(r.status, StatusCode::OK, "sign-in failed: {}", r.body);
    b.sid = r.body["session_id"]
        .as_str()
        .expect("new session id")
        .to_owned();
}

/// A new browser that registered `name` (with `PW`) and took on the renewed session.
pub async fn register(app: &impl Endpoint, name: &str) -> Browser {
    let mut b = started(app).await;
    let r = b
        .call(
            app,
            "auth/register",
            json!({ "username": name, "password": PW }),
        )
        .await;
    adopt(&mut b, &r);
    b
}

/// The body of a successful answer; fails the test on any other.
pub fn ok(r: Reply) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

pub async fn send(req: reqwest::RequestBuilder) -> Reply {
    let res = req.send().await.expect("request reaches the server");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply {
        status,
        headers,
        body,
    }
}

/// Polls a thread until no message in it is still streaming; returns the thread.
pub async fn settled(app: &impl Endpoint, b: &mut Browser, thread: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let t = b
            .call(app, "threads/get", json!({ "thread_id": thread }))
            .await;
        // Polling is not what the session's rate limit is for; a long reply may still meet it.
        if t.status == StatusCode::TOO_MANY_REQUESTS {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        }
        assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
        let streaming = t.body["messages"]
            .as_array()
            .is_none_or(|m| m.iter().any(|m| m["status"] == "streaming"));
        if !streaming {
            return t.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "reply did not finish: {}",
            t.body
        );
        // Well under the session's 20 requests a second.
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }
}

/// Two requests that raced for one chat: each went through or answered 409 `busy`, and at
/// least one went through.
pub fn assert_one_or_both_went_through(a: &Reply, b: &Reply, round: usize) {
    for r in [a, b] {
        assert!(
            r.status == StatusCode::OK || (r.status == StatusCode::CONFLICT && r.code() == "busy"),
            "round {round}: {:?}",
            r.body
        );
    }
    assert!(
        a.status == StatusCode::OK || b.status == StatusCode::OK,
        "round {round}: neither went through"
    );
}

/// Checks a settled chat that two tabs took turns in at once, with the echo assistant pausing
/// `delay` between words: every reply follows the question it echoes, and no turn began before
/// the reply ahead of it had finished. A reply of n words streams for at least (n - 1) × `delay`,
/// so a question made sooner after that reply began was admitted while it still streamed: both
/// turns had read the same end of the chat.
pub fn assert_turns_in_order(chat: &Value, delay: std::time::Duration, round: usize) {
    let messages = chat["messages"].as_array().expect("messages");
    for (i, m) in messages.iter().enumerate() {
        if m["role"] != "assistant" {
            continue;
        }
        let asked = i.checked_sub(1).map(|q| &messages[q]);
        assert!(
            asked.is_some_and(|q| q["role"] == "user" && q["content"] == m["content"]),
            "round {round}: reply {i} does not follow its question: {chat}"
        );
        let Some(next) = messages.get(i + 1) else {
            continue;
        };
        let words = m["content"]
            .as_str()
            .unwrap_or("")
            .split_whitespace()
            .count();
        let streamed = delay.as_millis() as i64 * words.saturating_sub(1) as i64;
        let gap = next["created_ms"].as_i64().unwrap_or(0) - m["created_ms"].as_i64().unwrap_or(0);
        assert!(
            gap >= streamed,
            "round {round}: message {} came {gap} ms after reply {i} began, which streamed for \
             at least {streamed} ms: {chat}",
            i + 1
        );
    }
}

/// Runs `confide ARGS` on `store` with `stdin`; whether it succeeded, and what it printed.
pub fn confide(store: &str, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_confide"))
        .args(args)
        .env("CONFIDE_CONFIG", "/nonexistent/confide.toml")
        .env("CONFIDE_STORE", store)
        .env("CONFIDE_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A page load (`GET /`) as the browser holding `cookie` makes it, bounded by `timeout`: a
/// render that never finishes is a failure to report, not a run that hangs.
pub fn page_request(
    app: &TestApp,
    cookie: &str,
    timeout: std::time::Duration,
) -> reqwest::RequestBuilder {
    app.http
        .get(format!("{}/", app.base))
        .header("cookie", cookie)
        .timeout(timeout)
}
