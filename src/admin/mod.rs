//! The admin area: a dashboard with a live list of scans, the users table (search, filters,
//! keyset pagination, CSV export), one user's detail with login history and audit log, and the
//! actions on a user (disable, enable, unbind WeChat, grant or revoke admin), plus the command
//! line that makes the first administrator.
//!
//! Administrators are ordinary users with `users.is_admin`; they log in by scanning. Every page
//! is drawn on the server and driven by its URL's query, so a view can be bookmarked and all of
//! it works without JavaScript (which only adds the live list).

pub mod audit;
pub mod cli;
pub mod dashboard;
pub mod detail;
pub mod guard;
pub mod live;
pub mod users;

use axum::{
    Router, middleware,
    response::Html,
    routing::{get, post},
};
use leptos::prelude::*;
use serde::de::DeserializeOwned;

use crate::{
    error::{AppError, AppResult},
    state::AppState,
    ui::{self, Lang, PageOptions, fill},
};

/// Routes of this feature, all behind [`guard::require_admin`] (and each handler takes a
/// [`guard::AdminUser`] as well). The guard needs the state to reach the database.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard::page))
        .route("/admin/events", get(live::events))
        .route("/admin/users", get(users::list))
        .route("/admin/users.csv", get(users::export))
        .route("/admin/users/{id}", get(detail::page))
        .route("/admin/users/{id}/{action}", post(detail::act))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_admin,
        ))
}

/// Which section of the admin area a page belongs to (highlighted in the menu).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Dashboard,
    Users,
}

/// An admin page: the menu, then `body`, in the wide layout.
fn page(
    lang: Lang,
    title: &str,
    section: Section,
    script: bool,
    body: impl IntoView + 'static,
) -> Html<String> {
    let t = lang.text();
    let current = |s: Section| if s == section { "page" } else { "false" };
    let body = view! {
        <div class="admin">
            <nav class="admin-nav" aria-label=t.admin_title>
                <strong>{t.admin_title}</strong>
                <a href="/admin" aria-current=current(Section::Dashboard)>{t.admin_nav_dashboard}</a>
                <a href="/admin/users" aria-current=current(Section::Users)>{t.admin_nav_users}</a>
                <a href="/">{t.admin_nav_home}</a>
            </nav>
            {body}
            <p class="muted">{t.admin_times_note}</p>
        </div>
    };
    let options = PageOptions {
        noscript_refresh: None,
        script,
    };
    ui::page(lang, title, options, body)
}

/// Parses a URL query into `T`; anything it can't take is a 400 that says what was wrong.
fn parse_query<T: DeserializeOwned>(lang: Lang, raw: Option<&str>) -> AppResult<T> {
    serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| bad_query(lang, e))
}

/// A 400 about the URL's query.
fn bad_query(lang: Lang, problem: impl std::fmt::Display) -> AppError {
    AppError::BadRequest(fill(lang.text().admin_err_query, &[&problem]))
}

/// The offset of the times shown: the admin area speaks China Standard Time (UTC+8, no DST).
const UTC_OFFSET_SECONDS: i64 = 8 * 3600;

/// `2026-11-25 14:03` (UTC+8), or `never` for no time.
fn format_time(lang: Lang, at: Option<i64>) -> String {
    match at {
        Some(at) => format_timestamp(at),
        None => lang.text().admin_never.to_owned(),
    }
}

/// `2026-11-25 14:03:07` (UTC+8).
fn format_timestamp(at: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(at + UTC_OFFSET_SECONDS) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => at.to_string(),
    }
}

/// The day number (days since 1970-01-01 in UTC+8) of a time.
fn local_day(at: i64) -> i64 {
    (at + UTC_OFFSET_SECONDS).div_euclid(86_400)
}

/// `11-25` for a [`local_day`].
fn day_label(day: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(day * 86_400) {
        Ok(t) => format!("{:02}-{:02}", u8::from(t.month()), t.day()),
        Err(_) => day.to_string(),
    }
}

/// Escapes text for HTML or SVG markup built by hand.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Parses the `{id}` of a user's path.
fn user_id(lang: Lang, raw: &str) -> AppResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| bad_query(lang, format!("user id `{raw}` is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_china_standard_time() {
        // 2026-11-25 00:00:00 UTC is 08:00 in Beijing.
        assert_eq!(format_timestamp(1_795_564_800), "2026-11-25 08:00:00");
        assert_eq!(format_time(Lang::En, None), "never");
        assert_eq!(day_label(local_day(1_795_564_800 - 9 * 3600)), "11-24");
        assert_eq!(day_label(local_day(1_795_564_800 - 7 * 3600)), "11-25");
    }

    #[test]
    fn escape_covers_markup_characters() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
