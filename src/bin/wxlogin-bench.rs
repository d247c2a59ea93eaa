//! `wxlogin-bench`: load tests that check the push design at scale (issue 6).
//!
//! It starts the release server itself (sandbox mode, a throw-away SQLite database in a temp
//! directory, a free port on 127.0.0.1), drives it over loopback with a small raw HTTP/1.1
//! client (one TCP connection per simulated browser), reads the server's memory and CPU from
//! `/proc/<pid>/status` and `/proc/<pid>/stat`, and stops it at the end.
//!
//! ```sh
//! cargo build --release --bins
//! $CARGO_TARGET_DIR/release/wxlogin-bench            # all scenarios, each twice
//! $CARGO_TARGET_DIR/release/wxlogin-bench --browsers 1000 --runs 1 --scenarios 1,2
//! ```
//!
//! Scenarios (see docs/benchmarks.md):
//! 1. waiting browsers: N login pages, each with its SSE stream held open; RSS and idle CPU;
//! 2. push latency: those N browsers are scanned with signed callbacks at a steady rate; time
//!    from sending a callback to its browser's stream receiving `event: redirect`;
//! 3. callback throughput, plaintext and safe mode;
//! 4. `/login` pages per second, and the bytes of a first visit;
//! 5. OpenID Connect token exchanges and userinfo;
//! 6. (only with `--scenarios 6 --postgres URL`) two instances on one fresh PostgreSQL database
//!    behind nginx: waiting browsers held on both, each scanned by a callback sent straight to
//!    the *other* instance (so the push crosses instances through `NOTIFY`), and callbacks per
//!    second on PostgreSQL with one and with two instances.
//!
//! Only the scene strings are read from the server's database (read-only), because the page
//! never shows them and a real WeChat would know them; everything else goes through HTTP.
//! Every loop is bounded in count and in time, and only 127.0.0.1 is contacted (scenario 6
//! also the `--postgres` server, which should be local too).
//!
//! Over 400 lines: a standalone tool (its own HTTP client, six scenarios, their tables). It
//! reads the server's database directly, read-only, for what WeChat knows and a page never
//! shows (scene strings); the app itself reaches SQL only through `src/store/`.

use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    str::FromStr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use serde_json::{Value, json};
use sqlx::{
    Connection,
    sqlite::{SqliteConnectOptions, SqliteConnection},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{Semaphore, mpsc, watch},
};
use wxlogin::wechat::{crypto, message, signature};

/// The sandbox's built-in callback Token and AppID (config.rs).
const TOKEN: &str = "sandboxtoken";
const APPID: &str = "wxsandbox000000000";
const ACCOUNT: &str = "gh_sandbox000001";
/// The EncodingAESKey of the safe-mode server (any valid 43-character key will do).
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// Load tests for wxlogin: waiting browsers, push latency, callbacks, login pages.
#[derive(Parser, Debug, Clone)]
#[command(
    version,
    about = "Load tests for wxlogin (docs/benchmarks.md): waiting browsers, push latency, callbacks, login pages"
)]
struct Args {
    /// The wxlogin binary to start (default: `wxlogin` next to this program).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Scenarios to run, from 1 (waiting browsers), 2 (push latency), 3 (callbacks), 4 (/login),
    /// 5 (OpenID Connect token exchanges and userinfo), 6 (two instances on PostgreSQL behind
    /// nginx; not in the default list, needs `--postgres`).
    #[arg(long, value_delimiter = ',', default_values_t = [1u8, 2, 3, 4, 5])]
    scenarios: Vec<u8>,
    /// Numbers of waiting browsers for scenarios 1 and 2.
    #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
    browsers: Vec<usize>,
    /// How many times each scenario runs (each run of 1+2 gets a fresh server).
    #[arg(long, default_value_t = 2)]
    runs: usize,
    /// Scenario 1: seconds of idle CPU measurement while the browsers wait.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// Scenario 1: browsers being opened at once.
    #[arg(long, default_value_t = 64)]
    open_concurrency: usize,
    /// Scenario 2: scans per second.
    #[arg(long, default_value_t = 500)]
    scan_rate: u64,
    /// Scenario 2: keep-alive connections the "WeChat servers" send callbacks over.
    #[arg(long, default_value_t = 32)]
    scan_connections: usize,
    /// Scenario 3b: callbacks per second sent on a fixed schedule (open loop), each timed from
    /// its scheduled moment, so a server that falls behind shows it in the percentiles.
    #[arg(long, default_value_t = 5000)]
    callback_rate: u64,
    /// Scenarios 3, 4 and 5: seconds each measurement lasts.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Scenarios 3, 4 and 5: requests in flight (one keep-alive connection each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Also write every result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the servers' temp directories (database and log) instead of deleting them.
    #[arg(long)]
    keep: bool,
    /// Extra environment for the server, `NAME=value` (repeatable), e.g. `RUST_LOG=warn`.
    #[arg(long = "server-env", value_parser = parse_env)]
    server_env: Vec<(String, String)>,
    /// Where the servers' temp directories go (default: the system temp dir, e.g. /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Scenario 6: a PostgreSQL server whose user may create databases, e.g.
    /// `postgres://postgres@127.0.0.1:55432/postgres`. Each run makes a fresh database
    /// `wxbench_<random>` on it and drops it at the end.
    #[arg(long)]
    postgres: Option<String>,
    /// Scenario 6: the nginx binary put in front of the two instances.
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx: PathBuf,
    /// Scenario 6: waiting browsers per instance (fewer if the open-file limits can't hold them).
    #[arg(long, default_value_t = 5000)]
    instances_browsers: usize,
    /// Scenario 6: scans per second, each sent to the instance not holding its browser.
    #[arg(long, default_value_t = 200)]
    instances_scan_rate: u64,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not NAME=value"))
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds since the bench started.
fn stamp() -> u64 {
    base().elapsed().as_nanos() as u64
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client: keep-alive, Content-Length and chunked bodies. Lighter than a
// full client for ten thousand concurrent streams, and it counts the bytes on the wire.

mod http {
    use super::*;

    /// A response head.
    pub struct Head {
        pub status: u16,
        pub headers: Vec<(String, String)>,
    }

    impl Head {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        fn chunked(&self) -> bool {
            self.header("transfer-encoding")
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        }

        fn content_length(&self) -> Option<usize> {
            self.header("content-length")
                .and_then(|v| v.trim().parse().ok())
        }
    }

    /// One keep-alive connection.
    pub struct Conn {
        stream: TcpStream,
        buf: Vec<u8>,
        /// Bytes read from the socket so far.
        pub bytes_in: usize,
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    fn bad(msg: impl Into<String>) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, msg.into())
    }

    impl Conn {
        pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Conn {
                stream,
                buf: Vec::with_capacity(1024),
                bytes_in: 0,
            })
        }

        async fn fill(&mut self) -> io::Result<()> {
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(8192);
            }
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.bytes_in += n;
            Ok(())
        }

        /// Frees the read buffer of a connection that will mostly idle.
        pub fn shrink(&mut self) {
            self.buf.shrink_to(256);
        }

        pub async fn send(&mut self, request: &[u8]) -> io::Result<()> {
            self.stream.write_all(request).await
        }

        pub async fn read_head(&mut self) -> io::Result<Head> {
            let end = loop {
                if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                    break end;
                }
                if self.buf.len() > 64 * 1024 {
                    return Err(bad("response head too long"));
                }
                self.fill().await?;
            };
            let text = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("head not UTF-8"))?;
            let mut lines = text.split("\r\n");
            let status_line = lines.next().unwrap_or("");
            let status = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            self.buf.drain(..end + 4);
            Ok(Head { status, headers })
        }

        /// The next chunk of a chunked body; `None` after the last one.
        pub async fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
            loop {
                if let Some(eol) = find(&self.buf, b"\r\n") {
                    let line = std::str::from_utf8(&self.buf[..eol]).map_err(|_| bad("chunk"))?;
                    let size =
                        usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                            .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
                    let need = eol + 2 + size + 2;
                    if self.buf.len() >= need {
                        let data = self.buf[eol + 2..eol + 2 + size].to_vec();
                        self.buf.drain(..need);
                        return Ok((size > 0).then_some(data));
                    }
                }
                self.fill().await?;
            }
        }

        pub async fn read_body(&mut self, head: &Head) -> io::Result<Vec<u8>> {
            if head.status == 204 || head.status == 304 || (100..200).contains(&head.status) {
                return Ok(Vec::new());
            }
            if head.chunked() {
                let mut body = Vec::new();
                while let Some(chunk) = self.read_chunk().await? {
                    body.extend_from_slice(&chunk);
                }
                return Ok(body);
            }
            let len = head
                .content_length()
                .ok_or_else(|| bad("neither chunked nor Content-Length"))?;
            while self.buf.len() < len {
                self.fill().await?;
            }
            Ok(self.buf.drain(..len).collect())
        }

        pub async fn request(&mut self, request: &[u8]) -> io::Result<(Head, Vec<u8>)> {
            self.send(request).await?;
            let head = self.read_head().await?;
            let body = self.read_body(&head).await?;
            Ok((head, body))
        }
    }
}

use http::Conn;

/// A client address of its own for each simulated browser, as a trusted proxy would report it
/// in `X-Forwarded-For` (the server trusts 127.0.0.1): wxlogin caps new QR codes per client IP,
/// and real browsers come from many addresses. These are IPv6 documentation addresses
/// (2001:db8::/32), only ever written into a header; all traffic goes to 127.0.0.1. Each is
/// in a /64 of its own, since wxlogin counts an IPv6 client by its /64.
fn simulated_client() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("2001:db8:{:x}:{:x}::1", (n >> 16) & 0xffff, n & 0xffff)
}

fn get_request(
    host: &str,
    path: &str,
    cookie: Option<&str>,
    client: &str,
    accept: &str,
) -> Vec<u8> {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) wxlogin-bench\r\n\
         Accept: {accept}\r\nAccept-Language: zh-CN,zh;q=0.9\r\nX-Forwarded-For: {client}\r\n{cookie}\r\n"
    )
    .into_bytes()
}

/// The text between `start` and the next `end`.
fn between<'a>(haystack: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = haystack.find(start)? + start.len();
    let len = haystack[from..].find(end)?;
    Some(&haystack[from..from + len])
}

// ---------------------------------------------------------------------------------------------
// The server under test.

struct Server {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    host: String,
    dir: PathBuf,
    db_url: String,
    keep: bool,
}

static SERVERS: AtomicUsize = AtomicUsize::new(0);

/// Where a server keeps its data when it isn't its own SQLite file: a database URL (scenario
/// 6's PostgreSQL database, shared by several instances) and the directory for its log.
struct Placement {
    db_url: String,
    dir: PathBuf,
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A read-only connection to a PostgreSQL database (what the bench reads, WeChat knows).
async fn pg_read_only(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    let options = sqlx::postgres::PgConnectOptions::from_str(url)?
        .options([("default_transaction_read_only", "on")]);
    Ok(sqlx::PgConnection::connect_with(&options).await?)
}

impl Server {
    /// A server on a new SQLite database in a temp directory of its own.
    async fn start(args: &Args, binary: &Path, safe_mode: bool) -> anyhow::Result<Server> {
        Server::start_on(args, binary, safe_mode, None).await
    }

    /// A server on `placement`'s database and directory, or (`None`) on a new SQLite database
    /// in a temp directory of its own. The settings are the same either way.
    async fn start_on(
        args: &Args,
        binary: &Path,
        safe_mode: bool,
        placement: Option<Placement>,
    ) -> anyhow::Result<Server> {
        let keep = args.keep;
        let (dir, db_url) = match placement {
            Some(Placement { db_url, dir }) => (dir, db_url),
            None => {
                let serial = SERVERS.fetch_add(1, Ordering::Relaxed);
                let root = args.dir.clone().unwrap_or_else(std::env::temp_dir);
                let dir = root.join(format!("wxlogin-bench-{}-{serial}", std::process::id()));
                let db_url = format!("sqlite://{}", dir.join("wxlogin.db").display());
                (dir, db_url)
            }
        };
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut command = Command::new(binary);
        command.current_dir(&dir);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if name.starts_with("WXLOGIN_") || name.starts_with("LEPTOS_") {
                command.env_remove(name);
            }
        }
        command
            .env("WXLOGIN_MODE", "sandbox")
            .env("WXLOGIN_DATABASE_URL", &db_url)
            .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
            // The sandbox's built-in AppID and Token are `APPID` and `TOKEN`.
            // Long enough that no QR code dies (and gets replaced) during a run.
            .env("WXLOGIN_QR_EXPIRE_SECONDS", "1800")
            // The bench is the proxy in front of many simulated browsers (`simulated_client`).
            .env("WXLOGIN_TRUSTED_PROXIES", "127.0.0.1")
            // Scenario 5's one client asks for tokens as fast as it can.
            .env("WXLOGIN_OIDC_TOKEN_RATE", "1000000")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        if safe_mode {
            command.env("WXLOGIN_WECHAT_AES_KEY", AES_KEY);
        }
        command.envs(args.server_env.iter().map(|(k, v)| (k, v)));
        let child = command
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", binary.display()))?;
        let pid = child.id();
        let mut server = Server {
            child,
            pid,
            addr: "127.0.0.1:0".parse()?,
            host: String::new(),
            dir,
            db_url,
            keep,
        };
        // The server prints `wxlogin: open http://127.0.0.1:<port>/login` once it listens.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
            if let Some(url) = between(&log, "wxlogin: open http://", "/login") {
                server.addr = url.parse()?;
                server.host = url.to_owned();
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                anyhow::bail!("server exited at start ({status}):\n{log}");
            }
            if Instant::now() > deadline {
                anyhow::bail!("server did not start within 30 s:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut conn = Conn::connect(server.addr).await?;
        let (head, _) = conn
            .request(&get_request(&server.host, "/healthz", None, "::1", "*/*"))
            .await?;
        anyhow::ensure!(head.status == 200, "/healthz answered {}", head.status);
        Ok(server)
    }

    /// Resident memory in KiB.
    fn rss_kib(&self) -> u64 {
        proc_rss_kib(self.pid)
    }

    /// A writing connection, for seeding what a scenario needs.
    async fn db_rw(&self) -> anyhow::Result<SqliteConnection> {
        let options =
            SqliteConnectOptions::from_str(&self.db_url)?.busy_timeout(Duration::from_secs(10));
        Ok(SqliteConnection::connect_with(&options).await?)
    }

    async fn db(&self) -> anyhow::Result<SqliteConnection> {
        let options = SqliteConnectOptions::from_str(&self.db_url)?.read_only(true);
        Ok(SqliteConnection::connect_with(&options).await?)
    }

    /// Access tokens the sandbox issued: one per fetch by the server (by all the instances on
    /// a shared PostgreSQL database).
    async fn token_fetches(&self) -> anyhow::Result<i64> {
        const SQL: &str = "SELECT COUNT(*) FROM sandbox_tokens";
        if is_postgres(&self.db_url) {
            let mut db = pg_read_only(&self.db_url).await?;
            return Ok(sqlx::query_scalar(SQL).fetch_one(&mut db).await?);
        }
        let mut db = self.db().await?;
        Ok(sqlx::query_scalar(SQL).fetch_one(&mut db).await?)
    }

    /// Every scene's string by its QR ticket: WeChat knows them from qrcode/create; the bench
    /// reads them from the database (read-only).
    async fn scenes(&self) -> anyhow::Result<HashMap<String, String>> {
        const SQL: &str = "SELECT ticket, scene FROM login_scenes";
        let rows: Vec<(String, String)> = if is_postgres(&self.db_url) {
            let mut db = pg_read_only(&self.db_url).await?;
            sqlx::query_as(SQL).fetch_all(&mut db).await?
        } else {
            let mut db = self.db().await?;
            sqlx::query_as(SQL).fetch_all(&mut db).await?
        };
        Ok(rows.into_iter().collect())
    }

    async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            eprintln!("server {} did not stop on SIGTERM; killing it", self.pid);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if self.keep {
            eprintln!("kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn proc_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

/// CPU use of the server (or of several processes together) and of this bench over a
/// measured stretch, in % of one core.
struct CpuMeter {
    server_pids: Vec<u32>,
    server: Duration,
    bench: Duration,
    at: Instant,
}

impl CpuMeter {
    fn start(server: &Server) -> CpuMeter {
        CpuMeter::of(&[server.pid])
    }

    /// The processes `pids` together (a process gone by the end counts nothing).
    fn of(pids: &[u32]) -> CpuMeter {
        CpuMeter {
            server_pids: pids.to_vec(),
            server: pids.iter().map(|pid| proc_cpu(*pid)).sum(),
            bench: proc_cpu(std::process::id()),
            at: Instant::now(),
        }
    }

    /// (server %, bench %).
    fn stop(&self) -> (f64, f64) {
        let wall = self.at.elapsed().as_secs_f64();
        let now: Duration = self.server_pids.iter().map(|pid| proc_cpu(*pid)).sum();
        let server = now.saturating_sub(self.server).as_secs_f64();
        let bench = proc_cpu(std::process::id())
            .saturating_sub(self.bench)
            .as_secs_f64();
        (100.0 * server / wall, 100.0 * bench / wall)
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers.

/// Latencies in microseconds.
#[derive(Default)]
struct Latencies(Vec<u64>);

impl Latencies {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros() as u64);
    }

    fn sorted(mut self) -> Summary {
        self.0.sort_unstable();
        Summary(self.0)
    }
}

struct Summary(Vec<u64>);

impl Summary {
    /// The `q` quantile in milliseconds (nearest rank).
    fn ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1] as f64 / 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.0.last().map_or(f64::NAN, |v| *v as f64 / 1000.0)
    }

    fn json(&self) -> Value {
        json!({ "count": self.0.len(), "p50_ms": self.ms(0.5), "p90_ms": self.ms(0.9),
                "p99_ms": self.ms(0.99), "max_ms": self.max_ms() })
    }
}

/// A small aligned table.
struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose rows end with [`latency_and_cpu`]'s five cells.
    fn timed(title: impl Into<String>, leading: &[&str]) -> Table {
        let mut header = leading.to_vec();
        header.extend(["p50 ms", "p99 ms", "max ms", "server CPU %", "bench CPU %"]);
        Table::new(title, &header)
    }

    fn new(title: impl Into<String>, header: &[&str]) -> Table {
        Table {
            title: title.into(),
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn print(&self) {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        println!("\n{}\n", self.title);
        let line = |cells: &[String]| {
            let cells: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{:>w$}", c, w = widths[i]))
                .collect();
            println!("| {} |", cells.join(" | "));
        };
        line(&self.header);
        println!(
            "|{}|",
            widths
                .iter()
                .map(|w| format!("{}:", "-".repeat(w + 1)))
                .collect::<Vec<_>>()
                .join("|")
        );
        for row in &self.rows {
            line(row);
        }
    }
}

/// The last five cells of a throughput row: p50, p99 and max in ms, server and bench CPU %.
fn latency_and_cpu(lat: &Summary, server_cpu: f64, bench_cpu: f64) -> [String; 5] {
    [
        f2(lat.ms(0.5)),
        f2(lat.ms(0.99)),
        f2(lat.max_ms()),
        f1(server_cpu),
        f1(bench_cpu),
    ]
}

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

fn f2(v: f64) -> String {
    format!("{v:.2}")
}

// ---------------------------------------------------------------------------------------------
// Scenarios 1 and 2: waiting browsers and push latency.

/// What a held stream tells the bench.
enum StreamNews {
    /// `event: redirect` arrived at this instant (bench nanoseconds).
    Redirect(usize, u64),
    /// The stream ended or failed before a redirect.
    Ended(usize, String),
    /// Another named event arrived (not expected while waiting).
    Other(String),
}

/// Opens `/login` and its event stream as a new browser; returns the connection (with the
/// first `status` event read) and the QR ticket.
async fn open_browser(server_addr: SocketAddr, host: &str) -> Result<(Conn, String), String> {
    open_browser_upstream(server_addr, host)
        .await
        .map(|(conn, ticket, _)| (conn, ticket))
}

/// [`open_browser`], also returning the event stream's `X-Upstream` header: which instance
/// holds the stream, when the browser goes through scenario 6's nginx.
async fn open_browser_upstream(
    server_addr: SocketAddr,
    host: &str,
) -> Result<(Conn, String, Option<String>), String> {
    let mut conn = Conn::connect(server_addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let client = simulated_client();
    let (head, body) = conn
        .request(&get_request(host, "/login", None, &client, "text/html"))
        .await
        .map_err(|e| format!("GET /login: {e}"))?;
    if head.status != 200 {
        return Err(format!("GET /login: HTTP {}", head.status));
    }
    let cookie = head
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.split(';').next().filter(|c| c.starts_with("wxlogin=")))
        .ok_or("GET /login: no wxlogin cookie")?
        .to_owned();
    let html = String::from_utf8_lossy(&body);
    let ticket = between(&html, "/sandbox/scan/", "\"")
        .ok_or("GET /login: no sandbox ticket")?
        .to_owned();
    conn.send(&get_request(
        host,
        "/login/events",
        Some(&cookie),
        &client,
        "text/event-stream",
    ))
    .await
    .map_err(|e| format!("GET /login/events: {e}"))?;
    let head = conn
        .read_head()
        .await
        .map_err(|e| format!("GET /login/events: {e}"))?;
    if head.status != 200 {
        return Err(format!("GET /login/events: HTTP {}", head.status));
    }
    let upstream = head.header("x-upstream").map(str::to_owned);
    // The first event says where things stand: waiting.
    let mut text = String::new();
    loop {
        let chunk = conn
            .read_chunk()
            .await
            .map_err(|e| format!("event stream: {e}"))?
            .ok_or("event stream ended at once")?;
        text.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(end) = text.find("\n\n") {
            let block = &text[..end];
            if block.contains("event: status") && block.contains("status-waiting") {
                break;
            }
            if block.contains("event:") {
                return Err(format!("unexpected first event {block:?}"));
            }
            text.drain(..end + 2);
        }
    }
    conn.shrink();
    Ok((conn, ticket, upstream))
}

/// Holds one browser's stream until a redirect, an end, or `stop`.
async fn hold(
    idx: usize,
    mut conn: Conn,
    mut stop: watch::Receiver<bool>,
    news: mpsc::UnboundedSender<StreamNews>,
) {
    let mut text = String::new();
    loop {
        let chunk = tokio::select! {
            chunk = conn.read_chunk() => chunk,
            _ = stop.wait_for(|s| *s) => return,
        };
        match chunk {
            Ok(Some(data)) => {
                let at = stamp();
                text.push_str(&String::from_utf8_lossy(&data));
                while let Some(end) = text.find("\n\n") {
                    let block: String = text.drain(..end + 2).collect();
                    let Some(event) = block
                        .lines()
                        .find_map(|l| l.strip_prefix("event:"))
                        .map(|e| e.trim().to_owned())
                    else {
                        continue; // keep-alive comment
                    };
                    if event == "redirect" {
                        let _ = news.send(StreamNews::Redirect(idx, at));
                        return;
                    }
                    let _ = news.send(StreamNews::Other(event));
                }
            }
            Ok(None) => {
                let _ = news.send(StreamNews::Ended(idx, "stream ended".into()));
                return;
            }
            Err(e) => {
                let _ = news.send(StreamNews::Ended(idx, e.to_string()));
                return;
            }
        }
    }
}

struct Held {
    tickets: Vec<Option<String>>,
    news: mpsc::UnboundedReceiver<StreamNews>,
    stop: watch::Sender<bool>,
}

async fn browsers_and_push(
    args: &Args,
    binary: &Path,
    n: usize,
    run: usize,
    tables: &mut Tables,
    results: &mut Vec<Value>,
) -> anyhow::Result<()> {
    let server = Server::start(args, binary, false).await?;
    // Warm up: the token fetch, the database, the allocator, the runtime's threads.
    let warm: Vec<_> = (0..100)
        .map(|_| {
            let (addr, host) = (server.addr, server.host.clone());
            tokio::spawn(async move { open_browser(addr, &host).await.map(|_| ()) })
        })
        .collect();
    for w in warm {
        w.await?
            .map_err(|e| anyhow::anyhow!("warm-up browser: {e}"))?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss_kib();

    // Scenario 1: open N browsers, `open_concurrency` at a time, and keep their streams.
    let (news_tx, news) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let mut held = Held {
        tickets: vec![None; n],
        news,
        stop,
    };
    let gate = Arc::new(Semaphore::new(args.open_concurrency));
    let opened_at = Instant::now();
    let cpu = CpuMeter::start(&server);
    let mut opening = tokio::task::JoinSet::new();
    for idx in 0..n {
        let permit = gate.clone().acquire_owned().await?;
        let (addr, host) = (server.addr, server.host.clone());
        let (news_tx, stop_rx) = (news_tx.clone(), stop_rx.clone());
        opening.spawn(async move {
            let _permit = permit;
            let opened = tokio::time::timeout(Duration::from_secs(30), open_browser(addr, &host))
                .await
                .unwrap_or_else(|_| Err("timed out after 30 s".into()));
            match opened {
                Ok((conn, ticket)) => {
                    tokio::spawn(hold(idx, conn, stop_rx, news_tx));
                    (idx, Ok(ticket))
                }
                Err(e) => (idx, Err(e)),
            }
        });
    }
    let mut open_errors: HashMap<String, usize> = HashMap::new();
    while let Some(done) = opening.join_next().await {
        match done? {
            (idx, Ok(ticket)) => held.tickets[idx] = Some(ticket),
            (_, Err(e)) => *open_errors.entry(e).or_default() += 1,
        }
    }
    let open_secs = opened_at.elapsed().as_secs_f64();
    let (open_cpu, _) = cpu.stop();
    let waiting = held.tickets.iter().filter(|t| t.is_some()).count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_held = server.rss_kib();

    // Idle: nothing happens for `idle_secs`; streams only get their keep-alive comments.
    let cpu = CpuMeter::start(&server);
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let (idle_cpu, idle_bench_cpu) = cpu.stop();
    let mut idle_ended = 0;
    let mut idle_other = 0;
    while let Ok(news) = held.news.try_recv() {
        match news {
            StreamNews::Ended(idx, e) => {
                idle_ended += 1;
                held.tickets[idx] = None;
                *open_errors
                    .entry(format!("ended while waiting: {e}"))
                    .or_default() += 1;
            }
            StreamNews::Other(..) => idle_other += 1,
            StreamNews::Redirect(..) => {}
        }
    }
    let errors = (n - waiting) + idle_ended;
    let per_browser = (rss_held as f64 - rss_before as f64) / waiting.max(1) as f64;
    tables.waiting.row(vec![
        format!("{run}"),
        format!("{n}"),
        format!("{}", waiting - idle_ended),
        format!("{errors}"),
        f1(open_secs),
        format!("{:.0}", n as f64 / open_secs),
        f1(open_cpu),
        f1(rss_before as f64 / 1024.0),
        f1(rss_held as f64 / 1024.0),
        f1(per_browser),
        f2(idle_cpu),
        f2(idle_bench_cpu),
    ]);
    results.push(json!({
        "scenario": 1, "run": run, "browsers": n, "waiting": waiting - idle_ended,
        "errors": errors, "error_kinds": open_errors, "other_events_while_idle": idle_other,
        "open_secs": open_secs, "open_server_cpu_pct": open_cpu,
        "rss_before_kib": rss_before, "rss_held_kib": rss_held,
        "kib_per_browser": per_browser, "idle_secs": args.idle_secs,
        "idle_server_cpu_pct": idle_cpu, "idle_bench_cpu_pct": idle_bench_cpu,
    }));
    if !open_errors.is_empty() {
        eprintln!("scenario 1 errors: {open_errors:?}");
    }

    if args.scenarios.contains(&2) {
        push_latency(args, &server, n, run, &mut held, tables, results).await?;
    }
    held.stop.send_replace(true);
    drop(held);
    let fetches = server.token_fetches().await?;
    tables.tokens.row(vec![
        format!("browsers {n}, run {run}"),
        format!("{fetches}"),
    ]);
    results.push(json!({ "token_fetches": fetches, "server": format!("browsers {n}, run {run}") }));
    server.stop().await;
    Ok(())
}

/// A signed (and in safe mode encrypted) scan callback as WeChat sends it.
fn callback_request(
    host: &str,
    openid: &str,
    scene: &str,
    ticket: &str,
    safe: Option<&crypto::AesKey>,
) -> Vec<u8> {
    let timestamp = unix_now().to_string();
    let nonce = wxlogin::util::random_hex(8);
    let xml = message::scan_event_xml(ACCOUNT, openid, unix_now(), true, scene, ticket);
    let sig = signature::sign(&[TOKEN, &timestamp, &nonce]);
    let (query, body) = match safe {
        None => (
            format!("signature={sig}&timestamp={timestamp}&nonce={nonce}&openid={openid}"),
            xml,
        ),
        Some(key) => {
            let mut random = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut random);
            let encrypted = crypto::encrypt(key, APPID, &xml, random);
            let msg_sig = signature::sign(&[TOKEN, &timestamp, &nonce, &encrypted]);
            (
                format!(
                    "signature={sig}&timestamp={timestamp}&nonce={nonce}&openid={openid}\
                     &encrypt_type=aes&msg_signature={msg_sig}"
                ),
                format!(
                    "<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
                ),
            )
        }
    };
    format!(
        "POST /wechat/callback?{query} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/4.0\r\n\
         Content-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Keep-alive connections for sending scans, one pool per destination (scenario 2 has one
/// server; scenario 6 sends to both instances, each scan to the one not holding its browser).
/// Used in turn (first out, back at the end), so that none idles long enough for the server
/// to close it as an idle keep-alive (WXLOGIN_HEADER_TIMEOUT_SECONDS).
struct ScanPools {
    /// (address, Host header, its connections, a permit per connection).
    dests: Vec<(
        SocketAddr,
        String,
        Arc<Mutex<std::collections::VecDeque<Conn>>>,
        Arc<Semaphore>,
    )>,
}

impl ScanPools {
    async fn connect(dests: &[(SocketAddr, String)], connections: usize) -> io::Result<ScanPools> {
        let mut pools = Vec::new();
        for (addr, host) in dests {
            let mut pool = std::collections::VecDeque::new();
            for _ in 0..connections.max(1) {
                pool.push_back(Conn::connect(*addr).await?);
            }
            pools.push((
                *addr,
                host.clone(),
                Arc::new(Mutex::new(pool)),
                Arc::new(Semaphore::new(connections.max(1))),
            ));
        }
        Ok(ScanPools { dests: pools })
    }
}

/// What sending the scans did.
struct ScansSent {
    /// When each browser's callback was written (bench nanoseconds; 0: never).
    sent_at: Arc<Vec<AtomicU64>>,
    /// Callback response times.
    callbacks: Summary,
    /// Callbacks that failed or were not answered 200 within 10 s.
    errors: usize,
    /// Callbacks sent over 5 ms after they were due.
    late: usize,
    /// Seconds from the first scan due to the last one answered.
    secs: f64,
}

/// Sends one signed scan callback per target `(browser, ticket, scene, destination)` at
/// `rate` a second, callback i due at i/rate, the openid `{openid_prefix}_{browser}`.
async fn send_scans(
    pools: &ScanPools,
    n: usize,
    rate: u64,
    targets: &[(usize, String, String, usize)],
    openid_prefix: &str,
) -> ScansSent {
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let callback_times = Arc::new(Mutex::new(Latencies::default()));
    let callback_errors = Arc::new(AtomicUsize::new(0));
    let late_sends = Arc::new(AtomicUsize::new(0));

    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    for (i, (idx, ticket, scene, dest)) in targets.iter().cloned().enumerate() {
        let due = started + period * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (addr, host, pool, gate) = pools.dests[dest].clone();
        let sent_at = sent_at.clone();
        let (times, errors, late) = (
            callback_times.clone(),
            callback_errors.clone(),
            late_sends.clone(),
        );
        let openid = format!("{openid_prefix}_{idx}");
        sends.spawn(async move {
            let request = callback_request(&host, &openid, &scene, &ticket, None);
            let _permit = gate.acquire().await.expect("gate open");
            let mut conn = pool
                .lock()
                .unwrap()
                .pop_front()
                .expect("a connection per permit");
            if due.elapsed() > Duration::from_millis(5) {
                late.fetch_add(1, Ordering::Relaxed);
            }
            let t0 = Instant::now();
            sent_at[idx].store(stamp(), Ordering::Release);
            let answer =
                tokio::time::timeout(Duration::from_secs(10), conn.request(&request)).await;
            let ok = matches!(&answer, Ok(Ok((head, _))) if head.status == 200);
            times.lock().unwrap().push(t0.elapsed());
            if ok {
                pool.lock().unwrap().push_back(conn);
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(fresh) = Conn::connect(addr).await {
                    pool.lock().unwrap().push_back(fresh);
                }
            }
        });
        // Reap finished sends as we go, so the set stays small.
        while sends.try_join_next().is_some() {}
    }
    while sends.join_next().await.is_some() {}
    let secs = started.elapsed().as_secs_f64();
    let callbacks = std::mem::take(&mut *callback_times.lock().unwrap()).sorted();
    ScansSent {
        sent_at,
        callbacks,
        errors: callback_errors.load(Ordering::Relaxed),
        late: late_sends.load(Ordering::Relaxed),
        secs,
    }
}

/// The redirects of `expected` scanned browsers, waiting at most 10 s more. Returns the
/// latencies (callback written -> `event: redirect` read), the redirects, why streams were
/// lost, and how many redirects came over 10 s after their callback.
async fn collect_redirects(
    held: &mut Held,
    sent_at: &[AtomicU64],
    expected: usize,
) -> (Latencies, usize, HashMap<String, usize>, usize) {
    let mut latencies = Latencies::default();
    let mut received = 0;
    let mut over_10s = 0;
    let mut lost: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while received + lost.values().sum::<usize>() < expected {
        let news = match tokio::time::timeout_at(deadline, held.news.recv()).await {
            Ok(Some(news)) => news,
            _ => break,
        };
        match news {
            StreamNews::Redirect(idx, at) => {
                let sent = sent_at[idx].load(Ordering::Acquire);
                if sent > 0 {
                    received += 1;
                    let latency = Duration::from_nanos(at.saturating_sub(sent));
                    if latency > Duration::from_secs(10) {
                        over_10s += 1;
                    }
                    latencies.push(latency);
                }
            }
            StreamNews::Ended(_, e) => *lost.entry(e).or_default() += 1,
            StreamNews::Other(e) => *lost.entry(format!("event {e}")).or_default() += 0,
        }
    }
    (latencies, received, lost, over_10s)
}

/// Scenario 2: scan every waiting browser at `scan_rate`, through `scan_connections`
/// keep-alive connections, and time each callback to its browser's `event: redirect`.
async fn push_latency(
    args: &Args,
    server: &Server,
    n: usize,
    run: usize,
    held: &mut Held,
    tables: &mut Tables,
    results: &mut Vec<Value>,
) -> anyhow::Result<()> {
    // The scenes: WeChat knows them from qrcode/create; the bench reads them (read-only).
    let scenes = server.scenes().await?;
    let targets: Vec<(usize, String, String, usize)> = held
        .tickets
        .iter()
        .enumerate()
        .filter_map(|(idx, t)| {
            let ticket = t.as_ref()?;
            Some((idx, ticket.clone(), scenes.get(ticket)?.clone(), 0))
        })
        .collect();

    let pools =
        ScanPools::connect(&[(server.addr, server.host.clone())], args.scan_connections).await?;
    let cpu = CpuMeter::start(server);
    let sent = send_scans(
        &pools,
        n,
        args.scan_rate,
        &targets,
        &format!("o_bench_{run}"),
    )
    .await;
    let send_secs = sent.secs;

    // Collect the redirects (all should be in by now; wait at most 10 s more).
    let (latencies, received, lost, _) =
        collect_redirects(held, &sent.sent_at, targets.len()).await;
    let (push_cpu, push_bench_cpu) = cpu.stop();
    let missing = targets.len() - received;
    let latencies = latencies.sorted();
    let callbacks = sent.callbacks;
    let errors = sent.errors;
    tables.push.row(vec![
        format!("{run}"),
        format!("{n}"),
        format!("{}", targets.len()),
        format!("{:.0}", targets.len() as f64 / send_secs),
        format!("{received}"),
        format!("{}", missing + errors),
        f2(latencies.ms(0.5)),
        f2(latencies.ms(0.99)),
        f2(latencies.max_ms()),
        f2(callbacks.ms(0.5)),
        f2(callbacks.ms(0.99)),
        f1(push_cpu),
        f1(push_bench_cpu),
    ]);
    results.push(json!({
        "scenario": 2, "run": run, "browsers": n, "scans": targets.len(),
        "scan_rate_target": args.scan_rate, "scan_rate": targets.len() as f64 / send_secs,
        "sends_late_over_5ms": sent.late,
        "redirects": received, "missing": missing, "lost": lost, "callback_errors": errors,
        "push_latency": latencies.json(), "callback_response": callbacks.json(),
        "server_cpu_pct": push_cpu, "bench_cpu_pct": push_bench_cpu,
    }));
    Ok(())
}

fn conn_addr(host: &str) -> SocketAddr {
    host.parse().expect("host is ip:port")
}

// ---------------------------------------------------------------------------------------------
// Scenarios 3 and 4: closed-loop throughput.

/// Runs `concurrency` workers on keep-alive connections for `secs`; each calls `make(worker, i)`
/// for the request and `check` on the answer. Returns (requests, errors, latencies, wall secs,
/// server cpu %, bench cpu %).
async fn closed_loop(
    server: &Server,
    concurrency: usize,
    secs: u64,
    make: Arc<dyn Fn(usize, usize) -> Vec<u8> + Send + Sync>,
    check: fn(&http::Head, &[u8]) -> bool,
) -> anyhow::Result<(usize, usize, Summary, f64, f64, f64)> {
    closed_loop_on(&[server], concurrency, secs, make, check).await
}

/// [`closed_loop`] over several servers: worker w talks to `servers[w % servers.len()]`, and
/// the server CPU is theirs together.
async fn closed_loop_on(
    servers: &[&Server],
    concurrency: usize,
    secs: u64,
    make: Arc<dyn Fn(usize, usize) -> Vec<u8> + Send + Sync>,
    check: fn(&http::Head, &[u8]) -> bool,
) -> anyhow::Result<(usize, usize, Summary, f64, f64, f64)> {
    anyhow::ensure!(!servers.is_empty(), "no server to load");
    let stop_at = Instant::now() + Duration::from_secs(secs);
    // A hard bound on the count as well as the time.
    const MAX_PER_WORKER: usize = 1_000_000;
    let pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
    let cpu = CpuMeter::of(&pids);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let make = make.clone();
        let addr = servers[w % servers.len()].addr;
        workers.spawn(async move {
            let mut latencies = Latencies::default();
            let mut errors = 0usize;
            let mut conn = Conn::connect(addr).await.ok();
            for i in 0..MAX_PER_WORKER {
                if Instant::now() >= stop_at {
                    break;
                }
                let request = make(w, i);
                let Some(c) = conn.as_mut() else {
                    errors += 1;
                    conn = Conn::connect(addr).await.ok();
                    continue;
                };
                let t0 = Instant::now();
                let answer =
                    tokio::time::timeout(Duration::from_secs(10), c.request(&request)).await;
                latencies.push(t0.elapsed());
                match answer {
                    Ok(Ok((head, body))) if check(&head, &body) => {}
                    Ok(Ok(_)) => errors += 1,
                    _ => {
                        errors += 1;
                        conn = Conn::connect(addr).await.ok();
                    }
                }
            }
            (latencies, errors)
        });
    }
    gather(workers, started, cpu).await
}

/// Waits for the workers of a load run and adds up their latencies and errors. Returns
/// (requests, errors, latencies, wall secs, server cpu %, bench cpu %).
async fn gather(
    mut workers: tokio::task::JoinSet<(Latencies, usize)>,
    started: Instant,
    cpu: CpuMeter,
) -> anyhow::Result<(usize, usize, Summary, f64, f64, f64)> {
    let mut all = Latencies::default();
    let mut errors = 0;
    while let Some(done) = workers.join_next().await {
        let (l, e) = done?;
        all.0.extend(l.0);
        errors += e;
    }
    let wall = started.elapsed().as_secs_f64();
    let (server_cpu, bench_cpu) = cpu.stop();
    let count = all.0.len();
    Ok((count, errors, all.sorted(), wall, server_cpu, bench_cpu))
}

async fn callbacks(
    args: &Args,
    binary: &Path,
    tables: &mut Tables,
    results: &mut Vec<Value>,
) -> anyhow::Result<()> {
    for safe in [false, true] {
        let server = Server::start(args, binary, safe).await?;
        let key = safe.then(|| crypto::AesKey::parse(AES_KEY).expect("valid key"));
        let mode = if safe { "safe (AES)" } else { "plaintext" };
        for run in 1..=args.runs {
            let host = server.host.clone();
            let key = key.clone();
            // A new person (FromUserName) per callback, so each is a new delivery; the scene is
            // random, so unknown: the answer is "expired", after the full transaction (request
            // and delivery records, follower upsert, scene lookup, reply stored).
            let make: Arc<dyn Fn(usize, usize) -> Vec<u8> + Send + Sync> = Arc::new(move |w, i| {
                let openid = format!("o_tp_{run}_{w}_{i}");
                let scene = wxlogin::util::random_hex(20);
                callback_request(&host, &openid, &scene, "TICKET", key.as_ref())
            });
            let check: fn(&http::Head, &[u8]) -> bool = if safe {
                |h, b| h.status == 200 && b.windows(9).any(|w| w == b"<Encrypt>")
            } else {
                |h, b| h.status == 200 && b.starts_with(b"<xml>")
            };
            let (count, errors, lat, wall, scpu, bcpu) =
                closed_loop(&server, args.concurrency, args.secs, make, check).await?;
            tables.callbacks.row(
                vec![
                    mode.to_owned(),
                    format!("{run}"),
                    format!("{}", args.concurrency),
                    format!("{count}"),
                    format!("{errors}"),
                    format!("{:.0}", count as f64 / wall),
                ]
                .into_iter()
                .chain(latency_and_cpu(&lat, scpu, bcpu))
                .collect(),
            );
            results.push(json!({
                "scenario": 3, "mode": mode, "run": run, "concurrency": args.concurrency,
                "requests": count, "errors": errors, "per_sec": count as f64 / wall,
                "latency": lat.json(), "server_cpu_pct": scpu, "bench_cpu_pct": bcpu,
                "scenes": "unknown (random): answered expired after the full transaction",
            }));
        }
        for run in 1..=args.runs {
            let (sent, errors, lat, wall, scpu, bcpu) =
                open_loop_callbacks(args, &server, key.clone(), run).await?;
            tables.callbacks_at_rate.row(
                vec![
                    mode.to_owned(),
                    format!("{run}"),
                    format!("{}", args.scan_connections),
                    format!("{}", args.callback_rate),
                    format!("{:.0}", sent as f64 / wall),
                    format!("{errors}"),
                ]
                .into_iter()
                .chain(latency_and_cpu(&lat, scpu, bcpu))
                .collect(),
            );
            results.push(json!({
                "scenario": "3b", "mode": mode, "run": run, "connections": args.scan_connections,
                "target_per_sec": args.callback_rate, "sent": sent, "per_sec": sent as f64 / wall,
                "errors": errors, "latency_from_schedule": lat.json(),
                "server_cpu_pct": scpu, "bench_cpu_pct": bcpu,
            }));
        }
        let fetches = server.token_fetches().await?;
        tables
            .tokens
            .row(vec![format!("callbacks, {mode}"), format!("{fetches}")]);
        results.push(json!({ "token_fetches": fetches, "server": format!("callbacks, {mode}") }));
        server.stop().await;
    }
    Ok(())
}

/// Scenario 3b: `callback_rate` callbacks a second for `secs`, callback k due at k/rate,
/// spread over `scan_connections` keep-alive connections (connection w sends k = w, w+c, ...).
/// Each is timed from when it was due, not from when it could be sent. Returns (sent, errors,
/// latencies, wall secs, server cpu %, bench cpu %).
async fn open_loop_callbacks(
    args: &Args,
    server: &Server,
    key: Option<crypto::AesKey>,
    run: usize,
) -> anyhow::Result<(usize, usize, Summary, f64, f64, f64)> {
    let rate = args.callback_rate.max(1);
    let total = (rate * args.secs) as usize;
    let connections = args.scan_connections.max(1);
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let cpu = CpuMeter::start(server);
    let started = Instant::now() + Duration::from_millis(100);
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..connections {
        let (host, key) = (server.host.clone(), key.clone());
        let mut conn = Conn::connect(server.addr).await?;
        workers.spawn(async move {
            let mut latencies = Latencies::default();
            let mut errors = 0usize;
            for k in (w..total).step_by(connections) {
                let due = started + period * k as u32;
                let request = callback_request(
                    &host,
                    &format!("o_rate_{run}_{k}"),
                    &wxlogin::util::random_hex(20),
                    "TICKET",
                    key.as_ref(),
                );
                tokio::time::sleep_until(due.into()).await;
                let answer =
                    tokio::time::timeout(Duration::from_secs(10), conn.request(&request)).await;
                latencies.push(due.elapsed());
                match answer {
                    Ok(Ok((head, _))) if head.status == 200 => {}
                    Ok(Ok(_)) => errors += 1,
                    _ => {
                        errors += 1;
                        match Conn::connect(conn_addr(&host)).await {
                            Ok(fresh) => conn = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            (latencies, errors)
        });
    }
    gather(workers, started, cpu).await
}

async fn login_pages(
    args: &Args,
    binary: &Path,
    tables: &mut Tables,
    results: &mut Vec<Value>,
) -> anyhow::Result<()> {
    let server = Server::start(args, binary, false).await?;
    // Warm-up (token fetch, caches), not measured.
    let host = server.host.clone();
    let make: Arc<dyn Fn(usize, usize) -> Vec<u8> + Send + Sync> =
        Arc::new(move |_, _| get_request(&host, "/login", None, &simulated_client(), "text/html"));
    let check: fn(&http::Head, &[u8]) -> bool =
        |h, b| h.status == 200 && h.header("set-cookie").is_some() && b.len() > 1000;
    closed_loop(&server, args.concurrency, 1, make.clone(), check).await?;
    for run in 1..=args.runs {
        let (count, errors, lat, wall, scpu, bcpu) =
            closed_loop(&server, args.concurrency, args.secs, make.clone(), check).await?;
        tables.pages.row(
            vec![
                format!("{run}"),
                format!("{}", args.concurrency),
                format!("{count}"),
                format!("{errors}"),
                format!("{:.0}", count as f64 / wall),
            ]
            .into_iter()
            .chain(latency_and_cpu(&lat, scpu, bcpu))
            .collect(),
        );
        results.push(json!({
            "scenario": 4, "run": run, "concurrency": args.concurrency, "requests": count,
            "errors": errors, "per_sec": count as f64 / wall, "latency": lat.json(),
            "server_cpu_pct": scpu, "bench_cpu_pct": bcpu,
        }));
    }

    // A first visit: the page (QR inline), then what it links: /style.css and /app.js.
    let mut conn = Conn::connect(server.addr).await?;
    let mut total_wire = 0;
    let mut total_body = 0;
    let mut sizes = Vec::new();
    let mut html = String::new();
    for path in ["/login", "/style.css", "/app.js"] {
        let before = conn.bytes_in;
        let accept = if path == "/login" { "text/html" } else { "*/*" };
        let (head, body) = conn
            .request(&get_request(
                &server.host,
                path,
                None,
                &simulated_client(),
                accept,
            ))
            .await?;
        anyhow::ensure!(head.status == 200, "GET {path}: HTTP {}", head.status);
        let wire = conn.bytes_in - before;
        if path == "/login" {
            html = String::from_utf8_lossy(&body).into_owned();
        }
        total_wire += wire;
        total_body += body.len();
        sizes.push((path, body.len(), wire));
    }
    let qr = between(&html, "<svg", "</svg>").map_or(0, |s| s.len() + "<svg</svg>".len());
    for (path, body, wire) in &sizes {
        let note = if *path == "/login" {
            format!(" (inline QR SVG {qr} B)")
        } else {
            String::new()
        };
        tables.bytes.row(vec![
            format!("{path}{note}"),
            format!("{body}"),
            format!("{wire}"),
        ]);
    }
    tables.bytes.row(vec![
        "first visit, total".into(),
        format!("{total_body} ({:.1} KiB)", total_body as f64 / 1024.0),
        format!("{total_wire} ({:.1} KiB)", total_wire as f64 / 1024.0),
    ]);
    anyhow::ensure!(
        html.contains("/style.css") && html.contains("/app.js"),
        "the page links other resources than /style.css and /app.js"
    );
    results.push(json!({
        "scenario": 4, "first_visit": sizes.iter().map(|(p, b, w)| json!({"path": p, "body": b, "wire": w})).collect::<Vec<_>>(),
        "qr_svg_bytes": qr, "total_body": total_body, "total_wire": total_wire,
    }));
    let fetches = server.token_fetches().await?;
    tables
        .tokens
        .row(vec!["login pages".into(), format!("{fetches}")]);
    results.push(json!({ "token_fetches": fetches, "server": "login pages" }));
    server.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scenario 5: the OpenID Connect token endpoint and userinfo.

const BENCH_REDIRECT: &str = "http://127.0.0.1/cb";
/// Codes seeded per worker and run: more than a worker exchanges in a run.
const CODES_PER_WORKER: usize = 4000;

fn sha256(text: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).to_vec()
}

/// A client registered through `wxlogin client add` (as an operator does), a bound user, and
/// codes and an access token seeded in the database (each exchange spends one code; a seeded
/// code lives an hour, not 60 s, so none dies during the run). Then closed loops on
/// `POST /oidc/token` (code grant, `client_secret_basic`) and `GET /oidc/userinfo`.
async fn oidc_tokens(
    args: &Args,
    binary: &Path,
    tables: &mut Tables,
    results: &mut Vec<Value>,
) -> anyhow::Result<()> {
    use base64::Engine;
    let server = Server::start(args, binary, false).await?;
    let out = Command::new(binary)
        .args([
            "client",
            "add",
            "--name",
            "bench",
            "--redirect-uri",
            BENCH_REDIRECT,
        ])
        .env("WXLOGIN_DATABASE_URL", &server.db_url)
        .current_dir(&server.dir)
        .stdin(Stdio::null())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "client add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let credentials: Value = serde_json::from_slice(&out.stdout)?;
    let (client_id, secret) = (
        credentials["client_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        credentials["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    let mut db = server.db_rw().await?;
    let now = unix_now();
    let user_id: i64 = sqlx::query_scalar(
        "INSERT INTO users (phone, openid, created_at, bound_at) VALUES ('+8613800000001', 'o_bench', ?, ?) RETURNING id",
    )
    .bind(now)
    .bind(now)
    .fetch_one(&mut db)
    .await?;
    let mut tx = sqlx::Connection::begin(&mut db).await?;
    for run in 0..=args.runs {
        for w in 0..args.concurrency {
            for i in 0..CODES_PER_WORKER {
                let code = format!("bench-{run}-{w}-{i}");
                sqlx::query(
                    "INSERT INTO oidc_codes (code_hash, grant_id, client_id, user_id, redirect_uri, scope, \
                     auth_time, expires_at) VALUES (?, ?, ?, ?, ?, 'openid phone', ?, ?)",
                )
                .bind(sha256(&code))
                .bind(&code)
                .bind(&client_id)
                .bind(user_id)
                .bind(BENCH_REDIRECT)
                .bind(now)
                .bind(now + 3600)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    sqlx::query(
        "INSERT INTO oidc_tokens (token_hash, kind, grant_id, client_id, user_id, scope, auth_time, expires_at) \
         VALUES (?, 'access', 'bench', ?, ?, 'openid phone', ?, ?)",
    )
    .bind(sha256("bench-access-token"))
    .bind(&client_id)
    .bind(user_id)
    .bind(now)
    .bind(now + 3600)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    drop(db);

    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"));
    let redirect: String =
        url::form_urlencoded::byte_serialize(BENCH_REDIRECT.as_bytes()).collect();
    for run in 0..=args.runs {
        // Run 0 is the warm-up (the first signing key is made), not measured.
        let secs = if run == 0 { 1 } else { args.secs };
        let (host, basic, redirect) = (server.host.clone(), basic.clone(), redirect.clone());
        let make: Arc<dyn Fn(usize, usize) -> Vec<u8> + Send + Sync> = Arc::new(move |w, i| {
            let body = format!(
                "grant_type=authorization_code&code=bench-{run}-{w}-{i}&redirect_uri={redirect}"
            );
            format!(
                "POST /oidc/token HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {basic}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        });
        let check: fn(&http::Head, &[u8]) -> bool =
            |h, b| h.status == 200 && b.windows(10).any(|w| w == b"\"id_token\"");
        let measured = closed_loop(&server, args.concurrency, secs, make, check).await?;
        if run > 0 {
            oidc_row(
                tables,
                results,
                "token (code grant)",
                run,
                args.concurrency,
                measured,
            );
        }
    }
    let host = server.host.clone();
    let make: Arc<dyn Fn(usize, usize) -> Vec<u8> + Send + Sync> = Arc::new(move |_, _| {
        format!(
            "GET /oidc/userinfo HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer bench-access-token\r\n\r\n"
        )
        .into_bytes()
    });
    let check: fn(&http::Head, &[u8]) -> bool =
        |h, b| h.status == 200 && b.windows(14).any(|w| w == b"\"phone_number\"");
    for run in 1..=args.runs {
        let measured =
            closed_loop(&server, args.concurrency, args.secs, make.clone(), check).await?;
        oidc_row(tables, results, "userinfo", run, args.concurrency, measured);
    }
    server.stop().await;
    Ok(())
}

fn oidc_row(
    tables: &mut Tables,
    results: &mut Vec<Value>,
    endpoint: &str,
    run: usize,
    concurrency: usize,
    (count, errors, lat, wall, scpu, bcpu): (usize, usize, Summary, f64, f64, f64),
) {
    tables.oidc.row(
        vec![
            endpoint.to_owned(),
            format!("{run}"),
            format!("{concurrency}"),
            format!("{count}"),
            format!("{errors}"),
            format!("{:.0}", count as f64 / wall),
        ]
        .into_iter()
        .chain(latency_and_cpu(&lat, scpu, bcpu))
        .collect(),
    );
    results.push(json!({
        "scenario": 5, "endpoint": endpoint, "run": run, "concurrency": concurrency,
        "requests": count, "errors": errors, "per_sec": count as f64 / wall,
        "latency": lat.json(), "server_cpu_pct": scpu, "bench_cpu_pct": bcpu,
    }));
}

// ---------------------------------------------------------------------------------------------
// Scenario 6: two instances on one PostgreSQL database, behind nginx.

/// The instances of scenario 6.
const INSTANCES: usize = 2;
/// nginx's `worker_connections`; with `worker_rlimit_nofile` at most this (or the hard limit).
const NGINX_CONNECTIONS: u64 = 30_000;

/// nginx in front of the instances, from a temp directory of its own (config, logs, pid,
/// temp files), in the foreground in one process (`daemon off; master_process off`).
struct Nginx {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    host: String,
    /// Its soft open-file limit, as `/proc/<pid>/limits` shows it once it runs.
    nofile: u64,
}

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The soft "Max open files" of a process.
fn proc_nofile(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Nginx {
    async fn start(
        binary: &Path,
        dir: &Path,
        upstreams: &[SocketAddr],
        rlimit_nofile: u64,
    ) -> anyhow::Result<Nginx> {
        std::fs::create_dir_all(dir.join("temp"))?;
        let port = free_port()?;
        let d = dir.display();
        let servers: String = upstreams
            .iter()
            .map(|a| format!("        server {a};\n"))
            .collect();
        // X-Forwarded-For: nginx appends the bench's address (127.0.0.1, trusted by the
        // instances) to the simulated client the bench sends, so each browser keeps an address
        // of its own (`simulated_client`); `$remote_addr` alone would make all of them
        // 127.0.0.1, one client capped at WXLOGIN_QR_PER_IP_PER_HOUR new QR codes.
        let conf = format!(
            "daemon off;\n\
             master_process off;\n\
             worker_processes 1;\n\
             worker_rlimit_nofile {rlimit_nofile};\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{\n    worker_connections {NGINX_CONNECTIONS};\n}}\n\
             http {{\n\
             \x20   access_log off;\n\
             \x20   client_body_temp_path {d}/temp/client_body;\n\
             \x20   proxy_temp_path {d}/temp/proxy;\n\
             \x20   fastcgi_temp_path {d}/temp/fastcgi;\n\
             \x20   uwsgi_temp_path {d}/temp/uwsgi;\n\
             \x20   scgi_temp_path {d}/temp/scgi;\n\
             \x20   upstream wxlogin {{\n{servers}    }}\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{port};\n\
             \x20       location / {{\n\
             \x20           proxy_pass http://wxlogin;\n\
             \x20           proxy_http_version 1.1;\n\
             \x20           proxy_set_header Connection \"\";\n\
             \x20           proxy_set_header Host $http_host;\n\
             \x20           proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             \x20           proxy_buffering off;\n\
             \x20           proxy_read_timeout 1h;\n\
             \x20           add_header X-Upstream $upstream_addr always;\n\
             \x20       }}\n\
             \x20   }}\n\
             }}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let log = std::fs::File::create(dir.join("nginx.out"))?;
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", binary.display()))?;
        let pid = child.id();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let mut nginx = Nginx {
            child,
            pid,
            addr,
            host: addr.to_string(),
            nofile: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(addr).await.is_ok() {
                break;
            }
            let logs = || {
                let out = std::fs::read_to_string(dir.join("nginx.out")).unwrap_or_default();
                let err = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                format!("{out}{err}")
            };
            if let Ok(Some(status)) = nginx.child.try_wait() {
                anyhow::bail!("nginx exited at start ({status}):\n{}", logs());
            }
            if Instant::now() > deadline {
                anyhow::bail!("nginx did not listen within 10 s:\n{}", logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        nginx.nofile = proc_nofile(pid).unwrap_or(0);
        Ok(nginx)
    }

    fn rss_kib(&self) -> u64 {
        proc_rss_kib(self.pid)
    }

    /// SIGQUIT (graceful), then SIGTERM, then SIGKILL, 5 s apart at most.
    async fn stop(mut self) {
        for signal in ["-QUIT", "-TERM"] {
            let _ = Command::new("kill")
                .args([signal, &self.pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        eprintln!(
            "nginx {} did not stop on SIGQUIT/SIGTERM; killing it",
            self.pid
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    /// Never left running, even if a scenario fails before `stop`.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a run of scenario 6 has started, stopped at the end whatever happened.
#[derive(Default)]
struct Cluster {
    servers: Vec<Server>,
    nginx: Option<Nginx>,
}

/// The server processes of the PostgreSQL database `url` serving others than the caller.
async fn pg_backends(url: &str) -> Vec<u32> {
    let Ok(mut db) = pg_read_only(url).await else {
        return Vec::new();
    };
    sqlx::query_scalar::<_, i32>(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut db)
    .await
    .unwrap_or_default()
    .into_iter()
    .map(|pid| pid as u32)
    .collect()
}

/// Scenario 6, `--runs` times, each on a fresh database `wxbench_<random>` dropped at the end.
async fn instances(
    args: &Args,
    binary: &Path,
    tables: &mut Tables,
    results: &mut Vec<Value>,
) -> anyhow::Result<()> {
    let admin_url = args
        .postgres
        .clone()
        .ok_or_else(|| anyhow::anyhow!("scenario 6 needs --postgres URL"))?;
    anyhow::ensure!(
        is_postgres(&admin_url),
        "--postgres must be a postgres:// URL"
    );
    anyhow::ensure!(
        args.nginx.exists(),
        "{} not found: install nginx, or pass --nginx PATH",
        args.nginx.display()
    );
    for run in 1..=args.runs {
        let name = format!("wxbench_{}", wxlogin::util::random_hex(6));
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to --postgres: {e}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let _ = admin.close().await;
        let mut url = url::Url::parse(&admin_url)?;
        url.set_path(&name);
        let root = args.dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = root.join(format!(
            "wxlogin-bench-{}-instances-{run}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        eprintln!(
            "scenario 6, run {run}: database {name}, files in {}",
            dir.display()
        );
        let mut cluster = Cluster::default();
        let outcome = instances_run(
            args,
            binary,
            run,
            url.as_str(),
            &dir,
            &mut cluster,
            tables,
            results,
        )
        .await;
        if let Some(nginx) = cluster.nginx.take() {
            nginx.stop().await;
        }
        for server in cluster.servers.drain(..) {
            server.stop().await;
        }
        let dropped = async {
            let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await?;
            admin.close().await
        }
        .await;
        if args.keep {
            eprintln!("kept {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
        outcome?;
        dropped.map_err(|e| anyhow::anyhow!("DROP DATABASE {name}: {e}"))?;
    }
    Ok(())
}

/// Browsers per instance that fit the open-file limits, and why (lines for the output).
fn instances_budget(
    args: &Args,
    bench_limit: u64,
    nginx_limit: u64,
    hard: u64,
) -> (usize, Vec<String>) {
    let want = args.instances_browsers as u64;
    let all = INSTANCES as u64;
    // Besides the browsers: the bench's scan pools and closed-loop connections and its own
    // files; nginx's listening socket, logs and epoll, and the upstream connections of the
    // `GET /login`s being opened; each instance's database pool, callback connections, logs.
    let bench_spare = all * args.scan_connections as u64 + args.concurrency as u64 + 100;
    let nginx_spare = 64 + 2 * args.open_concurrency as u64;
    let instance_spare = 300;
    // Round-robin: each instance holds about its share; allow 10 % more.
    let per_instance = |n: u64| n + n / 10 + instance_spare;
    let bench_need = |n: u64| all * n + bench_spare;
    // Each browser: a client connection and an upstream connection.
    let nginx_need = |n: u64| 2 * all * n + nginx_spare;
    let fits = |n: u64| {
        bench_need(n) <= bench_limit
            && nginx_need(n) <= nginx_limit
            && nginx_need(n) <= NGINX_CONNECTIONS
            && per_instance(n) <= hard
    };
    let mut n = want;
    if !fits(n) {
        let by_bench = bench_limit.saturating_sub(bench_spare) / all;
        let by_nginx = nginx_limit
            .min(NGINX_CONNECTIONS)
            .saturating_sub(nginx_spare)
            / (2 * all);
        let by_instance = hard.saturating_sub(instance_spare) * 10 / 11;
        n = want.min(by_bench).min(by_nginx).min(by_instance);
        while n > 0 && !fits(n) {
            n -= 1;
        }
    }
    let mut lines = vec![format!(
        "open files for {all} x {want} browsers: bench {} of {bench_limit} ({all} x {want} \
         client sockets + {bench_spare} spare); nginx {} of {nginx_limit} (its limit; \
         worker_rlimit_nofile {}, hard limit {hard}: {all} x {want} client + {all} x {want} \
         upstream sockets + {nginx_spare} spare; worker_connections {NGINX_CONNECTIONS}); each \
         instance about {} of {hard}",
        bench_need(want),
        nginx_need(want),
        NGINX_CONNECTIONS.min(hard),
        per_instance(want),
    )];
    if n < want {
        lines.push(format!(
            "{all} x {want} browsers do not fit (nginx needs {} descriptors, has {}; the bench \
             needs {}, has {bench_limit}): running {all} x {n}, the most that fit",
            nginx_need(want),
            nginx_limit.min(NGINX_CONNECTIONS),
            bench_need(want),
        ));
    } else {
        lines.push(format!("{all} x {want} browsers fit"));
    }
    (n as usize, lines)
}

#[allow(clippy::too_many_arguments)]
async fn instances_run(
    args: &Args,
    binary: &Path,
    run: usize,
    db_url: &str,
    dir: &Path,
    cluster: &mut Cluster,
    tables: &mut Tables,
    results: &mut Vec<Value>,
) -> anyhow::Result<()> {
    // One after the other: the first migrates the fresh database.
    for k in 1..=INSTANCES {
        let placement = Placement {
            db_url: db_url.to_owned(),
            dir: dir.join(format!("instance-{k}")),
        };
        cluster
            .servers
            .push(Server::start_on(args, binary, false, Some(placement)).await?);
    }
    let (bench_limit, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((0, 0));
    let upstreams: Vec<SocketAddr> = cluster.servers.iter().map(|s| s.addr).collect();
    let nginx = Nginx::start(
        &args.nginx,
        &dir.join("nginx"),
        &upstreams,
        NGINX_CONNECTIONS.min(hard),
    )
    .await?;
    let (nginx_addr, nginx_host, nginx_limit) = (nginx.addr, nginx.host.clone(), nginx.nofile);
    cluster.nginx = Some(nginx);
    let servers: Vec<&Server> = cluster.servers.iter().collect();
    let nginx = cluster.nginx.as_ref().expect("just started");
    let (per_instance, budget) = instances_budget(args, bench_limit, nginx_limit, hard);
    for line in &budget {
        eprintln!("scenario 6: {line}");
    }
    tables
        .instance_notes
        .extend(budget.iter().map(|l| format!("run {run}: {l}")));
    let n = INSTANCES * per_instance;
    anyhow::ensure!(n > 0, "no browser fits the open-file limits");
    let upstream_names: Vec<String> = upstreams.iter().map(|a| a.to_string()).collect();
    let holder_of = |upstream: Option<&str>| -> Option<usize> {
        let upstream = upstream?;
        upstream_names.iter().position(|u| u == upstream.trim())
    };

    // Warm up through nginx (token fetch, pools, allocators), not measured.
    let warm: Vec<_> = (0..100)
        .map(|_| {
            let host = nginx_host.clone();
            tokio::spawn(async move { open_browser_upstream(nginx_addr, &host).await.map(|_| ()) })
        })
        .collect();
    for w in warm {
        w.await?
            .map_err(|e| anyhow::anyhow!("warm-up browser through nginx: {e}"))?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before: Vec<u64> = servers.iter().map(|s| s.rss_kib()).collect();
    let nginx_before = nginx.rss_kib();

    // 2 x N browsers through nginx, `open_concurrency` at a time.
    let (news_tx, news) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let mut held = Held {
        tickets: vec![None; n],
        news,
        stop,
    };
    let mut holders: Vec<Option<usize>> = vec![None; n];
    let gate = Arc::new(Semaphore::new(args.open_concurrency));
    let opened_at = Instant::now();
    let mut opening = tokio::task::JoinSet::new();
    for idx in 0..n {
        let permit = gate.clone().acquire_owned().await?;
        let host = nginx_host.clone();
        let (news_tx, stop_rx) = (news_tx.clone(), stop_rx.clone());
        opening.spawn(async move {
            let _permit = permit;
            let opened = tokio::time::timeout(
                Duration::from_secs(30),
                open_browser_upstream(nginx_addr, &host),
            )
            .await
            .unwrap_or_else(|_| Err("timed out after 30 s".into()));
            match opened {
                Ok((conn, ticket, upstream)) => {
                    tokio::spawn(hold(idx, conn, stop_rx, news_tx));
                    (idx, Ok((ticket, upstream)))
                }
                Err(e) => (idx, Err(e)),
            }
        });
    }
    drop(news_tx);
    let mut open_errors: HashMap<String, usize> = HashMap::new();
    while let Some(done) = opening.join_next().await {
        match done? {
            (idx, Ok((ticket, upstream))) => {
                holders[idx] = holder_of(upstream.as_deref());
                if holders[idx].is_none() {
                    *open_errors
                        .entry(format!("X-Upstream {upstream:?} names no instance"))
                        .or_default() += 1;
                }
                held.tickets[idx] = Some(ticket);
            }
            (_, Err(e)) => *open_errors.entry(e).or_default() += 1,
        }
    }
    let open_secs = opened_at.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_held: Vec<u64> = servers.iter().map(|s| s.rss_kib()).collect();
    let nginx_held = nginx.rss_kib();
    // Streams that ended while the others were being opened are not waiting any more.
    while let Ok(news) = held.news.try_recv() {
        if let StreamNews::Ended(idx, e) = news {
            held.tickets[idx] = None;
            *open_errors
                .entry(format!("ended while waiting: {e}"))
                .or_default() += 1;
        }
    }
    let on: Vec<usize> = (0..INSTANCES)
        .map(|k| {
            (0..n)
                .filter(|&i| held.tickets[i].is_some() && holders[i] == Some(k))
                .count()
        })
        .collect();
    let waiting: usize = on.iter().sum();
    let errors: usize = open_errors.values().sum();
    let kib_per: Vec<f64> = (0..INSTANCES)
        .map(|k| (rss_held[k] as f64 - rss_before[k] as f64) / on[k].max(1) as f64)
        .collect();
    let nginx_per = (nginx_held as f64 - nginx_before as f64) / waiting.max(1) as f64;
    for k in 0..INSTANCES {
        tables.instances_memory.row(vec![
            format!("{run}"),
            format!("instance {} ({})", k + 1, upstream_names[k]),
            format!("{}", on[k]),
            "–".into(),
            "–".into(),
            f1(rss_before[k] as f64 / 1024.0),
            f1(rss_held[k] as f64 / 1024.0),
            f1(kib_per[k]),
        ]);
    }
    tables.instances_memory.row(vec![
        format!("{run}"),
        "nginx (both)".into(),
        format!("{waiting} of {n}"),
        format!("{errors}"),
        f1(open_secs),
        f1(nginx_before as f64 / 1024.0),
        f1(nginx_held as f64 / 1024.0),
        f1(nginx_per),
    ]);
    if !open_errors.is_empty() {
        eprintln!("scenario 6 errors while opening: {open_errors:?}");
    }

    // Every waiting browser scanned once, the callback sent straight to the other instance.
    let scenes = servers[0].scenes().await?;
    let targets: Vec<(usize, String, String, usize)> = (0..n)
        .filter_map(|idx| {
            let ticket = held.tickets[idx].as_ref()?;
            let holder = holders[idx]?;
            let other = (holder + 1) % INSTANCES;
            Some((idx, ticket.clone(), scenes.get(ticket)?.clone(), other))
        })
        .collect();
    drop(scenes);
    let dests: Vec<(SocketAddr, String)> =
        servers.iter().map(|s| (s.addr, s.host.clone())).collect();
    let pools = ScanPools::connect(&dests, args.scan_connections).await?;
    let pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
    let backends = pg_backends(db_url).await;
    let cpu = CpuMeter::of(&pids);
    let pg_cpu = CpuMeter::of(&backends);
    let nginx_cpu = CpuMeter::of(&[nginx.pid]);
    let sent = send_scans(
        &pools,
        n,
        args.instances_scan_rate,
        &targets,
        &format!("o_inst_{run}"),
    )
    .await;
    let (latencies, received, lost, over_10s) =
        collect_redirects(&mut held, &sent.sent_at, targets.len()).await;
    let (servers_cpu, bench_cpu) = cpu.stop();
    let (pg_pct, _) = pg_cpu.stop();
    let (nginx_pct, _) = nginx_cpu.stop();
    held.stop.send_replace(true);
    drop(held);
    drop(pools);
    let missed = targets.len() - received + over_10s;
    let latencies = latencies.sorted();
    tables.instances_push.row(vec![
        format!("{run}"),
        format!("{INSTANCES} x {per_instance}"),
        format!("{}", targets.len()),
        format!("{:.0}", targets.len() as f64 / sent.secs),
        format!("{received}"),
        format!("{missed}"),
        format!("{}", sent.errors),
        f2(latencies.ms(0.5)),
        f2(latencies.ms(0.99)),
        f2(latencies.max_ms()),
        f2(sent.callbacks.ms(0.99)),
        f1(servers_cpu),
        f1(pg_pct),
        f1(nginx_pct),
        f1(bench_cpu),
    ]);
    let p99 = latencies.ms(0.99);
    let worst_kib = kib_per.iter().copied().fold(f64::MIN, f64::max);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    tables.instance_notes.push(format!(
        "run {run} against the targets: missed 0 -> {missed} ({}); notice p99 <= 20 ms -> {:.2} ms \
         ({}); <= 20 KiB per waiting browser per instance -> {} ({})",
        verdict(missed == 0 && sent.errors == 0),
        p99,
        verdict(p99 <= 20.0),
        kib_per
            .iter()
            .map(|k| format!("{k:.1}"))
            .collect::<Vec<_>>()
            .join(" / "),
        verdict(worst_kib <= 20.0),
    ));
    results.push(json!({
        "scenario": 6, "run": run, "instances": INSTANCES,
        "browsers_per_instance_wanted": args.instances_browsers,
        "browsers_per_instance": per_instance, "open_file_budget": budget,
        "browsers": n, "waiting": waiting, "waiting_per_instance": on,
        "open_errors": errors, "error_kinds": open_errors, "open_secs": open_secs,
        "rss_before_kib": rss_before, "rss_held_kib": rss_held,
        "kib_per_browser_per_instance": kib_per,
        "nginx_rss_before_kib": nginx_before, "nginx_rss_held_kib": nginx_held,
        "nginx_kib_per_browser": nginx_per,
        "scans": targets.len(), "scan_rate_target": args.instances_scan_rate,
        "scan_rate": targets.len() as f64 / sent.secs, "sends_late_over_5ms": sent.late,
        "redirects": received, "missed": missed, "redirects_over_10s": over_10s,
        "lost": lost, "callback_errors": sent.errors,
        "push_latency": latencies.json(), "callback_response": sent.callbacks.json(),
        "instances_cpu_pct": servers_cpu, "postgres_cpu_pct": pg_pct,
        "nginx_cpu_pct": nginx_pct, "bench_cpu_pct": bench_cpu,
    }));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Callbacks per second on PostgreSQL: scenario 3's closed loop (plaintext) on one instance,
    // then spread over both (worker w on instance w % 2).
    for count in 1..=INSTANCES {
        let on = &servers[..count];
        let hosts: Vec<String> = on.iter().map(|s| s.host.clone()).collect();
        let make: Arc<dyn Fn(usize, usize) -> Vec<u8> + Send + Sync> = Arc::new(move |w, i| {
            let openid = format!("o_pg_{run}_{count}_{w}_{i}");
            let scene = wxlogin::util::random_hex(20);
            callback_request(&hosts[w % hosts.len()], &openid, &scene, "TICKET", None)
        });
        let check: fn(&http::Head, &[u8]) -> bool =
            |h, b| h.status == 200 && b.starts_with(b"<xml>");
        let backends = pg_backends(db_url).await;
        let pg_cpu = CpuMeter::of(&backends);
        let (requests, errors, lat, wall, scpu, bcpu) =
            closed_loop_on(on, args.concurrency, args.secs, make, check).await?;
        let (pg_pct, _) = pg_cpu.stop();
        tables.instances_callbacks.row(vec![
            format!("{count}"),
            format!("{run}"),
            format!("{}", args.concurrency),
            format!("{requests}"),
            format!("{errors}"),
            format!("{:.0}", requests as f64 / wall),
            f2(lat.ms(0.5)),
            f2(lat.ms(0.99)),
            f2(lat.max_ms()),
            f1(scpu),
            f1(pg_pct),
            f1(bcpu),
        ]);
        results.push(json!({
            "scenario": "6b", "instances": count, "run": run, "mode": "plaintext",
            "concurrency": args.concurrency, "requests": requests, "errors": errors,
            "per_sec": requests as f64 / wall, "latency": lat.json(),
            "instances_cpu_pct": scpu, "postgres_cpu_pct": pg_pct, "bench_cpu_pct": bcpu,
            "scenes": "unknown (random): answered expired after the full transaction",
        }));
    }
    let fetches = servers[0].token_fetches().await?;
    let label = format!("{INSTANCES} instances on PostgreSQL, run {run}");
    tables.tokens.row(vec![label.clone(), format!("{fetches}")]);
    results.push(json!({ "token_fetches": fetches, "server": label }));
    Ok(())
}

struct Tables {
    oidc: Table,
    waiting: Table,
    push: Table,
    callbacks: Table,
    callbacks_at_rate: Table,
    pages: Table,
    bytes: Table,
    tokens: Table,
    instances_memory: Table,
    instances_push: Table,
    instances_callbacks: Table,
    /// Scenario 6's open-file budget and its figures against the issue's targets.
    instance_notes: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    base();
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    let need = args.browsers.iter().max().copied().unwrap_or(0) as u64 + 200;
    if args.scenarios.iter().any(|s| *s <= 2) && limit < need {
        eprintln!("warning: open-file limit is {limit}, {need} wanted; expect connect errors");
    }
    let binary = match &args.server {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("wxlogin"))
            .ok_or_else(|| anyhow::anyhow!("no directory for the server binary"))?,
    };
    anyhow::ensure!(
        binary.exists(),
        "{} not found: build it with `cargo build --release`, or pass --server",
        binary.display()
    );
    let mut tables = Tables {
        waiting: Table::new(
            "1. Waiting browsers (GET /login, then GET /login/events held open)",
            &[
                "run",
                "browsers",
                "waiting",
                "errors",
                "open s",
                "opened/s",
                "open CPU %",
                "RSS before MiB",
                "RSS held MiB",
                "KiB/browser",
                "idle CPU %",
                "bench idle CPU %",
            ],
        ),
        push: Table::new(
            format!(
                "2. Push latency (signed scan callbacks at {}/s while the browsers wait; callback sent -> `event: redirect` read)",
                args.scan_rate
            ),
            &[
                "run",
                "browsers",
                "scans",
                "scans/s",
                "redirects",
                "errors",
                "p50 ms",
                "p99 ms",
                "max ms",
                "callback p50 ms",
                "callback p99 ms",
                "server CPU %",
                "bench CPU %",
            ],
        ),
        callbacks: Table::timed(
            "3. Callback throughput (new FromUserName each, unknown scene -> \"expired\" reply after the full transaction)",
            &["mode", "run", "in flight", "requests", "errors", "per s"],
        ),
        callbacks_at_rate: Table::timed(
            "3b. Callbacks on a fixed schedule (open loop, timed from each one's scheduled moment)",
            &[
                "mode",
                "run",
                "connections",
                "target per s",
                "sent per s",
                "errors",
            ],
        ),
        pages: Table::timed(
            "4. Login page (GET /login with no cookie: new session, new scene, new QR)",
            &["run", "in flight", "pages", "errors", "per s"],
        ),
        bytes: Table::new(
            "4b. First visit (bytes)",
            &["resource", "body", "on the wire"],
        ),
        oidc: Table::timed(
            "5. OpenID Connect: code -> tokens (RS256 id_token) and userinfo",
            &[
                "endpoint",
                "run",
                "in flight",
                "requests",
                "errors",
                "per s",
            ],
        ),
        tokens: Table::new(
            "Access-token fetches per server (rows in sandbox_tokens)",
            &["server", "fetches"],
        ),
        instances_memory: Table::new(
            "6. Two instances on one PostgreSQL database behind nginx: waiting browsers \
             (GET /login and GET /login/events through nginx, round-robin; X-Upstream names the \
             instance holding each stream)",
            &[
                "run",
                "process",
                "browsers held",
                "open errors",
                "open s",
                "RSS before MiB",
                "RSS held MiB",
                "KiB/browser",
            ],
        ),
        instances_push: Table::new(
            format!(
                "6a. Push across instances (a scan callback per browser at {}/s, sent straight to \
                 the instance NOT holding its stream; callback sent -> `event: redirect` read \
                 through nginx; missed: no redirect within 10 s)",
                args.instances_scan_rate
            ),
            &[
                "run",
                "browsers",
                "scans",
                "scans/s",
                "redirects",
                "missed",
                "callback errors",
                "p50 ms",
                "p99 ms",
                "max ms",
                "callback p99 ms",
                "instances CPU %",
                "PostgreSQL CPU %",
                "nginx CPU %",
                "bench CPU %",
            ],
        ),
        instances_callbacks: Table::new(
            "6b. Callbacks per second on PostgreSQL (scenario 3's closed loop, plaintext; two \
             instances: half the connections each)",
            &[
                "instances",
                "run",
                "in flight",
                "requests",
                "errors",
                "per s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "instances CPU %",
                "PostgreSQL CPU %",
                "bench CPU %",
            ],
        ),
        instance_notes: Vec::new(),
    };
    let mut results = Vec::new();
    println!(
        "wxlogin-bench: server {}, {} cores, open-file limit {limit}",
        binary.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if args.scenarios.iter().any(|s| *s == 1 || *s == 2) {
        for &n in &args.browsers {
            for run in 1..=args.runs {
                eprintln!("scenario 1+2: {n} browsers, run {run}");
                browsers_and_push(&args, &binary, n, run, &mut tables, &mut results).await?;
            }
        }
        tables.waiting.print();
        if args.scenarios.contains(&2) {
            tables.push.print();
        }
    }
    if args.scenarios.contains(&3) {
        eprintln!("scenario 3: callbacks");
        callbacks(&args, &binary, &mut tables, &mut results).await?;
        tables.callbacks.print();
        tables.callbacks_at_rate.print();
    }
    if args.scenarios.contains(&4) {
        eprintln!("scenario 4: login pages");
        login_pages(&args, &binary, &mut tables, &mut results).await?;
        tables.pages.print();
        tables.bytes.print();
    }
    if args.scenarios.contains(&5) {
        eprintln!("scenario 5: OpenID Connect");
        oidc_tokens(&args, &binary, &mut tables, &mut results).await?;
        tables.oidc.print();
    }
    if args.scenarios.contains(&6) {
        eprintln!("scenario 6: two instances on PostgreSQL behind nginx");
        instances(&args, &binary, &mut tables, &mut results).await?;
        tables.instances_memory.print();
        tables.instances_push.print();
        tables.instances_callbacks.print();
        println!();
        for note in &tables.instance_notes {
            println!("{note}");
        }
    }
    tables.tokens.print();
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&Value::Array(results))?)?;
        println!("\nJSON written to {}", path.display());
    }
    Ok(())
}
