//! What the hubs that carry events between processes share: which sessions have listeners
//! here (to resync them after a lost connection), and what is still on its way out.

use app::SessionId;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// Sessions with at least one listener in this process, with how many.
pub(super) type Listening = Arc<Mutex<HashMap<SessionId, usize>>>;

/// The sessions of `listening`, for a resync after events may have been missed.
pub(super) fn listened(listening: &Listening) -> Vec<SessionId> {
    listening
        .lock()
        .map(|l| l.keys().copied().collect())
        .unwrap_or_default()
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
