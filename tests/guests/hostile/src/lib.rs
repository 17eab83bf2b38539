//! A probe that misbehaves on purpose. `mode=` picks the misbehaviour; every mode is one
//! attack the host must contain.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::ToSocketAddrs;
use std::time::Duration;

use healthprobe_sdk::{
    Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo, http, tcp,
};

struct Hostile;

impl Probe for Hostile {
    fn describe() -> ProbeInfo {
        ProbeInfo::new("hostile", "0.0.0", "Misbehaves on purpose (test only).")
            .param(ParamSpec::required(
                "mode",
                "spin | memory | panic | sleep | flood | tcp-read | http-loop | echo \
                 | connect | resolve | read-file | list-dir | write-file | env | udp | insecure \
                 | recurse | big-message | sockets | random | details | leak | leak-error",
            ))
            .param(ParamSpec::optional(
                "address",
                "host:port for tcp-read, connect, udp",
            ))
            .param(ParamSpec::optional("url", "URL for http-loop, insecure"))
            .param(ParamSpec::optional("name", "host name for resolve"))
            .param(ParamSpec::optional(
                "path",
                "path for read-file, list-dir, write-file",
            ))
            .param(ParamSpec::optional("value", "text for echo, leak").repeatable())
            .param(ParamSpec::optional(
                "password",
                "a secret by its name, for leak",
            ))
            .param(ParamSpec::optional(
                "count",
                "connections for sockets, bytes for random, details for details",
            ))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        match params.required_str("mode")? {
            // Pure computation: never reaches a host call, only epochs/fuel can stop it.
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    chunk[0] = 1;
                    hoard.push(black_box(chunk));
                }
            }
            "panic" => panic!("the hostile probe gives up"),
            // Blocks in a host call (WASI monotonic clock) for far longer than any budget.
            "sleep" => {
                std::thread::sleep(Duration::from_secs(3600));
                Ok(CheckResult::healthy("woke up"))
            }
            "flood" => {
                // 64 KiB blocks of 64 lines each, 100 MiB per stream.
                let mut block = vec![b'x'; 64 << 10];
                for line_end in block.iter_mut().skip(1023).step_by(1024) {
                    *line_end = b'\n';
                }
                let mut out = std::io::stdout();
                let mut err = std::io::stderr();
                for _ in 0..1600 {
                    out.write_all(&block).ok();
                    err.write_all(&block).ok();
                }
                Ok(CheckResult::healthy("flooded 100 MB to stdout and stderr"))
            }
            // Blocks reading from a peer that never writes.
            "tcp-read" => {
                let address = params.required_str("address")?;
                let conn = tcp::connect(address, &budget)
                    .map_err(|e| CheckError::invalid_config(e.to_string()))?;
                let mut stream = conn.into_stream();
                let mut buf = [0u8; 16];
                let n = stream.read(&mut buf).unwrap_or(0);
                Ok(CheckResult::unhealthy(format!("read {n} bytes")))
            }
            // Spins between host HTTP calls: each call returns, the loop never ends.
            "http-loop" => {
                let url = params.required_str("url")?;
                loop {
                    let _ = black_box(http::Request::get(url).send());
                }
            }
            // The sandbox escapes: each reports "escaped: …" (healthy) if it got through and
            // "denied: …" (unhealthy) if the host stopped it.
            "connect" => {
                let address = params.required_str("address")?;
                Ok(verdict(
                    tcp::connect(address, &budget).map(|_| format!("connected to {address}")),
                ))
            }
            "resolve" => {
                let name = params.required_str("name")?;
                Ok(verdict(
                    (name, 80)
                        .to_socket_addrs()
                        .map(|a| format!("resolved {name} to {:?}", a.collect::<Vec<_>>()))
                        .map_err(|e| format!("resolving {name}: {e}")),
                ))
            }
            "read-file" => {
                let path = params.required_str("path")?;
                Ok(verdict(
                    std::fs::read(path)
                        .map(|b| format!("read {} bytes of {path}", b.len()))
                        .map_err(|e| format!("reading {path}: {e}")),
                ))
            }
            "list-dir" => {
                let path = params.required_str("path")?;
                Ok(verdict(
                    std::fs::read_dir(path)
                        .map(|d| format!("listed {} entries of {path}", d.count()))
                        .map_err(|e| format!("listing {path}: {e}")),
                ))
            }
            "write-file" => {
                let path = params.required_str("path")?;
                Ok(verdict(
                    std::fs::write(path, b"pwned")
                        .map(|()| format!("wrote {path}"))
                        .map_err(|e| format!("writing {path}: {e}")),
                ))
            }
            "env" => {
                let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
                Ok(if vars.is_empty() {
                    CheckResult::unhealthy("denied: no environment variables visible")
                } else {
                    CheckResult::healthy(format!("escaped: saw {}", vars.join(" ")))
                })
            }
            "udp" => {
                let address = params.required_str("address")?;
                Ok(verdict(
                    std::net::UdpSocket::bind("0.0.0.0:0")
                        .and_then(|s| s.send_to(b"ping", address))
                        .map(|n| format!("sent {n} bytes to {address}"))
                        .map_err(|e| format!("UDP to {address}: {e}")),
                ))
            }
            "insecure" => {
                let url = params.required_str("url")?;
                Ok(verdict(http::Request::get(url).insecure(true).send().map(
                    |r| format!("HTTP {} without TLS verification", r.status),
                )))
            }
            "recurse" => Ok(CheckResult::healthy(format!(
                "depth {}",
                recurse(0, &mut [0u8; 64])
            ))),
            "big-message" => {
                Ok(CheckResult::unhealthy("x".repeat(1 << 20)).detail("big", "y".repeat(1 << 20)))
            }
            // Holds `count` connections open, then waits far past any budget: the host must
            // cap the sockets and still end on time with all of them open.
            "sockets" => {
                let address = params.required_str("address")?;
                let count = params
                    .required_parse("count", |t| t.parse::<usize>().map_err(|e| e.to_string()))?;
                let mut held = Vec::with_capacity(count);
                for i in 0..count {
                    match tcp::connect(address, &budget) {
                        Ok(conn) => held.push(conn),
                        Err(e) => {
                            return Ok(CheckResult::unhealthy(format!(
                                "connection {} of {count}: {e}",
                                i + 1
                            )));
                        }
                    }
                }
                black_box(&held);
                std::thread::sleep(Duration::from_secs(3600));
                Ok(CheckResult::healthy(format!("held {count} connections")))
            }
            // One request for `count` random bytes, which the host allocates.
            "random" => {
                let count = params
                    .required_parse("count", |t| t.parse::<u64>().map_err(|e| e.to_string()))?;
                let bytes = wasi::random::random::get_random_bytes(count);
                Ok(CheckResult::healthy(format!(
                    "got {} random bytes",
                    bytes.len()
                )))
            }
            // An answer with `count` numeric details: the host bounds what it renders.
            "details" => {
                let count = params
                    .required_parse("count", |t| t.parse::<usize>().map_err(|e| e.to_string()))?;
                let mut result = CheckResult::healthy(format!("{count} details"));
                for i in 0..count {
                    result = result.detail(format!("detail-{i}"), i);
                }
                Ok(result)
            }
            "echo" => Ok(CheckResult::healthy(params.list("value").join("|"))
                .detail("count", params.list("value").len())),
            // Puts every value it was given, secrets included, everywhere a probe can.
            "leak" => {
                let mut given = params.list("value");
                given.extend(params.str("password"));
                let all = given.join(" ");
                println!("stdout: {all}");
                eprintln!("stderr: {all}");
                let mut result = CheckResult::unhealthy(format!("leaking {all}"));
                for (i, v) in given.iter().enumerate() {
                    result = result.detail(format!("value-{i}"), *v).detail(*v, i);
                }
                Ok(result)
            }
            "leak-error" => Err(CheckError::invalid_param(
                "value",
                format!("'{}' is not allowed", params.list("value").join(" ")),
            )),
            other => Err(CheckError::invalid_param(
                "mode",
                format!("unknown mode '{other}'"),
            )),
        }
    }
}

/// Unbounded recursion with a frame the optimiser cannot remove.
#[allow(unconditional_recursion)]
fn recurse(depth: u64, frame: &mut [u8; 64]) -> u64 {
    frame[(depth % 64) as usize] = depth as u8;
    let mut next = *black_box(frame);
    black_box(recurse(depth + 1, &mut next)) + u64::from(next[0])
}

fn verdict<E: std::fmt::Display>(r: Result<String, E>) -> CheckResult {
    match r {
        Ok(what) => CheckResult::healthy(format!("escaped: {what}")),
        Err(e) => CheckResult::unhealthy(format!("denied: {e}")),
    }
}

healthprobe_sdk::export_probe!(Hostile);
