//! Login scenes: one QR code each, and their state machine.
//!
//! States: `pending -> {authorized | needs_bind | rejected}`, `needs_bind -> authorized` (after
//! the phone is bound), `authorized -> consumed` (once only). "Expired" is derived from the
//! clock, so a restart can't lose or resurrect anything. A scan resolves the person at once,
//! so there is no separate "scanned" state to wait in. The rules are plain functions here;
//! the store keeps the rows.

use crate::store::QrSlot;
pub use crate::store::{LoginMethod, Outcome, Redeemed, Scene, SceneChange, SceneState};

use crate::{
    client_info::ClientInfo,
    error::{AppError, AppResult},
    metrics::Metrics,
    state::AppState,
    ui::Lang,
    util::{now, random_hex},
};

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

/// How a scan at `now` by someone whose user is `user` (id, disabled) moves `scene` on:
/// `None` unless the scene is waiting, else as [`decide`] says.
pub fn scan_change(scene: &Scene, user: Option<(i64, bool)>, now: i64) -> Option<SceneChange> {
    (scene.status(now) == Status::Waiting).then(|| decide(user, now))
}

/// Where a login goes once WeChat has said who the person is (by a scan, or by web
/// authorization), `user` being the user with their openid (id, disabled): bound → logged in,
/// new → bind a phone, disabled → refused. A first-time person's login lives at least
/// [`BIND_WINDOW_SECONDS`] more, so one that began in the QR code's last seconds still leaves
/// time to type a phone number and an SMS code.
pub fn decide(user: Option<(i64, bool)>, now: i64) -> SceneChange {
    let (state, outcome, user_id) = match user {
        Some((id, true)) => (SceneState::Rejected, Outcome::Disabled, Some(id)),
        Some((id, false)) => (SceneState::Authorized, Outcome::LoggedIn, Some(id)),
        None => (SceneState::NeedsBind, Outcome::NeedsBind, None),
    };
    let least_expiry = if state == SceneState::NeedsBind {
        now + BIND_WINDOW_SECONDS
    } else {
        0
    };
    SceneChange {
        state,
        outcome,
        user_id,
        least_expiry,
    }
}

/// The newest scene of a browser.
pub async fn current(state: &AppState, owner: &str) -> AppResult<Option<Scene>> {
    Ok(state.store.scenes.current(owner).await?)
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
        && scene.method == LoginMethod::Scan
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
    let scenes = &state.store.scenes;
    let slot = match scenes
        .reserve_qr_slot(&client.limit_key, cap, now())
        .await?
    {
        Ok(slot) => slot,
        Err(retry_after) => {
            tracing::warn!(ip = %client.ip, cap, "new QR codes per IP capped");
            return Err(AppError::TooMany { retry_after });
        }
    };
    // A task of its own from here: once WeChat is asked, the code spends quota whether or not
    // the visitor waits for it, so a visitor who hangs up must not take the request (and the
    // slot) down with them before the code is stored and counted.
    let made = tokio::spawn(make_code(
        state.clone(),
        slot,
        owner.to_owned(),
        lang,
        client.clone(),
    ));
    made.await.map_err(|e| AppError::Internal(e.into()))?
}

/// Asks WeChat for the QR code of a new scene with the reserved `slot`, and stores it.
async fn make_code(
    state: AppState,
    slot: QrSlot,
    owner: String,
    lang: Lang,
    client: ClientInfo,
) -> AppResult<Scene> {
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
            state.store.scenes.give_back(slot).await;
            return Err(AppError::Unavailable(e.into()));
        }
    };
    Metrics::inc(&state.metrics.qr_created);
    let created_at = now();
    let lifetime = i64::from(qr.expire_seconds.min(state.settings.qr_expire_seconds));
    let row = Scene {
        scene,
        owner,
        ticket: qr.ticket,
        qr_url: qr.url,
        state: SceneState::Pending,
        openid: None,
        user_id: None,
        lang: lang.code().to_owned(),
        client_ip: Some(client.ip),
        user_agent: Some(client.user_agent),
        created_at,
        expires_at: created_at + lifetime,
        updated_at: created_at,
        method: LoginMethod::Scan,
    };
    state.store.scenes.insert(&row, slot).await?;
    Ok(row)
}

/// Redeems the browser's authorized scene: exactly once, and only by its owner. Returns the
/// user to log in and their session epoch.
pub async fn consume(state: &AppState, owner: &str) -> AppResult<Option<Redeemed>> {
    Ok(state
        .store
        .scenes
        .consume(owner, REDEEM_GRACE_SECONDS, now())
        .await?)
}

/// A scene for unit tests: in `state`, dying at `expires_at`, last changed at `updated_at`.
#[cfg(test)]
pub(crate) fn sample(state: SceneState, expires_at: i64, updated_at: i64) -> Scene {
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
        method: LoginMethod::Scan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(state: SceneState, expires_at: i64, updated_at: i64) -> Scene {
        sample(state, expires_at, updated_at)
    }

    #[test]
    fn states_read_back_as_written_and_unknown_ones_are_refused() {
        for state in SceneState::ALL {
            assert_eq!(SceneState::parse(state.as_str()), Some(state));
        }
        assert_eq!(SceneState::parse("scanned"), None);
    }

    #[test]
    fn a_scan_moves_a_waiting_scene_by_who_scanned() {
        let waiting = scene(SceneState::Pending, 1000, 0);
        assert_eq!(
            scan_change(&waiting, None, 10).map(|c| (c.state, c.outcome, c.least_expiry)),
            Some((
                SceneState::NeedsBind,
                Outcome::NeedsBind,
                10 + BIND_WINDOW_SECONDS
            ))
        );
        assert_eq!(
            scan_change(&waiting, Some((7, false)), 10).map(|c| (c.state, c.user_id)),
            Some((SceneState::Authorized, Some(7)))
        );
        assert_eq!(
            scan_change(&waiting, Some((7, true)), 10).map(|c| (c.state, c.outcome)),
            Some((SceneState::Rejected, Outcome::Disabled))
        );
        // Anything but a live, waiting scene stays as it is.
        assert_eq!(scan_change(&waiting, None, 1000), None);
        assert_eq!(
            scan_change(&scene(SceneState::Authorized, 1000, 5), None, 10),
            None
        );
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
