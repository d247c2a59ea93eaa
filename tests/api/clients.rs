//! The sites (OpenID Connect clients) in the admin area: listed, edited and removed by an
//! administrator only, every change audited with who did it.

use wxlogin::provider::cli::{ClientCommand, client_command};

use crate::helpers::{TestApp, location, spawn_app};

async fn admin(app: &TestApp) -> (reqwest::Client, String) {
    let browser = app.browser();
    app.log_in_new_user(&browser, "o_clients_admin", "13800138051")
        .await;
    app.exec("UPDATE users SET is_admin = TRUE WHERE phone = '+8613800138051'")
        .await;
    let csrf = app.csrf(&browser, "/").await;
    (browser, csrf)
}

async fn add_client(app: &TestApp) -> String {
    let mut out = Vec::new();
    client_command(
        &app.state.store,
        ClientCommand::Add {
            name: "Wiki".into(),
            redirect_uris: vec!["https://wiki.example.com/cb".into()],
            post_logout_redirect_uris: vec![],
            public: false,
        },
        &mut out,
    )
    .await
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    json["client_id"].as_str().unwrap().to_owned()
}

async fn post(
    app: &TestApp,
    browser: &reqwest::Client,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    browser.post(app.url(path)).form(form).send().await.unwrap()
}

#[tokio::test]
async fn only_administrators_see_and_change_the_sites() {
    let app = spawn_app().await;
    let id = add_client(&app).await;
    let page = format!("/admin/clients/{id}");
    let anonymous = app.browser();
    for path in ["/admin/clients", page.as_str()] {
        let response = app.get(&anonymous, path).await;
        assert_eq!(response.status(), 303, "anonymous GET {path}");
        assert!(location(&response).starts_with("/login?next="));
    }
    let plain = app.browser();
    app.log_in_new_user(&plain, "o_clients_plain", "13800138052")
        .await;
    let csrf = app.csrf(&plain, "/").await;
    for path in ["/admin/clients", page.as_str()] {
        assert_eq!(
            app.get(&plain, path).await.status(),
            403,
            "plain GET {path}"
        );
    }
    let edit = [
        ("csrf", csrf.as_str()),
        ("name", "Mine now"),
        ("redirect_uris", "https://evil.example/cb"),
        ("post_logout_redirect_uris", ""),
    ];
    assert_eq!(post(&app, &plain, &page, &edit).await.status(), 403);
    let remove = [("csrf", csrf.as_str())];
    assert_eq!(
        post(&app, &plain, &format!("{page}/remove"), &remove)
            .await
            .status(),
        403
    );
    let client = app.state.store.oidc.client(&id).await.unwrap().unwrap();
    assert_eq!(client.name, "Wiki", "nothing changed");
}

#[tokio::test]
async fn an_administrator_edits_and_removes_a_site_and_each_change_is_audited() {
    let app = spawn_app().await;
    let id = add_client(&app).await;
    let (browser, csrf) = admin(&app).await;
    let list = app.page_text(&browser, "/admin/clients").await;
    assert!(list.contains(&format!("data-client-id=\"{id}\"")) && list.contains("Wiki"));
    let page = format!("/admin/clients/{id}");

    // A redirect URI that can't be registered: the form comes back with the reason.
    let bad = post(
        &app,
        &browser,
        &page,
        &[
            ("csrf", csrf.as_str()),
            ("name", "Team wiki"),
            ("redirect_uris", "http://wiki.example.com/cb"),
            ("post_logout_redirect_uris", ""),
        ],
    )
    .await;
    assert_eq!(bad.status(), 400);
    let html = bad.text().await.unwrap();
    assert!(html.contains("id=\"client-error\""), "{html}");
    assert!(
        html.contains("http://wiki.example.com/cb"),
        "what was typed stays"
    );
    assert_eq!(
        app.state
            .store
            .oidc
            .client(&id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Wiki"
    );

    // A good edit.
    let ok = post(
        &app,
        &browser,
        &page,
        &[
            ("csrf", csrf.as_str()),
            ("name", "Team wiki"),
            (
                "redirect_uris",
                "https://wiki.example.com/cb\r\nhttps://wiki.example.com/oauth",
            ),
            ("post_logout_redirect_uris", "https://wiki.example.com/"),
        ],
    )
    .await;
    assert_eq!(ok.status(), 303);
    assert_eq!(location(&ok), page);
    let client = app.state.store.oidc.client(&id).await.unwrap().unwrap();
    assert_eq!(client.name, "Team wiki");
    assert_eq!(
        client.redirect_uris,
        [
            "https://wiki.example.com/cb",
            "https://wiki.example.com/oauth"
        ]
    );
    assert_eq!(
        client.post_logout_redirect_uris,
        ["https://wiki.example.com/"]
    );
    let audit = app.state.store.oidc.client_audit(&id, 10).await.unwrap();
    let actions: Vec<_> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["edit", "add"], "newest first");
    assert!(audit[0].actor_user_id.is_some(), "the administrator");
    assert!(audit[1].actor_user_id.is_none(), "the command line");
    assert!(
        audit[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("name: Wiki -> Team wiki")
    );
    let shown = app.page_text(&browser, &page).await;
    assert!(shown.contains("id=\"client-audit\"") && shown.contains("Team wiki"));

    // Removal: gone, audited.
    let gone = post(
        &app,
        &browser,
        &format!("{page}/remove"),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(gone.status(), 303);
    assert!(app.state.store.oidc.client(&id).await.unwrap().is_none());
    assert_eq!(app.get(&browser, &page).await.status(), 404);
    let audit = app.state.store.oidc.client_audit(&id, 10).await.unwrap();
    assert_eq!(audit[0].action, "remove");
}
