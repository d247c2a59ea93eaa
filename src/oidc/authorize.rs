//! The authorization request (OIDC Core §3.1.2.1): code flow only, PKCE S256, `prompt` and
//! `max_age`. A request whose client or redirect URI can't be trusted is refused on our own
//! page; any other fault goes back to the site's redirect URI (RFC 6749 §4.1.2.1).

use serde::Deserialize;

use super::{Client, ErrorCode, OAuthError, Scopes, pkce};

/// The query (or form) of an authorization request, as sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeParams {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub response_mode: Option<String>,
    /// Accepted and ignored: the person identifies themselves by scanning.
    pub login_hint: Option<String>,
    /// Request objects are not supported (OIDC Core §6): refused with `request_not_supported`.
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

/// What to do about `prompt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// Log in if needed.
    Default,
    /// Never show a page: no session means `login_required`.
    None,
    /// Always scan again, even with a session.
    Login,
}

/// A checked authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Scopes,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// S256 challenge, when the client sent one (public clients must).
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    /// The longest the person's last scan may be ago, in seconds.
    pub max_age: Option<i64>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown client or unregistered redirect URI: shown on our page, never redirected.
    Show(String),
    /// Sent back to the registered redirect URI with this error (and `state`).
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

impl AuthorizeParams {
    /// The redirect URI a refusal may go to: the one sent, if `client` registered it.
    pub fn trusted_redirect(&self, client: &Client) -> Result<String, Refusal> {
        let Some(uri) = self.redirect_uri.as_deref().filter(|u| !u.is_empty()) else {
            return Err(Refusal::Show("redirect_uri is missing".into()));
        };
        if !client.allows_redirect(uri) {
            return Err(Refusal::Show(format!(
                "redirect_uri {uri} is not registered for this site"
            )));
        }
        Ok(uri.to_owned())
    }

    /// Checks the request against its (known) `client`.
    pub fn check(&self, client: &Client) -> Result<AuthorizeRequest, Refusal> {
        let redirect_uri = self.trusted_redirect(client)?;
        let state = self.state.clone().filter(|s| !s.is_empty());
        let refuse = |code: ErrorCode, why: &str| Refusal::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            error: OAuthError::new(code, why),
        };
        if self.request.is_some() || self.request_uri.is_some() {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "request objects are not supported",
            ));
        }
        match self.response_type.as_deref() {
            Some("code") => {}
            None | Some("") => {
                return Err(refuse(
                    ErrorCode::InvalidRequest,
                    "response_type is missing",
                ));
            }
            Some(_) => {
                return Err(refuse(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ));
            }
        }
        if !matches!(self.response_mode.as_deref(), None | Some("query")) {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "only response_mode=query is supported",
            ));
        }
        let scope = Scopes::parse(self.scope.as_deref().unwrap_or(""));
        if !scope.openid {
            return Err(refuse(ErrorCode::InvalidScope, "scope must contain openid"));
        }
        let code_challenge = match (
            self.code_challenge.as_deref().filter(|c| !c.is_empty()),
            self.code_challenge_method.as_deref(),
        ) {
            (None, _) if client.is_public() => {
                return Err(refuse(
                    ErrorCode::InvalidRequest,
                    "a public client must use PKCE (code_challenge with S256)",
                ));
            }
            (None, _) => None,
            (Some(challenge), Some("S256")) if pkce::challenge_is_well_formed(challenge) => {
                Some(challenge.to_owned())
            }
            (Some(_), Some("S256")) => {
                return Err(refuse(
                    ErrorCode::InvalidRequest,
                    "malformed code_challenge",
                ));
            }
            (Some(_), _) => {
                return Err(refuse(
                    ErrorCode::InvalidRequest,
                    "code_challenge_method must be S256",
                ));
            }
        };
        let prompt = match self.prompt.as_deref().map(str::trim) {
            None | Some("") | Some("consent") | Some("select_account") => Prompt::Default,
            Some("none") => Prompt::None,
            Some("login") => Prompt::Login,
            Some(other) if other.split(' ').any(|p| p == "none") => {
                return Err(refuse(
                    ErrorCode::InvalidRequest,
                    "prompt=none can't be combined with another value",
                ));
            }
            Some(other) if other.split(' ').any(|p| p == "login") => Prompt::Login,
            Some(_) => return Err(refuse(ErrorCode::InvalidRequest, "unknown prompt value")),
        };
        let max_age = match self.max_age.as_deref().filter(|m| !m.is_empty()) {
            None => None,
            Some(raw) => match raw.parse::<i64>() {
                Ok(age) if age >= 0 => Some(age),
                _ => {
                    return Err(refuse(
                        ErrorCode::InvalidRequest,
                        "max_age must be a number of seconds",
                    ));
                }
            },
        };
        let nonce = self.nonce.clone().filter(|n| !n.is_empty());
        for (name, value) in [("state", &state), ("nonce", &nonce)] {
            if value.as_ref().is_some_and(|v| v.len() > 512) {
                return Err(refuse(
                    ErrorCode::InvalidRequest,
                    &format!("{name} is longer than 512 characters"),
                ));
            }
        }
        Ok(AuthorizeRequest {
            client_id: client.id.clone(),
            redirect_uri,
            scope,
            state,
            nonce,
            code_challenge,
            prompt,
            max_age,
        })
    }
}

impl AuthorizeRequest {
    /// Whether a login at `auth_time` is recent enough for this request at `now`.
    pub fn fresh_enough(&self, auth_time: i64, now: i64) -> bool {
        self.max_age.is_none_or(|age| now - auth_time <= age)
    }
}

/// `redirect_uri` with `pairs` added to its query (RFC 6749 §4.1.2: keep its own query).
pub fn with_query(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (k, v) in pairs {
                    query.append_pair(k, v);
                }
            }
            url.into()
        }
        // Registered URIs parse; this is only for form's sake.
        Err(_) => redirect_uri.to_owned(),
    }
}

/// The parameters of a `next` that is an authorization request waiting behind a login.
pub fn pending_in(next: &str) -> Option<AuthorizeParams> {
    let query = next
        .strip_prefix(super::discovery::AUTHORIZE)?
        .strip_prefix('?')?;
    serde_urlencoded::from_str(query).ok()
}

/// The client id of a `next` that is an authorization request, for the login page to name
/// the site.
pub fn client_of_next(next: &str) -> Option<String> {
    pending_in(next)?.client_id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(public: bool) -> Client {
        Client {
            id: "site".into(),
            name: "Site".into(),
            secret_hash: (!public).then(|| crate::oidc::token_hash("s")),
            redirect_uris: vec!["https://site.example/cb".into()],
            post_logout_redirect_uris: vec![],
            created_at: 0,
        }
    }

    fn params(extra: &str) -> AuthorizeParams {
        serde_urlencoded::from_str(&format!(
            "client_id=site&redirect_uri=https%3A%2F%2Fsite.example%2Fcb&response_type=code&scope=openid&state=xyz{extra}"
        ))
        .unwrap()
    }

    fn error_of(r: Result<AuthorizeRequest, Refusal>) -> ErrorCode {
        match r {
            Err(Refusal::Redirect { error, state, .. }) => {
                assert_eq!(state.as_deref(), Some("xyz"));
                error.error
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_good_request_passes() {
        let ok = params("&nonce=n1&prompt=login&max_age=60")
            .check(&client(false))
            .unwrap();
        assert_eq!(ok.nonce.as_deref(), Some("n1"));
        assert_eq!(ok.prompt, Prompt::Login);
        assert!(ok.fresh_enough(100, 160) && !ok.fresh_enough(100, 161));
    }

    #[test]
    fn untrusted_redirects_are_shown_not_followed() {
        let mut p = params("");
        p.redirect_uri = Some("https://evil.example/cb".into());
        assert!(matches!(p.check(&client(false)), Err(Refusal::Show(_))));
        p.redirect_uri = None;
        assert!(matches!(p.check(&client(false)), Err(Refusal::Show(_))));
    }

    #[test]
    fn faults_go_back_to_the_site() {
        let c = client(false);
        let mut p = params("");
        p.response_type = Some("token".into());
        assert_eq!(error_of(p.check(&c)), ErrorCode::UnsupportedResponseType);
        assert_eq!(
            error_of(params("").check(&client(true))),
            ErrorCode::InvalidRequest,
            "public clients need PKCE"
        );
        let mut p = params("&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        p.code_challenge_method = Some("plain".into());
        assert_eq!(error_of(p.check(&c)), ErrorCode::InvalidRequest);
        p.code_challenge_method = Some("S256".into());
        assert!(p.check(&client(true)).is_ok());
        let mut p = params("");
        p.scope = Some("phone".into());
        assert_eq!(error_of(p.check(&c)), ErrorCode::InvalidScope);
        assert_eq!(
            error_of(params("&prompt=none%20login").check(&c)),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            error_of(params("&max_age=-1").check(&c)),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn the_client_of_a_pending_request_is_found() {
        assert_eq!(
            client_of_next("/oidc/authorize?scope=openid&client_id=a%20b").as_deref(),
            Some("a b")
        );
        assert_eq!(client_of_next("/admin?client_id=x"), None);
    }

    #[test]
    fn the_redirect_keeps_its_own_query() {
        assert_eq!(
            with_query(
                "https://a.example/cb?x=1",
                &[("code", "c d"), ("state", "s")]
            ),
            "https://a.example/cb?x=1&code=c+d&state=s"
        );
    }
}
