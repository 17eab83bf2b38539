//! MQTT control packets (3.1.1, OASIS 2014, and 5.0, OASIS 2019): the few a health check
//! sends and the ones it reads back.

use healthprobe_sdk::tcp::{FrameError, Framed, Link, varint};

/// The protocol version spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

impl Version {
    pub fn parse(text: &str) -> Result<Version, String> {
        match text.trim() {
            "3.1.1" | "4" => Ok(Version::V311),
            "5" | "5.0" => Ok(Version::V5),
            other => Err(format!("expected 3.1.1 or 5, got '{other}'")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Version::V311 => "3.1.1",
            Version::V5 => "5",
        }
    }

    /// The protocol level byte of CONNECT.
    fn level(self) -> u8 {
        match self {
            Version::V311 => 4,
            Version::V5 => 5,
        }
    }
}

/// A packet read from the broker.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet {
    ConnAck {
        session_present: bool,
        code: u8,
    },
    SubAck {
        id: u16,
        code: u8,
    },
    Publish {
        topic: String,
        payload: Vec<u8>,
    },
    /// Any other packet, by its type number.
    Other(u8),
}

impl Packet {
    pub fn name(&self) -> String {
        match self {
            Packet::ConnAck { .. } => "CONNACK".into(),
            Packet::SubAck { .. } => "SUBACK".into(),
            Packet::Publish { .. } => "PUBLISH".into(),
            Packet::Other(kind) => match kind {
                4 => "PUBACK".into(),
                13 => "PINGRESP".into(),
                14 => "DISCONNECT".into(),
                15 => "AUTH".into(),
                n => format!("a packet of type {n}"),
            },
        }
    }
}

/// The largest packet read: a health check's answers are small.
const MAX_PACKET: u64 = 64 * 1024;

fn string(out: &mut Vec<u8>, s: &[u8]) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s[..usize::from(len)]);
}

/// A packet: its first byte, the variable-length size, the rest.
fn framed(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint::encode(body.len() as u64));
    out.extend_from_slice(body);
    out
}

pub fn connect(v: Version, client_id: &str, user: Option<&str>, password: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, b"MQTT");
    body.push(v.level());
    // Clean session: a health check keeps no state on the broker.
    let mut flags = 0x02;
    if user.is_some() {
        flags |= 0x80;
    }
    if password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&60u16.to_be_bytes());
    if v == Version::V5 {
        body.push(0); // no properties
    }
    string(&mut body, client_id.as_bytes());
    if let Some(user) = user {
        string(&mut body, user.as_bytes());
    }
    if let Some(password) = password {
        string(&mut body, password.as_bytes());
    }
    framed(0x10, &body)
}

pub fn subscribe(v: Version, id: u16, topic: &str) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    if v == Version::V5 {
        body.push(0);
    }
    string(&mut body, topic.as_bytes());
    body.push(0); // QoS 0
    framed(0x82, &body)
}

pub fn publish(v: Version, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, topic.as_bytes());
    if v == Version::V5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    framed(0x30, &body)
}

pub fn disconnect() -> Vec<u8> {
    vec![0xe0, 0x00]
}

/// The next packet, waiting as `step`. The broker's first answer must be CONNACK
/// (`first_answer`): anything else is refused at its first byte, quoted, so that another
/// service's greeting or error reads as what it is.
pub fn read<L: Link>(
    link: &mut Framed<L>,
    v: Version,
    step: &'static str,
    first_answer: bool,
) -> Result<Packet, FrameError> {
    link.read_with(step, |buf| {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let kind = first >> 4;
        if kind == 0 || (first_answer && first != 0x20) {
            return Err(format!(
                "expected CONNACK (0x20), got {first:#04x}; the server sent \"{}\"; is this an \
                 MQTT broker?",
                quote(buf)
            ));
        }
        let Some((len, used)) = varint::decode(&buf[1..], 4)? else {
            return Ok(None);
        };
        if len > MAX_PACKET {
            return Err(format!("a packet of {len} bytes"));
        }
        let start = 1 + used;
        let end = start + usize::try_from(len).unwrap_or(usize::MAX);
        if buf.len() < end {
            return Ok(None);
        }
        let body = &buf[start..end];
        Ok(Some((parse(kind, first, body, v)?, end)))
    })
}

/// The start of what a server sent, as text with anything unprintable escaped.
fn quote(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(40)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}

fn parse(kind: u8, first: u8, body: &[u8], v: Version) -> Result<Packet, String> {
    let short = |what: &str| format!("a {what} packet of {} bytes", body.len());
    Ok(match kind {
        2 => {
            if body.len() < 2 {
                return Err(short("CONNACK"));
            }
            Packet::ConnAck {
                session_present: body[0] & 1 == 1,
                code: body[1],
            }
        }
        9 => {
            let header = if v == Version::V5 { 3 } else { 2 };
            if body.len() <= header {
                return Err(short("SUBACK"));
            }
            // MQTT 5 puts properties between the id and the codes.
            let skip = if v == Version::V5 {
                match varint::decode(&body[2..], 4)? {
                    Some((n, used)) => used + usize::try_from(n).unwrap_or(usize::MAX),
                    None => return Err(short("SUBACK")),
                }
            } else {
                0
            };
            let code = *body.get(2 + skip).ok_or_else(|| short("SUBACK"))?;
            Packet::SubAck {
                id: u16::from_be_bytes([body[0], body[1]]),
                code,
            }
        }
        3 => {
            if body.len() < 2 {
                return Err(short("PUBLISH"));
            }
            let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
            let mut at = 2 + len;
            let topic = body.get(2..at).ok_or_else(|| short("PUBLISH"))?;
            // QoS 1 and 2 carry a packet id.
            if (first >> 1) & 3 != 0 {
                at += 2;
            }
            if v == Version::V5 {
                match varint::decode(body.get(at..).unwrap_or_default(), 4)? {
                    Some((n, used)) => at += used + usize::try_from(n).unwrap_or(usize::MAX),
                    None => return Err(short("PUBLISH")),
                }
            }
            Packet::Publish {
                topic: String::from_utf8_lossy(topic).into_owned(),
                payload: body.get(at..).ok_or_else(|| short("PUBLISH"))?.to_vec(),
            }
        }
        other => Packet::Other(other),
    })
}

/// CONNACK's refusal in the specification's words.
pub fn connack_words(v: Version, code: u8) -> &'static str {
    match (v, code) {
        (Version::V311, 1) => "unacceptable protocol version",
        (Version::V311, 2) => "identifier rejected",
        (Version::V311, 3) => "server unavailable",
        (Version::V311, 4) => "bad user name or password",
        (Version::V311, 5) => "not authorized",
        (Version::V5, 0x80) => "unspecified error",
        (Version::V5, 0x81) => "malformed packet",
        (Version::V5, 0x82) => "protocol error",
        (Version::V5, 0x83) => "implementation specific error",
        (Version::V5, 0x84) => "unsupported protocol version",
        (Version::V5, 0x85) => "client identifier not valid",
        (Version::V5, 0x86) => "bad user name or password",
        (Version::V5, 0x87) => "not authorized",
        (Version::V5, 0x88) => "server unavailable",
        (Version::V5, 0x89) => "server busy",
        (Version::V5, 0x8a) => "banned",
        (Version::V5, 0x8c) => "bad authentication method",
        (Version::V5, 0x95) => "packet too large",
        (Version::V5, 0x97) => "quota exceeded",
        (Version::V5, 0x9c) => "use another server",
        (Version::V5, 0x9d) => "server moved",
        (Version::V5, 0x9f) => "connection rate exceeded",
        _ => "refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthprobe_sdk::testing::Script;

    #[test]
    fn connect_is_as_the_specification_lays_it_out() {
        let p = connect(Version::V311, "id", Some("u"), Some("p"));
        assert_eq!(
            p,
            [
                0x10, 20, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xc2, 0, 60, 0, 2, b'i', b'd', 0, 1,
                b'u', 0, 1, b'p'
            ]
        );
        let p5 = connect(Version::V5, "id", None, None);
        assert_eq!(
            &p5[..12],
            [0x10, 15, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60]
        );
        assert_eq!(p5[12], 0, "no properties");
    }

    #[test]
    fn packets_are_read_whole_in_pieces() {
        let mut link = Framed::new(
            Script::new([
                b"".to_vec(),
                b"\x20\x02\x01\x00\x90\x03\x00\x01\x00\x31\x06\x00\x01tabc\x00ERR".to_vec(),
            ])
            .chunk(3),
        );
        link.send(b"x", "CONNACK").unwrap();
        let v = Version::V311;
        assert_eq!(
            read(&mut link, v, "CONNACK", true).unwrap(),
            Packet::ConnAck {
                session_present: true,
                code: 0
            }
        );
        assert_eq!(
            read(&mut link, v, "SUBACK", false).unwrap(),
            Packet::SubAck { id: 1, code: 0 }
        );
        assert_eq!(
            read(&mut link, v, "PUBLISH", false).unwrap(),
            Packet::Publish {
                topic: "t".into(),
                payload: b"abc".to_vec()
            }
        );
        // Not MQTT.
        let err = read(&mut link, v, "PUBLISH", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the answer to PUBLISH"), "{err}");
    }

    #[test]
    fn another_protocol_is_named_not_parsed() {
        let mut link = Framed::new(Script::new([
            b"".to_vec(),
            b"HTTP/1.1 400 Bad\r\n".to_vec(),
        ]));
        link.send(b"x", "CONNACK").unwrap();
        let err = read(&mut link, Version::V311, "CONNACK", true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r#"got 0x48; the server sent "HTTP/1."#)
                && err.ends_with("an MQTT broker?"),
            "{err}"
        );
    }

    #[test]
    fn refusals_have_words() {
        assert_eq!(connack_words(Version::V311, 5), "not authorized");
        assert_eq!(
            connack_words(Version::V5, 0x86),
            "bad user name or password"
        );
    }
}
