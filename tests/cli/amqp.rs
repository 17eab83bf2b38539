//! Integration tests of the `amqp` probe against the real RabbitMQ (Debian's
//! `rabbitmq-server` 3.10), a node of its own per test: its own name, ports and data.

use std::path::PathBuf;
use std::process::Command;

use nix::sys::signal::Signal;

use crate::servers::{Server, find_binary, free_port, server_dir};
use crate::support::{closed_port, healthprobe};

/// A RabbitMQ node on a free loopback port with the default `guest` user (allowed from
/// loopback) and vhost `/`; with `tls`, also a TLS listener on the port returned. `None`
/// (skip) when RabbitMQ is not installed.
fn rabbitmq(tls: Option<&crate::tls::Pem>) -> Option<(Server, u16)> {
    let script = find_binary(
        "RabbitMQ",
        &[PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server")],
    )?;
    let dir = server_dir();
    let root = dir.path().to_path_buf();
    std::fs::write(root.join("enabled_plugins"), "[].\n").unwrap();
    let tls_port = free_port();
    let conf = match tls {
        Some(pem) => format!(
            "listeners.ssl.default = 127.0.0.1:{tls_port}\nssl_options.certfile = {}\n\
             ssl_options.keyfile = {}\nssl_options.verify = verify_none\n\
             ssl_options.fail_if_no_peer_cert = false\n",
            pem.cert.display(),
            pem.key.display()
        ),
        None => String::new(),
    };
    std::fs::write(root.join("rabbitmq.conf"), conf).unwrap();
    let server = Server::start(dir, Signal::SIGTERM, move |port| {
        let mut cmd = Command::new(&script);
        let path = |name: &str| root.join(name);
        cmd.env("HOME", &root)
            .env("RABBITMQ_NODENAME", format!("healthprobe-{port}@localhost"))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
            .env("RABBITMQ_LOG_BASE", path("log"))
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_PID_FILE", path("pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", path("rabbitmq"))
            // The VM replaces the script (no signal-forwarding shell in between), so the
            // test's process is the broker: it listens, and it is what is paused.
            .env("RUNNING_UNDER_SYSTEMD", "true");
        cmd
    });
    Some((server, tls_port))
}

#[test]
fn amqp_handshake_is_healthy_and_refusals_are_in_the_brokers_words() {
    let Some((server, _)) = rabbitmq(None) else {
        return;
    };
    healthprobe(["run", "amqp", &server.address_param(), "--format=json"]).expect(
        0,
        "{",
        &[
            "Connection.OpenOk from",
            "(RabbitMQ 3.",
            "for vhost /",
            "\"server-version\":\"3.",
        ],
    );
    crate::support::healthprobe_env(
        [
            "run",
            "amqp",
            &server.address_param(),
            "password@env=RABBIT_PASSWORD",
        ],
        &[("RABBIT_PASSWORD", "guest")],
    )
    .expect(0, "healthy: amqp: ", &[]);
    healthprobe(["run", "amqp", &server.address_param(), "password=wrong"]).expect(
        1,
        "unhealthy: amqp: ",
        &["closed the connection at Connection.Tune: 403 ACCESS_REFUSED"],
    );
    healthprobe(["run", "amqp", &server.address_param(), "vhost=nosuch"]).expect(
        1,
        "unhealthy: amqp: ",
        &["530 NOT_ALLOWED - vhost nosuch not found"],
    );
    // Paused: bounded by --timeout, naming the step that waited.
    server.pause();
    healthprobe(["run", "amqp", &server.address_param(), "--timeout", "2s"]).expect(
        1,
        "unhealthy: amqp: ",
        &["timeout", "Connection.Start"],
    );
    server.resume();
}

#[test]
fn amqp_down_and_wrong_service_are_unhealthy() {
    healthprobe(["run", "amqp", &format!("address={}", closed_port())]).expect(
        1,
        "unhealthy: amqp: ",
        &["refused"],
    );
    if let Some(nats) = crate::nats::nats_server(&[]) {
        healthprobe(["run", "amqp", &nats.address_param()]).expect(
            1,
            "unhealthy: amqp: ",
            &[
                "expected an AMQP frame",
                "\"INFO {",
                "is this an AMQP 0-9-1 broker?",
            ],
        );
    }
}

#[test]
fn amqp_over_tls_with_the_operators_ca() {
    let pki = crate::tls::Pki::new();
    let Some((_server, tls)) = rabbitmq(Some(&pki.server)) else {
        return;
    };
    let address = format!("address=127.0.0.1:{tls}");
    // The TLS listener starts a moment after the plain one the node is waited for by.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(format!("127.0.0.1:{tls}")).is_err() {
        assert!(std::time::Instant::now() < deadline, "no TLS listener");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut args = vec![
        "run".to_string(),
        "amqp".into(),
        address,
        "tls=true".into(),
        "--format=json".into(),
    ];
    args.extend(pki.trust());
    healthprobe(&args).expect(0, "{", &["Connection.OpenOk", "\"tls-version\":"]);
    args.truncate(5);
    healthprobe(&args).expect(1, "{", &["unknown issuer"]);
}
