//! Login scenes and the per-client QR quota. New scenes and quota slots go through the writer:
//! under load, the inserts of concurrent login pages share its transactions instead of taking
//! turns at SQLite's write lock, and a slot's count and insert are one step.

use rusqlite::OptionalExtension;

use super::{Sqlite, WriteError};
use crate::store::{Scene, SceneState, Scenes, StoreError, StoreResult};

/// The columns of a scene, in the order [`scene_from`] reads them.
pub(super) const COLUMNS: &str = "scene, owner, ticket, qr_url, state, openid, user_id, lang, \
    client_ip, user_agent, created_at, expires_at, updated_at";

/// One row's columns by position, whichever driver read it: a scene is mapped in one place.
pub(super) trait Columns {
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn maybe_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn maybe_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
}

impl Columns for sqlx::sqlite::SqliteRow {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(sqlx::Row::try_get(self, i)?)
    }
    fn maybe_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(sqlx::Row::try_get(self, i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(sqlx::Row::try_get(self, i)?)
    }
    fn maybe_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::Row::try_get(self, i)?)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.get(i)?)
    }
    fn maybe_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.get(i)?)
    }
    fn maybe_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(i)?)
    }
}

/// A scene from a row of [`COLUMNS`].
pub(super) fn scene_from(row: &impl Columns) -> Result<Scene, StoreError> {
    let state = row.text(4)?;
    Ok(Scene {
        scene: row.text(0)?,
        owner: row.text(1)?,
        ticket: row.text(2)?,
        qr_url: row.text(3)?,
        state: SceneState::parse(&state)
            .ok_or_else(|| anyhow::anyhow!("unknown scene state `{state}`"))?,
        openid: row.maybe_text(5)?,
        user_id: row.maybe_int(6)?,
        lang: row.text(7)?,
        client_ip: row.maybe_text(8)?,
        user_agent: row.maybe_text(9)?,
        created_at: row.int(10)?,
        expires_at: row.int(11)?,
        updated_at: row.int(12)?,
    })
}

/// A scene by its scene string, in the writer's transaction (a callback).
pub(super) fn by_scene(
    conn: &rusqlite::Connection,
    scene: &str,
) -> Result<Option<Scene>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM login_scenes WHERE scene = ?"
    ))?;
    let mut rows = statement.query([scene])?;
    match rows.next()? {
        Some(row) => Ok(Some(scene_from(row)?)),
        None => Ok(None),
    }
}

/// Moves a scene on, making it live at least until `least_expiry`.
pub(super) const RESOLVE_SQL: &str = "UPDATE login_scenes SET state = ?, openid = ?, user_id = ?, \
    updated_at = ?, expires_at = MAX(expires_at, ?) WHERE scene = ?";

/// Writes a login history row. Parameters: user id, openid, outcome, client IP, user agent,
/// time.
pub(super) const RECORD_EVENT_SQL: &str = "INSERT INTO login_events \
    (user_id, openid, outcome, client_ip, user_agent, at) VALUES (?, ?, ?, ?, ?, ?)";

#[async_trait::async_trait]
impl Scenes for Sqlite {
    async fn current(&self, owner: &str) -> StoreResult<Option<Scene>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM login_scenes WHERE owner = ? \
             ORDER BY created_at DESC, rowid DESC LIMIT 1"
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
    ) -> StoreResult<Result<i64, i64>> {
        let key = key.to_owned();
        self.writer
            .run(move |conn| {
                let window_start = now - 3600;
                // The cap-th newest slot of this client within the hour, if there is one:
                // reading at most `cap` index entries, however many the client took. When it
                // leaves the window, the client is under the cap again.
                let capped_since: Option<i64> = conn
                    .prepare_cached(
                        "SELECT reserved_at FROM qr_quota WHERE client_key = ? AND reserved_at > ? \
                         ORDER BY reserved_at DESC LIMIT 1 OFFSET ?",
                    )?
                    .query_row(rusqlite::params![key, window_start, cap - 1], |row| {
                        row.get(0)
                    })
                    .optional()?;
                if let Some(since) = capped_since {
                    return Ok(Err((since - window_start).max(1)));
                }
                let slot = conn
                    .prepare_cached(
                        "INSERT INTO qr_quota (client_key, reserved_at) VALUES (?, ?) RETURNING id",
                    )?
                    .query_row(rusqlite::params![key, now], |row| row.get(0))?;
                Ok::<_, WriteError>(Ok(slot))
            })
            .await
            .map_err(StoreError::from)
    }

    async fn free_qr_slot(&self, slot: i64) -> StoreResult<()> {
        self.writer
            .run(move |conn| {
                conn.prepare_cached("DELETE FROM qr_quota WHERE id = ?")?
                    .execute([slot])?;
                Ok::<_, WriteError>(())
            })
            .await?;
        Ok(())
    }

    async fn insert(&self, scene: &Scene) -> StoreResult<()> {
        let s = scene.clone();
        self.writer
            .run(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO login_scenes (scene, owner, ticket, qr_url, state, lang, \
                     client_ip, user_agent, created_at, expires_at, updated_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )?
                .execute(rusqlite::params![
                    s.scene,
                    s.owner,
                    s.ticket,
                    s.qr_url,
                    s.state.as_str(),
                    s.lang,
                    s.client_ip,
                    s.user_agent,
                    s.created_at,
                    s.expires_at,
                    s.updated_at
                ])?;
                Ok::<_, WriteError>(())
            })
            .await?;
        Ok(())
    }

    async fn consume(&self, owner: &str, grace: i64, now: i64) -> StoreResult<Option<(i64, i64)>> {
        let user: Option<Option<i64>> = sqlx::query_scalar(
            "UPDATE login_scenes SET state = 'consumed', updated_at = ?1 \
             WHERE owner = ?2 AND state = 'authorized' AND updated_at > ?1 - ?3 \
               AND user_id IS NOT NULL \
             RETURNING user_id",
        )
        .bind(now)
        .bind(owner)
        .bind(grace)
        .fetch_optional(&self.db)
        .await?;
        let Some(Some(user_id)) = user else {
            return Ok(None);
        };
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE users SET last_login_at = ? WHERE id = ? RETURNING session_epoch",
        )
        .bind(now)
        .bind(user_id)
        .fetch_one(&self.db)
        .await?;
        Ok(Some((user_id, epoch)))
    }
}
