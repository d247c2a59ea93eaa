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

use url::Url;

use crate::phone::Phone;

pub use aliyun::{AliyunSettings, AliyunSms, DEFAULT_ENDPOINT as ALIYUN_ENDPOINT};
pub use console::ConsoleSms;
pub use tencent::{DEFAULT_ENDPOINT as TENCENT_ENDPOINT, TencentSettings, TencentSms};
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

    #[test]
    fn redact_hides_codes_and_numbers() {
        assert_eq!(
            redact("phone +8613812345678 code 123456 id 42"),
            "phone +*** code *** id 42"
        );
        assert_eq!(redact(&"x".repeat(300)).chars().count(), 201);
    }
}
