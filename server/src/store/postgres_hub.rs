//! Live events across server processes through PostgreSQL `LISTEN/NOTIFY`, so a deployment on
//! PostgreSQL alone needs no Redis.
//!
//! Every process listens on one channel, `confide_events`, on a dedicated connection. An
//! event goes to this process's listeners at once (through an in-process `LocalHub`) and to
//! the others as `NOTIFY confide_events, '<process>|<n>|<session>|<event JSON>'`; a process
//! skips its own notifications, so each listener sees each event once. `<n>` counts up per
//! process: PostgreSQL folds identical notifications of one transaction into one, and two
//! identical deltas in one batch must both arrive.
//!
//! A notification carries less than 8,000 bytes. A larger event (a long reply's text) is
//! written to `confide_event_bodies` and the notification carries `@<row id>`; a receiver
//! reads the row over its listening connection before it handles the next notification, so
//! order holds. The rows are deleted a minute later: every process has read them by then.
//!
//! The end of a session travels the same way (`end`), so every process closes that session's
//! streams within a round trip. Like Redis pub/sub, NOTIFY is fire and forget: when the
//! listening connection comes back after a loss, every session with listeners here is told
//! to resync.

use super::{
    hub_shared::{Listener, Listening, Pending, resync},
    postgres::{pg, pool, tls},
};
use app::{SessionId, model::ChatEvent};
use confide_core::{
    StoreError,
    events::{EventHub, Feed, LocalHub},
};
use futures::{StreamExt, stream::BoxStream};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

const CHANNEL: &str = "confide_events";
/// Bounds connecting, each publish batch and each health-check query.
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the listening connection is checked: one that died without a word is noticed
/// within this plus `OP_TIMEOUT`.
const PING_EVERY: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Notifications waiting to be sent; past this (PostgreSQL slow or away) new ones are
/// dropped, and the other processes' listeners resync when their connection recovers.
const OUTBOX: usize = 4096;
/// Most notifications sent in one statement.
const BATCH: usize = 128;
/// PostgreSQL refuses payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_999;

/// How long a large event's row is kept for the other processes to read.
const BODY_TTL_MS: i64 = 60_000;

const END: &str = "end";
const RESYNC: &str = "resync";

/// Live events through PostgreSQL, so every process hears the events of every session.
pub struct PostgresHub {
    local: Arc<LocalHub>,
    /// This process's mark on what it sends, so it can skip its own notifications.
    process: String,
    sent: AtomicU64,
    outbox: mpsc::Sender<Outgoing>,
    listening: Listening,
    /// Sent to the outbox and not yet handed to the server, with a wake-up when it drains.
    pending: Pending,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for PostgresHub {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A listening connection: its client (which keeps it open), the task driving it, and the
/// payloads of the notifications it receives.
struct Subscription {
    client: tokio_postgres::Client,
    driver: JoinHandle<()>,
    payloads: mpsc::UnboundedReceiver<String>,
}

async fn bounded<T>(
    f: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(r) => r.map_err(pg),
        Err(_) => Err(StoreError::Unavailable(format!(
            "PostgreSQL did not answer within {OP_TIMEOUT:?}"
        ))),
    }
}

async fn listen(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
) -> Result<Subscription, StoreError> {
    let (client, mut connection) = bounded(config.connect(tls.clone())).await?;
    let (tx, payloads) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message
                && tx.send(n.payload().to_owned()).is_err()
            {
                return;
            }
        }
    });
    bounded(client.batch_execute(&format!("LISTEN {CHANNEL}"))).await?;
    Ok(Subscription {
        client,
        driver,
        payloads,
    })
}

impl PostgresHub {
    /// Connects the listening side and a publishing connection, and returns once the
    /// listening is in place, so nothing sent after this returns is missed.
    pub async fn connect(url: &str, ca: Option<&std::path::Path>) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("not a PostgreSQL URL: {e}")))?;
        let tls = tls(ca)?;
        let publisher = pool(config.clone(), tls.clone(), 1, OP_TIMEOUT)?;
        let first = listen(&config, &tls).await?;
        let local = Arc::new(LocalHub::default());
        let listening = Listening::default();
        // Random, so two processes never take each other's notifications for their own.
        let process = SessionId::random().as_string()[..13].to_owned();
        let (outbox, rx) = mpsc::channel(OUTBOX);
        let pending = Pending::default();
        let receiver = Receiver {
            config,
            tls,
            process: process.clone(),
            local: local.clone(),
            listening: listening.clone(),
        };
        let tasks = [
            tokio::spawn(receiver.run(first)),
            tokio::spawn(publish_loop(
                publisher,
                rx,
                process.clone(),
                pending.clone(),
            )),
        ];
        Ok(Self {
            local,
            process,
            sent: AtomicU64::new(0),
            outbox,
            listening,
            pending,
            tasks,
        })
    }

    fn send(&self, session: &SessionId, body: String) {
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        let head = format!("{}|{n}|{}|", self.process, session.as_string());
        self.pending.add();
        if self.outbox.try_send(Outgoing { head, body }).is_err() {
            self.pending.done(1);
            tracing::warn!(session = %session.log_tag(), "event outbox full (PostgreSQL slow or away); other instances miss an event");
        }
    }
}

impl EventHub for PostgresHub {
    fn publish(&self, session: &SessionId, event: ChatEvent) {
        let body = match serde_json::to_string(&event) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(session = %session.log_tag(), error = %e, "cannot encode a chat event");
                return;
            }
        };
        self.local.publish(session, event);
        self.send(session, body);
    }

    fn end(&self, session: &SessionId) {
        self.local.end(session);
        self.send(session, END.to_owned());
    }

    fn flush(&self) -> futures::future::BoxFuture<'static, ()> {
        self.pending.flushed()
    }

    fn subscribe(&self, session: &SessionId) -> BoxStream<'static, Feed> {
        let listener = Listener::new(self.listening.clone(), *session);
        let feed = self.local.subscribe(session);
        // The closure owns the listener, so the session stays registered exactly as long
        // as the stream is alive.
        Box::pin(feed.map(move |item| {
            let _registered = &listener;
            item
        }))
    }
}

/// A notification to send: `<process>|<n>|<session>|` and what follows it.
struct Outgoing {
    head: String,
    body: String,
}

/// Sends notifications in the order they were published (one task), whatever has queued up
/// in one statement; a body too large for a notification goes into a row first.
async fn publish_loop(
    pool: deadpool_postgres::Pool,
    mut rx: mpsc::Receiver<Outgoing>,
    process: String,
    pending: Pending,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_cleanup = 0i64;
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let sent = async {
            let client = pool
                .get()
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let now = confide_core::store::now_ms();
            let mut payloads = Vec::with_capacity(batch.len());
            for o in &batch {
                if o.head.len() + o.body.len() <= MAX_PAYLOAD {
                    payloads.push(format!("{}{}", o.head, o.body));
                    continue;
                }
                let row = bounded(client.query_one(
                    "INSERT INTO confide_event_bodies (body, created_ms) VALUES ($1, $2) RETURNING id",
                    &[&o.body.as_bytes(), &now],
                ))
                .await?;
                let id: i64 = row.try_get(0).map_err(pg)?;
                payloads.push(format!("{}@{id}", o.head));
            }
            bounded(client.execute(
                "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, i) ORDER BY i",
                &[&CHANNEL, &payloads],
            ))
            .await?;
            if now - last_cleanup > BODY_TTL_MS / 2 {
                last_cleanup = now;
                bounded(client.execute(
                    "DELETE FROM confide_event_bodies WHERE created_ms < $1",
                    &[&(now - BODY_TTL_MS)],
                ))
                .await?;
            }
            Ok::<_, StoreError>(())
        };
        if let Err(e) = sent.await {
            // The other processes resync when their own connection recovers.
            tracing::warn!(process = %process, error = %e, events = batch.len(), "sending chat events through PostgreSQL failed");
        }
        pending.done(batch.len());
        batch.clear();
    }
}

/// The receiving side: owns the listening connection and keeps it alive.
struct Receiver {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    process: String,
    local: Arc<LocalHub>,
    listening: Listening,
}

impl Receiver {
    async fn run(self, first: Subscription) {
        let mut current = Some(first);
        let mut backoff = MIN_BACKOFF;
        loop {
            let connection = match current.take() {
                Some(c) => c,
                None => match listen(&self.config, &self.tls).await {
                    Ok(c) => {
                        tracing::info!("listening for chat events in PostgreSQL again");
                        backoff = MIN_BACKOFF;
                        // Whatever was sent while we were away is gone.
                        self.resync_listeners();
                        c
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, retry_in = ?backoff, "listening for chat events in PostgreSQL failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            self.pump(connection).await;
            tracing::warn!("listening for chat events in PostgreSQL lost; reconnecting");
        }
    }

    /// Delivers notifications until the connection fails.
    async fn pump(&self, mut connection: Subscription) {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                payload = connection.payloads.recv() => match payload {
                    Some(p) => self.deliver(&connection.client, &p).await,
                    None => break,
                },
                _ = ping.tick() => {
                    if bounded(connection.client.simple_query("SELECT 1")).await.is_err() {
                        break;
                    }
                }
            }
        }
        connection.driver.abort();
    }

    async fn deliver(&self, client: &tokio_postgres::Client, payload: &str) {
        let mut parts = payload.splitn(4, '|');
        let (Some(process), Some(_n), Some(session), Some(body)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if process == self.process {
            return;
        }
        let Ok(session) = SessionId::parse(session) else {
            return;
        };
        let stored;
        let body = match body.strip_prefix('@').map(str::parse::<i64>) {
            None => body,
            Some(Ok(id)) => {
                let row = bounded(client.query_opt(
                    "SELECT body FROM confide_event_bodies WHERE id = $1",
                    &[&id],
                ))
                .await;
                stored = match row {
                    Ok(Some(r)) => r
                        .try_get::<_, Vec<u8>>(0)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok()),
                    _ => None,
                };
                // Gone or unreadable: the browsers here reload what they show instead.
                stored.as_deref().unwrap_or(RESYNC)
            }
            Some(Err(_)) => return,
        };
        match body {
            END => self.local.end(&session),
            RESYNC => self.local.publish(&session, ChatEvent::Resync),
            json => match serde_json::from_str::<ChatEvent>(json) {
                Ok(event) => self.local.publish(&session, event),
                Err(e) => {
                    tracing::warn!(session = %session.log_tag(), error = %e, "unreadable chat event from PostgreSQL")
                }
            },
        }
    }

    fn resync_listeners(&self) {
        resync(&self.local, &self.listening);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::hub_shared::tests::{event, is, next};
    use crate::store::postgres_test_support::PostgresServer;
    use std::time::Instant;

    /// A database on `server` with Confide's schema, which large events need.
    async fn schema(server: &PostgresServer) -> String {
        let url = server.fresh_database().await;
        crate::store::PostgresStore::connect(
            &url,
            confide_core::Lifetimes::default(),
            1,
            Duration::from_secs(10),
            None,
        )
        .await
        .unwrap();
        url
    }

    #[tokio::test]
    async fn events_cross_processes_once_and_only_to_their_session() {
        let server = PostgresServer::start();
        let a = PostgresHub::connect(&server.url("postgres"), None)
            .await
            .unwrap();
        let b = PostgresHub::connect(&server.url("postgres"), None)
            .await
            .unwrap();
        let (s, other) = (SessionId::random(), SessionId::random());
        let mut on_a = a.subscribe(&s);
        let mut on_b = b.subscribe(&s);
        let mut other_on_b = b.subscribe(&other);

        let e = event();
        a.publish(&s, e.clone());
        assert!(
            is(&next(&mut on_a).await, &e),
            "the publisher's own listener"
        );
        assert!(is(&next(&mut on_b).await, &e), "another process's listener");

        // Identical events sent together both arrive (NOTIFY folds equal payloads of one
        // transaction), and nothing arrives twice.
        let twice = event();
        b.publish(&s, twice.clone());
        b.publish(&s, twice.clone());
        let marker = event();
        b.publish(&s, marker.clone());
        for feed in [&mut on_a, &mut on_b] {
            assert!(is(&next(feed).await, &twice));
            assert!(is(&next(feed).await, &twice));
            assert!(is(&next(feed).await, &marker));
        }

        let for_other = event();
        a.publish(&other, for_other.clone());
        assert!(
            is(&next(&mut other_on_b).await, &for_other),
            "the other session saw nothing before its own event"
        );
    }

    #[tokio::test]
    async fn an_end_closes_the_sessions_streams_in_every_process_within_a_second() {
        let server = PostgresServer::start();
        let a = PostgresHub::connect(&server.url("postgres"), None)
            .await
            .unwrap();
        let b = PostgresHub::connect(&server.url("postgres"), None)
            .await
            .unwrap();
        let (s, other) = (SessionId::random(), SessionId::random());
        let mut on_a = a.subscribe(&s);
        let mut on_b = b.subscribe(&s);
        let mut other_on_b = b.subscribe(&other);
        // The publishing connection opens with the first event: measured once it is open,
        // as in a server that has been running.
        let warm = event();
        a.publish(&s, warm.clone());
        assert!(is(&next(&mut on_a).await, &warm));
        assert!(is(&next(&mut on_b).await, &warm));
        let started = Instant::now();
        a.end(&s);
        assert_eq!(next(&mut on_a).await, Feed::Ended);
        assert_eq!(next(&mut on_b).await, Feed::Ended, "the other process too");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        for feed in [&mut on_a, &mut on_b] {
            let after = tokio::time::timeout(Duration::from_secs(5), feed.next()).await;
            assert_eq!(after.expect("the feed ends at once"), None);
        }
        let e = event();
        a.publish(&other, e.clone());
        assert!(
            is(&next(&mut other_on_b).await, &e),
            "another session heard no end"
        );
    }

    #[tokio::test]
    async fn events_too_large_to_notify_arrive_whole_and_in_order() {
        let server = PostgresServer::start();
        let url = schema(&server).await;
        let a = PostgresHub::connect(&url, None).await.unwrap();
        let b = PostgresHub::connect(&url, None).await.unwrap();
        let s = SessionId::random();
        let mut on_b = b.subscribe(&s);
        let delta = |n: usize| ChatEvent::Delta {
            thread_id: app::model::ThreadId::random(),
            message_id: app::model::MessageId::random(),
            content: "é".repeat(n),
            html: format!("<p>{}</p>", "é".repeat(n)),
            from: None,
            keep: None,
        };
        let (small, large, after) = (event(), delta(20_000), delta(10));
        a.publish(&s, small.clone());
        a.publish(&s, large.clone());
        a.publish(&s, after.clone());
        assert!(is(&next(&mut on_b).await, &small));
        assert!(is(&next(&mut on_b).await, &large), "the large one whole");
        assert!(is(&next(&mut on_b).await, &after), "and in its place");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listeners_resync_after_postgres_comes_back() {
        let mut server = PostgresServer::start();
        let port = server.port();
        let hub = PostgresHub::connect(&server.url("postgres"), None)
            .await
            .unwrap();
        let s = SessionId::random();
        let mut feed = hub.subscribe(&s);

        server.kill();
        // Publishing into the void neither blocks nor panics.
        let started = Instant::now();
        for _ in 0..10 {
            hub.publish(&s, event());
        }
        assert!(started.elapsed() < Duration::from_millis(100));

        let _server = PostgresServer::start_on(port);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut resynced = false;
        while !resynced {
            assert!(
                Instant::now() < deadline,
                "no resync after PostgreSQL came back"
            );
            if let Ok(Some(Feed::Event(got))) =
                tokio::time::timeout(Duration::from_millis(500), feed.next()).await
                && *got == ChatEvent::Resync
            {
                resynced = true;
            }
        }
    }

    #[tokio::test]
    async fn listener_registrations_end_with_their_streams() {
        let server = PostgresServer::start();
        let hub = PostgresHub::connect(&server.url("postgres"), None)
            .await
            .unwrap();
        let s = SessionId::random();
        let one = hub.subscribe(&s);
        let two = hub.subscribe(&s);
        assert_eq!(hub.listening.lock().unwrap().get(&s), Some(&2));
        drop(one);
        assert_eq!(hub.listening.lock().unwrap().get(&s), Some(&1));
        drop(two);
        assert!(hub.listening.lock().unwrap().is_empty());
    }
}
