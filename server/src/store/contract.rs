//! The behaviour every store must show. `store_contract_tests!(make)` expands to one test
//! per rule; `make` is `|Lifetimes| async { Arc<dyn TestStore> }` for a fresh, empty store.

use app::{
    SessionId,
    model::{Message, MessageId, MessageStatus, Role, Thread, ThreadId},
};

use confide_core::{
    Claim, Lifetimes, Probe, Proof, ProofHash, SessionStore, SessionTimes, StoreError, Verify,
    store::{MAX_KEYS, MAX_MESSAGES, MAX_THREADS, MAX_VALUE_LEN, ThreadTail},
};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

pub fn long() -> Lifetimes {
    Lifetimes {
        idle: Duration::from_secs(3600),
        absolute: Duration::from_secs(7200),
    }
}

fn proof() -> ProofHash {
    Proof::generate().unwrap().hash()
}

/// A backend as the contract sees it: the store the app uses, plus the probe that lets a
/// test see what is left of an id.
pub trait TestStore: SessionStore + Probe {}

impl<T: SessionStore + Probe> TestStore for T {}

async fn claimed(store: &dyn TestStore) -> (SessionId, ProofHash) {
    let id = SessionId::random();
    let p = proof();
    assert_eq!(store.claim(&id, &p, None).await.unwrap(), Claim::Won);
    (id, p)
}

pub async fn claim_is_exclusive(store: Arc<dyn TestStore>) {
    let id = SessionId::random();
    assert_eq!(store.claim(&id, &proof(), None).await.unwrap(), Claim::Won);
    assert_eq!(
        store.claim(&id, &proof(), None).await.unwrap(),
        Claim::Taken
    );
}

pub async fn concurrent_claims_have_one_winner(store: Arc<dyn TestStore>) {
    let id = SessionId::random();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let store = store.clone();
            let p = proof();
            tokio::spawn(async move { (store.claim(&id, &p, None).await.unwrap(), p) })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (claim, p) = t.await.unwrap();
        if claim == Claim::Won {
            winners.push(p);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 100 concurrent claims wins"
    );
    assert!(matches!(
        store.verify(&id, Some(&winners[0])).await.unwrap(),
        Verify::Valid { .. }
    ));
}

pub async fn verify_checks_the_proof(store: Arc<dyn TestStore>) {
    let (id, p) = claimed(&*store).await;
    assert!(matches!(
        store.verify(&id, Some(&p)).await.unwrap(),
        Verify::Valid { .. }
    ));
    assert!(matches!(
        store.verify(&id, Some(&proof())).await.unwrap(),
        Verify::Denied { .. }
    ));
    assert!(matches!(
        store.verify(&id, None).await.unwrap(),
        Verify::Denied { .. }
    ));
    assert_eq!(
        store.verify(&SessionId::random(), Some(&p)).await.unwrap(),
        Verify::Unknown
    );
}

pub async fn values_are_scoped_to_their_session(store: Arc<dyn TestStore>) {
    let (a, _) = claimed(&*store).await;
    let (b, _) = claimed(&*store).await;
    store.set(&a, "notes", b"alpha").await.unwrap();
    store.set(&b, "notes", b"beta").await.unwrap();
    assert_eq!(
        store.get(&a, "notes").await.unwrap().as_deref(),
        Some(&b"alpha"[..])
    );
    assert_eq!(
        store.get(&b, "notes").await.unwrap().as_deref(),
        Some(&b"beta"[..])
    );
    store.set(&a, "other", b"1").await.unwrap();
    assert_eq!(store.get(&b, "other").await.unwrap(), None);
    assert!(store.remove(&a, "other").await.unwrap());
    assert!(!store.remove(&a, "other").await.unwrap());
    assert!(store.remove(&a, "notes").await.unwrap());
    assert_eq!(store.get(&a, "notes").await.unwrap(), None);
    assert_eq!(
        store.get(&b, "notes").await.unwrap().as_deref(),
        Some(&b"beta"[..]),
        "a removal is per session"
    );
}

pub async fn writes_never_create_sessions(store: Arc<dyn TestStore>) {
    let ghost = SessionId::random();
    assert_eq!(
        store.set(&ghost, "k", b"v").await,
        Err(StoreError::NoSuchSession)
    );
    assert!(!store.exists_raw(&ghost).await.unwrap());
}

pub async fn limits_are_enforced(store: Arc<dyn TestStore>) {
    let (id, _) = claimed(&*store).await;
    assert_eq!(store.set(&id, "", b"v").await, Err(StoreError::KeyInvalid));
    assert_eq!(
        store.set(&id, "bad key", b"v").await,
        Err(StoreError::KeyInvalid)
    );
    assert_eq!(
        store.set(&id, "big", &vec![b'x'; MAX_VALUE_LEN + 1]).await,
        Err(StoreError::ValueTooLarge {
            len: MAX_VALUE_LEN + 1
        })
    );
    store
        .set(&id, "big", &vec![b'x'; MAX_VALUE_LEN])
        .await
        .unwrap();
    for i in 1..MAX_KEYS {
        store.set(&id, &format!("k{i}"), b"v").await.unwrap();
    }
    assert_eq!(
        store.set(&id, "one-too-many", b"v").await,
        Err(StoreError::TooManyKeys)
    );
    store.set(&id, "k1", b"overwrite is fine").await.unwrap();
    assert_eq!(
        store.get(&id, "one-too-many").await.unwrap(),
        None,
        "a refused write changes nothing"
    );
}

pub async fn delete_removes_everything(store: Arc<dyn TestStore>) {
    let (id, p) = claimed(&*store).await;
    store.set(&id, "notes", b"secret").await.unwrap();
    assert!(store.delete(&id).await.unwrap());
    assert!(!store.exists_raw(&id).await.unwrap());
    assert_eq!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Unknown);
    // The id is not claimed again, so nothing of the old session can reach its data.
    let p2 = proof();
    assert_eq!(store.claim(&id, &p2, None).await.unwrap(), Claim::Ended);
    assert_eq!(
        store.get(&id, "notes").await,
        Err(StoreError::NoSuchSession)
    );
    assert_eq!(
        store.verify(&id, Some(&p)).await.unwrap(),
        Verify::Unknown,
        "the old proof is dead"
    );
    assert_eq!(store.verify(&id, Some(&p2)).await.unwrap(), Verify::Unknown);
}

pub async fn idle_expiry_slides_then_deletes(store: Arc<dyn TestStore>) {
    let (id, p) = claimed(&*store).await;
    store.set(&id, "notes", b"x").await.unwrap();
    // Activity before the idle timeout (2 s) keeps it alive past the first deadline.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        store.verify(&id, Some(&p)).await.unwrap(),
        Verify::Valid { .. }
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        store.verify(&id, Some(&p)).await.unwrap(),
        Verify::Valid { .. }
    ));
    // Then silence past the idle timeout ends it.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Unknown);
    assert!(
        !store.exists_raw(&id).await.unwrap(),
        "expired data is deleted"
    );
    assert_eq!(
        store.claim(&id, &proof(), None).await.unwrap(),
        Claim::Ended,
        "an expired id is not claimed afresh"
    );
    assert_eq!(
        store.get(&id, "notes").await,
        Err(StoreError::NoSuchSession)
    );
}

pub async fn absolute_expiry_ignores_activity(store: Arc<dyn TestStore>) {
    let (id, p) = claimed(&*store).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(matches!(
            store.verify(&id, Some(&p)).await.unwrap(),
            Verify::Valid { .. }
        ));
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Unknown);
    assert_eq!(
        store.claim(&id, &proof(), None).await.unwrap(),
        Claim::Ended
    );
}

pub async fn sweep_removes_only_expired(store: Arc<dyn TestStore>) {
    let (old, _) = claimed(&*store).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (young, _) = claimed(&*store).await;
    assert!(store.sweep().await.unwrap() >= 1);
    assert!(!store.exists_raw(&old).await.unwrap());
    assert!(store.exists_raw(&young).await.unwrap());
}

fn thread(title: &str, at: i64) -> Thread {
    Thread {
        id: ThreadId::random(),
        title: title.into(),
        created_ms: at,
        updated_ms: at,
    }
}

fn message(thread: &Thread, role: Role, content: &str, at: i64) -> Message {
    Message {
        id: MessageId::random(),
        thread_id: thread.id,
        role,
        content: content.into(),
        created_ms: at,
        status: MessageStatus::Done,
        feedback: None,
        error: None,
    }
}

pub async fn threads_and_messages_are_scoped(store: Arc<dyn TestStore>) {
    let (a, _) = claimed(&*store).await;
    let (b, _) = claimed(&*store).await;
    let t = thread("A's thread", 1_000);
    store.create_thread(&a, &t).await.unwrap();
    let m = message(&t, Role::User, "A's secret", 2_000);
    assert!(store.put_message(&a, &m).await.unwrap());

    assert_eq!(
        store.list_threads(&a).await.unwrap(),
        vec![Thread {
            updated_ms: 2_000,
            ..t.clone()
        }]
    );
    let (got, msgs) = store.get_thread(&a, &t.id).await.unwrap().unwrap();
    assert_eq!(got.updated_ms, 2_000, "appending moves updated_ms");
    assert_eq!(msgs, vec![m.clone()]);

    // B knows both ids and can touch neither.
    assert!(store.list_threads(&b).await.unwrap().is_empty());
    assert_eq!(store.get_thread(&b, &t.id).await.unwrap(), None);
    assert_eq!(store.get_message(&b, &m.id).await.unwrap(), None);
    assert!(
        !store
            .update_thread(
                &b,
                &Thread {
                    title: "hijacked".into(),
                    ..t.clone()
                }
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_message(&b, &message(&t, Role::User, "injected", 3_000))
            .await
            .unwrap()
    );
    let mut overwrite = m.clone();
    overwrite.content = "overwritten".into();
    assert!(!store.put_message(&b, &overwrite).await.unwrap());
    assert_eq!(store.truncate_after(&b, &t.id, None).await.unwrap(), 0);
    assert!(!store.delete_thread(&b, &t.id).await.unwrap());

    let (_, msgs) = store.get_thread(&a, &t.id).await.unwrap().unwrap();
    assert_eq!(msgs, vec![m.clone()], "A's thread is untouched");
    assert_eq!(store.get_message(&a, &m.id).await.unwrap(), Some(m));
}

pub async fn messages_keep_order_replace_and_truncate(store: Arc<dyn TestStore>) {
    let (s, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&s, &t).await.unwrap();
    let ms: Vec<Message> = (0..5)
        .map(|i| {
            message(
                &t,
                if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                },
                &format!("m{i}"),
                10,
            )
        })
        .collect();
    for m in &ms {
        assert!(store.put_message(&s, m).await.unwrap());
    }
    let mut edited = ms[2].clone();
    edited.content = "m2 edited".into();
    edited.status = MessageStatus::Stopped;
    assert!(store.put_message(&s, &edited).await.unwrap());
    let (_, got) = store.get_thread(&s, &t.id).await.unwrap().unwrap();
    assert_eq!(
        got.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["m0", "m1", "m2 edited", "m3", "m4"]
    );
    assert_eq!(got[2].status, MessageStatus::Stopped);

    assert_eq!(
        store
            .truncate_after(&s, &t.id, Some(&ms[2].id))
            .await
            .unwrap(),
        2
    );
    let (_, got) = store.get_thread(&s, &t.id).await.unwrap().unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(store.get_message(&s, &ms[4].id).await.unwrap(), None);
    assert_eq!(store.truncate_after(&s, &t.id, None).await.unwrap(), 3);

    let mut renamed = t.clone();
    renamed.title = "renamed".into();
    assert!(store.update_thread(&s, &renamed).await.unwrap());
    assert_eq!(store.list_threads(&s).await.unwrap()[0].title, "renamed");
    assert!(store.delete_thread(&s, &t.id).await.unwrap());
    assert_eq!(store.get_thread(&s, &t.id).await.unwrap(), None);
    assert!(
        !store.put_message(&s, &ms[0]).await.unwrap(),
        "no messages without their thread"
    );
}

pub async fn a_turn_is_put_in_one_call(store: Arc<dyn TestStore>) {
    let (a, _) = claimed(&*store).await;
    let (b, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&a, &t).await.unwrap();
    let first = message(&t, Role::User, "question", 2_000);
    assert!(store.put_message(&a, &first).await.unwrap());

    let user = message(&t, Role::User, "next", 3_000);
    let mut reply = message(&t, Role::Assistant, "", 3_001);
    reply.status = MessageStatus::Streaming;
    assert!(
        store
            .put_messages(&a, &[user.clone(), reply.clone()])
            .await
            .unwrap()
    );
    let (got_t, got) = store.get_thread(&a, &t.id).await.unwrap().unwrap();
    assert_eq!(
        got.iter().map(|m| m.id).collect::<Vec<_>>(),
        [first.id, user.id, reply.id]
    );
    assert_eq!(got[2].status, MessageStatus::Streaming);
    assert_eq!(got_t.updated_ms, 3_001, "appending moves the thread's time");

    // A message already there is replaced in place, next to a new one.
    let mut done = reply.clone();
    done.content = "answer".into();
    done.status = MessageStatus::Done;
    let after = message(&t, Role::User, "more", 4_000);
    assert!(
        store
            .put_messages(&a, &[done.clone(), after.clone()])
            .await
            .unwrap()
    );
    let (_, got) = store.get_thread(&a, &t.id).await.unwrap().unwrap();
    assert_eq!(
        got.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["question", "next", "answer", "more"]
    );

    // Another session's thread: refused, and nothing lands on either side.
    let intruder = [
        message(&t, Role::User, "injected", 5_000),
        message(&t, Role::Assistant, "injected", 5_001),
    ];
    assert!(!store.put_messages(&b, &intruder).await.unwrap());
    assert!(store.get_thread(&b, &t.id).await.unwrap().is_none());
    assert_eq!(store.get_message(&b, &intruder[0].id).await.unwrap(), None);
    let (_, got) = store.get_thread(&a, &t.id).await.unwrap().unwrap();
    assert_eq!(got.len(), 4, "the owner's thread is untouched");

    // A missing thread for the first message stores nothing at all.
    let gone = thread("gone", 1);
    let mixed = [
        message(&gone, Role::User, "lost", 6_000),
        message(&t, Role::User, "kept?", 6_001),
    ];
    assert!(!store.put_messages(&a, &mixed).await.unwrap());
    assert_eq!(store.get_message(&a, &mixed[1].id).await.unwrap(), None);

    // At the limit a turn is refused whole: no half of it lands.
    let full = thread("full", 1);
    store.create_thread(&a, &full).await.unwrap();
    let fill: Vec<Message> = (0..MAX_MESSAGES - 1)
        .map(|i| message(&full, Role::User, "f", i as i64))
        .collect();
    assert!(store.put_messages(&a, &fill).await.unwrap());
    let over = [
        message(&full, Role::User, "q", 9_000),
        message(&full, Role::Assistant, "", 9_001),
    ];
    assert_eq!(
        store.put_messages(&a, &over).await,
        Err(StoreError::TooManyMessages)
    );
    let (_, got) = store.get_thread(&a, &full.id).await.unwrap().unwrap();
    assert_eq!(got.len(), MAX_MESSAGES - 1);
    assert_eq!(store.get_message(&a, &over[0].id).await.unwrap(), None);

    // A gone session is an error, as for one message.
    assert!(store.delete(&a).await.unwrap());
    assert_eq!(
        store
            .put_messages(&a, &[message(&t, Role::User, "x", 7_000)])
            .await,
        Err(StoreError::NoSuchSession)
    );
}

fn contents(ms: &[Message]) -> Vec<&str> {
    ms.iter().map(|m| m.content.as_str()).collect()
}

/// The tail and the count as `thread_tail` gives them, checked against the whole thread.
async fn tail_of(store: &dyn TestStore, s: &SessionId, t: &ThreadId, last: usize) -> ThreadTail {
    let tail = store.thread_tail(s, t, last).await.unwrap().unwrap();
    let (thread, all) = store.get_thread(s, t).await.unwrap().unwrap();
    assert_eq!(tail.thread, thread, "the tail's thread is the thread");
    assert_eq!(tail.count, all.len(), "the count is the thread's length");
    assert_eq!(
        tail.messages,
        all[all.len().saturating_sub(last)..],
        "the tail is the thread's end, in order"
    );
    tail
}

pub async fn a_thread_tail_is_its_last_messages(store: Arc<dyn TestStore>) {
    let (a, _) = claimed(&*store).await;
    let (b, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&a, &t).await.unwrap();
    let empty = tail_of(&*store, &a, &t.id, 5).await;
    assert_eq!((empty.messages.len(), empty.count), (0, 0));

    let ms: Vec<Message> = (0..7)
        .map(|i| message(&t, Role::User, &format!("m{i}"), 10 + i))
        .collect();
    assert!(store.put_message(&a, &ms[0]).await.unwrap());
    assert!(store.put_messages(&a, &ms[1..3]).await.unwrap());
    assert!(store.put_messages(&a, &ms[3..]).await.unwrap());
    for last in [0, 1, 3, 6, 7, 8, 1_000, usize::MAX] {
        tail_of(&*store, &a, &t.id, last).await;
    }
    let tail = tail_of(&*store, &a, &t.id, 3).await;
    assert_eq!(contents(&tail.messages), ["m4", "m5", "m6"]);
    assert_eq!(tail.count, 7);
    assert_eq!(
        tail.thread.updated_ms, 16,
        "appends moved the thread's time"
    );

    // A replaced message shows in place, and the count stays.
    let mut streaming = ms[6].clone();
    streaming.content = "m6 edited".into();
    streaming.status = MessageStatus::Stopped;
    assert!(store.put_message(&a, &streaming).await.unwrap());
    let tail = tail_of(&*store, &a, &t.id, 2).await;
    assert_eq!(contents(&tail.messages), ["m5", "m6 edited"]);
    assert_eq!(tail.messages[1].status, MessageStatus::Stopped);
    assert_eq!(tail.count, 7);

    // Only the session's own threads; a gone session is an error.
    assert_eq!(store.thread_tail(&b, &t.id, 3).await.unwrap(), None);
    assert_eq!(
        store.thread_tail(&a, &ThreadId::random(), 3).await.unwrap(),
        None
    );
    assert!(store.delete(&a).await.unwrap());
    assert_eq!(
        store.thread_tail(&a, &t.id, 3).await,
        Err(StoreError::NoSuchSession)
    );
}

pub async fn the_message_count_follows_every_change(store: Arc<dyn TestStore>) {
    let (a, _) = claimed(&*store).await;
    let (b, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&a, &t).await.unwrap();
    let ms: Vec<Message> = (0..6)
        .map(|i| message(&t, Role::User, &format!("m{i}"), 10 + i))
        .collect();
    assert!(store.put_messages(&a, &ms).await.unwrap());
    assert_eq!(tail_of(&*store, &a, &t.id, 2).await.count, 6);

    // Refused writes change nothing: another session's, a missing thread in the same turn.
    assert!(
        !store
            .put_message(&b, &message(&t, Role::User, "x", 20))
            .await
            .unwrap()
    );
    let gone = thread("gone", 1);
    let mixed = [
        message(&t, Role::User, "kept?", 21),
        message(&gone, Role::User, "lost", 22),
    ];
    assert!(!store.put_messages(&a, &mixed).await.unwrap());
    assert_eq!(tail_of(&*store, &a, &t.id, 2).await.count, 6);

    assert_eq!(
        store
            .truncate_after(&a, &t.id, Some(&ms[3].id))
            .await
            .unwrap(),
        2
    );
    assert_eq!(tail_of(&*store, &a, &t.id, 2).await.count, 4);
    assert_eq!(
        store
            .truncate_after(&a, &t.id, Some(&MessageId::random()))
            .await
            .unwrap(),
        0
    );
    assert_eq!(tail_of(&*store, &a, &t.id, 2).await.count, 4);
    assert!(
        store.put_message(&a, &ms[4]).await.unwrap(),
        "appended again"
    );
    assert_eq!(
        contents(&tail_of(&*store, &a, &t.id, 2).await.messages),
        ["m3", "m4"]
    );
    assert_eq!(store.truncate_after(&a, &t.id, None).await.unwrap(), 5);
    assert_eq!(tail_of(&*store, &a, &t.id, 2).await.count, 0);

    // At the limit: a refused turn leaves the count, one message fills the thread, and
    // room made by a truncation is room again.
    let fill: Vec<Message> = (0..MAX_MESSAGES - 1)
        .map(|i| message(&t, Role::User, "f", 100 + i as i64))
        .collect();
    assert!(store.put_messages(&a, &fill).await.unwrap());
    let turn = [
        message(&t, Role::User, "q", 9_000),
        message(&t, Role::Assistant, "", 9_001),
    ];
    assert_eq!(
        store.put_messages(&a, &turn).await,
        Err(StoreError::TooManyMessages)
    );
    assert_eq!(tail_of(&*store, &a, &t.id, 1).await.count, MAX_MESSAGES - 1);
    assert!(store.put_message(&a, &turn[0]).await.unwrap());
    assert_eq!(tail_of(&*store, &a, &t.id, 1).await.count, MAX_MESSAGES);
    assert_eq!(
        store.put_message(&a, &turn[1]).await,
        Err(StoreError::TooManyMessages)
    );
    let mut replaced = turn[0].clone();
    replaced.content = "q again".into();
    assert!(
        store.put_message(&a, &replaced).await.unwrap(),
        "a full thread still takes replacements"
    );
    let tail = tail_of(&*store, &a, &t.id, 1).await;
    assert_eq!(
        (tail.count, contents(&tail.messages)),
        (MAX_MESSAGES, vec!["q again"])
    );
    assert_eq!(
        store
            .truncate_after(&a, &t.id, Some(&fill[MAX_MESSAGES - 3].id))
            .await
            .unwrap(),
        2
    );
    assert!(store.put_messages(&a, &turn[..]).await.unwrap());
    assert_eq!(tail_of(&*store, &a, &t.id, 3).await.count, MAX_MESSAGES);

    // A deleted thread, or session, takes its count along.
    assert!(store.delete_thread(&a, &t.id).await.unwrap());
    assert_eq!(store.thread_tail(&a, &t.id, 1).await.unwrap(), None);
    let t2 = thread("t2", 2);
    store.create_thread(&a, &t2).await.unwrap();
    assert!(
        store
            .put_message(&a, &message(&t2, Role::User, "x", 3))
            .await
            .unwrap()
    );
    assert_eq!(tail_of(&*store, &a, &t2.id, 1).await.count, 1);
    assert!(store.delete(&a).await.unwrap());
    assert_eq!(
        store.thread_tail(&a, &t2.id, 1).await,
        Err(StoreError::NoSuchSession)
    );
}

/// One fixed run of appends, replacements and truncations, and what `thread_tail` showed
/// after each step (count, contents of the last three): every backend must show the same.
pub async fn tail_observations(store: Arc<dyn TestStore>) -> Vec<(usize, Vec<String>)> {
    let (s, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&s, &t).await.unwrap();
    let mut seen = Vec::new();
    let mut ms: Vec<Message> = Vec::new();
    for step in 0..40usize {
        match step % 7 {
            3 if ms.len() > 2 => {
                let keep = ms[ms.len() / 2].id;
                store.truncate_after(&s, &t.id, Some(&keep)).await.unwrap();
                let at = ms.iter().position(|m| m.id == keep).unwrap();
                ms.truncate(at + 1);
            }
            5 if !ms.is_empty() => {
                let mut m = ms.last().unwrap().clone();
                m.content = format!("{} edited {step}", m.content);
                assert!(store.put_message(&s, &m).await.unwrap());
                *ms.last_mut().unwrap() = m;
            }
            _ => {
                let turn = [
                    message(&t, Role::User, &format!("q{step}"), step as i64),
                    message(&t, Role::Assistant, &format!("a{step}"), step as i64),
                ];
                assert!(store.put_messages(&s, &turn).await.unwrap());
                ms.extend(turn);
            }
        }
        let tail = tail_of(&*store, &s, &t.id, 3).await;
        seen.push((
            tail.count,
            tail.messages.iter().map(|m| m.content.clone()).collect(),
        ));
    }
    seen
}

pub async fn threads_list_newest_first_and_are_limited(store: Arc<dyn TestStore>) {
    let (s, _) = claimed(&*store).await;
    for i in 0..MAX_THREADS {
        store
            .create_thread(&s, &thread(&format!("t{i}"), i as i64))
            .await
            .unwrap();
    }
    assert_eq!(
        store.create_thread(&s, &thread("too many", 0)).await,
        Err(StoreError::TooManyThreads)
    );
    let list = store.list_threads(&s).await.unwrap();
    assert_eq!(list.len(), MAX_THREADS);
    assert_eq!(list[0].title, format!("t{}", MAX_THREADS - 1));
}

pub async fn deleting_a_session_deletes_its_threads(store: Arc<dyn TestStore>) {
    let (s, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&s, &t).await.unwrap();
    store
        .put_message(&s, &message(&t, Role::User, "x", 2))
        .await
        .unwrap();
    assert!(store.delete(&s).await.unwrap());
    assert_eq!(store.claim(&s, &proof(), None).await.unwrap(), Claim::Ended);
    assert_eq!(
        store.list_threads(&s).await,
        Err(StoreError::NoSuchSession),
        "no claim brings the threads back"
    );
    assert_eq!(
        store.get_thread(&s, &t.id).await,
        Err(StoreError::NoSuchSession)
    );
}

/// A home id nobody else in the store uses.
fn fresh_home() -> SessionId {
    SessionId::home("test", &uuid::Uuid::new_v4().to_string())
}

async fn home(store: &dyn TestStore) -> SessionId {
    let h = fresh_home();
    assert!(store.create_home(&h).await.unwrap());
    h
}

async fn signed_in(store: &dyn TestStore, home: &SessionId) -> (SessionId, ProofHash) {
    let id = SessionId::random();
    let p = proof();
    assert_eq!(store.claim(&id, &p, Some(home)).await.unwrap(), Claim::Won);
    (id, p)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

pub async fn create_home_is_idempotent(store: Arc<dyn TestStore>) {
    let h = fresh_home();
    assert!(!store.exists_raw(&h).await.unwrap());
    assert!(
        store.create_home(&h).await.unwrap(),
        "the first call creates"
    );
    store.set(&h, "profile", b"alice").await.unwrap();
    let t = thread("kept", 1);
    store.create_thread(&h, &t).await.unwrap();
    let before = store.peek(&h).await.unwrap().expect("a home is live");
    assert!(
        !store.create_home(&h).await.unwrap(),
        "the second call finds it"
    );
    assert_eq!(
        store.get(&h, "profile").await.unwrap().as_deref(),
        Some(&b"alice"[..]),
        "and changes nothing"
    );
    assert_eq!(store.list_threads(&h).await.unwrap(), vec![t]);
    assert_eq!(store.peek(&h).await.unwrap(), Some(before));
    assert_eq!(before.home, None, "a home belongs to no home");
    assert_eq!(
        store.claim(&h, &proof(), None).await.unwrap(),
        Claim::Taken,
        "a home's id cannot be claimed as a session"
    );
    let session_id = SessionId::random();
    assert!(
        matches!(
            store.create_home(&session_id).await,
            Err(StoreError::Internal(_))
        ),
        "a browser-nameable id never becomes a home"
    );
    assert!(!store.exists_raw(&session_id).await.unwrap());
}

pub async fn concurrent_home_creations_have_one_winner(store: Arc<dyn TestStore>) {
    let h = fresh_home();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.create_home(&h).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        created += usize::from(t.await.unwrap());
    }
    assert_eq!(created, 1, "exactly one of 50 concurrent creations wins");
}

/// Built with short lifetimes (idle 1 s, absolute 2 s), which a home ignores.
pub async fn homes_outlive_every_lifetime(store: Arc<dyn TestStore>) {
    let h = home(&*store).await;
    store.set(&h, "profile", b"alice").await.unwrap();
    let t = thread("kept", 1_000);
    store.create_thread(&h, &t).await.unwrap();
    let m = message(&t, Role::User, "remember me", 2_000);
    assert!(store.put_message(&h, &m).await.unwrap());
    let created = store.peek(&h).await.unwrap().unwrap();
    let (plain, _) = claimed(&*store).await;
    let (bound, bound_proof) = signed_in(&*store, &h).await;

    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(
        store.sweep().await.unwrap(),
        2,
        "the two sessions went, the home did not"
    );
    assert!(!store.exists_raw(&plain).await.unwrap());
    assert!(!store.exists_raw(&bound).await.unwrap());
    assert_eq!(
        store.verify(&bound, Some(&bound_proof)).await.unwrap(),
        Verify::Unknown,
        "a signed-in session expires like any other"
    );

    assert!(store.exists_raw(&h).await.unwrap());
    assert_eq!(store.peek(&h).await.unwrap(), Some(created));
    assert_eq!(
        store.get(&h, "profile").await.unwrap().as_deref(),
        Some(&b"alice"[..])
    );
    assert_eq!(
        store.list_threads(&h).await.unwrap(),
        vec![Thread {
            updated_ms: 2_000,
            ..t.clone()
        }]
    );
    let (_, msgs) = store.get_thread(&h, &t.id).await.unwrap().unwrap();
    assert_eq!(msgs, vec![m.clone()]);
    assert_eq!(store.get_message(&h, &m.id).await.unwrap(), Some(m));
    for p in [Some(proof()), None] {
        assert_eq!(
            store.verify(&h, p.as_ref()).await.unwrap(),
            Verify::Denied {
                created_ms: created.created_ms
            },
            "no proof opens a home"
        );
    }
    assert_eq!(store.claim(&h, &proof(), None).await.unwrap(), Claim::Taken);
    assert!(!store.create_home(&h).await.unwrap());

    // Writes after the lifetimes are over still land, and still do not put a clock on it.
    store.set(&h, "later", b"1").await.unwrap();
    let t2 = thread("later", 3_000);
    store.create_thread(&h, &t2).await.unwrap();
    assert!(
        store
            .put_message(&h, &message(&t2, Role::User, "x", 3_000))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(store.sweep().await.unwrap(), 0);
    assert_eq!(
        store.get(&h, "later").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(store.list_threads(&h).await.unwrap().len(), 2);
}

pub async fn signed_in_sessions_report_their_home(store: Arc<dyn TestStore>) {
    let h = home(&*store).await;
    let (id, p) = signed_in(&*store, &h).await;
    assert!(matches!(
        store.verify(&id, Some(&p)).await.unwrap(),
        Verify::Valid { home: Some(got), .. } if got == h
    ));
    assert!(matches!(
        store.verify(&id, Some(&proof())).await.unwrap(),
        Verify::Denied { .. }
    ));
    assert_eq!(store.peek(&id).await.unwrap().unwrap().home, Some(h));
    assert_eq!(
        store.claim(&id, &proof(), Some(&h)).await.unwrap(),
        Claim::Taken,
        "signing in does not take over a live session"
    );
    assert_eq!(
        store.claim(&id, &proof(), None).await.unwrap(),
        Claim::Taken
    );

    let (anon, anon_proof) = claimed(&*store).await;
    assert!(matches!(
        store.verify(&anon, Some(&anon_proof)).await.unwrap(),
        Verify::Valid { home: None, .. }
    ));
    assert_eq!(store.peek(&anon).await.unwrap().unwrap().home, None);

    // A session's data stays its own: binding it to a home shares nothing.
    store.set(&h, "profile", b"alice").await.unwrap();
    assert_eq!(store.get(&id, "profile").await.unwrap(), None);
    assert!(store.keys(&id, "").await.unwrap().is_empty());
}

pub async fn signing_in_needs_an_existing_home(store: Arc<dyn TestStore>) {
    let missing = fresh_home();
    let id = SessionId::random();
    let p = proof();
    assert_eq!(
        store.claim(&id, &p, Some(&missing)).await,
        Err(StoreError::NoSuchSession)
    );
    assert!(!store.exists_raw(&id).await.unwrap(), "no session was made");
    assert!(!store.exists_raw(&missing).await.unwrap(), "nor a home");
    assert_eq!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Unknown);

    // A plain session is not a home.
    let (plain, _) = claimed(&*store).await;
    assert_eq!(
        store.claim(&id, &p, Some(&plain)).await,
        Err(StoreError::NoSuchSession)
    );
    assert!(!store.exists_raw(&id).await.unwrap());

    // Once the home exists, the same claim goes through.
    assert!(store.create_home(&missing).await.unwrap());
    assert_eq!(
        store.claim(&id, &p, Some(&missing)).await.unwrap(),
        Claim::Won
    );
}

/// Built with a 2 s idle lifetime.
pub async fn peek_neither_slides_nor_invents(store: Arc<dyn TestStore>) {
    assert_eq!(store.peek(&SessionId::random()).await.unwrap(), None);
    assert_eq!(store.peek(&fresh_home()).await.unwrap(), None);

    let start = Instant::now();
    let before = confide_core::store::now_ms();
    let (id, p) = claimed(&*store).await;
    let after = confide_core::store::now_ms();
    let SessionTimes {
        created_ms,
        last_seen_ms,
        home,
    } = store.peek(&id).await.unwrap().unwrap();
    assert!((before..=after).contains(&created_ms), "{created_ms}");
    assert!(last_seen_ms >= created_ms);
    assert_eq!(home, None);
    // Peeked often, never verified: the session still ends 2 s after it began.
    while start.elapsed() < Duration::from_millis(1500) {
        let times = store
            .peek(&id)
            .await
            .unwrap()
            .expect("alive before its idle end");
        assert_eq!(times.created_ms, created_ms);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_millis(2300).saturating_sub(start.elapsed())).await;
    assert_eq!(store.peek(&id).await.unwrap(), None, "expired means None");
    assert_eq!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Unknown);
}

pub async fn keys_filter_by_prefix_within_their_session(store: Arc<dyn TestStore>) {
    let (a, _) = claimed(&*store).await;
    let (b, _) = claimed(&*store).await;
    for k in ["chat.one", "chat.two", "pref", "a_b", "axb"] {
        store.set(&a, k, b"1").await.unwrap();
    }
    store.set(&b, "chat.theirs", b"1").await.unwrap();
    assert_eq!(
        sorted(store.keys(&a, "chat.").await.unwrap()),
        ["chat.one", "chat.two"]
    );
    assert_eq!(
        sorted(store.keys(&a, "").await.unwrap()),
        ["a_b", "axb", "chat.one", "chat.two", "pref"]
    );
    assert_eq!(store.keys(&a, "pref").await.unwrap(), ["pref"]);
    // Prefixes are plain text: no LIKE or glob wildcards.
    assert_eq!(store.keys(&a, "a_").await.unwrap(), ["a_b"]);
    for nothing in ["nope", "*", "%", "chat.?", "[a]", "pref.longer"] {
        assert!(
            store.keys(&a, nothing).await.unwrap().is_empty(),
            "{nothing}"
        );
    }
    assert_eq!(store.keys(&b, "chat.").await.unwrap(), ["chat.theirs"]);
    assert!(store.remove(&a, "pref").await.unwrap());
    assert!(store.keys(&a, "pref").await.unwrap().is_empty());
    for k in store.keys(&a, "").await.unwrap() {
        assert!(store.remove(&a, &k).await.unwrap());
    }
    assert!(store.keys(&a, "").await.unwrap().is_empty());
    assert_eq!(store.keys(&b, "").await.unwrap(), ["chat.theirs"]);
    assert_eq!(
        store.keys(&SessionId::random(), "").await,
        Err(StoreError::NoSuchSession)
    );

    let h = home(&*store).await;
    store.set(&h, "cred.password", b"hash").await.unwrap();
    assert_eq!(store.keys(&h, "cred.").await.unwrap(), ["cred.password"]);
}

pub async fn deleting_a_home_leaves_its_sessions(store: Arc<dyn TestStore>) {
    let h = home(&*store).await;
    store.set(&h, "profile", b"alice").await.unwrap();
    let t = thread("t", 1);
    store.create_thread(&h, &t).await.unwrap();
    let m = message(&t, Role::User, "x", 2);
    assert!(store.put_message(&h, &m).await.unwrap());
    let (id, p) = signed_in(&*store, &h).await;

    assert!(store.delete(&h).await.unwrap());
    assert!(!store.exists_raw(&h).await.unwrap());
    assert_eq!(store.peek(&h).await.unwrap(), None);
    assert_eq!(store.list_threads(&h).await, Err(StoreError::NoSuchSession));
    assert_eq!(
        store.get(&h, "profile").await,
        Err(StoreError::NoSuchSession)
    );
    assert_eq!(
        store.set(&h, "profile", b"again").await,
        Err(StoreError::NoSuchSession),
        "a write brings no home back"
    );
    assert!(
        matches!(
            store.verify(&id, Some(&p)).await.unwrap(),
            Verify::Valid { home: Some(got), .. } if got == h
        ),
        "the session still names its home; the app decides what that means"
    );
    assert_eq!(
        store.claim(&SessionId::random(), &proof(), Some(&h)).await,
        Err(StoreError::NoSuchSession)
    );

    assert!(
        store.create_home(&h).await.unwrap(),
        "the home can be made again"
    );
    assert_eq!(
        store.get(&h, "profile").await.unwrap(),
        None,
        "and starts empty"
    );
    assert!(store.list_threads(&h).await.unwrap().is_empty());
    assert_eq!(store.get_message(&h, &m.id).await.unwrap(), None);
}

/// What an ended id must look like whatever the backend: unknown to every read, and refused
/// to every claim, which creates nothing.
async fn assert_ended(store: &dyn TestStore, id: &SessionId, home: &SessionId, why: &str) {
    let p = proof();
    assert_eq!(
        store.claim(id, &p, None).await.unwrap(),
        Claim::Ended,
        "{why}"
    );
    assert_eq!(
        store.claim(id, &p, Some(home)).await.unwrap(),
        Claim::Ended,
        "{why}: signing in"
    );
    assert_eq!(
        store.verify(id, Some(&p)).await.unwrap(),
        Verify::Unknown,
        "{why}"
    );
    assert_eq!(store.peek(id).await.unwrap(), None, "{why}");
    assert!(
        !store.exists_raw(id).await.unwrap(),
        "{why}: a record remains"
    );
    assert_eq!(
        store.get(id, "k").await,
        Err(StoreError::NoSuchSession),
        "{why}"
    );
    assert_eq!(
        store.set(id, "k", b"v").await,
        Err(StoreError::NoSuchSession),
        "{why}"
    );
}

pub async fn a_deleted_id_is_never_claimed_again(store: Arc<dyn TestStore>) {
    let h = home(&*store).await;
    let (anon, anon_proof) = claimed(&*store).await;
    store.set(&anon, "k", b"old").await.unwrap();
    let (bound, _) = signed_in(&*store, &h).await;
    assert!(store.delete(&anon).await.unwrap());
    assert!(store.delete(&bound).await.unwrap());
    for _ in 0..2 {
        assert_ended(&*store, &anon, &h, "a deleted session").await;
        assert_ended(&*store, &bound, &h, "a deleted signed-in session").await;
    }
    assert_eq!(
        store.verify(&anon, Some(&anon_proof)).await.unwrap(),
        Verify::Unknown,
        "the old proof opens nothing"
    );
    assert!(
        !store.delete(&anon).await.unwrap(),
        "deleting it again finds nothing"
    );
    assert_ended(&*store, &anon, &h, "deleted twice").await;
    // An id that was never claimed is not affected by any of this.
    claimed(&*store).await;
}

/// Built with a 1 s idle lifetime (absolute 60 s). Each session's expiry is noticed a
/// different way before its id is claimed again.
pub async fn an_expired_id_is_never_claimed_again(store: Arc<dyn TestStore>) {
    let h = home(&*store).await;
    let (by_claim, _) = claimed(&*store).await;
    let (by_sign_in, _) = signed_in(&*store, &h).await;
    let (by_verify, by_verify_proof) = claimed(&*store).await;
    let (by_read, _) = claimed(&*store).await;
    let (by_sweep, _) = claimed(&*store).await;
    for id in [&by_claim, &by_sign_in, &by_verify, &by_read, &by_sweep] {
        store.set(id, "k", b"old").await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Nothing has looked at these since they expired: the claim is the first to.
    assert_eq!(
        store.claim(&by_claim, &proof(), None).await.unwrap(),
        Claim::Ended
    );
    assert_eq!(
        store.claim(&by_sign_in, &proof(), Some(&h)).await.unwrap(),
        Claim::Ended
    );
    assert_eq!(
        store
            .verify(&by_verify, Some(&by_verify_proof))
            .await
            .unwrap(),
        Verify::Unknown
    );
    assert_eq!(
        store.get(&by_read, "k").await,
        Err(StoreError::NoSuchSession)
    );
    store.sweep().await.unwrap();
    for (id, why) in [
        (&by_claim, "expiry noticed by a claim"),
        (&by_sign_in, "expiry noticed by a sign-in"),
        (&by_verify, "expiry noticed by verify"),
        (&by_read, "expiry noticed by a read"),
        (&by_sweep, "expiry noticed by the sweep"),
    ] {
        assert_ended(&*store, id, &h, why).await;
    }
}

/// Built with short lifetimes (idle 60 s, absolute 1 s). An ended id is refused for at least
/// an absolute lifetime after its end, and every backend forgets it by two absolute
/// lifetimes after its claim, once the sweep has run: the id can then be claimed anew.
pub async fn an_ended_id_is_forgotten_after_its_time(store: Arc<dyn TestStore>) {
    let start = Instant::now();
    let (deleted, _) = claimed(&*store).await;
    store.set(&deleted, "k", b"old").await.unwrap();
    let (expired, _) = claimed(&*store).await;
    assert!(store.delete(&deleted).await.unwrap());
    assert_eq!(
        store.claim(&deleted, &proof(), None).await.unwrap(),
        Claim::Ended
    );

    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(start.elapsed())).await;
    assert_eq!(store.sweep().await.unwrap(), 1, "the expired session went");
    assert_eq!(
        store.claim(&expired, &proof(), None).await.unwrap(),
        Claim::Ended,
        "a sweep does not forget an id as it ends it"
    );

    tokio::time::sleep(Duration::from_millis(2300).saturating_sub(start.elapsed())).await;
    store.sweep().await.unwrap();
    for id in [&deleted, &expired] {
        let p = proof();
        assert_eq!(store.claim(id, &p, None).await.unwrap(), Claim::Won);
        assert!(matches!(
            store.verify(id, Some(&p)).await.unwrap(),
            Verify::Valid { home: None, .. }
        ));
        assert_eq!(store.get(id, "k").await.unwrap(), None, "and starts empty");
    }
}

/// Built with short lifetimes (idle 1 s, absolute 2 s), which homes ignore, and which leave
/// nothing of a deleted home in the way of its creation.
pub async fn a_deleted_home_can_be_created_again(store: Arc<dyn TestStore>) {
    let h = home(&*store).await;
    for round in 0..3 {
        store.set(&h, "profile", b"x").await.unwrap();
        signed_in(&*store, &h).await;
        assert!(store.delete(&h).await.unwrap(), "round {round}");
        assert!(!store.exists_raw(&h).await.unwrap());
        store.sweep().await.unwrap();
        assert!(
            store.create_home(&h).await.unwrap(),
            "round {round}: the account is added back"
        );
        assert_eq!(store.get(&h, "profile").await.unwrap(), None);
        signed_in(&*store, &h).await;
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;
    store.sweep().await.unwrap();
    assert!(store.delete(&h).await.unwrap());
    assert!(store.create_home(&h).await.unwrap());
}

/// A delete and many claims of one live id, all at once: each claim either finds the session
/// (`Taken`) or finds it ended (`Ended`); none ever creates a new one.
pub async fn claims_racing_a_delete_never_win(store: Arc<dyn TestStore>) {
    let h = home(&*store).await;
    for _ in 0..20 {
        let (id, _) = claimed(&*store).await;
        let delete = {
            let store = store.clone();
            tokio::spawn(async move { store.delete(&id).await.unwrap() })
        };
        let claims: Vec<_> = (0..12)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let p = proof();
                    if i % 3 == 0 {
                        store.claim(&id, &p, Some(&h)).await.unwrap()
                    } else {
                        store.claim(&id, &p, None).await.unwrap()
                    }
                })
            })
            .collect();
        assert!(delete.await.unwrap(), "the delete found the session");
        for c in claims {
            let claim = c.await.unwrap();
            assert_ne!(claim, Claim::Won, "a claim won an id being deleted");
        }
        assert_ended(&*store, &id, &h, "after the race").await;
    }
}

/// Built with a 1 s idle lifetime (absolute 60 s). Claims, verifies and sweeps run while the
/// sessions expire; no claim wins an id, before its expiry or after.
pub async fn claims_racing_an_expiry_never_win(store: Arc<dyn TestStore>) {
    let h = home(&*store).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(claimed(&*store).await);
    }
    tokio::time::sleep(Duration::from_millis(850)).await;
    let until = Instant::now() + Duration::from_millis(400);
    let mut tasks = Vec::new();
    for (n, (id, _)) in ids.iter().copied().enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            while Instant::now() < until {
                let q = proof();
                outcomes.push(match n % 3 {
                    0 => store.claim(&id, &q, None).await.unwrap(),
                    1 => store.claim(&id, &q, Some(&h)).await.unwrap(),
                    _ => {
                        // Without the proof, so that it notices the expiry without sliding it.
                        store.verify(&id, None).await.unwrap();
                        store.claim(&id, &q, None).await.unwrap()
                    }
                });
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            outcomes
        }));
    }
    let sweeper = {
        let store = store.clone();
        tokio::spawn(async move {
            while Instant::now() < until {
                store.sweep().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    for t in tasks {
        let outcomes = t.await.unwrap();
        assert!(!outcomes.contains(&Claim::Won), "{outcomes:?}");
        assert_eq!(outcomes.last(), Some(&Claim::Ended), "{outcomes:?}");
    }
    sweeper.await.unwrap();
    for (id, _) in &ids {
        assert_ended(&*store, id, &h, "after the race").await;
    }
}

/// One step of a random workload over a few sessions (by index).
#[derive(Debug, Clone)]
pub enum Op {
    Claim(usize),
    /// Claims session `s` for the run's one home.
    SignIn(usize),
    Keys(usize),
    Verify {
        s: usize,
        right_proof: bool,
    },
    Set {
        s: usize,
        key: u8,
        value: u8,
    },
    Get {
        s: usize,
        key: u8,
    },
    Remove {
        s: usize,
        key: u8,
    },
    Delete(usize),
    Thread(usize),
    Message {
        s: usize,
        thread: usize,
    },
    /// Session `s` names session `other`'s latest thread or message.
    Poke {
        s: usize,
        other: usize,
    },
}

pub fn op_strategy(sessions: usize) -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let s = 0..sessions;
    prop_oneof![
        s.clone().prop_map(Op::Claim),
        s.clone().prop_map(Op::SignIn),
        (s.clone(), any::<bool>()).prop_map(|(s, right_proof)| Op::Verify { s, right_proof }),
        (s.clone(), 0u8..4, any::<u8>()).prop_map(|(s, key, value)| Op::Set { s, key, value }),
        (s.clone(), 0u8..4).prop_map(|(s, key)| Op::Get { s, key }),
        (s.clone(), 0u8..4).prop_map(|(s, key)| Op::Remove { s, key }),
        s.clone().prop_map(Op::Keys),
        s.clone().prop_map(Op::Delete),
        s.clone().prop_map(Op::Thread),
        (s.clone(), 0usize..3).prop_map(|(s, thread)| Op::Message { s, thread }),
        (s.clone(), s).prop_map(|(s, other)| Op::Poke { s, other }),
    ]
}

/// Runs `ops` against the store and a model of what each session should hold; fails if a
/// session ever observes a value, thread or message that is not its own, or loses its own.
pub async fn random_operations_never_cross_sessions(
    store: Arc<dyn TestStore>,
    sessions: usize,
    ops: Vec<Op>,
) {
    use std::collections::HashMap;
    struct S {
        id: SessionId,
        proof: ProofHash,
        live: bool,
        /// Was live once and was deleted: its id is never claimed again.
        ended: bool,
        home: Option<SessionId>,
        kv: HashMap<String, Vec<u8>>,
        threads: Vec<Thread>,
        messages: Vec<Message>,
    }
    // Values carry their owner's index, so a cross-read is visible in the value itself.
    let mut model: Vec<S> = (0..sessions)
        .map(|_| S {
            id: SessionId::random(),
            proof: proof(),
            live: false,
            ended: false,
            home: None,
            kv: HashMap::new(),
            threads: vec![],
            messages: vec![],
        })
        .collect();
    // The sessions' values must never show up in the home they sign in to, nor its in them.
    let the_home = home(&*store).await;
    store.set(&the_home, "k0", b"home").await.unwrap();
    let expected_claim = |m: &S| match (m.live, m.ended) {
        (true, _) => Claim::Taken,
        (false, true) => Claim::Ended,
        (false, false) => Claim::Won,
    };
    for op in ops {
        match op {
            Op::Claim(i) => {
                let claim = store
                    .claim(&model[i].id, &model[i].proof, None)
                    .await
                    .unwrap();
                assert_eq!(claim, expected_claim(&model[i]), "claim of session {i}");
                if claim == Claim::Won {
                    model[i].home = None;
                    model[i].live = true;
                }
            }
            Op::SignIn(i) => {
                let claim = store
                    .claim(&model[i].id, &model[i].proof, Some(&the_home))
                    .await
                    .unwrap();
                assert_eq!(claim, expected_claim(&model[i]), "sign-in of session {i}");
                if claim == Claim::Won {
                    model[i].home = Some(the_home);
                    model[i].live = true;
                }
            }
            Op::Keys(s) => match store.keys(&model[s].id, "k").await {
                Ok(keys) => {
                    let mut want: Vec<String> = model[s].kv.keys().cloned().collect();
                    want.sort();
                    assert_eq!(sorted(keys), want, "session {s}'s keys");
                }
                Err(StoreError::NoSuchSession) => assert!(!model[s].live),
                Err(e) => panic!("keys: {e}"),
            },
            Op::Verify { s, right_proof } => {
                let p = if right_proof { model[s].proof } else { proof() };
                let got = store.verify(&model[s].id, Some(&p)).await.unwrap();
                match (model[s].live, right_proof) {
                    (false, _) => assert_eq!(got, Verify::Unknown),
                    (true, true) => match got {
                        Verify::Valid { home, .. } => {
                            assert_eq!(home, model[s].home, "session {s}'s home")
                        }
                        other => panic!("session {s}: {other:?}"),
                    },
                    (true, false) => assert!(matches!(got, Verify::Denied { .. })),
                }
            }
            Op::Set { s, key, value } => {
                let k = format!("k{key}");
                let v = vec![s as u8, value];
                match store.set(&model[s].id, &k, &v).await {
                    Ok(()) => {
                        assert!(model[s].live);
                        model[s].kv.insert(k, v);
                    }
                    Err(StoreError::NoSuchSession) => assert!(!model[s].live),
                    Err(e) => panic!("set: {e}"),
                }
            }
            Op::Get { s, key } => {
                let k = format!("k{key}");
                match store.get(&model[s].id, &k).await {
                    Ok(v) => {
                        if let Some(v) = &v {
                            assert_eq!(
                                v[0] as usize, s,
                                "session {s} read session {}'s value",
                                v[0]
                            );
                        }
                        assert_eq!(v.as_ref(), model[s].kv.get(&k), "session {s} key {k}");
                    }
                    Err(StoreError::NoSuchSession) => assert!(!model[s].live),
                    Err(e) => panic!("get: {e}"),
                }
            }
            Op::Remove { s, key } => {
                let k = format!("k{key}");
                match store.remove(&model[s].id, &k).await {
                    Ok(existed) => assert_eq!(existed, model[s].kv.remove(&k).is_some()),
                    Err(StoreError::NoSuchSession) => assert!(!model[s].live),
                    Err(e) => panic!("remove: {e}"),
                }
            }
            Op::Delete(s) => {
                assert_eq!(store.delete(&model[s].id).await.unwrap(), model[s].live);
                let m = &mut model[s];
                m.ended |= m.live;
                m.live = false;
                m.home = None;
                m.kv.clear();
                m.threads.clear();
                m.messages.clear();
                m.proof = proof();
            }
            Op::Thread(s) => {
                let t = thread(&format!("s{s}"), 1);
                match store.create_thread(&model[s].id, &t).await {
                    Ok(()) => model[s].threads.push(t),
                    Err(StoreError::NoSuchSession) => assert!(!model[s].live),
                    Err(e) => panic!("create_thread: {e}"),
                }
            }
            Op::Message { s, thread: n } => {
                let Some(t) = model[s]
                    .threads
                    .get(n % model[s].threads.len().max(1))
                    .cloned()
                else {
                    continue;
                };
                let m = message(&t, Role::User, &format!("s{s}"), 2);
                match store.put_message(&model[s].id, &m).await {
                    Ok(true) => model[s].messages.push(m),
                    Ok(false) => panic!("session {s}'s own thread was not found"),
                    Err(StoreError::NoSuchSession) => assert!(!model[s].live),
                    Err(e) => panic!("put_message: {e}"),
                }
            }
            Op::Poke { s, other } if s != other => {
                if let Some(t) = model[other].threads.last()
                    && let Ok(got) = store.get_thread(&model[s].id, &t.id).await
                {
                    assert_eq!(got, None, "session {s} reached session {other}'s thread");
                }
                if let Some(m) = model[other].messages.last()
                    && let Ok(got) = store.get_message(&model[s].id, &m.id).await
                {
                    assert_eq!(got, None, "session {s} reached session {other}'s message");
                }
            }
            Op::Poke { .. } => {}
        }
    }
    assert_eq!(store.keys(&the_home, "").await.unwrap(), ["k0"]);
    assert!(matches!(
        store.verify(&the_home, None).await.unwrap(),
        Verify::Denied { .. }
    ));
    // Finally every live session holds exactly its own threads and messages.
    for (i, m) in model.iter().enumerate().filter(|(_, m)| m.live) {
        let threads = store.list_threads(&m.id).await.unwrap();
        assert_eq!(threads.len(), m.threads.len(), "session {i}'s threads");
        assert!(threads.iter().all(|t| t.title == format!("s{i}")));
        for t in &threads {
            let (_, msgs) = store.get_thread(&m.id, &t.id).await.unwrap().unwrap();
            assert!(
                msgs.iter().all(|x| x.content == format!("s{i}")),
                "session {i} holds a foreign message"
            );
        }
    }
}

/// Expands to the whole contract suite for one backend.
macro_rules! store_contract_tests {
    ($make:expr) => {
        use $crate::store::contract as c;
        use confide_core::Lifetimes;

        async fn store_with(l: Lifetimes) -> Arc<dyn c::TestStore> {
            #[allow(clippy::redundant_closure_call)]
            ($make)(l).await
        }

        #[tokio::test]
        async fn claim_is_exclusive() { c::claim_is_exclusive(store_with(c::long()).await).await }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_claims_have_one_winner() { c::concurrent_claims_have_one_winner(store_with(c::long()).await).await }
        #[tokio::test]
        async fn verify_checks_the_proof() { c::verify_checks_the_proof(store_with(c::long()).await).await }
        #[tokio::test]
        async fn values_are_scoped_to_their_session() { c::values_are_scoped_to_their_session(store_with(c::long()).await).await }
        #[tokio::test]
        async fn writes_never_create_sessions() { c::writes_never_create_sessions(store_with(c::long()).await).await }
        #[tokio::test]
        async fn limits_are_enforced() { c::limits_are_enforced(store_with(c::long()).await).await }
        #[tokio::test]
        async fn delete_removes_everything() { c::delete_removes_everything(store_with(c::long()).await).await }
        #[tokio::test]
        async fn threads_and_messages_are_scoped() { c::threads_and_messages_are_scoped(store_with(c::long()).await).await }
        #[tokio::test]
        async fn messages_keep_order_replace_and_truncate() { c::messages_keep_order_replace_and_truncate(store_with(c::long()).await).await }
        #[tokio::test]
        async fn a_turn_is_put_in_one_call() { c::a_turn_is_put_in_one_call(store_with(c::long()).await).await }
        #[tokio::test]
        async fn a_thread_tail_is_its_last_messages() { c::a_thread_tail_is_its_last_messages(store_with(c::long()).await).await }
        #[tokio::test]
        async fn the_message_count_follows_every_change() { c::the_message_count_follows_every_change(store_with(c::long()).await).await }
        #[tokio::test]
        async fn threads_list_newest_first_and_are_limited() { c::threads_list_newest_first_and_are_limited(store_with(c::long()).await).await }
        #[tokio::test]
        async fn deleting_a_session_deletes_its_threads() { c::deleting_a_session_deletes_its_threads(store_with(c::long()).await).await }
        #[tokio::test]
        async fn create_home_is_idempotent() { c::create_home_is_idempotent(store_with(c::long()).await).await }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_home_creations_have_one_winner() { c::concurrent_home_creations_have_one_winner(store_with(c::long()).await).await }
        #[tokio::test]
        async fn signed_in_sessions_report_their_home() { c::signed_in_sessions_report_their_home(store_with(c::long()).await).await }
        #[tokio::test]
        async fn signing_in_needs_an_existing_home() { c::signing_in_needs_an_existing_home(store_with(c::long()).await).await }
        #[tokio::test]
        async fn keys_filter_by_prefix_within_their_session() { c::keys_filter_by_prefix_within_their_session(store_with(c::long()).await).await }
        #[tokio::test]
        async fn deleting_a_home_leaves_its_sessions() { c::deleting_a_home_leaves_its_sessions(store_with(c::long()).await).await }
        #[test]
        fn random_operations_never_cross_sessions() {
            use proptest::prelude::*;
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let config = ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() };
            proptest!(config, |(ops in proptest::collection::vec(c::op_strategy(3), 1..60))| {
                rt.block_on(async {
                    let store = store_with(c::long()).await;
                    c::random_operations_never_cross_sessions(store, 3, ops).await;
                });
            });
        }
        #[tokio::test]
        async fn idle_expiry_slides_then_deletes() {
            c::idle_expiry_slides_then_deletes(store_with(Lifetimes { idle: ::std::time::Duration::from_secs(2), absolute: ::std::time::Duration::from_secs(60) }).await).await
        }
        #[tokio::test]
        async fn absolute_expiry_ignores_activity() {
            c::absolute_expiry_ignores_activity(store_with(Lifetimes { idle: ::std::time::Duration::from_secs(60), absolute: ::std::time::Duration::from_millis(3000) }).await).await
        }
        #[tokio::test]
        async fn homes_outlive_every_lifetime() {
            c::homes_outlive_every_lifetime(store_with(Lifetimes { idle: ::std::time::Duration::from_secs(1), absolute: ::std::time::Duration::from_secs(2) }).await).await
        }
        #[tokio::test]
        async fn peek_neither_slides_nor_invents() {
            c::peek_neither_slides_nor_invents(store_with(Lifetimes { idle: ::std::time::Duration::from_secs(2), absolute: ::std::time::Duration::from_secs(60) }).await).await
        }
        #[tokio::test]
        async fn a_deleted_id_is_never_claimed_again() { c::a_deleted_id_is_never_claimed_again(store_with(c::long()).await).await }
        #[tokio::test]
        async fn an_expired_id_is_never_claimed_again() {
            c::an_expired_id_is_never_claimed_again(store_with(Lifetimes { idle: ::std::time::Duration::from_secs(1), absolute: ::std::time::Duration::from_secs(60) }).await).await
        }
        #[tokio::test]
        async fn an_ended_id_is_forgotten_after_its_time() {
            c::an_ended_id_is_forgotten_after_its_time(store_with(Lifetimes { idle: ::std::time::Duration::from_secs(60), absolute: ::std::time::Duration::from_secs(1) }).await).await
        }
        #[tokio::test]
        async fn a_deleted_home_can_be_created_again() {
            c::a_deleted_home_can_be_created_again(store_with(Lifetimes { idle: ::std::time::Duration::from_secs(1), absolute: ::std::time::Duration::from_secs(2) }).await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn claims_racing_a_delete_never_win() { c::claims_racing_a_delete_never_win(store_with(c::long()).await).await }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn claims_racing_an_expiry_never_win() {
            c::claims_racing_an_expiry_never_win(store_with(Lifetimes { idle: ::std::time::Duration::from_secs(1), absolute: ::std::time::Duration::from_secs(60) }).await).await
        }
        #[tokio::test]
        async fn sweep_removes_only_expired() {
            c::sweep_removes_only_expired(store_with(Lifetimes { idle: ::std::time::Duration::from_secs(1), absolute: ::std::time::Duration::from_secs(60) }).await).await
        }
    };
}
