//! [`Framed`]: whole messages of a binary protocol read from a [`Link`], every wait named
//! by the step of the protocol that was waiting.

use std::fmt;

use super::error::After;
use super::{Link, TcpError};

/// The largest message [`Framed`] buffers unless told otherwise ([`Framed::max`]): a health
/// check's answers are small, and a peer that sends more is not the server expected.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// A [`Link`] with a read buffer, for protocols made of messages: read exactly `n` bytes,
/// a length-prefixed frame, or whatever a parser of your own recognises, and have a
/// timeout or a closed connection name the step that was waiting (`no reply to PING`).
///
/// ```
/// use healthprobe_sdk::tcp::{Framed, Prefix};
/// use healthprobe_sdk::testing::Script;
///
/// // A peer that answers the first write with one frame: a 2-byte big-endian length,
/// // then the payload.
/// let peer = Script::new([b"".to_vec(), b"\x00\x05hello".to_vec()]);
/// let mut framed = Framed::new(peer);
/// framed.send(b"\x00\x04ping", "PING")?;
/// assert_eq!(framed.read_prefixed(Prefix::U16Be, "PING")?, b"hello");
/// # Ok::<(), healthprobe_sdk::tcp::FrameError>(())
/// ```
#[derive(Debug)]
pub struct Framed<L> {
    link: L,
    buf: Vec<u8>,
    max: usize,
}

/// How a frame's length is written before it ([`Framed::read_prefixed`]): the length of
/// the payload alone, in 1, 2 or 4 bytes, big- or little-endian. For a length that counts
/// itself or a header, read the header with [`Framed::read_exact`] and the rest the same
/// way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// One byte.
    U8,
    /// Two bytes, big-endian (network order).
    U16Be,
    /// Four bytes, big-endian (network order).
    U32Be,
    /// Two bytes, little-endian.
    U16Le,
    /// Four bytes, little-endian.
    U32Le,
}

impl Prefix {
    fn len(self) -> usize {
        match self {
            Prefix::U8 => 1,
            Prefix::U16Be | Prefix::U16Le => 2,
            Prefix::U32Be | Prefix::U32Le => 4,
        }
    }

    fn decode(self, b: &[u8]) -> usize {
        let n = match self {
            Prefix::U8 => u32::from(b[0]),
            Prefix::U16Be => u32::from(u16::from_be_bytes([b[0], b[1]])),
            Prefix::U16Le => u32::from(u16::from_le_bytes([b[0], b[1]])),
            Prefix::U32Be => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            Prefix::U32Le => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        };
        usize::try_from(n).unwrap_or(usize::MAX)
    }
}

/// Why [`Framed`] could not send or read a message, with the step that was waiting.
#[derive(Debug)]
pub enum FrameError {
    /// The connection failed or the budget ran out during `step` (see
    /// [`TcpError::Timeout`]).
    Tcp {
        /// The step of the protocol, as given to the call (`PING`, `the handshake`).
        step: &'static str,
        /// What failed.
        error: TcpError,
    },
    /// The peer closed the connection during `step`, after `received` bytes of the
    /// message it was expected to send.
    Closed {
        /// The step of the protocol.
        step: &'static str,
        /// How many bytes of the awaited message had arrived.
        received: usize,
    },
    /// The peer announced or sent a message of `size` bytes, over the cap
    /// ([`Framed::max`]); usually a sign it speaks another protocol.
    TooLarge {
        /// The step of the protocol.
        step: &'static str,
        /// The size announced, or buffered so far.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// The peer's bytes are not this protocol: `reason` is the parser's.
    Malformed {
        /// The step of the protocol.
        step: &'static str,
        /// What the parser refused.
        reason: String,
    },
}

impl FrameError {
    /// The step that was waiting.
    pub fn step(&self) -> &'static str {
        match self {
            FrameError::Tcp { step, .. }
            | FrameError::Closed { step, .. }
            | FrameError::TooLarge { step, .. }
            | FrameError::Malformed { step, .. } => step,
        }
    }

    /// A short machine name of the failure, for the `error` detail: the connection's
    /// ([`TcpError::kind`]: `timeout`, `reset`, …), `closed`, or `protocol`.
    pub fn kind(&self) -> &'static str {
        match self {
            FrameError::Tcp { error, .. } => error.kind(),
            FrameError::Closed { .. } => "closed",
            FrameError::TooLarge { .. } | FrameError::Malformed { .. } => "protocol",
        }
    }

    /// The check's verdict for this failure with the server at `address`: unhealthy, the
    /// message naming the step that was waiting, and the `error` detail ([`Self::kind`]).
    pub fn verdict(&self, address: &str) -> crate::CheckResult {
        crate::CheckResult::unhealthy(format!("{address}: {self}")).detail("error", self.kind())
    }

    /// Whether the budget ran out (the check's verdict is then a timeout).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            FrameError::Tcp {
                error: TcpError::Timeout { .. },
                ..
            }
        )
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Tcp {
                step,
                error: TcpError::Timeout { address, after, .. },
            } => write!(
                f,
                "timeout{} waiting for {step} from {address}",
                After(*after)
            ),
            FrameError::Tcp { step, error } => write!(f, "{step}: {error}"),
            FrameError::Closed { step, received: 0 } => {
                write!(
                    f,
                    "the server closed the connection instead of answering {step}"
                )
            }
            FrameError::Closed { step, received } => write!(
                f,
                "the server closed the connection in the middle of its answer to {step} \
                 ({received} bytes)"
            ),
            FrameError::TooLarge { step, size, max } => write!(
                f,
                "the answer to {step} is {size} bytes, over the {max} this probe reads; \
                 is this the right service?"
            ),
            FrameError::Malformed { step, reason } => {
                write!(
                    f,
                    "not the expected protocol in the answer to {step}: {reason}"
                )
            }
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Tcp { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl<L: Link> Framed<L> {
    /// Reads from `link`, buffering at most [`DEFAULT_MAX_FRAME`] bytes.
    pub fn new(link: L) -> Self {
        Framed {
            link,
            buf: Vec::new(),
            max: DEFAULT_MAX_FRAME,
        }
    }

    /// The same, with a cap of `max` bytes on one message (and on what is buffered).
    #[must_use]
    pub fn max(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// Sends all of `data`; `step` names what it was, for an error.
    pub fn send(&mut self, data: &[u8], step: &'static str) -> Result<(), FrameError> {
        self.link
            .send(data)
            .map_err(|error| FrameError::Tcp { step, error })
    }

    /// Buffers at least `n` bytes (`n` at most the cap).
    pub fn fill(&mut self, n: usize, step: &'static str) -> Result<(), FrameError> {
        if n > self.max {
            return Err(FrameError::TooLarge {
                step,
                size: n,
                max: self.max,
            });
        }
        while self.buf.len() < n {
            if !self.receive(step)? {
                return Err(FrameError::Closed {
                    step,
                    received: self.buf.len(),
                });
            }
        }
        Ok(())
    }

    /// Receives what the peer sent next into the buffer; `false` if it closed the
    /// connection.
    fn receive(&mut self, step: &'static str) -> Result<bool, FrameError> {
        let room = self.max.saturating_sub(self.buf.len()).clamp(1, 64 * 1024);
        let chunk = self
            .link
            .recv(room)
            .map_err(|error| FrameError::Tcp { step, error })?;
        self.buf.extend_from_slice(&chunk);
        Ok(!chunk.is_empty())
    }

    /// The next `n` bytes.
    pub fn read_exact(&mut self, n: usize, step: &'static str) -> Result<Vec<u8>, FrameError> {
        self.fill(n, step)?;
        Ok(self.buf.drain(..n).collect())
    }

    /// The next byte.
    pub fn read_u8(&mut self, step: &'static str) -> Result<u8, FrameError> {
        Ok(self.read_exact(1, step)?[0])
    }

    /// The next two bytes as a big-endian (network order) integer.
    pub fn read_u16(&mut self, step: &'static str) -> Result<u16, FrameError> {
        let b = self.read_exact(2, step)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// The next four bytes as a big-endian (network order) integer.
    pub fn read_u32(&mut self, step: &'static str) -> Result<u32, FrameError> {
        let b = self.read_exact(4, step)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next message that ends with `delimiter` (for example `b"\r\n"` for the line
    /// protocols: SMTP, Redis, memcached), the delimiter included. What follows it stays
    /// buffered for the next read.
    ///
    /// ```
    /// use healthprobe_sdk::tcp::Framed;
    /// use healthprobe_sdk::testing::Script;
    ///
    /// // Both lines arrive in one read; each call takes one.
    /// let mut framed = Framed::new(Script::new([b"220 ready\r\n250 ok\r\n".to_vec()]));
    /// assert_eq!(framed.read_delimited(b"\r\n", "the greeting")?, b"220 ready\r\n");
    /// assert_eq!(framed.read_delimited(b"\r\n", "EHLO")?, b"250 ok\r\n");
    /// # Ok::<(), healthprobe_sdk::tcp::FrameError>(())
    /// ```
    pub fn read_delimited(
        &mut self,
        delimiter: &[u8],
        step: &'static str,
    ) -> Result<Vec<u8>, FrameError> {
        assert!(!delimiter.is_empty(), "read_delimited needs a delimiter");
        let mut searched = 0;
        self.read_with(step, |buf| {
            // Only the bytes that arrived since the last look (and an overlap) are new.
            let from = searched.min(buf.len());
            searched = buf.len().saturating_sub(delimiter.len() - 1);
            Ok(buf[from..]
                .windows(delimiter.len())
                .position(|w| w == delimiter)
                .map(|at| {
                    let end = from + at + delimiter.len();
                    (buf[..end].to_vec(), end)
                }))
        })
    }

    /// The payload of the next frame whose length is written before it as `prefix`.
    pub fn read_prefixed(
        &mut self,
        prefix: Prefix,
        step: &'static str,
    ) -> Result<Vec<u8>, FrameError> {
        self.fill(prefix.len(), step)?;
        let len = prefix.decode(&self.buf);
        self.fill(prefix.len().saturating_add(len), step)?;
        self.buf.drain(..prefix.len());
        Ok(self.buf.drain(..len).collect())
    }

    /// The next message as `parse` recognises it. `parse` is given everything buffered and
    /// returns the message and how many bytes it took, `None` if it needs more bytes, or
    /// an error in words if the bytes cannot be this protocol.
    pub fn read_with<T>(
        &mut self,
        step: &'static str,
        mut parse: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, String>,
    ) -> Result<T, FrameError> {
        loop {
            match parse(&self.buf) {
                Ok(Some((message, used))) => {
                    self.buf.drain(..used.min(self.buf.len()));
                    return Ok(message);
                }
                Ok(None) => {}
                Err(reason) => return Err(FrameError::Malformed { step, reason }),
            }
            if self.buf.len() >= self.max {
                return Err(FrameError::TooLarge {
                    step,
                    size: self.buf.len(),
                    max: self.max,
                });
            }
            if !self.receive(step)? {
                return Err(FrameError::Closed {
                    step,
                    received: self.buf.len(),
                });
            }
        }
    }

    /// What has been received and not read yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// The link underneath (a test's [`Script`](crate::testing::Script), to read what
    /// was written).
    pub fn link(&self) -> &L {
        &self.link
    }

    /// The link underneath, for what this type does not cover.
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    /// The link and what was received but not read.
    pub fn into_parts(self) -> (L, Vec<u8>) {
        (self.link, self.buf)
    }

    /// The same framing with TLS under it, for protocols that switch part-way (STARTTLS);
    /// see [`Link::start_tls`]. Bytes buffered before the switch are kept, though a
    /// well-behaved server sends none.
    pub fn start_tls(self, server_name: &str) -> Result<Self, TcpError> {
        Ok(Framed {
            link: self.link.start_tls(server_name)?,
            buf: self.buf,
            max: self.max,
        })
    }
}

/// Variable-length integers as MQTT's remaining length and Protocol Buffers write them
/// (LEB128: seven bits a byte, least significant first, the high bit set on every byte but
/// the last).
pub mod varint {
    /// `n` encoded.
    pub fn encode(mut n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = u8::try_from(n & 0x7f).unwrap_or(0);
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// The number at the start of `bytes` and how many bytes it took; `Ok(None)` if
    /// `bytes` ends before it does; an error if it runs over `max_bytes` bytes (MQTT
    /// allows 4, Protocol Buffers 10).
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Option<(u64, usize)>, String> {
        let mut n: u64 = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if i >= max_bytes.min(10) {
                break;
            }
            n |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(Some((n, i + 1)));
            }
        }
        if bytes.len() < max_bytes.min(10) {
            Ok(None)
        } else {
            Err(format!("a variable-length integer over {max_bytes} bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Script;

    #[test]
    fn exact_prefixed_and_parsed_reads_reassemble_what_arrives_in_pieces() {
        let peer = Script::new([b"\x07abc\x00\x00\x00\x02hiREST\r\nleft".to_vec()]).chunk(1);
        let mut f = Framed::new(peer);
        assert_eq!(f.read_u8("greeting").unwrap(), 7);
        assert_eq!(f.read_exact(3, "greeting").unwrap(), b"abc");
        assert_eq!(f.read_prefixed(Prefix::U32Be, "frame").unwrap(), b"hi");
        let line = f
            .read_with("line", |b| {
                Ok(b.windows(2)
                    .position(|w| w == b"\r\n")
                    .map(|i| (b[..i].to_vec(), i + 2)))
            })
            .unwrap();
        assert_eq!(line, b"REST");
        assert_eq!(f.read_exact(4, "rest").unwrap(), b"left");
    }

    #[test]
    fn delimited_frames_and_big_endian_integers() {
        // One byte per read: the delimiter arrives split, and across the reads.
        let peer = Script::new([b"+OK\r\n\x01\x02\x00\x00\x01\x00-ERR x\r\n".to_vec()]).chunk(1);
        let mut f = Framed::new(peer);
        assert_eq!(f.read_delimited(b"\r\n", "PING").unwrap(), b"+OK\r\n");
        assert_eq!(f.read_u16("length").unwrap(), 0x0102);
        assert_eq!(f.read_u32("count").unwrap(), 256);
        assert_eq!(f.read_delimited(b"\r\n", "INFO").unwrap(), b"-ERR x\r\n");
        let e = f.read_delimited(b"\r\n", "QUIT").unwrap_err();
        assert!(matches!(e, FrameError::Closed { received: 0, .. }), "{e:?}");

        // A line longer than the cap is refused, not buffered for ever.
        let mut f = Framed::new(Script::new([vec![b'a'; 64]])).max(16);
        let e = f.read_delimited(b"\n", "the greeting").unwrap_err();
        assert!(matches!(e, FrameError::TooLarge { .. }), "{e:?}");
    }

    #[test]
    fn a_timeout_names_the_step_and_how_long_the_check_waited() {
        let e = FrameError::Tcp {
            step: "CONNACK",
            error: TcpError::Timeout {
                address: "127.0.0.1:1883".into(),
                action: "reading",
                after: std::time::Duration::from_millis(1_900),
            },
        };
        assert!(e.is_timeout());
        assert_eq!(
            e.to_string(),
            "timeout after 1.9 s waiting for CONNACK from 127.0.0.1:1883"
        );
        let e = TcpError::timeout("h:1", "connecting", None);
        assert_eq!(e.to_string(), "timeout connecting h:1");
    }

    #[test]
    fn errors_name_the_step_that_was_waiting() {
        let mut f = Framed::new(Script::new([b"\x00\x09abc".to_vec()]));
        let e = f.read_prefixed(Prefix::U16Be, "PING").unwrap_err();
        assert!(matches!(e, FrameError::Closed { received: 5, .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "the server closed the connection in the middle of its answer to PING (5 bytes)"
        );

        let mut f = Framed::new(Script::new([b"\xff\xff\xff\xff".to_vec()]));
        let e = f.read_prefixed(Prefix::U32Le, "CONNECT").unwrap_err();
        assert!(
            e.to_string().contains("over the 1048576 this probe reads"),
            "{e}"
        );

        let mut f = Framed::new(Script::new([b"HTTP/1.1 400".to_vec()])).max(8);
        let e = f.read_with::<()>("hello", |_| Ok(None)).unwrap_err();
        assert!(
            matches!(
                e,
                FrameError::TooLarge {
                    size: 8,
                    max: 8,
                    ..
                }
            ),
            "{e:?}"
        );

        let mut f = Framed::new(Script::new([b"x".to_vec()]));
        let e = f
            .read_with::<()>("hello", |_| Err("expected 0x20".into()))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "not the expected protocol in the answer to hello: expected 0x20"
        );
        assert_eq!(e.step(), "hello");
    }

    #[test]
    fn varints_round_trip_and_stop_at_their_limit() {
        for n in [0, 1, 127, 128, 16_383, 16_384, 268_435_455, u64::MAX] {
            let bytes = varint::encode(n);
            assert_eq!(varint::decode(&bytes, 10), Ok(Some((n, bytes.len()))));
        }
        // MQTT's examples: 321 is 0xC1 0x02.
        assert_eq!(varint::encode(321), [0xc1, 0x02]);
        assert_eq!(varint::decode(&[0xc1], 4), Ok(None));
        assert!(varint::decode(&[0xff; 5], 4).is_err());
    }
}
