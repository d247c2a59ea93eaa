//! Housekeeping: rows that have done their job are deleted (what each kind of row is kept
//! for is the store's [`crate::store::Ops::prune`]), so the database stays the size of what is
//! still useful. Runs every 10 minutes in the server.

use std::time::Duration;

use crate::{store::Store, util::now};

/// Prunes every 10 minutes, forever (spawned by the server). The first round comes 10 minutes
/// after start, not at start: a start-up has better things to do, and a restart loop must not
/// turn into a pruning loop.
pub async fn run(store: Store) {
    let period = Duration::from_secs(600);
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        every.tick().await;
        match store.ops.prune(now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned old rows"),
            Err(e) => tracing::warn!(error = %e, "pruning failed"),
        }
    }
}
