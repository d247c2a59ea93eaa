//! Reading the admin pages' URLs: a query into its type, a user's id from the path; what
//! can't be read is a 400 that says what was wrong.

use serde::de::DeserializeOwned;

use crate::{
    error::{AppError, AppResult},
    ui::{Lang, fill},
};

/// Parses a URL query into `T`; anything it can't take is a 400 that says what was wrong.
pub(super) fn parse_query<T: DeserializeOwned>(lang: Lang, raw: Option<&str>) -> AppResult<T> {
    serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| bad_query(lang, e))
}

/// A 400 about the URL's query.
pub(super) fn bad_query(lang: Lang, problem: impl std::fmt::Display) -> AppError {
    AppError::BadRequest(fill(lang.text().admin_err_query, &[&problem]))
}

/// Parses the `{id}` of a user's path.
pub(super) fn user_id(lang: Lang, raw: &str) -> AppResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| bad_query(lang, format!("user id `{raw}` is not a number")))
}
