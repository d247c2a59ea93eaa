//! `/bind`: who may bind, the linking rules, SMS code expiry, attempts and resend limits.

use crate::helpers::{TestApp, location, spawn_app, spawn_app_with};

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
    app.fetch_optional("SELECT id, openid FROM users WHERE phone = ?", (phone,))
        .await
}

#[tokio::test]
async fn only_the_browser_whose_scan_needs_it_may_bind() {
    let app = spawn_app().await;
    let stranger = app.browser();
    let page = app.get(&stranger, "/bind").await;
    assert_eq!(location(&page), "/login");

    let waiting = app.browser();
    app.open_login(&waiting).await;
    let page = app.get(&waiting, "/bind").await;
    assert_eq!(location(&page), "/login", "not scanned yet");

    let (binder, _) = app.needs_binding("o_x").await;
    let page = app.get(&binder, "/bind").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"type="tel""#) && html.contains(r#"autocomplete="tel-national""#));
}

#[tokio::test]
async fn a_new_phone_creates_the_user_and_logs_in() {
    let app = spawn_app().await;
    let (browser, csrf) = app.needs_binding("o_new").await;

    assert_eq!(
        location(&app.send_code(&browser, &csrf, "+86 139-0000-0001").await),
        "/bind"
    );
    let form = app.page_text(&browser, "/bind").await;
    assert!(form.contains("139****0001") && form.contains(r#"autocomplete="one-time-code""#));
    let code = app.sms_code("13900000001").await.unwrap();
    assert_eq!(code.len(), 6);
    assert_eq!(
        location(&app.verify_code(&browser, &csrf, &code).await),
        "/login/complete"
    );
    assert_eq!(app.complete_login(&browser).await, "/");

    assert_eq!(
        user_row(&app, "+8613900000001").await.unwrap().1.as_deref(),
        Some("o_new")
    );
    let stored: Vec<u8> = app.select("SELECT code_hash FROM sms_codes").await;
    assert_ne!(stored, code.as_bytes(), "codes are stored hashed");
}

#[tokio::test]
async fn a_phone_whose_user_has_no_wechat_is_linked() {
    let app = spawn_app().await;
    app.exec("INSERT INTO users (phone, created_at) VALUES ('+8613900000002', 1)")
        .await;
    let (browser, csrf) = app.needs_binding("o_link").await;
    app.send_code_page(&browser, &csrf, "13900000002").await;
    let code = app.sms_code("13900000002").await.unwrap();

    assert_eq!(
        location(&app.verify_code(&browser, &csrf, &code).await),
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
    let (browser, csrf) = app.needs_binding("o_intruder").await;
    // A phone gets one code a minute; let that minute pass.
    app.exec("UPDATE sms_codes SET created_at = created_at - 61")
        .await;
    assert_eq!(
        location(&app.send_code(&browser, &csrf, "13900000003").await),
        "/bind"
    );
    let code = app.sms_code("13900000003").await.unwrap();

    let refused = app.verify_code(&browser, &csrf, &code).await;

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
    let home = app.page_text(&browser, "/").await;
    assert!(home.contains(r#"id="login-link""#), "not logged in");
}

#[tokio::test]
async fn two_browsers_racing_for_one_phone_one_wins() {
    let app = spawn_app().await;
    let (a, csrf_a) = app.needs_binding("o_race_a").await;
    let (b, csrf_b) = app.needs_binding("o_race_b").await;
    app.send_code_page(&a, &csrf_a, "13900000004").await;
    let code_a = app.sms_code("13900000004").await.unwrap();
    // The phone's resend limit blocks a second code; put one in place as if sent a minute later.
    app.exec("UPDATE sms_codes SET created_at = created_at - 61")
        .await;
    app.send_code_page(&b, &csrf_b, "13900000004").await;
    let code_b = app.sms_code("13900000004").await.unwrap();

    let (ra, rb) = tokio::join!(
        app.verify_code(&a, &csrf_a, &code_a),
        app.verify_code(&b, &csrf_b, &code_b)
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
    let (browser, csrf) = app.needs_binding("o_badphone").await;
    for bad in ["12345", "+1 415 555 0100", "2381234567x"] {
        let response = app.send_code_page(&browser, &csrf, bad).await;
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
    let (browser, csrf) = app.needs_binding("o_guess").await;
    app.send_code_page(&browser, &csrf, "13900000005").await;
    let code = app.sms_code("13900000005").await.unwrap();

    for left in (0..5).rev() {
        let response = app.verify_code(&browser, &csrf, &wrong(&code)).await;
        assert_eq!(response.status(), 400);
        let html = response.text().await.unwrap();
        if left > 0 {
            assert!(html.contains(&format!("还可尝试 {left} 次")), "{html}");
        }
    }
    let late = app.verify_code(&browser, &csrf, &code).await;
    assert_eq!(late.status(), 400, "the right code no longer works");
    assert!(late.text().await.unwrap().contains("已失效"));
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn an_expired_code_does_not_bind() {
    let app = spawn_app().await;
    let (browser, csrf) = app.needs_binding("o_slow").await;
    app.send_code_page(&browser, &csrf, "13900000006").await;
    let code = app.sms_code("13900000006").await.unwrap();
    app.exec_with(
        "UPDATE sms_codes SET expires_at = ?",
        wxlogin::util::now() - 1,
    )
    .await;

    let response = app.verify_code(&browser, &csrf, &code).await;

    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("已失效"));
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn a_code_is_not_resent_within_a_minute() {
    let app = spawn_app().await;
    let (browser, csrf) = app.needs_binding("o_resend").await;
    app.send_code_page(&browser, &csrf, "13900000007").await;

    let again = app.send_code_page(&browser, &csrf, "13900000007").await;

    assert_eq!(again.status(), 429);
    assert!(again.text().await.unwrap().contains("秒再重新发送"));
    assert_eq!(app.count("sms_codes").await, 1);
    app.exec("UPDATE sms_codes SET created_at = created_at - 60")
        .await;
    assert_eq!(
        location(&app.send_code(&browser, &csrf, "13900000007").await),
        "/bind"
    );
    assert_eq!(app.count("sms_codes").await, 2);
}

#[tokio::test]
async fn a_cross_site_post_is_refused() {
    let app = spawn_app().await;
    let (browser, _csrf) = app.needs_binding("o_csrf").await;
    let forged = app
        .send_code(&browser, "not-the-token", "13900000008")
        .await;
    assert_eq!(forged.status(), 403);
    assert_eq!(app.count("sms_codes").await, 0);
}

#[tokio::test]
async fn after_the_qr_code_dies_the_person_is_sent_back_to_login() {
    let app = spawn_app().await;
    let (browser, csrf) = app.needs_binding("o_gone").await;
    app.exec("UPDATE login_scenes SET expires_at = 1").await;

    assert_eq!(location(&app.get(&browser, "/bind").await), "/login");
    assert_eq!(
        location(&app.send_code(&browser, &csrf, "13900000009").await),
        "/login"
    );
}

#[tokio::test]
async fn a_person_who_leaves_can_come_back_within_the_qr_lifetime_and_finish() {
    let app = spawn_app().await;
    let (browser, csrf) = app.needs_binding("o_back").await;
    app.send_code_page(&browser, &csrf, "13900000010").await;
    let code = app.sms_code("13900000010").await.unwrap();

    // They wander off; opening the login page again brings them back to the form they left.
    let login = app.get(&browser, "/login").await;
    assert_eq!(location(&login), "/bind");
    let form = app.page_text(&browser, "/bind").await;
    assert!(form.contains("139****0010"), "still at the code step");

    assert_eq!(
        location(&app.verify_code(&browser, &csrf, &code).await),
        "/login/complete"
    );
    assert_eq!(app.complete_login(&browser).await, "/");
    assert_eq!(
        user_row(&app, "+8613900000010").await.unwrap().1.as_deref(),
        Some("o_back")
    );
}

#[tokio::test]
async fn a_person_who_comes_back_after_the_qr_died_is_sent_to_login_and_nothing_binds() {
    let app = spawn_app().await;
    let (browser, csrf) = app.needs_binding("o_late").await;
    app.send_code_page(&browser, &csrf, "13900000011").await;
    let code = app.sms_code("13900000011").await.unwrap();
    app.exec("UPDATE login_scenes SET expires_at = 1").await;

    assert_eq!(
        location(&app.verify_code(&browser, &csrf, &code).await),
        "/login"
    );
    let login = app.get(&browser, "/login").await;
    assert_eq!(login.status(), 200, "a fresh login page, not /bind");
    assert_eq!(app.count("users").await, 0);
}

/// Moves every code `seconds` into the past.
async fn age_codes(app: &TestApp, seconds: i64) {
    app.exec_with("UPDATE sms_codes SET created_at = created_at - ?", seconds)
        .await;
}

/// Puts a code row in place as if sent `ago` seconds ago to `phone` from `ip`.
async fn past_code(app: &TestApp, phone: &str, ip: &str, ago: i64) {
    let sent = wxlogin::util::now() - ago;
    app.exec_binds(
        "INSERT INTO sms_codes (scene, phone, code_hash, created_at, expires_at, client_ip) \
         VALUES ('old-scene', ?, ?, ?, ?, ?)",
        (phone, vec![0u8], sent, sent + 300, ip),
    )
    .await;
}

/// "HH:MM" in Beijing of `t`, rounded up to the minute, as the page shows it.
/// How the page words the time `t` (rounded up to the minute) in China: "明天 HH:MM" when
/// that is past midnight there.
fn china_clock(t: i64) -> String {
    let t = (t + 59) / 60 * 60 + 8 * 3600;
    let clock = format!("{:02}:{:02}", t / 3600 % 24, t / 60 % 60);
    let today = (wxlogin::util::now() + 8 * 3600) / 86_400;
    if t / 86_400 > today {
        format!("明天 {clock}")
    } else {
        clock
    }
}

#[tokio::test]
async fn the_resend_cooldown_is_configurable() {
    let app = spawn_app_with(|s| s.sms.limits.resend_seconds = 5).await;
    let (browser, csrf) = app.needs_binding("o_cool").await;
    app.send_code_page(&browser, &csrf, "13900000012").await;
    let form = app.page_text(&browser, "/bind").await;
    assert!(
        form.contains(r#"data-wait="5""#) || form.contains(r#"data-wait="4""#),
        "the button counts down from the configured cooldown"
    );

    age_codes(&app, 3).await;
    // The POST's own answer says how long to wait; the page it goes back to is the 429.
    let early = app.send_code(&browser, &csrf, "13900000012").await;
    assert_eq!(app.get(&browser, "/bind").await.status(), 429);
    let retry_after: i64 = early.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(app.count("sms_codes").await, 1);

    age_codes(&app, 2).await;
    assert_eq!(
        location(&app.send_code(&browser, &csrf, "13900000012").await),
        "/bind"
    );
    assert_eq!(app.count("sms_codes").await, 2);
}

#[tokio::test]
async fn at_most_five_codes_per_phone_per_hour() {
    let app = spawn_app().await;
    let (browser, csrf) = app.needs_binding("o_hourly").await;
    for _ in 0..5 {
        assert_eq!(
            location(&app.send_code(&browser, &csrf, "13900000013").await),
            "/bind"
        );
        age_codes(&app, 61).await; // past the resend cooldown, still within the hour
    }
    let oldest: i64 = app.select("SELECT MIN(created_at) FROM sms_codes").await;

    let sixth = app.send_code_page(&browser, &csrf, "13900000013").await;

    assert_eq!(sixth.status(), 429);
    assert!(sixth.headers().contains_key("retry-after"));
    let html = sixth.text().await.unwrap();
    let expected = format!("请在北京时间 {} 后再试", china_clock(oldest + 3600));
    assert!(html.contains(&expected), "{expected} in {html}");
    assert!(html.contains("该手机号获取验证码次数过多"));
    assert!(
        html.contains(r#"id="verify-form""#),
        "the codes already sent still work"
    );
    assert_eq!(app.count("sms_codes").await, 5);

    // Once the oldest is an hour old, one more may go.
    age_codes(&app, 3600 - 5 * 61 + 1).await;
    assert_eq!(
        location(&app.send_code(&browser, &csrf, "13900000013").await),
        "/bind"
    );
}

#[tokio::test]
async fn at_most_ten_codes_per_phone_per_day() {
    let app = spawn_app().await;
    // Ten codes over the last day, none in the last hour.
    for i in 0..10 {
        past_code(&app, "+8613900000014", "192.0.2.1", 7200 + i * 600).await;
    }
    let (browser, csrf) = app.needs_binding("o_daily").await;

    let refused = app.send_code_page(&browser, &csrf, "13900000014").await;

    assert_eq!(refused.status(), 429);
    let html = refused.text().await.unwrap();
    assert!(html.contains("该手机号获取验证码次数过多"), "{html}");
    assert!(
        html.contains(r#"id="send-code-form""#),
        "no code was sent in this login"
    );
    assert!(
        html.contains("小时"),
        "a wait of hours is said in hours: {html}"
    );
    assert_eq!(app.count("sms_codes").await, 10);

    // The same limit in English, with the time and how long.
    let english = browser
        .post(app.url("/bind/code"))
        .header("accept-language", "en-US,en;q=0.9")
        .form(&[("csrf", csrf.as_str()), ("phone", "13900000014")])
        .send()
        .await
        .unwrap();
    let english = app.follow_to(&browser, english, "/bind").await;
    let html = english.text().await.unwrap();
    assert!(
        html.contains("Too many codes were sent to this number. Try again after"),
        "{html}"
    );
    assert!(html.contains("(China time), in about"), "{html}");

    // The oldest leaving the day window lets the next one through.
    app.exec("UPDATE sms_codes SET created_at = created_at - 86400 WHERE created_at = (SELECT MIN(created_at) FROM sms_codes)").await;
    assert_eq!(
        location(&app.send_code(&browser, &csrf, "13900000014").await),
        "/bind"
    );
}

#[tokio::test]
async fn at_most_twenty_codes_per_client_ip_per_hour() {
    let app = spawn_app().await;
    // Twenty codes from this test's address (127.0.0.1) to other phones in the last hour, and
    // some from another address, which don't count.
    for i in 0..20 {
        past_code(&app, &format!("+86137000000{i:02}"), "127.0.0.1", 100 + i).await;
    }
    for i in 0..5 {
        past_code(&app, &format!("+86136000000{i:02}"), "198.51.100.7", 10).await;
    }
    let (browser, csrf) = app.needs_binding("o_pump").await;

    let refused = app.send_code_page(&browser, &csrf, "13900000015").await;

    assert_eq!(refused.status(), 429);
    let html = refused.text().await.unwrap();
    assert!(html.contains("当前网络获取验证码次数过多"), "{html}");
    assert!(html.contains("请在北京时间 "), "{html}");
    assert_eq!(app.count("sms_codes").await, 25);
    let stored: Option<String> = app
        .select("SELECT client_ip FROM sms_codes WHERE phone = '+8613700000000'")
        .await;
    assert_eq!(stored.as_deref(), Some("127.0.0.1"));

    // An hour after the oldest, the address may ask again; the code records who asked.
    app.exec("UPDATE sms_codes SET created_at = created_at - 3600 WHERE client_ip = '127.0.0.1' AND created_at = (SELECT MIN(created_at) FROM sms_codes WHERE client_ip = '127.0.0.1')").await;
    assert_eq!(
        location(&app.send_code(&browser, &csrf, "13900000015").await),
        "/bind"
    );
    let ip: String = app
        .select("SELECT client_ip FROM sms_codes WHERE phone = '+8613900000015'")
        .await;
    assert_eq!(ip, "127.0.0.1");
}

#[tokio::test]
async fn parallel_requests_cannot_slip_past_a_limit() {
    let app = spawn_app_with(|s| s.sms.limits.per_ip_hour = 3).await;
    let mut browsers = Vec::new();
    for i in 0..6 {
        browsers.push(app.needs_binding(&format!("o_par{i}")).await);
    }

    let answers = futures::future::join_all(browsers.iter().enumerate().map(|(i, (b, csrf))| {
        let phone = format!("1390000002{i}");
        let app = &app;
        async move { app.send_code_page(b, csrf, &phone).await.status().as_u16() }
    }))
    .await;

    assert_eq!(
        answers.iter().filter(|s| **s == 200).count(),
        3,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|s| **s == 429).count(),
        3,
        "{answers:?}"
    );
    assert_eq!(app.count("sms_codes").await, 3);
}

#[tokio::test]
async fn the_number_of_wrong_entries_is_configurable() {
    let app = spawn_app_with(|s| s.sms.limits.max_attempts = 2).await;
    let (browser, csrf) = app.needs_binding("o_two").await;
    app.send_code_page(&browser, &csrf, "13900000016").await;
    let code = app.sms_code("13900000016").await.unwrap();

    let first = app.verify_code(&browser, &csrf, &wrong(&code)).await;
    assert!(first.text().await.unwrap().contains("还可尝试 1 次"));
    let second = app.verify_code(&browser, &csrf, &wrong(&code)).await;
    assert!(second.text().await.unwrap().contains("已失效"));

    let late = app.verify_code(&browser, &csrf, &code).await;
    assert_eq!(late.status(), 400);
    assert_eq!(app.count("users").await, 0);
}
