//! What every request of every session shares: the assistant, the event hub and the
//! replies streaming right now. The replies map is only ever touched through `Replies`
//! and the `Slot` a reply holds while it runs, so an entry cannot outlive its task (a
//! slot removes its own entry when dropped, a panicking task's included) nor remove a
//! newer reply's.

use crate::{
    ApiError, SessionId,
    assistant::Assistant,
    events::EventHub,
    files::{FileLimits, FileStore},
    model::{Message, MessageId, MessageStatus, ThreadId},
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Shared by all requests: the assistant, the event hub and the replies in progress.
pub struct ChatRuntime {
    pub(super) assistant: Arc<dyn Assistant>,
    pub(super) hub: Arc<dyn EventHub>,
    pub(super) replies: Replies,
    pub(super) turns: TurnLocks,
    /// Least time between two `Delta` events of one reply.
    pub delta_interval: Duration,
    /// Least time between two saves of a streaming reply.
    pub persist_interval: Duration,
    /// Most messages the assistant is shown, the latest ones. A turn reads only this end of
    /// its thread, so its cost does not grow with the thread.
    pub history_turns: usize,
    /// How long a reply waits for the answer to a question it asked (`ReplyContext::ask`)
    /// unless the question says otherwise; past it the reply ends with the question.
    pub ask_timeout: Duration,
    /// Where the sessions' files are kept (in memory unless the server says otherwise).
    pub files: Arc<FileStore>,
    /// Daily limits of messages and model tokens; off unless the server sets them.
    pub quotas: super::Quotas,
}

impl ChatRuntime {
    /// A runtime whose replies `assistant` writes and whose events go through `hub`, with
    /// the default intervals and history bound.
    pub fn new(assistant: Arc<dyn Assistant>, hub: Arc<dyn EventHub>) -> Self {
        Self {
            assistant,
            hub,
            replies: Replies::default(),
            turns: TurnLocks::default(),
            delta_interval: Duration::from_millis(50),
            persist_interval: Duration::from_millis(500),
            history_turns: 40,
            ask_timeout: Duration::from_secs(600),
            files: Arc::new(FileStore::in_memory(FileLimits::default())),
            quotas: super::Quotas::default(),
        }
    }

    /// Where every instance's events go.
    pub fn hub(&self) -> &Arc<dyn EventHub> {
        &self.hub
    }

    /// Replies currently streaming, across all sessions.
    pub fn running_replies(&self) -> usize {
        self.replies.len()
    }

    /// Stops every reply of a session (it is being deleted or replaced).
    pub fn cancel_session(&self, sid: &SessionId) {
        self.replies.cancel_session(sid);
    }
}

type Key = (SessionId, ThreadId);
type Map = Arc<Mutex<HashMap<Key, Running>>>;

struct Running {
    /// The reply the task was admitted with: who the entry belongs to.
    origin: MessageId,
    /// The message the task writes now: `origin`, or the one that goes on after an answer.
    message: MessageId,
    cancel: CancellationToken,
    /// Set while the reply waits for the person's answer to its question.
    asking: Option<oneshot::Sender<Continuation>>,
}

/// The person's answer to a reply's question, and the message the reply goes on in.
pub(super) struct Continuation {
    pub(super) answer: String,
    pub(super) reply: Message,
}

/// (session, thread) → the reply streaming there, on this instance. One reply per thread at
/// a time.
#[derive(Default)]
pub(super) struct Replies {
    map: Map,
}

/// A reply's hold on its thread, from the moment it is admitted until its task lets go.
pub(super) struct Slot {
    map: Map,
    key: Key,
    origin: MessageId,
    pub(super) cancel: CancellationToken,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Only this reply's own entry: a next turn may have taken the thread already, once
        // it read this reply as finished.
        if let Ok(mut r) = self.map.lock()
            && r.get(&self.key)
                .is_some_and(|run| run.origin == self.origin)
        {
            r.remove(&self.key);
        }
    }
}

impl Slot {
    /// Marks the reply as waiting for the answer to its question, which the thread's next
    /// message will be; `None` if the thread was taken by another reply meanwhile.
    pub(super) fn await_answer(&self) -> Option<oneshot::Receiver<Continuation>> {
        let mut r = self.map.lock().ok()?;
        let run = r
            .get_mut(&self.key)
            .filter(|run| run.origin == self.origin)?;
        let (tx, rx) = oneshot::channel();
        run.asking = Some(tx);
        Some(rx)
    }

    /// No longer waits for an answer (the wait is over, one way or another).
    pub(super) fn stop_asking(&self) {
        if let Ok(mut r) = self.map.lock()
            && let Some(run) = r.get_mut(&self.key).filter(|run| run.origin == self.origin)
        {
            run.asking = None;
        }
    }
}

/// (session, thread) → the lock a request holds while it changes the thread's turns (send,
/// edit, regenerate, act), on this instance. Without it, two edits from two tabs interleave:
/// the later one's truncation drops the reply the earlier one just started, and the thread
/// is left with a question and no answer.
#[derive(Default)]
pub(super) struct TurnLocks {
    map: Arc<Mutex<TurnMap>>,
}

/// Weak, so that an entry nobody holds or waits for costs nothing but its slot, which the
/// last holder removes or, if a waiter gave up, the next sweep does.
#[derive(Default)]
struct TurnMap {
    locks: HashMap<Key, std::sync::Weak<tokio::sync::Mutex<()>>>,
    /// The size after the last sweep: sweeping again only once it doubles keeps it amortised.
    swept: usize,
}

/// A held turn lock; dropping it lets the next request in.
pub(super) struct TurnGuard {
    map: Arc<Mutex<TurnMap>>,
    key: Key,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl TurnLocks {
    pub(super) async fn lock(&self, sid: &SessionId, thread: &ThreadId) -> TurnGuard {
        let key = (*sid, *thread);
        let lock = match self.map.lock() {
            Ok(mut m) => {
                if m.locks.len() > 2 * m.swept.max(64) {
                    m.locks.retain(|_, l| l.strong_count() > 0);
                    m.swept = m.locks.len();
                }
                match m.locks.get(&key).and_then(std::sync::Weak::upgrade) {
                    Some(l) => l,
                    None => {
                        let l = Arc::new(tokio::sync::Mutex::new(()));
                        m.locks.insert(key, Arc::downgrade(&l));
                        l
                    }
                }
            }
            // A poisoned map cannot serialise; the reply's admission still refuses a second
            // reply in the thread.
            Err(_) => Arc::default(),
        };
        TurnGuard {
            map: self.map.clone(),
            key,
            guard: Some(lock.lock_owned().await),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().map(|m| m.locks.len()).unwrap_or(0)
    }
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        self.guard.take();
        if let Ok(mut m) = self.map.lock()
            && m.locks
                .get(&self.key)
                .is_some_and(|l| l.strong_count() == 0)
        {
            m.locks.remove(&self.key);
        }
    }
}

/// Whether `reply` is among `messages` in a final state.
pub(super) fn finished(messages: &[Message], reply: &MessageId) -> bool {
    messages
        .iter()
        .any(|m| m.id == *reply && m.status != MessageStatus::Streaming)
}

impl Replies {
    fn len(&self) -> usize {
        self.map.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Admits `reply` to the thread, unless another reply still streams there. `history` is
    /// the thread's end as just read (see `busy`).
    pub(super) fn admit(
        &self,
        sid: &SessionId,
        thread: &ThreadId,
        reply: MessageId,
        history: &[Message],
    ) -> Result<Slot, ApiError> {
        let mut running = self.map.lock().map_err(|_| ApiError::internal())?;
        let key = (*sid, *thread);
        if running
            .get(&key)
            .is_some_and(|run| !finished(history, &run.message))
        {
            return Err(ApiError::busy());
        }
        let cancel = CancellationToken::new();
        // A reply that waited for an answer here loses the thread (its sender is dropped
        // with its entry, which ends its wait).
        running.insert(
            key,
            Running {
                origin: reply,
                message: reply,
                cancel: cancel.clone(),
                asking: None,
            },
        );
        Ok(Slot {
            map: self.map.clone(),
            key,
            origin: reply,
            cancel,
        })
    }

    /// If a reply in the thread waits for an answer, hands it over to the caller, with the
    /// thread now held for `next` (the message the reply goes on in): a second message sent
    /// meanwhile finds the thread busy, as it would with any streaming reply. `history` is
    /// the thread's end as just read, the new message last: the question must be the message
    /// before it, or the message answers nothing (another instance took a turn meanwhile,
    /// or the question was edited away).
    /// Whether a reply in the thread waits for the person's answer to its question: the
    /// next message answers it rather than asking anew.
    pub(super) fn is_asking(&self, sid: &SessionId, thread: &ThreadId) -> bool {
        self.map.lock().ok().is_some_and(|r| {
            r.get(&(*sid, *thread))
                .and_then(|run| run.asking.as_ref())
                .is_some_and(|tx| !tx.is_closed())
        })
    }

    pub(super) fn take_answer(
        &self,
        sid: &SessionId,
        thread: &ThreadId,
        next: MessageId,
        history: &[Message],
    ) -> Option<oneshot::Sender<Continuation>> {
        let mut r = self.map.lock().ok()?;
        let run = r.get_mut(&(*sid, *thread))?;
        let asked_last = history
            .iter()
            .rev()
            .nth(1)
            .is_some_and(|m| m.id == run.message && m.role == crate::model::Role::Assistant);
        if !asked_last {
            return None;
        }
        let tx = run.asking.take().filter(|tx| !tx.is_closed())?;
        run.message = next;
        Some(tx)
    }

    /// Gives the question back to its reply: the answer taken by `take_answer` for `next`
    /// could not be stored, and the reply waits on.
    pub(super) fn restore(
        &self,
        sid: &SessionId,
        thread: &ThreadId,
        next: &MessageId,
        tx: oneshot::Sender<Continuation>,
    ) {
        if let Ok(mut r) = self.map.lock()
            && let Some(run) = r
                .get_mut(&(*sid, *thread))
                .filter(|run| run.message == *next)
        {
            run.message = run.origin;
            run.asking = Some(tx);
        }
    }

    /// Lets go of a thread taken for `next` by `take_answer` whose reply will not go on.
    pub(super) fn release(&self, sid: &SessionId, thread: &ThreadId, next: &MessageId) {
        if let Ok(mut r) = self.map.lock()
            && r.get(&(*sid, *thread))
                .is_some_and(|run| run.message == *next)
        {
            r.remove(&(*sid, *thread));
        }
    }

    /// Whether a reply is being generated in the thread, given the thread's messages as just
    /// read (its last ones suffice: the reply in progress is the thread's last message, as no
    /// turn is appended while it runs). A reply is saved in its final state a moment before
    /// its task lets go of the thread, and a reader may see the saved state in between: the
    /// stored status is the later word, so a running entry whose reply is stored as finished
    /// no longer counts.
    pub(super) fn busy(&self, sid: &SessionId, thread: &ThreadId, messages: &[Message]) -> bool {
        let Ok(r) = self.map.lock() else {
            return false;
        };
        r.get(&(*sid, *thread))
            .is_some_and(|run| !finished(messages, &run.message))
    }

    /// The cancel handle of `message`, if it is the reply streaming in `thread` here.
    pub(super) fn cancel_of(
        &self,
        sid: &SessionId,
        thread: &ThreadId,
        message: &MessageId,
    ) -> Option<CancellationToken> {
        let r = self.map.lock().ok()?;
        r.get(&(*sid, *thread))
            .filter(|run| run.message == *message)
            .map(|run| run.cancel.clone())
    }

    pub(super) fn cancel_session(&self, sid: &SessionId) {
        if let Ok(r) = self.map.lock() {
            for ((s, _), run) in r.iter() {
                if s == sid {
                    run.cancel.cancel();
                }
            }
        }
    }

    pub(super) fn cancel_thread(&self, sid: &SessionId, thread: &ThreadId) {
        if let Ok(r) = self.map.lock()
            && let Some(run) = r.get(&(*sid, *thread))
        {
            run.cancel.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn ids() -> (SessionId, ThreadId) {
        (SessionId::random(), ThreadId::random())
    }

    #[test]
    fn a_slot_lets_go_of_its_thread_when_dropped_and_never_of_a_newer_reply() {
        let replies = Replies::default();
        let (sid, thread) = ids();
        let first = MessageId::random();
        let slot = replies.admit(&sid, &thread, first, &[]).unwrap();
        assert!(replies.busy(&sid, &thread, &[]));
        let again = replies.admit(&sid, &thread, MessageId::random(), &[]);
        assert_eq!(again.err().map(|e| e.code), Some(ErrorCode::Busy));
        // The first reply is read as finished: a next one may take the thread before the
        // first task drops its slot, and that drop must leave the newer entry alone.
        let done = message(first, thread, crate::model::Role::Assistant);
        let second = replies
            .admit(
                &sid,
                &thread,
                MessageId::random(),
                std::slice::from_ref(&done),
            )
            .unwrap();
        drop(slot);
        assert!(
            replies.busy(&sid, &thread, &[]),
            "the newer reply lost its entry"
        );
        assert_eq!(replies.len(), 1);
        drop(second);
        assert!(!replies.busy(&sid, &thread, &[]));
        assert_eq!(replies.len(), 0);
    }

    #[tokio::test]
    async fn a_turn_lock_holds_off_the_same_thread_only_and_leaves_nothing_behind() {
        let locks = TurnLocks::default();
        let (sid, thread) = ids();
        let held = locks.lock(&sid, &thread).await;
        let same = tokio::time::timeout(Duration::from_millis(50), locks.lock(&sid, &thread));
        assert!(same.await.is_err(), "a second turn got in beside the first");
        // Another thread of the session, and the same thread id under another session, go on.
        let _other = locks.lock(&sid, &ThreadId::random()).await;
        let _foreign = locks.lock(&SessionId::random(), &thread).await;
        let waiter = tokio::spawn({
            let locks = Arc::new(locks);
            let l = locks.clone();
            async move {
                let _g = l.lock(&sid, &thread).await;
                locks
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the waiter did not wait");
        drop(held);
        let locks = waiter.await.unwrap();
        drop((_other, _foreign));
        assert_eq!(locks.len(), 0, "entries outlived their holders");
    }

    #[test]
    fn cancelling_reaches_only_the_named_session_or_thread() {
        let replies = Replies::default();
        let (a, t1) = ids();
        let (b, t2) = ids();
        let sa = replies.admit(&a, &t1, MessageId::random(), &[]).unwrap();
        let sb = replies.admit(&b, &t2, MessageId::random(), &[]).unwrap();
        replies.cancel_session(&a);
        assert!(sa.cancel.is_cancelled());
        assert!(!sb.cancel.is_cancelled());
        replies.cancel_thread(&b, &t1);
        assert!(!sb.cancel.is_cancelled());
        replies.cancel_thread(&b, &t2);
        assert!(sb.cancel.is_cancelled());
    }

    fn message(id: MessageId, thread: ThreadId, role: crate::model::Role) -> Message {
        Message {
            id,
            thread_id: thread,
            role,
            content: String::new(),
            created_ms: 0,
            status: MessageStatus::Done,
            feedback: None,
            error: None,
            steps: Vec::new(),
            actions: Vec::new(),
            attachments: Vec::new(),
        }
    }

    #[test]
    fn only_the_message_right_after_the_question_answers_it() {
        use crate::model::Role;
        let replies = Replies::default();
        let (sid, thread) = ids();
        let question = MessageId::random();
        let slot = replies.admit(&sid, &thread, question, &[]).unwrap();
        let _answered = slot.await_answer().unwrap();
        let asked = message(question, thread, Role::Assistant);
        let later = message(MessageId::random(), thread, Role::Assistant);
        let user = message(MessageId::random(), thread, Role::User);
        // Another turn came between (on another instance, say): not an answer.
        let stale = [asked.clone(), user.clone(), later, user.clone()];
        assert!(
            replies
                .take_answer(&sid, &thread, MessageId::random(), &stale)
                .is_none()
        );
        let next = MessageId::random();
        let tx = replies
            .take_answer(&sid, &thread, next, &[asked, user])
            .expect("the answer right after the question");
        // Taken once; a store failure gives it back, and it can be taken again.
        assert!(replies.busy(&sid, &thread, &[]));
        replies.restore(&sid, &thread, &next, tx);
        assert!(slot.await_answer().is_some());
        drop(slot);
        assert_eq!(replies.len(), 0);
    }
}
