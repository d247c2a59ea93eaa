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
use tracing::Instrument;

use crate::{
    client_info::describe_user_agent,
    config::expose,
    error::{AppError, AppResult},
    login::scene::{self, Outcome, SceneState, Status},
    metrics::Metrics,
    state::AppState,
    store::{Delivery, Effect, Recorded, ScanFacts, ScanRule, ScanVerdict},
    ui::{Lang, fill},
    util::{now, random_hex},
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
        .store
        .callbacks
        .record_url_check(triple, now())
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

/// What a delivery seen for the first time does.
fn effect(kind: &Kind) -> Effect {
    let t = Lang::Zh.text();
    match kind {
        Kind::Subscribe { scene: Some(scene) } | Kind::Scan { scene } => Effect::Scan {
            scene: scene.clone(),
        },
        Kind::Subscribe { scene: None } => Effect::Follow {
            following: true,
            reply: Some(t.reply_welcome.to_owned()),
        },
        Kind::Unsubscribe => Effect::Follow {
            following: false,
            reply: None,
        },
        Kind::Text { .. } => Effect::Reply(Some(t.reply_help.to_owned())),
        Kind::Other { .. } => Effect::Reply(None),
    }
}

/// Applies a verified delivery once and returns the text to show the person in WeChat.
///
/// The work happens in one store transaction; the browser is woken only after it has
/// committed.
pub async fn handle(
    state: &AppState,
    request: &Verified,
    incoming: &Incoming,
) -> AppResult<Option<String>> {
    let delivery = Delivery {
        request: [
            request.signature.clone(),
            request.timestamp.clone(),
            request.nonce.clone(),
        ],
        from_user: incoming.from_user.clone(),
        create_time: incoming.create_time,
        event: delivery_event(&incoming.kind),
        effect: effect(&incoming.kind),
        now: now(),
    };
    let first_follow = matches!(incoming.kind, Kind::Subscribe { scene: Some(_) });
    let event = incoming.kind.name().to_owned();
    // Its own task: if WeChat hangs up before we answer, this handler is dropped, but the
    // delivery may already be committed, and its retry is answered from the record without
    // waking anyone. So whatever follows the commit must run to the end regardless.
    let task = tokio::spawn(
        record_and_announce(state.clone(), delivery, event, first_follow).in_current_span(),
    );
    task.await.map_err(|e| AppError::Internal(e.into()))?
}

/// Records a delivery, then counts it and wakes the browser it logged in.
async fn record_and_announce(
    state: AppState,
    delivery: Delivery,
    event: String,
    first_follow: bool,
) -> AppResult<Option<String>> {
    let scan = matches!(delivery.effect, Effect::Scan { .. });
    // The brand is shared: each callback clones a pointer, not the contact's text.
    let brand = state.brand.clone();
    let rule: ScanRule = Box::new(move |facts| scan_rule(facts, brand.support_contact.as_deref()));
    let recorded = state.store.callbacks.record(delivery, rule).await?;
    let reply = match recorded {
        Recorded::ReplayedRequest(reply) => {
            tracing::info!("replayed request answered from record");
            reply
        }
        Recorded::RepeatedDelivery(reply) => {
            tracing::info!(event, "repeated delivery answered from record");
            reply
        }
        Recorded::Handled { reply, resolved } => {
            let metrics = &state.metrics;
            if scan {
                Metrics::inc(if first_follow {
                    &metrics.scans_subscribe
                } else {
                    &metrics.scans_scan
                });
            }
            if let Some((new_state, owner)) = resolved {
                Metrics::inc(match new_state {
                    SceneState::Rejected => &metrics.logins_disabled,
                    SceneState::NeedsBind => &metrics.logins_needs_bind,
                    _ => &metrics.logins_ok,
                });
                state.live.announce(&owner);
            }
            tracing::info!(event, "callback handled");
            reply
        }
    };
    Ok(reply)
}

/// What a disabled person reads in WeChat: refused, and whom to contact.
fn disabled_reply(
    t: &'static crate::ui::Text,
    support: Option<&str>,
    change: Option<crate::store::SceneChange>,
) -> ScanVerdict {
    let contact = match support {
        Some(contact) => fill(t.disabled_contact, &[&contact]),
        None => t.disabled_contact_admin.to_owned(),
    };
    ScanVerdict {
        reply: Some(format!("{}{contact}", t.reply_disabled)),
        change,
    }
}

/// The scan rule the store runs in its transaction: how a scan moves the scene on
/// ([`scene::scan_change`]) and what the person reads in WeChat.
fn scan_rule(facts: &ScanFacts<'_>, support: Option<&str>) -> ScanVerdict {
    let Some(scene) = facts.scene else {
        return ScanVerdict {
            reply: Some(Lang::Zh.text().reply_expired.to_owned()),
            change: None,
        };
    };
    let t = scene.lang().text();
    let Some(change) = scene::scan_change(scene, facts.user, facts.now) else {
        // The same person scanning the same code again (or their phone retrying with a new
        // CreateTime) learns where things stand; anybody else learns it is taken.
        let text = match scene.status(facts.now) {
            // Redeemed: someone logged in with it; it didn't just run out of time.
            Status::Expired if scene.state == SceneState::Consumed => t.reply_used,
            Status::Expired => t.reply_expired,
            _ if scene.openid.as_deref() != Some(facts.openid) => t.reply_used,
            Status::Authorized => t.reply_logged_in,
            Status::NeedsBind => t.reply_needs_bind,
            Status::Rejected => return disabled_reply(t, support, None),
            // `scan_change` moves every waiting scene.
            Status::Waiting => t.reply_used,
        };
        return ScanVerdict {
            reply: Some(text.to_owned()),
            change: None,
        };
    };
    let text = match change.outcome {
        Outcome::Disabled => return disabled_reply(t, support, Some(change)),
        Outcome::LoggedIn => t.reply_logged_in,
        Outcome::NeedsBind => t.reply_needs_bind,
    };
    // Say where the login is happening, so someone tricked into scanning a stranger's code
    // notices. The IP and the time are facts; the browser is only what its User-Agent claims,
    // and is labelled so.
    let place = fill(
        t.reply_where,
        &[
            &scene.client_ip.as_deref().unwrap_or("?"),
            &crate::ui::china_clock(facts.now),
            &describe_user_agent(scene.user_agent.as_deref().unwrap_or(""))
                .unwrap_or_else(|| t.unknown_browser.to_owned()),
        ],
    );
    ScanVerdict {
        reply: Some(format!("{text}\n{place}")),
        change: Some(change),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::scene::Scene;

    fn scene(state: SceneState, openid: Option<&str>) -> Scene {
        Scene {
            openid: openid.map(str::to_owned),
            lang: "en".into(),
            client_ip: Some("203.0.113.9".into()),
            user_agent: Some("Mozilla/5.0 (Windows NT 10.0) Chrome/120.0".into()),
            ..scene::sample(state, 1_000, 0)
        }
    }

    fn verdict(scene: Option<&Scene>, openid: &str, user: Option<(i64, bool)>) -> ScanVerdict {
        scan_rule(
            &ScanFacts {
                scene,
                openid,
                user,
                now: 100,
            },
            Some("support@example.com"),
        )
    }

    #[test]
    fn a_scan_of_a_waiting_code_says_where_the_login_is_and_moves_it_on() {
        let waiting = scene(SceneState::Pending, None);
        let bound = verdict(Some(&waiting), "o_a", Some((3, false)));
        let reply = bound.reply.unwrap();
        assert!(
            reply.contains("IP 203.0.113.9") && reply.contains("Chrome / Windows"),
            "{reply}"
        );
        assert_eq!(bound.change.unwrap().state, SceneState::Authorized);
        let disabled = verdict(Some(&waiting), "o_a", Some((3, true)));
        let refusal = disabled.reply.unwrap();
        assert!(!refusal.contains("IP "), "no place line for a refusal");
        assert!(
            refusal.contains("disabled") && refusal.contains("contact support@example.com"),
            "{refusal}"
        );
    }

    #[test]
    fn a_scan_of_a_code_that_moved_on_changes_nothing_and_says_why() {
        let taken = scene(SceneState::NeedsBind, Some("o_first"));
        let t = Lang::En.text();
        assert_eq!(
            verdict(Some(&taken), "o_other", None).reply.unwrap(),
            t.reply_used
        );
        assert_eq!(
            verdict(Some(&taken), "o_first", None).reply.unwrap(),
            t.reply_needs_bind
        );
        assert_eq!(verdict(Some(&taken), "o_first", None).change, None);
        assert_eq!(
            verdict(None, "o_x", None).reply.unwrap(),
            Lang::Zh.text().reply_expired
        );
    }
}
