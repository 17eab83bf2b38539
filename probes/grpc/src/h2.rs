//! HTTP/2 framing (RFC 9113) as far as one client request needs it. Header blocks are
//! HPACK-coded by `loona-hpack`; this module only frames and unframes bytes.

/// What a client sends first on a prior-knowledge (h2c) connection.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types.
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

/// Flags.
pub const END_STREAM: u8 = 0x1;
/// `ACK` on SETTINGS and PING (the same bit as END_STREAM).
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

/// SETTINGS_ENABLE_PUSH: the probe accepts no pushed streams.
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;

/// The largest frame payload a peer may send before SETTINGS_MAX_FRAME_SIZE says more
/// (the probe never raises it), and so the largest the probe sends.
pub const MAX_FRAME: usize = 16_384;

/// The 9-byte frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length.
    pub len: usize,
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream id (the reserved bit cleared).
    pub stream: u32,
}

impl FrameHeader {
    /// Parse the first 9 bytes of a frame.
    pub fn parse(bytes: &[u8; 9]) -> Self {
        FrameHeader {
            len: usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]),
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
        }
    }
}

/// One frame with `payload` (at most [`MAX_FRAME`] bytes; callers split longer ones).
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = Vec::with_capacity(9 + len);
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A SETTINGS frame with `settings` (identifier, value).
pub fn settings(settings: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(6 * settings.len());
    for (id, value) in settings {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

/// A header block as HEADERS plus as many CONTINUATION frames as it needs.
pub fn headers(stream: u32, block: &[u8], end_stream: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunks = block.chunks(MAX_FRAME).peekable();
    let mut kind = HEADERS;
    let mut flags = if end_stream { END_STREAM } else { 0 };
    if chunks.peek().is_none() {
        return frame(HEADERS, flags | END_HEADERS, stream, &[]);
    }
    while let Some(chunk) = chunks.next() {
        if chunks.peek().is_none() {
            flags |= END_HEADERS;
        }
        out.extend(frame(kind, flags, stream, chunk));
        kind = CONTINUATION;
        flags = 0;
    }
    out
}

/// The payload of a HEADERS or DATA frame without its padding (and, for HEADERS, the
/// priority fields). `None` if the padding is longer than the frame.
pub fn unpad(header: &FrameHeader, payload: &[u8]) -> Option<Vec<u8>> {
    let mut body = payload;
    let mut pad = 0;
    if header.flags & PADDED != 0 {
        pad = usize::from(*body.first()?);
        body = &body[1..];
    }
    if header.kind == HEADERS && header.flags & PRIORITY_FLAG != 0 {
        body = body.get(5..)?;
    }
    let end = body.len().checked_sub(pad)?;
    Some(body[..end].to_vec())
}

/// The name of an HTTP/2 error code (RST_STREAM, GOAWAY).
pub fn error_name(code: u32) -> String {
    let name = match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        other => return format!("error 0x{other:x}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_round_trip() {
        let bytes = frame(HEADERS, END_HEADERS | END_STREAM, 1, b"abc");
        assert_eq!(&bytes[..9], &[0, 0, 3, 1, 5, 0, 0, 0, 1]);
        let header = FrameHeader::parse(bytes[..9].try_into().unwrap());
        assert_eq!(
            header,
            FrameHeader {
                len: 3,
                kind: HEADERS,
                flags: END_HEADERS | END_STREAM,
                stream: 1
            }
        );
        // The reserved bit is ignored.
        let h = FrameHeader::parse(&[0, 1, 0, 0, 0, 0x80, 0, 0, 3]);
        assert_eq!((h.len, h.stream), (256, 3));
    }

    #[test]
    fn settings_frame() {
        assert_eq!(
            settings(&[(SETTINGS_ENABLE_PUSH, 0)]),
            vec![0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]
        );
    }

    #[test]
    fn long_header_blocks_get_continuations() {
        let block = vec![7u8; MAX_FRAME + 10];
        let bytes = headers(1, &block, false);
        let first = FrameHeader::parse(bytes[..9].try_into().unwrap());
        assert_eq!(
            (first.kind, first.flags, first.len),
            (HEADERS, 0, MAX_FRAME)
        );
        let at = 9 + MAX_FRAME;
        let second = FrameHeader::parse(bytes[at..at + 9].try_into().unwrap());
        assert_eq!(
            (second.kind, second.flags, second.len),
            (CONTINUATION, END_HEADERS, 10)
        );
        let short = headers(3, b"xy", true);
        assert_eq!(
            &short[..9],
            &[0, 0, 2, 1, END_HEADERS | END_STREAM, 0, 0, 0, 3]
        );
    }

    #[test]
    fn padding_and_priority_are_removed() {
        let h = FrameHeader {
            len: 0,
            kind: HEADERS,
            flags: PADDED | PRIORITY_FLAG,
            stream: 1,
        };
        let payload = [&[2u8][..], &[0, 0, 0, 0, 16], b"block", &[0, 0]].concat();
        assert_eq!(unpad(&h, &payload).unwrap(), b"block");
        let d = FrameHeader {
            kind: DATA,
            flags: PADDED,
            ..h
        };
        assert_eq!(unpad(&d, &[1, b'x', 0]).unwrap(), b"x");
        assert_eq!(unpad(&d, &[5, b'x']), None);
    }

    #[test]
    fn error_names() {
        assert_eq!(error_name(0), "NO_ERROR");
        assert_eq!(error_name(0xd), "HTTP_1_1_REQUIRED");
        assert_eq!(error_name(0x42), "error 0x42");
    }
}
