//! One error type for every handler: server faults are logged with their cause and shown as a
//! plain page that reveals nothing internal.

use axum::{
    extract::Request,
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use leptos::prelude::*;

use crate::ui::{self, Lang, PageOptions, Text};

/// What can go wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400, with a message safe to show.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 403.
    #[error("forbidden")]
    Forbidden,
    /// 404.
    #[error("not found")]
    NotFound,
    /// 503: WeChat (or another upstream) failed; the cause is logged, not shown.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// 500: a fault of ours; the cause is logged, not shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        AppError::Internal(e.into())
    }
}

/// Marks a response as an error page still to be drawn: [`render_error_pages`] draws it in the
/// language of the request, which `IntoResponse` can't see.
#[derive(Debug, Clone)]
struct ErrorPage {
    message: fn(&Text) -> &'static str,
    detail: Option<String>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message): (StatusCode, fn(&Text) -> &'static str) = match &self {
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, |t| t.error_bad_request),
            AppError::Forbidden => (StatusCode::FORBIDDEN, |t| t.error_forbidden),
            AppError::NotFound => (StatusCode::NOT_FOUND, |t| t.error_not_found),
            AppError::Unavailable(cause) => {
                tracing::warn!(%cause, "upstream unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, |t| t.error_unavailable)
            }
            AppError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, |t| t.error_internal)
            }
        };
        let detail = match self {
            AppError::BadRequest(detail) => Some(detail),
            _ => None,
        };
        let mut response = status.into_response();
        response
            .extensions_mut()
            .insert(ErrorPage { message, detail });
        response
    }
}

/// Middleware: draws the page of an [`AppError`] in the request's language.
pub async fn render_error_pages(lang: Lang, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let Some(error) = response.extensions().get::<ErrorPage>().cloned() else {
        return response;
    };
    let t = lang.text();
    let body = view! {
        <h1>{t.error_title}</h1>
        <p class="error">{(error.message)(t)}</p>
        {error.detail.map(|d| view! { <p class="muted">{d}</p> })}
        <p><a href="/">{t.back_home}</a></p>
    };
    (
        response.status(),
        ui::page(lang, t.error_title, PageOptions::default(), body),
    )
        .into_response()
}

/// The answer for any path no route knows.
pub async fn not_found() -> AppError {
    AppError::NotFound
}

/// Result of a handler.
pub type AppResult<T> = Result<T, AppError>;
