//! The login page, its live event stream, redeeming a scan, sessions and `next=`.

use std::time::Duration;

use crate::helpers::{SseReader, TestApp, between, location, spawn_app};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn login_page_shows_a_qr_code_that_opens_the_sandbox_phone() {
    let app = spawn_app().await;
    let browser = app.browser();

    let page = app.open_login(&browser).await;

    assert!(page.html.contains("<svg"), "QR drawn inline");
    assert!(page.html.contains(r#"id="countdown""#));
    assert!(
        page.html
            .starts_with("<!DOCTYPE html><html lang=\"zh-CN\">")
    );
    let phone = app
        .get(&browser, &format!("/sandbox/scan/{}", page.ticket))
        .await;
    assert_eq!(phone.status(), 200);
}

#[tokio::test]
async fn english_browsers_get_english_pages() {
    let app = spawn_app().await;
    let html = app
        .get_with_header(
            &app.browser(),
            "/login",
            ("accept-language", "en-US,en;q=0.9"),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"<html lang="en">"#));
    assert!(html.contains("Scan the QR code with WeChat"));
}

#[tokio::test]
async fn reloading_reuses_the_live_qr_code() {
    let app = spawn_app().await;
    let browser = app.browser();
    let first = app.open_login(&browser).await;
    let second = app.open_login(&browser).await;
    assert_eq!(first.ticket, second.ticket);
    assert_eq!(app.count("login_scenes").await, 1);
    // Another browser gets its own code.
    let other = app.open_login(&app.browser()).await;
    assert_ne!(other.ticket, first.ticket);
}

#[tokio::test]
async fn many_pages_at_once_share_one_access_token() {
    let app = spawn_app().await;
    let pages = (0..20).map(|_| {
        let browser = app.browser();
        let app = &app;
        async move { app.open_login(&browser).await }
    });
    futures::future::join_all(pages).await;
    assert_eq!(app.count("login_scenes").await, 20);
    assert_eq!(app.state.wechat.token_fetches(), 1);
}

#[tokio::test]
async fn first_scan_pushes_the_browser_to_binding_over_sse() {
    let app = spawn_app().await;
    let browser = app.browser();
    let page = app.open_login(&browser).await;
    let mut events = SseReader::connect(&app, &browser).await;
    assert_eq!(events.status, 200);
    let first = events.next(WAIT).await.expect("current state on connect");
    assert_eq!(first.event, "status");

    let answer = app.scan(&page.ticket, "o_first").await;

    assert_eq!(answer["event"], "subscribe");
    assert!(answer["reply"].as_str().unwrap().contains("绑定手机号"));
    // First what the eye sees: the scanned code with its check mark and the status under it;
    // then where to go.
    let (before, redirect) = events.until("redirect", WAIT).await.expect("pushed");
    assert_eq!(redirect.data, "/bind");
    let seen: Vec<&str> = before.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(seen, ["qr", "status"]);
    assert!(
        before[0].data.contains(r#"data-state="scanned""#),
        "{}",
        before[0].data
    );
    assert!(
        !before[0].data.contains("sandbox-link"),
        "no link to a used ticket"
    );
    assert!(before[1].data.contains("扫码成功"), "{}", before[1].data);
}

#[tokio::test]
async fn a_bound_person_is_logged_in_at_once_and_the_scene_redeems_only_once() {
    let app = spawn_app().await;
    app.log_in_new_user(&app.browser(), "o_bound", "13800000001")
        .await;
    let browser = app.browser();
    let (page, mut events) = app.watch_login(&browser).await;

    let answer = app.scan(&page.ticket, "o_bound").await;

    assert_eq!(answer["event"], "SCAN", "already follows");
    assert!(answer["reply"].as_str().unwrap().contains("登录成功"));
    let (before, redirect) = events.until("redirect", WAIT).await.unwrap();
    assert_eq!(redirect.data, "/login/complete");
    assert!(
        before[1].data.contains("扫码成功，正在登录"),
        "{}",
        before[1].data
    );
    assert_eq!(app.complete_login(&browser).await, "/");
    let home = app.page_text(&browser, "/").await;
    assert!(home.contains("138****0001"), "masked phone shown");
    assert!(!home.contains("13800000001"), "full phone not shown");
    // Redeeming again does nothing.
    assert_eq!(app.complete_login(&browser).await, "/login");
}

#[tokio::test]
async fn another_browser_can_neither_watch_nor_redeem_a_scene() {
    let app = spawn_app().await;
    app.log_in_new_user(&app.browser(), "o_victim", "13800000002")
        .await;
    let owner = app.browser();
    let page = app.open_login(&owner).await;
    let attacker = app.browser();
    app.open_login(&attacker).await; // has a session and a scene of its own
    app.scan(&page.ticket, "o_victim").await;

    assert_eq!(app.complete_login(&attacker).await, "/login");
    let home = app.page_text(&attacker, "/").await;
    assert!(
        home.contains(r#"id="login-link""#),
        "attacker is not logged in"
    );
    let mut attacker_events = SseReader::connect(&app, &attacker).await;
    let seen = attacker_events.next(WAIT).await.unwrap();
    assert_eq!(
        seen.event, "status",
        "the attacker only sees its own waiting scene"
    );
    // A browser with no session at all gets nothing to watch.
    let stranger = SseReader::connect(&app, &app.browser()).await;
    assert_eq!(stranger.status, 204);

    assert_eq!(app.complete_login(&owner).await, "/");
}

#[tokio::test]
async fn next_only_leads_to_paths_on_this_site() {
    let app = spawn_app().await;
    app.log_in_new_user(&app.browser(), "o_next", "13800000003")
        .await;
    for (next, expected) in [
        ("/account?tab=1", "/account?tab=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ] {
        let browser = app.browser();
        let response = browser
            .get(app.url("/login"))
            .query(&[("next", next)])
            .send()
            .await
            .unwrap();
        let page = response.text().await.unwrap();
        let ticket = between(&page, "/sandbox/scan/", "\"").unwrap();
        app.scan(&ticket, "o_next").await;
        assert_eq!(app.complete_login(&browser).await, expected, "next={next}");
    }
}

#[tokio::test]
async fn the_session_id_changes_at_login_and_logout_needs_the_csrf_token() {
    let app = spawn_app().await;
    let browser = app.browser();
    let before = app.get(&browser, "/login").await;
    let cookie_before = before.headers()["set-cookie"].to_str().unwrap().to_owned();
    let page = before.text().await.unwrap();
    let ticket = between(&page, "/sandbox/scan/", "\"").unwrap();
    app.log_in_new_user(&app.browser(), "o_cycle", "13800000004")
        .await;
    app.scan(&ticket, "o_cycle").await;

    let done = app.get(&browser, "/login/complete").await;
    let cookie_after = done.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert_ne!(
        cookie_before.split(';').next(),
        cookie_after.split(';').next()
    );
    assert!(cookie_after.contains("HttpOnly") && cookie_after.contains("SameSite=Lax"));

    let forged = app.post_csrf(&browser, "/logout", "forged").await;
    assert_eq!(forged.status(), 403);
    let home = app.page_text(&browser, "/").await;
    assert!(
        home.contains(r#"id="whoami""#),
        "still logged in after the forged post"
    );

    let csrf = app.csrf(&browser, "/").await;
    let out = app.post_csrf(&browser, "/logout", &csrf).await;
    assert_eq!(location(&out), "/");
    let home = app.page_text(&browser, "/").await;
    assert!(home.contains(r#"id="login-link""#));
}

#[tokio::test]
async fn a_disabled_person_is_refused_on_the_page_and_in_wechat_and_logged_out() {
    let app = spawn_app().await;
    let session = app.browser();
    app.log_in_new_user(&session, "o_disabled", "13800000005")
        .await;
    app.exec("UPDATE users SET disabled = TRUE WHERE openid = 'o_disabled'")
        .await;

    // The open session ends at its next request.
    let home = app.page_text(&session, "/").await;
    assert!(home.contains(r#"id="login-link""#));

    let browser = app.browser();
    let (page, mut events) = app.watch_login(&browser).await;
    let answer = app.scan(&page.ticket, "o_disabled").await;
    assert!(answer["reply"].as_str().unwrap().contains("停用"));
    // The code gives way to a panel that says so, and the status line says it too.
    let panel = events.next(WAIT).await.unwrap();
    assert_eq!(panel.event, "qr");
    assert!(
        panel.data.contains(r#"data-state="disabled""#),
        "{}",
        panel.data
    );
    assert!(!panel.data.contains("<svg") && !panel.data.contains("countdown"));
    let pushed = events.next(WAIT).await.unwrap();
    assert_eq!(pushed.event, "status");
    assert!(pushed.data.contains("停用"), "{}", pushed.data);
    assert_eq!(app.complete_login(&browser).await, "/login");
}

#[tokio::test]
async fn an_expired_qr_code_is_replaced_live() {
    let app = spawn_app().await;
    let browser = app.browser();
    let (page, mut events) = app.watch_login(&browser).await;

    app.exec_binds(
        "UPDATE login_scenes SET expires_at = ? WHERE ticket = ?",
        (wxlogin::util::now(), &page.ticket),
    )
    .await;
    app.state.live.wake(&owner_of(&app, &page.ticket).await);

    let fresh = events.next(WAIT).await.expect("a fresh QR code");
    assert_eq!(fresh.event, "qr");
    assert!(fresh.data.contains("<svg"));
    assert!(!fresh.data.contains(&page.ticket), "a new ticket");
    let status = events.next(WAIT).await.unwrap();
    assert_eq!(status.event, "status");
    // The old code is dead: scanning it gets a friendly reply and changes nothing.
    let old = app.scan(&page.ticket, "o_exp").await;
    assert!(old["reply"].as_str().unwrap().contains("过期"), "{old}");
    let new_ticket = between(&fresh.data, "/sandbox/scan/", "\"").unwrap();
    let answer = app.scan(&new_ticket, "o_exp").await;
    assert!(
        answer["reply"].as_str().unwrap().contains("绑定"),
        "the new code works"
    );
}

async fn owner_of(app: &TestApp, ticket: &str) -> String {
    app.select_with("SELECT owner FROM login_scenes WHERE ticket = ?", ticket)
        .await
}

#[tokio::test]
async fn a_pending_login_survives_a_restart() {
    let app = spawn_app().await;
    app.log_in_new_user(&app.browser(), "o_restart", "13800000006")
        .await;
    let browser = app.browser();
    let page = app.open_login(&browser).await;

    let app = app.restart().await;

    // The browser reconnects to the new server and picks the state up.
    let mut events = SseReader::connect(&app, &browser).await;
    assert_eq!(events.next(WAIT).await.unwrap().event, "status");
    let answer = app.scan(&page.ticket, "o_restart").await;
    assert!(answer["reply"].as_str().unwrap().contains("登录成功"));
    let (_, redirect) = events.until("redirect", WAIT).await.unwrap();
    assert_eq!(redirect.data, "/login/complete");
    assert_eq!(app.complete_login(&browser).await, "/");
}

#[tokio::test]
async fn without_javascript_a_reload_moves_the_person_on() {
    let app = spawn_app().await;
    let browser = app.browser();
    let page = app.open_login(&browser).await;
    assert!(
        page.html
            .contains(r#"<noscript><meta http-equiv="refresh" content="3">"#)
    );
    app.scan(&page.ticket, "o_nojs").await;
    let reload = app.get(&browser, "/login").await;
    assert_eq!(location(&reload), "/bind");
}
