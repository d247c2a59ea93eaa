//! The token endpoint's request (RFC 6749 §4.1.3, §6): which grant, and who the client says
//! it is (`client_secret_basic`, `client_secret_post`, or a public client's bare id).

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{ErrorCode, OAuthError, Scopes};

/// The form of a token request, as sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenParams {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// What the client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Exchange a code.
    Code {
        code: String,
        redirect_uri: String,
        verifier: Option<String>,
    },
    /// Exchange a refresh token, optionally for fewer scopes.
    Refresh {
        token: String,
        scope: Option<Scopes>,
    },
}

/// Who the client says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    pub client_id: String,
    /// `None`: a public client.
    pub secret: Option<String>,
    /// It came in the `Authorization` header (a failure then answers 401 with a challenge).
    pub basic: bool,
}

impl TokenParams {
    /// The grant asked for.
    pub fn grant(&self) -> Result<Grant, OAuthError> {
        let field = |v: &Option<String>, name: &str| {
            v.clone()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
        };
        match self.grant_type.as_deref() {
            Some("authorization_code") => Ok(Grant::Code {
                code: field(&self.code, "code")?,
                redirect_uri: field(&self.redirect_uri, "redirect_uri")?,
                verifier: self.code_verifier.clone().filter(|v| !v.is_empty()),
            }),
            Some("refresh_token") => Ok(Grant::Refresh {
                token: field(&self.refresh_token, "refresh_token")?,
                scope: self.scope.as_deref().map(Scopes::parse),
            }),
            None | Some("") => Err(OAuthError::invalid_request("grant_type is missing")),
            Some(_) => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type must be authorization_code or refresh_token",
            )),
        }
    }

    /// The client's credentials, from the `Authorization: Basic` header or the form (one of
    /// the two, not both: RFC 6749 §2.3).
    pub fn client_auth(&self, authorization: Option<&str>) -> Result<ClientAuth, OAuthError> {
        client_auth(
            authorization,
            self.client_id.as_deref(),
            self.client_secret.as_deref(),
        )
    }
}

/// The client's credentials of a request to the token or revocation endpoint.
pub fn client_auth(
    authorization: Option<&str>,
    client_id: Option<&str>,
    client_secret: Option<&str>,
) -> Result<ClientAuth, OAuthError> {
    let client_id = client_id.filter(|s| !s.is_empty());
    let client_secret = client_secret.filter(|s| !s.is_empty());
    if let Some(header) = authorization {
        if client_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "client credentials in both the header and the form",
            ));
        }
        let (id, secret) = parse_basic(header)
            .ok_or_else(|| OAuthError::invalid_client("malformed Basic authorization"))?;
        if client_id.is_some_and(|form_id| form_id != id) {
            return Err(OAuthError::invalid_client(
                "client_id differs from the authorization header",
            ));
        }
        return Ok(ClientAuth {
            client_id: id,
            secret: Some(secret),
            basic: true,
        });
    }
    match client_id {
        Some(id) => Ok(ClientAuth {
            client_id: id.to_owned(),
            secret: client_secret.map(str::to_owned),
            basic: false,
        }),
        None => Err(OAuthError::invalid_client("no client authentication")),
    }
}

/// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    let (id, secret) = (unescape(id)?, unescape(secret)?);
    (!id.is_empty()).then_some((id, secret))
}

/// A successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub id_token: String,
    pub scope: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn basic_credentials_are_url_decoded() {
        let auth = client_auth(Some(&basic("my%20site:p%3Ass")), None, None).unwrap();
        assert_eq!(auth.client_id, "my site");
        assert_eq!(auth.secret.as_deref(), Some("p:ss"));
        assert!(auth.basic);
        assert!(client_auth(Some("Bearer x"), None, None).is_err());
        assert!(client_auth(Some(&basic("a:b")), None, Some("b")).is_err());
        assert!(client_auth(Some(&basic("a:b")), Some("c"), None).is_err());
        let public = client_auth(None, Some("spa"), None).unwrap();
        assert_eq!(public.secret, None);
        assert_eq!(
            client_auth(None, None, None).unwrap_err().error,
            ErrorCode::InvalidClient
        );
    }

    #[test]
    fn grants_are_read_with_their_fields() {
        let p: TokenParams =
            serde_urlencoded::from_str("grant_type=authorization_code&code=c&redirect_uri=r")
                .unwrap();
        assert!(matches!(p.grant(), Ok(Grant::Code { verifier: None, .. })));
        let p: TokenParams = serde_urlencoded::from_str("grant_type=authorization_code").unwrap();
        assert_eq!(p.grant().unwrap_err().error, ErrorCode::InvalidRequest);
        let p: TokenParams = serde_urlencoded::from_str("grant_type=password").unwrap();
        assert_eq!(
            p.grant().unwrap_err().error,
            ErrorCode::UnsupportedGrantType
        );
    }
}
