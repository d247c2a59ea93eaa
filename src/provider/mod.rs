//! The OpenID Connect provider on the web: discovery, JWKS, the authorization, token,
//! userinfo, revocation and logout endpoints (the protocol's rules are in [`crate::oidc`]),
//! and the `wxlogin client` / `wxlogin keys` commands. A site points any standard OIDC client
//! at `<public URL>/.well-known/openid-configuration`.

pub mod authorize;
pub mod cli;
mod cors;
pub mod keys;
mod logout;
mod token;
mod userinfo;

use std::sync::Arc;

use axum::{
    Extension, Json, Router,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};

use crate::{
    error::AppResult,
    oidc::{OAuthError, discovery},
    state::AppState,
    store::User,
};
pub use keys::KeyRing;

/// What the provider's handlers share beyond the application state.
pub struct Provider {
    /// The signing keys, cached.
    pub keys: KeyRing,
    /// Token requests per client per second, counted.
    limiter: token::Limiter,
}

impl Provider {
    /// A provider allowing `token_rate` token requests per client per second.
    pub fn new(token_rate: u32) -> Arc<Provider> {
        Arc::new(Provider {
            keys: KeyRing::default(),
            limiter: token::Limiter::new(token_rate),
        })
    }
}

/// The issuer: the public URL without a trailing slash (OIDC Discovery §4.3 compares it as a
/// string).
pub fn issuer(state: &AppState) -> String {
    state.public_url.as_str().trim_end_matches('/').to_owned()
}

/// Routes of the provider, sharing `provider`.
pub fn router(state: &AppState, provider: Arc<Provider>) -> Router<AppState> {
    // Endpoints a single-page app calls from the browser answer CORS for the registered
    // origins; the authorization and logout endpoints are navigated to, never fetched.
    let cors = Router::new()
        .route("/.well-known/openid-configuration", get(configuration))
        .route(discovery::JWKS, get(jwks))
        .route(discovery::TOKEN, post(token::token))
        .route(
            discovery::USERINFO,
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route(discovery::REVOKE, post(token::revoke))
        .layer(middleware::from_fn_with_state(state.clone(), cors::cors));
    Router::new()
        .route(
            discovery::AUTHORIZE,
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route(
            discovery::LOGOUT,
            get(logout::logout_get).post(logout::logout_post),
        )
        .merge(cors)
        .layer(Extension(provider))
}

/// `GET /.well-known/openid-configuration`.
async fn configuration(State(state): State<AppState>) -> Response {
    cacheable(Json(discovery::metadata(&issuer(&state))))
}

/// `GET /oidc/jwks`: the current key and those retired while tokens they signed may live.
async fn jwks(
    State(state): State<AppState>,
    Extension(provider): Extension<Arc<Provider>>,
) -> AppResult<Response> {
    let keys = provider.keys.current(&state).await?;
    let jwks: Vec<_> = keys.keys.iter().map(|k| k.jwk()).collect();
    Ok(cacheable(Json(serde_json::json!({ "keys": jwks }))))
}

/// Public documents may be cached a minute: a relying party that meets a token signed by a key
/// newer than its copy of the JWKS fetches the JWKS again (OIDC Core §10.1.1).
fn cacheable(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

/// Whether `user` may still get codes and tokens: not disabled. (A user without a WeChat
/// may: one made by an SMS login, or whose WeChat an administrator unbound, logs in by SMS
/// code; the unbinding itself ended their sessions.)
pub fn may_log_in(user: &User) -> bool {
    !user.disabled
}

/// An RFC 6749 §5.2 JSON error with `status` (never cached).
fn oauth_error(status: StatusCode, error: OAuthError) -> Response {
    (status, no_store(), Json(error)).into_response()
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, as every token response needs.
fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}
