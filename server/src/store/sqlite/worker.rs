//! The writer thread (group commit) and the reader threads.

use super::*;

/// One store call's writes, queued for the writer thread.
pub(super) type WriteJob = Box<dyn Job>;

pub(super) trait Job: Send {
    /// False once the caller stopped waiting (its timeout ran out): running the job then
    /// would only add to a backlog nobody waits for.
    fn wanted(&self) -> bool;
    /// Runs the job inside its savepoint; false means undo it.
    fn run(&mut self, tx: &Transaction<'_>) -> bool;
    /// Answers the caller once the batch's commit has succeeded or failed.
    fn answer(self: Box<Self>, commit: Result<(), StoreError>);
}

pub(super) struct Pending<T, F> {
    pub(super) work: Option<F>,
    pub(super) result: Option<Result<T, StoreError>>,
    /// `None` for work nobody waits for (deleting an expired session a reader met).
    pub(super) reply: Option<oneshot::Sender<Result<T, StoreError>>>,
}

impl<T, F> Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
{
    pub(super) fn job(work: F, reply: Option<oneshot::Sender<Result<T, StoreError>>>) -> WriteJob {
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

pub(super) fn write_loop(mut conn: Connection, jobs: Receiver<WriteJob>) {
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
pub(super) fn run_batch(conn: &mut Connection, batch: &mut [WriteJob]) -> Result<(), StoreError> {
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

pub(super) type ReadJob = Box<dyn FnOnce(&mut Connection, &Sender<WriteJob>) + Send>;

pub(super) fn read_loop(mut conn: Connection, jobs: Receiver<ReadJob>, writer: Sender<WriteJob>) {
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
pub(super) struct Reader<'a> {
    pub(super) conn: &'a Connection,
    pub(super) writer: &'a Sender<WriteJob>,
}

impl Reader<'_> {
    /// Fails with `NoSuchSession` unless the session is live. An expired one is handed to
    /// the writer for deletion and reported gone without waiting for it.
    pub(super) fn live(&self, id: &SessionId) -> Result<(), StoreError> {
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

pub(super) fn run_read<T>(
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

pub(super) fn submit<J>(queue: &Sender<J>, job: J) -> Result<(), StoreError> {
    queue.try_send(job).map_err(|e| match e {
        TrySendError::Full(_) => StoreError::Unavailable("the SQLite store is overloaded".into()),
        TrySendError::Disconnected(_) => stopped(),
    })
}
