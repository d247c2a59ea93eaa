//! Login scenes and the per-client QR quota. New scenes go through the writer: under load, the
//! inserts of concurrent login pages share its transactions instead of taking turns at
//! SQLite's write lock. The quota counts a client's stored codes of the last hour plus the
//! ones being made at WeChat, under a lock of that client's (a second writer job per page, reserving a row
//! before asking WeChat, cost a quarter of the /login throughput: docs/benchmarks.md).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

use super::{Sqlite, WriteError};
use crate::store::{
    DecideRule, LoginMethod, OauthStart, QrSlot, Redeemed, Scene, SceneChange, SceneState, Scenes,
    StoreError, StoreResult,
};

/// The columns of a scene, in the order [`scene_from`] reads them.
pub(super) const COLUMNS: &str = "scene, owner, ticket, qr_url, state, openid, user_id, lang, \
    client_ip, user_agent, created_at, expires_at, updated_at, method";

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
        method: {
            let method = row.text(13)?;
            LoginMethod::parse(&method)
                .ok_or_else(|| anyhow::anyhow!("unknown login method `{method}`"))?
        },
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
/// time, method.
pub(super) const RECORD_EVENT_SQL: &str = "INSERT INTO login_events \
    (user_id, openid, outcome, client_ip, user_agent, at, method) VALUES (?, ?, ?, ?, ?, ?, ?)";

/// Inserts a scene. Parameters: scene, owner, ticket, QR URL, state, openid, user id, lang,
/// client IP, client key, user agent, created, expires, updated, method.
pub(super) const INSERT_SQL: &str = "INSERT INTO login_scenes (scene, owner, ticket, qr_url, \
    state, openid, user_id, lang, client_ip, client_key, user_agent, created_at, expires_at, \
    updated_at, method) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

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
    ) -> StoreResult<Result<QrSlot, i64>> {
        // This client's lock is held over the count and the increment: no other page of the
        // same client can count between them; other clients don't wait for it. A slot is given
        // back (its code stored, or abandoned) without the lock: the count of codes being made
        // is read before the database, and a stored code is counted there before it leaves
        // `making`, so a count can only come out too high for a moment, never too low.
        // Declared first, so dropped last: on every way out that hands out no slot (capped, an
        // error, the caller gone), an idle client is forgotten after `client` is dropped.
        let mut forget = ForgetIdle {
            making: &self.qr_making,
            key,
            armed: true,
        };
        let client = self.qr_making.client(key);
        let turn = client.turn.lock().await;
        let making = client.making.load(Ordering::SeqCst);
        if making >= cap {
            // They are all being stored now: an hour, unless WeChat fails some.
            return Ok(Err(3600));
        }
        let window_start = now - 3600;
        // The (cap - making)-th newest code of this client within the hour, if there is one:
        // reading at most `cap` index entries, however many codes the client made. When it
        // leaves the window, the client is under the cap again.
        let capped_since: Option<i64> = sqlx::query_scalar(
            "SELECT created_at FROM login_scenes WHERE client_key = ? AND created_at > ? \
             ORDER BY created_at DESC LIMIT 1 OFFSET ?",
        )
        .bind(key)
        .bind(window_start)
        .bind(cap - making - 1)
        .fetch_optional(&self.db)
        .await?;
        if let Some(since) = capped_since {
            return Ok(Err((since - window_start).max(1)));
        }
        client.making.fetch_add(1, Ordering::SeqCst);
        drop(turn);
        forget.armed = false;
        let (all, owned) = (self.qr_making.clone(), key.to_owned());
        Ok(Ok(QrSlot::new(key.to_owned(), move || {
            client.making.fetch_sub(1, Ordering::SeqCst);
            drop(client);
            all.forget_idle(&owned);
        })))
    }

    async fn insert(&self, scene: &Scene, slot: QrSlot) -> StoreResult<()> {
        let s = scene.clone();
        let key = slot.key().to_owned();
        let stored = self
            .writer
            .run(move |conn| {
                conn.prepare_cached(INSERT_SQL)?.execute(rusqlite::params![
                    s.scene,
                    s.owner,
                    s.ticket,
                    s.qr_url,
                    s.state.as_str(),
                    s.openid,
                    s.user_id,
                    s.lang,
                    s.client_ip,
                    key,
                    s.user_agent,
                    s.created_at,
                    s.expires_at,
                    s.updated_at,
                    s.method.as_str(),
                ])?;
                Ok::<_, WriteError>(())
            })
            .await;
        // Stored (and so counted by the database from now on) or not stored at all: either
        // way, the code is no longer one being made.
        drop(slot);
        stored?;
        Ok(())
    }

    async fn consume(&self, owner: &str, grace: i64, now: i64) -> StoreResult<Option<Redeemed>> {
        let user: Option<(Option<i64>, String)> = sqlx::query_as(
            "UPDATE login_scenes SET state = 'consumed', updated_at = ?1 \
             WHERE owner = ?2 AND state = 'authorized' AND updated_at > ?1 - ?3 \
               AND user_id IS NOT NULL \
             RETURNING user_id, method",
        )
        .bind(now)
        .bind(owner)
        .bind(grace)
        .fetch_optional(&self.db)
        .await?;
        let Some((Some(user_id), method)) = user else {
            return Ok(None);
        };
        let method = LoginMethod::parse(&method)
            .ok_or_else(|| anyhow::anyhow!("unknown login method `{method}`"))?;
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE users SET last_login_at = ? WHERE id = ? RETURNING session_epoch",
        )
        .bind(now)
        .bind(user_id)
        .fetch_one(&self.db)
        .await?;
        Ok(Some(Redeemed {
            user_id,
            epoch,
            method,
        }))
    }

    async fn start_oauth(&self, start: &OauthStart, cap: i64) -> StoreResult<Result<(), i64>> {
        // Insert first, then count in the same transaction: the insert takes SQLite's write
        // lock, so parallel starts are counted one after the other and can't all slip in.
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "INSERT INTO wechat_oauth_states (state, owner, client_key, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&start.state)
        .bind(&start.owner)
        .bind(&start.client_key)
        .bind(start.created_at)
        .bind(start.expires_at)
        .execute(&mut *tx)
        .await?;
        // An unknown address (no socket info) is not one client: don't lump them together.
        if !start.client_key.is_empty() {
            let window_start = start.created_at - 3600;
            let capped_since: Option<i64> = sqlx::query_scalar(
                "SELECT created_at FROM wechat_oauth_states \
                 WHERE client_key = ? AND created_at > ? \
                 ORDER BY created_at DESC LIMIT 1 OFFSET ?",
            )
            .bind(&start.client_key)
            .bind(window_start)
            .bind(cap)
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
             WHERE state = ? AND owner = ? AND expires_at > ?",
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
        self.writer
            // The writer runs each job in a savepoint of its transaction: all of it or nothing.
            .run(move |tx| {
                let openid = scene.openid.as_deref().unwrap_or("");
                let user: Option<(i64, bool)> = {
                    use rusqlite::OptionalExtension;
                    tx.prepare_cached("SELECT id, disabled FROM users WHERE openid = ?")?
                        .query_row([openid], |row| Ok((row.get(0)?, row.get(1)?)))
                        .optional()?
                };
                let change = decide(user, scene.created_at);
                tx.prepare_cached(INSERT_SQL)?.execute(rusqlite::params![
                    scene.scene,
                    scene.owner,
                    scene.ticket,
                    scene.qr_url,
                    change.state.as_str(),
                    openid,
                    change.user_id,
                    scene.lang,
                    scene.client_ip,
                    "",
                    scene.user_agent,
                    scene.created_at,
                    scene.expires_at.max(change.least_expiry),
                    scene.created_at,
                    scene.method.as_str(),
                ])?;
                tx.prepare_cached(RECORD_EVENT_SQL)?
                    .execute(rusqlite::params![
                        change.user_id,
                        openid,
                        change.outcome.as_str(),
                        scene.client_ip,
                        scene.user_agent,
                        scene.created_at,
                        scene.method.as_str(),
                    ])?;
                Ok::<_, StoreError>(change)
            })
            .await
    }
}

/// The new QR codes each client has being made at WeChat (reserved, not stored yet), with a
/// lock per client that takes its reservations in turn.
#[derive(Default)]
pub(super) struct Making {
    clients: std::sync::Mutex<HashMap<String, Arc<Client>>>,
}

/// One client's codes being made.
#[derive(Default)]
struct Client {
    /// Held over a reservation's count and increment.
    turn: tokio::sync::Mutex<()>,
    /// Codes reserved and not yet stored or given back.
    making: AtomicI64,
}

/// Forgets an idle client when dropped, unless disarmed.
struct ForgetIdle<'a> {
    making: &'a Making,
    key: &'a str,
    armed: bool,
}

impl Drop for ForgetIdle<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.making.forget_idle(self.key);
        }
    }
}

impl Making {
    /// Client `key`, made on first use.
    fn client(&self, key: &str) -> Arc<Client> {
        let mut clients = self.clients.lock().expect("QR quota lock");
        clients.entry(key.to_owned()).or_default().clone()
    }

    /// Forgets client `key` if it has nothing being made and nobody holds it.
    fn forget_idle(&self, key: &str) {
        let mut clients = self.clients.lock().expect("QR quota lock");
        if let Some(client) = clients.get(key)
            && Arc::strong_count(client) == 1
            && client.making.load(Ordering::SeqCst) <= 0
        {
            clients.remove(key);
        }
    }
}
