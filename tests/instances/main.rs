//! Several wxlogin instances on one PostgreSQL database, as real processes (the `wxlogin`
//! binary, in sandbox mode): a browser waiting on one is woken by a scan that reached another,
//! a browser whose instance is killed finishes on the other, and every limit, code try and
//! delivery is counted once however the requests are spread over the instances.
//!
//! Needs `WXLOGIN_TEST_POSTGRES_URL` (a server whose user may create databases; `scripts/test`
//! starts a throw-away one). Without it each test says it was skipped.

use std::{process::Stdio, time::Duration};

use futures::{StreamExt, future::join_all};
use rand::Rng;
use sqlx::PgPool;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const WAIT: Duration = Duration::from_secs(10);
/// The token the instances check callbacks with (plaintext mode).
const TOKEN: &str = "instancetest";

/// A database of its own on the test server, and a pool on it for the checks.
struct Database {
    url: String,
    name: String,
    pool: PgPool,
    /// On the server's own database, for what can't be done from inside this one.
    server: PgPool,
}

/// A fresh database, or `None` (after saying so) when there is no test server.
async fn database(test: &str) -> Option<Database> {
    let Ok(server) = std::env::var("WXLOGIN_TEST_POSTGRES_URL") else {
        eprintln!("{test}: skipped, WXLOGIN_TEST_POSTGRES_URL is not set");
        return None;
    };
    let admin = PgPool::connect(&server).await.expect("the test server");
    let name = format!("wxinst_{}", wxlogin::util::random_hex(6));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("CREATE DATABASE");
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&name);
    let url = url.to_string();
    // Migrated by the first instance; the pool connects lazily.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy(&url)
        .unwrap();
    Some(Database {
        url,
        name,
        pool,
        server: admin,
    })
}

impl Database {
    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }
}

/// One running `wxlogin` process.
struct Instance {
    child: Child,
    base: String,
}

impl Instance {
    /// Starts `wxlogin` on a free port on `db`, with the given extra settings, and waits until
    /// it answers `/healthz`.
    async fn start(db: &Database, settings: &[(&str, &str)]) -> Instance {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wxlogin"));
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
            .env("WXLOGIN_MODE", "sandbox")
            .env("WXLOGIN_DATABASE_URL", &db.url)
            .env("WXLOGIN_WECHAT_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in settings {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("wxlogin starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix("wxlogin: open ") {
                    return rest.trim_end_matches("/login").to_owned();
                }
                eprintln!("wxlogin: {line}");
            }
            panic!("wxlogin exited before it listened");
        })
        .await
        .expect("wxlogin says where it listens within 60 s");
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("wxlogin: {line}");
            }
        });
        let instance = Instance { child, base };
        let health = reqwest::get(instance.url("/healthz")).await.unwrap();
        assert_eq!(health.status(), 200);
        instance
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no goodbye, no draining.
    async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Opens `/login` in `browser`: the QR code's ticket.
    async fn open_login(&self, browser: &reqwest::Client) -> String {
        let page = browser.get(self.url("/login")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        between(&html, "/sandbox/scan/", "\"").expect("a sandbox link")
    }

    /// A new browser waiting on this instance's `/login`, its stream past the first event:
    /// the browser, its QR code's ticket and its stream.
    async fn waiting_browser(&self) -> (reqwest::Client, String, Events) {
        let browser = browser();
        let ticket = self.open_login(&browser).await;
        let mut events = Events::connect(self, &browser).await;
        events.next(WAIT).await.expect("the state on connecting");
        (browser, ticket, events)
    }

    /// The sandbox phone scans `ticket` as `openid`; the callback goes to this instance.
    async fn scan(&self, ticket: &str, openid: &str) {
        let scanned = reqwest::Client::new()
            .post(self.url("/sandbox/api/scan"))
            .json(&serde_json::json!({ "ticket": ticket, "openid": openid }))
            .send()
            .await
            .unwrap();
        assert_eq!(scanned.status(), 200, "sandbox scan");
    }

    /// The CSRF token on `path`.
    async fn csrf(&self, browser: &reqwest::Client, path: &str) -> String {
        let html = browser
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        between(&html, r#"name="csrf" value=""#, "\"").expect("a CSRF field")
    }

    /// The newest code the sandbox inbox holds for `phone` (shared by every instance).
    async fn sms_code(&self, phone: &str) -> String {
        let inbox: serde_json::Value = reqwest::Client::new()
            .get(self.url("/sandbox/api/sms"))
            .query(&[("phone", phone)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        inbox["code"].as_str().expect("a code").to_owned()
    }

    /// Takes `browser`, whose scan needs binding, through sending a code to `phone`.
    async fn send_code(&self, browser: &reqwest::Client, phone: &str) -> String {
        let csrf = self.csrf(browser, "/bind").await;
        let sent = browser
            .post(self.url("/bind/code"))
            .form(&[("csrf", csrf.as_str()), ("phone", phone)])
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 303, "code sent");
        csrf
    }
}

/// A browser: its own cookie jar (cookies are per host, so the instances on 127.0.0.1 all see
/// the same session, as behind a load balancer), redirects not followed.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()
        .unwrap()
}

/// `n` first visits to `/login` at once, each from a new browser, alternately on `a` and `b`:
/// their statuses.
async fn first_visits(a: &Instance, b: &Instance, n: usize) -> Vec<u16> {
    join_all((0..n).map(|i| {
        let url = if i % 2 == 0 {
            a.url("/login")
        } else {
            b.url("/login")
        };
        async move { browser().get(url).send().await.unwrap().status().as_u16() }
    }))
    .await
}

fn between(haystack: &str, start: &str, end: &str) -> Option<String> {
    let from = haystack.find(start)? + start.len();
    let len = haystack[from..].find(end)?;
    Some(haystack[from..from + len].to_owned())
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A browser's login event stream on one instance.
struct Events {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Events {
    async fn connect(instance: &Instance, browser: &reqwest::Client) -> Events {
        let response = browser
            .get(instance.url("/login/events"))
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "event stream");
        Events {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next named event's (name, data); `None` if the stream ends or nothing comes in time.
    async fn next(&mut self, wait: Duration) -> Option<(String, String)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let name = block.lines().find_map(|l| l.strip_prefix("event:"));
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .collect();
                if let Some(name) = name {
                    return Some((name.trim().to_owned(), data.join("\n")));
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??
                .ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The data of the next `name` event, skipping others.
    async fn until(&mut self, name: &str, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (event, data) = self.next(left).await?;
            if event == name {
                return Some(data);
            }
        }
    }
}

#[tokio::test]
async fn a_scan_that_reaches_one_instance_wakes_the_browser_waiting_on_the_other() {
    let Some(db) = database("cross-instance wake").await else {
        return;
    };
    let a = Instance::start(&db, &[]).await;
    let b = Instance::start(&db, &[]).await;
    let (_browser, ticket, mut events) = a.waiting_browser().await;

    b.scan(&ticket, "o_cross").await;

    let redirect = events
        .until("redirect", WAIT)
        .await
        .expect("A's browser hears of the scan B received");
    assert!(redirect.contains("/bind"), "{redirect}");
}

#[tokio::test]
async fn a_browser_whose_instance_is_killed_mid_login_reconnects_to_the_other_and_logs_in() {
    let Some(db) = database("SIGKILL mid-login").await else {
        return;
    };
    let mut a = Instance::start(&db, &[]).await;
    let b = Instance::start(&db, &[]).await;
    let (browser, ticket, mut on_a) = a.waiting_browser().await;

    a.kill().await;
    assert!(
        on_a.next(WAIT).await.is_none(),
        "the stream ends with its process"
    );
    // The browser's EventSource reconnects; the load balancer sends it to B.
    let mut on_b = Events::connect(&b, &browser).await;
    on_b.next(WAIT)
        .await
        .expect("B reads the state from the database");
    b.scan(&ticket, "o_killed").await;
    let redirect = on_b
        .until("redirect", WAIT)
        .await
        .expect("B's stream hears");
    assert!(redirect.contains("/bind"), "{redirect}");

    let phone = "13900000501";
    let csrf = b.send_code(&browser, phone).await;
    let code = b.sms_code(phone).await;
    let verified = browser
        .post(b.url("/bind/verify"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&verified), "/login/complete");
    let complete = browser.get(b.url("/login/complete")).send().await.unwrap();
    assert_eq!(location(&complete), "/", "logged in");
    let home = browser.get(b.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM users WHERE openid = 'o_killed'")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_guesses_spread_over_two_instances_get_no_more_comparisons_than_the_limit() {
    let Some(db) = database("parallel guesses").await else {
        return;
    };
    let settings = [("WXLOGIN_SMS_MAX_ATTEMPTS", "5")];
    let a = Instance::start(&db, &settings).await;
    let b = Instance::start(&db, &settings).await;
    let browser = browser();
    let ticket = a.open_login(&browser).await;
    a.scan(&ticket, "o_guess").await;
    let phone = "13900000502";
    let csrf = a.send_code(&browser, phone).await;
    let code = a.sms_code(phone).await;
    let right: u32 = code.parse().unwrap();
    let right_at = rand::thread_rng().gen_range(0..=100u32);

    let guesses = (0..=100u32).map(|i| {
        let guess = if i == right_at {
            code.clone()
        } else {
            format!("{:06}", (right + 1 + i) % 1_000_000)
        };
        let instance = if i % 2 == 0 { &a } else { &b };
        let (browser, csrf) = (browser.clone(), csrf.clone());
        async move {
            let answer = browser
                .post(instance.url("/bind/verify"))
                .form(&[("csrf", csrf.as_str()), ("code", guess.as_str())])
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), location(&answer))
        }
    });
    let answers = join_all(guesses).await;

    // On to the login: the right code, or a guess that came after it had linked the phone
    // (the page then sends the browser on without comparing anything).
    let on = answers
        .iter()
        .filter(|(s, l)| *s == 303 && l == "/login/complete")
        .count();
    let refused = answers
        .iter()
        .filter(|(s, l)| *s == 303 && l == "/bind")
        .count();
    assert_eq!(on + refused, 101, "{answers:?}");
    let users = db.count("SELECT COUNT(*) FROM users").await;
    assert!(users <= 1, "one code links one phone at most");
    assert_eq!(
        users == 1,
        on > 0,
        "sent on to the login exactly when linked"
    );
    // Every try is counted before its comparison, whichever instance took it, and counting
    // stops at the limit; a right code compared early ends the counting sooner.
    let attempts = db.count("SELECT attempts FROM sms_codes").await;
    if users == 0 {
        assert_eq!(attempts, 5, "all five tries spent on wrong guesses");
    } else {
        assert!((1..=5).contains(&attempts), "{attempts} tries");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_first_visits_spread_over_two_instances_make_exactly_the_cap_of_codes() {
    let Some(db) = database("parallel first visits").await else {
        return;
    };
    let settings = [("WXLOGIN_QR_PER_IP_PER_HOUR", "5")];
    let a = Instance::start(&db, &settings).await;
    let b = Instance::start(&db, &settings).await;

    let statuses = first_visits(&a, &b, 60).await;

    let made = statuses.iter().filter(|s| **s == 200).count();
    let capped = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((made, capped), (5, 55), "{statuses:?}");
    assert_eq!(db.count("SELECT COUNT(*) FROM sandbox_tickets").await, 5);
    assert_eq!(db.count("SELECT COUNT(*) FROM login_scenes").await, 5);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM qr_reservations").await,
        0,
        "every reservation went with its stored code"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_delivery_sent_to_both_instances_at_once_takes_effect_once() {
    let Some(db) = database("parallel deliveries").await else {
        return;
    };
    let a = Instance::start(&db, &[]).await;
    let b = Instance::start(&db, &[]).await;
    let browser = browser();
    let ticket = a.open_login(&browser).await;
    let scene: String = sqlx::query_scalar("SELECT scene FROM login_scenes WHERE ticket = $1")
        .bind(&ticket)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let create_time = wxlogin::util::now();
    let xml = wxlogin::wechat::message::scan_event_xml(
        "gh_test",
        "o_twice",
        create_time,
        false,
        &scene,
        &ticket,
    );

    // WeChat's retries of one event: each its own signed request, the same delivery.
    let posts = (0..20).map(|i| {
        let instance = if i % 2 == 0 { &a } else { &b };
        let xml = xml.clone();
        async move {
            let timestamp = wxlogin::util::now().to_string();
            let nonce = format!("n{i}");
            let signature = wxlogin::wechat::signature::sign(&[TOKEN, &timestamp, &nonce]);
            let answer = reqwest::Client::new()
                .post(instance.url("/wechat/callback"))
                .query(&[
                    ("signature", signature.as_str()),
                    ("timestamp", timestamp.as_str()),
                    ("nonce", nonce.as_str()),
                ])
                .body(xml)
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    });
    let answers = join_all(posts).await;

    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let first = &answers[0].1;
    assert!(
        answers.iter().all(|(_, reply)| reply == first),
        "every retry gets the first answer"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM login_events WHERE openid = 'o_twice'")
            .await,
        1,
        "one scan recorded"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM callback_deliveries").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_migrate_once_and_fetch_one_access_token_in_all() {
    let Some(db) = database("shared token").await else {
        return;
    };
    let (a, b) = tokio::join!(Instance::start(&db, &[]), Instance::start(&db, &[]));

    let statuses = first_visits(&a, &b, 20).await;

    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM sandbox_tokens").await,
        1,
        "one token fetched from WeChat for both instances"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM login_scenes").await, 20);
}

/// Runs `wxlogin backup FILE` on `db` with `PATH` set to `path`.
async fn backup(db: &Database, file: &std::path::Path, path: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wxlogin"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", path)
        .env("WXLOGIN_DATABASE_URL", &db.url)
        .arg("backup")
        .arg(file)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_backup_command_runs_pg_dump_or_says_to() {
    let Some(db) = database("backup").await else {
        return;
    };
    let a = Instance::start(&db, &[]).await;
    a.open_login(&browser()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wxlogin.dump");

    let without = backup(&db, &file, "/nonexistent").await;
    assert_eq!(without.status.code(), Some(1));
    let said = String::from_utf8_lossy(&without.stderr);
    assert!(said.contains("pg_dump"), "{said}");
    assert!(!file.exists());

    let path = std::env::var("PATH").unwrap_or_default();
    let with = backup(&db, &file, &path).await;
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert!(String::from_utf8_lossy(&with.stdout).contains("wrote"));
    // A dump pg_restore can read, holding the tables.
    let listed = std::process::Command::new("pg_restore")
        .arg("--list")
        .arg(&file)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(listing.contains("login_scenes"), "{listing}");

    let again = backup(&db, &file, &path).await;
    assert_eq!(again.status.code(), Some(1), "never overwrites");
}

#[tokio::test]
async fn a_browser_hears_of_a_scan_made_while_its_instance_was_not_listening() {
    let Some(db) = database("listener reconnect").await else {
        return;
    };
    let a = Instance::start(&db, &[]).await;
    let b = Instance::start(&db, &[]).await;
    let (_browser, ticket, mut events) = a.waiting_browser().await;
    // Pooled connections, opened now, for the requests made while no new one can be (the
    // listeners have connections of their own).
    first_visits(&a, &b, 24).await;

    // The listeners lose their connections and cannot get new ones (pooled connections go on
    // working), so the notice of the scan below reaches no one.
    sqlx::query(&format!(
        "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
        db.name
    ))
    .execute(&db.server)
    .await
    .unwrap();
    let cut: Vec<bool> = sqlx::query_scalar(
        // Waiting (up to 5 s) until each is gone, so none hears the notice below.
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
         WHERE datname = $1 AND query ILIKE 'LISTEN%'",
    )
    .bind(&db.name)
    .fetch_all(&db.server)
    .await
    .unwrap();
    assert_eq!(cut.len(), 2, "one listener per instance");
    b.scan(&ticket, "o_unheard").await;
    let early = events.next(Duration::from_secs(2)).await;
    assert!(early.is_none(), "nothing can tell A yet: {early:?}");

    sqlx::query(&format!(
        "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
        db.name
    ))
    .execute(&db.server)
    .await
    .unwrap();
    let redirect = events
        .until("redirect", WAIT)
        .await
        .expect("once listening again, A's browsers read their state again");
    assert!(redirect.contains("/bind"), "{redirect}");
}
