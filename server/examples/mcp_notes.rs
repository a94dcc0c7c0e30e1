//! A small MCP server on stdio that keeps notes per connection: `add_note`, `list_notes`
//! (and `fail`, `wait`, `cancelled` for tests). It is what Confide's MCP tests and the
//! tools example start as a stdio server:
//!
//! ```toml
//! [mcp]
//! allowed_commands = ["target/debug/examples/mcp_notes"]
//! [[mcp.servers]]
//! name = "notes"
//! command = "target/debug/examples/mcp_notes"
//! ```

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match server::testing::notes_mcp_stdio().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp_notes: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
