//! Safe-mode crypto with the official sample key and appid.
//!
//! - the input as an `Encrypt` string, and as raw ciphertext bytes (base64-encoded first),
//!   into `crypto::decrypt` / `decrypt_any`: never panics;
//! - the input as a plaintext block sequence, encrypted with the sample key *without* the
//!   scheme's framing, into `decrypt`: reaches the padding, length, appid and UTF-8 checks that
//!   random ciphertexts almost never get past; never panics, and an `Ok` message must be the
//!   bytes the length field points at;
//! - the input as an encrypted passive reply into `crypto::decrypt_reply`: never panics;
//! - round trips: for UTF-8 input, `encrypt` then `decrypt` gives it back, and
//!   `encrypt_reply` then `decrypt_reply` gives back the inner reply.

#![no_main]

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use libfuzzer_sys::fuzz_target;
use wxlogin::wechat::crypto::{self, AesKey};
use wxlogin::wechat::message;

const SAMPLE_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const OTHER_KEY: &str = "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj";
const SAMPLE_APPID: &str = "wxb11529c136998cb6";
const SAMPLE_TOKEN: &str = "pamtest";

/// The 32 raw key bytes (the EncodingAESKey's last character carries 2 spare bits; the
/// lenient decode ignores them, as `AesKey::parse` does).
fn raw_key() -> [u8; 32] {
    use base64::alphabet;
    use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
    let engine = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    engine
        .decode(format!("{SAMPLE_KEY}="))
        .expect("sample key decodes")
        .try_into()
        .expect("32 bytes")
}

/// AES-256-CBC with IV = key[..16] and no padding: `plain.len()` must be a multiple of 16.
fn raw_encrypt(key: &[u8; 32], plain: &[u8]) -> String {
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&key[..16]);
    let c = cbc::Encryptor::<Aes256>::new(key.into(), &iv.into())
        .encrypt_padded_vec_mut::<NoPadding>(plain);
    STANDARD.encode(c)
}

fn random_from(data: &[u8]) -> [u8; 16] {
    let mut random = [0u8; 16];
    let n = data.len().min(16);
    random[..n].copy_from_slice(&data[..n]);
    random
}

fuzz_target!(|data: &[u8]| {
    let key = AesKey::parse(SAMPLE_KEY).expect("sample key parses");
    let other = AesKey::parse(OTHER_KEY).expect("other key parses");

    // 1. The input as raw ciphertext.
    let b64 = STANDARD.encode(data);
    let _ = crypto::decrypt(&key, SAMPLE_APPID, &b64);

    // 2. The input as a plaintext, encrypted without framing (zero-filled to a whole block).
    let mut plain = data.to_vec();
    plain.resize(data.len().div_ceil(16) * 16, 0);
    if !plain.is_empty() {
        let c = raw_encrypt(&raw_key(), &plain);
        if let Ok(msg) = crypto::decrypt(&key, SAMPLE_APPID, &c) {
            // Accepted: the message is exactly the `len` bytes after random(16) | len(4),
            // followed by the appid.
            let len = u32::from_be_bytes(plain[16..20].try_into().unwrap()) as usize;
            assert_eq!(msg.len(), len);
            assert_eq!(&plain[20..20 + len], msg.as_bytes());
            assert_eq!(
                &plain[20 + len..20 + len + SAMPLE_APPID.len()],
                SAMPLE_APPID.as_bytes()
            );
        }
    }

    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    // 3. The input as an Encrypt string and as an encrypted reply.
    let _ = crypto::decrypt(&key, SAMPLE_APPID, s);
    let _ = crypto::decrypt_any(&[other.clone(), key.clone()], SAMPLE_APPID, s);
    let _ = crypto::decrypt_reply(&key, SAMPLE_TOKEN, SAMPLE_APPID, s);

    // 4. Round trips.
    let c = crypto::encrypt(&key, SAMPLE_APPID, s, random_from(data));
    assert_eq!(crypto::decrypt(&key, SAMPLE_APPID, &c).as_deref(), Ok(s));
    assert_eq!(
        crypto::decrypt_any(&[other, key.clone()], SAMPLE_APPID, &c).as_deref(),
        Ok(s)
    );

    let inner = message::text_reply("openid", "gh_x", 1409304348, s);
    // The nonce is echoed in CDATA; the input is an arbitrary one.
    let xml = crypto::encrypt_reply(&key, SAMPLE_TOKEN, SAMPLE_APPID, &inner, 1409304348, s);
    assert_eq!(
        crypto::decrypt_reply(&key, SAMPLE_TOKEN, SAMPLE_APPID, &xml).as_deref(),
        Ok(inner.as_str()),
        "encrypted reply did not round-trip: {xml:?}"
    );
});
