//! The actions an administrator can take on a user, and the audit log that records each one
//! (who, what, to whom, when) in the same transaction as the change itself.

use sqlx::{FromRow, SqliteConnection, SqlitePool};

use crate::{db::now, ui::Text};

/// Something done to a user's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Refuse their logins and end their sessions.
    Disable,
    /// Undo [`Action::Disable`].
    Enable,
    /// Forget their WeChat: they must scan and bind again.
    Unbind,
    /// Make them an administrator.
    GrantAdmin,
    /// Make them an ordinary user again.
    RevokeAdmin,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 5] = [
        Action::Disable,
        Action::Enable,
        Action::Unbind,
        Action::GrantAdmin,
        Action::RevokeAdmin,
    ];

    /// The last segment of the action's URL: `/admin/users/{id}/<segment>`.
    pub fn path_segment(self) -> &'static str {
        match self {
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Unbind => "unbind",
            Action::GrantAdmin => "grant-admin",
            Action::RevokeAdmin => "revoke-admin",
        }
    }

    /// Parses [`Action::path_segment`].
    pub fn from_path_segment(segment: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|a| a.path_segment() == segment)
    }

    /// The value of `audit_log.action`.
    pub fn code(self) -> &'static str {
        match self {
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Unbind => "unbind",
            Action::GrantAdmin => "grant_admin",
            Action::RevokeAdmin => "revoke_admin",
        }
    }

    /// Parses [`Action::code`].
    pub fn from_code(code: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.code() == code)
    }

    /// The button and audit log label.
    pub fn label(self, t: &Text) -> &'static str {
        match self {
            Action::Disable => t.admin_action_disable,
            Action::Enable => t.admin_action_enable,
            Action::Unbind => t.admin_action_unbind,
            Action::GrantAdmin => t.admin_action_grant,
            Action::RevokeAdmin => t.admin_action_revoke,
        }
    }

    /// Applies the action to user `target` inside `conn`'s transaction. Returns what changed
    /// (for the audit detail), or `None` when there was nothing to change (already disabled,
    /// already admin, ...), in which case nothing is recorded either.
    pub async fn apply(
        self,
        conn: &mut SqliteConnection,
        target: i64,
    ) -> sqlx::Result<Option<Option<String>>> {
        let sql = match self {
            Action::Disable => "UPDATE users SET disabled = 1 WHERE id = ? AND disabled = 0",
            Action::Enable => "UPDATE users SET disabled = 0 WHERE id = ? AND disabled = 1",
            Action::GrantAdmin => "UPDATE users SET is_admin = 1 WHERE id = ? AND is_admin = 0",
            Action::RevokeAdmin => "UPDATE users SET is_admin = 0 WHERE id = ? AND is_admin = 1",
            Action::Unbind => {
                // Keep the old openid in the detail: the login history is found by it.
                let old: Option<Option<String>> =
                    sqlx::query_scalar("SELECT openid FROM users WHERE id = ?")
                        .bind(target)
                        .fetch_optional(&mut *conn)
                        .await?;
                let Some(Some(openid)) = old else {
                    return Ok(None);
                };
                sqlx::query("UPDATE users SET openid = NULL, bound_at = NULL WHERE id = ?")
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
}

/// Adds an audit row. `actor` is `None` for the command line.
pub async fn record(
    conn: &mut SqliteConnection,
    actor: Option<i64>,
    target: i64,
    action: Action,
    detail: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (actor_user_id, target_user_id, action, at, detail) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(actor)
    .bind(target)
    .bind(action.code())
    .bind(now())
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// One audit row, with the actor's phone.
#[derive(Debug, Clone, FromRow)]
pub struct Entry {
    /// Row id.
    pub id: i64,
    /// Who acted; `None` for the command line.
    pub actor_user_id: Option<i64>,
    /// The actor's phone (E.164).
    pub actor_phone: Option<String>,
    /// [`Action::code`].
    pub action: String,
    /// When.
    pub at: i64,
    /// What changed, when worth saying.
    pub detail: Option<String>,
}

/// The audit entries about user `target`, newest first (at most `limit`).
pub async fn for_user(db: &SqlitePool, target: i64, limit: i64) -> sqlx::Result<Vec<Entry>> {
    sqlx::query_as(
        "SELECT a.id, a.actor_user_id, actor.phone AS actor_phone, a.action, a.at, a.detail \
         FROM audit_log a LEFT JOIN users actor ON actor.id = a.actor_user_id \
         WHERE a.target_user_id = ? ORDER BY a.at DESC, a.id DESC LIMIT ?",
    )
    .bind(target)
    .bind(limit)
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::Action;

    #[test]
    fn codes_and_path_segments_round_trip() {
        for action in Action::ALL {
            assert_eq!(Action::from_code(action.code()), Some(action));
            assert_eq!(
                Action::from_path_segment(action.path_segment()),
                Some(action)
            );
        }
        assert_eq!(Action::from_path_segment("delete"), None);
    }
}
