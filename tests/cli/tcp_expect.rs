//! Integration tests of the `tcp` probe's `send` / `expect` steps, against the real
//! `redis-server` and `memcached`, and small in-test servers for banners.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::Duration;

use crate::memcached::memcached;
use crate::redis::redis;
use crate::support::{SilentServer, closed_port, healthprobe};

/// A one-connection server that sends `banner`, then, for each `(request, reply)`,
/// waits for `request` and sends `reply`; then closes.
fn scripted(banner: &'static [u8], exchanges: &'static [(&[u8], &[u8])]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = conn.write_all(banner);
        for (request, reply) in exchanges {
            let mut got = vec![0; request.len()];
            if conn.read_exact(&mut got).is_err() || got != *request {
                return;
            }
            let _ = conn.write_all(reply);
        }
    });
    addr
}

#[test]
fn tcp_redis_ping_pong_is_healthy() {
    let Some(server) = redis("", &[]) else { return };
    healthprobe([
        "run",
        "tcp",
        &format!("address={}", server.address()),
        r"send=PING\r\n",
        r"expect=^\+PONG",
    ])
    .expect(
        0,
        "healthy: tcp: ",
        &[r"matched /^\+PONG/", "got '+PONG'", &server.address()],
    );
}

#[test]
fn tcp_redis_ping_pong_in_hex_is_healthy() {
    let Some(server) = redis("", &[]) else { return };
    healthprobe([
        "run",
        "tcp",
        &format!("address={}", server.address()),
        "send=hex:50494e470d0a",
        "expect=hex:2b504f4e470d0a",
    ])
    .expect(0, "healthy: tcp: ", &["matched hex:2b504f4e470d0a"]);
}

#[test]
fn tcp_memcached_version_is_healthy() {
    let Some(server) = memcached(&[]) else { return };
    healthprobe([
        "run",
        "tcp",
        &format!("address={}", server.address()),
        r"send=version\r\n",
        "expect=^VERSION ",
    ])
    .expect(0, "healthy: tcp: ", &["got 'VERSION "]);
}

#[test]
fn tcp_mismatch_quotes_what_the_server_said() {
    let Some(server) = redis("", &[]) else { return };
    // QUIT makes Redis close the connection, so the mismatch shows at once.
    healthprobe([
        "run",
        "tcp",
        &format!("address={}", server.address()),
        r"send=PING\r\nQUIT\r\n",
        r"expect=^\+PANG",
    ])
    .expect(
        1,
        "unhealthy: tcp: ",
        &[
            "closed the connection before /^\\+PANG/ matched",
            r"'+PONG\r\n+OK\r\n'",
        ],
    );
}

#[test]
fn tcp_ssh_banner_is_healthy() {
    let addr = scripted(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", &[]);
    healthprobe([
        "run",
        "tcp",
        &format!("address={addr}"),
        r"expect=^SSH-2\.0-",
    ])
    .expect(
        0,
        "healthy: tcp: ",
        &["got 'SSH-2.0-OpenSSH_9.2p1 Debian-2'"],
    );
}

#[test]
fn tcp_steps_run_in_command_line_order() {
    // SMTP-like: banner, QUIT, goodbye; the server hangs up on anything else.
    let addr = scripted(b"220 mail ESMTP\r\n", &[(b"QUIT\r\n", b"221 Bye\r\n")]);
    healthprobe([
        "run",
        "tcp",
        &format!("address={addr}"),
        "expect=^220",
        r"send=QUIT\r\n",
        "expect=^221",
    ])
    .expect(
        0,
        "healthy: tcp: ",
        &["matched /^220/, /^221/", "got '221 Bye'"],
    );
}

#[test]
fn tcp_silent_server_times_out_naming_the_pattern() {
    let server = SilentServer::start();
    healthprobe([
        "run",
        "tcp",
        &format!("address={}", server.addr),
        "expect=^220",
        "--timeout",
        "2s",
    ])
    .expect(
        1,
        "unhealthy: tcp: ",
        &[&format!("timeout waiting for /^220/ from {}", server.addr)],
    );
}

#[test]
fn tcp_refused_with_steps_is_unhealthy() {
    let addr = closed_port();
    healthprobe([
        "run",
        "tcp",
        &format!("address={addr}"),
        r"send=PING\r\n",
        "expect=^x",
    ])
    .expect(1, "unhealthy: tcp: ", &["refused", &addr.to_string()]);
}

#[test]
fn tcp_bad_regex_is_exit_3() {
    healthprobe(["run", "tcp", "address=127.0.0.1:1", "expect=(unclosed"]).expect(
        3,
        "error: tcp: ",
        &["expect", "unclosed group"],
    );
}

#[test]
fn tcp_bad_escape_is_exit_3() {
    healthprobe(["run", "tcp", "address=127.0.0.1:1", r"send=PING\q"]).expect(
        3,
        "error: tcp: ",
        &["send", r"unknown escape '\q'"],
    );
}
