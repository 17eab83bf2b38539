//! Integration tests of the `zookeeper` probe against the real ZooKeeper (Debian's
//! `zookeeper` 3.8, standalone).

use std::path::PathBuf;
use std::process::Command;

use nix::sys::signal::Signal;

use crate::servers::{Server, find_binary, server_dir};
use crate::support::{closed_port, healthprobe};

/// A standalone ZooKeeper on a free loopback port allowing the four-letter words
/// `whitelist`; `None` (skip) when ZooKeeper is not installed.
fn zookeeper(whitelist: &str) -> Option<Server> {
    zookeeper_with(whitelist, None).map(|(server, _)| server)
}

/// [`zookeeper`], and with `tls` a TLS client port too (returned), serving that
/// certificate (no client certificate asked for).
fn zookeeper_with(whitelist: &str, tls: Option<&crate::tls::Pem>) -> Option<(Server, u16)> {
    let script = find_binary(
        "ZooKeeper",
        &[PathBuf::from("/usr/share/zookeeper/bin/zkServer.sh")],
    )?;
    let dir = server_dir();
    let data = dir.path().join("data");
    let config = dir.path().join("zoo.cfg");
    let logs = dir.path().to_path_buf();
    let tls_port = crate::servers::free_port();
    let tls_lines = match tls {
        Some(pem) => {
            // ZooKeeper reads the key and its certificate from one PEM file.
            let keystore = dir.path().join("keystore.pem");
            let both = std::fs::read_to_string(&pem.key).unwrap()
                + &std::fs::read_to_string(&pem.cert).unwrap();
            std::fs::write(&keystore, both).unwrap();
            format!(
                "secureClientPort={tls_port}\n\
                 serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
                 ssl.keyStore.location={}\nssl.keyStore.type=PEM\nssl.clientAuth=none\n",
                keystore.display()
            )
        }
        None => String::new(),
    };
    // Debian's zkServer.sh leaves Netty (the TLS server) off its class path; the last
    // -cp wins, so this one, with Netty's jars, is the server's.
    let netty: Vec<String> = std::fs::read_dir("/usr/share/java")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().display().to_string())
        .filter(|p| p.contains("/netty-") && !p.ends_with("Final.jar"))
        .collect();
    let classpath = format!(
        "-cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar:{}",
        netty.join(":")
    );
    let whitelist = whitelist.to_string();
    let server = Server::start(dir, Signal::SIGTERM, move |port| {
        std::fs::write(
            &config,
            format!(
                "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 4lw.commands.whitelist={whitelist}\nadmin.enableServer=false\n{tls_lines}",
                data.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(&script);
        cmd.arg("start-foreground")
            .arg(&config)
            .env("ZOO_LOG_DIR", &logs)
            .env("JVMFLAGS", &classpath);
        cmd
    });
    Some((server, tls_port))
}

/// Runs the probe until its line contains `needle`: a ZooKeeper listens before it serves
/// (the probe then says `not currently serving requests`, or the first words wait).
fn until_ready(server: &Server, needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = healthprobe([
            "run",
            "zookeeper",
            &server.address_param(),
            "--timeout",
            "2s",
        ]);
        if out.stdout.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ZooKeeper never got to {needle:?}: {out:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn zookeeper_standalone_is_healthy_and_its_mode_is_checked() {
    let Some(server) = zookeeper("ruok,srvr") else {
        return;
    };
    until_ready(&server, "healthy: zookeeper: imok from ");
    healthprobe(["run", "zookeeper", &server.address_param(), "--format=json"]).expect(
        0,
        "{",
        &["imok from", "\"mode\":\"standalone\"", "\"node-count\":"],
    );
    healthprobe([
        "run",
        "zookeeper",
        &server.address_param(),
        "mode=standalone",
    ])
    .expect(
        0,
        "healthy: zookeeper: imok from ",
        &["standalone, ZooKeeper 3."],
    );
    healthprobe([
        "run",
        "zookeeper",
        &server.address_param(),
        "mode=leader,follower",
    ])
    .expect(
        1,
        "unhealthy: zookeeper: ",
        &["is standalone, expected leader or follower"],
    );
    healthprobe(["run", "zookeeper", &server.address_param(), "mode=boss"]).expect(
        3,
        "error: zookeeper: ",
        &["expected leader, follower, observer or standalone"],
    );
}

#[test]
fn zookeeper_without_the_words_allowed_says_what_to_allow() {
    let Some(server) = zookeeper("stat") else {
        return;
    };
    until_ready(&server, "does not allow");
    healthprobe(["run", "zookeeper", &server.address_param()]).expect(
        1,
        "unhealthy: zookeeper: ",
        &["does not allow the ruok command", "4lw.commands.whitelist"],
    );
}

#[test]
fn zookeeper_down_hung_and_wrong_service_are_unhealthy() {
    let addr = closed_port();
    healthprobe(["run", "zookeeper", &format!("address={addr}")]).expect(
        1,
        "unhealthy: zookeeper: ",
        &["refused"],
    );
    if let Some(server) = zookeeper("ruok,srvr") {
        until_ready(&server, "healthy: ");
        server.pause();
        healthprobe([
            "run",
            "zookeeper",
            &server.address_param(),
            "--timeout",
            "2s",
        ])
        .expect(
            1,
            "unhealthy: zookeeper: ",
            &["timeout", "imok", &server.address()],
        );
    }
    // NATS greets with INFO: not ZooKeeper, and said so.
    if let Some(nats) = crate::nats::nats_server(&[]) {
        healthprobe(["run", "zookeeper", &nats.address_param()]).expect(
            1,
            "unhealthy: zookeeper: ",
            &["answered ruok with \"INFO {", "is this ZooKeeper?"],
        );
    }
}

#[test]
fn zookeeper_over_tls_with_the_operators_ca() {
    let pki = crate::tls::Pki::new();
    let Some((server, tls)) = zookeeper_with("ruok,srvr", Some(&pki.server)) else {
        return;
    };
    until_ready(&server, "healthy: zookeeper: imok from ");
    let mut args = vec![
        "run".to_string(),
        "zookeeper".into(),
        format!("address=127.0.0.1:{tls}"),
        "tls=true".into(),
        "--format=json".into(),
    ];
    args.extend(pki.trust());
    healthprobe(&args).expect(0, "{", &["imok from", "\"tls-version\":"]);
    args.truncate(5);
    healthprobe(&args).expect(1, "{", &["unknown issuer"]);
}
