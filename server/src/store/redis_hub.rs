//! Live events across server processes through Redis pub/sub.
//!
//! Publishing sends `PUBLISH <prefix>:ev:<sid> <event JSON>`. Each process holds ONE pattern
//! subscription, `<prefix>:ev:*`, on a dedicated connection, and hands what arrives to an
//! in-process `LocalHub`; `subscribe` is that hub's. An event published here comes back
//! through Redis like everyone else's, so local listeners see it exactly once.
//!
//! The end of a session travels the same channel with the payload `end` (an event is always
//! a JSON object), so every process closes that session's streams.
//!
//! On a Redis Cluster, classic pub/sub reaches every node: events are published through the
//! cluster connection (each channel from the node of its slot, so one session's events stay
//! in order), and the subscription is held on one node, moving to the next seed node of the
//! URL when that one is lost.
//!
//! Pub/sub is fire and forget: events published while the subscription is down are lost.
//! When it comes back, every session with listeners here gets `ChatEvent::Resync`, which
//! tells the browser to reload what it shows.

use super::{
    hub_shared::{Listener, Listening, Pending, resync},
    redis::{Conn, check_prefix, client, cluster_nodes},
};
use ::redis::Client;
use app::{SessionId, model::ChatEvent};
use confide_core::{
    StoreError,
    events::{EventHub, Feed, LocalHub},
};
use futures::{StreamExt, stream::BoxStream};
use std::{sync::Arc, time::Duration};
use tokio::{sync::mpsc, task::JoinHandle};

/// Bounds connecting, each publish batch and each health-check ping.
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the subscription connection is pinged: a connection that died without a
/// word (a network partition, a frozen server) is noticed within this plus `OP_TIMEOUT`.
const PING_EVERY: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Events waiting to be published. Past this (Redis slow or away) new events are dropped
/// and their sessions' local listeners told to resync.
const OUTBOX: usize = 4096;
/// Most events sent in one pipelined round trip.
const BATCH: usize = 128;

struct Outgoing {
    session: SessionId,
    payload: String,
}

/// The payload that ends a session's streams.
const END: &str = "end";

/// Live events through Redis pub/sub, so every process hears the events of every session.
pub struct RedisHub {
    local: Arc<LocalHub>,
    prefix: String,
    outbox: mpsc::Sender<Outgoing>,
    listening: Listening,
    /// Sent to the outbox and not yet handed to the server, with a wake-up when it drains.
    pending: Pending,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for RedisHub {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl RedisHub {
    /// Connects both the publishing and the subscribing side, and returns once the
    /// subscription is in place, so nothing published after this returns is missed.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        check_prefix(prefix)?;
        let clients = match cluster_nodes(url)? {
            Some(nodes) => nodes.iter().map(|n| client(n)).collect::<Result<_, _>>()?,
            None => vec![client(url)?],
        };
        let publisher = Conn::open(url, OP_TIMEOUT).await?;
        let pattern = format!("{prefix}:ev:*");
        let mut last = StoreError::Unavailable("no Redis node to subscribe on".into());
        let mut first = None;
        for (i, c) in clients.iter().enumerate() {
            match bounded(subscribe(c, &pattern)).await {
                Ok(s) => {
                    first = Some((i, s));
                    break;
                }
                Err(e) => last = e,
            }
        }
        let Some((node, subscription)) = first else {
            return Err(last);
        };

        let local = Arc::new(LocalHub::default());
        let listening = Listening::default();
        let (outbox, rx) = mpsc::channel(OUTBOX);
        let pending = Pending::default();
        let channel_prefix = format!("{prefix}:ev:");
        let receiver = Receiver {
            clients,
            node,
            pattern,
            channel_prefix,
            local: local.clone(),
            listening: listening.clone(),
        };
        let tasks = [
            tokio::spawn(receiver.run(subscription)),
            tokio::spawn(publish_loop(
                publisher,
                prefix.to_owned(),
                rx,
                local.clone(),
                pending.clone(),
            )),
        ];
        Ok(Self {
            local,
            prefix: prefix.to_owned(),
            outbox,
            listening,
            pending,
            tasks,
        })
    }

    /// The namespace of its channels (`redis_prefix`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl EventHub for RedisHub {
    fn publish(&self, session: &SessionId, event: ChatEvent) {
        let payload = match serde_json::to_string(&event) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(session = %session.log_tag(), error = %e, "cannot encode a chat event");
                return;
            }
        };
        self.pending.add();
        if self
            .outbox
            .try_send(Outgoing {
                session: *session,
                payload,
            })
            .is_err()
        {
            self.pending.done(1);
            tracing::warn!(session = %session.log_tag(), "event outbox full (Redis slow or away); dropping an event");
            self.local.publish(session, ChatEvent::Resync);
        }
    }

    fn end(&self, session: &SessionId) {
        // Here at once, whatever Redis does; the copy that comes back through Redis finds
        // these streams closed already.
        self.local.end(session);
        self.pending.add();
        if self
            .outbox
            .try_send(Outgoing {
                session: *session,
                payload: END.to_owned(),
            })
            .is_err()
        {
            self.pending.done(1);
            // Other processes still close the stream at their next recheck.
            tracing::warn!(session = %session.log_tag(), "event outbox full (Redis slow or away); a session end reached this process only");
        }
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

fn unavailable(e: ::redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis: {e}"))
}

async fn bounded<T>(
    f: impl Future<Output = Result<T, ::redis::RedisError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(r) => r.map_err(unavailable),
        Err(_) => Err(StoreError::Unavailable(format!(
            "Redis did not answer within {OP_TIMEOUT:?}"
        ))),
    }
}

async fn subscribe(
    client: &Client,
    pattern: &str,
) -> Result<::redis::aio::PubSub, ::redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(pattern).await?;
    Ok(pubsub)
}

/// Sends events in the order they were published (one task, one connection), batching
/// whatever has queued up into one pipelined round trip. On a cluster, where a pipeline must
/// not span slots, each session's events go as a pipeline of their own.
async fn publish_loop(
    mut conn: Conn,
    prefix: String,
    mut rx: mpsc::Receiver<Outgoing>,
    local: Arc<LocalHub>,
    pending: Pending,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let sent = match &conn {
            Conn::One(_) => {
                let mut pipe = ::redis::pipe();
                for e in &batch {
                    pipe.publish(format!("{prefix}:ev:{}", e.session.as_string()), &e.payload)
                        .ignore();
                }
                bounded(pipe.exec_async(&mut conn)).await
            }
            Conn::Cluster(_) => {
                // One pipeline per session: its channel is one slot, and the cluster client
                // runs separate commands concurrently, so only a pipeline keeps their order.
                let mut per_session: Vec<(SessionId, ::redis::Pipeline)> = Vec::new();
                for e in &batch {
                    let i = match per_session.iter().position(|(s, _)| *s == e.session) {
                        Some(i) => i,
                        None => {
                            per_session.push((e.session, ::redis::pipe()));
                            per_session.len() - 1
                        }
                    };
                    per_session[i]
                        .1
                        .publish(format!("{prefix}:ev:{}", e.session.as_string()), &e.payload)
                        .ignore();
                }
                let calls = per_session.into_iter().map(|(_, pipe)| {
                    let mut c = conn.clone();
                    async move { pipe.exec_async(&mut c).await }
                });
                bounded(futures::future::try_join_all(calls))
                    .await
                    .map(|_| ())
            }
        };
        if let Err(e) = sent {
            // The events are lost for every process; at least the listeners here learn it.
            tracing::warn!(error = %e, events = batch.len(), "publishing chat events to Redis failed");
            let mut sessions: Vec<SessionId> = batch
                .iter()
                .filter(|e| e.payload != END)
                .map(|e| e.session)
                .collect();
            sessions.sort_unstable();
            sessions.dedup();
            for s in &sessions {
                local.publish(s, ChatEvent::Resync);
            }
        }
        pending.done(batch.len());
        batch.clear();
    }
}

/// The receiving side: owns the pattern subscription and keeps it alive.
struct Receiver {
    /// One per node of the URL (one for a single server); `node` is the one in use.
    clients: Vec<Client>,
    node: usize,
    pattern: String,
    channel_prefix: String,
    local: Arc<LocalHub>,
    listening: Listening,
}

impl Receiver {
    async fn run(mut self, first: ::redis::aio::PubSub) {
        let mut subscription = Some(first);
        let mut backoff = MIN_BACKOFF;
        loop {
            let pubsub = match subscription.take() {
                Some(p) => p,
                None => match bounded(subscribe(&self.clients[self.node], &self.pattern)).await {
                    Ok(p) => {
                        tracing::info!("chat event subscription to Redis restored");
                        backoff = MIN_BACKOFF;
                        // Whatever was published while we were away is gone.
                        self.resync_listeners();
                        p
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, retry_in = ?backoff, "chat event subscription to Redis failed");
                        // On a cluster the next node may well be up while this one is not.
                        self.node = (self.node + 1) % self.clients.len();
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            self.pump(pubsub).await;
            tracing::warn!("chat event subscription to Redis lost; reconnecting");
        }
    }

    /// Forwards messages until the connection fails.
    async fn pump(&self, pubsub: ::redis::aio::PubSub) {
        let (mut sink, mut messages) = pubsub.split();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                msg = messages.next() => match msg {
                    Some(msg) => self.deliver(&msg),
                    None => return,
                },
                _ = ping.tick() => {
                    if bounded(sink.ping::<::redis::Value>()).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn deliver(&self, msg: &::redis::Msg) {
        let Some(session) = msg
            .get_channel_name()
            .strip_prefix(&self.channel_prefix)
            .and_then(|s| SessionId::parse(s).ok())
        else {
            return;
        };
        if msg.get_payload_bytes() == END.as_bytes() {
            self.local.end(&session);
            return;
        }
        match serde_json::from_slice::<ChatEvent>(msg.get_payload_bytes()) {
            Ok(event) => self.local.publish(&session, event),
            Err(e) => {
                tracing::warn!(session = %session.log_tag(), error = %e, "unreadable chat event from Redis")
            }
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
    use crate::store::redis_test_support::RedisServer;
    use std::time::Instant;

    /// After an outage: `feed` is told to resync, and an event published through `hub` then
    /// arrives, within `limit`. Events queued during the outage may come first.
    async fn resyncs_then_flows(
        hub: &RedisHub,
        s: &SessionId,
        feed: &mut BoxStream<'static, Feed>,
        limit: Duration,
    ) {
        let deadline = Instant::now() + limit;
        let mut resynced = false;
        loop {
            assert!(
                Instant::now() < deadline,
                "events did not flow again (resynced: {resynced})"
            );
            let e = event();
            hub.publish(s, e.clone());
            while let Ok(item) = tokio::time::timeout(Duration::from_millis(500), feed.next()).await
            {
                match item.expect("the feed stays open") {
                    Feed::Event(got) if *got == ChatEvent::Resync => resynced = true,
                    got if is(&got, &e) && resynced => return,
                    _ => {}
                }
            }
        }
    }

    #[tokio::test]
    async fn events_cross_processes_once_and_only_to_their_session() {
        let server = RedisServer::start();
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let a = RedisHub::connect(&server.url(), &prefix).await.unwrap();
        let b = RedisHub::connect(&server.url(), &prefix).await.unwrap();
        let (s, other) = (SessionId::random(), SessionId::random());
        let mut on_a = a.subscribe(&s);
        let mut on_b = b.subscribe(&s);
        let mut other_on_b = b.subscribe(&other);

        let e = event();
        a.publish(&s, e.clone());
        assert!(
            is(&next(&mut on_a).await, &e),
            "the publishing process's own listener gets it"
        );
        assert!(
            is(&next(&mut on_b).await, &e),
            "another process's listener gets it"
        );

        // Once each: the next thing either feed yields is the next event, not a copy.
        let marker = event();
        b.publish(&s, marker.clone());
        assert!(is(&next(&mut on_a).await, &marker));
        assert!(is(&next(&mut on_b).await, &marker));

        let for_other = event();
        a.publish(&other, for_other.clone());
        assert!(
            is(&next(&mut other_on_b).await, &for_other),
            "the other session saw nothing before its own event"
        );
    }

    /// On a cluster: events cross in order between processes subscribed on different
    /// nodes, and a process whose node dies moves to another, resyncs and hears again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_cluster_events_cross_in_order_and_survive_a_dead_node() {
        use crate::store::redis_test_support::RedisCluster;
        let mut cluster = RedisCluster::start();
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let url = cluster.url();
        let a = RedisHub::connect(&url, &prefix).await.unwrap();
        // B subscribes on the URL's second node, A on its first.
        let ports = cluster.ports();
        let rotated = format!(
            "redis+cluster://{}",
            ports[1..]
                .iter()
                .chain(&ports[..1])
                .map(|p| format!("127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let b = RedisHub::connect(&rotated, &prefix).await.unwrap();
        let sessions: Vec<SessionId> = (0..8).map(|_| SessionId::random()).collect();
        let mut feeds: Vec<_> = sessions.iter().map(|s| b.subscribe(s)).collect();
        let sent: Vec<Vec<ChatEvent>> = sessions
            .iter()
            .map(|s| {
                (0..10)
                    .map(|_| {
                        let e = event();
                        a.publish(s, e.clone());
                        e
                    })
                    .collect()
            })
            .collect();
        for (feed, events) in feeds.iter_mut().zip(&sent) {
            for e in events {
                let got = next(feed).await;
                assert!(
                    is(&got, e),
                    "in order, once, to its session: {got:?}, not {e:?}"
                );
            }
        }

        // B's node dies: B moves on, tells its listeners to resync, and hears again.
        cluster.kill(ports[1]);
        resyncs_then_flows(&a, &sessions[0], &mut feeds[0], Duration::from_secs(30)).await;
    }

    #[tokio::test]
    async fn an_end_closes_the_sessions_streams_in_every_process() {
        let server = RedisServer::start();
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let a = RedisHub::connect(&server.url(), &prefix).await.unwrap();
        let b = RedisHub::connect(&server.url(), &prefix).await.unwrap();
        let (s, other) = (SessionId::random(), SessionId::random());
        let mut on_a = a.subscribe(&s);
        let mut on_b = b.subscribe(&s);
        let mut other_on_b = b.subscribe(&other);
        a.end(&s);
        assert_eq!(next(&mut on_a).await, Feed::Ended);
        assert_eq!(
            next(&mut on_b).await,
            Feed::Ended,
            "the other process closed it too"
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listeners_resync_after_redis_comes_back() {
        let mut server = RedisServer::start();
        let port = server.port();
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let hub = RedisHub::connect(&server.url(), &prefix).await.unwrap();
        let s = SessionId::random();
        let mut feed = hub.subscribe(&s);

        server.kill();
        // Publishing into the void neither blocks nor panics.
        let started = Instant::now();
        for _ in 0..10 {
            hub.publish(&s, event());
        }
        assert!(started.elapsed() < Duration::from_millis(100));

        let _server = RedisServer::start_on(port);
        resyncs_then_flows(&hub, &s, &mut feed, Duration::from_secs(20)).await;
    }

    #[tokio::test]
    async fn listener_registrations_end_with_their_streams() {
        let server = RedisServer::start();
        let hub = RedisHub::connect(&server.url(), "confide-test")
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
