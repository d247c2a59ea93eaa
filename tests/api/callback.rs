//! `/wechat/callback`: signatures, event kinds, retries, expired and unknown scenes, bad input.

use crate::helpers::{SseReader, TestApp, spawn_app};
use std::time::Duration;

async fn scene_state(app: &TestApp, scene: &str) -> String {
    app.select_with("SELECT state FROM login_scenes WHERE scene = ?", scene)
        .await
}

/// WeChat's check of the callback URL: a signed GET that wants `echostr` back.
async fn url_check(
    app: &TestApp,
    signature: &str,
    timestamp: &str,
    nonce: &str,
    echostr: &str,
) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/wechat/callback"))
        .query(&[
            ("signature", signature),
            ("timestamp", timestamp),
            ("nonce", nonce),
            ("echostr", echostr),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn url_check_answers_echostr_only_when_signed_by_our_token() {
    let app = spawn_app().await;
    let timestamp = wxlogin::util::now().to_string();
    let good = app.sign(&timestamp, "n1");

    let ok = url_check(&app, &good, &timestamp, "n1", "hello123").await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "hello123");

    let bad = url_check(&app, &"0".repeat(40), &timestamp, "n1", "x").await;
    assert_eq!(bad.status(), 403);
    let unsigned = app
        .get(&reqwest::Client::new(), "/wechat/callback?echostr=x")
        .await;
    assert_eq!(unsigned.status(), 403);
}

#[tokio::test]
async fn a_badly_signed_or_stale_scan_changes_nothing() {
    let app = spawn_app().await;
    let (_browser, _, scene) = app.waiting_scene().await;
    let xml = app.scan_xml("o_forger", wxlogin::util::now(), true, &scene);
    let now = wxlogin::util::now().to_string();

    let forged = app
        .post_callback_with(&xml, &"a".repeat(40), &now, "n")
        .await;
    assert_eq!(forged.status(), 403);
    let stale_time = (wxlogin::util::now() - 3600).to_string();
    let stale = app
        .post_callback_with(&xml, &app.sign(&stale_time, "n"), &stale_time, "n")
        .await;
    assert_eq!(stale.status(), 403);

    assert_eq!(scene_state(&app, &scene).await, "pending");
    assert_eq!(app.count("callback_deliveries").await, 0);
    assert_eq!(app.count("login_events").await, 0);
    assert_eq!(app.count("followers").await, 0);
}

#[tokio::test]
async fn subscribe_with_qrscene_prefix_and_scan_without_both_resolve_the_scene() {
    let app = spawn_app().await;
    let (_b1, _, first) = app.waiting_scene().await;
    let (_b2, _, second) = app.waiting_scene().await;

    let subscribed = app
        .post_callback(&app.scan_xml("o_a", wxlogin::util::now(), true, &first))
        .await;
    let scanned = app
        .post_callback(&app.scan_xml("o_b", wxlogin::util::now(), false, &second))
        .await;

    assert_eq!(subscribed.status(), 200);
    assert_eq!(scanned.status(), 200);
    let reply = subscribed.text().await.unwrap();
    assert!(
        reply.contains("<ToUserName><![CDATA[o_a]]></ToUserName>"),
        "{reply}"
    );
    assert!(reply.contains("<MsgType><![CDATA[text]]></MsgType>"));
    assert_eq!(scene_state(&app, &first).await, "needs_bind");
    assert_eq!(scene_state(&app, &second).await, "needs_bind");
}

#[tokio::test]
async fn a_retried_delivery_has_exactly_the_effect_of_the_first() {
    let app = spawn_app().await;
    let (_browser, _, scene) = app.waiting_scene().await;
    let xml = app.scan_xml("o_retry", 1_700_000_000, true, &scene);

    let first = app.post_callback(&xml).await.text().await.unwrap();
    let second = app.post_callback(&xml).await.text().await.unwrap();

    assert_eq!(strip_time(&first), strip_time(&second));
    assert_eq!(app.count("login_events").await, 1);
    assert_eq!(app.count("callback_deliveries").await, 1);
}

#[tokio::test]
async fn a_retry_arriving_while_the_first_is_handled_is_also_handled_once() {
    let app = spawn_app().await;
    let (_browser, _, scene) = app.waiting_scene().await;
    let xml = app.scan_xml("o_race", 1_700_000_001, true, &scene);

    let replies = futures::future::join_all(
        (0..6).map(|_| async { app.post_callback(&xml).await.text().await.unwrap() }),
    )
    .await;

    let first = strip_time(&replies[0]);
    assert!(first.contains("绑定"), "{first}");
    assert!(
        replies.iter().all(|r| strip_time(r) == first),
        "{replies:?}"
    );
    assert_eq!(app.count("login_events").await, 1);
}

/// Replies carry their own CreateTime; compare the rest.
fn strip_time(xml: &str) -> String {
    match (xml.find("<CreateTime>"), xml.find("</CreateTime>")) {
        (Some(a), Some(b)) => format!("{}{}", &xml[..a], &xml[b..]),
        _ => xml.to_owned(),
    }
}

#[tokio::test]
async fn expired_and_unknown_scenes_get_a_friendly_reply_and_change_nothing() {
    let app = spawn_app().await;
    let (_browser, _, scene) = app.waiting_scene().await;
    app.exec_with(
        "UPDATE login_scenes SET expires_at = 1 WHERE scene = ?",
        &scene,
    )
    .await;

    let expired = app
        .post_callback(&app.scan_xml("o_late", wxlogin::util::now(), false, &scene))
        .await;
    let unknown = app
        .post_callback(&app.scan_xml("o_late", wxlogin::util::now() + 1, false, "nosuchscene"))
        .await;

    assert!(expired.text().await.unwrap().contains("过期"));
    assert!(unknown.text().await.unwrap().contains("过期"));
    assert_eq!(scene_state(&app, &scene).await, "pending");
    assert_eq!(app.count("login_events").await, 0);
}

#[tokio::test]
async fn a_scene_scanned_by_one_person_is_not_taken_over_by_another() {
    let app = spawn_app().await;
    let (browser, _, scene) = app.waiting_scene().await;
    app.post_callback(&app.scan_xml("o_first", wxlogin::util::now(), true, &scene))
        .await;

    let other = app
        .post_callback(&app.scan_xml("o_second", wxlogin::util::now(), true, &scene))
        .await;

    assert!(other.text().await.unwrap().contains("已经使用过"));
    let openid: String = app
        .select_with("SELECT openid FROM login_scenes WHERE scene = ?", &scene)
        .await;
    assert_eq!(openid, "o_first");
    let mut events = SseReader::connect(&app, &browser).await;
    let (_, redirect) = events
        .until("redirect", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(redirect.data, "/bind");
}

#[tokio::test]
async fn malformed_or_hostile_xml_is_refused_without_effect() {
    let app = spawn_app().await;
    let (_browser, _, scene) = app.waiting_scene().await;
    let bomb = format!(
        r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><xml><ToUserName>t</ToUserName><FromUserName>&b;</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>SCAN</Event><EventKey>{scene}</EventKey></xml>"#
    );
    for body in [
        "",
        "not xml",
        "<xml><ToUserName>t</ToUserName>",
        bomb.as_str(),
    ] {
        let response = app.post_callback(body).await;
        assert_eq!(response.status(), 400, "{body}");
    }
    let huge = "x".repeat(65 * 1024);
    assert_eq!(app.post_callback(&huge).await.status(), 413);
    assert_eq!(scene_state(&app, &scene).await, "pending");
    assert_eq!(app.count("callback_deliveries").await, 0);
}

#[tokio::test]
async fn follows_unfollows_and_messages_are_acknowledged() {
    let app = spawn_app().await;
    let follow = r#"<xml><ToUserName>gh</ToUserName><FromUserName>o_f</FromUserName><CreateTime>10</CreateTime><MsgType>event</MsgType><Event>subscribe</Event><EventKey></EventKey></xml>"#;
    let unfollow = r#"<xml><ToUserName>gh</ToUserName><FromUserName>o_f</FromUserName><CreateTime>11</CreateTime><MsgType>event</MsgType><Event>unsubscribe</Event></xml>"#;
    let click = r#"<xml><ToUserName>gh</ToUserName><FromUserName>o_f</FromUserName><CreateTime>12</CreateTime><MsgType>event</MsgType><Event>CLICK</Event><EventKey>k</EventKey></xml>"#;

    assert!(
        app.post_callback(follow)
            .await
            .text()
            .await
            .unwrap()
            .contains("感谢关注")
    );
    assert_eq!(
        app.post_callback(unfollow).await.text().await.unwrap(),
        "success"
    );
    assert_eq!(
        app.post_callback(click).await.text().await.unwrap(),
        "success"
    );
    let following: bool = app
        .select("SELECT following FROM followers WHERE openid = 'o_f'")
        .await;
    assert!(!following);
}

#[tokio::test]
async fn the_signature_of_a_url_check_cannot_be_replayed_as_a_post() {
    let app = spawn_app().await;
    let (_browser, _, scene) = app.waiting_scene().await;
    let timestamp = wxlogin::util::now().to_string();
    let signature = app.sign(&timestamp, "n-get");
    // The GET's query is what a proxy or an access log keeps.
    let check = url_check(&app, &signature, &timestamp, "n-get", "echo").await;
    assert_eq!(check.text().await.unwrap(), "echo");

    let xml = app.scan_xml("o_replayer", wxlogin::util::now(), true, &scene);
    let replayed = app
        .post_callback_with(&xml, &signature, &timestamp, "n-get")
        .await;

    assert_eq!(replayed.status(), 200);
    assert_eq!(replayed.text().await.unwrap(), "success", "nothing to show");
    assert_eq!(scene_state(&app, &scene).await, "pending", "no effect");
    assert_eq!(app.count("login_events").await, 0);
    // A fresh signature for the same scan works as ever.
    let fresh = app.post_callback(&xml).await;
    assert_eq!(fresh.status(), 200);
    assert_eq!(scene_state(&app, &scene).await, "needs_bind");
}
