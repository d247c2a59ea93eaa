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
    app.exec("UPDATE users SET is_admin = 1 WHERE phone = '+8613800000999'")
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
