//! The OpenID Connect provider's tables: clients, signing keys, codes, tokens. Every
//! single-use redemption is one `UPDATE ... WHERE used_at IS NULL RETURNING`, in the same
//! transaction as the tokens it gives: of two redemptions at once, exactly one gets the row.

use sqlx::{Row, sqlite::SqliteRow};

use super::{Sqlite, scenes::Columns};
use crate::{
    oidc::{Client, SigningKey},
    store::{
        AuditEntry, ClientEdit, Exchanged, Issue, Oidc, OidcCode, OidcToken, StoreError,
        StoreResult, TokenKind,
    },
};

const CLIENT_COLUMNS: &str =
    "id, name, secret_hash, redirect_uris, post_logout_redirect_uris, created_at";
const CODE_COLUMNS: &str = "code_hash, grant_id, client_id, user_id, redirect_uri, scope, nonce, \
    code_challenge, auth_time, expires_at, amr";
const TOKEN_COLUMNS: &str =
    "token_hash, kind, grant_id, client_id, user_id, scope, auth_time, expires_at, amr";

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
        amr: row.try_get("amr")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn json(list: &[String]) -> String {
    serde_json::to_string(list).expect("strings serialise")
}

/// Records what `actor` did to client `client_id`.
async fn audit(
    tx: &mut sqlx::SqliteConnection,
    actor: Option<i64>,
    client_id: &str,
    action: &str,
    detail: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO oidc_client_audit (actor_user_id, client_id, action, at, detail) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(actor)
    .bind(client_id)
    .bind(action)
    .bind(crate::util::now())
    .bind(detail)
    .execute(&mut *tx)
    .await?;
    Ok(())
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

/// A code from the columns its redemption returns ([`CODE`]).
fn redeemed_code(row: &impl Columns, hash: [u8; 32]) -> Result<OidcCode, StoreError> {
    Ok(OidcCode {
        hash,
        grant_id: row.text(0)?,
        client_id: row.text(1)?,
        user_id: row.int(2)?,
        redirect_uri: row.text(3)?,
        scope: row.text(4)?,
        nonce: row.maybe_text(5)?,
        code_challenge: row.maybe_text(6)?,
        auth_time: row.int(7)?,
        expires_at: row.int(8)?,
        amr: row.text(9)?,
    })
}

/// A refresh token from the columns its redemption returns ([`REFRESH`]).
fn redeemed_token(row: &impl Columns, hash: [u8; 32]) -> Result<OidcToken, StoreError> {
    Ok(OidcToken {
        hash,
        kind: TokenKind::Refresh,
        grant_id: row.text(0)?,
        client_id: row.text(1)?,
        user_id: row.int(2)?,
        scope: row.text(3)?,
        auth_time: row.int(4)?,
        expires_at: row.int(5)?,
        amr: row.text(6)?,
    })
}

/// How one kind of single-use credential is redeemed.
struct Redemption<T> {
    /// `UPDATE ... RETURNING` the row if it is fresh (binds: now, hash, now).
    redeem: &'static str,
    /// The grant of a row redeemed before (binds: hash).
    used: &'static str,
    read: fn(&rusqlite::Row<'_>, [u8; 32]) -> Result<T, StoreError>,
    user_id: fn(&T) -> i64,
}

/// A redemption and what it gives, in the writer's transaction: one hop from the request,
/// and parallel exchanges share commits.
fn exchange<T>(
    conn: &rusqlite::Connection,
    kind: &Redemption<T>,
    hash: [u8; 32],
    now: i64,
    issue: Issue<T>,
) -> Result<Exchanged<T>, StoreError> {
    use rusqlite::OptionalExtension;
    let fresh = conn
        .prepare_cached(kind.redeem)?
        .query_row(rusqlite::params![now, &hash[..], now], |row| {
            Ok((kind.read)(row, hash))
        })
        .optional()?
        .transpose()?;
    let Some(redeemed) = fresh else {
        let used: Option<String> = conn
            .prepare_cached(kind.used)?
            .query_row([&hash[..]], |row| row.get(0))
            .optional()?;
        return Ok(match used {
            Some(grant_id) => {
                conn.prepare_cached(
                    "UPDATE oidc_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL",
                )?
                .execute(rusqlite::params![now, grant_id])?;
                Exchanged::Replayed
            }
            None => Exchanged::Unknown,
        });
    };
    let user = conn
        .prepare_cached(&format!(
            "SELECT {} FROM users WHERE id = ?",
            super::users::COLUMNS
        ))?
        .query_row([(kind.user_id)(&redeemed)], |row| {
            Ok(super::users::user_from(row))
        })
        .optional()?
        .transpose()?;
    let tokens = match issue(&redeemed, user.as_ref()) {
        Ok(tokens) => tokens,
        Err(refusal) => return Ok(Exchanged::Refused(refusal)),
    };
    let Some(user) = user else {
        return Ok(Exchanged::Refused(crate::oidc::OAuthError::invalid_grant(
            "no such person",
        )));
    };
    let mut insert = conn.prepare_cached(&format!(
        "INSERT INTO oidc_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))?;
    for token in &tokens {
        insert.execute(rusqlite::params![
            &token.hash[..],
            token.kind.as_str(),
            token.grant_id,
            token.client_id,
            token.user_id,
            token.scope,
            token.auth_time,
            token.expires_at,
            token.amr,
        ])?;
    }
    Ok(Exchanged::Issued(redeemed, user))
}

const CODE: Redemption<OidcCode> = Redemption {
    redeem: "UPDATE oidc_codes SET used_at = ?1 WHERE code_hash = ?2 AND used_at IS NULL \
             AND expires_at > ?3 RETURNING grant_id, client_id, user_id, redirect_uri, scope, \
             nonce, code_challenge, auth_time, expires_at, amr",
    used: "SELECT grant_id FROM oidc_codes WHERE code_hash = ? AND used_at IS NOT NULL",
    read: |row, hash| redeemed_code(row, hash),
    user_id: |code| code.user_id,
};

const REFRESH: Redemption<OidcToken> = Redemption {
    redeem: "UPDATE oidc_tokens SET used_at = ?1 WHERE token_hash = ?2 AND kind = 'refresh' \
             AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?3 \
             RETURNING grant_id, client_id, user_id, scope, auth_time, expires_at, amr",
    used: "SELECT grant_id FROM oidc_tokens WHERE token_hash = ? AND kind = 'refresh' \
           AND used_at IS NOT NULL",
    read: |row, hash| redeemed_token(row, hash),
    user_id: |token| token.user_id,
};

#[async_trait::async_trait]
impl Oidc for Sqlite {
    async fn add_client(&self, client: &Client, actor: Option<i64>) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO oidc_clients ({CLIENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
        ))
        .bind(&client.id)
        .bind(&client.name)
        .bind(client.secret_hash.map(|h| h.to_vec()))
        .bind(json(&client.redirect_uris))
        .bind(json(&client.post_logout_redirect_uris))
        .bind(client.created_at)
        .execute(&mut *tx)
        .await?;
        let detail = format!("{} ({})", client.name, client.redirect_uris.join(" "));
        audit(&mut tx, actor, &client.id, "add", Some(&detail)).await?;
        tx.commit().await?;
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

    async fn remove_client(&self, id: &str, actor: Option<i64>) -> StoreResult<bool> {
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
        if gone {
            audit(&mut tx, actor, id, "remove", None).await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    async fn set_client_secret(
        &self,
        id: &str,
        hash: [u8; 32],
        actor: Option<i64>,
    ) -> StoreResult<bool> {
        let mut tx = self.db.begin().await?;
        let found = sqlx::query(
            "UPDATE oidc_clients SET secret_hash = ? WHERE id = ? AND secret_hash IS NOT NULL",
        )
        .bind(&hash[..])
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if found {
            audit(&mut tx, actor, id, "rotate_secret", None).await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    async fn edit_client(&self, edit: &ClientEdit, actor: Option<i64>) -> StoreResult<bool> {
        let mut tx = self.db.begin().await?;
        // The write first: it takes the write lock, so the old values read are the current ones.
        let old = sqlx::query(&format!(
            "UPDATE oidc_clients SET id = id WHERE id = ? RETURNING {CLIENT_COLUMNS}"
        ))
        .bind(&edit.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(old) = old.as_ref().map(client_of).transpose()? else {
            return Ok(false);
        };
        let mut changes = Vec::new();
        if old.name != edit.name {
            changes.push(format!("name: {} -> {}", old.name, edit.name));
        }
        for (what, before, after) in [
            ("redirect URIs", &old.redirect_uris, &edit.redirect_uris),
            (
                "post-logout URIs",
                &old.post_logout_redirect_uris,
                &edit.post_logout_redirect_uris,
            ),
        ] {
            if before != after {
                changes.push(format!(
                    "{what}: {} -> {}",
                    before.join(" "),
                    after.join(" ")
                ));
            }
        }
        if !changes.is_empty() {
            sqlx::query(
                "UPDATE oidc_clients SET name = ?, redirect_uris = ?, \
                 post_logout_redirect_uris = ? WHERE id = ?",
            )
            .bind(&edit.name)
            .bind(json(&edit.redirect_uris))
            .bind(json(&edit.post_logout_redirect_uris))
            .bind(&edit.id)
            .execute(&mut *tx)
            .await?;
            audit(&mut tx, actor, &edit.id, "edit", Some(&changes.join("; "))).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn client_audit(&self, id: &str, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        Ok(sqlx::query_as(
            "SELECT a.id, a.actor_user_id, actor.phone AS actor_phone, a.action, a.at, a.detail \
             FROM oidc_client_audit a LEFT JOIN users actor ON actor.id = a.actor_user_id \
             WHERE a.client_id = ? ORDER BY a.at DESC, a.id DESC LIMIT ?",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(&self.db)
        .await?)
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
            "INSERT INTO oidc_codes ({CODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
        .bind(&code.amr)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn exchange_code(
        &self,
        hash: [u8; 32],
        now: i64,
        issue: Issue<OidcCode>,
    ) -> StoreResult<Exchanged<OidcCode>> {
        self.writer
            .run(move |conn| exchange(conn, &CODE, hash, now, issue))
            .await
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

    async fn exchange_refresh(
        &self,
        hash: [u8; 32],
        now: i64,
        issue: Issue<OidcToken>,
    ) -> StoreResult<Exchanged<OidcToken>> {
        self.writer
            .run(move |conn| exchange(conn, &REFRESH, hash, now, issue))
            .await
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
