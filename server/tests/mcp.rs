//! MCP servers as tool sources, against a notes server the tests start themselves: over
//! Streamable HTTP in-process, and over stdio as the `mcp_notes` example's process.

mod common;

use common::{Browser, TestApp};
use confide_core::{
    assistant::ReplyContext,
    model::{StepKind, StepStatus},
    tools::{ToolContext, Tools},
};
use serde_json::{Value, json};
use server::{
    AppState, AssistantKind, Config, MemoryStore, StoreKind,
    mcp::{McpConfig, McpScope, McpServer, McpServerConfig},
    testing::{Scripted, notes_mcp_http, scripted_model},
};
use std::{sync::Arc, time::Duration};

/// The `mcp_notes` example's binary, which `cargo test` builds beside the tests.
fn notes_binary() -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> → target/<profile>/examples/mcp_notes
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join("mcp_notes"))
        .expect("the test binary is in target/<profile>/deps");
    assert!(
        path.exists(),
        "{} is missing: `cargo test -p server` builds it (the mcp_notes example)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

fn cx(session: &confide_core::UserSession) -> ToolContext {
    ToolContext::of(&ReplyContext::for_session(session.clone(), Vec::new()))
}

async fn tools_of(config: McpServerConfig, allowed: &[String]) -> (McpServer, Tools) {
    let server = McpServer::connect(config, allowed)
        .await
        .expect("the notes server connects");
    let tools = Tools::new().with_all(server.tools());
    (server, tools)
}

#[tokio::test]
async fn an_mcp_servers_tools_appear_like_registered_ones() {
    let url = notes_mcp_http().await.unwrap();
    let (_, tools) = tools_of(McpServerConfig::http("notes", url), &[]).await;
    let names: Vec<&str> = tools.names().collect();
    assert_eq!(
        names,
        ["add_note", "cancelled", "fail", "list_notes", "wait"]
    );
    let specs = tools.openai_specs();
    let add = specs
        .iter()
        .find(|s| s["function"]["name"] == "add_note")
        .unwrap();
    assert_eq!(add["function"]["description"], "Notes a text for later.");
    assert_eq!(
        add["function"]["parameters"]["properties"]["text"]["type"],
        "string"
    );
    let session = server::testing::user_session().await;
    assert_eq!(
        tools
            .call("add_note", r#"{"text":"milk"}"#, cx(&session))
            .await,
        Ok("Noted (1 in all).".into())
    );
    assert_eq!(
        tools.call("list_notes", "", cx(&session)).await,
        Ok("milk".into())
    );
    // The server's own error answer, and arguments it refuses, fail only the call.
    assert_eq!(
        tools.call("fail", "{}", cx(&session)).await.unwrap_err().0,
        "the notebook is on fire"
    );
    let refused = tools
        .call("add_note", r#"{"txt":1}"#, cx(&session))
        .await
        .unwrap_err();
    assert!(
        refused.0.starts_with("the MCP server refused the call: "),
        "{refused}"
    );
    assert_eq!(
        tools
            .call("add_note", "[1]", cx(&session))
            .await
            .unwrap_err()
            .0,
        "the arguments must be a JSON object"
    );
    // The connection survived the refusals.
    assert_eq!(
        tools.call("list_notes", "", cx(&session)).await,
        Ok("milk".into())
    );
}

#[tokio::test]
async fn each_browser_session_has_its_own_mcp_connection() {
    let url = notes_mcp_http().await.unwrap();
    let (server, tools) = tools_of(McpServerConfig::http("notes", url.clone()), &[]).await;
    let (a, b) = server::testing::two_user_sessions().await;
    tools
        .call("add_note", r#"{"text":"a's secret"}"#, cx(&a))
        .await
        .unwrap();
    assert_eq!(
        tools.call("list_notes", "", cx(&b)).await,
        Ok("No notes.".into()),
        "another session's calls do not reach this one's MCP session"
    );
    assert_eq!(
        tools.call("list_notes", "", cx(&a)).await,
        Ok("a's secret".into())
    );
    assert_eq!(server.open_sessions(), 2);

    // Shared, for a server that keeps nothing: one connection for everyone.
    let (_, shared) = tools_of(
        McpServerConfig::http("notes", url).scoped(McpScope::Shared),
        &[],
    )
    .await;
    shared
        .call("add_note", r#"{"text":"for all"}"#, cx(&a))
        .await
        .unwrap();
    assert_eq!(
        shared.call("list_notes", "", cx(&b)).await,
        Ok("for all".into())
    );
}

#[tokio::test]
async fn past_the_bound_the_least_recently_used_connection_is_closed() {
    let url = notes_mcp_http().await.unwrap();
    let mut config = McpServerConfig::http("notes", url);
    config.max_sessions = 2;
    let (server, tools) = tools_of(config, &[]).await;
    let sessions = [
        server::testing::user_session().await,
        server::testing::user_session().await,
        server::testing::user_session().await,
    ];
    for s in &sessions {
        tools
            .call("add_note", r#"{"text":"x"}"#, cx(s))
            .await
            .unwrap();
    }
    assert_eq!(server.open_sessions(), 2);
    // The first session's connection was the oldest: its next call starts afresh.
    assert_eq!(
        tools.call("list_notes", "", cx(&sessions[0])).await,
        Ok("No notes.".into())
    );
    assert_eq!(
        tools.call("list_notes", "", cx(&sessions[2])).await,
        Ok("x".into())
    );
}

#[tokio::test]
async fn a_dropped_call_is_cancelled_on_the_mcp_server() {
    let url = notes_mcp_http().await.unwrap();
    let (_, tools) = tools_of(
        McpServerConfig::http("notes", url).scoped(McpScope::Shared),
        &[],
    )
    .await;
    let session = server::testing::user_session().await;
    let waiting = tools.call("wait", "{}", cx(&session));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), waiting)
            .await
            .is_err(),
        "wait answers only when cancelled"
    );
    // The timeout dropped the call; the server is told and its tool ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if tools.call("cancelled", "", cx(&session)).await == Ok("1".into()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never heard of the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_stdio_server_starts_only_from_the_allow_list() {
    let binary = notes_binary();
    let config = McpServerConfig::stdio("notes", binary.clone(), &[]);
    let refused = McpServer::connect(config.clone(), &["uvx".into()])
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("not in [mcp] allowed_commands"),
        "{refused}"
    );

    let (server, tools) = tools_of(config, &[binary]).await;
    let (a, b) = server::testing::two_user_sessions().await;
    tools
        .call("add_note", r#"{"text":"stdio"}"#, cx(&a))
        .await
        .unwrap();
    assert_eq!(
        tools.call("list_notes", "", cx(&a)).await,
        Ok("stdio".into())
    );
    // One process per session: the other session's process has no notes.
    assert_eq!(
        tools.call("list_notes", "", cx(&b)).await,
        Ok("No notes.".into())
    );
    assert_eq!(server.open_sessions(), 2);
}

#[tokio::test]
async fn a_server_that_cannot_be_reached_stops_the_start() {
    let port = common::free_port();
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).unwrap();
    let mcp = McpConfig {
        servers: vec![McpServerConfig::http("gone", url)],
        ..Default::default()
    };
    let e = mcp.connect().await.unwrap_err().to_string();
    assert!(e.contains("MCP server \"gone\""), "{e}");

    let missing = McpConfig {
        allowed_commands: vec!["/nonexistent/mcp".into()],
        servers: vec![McpServerConfig::stdio("nope", "/nonexistent/mcp", &[])],
    };
    let e = missing.connect().await.unwrap_err().to_string();
    assert!(e.contains("cannot start"), "{e}");
}

/// The model: "note: X" calls `add_note`, "notes?" calls `list_notes`, and a tool's
/// result comes back as the answer.
fn script(messages: &[Value]) -> Scripted {
    let last = messages.last().cloned().unwrap_or_default();
    if last["role"] == "tool" {
        return Scripted::Say(format!("Tool: {}", last["content"].as_str().unwrap_or("")));
    }
    let q = last["content"].as_str().unwrap_or("");
    match q.strip_prefix("note: ") {
        Some(text) => Scripted::Call {
            name: "add_note".into(),
            arguments: json!({ "text": text }),
        },
        None => Scripted::Call {
            name: "list_notes".into(),
            arguments: json!({}),
        },
    }
}

/// The `confide` server as configured: the OpenAI-compatible assistant and `[mcp]`.
async fn spawn_configured(mcp: McpConfig) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        addr: listener.local_addr().unwrap(),
        store: StoreKind::Memory,
        assistant: AssistantKind::Openai,
        openai_base_url: Some(scripted_model(script).await.unwrap()),
        mcp,
        ..Config::default()
    };
    let state = AppState::from_config(config).await.expect("the app starts");
    assert_eq!(state.mcp_tools.names().count(), 5);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = server::serve(listener, state, async {
            let _ = rx.await;
        })
        .await;
    });
    // The app's own store is inside the state; the tests look through the API only.
    let unused = Arc::new(MemoryStore::new(server::lifetimes(&Config::default())));
    common::test_app(base, unused, tx)
}

async fn ask(app: &TestApp, b: &mut Browser, text: &str) -> Value {
    let sent = b
        .call(app, "messages/send", json!({ "content": text }))
        .await;
    assert!(sent.status.is_success(), "{:?}", sent.body);
    let tid = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let t = common::settled(app, b, &tid).await;
    t["messages"].as_array().unwrap().last().unwrap().clone()
}

#[tokio::test]
async fn configured_mcp_tools_answer_each_browser_on_one_address_apart() {
    let binary = notes_binary();
    let app = spawn_configured(McpConfig {
        allowed_commands: vec![binary.clone()],
        servers: vec![McpServerConfig::stdio("notes", binary, &[])],
    })
    .await;
    let (mut a, mut b) = (Browser::new(), Browser::new());
    let reply = ask(&app, &mut a, "note: the door code is 4711").await;
    assert_eq!(reply["status"], "done", "{reply}");
    assert_eq!(reply["content"], "Tool: Noted (1 in all).");
    let step = &reply["steps"][0];
    assert_eq!(step["name"], "add_note");
    assert_eq!(
        serde_json::from_value::<StepKind>(step["kind"].clone()).unwrap(),
        StepKind::Tool
    );
    assert_eq!(
        serde_json::from_value::<StepStatus>(step["status"].clone()).unwrap(),
        StepStatus::Done
    );
    assert_eq!(step["output"], "Noted (1 in all).");

    let other = ask(&app, &mut b, "notes?").await;
    assert_eq!(other["content"], "Tool: No notes.", "{other}");
    let mine = ask(&app, &mut a, "notes?").await;
    assert_eq!(mine["content"], "Tool: the door code is 4711");
}

#[tokio::test]
async fn a_call_past_its_timeout_fails_and_idle_connections_close_without_calls() {
    let url = notes_mcp_http().await.unwrap();
    let mut config = McpServerConfig::http("notes", url);
    config.timeout = Duration::from_millis(500);
    config.idle = Duration::from_millis(400);
    let (server, tools) = tools_of(config, &[]).await;
    let session = server::testing::user_session().await;
    let late = tools.call("wait", "{}", cx(&session)).await.unwrap_err();
    assert_eq!(late.0, "the MCP server \"notes\" did not answer in time");
    assert_eq!(server.open_sessions(), 1);
    // No call comes; the sweeper closes the idle connection anyway.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.open_sessions() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
