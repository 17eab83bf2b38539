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
use std::time::Duration;

const DEFAULT_PORT: u16 = 9411;
const USAGE: &str = "usage: fake-zipkin [serve] [PORT] | fake-zipkin hang [PORT]  (PORT also from FAKE_ZIPKIN_PORT; default 9411)";

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

fn serve(port: u16) -> io::Result<()> {
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
                    let _ = handle(stream, &hung);
                });
            }
            Err(e) => eprintln!("fake-zipkin: accept failed: {e}"),
        }
    }
    Ok(())
}

/// One request per connection (`Connection: close`), as health checkers send them.
fn handle(stream: TcpStream, hung: &AtomicBool) -> io::Result<()> {
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
        return wedge(reader);
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
/// gives up and closes it.
fn wedge(mut reader: BufReader<TcpStream>) -> io::Result<()> {
    reader.get_ref().set_read_timeout(None)?;
    let mut buf = [0u8; 1024];
    while reader.read(&mut buf)? > 0 {}
    Ok(())
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
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
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
