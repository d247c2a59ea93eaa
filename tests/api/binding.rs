//! `/bind`: who may bind, the linking rules, SMS code expiry, attempts and resend limits.

use crate::helpers::{TestApp, location, spawn_app};

/// A browser whose first scan (as `openid`) needs binding; returns it with its CSRF token.
async fn needs_binding(app: &TestApp, openid: &str) -> (reqwest::Client, String) {
    let browser = app.browser();
    let page = app.open_login(&browser).await;
    app.scan(&page.ticket, openid).await;
    let csrf = app.csrf(&browser, "/bind").await;
    (browser, csrf)
}

async fn send_code(
    app: &TestApp,
    browser: &reqwest::Client,
    csrf: &str,
    phone: &str,
) -> reqwest::Response {
    browser
        .post(app.url("/bind/code"))
        .form(&[("csrf", csrf), ("phone", phone)])
        .send()
        .await
        .unwrap()
}

async fn verify(
    app: &TestApp,
    browser: &reqwest::Client,
    csrf: &str,
    code: &str,
) -> reqwest::Response {
    browser
        .post(app.url("/bind/verify"))
        .form(&[("csrf", csrf), ("code", code)])
        .send()
        .await
        .unwrap()
}

fn wrong(code: &str) -> String {
    let last = code.as_bytes()[5];
    let swapped = if last == b'9' {
        '0'
    } else {
        (last + 1) as char
    };
    format!("{}{}", &code[..5], swapped)
}

async fn user_row(app: &TestApp, phone: &str) -> Option<(i64, Option<String>)> {
    sqlx::query_as("SELECT id, openid FROM users WHERE phone = ?")
        .bind(phone)
        .fetch_optional(&app.state.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn only_the_browser_whose_scan_needs_it_may_bind() {
    let app = spawn_app().await;
    let stranger = app.browser();
    let page = stranger.get(app.url("/bind")).send().await.unwrap();
    assert_eq!(location(&page), "/login");

    let waiting = app.browser();
    app.open_login(&waiting).await;
    let page = waiting.get(app.url("/bind")).send().await.unwrap();
    assert_eq!(location(&page), "/login", "not scanned yet");

    let (binder, _) = needs_binding(&app, "o_x").await;
    let page = binder.get(app.url("/bind")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"type="tel""#) && html.contains(r#"autocomplete="tel""#));
}

#[tokio::test]
async fn a_new_phone_creates_the_user_and_logs_in() {
    let app = spawn_app().await;
    let (browser, csrf) = needs_binding(&app, "o_new").await;

    assert_eq!(
        location(&send_code(&app, &browser, &csrf, "+86 139-0000-0001").await),
        "/bind"
    );
    let form = browser
        .get(app.url("/bind"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form.contains("139****0001") && form.contains(r#"autocomplete="one-time-code""#));
    let code = app.sms_code("13900000001").await.unwrap();
    assert_eq!(code.len(), 6);
    assert_eq!(
        location(&verify(&app, &browser, &csrf, &code).await),
        "/login/complete"
    );
    assert_eq!(
        location(
            &browser
                .get(app.url("/login/complete"))
                .send()
                .await
                .unwrap()
        ),
        "/"
    );

    assert_eq!(
        user_row(&app, "+8613900000001").await.unwrap().1.as_deref(),
        Some("o_new")
    );
    let stored: Vec<u8> = sqlx::query_scalar("SELECT code_hash FROM sms_codes")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_ne!(stored, code.as_bytes(), "codes are stored hashed");
}

#[tokio::test]
async fn a_phone_whose_user_has_no_wechat_is_linked() {
    let app = spawn_app().await;
    sqlx::query("INSERT INTO users (phone, created_at) VALUES ('+8613900000002', 1)")
        .execute(&app.state.db)
        .await
        .unwrap();
    let (browser, csrf) = needs_binding(&app, "o_link").await;
    send_code(&app, &browser, &csrf, "13900000002").await;
    let code = app.sms_code("13900000002").await.unwrap();

    assert_eq!(
        location(&verify(&app, &browser, &csrf, &code).await),
        "/login/complete"
    );

    assert_eq!(app.count("users").await, 1);
    assert_eq!(
        user_row(&app, "+8613900000002").await.unwrap().1.as_deref(),
        Some("o_link")
    );
}

#[tokio::test]
async fn a_phone_bound_to_another_wechat_is_refused_and_nothing_changes() {
    let app = spawn_app().await;
    app.log_in_new_user(&app.browser(), "o_owner", "13900000003")
        .await;
    let (browser, csrf) = needs_binding(&app, "o_intruder").await;
    // A phone gets one code a minute; let that minute pass.
    sqlx::query("UPDATE sms_codes SET created_at = created_at - 61")
        .execute(&app.state.db)
        .await
        .unwrap();
    assert_eq!(
        location(&send_code(&app, &browser, &csrf, "13900000003").await),
        "/bind"
    );
    let code = app.sms_code("13900000003").await.unwrap();

    let refused = verify(&app, &browser, &csrf, &code).await;

    assert_eq!(refused.status(), 409);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("该手机号已绑定其他微信账号")
    );
    assert_eq!(
        user_row(&app, "+8613900000003").await.unwrap().1.as_deref(),
        Some("o_owner")
    );
    assert_eq!(app.count("users").await, 1);
    let home = browser
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains(r#"id="login-link""#), "not logged in");
}

#[tokio::test]
async fn two_browsers_racing_for_one_phone_one_wins() {
    let app = spawn_app().await;
    let (a, csrf_a) = needs_binding(&app, "o_race_a").await;
    let (b, csrf_b) = needs_binding(&app, "o_race_b").await;
    send_code(&app, &a, &csrf_a, "13900000004").await;
    let code_a = app.sms_code("13900000004").await.unwrap();
    // The phone's resend limit blocks a second code; put one in place as if sent a minute later.
    sqlx::query("UPDATE sms_codes SET created_at = created_at - 61")
        .execute(&app.state.db)
        .await
        .unwrap();
    send_code(&app, &b, &csrf_b, "13900000004").await;
    let code_b = app.sms_code("13900000004").await.unwrap();

    let (ra, rb) = tokio::join!(
        verify(&app, &a, &csrf_a, &code_a),
        verify(&app, &b, &csrf_b, &code_b)
    );

    let wins = [&ra, &rb]
        .iter()
        .filter(|r| location(r) == "/login/complete")
        .count();
    assert_eq!(wins, 1, "{} / {}", ra.status(), rb.status());
    assert_eq!(app.count("users").await, 1);
}

#[tokio::test]
async fn invalid_phone_numbers_get_a_message_next_to_the_field() {
    let app = spawn_app().await;
    let (browser, csrf) = needs_binding(&app, "o_badphone").await;
    for bad in ["12345", "+1 415 555 0100", "2381234567x"] {
        let response = send_code(&app, &browser, &csrf, bad).await;
        assert_eq!(response.status(), 400);
        let html = response.text().await.unwrap();
        assert!(
            html.contains(r#"class="field-error""#) && html.contains("手机号"),
            "{bad}"
        );
    }
    assert_eq!(app.count("sms_codes").await, 0);
}

#[tokio::test]
async fn five_wrong_codes_kill_the_code() {
    let app = spawn_app().await;
    let (browser, csrf) = needs_binding(&app, "o_guess").await;
    send_code(&app, &browser, &csrf, "13900000005").await;
    let code = app.sms_code("13900000005").await.unwrap();

    for left in (0..5).rev() {
        let response = verify(&app, &browser, &csrf, &wrong(&code)).await;
        assert_eq!(response.status(), 400);
        let html = response.text().await.unwrap();
        if left > 0 {
            assert!(html.contains(&format!("还可尝试 {left} 次")), "{html}");
        }
    }
    let late = verify(&app, &browser, &csrf, &code).await;
    assert_eq!(late.status(), 400, "the right code no longer works");
    assert!(late.text().await.unwrap().contains("已失效"));
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn an_expired_code_does_not_bind() {
    let app = spawn_app().await;
    let (browser, csrf) = needs_binding(&app, "o_slow").await;
    send_code(&app, &browser, &csrf, "13900000006").await;
    let code = app.sms_code("13900000006").await.unwrap();
    sqlx::query("UPDATE sms_codes SET expires_at = strftime('%s','now') - 1")
        .execute(&app.state.db)
        .await
        .unwrap();

    let response = verify(&app, &browser, &csrf, &code).await;

    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("已失效"));
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn a_code_is_not_resent_within_a_minute() {
    let app = spawn_app().await;
    let (browser, csrf) = needs_binding(&app, "o_resend").await;
    send_code(&app, &browser, &csrf, "13900000007").await;

    let again = send_code(&app, &browser, &csrf, "13900000007").await;

    assert_eq!(again.status(), 429);
    assert!(again.text().await.unwrap().contains("秒后可重新发送"));
    assert_eq!(app.count("sms_codes").await, 1);
    sqlx::query("UPDATE sms_codes SET created_at = created_at - 60")
        .execute(&app.state.db)
        .await
        .unwrap();
    assert_eq!(
        location(&send_code(&app, &browser, &csrf, "13900000007").await),
        "/bind"
    );
    assert_eq!(app.count("sms_codes").await, 2);
}

#[tokio::test]
async fn a_cross_site_post_is_refused() {
    let app = spawn_app().await;
    let (browser, _csrf) = needs_binding(&app, "o_csrf").await;
    let forged = send_code(&app, &browser, "not-the-token", "13900000008").await;
    assert_eq!(forged.status(), 403);
    assert_eq!(app.count("sms_codes").await, 0);
}

#[tokio::test]
async fn after_the_qr_code_dies_the_person_is_sent_back_to_login() {
    let app = spawn_app().await;
    let (browser, csrf) = needs_binding(&app, "o_gone").await;
    sqlx::query("UPDATE login_scenes SET expires_at = 1")
        .execute(&app.state.db)
        .await
        .unwrap();

    assert_eq!(
        location(&browser.get(app.url("/bind")).send().await.unwrap()),
        "/login"
    );
    assert_eq!(
        location(&send_code(&app, &browser, &csrf, "13900000009").await),
        "/login"
    );
}
