//! Users, as sessions see them.

use super::Sqlite;
use crate::store::{StoreResult, User, Users};

/// The columns of [`User`].
pub(super) const COLUMNS: &str = "id, phone, openid, unionid, is_admin, disabled, created_at, \
    bound_at, last_login_at, session_epoch";

#[async_trait::async_trait]
impl Users for Sqlite {
    async fn by_id(&self, id: i64) -> StoreResult<Option<User>> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.db)
                .await?,
        )
    }

    async fn log_out_everywhere(&self, id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ?")
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok(())
    }
}
