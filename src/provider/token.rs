//! `POST /oidc/token` (code and refresh grants) and `POST /oidc/revoke` (RFC 7009).

use std::{collections::HashMap, sync::Arc};

use axum::{
    Extension, Json,
    extract::{RawForm, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{Provider, issuer, may_log_in, no_store, oauth_error};
use crate::{
    oidc::{
        self, Client, ErrorCode, IdClaims, OAuthError, Scopes, pkce,
        token::{ClientAuth, Grant, TokenParams, TokenResponse, client_auth},
    },
    state::AppState,
    store::{OidcToken, Redeemed, TokenKind, User},
    util::now,
};

/// Token requests per client per second: a fixed one-second window, counted under a lock
/// with the check, so parallel requests can't slip past it.
pub(super) struct Limiter {
    per_second: u32,
    windows: std::sync::Mutex<HashMap<String, (i64, u32)>>,
}

impl Limiter {
    pub(super) fn new(per_second: u32) -> Limiter {
        Limiter {
            per_second,
            windows: Default::default(),
        }
    }

    /// Counts a request of `client` at `now`; false past the limit.
    fn admit(&self, client: &str, now: i64) -> bool {
        let mut windows = self.windows.lock().expect("limiter lock");
        if windows.len() > 10_000 {
            windows.retain(|_, (second, _)| *second == now);
        }
        let (second, count) = windows.entry(client.to_owned()).or_insert((now, 0));
        if *second != now {
            (*second, *count) = (now, 0);
        }
        *count += 1;
        *count <= self.per_second
    }
}

/// A failed token request: the JSON error and its status.
struct Failure(StatusCode, OAuthError);

impl From<OAuthError> for Failure {
    fn from(e: OAuthError) -> Self {
        let status = match e.error {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Failure(status, e)
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        server_error(e.into())
    }
}

impl From<crate::error::AppError> for Failure {
    fn from(e: crate::error::AppError) -> Self {
        server_error(e.into())
    }
}

fn server_error(cause: anyhow::Error) -> Failure {
    tracing::error!(error = ?cause, "token endpoint failed");
    Failure(
        StatusCode::INTERNAL_SERVER_ERROR,
        OAuthError::new(ErrorCode::ServerError, "try again"),
    )
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let Failure(status, error) = self;
        let mut response = oauth_error(status, error);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"wxlogin\""),
            );
        }
        response
    }
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// The client a request authenticates as: a confidential client by its secret, a public
/// client by its id alone (it proves itself with PKCE).
async fn authenticate(state: &AppState, auth: &ClientAuth) -> Result<Client, Failure> {
    let client = state.store.oidc.client(&auth.client_id).await?;
    let ok = match (&client, &auth.secret) {
        (Some(c), Some(secret)) => c.secret_matches(secret),
        (Some(c), None) => c.is_public(),
        (None, _) => false,
    };
    match client {
        Some(client) if ok => Ok(client),
        _ => Err(OAuthError::invalid_client("unknown client or wrong secret").into()),
    }
}

/// `POST /oidc/token`.
pub(super) async fn token(
    State(state): State<AppState>,
    Extension(provider): Extension<Arc<Provider>>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    match exchange(&state, &provider, &headers, &body).await {
        Ok(tokens) => (StatusCode::OK, no_store(), Json(tokens)).into_response(),
        Err(failure) => failure.into_response(),
    }
}

async fn exchange(
    state: &AppState,
    provider: &Provider,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenResponse, Failure> {
    let params: TokenParams = serde_urlencoded::from_bytes(body)
        .map_err(|e| OAuthError::invalid_request(format!("malformed form: {e}")))?;
    let auth = params.client_auth(authorization(headers))?;
    let client = authenticate(state, &auth).await?;
    let t_now = now();
    if !provider.limiter.admit(&client.id, t_now) {
        return Err(Failure(
            StatusCode::TOO_MANY_REQUESTS,
            OAuthError::new(ErrorCode::TemporarilyUnavailable, "too many token requests"),
        ));
    }
    match params.grant()? {
        Grant::Code {
            code,
            redirect_uri,
            verifier,
        } => {
            let code = match state
                .store
                .oidc
                .redeem_code(oidc::token_hash(&code), t_now)
                .await?
            {
                Redeemed::Fresh(code) => code,
                Redeemed::Replayed => {
                    tracing::warn!(client = client.id, "authorization code replayed");
                    return Err(OAuthError::invalid_grant(
                        "the code was already used; what it gave is revoked",
                    )
                    .into());
                }
                Redeemed::Unknown => {
                    return Err(OAuthError::invalid_grant("unknown or expired code").into());
                }
            };
            if code.client_id != client.id {
                return Err(OAuthError::invalid_grant("the code belongs to another client").into());
            }
            if code.redirect_uri != redirect_uri {
                return Err(OAuthError::invalid_grant(
                    "redirect_uri differs from the authorization request",
                )
                .into());
            }
            match (&code.code_challenge, &verifier) {
                (Some(challenge), Some(verifier)) if pkce::verify_s256(verifier, challenge) => {}
                (Some(_), _) => {
                    return Err(OAuthError::invalid_grant("code_verifier does not match").into());
                }
                (None, Some(_)) => {
                    return Err(OAuthError::invalid_grant(
                        "code_verifier sent, but the request had no code_challenge",
                    )
                    .into());
                }
                (None, None) => {}
            }
            let user = active_user(state, code.user_id).await?;
            let scope = Scopes::parse(&code.scope);
            issue(
                state,
                provider,
                &client,
                &user,
                scope,
                code.auth_time,
                code.nonce,
                &code.grant_id,
            )
            .await
        }
        Grant::Refresh { token, scope } => {
            let old = match state
                .store
                .oidc
                .redeem_refresh(oidc::token_hash(&token), t_now)
                .await?
            {
                Redeemed::Fresh(old) => old,
                Redeemed::Replayed => {
                    tracing::warn!(client = client.id, "refresh token reused");
                    return Err(OAuthError::invalid_grant(
                        "the refresh token was already used; its grant is revoked",
                    )
                    .into());
                }
                Redeemed::Unknown => {
                    return Err(
                        OAuthError::invalid_grant("unknown, revoked or expired token").into(),
                    );
                }
            };
            if old.client_id != client.id {
                return Err(
                    OAuthError::invalid_grant("the token belongs to another client").into(),
                );
            }
            let user = active_user(state, old.user_id).await?;
            let granted = Scopes::parse(&old.scope);
            let scope = match scope {
                Some(asked) => asked.within(granted),
                None => granted,
            };
            issue(
                state,
                provider,
                &client,
                &user,
                scope,
                old.auth_time,
                None,
                &old.grant_id,
            )
            .await
        }
    }
}

/// The user, if they may still log in.
async fn active_user(state: &AppState, id: i64) -> Result<User, Failure> {
    match state.store.users.by_id(id).await? {
        Some(user) if may_log_in(&user) => Ok(user),
        _ => Err(OAuthError::invalid_grant("the person can no longer log in").into()),
    }
}

/// New tokens for `user` in grant `grant_id`: an access token, a refresh token with
/// `offline_access`, and the id_token.
#[allow(clippy::too_many_arguments)]
async fn issue(
    state: &AppState,
    provider: &Provider,
    client: &Client,
    user: &User,
    scope: Scopes,
    auth_time: i64,
    nonce: Option<String>,
    grant_id: &str,
) -> Result<TokenResponse, Failure> {
    let t_now = now();
    let access = oidc::random_token();
    let refresh = scope.offline_access.then(oidc::random_token);
    let record = |token: &str, kind: TokenKind, ttl: i64| OidcToken {
        hash: oidc::token_hash(token),
        kind,
        grant_id: grant_id.to_owned(),
        client_id: client.id.clone(),
        user_id: user.id,
        scope: scope.to_list(),
        auth_time,
        expires_at: t_now + ttl,
    };
    let mut records = vec![record(&access, TokenKind::Access, oidc::ACCESS_TTL)];
    if let Some(refresh) = &refresh {
        records.push(record(refresh, TokenKind::Refresh, oidc::REFRESH_TTL));
    }
    state.store.oidc.add_tokens(&records).await?;
    let keys = provider.keys.current(state).await?;
    let claims = IdClaims {
        iss: issuer(state),
        sub: oidc::subject(&state.subject_key, user.id),
        aud: client.id.clone(),
        exp: t_now + oidc::ID_TOKEN_TTL,
        iat: t_now,
        auth_time,
        nonce,
        amr: vec!["wechat".into()],
        phone_number: scope.phone.then(|| user.phone.clone()),
        phone_number_verified: scope.phone.then_some(true),
    };
    // Signing takes about a millisecond of CPU: done here rather than on a blocking thread,
    // whose hand-off would cost more than it frees.
    let id_token = keys.signer.sign(&claims).map_err(server_error)?;
    Ok(TokenResponse {
        access_token: access,
        token_type: "Bearer".into(),
        expires_in: oidc::ACCESS_TTL,
        refresh_token: refresh,
        id_token,
        scope: scope.to_list(),
    })
}

/// The form of a revocation request.
#[derive(Debug, serde::Deserialize)]
struct RevokeParams {
    token: Option<String>,
    #[allow(dead_code)] // Accepted; the token is looked up whatever its kind.
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// `POST /oidc/revoke`: revokes one of the client's tokens (a refresh token takes its whole
/// grant along). Unknown tokens answer 200 too (RFC 7009 §2.2).
pub(super) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let result: Result<(), Failure> = async {
        let params: RevokeParams = serde_urlencoded::from_bytes(&body)
            .map_err(|e| OAuthError::invalid_request(format!("malformed form: {e}")))?;
        let auth = client_auth(
            authorization(&headers),
            params.client_id.as_deref(),
            params.client_secret.as_deref(),
        )?;
        let client = authenticate(&state, &auth).await?;
        let token = params
            .token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        state
            .store
            .oidc
            .revoke_token(oidc::token_hash(&token), &client.id, now())
            .await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => (StatusCode::OK, no_store()).into_response(),
        Err(failure) => failure.into_response(),
    }
}
