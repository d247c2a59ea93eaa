//! `/login/sms`: logging in with an SMS code, for a phone browser that can't scan its own
//! screen (and anyone else). `WXLOGIN_PHONE_LOGIN` says who may: people whose phone is bound
//! (`bound`, the default), anyone (`open`: a new phone makes an account that links a WeChat
//! later by scanning), or nobody (`off`).
//!
//! The codes are the binding's codes, with the same rules and limits (5 tries, resend
//! cooldown, per-phone and per-IP caps, each checked and counted in one step), bound to this
//! browser. Nothing tells whether a number is registered: every well-formed number gets the
//! same answer, status and page, and a code row that counts toward the limits; only a number
//! that may log in is sent an SMS, from a task of its own so the answer takes as long either
//! way.

use axum::{
    Form,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use leptos::prelude::*;
use serde::Deserialize;

use super::{
    SendCodeForm, Target, VerifyForm,
    views::{BindForm, CodeForms, Flow, Note, render},
};
use crate::{
    client_info::ClientInfo,
    config::PhoneLoginPolicy,
    error::{AppError, AppResult},
    login::scene::{LoginMethod, Scene, SceneState},
    metrics::Metrics,
    pages::{Detour, PageRequest, page},
    session::{PhoneStep, WebSession},
    state::AppState,
    store::{PhoneLoggedIn, PhoneLogin},
    ui::Lang,
    users::CurrentUser,
    util::{now, random_hex},
};

/// The form's flow, or 404 when SMS login is off.
fn flow(state: &AppState) -> AppResult<Flow> {
    match state.settings.phones.phone_login {
        PhoneLoginPolicy::Off => Err(AppError::NotFound),
        PhoneLoginPolicy::Bound => Ok(Flow::Login { open: false }),
        PhoneLoginPolicy::Open => Ok(Flow::Login { open: true }),
    }
}

/// The key a browser's login codes are bound to.
fn target(flow: Flow, owner: &str) -> Target {
    Target {
        flow,
        key: format!("login:{owner}"),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    change: Option<String>,
}

/// `GET /login/sms`.
#[component]
pub(super) fn SmsLoginPage() -> impl IntoView {
    page(async |mut request: PageRequest| {
        let state = request.state.clone();
        let flow = flow(&state)?;
        let session: WebSession = request.extract().await?;
        let CurrentUser(user) = request.extract().await?;
        let Query(query) = request.extract::<Query<PageQuery>>().await?;
        if user.is_some() {
            let allowed = &state.settings.forward.allowed_return_hosts;
            return Err(Detour::to(session.take_next(allowed).await?.as_str()));
        }
        if query.change.is_some() {
            session.clear_code_phone(PhoneStep::Login).await?;
        }
        // A browser with no key has sent no code yet.
        let (form, status, retry_after) = match session.existing_browser_key().await? {
            Some(owner) => target(flow, &owner).page_form(&state, &session).await?,
            None => (
                BindForm::Phone {
                    value: String::new(),
                    error: None,
                },
                StatusCode::OK,
                None,
            ),
        };
        request.status(status);
        if let Some(seconds) = retry_after {
            request.header(axum::http::header::RETRY_AFTER, seconds.into());
        }
        let csrf = session.csrf_token().await?;
        if let Some(policy) = super::form_policy(&state, &session).await? {
            request.header(axum::http::header::CONTENT_SECURITY_POLICY, policy);
        }
        Ok(view! { <CodeForms flow form csrf /> }.into_any())
    })
}

/// This browser's key, kept in its session from now on if it is new.
async fn browser_key(session: &WebSession) -> AppResult<String> {
    if let Some(owner) = session.existing_browser_key().await? {
        return Ok(owner);
    }
    let owner = WebSession::new_browser_key();
    session.keep_browser_key(&owner).await?;
    Ok(owner)
}

/// `POST /login/sms/code`: a code for the number, if it may log in; the same answer if not.
pub(super) async fn send_code(
    State(state): State<AppState>,
    lang: Lang,
    session: WebSession,
    client: ClientInfo,
    Form(form): Form<SendCodeForm>,
) -> AppResult<Response> {
    let flow = flow(&state)?;
    session.check_csrf(&form.csrf).await?;
    let target = target(flow, &browser_key(&session).await?);
    let phone = match target.parse_phone(lang, &session, form.phone).await? {
        Ok(phone) => phone,
        Err(answer) => return Ok(answer),
    };
    // Looked up for every number, so that the answer takes as long whatever it finds.
    let user = state.store.users.by_phone(phone.e164()).await?;
    let may_log_in = user.is_some() || flow == Flow::Login { open: true };
    // Stored and counted whether or not it is sent: the limits answer the same for any number.
    let sms = match target
        .store_code(&state, lang, &session, &client, phone)
        .await?
    {
        Ok(sms) => sms,
        Err(answer) => return Ok(answer),
    };
    session
        .set_code_phone(PhoneStep::Login, sms.phone.national())
        .await?;
    if may_log_in {
        let sending = state.clone();
        tokio::spawn(async move {
            match sending.sms.send(&sms.phone, &sms.code).await {
                Ok(()) => {
                    Metrics::inc(&sending.metrics.sms_sent);
                    tracing::info!(phone = %sms.phone, "SMS login code sent");
                }
                Err(e) => super::sms_failed(&sending, &sms.phone, &e),
            }
        });
    } else {
        tracing::info!(phone = %sms.phone, "SMS login code not sent: the number may not log in");
    }
    // Post/redirect/get: reloading the page must not send another SMS.
    Ok(Redirect::to(flow.page()).into_response())
}

// A login by code is redeemed at once by `/login/complete`; its scene needn't live long.
const SCENE_SECONDS: i64 = 120;

/// `POST /login/sms/verify`: checks the code and logs the person in.
pub(super) async fn verify_code(
    State(state): State<AppState>,
    lang: Lang,
    session: WebSession,
    client: ClientInfo,
    Form(form): Form<VerifyForm>,
) -> AppResult<Response> {
    let flow = flow(&state)?;
    session.check_csrf(&form.csrf).await?;
    let owner = browser_key(&session).await?;
    let target = target(flow, &owner);
    let (phone, code_id) = match target
        .check_code(&state, lang, &session, &form.code)
        .await?
    {
        Ok(right) => right,
        Err(answer) => return Ok(answer),
    };
    let t_now = now();
    let scene = random_hex(20);
    let login = PhoneLogin {
        scene: Scene {
            ticket: format!("sms:{scene}"),
            scene,
            owner,
            qr_url: String::new(),
            state: SceneState::Authorized,
            openid: None,
            user_id: None,
            lang: lang.code().to_owned(),
            client_ip: Some(client.ip),
            user_agent: Some(client.user_agent),
            created_at: t_now,
            expires_at: t_now + SCENE_SECONDS,
            updated_at: t_now,
            method: LoginMethod::Sms,
        },
        phone: phone.e164().to_owned(),
        code_id,
        open: flow == Flow::Login { open: true },
    };
    let t = lang.text();
    let message = match state.store.binding.phone_login(login).await? {
        PhoneLoggedIn::Yes(user_id) => {
            Metrics::inc(&state.metrics.logins_ok);
            tracing::info!(user_id, phone = %phone, "SMS code right: logging in");
            session.clear_code_phone(PhoneStep::Login).await?;
            return Ok(Redirect::to("/login/complete").into_response());
        }
        PhoneLoggedIn::Disabled => {
            Metrics::inc(&state.metrics.logins_disabled);
            session.clear_code_phone(PhoneStep::Login).await?;
            let form = BindForm::Phone {
                value: String::new(),
                error: Some(t.status_rejected.to_owned()),
            };
            return render(flow, &session, form, StatusCode::FORBIDDEN).await;
        }
        PhoneLoggedIn::Refused => t.err_code_dead,
    };
    let form = BindForm::Code {
        wait: target.resend_wait(&state, &phone).await?,
        phone,
        note: Note::Dead(message.to_owned()),
    };
    render(flow, &session, form, StatusCode::BAD_REQUEST).await
}
