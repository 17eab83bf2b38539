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
    let script = find_binary(
        "ZooKeeper",
        &[PathBuf::from("/usr/share/zookeeper/bin/zkServer.sh")],
    )?;
    let dir = server_dir();
    let data = dir.path().join("data");
    let config = dir.path().join("zoo.cfg");
    let logs = dir.path().to_path_buf();
    let whitelist = whitelist.to_string();
    Some(Server::start(dir, Signal::SIGTERM, move |port| {
        std::fs::write(
            &config,
            format!(
                "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 4lw.commands.whitelist={whitelist}\nadmin.enableServer=false\n",
                data.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(&script);
        cmd.arg("start-foreground")
            .arg(&config)
            .env("ZOO_LOG_DIR", &logs);
        cmd
    }))
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
