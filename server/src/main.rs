//! The `confide` binary: reads configuration, serves until SIGINT/SIGTERM.

use clap::Parser;
use server::{AppState, Config, serve};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

// A request allocates and frees many small buffers across worker threads; glibc's malloc
// spent about a quarter of the server's CPU on them under load (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_env("CONFIDE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    // Parsed before the configuration is read, so `--help` and a mistyped command answer
    // even where the configuration is broken.
    let cli = server::cli::Cli::parse();
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(command) = cli.command {
        return server::cli::run(command, config).await;
    }
    let addr = config.addr;
    let public_url = config.public_url();
    let store_desc = config.store.clone();
    let state = match AppState::from_config(config).await {
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
        "Confide listening on http://{addr} (public URL {public_url}, store {store_desc})"
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

async fn shutdown_signal() {
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
