//! `/`: the account of the person logged in (phone masked, WeChat linked, when they logged in),
//! logging out, the admin area for administrators, and a card suggesting to follow the
//! Official Account after a login that didn't follow it; for nobody, why their session just
//! ended (if it did) and the way in.

use axum::Router;
use leptos::prelude::*;
use leptos_router::{
    components::{Route, Router as PageRouter, Routes},
    path,
};

use crate::{
    pages::{self, PageRequest, page},
    session::{Ended, WebSession},
    state::AppState,
    ui::{CsrfField, Lang, Shell, china_datetime, fill, mask_phone},
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
        let Some(user) = user else {
            let ended = session.take_ended().await?;
            return Ok(view! { <Anonymous ended /> }.into_any());
        };
        let csrf = session.csrf_token().await?;
        let follow = suggest_following(&request.state, &session, &user).await?;
        let logged_in_at = session.auth_time().await?;
        let account = Account {
            phone: user.phone.clone(),
            wechat: user.openid.is_some(),
            logged_in_at,
            // The guard asks the same of an administrator.
            admin: user.is_admin && user.openid.is_some(),
        };
        Ok(view! { <Home account csrf follow /> }.into_any())
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

/// What the home page says about the person logged in.
struct Account {
    /// E.164, shown masked.
    phone: String,
    /// A WeChat is linked.
    wechat: bool,
    /// When they logged in, if the session knows.
    logged_in_at: Option<i64>,
    /// They may open the admin area.
    admin: bool,
}

/// The home page of the person logged in: who they are, their WeChat, when they logged in,
/// logging out here or everywhere, the admin area for administrators; `follow` shows the
/// card suggesting to follow the account.
#[component]
fn Home(account: Account, csrf: String, follow: bool) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let wechat = if account.wechat {
        t.home_wechat_linked
    } else {
        t.home_wechat_not_linked
    };
    let logged_in = account.logged_in_at.map(|at| {
        view! { <dt>{t.home_logged_in_at}</dt><dd><time>{china_datetime(at)}</time></dd> }
    });
    let admin = account.admin.then(|| {
        view! { <p><a id="admin-link" class="button secondary-button" href="/admin">{t.home_admin_link}</a></p> }
    });
    view! {
        <Shell title=t.home_title brand=true>
            <h1>{t.home_you}</h1>
            <p id="whoami" class="whoami">{fill(t.logged_in_as, &[&mask_phone(&account.phone)])}</p>
            <dl class="facts account">
                <dt>{t.home_phone}</dt><dd>{mask_phone(&account.phone)}</dd>
                <dt>{t.home_wechat}</dt><dd id="wechat-linked">{wechat}</dd>
                {logged_in}
            </dl>
            {admin}
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
        </Shell>
    }
}

/// The home page for nobody: why the last session ended, if it just did, and the way in.
#[component]
fn Anonymous(ended: Option<Ended>) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let notice = ended.map(|why| {
        let text = match why {
            Ended::LoggedOut => t.notice_logged_out,
            Ended::LoggedOutEverywhere => t.notice_logged_out_everywhere,
            Ended::Disabled => t.notice_disabled,
        };
        let class = if why == Ended::Disabled {
            "notice refused"
        } else {
            "notice"
        };
        view! { <p id="notice" class=class role="status">{text}</p> }
    });
    let brand = crate::ui::brand::current();
    view! {
        <Shell title=t.home_title brand=true>
            {notice}
            <h1>{brand.name(t)}</h1>
            <p class="hint">{t.anonymous}</p>
            <p><a id="login-link" class="button" href="/login">{t.login_link}</a></p>
        </Shell>
    }
}
