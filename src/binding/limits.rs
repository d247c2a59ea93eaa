//! The limits on sending codes: the resend cooldown per login and per phone, codes per phone
//! per hour and per day, codes per client IP per hour. Each is a sliding window over
//! `sms_codes.created_at`, and each blocked request learns the moment it clears.
//!
//! The check runs inside the transaction that has already inserted the new code (the insert
//! takes SQLite's write lock first), so two parallel requests can't both slip under a limit.

use sqlx::SqliteConnection;

use crate::{
    binding::{phone::Phone, sms::SmsLimits},
    ui::{Lang, fill},
};

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// Which limit holds a request back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A code was sent to this login or this phone less than the cooldown ago.
    Resend,
    /// Too many codes to this phone in the last hour.
    PhoneHour,
    /// Too many codes to this phone in the last 24 hours.
    PhoneDay,
    /// Too many codes from this client IP in the last hour.
    IpHour,
}

/// A refused send: which limit, and the Unix time from which a send would pass it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    pub limit: Limit,
    pub until: i64,
}

/// The limit that holds the longest for a new code to `phone` from `client_ip` in login
/// `scene` at `now`, if any. The row `except` (the new code itself) is not counted.
pub async fn check(
    conn: &mut SqliteConnection,
    limits: &SmsLimits,
    scene: &str,
    phone: &Phone,
    client_ip: &str,
    now: i64,
    except: i64,
) -> sqlx::Result<Option<Blocked>> {
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
        last_code(conn, scene, phone, except)
            .await?
            .map(|t| t + limits.resend_seconds),
    );
    hold(
        Limit::PhoneHour,
        window_until(
            conn,
            "phone",
            phone.e164(),
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
            phone.e164(),
            limits.per_phone_day,
            DAY,
            now,
            except,
        )
        .await?,
    );
    // An unknown address (no socket info) is not one client: don't lump them together.
    if !client_ip.is_empty() {
        hold(
            Limit::IpHour,
            window_until(
                conn,
                "client_ip",
                client_ip,
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

/// Seconds until the resend cooldown for this login or this phone ends (0: a code may go now).
pub async fn resend_wait(
    conn: &mut SqliteConnection,
    limits: &SmsLimits,
    scene: &str,
    phone: &Phone,
    now: i64,
) -> sqlx::Result<i64> {
    Ok(last_code(conn, scene, phone, 0)
        .await?
        .map(|t| (t + limits.resend_seconds - now).max(0))
        .unwrap_or(0))
}

/// When the newest code for this login or this phone was made.
async fn last_code(
    conn: &mut SqliteConnection,
    scene: &str,
    phone: &Phone,
    except: i64,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT MAX(created_at) FROM sms_codes WHERE (scene = ? OR phone = ?) AND id != ?",
    )
    .bind(scene)
    .bind(phone.e164())
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

/// China Standard Time (UTC+8, no daylight saving): the time the people this serves live by.
const CHINA: time::UtcOffset = match time::UtcOffset::from_hms(8, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("UTC+8 is a valid offset"),
};

/// "Try again after 14:05 China time (in about 23 min)" in the page's language, for a send
/// blocked by the hourly, daily or IP limit until `until`. The time is rounded up to the next
/// whole minute, so it is never too early.
pub fn retry_message(lang: Lang, blocked: Blocked, now: i64) -> String {
    let t = lang.text();
    let until = (blocked.until + 59) / 60 * 60;
    let at = time::OffsetDateTime::from_unix_timestamp(until)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(CHINA);
    let today = time::OffsetDateTime::from_unix_timestamp(now)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(CHINA)
        .date();
    let clock = format!("{:02}:{:02}", at.hour(), at.minute());
    let clock = if at.date() == today {
        clock
    } else {
        fill(t.sms_limit_tomorrow, &[&clock])
    };
    let minutes = ((blocked.until - now).max(1) + 59) / 60;
    let after = if minutes < 60 {
        fill(t.sms_limit_minutes, &[&minutes])
    } else {
        fill(t.sms_limit_hours, &[&(minutes / 60), &(minutes % 60)])
    };
    let template = match blocked.limit {
        Limit::IpHour => t.err_sms_limit_ip,
        _ => t.err_sms_limit_phone,
    };
    fill(template, &[&clock, &after])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_messages_give_a_china_time_and_a_duration() {
        // 2025-11-24 16:00:00 UTC is 2025-11-25 00:00 in Beijing.
        let now = 1_764_000_000;
        let blocked = |limit, after: i64| Blocked {
            limit,
            until: now + after,
        };
        assert_eq!(
            retry_message(Lang::Zh, blocked(Limit::PhoneHour, 23 * 60 - 10), now),
            "该手机号获取验证码次数过多，请在北京时间 00:23 后再试（约 23 分钟后）。"
        );
        assert_eq!(
            retry_message(Lang::En, blocked(Limit::IpHour, 90), now),
            "Too many codes were requested from this network. \
             Try again after 00:02 (China time), in about 2 min."
        );
        // At 23:59 in Beijing, a day limit ending at 03:00 ends tomorrow.
        let late = now - 60;
        assert_eq!(
            retry_message(Lang::En, blocked(Limit::PhoneDay, 3 * 3600), late),
            "Too many codes were sent to this number. \
             Try again after 03:00 tomorrow (China time), in about 3 h 1 min."
        );
        assert_eq!(
            retry_message(Lang::Zh, blocked(Limit::PhoneDay, 3 * 3600), late),
            "该手机号获取验证码次数过多，请在北京时间 明天 03:00 后再试（约 3 小时 1 分钟后）。"
        );
    }
}
