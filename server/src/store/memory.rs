//! In-process store: fast, lost on restart. For tests, demos and single-process runs that
//! do not need durability.

use super::{check_home_id, unguessable_proof};
use app::{
    SessionId,
    model::{Message, MessageId, Thread, ThreadId},
};
use async_trait::async_trait;
use confide_core::{
    Chats, Claim, Lifetimes, Probe, ProofHash, SessionTimes, Sessions, StoreError, Values, Verify,
    store::{
        MAX_KEYS, MAX_MESSAGES, MAX_THREADS, ThreadTail, add_to_counter, check_entry, check_key,
        now_ms,
    },
};
use dashmap::{DashMap, mapref::entry::Entry};
use std::collections::HashMap;

struct Record {
    proof: ProofHash,
    created_ms: i64,
    last_seen_ms: i64,
    /// Set on a signed-in session: the home it acts for.
    home: Option<SessionId>,
    /// A user's home: never expires, and `verify` denies it whatever the proof.
    is_home: bool,
    kv: HashMap<Box<str>, Box<[u8]>>,
    // Threads live inside their session's record: there is no global table to look a
    // foreign id up in.
    threads: HashMap<ThreadId, ThreadData>,
    message_thread: HashMap<MessageId, ThreadId>,
}

impl Record {
    fn new(proof: ProofHash, now: i64, home: Option<SessionId>, is_home: bool) -> Self {
        Self {
            proof,
            created_ms: now,
            last_seen_ms: now,
            home,
            is_home,
            kv: HashMap::new(),
            threads: HashMap::new(),
            message_thread: HashMap::new(),
        }
    }
}

struct ThreadData {
    thread: Thread,
    messages: Vec<Message>,
}

/// What the map holds under an id. An ended session's slot stays, so that a claim of its id
/// and the session's removal are decided under the same shard lock; the record is boxed so
/// that such a marker costs a key and a word, not a whole record.
enum Slot {
    Live(Box<Record>),
    /// A session ended here; its id refuses claims until `until_ms`.
    Ended {
        until_ms: i64,
    },
}

/// A sharded map keyed by session id: lookups stay O(1) however many sessions exist, and
/// sessions on different shards never contend.
pub struct MemoryStore {
    sessions: DashMap<SessionId, Slot>,
    lifetimes: Lifetimes,
}

impl MemoryStore {
    /// `put_messages`, and with `end` `put_turn`.
    fn put(
        &self,
        id: &SessionId,
        end: Option<Option<&MessageId>>,
        messages: &[Message],
    ) -> Result<bool, StoreError> {
        self.with_live(id, |r| {
            // Every check first, so a refusal leaves the threads as they were.
            if let (Some(after), Some(first)) = (end, messages.first()) {
                let Some(t) = r.threads.get(&first.thread_id) else {
                    return Ok(false);
                };
                if t.messages.last().map(|m| &m.id) != after {
                    return Err(StoreError::Moved);
                }
            }
            let mut added: HashMap<ThreadId, usize> = HashMap::new();
            for m in messages {
                let Some(t) = r.threads.get(&m.thread_id) else {
                    return Ok(false);
                };
                // The id index, not a walk of the thread: a turn costs the same at any length.
                if r.message_thread.get(&m.id) != Some(&m.thread_id) {
                    let n = added.entry(m.thread_id).or_default();
                    *n += 1;
                    if t.messages.len() + *n > MAX_MESSAGES {
                        return Err(StoreError::TooManyMessages);
                    }
                }
            }
            for m in messages {
                let Some(t) = r.threads.get_mut(&m.thread_id) else {
                    return Ok(false);
                };
                // What gets replaced is nearly always the streaming reply at the end.
                if r.message_thread.get(&m.id) == Some(&m.thread_id)
                    && let Some(existing) = t.messages.iter_mut().rev().find(|e| e.id == m.id)
                {
                    // A stop that landed first stays (see the contract).
                    if existing.status == app::model::MessageStatus::Streaming
                        || m.status != app::model::MessageStatus::Streaming
                    {
                        *existing = m.clone();
                    }
                    continue;
                }
                t.messages.push(m.clone());
                t.thread.updated_ms = t.thread.updated_ms.max(m.created_ms);
                r.message_thread.insert(m.id, m.thread_id);
            }
            Ok(true)
        })
    }

    /// An empty store whose sessions live as long as `lifetimes` allow.
    pub fn new(lifetimes: Lifetimes) -> Self {
        Self {
            sessions: DashMap::new(),
            lifetimes,
        }
    }

    /// How many sessions and homes it holds, expired ones not yet removed included; the
    /// markers of ended sessions hold no data and are not counted. Walks the whole map.
    pub fn len(&self) -> usize {
        self.sessions
            .iter()
            .filter(|e| matches!(e.value(), Slot::Live(_)))
            .count()
    }

    /// True when it holds no sessions and no homes (see `len`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn expired(&self, r: &Record, now: i64) -> bool {
        !r.is_home && self.lifetimes.is_expired(r.created_ms, r.last_seen_ms, now)
    }

    /// The marker a session removed at `now` leaves behind. Counted from the removal, which
    /// is never before the session ended, so the id stays refused for at least an absolute
    /// lifetime after the end.
    fn ended(&self, now: i64) -> Slot {
        Slot::Ended {
            until_ms: now.saturating_add(self.lifetimes.absolute.as_millis() as i64),
        }
    }

    fn claim_with(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: Option<SessionId>,
    ) -> Result<Claim, StoreError> {
        let now = now_ms();
        let fresh = || Slot::Live(Box::new(Record::new(*proof, now, home, false)));
        // The entry API holds the shard's write lock, which is what makes the claim atomic,
        // also against a delete or an expiry of the same id: they take the same lock.
        match self.sessions.entry(*id) {
            Entry::Occupied(mut e) => match e.get() {
                Slot::Live(r) if self.expired(r, now) => {
                    e.insert(self.ended(now));
                    Ok(Claim::Ended)
                }
                Slot::Live(_) => Ok(Claim::Taken),
                Slot::Ended { until_ms } if *until_ms > now => Ok(Claim::Ended),
                Slot::Ended { .. } => {
                    e.insert(fresh());
                    Ok(Claim::Won)
                }
            },
            Entry::Vacant(e) => {
                e.insert(fresh());
                Ok(Claim::Won)
            }
        }
    }

    /// Runs `f` on the live record, or reports `NoSuchSession` (removing it if expired).
    fn with_live<T>(
        &self,
        id: &SessionId,
        f: impl FnOnce(&mut Record) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let now = now_ms();
        match self.sessions.entry(*id) {
            Entry::Occupied(mut e) => match e.get_mut() {
                Slot::Live(r) if self.expired(r, now) => {
                    e.insert(self.ended(now));
                    Err(StoreError::NoSuchSession)
                }
                Slot::Live(r) => f(r),
                Slot::Ended { .. } => Err(StoreError::NoSuchSession),
            },
            Entry::Vacant(_) => Err(StoreError::NoSuchSession),
        }
    }
}

#[async_trait]
impl Sessions for MemoryStore {
    async fn claim(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: Option<&SessionId>,
    ) -> Result<Claim, StoreError> {
        let Some(home) = home else {
            return self.claim_with(id, proof, None);
        };
        // The home's shard lock is let go before the session's is taken: holding both could
        // deadlock (two shards locked in opposite orders, or one shard read then written). A
        // home deleted in between leaves a session bound to a deleted home, which a delete
        // just after the claim would leave too.
        let home_exists = self
            .sessions
            .get(home)
            .is_some_and(|s| matches!(s.value(), Slot::Live(r) if r.is_home));
        if !home_exists {
            return Err(StoreError::NoSuchSession);
        }
        self.claim_with(id, proof, Some(*home))
    }

    async fn create_home(&self, home: &SessionId) -> Result<bool, StoreError> {
        check_home_id(home)?;
        let proof = unguessable_proof()?;
        let now = now_ms();
        let fresh = || Slot::Live(Box::new(Record::new(proof, now, None, true)));
        match self.sessions.entry(*home) {
            // An account removed and added again gets its home back under the same id, so a
            // marker (which only a session claimed under a home id could have left) is no bar.
            Entry::Occupied(mut e) => match e.get() {
                Slot::Live(r) if !self.expired(r, now) => Ok(false),
                _ => {
                    e.insert(fresh());
                    Ok(true)
                }
            },
            Entry::Vacant(e) => {
                e.insert(fresh());
                Ok(true)
            }
        }
    }

    async fn peek(&self, id: &SessionId) -> Result<Option<SessionTimes>, StoreError> {
        let now = now_ms();
        Ok(self.sessions.get(id).and_then(|s| match s.value() {
            Slot::Live(r) if !self.expired(r, now) => Some(SessionTimes {
                created_ms: r.created_ms,
                last_seen_ms: r.last_seen_ms,
                home: r.home,
            }),
            _ => None,
        }))
    }

    async fn verify(
        &self,
        id: &SessionId,
        proof: Option<&ProofHash>,
    ) -> Result<Verify, StoreError> {
        let now = now_ms();
        match self.sessions.entry(*id) {
            Entry::Vacant(_) => Ok(Verify::Unknown),
            Entry::Occupied(mut e) => {
                let r = match e.get_mut() {
                    Slot::Ended { .. } => return Ok(Verify::Unknown),
                    Slot::Live(r) if self.expired(r, now) => {
                        e.insert(self.ended(now));
                        return Ok(Verify::Unknown);
                    }
                    Slot::Live(r) => r,
                };
                match proof {
                    Some(p) if !r.is_home && r.proof.matches(p) => {
                        r.last_seen_ms = now;
                        Ok(Verify::Valid {
                            created_ms: r.created_ms,
                            home: r.home,
                        })
                    }
                    _ => Ok(Verify::Denied {
                        created_ms: r.created_ms,
                    }),
                }
            }
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let now = now_ms();
        match self.sessions.entry(*id) {
            Entry::Occupied(mut e) => match e.get() {
                Slot::Live(r) if r.is_home => {
                    e.remove();
                    Ok(true)
                }
                Slot::Live(_) => {
                    e.insert(self.ended(now));
                    Ok(true)
                }
                Slot::Ended { .. } => Ok(false),
            },
            Entry::Vacant(_) => Ok(false),
        }
    }

    async fn sweep(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut expired = 0;
        self.sessions.retain(|_, slot| match slot {
            Slot::Live(r) if self.expired(r, now) => {
                expired += 1;
                *slot = self.ended(now);
                true
            }
            Slot::Live(_) => true,
            Slot::Ended { until_ms } => *until_ms > now,
        });
        Ok(expired)
    }

    async fn list_sessions(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<SessionId>, Option<String>), StoreError> {
        let Some(after) = super::page_after(cursor) else {
            return Ok((Vec::new(), None));
        };
        let now = now_ms();
        let mut ids: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|e| matches!(e.value(), Slot::Live(r) if !r.is_home && !self.expired(r, now)))
            .map(|e| *e.key())
            .filter(|id| after.is_none_or(|a| *id.as_bytes() > a))
            .collect();
        ids.sort_unstable_by_key(|id| *id.as_bytes());
        ids.truncate(limit);
        Ok(super::page_of(ids, limit))
    }
}

#[async_trait]
impl Values for MemoryStore {
    async fn keys(&self, id: &SessionId, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.with_live(id, |r| {
            Ok(r.kv
                .keys()
                .filter(|k| k.starts_with(prefix))
                .map(|k| k.to_string())
                .collect())
        })
    }

    async fn get(&self, id: &SessionId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        self.with_live(id, |r| Ok(r.kv.get(key).map(|v| v.to_vec())))
    }

    async fn set(&self, id: &SessionId, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_entry(key, value)?;
        self.with_live(id, |r| {
            if !r.kv.contains_key(key) && r.kv.len() >= MAX_KEYS {
                return Err(StoreError::TooManyKeys);
            }
            r.kv.insert(key.into(), value.into());
            Ok(())
        })
    }

    async fn remove(&self, id: &SessionId, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        self.with_live(id, |r| Ok(r.kv.remove(key).is_some()))
    }

    async fn add(&self, id: &SessionId, key: &str, delta: i64) -> Result<i64, StoreError> {
        check_key(key)?;
        self.with_live(id, |r| {
            let current = r.kv.get(key);
            if current.is_none() && r.kv.len() >= MAX_KEYS {
                return Err(StoreError::TooManyKeys);
            }
            let (sum, stored) = add_to_counter(current.map(|v| &v[..]), delta)?;
            r.kv.insert(key.into(), stored.into());
            Ok(sum)
        })
    }
}

#[async_trait]
impl Chats for MemoryStore {
    async fn list_threads(&self, id: &SessionId) -> Result<Vec<Thread>, StoreError> {
        self.with_live(id, |r| {
            let mut out: Vec<Thread> = r.threads.values().map(|t| t.thread.clone()).collect();
            out.sort_by(|a, b| {
                b.updated_ms
                    .cmp(&a.updated_ms)
                    .then(b.created_ms.cmp(&a.created_ms))
            });
            Ok(out)
        })
    }

    async fn get_thread(
        &self,
        id: &SessionId,
        thread: &ThreadId,
    ) -> Result<Option<(Thread, Vec<Message>)>, StoreError> {
        self.with_live(id, |r| {
            Ok(r.threads
                .get(thread)
                .map(|t| (t.thread.clone(), t.messages.clone())))
        })
    }

    async fn thread_tail(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        last: usize,
    ) -> Result<Option<ThreadTail>, StoreError> {
        self.with_live(id, |r| {
            Ok(r.threads.get(thread).map(|t| ThreadTail {
                thread: t.thread.clone(),
                messages: t.messages[t.messages.len().saturating_sub(last)..].to_vec(),
                count: t.messages.len(),
            }))
        })
    }

    async fn create_thread(&self, id: &SessionId, thread: &Thread) -> Result<(), StoreError> {
        self.with_live(id, |r| {
            if r.threads.len() >= MAX_THREADS {
                return Err(StoreError::TooManyThreads);
            }
            r.threads.entry(thread.id).or_insert_with(|| ThreadData {
                thread: thread.clone(),
                messages: Vec::new(),
            });
            Ok(())
        })
    }

    async fn update_thread(&self, id: &SessionId, thread: &Thread) -> Result<bool, StoreError> {
        self.with_live(id, |r| match r.threads.get_mut(&thread.id) {
            Some(t) => {
                t.thread = thread.clone();
                Ok(true)
            }
            None => Ok(false),
        })
    }

    async fn delete_thread(&self, id: &SessionId, thread: &ThreadId) -> Result<bool, StoreError> {
        self.with_live(id, |r| match r.threads.remove(thread) {
            Some(t) => {
                for m in &t.messages {
                    r.message_thread.remove(&m.id);
                }
                Ok(true)
            }
            None => Ok(false),
        })
    }

    async fn get_message(
        &self,
        id: &SessionId,
        message: &MessageId,
    ) -> Result<Option<Message>, StoreError> {
        self.with_live(id, |r| {
            let Some(tid) = r.message_thread.get(message) else {
                return Ok(None);
            };
            Ok(r.threads
                .get(tid)
                .and_then(|t| t.messages.iter().find(|m| m.id == *message).cloned()))
        })
    }

    async fn replace_message(&self, id: &SessionId, m: &Message) -> Result<bool, StoreError> {
        self.with_live(id, |r| {
            if r.message_thread.get(&m.id) != Some(&m.thread_id) {
                return Ok(false);
            }
            let Some(existing) = r
                .threads
                .get_mut(&m.thread_id)
                .and_then(|t| t.messages.iter_mut().rev().find(|e| e.id == m.id))
            else {
                return Ok(false);
            };
            // A stop that landed first stays (see the contract).
            if existing.status == app::model::MessageStatus::Streaming
                || m.status != app::model::MessageStatus::Streaming
            {
                *existing = m.clone();
            }
            Ok(true)
        })
    }

    async fn put_messages(&self, id: &SessionId, messages: &[Message]) -> Result<bool, StoreError> {
        self.put(id, None, messages)
    }

    async fn put_turn(
        &self,
        id: &SessionId,
        after: Option<&MessageId>,
        messages: &[Message],
    ) -> Result<bool, StoreError> {
        self.put(id, Some(after), messages)
    }

    async fn truncate_after(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        after: Option<&MessageId>,
    ) -> Result<usize, StoreError> {
        self.with_live(id, |r| {
            let Some(t) = r.threads.get_mut(thread) else {
                return Ok(0);
            };
            let keep = match after {
                None => 0,
                Some(after) => match t.messages.iter().position(|m| m.id == *after) {
                    Some(i) => i + 1,
                    None => return Ok(0),
                },
            };
            let dropped: Vec<Message> = t.messages.drain(keep..).collect();
            for m in &dropped {
                r.message_thread.remove(&m.id);
            }
            Ok(dropped.len())
        })
    }
}

#[async_trait]
impl Probe for MemoryStore {
    async fn exists_raw(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(self
            .sessions
            .get(id)
            .is_some_and(|s| matches!(s.value(), Slot::Live(_))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confide_core::Proof;
    use std::time::Duration;

    #[tokio::test]
    async fn the_sweep_drops_the_marks_of_ended_sessions_once_their_time_is_over() {
        let store = MemoryStore::new(Lifetimes {
            idle: Duration::from_millis(200),
            absolute: Duration::from_millis(400),
        });
        let claim = |store: &MemoryStore| {
            let id = SessionId::random();
            assert_eq!(
                store.claim_with(&id, &Proof::generate().unwrap().hash(), None),
                Ok(Claim::Won)
            );
            id
        };
        let deleted = claim(&store);
        let expiring = claim(&store);
        assert!(store.delete(&deleted).await.unwrap());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(store.sweep().await.unwrap(), 1);
        assert_eq!(store.len(), 0, "marks are not sessions");
        assert_eq!(store.sessions.len(), 2, "both ids are still marked");

        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(store.sweep().await.unwrap(), 0);
        assert_eq!(store.sessions.len(), 0, "nothing is kept for ever");
        assert_eq!(
            store.claim_with(&expiring, &Proof::generate().unwrap().hash(), None),
            Ok(Claim::Won)
        );
    }

    #[test]
    fn a_mark_is_a_few_words() {
        assert!(std::mem::size_of::<Slot>() <= 16);
    }
}
