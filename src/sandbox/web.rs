//! The sandbox's stand-in for WeChat's own browser during web authorization (网页授权):
//! `/sandbox/connect/oauth2/authorize` asks which simulated WeChat user this browser belongs
//! to (the real WeChat knows, and goes straight back without a page), then returns to the
//! site with a code, or without one when the person cancels. It checks what WeChat checks:
//! the appid, the redirect's domain (the console's 网页授权域名: the site's public host), the
//! scope.

use axum::{
    Form,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use leptos::prelude::*;
use serde::Deserialize;
use url::Url;

use crate::{
    error::AppResult,
    pages::{Detour, PageRequest, page},
    state::AppState,
    ui::{Lang, Shell, Text, render},
    util::{now, random_hex},
};

/// Codes live 5 minutes, as WeChat's do.
const CODE_TTL: i64 = 300;

/// The authorization request, as WeChat's browser receives it.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct AuthorizeQuery {
    #[serde(default)]
    appid: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    state: String,
}

/// Why WeChat would show its error page instead.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Appid,
    Redirect,
    Scope,
}

impl Refusal {
    fn message(self, t: &Text) -> &'static str {
        match self {
            Refusal::Appid => t.sandbox_oauth_bad_appid,
            Refusal::Redirect => t.sandbox_oauth_bad_redirect,
            Refusal::Scope => t.sandbox_oauth_bad_scope,
        }
    }
}

impl AuthorizeQuery {
    /// Where to go back to, if WeChat would accept the request.
    fn check(&self, state: &AppState) -> Result<Url, Refusal> {
        if self.appid != state.settings.wechat.appid {
            return Err(Refusal::Appid);
        }
        let back = Url::parse(&self.redirect_uri).map_err(|_| Refusal::Redirect)?;
        // WeChat compares the domain alone (the console takes no scheme and no port).
        if back.host_str().is_none() || back.host_str() != state.public_url.host_str() {
            return Err(Refusal::Redirect);
        }
        if !matches!(self.scope.as_str(), "snsapi_base" | "snsapi_userinfo") {
            return Err(Refusal::Scope);
        }
        Ok(back)
    }
}

/// `GET /sandbox/connect/oauth2/authorize`.
#[component]
pub(super) fn AuthorizePage() -> impl IntoView {
    page(async |mut request: PageRequest| {
        let state = request.state.clone();
        let Query(query) = request.extract::<Query<AuthorizeQuery>>().await?;
        let refused = query.check(&state).err();
        if let Some(refusal) = refused {
            let lang = request.lang;
            let page = render::document(lang, move || view! { <Refused refusal /> }).await;
            return Err(Detour::Answer(
                (StatusCode::BAD_REQUEST, page).into_response(),
            ));
        }
        let recent = state.store.sandbox.recent_openids(5).await?;
        Ok(view! { <Authorize query recent /> }.into_any())
    })
}

/// WeChat's error page for a request it refuses.
#[component]
fn Refused(refusal: Refusal) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    view! {
        <Shell title=t.sandbox_oauth_title>
            <h1>{t.sandbox_oauth_title}</h1>
            <p id="oauth-refused" class="error" role="alert">{refusal.message(t)}</p>
        </Shell>
    }
}

/// "Which simulated user is this browser's?", with the recent ones one tap away.
#[component]
fn Authorize(query: AuthorizeQuery, recent: Vec<String>) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let hidden = move || {
        let q = query.clone();
        view! {
            <input type="hidden" name="appid" value=q.appid />
            <input type="hidden" name="redirect_uri" value=q.redirect_uri />
            <input type="hidden" name="scope" value=q.scope />
            <input type="hidden" name="state" value=q.state />
        }
    };
    let picks = recent
        .into_iter()
        .map(|openid| {
            view! {
                <li>
                    <form method="post" action="/sandbox/connect/oauth2/authorize" class="inline">
                        {hidden()}
                        <input type="hidden" name="openid" value=openid.clone() />
                        <button type="submit" class="secondary">{openid}</button>
                    </form>
                </li>
            }
        })
        .collect_view();
    view! {
        <Shell title=t.sandbox_oauth_title>
            <div class="phone">
                <h1>{t.sandbox_oauth_title}</h1>
                <p class="hint">{t.sandbox_oauth_intro}</p>
                <h2>{t.sandbox_oauth_recent}</h2>
                <ul class="picks">{picks}</ul>
                <form id="oauth-form" method="post" action="/sandbox/connect/oauth2/authorize">
                    {hidden()}
                    <label for="openid">{t.sandbox_new_user}</label>
                    <input id="openid" name="openid" required maxlength="64"
                        value=format!("o_sandbox_{}", random_hex(4)) />
                    <label class="check">
                        <input id="snapshot" type="checkbox" name="snapshot" value="1" />
                        " " {t.sandbox_oauth_snapshot}
                    </label>
                    <button id="oauth-allow" type="submit">{t.sandbox_oauth_as}</button>
                </form>
                <form method="post" action="/sandbox/connect/oauth2/authorize" class="inline">
                    {hidden()}
                    <input type="hidden" name="deny" value="1" />
                    <button id="oauth-deny" type="submit" class="link">{t.sandbox_oauth_deny}</button>
                </form>
            </div>
        </Shell>
    }
}

/// The person's choice.
#[derive(Debug, Deserialize)]
pub(super) struct Choice {
    #[serde(flatten)]
    query: AuthorizeQuery,
    #[serde(default)]
    openid: String,
    snapshot: Option<String>,
    deny: Option<String>,
}

/// `POST /sandbox/connect/oauth2/authorize`: back to the site, with a code unless cancelled.
pub(super) async fn choose(
    State(state): State<AppState>,
    lang: Lang,
    Form(choice): Form<Choice>,
) -> AppResult<Response> {
    let t = lang.text();
    let mut back = match choice.query.check(&state) {
        Ok(back) => back,
        Err(refusal) => {
            let page = render::document(lang, move || view! { <Refused refusal /> }).await;
            return Ok((StatusCode::BAD_REQUEST, page).into_response());
        }
    };
    if choice.deny.is_none() {
        let openid = choice.openid.trim();
        if !super::valid_openid(openid) {
            return Ok((StatusCode::BAD_REQUEST, t.sandbox_bad_openid).into_response());
        }
        let code = random_hex(16);
        let sandbox = &state.store.sandbox;
        sandbox.meet(openid, now()).await?;
        sandbox
            .insert_oauth_code(&code, openid, choice.snapshot.is_some(), now() + CODE_TTL)
            .await?;
        back.query_pairs_mut().append_pair("code", &code);
    }
    back.query_pairs_mut()
        .append_pair("state", &choice.query.state);
    Ok(Redirect::to(back.as_str()).into_response())
}
