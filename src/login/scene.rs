//! Login scenes: one QR code each, their state machine, and their rows in SQLite.
//!
//! States: `pending -> {authorized | needs_bind | rejected}`, `needs_bind -> authorized` (after
//! the phone is bound), `authorized -> consumed` (once only). "Expired" is derived from the
//! clock, so a restart can't lose or resurrect anything. A scan resolves the person at once,
//! so there is no separate "scanned" state to wait in.

use sqlx::{FromRow, SqliteConnection, SqlitePool};

use crate::{
    client_info::ClientInfo,
    db::{now, random_hex},
    error::{AppError, AppResult},
    metrics::Metrics,
    state::AppState,
    ui::Lang,
};

/// A scene's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "snake_case")]
pub enum SceneState {
    /// Waiting for a scan.
    Pending,
    /// Scanned by a bound, enabled person: the browser may log in.
    Authorized,
    /// Scanned by someone with no phone bound yet.
    NeedsBind,
    /// Scanned by a disabled person.
    Rejected,
    /// Redeemed by its browser.
    Consumed,
}

impl SceneState {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            SceneState::Pending => "pending",
            SceneState::Authorized => "authorized",
            SceneState::NeedsBind => "needs_bind",
            SceneState::Rejected => "rejected",
            SceneState::Consumed => "consumed",
        }
    }
}

impl rusqlite::types::FromSql for SceneState {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        Ok(match value.as_str()? {
            "pending" => SceneState::Pending,
            "authorized" => SceneState::Authorized,
            "needs_bind" => SceneState::NeedsBind,
            "rejected" => SceneState::Rejected,
            "consumed" => SceneState::Consumed,
            _ => return Err(rusqlite::types::FromSqlError::InvalidType),
        })
    }
}

/// One login QR code.
#[derive(Debug, Clone, FromRow)]
pub struct Scene {
    /// The secret WeChat echoes in the scan event (160 random bits, hex).
    pub scene: String,
    /// The browser key of the session that created it.
    pub owner: String,
    /// WeChat's ticket for the QR code.
    pub ticket: String,
    /// What the QR code encodes.
    pub qr_url: String,
    /// Stored state.
    pub state: SceneState,
    /// Who scanned it.
    pub openid: Option<String>,
    /// Their user, when bound.
    pub user_id: Option<i64>,
    /// Page language of the browser that showed it (WeChat replies use it too).
    pub lang: String,
    /// Browser address.
    pub client_ip: Option<String>,
    /// Browser user agent.
    pub user_agent: Option<String>,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// The QR code dies at this time.
    pub expires_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// What the browser should see for a scene right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Show the QR code and wait.
    Waiting,
    /// Log in: go to `/login/complete`.
    Authorized,
    /// Bind a phone: go to `/bind`.
    NeedsBind,
    /// The person is disabled.
    Rejected,
    /// Dead: a new QR code is needed.
    Expired,
}

// An authorized scene stays redeemable this long after the scan, even if the QR code dies
// meanwhile, so a scan in the last second still logs in.
const REDEEM_GRACE_SECONDS: i64 = 120;
/// Time a first-time scanner has at least, from the scan, to bind a phone (an SMS code lives 5
/// minutes; this leaves room for one resend).
pub const BIND_WINDOW_SECONDS: i64 = 600;
// A reload reuses the live QR code unless it has less than this left (don't burn the
// 100,000-a-day creation quota on reloads).
const REUSE_MIN_SECONDS: i64 = 30;

const COLUMNS: &str = "scene, owner, ticket, qr_url, state, openid, user_id, lang, client_ip, \
                       user_agent, created_at, expires_at, updated_at";

impl Scene {
    /// The status at time `now`.
    pub fn status(&self, now: i64) -> Status {
        match self.state {
            SceneState::Consumed => Status::Expired,
            // Redeemable for a while after the scan, even past the QR code's death; after that
            // never, whatever the QR code's clock says (`consume` applies the same rule).
            SceneState::Authorized if now < self.updated_at + REDEEM_GRACE_SECONDS => {
                Status::Authorized
            }
            SceneState::Authorized => Status::Expired,
            _ if now >= self.expires_at => Status::Expired,
            SceneState::Pending => Status::Waiting,
            SceneState::NeedsBind => Status::NeedsBind,
            SceneState::Rejected => Status::Rejected,
        }
    }

    /// The page language of its browser.
    pub fn lang(&self) -> Lang {
        Lang::from_code(&self.lang)
    }
}

/// The newest scene of a browser.
pub async fn current(db: &SqlitePool, owner: &str) -> sqlx::Result<Option<Scene>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM login_scenes WHERE owner = ? ORDER BY created_at DESC, rowid DESC LIMIT 1"
    ))
    .bind(owner)
    .fetch_optional(db)
    .await
}

/// A scene by its scene string, in the callback writer's transaction.
pub fn by_scene(conn: &rusqlite::Connection, scene: &str) -> rusqlite::Result<Option<Scene>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM login_scenes WHERE scene = ?"
    ))?
    .query_row([scene], |row| {
        Ok(Scene {
            scene: row.get(0)?,
            owner: row.get(1)?,
            ticket: row.get(2)?,
            qr_url: row.get(3)?,
            state: row.get(4)?,
            openid: row.get(5)?,
            user_id: row.get(6)?,
            lang: row.get(7)?,
            client_ip: row.get(8)?,
            user_agent: row.get(9)?,
            created_at: row.get(10)?,
            expires_at: row.get(11)?,
            updated_at: row.get(12)?,
        })
    })
    .optional()
}

/// The browser's `current` scene if it is waiting with enough life left, else a new one (a new
/// QR code from WeChat).
pub async fn reuse_or_create(
    state: &AppState,
    current: Option<Scene>,
    owner: &str,
    lang: Lang,
    client: &ClientInfo,
) -> AppResult<Scene> {
    if let Some(scene) = current
        && scene.status(now()) == Status::Waiting
        && scene.expires_at - now() >= REUSE_MIN_SECONDS
    {
        return Ok(scene);
    }
    create(state, owner, lang, client).await
}

/// Asks WeChat for a new QR code and stores its scene.
pub async fn create(
    state: &AppState,
    owner: &str,
    lang: Lang,
    client: &ClientInfo,
) -> AppResult<Scene> {
    // Each code spends one of the account's 100,000 creations a day: a bot reloading the page
    // from one address must not burn them. The slot is taken before WeChat is asked, in one
    // step with the count, so parallel first visits can't all pass a count made before any of
    // them was stored; it is given back if WeChat fails.
    let cap = i64::from(state.settings.ops.qr_per_ip_per_hour);
    let key = client.limit_key.clone();
    let slot = state
        .writer
        .run(move |conn| reserve_qr_slot(conn, &key, cap, now()))
        .await?;
    let slot = match slot {
        Ok(slot) => slot,
        Err(retry_after) => {
            tracing::warn!(ip = %client.ip, cap, "new QR codes per IP capped");
            return Err(AppError::TooMany { retry_after });
        }
    };
    // 20 random bytes: 160 bits, 40 hex characters (WeChat allows scene_str up to 64).
    let scene = random_hex(20);
    let qr = match state
        .wechat
        .create_qr(&scene, state.settings.qr_expire_seconds)
        .await
    {
        Ok(qr) => qr,
        Err(e) => {
            Metrics::inc(&state.metrics.wechat_errors);
            tracing::warn!(errcode = ?e.errcode(), error = %e, "could not create a login QR code");
            // No code was made: the slot goes back, so WeChat's bad minute costs nobody quota.
            let freed = state
                .writer
                .run(move |conn| {
                    conn.prepare_cached("DELETE FROM qr_quota WHERE id = ?")?
                        .execute([slot])?;
                    Ok::<_, crate::db::WriteError>(())
                })
                .await;
            if let Err(e) = freed {
                tracing::error!(error = %e, "a QR quota slot could not be given back");
            }
            return Err(AppError::Unavailable(e.to_string()));
        }
    };
    Metrics::inc(&state.metrics.qr_created);
    let created_at = now();
    let lifetime = i64::from(qr.expire_seconds.min(state.settings.qr_expire_seconds));
    let row = Scene {
        scene,
        owner: owner.to_owned(),
        ticket: qr.ticket,
        qr_url: qr.url,
        state: SceneState::Pending,
        openid: None,
        user_id: None,
        lang: lang.code().to_owned(),
        client_ip: Some(client.ip.clone()),
        user_agent: Some(client.user_agent.clone()),
        created_at,
        expires_at: created_at + lifetime,
        updated_at: created_at,
    };
    // Through the writer: under load, inserts from concurrent pages share its transactions
    // instead of taking turns at SQLite's write lock from pool connections.
    let stored = row.clone();
    state
        .writer
        .run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO login_scenes (scene, owner, ticket, qr_url, state, lang, client_ip, \
                 user_agent, created_at, expires_at, updated_at) \
                 VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
            )?
            .execute(rusqlite::params![
                stored.scene,
                stored.owner,
                stored.ticket,
                stored.qr_url,
                stored.lang,
                stored.client_ip,
                stored.user_agent,
                stored.created_at,
                stored.expires_at,
                stored.updated_at
            ])?;
            Ok::<_, crate::db::WriteError>(())
        })
        .await?;
    Ok(row)
}

/// Takes one of the `cap` new-QR slots per hour of the client `key` at time `t`, in the writer's
/// transaction (so the count and the insert are one step). `Ok(slot id)`, or `Err(seconds)`
/// until the oldest slot counted leaves the hour.
fn reserve_qr_slot(
    conn: &rusqlite::Connection,
    key: &str,
    cap: i64,
    t: i64,
) -> Result<Result<i64, i64>, crate::db::WriteError> {
    use rusqlite::OptionalExtension;
    let window_start = t - 3600;
    // The cap-th newest slot of this client within the hour, if there is one: reading at most
    // `cap` index entries, however many the client took. When it leaves the window, the client
    // is under the cap again.
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
        .query_row(rusqlite::params![key, t], |row| row.get(0))?;
    Ok(Ok(slot))
}

/// Moves a scene to a new state after a scan (or a binding). A scene that now needs binding
/// lives at least [`BIND_WINDOW_SECONDS`] more, so a scan in the QR code's last seconds still
/// leaves time to type a phone number and an SMS code. Parameters: state, openid, user id,
/// now, least expiry ([`least_expiry`]), scene.
pub const RESOLVE_SQL: &str = "UPDATE login_scenes SET state = ?, openid = ?, user_id = ?, \
    updated_at = ?, expires_at = MAX(expires_at, ?) WHERE scene = ?";

/// The earliest a scene moved to `new_state` at time `t` may now expire (see [`RESOLVE_SQL`]).
pub fn least_expiry(new_state: SceneState, t: i64) -> i64 {
    if new_state == SceneState::NeedsBind {
        t + BIND_WINDOW_SECONDS
    } else {
        0
    }
}

/// [`RESOLVE_SQL`] in the caller's sqlx transaction (a binding).
pub async fn resolve(
    conn: &mut SqliteConnection,
    scene: &str,
    new_state: SceneState,
    openid: &str,
    user_id: Option<i64>,
) -> sqlx::Result<()> {
    let t = now();
    sqlx::query(RESOLVE_SQL)
        .bind(new_state)
        .bind(openid)
        .bind(user_id)
        .bind(t)
        .bind(least_expiry(new_state, t))
        .bind(scene)
        .execute(conn)
        .await?;
    Ok(())
}

/// What a scan (or a binding) came to, as `login_events` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The person may log in.
    LoggedIn,
    /// The person must bind a phone first.
    NeedsBind,
    /// The person is disabled.
    Disabled,
}

impl Outcome {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::LoggedIn => "logged_in",
            Outcome::NeedsBind => "needs_bind",
            Outcome::Disabled => "disabled",
        }
    }
}

/// Writes a login history row for a scan, with its login page's IP and user agent. Parameters:
/// user id, openid, outcome ([`Outcome::as_str`]), client IP, user agent, time.
pub const RECORD_EVENT_SQL: &str = "INSERT INTO login_events \
    (user_id, openid, outcome, client_ip, user_agent, at) VALUES (?, ?, ?, ?, ?, ?)";

/// [`RECORD_EVENT_SQL`] for a scan of `scene`, in the caller's sqlx transaction (a binding).
pub async fn record_event(
    conn: &mut SqliteConnection,
    scene: &Scene,
    user_id: Option<i64>,
    openid: &str,
    outcome: Outcome,
    at: i64,
) -> sqlx::Result<()> {
    sqlx::query(RECORD_EVENT_SQL)
        .bind(user_id)
        .bind(openid)
        .bind(outcome.as_str())
        .bind(&scene.client_ip)
        .bind(&scene.user_agent)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Redeems the browser's authorized scene: exactly once, and only by its owner. Returns the
/// user to log in and their session epoch.
pub async fn consume(db: &SqlitePool, owner: &str) -> sqlx::Result<Option<(i64, i64)>> {
    let t = now();
    let user: Option<Option<i64>> = sqlx::query_scalar(
        "UPDATE login_scenes SET state = 'consumed', updated_at = ?1 \
         WHERE owner = ?2 AND state = 'authorized' AND updated_at > ?1 - ?3 AND user_id IS NOT NULL \
         RETURNING user_id",
    )
    .bind(t)
    .bind(owner)
    .bind(REDEEM_GRACE_SECONDS)
    .fetch_optional(db)
    .await?;
    let Some(Some(user_id)) = user else {
        return Ok(None);
    };
    let epoch: i64 = sqlx::query_scalar(
        "UPDATE users SET last_login_at = ? WHERE id = ? RETURNING session_epoch",
    )
    .bind(t)
    .bind(user_id)
    .fetch_one(db)
    .await?;
    Ok(Some((user_id, epoch)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(state: SceneState, expires_at: i64, updated_at: i64) -> Scene {
        Scene {
            scene: "s".into(),
            owner: "o".into(),
            ticket: "t".into(),
            qr_url: "u".into(),
            state,
            openid: None,
            user_id: None,
            lang: "zh".into(),
            client_ip: None,
            user_agent: None,
            created_at: 0,
            expires_at,
            updated_at,
        }
    }

    #[test]
    fn states_read_back_as_written_and_unknown_ones_are_refused() {
        use rusqlite::types::{FromSql, ValueRef};
        for state in [
            SceneState::Pending,
            SceneState::Authorized,
            SceneState::NeedsBind,
            SceneState::Rejected,
            SceneState::Consumed,
        ] {
            let text = ValueRef::Text(state.as_str().as_bytes());
            assert_eq!(SceneState::column_result(text).unwrap(), state);
        }
        assert!(SceneState::column_result(ValueRef::Text(b"scanned")).is_err());
    }

    #[test]
    fn status_follows_state_and_clock() {
        assert_eq!(
            scene(SceneState::Pending, 100, 0).status(99),
            Status::Waiting
        );
        assert_eq!(
            scene(SceneState::Pending, 100, 0).status(100),
            Status::Expired
        );
        assert_eq!(
            scene(SceneState::NeedsBind, 100, 10).status(50),
            Status::NeedsBind
        );
        assert_eq!(
            scene(SceneState::NeedsBind, 100, 10).status(100),
            Status::Expired
        );
        assert_eq!(
            scene(SceneState::Rejected, 100, 10).status(50),
            Status::Rejected
        );
        assert_eq!(
            scene(SceneState::Consumed, 100, 10).status(50),
            Status::Expired
        );
        // A scan in the QR code's last second still logs in for a while.
        assert_eq!(
            scene(SceneState::Authorized, 100, 99).status(150),
            Status::Authorized
        );
        assert_eq!(
            scene(SceneState::Authorized, 100, 99).status(99 + 120),
            Status::Expired
        );
    }
}
