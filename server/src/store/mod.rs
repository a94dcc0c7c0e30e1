//! Session store backends. The contract (`app::server::SessionStore`) is shared; each
//! backend proves it fulfils it by running the same `store_contract_tests!` suite.

mod memory;

pub use memory::MemoryStore;

#[cfg(test)]
#[macro_use]
pub(crate) mod contract;

#[cfg(test)]
mod memory_contract {
    use super::MemoryStore;
    use std::sync::Arc;

    store_contract_tests!(|lifetimes| async move { Arc::new(MemoryStore::new(lifetimes)) });
}
