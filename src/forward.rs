//! Forward auth: `GET /auth/verify` answers a reverse proxy (nginx `auth_request`, Caddy
//! `forward_auth`, Traefik `forwardAuth`) whether the browser's wxlogin session is logged in,
//! so wxlogin can stand in front of any app. 200 with `X-Wxlogin-User` (the person's OIDC
//! `sub`) and, when configured, `X-Wxlogin-Phone`; 401 when not logged in; 403 when the person
//! is disabled.

use std::net::SocketAddr;

use axum::{
    Extension, Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::{
    error::{AppError, AppResult},
    oidc,
    session::{ReturnTo, WebSession},
    state::AppState,
};

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    Router::new().route("/auth/verify", get(verify))
}

/// `GET /auth/verify`.
async fn verify(
    State(state): State<AppState>,
    session: WebSession,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> AppResult<Response> {
    if let Some((id, epoch)) = session.user().await? {
        match state.store.users.by_id(id).await? {
            Some(user) if user.disabled => return Ok(StatusCode::FORBIDDEN.into_response()),
            Some(user) if user.openid.is_some() && user.session_epoch == epoch => {
                let mut response = StatusCode::OK.into_response();
                let out = response.headers_mut();
                let sub = oidc::subject(&state.subject_key, user.id);
                let value =
                    |v: &str| HeaderValue::from_str(v).map_err(|e| AppError::Internal(e.into()));
                out.insert("x-wxlogin-user", value(&sub)?);
                if state.settings.forward.send_phone {
                    out.insert("x-wxlogin-phone", value(&user.phone)?);
                }
                return Ok(response);
            }
            _ => {}
        }
    }
    // Traefik and Caddy forward the original request's host and URI and pass our answer to
    // the browser as it is: a person there is sent to log in and back. The headers count only
    // from a trusted proxy, and the way back only to an allowed host.
    let from_proxy = peer.is_some_and(|Extension(ConnectInfo(addr))| {
        state
            .settings
            .ops
            .trusted_proxies
            .iter()
            .any(|net| net.contains(addr.ip()))
    });
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let original = || {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let proto = get("x-forwarded-proto").unwrap_or("https");
        Some(format!(
            "{proto}://{}{}",
            get("x-forwarded-host")?,
            get("x-forwarded-uri")?
        ))
    };
    if from_proxy
        && wants_html
        && let Some(url) = original()
        && let Some(back) = ReturnTo::parse(&url, &state.settings.forward.allowed_return_hosts)
    {
        let login = state.url(&format!(
            "/login?{}",
            serde_urlencoded::to_string([("next", back.as_str())]).expect("strings encode")
        ));
        return Ok((StatusCode::FOUND, [(header::LOCATION, login)]).into_response());
    }
    Ok(StatusCode::UNAUTHORIZED.into_response())
}
