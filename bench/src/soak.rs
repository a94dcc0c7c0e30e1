//! Soak with faults: many simulated users chat with Confide for a while, all from one
//! address, while the components under them are killed with SIGKILL and started again.
//!
//! Scenario `redis`: two Confide processes on one `redis-server` (append-only file,
//! `appendfsync always`); every request goes to an instance picked at random, so sessions,
//! proofs and threads must cross instances. Redis is killed and restarted on its port and
//! directory, later instance 1 is killed and restarted on its port.
//! Scenario `sqlite`: one Confide on a SQLite file (`synchronous = FULL`), killed and
//! restarted mid-run.
//! Scenario `postgres`: two Confide processes on one PostgreSQL (fsync on); PostgreSQL is
//! killed and restarted on its port and data (it recovers from its write-ahead log), later
//! instance 1 is killed and restarted.
//! Scenario `redis-cluster`: two Confide processes on a Redis Cluster of three masters, each
//! with a replica; a master is failed over to its replica under load (`CLUSTER FAILOVER`,
//! which waits for the replica to catch up, so nothing acknowledged may be lost), later
//! instance 1 is killed and restarted. A master killed outright can lose the writes of its
//! last moment, since Redis replicates after it answers; the server's own tests cover that
//! case (`server/tests/redis.rs`).
//!
//! Each user claims a session once, then takes turns: a message with a unique text, then
//! `threads/get` until the reply has finished. A `messages/send` answered 200 is an
//! acknowledged message. What may happen during a fault is a failed request (a 5xx with a
//! code, or no answer at all), retried after a pause. What must never happen:
//!
//! - a wrong answer: a 2xx carrying someone else's text or missing an acknowledged message,
//!   a 404 for a thread the user owns, a session that is suddenly gone or claimed afresh;
//! - a lost acknowledged message: checked for every user once all faults have healed;
//! - a leak: any text in a user's threads that is not the user's own.
//!
//! Every third message carries a small file of unique bytes, uploaded just before it (the
//! instances share one files directory). An acknowledged message's file must download
//! byte for byte at the end; and once the sweep has had its time (uploads not taken up
//! expire after 4 s here), no file may be left that belongs to no message (taken up by a
//! message a kill kept from being stored), is half written, or was abandoned.
//!
//! A reply whose generating process died (or whose store went away under it) may stay
//! `streaming` forever; those are counted as interrupted, and the user moves on to a new
//! thread. A reply stuck that way with no fault to explain it is a defect.

use crate::{
    client::{Answer, Browser, transport_label},
    postgres::PostgresServer,
    procs::{self, Child, ConfideSpec, RedisSpec, TempDir, free_port},
    redis_cluster::RedisCluster,
};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Redis,
    Sqlite,
    Postgres,
    RedisCluster,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::RedisCluster => "redis-cluster",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub server_bin: PathBuf,
    pub users: usize,
    /// How long users keep starting turns; the faults are placed inside this span.
    pub duration: Duration,
    /// How long a killed component stays down before it is started again.
    pub down: Duration,
    /// Pause after a turn (±50 % jitter), like a person reading the reply.
    pub think: Duration,
    /// A user starts a new thread after this many turns, so threads stay short.
    pub turns_per_thread: usize,
    /// A reply not finished after this long counts as interrupted.
    pub reply_timeout: Duration,
    /// Bound on one request.
    pub request_timeout: Duration,
    /// Leave the working directory (server logs, data) behind when the run fails.
    pub keep_failed: bool,
    /// Redis with its append-only file (`appendfsync always`). Off, a Redis restart loses
    /// everything: a way to see that the checks notice.
    pub redis_aof: bool,
}

impl SoakConfig {
    pub fn new(server_bin: impl Into<PathBuf>) -> Self {
        Self {
            server_bin: server_bin.into(),
            users: 1000,
            duration: Duration::from_secs(75),
            down: Duration::from_secs(2),
            think: Duration::from_millis(500),
            turns_per_thread: 10,
            reply_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(10),
            keep_failed: true,
            redis_aof: true,
        }
    }
}

/// One injected fault and how the system came back from it.
#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    pub fault: String,
    /// Seconds from the start of the run to the SIGKILL.
    pub at_s: f64,
    /// SIGKILL to the start of the restart (the configured down time, plus reaping).
    pub down_s: f64,
    /// Restart to the process answering (Redis: data loaded; Confide: `/healthz` 200).
    pub restart_s: f64,
    /// SIGKILL to the first request that succeeded through the restarted component.
    pub recovery_s: Option<f64>,
    /// The same, counted from the start of the restart.
    pub recovery_after_restart_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakReport {
    pub scenario: String,
    pub instances: usize,
    pub users: usize,
    pub duration_s: f64,
    /// Requests of the run itself (the final check not included).
    pub requests_ok: u64,
    pub requests_failed: u64,
    /// Failed requests by `<status> <code>`, or by what happened to the connection.
    pub failures: BTreeMap<String, u64>,
    /// Of those, the ones that ended outside every fault window (from the SIGKILL to two
    /// seconds after recovery, on the instances the component serves): overload, or defects.
    pub failures_outside_faults: BTreeMap<String, u64>,
    pub wrong_answers: u64,
    pub acknowledged: u64,
    pub acknowledged_per_s: f64,
    pub lost_acks: u64,
    /// Answers of the run, and messages or titles in the final check, carrying text that
    /// is not the user's own.
    pub leaks: u64,
    pub replies_done: u64,
    /// Replies still `streaming` at their deadline because their instance was killed.
    pub interrupted_by_kill: u64,
    /// Replies still `streaming` at their deadline because the store went away under them
    /// (their instance lived on).
    pub interrupted_by_store_restart: u64,
    /// Replies still `streaming` at their deadline with no fault to explain it.
    pub stuck_replies: u64,
    /// Replies that ended otherwise than `done` (`error`, `stopped`), by status.
    pub replies_not_done: BTreeMap<String, u64>,
    /// Threads left because a failed send had left a reply in them that never finishes
    /// (`409 busy` twice).
    pub threads_left_busy: u64,
    /// Session ids given up because the claim landed but its answer was lost.
    pub sessions_restarted: u64,
    pub sessions_checked: u64,
    pub threads_checked: u64,
    pub messages_checked: u64,
    /// Messages still `streaming` in the final check (replies that will never finish).
    pub streaming_at_end: u64,
    /// Sessions the final check could not read even after retries.
    pub sessions_unverified: u64,
    /// Files sent with acknowledged messages; of those, the ones that did not download
    /// byte for byte at the end.
    pub files_acknowledged: u64,
    pub files_lost: u64,
    /// Files a message took up that no message in the final check carries.
    pub files_orphaned: u64,
    /// Bytes without their description, or a staging file left behind.
    pub files_half_written: u64,
    /// Uploads no stored message carries (their send failed), still there at the end
    /// although `pending_ttl` (4 s here) has passed: should be none.
    pub files_pending: u64,
    pub faults: Vec<FaultReport>,
    /// The first few wrong answers, lost messages, leaks and stuck replies, in words.
    pub problems: Vec<String>,
    /// Where the server logs and data were left, for a failed run.
    pub kept_dir: Option<String>,
}

impl SoakReport {
    /// Why the run failed; empty when it passed.
    pub fn verdict(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut bad = |n: u64, what: &str| {
            if n > 0 {
                v.push(format!("{n} {what}"));
            }
        };
        bad(self.lost_acks, "acknowledged messages lost");
        bad(self.leaks, "cross-session leaks");
        bad(self.wrong_answers, "wrong answers");
        bad(
            self.stuck_replies,
            "replies stuck with no fault to explain it",
        );
        bad(self.sessions_unverified, "sessions not verifiable");
        bad(self.files_lost, "acknowledged files lost");
        bad(self.files_orphaned, "orphaned files");
        bad(self.files_half_written, "half-written files");
        bad(self.files_pending, "abandoned uploads the sweep left");
        for f in &self.faults {
            if f.recovery_s.is_none() {
                v.push(format!("no recovery from: {}", f.fault));
            }
        }
        if self.acknowledged == 0 {
            v.push("no message was acknowledged at all".into());
        }
        v
    }

    pub fn passed(&self) -> bool {
        self.verdict().is_empty()
    }
}

// ---- faults -------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The store: every instance depends on it.
    Store,
    Instance(usize),
}

impl Target {
    fn covers(self, instance: usize) -> bool {
        match self {
            Self::Store => true,
            Self::Instance(i) => i == instance,
        }
    }
}

#[derive(Debug, Clone)]
struct Fault {
    name: String,
    target: Target,
    /// A Confide process dies (and its replies in progress with it), not the store.
    kills_instance: bool,
    at: Instant,
    restarted: Option<Instant>,
    ready: Option<Instant>,
    first_success: Option<Instant>,
}

#[derive(Default)]
struct FaultLog {
    /// Some fault still waits for its first success: the slow path must look.
    open: AtomicBool,
    faults: Mutex<Vec<Fault>>,
}

impl FaultLog {
    fn begin(&self, name: &str, target: Target, kills_instance: bool) -> usize {
        let mut f = self.faults.lock().unwrap();
        f.push(Fault {
            name: name.to_owned(),
            target,
            kills_instance,
            at: Instant::now(),
            restarted: None,
            ready: None,
            first_success: None,
        });
        self.open.store(true, Ordering::SeqCst);
        f.len() - 1
    }

    fn update(&self, i: usize, change: impl FnOnce(&mut Fault)) {
        if let Some(f) = self.faults.lock().unwrap().get_mut(i) {
            change(f);
        }
    }

    /// A request sent at `sent` to `instance` succeeded at `done`.
    fn success(&self, instance: usize, sent: Instant, done: Instant) {
        if !self.open.load(Ordering::SeqCst) {
            return;
        }
        let mut faults = self.faults.lock().unwrap();
        let mut open = false;
        for f in faults.iter_mut().filter(|f| f.first_success.is_none()) {
            // Sent once the restart had begun, and answered: it went through the restarted
            // component (one sent earlier may have slipped through just before the kill).
            if f.target.covers(instance) && f.restarted.is_some_and(|r| sent >= r) {
                f.first_success = Some(done);
            } else {
                open = true;
            }
        }
        self.open.store(open, Ordering::SeqCst);
    }

    fn snapshot(&self) -> Vec<Fault> {
        self.faults.lock().unwrap().clone()
    }
}

// ---- users --------------------------------------------------------------------------------

struct Shared {
    cfg: SoakConfig,
    bases: Vec<String>,
    http: reqwest::Client,
    /// No new turn starts after this.
    stop_at: Instant,
    faults: FaultLog,
}

#[derive(Debug, Clone)]
struct Acked {
    message: String,
    text: String,
    /// The file the message carried: its id and bytes.
    file: Option<(String, Vec<u8>)>,
}

#[derive(Default)]
struct UserStats {
    ok: u64,
    failures: BTreeMap<String, u64>,
    /// When each failure was seen, on which instance, and what it was.
    failure_times: Vec<(Instant, usize, String)>,
    wrong: u64,
    replies_done: u64,
    interrupted_by_kill: u64,
    interrupted_by_store: u64,
    stuck: u64,
    replies_not_done: BTreeMap<String, u64>,
    threads_left_busy: u64,
    sessions_restarted: u64,
    /// Answers of the run that carried text not this user's.
    leaks_seen: u64,
    problems: Vec<String>,
}

#[derive(Default)]
struct Verification {
    sessions: u64,
    threads: u64,
    messages: u64,
    lost: u64,
    leaks: u64,
    streaming: u64,
    unverified: u64,
    files: u64,
    files_lost: u64,
    /// Every file id a message of the user's carries.
    seen_files: HashSet<String>,
    problems: Vec<String>,
}

const PROBLEMS_PER_USER: usize = 5;

fn note(problems: &mut Vec<String>, what: String) {
    if problems.len() < PROBLEMS_PER_USER {
        problems.push(what);
    }
}

/// Codes saying the session is not there (or not ours) any more.
fn session_gone(code: &str) -> bool {
    matches!(
        code,
        "no_session" | "session_proof_mismatch" | "session_claimed"
    )
}

/// The echo's text without what it says of the files first ("I received 1 file:\n\n- `…`
/// (…)", a blank line, then the text): only the text tells whose a reply is.
fn echo_text(content: &str) -> &str {
    match content.strip_prefix("I received ") {
        Some(_) => content
            .rsplit_once("\n\n")
            .map_or(content, |(_, text)| text),
        None => content,
    }
}

/// Pause before retry number `attempt` (1-based): 50 ms doubling to 1 s, plus jitter.
fn backoff(attempt: u32, jitter: u64) -> Duration {
    let base = 50u64 << attempt.clamp(1, 5).saturating_sub(1);
    Duration::from_millis(base.min(1000) + jitter % 50)
}

struct User {
    idx: usize,
    /// The first word of every text this user sends: `s<idx>-<8 random hex digits>`.
    prefix: String,
    b: Browser,
    rng: u64,
    counter: u64,
    attempted: HashSet<String>,
    /// Acknowledged messages by thread id.
    acked: HashMap<String, Vec<Acked>>,
    acked_count: u64,
    thread: Option<Current>,
    stats: UserStats,
}

/// The thread a user is chatting in.
struct Current {
    id: String,
    turns: usize,
    /// A send to it went unanswered or failed with a 5xx: the server may have stored part
    /// of it (the message, a reply that will never finish).
    unsure: bool,
    busy: u32,
}

impl User {
    fn new(idx: usize) -> Self {
        let seed = uuid::Uuid::new_v4().as_u128();
        let mut u = Self {
            idx,
            prefix: String::new(),
            b: Browser::new(),
            rng: (seed as u64) | 1,
            counter: 0,
            attempted: HashSet::new(),
            acked: HashMap::new(),
            acked_count: 0,
            thread: None,
            stats: UserStats::default(),
        };
        u.prefix = format!("s{idx}-{:08x}", u.next() as u32);
        u
    }

    /// xorshift64*: plenty for picking instances and jitter.
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn wrong(&mut self, what: String) {
        self.stats.wrong += 1;
        note(
            &mut self.stats.problems,
            format!("user {}: {what}", self.idx),
        );
    }

    async fn pause(&mut self, attempt: u32) {
        let j = self.next();
        tokio::time::sleep(backoff(attempt, j)).await;
    }

    /// One request to a random instance, counted; `None` when no answer came.
    async fn request(
        &mut self,
        sh: &Shared,
        endpoint: &str,
        body: &Value,
    ) -> Option<(Answer, usize)> {
        let i = (self.next() % sh.bases.len() as u64) as usize;
        let sent = Instant::now();
        match self.b.request(&sh.http, &sh.bases[i], endpoint, body).await {
            Ok(a) => {
                if a.proof_replaced {
                    self.wrong(format!(
                        "{endpoint} on instance {i} issued a new proof: the server had forgotten the session"
                    ));
                }
                if a.is_success() {
                    self.stats.ok += 1;
                    sh.faults.success(i, sent, Instant::now());
                } else {
                    self.failed(format!("{} {}", a.status, a.code()), i);
                    if session_gone(a.code()) && self.b.proof.is_some() {
                        self.wrong(format!(
                            "{endpoint} on instance {i} answered {} {}: the session is gone",
                            a.status,
                            a.code()
                        ));
                    }
                }
                Some((a, i))
            }
            Err(e) => {
                self.failed(transport_label(&e).to_owned(), i);
                None
            }
        }
    }

    fn failed(&mut self, label: String, instance: usize) {
        *self.stats.failures.entry(label.clone()).or_default() += 1;
        self.stats
            .failure_times
            .push((Instant::now(), instance, label));
    }

    /// Whether a message in one of this user's threads could only have come from this user.
    fn own(&self, m: &Value) -> bool {
        let content = m["content"].as_str().unwrap_or("");
        let done = m["status"] == "done";
        let content = match m["role"].as_str() {
            Some("assistant") if !done && content.starts_with("I received ") => {
                // Still in the list of files: no text of anyone's yet.
                match content.rsplit_once("\n\n") {
                    Some((_, text)) if !text.starts_with("- `") => text,
                    _ => "",
                }
            }
            Some("assistant") => echo_text(content),
            _ => content,
        };
        match m["role"].as_str() {
            Some("user") => self.attempted.contains(content),
            // A finished echo is the text itself; an unfinished one is whole words of it.
            Some("assistant") if done => self.attempted.contains(content),
            Some("assistant") => {
                content.is_empty()
                    || content
                        .strip_prefix(self.prefix.as_str())
                        .is_some_and(|rest| rest.starts_with(' '))
            }
            _ => false,
        }
    }

    /// Describes content that is not this user's: another user's, or nobody's.
    fn whose(&self, content: &str) -> String {
        let first = content.split_whitespace().next().unwrap_or("");
        let other = first
            .strip_prefix('s')
            .and_then(|r| r.split_once('-'))
            .filter(|(n, tag)| n.parse::<usize>().is_ok() && tag.len() == 8)
            .map(|(n, _)| n.to_owned());
        match other {
            Some(n) if first != self.prefix => format!("user {n}'s text {content:?}"),
            _ => format!("unrecognised text {content:?}"),
        }
    }

    /// Checks a `threads/get` answer of the run: only own text, every acknowledged message
    /// of the thread there and unchanged. Returns false if it was wrong.
    fn check_view(&mut self, view: &Value, thread: &str, instance: usize) -> bool {
        let mut problems = Vec::new();
        if view["thread"]["id"] != thread {
            problems.push(format!("asked for thread {thread}, got {}", view["thread"]));
        }
        let empty = Vec::new();
        let messages = view["messages"].as_array().unwrap_or(&empty);
        let mut leaked = false;
        for m in messages {
            if !self.own(m) || m["thread_id"] != thread {
                leaked = true;
                problems.push(format!(
                    "{} in thread {thread}",
                    self.whose(m["content"].as_str().unwrap_or(""))
                ));
            }
        }
        self.stats.leaks_seen += u64::from(leaked);
        for a in self.acked.get(thread).into_iter().flatten() {
            let found = messages.iter().find(|m| m["id"] == a.message.as_str());
            if found.is_none_or(|m| m["content"] != a.text.as_str()) {
                problems.push(format!(
                    "acknowledged message {} ({:?}) missing or changed",
                    a.message, a.text
                ));
            }
        }
        let ok = problems.is_empty();
        for p in problems {
            self.wrong(format!("threads/get on instance {instance}: {p}"));
        }
        ok
    }

    /// Claims a session, retrying through faults. False if the run ended first.
    async fn start(&mut self, sh: &Shared) -> bool {
        let mut attempt = 0;
        while Instant::now() < sh.stop_at {
            match self.request(sh, "session/start", &json!({})).await {
                Some((a, i)) if a.is_success() => {
                    if self.b.proof.is_none() {
                        self.wrong(format!(
                            "session/start on instance {i} answered 200 without a proof"
                        ));
                    }
                    return true;
                }
                // An earlier attempt claimed the id but its answer, with the proof, was
                // lost: like the web client, start over with a new id.
                Some((a, _)) if self.b.proof.is_none() && session_gone(a.code()) => {
                    self.b = Browser::new();
                    self.stats.sessions_restarted += 1;
                }
                _ => {}
            }
            attempt += 1;
            self.pause(attempt).await;
        }
        false
    }

    async fn run(mut self, sh: Arc<Shared>) -> Self {
        // Spread the first requests over a second rather than all at once.
        let spread = sh.cfg.duration.min(Duration::from_secs(1)).as_millis() as u64;
        tokio::time::sleep(Duration::from_millis(
            (self.idx as u64 * spread) / sh.cfg.users.max(1) as u64,
        ))
        .await;
        if !self.start(&sh).await {
            return self;
        }
        let mut attempt = 0;
        while Instant::now() < sh.stop_at {
            if self.turn(&sh).await {
                attempt = 0;
                let think = sh.cfg.think.as_millis() as u64;
                if think > 0 {
                    let j = think / 2 + self.next() % think.max(1);
                    tokio::time::sleep(Duration::from_millis(j)).await;
                }
            } else {
                attempt += 1;
                self.pause(attempt).await;
            }
        }
        self
    }

    /// One turn: a message, then its reply. False if the message was not acknowledged.
    async fn turn(&mut self, sh: &Shared) -> bool {
        self.counter += 1;
        let token = self.next() as u32;
        let text = format!("{} n{} {token:08x}", self.prefix, self.counter);
        self.attempted.insert(text.clone());
        let thread = self.thread.as_ref().map(|t| t.id.clone());
        let file = if self.counter.is_multiple_of(3) {
            self.upload(sh, &text).await
        } else {
            None
        };
        let files: Vec<&str> = file.iter().map(|(id, _)| id.as_str()).collect();
        let body = match &thread {
            Some(t) => json!({ "thread_id": t, "content": text, "files": files }),
            None => json!({ "content": text, "files": files }),
        };
        let sent_at = Instant::now();
        let answer = self.request(sh, "messages/send", &body).await;
        if answer.as_ref().is_none_or(|(a, _)| a.status >= 500)
            && let Some(t) = &mut self.thread
        {
            t.unsure = true;
        }
        let Some((a, instance)) = answer else {
            return false;
        };
        if !a.is_success() {
            match (a.code(), &mut self.thread) {
                // A failed send left a reply nobody generates: retry once, then leave the
                // thread, as a person would after a while (or press Stop).
                ("busy", Some(t)) if t.unsure => {
                    t.busy += 1;
                    if t.busy >= 2 {
                        self.stats.threads_left_busy += 1;
                        self.thread = None;
                    }
                }
                ("busy", _) => {
                    self.wrong(format!(
                        "messages/send on instance {instance}: 409 busy although every reply in thread {} had finished",
                        thread.as_deref().unwrap_or("(new)")
                    ));
                    self.thread = None;
                }
                ("not_found", Some(_)) => {
                    self.wrong(format!(
                        "messages/send on instance {instance}: 404 for own thread {}",
                        thread.as_deref().unwrap_or("")
                    ));
                    self.thread = None;
                }
                (code, _) if a.status < 500 && a.status != 429 && !session_gone(code) => {
                    self.wrong(format!(
                        "messages/send on instance {instance}: unexpected {} {}",
                        a.status, a.body
                    ));
                }
                _ => {}
            }
            return false;
        }
        let s = &a.body;
        let tid = s["thread"]["id"].as_str().unwrap_or("").to_owned();
        let user_id = s["user"]["id"].as_str().unwrap_or("").to_owned();
        let reply_id = s["reply"]["id"].as_str().unwrap_or("").to_owned();
        let right = s["user"]["content"] == text.as_str()
            && s["user"]["thread_id"] == tid.as_str()
            && s["reply"]["role"] == "assistant"
            && !tid.is_empty()
            && !user_id.is_empty()
            && !reply_id.is_empty()
            && thread.as_ref().is_none_or(|t| *t == tid)
            && s["user"]["attachments"].as_array().map_or(0, Vec::len) == files.len();
        if !right {
            let foreign = ["user", "reply"]
                .iter()
                .any(|k| s[k].is_object() && !self.own(&s[k]));
            self.stats.leaks_seen += u64::from(foreign);
            self.wrong(format!(
                "messages/send on instance {instance} answered 200 with {s} for {text:?}"
            ));
            self.thread = None;
            return false;
        }
        self.acked.entry(tid.clone()).or_default().push(Acked {
            message: user_id,
            text: text.clone(),
            file,
        });
        self.acked_count += 1;
        let turns = self.thread.as_ref().map_or(0, |t| t.turns) + 1;
        // Accepted, so nothing streamed in the thread any more: earlier failures left no trace
        // that matters.
        self.thread = Some(Current {
            id: tid.clone(),
            turns,
            unsure: false,
            busy: 0,
        });
        let finished = self
            .await_reply(sh, &tid, &reply_id, &text, instance, sent_at)
            .await;
        if !finished || turns >= sh.cfg.turns_per_thread {
            self.thread = None;
        }
        true
    }

    /// Uploads a file of unique bytes for the message `text`; its id and bytes, or `None`
    /// when the upload failed (the message then goes without).
    async fn upload(&mut self, sh: &Shared, text: &str) -> Option<(String, Vec<u8>)> {
        let bytes = format!("file of {text}\n").into_bytes();
        let i = (self.next() % sh.bases.len() as u64) as usize;
        let sent = Instant::now();
        match self
            .b
            .upload(&sh.http, &sh.bases[i], "note.txt", bytes.clone())
            .await
        {
            Ok(a) if a.is_success() => {
                self.stats.ok += 1;
                sh.faults.success(i, sent, Instant::now());
                let id = a.body["id"].as_str().unwrap_or("").to_owned();
                if id.is_empty() || a.body["size"] != bytes.len() || a.body["mime"] != "text/plain"
                {
                    self.wrong(format!(
                        "files on instance {i} answered 200 with {}",
                        a.body
                    ));
                    return None;
                }
                Some((id, bytes))
            }
            Ok(a) => {
                self.failed(format!("upload {} {}", a.status, a.code()), i);
                if a.status < 500 && a.status != 429 && !session_gone(a.code()) {
                    self.wrong(format!(
                        "files on instance {i}: unexpected {} {}",
                        a.status, a.body
                    ));
                }
                None
            }
            Err(e) => {
                self.failed(format!("upload {}", transport_label(&e)), i);
                None
            }
        }
    }

    /// Downloads file `id` as the final check does: retried through faults; the status and
    /// bytes of the last try.
    async fn fetch_file(&mut self, sh: &Shared, id: &str) -> Option<(u16, Vec<u8>)> {
        for attempt in 1..=20 {
            let i = (self.next() % sh.bases.len() as u64) as usize;
            if let Ok((status, bytes)) = self.b.download(&sh.http, &sh.bases[i], id).await
                && status < 500
            {
                return Some((status, bytes));
            }
            self.pause(attempt).await;
        }
        None
    }

    /// Polls the thread until nothing in it streams. False if the reply did not finish.
    async fn await_reply(
        &mut self,
        sh: &Shared,
        thread: &str,
        reply: &str,
        text: &str,
        generator: usize,
        sent_at: Instant,
    ) -> bool {
        let deadline = Instant::now() + sh.cfg.reply_timeout;
        let mut wait = Duration::from_millis(20);
        let mut last_status = String::from("unknown");
        loop {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(200));
            let body = json!({ "thread_id": thread });
            if let Some((a, i)) = self.request(sh, "threads/get", &body).await {
                if a.is_success() {
                    if !self.check_view(&a.body, thread, i) {
                        return false;
                    }
                    let empty = Vec::new();
                    let messages = a.body["messages"].as_array().unwrap_or(&empty);
                    let Some(r) = messages.iter().find(|m| m["id"] == reply) else {
                        self.wrong(format!(
                            "threads/get on instance {i}: reply {reply} is not in thread {thread}"
                        ));
                        return false;
                    };
                    last_status = r["status"].as_str().unwrap_or("").to_owned();
                    if !messages.iter().any(|m| m["status"] == "streaming") {
                        if last_status == "done" {
                            self.stats.replies_done += 1;
                            if echo_text(r["content"].as_str().unwrap_or("")) != text {
                                self.wrong(format!(
                                    "reply {reply} finished as {:?}, not the echo of {text:?}",
                                    r["content"]
                                ));
                            }
                        } else {
                            *self.stats.replies_not_done.entry(last_status).or_default() += 1;
                        }
                        return true;
                    }
                } else if a.code() == "not_found" {
                    self.wrong(format!(
                        "threads/get on instance {i}: 404 for own thread {thread}"
                    ));
                    return false;
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        // Which fault, if any, came after the message was sent and could have cut it off.
        let faults = sh.faults.snapshot();
        let after = |f: &&Fault| f.at >= sent_at;
        if faults
            .iter()
            .filter(after)
            .any(|f| f.kills_instance && f.target.covers(generator))
        {
            self.stats.interrupted_by_kill += 1;
        } else if faults
            .iter()
            .filter(after)
            .any(|f| f.target == Target::Store)
        {
            self.stats.interrupted_by_store += 1;
        } else {
            self.stats.stuck += 1;
            note(
                &mut self.stats.problems,
                format!(
                    "user {}: reply {reply} in thread {thread} (instance {generator}) still {last_status} \
                     after {:?}, no fault since it was sent",
                    self.idx, sh.cfg.reply_timeout
                ),
            );
        }
        false
    }

    /// One call of the final check, retried until it is answered without a 5xx.
    async fn checked(&mut self, sh: &Shared, endpoint: &str, body: Value) -> Option<Answer> {
        for attempt in 1..=20 {
            let i = (self.next() % sh.bases.len() as u64) as usize;
            if let Ok(a) = self
                .b
                .request(&sh.http, &sh.bases[i], endpoint, &body)
                .await
                && a.status < 500
            {
                return Some(a);
            }
            self.pause(attempt).await;
        }
        None
    }

    /// After the run, with every fault healed: every acknowledged message is there with its
    /// exact text, and nothing in the user's threads is anyone else's.
    async fn verify(&mut self, sh: &Shared) -> Verification {
        let mut v = Verification::default();
        if self.b.proof.is_none() {
            return v;
        }
        v.sessions = 1;
        let all_acked = self.acked_count;
        let Some(start) = self.checked(sh, "session/start", json!({})).await else {
            v.unverified = 1;
            return v;
        };
        if !start.is_success() || start.body["new"] != false || start.proof_replaced {
            v.lost = all_acked;
            note(
                &mut v.problems,
                format!(
                    "user {}: the session is gone after the run ({} {}): {all_acked} acknowledged messages with it",
                    self.idx, start.status, start.body
                ),
            );
            return v;
        }
        let Some(list) = self.checked(sh, "threads/list", json!({})).await else {
            v.unverified = 1;
            return v;
        };
        let mut threads: Vec<String> = Vec::new();
        for t in list.body.as_array().into_iter().flatten() {
            let title = t["title"].as_str().unwrap_or("");
            if title != "New chat" && !self.attempted.contains(title) {
                v.leaks += 1;
                note(
                    &mut v.problems,
                    format!(
                        "user {}: a thread titled with {}",
                        self.idx,
                        self.whose(title)
                    ),
                );
            }
            threads.extend(t["id"].as_str().map(str::to_owned));
        }
        for t in self.acked.keys() {
            if !threads.contains(t) {
                threads.push(t.clone());
            }
        }
        for thread in threads {
            let Some(a) = self
                .checked(sh, "threads/get", json!({ "thread_id": thread }))
                .await
            else {
                v.unverified = 1;
                continue;
            };
            let acked = self.acked.get(&thread).cloned().unwrap_or_default();
            if !a.is_success() {
                v.lost += acked.len() as u64;
                if !acked.is_empty() {
                    note(
                        &mut v.problems,
                        format!(
                            "user {}: thread {thread} with {} acknowledged messages answers {} {}",
                            self.idx,
                            acked.len(),
                            a.status,
                            a.code()
                        ),
                    );
                }
                continue;
            }
            v.threads += 1;
            let empty = Vec::new();
            let messages = a.body["messages"].as_array().unwrap_or(&empty);
            for m in messages {
                for a in m["attachments"].as_array().into_iter().flatten() {
                    v.seen_files.extend(a["id"].as_str().map(str::to_owned));
                }
                v.messages += 1;
                if m["status"] == "streaming" {
                    v.streaming += 1;
                }
                if !self.own(m) || m["thread_id"] != thread.as_str() {
                    v.leaks += 1;
                    note(
                        &mut v.problems,
                        format!(
                            "user {}: {} in thread {thread}",
                            self.idx,
                            self.whose(m["content"].as_str().unwrap_or(""))
                        ),
                    );
                }
            }
            for ack in &acked {
                let found = messages.iter().find(|m| m["id"] == ack.message.as_str());
                if let Some((id, bytes)) = &ack.file {
                    v.files += 1;
                    let carried = found.is_some_and(|m| {
                        m["attachments"][0]["id"] == id.as_str()
                            && m["attachments"].as_array().map_or(0, Vec::len) == 1
                    });
                    let got = self.fetch_file(sh, id).await;
                    if !carried || got.as_ref().is_none_or(|(s, b)| *s != 200 || b != bytes) {
                        v.files_lost += 1;
                        note(
                            &mut v.problems,
                            format!(
                                "user {}: the file {id} of acknowledged message {} is {}",
                                self.idx,
                                ack.message,
                                match got {
                                    Some((200, _)) if carried => "changed".to_owned(),
                                    Some((s, _)) => format!("answered {s} (carried: {carried})"),
                                    None => "unreadable".to_owned(),
                                }
                            ),
                        );
                    }
                }
                if found.is_none_or(|m| m["content"] != ack.text.as_str() || m["role"] != "user") {
                    v.lost += 1;
                    note(
                        &mut v.problems,
                        format!(
                            "user {}: acknowledged message {} ({:?}) in thread {thread} is {}",
                            self.idx,
                            ack.message,
                            ack.text,
                            if found.is_some() { "changed" } else { "gone" }
                        ),
                    );
                }
            }
        }
        v
    }
}

// ---- the run ------------------------------------------------------------------------------

/// The store's processes, which a fault strikes.
enum StoreProcs {
    /// An embedded store (SQLite): nothing apart from the instances.
    Embedded,
    Redis(RedisSpec, Option<Child>),
    /// `None` only while a blocking task holds it.
    Postgres(Option<PostgresServer>),
    RedisCluster(Option<RedisCluster>),
}

/// The processes of a scenario, restartable in place.
struct Cluster {
    store: StoreProcs,
    instances: Vec<(ConfideSpec, Option<Child>)>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("task failed: {e}"))?
}

impl Cluster {
    async fn start(cfg: &SoakConfig, scenario: Scenario, dir: &TempDir) -> Result<Self, String> {
        let (store, url) = match scenario {
            Scenario::Redis => {
                let spec = RedisSpec {
                    port: free_port(),
                    dir: dir.path().join("redis"),
                    aof: cfg.redis_aof,
                    log: Some(dir.path().join("redis.log")),
                };
                let s = spec.clone();
                let child = blocking(move || procs::start_redis(&s)).await?;
                let url = spec.url();
                (StoreProcs::Redis(spec, Some(child)), url)
            }
            Scenario::Sqlite => (
                StoreProcs::Embedded,
                format!("sqlite:{}", dir.path().join("soak.db").display()),
            ),
            Scenario::Postgres => {
                let pg = blocking(|| Ok(PostgresServer::start_durable())).await?;
                let url = pg.fresh_database().await;
                (StoreProcs::Postgres(Some(pg)), url)
            }
            Scenario::RedisCluster => {
                let c = blocking(|| Ok(RedisCluster::start())).await?;
                let url = c.url();
                (StoreProcs::RedisCluster(Some(c)), url)
            }
        };
        let mut cluster = Cluster {
            store,
            instances: Vec::new(),
        };
        let n = match scenario {
            Scenario::Sqlite => 1,
            Scenario::Redis | Scenario::Postgres | Scenario::RedisCluster => 2,
        };
        for i in 0..n {
            let spec = ConfideSpec {
                log: Some(dir.path().join(format!("confide-{i}.log"))),
                files_dir: Some(dir.path().join("files")),
                ..ConfideSpec::new(&cfg.server_bin, url.clone())
            };
            let s = spec.clone();
            let (child, _) = blocking(move || procs::start_confide(&s)).await?;
            cluster.instances.push((spec, Some(child)));
        }
        Ok(cluster)
    }

    fn bases(&self) -> Vec<String> {
        self.instances.iter().map(|(s, _)| s.base()).collect()
    }

    /// Strikes the target: SIGKILL, down for `down`, started again where it was; on a Redis
    /// Cluster, a planned failover of a master while the load runs.
    async fn fault(
        &mut self,
        faults: &FaultLog,
        target: Target,
        down: Duration,
    ) -> Result<(), String> {
        let Target::Store = target else {
            return self.kill_instance(faults, target, down).await;
        };
        match &mut self.store {
            StoreProcs::Embedded => Err("an embedded store has no process to kill".into()),
            StoreProcs::Redis(spec, slot) => {
                let mut child = slot.take().ok_or("nothing to kill")?;
                let fault = faults.begin(
                    "Redis SIGKILL + restart (same port, same AOF)",
                    target,
                    false,
                );
                blocking(move || {
                    child.kill();
                    Ok(())
                })
                .await?;
                tokio::time::sleep(down).await;
                faults.update(fault, |f| f.restarted = Some(Instant::now()));
                let s = spec.clone();
                *slot = Some(blocking(move || procs::start_redis(&s)).await?);
                faults.update(fault, |f| f.ready = Some(Instant::now()));
                Ok(())
            }
            StoreProcs::Postgres(slot) => {
                let mut pg = slot.take().ok_or("no PostgreSQL")?;
                let fault = faults.begin(
                    "PostgreSQL SIGKILL + restart (same port, same data, WAL recovery)",
                    target,
                    false,
                );
                let mut pg = blocking(move || {
                    pg.kill_keeping_data();
                    Ok(pg)
                })
                .await?;
                tokio::time::sleep(down).await;
                faults.update(fault, |f| f.restarted = Some(Instant::now()));
                let pg = blocking(move || pg.start_again().map(|()| pg)).await?;
                *slot = Some(pg);
                faults.update(fault, |f| f.ready = Some(Instant::now()));
                Ok(())
            }
            StoreProcs::RedisCluster(slot) => {
                let c = slot.take().ok_or("no Redis Cluster")?;
                let fault = faults.begin(
                    "Redis Cluster: planned failover of a master to its replica",
                    target,
                    false,
                );
                let c = blocking(move || {
                    let master = *c.masters().first().ok_or("no master")?;
                    c.fail_over(master);
                    Ok(c)
                })
                .await?;
                *slot = Some(c);
                let now = Instant::now();
                faults.update(fault, |f| {
                    f.restarted = Some(now);
                    f.ready = Some(now);
                });
                Ok(())
            }
        }
    }

    async fn kill_instance(
        &mut self,
        faults: &FaultLog,
        target: Target,
        down: Duration,
    ) -> Result<(), String> {
        let Target::Instance(i) = target else {
            return Err("not an instance".into());
        };
        let (spec, slot) = self.instances.get_mut(i).ok_or("no such instance")?;
        let mut child = slot.take().ok_or("nothing to kill")?;
        let fault = faults.begin(
            &format!("instance {i} SIGKILL + restart (same port)"),
            target,
            true,
        );
        blocking(move || {
            child.kill();
            Ok(())
        })
        .await?;
        tokio::time::sleep(down).await;
        faults.update(fault, |f| f.restarted = Some(Instant::now()));
        let s = spec.clone();
        let (child, _) = blocking(move || procs::start_confide(&s)).await?;
        *slot = Some(child);
        faults.update(fault, |f| f.ready = Some(Instant::now()));
        Ok(())
    }

    async fn stop(self) {
        let _ = blocking(move || {
            drop(self);
            Ok(())
        })
        .await;
    }
}

/// When, as fractions of the run, the faults of a scenario strike.
fn schedule(scenario: Scenario) -> Vec<(f64, Target)> {
    match scenario {
        Scenario::Redis | Scenario::Postgres | Scenario::RedisCluster => {
            vec![(0.3, Target::Store), (0.6, Target::Instance(1))]
        }
        Scenario::Sqlite => vec![(0.5, Target::Instance(0))],
    }
}

/// Runs one scenario from scratch (own processes, own temporary directory) and reports.
pub async fn run_scenario(cfg: &SoakConfig, scenario: Scenario) -> Result<SoakReport, String> {
    let mut dir = TempDir::new(&format!("confide-soak-{}", scenario.name()))?;
    let result = run_in(cfg, scenario, &dir).await;
    let keep = match &result {
        Ok(r) => !r.passed(),
        Err(_) => true,
    } && cfg.keep_failed;
    if keep {
        dir.keep();
    }
    let kept = keep.then(|| dir.path().display().to_string());
    match result {
        Ok(mut r) => {
            r.kept_dir = kept;
            Ok(r)
        }
        Err(e) => Err(match kept {
            Some(d) => format!("{e} (logs and data left in {d})"),
            None => e,
        }),
    }
}

async fn run_in(cfg: &SoakConfig, scenario: Scenario, dir: &TempDir) -> Result<SoakReport, String> {
    let mut cluster = Cluster::start(cfg, scenario, dir).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(cfg.users.max(16))
        .timeout(cfg.request_timeout)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let started = Instant::now();
    let sh = Arc::new(Shared {
        cfg: cfg.clone(),
        bases: cluster.bases(),
        http,
        stop_at: started + cfg.duration,
        faults: FaultLog::default(),
    });
    let tasks: Vec<_> = (0..cfg.users)
        .map(|i| tokio::spawn(User::new(i).run(sh.clone())))
        .collect();

    let mut fault_error = None;
    for (when, target) in schedule(scenario) {
        tokio::time::sleep_until((started + cfg.duration.mul_f64(when)).into()).await;
        if let Err(e) = cluster.fault(&sh.faults, target, cfg.down).await {
            fault_error = Some(e);
            break;
        }
    }
    if let Some(e) = fault_error {
        for t in &tasks {
            t.abort();
        }
        cluster.stop().await;
        return Err(format!("injecting a fault failed: {e}"));
    }

    let mut users = Vec::with_capacity(tasks.len());
    for t in tasks {
        users.push(t.await.map_err(|e| format!("a user task failed: {e}"))?);
    }
    let elapsed = started.elapsed();

    // Every fault has healed: read everything back.
    let checks: Vec<(User, Verification)> = futures::stream::iter(users)
        .map(|mut u| {
            let sh = sh.clone();
            async move {
                let v = u.verify(&sh).await;
                (u, v)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    // What the faults left is the sweep's to clear: give it its time, and a sweep or two; a
    // sweep's pass over a thousand owners takes a while on a busy machine, so wait (up to a
    // minute) until nothing is left rather than a fixed time.
    tokio::time::sleep(procs::FILES_TTL + Duration::from_secs(3)).await;
    let seen: HashSet<String> = checks
        .iter()
        .flat_map(|(_, v)| v.seen_files.iter().cloned())
        .collect();
    let files = dir.path().join("files");
    let swept_by = Instant::now() + Duration::from_secs(60);
    while Instant::now() < swept_by && !files_left(&files, &seen).is_clean() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    cluster.stop().await;

    let faults = sh.faults.snapshot();
    let mut r = SoakReport {
        scenario: scenario.name().into(),
        instances: sh.bases.len(),
        users: cfg.users,
        duration_s: elapsed.as_secs_f64(),
        ..SoakReport::default()
    };
    let grace = Duration::from_secs(2);
    let in_fault = |at: Instant, instance: usize| {
        faults.iter().any(|f| {
            let end = [f.first_success, f.ready, f.restarted]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or_else(Instant::now);
            f.target.covers(instance) && at >= f.at && at <= end + grace
        })
    };
    let mut problems = Vec::new();
    for (u, v) in &checks {
        let s = &u.stats;
        r.requests_ok += s.ok;
        for (k, n) in &s.failures {
            *r.failures.entry(k.clone()).or_default() += n;
            r.requests_failed += n;
        }
        for (at, i, label) in &s.failure_times {
            if !in_fault(*at, *i) {
                *r.failures_outside_faults.entry(label.clone()).or_default() += 1;
            }
        }
        r.wrong_answers += s.wrong;
        r.acknowledged += u.acked_count;
        r.replies_done += s.replies_done;
        r.interrupted_by_kill += s.interrupted_by_kill;
        r.interrupted_by_store_restart += s.interrupted_by_store;
        r.stuck_replies += s.stuck;
        for (k, n) in &s.replies_not_done {
            *r.replies_not_done.entry(k.clone()).or_default() += n;
        }
        r.sessions_restarted += s.sessions_restarted;
        r.threads_left_busy += s.threads_left_busy;
        r.sessions_checked += v.sessions;
        r.threads_checked += v.threads;
        r.messages_checked += v.messages;
        r.lost_acks += v.lost;
        r.leaks += v.leaks + s.leaks_seen;
        r.streaming_at_end += v.streaming;
        r.sessions_unverified += v.unverified;
        r.files_acknowledged += v.files;
        r.files_lost += v.files_lost;
        problems.extend(s.problems.iter().cloned());
        problems.extend(v.problems.iter().cloned());
    }
    let left = files_left(&files, &seen);
    r.files_orphaned = left.orphaned;
    r.files_half_written = left.half_written;
    r.files_pending = left.pending;
    problems.extend(left.problems);
    problems.truncate(40);
    r.problems = problems;
    r.acknowledged_per_s = r.acknowledged as f64 / elapsed.as_secs_f64().max(1e-9);
    let secs = |a: Instant, b: Option<Instant>| b.map(|b| b.duration_since(a).as_secs_f64());
    r.faults = faults
        .iter()
        .map(|f| FaultReport {
            fault: f.name.clone(),
            at_s: f.at.duration_since(started).as_secs_f64(),
            down_s: secs(f.at, f.restarted).unwrap_or(0.0),
            restart_s: f.restarted.and_then(|s| secs(s, f.ready)).unwrap_or(0.0),
            recovery_s: secs(f.at, f.first_success),
            recovery_after_restart_s: f.restarted.and_then(|r| secs(r, f.first_success)),
        })
        .collect();
    Ok(r)
}

/// What the files directory holds after the run, against the files the final check saw in
/// messages.
#[derive(Default)]
struct FilesLeft {
    orphaned: u64,
    half_written: u64,
    pending: u64,
    problems: Vec<String>,
}

impl FilesLeft {
    fn is_clean(&self) -> bool {
        self.orphaned == 0 && self.half_written == 0 && self.pending == 0
    }
}

/// Walks `<dir>/f/<owner>/`: each file's bytes and description (`<id>.json`) come in pairs,
/// no staging file (`…#n`) is left, and every description that names a thread belongs to a
/// file some message carries.
fn files_left(dir: &std::path::Path, seen: &HashSet<String>) -> FilesLeft {
    let mut left = FilesLeft::default();
    let Ok(owners) = std::fs::read_dir(dir.join("f")) else {
        return left;
    };
    for owner in owners.flatten() {
        let Ok(entries) = std::fs::read_dir(owner.path()) else {
            continue;
        };
        let names: HashSet<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for name in &names {
            if name.contains('#') {
                left.half_written += 1;
                left.problems.push(format!("a staging file left: {name}"));
            } else if let Some(id) = name.strip_suffix(".json") {
                if !names.contains(id) {
                    left.half_written += 1;
                    left.problems
                        .push(format!("a description without bytes: {name}"));
                    continue;
                }
                let meta: Value = std::fs::read(owner.path().join(name))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(Value::Null);
                if meta["thread"].is_string() {
                    if !seen.contains(id) {
                        left.orphaned += 1;
                        left.problems
                            .push(format!("file {id} belongs to a message nobody has"));
                    }
                } else {
                    left.pending += 1;
                    left.problems.push(format!(
                        "an upload no message took up, not swept: {}/{name}",
                        owner.file_name().to_string_lossy()
                    ));
                }
            } else if !names.contains(&format!("{name}.json")) {
                left.half_written += 1;
                left.problems
                    .push(format!("bytes without a description: {name}"));
            }
        }
    }
    left
}

// ---- output -------------------------------------------------------------------------------

/// The reports as Markdown tables, as they go into BENCHMARKS.md.
pub fn table(reports: &[SoakReport]) -> String {
    let list = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_owned()
        } else {
            m.iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut out = String::new();
    out.push_str(
        "| scenario | users | run | acknowledged messages (/s) | requests ok | requests failed | wrong answers | lost acks | leaks | verdict |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let verdict = r.verdict();
        out.push_str(&format!(
            "| {} ({} instance{}) | {} | {:.0} s | {} ({:.0}) | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.instances,
            if r.instances == 1 { "" } else { "s" },
            r.users,
            r.duration_s,
            r.acknowledged,
            r.acknowledged_per_s,
            r.requests_ok,
            r.requests_failed,
            r.wrong_answers,
            r.lost_acks,
            r.leaks,
            if verdict.is_empty() {
                "pass".to_owned()
            } else {
                format!("**FAIL**: {}", verdict.join("; "))
            },
        ));
    }
    out.push_str(
        "\n| scenario | files sent with acknowledged messages | lost | orphaned | half written | pending (send failed) |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in reports {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.files_acknowledged,
            r.files_lost,
            r.files_orphaned,
            r.files_half_written,
            r.files_pending,
        ));
    }
    out.push_str(
        "\n| scenario | fault | at | down | restart | recovery: SIGKILL → first success through it (from the restart) |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in reports {
        for f in &r.faults {
            out.push_str(&format!(
                "| {} | {} | {:.1} s | {:.2} s | {:.2} s | {} |\n",
                r.scenario,
                f.fault,
                f.at_s,
                f.down_s,
                f.restart_s,
                match (f.recovery_s, f.recovery_after_restart_s) {
                    (Some(s), Some(r)) => format!("{s:.2} s ({r:.2} s)"),
                    _ => "**none**".into(),
                },
            ));
        }
    }
    out.push_str(
        "\n| scenario | failed requests by status and code | of which outside fault windows |\n\
         |---|---|---|\n",
    );
    for r in reports {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            r.scenario,
            list(&r.failures),
            list(&r.failures_outside_faults),
        ));
    }
    out.push_str(
        "\n| scenario | replies done | interrupted by instance kill | interrupted by store restart | stuck, no fault | ended otherwise | threads left busy after a failed send | final check: read back (still streaming) |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} sessions, {} threads, {} messages ({}){} |\n",
            r.scenario,
            r.replies_done,
            r.interrupted_by_kill,
            r.interrupted_by_store_restart,
            r.stuck_replies,
            list(&r.replies_not_done),
            r.threads_left_busy,
            r.sessions_checked,
            r.threads_checked,
            r.messages_checked,
            r.streaming_at_end,
            if r.sessions_unverified > 0 {
                format!("; **{} sessions unreadable**", r.sessions_unverified)
            } else {
                String::new()
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_of_texts() {
        let mut u = User::new(7);
        let text = format!("{} n1 0000abcd", u.prefix);
        u.attempted.insert(text.clone());
        let m = |role: &str, status: &str, content: &str| json!({ "role": role, "status": status, "content": content });
        assert!(u.own(&m("user", "done", &text)));
        assert!(u.own(&m("assistant", "done", &text)));
        assert!(u.own(&m("assistant", "streaming", "")));
        assert!(u.own(&m("assistant", "streaming", &format!("{} n1 ", u.prefix))));
        assert!(!u.own(&m("user", "done", &format!("{} n2 00000000", u.prefix))));
        let other = User::new(70);
        let theirs = format!("{} n1 0000abcd", other.prefix);
        assert!(!u.own(&m("user", "done", &theirs)));
        assert!(!u.own(&m("assistant", "streaming", &theirs)));
        // Another user whose number starts with ours is still another user.
        assert!(!u.own(&m("assistant", "error", &format!("{}1 n1", u.prefix))));
        assert!(u.whose(&theirs).starts_with("user 70's text"));
        assert!(u.whose("hello").starts_with("unrecognised"));
    }

    #[test]
    fn recovery_counts_only_requests_sent_after_the_fault() {
        let log = FaultLog::default();
        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let f = log.begin("x", Target::Instance(1), true);
        log.success(1, Instant::now(), Instant::now());
        assert!(
            log.snapshot()[f].first_success.is_none(),
            "not restarted yet: slipped through before the kill"
        );
        log.update(f, |f| f.restarted = Some(Instant::now()));
        log.success(1, before, Instant::now());
        log.success(0, Instant::now(), Instant::now());
        assert!(log.snapshot()[f].first_success.is_none());
        log.success(1, Instant::now(), Instant::now());
        assert!(log.snapshot()[f].first_success.is_some());
        assert!(!log.open.load(Ordering::SeqCst));
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(backoff(1, 0) < backoff(3, 0));
        assert!(backoff(30, 49) <= Duration::from_millis(1049));
    }
}
