//! Test support: running the real binary, building the test guests, loopback servers.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long past `--timeout` the watchdog of `healthprobe run` lets a run go before it
/// prints the timeout and exits, whatever is stuck (`WATCHDOG_MARGIN` in cmd/run.rs).
pub const WATCHDOG_MARGIN: Duration = Duration::from_millis(300);

/// What a shared, loaded machine may add to any time a test asked for: starting the
/// process, waiting for a core, a test server's reply. Every time bound in these tests is
/// what the test itself asked for (a `--timeout`, a check's timeout, an interval) plus this;
/// none is a constant that some other test's timeout could contradict.
pub const SLACK: Duration = Duration::from_secs(1);

/// How long a test waits for something it expects to happen (a server's readiness, a
/// check's first run, a first connection) before it fails. Not a bound on how long it may
/// take: a wait ends as soon as the thing happens; this only keeps a broken build from
/// hanging the suite.
pub const WAIT: Duration = Duration::from_secs(60);

/// Polls `done` until it holds, failing the test after [`WAIT`] with `what`.
#[track_caller]
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "{what} did not happen in {WAIT:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The timeout a run of `healthprobe` without `--timeout` gets.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The result of one `healthprobe` invocation.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// The time a `run` asked for: its `--timeout`, else the default. `None` for the other
    /// commands, which no deadline bounds (`serve` refusing a checks file takes as long as
    /// reading it, which on a loaded machine can be seconds).
    pub budget: Option<Duration>,
}

impl Outcome {
    /// Asserts the exit code and that stdout's only line starts with `prefix` and contains
    /// every one of `needles`.
    #[track_caller]
    pub fn expect(&self, code: i32, prefix: &str, needles: &[&str]) -> &Self {
        assert_eq!(self.code, code, "exit code; outcome: {self:#?}");
        assert!(
            self.stdout.starts_with(prefix),
            "prefix {prefix:?}; outcome: {self:#?}"
        );
        for n in needles {
            assert!(self.stdout.contains(n), "missing {n:?}; outcome: {self:#?}");
        }
        assert_eq!(
            self.stdout.lines().count(),
            1,
            "one line; outcome: {self:#?}"
        );
        assert!(
            self.stdout.len() + self.stderr.len() <= 4096,
            "output over 4096 bytes: {}",
            self.stdout.len() + self.stderr.len()
        );
        // Every run, whatever it does, ends by the time it was given plus the watchdog's
        // margin, on a loaded machine plus the allowance.
        match self.budget {
            Some(budget) => self.within(budget + WATCHDOG_MARGIN + SLACK),
            None => self,
        }
    }

    /// Asserts that stderr contains `text`.
    #[track_caller]
    pub fn stderr_contains(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "no {text:?} on stderr: {self:#?}"
        );
        self
    }

    /// Asserts only the exit code.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code; outcome: {self:#?}");
        self
    }

    /// Asserts the run took less than `limit`.
    #[track_caller]
    pub fn within(&self, limit: Duration) -> &Self {
        assert!(
            self.elapsed < limit,
            "took {:?}, limit {limit:?}: {self:#?}",
            self.elapsed
        );
        self
    }
}

/// Runs `healthprobe` with `args`.
pub fn healthprobe<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    healthprobe_env(args, &[])
}

/// The `healthprobe` command with `args`, and, for `run`, the time the run asks for (its
/// `--timeout`, else the default).
fn command<I, S>(args: I) -> (Command, Option<Duration>)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_healthprobe"));
    command
        .args(&args)
        // The compile cache goes to a directory of the test run, not the user's home,
        // unless a test sets its own.
        .env_remove("HEALTHPROBE_CACHE_DIR")
        .env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-cache"),
        )
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY");
    let budget = (args.first().and_then(|a| a.to_str()) == Some("run"))
        .then(|| timeout_of(&args).unwrap_or(DEFAULT_TIMEOUT));
    (command, budget)
}

/// Runs `healthprobe` with `args` and extra environment variables.
pub fn healthprobe_env<I, S>(args: I, env: &[(&str, &str)]) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let (mut command, budget) = command(args);
    let start = Instant::now();
    let out = command
        .envs(env.iter().copied())
        .output()
        .expect("run healthprobe");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
        budget,
    }
}

/// Runs `healthprobe` with `args`, and returns with its outcome the peak resident memory of
/// the process in bytes (the kernel's own account, from `wait4`).
// The child is reaped by `wait4`, which clippy does not know.
#[allow(clippy::zombie_processes)]
pub fn healthprobe_peak<I, S>(args: I) -> (Outcome, u64)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::io::Read as _;
    use std::process::Stdio;
    let (mut command, budget) = command(args);
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run healthprobe");
    let read_all = |mut pipe: Box<dyn std::io::Read + Send>| {
        thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let pid = i32::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: `status` and `usage` are valid for writes; `pid` is this test's own child,
    // which nothing else waits for.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::wait4(pid, &mut status, 0, &mut usage), pid);
        usage
    };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let outcome = Outcome {
        code,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        elapsed: start.elapsed(),
        budget,
    };
    (outcome, u64::try_from(usage.ru_maxrss).unwrap() * 1024)
}

/// The `--timeout` among `args` (`--timeout 2s` or `--timeout=2s`), if any.
fn timeout_of(args: &[std::ffi::OsString]) -> Option<Duration> {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    let value = args.iter().enumerate().find_map(|(i, a)| match *a {
        "--timeout" => args.get(i + 1).copied(),
        _ => a.strip_prefix("--timeout="),
    })?;
    humantime::parse_duration(value).ok()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The path of a test guest component (`hostile`, `other-world`), built on first use.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let target = root().join("target").join("test-guests");
        cargo_build_wasm(&root().join("tests/guests/Cargo.toml"), &target);
        target.join("wasm32-wasip2").join("release")
    });
    let path = dir.join(format!("{}.wasm", name.replace('-', "_")));
    assert!(path.is_file(), "no guest at {}", path.display());
    path
}

/// The hostile guest precompiled with `healthprobe compile`, for tests whose `--timeout` is
/// short: compiling on every run costs a few hundred milliseconds on a busy machine, which
/// would eat the budget being tested.
pub fn hostile_cwasm() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let wasm = guest("hostile");
            let cwasm = wasm.with_extension("cwasm");
            let out = healthprobe([
                "compile".as_ref(),
                wasm.as_os_str(),
                "-o".as_ref(),
                cwasm.as_os_str(),
            ]);
            assert_eq!(out.code, 0, "{out:#?}");
            cwasm
        })
        .clone()
}

/// The example third-party probe (examples/third-party-probe), built on first use.
pub fn third_party_probe() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = root().join("target").join("third-party-probe");
            cargo_build_wasm(
                &root().join("examples/third-party-probe/Cargo.toml"),
                &target,
            );
            target.join("wasm32-wasip2/release/queue_depth_probe.wasm")
        })
        .clone()
}

fn cargo_build_wasm(manifest: &Path, target: &Path) {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--locked",
            "--workspace",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("run cargo to build a wasm component");
    assert!(status.success(), "building {} failed", manifest.display());
}

/// A file in a fresh temporary directory holding `bytes`.
pub fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

/// An HTTP server on 127.0.0.1 answering every request with `respond(method, url,
/// headers)`, for as long as the returned value lives.
pub struct HttpServer {
    pub addr: SocketAddr,
    server: Arc<tiny_http::Server>,
}

pub type Handler =
    dyn Fn(&tiny_http::Request) -> (u16, Vec<(String, String)>, String) + Send + Sync;

impl HttpServer {
    pub fn start(
        respond: impl Fn(&tiny_http::Request) -> (u16, Vec<(String, String)>, String)
        + Send
        + Sync
        + 'static,
    ) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let addr = server.server_addr().to_ip().unwrap();
        let s = server.clone();
        let respond: Arc<Handler> = Arc::new(respond);
        thread::spawn(move || {
            for req in s.incoming_requests() {
                let (status, headers, body) = respond(&req);
                let mut resp = tiny_http::Response::from_string(body).with_status_code(status);
                for (k, v) in headers {
                    resp.add_header(
                        tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap(),
                    );
                }
                let _ = req.respond(resp);
            }
        });
        Self { addr, server }
    }

    /// A server that always answers `status` with `body`.
    pub fn fixed(status: u16, body: &str) -> Self {
        let body = body.to_string();
        Self::start(move |_| {
            (
                status,
                vec![("Content-Type".into(), "application/json".into())],
                body.clone(),
            )
        })
    }

    /// A server that answers every request with a 302 to `location`.
    pub fn redirect(location: String) -> Self {
        Self::start(move |_| {
            (
                302,
                vec![("Location".into(), location.clone())],
                String::new(),
            )
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// A TCP listener on 127.0.0.1 that accepts connections, counts them, and never sends a
/// byte (the "hung server"). Connections are kept open until the listener is dropped.
pub struct SilentServer {
    pub addr: SocketAddr,
    /// The peer address of every connection accepted so far, in accept order.
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    /// Marker connections made by [`SilentServer::accepted`], kept open so that no later
    /// connection can reuse one's port and be mistaken for it.
    markers: Mutex<Vec<TcpStream>>,
}

impl SilentServer {
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0")
    }

    pub fn start_on(bind: &str) -> Self {
        let listener = TcpListener::bind(bind).unwrap();
        // std listens with a backlog of 128; a probe opening thousands of connections can
        // outrun the accept thread on a busy machine, and a full queue drops handshakes.
        // Listening again on a listening socket only changes its backlog.
        nix::sys::socket::listen(&listener, nix::sys::socket::Backlog::new(4096).unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let peers = Arc::new(Mutex::new(Vec::new()));
        let seen = peers.clone();
        thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            for conn in listener.incoming().flatten() {
                if let Ok(peer) = conn.peer_addr() {
                    seen.lock().unwrap().push(peer);
                }
                held.push(conn);
            }
        });
        Self {
            addr,
            peers,
            markers: Mutex::new(Vec::new()),
        }
    }

    /// The connections accepted from everything that connected before this call.
    ///
    /// A handshake completes in the kernel before the accept thread sees it, so a count
    /// read right after the probe exits can miss the probe's connection. The accept queue
    /// is first in, first out: once a marker connection made now has been accepted, every
    /// earlier one has been too, with no guess at how long that takes.
    pub fn accepted(&self) -> usize {
        let marker = TcpStream::connect(self.addr).unwrap();
        let marker_addr = marker.local_addr().unwrap();
        let mut markers = self.markers.lock().unwrap();
        markers.push(marker);
        let marker_addrs: Vec<SocketAddr> =
            markers.iter().filter_map(|m| m.local_addr().ok()).collect();
        let start = Instant::now();
        loop {
            {
                let peers = self.peers.lock().unwrap();
                if let Some(at) = peers.iter().position(|p| *p == marker_addr) {
                    return peers[..at]
                        .iter()
                        .filter(|p| !marker_addrs.contains(p))
                        .count();
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the marker connection was not accepted"
            );
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A UDP socket on 127.0.0.1 that counts the datagrams it receives.
pub struct UdpCounter {
    pub addr: SocketAddr,
    received: Arc<AtomicUsize>,
    markers: Arc<AtomicUsize>,
}

/// The payload [`UdpCounter::received`] sends itself to know it has read everything
/// sent before; it is not counted.
const UDP_MARKER: &[u8] = b"healthprobe-test-udp-marker";

impl UdpCounter {
    pub fn start() -> Self {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let markers = Arc::new(AtomicUsize::new(0));
        let (count, marks) = (received.clone(), markers.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, _)) = socket.recv_from(&mut buf) {
                if &buf[..n] == UDP_MARKER {
                    marks.fetch_add(1, Ordering::SeqCst);
                } else {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Self {
            addr,
            received,
            markers,
        }
    }

    /// The datagrams received from everything that sent before this call: loopback
    /// delivers a datagram within the sender's own system call, so a marker sent now is
    /// queued after them; once it is read the count is complete, with no guess at how
    /// long delivery takes.
    pub fn received(&self) -> usize {
        let before = self.markers.load(Ordering::SeqCst);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(UDP_MARKER, self.addr).unwrap();
        let start = Instant::now();
        while self.markers.load(Ordering::SeqCst) == before {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the UDP marker did not arrive"
            );
            thread::sleep(Duration::from_millis(2));
        }
        self.received.load(Ordering::SeqCst)
    }
}

/// A loopback port with nothing listening on it, for as long as the test process lives.
///
/// The port stays bound by a socket that never listens: a connect to it is refused, and
/// no server another test starts in parallel can take it (a port merely found free could
/// be, turning "refused" into a reply).
pub fn closed_port() -> SocketAddr {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, socket,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    let addr: SockaddrIn = getsockname(fd.as_raw_fd()).unwrap();
    // Kept open on purpose: the test process's exit releases the port.
    std::mem::forget(fd);
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

/// `healthprobe run <hostile.wasm> mode=MODE extra...`
pub fn hostile(mode: &str, extra: &[&str]) -> Outcome {
    hostile_env(mode, extra, &[])
}

pub fn hostile_env(mode: &str, extra: &[&str], env: &[(&str, &str)]) -> Outcome {
    let wasm = hostile_cwasm();
    let mut args: Vec<std::ffi::OsString> =
        vec!["run".into(), wasm.into(), format!("mode={mode}").into()];
    args.extend(extra.iter().map(Into::into));
    healthprobe_env(args, env)
}

/// A component whose only part is a core module of `funcs` functions of about
/// `body_bytes` bytes of code each (straight-line arithmetic the compiler cannot fold
/// away); it exports nothing healthprobe can run, so it is refused after compiling, and
/// before, if a code cap refuses it.
pub fn synthetic_component(funcs: usize, body_bytes: usize) -> Vec<u8> {
    fn uleb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn section(id: u8, payload: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        uleb(payload.len(), out);
        out.extend_from_slice(payload);
    }
    // (func (param i32) (result i32)) repeating local.get 0, local.get 0, i32.mul,
    // local.set 0; then local.get 0, end.
    const STEP: [u8; 7] = [0x20, 0x00, 0x20, 0x00, 0x6c, 0x21, 0x00];
    let mut code = vec![0x00];
    for _ in 0..body_bytes.saturating_sub(4) / STEP.len() {
        code.extend_from_slice(&STEP);
    }
    code.extend_from_slice(&[0x20, 0x00, 0x0b]);
    let mut body = Vec::new();
    uleb(code.len(), &mut body);
    body.extend_from_slice(&code);

    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 1, 0x7f, 1, 0x7f], &mut module);
    let mut funcs_sec = Vec::new();
    uleb(funcs, &mut funcs_sec);
    funcs_sec.extend(std::iter::repeat_n(0u8, funcs));
    section(3, &funcs_sec, &mut module);
    section(7, &[1, 1, b'f', 0x00, 0], &mut module);
    let mut code_sec = Vec::new();
    uleb(funcs, &mut code_sec);
    for _ in 0..funcs {
        code_sec.extend_from_slice(&body);
    }
    section(10, &code_sec, &mut module);

    let mut component = b"\0asm\x0d\0\x01\0".to_vec();
    section(1, &module, &mut component);
    component
}

/// The JSON line a test harness script (tests/zombies, tests/dns) printed last, or `None`
/// when it had to skip (not root, no namespaces); under `CI=true` a skip fails the test,
/// since it would hide what the harness exists to show.
pub fn harness_result(out: &std::process::Output, what: &str) -> Option<serde_json::Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "harness output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    if let Some(reason) = v.get("skip") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} skipped under CI: {reason}"
        );
        eprintln!("{what} skipped: {reason}");
        return None;
    }
    assert!(v.get("error").is_none(), "harness error: {v}");
    Some(v)
}

/// The path of `program` on `PATH`, if it is there.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}
