//! WeChat callbacks: each delivery is recorded with its reply in the same transaction as its
//! effect, keyed by FromUserName + CreateTime + event, and each signed request by (signature,
//! timestamp, nonce). A retry, even one arriving at another instance while the first is still
//! being handled, waits for the first to commit and then gets the same reply: its
//! `INSERT ... ON CONFLICT DO NOTHING` on the key the first one inserted blocks until that
//! transaction ends. This is the hot path, so statements are joined (CTEs) where their order
//! allows: a fresh scan is six round trips, begin and commit included.

use std::sync::LazyLock;

use sqlx::PgConnection;

use super::{Postgres, scenes::scene_from};
use crate::store::{
    Callbacks, Delivery, Effect, LoginMethod, Recorded, ScanFacts, ScanRule, SceneState,
    StoreError, StoreResult,
};

/// Records a request and, if it is new, its delivery, each unless its key is stored (waiting
/// for a transaction that stored it meanwhile to end). Parameters: signature, timestamp, nonce,
/// from user, create time, event, time. Returns whether each was new.
const RECORD_SQL: &str = "WITH request AS ( \
        INSERT INTO callback_requests (signature, timestamp, nonce, reply, received_at) \
        VALUES ($1, $2, $3, NULL, $7) ON CONFLICT DO NOTHING RETURNING 1 \
    ), delivery AS ( \
        INSERT INTO callback_deliveries (from_user, create_time, event, reply, received_at) \
        SELECT $4, $5, $6, NULL, $7 WHERE EXISTS (SELECT 1 FROM request) \
        ON CONFLICT DO NOTHING RETURNING 1 \
    ) \
    SELECT EXISTS (SELECT 1 FROM request), EXISTS (SELECT 1 FROM delivery)";

/// Stores the reply of a request. Parameters: reply, signature, timestamp, nonce.
const REQUEST_REPLY_SQL: &str = "UPDATE callback_requests SET reply = $1 \
    WHERE signature = $2 AND timestamp = $3 AND nonce = $4";

/// Stores the reply of a new delivery and of its request. Parameters: reply, signature,
/// timestamp, nonce, from user, create time, event.
const REPLIES_SQL: &str = "WITH delivery AS ( \
        UPDATE callback_deliveries SET reply = $1 \
        WHERE from_user = $5 AND create_time = $6 AND event = $7 \
    ) \
    UPDATE callback_requests SET reply = $1 WHERE signature = $2 AND timestamp = $3 AND nonce = $4";

/// Moves a scene on (making it live at least until the least expiry), records the login
/// history row, and stores the replies. Parameters: those of [`REPLIES_SQL`], then state,
/// user id, time, least expiry, scene, outcome, client IP, user agent, method (the openid is
/// the sender, $5).
const RESOLVE_SQL: &str = "WITH resolved AS ( \
        UPDATE login_scenes SET state = $8, openid = $5, user_id = $9, updated_at = $10, \
            expires_at = GREATEST(expires_at, $11) \
        WHERE scene = $12 \
    ), event AS ( \
        INSERT INTO login_events (user_id, openid, outcome, client_ip, user_agent, at, method) \
        VALUES ($9, $5, $13, $14, $15, $10, $16) \
    ), delivery AS ( \
        UPDATE callback_deliveries SET reply = $1 \
        WHERE from_user = $5 AND create_time = $6 AND event = $7 \
    ) \
    UPDATE callback_requests SET reply = $1 WHERE signature = $2 AND timestamp = $3 AND nonce = $4";

/// Records that the sender follows, then reads the scanned scene (locked until the commit,
/// so that two scans of one code at once are decided one after the other, as on SQLite) with
/// the sender's user (id, disabled). The scene is read only once the follower row is written:
/// always the same order of locks. Parameters: scene, openid, time.
static SCAN_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH followed AS ( \
             INSERT INTO followers (openid, following, updated_at) VALUES ($2, TRUE, $3) \
             ON CONFLICT (openid) DO UPDATE SET following = TRUE, updated_at = $3 RETURNING 1 \
         ) \
         SELECT {}, \
             (SELECT id FROM users WHERE openid = $2), \
             (SELECT disabled FROM users WHERE openid = $2) \
         FROM login_scenes WHERE scene = $1 AND EXISTS (SELECT 1 FROM followed) FOR UPDATE",
        super::scenes::COLUMNS
    )
});

#[async_trait::async_trait]
impl Callbacks for Postgres {
    async fn record_url_check(&self, request: [String; 3], now: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO callback_requests (signature, timestamp, nonce, reply, received_at) \
             VALUES ($1, $2, $3, '', $4) ON CONFLICT DO NOTHING",
        )
        .bind(&request[0])
        .bind(&request[1])
        .bind(&request[2])
        .bind(now)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn record(&self, delivery: Delivery, decide: ScanRule) -> StoreResult<Recorded> {
        let d = &delivery;
        let request = &d.request;
        let mut tx = self.db.begin().await?;
        let (new_request, fresh): (bool, bool) = sqlx::query_as(RECORD_SQL)
            .bind(&request[0])
            .bind(&request[1])
            .bind(&request[2])
            .bind(&d.from_user)
            .bind(d.create_time)
            .bind(&d.event)
            .bind(d.now)
            .fetch_one(&mut *tx)
            .await?;
        // The replies of the first are read in statements of their own: one that waited on
        // the first's key reads what it committed only with a snapshot taken afterwards.
        if !new_request {
            let reply: Option<String> = sqlx::query_scalar(
                "SELECT reply FROM callback_requests \
                 WHERE signature = $1 AND timestamp = $2 AND nonce = $3",
            )
            .bind(&request[0])
            .bind(&request[1])
            .bind(&request[2])
            .fetch_one(&mut *tx)
            .await?;
            return Ok(Recorded::ReplayedRequest(reply));
        }
        if !fresh {
            let reply: Option<String> = sqlx::query_scalar(
                "SELECT reply FROM callback_deliveries \
                 WHERE from_user = $1 AND create_time = $2 AND event = $3",
            )
            .bind(&d.from_user)
            .bind(d.create_time)
            .bind(&d.event)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(REQUEST_REPLY_SQL)
                .bind(reply.as_deref().unwrap_or(""))
                .bind(&request[0])
                .bind(&request[1])
                .bind(&request[2])
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Recorded::RepeatedDelivery(reply));
        }
        // `decide` is moved in, not lent: a reference to it (not `Sync`) held across an await
        // would make this future not `Send`.
        let (reply, resolved) = apply(&mut tx, d, decide).await?;
        if let Some((_, owner)) = &resolved {
            // Sent when the transaction commits, and only then: other instances wake their
            // browser exactly when the scene has moved on.
            super::notify(&mut tx, &self.instance, owner, true).await?;
        }
        tx.commit().await?;
        Ok(Recorded::Handled { reply, resolved })
    }
}

/// The effect of a delivery seen for the first time, with its replies stored: its reply, and
/// the scene it moved on.
async fn apply(
    tx: &mut PgConnection,
    d: &Delivery,
    decide: ScanRule,
) -> Result<(Option<String>, Option<(SceneState, String)>), StoreError> {
    let openid = d.from_user.as_str();
    let reply = match &d.effect {
        Effect::Reply(reply) => reply.clone(),
        Effect::Follow { following, reply } => {
            sqlx::query(super::users::SET_FOLLOWING_SQL)
                .bind(openid)
                .bind(*following)
                .bind(d.now)
                .execute(&mut *tx)
                .await?;
            reply.clone()
        }
        Effect::Scan { scene } => {
            let row = sqlx::query(&SCAN_SQL)
                .bind(scene)
                .bind(openid)
                .bind(d.now)
                .fetch_optional(&mut *tx)
                .await?;
            let (scene, user) = match row {
                Some(row) => {
                    use sqlx::Row;
                    let id: Option<i64> = row.try_get(14)?;
                    let disabled: Option<bool> = row.try_get(15)?;
                    (Some(scene_from(&row)?), id.zip(disabled))
                }
                None => (None, None),
            };
            // Only a QR code's scene can be scanned: the others never had one.
            let scene = scene.filter(|s| s.method == LoginMethod::Scan);
            let Some(scene) = scene else {
                let verdict = decide(&ScanFacts {
                    scene: None,
                    openid,
                    user: None,
                    now: d.now,
                });
                replies(tx, d, &verdict.reply).await?;
                return Ok((verdict.reply, None));
            };
            let verdict = decide(&ScanFacts {
                scene: Some(&scene),
                openid,
                user,
                now: d.now,
            });
            let Some(change) = verdict.change else {
                replies(tx, d, &verdict.reply).await?;
                return Ok((verdict.reply, None));
            };
            let request = &d.request;
            sqlx::query(RESOLVE_SQL)
                .bind(verdict.reply.as_deref().unwrap_or(""))
                .bind(&request[0])
                .bind(&request[1])
                .bind(&request[2])
                .bind(openid)
                .bind(d.create_time)
                .bind(&d.event)
                .bind(change.state.as_str())
                .bind(change.user_id)
                .bind(d.now)
                .bind(change.least_expiry)
                .bind(&scene.scene)
                .bind(change.outcome.as_str())
                .bind(&scene.client_ip)
                .bind(&scene.user_agent)
                .bind(scene.method.as_str())
                .execute(&mut *tx)
                .await?;
            return Ok((verdict.reply, Some((change.state, scene.owner))));
        }
    };
    replies(tx, d, &reply).await?;
    Ok((reply, None))
}

/// Stores the reply of a new delivery and of its request.
async fn replies(tx: &mut PgConnection, d: &Delivery, reply: &Option<String>) -> sqlx::Result<()> {
    sqlx::query(REPLIES_SQL)
        .bind(reply.as_deref().unwrap_or(""))
        .bind(&d.request[0])
        .bind(&d.request[1])
        .bind(&d.request[2])
        .bind(&d.from_user)
        .bind(d.create_time)
        .bind(&d.event)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
