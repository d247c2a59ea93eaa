//! `GET`/`POST /oidc/logout`: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
//! The wxlogin session ends; the browser goes to the site's `post_logout_redirect_uri` only
//! if that site registered it, else to wxlogin's home page.

use std::sync::Arc;

use axum::{
    Extension,
    extract::{RawForm, RawQuery, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{Provider, issuer};
use crate::{
    error::{AppError, AppResult},
    oidc::{authorize::with_query, jwt},
    session::WebSession,
    state::AppState,
};

#[derive(Debug, Default, Deserialize)]
struct LogoutParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// `GET /oidc/logout?...`.
pub(super) async fn logout_get(
    State(state): State<AppState>,
    Extension(provider): Extension<Arc<Provider>>,
    session: WebSession,
    RawQuery(raw): RawQuery,
) -> AppResult<Response> {
    logout(&state, &provider, &session, raw.as_deref().unwrap_or("")).await
}

/// `POST /oidc/logout` (a form with the same parameters).
pub(super) async fn logout_post(
    State(state): State<AppState>,
    Extension(provider): Extension<Arc<Provider>>,
    session: WebSession,
    RawForm(body): RawForm,
) -> AppResult<Response> {
    logout(&state, &provider, &session, &String::from_utf8_lossy(&body)).await
}

async fn logout(
    state: &AppState,
    provider: &Provider,
    session: &WebSession,
    raw: &str,
) -> AppResult<Response> {
    let params: LogoutParams = serde_urlencoded::from_str(raw)
        .map_err(|e| AppError::BadRequest(format!("malformed logout request: {e}")))?;
    let hint = match params.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        Some(token) => {
            let keys = provider.keys.current(state).await?;
            Some(
                jwt::read_hint(token, &keys.keys, &issuer(state)).ok_or_else(|| {
                    AppError::BadRequest("id_token_hint is not a token of this provider".into())
                })?,
            )
        }
        None => None,
    };
    let client_id = match (&hint, params.client_id.as_deref().filter(|c| !c.is_empty())) {
        (Some(hint), Some(id)) if hint.aud != id => {
            return Err(AppError::BadRequest(
                "client_id differs from the id_token_hint's audience".into(),
            ));
        }
        (Some(hint), _) => Some(hint.aud.clone()),
        (None, id) => id.map(str::to_owned),
    };
    // Whatever else is wrong, the person asked to leave: the session ends.
    session.log_out().await?;
    let Some(uri) = params
        .post_logout_redirect_uri
        .as_deref()
        .filter(|u| !u.is_empty())
    else {
        return Ok(Redirect::to("/").into_response());
    };
    let client = match &client_id {
        Some(id) => state.store.oidc.client(id).await?,
        None => None,
    };
    match client {
        Some(client) if client.allows_post_logout(uri) => {
            let to = match params.state.as_deref().filter(|s| !s.is_empty()) {
                Some(st) => with_query(uri, &[("state", st)]),
                None => uri.to_owned(),
            };
            Ok(Redirect::to(&to).into_response())
        }
        _ => Err(AppError::BadRequest(format!(
            "you are logged out, but {uri} is not registered as a place to return to"
        ))),
    }
}
