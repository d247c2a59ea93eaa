//! Bound users as a request sees them: the extractor for the logged-in user.

use axum::{extract::FromRequestParts, http::request::Parts};

pub use crate::store::User;
use crate::{
    error::AppError,
    session::{Ended, WebSession},
    state::AppState,
};

/// The logged-in user of this request, if any. A session whose user has since been disabled,
/// deleted or logged out everywhere (which unbinding their WeChat does too) ends here, at its
/// next request.
pub struct CurrentUser(pub Option<User>);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let session = WebSession::from_request_parts(parts, state).await?;
        let Some((id, epoch)) = session.user().await? else {
            return Ok(CurrentUser(None));
        };
        match state.store.users.by_id(id).await? {
            Some(user) if !user.disabled && user.session_epoch == epoch => {
                Ok(CurrentUser(Some(user)))
            }
            Some(user) if user.disabled && user.session_epoch == epoch => {
                session.end(Ended::Disabled).await?;
                Ok(CurrentUser(None))
            }
            _ => {
                session.log_out().await?;
                Ok(CurrentUser(None))
            }
        }
    }
}
