//! The admin area: who may enter, the users table (search, filters, keyset pages, CSV), the user
//! detail, the actions and their audit rows, the live dashboard and the command line.

use std::{collections::HashSet, time::Duration};

use crate::helpers::{SseReader, TestApp, between, location, spawn_app};

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// helpers

/// Logs a new person in through the sandbox (scan + SMS binding) and makes them an admin in the
/// database. Returns their browser and user id.
async fn admin_browser(app: &TestApp, openid: &str, phone: &str) -> (reqwest::Client, i64) {
    let browser = app.browser();
    app.log_in_new_user(&browser, openid, phone).await;
    let id = user_id_of(app, phone).await;
    app.exec_with("UPDATE users SET is_admin = TRUE WHERE id = ?", id)
        .await;
    (browser, id)
}

/// POSTs an action form as its page sends it: the CSRF token, and the confirmation that the
/// actions locking someone out need.
async fn act(
    app: &TestApp,
    browser: &reqwest::Client,
    path: &str,
    csrf: &str,
) -> reqwest::Response {
    browser
        .post(app.url(path))
        .form(&[("csrf", csrf), ("confirmed", "1")])
        .send()
        .await
        .unwrap()
}

/// The id of the user with this (national) phone.
async fn user_id_of(app: &TestApp, phone: &str) -> i64 {
    app.select_with(
        "SELECT id FROM users WHERE phone = ?",
        format!("+86{phone}"),
    )
    .await
}

/// A user made directly in the database.
#[derive(Default)]
struct Seed<'a> {
    phone: &'a str,
    openid: Option<&'a str>,
    unionid: Option<&'a str>,
    bound_at: Option<i64>,
    last_login_at: Option<i64>,
    disabled: bool,
    admin: bool,
    following: Option<bool>,
}

async fn seed(app: &TestApp, s: Seed<'_>) -> i64 {
    let id = app
        .select_binds(
            "INSERT INTO users (phone, openid, unionid, is_admin, disabled, created_at, bound_at, last_login_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                format!("+86{}", s.phone),
                s.openid,
                s.unionid,
                s.admin,
                s.disabled,
                wxlogin::util::now() - 86_400,
                s.bound_at,
                s.last_login_at,
            ),
        )
        .await;
    if let (Some(openid), Some(following)) = (s.openid, s.following) {
        app.exec_binds(
            "INSERT INTO followers (openid, following, updated_at) VALUES (?, ?, 0)",
            (openid, following),
        )
        .await;
    }
    id
}

async fn get_html(app: &TestApp, browser: &reqwest::Client, path: &str) -> String {
    let response = app.get(browser, path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    response.text().await.unwrap()
}

/// The user ids of the rows of a users table page, in order.
fn row_ids(html: &str) -> Vec<i64> {
    html.split("data-user-id=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap())
        .collect()
}

/// The "next page" link of a users table page.
fn next_page(html: &str) -> Option<String> {
    between(html, r#"id="next-page" rel="next" href=""#, "\"").map(|h| h.replace("&amp;", "&"))
}

/// The audit rows about `target`: (actor, action, detail).
async fn audit_rows(app: &TestApp, target: i64) -> Vec<(Option<i64>, String, Option<String>)> {
    app.fetch_all(
        "SELECT actor_user_id, action, detail FROM audit_log WHERE target_user_id = ? ORDER BY id",
        (target,),
    )
    .await
}

async fn flags(app: &TestApp, id: i64) -> (bool, bool, Option<String>) {
    app.fetch_one(
        "SELECT is_admin, disabled, openid FROM users WHERE id = ?",
        (id,),
    )
    .await
}

fn encoded(path: &str) -> String {
    url::form_urlencoded::byte_serialize(path.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------
// who may enter

#[tokio::test]
async fn every_admin_route_refuses_anonymous_and_plain_users_and_serves_admins() {
    let app = spawn_app().await;
    let (admin, _) = admin_browser(&app, "admin-1", "13800000001").await;
    let plain = app.browser();
    app.log_in_new_user(&plain, "plain-1", "13800000002").await;
    let target = seed(
        &app,
        Seed {
            phone: "13900000003",
            openid: Some("target-1"),
            bound_at: Some(1_700_000_000),
            ..Seed::default()
        },
    )
    .await;

    let pages = [
        "/admin".to_owned(),
        "/admin/users".to_owned(),
        "/admin/users?q=0003&disabled=no&sort=last_login".to_owned(),
        format!("/admin/users/{target}"),
        "/admin/users.csv?admin=no".to_owned(),
        "/admin/events".to_owned(),
    ];
    let actions = ["disable", "enable", "grant-admin", "revoke-admin", "unbind"]
        .map(|a| format!("/admin/users/{target}/{a}"));

    // Anonymous: sent to log in, and back here afterwards.
    let anonymous = app.browser();
    for path in &pages {
        let response = app.get(&anonymous, path).await;
        assert_eq!(response.status(), 303, "anonymous GET {path}");
        let back = if path == "/admin/events" {
            "/admin"
        } else {
            path
        };
        assert_eq!(
            location(&response),
            format!("/login?next={}", encoded(back)),
            "anonymous GET {path}"
        );
    }
    for path in &actions {
        let response = app.post_csrf(&anonymous, path, "whatever").await;
        assert_eq!(response.status(), 303, "anonymous POST {path}");
        assert_eq!(
            location(&response),
            format!("/login?next={}", encoded(&format!("/admin/users/{target}"))),
            "anonymous POST {path}"
        );
    }

    // A logged-in user who is not an admin: 403, even with their valid CSRF token.
    let plain_csrf = app.csrf(&plain, "/").await;
    for path in &pages {
        let response = app.get(&plain, path).await;
        assert_eq!(response.status(), 403, "plain GET {path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("您无权访问此页面"), "a 403 page: {html}");
    }
    for path in &actions {
        let response = app.post_csrf(&plain, path, &plain_csrf).await;
        assert_eq!(response.status(), 403, "plain POST {path}");
    }
    assert!(audit_rows(&app, target).await.is_empty());
    assert_eq!(
        flags(&app, target).await,
        (false, false, Some("target-1".into()))
    );

    // The admin: pages answer 200, actions 303 back to the user's page.
    for path in &pages {
        let response = app.get(&admin, path).await;
        assert_eq!(response.status(), 200, "admin GET {path}");
        if path == "/admin/events" {
            assert!(
                response.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/event-stream")
            );
        }
    }
    let admin_csrf = app.csrf(&admin, &format!("/admin/users/{target}")).await;
    for path in &actions {
        let response = act(&app, &admin, path, &admin_csrf).await;
        assert_eq!(response.status(), 303, "admin POST {path}");
        assert!(
            location(&response).starts_with(&format!("/admin/users/{target}?done=")),
            "{}",
            location(&response)
        );
    }
    let actions_done: Vec<String> = audit_rows(&app, target)
        .await
        .into_iter()
        .map(|(_, action, _)| action)
        .collect();
    assert_eq!(
        actions_done,
        ["disable", "enable", "grant_admin", "revoke_admin", "unbind"]
    );
}

#[tokio::test]
async fn revoking_the_admin_right_takes_effect_at_the_next_request() {
    let app = spawn_app().await;
    let (admin, id) = admin_browser(&app, "admin-r", "13800000011").await;
    assert_eq!(app.get(&admin, "/admin/users").await.status(), 200);
    app.exec_with("UPDATE users SET is_admin = FALSE WHERE id = ?", id)
        .await;
    assert_eq!(app.get(&admin, "/admin/users").await.status(), 403);
}

#[tokio::test]
async fn logging_in_from_an_admin_link_comes_back_to_it() {
    let app = spawn_app().await;
    let (_, _) = admin_browser(&app, "admin-n", "13800000021").await;
    let browser = app.browser();
    let wanted = "/admin/users?q=5678&disabled=no";
    let refused = app.get(&browser, wanted).await;
    let login = location(&refused);
    let html = get_html(&app, &browser, &login).await;
    let ticket = between(&html, "/sandbox/scan/", "\"").unwrap();
    app.scan(&ticket, "admin-n").await;
    assert_eq!(app.complete_login(&browser).await, wanted);
    assert_eq!(app.get(&browser, wanted).await.status(), 200);
}

// ---------------------------------------------------------------------------------------
// the users table

#[tokio::test]
async fn search_finds_users_by_the_last_four_digits_and_by_wechat_ids() {
    let app = spawn_app().await;
    let (admin, admin_id) = admin_browser(&app, "admin-s", "13800000031").await;
    let a = seed(
        &app,
        Seed {
            phone: "13700005678",
            openid: Some("oAAA111"),
            bound_at: Some(10),
            ..Seed::default()
        },
    )
    .await;
    let b = seed(
        &app,
        Seed {
            phone: "15000005678",
            openid: Some("oBBB222"),
            unionid: Some("uXYZ"),
            bound_at: Some(20),
            ..Seed::default()
        },
    )
    .await;
    let c = seed(
        &app,
        Seed {
            phone: "13900001234",
            openid: Some("oCCC333"),
            bound_at: Some(30),
            ..Seed::default()
        },
    )
    .await;

    let html = get_html(&app, &admin, "/admin/users?q=5678").await;
    assert_eq!(row_ids(&html), [b, a], "newest binding first");
    assert!(
        html.contains("137****5678") && html.contains("150****5678"),
        "masked phones"
    );
    assert!(!html.contains("13700005678"), "no full phone in the table");
    assert!(
        html.contains(r#"value="5678""#),
        "the search box keeps the query"
    );

    // Any part of the phone, typed with spaces; openid; unionid.
    assert_eq!(
        row_ids(&get_html(&app, &admin, "/admin/users?q=139+0000").await),
        [c]
    );
    assert_eq!(
        row_ids(&get_html(&app, &admin, "/admin/users?q=BBB2").await),
        [b]
    );
    assert_eq!(
        row_ids(&get_html(&app, &admin, "/admin/users?q=uXY").await),
        [b]
    );
    // LIKE wildcards typed by the admin match themselves only.
    // `_` is only in the admin's unionid (the sandbox's `union_<openid>`), not a wildcard.
    let html = get_html(&app, &admin, "/admin/users?q=_").await;
    assert_eq!(row_ids(&html), [admin_id]);
    for q in ["%25", "o%25A", "%22%22%22", "a%22+OR+%22b", "*"] {
        let html = get_html(&app, &admin, &format!("/admin/users?q={q}")).await;
        assert!(row_ids(&html).is_empty(), "q={q}: {:?}", row_ids(&html));
        assert!(html.contains(r#"id="no-users""#));
    }

    // The search index follows changes: after an unbind the old openid finds nobody.
    let csrf = app.csrf(&admin, &format!("/admin/users/{a}")).await;
    let unbound = act(&app, &admin, &format!("/admin/users/{a}/unbind"), &csrf).await;
    assert_eq!(unbound.status(), 303);
    assert!(row_ids(&get_html(&app, &admin, "/admin/users?q=AAA1").await).is_empty());
    assert_eq!(
        row_ids(&get_html(&app, &admin, "/admin/users?q=0005678").await),
        [b, a]
    );
}

#[tokio::test]
async fn filters_combine_and_bad_values_are_a_400_that_says_why() {
    let app = spawn_app().await;
    let (admin, admin_id) = admin_browser(&app, "admin-f", "13800000041").await;
    let disabled = seed(
        &app,
        Seed {
            phone: "13900000001",
            openid: Some("f1"),
            bound_at: Some(1),
            disabled: true,
            following: Some(true),
            ..Seed::default()
        },
    )
    .await;
    let unfollowed = seed(
        &app,
        Seed {
            phone: "13900000002",
            openid: Some("f2"),
            bound_at: Some(2),
            following: Some(false),
            ..Seed::default()
        },
    )
    .await;
    let other_admin = seed(
        &app,
        Seed {
            phone: "13900000003",
            openid: Some("f3"),
            bound_at: Some(3),
            admin: true,
            following: Some(true),
            ..Seed::default()
        },
    )
    .await;
    let unbound = seed(
        &app,
        Seed {
            phone: "13900000004",
            ..Seed::default()
        },
    )
    .await;

    let ids = |path: &'static str| {
        let app = &app;
        let admin = &admin;
        async move {
            let mut ids = row_ids(&get_html(app, admin, path).await);
            ids.sort();
            ids
        }
    };
    assert_eq!(ids("/admin/users?disabled=yes").await, [disabled]);
    let mut not_disabled = vec![admin_id, unfollowed, other_admin, unbound];
    not_disabled.sort();
    assert_eq!(ids("/admin/users?disabled=no").await, not_disabled);
    let mut admins = vec![admin_id, other_admin];
    admins.sort();
    assert_eq!(ids("/admin/users?admin=yes").await, admins);
    // The admin logged in through the sandbox, which follows on the first scan.
    let mut following = vec![admin_id, disabled, other_admin];
    following.sort();
    assert_eq!(ids("/admin/users?following=yes").await, following);
    assert_eq!(
        ids("/admin/users?following=no").await,
        [unfollowed, unbound]
    );
    assert_eq!(
        ids("/admin/users?following=yes&admin=no&disabled=no").await,
        Vec::<i64>::new()
    );
    assert_eq!(ids("/admin/users?following=yes&admin=no").await, [disabled]);
    assert_eq!(
        ids("/admin/users?disabled=any&following=&admin=any")
            .await
            .len(),
        5
    );
    // The form shows the filters that are on.
    let html = get_html(&app, &admin, "/admin/users?disabled=yes").await;
    assert!(html.contains(r#"<option value="yes" selected"#), "{html}");

    for (query, says) in [
        ("disabled=maybe", "disabled=maybe"),
        ("following=1", "following=1"),
        ("sort=phone", "sort=phone"),
        ("after=yesterday", "after=yesterday"),
        ("q=a&q=b", "duplicate field"),
    ] {
        for path in ["/admin/users", "/admin/users.csv"] {
            let response = app.get(&admin, &format!("{path}?{query}")).await;
            assert_eq!(response.status(), 400, "{path}?{query}");
            let html = response.text().await.unwrap();
            assert!(html.contains(says), "{query}: {html}");
        }
    }
    let response = app.get(&admin, "/admin/users/abc").await;
    assert_eq!(response.status(), 400);
    assert_eq!(app.get(&admin, "/admin/users/999999").await.status(), 404);
    assert_eq!(
        app.get(&admin, "/admin/users/1?before=x").await.status(),
        400
    );
}

/// Seeds `n` users with many equal times and some without any.
async fn seed_many(app: &TestApp, n: i64) {
    let rows = (0..n).map(|i| {
        // Ties on purpose: 7 users share each bound_at; every 10th has none.
        let bound_at = (i % 10 != 0).then_some(1_700_000_000 + (i / 7) * 60);
        let last_login = (i % 3 != 0).then_some(1_710_000_000 + (i % 11) * 3600);
        (
            format!("+86137{:08}", i),
            format!("seed-{i}"),
            i % 4 == 0,
            bound_at,
            last_login,
        )
    });
    app.db
        .exec_each(
            "INSERT INTO users (phone, openid, is_admin, disabled, created_at, bound_at, last_login_at) \
             VALUES (?, ?, FALSE, ?, 0, ?, ?)",
            rows,
        )
        .await;
}

/// Follows the next-page links from `first` and returns every id seen, page by page.
async fn walk(app: &TestApp, admin: &reqwest::Client, first: &str) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    let mut path = Some(first.to_owned());
    while let Some(p) = path {
        let html = get_html(app, admin, &p).await;
        pages.push(row_ids(&html));
        path = next_page(&html);
        assert!(pages.len() < 20, "pagination does not end");
    }
    pages
}

#[tokio::test]
async fn keyset_pages_cover_every_user_once_in_order() {
    let app = spawn_app().await;
    let (admin, _) = admin_browser(&app, "admin-p", "13800000051").await;
    seed_many(&app, 120).await;

    for (sort, column, filter) in [
        ("bound", "bound_at", ""),
        ("last_login", "last_login_at", ""),
        ("bound", "bound_at", "&disabled=no"),
        ("last_login", "last_login_at", "&disabled=yes"),
    ] {
        let pages = walk(&app, &admin, &format!("/admin/users?sort={sort}{filter}")).await;
        let where_ = match filter {
            "&disabled=no" => "WHERE disabled = FALSE",
            "&disabled=yes" => "WHERE disabled = TRUE",
            _ => "",
        };
        // Times unknown last, as the page lists them (SQLite's default, not PostgreSQL's).
        let expected: Vec<i64> = app
            .db
            .select_all(
                &format!(
                    "SELECT id FROM users {where_} ORDER BY {column} DESC NULLS LAST, id DESC"
                ),
                (),
            )
            .await;
        for page in &pages[..pages.len() - 1] {
            assert_eq!(page.len(), 50, "full pages of 50 ({sort}{filter})");
        }
        let seen: Vec<i64> = pages.concat();
        let unique: HashSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "no duplicates ({sort}{filter})");
        assert_eq!(seen, expected, "no gaps, in order ({sort}{filter})");
    }
    // 121 users: pages of 50, 50, 21.
    let pages = walk(&app, &admin, "/admin/users").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [50, 50, 21]);
    // A later page offers the way back to the first.
    let html = get_html(&app, &admin, "/admin/users").await;
    let second = get_html(&app, &admin, &next_page(&html).unwrap()).await;
    assert!(second.contains(r#"id="first-page""#));
}

#[tokio::test]
async fn csv_export_streams_the_filtered_list_with_full_phones_and_escaping() {
    let app = spawn_app().await;
    let (admin, _) = admin_browser(&app, "admin-c", "13800000061").await;
    let a = seed(
        &app,
        Seed {
            phone: "13600000001",
            openid: Some("oc1"),
            unionid: Some("u,1\"x"),
            bound_at: Some(1_764_000_000),
            disabled: true,
            following: Some(true),
            ..Seed::default()
        },
    )
    .await;
    seed(
        &app,
        Seed {
            phone: "13600000002",
            openid: Some("oc2"),
            bound_at: Some(1_764_000_100),
            ..Seed::default()
        },
    )
    .await;

    let response = app
        .get(&admin, "/admin/users.csv?disabled=yes&after=5:5")
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("users.csv")
    );
    let csv = response.text().await.unwrap();
    assert_eq!(
        csv,
        format!(
            "id,phone,openid,unionid,following,admin,disabled,bound_at,last_login_at\r\n\
             {a},+8613600000001,oc1,\"u,1\"\"x\",1,0,1,2025-11-25 00:00:00,\r\n"
        )
    );

    // Everyone, over several chunks.
    seed_many(&app, 600).await;
    let csv = app
        .get(&admin, "/admin/users.csv")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 1 + 603);
    assert!(csv.contains("+8613700000599,seed-599,"));
}

// ---------------------------------------------------------------------------------------
// detail and actions

#[tokio::test]
async fn detail_shows_the_full_phone_login_history_pages_and_the_audit_log() {
    let app = spawn_app().await;
    let (admin, _) = admin_browser(&app, "admin-d", "13800000071").await;
    let id = seed(
        &app,
        Seed {
            phone: "13700000077",
            openid: Some("od1"),
            unionid: Some("ud1"),
            bound_at: Some(1_700_000_000),
            ..Seed::default()
        },
    )
    .await;
    // 25 events of theirs, and a scan of their WeChat before it was bound.
    app.exec(
        "INSERT INTO login_events (user_id, openid, outcome, client_ip, user_agent, at) \
         VALUES (NULL, 'od1', 'needs_bind', '10.0.0.1', 'Mozilla/5.0 (Windows NT 10.0) Chrome/120', 1000)",
    )
    .await;
    for i in 0..25 {
        app.exec_binds(
            "INSERT INTO login_events (user_id, openid, outcome, client_ip, user_agent, at) \
             VALUES (?, 'od1', ?, '10.0.0.2', 'curl', ?)",
            (id, if i == 24 { "disabled" } else { "logged_in" }, 2000 + i),
        )
        .await;
    }

    let html = get_html(&app, &admin, &format!("/admin/users/{id}")).await;
    assert!(html.contains("+8613700000077"), "the full phone");
    assert!(html.contains("od1") && html.contains("ud1"));
    let events = |html: &str| -> Vec<i64> {
        html.split("data-event-id=\"")
            .skip(1)
            .map(|r| r[..r.find('"').unwrap()].parse().unwrap())
            .collect()
    };
    let first = events(&html);
    assert_eq!(first.len(), 20);
    assert!(
        html.contains("outcome-disabled"),
        "newest first: the refused scan"
    );
    let older = between(&html, r#"id="older-logins" href=""#, "\"").unwrap();
    let html2 = get_html(&app, &admin, &older.replace("&amp;", "&")).await;
    let second = events(&html2);
    assert_eq!(second.len(), 6);
    assert!(
        html2.contains("outcome-needs_bind"),
        "the scan before binding"
    );
    assert!(!html2.contains(r#"id="older-logins""#));
    let mut all: Vec<i64> = first.into_iter().chain(second).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "no event twice");
}

#[tokio::test]
async fn actions_change_the_user_and_write_the_audit_log_in_one_go() {
    let app = spawn_app().await;
    let (admin, admin_id) = admin_browser(&app, "admin-a", "13800000081").await;
    let id = seed(
        &app,
        Seed {
            phone: "13700000088",
            openid: Some("oa1"),
            bound_at: Some(1_700_000_000),
            ..Seed::default()
        },
    )
    .await;
    let page = format!("/admin/users/{id}");
    let csrf = app.csrf(&admin, &page).await;

    act(&app, &admin, &format!("{page}/disable"), &csrf).await;
    assert_eq!(flags(&app, id).await, (false, true, Some("oa1".into())));
    // Disabling again changes nothing and records nothing.
    act(&app, &admin, &format!("{page}/disable"), &csrf).await;
    act(&app, &admin, &format!("{page}/grant-admin"), &csrf).await;
    assert_eq!(flags(&app, id).await, (true, true, Some("oa1".into())));
    act(&app, &admin, &format!("{page}/unbind"), &csrf).await;
    let bound_at: Option<i64> = app
        .select_with("SELECT bound_at FROM users WHERE id = ?", id)
        .await;
    assert_eq!(flags(&app, id).await, (true, true, None));
    assert_eq!(bound_at, None);

    let rows = audit_rows(&app, id).await;
    assert_eq!(
        rows,
        [
            // Each says where the administrator was.
            (
                Some(admin_id),
                "disable".to_owned(),
                Some("IP 127.0.0.1".to_owned())
            ),
            (
                Some(admin_id),
                "grant_admin".to_owned(),
                Some("IP 127.0.0.1".to_owned())
            ),
            (
                Some(admin_id),
                "unbind".to_owned(),
                Some("openid oa1, IP 127.0.0.1".to_owned())
            ),
        ]
    );
    let at: i64 = app.select("SELECT MIN(at) FROM audit_log").await;
    assert!((wxlogin::util::now() - at).abs() < 60);

    // The detail page shows them, newest first, with who did it.
    let html = get_html(&app, &admin, &page).await;
    let shown: Vec<&str> = html
        .split("data-audit-action=\"")
        .skip(1)
        .map(|r| &r[..r.find('"').unwrap()])
        .collect();
    assert_eq!(shown, ["unbind", "grant_admin", "disable"]);
    assert!(html.contains("138****0081"), "the actor");
    assert!(html.contains(r#"id="action-enable""#) && !html.contains(r#"id="action-disable""#));
    assert!(
        !html.contains(r#"id="action-unbind""#),
        "nothing to unbind any more"
    );

    // Unknown actions and users.
    assert_eq!(
        act(&app, &admin, &format!("{page}/delete"), &csrf)
            .await
            .status(),
        404
    );
    assert_eq!(
        act(&app, &admin, "/admin/users/999999/disable", &csrf)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn actions_without_the_sessions_csrf_token_are_refused() {
    let app = spawn_app().await;
    let (admin, _) = admin_browser(&app, "admin-x", "13800000091").await;
    let id = seed(
        &app,
        Seed {
            phone: "13700000099",
            openid: Some("ox1"),
            bound_at: Some(1),
            ..Seed::default()
        },
    )
    .await;
    // A token from another session is as good as none.
    let other = app.browser();
    app.log_in_new_user(&other, "other-x", "13700000098").await;
    let foreign = app.csrf(&other, "/").await;
    for form in [
        vec![("csrf", foreign.as_str())],
        vec![("csrf", "0123456789abcdef0123456789abcdef")],
        vec![("csrf", "")],
        vec![],
    ] {
        let response = admin
            .post(app.url(&format!("/admin/users/{id}/disable")))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{form:?}");
    }
    assert_eq!(flags(&app, id).await, (false, false, Some("ox1".into())));
    assert!(audit_rows(&app, id).await.is_empty());
}

#[tokio::test]
async fn an_admin_cannot_act_on_their_own_account() {
    let app = spawn_app().await;
    let (admin, admin_id) = admin_browser(&app, "admin-self", "13800000101").await;
    let page = format!("/admin/users/{admin_id}");
    let html = get_html(&app, &admin, &page).await;
    assert!(html.contains(r#"id="self-note""#) && !html.contains("action-disable"));
    let csrf = app.csrf(&admin, "/").await;
    for action in ["disable", "revoke-admin", "grant-admin", "unbind"] {
        let response = act(&app, &admin, &format!("{page}/{action}"), &csrf).await;
        assert_eq!(response.status(), 400, "{action}");
        let html = response.text().await.unwrap();
        assert!(html.contains("不能对自己的账号执行此操作"), "{html}");
    }
    assert_eq!(
        flags(&app, admin_id).await,
        (true, false, Some("admin-self".into()))
    );
    assert!(audit_rows(&app, admin_id).await.is_empty());
    assert_eq!(app.get(&admin, "/admin").await.status(), 200);
}

#[tokio::test]
async fn disabling_ends_the_session_at_the_next_request_and_refuses_the_next_scan() {
    let app = spawn_app().await;
    let (admin, _) = admin_browser(&app, "admin-z", "13800000111").await;
    let person = app.browser();
    app.log_in_new_user(&person, "person-z", "13700000111")
        .await;
    let id = user_id_of(&app, "13700000111").await;
    assert!(
        get_html(&app, &person, "/")
            .await
            .contains(r#"id="whoami""#)
    );

    let csrf = app.csrf(&admin, &format!("/admin/users/{id}")).await;
    let done = act(&app, &admin, &format!("/admin/users/{id}/disable"), &csrf).await;
    assert_eq!(done.status(), 303);

    // Their open session is over at its next request...
    let html = get_html(&app, &person, "/").await;
    assert!(!html.contains(r#"id="whoami""#) && html.contains(r#"id="login-link""#));
    // ...and stays over (the session was ended, not just hidden once).
    let html = get_html(&app, &person, "/").await;
    assert!(html.contains(r#"id="login-link""#));
    // Their next scan is refused with the "disabled" reply.
    let page = app.open_login(&person).await;
    let answer = app.scan(&page.ticket, "person-z").await;
    assert!(
        answer["reply"].as_str().unwrap().contains("停用"),
        "{answer}"
    );
    let outcome: String = app
        .select_with(
            "SELECT outcome FROM login_events WHERE user_id = ? ORDER BY id DESC LIMIT 1",
            id,
        )
        .await;
    assert_eq!(outcome, "disabled");

    // Enabled again, they log in with their next scan.
    act(&app, &admin, &format!("/admin/users/{id}/enable"), &csrf).await;
    // The refused QR code stays on the login page until they ask for a new one.
    let html = get_html(&app, &person, "/login?fresh=1").await;
    let ticket = between(&html, "/sandbox/scan/", "\"").unwrap();
    let answer = app.scan(&ticket, "person-z").await;
    assert!(
        !answer["reply"].as_str().unwrap().contains("停用"),
        "{answer}"
    );
    assert_eq!(app.complete_login(&person).await, "/");
    assert!(
        get_html(&app, &person, "/")
            .await
            .contains(r#"id="whoami""#)
    );
}

// ---------------------------------------------------------------------------------------
// dashboard

#[tokio::test]
async fn dashboard_shows_totals_a_chart_and_the_latest_scans_live() {
    let app = spawn_app().await;
    let (admin, _) = admin_browser(&app, "admin-l", "13800000121").await;
    seed(
        &app,
        Seed {
            phone: "13700000121",
            openid: Some("ol1"),
            bound_at: Some(1),
            disabled: true,
            following: Some(false),
            ..Seed::default()
        },
    )
    .await;

    let html = get_html(&app, &admin, "/admin").await;
    assert!(
        html.contains(r#"<span id="total-users" class="total">2</span>"#),
        "{html}"
    );
    assert!(html.contains(r#"<span id="total-following" class="total">1</span>"#));
    assert!(html.contains(r#"<span id="total-disabled" class="total">1</span>"#));
    assert_eq!(
        html.matches("class=\"bar\"").count(),
        60,
        "30 days, 2 bars each"
    );
    // The admin's own binding and login are today's.
    assert!(
        html.contains("138****0121"),
        "latest scans list the admin's login"
    );
    assert!(html.contains(r#"id="latest-logins""#) && html.contains("data-live"));
    let last_id = between(&html, r#"data-last-id=""#, "\"").unwrap();

    // A stream from the id the page was drawn with gets the next login as a list item.
    let mut events =
        SseReader::connect_to(&app, &admin, &format!("/admin/events?after={last_id}")).await;
    assert_eq!(events.status, 200);
    let person = app.browser();
    app.log_in_new_user(&person, "person-l", "13700000122")
        .await;
    // Binding scans twice' worth: the needs_bind scan, then the login.
    let first = events
        .next(WAIT)
        .await
        .expect("the first scan arrives live");
    assert_eq!(first.event, "login");
    assert!(
        first.data.starts_with("<li") && first.data.contains("outcome-needs_bind"),
        "{first:?}"
    );
    let second = events.next(WAIT).await.expect("the login arrives live");
    assert!(
        second.data.contains("137****0122") && second.data.contains("outcome-logged_in"),
        "{second:?}"
    );
    assert!(!second.data.contains("13700000122"), "masked phone only");

    // A stream opened with an old id catches up on everything after it.
    let mut replay = SseReader::connect_to(&app, &admin, "/admin/events?after=0").await;
    let mut seen = 0;
    while replay.next(Duration::from_millis(500)).await.is_some() {
        seen += 1;
    }
    let total: i64 = app.count("login_events").await;
    assert_eq!(seen, total);

    // A stream ends once its admin is no longer one.
    app.exec("UPDATE users SET is_admin = FALSE WHERE phone = '+8613800000121'")
        .await;
    app.log_in_new_user(&app.browser(), "person-l2", "13700000123")
        .await;
    let mut after = Vec::new();
    while let Some(e) = events.next(WAIT).await {
        after.push(e);
    }
    assert!(after.is_empty(), "nothing more for an ex-admin: {after:?}");
}

// ---------------------------------------------------------------------------------------
// command line

fn wxlogin_admin(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wxlogin"))
        .arg("admin")
        .args(args)
        .env("WXLOGIN_DATABASE_URL", &app.settings.database_url)
        .env("WXLOGIN_MODE", "sandbox")
        .env("RUST_LOG", "warn")
        .output()
        .expect("wxlogin runs")
}

#[tokio::test]
async fn command_line_grants_revokes_and_lists_while_the_server_runs() {
    let app = spawn_app().await;
    let browser = app.browser();
    app.log_in_new_user(&browser, "cli-1", "13800000131").await;
    let id = user_id_of(&app, "13800000131").await;
    assert_eq!(app.get(&browser, "/admin").await.status(), 403);

    let unknown = wxlogin_admin(&app, &["grant", "13999999999"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("no user has the phone number +8613999999999"),
        "{stderr}"
    );
    let bad = wxlogin_admin(&app, &["grant", "12345"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a mainland China mobile number"));

    let list = wxlogin_admin(&app, &["list"]);
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stdout).contains("no administrators yet"));

    let granted = wxlogin_admin(&app, &["grant", "+86 138 0000 0131"]);
    assert!(granted.status.success(), "{granted:?}");
    assert!(String::from_utf8_lossy(&granted.stdout).contains("+8613800000131 (user"));
    // At the next request, without logging in again.
    assert_eq!(app.get(&browser, "/admin").await.status(), 200);
    let list = wxlogin_admin(&app, &["list"]);
    let out = String::from_utf8_lossy(&list.stdout);
    assert!(
        out.contains("+8613800000131") && out.contains("active"),
        "{out}"
    );
    let again = wxlogin_admin(&app, &["grant", "13800000131"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already"));

    let revoked = wxlogin_admin(&app, &["revoke", "13800000131"]);
    assert!(revoked.status.success());
    assert_eq!(app.get(&browser, "/admin").await.status(), 403);
    assert_eq!(
        audit_rows(&app, id).await,
        [
            (
                None,
                "grant_admin".to_owned(),
                Some("command line".to_owned())
            ),
            (
                None,
                "revoke_admin".to_owned(),
                Some("command line".to_owned())
            ),
        ]
    );
}

#[tokio::test]
async fn control_characters_in_a_search_are_a_clear_400_for_the_page_and_the_export() {
    let app = spawn_app().await;
    let (admin, _) = admin_browser(&app, "admin-nul", "13800000049").await;
    for path in [
        "/admin/users?q=%00ab",
        "/admin/users.csv?q=%00ab",
        "/admin/users?q=ab%1B",
    ] {
        let response = app
            .get_with_header(&admin, path, ("accept-language", "en"))
            .await;
        assert_eq!(response.status(), 400, "{path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("control characters"), "{path}: {html}");
    }
    // An ordinary search still works.
    let ok = app.get(&admin, "/admin/users?q=0049").await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn actions_that_lock_someone_out_ask_first_and_every_action_says_it_is_done() {
    let app = spawn_app().await;
    let (admin, _) = admin_browser(&app, "admin-c", "13800000091").await;
    let id = seed(
        &app,
        Seed {
            phone: "13700000099",
            openid: Some("oc1"),
            ..Seed::default()
        },
    )
    .await;
    let page = format!("/admin/users/{id}");
    let html = get_html(&app, &admin, &page).await;
    // The first step is a link that changes nothing; enabling and granting are one step.
    assert!(
        html.contains(&format!(
            r#"<a id="action-disable" href="{page}?confirm=disable" class="button danger">"#
        )),
        "{html}"
    );
    assert!(html.contains(r#"<form id="action-grant-admin""#));
    let asked = get_html(&app, &admin, &format!("{page}?confirm=disable")).await;
    assert!(
        asked.contains(r#"id="confirm""#) && asked.contains("会话会立即结束"),
        "{asked}"
    );
    assert!(asked.contains(r#"id="confirm-disable""#) && asked.contains(r#"id="confirm-cancel""#));
    assert!(!flags(&app, id).await.1, "asking changes nothing");
    // A POST without the confirmation is sent to ask, and changes nothing.
    let csrf = app.csrf(&admin, &page).await;
    let unconfirmed = app
        .post_csrf(&admin, &format!("{page}/disable"), &csrf)
        .await;
    assert_eq!(location(&unconfirmed), format!("{page}?confirm=disable"));
    assert!(!flags(&app, id).await.1);
    assert!(audit_rows(&app, id).await.is_empty());
    // Confirmed: done, and the page says so, with a badge.
    let done = act(&app, &admin, &format!("{page}/disable"), &csrf).await;
    assert_eq!(location(&done), format!("{page}?done=disable"));
    assert!(flags(&app, id).await.1);
    let html = get_html(&app, &admin, &format!("{page}?done=disable")).await;
    assert!(
        html.contains(r#"id="done""#) && html.contains(r#"id="disabled-badge""#),
        "{html}"
    );
    let list = get_html(&app, &admin, "/admin/users").await;
    assert!(list.contains("badge-disabled"), "the table shows it too");
    // A made-up confirmation or message is nothing.
    let odd = get_html(&app, &admin, &format!("{page}?confirm=delete&done=nope")).await;
    assert!(!odd.contains(r#"id="confirm""#) && !odd.contains(r#"id="done""#));
}
