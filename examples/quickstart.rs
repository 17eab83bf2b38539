//! The quick-start demo: starts a small HTTP service on loopback, then runs the bundled
//! `http` probe against it through the same code path as the `healthprobe` binary, while
//! the service is healthy, failing, and hung.
//!
//! Run it with `cargo run --example quickstart`.

use std::io::Read;
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone, Copy)]
enum Mode {
    Up,
    Down,
    Hung,
}

fn main() {
    let mode = Arc::new(Mutex::new(Mode::Up));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let state = mode.clone();
    std::thread::spawn(move || {
        let mut hung = Vec::new();
        for mut conn in listener.incoming().flatten() {
            let current = *state.lock().unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let (status, body) = match current {
                Mode::Up => ("200 OK", r#"{"status":"UP"}"#),
                Mode::Down => ("503 Service Unavailable", r#"{"status":"DOWN"}"#),
                Mode::Hung => {
                    // Accept and never answer: what a wedged JVM looks like from outside.
                    hung.push(conn);
                    continue;
                }
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = std::io::Write::write_all(&mut conn, reply.as_bytes());
        }
    });

    let url = format!("url=http://{addr}/health");
    for (label, m) in [
        ("service up", Mode::Up),
        ("service failing", Mode::Down),
        ("service hung", Mode::Hung),
    ] {
        *mode.lock().unwrap() = m;
        let args = [
            "healthprobe",
            "run",
            "http",
            &url,
            "expect-json=/status=UP",
            "--timeout",
            "1s",
        ];
        println!("\n# {label}\n$ {}", args.join(" "));
        let start = Instant::now();
        let code = healthprobe::cli::run_from(args.map(Into::into)).expect("run the probe");
        let status = (0u8..=3)
            .find(|c| ExitCode::from(*c) == code)
            .unwrap_or(255);
        println!("exit status {status}, {} ms", start.elapsed().as_millis());
    }
}
