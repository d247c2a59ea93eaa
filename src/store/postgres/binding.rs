//! Phone binding: SMS codes, the sliding windows of their limits, linking a WeChat to a phone,
//! and SMS login. SQLite decides parallel requests one after the other by its single writer;
//! here several instances write at once, so each check-and-write is made atomic by what it
//! touches first: an advisory lock for the sends, a row lock (a conditional update) for a
//! code's tries and its claim, and the unique indexes on `users` for who gets a phone.

use sqlx::PgConnection;

use super::Postgres;
use crate::store::{
    Binding, Blocked, CodeTry, Limit, LinkRequest, Linked, LoginMethod, NewCode, Outcome,
    PhoneLoggedIn, PhoneLogin, SceneState, SendLimits, StoreError, StoreResult,
};

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// Advisory lock keys of this file (the first half of the two-key form).
mod lock {
    /// Held by the transaction storing a new SMS code, second key 0: one lock for every send.
    /// Sends are rare (a person waits a minute between two), so one queue costs nothing, and
    /// a single lock can't deadlock with another, whereas a lock per phone and per client
    /// would have to be taken in a fixed order.
    pub const SMS_SEND: i32 = 0x7778_0020;
}

/// Moves a scene on: state, openid, user id, time, a lower bound of the expiry, scene.
const RESOLVE_SQL: &str = "UPDATE login_scenes SET state = $1, openid = $2, user_id = $3, \
    updated_at = $4, expires_at = GREATEST(expires_at, $5) WHERE scene = $6";

/// Writes a login history row. Parameters: user id, openid, outcome, client IP, user agent,
/// time, method.
const RECORD_EVENT_SQL: &str = "INSERT INTO login_events \
    (user_id, openid, outcome, client_ip, user_agent, at, method) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// How often `link` reads the phone's user again after another browser changed it between
/// the read and the write (each time it saw a newly committed state, so twice is plenty).
const LINK_ROUNDS: usize = 3;

#[async_trait::async_trait]
impl Binding for Postgres {
    async fn insert_code(
        &self,
        code: NewCode,
        limits: SendLimits,
    ) -> StoreResult<Result<i64, Blocked>> {
        // The lock first, in a statement of its own: every statement after it reads a new
        // snapshot, which holds every send committed before the lock was ours. So parallel
        // sends, from any instance, are inserted and counted one after the other, as on
        // SQLite, and can't all slip in.
        let mut tx = self.db.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
            .bind(lock::SMS_SEND)
            .execute(&mut *tx)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sms_codes (scene, phone, code_hash, created_at, expires_at, client_ip) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&code.scene)
        .bind(&code.phone)
        .bind(&code.code_hash)
        .bind(code.created_at)
        .bind(code.expires_at)
        .bind(&code.client_key)
        .fetch_one(&mut *tx)
        .await?;
        let blocked = check(&mut tx, &limits, &code, id).await?;
        if let Some(blocked) = blocked {
            tx.rollback().await?;
            return Ok(Err(blocked));
        }
        tx.commit().await?;
        Ok(Ok(id))
    }

    async fn resend_wait(
        &self,
        scene: &str,
        phone: &str,
        resend_seconds: i64,
        now: i64,
    ) -> StoreResult<i64> {
        let mut conn = self.db.acquire().await?;
        Ok(last_code(&mut conn, scene, phone, 0)
            .await?
            .map(|t| (t + resend_seconds - now).max(0))
            .unwrap_or(0))
    }

    async fn count_try(
        &self,
        scene: &str,
        phone: &str,
        max_attempts: i64,
        now: i64,
    ) -> StoreResult<CodeTry> {
        // The try is counted before the comparison, in the same statement that checks the code
        // is still alive: parallel guesses queue on the row's lock and each checks `attempts`
        // again on the row the one before left, so of any number of them at most
        // `max_attempts` get a row back, and at most that many comparisons are ever made.
        let counted: Option<(i64, Vec<u8>, i64)> = sqlx::query_as(
            "UPDATE sms_codes SET attempts = attempts + 1 \
             WHERE id = (SELECT id FROM sms_codes WHERE scene = $1 AND phone = $2 \
                         ORDER BY created_at DESC, id DESC LIMIT 1) \
               AND NOT used AND attempts < $3 AND expires_at > $4 \
             RETURNING id, code_hash, attempts",
        )
        .bind(scene)
        .bind(phone)
        .bind(max_attempts)
        .bind(now)
        .fetch_optional(&self.db)
        .await?;
        if let Some((id, code_hash, attempts)) = counted {
            return Ok(CodeTry::Counted {
                id,
                code_hash,
                attempts,
            });
        }
        let sent: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sms_codes WHERE scene = $1 AND phone = $2)",
        )
        .bind(scene)
        .bind(phone)
        .fetch_one(&self.db)
        .await?;
        Ok(if sent { CodeTry::Dead } else { CodeTry::None })
    }

    /// A phone with no user gets a new user; a user without a WeChat gets this one; a user
    /// with another WeChat is refused. Of two racing browsers exactly one wins: the unique
    /// indexes on `users.phone` and `users.openid` and the conditional updates decide, and the
    /// loser's transaction rolls back whole. Where SQLite's single writer would have shown
    /// the loser the winner's row, the loser finds its write refused (an insert of a phone
    /// that now exists, an update of a user that now has a WeChat), reads the row again and
    /// decides on it as SQLite would have.
    async fn link(&self, link: LinkRequest) -> StoreResult<Linked> {
        let LinkRequest {
            scene,
            openid,
            phone,
            code_id,
            now: t,
        } = link;
        let mut tx = self.db.begin().await?;
        // Claim the code first: of two parallel right answers, one goes on.
        let claimed = claim_code(&mut tx, code_id).await?;
        // The scene's row stays locked to the end: nothing moves it on meanwhile.
        let still_waiting: Option<String> = sqlx::query_scalar(
            "SELECT scene FROM login_scenes \
             WHERE scene = $1 AND state = 'needs_bind' AND expires_at > $2 FOR UPDATE",
        )
        .bind(&scene.scene)
        .bind(t)
        .fetch_optional(&mut *tx)
        .await?;
        if !claimed || still_waiting.is_none() {
            return Ok(Linked::Gone);
        }
        let mut user_id = None;
        for _ in 0..LINK_ROUNDS {
            let existing: Option<(i64, Option<String>, bool)> =
                sqlx::query_as("SELECT id, openid, disabled FROM users WHERE phone = $1")
                    .bind(&phone)
                    .fetch_optional(&mut *tx)
                    .await?;
            // `Ok(None)`: another browser wrote this user since the read; read again.
            let written: sqlx::Result<Option<i64>> = match existing {
                // A conflict on the phone waits for the other insert and does nothing; one on
                // the openid is an error (below).
                None => {
                    sqlx::query_scalar(
                        "INSERT INTO users (phone, openid, created_at, bound_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (phone) DO NOTHING RETURNING id",
                    )
                    .bind(&phone)
                    .bind(&openid)
                    .bind(t)
                    .bind(t)
                    .fetch_optional(&mut *tx)
                    .await
                }
                Some((_, _, true)) => return Ok(Linked::Disabled),
                Some((id, Some(bound), _)) if bound == openid => Ok(Some(id)),
                Some((_, Some(_), _)) => return Ok(Linked::PhoneTaken),
                Some((id, None, _)) => {
                    sqlx::query_scalar(
                        "UPDATE users SET openid = $1, bound_at = $2 \
                         WHERE id = $3 AND openid IS NULL RETURNING id",
                    )
                    .bind(&openid)
                    .bind(t)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                }
            };
            match written {
                Ok(Some(id)) => {
                    user_id = Some(id);
                    break;
                }
                Ok(None) => continue,
                // users.openid is unique: this WeChat got bound elsewhere first. The error
                // aborted the transaction; dropping it rolls back.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Ok(Linked::WechatTaken);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let Some(user_id) = user_id else {
            return Err(StoreError(anyhow::anyhow!(
                "the user of the phone being bound kept changing; try again"
            )));
        };
        sqlx::query(RESOLVE_SQL)
            .bind(SceneState::Authorized.as_str())
            .bind(&openid)
            .bind(user_id)
            .bind(t)
            .bind(0_i64)
            .bind(&scene.scene)
            .execute(&mut *tx)
            .await?;
        sqlx::query(RECORD_EVENT_SQL)
            .bind(user_id)
            .bind(&openid)
            .bind(Outcome::LoggedIn.as_str())
            .bind(&scene.client_ip)
            .bind(&scene.user_agent)
            .bind(t)
            .bind(scene.method.as_str())
            .execute(&mut *tx)
            .await?;
        // The browser may wait on another instance: it hears of this on commit.
        super::notify(&mut tx, &self.instance, &scene.owner, true).await?;
        tx.commit().await?;
        Ok(Linked::Yes(user_id))
    }

    async fn phone_login(&self, login: PhoneLogin) -> StoreResult<PhoneLoggedIn> {
        let PhoneLogin {
            scene,
            phone,
            code_id,
            open,
        } = login;
        let t = scene.created_at;
        let mut tx = self.db.begin().await?;
        // Claim the code first: of two parallel right answers one logs in.
        if !claim_code(&mut tx, code_id).await? {
            return Ok(PhoneLoggedIn::Refused);
        }
        let existing: Option<(i64, Option<String>, bool)> =
            sqlx::query_as("SELECT id, openid, disabled FROM users WHERE phone = $1")
                .bind(&phone)
                .fetch_optional(&mut *tx)
                .await?;
        let record = |user_id: i64, openid: Option<String>, outcome: Outcome| {
            sqlx::query(RECORD_EVENT_SQL)
                .bind(user_id)
                .bind(openid.unwrap_or_default())
                .bind(outcome.as_str())
                .bind(scene.client_ip.clone())
                .bind(scene.user_agent.clone())
                .bind(t)
                .bind(LoginMethod::Sms.as_str())
        };
        let (user_id, openid) = match existing {
            Some((id, openid, true)) => {
                record(id, openid, Outcome::Disabled)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(PhoneLoggedIn::Disabled);
            }
            Some((id, openid, false)) => (id, openid),
            None if open => {
                let made = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO users (phone, created_at) VALUES ($1, $2) RETURNING id",
                )
                .bind(&phone)
                .bind(t)
                .fetch_one(&mut *tx)
                .await;
                match made {
                    Ok(id) => (id, None),
                    // The same phone logged in from another browser first: let this one try
                    // again rather than guess. The error aborted the transaction: dropping it
                    // rolls back, the code's claim with it.
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        return Ok(PhoneLoggedIn::Refused);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            None => return Ok(PhoneLoggedIn::Refused),
        };
        sqlx::query(super::scenes::INSERT_SQL)
            .bind(&scene.scene)
            .bind(&scene.owner)
            .bind(&scene.ticket)
            .bind(&scene.qr_url)
            .bind(SceneState::Authorized.as_str())
            .bind(&openid)
            .bind(user_id)
            .bind(&scene.lang)
            .bind(&scene.client_ip)
            .bind("")
            .bind(&scene.user_agent)
            .bind(t)
            .bind(scene.expires_at)
            .bind(t)
            .bind(LoginMethod::Sms.as_str())
            .execute(&mut *tx)
            .await?;
        record(user_id, openid, Outcome::LoggedIn)
            .execute(&mut *tx)
            .await?;
        // No notification: the browser that logged in is the one that redeems the scene.
        tx.commit().await?;
        Ok(PhoneLoggedIn::Yes(user_id))
    }

    async fn store_profile(
        &self,
        user_id: i64,
        openid: &str,
        unionid: Option<&str>,
        following: bool,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE users SET unionid = COALESCE($1, unionid) WHERE id = $2")
            .bind(unionid)
            .bind(user_id)
            .execute(&self.db)
            .await?;
        sqlx::query(super::users::SET_FOLLOWING_SQL)
            .bind(openid)
            .bind(following)
            .bind(now)
            .execute(&self.db)
            .await?;
        Ok(())
    }
}

/// Marks code `code_id` used, once: false when it already was. Parallel claims queue on the
/// row and the later ones find it used.
async fn claim_code(conn: &mut PgConnection, code_id: i64) -> sqlx::Result<bool> {
    let claimed = sqlx::query("UPDATE sms_codes SET used = TRUE WHERE id = $1 AND NOT used")
        .bind(code_id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(claimed == 1)
}

/// The limit that holds the longest for the new code `code` (row `except`, not counted).
async fn check(
    conn: &mut PgConnection,
    limits: &SendLimits,
    code: &NewCode,
    except: i64,
) -> sqlx::Result<Option<Blocked>> {
    let now = code.created_at;
    let mut blocked: Option<Blocked> = None;
    let mut hold = |limit: Limit, until: Option<i64>| {
        if let Some(until) = until.filter(|u| *u > now)
            && blocked.is_none_or(|b| until > b.until)
        {
            blocked = Some(Blocked { limit, until });
        }
    };
    hold(
        Limit::Resend,
        last_code(conn, &code.scene, &code.phone, except)
            .await?
            .map(|t| t + limits.resend_seconds),
    );
    hold(
        Limit::PhoneHour,
        window_until(
            conn,
            "phone",
            &code.phone,
            limits.per_phone_hour,
            HOUR,
            now,
            except,
        )
        .await?,
    );
    hold(
        Limit::PhoneDay,
        window_until(
            conn,
            "phone",
            &code.phone,
            limits.per_phone_day,
            DAY,
            now,
            except,
        )
        .await?,
    );
    // An unknown address (no socket info) is not one client: don't lump them together.
    if !code.client_key.is_empty() {
        hold(
            Limit::IpHour,
            window_until(
                conn,
                "client_ip",
                &code.client_key,
                limits.per_ip_hour,
                HOUR,
                now,
                except,
            )
            .await?,
        );
    }
    Ok(blocked)
}

/// When the newest code for this login or this phone was made (the row `except` aside).
async fn last_code(
    conn: &mut PgConnection,
    scene: &str,
    phone: &str,
    except: i64,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT MAX(created_at) FROM sms_codes WHERE (scene = $1 OR phone = $2) AND id <> $3",
    )
    .bind(scene)
    .bind(phone)
    .bind(except)
    .fetch_one(conn)
    .await
}

/// With `max` codes allowed per `window` seconds for `column = value`: `None` while fewer are
/// in the window, else the moment the oldest of the newest `max` leaves it.
async fn window_until(
    conn: &mut PgConnection,
    column: &'static str,
    value: &str,
    max: i64,
    window: i64,
    now: i64,
    except: i64,
) -> sqlx::Result<Option<i64>> {
    // `column` is one of two constants, never input. `max` is at least 1 (the settings'
    // range), so the offset is never negative, which PostgreSQL refuses.
    let sql = format!(
        "SELECT created_at FROM sms_codes WHERE {column} = $1 AND created_at > $2 AND id <> $3 \
         ORDER BY created_at DESC LIMIT 1 OFFSET $4"
    );
    let nth: Option<i64> = sqlx::query_scalar(&sql)
        .bind(value)
        .bind(now - window)
        .bind(except)
        .bind(max - 1)
        .fetch_optional(conn)
        .await?;
    Ok(nth.map(|t| t + window))
}
