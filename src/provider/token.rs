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
    store::{Exchanged, Issue, OidcCode, OidcToken, TokenKind, User},
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
    // Made before the transaction that stores them (only their hashes go in).
    let access = oidc::random_token();
    let refresh = oidc::random_token();
    let made = Made {
        access: oidc::token_hash(&access),
        refresh: oidc::token_hash(&refresh),
        client_id: client.id.clone(),
        now: t_now,
    };
    let (scope, (auth_time, amr), nonce, user) = match params.grant()? {
        Grant::Code {
            code,
            redirect_uri,
            verifier,
        } => {
            let client_id = client.id.clone();
            let check: Issue<OidcCode> = Box::new(move |code, user| {
                if code.client_id != client_id {
                    return Err(OAuthError::invalid_grant(
                        "the code belongs to another client",
                    ));
                }
                if code.redirect_uri != redirect_uri {
                    return Err(OAuthError::invalid_grant(
                        "redirect_uri differs from the authorization request",
                    ));
                }
                match (&code.code_challenge, &verifier) {
                    (Some(challenge), Some(verifier)) if pkce::verify_s256(verifier, challenge) => {
                    }
                    (Some(_), _) => {
                        return Err(OAuthError::invalid_grant("code_verifier does not match"));
                    }
                    (None, Some(_)) => {
                        return Err(OAuthError::invalid_grant(
                            "code_verifier sent, but the request had no code_challenge",
                        ));
                    }
                    (None, None) => {}
                }
                active(user)?;
                let scope = Scopes::parse(&code.scope);
                Ok(made.records(
                    &code.grant_id,
                    code.user_id,
                    scope,
                    (code.auth_time, &code.amr),
                ))
            });
            let hash = oidc::token_hash(&code);
            match state.store.oidc.exchange_code(hash, t_now, check).await? {
                Exchanged::Issued(code, user) => {
                    let login = (code.auth_time, code.amr);
                    (Scopes::parse(&code.scope), login, code.nonce, user)
                }
                Exchanged::Refused(refusal) => return Err(refusal.into()),
                Exchanged::Replayed => {
                    tracing::warn!(client = client.id, "authorization code replayed");
                    return Err(OAuthError::invalid_grant(
                        "the code was already used; what it gave is revoked",
                    )
                    .into());
                }
                Exchanged::Unknown => {
                    return Err(OAuthError::invalid_grant("unknown or expired code").into());
                }
            }
        }
        Grant::Refresh {
            token,
            scope: asked,
        } => {
            let client_id = client.id.clone();
            let check: Issue<OidcToken> = Box::new(move |old, user| {
                if old.client_id != client_id {
                    return Err(OAuthError::invalid_grant(
                        "the token belongs to another client",
                    ));
                }
                active(user)?;
                let scope = narrowed(asked, &old.scope);
                Ok(made.records(&old.grant_id, old.user_id, scope, (old.auth_time, &old.amr)))
            });
            let hash = oidc::token_hash(&token);
            match state
                .store
                .oidc
                .exchange_refresh(hash, t_now, check)
                .await?
            {
                Exchanged::Issued(old, user) => {
                    let login = (old.auth_time, old.amr);
                    (narrowed(asked, &old.scope), login, None, user)
                }
                Exchanged::Refused(refusal) => return Err(refusal.into()),
                Exchanged::Replayed => {
                    tracing::warn!(client = client.id, "refresh token reused");
                    return Err(OAuthError::invalid_grant(
                        "the refresh token was already used; its grant is revoked",
                    )
                    .into());
                }
                Exchanged::Unknown => {
                    return Err(
                        OAuthError::invalid_grant("unknown, revoked or expired token").into(),
                    );
                }
            }
        }
    };
    let keys = provider.keys.current(state).await?;
    let claims = IdClaims {
        iss: issuer(state),
        sub: oidc::subject(&state.subject_key, user.id),
        aud: client.id.clone(),
        exp: t_now + oidc::ID_TOKEN_TTL,
        iat: t_now,
        auth_time,
        nonce,
        amr: vec![amr],
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
        refresh_token: scope.offline_access.then_some(refresh),
        id_token,
        scope: scope.to_list(),
    })
}

/// The tokens a request is about to issue, by hash, and for whom.
struct Made {
    access: [u8; 32],
    refresh: [u8; 32],
    client_id: String,
    now: i64,
}

impl Made {
    /// The records of the tokens for `user_id` in grant `grant_id`: an access token, and a
    /// refresh token with `offline_access`.
    fn records(
        &self,
        grant_id: &str,
        user_id: i64,
        scope: Scopes,
        (auth_time, amr): (i64, &str),
    ) -> Vec<OidcToken> {
        let record = |hash: [u8; 32], kind: TokenKind, ttl: i64| OidcToken {
            hash,
            kind,
            grant_id: grant_id.to_owned(),
            client_id: self.client_id.clone(),
            user_id,
            scope: scope.to_list(),
            auth_time,
            amr: amr.to_owned(),
            expires_at: self.now + ttl,
        };
        let mut tokens = vec![record(self.access, TokenKind::Access, oidc::ACCESS_TTL)];
        if scope.offline_access {
            tokens.push(record(self.refresh, TokenKind::Refresh, oidc::REFRESH_TTL));
        }
        tokens
    }
}

/// Refused unless the person may still log in.
fn active(user: Option<&User>) -> Result<(), OAuthError> {
    if user.is_some_and(may_log_in) {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant("the person can no longer log in"))
    }
}

/// A refresh may ask for fewer scopes than were granted, never more.
fn narrowed(asked: Option<Scopes>, granted: &str) -> Scopes {
    let granted = Scopes::parse(granted);
    asked.map_or(granted, |asked| asked.within(granted))
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
