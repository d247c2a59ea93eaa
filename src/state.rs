//! What every handler can reach: settings, the store, the WeChat client, the live updates.

use std::sync::Arc;

use url::Url;

use crate::{
    config::Settings, live::Live, metrics::Metrics, sms::SmsSender, wechat::client::WechatClient,
};

/// Shared state of the running application. Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    /// Settings as checked at start.
    pub settings: Arc<Settings>,
    /// The base URL browsers and WeChat use to reach this site.
    pub public_url: Url,
    /// Where everything is kept.
    pub store: crate::store::Store,
    /// WeChat API client (the sandbox's in sandbox mode).
    pub wechat: Arc<WechatClient>,
    /// Wakes waiting browsers and admin dashboards after a commit; ends their streams at
    /// shutdown.
    pub live: Live,
    /// Sends SMS codes.
    pub sms: Arc<dyn SmsSender>,
    /// Key for the keyed hash of SMS codes.
    pub code_key: Arc<[u8; 32]>,
    /// Key of the users' OpenID Connect `sub` ([`crate::oidc::subject`]).
    pub subject_key: Arc<[u8; 32]>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The site's name, logo and links, as its pages show them.
    pub brand: Arc<crate::ui::brand::Brand>,
    /// The logo file, served at `/brand/logo`.
    pub logo: Option<Arc<Logo>>,
}

/// The site's logo (`WXLOGIN_LOGO_FILE`), as read at start.
pub struct Logo {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

/// `leptos_axum`'s routes ask the state for Leptos' options. With SSR only and our own page
/// handler, nothing in them is read; they say what `Leptos.toml` says.
impl axum::extract::FromRef<AppState> for leptos::config::LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        leptos::config::LeptosOptions::builder()
            .output_name("wxlogin")
            .site_addr(state.settings.site_addr)
            .build()
    }
}

impl AppState {
    /// An absolute URL on this site.
    pub fn url(&self, path: &str) -> String {
        let base = self.public_url.as_str().trim_end_matches('/');
        format!("{base}{path}")
    }
}
