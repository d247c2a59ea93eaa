//! WeChat callbacks, through the writer: each delivery is recorded with its reply in the same
//! transaction as its effect, keyed by FromUserName + CreateTime + event, and each signed
//! request by (signature, timestamp, nonce). A retry, even one arriving while the first is
//! still being handled, waits for the first to commit and then gets the same reply.

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Sqlite,
    scenes::{RECORD_EVENT_SQL, RESOLVE_SQL, by_scene},
};
use crate::store::{
    Callbacks, Delivery, Effect, LoginMethod, Recorded, ScanFacts, ScanRule, StoreError,
    StoreResult,
};

#[async_trait::async_trait]
impl Callbacks for Sqlite {
    async fn record_url_check(&self, request: [String; 3], now: i64) -> StoreResult<()> {
        self.writer
            .run(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO callback_requests (signature, timestamp, nonce, reply, received_at) \
                     VALUES (?, ?, ?, '', ?) ON CONFLICT DO NOTHING",
                )?
                .execute(params![request[0], request[1], request[2], now])?;
                Ok::<_, StoreError>(())
            })
            .await
    }

    async fn record(&self, delivery: Delivery, decide: ScanRule) -> StoreResult<Recorded> {
        self.writer
            .run(move |conn| record(conn, &delivery, &decide))
            .await
    }
}

fn record(conn: &Connection, d: &Delivery, decide: &ScanRule) -> Result<Recorded, StoreError> {
    let request = &d.request;
    let new_request = conn
        .prepare_cached(
            "INSERT INTO callback_requests (signature, timestamp, nonce, reply, received_at) \
             VALUES (?, ?, ?, NULL, ?) ON CONFLICT DO NOTHING",
        )?
        .execute(params![request[0], request[1], request[2], d.now])?
        == 1;
    if !new_request {
        let reply = conn
            .prepare_cached(
                "SELECT reply FROM callback_requests \
                 WHERE signature = ? AND timestamp = ? AND nonce = ?",
            )?
            .query_row(params![request[0], request[1], request[2]], |row| {
                row.get(0)
            })?;
        return Ok(Recorded::ReplayedRequest(reply));
    }
    let fresh = conn
        .prepare_cached(
            "INSERT INTO callback_deliveries (from_user, create_time, event, reply, received_at) \
             VALUES (?, ?, ?, NULL, ?) ON CONFLICT DO NOTHING",
        )?
        .execute(params![d.from_user, d.create_time, d.event, d.now])?
        == 1;
    let recorded = if fresh {
        let (reply, resolved) = apply(conn, d, decide)?;
        conn.prepare_cached(
            "UPDATE callback_deliveries SET reply = ? \
             WHERE from_user = ? AND create_time = ? AND event = ?",
        )?
        .execute(params![
            reply.as_deref().unwrap_or(""),
            d.from_user,
            d.create_time,
            d.event
        ])?;
        Recorded::Handled { reply, resolved }
    } else {
        let reply: Option<String> = conn
            .prepare_cached(
                "SELECT reply FROM callback_deliveries \
                 WHERE from_user = ? AND create_time = ? AND event = ?",
            )?
            .query_row(params![d.from_user, d.create_time, d.event], |row| {
                row.get(0)
            })?;
        Recorded::RepeatedDelivery(reply)
    };
    let (Recorded::Handled { reply, .. } | Recorded::RepeatedDelivery(reply)) = &recorded else {
        unreachable!("a replayed request returned above");
    };
    conn.prepare_cached(
        "UPDATE callback_requests SET reply = ? WHERE signature = ? AND timestamp = ? AND nonce = ?",
    )?
    .execute(params![
        reply.as_deref().unwrap_or(""),
        request[0],
        request[1],
        request[2]
    ])?;
    Ok(recorded)
}

/// The effect of a delivery seen for the first time: its reply, and the scene it moved on.
#[allow(clippy::type_complexity)]
fn apply(
    conn: &Connection,
    d: &Delivery,
    decide: &ScanRule,
) -> Result<(Option<String>, Option<(crate::store::SceneState, String)>), StoreError> {
    let openid = d.from_user.as_str();
    match &d.effect {
        Effect::Reply(reply) => Ok((reply.clone(), None)),
        Effect::Follow { following, reply } => {
            set_following(conn, openid, *following, d.now)?;
            Ok((reply.clone(), None))
        }
        Effect::Scan { scene } => {
            set_following(conn, openid, true, d.now)?;
            // Only a QR code's scene can be scanned: the others never had one.
            let scene = by_scene(conn, scene)?.filter(|s| s.method == LoginMethod::Scan);
            let Some(scene) = scene else {
                let verdict = decide(&ScanFacts {
                    scene: None,
                    openid,
                    user: None,
                    now: d.now,
                });
                return Ok((verdict.reply, None));
            };
            let user: Option<(i64, bool)> = conn
                .prepare_cached("SELECT id, disabled FROM users WHERE openid = ?")?
                .query_row([openid], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let verdict = decide(&ScanFacts {
                scene: Some(&scene),
                openid,
                user,
                now: d.now,
            });
            let Some(change) = verdict.change else {
                return Ok((verdict.reply, None));
            };
            conn.prepare_cached(RESOLVE_SQL)?.execute(params![
                change.state.as_str(),
                openid,
                change.user_id,
                d.now,
                change.least_expiry,
                scene.scene
            ])?;
            conn.prepare_cached(RECORD_EVENT_SQL)?.execute(params![
                change.user_id,
                openid,
                change.outcome.as_str(),
                scene.client_ip,
                scene.user_agent,
                d.now,
                scene.method.as_str()
            ])?;
            Ok((verdict.reply, Some((change.state, scene.owner))))
        }
    }
}

fn set_following(conn: &Connection, openid: &str, following: bool, t: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(super::users::SET_FOLLOWING_SQL)?
        .execute(params![openid, following, t])?;
    Ok(())
}
