//! The `WXLOGIN_SMS_*` settings: the limits, and the chosen provider's credentials. Parsed here,
//! like every other setting, into the types of [`crate::sms`], which knows nothing of where
//! they came from.

use secrecy::SecretString;
use url::Url;

use super::{ConfigError, SmsProvider};
use crate::sms::{
    ALIYUN_ENDPOINT, AliyunSettings, Gateway, SmsLimits, SmsSettings, TENCENT_ENDPOINT,
    TencentSettings, WebhookSettings,
};

/// Reads the limits and the chosen provider's settings from `env` (empty values already count
/// as unset). A missing or malformed value is named; secrets are never echoed.
pub(super) fn sms(
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
        SmsProvider::Webhook => Gateway::Webhook(webhook(env)?),
        SmsProvider::Aliyun => Gateway::Aliyun(aliyun(env)?),
        SmsProvider::Tencent => Gateway::Tencent(tencent(env)?),
    };
    Ok(SmsSettings { gateway, limits })
}

/// The settings of WXLOGIN_SMS_PROVIDER=webhook.
pub(super) fn webhook(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<WebhookSettings, ConfigError> {
    const PROVIDER: &str = "webhook";
    required(env, "WXLOGIN_SMS_WEBHOOK_URL", PROVIDER)?;
    Ok(WebhookSettings {
        url: endpoint(env, "WXLOGIN_SMS_WEBHOOK_URL", "")?,
        secret: required_secret(
            env,
            "WXLOGIN_SMS_WEBHOOK_SECRET",
            PROVIDER,
            16,
            "the shared HMAC key",
        )?,
        template: identifier(
            "WXLOGIN_SMS_WEBHOOK_TEMPLATE",
            env("WXLOGIN_SMS_WEBHOOK_TEMPLATE")
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| "login_code".into()),
            64,
            |c| c.is_ascii_alphanumeric() || "_.-".contains(c),
            "1 to 64 letters, digits, `_`, `.` or `-`",
        )?,
    })
}

/// The settings of WXLOGIN_SMS_PROVIDER=aliyun.
pub(super) fn aliyun(env: &dyn Fn(&str) -> Option<String>) -> Result<AliyunSettings, ConfigError> {
    const PROVIDER: &str = "aliyun";
    Ok(AliyunSettings {
        access_key_id: identifier(
            "WXLOGIN_SMS_ALIYUN_ACCESS_KEY_ID",
            required(env, "WXLOGIN_SMS_ALIYUN_ACCESS_KEY_ID", PROVIDER)?,
            128,
            |c| c.is_ascii_alphanumeric(),
            "the AccessKey ID (letters and digits)",
        )?,
        access_key_secret: required_secret(
            env,
            "WXLOGIN_SMS_ALIYUN_ACCESS_KEY_SECRET",
            PROVIDER,
            16,
            "the AccessKey secret",
        )?,
        sign_name: identifier(
            "WXLOGIN_SMS_ALIYUN_SIGN_NAME",
            required(env, "WXLOGIN_SMS_ALIYUN_SIGN_NAME", PROVIDER)?,
            64,
            |c| !c.is_control(),
            "the approved signature name (签名), at most 64 characters",
        )?,
        template_code: identifier(
            "WXLOGIN_SMS_ALIYUN_TEMPLATE_CODE",
            required(env, "WXLOGIN_SMS_ALIYUN_TEMPLATE_CODE", PROVIDER)?,
            64,
            name_char,
            "a template code such as SMS_154950909",
        )?,
        template_param: identifier(
            "WXLOGIN_SMS_ALIYUN_TEMPLATE_PARAM",
            env("WXLOGIN_SMS_ALIYUN_TEMPLATE_PARAM")
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| "code".into()),
            64,
            name_char,
            "the template variable's name, e.g. code",
        )?,
        endpoint: endpoint(env, "WXLOGIN_SMS_ALIYUN_ENDPOINT", ALIYUN_ENDPOINT)?,
    })
}

/// The settings of WXLOGIN_SMS_PROVIDER=tencent.
pub(super) fn tencent(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TencentSettings, ConfigError> {
    const PROVIDER: &str = "tencent";
    let digits = |c: char| c.is_ascii_digit();
    Ok(TencentSettings {
        secret_id: identifier(
            "WXLOGIN_SMS_TENCENT_SECRET_ID",
            required(env, "WXLOGIN_SMS_TENCENT_SECRET_ID", PROVIDER)?,
            128,
            |c| c.is_ascii_alphanumeric(),
            "the SecretId (letters and digits, e.g. AKID...)",
        )?,
        secret_key: required_secret(
            env,
            "WXLOGIN_SMS_TENCENT_SECRET_KEY",
            PROVIDER,
            16,
            "the SecretKey",
        )?,
        sdk_app_id: identifier(
            "WXLOGIN_SMS_TENCENT_SDK_APP_ID",
            required(env, "WXLOGIN_SMS_TENCENT_SDK_APP_ID", PROVIDER)?,
            20,
            digits,
            "the SmsSdkAppId, digits only (e.g. 1400006666)",
        )?,
        sign_name: identifier(
            "WXLOGIN_SMS_TENCENT_SIGN_NAME",
            required(env, "WXLOGIN_SMS_TENCENT_SIGN_NAME", PROVIDER)?,
            64,
            |c| !c.is_control(),
            "the approved signature name (签名), at most 64 characters",
        )?,
        template_id: identifier(
            "WXLOGIN_SMS_TENCENT_TEMPLATE_ID",
            required(env, "WXLOGIN_SMS_TENCENT_TEMPLATE_ID", PROVIDER)?,
            20,
            digits,
            "the template ID, digits only",
        )?,
        region: identifier(
            "WXLOGIN_SMS_TENCENT_REGION",
            env("WXLOGIN_SMS_TENCENT_REGION")
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| "ap-guangzhou".into()),
            32,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
            "a region such as ap-guangzhou, ap-beijing or ap-nanjing",
        )?,
        endpoint: endpoint(env, "WXLOGIN_SMS_TENCENT_ENDPOINT", TENCENT_ENDPOINT)?,
    })
}

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

/// A letter, digit or `_` (template codes and parameter names).
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
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
        sms(provider, &move |k| map.get(k).cloned())
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
}
