//! PostgreSQL store: one database that any number of Confide instances share.
//!
//! - The same rows as the SQLite store (sessions, values, threads with their message count,
//!   messages, ended ids), migrated at start under an advisory lock, so instances starting
//!   together apply each migration once.
//! - Foreign keys with `ON DELETE CASCADE`: deleting a session row removes its values,
//!   threads and messages in the same statement.
//! - Every row carries its session id and every query filters on it; ids of other sessions
//!   match nothing.
//! - A write locks its session's row first (`FOR NO KEY UPDATE`): the writes of one session
//!   are serialised, so its limits hold across instances, and a session deleted or expired
//!   meanwhile is never written to (or brought back).
//! - A claim locks the id's row if there is one: a delete, an expiry or another claim of the
//!   same id either finished before (and left its mark in `ended_sessions`, which the claim
//!   then reads) or waits for it. Concurrent claims of a new id meet at its primary key.
//! - The sweep takes expired rows `FOR UPDATE SKIP LOCKED` in batches, so instances sweeping
//!   at once share the work instead of waiting on each other.
//! - Reads are one statement each, with the session's liveness in the same statement.

use super::{check_home_id, rows::*, unguessable_proof};
use app::{
    SessionId,
    model::{Message, MessageId, Thread, ThreadId},
};
use async_trait::async_trait;
use confide_core::{
    Chats, Claim, Lifetimes, Probe, ProofHash, SessionTimes, Sessions, StoreError, Values, Verify,
    store::{MAX_KEYS, MAX_MESSAGES, MAX_THREADS, ThreadTail, check_entry, check_key, now_ms},
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use std::{path::Path, time::Duration};
use tokio_postgres::{Row, types::ToSql};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The `expires_ms` of a home: it never expires.
const NEVER: i64 = i64::MAX;

/// Expired sessions one sweep statement removes; it repeats until fewer are left.
const SWEEP_BATCH: i64 = 1_000;

/// Arbitrary, fixed: the key of the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x0C0F_1DE0_0000_0001;

/// Schema versions, applied in order, each in the transaction that records it.
///
/// Titles, message text and errors are `BYTEA` holding UTF-8: PostgreSQL's `TEXT` cannot
/// hold U+0000, which every other store keeps, and what a person typed must round-trip
/// whatever it contains.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sessions (
    id           BYTEA PRIMARY KEY,
    proof        BYTEA NOT NULL,
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL,
    -- The home a signed-in session acts for; not a foreign key, since deleting a home must
    -- leave its sessions for the app to deal with.
    home         BYTEA,
    is_home      BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX sessions_by_expiry ON sessions (expires_ms);

CREATE TABLE kv (
    session_id BYTEA NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      BYTEA NOT NULL,
    PRIMARY KEY (session_id, key)
);

CREATE TABLE threads (
    session_id    BYTEA NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    id            BYTEA NOT NULL,
    title         BYTEA NOT NULL,
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL,
    message_count BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, id)
);
CREATE INDEX threads_by_recency ON threads (session_id, updated_ms DESC, created_ms DESC);

CREATE TABLE messages (
    session_id  BYTEA NOT NULL,
    id          BYTEA NOT NULL,
    thread_id   BYTEA NOT NULL,
    seq         BIGINT NOT NULL,
    role        TEXT NOT NULL,
    content     BYTEA NOT NULL,
    created_ms  BIGINT NOT NULL,
    status      TEXT NOT NULL,
    feedback    TEXT,
    error       BYTEA,
    steps       TEXT,
    actions     TEXT,
    attachments TEXT,
    PRIMARY KEY (session_id, id),
    FOREIGN KEY (session_id, thread_id) REFERENCES threads (session_id, id) ON DELETE CASCADE
);
CREATE INDEX messages_by_thread ON messages (session_id, thread_id, seq);
CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';

-- Ids of sessions that have ended, with when; a claim of one is refused for an absolute
-- lifetime after. Homes leave nothing here.
CREATE TABLE ended_sessions (
    id       BYTEA PRIMARY KEY,
    ended_ms BIGINT NOT NULL
);
CREATE INDEX ended_sessions_by_time ON ended_sessions (ended_ms);
"#,
    r#"
-- Live events too large for a notification (see postgres_hub.rs), kept a minute.
CREATE TABLE confide_event_bodies (
    id         BIGSERIAL PRIMARY KEY,
    body       BYTEA NOT NULL,
    created_ms BIGINT NOT NULL
);
"#,
];

/// Sessions kept in a PostgreSQL database that several instances may share.
pub struct PostgresStore {
    pool: Pool,
    lifetimes: Lifetimes,
    /// Sliding expiry is written at most this often per session.
    touch_interval_ms: i64,
}

pub(super) fn pg(e: tokio_postgres::Error) -> StoreError {
    // Connection trouble, a transaction the server rolled back (serialisation, deadlock),
    // lack of resources or a server shutting down: worth trying again shortly.
    let transient = match e.code() {
        None => true,
        Some(code) => matches!(&code.code()[..2], "08" | "40" | "53" | "57"),
    };
    if transient {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Internal(e.to_string())
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("no PostgreSQL connection: {e}"))
}

/// A column by index, or a `StoreError` (never a panic) when the row is not what we wrote.
fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
    what: &str,
) -> Result<T, StoreError> {
    row.try_get(i).map_err(|_| bad_row(what))
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|_| bad_row(what))
}

/// The message columns starting at `at`, or `None` when they are NULL (an outer join that
/// found no message).
fn message_at(row: &Row, at: usize) -> Result<Option<Message>, StoreError> {
    let id: Option<Vec<u8>> = col(row, at, "message")?;
    let Some(id) = id else { return Ok(None) };
    RawMessage {
        id,
        thread_id: col(row, at + 1, "message")?,
        role: col(row, at + 2, "message")?,
        content: utf8(col(row, at + 3, "message")?, "message")?,
        created_ms: col(row, at + 4, "message")?,
        status: col(row, at + 5, "message")?,
        feedback: col(row, at + 6, "message")?,
        error: col::<Option<Vec<u8>>>(row, at + 7, "message")?
            .map(|e| utf8(e, "message"))
            .transpose()?,
        steps: col(row, at + 8, "message")?,
        actions: col(row, at + 9, "message")?,
        attachments: col(row, at + 10, "message")?,
    }
    .parse()
    .map(Some)
}

/// The thread columns starting at `at`, or `None` when they are NULL.
fn thread_at(row: &Row, at: usize) -> Result<Option<Thread>, StoreError> {
    let id: Option<Vec<u8>> = col(row, at, "thread")?;
    let Some(id) = id else { return Ok(None) };
    RawThread(
        id,
        utf8(col(row, at + 1, "thread")?, "thread")?,
        col(row, at + 2, "thread")?,
        col(row, at + 3, "thread")?,
    )
    .parse()
    .map(Some)
}

/// Whether the statement's first row says the session is live; its rows otherwise.
fn live_rows(rows: Vec<Row>) -> Result<Vec<Row>, StoreError> {
    match rows.first() {
        Some(r) if col::<bool>(r, 0, "session")? => Ok(rows),
        _ => Err(StoreError::NoSuchSession),
    }
}

/// The reads that name every thread or message column, written out once from the shared
/// column lists rather than at every call.
struct Reads {
    list_threads: String,
    get_thread: String,
    thread_tail: String,
    get_message: String,
}

static READS: std::sync::LazyLock<Reads> = std::sync::LazyLock::new(|| {
    let t = prefixed("t", THREAD_COLUMNS);
    let m = prefixed("m", MESSAGE_COLUMNS);
    Reads {
        list_threads: format!(
            "SELECT s.expires_ms > $2, {} FROM sessions s \
                     LEFT JOIN threads t ON t.session_id = s.id WHERE s.id = $1 \
                     ORDER BY t.updated_ms DESC, t.created_ms DESC",
            t
        ),
        get_thread: format!(
            "SELECT s.expires_ms > $3, {}, {} FROM sessions s \
                     LEFT JOIN threads t ON t.session_id = s.id AND t.id = $2 \
                     LEFT JOIN messages m ON m.session_id = s.id AND m.thread_id = t.id \
                     WHERE s.id = $1 ORDER BY m.seq",
            t, m
        ),
        thread_tail: format!(
            "SELECT s.expires_ms > $3, {}, t.message_count, {} FROM sessions s \
                     LEFT JOIN threads t ON t.session_id = s.id AND t.id = $2 \
                     LEFT JOIN LATERAL (
                        SELECT * FROM messages
                        WHERE session_id = s.id AND thread_id = t.id
                        ORDER BY seq DESC LIMIT $4
                     ) m ON TRUE \
                     WHERE s.id = $1 ORDER BY m.seq",
            t, m
        ),
        get_message: format!(
            "SELECT s.expires_ms > $3, {} FROM sessions s \
                     LEFT JOIN messages m ON m.session_id = s.id AND m.id = $2 WHERE s.id = $1",
            m
        ),
    }
});

fn prefixed(prefix: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{prefix}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How connections to PostgreSQL speak TLS: rustls (ring), trusting the system's certificate
/// authorities and those in `ca`. Whether TLS is used is the URL's `sslmode` (`prefer` unless
/// it says otherwise); when it is, the server's certificate and name are always checked.
pub(super) fn tls(ca: Option<&Path>) -> Result<MakeRustlsConnect, StoreError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // One unreadable system certificate must not stop the others.
        let _ = roots.add(cert);
    }
    if let Some(ca) = ca {
        let certs = CertificateDer::pem_file_iter(ca)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot read postgres_ca {}: {e}", ca.display()))
            })?;
        if certs.is_empty() {
            return Err(StoreError::Unavailable(format!(
                "postgres_ca {} holds no certificate",
                ca.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                StoreError::Unavailable(format!("postgres_ca {}: {e}", ca.display()))
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Internal(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// A pool of up to `size` connections to `config`'s server, each waited for at most `timeout`.
pub(super) fn pool(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    size: usize,
    timeout: Duration,
) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            // A connection that broke is found out by its next query and dropped; a probe
            // before every checkout would cost a round trip each time.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(timeout))
        .wait_timeout(Some(timeout))
        .build()
        .map_err(|e| StoreError::Internal(format!("cannot build the pool: {e}")))
}

/// Records, as ended at `$2`, the session `$1` if it has expired by then, removing it with
/// its data in the same statement; the count says whether it did.
const DELETE_EXPIRED: &str = "WITH gone AS (
    DELETE FROM sessions WHERE id = $1 AND expires_ms <= $2 RETURNING id
), marked AS (
    INSERT INTO ended_sessions (id, ended_ms) SELECT id, $2 FROM gone
    ON CONFLICT (id) DO UPDATE SET ended_ms = GREATEST(ended_sessions.ended_ms, EXCLUDED.ended_ms)
)
SELECT COUNT(*) FROM gone";

impl PostgresStore {
    /// `put_messages`, and with `end` `put_turn`.
    async fn put(
        &self,
        id: &SessionId,
        end: Option<Option<&MessageId>>,
        ms: &[Message],
    ) -> Result<bool, StoreError> {
        let stored = ms.iter().map(Stored::of).collect::<Result<Vec<_>, _>>()?;
        let mut client = self.client().await?;
        let tx = Self::write(&mut client, id).await?;
        // The session's row is locked: no other instance's turn can move the end between
        // this check and the appends.
        if let (Some(after), Some(first)) = (end, ms.first()) {
            let sid = &id.as_bytes()[..];
            let tid = &first.thread_id.as_bytes()[..];
            let row = query_opt(
                &tx,
                "SELECT (SELECT id FROM messages WHERE session_id = $1 AND thread_id = $2 \
                 ORDER BY seq DESC LIMIT 1) FROM threads WHERE session_id = $1 AND id = $2",
                &[&sid, &tid],
            )
            .await?;
            let Some(row) = row else {
                return Ok(false);
            };
            let last: Option<Vec<u8>> = col(&row, 0, "message")?;
            if last.as_deref() != after.map(|m| &m.as_bytes()[..]) {
                return Err(StoreError::Moved);
            }
        }
        for m in &stored {
            // Dropping the transaction unfinished rolls back the messages before this one.
            if !put_one(&tx, id, m, true).await? {
                return Ok(false);
            }
        }
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }

    /// Connects to `url` (`postgres://user:password@host:port/database`) with a pool of up to
    /// `pool_size` connections (TLS as `tls` says, with `ca` trusted), and brings the schema
    /// up to date.
    pub async fn connect(
        url: &str,
        lifetimes: Lifetimes,
        pool_size: usize,
        connect_timeout: Duration,
        ca: Option<&Path>,
    ) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("not a PostgreSQL URL: {e}")))?;
        let pool = pool(config, tls(ca)?, pool_size, connect_timeout)?;
        let store = Self {
            pool,
            lifetimes,
            touch_interval_ms: (lifetimes.idle.as_millis() as i64 / 20).clamp(1, 30_000),
        };
        store.migrate().await?;
        store.end_interrupted_replies().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS confide_schema (version INTEGER NOT NULL)")
            .await
            .map_err(pg)?;
        let row = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM confide_schema", &[])
            .await
            .map_err(pg)?;
        let version: i32 = col(&row, 0, "schema version")?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            tx.batch_execute(sql).await.map_err(pg)?;
            let v = i32::try_from(i + 1).unwrap_or(i32::MAX);
            tx.execute("DELETE FROM confide_schema", &[])
                .await
                .map_err(pg)?;
            tx.execute("INSERT INTO confide_schema (version) VALUES ($1)", &[&v])
                .await
                .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    /// A reply left `streaming` for longer than any reply runs was cut off by an instance
    /// that stopped (a crash, a SIGKILL); nobody will finish it. Unlike a SQLite file, the
    /// database is shared: replies other instances are writing now are left alone.
    async fn end_interrupted_replies(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let cutoff = now_ms() - STALE_STREAM_MS;
        let ended = client
            .execute(
                "UPDATE messages SET status = 'error', error = $1 \
                 WHERE status = 'streaming' AND created_ms < $2",
                &[&INTERRUPTED.as_bytes(), &cutoff],
            )
            .await
            .map_err(pg)?;
        if ended > 0 {
            tracing::info!(
                replies = ended,
                "replies cut off by a stopped instance marked as failed"
            );
        }
        Ok(())
    }

    fn absolute_ms(&self) -> i64 {
        i64::try_from(self.lifetimes.absolute.as_millis()).unwrap_or(i64::MAX)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let st = client.prepare_cached(sql).await.map_err(pg)?;
        client.query(&st, params).await.map_err(pg)
    }

    /// A transaction with `id`'s row locked against other writes, or `NoSuchSession` if it
    /// is not live.
    async fn write<'a>(
        client: &'a mut deadpool_postgres::Object,
        id: &SessionId,
    ) -> Result<Transaction<'a>, StoreError> {
        let tx = client.transaction().await.map_err(pg)?;
        let st = tx
            .prepare_cached("SELECT expires_ms > $2 FROM sessions WHERE id = $1 FOR NO KEY UPDATE")
            .await
            .map_err(pg)?;
        let row = tx
            .query_opt(&st, &[&&id.as_bytes()[..], &now_ms()])
            .await
            .map_err(pg)?;
        match row {
            Some(r) if col::<bool>(&r, 0, "session")? => Ok(tx),
            _ => Err(StoreError::NoSuchSession),
        }
    }
}

/// How long a reply may stay `streaming` before a starting instance takes it for one cut
/// off: far longer than any reply is allowed to run.
const STALE_STREAM_MS: i64 = 60 * 60 * 1000;

async fn exec(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let st = tx.prepare_cached(sql).await.map_err(pg)?;
    tx.execute(&st, params).await.map_err(pg)
}

async fn query_opt(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, StoreError> {
    let st = tx.prepare_cached(sql).await.map_err(pg)?;
    tx.query_opt(&st, params).await.map_err(pg)
}

#[async_trait]
impl Sessions for PostgresStore {
    async fn claim(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: Option<&SessionId>,
    ) -> Result<Claim, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let now = now_ms();
        let sid = &id.as_bytes()[..];
        if let Some(home) = home {
            // Locked, so the home cannot go between this check and the insert.
            let found = query_opt(
                &tx,
                "SELECT 1 FROM sessions WHERE id = $1 AND is_home FOR KEY SHARE",
                &[&&home.as_bytes()[..]],
            )
            .await?;
            if found.is_none() {
                return Err(StoreError::NoSuchSession);
            }
        }
        // Whoever holds this row (a delete, the sweep, another claim) finishes first; a row
        // gone by then left its id in `ended_sessions`, which the next statement sees.
        let row = query_opt(
            &tx,
            "SELECT expires_ms FROM sessions WHERE id = $1 FOR UPDATE",
            &[&sid],
        )
        .await?;
        if let Some(row) = row {
            let expires: i64 = col(&row, 0, "session")?;
            if expires > now {
                return Ok(Claim::Taken);
            }
            // Expired: it ends here, with its data, and bars the id like any other end.
            let st = tx.prepare_cached(DELETE_EXPIRED).await.map_err(pg)?;
            tx.query_one(&st, &[&sid, &now]).await.map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            return Ok(Claim::Ended);
        }
        let ended = query_opt(
            &tx,
            "SELECT ended_ms FROM ended_sessions WHERE id = $1 FOR UPDATE",
            &[&sid],
        )
        .await?;
        if let Some(ended) = ended {
            let ended: i64 = col(&ended, 0, "ended session")?;
            if now < ended.saturating_add(self.absolute_ms()) {
                return Ok(Claim::Ended);
            }
            exec(&tx, "DELETE FROM ended_sessions WHERE id = $1", &[&sid]).await?;
        }
        let home_bytes = home.map(|h| h.as_bytes().to_vec());
        let inserted = exec(
            &tx,
            "INSERT INTO sessions (id, proof, created_ms, last_seen_ms, expires_ms, home) \
             VALUES ($1, $2, $3, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            &[
                &sid,
                &&proof.as_bytes()[..],
                &now,
                &self.lifetimes.expires_at_ms(now, now),
                &home_bytes,
            ],
        )
        .await?;
        tx.commit().await.map_err(pg)?;
        Ok(if inserted == 1 {
            Claim::Won
        } else {
            Claim::Taken
        })
    }

    async fn create_home(&self, home: &SessionId) -> Result<bool, StoreError> {
        check_home_id(home)?;
        let proof = unguessable_proof()?;
        let now = now_ms();
        let rows = self
            .query(
                "INSERT INTO sessions (id, proof, created_ms, last_seen_ms, expires_ms, is_home) \
                 VALUES ($1, $2, $3, $3, $4, TRUE) ON CONFLICT (id) DO NOTHING RETURNING 1",
                &[&&home.as_bytes()[..], &&proof.as_bytes()[..], &now, &NEVER],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn peek(&self, id: &SessionId) -> Result<Option<SessionTimes>, StoreError> {
        let rows = self
            .query(
                "SELECT created_ms, last_seen_ms, home FROM sessions \
                 WHERE id = $1 AND expires_ms > $2",
                &[&&id.as_bytes()[..], &now_ms()],
            )
            .await?;
        rows.first()
            .map(|r| {
                Ok(SessionTimes {
                    created_ms: col(r, 0, "session")?,
                    last_seen_ms: col(r, 1, "session")?,
                    home: home_from(col(r, 2, "session")?)?,
                })
            })
            .transpose()
    }

    async fn verify(
        &self,
        id: &SessionId,
        proof: Option<&ProofHash>,
    ) -> Result<Verify, StoreError> {
        let sid = &id.as_bytes()[..];
        let rows = self
            .query(
                "SELECT proof, created_ms, last_seen_ms, expires_ms, home, is_home \
                 FROM sessions WHERE id = $1",
                &[&sid],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(Verify::Unknown);
        };
        let created_ms: i64 = col(row, 1, "session")?;
        let last_seen_ms: i64 = col(row, 2, "session")?;
        let expires_ms: i64 = col(row, 3, "session")?;
        let now = now_ms();
        if expires_ms <= now {
            // Waited for: once `verify` has said `Unknown`, no record of the session remains.
            self.query(DELETE_EXPIRED, &[&sid, &now]).await?;
            return Ok(Verify::Unknown);
        }
        let stored: Vec<u8> = col(row, 0, "session")?;
        let stored: [u8; 32] = stored.try_into().map_err(|_| bad_row("session"))?;
        let is_home: bool = col(row, 5, "session")?;
        match proof {
            Some(p) if !is_home && ProofHash::from_bytes(stored).matches(p) => {
                let home = home_from(col(row, 4, "session")?)?;
                if now - last_seen_ms < self.touch_interval_ms {
                    return Ok(Verify::Valid { created_ms, home });
                }
                let deadline = self.lifetimes.expires_at_ms(created_ms, now);
                // Conditional on the deadline, so a session deleted or expired meanwhile is
                // not brought back; never on a home, which a deadline would make mortal.
                let touched = self
                    .query(
                        "UPDATE sessions SET last_seen_ms = $1, expires_ms = $2 \
                         WHERE id = $3 AND expires_ms > $1 AND NOT is_home RETURNING 1",
                        &[&now, &deadline, &sid],
                    )
                    .await?;
                Ok(if touched.is_empty() {
                    Verify::Unknown
                } else {
                    Verify::Valid { created_ms, home }
                })
            }
            _ => Ok(Verify::Denied { created_ms }),
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let rows = self
            .query(
                "WITH gone AS (
                    DELETE FROM sessions WHERE id = $1 RETURNING id, is_home
                 ), marked AS (
                    INSERT INTO ended_sessions (id, ended_ms)
                    SELECT id, $2 FROM gone WHERE NOT is_home
                    ON CONFLICT (id) DO UPDATE
                    SET ended_ms = GREATEST(ended_sessions.ended_ms, EXCLUDED.ended_ms)
                 )
                 SELECT COUNT(*) FROM gone",
                &[&&id.as_bytes()[..], &now_ms()],
            )
            .await?;
        let n: i64 = rows.first().map_or(Ok(0), |r| col(r, 0, "count"))?;
        Ok(n > 0)
    }

    async fn sweep(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut removed = 0usize;
        loop {
            let rows = self
                .query(
                    "WITH doomed AS (
                        SELECT id FROM sessions WHERE expires_ms <= $1
                        ORDER BY expires_ms LIMIT $2 FOR UPDATE SKIP LOCKED
                     ), gone AS (
                        DELETE FROM sessions s USING doomed WHERE s.id = doomed.id RETURNING s.id
                     ), marked AS (
                        INSERT INTO ended_sessions (id, ended_ms) SELECT id, $1 FROM gone
                        ON CONFLICT (id) DO UPDATE
                        SET ended_ms = GREATEST(ended_sessions.ended_ms, EXCLUDED.ended_ms)
                     )
                     SELECT COUNT(*) FROM gone",
                    &[&now, &SWEEP_BATCH],
                )
                .await?;
            let n: i64 = rows.first().map_or(Ok(0), |r| col(r, 0, "count"))?;
            removed += usize::try_from(n).unwrap_or(0);
            if n < SWEEP_BATCH {
                break;
            }
        }
        self.query(
            "DELETE FROM ended_sessions WHERE ended_ms <= $1",
            &[&now.saturating_sub(self.absolute_ms())],
        )
        .await?;
        Ok(removed)
    }

    async fn list_sessions(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<SessionId>, Option<String>), StoreError> {
        let Some(after) = super::page_after(cursor) else {
            return Ok((Vec::new(), None));
        };
        let after = after.map(|a| a.to_vec()).unwrap_or_default();
        let page = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "SELECT id FROM sessions WHERE id > $1 AND NOT is_home AND expires_ms > $2 \
                 ORDER BY id LIMIT $3",
                &[&after, &now_ms(), &page],
            )
            .await?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let raw: Vec<u8> = col(row, 0, "id")?;
            let bytes = <[u8; 16]>::try_from(raw).map_err(|_| bad_row("id"))?;
            ids.push(SessionId::from_stored_bytes(bytes));
        }
        Ok(super::page_of(ids, limit))
    }
}

#[async_trait]
impl Values for PostgresStore {
    async fn keys(&self, id: &SessionId, prefix: &str) -> Result<Vec<String>, StoreError> {
        let rows = live_rows(
            self.query(
                "SELECT s.expires_ms > $2, k.key FROM sessions s \
                 LEFT JOIN kv k ON k.session_id = s.id WHERE s.id = $1",
                &[&&id.as_bytes()[..], &now_ms()],
            )
            .await?,
        )?;
        let mut keys = Vec::with_capacity(rows.len());
        for r in &rows {
            // Filtered here rather than with LIKE, whose `_` wildcard is also a key character.
            if let Some(k) = col::<Option<String>>(r, 1, "value")?
                && k.starts_with(prefix)
            {
                keys.push(k);
            }
        }
        Ok(keys)
    }

    async fn get(&self, id: &SessionId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let rows = live_rows(
            self.query(
                "SELECT s.expires_ms > $3, k.value FROM sessions s \
                 LEFT JOIN kv k ON k.session_id = s.id AND k.key = $2 WHERE s.id = $1",
                &[&&id.as_bytes()[..], &key, &now_ms()],
            )
            .await?,
        )?;
        rows.first().map_or(Ok(None), |r| col(r, 1, "value"))
    }

    async fn set(&self, id: &SessionId, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_entry(key, value)?;
        let sid = &id.as_bytes()[..];
        let mut client = self.client().await?;
        let tx = Self::write(&mut client, id).await?;
        let counts = query_opt(
            &tx,
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE key = $2) FROM kv WHERE session_id = $1",
            &[&sid, &key],
        )
        .await?
        .ok_or_else(|| bad_row("value"))?;
        let (count, exists): (i64, i64) = (col(&counts, 0, "value")?, col(&counts, 1, "value")?);
        if exists == 0 && usize::try_from(count).unwrap_or(usize::MAX) >= MAX_KEYS {
            return Err(StoreError::TooManyKeys);
        }
        exec(
            &tx,
            "INSERT INTO kv (session_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (session_id, key) DO UPDATE SET value = EXCLUDED.value",
            &[&sid, &key, &value],
        )
        .await?;
        tx.commit().await.map_err(pg)
    }

    async fn add(&self, id: &SessionId, key: &str, delta: i64) -> Result<i64, StoreError> {
        check_key(key)?;
        let sid = &id.as_bytes()[..];
        let mut client = self.client().await?;
        // The session's row is locked for the transaction: adds of one session take turns.
        let tx = Self::write(&mut client, id).await?;
        let row = query_opt(
            &tx,
            "SELECT COUNT(*), (array_agg(value) FILTER (WHERE key = $2))[1] FROM kv \
             WHERE session_id = $1",
            &[&sid, &key],
        )
        .await?
        .ok_or_else(|| bad_row("value"))?;
        let count: i64 = col(&row, 0, "value")?;
        let current: Option<Vec<u8>> = col(&row, 1, "value")?;
        if current.is_none() && usize::try_from(count).unwrap_or(usize::MAX) >= MAX_KEYS {
            return Err(StoreError::TooManyKeys);
        }
        let (sum, stored) = confide_core::store::add_to_counter(current.as_deref(), delta)?;
        exec(
            &tx,
            "INSERT INTO kv (session_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (session_id, key) DO UPDATE SET value = EXCLUDED.value",
            &[&sid, &key, &stored],
        )
        .await?;
        tx.commit().await.map_err(pg)?;
        Ok(sum)
    }

    async fn remove(&self, id: &SessionId, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let mut client = self.client().await?;
        let tx = Self::write(&mut client, id).await?;
        let n = exec(
            &tx,
            "DELETE FROM kv WHERE session_id = $1 AND key = $2",
            &[&&id.as_bytes()[..], &key],
        )
        .await?;
        tx.commit().await.map_err(pg)?;
        Ok(n > 0)
    }
}

#[async_trait]
impl Chats for PostgresStore {
    async fn list_threads(&self, id: &SessionId) -> Result<Vec<Thread>, StoreError> {
        let rows = live_rows(
            self.query(&READS.list_threads, &[&&id.as_bytes()[..], &now_ms()])
                .await?,
        )?;
        rows.iter()
            .filter_map(|r| thread_at(r, 1).transpose())
            .collect()
    }

    async fn get_thread(
        &self,
        id: &SessionId,
        thread: &ThreadId,
    ) -> Result<Option<(Thread, Vec<Message>)>, StoreError> {
        let rows = live_rows(
            self.query(
                &READS.get_thread,
                &[&&id.as_bytes()[..], &&thread.as_bytes()[..], &now_ms()],
            )
            .await?,
        )?;
        let Some(t) = thread_at(&rows[0], 1)? else {
            return Ok(None);
        };
        let messages = rows
            .iter()
            .filter_map(|r| message_at(r, 5).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((t, messages)))
    }

    async fn thread_tail(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        last: usize,
    ) -> Result<Option<ThreadTail>, StoreError> {
        let last = i64::try_from(last).unwrap_or(i64::MAX);
        // The last `last` messages newest first down the index, put back in order.
        let rows = live_rows(
            self.query(
                &READS.thread_tail,
                &[
                    &&id.as_bytes()[..],
                    &&thread.as_bytes()[..],
                    &now_ms(),
                    &last,
                ],
            )
            .await?,
        )?;
        let Some(t) = thread_at(&rows[0], 1)? else {
            return Ok(None);
        };
        let count: i64 = col(&rows[0], 5, "thread")?;
        let messages = rows
            .iter()
            .filter_map(|r| message_at(r, 6).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(ThreadTail {
            thread: t,
            messages,
            count: usize::try_from(count).map_err(|_| bad_row("thread"))?,
        }))
    }

    async fn create_thread(&self, id: &SessionId, thread: &Thread) -> Result<(), StoreError> {
        let sid = &id.as_bytes()[..];
        let mut client = self.client().await?;
        let tx = Self::write(&mut client, id).await?;
        let count = query_opt(
            &tx,
            "SELECT COUNT(*) FROM threads WHERE session_id = $1",
            &[&sid],
        )
        .await?
        .ok_or_else(|| bad_row("thread"))?;
        let count: i64 = col(&count, 0, "thread")?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_THREADS {
            return Err(StoreError::TooManyThreads);
        }
        exec(
            &tx,
            "INSERT INTO threads (session_id, id, title, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_id, id) DO NOTHING",
            &[
                &sid,
                &&thread.id.as_bytes()[..],
                &thread.title.as_bytes(),
                &thread.created_ms,
                &thread.updated_ms,
            ],
        )
        .await?;
        tx.commit().await.map_err(pg)
    }

    async fn update_thread(&self, id: &SessionId, thread: &Thread) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = Self::write(&mut client, id).await?;
        let n = exec(
            &tx,
            "UPDATE threads SET title = $1, created_ms = $2, updated_ms = $3 \
             WHERE session_id = $4 AND id = $5",
            &[
                &thread.title.as_bytes(),
                &thread.created_ms,
                &thread.updated_ms,
                &&id.as_bytes()[..],
                &&thread.id.as_bytes()[..],
            ],
        )
        .await?;
        tx.commit().await.map_err(pg)?;
        Ok(n > 0)
    }

    async fn delete_thread(&self, id: &SessionId, thread: &ThreadId) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = Self::write(&mut client, id).await?;
        let n = exec(
            &tx,
            "DELETE FROM threads WHERE session_id = $1 AND id = $2",
            &[&&id.as_bytes()[..], &&thread.as_bytes()[..]],
        )
        .await?;
        tx.commit().await.map_err(pg)?;
        Ok(n > 0)
    }

    async fn get_message(
        &self,
        id: &SessionId,
        message: &MessageId,
    ) -> Result<Option<Message>, StoreError> {
        let rows = live_rows(
            self.query(
                &READS.get_message,
                &[&&id.as_bytes()[..], &&message.as_bytes()[..], &now_ms()],
            )
            .await?,
        )?;
        message_at(&rows[0], 1)
    }

    async fn replace_message(&self, id: &SessionId, m: &Message) -> Result<bool, StoreError> {
        let stored = Stored::of(m)?;
        let mut client = self.client().await?;
        let tx = Self::write(&mut client, id).await?;
        let replaced = put_one(&tx, id, &stored, false).await?;
        tx.commit().await.map_err(pg)?;
        Ok(replaced)
    }

    async fn put_messages(&self, id: &SessionId, ms: &[Message]) -> Result<bool, StoreError> {
        self.put(id, None, ms).await
    }

    async fn put_turn(
        &self,
        id: &SessionId,
        after: Option<&MessageId>,
        ms: &[Message],
    ) -> Result<bool, StoreError> {
        self.put(id, Some(after), ms).await
    }

    async fn truncate_after(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        after: Option<&MessageId>,
    ) -> Result<usize, StoreError> {
        let sid = &id.as_bytes()[..];
        let tid = &thread.as_bytes()[..];
        let mut client = self.client().await?;
        let tx = Self::write(&mut client, id).await?;
        let from_seq: i64 = match after {
            None => 0,
            Some(mid) => {
                let row = query_opt(
                    &tx,
                    "SELECT seq FROM messages WHERE session_id = $1 AND thread_id = $2 AND id = $3",
                    &[&sid, &tid, &&mid.as_bytes()[..]],
                )
                .await?;
                match row {
                    Some(r) => col(&r, 0, "message")?,
                    None => return Ok(0),
                }
            }
        };
        let dropped = exec(
            &tx,
            "DELETE FROM messages WHERE session_id = $1 AND thread_id = $2 AND seq > $3",
            &[&sid, &tid, &from_seq],
        )
        .await?;
        if dropped > 0 {
            exec(
                &tx,
                "UPDATE threads SET message_count = message_count - $1 \
                 WHERE session_id = $2 AND id = $3",
                &[&i64::try_from(dropped).unwrap_or(i64::MAX), &sid, &tid],
            )
            .await?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(usize::try_from(dropped).unwrap_or(usize::MAX))
    }
}

/// Appends the message to its thread or replaces it there; false if the session has no such
/// thread, or the id belongs to another of its threads. The session's row is locked, so
/// nothing else writes its messages meanwhile. Most puts take one statement: a save of a
/// growing reply is the replacement, a new message the insertion; only what neither does
/// (a refusal, or a stop that landed first) takes a third, to tell why.
async fn put_one(
    tx: &Transaction<'_>,
    id: &SessionId,
    stored: &Stored,
    append: bool,
) -> Result<bool, StoreError> {
    let m = &stored.m;
    let sid = &id.as_bytes()[..];
    let tid = &m.thread_id.as_bytes()[..];
    let mid = &m.id.as_bytes()[..];
    let content = m.content.as_bytes();
    let error = m.error.as_deref().map(str::as_bytes);
    let (role, status) = (role_str(m.role), status_str(m.status));
    // A message no longer streaming is never put back to streaming: a stop that landed
    // first stays.
    let replaced = exec(
        tx,
        "UPDATE messages SET role = $1, content = $2, created_ms = $3, status = $4, \
         feedback = $5, error = $6, steps = $7, actions = $8, attachments = $9 \
         WHERE session_id = $10 AND id = $11 AND thread_id = $12 \
         AND (status = 'streaming' OR $4 <> 'streaming')",
        &[
            &role,
            &content,
            &m.created_ms,
            &status,
            &stored.feedback,
            &error,
            &stored.steps,
            &stored.actions,
            &stored.attachments,
            &sid,
            &mid,
            &tid,
        ],
    )
    .await?;
    if replaced > 0 {
        return Ok(true);
    }
    if !append {
        // Not replaced: absent (no append then), another thread's, or a stop landed first.
        let held = query_opt(
            tx,
            "SELECT 1 FROM messages WHERE session_id = $1 AND id = $2 AND thread_id = $3",
            &[&sid, &mid, &tid],
        )
        .await?;
        return Ok(held.is_some());
    }
    let max = i64::try_from(MAX_MESSAGES).unwrap_or(i64::MAX);
    // The thread's count and recency move only if the message is new and there is room.
    let inserted = exec(
        tx,
        "WITH counted AS (
            UPDATE threads SET updated_ms = GREATEST(updated_ms, $6),
                message_count = message_count + 1
            WHERE session_id = $1 AND id = $3 AND message_count < $13
              AND NOT EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND id = $2)
            RETURNING 1
         )
         INSERT INTO messages (session_id, id, thread_id, seq, role, content, \
            created_ms, status, feedback, error, steps, actions, attachments)
         SELECT $1, $2, $3,
            (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE session_id = $1 AND thread_id = $3),
            $4, $5, $6, $7, $8, $9, $10, $11, $12
         FROM counted",
        &[
            &sid,
            &mid,
            &tid,
            &role,
            &content,
            &m.created_ms,
            &status,
            &stored.feedback,
            &error,
            &stored.steps,
            &stored.actions,
            &stored.attachments,
            &max,
        ],
    )
    .await?;
    if inserted > 0 {
        return Ok(true);
    }
    let why = query_opt(
        tx,
        "SELECT (SELECT thread_id FROM messages WHERE session_id = $1 AND id = $2),
                (SELECT message_count FROM threads WHERE session_id = $1 AND id = $3)",
        &[&sid, &mid, &tid],
    )
    .await?
    .ok_or_else(|| bad_row("message"))?;
    let holder: Option<Vec<u8>> = col(&why, 0, "message")?;
    let count: Option<i64> = col(&why, 1, "thread")?;
    match (holder, count) {
        // Finished already, and this put said `streaming`: the stop stays; nothing to do.
        (Some(holder), _) => Ok(holder == tid),
        (None, None) => Ok(false),
        (None, Some(_)) => Err(StoreError::TooManyMessages),
    }
}

#[async_trait]
impl Probe for PostgresStore {
    async fn exists_raw(&self, id: &SessionId) -> Result<bool, StoreError> {
        let rows = self
            .query(
                "SELECT 1 FROM sessions WHERE id = $1",
                &[&&id.as_bytes()[..]],
            )
            .await?;
        Ok(!rows.is_empty())
    }
}
