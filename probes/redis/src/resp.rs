//! The RESP2 wire format: commands out, replies in.
//!
//! Only what the probe sends and what Redis answers to it is covered. Replies are
//! decoded from a byte buffer that may hold a partial reply, so the same decoder
//! serves the network reader and byte-fixture tests.

use std::fmt;

/// Deepest nesting of arrays accepted: `ROLE` on a master nests two levels.
const MAX_DEPTH: usize = 8;
/// Largest bulk string accepted (`INFO replication` is a few hundred bytes).
pub const MAX_BULK: usize = 1 << 20;
/// Most elements accepted in one array (`ROLE` lists one per replica).
const MAX_ELEMENTS: usize = 10_000;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`, `+PONG`.
    Simple(String),
    /// `-ERR …`, `-WRONGPASS …`: the server's error text, without the `-`.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nfoo`, or `$-1` (`None`).
    Bulk(Option<Vec<u8>>),
    /// `*2 …`, or `*-1` (`None`).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as quoted in a message: its text, shortened to one line.
    pub fn describe(&self) -> String {
        let text = match self {
            Reply::Simple(s) => format!("+{s}"),
            Reply::Error(e) => format!("-{e}"),
            Reply::Integer(i) => format!(":{i}"),
            Reply::Bulk(None) => "a null bulk string".to_string(),
            Reply::Bulk(Some(b)) => format!("\"{}\"", String::from_utf8_lossy(b)),
            Reply::Array(None) => "a null array".to_string(),
            Reply::Array(Some(items)) => format!("an array of {}", items.len()),
        };
        excerpt(&text)
    }
}

/// The bytes are not a RESP reply (the peer is probably not Redis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotResp(pub String);

impl fmt::Display for NotResp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Encode a command as an array of bulk strings, so that arguments may hold
/// spaces or any other byte (passwords do).
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Decode the reply at the start of `buf`: `Ok(None)` if more bytes are needed,
/// otherwise the reply and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, NotResp> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(Reply, usize)>, NotResp> {
    let Some(line_end) = find_crlf(buf, pos) else {
        // A type byte that cannot start a reply is known to be wrong already.
        if let Some(&b) = buf.get(pos) {
            if !b"+-:$*".contains(&b) {
                return Err(not_resp(&buf[pos..]));
            }
        }
        return Ok(None);
    };
    let line = &buf[pos + 1..line_end];
    let next = line_end + 2;
    let text = || String::from_utf8_lossy(line).into_owned();
    match buf[pos] {
        b'+' => Ok(Some((Reply::Simple(text()), next))),
        b'-' => Ok(Some((Reply::Error(text()), next))),
        b':' => Ok(Some((Reply::Integer(number(line, buf, pos)?), next))),
        b'$' => {
            let len = number(line, buf, pos)?;
            if len < 0 {
                return Ok(Some((Reply::Bulk(None), next)));
            }
            let len = usize::try_from(len).map_err(|_| not_resp(&buf[pos..]))?;
            if len > MAX_BULK {
                return Err(NotResp(format!(
                    "a bulk string of {len} bytes, more than the {MAX_BULK} accepted"
                )));
            }
            let end = next + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(NotResp("a bulk string not ended by CRLF".to_string()));
            }
            Ok(Some((Reply::Bulk(Some(buf[next..end].to_vec())), end + 2)))
        }
        b'*' => {
            let len = number(line, buf, pos)?;
            if len < 0 {
                return Ok(Some((Reply::Array(None), next)));
            }
            if depth >= MAX_DEPTH {
                return Err(NotResp(format!("arrays nested more than {MAX_DEPTH} deep")));
            }
            let len = usize::try_from(len).map_err(|_| not_resp(&buf[pos..]))?;
            if len > MAX_ELEMENTS {
                return Err(NotResp(format!(
                    "an array of {len} elements, more than the {MAX_ELEMENTS} accepted"
                )));
            }
            let mut items = Vec::with_capacity(len.min(64));
            let mut at = next;
            for _ in 0..len {
                match parse_at(buf, at, depth + 1)? {
                    Some((item, after)) => {
                        items.push(item);
                        at = after;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), at)))
        }
        _ => Err(not_resp(&buf[pos..])),
    }
}

fn number(line: &[u8], buf: &[u8], pos: usize) -> Result<i64, NotResp> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| not_resp(&buf[pos..]))
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

fn not_resp(bytes: &[u8]) -> NotResp {
    NotResp(format!(
        "{} (not a Redis reply)",
        excerpt(&format!("\"{}\"", String::from_utf8_lossy(bytes)))
    ))
}

/// `text` on one line, at most 120 characters.
pub fn excerpt(text: &str) -> String {
    const MAX: usize = 120;
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > MAX {
        format!("{}…", flat.chars().take(MAX).collect::<String>())
    } else {
        flat
    }
}

/// The replication role in an `INFO replication` reply (`role:master`).
pub fn role_from_info(info: &[u8]) -> Option<String> {
    String::from_utf8_lossy(info)
        .lines()
        .find_map(|l| l.trim().strip_prefix("role:").map(|r| r.trim().to_string()))
}

/// The replication role in a `ROLE` reply (`["master", offset, replicas]`).
pub fn role_from_role(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Array(Some(items)) => match items.first()? {
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Simple(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Reply {
        let (reply, used) = parse(bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len(), "{bytes:?}");
        reply
    }

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        assert_eq!(command(&[b"PING"]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            command(&[b"AUTH", b"app", b"p w\r\n"]),
            b"*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$5\r\np w\r\n\r\n"
        );
    }

    #[test]
    fn decodes_each_type() {
        assert_eq!(one(b"+PONG\r\n"), Reply::Simple("PONG".into()));
        assert_eq!(
            one(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"),
            Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
        );
        assert_eq!(one(b":-7\r\n"), Reply::Integer(-7));
        assert_eq!(one(b"$-1\r\n"), Reply::Bulk(None));
        assert_eq!(one(b"$0\r\n\r\n"), Reply::Bulk(Some(vec![])));
        assert_eq!(
            one(b"$4\r\na\r\nb\r\n"),
            Reply::Bulk(Some(b"a\r\nb".to_vec()))
        );
        assert_eq!(one(b"*-1\r\n"), Reply::Array(None));
        assert_eq!(one(b"*0\r\n"), Reply::Array(Some(vec![])));
    }

    #[test]
    fn decodes_role_replies() {
        let master = b"*3\r\n$6\r\nmaster\r\n:3129659\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9001\r\n$7\r\n3129242\r\n";
        assert_eq!(role_from_role(&one(master)).as_deref(), Some("master"));
        let replica =
            b"*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9000\r\n$9\r\nconnected\r\n:3167038\r\n";
        assert_eq!(role_from_role(&one(replica)).as_deref(), Some("slave"));
        assert_eq!(role_from_role(&Reply::Simple("OK".into())), None);
    }

    #[test]
    fn finds_role_in_info() {
        let info = b"# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\n";
        assert_eq!(role_from_info(info).as_deref(), Some("slave"));
        assert_eq!(
            role_from_info(b"# Server\r\nredis_version:7.0.15\r\n"),
            None
        );
    }

    #[test]
    fn partial_input_asks_for_more() {
        let full = b"*2\r\n$5\r\nhello\r\n:1\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
        // Two pipelined replies: the first is taken, the rest left for later.
        let (reply, used) = parse(b"+OK\r\n+PONG\r\n").unwrap().unwrap();
        assert_eq!((reply, used), (Reply::Simple("OK".into()), 5));
    }

    #[test]
    fn refuses_what_is_not_resp() {
        let err = parse(b"HTTP/1.1 400 Bad Request\r\n").unwrap_err();
        assert!(err.0.contains("HTTP/1.1 400"), "{err}");
        assert!(err.0.contains("not a Redis reply"), "{err}");
        // Known bad before the line ends.
        assert!(parse(b"SSH-2.0-OpenSSH").is_err());
        assert!(parse(b":abc\r\n").is_err());
        assert!(parse(b"$3\r\nabcXY").is_err());
        assert!(parse(b"$99999999999\r\n").is_err());
        assert!(parse(b"*99999999\r\n").is_err());
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes()).unwrap_err().0.contains("nested"));
    }

    #[test]
    fn describes_replies_briefly() {
        assert_eq!(Reply::Simple("OK".into()).describe(), "+OK");
        assert_eq!(Reply::Bulk(Some(b"x\ny".to_vec())).describe(), "\"x y\"");
        let long = Reply::Simple("x".repeat(500)).describe();
        assert!(long.chars().count() <= 121 && long.ends_with('…'));
    }
}
