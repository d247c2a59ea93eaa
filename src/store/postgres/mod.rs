//! The PostgreSQL backend, for several wxlogin instances on one database. Every instance may
//! serve any browser, so everything a limit counts is counted here, in one statement or under
//! a transaction-scoped advisory lock of what is counted (a phone, a client, a scene), never in
//! a process. A commit that moves a browser's scene on sends `NOTIFY` in its transaction; every
//! instance `LISTEN`s ([`listen`]) and wakes its own waiting browsers. Every SQL string of the
//! backend is in this folder.

mod admin;
mod binding;
mod callbacks;
mod oidc;
mod sandbox;
mod scenes;
mod users;

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use rand::RngCore;
use sqlx::{
    PgConnection, PgPool,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};

use super::{Keys, Ops, Remote, RemoteFeed, Sessions, Store, StoreError, StoreResult};

/// The channel every instance listens on.
const CHANNEL: &str = "wxlogin";

/// Advisory lock keys (the first half of the two-key form; the second is 0 or a hash).
mod lock {
    /// Held while an instance migrates the schema (besides sqlx's own lock).
    pub const MIGRATE: i32 = 0x7778_0001;
    /// Held by the instance that prunes old rows.
    pub const PRUNE: i32 = 0x7778_0002;
    /// Held by the instance fetching WeChat's access token (second key: the AppID's hash).
    pub const TOKEN: i32 = 0x7778_0003;
}

/// The PostgreSQL backend of every store trait.
pub struct Postgres {
    db: PgPool,
    /// This instance's name in its notifications: its own listener skips them (the instance
    /// that committed wakes its browsers itself, straight away).
    instance: Arc<str>,
    /// The URL's password, for `pg_dump` (through its environment).
    password: Option<String>,
}

/// Opens the database at `url`, migrates it (once, whichever instances start together),
/// starts the listener and the hourly deletion of expired sessions, and returns the store.
pub async fn open(url: &str) -> anyhow::Result<Store> {
    let options: PgConnectOptions = url
        .parse()
        .context("WXLOGIN_DATABASE_URL is not a PostgreSQL URL")?;
    let db = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .context("cannot connect to PostgreSQL (WXLOGIN_DATABASE_URL)")?;
    let sessions = tower_sessions_sqlx_store::PostgresStore::new(db.clone());
    migrate(&db, &sessions).await?;
    tokio::spawn({
        use tower_sessions::ExpiredDeletion;
        sessions
            .clone()
            .continuously_delete_expired(Duration::from_secs(3600))
    });
    let mut name = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut name);
    let instance: Arc<str> = format!("{}-{}", std::process::id(), hex::encode(name)).into();
    let (remote, _) = tokio::sync::broadcast::channel(1024);
    let listening = listen(options, instance.clone(), remote.clone())
        .await
        .context("cannot LISTEN on PostgreSQL")?;
    tokio::spawn(listening);
    let password = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(|p| percent_decode(p)));
    let backend = Arc::new(Postgres {
        db,
        instance,
        password,
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
        remote: RemoteFeed(Some(remote)),
    })
}

/// Runs wxlogin's migrations and the session store's, holding an advisory lock so that
/// instances starting together take turns (sqlx locks its own migrations as well, but the
/// session store's `CREATE ... IF NOT EXISTS` would race).
async fn migrate(
    db: &PgPool,
    sessions: &tower_sessions_sqlx_store::PostgresStore,
) -> anyhow::Result<()> {
    let mut conn = db.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1, 0)")
        .bind(lock::MIGRATE)
        .execute(&mut *conn)
        .await?;
    let migrated = async {
        sqlx::migrate!("./migrations/postgres")
            .run(db)
            .await
            .context("cannot migrate the database")?;
        sessions
            .migrate()
            .await
            .context("cannot migrate the session table")?;
        anyhow::Ok(())
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock($1, 0)")
        .bind(lock::MIGRATE)
        .execute(&mut *conn)
        .await?;
    migrated
}

/// Inside a transaction: once it commits, every other instance hears that browser `owner`'s
/// scene moved on (`login`: and a login event was recorded, for the dashboards).
pub(super) async fn notify(
    conn: &mut PgConnection,
    instance: &str,
    owner: &str,
    login: bool,
) -> StoreResult<()> {
    let kind = if login { "login" } else { "scene" };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(format!("{instance} {kind} {owner}"))
        .execute(conn)
        .await?;
    Ok(())
}

/// What one notification says, unless this instance sent it.
fn heard(payload: &str, instance: &str) -> Option<Remote> {
    let mut parts = payload.splitn(3, ' ');
    let (from, kind, owner) = (parts.next()?, parts.next()?, parts.next()?);
    if from == instance {
        return None;
    }
    let login = match kind {
        "login" => true,
        "scene" => false,
        _ => return None,
    };
    Some(Remote::Changed {
        owner: owner.to_owned(),
        login,
    })
}

/// Starts listening (the returned future goes on forever) on a connection of its own, outside
/// the pool: every notification of another instance goes to `remote`. When the connection is
/// lost the listener connects again, retrying each second while the database is away, and
/// then sends [`Remote::Resync`]: what was committed meanwhile was not heard, so every waiting
/// browser must read its state again.
pub async fn listen(
    options: PgConnectOptions,
    instance: Arc<str>,
    remote: tokio::sync::broadcast::Sender<Remote>,
) -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    // sqlx reconnects a listener through its pool: a pool of one, never idle, is its connection.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options)
        .await?;
    let mut listener = PgListener::connect_with(&own).await?;
    listener.listen(CHANNEL).await?;
    Ok(async move {
        let mut lost = false;
        loop {
            if lost {
                // LISTEN again (on a new connection if need be); only once that has worked can
                // a re-read miss nothing.
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "PostgreSQL listener: cannot reconnect yet");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                lost = false;
                tracing::info!("PostgreSQL listener reconnected; waiting browsers read again");
                let _ = remote.send(Remote::Resync);
            }
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Some(heard) = heard(notification.payload(), &instance) {
                        // Nobody waiting on this instance is fine.
                        let _ = remote.send(heard);
                    }
                }
                Ok(None) => {
                    tracing::warn!("lost the PostgreSQL listener's connection; reconnecting");
                    lost = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "PostgreSQL listener failed; reconnecting");
                    lost = true;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}

#[async_trait::async_trait]
impl Keys for Postgres {
    async fn app_key(&self, name: &str) -> StoreResult<[u8; 32]> {
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        // Two instances making the same key at once keep the first one stored.
        let stored: Vec<u8> = sqlx::query_scalar(
            "WITH made AS (INSERT INTO app_keys (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING RETURNING value) \
             SELECT value FROM made UNION ALL SELECT value FROM app_keys WHERE name = $1",
        )
        .bind(name)
        .bind(&fresh[..])
        .fetch_one(&self.db)
        .await?;
        stored
            .try_into()
            .map_err(|_| StoreError(anyhow::anyhow!("app key {name} is not 32 bytes")))
    }
}

/// The token of one AppID, shared by every instance: the one fetching it holds an advisory
/// lock, and the others wait for it and then read what it stored.
#[async_trait::async_trait]
impl crate::wechat::client::TokenStore for Postgres {
    async fn load(&self, appid: &str) -> Option<crate::wechat::client::StoredToken> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT token, expires_at FROM wechat_tokens WHERE appid = $1")
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
            "INSERT INTO wechat_tokens (appid, token, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (appid) DO UPDATE SET token = $2, expires_at = $3",
        )
        .bind(appid)
        .bind(token.token.expose_secret())
        .bind(token.expires_at)
        .execute(&self.db)
        .await;
        if let Err(e) = saved {
            tracing::warn!(error = %e, "access token not stored");
        }
    }

    async fn fetching(&self, appid: &str) -> Option<crate::wechat::client::FetchGuard> {
        let locked = async {
            let mut tx = self.db.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(lock::TOKEN)
                .bind(appid)
                .execute(&mut *tx)
                .await?;
            Ok::<_, sqlx::Error>(tx)
        };
        match tokio::time::timeout(Duration::from_secs(10), locked).await {
            // The lock lives as long as its transaction: dropping the guard rolls it back.
            Ok(Ok(tx)) => Some(Box::new(tx)),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot take the access-token lock; fetching anyway");
                None
            }
            Err(_) => {
                tracing::warn!("waited 10 s for another instance's token fetch; fetching anyway");
                None
            }
        }
    }
}

/// How long each kind of row is kept, in seconds (the same as SQLite's, which says why).
const KEEP: &[(&str, &str, i64)] = &[
    ("callback_requests", "received_at", 3600),
    ("callback_deliveries", "received_at", 86_400),
    ("sms_codes", "created_at", 2 * 86_400),
    ("login_scenes", "expires_at", 7 * 86_400),
    ("qr_reservations", "reserved_at", 3600),
    ("wechat_oauth_states", "created_at", 2 * 3600),
    ("sandbox_oauth_codes", "expires_at", 86_400),
    ("sandbox_tickets", "expires_at", 86_400),
    ("sandbox_tokens", "expires_at", 86_400),
    ("sandbox_sms", "sent_at", 86_400),
    ("oidc_codes", "expires_at", 86_400),
    ("oidc_tokens", "expires_at", 86_400),
    ("oidc_keys", "retired_at", 86_400),
];

#[async_trait::async_trait]
impl Ops for Postgres {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&self.db)
            .await?;
        Ok(())
    }

    /// One instance at a time: the others find the lock taken and skip this round.
    async fn prune(&self, at: i64) -> StoreResult<u64> {
        let mut tx = self.db.begin().await?;
        let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, 0)")
            .bind(lock::PRUNE)
            .fetch_one(&mut *tx)
            .await?;
        if !ours {
            return Ok(0);
        }
        let mut deleted = 0;
        for (table, column, keep) in KEEP {
            // Table and column names come from the constant above, never from input.
            deleted += sqlx::query(&format!("DELETE FROM {table} WHERE {column} < $1"))
                .bind(at - keep)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Runs `pg_dump` (custom format, for `pg_restore`) when it is on the PATH.
    async fn backup(&self, path: &Path) -> StoreResult<u64> {
        if path.exists() {
            return Err(StoreError(anyhow::anyhow!(
                "{} already exists; choose a new file",
                path.display()
            )));
        }
        let options = self.db.connect_options();
        let mut dump = tokio::process::Command::new("pg_dump");
        dump.arg("--format=custom")
            .arg("--no-owner")
            .arg("--file")
            .arg(path)
            .arg("--host")
            .arg(options.get_host())
            .arg("--port")
            .arg(options.get_port().to_string())
            .arg("--username")
            .arg(options.get_username())
            .stdin(std::process::Stdio::null());
        if let Some(database) = options.get_database() {
            dump.arg("--dbname").arg(database);
        }
        // The password goes through the environment, not the command line (where `ps` shows
        // it); `PGPASSWORD` set by the caller or ~/.pgpass serve as well.
        if let Some(password) = password_of(self) {
            dump.env("PGPASSWORD", password);
        }
        let status = match dump.status().await {
            Ok(status) => status,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError(anyhow::anyhow!(
                    "this database is PostgreSQL: back it up with pg_dump (not on the PATH here), \
                     e.g. `pg_dump --format=custom --file {} \"$WXLOGIN_DATABASE_URL\"`",
                    path.display()
                )));
            }
            Err(e) => return Err(StoreError(anyhow::anyhow!("cannot run pg_dump: {e}"))),
        };
        if !status.success() {
            return Err(StoreError(anyhow::anyhow!("pg_dump failed ({status})")));
        }
        Ok(std::fs::metadata(path).map_err(anyhow::Error::from)?.len())
    }
}

/// The password of the URL the pool was opened with (sqlx keeps it but does not show it).
fn password_of(pg: &Postgres) -> Option<String> {
    pg.password.clone()
}

/// A URL's percent-encoded part, decoded.
fn percent_decode(part: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", part.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_names_its_browser_and_an_instance_skips_its_own() {
        assert!(heard("me login abc", "me").is_none());
        match heard("them login a b", "me") {
            Some(Remote::Changed { owner, login }) => {
                assert_eq!((owner.as_str(), login), ("a b", true))
            }
            _ => panic!("not heard"),
        }
        match heard("them scene x", "me") {
            Some(Remote::Changed { owner, login }) => {
                assert_eq!((owner.as_str(), login), ("x", false))
            }
            _ => panic!("not heard"),
        }
        assert!(heard("them what x", "me").is_none());
        assert!(heard("garbage", "me").is_none());
    }
}
