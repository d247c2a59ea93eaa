//! SMS providers against local fake gateways: the request each sends (method, path, headers,
//! body, and a signature checked by an independent implementation of the vendor's scheme), a
//! whole binding through each, and gateway errors.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::IntoResponse,
};
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use url::Url;
use wxlogin::{
    config::{Settings, SmsProvider},
    phone::Phone,
    sms::{
        AliyunSettings, AliyunSms, Gateway, SmsSender, TencentSettings, TencentSms,
        WebhookSettings, WebhookSms,
    },
};

use crate::helpers::{TestApp, location, spawn_app_with};

/// One request the fake gateway got.
#[derive(Debug, Clone)]
struct Captured {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Captured {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

/// A gateway on 127.0.0.1:0 that records every request and answers `status` and `body`.
struct FakeGateway {
    url: Url,
    seen: Arc<Mutex<Vec<Captured>>>,
}

impl FakeGateway {
    async fn start(status: u16, body: &'static str) -> FakeGateway {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new().fallback({
            let seen = seen.clone();
            move |method: Method, uri: Uri, headers: HeaderMap, body_in: Bytes| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(Captured {
                        method,
                        uri,
                        headers,
                        body: body_in,
                    });
                    (
                        StatusCode::from_u16(status).unwrap(),
                        [("content-type", "application/json")],
                        body,
                    )
                        .into_response()
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeGateway { url, seen }
    }

    fn requests(&self) -> Vec<Captured> {
        self.seen.lock().unwrap().clone()
    }

    fn last(&self) -> Captured {
        self.requests().pop().expect("the gateway got a request")
    }
}

fn unix_now() -> i64 {
    wxlogin::util::now()
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

// ---------------------------------------------------------------------------------------------
// Independent checks of each scheme, written from the vendors' documents (not the app's code).

const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789";

/// X-Wxlogin-Signature = "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
fn webhook_signature_ok(req: &Captured) -> bool {
    let mut message = req.header("x-wxlogin-timestamp").as_bytes().to_vec();
    message.push(b'.');
    message.extend_from_slice(&req.body);
    let expected = format!(
        "sha256={}",
        hex::encode(hmac_sha256(WEBHOOK_SECRET.as_bytes(), &message))
    );
    req.header("x-wxlogin-signature") == expected
}

const ALIYUN_SECRET: &str = "aliyun-test-secret-0123456789";

fn rfc3986(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Signature = Base64(HMAC-SHA1(secret + "&", "POST&%2F&" + enc(sorted enc(k)=enc(v) joined by &))).
fn aliyun_signature_ok(params: &HashMap<String, String>) -> bool {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| *k != "Signature")
        .map(|(k, v)| (rfc3986(k), rfc3986(v)))
        .collect();
    pairs.sort();
    let canonical = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let string_to_sign = format!("POST&%2F&{}", rfc3986(&canonical));
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(format!("{ALIYUN_SECRET}&").as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    params.get("Signature") == Some(&expected)
}

const TENCENT_ID: &str = "AKIDwxloginTEST0123456789";
const TENCENT_KEY: &str = "tencent-test-key-0123456789";

/// Recomputes TC3-HMAC-SHA256 over what was received (the Host header as it arrived).
fn tencent_signature_ok(req: &Captured) -> bool {
    let timestamp: i64 = req.header("x-tc-timestamp").parse().unwrap();
    let date = time::OffsetDateTime::from_unix_timestamp(timestamp)
        .unwrap()
        .date();
    let date = format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    );
    let canonical = format!(
        "POST\n/\n\ncontent-type:{}\nhost:{}\nx-tc-action:{}\n\ncontent-type;host;x-tc-action\n{}",
        req.header("content-type").to_ascii_lowercase(),
        req.header("host").to_ascii_lowercase(),
        req.header("x-tc-action").to_ascii_lowercase(),
        hex::encode(Sha256::digest(&req.body))
    );
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{date}/sms/tc3_request\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac_sha256(format!("TC3{TENCENT_KEY}").as_bytes(), date.as_bytes());
    let k_service = hmac_sha256(&k_date, b"sms");
    let k_signing = hmac_sha256(&k_service, b"tc3_request");
    let signature = hex::encode(hmac_sha256(&k_signing, string_to_sign.as_bytes()));
    req.header("authorization")
        == format!(
            "TC3-HMAC-SHA256 Credential={TENCENT_ID}/{date}/sms/tc3_request, \
             SignedHeaders=content-type;host;x-tc-action, Signature={signature}"
        )
}

// ---------------------------------------------------------------------------------------------
// Settings for each provider, pointed at a fake gateway.

fn webhook_settings(url: Url) -> WebhookSettings {
    WebhookSettings {
        url: url.join("hooks/sms?token=t").unwrap(),
        secret: SecretString::from(WEBHOOK_SECRET.to_owned()),
        template: "login_code".into(),
    }
}

fn aliyun_settings(url: Url) -> AliyunSettings {
    AliyunSettings {
        access_key_id: "LTAItestkeyid".into(),
        access_key_secret: SecretString::from(ALIYUN_SECRET.to_owned()),
        sign_name: "阿里云短信测试".into(),
        template_code: "SMS_154950909".into(),
        template_param: "code".into(),
        endpoint: url,
    }
}

fn tencent_settings(url: Url) -> TencentSettings {
    TencentSettings {
        secret_id: TENCENT_ID.into(),
        secret_key: SecretString::from(TENCENT_KEY.to_owned()),
        sdk_app_id: "1400006666".into(),
        sign_name: "腾讯云".into(),
        template_id: "1110".into(),
        region: "ap-beijing".into(),
        endpoint: url,
    }
}

async fn app_with(provider: SmsProvider, gateway: Gateway) -> TestApp {
    spawn_app_with(move |s: &mut Settings| {
        s.sms_provider = provider;
        s.sms.gateway = gateway;
    })
    .await
}

/// Scans as `openid`, asks for a code for `phone`; returns the browser, its CSRF token and the
/// answer to POST /bind/code.
async fn ask_code(
    app: &TestApp,
    openid: &str,
    phone: &str,
) -> (reqwest::Client, String, reqwest::Response) {
    let (browser, csrf) = app.needs_binding(openid).await;
    let sent = app.send_code(&browser, &csrf, phone).await;
    (browser, csrf, sent)
}

async fn finish(app: &TestApp, browser: &reqwest::Client, csrf: &str, code: &str) {
    let verified = app.verify_code(browser, csrf, code).await;
    assert_eq!(location(&verified), "/login/complete");
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn webhook_posts_signed_json_and_the_code_binds() {
    let gateway = FakeGateway::start(204, "").await;
    let app = app_with(
        SmsProvider::Webhook,
        Gateway::Webhook(webhook_settings(gateway.url.clone())),
    )
    .await;

    let (browser, csrf, sent) = ask_code(&app, "o_webhook", "138 0013 8000").await;

    assert_eq!(location(&sent), "/bind");
    let req = gateway.last();
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.uri.path(), "/hooks/sms");
    assert_eq!(req.uri.query(), Some("token=t"));
    assert_eq!(req.header("content-type"), "application/json");
    let ts: i64 = req.header("x-wxlogin-timestamp").parse().unwrap();
    assert!((ts - unix_now()).abs() < 30);
    assert!(webhook_signature_ok(&req), "{req:?}");
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["phone"], "+8613800138000");
    assert_eq!(body["template"], "login_code");
    let code = body["code"].as_str().unwrap();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        body.as_object().unwrap().len(),
        3,
        "exactly phone, code, template"
    );
    assert_eq!(
        app.sms_code("13800138000").await,
        None,
        "nothing in the sandbox inbox"
    );

    finish(&app, &browser, &csrf, code).await;
}

#[tokio::test]
async fn webhook_errors_are_refusals_with_the_status() {
    let gateway = FakeGateway::start(502, "bad gateway").await;
    let sms = WebhookSms::new(webhook_settings(gateway.url.clone()));
    let phone = Phone::parse("13800138000").unwrap();

    let err = sms.send(&phone, "123456").await.unwrap_err();

    assert_eq!(err.gateway_code(), Some("HTTP 502"));
    let shown = err.to_string();
    for hidden in ["123456", "13800138000", WEBHOOK_SECRET, "token=t"] {
        assert!(!shown.contains(hidden), "{shown}");
    }
    // Unreachable: a transport error, without the URL (it may carry a token).
    let closed = Url::parse("http://127.0.0.1:9/hooks/sms?token=t").unwrap();
    let err = WebhookSms::new(WebhookSettings {
        url: closed,
        ..webhook_settings(gateway.url.clone())
    })
    .send(&phone, "123456")
    .await
    .unwrap_err();
    assert_eq!(err.gateway_code(), None);
    assert!(!err.to_string().contains("token=t"), "{err}");
}

#[tokio::test]
async fn aliyun_sends_a_signed_sendsms_and_the_code_binds() {
    let gateway = FakeGateway::start(
        200,
        r#"{"Message":"OK","RequestId":"F655A8D5-B967-440B-8683-DAD6FF8DE990","Code":"OK","BizId":"900619746936498440^0"}"#,
    )
    .await;
    let app = app_with(
        SmsProvider::Aliyun,
        Gateway::Aliyun(aliyun_settings(gateway.url.clone())),
    )
    .await;

    let (browser, csrf, sent) = ask_code(&app, "o_aliyun", "13800138001").await;

    assert_eq!(location(&sent), "/bind");
    let req = gateway.last();
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.uri.path(), "/");
    assert_eq!(
        req.uri.query(),
        None,
        "everything is in the body, nothing in the URL"
    );
    assert_eq!(
        req.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let params: HashMap<String, String> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    for (name, value) in [
        ("Action", "SendSms"),
        ("Version", "2017-05-25"),
        ("Format", "JSON"),
        ("RegionId", "cn-hangzhou"),
        ("AccessKeyId", "LTAItestkeyid"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("PhoneNumbers", "13800138001"),
        ("SignName", "阿里云短信测试"),
        ("TemplateCode", "SMS_154950909"),
    ] {
        assert_eq!(params.get(name).map(String::as_str), Some(value), "{name}");
    }
    let stamp = params["Timestamp"].clone();
    assert!(stamp.ends_with('Z') && stamp.len() == 20, "{stamp}");
    assert!(params["SignatureNonce"].len() >= 16);
    assert!(aliyun_signature_ok(&params), "{params:?}");
    let template: serde_json::Value = serde_json::from_str(&params["TemplateParam"]).unwrap();
    let code = template["code"].as_str().unwrap().to_owned();

    finish(&app, &browser, &csrf, &code).await;
}

#[tokio::test]
async fn aliyun_errors_carry_its_code_and_nonces_differ() {
    let gateway = FakeGateway::start(
        200,
        r#"{"Message":"触发号码天级流控Permits:10 13800138002","RequestId":"2184201F-BFB3-446B-B1F2-C746B7BF0657","Code":"isv.BUSINESS_LIMIT_CONTROL"}"#,
    )
    .await;
    let sms = AliyunSms::new(aliyun_settings(gateway.url.clone()));
    let phone = Phone::parse("13800138002").unwrap();

    let first = sms.send(&phone, "654321").await.unwrap_err();
    let _ = sms.send(&phone, "654321").await;

    assert_eq!(first.gateway_code(), Some("isv.BUSINESS_LIMIT_CONTROL"));
    let shown = first.to_string();
    assert!(
        shown.contains("2184201F"),
        "the RequestId helps support: {shown}"
    );
    for hidden in ["654321", "13800138002", ALIYUN_SECRET] {
        assert!(!shown.contains(hidden), "{shown}");
    }
    let nonces: Vec<String> = gateway
        .requests()
        .iter()
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .find(|(k, _)| k == "SignatureNonce")
                .unwrap()
                .1
                .into_owned()
        })
        .collect();
    assert_eq!(nonces.len(), 2);
    assert_ne!(nonces[0], nonces[1], "a fresh SignatureNonce per request");

    // A signature error comes back as HTTP 400 with the same shape.
    let gateway = FakeGateway::start(
        400,
        r#"{"Message":"Specified signature is not matched with our calculation.","RequestId":"x","Code":"SignatureDoesNotMatch"}"#,
    )
    .await;
    let err = AliyunSms::new(aliyun_settings(gateway.url.clone()))
        .send(&phone, "654321")
        .await
        .unwrap_err();
    assert_eq!(err.gateway_code(), Some("SignatureDoesNotMatch"));
}

#[tokio::test]
async fn tencent_sends_a_tc3_signed_sendsms_and_the_code_binds() {
    let gateway = FakeGateway::start(
        200,
        r#"{"Response":{"SendStatusSet":[{"SerialNo":"5000:1045710669157053657849499619","PhoneNumber":"+8613800138003","Fee":1,"SessionContext":"","Code":"Ok","Message":"send success","IsoCode":"CN"}],"RequestId":"a0aabda6-cf91-4f3e-a81f-9198114a2279"}}"#,
    )
    .await;
    let app = app_with(
        SmsProvider::Tencent,
        Gateway::Tencent(tencent_settings(gateway.url.clone())),
    )
    .await;

    let (browser, csrf, sent) = ask_code(&app, "o_tencent", "+86 138-0013-8003").await;

    assert_eq!(location(&sent), "/bind");
    let req = gateway.last();
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.uri.path(), "/");
    assert_eq!(
        req.header("content-type"),
        "application/json; charset=utf-8"
    );
    assert_eq!(req.header("x-tc-action"), "SendSms");
    assert_eq!(req.header("x-tc-version"), "2021-01-11");
    assert_eq!(req.header("x-tc-region"), "ap-beijing");
    let ts: i64 = req.header("x-tc-timestamp").parse().unwrap();
    assert!((ts - unix_now()).abs() < 30);
    assert!(tencent_signature_ok(&req), "{req:?}");
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body["PhoneNumberSet"],
        serde_json::json!(["+8613800138003"])
    );
    assert_eq!(body["SmsSdkAppId"], "1400006666");
    assert_eq!(body["SignName"], "腾讯云");
    assert_eq!(body["TemplateId"], "1110");
    let code = body["TemplateParamSet"][0].as_str().unwrap().to_owned();

    finish(&app, &browser, &csrf, &code).await;
}

#[tokio::test]
async fn tencent_errors_carry_its_code() {
    let phone = Phone::parse("13800138004").unwrap();
    for (answer, expected) in [
        (
            r#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"The provided credentials could not be validated."},"RequestId":"6e9f3b4c"}}"#,
            "AuthFailure.SignatureFailure",
        ),
        (
            r#"{"Response":{"SendStatusSet":[{"SerialNo":"","PhoneNumber":"+8613800138004","Fee":0,"SessionContext":"","Code":"LimitExceeded.PhoneNumberDailyLimit","Message":"the number of sms messages sent from a single mobile number every day exceeds the upper limit","IsoCode":"CN"}],"RequestId":"7a1b"}}"#,
            "LimitExceeded.PhoneNumberDailyLimit",
        ),
    ] {
        let gateway = FakeGateway::start(200, answer).await;
        let err = TencentSms::new(tencent_settings(gateway.url.clone()))
            .send(&phone, "111222")
            .await
            .unwrap_err();
        assert_eq!(err.gateway_code(), Some(expected));
        let shown = err.to_string();
        for hidden in ["111222", "13800138004", TENCENT_KEY] {
            assert!(!shown.contains(hidden), "{shown}");
        }
    }
}

#[tokio::test]
async fn a_gateway_error_asks_to_try_again_and_the_send_still_counts() {
    let gateway = FakeGateway::start(
        200,
        r#"{"Response":{"Error":{"Code":"FailedOperation.InsufficientBalanceInSmsPackage","Message":"insufficient balance"},"RequestId":"r"}}"#,
    )
    .await;
    let app = app_with(
        SmsProvider::Tencent,
        Gateway::Tencent(tencent_settings(gateway.url.clone())),
    )
    .await;

    let (browser, csrf, sent) = ask_code(&app, "o_broke", "13800138005").await;
    let sent = app.follow_to(&browser, sent, "/bind").await;

    assert_eq!(sent.status(), 503);
    let html = sent.text().await.unwrap();
    assert!(html.contains("验证码发送失败，请稍后再试"), "{html}");
    assert!(
        !html.contains("InsufficientBalance"),
        "the gateway's code is for the log"
    );
    // The gateway was reached: the code counts like a delivered one (it may have arrived)...
    assert_eq!(app.count("sms_codes").await, 1);
    assert!(
        html.contains(r#"id="verify-form""#),
        "a code that arrived can be entered"
    );
    // ...so the resend cooldown holds a second try back, without reaching the gateway.
    let again = app.send_code_page(&browser, &csrf, "13800138005").await;
    assert_eq!(again.status(), 429);
    assert_eq!(gateway.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_sends_to_a_failing_gateway_reach_it_only_as_often_as_the_limit_allows() {
    // A gateway that delivers and then reports failure would make SMS bombing free if failed
    // sends counted for nothing.
    let gateway = FakeGateway::start(500, "").await;
    let app = spawn_app_with(|s: &mut Settings| {
        s.sms_provider = SmsProvider::Webhook;
        s.sms.gateway = Gateway::Webhook(webhook_settings(gateway.url.clone()));
        s.sms.limits.resend_seconds = 0;
        s.sms.limits.per_phone_hour = 3;
    })
    .await;
    let mut browsers = Vec::new();
    for i in 0..12 {
        browsers.push(app.needs_binding(&format!("o_bomb_{i}")).await);
    }

    let app = &app;
    let sends = browsers.iter().map(|(browser, csrf)| async move {
        app.send_code_page(browser, csrf, "13800138006")
            .await
            .status()
    });
    let statuses = futures::future::join_all(sends).await;

    let with = |code: u16| statuses.iter().filter(|s| s.as_u16() == code).count();
    assert_eq!((with(503), with(429)), (3, 9), "{statuses:?}");
    assert_eq!(gateway.requests().len(), 3);
    assert_eq!(app.count("sms_codes").await, 3);
}

#[test]
fn choosing_a_provider_without_its_settings_stops_the_start() {
    let file = include_str!("../../Leptos.toml");
    let load = |vars: &[(&str, &str)]| {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_sources(file, &move |k| map.get(k).cloned())
    };
    let err = load(&[("WXLOGIN_SMS_PROVIDER", "tencent")]).unwrap_err();
    assert_eq!(err.name, "WXLOGIN_SMS_TENCENT_SECRET_ID");
    assert!(err.to_string().contains("missing"), "{err}");
    let err = load(&[("WXLOGIN_SMS_PROVIDER", "aliyun")]).unwrap_err();
    assert_eq!(err.name, "WXLOGIN_SMS_ALIYUN_ACCESS_KEY_ID");
    let err = load(&[
        ("WXLOGIN_SMS_PROVIDER", "webhook"),
        ("WXLOGIN_SMS_WEBHOOK_URL", "https://sms.example.com/"),
    ])
    .unwrap_err();
    assert_eq!(err.name, "WXLOGIN_SMS_WEBHOOK_SECRET");
    let err = load(&[("WXLOGIN_SMS_PROVIDER", "twilio")]).unwrap_err();
    assert_eq!(err.name, "WXLOGIN_SMS_PROVIDER");
    let s = load(&[
        ("WXLOGIN_SMS_PROVIDER", "webhook"),
        ("WXLOGIN_SMS_WEBHOOK_URL", "https://sms.example.com/"),
        ("WXLOGIN_SMS_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("WXLOGIN_SMS_RESEND_SECONDS", "3"),
    ])
    .unwrap();
    assert_eq!(s.sms_provider, SmsProvider::Webhook);
    assert!(matches!(s.sms.gateway, Gateway::Webhook(_)));
    assert_eq!(s.sms.limits.resend_seconds, 3);
}
