//! Scan-to-login: the login page with its QR code, the live event stream that pushes each
//! change to the waiting browser, redeeming a login, logging out, and the WeChat callback; and
//! the other ways in: web authorization inside WeChat's browser ([`wechat`]), saving the QR
//! code on a phone, and (in `binding`) an SMS code.

pub mod callback;
pub mod scene;
pub mod wechat;

use std::time::Duration;

use axum::{
    Form, Router,
    extract::{DefaultBodyLimit, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use leptos::prelude::*;
use leptos_router::{
    components::{Route, Router as PageRouter, Routes},
    path,
};
use serde::Deserialize;

use crate::{
    client_info::{ClientInfo, Device},
    config::{Mode, PhoneLoginPolicy},
    error::{AppError, AppResult},
    live::{
        hub,
        sse::{self, Outbox},
    },
    oidc::authorize,
    pages::{self, Detour, PageRequest, page},
    session::{Ended, ReturnTo, WebSession},
    state::AppState,
    ui::{Lang, Shell, fill, qr::QrSvg, render},
    users::CurrentUser,
    util::now,
};
use scene::{Redeemed, Scene, Status};

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    pages::serve(Router::new(), LoginPages)
        .route("/login/complete", get(complete))
        .route("/login/wechat", get(wechat::finish))
        .route("/login/qr.png", get(qr_png))
        .route("/login/follow-qr.png", get(follow_qr_png))
        .route("/logout", post(logout))
        .route("/logout/everywhere", post(logout_everywhere))
        .route(
            "/wechat/callback",
            get(callback::check)
                .post(callback::receive)
                // WeChat's messages are small; anything bigger is not WeChat.
                .layer(DefaultBodyLimit::max(64 * 1024)),
        )
}

/// The event stream of this feature, apart: it stays open for minutes, so it is served
/// without the compression layer, whose encoder would sit in each waiting browser's body.
pub fn streams() -> Router<AppState> {
    Router::new().route("/login/events", get(events))
}

/// `?next=` and `?fresh=` of the login page.
#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
    /// Asks for a new QR code in place of a dead or refused one.
    #[serde(default)]
    fresh: Option<String>,
    /// Shows the QR code in WeChat's browser too, instead of web authorization.
    #[serde(default)]
    qr: Option<String>,
}

/// The pages of this feature.
#[component]
fn LoginPages() -> impl IntoView {
    view! {
        <PageRouter>
            <Routes fallback=pages::not_found>
                <Route path=path!("/login") view=LoginPage />
            </Routes>
        </PageRouter>
    }
}

/// `GET /login`.
#[component]
fn LoginPage() -> impl IntoView {
    page(async |mut request: PageRequest| {
        let (state, lang) = (request.state.clone(), request.lang);
        let session: WebSession = request.extract().await?;
        let client: ClientInfo = request.extract().await?;
        let CurrentUser(user) = request.extract().await?;
        let Query(query) = request.extract::<Query<LoginQuery>>().await?;
        // An unsafe `next` is dropped, not followed: the person still logs in, and lands on `/`.
        let allowed = &state.settings.forward.allowed_return_hosts;
        let next = query.next.as_deref().map(|n| ReturnTo::parse(n, allowed));
        if user.is_some() {
            if let Some(next) = next {
                session.set_next(next).await?;
            }
            return Err(Detour::to(session.take_next(allowed).await?.as_str()));
        }
        // A browser seen for the first time has no scene yet: no need to look. Its key is
        // stored only once a QR code is made for it, so a refused visitor (429, 503) costs no
        // session row.
        let (owner, current, new_browser) = match session.existing_browser_key().await? {
            Some(owner) => {
                let current = scene::current(&state, &owner).await?;
                (owner, current, false)
            }
            None => (WebSession::new_browser_key(), None, true),
        };
        // Without JavaScript this page refreshes itself; the refresh moves the person on.
        let status = current.as_ref().map(|s| s.status(now()));
        let device = Device::of(&client.user_agent);
        let authorize_in_wechat = device == Device::WechatBrowser
            && state.settings.phones.wechat_oauth
            && query.qr.is_none();
        let to = match (current, status) {
            (Some(_), Some(Status::Authorized)) => Err("/login/complete"),
            (Some(_), Some(Status::NeedsBind)) => Err("/bind"),
            // Inside WeChat, WeChat itself says who this is: no QR code to make.
            _ if authorize_in_wechat => {
                // Started before anything is kept: a refused visitor costs no session row.
                let to = wechat::start(&state, &owner, &client).await?;
                if new_browser {
                    session.keep_browser_key(&owner).await?;
                }
                if let Some(next) = next {
                    session.set_next(next).await?;
                }
                return Err(Detour::to(to));
            }
            (Some(s), Some(Status::Rejected))
                if query.fresh.is_none() && s.method == scene::LoginMethod::Scan =>
            {
                Ok(s)
            }
            (current, _) => {
                Ok(scene::reuse_or_create(&state, current, &owner, lang, &client).await?)
            }
        };
        if new_browser {
            session.keep_browser_key(&owner).await?;
        }
        if let Some(next) = next {
            session.set_next(next).await?;
        }
        let scene = to.map_err(Detour::to)?;
        let sandbox = state.settings.mode == Mode::Sandbox;
        // A site's OpenID Connect request waits behind this login: name the site.
        let site = match query.next.as_deref().and_then(authorize::client_of_next) {
            Some(client_id) => state.store.oidc.client(&client_id).await?.map(|c| c.name),
            None => None,
        };
        let phone_login = state.settings.phones.phone_login != PhoneLoginPolicy::Off;
        let page_url = state
            .public_url
            .join("login")
            .map(String::from)
            .unwrap_or_default();
        let ways = Ways {
            device,
            phone_login,
            page_url,
        };
        let support = state.brand.support_contact.clone();
        Ok(view! { <Login scene sandbox site ways support /> }.into_any())
    })
}

/// The ways in a login page offers besides its QR code, by the browser it is shown in.
struct Ways {
    device: Device,
    /// SMS login is on.
    phone_login: bool,
    /// This page's address, to open in WeChat.
    page_url: String,
}

/// Below the QR code: on a phone, how to scan a code on your own screen (save it, then
/// WeChat's album scanner; or open the page in WeChat) first; and the SMS code.
#[component]
fn OtherWays(ways: Ways) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let sms = ways.phone_login.then(|| {
        view! { <a id="sms-login" href="/login/sms">{t.sms_login_link}</a> }
    });
    match ways.device {
        Device::Desktop => view! {
            <div id="other-ways" class="other-ways">
                {sms.map(|link| view! { <p>{t.other_ways} {link}</p> })}
            </div>
        }
        .into_any(),
        Device::Phone | Device::WechatBrowser => view! {
            <section id="phone-ways" class="phone-ways" aria-labelledby="phone-ways-title">
                <h2 id="phone-ways-title">{t.phone_title}</h2>
                <p>{t.phone_save_steps}</p>
                <p>
                    <a id="save-qr" class="button" href="/login/qr.png" download="wechat-login-qr.png">
                        {t.save_qr}
                    </a>
                </p>
                // Already in WeChat (the QR page asked for there): nothing to open it in.
                {(ways.device == Device::Phone).then(|| view! {
                    <p>{t.open_in_wechat} " " <code id="page-url">{ways.page_url}</code></p>
                })}
                {sms.map(|link| view! { <p class="sms-way">{link}</p> })}
            </section>
        }
        .into_any(),
    }
}

/// `GET /login/qr.png`: this browser's live QR code as a PNG file, to save on a phone and pick
/// in WeChat's album scanner. 404 when it has no code waiting.
async fn qr_png(State(state): State<AppState>, session: WebSession) -> AppResult<Response> {
    let Some(owner) = session.existing_browser_key().await? else {
        return Err(AppError::NotFound);
    };
    let waiting = scene::current(&state, &owner)
        .await?
        .filter(|s| s.method == scene::LoginMethod::Scan && s.status(now()) == Status::Waiting)
        .ok_or(AppError::NotFound)?;
    png_answer(&waiting.qr_url, Some("wechat-login-qr.png"))
}

/// `GET /login/follow-qr.png`: the Official Account's own QR code (`WXLOGIN_FOLLOW_QR_URL`),
/// for the "follow us" card; an image, so WeChat's long-press recognises it.
async fn follow_qr_png(State(state): State<AppState>) -> AppResult<Response> {
    let url = state
        .settings
        .phones
        .follow_qr_url
        .as_deref()
        .ok_or(AppError::NotFound)?;
    png_answer(url, None)
}

/// A PNG of `url`'s QR code, as a download named `file` or as an image to show.
fn png_answer(url: &str, file: Option<&str>) -> AppResult<Response> {
    use axum::http::header;
    let png = crate::ui::qr::qr_png(url)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("QR code PNG not drawn")))?;
    let mut response = (
        [
            (header::CONTENT_TYPE, "image/png"),
            // A login code is this browser's alone, and dies in minutes.
            (header::CACHE_CONTROL, "no-store"),
        ],
        png,
    )
        .into_response();
    if let Some(file) = file {
        let disposition = format!("attachment; filename=\"{file}\"");
        if let Ok(value) = axum::http::HeaderValue::from_str(&disposition) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

/// The login page showing `scene`'s QR code and status, and the site the login is for.
#[component]
fn Login(
    scene: Scene,
    sandbox: bool,
    site: Option<String>,
    ways: Ways,
    support: Option<String>,
) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let status = scene.status(now());
    let site = site.map(
        |name| view! { <p id="login-site" class="info">{fill(t.login_for_site, &[&name])}</p> },
    );
    let hint = match crate::ui::brand::current().account_name.clone() {
        Some(account) => fill(t.login_hint_account, &[&account]),
        None => t.login_hint.to_owned(),
    };
    view! {
        <Shell title=t.login_title noscript_refresh=3 script=true brand=true>
            <h1>{t.login_title}</h1>
            {site}
            <p class="hint">{hint}</p>
            <div id="qr-block"><QrBlock scene sandbox status support /></div>
            <div id="status" class="status" aria-live="polite"><StatusLine status /></div>
            <noscript><p class="muted">{t.noscript_hint}</p></noscript>
            <OtherWays ways />
        </Shell>
    }
}

// The countdown turns urgent in the code's last this many seconds.
const URGENT_SECONDS: i64 = 30;

/// The QR code in the state `status` says, pushed again as `event: qr` when it changes: live
/// (with its countdown and, in sandbox mode, the link to the simulated phone); scanned (dimmed,
/// a check mark over it); dead (dimmed, the state and "refresh" over it); or, for a disabled
/// account, a panel in its place saying whom to contact. Only a live code has a countdown and
/// a sandbox link: the others point at a ticket that no longer leads anywhere.
#[component]
fn QrBlock(scene: Scene, sandbox: bool, status: Status, support: Option<String>) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let code = || view! { <QrSvg url=scene.qr_url.clone() /> };
    match status {
        Status::Waiting => {
            let remaining = (scene.expires_at - now()).max(0);
            let sandbox = sandbox.then(|| {
                view! {
                    <p class="sandbox">
                        <a id="sandbox-link" href=scene.qr_url.clone() target="_blank" rel="noopener">
                            {t.sandbox_link}
                        </a>
                        <br />
                        <small>{t.sandbox_note}</small>
                    </p>
                }
            });
            let urgent = if remaining <= URGENT_SECONDS { "countdown urgent" } else { "countdown" };
            view! {
                <div id="qr" class="qr" data-state="live" role="img" aria-label=t.qr_alt>{code()}</div>
                <p class=urgent>
                    {t.expires_in} " "
                    <time id="countdown" data-remaining=remaining.to_string()
                        data-urgent=URGENT_SECONDS.to_string()>
                        {format!("{}:{:02}", remaining / 60, remaining % 60)}
                    </time>
                </p>
                {sandbox}
            }
            .into_any()
        }
        Status::Authorized | Status::NeedsBind => view! {
            <div id="qr" class="qr dimmed" data-state="scanned">
                {code()}
                <p class="qr-overlay scanned"><span class="check" aria-hidden="true">"✓"</span>{t.qr_scanned}</p>
            </div>
        }
        .into_any(),
        Status::Expired => view! {
            <div id="qr" class="qr dimmed" data-state="expired">
                {code()}
                <a id="qr-refresh" class="qr-overlay" href="/login?fresh=1">
                    <strong>{t.qr_dead}</strong>
                    <span>{t.qr_tap_to_refresh}</span>
                </a>
            </div>
        }
        .into_any(),
        Status::Rejected => view! {
            <div id="qr" class="disabled-panel" data-state="disabled" role="alert">
                <p><strong>{t.status_rejected}</strong></p>
                <p>{match support {
                    Some(contact) => fill(t.disabled_contact, &[&contact]),
                    None => t.disabled_contact_admin.to_owned(),
                }}</p>
                <p><a id="qr-refresh" href="/login?fresh=1">{t.login_with_other_wechat}</a></p>
            </div>
        }
        .into_any(),
    }
}

/// The status line of a scene, right under the QR code; pushed as `event: status` when it
/// changes. The ways on are on the code itself; without JavaScript a scanned page moves on by
/// its refresh, or by the link here.
#[component]
fn StatusLine(status: Status) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let (class, text, link) = match status {
        Status::Waiting => ("waiting", t.status_waiting, None),
        Status::Authorized => (
            "ok",
            t.status_authorized,
            Some(("/login/complete", t.continue_link)),
        ),
        Status::NeedsBind => ("ok", t.status_needs_bind, Some(("/bind", t.continue_link))),
        Status::Rejected => ("refused", t.status_rejected, None),
        Status::Expired => ("expired", t.status_expired, None),
    };
    view! {
        <p class=format!("status-{class}")>
            {text}
            {link.map(|(href, label)| view! { " " <a href=href>{label}</a> })}
        </p>
    }
}

// A page left open gets this many fresh QR codes pushed per connection, then goes idle: an
// abandoned tab must not spend the 100,000-a-day creation quota forever.
const MAX_AUTO_REFRESH: u32 = 6;

/// `GET /login/events`: server-sent events for this browser's login.
///
/// - `event: status`, data: HTML of the status line;
/// - `event: qr`, data: HTML of the QR block: a fresh code (the old one expired), the scanned
///   code, the dead code, or the disabled account's panel;
/// - `event: redirect`, data: the URL to go to (after the scanned code and its status);
/// - `event: idle`: no more fresh codes on this connection; the dead code offers a refresh.
///
/// On connect it sends the current state, so a reconnect (also after a restart) catches up.
async fn events(
    State(state): State<AppState>,
    session: WebSession,
    lang: Lang,
    client: ClientInfo,
) -> AppResult<Response> {
    let Some(owner) = session.existing_browser_key().await? else {
        // 204 tells EventSource not to reconnect: this browser has no login to watch.
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    if scene::current(&state, &owner).await?.is_none() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    state
        .metrics
        .sse_open
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let watch = Watch {
        subscription: state.live.watch_browser(&owner),
        state,
        owner,
        lang,
        client,
        last: None,
        refreshes: 0,
        outbox: Outbox::default(),
    };
    Ok(sse::respond(watch))
}

/// One browser's event stream.
struct Watch {
    state: AppState,
    owner: String,
    lang: Lang,
    client: ClientInfo,
    subscription: hub::Subscription,
    /// The scene and status last sent.
    last: Option<(String, Status)>,
    refreshes: u32,
    outbox: Outbox,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.state
            .metrics
            .sse_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl sse::Source for Watch {
    const NAME: &'static str = "login";

    fn outbox(&mut self) -> &mut Outbox {
        &mut self.outbox
    }

    /// Sends what changed, or waits for a change.
    async fn step(&mut self) -> AppResult<()> {
        // The database and WeChat calls are boxed: an idle stream's future is sized for its
        // largest await, and 10,000 waiting browsers would each carry room for an HTTP request.
        let Some(scene) = Box::pin(scene::current(&self.state, &self.owner)).await? else {
            self.outbox.end();
            return Ok(());
        };
        let status = scene.status(now());
        let key = (scene.scene.clone(), status);
        if self.last.as_ref() != Some(&key) {
            self.last = Some(key);
            let sandbox = self.state.settings.mode == Mode::Sandbox;
            match status {
                Status::Waiting => self.push("status", status_html(status, self.lang)),
                Status::Rejected => {
                    self.push("qr", self.block(scene, sandbox, status));
                    self.push("status", status_html(status, self.lang));
                }
                // The check mark and "logging in" first, where the eye is; the page follows
                // the redirect a moment later.
                Status::Authorized | Status::NeedsBind => {
                    self.push("qr", self.block(scene, sandbox, status));
                    self.push("status", status_html(status, self.lang));
                    let to = if status == Status::Authorized {
                        "/login/complete"
                    } else {
                        "/bind"
                    };
                    self.push_end("redirect", to.into());
                }
                Status::Expired if self.refreshes < MAX_AUTO_REFRESH => {
                    self.refreshes += 1;
                    match Box::pin(scene::create(
                        &self.state,
                        &self.owner,
                        self.lang,
                        &self.client,
                    ))
                    .await
                    {
                        // The next step sees the fresh scene and sends its status.
                        Ok(fresh) => {
                            let html = self.block(fresh, sandbox, Status::Waiting);
                            self.push("qr", html);
                        }
                        // Capped or WeChat unavailable: the dead code says "refresh" instead.
                        Err(AppError::TooMany { .. } | AppError::Unavailable(_)) => {
                            self.push("qr", self.block(scene, sandbox, status));
                            self.push_end("idle", status_html(status, self.lang))
                        }
                        Err(e) => return Err(e),
                    }
                }
                Status::Expired => {
                    self.push("qr", self.block(scene, sandbox, status));
                    self.push_end("idle", status_html(status, self.lang));
                }
            }
            return Ok(());
        }
        // Nothing new: sleep until a scan, the QR code's death, or shutdown.
        let deadline = match status {
            Status::Waiting | Status::Rejected => scene.expires_at,
            _ => now() + 3600,
        };
        let wait = Duration::from_secs((deadline - now()).max(0) as u64 + 1);
        let sub = &mut self.subscription;
        tokio::select! {
            changed = sub.changes.changed() => { let _ = changed; }
            _ = tokio::time::sleep(wait) => {}
            _ = sub.shutdown.wait_for(|down| *down) => {
                self.outbox.restart();
            }
        }
        Ok(())
    }
}

/// The status line's HTML, for a push.
fn status_html(status: Status, lang: Lang) -> String {
    render::fragment(lang, move || view! { <StatusLine status /> })
}

impl Watch {
    /// The HTML of `scene`'s QR block in `status`, for a push.
    fn block(&self, scene: Scene, sandbox: bool, status: Status) -> String {
        let support = self.state.brand.support_contact.clone();
        render::fragment(self.lang, move || {
            view! { <QrBlock scene sandbox status support /> }
        })
    }

    fn push(&mut self, event: &str, data: String) {
        self.outbox.push(event, data);
    }

    fn push_end(&mut self, event: &str, data: String) {
        self.outbox.push(event, data);
        self.outbox.end();
    }
}

/// `GET /login/complete`: redeems this browser's scan (once) and logs the person in.
async fn complete(State(state): State<AppState>, session: WebSession) -> AppResult<Response> {
    let Some(owner) = session.existing_browser_key().await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    match scene::consume(&state, &owner).await? {
        Some(Redeemed {
            user_id,
            epoch,
            method,
        }) => {
            let next = session
                .take_next(&state.settings.forward.allowed_return_hosts)
                .await?;
            session.log_in(user_id, epoch, method).await?;
            tracing::info!(user_id, method = method.as_str(), "logged in");
            Ok(Redirect::to(next.as_str()).into_response())
        }
        None => Ok(Redirect::to("/login").into_response()),
    }
}

/// The CSRF field of a plain form.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    pub csrf: String,
}

/// `POST /logout`.
async fn logout(session: WebSession, Form(form): Form<CsrfForm>) -> AppResult<Redirect> {
    session.check_csrf(&form.csrf).await?;
    session.end(Ended::LoggedOut).await?;
    Ok(Redirect::to("/"))
}

/// `POST /logout/everywhere`: ends every session of this person, on every device.
async fn logout_everywhere(
    State(state): State<AppState>,
    session: WebSession,
    CurrentUser(user): CurrentUser,
    Form(form): Form<CsrfForm>,
) -> AppResult<Redirect> {
    session.check_csrf(&form.csrf).await?;
    if let Some(user) = user {
        state.store.users.log_out_everywhere(user.id).await?;
        tracing::info!(user_id = user.id, "logged out everywhere");
    }
    session.end(Ended::LoggedOutEverywhere).await?;
    Ok(Redirect::to("/"))
}
