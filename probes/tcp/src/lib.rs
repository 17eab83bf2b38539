//! The bundled `tcp` probe: healthy when a TCP connection to `address` is accepted and,
//! if `send` / `expect` steps are given, the conversation goes as scripted (banner
//! checks, request/response pairs), in the manner of blackbox_exporter's `query_response`.

mod script;

use std::time::Instant;

use healthprobe_sdk::tcp::{self, TcpConn, TcpError, Tls};
use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};

use script::{MAX_PENDING, Miss, Step, quote};

/// Most received bytes quoted in a message (escaped, so up to four times as many characters).
const QUOTE_BYTES: usize = 200;

/// Most bytes of a matched line kept in a detail or the healthy message.
const MATCH_BYTES: usize = 80;

struct TcpProbe;

impl Probe for TcpProbe {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "tcp",
            env!("CARGO_PKG_VERSION"),
            "Opens a TCP connection and reports whether it is accepted; optional send/expect steps check a banner or a reply.",
        )
        .param(ParamSpec::required(
            "address",
            "Where to connect, as host:port, for example 127.0.0.1:6379 or [::1]:5432.",
        ))
        .param(
            ParamSpec::optional(
                "send",
                "Bytes to send, run in command-line order with the expect steps: text with the escapes \\r \\n \\t \\\\ \\0 \\xHH (nothing is added, so end a line with \\r\\n), or hex: and hex digits; for example send='PING\\r\\n' or send=hex:50494e470d0a.",
            )
            .repeatable(),
        )
        .param(
            ParamSpec::optional(
                "expect",
                "What the server must send next: a regular expression over the bytes received since the previous match (ASCII classes, at most 64 KiB), or hex: and the exact bytes; for example expect='^SSH-2.0-' or expect='^\\+PONG'. A regex match uses up the rest of its line, so ^ anchors at the next line; (?m)^ matches at any line.",
            )
            .repeatable(),
        )
        .params(Tls::params(false))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let address = params.required_str("address")?.trim();
        tcp::parse_address(address)
            .map_err(|reason| CheckError::invalid_param("address", reason))?;
        let tls = Tls::from_params(params, address, false)?;
        let steps = Step::parse_all(params.pairs().iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .map_err(|(name, reason)| CheckError::invalid_param(name, reason))?;

        let start = Instant::now();
        let mut conn = match tcp::connect_with(address, &tls, &budget) {
            Ok(conn) => conn,
            Err(e) => {
                return Ok(e
                    .into_verdict()?
                    .detail("address", address)
                    .detail("elapsed-ms", start.elapsed().as_millis()));
            }
        };
        let peer = conn.peer_addr();
        let mut talk = Conversation::default();
        let failure = talk.run(&mut conn, &steps).err();
        let elapsed_ms = start.elapsed().as_millis();

        let result = match failure {
            None => CheckResult::healthy(healthy_message(address, &steps, &talk, elapsed_ms)),
            Some(failure) => failure.verdict(address),
        };
        let mut result = result
            .detail("address", address)
            .detail("peer", peer.to_string())
            .detail("elapsed-ms", elapsed_ms);
        if tls != Tls::Off {
            result = result.detail("tls", true);
        }
        if !steps.is_empty() {
            result = result
                .detail("steps", steps.len())
                .detail("bytes-sent", talk.sent)
                .detail("bytes-received", talk.received);
        }
        for (i, line) in talk.matched.iter().enumerate() {
            result = result.detail(
                format!("matched-{}", i + 1),
                quote(trim_eol(line), MATCH_BYTES),
            );
        }
        Ok(result)
    }
}

healthprobe_sdk::export_probe!(TcpProbe);

/// The state of a conversation: what was sent, received and matched so far.
#[derive(Default)]
struct Conversation {
    /// Bytes received since the last match.
    pending: Vec<u8>,
    /// The line of each match, in order.
    matched: Vec<Vec<u8>>,
    sent: usize,
    received: usize,
}

/// The step that went wrong and how.
struct Failure {
    /// 1-based, as the operator counts the steps.
    step: usize,
    kind: FailureKind,
}

enum FailureKind {
    /// Writing `bytes` failed.
    Send { bytes: Vec<u8>, error: TcpError },
    /// `pattern` did not match; `got` is what arrived since the previous match.
    Expect {
        pattern: String,
        miss: Miss,
        got: Vec<u8>,
    },
}

impl Conversation {
    /// Run `steps` in order on `conn`, stopping at the first that fails.
    fn run(&mut self, conn: &mut TcpConn, steps: &[Step]) -> Result<(), Failure> {
        for (i, step) in steps.iter().enumerate() {
            let fail = |kind| Failure { step: i + 1, kind };
            match step {
                Step::Send(bytes) => {
                    conn.write_all(bytes).map_err(|error| {
                        fail(FailureKind::Send {
                            bytes: bytes.clone(),
                            error,
                        })
                    })?;
                    self.sent += bytes.len();
                }
                Step::Expect(pattern) => {
                    let received = &mut self.received;
                    let outcome = script::expect(&mut self.pending, pattern, |max| {
                        let chunk = conn.read_some(max)?;
                        *received += chunk.len();
                        Ok(chunk)
                    });
                    match outcome {
                        Ok(line) => self.matched.push(line),
                        Err(miss) => {
                            return Err(fail(FailureKind::Expect {
                                pattern: pattern.to_string(),
                                miss,
                                got: std::mem::take(&mut self.pending),
                            }));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Failure {
    /// The unhealthy verdict, quoting what the server sent.
    fn verdict(self, address: &str) -> CheckResult {
        let (message, kind) = match self.kind {
            FailureKind::Send { bytes, error } => {
                let what = quote(&bytes, QUOTE_BYTES);
                let message = match &error {
                    TcpError::Timeout { .. } => format!("timeout sending '{what}' to {address}"),
                    e => format!("{e} while sending '{what}'"),
                };
                (message, error.kind())
            }
            FailureKind::Expect { pattern, miss, got } => {
                let got_text = if got.is_empty() {
                    "nothing received".to_string()
                } else {
                    format!("got {} bytes: '{}'", got.len(), quote(&got, QUOTE_BYTES))
                };
                match miss {
                    Miss::Closed => (
                        format!(
                            "{address} closed the connection before {pattern} matched ({got_text})"
                        ),
                        "closed",
                    ),
                    Miss::Full => (
                        format!(
                            "no match for {pattern} in the first {MAX_PENDING} bytes from {address} ({got_text})"
                        ),
                        "no-match",
                    ),
                    Miss::Read(TcpError::Timeout { .. }) => (
                        format!("timeout waiting for {pattern} from {address} ({got_text})"),
                        "timeout",
                    ),
                    Miss::Read(e) => (
                        format!("{e} while waiting for {pattern} ({got_text})"),
                        e.kind(),
                    ),
                }
            }
        };
        CheckResult::unhealthy(message)
            .detail("error", kind)
            .detail("step", self.step)
    }
}

/// What was verified: the connection, and the matches if there were expect steps.
fn healthy_message(address: &str, steps: &[Step], talk: &Conversation, elapsed_ms: u128) -> String {
    let patterns: Vec<String> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Expect(p) => Some(p.to_string()),
            Step::Send(_) => None,
        })
        .collect();
    match talk.matched.last() {
        Some(last) => format!(
            "connected to {address} and matched {} in {elapsed_ms} ms; got '{}'",
            patterns.join(", "),
            quote(trim_eol(last), MATCH_BYTES)
        ),
        None if talk.sent > 0 => format!(
            "connected to {address} and sent {} bytes in {elapsed_ms} ms",
            talk.sent
        ),
        None => format!("connected to {address} in {elapsed_ms} ms"),
    }
}

/// `line` without its line ending.
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthprobe_sdk::{Status, Value};
    use script::Pattern;

    fn run(address: &str) -> Result<CheckResult, CheckError> {
        TcpProbe::check(
            &Params::from_pairs([("address", address)]),
            Budget::new(5_000),
        )
    }

    #[test]
    fn describe_documents_address() {
        let info = TcpProbe::describe();
        assert_eq!(info.name, "tcp");
        let names: Vec<_> = info.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["address", "send", "expect", "tls", "server-name"]);
        assert!(info.params[0].required);
        assert!(info.params[1].repeatable && info.params[2].repeatable);
        assert!(
            info.params
                .iter()
                .all(|p| p.description.contains("for example"))
        );
    }

    #[test]
    fn bad_steps_name_the_parameter() {
        for (name, value) in [
            ("send", "PING\\q"),
            ("send", "hex:5"),
            ("expect", "(unclosed"),
            ("expect", "hex:zz"),
        ] {
            let params = Params::from_pairs([("address", "127.0.0.1:1"), (name, value)]);
            match TcpProbe::check(&params, Budget::new(1000)) {
                Err(CheckError::InvalidParam(p)) => assert_eq!(p.name, name, "{value}"),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn messages_quote_what_was_received() {
        let pattern = Pattern::parse("^\\+PONG").unwrap().to_string();
        let closed = Failure {
            step: 2,
            kind: FailureKind::Expect {
                pattern: pattern.clone(),
                miss: Miss::Closed,
                got: b"-NOAUTH Authentication required.\r\n".to_vec(),
            },
        }
        .verdict("127.0.0.1:6379");
        assert_eq!(closed.status, Status::Unhealthy);
        assert_eq!(
            closed.message,
            "127.0.0.1:6379 closed the connection before /^\\+PONG/ matched \
             (got 34 bytes: '-NOAUTH Authentication required.\\r\\n')"
        );
        assert_eq!(closed.get_detail("error"), Some("closed"));
        assert_eq!(closed.detail_value("step"), Some(&Value::Integer(2)));

        let timeout = Failure {
            step: 1,
            kind: FailureKind::Expect {
                pattern: Pattern::parse("^220").unwrap().to_string(),
                miss: Miss::Read(TcpError::timeout("127.0.0.1:25", "reading", None)),
                got: Vec::new(),
            },
        }
        .verdict("127.0.0.1:25");
        assert_eq!(
            timeout.message,
            "timeout waiting for /^220/ from 127.0.0.1:25 (nothing received)"
        );
        assert_eq!(timeout.get_detail("error"), Some("timeout"));
    }

    #[test]
    fn a_scripted_conversation() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"220 test ESMTP\r\n").unwrap();
            let mut buf = [0; 6];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"QUIT\r\n");
            s.write_all(b"221 Bye\r\n").unwrap();
        });
        let params = Params::from_pairs([
            ("address", address.as_str()),
            ("expect", "^220"),
            ("send", "QUIT\\r\\n"),
            ("expect", "^221"),
        ]);
        let ok = TcpProbe::check(&params, Budget::new(5_000)).unwrap();
        server.join().unwrap();
        assert_eq!(ok.status, Status::Healthy, "{}", ok.message);
        assert!(
            ok.message.starts_with(&format!(
                "connected to {address} and matched /^220/, /^221/ in "
            )),
            "{}",
            ok.message
        );
        assert!(ok.message.ends_with("; got '221 Bye'"), "{}", ok.message);
        assert_eq!(ok.get_detail("matched-1"), Some("220 test ESMTP"));
    }

    #[test]
    fn address_without_port_is_invalid() {
        for bad in ["localhost", "127.0.0.1:", "::1:80", "host:99999"] {
            match run(bad) {
                Err(CheckError::InvalidParam(p)) => assert_eq!(p.name, "address"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    // These use the native socket stack; the same code runs over WASI sockets.
    #[test]
    fn accepted_and_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let ok = run(&address).unwrap();
        assert_eq!(ok.status, Status::Healthy);
        assert!(
            ok.message
                .starts_with(&format!("connected to {address} in ")),
            "{}",
            ok.message
        );
        drop(listener);

        let refused = run(&address).unwrap();
        assert_eq!(refused.status, Status::Unhealthy);
        assert_eq!(refused.message, format!("connection to {address} refused"));
        assert_eq!(refused.get_detail("error"), Some("refused"));
    }
}
