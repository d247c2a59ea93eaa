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
use leptos_router::{
    components::{Route, Router as PageRouter, Routes},
    path,
};
use serde::Deserialize;
use serde_json::json;

use super::{Sandbox, ScanError, scan};
use crate::{
    error::{AppError, AppResult},
    pages::{self, PageRequest, page},
    phone::Phone as PhoneNumber,
    state::AppState,
    ui::{Lang, Shell, china_clock_seconds, fill, render},
    util::{now, random_hex},
};

/// The pages of the sandbox.
#[component]
pub(super) fn SandboxPages() -> impl IntoView {
    view! {
        <PageRouter>
            <Routes fallback=pages::not_found>
                <Route path=path!("/sandbox/scan/:ticket") view=ScanPage />
                <Route path=path!("/sandbox/sms") view=InboxPage />
                <Route path=path!("/sandbox/connect/oauth2/authorize") view=super::web::AuthorizePage />
            </Routes>
        </PageRouter>
    }
}

/// `GET /sandbox/scan/{ticket}`: pick a simulated user and scan.
#[component]
fn ScanPage() -> impl IntoView {
    page(async |mut request: PageRequest| {
        let Path(ticket) = request.extract::<Path<String>>().await?;
        let state = request.state.clone();
        // A ticket WeChat doesn't know (or no longer) says so first, with no form to try.
        if state
            .store
            .sandbox
            .ticket_scene(&ticket, now())
            .await?
            .is_none()
        {
            let lang = request.lang;
            let page = render::document(lang, move || {
                let t = lang.text();
                view! {
                    <Shell title=t.sandbox_title>
                        <h1>{t.sandbox_title}</h1>
                        <p id="sandbox-error" class="error" role="alert">{t.sandbox_bad_ticket}</p>
                    </Shell>
                }
            })
            .await;
            return Err(pages::Detour::Answer(
                (StatusCode::NOT_FOUND, page).into_response(),
            ));
        }
        let recent = state.store.sandbox.recent_openids(5).await?;
        Ok(view! { <Phone ticket recent chat=None /> }.into_any())
    })
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
    let t = lang.text();
    let (status, chat) = match scan(&state, &sandbox, &ticket, openid).await {
        Ok(outcome) => {
            let reply = if outcome.reply.is_empty() {
                t.sandbox_no_reply.to_owned()
            } else {
                outcome.reply
            };
            let chat = Chat::Reply {
                openid: outcome.openid,
                reply,
            };
            (StatusCode::OK, chat)
        }
        Err(ScanError::BadOpenid) => (
            StatusCode::BAD_REQUEST,
            Chat::Refused(t.sandbox_bad_openid.to_owned()),
        ),
        Err(ScanError::BadTicket) => (
            StatusCode::NOT_FOUND,
            Chat::Refused(t.sandbox_bad_ticket.to_owned()),
        ),
        Err(ScanError::Callback(why)) => (
            StatusCode::BAD_GATEWAY,
            Chat::Refused(fill(t.sandbox_callback_failed, &[&why])),
        ),
        Err(ScanError::Db(e)) => return Err(AppError::Internal(e.into())),
    };
    let recent = state.store.sandbox.recent_openids(5).await?;
    let chat = Some(chat);
    let page = render::document(lang, move || view! { <Phone ticket recent chat /> }).await;
    Ok((status, page).into_response())
}

/// What the phone shows after a scan.
pub(super) enum Chat {
    /// The account's answer to `openid`'s scan.
    Reply { openid: String, reply: String },
    /// Why the scan didn't happen.
    Refused(String),
}

/// The simulated phone for `ticket`: the people who scanned lately, a new person, and the
/// chat after a scan.
#[component]
fn Phone(ticket: String, recent: Vec<String>, chat: Option<Chat>) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let chat = chat.map(|chat| match chat {
        Chat::Reply { openid, reply } => view! {
            <div class="chat">
                <p class="muted">{t.sandbox_account} " · " {openid}</p>
                <p class="bubble mine">{t.sandbox_you_scanned}</p>
                <p class="bubble reply">{reply}</p>
            </div>
        }
        .into_any(),
        Chat::Refused(message) => view! { <p class="error" role="alert">{message}</p> }.into_any(),
    });
    let action = format!("/sandbox/scan/{}", url_path_segment(&ticket));
    let has_picks = !recent.is_empty();
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
    view! {
        <Shell title=t.sandbox_title>
            <div class="phone">
                <h1>{t.sandbox_title}</h1>
                <p class="hint">{t.sandbox_intro}</p>
                {chat}
                {has_picks.then(|| view! { <h2 id="picks-title">{t.sandbox_oauth_recent}</h2> })}
                <ul class="picks" aria-labelledby="picks-title">{picks}</ul>
                <form id="scan-form" method="post" action=action.clone()>
                    <label for="openid">{t.sandbox_new_user}</label>
                    // `-` escaped: Chromium reads `pattern` with the `v` flag, where an unescaped
                    // `-` at the end of a class is an error and the pattern is ignored.
                    <input id="openid" name="openid" required maxlength="64" pattern=r"[A-Za-z0-9_\-]{1,64}"
                        value=format!("o_sandbox_{}", random_hex(4)) />
                    <button id="scan" type="submit">{t.sandbox_scan}</button>
                </form>
                <p><a href="/sandbox/sms">{t.sandbox_inbox_title}</a></p>
            </div>
        </Shell>
    }
}

/// Tickets are hex after a fixed prefix; keep anything else from breaking the form's URL.
fn url_path_segment(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect()
}

/// `GET /sandbox/sms`: the newest SMS the console sender delivered.
#[component]
fn InboxPage() -> impl IntoView {
    page(async |request: PageRequest| {
        let rows = request.state.store.sandbox.inbox(20).await?;
        Ok(view! { <Inbox rows /> }.into_any())
    })
}

/// The SMS inbox: `(phone, code, sent at)`, newest first.
#[component]
fn Inbox(rows: Vec<(String, String, i64)>) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let empty = rows
        .is_empty()
        .then(|| view! { <p class="muted">{t.sandbox_inbox_empty}</p> });
    let items = rows
        .into_iter()
        .map(|(phone, code, sent_at)| {
            view! {
                <li>
                    <time class="muted">{china_clock_seconds(sent_at)}</time> " "
                    <span class="muted">{phone}</span> " " <strong class="code">{code}</strong>
                </li>
            }
        })
        .collect_view();
    view! {
        <Shell title=t.sandbox_inbox_title script=true>
            <h1>{t.sandbox_inbox_title}</h1>
            {empty}
            // app.js reloads it every few seconds (a meta refresh would take the page from
            // under a screen reader, and is an accessibility fault).
            <ul id="inbox" class="inbox" data-refresh="5">{items}</ul>
            <p><a href="/sandbox/sms">{t.sandbox_inbox_reload}</a></p>
        </Shell>
    }
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
    let Some(phone) = PhoneNumber::parse(&q.phone) else {
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
