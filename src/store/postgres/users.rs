//! Users, as sessions see them.

use sqlx::{Row, postgres::PgRow};

use super::Postgres;
use crate::store::{StoreError, StoreResult, User, Users};

/// The columns of [`User`], in the order [`user_from`] reads them.
pub(super) const COLUMNS: &str = "id, phone, openid, unionid, is_admin, disabled, created_at, \
    bound_at, last_login_at, session_epoch";

/// Records whether an openid follows the account. Parameters: openid, following, time.
pub(super) const SET_FOLLOWING_SQL: &str = "INSERT INTO followers (openid, following, \
    updated_at) VALUES ($1, $2, $3) \
    ON CONFLICT (openid) DO UPDATE SET following = $2, updated_at = $3";

/// A user from a row of [`COLUMNS`].
pub(super) fn user_from(row: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get(0)?,
        phone: row.try_get(1)?,
        openid: row.try_get(2)?,
        unionid: row.try_get(3)?,
        is_admin: row.try_get(4)?,
        disabled: row.try_get(5)?,
        created_at: row.try_get(6)?,
        bound_at: row.try_get(7)?,
        last_login_at: row.try_get(8)?,
        session_epoch: row.try_get(9)?,
    })
}

#[async_trait::async_trait]
impl Users for Postgres {
    async fn by_id(&self, id: i64) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn by_phone(&self, phone: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE phone = $1"))
            .bind(phone)
            .fetch_optional(&self.db)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn set_following(&self, openid: &str, following: bool, now: i64) -> StoreResult<()> {
        sqlx::query(SET_FOLLOWING_SQL)
            .bind(openid)
            .bind(following)
            .bind(now)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn following(&self, openid: &str) -> StoreResult<Option<bool>> {
        Ok(
            sqlx::query_scalar("SELECT following FROM followers WHERE openid = $1")
                .bind(openid)
                .fetch_optional(&self.db)
                .await?,
        )
    }

    async fn log_out_everywhere(&self, id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = $1")
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok(())
    }
}
