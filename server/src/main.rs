//! The `confide` binary: `confide user …` commands, or else the server (see `server::run_app`).

use clap::Parser;
use server::Config;
use std::process::ExitCode;

// A request allocates and frees many small buffers across worker threads; glibc's malloc
// spent about a quarter of the server's CPU on them under load (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // Parsed before the configuration is read, so `--help` and a mistyped command answer
    // even where the configuration is broken.
    let cli = server::cli::Cli::parse();
    if let Some(command) = cli.command {
        server::init_logging();
        let config = match Config::load() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(2);
            }
        };
        return server::cli::run(command, config).await;
    }
    server::run_app("Confide", |state, config| async move {
        // An app of its own may give the tools to its assistant; the built-in echo cannot.
        if !state.mcp_tools.is_empty() && config.assistant == server::AssistantKind::Echo {
            tracing::warn!("MCP servers are configured, but the echo assistant calls no tools");
        }
        Ok(state)
    })
    .await
}
