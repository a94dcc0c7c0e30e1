//! Child processes for the load and soak tools: Confide itself and throwaway `redis-server`s,
//! on ports of our choosing so that a killed one can be brought back where it was.
//!
//! Every child runs under a small `sh` wrapper that holds a pipe from this process. Closing
//! our end (on [`Child::kill`], on drop, or when this process dies in any way, SIGKILL
//! included) makes the wrapper SIGKILL the child and wait for it, so a crashed or killed
//! run never leaves a server holding a port.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Starts `"$@"`, tells its pid on stdout, waits for stdin to close, then kills it hard and
/// waits until it is gone (so its port is free once the wrapper has exited).
const WRAPPER: &str = r#"
if [ -n "$CHILD_LOG" ]; then
  "$@" </dev/null >>"$CHILD_LOG" 2>&1 &
else
  "$@" </dev/null >/dev/null &
fi
pid=$!
echo "$pid"
exec >/dev/null
cat >/dev/null
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0
"#;

/// A process under the wrapper: SIGKILLed by [`Child::kill`] or when dropped.
pub struct Child {
    wrapper: Option<std::process::Child>,
    pid: u32,
}

impl Child {
    /// Spawns `program args…` with `envs`; its output goes to `log` (appended) or nowhere.
    pub fn spawn(
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log: Option<&Path>,
    ) -> Result<Self, String> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WRAPPER)
            .arg("child-wrapper")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .env_remove("CHILD_LOG");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        if let Some(log) = log {
            cmd.env("CHILD_LOG", log);
        }
        let mut wrapper = cmd
            .spawn()
            .map_err(|e| format!("cannot run sh to start {}: {e}", program.display()))?;
        let mut line = String::new();
        let read = wrapper
            .stdout
            .take()
            .map(|out| BufReader::new(out).read_line(&mut line));
        let pid = match (read, line.trim().parse::<u32>()) {
            (Some(Ok(_)), Ok(pid)) => pid,
            _ => {
                drop(wrapper.stdin.take());
                let _ = wrapper.wait();
                return Err(format!("could not start {}", program.display()));
            }
        };
        Ok(Self {
            wrapper: Some(wrapper),
            pid,
        })
    }

    /// The pid of the process itself (not of its wrapper).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process has not been killed through this handle.
    pub fn is_running(&self) -> bool {
        self.wrapper.is_some()
    }

    /// SIGKILL, like a crash: no shutdown, no flushing. Returns once the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut wrapper) = self.wrapper.take() {
            drop(wrapper.stdin.take());
            let _ = wrapper.wait();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Polls `url` (plain http) until it answers 200; returns how long that took.
pub fn wait_http(url: &str, limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let rest = url.trim_start_matches("http://");
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h.to_owned(), format!("/{p}")),
        None => (rest.to_owned(), "/".to_owned()),
    };
    while started.elapsed() < limit {
        if let Ok(mut s) = TcpStream::connect(&host) {
            let _ = s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let mut buf = [0u8; 12];
            if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200") {
                return Ok(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(format!("{url} did not answer 200 within {limit:?}"))
}

/// How to run one Confide process.
#[derive(Debug, Clone)]
pub struct ConfideSpec {
    pub bin: PathBuf,
    pub port: u16,
    /// `CONFIDE_STORE`: `memory`, `sqlite:<path>` or a Redis URL.
    pub store: String,
    /// `CONFIDE_SQLITE_SYNC`: `full` or `normal`.
    pub sqlite_sync: String,
    /// Where its output goes (appended), or nowhere.
    pub log: Option<PathBuf>,
    /// The directory its files are kept in (`[files]` `fs`), shared by the instances of a
    /// cluster; `None` leaves the default.
    pub files_dir: Option<PathBuf>,
}

impl ConfideSpec {
    pub fn new(bin: impl Into<PathBuf>, store: impl Into<String>) -> Self {
        Self {
            bin: bin.into(),
            port: free_port(),
            store: store.into(),
            sqlite_sync: "full".into(),
            log: None,
            files_dir: None,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// How long an upload no message took up (or bytes a kill left) stays with `files_dir` set.
pub const FILES_TTL: Duration = Duration::from_secs(4);

/// Starts Confide as specified, with the echo assistant at zero delay and the throttles
/// lifted (every simulated user shares one address), and waits for `/healthz`. Returns the
/// process and the time from spawn to the first 200.
pub fn start_confide(spec: &ConfideSpec) -> Result<(Child, Duration), String> {
    if !spec.bin.is_file() {
        return Err(format!(
            "the server binary {} does not exist (build it with `cargo build --release -p server --bin confide`, \
             or `cargo leptos build --release`)",
            spec.bin.display()
        ));
    }
    let env = [
        ("CONFIDE_ADDR", format!("127.0.0.1:{}", spec.port)),
        ("CONFIDE_CONFIG", "/nonexistent/confide.toml".into()),
        ("CONFIDE_STORE", spec.store.clone()),
        ("CONFIDE_SQLITE_SYNC", spec.sqlite_sync.clone()),
        ("CONFIDE_ECHO_DELAY", "0".into()),
        ("CONFIDE_LOG", "warn".into()),
        ("CONFIDE_IP_RATE", "1000000".into()),
        ("CONFIDE_IP_BURST", "1000000".into()),
        ("CONFIDE_SESSION_RATE", "100000".into()),
        ("CONFIDE_SESSION_BURST", "100000".into()),
        ("CONFIDE_MESSAGES_PER_MINUTE", "1000000".into()),
        // One address stands for every simulated user here.
        ("CONFIDE_NEW_SESSIONS_PER_MINUTE", "1000000".into()),
        ("CONFIDE_ADDRESS_MESSAGES_PER_MINUTE", "100000000".into()),
        ("CONFIDE_ADDRESS_MESSAGES_BURST", "1000000".into()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let mut env = env.to_vec();
    if let Some(dir) = &spec.files_dir {
        env.push(("CONFIDE_FILES__BACKEND".into(), "fs".into()));
        env.push(("CONFIDE_FILES__DIR".into(), dir.display().to_string()));
        // What a kill leaves is swept within seconds, so a run can check that it went.
        env.push((
            "CONFIDE_FILES__PENDING_TTL".into(),
            format!("{}s", FILES_TTL.as_secs()),
        ));
        env.push(("CONFIDE_SWEEP_INTERVAL".into(), "1s".into()));
    }
    let mut child = Child::spawn(&spec.bin, &[], &env, spec.log.as_deref())?;
    match wait_http(&format!("{}/healthz", spec.base()), Duration::from_secs(30)) {
        Ok(ready) => Ok((child, ready)),
        Err(e) => {
            child.kill();
            Err(match &spec.log {
                Some(log) => format!("{e}; its log: {}", tail(log, 20)),
                None => e,
            })
        }
    }
}

/// How to run one `redis-server`.
#[derive(Debug, Clone)]
pub struct RedisSpec {
    pub port: u16,
    /// Its working directory: the append-only file lives here.
    pub dir: PathBuf,
    /// Append-only file with `appendfsync always`: every acknowledged write is on disk.
    pub aof: bool,
    pub log: Option<PathBuf>,
}

impl RedisSpec {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// Starts `redis-server` (from `$REDIS_SERVER`, `$PATH`, /usr/bin or /usr/local/bin) and
/// waits until it answers and has loaded its data.
pub fn start_redis(spec: &RedisSpec) -> Result<Child, String> {
    let bin = redis_server_binary()?;
    std::fs::create_dir_all(&spec.dir).map_err(|e| format!("{}: {e}", spec.dir.display()))?;
    let mut args: Vec<String> = [
        "--port",
        &spec.port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
    ]
    .map(str::to_owned)
    .to_vec();
    if spec.aof {
        args.extend(["--appendonly", "yes", "--appendfsync", "always"].map(str::to_owned));
    } else {
        args.extend(["--appendonly", "no"].map(str::to_owned));
    }
    args.push("--dir".into());
    args.push(spec.dir.to_string_lossy().into_owned());
    let mut child = Child::spawn(&bin, &args, &[], spec.log.as_deref())?;
    let started = Instant::now();
    loop {
        // Ours, not another process that happens to answer on the port, and done loading.
        if let Ok(info) = redis_info(spec.port, "server")
            && info.contains(&format!("process_id:{}\r\n", child.pid()))
            && redis_info(spec.port, "persistence").is_ok_and(|p| p.contains("loading:0\r\n"))
        {
            return Ok(child);
        }
        if started.elapsed() > Duration::from_secs(20) {
            child.kill();
            return Err(format!(
                "redis-server did not come up on port {} within 20 s{}",
                spec.port,
                spec.log
                    .as_deref()
                    .map(|l| format!("; its log: {}", tail(l, 20)))
                    .unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn redis_server_binary() -> Result<PathBuf, String> {
    let explicit = std::env::var_os("REDIS_SERVER").map(PathBuf::from);
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|dir| dir.join("redis-server"))
                .collect()
        })
        .unwrap_or_default();
    explicit
        .into_iter()
        .chain(on_path)
        .chain([
            PathBuf::from("/usr/bin/redis-server"),
            PathBuf::from("/usr/local/bin/redis-server"),
        ])
        .find(|c| c.is_file())
        .ok_or_else(|| {
            "redis-server not found ($REDIS_SERVER, $PATH, /usr/bin, /usr/local/bin): \
             `scripts/setup.sh test` installs it"
                .to_owned()
        })
}

/// `INFO <section>` over a raw connection.
pub fn redis_info(port: u16, section: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    s.write_all(format!("INFO {section}\r\nQUIT\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The last `lines` lines of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A directory under the system temp dir, removed when dropped unless [`TempDir::keep`] was
/// called (to leave logs and data behind for a failed run).
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    pub fn new(prefix: &str) -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}",
            uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .get(..12)
                .unwrap_or("x")
        ));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { path, keep: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_child_is_gone() {
        let mut c = Child::spawn(Path::new("sleep"), &["30".into()], &[], None).unwrap();
        let pid = c.pid();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        c.kill();
        assert!(!c.is_running());
        // Reaped by the wrapper, so not even a zombie is left.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn a_dropped_child_is_gone() {
        let c = Child::spawn(Path::new("sleep"), &["30".into()], &[], None).unwrap();
        let pid = c.pid();
        drop(c);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
