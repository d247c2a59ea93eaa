//! Serving Leptos pages: each feature lists its GET pages as `leptos_router` routes, and
//! [`serve`] registers them on its axum router through `leptos_axum`, with [`render_page`] as
//! the handler. A page loads its data in [`page`] and answers with its view or a [`Detour`].
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
    response::{IntoResponse, Response},
};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, ResponseOptions};
use leptos_router::location::RequestUrl;

use crate::{
    error::AppError,
    state::AppState,
    ui::{Lang, render::render},
};

/// `router` with the GET routes of `app` (a `<Router>` of `<Route>`s) served through
/// `leptos_axum`: one axum route per Leptos route, each rendering `app` for its request.
pub fn serve<V>(router: Router<AppState>, app: fn() -> V) -> Router<AppState>
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

/// Where a page sends the browser instead of showing itself.
pub enum Detour {
    /// `303 See Other` to a path of this site (or to WeChat, to authorize).
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
    options: ResponseOptions,
}

impl PageRequest {
    /// Sets a header of the page's response (a page-specific policy, say).
    pub fn header(&self, name: header::HeaderName, value: HeaderValue) {
        self.options.insert_header(name, value);
    }

    /// Sets the status of the page's response (a page showing the error of the form posted
    /// before it).
    pub fn status(&self, status: StatusCode) {
        self.options.set_status(status);
    }

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
        options: expect_context::<ResponseOptions>(),
    };
    let answered = expect_context::<Answered>();
    let options = expect_context::<ResponseOptions>();
    let load = load(request);
    Suspend::new(async move {
        match load.await {
            Ok(view) => Some(view),
            Err(Detour::Redirect(to)) => {
                options.set_status(StatusCode::SEE_OTHER);
                match HeaderValue::try_from(&to) {
                    Ok(location) => options.insert_header(header::LOCATION, location),
                    Err(_) => answered.set(
                        AppError::Internal(anyhow::anyhow!("redirect to a bad location {to:?}"))
                            .into_response(),
                    ),
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
