//! In-process store: fast, lost on restart. For tests, demos and single-process runs that
//! do not need durability.

use super::{check_home_id, unguessable_proof};
use app::{
    SessionId,
    model::{Message, MessageId, Thread, ThreadId},
    server::{
        Claim, Lifetimes, ProofHash, SessionStore, SessionTimes, StoreError, Verify,
        store::{MAX_KEYS, MAX_MESSAGES, MAX_THREADS, check_entry, check_key, now_ms},
    },
};
use async_trait::async_trait;
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

/// A sharded map keyed by session id: lookups stay O(1) however many sessions exist, and
/// sessions on different shards never contend.
pub struct MemoryStore {
    sessions: DashMap<SessionId, Record>,
    lifetimes: Lifetimes,
}

impl MemoryStore {
    pub fn new(lifetimes: Lifetimes) -> Self {
        Self {
            sessions: DashMap::new(),
            lifetimes,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn expired(&self, r: &Record, now: i64) -> bool {
        !r.is_home && self.lifetimes.is_expired(r.created_ms, r.last_seen_ms, now)
    }

    fn claim_with(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: Option<SessionId>,
    ) -> Result<Claim, StoreError> {
        let now = now_ms();
        let fresh = || Record::new(*proof, now, home, false);
        // The entry API holds the shard's write lock, which is what makes the claim atomic.
        match self.sessions.entry(*id) {
            Entry::Occupied(mut e) => {
                if self.expired(e.get(), now) {
                    e.insert(fresh());
                    Ok(Claim::Won)
                } else {
                    Ok(Claim::Taken)
                }
            }
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
            Entry::Occupied(mut e) => {
                if self.expired(e.get(), now) {
                    e.remove();
                    Err(StoreError::NoSuchSession)
                } else {
                    f(e.get_mut())
                }
            }
            Entry::Vacant(_) => Err(StoreError::NoSuchSession),
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn claim(&self, id: &SessionId, proof: &ProofHash) -> Result<Claim, StoreError> {
        self.claim_with(id, proof, None)
    }

    async fn claim_signed_in(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: &SessionId,
    ) -> Result<Claim, StoreError> {
        // The home's shard lock is let go before the session's is taken: holding both could
        // deadlock (two shards locked in opposite orders, or one shard read then written). A
        // home deleted in between leaves a session bound to a deleted home, which a delete
        // just after the claim would leave too.
        let home_exists = self.sessions.get(home).is_some_and(|r| r.is_home);
        if !home_exists {
            return Err(StoreError::NoSuchSession);
        }
        self.claim_with(id, proof, Some(*home))
    }

    async fn create_home(&self, home: &SessionId) -> Result<bool, StoreError> {
        check_home_id(home)?;
        let proof = unguessable_proof()?;
        let now = now_ms();
        match self.sessions.entry(*home) {
            Entry::Occupied(mut e) => {
                if self.expired(e.get(), now) {
                    e.insert(Record::new(proof, now, None, true));
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
            Entry::Vacant(e) => {
                e.insert(Record::new(proof, now, None, true));
                Ok(true)
            }
        }
    }

    async fn peek(&self, id: &SessionId) -> Result<Option<SessionTimes>, StoreError> {
        let now = now_ms();
        Ok(self
            .sessions
            .get(id)
            .filter(|r| !self.expired(r, now))
            .map(|r| SessionTimes {
                created_ms: r.created_ms,
                last_seen_ms: r.last_seen_ms,
                home: r.home,
            }))
    }

    async fn keys(&self, id: &SessionId, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.with_live(id, |r| {
            Ok(r.kv
                .keys()
                .filter(|k| k.starts_with(prefix))
                .map(|k| k.to_string())
                .collect())
        })
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
                if self.expired(e.get(), now) {
                    e.remove();
                    return Ok(Verify::Unknown);
                }
                let r = e.get_mut();
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

    async fn clear(&self, id: &SessionId) -> Result<(), StoreError> {
        self.with_live(id, |r| {
            r.kv = HashMap::new();
            Ok(())
        })
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(self.sessions.remove(id).is_some())
    }

    async fn sweep(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let before = self.sessions.len();
        self.sessions.retain(|_, r| !self.expired(r, now));
        Ok(before.saturating_sub(self.sessions.len()))
    }

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

    async fn put_messages(&self, id: &SessionId, messages: &[Message]) -> Result<bool, StoreError> {
        self.with_live(id, |r| {
            // Every check first, so a refusal leaves the threads as they were.
            let mut added: HashMap<ThreadId, usize> = HashMap::new();
            for m in messages {
                let Some(t) = r.threads.get(&m.thread_id) else {
                    return Ok(false);
                };
                if !t.messages.iter().any(|e| e.id == m.id) {
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
                if let Some(existing) = t.messages.iter_mut().find(|e| e.id == m.id) {
                    *existing = m.clone();
                    continue;
                }
                t.messages.push(m.clone());
                t.thread.updated_ms = t.thread.updated_ms.max(m.created_ms);
                r.message_thread.insert(m.id, m.thread_id);
            }
            Ok(true)
        })
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

    async fn exists_raw(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(self.sessions.contains_key(id))
    }
}
