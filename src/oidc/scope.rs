//! Scopes: the ones wxlogin knows, parsed from a request's space-separated list.

/// The scopes of a request that wxlogin knows; others are ignored (RFC 6749 §3.3 lets the
/// server grant less than asked, and says so in the token response's `scope`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    /// `openid`: required.
    pub openid: bool,
    /// `phone`: `phone_number` and `phone_number_verified`.
    pub phone: bool,
    /// `wechat`: `wechat_openid` and `wechat_unionid`, for sites that call WeChat themselves.
    pub wechat: bool,
    /// `offline_access`: a refresh token.
    pub offline_access: bool,
}

impl Scopes {
    /// Reads a space-separated list; unknown names are dropped.
    pub fn parse(raw: &str) -> Scopes {
        let mut scopes = Scopes::default();
        for name in raw.split(' ').filter(|s| !s.is_empty()) {
            match name {
                "openid" => scopes.openid = true,
                "phone" => scopes.phone = true,
                "wechat" => scopes.wechat = true,
                "offline_access" => scopes.offline_access = true,
                _ => {}
            }
        }
        scopes
    }

    /// The granted scopes as a space-separated list, in a fixed order.
    pub fn to_list(self) -> String {
        [
            (self.openid, "openid"),
            (self.phone, "phone"),
            (self.wechat, "wechat"),
            (self.offline_access, "offline_access"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// Only what both allow (a refresh may ask for less).
    pub fn within(self, granted: Scopes) -> Scopes {
        Scopes {
            openid: self.openid && granted.openid,
            phone: self.phone && granted.phone,
            wechat: self.wechat && granted.wechat,
            offline_access: self.offline_access && granted.offline_access,
        }
    }
}

/// Every scope wxlogin grants, for discovery.
pub const SUPPORTED: [&str; 4] = ["openid", "phone", "wechat", "offline_access"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scopes_are_dropped_and_the_list_round_trips() {
        let s = Scopes::parse("email  openid offline_access phone");
        assert!(s.openid && s.phone && s.offline_access && !s.wechat);
        assert_eq!(s.to_list(), "openid phone offline_access");
        assert_eq!(Scopes::parse(&s.to_list()), s);
        assert!(!Scopes::parse("profile").openid);
        let less = Scopes::parse("openid wechat").within(s);
        assert_eq!(less.to_list(), "openid");
    }
}
