//! The soak with faults, short (`make soak` is the long one): 30 users for 12 s per
//! scenario against the real `confide` binary, with Redis, one of two instances and the
//! SQLite-backed instance each killed with SIGKILL and restarted. Asserts no lost
//! acknowledged message, no leak, no wrong answer, and a recovery from every fault.
//!
//! It runs the debug binary `make test` builds (`cargo leptos build`) before the Rust tests:
//! `$CONFIDE_SOAK_SERVER_BIN`, else `$CARGO_TARGET_DIR/debug/confide`, else
//! `target/debug/confide` of the workspace. It fails, never skips, when there is none.

use confide_bench::soak::{Scenario, SoakConfig, run_scenario, table};
use std::{path::PathBuf, time::Duration};

fn server_bin() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates: Vec<PathBuf> = [
        std::env::var_os("CONFIDE_SOAK_SERVER_BIN").map(PathBuf::from),
        std::env::var_os("CARGO_TARGET_DIR").map(|d| workspace.join(d).join("debug/confide")),
        Some(workspace.join("target/debug/confide")),
    ]
    .into_iter()
    .flatten()
    .collect();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the soak smoke test needs the debug server binary and found none at {candidates:?}: \
                 build it first (`cargo leptos build`, as `make test` does, or \
                 `cargo build -p server --bin confide`), or point CONFIDE_SOAK_SERVER_BIN at one"
            )
        })
}

fn config() -> SoakConfig {
    SoakConfig {
        users: 30,
        duration: Duration::from_secs(12),
        down: Duration::from_secs(1),
        think: Duration::from_millis(100),
        turns_per_thread: 5,
        reply_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        ..SoakConfig::new(server_bin())
    }
}

async fn soak(scenario: Scenario, faults: usize) {
    let report = run_scenario(&config(), scenario)
        .await
        .unwrap_or_else(|e| panic!("the {} soak could not run: {e}", scenario.name()));
    let summary = format!(
        "{}\nproblems: {:#?}\nlogs: {:?}",
        table(std::slice::from_ref(&report)),
        report.problems,
        report.kept_dir
    );
    println!("{summary}");
    assert_eq!(report.lost_acks, 0, "{summary}");
    assert_eq!(report.leaks, 0, "{summary}");
    assert_eq!(report.wrong_answers, 0, "{summary}");
    assert!(
        report.files_acknowledged > 0,
        "files went with messages: {summary}"
    );
    assert_eq!(report.files_lost, 0, "{summary}");
    assert_eq!(report.files_orphaned, 0, "{summary}");
    assert_eq!(report.files_half_written, 0, "{summary}");
    assert_eq!(
        report.faults.len(),
        faults,
        "every fault injected: {summary}"
    );
    for f in &report.faults {
        assert!(
            f.recovery_s.is_some(),
            "recovered from {}: {summary}",
            f.fault
        );
    }
    assert!(report.passed(), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_redis_restart_and_instance_kill() {
    soak(Scenario::Redis, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_sqlite_instance_kill() {
    soak(Scenario::Sqlite, 1).await;
}
