//! A typed view of the browser session (tower-sessions, stored in SQLite), so handlers never
//! touch raw keys, and the one place that decides what `next=` may point at.

use axum::{extract::FromRequestParts, http::request::Parts};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use crate::{config::HostPattern, error::AppError, store::LoginMethod, util::random_hex};

const BROWSER_KEY: &str = "browser_key";
const USER_ID: &str = "user_id";
const EPOCH: &str = "session_epoch";
const NEXT: &str = "next";
const CSRF: &str = "csrf";
const AUTH_TIME: &str = "auth_time";
const REAUTH: &str = "oidc_reauth";
const METHOD: &str = "login_method";
const FOLLOW_HINT: &str = "follow_hint";
const NOTICE: &str = "notice";
const SHOWN: &str = "form_shown";

/// Why a session ended, said once on the next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ended {
    /// The person logged out.
    LoggedOut,
    /// The person logged out on every device.
    LoggedOutEverywhere,
    /// The account was disabled.
    Disabled,
}

/// The session of the browser making the request.
pub struct WebSession(Session);

impl<S: Send + Sync> FromRequestParts<S> for WebSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Session::from_request_parts(parts, state)
            .await
            .map(WebSession)
            .map_err(|(_, msg)| AppError::Internal(anyhow::anyhow!("session layer missing: {msg}")))
    }
}

impl WebSession {
    /// A new random browser key (128 bits), not yet stored. Login scenes belong to it: only
    /// the browser holding the key may watch or redeem them. A page keeps it with
    /// [`Self::keep_browser_key`] only once it has something to keep (a refused visitor must
    /// cost no stored session).
    pub fn new_browser_key() -> String {
        random_hex(16)
    }

    /// Stores `key` as this browser's key (made by [`Self::new_browser_key`]).
    pub async fn keep_browser_key(&self, key: &str) -> Result<(), AppError> {
        self.0.insert(BROWSER_KEY, key).await?;
        Ok(())
    }

    /// The browser key if this session already has one.
    pub async fn existing_browser_key(&self) -> Result<Option<String>, AppError> {
        Ok(self.0.get(BROWSER_KEY).await?)
    }

    /// The logged-in user's id and the session epoch they logged in at.
    pub async fn user(&self) -> Result<Option<(i64, i64)>, AppError> {
        let Some(id) = self.0.get::<i64>(USER_ID).await? else {
            return Ok(None);
        };
        Ok(Some((id, self.0.get::<i64>(EPOCH).await?.unwrap_or(0))))
    }

    /// Logs `user_id` in at their current session `epoch`, having logged in by `method`. The
    /// session id changes so an id planted before login is worthless.
    pub async fn log_in(
        &self,
        user_id: i64,
        epoch: i64,
        method: LoginMethod,
    ) -> Result<(), AppError> {
        self.0.cycle_id().await?;
        // A fresh CSRF token too: one seen before login is worth nothing after it.
        self.0.remove_value(CSRF).await?;
        self.0.insert(USER_ID, user_id).await?;
        self.0.insert(EPOCH, epoch).await?;
        self.0.insert(AUTH_TIME, crate::util::now()).await?;
        self.0.insert(METHOD, method.as_str()).await?;
        Ok(())
    }

    /// How the person logged in (a scan for a session logged in before this was kept).
    pub async fn login_method(&self) -> Result<LoginMethod, AppError> {
        let stored: Option<String> = self.0.get(METHOD).await?;
        Ok(stored
            .as_deref()
            .and_then(LoginMethod::parse)
            .unwrap_or_default())
    }

    /// Asks the next page to suggest following the Official Account (a web authorization
    /// logs in without following).
    pub async fn set_follow_hint(&self, on: bool) -> Result<(), AppError> {
        if on {
            self.0.insert(FOLLOW_HINT, true).await?;
        } else {
            self.0.remove_value(FOLLOW_HINT).await?;
        }
        Ok(())
    }

    /// Whether to suggest following the account.
    pub async fn follow_hint(&self) -> Result<bool, AppError> {
        Ok(self.0.get::<bool>(FOLLOW_HINT).await?.unwrap_or(false))
    }

    /// When the person last scanned to log in (OIDC's `auth_time`); `None` for a session
    /// logged in before this was kept.
    pub async fn auth_time(&self) -> Result<Option<i64>, AppError> {
        Ok(self.0.get(AUTH_TIME).await?)
    }

    /// Notes that the authorization request at `request` (a path) sent the person to log in:
    /// the login that brings them back to it is the fresh one it asked for.
    pub async fn start_reauth(&self, request: &str) -> Result<(), AppError> {
        self.0.insert(REAUTH, request).await?;
        Ok(())
    }

    /// The authorization request that sent the person to log in, if one is waiting.
    pub async fn reauth_for(&self) -> Result<Option<String>, AppError> {
        Ok(self.0.get(REAUTH).await?)
    }

    /// The fresh login asked for has been used.
    pub async fn clear_reauth(&self) -> Result<(), AppError> {
        self.0.remove_value(REAUTH).await?;
        Ok(())
    }

    /// Ends the session and everything in it.
    pub async fn log_out(&self) -> Result<(), AppError> {
        self.0.flush().await?;
        Ok(())
    }

    /// Ends the session and everything in it, and keeps (in a new session holding nothing
    /// else) why, for the next page to say.
    pub async fn end(&self, why: Ended) -> Result<(), AppError> {
        self.0.flush().await?;
        self.0.insert(NOTICE, why).await?;
        Ok(())
    }

    /// Why the last session ended, once.
    pub async fn take_ended(&self) -> Result<Option<Ended>, AppError> {
        Ok(self.0.remove(NOTICE).await?)
    }

    /// Remembers where to go after login.
    pub async fn set_next(&self, next: Option<ReturnTo>) -> Result<(), AppError> {
        match next {
            Some(path) => self.0.insert(NEXT, path.0).await?,
            None => {
                self.0.remove_value(NEXT).await?;
            }
        }
        Ok(())
    }

    /// Where a login will go, as stored (unchecked: for showing, not for redirecting).
    pub async fn peek_next(&self) -> Result<Option<String>, AppError> {
        Ok(self.0.get(NEXT).await?)
    }

    /// Where to go after login (checked again on the way out, against the hosts allowed
    /// now), `/` by default.
    pub async fn take_next(&self, allowed: &[HostPattern]) -> Result<ReturnTo, AppError> {
        let stored: Option<String> = self.0.remove(NEXT).await?;
        Ok(stored
            .and_then(|s| ReturnTo::parse(&s, allowed))
            .unwrap_or_else(|| ReturnTo(SafePath::home().0)))
    }

    /// The phone (national form) the SMS-code form `step` sent a code to.
    pub async fn code_phone(&self, step: PhoneStep) -> Result<Option<String>, AppError> {
        Ok(self.0.get(step.key()).await?)
    }

    /// Remembers the phone a code was sent to, for the code step of `step`.
    pub async fn set_code_phone(&self, step: PhoneStep, national: &str) -> Result<(), AppError> {
        self.0.insert(step.key(), national).await?;
        Ok(())
    }

    /// Forgets the phone of `step` (done, or the person wants another number).
    pub async fn clear_code_phone(&self, step: PhoneStep) -> Result<(), AppError> {
        self.0.remove_value(step.key()).await?;
        Ok(())
    }

    /// Keeps what the SMS-code form `step` must show next (a POST's outcome), for the page it
    /// redirects to.
    pub async fn set_shown<T: serde::Serialize>(
        &self,
        step: PhoneStep,
        shown: &T,
    ) -> Result<(), AppError> {
        self.0
            .insert(&format!("{SHOWN}:{}", step.key()), shown)
            .await?;
        Ok(())
    }

    /// What the SMS-code form `step` must show, once.
    pub async fn take_shown<T: serde::de::DeserializeOwned>(
        &self,
        step: PhoneStep,
    ) -> Result<Option<T>, AppError> {
        Ok(self.0.remove(&format!("{SHOWN}:{}", step.key())).await?)
    }

    /// The token that every state-changing form of this session must carry.
    pub async fn csrf_token(&self) -> Result<String, AppError> {
        if let Some(token) = self.0.get::<String>(CSRF).await? {
            return Ok(token);
        }
        let token = random_hex(16);
        self.0.insert(CSRF, &token).await?;
        Ok(token)
    }

    /// Refuses a form that doesn't carry this session's CSRF token (a cross-site post, or a
    /// form from a session that has since ended).
    pub async fn check_csrf(&self, submitted: &str) -> Result<(), AppError> {
        let expected: Option<String> = self.0.get(CSRF).await?;
        match expected {
            Some(expected) if bool::from(expected.as_bytes().ct_eq(submitted.as_bytes())) => Ok(()),
            _ => Err(AppError::Forbidden),
        }
    }
}

/// Which SMS-code form a phone number was typed into: each keeps its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneStep {
    /// Binding a phone to a first-time WeChat.
    Bind,
    /// Logging in with an SMS code.
    Login,
}

impl PhoneStep {
    fn key(self) -> &'static str {
        match self {
            PhoneStep::Bind => "bind_phone",
            PhoneStep::Login => "login_phone",
        }
    }
}

/// A path on this site, safe to redirect to: `/` followed by anything that can't make a browser
/// leave the site (`//host`, `/\host`, schemes, control characters are refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePath(String);

impl SafePath {
    /// Parses a `next=` value; `None` when it could lead elsewhere.
    pub fn parse(raw: &str) -> Option<SafePath> {
        let ok = raw.starts_with('/')
            && !raw.starts_with("//")
            && raw.len() <= 1024
            && !raw.contains('\\')
            && !raw.chars().any(|c| c.is_control() || c.is_whitespace());
        ok.then(|| SafePath(raw.to_owned()))
    }

    /// `/`.
    pub fn home() -> SafePath {
        SafePath("/".into())
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a login may return to: a path on this site, or an absolute http(s) URL on one of
/// the hosts `WXLOGIN_ALLOWED_RETURN_HOSTS` allows (the apps behind forward auth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnTo(String);

impl ReturnTo {
    /// Parses a `next=` value; `None` when it could lead anywhere not allowed.
    pub fn parse(raw: &str, allowed: &[HostPattern]) -> Option<ReturnTo> {
        if let Some(path) = SafePath::parse(raw) {
            return Some(ReturnTo(path.0));
        }
        if raw.len() > 2048 || raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return None;
        }
        let url = url::Url::parse(raw).ok()?;
        let ok = matches!(url.scheme(), "http" | "https")
            && url.username().is_empty()
            && url.password().is_none()
            && url
                .host_str()
                .is_some_and(|host| allowed.iter().any(|p| p.matches(host)));
        ok.then(|| ReturnTo(raw.to_owned()))
    }

    /// The path or URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::{HostPattern, ReturnTo, SafePath};

    #[test]
    fn absolute_returns_need_an_allowed_host() {
        let allowed = [HostPattern::parse(".example.com").unwrap()];
        for good in [
            "/admin",
            "https://app.example.com/x?y=1",
            "http://example.com/",
        ] {
            assert!(ReturnTo::parse(good, &allowed).is_some(), "{good}");
        }
        for bad in [
            "https://evil.example/",
            "https://example.com.evil/",
            "https://user@app.example.com/",
            "javascript:alert(1)",
            "ftp://app.example.com/",
            "https://app.example.com/\n",
        ] {
            assert!(ReturnTo::parse(bad, &allowed).is_none(), "{bad}");
        }
        assert!(ReturnTo::parse("https://app.example.com/", &[]).is_none());
    }

    #[test]
    fn only_local_paths_are_accepted() {
        for good in ["/", "/admin?x=1", "/a/b#c"] {
            assert!(SafePath::parse(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil",
            "/\t/evil",
            "javascript:alert(1)",
            "evil.example",
            "/ /evil",
            "/%0a",
            "/\n",
        ] {
            let parsed = SafePath::parse(bad);
            // `/%0a` is a harmless local path (percent-encoded), the rest must be refused.
            if bad == "/%0a" {
                assert!(parsed.is_some());
            } else {
                assert!(parsed.is_none(), "{bad:?}");
            }
        }
    }
}
