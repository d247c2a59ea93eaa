//! Phone binding: a person scanning for the first time proves a phone number with an SMS code,
//! and their WeChat is linked to the user with that number (made if needed).
//!
//! Only the browser whose scan needs it may bind, and only while its QR code lives. Codes are
//! 6 digits from the OS CSPRNG, valid 5 minutes, and stored only as a keyed hash. The limits
//! ([`sms::SmsLimits`], all configurable) are: dead after 5 wrong tries, resent no sooner than
//! 60 s, at most 5 per phone per hour and 10 per day, at most 20 per client IP per hour.

pub mod limits;
pub mod phone;
pub mod sms;

use axum::{
    Form, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use hmac::{Hmac, Mac};
use leptos::prelude::*;
use rand::Rng;
use serde::Deserialize;
use sha2::Sha256;
use sqlx::SqlitePool;
use subtle::ConstantTimeEq;

use crate::{
    client_info::ClientInfo,
    db::now,
    error::AppResult,
    login::scene::{self, Outcome, Scene, SceneState, Status},
    metrics::Metrics,
    session::WebSession,
    state::AppState,
    ui::{self, Lang, PageOptions, Text, csrf_field, fill},
};
use phone::Phone;

/// How long a code is valid.
pub const CODE_TTL_SECONDS: i64 = 300;

const BIND_PHONE: &str = "bind_phone";

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/bind", get(bind_page))
        .route("/bind/code", post(send_code))
        .route("/bind/verify", post(verify_code))
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
    let Some(scene) = scene::current(&state.db, &owner).await? else {
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

/// `GET /bind`.
async fn bind_page(
    State(state): State<AppState>,
    lang: Lang,
    session: WebSession,
    session_store: tower_sessions::Session,
    Query(query): Query<BindQuery>,
) -> AppResult<Response> {
    let scene = match access(&state, &session).await? {
        Access::Allowed(scene) => scene,
        Access::Elsewhere(to) => return Ok(Redirect::to(to).into_response()),
    };
    if query.change.is_some() {
        session_store.remove_value(BIND_PHONE).await?;
    }
    let form = match session_store
        .get::<String>(BIND_PHONE)
        .await?
        .and_then(|p| Phone::parse(&p))
    {
        Some(phone) => {
            let wait = resend_wait(&state, &scene.scene, &phone).await?;
            BindForm::Code {
                phone,
                wait,
                error: None,
            }
        }
        None => BindForm::Phone {
            value: String::new(),
            error: None,
        },
    };
    render(lang, &session, form, StatusCode::OK).await
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
    session_store: tower_sessions::Session,
    client: ClientInfo,
    Form(form): Form<SendCodeForm>,
) -> AppResult<Response> {
    session.check_csrf(&form.csrf).await?;
    let scene = match access(&state, &session).await? {
        Access::Allowed(scene) => scene,
        Access::Elsewhere(to) => return Ok(Redirect::to(to).into_response()),
    };
    let t = lang.text();
    let Some(phone) = Phone::parse(&form.phone) else {
        let form = BindForm::Phone {
            value: form.phone,
            error: Some(t.err_phone.to_owned()),
        };
        return render(lang, &session, form, StatusCode::BAD_REQUEST).await;
    };
    let limits = state.settings.sms.limits;
    let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
    let t_now = now();
    // Insert first, then check the limits in the same transaction: the insert takes SQLite's
    // write lock, so parallel requests are checked one after the other and can't all slip in.
    let mut tx = state.db.begin().await?;
    let code_id: i64 = sqlx::query_scalar(
        "INSERT INTO sms_codes (scene, phone, code_hash, created_at, expires_at, client_ip) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&scene.scene)
    .bind(phone.e164())
    .bind(code_hash(&state.code_key, &scene.scene, &phone, &code))
    .bind(t_now)
    .bind(t_now + CODE_TTL_SECONDS)
    // The limits count by the address, or by its /64 for IPv6.
    .bind(&client.limit_key)
    .fetch_one(&mut *tx)
    .await?;
    let blocked = limits::check(
        &mut tx,
        &limits,
        &scene.scene,
        &phone,
        &client.limit_key,
        t_now,
        code_id,
    )
    .await?;
    if let Some(blocked) = blocked {
        tx.rollback().await?;
        Metrics::inc(&state.metrics.sms_refused);
        tracing::info!(phone = %phone, limit = ?blocked.limit, until = blocked.until, "SMS code refused by a limit");
        return refuse_send(
            &state,
            lang,
            &session,
            &session_store,
            &scene,
            phone,
            form.phone,
            blocked,
            t_now,
        )
        .await;
    }
    tx.commit().await?;
    if let Err(e) = state.sms.send(&phone, &code).await {
        Metrics::inc(&state.metrics.sms_refused);
        // The gateway's own code goes to the log; the person only learns "try again".
        tracing::warn!(
            provider = e.provider(),
            gateway_code = e.gateway_code().unwrap_or("-"),
            phone = %phone,
            error = %e,
            "SMS code not sent"
        );
        // The code stays, and counts toward every limit like a delivered one: the gateway was
        // reached, and one that delivers and then reports failure (or times out after
        // delivering) must not make sending free. If it did arrive, it can be used; otherwise
        // a new one can be asked for when the resend cooldown ends, as the page says.
        session_store.insert(BIND_PHONE, phone.national()).await?;
        let wait = resend_wait(&state, &scene.scene, &phone).await?;
        let form = BindForm::Code {
            phone,
            wait,
            error: Some(t.err_sms_failed.to_owned()),
        };
        return render(lang, &session, form, StatusCode::SERVICE_UNAVAILABLE).await;
    }
    Metrics::inc(&state.metrics.sms_sent);
    tracing::info!(phone = %phone, "SMS code sent");
    session_store.insert(BIND_PHONE, phone.national()).await?;
    // Post/redirect/get: reloading the page must not send another SMS.
    Ok(Redirect::to("/bind").into_response())
}

/// The answer to a send held back by a limit: 429 with `Retry-After`, saying when to try
/// again. The resend cooldown shows the code step (a code is on its way); the hourly, daily and
/// IP limits show the step the person was on, with the time they clear.
#[allow(clippy::too_many_arguments)]
async fn refuse_send(
    state: &AppState,
    lang: Lang,
    session: &WebSession,
    session_store: &tower_sessions::Session,
    scene: &Scene,
    phone: Phone,
    typed: String,
    blocked: limits::Blocked,
    t_now: i64,
) -> AppResult<Response> {
    let t = lang.text();
    let retry_after = (blocked.until - t_now).max(1);
    let form = if blocked.limit == limits::Limit::Resend {
        session_store.insert(BIND_PHONE, phone.national()).await?;
        BindForm::Code {
            error: Some(fill(t.resend_wait, &[&retry_after])),
            wait: retry_after,
            phone,
        }
    } else {
        let message = limits::retry_message(lang, blocked, t_now);
        let current = session_store
            .get::<String>(BIND_PHONE)
            .await?
            .and_then(|p| Phone::parse(&p));
        if current.as_ref() == Some(&phone) {
            BindForm::Code {
                wait: resend_wait(state, &scene.scene, &phone).await?,
                error: Some(message),
                phone,
            }
        } else {
            BindForm::Phone {
                value: typed,
                error: Some(message),
            }
        }
    };
    let mut response = render(lang, session, form, StatusCode::TOO_MANY_REQUESTS).await?;
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(retry_after),
    );
    Ok(response)
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
    session_store: tower_sessions::Session,
    Form(form): Form<VerifyForm>,
) -> AppResult<Response> {
    session.check_csrf(&form.csrf).await?;
    let scene = match access(&state, &session).await? {
        Access::Allowed(scene) => scene,
        Access::Elsewhere(to) => return Ok(Redirect::to(to).into_response()),
    };
    let t = lang.text();
    let Some(phone) = session_store
        .get::<String>(BIND_PHONE)
        .await?
        .and_then(|p| Phone::parse(&p))
    else {
        let form = BindForm::Phone {
            value: String::new(),
            error: Some(t.err_no_code.to_owned()),
        };
        return render(lang, &session, form, StatusCode::BAD_REQUEST).await;
    };
    let wait = resend_wait(&state, &scene.scene, &phone).await?;
    let refuse = |message: String| BindForm::Code {
        phone: phone.clone(),
        wait,
        error: Some(message),
    };
    let code = form.code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return render(
            lang,
            &session,
            refuse(t.err_code_format.to_owned()),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let max_attempts = state.settings.sms.limits.max_attempts;
    let code_id = match check_code(&state, &scene, &phone, code, max_attempts).await? {
        CodeCheck::Right(code_id) => code_id,
        CodeCheck::Wrong { left } => {
            let message = if left > 0 {
                fill(t.err_code_wrong, &[&left])
            } else {
                t.err_code_last_wrong.to_owned()
            };
            return render(lang, &session, refuse(message), StatusCode::BAD_REQUEST).await;
        }
        CodeCheck::Dead => {
            return render(
                lang,
                &session,
                refuse(t.err_code_dead.to_owned()),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
        CodeCheck::None => {
            return render(
                lang,
                &session,
                refuse(t.err_no_code.to_owned()),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let message = match link(&state.db, &scene, &phone, code_id).await? {
        Linked::Yes(user_id) => {
            state.hub.notify(&scene.owner);
            state.login_feed.publish();
            if let Some(openid) = scene.openid.clone() {
                tokio::spawn(fetch_profile(state.clone(), user_id, openid));
            }
            session_store.remove_value(BIND_PHONE).await?;
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
    render(lang, &session, form, StatusCode::CONFLICT).await
}

/// The outcome of linking a WeChat to a phone.
#[derive(Debug, PartialEq, Eq)]
enum Linked {
    /// Bound to this user; the scene is authorized.
    Yes(i64),
    /// The phone's user has another WeChat.
    PhoneTaken,
    /// This WeChat was bound to another phone meanwhile (a race with another browser).
    WechatTaken,
    /// The phone's user is disabled.
    Disabled,
    /// The scene or the code was used meanwhile (a double submit).
    Gone,
}

/// Links the scanning WeChat to the user with this phone, in one transaction: a phone with no
/// user gets a new user; a user without a WeChat gets this one; a user with another WeChat is
/// refused. Of two racing browsers exactly one wins: the unique indexes on `users.phone` and
/// `users.openid` and the conditional updates decide, and the loser's transaction rolls back
/// whole.
async fn link(db: &SqlitePool, scene: &Scene, phone: &Phone, code_id: i64) -> AppResult<Linked> {
    let Some(openid) = scene.openid.as_deref() else {
        return Ok(Linked::Gone);
    };
    let mut tx = db.begin().await?;
    let t = now();
    // Claim the code first: this write takes the lock, so everything below sees a settled state.
    let claimed = sqlx::query("UPDATE sms_codes SET used = 1 WHERE id = ? AND used = 0")
        .bind(code_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let still_waiting = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM login_scenes WHERE scene = ? AND state = 'needs_bind' AND expires_at > ?",
    )
    .bind(&scene.scene)
    .bind(t)
    .fetch_one(&mut *tx)
    .await?;
    if claimed != 1 || still_waiting != 1 {
        return Ok(Linked::Gone);
    }
    let existing: Option<(i64, Option<String>, bool)> =
        sqlx::query_as("SELECT id, openid, disabled FROM users WHERE phone = ?")
            .bind(phone.e164())
            .fetch_optional(&mut *tx)
            .await?;
    let written = match existing {
        None => sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (phone, openid, created_at, bound_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(phone.e164())
        .bind(openid)
        .bind(t)
        .bind(t)
        .fetch_one(&mut *tx)
        .await,
        Some((_, _, true)) => return Ok(Linked::Disabled),
        Some((id, Some(bound), _)) if bound == openid => Ok(id),
        Some((_, Some(_), _)) => return Ok(Linked::PhoneTaken),
        Some((id, None, _)) => sqlx::query_scalar::<_, i64>(
            "UPDATE users SET openid = ?, bound_at = ? WHERE id = ? AND openid IS NULL RETURNING id",
        )
        .bind(openid)
        .bind(t)
        .bind(id)
        .fetch_one(&mut *tx)
        .await,
    };
    let user_id = match written {
        Ok(id) => id,
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            // users.openid is unique: this WeChat got bound elsewhere first.
            return Ok(Linked::WechatTaken);
        }
        Err(e) => return Err(e.into()),
    };
    scene::resolve(
        &mut tx,
        &scene.scene,
        SceneState::Authorized,
        openid,
        Some(user_id),
    )
    .await?;
    scene::record_event(&mut tx, scene, Some(user_id), openid, Outcome::LoggedIn, t).await?;
    tx.commit().await?;
    tracing::info!(user_id, phone = %phone, "WeChat bound to phone");
    Ok(Linked::Yes(user_id))
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
    let t = now();
    let stored = async {
        sqlx::query("UPDATE users SET unionid = COALESCE(?, unionid) WHERE id = ?")
            .bind(&info.unionid)
            .bind(user_id)
            .execute(&state.db)
            .await?;
        sqlx::query(
            "INSERT INTO followers (openid, following, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (openid) DO UPDATE SET following = ?2, updated_at = ?3",
        )
        .bind(&openid)
        .bind(info.subscribe == 1)
        .bind(t)
        .execute(&state.db)
        .await
    };
    if let Err(e) = stored.await {
        tracing::warn!(error = %e, "profile from user/info not stored");
    }
}

/// How a submitted code compares.
enum CodeCheck {
    /// Right: the id of the code row.
    Right(i64),
    /// Wrong; `left` tries remain.
    Wrong { left: i64 },
    /// Expired, used up, or already used.
    Dead,
    /// No code was sent for this phone and login.
    None,
}

async fn check_code(
    state: &AppState,
    scene: &Scene,
    phone: &Phone,
    code: &str,
    max_attempts: i64,
) -> AppResult<CodeCheck> {
    let t_now = now();
    // The try is counted before the comparison, in the same statement that checks the code is
    // still alive: of any number of parallel guesses, at most `max_attempts` get a row back, so
    // at most that many comparisons are ever made per code (a right one counts as a try too).
    let counted: Option<(i64, Vec<u8>, i64)> = sqlx::query_as(
        "UPDATE sms_codes SET attempts = attempts + 1 \
         WHERE id = (SELECT id FROM sms_codes WHERE scene = ? AND phone = ? \
                     ORDER BY created_at DESC, id DESC LIMIT 1) \
           AND used = 0 AND attempts < ? AND expires_at > ? \
         RETURNING id, code_hash, attempts",
    )
    .bind(&scene.scene)
    .bind(phone.e164())
    .bind(max_attempts)
    .bind(t_now)
    .fetch_optional(&state.db)
    .await?;
    let Some((id, stored, attempts)) = counted else {
        let sent: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sms_codes WHERE scene = ? AND phone = ?)",
        )
        .bind(&scene.scene)
        .bind(phone.e164())
        .fetch_one(&state.db)
        .await?;
        return Ok(if sent {
            CodeCheck::Dead
        } else {
            CodeCheck::None
        });
    };
    let given = code_hash(&state.code_key, &scene.scene, phone, code);
    Ok(if bool::from(given.ct_eq(&stored)) {
        CodeCheck::Right(id)
    } else {
        CodeCheck::Wrong {
            left: max_attempts - attempts,
        }
    })
}

/// HMAC-SHA256 of the code, bound to its login and phone, with this installation's key.
fn code_hash(key: &[u8; 32], scene: &str, phone: &Phone, code: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in [scene, phone.e164(), code] {
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Seconds until another code may be sent for this login or this phone.
async fn resend_wait(state: &AppState, scene: &str, phone: &Phone) -> AppResult<i64> {
    let mut conn = state.db.acquire().await?;
    Ok(limits::resend_wait(&mut conn, &state.settings.sms.limits, scene, phone, now()).await?)
}

/// Which step of the form to show.
enum BindForm {
    /// Ask for the phone number.
    Phone {
        value: String,
        error: Option<String>,
    },
    /// Ask for the code sent to `phone`.
    Code {
        phone: Phone,
        wait: i64,
        error: Option<String>,
    },
}

async fn render(
    lang: Lang,
    session: &WebSession,
    form: BindForm,
    status: StatusCode,
) -> AppResult<Response> {
    let t: &'static Text = lang.text();
    let csrf = session.csrf_token().await?;
    let body = match form {
        BindForm::Phone { value, error } => {
            let invalid = error.is_some().to_string();
            view! {
                <h1>{t.bind_title}</h1>
                <p class="hint">{t.bind_hint}</p>
                <form id="send-code-form" method="post" action="/bind/code">
                    {csrf_field(csrf)}
                    <label for="phone">{t.phone_label}</label>
                    <input id="phone" name="phone" type="tel" autocomplete="tel" inputmode="tel"
                        required placeholder=t.phone_placeholder value=value
                        aria-invalid=invalid aria-describedby="phone-error" />
                    {error.map(|e| view! { <p id="phone-error" class="field-error" role="alert">{e}</p> })}
                    <button id="send-code" type="submit">{t.send_code}</button>
                </form>
            }
            .into_any()
        }
        BindForm::Code { phone, wait, error } => {
            let invalid = error.is_some().to_string();
            view! {
                <h1>{t.bind_title}</h1>
                <p class="info">{fill(t.code_sent, &[&phone.masked()])}</p>
                <form id="verify-form" method="post" action="/bind/verify">
                    {csrf_field(csrf.clone())}
                    <label for="code">{t.code_label}</label>
                    <input id="code" name="code" type="text" inputmode="numeric"
                        autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required
                        autofocus aria-invalid=invalid aria-describedby="code-error" />
                    {error.map(|e| view! { <p id="code-error" class="field-error" role="alert">{e}</p> })}
                    <button id="verify" type="submit">{t.verify}</button>
                </form>
                <form id="resend-form" class="inline" method="post" action="/bind/code">
                    {csrf_field(csrf)}
                    <input type="hidden" name="phone" value=phone.national().to_owned() />
                    <button id="resend" class="secondary" type="submit" data-wait=wait.to_string()
                        data-label=t.resend_code data-wait-label=t.resend_wait>
                        {if wait > 0 { fill(t.resend_wait, &[&wait]) } else { t.resend_code.to_owned() }}
                    </button>
                </form>
                <p><a id="change-phone" href="/bind?change=1">{t.change_phone}</a></p>
            }
            .into_any()
        }
    };
    let options = PageOptions {
        noscript_refresh: None,
        script: true,
    };
    Ok((status, ui::page(lang, t.bind_title, options, body)).into_response())
}
