//! The network policy: denied connections name the address and the flag, and reach nothing.

use crate::support::{HttpServer, SilentServer, healthprobe};

/// Runs a bundled probe at a listener on 127.0.0.1 while granting only 127.0.0.2, so even
/// a policy bug keeps the traffic on loopback; the denial must name the address and the
/// flag, and the listener must see nothing.
fn assert_denied_and_unreached(probe: &str, param: &str) {
    let server = SilentServer::start();
    let target = if param == "url" {
        format!("http://{}/", server.addr)
    } else {
        server.addr.to_string()
    };
    healthprobe([
        "run",
        probe,
        &format!("{param}={target}"),
        "--allow-net",
        "127.0.0.2",
    ])
    .expect(
        1,
        &format!("unhealthy: {probe}: "),
        &["denied", &server.addr.to_string(), "--allow-net"],
    );
    assert_eq!(server.accepted(), 0, "the denied listener saw a connection");
}

#[test]
fn http_connect_denied_by_policy_names_the_address_and_reaches_nothing() {
    assert_denied_and_unreached("http", "url");
}

#[test]
fn tcp_connect_denied_by_policy_names_the_address_and_reaches_nothing() {
    assert_denied_and_unreached("tcp", "address");
}

#[test]
fn redirect_to_a_port_not_granted_is_denied() {
    let target = SilentServer::start();
    let location = format!("http://{}/", target.addr);
    let redirector = HttpServer::start(move |_| {
        (
            302,
            vec![("Location".into(), location.clone())],
            String::new(),
        )
    });
    let out = healthprobe([
        "run",
        "http",
        &format!("url={}", redirector.url("/")),
        "--allow-net",
        &redirector.addr.to_string(),
    ]);
    out.expect(
        1,
        "unhealthy: http: ",
        &["denied", &target.addr.to_string()],
    );
    assert_eq!(target.accepted(), 0);
}

#[test]
fn bad_allow_net_pattern_is_exit_3() {
    healthprobe([
        "run",
        "tcp",
        "address=127.0.0.1:1",
        "--allow-net",
        "10.0.0.0/99",
    ])
    .expect(3, "error: ", &["--allow-net"]);
}
