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
use self::{rows::*, schema::*, worker::*};

mod impls;
mod rows;
mod schema;
mod worker;

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

/// Sessions kept in an embedded SQLite database file: durable, for one server.
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

impl SqliteStore {
    /// `put_messages`, and with `end` `put_turn`.
    async fn put(
        &self,
        id: &SessionId,
        end: Option<Option<MessageId>>,
        ms: &[Message],
    ) -> Result<bool, StoreError> {
        let id = *id;
        let ms = ms.iter().map(Stored::of).collect::<Result<Vec<_>, _>>()?;
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            // The write job holds the database's one writer, so the end cannot move between
            // this check and the appends.
            if let (Some(after), Some(first)) = (end, ms.first()) {
                match ends_with(tx, &id, &first.m.thread_id, after.as_ref())? {
                    None => return Ok(false),
                    Some(false) => return Err(StoreError::Moved),
                    Some(true) => {}
                }
            }
            // A savepoint of its own, so a refusal part-way undoes the messages before it;
            // an error undoes them anyway with the job's savepoint.
            execute(tx, "SAVEPOINT turn", [])?;
            for m in &ms {
                if !put_one(tx, &id, m, true)? {
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

    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(
        path: &Path,
        lifetimes: Lifetimes,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        Self::open_with(path, lifetimes, busy_timeout, Durability::Full).await
    }

    /// Like `open`, with commits synced to disk as `durability` says.
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
        let n_readers = confide_core::cores().clamp(MIN_READERS, MAX_READERS);
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

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::{MessageStatus, Role};
    use confide_core::Proof;
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
            steps: Vec::new(),
            actions: Vec::new(),
            attachments: Vec::new(),
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
        // Lifetimes long enough that a busy machine's stalls (the tests run beside a browser)
        // cannot carry a check past the end it is about: the ended marks are checked 0.75 s
        // before the first of them may go.
        let lifetimes = Lifetimes {
            idle: Duration::from_secs(1),
            absolute: Duration::from_secs(2),
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
        tokio::time::sleep(Duration::from_millis(1250)).await;
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

        tokio::time::sleep(Duration::from_millis(2500)).await;
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
            steps: Vec::new(),
            actions: Vec::new(),
            attachments: Vec::new(),
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
