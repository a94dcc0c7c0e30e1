//! The `confide` command line: serve (no command), or `confide user add|remove|passwd NAME`
//! to manage password accounts on the store the configuration names. Passwords are read from
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
}

/// Runs `command` on the store `config` names and prints the outcome; exits with 2 when
/// the store cannot be used (the memory store included) and 1 when the command fails.
pub async fn run(command: Command, config: Config) -> ExitCode {
    let Command::User(action) = command;
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
    let result = match &action {
        UserCommand::Add { name } => match read_password() {
            Ok(pw) => auth
                .add_user(name, &pw)
                .await
                .map(|_| format!("added user {:?}", name.trim().to_lowercase())),
            Err(e) => return fail(&e),
        },
        UserCommand::Passwd { name } => match read_password() {
            Ok(pw) => auth
                .set_password(name, &pw, None)
                .await
                .map(|n| format!("password changed; {n} session(s) ended")),
            Err(e) => return fail(&e),
        },
        UserCommand::Remove { name } => auth.remove_user(name).await.map(|existed| {
            if existed {
                format!("removed user {:?}", name.trim().to_lowercase())
            } else {
                format!("no user {:?}", name.trim().to_lowercase())
            }
        }),
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("{} ({})", e.message, e.code.as_str())),
    }
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
        for bad in [
            &["confide", "user", "frobnicate", "kim"][..],
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
