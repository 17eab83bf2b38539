//! The bundled `zookeeper` probe: ZooKeeper's four-letter words. `ruok` must answer `imok`
//! (the server runs and is not in an error state), then `srvr` tells the server's mode
//! (leader, follower, observer, standalone), version and counts, and the mode must be the
//! expected one when `mode` is given. Each word is its own connection, which the server
//! closes after answering.

use std::time::Instant;

use healthprobe_sdk::tcp::{self, TcpError, Tls};
use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};

/// The most read of an answer: `srvr`'s is a few hundred bytes.
const MAX_ANSWER: usize = 64 * 1024;

struct ZooKeeper;

impl Probe for ZooKeeper {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "zookeeper",
            env!("CARGO_PKG_VERSION"),
            "Sends ZooKeeper's ruok (expects imok) and srvr (reads the mode, version and \
             counts); with mode, the server's mode must be one of those given. The server must \
             allow both words (4lw.commands.whitelist=ruok,srvr).",
        )
        .param(ParamSpec::required(
            "address",
            "The server's client port as host:port, for example 127.0.0.1:2181.",
        ))
        .param(ParamSpec::optional(
            "mode",
            "Expected mode: leader, follower, observer, standalone, or several separated by \
             commas, for example mode=leader,follower (any member of a healthy ensemble).",
        ))
        .params(Tls::params(false))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let address = params.required_str("address")?.trim().to_string();
        tcp::parse_address(&address)
            .map_err(|reason| CheckError::invalid_param("address", reason))?;
        let modes = params.parse("mode", parse_modes)?;
        let tls = Tls::from_params(params, &address, false)?;
        let start = Instant::now();
        let result = match check(&address, &tls, &budget) {
            Ok(srvr) => verdict(&address, &srvr, modes.as_deref()),
            Err(Fail::Tcp(e)) => e.into_verdict()?,
            Err(Fail::Answer { word, answer }) => {
                CheckResult::unhealthy(explain(&address, word, &answer)).detail("error", "answer")
            }
        };
        Ok(result
            .detail("address", &address)
            .detail("elapsed-ms", start.elapsed().as_millis()))
    }
}

healthprobe_sdk::export_probe!(ZooKeeper);

const MODES: [&str; 4] = ["leader", "follower", "observer", "standalone"];

fn parse_modes(text: &str) -> Result<Vec<String>, String> {
    text.split(',')
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            if MODES.contains(&m.as_str()) {
                Ok(m)
            } else {
                Err(format!(
                    "expected leader, follower, observer or standalone (or several, separated \
                     by commas), got '{m}'"
                ))
            }
        })
        .collect()
}

enum Fail {
    Tcp(TcpError),
    /// The server answered `word` with something else than it should.
    Answer {
        word: &'static str,
        answer: String,
    },
}

/// Sends `word` on a connection of its own and reads the answer to the end.
fn ask(address: &str, tls: &Tls, word: &'static str, budget: &Budget) -> Result<String, Fail> {
    let mut conn = tcp::connect_with(address, tls, budget).map_err(Fail::Tcp)?;
    conn.write_all(word.as_bytes()).map_err(Fail::Tcp)?;
    let answer = conn.read_until(b"", MAX_ANSWER).map_err(|e| match e {
        TcpError::Timeout { .. } => Fail::Tcp(TcpError::timeout(
            address,
            match word {
                "ruok" => "waiting for imok from",
                _ => "waiting for the answer to srvr from",
            },
            Some(budget),
        )),
        other => Fail::Tcp(other),
    })?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn check(address: &str, tls: &Tls, budget: &Budget) -> Result<String, Fail> {
    let ruok = ask(address, tls, "ruok", budget)?;
    if ruok.trim() != "imok" {
        return Err(Fail::Answer {
            word: "ruok",
            answer: ruok,
        });
    }
    let srvr = ask(address, tls, "srvr", budget)?;
    if !srvr.contains("Mode: ") {
        return Err(Fail::Answer {
            word: "srvr",
            answer: srvr,
        });
    }
    Ok(srvr)
}

/// What an unexpected answer means, in words.
fn explain(address: &str, word: &str, answer: &str) -> String {
    let answer = answer.trim();
    if answer.contains("not in the whitelist") {
        return format!(
            "{address} does not allow the {word} command; add it to the server's \
             4lw.commands.whitelist (for example 4lw.commands.whitelist=ruok,srvr)"
        );
    }
    if answer.contains("not currently serving requests") {
        return format!("{address} is not serving requests (no quorum?): {answer}");
    }
    if answer.is_empty() {
        return format!(
            "{address} closed the connection without answering {word}; is this ZooKeeper?"
        );
    }
    let shown: String = answer.chars().take(80).collect();
    format!(
        "{address} answered {word} with \"{}\"; is this ZooKeeper?",
        shown.escape_default()
    )
}

/// The verdict from `srvr`'s answer.
fn verdict(address: &str, srvr: &str, modes: Option<&[String]>) -> CheckResult {
    let field = |name: &str| {
        srvr.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let mode = field("Mode: ").unwrap_or_default();
    let version = field("Zookeeper version: ")
        .map(|v| v.split([',', '-']).next().unwrap_or_default().to_string());
    let mut result = match modes {
        Some(wanted) if !wanted.contains(&mode) => CheckResult::unhealthy(format!(
            "{address} is {mode}, expected {}",
            wanted.join(" or ")
        ))
        .detail("error", "mode"),
        _ => CheckResult::healthy(format!(
            "imok from {address}, {mode}{}",
            version
                .as_deref()
                .map(|v| format!(", ZooKeeper {v}"))
                .unwrap_or_default()
        )),
    };
    result = result.detail("mode", mode);
    if let Some(version) = version {
        result = result.detail("server-version", version);
    }
    for (name, detail) in [
        ("Connections: ", "connections"),
        ("Outstanding: ", "outstanding"),
        ("Node count: ", "node-count"),
    ] {
        if let Some(n) = field(name).and_then(|v| v.parse::<u64>().ok()) {
            result = result.detail(detail, n);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthprobe_sdk::Status;

    const SRVR: &str = "Zookeeper version: 3.8.0-5a02a05eddb59aee6ac762f7ea82e92a68eb9c0f, built on 2022-02-25 08:49 UTC\n\
        Latency min/avg/max: 0/0.0/0\nReceived: 2\nSent: 1\nConnections: 1\nOutstanding: 0\n\
        Zxid: 0x0\nMode: standalone\nNode count: 5\n";

    #[test]
    fn srvr_gives_the_mode_and_counts() {
        let r = verdict("a:1", SRVR, None);
        assert_eq!(r.status, Status::Healthy);
        assert_eq!(r.message, "imok from a:1, standalone, ZooKeeper 3.8.0");
        assert_eq!(r.get_detail("mode"), Some("standalone"));
        let wanted = parse_modes("leader, follower").unwrap();
        let r = verdict("a:1", SRVR, Some(&wanted));
        assert_eq!(r.status, Status::Unhealthy);
        assert_eq!(r.message, "a:1 is standalone, expected leader or follower");
        assert!(parse_modes("boss").is_err());
    }

    #[test]
    fn odd_answers_are_explained() {
        let e = explain(
            "a:1",
            "ruok",
            "ruok is not executed because it is not in the whitelist.\n",
        );
        assert!(e.contains("4lw.commands.whitelist"), "{e}");
        let e = explain("a:1", "ruok", "-ERR unknown command\r\n");
        assert!(e.ends_with("is this ZooKeeper?"), "{e}");
    }
}
