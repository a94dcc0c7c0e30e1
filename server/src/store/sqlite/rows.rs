//! Rows as SQLite holds them, and the statements every job shares.

use super::*;

pub(super) fn db(e: rusqlite::Error) -> StoreError {
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

pub(super) fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(super) fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite store has stopped".into())
}

pub(super) fn role_str(r: Role) -> &'static str {
    match r {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

pub(super) fn status_str(s: MessageStatus) -> &'static str {
    match s {
        MessageStatus::Streaming => "streaming",
        MessageStatus::Done => "done",
        MessageStatus::Stopped => "stopped",
        MessageStatus::Error => "error",
    }
}

pub(super) fn bad_row(what: &str) -> StoreError {
    StoreError::Internal(format!("unreadable {what} row"))
}

pub(super) fn uuid_bytes(v: &[u8]) -> Option<[u8; 16]> {
    v.try_into().ok()
}

pub(super) const THREAD_COLUMNS: &str = "id, title, created_ms, updated_ms";
pub(super) const MESSAGE_COLUMNS: &str = "id, thread_id, role, content, created_ms, status, feedback, error, steps, actions, attachments";

/// A row as SQLite hands it over; turned into a model type once the statement is done, so
/// that a malformed row is a `StoreError` rather than a driver error.
pub(super) struct RawThread(
    pub(super) Vec<u8>,
    pub(super) String,
    pub(super) i64,
    pub(super) i64,
);

pub(super) fn raw_thread(r: &Row<'_>) -> rusqlite::Result<RawThread> {
    Ok(RawThread(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

impl RawThread {
    pub(super) fn parse(self) -> Result<Thread, StoreError> {
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

pub(super) struct RawMessage {
    pub(super) id: Vec<u8>,
    pub(super) thread_id: Vec<u8>,
    pub(super) role: String,
    pub(super) content: String,
    pub(super) created_ms: i64,
    pub(super) status: String,
    pub(super) feedback: Option<String>,
    pub(super) error: Option<String>,
    pub(super) steps: Option<String>,
    pub(super) actions: Option<String>,
    pub(super) attachments: Option<String>,
}

pub(super) fn raw_message(r: &Row<'_>) -> rusqlite::Result<RawMessage> {
    Ok(RawMessage {
        id: r.get(0)?,
        thread_id: r.get(1)?,
        role: r.get(2)?,
        content: r.get(3)?,
        created_ms: r.get(4)?,
        status: r.get(5)?,
        feedback: r.get(6)?,
        error: r.get(7)?,
        steps: r.get(8)?,
        actions: r.get(9)?,
        attachments: r.get(10)?,
    })
}

impl RawMessage {
    pub(super) fn parse(self) -> Result<Message, StoreError> {
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
            steps: self
                .steps
                .map(|s| serde_json::from_str::<Vec<Step>>(&s))
                .transpose()
                .map_err(|_| bad_row("message"))?
                .unwrap_or_default(),
            actions: self
                .actions
                .map(|s| serde_json::from_str::<Vec<Action>>(&s))
                .transpose()
                .map_err(|_| bad_row("message"))?
                .unwrap_or_default(),
            attachments: self
                .attachments
                .map(|s| serde_json::from_str::<Vec<Attachment>>(&s))
                .transpose()
                .map_err(|_| bad_row("message"))?
                .unwrap_or_default(),
        })
    }
}

pub(super) fn home_from(home: Option<Vec<u8>>) -> Result<Option<SessionId>, StoreError> {
    home.map(|h| {
        uuid_bytes(&h)
            .map(SessionId::from_stored_bytes)
            .ok_or_else(|| bad_row("session"))
    })
    .transpose()
}

/// Records, as ended at `?1`, the sessions a `WHERE` clause over `sessions` selects, just
/// before that clause deletes them. A home never expires, so only `delete` needs to say
/// `is_home = 0`.
pub(super) const MARK_ENDED: &str =
    "INSERT INTO ended_sessions (id, ended_ms) SELECT id, ?1 FROM sessions";
pub(super) const MARK_ENDED_CONFLICT: &str =
    "ON CONFLICT (id) DO UPDATE SET ended_ms = MAX(ended_ms, excluded.ended_ms)";

/// Deletes the session if it has expired by `now`, leaving its id marked as ended; returns
/// whether it did.
pub(super) fn delete_expired(
    tx: &Connection,
    id: &SessionId,
    now: i64,
) -> Result<bool, StoreError> {
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
pub(super) fn live_for_write(tx: &Connection, id: &SessionId) -> Result<(), StoreError> {
    let expires: Option<i64> = tx
        .prepare_cached("SELECT expires_ms FROM sessions WHERE id = ?")
        .and_then(|mut s| s.query_row([&id.as_bytes()[..]], |r| r.get(0)).optional())
        .map_err(db)?;
    match expires {
        Some(e) if e > now_ms() => Ok(()),
        _ => Err(StoreError::NoSuchSession),
    }
}

pub(super) fn execute(
    tx: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize, StoreError> {
    tx.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(db)
}

/// A message ready for the writer: owned, its feedback and steps already serialised.
pub(super) struct Stored {
    pub(super) m: Message,
    pub(super) feedback: Option<String>,
    /// `NULL` for none, as every message written before steps existed.
    pub(super) steps: Option<String>,
    pub(super) actions: Option<String>,
    pub(super) attachments: Option<String>,
}

impl Stored {
    pub(super) fn of(m: &Message) -> Result<Self, StoreError> {
        let feedback = m
            .feedback
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let steps = (!m.steps.is_empty())
            .then(|| serde_json::to_string(&m.steps))
            .transpose()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let actions = (!m.actions.is_empty())
            .then(|| serde_json::to_string(&m.actions))
            .transpose()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let attachments = (!m.attachments.is_empty())
            .then(|| serde_json::to_string(&m.attachments))
            .transpose()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(Self {
            m: m.clone(),
            feedback,
            steps,
            actions,
            attachments,
        })
    }
}

/// Appends the message to its thread or replaces it there; false if the session has no such
/// thread, or the id belongs to another of its threads.
pub(super) fn put_one(
    tx: &Connection,
    id: &SessionId,
    stored: &Stored,
) -> Result<bool, StoreError> {
    let (m, feedback, steps, actions, attachments) = (
        &stored.m,
        &stored.feedback,
        &stored.steps,
        &stored.actions,
        &stored.attachments,
    );
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
         feedback = ?, error = ?, steps = ?, actions = ?, attachments = ? \
         WHERE session_id = ? AND id = ? AND thread_id = ?",
        params![
            role_str(m.role),
            m.content,
            m.created_ms,
            status_str(m.status),
            feedback,
            m.error,
            steps,
            actions,
            attachments,
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
         created_ms, status, feedback, error, steps, actions, attachments) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
            m.error,
            steps,
            actions,
            attachments
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

pub(super) struct SessionRow {
    pub(super) proof: Vec<u8>,
    pub(super) created_ms: i64,
    pub(super) last_seen_ms: i64,
    pub(super) expires_ms: i64,
    pub(super) home: Option<Vec<u8>>,
    pub(super) is_home: bool,
}
