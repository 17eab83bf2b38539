//! The PostgreSQL frontend/backend protocol 3.0: the few frontend messages the
//! probe sends and the framing and fields of the backend messages it reads.
//!
//! Backend messages are decoded from a byte buffer that may hold a partial
//! message, so the same code serves the network reader and byte-fixture tests.

use std::fmt;

/// Protocol version 3.0, as sent in the StartupMessage.
const PROTOCOL_3_0: i32 = 3 << 16;

/// The largest backend message accepted. Health queries return small rows;
/// a larger length is a broken or foreign peer.
pub const MAX_MESSAGE: usize = 4 << 20;

/// The StartupMessage: protocol 3.0, `user`, `database` and an application name
/// that shows in `pg_stat_activity` and the server log.
pub fn startup(user: &str, database: &str) -> Vec<u8> {
    let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
    for (key, value) in [
        ("user", user),
        ("database", database),
        ("application_name", "healthprobe"),
    ] {
        cstring(&mut body, key);
        cstring(&mut body, value);
    }
    body.push(0);
    let mut out = len_prefix(body.len()).to_vec();
    out.extend(body);
    out
}

/// A PasswordMessage carrying a cleartext or MD5-hashed password.
pub fn password(password: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstring(&mut body, password);
    message(b'p', &body)
}

/// SASLInitialResponse: the chosen mechanism and the client-first message.
pub fn sasl_initial(mechanism: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    cstring(&mut body, mechanism);
    body.extend_from_slice(&i32::try_from(data.len()).unwrap_or(i32::MAX).to_be_bytes());
    body.extend_from_slice(data);
    message(b'p', &body)
}

/// SASLResponse: the client-final message.
pub fn sasl_response(data: &[u8]) -> Vec<u8> {
    message(b'p', data)
}

/// A simple-protocol Query.
pub fn query(sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstring(&mut body, sql);
    message(b'Q', &body)
}

/// Terminate: the polite end of a session.
pub fn terminate() -> Vec<u8> {
    message(b'X', &[])
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(len_prefix(body.len()));
    out.extend_from_slice(body);
    out
}

/// The length word of a message: the body plus the word itself.
fn len_prefix(body_len: usize) -> [u8; 4] {
    i32::try_from(body_len + 4)
        .unwrap_or(i32::MAX)
        .to_be_bytes()
}

fn cstring(out: &mut Vec<u8>, text: &str) {
    // A NUL inside would end the string early; parameters are checked for it.
    out.extend(text.bytes().filter(|&b| b != 0));
    out.push(0);
}

/// The bytes are not the PostgreSQL protocol (the peer is probably something else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotPostgres(pub String);

/// The SSLRequest: length 8 and the code 80877103; the server answers one byte, S to go
/// on with a TLS handshake or N to go on in plain TCP.
pub const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

impl fmt::Display for NotPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One backend message: its type byte and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub tag: u8,
    pub body: Vec<u8>,
}

/// Decode the message at the start of `buf`: `Ok(None)` if more bytes are
/// needed, otherwise the message and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Message, usize)>, NotPostgres> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    if !tag.is_ascii_alphabetic() {
        return Err(foreign(buf));
    }
    let Some(len) = buf.get(1..5) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    let len = usize::try_from(len).map_err(|_| foreign(buf))?;
    if len < 4 {
        return Err(foreign(buf));
    }
    if len > MAX_MESSAGE {
        // An HTTP or SSH banner read as a length is far over the cap too.
        return Err(if buf.len() >= 4 && !looks_binary(&buf[1..5]) {
            foreign(buf)
        } else {
            NotPostgres(format!(
                "a '{}' message of {len} bytes, more than the {MAX_MESSAGE} accepted",
                tag as char
            ))
        });
    }
    let end = 1 + len;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((
        Message {
            tag,
            body: buf[5..end].to_vec(),
        },
        end,
    )))
}

fn looks_binary(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| !b.is_ascii_graphic() && *b != b' ')
}

fn foreign(buf: &[u8]) -> NotPostgres {
    let text: String = String::from_utf8_lossy(&buf[..buf.len().min(60)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    NotPostgres(format!("\"{}\" (not a PostgreSQL reply)", text.trim_end()))
}

/// An ErrorResponse (or NoticeResponse): the fields operators look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerError {
    /// `FATAL`, `ERROR`… (the untranslated `V` field where the server sends it).
    pub severity: String,
    /// The SQLSTATE, for example `28P01`.
    pub code: String,
    /// The primary message.
    pub message: String,
    /// The optional detail and hint.
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ServerError {
    /// Decode the fields of an ErrorResponse body.
    pub fn parse(body: &[u8]) -> ServerError {
        let mut e = ServerError::default();
        let mut localized_severity = String::new();
        let mut rest = body;
        while let Some((&field, after)) = rest.split_first() {
            if field == 0 {
                break;
            }
            let (value, after) = take_cstring(after);
            rest = after;
            match field {
                b'V' => e.severity = value,
                b'S' => localized_severity = value,
                b'C' => e.code = value,
                b'M' => e.message = value,
                b'D' => e.detail = Some(value),
                b'H' => e.hint = Some(value),
                _ => {}
            }
        }
        if e.severity.is_empty() {
            e.severity = localized_severity;
        }
        e
    }

    /// The SQLSTATE class: the first two characters, such as `28` or `57`.
    pub fn class(&self) -> &str {
        self.code.get(..2).unwrap_or("")
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.severity, self.code, self.message)
    }
}

/// A NUL-terminated string and what follows it (a missing NUL ends at the end).
pub fn take_cstring(bytes: &[u8]) -> (String, &[u8]) {
    match bytes.iter().position(|&b| b == 0) {
        Some(i) => (
            String::from_utf8_lossy(&bytes[..i]).into_owned(),
            &bytes[i + 1..],
        ),
        None => (String::from_utf8_lossy(bytes).into_owned(), &[]),
    }
}

/// The kind of an Authentication message and what follows it.
pub fn auth_request(body: &[u8]) -> Option<(i32, &[u8])> {
    let code = body.get(..4)?;
    Some((
        i32::from_be_bytes([code[0], code[1], code[2], code[3]]),
        &body[4..],
    ))
}

/// The name of an authentication request, as operators know it (`None` for a code
/// this probe does not know).
pub fn auth_name(code: i32) -> Option<&'static str> {
    Some(match code {
        0 => "no authentication (trust)",
        2 => "Kerberos V5",
        3 => "cleartext password",
        5 => "MD5 password",
        6 => "SCM credentials",
        7 => "GSSAPI",
        9 => "SSPI",
        10 => "SASL",
        _ => return None,
    })
}

/// The SASL mechanisms listed by AuthenticationSASL.
pub fn sasl_mechanisms(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0)
        .filter(|m| !m.is_empty())
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect()
}

/// A ParameterStatus: name and value.
pub fn parameter_status(body: &[u8]) -> (String, String) {
    let (name, rest) = take_cstring(body);
    let (value, _) = take_cstring(rest);
    (name, value)
}

/// The first column of a DataRow in text format (`None` for SQL NULL or no column).
pub fn first_value(body: &[u8]) -> Option<Vec<u8>> {
    let columns = i16::from_be_bytes([*body.first()?, *body.get(1)?]);
    if columns < 1 {
        return None;
    }
    let len = body.get(2..6)?;
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    let len = usize::try_from(len).ok()?;
    body.get(6..6 + len).map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_message_bytes() {
        let m = startup("postgres", "db");
        let mut expected = vec![0, 0, 0, 0, 0, 3, 0, 0];
        expected
            .extend_from_slice(b"user\0postgres\0database\0db\0application_name\0healthprobe\0\0");
        let len = u8::try_from(expected.len()).unwrap();
        expected[3] = len;
        assert_eq!(m, expected);
    }

    #[test]
    fn frontend_messages() {
        assert_eq!(password("pw"), b"p\0\0\0\x07pw\0");
        assert_eq!(query("SELECT 1"), b"Q\0\0\0\x0dSELECT 1\0");
        assert_eq!(terminate(), b"X\0\0\0\x04");
        assert_eq!(
            sasl_initial("SCRAM-SHA-256", b"n,,n=,r=x"),
            b"p\0\0\0\x1fSCRAM-SHA-256\0\0\0\0\x09n,,n=,r=x"
        );
        assert_eq!(sasl_response(b"c=biws"), b"p\0\0\0\x0ac=biws");
    }

    #[test]
    fn framing() {
        // AuthenticationSASL then ReadyForQuery, split anywhere.
        let bytes = b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0Z\0\0\0\x05I";
        for cut in 0..24 {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        let (m, used) = parse(bytes).unwrap().unwrap();
        assert_eq!((m.tag, used), (b'R', 24));
        assert_eq!(auth_request(&m.body), Some((10, &b"SCRAM-SHA-256\0\0"[..])));
        assert_eq!(sasl_mechanisms(&m.body[4..]), ["SCRAM-SHA-256"]);
        let (z, _) = parse(&bytes[used..]).unwrap().unwrap();
        assert_eq!((z.tag, z.body), (b'Z', b"I".to_vec()));
    }

    #[test]
    fn foreign_peers_are_named() {
        let err = parse(b"HTTP/1.1 400 Bad Request\r\n").unwrap_err();
        assert_eq!(
            err.0,
            "\"HTTP/1.1 400 Bad Request\" (not a PostgreSQL reply)"
        );
        assert!(
            parse(b"SSH-2.0-OpenSSH_9.2")
                .unwrap_err()
                .0
                .contains("SSH-2.0")
        );
        assert!(parse(b"\x01\x02").is_err());
        assert!(parse(b"R\0\0\0\x02").is_err());
        assert!(parse(b"D\x7f\0\0\0").unwrap_err().0.contains("more than"));
    }

    #[test]
    fn error_fields() {
        let body = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"probe\"\0Fauth.c\0L326\0Rauth_failed\0\0";
        let e = ServerError::parse(body);
        assert_eq!(
            e.to_string(),
            "FATAL 28P01 password authentication failed for user \"probe\""
        );
        assert_eq!(e.class(), "28");
        // Before 9.6 only the (possibly translated) S field is there.
        let e = ServerError::parse(b"SFATAL\0C57P03\0Mthe database system is starting up\0\0");
        assert_eq!(
            e.to_string(),
            "FATAL 57P03 the database system is starting up"
        );
        let e = ServerError::parse(b"SERROR\0C42601\0Msyntax error\0Hcheck it\0Dmore");
        assert_eq!(
            (e.hint.as_deref(), e.detail.as_deref()),
            (Some("check it"), Some("more"))
        );
    }

    #[test]
    fn auth_names() {
        assert_eq!(auth_name(5), Some("MD5 password"));
        assert_eq!(auth_name(10), Some("SASL"));
        assert_eq!(auth_name(4), None);
        assert_eq!(auth_name(-1), None);
    }

    #[test]
    fn data_rows_and_parameters() {
        assert_eq!(first_value(b"\0\x01\0\0\0\x011"), Some(b"1".to_vec()));
        assert_eq!(first_value(b"\0\x01\xff\xff\xff\xff"), None);
        assert_eq!(first_value(b"\0\0"), None);
        assert_eq!(first_value(b"\0\x01\0\0\0\x09ab"), None);
        assert_eq!(
            parameter_status(b"server_version\x0015.8 (Debian 15.8-0+deb12u1)\0"),
            (
                "server_version".to_string(),
                "15.8 (Debian 15.8-0+deb12u1)".to_string()
            )
        );
    }
}
