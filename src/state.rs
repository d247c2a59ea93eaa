//! What every handler can reach: settings, the database, the WeChat client, the live hub.

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::SqlitePool;
use url::Url;

use crate::{
    binding::sms::SmsSender, config::Settings, login::hub::Hub, metrics::Metrics, sandbox::Sandbox,
    wechat::client::WechatClient,
};

/// Shared state of the running application. Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    /// Settings as checked at start.
    pub settings: Arc<Settings>,
    /// The base URL browsers and WeChat use to reach this site.
    pub public_url: Url,
    /// SQLite.
    pub db: SqlitePool,
    /// Read-only connections for the admin area's reports (memory-mapped).
    pub reports: SqlitePool,
    /// The writer thread for callbacks and new scenes (group commit).
    pub writer: crate::db::Writer,
    /// The WAL checkpoint thread, which ends with the last clone of this state.
    pub checkpointer: Arc<crate::db::Checkpointer>,
    /// WeChat API client (the sandbox's in sandbox mode).
    pub wechat: Arc<WechatClient>,
    /// Pushes scene changes to waiting browsers.
    pub hub: Hub,
    /// Tells the admin dashboards that a login event was recorded.
    pub login_feed: crate::admin::live::LoginFeed,
    /// Sends SMS codes.
    pub sms: Arc<dyn SmsSender>,
    /// Key for the keyed hash of SMS codes.
    pub code_key: Arc<[u8; 32]>,
    /// The built-in WeChat stand-in, in sandbox mode only.
    pub sandbox: Option<Arc<Sandbox>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// An absolute URL on this site.
    pub fn url(&self, path: &str) -> String {
        let base = self.public_url.as_str().trim_end_matches('/');
        format!("{base}{path}")
    }
}

impl FromRef<AppState> for SqlitePool {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}
