//! The OpenID Connect provider's tables: clients, signing keys, codes, tokens. Every
//! single-use redemption is one `UPDATE ... WHERE used_at IS NULL RETURNING`, in the same
//! transaction as the tokens it gives: of two redemptions at once, on any instances, exactly
//! one gets the row (the other waits for its row lock, then finds it spent).
//!
//! SQLite's single writer also orders what a redemption does after it against everything else;
//! here advisory locks do, taken before any row lock so that they never wait in a circle:
//! - a grant's, by whatever revokes or extends it (an exchange, a replay, RFC 7009
//!   revocation): a replay that revokes a grant waits for an exchange of the same grant in
//!   flight and then sees the tokens it stored, instead of missing them;
//! - a client's, shared by its exchanges and exclusive for its removal: a removal waits for
//!   the exchanges in flight and then deletes the tokens they stored;
//! - the signing keys', by every change of them: two rotations at once take turns.

use sqlx::{PgConnection, Row, postgres::PgRow};

use super::Postgres;
use crate::{
    oidc::{Client, SigningKey},
    store::{
        AuditEntry, ClientEdit, Exchanged, Issue, Oidc, OidcCode, OidcToken, StoreError,
        StoreResult, TokenKind,
    },
};

/// Advisory lock keys (the first half of the two-key form).
mod lock {
    /// Held by whatever changes the signing keys (second key: 0).
    pub const SIGNING_KEYS: i32 = 0x7778_0030;
    /// A client's (second key: the hash of its id): shared by its exchanges and revocations,
    /// exclusive for its removal.
    pub const CLIENT: i32 = 0x7778_0031;
    /// A grant's (second key: the hash of its id), by whatever redeems or revokes its tokens.
    pub const GRANT: i32 = 0x7778_0032;
}

const CLIENT_COLUMNS: &str =
    "id, name, secret_hash, redirect_uris, post_logout_redirect_uris, created_at";
const CODE_COLUMNS: &str = "code_hash, grant_id, client_id, user_id, redirect_uri, scope, nonce, \
    code_challenge, auth_time, expires_at, amr";
const TOKEN_COLUMNS: &str =
    "token_hash, kind, grant_id, client_id, user_id, scope, auth_time, expires_at, amr";

fn hash_of(row: &PgRow, column: &str) -> StoreResult<[u8; 32]> {
    let bytes: Vec<u8> = row.try_get(column)?;
    bytes
        .try_into()
        .map_err(|_| StoreError(anyhow::anyhow!("{column} is not 32 bytes")))
}

fn client_of(row: &PgRow) -> StoreResult<Client> {
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

fn token_of(row: &PgRow) -> StoreResult<OidcToken> {
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
    tx: &mut PgConnection,
    actor: Option<i64>,
    client_id: &str,
    action: &str,
    detail: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO oidc_client_audit (actor_user_id, client_id, action, at, detail) \
         VALUES ($1, $2, $3, $4, $5)",
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

/// Revokes every token of `grant_id` (its lock held).
async fn revoke_grant(tx: &mut PgConnection, grant_id: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE oidc_tokens SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(grant_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A code from the columns its redemption returns ([`CODE`]).
fn redeemed_code(row: &PgRow, hash: [u8; 32]) -> StoreResult<OidcCode> {
    Ok(OidcCode {
        hash,
        grant_id: row.try_get("grant_id")?,
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        scope: row.try_get("scope")?,
        nonce: row.try_get("nonce")?,
        code_challenge: row.try_get("code_challenge")?,
        auth_time: row.try_get("auth_time")?,
        expires_at: row.try_get("expires_at")?,
        amr: row.try_get("amr")?,
    })
}

/// A refresh token from the columns its redemption returns ([`REFRESH`]).
fn redeemed_token(row: &PgRow, hash: [u8; 32]) -> StoreResult<OidcToken> {
    Ok(OidcToken {
        hash,
        kind: TokenKind::Refresh,
        grant_id: row.try_get("grant_id")?,
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        scope: row.try_get("scope")?,
        auth_time: row.try_get("auth_time")?,
        expires_at: row.try_get("expires_at")?,
        amr: row.try_get("amr")?,
    })
}

/// How one kind of single-use credential is redeemed.
struct Redemption<T> {
    /// Takes its client's lock (shared) and its grant's, if the row exists at all, used or not
    /// (binds: $1 lock::CLIENT, $2 lock::GRANT, $3 hash).
    lock: &'static str,
    /// `UPDATE ... RETURNING` the row if it is fresh (binds: $1 now, $2 hash).
    redeem: &'static str,
    /// The grant of a row redeemed before (binds: $1 hash).
    used: &'static str,
    read: fn(&PgRow, [u8; 32]) -> StoreResult<T>,
    user_id: fn(&T) -> i64,
}

const CODE: Redemption<OidcCode> = Redemption {
    lock: "SELECT grant_id, pg_advisory_xact_lock_shared($1, hashtext(client_id)), \
           pg_advisory_xact_lock($2, hashtext(grant_id)) FROM oidc_codes WHERE code_hash = $3",
    redeem: "UPDATE oidc_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL \
             AND expires_at > $1 RETURNING grant_id, client_id, user_id, redirect_uri, scope, \
             nonce, code_challenge, auth_time, expires_at, amr",
    used: "SELECT grant_id FROM oidc_codes WHERE code_hash = $1 AND used_at IS NOT NULL",
    read: redeemed_code,
    user_id: |code| code.user_id,
};

const REFRESH: Redemption<OidcToken> = Redemption {
    lock: "SELECT grant_id, pg_advisory_xact_lock_shared($1, hashtext(client_id)), \
           pg_advisory_xact_lock($2, hashtext(grant_id)) FROM oidc_tokens \
           WHERE token_hash = $3 AND kind = 'refresh'",
    redeem: "UPDATE oidc_tokens SET used_at = $1 WHERE token_hash = $2 AND kind = 'refresh' \
             AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
             RETURNING grant_id, client_id, user_id, scope, auth_time, expires_at, amr",
    used: "SELECT grant_id FROM oidc_tokens WHERE token_hash = $1 AND kind = 'refresh' \
           AND used_at IS NOT NULL",
    read: redeemed_token,
    user_id: |token| token.user_id,
};

impl Postgres {
    /// A redemption and what it gives, in one transaction. Whatever it ends in but an error is
    /// committed: a refused redemption stays spent, and a replay's revocation stands although
    /// the request fails.
    async fn exchange<T: Send>(
        &self,
        kind: &Redemption<T>,
        hash: [u8; 32],
        now: i64,
        issue: Issue<T>,
    ) -> StoreResult<Exchanged<T>> {
        let mut tx = self.db.begin().await?;
        let known: Option<String> = sqlx::query_scalar(kind.lock)
            .bind(lock::CLIENT)
            .bind(lock::GRANT)
            .bind(&hash[..])
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Ok(Exchanged::Unknown);
        }
        let fresh = sqlx::query(kind.redeem)
            .bind(now)
            .bind(&hash[..])
            .fetch_optional(&mut *tx)
            .await?;
        let Some(redeemed) = fresh.map(|row| (kind.read)(&row, hash)).transpose()? else {
            let used: Option<String> = sqlx::query_scalar(kind.used)
                .bind(&hash[..])
                .fetch_optional(&mut *tx)
                .await?;
            return Ok(match used {
                Some(grant_id) => {
                    revoke_grant(&mut tx, &grant_id, now).await?;
                    tx.commit().await?;
                    Exchanged::Replayed
                }
                // Expired or revoked: nothing was written.
                None => Exchanged::Unknown,
            });
        };
        let user = sqlx::query(&format!(
            "SELECT {} FROM users WHERE id = $1",
            super::users::COLUMNS
        ))
        .bind((kind.user_id)(&redeemed))
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(super::users::user_from)
        .transpose()?;
        let tokens = match issue(&redeemed, user.as_ref()) {
            Ok(tokens) => tokens,
            Err(refusal) => {
                tx.commit().await?;
                return Ok(Exchanged::Refused(refusal));
            }
        };
        let Some(user) = user else {
            tx.commit().await?;
            return Ok(Exchanged::Refused(crate::oidc::OAuthError::invalid_grant(
                "no such person",
            )));
        };
        let insert = format!(
            "INSERT INTO oidc_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        for token in &tokens {
            sqlx::query(&insert)
                .bind(&token.hash[..])
                .bind(token.kind.as_str())
                .bind(&token.grant_id)
                .bind(&token.client_id)
                .bind(token.user_id)
                .bind(&token.scope)
                .bind(token.auth_time)
                .bind(token.expires_at)
                .bind(&token.amr)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Exchanged::Issued(redeemed, user))
    }
}

#[async_trait::async_trait]
impl Oidc for Postgres {
    async fn add_client(&self, client: &Client, actor: Option<i64>) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO oidc_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
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
            "SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE id = $1"
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
        // Waits for this client's exchanges in flight, and holds off new ones: the deletes
        // below see every token they stored, and none is stored after.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(lock::CLIENT)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM oidc_clients WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        for table in ["oidc_codes", "oidc_tokens"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE client_id = $1"))
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
            "UPDATE oidc_clients SET secret_hash = $1 WHERE id = $2 AND secret_hash IS NOT NULL",
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
        // The row locked first: of two edits at once the second waits, so the old values read
        // are the current ones and its audit says what it changed.
        let old = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE id = $1 FOR UPDATE"
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
                "UPDATE oidc_clients SET name = $1, redirect_uris = $2, \
                 post_logout_redirect_uris = $3 WHERE id = $4",
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
             WHERE a.client_id = $1 ORDER BY a.at DESC, a.id DESC LIMIT $2",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(&self.db)
        .await?)
    }

    async fn signing_keys(&self, now: i64, keep: i64) -> StoreResult<Vec<SigningKey>> {
        let rows: Vec<(String, Vec<u8>, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT kid, private_der, public_n, public_e, created_at, retired_at FROM oidc_keys \
             WHERE retired_at IS NULL OR retired_at > $1 \
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
        // Every change of the keys takes turns: without it, of two rotations at once the
        // second would retire nothing (the first's new key is not yet visible to it) and then
        // collide with that key in `oidc_keys_one_current`.
        sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
            .bind(lock::SIGNING_KEYS)
            .execute(&mut *tx)
            .await?;
        if !first {
            // Retired first, so that at no point are there two current keys.
            sqlx::query("UPDATE oidc_keys SET retired_at = $1 WHERE retired_at IS NULL")
                .bind(key.created_at)
                .execute(&mut *tx)
                .await?;
        }
        // On first use the index keeps the key another instance made first.
        let stored = sqlx::query(
            "INSERT INTO oidc_keys (kid, alg, private_der, public_n, public_e, created_at) \
             VALUES ($1, 'RS256', $2, $3, $4, $5) \
             ON CONFLICT ((retired_at IS NULL)) WHERE retired_at IS NULL DO NOTHING",
        )
        .bind(&key.kid)
        .bind(&key.private_der)
        .bind(&key.n)
        .bind(&key.e)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(stored)
    }

    async fn add_code(&self, code: &OidcCode) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO oidc_codes ({CODE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
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
        self.exchange(&CODE, hash, now, issue).await
    }

    async fn access_token(&self, hash: [u8; 32], now: i64) -> StoreResult<Option<OidcToken>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM oidc_tokens WHERE token_hash = $1 AND kind = 'access' \
             AND revoked_at IS NULL AND expires_at > $2"
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
        self.exchange(&REFRESH, hash, now, issue).await
    }

    async fn revoke_token(&self, hash: [u8; 32], client_id: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        // The locks an exchange takes, in the same order: a refresh in flight of the same
        // grant commits its new tokens before the grant is revoked below, so they go with it,
        // and a removal of the client does not lock rows in another order than this.
        let known: Option<String> = sqlx::query_scalar(
            "SELECT grant_id, pg_advisory_xact_lock_shared($1, hashtext(client_id)), \
             pg_advisory_xact_lock($2, hashtext(grant_id)) FROM oidc_tokens \
             WHERE token_hash = $3 AND client_id = $4",
        )
        .bind(lock::CLIENT)
        .bind(lock::GRANT)
        .bind(&hash[..])
        .bind(client_id)
        .fetch_optional(&mut *tx)
        .await?;
        if known.is_none() {
            return Ok(());
        }
        let found: Option<(String, String)> = sqlx::query_as(
            "UPDATE oidc_tokens SET revoked_at = $1 WHERE token_hash = $2 AND client_id = $3 \
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
