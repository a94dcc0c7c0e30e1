//! A per-person memory app built on Confide: the assistant keeps what each browser asks it
//! to remember in that browser's own session, so two people behind one address (an office,
//! a phone network) never see each other's notes.
//!
//! ```sh
//! cargo leptos build            # the page and its wasm, once
//! cargo run -p server --example memory
//! ```
//!
//! Then write "remember my locker is 42", "what do you remember?" or "forget everything".
//! It reads the same configuration as `confide` (`confide.toml`, `CONFIDE_*`).

use confide_core::assistant::{Assistant, AssistantError, DeltaStream, ReplyContext};
use futures::{StreamExt, stream};
use std::sync::Arc;

/// The session value the facts live in.
const FACTS_KEY: &str = "memory.facts";
/// Most facts one session keeps; the oldest goes first.
const MAX_FACTS: usize = 20;

/// The app's assistant: remembers, recalls and forgets, per browser session.
struct Memory;

#[async_trait::async_trait]
impl Assistant for Memory {
    async fn reply(&self, cx: ReplyContext) -> Result<DeltaStream, AssistantError> {
        let question = cx.question().trim();
        let lower = question.to_lowercase();
        let mut facts: Vec<String> = cx.session.get(FACTS_KEY).await?.unwrap_or_default();
        // `get`: never slice text by a length read from another spelling of it.
        let fact = lower
            .starts_with("remember ")
            .then(|| question.get("remember ".len()..))
            .flatten()
            .map(str::trim)
            .filter(|f| !f.is_empty());
        let answer = if let Some(fact) = fact {
            facts.push(fact.to_owned());
            let excess = facts.len().saturating_sub(MAX_FACTS);
            facts.drain(..excess);
            cx.session.set(FACTS_KEY, &facts).await?;
            format!("Noted: {fact}. I keep it for this browser only.")
        } else if lower.starts_with("forget") {
            cx.session.remove(FACTS_KEY).await?;
            "Forgotten. I remember nothing of this browser now.".to_owned()
        } else if facts.is_empty() {
            "I remember nothing of this browser yet. Say \"remember …\" and I will.".to_owned()
        } else {
            let list: Vec<String> = facts.iter().map(|f| format!("- {f}")).collect();
            format!(
                "Here is what this browser asked me to remember:\n\n{}",
                list.join("\n")
            )
        };
        let greeting = cx
            .account
            .map(|a| format!("{}, ", a.name))
            .unwrap_or_default();
        let text = format!("{greeting}{answer}");
        let words: Vec<Result<String, AssistantError>> = text
            .split_inclusive(' ')
            .map(|w| Ok(w.to_owned()))
            .collect();
        Ok(stream::iter(words).boxed())
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::run_app("the memory app", |state, _config| async move {
        Ok(state.with_assistant(Arc::new(Memory)))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use confide_core::{UserSession, assistant::Turn, model::Role};

    async fn ask(session: &UserSession, text: &str) -> String {
        let cx = ReplyContext::for_session(session.clone(), vec![Turn::new(Role::User, text)]);
        let pieces: Vec<_> = Memory.reply(cx).await.unwrap().collect().await;
        pieces.into_iter().map(Result::unwrap).collect()
    }

    #[tokio::test]
    async fn each_browser_recalls_only_its_own_facts() {
        let (mine, theirs) = server::testing::two_user_sessions().await;
        assert!(
            ask(&mine, "remember my locker is 42")
                .await
                .starts_with("Noted: my locker is 42.")
        );
        ask(&mine, "Remember the cat is called Ada").await;
        let recalled = ask(&mine, "what do you remember?").await;
        assert!(
            recalled.contains("- my locker is 42\n- the cat is called Ada"),
            "{recalled}"
        );
        let other = ask(&theirs, "what do you remember?").await;
        assert!(
            other.starts_with("I remember nothing of this browser yet"),
            "{other}"
        );
        assert!(!other.contains("42"), "{other}");
    }

    #[tokio::test]
    async fn forgetting_empties_this_browser_only_and_old_facts_make_room() {
        let (mine, theirs) = server::testing::two_user_sessions().await;
        ask(&theirs, "remember their fact").await;
        for i in 0..MAX_FACTS + 3 {
            ask(&mine, &format!("remember fact {i}")).await;
        }
        let facts: Vec<String> = mine.get(FACTS_KEY).await.unwrap().unwrap();
        assert_eq!(facts.len(), MAX_FACTS);
        assert_eq!(facts[0], "fact 3", "the oldest went first");
        ask(&mine, "forget everything").await;
        assert_eq!(mine.get::<Vec<String>>(FACTS_KEY).await.unwrap(), None);
        assert!(
            ask(&theirs, "what do you remember?")
                .await
                .contains("their fact")
        );
    }
}
