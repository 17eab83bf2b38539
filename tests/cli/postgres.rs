//! Integration tests of the `postgres` probe against the real PostgreSQL server.
//!
//! Every test starts its own cluster (`initdb` takes about a second here): a server
//! held in a static would never be dropped, so its postmaster would outlive the test
//! run. PostgreSQL refuses to run as root, so `initdb` and `postgres` run as `nobody`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::{User, chown};

use crate::servers::{Server, find_binary, in_dir, server_dir};
use crate::support::{closed_port, healthprobe};

/// The superuser's password (`initdb --pwfile`).
const SUPERUSER_PASSWORD: &str = "postgres-secret";

/// Roles made at setup: a SCRAM one, an MD5 one (stored as an MD5 hash, with an `md5`
/// line in pg_hba.conf) and a cleartext one (`password` method).
const SETUP_SQL: &str = "\
CREATE ROLE probe LOGIN PASSWORD 'probe-secret';
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5-secret';
RESET password_encryption;
CREATE ROLE clearuser LOGIN PASSWORD 'clear secret';
";

/// The specific lines come before the generic SCRAM line: the first match wins.
const PG_HBA: &str = "\
local all all scram-sha-256
host all md5user 127.0.0.1/32 md5
host all clearuser 127.0.0.1/32 password
host all all 127.0.0.1/32 scram-sha-256
";

/// The newest installed PostgreSQL's `bin` directory, or `None` (skip).
fn bin_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.flatten()
                .map(|d| d.path().join("bin/postgres"))
                .collect()
        })
        .unwrap_or_default();
    // Newest major version first (numerically: 9.6 < 15 < 16).
    candidates.sort_by_key(|p| {
        let major = p
            .parent()
            .and_then(Path::parent)
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok())
            .unwrap_or(0);
        std::cmp::Reverse(major)
    });
    if candidates.is_empty() {
        candidates.push(PathBuf::from("/usr/lib/postgresql/VERSION/bin/postgres"));
    }
    find_binary("PostgreSQL", &candidates).map(|p| p.parent().unwrap().to_path_buf())
}

/// `cmd`, to run as `nobody` (std drops the supplementary groups too).
fn as_nobody(mut cmd: Command, nobody: &User) -> Command {
    cmd.uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw());
    cmd
}

/// Runs `cmd` to completion with `stdin`, panicking with its output if it fails.
fn run_ok(mut cmd: Command, stdin: &str) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh cluster with the roles of [`SETUP_SQL`], serving on a free 127.0.0.1 port
/// once it accepts logins; `None` (skip) when PostgreSQL is not installed.
fn postgres() -> Option<Server> {
    postgres_with(None)
}

/// [`postgres`], with TLS on (`ssl = on`) with `pem` as the certificate if given.
pub(crate) fn postgres_with(tls: Option<&crate::tls::Pem>) -> Option<Server> {
    postgres_tls(tls, None)
}

/// [`postgres_with`]; with `client_ca`, every TCP login must also present a client
/// certificate that CA signed (`clientcert=verify-ca`).
pub(crate) fn postgres_tls(
    tls: Option<&crate::tls::Pem>,
    client_ca: Option<&Path>,
) -> Option<Server> {
    let bin = bin_dir()?;
    let nobody = User::from_name("nobody")
        .unwrap()
        .expect("a user called nobody");
    let dir = server_dir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let socket_dir = dir.path().join("socket");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&data).unwrap();
    std::fs::create_dir(&socket_dir).unwrap();
    for (path, mode) in [(&data, 0o700), (&socket_dir, 0o755), (&tmp, 0o700)] {
        chown(path, Some(nobody.uid), Some(nobody.gid)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let pwfile = dir.path().join("pwfile");
    std::fs::write(&pwfile, SUPERUSER_PASSWORD).unwrap();

    let mut initdb = as_nobody(
        in_dir(Command::new(bin.join("initdb")), dir.path()),
        &nobody,
    );
    initdb
        .arg("-D")
        .arg(&data)
        .args(["--auth=scram-sha-256", "-U", "postgres", "--no-sync"])
        .arg(format!("--pwfile={}", pwfile.display()));
    run_ok(initdb, "");
    // Single-user mode runs the SQL without a server, a socket or psql.
    let mut single = as_nobody(
        in_dir(Command::new(bin.join("postgres")), dir.path()),
        &nobody,
    );
    single.args(["--single", "-D"]).arg(&data).arg("postgres");
    run_ok(single, SETUP_SQL);
    // The first matching line wins: `probe` over TLS must show a certificate too.
    let hba = match client_ca {
        Some(_) => {
            "hostssl all probe 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n".to_string()
                + PG_HBA
        }
        None => PG_HBA.to_string(),
    };
    std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
    // The server reads its key as nobody, and only from a file no one else may read.
    let mut ssl = Vec::new();
    if let Some(pem) = tls {
        let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
        std::fs::copy(&pem.cert, &cert).unwrap();
        std::fs::copy(&pem.key, &key).unwrap();
        for (path, mode) in [(&cert, 0o644), (&key, 0o600)] {
            chown(path, Some(nobody.uid), Some(nobody.gid)).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        ssl = vec![
            "-c".to_string(),
            "ssl=on".to_string(),
            "-c".to_string(),
            format!("ssl_cert_file={}", cert.display()),
            "-c".to_string(),
            format!("ssl_key_file={}", key.display()),
        ];
        if let Some(ca) = client_ca {
            let copy = dir.path().join("client-ca.pem");
            std::fs::copy(ca, &copy).unwrap();
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
            ssl.extend(["-c".to_string(), format!("ssl_ca_file={}", copy.display())]);
        }
    }

    // SIGINT is the fast shutdown: it does not wait for clients to leave. The socket and
    // the pid file (in the data directory) stay in the server's directory.
    let server = Server::start(dir, Signal::SIGINT, |port| {
        let mut cmd = as_nobody(Command::new(bin.join("postgres")), &nobody);
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&socket_dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(&ssl);
        cmd
    });
    wait_accepting(&server);
    Some(server)
}

/// Waits until the server answers a StartupMessage with an authentication request:
/// it listens before it has finished starting up, and says so with 57P03 meanwhile.
fn wait_accepting(server: &Server) {
    let start = Instant::now();
    loop {
        if first_reply_byte(server.addr) == Some(b'R') {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "PostgreSQL not accepting logins:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn first_reply_byte(addr: SocketAddr) -> Option<u8> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let params = b"user\0postgres\0database\0postgres\0\0";
    let mut startup = u32::try_from(8 + params.len())
        .unwrap()
        .to_be_bytes()
        .to_vec();
    startup.extend_from_slice(&(3u32 << 16).to_be_bytes());
    startup.extend_from_slice(params);
    conn.write_all(&startup).ok()?;
    let mut byte = [0];
    conn.read_exact(&mut byte).ok()?;
    Some(byte[0])
}

#[test]
fn postgres_isready_mode_is_healthy() {
    let Some(server) = postgres() else { return };
    healthprobe(["run", "postgres", &server.address_param()]).expect(
        0,
        "healthy: postgres: ",
        &[
            &format!("{} is accepting connections", server.address()),
            "SCRAM-SHA-256",
        ],
    );
    // A user that does not exist still means the server accepts connections.
    healthprobe(["run", "postgres", &server.address_param(), "username=ghost"]).expect(
        0,
        "healthy: postgres: ",
        &["is accepting connections"],
    );
    // TLS is off on this server: required, it is unhealthy; preferred, plain TCP will do.
    healthprobe(["run", "postgres", &server.address_param(), "tls=require"]).expect(
        1,
        "unhealthy: postgres: ",
        &["does not offer TLS", "tls=prefer"],
    );
    healthprobe(["run", "postgres", &server.address_param(), "tls=prefer"]).expect(
        0,
        "healthy: postgres: ",
        &["is accepting connections"],
    );
}

#[test]
fn postgres_scram_login_runs_the_query() {
    let Some(server) = postgres() else { return };
    healthprobe([
        "run",
        "postgres",
        &server.address_param(),
        "username=probe",
        "password=probe-secret",
        "database=postgres",
    ])
    .expect(
        0,
        "healthy: postgres: ",
        &["SELECT 1 returned 1 row in ", "first value: 1"],
    );
    // The superuser with the defaults: user postgres, database postgres.
    healthprobe([
        "run",
        "postgres",
        &server.address_param(),
        &format!("password={SUPERUSER_PASSWORD}"),
        "query=SELECT current_user",
    ])
    .expect(0, "healthy: postgres: ", &["first value: postgres"]);
}

#[test]
fn postgres_md5_and_cleartext_logins_are_healthy() {
    let Some(server) = postgres() else { return };
    for (user, password, method) in [
        ("md5user", "md5-secret", "MD5 password"),
        ("clearuser", "clear secret", "cleartext password"),
    ] {
        let out = healthprobe([
            "run",
            "postgres",
            &server.address_param(),
            &format!("username={user}"),
            &format!("password={password}"),
            "database=postgres",
            "query=SELECT current_user",
            "--format",
            "json",
        ]);
        out.expect(0, "{", &[&format!("first value: {user}")]);
        let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
        assert_eq!(v["status"], "healthy", "{out:#?}");
        assert_eq!(v["details"]["auth"], method, "{out:#?}");
        assert!(
            v["details"]["server-version"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{out:#?}"
        );
    }
}

#[test]
fn postgres_wrong_password_is_unhealthy_with_the_server_message() {
    let Some(server) = postgres() else { return };
    for user in ["probe", "md5user", "clearuser"] {
        healthprobe([
            "run",
            "postgres",
            &server.address_param(),
            &format!("username={user}"),
            "password=wrong",
            "database=postgres",
        ])
        .expect(
            1,
            "unhealthy: postgres: ",
            &[&format!(
                "FATAL 28P01 password authentication failed for user \"{user}\""
            )],
        );
    }
}

#[test]
fn postgres_bad_query_is_unhealthy_with_the_sql_error() {
    let Some(server) = postgres() else { return };
    healthprobe([
        "run",
        "postgres",
        &server.address_param(),
        &format!("password={SUPERUSER_PASSWORD}"),
        "query=SELECT * FROM no_such_table",
    ])
    .expect(
        1,
        "unhealthy: postgres: ",
        &["query failed: ERROR 42P01 relation \"no_such_table\" does not exist"],
    );
}

#[test]
fn postgres_refused_is_unhealthy() {
    let addr = closed_port();
    healthprobe(["run", "postgres", &format!("address={addr}")]).expect(
        1,
        "unhealthy: postgres: ",
        &["refused", &addr.to_string()],
    );
}

#[test]
fn postgres_stopped_postmaster_times_out_within_the_deadline() {
    let Some(server) = postgres() else { return };
    // The postmaster accepts and forks every backend: stopped, it leaves new
    // connections in the kernel's backlog, unanswered.
    server.pause();
    for login in [None, Some(format!("password={SUPERUSER_PASSWORD}"))] {
        let mut args = vec![
            "run".to_string(),
            "postgres".to_string(),
            server.address_param(),
            "--timeout".to_string(),
            "2s".to_string(),
        ];
        args.extend(login);
        healthprobe(&args).expect(1, "unhealthy: postgres: ", &["timeout"]);
    }
    server.resume();
}

#[test]
fn postgres_bad_parameters_are_exit_3() {
    healthprobe(["run", "postgres", "address=127.0.0.1"]).expect(
        3,
        "error: postgres: ",
        &["address"],
    );
    healthprobe(["run", "postgres", "address=127.0.0.1:5432", "password="]).expect(
        3,
        "error: postgres: ",
        &["password", "empty"],
    );
    healthprobe(["run", "postgres", "address=127.0.0.1:5432", "username="]).expect(
        3,
        "error: postgres: ",
        &["username", "empty"],
    );
}
