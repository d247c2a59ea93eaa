//! `GET|POST /wechat/callback`: where WeChat tells us about scans, follows and messages.
//!
//! Nothing changes unless the query signature checks out. Each delivery is recorded with its
//! reply in the same transaction as its effect, keyed by FromUserName + CreateTime + Event:
//! WeChat retries a delivery it got no answer to within 5 s (3 tries in all), and a retry,
//! even one arriving while the first is still being handled, waits for the first to commit and
//! then gets the same reply with no second effect.

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use sqlx::SqliteConnection;

use crate::{
    client_info::describe_user_agent,
    config::expose,
    db::{now, random_hex},
    error::{AppError, AppResult},
    login::scene::{self, Outcome, SceneState, Status},
    metrics::Metrics,
    state::AppState,
    ui::{Lang, fill},
    users,
    wechat::{
        crypto,
        message::{self, Incoming, Kind},
        signature,
    },
};

// A signed request whose timestamp is further than this from our clock is refused, so a
// captured request can't be replayed days later.
const MAX_CLOCK_SKEW_SECONDS: i64 = 300;

/// The query WeChat signs every callback with.
#[derive(Debug, Deserialize)]
struct CallbackQuery {
    signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
    echostr: Option<String>,
    encrypt_type: Option<String>,
    msg_signature: Option<String>,
}

/// A callback whose query signature and timestamp checked out.
pub struct Verified {
    /// The query signature.
    pub signature: String,
    /// The signed timestamp.
    pub timestamp: String,
    /// The signed nonce.
    pub nonce: String,
    echostr: Option<String>,
    encrypt_type: Option<String>,
    msg_signature: Option<String>,
}

fn verify(state: &AppState, raw_query: Option<&str>) -> AppResult<Verified> {
    let query: CallbackQuery = serde_urlencoded::from_str(raw_query.unwrap_or(""))
        .map_err(|_| AppError::BadRequest("query not understood".into()))?;
    let (Some(sig), Some(timestamp), Some(nonce)) = (query.signature, query.timestamp, query.nonce)
    else {
        return Err(AppError::Forbidden);
    };
    let token = expose(&state.settings.wechat.token);
    if !signature::verify(token, &timestamp, &nonce, &sig) {
        tracing::warn!("callback refused: bad signature");
        return Err(AppError::Forbidden);
    }
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (now() - t).abs() <= MAX_CLOCK_SKEW_SECONDS);
    if !fresh {
        tracing::warn!("callback refused: timestamp too far from our clock");
        return Err(AppError::Forbidden);
    }
    Ok(Verified {
        signature: sig,
        timestamp,
        nonce,
        echostr: query.echostr,
        encrypt_type: query.encrypt_type,
        msg_signature: query.msg_signature,
    })
}

/// `GET /wechat/callback`: the console's URL check; answers `echostr` when signed by our token.
pub async fn check(State(state): State<AppState>, RawQuery(q): RawQuery) -> AppResult<Response> {
    let verified = verify(&state, q.as_deref())?;
    let echostr = verified.echostr.unwrap_or_default();
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        echostr,
    )
        .into_response())
}

/// `POST /wechat/callback`: an event or message, in plaintext or safe (encrypted) mode.
///
/// With an EncodingAESKey configured, only encrypted deliveries are accepted (compatible mode
/// sends both forms; the encrypted one is used): the plaintext signature doesn't cover the body,
/// `msg_signature` does.
pub async fn receive(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> AppResult<Response> {
    let request = verify(&state, q.as_deref())?;
    let body =
        std::str::from_utf8(&body).map_err(|_| AppError::BadRequest("body is not UTF-8".into()))?;
    let wechat = &state.settings.wechat;
    let token = expose(&wechat.token);
    let keys = &wechat.aes_keys;
    let (incoming, encrypted) = match request.encrypt_type.as_deref() {
        Some("aes") if keys.is_empty() => {
            tracing::warn!("encrypted callback refused: no EncodingAESKey configured");
            return Err(AppError::BadRequest("safe mode is not configured".into()));
        }
        Some("aes") => {
            let envelope = message::parse_envelope(body).map_err(xml_refused)?;
            let msg_signature = request.msg_signature.as_deref().unwrap_or("");
            if !signature::verify_msg(
                token,
                &request.timestamp,
                &request.nonce,
                &envelope.encrypt,
                msg_signature,
            ) {
                tracing::warn!("callback refused: bad msg_signature");
                return Err(AppError::Forbidden);
            }
            // Which step failed stays in our log only: telling the sender would make this a
            // padding oracle.
            let xml = crypto::decrypt_any(keys, &wechat.appid, &envelope.encrypt).map_err(|e| {
                tracing::warn!(error = %e, "callback refused: could not decrypt");
                AppError::Forbidden
            })?;
            (message::parse(&xml).map_err(xml_refused)?, true)
        }
        None | Some("raw") if !keys.is_empty() => {
            tracing::warn!("plaintext callback refused: safe mode is configured");
            return Err(AppError::Forbidden);
        }
        None | Some("raw") => (message::parse(body).map_err(xml_refused)?, false),
        Some(_) => return Err(AppError::BadRequest("unknown encrypt_type".into())),
    };
    let started = std::time::Instant::now();
    let reply = handle(&state, &request, &incoming).await?;
    state.metrics.observe_callback(started.elapsed());
    let Some(content) = reply.filter(|c| !c.is_empty()) else {
        // "success" (or an empty body) tells WeChat not to retry and to show nothing.
        return Ok((StatusCode::OK, "success").into_response());
    };
    let mut xml = message::text_reply(&incoming.from_user, &incoming.to_user, now(), &content);
    if encrypted {
        xml = crypto::encrypt_reply(&keys[0], token, &wechat.appid, &xml, now(), &random_hex(8));
    }
    Ok((
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        xml,
    )
        .into_response())
}

fn xml_refused(e: message::ParseError) -> AppError {
    tracing::warn!(error = %e, "callback refused: XML not understood");
    AppError::BadRequest("XML not understood".into())
}

/// The "Event" part of a delivery's identity. WeChat's key is FromUserName + CreateTime (+ Event);
/// CreateTime has one-second resolution, so two different codes scanned by one person within a
/// second would look like one delivery. The scene (identical in a retry) tells them apart.
fn delivery_event(kind: &Kind) -> String {
    match kind {
        Kind::Subscribe { scene: Some(scene) } | Kind::Scan { scene } => {
            format!("{}:{scene}", kind.name())
        }
        other => other.name().to_owned(),
    }
}

/// Applies a verified delivery once and returns the text to show the person in WeChat.
pub async fn handle(
    state: &AppState,
    request: &Verified,
    incoming: &Incoming,
) -> AppResult<Option<String>> {
    let event = delivery_event(&incoming.kind);
    let _one_writer = crate::db::CALLBACK_WRITES.lock().await;
    let mut tx = state.db.begin().await?;
    // An exact replay of a signed request gets the first answer, whatever its body says.
    let new_request = sqlx::query(
        "INSERT INTO callback_requests (signature, timestamp, nonce, reply, received_at) \
         VALUES (?, ?, ?, NULL, ?) ON CONFLICT DO NOTHING",
    )
    .bind(&request.signature)
    .bind(&request.timestamp)
    .bind(&request.nonce)
    .bind(now())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !new_request {
        let reply: Option<String> = sqlx::query_scalar(
            "SELECT reply FROM callback_requests WHERE signature = ? AND timestamp = ? AND nonce = ?",
        )
        .bind(&request.signature)
        .bind(&request.timestamp)
        .bind(&request.nonce)
        .fetch_one(&mut *tx)
        .await?;
        tracing::info!("replayed request answered from record");
        return Ok(reply);
    }
    // Writing first takes SQLite's write lock, so a concurrent retry of the same delivery waits
    // here until we commit, then finds our row.
    let fresh = sqlx::query(
        "INSERT INTO callback_deliveries (from_user, create_time, event, reply, received_at) \
         VALUES (?, ?, ?, NULL, ?) ON CONFLICT DO NOTHING",
    )
    .bind(&incoming.from_user)
    .bind(incoming.create_time)
    .bind(&event)
    .bind(now())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        let reply: Option<String> = sqlx::query_scalar(
            "SELECT reply FROM callback_deliveries WHERE from_user = ? AND create_time = ? AND event = ?",
        )
        .bind(&incoming.from_user)
        .bind(incoming.create_time)
        .bind(&event)
        .fetch_one(&mut *tx)
        .await?;
        tracing::info!(
            event = incoming.kind.name(),
            "repeated delivery answered from record"
        );
        remember_reply(&mut tx, request, reply.as_deref()).await?;
        tx.commit().await?;
        return Ok(reply);
    }

    let openid = incoming.from_user.as_str();
    let (reply, woken) = match &incoming.kind {
        Kind::Subscribe { scene: Some(scene) } | Kind::Scan { scene } => {
            set_following(&mut tx, openid, true).await?;
            let first_follow = matches!(incoming.kind, Kind::Subscribe { .. });
            Metrics::inc(if first_follow {
                &state.metrics.scans_subscribe
            } else {
                &state.metrics.scans_scan
            });
            scan(&mut tx, scene, openid, &state.metrics).await?
        }
        Kind::Subscribe { scene: None } => {
            set_following(&mut tx, openid, true).await?;
            (Some(Lang::Zh.text().reply_welcome.to_owned()), None)
        }
        Kind::Unsubscribe => {
            set_following(&mut tx, openid, false).await?;
            (None, None)
        }
        Kind::Text { .. } => (Some(Lang::Zh.text().reply_help.to_owned()), None),
        Kind::Other { .. } => (None, None),
    };
    sqlx::query(
        "UPDATE callback_deliveries SET reply = ? WHERE from_user = ? AND create_time = ? AND event = ?",
    )
    .bind(reply.as_deref().unwrap_or(""))
    .bind(&incoming.from_user)
    .bind(incoming.create_time)
    .bind(&event)
    .execute(&mut *tx)
    .await?;
    remember_reply(&mut tx, request, reply.as_deref()).await?;
    tx.commit().await?;
    if let Some(owner) = woken {
        state.hub.notify(&owner);
        // A browser is woken exactly when a login event was recorded: tell the dashboards.
        state.login_feed.publish();
    }
    tracing::info!(event = incoming.kind.name(), "callback handled");
    Ok(reply)
}

/// `HH:MM` in China Standard Time (UTC+8, no daylight saving), the clock WeChat users read.
fn beijing_time(unix: i64) -> String {
    let minutes = (unix + 8 * 3600).rem_euclid(86_400) / 60;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

async fn remember_reply(
    conn: &mut SqliteConnection,
    request: &Verified,
    reply: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE callback_requests SET reply = ? WHERE signature = ? AND timestamp = ? AND nonce = ?",
    )
    .bind(reply.unwrap_or(""))
    .bind(&request.signature)
    .bind(&request.timestamp)
    .bind(&request.nonce)
    .execute(conn)
    .await?;
    Ok(())
}

async fn set_following(
    conn: &mut SqliteConnection,
    openid: &str,
    following: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO followers (openid, following, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (openid) DO UPDATE SET following = ?2, updated_at = ?3",
    )
    .bind(openid)
    .bind(following)
    .bind(now())
    .execute(conn)
    .await?;
    Ok(())
}

/// A scan of a login QR code. Returns the reply and the browser to wake.
async fn scan(
    conn: &mut SqliteConnection,
    scene_str: &str,
    openid: &str,
    metrics: &Metrics,
) -> AppResult<(Option<String>, Option<String>)> {
    let Some(scene) = scene::by_scene(conn, scene_str).await? else {
        tracing::info!("scan of an unknown scene");
        return Ok((Some(Lang::Zh.text().reply_expired.to_owned()), None));
    };
    let t = scene.lang().text();
    let t_now = now();
    let status = scene.status(t_now);
    if status != Status::Waiting {
        // The same person scanning the same code again (or their phone retrying with a new
        // CreateTime) learns where things stand; anybody else learns it is taken.
        let text = match status {
            Status::Expired => t.reply_expired,
            _ if scene.openid.as_deref() != Some(openid) => t.reply_used,
            Status::Authorized => t.reply_logged_in,
            Status::NeedsBind => t.reply_needs_bind,
            Status::Rejected => t.reply_disabled,
            Status::Waiting => unreachable!("handled above"),
        };
        return Ok((Some(text.to_owned()), None));
    }

    let user = users::by_openid(conn, openid).await?;
    let (new_state, outcome, text, user_id) = match &user {
        Some(u) if u.disabled => (
            SceneState::Rejected,
            Outcome::Disabled,
            t.reply_disabled,
            Some(u.id),
        ),
        Some(u) => (
            SceneState::Authorized,
            Outcome::LoggedIn,
            t.reply_logged_in,
            Some(u.id),
        ),
        None => (
            SceneState::NeedsBind,
            Outcome::NeedsBind,
            t.reply_needs_bind,
            None,
        ),
    };
    scene::resolve(conn, &scene.scene, new_state, openid, user_id).await?;
    Metrics::inc(match new_state {
        SceneState::Rejected => &metrics.logins_disabled,
        SceneState::NeedsBind => &metrics.logins_needs_bind,
        _ => &metrics.logins_ok,
    });
    scene::record_event(conn, &scene, user_id, openid, outcome, t_now).await?;
    // Say where the login is happening, so someone tricked into scanning a stranger's code
    // notices.
    let place = fill(
        t.reply_where,
        &[
            &describe_user_agent(scene.user_agent.as_deref().unwrap_or("")),
            &scene.client_ip.as_deref().unwrap_or("?"),
            &beijing_time(t_now),
        ],
    );
    let reply = if outcome == Outcome::Disabled {
        text.to_owned()
    } else {
        format!("{text}\n{place}")
    };
    Ok((Some(reply), Some(scene.owner)))
}
