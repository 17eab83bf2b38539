//! The quick-start demo: starts a small HTTP service on loopback, then runs the real
//! `healthprobe` binary's bundled `http` probe against it while the service is healthy,
//! failing, and hung.
//!
//! Run it with `scripts/quickstart`, which builds the binary and this demo once and passes
//! the binary's path as the only argument.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone, Copy)]
enum Mode {
    Up,
    Down,
    Hung,
}

fn main() {
    // The binary built beside this demo (`target/debug/healthprobe`), unless named.
    let bin = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("the demo's own path");
            exe.parent()
                .expect("the demo lives in target/<profile>")
                .join("healthprobe")
        });
    assert!(
        bin.is_file(),
        "no healthprobe binary at {}; run scripts/quickstart",
        bin.display()
    );
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
            "run",
            "http",
            &url,
            "expect-json=/status=UP",
            "--timeout",
            "1s",
        ];
        println!("\n# {label}\n$ healthprobe {}", args.join(" "));
        let start = Instant::now();
        let out = Command::new(&bin)
            .args(args)
            .output()
            .expect("run healthprobe");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        let status = out
            .status
            .code()
            .map_or_else(|| out.status.to_string(), |c| c.to_string());
        println!("exit status {status}, {} ms", start.elapsed().as_millis());
    }
}
