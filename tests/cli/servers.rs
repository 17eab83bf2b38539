//! Real servers (Redis, PostgreSQL, MariaDB, memcached) started by the tests themselves,
//! each as a child of the test run, on a free loopback port, in a temporary directory.
//!
//! `scripts/test` installs the Debian packages; when a server binary is still missing,
//! the test is skipped with a message, except under `CI=true`, where it fails.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first of `candidates` that exists, or `None` after reporting the skip.
///
/// Under `CI=true` a missing server is a failure, never a silent skip.
#[track_caller]
pub fn find_binary(what: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Some(found.clone());
    }
    let msg = format!(
        "{what} is not installed (looked for {candidates:?}); scripts/test installs it from Debian"
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("SKIPPED: {msg}");
    None
}

/// `name` in the usual binary directories.
pub fn in_path(name: &str) -> Vec<PathBuf> {
    [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .collect()
}

/// A server process that is stopped (and its directory removed) when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
    stop: Signal,
}

impl Server {
    /// Starts `cmd` (its output goes to `dir/server.log`) and waits until it accepts
    /// connections on `port`. `stop` is the signal for a clean shutdown.
    pub fn start(mut cmd: Command, dir: tempfile::TempDir, port: u16, stop: Signal) -> Server {
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut server = Server {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            child,
            stop,
        };
        server.wait_ready(Duration::from_secs(60));
        server
    }

    /// `127.0.0.1:PORT`, for the probes' `address=` parameter.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// `address=127.0.0.1:PORT`, the probes' parameter.
    pub fn address_param(&self) -> String {
        format!("address={}", self.addr)
    }

    fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "server exited with {status} before listening:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < limit,
                "server not listening on {} after {limit:?}:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's own output, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Sends `signal` to the server process (SIGSTOP to make it hang, SIGCONT to resume).
    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A stopped server would ignore the shutdown signal.
        let _ = kill(self.pid(), Signal::SIGCONT);
        let _ = kill(self.pid(), self.stop);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
