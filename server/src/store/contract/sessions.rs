//! The `Sessions` part of the contract: claim, verify, peek, delete, expiry, sweep and homes.

use super::*;

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

/// Built with an absolute lifetime of 3 s. A verify answered well inside it (counted from
/// before the claim) must find the session; one a stalled machine answered later shows
/// nothing either way. Likewise a claim of the ended id must be refused if it was asked
/// well inside the lifetime after the end (6 s from the claim); the store may forget the id
/// after that. A round in which none was on time runs again (at most three).
pub async fn absolute_expiry_ignores_activity(store: Arc<dyn TestStore>) {
    for _ in 0..3 {
        if let Some((id, p, before_claim)) = active_until_late(&*store).await {
            tokio::time::sleep(Duration::from_millis(2000)).await;
            if absolute_expiry_ended(&*store, &id, &p, before_claim).await {
                return;
            }
        }
    }
    panic!("three rounds in a row stalled past the lifetime they were checking");
}

/// A session kept active for about 1.2 s; `None` if no check of it came back in time.
async fn active_until_late(store: &dyn TestStore) -> Option<(SessionId, ProofHash, Instant)> {
    let before_claim = Instant::now();
    let (id, p) = claimed(store).await;
    let mut checked = 0;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let v = store.verify(&id, Some(&p)).await.unwrap();
        if before_claim.elapsed() < Duration::from_millis(2500) {
            assert!(matches!(v, Verify::Valid { .. }), "{v:?}");
            checked += 1;
        }
    }
    (checked > 0).then_some((id, p, before_claim))
}

/// Whether the ended id's claim was asked in time to count; if so, it was refused.
async fn absolute_expiry_ended(
    store: &dyn TestStore,
    id: &SessionId,
    p: &ProofHash,
    before_claim: Instant,
) -> bool {
    let (id, p) = (*id, *p);
    assert_eq!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Unknown);
    let asked = before_claim.elapsed();
    let claimed = store.claim(&id, &proof(), None).await.unwrap();
    if asked < Duration::from_millis(5500) {
        assert_eq!(claimed, Claim::Ended);
        true
    } else {
        false
    }
}

pub async fn sweep_removes_only_expired(store: Arc<dyn TestStore>) {
    let (old, _) = claimed(&*store).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (young, _) = claimed(&*store).await;
    assert!(store.sweep().await.unwrap() >= 1);
    assert!(!store.exists_raw(&old).await.unwrap());
    assert!(store.exists_raw(&young).await.unwrap());
}

pub async fn listing_walks_every_live_session_and_no_home(store: Arc<dyn TestStore>) {
    let home = SessionId::home("password", "listed");
    assert!(store.create_home(&home).await.unwrap());
    let mut live = std::collections::HashSet::new();
    for _ in 0..7 {
        live.insert(claimed(&*store).await.0);
    }
    let signed_in = SessionId::random();
    assert_eq!(
        store
            .claim(&signed_in, &proof(), Some(&home))
            .await
            .unwrap(),
        Claim::Won
    );
    live.insert(signed_in);
    let (gone, _) = claimed(&*store).await;
    assert!(store.delete(&gone).await.unwrap());

    let mut seen = std::collections::HashSet::new();
    let mut cursor = None;
    for _ in 0..100 {
        let (ids, next) = store.list_sessions(cursor.as_deref(), 3).await.unwrap();
        seen.extend(ids);
        cursor = next;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "the walk ends");
    assert_eq!(seen, live, "every live session, no home, nothing ended");
    assert_eq!(
        store.list_sessions(Some("not a cursor"), 3).await.unwrap(),
        (Vec::new(), None),
        "a foreign cursor ends the walk"
    );
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
    // The session began between `start` and `claimed_by`: it must be alive counting from the
    // first, and over counting from the second.
    let claimed_by = Instant::now();
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
    tokio::time::sleep(Duration::from_millis(2300).saturating_sub(claimed_by.elapsed())).await;
    assert_eq!(store.peek(&id).await.unwrap(), None, "expired means None");
    assert_eq!(store.verify(&id, Some(&p)).await.unwrap(), Verify::Unknown);
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

/// Built with a 2 s idle lifetime (absolute 60 s). Each session's expiry is noticed a
/// different way before its id is claimed again.
pub async fn an_expired_id_is_never_claimed_again(store: Arc<dyn TestStore>) {
    let h = home(&*store).await;
    // Each session's value is written as soon as it is claimed: on a busy machine the five
    // claims together can take longer than the idle lifetime, and an early one would expire
    // before a write that came after all of them. A machine stalled past the lifetime
    // between a claim and its write (seen under load, on the Redis Cluster) lets that one
    // expire first: another is claimed instead, since what follows needs each to have held
    // a value.
    let with_value = async |signed: bool| {
        for _ in 0..5 {
            let (id, proof) = if signed {
                signed_in(&*store, &h).await
            } else {
                claimed(&*store).await
            };
            match store.set(&id, "k", b"old").await {
                Ok(()) => return (id, proof),
                Err(StoreError::NoSuchSession) => {}
                Err(e) => panic!("writing a fresh session's value: {e:?}"),
            }
        }
        panic!("five sessions in a row expired before their first write");
    };
    let (by_claim, _) = with_value(false).await;
    let (by_sign_in, _) = with_value(true).await;
    let (by_verify, by_verify_proof) = with_value(false).await;
    let (by_read, _) = with_value(false).await;
    let (by_sweep, _) = with_value(false).await;
    // From the last write, which is the latest any of them was touched.
    tokio::time::sleep(Duration::from_millis(2200)).await;

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
    // With 1 s lifetimes, a stall of about a second on a busy machine (these tests run
    // beside a browser) can carry a check past the end it is about. Such a round shows
    // nothing either way and runs again; a round on time must pass every check.
    for abandoned in 0..3 {
        if ended_ids_round(&*store, abandoned).await {
            return;
        }
    }
    panic!(
        "three rounds in a row could not be checked: each stalled for about a second, or its \
         expired session was never swept"
    );
}

/// One round of `an_ended_id_is_forgotten_after_its_time`; false when a check came too late
/// to mean anything. An abandoned round's expired session may still be there to sweep.
async fn ended_ids_round(store: &dyn TestStore, abandoned: usize) -> bool {
    // Deleted at once, before anything else. All of it within 0.9 s of `first` (where its
    // lifetime began at the earliest) means it cannot have expired before its delete, and
    // is refused for a lifetime after its end.
    let first = Instant::now();
    let (deleted, _) = claimed(store).await;
    let set = store.set(&deleted, "k", b"old").await;
    let gone = store.delete(&deleted).await.unwrap();
    let again = store.claim(&deleted, &proof(), None).await.unwrap();
    if first.elapsed() >= Duration::from_millis(900) {
        return false;
    }
    set.unwrap();
    assert!(gone);
    assert_eq!(again, Claim::Ended);

    let claiming = Instant::now();
    let (expired, _) = claimed(store).await;
    // Both sessions began before this instant: the waits below count from it, so a slow
    // store call cannot leave them short of the ends they wait for.
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(start.elapsed())).await;
    // Swept once its lifetime is over by the store's own clock, which a stalled store
    // server may start late (Redis counts a key's lifetime from when it ran the claim).
    let mut swept = 0;
    while swept == 0 && claiming.elapsed() < Duration::from_millis(1700) {
        swept += store.sweep().await.unwrap();
        if swept == 0 {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    let refused = store.claim(&expired, &proof(), None).await.unwrap();
    // It ended a lifetime after its claim, which began after `claiming`, and is refused for
    // at least a lifetime after that.
    if swept == 0 || claiming.elapsed() >= Duration::from_millis(1900) {
        return false;
    }
    assert!(
        (1..=1 + abandoned).contains(&swept),
        "the expired session went, and nothing else (swept {swept}, {abandoned} rounds abandoned)"
    );
    assert_eq!(
        refused,
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
    true
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
