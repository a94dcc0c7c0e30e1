//! The behaviour every store must show. `store_contract_tests!(make)` expands to one test
//! per rule; `make` is `|Lifetimes| async { Arc<dyn SessionStore> }` for a fresh, empty store.

use app::{
    SessionId,
    server::{Claim, Lifetimes, Proof, ProofHash, SessionStore, StoreError, Verify, store::{MAX_KEYS, MAX_VALUE_LEN}},
};
use std::{sync::Arc, time::Duration};

pub fn long() -> Lifetimes {
    Lifetimes { idle: Duration::from_secs(3600), absolute: Duration::from_secs(7200) }
}

fn proof() -> ProofHash {
    Proof::generate().unwrap().hash()
}

async fn claimed(store: &dyn SessionStore) -> (SessionId, ProofHash) {
    let id = SessionId::random();
    let p = proof();
    assert_eq!(store.claim(&id, &p).await.unwrap(), Claim::Won);
    (id, p)
}

pub async fn claim_is_exclusive(store: Arc<dyn SessionStore>) {
    let id = SessionId::random();
    assert_eq!(store.claim(&id, &proof()).await.unwrap(), Claim::Won);
    assert_eq!(store.claim(&id, &proof()).await.unwrap(), Claim::Taken);
}

pub async fn concurrent_claims_have_one_winner(store: Arc<dyn SessionStore>) {
    let id = SessionId::random();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let store = store.clone();
            let p = proof();
            tokio::spawn(async move { (store.claim(&id, &p).await.unwrap(), p) })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (claim, p) = t.await.unwrap();
        if claim == Claim::Won {
            winners.push(p);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of 100 concurrent claims wins");
    assert!(matches!(store.verify(&id, Some(&winners[0])).await.unwrap(), Verify::Valid { .. }));
}

pub async fn verify_checks_the_proof(store: Arc<dyn SessionStore>) {
    let (id, p) = claimed(&*store).await;
    assert!(matches!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Valid { .. }));
    assert!(matches!(store.verify(&id, Some(&proof())).await.unwrap(), Verify::Denied { .. }));
    assert!(matches!(store.verify(&id, None).await.unwrap(), Verify::Denied { .. }));
    assert_eq!(store.verify(&SessionId::random(), Some(&p)).await.unwrap(), Verify::Unknown);
}

pub async fn values_are_scoped_to_their_session(store: Arc<dyn SessionStore>) {
    let (a, _) = claimed(&*store).await;
    let (b, _) = claimed(&*store).await;
    store.set(&a, "notes", b"alpha").await.unwrap();
    store.set(&b, "notes", b"beta").await.unwrap();
    assert_eq!(store.get(&a, "notes").await.unwrap().as_deref(), Some(&b"alpha"[..]));
    assert_eq!(store.get(&b, "notes").await.unwrap().as_deref(), Some(&b"beta"[..]));
    store.set(&a, "other", b"1").await.unwrap();
    assert_eq!(store.get(&b, "other").await.unwrap(), None);
    assert!(store.remove(&a, "other").await.unwrap());
    assert!(!store.remove(&a, "other").await.unwrap());
    store.clear(&a).await.unwrap();
    assert_eq!(store.get(&a, "notes").await.unwrap(), None);
    assert_eq!(store.get(&b, "notes").await.unwrap().as_deref(), Some(&b"beta"[..]), "clear is per session");
}

pub async fn writes_never_create_sessions(store: Arc<dyn SessionStore>) {
    let ghost = SessionId::random();
    assert_eq!(store.set(&ghost, "k", b"v").await, Err(StoreError::NoSuchSession));
    assert!(!store.exists_raw(&ghost).await.unwrap());
}

pub async fn limits_are_enforced(store: Arc<dyn SessionStore>) {
    let (id, _) = claimed(&*store).await;
    assert_eq!(store.set(&id, "", b"v").await, Err(StoreError::KeyInvalid));
    assert_eq!(store.set(&id, "bad key", b"v").await, Err(StoreError::KeyInvalid));
    assert_eq!(
        store.set(&id, "big", &vec![b'x'; MAX_VALUE_LEN + 1]).await,
        Err(StoreError::ValueTooLarge { len: MAX_VALUE_LEN + 1 })
    );
    store.set(&id, "big", &vec![b'x'; MAX_VALUE_LEN]).await.unwrap();
    for i in 1..MAX_KEYS {
        store.set(&id, &format!("k{i}"), b"v").await.unwrap();
    }
    assert_eq!(store.set(&id, "one-too-many", b"v").await, Err(StoreError::TooManyKeys));
    store.set(&id, "k1", b"overwrite is fine").await.unwrap();
    assert_eq!(store.get(&id, "one-too-many").await.unwrap(), None, "a refused write changes nothing");
}

pub async fn delete_removes_everything(store: Arc<dyn SessionStore>) {
    let (id, p) = claimed(&*store).await;
    store.set(&id, "notes", b"secret").await.unwrap();
    assert!(store.delete(&id).await.unwrap());
    assert!(!store.exists_raw(&id).await.unwrap());
    assert_eq!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Unknown);
    // The id may be claimed again and starts empty.
    let p2 = proof();
    assert_eq!(store.claim(&id, &p2).await.unwrap(), Claim::Won);
    assert_eq!(store.get(&id, "notes").await.unwrap(), None);
    assert!(matches!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Denied { .. }), "the old proof is dead");
}

pub async fn idle_expiry_slides_then_deletes(store: Arc<dyn SessionStore>) {
    let (id, p) = claimed(&*store).await;
    store.set(&id, "notes", b"x").await.unwrap();
    // Activity before the idle timeout keeps it alive past the first deadline.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(matches!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Valid { .. }));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(matches!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Valid { .. }));
    // Then silence past the idle timeout ends it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Unknown);
    assert!(!store.exists_raw(&id).await.unwrap(), "expired data is deleted");
    assert_eq!(store.claim(&id, &proof()).await.unwrap(), Claim::Won, "an expired id can be claimed afresh");
    assert_eq!(store.get(&id, "notes").await.unwrap(), None);
}

pub async fn absolute_expiry_ignores_activity(store: Arc<dyn SessionStore>) {
    let (id, p) = claimed(&*store).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(matches!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Valid { .. }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Unknown);
}

pub async fn sweep_removes_only_expired(store: Arc<dyn SessionStore>) {
    let (old, _) = claimed(&*store).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (young, _) = claimed(&*store).await;
    assert!(store.sweep().await.unwrap() >= 1);
    assert!(!store.exists_raw(&old).await.unwrap());
    assert!(store.exists_raw(&young).await.unwrap());
}

/// Expands to the whole contract suite for one backend.
macro_rules! store_contract_tests {
    ($make:expr) => {
        use $crate::store::contract as c;
        use app::server::Lifetimes;
        use std::time::Duration;

        async fn store_with(l: Lifetimes) -> Arc<dyn app::server::SessionStore> {
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
        async fn idle_expiry_slides_then_deletes() {
            c::idle_expiry_slides_then_deletes(store_with(Lifetimes { idle: Duration::from_secs(1), absolute: Duration::from_secs(60) }).await).await
        }
        #[tokio::test]
        async fn absolute_expiry_ignores_activity() {
            c::absolute_expiry_ignores_activity(store_with(Lifetimes { idle: Duration::from_secs(60), absolute: Duration::from_millis(2000) }).await).await
        }
        #[tokio::test]
        async fn sweep_removes_only_expired() {
            c::sweep_removes_only_expired(store_with(Lifetimes { idle: Duration::from_secs(1), absolute: Duration::from_secs(60) }).await).await
        }
    };
}
