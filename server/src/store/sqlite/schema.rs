//! The schema and its migrations, and opening the connections.

use super::*;

/// Schema versions, applied in order inside one transaction each; `PRAGMA user_version`
/// records how far a database has come.
pub(super) const MIGRATIONS: &[&str] = &[
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
    r#"
-- A reply's steps (tool calls, retrievals, reasoning) as one JSON array, written and read
-- with the message; NULL when it has none.
ALTER TABLE messages ADD COLUMN steps TEXT;
"#,
    r#"
-- A reply's action buttons as one JSON array; NULL when it offers none.
ALTER TABLE messages ADD COLUMN actions TEXT;
"#,
    r#"
-- A message's files (their ids, names, sizes and types; the bytes are in the file store) as
-- one JSON array; NULL when it carries none.
ALTER TABLE messages ADD COLUMN attachments TEXT;
"#,
    r#"
-- Messages stored in their threads' order: a turn reads its thread's last messages, and with
-- the rows ordered by id (random) each one was a second descent of the table from the
-- (session, thread, seq) index. Now that read is one range of the table; a lookup by id
-- takes the unique index instead. The order is renumbered on the way, which also makes it
-- unique where the old index did not insist.
CREATE TABLE messages_by_order (
    session_id  BLOB NOT NULL,
    thread_id   BLOB NOT NULL,
    seq         INTEGER NOT NULL,
    id          BLOB NOT NULL,
    role        TEXT NOT NULL,
    content     TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    status      TEXT NOT NULL,
    feedback    TEXT,
    error       TEXT,
    steps       TEXT,
    actions     TEXT,
    attachments TEXT,
    PRIMARY KEY (session_id, thread_id, seq),
    FOREIGN KEY (session_id, thread_id) REFERENCES threads (session_id, id) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO messages_by_order
    SELECT session_id, thread_id,
           ROW_NUMBER() OVER (PARTITION BY session_id, thread_id ORDER BY seq, created_ms),
           id, role, content, created_ms, status, feedback, error, steps, actions, attachments
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_by_order RENAME TO messages;
CREATE UNIQUE INDEX messages_by_id ON messages (session_id, id);
CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';
"#,
];

pub(super) fn configure(
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

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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
pub(super) fn end_interrupted_replies(conn: &Connection) -> Result<(), StoreError> {
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
pub(super) fn open_connections(
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
