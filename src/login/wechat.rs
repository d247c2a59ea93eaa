//! Logging in inside WeChat's own browser, by the Official Account's web authorization
//! (网页授权, `snsapi_base`): nobody can scan a QR code shown on their own screen, so the login
//! page sends WeChat's browser to WeChat, which comes straight back to `/login/wechat` with a
//! code that says who the person is. From there the openid meets exactly the decision a scan
//! meets ([`scene::decide`]): bound → logged in, new → `/bind`, disabled → refused.
//!
//! The `state` sent along is random, single use, bound to the browser that set out, and dies
//! in 5 minutes; each client may start as many per hour as it may make QR codes.

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use leptos::prelude::*;
use serde::Deserialize;

use super::scene::{self, LoginMethod, Scene, SceneState};
use crate::{
    client_info::ClientInfo,
    error::{AppError, AppResult},
    metrics::Metrics,
    session::WebSession,
    state::AppState,
    store::OauthStart,
    ui::{Lang, Shell, render},
    util::{now, random_hex},
    wechat::oauth,
};

// WeChat's own codes live 5 minutes; `snsapi_base` comes back in a second.
const STATE_SECONDS: i64 = 300;

/// Where to send browser `owner` to authorize: WeChat's authorize URL, with a fresh `state`
/// stored for it. `Err(TooMany)` when its client started too many this hour.
pub async fn start(state: &AppState, owner: &str, client: &ClientInfo) -> AppResult<String> {
    let t_now = now();
    let start = OauthStart {
        state: random_hex(16),
        owner: owner.to_owned(),
        client_key: client.limit_key.clone(),
        created_at: t_now,
        expires_at: t_now + STATE_SECONDS,
    };
    let cap = i64::from(state.settings.ops.qr_per_ip_per_hour);
    if let Err(retry_after) = state.store.scenes.start_oauth(&start, cap).await? {
        tracing::warn!(ip = %client.ip, cap, "web authorizations per IP capped");
        return Err(AppError::TooMany { retry_after });
    }
    let back = state
        .public_url
        .join("login/wechat")
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(oauth::authorize_url(
        &state.settings.phones.oauth_base,
        &state.settings.wechat.appid,
        back.as_str(),
        &start.state,
    ))
}

/// What WeChat's browser comes back with: `code` is missing when the person declined.
#[derive(Debug, Deserialize)]
pub struct Return {
    code: Option<String>,
    state: Option<String>,
}

/// Why a web authorization didn't log anyone in, as the person reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    /// No `code`: cancelled or declined.
    Cancelled,
    /// The `state` is unknown, used, expired or another browser's.
    LinkDead,
    /// WeChat refused the code (40029 bad, 40163 used).
    BadCode,
    /// A snapshot page's virtual user.
    Snapshot,
    /// The account is disabled.
    Disabled,
}

impl Problem {
    fn status(self) -> StatusCode {
        match self {
            Problem::Cancelled => StatusCode::OK,
            Problem::LinkDead | Problem::BadCode => StatusCode::BAD_REQUEST,
            Problem::Snapshot | Problem::Disabled => StatusCode::FORBIDDEN,
        }
    }
}

/// `GET /login/wechat?code=&state=`: WeChat's browser is back.
pub async fn finish(
    State(state): State<AppState>,
    session: WebSession,
    lang: Lang,
    client: ClientInfo,
    Query(back): Query<Return>,
) -> AppResult<Response> {
    let owner = session.existing_browser_key().await?;
    let st = back.state.as_deref().unwrap_or("");
    // The state is ours (32 hex digits) or it is nothing; a code is refused before WeChat
    // sees it unless it looks like one of WeChat's.
    let known = match &owner {
        Some(owner) if st.len() == 32 && st.bytes().all(|b| b.is_ascii_hexdigit()) => {
            state.store.scenes.take_oauth(st, owner, now()).await?
        }
        _ => false,
    };
    let (Some(owner), true) = (owner, known) else {
        tracing::info!("web authorization refused: unknown, used or foreign state");
        return problem(lang, Problem::LinkDead).await;
    };
    let Some(code) = back.code.filter(|c| oauth::well_formed_code(c)) else {
        return problem(lang, Problem::Cancelled).await;
    };
    let person = match state.wechat.oauth_exchange(&code).await {
        Ok(person) => person,
        Err(e) if matches!(e.errcode(), Some(oauth::BAD_CODE | oauth::USED_CODE)) => {
            tracing::info!(errcode = ?e.errcode(), "web authorization code refused by WeChat");
            return problem(lang, Problem::BadCode).await;
        }
        Err(e) => {
            Metrics::inc(&state.metrics.wechat_errors);
            tracing::warn!(errcode = ?e.errcode(), error = %e, "web authorization failed");
            return Err(AppError::Unavailable(e.into()));
        }
    };
    if person.is_snapshot() {
        tracing::info!("web authorization refused: a snapshot page's virtual user");
        return problem(lang, Problem::Snapshot).await;
    }
    let t_now = now();
    let id = random_hex(20);
    let login = Scene {
        ticket: format!("wechat_oauth:{id}"),
        scene: id,
        owner,
        qr_url: String::new(),
        state: SceneState::Pending,
        openid: Some(person.openid.clone()),
        user_id: None,
        lang: lang.code().to_owned(),
        client_ip: Some(client.ip),
        user_agent: Some(client.user_agent),
        created_at: t_now,
        expires_at: t_now + STATE_SECONDS,
        updated_at: t_now,
        method: LoginMethod::WechatOauth,
    };
    let change = state
        .store
        .scenes
        .insert_decided(login, scene::decide)
        .await?;
    let metrics = &state.metrics;
    Metrics::inc(match change.state {
        SceneState::Rejected => &metrics.logins_disabled,
        SceneState::NeedsBind => &metrics.logins_needs_bind,
        _ => &metrics.logins_ok,
    });
    tracing::info!(state = change.state.as_str(), "web authorization came back");
    if change.state == SceneState::Rejected {
        return problem(lang, Problem::Disabled).await;
    }
    suggest_following(&state, &session, &person.openid).await?;
    Ok(Redirect::to(match change.state {
        SceneState::NeedsBind => "/bind",
        _ => "/login/complete",
    })
    .into_response())
}

/// Web authorization doesn't make the person follow the account: when `user/info` says they
/// don't, the page they land on suggests it (unless the card is turned off). A failure of
/// `user/info` costs nothing but the card.
async fn suggest_following(state: &AppState, session: &WebSession, openid: &str) -> AppResult<()> {
    if state.settings.phones.follow_qr_url.is_none() {
        return Ok(());
    }
    match state.wechat.user_info(openid).await {
        Ok(info) => {
            let following = info.subscribe == 1;
            state
                .store
                .users
                .set_following(openid, following, now())
                .await?;
            session.set_follow_hint(!following).await?;
        }
        Err(e) => {
            Metrics::inc(&state.metrics.wechat_errors);
            tracing::warn!(errcode = ?e.errcode(), error = %e, "user/info failed after web authorization");
        }
    }
    Ok(())
}

/// The page saying what went wrong and the ways on.
async fn problem(lang: Lang, problem: Problem) -> AppResult<Response> {
    let page = render::document(lang, move || view! { <WechatProblem problem /> }).await;
    Ok((problem.status(), page).into_response())
}

/// Why a web authorization didn't log in, with a new try and the QR code as ways on (a
/// disabled account gets neither: neither would help).
#[component]
fn WechatProblem(problem: Problem) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let message = match problem {
        Problem::Cancelled => t.wechat_cancelled,
        Problem::LinkDead => t.wechat_link_dead,
        Problem::BadCode => t.wechat_code_bad,
        Problem::Snapshot => t.wechat_snapshot,
        Problem::Disabled => t.status_rejected,
    };
    let ways = (problem != Problem::Disabled).then(|| {
        view! {
            <p class="actions">
                <a id="wechat-retry" class="button" href="/login">{t.wechat_try_again}</a>
                " "
                <a id="use-qr" href="/login?qr=1">{t.use_qr_instead}</a>
            </p>
        }
    });
    view! {
        <Shell title=t.wechat_title brand=true>
            <h1>{t.wechat_title}</h1>
            <p id="wechat-problem" class="refused" role="alert">{message}</p>
            {ways}
            <p><a href="/">{t.back_home}</a></p>
        </Shell>
    }
}
