//! The WeChat API client: one shared access token, temporary QR codes, user info, and the
//! exchange of a web-authorization code.
//!
//! Protocol facts that shape this file:
//! - An access token lives 7,200 s. Each classic `cgi-bin/token` call invalidates the previous
//!   token (old and new overlap 5 minutes) and there are 2,000 calls a day, so the token is
//!   fetched by one caller at a time and shared by all. `POST cgi-bin/stable_token` returns the
//!   same token while it is valid, so several instances don't invalidate each other; it is the
//!   default. `force_refresh` is allowed 20 times a day, 30 s apart.
//! - Errcodes 40001, 40014 and 42001 mean the token is bad: refresh once and retry once.
//!   -1 is "system busy": back off and retry within a bound. 45009 is the daily quota.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;
use tokio::sync::Mutex;
use url::Url;

/// Which endpoint hands out tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `POST cgi-bin/stable_token` (default).
    Stable,
    /// `GET cgi-bin/token`.
    Classic,
}

/// What the client needs to know about the Official Account.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API base, e.g. `https://api.weixin.qq.com`.
    pub base: Url,
    /// AppID.
    pub appid: String,
    /// AppSecret.
    pub secret: SecretString,
    /// Token endpoint.
    pub token_kind: TokenKind,
}

/// A temporary parametric QR code, as `cgi-bin/qrcode/create` answers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct QrTicket {
    /// Ticket; `showqrcode?ticket=` draws it.
    pub ticket: String,
    /// Lifetime in seconds.
    pub expire_seconds: u32,
    /// The URL the QR code encodes.
    pub url: String,
}

/// What `cgi-bin/user/info` still returns (nickname and avatar are gone since 2021-12-27).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct UserInfo {
    /// 1 when the person follows the account.
    pub subscribe: u8,
    /// The person.
    pub openid: String,
    /// Only when the account is linked to an Open Platform account.
    #[serde(default)]
    pub unionid: Option<String>,
    /// When they followed, Unix seconds.
    #[serde(default)]
    pub subscribe_time: Option<i64>,
}

/// Why an API call failed. Never carries the access token or the secret.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request didn't get an answer (connection, timeout).
    #[error("WeChat API unreachable: {0}")]
    Transport(String),
    /// An HTTP status other than 200.
    #[error("WeChat API answered HTTP {0}")]
    Status(u16),
    /// WeChat answered with an errcode.
    #[error("WeChat API error {errcode}: {errmsg}")]
    Api {
        /// The errcode.
        errcode: i64,
        /// The errmsg.
        errmsg: String,
    },
    /// The answer wasn't the documented JSON.
    #[error("WeChat API answer not understood: {0}")]
    Decode(String),
}

impl ApiError {
    /// The errcode, when WeChat gave one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            ApiError::Api { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    fn token_is_bad(&self) -> bool {
        matches!(self.errcode(), Some(40001 | 40014 | 42001))
    }

    fn is_transient(&self) -> bool {
        match self {
            ApiError::Transport(_) => true,
            ApiError::Status(s) => *s >= 500,
            ApiError::Api { errcode, .. } => *errcode == -1,
            ApiError::Decode(_) => false,
        }
    }
}

/// A token as kept outside the process, so a restart (or another instance) doesn't spend a
/// fetch of the day's quota.
#[derive(Clone)]
pub struct StoredToken {
    /// The access token.
    pub token: SecretString,
    /// When WeChat said it expires, Unix seconds.
    pub expires_at: i64,
}

/// Somewhere to keep the access token between runs (the app uses its database).
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    /// The stored token of `appid`, if any.
    async fn load(&self, appid: &str) -> Option<StoredToken>;
    /// Replaces the stored token of `appid`.
    async fn save(&self, appid: &str, token: &StoredToken);
    /// Waits while another process sharing this store fetches `appid`'s token, then keeps the
    /// others waiting until the guard is dropped: one fetch at a time across instances, and
    /// the ones that waited read what it stored. `None`: no one else shares the store.
    async fn fetching(&self, _appid: &str) -> Option<FetchGuard> {
        None
    }
}

/// Held while this process fetches a token (see [`TokenStore::fetching`]).
pub type FetchGuard = Box<dyn Send>;

#[async_trait::async_trait]
impl<T: TokenStore + ?Sized> TokenStore for std::sync::Arc<T> {
    async fn load(&self, appid: &str) -> Option<StoredToken> {
        (**self).load(appid).await
    }

    async fn save(&self, appid: &str, token: &StoredToken) {
        (**self).save(appid, token).await
    }

    async fn fetching(&self, appid: &str) -> Option<FetchGuard> {
        (**self).fetching(appid).await
    }
}

struct CachedToken {
    token: SecretString,
    refresh_at: Instant,
    expires_at: Instant,
}

impl CachedToken {
    fn new(token: SecretString, now: Instant, lifetime: Duration) -> CachedToken {
        CachedToken {
            token,
            refresh_at: now + lifetime.saturating_sub(REFRESH_MARGIN).max(lifetime / 2),
            expires_at: now + lifetime,
        }
    }
}

/// The client. Cheap to share behind an `Arc`; every caller shares one token.
pub struct WechatClient {
    http: reqwest::Client,
    config: ClientConfig,
    store: Option<Box<dyn TokenStore>>,
    cache: Mutex<Option<CachedToken>>,
    last_forced: Mutex<Option<Instant>>,
    fetches: AtomicU64,
}

// Refresh this long before WeChat's stated expiry, so no call races the deadline.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
// WeChat allows a forced stable_token refresh at most every 30 s.
const FORCE_SPACING: Duration = Duration::from_secs(30);
// Transient failures are retried with these pauses, then given up.
const BACKOFF: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(400)];

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

impl WechatClient {
    /// A client with a 3 s timeout per request (callbacks must be answered within 5 s).
    pub fn new(mut config: ClientConfig) -> Self {
        if !config.base.path().ends_with('/') {
            let path = format!("{}/", config.base.path());
            config.base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("TLS backend available");
        Self {
            http,
            config,
            store: None,
            cache: Mutex::new(None),
            last_forced: Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// Keeps the token in `store` across restarts.
    pub fn with_store(mut self, store: impl TokenStore + 'static) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// The AppID this client speaks for.
    pub fn appid(&self) -> &str {
        &self.config.appid
    }

    /// How many tokens this client has fetched from WeChat since it started.
    pub fn token_fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// A valid access token, fetched at most once however many callers wait for it.
    pub async fn access_token(&self) -> Result<SecretString, ApiError> {
        self.token(false).await
    }

    async fn token(&self, force: bool) -> Result<SecretString, ApiError> {
        // Holding the lock across the fetch is the point: one fetch in flight, everyone else
        // waits for its answer instead of spending quota and invalidating each other.
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if cache.is_none() && !force {
            *cache = self.load_stored(now).await;
        }
        if let Some(cached) = cache.as_ref()
            && !force
            && now < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        // Instances sharing the store fetch one at a time; one that waited for another's
        // fetch takes the token it stored (unless it is the very token found bad).
        let fetching = match &self.store {
            Some(store) => store.fetching(&self.config.appid).await,
            None => None,
        };
        if fetching.is_some()
            && let Some(stored) = self.load_stored(now).await
        {
            let known_bad = force
                && cache
                    .as_ref()
                    .is_some_and(|c| c.token.expose_secret() == stored.token.expose_secret());
            if !known_bad {
                let token = stored.token.clone();
                *cache = Some(stored);
                return Ok(token);
            }
        }
        let force = force && self.may_force().await;
        let answer = with_backoff(|| self.fetch_token(force)).await;
        let answer = match answer {
            Ok(answer) => answer,
            // A refresh ahead of time that fails still leaves a usable token.
            Err(e) => match cache.as_ref() {
                Some(cached) if !force && now < cached.expires_at => {
                    return Ok(cached.token.clone());
                }
                _ => return Err(e),
            },
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let lifetime = Duration::from_secs(answer.expires_in.max(60));
        let token = SecretString::from(answer.access_token);
        if let Some(store) = &self.store {
            let expires_at = unix_now() + lifetime.as_secs() as i64;
            let stored = StoredToken {
                token: token.clone(),
                expires_at,
            };
            store.save(&self.config.appid, &stored).await;
        }
        *cache = Some(CachedToken::new(token.clone(), now, lifetime));
        // Stored before the lock goes, so whoever waited for it reads the new token.
        drop(fetching);
        Ok(token)
    }

    /// A stored token with enough life left to be worth using.
    async fn load_stored(&self, now: Instant) -> Option<CachedToken> {
        let stored = self.store.as_ref()?.load(&self.config.appid).await?;
        let left = stored.expires_at - unix_now();
        let lifetime = Duration::from_secs(u64::try_from(left).ok()?);
        (lifetime > REFRESH_MARGIN).then(|| CachedToken::new(stored.token, now, lifetime))
    }

    async fn may_force(&self) -> bool {
        let mut last = self.last_forced.lock().await;
        let now = Instant::now();
        match *last {
            Some(t) if now.duration_since(t) < FORCE_SPACING => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    async fn fetch_token(&self, force: bool) -> Result<TokenAnswer, ApiError> {
        let c = &self.config;
        match c.token_kind {
            TokenKind::Stable => {
                let body = json!({
                    "grant_type": "client_credential",
                    "appid": c.appid,
                    "secret": c.secret.expose_secret(),
                    "force_refresh": force,
                });
                let req = self.http.post(self.url("cgi-bin/stable_token")).json(&body);
                decode(req.send().await).await
            }
            TokenKind::Classic => {
                let req = self.http.get(self.url("cgi-bin/token")).query(&[
                    ("grant_type", "client_credential"),
                    ("appid", c.appid.as_str()),
                    ("secret", c.secret.expose_secret()),
                ]);
                decode(req.send().await).await
            }
        }
    }

    fn url(&self, path: &str) -> Url {
        self.config.base.join(path).expect("relative API path")
    }

    /// Calls an API that takes `access_token` in its query, refreshing a bad token once.
    async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        let mut refreshed = false;
        loop {
            let token = self.access_token().await?;
            let result = with_backoff(|| async {
                let mut req = match body {
                    Some(body) => self.http.post(self.url(path)).json(body),
                    None => self.http.get(self.url(path)),
                };
                req = req
                    .query(&[("access_token", token.expose_secret())])
                    .query(query);
                decode::<T>(req.send().await).await
            })
            .await;
            match result {
                Err(e) if e.token_is_bad() && !refreshed => {
                    refreshed = true;
                    self.token(true).await?;
                }
                other => return other,
            }
        }
    }

    /// Creates a temporary QR code (`QR_STR_SCENE`) carrying `scene` (1 to 64 characters).
    pub async fn create_qr(&self, scene: &str, expire_seconds: u32) -> Result<QrTicket, ApiError> {
        let body = json!({
            "expire_seconds": expire_seconds,
            "action_name": "QR_STR_SCENE",
            "action_info": { "scene": { "scene_str": scene } },
        });
        self.call("cgi-bin/qrcode/create", Some(&body), &[]).await
    }

    /// Exchanges a web-authorization `code` for the person it stands for
    /// (`sns/oauth2/access_token`; no access token of the account is involved).
    pub async fn oauth_exchange(&self, code: &str) -> Result<super::oauth::Authorized, ApiError> {
        let c = &self.config;
        let req = self.http.get(self.url("sns/oauth2/access_token")).query(&[
            ("appid", c.appid.as_str()),
            ("secret", c.secret.expose_secret()),
            ("code", code),
            ("grant_type", "authorization_code"),
        ]);
        decode(req.send().await).await
    }

    /// What WeChat says about a person who follows the account.
    pub async fn user_info(&self, openid: &str) -> Result<UserInfo, ApiError> {
        self.call(
            "cgi-bin/user/info",
            None,
            &[("openid", openid), ("lang", "zh_CN")],
        )
        .await
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn with_backoff<T, F, Fut>(mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let mut pauses = BACKOFF.iter();
    loop {
        match attempt().await {
            Err(e) if e.is_transient() => match pauses.next() {
                Some(pause) => tokio::time::sleep(*pause).await,
                None => return Err(e),
            },
            other => return other,
        }
    }
}

#[derive(Deserialize)]
struct ErrorAnswer {
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

async fn decode<T: DeserializeOwned>(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ApiError> {
    // reqwest's errors print the URL, and our URLs carry the access token: strip it.
    let response = sent.map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ApiError::Status(status.as_u16()));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
    // WeChat answers errors with HTTP 200 and an errcode; success sometimes has errcode 0.
    if let Ok(err) = serde_json::from_slice::<ErrorAnswer>(&bytes)
        && err.errcode != 0
    {
        return Err(ApiError::Api {
            errcode: err.errcode,
            errmsg: err.errmsg,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode(e.to_string()))
}
