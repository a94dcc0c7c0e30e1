//! What the hubs that carry events between processes share: which sessions have listeners
//! here (to resync them after a lost connection), and what is still on its way out.

use app::{SessionId, model::ChatEvent};
use confide_core::events::{EventHub, LocalHub};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// Sessions with at least one listener in this process, with how many.
pub(super) type Listening = Arc<Mutex<HashMap<SessionId, usize>>>;

/// Tells every session with listeners here to reload what it shows: events may have been
/// missed while the connection to the others was down.
pub(super) fn resync(local: &LocalHub, listening: &Listening) {
    let sessions: Vec<SessionId> = listening
        .lock()
        .map(|l| l.keys().copied().collect())
        .unwrap_or_default();
    for s in &sessions {
        local.publish(s, ChatEvent::Resync);
    }
}

/// Registration of one listener; unregisters on drop.
pub(super) struct Listener {
    listening: Listening,
    session: SessionId,
}

impl Listener {
    pub(super) fn new(listening: Listening, session: SessionId) -> Self {
        if let Ok(mut l) = listening.lock() {
            *l.entry(session).or_default() += 1;
        }
        Self { listening, session }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Ok(mut l) = self.listening.lock()
            && let Some(n) = l.get_mut(&self.session)
        {
            *n -= 1;
            if *n == 0 {
                l.remove(&self.session);
            }
        }
    }
}

/// What the outbox holds or the publishing task is sending, and a wake-up at each batch.
#[derive(Clone, Default)]
pub(super) struct Pending {
    count: Arc<std::sync::atomic::AtomicUsize>,
    drained: Arc<tokio::sync::Notify>,
}

impl Pending {
    pub(super) fn add(&self) {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub(super) fn done(&self, n: usize) {
        self.count.fetch_sub(n, std::sync::atomic::Ordering::SeqCst);
        self.drained.notify_waiters();
    }

    pub(super) fn flushed(&self) -> futures::future::BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            loop {
                // Registered before the check, so a batch finishing in between still wakes it.
                let wait = this.drained.notified();
                if this.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    return;
                }
                wait.await;
            }
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use app::model::{ChatEvent, ThreadId};
    use confide_core::events::Feed;
    use futures::{Stream, StreamExt};
    use std::time::Duration;

    pub(in crate::store) fn event() -> ChatEvent {
        ChatEvent::ThreadDeleted {
            thread_id: ThreadId::random(),
        }
    }

    pub(in crate::store) async fn next(feed: &mut (impl Stream<Item = Feed> + Unpin)) -> Feed {
        tokio::time::timeout(Duration::from_secs(5), feed.next())
            .await
            .expect("an event within 5 s")
            .expect("the feed is open")
    }

    pub(in crate::store) fn is(feed: &Feed, event: &ChatEvent) -> bool {
        matches!(feed, Feed::Event(e) if **e == *event)
    }
}
