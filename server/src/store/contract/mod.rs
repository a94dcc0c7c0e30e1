//! The behaviour every store must show. `store_contract_tests!(make)` expands to one test
//! per rule; `make` is `|Lifetimes| async { Arc<dyn TestStore> }` for a fresh, empty store.

use app::{
    SessionId,
    model::{
        Action, ActionId, Message, MessageId, MessageStatus, Role, Step, StepId, StepKind,
        StepStatus, Thread, ThreadId,
    },
};

use confide_core::{
    Claim, Lifetimes, Probe, Proof, ProofHash, SessionStore, SessionTimes, StoreError, Verify,
    store::{MAX_KEYS, MAX_MESSAGES, MAX_THREADS, MAX_VALUE_LEN, ThreadTail},
};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

mod chats;
mod sessions;
mod values;

pub use chats::*;
pub use sessions::*;
pub use values::*;

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

fn thread(title: &str, at: i64) -> Thread {
    Thread {
        id: ThreadId::random(),
        title: title.into(),
        created_ms: at,
        updated_ms: at,
    }
}

pub(crate) fn message(thread: &Thread, role: Role, content: &str, at: i64) -> Message {
    Message {
        id: MessageId::random(),
        thread_id: thread.id,
        role,
        content: content.into(),
        created_ms: at,
        status: MessageStatus::Done,
        feedback: None,
        error: None,
        steps: Vec::new(),
        actions: Vec::new(),
        attachments: Vec::new(),
    }
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
        /// `Sessions`: claim, verify, peek, delete, expiry, sweep, homes.
        mod sessions {
            use super::*;
            #[tokio::test]
            async fn claim_is_exclusive() { c::claim_is_exclusive(store_with(c::long()).await).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_claims_have_one_winner() { c::concurrent_claims_have_one_winner(store_with(c::long()).await).await }
            #[tokio::test]
            async fn verify_checks_the_proof() { c::verify_checks_the_proof(store_with(c::long()).await).await }
            #[tokio::test]
            async fn delete_removes_everything() { c::delete_removes_everything(store_with(c::long()).await).await }
            #[tokio::test]
            async fn listing_walks_every_live_session_and_no_home() { c::listing_walks_every_live_session_and_no_home(store_with(c::long()).await).await }
            #[tokio::test]
            async fn create_home_is_idempotent() { c::create_home_is_idempotent(store_with(c::long()).await).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_home_creations_have_one_winner() { c::concurrent_home_creations_have_one_winner(store_with(c::long()).await).await }
            #[tokio::test]
            async fn signed_in_sessions_report_their_home() { c::signed_in_sessions_report_their_home(store_with(c::long()).await).await }
            #[tokio::test]
            async fn signing_in_needs_an_existing_home() { c::signing_in_needs_an_existing_home(store_with(c::long()).await).await }
            #[tokio::test]
            async fn deleting_a_home_leaves_its_sessions() { c::deleting_a_home_leaves_its_sessions(store_with(c::long()).await).await }
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
                c::an_expired_id_is_never_claimed_again(store_with(Lifetimes { idle: ::std::time::Duration::from_secs(2), absolute: ::std::time::Duration::from_secs(60) }).await).await
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
        }
        /// `Values`: get, set, remove, keys.
        mod values {
            use super::*;
            #[tokio::test]
            async fn values_are_scoped_to_their_session() { c::values_are_scoped_to_their_session(store_with(c::long()).await).await }
            #[tokio::test]
            async fn writes_never_create_sessions() { c::writes_never_create_sessions(store_with(c::long()).await).await }
            #[tokio::test]
            async fn limits_are_enforced() { c::limits_are_enforced(store_with(c::long()).await).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn counters_add_in_one_step() { c::counters_add_in_one_step(store_with(c::long()).await).await }
            #[tokio::test]
            async fn keys_filter_by_prefix_within_their_session() { c::keys_filter_by_prefix_within_their_session(store_with(c::long()).await).await }
        }
        /// `Chats`: threads and messages.
        mod chats {
            use super::*;
            #[tokio::test]
            async fn threads_and_messages_are_scoped() { c::threads_and_messages_are_scoped(store_with(c::long()).await).await }
            #[tokio::test]
            async fn messages_keep_order_replace_and_truncate() { c::messages_keep_order_replace_and_truncate(store_with(c::long()).await).await }
            #[tokio::test]
            async fn a_finished_message_never_streams_again() { c::a_finished_message_never_streams_again(store_with(c::long()).await).await }
            #[tokio::test]
            async fn a_replacement_never_brings_back_a_dropped_message() { c::a_replacement_never_brings_back_a_dropped_message(store_with(c::long()).await).await }
            #[tokio::test]
            async fn a_turn_is_put_in_one_call() { c::a_turn_is_put_in_one_call(store_with(c::long()).await).await }
            #[tokio::test]
            async fn a_turn_follows_only_the_end_it_read() { c::a_turn_follows_only_the_end_it_read(store_with(c::long()).await).await }
            #[tokio::test]
            async fn a_thread_tail_is_its_last_messages() { c::a_thread_tail_is_its_last_messages(store_with(c::long()).await).await }
            #[tokio::test]
            async fn the_message_count_follows_every_change() { c::the_message_count_follows_every_change(store_with(c::long()).await).await }
            #[tokio::test]
            async fn threads_list_newest_first_and_are_limited() { c::threads_list_newest_first_and_are_limited(store_with(c::long()).await).await }
            #[tokio::test]
            async fn steps_and_actions_are_kept_with_their_message() { c::steps_and_actions_are_kept_with_their_message(store_with(c::long()).await).await }
            #[tokio::test]
            async fn deleting_a_session_deletes_its_threads() { c::deleting_a_session_deletes_its_threads(store_with(c::long()).await).await }
        }
    };
}
