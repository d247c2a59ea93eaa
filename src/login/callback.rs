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
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use tracing::Instrument;

use crate::{
    client_info::describe_user_agent,
    config::expose,
    db::{WriteError, now, random_hex},
    error::{AppError, AppResult},
    login::scene::{self, Outcome, SceneState, Status},
    metrics::Metrics,
    state::AppState,
    ui::{Lang, fill},
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
///
/// Its (signature, timestamp, nonce) go into the replay store with an empty answer: the query
/// of a GET is what proxies and access logs keep, and the plaintext signature doesn't cover a
/// body, so the same triple sent as a POST within the timestamp window is answered "success"
/// and does nothing.
pub async fn check(State(state): State<AppState>, RawQuery(q): RawQuery) -> AppResult<Response> {
    let verified = verify(&state, q.as_deref())?;
    let triple = [
        verified.signature.clone(),
        verified.timestamp.clone(),
        verified.nonce.clone(),
    ];
    state
        .writer
        .run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO callback_requests (signature, timestamp, nonce, reply, received_at) \
                 VALUES (?, ?, ?, '', ?) ON CONFLICT DO NOTHING",
            )?
            .execute(params![triple[0], triple[1], triple[2], now()])?;
            Ok::<_, WriteError>(())
        })
        .await?;
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
///
/// The work happens in the callback writer's transaction ([`crate::db::Writer`]); the browser is
/// woken only after it has committed.
pub async fn handle(
    state: &AppState,
    request: &Verified,
    incoming: &Incoming,
) -> AppResult<Option<String>> {
    let key = [
        request.signature.clone(),
        request.timestamp.clone(),
        request.nonce.clone(),
    ];
    let delivery = incoming.clone();
    // Its own task: if WeChat hangs up before we answer, this handler is dropped, but the
    // delivery may already be committed, and its retry is answered from the record without
    // waking anyone. So whatever follows the commit must run to the end regardless.
    let task = tokio::spawn(record_and_announce(state.clone(), key, delivery).in_current_span());
    task.await.map_err(|e| AppError::Internal(e.into()))?
}

/// Records a delivery through the writer, then counts it and wakes the browser it logged in.
async fn record_and_announce(
    state: AppState,
    key: [String; 3],
    incoming: Incoming,
) -> AppResult<Option<String>> {
    let event = incoming.kind.name().to_owned();
    let recorded = state
        .writer
        .run(move |conn| record(conn, &key, &incoming))
        .await?;
    let reply = match recorded {
        Recorded::ReplayedRequest(reply) => {
            tracing::info!("replayed request answered from record");
            reply
        }
        Recorded::RepeatedDelivery(reply) => {
            tracing::info!(event, "repeated delivery answered from record");
            reply
        }
        Recorded::Handled { reply, scan } => {
            if let Some(scan) = scan {
                let metrics = &state.metrics;
                Metrics::inc(if scan.first_follow {
                    &metrics.scans_subscribe
                } else {
                    &metrics.scans_scan
                });
                if let Some(Resolved {
                    state: new_state,
                    owner,
                }) = scan.resolved
                {
                    Metrics::inc(match new_state {
                        SceneState::Rejected => &metrics.logins_disabled,
                        SceneState::NeedsBind => &metrics.logins_needs_bind,
                        _ => &metrics.logins_ok,
                    });
                    state.hub.notify(&owner);
                    // A browser is woken exactly when a login event was recorded: tell the
                    // dashboards.
                    state.login_feed.publish();
                }
            }
            tracing::info!(event, "callback handled");
            reply
        }
    };
    Ok(reply)
}

/// What recording a delivery came to.
enum Recorded {
    /// This exact signed request was seen before: its first answer, whatever the body says.
    ReplayedRequest(Option<String>),
    /// WeChat retried a delivery already handled: the same answer, no second effect.
    RepeatedDelivery(Option<String>),
    /// Handled now.
    Handled {
        reply: Option<String>,
        scan: Option<ScanDone>,
    },
}

/// A login QR code scan handled now.
struct ScanDone {
    /// A `subscribe` (first follow) rather than a `SCAN` by a follower.
    first_follow: bool,
    /// Unless the scene was unknown or no longer waiting: what it became.
    resolved: Option<Resolved>,
}

/// A scene a scan moved on.
struct Resolved {
    /// Its new state.
    state: SceneState,
    /// The browser to wake.
    owner: String,
}

/// Records a delivery and applies its effect, in the writer's transaction. `request` is the
/// signed query's (signature, timestamp, nonce).
fn record(
    conn: &Connection,
    request: &[String; 3],
    incoming: &Incoming,
) -> Result<Recorded, WriteError> {
    let t_now = now();
    let new_request = conn
        .prepare_cached(
            "INSERT INTO callback_requests (signature, timestamp, nonce, reply, received_at) \
             VALUES (?, ?, ?, NULL, ?) ON CONFLICT DO NOTHING",
        )?
        .execute(params![request[0], request[1], request[2], t_now])?
        == 1;
    if !new_request {
        let reply = conn
            .prepare_cached(
                "SELECT reply FROM callback_requests \
                 WHERE signature = ? AND timestamp = ? AND nonce = ?",
            )?
            .query_row(params![request[0], request[1], request[2]], |row| {
                row.get(0)
            })?;
        return Ok(Recorded::ReplayedRequest(reply));
    }
    let event = delivery_event(&incoming.kind);
    let (from_user, create_time) = (&incoming.from_user, incoming.create_time);
    let fresh = conn
        .prepare_cached(
            "INSERT INTO callback_deliveries (from_user, create_time, event, reply, received_at) \
             VALUES (?, ?, ?, NULL, ?) ON CONFLICT DO NOTHING",
        )?
        .execute(params![from_user, create_time, event, t_now])?
        == 1;
    let recorded = if fresh {
        let (reply, scan) = apply(conn, incoming, t_now)?;
        conn.prepare_cached(
            "UPDATE callback_deliveries SET reply = ? \
             WHERE from_user = ? AND create_time = ? AND event = ?",
        )?
        .execute(params![
            reply.as_deref().unwrap_or(""),
            from_user,
            create_time,
            event
        ])?;
        Recorded::Handled { reply, scan }
    } else {
        let reply: Option<String> = conn
            .prepare_cached(
                "SELECT reply FROM callback_deliveries \
                 WHERE from_user = ? AND create_time = ? AND event = ?",
            )?
            .query_row(params![from_user, create_time, event], |row| row.get(0))?;
        Recorded::RepeatedDelivery(reply)
    };
    let (Recorded::Handled { reply, .. } | Recorded::RepeatedDelivery(reply)) = &recorded else {
        unreachable!("a replayed request returned above");
    };
    conn.prepare_cached(
        "UPDATE callback_requests SET reply = ? WHERE signature = ? AND timestamp = ? AND nonce = ?",
    )?
    .execute(params![
        reply.as_deref().unwrap_or(""),
        request[0],
        request[1],
        request[2]
    ])?;
    Ok(recorded)
}

/// The effect of a delivery seen for the first time: its reply, and the scan it was.
fn apply(
    conn: &Connection,
    incoming: &Incoming,
    t_now: i64,
) -> rusqlite::Result<(Option<String>, Option<ScanDone>)> {
    let openid = incoming.from_user.as_str();
    Ok(match &incoming.kind {
        Kind::Subscribe { scene: Some(scene) } | Kind::Scan { scene } => {
            set_following(conn, openid, true, t_now)?;
            let (reply, resolved) = scan(conn, scene, openid, t_now)?;
            let first_follow = matches!(incoming.kind, Kind::Subscribe { .. });
            (
                reply,
                Some(ScanDone {
                    first_follow,
                    resolved,
                }),
            )
        }
        Kind::Subscribe { scene: None } => {
            set_following(conn, openid, true, t_now)?;
            (Some(Lang::Zh.text().reply_welcome.to_owned()), None)
        }
        Kind::Unsubscribe => {
            set_following(conn, openid, false, t_now)?;
            (None, None)
        }
        Kind::Text { .. } => (Some(Lang::Zh.text().reply_help.to_owned()), None),
        Kind::Other { .. } => (None, None),
    })
}

/// `HH:MM` in China Standard Time (UTC+8, no daylight saving), the clock WeChat users read.
fn beijing_time(unix: i64) -> String {
    let minutes = (unix + 8 * 3600).rem_euclid(86_400) / 60;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn set_following(conn: &Connection, openid: &str, following: bool, t: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO followers (openid, following, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (openid) DO UPDATE SET following = ?2, updated_at = ?3",
    )?
    .execute(params![openid, following, t])?;
    Ok(())
}

/// A scan of a login QR code at time `t_now`. Returns the reply, and what became of the scene.
fn scan(
    conn: &Connection,
    scene_str: &str,
    openid: &str,
    t_now: i64,
) -> rusqlite::Result<(Option<String>, Option<Resolved>)> {
    let Some(scene) = scene::by_scene(conn, scene_str)? else {
        return Ok((Some(Lang::Zh.text().reply_expired.to_owned()), None));
    };
    let t = scene.lang().text();
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

    let user: Option<(i64, bool)> = conn
        .prepare_cached("SELECT id, disabled FROM users WHERE openid = ?")?
        .query_row([openid], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let (new_state, outcome, text, user_id) = match user {
        Some((id, true)) => (
            SceneState::Rejected,
            Outcome::Disabled,
            t.reply_disabled,
            Some(id),
        ),
        Some((id, false)) => (
            SceneState::Authorized,
            Outcome::LoggedIn,
            t.reply_logged_in,
            Some(id),
        ),
        None => (
            SceneState::NeedsBind,
            Outcome::NeedsBind,
            t.reply_needs_bind,
            None,
        ),
    };
    conn.prepare_cached(scene::RESOLVE_SQL)?.execute(params![
        new_state.as_str(),
        openid,
        user_id,
        t_now,
        scene::least_expiry(new_state, t_now),
        scene.scene
    ])?;
    conn.prepare_cached(scene::RECORD_EVENT_SQL)?
        .execute(params![
            user_id,
            openid,
            outcome.as_str(),
            scene.client_ip,
            scene.user_agent,
            t_now
        ])?;
    // Say where the login is happening, so someone tricked into scanning a stranger's code
    // notices. The IP and the time are facts; the browser is only what its User-Agent claims,
    // and is labelled so.
    let place = fill(
        t.reply_where,
        &[
            &scene.client_ip.as_deref().unwrap_or("?"),
            &beijing_time(t_now),
            &describe_user_agent(scene.user_agent.as_deref().unwrap_or(""))
                .unwrap_or_else(|| t.unknown_browser.to_owned()),
        ],
    );
    let reply = if outcome == Outcome::Disabled {
        text.to_owned()
    } else {
        format!("{text}\n{place}")
    };
    let resolved = Resolved {
        state: new_state,
        owner: scene.owner,
    };
    Ok((Some(reply), Some(resolved)))
}
