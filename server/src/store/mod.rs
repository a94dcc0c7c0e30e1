//! Session store backends. The contract (`confide_core::SessionStore`) is shared; each
//! backend proves it fulfils it by running the same `store_contract_tests!` suite.

mod hub_shared;
mod memory;
mod postgres;
mod postgres_hub;
// Also the load and soak tools' PostgreSQL (bench/src/lib.rs), which use all of it.
#[cfg(test)]
#[allow(dead_code)]
pub(crate) mod postgres_test_support;
mod redis;
mod redis_hub;
#[cfg(test)]
pub(crate) mod redis_test_support;
mod rows;
mod sqlite;

pub use self::redis::RedisStore;
pub use self::redis_hub::RedisHub;
pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use postgres_hub::PostgresHub;
pub use sqlite::{SqliteDurability, SqliteStore};

use app::SessionId;

use confide_core::{Proof, ProofHash, StoreError};

/// A never-expiring record under an id a browser could present would be a session nobody
/// can end; only `SessionId::home` ids (which `SessionId::parse` refuses) may become homes.
fn check_home_id(home: &SessionId) -> Result<(), StoreError> {
    if home.is_home() {
        Ok(())
    } else {
        Err(StoreError::Internal(
            "a home needs a SessionId::home id".into(),
        ))
    }
}

/// Where a `list_sessions` page of a store that walks ids in byte order starts: after the
/// id the cursor names (`Some(None)` from the start), or `None` for a cursor this store never
/// handed out, which ends the walk.
fn page_after(cursor: Option<&str>) -> Option<Option<[u8; 16]>> {
    match cursor.map(SessionId::parse_stored) {
        None => Some(None),
        Some(Ok(id)) => Some(Some(*id.as_bytes())),
        Some(Err(_)) => None,
    }
}

/// A page of such a store, with the cursor of the next: the last id, when the page is full.
fn page_of(ids: Vec<SessionId>, limit: usize) -> (Vec<SessionId>, Option<String>) {
    let next = (ids.len() == limit && limit > 0)
        .then(|| ids.last().map(SessionId::as_string))
        .flatten();
    (ids, next)
}

/// The stored proof of a home: the hash of a secret that is dropped at once, so no request
/// can ever present it.
fn unguessable_proof() -> Result<ProofHash, StoreError> {
    Ok(Proof::generate()?.hash())
}

#[cfg(test)]
#[macro_use]
pub(crate) mod contract;

#[cfg(test)]
mod memory_contract {
    use super::MemoryStore;
    use std::sync::Arc;

    store_contract_tests!(|lifetimes| async move { Arc::new(MemoryStore::new(lifetimes)) });
}

#[cfg(test)]
mod sqlite_contract {
    use super::SqliteStore;
    use std::{sync::Arc, time::Duration};

    store_contract_tests!(|lifetimes| async move {
        // Each test gets its own file; the directory lives as long as the process.
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        Arc::new(
            SqliteStore::open(
                &dir.path().join("test.db"),
                lifetimes,
                Duration::from_secs(5),
            )
            .await
            .unwrap(),
        )
    });
}

#[cfg(test)]
mod redis_contract {
    use super::{RedisStore, redis_test_support::RedisServer};
    use std::sync::{Arc, OnceLock};

    /// One Redis for the whole suite; each test works under its own key prefix.
    fn server() -> &'static RedisServer {
        static SERVER: OnceLock<RedisServer> = OnceLock::new();
        SERVER.get_or_init(RedisServer::start)
    }

    store_contract_tests!(|lifetimes| async move {
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let op_timeout = std::time::Duration::from_secs(5);
        Arc::new(
            RedisStore::connect(&server().url(), &prefix, lifetimes, op_timeout)
                .await
                .unwrap(),
        )
    });
}

/// The same suite on a Redis Cluster: the hash-tagged layout keeps every script in one
/// slot, and what spans sessions goes one command per session.
#[cfg(test)]
mod redis_cluster_contract {
    use super::{RedisStore, redis_test_support::RedisCluster};
    use std::sync::{Arc, OnceLock};

    fn cluster() -> &'static RedisCluster {
        static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
        CLUSTER.get_or_init(RedisCluster::steady)
    }

    store_contract_tests!(|lifetimes| async move {
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let op_timeout = std::time::Duration::from_secs(5);
        Arc::new(
            RedisStore::connect(&cluster().url(), &prefix, lifetimes, op_timeout)
                .await
                .unwrap(),
        )
    });
}

#[cfg(test)]
mod postgres_contract {
    use super::{PostgresStore, postgres_test_support::PostgresServer};
    use std::{
        sync::{Arc, OnceLock},
        time::Duration,
    };

    /// One PostgreSQL for the whole suite; each test works in a database of its own.
    fn server() -> &'static PostgresServer {
        static SERVER: OnceLock<PostgresServer> = OnceLock::new();
        SERVER.get_or_init(PostgresServer::start)
    }

    store_contract_tests!(|lifetimes| async move {
        let url = server().fresh_database().await;
        Arc::new(
            PostgresStore::connect(&url, lifetimes, 4, Duration::from_secs(10), None)
                .await
                .unwrap(),
        )
    });
}

/// The same run of chat writes, read back through `thread_tail` on every backend.
#[cfg(test)]
mod backends_agree {
    use super::{MemoryStore, RedisStore, SqliteStore, contract, redis_test_support::RedisServer};
    use std::{sync::Arc, time::Duration};

    #[tokio::test]
    async fn on_thread_tails_and_counts() {
        let memory =
            contract::tail_observations(Arc::new(MemoryStore::new(contract::long()))).await;
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(
            &dir.path().join("agree.db"),
            contract::long(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let sqlite = contract::tail_observations(Arc::new(sqlite)).await;
        let server = RedisServer::start();
        let redis = RedisStore::connect(
            &server.url(),
            "agree",
            contract::long(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let redis = contract::tail_observations(Arc::new(redis)).await;
        assert_eq!(memory.len(), 40);
        assert_eq!(sqlite, memory, "SQLite and memory");
        assert_eq!(redis, memory, "Redis and memory");
    }
}
