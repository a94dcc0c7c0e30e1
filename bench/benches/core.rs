//! Micro-benchmarks of the hot path: parsing a session id, the guard's verification of a
//! request, and store lookups as the number of sessions grows (they must stay flat).

use app::SessionId;

use confide_core::{GuardConfig, Lifetimes, Proof, SessionStore, Sessions, Values, guard};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use server::MemoryStore;
use std::{hint::black_box, sync::Arc, time::Duration};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn parse(c: &mut Criterion) {
    let id = SessionId::random().as_string();
    c.bench_function("session_id_parse_valid", |b| {
        b.iter(|| SessionId::parse(black_box(&id)))
    });
    c.bench_function("session_id_parse_invalid", |b| {
        b.iter(|| SessionId::parse(black_box("0B3E5C1E-8F2A-4C6D-9E7F-1A2B3C4D5E6F")))
    });
}

/// A store holding `n` sessions, and the id + proof cookie of one of them.
fn populated(rt: &tokio::runtime::Runtime, n: usize) -> (Arc<MemoryStore>, SessionId, String) {
    let store = Arc::new(MemoryStore::new(Lifetimes::default()));
    rt.block_on(async {
        let mut last = None;
        for _ in 0..n {
            let id = SessionId::random();
            let proof = Proof::generate().unwrap();
            store.claim(&id, &proof.hash(), None).await.unwrap();
            last = Some((id, proof.encode()));
        }
        let (id, cookie) = last.unwrap();
        (store, id, cookie)
    })
}

fn store_lookups(c: &mut Criterion) {
    let rt = rt();
    let mut group = c.benchmark_group("memory_store_verify");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    for n in [1_000usize, 100_000, 1_000_000] {
        let (store, id, cookie) = populated(&rt, n);
        let hash = Proof::hash_cookie_value(&cookie).unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                rt.block_on(store.verify(black_box(&id), Some(&hash)))
                    .unwrap()
            })
        });
        drop(store);
    }
    group.finish();

    let mut group = c.benchmark_group("memory_store_get");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    for n in [1_000usize, 100_000, 1_000_000] {
        let (store, id, _) = populated(&rt, n);
        rt.block_on(store.set(&id, "notes", b"{\"text\":\"hello\"}"))
            .unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| rt.block_on(store.get(black_box(&id), "notes")).unwrap())
        });
        drop(store);
    }
    group.finish();
}

fn guard_check(c: &mut Criterion) {
    let rt = rt();
    let (store, id, cookie) = populated(&rt, 100_000);
    let store: Arc<dyn SessionStore> = store;
    let cfg = GuardConfig {
        lifetimes: Lifetimes::default(),
        secure_cookies: true,
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("x-confide-session", id.as_string().parse().unwrap());
    headers.insert(
        "cookie",
        format!(
            "__Host-confide_sid={}; __Host-confide_proof={cookie}",
            id.as_string()
        )
        .parse()
        .unwrap(),
    );
    c.bench_function("guard_check_verified_request", |b| {
        b.iter(|| {
            rt.block_on(guard::check(
                &store,
                &cfg,
                black_box(&headers),
                guard::Mode::Api,
            ))
            .unwrap()
        })
    });
}

criterion_group!(benches, parse, store_lookups, guard_check);
criterion_main!(benches);
