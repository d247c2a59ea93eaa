//! wxlogin: "scan with WeChat to log in" for websites, through a WeChat Official Account.
//!
//! [`Application::build`] turns [`config::Settings`] into a bound, migrated, ready server; `main`
//! and the integration tests both use it. [`app`] is the router alone.

pub mod admin;
pub mod binding;
pub mod client_info;
pub mod config;
pub mod db;
pub mod error;
pub mod home;
pub mod login;
pub mod maintenance;
pub mod metrics;
pub mod sandbox;
pub mod session;
pub mod sse;
pub mod state;
pub mod ui;
pub mod users;
pub mod wechat;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::{HeaderValue, StatusCode, header},
    middleware,
    response::IntoResponse,
    routing::get,
};
use tokio::net::TcpListener;
use tower_http::{
    LatencyUnit,
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};
use tower_sessions_sqlx_store::SqliteStore;
use url::Url;

use crate::{
    config::{Mode, Settings, TokenEndpoint},
    login::hub::Hub,
    sandbox::Sandbox,
    state::AppState,
    wechat::client::{ClientConfig, TokenKind, WechatClient},
};

/// A bound, ready-to-run wxlogin.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Binds the listen address, opens and migrates the database, and builds the router.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(settings.site_addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.site_addr))?;
        let local = listener.local_addr()?;
        // How this process reaches itself (the sandbox calls back into it).
        let host = if local.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            local.ip().to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let self_url = Url::parse(&format!("http://{host}:{}/", local.port()))?;
        if settings.mode == Mode::Sandbox {
            settings.wechat.api_base = self_url.join("sandbox/")?;
        }
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| self_url.clone());

        let db_file = db::file_of(&settings.database_url).context("WXLOGIN_DATABASE_URL")?;
        let db = db::connect(&settings.database_url)
            .await
            .context("cannot open the database (WXLOGIN_DATABASE_URL)")?;
        let writer = db::Writer::open(&db_file).context("cannot open the database for writing")?;
        let reports = db::connect_reports(&settings.database_url).await?;
        let code_key = db::app_key(&db, "sms_code_hmac").await?;
        let sessions = SqliteStore::new(db.clone());
        sessions.migrate().await?;
        tokio::spawn(maintenance::run(db.clone()));
        let checkpointer =
            db::checkpoint_continuously(&db_file).context("cannot start the WAL checkpointer")?;
        tokio::spawn({
            use tower_sessions::ExpiredDeletion;
            sessions
                .clone()
                .continuously_delete_expired(Duration::from_secs(3600))
        });

        let wechat = WechatClient::new(ClientConfig {
            base: settings.wechat.api_base.clone(),
            appid: settings.wechat.appid.clone(),
            secret: settings.wechat.secret.clone(),
            token_kind: match settings.wechat.token_endpoint {
                TokenEndpoint::Stable => TokenKind::Stable,
                TokenEndpoint::Classic => TokenKind::Classic,
            },
        })
        .with_store(db::DbTokenStore(db.clone()));
        let sandbox = (settings.mode == Mode::Sandbox)
            .then(|| self_url.join("wechat/callback").map(Sandbox::new))
            .transpose()?;
        let sms = binding::sms::sender(&settings.sms, sandbox.is_some().then(|| db.clone()));
        let state = AppState {
            settings: Arc::new(settings),
            public_url,
            db,
            reports,
            writer,
            checkpointer: Arc::new(checkpointer),
            wechat: Arc::new(wechat),
            hub: Hub::default(),
            login_feed: admin::live::LoginFeed::default(),
            sms,
            code_key: Arc::new(code_key),
            sandbox,
            metrics: Arc::default(),
        };
        let router = app(state.clone(), sessions);
        Ok(Application {
            listener,
            router,
            state,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The application state (tests inspect the database and the WeChat client through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, ends the event streams
    /// (browsers reconnect to the next server) and lets running requests finish, for at most
    /// the configured grace period. Serves `/metrics` on its own address when configured.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if let Some(addr) = self.state.settings.ops.metrics_addr {
            let listener = TcpListener::bind(addr).await?;
            tracing::info!(%addr, "metrics served");
            let metrics = Router::new()
                .route("/metrics", get(metrics_page))
                .with_state(self.state.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, metrics).await {
                    tracing::error!(error = %e, "metrics server stopped");
                }
            });
        }
        let hub = self.state.hub.clone();
        let grace = Duration::from_secs(self.state.settings.ops.shutdown_grace_seconds);
        let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
        let limits = ConnectionLimits::from_settings(&self.state.settings.ops);
        tracing::info!(
            max_connections = limits.max_connections,
            header_timeout_seconds = limits.header_timeout.as_secs(),
            "connection limits"
        );
        let server = serve_http1(self.listener, self.router, limits, async move {
            shutdown.await;
            hub.shut_down();
            let _ = stopping_tx.send(true);
        });
        tokio::select! {
            served = server => served,
            _ = async {
                let _ = stopping.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(
                    seconds = grace.as_secs(),
                    "requests still running after the grace period; stopping anyway"
                );
                Ok(())
            }
        }
    }
}

/// What one client connection may hold.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    /// Open connections at most; past it a new connection is closed at once.
    max_connections: usize,
    /// Time to send a request's head, from when the server waits for one (so also the most a
    /// kept-alive connection sits idle).
    header_timeout: Duration,
}

impl ConnectionLimits {
    fn from_settings(ops: &config::OpsSettings) -> ConnectionLimits {
        let max_connections = ops.max_connections.unwrap_or_else(|| {
            let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
            config::default_max_connections(soft)
        });
        ConnectionLimits {
            max_connections,
            header_timeout: Duration::from_secs(ops.header_timeout_seconds),
        }
    }
}

/// The largest request head (request line and headers) read: a browser's is 1–3 KiB, and
/// hyper would otherwise buffer up to ~400 KiB per connection for one that never ends.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Serves `router` over HTTP/1.1 until `shutdown` completes, then lets the open connections
/// finish (the caller bounds how long).
///
/// This is `axum::serve` without HTTP/2 detection. To tell HTTP/2 from HTTP/1.1 it reads the
/// first 24 bytes of each connection on their own, and hyper's read buffer, asked for 8 KiB
/// more with those bytes still in it, doubles to 16 KiB and stays so for the connection's life
/// (a heap profile of 500 waiting browsers: 9.4 MB of read buffers). Browsers reach wxlogin
/// over HTTP/1.1 anyway: directly without TLS, or from nginx, which speaks HTTP/1.1 to its
/// upstreams.
///
/// A client can't hold a connection for nothing: the head of each request must arrive within
/// `limits.header_timeout` of the server starting to wait for it (hyper's timer also closes a
/// kept-alive connection that idles that long), it may be at most [`MAX_HEAD_BYTES`], and past
/// `limits.max_connections` new connections are closed at once rather than queued, so the
/// process keeps file descriptors for its database and for the connections it has. A response
/// being streamed (a waiting browser's events) is not a request being read: it is unaffected.
async fn serve_http1(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::extract::{ConnectInfo, Request};
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        server::graceful::GracefulShutdown,
        service::TowerToHyperService,
    };
    use tower::ServiceExt;

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut refused = 0u64;
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // As axum::serve: a connection that died in the backlog is nothing; other
                    // errors (out of file descriptors, say) get a pause before trying again.
                    let gone = matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionReset
                    );
                    if !gone {
                        tracing::error!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Full: closed now (dropping the stream), so the client learns at once and the
            // descriptor is free again. Logged once per 1,000, not once per connection.
            if refused.is_multiple_of(1000) {
                tracing::warn!(
                    max = limits.max_connections,
                    "connection limit reached; new connections are closed"
                );
            }
            refused += 1;
            drop(stream);
            continue;
        };
        let service =
            router
                .clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

/// The whole router for `state`, with sessions kept in `sessions`.
pub fn app(state: AppState, sessions: SqliteStore) -> Router {
    let settings = &state.settings;
    let session_layer = SessionManagerLayer::new(sessions)
        .with_name("wxlogin")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(settings.is_https())
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            settings.session_idle_seconds,
        )));
    let mut router = Router::new()
        .merge(home::router())
        .merge(login::router())
        .merge(binding::router())
        .merge(admin::router(&state))
        .route("/healthz", get(healthz))
        .route("/style.css", get(stylesheet))
        .route("/app.js", get(script));
    if state.sandbox.is_some() {
        router = router.merge(sandbox::router());
    }
    let hsts = settings.is_https().then(|| {
        SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        )
    });
    router
        .fallback(error::not_found)
        .layer(middleware::from_fn(error::render_error_pages))
        .layer(session_layer)
        // Forms and callbacks are small; nothing here needs more than 64 KiB.
        .layer(DefaultBodyLimit::max(64 * 1024))
        // Bounds the time to a response's head; event streams then run on their own clock.
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(15)))
        .layer(tower::util::option_layer(hsts))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        // Pages show personal data (a phone number, a user list, a live QR code): no cache,
        // shared or private, keeps them. Static files and the like say otherwise themselves.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &axum::http::Request<_>| {
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    // The path only: query strings may carry signatures and tickets.
                    tracing::info_span!("request", id, method = %request.method(), path = request.uri().path())
                })
                // One line per request at info, when its response head goes out: the span
                // gives id, method and path; the line adds status and latency.
                .on_request(())
                .on_response(
                    DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                ),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(RandomRequestId))
        .layer(middleware::from_fn_with_state(state.clone(), screen_request_id))
        .with_state(state)
}

/// Keeps a request's `X-Request-Id` only when our own proxy set it (the socket's peer is a
/// trusted proxy) and it is one short, plain token; otherwise it is dropped and a new one made.
/// A client's own id would go into every log line of its request: a way to forge or break
/// log lines, or to make one client's requests look like another's.
async fn screen_request_id(
    State(state): State<AppState>,
    mut request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    use axum::extract::ConnectInfo;
    let from_proxy = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| {
            let proxies = &state.settings.ops.trusted_proxies;
            proxies.iter().any(|net| net.contains(peer.ip()))
        });
    let ids = request.headers().get_all("x-request-id");
    let mut ids = ids.iter();
    let keep = from_proxy
        && ids
            .next()
            .is_some_and(|id| well_formed_request_id(id.as_bytes()))
        && ids.next().is_none();
    if !keep {
        request.headers_mut().remove("x-request-id");
    }
    next.run(request).await
}

/// 1–64 characters from `A-Z a-z 0-9 - _ . :` (UUIDs, hex ids, nginx's `$request_id`).
fn well_formed_request_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Request ids: 64 random bits, hex.
#[derive(Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&db::random_hex(8))
            .ok()
            .map(RequestId::new)
    }
}

/// `GET /metrics` (on the metrics address only).
async fn metrics_page(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.wechat.token_fetches()),
    )
}

/// `GET /healthz`: the process answers and the database too.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(&state.db)
        .await
    {
        Ok(_) => (StatusCode::OK, "ok"),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../style/main.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../public/app.js"),
    )
}
