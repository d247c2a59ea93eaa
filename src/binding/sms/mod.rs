//! Sending SMS codes, and the limits on how many.
//!
//! Providers sit behind [`SmsSender`], chosen by `WXLOGIN_SMS_PROVIDER`:
//!
//! - `console` ([`ConsoleSms`]): prints codes on stdout and, in sandbox mode, fills the sandbox's
//!   SMS inbox. Development only: it delivers nothing.
//! - `webhook` ([`WebhookSms`]): POSTs `{phone, code, template}` as JSON to a URL of the site's
//!   choosing, signed with HMAC-SHA256, so any gateway can be plugged in.
//! - `aliyun` ([`AliyunSms`]): Alibaba Cloud SMS `SendSms`, RPC style, HMAC-SHA1 signature v1.
//! - `tencent` ([`TencentSms`]): Tencent Cloud SMS `SendSms`, API 3.0, TC3-HMAC-SHA256.
//!
//! Credentials come from the environment only and are held as [`SecretString`]s. A gateway's
//! refusal becomes an [`SmsError`] carrying the gateway's own error code for the log; the
//! person only ever sees "could not send the code, try again". Neither the code nor a secret is
//! ever part of an error.

mod aliyun;
mod console;
mod tencent;
mod webhook;

use std::{sync::Arc, time::Duration};

use secrecy::SecretString;
use url::Url;

use crate::{
    binding::phone::Phone,
    config::{ConfigError, SmsProvider},
};

pub use aliyun::{AliyunSettings, AliyunSms};
pub use console::ConsoleSms;
pub use tencent::{TencentSettings, TencentSms};
pub use webhook::{WebhookSettings, WebhookSms};

/// Signing primitives, public so that tests (and sites writing a webhook receiver in Rust) can
/// check requests against them.
pub mod signing {
    pub use super::aliyun::{
        percent_encode, sign as aliyun_sign, string_to_sign as aliyun_string_to_sign,
    };
    pub use super::tencent::{
        authorization as tc3_authorization, canonical_request as tc3_canonical_request,
        signature as tc3_signature, string_to_sign as tc3_string_to_sign,
    };
    pub use super::webhook::signature as webhook_signature;
}

/// Why a code could not be sent. Goes to the log; the person sees "try again". Never holds the
/// code, a secret, or a whole phone number.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The gateway answered and refused; `code` is its own error code (Tencent
    /// `Response.Error.Code` or `SendStatusSet[0].Code`, Aliyun `Code`, webhook `HTTP <status>`).
    #[error("{provider} refused the SMS: {code} ({detail}; request {request_id})")]
    Refused {
        provider: &'static str,
        code: String,
        detail: String,
        /// The gateway's request ID, for its support desk; `-` when none.
        request_id: String,
    },
    /// The gateway could not be reached, or its answer could not be read.
    #[error("{provider} unreachable or unreadable: {reason}")]
    Transport {
        provider: &'static str,
        reason: String,
    },
}

impl SmsError {
    /// A refusal with the gateway's code; `detail` is cleaned with [`redact`], and a request
    /// ID is kept only if it looks like one (hex digits, letters and dashes).
    pub fn refused(
        provider: &'static str,
        code: impl Into<String>,
        detail: &str,
        request_id: Option<&str>,
    ) -> SmsError {
        let request_id = request_id
            .filter(|id| {
                (1..=64).contains(&id.len())
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .unwrap_or("-");
        SmsError::Refused {
            provider,
            code: redact(&code.into()),
            detail: redact(detail),
            request_id: request_id.to_owned(),
        }
    }

    /// A transport failure; `reason` is cleaned with [`redact`].
    pub fn transport(provider: &'static str, reason: impl std::fmt::Display) -> SmsError {
        SmsError::Transport {
            provider,
            reason: redact(&reason.to_string()),
        }
    }

    /// The provider that failed.
    pub fn provider(&self) -> &'static str {
        match self {
            SmsError::Refused { provider, .. } | SmsError::Transport { provider, .. } => provider,
        }
    }

    /// The gateway's own error code, when it answered.
    pub fn gateway_code(&self) -> Option<&str> {
        match self {
            SmsError::Refused { code, .. } => Some(code),
            SmsError::Transport { .. } => None,
        }
    }
}

/// Reads a gateway's JSON answer, whatever its HTTP status (Alibaba and Tencent send errors as
/// JSON with 4xx/5xx too). Returns the status with it.
pub(crate) async fn json_answer(
    provider: &'static str,
    response: reqwest::Response,
) -> Result<(reqwest::StatusCode, serde_json::Value), SmsError> {
    let status = response.status();
    let answer = response.json().await.map_err(|_| {
        SmsError::transport(
            provider,
            format!("HTTP {}: the answer is not JSON", status.as_u16()),
        )
    })?;
    Ok((status, answer))
}

/// Text from a gateway made fit for a log line: runs of 6 or more digits (a code, a phone
/// number) become `***`, and it is cut to 200 characters.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(200));
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 6 {
            out.push_str("***");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    if out.chars().count() > 200 {
        out = out.chars().take(200).collect::<String>() + "…";
    }
    out
}

/// Something that delivers a login code to a phone.
#[async_trait::async_trait]
pub trait SmsSender: Send + Sync {
    /// Delivers `code` to `phone`.
    async fn send(&self, phone: &Phone, code: &str) -> Result<(), SmsError>;
}

/// How many codes may be sent and tried. Every number is configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsLimits {
    /// Seconds before another code for the same login or phone (`WXLOGIN_SMS_RESEND_SECONDS`).
    pub resend_seconds: i64,
    /// Codes per phone in any hour (`WXLOGIN_SMS_PER_PHONE_HOUR`).
    pub per_phone_hour: i64,
    /// Codes per phone in any 24 hours (`WXLOGIN_SMS_PER_PHONE_DAY`).
    pub per_phone_day: i64,
    /// Codes per client IP address in any hour (`WXLOGIN_SMS_PER_IP_HOUR`).
    pub per_ip_hour: i64,
    /// Wrong entries after which a code is dead (`WXLOGIN_SMS_MAX_ATTEMPTS`).
    pub max_attempts: i64,
}

impl SmsLimits {
    /// The send limits, as the store checks them.
    pub fn send(&self) -> crate::store::SendLimits {
        crate::store::SendLimits {
            resend_seconds: self.resend_seconds,
            per_phone_hour: self.per_phone_hour,
            per_phone_day: self.per_phone_day,
            per_ip_hour: self.per_ip_hour,
        }
    }
}

impl Default for SmsLimits {
    fn default() -> Self {
        SmsLimits {
            resend_seconds: 60,
            per_phone_hour: 5,
            per_phone_day: 10,
            per_ip_hour: 20,
            max_attempts: 5,
        }
    }
}

/// The provider's settings.
#[derive(Debug, Clone)]
pub enum Gateway {
    /// Stdout (and the sandbox inbox).
    Console,
    /// A signed JSON POST to the site's own endpoint.
    Webhook(WebhookSettings),
    /// Alibaba Cloud SMS.
    Aliyun(AliyunSettings),
    /// Tencent Cloud SMS.
    Tencent(TencentSettings),
}

/// Everything about SMS: who delivers, and the limits.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    /// The provider and its credentials.
    pub gateway: Gateway,
    /// Resend, hourly, daily, per-IP and attempt limits.
    pub limits: SmsLimits,
}

impl SmsSettings {
    /// Reads the limits and the chosen provider's settings from `env` (empty values already
    /// count as unset). A missing or malformed value is named; secrets are never echoed.
    pub fn from_env(
        provider: SmsProvider,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SmsSettings, ConfigError> {
        let defaults = SmsLimits::default();
        let limits = SmsLimits {
            resend_seconds: number(
                env,
                "WXLOGIN_SMS_RESEND_SECONDS",
                defaults.resend_seconds,
                1..=3600,
            )?,
            per_phone_hour: number(
                env,
                "WXLOGIN_SMS_PER_PHONE_HOUR",
                defaults.per_phone_hour,
                1..=1000,
            )?,
            per_phone_day: number(
                env,
                "WXLOGIN_SMS_PER_PHONE_DAY",
                defaults.per_phone_day,
                1..=10_000,
            )?,
            per_ip_hour: number(
                env,
                "WXLOGIN_SMS_PER_IP_HOUR",
                defaults.per_ip_hour,
                1..=1_000_000,
            )?,
            max_attempts: number(
                env,
                "WXLOGIN_SMS_MAX_ATTEMPTS",
                defaults.max_attempts,
                1..=20,
            )?,
        };
        let gateway = match provider {
            SmsProvider::Console => Gateway::Console,
            SmsProvider::Webhook => Gateway::Webhook(WebhookSettings::from_env(env)?),
            SmsProvider::Aliyun => Gateway::Aliyun(AliyunSettings::from_env(env)?),
            SmsProvider::Tencent => Gateway::Tencent(TencentSettings::from_env(env)?),
        };
        Ok(SmsSettings { gateway, limits })
    }
}

impl Default for SmsSettings {
    fn default() -> Self {
        SmsSettings {
            gateway: Gateway::Console,
            limits: SmsLimits::default(),
        }
    }
}

/// The sender for these settings. `sandbox_inbox` is the database in sandbox mode; only the
/// console sender uses it.
pub fn sender(
    settings: &SmsSettings,
    sandbox_inbox: Option<crate::store::Store>,
) -> Arc<dyn SmsSender> {
    match &settings.gateway {
        Gateway::Console => Arc::new(ConsoleSms { sandbox_inbox }),
        Gateway::Webhook(s) => Arc::new(WebhookSms::new(s.clone())),
        Gateway::Aliyun(s) => Arc::new(AliyunSms::new(s.clone())),
        Gateway::Tencent(s) => Arc::new(TencentSms::new(s.clone())),
    }
}

/// The HTTP client of the gateway senders: short timeouts (the person is waiting), and no
/// redirects (a code must not be re-posted to wherever a gateway points).
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("wxlogin/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

// ---------------------------------------------------------------------------------------------
// Settings helpers, in the style of `config.rs`.

fn config_error(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        problem: problem.into(),
    }
}

fn number(
    env: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ConfigError> {
    let Some(value) = env(name) else {
        return Ok(default);
    };
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            config_error(
                name,
                format!(
                    "`{value}` is not a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

/// A value the chosen provider needs.
fn required(
    env: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    provider: &str,
) -> Result<String, ConfigError> {
    env(name).map(|v| v.trim().to_owned()).ok_or_else(|| {
        config_error(
            name,
            format!("missing: required when WXLOGIN_SMS_PROVIDER={provider}"),
        )
    })
}

/// A secret the chosen provider needs: printable ASCII, at least `min` characters. Never echoed.
fn required_secret(
    env: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    provider: &str,
    min: usize,
    what: &str,
) -> Result<SecretString, ConfigError> {
    let value = required(env, name, provider)?;
    if value.len() >= min && value.len() <= 256 && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(SecretString::from(value))
    } else {
        Err(config_error(
            name,
            format!("must be {what}: at least {min} printable ASCII characters, no spaces"),
        ))
    }
}

/// A non-secret identifier: 1 to `max` characters from `allowed`.
fn identifier(
    name: &'static str,
    value: String,
    max: usize,
    allowed: fn(char) -> bool,
    what: &str,
) -> Result<String, ConfigError> {
    let len = value.chars().count();
    if (1..=max).contains(&len) && value.chars().all(allowed) {
        Ok(value)
    } else {
        Err(config_error(name, format!("must be {what}")))
    }
}

/// A gateway URL: http(s); plain http only to this machine (tests, a local relay), since the
/// request carries the code.
fn endpoint(
    env: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<Url, ConfigError> {
    let value = env(name).unwrap_or_else(|| default.to_owned());
    let url = Url::parse(value.trim())
        .map_err(|e| config_error(name, format!("`{value}` is not a URL ({e})")))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        _ if url.host().is_none() => Err(config_error(
            name,
            format!("`{value}` is not an http(s) URL"),
        )),
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(config_error(
            name,
            format!("`{value}` must be https (plain http only to 127.0.0.1 or localhost)"),
        )),
        _ => Err(config_error(
            name,
            format!("`{value}` is not an http(s) URL"),
        )),
    }
}

/// `Host` as the client sends it: the host, plus the port when it isn't the scheme's default.
fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Unix seconds as `YYYY-MM-DD` and `HH:MM:SS`, in UTC.
fn utc_parts(timestamp: i64) -> (String, String) {
    let t = time::OffsetDateTime::from_unix_timestamp(timestamp)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    (
        format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(provider: SmsProvider, vars: &[(&str, &str)]) -> Result<SmsSettings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SmsSettings::from_env(provider, &move |k| map.get(k).cloned())
    }

    #[test]
    fn limits_default_and_override() {
        let s = load(SmsProvider::Console, &[]).unwrap();
        assert_eq!(s.limits, SmsLimits::default());
        assert_eq!(
            (
                s.limits.resend_seconds,
                s.limits.per_phone_hour,
                s.limits.per_phone_day,
                s.limits.per_ip_hour,
                s.limits.max_attempts
            ),
            (60, 5, 10, 20, 5)
        );
        let s = load(
            SmsProvider::Console,
            &[
                ("WXLOGIN_SMS_RESEND_SECONDS", "3"),
                ("WXLOGIN_SMS_PER_PHONE_HOUR", "2"),
                ("WXLOGIN_SMS_PER_PHONE_DAY", "4"),
                ("WXLOGIN_SMS_PER_IP_HOUR", "100"),
                ("WXLOGIN_SMS_MAX_ATTEMPTS", "3"),
            ],
        )
        .unwrap();
        assert_eq!(
            s.limits,
            SmsLimits {
                resend_seconds: 3,
                per_phone_hour: 2,
                per_phone_day: 4,
                per_ip_hour: 100,
                max_attempts: 3
            }
        );
        for (name, bad) in [
            ("WXLOGIN_SMS_RESEND_SECONDS", "0"),
            ("WXLOGIN_SMS_PER_PHONE_HOUR", "five"),
            ("WXLOGIN_SMS_PER_PHONE_DAY", "-1"),
            ("WXLOGIN_SMS_PER_IP_HOUR", "1.5"),
            ("WXLOGIN_SMS_MAX_ATTEMPTS", "100"),
        ] {
            assert_eq!(
                load(SmsProvider::Console, &[(name, bad)]).unwrap_err().name,
                name
            );
        }
    }

    const WEBHOOK: &[(&str, &str)] = &[
        ("WXLOGIN_SMS_WEBHOOK_URL", "https://sms.example.com/send"),
        ("WXLOGIN_SMS_WEBHOOK_SECRET", "webhook-secret-0123456789"),
    ];
    const ALIYUN: &[(&str, &str)] = &[
        ("WXLOGIN_SMS_ALIYUN_ACCESS_KEY_ID", "LTAI5tTestKeyId"),
        (
            "WXLOGIN_SMS_ALIYUN_ACCESS_KEY_SECRET",
            "aliyun-secret-0123456789",
        ),
        ("WXLOGIN_SMS_ALIYUN_SIGN_NAME", "阿里云短信测试"),
        ("WXLOGIN_SMS_ALIYUN_TEMPLATE_CODE", "SMS_154950909"),
    ];
    const TENCENT: &[(&str, &str)] = &[
        (
            "WXLOGIN_SMS_TENCENT_SECRET_ID",
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        ),
        (
            "WXLOGIN_SMS_TENCENT_SECRET_KEY",
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        ),
        ("WXLOGIN_SMS_TENCENT_SDK_APP_ID", "1400006666"),
        ("WXLOGIN_SMS_TENCENT_SIGN_NAME", "腾讯云"),
        ("WXLOGIN_SMS_TENCENT_TEMPLATE_ID", "1110"),
    ];

    #[test]
    fn each_provider_names_what_is_missing() {
        for (provider, vars) in [
            (SmsProvider::Webhook, WEBHOOK),
            (SmsProvider::Aliyun, ALIYUN),
            (SmsProvider::Tencent, TENCENT),
        ] {
            assert!(load(provider, vars).is_ok(), "{provider:?}");
            for (missing, _) in vars {
                let rest: Vec<_> = vars.iter().copied().filter(|(k, _)| k != missing).collect();
                let err = load(provider, &rest).unwrap_err();
                assert_eq!(err.name, *missing);
                assert!(err.problem.contains("WXLOGIN_SMS_PROVIDER="), "{err}");
            }
        }
    }

    #[test]
    fn optional_settings_have_defaults() {
        let Gateway::Aliyun(a) = load(SmsProvider::Aliyun, ALIYUN).unwrap().gateway else {
            panic!()
        };
        assert_eq!(a.endpoint.as_str(), "https://dysmsapi.aliyuncs.com/");
        assert_eq!(a.template_param, "code");
        let Gateway::Tencent(t) = load(SmsProvider::Tencent, TENCENT).unwrap().gateway else {
            panic!()
        };
        assert_eq!(t.endpoint.as_str(), "https://sms.tencentcloudapi.com/");
        assert_eq!(t.region, "ap-guangzhou");
        let Gateway::Webhook(w) = load(SmsProvider::Webhook, WEBHOOK).unwrap().gateway else {
            panic!()
        };
        assert_eq!(w.template, "login_code");
    }

    #[test]
    fn malformed_values_are_named_and_secrets_not_echoed() {
        let with =
            |base: &[(&'static str, &'static str)], name: &'static str, value: &'static str| {
                let mut vars: Vec<_> = base.iter().copied().filter(|(k, _)| *k != name).collect();
                vars.push((name, value));
                vars
            };
        let cases = [
            (
                SmsProvider::Webhook,
                with(WEBHOOK, "WXLOGIN_SMS_WEBHOOK_SECRET", "short"),
            ),
            (
                SmsProvider::Webhook,
                with(
                    WEBHOOK,
                    "WXLOGIN_SMS_WEBHOOK_URL",
                    "http://sms.example.com/",
                ),
            ),
            (
                SmsProvider::Webhook,
                with(WEBHOOK, "WXLOGIN_SMS_WEBHOOK_URL", "ftp://sms.example.com/"),
            ),
            (
                SmsProvider::Aliyun,
                with(
                    ALIYUN,
                    "WXLOGIN_SMS_ALIYUN_ACCESS_KEY_SECRET",
                    "has space secret value",
                ),
            ),
            (
                SmsProvider::Aliyun,
                with(ALIYUN, "WXLOGIN_SMS_ALIYUN_ENDPOINT", "not a url"),
            ),
            (
                SmsProvider::Tencent,
                with(TENCENT, "WXLOGIN_SMS_TENCENT_SECRET_KEY", "tiny"),
            ),
            (
                SmsProvider::Tencent,
                with(TENCENT, "WXLOGIN_SMS_TENCENT_SDK_APP_ID", "14000x"),
            ),
            (
                SmsProvider::Tencent,
                with(TENCENT, "WXLOGIN_SMS_TENCENT_REGION", "mars-1; drop"),
            ),
        ];
        for (provider, vars) in cases {
            let (name, value) = *vars.last().unwrap();
            let err = load(provider, &vars).unwrap_err();
            assert_eq!(err.name, name, "{err}");
            if name.ends_with("SECRET") || name.ends_with("SECRET_KEY") {
                assert!(!err.to_string().contains(value), "{err}");
            }
        }
        // Plain http is fine to this machine (tests, a local relay).
        assert!(
            load(
                SmsProvider::Webhook,
                &with(WEBHOOK, "WXLOGIN_SMS_WEBHOOK_URL", "http://127.0.0.1:9/x")
            )
            .is_ok()
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        for (provider, vars) in [
            (SmsProvider::Webhook, WEBHOOK),
            (SmsProvider::Aliyun, ALIYUN),
            (SmsProvider::Tencent, TENCENT),
        ] {
            let shown = format!("{:?}", load(provider, vars).unwrap());
            for secret in [
                "webhook-secret-0123456789",
                "aliyun-secret-0123456789",
                "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            ] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
    }

    #[test]
    fn redact_hides_codes_and_numbers() {
        assert_eq!(
            redact("phone +8613812345678 code 123456 id 42"),
            "phone +*** code *** id 42"
        );
        assert_eq!(redact(&"x".repeat(300)).chars().count(), 201);
    }
}
