//! The hardened protocol: safe mode (encrypted callbacks), key rotation, replays, the shared
//! access token kept across restarts, and the API client's answers to WeChat's errcodes.

use std::time::Duration;

use serde_json::json;
use wxlogin::{
    config::expose,
    util::{now, random_hex},
    wechat::{crypto, crypto::AesKey, message, signature},
};

use crate::helpers::{TestApp, poll, spawn_app, spawn_app_with};

const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const OLD_KEY: &str = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut";

async fn safe_mode_app(keys: &[&str]) -> TestApp {
    let keys: Vec<AesKey> = keys.iter().map(|k| AesKey::parse(k).unwrap()).collect();
    spawn_app_with(move |s| s.wechat.aes_keys = keys).await
}

/// POSTs `inner_xml` encrypted with `key` (for `appid`), signed as WeChat signs safe mode.
async fn post_encrypted(
    app: &TestApp,
    key: &str,
    appid: &str,
    inner_xml: &str,
    tamper: bool,
) -> reqwest::Response {
    let key = AesKey::parse(key).unwrap();
    let mut encrypted = crypto::encrypt(&key, appid, inner_xml, *b"0123456789abcdef");
    let timestamp = now().to_string();
    let nonce = random_hex(6);
    let token = expose(&app.settings.wechat.token);
    let msg_signature = signature::sign(&[token, &timestamp, &nonce, &encrypted]);
    if tamper {
        encrypted = format!("A{}", &encrypted[1..]);
    }
    let body = format!(
        "<xml><ToUserName><![CDATA[gh]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    );
    post_safe_mode(app, &timestamp, &nonce, &msg_signature, body).await
}

/// POSTs `body` to `/wechat/callback` with safe mode's query: the plain signature over
/// `timestamp` and `nonce`, and the given `msg_signature`.
async fn post_safe_mode(
    app: &TestApp,
    timestamp: &str,
    nonce: &str,
    msg_signature: &str,
    body: String,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/wechat/callback"))
        .query(&[
            ("signature", app.sign(timestamp, nonce).as_str()),
            ("timestamp", timestamp),
            ("nonce", nonce),
            ("encrypt_type", "aes"),
            ("msg_signature", msg_signature),
        ])
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn state_of(app: &TestApp, ticket: &str) -> String {
    app.select_with("SELECT state FROM login_scenes WHERE ticket = ?", ticket)
        .await
}

#[tokio::test]
async fn safe_mode_runs_end_to_end_through_the_sandbox() {
    let app = safe_mode_app(&[KEY]).await;
    let browser = app.browser();
    let (page, mut events) = app.watch_login(&browser).await;

    // The sandbox encrypts the event and decrypts the reply, as WeChat does.
    let answer = app.scan(&page.ticket, "o_safe").await;

    assert!(
        answer["reply"].as_str().unwrap().contains("绑定手机号"),
        "{answer}"
    );
    let (_, redirect) = events
        .until("redirect", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(redirect.data, "/bind");
}

#[tokio::test]
async fn replies_in_safe_mode_are_encrypted_and_signed() {
    let app = safe_mode_app(&[KEY]).await;
    let (_browser, _, scene) = app.waiting_scene().await;
    let xml = app.scan_xml("o_enc", now(), true, &scene);

    let reply = post_encrypted(&app, KEY, &app.settings.wechat.appid, &xml, false)
        .await
        .text()
        .await
        .unwrap();

    assert!(
        reply.contains("<Encrypt>") && reply.contains("<MsgSignature>"),
        "{reply}"
    );
    assert!(!reply.contains("绑定"), "no plaintext in the reply");
    let inner = crypto::decrypt_reply(
        &AesKey::parse(KEY).unwrap(),
        expose(&app.settings.wechat.token),
        &app.settings.wechat.appid,
        &reply,
    )
    .unwrap();
    assert!(
        message::parse_text_reply(&inner)
            .unwrap()
            .content
            .contains("绑定手机号")
    );
}

#[tokio::test]
async fn in_safe_mode_plaintext_tampered_and_foreign_deliveries_change_nothing() {
    let app = safe_mode_app(&[KEY]).await;
    let (_browser, page, scene) = app.waiting_scene().await;
    let xml = app.scan_xml("o_evil", now(), true, &scene);

    assert_eq!(app.post_callback(&xml).await.status(), 403, "plaintext");
    assert_eq!(
        post_encrypted(&app, KEY, &app.settings.wechat.appid, &xml, true)
            .await
            .status(),
        403,
        "tampered"
    );
    assert_eq!(
        post_encrypted(&app, KEY, "wx0000000000000000", &xml, false)
            .await
            .status(),
        403,
        "other appid"
    );
    assert_eq!(
        post_encrypted(&app, OLD_KEY, &app.settings.wechat.appid, &xml, false)
            .await
            .status(),
        403,
        "unknown key"
    );

    assert_eq!(state_of(&app, &page.ticket).await, "pending");
    assert_eq!(app.count("callback_deliveries").await, 0);
}

#[tokio::test]
async fn during_a_key_rotation_the_previous_key_still_works() {
    let app = safe_mode_app(&[KEY, OLD_KEY]).await;
    let (_browser, page, scene) = app.waiting_scene().await;
    let xml = app.scan_xml("o_rot", now(), true, &scene);

    let response = post_encrypted(&app, OLD_KEY, &app.settings.wechat.appid, &xml, false).await;

    assert_eq!(response.status(), 200);
    assert_eq!(state_of(&app, &page.ticket).await, "needs_bind");
}

#[tokio::test]
async fn compatible_mode_uses_the_encrypted_copy() {
    let app = safe_mode_app(&[KEY]).await;
    let (_browser, page, scene) = app.waiting_scene().await;
    let real = app.scan_xml("o_compat", now(), true, &scene);
    let key = AesKey::parse(KEY).unwrap();
    let encrypted = crypto::encrypt(
        &key,
        &app.settings.wechat.appid,
        &real,
        *b"fedcba9876543210",
    );
    // Compatible mode: plaintext fields and the Encrypt element side by side.
    let body = real.replace(
        "</xml>",
        &format!("<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"),
    );
    let timestamp = now().to_string();
    let token = expose(&app.settings.wechat.token);
    let msg_signature = signature::sign(&[token, &timestamp, "n", &encrypted]);
    let response = post_safe_mode(&app, &timestamp, "n", &msg_signature, body).await;

    assert_eq!(response.status(), 200);
    assert_eq!(state_of(&app, &page.ticket).await, "needs_bind");
}

#[tokio::test]
async fn an_exact_replay_of_a_signed_request_has_no_second_effect() {
    let app = spawn_app().await;
    let first_page = app.open_login(&app.browser()).await;
    let second_page = app.open_login(&app.browser()).await;
    let first = app.scan_xml(
        "o_replay",
        now(),
        true,
        &app.scene_of(&first_page.ticket).await,
    );
    let second = app.scan_xml(
        "o_replay",
        now() + 5,
        false,
        &app.scene_of(&second_page.ticket).await,
    );
    let timestamp = now().to_string();
    let signature = app.sign(&timestamp, "nonce1");

    let original = app
        .post_callback_with(&first, &signature, &timestamp, "nonce1")
        .await
        .text()
        .await
        .unwrap();
    // A captured query reused with another body: the plaintext signature doesn't cover bodies.
    let replayed = app
        .post_callback_with(&second, &signature, &timestamp, "nonce1")
        .await
        .text()
        .await
        .unwrap();

    assert!(original.contains("绑定"));
    assert!(replayed.contains("<ToUserName><![CDATA[o_replay]]>"));
    assert_eq!(state_of(&app, &first_page.ticket).await, "needs_bind");
    assert_eq!(
        state_of(&app, &second_page.ticket).await,
        "pending",
        "the replayed body was ignored"
    );
}

#[tokio::test]
async fn the_access_token_survives_a_restart_without_a_new_fetch() {
    let app = spawn_app().await;
    app.open_login(&app.browser()).await;
    assert_eq!(app.state.wechat.token_fetches(), 1);

    let app = app.restart().await;
    app.open_login(&app.browser()).await;

    assert_eq!(
        app.state.wechat.token_fetches(),
        0,
        "the stored token was used"
    );
}

async fn order_faults(app: &TestApp, plan: serde_json::Value) {
    let response = app.post_json("/sandbox/api/faults", &plan).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_token_that_went_bad_is_refreshed_once_and_the_call_retried() {
    let app = spawn_app().await;
    app.open_login(&app.browser()).await;
    order_faults(&app, json!({ "expire_tokens": true })).await;

    let page = app.open_login(&app.browser()).await;

    assert!(page.html.contains("<svg"));
    assert_eq!(app.state.wechat.token_fetches(), 2, "one forced refresh");
}

#[tokio::test]
async fn system_busy_and_slow_answers_are_retried_within_a_bound() {
    let app = spawn_app().await;
    app.open_login(&app.browser()).await;

    order_faults(&app, json!({ "errcode": -1, "times": 2 })).await;
    assert!(
        app.open_login(&app.browser()).await.html.contains("<svg"),
        "busy twice, then fine"
    );

    order_faults(&app, json!({ "delay_ms": 3500, "times": 1 })).await;
    let started = std::time::Instant::now();
    assert!(
        app.open_login(&app.browser()).await.html.contains("<svg"),
        "slow once, then fine"
    );
    assert!(started.elapsed() < Duration::from_secs(8));

    order_faults(&app, json!({ "errcode": -1, "times": 10 })).await;
    let gave_up = app.get(&app.browser(), "/login").await;
    assert_eq!(gave_up.status(), 503, "busy beyond the bound");
}

#[tokio::test]
async fn an_exhausted_quota_reaches_the_page_as_try_again_later() {
    let app = spawn_app().await;
    app.open_login(&app.browser()).await;
    order_faults(&app, json!({ "errcode": 45009, "times": 5 })).await;

    let response = app
        .get_with_header(&app.browser(), "/login", ("accept-language", "en"))
        .await;

    assert_eq!(response.status(), 503);
    let html = response.text().await.unwrap();
    assert!(html.contains("try again in a moment"), "{html}");
    assert!(!html.contains("45009"), "internals stay in the log");
}

#[tokio::test]
async fn after_binding_user_info_fills_in_the_unionid() {
    let app = spawn_app().await;
    let browser = app.browser();
    app.log_in_new_user(&browser, "o_union", "13700000001")
        .await;

    let unionid: Option<String> = poll(50, Duration::from_millis(50), || {
        app.select("SELECT unionid FROM users WHERE openid = 'o_union'")
    })
    .await;
    assert_eq!(unionid.as_deref(), Some("union_o_union"));
}
