//! Bound users: the record, its queries, and the extractor for the logged-in user.

use axum::{extract::FromRequestParts, http::request::Parts};
use sqlx::{FromRow, SqlitePool};

use crate::{error::AppError, session::WebSession, state::AppState};

/// A person who has bound a phone number.
#[derive(Debug, Clone, FromRow)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// E.164.
    pub phone: String,
    /// Their WeChat, unless unbound.
    pub openid: Option<String>,
    /// Open Platform id, when WeChat gives one.
    pub unionid: Option<String>,
    /// May use the admin area.
    pub is_admin: bool,
    /// Refused at login.
    pub disabled: bool,
    /// When the row was made.
    pub created_at: i64,
    /// When the WeChat was bound.
    pub bound_at: Option<i64>,
    /// Last completed login.
    pub last_login_at: Option<i64>,
    /// Sessions logged in at an older epoch are over ("log out everywhere").
    pub session_epoch: i64,
}

const COLUMNS: &str = "id, phone, openid, unionid, is_admin, disabled, created_at, bound_at, \
                       last_login_at, session_epoch";

/// The user with this id.
pub async fn by_id(db: &SqlitePool, id: i64) -> sqlx::Result<Option<User>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = ?"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The user bound to this WeChat.
pub async fn by_openid(
    conn: &mut sqlx::SqliteConnection,
    openid: &str,
) -> sqlx::Result<Option<User>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE openid = ?"))
        .bind(openid)
        .fetch_optional(conn)
        .await
}

/// The logged-in user of this request, if any. A session whose user has since been disabled,
/// unbound, deleted or logged out everywhere ends here, at its next request.
pub struct CurrentUser(pub Option<User>);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let session = WebSession::from_request_parts(parts, state).await?;
        let Some((id, epoch)) = session.user().await? else {
            return Ok(CurrentUser(None));
        };
        match by_id(&state.db, id).await? {
            Some(user)
                if !user.disabled && user.openid.is_some() && user.session_epoch == epoch =>
            {
                Ok(CurrentUser(Some(user)))
            }
            _ => {
                session.log_out().await?;
                Ok(CurrentUser(None))
            }
        }
    }
}

/// Ends every session of a user at its next request.
pub async fn log_out_everywhere(db: &SqlitePool, id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ?")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}
