//! A throwaway `redis-server` for tests: no persistence, its own directory, a free port.
//!
//! The server runs under a small `sh` wrapper that holds a pipe from this process: when
//! the guard is dropped, or the test process dies in any way (even SIGKILL, or a static
//! guard that is never dropped), the pipe closes and the wrapper kills the server and
//! removes its directory. So no test run leaves a Redis (or its files) behind.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Starts `redis-server "$@"`, waits for stdin to close, then kills it hard and waits for
/// it to be gone, so the port is free once the wrapper has exited.
const WRAPPER: &str = r#"
"$@" </dev/null >/dev/null 2>&1 &
pid=$!
cat >/dev/null
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -rf "$REDIS_DIR"
exit 0
"#;

pub(crate) struct RedisServer {
    wrapper: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// A server on a free port. Panics if `redis-server` is not installed: these tests must
    /// not pass by not running.
    pub(crate) fn start() -> Self {
        let mut last_error = String::new();
        // Another process may take the port between our probe and Redis binding it.
        for _ in 0..5 {
            match Self::try_start(free_port()) {
                Ok(server) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    /// A server on `port`, e.g. to bring Redis back where a killed one was.
    pub(crate) fn start_on(port: u16) -> Self {
        Self::try_start(port)
            .unwrap_or_else(|e| panic!("could not start redis-server on port {port}: {e}"))
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server now (SIGKILL, like a crash) and waits until it is gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut wrapper) = self.wrapper.take() {
            drop(wrapper.stdin.take());
            let _ = wrapper.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers, like a
    /// server stuck or a network gone silent.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join("redis.pid"))
            .expect("redis-server wrote its pid file");
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.trim())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    fn try_start(port: u16) -> Result<Self, String> {
        let binary = redis_server_binary();
        let dir = tempfile::Builder::new()
            .prefix("confide-redis-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        // Redis reports its directory with symlinks resolved.
        let real_dir = dir.path().canonicalize().map_err(|e| e.to_string())?;
        let dir_str = real_dir
            .to_str()
            .ok_or("temporary directory is not UTF-8")?
            .to_owned();
        let wrapper = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("redis-wrapper")
            .arg(&binary)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args([
                "--dir",
                &dir_str,
                "--logfile",
                "redis.log",
                "--pidfile",
                "redis.pid",
            ])
            .env("REDIS_DIR", &dir_str)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run sh to start {}: {e}", binary.display()))?;
        let mut server = Self {
            wrapper: Some(wrapper),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        // Our server is the one whose working directory is ours: another process (or
        // another test's Redis) answering on this port does not count.
        while Instant::now() < deadline {
            if config_dir(port).is_some_and(|d| d == dir_str) {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(server.dir.path().join("redis.log")).unwrap_or_default();
        server.kill();
        Err(format!(
            "redis-server did not come up on port {port} within 10 s; its log:\n{log}"
        ))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis_server_binary() -> PathBuf {
    let explicit = std::env::var_os("REDIS_SERVER").map(PathBuf::from);
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|dir| dir.join("redis-server"))
                .collect()
        })
        .unwrap_or_default();
    let candidates = explicit.into_iter().chain(on_path).chain([
        PathBuf::from("/usr/bin/redis-server"),
        PathBuf::from("/usr/local/bin/redis-server"),
    ]);
    for c in candidates {
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "redis-server not found (looked at $REDIS_SERVER, $PATH, /usr/bin, /usr/local/bin). The Redis store \
         tests need Redis 7: install it (e.g. `apt-get install redis-server`) or point REDIS_SERVER at the binary."
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// `CONFIG GET dir` over a raw connection, or None if nothing (or not Redis) answers.
fn config_dir(port: u16) -> Option<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    conn.write_all(b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$3\r\ndir\r\n")
        .ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    // The reply is `*2 $3 dir $<n> <path>`: five lines.
    while reply.iter().filter(|&&b| b == b'\n').count() < 5 {
        let n = conn.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(reply).ok()?;
    text.split("\r\n").nth(4).map(str::to_owned)
}
