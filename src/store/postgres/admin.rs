//! The admin area's reads and audited writes: the users list (keyset pages over the
//! `(column, id)` indexes, substring search over the pg_trgm indexes), the dashboard's
//! reports, login history, the audit log, and actions applied with their audit row in one
//! transaction.
//!
//! Over 400 lines because it is one trait's implementation: each query is short, and splitting
//! the users list from the reports would scatter the one `Admin` impl over two files.

use std::collections::HashMap;

use futures::StreamExt;
use sqlx::{PgConnection, Postgres as Db, QueryBuilder};

use super::Postgres;
use crate::store::{
    ActOutcome, Action, Admin, AdminRow, AuditEntry, Cursor, Dashboard, HistoryRow, ListQuery,
    LoginMethod, LoginRow, Outcome, Sort, StoreError, StoreResult, Tri, UserRow,
};

/// The column a sort orders by; each has an index on `(column, id)`.
fn sort_column(sort: Sort) -> &'static str {
    match sort {
        Sort::Bound => "u.bound_at",
        Sort::LastLogin => "u.last_login_at",
    }
}

/// The two stretches of the list: rows with a sort value (newest first), then rows without one.
/// Each is one range of the `(column, id)` index, which keeps every page cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stretch {
    WithValue,
    WithoutValue,
}

/// The SQL of one stretch of `query`, from its cursor on (`limit` rows, or all). Run it
/// unprepared (`persistent(false)`): its best plan depends on the values (the trigram indexes
/// for a search of 3 characters or more, the order index for a shorter one), and a prepared
/// statement may fall back to one generic plan for all of them.
fn select(query: &ListQuery, stretch: Stretch, limit: Option<usize>) -> QueryBuilder<'static, Db> {
    let column = sort_column(query.sort);
    let mut sql = QueryBuilder::new(
        "SELECT u.id, u.phone, u.openid, u.unionid, \
         COALESCE((SELECT f.following FROM followers f WHERE f.openid = u.openid), FALSE) \
         AS following, \
         u.is_admin, u.disabled, u.bound_at, u.last_login_at FROM users u WHERE ",
    );
    match stretch {
        Stretch::WithValue => sql.push(format_args!("{column} IS NOT NULL")),
        Stretch::WithoutValue => sql.push(format_args!("{column} IS NULL")),
    };
    if let Some(q) = &query.q {
        // People type phone numbers with spaces or dashes; the stored form has none.
        let digits: String = q.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        // What SQLite finds, by its trigram index from 3 characters on and by LIKE below
        // that: the phone holds the digits, or the openid or the unionid holds the text, any
        // case (FTS5's trigrams and SQLite's LIKE both ignore ASCII case, hence ILIKE). The
        // pg_trgm indexes serve from 3 characters on; for shorter text the planner reads in
        // order, which finds a page at once since such text matches many rows.
        sql.push(" AND (u.phone ILIKE ")
            .push_bind(format!("%{}%", escape_like(&digits)))
            .push(" ESCAPE '\\' OR u.openid ILIKE ")
            .push_bind(format!("%{}%", escape_like(q)))
            .push(" ESCAPE '\\' OR u.unionid ILIKE ")
            .push_bind(format!("%{}%", escape_like(q)))
            .push(" ESCAPE '\\')");
    }
    for (column, value) in [("u.disabled", query.disabled), ("u.is_admin", query.admin)] {
        match value {
            Tri::Any => {}
            Tri::Yes => {
                sql.push(format_args!(" AND {column}"));
            }
            Tri::No => {
                sql.push(format_args!(" AND NOT {column}"));
            }
        }
    }
    const FOLLOWS: &str =
        "EXISTS (SELECT 1 FROM followers f WHERE f.openid = u.openid AND f.following)";
    match query.following {
        Tri::Any => {}
        Tri::Yes => {
            sql.push(format_args!(" AND {FOLLOWS}"));
        }
        Tri::No => {
            sql.push(format_args!(" AND NOT {FOLLOWS}"));
        }
    }
    match (stretch, query.after) {
        (_, None) => {}
        (Stretch::WithValue, Some(Cursor { value: Some(v), id })) => {
            // A row value comparison: PostgreSQL reads the (column, id) index from the cursor.
            sql.push(format_args!(" AND ({column}, u.id) < ("))
                .push_bind(v)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        (Stretch::WithoutValue, Some(Cursor { value: None, id })) => {
            sql.push(" AND u.id < ").push_bind(id);
        }
        // The cursor is in the other stretch: all of this one (with value: already passed,
        // see `users_page`; without value: not reached yet).
        (_, Some(_)) => {}
    }
    match stretch {
        Stretch::WithValue => sql.push(format_args!(" ORDER BY {column} DESC, u.id DESC")),
        Stretch::WithoutValue => sql.push(" ORDER BY u.id DESC"),
    };
    if let Some(limit) = limit {
        sql.push(format_args!(" LIMIT {limit}"));
    }
    sql
}

/// `%`, `_` and the escape character itself lose their LIKE meaning.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The stretches a listing from `after` goes through.
fn stretches(after: Option<Cursor>) -> &'static [Stretch] {
    match after {
        Some(Cursor { value: None, .. }) => &[Stretch::WithoutValue],
        _ => &[Stretch::WithValue, Stretch::WithoutValue],
    }
}

/// Rows sent per batch of the export.
const EXPORT_BATCH: usize = 500;

const LOGIN_COLUMNS: &str = "e.id, e.user_id, u.phone, e.openid, e.outcome, e.client_ip, \
    e.user_agent, e.at, e.method FROM login_events e LEFT JOIN users u ON u.id = e.user_id";

type LoginTuple = (
    i64,
    Option<i64>,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    String,
);

fn outcome(stored: &str) -> Result<Outcome, StoreError> {
    Outcome::parse(stored).ok_or_else(|| StoreError(anyhow::anyhow!("unknown outcome `{stored}`")))
}

fn method(stored: &str) -> Result<LoginMethod, StoreError> {
    LoginMethod::parse(stored)
        .ok_or_else(|| StoreError(anyhow::anyhow!("unknown login method `{stored}`")))
}

fn login_row(t: LoginTuple) -> Result<LoginRow, StoreError> {
    Ok(LoginRow {
        id: t.0,
        user_id: t.1,
        phone: t.2,
        openid: t.3,
        outcome: outcome(&t.4)?,
        method: method(&t.8)?,
        client_ip: t.5,
        user_agent: t.6,
        at: t.7,
    })
}

fn login_rows(rows: Vec<LoginTuple>) -> StoreResult<Vec<LoginRow>> {
    rows.into_iter().map(login_row).collect()
}

impl Postgres {
    async fn latest_logins(&self, limit: i64) -> StoreResult<Vec<LoginRow>> {
        let rows: Vec<LoginTuple> = sqlx::query_as(&format!(
            "SELECT {LOGIN_COLUMNS} ORDER BY e.id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        login_rows(rows)
    }

    async fn count(&self, sql: &'static str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(sql).fetch_one(&self.db).await?)
    }

    /// Counts per day since `since`: `sql` groups by day, given the offset (`$1`) and `since`
    /// (`$2`). The day is whole-number division of BIGINTs, as on SQLite (times are positive,
    /// so truncating is flooring).
    async fn per_day(
        &self,
        sql: &'static str,
        offset: i64,
        since: i64,
    ) -> StoreResult<HashMap<i64, i64>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(sql)
            .bind(offset)
            .bind(since)
            .fetch_all(&self.db)
            .await?;
        Ok(rows.into_iter().collect())
    }
}

#[async_trait::async_trait]
impl Admin for Postgres {
    async fn users_page(
        &self,
        query: &ListQuery,
        page_size: usize,
    ) -> StoreResult<(Vec<UserRow>, Option<Cursor>)> {
        // One row more than a page tells whether there is a next page.
        let want = page_size + 1;
        let mut rows: Vec<UserRow> = Vec::with_capacity(want);
        for &stretch in stretches(query.after) {
            let more = select(query, stretch, Some(want - rows.len()))
                .build_query_as::<UserRow>()
                .persistent(false)
                .fetch_all(&self.db)
                .await?;
            rows.extend(more);
            if rows.len() >= want {
                break;
            }
        }
        let next = (rows.len() > page_size).then(|| {
            rows.truncate(page_size);
            rows[page_size - 1].cursor(query.sort)
        });
        Ok((rows, next))
    }

    async fn users_export(
        &self,
        query: ListQuery,
        out: tokio::sync::mpsc::Sender<StoreResult<Vec<UserRow>>>,
    ) {
        // One pooled connection for the whole export; rows come off its socket as they are
        // read, so a slow download holds back the query rather than filling memory.
        let mut conn = match self.db.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                let _ = out.send(Err(e.into())).await;
                return;
            }
        };
        for &stretch in stretches(None) {
            let mut sql = select(&query, stretch, None);
            let mut rows = sql
                .build_query_as::<UserRow>()
                .persistent(false)
                .fetch(&mut *conn);
            let mut batch = Vec::with_capacity(EXPORT_BATCH);
            while let Some(row) = rows.next().await {
                match row {
                    Ok(row) => batch.push(row),
                    Err(e) => {
                        let _ = out.send(Err(e.into())).await;
                        return;
                    }
                }
                if batch.len() >= EXPORT_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(EXPORT_BATCH));
                    if out.send(Ok(full)).await.is_err() {
                        return; // nobody reads any more
                    }
                }
            }
            if !batch.is_empty() && out.send(Ok(batch)).await.is_err() {
                return;
            }
        }
    }

    async fn dashboard(&self, since: i64, offset: i64, latest: i64) -> StoreResult<Dashboard> {
        // Independent reads, each on its own pooled connection: the page waits for the
        // slowest, not for their sum.
        let (users, disabled, following, bindings, logins, latest) = tokio::try_join!(
            self.count("SELECT COUNT(*) FROM users"),
            // Answered from the small partial indexes of disabled users.
            self.count("SELECT COUNT(*) FROM users WHERE disabled"),
            self.count(
                "SELECT COUNT(*) FROM users u JOIN followers f ON f.openid = u.openid \
                 WHERE f.following",
            ),
            self.per_day(
                "SELECT (bound_at + $1) / 86400 AS day, COUNT(*) FROM users \
                 WHERE bound_at >= $2 GROUP BY day",
                offset,
                since,
            ),
            self.per_day(
                "SELECT (at + $1) / 86400 AS day, COUNT(*) FROM login_events \
                 WHERE outcome = 'logged_in' AND at >= $2 GROUP BY day",
                offset,
                since,
            ),
            self.latest_logins(latest),
        )?;
        Ok(Dashboard {
            users,
            disabled,
            following,
            bindings,
            logins,
            latest,
        })
    }

    async fn logins_after(&self, after: i64, limit: i64) -> StoreResult<Vec<LoginRow>> {
        let rows: Vec<LoginTuple> = sqlx::query_as(&format!(
            "SELECT {LOGIN_COLUMNS} WHERE e.id > $1 ORDER BY e.id LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        login_rows(rows)
    }

    async fn newest_login_id(&self) -> StoreResult<i64> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM login_events")
            .fetch_one(&self.db)
            .await?;
        Ok(id.unwrap_or(0))
    }

    async fn still_admin(&self, id: i64) -> StoreResult<bool> {
        let still: Option<bool> = sqlx::query_scalar(
            "SELECT is_admin AND NOT disabled AND openid IS NOT NULL FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db)
        .await?;
        Ok(still == Some(true))
    }

    async fn history(
        &self,
        user_id: i64,
        openid: Option<&str>,
        before: (i64, i64),
        limit: i64,
    ) -> StoreResult<Vec<HistoryRow>> {
        let rows: Vec<(i64, String, Option<String>, Option<String>, i64, String)> = sqlx::query_as(
            "SELECT id, outcome, client_ip, user_agent, at, method FROM login_events \
             WHERE (user_id = $1 OR (user_id IS NULL AND openid = $2)) AND (at, id) < ($3, $4) \
             ORDER BY at DESC, id DESC LIMIT $5",
        )
        .bind(user_id)
        .bind(openid)
        .bind(before.0)
        .bind(before.1)
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        rows.into_iter()
            .map(|(id, stored, client_ip, user_agent, at, how)| {
                Ok(HistoryRow {
                    id,
                    outcome: outcome(&stored)?,
                    method: method(&how)?,
                    client_ip,
                    user_agent,
                    at,
                })
            })
            .collect()
    }

    async fn following(&self, openid: &str) -> StoreResult<bool> {
        let following: Option<bool> =
            sqlx::query_scalar("SELECT following FROM followers WHERE openid = $1")
                .bind(openid)
                .fetch_optional(&self.db)
                .await?;
        Ok(following.unwrap_or(false))
    }

    async fn audit_log(&self, target: i64, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        Ok(sqlx::query_as(
            "SELECT a.id, a.actor_user_id, actor.phone AS actor_phone, a.action, a.at, a.detail \
             FROM audit_log a LEFT JOIN users actor ON actor.id = a.actor_user_id \
             WHERE a.target_user_id = $1 ORDER BY a.at DESC, a.id DESC LIMIT $2",
        )
        .bind(target)
        .bind(limit)
        .fetch_all(&self.db)
        .await?)
    }

    async fn act(
        &self,
        actor: Option<i64>,
        target: i64,
        action: Action,
        note: Option<&str>,
    ) -> StoreResult<Option<ActOutcome>> {
        let mut tx = self.db.begin().await?;
        // Lock the user's row first: actions on this user from other admins or instances wait,
        // so the existence check and the change see one state.
        let user: Option<(i64, bool)> =
            sqlx::query_as("SELECT id, disabled FROM users WHERE id = $1 FOR UPDATE")
                .bind(target)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((_, disabled)) = user else {
            return Ok(None);
        };
        let Some(detail) = apply(&mut tx, target, action).await? else {
            tx.rollback().await?;
            return Ok(Some(ActOutcome {
                changed: false,
                disabled,
            }));
        };
        sqlx::query(
            "INSERT INTO audit_log (actor_user_id, target_user_id, action, at, detail) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(actor)
        .bind(target)
        .bind(action.code())
        .bind(crate::util::now())
        // The action's own detail (an unbound openid) and the caller's note (where from).
        .bind(match (detail, note) {
            (Some(detail), Some(note)) => Some(format!("{detail}, {note}")),
            (detail, note) => detail.or(note.map(str::to_owned)),
        })
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let disabled = match action {
            Action::Disable => true,
            Action::Enable => false,
            _ => disabled,
        };
        Ok(Some(ActOutcome {
            changed: true,
            disabled,
        }))
    }

    async fn user_by_phone(&self, phone: &str) -> StoreResult<Option<(i64, bool)>> {
        Ok(
            sqlx::query_as("SELECT id, disabled FROM users WHERE phone = $1")
                .bind(phone)
                .fetch_optional(&self.db)
                .await?,
        )
    }

    async fn admins(&self) -> StoreResult<Vec<AdminRow>> {
        Ok(sqlx::query_as(
            "SELECT id, phone, openid, disabled, last_login_at FROM users WHERE is_admin \
             ORDER BY id",
        )
        .fetch_all(&self.db)
        .await?)
    }
}

/// Applies `action` to user `target` inside the transaction (its row locked). Returns what
/// changed (for the audit detail), or `None` when there was nothing to change (already
/// disabled, already admin, ...), in which case nothing is recorded either.
async fn apply(
    conn: &mut PgConnection,
    target: i64,
    action: Action,
) -> sqlx::Result<Option<Option<String>>> {
    let sql = match action {
        Action::Disable => "UPDATE users SET disabled = TRUE WHERE id = $1 AND NOT disabled",
        Action::Enable => "UPDATE users SET disabled = FALSE WHERE id = $1 AND disabled",
        Action::GrantAdmin => "UPDATE users SET is_admin = TRUE WHERE id = $1 AND NOT is_admin",
        Action::RevokeAdmin => "UPDATE users SET is_admin = FALSE WHERE id = $1 AND is_admin",
        Action::Unbind => {
            // Keep the old openid in the detail: the login history is found by it.
            let old: Option<Option<String>> =
                sqlx::query_scalar("SELECT openid FROM users WHERE id = $1")
                    .bind(target)
                    .fetch_optional(&mut *conn)
                    .await?;
            let Some(Some(openid)) = old else {
                return Ok(None);
            };
            // Every session of theirs ends with it: whoever holds the WeChat logs in again.
            sqlx::query(
                "UPDATE users SET openid = NULL, bound_at = NULL, \
                 session_epoch = session_epoch + 1 WHERE id = $1",
            )
            .bind(target)
            .execute(&mut *conn)
            .await?;
            return Ok(Some(Some(format!("openid {openid}"))));
        }
    };
    let changed = sqlx::query(sql)
        .bind(target)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok((changed == 1).then_some(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like(r"5%_\"), r"5\%\_\\");
    }

    #[test]
    fn a_search_is_bound_not_spliced() {
        let query = ListQuery {
            q: Some("13 8%".into()),
            ..ListQuery::default()
        };
        let sql = select(&query, Stretch::WithValue, Some(2)).into_sql();
        assert!(!sql.contains("8%"), "{sql}");
        assert!(sql.contains("u.phone ILIKE $1 ESCAPE '\\'"), "{sql}");
    }
}
