//! `confide-load`: starts Confide (release binary) with a given store, drives simulated
//! users against it, and reports throughput, latency, server CPU and memory, Redis commands
//! per turn, and two bare-axum baselines measured with the same client in the same run: a
//! JSON echo, and a server that speaks Confide's wire for a turn and does nothing else.
//!
//! ```text
//! confide-load [--users 200] [--turns 10] [--stores memory,sqlite,redis,postgres,redis-cluster] [--instances 1]
//!              [--server-bin target/release/confide] [--idle-sessions 5000] [--json out.json]
//! confide-load --serve-baseline <port>      (internal: the baseline server process)
//! ```

// The same allocator as the server, for the client and the baseline server alike, so the
// comparison is not skewed by malloc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use confide_bench::{
    LoadConfig, Percentiles, Report, baseline_app,
    procs::{self, Child, ConfideSpec, RedisSpec, TempDir, free_port, redis_info, wait_http},
    run, run_baseline,
};
use serde::Serialize;
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// Drives simulated users against Confide and a bare-axum baseline, and reports the figures.
#[derive(clap::Parser)]
#[command(name = "confide-load", version)]
struct Args {
    /// Simulated users, each with its own session.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Messages each user sends (each waits for its whole streamed reply).
    #[arg(long, default_value_t = 10)]
    turns: usize,
    /// Stores to measure, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "memory,sqlite,sqlite-normal,redis"
    )]
    stores: Vec<StoreArg>,
    /// Confide instances sharing the store (Redis and PostgreSQL; the others serve one).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// The server binary to start.
    #[arg(long, default_value = "target/release/confide")]
    server_bin: PathBuf,
    /// Idle sessions whose memory cost is measured (0 skips the measurement).
    #[arg(long, default_value_t = 5000)]
    idle_sessions: usize,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: be the baseline server on this port.
    #[arg(long, hide = true)]
    serve_baseline: Option<u16>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StoreArg {
    Memory,
    Sqlite,
    /// SQLite with `sqlite_sync = normal`.
    SqliteNormal,
    Redis,
    /// A PostgreSQL server started for the run, syncing every commit (`fsync` on).
    Postgres,
    /// A Redis Cluster started for the run: three masters, each with a replica.
    RedisCluster,
}

impl StoreArg {
    fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite => "sqlite",
            Self::SqliteNormal => "sqlite-normal",
            Self::Redis => "redis",
            Self::Postgres => "postgres",
            Self::RedisCluster => "redis-cluster",
        }
    }
}

fn start_confide(
    bin: &Path,
    store: &str,
    sqlite_sync: &str,
) -> Result<(Child, String, Duration), String> {
    let spec = ConfideSpec {
        sqlite_sync: sqlite_sync.to_owned(),
        ..ConfideSpec::new(bin, store)
    };
    let (child, ready) = procs::start_confide(&spec)?;
    Ok((child, spec.base(), ready))
}

fn start_redis(dir: &TempDir) -> Result<(Child, String, u16), String> {
    let spec = RedisSpec {
        port: free_port(),
        dir: dir.path().to_owned(),
        aof: false,
        log: None,
    };
    let child = procs::start_redis(&spec)?;
    Ok((
        child,
        format!("redis://127.0.0.1:{}/", spec.port),
        spec.port,
    ))
}

/// Command calls from `INFO commandstats`: (all commands, including those run inside Lua
/// scripts; requests the server received from clients, i.e. round trips: scripts, script
/// loads and publishes, as Confide sends nothing else on its hot path).
fn redis_calls(port: u16) -> (u64, u64) {
    let info = redis_info(port, "commandstats").unwrap_or_default();
    let calls = |l: &str| {
        l.split("calls=")
            .nth(1)?
            .split(',')
            .next()?
            .parse::<u64>()
            .ok()
    };
    let mut all = 0;
    let mut trips = 0;
    for l in info.lines().filter(|l| l.starts_with("cmdstat_")) {
        if l.starts_with("cmdstat_info") || l.starts_with("cmdstat_quit") {
            continue;
        }
        let n = calls(l).unwrap_or(0);
        all += n;
        if [
            "cmdstat_evalsha",
            "cmdstat_eval:",
            "cmdstat_script|load",
            "cmdstat_publish",
        ]
        .iter()
        .any(|p| l.starts_with(p))
        {
            trips += n;
        }
    }
    (all, trips)
}

/// CPU time (user + system) of a process, in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks * 10.0 // USER_HZ is 100 on Linux
}

/// Resident memory of a process, in kB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .trim()
                .trim_end_matches(" kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[derive(Serialize)]
struct Scenario {
    store: String,
    instances: usize,
    report: Report,
    server_cpu_ms_per_msg: f64,
    server_rss_kb: u64,
    cold_start_ms: f64,
    redis_commands_per_turn: Option<f64>,
    redis_round_trips_per_turn: Option<f64>,
}

#[derive(Serialize)]
struct Output {
    users: usize,
    turns: usize,
    baseline_msgs_per_s: f64,
    baseline_p99_ms: f64,
    /// The bare server of Confide's wire (`confide_bench::wire`), median of three runs.
    wire_msgs_per_s: f64,
    wire: Percentiles,
    wire_failed_turns: usize,
    idle_session_rss_bytes: Option<f64>,
    scenarios: Vec<Scenario>,
}

fn serve_baseline(port: u16) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        axum::serve(listener, baseline_app()).await.expect("serve");
    });
}

async fn scenario(args: &Args, store: StoreArg) -> Result<Scenario, String> {
    // Dropped last: the processes using it are gone by then.
    let dir = TempDir::new(&format!("confide-bench-{}", store.name()))?;
    let mut _postgres = None;
    let mut _cluster = None;
    let (_redis, store_url, redis_port) = match store {
        StoreArg::Memory => (None, "memory".to_owned(), None),
        StoreArg::Sqlite | StoreArg::SqliteNormal => {
            let path = dir.path().join("load.db");
            (None, format!("sqlite:{}", path.display()), None)
        }
        StoreArg::Redis => {
            let (p, url, port) = start_redis(&dir)?;
            (Some(p), url, Some(port))
        }
        StoreArg::Postgres => {
            let server = confide_bench::postgres::PostgresServer::start_durable();
            let url = server.fresh_database().await;
            _postgres = Some(server);
            (None, url, None)
        }
        StoreArg::RedisCluster => {
            let cluster = confide_bench::redis_cluster::RedisCluster::start();
            let url = cluster.url();
            _cluster = Some(cluster);
            (None, url, None)
        }
    };
    let mut servers = Vec::new();
    let mut cold_start = Duration::ZERO;
    let instances = match store {
        StoreArg::Redis | StoreArg::Postgres | StoreArg::RedisCluster => args.instances,
        _ => 1,
    };
    for _ in 0..instances {
        let sync = if store == StoreArg::SqliteNormal {
            "normal"
        } else {
            "full"
        };
        let (p, base, ready) = start_confide(&args.server_bin, &store_url, sync)?;
        cold_start = cold_start.max(ready);
        servers.push((p, base));
    }
    let pids: Vec<u32> = servers.iter().map(|(p, _)| p.pid()).collect();
    let cpu_before: f64 = pids.iter().map(|p| cpu_ms(*p)).sum();
    let redis_before = redis_port.map(redis_calls);
    let report = run(LoadConfig {
        bases: servers.iter().map(|(_, b)| b.clone()).collect(),
        users: args.users,
        turns: args.turns,
        reply_timeout: Duration::from_secs(60),
    })
    .await;
    let cpu_after: f64 = pids.iter().map(|p| cpu_ms(*p)).sum();
    let redis_after = redis_port.map(redis_calls);
    let turns = (report.messages.max(1)) as f64;
    Ok(Scenario {
        store: store.name().to_owned(),
        instances,
        server_cpu_ms_per_msg: (cpu_after - cpu_before) / turns,
        server_rss_kb: pids.iter().map(|p| rss_kb(*p)).sum(),
        cold_start_ms: cold_start.as_secs_f64() * 1000.0,
        redis_commands_per_turn: match (redis_before, redis_after) {
            (Some(b), Some(a)) => Some((a.0.saturating_sub(b.0)) as f64 / turns),
            _ => None,
        },
        redis_round_trips_per_turn: match (redis_before, redis_after) {
            (Some(b), Some(a)) => Some((a.1.saturating_sub(b.1)) as f64 / turns),
            _ => None,
        },
        report,
    })
}

/// Resident memory each idle session costs in the memory store.
async fn idle_session_cost(args: &Args) -> Result<f64, String> {
    let (proc, base, _) = start_confide(&args.server_bin, "memory", "full")?;
    // Warm up allocator and code paths first.
    run(LoadConfig {
        bases: vec![base.clone()],
        users: 50,
        turns: 0,
        reply_timeout: Duration::from_secs(10),
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kb(proc.pid());
    let n = args.idle_sessions;
    // In batches, so that connection buffers of a huge burst do not count as session cost.
    let mut made = 0;
    while made < n {
        let batch = (n - made).min(200);
        let r = run(LoadConfig {
            bases: vec![base.clone()],
            users: batch,
            turns: 0,
            reply_timeout: Duration::from_secs(30),
        })
        .await;
        if !r.errors.is_empty() {
            return Err(format!("idle sessions: {:?}", r.errors.first()));
        }
        made += batch;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_kb(proc.pid());
    Ok((after.saturating_sub(before) as f64 * 1024.0) / n.max(1) as f64)
}

fn print_table(out: &Output) {
    println!();
    println!(
        "{} users x {} turns, one address (127.0.0.1), echo assistant at zero delay",
        out.users, out.turns
    );
    println!(
        "{:<13} {:>4} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9} {:>9} {:>10} {:>8} {:>16} {:>6}",
        "store",
        "inst",
        "msgs/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "ready p99",
        "cpu/msg",
        "RSS MB",
        "vs axum",
        "vs wire",
        "redis cmd/trips",
        "leaks"
    );
    for s in &out.scenarios {
        let r = &s.report;
        println!(
            "{:<13} {:>4} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>10.1} {:>8.2}ms {:>9.1} {:>9.0}% {:>7.0}% {:>16} {:>6}",
            s.store,
            s.instances,
            r.msgs_per_s,
            r.latency_ms.p50,
            r.latency_ms.p95,
            r.latency_ms.p99,
            r.latency_ms.max,
            r.session_ready_ms.p99,
            s.server_cpu_ms_per_msg,
            s.server_rss_kb as f64 / 1024.0,
            100.0 * r.msgs_per_s / out.baseline_msgs_per_s.max(1e-9),
            100.0 * r.msgs_per_s / out.wire_msgs_per_s.max(1e-9),
            match (s.redis_commands_per_turn, s.redis_round_trips_per_turn) {
                (Some(c), Some(t)) => format!("{c:.1}/{t:.1}"),
                _ => "-".into(),
            },
            r.isolation_failures,
        );
        if r.failed_turns > 0 || !r.errors.is_empty() {
            println!(
                "         {} failed turns; first errors: {:?}",
                r.failed_turns,
                r.errors.iter().take(3).collect::<Vec<_>>()
            );
        }
    }
    println!(
        "bare axum echo baseline (median of 3 runs): {:.0} req/s, p99 {:.1} ms; cold start (spawn to /healthz 200): {}",
        out.baseline_msgs_per_s,
        out.baseline_p99_ms,
        out.scenarios
            .first()
            .map(|s| format!("{:.0} ms", s.cold_start_ms))
            .unwrap_or_default()
    );
    println!(
        "bare axum speaking Confide's wire (median of 3 runs): {:.0} msgs/s ({:.0}% of the echo), p50 {:.1} ms, p99 {:.1} ms{}",
        out.wire_msgs_per_s,
        100.0 * out.wire_msgs_per_s / out.baseline_msgs_per_s.max(1e-9),
        out.wire.p50,
        out.wire.p99,
        if out.wire_failed_turns > 0 {
            format!("; {} failed turns", out.wire_failed_turns)
        } else {
            String::new()
        }
    );
    if let Some(b) = out.idle_session_rss_bytes {
        println!("RSS per idle session (memory store): {:.0} bytes", b);
    }
}

fn main() {
    // Parsed before any runtime exists: `--serve-baseline` starts its own.
    let args = <Args as clap::Parser>::parse();
    if let Some(port) = args.serve_baseline {
        serve_baseline(port);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(load(args));
}

async fn load(args: Args) {
    // Baseline: a separate process, like the server under test.
    let port = free_port();
    let me = std::env::current_exe().expect("own path");
    let baseline = Child::spawn(
        &me,
        &["--serve-baseline".into(), port.to_string()],
        &[],
        None,
    )
    .expect("baseline server");
    let base = format!("http://127.0.0.1:{port}");
    if let Err(e) = wait_http(&format!("{base}/healthz"), Duration::from_secs(30)) {
        eprintln!("confide-load: baseline: {e}");
        std::process::exit(1);
    }
    // One short run is at the mercy of a scheduling hiccup on two cores; the median of three
    // is a steadier floor to compare with.
    let mut runs = Vec::with_capacity(3);
    for _ in 0..3 {
        runs.push(run_baseline(&base, args.users, args.turns).await);
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (baseline_rate, baseline_p) = runs.swap_remove(1);
    // The same users, client and turns against the bare server of Confide's wire: the most
    // any server speaking this protocol could do here.
    let mut wire = Vec::with_capacity(3);
    for _ in 0..3 {
        wire.push(
            run(LoadConfig {
                bases: vec![base.clone()],
                users: args.users,
                turns: args.turns,
                reply_timeout: Duration::from_secs(60),
            })
            .await,
        );
    }
    wire.sort_by(|a, b| a.msgs_per_s.total_cmp(&b.msgs_per_s));
    let wire = wire.swap_remove(1);
    drop(baseline);

    let mut scenarios = Vec::new();
    let mut failed = false;
    for &store in &args.stores {
        match scenario(&args, store).await {
            Ok(s) => {
                failed |= s.report.isolation_failures > 0;
                scenarios.push(s);
            }
            Err(e) => {
                eprintln!("confide-load: {}: {e}", store.name());
                failed = true;
            }
        }
    }
    let idle = if args.idle_sessions > 0 {
        idle_session_cost(&args).await.ok()
    } else {
        None
    };
    let out = Output {
        users: args.users,
        turns: args.turns,
        baseline_msgs_per_s: baseline_rate,
        baseline_p99_ms: baseline_p.p99,
        wire_msgs_per_s: wire.msgs_per_s,
        wire: wire.latency_ms,
        wire_failed_turns: wire.failed_turns + wire.isolation_failures,
        idle_session_rss_bytes: idle,
        scenarios,
    };
    print_table(&out);
    if let Some(path) = &args.json
        && let Ok(json) = serde_json::to_string_pretty(&out)
    {
        let _ = std::fs::write(path, json);
    }
    if failed {
        eprintln!("confide-load: FAILED (isolation failures or a scenario could not run)");
        std::process::exit(1);
    }
}
