//! Login scenes and the per-client QR quota. The quota counts a client's stored codes of the
//! last hour plus the ones being made at WeChat: on SQLite those live in the one process, here
//! every instance must see them, so each is a `qr_reservations` row, taken under an advisory
//! lock of that client's and deleted in the same transaction that stores its scene.

use sqlx::{Row, postgres::PgRow};

use super::Postgres;
use crate::store::{
    DecideRule, LoginMethod, OauthStart, QrSlot, Redeemed, Scene, SceneChange, SceneState, Scenes,
    StoreError, StoreResult,
};

/// Advisory lock of one client's quota (second key: the client key's hash), held over the
/// count and the reservation of a QR code, and over the count and the insert of a web
/// authorization's state (they share the cap): other clients don't wait for it.
const CLIENT_LOCK: i32 = 0x7778_0010;

/// How long a reservation counts, in seconds: one left behind by an instance killed while
/// WeChat was making its code stops holding the client back after this.
const RESERVATION_LIFE: i64 = 60;

/// The columns of a scene, in the order [`scene_from`] reads them.
pub(super) const COLUMNS: &str = "scene, owner, ticket, qr_url, state, openid, user_id, lang, \
    client_ip, user_agent, created_at, expires_at, updated_at, method";

/// A scene from a row of [`COLUMNS`].
pub(super) fn scene_from(row: &PgRow) -> Result<Scene, StoreError> {
    let state: String = row.try_get(4)?;
    let method: String = row.try_get(13)?;
    Ok(Scene {
        scene: row.try_get(0)?,
        owner: row.try_get(1)?,
        ticket: row.try_get(2)?,
        qr_url: row.try_get(3)?,
        state: SceneState::parse(&state)
            .ok_or_else(|| anyhow::anyhow!("unknown scene state `{state}`"))?,
        openid: row.try_get(5)?,
        user_id: row.try_get(6)?,
        lang: row.try_get(7)?,
        client_ip: row.try_get(8)?,
        user_agent: row.try_get(9)?,
        created_at: row.try_get(10)?,
        expires_at: row.try_get(11)?,
        updated_at: row.try_get(12)?,
        method: LoginMethod::parse(&method)
            .ok_or_else(|| anyhow::anyhow!("unknown login method `{method}`"))?,
    })
}

/// Inserts a scene. Parameters: scene, owner, ticket, QR URL, state, openid, user id, lang,
/// client IP, client key, user agent, created, expires, updated, method.
pub(super) const INSERT_SQL: &str = "INSERT INTO login_scenes (scene, owner, ticket, qr_url, \
    state, openid, user_id, lang, client_ip, client_key, user_agent, created_at, expires_at, \
    updated_at, method) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

#[async_trait::async_trait]
impl Scenes for Postgres {
    async fn current(&self, owner: &str) -> StoreResult<Option<Scene>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM login_scenes WHERE owner = $1 \
             ORDER BY created_at DESC, seq DESC LIMIT 1"
        ))
        .bind(owner)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(scene_from).transpose()
    }

    async fn reserve_qr_slot(
        &self,
        key: &str,
        cap: i64,
        now: i64,
    ) -> StoreResult<Result<QrSlot, i64>> {
        // This client's lock is held over the count and the reservation: no other page of the
        // same client, on any instance, can count between them; other clients don't wait for
        // it. A reservation is deleted (its code stored, or abandoned) without the lock: a
        // stored code is counted in `login_scenes` in the same commit that deletes its
        // reservation, so a count is never too low.
        let mut tx = self.db.begin().await?;
        // A statement of its own: the count must read what was committed while it waited.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(CLIENT_LOCK)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        let window_start = now - 3600;
        // The codes being made, and the (cap - making)-th newest stored code of this client
        // within the hour if there is one (reading at most `cap` index entries, however many
        // codes the client made: when it leaves the window, the client is under the cap
        // again); and if neither caps it, the reservation. One round trip.
        let (making, capped_since, reservation): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "WITH making AS ( \
                     SELECT COUNT(*) AS n FROM qr_reservations \
                     WHERE client_key = $1 AND reserved_at > $3 - $4 \
                 ), capped AS ( \
                     SELECT created_at FROM login_scenes \
                     WHERE client_key = $1 AND created_at > $5 \
                     ORDER BY created_at DESC LIMIT 1 \
                     OFFSET GREATEST($2 - (SELECT n FROM making) - 1, 0) \
                 ), reserved AS ( \
                     INSERT INTO qr_reservations (client_key, reserved_at) \
                     SELECT $1, $3 \
                     WHERE (SELECT n FROM making) < $2 AND NOT EXISTS (SELECT 1 FROM capped) \
                     RETURNING id \
                 ) \
                 SELECT (SELECT n FROM making), (SELECT created_at FROM capped), \
                     (SELECT id FROM reserved)",
        )
        .bind(key)
        .bind(cap)
        .bind(now)
        .bind(RESERVATION_LIFE)
        .bind(window_start)
        .fetch_one(&mut *tx)
        .await?;
        if making >= cap {
            // They are all being stored now: an hour, unless WeChat fails some.
            return Ok(Err(3600));
        }
        if let Some(since) = capped_since {
            return Ok(Err((since - window_start).max(1)));
        }
        let reservation =
            reservation.ok_or_else(|| anyhow::anyhow!("QR reservation not returned"))?;
        tx.commit().await?;
        let db = self.db.clone();
        Ok(Ok(QrSlot::reserved(
            key.to_owned(),
            reservation,
            move || {
                // Dropped anywhere, perhaps outside an async context: the delete goes on the
                // runtime and nothing waits for it. Without a runtime (or if the delete fails)
                // the row stops counting after RESERVATION_LIFE anyway.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let deleted = sqlx::query("DELETE FROM qr_reservations WHERE id = $1")
                            .bind(reservation)
                            .execute(&db)
                            .await;
                        if let Err(e) = deleted {
                            tracing::warn!(error = %e, "QR reservation not given back");
                        }
                    });
                }
            },
        )))
    }

    async fn give_back(&self, slot: QrSlot) {
        // Deleted before the answer goes out, so the visitor's next try is counted without
        // it; if the delete fails, the drop's own delete (or the reservation's end) is left.
        let Some(reservation) = slot.reservation() else {
            return;
        };
        let deleted = sqlx::query("DELETE FROM qr_reservations WHERE id = $1")
            .bind(reservation)
            .execute(&self.db)
            .await;
        match deleted {
            Ok(_) => slot.spent(),
            Err(e) => tracing::warn!(error = %e, "QR reservation not given back at once"),
        }
    }

    async fn insert(&self, scene: &Scene, slot: QrSlot) -> StoreResult<()> {
        // One statement, so one transaction: the scene is counted from the moment its
        // reservation stops counting, never both or neither.
        let s = scene;
        let stored = sqlx::query(&format!(
            "WITH spent AS (DELETE FROM qr_reservations WHERE id = $16) {INSERT_SQL}"
        ))
        .bind(&s.scene)
        .bind(&s.owner)
        .bind(&s.ticket)
        .bind(&s.qr_url)
        .bind(s.state.as_str())
        .bind(&s.openid)
        .bind(s.user_id)
        .bind(&s.lang)
        .bind(&s.client_ip)
        .bind(slot.key())
        .bind(&s.user_agent)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.updated_at)
        .bind(s.method.as_str())
        .bind(slot.reservation())
        .execute(&self.db)
        .await;
        match stored {
            // The reservation went with the insert: nothing left to give back.
            Ok(_) => slot.spent(),
            // Not stored: dropping the slot deletes the reservation.
            Err(e) => {
                drop(slot);
                return Err(e.into());
            }
        }
        Ok(())
    }

    async fn consume(&self, owner: &str, grace: i64, now: i64) -> StoreResult<Option<Redeemed>> {
        // One statement: the scene is redeemed and its user's last login noted together, and
        // of two redemptions at once only one finds the scene still authorized.
        let redeemed: Option<(i64, i64, String)> = sqlx::query_as(
            "WITH redeemed AS ( \
                 UPDATE login_scenes SET state = 'consumed', updated_at = $1 \
                 WHERE owner = $2 AND state = 'authorized' AND updated_at > $1 - $3 \
                   AND user_id IS NOT NULL \
                 RETURNING user_id, method \
             ) \
             UPDATE users SET last_login_at = $1 FROM redeemed WHERE users.id = redeemed.user_id \
             RETURNING users.id, users.session_epoch, redeemed.method",
        )
        .bind(now)
        .bind(owner)
        .bind(grace)
        .fetch_optional(&self.db)
        .await?;
        let Some((user_id, epoch, method)) = redeemed else {
            return Ok(None);
        };
        let method = LoginMethod::parse(&method)
            .ok_or_else(|| anyhow::anyhow!("unknown login method `{method}`"))?;
        Ok(Some(Redeemed {
            user_id,
            epoch,
            method,
        }))
    }

    async fn start_oauth(&self, start: &OauthStart, cap: i64) -> StoreResult<Result<(), i64>> {
        // Under the client's lock (the QR codes' own), insert first, then count in the same
        // transaction: parallel starts of one client, on any instance, are counted one after
        // the other and can't all slip in.
        let mut tx = self.db.begin().await?;
        // An unknown address (no socket info) is not one client: don't lump them together.
        let counted = !start.client_key.is_empty();
        if counted {
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(CLIENT_LOCK)
                .bind(&start.client_key)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO wechat_oauth_states (state, owner, client_key, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&start.state)
        .bind(&start.owner)
        .bind(&start.client_key)
        .bind(start.created_at)
        .bind(start.expires_at)
        .execute(&mut *tx)
        .await?;
        if counted {
            let window_start = start.created_at - 3600;
            let capped_since: Option<i64> = sqlx::query_scalar(
                "SELECT created_at FROM wechat_oauth_states \
                 WHERE client_key = $1 AND created_at > $2 \
                 ORDER BY created_at DESC LIMIT 1 OFFSET $3",
            )
            .bind(&start.client_key)
            .bind(window_start)
            .bind(cap.max(0))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(since) = capped_since {
                tx.rollback().await?;
                return Ok(Err((since - window_start).max(1)));
            }
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn take_oauth(&self, state: &str, owner: &str, now: i64) -> StoreResult<bool> {
        // One statement: of any number of parallel returns with this state, one gets it.
        let taken = sqlx::query(
            "UPDATE wechat_oauth_states SET expires_at = 0 \
             WHERE state = $1 AND owner = $2 AND expires_at > $3",
        )
        .bind(state)
        .bind(owner)
        .bind(now)
        .execute(&self.db)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    async fn insert_decided(&self, scene: Scene, decide: DecideRule) -> StoreResult<SceneChange> {
        let mut tx = self.db.begin().await?;
        let openid = scene.openid.as_deref().unwrap_or("");
        let user: Option<(i64, bool)> =
            sqlx::query_as("SELECT id, disabled FROM users WHERE openid = $1")
                .bind(openid)
                .fetch_optional(&mut *tx)
                .await?;
        let change = decide(user, scene.created_at);
        // The scene and its history row in one statement (the event's parameters follow the
        // scene's: user id, openid, outcome, client IP, user agent, time, method).
        sqlx::query(&format!(
            "WITH stored AS ({INSERT_SQL}) \
             INSERT INTO login_events (user_id, openid, outcome, client_ip, user_agent, at, method) \
             VALUES ($7, $6, $16, $9, $11, $12, $15)"
        ))
        .bind(&scene.scene)
        .bind(&scene.owner)
        .bind(&scene.ticket)
        .bind(&scene.qr_url)
        .bind(change.state.as_str())
        .bind(openid)
        .bind(change.user_id)
        .bind(&scene.lang)
        .bind(&scene.client_ip)
        .bind("")
        .bind(&scene.user_agent)
        .bind(scene.created_at)
        .bind(scene.expires_at.max(change.least_expiry))
        .bind(scene.created_at)
        .bind(scene.method.as_str())
        .bind(change.outcome.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(change)
    }
}
