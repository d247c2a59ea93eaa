//! id_tokens: RS256 signing keys (made here, kept by the store), their JWKS entries, signing
//! the claims, and reading an `id_token_hint` back. Checking is `jsonwebtoken`'s; signing is
//! ring's RSA (constant time) on a key parsed once: `jsonwebtoken` parses and validates the
//! private key again for every signature, a fifth of a token exchange's CPU
//! (docs/benchmarks.md). The `rsa` crate only makes keys.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A key that signs id_tokens. The private half never leaves the database and is never
/// printed (`Debug` leaves it out).
#[derive(Clone)]
pub struct SigningKey {
    /// Key id, in each token's header and in the JWKS.
    pub kid: String,
    /// PKCS#1 DER of the private key.
    pub private_der: Vec<u8>,
    /// The public modulus and exponent, base64url.
    pub n: String,
    pub e: String,
    /// When it was made.
    pub created_at: i64,
    /// When a newer key replaced it; it still verifies tokens until they expire.
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new 2048-bit RSA key (slow: tens of milliseconds optimised, seconds unoptimised).
    pub fn generate(now: i64) -> anyhow::Result<SigningKey> {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)?;
        let der = private.to_pkcs1_der()?;
        let n = B64.encode(private.n().to_bytes_be());
        let e = B64.encode(private.e().to_bytes_be());
        Ok(SigningKey {
            kid: crate::oidc::random_token()[..16].to_owned(),
            private_der: der.as_bytes().to_vec(),
            n,
            e,
            created_at: now,
            retired_at: None,
        })
    }

    /// The key's public JWK.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA", "use": "sig", "alg": "RS256",
            "kid": self.kid, "n": self.n, "e": self.e,
        })
    }

    /// The key, parsed and ready to sign.
    pub fn signer(&self) -> anyhow::Result<Signer> {
        let key = ring::signature::RsaKeyPair::from_der(&self.private_der)
            .map_err(|e| anyhow::anyhow!("signing key {} unreadable: {e}", self.kid))?;
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid });
        Ok(Signer {
            header: B64.encode(header.to_string()),
            key: std::sync::Arc::new(key),
        })
    }

    fn decoding_key(&self) -> anyhow::Result<DecodingKey> {
        Ok(DecodingKey::from_rsa_components(&self.n, &self.e)?)
    }
}

/// A parsed private key and its JWS header, kept for many signatures.
#[derive(Clone)]
pub struct Signer {
    /// base64url of the JWS header.
    header: String,
    key: std::sync::Arc<ring::signature::RsaKeyPair>,
}

impl Signer {
    /// The id_token for `claims`: a JWS in compact serialisation (RFC 7515 §7.1), RS256.
    pub fn sign(&self, claims: &IdClaims) -> anyhow::Result<String> {
        let mut jws = String::with_capacity(800);
        jws.push_str(&self.header);
        jws.push('.');
        B64.encode_string(serde_json::to_vec(claims)?, &mut jws);
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                jws.as_bytes(),
                &mut signature,
            )
            .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
        jws.push('.');
        B64.encode_string(&signature, &mut jws);
        Ok(jws)
    }
}

/// The claims of an id_token (OIDC Core §2, §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    /// How the person authenticated: always `["wechat"]`.
    #[serde(default)]
    pub amr: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phone_number_verified: Option<bool>,
}

/// What an `id_token_hint` says, once its signature and issuer check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub sub: String,
    pub aud: String,
}

/// Reads an id_token we issued: signed by one of `keys` (by `kid`), from `issuer`. An expired
/// token is accepted (logout hints usually are), a forged or foreign one is not.
pub fn read_hint(token: &str, keys: &[SigningKey], issuer: &str) -> Option<Hint> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.alg != Algorithm::RS256 {
        return None;
    }
    let kid = header.kid?;
    let key = keys.iter().find(|k| k.kid == kid)?.decoding_key().ok()?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["iss", "sub", "aud"]);
    let data = jsonwebtoken::decode::<IdClaims>(token, &key, &validation).ok()?;
    Some(Hint {
        sub: data.claims.sub,
        aud: data.claims.aud,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_reads_back_and_a_forged_one_does_not() {
        let key = SigningKey::generate(0).unwrap();
        let other = SigningKey::generate(0).unwrap();
        let claims = IdClaims {
            iss: "https://id.example".into(),
            sub: "abc".into(),
            aud: "site".into(),
            exp: 1,
            iat: 0,
            auth_time: 0,
            nonce: Some("n".into()),
            amr: vec!["scan".into()],
            phone_number: None,
            phone_number_verified: None,
        };
        let token = key.signer().unwrap().sign(&claims).unwrap();
        // What jsonwebtoken and any JOSE library expect of the header.
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let hint = read_hint(&token, std::slice::from_ref(&key), "https://id.example").unwrap();
        assert_eq!((hint.sub.as_str(), hint.aud.as_str()), ("abc", "site"));
        assert!(read_hint(&token, std::slice::from_ref(&key), "https://other.example").is_none());
        // Same kid, other key: the signature fails.
        let impostor = SigningKey {
            kid: key.kid.clone(),
            ..other.clone()
        };
        assert!(read_hint(&token, &[impostor], "https://id.example").is_none());
        assert!(
            read_hint(
                "not.a.jwt",
                std::slice::from_ref(&key),
                "https://id.example"
            )
            .is_none()
        );
        assert_eq!(key.jwk()["kid"], key.kid.as_str());
        assert!(!format!("{key:?}").contains("private"));
    }
}
