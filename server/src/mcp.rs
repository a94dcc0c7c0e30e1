//! Tools from MCP servers: each tool an MCP server lists becomes a [`Tool`] the model can
//! call, shown as a step like a registered one.
//!
//! Servers are reached over Streamable HTTP (`url`) or started as a child process speaking
//! stdio (`command`), the latter only when the command is in `allowed_commands`. Configured
//! in `confide.toml`:
//!
//! ```toml
//! [mcp]
//! allowed_commands = ["uvx"]
//!
//! [[mcp.servers]]
//! name = "fetch"
//! command = "uvx"
//! args = ["mcp-server-fetch"]
//!
//! [[mcp.servers]]
//! name = "docs"
//! url = "https://mcp.example.com/mcp"
//! bearer_token_env = "DOCS_MCP_TOKEN"
//! scope = "shared"
//! ```
//!
//! An MCP server may keep state per connection (notes, a browser, a shell). So by default
//! each browser session gets its own connection (`scope = "session"`), made on its first
//! call and closed after `idle` without one: what one person's calls leave in the server
//! another person's calls cannot see. `scope = "shared"` uses one connection for everyone
//! and suits servers that keep nothing.

use crate::{ConfigError, assistant::Secret};
use async_trait::async_trait;
use confide_core::tools::{Tool, ToolContext, ToolError, Tools, valid_name};
use rmcp::{
    ServiceExt,
    model::{CallToolRequestParams, ClientConfig, ContentBlock, Implementation},
    service::{RoleClient, RunningService},
    transport::{
        StreamableHttpClientTransport, TokioChildProcess,
        streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::sync::OnceCell;
use url::Url;

/// The `[mcp]` table: the servers whose tools the model is offered.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// Programs a stdio server may be started with, exactly as `command` names them. A
    /// server whose command is not listed is refused when Confide starts.
    #[serde(default)]
    pub allowed_commands: Vec<String>,
    /// The servers (`[[mcp.servers]]` tables).
    #[serde(default)]
    pub servers: Vec<McpServerConfig>,
}

/// One MCP server: `url` for Streamable HTTP, or `command` (with `args`, `env`) for stdio.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// A short name, used in logs and errors.
    pub name: String,
    /// The server's Streamable HTTP endpoint.
    #[serde(default)]
    pub url: Option<Url>,
    /// The program to start; it must be in `allowed_commands`.
    #[serde(default)]
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Its environment. Nothing else of Confide's environment reaches it but `PATH`,
    /// `HOME`, `LANG` and `TMPDIR`, so Confide's own secrets stay out of it. Never logged.
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// Where it runs: the system's temporary directory unless given, never Confide's own
    /// working directory (where its data and configuration may be).
    #[serde(default)]
    pub cwd: Option<std::path::PathBuf>,
    /// For an HTTP server: the environment variable holding a bearer token to send.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// One connection per browser session (`session`, the default) or one for everyone
    /// (`shared`).
    #[serde(default)]
    pub scope: McpScope,
    /// A session's connection is closed after this long without a call.
    #[serde(
        default = "default_idle",
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::ser_duration"
    )]
    pub idle: Duration,
    /// Most sessions with an open connection at once; past it the least recently used one
    /// that is not in a call is closed.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Bound on connecting (the MCP handshake included) and on each call.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::ser_duration"
    )]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_idle() -> Duration {
    Duration::from_secs(600)
}

fn default_max_sessions() -> usize {
    64
}

/// Who shares one connection to an MCP server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum McpScope {
    /// Each browser session has its own connection (and, for stdio, its own process).
    #[default]
    Session,
    /// One connection for every session: for servers that keep no state.
    Shared,
}

impl McpServerConfig {
    /// A Streamable HTTP server at `url`, one connection per session.
    pub fn http(name: impl Into<String>, url: Url) -> Self {
        Self::new(name.into(), Some(url), None, Vec::new())
    }

    /// A stdio server started as `command args…`, one process per session.
    pub fn stdio(name: impl Into<String>, command: impl Into<String>, args: &[&str]) -> Self {
        let args = args.iter().map(|a| a.to_string()).collect();
        Self::new(name.into(), None, Some(command.into()), args)
    }

    fn new(name: String, url: Option<Url>, command: Option<String>, args: Vec<String>) -> Self {
        Self {
            name,
            url,
            command,
            args,
            env: BTreeMap::new(),
            cwd: None,
            bearer_token_env: None,
            scope: McpScope::Session,
            idle: default_idle(),
            max_sessions: default_max_sessions(),
            timeout: default_timeout(),
        }
    }

    /// The same server with another scope.
    pub fn scoped(mut self, scope: McpScope) -> Self {
        self.scope = scope;
        self
    }

    fn check(&self, allowed: &[String]) -> Result<(), ConfigError> {
        let bad = |why: String| {
            Err(ConfigError::Invalid(format!(
                "MCP server {:?}: {why}",
                self.name
            )))
        };
        if self.name.trim().is_empty() {
            return bad("give it a name".into());
        }
        if self.max_sessions == 0 {
            return bad("max_sessions must be at least 1".into());
        }
        match (&self.url, &self.command) {
            (Some(url), None) => {
                if !matches!(url.scheme(), "http" | "https") {
                    return bad(format!("{url} is not an http(s) URL"));
                }
                Ok(())
            }
            (None, Some(command)) => {
                if allowed.iter().any(|a| a == command) {
                    Ok(())
                } else {
                    bad(format!(
                        "the command {command:?} is not in [mcp] allowed_commands"
                    ))
                }
            }
            _ => bad("give it either a url or a command".into()),
        }
    }
}

impl McpConfig {
    /// Checks every server: a name, one transport, a command from the allow-list.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for s in &self.servers {
            s.check(&self.allowed_commands)?;
            if !names.insert(s.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "MCP server {:?} is named twice",
                    s.name
                )));
            }
        }
        Ok(())
    }

    /// Connects to every server and gathers their tools. A server that cannot be reached
    /// or lists no tools is an error: better refused at start than missing at the first
    /// question.
    pub async fn connect(&self) -> Result<Tools, ConfigError> {
        self.validate()?;
        let mut tools = Tools::new();
        for s in &self.servers {
            // A name two servers offer keeps the first one's tool (`with_all` says so).
            tools = tools.with_all(McpServer::connect_checked(s.clone()).await?.tools());
        }
        Ok(tools)
    }
}

type Client = RunningService<RoleClient, ClientConfig>;

/// A connection that is made once, by whichever call needs it first.
type Slot = Arc<OnceCell<Arc<Client>>>;

/// A connected MCP server: its tools, and the connections calls go through.
#[derive(Clone)]
pub struct McpServer {
    inner: Arc<Inner>,
}

struct Inner {
    config: McpServerConfig,
    tools: Vec<rmcp::model::Tool>,
    shared: Mutex<Option<Slot>>,
    /// By session id. Ids are random and an ended one is refused by the guard for good, so
    /// no later session can present an id that has a connection here.
    sessions: Mutex<HashMap<String, (Slot, Instant)>>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.inner.config.name)
            .field("tools", &self.inner.tools.len())
            .finish()
    }
}

/// Longest tool result given to the model, in bytes.
const MAX_RESULT: usize = 64 * 1024;

impl McpServer {
    /// Connects to `config`'s server and lists its tools. A stdio command is started only
    /// if it is in `allowed_commands`.
    pub async fn connect(
        config: McpServerConfig,
        allowed_commands: &[String],
    ) -> Result<Self, ConfigError> {
        config.check(allowed_commands)?;
        Self::connect_checked(config).await
    }

    async fn connect_checked(config: McpServerConfig) -> Result<Self, ConfigError> {
        let failed = |e: String| ConfigError::Invalid(format!("MCP server {:?}: {e}", config.name));
        let probe = open(&config).await.map_err(failed)?;
        let tools = tokio::time::timeout(config.timeout, probe.list_all_tools())
            .await
            .map_err(|_| failed("it did not list its tools in time".into()))?
            .map_err(|e| failed(format!("cannot list its tools: {e}")))?;
        let shared = match config.scope {
            McpScope::Shared => Some(Arc::new(OnceCell::new_with(Some(Arc::new(probe))))),
            McpScope::Session => {
                // Each session gets a fresh connection; this one only asked what there is.
                let _ = probe.cancel().await;
                None
            }
        };
        tracing::info!(server = %config.name, tools = tools.len(), "MCP server connected");
        let server = Self {
            inner: Arc::new(Inner {
                config,
                tools,
                shared: Mutex::new(shared),
                sessions: Mutex::new(HashMap::new()),
            }),
        };
        if server.inner.config.scope == McpScope::Session {
            tokio::spawn(sweep(Arc::downgrade(&server.inner)));
        }
        Ok(server)
    }

    /// The server's tools, as tools a model may call. A name a model API would refuse is
    /// made fit (other characters become `_`, cut to 64).
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        self.inner
            .tools
            .iter()
            .map(|t| {
                Arc::new(McpTool {
                    server: self.clone(),
                    name: fit_name(&t.name),
                    remote: t.name.to_string(),
                    description: t.description.as_deref().unwrap_or_default().to_owned(),
                    parameters: Value::Object((*t.input_schema).clone()),
                }) as Arc<dyn Tool>
            })
            .collect()
    }

    /// Connections open for sessions now.
    pub fn open_sessions(&self) -> usize {
        self.inner.sessions.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// The slot of the connection `cx`'s calls go through, made if need be; `None` when
    /// every connection the bound allows is in a call.
    fn slot(&self, cx: &ToolContext) -> Option<Slot> {
        let inner = &self.inner;
        if inner.config.scope == McpScope::Shared {
            let mut shared = inner.shared.lock().unwrap_or_else(|e| e.into_inner());
            return Some(shared.get_or_insert_with(Default::default).clone());
        }
        let key = cx.session.id().as_string();
        let now = Instant::now();
        let mut sessions = inner.sessions.lock().unwrap_or_else(|e| e.into_inner());
        inner.close_idle(&mut sessions, now);
        if !sessions.contains_key(&key) && sessions.len() >= inner.config.max_sessions {
            // The least recently used connection that no call is using makes room; one in
            // a call is never cut off under its caller.
            let oldest = sessions
                .iter()
                .filter(|(_, (slot, _))| Arc::strong_count(slot) == 1)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())?;
            sessions.remove(&oldest);
        }
        let entry = sessions
            .entry(key)
            .or_insert_with(|| (Default::default(), now));
        entry.1 = now;
        Some(entry.0.clone())
    }

    /// Forgets `slot`'s connection, so the next call makes a new one.
    fn drop_slot(&self, slot: &Slot) {
        let inner = &self.inner;
        let mut shared = inner.shared.lock().unwrap_or_else(|e| e.into_inner());
        if shared.as_ref().is_some_and(|s| Arc::ptr_eq(s, slot)) {
            *shared = None;
        }
        drop(shared);
        let mut sessions = inner.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, (s, _)| !Arc::ptr_eq(s, slot));
    }

    async fn call(&self, tool: &str, args: Value, cx: &ToolContext) -> Result<String, ToolError> {
        let name = &self.inner.config.name;
        let args = match args {
            Value::Object(o) => o,
            Value::Null => Default::default(),
            _ => return Err(ToolError::new("the arguments must be a JSON object")),
        };
        let slot = self.slot(cx).ok_or_else(|| {
            ToolError::new(format!(
                "the MCP server {name:?} is busy with other people's calls; try again shortly"
            ))
        })?;
        let client = slot
            .get_or_try_init(|| async { open(&self.inner.config).await.map(Arc::new) })
            .await
            .map_err(|e| {
                tracing::warn!(server = %name, error = %e, "cannot connect to the MCP server");
                ToolError::new(format!("the MCP server {name:?} cannot be reached"))
            })?
            .clone();
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args);
        let called = tokio::time::timeout(self.inner.config.timeout, client.call_tool(params));
        let Ok(result) = called.await else {
            return Err(ToolError::new(format!(
                "the MCP server {name:?} did not answer in time"
            )));
        };
        match result {
            Ok(result) => {
                let text = flatten(&result);
                if result.is_error == Some(true) {
                    Err(ToolError::new(text))
                } else {
                    Ok(text)
                }
            }
            Err(rmcp::ServiceError::McpError(e)) => {
                let why: String = e.message.chars().take(500).collect();
                Err(ToolError::new(format!(
                    "the MCP server refused the call: {why}"
                )))
            }
            Err(e) => {
                tracing::warn!(server = %name, tool, error = %e, "an MCP call failed");
                if client.is_closed() {
                    self.drop_slot(&slot);
                }
                Err(ToolError::new(format!(
                    "the MCP server {name:?} did not answer the call"
                )))
            }
        }
    }
}

impl Inner {
    /// Closes the connections of sessions idle for `idle` (dropping one closes it, and ends
    /// a stdio server's process), unless a call is using them.
    fn close_idle(&self, sessions: &mut HashMap<String, (Slot, Instant)>, now: Instant) {
        sessions.retain(|_, (slot, used)| {
            now.duration_since(*used) < self.config.idle || Arc::strong_count(slot) > 1
        });
    }
}

/// Closes idle sessions' connections while the server is in use, whether or not calls come.
async fn sweep(inner: std::sync::Weak<Inner>) {
    let every = match inner.upgrade() {
        Some(i) => (i.config.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(60)),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else { return };
        let mut sessions = inner.sessions.lock().unwrap_or_else(|e| e.into_inner());
        inner.close_idle(&mut sessions, Instant::now());
    }
}

/// `url` as it may appear in a message or a log: no user, password or query.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Opens one connection to the server and completes MCP's handshake, within its timeout.
async fn open(config: &McpServerConfig) -> Result<Client, String> {
    tokio::time::timeout(config.timeout, open_now(config))
        .await
        .unwrap_or_else(|_| Err("it did not complete the MCP handshake in time".into()))
}

async fn open_now(config: &McpServerConfig) -> Result<Client, String> {
    let info = ClientConfig::new(
        Default::default(),
        Implementation::new("confide", env!("CARGO_PKG_VERSION")),
    );
    if let Some(url) = &config.url {
        // Its HTTP client needs a process-wide TLS provider; one already set is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut transport = StreamableHttpClientTransportConfig::with_uri(url.as_str());
        if let Some(var) = &config.bearer_token_env {
            let token = std::env::var(var)
                .map_err(|_| format!("the environment variable {var} is not set"))?;
            transport = transport.auth_header(token);
        }
        let transport = StreamableHttpClientTransport::from_config(transport);
        return info
            .serve(transport)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", shown(url)));
    }
    let Some(program) = &config.command else {
        return Err("neither a url nor a command".into());
    };
    // A relative program path means the one beside Confide, whatever directory the child
    // runs in.
    let program_path = std::path::Path::new(program);
    let resolved = if program_path.components().count() > 1 && program_path.is_relative() {
        std::env::current_dir()
            .map(|d| d.join(program_path))
            .unwrap_or_else(|_| program_path.to_path_buf())
    } else {
        program_path.to_path_buf()
    };
    let mut command = tokio::process::Command::new(resolved);
    command.args(&config.args).env_clear();
    for var in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Some(value) = std::env::var_os(var) {
            command.env(var, value);
        }
    }
    let cwd = config.cwd.clone().unwrap_or_else(std::env::temp_dir);
    command
        .envs(config.env.iter().map(|(k, v)| (k, &v.0)))
        .current_dir(cwd)
        .kill_on_drop(true);
    let child =
        TokioChildProcess::new(command).map_err(|e| format!("cannot start {program:?}: {e}"))?;
    info.serve(child)
        .await
        .map_err(|e| format!("{program:?} did not start as an MCP server: {e}"))
}

/// The result as text for the model: the text parts, with other parts named.
fn flatten(result: &rmcp::model::CallToolResult) -> String {
    let mut parts: Vec<String> = Vec::new();
    for block in &result.content {
        parts.push(match block {
            ContentBlock::Text(t) => t.text.clone(),
            ContentBlock::Image(i) => format!("[an image, {}]", i.mime_type),
            ContentBlock::Audio(a) => format!("[audio, {}]", a.mime_type),
            ContentBlock::Resource(_) => "[an embedded resource]".into(),
            ContentBlock::ResourceLink(l) => format!("[a link to {}]", l.uri),
            #[allow(unreachable_patterns)]
            _ => "[content of another kind]".into(),
        });
    }
    if parts.is_empty()
        && let Some(v) = &result.structured_content
    {
        parts.push(v.to_string());
    }
    let mut text = parts.join("\n");
    if text.len() > MAX_RESULT {
        let mut cut = MAX_RESULT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n[cut: the result was longer]");
    }
    text
}

/// `name` as a model API accepts it.
fn fit_name(name: &str) -> String {
    if valid_name(name) {
        return name.to_owned();
    }
    let fitted: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if fitted.is_empty() {
        "_".into()
    } else {
        fitted
    }
}

struct McpTool {
    server: McpServer,
    name: String,
    remote: String,
    description: String,
    parameters: Value,
}

#[async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        &self.description
    }
    fn parameters(&self) -> Value {
        self.parameters.clone()
    }
    async fn call(&self, args: Value, cx: ToolContext) -> Result<String, ToolError> {
        self.server.call(&self.remote, args, &cx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<McpConfig, String> {
        #[derive(Deserialize)]
        struct File {
            mcp: McpConfig,
        }
        let f: File = toml_parse(text)?;
        f.mcp.validate().map_err(|e| e.to_string())?;
        Ok(f.mcp)
    }

    fn toml_parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
        use figment::providers::Format;
        figment::Figment::from(figment::providers::Toml::string(text))
            .extract()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn servers_need_one_transport_and_commands_the_allow_list() {
        let ok = parse(
            r#"[mcp]
allowed_commands = ["uvx"]
[[mcp.servers]]
name = "fetch"
command = "uvx"
args = ["mcp-server-fetch"]
[[mcp.servers]]
name = "docs"
url = "https://mcp.example.com/mcp"
scope = "shared"
idle = "30s"
"#,
        )
        .unwrap();
        assert_eq!(ok.servers.len(), 2);
        assert_eq!(ok.servers[0].scope, McpScope::Session);
        assert_eq!(ok.servers[1].scope, McpScope::Shared);
        assert_eq!(ok.servers[1].idle, Duration::from_secs(30));

        let refused = |text: &str, why: &str| {
            let e = parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        };
        refused(
            "[mcp]\n[[mcp.servers]]\nname = \"sh\"\ncommand = \"sh\"",
            "not in [mcp] allowed_commands",
        );
        refused(
            "[mcp]\nallowed_commands = [\"uvx\"]\n[[mcp.servers]]\nname = \"x\"\ncommand = \"/usr/bin/uvx\"",
            "not in [mcp] allowed_commands",
        );
        refused(
            "[mcp]\n[[mcp.servers]]\nname = \"x\"\nurl = \"http://a/mcp\"\ncommand = \"uvx\"",
            "either a url or a command",
        );
        refused(
            "[mcp]\n[[mcp.servers]]\nname = \"x\"",
            "either a url or a command",
        );
        refused(
            "[mcp]\n[[mcp.servers]]\nname = \"x\"\nurl = \"file:///etc/passwd\"",
            "not an http(s) URL",
        );
        refused(
            "[mcp]\n[[mcp.servers]]\nname = \"x\"\nurl = \"http://a/\"\n[[mcp.servers]]\nname = \"x\"\nurl = \"http://b/\"",
            "named twice",
        );
        refused(
            "[mcp]\n[[mcp.servers]]\nname = \"x\"\nurl = \"http://a/\"\nscope = \"global\"",
            "scope",
        );
    }

    #[test]
    fn names_are_made_fit_for_model_apis() {
        assert_eq!(fit_name("read_file"), "read_file");
        assert_eq!(fit_name("files.read"), "files_read");
        assert_eq!(fit_name("größe"), "gr__e");
        assert_eq!(fit_name(&"x".repeat(80)).len(), 64);
        assert_eq!(fit_name(""), "_");
    }

    #[test]
    fn results_become_text_for_the_model() {
        use rmcp::model::CallToolResult;
        let r = CallToolResult::success(vec![ContentBlock::text("one"), ContentBlock::text("two")]);
        assert_eq!(flatten(&r), "one\ntwo");
        let long = CallToolResult::success(vec![ContentBlock::text("é".repeat(MAX_RESULT))]);
        let text = flatten(&long);
        assert!(text.len() < MAX_RESULT + 40 && text.ends_with("[cut: the result was longer]"));
    }
}
