//! Callback XML: parsing the events and messages WeChat POSTs to the callback URL, the
//! safe-mode envelope around them, and building (and, for the sandbox, reading back) the
//! passive text reply.
//!
//! The bodies are tiny flat documents: a root `<xml>` whose children are the fields, each a
//! CDATA section or escaped text. The parser is a single linear pass over quick-xml events
//! that keeps only the fields it knows; it refuses any DOCTYPE (so no entity declarations,
//! hence no entity-expansion bombs or external entities) and never expands entities beyond
//! the five predefined ones and character references.

use quick_xml::Reader;
use quick_xml::events::Event;

/// One callback event or message (plaintext mode, or the decrypted inner XML in safe mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// `ToUserName`: the Official Account's original id (`gh_...`).
    pub to_user: String,
    /// `FromUserName`: the person's openid for this account.
    pub from_user: String,
    /// `CreateTime`: Unix seconds, set by WeChat. Part of the dedupe key.
    pub create_time: i64,
    /// What happened.
    pub kind: Kind,
}

/// The kinds of callback this service cares about; everything else is [`Kind::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Follow. `scene` is Some when the follow came from a parametric QR: EventKey
    /// `"qrscene_<scene>"` (prefix stripped).
    Subscribe {
        /// The QR's scene string, when the follow came from a parametric QR.
        scene: Option<String>,
    },
    /// Scan of a parametric QR by someone who already follows: EventKey is the bare scene.
    Scan {
        /// The QR's scene string.
        scene: String,
    },
    /// Unfollow.
    Unsubscribe,
    /// A text message typed by the person.
    Text {
        /// The message text.
        content: String,
    },
    /// Anything else (other message types or events): parsed and ignored.
    Other {
        /// The raw `MsgType` (e.g. `image`, `event`).
        msg_type: String,
        /// The raw `Event`, when present (e.g. `CLICK`, `LOCATION`).
        event: Option<String>,
    },
}

impl Kind {
    /// The event/message name used in the dedupe key (FromUserName + CreateTime + Event):
    /// "subscribe", "SCAN", "unsubscribe", "text", or the raw event (else message) type.
    pub fn name(&self) -> &str {
        match self {
            Kind::Subscribe { .. } => "subscribe",
            Kind::Scan { .. } => "SCAN",
            Kind::Unsubscribe => "unsubscribe",
            Kind::Text { .. } => "text",
            Kind::Other { msg_type, event } => event.as_deref().unwrap_or(msg_type),
        }
    }
}

/// Why a callback body was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    /// The document has a DOCTYPE (and so possibly entity declarations): always refused.
    #[error("DOCTYPE / entity declarations are not accepted")]
    DocType,
    /// Not well-formed XML, an unknown entity, or no `<xml>` root.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// A required field is absent or unusable.
    #[error("missing or invalid <{0}>")]
    Missing(&'static str),
}

/// The safe-mode body: `<xml><ToUserName/><Encrypt/></xml>` (compatible mode also carries the
/// plaintext fields, which are ignored here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `ToUserName`, when present and non-empty.
    pub to_user: Option<String>,
    /// `Encrypt`: the base64 ciphertext, signed by `msg_signature`.
    pub encrypt: String,
}

/// A passive text reply, as read back by the sandbox phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextReply {
    /// `ToUserName`: the person's openid.
    pub to_user: String,
    /// `FromUserName`: the Official Account's original id.
    pub from_user: String,
    /// `CreateTime`: Unix seconds.
    pub create_time: i64,
    /// The text shown in the chat bubble.
    pub content: String,
}

/// The fields this module reads. Unknown children of `<xml>` are skipped without being stored,
/// so memory stays bounded by the known fields and the pass stays linear.
#[derive(Default)]
struct Fields {
    to_user: Option<String>,
    from_user: Option<String>,
    create_time: Option<String>,
    msg_type: Option<String>,
    event: Option<String>,
    event_key: Option<String>,
    content: Option<String>,
    encrypt: Option<String>,
    msg_signature: Option<String>,
    time_stamp: Option<String>,
    nonce: Option<String>,
}

impl Fields {
    fn slot(&mut self, name: &[u8]) -> Option<&mut Option<String>> {
        Some(match name {
            b"ToUserName" => &mut self.to_user,
            b"FromUserName" => &mut self.from_user,
            b"CreateTime" => &mut self.create_time,
            b"MsgType" => &mut self.msg_type,
            b"Event" => &mut self.event,
            b"EventKey" => &mut self.event_key,
            b"Content" => &mut self.content,
            b"Encrypt" => &mut self.encrypt,
            b"MsgSignature" => &mut self.msg_signature,
            b"TimeStamp" => &mut self.time_stamp,
            b"Nonce" => &mut self.nonce,
            _ => return None,
        })
    }
}

fn malformed(e: impl std::fmt::Display) -> ParseError {
    ParseError::Malformed(e.to_string())
}

/// One pass over the document: checks the structure and collects the known direct children of
/// the `<xml>` root.
fn collect(xml: &str) -> Result<Fields, ParseError> {
    let mut reader = Reader::from_str(xml);
    // Keep text exactly as sent (message content may start or end with spaces); check that
    // end tags match their start tags.
    let config = reader.config_mut();
    config.trim_text(false);
    config.check_end_names = true;
    config.expand_empty_elements = false;

    let mut fields = Fields::default();
    // Depth: 0 outside the root, 1 inside <xml>, 2 inside a field, deeper inside nested
    // unknown elements (e.g. <ScanCodeInfo><ScanType>..</ScanType></ScanCodeInfo>).
    let mut depth: usize = 0;
    let mut seen_root = false;
    // The field being read (only for known fields at depth 2) and its text so far.
    let mut current: Option<(Vec<u8>, String)> = None;

    loop {
        let event = reader.read_event().map_err(malformed)?;
        match event {
            // Refusing every DOCTYPE refuses every <!ENTITY declaration with it: no billion
            // laughs, no external entities.
            Event::DocType(_) => return Err(ParseError::DocType),
            Event::Start(start) => {
                match depth {
                    0 => {
                        if seen_root {
                            return Err(malformed("more than one root element"));
                        }
                        if start.name().as_ref() != b"xml" {
                            return Err(malformed("root element is not <xml>"));
                        }
                        seen_root = true;
                    }
                    1 => {
                        let name = start.name().as_ref().to_vec();
                        if fields.slot(&name).is_some() {
                            current = Some((name, String::new()));
                        }
                    }
                    // Nested elements inside a field are skipped; any text they hold is
                    // ignored (see the depth check on Text below).
                    _ => {}
                }
                depth += 1;
            }
            Event::Empty(start) => match depth {
                0 => {
                    if seen_root {
                        return Err(malformed("more than one root element"));
                    }
                    if start.name().as_ref() != b"xml" {
                        return Err(malformed("root element is not <xml>"));
                    }
                    // `<xml/>`: a root with no fields.
                    seen_root = true;
                }
                1 => store(&mut fields, start.name().as_ref(), String::new())?,
                _ => {}
            },
            Event::End(_) => {
                // check_end_names makes quick-xml refuse a mismatched or unmatched end tag;
                // this guards the arithmetic regardless.
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| malformed("unexpected end tag"))?;
                if depth == 1
                    && let Some((name, value)) = current.take()
                {
                    store(&mut fields, &name, value)?;
                }
            }
            Event::Text(text) => {
                if depth == 2 {
                    if let Some((_, value)) = current.as_mut() {
                        // Only the five predefined entities and character references are
                        // expanded; an unknown `&foo;` is an error.
                        value.push_str(&text.unescape().map_err(malformed)?);
                    }
                } else if depth == 0 && !text.iter().all(u8::is_ascii_whitespace) {
                    return Err(malformed("text outside the root element"));
                }
            }
            Event::CData(cdata) => {
                if depth == 2 {
                    if let Some((_, value)) = current.as_mut() {
                        value.push_str(&cdata.decode().map_err(malformed)?);
                    }
                } else if depth == 0 {
                    return Err(malformed("CDATA outside the root element"));
                }
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }

    if depth != 0 {
        return Err(malformed("unexpected end of document"));
    }
    if !seen_root {
        return Err(malformed("no <xml> root element"));
    }
    Ok(fields)
}

/// Stores a known field's value. A known field given twice is refused: two readers of the same
/// body must never disagree about which value counts.
fn store(fields: &mut Fields, name: &[u8], value: String) -> Result<(), ParseError> {
    if let Some(slot) = fields.slot(name) {
        if slot.is_some() {
            return Err(malformed(format!(
                "duplicate <{}>",
                String::from_utf8_lossy(name)
            )));
        }
        *slot = Some(value);
    }
    Ok(())
}

/// A required, non-empty field.
fn required(value: Option<String>, name: &'static str) -> Result<String, ParseError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ParseError::Missing(name)),
    }
}

fn parse_time(value: Option<String>) -> Result<i64, ParseError> {
    value
        .as_deref()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .ok_or(ParseError::Missing("CreateTime"))
}

/// Parses a callback body (plaintext mode, or the decrypted inner XML in safe mode).
pub fn parse(xml: &str) -> Result<Incoming, ParseError> {
    let fields = collect(xml)?;
    let to_user = required(fields.to_user, "ToUserName")?;
    let from_user = required(fields.from_user, "FromUserName")?;
    let create_time = parse_time(fields.create_time)?;
    let msg_type = required(fields.msg_type, "MsgType")?;

    let kind = if msg_type.trim().eq_ignore_ascii_case("event") {
        let event = fields.event;
        let key = fields.event_key.unwrap_or_default();
        match event.as_deref().map(str::trim) {
            // WeChat sends `subscribe`, `unsubscribe` and `SCAN`; compare case-insensitively.
            Some(e) if e.eq_ignore_ascii_case("subscribe") => Kind::Subscribe {
                // A follow from a parametric QR carries EventKey "qrscene_<scene>"; a plain
                // follow (search, profile card) has none.
                scene: key
                    .strip_prefix("qrscene_")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            },
            Some(e) if e.eq_ignore_ascii_case("SCAN") && !key.is_empty() => {
                // An existing follower scanning: EventKey is the bare scene string.
                Kind::Scan { scene: key }
            }
            Some(e) if e.eq_ignore_ascii_case("unsubscribe") => Kind::Unsubscribe,
            _ => Kind::Other { msg_type, event },
        }
    } else if msg_type.trim().eq_ignore_ascii_case("text") {
        Kind::Text {
            content: fields.content.unwrap_or_default(),
        }
    } else {
        Kind::Other {
            msg_type,
            event: fields.event,
        }
    };

    Ok(Incoming {
        to_user,
        from_user,
        create_time,
        kind,
    })
}

/// Parses the safe-mode body `<xml><ToUserName/><Encrypt/></xml>`.
pub fn parse_envelope(xml: &str) -> Result<Envelope, ParseError> {
    let fields = collect(xml)?;
    let encrypt = required(fields.encrypt, "Encrypt")?;
    Ok(Envelope {
        to_user: fields.to_user.filter(|s| !s.is_empty()),
        encrypt,
    })
}

/// The fields of an encrypted passive reply
/// (`<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`), read by
/// `crypto::decrypt_reply`. Values are as sent: checking and decrypting them is crypto's job.
pub(crate) struct EncryptedReply {
    pub(crate) encrypt: String,
    pub(crate) msg_signature: String,
    pub(crate) timestamp: String,
    pub(crate) nonce: String,
}

/// Parses an encrypted passive reply; every field is required (the nonce may be empty).
pub(crate) fn parse_encrypted_reply(xml: &str) -> Result<EncryptedReply, ParseError> {
    let fields = collect(xml)?;
    Ok(EncryptedReply {
        encrypt: required(fields.encrypt, "Encrypt")?,
        msg_signature: required(fields.msg_signature, "MsgSignature")?,
        timestamp: required(fields.time_stamp, "TimeStamp")?,
        nonce: fields.nonce.ok_or(ParseError::Missing("Nonce"))?,
    })
}

/// Wraps `value` in CDATA. A `]]>` inside would end the section early, so it is split across
/// two sections (`]]` ends the first, `>` starts the next): the value can never break out.
pub(crate) fn cdata(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 12);
    out.push_str("<![CDATA[");
    out.push_str(&value.replace("]]>", "]]]]><![CDATA[>"));
    out.push_str("]]>");
    out
}

/// `<xml><ToUserName>..</ToUserName><FromUserName>..</FromUserName><CreateTime>..</CreateTime>
/// <MsgType>text</MsgType><Content>..</Content></xml>`, values in CDATA (any "]]>" inside is
/// split correctly so content can never break out).
///
/// `to_user` is the person's openid (the incoming FromUserName), `from_user` the account's
/// original id (the incoming ToUserName).
pub fn text_reply(to_user: &str, from_user: &str, create_time: i64, content: &str) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName>\
         <CreateTime>{}</CreateTime><MsgType>{}</MsgType><Content>{}</Content></xml>",
        cdata(to_user),
        cdata(from_user),
        create_time,
        cdata("text"),
        cdata(content),
    )
}

/// The other direction (used by the sandbox phone to show the reply bubble): Some if the xml
/// is a well-formed text reply.
pub fn parse_text_reply(xml: &str) -> Option<TextReply> {
    let fields = collect(xml).ok()?;
    if !fields
        .msg_type
        .as_deref()?
        .trim()
        .eq_ignore_ascii_case("text")
    {
        return None;
    }
    Some(TextReply {
        to_user: required(fields.to_user, "ToUserName").ok()?,
        from_user: required(fields.from_user, "FromUserName").ok()?,
        create_time: parse_time(fields.create_time).ok()?,
        content: fields.content?,
    })
}

/// Builds an event XML as WeChat sends it (used by the sandbox): `subscribe` with EventKey
/// `qrscene_<scene>` when `first_follow`, else `SCAN` with EventKey `<scene>`; both with a
/// Ticket element.
pub fn scan_event_xml(
    to_user: &str,
    from_user: &str,
    create_time: i64,
    first_follow: bool,
    scene: &str,
    ticket: &str,
) -> String {
    let (event, key) = if first_follow {
        ("subscribe", format!("qrscene_{scene}"))
    } else {
        ("SCAN", scene.to_owned())
    };
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName>\
         <CreateTime>{}</CreateTime><MsgType>{}</MsgType><Event>{}</Event>\
         <EventKey>{}</EventKey><Ticket>{}</Ticket></xml>",
        cdata(to_user),
        cdata(from_user),
        create_time,
        cdata("event"),
        cdata(event),
        cdata(&key),
        cdata(ticket),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Documented sample: a follow from a parametric QR.
    const SUBSCRIBE_SCENE: &str = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket></xml>";

    // Documented sample: an existing follower scans.
    const SCAN: &str = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[SCENE_VALUE]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket></xml>";

    #[test]
    fn subscribe_with_scene() {
        let m = parse(SUBSCRIBE_SCENE).expect("sample parses");
        assert_eq!(
            m,
            Incoming {
                to_user: "toUser".into(),
                from_user: "FromUser".into(),
                create_time: 123456789,
                kind: Kind::Subscribe {
                    scene: Some("123123".into())
                },
            }
        );
        assert_eq!(m.kind.name(), "subscribe");
    }

    #[test]
    fn scan() {
        let m = parse(SCAN).expect("sample parses");
        assert_eq!(
            m.kind,
            Kind::Scan {
                scene: "SCENE_VALUE".into()
            }
        );
        assert_eq!(m.kind.name(), "SCAN");
        // Event names compare case-insensitively.
        let lower = SCAN.replace("[SCAN]", "[scan]");
        assert_eq!(parse(&lower).unwrap().kind, m.kind);
    }

    #[test]
    fn scan_without_key_is_other() {
        let xml = SCAN.replace("<![CDATA[SCENE_VALUE]]>", "");
        let m = parse(&xml).unwrap();
        assert_eq!(
            m.kind,
            Kind::Other {
                msg_type: "event".into(),
                event: Some("SCAN".into())
            }
        );
        assert_eq!(m.kind.name(), "SCAN");
    }

    #[test]
    fn plain_follow_and_unfollow() {
        let follow = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>";
        assert_eq!(parse(follow).unwrap().kind, Kind::Subscribe { scene: None });
        // Empty EventKey, bare prefix, or a key without the prefix: no scene.
        for key in ["", "<![CDATA[]]>", "qrscene_", "123123"] {
            let xml = follow.replace("</xml>", &format!("<EventKey>{key}</EventKey></xml>"));
            assert_eq!(
                parse(&xml).unwrap().kind,
                Kind::Subscribe { scene: None },
                "{key}"
            );
        }
        let unfollow = follow.replace("[subscribe]", "[unsubscribe]");
        let m = parse(&unfollow).unwrap();
        assert_eq!(m.kind, Kind::Unsubscribe);
        assert_eq!(m.kind.name(), "unsubscribe");
    }

    #[test]
    fn text_message() {
        let xml = "<xml>\n  <ToUserName><![CDATA[toUser]]></ToUserName>\n  <FromUserName><![CDATA[fromUser]]></FromUserName>\n  <CreateTime>1348831860</CreateTime>\n  <MsgType><![CDATA[text]]></MsgType>\n  <Content><![CDATA[ this is a test ]]></Content>\n  <MsgId>1234567890123456</MsgId>\n</xml>";
        let m = parse(xml).unwrap();
        assert_eq!(m.create_time, 1348831860);
        assert_eq!(
            m.kind,
            Kind::Text {
                content: " this is a test ".into()
            }
        );
        assert_eq!(m.kind.name(), "text");
        // Plain text with escapes works as well as CDATA.
        let escaped = xml.replace(
            "<![CDATA[ this is a test ]]>",
            "a &lt;b&gt; &amp; &quot;c&quot; &#20013;",
        );
        assert_eq!(
            parse(&escaped).unwrap().kind,
            Kind::Text {
                content: "a <b> & \"c\" 中".into()
            }
        );
    }

    #[test]
    fn other_events_and_messages() {
        let click = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[EVENTKEY]]></EventKey></xml>";
        let m = parse(click).unwrap();
        assert_eq!(
            m.kind,
            Kind::Other {
                msg_type: "event".into(),
                event: Some("CLICK".into())
            }
        );
        assert_eq!(m.kind.name(), "CLICK");

        let image = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[this is a url]]></PicUrl><MediaId><![CDATA[media_id]]></MediaId><MsgId>1234567890123456</MsgId></xml>";
        let m = parse(image).unwrap();
        assert_eq!(
            m.kind,
            Kind::Other {
                msg_type: "image".into(),
                event: None
            }
        );
        assert_eq!(m.kind.name(), "image");
    }

    #[test]
    fn nested_unknown_elements_are_skipped() {
        let xml = "<xml><ToUserName><![CDATA[gh_e136c6e50636]]></ToUserName><FromUserName><![CDATA[oMgHVjngRipVsoxg6TuX3vz6glDg]]></FromUserName><CreateTime>1408090502</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[scancode_push]]></Event><EventKey><![CDATA[6]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo></xml>";
        let m = parse(xml).unwrap();
        assert_eq!(m.kind.name(), "scancode_push");
        // A known name nested deeper is not a field and is no duplicate.
        let xml = SCAN.replace(
            "</xml>",
            "<Extra><Event>subscribe</Event><CreateTime>1</CreateTime></Extra></xml>",
        );
        let m = parse(&xml).unwrap();
        assert_eq!(m.create_time, 123456789);
        assert_eq!(m.kind.name(), "SCAN");
    }

    #[test]
    fn doctype_and_entities_refused() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><xml><ToUserName>&lol2;</ToUserName></xml>"#;
        assert_eq!(parse(bomb), Err(ParseError::DocType));
        let xxe = r#"<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>"#;
        assert_eq!(parse(xxe), Err(ParseError::DocType));
        assert_eq!(parse_envelope(xxe), Err(ParseError::DocType));
        let lower = "<!doctype xml><xml></xml>";
        assert_eq!(parse(lower), Err(ParseError::DocType));
        // An undeclared entity is not expanded: it is an error.
        let unknown = SCAN.replace("<![CDATA[FromUser]]>", "&foo;");
        assert!(matches!(parse(&unknown), Err(ParseError::Malformed(_))));
        // A stray entity declaration outside a DOCTYPE is not XML.
        let stray = r#"<!ENTITY a "b"><xml></xml>"#;
        assert!(parse(stray).is_err());
    }

    #[test]
    fn malformed_refused() {
        for bad in [
            "",
            "   ",
            "not xml",
            "<xml>",
            "<xml><ToUserName>a</FromUserName></xml>",
            "<xml></xml><xml></xml>",
            "<root><ToUserName>a</ToUserName></root>",
            "</xml>",
            "<xml><ToUserName><![CDATA[a]]></ToUserName>",
            "<xml><ToUserName><![CDATA[a</ToUserName></xml>",
            "text<xml></xml>",
        ] {
            assert!(
                matches!(parse(bad), Err(ParseError::Malformed(_))),
                "{bad:?} gave {:?}",
                parse(bad)
            );
        }
        // A known field twice is refused rather than guessed at.
        let dup = SCAN.replace("</xml>", "<FromUserName>other</FromUserName></xml>");
        assert!(matches!(parse(&dup), Err(ParseError::Malformed(_))));
    }

    #[test]
    fn missing_fields() {
        let cases = [
            ("<ToUserName><![CDATA[toUser]]></ToUserName>", "ToUserName"),
            (
                "<FromUserName><![CDATA[FromUser]]></FromUserName>",
                "FromUserName",
            ),
            ("<CreateTime>123456789</CreateTime>", "CreateTime"),
            ("<MsgType><![CDATA[event]]></MsgType>", "MsgType"),
        ];
        for (element, name) in cases {
            let xml = SCAN.replace(element, "");
            assert_eq!(parse(&xml), Err(ParseError::Missing(name)));
        }
        let bad_time = SCAN.replace("123456789", "soon");
        assert_eq!(parse(&bad_time), Err(ParseError::Missing("CreateTime")));
        let empty_from = SCAN.replace("<![CDATA[FromUser]]>", "");
        assert_eq!(parse(&empty_from), Err(ParseError::Missing("FromUserName")));
        assert_eq!(parse("<xml/>"), Err(ParseError::Missing("ToUserName")));
    }

    #[test]
    fn envelope() {
        let xml = "<xml><ToUserName><![CDATA[gh_123]]></ToUserName><Encrypt><![CDATA[abc+/=]]></Encrypt></xml>";
        assert_eq!(
            parse_envelope(xml).unwrap(),
            Envelope {
                to_user: Some("gh_123".into()),
                encrypt: "abc+/=".into()
            }
        );
        let no_to = "<xml><Encrypt>abc</Encrypt></xml>";
        assert_eq!(parse_envelope(no_to).unwrap().to_user, None);
        assert_eq!(
            parse_envelope("<xml><ToUserName>a</ToUserName></xml>"),
            Err(ParseError::Missing("Encrypt"))
        );
        assert_eq!(
            parse_envelope("<xml><Encrypt></Encrypt></xml>"),
            Err(ParseError::Missing("Encrypt"))
        );
    }

    #[test]
    fn text_reply_round_trip_with_cdata_terminator() {
        let content = "a]]><Content>evil</Content>]]]>>]]>";
        let xml = text_reply("openid", "gh_x", 42, content);
        assert!(xml.starts_with("<xml><ToUserName><![CDATA[openid]]></ToUserName>"));
        assert!(xml.contains("<MsgType><![CDATA[text]]></MsgType>"));
        assert_eq!(
            parse_text_reply(&xml),
            Some(TextReply {
                to_user: "openid".into(),
                from_user: "gh_x".into(),
                create_time: 42,
                content: content.into(),
            })
        );
        // Not a text reply.
        assert_eq!(parse_text_reply(SCAN), None);
        assert_eq!(parse_text_reply("success"), None);
        assert_eq!(parse_text_reply(""), None);
    }

    #[test]
    fn scan_event_xml_round_trips() {
        let xml = scan_event_xml("gh_x", "openid", 1700000000, true, "s]]>cene", "TICKET");
        let m = parse(&xml).unwrap();
        assert_eq!(m.to_user, "gh_x");
        assert_eq!(m.from_user, "openid");
        assert_eq!(m.create_time, 1700000000);
        assert_eq!(
            m.kind,
            Kind::Subscribe {
                scene: Some("s]]>cene".into())
            }
        );
        let xml = scan_event_xml("gh_x", "openid", 1700000001, false, "abc", "TICKET");
        assert_eq!(
            parse(&xml).unwrap().kind,
            Kind::Scan {
                scene: "abc".into()
            }
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = parse(&s);
            let _ = parse_envelope(&s);
            let _ = parse_text_reply(&s);
        }

        #[test]
        fn parse_never_panics_on_xmlish(s in "[<>/!?\\[\\]&;a-zA-Z =\"'CDAT-]{0,80}") {
            let _ = parse(&s);
            let _ = parse(&format!("<xml>{s}</xml>"));
            let _ = parse_envelope(&s);
        }

        #[test]
        fn text_reply_round_trips(content in ".*", to in ".+", from in ".+", t in any::<i64>()) {
            prop_assume!(!to.trim().is_empty() && !from.trim().is_empty());
            let xml = text_reply(&to, &from, t, &content);
            let back = parse_text_reply(&xml);
            prop_assert_eq!(back, Some(TextReply {
                to_user: to, from_user: from, create_time: t, content
            }));
        }

        #[test]
        fn scan_event_round_trips(scene in "[ -~]{1,64}", first in any::<bool>()) {
            let xml = scan_event_xml("gh_x", "openid", 1, first, &scene, "T");
            let kind = parse(&xml).map(|m| m.kind);
            let expected = if first {
                Kind::Subscribe { scene: Some(scene) }
            } else {
                Kind::Scan { scene }
            };
            prop_assert_eq!(kind, Ok(expected));
        }
    }
}
