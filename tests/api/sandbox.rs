//! The sandbox: WeChat's API shapes and errcodes, and its absence in `wechat` mode.

use crate::helpers::{spawn_app, spawn_app_with};
use serde_json::Value;
use wxlogin::config::Mode;

/// Sends `request` and reads its answer as JSON.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn token_endpoints_check_credentials_with_wechat_errcodes() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let appid = app.settings.wechat.appid.clone();
    let secret = wxlogin::config::expose(&app.settings.wechat.secret).to_owned();

    let bad_appid = json_of(client.get(app.url("/sandbox/cgi-bin/token")).query(&[
        ("grant_type", "client_credential"),
        ("appid", "wx0000000000000000"),
        ("secret", &secret),
    ]))
    .await;
    assert_eq!(bad_appid["errcode"], 40013);
    let bad_secret = json_of(client.post(app.url("/sandbox/cgi-bin/stable_token")).json(
        &serde_json::json!({"grant_type": "client_credential", "appid": appid, "secret": "nope"}),
    ))
    .await;
    assert_eq!(bad_secret["errcode"], 40125);

    let body =
        serde_json::json!({"grant_type": "client_credential", "appid": appid, "secret": secret});
    let stable_token = || {
        json_of(
            client
                .post(app.url("/sandbox/cgi-bin/stable_token"))
                .json(&body),
        )
    };
    let first = stable_token().await;
    let second = stable_token().await;
    assert_eq!(
        first["access_token"], second["access_token"],
        "stable_token returns the same token"
    );
    assert!(first["expires_in"].as_i64().unwrap() > 7000);

    let bad_token = json_of(
        client
            .post(app.url("/sandbox/cgi-bin/qrcode/create?access_token=wrong"))
            .json(&serde_json::json!({"expire_seconds": 60, "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "s"}}})),
    )
    .await;
    assert_eq!(bad_token["errcode"], 40001);
}

#[tokio::test]
async fn the_sandbox_does_not_exist_in_wechat_mode() {
    let app = spawn_app_with(|s| s.mode = Mode::Wechat).await;
    let client = reqwest::Client::new();
    for path in [
        "/sandbox/scan/abc",
        "/sandbox/cgi-bin/token",
        "/sandbox/api/sms?phone=13800000000",
        "/sandbox/sms",
    ] {
        assert_eq!(
            client.get(app.url(path)).send().await.unwrap().status(),
            404,
            "{path}"
        );
    }
    let scan = app
        .post_json(
            "/sandbox/api/scan",
            &serde_json::json!({"ticket": "t", "openid": "o"}),
        )
        .await;
    assert_eq!(scan.status(), 404);
}

#[tokio::test]
async fn the_phone_page_scans_and_shows_the_reply_bubble() {
    let app = spawn_app().await;
    let browser = app.browser();
    let page = app.open_login(&browser).await;

    let phone = reqwest::Client::new()
        .post(app.url(&format!("/sandbox/scan/{}", page.ticket)))
        .form(&[("openid", "o_phone")])
        .send()
        .await
        .unwrap();

    assert_eq!(phone.status(), 200);
    let html = phone.text().await.unwrap();
    assert!(
        html.contains(r#"class="bubble reply""#) && html.contains("绑定手机号"),
        "{html}"
    );
    let unknown = app
        .post_json(
            "/sandbox/api/scan",
            &serde_json::json!({"ticket": "nope", "openid": "o_phone"}),
        )
        .await;
    assert_eq!(unknown.status(), 404);
}
