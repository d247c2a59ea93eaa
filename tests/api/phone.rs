//! Logging in from a phone: web authorization inside WeChat's browser (through the sandbox's
//! stand-in for it), the QR code saved as an image, and SMS-code login with its limits.

use std::time::{Duration, Instant};

use url::Url;

use crate::helpers::{
    RawResponse, TestApp, between, location, poll, raw_request, release_together, spawn_app,
    spawn_app_with,
};
use wxlogin::config::PhoneLoginPolicy;

const WECHAT_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) \
    AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) \
    NetType/WIFI Language/zh_CN";
const WECOM_UA: &str = "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 Chrome/116.0 Mobile \
    Safari/537.36 wxwork/4.1.10 MicroMessenger/7.0.1";
const SAFARI_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) \
    AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

/// A browser with its own cookie jar that says it is `user_agent`.
fn browser_as(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .default_headers(
            [(
                reqwest::header::ACCEPT_LANGUAGE,
                reqwest::header::HeaderValue::from_static("en"),
            )]
            .into_iter()
            .collect(),
        )
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The value of query parameter `name` in `url`.
fn param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Opens `/login` in WeChat's browser: the redirect to (the sandbox's) WeChat authorize page.
async fn authorize_url(app: &TestApp, browser: &reqwest::Client) -> String {
    let login = app.get(browser, "/login").await;
    assert_eq!(login.status(), 303, "GET /login in WeChat");
    location(&login)
}

/// The sandbox's WeChat answers the authorization as `openid` (or cancels, with `None`):
/// where it sends the browser back to.
async fn wechat_answers(
    app: &TestApp,
    browser: &reqwest::Client,
    authorize: &str,
    openid: Option<&str>,
    snapshot: bool,
) -> String {
    let mut form: Vec<(String, String)> = ["appid", "redirect_uri", "scope", "state"]
        .iter()
        .map(|k| (k.to_string(), param(authorize, k).unwrap_or_default()))
        .collect();
    match openid {
        Some(openid) => form.push(("openid".into(), openid.into())),
        None => form.push(("deny".into(), "1".into())),
    }
    if snapshot {
        form.push(("snapshot".into(), "1".into()));
    }
    let chosen = browser
        .post(app.url("/sandbox/connect/oauth2/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), 303, "the sandbox goes back to the site");
    location(&chosen)
}

/// A whole web authorization as `openid`: the answer of `/login/wechat`.
async fn log_in_in_wechat(
    app: &TestApp,
    browser: &reqwest::Client,
    openid: &str,
) -> reqwest::Response {
    let authorize = authorize_url(app, browser).await;
    let back = wechat_answers(app, browser, &authorize, Some(openid), false).await;
    browser.get(back).send().await.unwrap()
}

/// A user bound to `phone` with WeChat `openid`, made by a scan and a binding elsewhere.
async fn bound_user(app: &TestApp, openid: &str, phone: &str) {
    app.log_in_new_user(&app.browser(), openid, phone).await;
    // As if the binding were minutes ago: its code's resend cooldown has passed.
    app.exec("UPDATE sms_codes SET created_at = created_at - 120")
        .await;
}

#[tokio::test]
async fn in_wechat_the_login_page_sends_the_browser_to_authorize_and_makes_no_qr_code() {
    let app = spawn_app().await;
    let browser = browser_as(WECHAT_UA);
    let to = authorize_url(&app, &browser).await;

    let url = Url::parse(&to).unwrap();
    assert_eq!(url.path(), "/sandbox/connect/oauth2/authorize");
    assert_eq!(url.fragment(), Some("wechat_redirect"));
    assert_eq!(param(&to, "appid").unwrap(), app.settings.wechat.appid);
    assert_eq!(
        param(&to, "redirect_uri").unwrap(),
        app.url("/login/wechat")
    );
    assert_eq!(param(&to, "response_type").unwrap(), "code");
    assert_eq!(param(&to, "scope").unwrap(), "snsapi_base");
    let state = param(&to, "state").unwrap();
    assert_eq!(state.len(), 32, "{state}");
    assert_eq!(app.count("sandbox_tickets").await, 0, "no QR code made");
    // The sandbox plays WeChat's browser: it asks who this is.
    let page = browser.get(url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"oauth-form\""), "{page}");
}

#[tokio::test]
async fn a_bound_person_authorized_in_wechat_is_logged_in_by_wechat_oauth() {
    let app = spawn_app().await;
    bound_user(&app, "o_phone_1", "13800000101").await;
    let browser = browser_as(WECHAT_UA);

    let back = log_in_in_wechat(&app, &browser, "o_phone_1").await;
    assert_eq!(location(&back), "/login/complete");
    assert_eq!(app.complete_login(&browser).await, "/");

    let home = app.page_text(&browser, "/").await;
    assert!(home.contains("138****0101"), "{home}");
    let method: String = app
        .select("SELECT method FROM login_events ORDER BY id DESC LIMIT 1")
        .await;
    assert_eq!(method, "wechat_oauth");
    // They follow the account (their scan made them): no card.
    assert!(!home.contains("follow-card"), "{home}");
}

#[tokio::test]
async fn a_new_person_authorized_in_wechat_binds_a_phone_and_is_asked_to_follow() {
    let app = spawn_app().await;
    let browser = browser_as(WECHAT_UA);

    let back = log_in_in_wechat(&app, &browser, "o_phone_new").await;
    assert_eq!(location(&back), "/bind");
    let csrf = app.csrf(&browser, "/bind").await;
    assert_eq!(
        app.send_code(&browser, &csrf, "13800000102").await.status(),
        303
    );
    let code = app.sms_code("13800000102").await.unwrap();
    assert_eq!(
        location(&app.verify_code(&browser, &csrf, &code).await),
        "/login/complete"
    );
    assert_eq!(app.complete_login(&browser).await, "/");

    let openid: String = app.select("SELECT openid FROM users").await;
    assert_eq!(openid, "o_phone_new");
    let methods: Vec<(String, String)> = app
        .fetch_all("SELECT outcome, method FROM login_events ORDER BY id", ())
        .await;
    assert_eq!(
        methods,
        [
            ("needs_bind".to_owned(), "wechat_oauth".to_owned()),
            ("logged_in".to_owned(), "wechat_oauth".to_owned())
        ]
    );
    // Web authorization doesn't follow: the home page suggests it, with the account's code.
    let home = app.page_text(&browser, "/").await;
    assert!(home.contains("id=\"follow-card\""), "{home}");
    let png = app.get(&browser, "/login/follow-qr.png").await;
    assert_eq!(png.headers()["content-type"], "image/png");
    let decoded = decode_qr(&png.bytes().await.unwrap());
    assert_eq!(Some(decoded), app.settings.phones.follow_qr_url.clone());

    // Once they follow (the callback says so), the card goes.
    let xml = wxlogin::wechat::message::scan_event_xml("gh", "o_phone_new", 1, true, "x", "T")
        .replace("qrscene_x", "")
        .replace("<Ticket><![CDATA[T]]></Ticket>", "");
    app.post_callback(&xml).await;
    let following: bool = app
        .select("SELECT following FROM followers WHERE openid = 'o_phone_new'")
        .await;
    assert!(following);
    let home = app.page_text(&browser, "/").await;
    assert!(!home.contains("follow-card"), "{home}");
}

#[tokio::test]
async fn the_follow_card_can_be_turned_off() {
    let app = spawn_app_with(|s| s.phones.follow_qr_url = None).await;
    let browser = browser_as(WECHAT_UA);
    bound_user(&app, "o_card_off", "13800000103").await;
    app.exec("UPDATE followers SET following = FALSE").await;
    assert_eq!(
        location(&log_in_in_wechat(&app, &browser, "o_card_off").await),
        "/login/complete"
    );
    app.complete_login(&browser).await;
    assert!(!app.page_text(&browser, "/").await.contains("follow-card"));
    assert_eq!(
        app.get(&browser, "/login/follow-qr.png").await.status(),
        404
    );
}

#[tokio::test]
async fn a_disabled_person_authorized_in_wechat_is_refused() {
    let app = spawn_app().await;
    bound_user(&app, "o_phone_off", "13800000104").await;
    app.exec("UPDATE users SET disabled = TRUE").await;
    let browser = browser_as(WECHAT_UA);

    let back = log_in_in_wechat(&app, &browser, "o_phone_off").await;
    assert_eq!(back.status(), 403);
    let page = back.text().await.unwrap();
    assert!(page.contains("This account is disabled"), "{page}");
    assert_eq!(
        location(&app.get(&browser, "/login/complete").await),
        "/login"
    );
    let outcome: String = app
        .select("SELECT outcome FROM login_events ORDER BY id DESC LIMIT 1")
        .await;
    assert_eq!(outcome, "disabled");
}

#[tokio::test]
async fn a_state_works_once_for_its_own_browser_only() {
    let app = spawn_app().await;
    bound_user(&app, "o_state", "13800000105").await;
    let browser = browser_as(WECHAT_UA);
    let stranger = browser_as(WECHAT_UA);
    authorize_url(&app, &stranger).await; // the stranger has a session too

    let authorize = authorize_url(&app, &browser).await;
    let back = wechat_answers(&app, &browser, &authorize, Some("o_state"), false).await;
    // Another browser can't use it.
    let stolen = stranger.get(&back).send().await.unwrap();
    assert_eq!(stolen.status(), 400);
    assert!(stolen.text().await.unwrap().contains("no longer valid"));
    // Its own browser can, once.
    assert_eq!(
        location(&browser.get(&back).send().await.unwrap()),
        "/login/complete"
    );
    let again = browser.get(&back).send().await.unwrap();
    assert_eq!(again.status(), 400);
    // Nor does a made-up, a missing or a malformed state change anything.
    let code = param(&back, "code").unwrap();
    for query in [
        format!("code={code}&state={}", "0".repeat(32)),
        format!("code={code}"),
        format!("code={code}&state=%3Cscript%3E"),
    ] {
        let answer = app.get(&browser, &format!("/login/wechat?{query}")).await;
        assert_eq!(answer.status(), 400, "{query}");
    }
    assert_eq!(
        app.count("login_events").await,
        3,
        "the scan's and the binding's, and one in WeChat"
    );
}

#[tokio::test]
async fn a_state_dies_after_five_minutes() {
    let app = spawn_app().await;
    let browser = browser_as(WECHAT_UA);
    let authorize = authorize_url(&app, &browser).await;
    let back = wechat_answers(&app, &browser, &authorize, Some("o_late"), false).await;
    app.exec("UPDATE wechat_oauth_states SET expires_at = expires_at - 301")
        .await;
    assert_eq!(browser.get(&back).send().await.unwrap().status(), 400);
    assert_eq!(app.count("login_events").await, 0);
}

#[tokio::test]
async fn twenty_parallel_returns_with_one_state_log_in_once() {
    let app = spawn_app().await;
    bound_user(&app, "o_race_state", "13800000106").await;
    let (browser, jar) = app.browser_with_jar();
    let authorize = location(
        &app.get_with_header(&browser, "/login", ("user-agent", WECHAT_UA))
            .await,
    );
    let back = wechat_answers(&app, &browser, &authorize, Some("o_race_state"), false).await;
    let path = back.trim_start_matches(&app.address).to_owned();
    let cookie = format!("Cookie: {}", app.cookie_header(&jar));
    let requests = (0..20)
        .map(|_| raw_request("GET", &path, std::slice::from_ref(&cookie), None))
        .collect();

    let responses = release_together(app.host(), requests).await;

    let logged_in = count(&responses, |r| {
        r.status == 303 && r.head.contains("location: /login/complete")
    });
    assert_eq!(logged_in, 1);
    assert_eq!(count(&responses, |r| r.status == 400), 19);
    let oauth_logins: i64 = app
        .select("SELECT COUNT(*) FROM login_events WHERE method = 'wechat_oauth'")
        .await;
    assert_eq!(oauth_logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_parallel_wechat_visits_from_one_address_start_exactly_the_cap() {
    let app = spawn_app_with(|s| s.ops.qr_per_ip_per_hour = 5).await;
    let ua = format!("User-Agent: {WECHAT_UA}");
    let requests = (0..40)
        .map(|_| raw_request("GET", "/login", std::slice::from_ref(&ua), None))
        .collect();

    let responses = release_together(app.host(), requests).await;

    let started = count(&responses, |r| {
        r.status == 303 && r.head.contains("/sandbox/connect/oauth2/authorize")
    });
    assert_eq!(started, 5);
    assert_eq!(count(&responses, |r| r.status == 429), 35);
    assert_eq!(app.count("wechat_oauth_states").await, 5);
    for refused in responses.iter().filter(|r| r.status == 429) {
        assert!(!refused.head.contains("set-cookie"), "{}", refused.head);
    }
}

#[tokio::test]
async fn a_cancelled_authorization_explains_and_offers_the_qr_code() {
    let app = spawn_app().await;
    let browser = browser_as(WECHAT_UA);
    let authorize = authorize_url(&app, &browser).await;
    let back = wechat_answers(&app, &browser, &authorize, None, false).await;
    assert!(param(&back, "code").is_none() && param(&back, "state").is_some());

    let answer = browser.get(&back).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let page = answer.text().await.unwrap();
    assert!(page.contains("didn't finish"), "{page}");
    assert!(page.contains("href=\"/login?qr=1\""), "{page}");
    // The QR page is there inside WeChat too, when asked for.
    let qr = app.get(&browser, "/login?qr=1").await;
    assert_eq!(qr.status(), 200);
    assert!(qr.text().await.unwrap().contains("/sandbox/scan/"));
}

#[tokio::test]
async fn bad_and_used_codes_get_a_page_that_says_try_again() {
    let app = spawn_app().await;
    let browser = browser_as(WECHAT_UA);
    // A code WeChat never gave.
    let authorize = authorize_url(&app, &browser).await;
    let state = param(&authorize, "state").unwrap();
    let bad = app
        .get(
            &browser,
            &format!("/login/wechat?code=nosuchcode&state={state}"),
        )
        .await;
    assert_eq!(bad.status(), 400);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("invalid or already used")
    );

    // A code someone used first (WeChat answers 40163).
    let authorize = authorize_url(&app, &browser).await;
    let back = wechat_answers(&app, &browser, &authorize, Some("o_used"), false).await;
    let code = param(&back, "code").unwrap();
    let first = exchange(&app, &app.settings.wechat.appid, &code).await;
    assert_eq!(first["openid"], "o_used");
    let used = browser.get(&back).send().await.unwrap();
    assert_eq!(used.status(), 400);
    assert!(
        used.text()
            .await
            .unwrap()
            .contains("invalid or already used")
    );
    assert_eq!(app.count("login_events").await, 0);
}

#[tokio::test]
async fn a_snapshot_pages_virtual_user_is_refused_with_an_explanation() {
    let app = spawn_app().await;
    let browser = browser_as(WECHAT_UA);
    let authorize = authorize_url(&app, &browser).await;
    let back = wechat_answers(&app, &browser, &authorize, Some("o_snap"), true).await;

    let answer = browser.get(&back).send().await.unwrap();
    assert_eq!(answer.status(), 403);
    assert!(answer.text().await.unwrap().contains("snapshot page"));
    assert_eq!(app.count("login_events").await, 0);
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn wecom_and_a_turned_off_setting_keep_the_qr_page() {
    let app = spawn_app().await;
    let wecom = app
        .get_with_header(&app.browser(), "/login", ("user-agent", WECOM_UA))
        .await;
    assert_eq!(wecom.status(), 200);
    assert!(wecom.text().await.unwrap().contains("/sandbox/scan/"));

    let off = spawn_app_with(|s| s.phones.wechat_oauth = false).await;
    let wechat = off
        .get_with_header(&off.browser(), "/login", ("user-agent", WECHAT_UA))
        .await;
    assert_eq!(wechat.status(), 200);
    assert!(wechat.text().await.unwrap().contains("/sandbox/scan/"));
    assert_eq!(off.count("wechat_oauth_states").await, 0);
}

/// `GET /sandbox/sns/oauth2/access_token` with the account's secret.
async fn exchange(app: &TestApp, appid: &str, code: &str) -> serde_json::Value {
    let secret = wxlogin::config::expose(&app.settings.wechat.secret).to_owned();
    reqwest::Client::new()
        .get(app.url("/sandbox/sns/oauth2/access_token"))
        .query(&[
            ("appid", appid),
            ("secret", secret.as_str()),
            ("code", code),
            ("grant_type", "authorization_code"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_sandbox_answers_code_exchanges_as_wechat_does() {
    let app = spawn_app().await;
    let browser = browser_as(WECHAT_UA);
    let authorize = authorize_url(&app, &browser).await;
    let back = wechat_answers(&app, &browser, &authorize, Some("o_sbx"), false).await;
    let code = param(&back, "code").unwrap();

    assert_eq!(
        exchange(&app, "wxwrongappid00000", &code).await["errcode"],
        40013
    );
    let fresh = exchange(&app, &app.settings.wechat.appid, &code).await;
    assert_eq!(fresh["openid"], "o_sbx");
    assert_eq!(fresh["scope"], "snsapi_base");
    assert_eq!(fresh["is_snapshotuser"], 0);
    assert!(fresh["access_token"].is_string() && fresh["expires_in"] == 7200);
    assert_eq!(
        exchange(&app, &app.settings.wechat.appid, &code).await["errcode"],
        40163
    );
    assert_eq!(
        exchange(&app, &app.settings.wechat.appid, "made-up").await["errcode"],
        40029
    );
    // Its authorize page checks the redirect's domain, as WeChat does.
    let foreign = authorize.replace(
        &urlencode(&app.url("/login/wechat")),
        &urlencode("https://evil.example/login/wechat"),
    );
    let refused = browser.get(foreign).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("10003"));
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The text of the one QR code in a PNG.
fn decode_qr(png: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    grids[0].decode().unwrap().1
}

#[tokio::test]
async fn a_phone_browser_gets_the_qr_code_as_a_png_to_save() {
    let app = spawn_app().await;
    let browser = browser_as(SAFARI_UA);
    assert_eq!(app.get(&browser, "/login/qr.png").await.status(), 404);
    let page = app.page_text(&browser, "/login").await;
    assert!(page.contains("id=\"save-qr\""), "{page}");
    assert!(page.contains("href=\"/login/sms\""), "{page}");
    assert!(
        page.contains(&app.url("/login")),
        "the address to open in WeChat"
    );

    let png = app.get(&browser, "/login/qr.png").await;
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(png.headers()["cache-control"], "no-store");
    assert_eq!(
        png.headers()["content-disposition"],
        "attachment; filename=\"wechat-login-qr.png\""
    );
    let qr_url: String = app.select("SELECT qr_url FROM login_scenes").await;
    assert_eq!(decode_qr(&png.bytes().await.unwrap()), qr_url);
    // A computer's page doesn't offer it.
    let desktop = app.page_text(&app.browser(), "/login").await;
    assert!(!desktop.contains("save-qr") && desktop.contains("/login/sms"));
}

// --- SMS-code login ------------------------------------------------------------------------

/// The CSRF token of `/login/sms` in `browser`.
async fn sms_csrf(app: &TestApp, browser: &reqwest::Client) -> String {
    app.csrf(browser, "/login/sms").await
}

/// POSTs `/login/sms/code`; the answer (a 303 back to `/login/sms`) is not followed: every
/// number must get the same one.
async fn sms_send(
    app: &TestApp,
    browser: &reqwest::Client,
    csrf: &str,
    phone: &str,
) -> reqwest::Response {
    browser
        .post(app.url("/login/sms/code"))
        .form(&[("csrf", csrf), ("phone", phone)])
        .send()
        .await
        .unwrap()
}

/// POSTs `/login/sms/verify`, following a refusal back to `/login/sms` (a right code goes
/// to `/login/complete`).
async fn sms_verify(
    app: &TestApp,
    browser: &reqwest::Client,
    csrf: &str,
    code: &str,
) -> reqwest::Response {
    let posted = browser
        .post(app.url("/login/sms/verify"))
        .form(&[("csrf", csrf), ("code", code)])
        .send()
        .await
        .unwrap();
    app.follow_to(browser, posted, "/login/sms").await
}

/// The newest code sent to `phone`, waiting for the background send.
async fn sent_code(app: &TestApp, phone: &str, after: Option<String>) -> Option<String> {
    poll(40, Duration::from_millis(25), || async {
        app.sms_code(phone)
            .await
            .filter(|c| Some(c) != after.as_ref())
    })
    .await
}

#[tokio::test]
async fn a_bound_phone_logs_in_with_an_sms_code() {
    let app = spawn_app().await;
    bound_user(&app, "o_sms_1", "13800000201").await;
    let binding_code = app.sms_code("13800000201").await;
    let browser = browser_as(SAFARI_UA);
    let csrf = sms_csrf(&app, &browser).await;

    let sent = sms_send(&app, &browser, &csrf, "138 0000 0201").await;
    assert_eq!(sent.status(), 303);
    assert_eq!(location(&sent), "/login/sms");
    let page = app.page_text(&browser, "/login/sms").await;
    assert!(
        page.contains("If this number can log in, a code has been sent to 138****0201"),
        "{page}"
    );
    let code = sent_code(&app, "13800000201", binding_code)
        .await
        .expect("an SMS");

    let verified = sms_verify(&app, &browser, &csrf, &code).await;
    assert_eq!(location(&verified), "/login/complete");
    assert_eq!(app.complete_login(&browser).await, "/");
    assert!(app.page_text(&browser, "/").await.contains("138****0201"));
    let (outcome, method): (String, String) = app
        .fetch_one(
            "SELECT outcome, method FROM login_events ORDER BY id DESC LIMIT 1",
            (),
        )
        .await;
    assert_eq!((outcome.as_str(), method.as_str()), ("logged_in", "sms"));
    // The code is spent.
    let again = sms_verify(&app, &browser, &csrf, &code).await;
    assert_ne!(location(&again), "/login/complete");
}

#[tokio::test]
async fn an_unknown_number_gets_the_same_answer_and_no_sms() {
    let app = spawn_app_with(|s| {
        s.sms.limits.per_phone_hour = 100;
        s.sms.limits.per_phone_day = 100;
        s.sms.limits.per_ip_hour = 1000;
        s.sms.limits.resend_seconds = 0;
    })
    .await;
    bound_user(&app, "o_sms_known", "13800000202").await;
    let known = browser_as(SAFARI_UA);
    let unknown = browser_as(SAFARI_UA);
    let (known_csrf, unknown_csrf) = (sms_csrf(&app, &known).await, sms_csrf(&app, &unknown).await);
    let inbox_before = app.count("sandbox_sms").await;

    let mut times = (Vec::new(), Vec::new());
    for _ in 0..12 {
        let started = Instant::now();
        let a = sms_send(&app, &known, &known_csrf, "13800000202").await;
        times.0.push(started.elapsed());
        let started = Instant::now();
        let b = sms_send(&app, &unknown, &unknown_csrf, "13800000203").await;
        times.1.push(started.elapsed());
        assert_eq!((a.status(), location(&a)), (b.status(), location(&b)));
    }
    let page_known = app.page_text(&known, "/login/sms").await;
    let page_unknown = app.page_text(&unknown, "/login/sms").await;
    let strip = |page: &str, digits: &str| {
        let csrf = between(page, r#"name="csrf" value=""#, "\"").unwrap();
        page.replace(&csrf, "").replace(digits, "")
    };
    assert_eq!(
        strip(&page_known, "0202"),
        strip(&page_unknown, "0203"),
        "the same page, but for the number"
    );
    // Comparable timing: the medians within a few milliseconds of each other.
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut times.0), median(&mut times.1));
    let gap = a.abs_diff(b);
    assert!(
        gap < Duration::from_millis(15) + a.max(b) / 2,
        "known {a:?}, unknown {b:?}"
    );
    // Only the known number got SMS.
    poll(40, Duration::from_millis(25), || async {
        (app.count("sandbox_sms").await == inbox_before + 12).then_some(())
    })
    .await
    .expect("twelve SMS for the known number");
    assert!(app.sms_code("13800000203").await.is_none());
    // A guess at the unknown number's code reads like a wrong guess at a real one.
    let wrong = sms_verify(&app, &unknown, &unknown_csrf, "000000").await;
    assert_eq!(wrong.status(), 400);
    assert!(wrong.text().await.unwrap().contains("tries left"));
    assert_eq!(app.count("users").await, 1);
}

#[tokio::test]
async fn an_open_policy_makes_an_account_that_links_wechat_later() {
    let app = spawn_app_with(|s| s.phones.phone_login = PhoneLoginPolicy::Open).await;
    let browser = browser_as(SAFARI_UA);
    let csrf = sms_csrf(&app, &browser).await;
    assert_eq!(
        sms_send(&app, &browser, &csrf, "13800000204")
            .await
            .status(),
        303
    );
    let code = sent_code(&app, "13800000204", None).await.expect("an SMS");
    assert_eq!(
        location(&sms_verify(&app, &browser, &csrf, &code).await),
        "/login/complete"
    );
    assert_eq!(app.complete_login(&browser).await, "/");
    let openid: Option<String> = app.select("SELECT openid FROM users").await;
    assert_eq!(openid, None);
    let home = app.page_text(&browser, "/").await;
    assert!(
        home.contains("138****0204"),
        "logged in without a WeChat: {home}"
    );

    // Later (past the resend cooldown), a scan by a new WeChat binds the same phone: the
    // same account gets it.
    app.exec("UPDATE sms_codes SET created_at = created_at - 120")
        .await;
    app.log_in_new_user(&app.browser(), "o_linked_later", "13800000204")
        .await;
    assert_eq!(app.count("users").await, 1);
    let openid: Option<String> = app.select("SELECT openid FROM users").await;
    assert_eq!(openid.as_deref(), Some("o_linked_later"));
}

#[tokio::test]
async fn sms_login_can_be_turned_off() {
    let app = spawn_app_with(|s| s.phones.phone_login = PhoneLoginPolicy::Off).await;
    let browser = browser_as(SAFARI_UA);
    assert_eq!(app.get(&browser, "/login/sms").await.status(), 404);
    let page = app.page_text(&browser, "/login").await;
    assert!(!page.contains("/login/sms"), "{page}");
    let post = sms_send(&app, &browser, "any", "13800000209").await;
    assert_eq!(post.status(), 404);
    assert_eq!(app.count("sms_codes").await, 0);
}

#[tokio::test]
async fn a_disabled_person_gets_a_code_but_is_refused() {
    let app = spawn_app().await;
    bound_user(&app, "o_sms_off", "13800000205").await;
    let binding_code = app.sms_code("13800000205").await;
    app.exec("UPDATE users SET disabled = TRUE").await;
    let browser = browser_as(SAFARI_UA);
    let csrf = sms_csrf(&app, &browser).await;
    assert_eq!(
        sms_send(&app, &browser, &csrf, "13800000205")
            .await
            .status(),
        303
    );
    let code = sent_code(&app, "13800000205", binding_code)
        .await
        .expect("an SMS");

    let refused = sms_verify(&app, &browser, &csrf, &code).await;
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("This account is disabled")
    );
    assert_eq!(
        location(&app.get(&browser, "/login/complete").await),
        "/login"
    );
}

fn count(responses: &[RawResponse], pick: impl Fn(&RawResponse) -> bool) -> usize {
    responses.iter().filter(|r| pick(r)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_parallel_guesses_at_a_login_code_get_five_comparisons() {
    let app = spawn_app().await;
    bound_user(&app, "o_sms_race", "13800000206").await;
    let binding_code = app.sms_code("13800000206").await;
    let (browser, jar) = app.browser_with_jar();
    let csrf = sms_csrf(&app, &browser).await;
    assert_eq!(
        sms_send(&app, &browser, &csrf, "13800000206")
            .await
            .status(),
        303
    );
    let code = sent_code(&app, "13800000206", binding_code).await.unwrap();
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let cookie = format!("Cookie: {}", app.cookie_header(&jar));
    let requests = (0..100)
        .map(|_| {
            let body = format!("csrf={csrf}&code={wrong}");
            let headers = [cookie.clone(), "Accept-Language: en".to_owned()];
            raw_request("POST", "/login/sms/verify", &headers, Some(&body))
        })
        .collect();

    let responses = release_together(app.host(), requests).await;

    // Each goes back to the form (post/redirect/get); the tries counted are the database's.
    let back = count(&responses, |r| {
        r.status == 303 && r.head.contains("location: /login/sms")
    });
    assert_eq!(back, 100);
    let attempts: i64 = app
        .select("SELECT attempts FROM sms_codes WHERE scene LIKE 'login:%'")
        .await;
    assert_eq!(
        attempts, 5,
        "five tries counted, the rest refused uncompared"
    );
    // The right code comes too late: the code is dead.
    let late = browser
        .post(app.url("/login/sms/verify"))
        .header("accept-language", "en")
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    let late = app.follow_to(&browser, late, "/login/sms").await;
    assert_eq!(late.status(), 400);
    assert!(late.text().await.unwrap().contains("no longer valid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_sends_hold_the_resend_and_per_ip_limits() {
    let app = spawn_app_with(|s| s.sms.limits.per_ip_hour = 8).await;
    // One browser, one number, thirty sends at once: one code.
    let (browser, jar) = app.browser_with_jar();
    let csrf = sms_csrf(&app, &browser).await;
    let cookie = format!("Cookie: {}", app.cookie_header(&jar));
    let requests = (0..30)
        .map(|_| {
            let body = format!("csrf={csrf}&phone=13800000207");
            raw_request(
                "POST",
                "/login/sms/code",
                std::slice::from_ref(&cookie),
                Some(&body),
            )
        })
        .collect();
    let responses = release_together(app.host(), requests).await;
    // Every answer goes back to the form; a refused one says when to try again.
    let refused = |r: &RawResponse| r.status == 303 && r.head.contains("retry-after");
    assert_eq!(count(&responses, |r| r.status == 303 && !refused(r)), 1);
    assert_eq!(count(&responses, refused), 29);

    // Thirty browsers, thirty numbers (none registered), one address: the cap of 8 per
    // hour, the one already sent counting.
    let mut requests = Vec::new();
    for i in 0..30 {
        let (browser, jar) = app.browser_with_jar();
        let csrf = sms_csrf(&app, &browser).await;
        let cookie = format!("Cookie: {}", app.cookie_header(&jar));
        let body = format!("csrf={csrf}&phone=1380000{:04}", 3000 + i);
        requests.push(raw_request(
            "POST",
            "/login/sms/code",
            &[cookie],
            Some(&body),
        ));
    }
    let responses = release_together(app.host(), requests).await;
    assert_eq!(count(&responses, |r| r.status == 303 && !refused(r)), 7);
    assert_eq!(count(&responses, refused), 23);
    assert_eq!(app.count("sms_codes").await, 8);
}

#[tokio::test]
async fn sms_login_forms_need_their_csrf_token() {
    let app = spawn_app().await;
    let browser = browser_as(SAFARI_UA);
    sms_csrf(&app, &browser).await;
    let forged = sms_send(&app, &browser, "forged", "13800000208").await;
    assert_eq!(forged.status(), 403);
    assert_eq!(app.count("sms_codes").await, 0);
    let bad = sms_send(&app, &browser, &sms_csrf(&app, &browser).await, "12345").await;
    assert_eq!(
        app.follow_to(&browser, bad, "/login/sms").await.status(),
        400
    );
    assert_eq!(app.count("sms_codes").await, 0);
}

#[tokio::test]
async fn administrators_see_how_each_login_happened() {
    let app = spawn_app().await;
    let admin = app.browser();
    app.log_in_new_user(&admin, "o_admin_methods", "13800000301")
        .await;
    app.exec("UPDATE users SET is_admin = TRUE").await;
    bound_user(&app, "o_methods", "13800000302").await;
    let in_wechat = browser_as(WECHAT_UA);
    log_in_in_wechat(&app, &in_wechat, "o_methods").await;
    let by_sms = browser_as(SAFARI_UA);
    let csrf = sms_csrf(&app, &by_sms).await;
    let binding_code = app.sms_code("13800000302").await;
    sms_send(&app, &by_sms, &csrf, "13800000302").await;
    let code = sent_code(&app, "13800000302", binding_code).await.unwrap();
    assert_eq!(
        location(&sms_verify(&app, &by_sms, &csrf, &code).await),
        "/login/complete"
    );

    let id: i64 = app
        .select("SELECT id FROM users WHERE phone = '+8613800000302'")
        .await;
    let detail = app
        .get_with_header(
            &admin,
            &format!("/admin/users/{id}"),
            ("accept-language", "en"),
        )
        .await
        .text()
        .await
        .unwrap();
    for shown in [
        "method-scan",
        "method-wechat_oauth",
        "method-sms",
        "In WeChat",
        "SMS code",
    ] {
        assert!(detail.contains(shown), "{shown} on the detail page");
    }
    let dashboard = app.page_text(&admin, "/admin").await;
    assert!(dashboard.contains("method-sms"), "{dashboard}");
}
