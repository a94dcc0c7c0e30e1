//! Spawns the real application on a random port and talks to it over HTTP, as a browser
//! would, keeping each simulated browser's cookies by hand.
#![allow(dead_code)]

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
    _stop: oneshot::Sender<()>,
}

pub async fn spawn() -> TestApp {
    spawn_with(Config::default()).await
}

pub async fn spawn_with(mut config: Config) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
    config.addr = listener.local_addr().unwrap();
    let store = Arc::new(MemoryStore::new(server::lifetimes(&config)));
    let state = AppState::new(config, store.clone()).expect("valid test config");
    let (tx, rx) = oneshot::channel::<()>();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        serve(listener, state, async {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    TestApp { base, store, http, _stop: tx }
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
        Self { sid: uuid::Uuid::new_v4().to_string(), proof: None }
    }

    pub fn cookie_header(&self) -> String {
        match &self.proof {
            Some(p) => format!("confide_sid={}; {PROOF_COOKIE}={p}", self.sid),
            None => format!("confide_sid={}", self.sid),
        }
    }

    /// Calls a server function as the Confide client does: header + cookies + JSON body.
    pub async fn call(&mut self, app: &TestApp, endpoint: &str, body: Value) -> Reply {
        let req = app
            .http
            .post(format!("{}/api/{endpoint}", app.base))
            .header("x-confide-session", &self.sid)
            .header("cookie", self.cookie_header())
            .json(&body);
        let reply = send(req).await;
        if let Some(p) = reply.issued_proof() {
            self.proof = Some(p);
        }
        reply
    }

    pub async fn start(&mut self, app: &TestApp) -> Reply {
        self.call(app, "session/start", json!({})).await
    }

    pub async fn get_note(&mut self, app: &TestApp) -> Reply {
        self.call(app, "notes/get", json!({})).await
    }

    pub async fn set_note(&mut self, app: &TestApp, text: &str) -> Reply {
        self.call(app, "notes/set", json!({ "text": text })).await
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Reply {
    let res = req.send().await.expect("request reaches the server");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply { status, headers, body }
}
