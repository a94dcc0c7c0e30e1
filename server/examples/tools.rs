//! A tool-using assistant built on Confide: the model can call a calculator and a clock,
//! typed Rust functions whose JSON schema comes from their argument types. Each call shows
//! in the chat as a step, with its input and result.
//!
//! ```sh
//! cargo leptos build            # the page and its wasm, once
//! cargo run -p server --example tools
//! ```
//!
//! Offline it talks to a scripted stand-in for a model (`server::testing::scripted_model`),
//! which calls the calculator for arithmetic ("what is 2 + 3 * 4?") and the clock for "what
//! time is it?". With `CONFIDE_OPENAI_BASE_URL` (and `CONFIDE_MODEL`, `CONFIDE_OPENAI_API_KEY`)
//! set, a real OpenAI-compatible model gets the same tools. It reads the same configuration
//! as `confide` (`confide.toml`, `CONFIDE_*`).
//!
//! Tools from MCP servers join in: with `end2end/tools.toml` as its configuration
//! (`CONFIDE_CONFIG=end2end/tools.toml`, after `cargo build -p server --example mcp_notes`)
//! the app starts the `mcp_notes` server over stdio, one process per browser session, and
//! the stand-in model uses it for "note: …" and "my notes".

use confide_core::tools::{JsonSchema, ToolError, Tools, tool};
use serde::Deserialize;
use serde_json::{Value, json};
use server::{
    Config,
    assistant::{OpenAiAssistant, OpenAiConfig},
    testing::{Scripted, scripted_model},
};
use std::sync::Arc;

#[derive(Deserialize, JsonSchema)]
struct Calculate {
    /// An arithmetic expression: numbers, + - * / ^, parentheses. For example "2 + 3 * 4".
    expression: String,
}

/// The app's tools.
fn tools() -> Tools {
    Tools::new()
        .with(tool(
            "calculator",
            "Evaluates an arithmetic expression exactly as written and returns the number.",
            |c: Calculate, _cx| async move { calc::evaluate(&c.expression).map_err(ToolError::new) },
        ))
        .with(tool(
            "clock",
            "Returns the current date and time in UTC (RFC 3339).",
            |(): (), _cx| async move {
                Ok(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string())
            },
        ))
}

/// The stand-in model: arithmetic goes to the calculator, a question about the time to the
/// clock, and a tool's result comes back as the answer.
fn script(messages: &[Value]) -> Scripted {
    let last = messages.last().cloned().unwrap_or_default();
    if last["role"] == "tool" {
        let result = last["content"].as_str().unwrap_or("");
        let call = messages
            .iter()
            .rev()
            .find_map(|m| m["tool_calls"].get(0))
            .map(|c| c["function"].clone())
            .unwrap_or_default();
        let args: Value =
            serde_json::from_str(call["arguments"].as_str().unwrap_or("{}")).unwrap_or_default();
        return Scripted::Say(
            match (call["name"].as_str(), result.strip_prefix("error: ")) {
                (_, Some(why)) => format!("The tool could not answer: {why}."),
                (Some("calculator"), None) => format!(
                    "{} = **{result}**",
                    args["expression"].as_str().unwrap_or("").trim()
                ),
                (Some("clock"), None) => format!("It is {result} (UTC)."),
                (Some("list_notes"), None) => format!("Your notes: {result}"),
                _ => result.to_owned(),
            },
        );
    }
    let asked = last["content"].as_str().unwrap_or("");
    // The notes tools come from an MCP server, when one is configured.
    if let Some(text) = asked.strip_prefix("note: ") {
        return Scripted::Call {
            name: "add_note".into(),
            arguments: json!({ "text": text }),
        };
    }
    let question = asked.to_lowercase();
    if question.contains("my notes") {
        return Scripted::Call {
            name: "list_notes".into(),
            arguments: json!({}),
        };
    }
    if ["time", "clock", "date", "today"]
        .iter()
        .any(|w| question.contains(w))
    {
        return Scripted::Call {
            name: "clock".into(),
            arguments: json!({}),
        };
    }
    let expression: String = question
        .chars()
        .filter(|c| c.is_ascii_digit() || "+-*/^().% ".contains(*c))
        .collect();
    if expression.chars().any(|c| c.is_ascii_digit()) {
        return Scripted::Call {
            name: "calculator".into(),
            arguments: json!({ "expression": expression.trim() }),
        };
    }
    Scripted::Say(
        "I am a stand-in model with two tools. Ask me to calculate something (\"what is \
         2 + 3 * 4?\") or what time it is."
            .into(),
    )
}

/// The assistant: a real model when one is configured, else the stand-in.
async fn assistant(
    config: &Config,
    mcp_tools: Tools,
) -> Result<OpenAiAssistant, Box<dyn std::error::Error>> {
    let cfg = match &config.openai_base_url {
        Some(url) => OpenAiConfig {
            api_key: config.openai_api_key.clone(),
            system_prompt: config.system_prompt.clone(),
            ..OpenAiConfig::new(url.clone(), config.model.clone())
        },
        None => OpenAiConfig::new(scripted_model(script).await?, "scripted"),
    };
    Ok(OpenAiAssistant::new(cfg)?.with_tools(tools().with_all(mcp_tools)))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::run_app("the tools app", |state, config| async move {
        let assistant = assistant(&config, state.mcp_tools.clone()).await?;
        Ok(state.with_assistant(Arc::new(assistant)))
    })
    .await
}

/// A small exact-as-written arithmetic evaluator: + - * / % ^, unary minus, parentheses.
mod calc {
    /// Longest expression taken, in characters; deepest nesting of parentheses.
    const MAX_CHARS: usize = 200;
    const MAX_DEPTH: usize = 32;

    pub fn evaluate(expression: &str) -> Result<String, String> {
        if expression.chars().count() > MAX_CHARS {
            return Err(format!(
                "the expression is longer than {MAX_CHARS} characters"
            ));
        }
        let tokens: Vec<char> = expression.chars().filter(|c| !c.is_whitespace()).collect();
        if tokens.is_empty() {
            return Err("the expression is empty".into());
        }
        let mut p = Parser {
            tokens,
            at: 0,
            depth: 0,
        };
        let value = p.sum()?;
        if let Some(c) = p.peek() {
            return Err(format!("unexpected {c:?}"));
        }
        if !value.is_finite() {
            return Err("the result is not a finite number".into());
        }
        Ok(format_number(value))
    }

    fn format_number(v: f64) -> String {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            return format!("{}", v as i64);
        }
        let s = format!("{v:.10}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }

    struct Parser {
        tokens: Vec<char>,
        at: usize,
        depth: usize,
    }

    impl Parser {
        fn peek(&self) -> Option<char> {
            self.tokens.get(self.at).copied()
        }

        fn sum(&mut self) -> Result<f64, String> {
            let mut v = self.product()?;
            while let Some(op @ ('+' | '-')) = self.peek() {
                self.at += 1;
                let r = self.product()?;
                v = if op == '+' { v + r } else { v - r };
            }
            Ok(v)
        }

        fn product(&mut self) -> Result<f64, String> {
            let mut v = self.unary()?;
            while let Some(op @ ('*' | '/' | '%')) = self.peek() {
                self.at += 1;
                let r = self.unary()?;
                if op != '*' && r == 0.0 {
                    return Err("division by zero".into());
                }
                v = match op {
                    '*' => v * r,
                    '/' => v / r,
                    _ => v % r,
                };
            }
            Ok(v)
        }

        /// A power binds tighter than a sign before it (-2^2 is -4) and groups to the
        /// right (2^3^2 is 2^9); its exponent may have a sign (2^-1).
        fn power(&mut self) -> Result<f64, String> {
            let base = self.atom()?;
            if self.peek() == Some('^') {
                self.at += 1;
                let exp = self.nested(|p| p.unary())?;
                return Ok(base.powf(exp));
            }
            Ok(base)
        }

        fn unary(&mut self) -> Result<f64, String> {
            match self.peek() {
                Some('-') => {
                    self.at += 1;
                    self.nested(|p| p.unary()).map(|v| -v)
                }
                Some('+') => {
                    self.at += 1;
                    self.nested(|p| p.unary())
                }
                _ => self.power(),
            }
        }

        fn nested(
            &mut self,
            f: impl FnOnce(&mut Self) -> Result<f64, String>,
        ) -> Result<f64, String> {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err("the expression is nested too deeply".into());
            }
            let v = f(self);
            self.depth -= 1;
            v
        }

        fn atom(&mut self) -> Result<f64, String> {
            match self.peek() {
                Some('(') => {
                    self.at += 1;
                    let v = self.nested(|p| p.sum())?;
                    if self.peek() != Some(')') {
                        return Err("a parenthesis is not closed".into());
                    }
                    self.at += 1;
                    Ok(v)
                }
                Some(c) if c.is_ascii_digit() || c == '.' => {
                    let start = self.at;
                    while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
                        self.at += 1;
                    }
                    let text: String = self.tokens[start..self.at].iter().collect();
                    text.parse::<f64>()
                        .map_err(|_| format!("{text:?} is not a number"))
                }
                Some(c) => Err(format!("unexpected {c:?}")),
                None => Err("the expression ends too soon".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confide_core::{
        assistant::{Assistant, ReplyContext, Turn},
        model::{Role, StepKind, StepStatus},
    };
    use futures::StreamExt;

    #[test]
    fn the_calculator_follows_precedence_and_refuses_nonsense() {
        let ok = |e: &str| calc::evaluate(e).unwrap();
        assert_eq!(ok("2 + 3 * 4"), "14");
        assert_eq!(ok("(2 + 3) * 4"), "20");
        assert_eq!(ok("-2^2"), "-4");
        assert_eq!(ok("2^3^2"), "512");
        assert_eq!(ok("10 / 4"), "2.5");
        assert_eq!(ok("1 / 3"), "0.3333333333");
        assert_eq!(ok("7 % 4"), "3");
        assert_eq!(ok("2^-1"), "0.5");
        for bad in ["", "1 +", "(1", "1 / 0", "2 ** 3", "1..2", "x", "10^400"] {
            assert!(calc::evaluate(bad).is_err(), "{bad:?}");
        }
        let deep = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        assert!(calc::evaluate(&deep).unwrap_err().contains("nested"));
        assert!(
            calc::evaluate(&"-".repeat(150))
                .unwrap_err()
                .contains("nested")
        );
        assert!(
            calc::evaluate(&"1+".repeat(101))
                .unwrap_err()
                .contains("longer than")
        );
    }

    async fn ask(question: &str) -> (String, Vec<confide_core::model::Step>) {
        let model = scripted_model(script).await.unwrap();
        let a = OpenAiAssistant::new(OpenAiConfig::new(model, "scripted"))
            .unwrap()
            .with_tools(tools());
        let cx = ReplyContext::for_session(
            server::testing::user_session().await,
            vec![Turn::new(Role::User, question)],
        );
        let steps = cx.steps.clone();
        let text: Vec<_> = a.reply(cx).await.unwrap().collect().await;
        let text = text.into_iter().map(Result::unwrap).collect();
        (text, steps.snapshot())
    }

    #[tokio::test]
    async fn arithmetic_goes_through_the_calculator() {
        let (text, steps) = ask("What is 2 + 3 * 4?").await;
        assert_eq!(text, "2 + 3 * 4 = **14**");
        assert_eq!(steps.len(), 1);
        assert_eq!(
            (steps[0].kind, steps[0].name.as_str()),
            (StepKind::Tool, "calculator")
        );
        assert_eq!(steps[0].input, r#"{"expression":"2 + 3 * 4"}"#);
        assert_eq!(
            (steps[0].status, steps[0].output.as_str()),
            (StepStatus::Done, "14")
        );
    }

    #[tokio::test]
    async fn the_time_comes_from_the_clock_and_failures_are_explained() {
        let (text, steps) = ask("what time is it?").await;
        assert_eq!(steps[0].name, "clock");
        assert!(
            text.starts_with("It is 20") && text.ends_with("Z (UTC)."),
            "{text}"
        );
        let (text, steps) = ask("what is 1 / 0").await;
        assert_eq!(steps[0].status, StepStatus::Failed);
        assert_eq!(text, "The tool could not answer: division by zero.");
        let (text, steps) = ask("hello").await;
        assert!(
            steps.is_empty() && text.starts_with("I am a stand-in model"),
            "{text}"
        );
    }
}
