//! `spawn_app()` and the other tools every API test uses: browsers with their own cookie jars,
//! the sandbox phone, signed callbacks, an SSE reader.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use tokio::task::JoinHandle;
use wxlogin::{
    Application,
    config::{Settings, expose},
    state::AppState,
    wechat::{message, signature},
};

/// A running wxlogin on port 0 with its own temporary database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The application state (database, WeChat client).
    pub state: AppState,
    /// The settings it was started with.
    pub settings: Settings,
    handle: JoinHandle<()>,
    dir: Arc<tempfile::TempDir>,
}

/// Starts wxlogin in sandbox mode on a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts wxlogin with settings changed by `change`.
pub async fn spawn_app_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut settings = Settings::sandbox(db_url(&dir.path().join("wxlogin.db")));
    change(&mut settings);
    start(settings, dir).await
}

fn db_url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

async fn start(settings: Settings, dir: Arc<tempfile::TempDir>) -> TestApp {
    let app = Application::build(settings.clone())
        .await
        .expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let handle = tokio::spawn(async move {
        let _ = app.run_until_stopped(std::future::pending()).await;
    });
    TestApp {
        address,
        state,
        settings,
        handle,
        dir,
    }
}

impl TestApp {
    /// A new browser: its own cookie jar, redirects not followed (tests look at them).
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// An absolute URL of this app.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stops the server (as a crash would: no goodbye) and starts a new one on the same database.
    pub async fn restart(self) -> TestApp {
        self.handle.abort();
        let _ = self.handle.await;
        let mut settings = self.settings.clone();
        settings.site_addr = "127.0.0.1:0".parse().unwrap();
        start(settings, self.dir.clone()).await
    }

    /// Opens `/login` in `browser` and returns the page with its QR ticket.
    pub async fn open_login(&self, browser: &reqwest::Client) -> LoginPage {
        let response = browser.get(self.url("/login")).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET /login");
        let html = response.text().await.unwrap();
        LoginPage::parse(html)
    }

    /// Scans `ticket` with the sandbox phone as `openid`; returns the sandbox's JSON answer.
    pub async fn scan(&self, ticket: &str, openid: &str) -> serde_json::Value {
        let response = reqwest::Client::new()
            .post(self.url("/sandbox/api/scan"))
            .json(&serde_json::json!({ "ticket": ticket, "openid": openid }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "sandbox scan");
        response.json().await.unwrap()
    }

    /// The scene string behind a ticket (what WeChat puts in the event's EventKey).
    pub async fn scene_of(&self, ticket: &str) -> String {
        sqlx::query_scalar("SELECT scene FROM login_scenes WHERE ticket = ?")
            .bind(ticket)
            .fetch_one(&self.state.db)
            .await
            .unwrap()
    }

    /// The signature WeChat would put on a callback with this timestamp and nonce.
    pub fn sign(&self, timestamp: &str, nonce: &str) -> String {
        signature::sign(&[expose(&self.settings.wechat.token), timestamp, nonce])
    }

    /// POSTs `xml` to `/wechat/callback`, signed correctly, stamped now.
    pub async fn post_callback(&self, xml: &str) -> reqwest::Response {
        let timestamp = wxlogin::db::now().to_string();
        let nonce = wxlogin::db::random_hex(6);
        let signature = self.sign(&timestamp, &nonce);
        self.post_callback_with(xml, &signature, &timestamp, &nonce)
            .await
    }

    /// POSTs `xml` to `/wechat/callback` with the given query.
    pub async fn post_callback_with(
        &self,
        xml: &str,
        signature: &str,
        timestamp: &str,
        nonce: &str,
    ) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url("/wechat/callback"))
            .query(&[
                ("signature", signature),
                ("timestamp", timestamp),
                ("nonce", nonce),
            ])
            .body(xml.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// A scan event as WeChat sends it.
    pub fn scan_xml(
        &self,
        openid: &str,
        create_time: i64,
        first_follow: bool,
        scene: &str,
    ) -> String {
        message::scan_event_xml(
            "gh_test",
            openid,
            create_time,
            first_follow,
            scene,
            "TICKET",
        )
    }

    /// The newest SMS code the sandbox inbox holds for `phone`.
    pub async fn sms_code(&self, phone: &str) -> Option<String> {
        let response = reqwest::Client::new()
            .get(self.url("/sandbox/api/sms"))
            .query(&[("phone", phone)])
            .send()
            .await
            .unwrap();
        if response.status() == 404 {
            return None;
        }
        let body: serde_json::Value = response.json().await.unwrap();
        body["code"].as_str().map(str::to_owned)
    }

    /// Counts rows of `table` (test-only SQL).
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.state.db)
            .await
            .unwrap()
    }

    /// The CSRF token on the page at `path`.
    pub async fn csrf(&self, browser: &reqwest::Client, path: &str) -> String {
        let html = browser
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        between(&html, r#"name="csrf" value=""#, "\"").expect("page has a CSRF field")
    }

    /// Takes `browser` from a fresh `/login` through a first scan by `openid` and binding of
    /// `phone`, ending logged in. Returns the login page it started from.
    pub async fn log_in_new_user(
        &self,
        browser: &reqwest::Client,
        openid: &str,
        phone: &str,
    ) -> LoginPage {
        let page = self.open_login(browser).await;
        self.scan(&page.ticket, openid).await;
        let csrf = self.csrf(browser, "/bind").await;
        let sent = browser
            .post(self.url("/bind/code"))
            .form(&[("csrf", csrf.as_str()), ("phone", phone)])
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 303, "code sent");
        let code = self
            .sms_code(phone)
            .await
            .expect("code in the sandbox inbox");
        let verified = browser
            .post(self.url("/bind/verify"))
            .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(location(&verified), "/login/complete");
        let done = browser
            .get(self.url("/login/complete"))
            .send()
            .await
            .unwrap();
        assert_eq!(location(&done), "/");
        page
    }
}

/// What a test needs from the login page.
pub struct LoginPage {
    /// The whole HTML.
    pub html: String,
    /// The QR code's ticket (from the sandbox link).
    pub ticket: String,
}

impl LoginPage {
    fn parse(html: String) -> LoginPage {
        let ticket =
            between(&html, "/sandbox/scan/", "\"").expect("login page links the sandbox phone");
        LoginPage { html, ticket }
    }
}

/// The text between `start` and the next `end`.
pub fn between(haystack: &str, start: &str, end: &str) -> Option<String> {
    let from = haystack.find(start)? + start.len();
    let len = haystack[from..].find(end)?;
    Some(haystack[from..from + len].to_owned())
}

/// The `Location` header of a redirect.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `event:` (empty for unnamed events).
    pub event: String,
    /// `data:` lines joined by newlines.
    pub data: String,
}

/// Reads `/login/events` of a browser.
pub struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
    /// The response status.
    pub status: u16,
}

impl SseReader {
    /// Connects `browser` to the login event stream.
    pub async fn connect(app: &TestApp, browser: &reqwest::Client) -> SseReader {
        SseReader::connect_to(app, browser, "/login/events").await
    }

    /// Connects `browser` to the event stream at `path`.
    pub async fn connect_to(app: &TestApp, browser: &reqwest::Client, path: &str) -> SseReader {
        let response = browser.get(app.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        SseReader {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
            status,
        }
    }

    /// The next named event, or `None` if none comes within `wait` (or the stream ends).
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: String::new(),
                    data: String::new(),
                };
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        has_data = true;
                    }
                }
                if has_data {
                    return Some(event);
                }
                continue; // a keep-alive comment or retry hint
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??
                .ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
