//! A short load with the isolation check, run by `make test`: 20 simulated users on one
//! address, 5 turns each, against the real app. Correctness only; no timing assertions.

use confide_bench::{LoadConfig, run};
use server::{AppState, Config, serve};
use std::time::Duration;
use tokio::net::TcpListener;

async fn start(config: Config) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        addr: listener.local_addr().unwrap(),
        ..config
    };
    let state = AppState::from_config(config).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async {
        let _ = rx.await;
    }));
    (base, tx)
}

fn load_config() -> Config {
    Config {
        echo_delay: Duration::ZERO,
        ip_rate: 100_000,
        ip_burst: 100_000,
        messages_per_minute: 10_000,
        new_sessions_per_minute: 100_000,
        address_messages_per_minute: 1_000_000,
        address_messages_burst: 1_000_000,
        ..Config::default()
    }
}

async fn smoke(config: Config) {
    let (base, _stop) = start(config).await;
    let report = run(LoadConfig {
        bases: vec![base],
        users: 20,
        turns: 5,
        reply_timeout: Duration::from_secs(20),
    })
    .await;
    assert_eq!(report.isolation_failures, 0, "{:#?}", report.errors);
    assert_eq!(report.failed_turns, 0, "{:#?}", report.errors);
    assert_eq!(report.messages, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_load_memory_store_is_isolated() {
    smoke(Config {
        store: server::StoreKind::Memory,
        ..load_config()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_load_sqlite_store_is_isolated() {
    // Removed when the test ends, pass or fail.
    let dir = tempfile::Builder::new()
        .prefix("confide-smoke-")
        .tempdir()
        .unwrap();
    smoke(Config {
        store: server::StoreKind::Sqlite(dir.path().join("load.db")),
        ..load_config()
    })
    .await;
}
