//! Running an app the way the `confide` binary runs: its logging, its configuration, its
//! listener and its clean shutdown. An app built on Confide calls [`run_app`] from its
//! `main` with the one thing it changes (usually the assistant), and gets everything else
//! exactly as `confide` does it.

use crate::{AppState, Config, serve};
use std::{error::Error, future::Future, process::ExitCode};
use tracing_subscriber::EnvFilter;

/// Logs to stderr, filtered by `CONFIDE_LOG` (or `RUST_LOG`), `info` by default. Does
/// nothing if logging is already set up.
pub fn init_logging() {
    let filter = EnvFilter::try_from_env("CONFIDE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

/// Loads the configuration (`confide.toml`, `CONFIDE_*`), builds the app's state from it,
/// lets `customize` change it (`state.with_assistant(…)`; it also sees the configuration),
/// and serves until SIGINT or SIGTERM, finishing requests in flight. The exit code says how
/// it went: 2 for a configuration the app cannot start with, 1 for a listener or server
/// failure.
///
/// ```ignore
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     server::run_app("my app", |state, _config| async move {
///         Ok(state.with_assistant(std::sync::Arc::new(MyAssistant)))
///     })
///     .await
/// }
/// ```
pub async fn run_app<F, Fut>(name: &str, customize: F) -> ExitCode
where
    F: FnOnce(AppState, Config) -> Fut,
    Fut: Future<Output = Result<AppState, Box<dyn Error>>>,
{
    init_logging();
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let addr = config.addr;
    let public_url = config.public_url();
    let store_desc = config.store.clone();
    let state = match AppState::from_config(config.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let state = match customize(state, config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if !state.guard.secure_cookies {
        tracing::warn!(
            "INSECURE: CONFIDE_INSECURE_COOKIES is set and {public_url} is plain http: session cookies \
             travel without the Secure flag and can be read or set by anyone on the network path"
        );
    }
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        "{name} listening on http://{addr} (public URL {public_url}, store {store_desc})"
    );
    match serve(listener, state, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("shut down cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("server error: {e}");
            ExitCode::from(1)
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
