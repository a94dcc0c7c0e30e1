//! The built-in offline assistant: deterministic, instant to start, good for demos, tests
//! and load runs. It streams the person's text back word by word, and knows a few slash
//! commands that exercise the interface, two of which (`/remember`, `/recall`) keep a note
//! in the browser session's own values, as an application's per-person state would.

use async_trait::async_trait;
use confide_core::assistant::{
    Assistant, AssistantError, AssistantErrorKind, DeltaStream, ReplyContext,
};
use confide_core::model::{Action, Choice, Profile, SettingKind, SettingSpec, Starter, StepKind};
use confide_core::steps::Steps;
use futures::{StreamExt, stream};
use std::time::Duration;

/// The built-in offline assistant (`assistant = "echo"`).
pub struct EchoAssistant {
    /// Pause between two words.
    pub delay: Duration,
}

const HELP: &str = "I am the built-in **echo** assistant: I repeat what you write, word by word.\n\n\
Commands:\n\n\
- `/slow` — a long, slow reply (try **Stop**)\n\
- `/markdown` — a sample with a table, a list and code\n\
- `/error` — a reply that fails part-way\n\
- `/steps <text>` — count the words of the text, showing the work as steps\n\
- `/steps slow` — a tool step that runs until you press **Stop**\n\
- `/actions` — a reply with buttons that answer when pressed\n\
- `/ask` — a reply that asks your name, waits for your answer and goes on\n\
- `/attach <text>` — a reply that attaches a text file holding the text\n\
- attach files (📎, drop or paste) and I say what I received\n\
- `/remember <text>` — keep a note in this browser session\n\
- `/recall` — show the note this browser session keeps\n\
- `/help` — this list";

/// The session value `/remember` writes and `/recall` reads.
pub const MEMORY_KEY: &str = "echo.memory";

const MARKDOWN: &str = "## A markdown sample\n\n\
Confide renders **bold**, *italic*, `inline code`, [links](https://example.com) and lists:\n\n\
1. ordered\n2. items\n\n\
- and\n- bullets\n\n\
| Store | Durable | Several instances |\n|---|---|---|\n| memory | no | no |\n| SQLite | yes | no |\n| Redis | yes | yes |\n\n\
```rust\nfn main() {\n    let greeting = \"Hello from Confide\";\n    println!(\"{greeting}\");\n}\n```\n\n\
> Quoted text stays quoted.\n\n\
And HTML such as <b onclick=\"alert(1)\">this</b> is shown as text, never run.";

impl EchoAssistant {
    fn script(&self, last: &str) -> (String, Duration, Option<usize>) {
        let cmd = last.trim();
        match cmd.split_whitespace().next().unwrap_or("") {
            "/help" => (HELP.to_owned(), self.delay, None),
            "/markdown" => (MARKDOWN.to_owned(), self.delay, None),
            "/slow" => {
                let words: Vec<String> = (1..=120).map(|i| format!("word{i}")).collect();
                (
                    format!("Counting slowly: {}.", words.join(" ")),
                    self.delay.max(Duration::from_millis(150)),
                    None,
                )
            }
            "/error" => (
                "This reply starts well and then the model fails".to_owned(),
                self.delay,
                Some(5),
            ),
            _ => (last.to_owned(), self.delay, None),
        }
    }
}

/// What the person's last message carried, said back: each file's name (as inline code, so
/// no name is ever markup), type and size.
fn received(cx: &ReplyContext) -> Option<String> {
    let turn = cx
        .history
        .iter()
        .rev()
        .find(|t| t.role == confide_core::model::Role::User)?;
    if turn.attachments.is_empty() {
        return None;
    }
    let n = turn.attachments.len();
    let mut out = format!("I received {n} file{}:\n", if n == 1 { "" } else { "s" });
    for a in &turn.attachments {
        let name = a.name.replace('`', "'");
        out.push_str(&format!(
            "\n- `{name}` ({}, {})",
            a.mime,
            confide_core::model::human_size(a.size)
        ));
    }
    Some(out)
}

#[async_trait]
impl Assistant for EchoAssistant {
    async fn reply(&self, cx: ReplyContext) -> Result<DeltaStream, AssistantError> {
        let last = cx.question();
        let mut words = last.trim().splitn(2, char::is_whitespace);
        let (first, rest) = (words.next(), words.next().map(str::trim));
        let remembered = match (first, rest) {
            (Some("/remember"), Some(note)) if !note.is_empty() => {
                cx.session.set(MEMORY_KEY, note).await?;
                Some(format!(
                    "I will remember that in this browser session: {note}"
                ))
            }
            (Some("/remember"), _) => Some("Tell me what to remember: `/remember <text>`.".into()),
            (Some("/recall"), _) => Some(match cx.session.get::<String>(MEMORY_KEY).await? {
                Some(note) => format!("This browser session asked me to remember: {note}"),
                None => "This browser session has not asked me to remember anything.".into(),
            }),
            _ => None,
        };
        if first == Some("/actions") {
            for colour in ["red", "green", "blue"] {
                let mut label = colour.to_owned();
                label[..1].make_ascii_uppercase();
                cx.action("colour", label, &serde_json::json!({ "colour": colour }))
                    .map_err(|e| AssistantError::new(AssistantErrorKind::Other, e.to_string()))?;
            }
            return Ok(words_of("Pick a colour:".into(), self.delay, None));
        }
        if first == Some("/ask") {
            let delay = self.delay;
            let intro = words_of("Let me ask you something.".into(), delay, None);
            let rest = stream::once(async move {
                let text = match cx.ask("What is your name?").await {
                    Ok(name) => format!("Nice to meet you, {}!", name.trim()),
                    Err(e) => format!("No answer: {e}."),
                };
                words_of(text, delay, None)
            })
            .flatten();
            return Ok(intro.chain(rest).boxed());
        }
        if first == Some("/attach") {
            let text = rest.unwrap_or("").to_owned();
            let body = if text.is_empty() {
                "(empty note)".to_owned()
            } else {
                text
            };
            let a = cx.files.attach("note.txt", body.into_bytes()).await?;
            return Ok(words_of(
                format!(
                    "Here is your note as a file: {} ({} bytes).",
                    a.name, a.size
                ),
                self.delay,
                None,
            ));
        }
        if first == Some("/steps") {
            let text = rest.unwrap_or("").to_owned();
            return Ok(steps_reply(cx.steps.clone(), text, self.delay));
        }
        let (text, delay, fail_after) = match remembered {
            Some(text) => (text, self.delay, None),
            None if cx.profile.as_ref().is_some_and(|p| p.id == "reverse")
                && !last.trim_start().starts_with('/') =>
            {
                let words: Vec<&str> = last.split_whitespace().rev().collect();
                (words.join(" "), self.delay, None)
            }
            None => self.script(last),
        };
        let text = match cx.settings.get::<String>("style").as_deref() {
            Some("shout") => text.to_uppercase(),
            Some("whisper") => text.to_lowercase(),
            _ => text,
        };
        let text = if cx.settings.get::<bool>("sign") == Some(true) {
            format!("{text}\n\n— echo")
        } else {
            text
        };
        let text = match received(&cx) {
            Some(note) if text.trim().is_empty() => note,
            Some(note) => format!("{note}\n\n{text}"),
            None => text,
        };
        Ok(words_of(text, delay, fail_after))
    }

    fn settings(&self) -> Vec<SettingSpec> {
        vec![
            SettingSpec {
                id: "style".into(),
                label: "Style".into(),
                help: Some("How the echo sounds.".into()),
                kind: SettingKind::Select {
                    options: [
                        ("plain", "Plain"),
                        ("shout", "Shout"),
                        ("whisper", "Whisper"),
                    ]
                    .map(|(value, label)| Choice {
                        value: value.into(),
                        label: label.into(),
                    })
                    .into(),
                    default: "plain".into(),
                },
            },
            SettingSpec {
                id: "sign".into(),
                label: "Sign replies".into(),
                help: None,
                kind: SettingKind::Switch { default: false },
            },
        ]
    }

    fn profiles(&self) -> Vec<Profile> {
        let starter = |label: &str, message: &str| Starter {
            label: label.into(),
            message: message.into(),
        };
        vec![
            Profile {
                id: "echo".into(),
                name: "Echo".into(),
                description: "Repeats what you write, word by word.".into(),
                starters: vec![
                    starter("Show me what you can render", "/markdown"),
                    starter("Stream a long answer I can stop", "/slow"),
                    starter("What can you do?", "/help"),
                    starter(
                        "Echo this sentence back to me, word by word.",
                        "Echo this sentence back to me, word by word.",
                    ),
                ],
            },
            Profile {
                id: "reverse".into(),
                name: "Reverse".into(),
                description: "Repeats what you write, last word first.".into(),
                starters: vec![
                    starter("Reverse a sentence", "one two three four"),
                    starter("Show the work as steps", "/steps count these words"),
                    starter("Offer me buttons to press", "/actions"),
                ],
            },
        ]
    }

    async fn on_action(
        &self,
        _cx: ReplyContext,
        action: Action,
    ) -> Result<DeltaStream, AssistantError> {
        #[derive(serde::Deserialize)]
        struct Pick {
            colour: String,
        }
        let text = match (action.name.as_str(), action.payload::<Pick>()) {
            ("colour", Ok(p)) => format!("You picked **{}**.", p.colour),
            _ => format!("I do not know the action {:?}.", action.name),
        };
        Ok(words_of(text, self.delay, None))
    }
}

/// `text` streamed word by word, `delay` apart, failing at word `fail_after` if given.
fn words_of(text: String, delay: Duration, fail_after: Option<usize>) -> DeltaStream {
    let words: Vec<String> = text
        .split_inclusive(char::is_whitespace)
        .map(str::to_owned)
        .collect();
    let s = stream::iter(words.into_iter().enumerate()).then(move |(i, w)| async move {
        if !delay.is_zero() && i > 0 {
            tokio::time::sleep(delay).await;
        }
        match fail_after {
            Some(n) if i >= n => Err(AssistantError::new(
                AssistantErrorKind::Upstream,
                "the echo assistant failed on purpose (/error)",
            )),
            _ => Ok(w),
        }
    });
    // Stop after the first error, as a real stream would.
    let s = s.scan(false, |failed, item| {
        let out = if *failed { None } else { Some(item) };
        if let Some(Err(_)) = &out {
            *failed = true;
        }
        futures::future::ready(out)
    });
    Box::pin(s)
}

/// `/steps`: the work of counting words shown as steps (a plan, a tool with a nested
/// step), then the answer. `/steps slow` opens a tool step that only Stop ends.
fn steps_reply(steps: Steps, text: String, delay: Duration) -> DeltaStream {
    let pause = move || async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    };
    let work = async move {
        if text == "slow" {
            let _waiting = steps.start(StepKind::Tool, "wait", "until Stop is pressed");
            // Stop drops this stream, and with it the step, which then shows as stopped.
            std::future::pending::<()>().await;
        }
        steps
            .start(StepKind::Reasoning, "plan", &text)
            .done("Split the text into words, then count them.");
        pause().await;
        let tool = steps.start(
            StepKind::Tool,
            "word_count",
            serde_json::json!({ "text": text }).to_string(),
        );
        let split = tool.child(StepKind::Run, "split", &text);
        let words: Vec<&str> = text.split_whitespace().collect();
        pause().await;
        split.done(serde_json::to_string(&words).unwrap_or_default());
        let n = words.len();
        tool.done(n.to_string());
        pause().await;
        Ok::<_, AssistantError>(match n {
            1 => "I counted **1** word.".to_owned(),
            n => format!("I counted **{n}** words."),
        })
    };
    Box::pin(futures::stream::once(work))
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::Role;
    use confide_core::assistant::Turn;

    async fn collect(a: &EchoAssistant, text: &str) -> (String, Option<AssistantError>) {
        collect_in(a, crate::testing::user_session().await, text).await
    }

    async fn collect_in(
        a: &EchoAssistant,
        session: confide_core::UserSession,
        text: &str,
    ) -> (String, Option<AssistantError>) {
        let cx = ReplyContext::for_session(session, vec![Turn::new(Role::User, text)]);
        let mut s = a.reply(cx).await.unwrap();
        let mut out = String::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(d) => out.push_str(&d),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn steps_show_the_work_and_end_before_the_answer() {
        use confide_core::model::{StepKind, StepStatus};
        let a = EchoAssistant {
            delay: Duration::ZERO,
        };
        let cx = ReplyContext::for_session(
            crate::testing::user_session().await,
            vec![Turn::new(Role::User, "/steps a b")],
        );
        let steps = cx.steps.clone();
        let text: Vec<String> = a
            .reply(cx)
            .await
            .unwrap()
            .map(|d| d.unwrap())
            .collect()
            .await;
        assert_eq!(text.concat(), "I counted **2** words.");
        let got = steps.snapshot();
        let summary: Vec<_> = got
            .iter()
            .map(|s| (s.kind, s.name.as_str(), s.status, s.output.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    StepKind::Reasoning,
                    "plan",
                    StepStatus::Done,
                    "Split the text into words, then count them."
                ),
                (StepKind::Tool, "word_count", StepStatus::Done, "2"),
                (StepKind::Run, "split", StepStatus::Done, r#"["a","b"]"#),
            ]
        );
        assert_eq!(got[2].parent, Some(got[1].id));
    }

    #[tokio::test]
    async fn a_note_is_kept_in_its_own_session_only() {
        let a = EchoAssistant {
            delay: Duration::ZERO,
        };
        let (mine, theirs) = crate::testing::two_user_sessions().await;
        let (said, _) = collect_in(&a, mine.clone(), "/remember the gate code is 4711").await;
        assert!(said.contains("the gate code is 4711"), "{said}");
        assert_eq!(
            mine.get::<String>(MEMORY_KEY).await.unwrap().as_deref(),
            Some("the gate code is 4711")
        );
        let (recalled, _) = collect_in(&a, mine, "/recall").await;
        assert!(recalled.contains("the gate code is 4711"), "{recalled}");
        let (other, _) = collect_in(&a, theirs.clone(), "/recall").await;
        assert!(!other.contains("4711"), "{other}");
        assert!(other.contains("has not asked me"), "{other}");
        assert_eq!(theirs.get::<String>(MEMORY_KEY).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_note_too_large_to_keep_fails_the_reply_and_keeps_nothing() {
        let a = EchoAssistant {
            delay: Duration::ZERO,
        };
        let session = crate::testing::user_session().await;
        // Control characters take six bytes each in the stored JSON: within the message
        // limit, past the value limit.
        let note = format!("/remember a{}b", "\u{7}".repeat(15_000));
        let cx = ReplyContext::for_session(session.clone(), vec![Turn::new(Role::User, note)]);
        let err = a.reply(cx).await.err().expect("too large to keep");
        assert!(err.message.contains("the limit is"), "{}", err.message);
        assert_eq!(session.get::<String>(MEMORY_KEY).await.unwrap(), None);
    }

    #[tokio::test]
    async fn echoes_the_text_exactly() {
        let a = EchoAssistant {
            delay: Duration::ZERO,
        };
        let text = "Hello  there,\nhow are you? ünïcode ✓";
        assert_eq!(collect(&a, text).await, (text.to_owned(), None));
    }

    #[tokio::test]
    async fn error_command_fails_part_way_and_keeps_what_came() {
        let a = EchoAssistant {
            delay: Duration::ZERO,
        };
        let (text, err) = collect(&a, "/error").await;
        assert_eq!(text, "This reply starts well and ");
        assert_eq!(err.unwrap().kind, AssistantErrorKind::Upstream);
    }

    #[tokio::test]
    async fn markdown_command_has_a_code_block() {
        let a = EchoAssistant {
            delay: Duration::ZERO,
        };
        assert!(collect(&a, "/markdown").await.0.contains("```rust"));
    }
}
