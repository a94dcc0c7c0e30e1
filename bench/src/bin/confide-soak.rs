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

struct Args {
    cfg: SoakConfig,
    scenarios: Vec<Scenario>,
    json: Option<PathBuf>,
}

fn secs(flag: &str, v: String) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{flag}: {v:?} is not a number of seconds"))
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        cfg: SoakConfig::new("target/release/confide"),
        scenarios: vec![Scenario::Redis, Scenario::Sqlite],
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let c = &mut a.cfg;
        match flag.as_str() {
            "--users" => c.users = value()?.parse().map_err(|e| format!("--users: {e}"))?,
            "--duration" => c.duration = secs(&flag, value()?)?,
            "--down" => c.down = secs(&flag, value()?)?,
            "--think-ms" => {
                c.think =
                    Duration::from_millis(value()?.parse().map_err(|e| format!("--think-ms: {e}"))?)
            }
            "--turns-per-thread" => {
                c.turns_per_thread = value()?
                    .parse()
                    .map_err(|e| format!("--turns-per-thread: {e}"))?
            }
            "--reply-timeout" => c.reply_timeout = secs(&flag, value()?)?,
            "--server-bin" => c.server_bin = value()?.into(),
            "--scenarios" => {
                a.scenarios = value()?
                    .split(',')
                    .map(|s| match s {
                        "both" => Ok(vec![Scenario::Redis, Scenario::Sqlite]),
                        s => Scenario::parse(s)
                            .map(|s| vec![s])
                            .ok_or_else(|| format!("unknown scenario {s:?} (redis, sqlite, both)")),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .concat()
            }
            "--json" => a.json = Some(value()?.into()),
            // Shows what losing acknowledged data looks like in the report.
            "--redis-without-aof" => c.redis_aof = false,
            "--help" | "-h" => {
                println!(
                    "confide-soak [--users N] [--duration S] [--scenarios redis,sqlite|both] \
                     [--server-bin PATH] [--down S] [--think-ms MS] [--turns-per-thread N] \
                     [--reply-timeout S] [--json FILE] [--redis-without-aof]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.cfg.users == 0 || a.cfg.turns_per_thread == 0 {
        return Err("--users and --turns-per-thread must be at least 1".into());
    }
    Ok(a)
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
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("confide-soak: {e}");
            std::process::exit(2);
        }
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
