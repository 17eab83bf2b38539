//! The bundled `smtp` probe: the greeting (220), EHLO (250), optionally STARTTLS (220, then
//! EHLO again over TLS) or TLS from the first byte (SMTPS), optionally AUTH PLAIN (235),
//! then QUIT. Every reply must be the 2xx the protocol expects; any other is reported with
//! the server's own code and words. SMTP is lines of text, read here with the SDK's
//! framing; no SMTP client crate runs without threads or tokio.

use std::time::Instant;

use base64::Engine as _;
use healthprobe_sdk::tcp::{self, FrameError, Framed, Link, TcpConn, TcpError, Tls};
use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};

/// The longest reply read: an EHLO reply lists a dozen extensions.
const MAX_REPLY: usize = 64 * 1024;

struct Smtp;

impl Probe for Smtp {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "smtp",
            env!("CARGO_PKG_VERSION"),
            "Talks to an SMTP server: greeting (220), EHLO, optionally STARTTLS or TLS from \
             the first byte, optionally AUTH PLAIN, then QUIT; every reply must be the 2xx \
             expected, and any other is reported with the server's code and words.",
        )
        .param(ParamSpec::required(
            "address",
            "The server as host:port, for example 127.0.0.1:25 (587 for submission).",
        ))
        .param(ParamSpec::optional("helo", "The name given in EHLO.").default("healthprobe.local"))
        .param(ParamSpec::optional(
            "username",
            "Log in with AUTH PLAIN as this user (over TLS: give tls=require or \
             implicit-tls=true), for example username=monitor.",
        ))
        .param(ParamSpec::optional(
            "password",
            "That user's password; needs username. Give it by reference, for example \
             password@file=/run/secrets/smtp.",
        ))
        .param(Tls::implicit_param(465))
        .params(Tls::params(true))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let config = Config::from_params(params)?;
        let start = Instant::now();
        let outcome = run(&config, &budget);
        let elapsed_ms = start.elapsed().as_millis();
        let result = match outcome {
            Ok(done) => {
                let mut message = format!("{} from {}", done.greeting, config.address);
                if done.tls {
                    message.push_str(", over TLS");
                }
                if config.username.is_some() {
                    message.push_str(", logged in");
                }
                CheckResult::healthy(format!("{message} in {elapsed_ms} ms"))
                    .detail("tls", done.tls)
                    .detail("greeting", done.greeting)
            }
            Err(Fail::Reply { step, reply }) => CheckResult::unhealthy(format!(
                "{} answered {step} with {}",
                config.address,
                reply.shown()
            ))
            .detail("error", "reply")
            .detail("code", reply.code),
            Err(Fail::Config(why)) => CheckResult::unhealthy(format!("{}: {why}", config.address))
                .detail("error", "unsupported"),
            Err(Fail::Frame(e)) => e.verdict(&config.address),
            Err(Fail::Tcp(e)) => e.into_verdict()?,
        };
        Ok(result
            .detail("address", &config.address)
            .detail("elapsed-ms", elapsed_ms))
    }
}

healthprobe_sdk::export_probe!(Smtp);

/// The parameters, checked.
#[derive(Debug)]
struct Config {
    address: String,
    helo: String,
    username: Option<String>,
    password: Option<String>,
    /// STARTTLS: never, if offered, or required.
    starttls: Tls,
    /// TLS from the first byte, to this server name.
    implicit: Option<String>,
}

impl Config {
    fn from_params(params: &Params) -> Result<Config, CheckError> {
        let address = params.required_str("address")?.trim().to_string();
        tcp::parse_address(&address)
            .map_err(|reason| CheckError::invalid_param("address", reason))?;
        let helo = params.required_str("helo")?.trim().to_string();
        if helo.is_empty() || helo.contains(char::is_whitespace) {
            return Err(CheckError::invalid_param(
                "helo",
                "expected a host name, for example helo=monitor.example.com",
            ));
        }
        let username = params.str("username").map(str::to_string);
        let password = params.str("password").map(str::to_string);
        if username.is_some() != password.is_some() {
            return Err(CheckError::invalid_config(
                "username= and password= go together (AUTH PLAIN)",
            ));
        }
        let (implicit, starttls) = Tls::from_params_implicit(params, &address)?;
        Ok(Config {
            address,
            helo,
            username,
            password,
            starttls,
            implicit,
        })
    }
}

/// A reply: its code and its lines' text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// The reply as the server wrote it, on one line: `535 5.7.8 Authentication failed`.
    fn shown(&self) -> String {
        let text: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        let mut shown = format!("{} {}", self.code, text.join(" / "));
        shown.truncate(300);
        shown
    }

    /// Whether an EHLO reply lists `keyword` (`STARTTLS`, `AUTH`).
    fn offers(&self, keyword: &str) -> Option<&str> {
        self.lines.iter().skip(1).find_map(|l| {
            let mut words = l.split_whitespace();
            words
                .next()
                .filter(|w| w.eq_ignore_ascii_case(keyword))
                .map(|_| l.as_str())
        })
    }
}

/// Reads one reply (several lines for `250-…`), waiting as `step`.
fn reply<L: Link>(link: &mut Framed<L>, step: &'static str) -> Result<Reply, Fail> {
    let mut lines = Vec::new();
    loop {
        let raw = link.read_delimited(b"\n", step)?;
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end_matches(['\r', '\n']);
        let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
        let sep = line.as_bytes().get(3).copied();
        let (Some(code), Some(b' ' | b'-') | None) = (code, sep) else {
            let shown: String = line.chars().take(60).collect();
            return Err(Fail::Frame(FrameError::Malformed {
                step,
                reason: format!(
                    "expected an SMTP reply (a 3-digit code), got \"{}\"; is this an SMTP server?",
                    shown.escape_default()
                ),
            }));
        };
        lines.push(line.get(4..).unwrap_or_default().to_string());
        if sep != Some(b'-') {
            return Ok(Reply { code, lines });
        }
    }
}

/// Sends `command` and reads the reply, which must have `want` as its code.
fn exchange<L: Link>(
    link: &mut Framed<L>,
    command: &str,
    step: &'static str,
    want: u16,
) -> Result<Reply, Fail> {
    link.send(format!("{command}\r\n").as_bytes(), step)?;
    expect(reply(link, step)?, step, want)
}

fn expect(reply: Reply, step: &'static str, want: u16) -> Result<Reply, Fail> {
    if reply.code == want {
        Ok(reply)
    } else {
        Err(Fail::Reply { step, reply })
    }
}

struct Done {
    greeting: String,
    tls: bool,
}

enum Fail {
    Tcp(TcpError),
    Frame(FrameError),
    /// A reply with another code than the step expects.
    Reply {
        step: &'static str,
        reply: Reply,
    },
    /// The server cannot do what the parameters ask (STARTTLS, AUTH).
    Config(String),
}

impl From<FrameError> for Fail {
    fn from(e: FrameError) -> Self {
        Fail::Frame(e)
    }
}

fn run(config: &Config, budget: &Budget) -> Result<Done, Fail> {
    let conn: TcpConn = match &config.implicit {
        Some(name) => tcp::connect_with(&config.address, &Tls::Require(name.clone()), budget),
        None => tcp::connect(&config.address, budget),
    }
    .map_err(Fail::Tcp)?;
    let mut tls = config.implicit.is_some();
    let mut link = Framed::new(conn).max(MAX_REPLY);
    let greeting = expect(reply(&mut link, "the greeting")?, "the greeting", 220)?;
    let greeting = format!("220 {}", greeting.lines.join(" "));
    let ehlo = format!("EHLO {}", config.helo);
    let mut offered = exchange(&mut link, &ehlo, "EHLO", 250)?;
    if !tls {
        let wanted = match &config.starttls {
            Tls::Off => None,
            Tls::Prefer(name) => offered.offers("STARTTLS").map(|_| name.clone()),
            Tls::Require(name) => {
                if offered.offers("STARTTLS").is_none() {
                    return Err(Fail::Config(
                        "the server does not offer STARTTLS (not in its EHLO reply), and \
                         tls=require asks for it"
                            .into(),
                    ));
                }
                Some(name.clone())
            }
        };
        if let Some(name) = wanted {
            exchange(&mut link, "STARTTLS", "STARTTLS", 220)?;
            link = link.start_tls(&name).map_err(Fail::Tcp)?;
            tls = true;
            // What was offered before TLS no longer holds (RFC 3207).
            offered = exchange(&mut link, &ehlo, "EHLO", 250)?;
        }
    }
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        let Some(auth) = offered.offers("AUTH") else {
            return Err(Fail::Config(format!(
                "the server offers no AUTH{}",
                if tls {
                    String::new()
                } else {
                    "; servers often offer it only over TLS: give tls=require".into()
                }
            )));
        };
        if !auth
            .split_whitespace()
            .any(|m| m.eq_ignore_ascii_case("PLAIN"))
        {
            return Err(Fail::Config(format!(
                "the server offers {auth}, not PLAIN, which this probe speaks"
            )));
        }
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        exchange(&mut link, &format!("AUTH PLAIN {token}"), "AUTH", 235)?;
    }
    // A polite goodbye; the verdict does not wait for the answer.
    let _ = link.send(b"QUIT\r\n", "QUIT");
    Ok(Done { greeting, tls })
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthprobe_sdk::testing::Script;

    #[test]
    fn multiline_replies_and_extensions_are_read() {
        let mut link = Framed::new(Script::new([
            b"220 mail.test ESMTP ready\r\n".to_vec(),
            b"250-mail.test Hello\r\n250-SIZE 1000\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"
                .to_vec(),
        ]));
        let greeting = reply(&mut link, "the greeting").ok().unwrap();
        assert_eq!(greeting.code, 220);
        let ehlo = exchange(&mut link, "EHLO x", "EHLO", 250).ok().unwrap();
        assert_eq!(ehlo.offers("auth"), Some("AUTH PLAIN LOGIN"));
        assert_eq!(ehlo.offers("STARTTLS"), Some("STARTTLS"));
        assert_eq!(ehlo.offers("8BITMIME"), None);
    }

    #[test]
    fn another_protocol_and_a_refusal_are_named() {
        let mut link = Framed::new(Script::new([b"+OK POP3 ready\r\n".to_vec()]));
        let Err(Fail::Frame(e)) = reply(&mut link, "the greeting") else {
            panic!("not refused")
        };
        assert!(e.to_string().contains("is this an SMTP server?"), "{e}");
        let refused = Reply {
            code: 535,
            lines: vec!["5.7.8 Authentication failed".into()],
        };
        assert_eq!(refused.shown(), "535 5.7.8 Authentication failed");
        assert!(matches!(
            expect(refused, "AUTH", 235),
            Err(Fail::Reply { step: "AUTH", .. })
        ));
    }
}
