//! SMS codes: phone binding, where a person scanning for the first time proves a phone number
//! with an SMS code and their WeChat is linked to the user with that number (made if needed),
//! and logging in with a code ([`phone_login`], the same codes and limits).
//!
//! Only the browser whose scan needs it may bind, and only while its QR code lives. Codes are
//! 6 digits from the OS CSPRNG, valid 5 minutes, and stored only as a keyed hash. The limits
//! ([`crate::sms::SmsLimits`], all configurable) are: dead after 5 wrong tries, resent no sooner than
//! 60 s, at most 5 per phone per hour and 10 per day, at most 20 per client IP per hour.

pub mod code;
pub mod limits;
mod phone_login;
mod views;

use axum::{
    Form, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::post,
};
use leptos::prelude::*;
use leptos_router::{
    components::{Route, Router as PageRouter, Routes},
    path,
};
use serde::Deserialize;

use crate::phone::Phone;
use crate::{
    client_info::ClientInfo,
    error::AppResult,
    login::scene::{self, Scene, Status},
    metrics::Metrics,
    oidc::authorize,
    pages::{self, Detour, PageRequest, page},
    session::{PhoneStep, ReturnTo, WebSession},
    state::AppState,
    store::{LinkRequest, Linked, NewCode},
    ui::{Lang, fill},
    util::now,
};
pub use code::CODE_TTL_SECONDS;
use code::CodeCheck;
use views::{BindForm, CodeForms, Flow, Note, render, render_refused};

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    pages::serve(Router::new(), BindPages)
        .route("/bind/code", post(send_code))
        .route("/bind/verify", post(verify_code))
        .route("/login/sms/code", post(phone_login::send_code))
        .route("/login/sms/verify", post(phone_login::verify_code))
}

/// Where a request to `/bind` stands.
enum Access {
    /// Binding may go on for this scene (boxed: a scene is large).
    Allowed(Box<Scene>),
    /// Go elsewhere instead.
    Elsewhere(&'static str),
}

/// Only the browser whose scan needs binding may bind, while its QR code lives; later it is
/// sent back to `/login`.
async fn access(state: &AppState, session: &WebSession) -> AppResult<Access> {
    let Some(owner) = session.existing_browser_key().await? else {
        return Ok(Access::Elsewhere("/login"));
    };
    let Some(scene) = scene::current(state, &owner).await? else {
        return Ok(Access::Elsewhere("/login"));
    };
    Ok(match scene.status(now()) {
        Status::NeedsBind => Access::Allowed(Box::new(scene)),
        Status::Authorized => Access::Elsewhere("/login/complete"),
        _ => Access::Elsewhere("/login"),
    })
}

#[derive(Debug, Deserialize)]
struct BindQuery {
    change: Option<String>,
}

/// The policy of a `/bind` page whose login goes on to another site (a waiting OpenID Connect
/// request's registered redirect URI, or an allowed host behind forward auth): its forms'
/// answers redirect there in the end, and browsers check `form-action` along the way.
async fn form_policy(
    state: &AppState,
    session: &WebSession,
) -> AppResult<Option<axum::http::HeaderValue>> {
    let Some(next) = session.peek_next().await? else {
        return Ok(None);
    };
    let target = match authorize::pending_in(&next) {
        Some(pending) => {
            let client = match pending.client_id.as_deref() {
                Some(id) => state.store.oidc.client(id).await?,
                None => None,
            };
            match (client, pending.redirect_uri) {
                (Some(client), Some(uri)) if client.allows_redirect(&uri) => Some(uri),
                _ => None,
            }
        }
        None => ReturnTo::parse(&next, &state.settings.forward.allowed_return_hosts)
            .map(|to| to.as_str().to_owned()),
    };
    let origin = target
        .and_then(|t| url::Url::parse(&t).ok())
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null");
    Ok(origin.map(|o| crate::csp::with_form_redirect_to(&o)))
}

/// The pages of this feature.
#[component]
fn BindPages() -> impl IntoView {
    view! {
        <PageRouter>
            <Routes fallback=pages::not_found>
                <Route path=path!("/bind") view=BindPage />
                <Route path=path!("/login/sms") view=phone_login::SmsLoginPage />
            </Routes>
        </PageRouter>
    }
}

/// `GET /bind`.
#[component]
fn BindPage() -> impl IntoView {
    page(async |mut request: PageRequest| {
        let state = request.state.clone();
        let session: WebSession = request.extract().await?;
        let Query(query) = request.extract::<Query<BindQuery>>().await?;
        let scene = match access(&state, &session).await? {
            Access::Allowed(scene) => scene,
            Access::Elsewhere(to) => return Err(Detour::to(to)),
        };
        if query.change.is_some() {
            session.clear_code_phone(PhoneStep::Bind).await?;
        }
        let target = Target {
            flow: Flow::Bind,
            key: scene.scene.clone(),
        };
        let (form, status, retry_after) = target.page_form(&state, &session).await?;
        request.status(status);
        if let Some(seconds) = retry_after {
            request.header(axum::http::header::RETRY_AFTER, seconds.into());
        }
        let csrf = session.csrf_token().await?;
        if let Some(policy) = form_policy(&state, &session).await? {
            request.header(axum::http::header::CONTENT_SECURITY_POLICY, policy);
        }
        Ok(view! { <CodeForms flow=Flow::Bind form csrf /> }.into_any())
    })
}

#[derive(Debug, Deserialize)]
struct SendCodeForm {
    csrf: String,
    phone: String,
}

/// `POST /bind/code`: sends a code to the phone, within the limits.
async fn send_code(
    State(state): State<AppState>,
    lang: Lang,
    session: WebSession,
    client: ClientInfo,
    Form(form): Form<SendCodeForm>,
) -> AppResult<Response> {
    session.check_csrf(&form.csrf).await?;
    let scene = match access(&state, &session).await? {
        Access::Allowed(scene) => scene,
        Access::Elsewhere(to) => return Ok(Redirect::to(to).into_response()),
    };
    let target = Target {
        flow: Flow::Bind,
        key: scene.scene.clone(),
    };
    let phone = match target.parse_phone(lang, &session, form.phone).await? {
        Ok(phone) => phone,
        Err(answer) => return Ok(answer),
    };
    let code = match target
        .store_code(&state, lang, &session, &client, phone)
        .await?
    {
        Ok(code) => code,
        Err(answer) => return Ok(answer),
    };
    let t = lang.text();
    let phone = code.phone;
    if let Err(e) = state.sms.send(&phone, &code.code).await {
        sms_failed(&state, &phone, &e);
        // The code stays, and counts toward every limit like a delivered one: the gateway was
        // reached, and one that delivers and then reports failure (or times out after
        // delivering) must not make sending free. If it did arrive, it can be used; otherwise
        // a new one can be asked for when the resend cooldown ends, as the page says.
        session
            .set_code_phone(PhoneStep::Bind, phone.national())
            .await?;
        let wait = target.resend_wait(&state, &phone).await?;
        let form = BindForm::Code {
            phone,
            wait,
            note: Note::Notice(t.err_sms_failed.to_owned()),
        };
        let status = StatusCode::SERVICE_UNAVAILABLE;
        return render(Flow::Bind, &session, form, status).await;
    }
    Metrics::inc(&state.metrics.sms_sent);
    tracing::info!(phone = %phone, "SMS code sent");
    session
        .set_code_phone(PhoneStep::Bind, phone.national())
        .await?;
    // Post/redirect/get: reloading the page must not send another SMS.
    Ok(Redirect::to("/bind").into_response())
}

/// Logs a code the gateway didn't take. The gateway's own code goes to the log; the person
/// only learns "try again" (or, logging in, nothing at all).
fn sms_failed(state: &AppState, phone: &Phone, e: &crate::sms::SmsError) {
    Metrics::inc(&state.metrics.sms_refused);
    tracing::warn!(
        provider = e.provider(),
        gateway_code = e.gateway_code().unwrap_or("-"),
        phone = %phone,
        error = %e,
        "SMS code not sent"
    );
}

/// An SMS-code form at work: which one, and the key its codes are bound to (a binding's
/// scene, or a login's browser).
struct Target {
    flow: Flow,
    key: String,
}

/// A code stored within the limits, to be sent.
struct NewSms {
    phone: Phone,
    code: String,
}

impl Target {
    /// What the form's GET page shows: the code step when a code went to a phone, else the
    /// phone step.
    /// After a POST, what it left to show (with the status of what it shows).
    async fn page_form(
        &self,
        state: &AppState,
        session: &WebSession,
    ) -> AppResult<(BindForm, StatusCode, Option<i64>)> {
        let step = self.flow.step();
        let stored = session
            .code_phone(step)
            .await?
            .and_then(|p| Phone::parse(&p));
        let wait = match &stored {
            Some(phone) => self.resend_wait(state, phone).await?,
            None => 0,
        };
        if let Some(shown) = session.take_shown::<views::Shown>(step).await? {
            let retry_after = shown.retry_after;
            let (form, status) = shown.form(wait);
            return Ok((form, status, retry_after));
        }
        let form = match stored {
            Some(phone) => BindForm::Code {
                wait,
                phone,
                note: Note::None,
            },
            None => BindForm::Phone {
                value: String::new(),
                error: None,
            },
        };
        Ok((form, StatusCode::OK, None))
    }

    /// The typed number, or the phone step again with the error (400).
    async fn parse_phone(
        &self,
        lang: Lang,
        session: &WebSession,
        typed: String,
    ) -> AppResult<Result<Phone, Response>> {
        if let Some(phone) = Phone::parse(&typed) {
            return Ok(Ok(phone));
        }
        let form = BindForm::Phone {
            value: typed,
            error: Some(lang.text().err_phone.to_owned()),
        };
        let status = StatusCode::BAD_REQUEST;
        Ok(Err(render(self.flow, session, form, status).await?))
    }

    /// Makes a code for `phone` and stores its hash, checking every send limit in the same
    /// step; a limit that holds answers 429 instead.
    async fn store_code(
        &self,
        state: &AppState,
        lang: Lang,
        session: &WebSession,
        client: &ClientInfo,
        phone: Phone,
    ) -> AppResult<Result<NewSms, Response>> {
        let limits = state.settings.sms.limits;
        let code = code::new_code();
        let t_now = now();
        let new = NewCode {
            scene: self.key.clone(),
            phone: phone.e164().to_owned(),
            code_hash: code::code_hash(&state.code_key, &self.key, &phone, &code),
            created_at: t_now,
            expires_at: t_now + CODE_TTL_SECONDS,
            // The limits count by the address, or by its /64 for IPv6.
            client_key: client.limit_key.clone(),
        };
        match state.store.binding.insert_code(new, limits.send()).await? {
            Ok(_) => Ok(Ok(NewSms { phone, code })),
            Err(blocked) => {
                Metrics::inc(&state.metrics.sms_refused);
                tracing::info!(phone = %phone, limit = ?blocked.limit, until = blocked.until, "SMS code refused by a limit");
                let refused = Refused {
                    phone,
                    blocked,
                    t_now,
                };
                Ok(Err(self.refuse_send(state, lang, session, refused).await?))
            }
        }
    }

    /// The answer to a send held back by a limit: 429 with `Retry-After`, saying when to try
    /// again. The resend cooldown shows the code step (a code is on its way); the hourly,
    /// daily and IP limits show the step the person was on, with the time they clear.
    async fn refuse_send(
        &self,
        state: &AppState,
        lang: Lang,
        session: &WebSession,
        refused: Refused,
    ) -> AppResult<Response> {
        let Refused {
            phone,
            blocked,
            t_now,
        } = refused;
        let t = lang.text();
        let step = self.flow.step();
        let retry_after = (blocked.until - t_now).max(1);
        let form = if blocked.limit == limits::Limit::Resend {
            session.set_code_phone(step, phone.national()).await?;
            BindForm::Code {
                note: Note::Notice(fill(t.resend_notice, &[&retry_after])),
                wait: retry_after,
                phone,
            }
        } else {
            let message = limits::retry_message(lang, blocked, t_now);
            let current = session
                .code_phone(step)
                .await?
                .and_then(|p| Phone::parse(&p));
            if current.as_ref() == Some(&phone) {
                BindForm::Code {
                    wait: self.resend_wait(state, &phone).await?,
                    note: Note::Notice(message),
                    phone,
                }
            } else {
                BindForm::Phone {
                    value: phone.national().to_owned(),
                    error: Some(message),
                }
            }
        };
        let status = StatusCode::TOO_MANY_REQUESTS;
        render_refused(self.flow, session, form, status, Some(retry_after)).await
    }

    /// Checks a submitted code against the newest code of this form's phone: the phone and
    /// the code's id when it is right, else the code step again with why (400).
    async fn check_code(
        &self,
        state: &AppState,
        lang: Lang,
        session: &WebSession,
        submitted: &str,
    ) -> AppResult<Result<(Phone, i64), Response>> {
        let t = lang.text();
        let stored = session.code_phone(self.flow.step()).await?;
        let Some(phone) = stored.and_then(|p| Phone::parse(&p)) else {
            let form = BindForm::Phone {
                value: String::new(),
                error: Some(t.err_no_code.to_owned()),
            };
            return Ok(Err(render(
                self.flow,
                session,
                form,
                StatusCode::BAD_REQUEST,
            )
            .await?));
        };
        let code = submitted.trim();
        let max_attempts = state.settings.sms.limits.max_attempts;
        let note = if !code::well_formed(code) {
            Note::Error(t.err_code_format.to_owned())
        } else {
            match code::check(state, &self.key, &phone, code, max_attempts).await? {
                CodeCheck::Right(code_id) => return Ok(Ok((phone, code_id))),
                CodeCheck::Wrong { left } if left > 0 => Note::Error(tries_left(t, left)),
                CodeCheck::Wrong { .. } => Note::Dead(t.err_code_last_wrong.to_owned()),
                CodeCheck::Dead => Note::Dead(t.err_code_dead.to_owned()),
                CodeCheck::None => Note::Error(t.err_no_code.to_owned()),
            }
        };
        let form = BindForm::Code {
            wait: self.resend_wait(state, &phone).await?,
            phone,
            note,
        };
        Ok(Err(render(
            self.flow,
            session,
            form,
            StatusCode::BAD_REQUEST,
        )
        .await?))
    }

    /// Seconds until another code may be sent for this key or this phone.
    async fn resend_wait(&self, state: &AppState, phone: &Phone) -> AppResult<i64> {
        let resend = state.settings.sms.limits.resend_seconds;
        Ok(state
            .store
            .binding
            .resend_wait(&self.key, phone.e164(), resend, now())
            .await?)
    }
}

/// "Wrong code, 2 tries left", with the plural the language needs.
fn tries_left(t: &crate::ui::Text, left: i64) -> String {
    if left == 1 {
        t.err_code_wrong_one.to_owned()
    } else {
        fill(t.err_code_wrong, &[&left])
    }
}

/// A send a limit held back.
struct Refused {
    /// The number, parsed.
    phone: Phone,
    /// Which limit, and until when.
    blocked: limits::Blocked,
    /// When it was asked for.
    t_now: i64,
}

#[derive(Debug, Deserialize)]
struct VerifyForm {
    csrf: String,
    code: String,
}

/// `POST /bind/verify`: checks the code, binds, logs in.
async fn verify_code(
    State(state): State<AppState>,
    lang: Lang,
    session: WebSession,
    Form(form): Form<VerifyForm>,
) -> AppResult<Response> {
    session.check_csrf(&form.csrf).await?;
    let scene = match access(&state, &session).await? {
        Access::Allowed(scene) => scene,
        Access::Elsewhere(to) => return Ok(Redirect::to(to).into_response()),
    };
    let target = Target {
        flow: Flow::Bind,
        key: scene.scene.clone(),
    };
    let (phone, code_id) = match target
        .check_code(&state, lang, &session, &form.code)
        .await?
    {
        Ok(right) => right,
        Err(answer) => return Ok(answer),
    };
    let Some(openid) = scene.openid.clone() else {
        return Ok(Redirect::to("/login").into_response());
    };
    let owner = scene.owner.clone();
    let link = LinkRequest {
        scene: *scene,
        openid: openid.clone(),
        phone: phone.e164().to_owned(),
        code_id,
        now: now(),
    };
    let t = lang.text();
    let message = match state.store.binding.link(link).await? {
        Linked::Yes(user_id) => {
            tracing::info!(user_id, phone = %phone, "WeChat bound to phone");
            state.live.announce(&owner);
            tokio::spawn(fetch_profile(state.clone(), user_id, openid));
            session.clear_code_phone(PhoneStep::Bind).await?;
            // The scene is now authorized: redeem it like any other login.
            return Ok(Redirect::to("/login/complete").into_response());
        }
        Linked::PhoneTaken => t.err_phone_taken,
        Linked::WechatTaken => t.err_wechat_taken,
        Linked::Disabled => t.status_rejected,
        Linked::Gone => return Ok(Redirect::to("/login").into_response()),
    };
    let form = BindForm::Phone {
        value: phone.national().to_owned(),
        error: Some(message.to_owned()),
    };
    render(Flow::Bind, &session, form, StatusCode::CONFLICT).await
}

/// After a binding, asks WeChat once what it still tells about the person: `unionid` (when the
/// account is linked to an Open Platform account) and whether they follow. Nickname and avatar
/// are no longer returned (since 2021-12-27), so none are expected.
async fn fetch_profile(state: AppState, user_id: i64, openid: String) {
    let info = match state.wechat.user_info(&openid).await {
        Ok(info) => info,
        Err(e) => {
            Metrics::inc(&state.metrics.wechat_errors);
            tracing::warn!(errcode = ?e.errcode(), error = %e, "user/info failed after binding");
            return;
        }
    };
    let stored = state
        .store
        .binding
        .store_profile(
            user_id,
            &openid,
            info.unionid.as_deref(),
            info.subscribe == 1,
            now(),
        )
        .await;
    if let Err(e) = stored {
        tracing::warn!(error = %e, "profile from user/info not stored");
    }
}
