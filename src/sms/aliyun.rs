//! `aliyun`: Alibaba Cloud SMS (`dysmsapi.aliyuncs.com`), action `SendSms`, version
//! `2017-05-25`, RPC style with signature method HMAC-SHA1, version 1.0.
//!
//! Signing, as Alibaba Cloud documents it for RPC APIs:
//!
//! 1. Take every parameter except `Signature`, percent-encode names and values per RFC 3986
//!    (`A-Z a-z 0-9 - _ . ~` stay, everything else is `%XY` in upper case, space is `%20`),
//!    sort by name, join as `name=value` with `&`: the canonicalized query string.
//! 2. `StringToSign = Method + "&" + percentEncode("/") + "&" + percentEncode(canonicalized)`.
//! 3. `Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))`.
//!
//! The request is a POST with the parameters (and `Signature`) as a form body, so the code is
//! not in a URL that proxies might log. The answer is JSON; `"Code": "OK"` means accepted, any
//! other `Code` (e.g. `isv.BUSINESS_LIMIT_CONTROL`, `SignatureDoesNotMatch`) is logged.

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha1::Sha1;
use url::Url;

use secrecy::ExposeSecret;

use super::{SmsError, SmsSender, http_client, utc_parts};
use crate::{
    phone::Phone,
    util::{now, random_hex},
};

const PROVIDER: &str = "aliyun";
/// Where `SendSms` goes unless `WXLOGIN_SMS_ALIYUN_ENDPOINT` says otherwise.
pub const DEFAULT_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com/";

/// Alibaba Cloud SMS account and template.
#[derive(Debug, Clone)]
pub struct AliyunSettings {
    /// `WXLOGIN_SMS_ALIYUN_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `WXLOGIN_SMS_ALIYUN_ACCESS_KEY_SECRET`.
    pub access_key_secret: SecretString,
    /// `WXLOGIN_SMS_ALIYUN_SIGN_NAME`: the approved signature (签名), e.g. `阿里云短信测试`.
    pub sign_name: String,
    /// `WXLOGIN_SMS_ALIYUN_TEMPLATE_CODE`: the approved template, e.g. `SMS_154950909`.
    pub template_code: String,
    /// `WXLOGIN_SMS_ALIYUN_TEMPLATE_PARAM`: the template's variable for the code (default
    /// `code`, as in `您的验证码为：${code}`).
    pub template_param: String,
    /// `WXLOGIN_SMS_ALIYUN_ENDPOINT` (default `https://dysmsapi.aliyuncs.com/`).
    pub endpoint: Url,
}

/// RFC 3986 percent-encoding as Alibaba Cloud (and Tencent) want it: only `A-Z a-z 0-9 - _ . ~`
/// stay as they are; every other byte of the UTF-8 is `%XY`, upper-case hex.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonicalized query string: encoded, sorted by name, `&`-joined.
pub fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `Method&%2F&percentEncode(canonicalized query)`.
pub fn string_to_sign(method: &str, params: &[(&str, &str)]) -> String {
    format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    )
}

/// `Base64(HMAC-SHA1(secret + "&", string_to_sign))`.
pub fn sign(access_key_secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{access_key_secret}&").as_bytes())
        .expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Sends codes through Alibaba Cloud SMS.
pub struct AliyunSms {
    settings: AliyunSettings,
    client: reqwest::Client,
}

impl AliyunSms {
    /// A sender with its own HTTP client.
    pub fn new(settings: AliyunSettings) -> Self {
        AliyunSms {
            settings,
            client: http_client(),
        }
    }

    /// The signed form body for one `SendSms` at `timestamp` with `nonce`.
    fn body(&self, phone: &Phone, code: &str, timestamp: i64, nonce: &str) -> String {
        let s = &self.settings;
        let (date, time) = utc_parts(timestamp);
        let timestamp = format!("{date}T{time}Z");
        let template_param = serde_json::json!({ s.template_param.as_str(): code }).to_string();
        let params = [
            ("AccessKeyId", s.access_key_id.as_str()),
            ("Action", "SendSms"),
            ("Format", "JSON"),
            // Mainland numbers go without the country code.
            ("PhoneNumbers", phone.national()),
            ("RegionId", "cn-hangzhou"),
            ("SignName", s.sign_name.as_str()),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", nonce),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", s.template_code.as_str()),
            ("TemplateParam", template_param.as_str()),
            ("Timestamp", timestamp.as_str()),
            ("Version", "2017-05-25"),
        ];
        let signature = sign(
            s.access_key_secret.expose_secret(),
            &string_to_sign("POST", &params),
        );
        format!(
            "{}&Signature={}",
            canonical_query(&params),
            percent_encode(&signature)
        )
    }
}

#[async_trait::async_trait]
impl SmsSender for AliyunSms {
    async fn send(&self, phone: &Phone, code: &str) -> Result<(), SmsError> {
        let body = self.body(phone, code, now(), &random_hex(16));
        let response = self
            .client
            .post(self.settings.endpoint.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| SmsError::transport(PROVIDER, e.without_url()))?;
        let (status, answer) = super::json_answer(PROVIDER, response).await?;
        match answer["Code"].as_str() {
            Some("OK") if status.is_success() => Ok(()),
            Some(code) => Err(SmsError::refused(
                PROVIDER,
                code,
                &format!(
                    "HTTP {}, {}",
                    status.as_u16(),
                    answer["Message"].as_str().unwrap_or("")
                ),
                answer["RequestId"].as_str(),
            )),
            None => Err(SmsError::transport(
                PROVIDER,
                format!("HTTP {}: the answer has no Code", status.as_u16()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Alibaba Cloud SMS's signature documentation ("签名机制", SMS API
    /// reference: AccessKeyId `testId`, secret `testSecret`, `SendSms` to `15300000001` with
    /// sign name `阿里云短信测试专用`, template `SMS_71390007`), whose string to sign and
    /// signature `zJDF+Lrzhj/ThnlvIToysFRq6t4=` are given there.
    #[test]
    fn signs_the_documented_sendsms_example() {
        let params = [
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("AccessKeyId", "testId"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Format", "XML"),
            ("Action", "SendSms"),
            ("Version", "2017-05-25"),
            ("RegionId", "cn-hangzhou"),
            ("PhoneNumbers", "15300000001"),
            ("SignName", "阿里云短信测试专用"),
            ("TemplateParam", r#"{"customer":"test"}"#),
            ("TemplateCode", "SMS_71390007"),
            ("OutId", "123"),
        ];
        assert_eq!(
            canonical_query(&params),
            "AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123&PhoneNumbers=15300000001\
             &RegionId=cn-hangzhou&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95%E4%B8%93%E7%94%A8\
             &SignatureMethod=HMAC-SHA1&SignatureNonce=45e25e9b-0a6f-4070-8c85-2956eda1b466\
             &SignatureVersion=1.0&TemplateCode=SMS_71390007&TemplateParam=%7B%22customer%22%3A%22test%22%7D\
             &Timestamp=2017-07-12T02%3A42%3A19Z&Version=2017-05-25"
        );
        let sts = string_to_sign("GET", &params);
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123\
             %26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF\
             %25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1%25E6%25B5%258B%25E8%25AF\
             %2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce\
             %3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%26TemplateCode\
             %3DSMS_71390007%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D\
             %26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25"
        );
        assert_eq!(sign("testSecret", &sts), "zJDF+Lrzhj/ThnlvIToysFRq6t4=");
        assert_eq!(
            percent_encode("zJDF+Lrzhj/ThnlvIToysFRq6t4="),
            "zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D"
        );
    }

    #[test]
    fn percent_encoding_is_rfc3986() {
        assert_eq!(percent_encode("a b*~+/"), "a%20b%2A~%2B%2F");
        assert_eq!(percent_encode("验"), "%E9%AA%8C");
    }

    #[test]
    fn the_request_body_is_signed_over_post() {
        let sms = AliyunSms::new(AliyunSettings {
            access_key_id: "testId".into(),
            access_key_secret: SecretString::from("testSecret".to_owned()),
            sign_name: "阿里云短信测试".into(),
            template_code: "SMS_154950909".into(),
            template_param: "code".into(),
            endpoint: Url::parse(DEFAULT_ENDPOINT).unwrap(),
        });
        let phone = Phone::parse("13812345678").unwrap();
        let body = sms.body(&phone, "123456", 1_764_000_000, "nonce1");
        let (rest, signature) = body.rsplit_once("&Signature=").unwrap();
        assert!(rest.contains("PhoneNumbers=13812345678&"));
        assert!(rest.contains("TemplateParam=%7B%22code%22%3A%22123456%22%7D&"));
        assert!(rest.contains("Timestamp=2025-11-24T16%3A00%3A00Z&"));
        let params: Vec<(String, String)> = url::form_urlencoded::parse(rest.as_bytes())
            .into_owned()
            .collect();
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let expected = sign("testSecret", &string_to_sign("POST", &params));
        assert_eq!(signature, percent_encode(&expected));
    }
}
