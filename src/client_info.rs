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
    /// What per-client limits count by: the IPv4 address, or the /64 network of an IPv6
    /// address (one subscriber line usually has a whole /64, so counting each address alone
    /// would let one client have 2^64 quotas). Empty when unknown.
    pub limit_key: String,
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
        let ip = peer.map(|peer| {
            client_ip(peer, &parts.headers, &state.settings.ops.trusted_proxies).to_canonical()
        });
        let limit_key = ip.map(limit_key).unwrap_or_default();
        let ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(300).collect())
            .unwrap_or_default();
        Ok(ClientInfo {
            ip,
            limit_key,
            user_agent,
        })
    }
}

/// The key per-client limits count by: an IPv4 address as it is, an IPv6 address as its /64
/// (`2001:db8:1:2::/64`).
pub fn limit_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(network))
        }
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

/// What a user agent says it is, briefly: "Chrome / Windows", `None` when it names nothing
/// known. Only names the header itself plainly contains are shown (an `Edg/` browser is shown
/// as the `Chrome` it also claims, not as "Edge"), and callers present the result as the
/// browser's own claim: anyone can send any User-Agent, so a page shown to a victim by an
/// attacker can say "MicroMessenger / iPhone" too.
pub fn describe_user_agent(ua: &str) -> Option<String> {
    let browser = ["MicroMessenger", "Firefox/", "Chrome/", "Safari/"]
        .iter()
        .find(|needle| ua.contains(*needle))
        .map(|needle| needle.trim_end_matches('/'));
    let system = ["Android", "iPhone", "iPad", "Windows", "Mac OS X", "Linux"]
        .into_iter()
        .find(|needle| ua.contains(needle));
    match (browser, system) {
        (Some(browser), Some(system)) => Some(format!("{browser} / {system}")),
        (Some(name), None) | (None, Some(name)) => Some(name.to_owned()),
        (None, None) => None,
    }
}

/// What kind of browser a login page is opened in, which decides the way in it offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// WeChat's own browser (`MicroMessenger` in the User-Agent): web authorization works.
    WechatBrowser,
    /// Any other browser on a phone or tablet (WeCom's too: it is not WeChat): the QR code
    /// can't be scanned from the same screen.
    Phone,
    /// A computer: scan the QR code with a phone.
    Desktop,
}

impl Device {
    /// The kind of browser behind `user_agent`.
    pub fn of(user_agent: &str) -> Device {
        // WeCom's browser says `MicroMessenger` too, and adds `wxwork`.
        if user_agent.contains("MicroMessenger") && !user_agent.contains("wxwork") {
            return Device::WechatBrowser;
        }
        let phone = ["Mobile", "Android", "iPhone", "iPad", "HarmonyOS"]
            .iter()
            .any(|needle| user_agent.contains(needle));
        if phone {
            Device::Phone
        } else {
            Device::Desktop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wechat_wecom_phones_and_computers_are_told_apart() {
        let wechat = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
            (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI";
        let wecom = "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 Chrome/116.0 Mobile \
            Safari/537.36 wxwork/4.1.10 MicroMessenger/7.0.1";
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
            (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        let desktop =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36";
        assert_eq!(Device::of(wechat), Device::WechatBrowser);
        assert_eq!(Device::of(wecom), Device::Phone);
        assert_eq!(Device::of(safari), Device::Phone);
        assert_eq!(Device::of(desktop), Device::Desktop);
        assert_eq!(Device::of(""), Device::Desktop);
    }

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
        assert_eq!(describe_user_agent(chrome).unwrap(), "Chrome / Windows");
        assert_eq!(describe_user_agent("curl/8"), None);
        let edge = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0";
        assert_eq!(describe_user_agent(edge).unwrap(), "Chrome / Mac OS X");
        // Every name shown is in the header as it came.
        for ua in [
            chrome,
            edge,
            "Mozilla/5.0 (iPhone) MicroMessenger/8.0",
            "Linux",
        ] {
            let shown = describe_user_agent(ua).unwrap();
            for name in shown.split(" / ") {
                assert!(ua.contains(name), "{name} not in {ua}");
            }
        }
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let key = |s: &str| limit_key(s.parse().unwrap());
        assert_eq!(key("203.0.113.9"), "203.0.113.9");
        assert_eq!(key("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            key("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            key("2001:db8:1:2::9")
        );
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
    }
}
