//! `confide user add|remove|passwd NAME`: password accounts, managed by the operator on
//! the store the configuration names. Passwords are read from standard input (one line),
//! never from the command line, where other users of the machine could see them.

use crate::{AppState, Config};
use std::{io::BufRead, process::ExitCode};

const USAGE: &str = "usage: confide [user add|remove|passwd NAME]
  with no arguments: serve
  user add NAME     create a password account; the password is read from stdin
  user passwd NAME  set a new password (ends every session of the account)
  user remove NAME  delete the account, its sessions and its threads";

pub async fn run(args: &[String], config: Config) -> ExitCode {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let (action, name) = match words.as_slice() {
        ["user", action @ ("add" | "remove" | "passwd"), name] => (*action, *name),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if config.store.trim() == "memory" {
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
    let result = match action {
        "add" => match read_password() {
            Ok(pw) => auth
                .add_user(name, &pw)
                .await
                .map(|_| format!("added user {:?}", name.trim().to_lowercase())),
            Err(e) => return fail(&e),
        },
        "passwd" => match read_password() {
            Ok(pw) => auth
                .set_password(name, &pw, None)
                .await
                .map(|n| format!("password changed; {n} session(s) ended")),
            Err(e) => return fail(&e),
        },
        _ => auth.remove_user(name).await.map(|existed| {
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
