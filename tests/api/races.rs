//! Limits under fire: many requests written at once, each complete but for its last byte and
//! then released together, as an attacker racing a limit sends them. Each limit must hold
//! however many arrive at the same moment.

use rand::Rng;

use crate::helpers::{RawResponse, raw_request, release_together, spawn_app_with};

const PHONE: &str = "13900000077";

/// A six-digit code other than `code`, different for each `i`.
fn wrong_code(code: &str, i: u32) -> String {
    let right: u32 = code.parse().unwrap();
    format!("{:06}", (right + 1 + i) % 1_000_000)
}

fn count(responses: &[RawResponse], pick: impl Fn(&RawResponse) -> bool) -> usize {
    responses.iter().filter(|r| pick(r)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_parallel_guesses_get_no_more_comparisons_than_the_limit() {
    let max_attempts = 5;
    for round in 0..4 {
        let app = spawn_app_with(|s| s.sms.limits.max_attempts = max_attempts).await;
        let (browser, jar) = app.browser_with_jar();
        let page = app.open_login(&browser).await;
        app.scan(&page.ticket, &format!("o_race_{round}")).await;
        let csrf = app.csrf(&browser, "/bind").await;
        assert_eq!(app.send_code(&browser, &csrf, PHONE).await.status(), 303);
        let code = app.sms_code(PHONE).await.unwrap();
        let cookie = format!("Cookie: {}", app.cookie_header(&jar));
        let right_at = rand::thread_rng().gen_range(0..=100);
        let requests = (0..=100u32)
            .map(|i| {
                let guess = if i == right_at {
                    code.clone()
                } else {
                    wrong_code(&code, i)
                };
                let body = format!("csrf={csrf}&code={guess}");
                let headers = [cookie.clone(), "Accept-Language: en".to_owned()];
                raw_request("POST", "/bind/verify", &headers, Some(&body))
            })
            .collect();

        let responses = release_together(app.host(), requests).await;

        // Every answer is on to the login (the right code compared in time, or a guess that
        // came after it had linked the phone: the page sends that browser on without comparing)
        // or back to the form (post/redirect/get): the count is the database's.
        let accepted = count(&responses, |r| {
            r.status == 303 && r.head.contains("location: /login/complete")
        });
        let refused = count(&responses, |r| {
            r.status == 303 && r.head.contains("location: /bind")
        });
        assert_eq!(
            accepted + refused,
            101,
            "round {round}: every answer is one of the two: {:?}",
            responses.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        let users = app.count("users").await;
        assert!(
            users <= 1,
            "round {round}: one code links one phone at most"
        );
        assert_eq!(
            users == 1,
            accepted > 0,
            "round {round}: on exactly when linked"
        );
        // Each try is counted before its comparison and the count stops at the limit; a right
        // code compared early ends the counting sooner.
        let attempts: i64 = app.select("SELECT attempts FROM sms_codes").await;
        if users == 0 {
            assert_eq!(attempts, max_attempts, "round {round}: the tries counted");
        } else {
            assert!(
                (1..=max_attempts).contains(&attempts),
                "round {round}: {attempts} tries counted"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_first_visits_from_one_address_make_exactly_the_cap_of_codes() {
    let app = spawn_app_with(|s| s.ops.qr_per_ip_per_hour = 5).await;
    let requests = (0..50)
        .map(|_| raw_request("GET", "/login", &[], None))
        .collect();

    let responses = release_together(app.host(), requests).await;

    assert_eq!(count(&responses, |r| r.status == 200), 5);
    assert_eq!(count(&responses, |r| r.status == 429), 45);
    assert_eq!(
        app.count("sandbox_tickets").await,
        5,
        "QR codes made at WeChat"
    );
    assert_eq!(app.count("login_scenes").await, 5);
    // A refused visitor costs nothing to keep: no cookie, no stored session.
    for refused in responses.iter().filter(|r| r.status == 429) {
        assert!(!refused.head.contains("set-cookie"), "{}", refused.head);
        assert!(refused.head.contains("retry-after"));
    }
    assert_eq!(app.count_sessions().await, 5);
}

#[tokio::test]
async fn a_code_wechat_failed_to_make_gives_its_slot_back() {
    let app = spawn_app_with(|s| s.ops.qr_per_ip_per_hour = 2).await;
    // The first code takes one of the two slots (and fetches the access token).
    app.open_login(&app.browser()).await;
    let faults = serde_json::json!({ "errcode": 45009, "times": 1 });
    assert_eq!(
        app.post_json("/sandbox/api/faults", &faults).await.status(),
        200
    );

    let failed = app.get(&app.browser(), "/login").await;
    assert_eq!(failed.status(), 503);
    assert!(failed.headers().get("set-cookie").is_none());

    // The second slot of the hour is still there.
    let page = app.open_login(&app.browser()).await;
    assert!(page.html.contains("<svg"));
    let capped = app.get(&app.browser(), "/login").await;
    assert_eq!(capped.status(), 429);
    assert_eq!(app.count_sessions().await, 2);
}

#[tokio::test]
async fn ipv6_clients_are_capped_by_their_64() {
    let app = spawn_app_with(|s| {
        s.ops.qr_per_ip_per_hour = 2;
        s.ops.trusted_proxies = vec![wxlogin::config::IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    let visit = |ip: &'static str| {
        let app = &app;
        async move {
            app.get_with_header(&app.browser(), "/login", ("x-forwarded-for", ip))
                .await
                .status()
        }
    };
    assert_eq!(visit("2001:db8:1:2::a").await, 200);
    assert_eq!(visit("2001:db8:1:2:ffff::b").await, 200);
    // A third address of the same /64 is the same subscriber line.
    assert_eq!(visit("2001:db8:1:2::c").await, 429);
    assert_eq!(
        visit("2001:db8:1:3::1").await,
        200,
        "another /64 is another client"
    );
}

#[tokio::test]
async fn a_visitor_who_hangs_up_while_wechat_is_slow_still_spends_a_slot() {
    let app = spawn_app_with(|s| s.ops.qr_per_ip_per_hour = 3).await;
    // The first code takes one of the three slots (and fetches the access token).
    app.open_login(&app.browser()).await;
    let slow = serde_json::json!({ "delay_ms": 2000, "times": 1 });
    assert_eq!(
        app.post_json("/sandbox/api/faults", &slow).await.status(),
        200
    );

    // This visitor gives up before WeChat answers. WeChat makes the code all the same, so it
    // must be stored and counted: hanging up is no way around the cap.
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    assert!(impatient.get(app.url("/login")).send().await.is_err());
    let stored = crate::helpers::poll(50, std::time::Duration::from_millis(100), || async {
        (app.count("login_scenes").await == 2).then_some(())
    })
    .await;
    assert!(stored.is_some(), "the abandoned visit's code was stored");

    assert_eq!(app.get(&app.browser(), "/login").await.status(), 200);
    assert_eq!(app.get(&app.browser(), "/login").await.status(), 429);
    assert_eq!(app.count("login_scenes").await, 3);
}
