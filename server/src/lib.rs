//! Confide's server: configuration, the HTTP stack, store backends.
//!
//! `app(state)` builds the whole router and is kept apart from `main` so tests can serve it
//! on a random port exactly as the binary does.

#![warn(missing_docs)]

pub mod assistant;
pub mod cli;
pub mod config;
pub mod files;
pub mod mcp;
pub mod metrics;
mod middleware;
mod run;
pub mod store;
mod streams;
pub mod testing;

use app::{ApiError, App, shell};

use axum::{
    Extension, Router,
    extract::State,
    response::{
        IntoResponse,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{any, get},
};
use confide_core::{
    GuardConfig, Lifetimes, SessionStore, VerifiedSession,
    assistant::Assistant,
    chat::ChatRuntime,
    events::{EventHub, Feed, LocalHub},
    store::Timed,
    tools::Tools,
};
use futures::{Stream, StreamExt};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use sha2::{Digest, Sha256};
use std::{convert::Infallible, net::SocketAddr};
use std::{future::Future, sync::Arc};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

pub use config::{AssistantKind, Config, ConfigError, StoreKind};
pub use run::{init_logging, run_app, shutdown_signal};
pub use store::{
    MemoryStore, PostgresHub, PostgresStore, RedisHub, RedisStore, SqliteDurability, SqliteStore,
};

/// Everything a request handler may need. Cloned for every request (by each middleware and
/// for every server function's context), so a clone is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds, built once when the server starts.
#[derive(Clone)]
pub struct Shared {
    /// The configuration the server started with.
    pub config: Arc<Config>,
    /// Where sessions live; every call is bounded by `store_timeout`.
    pub store: Arc<dyn SessionStore>,
    /// Session lifetimes and the cookie mode, for the session guard.
    pub guard: GuardConfig,
    /// Where Leptos finds the built site, for rendering pages and serving `pkg/`.
    pub leptos: LeptosOptions,
    /// The assistant, the event hub and the replies in progress.
    pub chat: Arc<ChatRuntime>,
    /// The rate limiters, per client address and per session.
    pub limits: Arc<middleware::Limiters>,
    /// Signing in and out, and the accounts' sessions.
    pub auth: Arc<confide_core::auth::Auth>,
    /// The open event streams, bounded per session and in all.
    pub streams: Arc<streams::Streams>,
    /// Whether this process terminates TLS itself.
    pub tls: bool,
    /// `config.https()` and `config.public_origin()`, worked out once: every request asks.
    pub https: bool,
    /// The public origin (`config.public_origin()`), likewise worked out once.
    pub origin: String,
    /// The tools of the configured MCP servers (`[mcp]`), connected at start. The
    /// OpenAI-compatible assistant of the configuration offers them; an app with its own
    /// assistant adds them to its tools (`Tools::with_all(state.mcp_tools.clone())`).
    pub mcp_tools: Tools,
    /// The sessions' files (`[files]`).
    pub files: Arc<confide_core::files::FileStore>,
}

impl AppState {
    /// State with the given store and an in-process event hub.
    pub fn new(config: Config, store: Arc<dyn SessionStore>) -> Result<Self, ConfigError> {
        Self::with_hub(config, store, Arc::new(LocalHub::default()))
    }

    /// State with the given store and event hub (a shared hub for several instances).
    pub fn with_hub(
        config: Config,
        store: Arc<dyn SessionStore>,
        hub: Arc<dyn EventHub>,
    ) -> Result<Self, ConfigError> {
        // The store came from the caller, not from `config.store`: files follow the
        // `[files]` table, and with `auto` stay in memory beside it.
        let files = Arc::new(config.files.open(&StoreKind::Memory)?);
        Self::build(config, store, hub, Tools::new(), files)
    }

    fn build(
        config: Config,
        store: Arc<dyn SessionStore>,
        hub: Arc<dyn EventHub>,
        mcp_tools: Tools,
        files: Arc<confide_core::files::FileStore>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let secure_cookies = config.secure_cookies()?;
        let guard = GuardConfig {
            lifetimes: lifetimes(&config),
            secure_cookies,
        };
        // Every store call of every request, reply and task is bounded here, once.
        let store = Timed::wrap(store, config.store_timeout);
        let leptos = LeptosOptions::builder()
            .output_name(option_env!("LEPTOS_OUTPUT_NAME").unwrap_or("confide"))
            .site_root(config.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(config.addr)
            .build();
        let assistant = assistant_from(&config, &mcp_tools)?;
        let mut chat = ChatRuntime::new(assistant, hub.clone());
        chat.history_turns = config.history_turns;
        chat.ask_timeout = config.ask_timeout;
        chat.files = files.clone();
        chat.quotas = confide_core::chat::Quotas {
            messages_per_day: config.quota_messages_per_day,
            tokens_per_day: config.quota_tokens_per_day,
        };
        let chat = Arc::new(chat);
        let limits = Arc::new(middleware::Limiters::new(&config));
        let tls = config.tls_cert.is_some();
        let auth = Arc::new(
            confide_core::auth::Auth::new(auth_config(&config)?, guard.clone(), store.clone(), hub)
                .map_err(ConfigError::Invalid)?
                .with_files(files.clone()),
        );
        let (https, origin) = (config.https(), config.public_origin());
        let streams = Arc::new(streams::Streams::new(
            config.streams_per_session,
            config.max_streams,
        ));
        Ok(Self(Arc::new(Shared {
            https,
            origin,
            streams,
            config: Arc::new(config),
            store,
            auth,
            guard,
            leptos,
            chat,
            limits,
            tls,
            mcp_tools,
            files,
        })))
    }

    /// Replaces the assistant: the way to plug in your own model without forking.
    pub fn with_assistant(self, assistant: Arc<dyn Assistant>) -> Self {
        let mut shared = Shared::clone(&self.0);
        let mut chat = ChatRuntime::new(assistant, self.chat.hub().clone());
        chat.history_turns = self.chat.history_turns;
        chat.ask_timeout = self.chat.ask_timeout;
        chat.files = self.files.clone();
        chat.quotas = self.chat.quotas;
        shared.chat = Arc::new(chat);
        Self(Arc::new(shared))
    }

    /// State with the store the configuration names (`CONFIDE_STORE`).
    pub async fn from_config(config: Config) -> Result<Self, ConfigError> {
        let l = lifetimes(&config);
        let (store, hub): (Arc<dyn SessionStore>, Arc<dyn EventHub>) = match config.store.clone() {
            StoreKind::Memory => (Arc::new(MemoryStore::new(l)), Arc::new(LocalHub::default())),
            StoreKind::Sqlite(path) => (
                Arc::new(
                    SqliteStore::open_with(&path, l, config.store_timeout, config.sqlite_sync)
                        .await
                        .map_err(|e| {
                            ConfigError::Invalid(format!(
                                "cannot open SQLite store {}: {e}",
                                path.display()
                            ))
                        })?,
                ),
                Arc::new(LocalHub::default()),
            ),
            // Redis carries both the data and the live events, so any instance can serve
            // any request and every tab hears every instance.
            StoreKind::Redis(url) => {
                let store =
                    RedisStore::connect(&url, &config.redis_prefix, l, config.store_timeout)
                        .await
                        .map_err(|e| {
                            ConfigError::Invalid(format!("cannot use the Redis store: {e}"))
                        })?;
                let hub = RedisHub::connect(&url, &config.redis_prefix)
                    .await
                    .map_err(|e| {
                        ConfigError::Invalid(format!("cannot use Redis for live events: {e}"))
                    })?;
                (Arc::new(store), Arc::new(hub))
            }
            // PostgreSQL alone serves several instances: live events go over LISTEN/NOTIFY.
            StoreKind::Postgres(url) => {
                let ca = config.postgres_ca.as_deref();
                let store =
                    PostgresStore::connect(&url, l, config.postgres_pool, config.store_timeout, ca)
                        .await
                        .map_err(|e| {
                            ConfigError::Invalid(format!("cannot use the PostgreSQL store: {e}"))
                        })?;
                let hub = PostgresHub::connect(&url, ca).await.map_err(|e| {
                    ConfigError::Invalid(format!("cannot use PostgreSQL for live events: {e}"))
                })?;
                (Arc::new(store), Arc::new(hub))
            }
        };
        // Connected after the store: a server that cannot be reached stops the start.
        let mcp_tools = config.mcp.connect().await?;
        let files = Arc::new(config.files.open(&config.store)?);
        Self::build(config, store, hub, mcp_tools, files)
    }
}

impl axum::extract::FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

fn assistant_from(config: &Config, tools: &Tools) -> Result<Arc<dyn Assistant>, ConfigError> {
    match config.assistant {
        AssistantKind::Echo => Ok(Arc::new(assistant::EchoAssistant {
            delay: config.echo_delay,
        })),
        AssistantKind::Openai => {
            let base_url = config.openai_base_url.clone().ok_or_else(|| {
                ConfigError::Invalid(
                    "CONFIDE_ASSISTANT=openai needs CONFIDE_OPENAI_BASE_URL".into(),
                )
            })?;
            let a = assistant::OpenAiAssistant::new(assistant::OpenAiConfig {
                base_url: base_url.clone(),
                api_key: config.openai_api_key.clone(),
                model: config.model.clone(),
                system_prompt: config.system_prompt.clone(),
                connect_timeout: config.openai_connect_timeout,
                read_timeout: config.openai_read_timeout,
                profiles: config.profiles.clone(),
                include_usage: config.quota_tokens_per_day > 0,
                ..assistant::OpenAiConfig::new(base_url.clone(), config.model.clone())
            })
            .map_err(ConfigError::Invalid)?
            .with_tools(tools.clone());
            Ok(Arc::new(a))
        }
    }
}

fn auth_config(config: &Config) -> Result<confide_core::auth::AuthConfig, ConfigError> {
    let header = match &config.auth_header {
        Some(h) if !h.trim().is_empty() => Some(
            axum::http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes()).map_err(
                |_| ConfigError::Invalid(format!("auth_header {h:?} is not a header name")),
            )?,
        ),
        _ => None,
    };
    if header.is_some() && config.trusted_proxies.is_empty() {
        return Err(ConfigError::Invalid(
            "auth_header needs trusted_proxies: the header is believed only from them".into(),
        ));
    }
    Ok(confide_core::auth::AuthConfig {
        password: config.auth_password,
        registration: config.auth_registration,
        header,
        oidc: config.oidc.clone(),
        public_origin: config.public_origin(),
        attempts_per_account: config.login_attempts_per_account,
        attempts_per_address: config.login_attempts_per_address,
        max_sessions_per_account: config.max_sessions_per_account,
    })
}

/// The session lifetimes `config` sets (`idle_timeout`, `absolute_timeout`).
pub fn lifetimes(config: &Config) -> Lifetimes {
    Lifetimes {
        idle: config.idle_timeout,
        absolute: config.absolute_timeout,
    }
}

/// The app's routes, found once per process. Finding them renders the app with resource
/// loading switched off, and Leptos switches it off for the whole process (a global flag in
/// `leptos_server` 0.8.8): a page rendering anywhere else meanwhile creates resources that
/// never load, and its render never finishes. Once, before anything is served, nothing
/// renders beside it however many apps a process builds.
fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    metrics::count_panics();
    let routes = route_list();
    let leptos_options = state.leptos.clone();
    let state_for_edge = state.clone();

    let guarded = Router::new()
        .leptos_routes_with_context(&state, routes, app::page_nonce, move || {
            shell(leptos_options.clone())
        })
        // Unknown API paths answer in the API's own format, not with an HTML page.
        .route("/api/events", get(events))
        .route(
            "/api/files",
            axum::routing::post(files::upload).layer(axum::extract::DefaultBodyLimit::max(
                upload_body_limit(&state.config),
            )),
        )
        .route("/api/files/{id}", get(files::download))
        .route(
            "/api/{*rest}",
            any(|| async { ApiError::not_found().into_response() }),
        )
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(app::page_nonce, shell))
        .layer(Extension(state.chat.clone()))
        .layer(Extension(state.auth.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::session_guard,
        ))
        .with_state(state);

    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(metrics_endpoint).with_state(state_for_edge.clone()),
        )
        .merge(guarded);
    wrap(router, state_for_edge)
}

/// The largest upload request: one file and the form around it.
fn upload_body_limit(config: &Config) -> usize {
    usize::try_from(
        config
            .files
            .max_file_bytes
            .saturating_add(files::FORM_ALLOWANCE),
    )
    .unwrap_or(usize::MAX)
}

/// The layers every route runs under, outermost last: panics become 500s, then the edge
/// rules (redirect, headers, per-address limit, timeout), then metrics and tracing. Public so
/// tests can put a route of their own under the same stack.
pub fn wrap(router: Router, state: AppState) -> Router {
    router
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            metrics::panic_response,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::edge,
        ))
        .layer(axum::middleware::from_fn(metrics::record))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Metrics are for the operator, who configures a bearer token for them. A peer address
/// says nothing: behind a reverse proxy on the same host every request comes from loopback.
/// Without a token `/metrics` answers 404 like any unknown path.
async fn metrics_endpoint(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let Some(token) = state.config.metrics_token.as_ref() else {
        return ApiError::not_found().into_response();
    };
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = Sha256::digest(token.0.as_bytes());
    let given = Sha256::digest(presented.as_bytes());
    if !bool::from(expected.ct_eq(&given)) {
        let mut res = ApiError::new(
            app::ErrorCode::Unauthorized,
            "metrics need the configured bearer token",
        )
        .into_response();
        res.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        return res;
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        metrics::METRICS.render(),
    )
        .into_response()
}

/// The session's live events as Server-Sent Events. SSE rather than a websocket: the
/// traffic is one-way (requests go through server functions), it passes every proxy as
/// plain HTTP, the browser reconnects by itself, and the session cookie authenticates it
/// like any other request.
async fn events(
    State(state): State<AppState>,
    session: Option<Extension<VerifiedSession>>,
) -> axum::response::Response {
    let Some(Extension(session)) = session else {
        return ApiError::no_session().into_response();
    };
    let ticket = match state.streams.open(*session.id()) {
        Ok(t) => t,
        Err(e) => {
            let mut res = e.into_response();
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            return res;
        }
    };
    // A signed-in user's threads live in their home, and so do their events: every
    // browser of the user hears them. The end of this browser's session is announced under
    // its own id, so such a stream listens there too.
    let hub = state.chat.hub();
    let feed = match session.home() {
        Some(home) => {
            futures::stream::select(hub.subscribe(home), hub.subscribe(session.id())).boxed()
        }
        None => hub.subscribe(session.id()),
    };
    // Ends are announced through the hub. Expiry is not an event anyone sends, but its
    // moment is known: the stream wakes when the store would call the session expired and
    // looks, so every instance closes it then, within moments. Between those, a look every
    // `stream_recheck` is the backstop for an announcement lost in a hub outage. A look
    // compares the claim, not just the id, so a stream can never carry on into anything but
    // the session it was opened for.
    let store = state.store.clone();
    let (id, home, created_ms) = (*session.id(), session.home().copied(), session.created_ms());
    let lifetimes = session.lifetimes();
    let every = state.config.stream_recheck;
    let recheck = async move {
        loop {
            let wait = match store.peek(&id).await {
                Ok(Some(t)) if t.home == home && t.created_ms == created_ms => {
                    until_expiry(&t, lifetimes).min(every.max(MIN_LOOK))
                }
                Ok(_) => break,
                // A store hiccup is not an ended session; look again next time.
                Err(_) => every.max(MIN_LOOK),
            };
            tokio::time::sleep(wait).await;
        }
    };
    Sse::new(sse_events(feed, ticket, recheck))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The least time between two looks of one stream at its session.
const MIN_LOOK: std::time::Duration = std::time::Duration::from_millis(250);

/// How long until the store would call a session with these times expired, plus a little
/// so that the look then finds it so. Never less than a quarter second: clocks of
/// instances and stores differ a little, and a session found still alive at its deadline
/// (touched meanwhile, or a clock behind) must not be looked at in a tight loop.
fn until_expiry(
    times: &confide_core::SessionTimes,
    lifetimes: confide_core::Lifetimes,
) -> std::time::Duration {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let ends = times
        .last_seen_ms
        .saturating_add(ms(lifetimes.idle))
        .min(times.created_ms.saturating_add(ms(lifetimes.absolute)));
    let left = ends
        .saturating_sub(confide_core::store::now_ms())
        .saturating_add(50);
    std::time::Duration::from_millis(u64::try_from(left).unwrap_or(0)).max(MIN_LOOK)
}

/// The feed as SSE frames, until the session ends (announced, or found by `recheck`) or a
/// newer stream of the session takes this one's place, which the stream's last event says.
fn sse_events(
    feed: futures::stream::BoxStream<'static, Feed>,
    mut ticket: streams::Ticket,
    recheck: impl Future<Output = ()> + Send + 'static,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let replaced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The ticket lives inside this future, so its place is held exactly as long as the
    // stream is.
    let pushed_out = {
        let replaced = replaced.clone();
        async move {
            if ticket.ended().await {
                replaced.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            drop(ticket);
        }
    };
    let stop = futures::future::select(Box::pin(recheck), Box::pin(pushed_out));
    // Without it, the browser would reconnect at once and push out the next oldest tab.
    let last = futures::stream::once(async move {
        replaced
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| Feed::Event(Arc::new(app::model::ChatEvent::Replaced)))
    })
    .filter_map(std::future::ready);
    // Unnamed events, so the browser's `EventSource.onmessage` sees them all.
    feed.take_while(|f| std::future::ready(*f != Feed::Ended))
        .take_until(stop)
        .chain(last)
        .map(|f| {
            let event = match f {
                Feed::Event(e) => Event::default().json_data(&*e),
                Feed::Lagged | Feed::Ended => {
                    Event::default().json_data(app::model::ChatEvent::Resync)
                }
            };
            Ok(event.unwrap_or_else(|_| Event::default().data(r#"{"type":"resync"}"#)))
        })
}

/// Serves `app(state)` on `listener` until `shutdown` completes, sweeping expired sessions
/// in the background. With `tls_cert`/`tls_key` configured it speaks HTTPS; with
/// `redirect_addr` it also answers plain HTTP there with a redirect to the public URL.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(sweep_forever(state.clone(), state.config.sweep_interval));
    let header_timeout = state.config.header_timeout;
    let redirect = match state.config.redirect_addr {
        Some(addr) => Some(tokio::spawn(redirect_forever(
            addr,
            state.origin.clone(),
            header_timeout,
        ))),
        None => None,
    };
    let config = state.config.clone();
    let streams = state.streams.clone();
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        // Event streams first: they never finish by themselves, and would each hold the
        // shutdown for the whole grace period that requests in flight get.
        streams.close_all();
        h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let listener = listener.into_std()?;
    let result = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await?;
            let acceptor =
                axum_server::tls_rustls::RustlsAcceptor::new(tls).handshake_timeout(header_timeout);
            with_timeouts(axum_server::from_tcp(listener)?, header_timeout)
                .acceptor(acceptor)
                .handle(handle)
                .serve(service)
                .await
        }
        _ => {
            with_timeouts(axum_server::from_tcp(listener)?, header_timeout)
                .handle(handle)
                .serve(service)
                .await
        }
    };
    sweeper.abort();
    if let Some(r) = redirect {
        r.abort();
    }
    result
}

/// Connection rules every listener gets. hyper reads headers without any bound unless told
/// to, so a client trickling one header line at a time would hold its connection (and a
/// task) forever; the same bound closes keep-alive connections idle for that long. HTTP/2
/// connections are pinged, so a peer that vanished without closing is noticed.
fn with_timeouts(
    mut server: axum_server::Server<SocketAddr>,
    header_timeout: std::time::Duration,
) -> axum_server::Server<SocketAddr> {
    let builder = server.http_builder();
    builder.http1().header_read_timeout(header_timeout);
    builder
        .http2()
        .keep_alive_interval(Some(std::time::Duration::from_secs(20)))
        .keep_alive_timeout(std::time::Duration::from_secs(20));
    server.first_request_timeout(header_timeout)
}

/// A plain-HTTP listener whose only answer is "go to the https site".
async fn redirect_forever(addr: SocketAddr, origin: String, header_timeout: std::time::Duration) {
    let app = Router::new().fallback(move |uri: axum::http::Uri| {
        let origin = origin.clone();
        async move {
            let target = format!(
                "{origin}{}",
                uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
            );
            (
                axum::http::StatusCode::PERMANENT_REDIRECT,
                [(axum::http::header::LOCATION, target)],
            )
        }
    });
    let listener = match std::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {addr} for the http redirect: {e}");
            return;
        }
    };
    let server = match axum_server::from_tcp(listener) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen on {addr} for the http redirect: {e}");
            return;
        }
    };
    if let Err(e) = with_timeouts(server, header_timeout)
        .serve(app.into_make_service())
        .await
    {
        tracing::error!("redirect listener failed: {e}");
    }
}

async fn sweep_forever(state: AppState, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.limits.shrink();
        state.auth.shrink();
        match state.store.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "swept expired sessions"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired sessions failed"),
        }
        match state.files.sweep(&*state.store).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "swept files nobody can reach"),
            Err(e) => tracing::warn!(error = %e.message, "sweeping files failed"),
        }
    }
}
