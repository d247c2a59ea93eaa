//! Who may enter the admin area: logged-in users with `users.is_admin`, checked twice.
//!
//! [`require_admin`] guards the whole `/admin` router, and every handler also takes an
//! [`AdminUser`], so a route added without the layer, or a layer dropped by mistake, still
//! can't reach a handler. Both ask the database on every request (through
//! [`CurrentUser`]), so revoking the right, disabling or unbinding takes effect at the next
//! request.

use axum::{
    extract::{FromRequestParts, Request},
    http::{Method, Uri, request::Parts},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};

use crate::{
    error::AppError,
    state::AppState,
    users::{CurrentUser, User},
};

/// The logged-in administrator making the request. Extracting it refuses everyone else:
/// anonymous visitors are sent to log in (and brought back), other users get a 403 page.
pub struct AdminUser(pub User);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match user {
            Some(user) if user.is_admin => Ok(AdminUser(user)),
            Some(user) => {
                tracing::warn!(user_id = user.id, path = %parts.uri.path(), "admin area refused to a non-admin");
                Err(AppError::Forbidden.into_response())
            }
            None => Err(login_redirect(&parts.method, &parts.uri).into_response()),
        }
    }
}

/// Middleware of the `/admin` router: lets only administrators through.
pub async fn require_admin(_admin: AdminUser, request: Request, next: Next) -> Response {
    next.run(request).await
}

/// `303 /login?next=<where they were going>`.
///
/// A page comes back to itself, query and all. A form post can't be replayed after logging in,
/// so it comes back to the page the form is on (`/admin/users/7/disable` → `/admin/users/7`),
/// and the event stream to the dashboard.
pub fn login_redirect(method: &Method, uri: &Uri) -> Redirect {
    let path = uri.path();
    let target = if path == "/admin/events" {
        "/admin".to_owned()
    } else if method == Method::GET || method == Method::HEAD {
        uri.path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| path.to_owned())
    } else {
        match path.rsplit_once('/') {
            Some((parent, _)) if parent.starts_with("/admin") => parent.to_owned(),
            _ => "/admin".to_owned(),
        }
    };
    let next: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(method: Method, uri: &str) -> String {
        let response = login_redirect(&method, &uri.parse().unwrap()).into_response();
        response.headers()["location"].to_str().unwrap().to_owned()
    }

    #[test]
    fn pages_come_back_to_themselves_and_posts_to_their_page() {
        assert_eq!(
            location(Method::GET, "/admin/users?q=5678&admin=yes"),
            "/login?next=%2Fadmin%2Fusers%3Fq%3D5678%26admin%3Dyes"
        );
        assert_eq!(
            location(Method::POST, "/admin/users/7/disable"),
            "/login?next=%2Fadmin%2Fusers%2F7"
        );
        assert_eq!(
            location(Method::GET, "/admin/events"),
            "/login?next=%2Fadmin"
        );
    }
}
