//! The `confide` command line: serve (no command), `confide user add|remove|passwd|disable|
//! enable NAME` to manage password accounts, or `confide sessions list|end NAME` to see and
//! end an account's sessions, on the store the configuration names. Passwords are read from
//! standard input (one line), never from the command line, where other users of the machine
//! could see them.

use crate::{AppState, Config};
use clap::{Parser, Subcommand};
use std::{io::BufRead, process::ExitCode};

/// Confide: a chat app for conversational AI that keeps every conversation to its own
/// browser session. Without a command it serves; settings come from `confide.toml` and
/// `CONFIDE_*` environment variables (see the README).
#[derive(Debug, Parser)]
#[command(name = "confide", version)]
pub struct Cli {
    /// The command to run; none serves.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// A command other than serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Password accounts, on the store the configuration names.
    #[command(subcommand)]
    User(UserCommand),
    /// The sessions of a password account: list them, end one or all.
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

/// What `confide sessions` does.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// The account's live sessions, oldest first: handle, signed in, last seen, browser.
    List {
        /// The account's username.
        name: String,
    },
    /// Ends the session with this handle, or every session of the account without one.
    /// Its open pages are closed on every instance at once.
    End {
        /// The account's username.
        name: String,
        /// The session's handle, as `list` shows it.
        handle: Option<String>,
    },
    /// Ends every session of every user, and every anonymous one (whose threads go with
    /// it); accounts stay. Open pages close on every instance at once.
    EndAll,
}

/// What `confide user` does to a password account.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a password account; the password is read from standard input.
    Add {
        /// The account's username.
        name: String,
    },
    /// Set a new password, read from standard input (ends every session of the account).
    Passwd {
        /// The account's username.
        name: String,
    },
    /// Delete the account, its sessions and its threads.
    Remove {
        /// The account's username.
        name: String,
    },
    /// Refuse every sign-in of the account, by any method, and end all its sessions now.
    Disable {
        /// The account's username.
        name: String,
    },
    /// Let a disabled account sign in again.
    Enable {
        /// The account's username.
        name: String,
    },
}

/// Runs `command` on the store `config` names and prints the outcome; exits with 2 when
/// the store cannot be used (the memory store included) and 1 when the command fails.
pub async fn run(command: Command, config: Config) -> ExitCode {
    if config.store == crate::config::StoreKind::Memory {
        eprintln!(
            "confide: the memory store forgets everything when this command exits; set CONFIDE_STORE"
        );
        return ExitCode::from(2);
    }
    let state = match AppState::from_config(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let auth = &state.auth;
    let result = match &command {
        Command::User(action) => match user(auth, action).await {
            Ok(r) => r,
            Err(code) => return code,
        },
        Command::Sessions(SessionsCommand::List { name }) => {
            auth.user_sessions(name).await.map(|rows| {
                let mut out = format!("{} session(s)", rows.len());
                for r in rows {
                    out.push_str(&format!(
                        "\n{}  signed in {}  last seen {}  {} ({})",
                        r.handle,
                        when(r.created_ms),
                        when(r.last_seen_ms),
                        r.agent,
                        r.method.as_str()
                    ));
                }
                out
            })
        }
        Command::Sessions(SessionsCommand::End { name, handle }) => auth
            .end_user_sessions(name, handle.as_deref())
            .await
            .map(|n| format!("{n} session(s) ended")),
        Command::Sessions(SessionsCommand::EndAll) => auth
            .end_all_sessions()
            .await
            .map(|n| format!("{n} session(s) ended")),
    };
    // Ends travel to the other instances from a background task: let them leave before
    // this process does.
    if tokio::time::timeout(FLUSH_TIMEOUT, state.chat.hub().flush())
        .await
        .is_err()
    {
        eprintln!(
            "confide: the other instances may not have heard of the ended sessions yet; \
             their pages close at their next check"
        );
    }
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("{} ({})", e.message, e.code.as_str())),
    }
}

/// How long a command waits for its session ends to reach the other instances.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `confide user …`; `Err` is the exit code of a password that could not be read.
async fn user(
    auth: &confide_core::auth::Auth,
    action: &UserCommand,
) -> Result<Result<String, confide_core::ApiError>, ExitCode> {
    Ok(match action {
        UserCommand::Add { name } => {
            let pw = read_password().map_err(|e| fail(&e))?;
            auth.add_user(name, &pw)
                .await
                .map(|_| format!("added user {:?}", name.trim().to_lowercase()))
        }
        UserCommand::Passwd { name } => {
            let pw = read_password().map_err(|e| fail(&e))?;
            auth.set_password(name, &pw, None)
                .await
                .map(|n| format!("password changed; {n} session(s) ended"))
        }
        UserCommand::Remove { name } => auth.remove_user(name).await.map(|existed| {
            if existed {
                format!("removed user {:?}", name.trim().to_lowercase())
            } else {
                format!("no user {:?}", name.trim().to_lowercase())
            }
        }),
        UserCommand::Disable { name } => auth
            .set_disabled(name, true)
            .await
            .map(|n| format!("disabled; {n} session(s) ended")),
        UserCommand::Enable { name } => auth
            .set_disabled(name, false)
            .await
            .map(|_| "enabled".to_owned()),
    })
}

/// A time for people: UTC, to the second.
fn when(ms: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
    )
    .to_string()
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("confide: {msg}");
    ExitCode::FAILURE
}

fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        return Err("give the password on standard input".into());
    }
    Ok(pw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_parses_as_documented() {
        Cli::command().debug_assert();
        assert!(Cli::try_parse_from(["confide"]).unwrap().command.is_none());
        let cli = Cli::try_parse_from(["confide", "user", "add", "kim"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::User(UserCommand::Add { name })) if name == "kim"
        ));
        let cli = Cli::try_parse_from(["confide", "sessions", "end", "kim"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Sessions(SessionsCommand::End { name, handle: None })) if name == "kim"
        ));
        let cli = Cli::try_parse_from(["confide", "user", "disable", "kim"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::User(UserCommand::Disable { name })) if name == "kim"
        ));
        for bad in [
            &["confide", "sessions", "list"][..],
            &["confide", "sessions", "end", "kim", "h", "extra"],
            &["confide", "user", "frobnicate", "kim"],
            &["confide", "user", "add"],
            &["confide", "user", "add", "kim", "extra"],
            &["confide", "serve-everything"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("user") && help.contains("CONFIDE_"), "{help}");
    }
}
