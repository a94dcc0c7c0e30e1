//! Redis store: shared by any number of server processes, kept in memory by Redis.
//!
//! - Four keys per session, `<prefix>:{<sid>}:s|kv|t|m` (record, values, threads, messages).
//!   The `{<sid>}` hash tag puts all of them in one Redis Cluster slot, so every operation can
//!   be a single Lua script over one session's keys: atomic, and one round trip.
//! - Expiry is Redis's own: every key of a session carries the session's deadline
//!   (min(idle, absolute) remaining). `verify` moves it for all four keys at once; a write
//!   gives the key it touches the record's remaining TTL. Scripts refuse to write when the
//!   record is gone, so a write racing an expiry or a delete never brings a session back.
//! - A thread is one hash field: its JSON (as a string, so Lua never re-encodes numbers), its
//!   `updated_ms` as a decimal string and its message count. Its message ids, in order and
//!   comma-separated (fixed-length UUIDs, so a plain substring search finds exactly one), are
//!   a field of the messages hash, `ids:<thread id>`, so a turn's cost does not grow with its
//!   thread: the record a turn decodes and writes back stays small, and a tail is cut from
//!   the end of the ids. Records written before kept the ids in themselves; the scripts read
//!   both, and the next write moves them.
//! - `<prefix>:deadlines` is a sorted set of claimed sessions by (possibly stale) deadline.
//!   Redis needs no sweeping; the set only lets `sweep` say how many sessions expired, and is
//!   kept outside the session scripts so they stay single-slot.
//! - A user's home has the same four keys, with `is_home` set in its record and no TTL on
//!   any of them (writes see PTTL -1 and PERSIST what they touch); it is never put in the
//!   deadline index. A signed-in session names its home in its record's `home` field.
//! - `<prefix>:{<sid>}:c` marks an id as claimed, with a TTL of two absolute lifetimes from
//!   the claim. A session ends at most one absolute lifetime after its claim, so the mark
//!   outlives its end by at least one more, however it ended (a delete, a script noticing the
//!   deadline, or Redis dropping the keys unseen), and `CLAIM` answers `Ended` while it is
//!   there. It holds no data and is not one of the session's keys; homes get none.
//! - On a Redis Cluster (`redis+cluster://`) the same layout works unchanged: a script
//!   touches one session's keys, one slot; the only commands that span sessions (the sweep's
//!   and the listing's look at many records) go one command per session, never one
//!   pipeline, since a cluster refuses a pipeline across slots.

use super::{check_home_id, unguessable_proof};
use ::redis::{
    Client, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture, Script,
    ServerErrorKind, ToRedisArgs, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
};
use app::{
    SessionId,
    model::{Message, MessageId, Thread, ThreadId},
};
use async_trait::async_trait;
use confide_core::{
    Chats, Claim, Lifetimes, Probe, ProofHash, SessionTimes, Sessions, StoreError, Values, Verify,
    store::{MAX_KEYS, MAX_MESSAGES, MAX_THREADS, ThreadTail, check_entry, check_key, now_ms},
};
use serde::{Deserialize, Serialize};
use std::{
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

/// How `sweep` walks the deadline index: this many sessions per round trip.
const SWEEP_BATCH: usize = 256;

/// Script results. Lua returns these as the first (or only) element.
const GONE: i64 = 0;
const OK: i64 = 1;
const AT_LIMIT: i64 = 2;
const NOT_FOUND: i64 = 3;
/// From `VERIFY`: the id is a home, which no proof opens.
const IS_HOME: i64 = 4;
/// From `CLAIM`: the id belonged to a session that has ended.
const ENDED: i64 = 5;
/// From `ADD_VALUE`: the key holds something other than an integer.
const NOT_A_COUNTER: i64 = 6;
/// From `PUT_MESSAGES`: the turn's thread no longer ends where the turn read it.
const THREAD_MOVED: i64 = 7;

/// Helpers every session script starts with. KEYS[1] is always the session record.
const PRELUDE: &str = include_str!("lua/prelude.lua");

fn script(body: &str) -> Lua {
    let source = format!("{PRELUDE}{body}");
    let hash = Script::new(&source).get_hash().to_owned();
    Lua { source, hash }
}

/// A store script, run by its hash. Redis forgets scripts (a restart, a replica promoted,
/// `SCRIPT FLUSH`); a call that finds its script gone sends the source itself, which Redis
/// runs and keeps. Loading it first and then asking again by hash (as `redis::Script`
/// does) can lose the script again in between, and on a cluster the retry can reach another
/// node.
struct Lua {
    source: String,
    hash: String,
}

impl Lua {
    fn key(&self, key: impl ToRedisArgs) -> LuaCall<'_> {
        LuaCall {
            lua: self,
            keys: key.to_redis_args(),
            args: Vec::new(),
        }
    }
}

struct LuaCall<'a> {
    lua: &'a Lua,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl LuaCall<'_> {
    fn key(&mut self, key: impl ToRedisArgs) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }

    fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    /// `EVALSHA`, or with `by_source` `EVAL`; both route by their keys on a cluster.
    fn cmd(&self, by_source: bool) -> Cmd {
        let (name, script) = if by_source {
            ("EVAL", &self.lua.source)
        } else {
            ("EVALSHA", &self.lua.hash)
        };
        let mut cmd = ::redis::cmd(name);
        cmd.arg(script)
            .arg(self.keys.len())
            .arg(&self.keys[..])
            .arg(&self.args[..]);
        cmd
    }
}

static CLAIM: LazyLock<Lua> = LazyLock::new(|| script(include_str!("lua/claim.lua")));

static CREATE_HOME: LazyLock<Lua> = LazyLock::new(|| script(include_str!("lua/create_home.lua")));

static VERIFY: LazyLock<Lua> = LazyLock::new(|| script(include_str!("lua/verify.lua")));

static HGET_LIVE: LazyLock<Lua> = LazyLock::new(|| script(include_str!("lua/hget_live.lua")));

static KEYS_WITH_PREFIX: LazyLock<Lua> =
    LazyLock::new(|| script(include_str!("lua/keys_with_prefix.lua")));

static HDEL_LIVE: LazyLock<Lua> = LazyLock::new(|| script(include_str!("lua/hdel_live.lua")));

static SET_VALUE: LazyLock<Lua> = LazyLock::new(|| script(include_str!("lua/set_value.lua")));

static ADD_VALUE: LazyLock<Lua> = LazyLock::new(|| script(include_str!("lua/add_value.lua")));

static DELETE: LazyLock<Lua> = LazyLock::new(|| script(include_str!("lua/delete.lua")));

static LIST_THREADS: LazyLock<Lua> = LazyLock::new(|| script(include_str!("lua/list_threads.lua")));

static GET_THREAD: LazyLock<Lua> = LazyLock::new(|| script(include_str!("lua/get_thread.lua")));

static THREAD_TAIL: LazyLock<Lua> = LazyLock::new(|| script(include_str!("lua/thread_tail.lua")));

static CREATE_THREAD: LazyLock<Lua> =
    LazyLock::new(|| script(include_str!("lua/create_thread.lua")));

static UPDATE_THREAD: LazyLock<Lua> =
    LazyLock::new(|| script(include_str!("lua/update_thread.lua")));

static DELETE_THREAD: LazyLock<Lua> =
    LazyLock::new(|| script(include_str!("lua/delete_thread.lua")));

static PUT_MESSAGES: LazyLock<Lua> = LazyLock::new(|| script(include_str!("lua/put_messages.lua")));

static TRUNCATE_AFTER: LazyLock<Lua> =
    LazyLock::new(|| script(include_str!("lua/truncate_after.lua")));

/// A thread as stored in its session's `:t` hash.
#[derive(Serialize, Deserialize)]
struct ThreadRecord {
    /// The thread's JSON as last written by create/update. Its `updated_ms` is stale once a
    /// message has been appended; the field below is the truth.
    thread: String,
    updated_ms: String,
    /// Message ids in conversation order, comma-separated, in records written before they
    /// moved to the messages hash (`ids:<thread id>`); empty, and left out, in new ones.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    messages: String,
    /// How many ids `messages` holds. Absent from records written before it was kept; the
    /// scripts work it out then (see `message_count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

impl ThreadRecord {
    fn new(thread: &Thread) -> Result<Self, StoreError> {
        Ok(Self {
            thread: to_json(thread)?,
            updated_ms: thread.updated_ms.to_string(),
            messages: String::new(),
            count: Some(0),
        })
    }

    fn decode(raw: &[u8]) -> Result<Thread, StoreError> {
        let rec: ThreadRecord = serde_json::from_slice(raw).map_err(|_| corrupt("thread"))?;
        let mut thread: Thread =
            serde_json::from_str(&rec.thread).map_err(|_| corrupt("thread"))?;
        thread.updated_ms = rec.updated_ms.parse().map_err(|_| corrupt("thread"))?;
        Ok(thread)
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("unreadable {what} record in Redis"))
}

fn to_json(value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("cannot encode: {e}")))
}

fn unexpected(code: i64) -> StoreError {
    StoreError::Internal(format!("unexpected script result {code}"))
}

/// Connection trouble and a server that cannot serve right now are `Unavailable` (the
/// guard answers 503 and the caller may retry); anything else is a bug or bad data.
fn redis_error(e: RedisError) -> StoreError {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            )
        );
    // A cluster mid-failover: slots moving, a node gone until its replica takes over. The
    // client follows and retries within the op timeout; past it, the request may be retried.
    let cluster_moving =
        e.is_cluster_error() || matches!(e.kind(), ErrorKind::ClusterConnectionNotFound);
    if transient || cluster_moving {
        StoreError::Unavailable(format!("Redis: {e}"))
    } else {
        StoreError::Internal(format!("Redis: {e}"))
    }
}

/// Key prefixes become part of every key and of a PSUBSCRIBE pattern: keep them to
/// characters that mean nothing to either (no `{}` hash tags, no glob metacharacters).
pub(crate) fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Internal(
            "the Redis key prefix must be 1 to 64 characters of [A-Za-z0-9._:-]".into(),
        ))
    }
}

/// One Redis server or a Redis Cluster behind one connection type, so that every call is
/// written once. Both reconnect by themselves; the cluster client also follows slots that
/// moved (`MOVED`/`ASK`) and a replica promoted after its master failed.
#[derive(Clone)]
pub(crate) enum Conn {
    One(ConnectionManager),
    Cluster(Arc<Healing>),
}

/// A cluster connection that is replaced when it stops answering altogether. The cluster
/// client can wedge in its own recovery under load during a failover (a slot refresh that
/// never ends, every request then waiting on it), while the cluster itself is fine: seen in
/// the soak's planned failover with 1,000 users. So when no request has succeeded for a
/// few answer timeouts, a fresh connection is made from the seed nodes and takes over.
pub(crate) struct Healing {
    client: ClusterClient,
    current: std::sync::RwLock<ClusterConnection>,
    timeout: Duration,
    last_ok_ms: AtomicI64,
    rebuilding: AtomicBool,
}

impl Healing {
    fn conn(&self) -> ClusterConnection {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn answered<T>(self: &Arc<Self>, r: &Result<T, RedisError>) {
        match r {
            Ok(_) => self.last_ok_ms.store(now_ms(), Ordering::Relaxed),
            // The server answered: the connection works, whatever it said.
            Err(e)
                if e.kind() != ErrorKind::ClusterConnectionNotFound
                    && !e.is_timeout()
                    && !e.is_io_error() =>
            {
                self.last_ok_ms.store(now_ms(), Ordering::Relaxed)
            }
            Err(_) => self.maybe_rebuild(),
        }
    }

    fn maybe_rebuild(self: &Arc<Self>) {
        let silent = now_ms().saturating_sub(self.last_ok_ms.load(Ordering::Relaxed));
        if silent < 3 * lua_ms(self.timeout) || self.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(me.timeout, me.client.get_async_connection()).await {
                Ok(Ok(fresh)) => {
                    *me.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                    me.last_ok_ms.store(now_ms(), Ordering::Relaxed);
                    tracing::warn!(
                        silent_ms = silent,
                        "the Redis Cluster connection stopped answering; replaced it with a new one"
                    );
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "a new Redis Cluster connection failed"),
                Err(_) => tracing::debug!("a new Redis Cluster connection timed out"),
            }
            me.rebuilding.store(false, Ordering::Release);
        });
    }

    /// Runs one request on the current connection, bounded by the answer timeout, and
    /// notes whether the cluster answered.
    async fn run<T>(
        self: Arc<Self>,
        request: impl AsyncFnOnce(&mut ClusterConnection) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let mut c = self.conn();
        let r = match tokio::time::timeout(self.timeout, request(&mut c)).await {
            Ok(r) => r,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the Redis Cluster did not answer in time",
            ))),
        };
        self.answered(&r);
        r
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::One(c) => c.req_packed_command(cmd),
            Self::Cluster(h) => {
                let h = h.clone();
                Box::pin(h.run(async move |c| c.req_packed_command(cmd).await))
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::One(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(h) => {
                let h = h.clone();
                Box::pin(h.run(async move |c| c.req_packed_commands(pipeline, offset, count).await))
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::One(c) => c.get_db(),
            Self::Cluster(_) => 0,
        }
    }
}

impl Conn {
    /// Connects to `url`: `redis://` for one server, `redis+cluster://` for a cluster.
    /// `timeout` bounds connecting and each answer. A single server is connected lazily (the
    /// caller pings); a cluster's slot map is read now, from whichever seed node answers.
    pub(crate) async fn open(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        match cluster_nodes(url)? {
            None => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    // Keep retrying while Redis is away, but never wait long between
                    // attempts: a request waits for the attempt in progress.
                    .set_max_delay(Duration::from_secs(1));
                ConnectionManager::new_lazy_with_config(client(url)?, config)
                    .map(Self::One)
                    .map_err(redis_error)
            }
            Some(nodes) => {
                let client = ClusterClient::builder(nodes)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .overall_response_timeout(Some(timeout))
                    // A failover takes the cluster's node timeout (seconds); short waits
                    // between a few retries ride out a moved slot, and `timeout` bounds all.
                    .retries(6)
                    .min_retry_wait(20)
                    .max_retry_wait(500)
                    .build()
                    .map_err(|e| {
                        StoreError::Internal(format!("invalid Redis Cluster URL ({:?})", e.kind()))
                    })?;
                match tokio::time::timeout(timeout, client.get_async_connection()).await {
                    Ok(Ok(c)) => Ok(Self::Cluster(Arc::new(Healing {
                        client,
                        current: std::sync::RwLock::new(c),
                        timeout,
                        last_ok_ms: AtomicI64::new(now_ms()),
                        rebuilding: AtomicBool::new(false),
                    }))),
                    Ok(Err(e)) => Err(redis_error(e)),
                    Err(_) => Err(StoreError::Unavailable(format!(
                        "no Redis Cluster node answered within {timeout:?}"
                    ))),
                }
            }
        }
    }
}

/// The nodes of a `redis+cluster://[user:password@]host:port,host:port[/]` URL, each as a
/// `redis://` URL with the credentials; `None` for any other URL. Any one reachable node is
/// enough: the client learns the rest from it.
pub(crate) fn cluster_nodes(url: &str) -> Result<Option<Vec<String>>, StoreError> {
    if url.starts_with("rediss+cluster://") {
        return Err(StoreError::Internal(
            "rediss+cluster:// (TLS) is not enabled in this build: use redis+cluster://, e.g. \
             through a TLS tunnel"
                .into(),
        ));
    }
    let Some(rest) = url.strip_prefix("redis+cluster://") else {
        return Ok(None);
    };
    let rest = rest.trim_end_matches('/');
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((a, h)) => (format!("{a}@"), h),
        None => (String::new(), rest),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{auth}{h}"))
        .collect();
    let bad = || {
        StoreError::Internal(
            "a Redis Cluster URL is redis+cluster://[user:password@]host:port,host:port".into(),
        )
    };
    if nodes.is_empty() || hosts.contains('/') {
        return Err(bad());
    }
    for n in &nodes {
        Client::open(n.as_str()).map_err(|_| bad())?;
    }
    Ok(Some(nodes))
}

/// Opens a client for `url` without echoing the URL, which may hold a password.
pub(crate) fn client(url: &str) -> Result<Client, StoreError> {
    if url.starts_with("rediss://") {
        return Err(StoreError::Internal(
            "rediss:// (TLS) is not enabled in this build: use redis://, e.g. through a TLS tunnel"
                .into(),
        ));
    }
    Client::open(url)
        .map_err(|e| StoreError::Internal(format!("invalid Redis URL ({:?})", e.kind())))
}

/// Lua numbers are doubles, formatted with 14 significant digits; milliseconds below 10^13
/// (over 300 years) survive that exactly.
fn lua_ms(d: Duration) -> i64 {
    d.as_millis().min(10_000_000_000_000) as i64
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A home id as a signed-in session's record names it.
fn parse_home(s: &str) -> Result<SessionId, StoreError> {
    SessionId::parse_stored(s).map_err(|_| corrupt("session"))
}

fn proof_from_hex(s: &[u8]) -> Option<ProofHash> {
    let s = std::str::from_utf8(s).ok()?;
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(ProofHash::from_bytes(out))
}

/// The key names of one session: its four keys, then its claim mark.
struct Keys([String; 5]);

impl Keys {
    fn record(&self) -> &str {
        &self.0[0]
    }
    fn values(&self) -> &str {
        &self.0[1]
    }
    fn threads(&self) -> &str {
        &self.0[2]
    }
    fn messages(&self) -> &str {
        &self.0[3]
    }
    /// The four keys that hold the session.
    fn session(&self) -> &[String] {
        &self.0[..4]
    }
    /// For the scripts that decide whether the id may be claimed: the four keys and the mark.
    fn with_mark(&self) -> &[String] {
        &self.0[..]
    }
}

/// Sessions kept in Redis, shared by any number of server processes.
pub struct RedisStore {
    conn: Conn,
    prefix: String,
    lifetimes: Lifetimes,
    op_timeout: Duration,
}

impl RedisStore {
    /// Connects and checks that Redis answers within `op_timeout`, which then bounds every
    /// call. A Redis that goes away later makes calls fail with `Unavailable` until it is
    /// back; the connection is re-established in the background.
    pub async fn connect(
        url: &str,
        prefix: &str,
        lifetimes: Lifetimes,
        op_timeout: Duration,
    ) -> Result<Self, StoreError> {
        check_prefix(prefix)?;
        let conn = Conn::open(url, op_timeout).await?;
        let store = Self {
            conn,
            prefix: prefix.to_owned(),
            lifetimes,
            op_timeout,
        };
        store
            .bounded(|mut c| async move { ::redis::cmd("PING").query_async::<()>(&mut c).await })
            .await?;
        Ok(store)
    }

    /// The namespace of its keys (`redis_prefix`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Names of the session's keys that exist in Redis right now; for tests and operators.
    pub async fn session_keys(&self, id: &SessionId) -> Result<Vec<String>, StoreError> {
        let keys = self.names(id);
        let mut pipe = ::redis::pipe();
        for k in keys.session() {
            pipe.exists(k);
        }
        let exists: Vec<bool> = self
            .bounded(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        Ok(keys
            .session()
            .iter()
            .cloned()
            .zip(exists)
            .filter_map(|(k, e)| e.then_some(k))
            .collect())
    }

    fn names(&self, id: &SessionId) -> Keys {
        let base = format!("{}:{{{}}}", self.prefix, id.as_string());
        Keys([
            format!("{base}:s"),
            format!("{base}:kv"),
            format!("{base}:t"),
            format!("{base}:m"),
            format!("{base}:c"),
        ])
    }

    fn deadlines_key(&self) -> String {
        format!("{}:deadlines", self.prefix)
    }

    fn idle_ms(&self) -> i64 {
        lua_ms(self.lifetimes.idle)
    }

    fn absolute_ms(&self) -> i64 {
        lua_ms(self.lifetimes.absolute)
    }

    /// Runs one request on a clone of the manager, bounded by the op timeout. Dropping a
    /// timed-out request is safe: the multiplexed connection discards its late reply.
    async fn bounded<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        match tokio::time::timeout(self.op_timeout, f(self.conn.clone())).await {
            Ok(result) => result.map_err(redis_error),
            Err(_) => Err(StoreError::Unavailable(format!(
                "Redis did not answer within {:?}",
                self.op_timeout
            ))),
        }
    }

    /// One command per session, all in flight at once (the multiplexed connection sends
    /// them back to back), rather than one pipeline: on a cluster the sessions live in
    /// different slots, and a pipeline must not span slots.
    async fn each<T: FromRedisValue>(
        &self,
        cmds: impl Iterator<Item = Cmd>,
    ) -> Result<Vec<T>, StoreError> {
        let conn = self.conn.clone();
        let calls = cmds.map(|cmd| {
            let mut c = conn.clone();
            async move { cmd.query_async::<T>(&mut c).await }
        });
        let all = futures::future::try_join_all(calls);
        self.bounded(|_| all).await
    }

    async fn run<T: FromRedisValue>(&self, call: &LuaCall<'_>) -> Result<T, StoreError> {
        self.bounded(|mut c| async move {
            match call.cmd(false).query_async(&mut c).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    call.cmd(true).query_async(&mut c).await
                }
                answer => answer,
            }
        })
        .await
    }

    async fn claim_with(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: Option<&SessionId>,
    ) -> Result<Claim, StoreError> {
        let keys = self.names(id);
        let now = now_ms();
        let won: i64 = self
            .run(
                CLAIM
                    .key(keys.with_mark())
                    .arg(hex(proof.as_bytes()))
                    .arg(now)
                    .arg(self.idle_ms())
                    .arg(self.absolute_ms())
                    .arg(home.map(SessionId::as_string).unwrap_or_default()),
            )
            .await?;
        match won {
            OK => {}
            0 => return Ok(Claim::Taken),
            ENDED => return Ok(Claim::Ended),
            other => return Err(unexpected(other)),
        }
        // The deadline index feeds `sweep`'s count and `list_sessions`, so failing to update
        // it must not fail a claim that has happened. Entries whose deadline passed more than one
        // absolute lifetime ago are dead for sure; trimming them here bounds the index even
        // if nothing ever sweeps.
        let deadline = now.saturating_add(self.idle_ms().min(self.absolute_ms()));
        // `confide sessions end-all` finds sessions through the index too: a few tries (a
        // cluster's slot for it may be failing over), then a warning.
        for attempt in 0..3 {
            match self.index(id, now, deadline).await {
                Ok(()) => break,
                Err(e) if attempt == 2 => {
                    tracing::warn!(session = %id.log_tag(), error = %e, "could not index a new Redis session for sweeping and listing");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50 << attempt)).await,
            }
        }
        Ok(Claim::Won)
    }

    async fn index(&self, id: &SessionId, now: i64, deadline: i64) -> Result<(), StoreError> {
        let mut pipe = ::redis::pipe();
        pipe.zadd(self.deadlines_key(), id.as_string(), deadline)
            .ignore()
            .zrembyscore(
                self.deadlines_key(),
                "-inf",
                format!("({}", now.saturating_sub(self.absolute_ms())),
            )
            .ignore();
        self.bounded(|mut c| async move { pipe.exec_async(&mut c).await })
            .await
    }

    /// Maps the usual script status for calls whose answer is just "done".
    fn status(code: i64) -> Result<(), StoreError> {
        match code {
            OK => Ok(()),
            GONE => Err(StoreError::NoSuchSession),
            other => Err(unexpected(other)),
        }
    }

    /// Like `status`, for calls that report whether the thread was there.
    /// `put_messages`, with `end` `put_turn`, or with `replace_only` `replace_message`: one
    /// script each way.
    async fn put_or_replace(
        &self,
        id: &SessionId,
        messages: &[Message],
        replace_only: bool,
        end: Option<Option<&MessageId>>,
    ) -> Result<bool, StoreError> {
        let keys = self.names(id);
        let mut call = PUT_MESSAGES.key(keys.record());
        call.key(keys.threads()).key(keys.messages());
        if replace_only {
            call.arg("replace");
        } else {
            call.arg(MAX_MESSAGES);
        }
        call.arg(match end {
            None => String::new(),
            Some(None) => "-".to_owned(),
            Some(Some(last)) => last.as_string(),
        });
        for m in messages {
            call.arg(m.thread_id.as_string())
                .arg(m.id.as_string())
                .arg(to_json(m)?)
                .arg(m.created_ms)
                .arg(if m.status == app::model::MessageStatus::Streaming {
                    "1"
                } else {
                    "0"
                });
        }
        let code: i64 = self.run(&call).await?;
        match code {
            AT_LIMIT => Err(StoreError::TooManyMessages),
            THREAD_MOVED => Err(StoreError::Moved),
            code => Self::found(code),
        }
    }

    fn found(code: i64) -> Result<bool, StoreError> {
        match code {
            OK => Ok(true),
            NOT_FOUND => Ok(false),
            GONE => Err(StoreError::NoSuchSession),
            other => Err(unexpected(other)),
        }
    }
}

#[async_trait]
impl Sessions for RedisStore {
    /// A home is checked in a round trip of its own, before the claim: a script may only
    /// touch keys of one hash slot (one session), and a home is in another. A home deleted
    /// between the two leaves a session bound to a deleted home, the state a delete right
    /// after the claim would leave; the app deals with it either way.
    async fn claim(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: Option<&SessionId>,
    ) -> Result<Claim, StoreError> {
        if let Some(home) = home {
            let record = self.names(home).record().to_owned();
            let is_home: bool = self
                .bounded(|mut c| async move {
                    ::redis::cmd("HEXISTS")
                        .arg(record)
                        .arg("is_home")
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if !is_home {
                return Err(StoreError::NoSuchSession);
            }
        }
        self.claim_with(id, proof, home).await
    }

    async fn create_home(&self, home: &SessionId) -> Result<bool, StoreError> {
        check_home_id(home)?;
        let keys = self.names(home);
        let created: i64 = self
            .run(
                CREATE_HOME
                    .key(keys.session())
                    .arg(hex(unguessable_proof()?.as_bytes()))
                    .arg(now_ms())
                    .arg(self.idle_ms())
                    .arg(self.absolute_ms()),
            )
            .await?;
        Ok(created == 1)
    }

    async fn peek(&self, id: &SessionId) -> Result<Option<SessionTimes>, StoreError> {
        let record = self.names(id).record().to_owned();
        let fields: Vec<Option<String>> = self
            .bounded(|mut c| async move {
                ::redis::cmd("HMGET")
                    .arg(record)
                    .arg(&["created", "seen", "home", "is_home"])
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let [created, seen, home, is_home]: [Option<String>; 4] =
            fields.try_into().map_err(|_| corrupt("session"))?;
        let Some(created) = created else {
            return Ok(None);
        };
        let created_ms: i64 = created.parse().map_err(|_| corrupt("session"))?;
        let last_seen_ms: i64 = match seen {
            Some(s) => s.parse().map_err(|_| corrupt("session"))?,
            None => created_ms,
        };
        if is_home.is_none()
            && self
                .lifetimes
                .is_expired(created_ms, last_seen_ms, now_ms())
        {
            return Ok(None);
        }
        Ok(Some(SessionTimes {
            created_ms,
            last_seen_ms,
            home: home.as_deref().map(parse_home).transpose()?,
        }))
    }

    async fn verify(
        &self,
        id: &SessionId,
        proof: Option<&ProofHash>,
    ) -> Result<Verify, StoreError> {
        let keys = self.names(id);
        type Reply = (i64, Option<Vec<u8>>, Option<String>, Option<String>);
        let (code, stored, created, home): Reply = self
            .run(
                VERIFY
                    .key(keys.with_mark())
                    .arg(proof.map(|p| hex(p.as_bytes())).unwrap_or_default())
                    .arg(now_ms())
                    .arg(self.idle_ms())
                    .arg(self.absolute_ms()),
            )
            .await?;
        if code != OK && code != IS_HOME {
            return Ok(Verify::Unknown);
        }
        let created_ms = created
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| corrupt("session"))?;
        if code == IS_HOME {
            return Ok(Verify::Denied { created_ms });
        }
        let stored = stored
            .as_deref()
            .and_then(proof_from_hex)
            .ok_or_else(|| corrupt("session"))?;
        match proof {
            Some(p) if stored.matches(p) => Ok(Verify::Valid {
                created_ms,
                home: home.as_deref().map(parse_home).transpose()?,
            }),
            _ => Ok(Verify::Denied { created_ms }),
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let keys = self.names(id);
        let existed: bool = self
            .run(DELETE.key(keys.with_mark()).arg(self.absolute_ms()))
            .await?;
        if existed {
            let (index, member) = (self.deadlines_key(), id.as_string());
            if let Err(e) = self
                .bounded(|mut c| async move {
                    ::redis::cmd("ZREM")
                        .arg(index)
                        .arg(member)
                        .exec_async(&mut c)
                        .await
                })
                .await
            {
                tracing::debug!(session = %id.log_tag(), error = %e, "could not unindex a deleted Redis session");
            }
        }
        Ok(existed)
    }

    /// Redis has already dropped expired sessions; this walks the deadline index to count
    /// them (and forget them), re-filing sessions whose deadline moved since they were filed.
    async fn sweep(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let index = self.deadlines_key();
        let mut gone = 0;
        loop {
            let due: Vec<String> = {
                let cmd =
                    ::redis::Cmd::zrangebyscore_limit(&index, "-inf", now, 0, SWEEP_BATCH as isize);
                self.bounded(|mut c| async move { cmd.query_async(&mut c).await })
                    .await?
            };
            if due.is_empty() {
                return Ok(gone);
            }
            let mut update = ::redis::pipe();
            let mut sessions = Vec::with_capacity(due.len());
            for member in &due {
                match SessionId::parse(member) {
                    Ok(sid) => sessions.push((member, self.names(&sid))),
                    // Not written by this store: nothing to count, just forget it.
                    Err(_) => {
                        update.zrem(&index, member).ignore();
                    }
                }
            }
            let ttls: Vec<i64> = self
                .each(sessions.iter().map(|(_, keys)| {
                    let mut cmd = ::redis::cmd("PTTL");
                    cmd.arg(keys.record());
                    cmd
                }))
                .await?;
            for ((member, _), ttl) in sessions.iter().zip(ttls) {
                if ttl == -2 {
                    update.zrem(&index, member).ignore();
                    gone += 1;
                } else {
                    // Still alive: file it under its real deadline, which is after `now`, so
                    // this sweep does not meet it again.
                    let ttl = if ttl < 0 { self.idle_ms() } else { ttl };
                    update.zadd(&index, member, now + ttl + 1).ignore();
                }
            }
            self.bounded(|mut c| async move { update.exec_async(&mut c).await })
                .await?;
            if due.len() < SWEEP_BATCH {
                return Ok(gone);
            }
        }
    }

    /// Walks the deadline index, which holds every session and no home, with `ZSCAN`; its
    /// cursor is Redis's own.
    async fn list_sessions(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<SessionId>, Option<String>), StoreError> {
        let from = match cursor.map(str::parse::<u64>) {
            None => 0,
            Some(Ok(c)) if c > 0 => c,
            Some(_) => return Ok((Vec::new(), None)),
        };
        let cmd = ::redis::cmd("ZSCAN")
            .arg(self.deadlines_key())
            .arg(from)
            .arg("COUNT")
            .arg(limit.max(1))
            .to_owned();
        let (next, flat): (u64, Vec<String>) = self
            .bounded(|mut c| async move { cmd.query_async(&mut c).await })
            .await?;
        // Members and scores alternate.
        let ids: Vec<SessionId> = flat
            .iter()
            .step_by(2)
            .filter_map(|m| SessionId::parse(m).ok())
            .collect();
        let live: Vec<bool> = self
            .each(ids.iter().map(|id| {
                let mut cmd = ::redis::cmd("EXISTS");
                cmd.arg(self.names(id).record());
                cmd
            }))
            .await?;
        let ids = ids
            .into_iter()
            .zip(live)
            .filter_map(|(id, l)| l.then_some(id))
            .collect();
        Ok((ids, (next != 0).then(|| next.to_string())))
    }
}

#[async_trait]
impl Values for RedisStore {
    async fn keys(&self, id: &SessionId, prefix: &str) -> Result<Vec<String>, StoreError> {
        let keys = self.names(id);
        let (code, found): (i64, Vec<String>) = self
            .run(
                KEYS_WITH_PREFIX
                    .key(keys.record())
                    .key(keys.values())
                    .arg(prefix),
            )
            .await?;
        Self::status(code).map(|()| found)
    }

    async fn get(&self, id: &SessionId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let keys = self.names(id);
        let (code, value): (i64, Option<Vec<u8>>) = self
            .run(HGET_LIVE.key(keys.record()).key(keys.values()).arg(key))
            .await?;
        Self::status(code).map(|()| value)
    }

    async fn set(&self, id: &SessionId, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_entry(key, value)?;
        let keys = self.names(id);
        let code: i64 = self
            .run(
                SET_VALUE
                    .key(keys.record())
                    .key(keys.values())
                    .arg(key)
                    .arg(value)
                    .arg(MAX_KEYS),
            )
            .await?;
        match code {
            AT_LIMIT => Err(StoreError::TooManyKeys),
            code => Self::status(code),
        }
    }

    async fn add(&self, id: &SessionId, key: &str, delta: i64) -> Result<i64, StoreError> {
        check_key(key)?;
        let keys = self.names(id);
        let (code, sum): (i64, i64) = self
            .run(
                ADD_VALUE
                    .key(keys.record())
                    .key(keys.values())
                    .arg(key)
                    .arg(delta)
                    .arg(MAX_KEYS),
            )
            .await?;
        match code {
            OK => Ok(sum),
            AT_LIMIT => Err(StoreError::TooManyKeys),
            NOT_A_COUNTER => Err(StoreError::Internal("the value is not a counter".into())),
            code => Self::status(code).map(|()| sum),
        }
    }

    async fn remove(&self, id: &SessionId, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let keys = self.names(id);
        let removed: i64 = self
            .run(HDEL_LIVE.key(keys.record()).key(keys.values()).arg(key))
            .await?;
        if removed < 0 {
            Err(StoreError::NoSuchSession)
        } else {
            Ok(removed > 0)
        }
    }
}

#[async_trait]
impl Chats for RedisStore {
    async fn list_threads(&self, id: &SessionId) -> Result<Vec<Thread>, StoreError> {
        let keys = self.names(id);
        let (code, raw): (i64, Vec<Vec<u8>>) = self
            .run(LIST_THREADS.key(keys.record()).key(keys.threads()))
            .await?;
        Self::status(code)?;
        let mut out = raw
            .iter()
            .map(|r| ThreadRecord::decode(r))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| {
            b.updated_ms
                .cmp(&a.updated_ms)
                .then(b.created_ms.cmp(&a.created_ms))
        });
        Ok(out)
    }

    async fn get_thread(
        &self,
        id: &SessionId,
        thread: &ThreadId,
    ) -> Result<Option<(Thread, Vec<Message>)>, StoreError> {
        let keys = self.names(id);
        let (code, raw, messages): (i64, Option<Vec<u8>>, Vec<Option<Vec<u8>>>) = self
            .run(
                GET_THREAD
                    .key(keys.record())
                    .key(keys.threads())
                    .key(keys.messages())
                    .arg(thread.as_string()),
            )
            .await?;
        Self::status(code)?;
        let Some(raw) = raw else { return Ok(None) };
        let messages = messages
            .iter()
            .flatten()
            .map(|m| serde_json::from_slice(m).map_err(|_| corrupt("message")))
            .collect::<Result<Vec<Message>, _>>()?;
        Ok(Some((ThreadRecord::decode(&raw)?, messages)))
    }

    async fn thread_tail(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        last: usize,
    ) -> Result<Option<ThreadTail>, StoreError> {
        let keys = self.names(id);
        let (code, raw, count, messages): (i64, Option<Vec<u8>>, i64, Vec<Option<Vec<u8>>>) = self
            .run(
                THREAD_TAIL
                    .key(keys.record())
                    .key(keys.threads())
                    .key(keys.messages())
                    .arg(thread.as_string())
                    .arg(last.min(MAX_MESSAGES)),
            )
            .await?;
        Self::status(code)?;
        let Some(raw) = raw else { return Ok(None) };
        let messages = messages
            .iter()
            .flatten()
            .map(|m| serde_json::from_slice(m).map_err(|_| corrupt("message")))
            .collect::<Result<Vec<Message>, _>>()?;
        Ok(Some(ThreadTail {
            thread: ThreadRecord::decode(&raw)?,
            messages,
            count: usize::try_from(count).map_err(|_| corrupt("thread"))?,
        }))
    }

    async fn create_thread(&self, id: &SessionId, thread: &Thread) -> Result<(), StoreError> {
        let keys = self.names(id);
        let record = to_json(&ThreadRecord::new(thread)?)?;
        let code: i64 = self
            .run(
                CREATE_THREAD
                    .key(keys.record())
                    .key(keys.threads())
                    .arg(thread.id.as_string())
                    .arg(record)
                    .arg(MAX_THREADS),
            )
            .await?;
        match code {
            AT_LIMIT => Err(StoreError::TooManyThreads),
            code => Self::status(code),
        }
    }

    async fn update_thread(&self, id: &SessionId, thread: &Thread) -> Result<bool, StoreError> {
        let keys = self.names(id);
        let code: i64 = self
            .run(
                UPDATE_THREAD
                    .key(keys.record())
                    .key(keys.threads())
                    .arg(thread.id.as_string())
                    .arg(to_json(thread)?)
                    .arg(thread.updated_ms),
            )
            .await?;
        Self::found(code)
    }

    async fn delete_thread(&self, id: &SessionId, thread: &ThreadId) -> Result<bool, StoreError> {
        let keys = self.names(id);
        let code: i64 = self
            .run(
                DELETE_THREAD
                    .key(keys.record())
                    .key(keys.threads())
                    .key(keys.messages())
                    .arg(thread.as_string()),
            )
            .await?;
        Self::found(code)
    }

    async fn get_message(
        &self,
        id: &SessionId,
        message: &MessageId,
    ) -> Result<Option<Message>, StoreError> {
        let keys = self.names(id);
        let (code, raw): (i64, Option<Vec<u8>>) = self
            .run(
                HGET_LIVE
                    .key(keys.record())
                    .key(keys.messages())
                    .arg(message.as_string()),
            )
            .await?;
        Self::status(code)?;
        raw.map(|m| serde_json::from_slice(&m).map_err(|_| corrupt("message")))
            .transpose()
    }

    async fn replace_message(&self, id: &SessionId, m: &Message) -> Result<bool, StoreError> {
        self.put_or_replace(id, std::slice::from_ref(m), true, None)
            .await
    }

    async fn put_messages(&self, id: &SessionId, messages: &[Message]) -> Result<bool, StoreError> {
        self.put_or_replace(id, messages, false, None).await
    }

    async fn put_turn(
        &self,
        id: &SessionId,
        after: Option<&MessageId>,
        messages: &[Message],
    ) -> Result<bool, StoreError> {
        self.put_or_replace(id, messages, false, Some(after)).await
    }

    async fn truncate_after(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        after: Option<&MessageId>,
    ) -> Result<usize, StoreError> {
        let keys = self.names(id);
        let dropped: i64 = self
            .run(
                TRUNCATE_AFTER
                    .key(keys.record())
                    .key(keys.threads())
                    .key(keys.messages())
                    .arg(thread.as_string())
                    .arg(after.map(MessageId::as_string).unwrap_or_default()),
            )
            .await?;
        if dropped < 0 {
            Err(StoreError::NoSuchSession)
        } else {
            Ok(dropped as usize)
        }
    }
}

#[async_trait]
impl Probe for RedisStore {
    async fn exists_raw(&self, id: &SessionId) -> Result<bool, StoreError> {
        let record = self.names(id).record().to_owned();
        self.bounded(
            |mut c| async move { ::redis::cmd("EXISTS").arg(record).query_async(&mut c).await },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{contract::message, redis_test_support::RedisServer};

    /// A cluster connection that stops answering altogether is replaced by a new one from
    /// the seed nodes. Here the connection in use is to a cluster that froze, and the seeds
    /// name another: requests fail for a few timeouts, then work again, through the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_connection_that_stops_answering_is_replaced() {
        use crate::store::redis_test_support::RedisCluster;
        let (frozen, healthy) = (RedisCluster::steady(), RedisCluster::steady());
        let timeout = Duration::from_millis(300);
        let Conn::Cluster(stuck) = Conn::open(&frozen.url(), timeout).await.unwrap() else {
            panic!("a cluster URL makes a cluster connection");
        };
        let Conn::Cluster(seeds) = Conn::open(&healthy.url(), timeout).await.unwrap() else {
            panic!("a cluster URL makes a cluster connection");
        };
        let healing = Arc::new(Healing {
            client: seeds.client.clone(),
            current: std::sync::RwLock::new(stuck.conn()),
            timeout,
            last_ok_ms: AtomicI64::new(now_ms()),
            rebuilding: AtomicBool::new(false),
        });
        let mut conn = Conn::Cluster(healing);
        let ping = ::redis::cmd("PING");
        assert!(ping.query_async::<String>(&mut conn).await.is_ok());
        frozen.pause_all();
        let started = std::time::Instant::now();
        let mut failed = 0;
        loop {
            match ping.query_async::<String>(&mut conn).await {
                Ok(_) => break,
                Err(_) => failed += 1,
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "never replaced ({failed} failures)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(failed >= 1, "the frozen cluster did not answer");
        frozen.resume_all();
    }
    use app::model::{MessageStatus, Role};
    use confide_core::Proof;
    use std::time::Instant;

    fn prefix() -> String {
        format!("test-{}", uuid::Uuid::new_v4().simple())
    }

    /// A connection of its own, to look at Redis behind the store's back.
    async fn raw(server: &RedisServer) -> ::redis::aio::MultiplexedConnection {
        Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// A hash field as Redis holds it, read past the store.
    async fn hget(server: &RedisServer, key: &str, field: &str) -> Option<String> {
        ::redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query_async(&mut raw(server).await)
            .await
            .unwrap()
    }

    async fn keys_matching(
        conn: &mut ::redis::aio::MultiplexedConnection,
        pattern: &str,
    ) -> Vec<String> {
        let mut keys: Vec<String> = ::redis::cmd("KEYS")
            .arg(pattern)
            .query_async(conn)
            .await
            .unwrap();
        keys.sort();
        keys
    }

    /// A session with a value, a thread and a message: all four of its keys exist.
    async fn populated(store: &RedisStore) -> (SessionId, ProofHash) {
        let id = SessionId::random();
        let proof = Proof::generate().unwrap().hash();
        assert_eq!(store.claim(&id, &proof, None).await.unwrap(), Claim::Won);
        fill(store, &id).await;
        (id, proof)
    }

    /// Writes a value, a thread and a message into `id` through every path that gives a key
    /// its session's TTL; returns the thread.
    async fn fill(store: &RedisStore, id: &SessionId) -> Thread {
        store.set(id, "notes", b"x").await.unwrap();
        let thread = Thread {
            id: ThreadId::random(),
            title: "t".into(),
            created_ms: 1,
            updated_ms: 1,
        };
        store.create_thread(id, &thread).await.unwrap();
        let message = Message {
            id: MessageId::random(),
            thread_id: thread.id,
            role: Role::User,
            content: "hello".into(),
            created_ms: 2,
            status: MessageStatus::Done,
            feedback: None,
            error: None,
            steps: Vec::new(),
            actions: Vec::new(),
            attachments: Vec::new(),
        };
        assert!(store.put_message(id, &message).await.unwrap());
        assert!(store.update_thread(id, &thread).await.unwrap());
        thread
    }

    /// A store on `server` with one claimed session holding one thread (see `fill`).
    async fn session_with_thread(server: &RedisServer) -> (RedisStore, SessionId, Thread) {
        let store = RedisStore::connect(
            &server.url(),
            &prefix(),
            Lifetimes::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let id = SessionId::random();
        let proof = Proof::generate().unwrap().hash();
        assert_eq!(store.claim(&id, &proof, None).await.unwrap(), Claim::Won);
        let thread = fill(&store, &id).await;
        (store, id, thread)
    }

    /// Puts a thread's record back as the first records were: no message count, and the
    /// message ids in the record itself rather than in the messages hash.
    async fn strip_count(server: &RedisServer, store: &RedisStore, id: &SessionId, t: &ThreadId) {
        let mut conn = raw(server).await;
        let keys = store.names(id);
        let raw_rec = hget(server, keys.threads(), &t.as_string()).await.unwrap();
        let field = format!("ids:{}", t.as_string());
        let ids = hget(server, keys.messages(), &field).await;
        let mut rec: serde_json::Value = serde_json::from_str(&raw_rec).unwrap();
        let fields = rec.as_object_mut().unwrap();
        assert!(fields.remove("count").is_some());
        match ids {
            Some(ids) => {
                assert!(
                    !fields.contains_key("messages"),
                    "ids in the record and the hash"
                );
                fields.insert("messages".into(), ids.into());
            }
            None => assert!(fields.contains_key("messages"), "a thread without ids"),
        }
        let _: () = ::redis::cmd("HSET")
            .arg(keys.threads())
            .arg(t.as_string())
            .arg(rec.to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = ::redis::cmd("HDEL")
            .arg(keys.messages())
            .arg(&field)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    /// What a turn decodes and writes back, the thread's record, stays the same size however
    /// long the thread grows (its ids grew inside it once, and each turn re-encoded them), and
    /// an old record's ids move out of it on its next write.
    #[tokio::test]
    async fn a_threads_record_stays_small_as_the_thread_grows() {
        let server = RedisServer::start();
        let (store, id, thread) = session_with_thread(&server).await;
        let keys = store.names(&id);
        let tid = thread.id.as_string();
        let record_len = async || hget(&server, keys.threads(), &tid).await.unwrap().len();
        let small = record_len().await;
        let many: Vec<Message> = (0..100)
            .map(|i| message(&thread, Role::User, &format!("m{i}"), 3))
            .collect();
        for m in &many {
            assert!(store.put_message(&id, m).await.unwrap());
        }
        assert!(
            record_len().await <= small + 2,
            "only the count's digits grow"
        );
        let ids = hget(&server, keys.messages(), &format!("ids:{tid}"))
            .await
            .unwrap();
        assert_eq!(ids.len(), 101 * 37 - 1);
        let tail = store
            .thread_tail(&id, &thread.id, 3)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((tail.count, tail.messages), (101, many[97..].to_vec()));
        // An old record: its ids back inside it, then one more message moves them out.
        strip_count(&server, &store, &id, &thread.id).await;
        assert!(record_len().await > 101 * 37);
        let (_, all) = store.get_thread(&id, &thread.id).await.unwrap().unwrap();
        assert_eq!(all.len(), 101);
        assert!(
            store
                .put_message(&id, &message(&thread, Role::User, "last", 3))
                .await
                .unwrap()
        );
        assert!(record_len().await <= small + 2);
        let (_, all) = store.get_thread(&id, &thread.id).await.unwrap().unwrap();
        assert_eq!(all.len(), 102);
        assert_eq!(all[1..101], many[..]);
        // A deleted thread takes its ids with it.
        assert!(store.delete_thread(&id, &thread.id).await.unwrap());
        let left: i64 = ::redis::cmd("HLEN")
            .arg(keys.messages())
            .query_async(&mut raw(&server).await)
            .await
            .unwrap();
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn threads_stored_without_a_count_get_one_when_used() {
        let server = RedisServer::start();
        let (store, id, thread) = session_with_thread(&server).await;
        let message = |content: &str| message(&thread, Role::User, content, 3);
        let more: Vec<Message> = (0..4).map(|i| message(&format!("m{i}"))).collect();
        assert!(store.put_messages(&id, &more).await.unwrap());

        strip_count(&server, &store, &id, &thread.id).await;
        let tail = store
            .thread_tail(&id, &thread.id, 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tail.count, 5, "worked out from the id list");
        assert_eq!(tail.messages, more[2..]);
        assert!(store.put_message(&id, &message("m4")).await.unwrap());
        assert_eq!(
            store
                .thread_tail(&id, &thread.id, 0)
                .await
                .unwrap()
                .unwrap()
                .count,
            6
        );

        strip_count(&server, &store, &id, &thread.id).await;
        assert_eq!(
            store
                .truncate_after(&id, &thread.id, Some(&more[1].id))
                .await
                .unwrap(),
            3
        );
        assert_eq!(
            store
                .thread_tail(&id, &thread.id, 0)
                .await
                .unwrap()
                .unwrap()
                .count,
            3
        );

        // The limit holds for a record without a count too.
        let fill: Vec<Message> = (3..MAX_MESSAGES).map(|_| message("f")).collect();
        assert!(store.put_messages(&id, &fill).await.unwrap());
        strip_count(&server, &store, &id, &thread.id).await;
        assert_eq!(
            store.put_message(&id, &message("over")).await,
            Err(StoreError::TooManyMessages)
        );
        assert_eq!(
            store
                .thread_tail(&id, &thread.id, 0)
                .await
                .unwrap()
                .unwrap()
                .count,
            MAX_MESSAGES
        );
    }

    /// A node without the store's scripts (a replica just promoted, a `SCRIPT FLUSH`) is
    /// sent the script itself: every call answers, even with the scripts flushed without
    /// pause beside it (loading a script and then asking for it by hash lost that race).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scripts_lost_at_any_moment_never_fail_a_call() {
        let server = RedisServer::start();
        let store = RedisStore::connect(
            &server.url(),
            &prefix(),
            Lifetimes {
                idle: Duration::from_secs(600),
                absolute: Duration::from_secs(600),
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let (id, _) = populated(&store).await;
        let flushing = Arc::new(AtomicBool::new(true));
        let (first_flush, flushed) = tokio::sync::oneshot::channel();
        let flusher = tokio::spawn({
            let (mut redis, flushing) = (raw(&server).await, flushing.clone());
            async move {
                let mut first_flush = Some(first_flush);
                while flushing.load(Ordering::Relaxed) {
                    let _: () = ::redis::cmd("SCRIPT")
                        .arg("FLUSH")
                        .query_async(&mut redis)
                        .await
                        .unwrap();
                    if let Some(first) = first_flush.take() {
                        first.send(()).unwrap();
                    }
                }
            }
        });
        flushed.await.unwrap();
        for i in 0..100 {
            let answer = store.set(&id, "k", i.to_string().as_bytes()).await;
            assert_eq!(answer, Ok(()), "call {i}");
        }
        flushing.store(false, Ordering::Relaxed);
        flusher.await.unwrap();
        let stats: String = ::redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut raw(&server).await)
            .await
            .unwrap();
        let sent_whole: u64 = stats
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_eval:calls="))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0);
        assert!(sent_whole >= 1, "no call found its script gone:\n{stats}");
        assert_eq!(
            store.get(&id, "k").await.unwrap().as_deref(),
            Some(&b"99"[..])
        );
    }

    #[tokio::test]
    async fn expired_sessions_are_gone_from_redis_itself() {
        let server = RedisServer::start();
        let lifetimes = Lifetimes {
            idle: Duration::from_secs(1),
            absolute: Duration::from_secs(60),
        };
        let store =
            RedisStore::connect(&server.url(), &prefix(), lifetimes, Duration::from_secs(5))
                .await
                .unwrap();
        let mut redis = raw(&server).await;
        let (id, _) = populated(&store).await;
        let session_pattern = format!("{}:{{*", store.prefix());
        let mark = vec![store.names(&id).0[4].clone()];
        assert_eq!(keys_matching(&mut redis, &session_pattern).await.len(), 5);
        assert_eq!(store.session_keys(&id).await.unwrap().len(), 4);

        // Nobody touches the session: Redis drops it by itself, no verify or sweep needed.
        // Only the claim mark stays, which holds nothing of the session.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(keys_matching(&mut redis, &session_pattern).await, mark);
        assert!(store.session_keys(&id).await.unwrap().is_empty());
        assert_eq!(
            store.set(&id, "late", b"write").await,
            Err(StoreError::NoSuchSession)
        );
        let left = keys_matching(&mut redis, &session_pattern).await;
        assert_eq!(left, mark, "a write resurrects nothing");
        assert_eq!(
            store
                .claim(&id, &Proof::generate().unwrap().hash(), None)
                .await
                .unwrap(),
            Claim::Ended,
            "nor does a claim"
        );

        // Only the sweep index and the mark are left, and sweeping empties the index.
        assert_eq!(store.sweep().await.unwrap(), 1);
        assert_eq!(
            keys_matching(&mut redis, &format!("{}:*", store.prefix())).await,
            mark
        );
    }

    async fn pttl(redis: &mut ::redis::aio::MultiplexedConnection, key: &str) -> i64 {
        ::redis::cmd("PTTL")
            .arg(key)
            .query_async(redis)
            .await
            .unwrap()
    }

    /// A session as a store from before claim marks left it: the record, and no mark.
    async fn unmarked(
        redis: &mut ::redis::aio::MultiplexedConnection,
        store: &RedisStore,
    ) -> (SessionId, ProofHash) {
        let id = SessionId::random();
        let proof = Proof::generate().unwrap().hash();
        let now = now_ms();
        let record = store.names(&id).record().to_owned();
        ::redis::pipe()
            .cmd("HSET")
            .arg(&record)
            .arg("proof")
            .arg(hex(proof.as_bytes()))
            .arg("created")
            .arg(now)
            .arg("seen")
            .arg(now)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&record)
            .arg(store.absolute_ms())
            .ignore()
            .exec_async(redis)
            .await
            .unwrap();
        (id, proof)
    }

    #[tokio::test]
    async fn claim_marks_expire_by_themselves_and_homes_get_none() {
        let server = RedisServer::start();
        let lifetimes = Lifetimes {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(1),
        };
        let store =
            RedisStore::connect(&server.url(), &prefix(), lifetimes, Duration::from_secs(5))
                .await
                .unwrap();
        let mut redis = raw(&server).await;
        let mark = |id: &SessionId| store.names(id).0[4].clone();

        let (claimed, _) = populated(&store).await;
        let ttl = pttl(&mut redis, &mark(&claimed)).await;
        assert!(
            (1_000..=2_000).contains(&ttl),
            "two absolute lifetimes: {ttl}"
        );
        assert!(store.delete(&claimed).await.unwrap());
        assert!(pttl(&mut redis, &mark(&claimed)).await > 1_000);

        // Sessions from before marks existed get one when they are used or deleted.
        let (used, used_proof) = unmarked(&mut redis, &store).await;
        let (deleted, _) = unmarked(&mut redis, &store).await;
        assert_eq!(pttl(&mut redis, &mark(&used)).await, -2);
        assert!(matches!(
            store.verify(&used, Some(&used_proof)).await.unwrap(),
            Verify::Valid { .. }
        ));
        assert!(pttl(&mut redis, &mark(&used)).await > 1_000);
        assert!(store.delete(&deleted).await.unwrap());
        let ttl = pttl(&mut redis, &mark(&deleted)).await;
        assert!((500..=1_000).contains(&ttl), "one absolute lifetime: {ttl}");
        for id in [&claimed, &deleted] {
            let p = Proof::generate().unwrap().hash();
            assert_eq!(store.claim(id, &p, None).await.unwrap(), Claim::Ended);
        }

        let home = SessionId::home("test", "alice");
        assert!(store.create_home(&home).await.unwrap());
        assert_eq!(pttl(&mut redis, &mark(&home)).await, -2);
        assert!(store.delete(&home).await.unwrap());
        assert_eq!(
            pttl(&mut redis, &mark(&home)).await,
            -2,
            "a home is not marked"
        );

        tokio::time::sleep(Duration::from_millis(2_100)).await;
        assert_eq!(
            keys_matching(&mut redis, &format!("{}:{{*", store.prefix())).await,
            Vec::<String>::new(),
            "every mark went by itself"
        );
    }

    #[tokio::test]
    async fn every_key_of_a_session_carries_its_deadline() {
        let server = RedisServer::start();
        let lifetimes = Lifetimes {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(5),
        };
        let store =
            RedisStore::connect(&server.url(), &prefix(), lifetimes, Duration::from_secs(5))
                .await
                .unwrap();
        let mut redis = raw(&server).await;
        let (id, proof) = populated(&store).await;
        assert!(matches!(
            store.verify(&id, Some(&proof)).await.unwrap(),
            Verify::Valid { .. }
        ));

        let keys = store.session_keys(&id).await.unwrap();
        let sid = id.as_string();
        let expected: Vec<String> = ["s", "kv", "t", "m"]
            .iter()
            .map(|k| format!("{}:{{{sid}}}:{k}", store.prefix()))
            .collect();
        assert_eq!(
            keys, expected,
            "all keys share the {{sid}} hash tag, so one cluster slot"
        );
        let mut ttls = Vec::new();
        for k in &keys {
            let ttl: i64 = ::redis::cmd("PTTL")
                .arg(k)
                .query_async(&mut redis)
                .await
                .unwrap();
            ttls.push(ttl);
        }
        for (k, ttl) in keys.iter().zip(&ttls) {
            // The absolute lifetime (5 s) caps the idle one (60 s).
            assert!(*ttl > 0 && *ttl <= 5_000, "{k} has PTTL {ttl}");
            assert!(
                (ttl - ttls[0]).abs() < 500,
                "{k} expires with its session ({ttl} vs {})",
                ttls[0]
            );
        }
    }

    #[tokio::test]
    async fn homes_carry_no_deadline_anywhere() {
        let server = RedisServer::start();
        let lifetimes = Lifetimes {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(600),
        };
        let store =
            RedisStore::connect(&server.url(), &prefix(), lifetimes, Duration::from_secs(5))
                .await
                .unwrap();
        let mut redis = raw(&server).await;
        let home = SessionId::home("test", "alice");
        assert!(store.create_home(&home).await.unwrap());
        fill(&store, &home).await;
        assert!(matches!(
            store.verify(&home, None).await.unwrap(),
            Verify::Denied { .. }
        ));
        let (session, proof) = (SessionId::random(), Proof::generate().unwrap().hash());
        assert_eq!(
            store.claim(&session, &proof, Some(&home)).await.unwrap(),
            Claim::Won
        );
        assert!(matches!(
            store.verify(&session, Some(&proof)).await.unwrap(),
            Verify::Valid { home: Some(h), .. } if h == home
        ));

        let keys = store.session_keys(&home).await.unwrap();
        assert_eq!(keys.len(), 4);
        for k in &keys {
            let ttl: i64 = ::redis::cmd("PTTL")
                .arg(k)
                .query_async(&mut redis)
                .await
                .unwrap();
            assert_eq!(ttl, -1, "{k} has a TTL");
        }
        let indexed: Vec<String> = ::redis::cmd("ZRANGE")
            .arg(store.deadlines_key())
            .arg(0)
            .arg(-1)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(
            indexed,
            vec![session.as_string()],
            "only the session is indexed"
        );
        let ttl: i64 = ::redis::cmd("PTTL")
            .arg(store.names(&session).record())
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(ttl > 0, "a signed-in session keeps its deadline: {ttl}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outages_fail_fast_and_heal_without_a_new_store() {
        let mut server = RedisServer::start();
        let port = server.port();
        let op_timeout = Duration::from_secs(1);
        let lifetimes = Lifetimes {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(600),
        };
        let store = RedisStore::connect(&server.url(), &prefix(), lifetimes, op_timeout)
            .await
            .unwrap();
        let (id, proof) = populated(&store).await;
        let within_bounds = |started: Instant, what: &str| {
            assert!(
                started.elapsed() < op_timeout + Duration::from_secs(1),
                "{what} took {:?}",
                started.elapsed()
            );
        };

        // A server that stops answering (connection open, no replies): calls time out.
        server.pause();
        for _ in 0..2 {
            let started = Instant::now();
            let r = store.verify(&id, Some(&proof)).await;
            assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
            within_bounds(started, "verify against a frozen server");
        }
        server.resume();
        assert_eq!(
            store.get(&id, "notes").await.unwrap().as_deref(),
            Some(&b"x"[..]),
            "back to normal"
        );

        // A server that is gone: calls fail (refused, or time out while reconnecting).
        server.kill();
        for round in 0..3 {
            let started = Instant::now();
            let r = store.verify(&id, Some(&proof)).await;
            assert!(
                matches!(r, Err(StoreError::Unavailable(_))),
                "round {round}: {r:?}"
            );
            within_bounds(started, "verify");
            let started = Instant::now();
            let r = store.set(&id, "notes", b"y").await;
            assert!(
                matches!(r, Err(StoreError::Unavailable(_))),
                "round {round}: {r:?}"
            );
            within_bounds(started, "set");
            let started = Instant::now();
            let r = store.exists_raw(&id).await;
            assert!(
                matches!(r, Err(StoreError::Unavailable(_))),
                "round {round}: {r:?}"
            );
            within_bounds(started, "exists_raw");
        }

        // Redis comes back (empty: it keeps nothing on disk) on the same port.
        let _server = RedisServer::start_on(port);
        let deadline = Instant::now() + Duration::from_secs(15);
        let fresh = SessionId::random();
        let claim = loop {
            match store.claim(&fresh, &proof, None).await {
                Ok(c) => break c,
                Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("the store did not recover: {e}"),
            }
        };
        assert_eq!(claim, Claim::Won);
        store.set(&fresh, "notes", b"back").await.unwrap();
        assert_eq!(
            store.get(&fresh, "notes").await.unwrap().as_deref(),
            Some(&b"back"[..])
        );
        assert_eq!(
            store.verify(&id, Some(&proof)).await.unwrap(),
            Verify::Unknown,
            "the old Redis's data is gone"
        );
    }

    #[test]
    fn prefixes_and_proofs_are_checked() {
        for good in ["confide", "a.b_c:d-9"] {
            assert!(check_prefix(good).is_ok(), "{good}");
        }
        for bad in ["", "has{brace}", "glob*", "sp ace", &"p".repeat(65)] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
        assert!(
            client("rediss://example:6380/").is_err(),
            "TLS is refused, not silently downgraded"
        );
        let e = client("nonsense://:hunter2@example").err().unwrap();
        assert!(
            !e.to_string().contains("hunter2"),
            "URLs may hold passwords: {e}"
        );
        let p = Proof::generate().unwrap().hash();
        assert!(
            proof_from_hex(hex(p.as_bytes()).as_bytes())
                .unwrap()
                .matches(&p)
        );
        assert!(proof_from_hex(b"zz").is_none());
        assert!(proof_from_hex(&[b'g'; 64]).is_none());
    }
}
