//! The probe against scripted HTTP/2 peers (byte fixtures; no server needed).

use healthprobe_sdk::Status;
use healthprobe_sdk::testing::Script;

use super::*;

fn connection(replies: &[Vec<u8>]) -> Connection<Script> {
    // No greeting: the server speaks after the client's preface. A few bytes at a time,
    // to exercise frame reassembly.
    let script = std::iter::once(Vec::new()).chain(replies.iter().cloned());
    Connection::new(Script::new(script).chunk(5))
}

fn request(service: &str) -> Request<'_> {
    Request {
        scheme: "http",
        service,
        authority: "127.0.0.1:50051",
        metadata: vec![("x-api-key".into(), "abc".into())],
        timeout_ms: 2000,
    }
}

fn server_settings() -> Vec<u8> {
    h2::settings(&[(0x3, 100), (0x4, 1 << 20)])
}

fn headers(encoder: &mut loona_hpack::Encoder<'_>, fields: &[(&str, &str)], end: bool) -> Vec<u8> {
    let block = encoder.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    h2::headers(STREAM, &block, end)
}

/// A whole response as tonic sends it: headers, one message, trailers.
fn response(status: i32) -> Vec<u8> {
    let mut enc = loona_hpack::Encoder::new();
    let body = health::frame_message(&health::HealthCheckResponse { status }.encode_to_vec());
    [
        server_settings(),
        h2::frame(h2::SETTINGS, h2::ACK, 0, &[]),
        h2::frame(h2::WINDOW_UPDATE, 0, 0, &[0, 0, 0x10, 0]),
        headers(
            &mut enc,
            &[(":status", "200"), ("content-type", "application/grpc")],
            false,
        ),
        h2::frame(h2::DATA, 0, STREAM, &body),
        headers(&mut enc, &[("grpc-status", "0")], true),
    ]
    .concat()
}

fn verdict(replies: &[Vec<u8>], service: &str) -> CheckResult {
    let mut conn = connection(replies);
    let target = if service.is_empty() {
        "ADDR (whole server)".to_string()
    } else {
        format!("service '{service}' at ADDR")
    };
    match call(&mut conn, &request(service)) {
        Ok(reply) => reply.into_result(&target, 3),
        Err(f) => f.into_result("ADDR"),
    }
}

#[test]
fn request_bytes() {
    let bytes = request("app").encode();
    assert!(bytes.starts_with(h2::PREFACE));
    let rest = &bytes[h2::PREFACE.len()..];
    let settings = h2::FrameHeader::parse(rest[..9].try_into().unwrap());
    assert_eq!((settings.kind, settings.len), (h2::SETTINGS, 6));
    let rest = &rest[15..];
    let hdr = h2::FrameHeader::parse(rest[..9].try_into().unwrap());
    assert_eq!(
        (hdr.kind, hdr.flags, hdr.stream),
        (h2::HEADERS, h2::END_HEADERS, 1)
    );
    let fields = loona_hpack::Decoder::new()
        .decode(&rest[9..9 + hdr.len])
        .unwrap();
    let get = |name: &str| find(&fields, name).map(|v| String::from_utf8_lossy(v).into_owned());
    assert_eq!(get(":method").as_deref(), Some("POST"));
    assert_eq!(get(":scheme").as_deref(), Some("http"));
    assert_eq!(
        get(":path").as_deref(),
        Some("/grpc.health.v1.Health/Check")
    );
    assert_eq!(get(":authority").as_deref(), Some("127.0.0.1:50051"));
    assert_eq!(get("content-type").as_deref(), Some("application/grpc"));
    assert_eq!(get("te").as_deref(), Some("trailers"));
    assert_eq!(get("grpc-timeout").as_deref(), Some("2000m"));
    assert_eq!(get("x-api-key").as_deref(), Some("abc"));
    let rest = &rest[9 + hdr.len..];
    let data = h2::FrameHeader::parse(rest[..9].try_into().unwrap());
    assert_eq!((data.kind, data.flags), (h2::DATA, h2::END_STREAM));
    assert_eq!(&rest[9..], b"\x00\x00\x00\x00\x05\x0a\x03app");
}

#[test]
fn serving() {
    let mut conn = connection(&[response(1)]);
    let reply = call(&mut conn, &request("")).unwrap();
    let result = reply.into_result("ADDR (whole server)", 3);
    assert_eq!(result.status, Status::Healthy);
    assert_eq!(result.message, "ADDR (whole server) is SERVING (3 ms)");
    // The server's SETTINGS were acknowledged.
    let ack = h2::frame(h2::SETTINGS, h2::ACK, 0, &[]);
    assert!(conn.link.link().written()[1..].contains(&ack));
}

#[test]
fn not_serving_and_unknown() {
    let result = verdict(&[response(2)], "app");
    assert_eq!(result.status, Status::Unhealthy);
    assert_eq!(result.message, "service 'app' at ADDR is NOT_SERVING");
    assert_eq!(result.get_detail("status"), Some("NOT_SERVING"));
    assert_eq!(
        verdict(&[response(0)], "").message,
        "ADDR (whole server) is UNKNOWN"
    );
}

#[test]
fn trailers_only_errors() {
    let mut enc = loona_hpack::Encoder::new();
    let unknown = [
        server_settings(),
        headers(
            &mut enc,
            &[
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", "5"),
                ("grpc-message", "unknown%20service"),
            ],
            true,
        ),
    ]
    .concat();
    let result = verdict(&[unknown], "nope");
    assert_eq!(
        result.message,
        "service 'nope' at ADDR answered grpc-status 5 NOT_FOUND: unknown service (the server \
         has no health status for this service)"
    );
    assert_eq!(result.detail_value("grpc-status"), Some(&Value::Integer(5)));

    let mut enc = loona_hpack::Encoder::new();
    let unimplemented = [
        server_settings(),
        headers(
            &mut enc,
            &[
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", "12"),
            ],
            true,
        ),
    ]
    .concat();
    assert!(verdict(&[unimplemented], "").message.ends_with(
        "grpc-status 12 UNIMPLEMENTED (the server does not implement grpc.health.v1.Health)"
    ));
}

#[test]
fn continuation_ping_and_padding() {
    let mut enc = loona_hpack::Encoder::new();
    let block = enc.encode([
        (&b":status"[..], &b"200"[..]),
        (b"content-type", b"application/grpc+proto"),
    ]);
    let (a, b) = block.split_at(3);
    let body = health::frame_message(b"\x08\x01");
    let padded = [&[2u8][..], &body, &[0, 0]].concat();
    let trailers = enc.encode([(&b"grpc-status"[..], &b"0"[..])]);
    let script = [
        server_settings(),
        h2::frame(h2::PING, 0, 0, b"12345678"),
        h2::frame(h2::HEADERS, 0, STREAM, a),
        h2::frame(h2::CONTINUATION, h2::END_HEADERS, STREAM, b),
        h2::frame(h2::DATA, h2::PADDED, STREAM, &padded),
        h2::frame(
            h2::HEADERS,
            h2::END_HEADERS | h2::END_STREAM,
            STREAM,
            &trailers,
        ),
    ]
    .concat();
    let mut conn = connection(&[script]);
    let reply = call(&mut conn, &request("")).unwrap();
    assert_eq!(reply.into_result("A", 1).status, Status::Healthy);
    let pong = h2::frame(h2::PING, h2::ACK, 0, b"12345678");
    assert!(conn.link.link().written().contains(&pong));
}

#[test]
fn interrupted_header_block_is_an_error() {
    let script = [
        server_settings(),
        h2::frame(h2::HEADERS, 0, STREAM, b"\x88"),
        h2::frame(h2::PING, 0, 0, b"12345678"),
    ]
    .concat();
    assert!(verdict(&[script], "").message.contains("interrupted"));
}

#[test]
fn resets_and_goaway() {
    let reset = [
        server_settings(),
        h2::frame(h2::RST_STREAM, 0, STREAM, &[0, 0, 0, 7]),
    ]
    .concat();
    assert_eq!(
        verdict(&[reset], "").message,
        "ADDR reset the health check stream (REFUSED_STREAM)"
    );
    let goaway = [
        server_settings(),
        h2::frame(
            h2::GOAWAY,
            0,
            0,
            b"\x00\x00\x00\x00\x00\x00\x00\x0bcalm down",
        ),
    ]
    .concat();
    assert_eq!(
        verdict(&[goaway], "").message,
        "ADDR closed the HTTP/2 connection (GOAWAY ENHANCE_YOUR_CALM): calm down"
    );
    // A graceful GOAWAY that covers stream 1 lets the response finish.
    let graceful = [
        h2::settings(&[]),
        h2::frame(h2::GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0]),
        response(1)[server_settings().len()..].to_vec(),
    ]
    .concat();
    assert_eq!(verdict(&[graceful], "").status, Status::Healthy);
}

#[test]
fn not_http2() {
    let http1 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec();
    let result = verdict(&[http1], "");
    assert!(
        result
            .message
            .starts_with("ADDR is not an HTTP/2 server: it answered \"HTTP/1.1 400 Bad Request\""),
        "{}",
        result.message
    );
    assert_eq!(result.get_detail("error"), Some("not-http2"));

    let tls = b"\x15\x03\x01\x00\x02\x02\x46".to_vec();
    assert_eq!(verdict(&[tls], "").get_detail("error"), Some("tls"));

    assert_eq!(
        verdict(&[], "").message,
        "ADDR closed the connection without answering the HTTP/2 preface"
    );
    // A server that takes the preface for a bad HTTP/0.9 request answers with a page.
    let page = b"<!DOCTYPE HTML>\n<html lang=\"en\">".to_vec();
    assert!(
        verdict(&[page], "")
            .message
            .starts_with("ADDR is not an HTTP/2 server: it answered \"<!DOCTYPE HTML>\"")
    );
    // A MySQL handshake: binary, but no SETTINGS frame.
    let mysql = b"\x4a\x00\x00\x00\x0a5.5.5-10.11.19-MariaDB\x00".to_vec();
    assert!(
        verdict(&[mysql], "")
            .message
            .contains("first frame should be SETTINGS")
    );
}

#[test]
fn http_errors_and_wrong_content_type() {
    let mut enc = loona_hpack::Encoder::new();
    let e404 = [
        server_settings(),
        headers(
            &mut enc,
            &[(":status", "404"), ("content-type", "text/plain")],
            true,
        ),
    ]
    .concat();
    assert_eq!(
        verdict(&[e404], "").message,
        "ADDR (whole server) answered HTTP 404 instead of 200"
    );
    let mut enc = loona_hpack::Encoder::new();
    let html = [
        server_settings(),
        headers(
            &mut enc,
            &[(":status", "200"), ("content-type", "text/html")],
            true,
        ),
    ]
    .concat();
    assert!(
        verdict(&[html], "")
            .message
            .contains("not application/grpc")
    );
}

#[test]
fn decoder_handles_huffman_and_the_dynamic_table() {
    // RFC 7541 C.6.1 and C.6.2: responses with Huffman coding; the second one refers to
    // entries the first added to the dynamic table.
    let hex = |s: &str| -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let first = hex(
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 \
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
    );
    let second = hex("4883 640e ffc1 c0bf");
    let mut decoder = loona_hpack::Decoder::new();
    let a = decoder.decode(&first).unwrap();
    assert_eq!(find(&a, ":status"), Some(&b"302"[..]));
    assert_eq!(find(&a, "location"), Some(&b"https://www.example.com"[..]));
    let b = decoder.decode(&second).unwrap();
    assert_eq!(find(&b, ":status"), Some(&b"307"[..]));
    assert_eq!(find(&b, "cache-control"), Some(&b"private"[..]));
    assert_eq!(
        find(&b, "date"),
        Some(&b"Mon, 21 Oct 2013 20:13:21 GMT"[..])
    );
}

fn check(pairs: &[(&str, &str)]) -> Result<CheckResult, CheckError> {
    GrpcProbe::check(
        &Params::from_pairs(pairs.iter().copied()).with_defaults(&GrpcProbe::describe().params),
        Budget::new(2_000),
    )
}

#[test]
fn bad_parameters() {
    for (pairs, name) in [
        (vec![("address", "localhost")], "address"),
        (
            vec![("address", "127.0.0.1:1"), ("metadata", "novalue")],
            "metadata",
        ),
        (
            vec![("address", "127.0.0.1:1"), ("metadata", "grpc-x:1")],
            "metadata",
        ),
        (
            vec![("address", "127.0.0.1:1"), ("authority", "a b")],
            "authority",
        ),
    ] {
        match check(&pairs) {
            Err(CheckError::InvalidParam(p)) => assert_eq!(p.name, name),
            other => panic!("{pairs:?}: {other:?}"),
        }
    }
}

#[test]
fn describe_documents_every_parameter() {
    let info = GrpcProbe::describe();
    healthprobe_sdk::testing::assert_documented(
        &info,
        &[
            "address",
            "service",
            "authority",
            "metadata",
            "tls",
            "server-name",
        ],
    );
    assert!(info.params[3].repeatable);
}
