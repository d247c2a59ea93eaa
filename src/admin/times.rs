//! How the admin area shows times: China Standard Time, to the minute or second, and days.

use crate::ui::Lang;

/// The offset of the times shown: the admin area speaks China Standard Time (UTC+8, no DST).
pub(super) const UTC_OFFSET_SECONDS: i64 = 8 * 3600;

/// `2026-11-25 14:03` (UTC+8), or `never` for no time.
pub(super) fn format_time(lang: Lang, at: Option<i64>) -> String {
    match at {
        Some(at) => format_timestamp(at),
        None => lang.text().admin_never.to_owned(),
    }
}

/// `2026-11-25 14:03:07` (UTC+8).
pub(super) fn format_timestamp(at: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(at + UTC_OFFSET_SECONDS) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => at.to_string(),
    }
}

/// The day number (days since 1970-01-01 in UTC+8) of a time.
pub(super) fn local_day(at: i64) -> i64 {
    (at + UTC_OFFSET_SECONDS).div_euclid(86_400)
}

/// `11-25` for a [`local_day`].
pub(super) fn day_label(day: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(day * 86_400) {
        Ok(t) => format!("{:02}-{:02}", u8::from(t.month()), t.day()),
        Err(_) => day.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_china_standard_time() {
        // 2026-11-25 00:00:00 UTC is 08:00 in Beijing.
        assert_eq!(format_timestamp(1_795_564_800), "2026-11-25 08:00:00");
        assert_eq!(format_time(Lang::En, None), "never");
        assert_eq!(day_label(local_day(1_795_564_800 - 9 * 3600)), "11-24");
        assert_eq!(day_label(local_day(1_795_564_800 - 7 * 3600)), "11-25");
    }
}
