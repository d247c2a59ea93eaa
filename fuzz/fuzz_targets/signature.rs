//! Callback signatures.
//!
//! The input is split into (token, timestamp, nonce, signature, encrypt): the first four bytes
//! are lengths (each taken modulo what is left), the rest is cut in that order, and each piece
//! is decoded as UTF-8 (invalid bytes become U+FFFD). Checks:
//!
//! - `verify` and `verify_msg` never panic;
//! - `sign` is 40 lowercase hex digits and ignores the order of its parts;
//! - `verify(t, ts, n, &sign(&[t, ts, n]))` holds, and `verify` agrees with plain string
//!   equality against `sign` on the arbitrary signature (same for `verify_msg`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use wxlogin::wechat::signature::{sign, verify, verify_msg};

fn split(data: &[u8]) -> [String; 5] {
    let (lens, mut rest) = data.split_at(data.len().min(4));
    let mut out: [String; 5] = Default::default();
    for (i, slot) in out.iter_mut().enumerate() {
        let take = match lens.get(i) {
            Some(&l) if i < 4 => usize::from(l) % (rest.len() + 1),
            _ => rest.len(),
        };
        let (piece, tail) = rest.split_at(take);
        *slot = String::from_utf8_lossy(piece).into_owned();
        rest = tail;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [token, ts, nonce, given, encrypt] = split(data);

    // Never panics, and agrees with the obvious definition.
    let sig = sign(&[&token, &ts, &nonce]);
    assert_eq!(verify(&token, &ts, &nonce, &given), given == sig);
    let msg_sig = sign(&[&token, &ts, &nonce, &encrypt]);
    assert_eq!(
        verify_msg(&token, &ts, &nonce, &encrypt, &given),
        given == msg_sig
    );

    // Shape and order independence.
    assert_eq!(sig.len(), 40);
    assert!(sig.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(sign(&[&nonce, &token, &ts]), sig);
    assert_eq!(sign(&[&encrypt, &nonce, &ts, &token]), msg_sig);

    // What we sign, we accept.
    assert!(verify(&token, &ts, &nonce, &sig));
    assert!(verify_msg(&token, &ts, &nonce, &encrypt, &msg_sig));
});
