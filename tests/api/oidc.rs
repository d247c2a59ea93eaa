//! The OpenID Connect provider, driven by an independent client (the `openidconnect` crate):
//! discovery, the code flow with PKCE through a sandbox scan and binding, the id_token checked
//! against the JWKS, userinfo, refresh with rotation, revocation, logout; and the refusals.

use std::time::Duration;

use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
    core::{
        CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata,
        CoreUserInfoClaims,
    },
};
use wxlogin::provider::cli::{ClientCommand, client_command};

use crate::helpers::{TestApp, location, spawn_app};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const AFTER_LOGOUT: &str = "http://127.0.0.1:9/bye";

/// Registers a site; returns its client_id and secret (`None` for a public one).
async fn register(app: &TestApp, name: &str, public: bool) -> (String, Option<String>) {
    let mut out = Vec::new();
    client_command(
        &app.state.store,
        ClientCommand::Add {
            name: name.into(),
            redirect_uris: vec![REDIRECT.into()],
            post_logout_redirect_uris: vec![AFTER_LOGOUT.into()],
            public,
        },
        &mut out,
    )
    .await
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    (
        json["client_id"].as_str().unwrap().to_owned(),
        json["client_secret"].as_str().map(str::to_owned),
    )
}

fn issuer(app: &TestApp) -> String {
    app.url("").trim_end_matches('/').to_owned()
}

fn http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Follows the provider's redirect back to the site: the code and state it carries.
fn code_of(redirect: &str) -> (String, String) {
    assert!(
        redirect.starts_with(REDIRECT),
        "back to the site: {redirect}"
    );
    let url = url::Url::parse(redirect).unwrap();
    let get = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("{k} in {redirect}"))
    };
    (get("code"), get("state"))
}

#[tokio::test]
async fn a_site_logs_a_person_in_with_an_ordinary_oidc_client() {
    let app = spawn_app().await;
    let (client_id, secret) = register(&app, "Example Shop", false).await;
    let http = http();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer(&app)).unwrap(), &http)
            .await
            .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.clone()),
        secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("phone".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The person has no session: to the login page, which names the site.
    let browser = app.browser();
    let to_login = location(&browser.get(auth_url.as_str()).send().await.unwrap());
    assert!(to_login.starts_with("/login?next="), "{to_login}");
    let (back, html) = app
        .log_in_at(&browser, &to_login, "o_oidc_person", Some("13800138011"))
        .await;
    assert!(
        html.contains("Example Shop"),
        "the login page names the site"
    );
    assert!(back.starts_with("/oidc/authorize?"), "{back}");
    let redirect = goes_to(&app, &browser, &back).await;
    assert!(
        redirect.contains(&format!("iss={}", urlencode(&issuer(&app)))),
        "{redirect}"
    );
    let (code, state) = code_of(&redirect);
    assert_eq!(&state, csrf.secret());

    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchanged");
    let id_token = tokens.id_token().expect("an id_token");
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("id_token checks out");
    assert_eq!(claims.issuer().as_str(), issuer(&app));
    assert_eq!(
        claims.phone_number().map(|p| p.as_str()),
        Some("+8613800138011")
    );
    assert_eq!(claims.phone_number_verified(), Some(true));
    let amr = |claims: &CoreIdTokenClaims| -> Vec<String> {
        let methods = claims.auth_method_refs().expect("amr");
        methods.iter().map(|m| m.as_str().to_owned()).collect()
    };
    assert_eq!(amr(claims), ["scan"], "the person scanned");
    let sub = claims.subject().as_str().to_owned();
    assert!(
        !sub.contains("o_oidc_person") && sub.parse::<i64>().is_err(),
        "sub is opaque: {sub}"
    );
    assert!(
        AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&verifier).unwrap()
        )
        .is_ok()
    );

    // Userinfo has the same person and the phone.
    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), sub);
    assert_eq!(
        info.phone_number().map(|p| p.as_str()),
        Some("+8613800138011")
    );

    // Refresh rotates: a new refresh token each time, the same person.
    let first_refresh = tokens
        .refresh_token()
        .expect("offline_access gives one")
        .clone();
    let refreshed = client
        .exchange_refresh_token(&first_refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    let second_refresh = refreshed
        .refresh_token()
        .expect("a new refresh token")
        .clone();
    assert_ne!(second_refresh.secret(), first_refresh.secret());
    let refreshed_claims = refreshed
        .id_token()
        .expect("an id_token on refresh")
        .claims(&verifier, |_: Option<&Nonce>| Ok(()))
        .unwrap();
    assert_eq!(refreshed_claims.subject().as_str(), sub);
    assert_eq!(
        amr(refreshed_claims),
        ["scan"],
        "a refresh keeps how they logged in"
    );

    // Revoking an access token ends its userinfo (RFC 7009, client_secret_basic; the
    // crate's own revocation call insists on https).
    let revoked = http
        .post(app.url("/oidc/revoke"))
        .basic_auth(&client_id, secret.as_deref())
        .form(&[("token", refreshed.access_token().secret().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let userinfo_status = |token: String| {
        let (http, url) = (http.clone(), app.url("/oidc/userinfo"));
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        userinfo_status(refreshed.access_token().secret().clone()).await,
        401
    );
    assert_eq!(
        userinfo_status(tokens.access_token().secret().clone()).await,
        200
    );

    // Reusing the old refresh token is refused and revokes the grant: the new refresh token
    // and the first access token die with it.
    let reuse = client
        .exchange_refresh_token(&first_refresh)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(reuse.is_err(), "an old refresh token is refused");
    let after = client
        .exchange_refresh_token(&second_refresh)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(after.is_err(), "the grant is revoked");
    assert_eq!(
        userinfo_status(tokens.access_token().secret().clone()).await,
        401
    );

    // The code is single-use.
    let again = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&http)
        .await;
    assert!(again.is_err(), "a second use of the code fails");

    // Logout with the id_token_hint goes back to the registered page, with the state.
    let logout = format!(
        "/oidc/logout?id_token_hint={}&post_logout_redirect_uri={}&state=bye1",
        id_token,
        urlencode(AFTER_LOGOUT)
    );
    let bye = goes_to(&app, &browser, &logout).await;
    assert_eq!(bye, format!("{AFTER_LOGOUT}?state=bye1"));
    let home = app.page_text(&browser, "/").await;
    assert!(
        home.contains("id=\"login-link\""),
        "the wxlogin session ended"
    );
}

/// Where GET `path` in `browser` redirects.
async fn goes_to(app: &TestApp, browser: &reqwest::Client, path: &str) -> String {
    location(&browser.get(app.url(path)).send().await.unwrap())
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A browser logged in through the provider once, and the site's authorization URL maker.
struct Site {
    client_id: String,
    secret: Option<String>,
}

impl Site {
    fn authorize(&self, extra: &str) -> String {
        format!(
            "/oidc/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s1&nonce=n1{extra}",
            self.client_id,
            urlencode(REDIRECT),
        )
    }

    /// Exchanges `code` as this site; the response's status and JSON.
    async fn exchange(&self, app: &TestApp, code: &str) -> (u16, serde_json::Value) {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("client_id", self.client_id.clone()),
        ];
        if let Some(secret) = &self.secret {
            form.push(("client_secret", secret.clone()));
        }
        let response = reqwest::Client::new()
            .post(app.url("/oidc/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }
}

/// A site and a browser whose person has logged in to it once (the session stays).
async fn logged_in_once(app: &TestApp) -> (Site, reqwest::Client) {
    let (client_id, secret) = register(app, "Site", false).await;
    let site = Site { client_id, secret };
    let browser = app.browser();
    let to_login = goes_to(app, &browser, &site.authorize("")).await;
    let (back, _) = app
        .log_in_at(&browser, &to_login, "o_oidc_again", Some("13800138022"))
        .await;
    let redirect = goes_to(app, &browser, &back).await;
    code_of(&redirect);
    (site, browser)
}

#[tokio::test]
async fn a_second_visit_is_silent_and_prompt_none_without_a_session_is_refused() {
    let app = spawn_app().await;
    let (site, browser) = logged_in_once(&app).await;
    // Logged in: prompt=none goes straight back with a code.
    let redirect = goes_to(&app, &browser, &site.authorize("&prompt=none")).await;
    let (code, state) = code_of(&redirect);
    assert_eq!(state, "s1");
    let (status, tokens) = site.exchange(&app, &code).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["id_token"].is_string() && tokens.get("refresh_token").is_none());
    // A stranger: login_required, back at the site.
    let stranger = app.browser();
    let redirect = location(
        &stranger
            .get(app.url(&site.authorize("&prompt=none")))
            .send()
            .await
            .unwrap(),
    );
    assert!(
        redirect.starts_with(REDIRECT) && redirect.contains("error=login_required"),
        "{redirect}"
    );
    assert!(redirect.contains("state=s1"));
}

#[tokio::test]
async fn prompt_login_asks_for_a_fresh_scan_even_with_a_session() {
    let app = spawn_app().await;
    let (site, browser) = logged_in_once(&app).await;
    let to_login = goes_to(&app, &browser, &site.authorize("&prompt=login")).await;
    assert!(to_login.starts_with("/login?next="), "{to_login}");
    // The fresh scan (no binding this time) brings the person back, and a code is issued,
    // without another round to the login page.
    let (back, _) = app
        .log_in_at(&browser, &to_login, "o_oidc_again", None)
        .await;
    let redirect = goes_to(&app, &browser, &back).await;
    let (code, _) = code_of(&redirect);
    assert_eq!(site.exchange(&app, &code).await.0, 200);
}

#[tokio::test]
async fn untrusted_clients_and_redirects_are_shown_never_followed() {
    let app = spawn_app().await;
    let (client_id, _) = register(&app, "Site", false).await;
    let browser = app.browser();
    for path in [
        format!(
            "/oidc/authorize?response_type=code&client_id=nobody&redirect_uri={}&scope=openid",
            urlencode(REDIRECT)
        ),
        format!(
            "/oidc/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid",
            urlencode("https://evil.example/cb")
        ),
        format!("/oidc/authorize?response_type=code&client_id={client_id}&scope=openid"),
        "/oidc/authorize?response_type=code&redirect_uri=x".to_owned(),
    ] {
        let response = browser.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        assert!(response.headers().get("location").is_none(), "{path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("<!DOCTYPE html>"), "an error page: {path}");
    }
    // Other faults go back to the (registered) site as RFC 6749 errors.
    for (rest, error) in [
        (
            "response_type=token&scope=openid",
            "unsupported_response_type",
        ),
        ("response_type=code&scope=phone", "invalid_scope"),
        (
            "response_type=code&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=plain",
            "invalid_request",
        ),
    ] {
        let path = format!(
            "/oidc/authorize?client_id={client_id}&redirect_uri={}&state=s9&{rest}",
            urlencode(REDIRECT)
        );
        let to = goes_to(&app, &browser, &path).await;
        assert!(to.starts_with(REDIRECT), "{path} -> {to}");
        assert!(to.contains(&format!("error={error}")), "{path} -> {to}");
        assert!(to.contains("state=s9"), "{to}");
    }
}

#[tokio::test]
async fn a_code_redeemed_twice_at_once_gives_tokens_once_and_the_replay_revokes_them() {
    let app = spawn_app().await;
    let (site, browser) = logged_in_once(&app).await;
    let redirect = goes_to(&app, &browser, &site.authorize("")).await;
    let (code, _) = code_of(&redirect);
    let tries = futures::future::join_all((0..20).map(|_| site.exchange(&app, &code))).await;
    let winners: Vec<_> = tries.iter().filter(|(status, _)| *status == 200).collect();
    assert_eq!(winners.len(), 1, "exactly one exchange wins: {tries:?}");
    for (status, body) in tries.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 400);
        assert_eq!(body["error"], "invalid_grant");
    }
    // The replays revoked what the winner got.
    let access = winners[0].1["access_token"].as_str().unwrap();
    let userinfo = reqwest::Client::new()
        .get(app.url("/oidc/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 401);
}

#[tokio::test]
async fn a_disabled_person_gets_no_token_and_their_tokens_stop_working() {
    let app = spawn_app().await;
    let (site, browser) = logged_in_once(&app).await;
    let redirect = goes_to(&app, &browser, &site.authorize("")).await;
    let (code, _) = code_of(&redirect);
    let (status, tokens) = site.exchange(&app, &code).await;
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let info = |token: String| {
        let url = app.url("/oidc/userinfo");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(info(access.clone()).await, 200);
    // A new code, then the admin disables the person before it is exchanged.
    let redirect = goes_to(&app, &browser, &site.authorize("")).await;
    let (code, _) = code_of(&redirect);
    app.exec("UPDATE users SET disabled = TRUE WHERE phone = '+8613800138022'")
        .await;
    assert_eq!(info(access).await, 401, "the access token stops working");
    let (status, body) = site.exchange(&app, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // And no new code.
    let response = browser
        .get(app.url(&site.authorize("")))
        .send()
        .await
        .unwrap();
    assert!(
        location(&response).starts_with("/login"),
        "sent to log in again"
    );
}

#[tokio::test]
async fn clients_must_authenticate_and_public_ones_need_pkce() {
    let app = spawn_app().await;
    let (site, browser) = logged_in_once(&app).await;
    let redirect = goes_to(&app, &browser, &site.authorize("")).await;
    let (code, _) = code_of(&redirect);
    let wrong = Site {
        client_id: site.client_id.clone(),
        secret: Some("not-the-secret".into()),
    };
    let (status, body) = wrong.exchange(&app, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // The code was not spent by the failed attempt.
    assert_eq!(site.exchange(&app, &code).await.0, 200);

    // A public client without PKCE is sent back with invalid_request.
    let (public_id, none) = register(&app, "SPA", true).await;
    assert!(none.is_none());
    let spa = Site {
        client_id: public_id,
        secret: None,
    };
    let to = goes_to(&app, &browser, &spa.authorize("")).await;
    assert!(to.contains("error=invalid_request"), "{to}");
    // With PKCE it works, and the SPA's origin may call the token endpoint (CORS).
    let verifier = "v".repeat(50);
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&verifier))
    };
    let pkce_code = || async {
        let to = goes_to(
            &app,
            &browser,
            &spa.authorize(&format!(
                "&code_challenge={challenge}&code_challenge_method=S256"
            )),
        )
        .await;
        code_of(&to).0
    };
    let exchange = |code: String, verifier: String| {
        let url = app.url("/oidc/token");
        let form = [
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", REDIRECT.to_owned()),
            ("client_id", spa.client_id.clone()),
            ("code_verifier", verifier),
        ];
        async move {
            reqwest::Client::new()
                .post(url)
                .header("origin", "http://127.0.0.1:9")
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let bad = exchange(pkce_code().await, "w".repeat(50)).await;
    assert_eq!(bad.status(), 400, "a wrong verifier fails");
    // (The failed verifier spent the code, as RFC 7636 allows; start again.)
    let ok = exchange(pkce_code().await, verifier.clone()).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://127.0.0.1:9"
    );
    assert_eq!(ok.headers()["cache-control"], "no-store");
    let foreign = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, app.url("/oidc/token"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn the_token_endpoint_limit_per_client_holds_under_parallel_requests() {
    let app = crate::helpers::spawn_app_with(|s| s.ops.oidc_token_rate = 5).await;
    let (client_id, secret) = register(&app, "Site", false).await;
    let site = Site { client_id, secret };
    // 30 requests at once with unknown codes: at most 5 are looked at in this second.
    let codes: Vec<String> = (0..30).map(|i| format!("nope{i}")).collect();
    let started = std::time::Instant::now();
    let tries = futures::future::join_all(codes.iter().map(|code| site.exchange(&app, code))).await;
    if started.elapsed() < Duration::from_millis(900) {
        let limited = tries.iter().filter(|(s, _)| *s == 429).count();
        let looked_at = tries.iter().filter(|(s, _)| *s == 400).count();
        assert!(looked_at <= 10, "{tries:?}");
        assert!(limited >= 20, "{tries:?}");
    }
}

#[tokio::test]
async fn discovery_and_jwks_describe_the_provider() {
    let app = spawn_app().await;
    let meta: serde_json::Value = reqwest::get(app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], issuer(&app));
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let jwks: serde_json::Value = reqwest::get(meta["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert!(
        key["kid"].is_string() && key.get("d").is_none(),
        "no private part: {key}"
    );
    // A rotation publishes the new key first and keeps the old one.
    let mut out = Vec::new();
    wxlogin::provider::cli::keys_command(
        &app.state.store,
        wxlogin::provider::cli::KeysCommand::Rotate,
        &mut out,
    )
    .await
    .unwrap();
    let keys = app
        .state
        .store
        .oidc
        .signing_keys(wxlogin::util::now(), 3600)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys[0].retired_at.is_none() && keys[1].retired_at.is_some());
    assert_eq!(keys[1].kid, key["kid"].as_str().unwrap());
}

#[tokio::test]
async fn the_bind_page_of_a_site_login_lets_its_form_lead_back_to_the_site() {
    let app = spawn_app().await;
    let (client_id, secret) = register(&app, "Site", false).await;
    let site = Site { client_id, secret };
    let browser = app.browser();
    let to_login = goes_to(&app, &browser, &site.authorize("")).await;
    let page = browser.get(app.url(&to_login)).send().await.unwrap();
    let html = page.text().await.unwrap();
    let ticket = crate::helpers::between(&html, "/sandbox/scan/", "\"").unwrap();
    app.scan(&ticket, "o_oidc_csp").await;
    let bind = browser.get(app.url("/bind")).send().await.unwrap();
    assert_eq!(bind.status(), 200);
    let csp = bind.headers()["content-security-policy"].to_str().unwrap();
    // Browsers check form-action along the redirects after the code form is answered,
    // which end at the site.
    assert!(
        csp.ends_with("form-action 'self' http://127.0.0.1:9"),
        "{csp}"
    );
    assert!(
        csp.contains("script-src 'self';"),
        "the rest is unchanged: {csp}"
    );
    // An ordinary login's page keeps the plain policy.
    let (plain, _) = app.needs_binding("o_oidc_plain").await;
    let bind = plain.get(app.url("/bind")).send().await.unwrap();
    assert!(
        bind.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .ends_with("form-action 'self'")
    );
}

#[tokio::test]
async fn an_abandoned_fresh_login_request_does_not_excuse_a_later_one() {
    let app = spawn_app().await;
    let (client_id, secret) = register(&app, "Site", false).await;
    let site = Site { client_id, secret };
    let browser = app.browser();
    // A site asks for a fresh login; the person goes elsewhere instead.
    let to = goes_to(&app, &browser, &site.authorize("&prompt=login")).await;
    assert!(to.starts_with("/login?next="), "{to}");
    // They log in on wxlogin itself.
    app.log_in_new_user(&browser, "o_oidc_stale", "13800138061")
        .await;
    // A later request for a fresh login is not satisfied by that login.
    let later = goes_to(&app, &browser, &site.authorize("&prompt=login&max_age=600")).await;
    assert!(
        later.starts_with("/login?next="),
        "a fresh scan again: {later}"
    );
}
