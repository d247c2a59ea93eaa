//! Web authorization (网页授权) of an Official Account, `snsapi_base`: inside WeChat's own
//! browser, a page sends the person to WeChat, which comes straight back (silently, no
//! prompt) with a code; the server exchanges the code for the person's openid.
//!
//! Protocol facts that shape this file:
//! - `GET https://open.weixin.qq.com/connect/oauth2/authorize?appid=&redirect_uri=<urlencoded>
//!   &response_type=code&scope=snsapi_base&state=#wechat_redirect`. The redirect's domain must
//!   be the console's 网页授权域名 (a domain, no scheme); `state` comes back as it was sent.
//! - `GET sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code` answers
//!   `{access_token, expires_in, refresh_token, openid, scope, is_snapshotuser, unionid?}`.
//!   Codes are single use and live 5 minutes: 40029 is a bad code, 40163 a used one.
//! - `is_snapshotuser = 1`: a virtual user of a "snapshot page" (a page opened from Moments
//!   before the person chose to use it in full); their openid is not a person's.
//! - It does not make the person follow the account.

use serde::Deserialize;
use url::Url;

/// Errcode: the code is not valid.
pub const BAD_CODE: i64 = 40029;
/// Errcode: the code was used already.
pub const USED_CODE: i64 = 40163;

/// Where to send WeChat's browser to authorize, coming back to `redirect_uri` with `state`.
pub fn authorize_url(base: &Url, appid: &str, redirect_uri: &str, state: &str) -> String {
    let mut url = base
        .join("connect/oauth2/authorize")
        .expect("relative path joins");
    url.query_pairs_mut()
        .append_pair("appid", appid)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", "snsapi_base")
        .append_pair("state", state);
    // WeChat's own marker: without it, some versions of its browser show an error page.
    url.set_fragment(Some("wechat_redirect"));
    url.to_string()
}

/// What `sns/oauth2/access_token` says about the person. The web access token it also gives
/// is not kept: `snsapi_base` needs nothing more than the openid.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Authorized {
    /// The person, for this Official Account.
    pub openid: String,
    /// The scope granted.
    #[serde(default)]
    pub scope: String,
    /// 1 for the virtual user of a snapshot page.
    #[serde(default)]
    pub is_snapshotuser: u8,
    /// Only when the account is linked to an Open Platform account.
    #[serde(default)]
    pub unionid: Option<String>,
}

impl Authorized {
    /// Whether this is the virtual user of a snapshot page, not a person.
    pub fn is_snapshot(&self) -> bool {
        self.is_snapshotuser == 1
    }
}

/// Whether `code` could be a code WeChat gave (it is echoed from a query string: anything
/// else is refused before it reaches WeChat).
pub fn well_formed_code(code: &str) -> bool {
    (1..=128).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_url_carries_every_parameter_and_the_wechat_marker() {
        let base = Url::parse("https://open.weixin.qq.com").unwrap();
        let url = authorize_url(
            &base,
            "wx0123456789abcdef",
            "https://login.example.com/login/wechat",
            "abc",
        );
        assert_eq!(
            url,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx0123456789abcdef\
             &redirect_uri=https%3A%2F%2Flogin.example.com%2Flogin%2Fwechat\
             &response_type=code&scope=snsapi_base&state=abc#wechat_redirect"
        );
    }

    #[test]
    fn answers_and_codes_are_read_as_documented() {
        let answer: Authorized = serde_json::from_str(
            r#"{"access_token":"AT","expires_in":7200,"refresh_token":"RT","openid":"o_1",
                "scope":"snsapi_base","is_snapshotuser":1}"#,
        )
        .unwrap();
        assert!(answer.is_snapshot() && answer.openid == "o_1" && answer.unionid.is_none());
        assert!(well_formed_code("061Abc-_9"));
        assert!(!well_formed_code("") && !well_formed_code("a b") && !well_formed_code("x&y=1"));
    }
}
