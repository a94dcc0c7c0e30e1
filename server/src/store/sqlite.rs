//! SQLite store: embedded, durable, the default.
//!
//! - WAL journal with `synchronous = FULL`: every commit is fsynced before the call returns,
//!   so anything acknowledged to a client survives a crash or power loss. (`NORMAL` would be
//!   faster and still survive a process crash, but could lose the last commits on power loss.)
//! - Foreign keys with `ON DELETE CASCADE`: deleting a session row removes its values,
//!   threads and messages in the same statement.
//! - Every row carries its session id and every query filters on it; ids of other sessions
//!   simply match nothing.
//! - Expired sessions are refused on read (and deleted then), and swept in the background
//!   through an index on their deadline.
//! - A user's home is a `sessions` row that never expires (its deadline is `NEVER`) and
//!   that `verify` always denies; a signed-in session names its home in the `home` column.
//! - A session's row never goes without leaving its id in `ended_sessions`, in the same
//!   transaction (homes excepted); a claim of such an id is refused for an absolute lifetime
//!   after it ended, and the sweep forgets it then.
//!
//! Threads: SQLite is synchronous, and handing every statement to a worker thread (as an
//! async driver must) costs more in wake-ups than SQLite spends working. So a store call is
//! one job handed to one thread, whatever number of statements it runs:
//!
//! - One writer thread owns the only connection that writes. It takes whatever jobs are
//!   queued (up to `MAX_BATCH`) and runs them in one `BEGIN IMMEDIATE` transaction, each in
//!   its own savepoint so a job that fails is undone alone. Callers hear back only after the
//!   `COMMIT` returned, so one fsync makes a whole batch durable (group commit).
//! - A few reader threads, each with its own connection, serve reads from a shared queue
//!   (WAL lets them read beside the writer). A reader never writes: an expired session it
//!   meets is handed to the writer for deletion.
//! - Queues are bounded: a full queue or a stopped thread answers `Unavailable` at once,
//!   and the caller's own timeout bounds the wait for an answer.

use super::{check_home_id, unguessable_proof};
use app::{
    SessionId,
    model::{Feedback, Message, MessageId, MessageStatus, Role, Thread, ThreadId},
    server::{
        Chats, Claim, Lifetimes, Probe, ProofHash, SessionTimes, Sessions, StoreError, Values,
        Verify,
        store::{MAX_KEYS, MAX_MESSAGES, MAX_THREADS, ThreadTail, check_entry, check_key, now_ms},
    },
};
use async_trait::async_trait;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};
use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    thread::JoinHandle,
    time::Duration,
};
use tokio::sync::oneshot;

pub use self::Durability as SqliteDurability;

/// Schema versions, applied in order inside one transaction each; `PRAGMA user_version`
/// records how far a database has come.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sessions (
    id           BLOB PRIMARY KEY,
    proof        BLOB NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_expiry ON sessions (expires_ms);

CREATE TABLE kv (
    session_id BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    PRIMARY KEY (session_id, key)
) WITHOUT ROWID;

CREATE TABLE threads (
    session_id BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    id         BLOB NOT NULL,
    title      TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (session_id, id)
) WITHOUT ROWID;
CREATE INDEX threads_by_recency ON threads (session_id, updated_ms DESC, created_ms DESC);

CREATE TABLE messages (
    session_id BLOB NOT NULL,
    id         BLOB NOT NULL,
    thread_id  BLOB NOT NULL,
    seq        INTEGER NOT NULL,
    role       TEXT NOT NULL,
    content    TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    status     TEXT NOT NULL,
    feedback   TEXT,
    error      TEXT,
    PRIMARY KEY (session_id, id),
    FOREIGN KEY (session_id, thread_id) REFERENCES threads (session_id, id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX messages_by_thread ON messages (session_id, thread_id, seq);
"#,
    r#"
-- Sign-in. `home` is the home a signed-in session acts for; it is not a foreign key, since
-- deleting a home must leave its sessions for the app to deal with. A home is a row with
-- is_home = 1 and expires_ms = NEVER (i64::MAX): every expiry test and the sweep compare
-- expires_ms with now, so they pass over homes without a special case.
ALTER TABLE sessions ADD COLUMN home BLOB;
ALTER TABLE sessions ADD COLUMN is_home INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- Replies being written: few at any time, found at start-up without reading every message.
CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';
"#,
    r#"
-- Ids of sessions that have ended (deleted or expired), with when their row went, which is
-- never before the session ended. A claim of one is refused until an absolute lifetime has
-- passed since: a stream or a tab of the old session must not attach to a new one under its
-- id. A separate table, so that an ended session holds no `sessions` row (nor any data).
-- Homes leave nothing here: an account removed and added again gets its home back.
CREATE TABLE ended_sessions (
    id       BLOB PRIMARY KEY,
    ended_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX ended_sessions_by_time ON ended_sessions (ended_ms);
"#,
    r#"
-- Each thread's message count, kept by every write that adds or drops messages, so the
-- limit check of an append reads one row instead of counting the thread.
ALTER TABLE threads ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
UPDATE threads SET message_count = (
    SELECT COUNT(*) FROM messages
    WHERE messages.session_id = threads.session_id AND messages.thread_id = threads.id
);
"#,
];

/// What a reply left `streaming` by a process that stopped says once the store reopens.
pub const INTERRUPTED: &str = "Confide restarted while this reply was being written";

/// The `expires_ms` of a home.
const NEVER: i64 = i64::MAX;

/// Most write jobs one transaction (and so one fsync) covers. Bounded so that a long queue
/// still reaches its first callers' answers in reasonable time.
const MAX_BATCH: usize = 256;
/// Jobs that may wait for the writer or the readers; beyond that the store is overloaded
/// and says so rather than letting latency grow without bound.
const QUEUE_LEN: usize = 8_192;
/// Fewer than two readers would queue every read behind a slow one; more than four buys
/// nothing once they outnumber the cores.
const MIN_READERS: usize = 2;
const MAX_READERS: usize = 4;

pub struct SqliteStore {
    writer: Sender<WriteJob>,
    readers: Sender<ReadJob>,
    /// Readers first: each holds a handle on the writer's queue, so the writer stops only
    /// after they have.
    threads: Vec<JoinHandle<()>>,
    lifetimes: Lifetimes,
    /// Sliding expiry is written at most this often per session: a verified request within
    /// it changes nothing on disk (the deadline moves by less than the interval).
    touch_interval_ms: i64,
}

/// How hard SQLite syncs a commit to disk (`sqlite_sync`: `full` or `normal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync on every commit: survives power loss (the default).
    Full,
    /// fsync at checkpoints only: survives a crash of Confide, may lose the last commits on
    /// power loss or an OS crash; several times the write throughput.
    Normal,
}

fn db(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory
            | ErrorCode::ReadOnly,
        ) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Internal(e.to_string()),
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite store has stopped".into())
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn status_str(s: MessageStatus) -> &'static str {
    match s {
        MessageStatus::Streaming => "streaming",
        MessageStatus::Done => "done",
        MessageStatus::Stopped => "stopped",
        MessageStatus::Error => "error",
    }
}

fn bad_row(what: &str) -> StoreError {
    StoreError::Internal(format!("unreadable {what} row"))
}

fn uuid_bytes(v: &[u8]) -> Option<[u8; 16]> {
    v.try_into().ok()
}

const THREAD_COLUMNS: &str = "id, title, created_ms, updated_ms";
const MESSAGE_COLUMNS: &str = "id, thread_id, role, content, created_ms, status, feedback, error";

/// A row as SQLite hands it over; turned into a model type once the statement is done, so
/// that a malformed row is a `StoreError` rather than a driver error.
struct RawThread(Vec<u8>, String, i64, i64);

fn raw_thread(r: &Row<'_>) -> rusqlite::Result<RawThread> {
    Ok(RawThread(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

impl RawThread {
    fn parse(self) -> Result<Thread, StoreError> {
        Ok(Thread {
            id: uuid_bytes(&self.0)
                .map(ThreadId::from_bytes)
                .ok_or_else(|| bad_row("thread"))?,
            title: self.1,
            created_ms: self.2,
            updated_ms: self.3,
        })
    }
}

struct RawMessage {
    id: Vec<u8>,
    thread_id: Vec<u8>,
    role: String,
    content: String,
    created_ms: i64,
    status: String,
    feedback: Option<String>,
    error: Option<String>,
}

fn raw_message(r: &Row<'_>) -> rusqlite::Result<RawMessage> {
    Ok(RawMessage {
        id: r.get(0)?,
        thread_id: r.get(1)?,
        role: r.get(2)?,
        content: r.get(3)?,
        created_ms: r.get(4)?,
        status: r.get(5)?,
        feedback: r.get(6)?,
        error: r.get(7)?,
    })
}

impl RawMessage {
    fn parse(self) -> Result<Message, StoreError> {
        Ok(Message {
            id: uuid_bytes(&self.id)
                .map(MessageId::from_bytes)
                .ok_or_else(|| bad_row("message"))?,
            thread_id: uuid_bytes(&self.thread_id)
                .map(ThreadId::from_bytes)
                .ok_or_else(|| bad_row("message"))?,
            role: match self.role.as_str() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                _ => return Err(bad_row("message")),
            },
            content: self.content,
            created_ms: self.created_ms,
            status: match self.status.as_str() {
                "streaming" => MessageStatus::Streaming,
                "done" => MessageStatus::Done,
                "stopped" => MessageStatus::Stopped,
                "error" => MessageStatus::Error,
                _ => return Err(bad_row("message")),
            },
            feedback: self
                .feedback
                .map(|f| serde_json::from_str::<Feedback>(&f))
                .transpose()
                .map_err(|_| bad_row("message"))?,
            error: self.error,
        })
    }
}

fn home_from(home: Option<Vec<u8>>) -> Result<Option<SessionId>, StoreError> {
    home.map(|h| {
        uuid_bytes(&h)
            .map(SessionId::from_stored_bytes)
            .ok_or_else(|| bad_row("session"))
    })
    .transpose()
}

// ---------------------------------------------------------------------------------------
// The writer.

/// One store call's writes, queued for the writer thread.
type WriteJob = Box<dyn Job>;

trait Job: Send {
    /// False once the caller stopped waiting (its timeout ran out): running the job then
    /// would only add to a backlog nobody waits for.
    fn wanted(&self) -> bool;
    /// Runs the job inside its savepoint; false means undo it.
    fn run(&mut self, tx: &Transaction<'_>) -> bool;
    /// Answers the caller once the batch's commit has succeeded or failed.
    fn answer(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    /// `None` for work nobody waits for (deleting an expired session a reader met).
    reply: Option<oneshot::Sender<Result<T, StoreError>>>,
}

impl<T, F> Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
{
    fn job(work: F, reply: Option<oneshot::Sender<Result<T, StoreError>>>) -> WriteJob {
        Box::new(Self {
            work: Some(work),
            result: None,
            reply,
        })
    }
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send,
{
    fn wanted(&self) -> bool {
        self.reply.as_ref().is_none_or(|r| !r.is_closed())
    }

    fn run(&mut self, tx: &Transaction<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(tx);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, commit: Result<(), StoreError>) {
        let Some(reply) = self.reply else { return };
        let _ = reply.send(match (commit, self.result) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Internal("the store job failed".into())),
        });
    }
}

fn write_loop(mut conn: Connection, jobs: Receiver<WriteJob>) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        batch.retain(|job| job.wanted());
        if batch.is_empty() {
            continue;
        }
        let outcome = run_batch(&mut conn, &mut batch);
        for job in batch.drain(..) {
            job.answer(outcome.clone());
        }
    }
}

/// Runs every job of the batch in one transaction. An error here is the batch's: nothing
/// of it was committed.
fn run_batch(conn: &mut Connection, batch: &mut [WriteJob]) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let step = |sql: &str| -> Result<(), StoreError> {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(drop)
            .map_err(unavailable)
    };
    for job in batch.iter_mut() {
        step("SAVEPOINT job")?;
        // A panicking job is a failed job, not a dead writer.
        let ok = catch_unwind(AssertUnwindSafe(|| job.run(&tx))).unwrap_or(false);
        if !ok {
            step("ROLLBACK TO job")?;
        }
        step("RELEASE job")?;
    }
    tx.commit().map_err(unavailable)
}

// ---------------------------------------------------------------------------------------
// The readers.

type ReadJob = Box<dyn FnOnce(&mut Connection, &Sender<WriteJob>) + Send>;

fn read_loop(mut conn: Connection, jobs: Receiver<ReadJob>, writer: Sender<WriteJob>) {
    while let Ok(job) = jobs.recv() {
        if catch_unwind(AssertUnwindSafe(|| job(&mut conn, &writer))).is_err()
            && !conn.is_autocommit()
        {
            // A job that panicked may have left its read transaction open; the next job
            // must start afresh.
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// What a read job sees: one read transaction, and a way to hand work to the writer.
struct Reader<'a> {
    conn: &'a Connection,
    writer: &'a Sender<WriteJob>,
}

impl Reader<'_> {
    /// Fails with `NoSuchSession` unless the session is live. An expired one is handed to
    /// the writer for deletion and reported gone without waiting for it.
    fn live(&self, id: &SessionId) -> Result<(), StoreError> {
        let now = now_ms();
        let expires: Option<i64> = self
            .conn
            .prepare_cached("SELECT expires_ms FROM sessions WHERE id = ?")
            .and_then(|mut s| s.query_row([&id.as_bytes()[..]], |r| r.get(0)).optional())
            .map_err(db)?;
        match expires {
            Some(e) if e > now => Ok(()),
            Some(_) => {
                let id = *id;
                let job = Pending::job(move |tx| delete_expired(tx, &id, now).map(drop), None);
                // Best effort: the sweep removes it anyway if the writer is too busy.
                let _ = self.writer.try_send(job);
                Err(StoreError::NoSuchSession)
            }
            None => Err(StoreError::NoSuchSession),
        }
    }
}

fn run_read<T>(
    conn: &Connection,
    writer: &Sender<WriteJob>,
    work: impl FnOnce(&Reader<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // One read transaction, so a job's several statements see one state of the database.
    conn.prepare_cached("BEGIN")
        .and_then(|mut s| s.execute([]))
        .map_err(db)?;
    let result = work(&Reader { conn, writer });
    // Nothing was written, so ending the transaction either way is the same.
    let end = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]));
    if end.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

// ---------------------------------------------------------------------------------------
// Statements that run on the writer.

/// Records, as ended at `?1`, the sessions a `WHERE` clause over `sessions` selects, just
/// before that clause deletes them. A home never expires, so only `delete` needs to say
/// `is_home = 0`.
const MARK_ENDED: &str = "INSERT INTO ended_sessions (id, ended_ms) SELECT id, ?1 FROM sessions";
const MARK_ENDED_CONFLICT: &str =
    "ON CONFLICT (id) DO UPDATE SET ended_ms = MAX(ended_ms, excluded.ended_ms)";

/// Deletes the session if it has expired by `now`, leaving its id marked as ended; returns
/// whether it did.
fn delete_expired(tx: &Connection, id: &SessionId, now: i64) -> Result<bool, StoreError> {
    let sid = &id.as_bytes()[..];
    execute(
        tx,
        &format!("{MARK_ENDED} WHERE id = ?2 AND expires_ms <= ?1 {MARK_ENDED_CONFLICT}"),
        params![now, sid],
    )?;
    let n = execute(
        tx,
        "DELETE FROM sessions WHERE id = ?2 AND expires_ms <= ?1",
        params![now, sid],
    )?;
    Ok(n > 0)
}

/// Fails with `NoSuchSession` unless the session is live. An expired session is not
/// deleted here: the failing job's savepoint would undo the deletion anyway; `verify`,
/// `claim` and the sweep remove it.
fn live_for_write(tx: &Connection, id: &SessionId) -> Result<(), StoreError> {
    let expires: Option<i64> = tx
        .prepare_cached("SELECT expires_ms FROM sessions WHERE id = ?")
        .and_then(|mut s| s.query_row([&id.as_bytes()[..]], |r| r.get(0)).optional())
        .map_err(db)?;
    match expires {
        Some(e) if e > now_ms() => Ok(()),
        _ => Err(StoreError::NoSuchSession),
    }
}

fn execute(tx: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
    tx.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(db)
}

/// A message ready for the writer: owned, its feedback already serialised.
struct Stored {
    m: Message,
    feedback: Option<String>,
}

impl Stored {
    fn of(m: &Message) -> Result<Self, StoreError> {
        let feedback = m
            .feedback
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(Self {
            m: m.clone(),
            feedback,
        })
    }
}

/// Appends the message to its thread or replaces it there; false if the session has no such
/// thread, or the id belongs to another of its threads.
fn put_one(tx: &Connection, id: &SessionId, stored: &Stored) -> Result<bool, StoreError> {
    let (m, feedback) = (&stored.m, &stored.feedback);
    let sid = &id.as_bytes()[..];
    let tid = &m.thread_id.as_bytes()[..];
    let mid = &m.id.as_bytes()[..];
    let count: Option<i64> = tx
        .prepare_cached("SELECT message_count FROM threads WHERE session_id = ? AND id = ?")
        .and_then(|mut s| s.query_row([sid, tid], |r| r.get(0)).optional())
        .map_err(db)?;
    let Some(count) = count else {
        return Ok(false);
    };
    let updated = execute(
        tx,
        "UPDATE messages SET role = ?, content = ?, created_ms = ?, status = ?, \
         feedback = ?, error = ? WHERE session_id = ? AND id = ? AND thread_id = ?",
        params![
            role_str(m.role),
            m.content,
            m.created_ms,
            status_str(m.status),
            feedback,
            m.error,
            sid,
            mid,
            tid
        ],
    )?;
    if updated > 0 {
        return Ok(true);
    }
    if count as usize >= MAX_MESSAGES {
        return Err(StoreError::TooManyMessages);
    }
    // One step down the (session, thread, seq) index, whatever the thread's length.
    let max_seq: i64 = tx
        .prepare_cached(
            "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE session_id = ? AND thread_id = ?",
        )
        .and_then(|mut s| s.query_row([sid, tid], |r| r.get(0)))
        .map_err(db)?;
    let inserted = execute(
        tx,
        "INSERT INTO messages (session_id, id, thread_id, seq, role, content, \
         created_ms, status, feedback, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (session_id, id) DO NOTHING",
        params![
            sid,
            mid,
            tid,
            max_seq + 1,
            role_str(m.role),
            m.content,
            m.created_ms,
            status_str(m.status),
            feedback,
            m.error
        ],
    )?;
    if inserted == 0 {
        // The id exists in another thread of this session: not this thread's message.
        return Ok(false);
    }
    execute(
        tx,
        "UPDATE threads SET updated_ms = MAX(updated_ms, ?), message_count = message_count + 1 \
         WHERE session_id = ? AND id = ?",
        params![m.created_ms, sid, tid],
    )?;
    Ok(true)
}

fn configure(
    conn: &Connection,
    busy_timeout: Duration,
    durability: Durability,
) -> Result<(), StoreError> {
    conn.busy_timeout(busy_timeout).map_err(db)?;
    conn.set_prepared_statement_cache_capacity(64);
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = {sync};"
    ))
    .map_err(db)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        tx.execute_batch(sql).map_err(db)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            .map_err(db)?;
        tx.commit().map_err(db)?;
    }
    Ok(())
}

/// A SQLite file is served by one process, so a reply still `streaming` when the store opens
/// was cut off by the last one stopping (a crash, a SIGKILL); no one will finish it. Left as
/// it is, it would keep its thread busy until someone pressed Stop.
fn end_interrupted_replies(conn: &Connection) -> Result<(), StoreError> {
    let ended = conn
        .execute(
            "UPDATE messages SET status = 'error', error = ?1 WHERE status = 'streaming'",
            [INTERRUPTED],
        )
        .map_err(db)?;
    if ended > 0 {
        tracing::info!(
            replies = ended,
            "replies cut off by the last stop marked as failed"
        );
    }
    Ok(())
}

/// Opens the writer (bringing the schema up to date) and then the readers.
fn open_connections(
    path: &Path,
    busy_timeout: Duration,
    durability: Durability,
    readers: usize,
) -> Result<(Connection, Vec<Connection>), StoreError> {
    let open = |path: &PathBuf| {
        Connection::open(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))
    };
    let path = path.to_path_buf();
    let mut writer = open(&path)?;
    configure(&writer, busy_timeout, durability)?;
    let mode: String = writer
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(db)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "SQLite refused WAL mode for {} (got {mode})",
            path.display()
        )));
    }
    migrate(&mut writer)?;
    end_interrupted_replies(&writer)?;
    let readers = (0..readers)
        .map(|_| {
            let conn = open(&path)?;
            configure(&conn, busy_timeout, durability)?;
            // A reader that wrote would take the write lock beside the writer thread.
            conn.execute_batch("PRAGMA query_only = ON").map_err(db)?;
            Ok(conn)
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((writer, readers))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(
        path: &Path,
        lifetimes: Lifetimes,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        Self::open_with(path, lifetimes, busy_timeout, Durability::Full).await
    }

    pub async fn open_with(
        path: &Path,
        lifetimes: Lifetimes,
        busy_timeout: Duration,
        durability: Durability,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let n_readers = std::thread::available_parallelism()
            .map_or(MIN_READERS, |n| n.get())
            .clamp(MIN_READERS, MAX_READERS);
        let owned = path.to_path_buf();
        let (write_conn, read_conns) = tokio::task::spawn_blocking(move || {
            open_connections(&owned, busy_timeout, durability, n_readers)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("opening SQLite failed: {e}")))??;

        let (writer, write_jobs) = crossbeam_channel::bounded::<WriteJob>(QUEUE_LEN);
        let (readers, read_jobs) = crossbeam_channel::bounded::<ReadJob>(QUEUE_LEN);
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(|e| StoreError::Unavailable(format!("cannot start a thread: {e}")))
        };
        let mut threads = Vec::with_capacity(n_readers + 1);
        for (i, conn) in read_conns.into_iter().enumerate() {
            let (jobs, writer) = (read_jobs.clone(), writer.clone());
            threads.push(spawn(
                format!("sqlite-read-{i}"),
                Box::new(move || read_loop(conn, jobs, writer)),
            )?);
        }
        threads.push(spawn(
            "sqlite-write".into(),
            Box::new(move || write_loop(write_conn, write_jobs)),
        )?);
        let touch_interval_ms = (lifetimes.idle.as_millis() as i64 / 20).clamp(1, 30_000);
        Ok(Self {
            writer,
            readers,
            threads,
            lifetimes,
            touch_interval_ms,
        })
    }

    fn deadline(&self, created_ms: i64, last_seen_ms: i64) -> i64 {
        self.lifetimes.expires_at_ms(created_ms, last_seen_ms)
    }

    /// How long an ended session's id stays refused.
    fn absolute_ms(&self) -> i64 {
        i64::try_from(self.lifetimes.absolute.as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs `work` on the writer, in a transaction shared with whatever else was queued;
    /// answers once that transaction is durable.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        submit(&self.writer, Pending::job(work, Some(reply)))?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `work` on a reader, in one read transaction.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Reader<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn, writer| {
            if reply.is_closed() {
                return;
            }
            let _ = reply.send(run_read(conn, writer, work));
        });
        submit(&self.readers, job)?;
        answer.await.map_err(|_| stopped())?
    }

    async fn claim_with(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: Option<&SessionId>,
    ) -> Result<Claim, StoreError> {
        let (id, proof, home) = (*id, *proof, home.copied());
        let lifetimes = self.lifetimes;
        let absolute_ms = self.absolute_ms();
        self.write(move |tx| {
            let now = now_ms();
            if let Some(home) = home {
                // Inside the write transaction, so the home cannot go between check and insert.
                let found: Option<i64> = tx
                    .prepare_cached("SELECT 1 FROM sessions WHERE id = ? AND is_home = 1")
                    .and_then(|mut s| s.query_row([&home.as_bytes()[..]], |r| r.get(0)).optional())
                    .map_err(db)?;
                if found.is_none() {
                    return Err(StoreError::NoSuchSession);
                }
            }
            // An expired record in the way ends here, with its data, and so bars the id like
            // any other ended session.
            if delete_expired(tx, &id, now)? {
                return Ok(Claim::Ended);
            }
            // In the writer's transaction, like `delete` and the expiries: no removal of this
            // id can fall between this check and the insert.
            let ended: Option<i64> = tx
                .prepare_cached("SELECT ended_ms FROM ended_sessions WHERE id = ?")
                .and_then(|mut s| s.query_row([&id.as_bytes()[..]], |r| r.get(0)).optional())
                .map_err(db)?;
            if let Some(ended) = ended {
                if now < ended.saturating_add(absolute_ms) {
                    return Ok(Claim::Ended);
                }
                execute(
                    tx,
                    "DELETE FROM ended_sessions WHERE id = ?",
                    [&id.as_bytes()[..]],
                )?;
            }
            let inserted = execute(
                tx,
                "INSERT INTO sessions (id, proof, created_ms, last_seen_ms, expires_ms, home) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                params![
                    &id.as_bytes()[..],
                    &proof.as_bytes()[..],
                    now,
                    now,
                    lifetimes.expires_at_ms(now, now),
                    home.as_ref().map(|h| &h.as_bytes()[..]),
                ],
            )?;
            Ok(if inserted == 1 {
                Claim::Won
            } else {
                Claim::Taken
            })
        })
        .await
    }
}

fn submit<J>(queue: &Sender<J>, job: J) -> Result<(), StoreError> {
    queue.try_send(job).map_err(|e| match e {
        TrySendError::Full(_) => StoreError::Unavailable("the SQLite store is overloaded".into()),
        TrySendError::Disconnected(_) => stopped(),
    })
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queues ends each thread once it has run what it already took; joining
        // means the database file is closed when the store is gone.
        let (closed_w, _) = crossbeam_channel::bounded(0);
        let (closed_r, _) = crossbeam_channel::bounded(0);
        drop(std::mem::replace(&mut self.writer, closed_w));
        drop(std::mem::replace(&mut self.readers, closed_r));
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

struct SessionRow {
    proof: Vec<u8>,
    created_ms: i64,
    last_seen_ms: i64,
    expires_ms: i64,
    home: Option<Vec<u8>>,
    is_home: bool,
}

#[async_trait]
impl Sessions for SqliteStore {
    async fn claim(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: Option<&SessionId>,
    ) -> Result<Claim, StoreError> {
        self.claim_with(id, proof, home).await
    }

    async fn create_home(&self, home: &SessionId) -> Result<bool, StoreError> {
        check_home_id(home)?;
        let proof = unguessable_proof()?;
        let home = *home;
        self.write(move |tx| {
            let now = now_ms();
            delete_expired(tx, &home, now)?;
            let inserted = execute(
                tx,
                "INSERT INTO sessions (id, proof, created_ms, last_seen_ms, expires_ms, is_home) \
                 VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (id) DO NOTHING",
                params![&home.as_bytes()[..], &proof.as_bytes()[..], now, now, NEVER],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn peek(&self, id: &SessionId) -> Result<Option<SessionTimes>, StoreError> {
        let id = *id;
        let row = self
            .read(move |r| {
                r.conn
                    .prepare_cached(
                        "SELECT created_ms, last_seen_ms, home FROM sessions \
                         WHERE id = ? AND expires_ms > ?",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![&id.as_bytes()[..], now_ms()], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })
                        .optional()
                    })
                    .map_err(db)
            })
            .await?;
        row.map(|(created_ms, last_seen_ms, home)| {
            Ok(SessionTimes {
                created_ms,
                last_seen_ms,
                home: home_from(home)?,
            })
        })
        .transpose()
    }

    async fn verify(
        &self,
        id: &SessionId,
        proof: Option<&ProofHash>,
    ) -> Result<Verify, StoreError> {
        let id = *id;
        let row = self
            .read(move |r| {
                r.conn
                    .prepare_cached(
                        "SELECT proof, created_ms, last_seen_ms, expires_ms, home, is_home \
                         FROM sessions WHERE id = ?",
                    )
                    .and_then(|mut s| {
                        s.query_row([&id.as_bytes()[..]], |r| {
                            Ok(SessionRow {
                                proof: r.get(0)?,
                                created_ms: r.get(1)?,
                                last_seen_ms: r.get(2)?,
                                expires_ms: r.get(3)?,
                                home: r.get(4)?,
                                is_home: r.get(5)?,
                            })
                        })
                        .optional()
                    })
                    .map_err(db)
            })
            .await?;
        let Some(row) = row else {
            return Ok(Verify::Unknown);
        };
        let now = now_ms();
        if row.expires_ms <= now {
            // Waited for, unlike the deletions other reads hand over: once `verify` has said
            // `Unknown`, no record of the session may remain.
            self.write(move |tx| delete_expired(tx, &id, now)).await?;
            return Ok(Verify::Unknown);
        }
        let created_ms = row.created_ms;
        let stored: [u8; 32] = row.proof.try_into().map_err(|_| bad_row("session"))?;
        match proof {
            Some(p) if !row.is_home && ProofHash::from_bytes(stored).matches(p) => {
                let home = home_from(row.home)?;
                if now - row.last_seen_ms < self.touch_interval_ms {
                    return Ok(Verify::Valid { created_ms, home });
                }
                let deadline = self.deadline(created_ms, now);
                // Conditional on the deadline, so a session deleted or expired meanwhile
                // is not brought back; and never on a home, which a finite deadline would
                // make mortal.
                let touched = self
                    .write(move |tx| {
                        execute(
                            tx,
                            "UPDATE sessions SET last_seen_ms = ?1, expires_ms = ?2 \
                             WHERE id = ?3 AND expires_ms > ?1 AND is_home = 0",
                            params![now, deadline, &id.as_bytes()[..]],
                        )
                    })
                    .await?;
                Ok(if touched == 1 {
                    Verify::Valid { created_ms, home }
                } else {
                    Verify::Unknown
                })
            }
            _ => Ok(Verify::Denied { created_ms }),
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let id = *id;
        self.write(move |tx| {
            let sid = &id.as_bytes()[..];
            execute(
                tx,
                &format!("{MARK_ENDED} WHERE id = ?2 AND is_home = 0 {MARK_ENDED_CONFLICT}"),
                params![now_ms(), sid],
            )?;
            let n = execute(tx, "DELETE FROM sessions WHERE id = ?", [sid])?;
            Ok(n > 0)
        })
        .await
    }

    async fn sweep(&self) -> Result<usize, StoreError> {
        let absolute_ms = self.absolute_ms();
        self.write(move |tx| {
            let now = now_ms();
            execute(
                tx,
                &format!("{MARK_ENDED} WHERE expires_ms <= ?1 {MARK_ENDED_CONFLICT}"),
                [now],
            )?;
            let expired = execute(tx, "DELETE FROM sessions WHERE expires_ms <= ?", [now])?;
            execute(
                tx,
                "DELETE FROM ended_sessions WHERE ended_ms <= ?",
                [now.saturating_sub(absolute_ms)],
            )?;
            Ok(expired)
        })
        .await
    }
}

#[async_trait]
impl Values for SqliteStore {
    async fn keys(&self, id: &SessionId, prefix: &str) -> Result<Vec<String>, StoreError> {
        let (id, prefix) = (*id, prefix.to_owned());
        self.read(move |r| {
            r.live(&id)?;
            // Filtered here rather than with LIKE, whose `_` wildcard is also a key character.
            let mut s = r
                .conn
                .prepare_cached("SELECT key FROM kv WHERE session_id = ?")
                .map_err(db)?;
            let keys = s
                .query_map([&id.as_bytes()[..]], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            Ok(keys
                .into_iter()
                .filter(|k| k.starts_with(&prefix))
                .collect())
        })
        .await
    }

    async fn get(&self, id: &SessionId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let (id, key) = (*id, key.to_owned());
        self.read(move |r| {
            r.live(&id)?;
            r.conn
                .prepare_cached("SELECT value FROM kv WHERE session_id = ? AND key = ?")
                .and_then(|mut s| {
                    s.query_row(params![&id.as_bytes()[..], key], |r| r.get(0))
                        .optional()
                })
                .map_err(db)
        })
        .await
    }

    async fn set(&self, id: &SessionId, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_entry(key, value)?;
        let (id, key, value) = (*id, key.to_owned(), value.to_vec());
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            let (count, exists): (i64, i64) = tx
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(key = ?2), 0) FROM kv WHERE session_id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row(params![&id.as_bytes()[..], key], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                })
                .map_err(db)?;
            if exists == 0 && count as usize >= MAX_KEYS {
                return Err(StoreError::TooManyKeys);
            }
            execute(
                tx,
                "INSERT INTO kv (session_id, key, value) VALUES (?, ?, ?) \
                 ON CONFLICT (session_id, key) DO UPDATE SET value = excluded.value",
                params![&id.as_bytes()[..], key, value],
            )?;
            Ok(())
        })
        .await
    }

    async fn remove(&self, id: &SessionId, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let (id, key) = (*id, key.to_owned());
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            let n = execute(
                tx,
                "DELETE FROM kv WHERE session_id = ? AND key = ?",
                params![&id.as_bytes()[..], key],
            )?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait]
impl Chats for SqliteStore {
    async fn list_threads(&self, id: &SessionId) -> Result<Vec<Thread>, StoreError> {
        let id = *id;
        self.read(move |r| {
            r.live(&id)?;
            let mut s = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {THREAD_COLUMNS} FROM threads WHERE session_id = ? \
                     ORDER BY updated_ms DESC, created_ms DESC"
                ))
                .map_err(db)?;
            let rows = s
                .query_map([&id.as_bytes()[..]], raw_thread)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            rows.into_iter().map(RawThread::parse).collect()
        })
        .await
    }

    async fn get_thread(
        &self,
        id: &SessionId,
        thread: &ThreadId,
    ) -> Result<Option<(Thread, Vec<Message>)>, StoreError> {
        let (id, thread) = (*id, *thread);
        self.read(move |r| {
            r.live(&id)?;
            let sid = &id.as_bytes()[..];
            let tid = &thread.as_bytes()[..];
            let t = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {THREAD_COLUMNS} FROM threads WHERE session_id = ? AND id = ?"
                ))
                .and_then(|mut s| s.query_row([sid, tid], raw_thread).optional())
                .map_err(db)?;
            let Some(t) = t else { return Ok(None) };
            let mut s = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages \
                     WHERE session_id = ? AND thread_id = ? ORDER BY seq"
                ))
                .map_err(db)?;
            let rows = s
                .query_map([sid, tid], raw_message)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            let messages = rows
                .into_iter()
                .map(RawMessage::parse)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some((t.parse()?, messages)))
        })
        .await
    }

    async fn thread_tail(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        last: usize,
    ) -> Result<Option<ThreadTail>, StoreError> {
        let (id, thread) = (*id, *thread);
        let last = i64::try_from(last).unwrap_or(i64::MAX);
        self.read(move |r| {
            r.live(&id)?;
            let sid = &id.as_bytes()[..];
            let tid = &thread.as_bytes()[..];
            let t = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {THREAD_COLUMNS}, message_count FROM threads \
                     WHERE session_id = ? AND id = ?"
                ))
                .and_then(|mut s| {
                    s.query_row([sid, tid], |row| {
                        Ok((raw_thread(row)?, row.get::<_, i64>(4)?))
                    })
                    .optional()
                })
                .map_err(db)?;
            let Some((t, count)) = t else { return Ok(None) };
            // Newest first down the index, so only `last` rows are read; turned around after.
            let mut s = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages \
                     WHERE session_id = ?1 AND thread_id = ?2 ORDER BY seq DESC LIMIT ?3"
                ))
                .map_err(db)?;
            let rows = s
                .query_map(params![sid, tid, last], raw_message)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            let mut messages = rows
                .into_iter()
                .map(RawMessage::parse)
                .collect::<Result<Vec<_>, _>>()?;
            messages.reverse();
            Ok(Some(ThreadTail {
                thread: t.parse()?,
                messages,
                count: usize::try_from(count).map_err(|_| bad_row("thread"))?,
            }))
        })
        .await
    }

    async fn create_thread(&self, id: &SessionId, thread: &Thread) -> Result<(), StoreError> {
        let (id, thread) = (*id, thread.clone());
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            let count: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM threads WHERE session_id = ?")
                .and_then(|mut s| s.query_row([&id.as_bytes()[..]], |r| r.get(0)))
                .map_err(db)?;
            if count as usize >= MAX_THREADS {
                return Err(StoreError::TooManyThreads);
            }
            execute(
                tx,
                "INSERT INTO threads (session_id, id, title, created_ms, updated_ms) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id, id) DO NOTHING",
                params![
                    &id.as_bytes()[..],
                    &thread.id.as_bytes()[..],
                    thread.title,
                    thread.created_ms,
                    thread.updated_ms
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn update_thread(&self, id: &SessionId, thread: &Thread) -> Result<bool, StoreError> {
        let (id, thread) = (*id, thread.clone());
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            let n = execute(
                tx,
                "UPDATE threads SET title = ?, created_ms = ?, updated_ms = ? \
                 WHERE session_id = ? AND id = ?",
                params![
                    thread.title,
                    thread.created_ms,
                    thread.updated_ms,
                    &id.as_bytes()[..],
                    &thread.id.as_bytes()[..]
                ],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_thread(&self, id: &SessionId, thread: &ThreadId) -> Result<bool, StoreError> {
        let (id, thread) = (*id, *thread);
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            let n = execute(
                tx,
                "DELETE FROM threads WHERE session_id = ? AND id = ?",
                [&id.as_bytes()[..], &thread.as_bytes()[..]],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn get_message(
        &self,
        id: &SessionId,
        message: &MessageId,
    ) -> Result<Option<Message>, StoreError> {
        let (id, message) = (*id, *message);
        self.read(move |r| {
            r.live(&id)?;
            let row = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ? AND id = ?"
                ))
                .and_then(|mut s| {
                    s.query_row([&id.as_bytes()[..], &message.as_bytes()[..]], raw_message)
                        .optional()
                })
                .map_err(db)?;
            row.map(RawMessage::parse).transpose()
        })
        .await
    }

    async fn put_messages(&self, id: &SessionId, ms: &[Message]) -> Result<bool, StoreError> {
        let id = *id;
        let ms = ms.iter().map(Stored::of).collect::<Result<Vec<_>, _>>()?;
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            // A savepoint of its own, so a refusal part-way undoes the messages before it;
            // an error undoes them anyway with the job's savepoint.
            execute(tx, "SAVEPOINT turn", [])?;
            for m in &ms {
                if !put_one(tx, &id, m)? {
                    execute(tx, "ROLLBACK TO turn", [])?;
                    execute(tx, "RELEASE turn", [])?;
                    return Ok(false);
                }
            }
            execute(tx, "RELEASE turn", [])?;
            Ok(true)
        })
        .await
    }

    async fn truncate_after(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        after: Option<&MessageId>,
    ) -> Result<usize, StoreError> {
        let (id, thread, after) = (*id, *thread, after.copied());
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            let sid = &id.as_bytes()[..];
            let tid = &thread.as_bytes()[..];
            let from_seq: i64 = match after {
                None => 0,
                Some(mid) => {
                    let seq: Option<i64> = tx
                        .prepare_cached(
                            "SELECT seq FROM messages \
                             WHERE session_id = ? AND thread_id = ? AND id = ?",
                        )
                        .and_then(|mut s| {
                            s.query_row([sid, tid, &mid.as_bytes()[..]], |r| r.get(0))
                                .optional()
                        })
                        .map_err(db)?;
                    match seq {
                        Some(s) => s,
                        None => return Ok(0),
                    }
                }
            };
            let dropped = execute(
                tx,
                "DELETE FROM messages WHERE session_id = ? AND thread_id = ? AND seq > ?",
                params![sid, tid, from_seq],
            )?;
            if dropped > 0 {
                execute(
                    tx,
                    "UPDATE threads SET message_count = message_count - ? \
                     WHERE session_id = ? AND id = ?",
                    params![dropped as i64, sid, tid],
                )?;
            }
            Ok(dropped)
        })
        .await
    }
}

#[async_trait]
impl Probe for SqliteStore {
    async fn exists_raw(&self, id: &SessionId) -> Result<bool, StoreError> {
        let id = *id;
        self.read(move |r| {
            r.conn
                .prepare_cached("SELECT 1 FROM sessions WHERE id = ?")
                .and_then(|mut s| {
                    s.query_row([&id.as_bytes()[..]], |r| r.get::<_, i64>(0))
                        .optional()
                })
                .map(|row| row.is_some())
                .map_err(db)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::server::Proof;
    use std::sync::Arc;

    async fn fresh() -> (tempfile::TempDir, Arc<SqliteStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            &dir.path().join("test.db"),
            Lifetimes::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        (dir, Arc::new(store))
    }

    async fn claimed(store: &SqliteStore) -> SessionId {
        let id = SessionId::random();
        let proof = Proof::generate().unwrap().hash();
        assert_eq!(store.claim(&id, &proof, None).await.unwrap(), Claim::Won);
        id
    }

    /// Holds the writer busy so that what is queued meanwhile lands in one batch.
    fn stall_writer(store: &Arc<SqliteStore>) -> tokio::task::JoinHandle<()> {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(|_| {
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(())
                })
                .await
                .unwrap();
        })
    }

    #[tokio::test]
    async fn a_first_version_database_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let id = SessionId::random();
        let proof = Proof::generate().unwrap().hash();
        let now = now_ms();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch("PRAGMA user_version = 1").unwrap();
            conn.execute(
                "INSERT INTO sessions (id, proof, created_ms, last_seen_ms, expires_ms) VALUES (?, ?, ?, ?, ?)",
                params![&id.as_bytes()[..], &proof.as_bytes()[..], now, now, now + 3_600_000],
            )
            .unwrap();
        }

        let store = SqliteStore::open(&path, Lifetimes::default(), Duration::from_secs(5))
            .await
            .unwrap();
        let version: i64 = store
            .read(|r| {
                r.conn
                    .query_row("PRAGMA user_version", [], |r| r.get(0))
                    .map_err(db)
            })
            .await
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        assert_eq!(
            store.verify(&id, Some(&proof)).await.unwrap(),
            Verify::Valid {
                created_ms: now,
                home: None
            },
            "an existing session is an anonymous one"
        );
        let home = SessionId::home("test", "alice");
        assert!(store.create_home(&home).await.unwrap());
        let expires: i64 = store
            .read(move |r| {
                r.conn
                    .query_row(
                        "SELECT expires_ms FROM sessions WHERE id = ?",
                        [&home.as_bytes()[..]],
                        |r| r.get(0),
                    )
                    .map_err(db)
            })
            .await
            .unwrap();
        assert_eq!(expires, NEVER);

        // The session from before the upgrade ends like any other: its id is not freed.
        assert!(store.delete(&id).await.unwrap());
        assert_eq!(store.claim(&id, &proof, None).await.unwrap(), Claim::Ended);
    }

    #[tokio::test]
    async fn threads_from_before_the_message_count_are_counted_on_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        let id = SessionId::random();
        let proof = Proof::generate().unwrap().hash();
        let now = now_ms();
        let (long, short, empty) = (ThreadId::random(), ThreadId::random(), ThreadId::random());
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..4] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch("PRAGMA user_version = 4").unwrap();
            conn.execute(
                "INSERT INTO sessions (id, proof, created_ms, last_seen_ms, expires_ms) VALUES (?, ?, ?, ?, ?)",
                params![&id.as_bytes()[..], &proof.as_bytes()[..], now, now, now + 3_600_000],
            )
            .unwrap();
            for (t, n) in [(long, 7), (short, 2), (empty, 0)] {
                conn.execute(
                    "INSERT INTO threads (session_id, id, title, created_ms, updated_ms) VALUES (?, ?, 't', 1, 1)",
                    [&id.as_bytes()[..], &t.as_bytes()[..]],
                )
                .unwrap();
                for seq in 1..=n {
                    conn.execute(
                        "INSERT INTO messages (session_id, id, thread_id, seq, role, content, created_ms, status) \
                         VALUES (?, ?, ?, ?, 'user', ?, 1, 'done')",
                        params![&id.as_bytes()[..], &MessageId::random().as_bytes()[..], &t.as_bytes()[..], seq, format!("m{seq}")],
                    )
                    .unwrap();
                }
            }
        }

        let store = SqliteStore::open(&path, Lifetimes::default(), Duration::from_secs(5))
            .await
            .unwrap();
        for (t, n) in [(long, 7), (short, 2), (empty, 0)] {
            let tail = store.thread_tail(&id, &t, 2).await.unwrap().unwrap();
            assert_eq!(tail.count, n);
            assert_eq!(tail.messages.len(), n.min(2));
        }
        let tail = store.thread_tail(&id, &long, 2).await.unwrap().unwrap();
        assert_eq!(
            tail.messages
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>(),
            ["m6", "m7"]
        );
        // The upgraded count goes on from there.
        let next = Message {
            id: MessageId::random(),
            thread_id: short,
            role: Role::User,
            content: "m3".into(),
            created_ms: 2,
            status: MessageStatus::Done,
            feedback: None,
            error: None,
        };
        assert!(store.put_message(&id, &next).await.unwrap());
        assert_eq!(
            store
                .thread_tail(&id, &short, 0)
                .await
                .unwrap()
                .unwrap()
                .count,
            3
        );
    }

    async fn ended_rows(store: &SqliteStore) -> i64 {
        store
            .read(|r| {
                r.conn
                    .query_row("SELECT COUNT(*) FROM ended_sessions", [], |r| r.get(0))
                    .map_err(db)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn ended_ids_are_kept_apart_and_swept_when_their_time_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let lifetimes = Lifetimes {
            idle: Duration::from_millis(200),
            absolute: Duration::from_millis(400),
        };
        let store = SqliteStore::open(&dir.path().join("t.db"), lifetimes, Duration::from_secs(5))
            .await
            .unwrap();
        let deleted = claimed(&store).await;
        let expiring = claimed(&store).await;
        let home = SessionId::home("test", "alice");
        assert!(store.create_home(&home).await.unwrap());
        assert!(store.delete(&deleted).await.unwrap());
        assert!(store.delete(&home).await.unwrap());
        assert_eq!(ended_rows(&store).await, 1, "a home leaves no mark");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(store.sweep().await.unwrap(), 1);
        assert_eq!(ended_rows(&store).await, 2);
        let sessions: i64 = store
            .read(|r| {
                r.conn
                    .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
                    .map_err(db)
            })
            .await
            .unwrap();
        assert_eq!(sessions, 0, "an ended session keeps no row of its own");

        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(store.sweep().await.unwrap(), 0);
        assert_eq!(ended_rows(&store).await, 0, "nothing is kept for ever");
        let proof = Proof::generate().unwrap().hash();
        assert_eq!(
            store.claim(&expiring, &proof, None).await.unwrap(),
            Claim::Won
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_concurrent_writers_are_all_committed() {
        let (_dir, store) = fresh().await;
        let mut ids = Vec::new();
        for _ in 0..50 {
            ids.push(claimed(&store).await);
        }
        let writes = (0..500).map(|i| {
            let (store, id) = (store.clone(), ids[i % ids.len()]);
            tokio::spawn(async move {
                store
                    .set(&id, &format!("k{i}"), format!("v{i}").as_bytes())
                    .await
            })
        });
        for w in futures::future::join_all(writes).await {
            w.unwrap().unwrap();
        }
        for i in 0..500 {
            assert_eq!(
                store
                    .get(&ids[i % ids.len()], &format!("k{i}"))
                    .await
                    .unwrap()
                    .as_deref(),
                Some(format!("v{i}").as_bytes()),
                "write {i} was acknowledged but is not there"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_job_does_not_undo_its_batch() {
        let (_dir, store) = fresh().await;
        let good = claimed(&store).await;
        let full = claimed(&store).await;
        for k in 0..MAX_KEYS {
            store.set(&full, &format!("k{k}"), b"x").await.unwrap();
        }
        let unknown = SessionId::random();

        let stall = stall_writer(&store);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut calls = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            calls.push(tokio::spawn(async move {
                match i % 4 {
                    0 => store.set(&unknown, "k", b"x").await,
                    1 => store.set(&full, "one-too-many", b"x").await,
                    2 => {
                        store
                            .write(|_| -> Result<(), StoreError> { panic!("a broken job") })
                            .await
                    }
                    _ => store.set(&good, &format!("k{i}"), b"kept").await,
                }
            }));
        }
        stall.await.unwrap();
        for (i, call) in calls.into_iter().enumerate() {
            let result = call.await.unwrap();
            match i % 4 {
                0 => assert_eq!(result, Err(StoreError::NoSuchSession)),
                1 => assert_eq!(result, Err(StoreError::TooManyKeys)),
                2 => assert!(matches!(result, Err(StoreError::Internal(_))), "{result:?}"),
                _ => assert_eq!(result, Ok(())),
            }
        }
        assert!(
            !store.exists_raw(&unknown).await.unwrap(),
            "no session was invented"
        );
        assert_eq!(store.keys(&full, "").await.unwrap().len(), MAX_KEYS);
        let kept = store.keys(&good, "").await.unwrap();
        assert_eq!(
            kept.len(),
            10,
            "every good write of the batch survived: {kept:?}"
        );
    }

    #[tokio::test]
    async fn an_expired_session_read_is_gone_and_then_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let lifetimes = Lifetimes {
            idle: Duration::from_millis(300),
            absolute: Duration::from_secs(60),
        };
        let store = SqliteStore::open(&dir.path().join("t.db"), lifetimes, Duration::from_secs(5))
            .await
            .unwrap();
        let id = claimed(&store).await;
        store.set(&id, "k", b"v").await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(store.get(&id, "k").await, Err(StoreError::NoSuchSession));
        // The reader handed the deletion over without waiting; it follows shortly.
        for _ in 0..100 {
            if !store.exists_raw(&id).await.unwrap() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the expired session was never deleted");
    }

    #[tokio::test]
    async fn a_dropped_store_stops_its_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path, Lifetimes::default(), Duration::from_secs(5))
            .await
            .unwrap();
        claimed(&store).await;
        // Drop joins the threads, so it returning at all is the proof.
        let dropped = tokio::task::spawn_blocking(move || drop(store));
        tokio::time::timeout(Duration::from_secs(10), dropped)
            .await
            .expect("dropping the store hangs")
            .unwrap();
        let again = SqliteStore::open(&path, Lifetimes::default(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(again.sweep().await, Ok(0));
    }

    #[tokio::test]
    async fn a_reply_cut_off_by_a_stop_is_ended_when_the_store_reopens() {
        use app::model::{Message, MessageId, MessageStatus, Role, Thread, ThreadId};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path, Lifetimes::default(), Duration::from_secs(5))
            .await
            .unwrap();
        let id = claimed(&store).await;
        let thread = Thread {
            id: ThreadId::random(),
            title: "t".into(),
            created_ms: 1,
            updated_ms: 1,
        };
        store.create_thread(&id, &thread).await.unwrap();
        let message = |role, content: &str, status| Message {
            id: MessageId::random(),
            thread_id: thread.id,
            role,
            content: content.into(),
            created_ms: 2,
            status,
            feedback: None,
            error: None,
        };
        let asked = message(Role::User, "question", MessageStatus::Done);
        let cut = message(Role::Assistant, "half an ans", MessageStatus::Streaming);
        assert!(
            store
                .put_messages(&id, &[asked.clone(), cut.clone()])
                .await
                .unwrap()
        );
        // The process stops with the reply unfinished.
        tokio::task::spawn_blocking(move || drop(store))
            .await
            .unwrap();

        let again = SqliteStore::open(&path, Lifetimes::default(), Duration::from_secs(5))
            .await
            .unwrap();
        let ended = again.get_message(&id, &cut.id).await.unwrap().unwrap();
        assert_eq!(ended.status, MessageStatus::Error);
        assert_eq!(ended.error.as_deref(), Some(INTERRUPTED));
        assert_eq!(ended.content, "half an ans", "the text so far stays");
        assert_eq!(
            again.get_message(&id, &asked.id).await.unwrap(),
            Some(asked)
        );
    }
}
