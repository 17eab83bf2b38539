//! Integration tests of the `memcached` probe against the real `memcached`.

use std::process::Command;

use nix::sys::signal::Signal;

use crate::servers::{Server, find_binary, in_path, server_dir};
use crate::support::{closed_port, healthprobe};

/// The login a test server started with `-Y` accepts.
const USER: &str = "probe";
const PASSWORD: &str = "s3cret";

/// Starts `memcached` on a free port (TCP only, as root) with `args` after the usual ones;
/// `None` (skip) when memcached is not installed.
pub(crate) fn memcached(args: &[&str]) -> Option<Server> {
    memcached_in(server_dir(), args)
}

fn memcached_in(dir: tempfile::TempDir, args: &[&str]) -> Option<Server> {
    let bin = find_binary("memcached", &in_path("memcached"))?;
    Some(Server::start(dir, Signal::SIGTERM, |port| {
        let mut cmd = Command::new(&bin);
        cmd.args(["-u", "root", "-U", "0", "-l", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .args(args);
        cmd
    }))
}

/// A server with text-protocol authentication (`-Y AUTHFILE`, in the server's directory).
fn memcached_with_auth() -> Option<Server> {
    let dir = server_dir();
    let auth = dir.path().join("auth");
    std::fs::write(&auth, format!("{USER}:{PASSWORD}\n")).unwrap();
    let auth = auth.to_str().unwrap().to_string();
    memcached_in(dir, &["-Y", &auth])
}

#[test]
fn memcached_version_is_healthy() {
    let Some(server) = memcached(&[]) else { return };
    healthprobe(["run", "memcached", &server.address_param()]).expect(
        0,
        "healthy: memcached: VERSION ",
        &[&format!("from {}", server.address())],
    );
}

#[test]
fn memcached_refused_is_unhealthy() {
    let addr = closed_port();
    healthprobe(["run", "memcached", &format!("address={addr}")]).expect(
        1,
        "unhealthy: memcached: ",
        &["refused", &addr.to_string()],
    );
}

#[test]
fn memcached_stopped_server_times_out_within_the_deadline() {
    let Some(server) = memcached(&[]) else { return };
    server.pause();
    healthprobe([
        "run",
        "memcached",
        &server.address_param(),
        "--timeout",
        "2s",
    ])
    .expect(1, "unhealthy: memcached: ", &["timeout", &server.address()]);
}

#[test]
fn memcached_login_is_used_when_the_server_asks() {
    let Some(server) = memcached_with_auth() else {
        return;
    };
    healthprobe([
        "run",
        "memcached",
        &server.address_param(),
        &format!("username={USER}"),
        &format!("password={PASSWORD}"),
    ])
    .expect(0, "healthy: memcached: VERSION ", &[]);
}

#[test]
fn memcached_wrong_password_is_unhealthy_with_the_servers_words() {
    let Some(server) = memcached_with_auth() else {
        return;
    };
    healthprobe([
        "run",
        "memcached",
        &server.address_param(),
        &format!("username={USER}"),
        "password=wrong",
    ])
    .expect(
        1,
        "unhealthy: memcached: ",
        &["CLIENT_ERROR authentication failure"],
    );
}

#[test]
fn memcached_login_required_but_not_given_says_so() {
    let Some(server) = memcached_with_auth() else {
        return;
    };
    healthprobe(["run", "memcached", &server.address_param()]).expect(
        1,
        "unhealthy: memcached: ",
        &["CLIENT_ERROR unauthenticated", "username=", "password="],
    );
}

#[test]
fn memcached_username_without_password_is_exit_3() {
    healthprobe([
        "run",
        "memcached",
        "address=127.0.0.1:11211",
        "username=probe",
    ])
    .expect(3, "error: memcached: ", &["password"]);
}
