//! Integration tests of the `mqtt` probe against the real `mosquitto` broker (Debian's).

use std::process::Command;

use nix::sys::signal::Signal;

use crate::servers::{Server, find_binary, in_path, server_dir};
use crate::support::{closed_port, healthprobe};

const USER: &str = "monitor";
const PASSWORD: &str = "s3cret-mqtt";

/// `mosquitto` on a free port with a password file (user `monitor`, allowed the topics
/// `health/#` only) and no anonymous access; `tls` adds TLS with the test CA's server
/// certificate. `None` (skip) when mosquitto is not installed.
fn mosquitto(tls: Option<&crate::tls::Pem>) -> Option<Server> {
    let bin = find_binary("mosquitto", &in_path("mosquitto"))?;
    let passwd = find_binary("mosquitto_passwd", &in_path("mosquitto_passwd"))?;
    let dir = server_dir();
    let passwords = dir.path().join("passwords");
    let made = Command::new(passwd)
        .args(["-c", "-b"])
        .arg(&passwords)
        .args([USER, PASSWORD])
        .status()
        .unwrap();
    assert!(made.success());
    let acl = dir.path().join("acl");
    std::fs::write(&acl, format!("user {USER}\ntopic readwrite health/#\n")).unwrap();
    let config = dir.path().join("mosquitto.conf");
    let tls_lines = tls.map_or(String::new(), |pem| {
        format!(
            "certfile {}\nkeyfile {}\n",
            pem.cert.display(),
            pem.key.display()
        )
    });
    let config_text = move |port: u16| {
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
             {tls_lines}log_dest stderr\nuser root\npersistence false\n",
            passwords.display(),
            acl.display()
        )
    };
    Some(Server::start(dir, Signal::SIGTERM, |port| {
        std::fs::write(&config, config_text(port)).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("-c").arg(&config);
        cmd
    }))
}

fn login() -> [String; 2] {
    [format!("username={USER}"), format!("password={PASSWORD}")]
}

#[test]
fn mqtt_login_and_round_trip_are_healthy_in_both_versions() {
    let Some(server) = mosquitto(None) else {
        return;
    };
    for version in ["3.1.1", "5"] {
        let version = format!("version={version}");
        healthprobe(
            [
                "run".to_string(),
                "mqtt".into(),
                server.address_param(),
                version.clone(),
            ]
            .into_iter()
            .chain(login()),
        )
        .expect(0, "healthy: mqtt: CONNACK from ", &[&server.address()]);
        healthprobe(
            [
                "run".to_string(),
                "mqtt".into(),
                server.address_param(),
                version,
                "topic=health/probe".into(),
                "--format=json".into(),
            ]
            .into_iter()
            .chain(login()),
        )
        .expect(
            0,
            "{",
            &["round trip on health/probe", "\"round-trip-ms\":"],
        );
    }
}

#[test]
fn mqtt_refusals_are_in_the_brokers_words() {
    let Some(server) = mosquitto(None) else {
        return;
    };
    // No credentials, then wrong ones: MQTT 3.1.1's code 5, MQTT 5's 0x87/0x86.
    healthprobe(["run", "mqtt", &server.address_param()]).expect(
        1,
        "unhealthy: mqtt: ",
        &["refused the connection: not authorized (CONNACK code 5)"],
    );
    healthprobe([
        "run",
        "mqtt",
        &server.address_param(),
        &format!("username={USER}"),
        "password=wrong",
        "version=5",
    ])
    .expect(
        1,
        "unhealthy: mqtt: ",
        &["refused the connection: ", "CONNACK code 13"],
    );
    // A topic the ACL does not grant.
    healthprobe(
        [
            "run".to_string(),
            "mqtt".into(),
            server.address_param(),
            "topic=secret/x".into(),
        ]
        .into_iter()
        .chain(login()),
    )
    .expect(
        1,
        "unhealthy: mqtt: ",
        // mosquitto grants the subscription and drops what the ACL denies.
        &["did not come back; the broker may deny the user publishing or subscribing"],
    );
}

#[test]
fn mqtt_down_hung_and_wrong_service_are_unhealthy() {
    let addr = closed_port();
    healthprobe(["run", "mqtt", &format!("address={addr}")]).expect(
        1,
        "unhealthy: mqtt: ",
        &["refused"],
    );
    if let Some(server) = mosquitto(None) {
        server.pause();
        healthprobe(["run", "mqtt", &server.address_param(), "--timeout", "2s"]).expect(
            1,
            "unhealthy: mqtt: ",
            &["timeout", "waiting for CONNACK", &server.address()],
        );
    }
    // Another service where the broker should be: NATS greets first, and is named.
    if let Some(nats) = crate::nats::nats_server(&[]) {
        healthprobe(["run", "mqtt", &nats.address_param()]).expect(
            1,
            "unhealthy: mqtt: ",
            &[
                "expected CONNACK",
                "the server sent \"INFO {",
                "is this an MQTT broker?",
            ],
        );
    }
    // An HTTP server waits for a request line that never comes: bounded by --timeout.
    let web = crate::support::HttpServer::fixed(200, "ok");
    let addr = web
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    healthprobe(["run", "mqtt", &format!("address={addr}"), "--timeout", "2s"]).expect(
        1,
        "unhealthy: mqtt: ",
        &["timeout", "waiting for CONNACK"],
    );
}

#[test]
fn mqtt_over_tls_with_the_operators_ca() {
    let pki = crate::tls::Pki::new();
    let Some(server) = mosquitto(Some(&pki.server)) else {
        return;
    };
    let run = |trust: &[String]| {
        healthprobe(
            [
                "run".to_string(),
                "mqtt".into(),
                server.address_param(),
                "tls=true".into(),
                "--format=json".into(),
            ]
            .into_iter()
            .chain(login())
            .chain(trust.iter().cloned()),
        )
    };
    let out = run(&pki.trust());
    out.expect(
        0,
        "{",
        &["\"ssl-earliest-cert-expiry\":", "\"tls-version\":"],
    );
    let out = run(&[]);
    out.expect(1, "{", &["unknown issuer", "--tls-ca"]);
}
