//! SMS codes: made from the OS CSPRNG, kept only as a keyed hash bound to their login and
//! phone, and checked against a try the store has already counted.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{error::AppResult, phone::Phone, state::AppState, store::CodeTry, util::now};

/// How long a code is valid.
pub const CODE_TTL_SECONDS: i64 = 300;

/// A new 6-digit code.
pub fn new_code() -> String {
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32))
}

/// HMAC-SHA256 of the code, bound to its login and phone, with this installation's key.
pub fn code_hash(key: &[u8; 32], scene: &str, phone: &Phone, code: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in [scene, phone.e164(), code] {
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Whether `code` has the form of a code: 6 digits.
pub fn well_formed(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// How a submitted code compares.
#[derive(Debug, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right: the id of the code row.
    Right(i64),
    /// Wrong; `left` tries remain.
    Wrong {
        /// Tries left.
        left: i64,
    },
    /// Expired, used up, or already used.
    Dead,
    /// No code was sent for this phone and login.
    None,
}

/// Counts a try at the newest code of this login and phone, then compares: at most
/// `max_attempts` comparisons are ever made per code, however many tries arrive at once (a
/// right one counts as a try too).
pub async fn check(
    state: &AppState,
    scene: &str,
    phone: &Phone,
    code: &str,
    max_attempts: i64,
) -> AppResult<CodeCheck> {
    let counted = state
        .store
        .binding
        .count_try(scene, phone.e164(), max_attempts, now())
        .await?;
    Ok(match counted {
        CodeTry::Counted {
            id,
            code_hash: stored,
            attempts,
        } => {
            let given = code_hash(&state.code_key, scene, phone, code);
            if bool::from(given.ct_eq(&stored)) {
                CodeCheck::Right(id)
            } else {
                CodeCheck::Wrong {
                    left: max_attempts - attempts,
                }
            }
        }
        CodeTry::Dead => CodeCheck::Dead,
        CodeTry::None => CodeCheck::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_their_hash_is_bound_to_login_and_phone() {
        let code = new_code();
        assert!(well_formed(&code), "{code}");
        assert!(!well_formed("12345") && !well_formed("12345a") && !well_formed("１２３４５６"));
        let phone = Phone::parse("13812345678").unwrap();
        let other = Phone::parse("13812345679").unwrap();
        let key = [7u8; 32];
        let hash = code_hash(&key, "scene", &phone, "123456");
        assert_eq!(hash, code_hash(&key, "scene", &phone, "123456"));
        assert_ne!(hash, code_hash(&key, "other", &phone, "123456"));
        assert_ne!(hash, code_hash(&key, "scene", &other, "123456"));
        assert_ne!(hash, code_hash(&[8u8; 32], "scene", &phone, "123456"));
    }
}
