//! The sandbox's phone: a page that "scans" a ticket as a simulated WeChat user and shows the
//! Official Account's reply as a chat bubble, an SMS inbox, and the same two things as JSON for
//! automation (`POST /sandbox/api/scan`, `GET /sandbox/api/sms`).

use std::sync::Arc;

use axum::{
    Extension, Form, Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use leptos::prelude::*;
use serde::Deserialize;
use serde_json::json;

use super::{Sandbox, ScanError, ScanOutcome, scan};
use crate::{
    error::{AppError, AppResult},
    phone::Phone,
    state::AppState,
    ui::{self, Lang, PageOptions, fill},
    util::random_hex,
};

/// `GET /sandbox/scan/{ticket}`: pick a simulated user and scan.
pub(super) async fn scan_page(
    State(state): State<AppState>,
    lang: Lang,
    Path(ticket): Path<String>,
) -> AppResult<Response> {
    phone_page(&state, lang, &ticket, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(super) struct ScanForm {
    openid: String,
}

/// `POST /sandbox/scan/{ticket}`: the person taps "scan".
pub(super) async fn scan_form(
    Extension(sandbox): Extension<Arc<Sandbox>>,
    State(state): State<AppState>,
    lang: Lang,
    Path(ticket): Path<String>,
    Form(form): Form<ScanForm>,
) -> AppResult<Response> {
    let openid = form.openid.trim();
    let result = scan(&state, &sandbox, &ticket, openid).await;
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(ScanError::BadOpenid) => StatusCode::BAD_REQUEST,
        Err(ScanError::BadTicket) => StatusCode::NOT_FOUND,
        Err(_) => StatusCode::BAD_GATEWAY,
    };
    phone_page(&state, lang, &ticket, Some(result), status).await
}

async fn phone_page(
    state: &AppState,
    lang: Lang,
    ticket: &str,
    result: Option<Result<ScanOutcome, ScanError>>,
    status: StatusCode,
) -> AppResult<Response> {
    let t = lang.text();
    let recent: Vec<String> = state.store.sandbox.recent_openids(5).await?;
    let chat = match result {
        None => None,
        Some(Ok(outcome)) => {
            let reply = if outcome.reply.is_empty() {
                t.sandbox_no_reply.to_owned()
            } else {
                outcome.reply
            };
            Some(
                view! {
                    <div class="chat">
                        <p class="muted">{t.sandbox_account} " · " {outcome.openid}</p>
                        <p class="bubble mine">{t.sandbox_you_scanned}</p>
                        <p class="bubble reply">{reply}</p>
                    </div>
                }
                .into_any(),
            )
        }
        Some(Err(e)) => {
            let message = match e {
                ScanError::BadTicket => t.sandbox_bad_ticket.to_owned(),
                ScanError::BadOpenid => t.sandbox_bad_openid.to_owned(),
                ScanError::Callback(why) => fill(t.sandbox_callback_failed, &[&why]),
                ScanError::Db(e) => return Err(AppError::Internal(e.into())),
            };
            Some(view! { <p class="error" role="alert">{message}</p> }.into_any())
        }
    };
    let action = format!("/sandbox/scan/{}", url_path_segment(ticket));
    let picks = recent
        .into_iter()
        .map(|openid| {
            view! {
                <li>
                    <form method="post" action=action.clone() class="inline">
                        <input type="hidden" name="openid" value=openid.clone() />
                        <button type="submit" class="secondary" title=t.sandbox_pick>{openid}</button>
                    </form>
                </li>
            }
        })
        .collect_view();
    let body = view! {
        <div class="phone">
            <h1>{t.sandbox_title}</h1>
            <p class="hint">{t.sandbox_intro}</p>
            {chat}
            <ul class="picks">{picks}</ul>
            <form id="scan-form" method="post" action=action.clone()>
                <label for="openid">{t.sandbox_new_user}</label>
                <input id="openid" name="openid" required maxlength="64" pattern="[A-Za-z0-9_-]{1,64}"
                    value=format!("o_sandbox_{}", random_hex(4)) />
                <button id="scan" type="submit">{t.sandbox_scan}</button>
            </form>
            <p><a href="/sandbox/sms">{t.sandbox_inbox_title}</a></p>
        </div>
    };
    Ok((
        status,
        ui::page(lang, t.sandbox_title, PageOptions::default(), body),
    )
        .into_response())
}

/// Tickets are hex after a fixed prefix; keep anything else from breaking the form's URL.
fn url_path_segment(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect()
}

/// `GET /sandbox/sms`: the newest SMS the console sender delivered.
pub(super) async fn inbox_page(State(state): State<AppState>, lang: Lang) -> AppResult<Response> {
    let t = lang.text();
    let rows: Vec<(String, String, i64)> = state.store.sandbox.inbox(20).await?;
    let empty = rows
        .is_empty()
        .then(|| view! { <p class="muted">{t.sandbox_inbox_empty}</p> });
    let items = rows
        .into_iter()
        .map(|(phone, code, _)| {
            view! { <li><span class="muted">{phone}</span> " " <strong class="code">{code}</strong></li> }
        })
        .collect_view();
    let body = view! {
        <h1>{t.sandbox_inbox_title}</h1>
        {empty}
        <ul class="inbox">{items}</ul>
    };
    Ok(ui::page(lang, t.sandbox_inbox_title, PageOptions::default(), body).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct ScanRequest {
    ticket: String,
    openid: String,
}

/// `POST /sandbox/api/scan` `{"ticket", "openid"}` → `{"reply", "event", ...}`.
pub(super) async fn scan_api(
    Extension(sandbox): Extension<Arc<Sandbox>>,
    State(state): State<AppState>,
    Json(req): Json<ScanRequest>,
) -> Response {
    match scan(&state, &sandbox, &req.ticket, &req.openid).await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e) => {
            let status = match e {
                ScanError::BadTicket => StatusCode::NOT_FOUND,
                ScanError::BadOpenid => StatusCode::BAD_REQUEST,
                ScanError::Callback(_) => StatusCode::BAD_GATEWAY,
                ScanError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, Json(json!({ "error": e.to_string() }))).into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct SmsQuery {
    phone: String,
}

/// `GET /sandbox/api/sms?phone=` → `{"code", "phone", "sent_at"}` of the newest SMS (404 when
/// there is none).
pub(super) async fn sms_api(State(state): State<AppState>, Query(q): Query<SmsQuery>) -> Response {
    let Some(phone) = Phone::parse(&q.phone) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "not a mainland China mobile number" })),
        )
            .into_response();
    };
    let row = state.store.sandbox.newest_sms(phone.e164()).await;
    match row {
        Ok(Some((code, sent_at))) => {
            Json(json!({ "code": code, "phone": phone.e164(), "sent_at": sent_at })).into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no SMS for this phone" })),
        )
            .into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}
