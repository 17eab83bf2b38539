//! The `mysql` probe against a real MariaDB server (Debian's `mariadb-server`), one per
//! test: `mariadb-install-db` takes about a second here, and a shared server would
//! outlive the test process (statics are never dropped).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::servers::{Server, find_binary, free_port, in_path};
use crate::support::{closed_port, healthprobe};

/// Generous bound on top of `--timeout`: these machines are shared and noisy.
const SLACK: Duration = Duration::from_secs(1);

/// A MariaDB server on a free loopback port with a user `probe` (password `secret`), a
/// user `ed` that needs the ed25519 plugin, and a database `app`.
struct MariaDb {
    server: Server,
    client: PathBuf,
}

impl MariaDb {
    /// `None` (after reporting the skip) when MariaDB is not installed, except under CI.
    fn start(extra: &[&str]) -> Option<MariaDb> {
        let mariadbd = find_binary("MariaDB server (mariadb-server)", &in_path("mariadbd"))?;
        let install = find_binary("mariadb-install-db", &in_path("mariadb-install-db"))?;
        let client = find_binary("MariaDB client", &in_path("mariadb"))?;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let out = Command::new(install)
            .args(["--no-defaults", "--user=root"])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut cmd = Command::new(mariadbd);
        cmd.args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            // Small and quick: these servers live for one test.
            .args([
                "--innodb-buffer-pool-size=16M",
                "--skip-log-bin",
                "--performance-schema=OFF",
            ])
            .args(extra);
        let server = Server::start(cmd, dir, port, Signal::SIGTERM);
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
    fn sql(&self, sql: &str) {
        let out = Command::new(&self.client)
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

    /// A client logged in as `probe` over TCP that holds its connection for `secs`.
    fn hold_connection(&self, secs: u32) -> Child {
        Command::new(&self.client)
            .args(["--no-defaults", "-h127.0.0.1", "-uprobe", "-psecret"])
            .arg(format!("-P{}", self.server.addr.port()))
            .args(["-e", &format!("SELECT SLEEP({secs})")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn address(&self) -> String {
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
    let mut held: Vec<Child> = (0..10).map(|_| db.hold_connection(60)).collect();
    // The clients log in in the background: wait until the server is full. On a loaded
    // machine a check can also fail otherwise first (a timeout while the clients log in),
    // so only the refusal ends the wait.
    let start = Instant::now();
    let out = loop {
        let out = healthprobe([
            "run",
            "mysql",
            &db.address(),
            "username=probe",
            "password=secret",
        ]);
        if out.stdout.contains("1040") || start.elapsed() > Duration::from_secs(30) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
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
    db.server.signal(Signal::SIGSTOP);
    healthprobe([
        "run",
        "mysql",
        &db.address(),
        "username=probe",
        "password=secret",
        "--timeout",
        "2s",
    ])
    .expect(1, "unhealthy: mysql: ", &["timeout"])
    .within(Duration::from_secs(2) + SLACK);
    db.server.signal(Signal::SIGCONT);
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
