//! `GET /admin/users`: the users table (its CSV twin, same query, is `export.rs`).
//!
//! Everything is in the query: `q` (any part of the phone, or of the openid or unionid; found
//! through a trigram index from 3 characters on),
//! `disabled`, `following`, `admin` (`yes`, `no`, `any`), `sort` (`bound` or `last_login`,
//! newest first) and `after` (the keyset cursor `<sort value>:<id>` of the last row of the
//! previous page, `-:<id>` once in the rows without a value). Pages never use OFFSET: each is
//! one index range from the cursor on, so page 2,000 costs what page 1 does.

use std::fmt;

use axum::extract::RawQuery;
use leptos::prelude::*;
use serde::Deserialize;

pub use crate::store::{Cursor, ListQuery, Sort, Tri, UserRow};
use crate::{
    admin::{
        guard::AdminUser,
        layout::{AdminShell, Section},
        query::{bad_query, parse_query},
        times::format_time,
    },
    error::AppResult,
    pages::{PageRequest, page},
    ui::{Lang, Text, mask_phone},
};

/// Rows per page.
pub const PAGE_SIZE: usize = 50;
/// The longest search accepted.
const MAX_SEARCH_CHARS: usize = 100;

impl Tri {
    fn parse(lang: Lang, name: &str, raw: Option<&str>) -> AppResult<Tri> {
        match raw.map(str::trim) {
            None | Some("" | "any") => Ok(Tri::Any),
            Some("yes") => Ok(Tri::Yes),
            Some("no") => Ok(Tri::No),
            Some(other) => Err(bad_query(
                lang,
                format!("{name}={other} (use yes, no or any)"),
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Tri::Any => "any",
            Tri::Yes => "yes",
            Tri::No => "no",
        }
    }
}

impl Sort {
    fn parse(lang: Lang, raw: Option<&str>) -> AppResult<Sort> {
        match raw.map(str::trim) {
            None | Some("" | "bound") => Ok(Sort::Bound),
            Some("last_login") => Ok(Sort::LastLogin),
            Some(other) => Err(bad_query(
                lang,
                format!("sort={other} (use bound or last_login)"),
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Sort::Bound => "bound",
            Sort::LastLogin => "last_login",
        }
    }
}

impl Cursor {
    fn parse(lang: Lang, raw: &str) -> AppResult<Cursor> {
        let parsed = raw.split_once(':').and_then(|(value, id)| {
            let value = match value {
                "-" => None,
                v => Some(v.parse::<i64>().ok()?),
            };
            Some(Cursor {
                value,
                id: id.parse::<i64>().ok()?,
            })
        });
        parsed.ok_or_else(|| {
            bad_query(
                lang,
                format!("after={raw} (expected <time>:<id>, e.g. 1764000000:42)"),
            )
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value {
            Some(v) => write!(f, "{v}:{}", self.id),
            None => write!(f, "-:{}", self.id),
        }
    }
}

/// The query as it comes, every field a string, so errors can name the parameter.
#[derive(Debug, Default, Deserialize)]
struct RawListQuery {
    q: Option<String>,
    disabled: Option<String>,
    following: Option<String>,
    admin: Option<String>,
    sort: Option<String>,
    after: Option<String>,
}

impl ListQuery {
    /// Parses the URL query; a bad value is a 400 naming it.
    pub fn parse(lang: Lang, raw: Option<&str>) -> AppResult<ListQuery> {
        let raw: RawListQuery = parse_query(lang, raw)?;
        let q = raw.q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
        if let Some(q) = &q
            && q.chars().count() > MAX_SEARCH_CHARS
        {
            return Err(bad_query(
                lang,
                format!("q is longer than {MAX_SEARCH_CHARS} characters"),
            ));
        }
        // NUL and other control characters match nothing and upset the search index.
        if let Some(q) = &q
            && q.chars().any(char::is_control)
        {
            return Err(bad_query(
                lang,
                "q must not contain control characters".to_owned(),
            ));
        }
        Ok(ListQuery {
            q,
            disabled: Tri::parse(lang, "disabled", raw.disabled.as_deref())?,
            following: Tri::parse(lang, "following", raw.following.as_deref())?,
            admin: Tri::parse(lang, "admin", raw.admin.as_deref())?,
            sort: Sort::parse(lang, raw.sort.as_deref())?,
            after: raw
                .after
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| Cursor::parse(lang, a))
                .transpose()?,
        })
    }

    /// The query string (without `?`) of this view starting after `after`; defaults left out.
    pub fn query_string(&self, after: Option<Cursor>) -> String {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        if let Some(q) = &self.q {
            pairs.append_pair("q", q);
        }
        for (name, value) in [
            ("disabled", self.disabled),
            ("following", self.following),
            ("admin", self.admin),
        ] {
            if value != Tri::Any {
                pairs.append_pair(name, value.as_str());
            }
        }
        if self.sort != Sort::default() {
            pairs.append_pair("sort", self.sort.as_str());
        }
        if let Some(after) = after {
            pairs.append_pair("after", &after.to_string());
        }
        pairs.finish()
    }
}

/// `GET /admin/users`.
#[component]
pub(super) fn UsersPage() -> impl IntoView {
    page(async |mut request: PageRequest| {
        let AdminUser(_admin) = request.extract().await?;
        let RawQuery(raw) = request.extract().await?;
        let query = ListQuery::parse(request.lang, raw.as_deref())?;
        let (rows, next) = request
            .state
            .store
            .admin
            .users_page(&query, PAGE_SIZE)
            .await?;
        Ok(view! { <Users query rows next /> }.into_any())
    })
}

/// One page of the users table for `query`, `next` being where the following page starts.
#[component]
fn Users(query: ListQuery, rows: Vec<UserRow>, next: Option<Cursor>) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let export = format!("/admin/users.csv?{}", query.query_string(None));
    let first_page = query
        .after
        .is_some()
        .then(|| format!("/admin/users?{}", query.query_string(None)));
    let next_page = next.map(|cursor| format!("/admin/users?{}", query.query_string(Some(cursor))));
    let table = if rows.is_empty() {
        view! { <p id="no-users" class="muted">{t.admin_no_users}</p> }.into_any()
    } else {
        let body = rows
            .into_iter()
            .map(|row| view! { <UserLine row /> })
            .collect_view();
        view! {
            <div class="table-scroll" tabindex="0" role="region" aria-label=t.admin_nav_users>
                <table id="users">
                    <thead>
                        <tr>
                            <th>{t.admin_col_id}</th>
                            <th>{t.admin_col_phone}</th>
                            <th>{t.admin_col_openid}</th>
                            <th>{t.admin_col_unionid}</th>
                            <th>{t.admin_col_following}</th>
                            <th>{t.admin_col_admin}</th>
                            <th>{t.admin_col_disabled}</th>
                            <th>{t.admin_col_bound_at}</th>
                            <th>{t.admin_col_last_login}</th>
                        </tr>
                    </thead>
                    <tbody>{body}</tbody>
                </table>
            </div>
        }
        .into_any()
    };
    view! {
        <AdminShell title=t.admin_nav_users section=Section::Users>
            <h1>{t.admin_nav_users}</h1>
            <UserFilters query />
            <p class="toolbar">
                <a id="export-csv" href=export>{t.admin_export_csv}</a>
            </p>
            {table}
            <p class="pager">
                {first_page.map(|href| view! { <a id="first-page" href=href>{t.admin_first_page}</a> " " })}
                {next_page.map(|href| view! { <a id="next-page" rel="next" href=href>{t.admin_next_page}</a> })}
            </p>
        </AdminShell>
    }
}

/// The search and filter form: a plain GET form, so the result is a bookmarkable URL.
#[component]
fn UserFilters(query: ListQuery) -> impl IntoView {
    let t: &'static Text = expect_context::<Lang>().text();
    let tri = move |name: &'static str, label: &'static str, value: Tri| {
        let options = [
            (Tri::Any, t.admin_any),
            (Tri::Yes, t.admin_yes),
            (Tri::No, t.admin_no),
        ]
        .into_iter()
        .map(|(v, text)| view! { <option value=v.as_str() selected=v == value>{text}</option> })
        .collect_view();
        view! {
            <div>
                <label for=name>{label}</label>
                <select id=name name=name>{options}</select>
            </div>
        }
    };
    let sorts = [
        (Sort::Bound, t.admin_sort_bound),
        (Sort::LastLogin, t.admin_sort_last_login),
    ]
    .into_iter()
    .map(|(v, text)| view! { <option value=v.as_str() selected=v == query.sort>{text}</option> })
    .collect_view();
    view! {
        <form id="user-filters" class="filters" method="get" action="/admin/users">
            <div class="search">
                <label for="q">{t.admin_search_label}</label>
                <input id="q" name="q" type="search" value=query.q.clone().unwrap_or_default()
                    placeholder=t.admin_search_placeholder maxlength=MAX_SEARCH_CHARS.to_string() />
            </div>
            {tri("disabled", t.admin_col_disabled, query.disabled)}
            {tri("following", t.admin_col_following, query.following)}
            {tri("admin", t.admin_col_admin, query.admin)}
            <div>
                <label for="sort">{t.admin_sort_label}</label>
                <select id="sort" name="sort">{sorts}</select>
            </div>
            <div class="filter-buttons">
                <button id="apply-filters" type="submit">{t.admin_apply}</button>
                <a href="/admin/users">{t.admin_clear}</a>
            </div>
        </form>
    }
}

fn yes_no(value: bool, t: &Text) -> &'static str {
    if value { t.admin_yes } else { t.admin_no }
}

/// One row of the users table.
#[component]
fn UserLine(row: UserRow) -> impl IntoView {
    let lang = expect_context::<Lang>();
    let t = lang.text();
    let href = format!("/admin/users/{}", row.id);
    let class = if row.disabled { "disabled" } else { "" };
    view! {
        <tr data-user-id=row.id.to_string() class=class>
            <td><a href=href.clone()>{row.id}</a></td>
            <td><a class="phone" href=href>{mask_phone(&row.phone)}</a></td>
            <td><code>{row.openid.unwrap_or_default()}</code></td>
            <td><code>{row.unionid.unwrap_or_default()}</code></td>
            <td>{yes_no(row.following, t)}</td>
            <td>{yes_no(row.is_admin, t)}</td>
            <td>{if row.disabled {
                view! { <span class="badge badge-disabled">{t.admin_badge_disabled}</span> }.into_any()
            } else {
                yes_no(false, t).into_any()
            }}</td>
            <td>{format_time(lang, row.bound_at)}</td>
            <td>{format_time(lang, row.last_login_at)}</td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AppError;

    fn parse(raw: &str) -> AppResult<ListQuery> {
        ListQuery::parse(Lang::En, Some(raw))
    }

    #[test]
    fn query_parses_and_round_trips() {
        let query = parse(
            "q=+5678&disabled=yes&following=no&admin=any&sort=last_login&after=1700000000:42",
        )
        .unwrap();
        assert_eq!(query.q.as_deref(), Some("5678"));
        assert_eq!(query.disabled, Tri::Yes);
        assert_eq!(query.following, Tri::No);
        assert_eq!(query.admin, Tri::Any);
        assert_eq!(query.sort, Sort::LastLogin);
        assert_eq!(
            query.after,
            Some(Cursor {
                value: Some(1_700_000_000),
                id: 42
            })
        );
        assert!(parse("q=%00ab").is_err());
        assert!(parse("q=ab%1Bc").is_err());
        let again = parse(&query.query_string(query.after)).unwrap();
        assert_eq!(again, query);
        assert_eq!(
            parse("after=-:7").unwrap().after,
            Some(Cursor { value: None, id: 7 })
        );
        assert_eq!(parse("").unwrap(), ListQuery::default());
        assert_eq!(ListQuery::default().query_string(None), "");
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (raw, names) in [
            ("disabled=maybe", "disabled=maybe"),
            ("sort=name", "sort=name"),
            ("after=abc", "after=abc"),
            ("after=1:x", "after=1:x"),
            ("q=a&q=b", "duplicate field"),
        ] {
            match parse(raw) {
                Err(AppError::BadRequest(message)) => {
                    assert!(message.contains(names), "{raw}: {message}")
                }
                other => panic!("{raw}: {other:?}"),
            }
        }
        assert!(parse(&format!("q={}", "1".repeat(101))).is_err());
    }
}
