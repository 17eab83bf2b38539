//! The `tcp` probe in its connect-only form (send/expect steps are in `tcp_expect.rs`).

use crate::support::{SilentServer, closed_port, healthprobe};

#[test]
fn tcp_accepting_listener_is_healthy() {
    let server = SilentServer::start();
    healthprobe(["run", "tcp", &format!("address={}", server.addr)]).expect(
        0,
        "healthy: tcp: ",
        &[&server.addr.to_string()],
    );
    assert_eq!(server.accepted(), 1);
}

#[test]
fn tcp_refused_is_unhealthy() {
    let addr = closed_port();
    healthprobe(["run", "tcp", &format!("address={addr}")]).expect(
        1,
        "unhealthy: tcp: ",
        &["refused", &addr.to_string()],
    );
}

#[test]
fn tcp_address_without_port_is_exit_3() {
    healthprobe(["run", "tcp", "address=127.0.0.1"]).expect(3, "error: tcp: ", &["address"]);
}

#[test]
fn tcp_probe_is_healthy_on_a_silent_server_it_only_connects() {
    // The tcp probe checks that the port accepts; a server that then says nothing is still
    // accepting. (Probes that expect a reply bound their reads by the deadline.)
    let server = SilentServer::start();
    healthprobe([
        "run",
        "tcp",
        &format!("address={}", server.addr),
        "--timeout",
        "2s",
    ])
    .expect(0, "healthy: tcp: ", &[]);
}
