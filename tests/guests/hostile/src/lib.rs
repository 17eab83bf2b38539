//! A probe that misbehaves on purpose. `mode=` picks the misbehaviour; every mode is one
//! attack the host must contain.

use std::hint::black_box;
use std::io::{Read, Write};
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
                "spin | memory | panic | sleep | flood | tcp-read | http-loop | echo",
            ))
            .param(ParamSpec::optional("address", "host:port for tcp-read"))
            .param(ParamSpec::optional("url", "URL for http-loop"))
            .param(ParamSpec::optional("value", "text for echo").repeatable())
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
            "echo" => Ok(CheckResult::healthy(params.list("value").join("|"))
                .detail("count", params.list("value").len())),
            other => Err(CheckError::invalid_param(
                "mode",
                format!("unknown mode '{other}'"),
            )),
        }
    }
}

healthprobe_sdk::export_probe!(Hostile);
