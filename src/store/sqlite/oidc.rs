//! The OpenID Connect provider's tables: clients, signing keys, codes, tokens. Every
//! single-use redemption is one `UPDATE ... WHERE used_at IS NULL RETURNING`: of two
//! redemptions at once, exactly one gets the row.

use sqlx::{Row, sqlite::SqliteRow};

use super::Sqlite;
use crate::{
    oidc::{Client, SigningKey},
    store::{Oidc, OidcCode, OidcToken, Redeemed, StoreError, StoreResult, TokenKind},
};

const CLIENT_COLUMNS: &str =
    "id, name, secret_hash, redirect_uris, post_logout_redirect_uris, created_at";
const CODE_COLUMNS: &str = "code_hash, grant_id, client_id, user_id, redirect_uri, scope, nonce, \
    code_challenge, auth_time, expires_at";
const TOKEN_COLUMNS: &str =
    "token_hash, kind, grant_id, client_id, user_id, scope, auth_time, expires_at";

fn hash_of(row: &SqliteRow, column: &str) -> StoreResult<[u8; 32]> {
    let bytes: Vec<u8> = row.try_get(column)?;
    bytes
        .try_into()
        .map_err(|_| StoreError(anyhow::anyhow!("{column} is not 32 bytes")))
}

fn client_of(row: &SqliteRow) -> StoreResult<Client> {
    let secret: Option<Vec<u8>> = row.try_get("secret_hash")?;
    let list = |column: &str| -> StoreResult<Vec<String>> {
        let json: String = row.try_get(column)?;
        serde_json::from_str(&json).map_err(|e| StoreError(anyhow::anyhow!("{column}: {e}")))
    };
    Ok(Client {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        secret_hash: secret
            .map(|s| s.try_into())
            .transpose()
            .map_err(|_| StoreError(anyhow::anyhow!("secret_hash is not 32 bytes")))?,
        redirect_uris: list("redirect_uris")?,
        post_logout_redirect_uris: list("post_logout_redirect_uris")?,
        created_at: row.try_get("created_at")?,
    })
}

fn code_of(row: &SqliteRow) -> StoreResult<OidcCode> {
    Ok(OidcCode {
        hash: hash_of(row, "code_hash")?,
        grant_id: row.try_get("grant_id")?,
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        scope: row.try_get("scope")?,
        nonce: row.try_get("nonce")?,
        code_challenge: row.try_get("code_challenge")?,
        auth_time: row.try_get("auth_time")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn token_of(row: &SqliteRow) -> StoreResult<OidcToken> {
    let kind: String = row.try_get("kind")?;
    Ok(OidcToken {
        hash: hash_of(row, "token_hash")?,
        kind: if kind == "refresh" {
            TokenKind::Refresh
        } else {
            TokenKind::Access
        },
        grant_id: row.try_get("grant_id")?,
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        scope: row.try_get("scope")?,
        auth_time: row.try_get("auth_time")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn json(list: &[String]) -> String {
    serde_json::to_string(list).expect("strings serialise")
}

/// Revokes every token of `grant_id`.
async fn revoke_grant(
    tx: &mut sqlx::SqliteConnection,
    grant_id: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE oidc_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(grant_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl Oidc for Sqlite {
    async fn add_client(&self, client: &Client) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO oidc_clients ({CLIENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
        ))
        .bind(&client.id)
        .bind(&client.name)
        .bind(client.secret_hash.map(|h| h.to_vec()))
        .bind(json(&client.redirect_uris))
        .bind(json(&client.post_logout_redirect_uris))
        .bind(client.created_at)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn client(&self, id: &str) -> StoreResult<Option<Client>> {
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(client_of).transpose()
    }

    async fn clients(&self) -> StoreResult<Vec<Client>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oidc_clients ORDER BY created_at, id"
        ))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(client_of).collect()
    }

    async fn remove_client(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.db.begin().await?;
        let gone = sqlx::query("DELETE FROM oidc_clients WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        for table in ["oidc_codes", "oidc_tokens"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE client_id = ?"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    async fn set_client_secret(&self, id: &str, hash: [u8; 32]) -> StoreResult<bool> {
        Ok(sqlx::query(
            "UPDATE oidc_clients SET secret_hash = ? WHERE id = ? AND secret_hash IS NOT NULL",
        )
        .bind(&hash[..])
        .bind(id)
        .execute(&self.db)
        .await?
        .rows_affected()
            > 0)
    }

    async fn signing_keys(&self, now: i64, keep: i64) -> StoreResult<Vec<SigningKey>> {
        let rows: Vec<(String, Vec<u8>, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT kid, private_der, public_n, public_e, created_at, retired_at FROM oidc_keys \
             WHERE retired_at IS NULL OR retired_at > ? \
             ORDER BY retired_at IS NOT NULL, created_at DESC",
        )
        .bind(now - keep)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(kid, private_der, n, e, created_at, retired_at)| SigningKey {
                    kid,
                    private_der,
                    n,
                    e,
                    created_at,
                    retired_at,
                },
            )
            .collect())
    }

    async fn add_signing_key(&self, key: &SigningKey, first: bool) -> StoreResult<bool> {
        let mut tx = self.db.begin().await?;
        // The write first: it takes the write lock, so the check below sees every key.
        let retired = sqlx::query("UPDATE oidc_keys SET retired_at = ? WHERE retired_at IS NULL")
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if first && retired > 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO oidc_keys (kid, alg, private_der, public_n, public_e, created_at) \
             VALUES (?, 'RS256', ?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(&key.private_der)
        .bind(&key.n)
        .bind(&key.e)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn add_code(&self, code: &OidcCode) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO oidc_codes ({CODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&code.hash[..])
        .bind(&code.grant_id)
        .bind(&code.client_id)
        .bind(code.user_id)
        .bind(&code.redirect_uri)
        .bind(&code.scope)
        .bind(&code.nonce)
        .bind(&code.code_challenge)
        .bind(code.auth_time)
        .bind(code.expires_at)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn redeem_code(&self, hash: [u8; 32], now: i64) -> StoreResult<Redeemed<OidcCode>> {
        let mut tx = self.db.begin().await?;
        let fresh = sqlx::query(&format!(
            "UPDATE oidc_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL \
             AND expires_at > ? RETURNING {CODE_COLUMNS}"
        ))
        .bind(now)
        .bind(&hash[..])
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = fresh {
            let code = code_of(&row)?;
            tx.commit().await?;
            return Ok(Redeemed::Fresh(code));
        }
        let used: Option<String> = sqlx::query_scalar(
            "SELECT grant_id FROM oidc_codes WHERE code_hash = ? AND used_at IS NOT NULL",
        )
        .bind(&hash[..])
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match used {
            Some(grant_id) => {
                revoke_grant(&mut tx, &grant_id, now).await?;
                Redeemed::Replayed
            }
            None => Redeemed::Unknown,
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn add_tokens(&self, tokens: &[OidcToken]) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        for token in tokens {
            sqlx::query(&format!(
                "INSERT INTO oidc_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .bind(&token.hash[..])
            .bind(token.kind.as_str())
            .bind(&token.grant_id)
            .bind(&token.client_id)
            .bind(token.user_id)
            .bind(&token.scope)
            .bind(token.auth_time)
            .bind(token.expires_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn access_token(&self, hash: [u8; 32], now: i64) -> StoreResult<Option<OidcToken>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM oidc_tokens WHERE token_hash = ? AND kind = 'access' \
             AND revoked_at IS NULL AND expires_at > ?"
        ))
        .bind(&hash[..])
        .bind(now)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(token_of).transpose()
    }

    async fn redeem_refresh(&self, hash: [u8; 32], now: i64) -> StoreResult<Redeemed<OidcToken>> {
        let mut tx = self.db.begin().await?;
        let fresh = sqlx::query(&format!(
            "UPDATE oidc_tokens SET used_at = ? WHERE token_hash = ? AND kind = 'refresh' \
             AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ? \
             RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(now)
        .bind(&hash[..])
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = fresh {
            let token = token_of(&row)?;
            tx.commit().await?;
            return Ok(Redeemed::Fresh(token));
        }
        let used: Option<String> = sqlx::query_scalar(
            "SELECT grant_id FROM oidc_tokens WHERE token_hash = ? AND kind = 'refresh' \
             AND used_at IS NOT NULL",
        )
        .bind(&hash[..])
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match used {
            Some(grant_id) => {
                revoke_grant(&mut tx, &grant_id, now).await?;
                Redeemed::Replayed
            }
            None => Redeemed::Unknown,
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn revoke_token(&self, hash: [u8; 32], client_id: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        let found: Option<(String, String)> = sqlx::query_as(
            "UPDATE oidc_tokens SET revoked_at = ? WHERE token_hash = ? AND client_id = ? \
             AND revoked_at IS NULL RETURNING kind, grant_id",
        )
        .bind(now)
        .bind(&hash[..])
        .bind(client_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((kind, grant_id)) = found
            && kind == "refresh"
        {
            revoke_grant(&mut tx, &grant_id, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
