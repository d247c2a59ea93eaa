//! `/admin/clients`: the sites registered as OpenID Connect clients; one site's page edits
//! its name and redirect URIs or removes it, each change audited. Sites are registered (and
//! secrets rotated) with `wxlogin client`, so a secret is only ever shown on a terminal.

use axum::{
    Form,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use leptos::prelude::*;
use serde::Deserialize;

use crate::{
    admin::{
        detail::AuditTable,
        guard::AdminUser,
        layout::{AdminShell, Section},
        times::format_timestamp,
    },
    error::{AppError, AppResult},
    oidc::{Client, RedirectUri},
    pages::{PageRequest, page},
    session::WebSession,
    state::AppState,
    store::{AuditEntry, ClientEdit},
    ui::{CsrfField, Lang, Text, fill, render},
};

/// Audit entries shown on a site's page.
const AUDIT_LIMIT: i64 = 100;

/// `GET /admin/clients`.
#[component]
pub(super) fn ClientsPage() -> impl IntoView {
    page(async |mut request: PageRequest| {
        let AdminUser(_admin) = request.extract().await?;
        let clients = request.state.store.oidc.clients().await?;
        Ok(view! { <ClientList clients /> }.into_any())
    })
}

/// The list of sites.
#[component]
fn ClientList(clients: Vec<Client>) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let table = if clients.is_empty() {
        view! { <p id="no-clients" class="muted">{t.admin_no_clients}</p> }.into_any()
    } else {
        let rows = clients
            .into_iter()
            .map(|c| {
                let href = format!("/admin/clients/{}", c.id);
                view! {
                    <tr data-client-id=c.id.clone()>
                        <td><a href=href>{c.name.clone()}</a></td>
                        <td><code>{c.id.clone()}</code></td>
                        <td>{kind(&c, t)}</td>
                        <td>{c.redirect_uris.join(" ")}</td>
                        <td>{format_timestamp(c.created_at)}</td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <div class="table-scroll" tabindex="0" role="region" aria-label=t.admin_nav_clients>
                <table id="clients">
                    <thead><tr>
                        <th>{t.admin_col_client_name}</th>
                        <th>{t.admin_col_client_id}</th>
                        <th>{t.admin_col_client_kind}</th>
                        <th>{t.admin_redirect_uris}</th>
                        <th>{t.admin_col_created_at}</th>
                    </tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        }
        .into_any()
    };
    view! {
        <AdminShell title=t.admin_nav_clients section=Section::Clients>
            <h1>{t.admin_nav_clients}</h1>
            <p class="hint">{t.admin_clients_intro}</p>
            {table}
        </AdminShell>
    }
}

fn kind(client: &Client, t: &Text) -> &'static str {
    if client.is_public() {
        t.admin_client_public
    } else {
        t.admin_client_confidential
    }
}

/// `GET /admin/clients/{id}`.
#[component]
pub(super) fn ClientPage() -> impl IntoView {
    page(async |mut request: PageRequest| {
        let AdminUser(_admin) = request.extract().await?;
        let session: WebSession = request.extract().await?;
        let Path(id) = request.extract::<Path<String>>().await?;
        let store = &request.state.store.oidc;
        let client = store.client(&id).await?.ok_or(AppError::NotFound)?;
        let audit = store.client_audit(&id, AUDIT_LIMIT).await?;
        let csrf = session.csrf_token().await?;
        let draft = Draft::of(&client);
        Ok(view! { <ClientView client audit csrf draft error=None /> }.into_any())
    })
}

/// What the edit form holds: the client's values, or what the administrator typed.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Draft {
    name: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
}

impl Draft {
    fn of(client: &Client) -> Draft {
        Draft {
            name: client.name.clone(),
            redirect_uris: client.redirect_uris.join("\n"),
            post_logout_redirect_uris: client.post_logout_redirect_uris.join("\n"),
        }
    }

    /// The checked edit, or what is wrong with it.
    fn check(&self, id: &str, t: &Text) -> Result<ClientEdit, String> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(t.admin_err_client_name.to_owned());
        }
        let uris = |text: &str| -> Result<Vec<String>, String> {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| RedirectUri::parse(l).map(RedirectUri::into_string))
                .collect()
        };
        let redirect_uris = uris(&self.redirect_uris)?;
        if redirect_uris.is_empty() {
            return Err(t.admin_err_no_redirect.to_owned());
        }
        Ok(ClientEdit {
            id: id.to_owned(),
            name: name.to_owned(),
            redirect_uris,
            post_logout_redirect_uris: uris(&self.post_logout_redirect_uris)?,
        })
    }
}

/// One site: its facts, the edit form (with `error` next to it), removal, its audit log.
#[component]
fn ClientView(
    client: Client,
    audit: Vec<AuditEntry>,
    csrf: String,
    draft: Draft,
    error: Option<String>,
) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let title = fill(t.admin_client_title, &[&client.name]);
    let action = format!("/admin/clients/{}", client.id);
    let invalid = error.is_some().to_string();
    view! {
        <AdminShell title=title.clone() section=Section::Clients>
            <p><a href="/admin/clients">{t.admin_back_to_clients}</a></p>
            <h1>{title}</h1>
            <dl class="facts">
                <dt>{t.admin_col_client_id}</dt><dd id="client-id"><code>{client.id.clone()}</code></dd>
                <dt>{t.admin_col_client_kind}</dt><dd>{kind(&client, t)}</dd>
                <dt>{t.admin_col_created_at}</dt><dd>{format_timestamp(client.created_at)}</dd>
            </dl>
            <form id="client-form" method="post" action=action.clone()>
                <CsrfField token=csrf.clone() />
                <label for="name">{t.admin_col_client_name}</label>
                <input id="name" name="name" required maxlength="100" value=draft.name />
                <label for="redirect_uris">{t.admin_redirect_uris}</label>
                <textarea id="redirect_uris" name="redirect_uris" rows="3" required
                    aria-invalid=invalid aria-describedby="client-error">{draft.redirect_uris}</textarea>
                <label for="post_logout_redirect_uris">{t.admin_post_logout_uris}</label>
                <textarea id="post_logout_redirect_uris" name="post_logout_redirect_uris" rows="2">
                    {draft.post_logout_redirect_uris}
                </textarea>
                {error.map(|e| view! { <p id="client-error" class="field-error" role="alert">{e}</p> })}
                <button id="save-client" type="submit">{t.admin_save}</button>
            </form>
            <form id="remove-client" class="inline" method="post" action=format!("{action}/remove")>
                <CsrfField token=csrf />
                <button type="submit" class="danger">{t.admin_remove_client}</button>
            </form>
            <h2>{t.admin_audit_title}</h2>
            <AuditTable id="client-audit" entries=audit label=|action: &str| action.replace('_', " ") />
        </AdminShell>
    }
}

/// The edit form, as posted.
#[derive(Debug, Deserialize)]
pub(super) struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    draft: Draft,
}

/// `POST /admin/clients/{id}`: saves the edit (audited) and goes back to the site's page; a
/// bad value re-draws the form with it and the reason (400).
pub(super) async fn edit(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    lang: Lang,
    session: WebSession,
    Path(id): Path<String>,
    Form(form): Form<EditForm>,
) -> AppResult<Response> {
    session.check_csrf(&form.csrf).await?;
    let store = &state.store.oidc;
    let client = store.client(&id).await?.ok_or(AppError::NotFound)?;
    match form.draft.check(&id, lang.text()) {
        Ok(edit) => {
            store.edit_client(&edit, Some(admin.id)).await?;
            tracing::info!(admin = admin.id, client = id, "client edited");
            Ok(Redirect::to(&format!("/admin/clients/{id}")).into_response())
        }
        Err(error) => {
            let audit = store.client_audit(&id, AUDIT_LIMIT).await?;
            let csrf = session.csrf_token().await?;
            let draft = form.draft;
            let error = Some(error);
            let page = render::document(lang, move || {
                view! { <ClientView client audit csrf draft error /> }
            })
            .await;
            Ok((StatusCode::BAD_REQUEST, page).into_response())
        }
    }
}

/// The removal form: only its CSRF token.
#[derive(Debug, Deserialize)]
pub(super) struct RemoveForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /admin/clients/{id}/remove`: removes the site, its codes and tokens (audited).
pub(super) async fn remove(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    session: WebSession,
    Path(id): Path<String>,
    Form(form): Form<RemoveForm>,
) -> AppResult<Response> {
    session.check_csrf(&form.csrf).await?;
    if !state.store.oidc.remove_client(&id, Some(admin.id)).await? {
        return Err(AppError::NotFound);
    }
    tracing::info!(admin = admin.id, client = id, "client removed");
    Ok(Redirect::to("/admin/clients").into_response())
}
