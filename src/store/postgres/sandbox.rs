//! The sandbox's state: its access tokens, QR tickets, followers and SMS inbox.

use super::Postgres;
use crate::store::{OauthCodeUse, SandboxState, StoreResult};

#[async_trait::async_trait]
impl SandboxState for Postgres {
    async fn expire_tokens(&self, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sandbox_tokens SET expires_at = $1")
            .bind(now - 1)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn cut_tokens(&self, until: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sandbox_tokens SET expires_at = LEAST(expires_at, $1)")
            .bind(until)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn insert_token(&self, token: &str, expires_at: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO sandbox_tokens (token, expires_at) VALUES ($1, $2)")
            .bind(token)
            .bind(expires_at)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn live_token(&self, now: i64) -> StoreResult<Option<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT token, expires_at FROM sandbox_tokens WHERE expires_at > $1 \
             ORDER BY expires_at DESC LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.db)
        .await?)
    }

    async fn token_expiry(&self, token: &str) -> StoreResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT expires_at FROM sandbox_tokens WHERE token = $1")
                .bind(token)
                .fetch_optional(&self.db)
                .await?,
        )
    }

    async fn insert_ticket(&self, ticket: &str, scene: &str, expires_at: i64) -> StoreResult<()> {
        // A plain statement: there is no writer to share here, PostgreSQL takes concurrent
        // inserts as they come.
        sqlx::query("INSERT INTO sandbox_tickets (ticket, scene, expires_at) VALUES ($1, $2, $3)")
            .bind(ticket)
            .bind(scene)
            .bind(expires_at)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn ticket_scene(&self, ticket: &str, now: i64) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT scene FROM sandbox_tickets WHERE ticket = $1 AND expires_at > $2",
        )
        .bind(ticket)
        .bind(now)
        .fetch_optional(&self.db)
        .await?)
    }

    async fn follower(&self, openid: &str) -> StoreResult<Option<(bool, i64)>> {
        Ok(sqlx::query_as(
            "SELECT following, subscribe_time FROM sandbox_followers WHERE openid = $1",
        )
        .bind(openid)
        .fetch_optional(&self.db)
        .await?)
    }

    async fn follow(&self, openid: &str, now: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sandbox_followers (openid, following, subscribe_time) \
             VALUES ($1, TRUE, $2) \
             ON CONFLICT (openid) DO UPDATE SET following = TRUE, subscribe_time = $2",
        )
        .bind(openid)
        .bind(now)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn expire_ticket(&self, ticket: &str, now: i64) -> StoreResult<Option<String>> {
        let mut tx = self.db.begin().await?;
        sqlx::query("UPDATE sandbox_tickets SET expires_at = $1 WHERE ticket = $2")
            .bind(now)
            .bind(ticket)
            .execute(&mut *tx)
            .await?;
        let owner: Option<String> = sqlx::query_scalar(
            "UPDATE login_scenes SET expires_at = LEAST(expires_at, $1) WHERE ticket = $2 \
             RETURNING owner",
        )
        .bind(now)
        .bind(ticket)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(owner) = &owner {
            // The browser may be waiting on another instance: it hears of the dead code when
            // this commits. No login event was recorded.
            super::notify(&mut tx, &self.instance, owner, false).await?;
        }
        tx.commit().await?;
        Ok(owner)
    }

    async fn meet(&self, openid: &str, now: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sandbox_followers (openid, following, subscribe_time) \
             VALUES ($1, FALSE, $2) ON CONFLICT (openid) DO NOTHING",
        )
        .bind(openid)
        .bind(now)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn insert_oauth_code(
        &self,
        code: &str,
        openid: &str,
        snapshot: bool,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sandbox_oauth_codes (code, openid, snapshot, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(code)
        .bind(openid)
        .bind(snapshot)
        .bind(expires_at)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn use_oauth_code(&self, code: &str, now: i64) -> StoreResult<OauthCodeUse> {
        // One statement: of two exchanges of one code at once, one gets the person.
        let fresh: Option<(String, bool)> = sqlx::query_as(
            "UPDATE sandbox_oauth_codes SET used = TRUE \
             WHERE code = $1 AND NOT used AND expires_at > $2 RETURNING openid, snapshot",
        )
        .bind(code)
        .bind(now)
        .fetch_optional(&self.db)
        .await?;
        if let Some((openid, snapshot)) = fresh {
            return Ok(OauthCodeUse::Fresh { openid, snapshot });
        }
        let used: Option<bool> =
            sqlx::query_scalar("SELECT used FROM sandbox_oauth_codes WHERE code = $1")
                .bind(code)
                .fetch_optional(&self.db)
                .await?;
        Ok(match used {
            Some(true) => OauthCodeUse::Used,
            _ => OauthCodeUse::Unknown,
        })
    }

    async fn recent_openids(&self, limit: i64) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT openid FROM sandbox_followers ORDER BY subscribe_time DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.db)
        .await?)
    }

    async fn deliver_sms(&self, phone: &str, code: &str, now: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO sandbox_sms (phone, code, sent_at) VALUES ($1, $2, $3)")
            .bind(phone)
            .bind(code)
            .bind(now)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn newest_sms(&self, phone: &str) -> StoreResult<Option<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT code, sent_at FROM sandbox_sms WHERE phone = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(phone)
        .fetch_optional(&self.db)
        .await?)
    }

    async fn inbox(&self, limit: i64) -> StoreResult<Vec<(String, String, i64)>> {
        Ok(
            sqlx::query_as(
                "SELECT phone, code, sent_at FROM sandbox_sms ORDER BY id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(&self.db)
            .await?,
        )
    }
}
