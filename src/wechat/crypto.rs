//! Safe-mode ("安全模式") message crypto: the EncodingAESKey, AES-256-CBC encryption and
//! decryption of callback bodies, and the encrypted passive-reply envelope.
//!
//! The scheme, from the official docs and sample code:
//! - key = base64_decode(EncodingAESKey + "="): 43 characters -> 32 bytes (AES-256);
//! - IV = the first 16 bytes of the key (fixed; this is WeChat's design, not ours);
//! - plaintext = random(16) | msg_len(4 bytes, big-endian) | msg | appid;
//! - PKCS#7 padding to a multiple of **32** bytes (pad value 1..=32), not AES's 16;
//! - the ciphertext travels base64-encoded in `<Encrypt>`, signed by
//!   `msg_signature = sha1(sort(token, timestamp, nonce, Encrypt))`.
//!
//! CBC here has no MAC, so callers must check `msg_signature` *before* calling [`decrypt`], and
//! must not tell the sender which decryption step failed (no padding oracle).

use aes::Aes256;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use rand::RngCore;
use rand::rngs::OsRng;

use super::message;
use super::signature;

/// WeChat pads to multiples of 32 bytes, so the pad value is 1..=32.
const PAD_BLOCK: usize = 32;
/// AES block size: the ciphertext length must be a multiple of it.
const AES_BLOCK: usize = 16;
/// random(16) + msg_len(4) precede the message.
const HEADER: usize = 20;

/// Decoding the EncodingAESKey. Its last base64 character carries 2 bits beyond the 32 key
/// bytes; real keys (and the official sample key, which ends in `G`) often have them non-zero,
/// so they are ignored, as WeChat's own sample code does. The strict STANDARD engine would
/// refuse such keys.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

type Enc = cbc::Encryptor<Aes256>;
type Dec = cbc::Decryptor<Aes256>;

/// A safe-mode AES key: the 32 bytes decoded from an EncodingAESKey. Its `Debug` output never
/// shows the key.
#[derive(Clone)]
pub struct AesKey([u8; 32]);

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKey(<redacted>)")
    }
}

/// Why an EncodingAESKey was refused. The messages never include the key itself.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KeyError {
    /// Not exactly 43 characters.
    #[error("EncodingAESKey must be exactly 43 characters, got {0}")]
    Length(usize),
    /// A character outside the standard base64 alphabet (`A-Z a-z 0-9 + /`), at this
    /// 0-based position.
    #[error(
        "EncodingAESKey has a character outside the base64 alphabet (A-Z a-z 0-9 + /) at position {0}"
    )]
    Character(usize),
    /// The characters are valid but do not decode to 32 bytes.
    #[error("EncodingAESKey does not decode to a 32-byte key")]
    Decode,
}

impl AesKey {
    /// EncodingAESKey: exactly 43 chars of base64 (standard alphabet); key =
    /// base64_decode(k + "="). Errors name the problem.
    pub fn parse(encoding_aes_key: &str) -> Result<AesKey, KeyError> {
        let count = encoding_aes_key.chars().count();
        if count != 43 {
            return Err(KeyError::Length(count));
        }
        if let Some(pos) = encoding_aes_key
            .chars()
            .position(|c| !(c.is_ascii_alphanumeric() || c == '+' || c == '/'))
        {
            return Err(KeyError::Character(pos));
        }
        let bytes = KEY_ENGINE
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| KeyError::Decode)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Decode)?;
        Ok(AesKey(key))
    }

    /// The IV: WeChat uses the first 16 bytes of the key.
    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

/// Why a ciphertext or encrypted reply was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CryptoError {
    /// The `Encrypt` value is not valid base64.
    #[error("ciphertext is not valid base64")]
    Base64,
    /// The ciphertext is not a multiple of 16 bytes, or too short to hold a message.
    #[error("ciphertext has a bad length")]
    BadLength,
    /// The PKCS#7 padding (block 32, pad 1..=32) is wrong: usually the wrong key.
    #[error("bad padding")]
    Padding,
    /// The 4-byte message length does not fit in what was decrypted.
    #[error("bad message length")]
    MessageLength,
    /// The trailing appid is not ours.
    #[error("appid does not match")]
    AppId,
    /// The message is not UTF-8.
    #[error("message is not UTF-8")]
    Utf8,
    /// No key was given to [`decrypt_any`].
    #[error("no key configured")]
    NoKey,
    /// The encrypted reply's MsgSignature does not match.
    #[error("MsgSignature does not match")]
    Signature,
    /// The encrypted reply XML is not well-formed or lacks a field.
    #[error("malformed encrypted reply")]
    Malformed,
}

/// AES-256-CBC, IV = key[0..16], plaintext = random(16) | len(4, big-endian) | msg | appid,
/// PKCS#7 padded to a multiple of 32 bytes (WeChat's block size for padding, pad value
/// 1..=32). Returns base64.
///
/// `random` must come from a CSPRNG outside tests (see [`encrypt_reply`]). A message over
/// 4 GiB cannot be represented (the length field is 4 bytes); its length saturates and the
/// result will not decrypt. HTTP bodies are bounded far below that.
pub fn encrypt(key: &AesKey, appid: &str, msg: &str, random: [u8; 16]) -> String {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    let body = HEADER + msg.len() + appid.len();
    let pad = PAD_BLOCK - body % PAD_BLOCK; // 1..=32
    let mut plain = Vec::with_capacity(body + pad);
    plain.extend_from_slice(&random);
    plain.extend_from_slice(&len.to_be_bytes());
    plain.extend_from_slice(msg.as_bytes());
    plain.extend_from_slice(appid.as_bytes());
    // `pad` is at most 32, so the cast cannot truncate.
    plain.resize(body + pad, pad as u8);
    // The length is a multiple of 32, hence of 16: NoPadding cannot fail.
    let cipher =
        Enc::new(&key.0.into(), &key.iv().into()).encrypt_padded_vec_mut::<NoPadding>(&plain);
    STANDARD.encode(cipher)
}

/// Inverse of [`encrypt`]. Checks the padding (1..=32, all pad bytes equal), the 4-byte length
/// against what remains, and that the trailing appid equals `appid` (constant-time not needed
/// for appid). Returns the message.
///
/// Check `msg_signature` first: this function alone does not authenticate the ciphertext.
pub fn decrypt(key: &AesKey, appid: &str, encrypt_b64: &str) -> Result<String, CryptoError> {
    let cipher = STANDARD
        .decode(encrypt_b64.trim())
        .map_err(|_| CryptoError::Base64)?;
    // Anything valid is at least one 32-byte padding block.
    if cipher.len() < PAD_BLOCK || cipher.len() % AES_BLOCK != 0 {
        return Err(CryptoError::BadLength);
    }
    let plain = Dec::new(&key.0.into(), &key.iv().into())
        .decrypt_padded_vec_mut::<NoPadding>(&cipher)
        .map_err(|_| CryptoError::BadLength)?;

    // PKCS#7 with a 32-byte block: the last byte says how many bytes (1..=32) to drop, and
    // they must all hold that value.
    let pad = usize::from(*plain.last().ok_or(CryptoError::BadLength)?);
    if !(1..=PAD_BLOCK).contains(&pad) || pad > plain.len() {
        return Err(CryptoError::Padding);
    }
    let (content, padding) = plain.split_at(plain.len() - pad);
    if padding.iter().any(|&b| usize::from(b) != pad) {
        return Err(CryptoError::Padding);
    }

    // random(16) | len(4, big-endian) | msg | appid
    let Some(rest) = content.get(HEADER..) else {
        return Err(CryptoError::MessageLength);
    };
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&content[16..HEADER]);
    let len =
        usize::try_from(u32::from_be_bytes(len_bytes)).map_err(|_| CryptoError::MessageLength)?;
    if len > rest.len() {
        return Err(CryptoError::MessageLength);
    }
    let (msg, their_appid) = rest.split_at(len);
    if their_appid != appid.as_bytes() {
        return Err(CryptoError::AppId);
    }
    String::from_utf8(msg.to_vec()).map_err(|_| CryptoError::Utf8)
}

/// Tries each key in order (current first, then previous during rotation); first success wins,
/// else the first key's error ([`CryptoError::NoKey`] if `keys` is empty).
pub fn decrypt_any(keys: &[AesKey], appid: &str, encrypt_b64: &str) -> Result<String, CryptoError> {
    let mut first_error = None;
    for key in keys {
        match decrypt(key, appid, encrypt_b64) {
            Ok(msg) => return Ok(msg),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(CryptoError::NoKey))
}

/// Encrypted passive reply: `<xml><Encrypt><![CDATA[..]]></Encrypt><MsgSignature><![CDATA[..]]>
/// </MsgSignature><TimeStamp>..</TimeStamp><Nonce><![CDATA[..]]></Nonce></xml>`, with
/// msg_signature = signature::sign(&[token, timestamp, nonce, encrypt]) and a fresh random(16)
/// from a CSPRNG (rand::rngs::OsRng).
pub fn encrypt_reply(
    key: &AesKey,
    token: &str,
    appid: &str,
    reply_xml: &str,
    timestamp: i64,
    nonce: &str,
) -> String {
    let mut random = [0u8; 16];
    OsRng.fill_bytes(&mut random);
    let encrypted = encrypt(key, appid, reply_xml, random);
    let timestamp = timestamp.to_string();
    let msg_signature = signature::sign(&[token, &timestamp, nonce, &encrypted]);
    format!(
        "<xml><Encrypt>{}</Encrypt><MsgSignature>{}</MsgSignature>\
         <TimeStamp>{}</TimeStamp><Nonce>{}</Nonce></xml>",
        message::cdata(&encrypted),
        message::cdata(&msg_signature),
        timestamp,
        message::cdata(nonce),
    )
}

/// Parse such an encrypted reply (for the sandbox phone), check MsgSignature (constant time),
/// decrypt → the inner reply xml.
pub fn decrypt_reply(
    key: &AesKey,
    token: &str,
    appid: &str,
    xml: &str,
) -> Result<String, CryptoError> {
    let reply = message::parse_encrypted_reply(xml).map_err(|_| CryptoError::Malformed)?;
    if !signature::verify_msg(
        token,
        &reply.timestamp,
        &reply.nonce,
        &reply.encrypt,
        &reply.msg_signature,
    ) {
        return Err(CryptoError::Signature);
    }
    decrypt(key, appid, &reply.encrypt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The published sample from WeChat's message-encryption docs / sample code.
    const SAMPLE_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const SAMPLE_APPID: &str = "wxb11529c136998cb6";
    const SAMPLE_TOKEN: &str = "pamtest";
    const SAMPLE_MSG: &str = "我是中文abcd123";
    const SAMPLE_CIPHER: &str =
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==";

    fn sample_key() -> AesKey {
        AesKey::parse(SAMPLE_KEY).expect("sample key parses")
    }

    fn other_key() -> AesKey {
        AesKey::parse("ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj").expect("key parses")
    }

    /// Encrypts raw bytes (a multiple of 16) with no padding, to craft bad plaintexts.
    fn raw_encrypt(key: &AesKey, plain: &[u8]) -> String {
        let c =
            Enc::new(&key.0.into(), &key.iv().into()).encrypt_padded_vec_mut::<NoPadding>(plain);
        STANDARD.encode(c)
    }

    /// random | len | msg | appid, without padding.
    fn body(len_field: u32, msg: &[u8], appid: &[u8]) -> Vec<u8> {
        let mut v = b"aaaabbbbccccdddd".to_vec();
        v.extend_from_slice(&len_field.to_be_bytes());
        v.extend_from_slice(msg);
        v.extend_from_slice(appid);
        v
    }

    fn pad32(mut v: Vec<u8>) -> Vec<u8> {
        let pad = 32 - v.len() % 32;
        v.resize(v.len() + pad, pad as u8);
        v
    }

    #[test]
    fn official_sample_encrypts_exactly() {
        let key = sample_key();
        assert_eq!(
            encrypt(&key, SAMPLE_APPID, SAMPLE_MSG, *b"aaaabbbbccccdddd"),
            SAMPLE_CIPHER
        );
    }

    #[test]
    fn official_sample_decrypts() {
        assert_eq!(
            decrypt(&sample_key(), SAMPLE_APPID, SAMPLE_CIPHER).as_deref(),
            Ok(SAMPLE_MSG)
        );
    }

    #[test]
    fn wrong_appid_refused() {
        assert_eq!(
            decrypt(&sample_key(), "wxb11529c136998cb7", SAMPLE_CIPHER),
            Err(CryptoError::AppId)
        );
        assert_eq!(
            decrypt(&sample_key(), "", SAMPLE_CIPHER),
            Err(CryptoError::AppId)
        );
    }

    #[test]
    fn wrong_key_refused() {
        assert!(decrypt(&other_key(), SAMPLE_APPID, SAMPLE_CIPHER).is_err());
    }

    #[test]
    fn bad_padding_refused() {
        let key = sample_key();
        let content = body(3, b"abc", SAMPLE_APPID.as_bytes()); // 41 bytes
        // Pad value 0.
        let mut p = content.clone();
        p.resize(64, 0);
        assert_eq!(
            decrypt(&key, SAMPLE_APPID, &raw_encrypt(&key, &p)),
            Err(CryptoError::Padding)
        );
        // Pad value 33 (> 32).
        let mut p = content.clone();
        p.resize(96, 33);
        assert_eq!(
            decrypt(&key, SAMPLE_APPID, &raw_encrypt(&key, &p)),
            Err(CryptoError::Padding)
        );
        // Pad bytes that disagree.
        let mut p = content.clone();
        p.resize(64, 23);
        p[50] = 22;
        assert_eq!(
            decrypt(&key, SAMPLE_APPID, &raw_encrypt(&key, &p)),
            Err(CryptoError::Padding)
        );
        // AES-style 16-byte padding is fine when it is self-consistent (content 41 -> 48, pad 7),
        // as WeChat's own decoder accepts any 1..=32 pad.
        let mut p = content.clone();
        p.resize(48, 7);
        assert_eq!(
            decrypt(&key, SAMPLE_APPID, &raw_encrypt(&key, &p)).as_deref(),
            Ok("abc")
        );
    }

    #[test]
    fn bad_base64_and_lengths_refused() {
        let key = sample_key();
        assert_eq!(
            decrypt(&key, SAMPLE_APPID, "not base64!"),
            Err(CryptoError::Base64)
        );
        assert_eq!(
            decrypt(&key, SAMPLE_APPID, &SAMPLE_CIPHER[..87]),
            Err(CryptoError::Base64)
        );
        assert_eq!(decrypt(&key, SAMPLE_APPID, ""), Err(CryptoError::BadLength));
        // Truncated to a valid base64 of 48 bytes: padding breaks or the length does.
        let c = STANDARD.decode(SAMPLE_CIPHER).unwrap();
        assert!(decrypt(&key, SAMPLE_APPID, &STANDARD.encode(&c[..48])).is_err());
        // Not a multiple of 16.
        assert_eq!(
            decrypt(&key, SAMPLE_APPID, &STANDARD.encode(&c[..40])),
            Err(CryptoError::BadLength)
        );
        // One AES block only: too short.
        assert_eq!(
            decrypt(&key, SAMPLE_APPID, &STANDARD.encode(&c[..16])),
            Err(CryptoError::BadLength)
        );
    }

    #[test]
    fn length_field_too_large_refused() {
        let key = sample_key();
        let p = pad32(body(100, b"abc", SAMPLE_APPID.as_bytes()));
        assert_eq!(
            decrypt(&key, SAMPLE_APPID, &raw_encrypt(&key, &p)),
            Err(CryptoError::MessageLength)
        );
        let p = pad32(body(u32::MAX, b"abc", SAMPLE_APPID.as_bytes()));
        assert_eq!(
            decrypt(&key, SAMPLE_APPID, &raw_encrypt(&key, &p)),
            Err(CryptoError::MessageLength)
        );
        // Too short to hold random + length at all: 32 bytes of padding only.
        let p = vec![32u8; 32];
        assert_eq!(
            decrypt(&key, SAMPLE_APPID, &raw_encrypt(&key, &p)),
            Err(CryptoError::MessageLength)
        );
        // A length that eats into the appid: the appid no longer matches.
        let p = pad32(body(5, b"abc", SAMPLE_APPID.as_bytes()));
        assert_eq!(
            decrypt(&key, SAMPLE_APPID, &raw_encrypt(&key, &p)),
            Err(CryptoError::AppId)
        );
    }

    #[test]
    fn non_utf8_refused() {
        let key = sample_key();
        let p = pad32(body(2, &[0xff, 0xfe], SAMPLE_APPID.as_bytes()));
        assert_eq!(
            decrypt(&key, SAMPLE_APPID, &raw_encrypt(&key, &p)),
            Err(CryptoError::Utf8)
        );
    }

    #[test]
    fn key_rotation() {
        let old = sample_key();
        let new = other_key();
        let from_old = encrypt(&old, SAMPLE_APPID, "hello", [7; 16]);
        let from_new = encrypt(&new, SAMPLE_APPID, "world", [7; 16]);
        let keys = [new.clone(), old.clone()];
        assert_eq!(
            decrypt_any(&keys, SAMPLE_APPID, &from_old).as_deref(),
            Ok("hello")
        );
        assert_eq!(
            decrypt_any(&keys, SAMPLE_APPID, &from_new).as_deref(),
            Ok("world")
        );
        // Only the new key: the old ciphertext fails with the first key's error.
        assert_eq!(
            decrypt_any(std::slice::from_ref(&new), SAMPLE_APPID, &from_old),
            decrypt(&new, SAMPLE_APPID, &from_old)
        );
        assert!(decrypt_any(&[new], SAMPLE_APPID, &from_old).is_err());
        assert_eq!(
            decrypt_any(&[], SAMPLE_APPID, &from_old),
            Err(CryptoError::NoKey)
        );
    }

    #[test]
    fn key_parse() {
        assert!(AesKey::parse(SAMPLE_KEY).is_ok());
        assert_eq!(
            AesKey::parse(&SAMPLE_KEY[..42]).unwrap_err(),
            KeyError::Length(42)
        );
        assert_eq!(
            AesKey::parse(&format!("{SAMPLE_KEY}A")).unwrap_err(),
            KeyError::Length(44)
        );
        assert_eq!(
            AesKey::parse(&format!("{SAMPLE_KEY}=")).unwrap_err(),
            KeyError::Length(44)
        );
        assert_eq!(AesKey::parse("").unwrap_err(), KeyError::Length(0));
        let bad = format!("{}-", &SAMPLE_KEY[..42]);
        assert_eq!(AesKey::parse(&bad).unwrap_err(), KeyError::Character(42));
        let bad = format!("={}", &SAMPLE_KEY[1..]);
        assert_eq!(AesKey::parse(&bad).unwrap_err(), KeyError::Character(0));
        // 43 characters, one of them multi-byte.
        let bad = format!("é{}", &SAMPLE_KEY[1..]);
        assert_eq!(AesKey::parse(&bad).unwrap_err(), KeyError::Character(0));
        let bad = format!("{} ", &SAMPLE_KEY[..42]);
        assert_eq!(AesKey::parse(&bad).unwrap_err(), KeyError::Character(42));
    }

    #[test]
    fn debug_hides_key() {
        let shown = format!("{:?}", sample_key());
        assert_eq!(shown, "AesKey(<redacted>)");
        let err = AesKey::parse(&format!("{}!", &SAMPLE_KEY[..42])).unwrap_err();
        assert!(!err.to_string().contains(&SAMPLE_KEY[..20]));
    }

    #[test]
    fn reply_round_trip_and_tampering() {
        let key = sample_key();
        let inner = message::text_reply("openid", "gh_x", 1409304348, "你好 ]]> <b>");
        let xml = encrypt_reply(
            &key,
            SAMPLE_TOKEN,
            SAMPLE_APPID,
            &inner,
            1409304348,
            "xxxxxx",
        );
        assert!(xml.starts_with("<xml><Encrypt><![CDATA["));
        assert!(
            xml.contains(
                "<TimeStamp>1409304348</TimeStamp><Nonce><![CDATA[xxxxxx]]></Nonce></xml>"
            )
        );
        assert_eq!(
            decrypt_reply(&key, SAMPLE_TOKEN, SAMPLE_APPID, &xml).as_deref(),
            Ok(inner.as_str())
        );

        // Wrong token: the signature fails before any decryption.
        assert_eq!(
            decrypt_reply(&key, "other", SAMPLE_APPID, &xml),
            Err(CryptoError::Signature)
        );
        // Tampered signature, timestamp, nonce.
        let sig_start = xml.find("<MsgSignature><![CDATA[").unwrap() + 23;
        let mut tampered = xml.clone();
        let c = if &xml[sig_start..sig_start + 1] == "0" {
            "1"
        } else {
            "0"
        };
        tampered.replace_range(sig_start..sig_start + 1, c);
        assert_eq!(
            decrypt_reply(&key, SAMPLE_TOKEN, SAMPLE_APPID, &tampered),
            Err(CryptoError::Signature)
        );
        let tampered = xml.replace("1409304348", "1409304349");
        assert_eq!(
            decrypt_reply(&key, SAMPLE_TOKEN, SAMPLE_APPID, &tampered),
            Err(CryptoError::Signature)
        );
        let tampered = xml.replace("xxxxxx", "xxxxxy");
        assert_eq!(
            decrypt_reply(&key, SAMPLE_TOKEN, SAMPLE_APPID, &tampered),
            Err(CryptoError::Signature)
        );
        // Wrong appid or key, with a valid signature.
        assert_eq!(
            decrypt_reply(&key, SAMPLE_TOKEN, "wx0", &xml),
            Err(CryptoError::AppId)
        );
        assert!(decrypt_reply(&other_key(), SAMPLE_TOKEN, SAMPLE_APPID, &xml).is_err());
        // Not an encrypted reply.
        assert_eq!(
            decrypt_reply(&key, SAMPLE_TOKEN, SAMPLE_APPID, &inner),
            Err(CryptoError::Malformed)
        );
        assert_eq!(
            decrypt_reply(&key, SAMPLE_TOKEN, SAMPLE_APPID, "success"),
            Err(CryptoError::Malformed)
        );

        // Each reply uses fresh randomness.
        let again = encrypt_reply(
            &key,
            SAMPLE_TOKEN,
            SAMPLE_APPID,
            &inner,
            1409304348,
            "xxxxxx",
        );
        assert_ne!(xml, again);
    }

    proptest! {
        #[test]
        fn decrypt_never_panics_on_strings(s in ".*") {
            let _ = decrypt(&sample_key(), SAMPLE_APPID, &s);
        }

        #[test]
        fn decrypt_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decrypt(&sample_key(), SAMPLE_APPID, &STANDARD.encode(&bytes));
        }

        // Random ciphertexts rarely get past the padding check; encrypting arbitrary
        // plaintexts reaches the length, appid and UTF-8 checks too.
        #[test]
        fn decrypt_never_panics_on_crafted_plaintext(
            blocks in proptest::collection::vec(any::<[u8; 16]>(), 1..12),
            pad in 0u8..40,
            len in prop_oneof![0u32..80, any::<u32>()],
        ) {
            let key = sample_key();
            let mut plain: Vec<u8> = blocks.concat();
            if plain.len() >= 20 {
                plain[16..20].copy_from_slice(&len.to_be_bytes());
            }
            let n = plain.len();
            for b in plain[n.saturating_sub(usize::from(pad))..].iter_mut() {
                *b = pad;
            }
            let _ = decrypt(&key, SAMPLE_APPID, &raw_encrypt(&key, &plain));
        }

        #[test]
        fn encrypt_decrypt_round_trip(msg in ".*", appid in "[a-z0-9]{0,24}", random in any::<[u8; 16]>()) {
            let key = sample_key();
            let c = encrypt(&key, &appid, &msg, random);
            prop_assert_eq!(STANDARD.decode(&c).unwrap().len() % 32, 0);
            prop_assert_eq!(decrypt(&key, &appid, &c), Ok(msg));
        }
    }
}
