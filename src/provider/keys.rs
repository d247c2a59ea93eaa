//! The signing keys, cached in memory: read from the store at most once a minute (another
//! instance may have rotated them), the first one made on first use.

use std::sync::Arc;

use tokio::sync::{Mutex, RwLock};

use crate::{
    error::{AppError, AppResult},
    oidc::{ID_TOKEN_TTL, SigningKey, jwt::Signer},
    state::AppState,
    util::now,
};

/// How long a read of the keys is used before the store is asked again.
const RELOAD_SECONDS: i64 = 60;
/// A retired key stays published this long: every token it signed has expired by then (and
/// a relying party's cached JWKS has been refreshed).
pub const KEEP_RETIRED: i64 = ID_TOKEN_TTL + 600;

/// The keys as last read.
pub struct Keys {
    /// The current key first.
    pub keys: Vec<SigningKey>,
    /// The current key, parsed.
    pub signer: Signer,
    read_at: i64,
}

/// The cache.
#[derive(Default)]
pub struct KeyRing {
    cached: RwLock<Option<Arc<Keys>>>,
    /// Held while the first key is made, so two first uses make one.
    making: Mutex<()>,
}

impl KeyRing {
    /// The keys, read again when the cache is a minute old; the first key is made if there is
    /// none (2048-bit RSA: tens of milliseconds, on a blocking thread).
    pub async fn current(&self, state: &AppState) -> AppResult<Arc<Keys>> {
        if let Some(keys) = self.cached.read().await.as_ref()
            && now() - keys.read_at < RELOAD_SECONDS
        {
            return Ok(keys.clone());
        }
        let mut keys = state.store.oidc.signing_keys(now(), KEEP_RETIRED).await?;
        if keys.first().is_none_or(|k| k.retired_at.is_some()) {
            let _making = self.making.lock().await;
            keys = state.store.oidc.signing_keys(now(), KEEP_RETIRED).await?;
            if keys.first().is_none_or(|k| k.retired_at.is_some()) {
                let key = make_key().await?;
                state.store.oidc.add_signing_key(&key, true).await?;
                tracing::info!(kid = key.kid, "first signing key made");
                keys = state.store.oidc.signing_keys(now(), KEEP_RETIRED).await?;
            }
        }
        let signer = keys
            .first()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no signing key")))?
            .signer()
            .map_err(AppError::Internal)?;
        let fresh = Arc::new(Keys {
            keys,
            signer,
            read_at: now(),
        });
        *self.cached.write().await = Some(fresh.clone());
        Ok(fresh)
    }
}

/// A new signing key, made on a blocking thread.
pub async fn make_key() -> AppResult<SigningKey> {
    tokio::task::spawn_blocking(|| SigningKey::generate(now()))
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(AppError::Internal)
}
