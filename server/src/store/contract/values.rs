//! The `Values` part of the contract: get, set, remove and keys, each within its session.

use super::*;

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

pub async fn counters_add_in_one_step(store: Arc<dyn TestStore>) {
    let (id, _) = claimed(&*store).await;
    let (other, _) = claimed(&*store).await;
    let adds: Vec<_> = (0..40)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.add(&id, "count", 1).await.unwrap() })
        })
        .collect();
    let mut sums = Vec::new();
    for a in adds {
        sums.push(a.await.unwrap());
    }
    sums.sort_unstable();
    assert_eq!(
        sums,
        (1..=40).collect::<Vec<i64>>(),
        "each add saw its own sum"
    );
    assert_eq!(store.add(&id, "count", -15).await, Ok(25));
    assert_eq!(
        store.get(&id, "count").await.unwrap().as_deref(),
        Some(&b"25"[..])
    );
    assert_eq!(store.add(&other, "count", 2).await, Ok(2), "per session");
    store.set(&id, "text", b"not a number").await.unwrap();
    assert!(store.add(&id, "text", 1).await.is_err());
    assert_eq!(
        store.get(&id, "text").await.unwrap().as_deref(),
        Some(&b"not a number"[..]),
        "a refused add changes nothing"
    );
    assert_eq!(
        store.add(&id, "bad key", 1).await,
        Err(StoreError::KeyInvalid)
    );
    let ghost = SessionId::random();
    assert_eq!(
        store.add(&ghost, "count", 1).await,
        Err(StoreError::NoSuchSession)
    );
    assert!(!store.exists_raw(&ghost).await.unwrap());
    // Two keys so far: "count" and "text".
    for i in 2..MAX_KEYS {
        store.set(&id, &format!("k{i}"), b"v").await.unwrap();
    }
    assert_eq!(
        store.add(&id, "one-too-many", 1).await,
        Err(StoreError::TooManyKeys)
    );
    assert_eq!(
        store.add(&id, "count", 1).await,
        Ok(26),
        "an existing counter still adds"
    );
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
