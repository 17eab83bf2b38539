//! Integration tests of the `redis` probe against the real `redis-server`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::servers::{Server, find_binary, in_path, server_dir};
use crate::support::{closed_port, healthprobe};

/// The password of the default user where a test sets one (`requirepass`).
const PASSWORD: &str = "default-secret";
/// An ACL user that may not run ROLE, so `role=` must fall back to INFO replication.
const ACL_USER: &str = "monitor";
const ACL_PASSWORD: &str = "monitor secret";

/// Starts `redis-server` on a free port in a fresh directory, with `config` as its
/// configuration file and `args` after it; `None` (skip) when Redis is not installed.
pub(crate) fn redis(config: &str, args: &[&str]) -> Option<Server> {
    let bin = find_binary("redis-server", &in_path("redis-server"))?;
    let dir = server_dir();
    let conf = dir.path().join("redis.conf");
    std::fs::write(&conf, config).unwrap();
    let data = dir.path().to_path_buf();
    Some(Server::start(dir, Signal::SIGTERM, |port| {
        let mut cmd = Command::new(&bin);
        cmd.arg(&conf)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&data)
            .args(args);
        cmd
    }))
}

/// A server with a password for the default user and an ACL user without ROLE.
fn redis_with_auth() -> Option<Server> {
    redis(
        &format!(
            "requirepass {PASSWORD}\nuser {ACL_USER} on \">{ACL_PASSWORD}\" ~* &* +@all -role\n"
        ),
        &[],
    )
}

/// Sends one command over a raw connection and returns the reply's first line.
fn command(conn: &mut TcpStream, args: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    conn.write_all(out.as_bytes()).unwrap();
    let mut buf = [0; 512];
    let n = conn.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
}

#[test]
fn redis_pong_is_healthy() {
    let Some(server) = redis("", &[]) else { return };
    healthprobe(["run", "redis", &server.address_param()]).expect(
        0,
        "healthy: redis: ",
        &[&format!("PONG from {}", server.address())],
    );
}

#[test]
fn redis_password_is_healthy() {
    let Some(server) = redis_with_auth() else {
        return;
    };
    healthprobe([
        "run",
        "redis",
        &server.address_param(),
        &format!("password={PASSWORD}"),
        "role=master",
    ])
    .expect(0, "healthy: redis: ", &["PONG from", "role master"]);
    // The same password as a Docker secret file, and from the environment.
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("redis_password");
    std::fs::write(&secret, format!("{PASSWORD}\n")).unwrap();
    healthprobe([
        "run",
        "redis",
        &server.address_param(),
        &format!("password@file={}", secret.display()),
    ])
    .expect(0, "healthy: redis: ", &["PONG from"]);
    crate::support::healthprobe_env(
        [
            "run",
            "redis",
            &server.address_param(),
            "password@env=REDIS_PASSWORD",
        ],
        &[("REDIS_PASSWORD", PASSWORD)],
    )
    .expect(0, "healthy: redis: ", &["PONG from"]);
}

#[test]
fn redis_acl_user_is_healthy_and_role_falls_back_to_info() {
    let Some(server) = redis_with_auth() else {
        return;
    };
    healthprobe([
        "run",
        "redis",
        &server.address_param(),
        &format!("username={ACL_USER}"),
        &format!("password={ACL_PASSWORD}"),
        "role=master",
    ])
    .expect(0, "healthy: redis: ", &["PONG from", "role master"]);
}

#[test]
fn redis_wrong_password_is_unhealthy_with_wrongpass() {
    let Some(server) = redis_with_auth() else {
        return;
    };
    for user in [None, Some(ACL_USER)] {
        let mut args = vec![
            "run".to_string(),
            "redis".to_string(),
            server.address_param(),
            "password=wrong".to_string(),
        ];
        args.extend(user.map(|u| format!("username={u}")));
        healthprobe(&args).expect(
            1,
            "unhealthy: redis: ",
            &[
                "AUTH",
                "WRONGPASS invalid username-password pair or user is disabled.",
            ],
        );
    }
}

#[test]
fn redis_missing_password_is_unhealthy_with_noauth() {
    let Some(server) = redis_with_auth() else {
        return;
    };
    healthprobe(["run", "redis", &server.address_param()]).expect(
        1,
        "unhealthy: redis: ",
        &["PING", "NOAUTH Authentication required."],
    );
}

#[test]
fn redis_master_is_not_a_replica() {
    let Some(server) = redis("", &[]) else { return };
    healthprobe(["run", "redis", &server.address_param(), "role=replica"]).expect(
        1,
        "unhealthy: redis: ",
        &["role is master, expected replica"],
    );
}

#[test]
fn redis_replica_has_the_replica_role() {
    let Some(master) = redis("", &[]) else { return };
    let Some(replica) = redis(
        "",
        &["--replicaof", "127.0.0.1", &master.addr.port().to_string()],
    ) else {
        return;
    };
    healthprobe(["run", "redis", &replica.address_param(), "role=replica"]).expect(
        0,
        "healthy: redis: ",
        &["PONG from", "role replica"],
    );
    healthprobe(["run", "redis", &replica.address_param(), "role=master"]).expect(
        1,
        "unhealthy: redis: ",
        &["role is replica, expected master"],
    );
}

#[test]
fn redis_refused_is_unhealthy() {
    let addr = closed_port();
    healthprobe(["run", "redis", &format!("address={addr}")]).expect(
        1,
        "unhealthy: redis: ",
        &["refused", &addr.to_string()],
    );
}

#[test]
fn redis_paused_server_times_out_within_the_deadline() {
    let Some(server) = redis_with_auth() else {
        return;
    };
    // CLIENT PAUSE ALL: the server is up and accepts connections but answers no one, for
    // far longer than a slow machine could take to start the check.
    let mut admin = TcpStream::connect(server.addr).unwrap();
    admin
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(command(&mut admin, &["AUTH", PASSWORD]), "+OK");
    assert_eq!(
        command(&mut admin, &["CLIENT", "PAUSE", "120000", "ALL"]),
        "+OK"
    );
    healthprobe([
        "run",
        "redis",
        &server.address_param(),
        &format!("password={PASSWORD}"),
        "--timeout",
        "2s",
    ])
    .expect(1, "unhealthy: redis: ", &["timeout"]);
    // No CLIENT UNPAUSE: it would wait out the pause like every other command, and
    // SIGTERM shuts a paused server down anyway.
}

#[test]
fn redis_bad_parameters_are_exit_3() {
    healthprobe(["run", "redis", "address=127.0.0.1:6379", "role=leader"]).expect(
        3,
        "error: redis: ",
        &["role", "expected master or replica, got 'leader'"],
    );
    healthprobe(["run", "redis", "address=127.0.0.1:6379", "username=app"]).expect(
        3,
        "error: redis: ",
        &["username", "password"],
    );
    healthprobe(["run", "redis", "address=127.0.0.1"]).expect(3, "error: redis: ", &["address"]);
}
