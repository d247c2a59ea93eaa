//! Typed settings: `Leptos.toml` gives the defaults, environment variables override them.
//!
//! Everything is parsed and checked once, at start. A missing or malformed value stops the start
//! with a message naming the variable; secrets are wrapped so they can't end up in a log line.
//!
//! Over 400 lines because every setting's check and message lives here, by design (one section
//! parser each; SMS ones in `sms.rs`), so an operator's error is found in one place.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::wechat::crypto::AesKey;

mod sms;

/// The defaults shipped with the binary, used when no `Leptos.toml` is found beside it.
const DEFAULT_FILE: &str = include_str!("../../Leptos.toml");

/// Where wxlogin gets its WeChat answers from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The built-in stand-in for WeChat: anyone can "scan" as anyone, so never for production.
    Sandbox,
    /// A real Official Account; `/sandbox` does not exist.
    Wechat,
}

/// Which WeChat endpoint hands out access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEndpoint {
    /// `POST cgi-bin/stable_token`: the same token while it is valid, so instances don't fight.
    Stable,
    /// `GET cgi-bin/token`: each call invalidates the previous token (2,000 calls a day).
    Classic,
}

/// The Official Account wxlogin talks for.
#[derive(Debug, Clone)]
pub struct WechatSettings {
    /// AppID, e.g. `wx1234567890abcdef`.
    pub appid: String,
    /// AppSecret.
    pub secret: SecretString,
    /// The callback Token set in the WeChat console; signs every callback.
    pub token: SecretString,
    /// Base URL of the API (`https://api.weixin.qq.com`). In sandbox mode the app's own `/sandbox`.
    pub api_base: Url,
    /// Which token endpoint to use.
    pub token_endpoint: TokenEndpoint,
    /// Safe-mode keys (EncodingAESKey): the current one first, then the previous one during a
    /// rotation. Empty: plaintext mode.
    pub aes_keys: Vec<AesKey>,
}

/// Who delivers SMS codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsProvider {
    /// Prints codes on the console (and the sandbox inbox): development only.
    Console,
    /// A signed JSON POST to the site's own endpoint (`WXLOGIN_SMS_WEBHOOK_*`).
    Webhook,
    /// Alibaba Cloud SMS (`WXLOGIN_SMS_ALIYUN_*`).
    Aliyun,
    /// Tencent Cloud SMS (`WXLOGIN_SMS_TENCENT_*`).
    Tencent,
}

/// A database URL. It reads as the URL (`&*url`), but its `Debug` hides a PostgreSQL
/// password, so printing the settings can't leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl std::ops::Deref for DatabaseUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for DatabaseUrl {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_ref()
    }
}

impl PartialEq<&str> for DatabaseUrl {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("[REDACTED]"));
                write!(f, "{:?}", url.as_str())
            }
            _ => write!(f, "{:?}", self.0),
        }
    }
}

/// All settings of a running wxlogin.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address (`LEPTOS_SITE_ADDR`); port 0 picks a free port (tests).
    pub site_addr: SocketAddr,
    /// SQLite or PostgreSQL URL (`WXLOGIN_DATABASE_URL`); its password never shows in `Debug`.
    pub database_url: DatabaseUrl,
    /// Sandbox or real WeChat (`WXLOGIN_MODE`).
    pub mode: Mode,
    /// Public base URL (`WXLOGIN_PUBLIC_URL`); `None` means `http://<listen address>`.
    pub public_url: Option<Url>,
    /// The Official Account.
    pub wechat: WechatSettings,
    /// Lifetime of a login QR code.
    pub qr_expire_seconds: u32,
    /// Idle lifetime of a session.
    pub session_idle_seconds: i64,
    /// SMS delivery (`WXLOGIN_SMS_PROVIDER`).
    pub sms_provider: SmsProvider,
    /// The provider's settings and the SMS limits (`WXLOGIN_SMS_*`).
    pub sms: crate::sms::SmsSettings,
    /// Operations and abuse settings.
    pub ops: OpsSettings,
    /// Logins for other sites: forward auth and where a login may return to.
    pub forward: ForwardSettings,
    /// Logging in from a phone.
    pub phones: PhoneSettings,
    /// The site's name, logo and links on its pages.
    pub brand: BrandSettings,
}

/// What the login and binding pages say about whose they are.
#[derive(Debug, Clone, Default)]
pub struct BrandSettings {
    /// The site's name (`WXLOGIN_SITE_NAME`); unset: "微信扫码登录" / "WeChat login".
    pub site_name: Option<String>,
    /// A logo file (`WXLOGIN_LOGO_FILE`: PNG, SVG, JPEG or WebP, at most 256 KiB), read at
    /// start and served by wxlogin itself, so the pages' policy stays `'self'`.
    pub logo_file: Option<std::path::PathBuf>,
    /// The Official Account's name (`WXLOGIN_ACCOUNT_NAME`), named in the login hint.
    pub account_name: Option<String>,
    /// Links to the site's privacy policy and terms (`WXLOGIN_PRIVACY_URL`, `WXLOGIN_TERMS_URL`).
    pub privacy_url: Option<String>,
    pub terms_url: Option<String>,
    /// Whom a disabled person should contact (`WXLOGIN_SUPPORT_CONTACT`), on the page and in
    /// the WeChat reply.
    pub support_contact: Option<String>,
}

/// Logging in from a phone: WeChat's web authorization inside its browser, an SMS code
/// elsewhere, and the card that suggests following the account.
#[derive(Debug, Clone)]
pub struct PhoneSettings {
    /// Web authorization (网页授权, `snsapi_base`) inside WeChat's browser
    /// (`WXLOGIN_WECHAT_OAUTH`, on by default; off for accounts without the permission).
    pub wechat_oauth: bool,
    /// Where WeChat's browser goes to authorize (`WXLOGIN_WECHAT_OAUTH_BASE`,
    /// `https://open.weixin.qq.com`). In sandbox mode the site's own `/sandbox/`.
    pub oauth_base: Url,
    /// Who may log in with an SMS code (`WXLOGIN_PHONE_LOGIN`).
    pub phone_login: PhoneLoginPolicy,
    /// What the "follow us" card's QR code encodes (`WXLOGIN_FOLLOW_QR_URL`, the account's
    /// QR link from the console); `None`: no card (`WXLOGIN_FOLLOW_CARD=off` also turns it off).
    pub follow_qr_url: Option<String>,
}

/// Who may log in with an SMS code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneLoginPolicy {
    /// Nobody: no SMS login.
    Off,
    /// People whose phone is already bound (the default).
    Bound,
    /// Anyone: a new phone makes an account, which links a WeChat later by scanning.
    Open,
}

/// Logging people in for other sites behind the same proxy (forward auth).
#[derive(Debug, Clone, Default)]
pub struct ForwardSettings {
    /// Hosts an absolute `next=` may lead to after login (`WXLOGIN_ALLOWED_RETURN_HOSTS`);
    /// anything else lands on `/`.
    pub allowed_return_hosts: Vec<HostPattern>,
    /// The login cookie's `Domain` (`WXLOGIN_COOKIE_DOMAIN`), so subdomains share it;
    /// `None`: this host only.
    pub cookie_domain: Option<String>,
    /// `/auth/verify` also sends `X-Wxlogin-Phone` (`WXLOGIN_FORWARD_AUTH_PHONE`).
    pub send_phone: bool,
}

/// A host name, or with a leading dot a domain and all its subdomains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    subdomains: bool,
}

impl HostPattern {
    /// Parses `app.example.com`, `.example.com` or `127.0.0.1`.
    pub fn parse(raw: &str) -> Option<HostPattern> {
        let raw = raw.trim().to_ascii_lowercase();
        let (subdomains, host) = match raw.strip_prefix('.') {
            Some(rest) => (true, rest),
            None => (false, raw.as_str()),
        };
        let ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        ok.then(|| HostPattern {
            host: host.to_owned(),
            subdomains,
        })
    }

    /// Whether `host` (no port) is this host, or one of its subdomains for a domain pattern.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        host == self.host
            || (self.subdomains
                && host
                    .strip_suffix(&self.host)
                    .is_some_and(|head| head.ends_with('.')))
    }
}

/// How wxlogin meets the outside world in production.
#[derive(Debug, Clone)]
pub struct OpsSettings {
    /// Proxies whose `X-Forwarded-For` is believed (`WXLOGIN_TRUSTED_PROXIES`); empty: the
    /// client IP is the socket's peer.
    pub trusted_proxies: Vec<IpNet>,
    /// New login QR codes one client IP may create per hour (`WXLOGIN_QR_PER_IP_PER_HOUR`).
    pub qr_per_ip_per_hour: u32,
    /// Where to serve Prometheus `/metrics` (`WXLOGIN_METRICS_ADDR`); `None`: not served.
    pub metrics_addr: Option<SocketAddr>,
    /// How long a shutdown waits for running requests (`WXLOGIN_SHUTDOWN_GRACE_SECONDS`).
    pub shutdown_grace_seconds: u64,
    /// How long a connection may take to send a request's head, counted from when the server
    /// starts waiting for it, so also how long a kept-alive connection may sit idle between
    /// requests (`WXLOGIN_HEADER_TIMEOUT_SECONDS`).
    pub header_timeout_seconds: u64,
    /// Open connections at most (`WXLOGIN_MAX_CONNECTIONS`); past it new ones are closed at
    /// once. `None`: derived from the open-file limit ([`default_max_connections`]).
    pub max_connections: Option<usize>,
    /// Token requests one OpenID Connect client may make per second
    /// (`WXLOGIN_OIDC_TOKEN_RATE`); past it they get 429.
    pub oidc_token_rate: u32,
}

/// The connection cap when none is set: the open-file limit less room for the database's
/// files and connections and for outgoing calls to WeChat and SMS gateways (128, plus 5 % for
/// the pools' growth under load).
pub fn default_max_connections(open_file_limit: u64) -> usize {
    let spare = 128 + open_file_limit / 20;
    usize::try_from(open_file_limit.saturating_sub(spare).max(16)).unwrap_or(usize::MAX)
}

impl Default for OpsSettings {
    fn default() -> Self {
        OpsSettings {
            trusted_proxies: Vec::new(),
            qr_per_ip_per_hour: 60,
            metrics_addr: None,
            shutdown_grace_seconds: 10,
            header_timeout_seconds: 10,
            max_connections: None,
            oidc_token_rate: 200,
        }
    }
}

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `::1/128`, `127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(s: &str) -> Option<IpNet> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A setting that could not be used, named as the operator would set it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    /// The environment variable (or `Leptos.toml` key) at fault.
    pub name: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    fn new(name: &'static str, problem: impl Into<String>) -> Self {
        Self {
            name,
            problem: problem.into(),
        }
    }
}

/// The `[wxlogin]` table of `Leptos.toml`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileSettings {
    mode: String,
    database_url: String,
    public_url: String,
    wechat_api_base: String,
    qr_expire_seconds: u32,
    session_idle_seconds: i64,
}

#[derive(Debug, Deserialize)]
struct FileRoot {
    wxlogin: FileSettings,
}

// Sandbox credentials: the sandbox checks them like WeChat would, but they protect nothing.
const SANDBOX_APPID: &str = "wxsandbox000000000";
const SANDBOX_SECRET: &str = "sandbox-app-secret";
const SANDBOX_TOKEN: &str = "sandboxtoken";

impl Settings {
    /// Reads `Leptos.toml` (from `WXLOGIN_CONFIG`, else the working directory, else the built-in
    /// defaults) and the process environment.
    pub fn load() -> Result<Settings, ConfigError> {
        let path = std::env::var("WXLOGIN_CONFIG").unwrap_or_else(|_| "Leptos.toml".into());
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(_) if std::env::var_os("WXLOGIN_CONFIG").is_none() => DEFAULT_FILE.to_owned(),
            Err(e) => return Err(ConfigError::new("WXLOGIN_CONFIG", format!("{path}: {e}"))),
        };
        Self::from_sources(&text, &|name| std::env::var(name).ok())
    }

    /// Builds settings from a `Leptos.toml` text and an environment lookup (tests pass their own).
    pub fn from_sources(
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let root: FileRoot = toml::from_str(file)
            .map_err(|e| ConfigError::new("Leptos.toml", format!("[wxlogin]: {}", e.message())))?;
        let defaults = root.wxlogin;
        // Checked before Leptos reads the same variable, so a bad value is reported by its name.
        let site_addr_env: Option<SocketAddr> = match env("LEPTOS_SITE_ADDR") {
            Some(v) => Some(v.trim().parse().map_err(|_| {
                ConfigError::new(
                    "LEPTOS_SITE_ADDR",
                    format!("`{v}` is not an address like 127.0.0.1:3000"),
                )
            })?),
            None => None,
        };
        let leptos = leptos::config::get_config_from_str(file).map_err(|e| {
            ConfigError::new("Leptos.toml", format!("[package.metadata.leptos]: {e}"))
        })?;
        let site_addr = site_addr_env.unwrap_or(leptos.site_addr);
        let mode = match env("WXLOGIN_MODE").unwrap_or(defaults.mode).trim() {
            "sandbox" => Mode::Sandbox,
            "wechat" => Mode::Wechat,
            other => {
                return Err(ConfigError::new(
                    "WXLOGIN_MODE",
                    format!("`{other}` is not one of `sandbox`, `wechat`"),
                ));
            }
        };
        let database_url = env("WXLOGIN_DATABASE_URL").unwrap_or(defaults.database_url);
        if crate::store::is_postgres(&database_url) {
            // Checked here so a typo fails at start with the setting's name; the password,
            // if any, is never echoed back.
            let parsed = url::Url::parse(&database_url).map_err(|e| {
                ConfigError::new(
                    "WXLOGIN_DATABASE_URL",
                    format!("not a valid PostgreSQL URL: {e}"),
                )
            })?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(ConfigError::new(
                    "WXLOGIN_DATABASE_URL",
                    "a PostgreSQL URL needs a host, e.g. postgres://wxlogin:PASSWORD@db.internal/wxlogin",
                ));
            }
        } else if !database_url.starts_with("sqlite:") {
            return Err(ConfigError::new(
                "WXLOGIN_DATABASE_URL",
                "must be a SQLite URL such as sqlite://data/wxlogin.db, or a PostgreSQL one such \
                 as postgres://wxlogin:PASSWORD@db.internal/wxlogin",
            ));
        }
        let public_url = match env("WXLOGIN_PUBLIC_URL").or(Some(defaults.public_url)) {
            Some(v) if !v.trim().is_empty() => Some(parse_http_url("WXLOGIN_PUBLIC_URL", &v)?),
            _ if mode == Mode::Wechat => {
                return Err(ConfigError::new(
                    "WXLOGIN_PUBLIC_URL",
                    "missing: in wechat mode WeChat must reach this site, e.g. https://login.example.com",
                ));
            }
            _ => None,
        };
        let wechat = wechat_section(mode, &env, defaults.wechat_api_base)?;
        let qr_expire_seconds = match env("WXLOGIN_QR_EXPIRE_SECONDS") {
            Some(v) => v.trim().parse().map_err(|_| {
                ConfigError::new(
                    "WXLOGIN_QR_EXPIRE_SECONDS",
                    format!("`{v}` is not a whole number of seconds"),
                )
            })?,
            None => defaults.qr_expire_seconds,
        };
        // WeChat accepts up to 2,592,000 s (30 days) for a temporary QR code; below 30 s nobody
        // can scan in time.
        if !(30..=2_592_000).contains(&qr_expire_seconds) {
            return Err(ConfigError::new(
                "WXLOGIN_QR_EXPIRE_SECONDS",
                "must be between 30 and 2592000",
            ));
        }
        let session_idle_seconds = match env("WXLOGIN_SESSION_IDLE_SECONDS") {
            Some(v) => v
                .trim()
                .parse()
                .ok()
                .filter(|s: &i64| *s >= 60)
                .ok_or_else(|| {
                    ConfigError::new(
                        "WXLOGIN_SESSION_IDLE_SECONDS",
                        format!("`{v}` is not a number of seconds >= 60"),
                    )
                })?,
            None => defaults.session_idle_seconds,
        };
        let sms_provider = sms_provider(mode, &env)?;
        let sms = sms::sms(sms_provider, &env)?;
        let ops = ops_section(&env)?;
        let forward = forward_section(&env)?;
        let phones = phones_section(mode, &env)?;
        let brand = brand_section(&env)?;
        Ok(Settings {
            site_addr,
            database_url: DatabaseUrl(database_url),
            mode,
            public_url,
            wechat,
            qr_expire_seconds,
            session_idle_seconds,
            sms_provider,
            sms,
            ops,
            forward,
            phones,
            brand,
        })
    }

    /// Settings for tests and tools: sandbox mode, port 0, the given database.
    pub fn sandbox(database_url: impl Into<String>) -> Settings {
        let mut settings =
            Self::from_sources(DEFAULT_FILE, &|_| None).expect("built-in defaults are valid");
        settings.site_addr = "127.0.0.1:0".parse().expect("static address");
        settings.database_url = DatabaseUrl(database_url.into());
        settings
    }

    /// True when browsers reach the site over https (secure cookies, HSTS).
    pub fn is_https(&self) -> bool {
        self.public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https")
    }
}

/// The `WXLOGIN_WECHAT_*` settings of `mode`: the Official Account in wechat mode, the
/// sandbox's built-in one (each value overridable) in sandbox mode.
fn wechat_section(
    mode: Mode,
    env: &dyn Fn(&str) -> Option<String>,
    default_api_base: String,
) -> Result<WechatSettings, ConfigError> {
    let token_endpoint = match env("WXLOGIN_WECHAT_TOKEN_ENDPOINT")
        .as_deref()
        .map(str::trim)
    {
        None | Some("stable") => TokenEndpoint::Stable,
        Some("classic") => TokenEndpoint::Classic,
        Some(other) => {
            return Err(ConfigError::new(
                "WXLOGIN_WECHAT_TOKEN_ENDPOINT",
                format!("`{other}` is not one of `stable`, `classic`"),
            ));
        }
    };
    let mut aes_keys = Vec::new();
    if let Some(key) = env("WXLOGIN_WECHAT_AES_KEY") {
        aes_keys.push(parse_aes_key("WXLOGIN_WECHAT_AES_KEY", &key)?);
        if let Some(previous) = env("WXLOGIN_WECHAT_AES_KEY_PREVIOUS") {
            aes_keys.push(parse_aes_key("WXLOGIN_WECHAT_AES_KEY_PREVIOUS", &previous)?);
        }
    } else if env("WXLOGIN_WECHAT_AES_KEY_PREVIOUS").is_some() {
        return Err(ConfigError::new(
            "WXLOGIN_WECHAT_AES_KEY_PREVIOUS",
            "set without WXLOGIN_WECHAT_AES_KEY (the previous key only helps during a rotation)",
        ));
    }
    Ok(match mode {
        Mode::Wechat => {
            let required = |name: &'static str| {
                env(name).ok_or_else(|| ConfigError::new(name, "missing: required in wechat mode"))
            };
            WechatSettings {
                appid: parse_appid(&required("WXLOGIN_WECHAT_APPID")?)?,
                secret: parse_secret(required("WXLOGIN_WECHAT_SECRET")?)?,
                token: parse_token(required("WXLOGIN_WECHAT_TOKEN")?)?,
                api_base: parse_http_url(
                    "WXLOGIN_WECHAT_API_BASE",
                    &env("WXLOGIN_WECHAT_API_BASE").unwrap_or(default_api_base),
                )?,
                token_endpoint,
                aes_keys,
            }
        }
        // The sandbox API lives inside this very process; its address is only known once the
        // listener is bound (port 0 in tests), so `Application::build` fills it in.
        Mode::Sandbox => WechatSettings {
            appid: match env("WXLOGIN_WECHAT_APPID") {
                Some(v) => parse_appid(&v)?,
                None => SANDBOX_APPID.into(),
            },
            secret: parse_secret(env("WXLOGIN_WECHAT_SECRET").unwrap_or(SANDBOX_SECRET.into()))?,
            token: parse_token(env("WXLOGIN_WECHAT_TOKEN").unwrap_or(SANDBOX_TOKEN.into()))?,
            api_base: Url::parse("http://127.0.0.1/sandbox/").expect("static URL"),
            token_endpoint,
            aes_keys,
        },
    })
}

/// `WXLOGIN_SMS_PROVIDER`: `console` by default in sandbox mode, a required and deliberate
/// choice in wechat mode.
fn sms_provider(
    mode: Mode,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SmsProvider, ConfigError> {
    Ok(
        match env("WXLOGIN_SMS_PROVIDER").as_deref().map(str::trim) {
            // Codes on stdout deliver nothing and leak into logs: in wechat mode only when asked
            // for in so many words.
            Some("console")
                if mode == Mode::Wechat
                    && env("WXLOGIN_ALLOW_CONSOLE_SMS").as_deref().map(str::trim) != Some("1") =>
            {
                return Err(ConfigError::new(
                    "WXLOGIN_SMS_PROVIDER",
                    "`console` prints codes on stdout and delivers nothing; in wechat mode it \
                 also needs WXLOGIN_ALLOW_CONSOLE_SMS=1",
                ));
            }
            Some("console") => SmsProvider::Console,
            Some("webhook") => SmsProvider::Webhook,
            Some("aliyun") => SmsProvider::Aliyun,
            Some("tencent") => SmsProvider::Tencent,
            None if mode == Mode::Sandbox => SmsProvider::Console,
            // The console sender prints codes: fine on a laptop, a leak in production, so a
            // real deployment must choose it knowingly.
            None => {
                return Err(ConfigError::new(
                    "WXLOGIN_SMS_PROVIDER",
                    "missing: required in wechat mode (`console` prints codes on stdout: development only)",
                ));
            }
            Some(other) => {
                return Err(ConfigError::new(
                    "WXLOGIN_SMS_PROVIDER",
                    format!("`{other}` is not one of `console`, `webhook`, `aliyun`, `tencent`"),
                ));
            }
        },
    )
}

/// The operations and abuse settings: trusted proxies, the QR cap, metrics, shutdown, and what
/// one connection may hold.
/// The `Content-Type` of a logo file, by its extension; `None` for a kind not taken.
pub fn logo_type(path: &std::path::Path) -> Option<&'static str> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        _ => return None,
    })
}

/// The `WXLOGIN_SITE_NAME`, `WXLOGIN_LOGO_FILE`, `WXLOGIN_ACCOUNT_NAME`, `WXLOGIN_PRIVACY_URL`,
/// `WXLOGIN_TERMS_URL` and `WXLOGIN_SUPPORT_CONTACT` settings.
fn brand_section(env: &dyn Fn(&str) -> Option<String>) -> Result<BrandSettings, ConfigError> {
    let text = |name: &'static str, max: usize| match env(name) {
        Some(v) if v.trim().chars().count() > max => Err(ConfigError::new(
            name,
            format!("longer than {max} characters"),
        )),
        Some(v) if v.chars().any(char::is_control) => {
            Err(ConfigError::new(name, "has control characters"))
        }
        other => Ok(other.map(|v| v.trim().to_owned())),
    };
    let link = |name: &'static str| {
        env(name)
            .map(|v| parse_http_url(name, &v).map(String::from))
            .transpose()
    };
    let logo_file = match env("WXLOGIN_LOGO_FILE") {
        Some(path) => {
            let path = std::path::PathBuf::from(path.trim());
            if logo_type(&path).is_none() {
                return Err(ConfigError::new(
                    "WXLOGIN_LOGO_FILE",
                    format!("{}: not a .png, .svg, .jpg or .webp file", path.display()),
                ));
            }
            Some(path)
        }
        None => None,
    };
    Ok(BrandSettings {
        site_name: text("WXLOGIN_SITE_NAME", 60)?,
        logo_file,
        account_name: text("WXLOGIN_ACCOUNT_NAME", 60)?,
        privacy_url: link("WXLOGIN_PRIVACY_URL")?,
        terms_url: link("WXLOGIN_TERMS_URL")?,
        support_contact: text("WXLOGIN_SUPPORT_CONTACT", 120)?,
    })
}

// What the sandbox's "follow us" card encodes: the shape of an account's QR link, leading
// nowhere here.
const SANDBOX_FOLLOW_QR_URL: &str = "http://weixin.qq.com/r/wxlogin-sandbox";

/// The `WXLOGIN_WECHAT_OAUTH*`, `WXLOGIN_PHONE_LOGIN` and `WXLOGIN_FOLLOW_*` settings.
fn phones_section(
    mode: Mode,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PhoneSettings, ConfigError> {
    let on_off = |name: &'static str| match env(name).as_deref().map(str::trim) {
        None | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(ConfigError::new(
            name,
            format!("`{other}` is not one of `on`, `off`"),
        )),
    };
    let wechat_oauth = on_off("WXLOGIN_WECHAT_OAUTH")?;
    let oauth_base = match mode {
        // Filled in by `Application::build` from the public URL, as browsers go there.
        Mode::Sandbox => Url::parse("http://127.0.0.1/sandbox/").expect("static URL"),
        Mode::Wechat => parse_http_url(
            "WXLOGIN_WECHAT_OAUTH_BASE",
            &env("WXLOGIN_WECHAT_OAUTH_BASE").unwrap_or("https://open.weixin.qq.com".into()),
        )?,
    };
    let phone_login = match env("WXLOGIN_PHONE_LOGIN").as_deref().map(str::trim) {
        None | Some("bound") => PhoneLoginPolicy::Bound,
        Some("open") => PhoneLoginPolicy::Open,
        Some("off") => PhoneLoginPolicy::Off,
        Some(other) => {
            return Err(ConfigError::new(
                "WXLOGIN_PHONE_LOGIN",
                format!("`{other}` is not one of `bound`, `open`, `off`"),
            ));
        }
    };
    let follow_card = on_off("WXLOGIN_FOLLOW_CARD")?;
    let follow_qr_url = match env("WXLOGIN_FOLLOW_QR_URL") {
        Some(v) => Some(parse_http_url("WXLOGIN_FOLLOW_QR_URL", &v)?.to_string()),
        None if mode == Mode::Sandbox => Some(SANDBOX_FOLLOW_QR_URL.to_owned()),
        None => None,
    };
    Ok(PhoneSettings {
        wechat_oauth,
        oauth_base,
        phone_login,
        follow_qr_url: follow_qr_url.filter(|_| follow_card),
    })
}

fn forward_section(env: &dyn Fn(&str) -> Option<String>) -> Result<ForwardSettings, ConfigError> {
    let allowed_return_hosts = match env("WXLOGIN_ALLOWED_RETURN_HOSTS") {
        Some(list) => list
            .split(',')
            .filter(|item| !item.trim().is_empty())
            .map(|item| {
                HostPattern::parse(item).ok_or_else(|| {
                    ConfigError::new(
                        "WXLOGIN_ALLOWED_RETURN_HOSTS",
                        format!(
                            "`{}` is not a host like app.example.com or .example.com",
                            item.trim()
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let cookie_domain = match env("WXLOGIN_COOKIE_DOMAIN") {
        Some(v) => {
            let pattern = HostPattern::parse(&v).ok_or_else(|| {
                ConfigError::new(
                    "WXLOGIN_COOKIE_DOMAIN",
                    format!("`{v}` is not a domain like example.com"),
                )
            })?;
            Some(pattern.host)
        }
        None => None,
    };
    let send_phone = match env("WXLOGIN_FORWARD_AUTH_PHONE").as_deref().map(str::trim) {
        None | Some("0" | "false" | "no") => false,
        Some("1" | "true" | "yes") => true,
        Some(other) => {
            return Err(ConfigError::new(
                "WXLOGIN_FORWARD_AUTH_PHONE",
                format!("`{other}` is not 1 or 0"),
            ));
        }
    };
    Ok(ForwardSettings {
        allowed_return_hosts,
        cookie_domain,
        send_phone,
    })
}

fn ops_section(env: &dyn Fn(&str) -> Option<String>) -> Result<OpsSettings, ConfigError> {
    Ok(OpsSettings {
        trusted_proxies: match env("WXLOGIN_TRUSTED_PROXIES") {
            Some(list) => list
                .split(',')
                .filter(|item| !item.trim().is_empty())
                .map(|item| {
                    IpNet::parse(item).ok_or_else(|| {
                        ConfigError::new(
                            "WXLOGIN_TRUSTED_PROXIES",
                            format!(
                                "`{}` is not an IP address or network like 10.0.0.0/8",
                                item.trim()
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        },
        oidc_token_rate: parse_number(
            "WXLOGIN_OIDC_TOKEN_RATE",
            env("WXLOGIN_OIDC_TOKEN_RATE"),
            200,
            1..=1_000_000,
        )?,
        qr_per_ip_per_hour: parse_number(
            "WXLOGIN_QR_PER_IP_PER_HOUR",
            env("WXLOGIN_QR_PER_IP_PER_HOUR"),
            60,
            1..=1_000_000,
        )?,
        metrics_addr: match env("WXLOGIN_METRICS_ADDR") {
            Some(v) => Some(v.trim().parse().map_err(|_| {
                ConfigError::new(
                    "WXLOGIN_METRICS_ADDR",
                    format!("`{v}` is not an address like 127.0.0.1:9100"),
                )
            })?),
            None => None,
        },
        shutdown_grace_seconds: parse_number(
            "WXLOGIN_SHUTDOWN_GRACE_SECONDS",
            env("WXLOGIN_SHUTDOWN_GRACE_SECONDS"),
            10,
            1..=600,
        )?,
        header_timeout_seconds: parse_number(
            "WXLOGIN_HEADER_TIMEOUT_SECONDS",
            env("WXLOGIN_HEADER_TIMEOUT_SECONDS"),
            10,
            1..=300,
        )?,
        max_connections: env("WXLOGIN_MAX_CONNECTIONS")
            .map(|v| parse_number("WXLOGIN_MAX_CONNECTIONS", Some(v), 0, 1..=10_000_000))
            .transpose()?,
    })
}

/// A whole number from the environment, within `range`, or `default` when unset.
fn parse_number<T>(
    name: &'static str,
    value: Option<String>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(v) = value else {
        return Ok(default);
    };
    v.trim()
        .parse::<T>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            ConfigError::new(
                name,
                format!(
                    "`{v}` is not a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

fn parse_http_url(name: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim())
        .map_err(|e| ConfigError::new(name, format!("`{value}` is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(
            name,
            format!("`{value}` is not an http(s) URL"),
        ));
    }
    Ok(url)
}

/// AppIDs are `wx` followed by 16 hex-like characters.
fn parse_appid(value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    if v.len() == 18 && v.starts_with("wx") && v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(v.to_owned())
    } else {
        Err(ConfigError::new(
            "WXLOGIN_WECHAT_APPID",
            "must look like wx1234567890abcdef (wx + 16 letters or digits)",
        ))
    }
}

fn parse_secret(value: String) -> Result<SecretString, ConfigError> {
    let v = value.trim();
    if v.len() >= 16 && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(SecretString::from(v.to_owned()))
    } else {
        // Never echo the value: it is a secret.
        Err(ConfigError::new(
            "WXLOGIN_WECHAT_SECRET",
            "must be the 32-character AppSecret from the WeChat console",
        ))
    }
}

/// The console allows 3 to 32 letters and digits for the callback Token.
fn parse_token(value: String) -> Result<SecretString, ConfigError> {
    let v = value.trim();
    if (3..=32).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(SecretString::from(v.to_owned()))
    } else {
        Err(ConfigError::new(
            "WXLOGIN_WECHAT_TOKEN",
            "must be 3 to 32 letters or digits, as set in the WeChat console",
        ))
    }
}

/// The 43-character EncodingAESKey from the WeChat console.
fn parse_aes_key(name: &'static str, value: &str) -> Result<AesKey, ConfigError> {
    // The error names the problem (length, character position) but never echoes the key.
    AesKey::parse(value.trim()).map_err(|e| {
        ConfigError::new(
            name,
            format!("must be the 43-character EncodingAESKey ({e})"),
        )
    })
}

/// Reads a secret for use; one place to grep for every exposure.
pub fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod forward_tests {
    use super::*;

    #[test]
    fn return_hosts_match_exactly_or_as_subdomains() {
        let exact = HostPattern::parse("App.Example.com").unwrap();
        assert!(exact.matches("app.example.com"));
        assert!(!exact.matches("evil-app.example.com") && !exact.matches("x.app.example.com"));
        let domain = HostPattern::parse(".example.com").unwrap();
        assert!(domain.matches("a.example.com") && domain.matches("example.com"));
        assert!(!domain.matches("badexample.com") && !domain.matches("example.com.evil"));
        for bad in ["", ".", "a..b", "exa mple.com", "http://x", "x:80"] {
            assert!(HostPattern::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn forward_settings_are_read_and_checked_by_name() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let ok = forward_section(&env(&[
            (
                "WXLOGIN_ALLOWED_RETURN_HOSTS",
                "app.example.com, .corp.example",
            ),
            ("WXLOGIN_COOKIE_DOMAIN", ".example.com"),
            ("WXLOGIN_FORWARD_AUTH_PHONE", "1"),
        ]))
        .unwrap();
        assert_eq!(ok.allowed_return_hosts.len(), 2);
        assert_eq!(ok.cookie_domain.as_deref(), Some("example.com"));
        assert!(ok.send_phone);
        let err =
            forward_section(&env(&[("WXLOGIN_ALLOWED_RETURN_HOSTS", "https://x")])).unwrap_err();
        assert_eq!(err.name, "WXLOGIN_ALLOWED_RETURN_HOSTS");
        let err = forward_section(&env(&[("WXLOGIN_FORWARD_AUTH_PHONE", "maybe")])).unwrap_err();
        assert_eq!(err.name, "WXLOGIN_FORWARD_AUTH_PHONE");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_sources(DEFAULT_FILE, &move |k| map.get(k).cloned())
    }

    const WECHAT: &[(&str, &str)] = &[
        ("WXLOGIN_MODE", "wechat"),
        ("WXLOGIN_PUBLIC_URL", "https://login.example.com"),
        ("WXLOGIN_WECHAT_APPID", "wx1234567890abcdef"),
        ("WXLOGIN_WECHAT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("WXLOGIN_WECHAT_TOKEN", "mytoken"),
        ("WXLOGIN_SMS_PROVIDER", "webhook"),
        ("WXLOGIN_SMS_WEBHOOK_URL", "https://sms.example.com/send"),
        (
            "WXLOGIN_SMS_WEBHOOK_SECRET",
            "0123456789abcdef0123456789abcdef",
        ),
    ];

    #[test]
    fn the_sandbox_appid_is_a_valid_appid() {
        // So a sandbox can stand in for WeChat behind an app in wechat mode, too.
        assert_eq!(parse_appid(SANDBOX_APPID).unwrap(), SANDBOX_APPID);
    }

    #[test]
    fn defaults_are_sandbox_on_port_3000() {
        let s = load(&[]).unwrap();
        assert_eq!(s.mode, Mode::Sandbox);
        assert_eq!(s.site_addr.port(), 3000);
        assert_eq!(s.database_url, "sqlite://data/wxlogin.db");
        assert_eq!(s.qr_expire_seconds, 300);
        assert_eq!(s.wechat.token_endpoint, TokenEndpoint::Stable);
    }

    #[test]
    fn a_postgres_url_is_taken_and_its_password_never_shown() {
        let s = load(&[(
            "WXLOGIN_DATABASE_URL",
            "postgres://wxlogin:s3cret@db.internal:5432/wxlogin?sslmode=require",
        )])
        .unwrap();
        assert!(crate::store::is_postgres(&s.database_url));
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
        for bad in ["postgres://", "postgres:///nohost", "mysql://x/y"] {
            let e = load(&[("WXLOGIN_DATABASE_URL", bad)])
                .unwrap_err()
                .to_string();
            assert!(e.contains("WXLOGIN_DATABASE_URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let s = load(&[
            ("LEPTOS_SITE_ADDR", "0.0.0.0:8080"),
            ("WXLOGIN_DATABASE_URL", "sqlite://elsewhere.db"),
        ])
        .unwrap();
        assert_eq!(s.site_addr.port(), 8080);
        assert_eq!(s.database_url, "sqlite://elsewhere.db");
    }

    #[test]
    fn wechat_mode_needs_every_value_and_names_the_missing_one() {
        assert!(load(WECHAT).is_ok());
        for (missing, _) in &WECHAT[1..] {
            let vars: Vec<_> = WECHAT
                .iter()
                .copied()
                .filter(|(k, _)| k != missing)
                .collect();
            assert_eq!(load(&vars).unwrap_err().name, *missing);
        }
    }

    #[test]
    fn console_sms_in_wechat_mode_must_be_asked_for() {
        let mut vars: Vec<_> = WECHAT
            .iter()
            .copied()
            .filter(|(k, _)| !k.starts_with("WXLOGIN_SMS_"))
            .collect();
        vars.push(("WXLOGIN_SMS_PROVIDER", "console"));
        let err = load(&vars).unwrap_err();
        assert_eq!(err.name, "WXLOGIN_SMS_PROVIDER");
        assert!(err.problem.contains("WXLOGIN_ALLOW_CONSOLE_SMS=1"), "{err}");
        vars.push(("WXLOGIN_ALLOW_CONSOLE_SMS", "1"));
        assert_eq!(load(&vars).unwrap().sms_provider, SmsProvider::Console);
        // The sandbox needs no such word.
        assert!(load(&[("WXLOGIN_SMS_PROVIDER", "console")]).is_ok());
    }

    #[test]
    fn connection_limits_have_sane_defaults_and_bounds() {
        let s = load(&[]).unwrap();
        assert_eq!(s.ops.header_timeout_seconds, 10);
        assert_eq!(s.ops.max_connections, None);
        let s = load(&[
            ("WXLOGIN_HEADER_TIMEOUT_SECONDS", "3"),
            ("WXLOGIN_MAX_CONNECTIONS", "500"),
        ])
        .unwrap();
        assert_eq!(s.ops.header_timeout_seconds, 3);
        assert_eq!(s.ops.max_connections, Some(500));
        for (name, bad) in [
            ("WXLOGIN_HEADER_TIMEOUT_SECONDS", "0"),
            ("WXLOGIN_MAX_CONNECTIONS", "0"),
            ("WXLOGIN_MAX_CONNECTIONS", "many"),
        ] {
            assert_eq!(load(&[(name, bad)]).unwrap_err().name, name);
        }
        // Room is left for the database and outgoing calls.
        assert_eq!(default_max_connections(1024), 1024 - 128 - 51);
        assert!(default_max_connections(1_048_576) > 900_000);
        assert_eq!(default_max_connections(100), 16);
    }

    #[test]
    fn malformed_values_are_named_and_secrets_not_echoed() {
        let mut vars: Vec<_> = WECHAT
            .iter()
            .copied()
            .filter(|(k, _)| *k != "WXLOGIN_WECHAT_SECRET")
            .collect();
        vars.push(("WXLOGIN_WECHAT_SECRET", "short"));
        let err = load(&vars).unwrap_err();
        assert_eq!(err.name, "WXLOGIN_WECHAT_SECRET");
        assert!(!err.to_string().contains("short"));
        let err = load(&[("WXLOGIN_MODE", "prod")]).unwrap_err();
        assert_eq!(err.name, "WXLOGIN_MODE");
        let err = load(&[("LEPTOS_SITE_ADDR", "localhost")]).unwrap_err();
        assert_eq!(err.name, "LEPTOS_SITE_ADDR");
        let err = load(&[("WXLOGIN_QR_EXPIRE_SECONDS", "5")]).unwrap_err();
        assert_eq!(err.name, "WXLOGIN_QR_EXPIRE_SECONDS");
    }

    #[test]
    fn aes_keys_are_checked_at_start() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        let s = load(&[
            ("WXLOGIN_WECHAT_AES_KEY", key),
            ("WXLOGIN_WECHAT_AES_KEY_PREVIOUS", key),
        ])
        .unwrap();
        assert_eq!(s.wechat.aes_keys.len(), 2);
        let err = load(&[("WXLOGIN_WECHAT_AES_KEY", &key[..42])]).unwrap_err();
        assert_eq!(err.name, "WXLOGIN_WECHAT_AES_KEY");
        assert!(!err.to_string().contains(&key[..42]), "{err}");
        let err = load(&[(
            "WXLOGIN_WECHAT_AES_KEY",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF!",
        )])
        .unwrap_err();
        assert_eq!(err.name, "WXLOGIN_WECHAT_AES_KEY");
        let err = load(&[("WXLOGIN_WECHAT_AES_KEY_PREVIOUS", key)]).unwrap_err();
        assert_eq!(err.name, "WXLOGIN_WECHAT_AES_KEY_PREVIOUS");
    }

    #[test]
    fn operations_settings_are_parsed_and_named() {
        let s = load(&[
            ("WXLOGIN_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            ("WXLOGIN_QR_PER_IP_PER_HOUR", "5"),
            ("WXLOGIN_METRICS_ADDR", "127.0.0.1:9100"),
        ])
        .unwrap();
        assert_eq!(s.ops.trusted_proxies.len(), 2);
        assert!(s.ops.trusted_proxies[0].contains("10.1.2.3".parse().unwrap()));
        assert!(!s.ops.trusted_proxies[0].contains("11.0.0.1".parse().unwrap()));
        assert!(s.ops.trusted_proxies[1].contains("::1".parse().unwrap()));
        assert_eq!(s.ops.qr_per_ip_per_hour, 5);
        assert_eq!(s.ops.metrics_addr.unwrap().port(), 9100);
        for (name, value) in [
            ("WXLOGIN_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("WXLOGIN_QR_PER_IP_PER_HOUR", "0"),
            ("WXLOGIN_METRICS_ADDR", "9100"),
            ("WXLOGIN_SHUTDOWN_GRACE_SECONDS", "-1"),
        ] {
            assert_eq!(load(&[(name, value)]).unwrap_err().name, name);
        }
    }

    #[test]
    fn ip_networks_match_mapped_addresses() {
        let net = IpNet::parse("127.0.0.0/8").unwrap();
        assert!(net.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(
            IpNet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(IpNet::parse("not-an-ip").is_none());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = load(WECHAT).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("0123456789abcdef0123456789abcdef"));
        assert!(!shown.contains("mytoken"));
    }
}
