//! `fake-zipkin`: a stand-in for a Zipkin-like JVM service, for the Docker example.
//!
//! ```text
//! fake-zipkin [serve] [PORT]   serve HTTP on 127.0.0.1:PORT (default 9411)
//! fake-zipkin hang [PORT]      ask the server on 127.0.0.1:PORT to wedge itself
//! ```
//!
//! The port can also come from `FAKE_ZIPKIN_PORT`; an argument wins over the variable.
//!
//! The server answers `GET /health` with `200 {"status":"UP"}`. After it receives
//! `GET /hang` (which it still answers, so that `docker exec … /fake-zipkin hang` returns),
//! it keeps accepting connections and reading requests but never answers another one: a
//! wedged service, as a JVM stuck in a long GC pause or a deadlock looks from outside.
//! Like a server's idle timeout, it closes such a connection, still unanswered, after
//! `FAKE_ZIPKIN_DROP_AFTER` seconds (default 10; `0` holds it until the client gives up):
//! that is what lets a client without a timeout of its own (BusyBox wget in Debian's
//! busybox-static, built without `-T`) exit.
//!
//! Run as a container's PID 1 it behaves like a JVM there: it never calls `wait`, and it
//! leaves `SIGCHLD` at its default disposition (the Rust standard library does not touch
//! it), so any process re-parented to it stays a `<defunct>` zombie forever. It starts
//! no process itself.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const DEFAULT_PORT: u16 = 9411;
const DEFAULT_DROP_AFTER_SECS: u64 = 10;
const USAGE: &str = "usage: fake-zipkin [serve] [PORT] | fake-zipkin hang [PORT]
  PORT also from FAKE_ZIPKIN_PORT (default 9411); once hung, unanswered connections are
  closed after FAKE_ZIPKIN_DROP_AFTER seconds (default 10, 0 = never)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.first().map(String::as_str) {
        Some("serve") | Some("hang") => (args[0].as_str(), &args[1..]),
        Some("-h") | Some("--help") | Some("help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => ("serve", &args[..]),
    };
    let port = match port(rest) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("fake-zipkin: {e}\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    let result = match command {
        "hang" => hang(port),
        _ => serve(port),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-zipkin {command}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn port(rest: &[String]) -> Result<u16, String> {
    let text = match rest {
        [] => match std::env::var("FAKE_ZIPKIN_PORT") {
            Ok(v) if !v.is_empty() => v,
            _ => return Ok(DEFAULT_PORT),
        },
        [one] => one.clone(),
        _ => return Err(format!("too many arguments: {rest:?}")),
    };
    text.parse().map_err(|_| format!("not a port: {text:?}"))
}

fn drop_after() -> io::Result<Option<Duration>> {
    let secs = match std::env::var("FAKE_ZIPKIN_DROP_AFTER") {
        Ok(v) if !v.is_empty() => v.parse::<u64>().map_err(|_| {
            io::Error::other(format!(
                "FAKE_ZIPKIN_DROP_AFTER is not a number of seconds: {v:?}"
            ))
        })?,
        _ => DEFAULT_DROP_AFTER_SECS,
    };
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

fn serve(port: u16) -> io::Result<()> {
    let drop_after = drop_after()?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!(
        "fake-zipkin: listening on http://127.0.0.1:{port} (pid {}); GET /health, GET /hang",
        std::process::id()
    );
    let hung = Arc::new(AtomicBool::new(false));
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let hung = Arc::clone(&hung);
                thread::spawn(move || {
                    let _ = handle(stream, &hung, drop_after);
                });
            }
            Err(e) => eprintln!("fake-zipkin: accept failed: {e}"),
        }
    }
    Ok(())
}

/// One request per connection (`Connection: close`), as health checkers send them.
fn handle(stream: TcpStream, hung: &AtomicBool, drop_after: Option<Duration>) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(());
    }
    // Skip the headers; bodies are not expected.
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
    }
    if hung.load(Ordering::SeqCst) {
        return wedge(reader, drop_after);
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut out = stream;
    match (method, path) {
        ("GET", "/health") => respond(
            &mut out,
            "200 OK",
            "application/json",
            "{\"status\":\"UP\"}",
        ),
        ("GET", "/hang") => {
            hung.store(true, Ordering::SeqCst);
            println!("fake-zipkin: GET /hang received; no request will be answered from now on");
            respond(
                &mut out,
                "200 OK",
                "text/plain",
                "fake-zipkin is hanging now: no request will be answered from now on\n",
            )
        }
        _ => respond(&mut out, "404 Not Found", "text/plain", "not found\n"),
    }
}

/// Never answer: hold the connection open, discarding whatever arrives, until the client
/// gives up and closes it, or until `drop_after` has passed (then close it unanswered).
fn wedge(mut reader: BufReader<TcpStream>, drop_after: Option<Duration>) -> io::Result<()> {
    let deadline = drop_after.map(|d| Instant::now() + d);
    let mut buf = [0u8; 1024];
    loop {
        let timeout = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Ok(()),
            },
            None => None,
        };
        reader.get_ref().set_read_timeout(timeout)?;
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn respond(out: &mut TcpStream, status: &str, content_type: &str, body: &str) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

fn hang(port: u16) -> io::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /hang HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    match stream.read_to_string(&mut response) {
        Ok(_) => {}
        Err(e) if is_timeout(&e) => {
            return Err(io::Error::other(format!(
                "no answer from {addr} within 5 s (already hanging?)"
            )));
        }
        Err(e) => return Err(e),
    }
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    print!("{body}");
    Ok(())
}
