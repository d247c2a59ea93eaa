//! [`app`]: the whole router, every feature's routes and the layers around them (sessions,
//! limits, security headers, request ids, the request log), and the few routes of no feature.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, RawQuery, State},
    http::{HeaderValue, StatusCode, header},
    middleware,
    response::IntoResponse,
    routing::get,
};
use tower_http::{
    CompressionLevel, LatencyUnit,
    compression::CompressionLayer,
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use crate::{
    admin, binding,
    config::IpNet,
    error, forward, home, login, provider,
    sandbox::{self, Sandbox},
    state::AppState,
    ui::{
        assets::{self, Asset},
        brand::Brand,
    },
};

/// The whole router for `state` (sessions are kept in its store), with the sandbox's routes
/// when there is one (sandbox mode only).
pub fn app(state: AppState, sandbox: Option<Arc<Sandbox>>) -> Router {
    let settings = &state.settings;
    let mut session_layer = SessionManagerLayer::new(state.store.sessions.clone())
        .with_name("wxlogin")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(settings.is_https())
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            settings.session_idle_seconds,
        )));
    if let Some(domain) = &settings.forward.cookie_domain {
        // Subdomains share the login (the apps behind forward auth).
        session_layer = session_layer.with_domain(domain.clone());
    }
    let mut router = Router::new()
        .merge(home::router())
        .merge(login::router())
        .merge(binding::router())
        .merge(admin::router(&state))
        .merge(forward::router())
        .merge(provider::router(
            &state,
            provider::Provider::new(settings.ops.oidc_token_rate),
        ))
        .route("/healthz", get(healthz))
        .route(
            assets::STYLE.path,
            get(|q: RawQuery| serve(&assets::STYLE, q)),
        )
        .route(
            assets::SCRIPT.path,
            get(|q: RawQuery| serve(&assets::SCRIPT, q)),
        )
        .route(
            assets::FAVICON.path,
            get(|q: RawQuery| serve(&assets::FAVICON, q)),
        )
        .route("/brand/logo", get(logo));
    if let Some(sandbox) = sandbox {
        router = router.merge(sandbox::router(sandbox));
    }
    // gzip or br as the browser asks (a login page goes from 7.5 to about 3 KB). Level 4:
    // brotli's default (11) costs milliseconds a page for a few per cent less. Images are left
    // alone. The event streams are merged after it, so it doesn't wrap them: their bodies live
    // as long as the page waits, and each would carry an encoder's state (6 KiB a waiting
    // browser: docs/benchmarks.md).
    let router = router
        .layer(CompressionLayer::new().quality(CompressionLevel::Precise(4)))
        .merge(login::streams())
        .merge(admin::streams(&state));
    let hsts = settings.is_https().then(|| {
        SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        )
    });
    router
        .fallback(error::not_found)
        .layer(middleware::from_fn(error::render_error_pages))
        // Every page drawn for a request, error pages included, shows the site's brand.
        .layer(middleware::from_fn_with_state(
            state.brand.clone(),
            |State(brand): State<Arc<Brand>>, request, next: middleware::Next| {
                crate::ui::brand::scope(brand, next.run(request))
            },
        ))
        .layer(session_layer)
        // Forms and callbacks are small; nothing here needs more than 64 KiB.
        .layer(DefaultBodyLimit::max(64 * 1024))
        // Bounds the time to a response's head; event streams then run on their own clock.
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(15)))
        .layer(tower::util::option_layer(hsts))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            crate::csp::policy(),
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
        .layer(middleware::from_fn_with_state(
            Arc::<[IpNet]>::from(state.settings.ops.trusted_proxies.clone()),
            screen_request_id,
        ))
        .with_state(state)
}

/// Keeps a request's `X-Request-Id` only when our own proxy set it (the socket's peer is a
/// trusted proxy) and it is one short, plain token; otherwise it is dropped and a new one made.
/// A client's own id would go into every log line of its request: a way to forge or break
/// log lines, or to make one client's requests look like another's.
async fn screen_request_id(
    State(proxies): State<Arc<[IpNet]>>,
    mut request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    use axum::extract::ConnectInfo;
    let from_proxy = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| proxies.iter().any(|net| net.contains(peer.ip())));
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
        HeaderValue::from_str(&crate::util::random_hex(8))
            .ok()
            .map(RequestId::new)
    }
}

/// `GET /metrics` (on the metrics address only).
pub async fn metrics_page(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.wechat.token_fetches()),
    )
}

/// `GET /healthz`: the process answers and the database too.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ops.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// `GET /brand/logo`: the site's logo (`WXLOGIN_LOGO_FILE`), kept a year under its versioned
/// URL; 404 without one.
async fn logo(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> axum::response::Response {
    let Some(logo) = state.logo.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let cache = if query.is_some() {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    (
        [
            (header::CONTENT_TYPE, logo.content_type),
            (header::CACHE_CONTROL, cache),
        ],
        logo.bytes.clone(),
    )
        .into_response()
}

/// A built-in file: kept a year under the URL of its current version (a new build links
/// another), five minutes under any other.
async fn serve(asset: &'static Asset, RawQuery(query): RawQuery) -> impl IntoResponse {
    let cache = if asset.is_current(query.as_deref()) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
        ],
        asset.body,
    )
}
