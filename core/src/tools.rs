//! Tools a model may call: typed Rust functions an application registers, described to the
//! model by a JSON schema derived from their argument type. The OpenAI-compatible assistant
//! runs the model↔tool loop and shows each call as a step; any assistant can use [`Tools`]
//! the same way.
//!
//! ```ignore
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Sum { a: f64, b: f64 }
//!
//! let tools = Tools::new().with(tool("add", "Adds two numbers.", |args: Sum, _cx| async move {
//!     Ok((args.a + args.b).to_string())
//! }));
//! ```
//!
//! A tool runs in the session of the reply that called it ([`ToolContext`]): what it keeps
//! through `cx.session` is that browser's alone.

/// The schema crate the argument types derive `JsonSchema` with.
pub use schemars::{self, JsonSchema};

use crate::UserSession;
use crate::model::{Account, Thread};
use async_trait::async_trait;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::{
    collections::BTreeMap, future::Future, marker::PhantomData, panic::AssertUnwindSafe, sync::Arc,
};
use tokio_util::sync::CancellationToken;

/// What a tool call runs in: the reply's chat, account and session, and its cancellation.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ToolContext {
    /// The chat of the reply that called the tool.
    pub thread: Thread,
    /// Who is signed in, if anyone.
    pub account: Option<Account>,
    /// The browser session's own values (see `UserSession`).
    pub session: UserSession,
    /// Fires when the reply is stopped.
    pub cancel: CancellationToken,
}

impl ToolContext {
    /// The context of a call made during the reply made in `cx`.
    pub fn of(cx: &crate::assistant::ReplyContext) -> Self {
        Self {
            thread: cx.thread.clone(),
            account: cx.account.clone(),
            session: cx.session.clone(),
            cancel: cx.cancel.clone(),
        }
    }
}

/// Why a tool call failed. The message goes to the model (so it can try otherwise) and is
/// shown to the person in the step, so it must be safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

impl ToolError {
    /// A failure that tells the model and the person `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<crate::ApiError> for ToolError {
    fn from(e: crate::ApiError) -> Self {
        Self(e.message)
    }
}

/// A function a model may call. Most tools are made with [`tool`] from a typed function;
/// implement this for one whose schema is not a Rust type's.
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// The name the model calls it by: letters, digits, `_` and `-`, at most 64.
    fn name(&self) -> &str;
    /// What the tool does and when to use it, for the model.
    fn description(&self) -> &str;
    /// The JSON schema (an object schema) of the arguments.
    fn parameters(&self) -> Value;
    /// Runs the call; `args` is the model's JSON, not yet checked.
    async fn call(&self, args: Value, cx: ToolContext) -> Result<String, ToolError>;
}

/// A typed tool: `f` takes the arguments as `A`, whose schema the model is given.
pub fn tool<A, F, Fut>(
    name: impl Into<String>,
    description: impl Into<String>,
    f: F,
) -> Arc<dyn Tool>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(A, ToolContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, ToolError>> + Send + 'static,
{
    Arc::new(FnTool {
        name: name.into(),
        description: description.into(),
        parameters: schema_of::<A>(),
        f,
        args: PhantomData,
    })
}

/// The object schema of `A` as function-calling APIs take it: no `$schema`, no `title`.
pub fn schema_of<A: JsonSchema>() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(A)).unwrap_or_default();
    if let Some(o) = schema.as_object_mut() {
        o.remove("$schema");
        o.remove("title");
        // A tool without arguments (`()`, an empty struct) is still an object to the model.
        if o.get("type").and_then(Value::as_str) != Some("object") {
            o.insert("type".into(), "object".into());
            o.entry("properties")
                .or_insert_with(|| Value::Object(Default::default()));
        }
    }
    schema
}

struct FnTool<A, F> {
    name: String,
    description: String,
    parameters: Value,
    f: F,
    args: PhantomData<fn() -> A>,
}

#[async_trait]
impl<A, F, Fut> Tool for FnTool<A, F>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(A, ToolContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, ToolError>> + Send + 'static,
{
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
        // No arguments, as `null` or `{}`, fit a struct without fields and `()` alike.
        let none = args.is_null() || args.as_object().is_some_and(|o| o.is_empty());
        let args = if args.is_null() {
            Value::Object(Default::default())
        } else {
            args
        };
        let args: A = serde_json::from_value(args)
            .or_else(|e| {
                if none {
                    serde_json::from_value(Value::Null)
                } else {
                    Err(e)
                }
            })
            .map_err(|e| ToolError(format!("the arguments do not fit the tool: {e}")))?;
        (self.f)(args, cx).await
    }
}

/// The tools an assistant offers, by name.
#[derive(Clone, Default)]
pub struct Tools {
    by_name: BTreeMap<String, Arc<dyn Tool>>,
}

impl std::fmt::Debug for Tools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl IntoIterator for Tools {
    type Item = Arc<dyn Tool>;
    type IntoIter = std::collections::btree_map::IntoValues<String, Arc<dyn Tool>>;
    fn into_iter(self) -> Self::IntoIter {
        self.by_name.into_values()
    }
}

/// Whether `name` is one a function-calling API accepts.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Tools {
    /// No tools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `tool`, replacing one of the same name.
    ///
    /// # Panics
    /// If the name is not one a model API accepts (see [`valid_name`]): a mistake in the
    /// application's code, found when it starts.
    pub fn with(mut self, tool: Arc<dyn Tool>) -> Self {
        assert!(
            valid_name(tool.name()),
            "tool name {:?}: use 1 to 64 letters, digits, '_' or '-'",
            tool.name()
        );
        self.by_name.insert(tool.name().to_owned(), tool);
        self
    }

    /// Adds each of `tools` whose name is not taken yet: the tools already here keep
    /// their names, so a tool from elsewhere (an MCP server) cannot take the calls meant
    /// for the application's own. One skipped is logged.
    pub fn with_all(self, tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Self {
        tools.into_iter().fold(self, |all, tool| {
            if all.get(tool.name()).is_some() {
                tracing::warn!(
                    tool = tool.name(),
                    "a tool of this name is already offered; the new one is left out"
                );
                all
            } else {
                all.with(tool)
            }
        })
    }

    /// Every tool, in order of name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Tool>> {
        self.by_name.values()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The tools' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The tool named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.by_name.get(name)
    }

    /// The tools as the `tools` field of an OpenAI-compatible request.
    pub fn openai_specs(&self) -> Vec<Value> {
        self.by_name
            .values()
            .map(|t| {
                serde_json::json!({
                    "type": "function",
                    "function": {
                        "name": t.name(),
                        "description": t.description(),
                        "parameters": t.parameters(),
                    }
                })
            })
            .collect()
    }

    /// Runs the call of `name` with `arguments` (the model's JSON text). Every way it can go
    /// wrong (no such tool, arguments that are not JSON or do not fit, a failure, a panic)
    /// is an `Err` the model is told about; none ends the reply.
    pub async fn call(
        &self,
        name: &str,
        arguments: &str,
        cx: ToolContext,
    ) -> Result<String, ToolError> {
        let tool = self
            .get(name)
            .ok_or_else(|| ToolError(format!("there is no tool named {name:?}")))?;
        let args: Value = if arguments.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(arguments)
                .map_err(|e| ToolError(format!("the arguments are not valid JSON: {e}")))?
        };
        AssertUnwindSafe(tool.call(args, cx))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(tool = name, "a tool panicked");
                Err(ToolError("the tool failed unexpectedly".into()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, JsonSchema)]
    struct Sum {
        /// The first number.
        a: f64,
        b: f64,
    }

    #[test]
    fn a_typed_tool_describes_its_arguments() {
        let tools = Tools::new().with(tool("add", "Adds two numbers.", |s: Sum, _| async move {
            Ok((s.a + s.b).to_string())
        }));
        let specs = tools.openai_specs();
        assert_eq!(specs.len(), 1);
        let f = &specs[0]["function"];
        assert_eq!(f["name"], "add");
        assert_eq!(f["parameters"]["type"], "object");
        assert_eq!(f["parameters"]["properties"]["a"]["type"], "number");
        assert_eq!(
            f["parameters"]["properties"]["a"]["description"],
            "The first number."
        );
        assert_eq!(f["parameters"]["required"], serde_json::json!(["a", "b"]));
        assert!(f["parameters"].get("$schema").is_none());
        let none = schema_of::<()>();
        assert_eq!(none["type"], "object", "{none}");
    }

    #[test]
    fn names_are_what_model_apis_accept() {
        assert!(valid_name("get_time") && valid_name("a-b") && valid_name(&"x".repeat(64)));
        assert!(!valid_name("") && !valid_name("has space") && !valid_name(&"x".repeat(65)));
        assert!(!valid_name("ünï") && !valid_name("a.b"));
    }

    #[test]
    fn tools_from_elsewhere_never_take_an_offered_name() {
        let mine = tool(
            "clock",
            "mine",
            |(): (), _| async move { Ok("mine".into()) },
        );
        let theirs = tool(
            "clock",
            "theirs",
            |(): (), _| async move { Ok("theirs".into()) },
        );
        let other = tool("notes", "theirs", |(): (), _| async move { Ok("n".into()) });
        let tools = Tools::new().with(mine).with_all([theirs, other]);
        assert_eq!(tools.names().collect::<Vec<_>>(), ["clock", "notes"]);
        assert_eq!(tools.get("clock").unwrap().description(), "mine");
    }
}
