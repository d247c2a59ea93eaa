//! Housekeeping: rows that have done their job are deleted, so the database stays the size of
//! what is still useful. Runs every 10 minutes in the server.

use std::time::Duration;

use sqlx::SqlitePool;

use crate::db::now;

/// How long each kind of row is kept, in seconds, and why.
const RULES: &[(&str, &str, i64)] = &[
    // Signed requests only matter inside the 5-minute timestamp window.
    ("callback_requests", "received_at", 3600),
    // WeChat retries a delivery within about 15 s; a day is plenty.
    ("callback_deliveries", "received_at", 86_400),
    // The SMS limits look back 24 hours at most.
    ("sms_codes", "created_at", 2 * 86_400),
    // The QR cap per IP looks back an hour.
    ("qr_quota", "reserved_at", 3600),
    // A scene is dead minutes after its QR code; login history lives in login_events.
    ("login_scenes", "expires_at", 7 * 86_400),
    // The sandbox's tickets and tokens die with their expiry.
    ("sandbox_tickets", "expires_at", 86_400),
    ("sandbox_tokens", "expires_at", 86_400),
    ("sandbox_sms", "sent_at", 86_400),
];

/// Deletes every row older than its rule allows, as of `at`. Returns how many went.
pub async fn prune(db: &SqlitePool, at: i64) -> sqlx::Result<u64> {
    let mut deleted = 0;
    for (table, column, keep) in RULES {
        // Table and column names come from the constant above, never from input.
        deleted += sqlx::query(&format!("DELETE FROM {table} WHERE {column} < ?"))
            .bind(at - keep)
            .execute(db)
            .await?
            .rows_affected();
    }
    Ok(deleted)
}

/// Prunes every 10 minutes, forever (spawned by the server). The first round comes 10 minutes
/// after start, not at start: a start-up has better things to do, and a restart loop must not
/// turn into a pruning loop.
pub async fn run(db: SqlitePool) {
    let period = Duration::from_secs(600);
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        every.tick().await;
        match prune(&db, now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned old rows"),
            Err(e) => tracing::warn!(error = %e, "pruning failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn old_rows_go_and_recent_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
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

        assert_eq!(prune(&db, t).await.unwrap(), 2);

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
}
