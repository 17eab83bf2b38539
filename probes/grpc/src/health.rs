//! gRPC over HTTP/2 for the Health Checking Protocol v1: the messages, message framing,
//! status codes, `grpc-message` decoding and metadata validation.

/// The method the probe calls.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    /// The service to check; empty for the whole server.
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    /// A `ServingStatus` value.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// The name of a `HealthCheckResponse.ServingStatus` value.
pub fn serving_status_name(status: i32) -> String {
    match status {
        0 => "UNKNOWN".to_string(),
        1 => "SERVING".to_string(),
        2 => "NOT_SERVING".to_string(),
        3 => "SERVICE_UNKNOWN".to_string(),
        other => format!("status {other}"),
    }
}

/// `ServingStatus.SERVING`.
pub const SERVING: i32 = 1;

/// A gRPC message on the wire: compressed flag, 4-byte big-endian length, bytes.
pub fn frame_message(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The one message in a response body; the error says what is wrong with it.
pub fn unframe_message(body: &[u8]) -> Result<&[u8], String> {
    let [flag, a, b, c, d, rest @ ..] = body else {
        return Err(format!(
            "the response body has {} bytes, not a gRPC message",
            body.len()
        ));
    };
    if *flag != 0 {
        return Err("the response message is compressed, though the probe asked for none".into());
    }
    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    rest.get(..len).ok_or_else(|| {
        format!(
            "the response message is cut short ({} of {len} bytes)",
            rest.len()
        )
    })
}

/// The name of a gRPC status code.
pub fn code_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNDEFINED",
    }
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2, "Responses").
pub fn percent_decode(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if text[i] == b'%' && i + 2 < text.len() {
            if let (Some(h), Some(l)) = (hex(text[i + 1]), hex(text[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Headers the probe sets itself or that HTTP/2 forbids: metadata may not name them.
const RESERVED: &[&str] = &[
    "content-type",
    "te",
    "user-agent",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Parse one `metadata=name:value` parameter into a lower-case header name and value.
/// The error is the reason shown to the operator.
pub fn parse_metadata(text: &str) -> Result<(String, String), String> {
    let expected = || format!("expected name:value such as x-api-key:abc123, got '{text}'");
    let (name, value) = text.split_once(':').ok_or_else(expected)?;
    let name = name.trim().to_ascii_lowercase();
    let value = value.trim();
    if name.is_empty() {
        return Err(expected());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "metadata name '{name}' has '{bad}'; names use a-z, 0-9, '-', '_' and '.'"
        ));
    }
    if name.starts_with("grpc-") {
        return Err(format!(
            "metadata name '{name}' is reserved: grpc-* headers belong to gRPC itself"
        ));
    }
    if RESERVED.contains(&name.as_str()) {
        return Err(format!(
            "metadata name '{name}' is reserved: the probe or HTTP/2 sets it"
        ));
    }
    if name.ends_with("-bin") {
        let base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
        if !value.chars().all(base64) {
            return Err(format!(
                "binary metadata '{name}' needs a base64 value, got '{value}'"
            ));
        }
    } else if let Some(bad) = value.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "metadata '{name}' has {bad:?} in its value; values are printable ASCII (use a \
             name ending in -bin for base64 binary values)"
        ));
    }
    Ok((name, value.to_string()))
}

/// Check an `authority` value (`host:port` or `host`).
pub fn check_authority(text: &str) -> Result<(), String> {
    if text.is_empty()
        || !text
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '?' | '#' | '@'))
    {
        return Err(format!(
            "expected a host name, optionally with a port, such as api.internal:443, got '{text}'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn request_encoding() {
        // protoc --encode: field 1 (string) "app" = 0a 03 61 70 70; the empty message is empty.
        let req = HealthCheckRequest {
            service: "app".into(),
        };
        assert_eq!(req.encode_to_vec(), b"\x0a\x03app");
        assert!(HealthCheckRequest::default().encode_to_vec().is_empty());
        assert_eq!(
            frame_message(&req.encode_to_vec()),
            b"\x00\x00\x00\x00\x05\x0a\x03app"
        );
    }

    #[test]
    fn response_decoding() {
        let serving = HealthCheckResponse::decode(&b"\x08\x01"[..]).unwrap();
        assert_eq!(serving.status, SERVING);
        // An empty message is the default: UNKNOWN.
        assert_eq!(HealthCheckResponse::decode(&b""[..]).unwrap().status, 0);
        assert_eq!(serving_status_name(2), "NOT_SERVING");
        assert_eq!(serving_status_name(9), "status 9");
        assert_eq!(
            unframe_message(b"\x00\x00\x00\x00\x02\x08\x01"),
            Ok(&b"\x08\x01"[..])
        );
        assert!(unframe_message(b"\x00\x00\x00\x00\x05\x08").is_err());
        assert!(
            unframe_message(b"\x01\x00\x00\x00\x00")
                .unwrap_err()
                .contains("compressed")
        );
        assert!(unframe_message(b"").is_err());
    }

    #[test]
    fn status_messages() {
        assert_eq!(code_name(12), "UNIMPLEMENTED");
        assert_eq!(code_name(99), "UNDEFINED");
        assert_eq!(
            percent_decode(b"unknown%20service%3A%20x"),
            "unknown service: x"
        );
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
        assert_eq!(percent_decode("caf%C3%A9".as_bytes()), "café");
    }

    #[test]
    fn metadata() {
        assert_eq!(
            parse_metadata("X-Api-Key: abc 123"),
            Ok(("x-api-key".into(), "abc 123".into()))
        );
        assert_eq!(
            parse_metadata("trace-bin:AAEC"),
            Ok(("trace-bin".into(), "AAEC".into()))
        );
        assert_eq!(
            parse_metadata("empty:"),
            Ok(("empty".into(), String::new()))
        );
        for (bad, why) in [
            ("novalue", "expected name:value"),
            (":x", "expected name:value"),
            ("a b:1", "has ' '"),
            ("grpc-timeout:1S", "reserved"),
            ("te:trailers", "reserved"),
            ("Content-Type:x", "reserved"),
            ("x-bin:not base64!", "base64"),
            ("x:tab\there", "printable ASCII"),
            ("x:caf\u{e9}", "printable ASCII"),
        ] {
            let err = parse_metadata(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn authority() {
        assert!(check_authority("api.internal:443").is_ok());
        assert!(check_authority("[::1]:50051").is_ok());
        for bad in ["", "a b", "x/y", "user@host"] {
            assert!(check_authority(bad).is_err(), "{bad}");
        }
    }
}
