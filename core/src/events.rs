//! Live events of a session, fanned out to every tab (and, with a shared hub, every server
//! instance) that listens. Events are addressed by session id only: a subscriber can only
//! name the session the guard verified for it.
//!
//! The hub also carries the end of a session: `end` closes every stream that listens under
//! that id, on every instance, at once (a stream must not outlive the session it was opened
//! for, and a recheck every few seconds is too late).

use crate::{SessionId, model::ChatEvent};
use futures::stream::{self, BoxStream};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use tokio::sync::broadcast;

/// What a listener receives: an event, word that it fell behind and should reload, or that
/// the session it listens for has ended (nothing follows that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// Something happened in the session.
    Event(Arc<ChatEvent>),
    /// The listener fell behind and missed events; it should reload what it shows.
    Lagged,
    /// The session has ended; nothing follows.
    Ended,
}

/// Carries each session's live events to everyone listening for it: `LocalHub` within one
/// process, a shared hub across server instances.
pub trait EventHub: Send + Sync + 'static {
    /// Sends `event` to every current listener of `session`; with none, it goes nowhere.
    fn publish(&self, session: &SessionId, event: ChatEvent);
    /// The events of `session` from now on, until it ends or the stream is dropped.
    fn subscribe(&self, session: &SessionId) -> BoxStream<'static, Feed>;
    /// Tells every listener of `session`, on every instance, that it has ended; their feeds
    /// yield `Feed::Ended` and stop.
    fn end(&self, session: &SessionId);
    /// Completes once what was published or ended so far has left this process (a hub that
    /// sends in the background): a command that ends sessions and then exits waits for it.
    fn flush(&self) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// What a channel carries: events, and the end of its session.
#[derive(Debug, Clone)]
enum Item {
    Event(Arc<ChatEvent>),
    End,
}

type Channels = Arc<Mutex<HashMap<SessionId, broadcast::Sender<Item>>>>;

/// In-process hub: one broadcast channel per session with listeners, removed when its last
/// listener goes (a tab closing must not leave a buffer behind).
pub struct LocalHub {
    channels: Channels,
    capacity: usize,
}

impl Default for LocalHub {
    fn default() -> Self {
        // Deltas are throttled, so 64 events of slack is plenty; a listener that falls
        // further behind is told to resync.
        Self {
            channels: Arc::new(Mutex::new(HashMap::new())),
            capacity: 64,
        }
    }
}

/// One listener's receiver; dropping it removes the session's channel if it was the last.
struct Subscription {
    rx: Option<broadcast::Receiver<Item>>,
    channels: Channels,
    session: SessionId,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.rx.take());
        if let Ok(mut channels) = self.channels.lock()
            && channels
                .get(&self.session)
                .is_some_and(|tx| tx.receiver_count() == 0)
        {
            channels.remove(&self.session);
        }
    }
}

impl LocalHub {
    /// How many listeners are subscribed now, across all sessions.
    pub fn listeners(&self) -> usize {
        self.channels
            .lock()
            .map(|c| c.values().map(|s| s.receiver_count()).sum())
            .unwrap_or(0)
    }
}

impl LocalHub {
    fn send(&self, session: &SessionId, item: Item) {
        let Ok(mut channels) = self.channels.lock() else {
            return;
        };
        if let Some(tx) = channels.get(session)
            && tx.send(item).is_err()
        {
            // Nobody listens any more: drop the channel rather than keep it forever.
            channels.remove(session);
        }
    }
}

impl EventHub for LocalHub {
    fn publish(&self, session: &SessionId, event: ChatEvent) {
        self.send(session, Item::Event(Arc::new(event)));
    }

    fn end(&self, session: &SessionId) {
        self.send(session, Item::End);
    }

    fn subscribe(&self, session: &SessionId) -> BoxStream<'static, Feed> {
        let rx = match self.channels.lock() {
            Ok(mut channels) => channels
                .entry(*session)
                .or_insert_with(|| broadcast::channel(self.capacity).0)
                .subscribe(),
            Err(_) => return Box::pin(stream::empty()),
        };
        let sub = Subscription {
            rx: Some(rx),
            channels: self.channels.clone(),
            session: *session,
        };
        Box::pin(stream::unfold(sub, |mut sub| async move {
            let rx = sub.rx.as_mut()?;
            match rx.recv().await {
                Ok(Item::Event(e)) => Some((Feed::Event(e), sub)),
                Ok(Item::End) => {
                    // Nothing after the end: the next poll finds no receiver and stops.
                    sub.rx = None;
                    Some((Feed::Ended, sub))
                }
                Err(broadcast::error::RecvError::Lagged(_)) => Some((Feed::Lagged, sub)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ThreadId;
    use futures::StreamExt;

    #[tokio::test]
    async fn events_reach_only_their_session() {
        let hub = LocalHub::default();
        let (a, b) = (SessionId::random(), SessionId::random());
        let mut sa = hub.subscribe(&a);
        let mut sb = hub.subscribe(&b);
        let ta = ThreadId::random();
        hub.publish(&a, ChatEvent::ThreadDeleted { thread_id: ta });
        let tb = ThreadId::random();
        hub.publish(&b, ChatEvent::ThreadDeleted { thread_id: tb });
        assert_eq!(
            sa.next().await,
            Some(Feed::Event(Arc::new(ChatEvent::ThreadDeleted {
                thread_id: ta
            })))
        );
        assert_eq!(
            sb.next().await,
            Some(Feed::Event(Arc::new(ChatEvent::ThreadDeleted {
                thread_id: tb
            })))
        );
        drop(sa);
        assert_eq!(
            hub.channels.lock().unwrap().len(),
            1,
            "the last listener leaving drops the channel"
        );
        let sb2 = hub.subscribe(&b);
        drop(sb);
        assert_eq!(
            hub.channels.lock().unwrap().len(),
            1,
            "a channel with a listener left stays"
        );
        drop(sb2);
        assert!(hub.channels.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_end_reaches_its_session_only_and_closes_the_feed() {
        let hub = LocalHub::default();
        let (a, b) = (SessionId::random(), SessionId::random());
        let mut a1 = hub.subscribe(&a);
        let mut a2 = hub.subscribe(&a);
        let mut sb = hub.subscribe(&b);
        hub.end(&a);
        for feed in [&mut a1, &mut a2] {
            assert_eq!(feed.next().await, Some(Feed::Ended));
            assert_eq!(feed.next().await, None, "nothing follows the end");
        }
        let tb = ThreadId::random();
        hub.publish(&b, ChatEvent::ThreadDeleted { thread_id: tb });
        assert_eq!(
            sb.next().await,
            Some(Feed::Event(Arc::new(ChatEvent::ThreadDeleted {
                thread_id: tb
            }))),
            "the other session heard no end"
        );
    }
}
