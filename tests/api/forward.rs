//! Forward auth: `/auth/verify` for reverse proxies, the way back to an allowed host after
//! login, and real nginx (`auth_request`) in front of a dummy app.

use std::{net::SocketAddr, path::PathBuf, process::Child, time::Duration};

use wxlogin::config::HostPattern;

use crate::helpers::{TestApp, location, spawn_app, spawn_app_with};

async fn verify(app: &TestApp, browser: &reqwest::Client) -> reqwest::Response {
    browser.get(app.url("/auth/verify")).send().await.unwrap()
}

#[tokio::test]
async fn verify_says_who_is_logged_in_and_refuses_the_rest() {
    let app = spawn_app_with(|s| s.forward.send_phone = true).await;
    let browser = app.browser();
    assert_eq!(verify(&app, &browser).await.status(), 401);
    app.log_in_new_user(&browser, "o_forward_1", "13800138031")
        .await;
    let ok = verify(&app, &browser).await;
    assert_eq!(ok.status(), 200);
    let sub = ok.headers()["x-wxlogin-user"].to_str().unwrap().to_owned();
    assert_eq!(sub.len(), 22, "an opaque subject: {sub}");
    assert_eq!(ok.headers()["x-wxlogin-phone"], "+8613800138031");
    // The same person for every call.
    let again = verify(&app, &browser).await;
    assert_eq!(again.headers()["x-wxlogin-user"].to_str().unwrap(), sub);
    app.exec("UPDATE users SET disabled = TRUE WHERE phone = '+8613800138031'")
        .await;
    assert_eq!(verify(&app, &browser).await.status(), 403);
}

#[tokio::test]
async fn the_phone_header_is_sent_only_when_configured() {
    let app = spawn_app().await;
    let browser = app.browser();
    app.log_in_new_user(&browser, "o_forward_2", "13800138032")
        .await;
    let ok = verify(&app, &browser).await;
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().get("x-wxlogin-phone").is_none());
}

#[tokio::test]
async fn behind_a_trusted_proxy_a_person_is_sent_to_log_in_and_back_to_an_allowed_host() {
    let app = spawn_app_with(|s| {
        s.ops.trusted_proxies = vec![wxlogin::config::IpNet::parse("127.0.0.1").unwrap()];
        s.forward.allowed_return_hosts = vec![HostPattern::parse(".example.com").unwrap()];
    })
    .await;
    let browser = app.browser();
    let ask = |host: &'static str| {
        browser
            .get(app.url("/auth/verify"))
            .header("accept", "text/html")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", host)
            .header("x-forwarded-uri", "/wiki/page?x=1&y=2")
            .send()
    };
    let response = ask("wiki.example.com").await.unwrap();
    assert_eq!(response.status(), 302);
    let to = location(&response);
    let login = to.strip_prefix(&app.address).expect(&to).to_owned();
    assert!(
        login.starts_with("/login?next=https%3A%2F%2Fwiki.example.com"),
        "{login}"
    );
    // A host not allowed: just 401, no way back offered.
    assert_eq!(ask("evil.example.net").await.unwrap().status(), 401);
    // After the scan, the person lands back on the app.
    let (back, _) = app
        .log_in_at(&browser, &login, "o_forward_3", Some("13800138033"))
        .await;
    assert_eq!(back, "https://wiki.example.com/wiki/page?x=1&y=2");
    // A hostile next on the login page itself is dropped: home instead.
    let other = app.browser();
    let (back, _) = app
        .log_in_at(
            &other,
            "/login?next=https%3A%2F%2Fevil.example.net%2F",
            "o_forward_4",
            Some("13800138034"),
        )
        .await;
    assert_eq!(back, "/");
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let app = spawn_app_with(|s| {
        s.forward.allowed_return_hosts = vec![HostPattern::parse(".example.com").unwrap()];
    })
    .await;
    let response = app
        .browser()
        .get(app.url("/auth/verify"))
        .header("accept", "text/html")
        .header("x-forwarded-host", "wiki.example.com")
        .header("x-forwarded-uri", "/")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

/// A dummy app that answers with the user nginx passed it.
async fn dummy_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let user = headers
            .get("x-wxlogin-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nobody")
            .to_owned();
        format!("hello {user}")
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// nginx, run in the foreground from a temporary prefix; stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> PathBuf {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("nginx is not installed: scripts/test installs it (apt-get install nginx)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx protecting `upstream` with `auth_request` to wxlogin at `wx`, as README
/// "Protect any app" says.
async fn nginx(wx: &str, upstream: SocketAddr) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_request /_wxlogin_verify;
            auth_request_set $wxlogin_user $upstream_http_x_wxlogin_user;
            proxy_set_header X-Wxlogin-User $wxlogin_user;
            proxy_pass http://{upstream};
            error_page 401 = @wxlogin_login;
        }}
        location = /_wxlogin_verify {{
            internal;
            proxy_pass http://{wx}/auth/verify;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
        location @wxlogin_login {{
            return 302 http://{wx}/login?next=$scheme://$http_host$request_uri;
        }}
    }}
}}
"#
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = std::process::Command::new(nginx_binary())
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .spawn()
        .expect("nginx starts");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Nginx {
        child,
        port,
        _dir: dir,
    }
}

#[tokio::test]
async fn nginx_auth_request_lets_a_logged_in_person_through_to_the_app() {
    let app = spawn_app_with(|s| {
        s.forward.allowed_return_hosts = vec![HostPattern::parse("127.0.0.1").unwrap()];
    })
    .await;
    let upstream = dummy_upstream().await;
    let nginx = nginx(app.host(), upstream).await;
    let page = format!("http://127.0.0.1:{}/notes", nginx.port);
    let browser = app.browser();
    let anonymous = browser.get(&page).send().await.unwrap();
    assert_eq!(anonymous.status(), 302, "anonymous: to the login page");
    let to = location(&anonymous);
    let login = to.strip_prefix(&app.address).expect(&to).to_owned();
    let (back, _) = app
        .log_in_at(&browser, &login, "o_nginx", Some("13800138041"))
        .await;
    assert_eq!(back, page, "back to the app after the scan");
    let through = browser.get(&page).send().await.unwrap();
    assert_eq!(through.status(), 200);
    let body = through.text().await.unwrap();
    let sub = verify(&app, &browser).await.headers()["x-wxlogin-user"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(body, format!("hello {sub}"), "the app sees who it is");
}
