//! `spawn_app()` and the other tools every API test uses: browsers with their own cookie jars,
//! the sandbox phone, signed callbacks, an SSE reader, and the test's own SQL on either backend.
//!
//! The tests run on SQLite (a file in a temporary folder) unless `WXLOGIN_TEST_POSTGRES_URL`
//! names a PostgreSQL server whose user may create databases: then each app gets a database of
//! its own there, dropped when the test is done with it. Test SQL is written once, with `?`
//! placeholders, in SQL both accept (flags as `TRUE`/`FALSE`, no `rowid`, no `strftime`).

use std::{path::Path, sync::Arc, time::Duration};

use futures::StreamExt;
use sqlx::{
    Arguments, Connection, Executor, PgPool, Postgres, Sqlite, SqlitePool,
    postgres::{PgArguments, PgRow},
    sqlite::{SqliteArguments, SqliteRow},
};
use tokio::task::JoinHandle;
use wxlogin::{
    Application,
    config::{Settings, expose},
    state::AppState,
    wechat::{message, signature},
};

/// The variable naming the PostgreSQL server to test on (unset: SQLite).
const POSTGRES_VAR: &str = "WXLOGIN_TEST_POSTGRES_URL";

/// The PostgreSQL server the tests run on, if `WXLOGIN_TEST_POSTGRES_URL` names one.
fn postgres_server() -> Option<String> {
    std::env::var(POSTGRES_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Whether the tests run on PostgreSQL.
pub fn on_postgres() -> bool {
    postgres_server().is_some()
}

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
    pub db: TestDb,
    handle: JoinHandle<()>,
    dir: Arc<tempfile::TempDir>,
    /// The database (last, so that it goes after the pools on it).
    database: Arc<TestDatabase>,
}

/// Starts wxlogin in sandbox mode on a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts wxlogin with settings changed by `change`.
pub async fn spawn_app_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let database = Arc::new(TestDatabase::create(dir.path(), "wxlogin.db").await);
    let mut settings = Settings::sandbox(database.url.clone());
    change(&mut settings);
    start(settings, dir, database).await
}

async fn start(
    settings: Settings,
    dir: Arc<tempfile::TempDir>,
    database: Arc<TestDatabase>,
) -> TestApp {
    let app = Application::build(settings.clone())
        .await
        .expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let db = TestDb::connect(&settings.database_url).await;
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
        database,
    }
}

/// A database of a test's own: the file `file` in `dir` on SQLite; on PostgreSQL a fresh
/// database on the test server, dropped (with whatever is still connected) when this goes.
pub struct TestDatabase {
    /// What `WXLOGIN_DATABASE_URL` would say.
    pub url: String,
    /// On PostgreSQL: the server's URL and the database's name.
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// Makes the database (on SQLite the app makes the file itself).
    pub async fn create(dir: &Path, file: &str) -> TestDatabase {
        let Some(server) = postgres_server() else {
            return TestDatabase {
                url: format!("sqlite://{}", dir.join(file).display()),
                postgres: None,
            };
        };
        let name = format!("wxtest_{}", wxlogin::util::random_hex(8));
        let mut admin = sqlx::PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_VAR}={server}: cannot connect: {e}"));
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = admin.close().await;
        let mut url =
            url::Url::parse(&server).unwrap_or_else(|e| panic!("{POSTGRES_VAR} is not a URL: {e}"));
        url.set_path(&format!("/{name}"));
        TestDatabase {
            url: url.to_string(),
            postgres: Some((server, name)),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // On a thread with a runtime of its own: this may run inside the test's runtime.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&server)
                    .await
                    .map_err(|e| e.to_string())?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = admin.close().await;
                Ok(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("the test database was left on the server: {e}");
        }
    }
}

/// A connection pool on a test's database, for the test-only SQL. Its SQL is written once with
/// `?` placeholders (numbered `$1, $2, …` for PostgreSQL here) in SQL both backends accept.
#[derive(Clone)]
pub enum TestDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A value bound to a `?` of test SQL. Each kind keeps its type when NULL (PostgreSQL wants
/// to know it).
#[derive(Debug, Clone)]
pub enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
}

macro_rules! arg_from {
    ($variant:ident: $($t:ty => $f:expr),+ $(,)?) => {
        $(
            impl From<$t> for Arg {
                fn from(v: $t) -> Arg {
                    Arg::$variant(Some(($f)(v)))
                }
            }
            impl From<Option<$t>> for Arg {
                fn from(v: Option<$t>) -> Arg {
                    Arg::$variant(v.map($f))
                }
            }
        )+
    };
}

arg_from!(Int: i64 => |v| v, i32 => i64::from, u32 => i64::from);
arg_from!(Bool: bool => |v| v);
arg_from!(
    Text: String => |v| v,
    &str => str::to_owned,
    &String => String::clone,
);
arg_from!(Bytes: Vec<u8> => |v| v, &[u8] => <[u8]>::to_vec);

/// The values bound to the `?`s of a statement, in order: `()`, or a tuple of things that
/// are [`Arg`]s (`(id, "disabled", 2000 + i)`).
pub trait Binds {
    fn into_args(self) -> Vec<Arg>;
}

impl Binds for () {
    fn into_args(self) -> Vec<Arg> {
        Vec::new()
    }
}

impl Binds for Vec<Arg> {
    fn into_args(self) -> Vec<Arg> {
        self
    }
}

macro_rules! tuple_binds {
    ($($name:ident),+) => {
        impl<$($name: Into<Arg>),+> Binds for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_args(self) -> Vec<Arg> {
                let ($($name,)+) = self;
                vec![$($name.into()),+]
            }
        }
    };
}

tuple_binds!(A);
tuple_binds!(A, B);
tuple_binds!(A, B, C);
tuple_binds!(A, B, C, D);
tuple_binds!(A, B, C, D, E);
tuple_binds!(A, B, C, D, E, F);
tuple_binds!(A, B, C, D, E, F, G);
tuple_binds!(A, B, C, D, E, F, G, H);

fn sqlite_args(args: Vec<Arg>) -> SqliteArguments<'static> {
    let mut out = SqliteArguments::default();
    for arg in args {
        match arg {
            Arg::Int(v) => out.add(v),
            Arg::Text(v) => out.add(v),
            Arg::Bool(v) => out.add(v),
            Arg::Bytes(v) => out.add(v),
        }
        .expect("a test value binds");
    }
    out
}

fn postgres_args(args: Vec<Arg>) -> PgArguments {
    let mut out = PgArguments::default();
    for arg in args {
        match arg {
            Arg::Int(v) => out.add(v),
            Arg::Text(v) => out.add(v),
            Arg::Bool(v) => out.add(v),
            Arg::Bytes(v) => out.add(v),
        }
        .expect("a test value binds");
    }
    out
}

/// `sql` with each `?` outside quotes numbered `$1, $2, …`, as PostgreSQL wants them.
pub fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote = None;
    let mut n = 0;
    for c in sql.chars() {
        match quote {
            // A doubled quote inside a literal closes and reopens it: the same to us.
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                n += 1;
                out.push_str(&format!("${n}"));
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

/// `done`'s value, or a panic naming the statement that failed.
fn checked<T>(sql: &str, done: Result<T, sqlx::Error>) -> T {
    done.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A value test SQL selects: decodable from both backends.
pub trait Value:
    Send
    + Unpin
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Postgres>
    + for<'r> sqlx::Decode<'r, Postgres>
{
}

impl<T> Value for T where
    T: Send
        + Unpin
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Postgres>
        + for<'r> sqlx::Decode<'r, Postgres>
{
}

/// A row test SQL selects (a tuple of [`Value`]s): decodable from both backends.
pub trait Row:
    Send + Unpin + for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow>
{
}

impl<T> Row for T where
    T: Send + Unpin + for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow>
{
}

impl TestDb {
    /// Connects to the database at `url` (`sqlite://` or `postgres://`).
    pub async fn connect(url: &str) -> TestDb {
        if wxlogin::store::is_postgres(url) {
            TestDb::Postgres(
                PgPool::connect(url)
                    .await
                    .expect("the test's own connection to the database"),
            )
        } else {
            TestDb::Sqlite(
                SqlitePool::connect(url)
                    .await
                    .expect("the test's own connection to the database"),
            )
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDb::Postgres(_))
    }

    /// Runs a statement with `args` bound to its `?`s; returns the rows it changed.
    pub async fn exec_binds(&self, sql: &str, args: impl Binds) -> u64 {
        let args = args.into_args();
        match self {
            TestDb::Sqlite(db) => sqlx::query_with(sql, sqlite_args(args))
                .execute(db)
                .await
                .map(|done| done.rows_affected()),
            TestDb::Postgres(db) => {
                sqlx::query_with(&numbered_placeholders(sql), postgres_args(args))
                    .execute(db)
                    .await
                    .map(|done| done.rows_affected())
            }
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs a statement once for each of `rows` (its arguments), all in one transaction.
    pub async fn exec_each<B: Binds>(&self, sql: &str, rows: impl IntoIterator<Item = B>) {
        match self {
            TestDb::Sqlite(db) => {
                let mut tx = checked(sql, db.begin().await);
                for row in rows {
                    let done = sqlx::query_with(sql, sqlite_args(row.into_args()))
                        .execute(&mut *tx)
                        .await;
                    checked(sql, done);
                }
                checked(sql, tx.commit().await);
            }
            TestDb::Postgres(db) => {
                let numbered = numbered_placeholders(sql);
                let mut tx = checked(sql, db.begin().await);
                for row in rows {
                    let done = sqlx::query_with(&numbered, postgres_args(row.into_args()))
                        .execute(&mut *tx)
                        .await;
                    checked(sql, done);
                }
                checked(sql, tx.commit().await);
            }
        }
    }

    /// Every row a query selects with `args` bound to its `?`s.
    pub async fn fetch_all<R: Row>(&self, sql: &str, args: impl Binds) -> Vec<R> {
        let args = args.into_args();
        match self {
            TestDb::Sqlite(db) => {
                sqlx::query_as_with(sql, sqlite_args(args))
                    .fetch_all(db)
                    .await
            }
            TestDb::Postgres(db) => {
                sqlx::query_as_with(&numbered_placeholders(sql), postgres_args(args))
                    .fetch_all(db)
                    .await
            }
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The row a query selects, if any (the first, if several: test queries select one).
    pub async fn fetch_optional<R: Row>(&self, sql: &str, args: impl Binds) -> Option<R> {
        self.fetch_all(sql, args).await.into_iter().next()
    }

    /// The one row a query selects.
    pub async fn fetch_one<R: Row>(&self, sql: &str, args: impl Binds) -> R {
        self.fetch_optional(sql, args)
            .await
            .unwrap_or_else(|| panic!("{sql}: no row"))
    }

    /// The first column of every row a query selects.
    pub async fn select_all<T: Value>(&self, sql: &str, args: impl Binds) -> Vec<T> {
        let rows: Vec<(T,)> = self.fetch_all(sql, args).await;
        rows.into_iter().map(|(value,)| value).collect()
    }

    /// The first column of the row a query selects, if any (the first, if several).
    pub async fn select_optional<T: Value>(&self, sql: &str, args: impl Binds) -> Option<T> {
        self.select_all(sql, args).await.into_iter().next()
    }

    /// The one value a query selects.
    pub async fn select_binds<T: Value>(&self, sql: &str, args: impl Binds) -> T {
        self.select_optional(sql, args)
            .await
            .unwrap_or_else(|| panic!("{sql}: no row"))
    }

    /// The name of the table of sessions (tower-sessions' own, outside the migrations).
    pub fn sessions_table(&self) -> &'static str {
        match self {
            TestDb::Sqlite(_) => "tower_sessions",
            TestDb::Postgres(_) => "tower_sessions.session",
        }
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
        start(settings, self.dir.clone(), self.database.clone()).await
    }

    /// Whether this app runs on PostgreSQL (for a test whose checks differ by backend).
    #[allow(dead_code)]
    pub fn is_postgres(&self) -> bool {
        self.db.is_postgres()
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

    /// Counts the stored sessions.
    pub async fn count_sessions(&self) -> i64 {
        self.count(self.db.sessions_table()).await
    }

    /// Runs a test-only SQL statement that takes no parameters.
    pub async fn exec(&self, sql: &str) {
        self.db.exec_binds(sql, ()).await;
    }

    /// Runs a test-only SQL statement with `arg` bound to its one `?`.
    pub async fn exec_with(&self, sql: &str, arg: impl Into<Arg>) {
        self.db.exec_binds(sql, (arg,)).await;
    }

    /// Runs a test-only SQL statement with `args` bound to its `?`s; returns the rows changed.
    pub async fn exec_binds(&self, sql: &str, args: impl Binds) -> u64 {
        self.db.exec_binds(sql, args).await
    }

    /// The one value a test-only SQL query that takes no parameters selects.
    pub async fn select<T: Value>(&self, sql: &str) -> T {
        self.db.select_binds(sql, ()).await
    }

    /// The one value a test-only SQL query selects with `arg` bound to its one `?`.
    pub async fn select_with<T: Value>(&self, sql: &str, arg: impl Into<Arg>) -> T {
        self.db.select_binds(sql, (arg,)).await
    }

    /// The one value a test-only SQL query selects with `args` bound to its `?`s.
    pub async fn select_binds<T: Value>(&self, sql: &str, args: impl Binds) -> T {
        self.db.select_binds(sql, args).await
    }

    /// Every row a test-only SQL query selects with `args` bound to its `?`s.
    pub async fn fetch_all<R: Row>(&self, sql: &str, args: impl Binds) -> Vec<R> {
        self.db.fetch_all(sql, args).await
    }

    /// The one row a test-only SQL query selects with `args` bound to its `?`s.
    pub async fn fetch_one<R: Row>(&self, sql: &str, args: impl Binds) -> R {
        self.db.fetch_one(sql, args).await
    }

    /// The row a test-only SQL query selects with `args` bound to its `?`s, if any.
    pub async fn fetch_optional<R: Row>(&self, sql: &str, args: impl Binds) -> Option<R> {
        self.db.fetch_optional(sql, args).await
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
