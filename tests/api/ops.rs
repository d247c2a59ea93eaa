//! Production concerns: security headers and cookies, client IPs behind proxies, the per-IP cap
//! on new QR codes, logging out everywhere, metrics, backups, and the real binary surviving
//! SIGKILL and stopping cleanly on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use wxlogin::config::IpNet;

use crate::helpers::{
    TestApp, TestDatabase, TestDb, between, location, on_postgres, poll, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/", "/login", "/nonexistent"] {
        let response = app.get(&app.browser(), path).await;
        let h = response.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "same-origin");
        assert!(h.get("x-request-id").is_some(), "{path}");
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS over http"
        );
    }
}

#[tokio::test]
async fn behind_https_cookies_are_secure_and_hsts_is_sent() {
    let app =
        spawn_app_with(|s| s.public_url = Some("https://login.example.com".parse().unwrap())).await;
    let response = app.get(&app.browser(), "/login").await;
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
}

/// The client IP stored with the scene behind the QR code of the login page `response` shows.
async fn client_ip_of_scene_on(app: &TestApp, response: reqwest::Response) -> String {
    let html = response.text().await.unwrap();
    let ticket = between(&html, "/sandbox/scan/", "\"").expect("a login page");
    app.select_with(
        "SELECT client_ip FROM login_scenes WHERE ticket = ?",
        ticket,
    )
    .await
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let direct = spawn_app().await;
    let page = direct
        .get_with_header(
            &direct.browser(),
            "/login",
            ("x-forwarded-for", "203.0.113.7"),
        )
        .await;
    assert_eq!(client_ip_of_scene_on(&direct, page).await, "127.0.0.1");

    let proxied =
        spawn_app_with(|s| s.ops.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()]).await;
    let page = proxied
        .get_with_header(
            &proxied.browser(),
            "/login",
            ("x-forwarded-for", "198.51.100.1, 203.0.113.7"),
        )
        .await;
    assert_eq!(client_ip_of_scene_on(&proxied, page).await, "203.0.113.7");
}

#[tokio::test]
async fn new_qr_codes_per_client_ip_are_capped_but_reloads_are_free() {
    let app = spawn_app_with(|s| s.ops.qr_per_ip_per_hour = 3).await;
    let first = app.browser();
    let page = app.open_login(&first).await;
    app.open_login(&app.browser()).await;
    app.open_login(&app.browser()).await;

    let capped = app
        .get_with_header(&app.browser(), "/login", ("accept-language", "en"))
        .await;

    assert_eq!(capped.status(), 429);
    assert!(capped.headers().get("retry-after").is_some());
    let refused = capped.text().await.unwrap();
    // It says when, as a China-time clock and in minutes, and offers a way elsewhere.
    assert!(
        refused.contains("Too many requests came from your network"),
        "{refused}"
    );
    assert!(refused.contains("(China time), in about"), "{refused}");
    assert!(refused.contains(r#"id="back-home" href="/""#), "{refused}");
    assert_eq!(
        app.open_login(&first).await.ticket,
        page.ticket,
        "a reload reuses its code"
    );
    assert_eq!(app.count("login_scenes").await, 3);
}

#[tokio::test]
async fn log_out_everywhere_ends_every_session_of_that_person() {
    let app = spawn_app().await;
    let laptop = app.browser();
    app.log_in_new_user(&laptop, "o_everywhere", "13600000001")
        .await;
    let phone = app.browser();
    let page = app.open_login(&phone).await;
    app.scan(&page.ticket, "o_everywhere").await;
    assert_eq!(app.complete_login(&phone).await, "/");

    let csrf = app.csrf(&phone, "/").await;
    let out = app.post_csrf(&phone, "/logout/everywhere", &csrf).await;

    assert_eq!(location(&out), "/");
    for browser in [&laptop, &phone] {
        let home = app.page_text(browser, "/").await;
        assert!(home.contains(r#"id="login-link""#), "logged out");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn metrics_are_served_only_on_their_own_address() {
    let port = free_port();
    let app =
        spawn_app_with(|s| s.ops.metrics_addr = Some(format!("127.0.0.1:{port}").parse().unwrap()))
            .await;
    let (browser, csrf) = app.needs_binding("o_metrics").await;
    for _ in 0..2 {
        // The second is refused by the resend limit.
        app.send_code(&browser, &csrf, "13600000009").await;
    }

    let public = app.get(&app.browser(), "/metrics").await;
    assert_eq!(public.status(), 404);
    let text = poll(50, Duration::from_millis(20), || async {
        let r = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .ok()?;
        Some(r.text().await.unwrap())
    })
    .await
    .unwrap_or_default();
    assert!(text.contains("wxlogin_qr_codes_created_total 1"), "{text}");
    assert!(text.contains("wxlogin_scans_total{kind=\"subscribe\"} 1"));
    assert!(text.contains("wxlogin_logins_total{outcome=\"needs_bind\"} 1"));
    assert!(text.contains("wxlogin_token_fetches_total 1"));
    assert!(text.contains("wxlogin_callback_duration_seconds_count 1"));
    assert!(
        text.contains("wxlogin_sms_total{result=\"sent\"} 1"),
        "{text}"
    );
    assert!(text.contains("wxlogin_sms_total{result=\"refused\"} 1"));
}

/// Opens the database file a backup wrote.
async fn open_copy(file: &std::path::Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap()
}

async fn count_users(db: &sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_backup_is_a_consistent_copy_and_never_overwrites() {
    if on_postgres() {
        eprintln!("skipped on PostgreSQL: the copy is checked as an SQLite file");
        return;
    }
    let app = spawn_app().await;
    app.log_in_new_user(&app.browser(), "o_backup", "13600000002")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.db");

    let bytes = app.state.store.ops.backup(&file).await.unwrap();

    assert!(bytes > 0);
    let copy = open_copy(&file).await;
    let users = count_users(&copy).await;
    assert_eq!(users, 1);
    assert!(
        app.state.store.ops.backup(&file).await.is_err(),
        "refuses to overwrite"
    );
}

#[tokio::test]
async fn the_backup_command_copies_a_running_servers_database() {
    if on_postgres() {
        eprintln!("skipped on PostgreSQL: the copy is checked as an SQLite file");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("live.db").display());
    let server = Process::start(&db);
    assert!(bind_one(&server.address, 1).await.is_ok());
    let copy = dir.path().join("copy.db");

    let run = |file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_wxlogin"))
            .env_clear()
            .env("WXLOGIN_DATABASE_URL", &db)
            .arg("backup")
            .arg(file)
            .output()
            .unwrap()
    };
    let first = run(&copy);
    let again = run(&copy);

    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("wrote"));
    assert!(!again.status.success(), "refuses to overwrite");
    let pool = open_copy(&copy).await;
    let users = count_users(&pool).await;
    assert_eq!(users, 1);
}

/// The real `wxlogin` binary on port 0 with the given database.
pub struct Process {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub address: String,
}

impl Process {
    fn start(db: &str) -> Process {
        Process::start_with(db, &[])
    }

    /// Starts the binary with settings `env` added to the test defaults.
    pub fn start_with(db: &str, env: &[(&str, &str)]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wxlogin"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
            .env("WXLOGIN_DATABASE_URL", db)
            .env("WXLOGIN_QR_PER_IP_PER_HOUR", "100000")
            .env("WXLOGIN_SMS_PER_IP_HOUR", "100000")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wxlogin binary starts");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let address = loop {
            let line = lines.next().expect("server prints its address").unwrap();
            if let Some(url) = between(&line, "open ", "/login") {
                break url;
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Process { child, address }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `url` in `browser` and reads the page, any failure as a message.
async fn text_of(browser: &reqwest::Client, url: String) -> Result<String, String> {
    let err = |e: reqwest::Error| e.to_string();
    browser
        .get(url)
        .send()
        .await
        .map_err(err)?
        .text()
        .await
        .map_err(err)
}

/// One person's whole first login against a server at `address`; `Ok(phone)` once the
/// binding was acknowledged (the redirect after the code).
async fn bind_one(address: &str, n: usize) -> Result<String, String> {
    let err = |e: reqwest::Error| e.to_string();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let html = text_of(&browser, format!("{address}/login")).await?;
    let ticket = between(&html, "/sandbox/scan/", "\"").ok_or("no ticket")?;
    browser
        .post(format!("{address}/sandbox/api/scan"))
        .json(&serde_json::json!({"ticket": ticket, "openid": format!("o_kill_{n}")}))
        .send()
        .await
        .map_err(err)?;
    let bind = text_of(&browser, format!("{address}/bind")).await?;
    let csrf = between(&bind, r#"name="csrf" value=""#, "\"").ok_or("no csrf")?;
    let phone = format!("135{n:08}");
    browser
        .post(format!("{address}/bind/code"))
        .form(&[("csrf", csrf.as_str()), ("phone", phone.as_str())])
        .send()
        .await
        .map_err(err)?;
    let sms: serde_json::Value = browser
        .get(format!("{address}/sandbox/api/sms?phone={phone}"))
        .send()
        .await
        .map_err(err)?
        .json()
        .await
        .map_err(err)?;
    let code = sms["code"].as_str().ok_or("no code")?.to_owned();
    let verified = browser
        .post(format!("{address}/bind/verify"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .map_err(err)?;
    if location(&verified) == "/login/complete" {
        Ok(phone)
    } else {
        Err(format!("status {}", verified.status()))
    }
}

#[tokio::test]
async fn bindings_acknowledged_before_a_sigkill_are_all_there_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(dir.path(), "kill.db").await;
    let db = database.url.clone();
    let server = Process::start(&db);
    let address = server.address.clone();

    // Bind people in parallel until the server is killed under them.
    let workers = (0..4).map(|w| {
        let address = address.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..200 {
                match bind_one(&address, w * 1000 + i).await {
                    Ok(phone) => acknowledged.push(phone),
                    Err(_) => break, // the server is gone
                }
            }
            acknowledged
        })
    });
    let workers: Vec<_> = workers.collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.signal("KILL");
    let mut acknowledged = Vec::new();
    for w in workers {
        acknowledged.extend(w.await.unwrap());
    }
    drop(server);
    assert!(
        acknowledged.len() >= 4,
        "some bindings happened before the kill: {}",
        acknowledged.len()
    );

    let restarted = Process::start(&db);
    let pool = TestDb::connect(&db).await;
    if let TestDb::Sqlite(file) = &pool {
        // The file itself survived the kill (PostgreSQL's server was never killed).
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(file)
            .await
            .unwrap();
        assert_eq!(integrity, "ok");
    }
    for phone in &acknowledged {
        let openid: Option<String> = pool
            .select_optional(
                "SELECT openid FROM users WHERE phone = ?",
                (format!("+86{phone}"),),
            )
            .await
            .flatten();
        assert!(openid.is_some(), "acknowledged binding of {phone} lost");
    }
    assert_eq!(
        reqwest::get(format!("{}/healthz", restarted.address))
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Whether the streamed response `stream` ends (or breaks) within five seconds.
async fn ends_within_5s(stream: &mut reqwest::Response) -> bool {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn sigterm_ends_event_streams_and_exits_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(dir.path(), "term.db").await;
    let db = database.url.clone();
    let mut server = Process::start(&db);
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    browser
        .get(format!("{}/login", server.address))
        .send()
        .await
        .unwrap();
    let mut stream = browser
        .get(format!("{}/login/events", server.address))
        .send()
        .await
        .unwrap();
    assert!(stream.chunk().await.unwrap().is_some(), "stream open");

    server.signal("TERM");

    assert!(ends_within_5s(&mut stream).await, "the event stream ended");
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "exited within the grace period"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_login_begun_before_a_restart_is_finished_by_the_next_server() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(dir.path(), "restart.db").await;
    let db = database.url.clone();
    let first = Process::start(&db);
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let html = browser
        .get(format!("{}/login", first.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ticket = between(&html, "/sandbox/scan/", "\"").unwrap();
    let mut stream = browser
        .get(format!("{}/login/events", first.address))
        .send()
        .await
        .unwrap();
    assert!(stream.chunk().await.unwrap().is_some());

    // A deploy: the old server is told to stop; its stream ends so the browser reconnects.
    first.signal("TERM");
    assert!(ends_within_5s(&mut stream).await);
    drop(first);
    let second = Process::start(&db);

    let mut stream = browser
        .get(format!("{}/login/events", second.address))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200, "the same session picks its login up");
    let scanned = reqwest::Client::new()
        .post(format!("{}/sandbox/api/scan", second.address))
        .json(&serde_json::json!({"ticket": ticket, "openid": "o_deploy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(scanned.status(), 200, "the old QR code still works");
    let mut seen = String::new();
    while !seen.contains("event: redirect") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("data: /bind"), "{seen}");
    let bind = browser
        .get(format!("{}/bind", second.address))
        .send()
        .await
        .unwrap();
    assert_eq!(bind.status(), 200);
}
