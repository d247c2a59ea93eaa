//! The sandbox: a stand-in for WeChat's servers and for a person's phone, built in so a
//! newcomer (and every test) can run the whole flow with no Official Account and no internet.
//!
//! The app reaches it through its real HTTP client (only the API base differs), and its phone
//! "scans" by sending the real signed callback over HTTP. It is mounted in sandbox mode only:
//! in `wechat` mode every `/sandbox` path is a 404, since a sandbox scan logs anyone in as
//! anyone.

mod api;
mod phone;
mod web;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Extension, Router,
    routing::{get, post},
};
use url::Url;

use crate::{
    config::expose,
    state::AppState,
    util::{now, random_hex},
    wechat::{crypto, message, signature},
};

/// The sandbox's own state.
pub struct Sandbox {
    http: reqwest::Client,
    /// Where its "WeChat servers" deliver callbacks: this process's own `/wechat/callback`.
    callback_url: Url,
    /// Misbehaviour ordered by a test: applied to the next `cgi-bin` requests.
    faults: Mutex<Faults>,
}

/// How the sandbox's API should misbehave, for tests of the client's error handling.
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
pub struct Faults {
    /// Answer the next `times` API requests with this errcode (-1 busy, 45009 quota, ...).
    #[serde(default)]
    pub errcode: Option<i64>,
    /// Wait this long before answering the next `times` requests.
    #[serde(default)]
    pub delay_ms: u64,
    /// How many requests the fault applies to.
    #[serde(default)]
    pub times: u32,
    /// Expire every token now (the next call gets 42001).
    #[serde(default)]
    pub expire_tokens: bool,
}

impl Sandbox {
    /// The fault for the request being answered now, if any.
    fn next_fault(&self) -> Option<(Option<i64>, Duration)> {
        let mut faults = self.faults.lock().expect("faults lock");
        if faults.times == 0 {
            return None;
        }
        faults.times -= 1;
        Some((faults.errcode, Duration::from_millis(faults.delay_ms)))
    }
}

/// The sandbox Official Account's own id (the `ToUserName` of events).
pub const ACCOUNT_ID: &str = "gh_sandbox000001";

impl Sandbox {
    /// A sandbox delivering callbacks to `callback_url`.
    pub fn new(callback_url: Url) -> Arc<Sandbox> {
        let http = reqwest::Client::builder()
            // WeChat gives up on a callback after 5 s.
            .timeout(Duration::from_secs(5))
            .build()
            .expect("TLS backend available");
        Arc::new(Sandbox {
            http,
            callback_url,
            faults: Mutex::default(),
        })
    }
}

/// Routes under `/sandbox`.
pub fn router(sandbox: Arc<Sandbox>) -> Router<AppState> {
    crate::pages::serve(Router::new(), phone::SandboxPages)
        .route("/sandbox/cgi-bin/token", get(api::token))
        .route("/sandbox/cgi-bin/stable_token", post(api::stable_token))
        .route("/sandbox/cgi-bin/qrcode/create", post(api::create_qr))
        .route("/sandbox/cgi-bin/showqrcode", get(api::show_qr))
        .route("/sandbox/cgi-bin/user/info", get(api::user_info))
        .route(
            "/sandbox/sns/oauth2/access_token",
            get(api::oauth_access_token),
        )
        .route("/sandbox/connect/oauth2/authorize", post(web::choose))
        .route("/sandbox/scan/{ticket}", post(phone::scan_form))
        .route("/sandbox/api/scan", post(phone::scan_api))
        .route("/sandbox/api/sms", get(phone::sms_api))
        .route("/sandbox/api/faults", post(api::faults))
        .route("/sandbox/api/expire", post(api::expire))
        // The sandbox's own state reaches its handlers here, so the application state needn't
        // know the sandbox.
        .layer(Extension(sandbox))
}

/// What a scan did.
#[derive(Debug, serde::Serialize)]
pub struct ScanOutcome {
    /// The text WeChat would show in the chat (empty when the account didn't reply).
    pub reply: String,
    /// `subscribe` (first meeting with the account) or `SCAN`.
    pub event: &'static str,
    /// The HTTP status of the app's callback answer.
    pub callback_status: u16,
    /// The openid that scanned.
    pub openid: String,
}

/// Why a scan didn't reach the app.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Unknown or expired ticket (WeChat itself says so and sends no event).
    #[error("unknown or expired ticket")]
    BadTicket,
    /// Not a plausible openid.
    #[error("invalid openid")]
    BadOpenid,
    /// The callback failed.
    #[error("callback failed: {0}")]
    Callback(String),
    /// The sandbox's own database failed.
    #[error(transparent)]
    Db(#[from] crate::store::StoreError),
}

/// Plausible openids: 1 to 64 of `A-Za-z0-9-_` (real ones are 28 characters).
pub fn valid_openid(openid: &str) -> bool {
    (1..=64).contains(&openid.len())
        && openid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Scans `ticket` as `openid`: sends the signed event to the app exactly as WeChat would
/// (`subscribe` with `qrscene_` the first time this person meets the account, `SCAN` after)
/// and returns what WeChat would show.
pub async fn scan(
    state: &AppState,
    sandbox: &Sandbox,
    ticket: &str,
    openid: &str,
) -> Result<ScanOutcome, ScanError> {
    if !valid_openid(openid) {
        return Err(ScanError::BadOpenid);
    }
    let store = &state.store.sandbox;
    let scene = store.ticket_scene(ticket, now()).await?;
    let scene = scene.ok_or(ScanError::BadTicket)?;
    let following = store
        .follower(openid)
        .await?
        .map(|(following, _)| following);
    let first_follow = following != Some(true);
    if first_follow {
        store.follow(openid, now()).await?;
    }
    let create_time = now();
    let xml = message::scan_event_xml(
        ACCOUNT_ID,
        openid,
        create_time,
        first_follow,
        &scene,
        ticket,
    );
    let (status, body) = deliver(state, sandbox, &xml, openid).await?;
    let body = match state.settings.wechat.aes_keys.first() {
        // In safe mode the reply comes back encrypted: check and open it, as WeChat does.
        Some(key) if body.trim() != "success" && !body.trim().is_empty() => {
            let wechat = &state.settings.wechat;
            crypto::decrypt_reply(key, expose(&wechat.token), &wechat.appid, &body)
                .map_err(|e| ScanError::Callback(format!("encrypted reply refused: {e}")))?
        }
        _ => body,
    };
    let reply = message::parse_text_reply(&body)
        .map(|r| r.content)
        .unwrap_or_default();
    Ok(ScanOutcome {
        reply,
        event: if first_follow { "subscribe" } else { "SCAN" },
        callback_status: status,
        openid: openid.to_owned(),
    })
}

/// POSTs an event to the app's callback, signed with the account's token, and in safe mode
/// encrypted with its EncodingAESKey.
async fn deliver(
    state: &AppState,
    sandbox: &Sandbox,
    xml: &str,
    openid: &str,
) -> Result<(u16, String), ScanError> {
    let wechat = &state.settings.wechat;
    let timestamp = now().to_string();
    let nonce = random_hex(8);
    let token = expose(&wechat.token);
    let sig = signature::sign(&[token, &timestamp, &nonce]);
    let mut query = vec![
        ("signature", sig),
        ("timestamp", timestamp.clone()),
        ("nonce", nonce.clone()),
        ("openid", openid.to_owned()),
    ];
    let body = match wechat.aes_keys.first() {
        Some(key) => {
            let mut random = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
            let encrypted = crypto::encrypt(key, &wechat.appid, xml, random);
            query.push(("encrypt_type", "aes".to_owned()));
            query.push((
                "msg_signature",
                signature::sign(&[token, &timestamp, &nonce, &encrypted]),
            ));
            format!(
                "<xml><ToUserName><![CDATA[{ACCOUNT_ID}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
            )
        }
        None => xml.to_owned(),
    };
    let response = sandbox
        .http
        .post(sandbox.callback_url.clone())
        .query(&query)
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .map_err(|e| ScanError::Callback(e.without_url().to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| ScanError::Callback(e.without_url().to_string()))?;
    if status != 200 {
        return Err(ScanError::Callback(format!("HTTP {status}")));
    }
    Ok((status, body))
}
