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

pub(super) fn raw_thread(r: &Row<'_>) -> rusqlite::Result<RawThread> {
    Ok(RawThread(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
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

/// Whether the thread ends with message `after` (`None`: holds none); `None` if the session
/// has no such thread. One step down the (session, thread, seq) index.
pub(super) fn ends_with(
    tx: &Connection,
    id: &SessionId,
    thread: &ThreadId,
    after: Option<&MessageId>,
) -> Result<Option<bool>, StoreError> {
    let sid = &id.as_bytes()[..];
    let tid = &thread.as_bytes()[..];
    let found: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM threads WHERE session_id = ? AND id = ?")
        .and_then(|mut s| s.query_row([sid, tid], |r| r.get(0)).optional())
        .map_err(db)?;
    if found.is_none() {
        return Ok(None);
    }
    let last: Option<Vec<u8>> = tx
        .prepare_cached(
            "SELECT id FROM messages WHERE session_id = ? AND thread_id = ? \
             ORDER BY seq DESC LIMIT 1",
        )
        .and_then(|mut s| s.query_row([sid, tid], |r| r.get(0)).optional())
        .map_err(db)?;
    Ok(Some(last.as_deref() == after.map(|m| &m.as_bytes()[..])))
}

/// Appends the message to its thread (unless `append` is false) or replaces it there; false
/// if the session has no such thread, or the id belongs to another of its threads, or the
/// message is new and may not be appended.
pub(super) fn put_one(
    tx: &Connection,
    id: &SessionId,
    stored: &Stored,
    append: bool,
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
         WHERE session_id = ? AND id = ? AND thread_id = ? \
         AND (status = 'streaming' OR ?4 <> 'streaming')",
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
    // Not replaced: new, another thread's, or finished already and this put says
    // `streaming` (a stop that landed first stays, and the put is done).
    let holder: Option<Vec<u8>> = tx
        .prepare_cached("SELECT thread_id FROM messages WHERE session_id = ? AND id = ?")
        .and_then(|mut s| s.query_row([sid, mid], |r| r.get(0)).optional())
        .map_err(db)?;
    if let Some(holder) = holder {
        return Ok(holder == tid);
    }
    if !append {
        return Ok(false);
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
