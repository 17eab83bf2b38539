//! The `send` / `expect` steps of the `tcp` probe: parsing the operator's values,
//! matching what the server sends, and quoting bytes in messages. Pure logic, apart
//! from the reads handed in by the caller, so that it is tested with byte fixtures.

use std::fmt;

use healthprobe_sdk::tcp::TcpError;
use regex::bytes::{Regex, RegexBuilder};

/// Most bytes an `expect` buffers while waiting for its match: a server that talks
/// this much without matching is not going to.
pub const MAX_PENDING: usize = 64 * 1024;

/// Largest single read while waiting for a match.
const READ_CHUNK: usize = 8 * 1024;

/// Longest pattern quoted in a message, in characters.
const PATTERN_CHARS: usize = 60;

/// One step of the conversation, in the order the parameters were given.
#[derive(Debug)]
pub enum Step {
    /// Bytes to write, exactly as given.
    Send(Vec<u8>),
    /// A pattern the server's output must match before the next step.
    Expect(Pattern),
}

impl Step {
    /// The steps among `pairs` (`send` and `expect`, in command-line order); the error
    /// names the parameter and says what is wrong.
    pub fn parse_all<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Vec<Step>, (&'static str, String)> {
        let mut steps = Vec::new();
        for (name, value) in pairs {
            match name {
                "send" => steps.push(Step::Send(parse_send(value).map_err(|r| ("send", r))?)),
                "expect" => steps.push(Step::Expect(
                    Pattern::parse(value).map_err(|r| ("expect", r))?,
                )),
                _ => {}
            }
        }
        Ok(steps)
    }
}

/// What an `expect` waits for.
#[derive(Debug)]
pub enum Pattern {
    /// A regular expression over bytes (ASCII classes; `.` is any byte but `\n`).
    Regex(Regex),
    /// Exact bytes (`hex:…`) that must appear somewhere.
    Bytes(Vec<u8>),
}

impl Pattern {
    /// Parse `hex:0d0a` as exact bytes, anything else as a regular expression.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(hex) = text.strip_prefix("hex:") {
            return parse_hex(hex).map(Pattern::Bytes);
        }
        if text.is_empty() {
            return Err(
                "is empty; give a regular expression such as ^220 or ^\\+PONG, or hex:BYTES"
                    .to_string(),
            );
        }
        // Byte-oriented: `\d`, `\w` and case folding are ASCII, as in the protocols probed,
        // and the Unicode tables stay out of the component.
        RegexBuilder::new(text)
            .unicode(false)
            .build()
            .map(Pattern::Regex)
            .map_err(|e| {
                format!(
                    "invalid regular expression '{}': {}",
                    one_line(text),
                    regex_reason(&e)
                )
            })
    }

    /// Where the first match in `data` starts and ends.
    pub fn find(&self, data: &[u8]) -> Option<(usize, usize)> {
        match self {
            Pattern::Regex(re) => re.find(data).map(|m| (m.start(), m.end())),
            Pattern::Bytes(needle) => data
                .windows(needle.len())
                .position(|w| w == needle.as_slice())
                .map(|at| (at, at + needle.len())),
        }
    }

    /// How many bytes of `data` a match ending at `end` uses up. A regex takes the rest
    /// of the matched line too, so that the next `^` anchors at the start of the next
    /// line (the SMTP way: `expect=^220 send=QUIT\r\n expect=^221`); exact bytes take
    /// nothing past themselves, as binary protocols have no lines.
    fn consumed(&self, data: &[u8], end: usize) -> usize {
        match self {
            Pattern::Bytes(_) => end,
            Pattern::Regex(_) if end > 0 && data[end - 1] == b'\n' => end,
            // Without a newline yet, the line's rest is unknown: drop what there is.
            Pattern::Regex(_) => data[end..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(data.len(), |i| end + i + 1),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Regex(re) => {
                let text = one_line(re.as_str());
                if text.chars().count() > PATTERN_CHARS {
                    let cut: String = text.chars().take(PATTERN_CHARS).collect();
                    write!(f, "/{cut}…/")
                } else {
                    write!(f, "/{text}/")
                }
            }
            Pattern::Bytes(bytes) => {
                f.write_str("hex:")?;
                for b in bytes.iter().take(PATTERN_CHARS / 2) {
                    write!(f, "{b:02x}")?;
                }
                if bytes.len() > PATTERN_CHARS / 2 {
                    f.write_str("…")?;
                }
                Ok(())
            }
        }
    }
}

/// Why an `expect` ended without a match.
#[derive(Debug)]
pub enum Miss {
    /// The server closed the connection.
    Closed,
    /// [`MAX_PENDING`] bytes arrived without a match.
    Full,
    /// Reading failed (the budget ran out, the connection was reset, …).
    Read(TcpError),
}

/// Wait until `pattern` matches what is in `pending` plus what `read` returns (at most
/// the number of bytes asked for; empty at end of stream). On a match, returns the
/// matched line (from the match's start to the end of its line, as far as received)
/// and removes the bytes the match used up from `pending`; on a miss, `pending` holds
/// everything received since the previous match.
pub fn expect(
    pending: &mut Vec<u8>,
    pattern: &Pattern,
    mut read: impl FnMut(usize) -> Result<Vec<u8>, TcpError>,
) -> Result<Vec<u8>, Miss> {
    loop {
        if let Some((start, end)) = pattern.find(pending) {
            let used = pattern.consumed(pending, end);
            let line = pending[start..used].to_vec();
            pending.drain(..used);
            return Ok(line);
        }
        if pending.len() >= MAX_PENDING {
            return Err(Miss::Full);
        }
        let want = (MAX_PENDING - pending.len()).min(READ_CHUNK);
        let chunk = read(want).map_err(Miss::Read)?;
        if chunk.is_empty() {
            return Err(Miss::Closed);
        }
        pending.extend_from_slice(&chunk);
    }
}

/// Parse a `send` value: `hex:50494e47`, or text with the escapes `\r \n \t \\ \0 \xHH`.
/// Nothing is added: a line ending must be written.
pub fn parse_send(text: &str) -> Result<Vec<u8>, String> {
    if let Some(hex) = text.strip_prefix("hex:") {
        return parse_hex(hex);
    }
    if text.is_empty() {
        return Err(
            "is empty; give the bytes to send, such as PING\\r\\n or hex:50494e470d0a".to_string(),
        );
    }
    unescape(text)
}

/// Text with `\r \n \t \\ \0 \xHH` escapes, as bytes (other characters as UTF-8).
fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let byte = match chars.next() {
            Some('r') => b'\r',
            Some('n') => b'\n',
            Some('t') => b'\t',
            Some('0') => 0,
            Some('\\') => b'\\',
            Some('x') => {
                let digits: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&digits, 16) {
                    Ok(b) if digits.len() == 2 && digits.bytes().all(|d| d.is_ascii_hexdigit()) => {
                        b
                    }
                    _ => {
                        return Err(format!(
                            "expected two hex digits after \\x (as in \\x0d), got '\\x{digits}' in '{}'",
                            one_line(text)
                        ));
                    }
                }
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape '\\{other}' in '{}'; use \\r \\n \\t \\\\ \\0 or \\xHH",
                    one_line(text)
                ));
            }
            None => {
                return Err(format!(
                    "a lone '\\' ends '{}'; write \\\\ for a backslash",
                    one_line(text)
                ));
            }
        };
        out.push(byte);
    }
    Ok(out)
}

/// Hex digit pairs; spaces between them are allowed (`0d0a`, `0d 0a`).
fn parse_hex(hex: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let expected = || {
        format!(
            "expected pairs of hex digits after hex:, such as hex:50494e470d0a, got 'hex:{}'",
            one_line(hex)
        )
    };
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return Err(expected());
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .filter(|p| p.bytes().all(|d| d.is_ascii_hexdigit()))
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(expected)
        })
        .collect()
}

/// `bytes` for a message: printable ASCII as it is, the rest as `\r \n \t \0 \\ \xHH`;
/// at most `max` bytes, then `…`.
pub fn quote(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0 => out.push_str("\\0"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        out.push('…');
    }
    out
}

/// `text` with its control characters escaped, so that it stays on one line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\r' => "\\r".to_string(),
            '\n' => "\\n".to_string(),
            '\t' => "\\t".to_string(),
            c if c.is_control() => format!("\\x{:02x}", u32::from(c)),
            c => c.to_string(),
        })
        .collect()
}

/// The one-line reason of a regex error (its display is a multi-line diagram).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(
            || text.split_whitespace().collect::<Vec<_>>().join(" "),
            str::to_string,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_values() {
        assert_eq!(parse_send("PING\\r\\n").unwrap(), b"PING\r\n");
        assert_eq!(parse_send("QUIT").unwrap(), b"QUIT");
        assert_eq!(
            parse_send("a\\tb\\\\c\\0\\x7f\\xFF").unwrap(),
            b"a\tb\\c\0\x7f\xff"
        );
        assert_eq!(parse_send("é").unwrap(), "é".as_bytes());
        assert_eq!(parse_send("hex:50494e470d0a").unwrap(), b"PING\r\n");
        assert_eq!(parse_send("hex:50 49 4E 47").unwrap(), b"PING");
        // Escapes are not interpreted after hex:, and a literal "hex:" needs an escape.
        assert_eq!(parse_send("\\x68ex:00").unwrap(), b"hex:00");

        for (bad, needle) in [
            ("", "is empty"),
            ("a\\q", "unknown escape '\\q'"),
            ("a\\", "lone '\\'"),
            ("\\x4", "two hex digits"),
            ("\\xZZ", "two hex digits"),
            ("\\x+1", "two hex digits"),
            ("hex:", "pairs of hex digits"),
            ("hex:abc", "pairs of hex digits"),
            ("hex:zz", "pairs of hex digits"),
            ("hex:+1", "pairs of hex digits"),
        ] {
            let err = parse_send(bad).unwrap_err();
            assert!(err.contains(needle), "{bad:?}: {err}");
        }
    }

    #[test]
    fn patterns() {
        let re = Pattern::parse("^\\+PONG").unwrap();
        assert_eq!(re.find(b"+PONG\r\n"), Some((0, 5)));
        assert_eq!(re.find(b"-ERR\r\n+PONG\r\n"), None);
        assert_eq!(re.to_string(), "/^\\+PONG/");
        // ASCII classes and case folding work without the Unicode tables; `.` is any byte.
        let v = Pattern::parse("(?i)^version \\d+\\.\\d+").unwrap();
        assert!(v.find(b"VERSION 1.6.21\r\n").is_some());
        assert!(Pattern::parse("^a.b").unwrap().find(b"a\xffb").is_some());
        assert!(
            Pattern::parse("\\x00\\xff")
                .unwrap()
                .find(b"\x00\xff")
                .is_some()
        );

        let hex = Pattern::parse("hex:2b504f4e47").unwrap();
        assert_eq!(hex.find(b"xx+PONG"), Some((2, 7)));
        assert_eq!(hex.to_string(), "hex:2b504f4e47");

        let err = Pattern::parse("(").unwrap_err();
        assert_eq!(err, "invalid regular expression '(': unclosed group");
        assert!(!Pattern::parse("a{99999999}").unwrap_err().contains('\n'));
        assert!(Pattern::parse("").unwrap_err().contains("is empty"));
        assert!(Pattern::parse("hex:0").is_err());

        let long = Pattern::parse(&"a".repeat(200)).unwrap().to_string();
        assert_eq!(long.chars().count(), PATTERN_CHARS + 3);
    }

    #[test]
    fn steps_keep_command_line_order() {
        let steps = Step::parse_all([
            ("address", "127.0.0.1:25"),
            ("expect", "^220"),
            ("send", "QUIT\\r\\n"),
            ("expect", "^221"),
        ])
        .unwrap();
        assert!(matches!(
            steps.as_slice(),
            [Step::Expect(_), Step::Send(s), Step::Expect(_)] if s == b"QUIT\r\n"
        ));
        assert_eq!(Step::parse_all([("send", "a\\q")]).unwrap_err().0, "send");
        assert_eq!(Step::parse_all([("expect", "(")]).unwrap_err().0, "expect");
    }

    /// A reader that hands out `chunks` one by one, then end of stream.
    fn chunks(list: &[&[u8]]) -> impl FnMut(usize) -> Result<Vec<u8>, TcpError> {
        let mut list: Vec<Vec<u8>> = list.iter().rev().map(|c| c.to_vec()).collect();
        move |max| {
            let mut next = list.pop().unwrap_or_default();
            assert!(next.len() <= max, "chunk larger than asked for");
            next.truncate(max);
            Ok(next)
        }
    }

    #[test]
    fn expect_waits_across_reads_and_consumes_the_line() {
        let mut pending = Vec::new();
        let mut read = chunks(&[b"22", b"0 mail ESMTP ready\r\n221 Bye\r\n"]);
        let line = expect(&mut pending, &Pattern::parse("^220").unwrap(), &mut read).unwrap();
        assert_eq!(line, b"220 mail ESMTP ready\r\n");
        // The next `^` anchors at the following line.
        assert_eq!(pending, b"221 Bye\r\n");
        let line = expect(&mut pending, &Pattern::parse("^221").unwrap(), &mut read).unwrap();
        assert_eq!(line, b"221 Bye\r\n");
        assert!(pending.is_empty());
    }

    #[test]
    fn two_replies_in_one_read() {
        let mut pending = Vec::new();
        let mut read = chunks(&[b"+PONG\r\n+PONG\r\n"]);
        let pong = Pattern::parse("^\\+PONG\\r\\n").unwrap();
        expect(&mut pending, &pong, &mut read).unwrap();
        expect(&mut pending, &pong, &mut read).unwrap();
        assert!(matches!(
            expect(&mut pending, &pong, &mut read),
            Err(Miss::Closed)
        ));
    }

    #[test]
    fn exact_bytes_consume_only_themselves() {
        let mut pending = Vec::new();
        let mut read = chunks(&[b"\x00\x01\x02\n\x03"]);
        let line = expect(
            &mut pending,
            &Pattern::parse("hex:0001").unwrap(),
            &mut read,
        )
        .unwrap();
        assert_eq!(line, b"\x00\x01");
        assert_eq!(pending, b"\x02\n\x03");
    }

    #[test]
    fn misses() {
        let mut pending = Vec::new();
        let miss = expect(
            &mut pending,
            &Pattern::parse("^\\+PONG").unwrap(),
            chunks(&[b"-NOAUTH Authentication required.\r\n"]),
        )
        .unwrap_err();
        assert!(matches!(miss, Miss::Closed));
        assert_eq!(pending, b"-NOAUTH Authentication required.\r\n");

        let mut pending = Vec::new();
        let miss = expect(&mut pending, &Pattern::parse("^x").unwrap(), |max| {
            Ok(vec![b'y'; max])
        })
        .unwrap_err();
        assert!(matches!(miss, Miss::Full));
        assert_eq!(pending.len(), MAX_PENDING);

        let mut pending = b"partial".to_vec();
        let miss = expect(&mut pending, &Pattern::parse("^done").unwrap(), |_| {
            Err(TcpError::timeout("h:1", "reading", None))
        })
        .unwrap_err();
        assert!(matches!(miss, Miss::Read(TcpError::Timeout { .. })));
        assert_eq!(pending, b"partial");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(b"+PONG\r\n", 100), "+PONG\\r\\n");
        assert_eq!(quote(b"a\\b\x00\xff\t", 100), "a\\\\b\\0\\xff\\t");
        assert_eq!(quote(b"abcdef", 3), "abc…");
        assert_eq!(one_line("a\nb"), "a\\nb");
    }
}
