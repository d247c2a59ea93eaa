//! Start-up: [`Application::build`] turns checked [`Settings`] into a bound, migrated, ready
//! server with its background tasks; `main` and the integration tests both use it.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{Router, routing::get};
use tokio::net::TcpListener;
use url::Url;

use crate::{
    config::{BrandSettings, Mode, Settings, TokenEndpoint},
    maintenance,
    routes::{app, metrics_page},
    sandbox::Sandbox,
    server::{ConnectionLimits, serve_http1},
    sms,
    state::{AppState, Logo},
    store::Store,
    ui::{assets::version_of, brand::Brand},
    wechat::client::{ClientConfig, TokenKind, WechatClient},
};

/// A bound, ready-to-run wxlogin.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Binds the listen address, opens and migrates the database, and builds the router.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(settings.site_addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.site_addr))?;
        let local = listener.local_addr()?;
        // How this process reaches itself (the sandbox calls back into it).
        let host = if local.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            local.ip().to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let self_url = Url::parse(&format!("http://{host}:{}/", local.port()))?;
        if settings.mode == Mode::Sandbox {
            settings.wechat.api_base = self_url.join("sandbox/")?;
        }
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| self_url.clone());
        if settings.mode == Mode::Sandbox {
            // The sandbox's "WeChat browser" pages are opened by the browser, at the public URL.
            settings.phones.oauth_base = public_url.join("sandbox/")?;
        }

        let store = Store::open(&settings.database_url).await?;
        let code_key = store.keys.app_key("sms_code_hmac").await?;
        let subject_key = store.keys.app_key("oidc_subject").await?;
        tokio::spawn(maintenance::run(store.clone()));

        let wechat = WechatClient::new(ClientConfig {
            base: settings.wechat.api_base.clone(),
            appid: settings.wechat.appid.clone(),
            secret: settings.wechat.secret.clone(),
            token_kind: match settings.wechat.token_endpoint {
                TokenEndpoint::Stable => TokenKind::Stable,
                TokenEndpoint::Classic => TokenKind::Classic,
            },
        })
        .with_store(store.tokens.clone());
        let sandbox = (settings.mode == Mode::Sandbox)
            .then(|| self_url.join("wechat/callback").map(Sandbox::new))
            .transpose()?;
        let sms = sms::sender(&settings.sms, sandbox.is_some().then(|| store.clone()));
        let logo = load_logo(&settings.brand)?;
        let brand = settings.brand.clone();
        let brand = Brand {
            site_name: brand.site_name,
            // The version makes a new logo (same path, new bytes) reach browsers at once.
            logo_url: logo
                .as_ref()
                .map(|l| format!("/brand/logo?v={}", version_of(&l.bytes))),
            account_name: brand.account_name,
            privacy_url: brand.privacy_url,
            terms_url: brand.terms_url,
            support_contact: brand.support_contact,
        };
        let state = AppState {
            brand: Arc::new(brand),
            logo,
            settings: Arc::new(settings),
            public_url,
            store,
            wechat: Arc::new(wechat),
            live: Default::default(),
            sms,
            code_key: Arc::new(code_key),
            subject_key: Arc::new(subject_key),
            metrics: Arc::default(),
        };
        if let Some(remote) = state.store.remote.subscribe() {
            tokio::spawn(state.live.clone().relay(remote));
        }
        let router = app(state.clone(), sandbox);
        Ok(Application {
            listener,
            router,
            state,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The application state (tests inspect the database and the WeChat client through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, ends the event streams
    /// (browsers reconnect to the next server) and lets running requests finish, for at most
    /// the configured grace period. Serves `/metrics` on its own address when configured.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if let Some(addr) = self.state.settings.ops.metrics_addr {
            let listener = TcpListener::bind(addr).await?;
            tracing::info!(%addr, "metrics served");
            let metrics = Router::new()
                .route("/metrics", get(metrics_page))
                .with_state(self.state.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, metrics).await {
                    tracing::error!(error = %e, "metrics server stopped");
                }
            });
        }
        let live = self.state.live.clone();
        let grace = Duration::from_secs(self.state.settings.ops.shutdown_grace_seconds);
        let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
        let limits = ConnectionLimits::from_settings(&self.state.settings.ops);
        tracing::info!(
            max_connections = limits.max_connections,
            header_timeout_seconds = limits.header_timeout.as_secs(),
            "connection limits"
        );
        let server = serve_http1(self.listener, self.router, limits, async move {
            shutdown.await;
            live.shut_down();
            let _ = stopping_tx.send(true);
        });
        tokio::select! {
            served = server => served,
            _ = async {
                let _ = stopping.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(
                    seconds = grace.as_secs(),
                    "requests still running after the grace period; stopping anyway"
                );
                Ok(())
            }
        }
    }
}

// A logo is an image for a 40 px header, not a download.
const MAX_LOGO_BYTES: usize = 256 * 1024;

/// Reads `WXLOGIN_LOGO_FILE`, if set: its bytes and type. A missing, unreadable or oversized
/// file stops the start with its name, rather than a broken image on every page.
fn load_logo(brand: &BrandSettings) -> anyhow::Result<Option<Arc<Logo>>> {
    let Some(path) = &brand.logo_file else {
        return Ok(None);
    };
    let bytes = std::fs::read(path)
        .with_context(|| format!("WXLOGIN_LOGO_FILE: cannot read {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() <= MAX_LOGO_BYTES,
        "WXLOGIN_LOGO_FILE: {} is over {} KiB",
        path.display(),
        MAX_LOGO_BYTES / 1024
    );
    let content_type = crate::config::logo_type(path).context("WXLOGIN_LOGO_FILE: unknown type")?;
    Ok(Some(Arc::new(Logo {
        bytes,
        content_type,
    })))
}
