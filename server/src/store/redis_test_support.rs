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
        Self::try_start_with(port, &[])
    }

    fn try_start_with(port: u16, extra: &[&str]) -> Result<Self, String> {
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
            .args(extra)
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

/// A throwaway Redis Cluster: three masters, each with one replica, on free ports, so a
/// master can be failed over or killed while the cluster stays whole. Every node is a
/// `RedisServer`, gone with the guard.
#[allow(dead_code)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

#[allow(dead_code)]
impl RedisCluster {
    /// Starts six nodes, joins them (`redis-cli --cluster create`) and waits until every
    /// node reports the cluster whole. Panics if Redis is not installed.
    pub fn start() -> Self {
        Self::start_with_node_timeout(1000)
    }

    /// A cluster no test fails over: with Redis's default node timeout, a node that misses
    /// its pings for a second on a busy machine is not taken for dead, and the tests sharing
    /// the cluster are not failed over under.
    pub fn steady() -> Self {
        Self::start_with_node_timeout(15_000)
    }

    fn start_with_node_timeout(ms: u32) -> Self {
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::try_start(ms) {
                Ok(c) => return c,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start a Redis Cluster: {last_error}");
    }

    fn try_start(node_timeout_ms: u32) -> Result<Self, String> {
        let node_timeout = node_timeout_ms.to_string();
        let cluster_args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            // Small by default, so a failover after a kill takes about a second, not fifteen.
            "--cluster-node-timeout",
            &node_timeout,
        ];
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(RedisServer::try_start_with(free_port(), &cluster_args)?);
        }
        let mut create = Command::new(redis_cli_binary());
        create.args(["--cluster", "create"]);
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .map_err(|e| format!("cannot run redis-cli: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let cluster = Self { nodes };
        cluster.wait_whole(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.wrapper.is_some())
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Ports of every node, in the order the URL names them.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// Ports of the live masters, as the cluster sees them.
    pub fn masters(&self) -> Vec<u16> {
        let mut masters: Vec<u16> = self
            .cli_any(&["CLUSTER", "NODES"])
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .filter_map(|l| {
                let addr = l.split_whitespace().nth(1)?;
                addr.split(['@', ':']).nth(1)?.parse().ok()
            })
            .collect();
        masters.sort_unstable();
        masters
    }

    /// The replica of the master on `port`.
    pub fn replica_of(&self, port: u16) -> u16 {
        let nodes = self.cli_any(&["CLUSTER", "NODES"]);
        let id = nodes
            .lines()
            .find(|l| l.contains(&format!(":{port}@")))
            .and_then(|l| l.split_whitespace().next())
            .expect("the master is known")
            .to_owned();
        nodes
            .lines()
            .filter(|l| l.contains("slave") && !l.contains("fail"))
            .find(|l| l.split_whitespace().nth(3) == Some(id.as_str()))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|a| a.split(['@', ':']).nth(1))
            .and_then(|p| p.parse().ok())
            .expect("the master has a replica")
    }

    /// A planned failover: the replica of the master on `port` takes over once it has
    /// caught up, so nothing acknowledged is lost. Returns when the cluster is whole again.
    pub fn fail_over(&self, port: u16) {
        let replica = self.replica_of(port);
        let reply = cli(replica, &["CLUSTER", "FAILOVER"]);
        assert!(reply.contains("OK"), "CLUSTER FAILOVER: {reply}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.masters().contains(&replica) {
            assert!(Instant::now() < deadline, "the replica never took over");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_whole(Duration::from_secs(30))
            .expect("the cluster is whole after the failover");
    }

    /// Freezes every node (SIGSTOP): connections stay open and nothing answers.
    pub fn pause_all(&self) {
        for n in self.nodes.iter().filter(|n| n.wrapper.is_some()) {
            n.pause();
        }
    }

    pub fn resume_all(&self) {
        for n in self.nodes.iter().filter(|n| n.wrapper.is_some()) {
            n.resume();
        }
    }

    /// Kills the node on `port` (SIGKILL); a killed master's replica takes over after the
    /// node timeout. Returns at once.
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster");
        node.kill();
    }

    /// Waits until every live node says the cluster is ok and every slot has a live master.
    pub fn wait_whole(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let whole = self.nodes.iter().filter(|n| n.wrapper.is_some()).all(|n| {
                let info = cli(n.port, &["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            });
            if whole && self.masters().len() == 3 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the cluster is not whole after {limit:?}: {}",
                    self.cli_any(&["CLUSTER", "NODES"])
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn cli_any(&self, args: &[&str]) -> String {
        self.nodes
            .iter()
            .filter(|n| n.wrapper.is_some())
            .map(|n| cli(n.port, args))
            .find(|r| !r.is_empty())
            .unwrap_or_default()
    }
}

/// `redis-cli -p <port> <args>`: its output, or "" when the node does not answer.
fn cli(port: u16, args: &[&str]) -> String {
    Command::new(redis_cli_binary())
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn redis_cli_binary() -> PathBuf {
    let server = redis_server_binary();
    let beside = server.with_file_name("redis-cli");
    if beside.is_file() {
        beside
    } else {
        PathBuf::from("redis-cli")
    }
}
