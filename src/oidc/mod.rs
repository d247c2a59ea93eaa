//! The OpenID Connect provider's protocol core (OIDC Core 1.0, RFC 6749, RFC 7636): what a
//! request may ask, how a client, a code, a token and an id_token are checked and made. Like
//! `wechat/`, nothing here knows about axum or sqlx; `provider/` serves it and `store/`
//! keeps its records.

pub mod authorize;
pub mod client;
pub mod discovery;
pub mod error;
pub mod jwt;
pub mod pkce;
pub mod scope;
pub mod token;

pub use authorize::{AuthorizeParams, AuthorizeRequest, Prompt, Refusal};
pub use client::{Client, RedirectUri};
pub use error::{ErrorCode, OAuthError};
pub use jwt::{IdClaims, SigningKey};
pub use scope::Scopes;

/// Seconds an authorization code lives (OIDC Core asks for a short life; RFC 6749 says at
/// most 10 minutes).
pub const CODE_TTL: i64 = 60;
/// Seconds an access token lives.
pub const ACCESS_TTL: i64 = 3600;
/// Seconds an id_token is valid.
pub const ID_TOKEN_TTL: i64 = 3600;
/// Seconds a refresh token lives unused (each use makes a new one).
pub const REFRESH_TTL: i64 = 30 * 86_400;

/// 32 random bytes from the OS, base64url without padding: codes, tokens, secrets.
pub fn random_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a code, token or secret: all that is stored of it.
pub fn token_hash(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// The `sub` of a user: a stable, opaque id (an HMAC of the user's row id under this
/// installation's key), never the openid, never the row number.
pub fn subject(key: &[u8; 32], user_id: i64) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(b"wxlogin subject\0");
    mac.update(&user_id.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_stable_opaque_and_distinct() {
        let key = [7u8; 32];
        assert_eq!(subject(&key, 1), subject(&key, 1));
        assert_ne!(subject(&key, 1), subject(&key, 2));
        assert_ne!(subject(&key, 1), subject(&[8u8; 32], 1));
        assert_eq!(subject(&key, 1).len(), 22);
        assert!(!subject(&key, 12345).contains("12345"));
    }

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
