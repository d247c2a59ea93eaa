//! `/`: who is logged in (phone masked), with a log-out button, and a card suggesting to follow
//! the Official Account after a login that didn't follow it; a login link otherwise.

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
        let follow = match &user {
            Some(user) => suggest_following(&request.state, &session, user).await?,
            None => false,
        };
        Ok(view! { <Home phone=user.map(|u| u.phone) csrf follow /> }.into_any())
    })
}

/// Whether to show `user` the "follow us" card: after a web authorization found them not
/// following, until they follow (the callback of their follow says so).
async fn suggest_following(
    state: &AppState,
    session: &WebSession,
    user: &crate::store::User,
) -> crate::error::AppResult<bool> {
    if state.settings.phones.follow_qr_url.is_none() || !session.follow_hint().await? {
        return Ok(false);
    }
    let following = match &user.openid {
        Some(openid) => state.store.users.following(openid).await?,
        None => None,
    };
    if following == Some(true) {
        session.set_follow_hint(false).await?;
        return Ok(false);
    }
    Ok(true)
}

/// The home page for the person logged in with `phone`, or for nobody; `follow` shows the
/// card suggesting to follow the account.
#[component]
fn Home(phone: Option<String>, csrf: Option<String>, follow: bool) -> impl IntoView {
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
            {follow.then(|| view! {
                <aside id="follow-card" class="follow-card" aria-labelledby="follow-title">
                    <h2 id="follow-title">{t.follow_title}</h2>
                    <p>{t.follow_hint}</p>
                    <img src="/login/follow-qr.png" alt=t.follow_qr_alt width="160" height="160" />
                </aside>
            })}
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
