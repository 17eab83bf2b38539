//! The probe against scripted fake servers over native TCP, byte for byte. The
//! real PostgreSQL is exercised by tests/cli/postgres.rs.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use healthprobe_sdk::{Status, testing};

use super::*;

fn backend(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&i32::try_from(body.len() + 4).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn auth(code: i32, data: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(data);
    backend(b'R', &body)
}

fn error(severity: &str, code: &str, message: &str) -> Vec<u8> {
    let body = format!("S{severity}\0V{severity}\0C{code}\0M{message}\0\0");
    backend(b'E', body.as_bytes())
}

fn ready() -> Vec<u8> {
    backend(b'Z', b"I")
}

fn after_login() -> Vec<u8> {
    [
        auth(0, b""),
        backend(b'S', b"server_version\x0015.8\0"),
        backend(b'K', &[0, 0, 0, 1, 0, 0, 0, 2]),
        ready(),
    ]
    .concat()
}

fn one_row(value: &[u8]) -> Vec<u8> {
    let mut row = 1i16.to_be_bytes().to_vec();
    row.extend_from_slice(&i32::try_from(value.len()).unwrap().to_be_bytes());
    row.extend_from_slice(value);
    [
        backend(
            b'T',
            b"\0\x01?column?\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0",
        ),
        backend(b'D', &row),
        backend(b'C', b"SELECT 1\0"),
        ready(),
    ]
    .concat()
}

/// Reads one frontend message: the untagged startup message first, tagged ones after.
fn read_message(s: &mut TcpStream, first: bool) -> Option<Vec<u8>> {
    let mut head = vec![0; if first { 4 } else { 5 }];
    s.read_exact(&mut head).ok()?;
    let at = head.len() - 4;
    let len = i32::from_be_bytes(head[at..].try_into().unwrap());
    let mut body = vec![0; usize::try_from(len).unwrap() - 4];
    s.read_exact(&mut body).ok()?;
    head.extend(body);
    Some(head)
}

/// Runs the probe against a fake that answers the startup message and each
/// following frontend message with the next of `replies`, then reads until the
/// probe hangs up. Returns the result and every frontend message received.
fn against(params: &[(&str, &str)], replies: Vec<Vec<u8>>) -> (CheckResult, Vec<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut received = Vec::new();
        for (i, reply) in replies.into_iter().enumerate() {
            received.push(read_message(&mut s, i == 0).unwrap());
            s.write_all(&reply).unwrap();
        }
        while let Some(m) = read_message(&mut s, received.is_empty()) {
            received.push(m);
        }
        received
    });
    let mut pairs = vec![("address", address.as_str())];
    pairs.extend_from_slice(params);
    let result = PostgresProbe::check(&probe_params(pairs), Budget::new(5_000)).unwrap();
    (result, server.join().unwrap())
}

/// The parameters as the SDK hands them to `check`, defaults filled in.
fn probe_params<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Params {
    testing::params(pairs, &PostgresProbe::describe())
}

#[test]
fn describe_documents_every_parameter() {
    let info = PostgresProbe::describe();
    testing::assert_documented(
        &info,
        &[
            "address",
            "username",
            "database",
            "password",
            "query",
            "tls",
            "server-name",
        ],
    );
    assert!(info.description.contains("sslmode"));
}

#[test]
fn parameters_are_checked() {
    let c = Config::from_params(&probe_params([("address", "h:5432")])).unwrap();
    assert_eq!(
        (c.user.as_str(), c.database.as_str()),
        ("postgres", "postgres")
    );
    assert_eq!(c.query, None);
    let c = Config::from_params(&probe_params([
        ("address", "h:5432"),
        ("username", "app"),
        ("password", " pw "),
    ]))
    .unwrap();
    assert_eq!(c.database, "app");
    assert_eq!(c.password.as_deref(), Some(" pw "));
    assert_eq!(c.query.as_deref(), Some("SELECT 1"));
    for (pairs, name) in [
        (vec![("address", "h")], "address"),
        (vec![("address", "h:1"), ("username", "")], "username"),
        (vec![("address", "h:1"), ("password", "")], "password"),
        (vec![("address", "h:1"), ("query", "  ")], "query"),
        (vec![("address", "h:1"), ("database", "a\0b")], "database"),
    ] {
        let (param, _) = testing::invalid_param(Config::from_params(&probe_params(pairs.clone())));
        assert_eq!(param, name, "{pairs:?}");
    }
}

#[test]
fn asking_for_a_password_means_accepting() {
    let (r, sent) = against(&[], vec![auth(10, b"SCRAM-SHA-256\0\0")]);
    assert_eq!(r.status, Status::Healthy, "{}", r.message);
    assert!(
        r.message
            .contains("is accepting connections (asked for SASL SCRAM-SHA-256 authentication) in "),
        "{}",
        r.message
    );
    assert_eq!(r.get_detail("auth"), Some("SASL SCRAM-SHA-256"));
    // Only the startup message: no password, no Terminate in the middle of a login.
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].ends_with(b"user\0postgres\0database\0postgres\0application_name\0healthprobe\0\0")
    );
}

#[test]
fn a_refused_login_still_means_accepting() {
    let (r, _) = against(
        &[("username", "nobody")],
        vec![error("FATAL", "28000", "role \"nobody\" does not exist")],
    );
    assert_eq!(r.status, Status::Healthy, "{}", r.message);
    assert!(
        r.message.contains("role \"nobody\" does not exist"),
        "{}",
        r.message
    );
    assert_eq!(r.get_detail("sqlstate"), Some("28000"));
}

#[test]
fn starting_up_and_full_are_unhealthy() {
    for (code, text) in [
        ("57P03", "the database system is starting up"),
        ("53300", "sorry, too many clients already"),
    ] {
        let (r, _) = against(&[], vec![error("FATAL", code, text)]);
        assert_eq!(r.status, Status::Unhealthy);
        assert!(
            r.message.ends_with(&format!(
                "is not accepting connections: FATAL {code} {text}"
            )),
            "{}",
            r.message
        );
    }
}

#[test]
fn trust_login_is_accepting_and_says_goodbye() {
    let (r, sent) = against(&[], vec![after_login()]);
    assert_eq!(r.status, Status::Healthy, "{}", r.message);
    assert_eq!(r.get_detail("auth"), Some("trust"));
    assert!(
        r.message.contains("(logged in without a password)"),
        "{}",
        r.message
    );
    assert_eq!(r.get_detail("server-version"), Some("15.8"));
    assert_eq!(sent.last().unwrap(), &b"X\0\0\0\x04".to_vec());
}

#[test]
fn cleartext_login_and_query() {
    let (r, sent) = against(
        &[("username", "app"), ("password", "pw")],
        vec![auth(3, b""), after_login(), one_row(b"1")],
    );
    assert_eq!(r.status, Status::Healthy, "{}", r.message);
    assert!(
        r.message.starts_with("SELECT 1 returned 1 row in "),
        "{}",
        r.message
    );
    assert!(r.message.ends_with(", first value: 1"), "{}", r.message);
    assert_eq!(sent[1], b"p\0\0\0\x07pw\0");
    assert_eq!(sent[2], b"Q\0\0\0\x0dSELECT 1\0");
    assert_eq!(sent[3], b"X\0\0\0\x04");
    assert_eq!(r.get_detail("auth"), Some("cleartext password"));
}

#[test]
fn md5_login() {
    let (r, sent) = against(
        &[("username", "user"), ("password", "pencil")],
        vec![auth(5, &[1, 2, 3, 4]), after_login(), one_row(b"1")],
    );
    assert_eq!(r.status, Status::Healthy, "{}", r.message);
    assert_eq!(
        sent[1],
        wire::password("md54376eb6913b38f9aaff38dc7cf19ca76")
    );
}

#[test]
fn wrong_password_and_bad_query_quote_the_server() {
    let (r, _) = against(
        &[("username", "probe"), ("password", "nope")],
        vec![
            auth(3, b""),
            error(
                "FATAL",
                "28P01",
                "password authentication failed for user \"probe\"",
            ),
        ],
    );
    assert_eq!(r.status, Status::Unhealthy);
    assert!(
        r.message
            .ends_with("failed: FATAL 28P01 password authentication failed for user \"probe\""),
        "{}",
        r.message
    );
    let (r, sent) = against(
        &[("password", "pw"), ("query", "SELEC 1")],
        vec![
            auth(3, b""),
            after_login(),
            [
                error("ERROR", "42601", "syntax error at or near \"SELEC\""),
                ready(),
            ]
            .concat(),
        ],
    );
    assert_eq!(r.status, Status::Unhealthy);
    assert_eq!(
        r.message,
        "query failed: ERROR 42601 syntax error at or near \"SELEC\""
    );
    assert_eq!(sent.last().unwrap(), &b"X\0\0\0\x04".to_vec());
}

#[test]
fn unsupported_and_missing_credentials() {
    let (r, _) = against(&[("password", "pw")], vec![auth(7, b"")]);
    assert_eq!(r.status, Status::Unhealthy);
    assert!(
        r.message
            .contains("asks for GSSAPI authentication, which the postgres probe does not support"),
        "{}",
        r.message
    );
    let (r, _) = against(
        &[("password", "pw")],
        vec![auth(10, b"SCRAM-SHA-256-PLUS\0\0")],
    );
    assert!(
        r.message.contains("SASL SCRAM-SHA-256-PLUS authentication"),
        "{}",
        r.message
    );
    let (r, _) = against(&[("query", "SELECT 1")], vec![auth(5, b"abcd")]);
    assert_eq!(r.status, Status::Unhealthy);
    assert!(
        r.message
            .contains("asks for a password (MD5 password) but no password= was given"),
        "{}",
        r.message
    );
}

#[test]
fn unknown_methods_are_named_by_code() {
    let (r, _) = against(&[("password", "pw")], vec![auth(42, b"")]);
    assert_eq!(r.status, Status::Unhealthy);
    assert!(
        r.message
            .contains("asks for an unknown method (code 42) authentication, which the postgres"),
        "{}",
        r.message
    );
    assert_eq!(r.get_detail("auth"), Some("an unknown method (code 42)"));
    let (r, _) = against(&[], vec![auth(42, b"")]);
    assert!(
        r.message.contains(
            "is accepting connections (asked for an unknown method (code 42) authentication)"
        ),
        "{}",
        r.message
    );
}

#[test]
fn scram_server_that_skips_its_proof_is_refused() {
    // The client-final message goes out, then the server claims success with no signature.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        read_message(&mut s, true).unwrap();
        s.write_all(&auth(10, b"SCRAM-SHA-256\0\0")).unwrap();
        let initial = read_message(&mut s, false).unwrap();
        // The client nonce follows "r=" in the client-first message.
        let text = String::from_utf8_lossy(&initial).into_owned();
        let nonce = text.rsplit("r=").next().unwrap().to_string();
        let first = format!("r={nonce}server,s=QUJDRA==,i=4096");
        s.write_all(&auth(11, first.as_bytes())).unwrap();
        read_message(&mut s, false).unwrap();
        s.write_all(&after_login()).unwrap();
        let _ = read_message(&mut s, false);
    });
    let r = PostgresProbe::check(
        &probe_params([("address", address.as_str()), ("password", "pw")]),
        Budget::new(5_000),
    )
    .unwrap();
    server.join().unwrap();
    assert_eq!(r.status, Status::Unhealthy);
    assert!(
        r.message.contains("without proving it knows the password"),
        "{}",
        r.message
    );
}

#[test]
fn foreign_peer_and_silence() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
    });
    let params = probe_params([("address", address.as_str())]);
    let r = PostgresProbe::check(&params, Budget::new(5_000)).unwrap();
    server.join().unwrap();
    assert_eq!(r.status, Status::Unhealthy);
    assert!(
        r.message.contains("(not a PostgreSQL reply)"),
        "{}",
        r.message
    );

    let _silent = TcpListener::bind(&address).unwrap();
    let r = PostgresProbe::check(&params, Budget::new(300)).unwrap();
    assert!(
        r.message.starts_with("timeout after ")
            && r.message.ends_with(&format!(
                " reading {address} (no reply to the startup message)"
            )),
        "{}",
        r.message
    );
    assert_eq!(r.get_detail("error"), Some("timeout"));
}
