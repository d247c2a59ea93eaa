//! Callback XML: arbitrary bytes into the three parsers, plus a round trip through the passive
//! text reply.
//!
//! - `message::parse`, `message::parse_envelope` and `message::parse_text_reply` never panic on
//!   any UTF-8 input;
//! - whenever `parse` accepts a body, replying to it with `text_reply` (to = the incoming
//!   FromUserName, from = the incoming ToUserName) and reading that reply back with
//!   `parse_text_reply` (and with `parse`) gives back exactly the same users, time and
//!   content. The content is the incoming text message's content, and also the raw input
//!   itself (arbitrary text, including `]]>`, which must not break out of CDATA).

#![no_main]

use libfuzzer_sys::fuzz_target;
use wxlogin::wechat::message::{self, Kind, TextReply};

fn round_trip(to_user: &str, from_user: &str, create_time: i64, content: &str) {
    let xml = message::text_reply(to_user, from_user, create_time, content);
    let expected = TextReply {
        to_user: to_user.to_owned(),
        from_user: from_user.to_owned(),
        create_time,
        content: content.to_owned(),
    };
    assert_eq!(
        message::parse_text_reply(&xml),
        Some(expected),
        "text_reply did not round-trip: {xml:?}"
    );
    // The reply is also a well-formed inbound text message.
    let again = message::parse(&xml).expect("our own reply parses as a message");
    assert_eq!(again.to_user, to_user);
    assert_eq!(again.from_user, from_user);
    assert_eq!(again.create_time, create_time);
    assert_eq!(
        again.kind,
        Kind::Text {
            content: content.to_owned()
        }
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = message::parse(xml);
    let _ = message::parse_envelope(xml);
    let _ = message::parse_text_reply(xml);

    if let Ok(m) = parsed {
        // `parse` only accepts non-blank users, which is what parse_text_reply requires too.
        let _ = m.kind.name();
        if let Kind::Text { content } = &m.kind {
            round_trip(&m.from_user, &m.to_user, m.create_time, content);
        }
        round_trip(&m.from_user, &m.to_user, m.create_time, xml);
    }
});
