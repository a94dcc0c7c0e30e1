//! Bounds on open event streams. A stream holds a connection and a hub subscription for as
//! long as the client likes, so one session may keep only a few (a person has a few tabs;
//! the oldest goes when another opens, as a tab left behind is the likeliest to be gone) and
//! the instance only so many in all (past that a new one is refused with 503). When the
//! server shuts down, every stream ends at once: a browser's stream never ends by itself, so
//! otherwise each would hold the shutdown for its whole grace period, and the browser
//! reconnects (to another instance, or to this one restarted) the moment its stream ends.

use app::{ApiError, ErrorCode, SessionId};
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};
use tokio::sync::{oneshot, watch};

pub struct Streams {
    per_session: usize,
    max_total: usize,
    inner: Mutex<Inner>,
    /// True once the server is shutting down.
    closing: watch::Sender<bool>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    total: usize,
    /// Each session's open streams, oldest first, with the sender that closes each.
    open: HashMap<SessionId, VecDeque<(u64, oneshot::Sender<()>)>>,
}

/// One open stream's place; it gives the place back when dropped. `closed` completes when
/// the stream was pushed out by a newer one of its session.
pub struct Ticket {
    streams: Arc<Streams>,
    session: SessionId,
    id: u64,
    pub closed: oneshot::Receiver<()>,
    closing: watch::Receiver<bool>,
}

impl Ticket {
    /// Completes when the stream must end: pushed out by a newer one of its session (true),
    /// or the server is shutting down (false).
    pub async fn ended(&mut self) -> bool {
        let closing = self.closing.wait_for(|c| *c);
        tokio::select! {
            pushed = &mut self.closed => pushed.is_ok(),
            _ = closing => false,
        }
    }
}

impl Streams {
    pub fn new(per_session: usize, max_total: usize) -> Self {
        Self {
            per_session: per_session.max(1),
            max_total: max_total.max(1),
            inner: Mutex::default(),
            closing: watch::Sender::new(false),
        }
    }

    /// Ends every open stream, and every one opened from now on (the server is shutting
    /// down).
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// Takes a place for a new stream of `session`, closing its oldest if it has too many.
    #[allow(clippy::result_large_err)]
    pub fn open(self: &Arc<Self>, session: SessionId) -> Result<Ticket, ApiError> {
        let mut inner = self.inner.lock().map_err(|_| ApiError::internal())?;
        let Inner { next, total, open } = &mut *inner;
        let mine = open.get(&session).map_or(0, VecDeque::len);
        // A session at its own cap makes room by closing its oldest, so the instance-wide cap
        // only refuses streams that would add to the total.
        if mine < self.per_session && *total >= self.max_total {
            return Err(ApiError::new(
                ErrorCode::Overloaded,
                "too many open event streams on this server; retry shortly",
            ));
        }
        let queue = open.entry(session).or_default();
        while queue.len() >= self.per_session {
            if let Some((_, close)) = queue.pop_front() {
                let _ = close.send(());
                *total -= 1;
            }
        }
        let (tx, rx) = oneshot::channel();
        *next += 1;
        queue.push_back((*next, tx));
        *total += 1;
        Ok(Ticket {
            streams: self.clone(),
            session,
            id: *next,
            closed: rx,
            closing: self.closing.subscribe(),
        })
    }

    pub fn total(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.total)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Ok(mut inner) = self.streams.inner.lock() else {
            return;
        };
        let Inner { total, open, .. } = &mut *inner;
        if let Some(queue) = open.get_mut(&self.session) {
            // Absent when it was pushed out: its place was given back then.
            if let Some(i) = queue.iter().position(|(id, _)| *id == self.id) {
                queue.remove(i);
                *total -= 1;
            }
            if queue.is_empty() {
                open.remove(&self.session);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_of_a_session_goes_and_the_total_is_capped() {
        let streams = Arc::new(Streams::new(2, 3));
        let (a, b) = (SessionId::random(), SessionId::random());
        let mut a1 = streams.open(a).unwrap();
        let mut a2 = streams.open(a).unwrap();
        let mut a3 = streams.open(a).unwrap();
        assert!(a1.closed.try_recv().is_ok(), "the oldest was told to close");
        assert!(a2.closed.try_recv().is_err());
        assert_eq!(streams.total(), 2);
        let _b1 = streams.open(b).unwrap();
        assert_eq!(streams.total(), 3);
        let refused = streams.open(b).err().expect("the total is full");
        assert_eq!(refused.code, ErrorCode::Overloaded);
        // A session at its own cap may still replace its oldest.
        let _a4 = streams.open(a).unwrap();
        assert!(a2.closed.try_recv().is_ok());
        assert!(a3.closed.try_recv().is_err());
        assert_eq!(streams.total(), 3);
        drop(a1);
        drop(a2);
        assert_eq!(
            streams.total(),
            3,
            "pushed-out tickets gave their place back already"
        );
        drop(a3);
        assert_eq!(streams.total(), 2);
        assert!(streams.open(b).is_ok());
    }

    #[tokio::test]
    async fn closing_ends_every_stream_and_every_later_one() {
        let streams = Arc::new(Streams::new(2, 10));
        let mut open = streams.open(SessionId::random()).unwrap();
        let pending = tokio::time::timeout(std::time::Duration::from_millis(50), open.ended());
        assert!(
            pending.await.is_err(),
            "an open stream is not ended before closing"
        );
        // A newer stream of the session pushes this one out, and says so.
        let session = SessionId::random();
        let mut old = streams.open(session).unwrap();
        let _newer = (
            streams.open(session).unwrap(),
            streams.open(session).unwrap(),
        );
        let wait = std::time::Duration::from_secs(5);
        assert!(
            tokio::time::timeout(wait, old.ended())
                .await
                .expect("pushed out"),
            "a push-out is told apart"
        );
        streams.close_all();
        assert!(
            !tokio::time::timeout(wait, open.ended())
                .await
                .expect("ended by closing"),
            "closing is not a push-out"
        );
        let mut later = streams.open(SessionId::random()).unwrap();
        tokio::time::timeout(wait, later.ended())
            .await
            .expect("a later one ends at once");
    }
}
