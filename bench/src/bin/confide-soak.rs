//! `confide-soak`: many users from one address while Redis, a Confide instance and the
//! SQLite-backed Confide are killed with SIGKILL and restarted (see `confide_bench::soak`).
//! Exits 1 if an acknowledged message was lost, a session saw another's text, an answer was
//! wrong, or a fault was never recovered from; 2 if the run could not be set up.
//!
//! ```text
//! confide-soak [--users 1000] [--duration 75] [--scenarios redis,sqlite]
//!              [--server-bin target/release/confide] [--down 2] [--think-ms 500]
//!              [--turns-per-thread 10] [--reply-timeout 15] [--json out.json]
//!              [--redis-without-aof]
//! ```

// The same allocator as the server, for the client and the baseline server alike, so the
// comparison is not skewed by malloc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use confide_bench::soak::{Scenario, SoakConfig, SoakReport, run_scenario, table};
use serde::Serialize;
use std::{path::PathBuf, time::Duration};

/// Many users from one address while Redis and Confide are killed and restarted.
#[derive(clap::Parser)]
#[command(name = "confide-soak", version)]
struct Args {
    /// Simulated users, all from one address.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    users: u32,
    /// Seconds each scenario runs.
    #[arg(long, default_value = "75", value_parser = seconds)]
    duration: Duration,
    /// Scenarios to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "redis,sqlite")]
    scenarios: Vec<ScenarioArg>,
    /// The server binary to start.
    #[arg(long, default_value = "target/release/confide")]
    server_bin: PathBuf,
    /// Seconds a killed component stays down.
    #[arg(long, default_value = "2", value_parser = seconds)]
    down: Duration,
    /// Pause after a turn, in milliseconds (±50 % jitter).
    #[arg(long, default_value_t = 500)]
    think_ms: u64,
    /// A user starts a new thread after this many turns.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    turns_per_thread: u32,
    /// Seconds after which an unfinished reply counts as interrupted.
    #[arg(long, default_value = "15", value_parser = seconds)]
    reply_timeout: Duration,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run Redis without its append-only file: shows what losing acknowledged data looks
    /// like in the report.
    #[arg(long)]
    redis_without_aof: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ScenarioArg {
    Redis,
    Sqlite,
    Postgres,
    RedisCluster,
    /// Redis, then SQLite.
    Both,
    /// Redis, SQLite, PostgreSQL and the Redis Cluster.
    All,
}

fn seconds(v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{v:?} is not a number of seconds"))
}

impl Args {
    fn config(&self) -> SoakConfig {
        SoakConfig {
            users: self.users as usize,
            duration: self.duration,
            down: self.down,
            think: Duration::from_millis(self.think_ms),
            turns_per_thread: self.turns_per_thread as usize,
            reply_timeout: self.reply_timeout,
            redis_aof: !self.redis_without_aof,
            ..SoakConfig::new(&self.server_bin)
        }
    }

    fn scenarios(&self) -> Vec<Scenario> {
        self.scenarios
            .iter()
            .flat_map(|s| match s {
                ScenarioArg::Redis => vec![Scenario::Redis],
                ScenarioArg::Sqlite => vec![Scenario::Sqlite],
                ScenarioArg::Postgres => vec![Scenario::Postgres],
                ScenarioArg::RedisCluster => vec![Scenario::RedisCluster],
                ScenarioArg::Both => vec![Scenario::Redis, Scenario::Sqlite],
                ScenarioArg::All => vec![
                    Scenario::Redis,
                    Scenario::Sqlite,
                    Scenario::Postgres,
                    Scenario::RedisCluster,
                ],
            })
            .collect()
    }
}

/// The arguments as the run uses them.
struct Parsed {
    cfg: SoakConfig,
    scenarios: Vec<Scenario>,
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Output<'a> {
    server_bin: String,
    down_s: f64,
    think_ms: u128,
    turns_per_thread: usize,
    reply_timeout_s: f64,
    redis_aof: bool,
    passed: bool,
    scenarios: &'a [SoakReport],
}

fn main() {
    let parsed = <Args as clap::Parser>::parse();
    let args = Parsed {
        cfg: parsed.config(),
        scenarios: parsed.scenarios(),
        json: parsed.json,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut reports = Vec::new();
    for s in &args.scenarios {
        eprintln!(
            "confide-soak: {} scenario, {} users, {:?}…",
            s.name(),
            args.cfg.users,
            args.cfg.duration
        );
        match rt.block_on(run_scenario(&args.cfg, *s)) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("confide-soak: {}: {e}", s.name());
                std::process::exit(2);
            }
        }
    }
    println!("{}", table(&reports));
    let mut passed = true;
    for r in &reports {
        let verdict = r.verdict();
        if !verdict.is_empty() {
            passed = false;
            println!("{} FAILED: {}", r.scenario, verdict.join("; "));
        }
        for p in &r.problems {
            println!("  {}: {p}", r.scenario);
        }
        if let Some(d) = &r.kept_dir {
            println!("  {}: server logs and data left in {d}", r.scenario);
        }
    }
    if let Some(path) = &args.json {
        let out = Output {
            server_bin: args.cfg.server_bin.display().to_string(),
            down_s: args.cfg.down.as_secs_f64(),
            think_ms: args.cfg.think.as_millis(),
            turns_per_thread: args.cfg.turns_per_thread,
            reply_timeout_s: args.cfg.reply_timeout.as_secs_f64(),
            redis_aof: args.cfg.redis_aof,
            passed,
            scenarios: &reports,
        };
        match serde_json::to_string_pretty(&out) {
            Ok(json) => {
                if let Err(e) = std::fs::write(path, json) {
                    eprintln!("confide-soak: cannot write {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("confide-soak: {e}"),
        }
    }
    if !passed {
        std::process::exit(1);
    }
}
