//! The SQLite backend: one database file in WAL mode. Requests read and write through an sqlx
//! pool; WeChat callbacks, new login scenes and the sandbox's tickets write through
//! [`Writer`], one connection on a thread of its own with group commit; the admin area's
//! reports read from a memory-mapped read-only pool; a low-priority thread checkpoints the
//! WAL. Every SQL string of wxlogin is in this folder.

mod admin;
mod binding;
mod callbacks;
mod oidc;
mod sandbox;
mod scenes;
mod users;
pub mod writer;

pub use writer::{WriteError, Writer};

use std::{path::Path, str::FromStr, sync::Arc, time::Duration};

use anyhow::Context;
use rand::RngCore;
use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use super::{Keys, Ops, Sessions, Store, StoreError, StoreResult};

impl From<WriteError> for StoreError {
    fn from(e: WriteError) -> Self {
        StoreError(e.into())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.into())
    }
}

/// The SQLite backend of every store trait.
pub struct Sqlite {
    /// Requests' reads and writes.
    db: SqlitePool,
    /// The admin area's reports (memory-mapped, read-only).
    reports: SqlitePool,
    /// Callbacks, new scenes, sandbox tickets.
    writer: Writer,
    /// Ends the checkpoint thread when the backend goes.
    _checkpointer: Checkpointer,
    /// New QR codes being made at WeChat, per client key: counted with the stored ones.
    qr_making: Arc<scenes::Making>,
}

/// Opens (creating and migrating) the database at `url`, starts the writer and checkpoint
/// threads and the hourly deletion of expired sessions, and returns the store on it.
pub async fn open(url: &str) -> anyhow::Result<Store> {
    let file = file_of(url).context("WXLOGIN_DATABASE_URL")?;
    let db = connect(url)
        .await
        .context("cannot open the database (WXLOGIN_DATABASE_URL)")?;
    let writer = Writer::open(&file).context("cannot open the database for writing")?;
    let reports = connect_reports(url).await?;
    let checkpointer =
        checkpoint_continuously(&file).context("cannot start the WAL checkpointer")?;
    let sessions = tower_sessions_sqlx_store::SqliteStore::new(db.clone());
    sessions.migrate().await?;
    tokio::spawn({
        use tower_sessions::ExpiredDeletion;
        sessions
            .clone()
            .continuously_delete_expired(Duration::from_secs(3600))
    });
    let backend = Arc::new(Sqlite {
        db,
        reports,
        writer,
        _checkpointer: checkpointer,
        qr_making: Default::default(),
    });
    Ok(Store {
        scenes: backend.clone(),
        callbacks: backend.clone(),
        binding: backend.clone(),
        users: backend.clone(),
        admin: backend.clone(),
        sandbox: backend.clone(),
        keys: backend.clone(),
        ops: backend.clone(),
        oidc: backend.clone(),
        tokens: backend,
        sessions: Sessions(Arc::new(sessions)),
        remote: Default::default(),
    })
}

/// WAL pages after which a committing connection checkpoints by itself. It is a backstop:
/// [`checkpoint_continuously`] normally gets there first, off the request path.
const AUTOCHECKPOINT_PAGES: &str = "10000";

/// Opens (creating if needed) and migrates the database at `url`.
pub async fn connect(url: &str) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        // WAL lets page loads read while a callback writes; NORMAL sync is durable across
        // process crashes in WAL mode (only a power cut can lose the last commits).
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
        // No memory map here (see `connect_reports`): in WAL mode a connection drops its whole
        // map whenever another one has committed since its last read, and maps and faults the
        // pages in again. Under /login load that was 13% of the CPU (munmap with TLB
        // shootdowns); reading the few pages a request needs with pread costs far less.
        .pragma("mmap_size", "0")
        .pragma("wal_autocheckpoint", AUTOCHECKPOINT_PAGES);
    if let Some(dir) = options.get_filename().parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        // sqlx pings a connection before lending it out (and again when it comes back): each
        // ping is a round trip to the connection's thread. An SQLite connection lives in this
        // process and can't be cut off the way a network one can, so the first ping tests
        // nothing; skipping it took a third of the thread hand-offs off every query.
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                let mut handle = conn.lock_handle().await?;
                // SAFETY: a live connection, locked for us; the handler is a plain function
                // that keeps no state. It replaces the one `busy_timeout` installed.
                unsafe {
                    libsqlite3_sys::sqlite3_busy_handler(
                        handle.as_raw_handle().as_ptr(),
                        Some(busy_handler),
                        std::ptr::null_mut(),
                    );
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    Ok(pool)
}

/// A small read-only pool for the admin area's reports (dashboard counts, CSV export), which
/// read much of the users table. These read through a memory map of the file, i.e. the OS
/// page cache, instead of each connection's 2 MB page cache (which a commit elsewhere
/// empties): the dashboard over 100,000 users takes ~25 ms this way and ~140 ms without.
/// Reports are rare, so their connections seldom pay for re-mapping after a change.
pub async fn connect_reports(url: &str) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(url)?
        .read_only(true)
        .busy_timeout(Duration::from_secs(5))
        .pragma("mmap_size", "268435456");
    Ok(SqlitePoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .connect_with(options)
        .await?)
}

/// Waits for another connection's write lock. SQLite's own handler (`busy_timeout`) sleeps
/// 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms between tries, so under concurrent writes
/// (callbacks, new login pages, session saves) waiters overslept a lock held for ~0.1 ms:
/// wxlogin-bench measured callbacks at p99 84 ms and the server mostly asleep.
extern "C" fn busy_handler(_: *mut std::ffi::c_void, tries: std::ffi::c_int) -> std::ffi::c_int {
    keep_waiting(tries).into()
}

/// The busy policy of every connection: short naps, 100 µs for the first 10 ms, then 1 ms,
/// giving up after about 5 s as `busy_timeout` would.
fn keep_waiting(tries: i32) -> bool {
    const SHORT: i32 = 100;
    if tries >= SHORT + 5_000 {
        return false;
    }
    let nap = if tries < SHORT { 100 } else { 1_000 };
    std::thread::sleep(Duration::from_micros(nap));
    true
}

/// The database file a `sqlite:` URL names. The callback writer opens it a second time, so an
/// in-memory database (which would be a different one per connection) is refused.
pub fn file_of(url: &str) -> anyhow::Result<std::path::PathBuf> {
    let options = SqliteConnectOptions::from_str(url)?;
    let path = options.get_filename();
    // sqlx names an in-memory database `file:sqlx-in-memory-N`.
    let in_memory = url.contains(":memory:")
        || url.contains("mode=memory")
        || path.to_string_lossy().starts_with("file:");
    if in_memory {
        anyhow::bail!("wxlogin needs a database file, not an in-memory database");
    }
    Ok(path.to_path_buf())
}

/// Starts a thread that copies the WAL back into the database file every 100 ms, on a
/// connection of its own and at the lowest CPU priority, so that no request or callback pays
/// for it. perf on `/login` under load: checkpoints run inside commits were 11% of the CPU, and
/// on the callback writer one could hold up a batch for ~30 ms; run at normal priority on the
/// two cores, the copying competed with the requests for CPU. PASSIVE never waits for (or
/// blocks) readers and writers. If the thread falls behind, the 10,000-page autocheckpoint
/// takes over.
/// The thread stops once the returned handle is dropped.
pub fn checkpoint_continuously(path: &std::path::Path) -> anyhow::Result<Checkpointer> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_handler(Some(keep_waiting))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("wxlogin-checkpoint".into())
        .spawn(move || {
            // On Linux, 0 is this thread; nice 19 lets it run only on CPU nobody else wants.
            #[cfg(target_os = "linux")]
            // SAFETY: a plain system call on the calling thread.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 19);
            }
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                if let Err(e) = done {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
        })?;
    Ok(Checkpointer { stop })
}

/// Keeps the checkpoint thread going; dropping it ends the thread.
pub struct Checkpointer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl Keys for Sqlite {
    async fn app_key(&self, name: &str) -> StoreResult<[u8; 32]> {
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        sqlx::query(
            "INSERT INTO app_keys (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(&fresh[..])
        .execute(&self.db)
        .await?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM app_keys WHERE name = ?")
            .bind(name)
            .fetch_one(&self.db)
            .await?;
        stored
            .try_into()
            .map_err(|_| StoreError(anyhow::anyhow!("app key {name} is not 32 bytes")))
    }
}

// WeChat's access token is kept in the database, so a restart doesn't spend one of the day's
// fetches.
#[async_trait::async_trait]
impl crate::wechat::client::TokenStore for Sqlite {
    async fn load(&self, appid: &str) -> Option<crate::wechat::client::StoredToken> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT token, expires_at FROM wechat_tokens WHERE appid = ?")
                .bind(appid)
                .fetch_optional(&self.db)
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "stored access token unreadable"))
                .ok()
                .flatten();
        row.map(|(token, expires_at)| crate::wechat::client::StoredToken {
            token: token.into(),
            expires_at,
        })
    }

    async fn save(&self, appid: &str, token: &crate::wechat::client::StoredToken) {
        use secrecy::ExposeSecret;
        let saved = sqlx::query(
            "INSERT INTO wechat_tokens (appid, token, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (appid) DO UPDATE SET token = ?2, expires_at = ?3",
        )
        .bind(appid)
        .bind(token.token.expose_secret())
        .bind(token.expires_at)
        .execute(&self.db)
        .await;
        if let Err(e) = saved {
            // Not fatal: the token still works from memory; the next restart fetches anew.
            tracing::warn!(error = %e, "access token not stored");
        }
    }
}

/// How long each kind of row is kept, in seconds, and why.
const KEEP: &[(&str, &str, i64)] = &[
    // Signed requests only matter inside the 5-minute timestamp window.
    ("callback_requests", "received_at", 3600),
    // WeChat retries a delivery within about 15 s; a day is plenty.
    ("callback_deliveries", "received_at", 86_400),
    // The SMS limits look back 24 hours at most.
    ("sms_codes", "created_at", 2 * 86_400),
    // A scene is dead minutes after its QR code; login history lives in login_events.
    ("login_scenes", "expires_at", 7 * 86_400),
    // A web authorization's state lives minutes; the per-client count looks back an hour.
    ("wechat_oauth_states", "created_at", 2 * 3600),
    ("sandbox_oauth_codes", "expires_at", 86_400),
    // The sandbox's tickets and tokens die with their expiry.
    ("sandbox_tickets", "expires_at", 86_400),
    ("sandbox_tokens", "expires_at", 86_400),
    ("sandbox_sms", "sent_at", 86_400),
    // A used code is kept a day after its 60 s life, so a late replay still revokes its grant.
    ("oidc_codes", "expires_at", 86_400),
    // Tokens die with their expiry (a used refresh token is kept till then, for reuse checks).
    ("oidc_tokens", "expires_at", 86_400),
    // A retired signing key is published for an hour and a bit; a day later it goes.
    ("oidc_keys", "retired_at", 86_400),
];

#[async_trait::async_trait]
impl Ops for Sqlite {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.db)
            .await?;
        Ok(())
    }

    async fn prune(&self, at: i64) -> StoreResult<u64> {
        let mut deleted = 0;
        for (table, column, keep) in KEEP {
            // Table and column names come from the constant above, never from input.
            deleted += sqlx::query(&format!("DELETE FROM {table} WHERE {column} < ?"))
                .bind(at - keep)
                .execute(&self.db)
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }

    /// `VACUUM INTO`: readers and writers carry on meanwhile.
    async fn backup(&self, path: &Path) -> StoreResult<u64> {
        if path.exists() {
            return Err(StoreError(anyhow::anyhow!(
                "{} already exists; choose a new file",
                path.display()
            )));
        }
        let target = path
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("{} is not a UTF-8 path", path.display()))?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.db)
            .await?;
        Ok(std::fs::metadata(path).map_err(anyhow::Error::from)?.len())
    }
}

#[cfg(test)]
mod tests {
    use sqlx::SqlitePool;

    #[tokio::test]
    async fn old_rows_go_and_recent_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = super::open(&url).await.unwrap();
        let db = SqlitePool::connect(&url).await.unwrap();
        let t = 10_000_000;
        for (scene, expires) in [("old", t - 8 * 86_400), ("new", t - 60)] {
            sqlx::query(
                "INSERT INTO login_scenes (scene, owner, ticket, qr_url, created_at, expires_at, updated_at) \
                 VALUES (?, 'o', ?, 'u', 0, ?, 0)",
            )
            .bind(scene)
            .bind(scene)
            .bind(expires)
            .execute(&db)
            .await
            .unwrap();
        }
        for (sig, at) in [("old", t - 7200), ("new", t - 10)] {
            sqlx::query("INSERT INTO callback_requests (signature, timestamp, nonce, received_at) VALUES (?, '1', 'n', ?)")
                .bind(sig)
                .bind(at)
                .execute(&db)
                .await
                .unwrap();
        }

        assert_eq!(store.ops.prune(t).await.unwrap(), 2);

        let scenes: Vec<String> = sqlx::query_scalar("SELECT scene FROM login_scenes")
            .fetch_all(&db)
            .await
            .unwrap();
        let requests: Vec<String> = sqlx::query_scalar("SELECT signature FROM callback_requests")
            .fetch_all(&db)
            .await
            .unwrap();
        assert_eq!(
            (scenes, requests),
            (vec!["new".to_owned()], vec!["new".to_owned()])
        );
    }

    #[test]
    fn an_in_memory_database_is_refused_with_a_reason() {
        for url in ["sqlite::memory:", "sqlite://x.db?mode=memory"] {
            let e = super::file_of(url).unwrap_err().to_string();
            assert!(e.contains("database file"), "{url}: {e}");
        }
        assert_eq!(
            super::file_of("sqlite://data/wxlogin.db?mode=rwc").unwrap(),
            std::path::Path::new("data/wxlogin.db")
        );
    }

    #[test]
    fn the_checkpoint_thread_copies_commits_into_the_database_file_and_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
             CREATE TABLE t (v BLOB NOT NULL);",
        )
        .unwrap();
        for _ in 0..200 {
            conn.execute("INSERT INTO t (v) VALUES (zeroblob(1000))", [])
                .unwrap();
        }
        let before = std::fs::metadata(&path).unwrap().len();
        let checkpointer = super::checkpoint_continuously(&path).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::metadata(&path).unwrap().len() < before + 200_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the rows never reached the database file"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(checkpointer);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let named = |name: &str| {
            std::fs::read_dir("/proc/self/task")
                .map(|tasks| {
                    tasks.flatten().any(|t| {
                        std::fs::read_to_string(t.path().join("comm"))
                            .is_ok_and(|c| c.trim() == name)
                    })
                })
                .unwrap_or(false)
        };
        // No other unit test starts a checkpoint thread, so any one left is this one.
        assert!(
            !named("wxlogin-checkpo"),
            "the checkpoint thread outlived its handle"
        );
    }
}
