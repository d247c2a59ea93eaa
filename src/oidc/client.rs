//! Registered sites (clients): their redirect URIs and how they prove who they are.

use subtle::ConstantTimeEq;
use url::Url;

/// A site registered to log its users in through wxlogin.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// Shown to the person on the login page.
    pub name: String,
    /// SHA-256 of the secret; `None` for a public client (a single-page or native app,
    /// which must use PKCE).
    pub secret_hash: Option<[u8; 32]>,
    /// Where codes may be sent, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Where the person may be sent after logging out, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// When it was registered.
    pub created_at: i64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("public", &self.is_public())
            .field("redirect_uris", &self.redirect_uris)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A public client has no secret.
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// Whether `secret` is this client's secret (constant time). A public client has none.
    pub fn secret_matches(&self, secret: &str) -> bool {
        match &self.secret_hash {
            Some(hash) => bool::from(hash.ct_eq(&super::token_hash(secret))),
            None => false,
        }
    }

    /// Whether codes may go to `uri` (exact match, as OIDC Core §3.1.2.1 asks).
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    /// Whether `uri` is a registered post-logout redirect.
    pub fn allows_post_logout(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    /// The origins of the redirect URIs: where a single-page app of this client runs, and
    /// so the origins that may call the token, userinfo and revocation endpoints (CORS).
    pub fn origins(&self) -> impl Iterator<Item = String> + '_ {
        self.redirect_uris
            .iter()
            .filter_map(|u| Url::parse(u).ok())
            .map(|u| u.origin().ascii_serialization())
    }
}

/// A redirect URI fit to be registered: absolute, https (or http on a loopback host, for
/// development and native apps), no fragment, no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Checks `raw`; the error says why it can't be registered.
    pub fn parse(raw: &str) -> Result<RedirectUri, String> {
        let url = Url::parse(raw).map_err(|e| format!("`{raw}` is not an absolute URL: {e}"))?;
        let loopback = matches!(
            url.host(),
            Some(url::Host::Ipv4(ip)) if ip.is_loopback()
        ) || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
            || url.host_str() == Some("localhost");
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => return Err(format!("`{raw}`: http is allowed only on loopback hosts")),
            other => return Err(format!("`{raw}`: scheme {other} (use https)")),
        }
        if url.fragment().is_some() {
            return Err(format!("`{raw}`: a redirect URI has no fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("`{raw}`: no user or password in a redirect URI"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{raw}`: no host"));
        }
        // Stored as given: redirect URIs are compared as strings.
        Ok(RedirectUri(raw.to_owned()))
    }

    /// The URI.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URI.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_or_loopback_http() {
        for good in [
            "https://app.example.com/callback",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:9000/cb",
        ] {
            assert!(RedirectUri::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            "javascript:alert(1)",
            "/relative",
            "ftp://127.0.0.1/cb",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_and_redirects_match_exactly() {
        let client = Client {
            id: "c".into(),
            name: "Site".into(),
            secret_hash: Some(crate::oidc::token_hash("s3cret")),
            redirect_uris: vec!["https://a.example/cb".into()],
            post_logout_redirect_uris: vec![],
            created_at: 0,
        };
        assert!(client.secret_matches("s3cret"));
        assert!(!client.secret_matches("s3cret "));
        assert!(client.allows_redirect("https://a.example/cb"));
        assert!(!client.allows_redirect("https://a.example/cb/"));
        assert!(!client.allows_redirect("https://a.example/cb?x"));
        assert_eq!(client.origins().collect::<Vec<_>>(), ["https://a.example"]);
        assert!(!format!("{client:?}").contains("secret_hash"));
    }
}
