//! One error type for every handler: server faults are logged with their cause (by the
//! middleware that draws error pages) and shown as a plain page that reveals nothing internal.

use axum::{
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use leptos::prelude::*;

use crate::ui::{Lang, Shell, Text, fill, render};

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
    #[error("upstream unavailable: {0:#}")]
    Unavailable(#[source] anyhow::Error),
    /// 500: a fault of ours; the cause is logged, not shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
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
struct PendingError {
    title: fn(&Text) -> &'static str,
    message: fn(&Text) -> &'static str,
    detail: Option<String>,
    /// Fills the message's `{}`s: when a retry can work, and in how many minutes.
    retry: Option<(String, i64)>,
    /// What went wrong on our side or upstream, for the log only.
    cause: Option<Cause>,
}

/// The cause of a 5xx, carried from the handler to the middleware that logs it.
#[derive(Debug, Clone)]
enum Cause {
    /// Ours: logged as an error.
    Internal(std::sync::Arc<anyhow::Error>),
    /// Upstream's: logged as a warning.
    Upstream(std::sync::Arc<anyhow::Error>),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        type Words = fn(&Text) -> &'static str;
        let (status, title, message): (StatusCode, Words, Words) = match &self {
            AppError::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                |t| t.error_title_bad_request,
                |t| t.error_bad_request,
            ),
            AppError::Forbidden => (
                StatusCode::FORBIDDEN,
                |t| t.error_title_forbidden,
                |t| t.error_forbidden,
            ),
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                |t| t.error_title_not_found,
                |t| t.error_not_found,
            ),
            AppError::TooMany { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                |t| t.error_title_too_many,
                |t| t.error_too_many,
            ),
            AppError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                |t| t.error_title_unavailable,
                |t| t.error_unavailable,
            ),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                |t| t.error_title,
                |t| t.error_internal,
            ),
        };
        let (detail, retry_after, cause) = match self {
            AppError::BadRequest(detail) => (Some(detail), None, None),
            AppError::TooMany { retry_after } => (None, Some(retry_after.max(1)), None),
            AppError::Unavailable(e) => (None, None, Some(Cause::Upstream(e.into()))),
            AppError::Internal(e) => (None, None, Some(Cause::Internal(e.into()))),
            AppError::Forbidden | AppError::NotFound => (None, None, None),
        };
        let mut response = status.into_response();
        if let Some(seconds) = retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        // The clock time is rounded up to the minute, so it is never too early.
        let retry = retry_after.map(|seconds| {
            let at = (crate::util::now() + seconds + 59) / 60 * 60;
            (crate::ui::china_clock(at), (seconds + 59) / 60)
        });
        response.extensions_mut().insert(PendingError {
            title,
            message,
            detail,
            retry,
            cause,
        });
        response
    }
}

/// Middleware: logs the cause of an [`AppError`] (inside the request's span, with its id) and
/// draws its page in the request's language.
pub async fn render_error_pages(lang: Lang, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let Some(error) = response.extensions().get::<PendingError>().cloned() else {
        return response;
    };
    match &error.cause {
        Some(Cause::Internal(cause)) => tracing::error!(error = ?cause, "internal error"),
        Some(Cause::Upstream(cause)) => {
            tracing::warn!(cause = %format!("{cause:#}"), "upstream unavailable")
        }
        None => {}
    }
    let t = lang.text();
    let message = match &error.retry {
        Some((clock, minutes)) => fill((error.message)(t), &[clock, minutes]),
        None => (error.message)(t).to_owned(),
    };
    let title = (error.title)(t);
    let detail = error.detail;
    let status = response.status();
    let mut page = (
        status,
        render::document(
            lang,
            move || view! { <ErrorPage status title message detail /> },
        )
        .await,
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

/// The page of an error: what went wrong, in words for people, and the ways on (home; for a
/// 429 of the login page, the other ways in on the login page are no help, but home is).
#[component]
fn ErrorPage(
    status: StatusCode,
    title: &'static str,
    message: String,
    detail: Option<String>,
) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let login = (status == StatusCode::FORBIDDEN)
        .then(|| view! { <a id="error-login" href="/login">{t.error_go_login}</a> });
    view! {
        <Shell title=title>
            <div class="error-page" data-status=status.as_u16().to_string()>
                <h1>{title}</h1>
                <p class="error-message">{message}</p>
                {detail.map(|d| view! { <p class="muted">{d}</p> })}
                <p class="error-ways"><a id="back-home" href="/">{t.back_home}</a> {login}</p>
            </div>
        </Shell>
    }
}

/// The answer for any path no route knows.
pub async fn not_found() -> AppError {
    AppError::NotFound
}

/// Result of a handler.
pub type AppResult<T> = Result<T, AppError>;
