//! Callback signatures: the SHA-1 checks WeChat puts on every callback request.
//!
//! Plaintext mode: the query carries `signature = sha1(sort(token, timestamp, nonce))` on the
//! GET verification request (which also carries `echostr`, NOT part of the signature) and on
//! every POST. Safe mode adds `msg_signature = sha1(sort(token, timestamp, nonce, Encrypt))`,
//! where `Encrypt` is the base64 ciphertext from the body. "sort" is a plain byte-order sort of
//! the strings, which are then concatenated without separators; the digest is lowercase hex.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Sorts `parts` in byte order, concatenates them, and returns the lowercase hex SHA-1.
///
/// This is the one primitive behind both `signature` and `msg_signature`; it is also what the
/// sandbox uses to sign the callbacks it sends.
pub fn sign(parts: &[&str]) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    // `str` ordering is byte-wise lexicographic, which is what WeChat's sample code
    // (sort of ASCII strings) does.
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Plaintext-mode check of a callback's query `signature`:
/// `sha1(sort(token, timestamp, nonce)) == signature`, compared in constant time.
///
/// WeChat sends lowercase hex, so the bytes are compared exactly (an uppercase or otherwise
/// altered signature is refused).
pub fn verify(token: &str, timestamp: &str, nonce: &str, signature: &str) -> bool {
    equal(&sign(&[token, timestamp, nonce]), signature)
}

/// Safe-mode check of a callback's query `msg_signature`:
/// `sha1(sort(token, timestamp, nonce, encrypt)) == msg_signature`, where `encrypt` is the
/// body's `<Encrypt>` value. Constant-time comparison.
pub fn verify_msg(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    msg_signature: &str,
) -> bool {
    equal(&sign(&[token, timestamp, nonce, encrypt]), msg_signature)
}

/// Constant-time equality of two strings' bytes. A length mismatch returns false at once;
/// the length of a SHA-1 hex digest (40) is public, so that leaks nothing.
fn equal(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The official sample from the "接入指南" docs: token `test`, timestamp `1410685589`,
    // nonce `test`. The sorted concatenation is "1410685589testtest"; echostr is not signed.
    const SAMPLE_SIG: &str = "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff";

    #[test]
    fn official_sample() {
        assert_eq!(sign(&["test", "1410685589", "test"]), SAMPLE_SIG);
        assert!(verify("test", "1410685589", "test", SAMPLE_SIG));
    }

    #[test]
    fn order_of_parts_does_not_matter() {
        assert_eq!(
            sign(&["1410685589", "test", "test"]),
            sign(&["test", "test", "1410685589"])
        );
    }

    #[test]
    fn refuses_wrong_signatures() {
        // Another timestamp.
        assert!(!verify("test", "1410685590", "test", SAMPLE_SIG));
        // Another token.
        assert!(!verify("tesT", "1410685589", "test", SAMPLE_SIG));
        // One digit changed.
        assert!(!verify(
            "test",
            "1410685589",
            "test",
            "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe"
        ));
        // Uppercase hex is not what WeChat sends.
        assert!(!verify(
            "test",
            "1410685589",
            "test",
            &SAMPLE_SIG.to_uppercase()
        ));
        // Wrong lengths.
        assert!(!verify("test", "1410685589", "test", &SAMPLE_SIG[..39]));
        assert!(!verify(
            "test",
            "1410685589",
            "test",
            &format!("{SAMPLE_SIG}0")
        ));
        // Empty.
        assert!(!verify("test", "1410685589", "test", ""));
        assert!(!verify("", "", "", ""));
    }

    #[test]
    fn msg_signature_covers_encrypt() {
        let sig = sign(&["tok", "123", "n", "CIPHER"]);
        assert!(verify_msg("tok", "123", "n", "CIPHER", &sig));
        assert!(!verify_msg("tok", "123", "n", "CIPHEr", &sig));
        assert!(!verify_msg("tok", "123", "n", "CIPHER", ""));
        // The plaintext-mode signature is not a valid msg_signature.
        let plain = sign(&["tok", "123", "n"]);
        assert!(!verify_msg("tok", "123", "n", "CIPHER", &plain));
    }

    proptest! {
        #[test]
        fn sign_then_verify(token in ".*", ts in "[0-9]{0,12}", nonce in ".*") {
            let sig = sign(&[&token, &ts, &nonce]);
            prop_assert_eq!(sig.len(), 40);
            prop_assert!(verify(&token, &ts, &nonce, &sig));
        }

        #[test]
        fn any_single_char_change_fails(
            token in "[a-zA-Z0-9]{1,32}",
            ts in "[0-9]{10}",
            nonce in "[a-zA-Z0-9]{1,16}",
            pos in 0usize..40,
            replacement in proptest::char::any(),
        ) {
            let sig = sign(&[&token, &ts, &nonce]);
            let mut chars: Vec<char> = sig.chars().collect();
            prop_assume!(chars[pos] != replacement);
            chars[pos] = replacement;
            let tampered: String = chars.into_iter().collect();
            prop_assert!(!verify(&token, &ts, &nonce, &tampered));
        }
    }
}
