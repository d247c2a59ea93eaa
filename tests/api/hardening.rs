//! What a client controls and must not be believed: its request id, its User-Agent in the
//! WeChat reply; and what pages must not leave behind: cached personal data, silent logs.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use wxlogin::config::IpNet;

use crate::helpers::{poll, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_clients_request_id_is_replaced_unless_a_trusted_proxy_sent_a_plain_one() {
    let direct = spawn_app().await;
    let response = direct
        .get_with_header(
            &direct.browser(),
            "/healthz",
            ("x-request-id", "forged-id-1"),
        )
        .await;
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "forged-id-1", "a stranger's id is not taken");
    assert_eq!(id.len(), 16, "a fresh one is made: {id}");

    let proxied = spawn_app_with(|s| {
        s.ops.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    let response = proxied
        .get_with_header(
            &proxied.browser(),
            "/healthz",
            ("x-request-id", "nginx-4f2a9c"),
        )
        .await;
    assert_eq!(response.headers()["x-request-id"], "nginx-4f2a9c");
    for bad in ["has space", "quote\"d", &"x".repeat(65)] {
        let response = proxied
            .get_with_header(&proxied.browser(), "/healthz", ("x-request-id", bad))
            .await;
        assert_ne!(response.headers()["x-request-id"], bad);
    }
}

#[tokio::test]
async fn pages_with_personal_data_are_not_stored_by_caches() {
    let app = spawn_app().await;
    let browser = app.browser();
    app.log_in_new_user(&browser, "o_cache", "13700000077")
        .await;
    for path in ["/", "/login", "/admin", "/admin/users"] {
        let response = app.get(&browser, path).await;
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }
    let (binding, _) = app.needs_binding("o_cache_2").await;
    let bind = app.get(&binding, "/bind").await;
    assert_eq!(bind.status(), 200);
    assert_eq!(bind.headers()["cache-control"], "no-store");
    // Static files keep their own lifetime.
    let css = app.get(&browser, "/style.css").await;
    assert_ne!(css.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn the_wechat_reply_shows_the_browser_only_as_what_it_claims() {
    let app = spawn_app().await;
    let browser = app.browser();
    // An attacker's page can say it is anything.
    let claimed = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0.40";
    let response = app
        .get_with_header(&browser, "/login?qr=1", ("user-agent", claimed))
        .await;
    let html = response.text().await.unwrap();
    let ticket = crate::helpers::between(&html, "/sandbox/scan/", "\"").unwrap();

    let reply = app.scan(&ticket, "o_victim").await["reply"]
        .as_str()
        .unwrap()
        .to_owned();

    assert!(reply.contains("IP 127.0.0.1"), "{reply}");
    assert!(
        reply.contains("其浏览器自称：MicroMessenger / iPhone"),
        "{reply}"
    );
    assert!(
        !reply.contains("WeChat") && !reply.contains("iOS"),
        "{reply}"
    );
}

#[tokio::test]
async fn at_the_default_log_level_every_request_writes_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let database = crate::helpers::TestDatabase::create(dir.path(), "log.db").await;
    let db = database.url.clone();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wxlogin"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .env("WXLOGIN_DATABASE_URL", &db)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let address = BufReader::new(stderr)
        .lines()
        .find_map(|line| crate::helpers::between(&line.unwrap(), "open ", "/login"))
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });

    let status = reqwest::get(format!("{address}/healthz?secret=s3cr3t"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    let line = poll(50, Duration::from_millis(100), || {
        let found = lines.try_iter().find(|l| l.contains(r#"path="/healthz""#));
        async move { found }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a line for the request at the default level");
    assert!(line.contains(" INFO "), "{line}");
    assert!(
        line.contains("status=200") && line.contains("method=GET"),
        "{line}"
    );
    assert!(
        !line.contains("s3cr3t"),
        "queries stay out of the log: {line}"
    );
}
