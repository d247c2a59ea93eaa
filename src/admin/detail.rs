//! `GET /admin/users/{id}`: one user in full (phone, WeChat ids, dates), their login history
//! (newest first, paginated by `?before=<time>:<event id>`) and the audit log about them; and
//! `POST /admin/users/{id}/{action}`: disable, enable, unbind, grant-admin, revoke-admin.

use axum::{
    Form,
    extract::{Path, RawQuery, State},
    response::Redirect,
};
use leptos::prelude::*;
use serde::Deserialize;

use crate::{
    admin::{
        audit::Action,
        dashboard::{method_label, outcome_label},
        guard::AdminUser,
        layout::{AdminShell, Section},
        query::{bad_query, parse_query, user_id},
        times::{format_time, format_timestamp},
    },
    client_info::{ClientInfo, describe_user_agent},
    error::{AppError, AppResult},
    pages::{PageRequest, page},
    session::WebSession,
    state::AppState,
    store::{AuditEntry, HistoryRow},
    ui::{CsrfField, Lang, Text, fill, mask_phone},
    users::User,
};

/// Login history rows per page.
const HISTORY_PAGE: usize = 20;
/// Audit entries shown.
const AUDIT_LIMIT: i64 = 200;

/// `?before=` of the detail page.
#[derive(Debug, Default, Deserialize)]
struct DetailQuery {
    before: Option<String>,
    /// An action to confirm (its path segment): the second step, shown on this page.
    confirm: Option<String>,
    /// An action just done: its message.
    done: Option<String>,
}

/// Where a history page starts: before the event at this time with this id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Before {
    at: i64,
    id: i64,
}

impl Before {
    fn parse(lang: Lang, raw: &str) -> AppResult<Before> {
        raw.split_once(':')
            .and_then(|(at, id)| {
                Some(Before {
                    at: at.parse().ok()?,
                    id: id.parse().ok()?,
                })
            })
            .ok_or_else(|| {
                bad_query(
                    lang,
                    format!("before={raw} (expected <time>:<id>, e.g. 1764000000:42)"),
                )
            })
    }
}

/// The user's login history: their events, and the scans their current WeChat made before it
/// was bound (`needs_bind`, no user yet), newest first.
async fn history(
    state: &AppState,
    user: &User,
    before: Option<Before>,
) -> AppResult<(Vec<HistoryRow>, Option<Before>)> {
    let before = before.map(|b| (b.at, b.id)).unwrap_or((i64::MAX, i64::MAX));
    let mut rows = state
        .store
        .admin
        .history(
            user.id,
            user.openid.as_deref(),
            before,
            (HISTORY_PAGE + 1) as i64,
        )
        .await?;
    let next = (rows.len() > HISTORY_PAGE).then(|| {
        rows.truncate(HISTORY_PAGE);
        let last = &rows[HISTORY_PAGE - 1];
        Before {
            at: last.at,
            id: last.id,
        }
    });
    Ok((rows, next))
}

/// `GET /admin/users/{id}`.
#[component]
pub(super) fn UserPage() -> impl IntoView {
    page(async |mut request: PageRequest| {
        let AdminUser(admin) = request.extract().await?;
        let session: WebSession = request.extract().await?;
        let Path(raw_id) = request.extract::<Path<String>>().await?;
        let RawQuery(raw) = request.extract().await?;
        let (state, lang) = (&request.state, request.lang);
        let id = user_id(lang, &raw_id)?;
        let query: DetailQuery = parse_query(lang, raw.as_deref())?;
        let before = query
            .before
            .as_deref()
            .filter(|b| !b.is_empty())
            .map(|b| Before::parse(lang, b))
            .transpose()?;
        let admin_store = &state.store.admin;
        let user = state
            .store
            .users
            .by_id(id)
            .await?
            .ok_or(AppError::NotFound)?;
        let following = match user.openid.as_deref() {
            Some(openid) => admin_store.following(openid).await?,
            None => false,
        };
        let (events, older) = history(state, &user, before).await?;
        let audit = admin_store.audit_log(id, AUDIT_LIMIT).await?;
        let known =
            |segment: &Option<String>| segment.as_deref().and_then(Action::from_path_segment);
        let detail = Detail {
            confirm: known(&query.confirm).filter(|a| a.needs_confirming()),
            done: known(&query.done),
            is_self: user.id == admin.id,
            user,
            following,
            events,
            older,
            audit,
            csrf: session.csrf_token().await?,
        };
        Ok(view! { <UserDetail detail /> }.into_any())
    })
}

/// What the page of one user shows.
struct Detail {
    user: User,
    following: bool,
    /// A page of the login history, and where the next starts.
    events: Vec<HistoryRow>,
    older: Option<Before>,
    audit: Vec<AuditEntry>,
    /// For the action forms.
    csrf: String,
    /// The user is the administrator looking: no actions.
    is_self: bool,
    /// The action being confirmed.
    confirm: Option<Action>,
    /// The action just done.
    done: Option<Action>,
}

/// One user in full: facts, actions, login history and audit log.
#[component]
fn UserDetail(detail: Detail) -> impl IntoView {
    let lang = expect_context::<Lang>();
    let t = lang.text();
    let Detail {
        user,
        following,
        events,
        older,
        audit,
        csrf,
        is_self,
        confirm,
        done,
    } = detail;
    let title = fill(t.admin_user_title, &[&user.id]);
    let dash = || "—".to_owned();
    let facts = view! {
        <dl class="facts">
            <dt>{t.admin_col_phone}</dt><dd id="user-phone">{user.phone.clone()}</dd>
            <dt>{t.admin_col_openid}</dt>
            <dd id="user-openid"><code>{user.openid.clone().unwrap_or_else(|| t.admin_not_bound.to_owned())}</code></dd>
            <dt>{t.admin_col_unionid}</dt><dd><code>{user.unionid.clone().unwrap_or_else(dash)}</code></dd>
            <dt>{t.admin_col_following}</dt><dd>{yes_no(following, t)}</dd>
            <dt>{t.admin_col_admin}</dt><dd id="user-admin">{yes_no(user.is_admin, t)}</dd>
            <dt>{t.admin_col_disabled}</dt><dd id="user-disabled">{yes_no(user.disabled, t)}</dd>
            <dt>{t.admin_col_created_at}</dt><dd>{format_timestamp(user.created_at)}</dd>
            <dt>{t.admin_col_bound_at}</dt><dd>{format_time(lang, user.bound_at)}</dd>
            <dt>{t.admin_col_last_login}</dt><dd>{format_time(lang, user.last_login_at)}</dd>
        </dl>
    };

    let actions = if is_self {
        view! { <p id="self-note" class="muted">{t.admin_self_note}</p> }.into_any()
    } else {
        let available = [
            (!user.disabled).then_some(Action::Disable),
            user.disabled.then_some(Action::Enable),
            user.openid.is_some().then_some(Action::Unbind),
            (!user.is_admin).then_some(Action::GrantAdmin),
            user.is_admin.then_some(Action::RevokeAdmin),
        ];
        let page = format!("/admin/users/{}", user.id);
        // Colours by meaning: locking someone out is red, letting them in green, rights grey.
        let class = |action: Action| match action {
            Action::Disable | Action::Unbind | Action::RevokeAdmin => "danger",
            Action::Enable => "primary",
            Action::GrantAdmin => "secondary",
        };
        let post = |action: Action, id: String, label: &'static str| {
            view! {
                <form id=id class="inline" method="post"
                    action=format!("/admin/users/{}/{}", user.id, action.path_segment())>
                    <CsrfField token=csrf.clone() />
                    <input type="hidden" name="confirmed" value="1" />
                    <button type="submit" class=class(action)>{label}</button>
                </form>
            }
        };
        let forms = available
            .into_iter()
            .flatten()
            .map(|action| {
                let id = format!("action-{}", action.path_segment());
                if action.needs_confirming() {
                    // The first step is a link: it works without JavaScript and changes nothing.
                    let href = format!("{page}?confirm={}", action.path_segment());
                    view! { <a id=id class=format!("button {}", class(action)) href=href>{action.label(t)}</a> }
                        .into_any()
                } else {
                    post(action, id, action.label(t)).into_any()
                }
            })
            .collect_view();
        let question = confirm.and_then(|action| {
            let ask = action.question(t)?;
            Some(view! {
                <div id="confirm" class="confirm" role="alertdialog" aria-labelledby="confirm-question">
                    <p id="confirm-question"><strong>{ask}</strong></p>
                    <div class="actions">
                        {post(action, format!("confirm-{}", action.path_segment()), t.admin_confirm_yes)}
                        <a id="confirm-cancel" class="button secondary-button" href=page.clone()>{t.admin_confirm_cancel}</a>
                    </div>
                </div>
            })
        });
        view! { {question}<div class="actions">{forms}</div> }.into_any()
    };
    let done =
        done.map(|action| view! { <p id="done" class="notice" role="status">{action.done(t)}</p> });
    let badge = user
        .disabled
        .then(|| view! { " " <span id="disabled-badge" class="badge badge-disabled">{t.admin_badge_disabled}</span> });

    let history_table = if events.is_empty() {
        view! { <p class="muted">{t.admin_no_history}</p> }.into_any()
    } else {
        let rows = events
            .into_iter()
            .map(|e| {
                view! {
                    <tr data-event-id=e.id.to_string()>
                        <td>{format_timestamp(e.at)}</td>
                        <td>{e.client_ip.unwrap_or_default()}</td>
                        <td title=e.user_agent.clone().unwrap_or_default()>
                            {describe_user_agent(e.user_agent.as_deref().unwrap_or(""))
                                .unwrap_or_else(|| "?".into())}
                        </td>
                        <td class=format!("outcome outcome-{}", e.outcome.as_str())>{outcome_label(e.outcome, t)}</td>
                        <td class=format!("method method-{}", e.method.as_str())>{method_label(e.method, t)}</td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <div class="table-scroll" tabindex="0" role="region" aria-label=t.admin_login_history>
                <table id="login-history">
                    <thead><tr>
                        <th>{t.admin_col_time}</th>
                        <th>{t.admin_col_ip}</th>
                        <th>{t.admin_col_user_agent}</th>
                        <th>{t.admin_col_outcome}</th>
                        <th>{t.admin_col_method}</th>
                    </tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        }
        .into_any()
    };
    let older = older.map(|b| {
        view! {
            <p class="pager">
                <a id="older-logins" href=format!("/admin/users/{}?before={}:{}", user.id, b.at, b.id)>
                    {t.admin_older}
                </a>
            </p>
        }
    });

    view! {
        <AdminShell title=title.clone() section=Section::Users>
            <p><a href="/admin/users">{t.admin_back_to_users}</a></p>
            <h1>{title}{badge}</h1>
            {done}
            {facts}
            <h2>{t.admin_actions_title}</h2>
            {actions}
            <h2>{t.admin_login_history}</h2>
            {history_table}
            {older}
            <h2>{t.admin_audit_title}</h2>
            <AuditTable id="audit-log" entries=audit />
        </AdminShell>
    }
}

fn yes_no(value: bool, t: &Text) -> &'static str {
    if value { t.admin_yes } else { t.admin_no }
}

/// An audit log: a user's, or with `label` naming each action, a site's.
#[component]
pub(super) fn AuditTable(
    /// The table's id.
    id: &'static str,
    entries: Vec<AuditEntry>,
    #[prop(optional)] label: Option<fn(&str) -> String>,
) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    if entries.is_empty() {
        return view! { <p class="muted">{t.admin_no_audit}</p> }.into_any();
    }
    let rows = entries
        .into_iter()
        .map(|entry| {
            let label = label.map(|name| name(&entry.action));
            view! { <AuditLine entry label /> }
        })
        .collect_view();
    view! {
        <div class="table-scroll" tabindex="0" role="region" aria-label=t.admin_audit_title>
            <table id=id>
                <thead><tr>
                    <th>{t.admin_col_time}</th>
                    <th>{t.admin_col_actor}</th>
                    <th>{t.admin_col_action}</th>
                    <th>{t.admin_col_detail}</th>
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

/// One row of an audit log.
#[component]
fn AuditLine(entry: AuditEntry, label: Option<String>) -> impl IntoView {
    let t: &'static Text = expect_context::<Lang>().text();
    let actor = match (entry.actor_user_id, entry.actor_phone) {
        (Some(id), Some(phone)) => {
            view! { <a href=format!("/admin/users/{id}")>{mask_phone(&phone)}</a> }.into_any()
        }
        (Some(id), None) => view! { <span>{format!("#{id}")}</span> }.into_any(),
        (None, _) => view! { <span>{t.admin_actor_cli}</span> }.into_any(),
    };
    let action = label.unwrap_or_else(|| {
        Action::from_code(&entry.action)
            .map(|a| a.label(t).to_owned())
            .unwrap_or(entry.action.clone())
    });
    view! {
        <tr data-audit-action=entry.action.clone()>
            <td>{format_timestamp(entry.at)}</td>
            <td>{actor}</td>
            <td>{action}</td>
            <td>{entry.detail.unwrap_or_default()}</td>
        </tr>
    }
}

/// The form of an action: only its CSRF token. A missing token is refused like a wrong one.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// `1` from the confirmation of an action that needs one.
    confirmed: Option<String>,
}

/// `POST /admin/users/{id}/{action}`: applies the action and its audit row (with the
/// administrator's address) in one transaction, then goes back to the user's page (303), which
/// says it is done. One that locks someone out must come from its confirmation (`confirmed=1`);
/// without it, the page asks first. Not on yourself: an administrator can't lock themselves out
/// or change their own rights.
pub async fn act(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    lang: Lang,
    session: WebSession,
    client: ClientInfo,
    Path((raw_id, segment)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> AppResult<Redirect> {
    session.check_csrf(&form.csrf).await?;
    let action = Action::from_path_segment(&segment).ok_or(AppError::NotFound)?;
    let id = user_id(lang, &raw_id)?;
    if id == admin.id {
        return Err(AppError::BadRequest(lang.text().admin_err_self.to_owned()));
    }
    if action.needs_confirming() && form.confirmed.as_deref() != Some("1") {
        return Ok(Redirect::to(&format!(
            "/admin/users/{id}?confirm={}",
            action.path_segment()
        )));
    }
    // Where from, in no language: the log is read in either. The store's own detail (an
    // unbound openid) comes first.
    let from = format!("IP {}", client.ip);
    let done = state
        .store
        .admin
        .act(Some(admin.id), id, action, Some(&from))
        .await?
        .ok_or(AppError::NotFound)?;
    if done.changed {
        tracing::info!(
            admin = admin.id,
            user_id = id,
            action = action.code(),
            "admin action"
        );
    }
    Ok(Redirect::to(&format!(
        "/admin/users/{id}?done={}",
        action.path_segment()
    )))
}
