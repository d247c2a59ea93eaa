//! The sandbox's WeChat API: `cgi-bin/token`, `stable_token`, `qrcode/create`, `showqrcode`,
//! `user/info` and web authorization's `sns/oauth2/access_token`, with the official JSON
//! shapes and errcodes.

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::{Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::{Faults, Sandbox};
use crate::{
    config::expose,
    state::AppState,
    util::{now, random_hex},
};

/// Tokens live 7,200 s, as WeChat's do.
const TOKEN_TTL: i64 = 7200;
/// After a classic `cgi-bin/token` call the previous token keeps working this long.
const OVERLAP: i64 = 300;

fn error(errcode: i64, errmsg: &str) -> Response {
    // WeChat answers errors with HTTP 200 and a JSON errcode.
    Json(json!({ "errcode": errcode, "errmsg": errmsg })).into_response()
}

/// Applies an ordered fault: waits, and answers with its errcode if it has one.
async fn fault(sandbox: &Sandbox) -> Option<Response> {
    let (errcode, delay) = sandbox.next_fault()?;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    errcode.map(|code| match code {
        -1 => error(-1, "system error"),
        45009 => error(45009, "reach max api daily quota limit"),
        other => error(other, "sandbox fault"),
    })
}

/// `POST /sandbox/api/faults`: tells the sandbox API to misbehave (tests only).
pub(super) async fn faults(
    Extension(sandbox): Extension<Arc<Sandbox>>,
    State(state): State<AppState>,
    Json(plan): Json<Faults>,
) -> Response {
    if plan.expire_tokens
        && let Err(e) = state.store.sandbox.expire_tokens(now()).await
    {
        return db_fault(e);
    }
    *sandbox.faults.lock().expect("faults lock") = plan.clone();
    Json(plan).into_response()
}

fn check_credentials(state: &AppState, appid: &str, secret: &str) -> Option<Response> {
    let wechat = &state.settings.wechat;
    if appid != wechat.appid {
        return Some(error(40013, "invalid appid"));
    }
    if !bool::from(secret.as_bytes().ct_eq(expose(&wechat.secret).as_bytes())) {
        return Some(error(40125, "invalid appsecret"));
    }
    None
}

async fn issue_token(state: &AppState) -> Result<(String, i64), crate::store::StoreError> {
    let token = random_hex(48);
    let expires_at = now() + TOKEN_TTL;
    state.store.sandbox.insert_token(&token, expires_at).await?;
    Ok((token, TOKEN_TTL))
}

fn db_fault(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "sandbox database error");
    error(-1, "system error")
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenQuery {
    grant_type: Option<String>,
    appid: Option<String>,
    secret: Option<String>,
}

/// `GET cgi-bin/token`: a new token each call; the previous one works 5 more minutes.
pub(super) async fn token(
    Extension(sandbox): Extension<Arc<Sandbox>>,
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> Response {
    if let Some(faulty) = fault(&sandbox).await {
        return faulty;
    }
    if q.grant_type.as_deref() != Some("client_credential") {
        return error(40002, "invalid grant_type");
    }
    if let Some(refusal) = check_credentials(
        &state,
        q.appid.as_deref().unwrap_or(""),
        q.secret.as_deref().unwrap_or(""),
    ) {
        return refusal;
    }
    let cut = state.store.sandbox.cut_tokens(now() + OVERLAP).await;
    if let Err(e) = cut {
        return db_fault(e);
    }
    match issue_token(&state).await {
        Ok((token, ttl)) => {
            Json(json!({ "access_token": token, "expires_in": ttl })).into_response()
        }
        Err(e) => db_fault(e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct StableTokenBody {
    grant_type: Option<String>,
    appid: Option<String>,
    secret: Option<String>,
    #[serde(default)]
    force_refresh: bool,
}

/// `POST cgi-bin/stable_token`: the same token while it is valid, unless `force_refresh`.
pub(super) async fn stable_token(
    Extension(sandbox): Extension<Arc<Sandbox>>,
    State(state): State<AppState>,
    body: Option<Json<StableTokenBody>>,
) -> Response {
    if let Some(faulty) = fault(&sandbox).await {
        return faulty;
    }
    let Some(Json(body)) = body else {
        return error(47001, "data format error");
    };
    if body.grant_type.as_deref() != Some("client_credential") {
        return error(40002, "invalid grant_type");
    }
    if let Some(refusal) = check_credentials(
        &state,
        body.appid.as_deref().unwrap_or(""),
        body.secret.as_deref().unwrap_or(""),
    ) {
        return refusal;
    }
    if !body.force_refresh {
        let live = state.store.sandbox.live_token(now()).await;
        match live {
            Ok(Some((token, expires_at))) => {
                return Json(json!({ "access_token": token, "expires_in": expires_at - now() }))
                    .into_response();
            }
            Ok(None) => {}
            Err(e) => return db_fault(e),
        }
    }
    match issue_token(&state).await {
        Ok((token, ttl)) => {
            Json(json!({ "access_token": token, "expires_in": ttl })).into_response()
        }
        Err(e) => db_fault(e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenParam {
    access_token: Option<String>,
}

/// `None` when the token is good, else WeChat's error answer.
async fn check_token(state: &AppState, token: Option<&str>) -> Option<Response> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Some(error(41001, "access_token missing"));
    };
    let expires_at = state.store.sandbox.token_expiry(token).await;
    match expires_at {
        Ok(Some(t)) if t > now() => None,
        Ok(Some(_)) => Some(error(42001, "access_token expired")),
        Ok(None) => Some(error(
            40001,
            "invalid credential, access_token is invalid or not latest",
        )),
        Err(e) => Some(db_fault(e)),
    }
}

/// `POST cgi-bin/qrcode/create`.
pub(super) async fn create_qr(
    Extension(sandbox): Extension<Arc<Sandbox>>,
    State(state): State<AppState>,
    Query(q): Query<TokenParam>,
    body: Option<Json<Value>>,
) -> Response {
    if let Some(faulty) = fault(&sandbox).await {
        return faulty;
    }
    if let Some(refusal) = check_token(&state, q.access_token.as_deref()).await {
        return refusal;
    }
    let Some(Json(body)) = body else {
        return error(47001, "data format error");
    };
    if body["action_name"] != "QR_STR_SCENE" && body["action_name"] != "QR_SCENE" {
        return error(40097, "invalid args: action_name");
    }
    let scene = match &body["action_info"]["scene"] {
        s if s["scene_str"].is_string() => s["scene_str"].as_str().unwrap_or_default().to_owned(),
        s if s["scene_id"].is_u64() => s["scene_id"].to_string(),
        _ => return error(40097, "invalid args: scene"),
    };
    if scene.is_empty() || scene.len() > 64 {
        return error(40097, "invalid args: scene_str must be 1 to 64 characters");
    }
    // Temporary codes: 30 days at most; WeChat's default is 60 s.
    let expire = body["expire_seconds"]
        .as_i64()
        .unwrap_or(60)
        .clamp(60, 2_592_000);
    let ticket = format!("gQSB{}", random_hex(24));
    // Through the writer, like the login page's own scene: every new login page makes one.
    let stored = state
        .store
        .sandbox
        .insert_ticket(&ticket, &scene, now() + expire)
        .await;
    if let Err(e) = stored {
        return db_fault(e);
    }
    // Real WeChat encodes `http://weixin.qq.com/q/...`; the sandbox's code opens its phone page,
    // so a real phone's camera can "scan" it too.
    let url = state.url(&format!("/sandbox/scan/{ticket}"));
    Json(json!({ "ticket": ticket, "expire_seconds": expire, "url": url })).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct ShowQuery {
    ticket: Option<String>,
}

/// `GET cgi-bin/showqrcode?ticket=`: the QR code as an image (SVG here, JPEG at WeChat).
pub(super) async fn show_qr(State(state): State<AppState>, Query(q): Query<ShowQuery>) -> Response {
    let ticket = q.ticket.unwrap_or_default();
    let known = state.store.sandbox.ticket_scene(&ticket, now()).await;
    match known {
        Ok(Some(_)) => {
            let url = state.url(&format!("/sandbox/scan/{ticket}"));
            (
                [(header::CONTENT_TYPE, "image/svg+xml")],
                crate::ui::qr::qr_svg(&url),
            )
                .into_response()
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => db_fault(e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct UserInfoQuery {
    access_token: Option<String>,
    openid: Option<String>,
}

/// `GET cgi-bin/user/info`: `subscribe`, `openid`, `subscribe_time` (no nickname or avatar:
/// WeChat stopped returning them on 2021-12-27).
pub(super) async fn user_info(
    Extension(sandbox): Extension<Arc<Sandbox>>,
    State(state): State<AppState>,
    Query(q): Query<UserInfoQuery>,
) -> Response {
    if let Some(faulty) = fault(&sandbox).await {
        return faulty;
    }
    if let Some(refusal) = check_token(&state, q.access_token.as_deref()).await {
        return refusal;
    }
    let openid = q.openid.unwrap_or_default();
    if !super::valid_openid(&openid) {
        return error(40003, "invalid openid");
    }
    let row = state.store.sandbox.follower(&openid).await;
    match row {
        // The sandbox account acts as if linked to an Open Platform account, so it has unionids.
        Ok(Some((true, since))) => Json(json!({
            "subscribe": 1, "openid": openid, "unionid": format!("union_{openid}"),
            "language": "zh_CN", "subscribe_time": since,
            "remark": "", "groupid": 0, "tagid_list": [], "subscribe_scene": "ADD_SCENE_QR_CODE",
            "qr_scene": 0, "qr_scene_str": ""
        }))
        .into_response(),
        Ok(Some((false, _))) => Json(json!({ "subscribe": 0, "openid": openid })).into_response(),
        Ok(None) => error(40003, "invalid openid"),
        Err(e) => db_fault(e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct OauthTokenQuery {
    #[serde(default)]
    appid: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    grant_type: String,
}

/// `GET /sandbox/sns/oauth2/access_token`: a web-authorization code for its person, once.
pub(super) async fn oauth_access_token(
    Extension(sandbox): Extension<Arc<Sandbox>>,
    State(state): State<AppState>,
    Query(q): Query<OauthTokenQuery>,
) -> Response {
    if let Some(faulty) = fault(&sandbox).await {
        return faulty;
    }
    if let Some(refusal) = check_credentials(&state, &q.appid, &q.secret) {
        return refusal;
    }
    if q.grant_type != "authorization_code" {
        return error(40002, "invalid grant_type");
    }
    match state.store.sandbox.use_oauth_code(&q.code, now()).await {
        Ok(crate::store::OauthCodeUse::Fresh { openid, snapshot }) => Json(json!({
            "access_token": random_hex(32),
            "expires_in": 7200,
            "refresh_token": random_hex(32),
            "openid": openid,
            "scope": "snsapi_base",
            "is_snapshotuser": u8::from(snapshot),
            "unionid": format!("union_{openid}"),
        }))
        .into_response(),
        Ok(crate::store::OauthCodeUse::Used) => error(40163, "code been used"),
        Ok(crate::store::OauthCodeUse::Unknown) => error(40029, "invalid code"),
        Err(e) => db_fault(e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ExpireRequest {
    ticket: String,
}

/// `POST /sandbox/api/expire` `{"ticket"}`: the QR code dies now, as if its time had run out
/// (tests of what a dead code looks like); its waiting page hears of it at once. 404 for an
/// unknown ticket.
pub(super) async fn expire(
    State(state): State<AppState>,
    Json(req): Json<ExpireRequest>,
) -> Response {
    match state.store.sandbox.expire_ticket(&req.ticket, now()).await {
        Ok(Some(owner)) => {
            state.live.announce(&owner);
            Json(json!({ "expired": true })).into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "unknown ticket" })),
        )
            .into_response(),
        Err(e) => db_fault(e),
    }
}
