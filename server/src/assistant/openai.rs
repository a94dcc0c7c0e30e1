//! Any OpenAI-compatible `/v1/chat/completions` endpoint with `stream: true`: OpenAI,
//! Ollama, llama.cpp's server, vLLM and others.

use super::sse::SseParser;
use app::model::Role;
use async_trait::async_trait;
use confide_core::assistant::{
    Assistant, AssistantError, AssistantErrorKind as Kind, DeltaStream, ReplyContext, Turn,
};
use confide_core::model::{Profile, Starter, StepKind};
use confide_core::tools::{ToolContext, ToolError, Tools};
use futures::{StreamExt, stream};
use serde::Deserialize;
use std::{
    collections::{BTreeMap, VecDeque},
    fmt,
    sync::Arc,
    time::Duration,
};
use url::Url;

/// A value that must never reach a log line.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(empty)"
        } else {
            "Secret(redacted)"
        })
    }
}

/// Where the OpenAI-compatible endpoint is and how to talk to it.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// e.g. `https://api.openai.com`, `http://127.0.0.1:11434` (Ollama) or a URL ending in `/v1`.
    pub base_url: Url,
    /// Sent as a bearer token when set; never logged.
    pub api_key: Option<Secret>,
    /// The model name sent to the endpoint.
    pub model: String,
    /// Put before every conversation.
    pub system_prompt: Option<String>,
    /// Bound on establishing the connection.
    pub connect_timeout: Duration,
    /// Bound on waiting for the response to start and between two pieces of it.
    pub read_timeout: Duration,
    /// Most rounds of tool calls in one reply; the request after the last one asks the
    /// model to answer without tools.
    pub max_tool_rounds: usize,
    /// Bound on one tool call.
    pub tool_timeout: Duration,
    /// What a person can choose to talk to; each may ask another model with another system
    /// prompt. None: the model and prompt above, and no choice to make.
    pub profiles: Vec<ModelProfile>,
    /// Ask the endpoint to report what each request took (`stream_options.include_usage`),
    /// for the daily token quota. Off unless a quota needs it: a strict endpoint may refuse
    /// the option.
    pub include_usage: bool,
}

/// A profile of the OpenAI-compatible assistant (`[[profiles]]` in `confide.toml`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelProfile {
    /// What the session's choice is kept as.
    pub id: String,
    /// What the picker shows.
    pub name: String,
    /// What the picker says of it (its tooltip).
    #[serde(default)]
    pub description: String,
    /// The model asked; the configured `model` if unset.
    #[serde(default)]
    pub model: Option<String>,
    /// The system prompt; the configured `system_prompt` if unset.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Suggestions its empty chat offers.
    #[serde(default)]
    pub starters: Vec<Starter>,
}

impl OpenAiConfig {
    /// The defaults for everything but where the endpoint is and which model to ask.
    pub fn new(base_url: Url, model: impl Into<String>) -> Self {
        Self {
            base_url,
            api_key: None,
            model: model.into(),
            system_prompt: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            max_tool_rounds: 8,
            tool_timeout: Duration::from_secs(60),
            profiles: Vec::new(),
            include_usage: false,
        }
    }
}

/// Most characters of one tool result the model is given back.
const MAX_TOOL_RESULT_CHARS: usize = 32_000;
/// Most bytes of the arguments of the tool calls of one model turn.
const MAX_CALL_BYTES: usize = 64 * 1024;

/// The assistant that streams its replies from an OpenAI-compatible endpoint, running the
/// tool calls the model makes along the way.
pub struct OpenAiAssistant {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    cfg: OpenAiConfig,
    tools: Tools,
}

impl OpenAiAssistant {
    /// An assistant for the endpoint in `cfg`, with no tools; fails on a base URL that
    /// cannot be made into the completions URL, or an HTTP client that cannot be built.
    pub fn new(cfg: OpenAiConfig) -> Result<Self, String> {
        let endpoint = completions_url(&cfg.base_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.read_timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                endpoint,
                cfg,
                tools: Tools::new(),
            }),
        })
    }

    /// Offers `tools` to the model. Confide runs each call the model makes, shows it as a
    /// step, gives the model the result, and asks again, up to `max_tool_rounds` times.
    pub fn with_tools(self, tools: Tools) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.tools = tools;
        Self {
            inner: Arc::new(inner),
        }
    }
}

fn completions_url(base: &Url) -> Result<Url, String> {
    let mut s = base.as_str().trim_end_matches('/').to_owned();
    if !s.ends_with("/v1") {
        s.push_str("/v1");
    }
    s.push_str("/chat/completions");
    Url::parse(&s).map_err(|e| format!("invalid model base URL: {e}"))
}

fn err(kind: Kind, message: impl Into<String>) -> AssistantError {
    AssistantError::new(kind, message)
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// What the request took, prompt and completion tokens, if this payload says: with
/// `stream_options.include_usage`, the last chunk does (some endpoints put it beside text).
pub fn usage_in(data: &str) -> Option<(u64, u64)> {
    #[derive(Deserialize)]
    struct WithUsage {
        usage: Option<TokenUsage>,
    }
    if !data.contains("\"usage\"") {
        return None;
    }
    let u = serde_json::from_str::<WithUsage>(data).ok()?.usage?;
    Some((
        u.prompt_tokens.unwrap_or(0),
        u.completion_tokens.unwrap_or(0),
    ))
}

#[derive(Deserialize)]
struct TokenUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<CallDelta>,
}

/// A piece of a tool call as it streams: the first names the call and the function, the
/// rest add to its arguments. Pieces of one call share its `index`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallDelta {
    #[serde(default)]
    pub index: usize,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<FunctionDelta>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FunctionDelta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

/// What one SSE data payload means.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// Pieces of tool calls, and any text beside them.
    Calls(String, Vec<CallDelta>),
    Nothing,
    Done,
}

/// Interprets one `data:` payload of the stream.
pub fn interpret(data: &str) -> Result<Piece, AssistantError> {
    if data.trim() == "[DONE]" {
        return Ok(Piece::Done);
    }
    let chunk: Chunk = serde_json::from_str(data)
        .map_err(|_| err(Kind::Protocol, "the model endpoint sent a malformed event"))?;
    if let Some(e) = chunk.error {
        let msg = e
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("unknown error");
        let msg: String = msg.chars().take(300).collect();
        return Err(err(
            Kind::Upstream,
            format!("the model reported an error: {msg}"),
        ));
    }
    let text: String = chunk
        .choices
        .iter()
        .filter_map(|c| c.delta.as_ref()?.content.clone())
        .collect();
    let calls: Vec<CallDelta> = chunk
        .choices
        .iter()
        .filter_map(|c| c.delta.as_ref())
        .flat_map(|d| d.tool_calls.iter().cloned())
        .collect();
    if !calls.is_empty() {
        return Ok(Piece::Calls(text, calls));
    }
    if !text.is_empty() {
        return Ok(Piece::Text(text));
    }
    Ok(Piece::Nothing)
}

fn status_error(status: reqwest::StatusCode) -> AssistantError {
    let code = status.as_u16();
    match code {
        401 | 403 => err(
            Kind::Unauthorized,
            format!("the model endpoint refused the API key ({code})"),
        ),
        404 => err(
            Kind::NotFound,
            "the model endpoint or the model was not found (404); check the base URL and model name",
        ),
        429 => err(
            Kind::RateLimited,
            "the model endpoint is rate limiting requests (429); try again shortly",
        ),
        500..=599 => err(
            Kind::Upstream,
            format!("the model endpoint failed ({code}); try again"),
        ),
        _ => err(Kind::Other, format!("the model endpoint answered {code}")),
    }
}

fn transport_error(e: reqwest::Error) -> AssistantError {
    if e.is_timeout() {
        err(
            Kind::Unavailable,
            "the model endpoint did not answer in time",
        )
    } else if e.is_connect() {
        err(Kind::Unavailable, "cannot connect to the model endpoint")
    } else {
        err(
            Kind::Interrupted,
            "the connection to the model endpoint broke off",
        )
    }
}

/// What the model is asked to name a chat with; the exchange follows as one user message,
/// cut to this many characters a side (a title needs the gist, not the whole answer).
const TITLE_PROMPT: &str = "You name chats. Reply with a title of at most six words for the \
     conversation below, in its language, with no quotes and no final period.";
const TITLE_EXCERPT_CHARS: usize = 1_500;
/// Bound on the whole title request: a title is a nicety, never worth a long wait.
const TITLE_TIMEOUT: Duration = Duration::from_secs(20);

/// What one request carries of the conversation's files: pictures up to
/// `MAX_IMAGE_BYTES` in all, text up to `MAX_FILE_TEXT_CHARS` in all. Past it a file is
/// named, not sent.
#[derive(Default)]
struct Budget {
    image_bytes: u64,
    text_chars: usize,
}

const MAX_IMAGE_BYTES: u64 = 20 * 1000 * 1000;
const MAX_FILE_TEXT_CHARS: usize = 100_000;
const MAX_ONE_FILE_CHARS: usize = 40_000;

/// A turn as the endpoint takes it: plain text, or for a turn of the person's that carries
/// files, content parts: its text, each picture as an `image_url` part (a data URL), and
/// each text file's contents in a fence.
async fn turn_message(cx: &ReplyContext, t: &Turn, budget: &mut Budget) -> serde_json::Value {
    use base64::Engine;
    if t.attachments.is_empty() || t.role != Role::User {
        return serde_json::json!({ "role": role_name(t.role), "content": t.content });
    }
    let mut parts = Vec::new();
    if !t.content.trim().is_empty() {
        parts.push(serde_json::json!({ "type": "text", "text": t.content }));
    }
    for a in &t.attachments {
        let named = || {
            serde_json::json!({
                "type": "text",
                "text": format!("[attached file {:?}, {}, {} bytes, not included]", a.name, a.mime, a.size),
            })
        };
        if a.is_image() {
            let bytes = match cx.files.read(a).await {
                Ok(b) if budget.image_bytes + a.size <= MAX_IMAGE_BYTES => b,
                _ => {
                    parts.push(named());
                    continue;
                }
            };
            budget.image_bytes += a.size;
            let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
            parts.push(serde_json::json!({
                "type": "image_url",
                "image_url": { "url": format!("data:{};base64,{data}", a.mime) },
            }));
        } else {
            let room = MAX_FILE_TEXT_CHARS
                .saturating_sub(budget.text_chars)
                .min(MAX_ONE_FILE_CHARS);
            // Text files as they are, a PDF's text as read from it.
            let cut = match cx.files.text(a, room).await {
                Ok(Some(text)) if room > 0 => text,
                _ => {
                    parts.push(named());
                    continue;
                }
            };
            budget.text_chars += cut.chars().count();
            let longest = cut.split(|c| c != '`').map(str::len).max().unwrap_or(0);
            let fence = "`".repeat((longest + 1).max(3));
            parts.push(serde_json::json!({
                "type": "text",
                "text": format!("File {:?} ({}):\n{fence}\n{cut}\n{fence}", a.name, a.mime),
            }));
        }
    }
    serde_json::json!({ "role": "user", "content": parts })
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

#[async_trait]
impl Assistant for OpenAiAssistant {
    async fn reply(&self, cx: ReplyContext) -> Result<DeltaStream, AssistantError> {
        let inner = &self.inner;
        let chosen = cx
            .profile
            .as_ref()
            .and_then(|p| inner.cfg.profiles.iter().find(|m| m.id == p.id));
        let model = chosen
            .and_then(|p| p.model.clone())
            .unwrap_or_else(|| inner.cfg.model.clone());
        let system = chosen
            .and_then(|p| p.system_prompt.as_ref())
            .or(inner.cfg.system_prompt.as_ref());
        let mut messages = Vec::with_capacity(cx.history.len() + 1);
        if let Some(p) = system {
            messages.push(serde_json::json!({ "role": "system", "content": p }));
        }
        let mut budget = Budget::default();
        let mut turns = Vec::with_capacity(cx.history.len());
        // Newest first, so the budget for files goes to what was sent last.
        for t in cx.history.iter().rev() {
            turns.push(turn_message(&cx, t, &mut budget).await);
        }
        messages.extend(turns.into_iter().rev());
        // The first request is made here, so that an endpoint that refuses it fails the
        // reply at once, as without tools.
        let first = inner.open(inner.body(&model, &messages, 0)).await?;
        if inner.tools.is_empty() {
            return Ok(text_only(first, Some(cx)));
        }
        // The conversation with the model goes on inside the reply's stream: dropping the
        // stream (Stop) drops it, the tool call it is waiting for included.
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let talk = converse(self.inner.clone(), model, messages, first, cx, tx);
        let talk = stream::once(talk).filter_map(|()| futures::future::ready(None));
        Ok(Box::pin(stream::select(rx, talk)))
    }

    fn profiles(&self) -> Vec<Profile> {
        self.inner
            .cfg
            .profiles
            .iter()
            .map(|p| Profile {
                id: p.id.clone(),
                name: p.name.clone(),
                description: p.description.clone(),
                starters: p.starters.clone(),
            })
            .collect()
    }

    async fn title(&self, exchange: &[Turn]) -> Option<String> {
        let transcript: Vec<String> = exchange
            .iter()
            .map(|t| {
                let text: String = t.content.chars().take(TITLE_EXCERPT_CHARS).collect();
                format!("{}: {text}", role_name(t.role))
            })
            .collect();
        let messages = vec![
            serde_json::json!({ "role": "system", "content": TITLE_PROMPT }),
            serde_json::json!({ "role": "user", "content": transcript.join("\n\n") }),
        ];
        let collect = async {
            let body = serde_json::json!({ "model": self.inner.cfg.model, "stream": true, "messages": messages });
            let mut stream = text_only(self.inner.open(body).await.ok()?, None);
            let mut text = String::new();
            while let Some(piece) = stream.next().await {
                text.push_str(&piece.ok()?);
                if text.len() > 4 * TITLE_EXCERPT_CHARS {
                    break;
                }
            }
            confide_core::assistant::clean_title(&text)
        };
        tokio::time::timeout(TITLE_TIMEOUT, collect)
            .await
            .ok()
            .flatten()
    }
}

/// What a completion stream carries: text, or pieces of tool calls.
enum Event {
    Text(String),
    Call(CallDelta),
    /// Prompt and completion tokens the request took.
    Usage(u64, u64),
}

type Events = futures::stream::BoxStream<'static, Result<Event, AssistantError>>;

/// The text of `events`; their usage report goes to `cx`, the reply's, if there is one.
fn text_only(events: Events, cx: Option<ReplyContext>) -> DeltaStream {
    Box::pin(events.filter_map(move |e| {
        futures::future::ready(match e {
            Ok(Event::Text(t)) => Some(Ok(t)),
            Ok(Event::Usage(p, c)) => {
                if let Some(cx) = &cx {
                    cx.report_usage(p, c);
                }
                None
            }
            Ok(Event::Call(_)) => None,
            Err(e) => Some(Err(e)),
        })
    }))
}

/// A tool call as the model made it, its pieces put together.
#[derive(Default)]
struct Call {
    id: String,
    name: String,
    arguments: String,
}

/// The model↔tool loop: streams the model's text out, runs the tools it calls (each as a
/// step), gives it the results and asks again, until it answers without calling any or the
/// rounds run out.
async fn converse(
    inner: Arc<Inner>,
    model: String,
    mut messages: Vec<serde_json::Value>,
    mut events: Events,
    cx: ReplyContext,
    tx: futures::channel::mpsc::UnboundedSender<Result<String, AssistantError>>,
) {
    let tcx = ToolContext::of(&cx);
    let fail = |e: AssistantError| {
        let _ = tx.unbounded_send(Err(e));
    };
    let mut said = false;
    // Every round is a request of its own: the reply took what they all took.
    let (mut prompt_tokens, mut completion_tokens) = (0u64, 0u64);
    for round in 0.. {
        let mut text = String::new();
        let mut calls: BTreeMap<usize, Call> = BTreeMap::new();
        let mut call_bytes = 0;
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Text(t)) => {
                    // Each round's words start a paragraph of their own.
                    let piece = if text.is_empty() && said && !t.trim().is_empty() {
                        format!("\n\n{}", t.trim_start())
                    } else {
                        t
                    };
                    text.push_str(&piece);
                    if tx.unbounded_send(Ok(piece)).is_err() {
                        return;
                    }
                }
                Ok(Event::Usage(p, c)) => {
                    prompt_tokens = prompt_tokens.saturating_add(p);
                    completion_tokens = completion_tokens.saturating_add(c);
                    cx.report_usage(prompt_tokens, completion_tokens);
                }
                Ok(Event::Call(d)) => {
                    let call = calls.entry(d.index).or_default();
                    if let Some(id) = d.id {
                        call.id = id;
                    }
                    if let Some(f) = d.function {
                        let (name, args) =
                            (f.name.unwrap_or_default(), f.arguments.unwrap_or_default());
                        call_bytes += name.len() + args.len();
                        call.name.push_str(&name);
                        call.arguments.push_str(&args);
                    }
                    if call_bytes > MAX_CALL_BYTES || calls.len() > confide_core::model::MAX_STEPS {
                        return fail(err(Kind::Protocol, "the model's tool calls are too large"));
                    }
                }
                Err(e) => return fail(e),
            }
        }
        said |= !text.trim().is_empty();
        if calls.is_empty() {
            return;
        }
        if round >= inner.cfg.max_tool_rounds {
            return fail(err(
                Kind::Protocol,
                format!(
                    "the model still called tools after {} rounds",
                    inner.cfg.max_tool_rounds
                ),
            ));
        }
        for (i, call) in calls.values_mut().enumerate() {
            if call.id.is_empty() {
                call.id = format!("call_{round}_{i}");
            }
        }
        messages.push(serde_json::json!({
            "role": "assistant",
            "content": if text.is_empty() { serde_json::Value::Null } else { text.into() },
            "tool_calls": calls.values().map(|c| serde_json::json!({
                "id": c.id,
                "type": "function",
                "function": { "name": c.name, "arguments": c.arguments },
            })).collect::<Vec<_>>(),
        }));
        for call in calls.values() {
            let step = cx.step(StepKind::Tool, &call.name, &call.arguments);
            let ran = tokio::time::timeout(
                inner.cfg.tool_timeout,
                inner.tools.call(&call.name, &call.arguments, tcx.clone()),
            )
            .await
            .unwrap_or_else(|_| {
                Err(ToolError::new(format!(
                    "the tool did not answer within {} s",
                    inner.cfg.tool_timeout.as_secs()
                )))
            });
            let content = match ran {
                Ok(out) => {
                    step.done(&out);
                    out
                }
                Err(e) => {
                    step.fail(&e.0);
                    format!("error: {}", e.0)
                }
            };
            let content: String = content.chars().take(MAX_TOOL_RESULT_CHARS).collect();
            messages.push(serde_json::json!({
                "role": "tool",
                "tool_call_id": call.id,
                "content": content,
            }));
        }
        events = match inner.open(inner.body(&model, &messages, round + 1)).await {
            Ok(events) => events,
            Err(e) => return fail(e),
        };
    }
}

impl Inner {
    /// The request of round `round` (0 for the first): the tools are offered while rounds
    /// are left, and the last asks for an answer without them.
    fn body(&self, model: &str, messages: &[serde_json::Value], round: usize) -> serde_json::Value {
        let mut body = serde_json::json!({ "model": model, "stream": true, "messages": messages });
        // For the daily token quota only: a strict endpoint may refuse the option.
        if self.cfg.include_usage {
            body["stream_options"] = serde_json::json!({ "include_usage": true });
        }
        if !self.tools.is_empty() {
            body["tools"] = self.tools.openai_specs().into();
            body["tool_choice"] = if round >= self.cfg.max_tool_rounds {
                "none"
            } else {
                "auto"
            }
            .into();
        }
        body
    }

    /// Sends `body` and streams what the completion carries.
    async fn open(&self, body: serde_json::Value) -> Result<Events, AssistantError> {
        let mut req = self
            .http
            .post(self.endpoint.clone())
            .json(&body)
            .header("accept", "text/event-stream");
        if let Some(key) = self.cfg.api_key.as_ref().filter(|k| !k.0.is_empty()) {
            req = req.bearer_auth(&key.0);
        }
        let res = req.send().await.map_err(transport_error)?;
        if !res.status().is_success() {
            return Err(status_error(res.status()));
        }

        struct State {
            body: futures::stream::BoxStream<'static, Result<bytes::Bytes, reqwest::Error>>,
            parser: SseParser,
            ready: VecDeque<Result<Event, AssistantError>>,
            finished: bool,
        }
        let state = State {
            body: Box::pin(res.bytes_stream()),
            parser: SseParser::default(),
            ready: VecDeque::new(),
            finished: false,
        };
        let s = stream::unfold(state, |mut st| async move {
            loop {
                if let Some(item) = st.ready.pop_front() {
                    if item.is_err() {
                        st.finished = true;
                        st.ready.clear();
                    }
                    return Some((item, st));
                }
                if st.finished {
                    return None;
                }
                match st.body.next().await {
                    Some(Ok(bytes)) => match st.parser.feed(&bytes) {
                        Ok(events) => {
                            for ev in events {
                                let usage = usage_in(&ev.data);
                                match interpret(&ev.data) {
                                    Ok(Piece::Text(t)) => st.ready.push_back(Ok(Event::Text(t))),
                                    Ok(Piece::Calls(t, calls)) => {
                                        if !t.is_empty() {
                                            st.ready.push_back(Ok(Event::Text(t)));
                                        }
                                        st.ready
                                            .extend(calls.into_iter().map(|c| Ok(Event::Call(c))));
                                    }
                                    Ok(Piece::Nothing) => {}
                                    Ok(Piece::Done) => {
                                        st.finished = true;
                                        break;
                                    }
                                    Err(e) => {
                                        st.ready.push_back(Err(e));
                                        break;
                                    }
                                }
                                if let Some((p, c)) = usage {
                                    st.ready.push_back(Ok(Event::Usage(p, c)));
                                }
                            }
                        }
                        Err(e) => st
                            .ready
                            .push_back(Err(err(Kind::Protocol, format!("unreadable stream: {e}")))),
                    },
                    Some(Err(e)) => st.ready.push_back(Err(transport_error(e))),
                    None => st.ready.push_back(Err(err(
                        Kind::Interrupted,
                        "the model endpoint closed the stream before the reply was complete",
                    ))),
                }
            }
        });
        Ok(Box::pin(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        let u = |s: &str| {
            completions_url(&Url::parse(s).unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(
            u("http://127.0.0.1:11434"),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
        assert_eq!(
            u("https://api.openai.com/v1/"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            u("http://h:8000/proxy"),
            "http://h:8000/proxy/v1/chat/completions"
        );
    }

    #[test]
    fn payloads_are_interpreted() {
        assert_eq!(interpret("[DONE]").unwrap(), Piece::Done);
        let last = r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30}}"#;
        assert_eq!(interpret(last).unwrap(), Piece::Nothing);
        assert_eq!(usage_in(last), Some((12, 30)));
        // Beside text, and with a count an endpoint leaves null.
        let beside = r#"{"choices":[{"delta":{"content":"Hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":null}}"#;
        assert_eq!(interpret(beside).unwrap(), Piece::Text("Hi".into()));
        assert_eq!(usage_in(beside), Some((5, 0)));
        assert_eq!(
            usage_in(r#"{"choices":[{"delta":{"content":"usage"}}]}"#),
            None
        );
        assert_eq!(
            interpret(r#"{"choices":[{"delta":{"content":"Hi"}}]}"#).unwrap(),
            Piece::Text("Hi".into())
        );
        assert_eq!(
            interpret(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#).unwrap(),
            Piece::Nothing
        );
        assert_eq!(
            interpret(r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#).unwrap(),
            Piece::Nothing
        );
        assert_eq!(interpret("{not json").unwrap_err().kind, Kind::Protocol);
        let e = interpret(r#"{"error":{"message":"overloaded"}}"#).unwrap_err();
        assert_eq!(e.kind, Kind::Upstream);
        assert!(e.message.contains("overloaded"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret("sk-very-secret".into());
        assert!(!format!("{s:?}").contains("sk-"));
    }
}
