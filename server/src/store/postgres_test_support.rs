//! A throwaway PostgreSQL server for tests and the load tools: `initdb` into a temporary
//! directory, a free port, trust authentication on 127.0.0.1 only; no durability (fsync off)
//! unless asked for.
//!
//! Like the Redis one, the server runs under a small `sh` wrapper holding a pipe from this
//! process: when the guard is dropped or the test process dies in any way, the pipe closes
//! and the wrapper kills the server and removes its directory. PostgreSQL refuses to run as
//! root; as root, it runs as the `postgres` user the Debian package creates.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Starts `postgres "$@"`, waits for stdin to close, then kills it and waits for it to go.
const WRAPPER: &str = r#"
exec 3<&0
"$@" </dev/null 3<&- >"$PG_DIR/log" 2>&1 &
pid=$!
# Until the test process closes our stdin (done with the server, or gone without cleaning
# up): then the server goes, and its files unless kept for a restart (`kill_keeping_data`).
{
  cat <&3 >/dev/null
  kill -KILL "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  [ -e "$PG_DIR/keep" ] || rm -rf "$PG_DIR"
} &
exec 3<&-
# Ends when the server does: one that could not start (its port taken meanwhile) is seen
# at once, with its log, instead of after the wait for it to be ready.
wait "$pid" 2>/dev/null
exit 0
"#;

pub struct PostgresServer {
    wrapper: Option<Child>,
    port: u16,
    durable: bool,
    /// Removed when the guard goes (the wrapper removes it too, if this process dies).
    _dir: tempfile::TempDir,
}

impl PostgresServer {
    /// A server on a free port. Panics if PostgreSQL is not installed: these tests must not
    /// pass by not running.
    pub fn start() -> Self {
        Self::start_with(None, false, None)
    }

    /// A server that also speaks TLS with this certificate and key (PEM).
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::start_with(None, false, Some((cert_pem, key_pem)))
    }

    /// A server that syncs every commit to disk, as a production one does (for measuring).
    pub fn start_durable() -> Self {
        Self::start_with(None, true, None)
    }

    /// A new server on `port`, e.g. to bring PostgreSQL back where a killed one was.
    pub fn start_on(port: u16) -> Self {
        Self::start_with(Some(port), false, None)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn start_with(port: Option<u16>, durable: bool, tls: Option<(&str, &str)>) -> Self {
        let mut last_error = String::new();
        // Another process may take the port between our probe and PostgreSQL binding it.
        // Each attempt starts from nothing: a failed one's files go with it.
        for _ in 0..5 {
            match Self::attempt(port, durable, tls) {
                Ok(server) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start PostgreSQL: {last_error}");
    }

    fn attempt(
        port: Option<u16>,
        durable: bool,
        tls: Option<(&str, &str)>,
    ) -> Result<Self, String> {
        let bin = postgres_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("confide-pg-")
            .tempdir()
            .expect("a temporary directory");
        let as_postgres = is_root();
        if as_postgres {
            chown_to_postgres(dir.path());
        }
        let data = dir.path().join("data");
        let status = run_as(as_postgres, &bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "confide", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run initdb");
        assert!(
            status.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        if let Some((cert, key)) = tls {
            use std::{io::Write, os::unix::fs::PermissionsExt};
            std::fs::write(data.join("server.crt"), cert).expect("write the certificate");
            std::fs::write(data.join("server.key"), key).expect("write the key");
            // PostgreSQL refuses a key others can read.
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("restrict the key");
            std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("postgresql.conf"))
                .and_then(|mut f| f.write_all(b"\nssl = on\n"))
                .expect("turn TLS on");
            if as_postgres {
                chown_to_postgres(&data.join("server.crt"));
                chown_to_postgres(&data.join("server.key"));
            }
        }
        let port = port.unwrap_or_else(free_port);
        let (wrapper, port) =
            Self::try_start(&bin, dir.path(), &data, port, as_postgres, durable, None)?;
        Ok(Self {
            wrapper: Some(wrapper),
            port,
            durable,
            _dir: dir,
        })
    }

    fn try_start(
        bin: &Path,
        dir: &Path,
        data: &Path,
        port: u16,
        as_postgres: bool,
        durable: bool,
        stale_pid: Option<&str>,
    ) -> Result<(Child, u16), String> {
        let sync = if durable { "on" } else { "off" };
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(WRAPPER).arg("pg-wrapper");
        if as_postgres {
            cmd.args([
                "setpriv",
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
            ]);
        }
        let mut wrapper = cmd
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
            ])
            .args(["-c", &format!("fsync={sync}")])
            .args(["-c", &format!("synchronous_commit={sync}")])
            .args(["-c", &format!("full_page_writes={sync}")])
            .env("PG_DIR", dir)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run sh to start postgres: {e}"))?;
        // postmaster.pid's last line says "ready" once connections are accepted; the file is
        // in our data directory, so it is our server that is ready.
        let pid_file = data.join("postmaster.pid");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::fs::read_to_string(&pid_file).is_ok_and(|s| {
                s.lines().any(|l| l.trim() == "ready")
                    && s.lines().next().map(str::trim) != stale_pid
            }) {
                return Ok((wrapper, port));
            }
            if let Ok(Some(_)) = wrapper.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        let ended = matches!(wrapper.try_wait(), Ok(Some(_)));
        drop(wrapper.stdin.take());
        let _ = wrapper.wait();
        Err(if ended {
            format!("postgres on port {port} stopped before it was ready; its log:\n{log}")
        } else {
            format!("postgres did not come up on port {port} within 30 s; its log:\n{log}")
        })
    }

    /// The URL of a new, empty database on this server: each test gets its own.
    pub async fn fresh_database(&self) -> String {
        let name = format!("t{}", uuid::Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL");
        let driver = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        drop(client);
        let _ = driver.await;
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://confide@127.0.0.1:{}/{database}", self.port)
    }

    /// Kills the server (SIGKILL, like a crash) but keeps its data, for `start_again`.
    pub fn kill_keeping_data(&mut self) {
        let keep = self._dir.path().join("keep");
        std::fs::write(&keep, b"").expect("mark the data to keep");
        self.kill();
    }

    /// Starts the server killed by `kill_keeping_data` again, on its port and data, as a
    /// restarted database server does: it recovers from its write-ahead log.
    pub fn start_again(&mut self) -> Result<(), String> {
        let dir = self._dir.path().to_owned();
        let data = dir.join("data");
        // The killed server's pid file stays (PostgreSQL checks it, and the shared memory it
        // names, before it starts over); its "ready" must not pass for the new server's.
        let stale = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(|l| l.trim().to_owned()));
        let mut last = String::new();
        // The killed server's backends may hold its shared memory for a moment.
        for _ in 0..20 {
            match Self::try_start(
                &postgres_bin_dir(),
                &dir,
                &data,
                self.port,
                is_root(),
                self.durable,
                stale.as_deref(),
            ) {
                Ok((wrapper, _)) => {
                    let _ = std::fs::remove_file(dir.join("keep"));
                    self.wrapper = Some(wrapper);
                    return Ok(());
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(last)
    }

    /// Kills the server now (SIGKILL, like a crash) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut wrapper) = self.wrapper.take() {
            drop(wrapper.stdin.take());
            let _ = wrapper.wait();
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn chown_to_postgres(dir: &Path) {
    let status = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(dir)
        .status()
        .expect("run chown");
    assert!(
        status.success(),
        "PostgreSQL will not run as root, and the `postgres` user (from Debian's postgresql \
         package) is missing"
    );
}

fn run_as(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// `$POSTGRES_BIN`, the directory of an `initdb` on PATH, or Debian's newest
/// `/usr/lib/postgresql/<version>/bin`.
fn postgres_bin_dir() -> PathBuf {
    let explicit = std::env::var_os("POSTGRES_BIN").map(PathBuf::from);
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    debian.reverse();
    for dir in explicit.into_iter().chain(on_path).chain(debian) {
        let dir = std::fs::canonicalize(dir.join("initdb"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        if let Some(dir) = dir
            && dir.join("postgres").is_file()
        {
            return dir;
        }
    }
    panic!(
        "PostgreSQL not found (looked at $POSTGRES_BIN, $PATH, /usr/lib/postgresql/*/bin). The \
         PostgreSQL store tests need it: install it (`apt-get install postgresql`) or point \
         POSTGRES_BIN at the directory holding initdb and postgres."
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that cannot start (here its port is taken) is seen to stop, with its log,
    /// rather than waited for; its files go with it, and the next attempt starts afresh.
    #[test]
    fn a_server_that_cannot_start_is_seen_at_once() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
        let port = taken.local_addr().unwrap().port();
        let err = PostgresServer::attempt(Some(port), false, None)
            .err()
            .expect("the port is taken");
        assert!(err.contains("stopped before it was ready"), "{err}");
        assert!(err.contains("could not"), "its log says why: {err}");
        drop(taken);
        let server = PostgresServer::start();
        assert_ne!(server.port(), 0);
    }
}
