//! The storage contract every backend (memory, SQLite, Redis) fulfils.
//!
//! The trait is small on purpose, in the manner of tower-sessions: the guard and
//! `UserSession` hold the rules, a backend only has to make each call atomic. Every
//! method takes the caller's `SessionId`; there is no call that lists or reads
//! across sessions, so a backend cannot be asked for someone else's data.

use crate::{
    SessionId,
    model::{Message, MessageId, Thread, ThreadId},
};
use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// Size of the session secret: 256 bits.
pub const PROOF_LEN: usize = 32;
/// Longest `UserSession` key, in bytes.
pub const MAX_KEY_LEN: usize = 128;
/// Largest `UserSession` value, in bytes of its JSON encoding.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Most keys one session may hold.
pub const MAX_KEYS: usize = 256;
/// Most threads one session may hold.
pub const MAX_THREADS: usize = 1_000;
/// Most messages one thread may hold.
pub const MAX_MESSAGES: usize = 2_000;

/// The end of a thread, from `thread_tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadTail {
    /// The thread's title and times.
    pub thread: Thread,
    /// The thread's last messages, in conversation order.
    pub messages: Vec<Message>,
    /// How many messages the whole thread holds, read from the thread's own record, so
    /// knowing it costs nothing however long the thread is.
    pub count: usize,
}

/// The secret half of a session, as issued to the browser in an HttpOnly cookie.
/// Only `ProofHash` is ever stored.
pub struct Proof([u8; PROOF_LEN]);

impl Proof {
    /// 256 bits from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, StoreError> {
        let mut bytes = [0u8; PROOF_LEN];
        getrandom::fill(&mut bytes)
            .map_err(|e| StoreError::Internal(format!("OS random source failed: {e}")))?;
        Ok(Self(bytes))
    }

    /// Cookie form: unpadded base64url, 43 characters.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Hashes a cookie value. Anything that is not exactly 32 bytes of base64url gives
    /// `None`, which the guard treats as "no proof".
    pub fn hash_cookie_value(value: &str) -> Option<ProofHash> {
        if value.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        let bytes: [u8; PROOF_LEN] = bytes.try_into().ok()?;
        Some(ProofHash::of(&bytes))
    }

    /// What the store keeps in place of the secret.
    pub fn hash(&self) -> ProofHash {
        ProofHash::of(&self.0)
    }
}

/// SHA-256 of a proof. A plain hash suffices: the secret has 256 bits of entropy, so
/// there is nothing for a slow hash to protect against.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ProofHash([u8; 32]);

impl ProofHash {
    fn of(secret: &[u8; PROOF_LEN]) -> Self {
        Self(Sha256::digest(secret).into())
    }

    /// For stores reading back hashes they wrote.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes, as stores keep them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison, so response timing says nothing about how much matched.
    pub fn matches(&self, other: &ProofHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for ProofHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProofHash(..)")
    }
}

/// How long a session lives: `idle` since its last verified request (sliding) and
/// `absolute` since it was claimed, whichever ends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// How long a session lives without a verified request.
    pub idle: Duration,
    /// How long a session lives after it was claimed, however active.
    pub absolute: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(crate::session_id::DEFAULT_IDLE_SECS),
            absolute: Duration::from_secs(crate::session_id::DEFAULT_ABSOLUTE_SECS),
        }
    }
}

impl Lifetimes {
    /// Milliseconds since the epoch at which a session created at `created_ms` and last seen at
    /// `last_seen_ms` expires.
    pub fn expires_at_ms(&self, created_ms: i64, last_seen_ms: i64) -> i64 {
        let idle_end = last_seen_ms.saturating_add(self.idle.as_millis() as i64);
        let absolute_end = created_ms.saturating_add(self.absolute.as_millis() as i64);
        idle_end.min(absolute_end)
    }

    /// Whether such a session has expired at `now_ms`.
    pub fn is_expired(&self, created_ms: i64, last_seen_ms: i64, now_ms: i64) -> bool {
        now_ms >= self.expires_at_ms(created_ms, last_seen_ms)
    }
}

/// The current time in milliseconds since the Unix epoch (0 if the clock is earlier).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The answer to `Sessions::claim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This call created the session.
    Won,
    /// A live session has the id.
    Taken,
    /// The id belonged to a session that has ended (deleted or expired). An id is never
    /// claimed twice: whatever still refers to the old session (a stream, a cookie, a tab)
    /// must not attach to a new one under the same name.
    Ended,
}

/// The answer to `Sessions::verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// The proof matches; the idle expiry has been pushed back. `home` is the signed-in
    /// user's home (see `Sessions::claim`), `None` for an anonymous session.
    Valid {
        /// When the session was claimed, in milliseconds since the Unix epoch.
        created_ms: i64,
        /// The signed-in user's home; `None` for an anonymous session.
        home: Option<SessionId>,
    },
    /// No live session has this id (never claimed, expired, or deleted).
    Unknown,
    /// The session exists and the proof is missing or wrong.
    Denied {
        /// When the session was claimed, in milliseconds since the Unix epoch.
        created_ms: i64,
    },
}

/// What `peek` tells about a live session, without touching it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimes {
    /// When the session was claimed, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// The last verified request, as precisely as the backend records it (it may throttle
    /// how often it writes this, by up to a minute).
    pub last_seen_ms: i64,
    /// The signed-in user's home; `None` for an anonymous session.
    pub home: Option<SessionId>,
}

/// Why a store call failed; each maps to an `ApiError` (see the `From` impl below).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached, is overloaded or did not answer in time.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A key is empty, too long or uses characters outside `[A-Za-z0-9._:-]`.
    #[error("key must be 1 to {MAX_KEY_LEN} bytes of [A-Za-z0-9._:-]")]
    KeyInvalid,
    /// A value is over `MAX_VALUE_LEN` bytes.
    #[error("value is {len} bytes; the limit is {MAX_VALUE_LEN}")]
    ValueTooLarge {
        /// The value's size in bytes.
        len: usize,
    },
    /// A new key would take the session past `MAX_KEYS`.
    #[error("the session already holds {MAX_KEYS} keys")]
    TooManyKeys,
    /// The session or home does not exist (never claimed, expired or deleted).
    #[error("no such session")]
    NoSuchSession,
    /// A new thread would take the session past `MAX_THREADS`.
    #[error("the session already holds {MAX_THREADS} threads; delete some first")]
    TooManyThreads,
    /// A new message would take its thread past `MAX_MESSAGES`.
    #[error("the thread already holds {MAX_MESSAGES} messages; start a new one")]
    TooManyMessages,
    /// A turn's thread no longer ends where the turn read it (`Chats::put_turn`).
    #[error("the thread changed since it was read")]
    Moved,
    /// Any other failure, such as an unreadable record or a failed backend job.
    #[error("store error: {0}")]
    Internal(String),
}

/// Checks a key and value before a backend stores them; every backend calls this so the
/// limits are one contract, not three.
pub fn check_entry(key: &str, value: &[u8]) -> Result<(), StoreError> {
    check_key(key)?;
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::ValueTooLarge { len: value.len() });
    }
    Ok(())
}

/// The sum a counter holds after `Values::add`, and its stored form (decimal digits), from
/// what the key held (`None`: nothing, counted as 0). A value that is not a counter fails.
pub fn add_to_counter(current: Option<&[u8]>, delta: i64) -> Result<(i64, Vec<u8>), StoreError> {
    let now = match current {
        None => 0,
        Some(v) => counter_value(v)
            .ok_or_else(|| StoreError::Internal("the value is not a counter".into()))?,
    };
    let sum = now.saturating_add(delta);
    Ok((sum, sum.to_string().into_bytes()))
}

/// What a counter `Values::add` keeps holds; `None` for a value that is not one.
pub fn counter_value(stored: &[u8]) -> Option<i64> {
    std::str::from_utf8(stored).ok()?.parse().ok()
}

/// Checks a key against the contract: 1 to `MAX_KEY_LEN` bytes of `[A-Za-z0-9._:-]`.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::KeyInvalid)
    }
}

/// A session's life: its birth (claim), its proof (verify), its end (delete, expiry, sweep),
/// and the homes of signed-in users.
///
/// An id is never claimed twice. Once a session has ended (by `delete`, or by expiring,
/// whoever notices: `verify`, `claim`, any other call, the sweep, or the backend itself), a
/// claim of its id answers `Claim::Ended` and creates nothing, for at least `absolute` after
/// the end; later the backend may forget the id. Each backend decides this atomically with the
/// removal, so no interleaving of a claim with a delete or an expiry of the same id lets the
/// claim win. The ended id otherwise reads as unknown: `peek` gives `None`, `verify` gives
/// `Unknown`, `exists_raw` gives false. Homes are exempt: a deleted home may be created again.
#[async_trait]
pub trait Sessions: Send + Sync + 'static {
    /// Creates the session with this proof if the id has never been claimed (or its end is
    /// long enough ago to be forgotten, see the trait): `Won`. A live session with the id
    /// gives `Taken`; an ended one, including an expired record not yet removed (which is
    /// removed now, with its data), gives `Ended`. Atomic: of any number of concurrent claims
    /// of one id, exactly one returns `Won`, and none does once the id's session has ended.
    ///
    /// With a `home`, the session acts for that signed-in user: it records the home, and
    /// `verify` reports it. Fails with `NoSuchSession` when the home does not exist.
    async fn claim(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: Option<&SessionId>,
    ) -> Result<Claim, StoreError>;

    /// Creates a user's home (a `SessionId::home`): a record that holds values and threads
    /// like a session but never expires, is never swept, and has no proof anyone holds, so
    /// `verify` always denies it. Returns false if it already existed (nothing changes). A
    /// deleted home can be created again (an account removed and added back).
    async fn create_home(&self, home: &SessionId) -> Result<bool, StoreError>;

    /// Times and home of a live session; `None` when unknown, expired or ended. Unlike
    /// `verify` it neither slides the expiry nor deletes anything.
    async fn peek(&self, id: &SessionId) -> Result<Option<SessionTimes>, StoreError>;

    /// Compares `proof` with the stored hash in constant time; on a match, slides the idle
    /// expiry. An expired session is removed here (it has ended: its id is never claimed
    /// again) and reported as `Unknown`, as is an ended one.
    async fn verify(&self, id: &SessionId, proof: Option<&ProofHash>)
    -> Result<Verify, StoreError>;

    /// Removes the session and all its data. Returns whether it existed. The session has
    /// ended: its id is never claimed again. A home's id stays free to be created again.
    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError>;

    /// Removes every expired session (each has ended, like a deleted one) and forgets the
    /// ended ids whose time is over, so the store does not grow with every session there
    /// ever was; returns how many sessions it removed. A backend whose ended ids expire by
    /// themselves need not walk them here.
    async fn sweep(&self) -> Result<usize, StoreError>;

    /// One page of the live sessions' ids (homes are not among them), for an operator who
    /// ends every session: about `limit` ids (a backend may give more at once, Redis does
    /// for a small set) and the cursor of the next page, `None` after the last. Start with
    /// `None`. A session live for the whole walk is in some page (a
    /// backend may repeat an id); one claimed or ended during the walk may be or not. A
    /// cursor this store did not hand out ends the walk.
    async fn list_sessions(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<SessionId>, Option<String>), StoreError>;
}

/// A session's own key/value state (what `UserSession` reads and writes).
#[async_trait]
pub trait Values: Send + Sync + 'static {
    /// The keys of the session's values that start with `prefix` (every key for ""), in
    /// no particular order.
    async fn keys(&self, id: &SessionId, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// The value under `key`; `None` when it is not set.
    async fn get(&self, id: &SessionId, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Fails with `NoSuchSession` if the session is gone (expired or deleted meanwhile):
    /// a write must never bring a session back.
    async fn set(&self, id: &SessionId, key: &str, value: &[u8]) -> Result<(), StoreError>;

    /// Returns whether the key was present.
    async fn remove(&self, id: &SessionId, key: &str) -> Result<bool, StoreError>;

    /// Adds `delta` to the counter under `key` (none yet: 0) and returns the sum, in one
    /// step however many processes add at once: what quotas count with. A counter is
    /// stored as its decimal digits, so `get` reads it as text; a key holding anything
    /// else fails. A new key counts against `MAX_KEYS`, like `set`.
    async fn add(&self, id: &SessionId, key: &str, delta: i64) -> Result<i64, StoreError>;
}

/// Threads and messages. Every call is scoped by the session id: a thread or message id of
/// another session is simply not found.
#[async_trait]
pub trait Chats: Send + Sync + 'static {
    /// The session's threads, most recently updated first.
    async fn list_threads(&self, id: &SessionId) -> Result<Vec<Thread>, StoreError>;

    /// A thread with its messages in conversation order.
    async fn get_thread(
        &self,
        id: &SessionId,
        thread: &ThreadId,
    ) -> Result<Option<(Thread, Vec<Message>)>, StoreError>;

    /// A thread with only its last `last` messages (fewer when it holds fewer), in
    /// conversation order, and its message count: one round trip, whose cost depends on
    /// `last` and not on the thread's length. A chat turn needs no more than the end of its
    /// thread.
    async fn thread_tail(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        last: usize,
    ) -> Result<Option<ThreadTail>, StoreError>;

    /// Adds a new thread (fails with `TooManyThreads` at the limit).
    async fn create_thread(&self, id: &SessionId, thread: &Thread) -> Result<(), StoreError>;

    /// Replaces a thread's title and timestamps; false if the session has no such thread.
    async fn update_thread(&self, id: &SessionId, thread: &Thread) -> Result<bool, StoreError>;

    /// Removes a thread and its messages; false if the session has no such thread.
    async fn delete_thread(&self, id: &SessionId, thread: &ThreadId) -> Result<bool, StoreError>;

    /// A message of the session by its id, whichever thread holds it.
    async fn get_message(
        &self,
        id: &SessionId,
        message: &MessageId,
    ) -> Result<Option<Message>, StoreError>;

    /// Appends the message to its thread, or replaces it in place if its id exists there.
    /// Appending moves the thread's `updated_ms` to the message's `created_ms`. False if
    /// the session has no such thread.
    async fn put_message(&self, id: &SessionId, message: &Message) -> Result<bool, StoreError> {
        self.put_messages(id, std::slice::from_ref(message)).await
    }

    /// `put_message` for each message in order, in one call: a chat turn stores the person's
    /// message and the reply placeholder together, so the request waits for one commit (one
    /// round trip) instead of two. All or nothing: false when a message's thread is not the
    /// session's, `TooManyMessages` when a thread has no room, and nothing stored either way.
    /// Each thread keeps its message count with it, updated in the same atomic step, so the
    /// limit is checked without counting the thread's messages.
    async fn put_messages(&self, id: &SessionId, messages: &[Message]) -> Result<bool, StoreError>;

    /// `put_messages` for a chat turn, whose messages all go to one thread and follow what
    /// the turn read as that thread's last message, `after` (`None`: the thread was empty).
    /// Fails with `Moved`, nothing stored, when the thread no longer ends there. Instances
    /// share no lock: two tabs on two instances may both read the same end, and the store,
    /// checking in the same atomic step that appends, lets only the first turn follow it.
    async fn put_turn(
        &self,
        id: &SessionId,
        after: Option<&MessageId>,
        messages: &[Message],
    ) -> Result<bool, StoreError>;

    /// Replaces a message where it is, as `put_message` does (a stop that landed first stays),
    /// but never appends: false, and nothing stored, when its thread does not hold it. Every
    /// change to an existing message (a rating, an edit, a reply's saves, a stop) goes this
    /// way, so a write based on an earlier read cannot bring back a message an edit or a
    /// regeneration has dropped meanwhile.
    async fn replace_message(&self, id: &SessionId, message: &Message) -> Result<bool, StoreError>;

    /// Drops every message after `after` in the thread (all of them for `None`); returns
    /// how many went.
    async fn truncate_after(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        after: Option<&MessageId>,
    ) -> Result<usize, StoreError>;
}

/// What tests and operators may ask of a backend beyond the contract the app uses.
#[async_trait]
pub trait Probe: Send + Sync + 'static {
    /// Whether any record of this id remains, expired or not. What keeps an ended id from
    /// being claimed holds no data and does not count. For tests and operators: it must not
    /// slide expiry or delete anything.
    async fn exists_raw(&self, id: &SessionId) -> Result<bool, StoreError>;
}

/// The store the app runs on: sessions, their values and their chats. A backend implements
/// the three parts (and `Probe` for the shared contract tests); the blanket impl makes it a
/// `SessionStore`.
pub trait SessionStore: Sessions + Values + Chats {}

impl<T: Sessions + Values + Chats> SessionStore for T {}

/// What a store's failure means to a client.
impl From<StoreError> for crate::ApiError {
    fn from(e: StoreError) -> Self {
        use crate::{ApiError, ErrorCode};
        match e {
            StoreError::Unavailable(_) => ApiError::store_unavailable(),
            StoreError::KeyInvalid => ApiError::new(ErrorCode::KeyInvalid, e.to_string()),
            StoreError::ValueTooLarge { .. } => ApiError::new(ErrorCode::TooLarge, e.to_string()),
            StoreError::TooManyKeys => ApiError::new(ErrorCode::TooManyKeys, e.to_string()),
            StoreError::TooManyThreads | StoreError::TooManyMessages => {
                ApiError::new(ErrorCode::LimitReached, e.to_string())
            }
            // The session vanished (expired or deleted) between the guard and this call.
            StoreError::NoSuchSession => {
                ApiError::new(ErrorCode::NoSession, "the session has ended")
            }
            // Another tab's turn, perhaps on another instance, went first.
            StoreError::Moved => ApiError::new(
                ErrorCode::Busy,
                "this chat changed in another tab at the same moment; try again",
            ),
            StoreError::Internal(detail) => {
                // The client learns nothing more; the operator needs to.
                tracing::error!(error = %without_ids(&detail), "a store call failed");
                ApiError::internal()
            }
        }
    }
}

/// `text` with every run of hex digits and dashes long enough to be an id (a session's, a
/// chat's, a key holding one) shortened to `<id>`: store errors can quote keys, and logs never
/// hold a usable session id.
pub fn without_ids(text: &str) -> std::borrow::Cow<'_, str> {
    let is_id_char = |c: char| c.is_ascii_hexdigit() || c == '-';
    let long_run = |run: &str| run.chars().filter(char::is_ascii_hexdigit).count() >= 12;
    let mut out = String::new();
    let mut last = 0;
    let mut found = false;
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (is_id_char(c) && i < text.len(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if long_run(&text[s..i]) {
                    out.push_str(&text[last..s]);
                    out.push_str("<id>");
                    last = i;
                    found = true;
                }
                start = None;
            }
            _ => {}
        }
    }
    if !found {
        return std::borrow::Cow::Borrowed(text);
    }
    out.push_str(&text[last..]);
    std::borrow::Cow::Owned(out)
}

/// A store whose every call is bounded by one time limit: a stuck backend answers
/// `Unavailable` (503 `store_unavailable`) instead of holding a request, a reply or a task.
/// The server wraps its store in this once, so no caller has to remember the bound.
pub struct Timed {
    inner: std::sync::Arc<dyn SessionStore>,
    limit: Duration,
}

impl Timed {
    /// `inner` with every call bounded by `limit`.
    pub fn wrap(
        inner: std::sync::Arc<dyn SessionStore>,
        limit: Duration,
    ) -> std::sync::Arc<dyn SessionStore> {
        std::sync::Arc::new(Self { inner, limit })
    }

    async fn bound<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable("timed out".into())),
        }
    }
}

#[async_trait]
impl Sessions for Timed {
    async fn claim(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: Option<&SessionId>,
    ) -> Result<Claim, StoreError> {
        self.bound(self.inner.claim(id, proof, home)).await
    }
    async fn create_home(&self, home: &SessionId) -> Result<bool, StoreError> {
        self.bound(self.inner.create_home(home)).await
    }
    async fn peek(&self, id: &SessionId) -> Result<Option<SessionTimes>, StoreError> {
        self.bound(self.inner.peek(id)).await
    }
    async fn verify(
        &self,
        id: &SessionId,
        proof: Option<&ProofHash>,
    ) -> Result<Verify, StoreError> {
        self.bound(self.inner.verify(id, proof)).await
    }
    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.bound(self.inner.delete(id)).await
    }
    /// Not bounded: a sweep walks every expired session, in the background, and may take
    /// as long as that takes.
    async fn sweep(&self) -> Result<usize, StoreError> {
        self.inner.sweep().await
    }
    async fn list_sessions(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<SessionId>, Option<String>), StoreError> {
        self.bound(self.inner.list_sessions(cursor, limit)).await
    }
}

#[async_trait]
impl Values for Timed {
    async fn keys(&self, id: &SessionId, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.bound(self.inner.keys(id, prefix)).await
    }
    async fn get(&self, id: &SessionId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.bound(self.inner.get(id, key)).await
    }
    async fn set(&self, id: &SessionId, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.bound(self.inner.set(id, key, value)).await
    }
    async fn remove(&self, id: &SessionId, key: &str) -> Result<bool, StoreError> {
        self.bound(self.inner.remove(id, key)).await
    }
    async fn add(&self, id: &SessionId, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.bound(self.inner.add(id, key, delta)).await
    }
}

#[async_trait]
impl Chats for Timed {
    async fn list_threads(&self, id: &SessionId) -> Result<Vec<Thread>, StoreError> {
        self.bound(self.inner.list_threads(id)).await
    }
    async fn get_thread(
        &self,
        id: &SessionId,
        thread: &ThreadId,
    ) -> Result<Option<(Thread, Vec<Message>)>, StoreError> {
        self.bound(self.inner.get_thread(id, thread)).await
    }
    async fn thread_tail(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        last: usize,
    ) -> Result<Option<ThreadTail>, StoreError> {
        self.bound(self.inner.thread_tail(id, thread, last)).await
    }
    async fn create_thread(&self, id: &SessionId, thread: &Thread) -> Result<(), StoreError> {
        self.bound(self.inner.create_thread(id, thread)).await
    }
    async fn update_thread(&self, id: &SessionId, thread: &Thread) -> Result<bool, StoreError> {
        self.bound(self.inner.update_thread(id, thread)).await
    }
    async fn delete_thread(&self, id: &SessionId, thread: &ThreadId) -> Result<bool, StoreError> {
        self.bound(self.inner.delete_thread(id, thread)).await
    }
    async fn get_message(
        &self,
        id: &SessionId,
        message: &MessageId,
    ) -> Result<Option<Message>, StoreError> {
        self.bound(self.inner.get_message(id, message)).await
    }
    async fn put_message(&self, id: &SessionId, message: &Message) -> Result<bool, StoreError> {
        self.bound(self.inner.put_message(id, message)).await
    }
    async fn put_messages(&self, id: &SessionId, messages: &[Message]) -> Result<bool, StoreError> {
        self.bound(self.inner.put_messages(id, messages)).await
    }
    async fn put_turn(
        &self,
        id: &SessionId,
        after: Option<&MessageId>,
        messages: &[Message],
    ) -> Result<bool, StoreError> {
        self.bound(self.inner.put_turn(id, after, messages)).await
    }
    async fn replace_message(&self, id: &SessionId, message: &Message) -> Result<bool, StoreError> {
        self.bound(self.inner.replace_message(id, message)).await
    }
    async fn truncate_after(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        after: Option<&MessageId>,
    ) -> Result<usize, StoreError> {
        self.bound(self.inner.truncate_after(id, thread, after))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_are_logged_without_ids() {
        let sid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        for (raw, logged) in [
            (
                format!("Redis: ERR key confide:s:{sid}:threads busy"),
                "Redis: ERR key confide:s:<id>:threads busy".to_owned(),
            ),
            (sid.replace('-', ""), "<id>".to_owned()),
            (format!("{sid},{sid}"), "<id>,<id>".to_owned()),
            // Short hex (ports, counts, slots) is no id.
            (
                "MOVED 3999 127.0.0.1:6381".to_owned(),
                "MOVED 3999 127.0.0.1:6381".to_owned(),
            ),
            ("deadbeef cafe".to_owned(), "deadbeef cafe".to_owned()),
            ("é😀 no ids".to_owned(), "é😀 no ids".to_owned()),
        ] {
            assert_eq!(without_ids(&raw), logged, "{raw}");
        }
    }

    /// A backend that never answers (a stuck connection, a locked database).
    struct Stuck;

    async fn never<T>() -> Result<T, StoreError> {
        std::future::pending().await
    }

    #[async_trait]
    impl Sessions for Stuck {
        async fn claim(
            &self,
            _: &SessionId,
            _: &ProofHash,
            _: Option<&SessionId>,
        ) -> Result<Claim, StoreError> {
            never().await
        }
        async fn create_home(&self, _: &SessionId) -> Result<bool, StoreError> {
            never().await
        }
        async fn peek(&self, _: &SessionId) -> Result<Option<SessionTimes>, StoreError> {
            never().await
        }
        async fn verify(&self, _: &SessionId, _: Option<&ProofHash>) -> Result<Verify, StoreError> {
            never().await
        }
        async fn delete(&self, _: &SessionId) -> Result<bool, StoreError> {
            never().await
        }
        async fn sweep(&self) -> Result<usize, StoreError> {
            never().await
        }
        async fn list_sessions(
            &self,
            _: Option<&str>,
            _: usize,
        ) -> Result<(Vec<SessionId>, Option<String>), StoreError> {
            never().await
        }
    }

    #[async_trait]
    impl Values for Stuck {
        async fn keys(&self, _: &SessionId, _: &str) -> Result<Vec<String>, StoreError> {
            never().await
        }
        async fn get(&self, _: &SessionId, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            never().await
        }
        async fn set(&self, _: &SessionId, _: &str, _: &[u8]) -> Result<(), StoreError> {
            never().await
        }
        async fn remove(&self, _: &SessionId, _: &str) -> Result<bool, StoreError> {
            never().await
        }
        async fn add(&self, _: &SessionId, _: &str, _: i64) -> Result<i64, StoreError> {
            never().await
        }
    }

    #[async_trait]
    impl Chats for Stuck {
        async fn list_threads(&self, _: &SessionId) -> Result<Vec<Thread>, StoreError> {
            never().await
        }
        async fn get_thread(
            &self,
            _: &SessionId,
            _: &ThreadId,
        ) -> Result<Option<(Thread, Vec<Message>)>, StoreError> {
            never().await
        }
        async fn thread_tail(
            &self,
            _: &SessionId,
            _: &ThreadId,
            _: usize,
        ) -> Result<Option<ThreadTail>, StoreError> {
            never().await
        }
        async fn create_thread(&self, _: &SessionId, _: &Thread) -> Result<(), StoreError> {
            never().await
        }
        async fn update_thread(&self, _: &SessionId, _: &Thread) -> Result<bool, StoreError> {
            never().await
        }
        async fn delete_thread(&self, _: &SessionId, _: &ThreadId) -> Result<bool, StoreError> {
            never().await
        }
        async fn get_message(
            &self,
            _: &SessionId,
            _: &MessageId,
        ) -> Result<Option<Message>, StoreError> {
            never().await
        }
        async fn replace_message(&self, _: &SessionId, _: &Message) -> Result<bool, StoreError> {
            never().await
        }
        async fn put_messages(&self, _: &SessionId, _: &[Message]) -> Result<bool, StoreError> {
            never().await
        }
        async fn put_turn(
            &self,
            _: &SessionId,
            _: Option<&MessageId>,
            _: &[Message],
        ) -> Result<bool, StoreError> {
            never().await
        }
        async fn truncate_after(
            &self,
            _: &SessionId,
            _: &ThreadId,
            _: Option<&MessageId>,
        ) -> Result<usize, StoreError> {
            never().await
        }
    }

    #[tokio::test]
    async fn a_stuck_store_answers_unavailable_in_time_and_its_sweep_is_not_cut_short() {
        let limit = Duration::from_millis(100);
        let store = Timed::wrap(std::sync::Arc::new(Stuck), limit);
        let id = SessionId::random();
        let started = std::time::Instant::now();
        let e = store.verify(&id, None).await.unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        assert!(started.elapsed() >= limit);
        let e = store.put_messages(&id, &[]).await.unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        let api: crate::ApiError = e.into();
        assert_eq!(api.code, crate::ErrorCode::StoreUnavailable);
        // A sweep walks every expired session; the bound is for requests.
        let sweep = tokio::time::timeout(limit * 5, store.sweep()).await;
        assert!(sweep.is_err(), "the sweep was cut short: {sweep:?}");
    }

    #[test]
    fn proofs_are_random_and_round_trip() {
        let a = Proof::generate().unwrap();
        let b = Proof::generate().unwrap();
        assert_ne!(a.encode(), b.encode());
        assert_eq!(a.encode().len(), 43);
        let h = Proof::hash_cookie_value(&a.encode()).unwrap();
        assert!(h.matches(&a.hash()));
        assert!(!h.matches(&b.hash()));
    }

    #[test]
    fn malformed_proof_cookies_hash_to_nothing() {
        let good = Proof::generate().unwrap().encode();
        let mut flipped = good.clone();
        flipped.replace_range(0..1, if good.starts_with('A') { "B" } else { "A" });
        assert!(
            Proof::hash_cookie_value(&flipped).is_some(),
            "a different valid secret still decodes"
        );
        assert!(
            !Proof::hash_cookie_value(&flipped)
                .unwrap()
                .matches(&Proof::hash_cookie_value(&good).unwrap())
        );
        for bad in [
            "",
            "abc",
            &good[..42],
            &format!("{good}A"),
            &good.replace(|_: char| true, "!"),
        ] {
            assert!(Proof::hash_cookie_value(bad).is_none(), "{bad:?}");
        }
        // 43 chars of standard (not url-safe) base64 alphabet are refused.
        let std_alphabet = format!("{}+", &good[..42]);
        assert!(Proof::hash_cookie_value(&std_alphabet).is_none());
    }

    #[test]
    fn keys_are_checked() {
        assert!(check_key("notes").is_ok());
        assert!(check_key("a.b_c:d-9").is_ok());
        assert!(check_key(&"k".repeat(MAX_KEY_LEN)).is_ok());
        for bad in [
            "",
            "has space",
            "slash/",
            "é",
            "nul\0",
            &"k".repeat(MAX_KEY_LEN + 1),
        ] {
            assert_eq!(check_key(bad), Err(StoreError::KeyInvalid), "{bad:?}");
        }
        assert_eq!(
            check_entry("k", &vec![0; MAX_VALUE_LEN + 1]),
            Err(StoreError::ValueTooLarge {
                len: MAX_VALUE_LEN + 1
            })
        );
        assert!(check_entry("k", &vec![0; MAX_VALUE_LEN]).is_ok());
    }

    #[test]
    fn expiry_is_the_earlier_of_idle_and_absolute() {
        let l = Lifetimes {
            idle: Duration::from_secs(10),
            absolute: Duration::from_secs(100),
        };
        assert_eq!(l.expires_at_ms(0, 0), 10_000);
        assert_eq!(l.expires_at_ms(0, 95_000), 100_000);
        assert!(!l.is_expired(0, 5_000, 14_999));
        assert!(l.is_expired(0, 5_000, 15_000));
        assert!(l.is_expired(0, 99_999, 100_000));
    }
}
