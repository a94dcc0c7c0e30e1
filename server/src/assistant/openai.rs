//! Any OpenAI-compatible `/v1/chat/completions` endpoint with `stream: true`: OpenAI,
//! Ollama, llama.cpp's server, vLLM and others.

use super::sse::SseParser;
use app::model::Role;
use async_trait::async_trait;
use confide_core::assistant::{
    Assistant, AssistantError, AssistantErrorKind as Kind, DeltaStream, ReplyContext, Turn,
};
use futures::{StreamExt, stream};
use serde::Deserialize;
use std::{collections::VecDeque, fmt, time::Duration};
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

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// e.g. `https://api.openai.com`, `http://127.0.0.1:11434` (Ollama) or a URL ending in `/v1`.
    pub base_url: Url,
    pub api_key: Option<Secret>,
    pub model: String,
    pub system_prompt: Option<String>,
    /// Bound on establishing the connection.
    pub connect_timeout: Duration,
    /// Bound on waiting for the response to start and between two pieces of it.
    pub read_timeout: Duration,
}

pub struct OpenAiAssistant {
    http: reqwest::Client,
    endpoint: Url,
    cfg: OpenAiConfig,
}

impl OpenAiAssistant {
    pub fn new(cfg: OpenAiConfig) -> Result<Self, String> {
        let endpoint = completions_url(&cfg.base_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.read_timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            endpoint,
            cfg,
        })
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

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

/// What one SSE data payload means.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
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
    if !text.is_empty() {
        return Ok(Piece::Text(text));
    }
    if chunk.choices.iter().any(|c| c.finish_reason.is_some()) {
        return Ok(Piece::Nothing);
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

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

#[async_trait]
impl Assistant for OpenAiAssistant {
    async fn reply(&self, cx: ReplyContext) -> Result<DeltaStream, AssistantError> {
        let mut messages = Vec::with_capacity(cx.history.len() + 1);
        if let Some(p) = &self.cfg.system_prompt {
            messages.push(serde_json::json!({ "role": "system", "content": p }));
        }
        for t in cx.history {
            messages.push(serde_json::json!({ "role": role_name(t.role), "content": t.content }));
        }
        self.complete(messages).await
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
            let mut stream = self.complete(messages).await.ok()?;
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

impl OpenAiAssistant {
    /// Streams the completion of `messages` as text deltas.
    async fn complete(
        &self,
        messages: Vec<serde_json::Value>,
    ) -> Result<DeltaStream, AssistantError> {
        let body =
            serde_json::json!({ "model": self.cfg.model, "stream": true, "messages": messages });
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
            ready: VecDeque<Result<String, AssistantError>>,
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
                                match interpret(&ev.data) {
                                    Ok(Piece::Text(t)) => st.ready.push_back(Ok(t)),
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
