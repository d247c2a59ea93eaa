//! Serving Leptos pages: each feature lists its GET pages as `leptos_router` routes, and
//! [`pages`] registers them on its axum router through `leptos_axum`, with [`render_page`] as
//! the handler. POST handlers and the error pages draw the same components with [`document`].
//!
//! Our own handler, not `leptos_axum`'s render functions: those append two inline
//! `<script>`s of hydration data to every page, which a non-hydrating site doesn't need and
//! its CSP (`script-src 'self'`) refuses. The page is rendered whole before its head goes out
//! (like `SsrMode::Async`), so a status, a redirect or a `<Title>` decided after a database
//! read still applies.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    extract::{FromRequestParts, Request, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Response},
};
use futures::StreamExt;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, ResponseOptions};
use leptos_meta::ServerMetaContext;
use leptos_router::location::RequestUrl;

use crate::{error::AppError, state::AppState, ui::Lang};

/// `router` with the GET routes of `app` (a `<Router>` of `<Route>`s) served through
/// `leptos_axum`: one axum route per Leptos route, each rendering `app` for its request.
pub fn pages<V>(router: Router<AppState>, app: fn() -> V) -> Router<AppState>
where
    V: IntoView + 'static,
{
    let routes = leptos_axum::generate_route_list(app);
    router.leptos_routes_with_handler(routes, move |state: State<AppState>, request: Request| {
        render_page(state, request, app)
    })
}

/// Renders `app` for a GET request: the page it routes to, or that page's [`Detour`].
pub async fn render_page<V>(
    State(state): State<AppState>,
    request: Request,
    app: fn() -> V,
) -> Response
where
    V: IntoView + 'static,
{
    let (parts, _body) = request.into_parts();
    let lang = Lang::of(&parts.headers);
    // The router only reads the path and query; the host part is a placeholder.
    let url = format!(
        "http://localhost{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let answered = Answered::default();
    let rendered = render(lang, Some(parts), {
        let answered = answered.clone();
        move || {
            provide_context(state);
            provide_context(RequestUrl::new(&url));
            provide_context(answered);
            leptos_router::components::provide_server_redirect(|to| {
                // `<Redirect>` is not used; a page redirects by answering `Detour::Redirect`.
                tracing::warn!(to, "unexpected leptos redirect");
            });
            app()
        }
    })
    .await;
    if let Some(response) = answered.take() {
        return response;
    }
    rendered.into_response()
}

/// Renders a whole document drawn by `view` (a component with its own [`super::Shell`]),
/// outside any route: what a POST handler answers with, and the error pages.
pub async fn document<V>(lang: Lang, view: impl FnOnce() -> V) -> Rendered
where
    V: IntoView + 'static,
{
    render(lang, None, view).await
}

/// Renders a fragment (pushed over server-sent events) in `lang`.
pub fn fragment<V>(lang: Lang, view: impl FnOnce() -> V) -> String
where
    V: IntoView + 'static,
{
    let owner = Owner::new_root(None);
    let html = owner.with(|| {
        provide_context(lang);
        view().to_html()
    });
    owner.unset_with_forced_cleanup();
    html
}

/// A rendered document and the status and headers its components set.
pub struct Rendered {
    html: String,
    options: ResponseOptions,
}

impl Rendered {
    /// The document's HTML.
    pub fn html(&self) -> &str {
        &self.html
    }
}

impl IntoResponse for Rendered {
    fn into_response(self) -> Response {
        let mut response = Html(self.html).into_response();
        let parts = self.options.0.read().map(|p| p.clone()).unwrap_or_default();
        if let Some(status) = parts.status {
            *response.status_mut() = status;
        }
        response.headers_mut().extend(parts.headers);
        response
    }
}

async fn render<V>(lang: Lang, parts: Option<Parts>, view: impl FnOnce() -> V) -> Rendered
where
    V: IntoView + 'static,
{
    // `leptos_meta` waits for a tick of Leptos' executor; ours is tokio's.
    static EXECUTOR: std::sync::Once = std::sync::Once::new();
    EXECUTOR.call_once(|| {
        let _ = any_spawner::Executor::init_tokio();
    });
    let options = ResponseOptions::default();
    let (meta, meta_out) = ServerMetaContext::new();
    // A root without a shared context: nothing is serialised for hydration.
    let owner = Owner::new_root(None);
    let stream = owner.with(|| {
        leptos_meta::provide_meta_context();
        provide_context(lang);
        provide_context(options.clone());
        provide_context(meta);
        if let Some(parts) = parts {
            provide_context(parts);
        }
        view().to_html_stream_in_order()
    });
    // Every `Suspend` resolves before the first byte: the page's status is known by then.
    let body: String = stream.collect().await;
    let html = meta_out
        .inject_meta_context(futures::stream::iter([body]))
        .await
        .collect::<String>()
        .await;
    owner.unset_with_forced_cleanup();
    Rendered { html, options }
}

/// Where a page sends the browser instead of showing itself.
pub enum Detour {
    /// `303 See Other` to a path of this site.
    Redirect(String),
    /// A whole other response: an error page, or an extractor's rejection.
    Answer(Response),
}

impl Detour {
    /// A redirect to `to`.
    pub fn to(to: impl Into<String>) -> Detour {
        Detour::Redirect(to.into())
    }
}

impl From<AppError> for Detour {
    fn from(e: AppError) -> Self {
        Detour::Answer(e.into_response())
    }
}

impl From<crate::store::StoreError> for Detour {
    fn from(e: crate::store::StoreError) -> Self {
        AppError::from(e).into()
    }
}

/// What a page's loader gives back.
pub type PageResult = Result<AnyView, Detour>;

/// The response a page chose instead of itself, handed from the page to [`render_page`].
#[derive(Clone, Default)]
struct Answered(Arc<Mutex<Option<Response>>>);

impl Answered {
    fn set(&self, response: Response) {
        *self.0.lock().expect("answer lock") = Some(response);
    }

    fn take(&self) -> Option<Response> {
        self.0.lock().expect("answer lock").take()
    }
}

/// The request a page is drawn for, with axum's extractors at hand.
pub struct PageRequest {
    /// The application's state.
    pub state: AppState,
    /// The request's language.
    pub lang: Lang,
    parts: Parts,
}

impl PageRequest {
    /// Runs an axum extractor on the request; its rejection becomes the page's answer.
    pub async fn extract<T>(&mut self) -> Result<T, Detour>
    where
        T: FromRequestParts<AppState>,
        T::Rejection: IntoResponse,
    {
        T::from_request_parts(&mut self.parts, &self.state)
            .await
            .map_err(|rejection| Detour::Answer(rejection.into_response()))
    }
}

/// The fallback of every page router: axum only routes the paths the routers list, so this is
/// reached only if the two disagree about a path; it answers 404, never an empty page.
pub fn not_found() -> impl IntoView {
    if let Some(answered) = use_context::<Answered>() {
        answered.set(AppError::NotFound.into_response());
    }
}

/// A routed page whose content comes from `load`, an async function of the request: its view,
/// or a redirect or error answered in its place.
pub fn page<F, Fut>(load: F) -> impl IntoView
where
    F: FnOnce(PageRequest) -> Fut + 'static,
    Fut: Future<Output = PageResult> + Send + 'static,
{
    let request = PageRequest {
        state: expect_context::<AppState>(),
        lang: expect_context::<Lang>(),
        parts: expect_context::<Parts>(),
    };
    let answered = expect_context::<Answered>();
    let options = expect_context::<ResponseOptions>();
    let load = load(request);
    Suspend::new(async move {
        match load.await {
            Ok(view) => Some(view),
            Err(Detour::Redirect(to)) => {
                options.set_status(StatusCode::SEE_OTHER);
                match HeaderValue::try_from(to) {
                    Ok(location) => options.insert_header(header::LOCATION, location),
                    Err(_) => answered.set(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
                }
                None
            }
            Err(Detour::Answer(response)) => {
                answered.set(response);
                None
            }
        }
    })
}
