//! Configuration: defaults, then `confide.toml` (or the file named by `CONFIDE_CONFIG`),
//! then `CONFIDE_*` environment variables, later sources winning.

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Deserializer, Serialize};
use std::{net::SocketAddr, path::PathBuf, time::Duration};
use url::Url;

/// Everything the server is configured with; each field is a key of `confide.toml` and a
/// `CONFIDE_<KEY>` environment variable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// The URL people use to reach Confide; decides cookie security. Defaults to
    /// `http://<addr>`.
    pub public_url: Option<Url>,
    /// Where the built site (`pkg/`, assets) lives.
    pub site_root: PathBuf,
    /// `memory`, `sqlite:<path>` or `redis://host:port/db`.
    pub store: StoreKind,
    /// SQLite commit durability: `full` (fsync every commit; survives power loss) or
    /// `normal` (survives a crash of Confide; faster).
    pub sqlite_sync: crate::store::SqliteDurability,
    /// Namespace of every Redis key (`<prefix>:{<session>}:…`), so several deployments
    /// can share one Redis.
    pub redis_prefix: String,
    /// Connections this instance keeps to PostgreSQL at most (the server's own
    /// `max_connections` is shared by every instance).
    pub postgres_pool: usize,
    /// A PEM file of certificate authorities trusted for PostgreSQL's TLS, beside the
    /// system's (a private CA, a cloud provider's bundle). TLS is used when the server offers
    /// it; `?sslmode=require` in the URL insists on it. The certificate is always verified.
    pub postgres_ca: Option<PathBuf>,
    /// A session ends after this long without a verified request.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub idle_timeout: Duration,
    /// A session ends this long after it was claimed, however active.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub absolute_timeout: Duration,
    /// How often expired sessions are swept.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub sweep_interval: Duration,
    /// Bound on every store call.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub store_timeout: Duration,
    /// Which assistant answers: `echo` (built in, offline) or `openai` (any
    /// OpenAI-compatible endpoint).
    pub assistant: AssistantKind,
    /// Pause between words of the echo assistant.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub echo_delay: Duration,
    /// Base URL of the OpenAI-compatible endpoint (`openai` assistant).
    pub openai_base_url: Option<Url>,
    /// API key for it, if it needs one. Never logged.
    pub openai_api_key: Option<crate::assistant::Secret>,
    /// Model name sent to the endpoint.
    pub model: String,
    /// Optional system prompt put before every conversation.
    pub system_prompt: Option<String>,
    /// Profiles a person can choose between (`[[profiles]]` tables): each a name, a
    /// description, starters, and optionally its own model and system prompt.
    pub profiles: Vec<crate::assistant::ModelProfile>,
    /// Most messages of a thread the assistant is shown: the latest ones. Bounds what a
    /// turn reads and sends however long the thread grows.
    pub history_turns: usize,
    /// How long a reply that asked the person a question waits for the answer.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub ask_timeout: Duration,
    /// Bound on connecting to the endpoint.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub openai_connect_timeout: Duration,
    /// Bound on waiting for the first byte and between two pieces of a reply.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub openai_read_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed, as a
    /// comma-separated list of IP addresses. Empty: no proxy is trusted.
    #[serde(deserialize_with = "ip_list")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// PEM certificate chain and private key: with both set, Confide serves HTTPS itself.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) that goes with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Optional plain-HTTP listener that only redirects to the public https URL.
    pub redirect_addr: Option<SocketAddr>,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Bound on handling one request, a page streamed in included (the event stream excepted).
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub request_timeout: Duration,
    /// Requests per second allowed from one client address that carry no proven session (page
    /// loads before a session exists, session starts, failed proofs), and the burst above
    /// that. A proven session's requests count against its own bucket instead, so anonymous
    /// traffic from an address never starves the people behind it.
    pub ip_rate: u32,
    /// The burst above `ip_rate` for one client address without a proven session.
    pub ip_burst: u32,
    /// New sessions one client address may claim per minute (also the burst). New ids cost
    /// nothing, so without this one client could rotate ids past every per-session limit.
    /// Generous, because a whole office or a carrier NAT shares an address.
    pub new_sessions_per_minute: u32,
    /// Messages all sessions of one client address may start per minute, and the burst.
    pub address_messages_per_minute: u32,
    /// The burst above `address_messages_per_minute` for one client address.
    pub address_messages_burst: u32,
    /// Requests per second allowed for one session, and the burst above that.
    pub session_rate: u32,
    /// The burst above `session_rate` for one session.
    pub session_burst: u32,
    /// Messages a session may send per minute (each starts a model reply).
    pub messages_per_minute: u32,
    /// Messages one account (or anonymous session) may send per UTC day; 0: no quota.
    pub quota_messages_per_day: u64,
    /// Model tokens one account's (or anonymous session's) replies may take per UTC day,
    /// as the endpoint reports them or estimated from the text; 0: no quota.
    pub quota_tokens_per_day: u64,
    /// Allow cookies without `Secure` on a plain-http public URL that is not loopback.
    #[serde(deserialize_with = "flag")]
    pub insecure_cookies: bool,
    /// Password sign-in, with accounts made by `confide user add`.
    #[serde(deserialize_with = "flag")]
    pub auth_password: bool,
    /// Anyone may create a password account from the sign-in page.
    #[serde(deserialize_with = "flag")]
    pub auth_registration: bool,
    /// Header in which a trusted proxy names the signed-in user (e.g. `X-Forwarded-User`);
    /// believed only from `trusted_proxies`.
    pub auth_header: Option<String>,
    /// OpenID Connect providers: `[[oidc]]` tables with `id`, `name`, `issuer`,
    /// `client_id`, `client_secret` and optional `scopes`.
    #[serde(default)]
    pub oidc: Vec<confide_core::auth::oidc::ProviderConfig>,
    /// Open event streams one session may hold (the oldest is closed when another opens),
    /// and in all on this instance (past that a new stream answers 503).
    pub streams_per_session: usize,
    /// Open event streams on this instance in all; past that a new stream answers 503
    /// `overloaded`.
    pub max_streams: usize,
    /// Bound on reading a request's headers, and on an idle keep-alive connection waiting
    /// for its next request: a client trickling bytes cannot hold a connection.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub header_timeout: Duration,
    /// Bearer token that `/metrics` requires. Without one, `/metrics` is not served.
    pub metrics_token: Option<crate::assistant::Secret>,
    /// How often an open event stream checks that its session is still live (a backstop: an
    /// ended session's streams are closed at once through the event hub; this catches
    /// expiry).
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub stream_recheck: Duration,
    /// Password attempts allowed per minute for one account, and from one address.
    pub login_attempts_per_account: u32,
    /// Password attempts allowed per minute from one client address (IPv6 per /64),
    /// whatever the account; past them a sign-in answers 429.
    pub login_attempts_per_address: u32,
    /// Sessions one account may have at once; signing in past it ends the oldest (0: no
    /// limit).
    pub max_sessions_per_account: usize,
    /// MCP servers whose tools the model is offered (the `[mcp]` table; see `server::mcp`).
    #[serde(default)]
    pub mcp: crate::mcp::McpConfig,
    /// Attachments: where they are kept and what is accepted (the `[files]` table; see
    /// `server::files`).
    #[serde(default)]
    pub files: crate::files::FilesConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: ([127, 0, 0, 1], 3000).into(),
            public_url: None,
            site_root: PathBuf::from("target/site"),
            store: StoreKind::Sqlite("./data/confide.db".into()),
            redis_prefix: "confide".into(),
            postgres_pool: 16,
            postgres_ca: None,
            sqlite_sync: crate::store::SqliteDurability::Full,
            idle_timeout: Duration::from_secs(app::DEFAULT_IDLE_SECS),
            absolute_timeout: Duration::from_secs(app::DEFAULT_ABSOLUTE_SECS),
            sweep_interval: Duration::from_secs(60),
            store_timeout: Duration::from_secs(2),
            assistant: AssistantKind::Echo,
            echo_delay: Duration::from_millis(40),
            openai_base_url: None,
            openai_api_key: None,
            model: "gpt-4o-mini".into(),
            system_prompt: None,
            profiles: Vec::new(),
            history_turns: 40,
            ask_timeout: Duration::from_secs(600),
            openai_connect_timeout: Duration::from_secs(5),
            openai_read_timeout: Duration::from_secs(60),
            insecure_cookies: false,
            trusted_proxies: Vec::new(),
            tls_cert: None,
            tls_key: None,
            redirect_addr: None,
            body_limit: 256 * 1024,
            request_timeout: Duration::from_secs(30),
            ip_rate: 200,
            ip_burst: 1_000,
            new_sessions_per_minute: 120,
            address_messages_per_minute: 600,
            address_messages_burst: 60,
            streams_per_session: 8,
            max_streams: 10_000,
            // Above the 10 s a browser keeps an unused connection open: a server closing at the
            // same moment races the browser's first request on it.
            header_timeout: Duration::from_secs(20),
            metrics_token: None,
            session_rate: 20,
            session_burst: 40,
            messages_per_minute: 30,
            quota_messages_per_day: 0,
            quota_tokens_per_day: 0,
            auth_password: false,
            auth_registration: false,
            auth_header: None,
            oidc: Vec::new(),
            stream_recheck: Duration::from_secs(10),
            login_attempts_per_account: 5,
            login_attempts_per_address: 30,
            max_sessions_per_account: 20,
            mcp: Default::default(),
            files: Default::default(),
        }
    }
}

/// Where sessions live, parsed from `memory`, `sqlite:<path>` or `redis://host:port/db`
/// as the configuration is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StoreKind {
    /// `memory`: in this process only, forgotten when it exits.
    Memory,
    /// `sqlite:<path>`: a SQLite database file on this machine.
    Sqlite(PathBuf),
    /// `redis://host:port/db` (or `rediss://`): a Redis server several instances can share;
    /// `redis+cluster://host:port,host:port`: a Redis Cluster, by any of its nodes.
    Redis(String),
    /// `postgres://user:password@host:port/database` (or `postgresql://`): a PostgreSQL
    /// database.
    Postgres(String),
}

impl TryFrom<String> for StoreKind {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let s = s.trim();
        if s == "memory" {
            Ok(Self::Memory)
        } else if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(
                    "store sqlite: needs a file path, e.g. sqlite:./data/confide.db".into(),
                );
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if [
            "redis://",
            "rediss://",
            "redis+cluster://",
            "rediss+cluster://",
        ]
        .iter()
        .any(|p| s.starts_with(p))
        {
            Ok(Self::Redis(s.to_owned()))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Self::Postgres(s.to_owned()))
        } else {
            Err(format!(
                "store {s:?} is not memory, sqlite:<path>, redis://host:port/db, \
                 redis+cluster://host:port,host:port or postgres://user@host:port/database"
            ))
        }
    }
}

impl From<StoreKind> for String {
    fn from(k: StoreKind) -> String {
        match k {
            StoreKind::Memory => "memory".into(),
            StoreKind::Sqlite(p) => format!("sqlite:{}", p.display()),
            StoreKind::Redis(url) | StoreKind::Postgres(url) => url,
        }
    }
}

/// For logs: a Redis or PostgreSQL URL's password is left out.
impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            // Several hosts are no URL the parser knows: mask by hand.
            Self::Redis(url) if url.contains("+cluster://") => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("redis+cluster", url));
                match rest.rsplit_once('@') {
                    Some((auth, hosts)) => {
                        let user = auth.split(':').next().unwrap_or("");
                        write!(f, "{scheme}://{user}:***@{hosts}")
                    }
                    None => write!(f, "{url}"),
                }
            }
            Self::Redis(url) | Self::Postgres(url) => match Url::parse(url) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    write!(f, "{u}")
                }
                Err(_) => write!(
                    f,
                    "{}://(unreadable url)",
                    url.split("://").next().unwrap_or("store")
                ),
            },
        }
    }
}

/// Which assistant answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssistantKind {
    /// Built in and offline: repeats the message, with a few commands for demos and tests.
    Echo,
    /// Any OpenAI-compatible chat-completions endpoint.
    Openai,
}

/// Why the configuration cannot be used; the server does not start with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read, or a value is not of its key's type.
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// The values were read but do not work together or are out of range.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads the configuration the server starts with.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var("CONFIDE_CONFIG").unwrap_or_else(|_| "confide.toml".into());
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        // cargo-leptos tells the binary where it put the site; an explicit
        // CONFIDE_SITE_ROOT still wins.
        if let Ok(root) = std::env::var("LEPTOS_SITE_ROOT") {
            fig = fig.merge(("site_root", root));
        }
        let config: Config = fig
            .merge(Toml::file(file))
            // `CONFIDE_FILES__DIR` is `dir` of the `[files]` table: a double underscore
            // goes one table down.
            .merge(
                Env::prefixed("CONFIDE_")
                    .ignore(&["config", "log"])
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// True when Confide runs behind (or as) an https front: HSTS and the http redirect apply.
    pub fn https(&self) -> bool {
        self.public_url().scheme() == "https"
    }

    /// `scheme://host[:port]` that browsers send as `Origin` for this deployment.
    pub fn public_origin(&self) -> String {
        self.public_url().origin().ascii_serialization()
    }

    /// Checks what reading alone cannot: that the values are in range and fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "set both CONFIDE_TLS_CERT and CONFIDE_TLS_KEY, or neither".into(),
            ));
        }
        if self.tls_cert.is_some() && !self.https() && self.public_url.is_some() {
            return Err(ConfigError::Invalid(
                "native TLS is on but the public URL is not https".into(),
            ));
        }
        if [
            self.ip_rate,
            self.ip_burst,
            self.session_rate,
            self.session_burst,
            self.messages_per_minute,
            self.new_sessions_per_minute,
            self.address_messages_per_minute,
            self.address_messages_burst,
        ]
        .contains(&0)
            || self.streams_per_session == 0
            || self.max_streams == 0
        {
            return Err(ConfigError::Invalid(
                "rate limits must be greater than zero".into(),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for p in &self.profiles {
            if p.id.trim().is_empty() || p.name.trim().is_empty() || !ids.insert(p.id.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "profile {:?}: each [[profiles]] table needs a unique id and a name",
                    p.id
                )));
            }
        }
        self.mcp.validate()?;
        self.files.validate()?;
        if self.history_turns == 0 {
            return Err(ConfigError::Invalid(
                "history_turns must be at least 1 (the message being answered)".into(),
            ));
        }
        if self.idle_timeout.is_zero() || self.absolute_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "timeouts must be greater than zero".into(),
            ));
        }
        if self.header_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "header_timeout must be greater than zero".into(),
            ));
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.0.len() < 16) {
            return Err(ConfigError::Invalid(
                "metrics_token must be at least 16 characters".into(),
            ));
        }
        if self.store_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "store_timeout must be greater than zero".into(),
            ));
        }
        if self.postgres_pool == 0 {
            return Err(ConfigError::Invalid(
                "postgres_pool must be at least 1".into(),
            ));
        }
        self.secure_cookies().map(|_| ())
    }

    /// The configured public URL, or else `http://<addr>` (`https` with native TLS).
    pub fn public_url(&self) -> Url {
        self.public_url.clone().unwrap_or_else(|| {
            let scheme = if self.tls_cert.is_some() {
                "https"
            } else {
                "http"
            };
            Url::parse(&format!("{scheme}://{}", self.addr))
                .expect("a socket address forms a valid URL")
        })
    }

    /// Whether cookies carry `Secure` and the `__Host-` prefix. Browsers honour `Secure`
    /// cookies over https and on loopback; anywhere else over plain http they would drop
    /// them, so the server refuses to start there unless told to go without.
    pub fn secure_cookies(&self) -> Result<bool, ConfigError> {
        let url = self.public_url();
        match url.scheme() {
            "https" => Ok(true),
            "http" if is_loopback(&url) => Ok(true),
            "http" if self.insecure_cookies => Ok(false),
            "http" => Err(ConfigError::Invalid(format!(
                "public URL {url} is plain http on a non-loopback host, where Secure cookies cannot \
                 work; serve Confide over https, or set CONFIDE_INSECURE_COOKIES=1 to run without \
                 cookie protection"
            ))),
            other => Err(ConfigError::Invalid(format!(
                "public URL scheme {other:?} is not http or https"
            ))),
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Accepts whole seconds (`90`) or a human duration (`90s`, `15m`, `24h`, `30d`).
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => {
            let t = t.trim();
            if let Ok(s) = t.parse::<u64>() {
                return Ok(Duration::from_secs(s));
            }
            humantime::parse_duration(t)
                .map_err(|e| serde::de::Error::custom(format!("{t:?}: {e}")))
        }
    }
}

/// Accepts a list or a comma-separated string of IP addresses.
fn ip_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<std::net::IpAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    let items = match Raw::deserialize(d)? {
        Raw::List(v) => v,
        Raw::Text(t) => t.split(',').map(str::to_owned).collect(),
    };
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an IP address")))
        })
        .collect()
}

/// Accepts `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Int(i64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Bool(b) => Ok(b),
        Raw::Int(1) => Ok(true),
        Raw::Int(0) => Ok(false),
        Raw::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            other => Err(serde::de::Error::custom(format!(
                "{other:?} is not a yes/no value"
            ))),
        },
        Raw::Int(n) => Err(serde::de::Error::custom(format!(
            "{n} is not a yes/no value"
        ))),
    }
}

pub(crate) fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let c: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(Box::new)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn profiles_come_from_tables_and_need_unique_ids() {
        let c = from_toml(
            r#"
model = "base"
[[profiles]]
id = "fast"
name = "Fast"
model = "small"
starters = [{ label = "Say hi", message = "Hi!" }]
[[profiles]]
id = "careful"
name = "Careful"
system_prompt = "Think first."
"#,
        )
        .unwrap();
        assert_eq!(c.profiles.len(), 2);
        assert_eq!(c.profiles[0].model.as_deref(), Some("small"));
        assert_eq!(c.profiles[0].starters[0].message, "Hi!");
        assert_eq!(c.profiles[1].model, None);
        for bad in [
            "[[profiles]]\nid = \"a\"\nname = \"A\"\n[[profiles]]\nid = \"a\"\nname = \"B\"",
            "[[profiles]]\nid = \"\"\nname = \"A\"",
            "[[profiles]]\nid = \"a\"\nname = \" \"",
        ] {
            assert!(from_toml(bad).is_err(), "{bad}");
        }
    }

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        for (k, v) in pairs {
            fig = fig.merge((*k, *v));
        }
        let c: Config = fig.extract().map_err(Box::new)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    // figment's own closure type: its error is figment's.
    #[allow(clippy::result_large_err)]
    fn nested_tables_take_environment_variables_with_a_double_underscore() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CONFIDE_FILES__BACKEND", "fs");
            jail.set_env("CONFIDE_FILES__DIR", "/srv/files");
            jail.set_env("CONFIDE_FILES__MAX_FILE_BYTES", "1000");
            jail.set_env("CONFIDE_FILES__MAX_SESSION_BYTES", "5000");
            jail.set_env("CONFIDE_ECHO_DELAY", "0");
            jail.set_env("CONFIDE_CONFIG", "/nonexistent.toml");
            let c = Config::load().map_err(|e| e.to_string())?;
            assert_eq!(c.files.backend, crate::files::FilesBackend::Fs);
            assert_eq!(
                c.files.dir.as_deref(),
                Some(std::path::Path::new("/srv/files"))
            );
            assert_eq!(
                (c.files.max_file_bytes, c.files.max_session_bytes),
                (1000, 5000)
            );
            assert_eq!(c.echo_delay, Duration::ZERO);
            Ok(())
        });
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = with(&[]).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.idle_timeout, Duration::from_secs(86_400));
        assert_eq!(c.absolute_timeout, Duration::from_secs(30 * 86_400));
        assert_eq!(c.history_turns, 40);
        assert!(with(&[("history_turns", "0")]).is_err());
        assert!(
            c.secure_cookies().unwrap(),
            "loopback http still gets Secure cookies"
        );
    }

    #[test]
    fn proxies_and_https_mode() {
        let c = with(&[("trusted_proxies", "10.0.0.1, ::1")]).unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(with(&[("trusted_proxies", "not-an-ip")]).is_err());
        let c = with(&[("public_url", "https://chat.example.com")]).unwrap();
        assert!(c.https());
        assert_eq!(c.public_origin(), "https://chat.example.com");
        assert!(with(&[("tls_cert", "/x.pem")]).is_err(), "cert without key");
    }

    #[test]
    fn store_urls_parse() {
        let kind = |s: &str| with(&[("store", s)]).map(|c| c.store);
        assert_eq!(kind("memory").unwrap(), StoreKind::Memory);
        assert_eq!(
            kind("sqlite:./data/x.db").unwrap(),
            StoreKind::Sqlite("./data/x.db".into())
        );
        assert_eq!(
            kind("sqlite:///var/lib/confide.db").unwrap(),
            StoreKind::Sqlite("/var/lib/confide.db".into())
        );
        assert_eq!(
            kind("redis://127.0.0.1:6379/0").unwrap(),
            StoreKind::Redis("redis://127.0.0.1:6379/0".into())
        );
        assert!(kind("sqlite:").is_err());
        assert_eq!(
            kind("postgres://confide@db:5432/confide").unwrap(),
            StoreKind::Postgres("postgres://confide@db:5432/confide".into())
        );
        assert_eq!(
            StoreKind::Postgres("postgresql://confide:hunter2hunter2@db/confide".into())
                .to_string(),
            "postgresql://confide:***@db/confide"
        );
        assert!(kind("mysql://x").is_err());
        assert_eq!(
            Config::default().store,
            StoreKind::Sqlite("./data/confide.db".into())
        );
        // Nor a cluster's.
        let shown = StoreKind::try_from(
            "redis+cluster://app:hunter2hunter2@10.0.0.1:7000,10.0.0.2:7000".to_owned(),
        )
        .unwrap()
        .to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("10.0.0.2:7000"), "{shown}");
        // Logs never carry a Redis password.
        let shown =
            StoreKind::Redis("redis://:hunter2hunter2@db.internal:6379/0".into()).to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db.internal:6379"), "{shown}");
    }

    #[test]
    fn kinds_are_parsed_as_the_configuration_is_read() {
        use crate::store::SqliteDurability;
        assert_eq!(
            with(&[("sqlite_sync", "normal")]).unwrap().sqlite_sync,
            SqliteDurability::Normal
        );
        assert_eq!(Config::default().sqlite_sync, SqliteDurability::Full);
        assert!(with(&[("sqlite_sync", "sometimes")]).is_err());
        assert_eq!(
            with(&[("assistant", "openai")]).unwrap().assistant,
            AssistantKind::Openai
        );
        assert_eq!(Config::default().assistant, AssistantKind::Echo);
        let err = with(&[("assistant", "gpt")]).unwrap_err().to_string();
        assert!(err.contains("assistant"), "{err}");
    }

    #[test]
    fn durations_take_seconds_or_units() {
        let c = with(&[("idle_timeout", "90"), ("absolute_timeout", "2h")]).unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.absolute_timeout, Duration::from_secs(7200));
        assert!(with(&[("idle_timeout", "soon")]).is_err());
        assert!(with(&[("idle_timeout", "0")]).is_err());
    }

    #[test]
    fn plain_http_elsewhere_needs_explicit_consent() {
        let err = with(&[("public_url", "http://chat.example.com")]).unwrap_err();
        assert!(
            err.to_string().contains("CONFIDE_INSECURE_COOKIES"),
            "{err}"
        );
        let c = with(&[
            ("public_url", "http://chat.example.com"),
            ("insecure_cookies", "1"),
        ])
        .unwrap();
        assert!(!c.secure_cookies().unwrap());
        let c = with(&[("public_url", "https://chat.example.com")]).unwrap();
        assert!(c.secure_cookies().unwrap());
        let c = with(&[("public_url", "http://localhost:8080")]).unwrap();
        assert!(c.secure_cookies().unwrap());
    }
}
