//! Who is asking: the client's IP address and user agent, for login history and WeChat replies.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, header::USER_AGENT, request::Parts},
};

use crate::{config::IpNet, state::AppState};

/// The client of a request. The IP is the socket's peer, unless that peer is a trusted proxy:
/// then it is the nearest address in `X-Forwarded-For` that isn't one of our proxies (a
/// client can put anything at the left end of that header, so it is read from the right).
/// The user agent is cut to a sane length.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Peer IP address, or empty when unknown.
    pub ip: String,
    /// `User-Agent`, at most 300 characters.
    pub user_agent: String,
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let ip = peer
            .map(|peer| {
                client_ip(peer, &parts.headers, &state.settings.ops.trusted_proxies).to_string()
            })
            .unwrap_or_default();
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(300).collect())
            .unwrap_or_default();
        Ok(ClientInfo { ip, user_agent })
    }
}

/// The client's address, seen through our trusted proxies.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => client = ip,
            Ok(ip) => return ip,
            // Garbage in the chain: stop at the last address we could vouch for.
            Err(_) => return client,
        }
    }
    client
}

/// A short, human description of a user agent: "Chrome on Windows".
pub fn describe_user_agent(ua: &str) -> String {
    let browser = [
        ("MicroMessenger", "WeChat"),
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name)
    .unwrap_or("Browser");
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    match system {
        Some(system) => format!("{browser} / {system}"),
        None => browser.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy = vec![IpNet::parse("10.0.0.0/8").unwrap()];
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(stranger, &headers("1.2.3.4"), &proxy), stranger);
        assert_eq!(
            client_ip(peer, &headers("1.2.3.4"), &proxy).to_string(),
            "1.2.3.4"
        );
        // A client-supplied left end is ignored; the proxy appended the real peer.
        assert_eq!(
            client_ip(peer, &headers("6.6.6.6, 1.2.3.4, 10.0.0.3"), &proxy).to_string(),
            "1.2.3.4"
        );
        assert_eq!(client_ip(peer, &headers("nonsense"), &proxy), peer);
        assert_eq!(client_ip(peer, &HeaderMap::new(), &proxy), peer);
    }

    #[test]
    fn user_agents_are_described_briefly() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        assert_eq!(describe_user_agent(chrome), "Chrome / Windows");
        assert_eq!(describe_user_agent("curl/8"), "Browser");
    }
}
