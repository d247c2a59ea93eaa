//! Prometheus metrics: a handful of counters, one gauge and one histogram, kept in atomics and
//! written out in the text exposition format. Served on its own address (never the public one)
//! when `WXLOGIN_METRICS_ADDR` is set.

use std::{
    fmt::Write,
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
    time::Duration,
};

/// Upper bounds (seconds) of the callback latency histogram.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Everything wxlogin counts.
#[derive(Default)]
pub struct Metrics {
    /// Login QR codes created.
    pub qr_created: AtomicU64,
    /// Scans of login codes by first-follow (`subscribe`) or not (`SCAN`).
    pub scans_subscribe: AtomicU64,
    /// See [`Metrics::scans_subscribe`].
    pub scans_scan: AtomicU64,
    /// Logins completed.
    pub logins_ok: AtomicU64,
    /// Scans that needed a phone binding.
    pub logins_needs_bind: AtomicU64,
    /// Scans refused because the person is disabled.
    pub logins_disabled: AtomicU64,
    /// WeChat API calls that failed.
    pub wechat_errors: AtomicU64,
    /// SMS codes sent.
    pub sms_sent: AtomicU64,
    /// SMS codes refused (limits) or failed (gateway).
    pub sms_refused: AtomicU64,
    /// Login event streams open now.
    pub sse_open: AtomicI64,
    callback_buckets: [AtomicU64; BUCKETS.len()],
    callback_count: AtomicU64,
    callback_micros: AtomicU64,
}

impl Metrics {
    /// Records how long a callback took.
    pub fn observe_callback(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.callback_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.callback_count.fetch_add(1, Ordering::Relaxed);
        self.callback_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition format; `token_fetches` comes from the WeChat client.
    pub fn render(&self, token_fetches: u64) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::with_capacity(2048);
        let mut counter = |name: &str, help: &str, series: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in series {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        counter(
            "wxlogin_qr_codes_created_total",
            "Login QR codes created.",
            &[("", get(&self.qr_created))],
        );
        counter(
            "wxlogin_scans_total",
            "Scans of login QR codes, by event.",
            &[
                ("{kind=\"subscribe\"}", get(&self.scans_subscribe)),
                ("{kind=\"scan\"}", get(&self.scans_scan)),
            ],
        );
        counter(
            "wxlogin_logins_total",
            "Scans by outcome.",
            &[
                ("{outcome=\"logged_in\"}", get(&self.logins_ok)),
                ("{outcome=\"needs_bind\"}", get(&self.logins_needs_bind)),
                ("{outcome=\"disabled\"}", get(&self.logins_disabled)),
            ],
        );
        counter(
            "wxlogin_token_fetches_total",
            "Access tokens fetched from WeChat.",
            &[("", token_fetches)],
        );
        counter(
            "wxlogin_wechat_api_errors_total",
            "WeChat API calls that failed.",
            &[("", get(&self.wechat_errors))],
        );
        counter(
            "wxlogin_sms_total",
            "SMS codes, by result.",
            &[
                ("{result=\"sent\"}", get(&self.sms_sent)),
                ("{result=\"refused\"}", get(&self.sms_refused)),
            ],
        );
        let _ = writeln!(
            out,
            "# HELP wxlogin_sse_streams_open Login event streams open now.\n# TYPE wxlogin_sse_streams_open gauge\nwxlogin_sse_streams_open {}",
            self.sse_open.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP wxlogin_callback_duration_seconds Time to answer a WeChat callback.\n# TYPE wxlogin_callback_duration_seconds histogram"
        );
        for (bound, bucket) in BUCKETS.iter().zip(&self.callback_buckets) {
            let _ = writeln!(
                out,
                "wxlogin_callback_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                get(bucket)
            );
        }
        let count = get(&self.callback_count);
        let _ = writeln!(
            out,
            "wxlogin_callback_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "wxlogin_callback_duration_seconds_sum {}",
            get(&self.callback_micros) as f64 / 1e6
        );
        let _ = writeln!(out, "wxlogin_callback_duration_seconds_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_callback(Duration::from_micros(800));
        m.observe_callback(Duration::from_millis(30));
        let text = m.render(1);
        assert!(text.contains("wxlogin_callback_duration_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("wxlogin_callback_duration_seconds_bucket{le=\"0.05\"} 2"));
        assert!(text.contains("wxlogin_callback_duration_seconds_count 2"));
        assert!(text.contains("wxlogin_token_fetches_total 1"));
    }
}
