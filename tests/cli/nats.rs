//! Integration tests of the `nats` probe against the real `nats-server` (Debian's).

use std::process::Command;

use nix::sys::signal::Signal;

use crate::servers::{Server, find_binary, in_path, server_dir};
use crate::support::{closed_port, healthprobe};

const USER: &str = "monitor";
const PASSWORD: &str = "s3cret-nats";
const TOKEN: &str = "t0ken-nats";

/// `nats-server` on a free loopback port with `args` after the usual ones; `None` (skip)
/// when it is not installed.
pub(crate) fn nats_server(args: &[&str]) -> Option<Server> {
    let bin = find_binary("nats-server", &in_path("nats-server"))?;
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    Some(Server::start(server_dir(), Signal::SIGTERM, move |port| {
        let mut cmd = Command::new(&bin);
        cmd.args(["-a", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .args(&args);
        cmd
    }))
}

#[test]
fn nats_with_and_without_credentials_is_healthy() {
    let Some(open) = nats_server(&[]) else { return };
    healthprobe(["run", "nats", &open.address_param()]).expect(
        0,
        "healthy: nats: PONG from ",
        &[&open.address(), "(NATS 2."],
    );
    let Some(users) = nats_server(&["--user", USER, "--pass", PASSWORD]) else {
        return;
    };
    healthprobe([
        "run",
        "nats",
        &users.address_param(),
        &format!("username={USER}"),
        &format!("password={PASSWORD}"),
        "--format=json",
    ])
    .expect(0, "{", &["\"server-version\":\"2."]);
    let Some(token) = nats_server(&["--auth", TOKEN]) else {
        return;
    };
    crate::support::healthprobe_env(
        [
            "run",
            "nats",
            &token.address_param(),
            "token@env=NATS_TOKEN",
        ],
        &[("NATS_TOKEN", TOKEN)],
    )
    .expect(0, "healthy: nats: PONG from ", &[]);
}

#[test]
fn nats_refusals_are_in_the_servers_words() {
    let Some(server) = nats_server(&["--user", USER, "--pass", PASSWORD]) else {
        return;
    };
    healthprobe([
        "run",
        "nats",
        &server.address_param(),
        &format!("username={USER}"),
        "password=wrong",
    ])
    .expect(
        1,
        "unhealthy: nats: ",
        &["refused the connection: Authorization Violation"],
    );
    healthprobe(["run", "nats", &server.address_param()]).expect(
        1,
        "unhealthy: nats: ",
        &["Authorization Violation"],
    );
}

#[test]
fn nats_down_hung_and_wrong_service_are_unhealthy() {
    let addr = closed_port();
    healthprobe(["run", "nats", &format!("address={addr}")]).expect(
        1,
        "unhealthy: nats: ",
        &["refused"],
    );
    if let Some(server) = nats_server(&[]) {
        server.pause();
        healthprobe(["run", "nats", &server.address_param(), "--timeout", "2s"]).expect(
            1,
            "unhealthy: nats: ",
            &["timeout", "waiting for INFO", &server.address()],
        );
    }
    // An HTTP server does not speak first: nothing comes, within --timeout.
    let web = crate::support::HttpServer::fixed(200, "ok");
    let addr = web
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    healthprobe(["run", "nats", &format!("address={addr}"), "--timeout", "2s"]).expect(
        1,
        "unhealthy: nats: ",
        &["timeout", "waiting for INFO"],
    );
}

#[test]
fn nats_over_tls_with_the_operators_ca() {
    let pki = crate::tls::Pki::new();
    let cert = pki.server.cert.display().to_string();
    let key = pki.server.key.display().to_string();
    let Some(server) = nats_server(&["--tls", "--tlscert", &cert, "--tlskey", &key]) else {
        return;
    };
    // The server says it requires TLS; the probe says what to give.
    healthprobe(["run", "nats", &server.address_param()]).expect(
        1,
        "unhealthy: nats: ",
        &["requires TLS; give tls=true"],
    );
    let mut args = vec![
        "run".to_string(),
        "nats".into(),
        server.address_param(),
        "tls=true".into(),
        "--format=json".into(),
    ];
    args.extend(pki.trust());
    healthprobe(&args).expect(
        0,
        "{",
        &["\"tls-version\":", "\"ssl-earliest-cert-expiry\":"],
    );
    args.truncate(5);
    healthprobe(&args).expect(1, "{", &["unknown issuer"]);
}
