//! `webhook`: a signed JSON POST to the site's own endpoint, which forwards the code to any
//! gateway it likes.
//!
//! ```text
//! POST <WXLOGIN_SMS_WEBHOOK_URL>
//! Content-Type: application/json
//! X-Wxlogin-Timestamp: 1764000000
//! X-Wxlogin-Signature: sha256=<hex>
//!
//! {"phone":"+8613812345678","code":"123456","template":"login_code"}
//! ```
//!
//! `<hex>` is the lowercase hex HMAC-SHA256, keyed with the UTF-8 bytes of
//! `WXLOGIN_SMS_WEBHOOK_SECRET`, of the timestamp's decimal digits, one `.`, and the exact body
//! bytes. The receiver recomputes it over the raw body (before any JSON parsing), compares in
//! constant time, and refuses a timestamp more than 5 minutes from its clock, so a captured
//! request can't be replayed later. Any 2xx answer means sent; anything else is a failure,
//! logged as `HTTP <status>`.

use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde::Serialize;
use sha2::Sha256;
use url::Url;

use secrecy::ExposeSecret;

use super::{SmsError, SmsSender, http_client};
use crate::{phone::Phone, util::now};

const PROVIDER: &str = "webhook";

/// Where and how to POST codes.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `WXLOGIN_SMS_WEBHOOK_URL`: https, or http to this machine.
    pub url: Url,
    /// `WXLOGIN_SMS_WEBHOOK_SECRET`: the HMAC key, at least 16 characters.
    pub secret: SecretString,
    /// `WXLOGIN_SMS_WEBHOOK_TEMPLATE`: the `template` field, so the receiver can pick its text
    /// (default `login_code`).
    pub template: String,
}

/// The JSON body, in this field order.
#[derive(Serialize)]
struct Body<'a> {
    phone: &'a str,
    code: &'a str,
    template: &'a str,
}

/// `sha256=<hex>` of `timestamp.body` under `secret`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends codes through the site's webhook.
pub struct WebhookSms {
    settings: WebhookSettings,
    client: reqwest::Client,
}

impl WebhookSms {
    /// A sender with its own HTTP client.
    pub fn new(settings: WebhookSettings) -> Self {
        WebhookSms {
            settings,
            client: http_client(),
        }
    }
}

#[async_trait::async_trait]
impl SmsSender for WebhookSms {
    async fn send(&self, phone: &Phone, code: &str) -> Result<(), SmsError> {
        let body = serde_json::to_vec(&Body {
            phone: phone.e164(),
            code,
            template: &self.settings.template,
        })
        .map_err(|e| SmsError::transport(PROVIDER, e))?;
        let timestamp = now().to_string();
        let signature = signature(
            self.settings.secret.expose_secret().as_bytes(),
            &timestamp,
            &body,
        );
        let response = self
            .client
            .post(self.settings.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Wxlogin-Timestamp", &timestamp)
            .header("X-Wxlogin-Signature", signature)
            .body(body)
            .send()
            .await
            // The URL may carry a token of the site's: keep it out of the log.
            .map_err(|e| SmsError::transport(PROVIDER, e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(SmsError::refused(
                PROVIDER,
                format!("HTTP {}", status.as_u16()),
                status.canonical_reason().unwrap_or(""),
                None,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vector computed independently (Python `hmac.new(b"webhook-secret-0123456789",
    /// b'1764000000.{"phone":"+8613812345678","code":"123456","template":"login_code"}',
    /// hashlib.sha256).hexdigest()`), also printed in the README for receivers to test with.
    #[test]
    fn signature_matches_the_documented_vector() {
        let body = br#"{"phone":"+8613812345678","code":"123456","template":"login_code"}"#;
        assert_eq!(
            serde_json::to_vec(&Body {
                phone: "+8613812345678",
                code: "123456",
                template: "login_code"
            })
            .unwrap(),
            body
        );
        assert_eq!(
            signature(b"webhook-secret-0123456789", "1764000000", body),
            WEBHOOK_VECTOR
        );
        assert_ne!(
            signature(b"webhook-secret-0123456789", "1764000001", body),
            WEBHOOK_VECTOR,
            "the timestamp is part of the MAC"
        );
    }

    const WEBHOOK_VECTOR: &str =
        "sha256=7853ae134d70a56e89805edc8c8a295b5775bd90e9dfed6440eaee1714827c91";
}
