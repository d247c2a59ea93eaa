//! `/`: who is logged in (phone masked), with a log-out button; a login link otherwise.

use axum::{Router, response::Html, routing::get};
use leptos::prelude::*;

use crate::{
    error::AppResult,
    session::WebSession,
    state::AppState,
    ui::{self, Lang, PageOptions, csrf_field, fill, mask_phone},
    users::CurrentUser,
};

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    Router::new().route("/", get(home))
}

async fn home(
    lang: Lang,
    session: WebSession,
    CurrentUser(user): CurrentUser,
) -> AppResult<Html<String>> {
    let t = lang.text();
    let body = match user {
        Some(user) => {
            let csrf = session.csrf_token().await?;
            view! {
                <h1>{t.home_title}</h1>
                <p id="whoami" class="whoami">{fill(t.logged_in_as, &[&mask_phone(&user.phone)])}</p>
                <form id="logout" method="post" action="/logout">
                    {csrf_field(csrf.clone())}
                    <button type="submit" class="secondary">{t.logout}</button>
                </form>
                <form id="logout-everywhere" method="post" action="/logout/everywhere">
                    {csrf_field(csrf)}
                    <button type="submit" class="link">{t.logout_everywhere}</button>
                </form>
            }
            .into_any()
        }
        None => view! {
            <h1>{t.site_name}</h1>
            <p>{t.anonymous}</p>
            <p><a id="login-link" class="button" href="/login">{t.login_link}</a></p>
        }
        .into_any(),
    };
    Ok(ui::page(lang, t.home_title, PageOptions::default(), body))
}
