//! In-process store: fast, lost on restart. For tests, demos and single-process runs that
//! do not need durability.

use app::{
    SessionId,
    server::{
        Claim, Lifetimes, ProofHash, SessionStore, StoreError, Verify,
        store::{MAX_KEYS, check_entry, check_key, now_ms},
    },
};
use async_trait::async_trait;
use dashmap::{DashMap, mapref::entry::Entry};
use std::collections::HashMap;

struct Record {
    proof: ProofHash,
    created_ms: i64,
    last_seen_ms: i64,
    kv: HashMap<Box<str>, Box<[u8]>>,
}

/// A sharded map keyed by session id: lookups stay O(1) however many sessions exist, and
/// sessions on different shards never contend.
pub struct MemoryStore {
    sessions: DashMap<SessionId, Record>,
    lifetimes: Lifetimes,
}

impl MemoryStore {
    pub fn new(lifetimes: Lifetimes) -> Self {
        Self { sessions: DashMap::new(), lifetimes }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn expired(&self, r: &Record, now: i64) -> bool {
        self.lifetimes.is_expired(r.created_ms, r.last_seen_ms, now)
    }

    /// Runs `f` on the live record, or reports `NoSuchSession` (removing it if expired).
    fn with_live<T>(&self, id: &SessionId, f: impl FnOnce(&mut Record) -> Result<T, StoreError>) -> Result<T, StoreError> {
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
        let now = now_ms();
        let fresh = || Record { proof: *proof, created_ms: now, last_seen_ms: now, kv: HashMap::new() };
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

    async fn verify(&self, id: &SessionId, proof: Option<&ProofHash>) -> Result<Verify, StoreError> {
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
                    Some(p) if r.proof.matches(p) => {
                        r.last_seen_ms = now;
                        Ok(Verify::Valid { created_ms: r.created_ms })
                    }
                    _ => Ok(Verify::Denied { created_ms: r.created_ms }),
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
        self.sessions.retain(|_, r| !self.lifetimes.is_expired(r.created_ms, r.last_seen_ms, now));
        Ok(before.saturating_sub(self.sessions.len()))
    }

    async fn exists_raw(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(self.sessions.contains_key(id))
    }
}
