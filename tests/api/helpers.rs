//! `spawn_app()` and the other tools every API test uses: browsers with their own cookie jars,
//! the sandbox phone, signed callbacks, an SSE reader.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use sqlx::Sqlite;
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
    /// A connection pool of the test's own on the app's database, for the test-only SQL that
    /// sets up and checks what HTTP can't.
    pub db: sqlx::SqlitePool,
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
    let db = sqlx::SqlitePool::connect(&settings.database_url)
        .await
        .expect("the test's own connection to the database");
    let handle = tokio::spawn(async move {
        let _ = app.run_until_stopped(std::future::pending()).await;
    });
    TestApp {
        address,
        state,
        settings,
        db,
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

    /// A new browser as [`Self::browser`], with its cookie jar at hand (to send its cookies on
    /// a raw connection).
    pub fn browser_with_jar(&self) -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let browser = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        (browser, jar)
    }

    /// The `Cookie` header `jar` would send to this app.
    pub fn cookie_header(&self, jar: &reqwest::cookie::Jar) -> String {
        use reqwest::cookie::CookieStore;
        jar.cookies(&self.url("/").parse().unwrap())
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// `host:port` of this app.
    pub fn host(&self) -> &str {
        self.address.trim_start_matches("http://")
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
        let response = self.get(browser, "/login").await;
        assert_eq!(response.status(), 200, "GET /login");
        let html = response.text().await.unwrap();
        LoginPage::parse(html)
    }

    /// Scans `ticket` with the sandbox phone as `openid`; returns the sandbox's JSON answer.
    pub async fn scan(&self, ticket: &str, openid: &str) -> serde_json::Value {
        let response = self
            .post_json(
                "/sandbox/api/scan",
                &serde_json::json!({ "ticket": ticket, "openid": openid }),
            )
            .await;
        assert_eq!(response.status(), 200, "sandbox scan");
        response.json().await.unwrap()
    }

    /// The scene string behind a ticket (what WeChat puts in the event's EventKey).
    pub async fn scene_of(&self, ticket: &str) -> String {
        self.select_with("SELECT scene FROM login_scenes WHERE ticket = ?", ticket)
            .await
    }

    /// The signature WeChat would put on a callback with this timestamp and nonce.
    pub fn sign(&self, timestamp: &str, nonce: &str) -> String {
        signature::sign(&[expose(&self.settings.wechat.token), timestamp, nonce])
    }

    /// POSTs `xml` to `/wechat/callback`, signed correctly, stamped now.
    pub async fn post_callback(&self, xml: &str) -> reqwest::Response {
        let timestamp = wxlogin::util::now().to_string();
        let nonce = wxlogin::util::random_hex(6);
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
        self.select(&format!("SELECT COUNT(*) FROM {table}")).await
    }

    /// Runs a test-only SQL statement that takes no parameters.
    pub async fn exec(&self, sql: &str) {
        sqlx::query(sql).execute(&self.db).await.unwrap();
    }

    /// Runs a test-only SQL statement with `arg` bound to its one `?`.
    pub async fn exec_with<'q, A>(&self, sql: &'q str, arg: A)
    where
        A: 'q + Send + sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite>,
    {
        sqlx::query(sql).bind(arg).execute(&self.db).await.unwrap();
    }

    /// The one value a test-only SQL query that takes no parameters selects.
    pub async fn select<T>(&self, sql: &str) -> T
    where
        T: Send + Unpin + sqlx::Type<Sqlite> + for<'r> sqlx::Decode<'r, Sqlite>,
    {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.unwrap()
    }

    /// The one value a test-only SQL query selects with `arg` bound to its one `?`.
    pub async fn select_with<'q, T, A>(&self, sql: &'q str, arg: A) -> T
    where
        T: Send + Unpin + sqlx::Type<Sqlite> + for<'r> sqlx::Decode<'r, Sqlite>,
        A: 'q + Send + sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite>,
    {
        sqlx::query_scalar(sql)
            .bind(arg)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// GETs `path` in `browser`.
    pub async fn get(&self, browser: &reqwest::Client, path: &str) -> reqwest::Response {
        browser.get(self.url(path)).send().await.unwrap()
    }

    /// GETs `path` in `browser` with one extra request header (a language, a forwarded address).
    pub async fn get_with_header(
        &self,
        browser: &reqwest::Client,
        path: &str,
        header: (&str, &str),
    ) -> reqwest::Response {
        browser
            .get(self.url(path))
            .header(header.0, header.1)
            .send()
            .await
            .unwrap()
    }

    /// The text of the page at `path` as `browser` sees it (whatever the status).
    pub async fn page_text(&self, browser: &reqwest::Client, path: &str) -> String {
        self.get(browser, path).await.text().await.unwrap()
    }

    /// POSTs a form holding only `csrf` to `path` in `browser`.
    pub async fn post_csrf(
        &self,
        browser: &reqwest::Client,
        path: &str,
        csrf: &str,
    ) -> reqwest::Response {
        browser
            .post(self.url(path))
            .form(&[("csrf", csrf)])
            .send()
            .await
            .unwrap()
    }

    /// POSTs `body` as JSON to `path` from a client without cookies.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The CSRF token on the page at `path`.
    pub async fn csrf(&self, browser: &reqwest::Client, path: &str) -> String {
        let html = self.page_text(browser, path).await;
        between(&html, r#"name="csrf" value=""#, "\"").expect("page has a CSRF field")
    }

    /// Opens `/login` in `browser` and connects it to the login event stream, past the first
    /// event (the state on connecting).
    pub async fn watch_login(&self, browser: &reqwest::Client) -> (LoginPage, SseReader) {
        let page = self.open_login(browser).await;
        let mut events = SseReader::connect(self, browser).await;
        events.next(Duration::from_secs(5)).await;
        (page, events)
    }

    /// A fresh browser waiting on `/login`, with its page and the scene behind its QR code.
    pub async fn waiting_scene(&self) -> (reqwest::Client, LoginPage, String) {
        let browser = self.browser();
        let page = self.open_login(&browser).await;
        let scene = self.scene_of(&page.ticket).await;
        (browser, page, scene)
    }

    /// A fresh browser whose first scan (as `openid`) needs binding, with its CSRF token.
    pub async fn needs_binding(&self, openid: &str) -> (reqwest::Client, String) {
        let browser = self.browser();
        let page = self.open_login(&browser).await;
        self.scan(&page.ticket, openid).await;
        let csrf = self.csrf(&browser, "/bind").await;
        (browser, csrf)
    }

    /// POSTs `/bind/code`: asks for an SMS code for `phone`. Every answer is a 303 back to
    /// `/bind` (post/redirect/get).
    pub async fn send_code(
        &self,
        browser: &reqwest::Client,
        csrf: &str,
        phone: &str,
    ) -> reqwest::Response {
        browser
            .post(self.url("/bind/code"))
            .form(&[("csrf", csrf), ("phone", phone)])
            .send()
            .await
            .unwrap()
    }

    /// [`Self::send_code`], then the page it goes back to, which answers with the status of
    /// what it shows (200 sent, 400 a bad number, 429 a limit).
    pub async fn send_code_page(
        &self,
        browser: &reqwest::Client,
        csrf: &str,
        phone: &str,
    ) -> reqwest::Response {
        let posted = self.send_code(browser, csrf, phone).await;
        self.follow_to(browser, posted, "/bind").await
    }

    /// POSTs `/bind/verify`: enters the SMS `code`. A right code answers 303 to
    /// `/login/complete`; anything else goes back to `/bind`, which this follows.
    pub async fn verify_code(
        &self,
        browser: &reqwest::Client,
        csrf: &str,
        code: &str,
    ) -> reqwest::Response {
        let posted = browser
            .post(self.url("/bind/verify"))
            .form(&[("csrf", csrf), ("code", code)])
            .send()
            .await
            .unwrap();
        self.follow_to(browser, posted, "/bind").await
    }

    /// `answer` if it is not a 303 to `page`; else `page`, as the browser then sees it.
    pub async fn follow_to(
        &self,
        browser: &reqwest::Client,
        answer: reqwest::Response,
        page: &str,
    ) -> reqwest::Response {
        if answer.status() == 303 && location(&answer) == page {
            self.get(browser, page).await
        } else {
            answer
        }
    }

    /// GETs `/login/complete` in `browser` (redeems its scene) and returns where it redirects.
    pub async fn complete_login(&self, browser: &reqwest::Client) -> String {
        location(&self.get(browser, "/login/complete").await)
    }

    /// Takes `browser`, sent to `login` (a `/login?next=...` URL), through a scan by `openid`
    /// and, the first time, the binding of `phone`; returns where the login then sends it, and
    /// the login page.
    pub async fn log_in_at(
        &self,
        browser: &reqwest::Client,
        login: &str,
        openid: &str,
        phone: Option<&str>,
    ) -> (String, String) {
        let page = browser.get(self.url(login)).send().await.unwrap();
        assert_eq!(page.status(), 200, "GET {login}");
        let html = page.text().await.unwrap();
        let ticket = between(&html, "/sandbox/scan/", "\"").expect("a sandbox link");
        self.scan(&ticket, openid).await;
        if let Some(phone) = phone {
            let csrf = self.csrf(browser, "/bind").await;
            assert_eq!(self.send_code(browser, &csrf, phone).await.status(), 303);
            let code = self.sms_code(phone).await.expect("a code");
            let verified = self.verify_code(browser, &csrf, &code).await;
            assert_eq!(location(&verified), "/login/complete");
        }
        (self.complete_login(browser).await, html)
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
        let sent = self.send_code(browser, &csrf, phone).await;
        assert_eq!(sent.status(), 303, "code sent");
        let code = self
            .sms_code(phone)
            .await
            .expect("code in the sandbox inbox");
        let verified = self.verify_code(browser, &csrf, &code).await;
        assert_eq!(location(&verified), "/login/complete");
        assert_eq!(self.complete_login(browser).await, "/");
        page
    }
}

/// Calls `attempt` up to `tries` times, `pause` apart, until it gives `Some`.
pub async fn poll<T, F, Fut>(tries: usize, pause: Duration, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..tries {
        if let Some(found) = attempt().await {
            return Some(found);
        }
        tokio::time::sleep(pause).await;
    }
    None
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
        let response = app.get(browser, path).await;
        let status = response.status().as_u16();
        SseReader {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
            status,
        }
    }

    /// The events up to and including the next `name` event: what came before it, and it.
    /// `None` if it doesn't come within `wait`.
    pub async fn until(&mut self, name: &str, wait: Duration) -> Option<(Vec<SseEvent>, SseEvent)> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next(left).await?;
            if event.event == name {
                return Some((before, event));
            }
            before.push(event);
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

/// One HTTP/1.1 request as raw bytes, with `Connection: close`. `extra` holds whole header
/// lines (`"Cookie: a=b"`), `body` a form (sent as `application/x-www-form-urlencoded`).
pub fn raw_request(method: &str, path: &str, extra: &[String], body: Option<&str>) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    if let Some(body) = body {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    head.push_str(body.unwrap_or(""));
    head.into_bytes()
}

/// A response read whole from a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Status line and headers, header names lowercased.
    pub head: String,
}

/// Sends `requests` to `host` the way an attacker racing a limit would: each on its own
/// connection, written whole but for its last byte, then every last byte at once, so that
/// the server sees them all complete at the same moment. Returns the responses in order.
pub async fn release_together(host: &str, requests: Vec<Vec<u8>>) -> Vec<RawResponse> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut streams = Vec::with_capacity(requests.len());
    for request in &requests {
        let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .write_all(&request[..request.len() - 1])
            .await
            .unwrap();
        streams.push(stream);
    }
    // Let the server read every head and body but the last byte.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (stream, request) in streams.iter_mut().zip(&requests) {
        stream
            .write_all(&request[request.len() - 1..])
            .await
            .unwrap();
    }
    let reads = streams.into_iter().map(|mut stream| async move {
        let mut bytes = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut bytes))
            .await
            .expect("the response arrives in time")
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let head = text
            .split_once("\r\n\r\n")
            .map_or(text.as_str(), |(head, _)| head);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        RawResponse {
            status,
            head: head.to_lowercase(),
        }
    });
    futures::future::join_all(reads).await
}
