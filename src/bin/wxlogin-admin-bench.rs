//! `wxlogin-admin-bench`: how fast the admin users table is with many users (issue 5).
//!
//! It builds wxlogin in this process on a throw-away SQLite database (sandbox mode, a free port
//! on 127.0.0.1), seeds it with batched INSERTs in one transaction (100,000 users and 100,000
//! login events by default), logs an administrator in through the sandbox like a browser
//! would, then times requests over HTTP, one after another, and prints p50/p99 per query.
//!
//! ```sh
//! cargo run --release --bin wxlogin-admin-bench
//! cargo run --release --bin wxlogin-admin-bench -- --users 20000 --requests 50
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use rand::{Rng, SeedableRng, rngs::StdRng};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use wxlogin::{Application, config::Settings, util::now};

/// Times the admin users table on a large database.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Users to seed.
    #[arg(long, default_value_t = 100_000)]
    users: u32,
    /// Login events to seed.
    #[arg(long, default_value_t = 100_000)]
    events: u32,
    /// Timed requests per query (after 5 untimed ones).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Keep the seeded database in this directory (it must not exist yet) to look at it
    /// afterwards, instead of a temporary one.
    #[arg(long)]
    keep: Option<std::path::PathBuf>,
}

/// Rows per INSERT statement.
const BATCH: u32 = 500;
const ADMIN_OPENID: &str = "bench-admin";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.keep {
        if dir.exists() {
            bail!("{} exists already", dir.display());
        }
        std::fs::create_dir_all(dir)?;
        return run(&args, dir).await;
    }
    let dir = std::env::temp_dir().join(format!("wxlogin-admin-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(args: &Args, dir: &std::path::Path) -> anyhow::Result<()> {
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let app = Application::build(Settings::sandbox(url.clone())).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    // A connection of the bench's own, to seed 100,000 users far faster than HTTP could.
    let db = SqlitePool::connect(&url).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let started = Instant::now();
    seed(&db, args.users, args.events).await?;
    println!(
        "seeded {} users and {} login events in {:.1} s",
        args.users,
        args.events,
        started.elapsed().as_secs_f64()
    );

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()?;
    let cookie = log_in(&client, &base).await?;

    // Cursors into the middle of each order, and a search that finds a handful of people.
    let middle_bound: (i64, i64) = sqlx::query_as(
        "SELECT bound_at, id FROM users WHERE bound_at IS NOT NULL \
         ORDER BY bound_at DESC, id DESC LIMIT 1 OFFSET ?",
    )
    .bind(i64::from(args.users / 2))
    .fetch_one(&db)
    .await?;
    let middle_login: (i64, i64) = sqlx::query_as(
        "SELECT last_login_at, id FROM users WHERE last_login_at IS NOT NULL \
         ORDER BY last_login_at DESC, id DESC LIMIT 1 OFFSET ?",
    )
    .bind(i64::from(args.users / 2))
    .fetch_one(&db)
    .await?;
    let some_phone: String = sqlx::query_scalar("SELECT phone FROM users WHERE id = ?")
        .bind(i64::from(args.users / 3))
        .fetch_one(&db)
        .await?;
    let last_four = &some_phone[some_phone.len() - 4..];
    let matches: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE phone LIKE ?")
        .bind(format!("%{last_four}%"))
        .fetch_one(&db)
        .await?;
    let some_user = i64::from(args.users / 2);

    let queries: Vec<(String, String)> = vec![
        ("first page (by bound at)".into(), "/admin/users".into()),
        (
            "first page (by last login)".into(),
            "/admin/users?sort=last_login".into(),
        ),
        (
            "middle page (by bound at, cursor)".into(),
            format!("/admin/users?after={}:{}", middle_bound.0, middle_bound.1),
        ),
        (
            "middle page (by last login, cursor)".into(),
            format!(
                "/admin/users?sort=last_login&after={}:{}",
                middle_login.0, middle_login.1
            ),
        ),
        (
            format!("search last four digits ({matches} matches)"),
            format!("/admin/users?q={last_four}"),
        ),
        (
            "search openid part (`abc`)".into(),
            "/admin/users?q=abc".into(),
        ),
        (
            "filter disabled=yes".into(),
            "/admin/users?disabled=yes".into(),
        ),
        (
            "filter following=no&admin=no".into(),
            "/admin/users?following=no&admin=no".into(),
        ),
        ("filter admin=yes".into(), "/admin/users?admin=yes".into()),
        (
            "filter disabled=yes, by last login".into(),
            "/admin/users?disabled=yes&sort=last_login".into(),
        ),
        ("dashboard".into(), "/admin".into()),
        ("user detail".into(), format!("/admin/users/{some_user}")),
    ];

    println!(
        "\n{} users, {} requests per query, one at a time over HTTP (127.0.0.1)\n",
        args.users, args.requests
    );
    println!("| query | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    for (name, path) in &queries {
        let mut times = Vec::with_capacity(args.requests);
        for i in 0..args.requests + 5 {
            let t = Instant::now();
            let response = client
                .get(format!("{base}{path}"))
                .header("cookie", &cookie)
                .send()
                .await?;
            let status = response.status();
            let body = response.bytes().await?;
            let elapsed = t.elapsed();
            if status != 200 {
                bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
            }
            if i >= 5 {
                times.push(elapsed);
            }
        }
        times.sort();
        let pick = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
        println!(
            "| {name} | {} | {} | {} |",
            ms(pick(50)),
            ms(pick(99)),
            ms(times[times.len() - 1])
        );
    }

    // The export streams every row; time it once, and check it holds them all.
    let t = Instant::now();
    let csv = client
        .get(format!("{base}/admin/users.csv"))
        .header("cookie", &cookie)
        .send()
        .await?
        .bytes()
        .await?;
    let rows = csv.iter().filter(|b| **b == b'\n').count() - 1;
    println!(
        "| CSV export of all {rows} users ({:.1} MB) | {} | | |",
        csv.len() as f64 / 1e6,
        ms(t.elapsed())
    );

    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Logs the bench administrator in as a browser would: login page, sandbox scan, redeem.
/// Returns the session cookie.
async fn log_in(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let page = client.get(format!("{base}/login")).send().await?;
    let cookie = session_cookie(&page).context("the login page sets a session cookie")?;
    let html = page.text().await?;
    let ticket = html
        .split("/sandbox/scan/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("the login page links the sandbox phone")?
        .to_owned();
    let scan = client
        .post(format!("{base}/sandbox/api/scan"))
        .json(&serde_json::json!({ "ticket": ticket, "openid": ADMIN_OPENID }))
        .send()
        .await?;
    if !scan.status().is_success() {
        bail!("sandbox scan: {}", scan.status());
    }
    let done = client
        .get(format!("{base}/login/complete"))
        .header("cookie", &cookie)
        .send()
        .await?;
    // Logging in gives the session a new id.
    let cookie = session_cookie(&done).context("logging in renews the session cookie")?;
    let check = client
        .get(format!("{base}/admin"))
        .header("cookie", &cookie)
        .send()
        .await?;
    if check.status() != 200 {
        bail!("the bench admin is not let in: {}", check.status());
    }
    Ok(cookie)
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("wxlogin="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// Seeds `users` users (plus the bench admin) and `events` login events in one transaction.
async fn seed(db: &SqlitePool, users: u32, events: u32) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(5);
    let t_now = now();
    let year = 365 * 86_400;
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO users (phone, openid, unionid, is_admin, created_at, bound_at) \
         VALUES ('+8619900000000', ?, NULL, 1, ?, ?)",
    )
    .bind(ADMIN_OPENID)
    .bind(t_now)
    .bind(t_now)
    .execute(&mut *tx)
    .await?;
    let mut start = 0;
    while start < users {
        let end = (start + BATCH).min(users);
        let rows: Vec<_> = (start..end)
            .map(|i| {
                // Multiplying by a number prime to 10^9 permutes the 9 digits: all distinct.
                let phone = format!("+8613{:09}", (u64::from(i) * 7_919_993) % 1_000_000_000);
                let openid = format!("o{:027x}", rng.r#gen::<u128>() >> 20);
                let unionid = rng
                    .gen_bool(0.7)
                    .then(|| format!("u{:027x}", rng.r#gen::<u128>() >> 20));
                let bound_at = (!rng.gen_bool(0.03)).then(|| t_now - rng.gen_range(0..year));
                let last_login = bound_at
                    .filter(|_| rng.gen_bool(0.85))
                    .map(|b| rng.gen_range(b..=t_now));
                let created = bound_at.unwrap_or(t_now - year);
                (
                    phone,
                    bound_at.map(|_| openid),
                    unionid,
                    rng.gen_bool(0.001),
                    rng.gen_bool(0.02),
                    created,
                    bound_at,
                    last_login,
                )
            })
            .collect();
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO users (phone, openid, unionid, is_admin, disabled, created_at, bound_at, last_login_at) ",
        );
        insert.push_values(&rows, |mut b, row| {
            b.push_bind(&row.0)
                .push_bind(&row.1)
                .push_bind(&row.2)
                .push_bind(row.3)
                .push_bind(row.4)
                .push_bind(row.5)
                .push_bind(row.6)
                .push_bind(row.7);
        });
        insert.build().execute(&mut *tx).await?;
        // Most bound people follow the account; some have unfollowed since.
        let followers: Vec<(&String, bool)> = rows
            .iter()
            .filter_map(|r| r.1.as_ref())
            .filter_map(|openid| match rng.gen_range(0..100) {
                0..85 => Some((openid, true)),
                85..90 => Some((openid, false)),
                _ => None,
            })
            .collect();
        if !followers.is_empty() {
            let mut insert: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO followers (openid, following, updated_at) ");
            insert.push_values(&followers, |mut b, (openid, following)| {
                b.push_bind(*openid).push_bind(*following).push_bind(t_now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        start = end;
    }
    let mut start = 0;
    while start < events {
        let end = (start + BATCH).min(events);
        let rows: Vec<_> = (start..end)
            .map(|_| {
                let user = rng.gen_range(2..i64::from(users) + 2);
                let outcome = match rng.gen_range(0..100) {
                    0..90 => "logged_in",
                    90..97 => "needs_bind",
                    _ => "disabled",
                };
                (
                    user,
                    format!("o{user}"),
                    outcome,
                    t_now - rng.gen_range(0..30 * 86_400),
                )
            })
            .collect();
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO login_events (user_id, openid, outcome, client_ip, user_agent, at) ",
        );
        insert.push_values(&rows, |mut b, row| {
            b.push_bind(row.0)
                .push_bind(&row.1)
                .push_bind(row.2)
                .push_bind("10.1.2.3")
                .push_bind(
                    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0",
                )
                .push_bind(row.3);
        });
        insert.build().execute(&mut *tx).await?;
        start = end;
    }
    tx.commit().await?;
    Ok(())
}
