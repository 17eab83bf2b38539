//! The network policy: denied connections name the address and the flag, and reach nothing.

use crate::support::{HttpServer, SilentServer, healthprobe, hostile};

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
    let redirector = HttpServer::redirect(format!("http://{}/", target.addr));
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

#[test]
fn destinations_wasi_refuses_are_denials_that_say_what_to_connect_to() {
    let server = SilentServer::start();
    let port = server.addr.port();
    // WASI refuses these before the policy is asked; the verdict still says "denied" and
    // what to do instead, and nothing reaches the listener that `0.0.0.0` or the mapped
    // form of 127.0.0.1 would otherwise reach.
    let cases = [
        (
            format!("0.0.0.0:{port}"),
            "the unspecified address is not a destination; connect to loopback, or to an \
             address granted with --allow-net"
                .to_string(),
        ),
        (
            format!("[::]:{port}"),
            "the unspecified address is not a destination".to_string(),
        ),
        (
            format!("[::ffff:127.0.0.1]:{port}"),
            format!(
                "IPv4-mapped IPv6 addresses are refused; connect to 127.0.0.1:{port} instead, \
                 which --allow-net 127.0.0.1:{port} grants"
            ),
        ),
        (
            "224.0.0.1:80".to_string(),
            "a multicast, broadcast or IPv4-compatible address is not a TCP destination"
                .to_string(),
        ),
    ];
    for (address, why) in cases {
        hostile("connect", &[&format!("address={address}")]).expect(
            1,
            &format!("unhealthy: hostile: connection to {address} denied: {why}"),
            &[],
        );
    }
    assert_eq!(server.accepted(), 0);
    // The same listener, addressed plainly, is reached: the cases above were refused for
    // their form, not because nothing listens.
    hostile("connect", &[&format!("address=127.0.0.1:{port}")]).expect(
        0,
        "healthy: hostile: escaped: connected to",
        &[],
    );
    assert_eq!(server.accepted(), 1);
}
