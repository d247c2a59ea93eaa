//! Rendering components to HTML on the server: a whole document (with `leptos_meta`'s title),
//! or a fragment pushed over server-sent events. Nothing is serialised for hydration, and no
//! script is added: the page is exactly what its components draw.

use axum::{
    http::request::Parts,
    response::{Html, IntoResponse, Response},
};
use futures::StreamExt;
use leptos::prelude::*;
use leptos_axum::ResponseOptions;
use leptos_meta::ServerMetaContext;

use crate::ui::Lang;

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

pub(crate) async fn render<V>(
    lang: Lang,
    parts: Option<Parts>,
    view: impl FnOnce() -> V,
) -> Rendered
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
