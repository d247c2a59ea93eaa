//! `/`: who is logged in (phone masked), with a log-out button; a login link otherwise.

use axum::Router;
use leptos::prelude::*;
use leptos_router::{
    components::{Route, Router as PageRouter, Routes},
    path,
};

use crate::{
    pages::{self, PageRequest, page},
    session::WebSession,
    state::AppState,
    ui::{CsrfField, Lang, Shell, fill, mask_phone},
    users::CurrentUser,
};

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    pages::serve(Router::new(), HomePages)
}

/// The pages of this feature.
#[component]
fn HomePages() -> impl IntoView {
    view! {
        <PageRouter>
            <Routes fallback=pages::not_found>
                <Route path=path!("/") view=HomePage />
            </Routes>
        </PageRouter>
    }
}

/// `GET /`.
#[component]
fn HomePage() -> impl IntoView {
    page(async |mut request: PageRequest| {
        let session: WebSession = request.extract().await?;
        let CurrentUser(user) = request.extract().await?;
        let csrf = match user {
            Some(_) => Some(session.csrf_token().await?),
            None => None,
        };
        Ok(view! { <Home phone=user.map(|u| u.phone) csrf /> }.into_any())
    })
}

/// The home page for the person logged in with `phone`, or for nobody.
#[component]
fn Home(phone: Option<String>, csrf: Option<String>) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let body = match (phone, csrf) {
        (Some(phone), Some(csrf)) => view! {
            <h1>{t.home_title}</h1>
            <p id="whoami" class="whoami">{fill(t.logged_in_as, &[&mask_phone(&phone)])}</p>
            <form id="logout" method="post" action="/logout">
                <CsrfField token=csrf.clone() />
                <button type="submit" class="secondary">{t.logout}</button>
            </form>
            <form id="logout-everywhere" method="post" action="/logout/everywhere">
                <CsrfField token=csrf />
                <button type="submit" class="link">{t.logout_everywhere}</button>
            </form>
        }
        .into_any(),
        _ => view! {
            <h1>{t.site_name}</h1>
            <p>{t.anonymous}</p>
            <p><a id="login-link" class="button" href="/login">{t.login_link}</a></p>
        }
        .into_any(),
    };
    view! { <Shell title=t.home_title>{body}</Shell> }
}
