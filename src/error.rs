//! One error type for every handler: server faults are logged with their cause and shown as a
//! plain page that reveals nothing internal.

use axum::{
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use leptos::prelude::*;

use crate::ui::{self, Lang, PageOptions, Text, fill};

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
    /// 429: a limit was hit; the person may try again after this many seconds.
    #[error("too many requests")]
    TooMany {
        /// Seconds until a retry can succeed.
        retry_after: i64,
    },
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

impl From<crate::db::WriteError> for AppError {
    fn from(e: crate::db::WriteError) -> Self {
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
    /// Fills the message's `{}`: minutes until a retry.
    minutes: Option<i64>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message): (StatusCode, fn(&Text) -> &'static str) = match &self {
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, |t| t.error_bad_request),
            AppError::Forbidden => (StatusCode::FORBIDDEN, |t| t.error_forbidden),
            AppError::NotFound => (StatusCode::NOT_FOUND, |t| t.error_not_found),
            AppError::TooMany { .. } => (StatusCode::TOO_MANY_REQUESTS, |t| t.error_too_many),
            AppError::Unavailable(cause) => {
                tracing::warn!(%cause, "upstream unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, |t| t.error_unavailable)
            }
            AppError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, |t| t.error_internal)
            }
        };
        let (detail, minutes) = match self {
            AppError::BadRequest(detail) => (Some(detail), None),
            AppError::TooMany { retry_after } => (None, Some((retry_after + 59) / 60)),
            _ => (None, None),
        };
        let mut response = status.into_response();
        if let Some(minutes) = minutes
            && let Ok(value) = HeaderValue::from_str(&(minutes * 60).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response.extensions_mut().insert(ErrorPage {
            message,
            detail,
            minutes,
        });
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
        <p class="error">{fill((error.message)(t), &[&error.minutes.unwrap_or(1)])}</p>
        {error.detail.map(|d| view! { <p class="muted">{d}</p> })}
        <p><a href="/">{t.back_home}</a></p>
    };
    let mut page = (
        response.status(),
        ui::page(lang, t.error_title, PageOptions::default(), body),
    )
        .into_response();
    // Keep what the error set (Retry-After, cookies), but describe the new body.
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            page.headers_mut().insert(name.clone(), value.clone());
        }
    }
    page
}

/// The answer for any path no route knows.
pub async fn not_found() -> AppError {
    AppError::NotFound
}

/// Result of a handler.
pub type AppResult<T> = Result<T, AppError>;
