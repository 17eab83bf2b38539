//! The probe against scripted servers (a [`Link`] that replays packets), byte for byte.
//! The real MariaDB is exercised by tests/cli/mysql.rs.

use super::*;

use healthprobe_sdk::testing::Script;
use healthprobe_sdk::{Status, Value};

fn pkt(seq: u8, payload: &[u8]) -> Vec<u8> {
    protocol::frame(seq, payload)
}

const OK: &[u8] = b"\x00\x00\x00\x02\x00\x00\x00";

fn mysql8_handshake() -> Vec<u8> {
    let mut p =
        b"\x0a8.0.36\x00\x0b\x00\x00\x00abcdefgh\x00\xff\xff\xff\x02\x00\xff\xdf\x15".to_vec();
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(b"ijklmnopqrst\x00caching_sha2_password\x00");
    p
}

fn creds<'a>(password: &'a str) -> Credentials<'a> {
    Credentials {
        username: "probe",
        password: password.as_bytes(),
        database: None,
    }
}

fn session(replies: &[Vec<u8>]) -> Session<Script> {
    Session::new(Script::new(replies.iter().cloned()))
}

#[test]
fn handshake_only() {
    let mut s = session(&[pkt(0, protocol::tests_support::MARIADB_HANDSHAKE)]);
    let report = run(&mut s, None).unwrap();
    let result = report.into_result("db:3306", 3);
    assert_eq!(result.status, Status::Healthy);
    assert_eq!(
        result.message,
        "MariaDB 10.11.19 at db:3306 accepting connections (handshake in 3 ms)"
    );
    assert!(s.link.link().written().is_empty());
}

#[test]
fn native_login_and_ping() {
    let mut s = session(&[
        pkt(0, protocol::tests_support::MARIADB_HANDSHAKE),
        pkt(2, OK),
        pkt(1, OK),
    ]);
    let report = run(&mut s, Some(&creds("secret"))).unwrap();
    assert_eq!(
        report.login,
        Some(("probe".to_string(), auth::NATIVE.to_string()))
    );
    let w = &s.link.link().written();
    assert_eq!(w.len(), 3, "response, COM_PING, COM_QUIT");
    assert_eq!(w[0][3], 1, "the response is packet 1");
    let nonce = b"s,}UpS.)%z\\;Sq\\[2&fR";
    let scramble = auth::scramble_native(b"secret", nonce);
    assert!(
        w[0].windows(21)
            .any(|x| x[0] == 20 && x[1..] == scramble[..])
    );
    assert_eq!(w[1], vec![1, 0, 0, 0, protocol::COM_PING]);
    assert_eq!(w[2], vec![1, 0, 0, 0, protocol::COM_QUIT]);
}

#[test]
fn wrong_password() {
    let err = b"\xff\x15\x04#28000Access denied for user 'probe'@'localhost' (using password: YES)";
    let mut s = session(&[
        pkt(0, protocol::tests_support::MARIADB_HANDSHAKE),
        pkt(2, err),
    ]);
    let failure = run(&mut s, Some(&creds("nope"))).unwrap_err();
    let result = failure.into_result("db:3306", Some(&creds("nope")));
    assert_eq!(result.status, Status::Unhealthy);
    assert_eq!(
        result.message,
        "login as 'probe' to db:3306 failed: 1045 (28000) Access denied for user \
         'probe'@'localhost' (using password: YES)"
    );
    assert_eq!(
        result.detail_value("error-code"),
        Some(&Value::Integer(1045))
    );
}

#[test]
fn switch_to_an_unsupported_plugin() {
    let switch = b"\xfeclient_ed25519\x00ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut s = session(&[
        pkt(0, protocol::tests_support::MARIADB_HANDSHAKE),
        pkt(2, switch),
    ]);
    let failure = run(&mut s, Some(&creds("x"))).unwrap_err();
    let result = failure.into_result("db:3306", Some(&creds("x")));
    assert!(
        result.message.contains("auth plugin 'client_ed25519'"),
        "{}",
        result.message
    );
    assert_eq!(result.get_detail("auth-plugin"), Some("client_ed25519"));
}

#[test]
fn switch_to_native() {
    let switch = b"\xfemysql_native_password\x00ABCDEFGHIJKLMNOPQRST\x00";
    let mut s = session(&[
        pkt(0, &mysql8_handshake()),
        pkt(2, switch),
        pkt(4, OK),
        pkt(1, OK),
    ]);
    let report = run(&mut s, Some(&creds("secret"))).unwrap();
    assert_eq!(report.login.unwrap().1, auth::NATIVE);
    let w = &s.link.link().written();
    assert_eq!(w[1][3], 3);
    assert_eq!(
        &w[1][4..],
        auth::scramble_native(b"secret", b"ABCDEFGHIJKLMNOPQRST")
    );
}

#[test]
fn caching_sha2_fast_auth() {
    let mut s = session(&[
        pkt(0, &mysql8_handshake()),
        [pkt(2, b"\x01\x03"), pkt(3, OK)].concat(),
        pkt(1, OK),
    ]);
    let report = run(&mut s, Some(&creds("secret"))).unwrap();
    assert_eq!(report.login.unwrap().1, auth::CACHING_SHA2);
    let scramble = auth::scramble_sha2(b"secret", b"abcdefghijklmnopqrst");
    let w = &s.link.link().written();
    assert!(
        w[0].windows(33)
            .any(|x| x[0] == 32 && x[1..] == scramble[..])
    );
    assert!(w[0].ends_with(b"caching_sha2_password\0"));
}

#[test]
fn caching_sha2_full_auth_with_the_servers_public_key() {
    use rsa::pkcs8::DecodePrivateKey;
    let key_packet = [b"\x01".as_slice(), auth::tests::TEST_PUBLIC_KEY.as_bytes()].concat();
    let mut s = session(&[
        pkt(0, &mysql8_handshake()),
        pkt(2, b"\x01\x04"),
        pkt(4, &key_packet),
        pkt(6, OK),
        pkt(1, OK),
    ]);
    run(&mut s, Some(&creds("secret"))).unwrap();
    let w = &s.link.link().written();
    assert_eq!(w[1], vec![1, 0, 0, 3, auth::REQUEST_PUBLIC_KEY_SHA2]);
    assert_eq!(w[2][3], 5);
    let key = rsa::PrivateKey::from_pkcs8_pem(auth::tests::TEST_PRIVATE_KEY).unwrap();
    let plain = key.oaep_decrypt::<sha1::Sha1>(&w[2][4..]).unwrap();
    let nonce = b"abcdefghijklmnopqrst";
    let unmasked: Vec<u8> = plain
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ nonce[i % nonce.len()])
        .collect();
    assert_eq!(unmasked, b"secret\0");
}

#[test]
fn too_many_connections() {
    let mut s = session(&[pkt(0, b"\xff\x10\x04#08004Too many connections")]);
    let result = run(&mut s, None).unwrap_err().into_result("db:3306", None);
    assert_eq!(
        result.message,
        "db:3306 refused the connection: 1040 (08004) Too many connections"
    );
    assert_eq!(result.get_detail("sqlstate"), Some("08004"));
}

#[test]
fn closed_or_foreign_peers() {
    let mut s = session(&[]);
    let result = run(&mut s, None).unwrap_err().into_result("db:3306", None);
    assert_eq!(
        result.message,
        "db:3306 closed the connection before sending its handshake"
    );

    let mut s = session(&[b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_vec()]);
    let result = run(&mut s, None).unwrap_err().into_result("db:22", None);
    assert!(
        result.message.starts_with("db:22 is not a MySQL server: "),
        "{}",
        result.message
    );
}

#[test]
fn ping_error() {
    let err = b"\xff\x1d\x04#08S01Server shutdown in progress";
    let mut s = session(&[
        pkt(0, protocol::tests_support::MARIADB_HANDSHAKE),
        pkt(2, OK),
        pkt(1, err),
    ]);
    let result = run(&mut s, Some(&creds("secret")))
        .unwrap_err()
        .into_result("db:3306", None);
    assert_eq!(
        result.message,
        "COM_PING to db:3306 failed: 1053 (08S01) Server shutdown in progress"
    );
}

fn check(pairs: &[(&str, &str)]) -> Result<CheckResult, CheckError> {
    MysqlProbe::check(
        &Params::from_pairs(pairs.iter().copied()).with_defaults(&MysqlProbe::describe().params),
        Budget::new(2_000),
    )
}

#[test]
fn bad_parameters() {
    match check(&[("address", "localhost")]) {
        Err(CheckError::InvalidParam(p)) => assert_eq!(p.name, "address"),
        other => panic!("{other:?}"),
    }
    match check(&[("address", "127.0.0.1:3306"), ("username", "")]) {
        Err(CheckError::InvalidParam(p)) => assert_eq!(p.name, "username"),
        other => panic!("{other:?}"),
    }
    match check(&[("address", "127.0.0.1:3306"), ("password", "x")]) {
        Err(CheckError::InvalidConfig(m)) => assert!(m.contains("username"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn describe_documents_every_parameter() {
    healthprobe_sdk::testing::assert_documented(
        &MysqlProbe::describe(),
        &[
            "address",
            "username",
            "password",
            "database",
            "tls",
            "server-name",
        ],
    );
}
