//! The steps of one reply: what an assistant shows of its work on the way to its text (a
//! tool call, a retrieval, its reasoning). An assistant opens a step from its
//! [`ReplyContext`](crate::assistant::ReplyContext), may open steps inside it, and ends each
//! with an output or a failure. Confide streams each change to the person's page, saves the
//! steps with the reply, and exports them.
//!
//! A step that is dropped without being ended counts as stopped: a reply cancelled by Stop
//! drops its stream, and with it the handles of the steps that were still running.

use crate::model::{
    Action, ActionId, MAX_ACTION_LABEL_CHARS, MAX_ACTION_PAYLOAD_BYTES, MAX_ACTIONS,
    MAX_STEP_NAME_CHARS, MAX_STEP_TEXT_CHARS, MAX_STEPS, Step, StepId, StepKind, StepStatus,
};
use crate::store::now_ms;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The steps of one reply, shared by the handles of its open steps and the task that
/// streams the reply. Cheap to clone.
#[derive(Clone, Default)]
pub struct Steps {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    steps: Mutex<Vec<Step>>,
    // One waiter, the reply's task: a change made while it is busy leaves a permit, and
    // any number of changes meanwhile are picked up by one look. Shared with the reply's
    // `Actions`, so the task watches one signal for both.
    changed: Arc<Notify>,
}

impl std::fmt::Debug for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steps")
            .field("count", &self.snapshot().len())
            .finish()
    }
}

/// `text` cut to `max` characters, the cut marked with "…".
fn bounded(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text,
        Some((at, _)) => {
            let mut cut = text[..at].to_owned();
            cut.pop();
            cut.push('…');
            cut
        }
    }
}

impl Steps {
    /// No steps yet (a reply's come with its `ReplyContext`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a top-level step.
    pub fn start(
        &self,
        kind: StepKind,
        name: impl Into<String>,
        input: impl Into<String>,
    ) -> StepHandle {
        self.open(None, kind, name.into(), input.into())
    }

    /// The steps as they stand, in the order they began.
    pub fn snapshot(&self) -> Vec<Step> {
        self.shared
            .steps
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The reply's actions, announced through the same signal as its steps.
    pub(crate) fn linked_actions(&self) -> Actions {
        Actions {
            list: Default::default(),
            changed: self.shared.changed.clone(),
        }
    }

    /// The signal the reply's task watches, for other things a reply adds (its files).
    pub(crate) fn signal(&self) -> Arc<Notify> {
        self.shared.changed.clone()
    }

    /// Resolves once a step has begun or ended, or an action was added, since the last time
    /// it resolved.
    pub(crate) async fn changed(&self) {
        self.shared.changed.notified().await
    }

    /// Ends every step still running with `status`: the reply they belong to has ended.
    pub(crate) fn end_running(&self, status: StepStatus) {
        self.update(|steps| {
            let now = now_ms();
            for s in steps.iter_mut().filter(|s| !s.ended()) {
                s.status = status;
                s.ended_ms = Some(now);
            }
        });
    }

    fn update(&self, f: impl FnOnce(&mut Vec<Step>)) {
        if let Ok(mut steps) = self.shared.steps.lock() {
            f(&mut steps);
        }
        self.shared.changed.notify_one();
    }

    fn open(
        &self,
        parent: Option<StepId>,
        kind: StepKind,
        name: String,
        input: String,
    ) -> StepHandle {
        let step = Step {
            id: StepId::random(),
            parent,
            kind,
            name: bounded(name, MAX_STEP_NAME_CHARS),
            input: bounded(input, MAX_STEP_TEXT_CHARS),
            output: String::new(),
            status: StepStatus::Running,
            started_ms: now_ms(),
            ended_ms: None,
        };
        let mut kept = None;
        self.update(|steps| {
            // Past the limit a step still works for the code that opened it; the page is
            // not told about it.
            if steps.len() < MAX_STEPS {
                kept = Some(step.id);
                steps.push(step);
            }
        });
        StepHandle {
            steps: self.clone(),
            id: kept,
            ended: false,
        }
    }

    fn end(&self, id: StepId, status: StepStatus, output: String) {
        self.update(|steps| {
            if let Some(s) = steps.iter_mut().find(|s| s.id == id && !s.ended()) {
                s.status = status;
                s.output = bounded(output, MAX_STEP_TEXT_CHARS);
                s.ended_ms = Some(now_ms());
            }
        });
    }
}

/// The buttons a reply offers under its text (see
/// [`ReplyContext::action`](crate::assistant::ReplyContext::action)).
#[derive(Clone, Default)]
pub struct Actions {
    list: Arc<Mutex<Vec<Action>>>,
    changed: Arc<Notify>,
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.snapshot()).finish()
    }
}

/// Why an action could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The reply offers `MAX_ACTIONS` already.
    #[error("a reply offers at most {MAX_ACTIONS} actions")]
    TooMany,
    /// The payload is over `MAX_ACTION_PAYLOAD_BYTES` as JSON.
    #[error("an action's payload is at most {MAX_ACTION_PAYLOAD_BYTES} bytes of JSON")]
    PayloadTooLarge,
    /// The payload's `Serialize` failed.
    #[error("the payload cannot be written as JSON: {0}")]
    Payload(String),
}

impl Actions {
    /// Adds a button labelled `label`; a click calls the assistant's `on_action` with an
    /// [`Action`] named `name` that carries `payload`.
    pub fn add(
        &self,
        name: impl Into<String>,
        label: impl Into<String>,
        payload: &impl serde::Serialize,
    ) -> Result<ActionId, ActionError> {
        let payload =
            serde_json::to_string(payload).map_err(|e| ActionError::Payload(e.to_string()))?;
        if payload.len() > MAX_ACTION_PAYLOAD_BYTES {
            return Err(ActionError::PayloadTooLarge);
        }
        let action = Action {
            id: ActionId::random(),
            name: bounded(name.into(), MAX_STEP_NAME_CHARS),
            label: bounded(label.into(), MAX_ACTION_LABEL_CHARS),
            payload,
        };
        let id = action.id;
        {
            let mut list = self.list.lock().map_err(|_| ActionError::TooMany)?;
            if list.len() >= MAX_ACTIONS {
                return Err(ActionError::TooMany);
            }
            list.push(action);
        }
        self.changed.notify_one();
        Ok(id)
    }

    /// The actions as they stand, in the order they were added.
    pub fn snapshot(&self) -> Vec<Action> {
        self.list.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// An open step. End it with [`done`](Self::done) or [`fail`](Self::fail); dropped while
/// open, it is marked stopped.
#[must_use = "a step is shown as running until it is ended"]
pub struct StepHandle {
    steps: Steps,
    /// `None` past `MAX_STEPS`.
    id: Option<StepId>,
    ended: bool,
}

impl StepHandle {
    /// The step's id, unless it was opened past the limit and is not recorded.
    pub fn id(&self) -> Option<StepId> {
        self.id
    }

    /// Opens a step inside this one.
    pub fn child(
        &self,
        kind: StepKind,
        name: impl Into<String>,
        input: impl Into<String>,
    ) -> StepHandle {
        self.steps.open(self.id, kind, name.into(), input.into())
    }

    /// Ends the step with its result.
    pub fn done(self, output: impl Into<String>) {
        self.end(StepStatus::Done, output.into());
    }

    /// Ends the step as failed, saying why.
    pub fn fail(self, why: impl Into<String>) {
        self.end(StepStatus::Failed, why.into());
    }

    fn end(mut self, status: StepStatus, output: String) {
        self.ended = true;
        if let Some(id) = self.id {
            self.steps.end(id, status, output);
        }
    }
}

impl Drop for StepHandle {
    fn drop(&mut self) {
        if !self.ended
            && let Some(id) = self.id
        {
            self.steps.end(id, StepStatus::Stopped, String::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn steps_nest_end_once_and_count_as_stopped_when_dropped() {
        let steps = Steps::new();
        let tool = steps.start(StepKind::Tool, "calculator", "2+2");
        let inner = tool.child(StepKind::Run, "parse", "2+2");
        inner.done("Add(2, 2)");
        let dropped = steps.start(StepKind::Retrieval, "search", "");
        drop(dropped);
        tool.done("4");
        let all = steps.snapshot();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].parent, Some(all[0].id));
        assert_eq!(
            all.iter().map(|s| s.status).collect::<Vec<_>>(),
            [StepStatus::Done, StepStatus::Done, StepStatus::Stopped]
        );
        assert_eq!(all[0].output, "4");
        assert!(all.iter().all(|s| s.ended_ms.is_some()));
        // The changes left a permit: the reply's task sees them without having waited.
        tokio::time::timeout(std::time::Duration::from_secs(5), steps.changed())
            .await
            .expect("a change is noticed");
    }

    #[test]
    fn steps_and_their_text_are_bounded() {
        let steps = Steps::new();
        let handles: Vec<_> = (0..MAX_STEPS + 5)
            .map(|i| steps.start(StepKind::Run, format!("step {i}"), ""))
            .collect();
        assert_eq!(steps.snapshot().len(), MAX_STEPS);
        assert_eq!(handles.last().unwrap().id(), None);
        drop(handles);
        let s = Steps::new();
        s.start(
            StepKind::Tool,
            "n".repeat(500),
            "é".repeat(MAX_STEP_TEXT_CHARS + 1),
        )
        .done("o".repeat(MAX_STEP_TEXT_CHARS));
        let got = &s.snapshot()[0];
        assert_eq!(got.name.chars().count(), MAX_STEP_NAME_CHARS);
        assert!(got.name.ends_with('…'));
        assert_eq!(got.input.chars().count(), MAX_STEP_TEXT_CHARS);
        assert!(got.input.ends_with('…'));
        assert_eq!(
            got.output.chars().count(),
            MAX_STEP_TEXT_CHARS,
            "at the limit, kept whole"
        );
        assert!(!got.output.ends_with('…'));
    }

    #[tokio::test]
    async fn actions_are_bounded_and_announced_with_the_steps() {
        let steps = Steps::new();
        let actions = steps.linked_actions();
        let id = actions
            .add("pick", "Red", &serde_json::json!({ "colour": "red" }))
            .unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), steps.changed())
            .await
            .expect("an action is a change of the reply");
        let got = actions.snapshot();
        assert_eq!((got[0].id, got[0].label.as_str()), (id, "Red"));
        assert_eq!(
            got[0].payload::<serde_json::Value>().unwrap()["colour"],
            "red"
        );
        assert_eq!(
            actions.add("pick", "big", &"x".repeat(MAX_ACTION_PAYLOAD_BYTES)),
            Err(ActionError::PayloadTooLarge)
        );
        for i in 1..MAX_ACTIONS {
            actions.add("pick", format!("{i}"), &i).unwrap();
        }
        assert_eq!(
            actions.add("pick", "one more", &()),
            Err(ActionError::TooMany)
        );
        let long = actions.snapshot();
        assert_eq!(long.len(), MAX_ACTIONS);
        let labelled = Steps::new().linked_actions();
        labelled.add("n", "l".repeat(100), &()).unwrap();
        assert_eq!(
            labelled.snapshot()[0].label.chars().count(),
            MAX_ACTION_LABEL_CHARS
        );
    }

    #[test]
    fn ending_the_reply_ends_what_is_still_running() {
        let steps = Steps::new();
        let open = steps.start(StepKind::Tool, "slow", "");
        steps.end_running(StepStatus::Stopped);
        let s = &steps.snapshot()[0];
        assert_eq!(s.status, StepStatus::Stopped);
        // The handle dropped later changes nothing more.
        let ended_at = s.ended_ms;
        open.done("late");
        assert_eq!(steps.snapshot()[0].output, "");
        assert_eq!(steps.snapshot()[0].ended_ms, ended_at);
    }
}
