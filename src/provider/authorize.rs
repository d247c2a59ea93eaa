//! `GET`/`POST /oidc/authorize`: the authorization endpoint. A person already logged in (and
//! recently enough) goes straight back to the site with a code; anyone else scans first, on
//! the normal login page, and comes back here.

use axum::{
    extract::{RawForm, RawQuery, State},
    response::{IntoResponse, Redirect, Response},
};

use super::{issuer, may_log_in};
use crate::{
    error::{AppError, AppResult},
    oidc::{
        self, AuthorizeParams, AuthorizeRequest, ErrorCode, OAuthError, Prompt, Refusal,
        authorize::with_query,
    },
    session::{SafePath, WebSession},
    state::AppState,
    store::{LoginMethod, OidcCode},
    ui::Lang,
    users::CurrentUser,
    util::now,
};

/// `GET /oidc/authorize?...`.
pub async fn authorize_get(
    State(state): State<AppState>,
    lang: Lang,
    session: WebSession,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> AppResult<Response> {
    let raw = raw.unwrap_or_default();
    authorize(&state, lang, &session, user, &raw).await
}

/// `POST /oidc/authorize` (a form with the same parameters, OIDC Core §3.1.2.1).
pub async fn authorize_post(
    State(state): State<AppState>,
    lang: Lang,
    session: WebSession,
    user: CurrentUser,
    RawForm(body): RawForm,
) -> AppResult<Response> {
    let raw = String::from_utf8_lossy(&body).into_owned();
    authorize(&state, lang, &session, user, &raw).await
}

async fn authorize(
    state: &AppState,
    lang: Lang,
    session: &WebSession,
    CurrentUser(user): CurrentUser,
    raw: &str,
) -> AppResult<Response> {
    let shown =
        |why: String| AppError::BadRequest(format!("{}: {why}", lang.text().oidc_error_title));
    let params: AuthorizeParams =
        serde_urlencoded::from_str(raw).map_err(|e| shown(format!("malformed request ({e})")))?;
    let client_id = params
        .client_id
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| shown("client_id is missing".into()))?;
    let client = state
        .store
        .oidc
        .client(client_id)
        .await?
        .ok_or_else(|| shown(format!("no site is registered as client_id {client_id}")))?;
    let request = match params.check(&client) {
        Ok(request) => request,
        Err(Refusal::Show(why)) => return Err(shown(why)),
        Err(Refusal::Redirect {
            redirect_uri,
            state: st,
            error,
        }) => return Ok(back_with_error(state, &redirect_uri, st.as_deref(), &error)),
    };
    let t_now = now();
    let signed_in = match &user {
        Some(user) if may_log_in(user) => Some(user),
        _ => None,
    };
    let here = SafePath::parse(&format!("{}?{raw}", oidc::discovery::AUTHORIZE))
        .ok_or_else(|| shown("the request is too long".into()))?;
    let auth_time = session.auth_time().await?;
    // The login this very request sent the person to counts as fresh, whatever `prompt` or
    // `max_age` say: it is the fresh scan they asked for (the session was ended before it, so
    // whoever is logged in now scanned since). Any other request judges the login's age.
    let sent_here = session.reauth_for().await?.as_deref() == Some(here.as_str());
    let fresh = match (signed_in, auth_time) {
        (Some(_), Some(_)) if sent_here => true,
        (Some(_), Some(at)) => request.prompt != Prompt::Login && request.fresh_enough(at, t_now),
        _ => false,
    };
    if let (Some(user), Some(auth_time), true) = (signed_in, auth_time, fresh) {
        session.clear_reauth().await?;
        let login = (auth_time, session.login_method().await?);
        return issue_code(state, &request, user.id, login).await;
    }
    if request.prompt == Prompt::None {
        let error = OAuthError::new(ErrorCode::LoginRequired, "the person is not logged in");
        return Ok(back_with_error(
            state,
            &request.redirect_uri,
            request.state.as_deref(),
            &error,
        ));
    }
    // To the login page, and back here after it. A session that isn't fresh enough ends
    // first, so the person scans again.
    if signed_in.is_some() {
        session.log_out().await?;
    }
    session.start_reauth(here.as_str()).await?;
    let to = format!(
        "/login?{}",
        serde_urlencoded::to_string([("next", here.as_str())]).expect("strings encode")
    );
    Ok(Redirect::to(&to).into_response())
}

/// Makes a code for `user_id` and sends the browser back to the site with it.
async fn issue_code(
    state: &AppState,
    request: &AuthorizeRequest,
    user_id: i64,
    (auth_time, method): (i64, LoginMethod),
) -> AppResult<Response> {
    let code = oidc::random_token();
    let t_now = now();
    state
        .store
        .oidc
        .add_code(&OidcCode {
            hash: oidc::token_hash(&code),
            grant_id: oidc::random_token(),
            client_id: request.client_id.clone(),
            user_id,
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.to_list(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time,
            amr: method.as_str().to_owned(),
            expires_at: t_now + oidc::CODE_TTL,
        })
        .await?;
    tracing::info!(
        client = request.client_id,
        user_id,
        "authorization code issued"
    );
    let issuer = issuer(state);
    let mut pairs = vec![("code", code.as_str())];
    if let Some(st) = &request.state {
        pairs.push(("state", st));
    }
    pairs.push(("iss", &issuer));
    Ok(Redirect::to(&with_query(&request.redirect_uri, &pairs)).into_response())
}

/// Back to the site's registered redirect URI with an error (RFC 6749 §4.1.2.1).
fn back_with_error(
    state: &AppState,
    redirect_uri: &str,
    st: Option<&str>,
    error: &OAuthError,
) -> Response {
    let issuer = issuer(state);
    let mut pairs = vec![
        ("error", error.error.as_str()),
        ("error_description", error.error_description.as_str()),
    ];
    if let Some(st) = st {
        pairs.push(("state", st));
    }
    pairs.push(("iss", &issuer));
    Redirect::to(&with_query(redirect_uri, &pairs)).into_response()
}
