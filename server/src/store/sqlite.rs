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

use super::{check_home_id, unguessable_proof};
use app::{
    SessionId,
    model::{Feedback, Message, MessageId, MessageStatus, Role, Thread, ThreadId},
    server::{
        Claim, Lifetimes, ProofHash, SessionStore, SessionTimes, StoreError, Verify,
        store::{MAX_KEYS, MAX_MESSAGES, MAX_THREADS, check_entry, check_key, now_ms},
    },
};
use async_trait::async_trait;
use sqlx::{
    Row, Sqlite, SqliteConnection, Transaction,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
        SqliteSynchronous,
    },
};
use std::{path::Path, str::FromStr, time::Duration};

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
];

/// The `expires_ms` of a home.
const NEVER: i64 = i64::MAX;

pub struct SqliteStore {
    /// Reads run here, several at once (WAL lets readers proceed beside the writer).
    pool: SqlitePool,
    /// Every write goes through this single connection. SQLite admits one writer at a time
    /// anyway; queueing writers here, in the pool's async wait, avoids several connections
    /// racing for the lock and backing off in SQLite's busy handler, which sleeps for
    /// milliseconds at a time and was what bounded throughput.
    writer: SqlitePool,
    lifetimes: Lifetimes,
    /// Sliding expiry is written at most this often per session: a verified request within
    /// it changes nothing on disk (the deadline moves by less than the interval).
    touch_interval_ms: i64,
}

/// How hard SQLite syncs a commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync on every commit: survives power loss (the default).
    Full,
    /// fsync at checkpoints only: survives a crash of Confide, may lose the last commits on
    /// power loss or an OS crash; several times the write throughput.
    Normal,
}

fn db(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Internal(other.to_string()),
    }
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

fn thread_from(row: &SqliteRow) -> Result<Thread, StoreError> {
    let id: Vec<u8> = row.try_get("id").map_err(db)?;
    Ok(Thread {
        id: uuid_bytes(&id)
            .map(ThreadId::from_bytes)
            .ok_or_else(|| bad_row("thread"))?,
        title: row.try_get("title").map_err(db)?,
        created_ms: row.try_get("created_ms").map_err(db)?,
        updated_ms: row.try_get("updated_ms").map_err(db)?,
    })
}

fn message_from(row: &SqliteRow) -> Result<Message, StoreError> {
    let id: Vec<u8> = row.try_get("id").map_err(db)?;
    let thread_id: Vec<u8> = row.try_get("thread_id").map_err(db)?;
    let role: String = row.try_get("role").map_err(db)?;
    let status: String = row.try_get("status").map_err(db)?;
    let feedback: Option<String> = row.try_get("feedback").map_err(db)?;
    Ok(Message {
        id: uuid_bytes(&id)
            .map(MessageId::from_bytes)
            .ok_or_else(|| bad_row("message"))?,
        thread_id: uuid_bytes(&thread_id)
            .map(ThreadId::from_bytes)
            .ok_or_else(|| bad_row("message"))?,
        role: match role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => return Err(bad_row("message")),
        },
        content: row.try_get("content").map_err(db)?,
        created_ms: row.try_get("created_ms").map_err(db)?,
        status: match status.as_str() {
            "streaming" => MessageStatus::Streaming,
            "done" => MessageStatus::Done,
            "stopped" => MessageStatus::Stopped,
            "error" => MessageStatus::Error,
            _ => return Err(bad_row("message")),
        },
        feedback: feedback
            .map(|f| serde_json::from_str::<Feedback>(&f))
            .transpose()
            .map_err(|_| bad_row("message"))?,
        error: row.try_get("error").map_err(db)?,
    })
}

fn uuid_bytes(v: &[u8]) -> Option<[u8; 16]> {
    v.try_into().ok()
}

fn home_from(row: &SqliteRow) -> Result<Option<SessionId>, StoreError> {
    let home: Option<Vec<u8>> = row.try_get("home").map_err(db)?;
    home.map(|h| {
        uuid_bytes(&h)
            .map(SessionId::from_stored_bytes)
            .ok_or_else(|| bad_row("session"))
    })
    .transpose()
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
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(db)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(busy_timeout);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(busy_timeout)
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(busy_timeout)
            .connect_with(options)
            .await
            .map_err(db)?;
        let touch_interval_ms = (lifetimes.idle.as_millis() as i64 / 20).clamp(1, 30_000);
        let store = Self {
            pool,
            writer,
            lifetimes,
            touch_interval_ms,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.writer.acquire().await.map_err(db)?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db)?;
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(db)?;
            sqlx::raw_sql(&format!("PRAGMA user_version = {}", i + 1))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
        }
        Ok(())
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn deadline(&self, created_ms: i64, last_seen_ms: i64) -> i64 {
        self.lifetimes.expires_at_ms(created_ms, last_seen_ms)
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        // IMMEDIATE takes the write lock up front, so a check-then-write cannot interleave
        // with another writer.
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }

    /// Fails with `NoSuchSession` unless the session is live; deletes it if it expired.
    async fn live(conn: &mut SqliteConnection, id: &SessionId) -> Result<(), StoreError> {
        let now = now_ms();
        let expires: Option<i64> =
            sqlx::query_scalar("SELECT expires_ms FROM sessions WHERE id = ?")
                .bind(&id.as_bytes()[..])
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
        match expires {
            Some(e) if e > now => Ok(()),
            Some(_) => {
                sqlx::query("DELETE FROM sessions WHERE id = ?")
                    .bind(&id.as_bytes()[..])
                    .execute(&mut *conn)
                    .await
                    .map_err(db)?;
                Err(StoreError::NoSuchSession)
            }
            None => Err(StoreError::NoSuchSession),
        }
    }

    async fn claim_with(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: Option<&SessionId>,
    ) -> Result<Claim, StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        if let Some(home) = home {
            // Inside the write transaction, so the home cannot go between check and insert.
            let found: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM sessions WHERE id = ? AND is_home = 1")
                    .bind(&home.as_bytes()[..])
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
            if found.is_none() {
                return Err(StoreError::NoSuchSession);
            }
        }
        // An expired record in the way goes first (its data with it).
        sqlx::query("DELETE FROM sessions WHERE id = ? AND expires_ms <= ?")
            .bind(&id.as_bytes()[..])
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let inserted = sqlx::query(
            "INSERT INTO sessions (id, proof, created_ms, last_seen_ms, expires_ms, home) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id.as_bytes()[..])
        .bind(&proof.as_bytes()[..])
        .bind(now)
        .bind(now)
        .bind(self.deadline(now, now))
        .bind(home.map(|h| &h.as_bytes()[..]))
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(if inserted == 1 {
            Claim::Won
        } else {
            Claim::Taken
        })
    }

    async fn read_live(
        &self,
        id: &SessionId,
    ) -> Result<sqlx::pool::PoolConnection<Sqlite>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        Self::live(&mut conn, id).await?;
        Ok(conn)
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn claim(&self, id: &SessionId, proof: &ProofHash) -> Result<Claim, StoreError> {
        self.claim_with(id, proof, None).await
    }

    async fn claim_signed_in(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: &SessionId,
    ) -> Result<Claim, StoreError> {
        self.claim_with(id, proof, Some(home)).await
    }

    async fn create_home(&self, home: &SessionId) -> Result<bool, StoreError> {
        check_home_id(home)?;
        let proof = unguessable_proof()?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE id = ? AND expires_ms <= ?")
            .bind(&home.as_bytes()[..])
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let inserted = sqlx::query(
            "INSERT INTO sessions (id, proof, created_ms, last_seen_ms, expires_ms, is_home) \
             VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&home.as_bytes()[..])
        .bind(&proof.as_bytes()[..])
        .bind(now)
        .bind(now)
        .bind(NEVER)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(inserted == 1)
    }

    async fn peek(&self, id: &SessionId) -> Result<Option<SessionTimes>, StoreError> {
        let row = sqlx::query(
            "SELECT created_ms, last_seen_ms, home FROM sessions WHERE id = ? AND expires_ms > ?",
        )
        .bind(&id.as_bytes()[..])
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(|row| {
            Ok(SessionTimes {
                created_ms: row.try_get("created_ms").map_err(db)?,
                last_seen_ms: row.try_get("last_seen_ms").map_err(db)?,
                home: home_from(&row)?,
            })
        })
        .transpose()
    }

    async fn keys(&self, id: &SessionId, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.read_live(id).await?;
        // Filtered here rather than with LIKE, whose `_` wildcard is also a key character.
        let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM kv WHERE session_id = ?")
            .bind(&id.as_bytes()[..])
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        Ok(keys.into_iter().filter(|k| k.starts_with(prefix)).collect())
    }

    async fn verify(
        &self,
        id: &SessionId,
        proof: Option<&ProofHash>,
    ) -> Result<Verify, StoreError> {
        let now = now_ms();
        let row = sqlx::query(
            "SELECT proof, created_ms, last_seen_ms, expires_ms, home, is_home FROM sessions WHERE id = ?",
        )
        .bind(&id.as_bytes()[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            return Ok(Verify::Unknown);
        };
        let stored: Vec<u8> = row.try_get("proof").map_err(db)?;
        let created_ms: i64 = row.try_get("created_ms").map_err(db)?;
        let last_seen_ms: i64 = row.try_get("last_seen_ms").map_err(db)?;
        let expires_ms: i64 = row.try_get("expires_ms").map_err(db)?;
        let is_home: bool = row.try_get("is_home").map_err(db)?;
        if expires_ms <= now {
            sqlx::query("DELETE FROM sessions WHERE id = ? AND expires_ms <= ?")
                .bind(&id.as_bytes()[..])
                .bind(now)
                .execute(&self.writer)
                .await
                .map_err(db)?;
            return Ok(Verify::Unknown);
        }
        let stored: [u8; 32] = stored.try_into().map_err(|_| bad_row("session"))?;
        match proof {
            Some(p) if !is_home && ProofHash::from_bytes(stored).matches(p) => {
                let home = home_from(&row)?;
                if now - last_seen_ms < self.touch_interval_ms {
                    return Ok(Verify::Valid { created_ms, home });
                }
                // Conditional on the deadline, so a session deleted or expired meanwhile
                // is not brought back; and never on a home, which a finite deadline would
                // make mortal.
                let touched = sqlx::query(
                    "UPDATE sessions SET last_seen_ms = ?1, expires_ms = ?2 \
                     WHERE id = ?3 AND expires_ms > ?1 AND is_home = 0",
                )
                .bind(now)
                .bind(self.deadline(created_ms, now))
                .bind(&id.as_bytes()[..])
                .execute(&self.writer)
                .await
                .map_err(db)?
                .rows_affected();
                Ok(if touched == 1 {
                    Verify::Valid { created_ms, home }
                } else {
                    Verify::Unknown
                })
            }
            _ => Ok(Verify::Denied { created_ms }),
        }
    }

    async fn get(&self, id: &SessionId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let mut conn = self.read_live(id).await?;
        sqlx::query_scalar("SELECT value FROM kv WHERE session_id = ? AND key = ?")
            .bind(&id.as_bytes()[..])
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)
    }

    async fn set(&self, id: &SessionId, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_entry(key, value)?;
        let mut tx = self.begin().await?;
        Self::live(&mut tx, id).await?;
        let (count, exists): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(key = ?2), 0) FROM kv WHERE session_id = ?1",
        )
        .bind(&id.as_bytes()[..])
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        if exists == 0 && count as usize >= MAX_KEYS {
            return Err(StoreError::TooManyKeys);
        }
        sqlx::query(
            "INSERT INTO kv (session_id, key, value) VALUES (?, ?, ?) \
             ON CONFLICT (session_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(&id.as_bytes()[..])
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn remove(&self, id: &SessionId, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let mut conn = self.read_live(id).await?;
        let n = sqlx::query("DELETE FROM kv WHERE session_id = ? AND key = ?")
            .bind(&id.as_bytes()[..])
            .bind(key)
            .execute(&mut *conn)
            .await
            .map_err(db)?
            .rows_affected();
        Ok(n > 0)
    }

    async fn clear(&self, id: &SessionId) -> Result<(), StoreError> {
        let mut conn = self.read_live(id).await?;
        sqlx::query("DELETE FROM kv WHERE session_id = ?")
            .bind(&id.as_bytes()[..])
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(&id.as_bytes()[..])
            .execute(&self.writer)
            .await
            .map_err(db)?
            .rows_affected();
        Ok(n > 0)
    }

    async fn sweep(&self) -> Result<usize, StoreError> {
        let n = sqlx::query("DELETE FROM sessions WHERE expires_ms <= ?")
            .bind(now_ms())
            .execute(&self.writer)
            .await
            .map_err(db)?
            .rows_affected();
        Ok(n as usize)
    }

    async fn list_threads(&self, id: &SessionId) -> Result<Vec<Thread>, StoreError> {
        let mut conn = self.read_live(id).await?;
        let rows = sqlx::query(
            "SELECT id, title, created_ms, updated_ms FROM threads WHERE session_id = ? \
             ORDER BY updated_ms DESC, created_ms DESC",
        )
        .bind(&id.as_bytes()[..])
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        rows.iter().map(thread_from).collect()
    }

    async fn get_thread(
        &self,
        id: &SessionId,
        thread: &ThreadId,
    ) -> Result<Option<(Thread, Vec<Message>)>, StoreError> {
        let mut conn = self.read_live(id).await?;
        let row = sqlx::query(
            "SELECT id, title, created_ms, updated_ms FROM threads WHERE session_id = ? AND id = ?",
        )
        .bind(&id.as_bytes()[..])
        .bind(&thread.as_bytes()[..])
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let t = thread_from(&row)?;
        let rows = sqlx::query(
            "SELECT id, thread_id, role, content, created_ms, status, feedback, error FROM messages \
             WHERE session_id = ? AND thread_id = ? ORDER BY seq",
        )
        .bind(&id.as_bytes()[..])
        .bind(&thread.as_bytes()[..])
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        let messages = rows
            .iter()
            .map(message_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((t, messages)))
    }

    async fn create_thread(&self, id: &SessionId, thread: &Thread) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        Self::live(&mut tx, id).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM threads WHERE session_id = ?")
            .bind(&id.as_bytes()[..])
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if count as usize >= MAX_THREADS {
            return Err(StoreError::TooManyThreads);
        }
        sqlx::query(
            "INSERT INTO threads (session_id, id, title, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (session_id, id) DO NOTHING",
        )
        .bind(&id.as_bytes()[..])
        .bind(&thread.id.as_bytes()[..])
        .bind(&thread.title)
        .bind(thread.created_ms)
        .bind(thread.updated_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn update_thread(&self, id: &SessionId, thread: &Thread) -> Result<bool, StoreError> {
        let mut conn = self.read_live(id).await?;
        let n = sqlx::query(
            "UPDATE threads SET title = ?, created_ms = ?, updated_ms = ? WHERE session_id = ? AND id = ?",
        )
        .bind(&thread.title)
        .bind(thread.created_ms)
        .bind(thread.updated_ms)
        .bind(&id.as_bytes()[..])
        .bind(&thread.id.as_bytes()[..])
        .execute(&mut *conn)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(n > 0)
    }

    async fn delete_thread(&self, id: &SessionId, thread: &ThreadId) -> Result<bool, StoreError> {
        let mut conn = self.read_live(id).await?;
        let n = sqlx::query("DELETE FROM threads WHERE session_id = ? AND id = ?")
            .bind(&id.as_bytes()[..])
            .bind(&thread.as_bytes()[..])
            .execute(&mut *conn)
            .await
            .map_err(db)?
            .rows_affected();
        Ok(n > 0)
    }

    async fn get_message(
        &self,
        id: &SessionId,
        message: &MessageId,
    ) -> Result<Option<Message>, StoreError> {
        let mut conn = self.read_live(id).await?;
        let row = sqlx::query(
            "SELECT id, thread_id, role, content, created_ms, status, feedback, error FROM messages \
             WHERE session_id = ? AND id = ?",
        )
        .bind(&id.as_bytes()[..])
        .bind(&message.as_bytes()[..])
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        row.as_ref().map(message_from).transpose()
    }

    async fn put_message(&self, id: &SessionId, m: &Message) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        Self::live(&mut tx, id).await?;
        let sid = &id.as_bytes()[..];
        let tid = &m.thread_id.as_bytes()[..];
        let thread_exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM threads WHERE session_id = ? AND id = ?")
                .bind(sid)
                .bind(tid)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        if thread_exists.is_none() {
            return Ok(false);
        }
        let feedback = m
            .feedback
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let updated = sqlx::query(
            "UPDATE messages SET role = ?, content = ?, created_ms = ?, status = ?, feedback = ?, error = ? \
             WHERE session_id = ? AND id = ? AND thread_id = ?",
        )
        .bind(role_str(m.role))
        .bind(&m.content)
        .bind(m.created_ms)
        .bind(status_str(m.status))
        .bind(&feedback)
        .bind(&m.error)
        .bind(sid)
        .bind(&m.id.as_bytes()[..])
        .bind(tid)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            let (count, max_seq): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM messages WHERE session_id = ? AND thread_id = ?",
            )
            .bind(sid)
            .bind(tid)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            if count as usize >= MAX_MESSAGES {
                return Err(StoreError::TooManyMessages);
            }
            let inserted = sqlx::query(
                "INSERT INTO messages (session_id, id, thread_id, seq, role, content, created_ms, status, feedback, error) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, id) DO NOTHING",
            )
            .bind(sid)
            .bind(&m.id.as_bytes()[..])
            .bind(tid)
            .bind(max_seq + 1)
            .bind(role_str(m.role))
            .bind(&m.content)
            .bind(m.created_ms)
            .bind(status_str(m.status))
            .bind(&feedback)
            .bind(&m.error)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            if inserted == 0 {
                // The id exists in another thread of this session: not this thread's message.
                return Ok(false);
            }
            sqlx::query("UPDATE threads SET updated_ms = MAX(updated_ms, ?) WHERE session_id = ? AND id = ?")
                .bind(m.created_ms)
                .bind(sid)
                .bind(tid)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn truncate_after(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        after: Option<&MessageId>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        Self::live(&mut tx, id).await?;
        let sid = &id.as_bytes()[..];
        let tid = &thread.as_bytes()[..];
        let from_seq: i64 = match after {
            None => 0,
            Some(mid) => {
                let seq: Option<i64> = sqlx::query_scalar(
                    "SELECT seq FROM messages WHERE session_id = ? AND thread_id = ? AND id = ?",
                )
                .bind(sid)
                .bind(tid)
                .bind(&mid.as_bytes()[..])
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
                match seq {
                    Some(s) => s,
                    None => return Ok(0),
                }
            }
        };
        let n =
            sqlx::query("DELETE FROM messages WHERE session_id = ? AND thread_id = ? AND seq > ?")
                .bind(sid)
                .bind(tid)
                .bind(from_seq)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(n as usize)
    }

    async fn exists_raw(&self, id: &SessionId) -> Result<bool, StoreError> {
        let row: Option<i64> = sqlx::query_scalar("SELECT 1 FROM sessions WHERE id = ?")
            .bind(&id.as_bytes()[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(row.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::server::Proof;

    #[tokio::test]
    async fn a_first_version_database_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let id = SessionId::random();
        let proof = Proof::generate().unwrap().hash();
        let now = now_ms();
        {
            let options = SqliteConnectOptions::from_str("sqlite:")
                .unwrap()
                .filename(&path)
                .create_if_missing(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .unwrap();
            sqlx::raw_sql(MIGRATIONS[0]).execute(&pool).await.unwrap();
            sqlx::raw_sql("PRAGMA user_version = 1")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO sessions (id, proof, created_ms, last_seen_ms, expires_ms) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&id.as_bytes()[..])
            .bind(&proof.as_bytes()[..])
            .bind(now)
            .bind(now)
            .bind(now + 3_600_000)
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }

        let store = SqliteStore::open(&path, Lifetimes::default(), Duration::from_secs(5))
            .await
            .unwrap();
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(store.pool())
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
        let expires: i64 = sqlx::query_scalar("SELECT expires_ms FROM sessions WHERE id = ?")
            .bind(&home.as_bytes()[..])
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(expires, NEVER);
    }
}
