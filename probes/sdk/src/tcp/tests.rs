//! The TCP helpers, natively (on `std::net`) against loopback peers.

use core::net::IpAddr;
use std::io::ErrorKind;

use super::*;
use crate::CheckError;

#[test]
fn tls_parameters() {
    let parse = |pairs: &[(&str, &str)], negotiated| {
        Tls::from_params(
            &crate::Params::from_pairs(pairs.iter().copied()),
            "127.0.0.1:6380",
            negotiated,
        )
    };
    assert_eq!(parse(&[], false).unwrap(), Tls::Off);
    assert_eq!(parse(&[("tls", "false")], true).unwrap(), Tls::Off);
    assert_eq!(
        parse(&[("tls", "true")], false).unwrap(),
        Tls::Require("127.0.0.1".into())
    );
    assert_eq!(
        parse(&[("tls", "require"), ("server-name", "db.internal")], true).unwrap(),
        Tls::Require("db.internal".into())
    );
    assert_eq!(
        parse(&[("tls", "prefer")], true).unwrap(),
        Tls::Prefer("127.0.0.1".into())
    );
    // prefer only where the protocol negotiates TLS; server-name only with TLS.
    for (pairs, negotiated, name) in [
        (&[("tls", "prefer")][..], false, "tls"),
        (&[("tls", "yes please")][..], true, "tls"),
        (&[("server-name", "db.internal")][..], false, "server-name"),
    ] {
        match parse(pairs, negotiated) {
            Err(CheckError::InvalidParam(p)) => assert_eq!(p.name, name, "{pairs:?}"),
            other => panic!("{pairs:?}: {other:?}"),
        }
    }
}

#[test]
fn addresses() {
    assert_eq!(parse_address("127.0.0.1:6379"), Ok(("127.0.0.1", 6379)));
    assert_eq!(parse_address("db.internal:5432"), Ok(("db.internal", 5432)));
    assert_eq!(parse_address("[::1]:80"), Ok(("::1", 80)));
    for bad in [
        "localhost",
        ":80",
        "host:",
        "host:0",
        "host:70000",
        "host:+80",
        "::1:80",
        "[::1]",
        "[::1]80",
        "a b:1",
    ] {
        assert!(parse_address(bad).is_err(), "{bad}");
    }
    assert!(parse_address("::1:80").unwrap_err().contains("brackets"));
}

#[test]
fn ip_addresses_need_no_lookup() {
    assert_eq!(
        resolve("127.0.0.1:6379").unwrap(),
        vec![SocketAddr::from(([127, 0, 0, 1], 6379))]
    );
    assert_eq!(
        resolve("[::1]:80").unwrap(),
        vec![SocketAddr::from((core::net::Ipv6Addr::LOCALHOST, 80))]
    );
}

#[test]
fn resolve_host_literals_and_bad_names() {
    let budget = Budget::new(5_000);
    assert_eq!(
        resolve_host("127.0.0.1", &budget).unwrap(),
        vec![IpAddr::from([127, 0, 0, 1])]
    );
    assert_eq!(
        resolve_host("[::1]", &budget).unwrap(),
        vec![IpAddr::from(core::net::Ipv6Addr::LOCALHOST)]
    );
    for bad in ["", "  ", "a b"] {
        assert!(
            matches!(
                resolve_host(bad, &budget),
                Err(TcpError::InvalidAddress { .. })
            ),
            "{bad:?}"
        );
    }
    let err = resolve_host("localhost", &Budget::new(0)).unwrap_err();
    assert_eq!(err.to_string(), "timeout resolving localhost");
}

#[cfg(not(target_os = "wasi"))]
#[test]
fn resolve_host_localhost_native() {
    let ips = resolve_host("localhost", &Budget::new(5_000)).unwrap();
    assert!(ips.iter().all(IpAddr::is_loopback), "{ips:?}");
    assert!(!ips.is_empty());
}

#[test]
fn messages() {
    let refused = TcpError::from_io(
        "127.0.0.1:6379",
        "connecting",
        ErrorKind::ConnectionRefused.into(),
        None,
    );
    assert_eq!(refused.to_string(), "connection to 127.0.0.1:6379 refused");
    let timeout = TcpError::from_io("h:1", "reading", ErrorKind::TimedOut.into(), None);
    assert_eq!(timeout.to_string(), "timeout reading h:1");
    let timeout = TcpError::from_sys("h:1", "resolving", sys::Fail::Timeout, None);
    assert_eq!(timeout.to_string(), "timeout resolving h:1");
    let denied = TcpError::from_io(
        "h:1",
        "connecting",
        io::Error::new(ErrorKind::PermissionDenied, "access-denied"),
        None,
    );
    assert_eq!(denied.to_string(), "connecting h:1 denied by the host");
    assert!(matches!(
        resolve("nope"),
        Err(TcpError::InvalidAddress { .. })
    ));
}

#[cfg(not(target_os = "wasi"))]
#[test]
fn loopback_native() {
    use std::net::TcpListener;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0; 6];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"+PONG\r\nextra").unwrap();
    });
    let budget = Budget::new(5_000);
    let mut conn = connect(&addr, &budget).unwrap();
    conn.write_all(b"PING\r\n").unwrap();
    let reply = conn.read_until(b"\r\n", 512).unwrap();
    assert!(reply.starts_with(b"+PONG\r\n"));
    server.join().unwrap();

    // The listener is gone: the port now refuses.
    let err = connect(&addr, &budget).unwrap_err();
    assert!(matches!(err, TcpError::Refused { .. }), "{err}");
}

#[cfg(not(target_os = "wasi"))]
#[test]
fn spent_budget_times_out_native() {
    use std::net::TcpListener;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let err = connect(&addr, &Budget::new(0)).unwrap_err();
    assert_eq!(err.to_string(), format!("timeout connecting {addr}"));

    // A silent peer: the read waits out the budget and says so.
    let mut conn = connect(&addr, &Budget::new(200)).unwrap();
    let err = conn.read_some(16).unwrap_err();
    // How long it had waited: the 200 ms budget, give or take the scheduler.
    let message = err.to_string();
    assert!(
        message.starts_with("timeout after ") && message.ends_with(&format!(" reading {addr}")),
        "{message}"
    );
}
