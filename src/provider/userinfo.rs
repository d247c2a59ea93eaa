//! `GET`/`POST /oidc/userinfo` (OIDC Core §5.3): the claims an access token's scopes allow.
//! The person is checked on every call: a disabled or unbound one gets 401 at once.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{may_log_in, no_store};
use crate::{
    oidc::{self, Scopes},
    state::AppState,
    util::now,
};

/// `GET`/`POST /oidc/userinfo` with `Authorization: Bearer <access token>`.
pub(super) async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
    else {
        // RFC 6750 §3.1: no credentials, no error code.
        return refuse("Bearer realm=\"wxlogin\"");
    };
    let record = match state
        .store
        .oidc
        .access_token(oidc::token_hash(token), now())
        .await
    {
        Ok(record) => record,
        Err(e) => {
            tracing::error!(error = ?e, "userinfo: store unavailable");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let user = match record {
        Some(record) => match state.store.users.by_id(record.user_id).await {
            Ok(Some(user)) if may_log_in(&user) => Some((record, user)),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = ?e, "userinfo: store unavailable");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        },
        None => None,
    };
    let Some((record, user)) = user else {
        return refuse(
            "Bearer realm=\"wxlogin\", error=\"invalid_token\", \
             error_description=\"the token is unknown, expired or revoked, or its person can't log in\"",
        );
    };
    let scope = Scopes::parse(&record.scope);
    let mut claims = serde_json::Map::new();
    claims.insert(
        "sub".into(),
        oidc::subject(&state.subject_key, user.id).into(),
    );
    if scope.phone {
        claims.insert("phone_number".into(), user.phone.clone().into());
        claims.insert("phone_number_verified".into(), true.into());
    }
    if scope.wechat {
        claims.insert("wechat_openid".into(), user.openid.clone().into());
        if let Some(unionid) = &user.unionid {
            claims.insert("wechat_unionid".into(), unionid.clone().into());
        }
    }
    (StatusCode::OK, no_store(), Json(claims)).into_response()
}

fn refuse(challenge: &'static str) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, no_store()).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}
