//! The `mysql` probe against a real MariaDB server (Debian's `mariadb-server`), one per
//! test: `mariadb-install-db` takes about a second here, and a shared server would
//! outlive the test process (statics are never dropped).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::Signal;

use crate::servers::{Server, find_binary, in_dir, in_path, server_dir};
use crate::support::{closed_port, healthprobe};

/// A MariaDB server on a free loopback port with a user `probe` (password `secret`), a
/// user `ed` that needs the ed25519 plugin, and a database `app`.
pub(crate) struct MariaDb {
    pub(crate) server: Server,
    client: PathBuf,
}

impl MariaDb {
    /// `None` (after reporting the skip) when MariaDB is not installed, except under CI.
    pub(crate) fn start(extra: &[&str]) -> Option<MariaDb> {
        let mariadbd = find_binary("MariaDB server (mariadb-server)", &in_path("mariadbd"))?;
        let install = find_binary("mariadb-install-db", &in_path("mariadb-install-db"))?;
        let client = find_binary("MariaDB client", &in_path("mariadb"))?;
        let dir = server_dir();
        let data = dir.path().join("data");
        // Every path the server writes stays in `dir`: parallel bootstraps that shared
        // /tmp for their temporary tables once deleted each other's files.
        let paths = [
            format!("--datadir={}", data.display()),
            format!("--tmpdir={}", dir.path().join("tmp").display()),
            format!("--socket={}", dir.path().join("sock").display()),
            format!("--pid-file={}", dir.path().join("mariadbd.pid").display()),
        ];
        let out = in_dir(Command::new(install), dir.path())
            .args(["--no-defaults", "--user=root"])
            .args(&paths)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let server = Server::start(dir, Signal::SIGTERM, |port| {
            let mut cmd = Command::new(&mariadbd);
            cmd.args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
                .args(&paths)
                .arg(format!("--port={port}"))
                // Small and quick: these servers live for one test.
                .args([
                    "--innodb-buffer-pool-size=16M",
                    "--skip-log-bin",
                    "--performance-schema=OFF",
                ])
                .args(extra);
            cmd
        });
        let db = MariaDb { server, client };
        // root logs in over the socket (unix_socket auth); 127.0.0.1 resolves to localhost.
        db.sql(
            "INSTALL SONAME 'auth_ed25519';
             CREATE USER 'probe'@'localhost' IDENTIFIED BY 'secret';
             CREATE USER 'probe'@'127.0.0.1' IDENTIFIED BY 'secret';
             CREATE USER 'ed'@'localhost' IDENTIFIED VIA ed25519 USING PASSWORD('secret');
             CREATE DATABASE app;
             GRANT ALL ON app.* TO 'probe'@'localhost';
             GRANT ALL ON app.* TO 'probe'@'127.0.0.1';",
        );
        Some(db)
    }

    fn socket(&self) -> PathBuf {
        self.server.dir.path().join("sock")
    }

    /// Runs SQL as root over the socket.
    pub(crate) fn sql(&self, sql: &str) {
        let out = in_dir(Command::new(&self.client), self.server.dir.path())
            .args(["--no-defaults", "-uroot"])
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-e", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.server.log()
        );
    }

    /// A client logged in as `probe` over TCP that holds its connection for `secs`;
    /// returns once the server has accepted the login (the client says so on stdout).
    fn hold_connection(&self, secs: u32) -> Child {
        let mut child = in_dir(Command::new(&self.client), self.server.dir.path())
            .args(["--no-defaults", "-h127.0.0.1", "-uprobe", "-psecret"])
            .arg(format!("-P{}", self.server.addr.port()))
            // Unbuffered: each result is written as soon as it arrives.
            .args(["--unbuffered", "--batch", "--skip-column-names"])
            .args(["-e", &format!("SELECT 'logged in'; SELECT SLEEP({secs})")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.trim() != "logged in" {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "a client could not log in to hold a connection: {line}{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.server.log()
            );
        }
        child
    }

    pub(crate) fn address(&self) -> String {
        format!("address={}", self.server.address())
    }
}

#[test]
fn mysql_handshake_only_is_healthy() {
    let Some(db) = MariaDb::start(&[]) else {
        return;
    };
    healthprobe(["run", "mysql", &db.address()]).expect(
        0,
        "healthy: mysql: ",
        &["MariaDB 10.", &db.server.address(), "accepting connections"],
    );
    // No certificate configured: no TLS to offer.
    healthprobe(["run", "mysql", &db.address(), "tls=require"]).expect(
        1,
        "unhealthy: mysql: ",
        &["does not offer TLS", "tls=prefer"],
    );
    healthprobe(["run", "mysql", &db.address(), "tls=prefer"]).expect(
        0,
        "healthy: mysql: ",
        &["accepting connections"],
    );
}

#[test]
fn mysql_login_and_ping_are_healthy() {
    let Some(db) = MariaDb::start(&[]) else {
        return;
    };
    healthprobe([
        "run",
        "mysql",
        &db.address(),
        "username=probe",
        "password=secret",
    ])
    .expect(
        0,
        "healthy: mysql: ",
        &["MariaDB 10.", "logged in as 'probe'", "COM_PING OK"],
    );
    // With a database the user may use.
    healthprobe([
        "run",
        "mysql",
        &db.address(),
        "username=probe",
        "password=secret",
        "database=app",
    ])
    .expect(0, "healthy: mysql: ", &["COM_PING OK"]);
}

#[test]
fn mysql_login_failures_are_unhealthy_with_the_servers_error() {
    let Some(db) = MariaDb::start(&[]) else {
        return;
    };
    healthprobe([
        "run",
        "mysql",
        &db.address(),
        "username=probe",
        "password=wrong",
    ])
    .expect(
        1,
        "unhealthy: mysql: ",
        &["1045 (28000) Access denied for user 'probe'@'localhost' (using password: YES)"],
    );
    healthprobe([
        "run",
        "mysql",
        &db.address(),
        "username=probe",
        "password=secret",
        "database=nope",
    ])
    .expect(1, "unhealthy: mysql: ", &["1044 (42000)", "'nope'"]);
    // A user whose plugin the probe does not have: named, not a vague failure.
    healthprobe([
        "run",
        "mysql",
        &db.address(),
        "username=ed",
        "password=secret",
    ])
    .expect(1, "unhealthy: mysql: ", &["auth plugin 'client_ed25519'"]);
}

#[test]
fn mysql_too_many_connections_is_unhealthy_with_1040() {
    // 10 is MariaDB's smallest max_connections; the 11th login is refused.
    let Some(db) = MariaDb::start(&["--max-connections=10"]) else {
        return;
    };
    // Each client has logged in when `hold_connection` returns: the server is full.
    let mut held: Vec<Child> = (0..10).map(|_| db.hold_connection(120)).collect();
    let out = healthprobe([
        "run",
        "mysql",
        &db.address(),
        "username=probe",
        "password=secret",
    ]);
    for child in &mut held {
        let _ = child.kill();
        let _ = child.wait();
    }
    out.expect(
        1,
        "unhealthy: mysql: ",
        &["1040 (08004) Too many connections"],
    );
}

#[test]
fn mysql_refused_is_unhealthy() {
    let addr = closed_port();
    healthprobe(["run", "mysql", &format!("address={addr}")]).expect(
        1,
        "unhealthy: mysql: ",
        &["refused", &addr.to_string()],
    );
}

#[test]
fn mysql_stopped_server_times_out_within_the_deadline() {
    let Some(db) = MariaDb::start(&[]) else {
        return;
    };
    db.server.pause();
    healthprobe([
        "run",
        "mysql",
        &db.address(),
        "username=probe",
        "password=secret",
        "--timeout",
        "2s",
    ])
    .expect(1, "unhealthy: mysql: ", &["timeout"]);
    db.server.resume();
}

#[test]
fn mysql_bad_parameters_are_exit_3() {
    healthprobe(["run", "mysql", "address=127.0.0.1"]).expect(3, "error: mysql: ", &["address"]);
    healthprobe(["run", "mysql", "address=127.0.0.1:3306", "username="]).expect(
        3,
        "error: mysql: ",
        &["username"],
    );
    healthprobe(["run", "mysql", "address=127.0.0.1:3306", "password=x"]).expect(
        3,
        "error: mysql: ",
        &["username"],
    );
}
