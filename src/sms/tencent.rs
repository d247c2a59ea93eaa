//! `tencent`: Tencent Cloud SMS (`sms.tencentcloudapi.com`), action `SendSms`, version
//! `2021-01-11`, API 3.0 with signature method v3, TC3-HMAC-SHA256.
//!
//! Signing, as Tencent Cloud documents it ("签名方法 v3"):
//!
//! ```text
//! CanonicalRequest = Method \n "/" \n Query \n CanonicalHeaders \n SignedHeaders \n hex(sha256(body))
//!   CanonicalHeaders: "name:value\n" per signed header, names and values lower-cased and
//!   trimmed, sorted by name; SignedHeaders: the names joined by ";" (here
//!   content-type;host;x-tc-action). Query is empty for a POST.
//! StringToSign = "TC3-HMAC-SHA256" \n Timestamp \n Date/service/tc3_request \n hex(sha256(CanonicalRequest))
//!   Date is the UTC date of Timestamp (X-TC-Timestamp), not the local one.
//! SecretDate = HMAC-SHA256("TC3" + SecretKey, Date); SecretService = HMAC-SHA256(SecretDate, service);
//! SecretSigning = HMAC-SHA256(SecretService, "tc3_request");
//! Signature = hex(HMAC-SHA256(SecretSigning, StringToSign))
//! Authorization: TC3-HMAC-SHA256 Credential=SecretId/Date/service/tc3_request,
//!   SignedHeaders=..., Signature=...
//! ```
//!
//! The answer is always HTTP 200 with `{"Response": {...}}`: a failed call carries
//! `Response.Error.Code` (e.g. `AuthFailure.SignatureFailure`); an accepted call carries a
//! `SendStatusSet` whose entry for our number has `Code` `Ok`, or a per-number code such as
//! `LimitExceeded.PhoneNumberDailyLimit`.

use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use url::Url;

use secrecy::ExposeSecret;

use super::{SmsError, SmsSender, host_header, http_client, utc_parts};
use crate::{phone::Phone, util::now};

const PROVIDER: &str = "tencent";
/// Where `SendSms` goes unless `WXLOGIN_SMS_TENCENT_ENDPOINT` says otherwise.
pub const DEFAULT_ENDPOINT: &str = "https://sms.tencentcloudapi.com/";
const SERVICE: &str = "sms";
const ACTION: &str = "SendSms";
const VERSION: &str = "2021-01-11";
const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Tencent Cloud SMS account and template.
#[derive(Debug, Clone)]
pub struct TencentSettings {
    /// `WXLOGIN_SMS_TENCENT_SECRET_ID`.
    pub secret_id: String,
    /// `WXLOGIN_SMS_TENCENT_SECRET_KEY`.
    pub secret_key: SecretString,
    /// `WXLOGIN_SMS_TENCENT_SDK_APP_ID`: the SMS application, e.g. `1400006666`.
    pub sdk_app_id: String,
    /// `WXLOGIN_SMS_TENCENT_SIGN_NAME`: the approved signature (签名).
    pub sign_name: String,
    /// `WXLOGIN_SMS_TENCENT_TEMPLATE_ID`: the approved template, whose first variable `{1}` is
    /// the code.
    pub template_id: String,
    /// `WXLOGIN_SMS_TENCENT_REGION` (default `ap-guangzhou`).
    pub region: String,
    /// `WXLOGIN_SMS_TENCENT_ENDPOINT` (default `https://sms.tencentcloudapi.com/`).
    pub endpoint: Url,
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The canonical request and its SignedHeaders for `headers` (name, value) in any order.
pub fn canonical_request(
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> (String, String) {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let request = format!(
        "{method}\n/\n{query}\n{canonical_headers}\n{signed_headers}\n{}",
        sha256_hex(payload)
    );
    (request, signed_headers)
}

/// `TC3-HMAC-SHA256\nTimestamp\nDate/service/tc3_request\nhex(sha256(canonical))`.
pub fn string_to_sign(timestamp: i64, service: &str, canonical_request: &str) -> String {
    let (date, _) = utc_parts(timestamp);
    format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The hex signature of `string_to_sign` with the key derived for `date` and `service`.
pub fn signature(secret_key: &str, date: &str, service: &str, string_to_sign: &str) -> String {
    let secret_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date);
    let secret_service = hmac_sha256(&secret_date, service);
    let secret_signing = hmac_sha256(&secret_service, "tc3_request");
    hex::encode(hmac_sha256(&secret_signing, string_to_sign))
}

/// The `Authorization` header value.
pub fn authorization(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    timestamp: i64,
    canonical_request: &str,
    signed_headers: &str,
) -> String {
    let (date, _) = utc_parts(timestamp);
    let sts = string_to_sign(timestamp, service, canonical_request);
    let signature = signature(secret_key, &date, service, &sts);
    format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{date}/{service}/tc3_request, \
         SignedHeaders={signed_headers}, Signature={signature}"
    )
}

/// Sends codes through Tencent Cloud SMS.
pub struct TencentSms {
    settings: TencentSettings,
    client: reqwest::Client,
}

impl TencentSms {
    /// A sender with its own HTTP client.
    pub fn new(settings: TencentSettings) -> Self {
        TencentSms {
            settings,
            client: http_client(),
        }
    }

    /// The body and the `Authorization` header of one `SendSms` at `timestamp`.
    fn signed(&self, phone: &Phone, code: &str, timestamp: i64) -> (Vec<u8>, String) {
        let s = &self.settings;
        let body = serde_json::to_vec(&serde_json::json!({
            "PhoneNumberSet": [phone.e164()],
            "SmsSdkAppId": s.sdk_app_id,
            "SignName": s.sign_name,
            "TemplateId": s.template_id,
            "TemplateParamSet": [code],
        }))
        .expect("JSON of strings");
        let host = host_header(&s.endpoint);
        let (canonical, signed_headers) = canonical_request(
            "POST",
            "",
            &[
                ("content-type", CONTENT_TYPE),
                ("host", &host),
                ("x-tc-action", ACTION),
            ],
            &body,
        );
        let authorization = authorization(
            &s.secret_id,
            s.secret_key.expose_secret(),
            SERVICE,
            timestamp,
            &canonical,
            &signed_headers,
        );
        (body, authorization)
    }
}

#[async_trait::async_trait]
impl SmsSender for TencentSms {
    async fn send(&self, phone: &Phone, code: &str) -> Result<(), SmsError> {
        let timestamp = now();
        let (body, authorization) = self.signed(phone, code, timestamp);
        let response = self
            .client
            .post(self.settings.endpoint.clone())
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("X-TC-Action", ACTION)
            .header("X-TC-Timestamp", timestamp.to_string())
            .header("X-TC-Version", VERSION)
            .header("X-TC-Region", &self.settings.region)
            .body(body)
            .send()
            .await
            .map_err(|e| SmsError::transport(PROVIDER, e.without_url()))?;
        let (status, answer) = super::json_answer(PROVIDER, response).await?;
        let answer = &answer["Response"];
        let request_id = answer["RequestId"].as_str();
        if let Some(code) = answer["Error"]["Code"].as_str() {
            return Err(SmsError::refused(
                PROVIDER,
                code,
                answer["Error"]["Message"].as_str().unwrap_or(""),
                request_id,
            ));
        }
        match answer["SendStatusSet"][0]["Code"].as_str() {
            Some("Ok") if status.is_success() => Ok(()),
            Some(code) => Err(SmsError::refused(
                PROVIDER,
                code,
                &format!(
                    "HTTP {}, {}",
                    status.as_u16(),
                    answer["SendStatusSet"][0]["Message"].as_str().unwrap_or("")
                ),
                request_id,
            )),
            None => Err(SmsError::transport(
                PROVIDER,
                format!(
                    "HTTP {}: the answer has neither Error nor SendStatusSet",
                    status.as_u16()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Tencent Cloud's "签名方法 v3" (CVM `DescribeInstances`, POST, JSON
    /// body, `x-tc-action` signed, timestamp 1551113065). The document prints the SecretKey
    /// masked as `Gu5t9xGARNpq86cd98joQYCN3*******`, and its signature is exactly what that
    /// literal string gives.
    #[test]
    fn signs_the_documented_post_example() {
        let body = r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        assert_eq!(
            sha256_hex(body.as_bytes()),
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let (canonical, signed_headers) = canonical_request(
            "POST",
            "",
            &[
                ("Host", "cvm.tencentcloudapi.com"),
                ("Content-Type", "application/json; charset=utf-8"),
                ("X-TC-Action", "DescribeInstances"),
            ],
            body.as_bytes(),
        );
        assert_eq!(
            canonical,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\
             x-tc-action:describeinstances\n\ncontent-type;host;x-tc-action\n\
             35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(signed_headers, "content-type;host;x-tc-action");
        let sts = string_to_sign(1551113065, "cvm", &canonical);
        assert_eq!(
            sts,
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n\
             7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
        );
        assert_eq!(
            signature(
                "Gu5t9xGARNpq86cd98joQYCN3*******",
                "2019-02-25",
                "cvm",
                &sts
            ),
            "be4f67d323c78ab9acb7395e43c0dbcf822a9cfac32fea2449a7bc7726b770a3"
        );
        assert_eq!(
            authorization(
                "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******",
                "Gu5t9xGARNpq86cd98joQYCN3*******",
                "cvm",
                1551113065,
                &canonical,
                &signed_headers
            ),
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, \
             SignedHeaders=content-type;host;x-tc-action, \
             Signature=be4f67d323c78ab9acb7395e43c0dbcf822a9cfac32fea2449a7bc7726b770a3"
        );
    }

    /// The earlier revision of the same document: GET `Limit=10&Offset=0`, only content-type and
    /// host signed, SecretKey `Gu5t9xGARNpq86cd98joQYCN3EXAMPLE`, timestamp 1539084154.
    #[test]
    fn signs_the_documented_get_example() {
        let (canonical, signed_headers) = canonical_request(
            "GET",
            "Limit=10&Offset=0",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("host", "cvm.tencentcloudapi.com"),
            ],
            b"",
        );
        let sts = string_to_sign(1539084154, "cvm", &canonical);
        assert_eq!(
            sts,
            "TC3-HMAC-SHA256\n1539084154\n2018-10-09/cvm/tc3_request\n\
             91c9c192c14460df6c1ffc69e34e6c5e90708de2a6d282cccf957dbf1aa7f3a7"
        );
        assert_eq!(
            authorization(
                "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
                "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
                "cvm",
                1539084154,
                &canonical,
                &signed_headers
            ),
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2018-10-09/cvm/tc3_request, \
             SignedHeaders=content-type;host, \
             Signature=5da7a33f6993f0614b047e5df4582db9e9bf4672ba50567dba16c6ccf174c474"
        );
    }

    /// Beijing 00:44 on the 26th is still the 25th in UTC: the credential date must be UTC.
    #[test]
    fn the_credential_date_is_utc() {
        assert!(string_to_sign(1551113065, "sms", "x").contains("\n2019-02-25/sms/tc3_request\n"));
    }

    #[test]
    fn the_send_request_signs_the_host_it_is_sent_to() {
        let sms = TencentSms::new(TencentSettings {
            secret_id: "AKIDtest".into(),
            secret_key: SecretString::from("0123456789abcdef0123".to_owned()),
            sdk_app_id: "1400006666".into(),
            sign_name: "腾讯云".into(),
            template_id: "1110".into(),
            region: "ap-guangzhou".into(),
            endpoint: Url::parse("http://127.0.0.1:8080/").unwrap(),
        });
        let phone = Phone::parse("13812345678").unwrap();
        let (body, auth) = sms.signed(&phone, "123456", 1_764_000_000);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["PhoneNumberSet"][0], "+8613812345678");
        assert_eq!(json["TemplateParamSet"][0], "123456");
        let (canonical, signed) = canonical_request(
            "POST",
            "",
            &[
                ("content-type", CONTENT_TYPE),
                ("host", "127.0.0.1:8080"),
                ("x-tc-action", "SendSms"),
            ],
            &body,
        );
        assert_eq!(
            auth,
            authorization(
                "AKIDtest",
                "0123456789abcdef0123",
                "sms",
                1_764_000_000,
                &canonical,
                &signed
            )
        );
        assert!(auth.contains("Credential=AKIDtest/2025-11-24/sms/tc3_request"));
    }
}
