//! Phone binding: SMS codes, the sliding windows of their limits, and linking a WeChat to a
//! phone. Each unit of work is one transaction whose first statement is a write, so it holds
//! SQLite's write lock from the start and parallel requests are decided one after the other.

use sqlx::SqliteConnection;

use super::{
    Sqlite,
    scenes::{INSERT_SQL, RECORD_EVENT_SQL, RESOLVE_SQL},
};
use crate::store::{
    Binding, Blocked, CodeTry, Limit, LinkRequest, Linked, LoginMethod, NewCode, Outcome,
    PhoneLoggedIn, PhoneLogin, SceneState, SendLimits, StoreResult,
};

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

#[async_trait::async_trait]
impl Binding for Sqlite {
    async fn insert_code(
        &self,
        code: NewCode,
        limits: SendLimits,
    ) -> StoreResult<Result<i64, Blocked>> {
        // Insert first, then check the limits in the same transaction: the insert takes
        // SQLite's write lock, so parallel requests are checked one after the other and can't
        // all slip in.
        let mut tx = self.db.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sms_codes (scene, phone, code_hash, created_at, expires_at, client_ip) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
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
        // is still alive: of any number of parallel guesses, at most `max_attempts` get a row
        // back, so at most that many comparisons are ever made per code.
        let counted: Option<(i64, Vec<u8>, i64)> = sqlx::query_as(
            "UPDATE sms_codes SET attempts = attempts + 1 \
             WHERE id = (SELECT id FROM sms_codes WHERE scene = ? AND phone = ? \
                         ORDER BY created_at DESC, id DESC LIMIT 1) \
               AND used = 0 AND attempts < ? AND expires_at > ? \
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
            "SELECT EXISTS (SELECT 1 FROM sms_codes WHERE scene = ? AND phone = ?)",
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
    /// loser's transaction rolls back whole.
    async fn link(&self, link: LinkRequest) -> StoreResult<Linked> {
        let LinkRequest {
            scene,
            openid,
            phone,
            code_id,
            now: t,
        } = link;
        let mut tx = self.db.begin().await?;
        // Claim the code first: this write takes the lock, so everything below sees a settled
        // state.
        let claimed = claim_code(&mut tx, code_id).await?;
        let still_waiting = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM login_scenes WHERE scene = ? AND state = 'needs_bind' AND expires_at > ?",
        )
        .bind(&scene.scene)
        .bind(t)
        .fetch_one(&mut *tx)
        .await?;
        if !claimed || still_waiting != 1 {
            return Ok(Linked::Gone);
        }
        let existing: Option<(i64, Option<String>, bool)> =
            sqlx::query_as("SELECT id, openid, disabled FROM users WHERE phone = ?")
                .bind(&phone)
                .fetch_optional(&mut *tx)
                .await?;
        let written =
            match existing {
                None => sqlx::query_scalar::<_, i64>(
                    "INSERT INTO users (phone, openid, created_at, bound_at) VALUES (?, ?, ?, ?) \
                     RETURNING id",
                )
                .bind(&phone)
                .bind(&openid)
                .bind(t)
                .bind(t)
                .fetch_one(&mut *tx)
                .await,
                Some((_, _, true)) => return Ok(Linked::Disabled),
                Some((id, Some(bound), _)) if bound == openid => Ok(id),
                Some((_, Some(_), _)) => return Ok(Linked::PhoneTaken),
                Some((id, None, _)) => {
                    sqlx::query_scalar::<_, i64>(
                        "UPDATE users SET openid = ?, bound_at = ? WHERE id = ? AND openid IS NULL \
                     RETURNING id",
                    )
                    .bind(&openid)
                    .bind(t)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                }
            };
        let user_id = match written {
            Ok(id) => id,
            // users.openid is unique: this WeChat got bound elsewhere first.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Ok(Linked::WechatTaken);
            }
            Err(e) => return Err(e.into()),
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
        // Claim the code first: this write takes the lock, so everything below sees a settled
        // state, and of two parallel right answers one logs in.
        if !claim_code(&mut tx, code_id).await? {
            return Ok(PhoneLoggedIn::Refused);
        }
        let existing: Option<(i64, Option<String>, bool)> =
            sqlx::query_as("SELECT id, openid, disabled FROM users WHERE phone = ?")
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
                    "INSERT INTO users (phone, created_at) VALUES (?, ?) RETURNING id",
                )
                .bind(&phone)
                .bind(t)
                .fetch_one(&mut *tx)
                .await;
                match made {
                    Ok(id) => (id, None),
                    // The same phone logged in from another browser first: let this one try
                    // again rather than guess.
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        return Ok(PhoneLoggedIn::Refused);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            None => return Ok(PhoneLoggedIn::Refused),
        };
        sqlx::query(INSERT_SQL)
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
        sqlx::query("UPDATE users SET unionid = COALESCE(?, unionid) WHERE id = ?")
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

/// Marks code `code_id` used, once: false when it already was.
async fn claim_code(conn: &mut SqliteConnection, code_id: i64) -> sqlx::Result<bool> {
    let claimed = sqlx::query("UPDATE sms_codes SET used = 1 WHERE id = ? AND used = 0")
        .bind(code_id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(claimed == 1)
}

/// The limit that holds the longest for the new code `code` (row `except`, not counted).
async fn check(
    conn: &mut SqliteConnection,
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
    conn: &mut SqliteConnection,
    scene: &str,
    phone: &str,
    except: i64,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT MAX(created_at) FROM sms_codes WHERE (scene = ? OR phone = ?) AND id != ?",
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
    conn: &mut SqliteConnection,
    column: &'static str,
    value: &str,
    max: i64,
    window: i64,
    now: i64,
    except: i64,
) -> sqlx::Result<Option<i64>> {
    // `column` is one of two constants, never input.
    let sql = format!(
        "SELECT created_at FROM sms_codes WHERE {column} = ? AND created_at > ? AND id != ? \
         ORDER BY created_at DESC LIMIT 1 OFFSET ?"
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
