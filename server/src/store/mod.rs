//! Session store backends. The contract (`app::server::SessionStore`) is shared; each
//! backend proves it fulfils it by running the same `store_contract_tests!` suite.

mod memory;
mod sqlite;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

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
        Arc::new(SqliteStore::open(&dir.path().join("test.db"), lifetimes, Duration::from_secs(5)).await.unwrap())
    });
}
