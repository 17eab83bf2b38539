//! Real servers (Redis, PostgreSQL, MariaDB, memcached) started by the tests themselves,
//! each as a child of the test run, on a free loopback port, in a temporary directory of
//! its own that holds every path it writes: data, sockets, pid files and temporary files.
//! Tests run in parallel, so nothing a server writes may land in a shared place such as
//! `/tmp` (two MariaDB bootstraps once deleted each other's temporary tables there).
//!
//! `scripts/test` installs the Debian packages; when a server binary is still missing,
//! the test is skipped with a message, except under `CI=true`, where it fails.

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a server may take to start listening, or a paused server to stop: these
/// machines are shared, and MariaDB or PostgreSQL starting beside a full test run can
/// take several seconds.
const START_LIMIT: Duration = Duration::from_secs(60);

/// How many ports a server is tried on. A port picked free can be taken by another test's
/// server before ours binds it; the server then exits, and the next port is tried.
const PORT_ATTEMPTS: usize = 5;

/// A port on 127.0.0.1 that was free a moment ago (another process may bind it before
/// the caller does: [`Server::start`] retries on another port when that happens).
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

/// A fresh directory for one server, with a `tmp` folder inside for its temporary files.
pub fn server_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tmp")).unwrap();
    dir
}

/// `cmd` with its temporary files in `dir/tmp` (for programs that honour `TMPDIR`; servers
/// with their own setting are also given it explicitly).
pub fn in_dir(mut cmd: Command, dir: &Path) -> Command {
    cmd.env("TMPDIR", dir.join("tmp"));
    cmd
}

/// A server process that is stopped (and its directory removed) when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
    stop: Signal,
}

impl Server {
    /// Starts `command(port)` for a free port, its output in `dir/server.log`, and waits
    /// until that very process listens on the port (a connect alone could reach another
    /// test's server that took the port first). If the server exits before listening it is
    /// started again on another port, up to [`PORT_ATTEMPTS`] times. `stop` is the signal
    /// for a clean shutdown.
    pub fn start(dir: tempfile::TempDir, stop: Signal, command: impl Fn(u16) -> Command) -> Server {
        let log_path = dir.path().join("server.log");
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .unwrap();
            let mut cmd = in_dir(command(addr.port()), dir.path());
            cmd.stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
            match wait_listening(&mut child, addr, &log_path) {
                Ok(()) => {
                    return Server {
                        addr,
                        dir,
                        child,
                        stop,
                    };
                }
                Err(status) => failures.push(format!("on {addr}: {status}")),
            }
        }
        panic!(
            "server exited before listening ({}):\n{}",
            failures.join("; "),
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }

    /// `127.0.0.1:PORT`, for the probes' `address=` parameter.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// `address=127.0.0.1:PORT`, the probes' parameter.
    pub fn address_param(&self) -> String {
        format!("address={}", self.addr)
    }

    /// The server's own output, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server process with SIGSTOP, and returns once every one of its threads is
    /// stopped: from then on it accepts nothing and answers nothing.
    pub fn pause(&self) {
        kill(self.pid(), Signal::SIGSTOP).unwrap();
        self.wait_threads("stopped", |state| state == 'T');
    }

    /// Resumes a paused server and returns once none of its threads is stopped.
    pub fn resume(&self) {
        kill(self.pid(), Signal::SIGCONT).unwrap();
        self.wait_threads("running", |state| state != 'T');
    }

    /// Waits until `want` holds for the state letter (`/proc/PID/task/*/stat`) of every
    /// thread of the server.
    fn wait_threads(&self, what: &str, want: impl Fn(char) -> bool) {
        let tasks = format!("/proc/{}/task", self.child.id());
        let start = Instant::now();
        loop {
            let states: Vec<char> = std::fs::read_dir(&tasks)
                .unwrap()
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
                .filter_map(|stat| stat.rsplit_once(") ")?.1.chars().next())
                .collect();
            if !states.is_empty() && states.iter().all(|&s| want(s)) {
                return;
            }
            assert!(
                start.elapsed() < START_LIMIT,
                "server threads not {what} after {START_LIMIT:?}: {states:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
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

/// Waits until `child` owns a socket listening on `addr`'s port, or returns how it exited.
fn wait_listening(child: &mut Child, addr: SocketAddr, log: &Path) -> Result<(), ExitStatus> {
    let start = Instant::now();
    loop {
        if listens(child.id(), addr) {
            return Ok(());
        }
        if let Some(status) = child.try_wait().unwrap() {
            return Err(status);
        }
        if start.elapsed() > START_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "server not listening on {addr} after {START_LIMIT:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` holds a socket listening on `addr`'s port.
///
/// The kernel's socket tables (`/proc/net/tcp`) give the inode of each listening socket;
/// the process's descriptors (`/proc/PID/fd`) name the sockets it holds. Where the
/// descriptors cannot be read (another user's process, without root), a connect is the
/// fallback.
fn listens(pid: u32, addr: SocketAddr) -> bool {
    let inodes = listening_inodes(addr.port());
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            inodes
                .iter()
                .any(|inode| target.as_os_str() == format!("socket:[{inode}]").as_str())
        })
    })
}

/// The inodes of the TCP sockets listening on `port` (any address).
fn listening_inodes(port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    let port = format!("{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|row| {
                    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
                    let f: Vec<&str> = row.split_whitespace().collect();
                    let local_port = f.get(1)?.rsplit_once(':')?.1;
                    (local_port == port && *f.get(3)? == LISTEN)
                        .then(|| f.get(9).map(|s| s.to_string()))?
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
