//! Every page as a browser gets it: a complete document with its own title, in the request's
//! language, and no script but `/app.js`, which the CSP (`script-src 'self'`) allows.

use crate::helpers::{TestApp, spawn_app};

/// The page's `<title>`, after checking it is a complete document whose only scripts load
/// from our own files.
fn check_document(path: &str, html: &str) -> String {
    assert!(
        html.starts_with("<!DOCTYPE html><html lang="),
        "{path}: {html}"
    );
    assert!(html.trim_end().ends_with("</html>"), "{path}: ends {html}");
    for script in html.split("<script").skip(1) {
        let tag = &script[..script.find('>').unwrap()];
        assert!(
            tag.contains("src=\"/app.js?v="),
            "{path}: an inline script the CSP would refuse: <script{tag}>"
        );
    }
    let head = &html[..html.find("</head>").expect("a head")];
    assert_eq!(head.matches("<title>").count(), 1, "{path}: {head}");
    let start = head.find("<title>").unwrap() + "<title>".len();
    head[start..start + head[start..].find("</title>").unwrap()].to_owned()
}

async fn page(app: &TestApp, browser: &reqwest::Client, path: &str, lang: &str) -> String {
    let response = browser
        .get(app.url(path))
        .header("accept-language", lang)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn every_page_is_a_whole_document_with_its_title_and_no_inline_script() {
    let app = spawn_app().await;
    let anonymous = app.browser();
    let login = app.open_login(&anonymous).await;
    let (binding, _) = app.needs_binding("o_pages_binding").await;
    let admin = app.browser();
    app.log_in_new_user(&admin, "o_pages_admin", "13800000999")
        .await;
    app.exec("UPDATE users SET is_admin = TRUE WHERE phone = '+8613800000999'")
        .await;
    let admin_id: i64 = app
        .select("SELECT id FROM users WHERE phone = '+8613800000999'")
        .await;
    let scan = format!("/sandbox/scan/{}", login.ticket);
    let user = format!("/admin/users/{admin_id}");
    let pages: [(&reqwest::Client, &str, &str, &str); 9] = [
        (&anonymous, "/", "首页", "Home"),
        (&anonymous, "/login", "微信扫码登录", "Log in with WeChat"),
        (&binding, "/bind", "绑定手机号", "Link your phone"),
        (&admin, "/", "首页", "Home"),
        (&admin, "/admin", "概览", "Dashboard"),
        (&admin, "/admin/users", "用户", "Users"),
        (&admin, &user, "用户", "User"),
        (&anonymous, &scan, "模拟微信", "Simulated WeChat"),
        (&anonymous, "/sandbox/sms", "短信", "SMS"),
    ];
    for (browser, path, zh, en) in pages {
        let html = page(&app, browser, path, "zh-CN").await;
        let title = check_document(path, &html);
        assert!(html.contains("<html lang=\"zh-CN\">"), "{path}");
        assert!(title.contains(zh), "{path}: title {title}");
        let html = page(&app, browser, path, "en-US,en;q=0.9").await;
        let title = check_document(path, &html);
        assert!(html.contains("<html lang=\"en\">"), "{path}");
        assert!(title.contains(en), "{path}: title {title}");
    }
    // Error pages are drawn by the same shell.
    let response = anonymous
        .get(app.url("/no-such-page"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let title = check_document("/no-such-page", &response.text().await.unwrap());
    assert!(
        title.starts_with("页面不存在"),
        "a 404 says what it is: {title}"
    );
}

#[tokio::test]
async fn a_first_visit_to_the_login_page_is_small_and_its_files_are_cached_by_version() {
    let app = spawn_app().await;
    let browser = app.browser();
    let fetch = |path: String| {
        let browser = browser.clone();
        let url = app.url(&path);
        async move {
            browser
                .get(url)
                .header("accept-encoding", "gzip, br")
                .send()
                .await
                .unwrap()
        }
    };
    let login = fetch("/login".into()).await;
    assert_eq!(login.headers()["content-encoding"], "br");
    let page = login.bytes().await.unwrap();
    // The page itself, uncompressed, to find its files.
    let html = app.page_text(&app.browser(), "/login").await;
    let mut total = page.len();
    for prefix in [
        r#"href="/style.css?v="#,
        r#"src="/app.js?v="#,
        r#"href="/favicon.svg?v="#,
    ] {
        let version = crate::helpers::between(&html, prefix, "\"").expect(prefix);
        let path = format!("{}{version}", &prefix[prefix.find('/').unwrap()..]);
        let file = fetch(path.clone()).await;
        assert_eq!(file.status(), 200, "{path}");
        assert_eq!(
            file.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{path}"
        );
        total += file.bytes().await.unwrap().len();
    }
    assert!(total < 30_000, "first visit on the wire: {total} bytes");
    // The event stream stays uncompressed: it is pushed as it happens, and lives for minutes.
    let events = browser
        .get(app.url("/login/events"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert!(events.headers().get("content-encoding").is_none());
    drop(events);
    // An old version's URL is not kept for a year.
    let stale = fetch("/style.css?v=000000000000".into()).await;
    assert_eq!(stale.headers()["cache-control"], "public, max-age=300");
    println!("first visit, br: {total} bytes");
}

#[tokio::test]
async fn the_sites_brand_is_on_its_login_and_binding_pages() {
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.svg");
    std::fs::write(&logo, r#"<svg xmlns="http://www.w3.org/2000/svg"/>"#).unwrap();
    let app = crate::helpers::spawn_app_with(|s| {
        s.brand.site_name = Some("Example Shop".into());
        s.brand.logo_file = Some(logo.clone());
        s.brand.account_name = Some("Example 公众号".into());
        s.brand.privacy_url = Some("https://shop.example/privacy".into());
        s.brand.terms_url = Some("https://shop.example/terms".into());
        s.brand.support_contact = Some("help@shop.example".into());
    })
    .await;
    let login = page(&app, &app.browser(), "/login", "en").await;
    assert!(
        login.contains(r#"<span class="brand-name">Example Shop</span>"#),
        "{login}"
    );
    assert!(login.contains("follow Example 公众号 to log in"), "{login}");
    assert!(login.contains(r#"href="https://shop.example/privacy""#));
    assert!(login.contains(r#"href="https://shop.example/terms""#));
    assert!(
        login.contains("· Example Shop</title>"),
        "the title names the site"
    );
    let version = crate::helpers::between(&login, r#"src="/brand/logo?v="#, "\"").unwrap();
    let src = format!("/brand/logo?v={version}");
    let served = app.get(&app.browser(), &src).await;
    assert_eq!(served.headers()["content-type"], "image/svg+xml");
    assert_eq!(
        served.text().await.unwrap(),
        r#"<svg xmlns="http://www.w3.org/2000/svg"/>"#
    );
    let (binding, _) = app.needs_binding("o_brand").await;
    let bind = page(&app, &binding, "/bind", "en").await;
    assert!(bind.contains("Example Shop") && bind.contains("shop.example/terms"));

    // A logo that can't be read stops the start, naming the setting.
    let mut settings = app.settings.clone();
    settings.site_addr = "127.0.0.1:0".parse().unwrap();
    settings.brand.logo_file = Some(dir.path().join("missing.png"));
    let refused = wxlogin::Application::build(settings).await.err().unwrap();
    assert!(
        format!("{refused:#}").contains("WXLOGIN_LOGO_FILE"),
        "{refused:#}"
    );
}
