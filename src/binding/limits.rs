//! The limits on sending codes, in words: the resend cooldown per login and per phone, codes
//! per phone per hour and per day, codes per client per hour. Each is a sliding window the
//! store checks in the transaction that inserts the new code; each blocked request learns the
//! moment it clears, and this module says it in the page's language.

pub use crate::store::{Blocked, Limit};
use crate::ui::{Lang, fill};

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
