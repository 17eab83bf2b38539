//! The bundled `nats` probe: reads the server's INFO, sends CONNECT (with a user and
//! password or a token when given) and PING, and expects PONG. The protocol is lines of
//! text with a JSON object in INFO and CONNECT, written here with serde_json: the NATS
//! clients for Rust are built on tokio, which a probe does not have.

use std::time::Instant;

use healthprobe_sdk::tcp::{self, FrameError, Framed, TcpConn, TcpError, Tls};
use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};

/// The longest line read: an INFO line with a long cluster URL list is a few KiB.
const MAX_LINE: usize = 64 * 1024;

struct Nats;

impl Probe for Nats {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "nats",
            env!("CARGO_PKG_VERSION"),
            "Connects to a NATS server: reads INFO, sends CONNECT (with a user and password \
             or a token when given) and PING, and expects PONG; a refusal is reported in the \
             server's own words.",
        )
        .param(ParamSpec::required(
            "address",
            "The server as host:port, for example 127.0.0.1:4222.",
        ))
        .param(ParamSpec::optional(
            "username",
            "User for a server with user authentication, for example username=monitor.",
        ))
        .param(ParamSpec::optional(
            "password",
            "That user's password; needs username. Give it by reference, for example \
             password@file=/run/secrets/nats.",
        ))
        .param(ParamSpec::optional(
            "token",
            "Token for a server with token authentication (--auth), for example \
             token@env=NATS_TOKEN.",
        ))
        .params(Tls::params(false))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let config = Config::from_params(params)?;
        let start = Instant::now();
        let outcome = run(&config, &budget);
        let elapsed_ms = start.elapsed().as_millis();
        let result = match outcome {
            Ok(info) => {
                let mut result = CheckResult::healthy(format!(
                    "PONG from {} (NATS {}) in {elapsed_ms} ms",
                    config.address,
                    info.version.as_deref().unwrap_or("of unknown version")
                ));
                if let Some(version) = info.version {
                    result = result.detail("server-version", version);
                }
                if let Some(name) = info.name {
                    result = result.detail("server-name", name);
                }
                result.detail("jetstream", info.jetstream)
            }
            Err(Fail::Refused(words)) => CheckResult::unhealthy(format!(
                "{} refused the connection: {words}",
                config.address
            ))
            .detail("error", "refused"),
            Err(Fail::Protocol(why)) => {
                CheckResult::unhealthy(format!("{}: {why}", config.address))
                    .detail("error", "protocol")
            }
            Err(Fail::Frame(e)) => e.verdict(&config.address),
            Err(Fail::Tcp(e)) => e.into_verdict()?,
        };
        Ok(result
            .detail("address", &config.address)
            .detail("elapsed-ms", elapsed_ms))
    }
}

healthprobe_sdk::export_probe!(Nats);

/// The parameters, checked.
#[derive(Debug)]
struct Config {
    address: String,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
    tls: Tls,
}

impl Config {
    fn from_params(params: &Params) -> Result<Config, CheckError> {
        let address = params.required_str("address")?.trim().to_string();
        tcp::parse_address(&address)
            .map_err(|reason| CheckError::invalid_param("address", reason))?;
        let username = params.str("username").map(str::to_string);
        let password = params.str("password").map(str::to_string);
        let token = params.str("token").map(str::to_string);
        if password.is_some() != username.is_some() {
            return Err(CheckError::invalid_config(
                "username= and password= go together (NATS user authentication)",
            ));
        }
        if token.is_some() && username.is_some() {
            return Err(CheckError::invalid_config(
                "give username= and password=, or token=, not both",
            ));
        }
        Ok(Config {
            tls: Tls::from_params(params, &address, false)?,
            address,
            username,
            password,
            token,
        })
    }
}

/// What INFO said of the server.
#[derive(Debug, Default, PartialEq)]
struct Info {
    version: Option<String>,
    name: Option<String>,
    jetstream: bool,
    tls_required: bool,
}

enum Fail {
    Tcp(TcpError),
    Frame(FrameError),
    /// `-ERR` from the server, in its words.
    Refused(String),
    /// Not the NATS protocol.
    Protocol(String),
}

impl From<FrameError> for Fail {
    fn from(e: FrameError) -> Self {
        Fail::Frame(e)
    }
}

/// The line the server sent, as text.
fn line(link: &mut Framed<impl tcp::Link>, step: &'static str) -> Result<String, FrameError> {
    let bytes = link.read_delimited(b"\r\n", step)?;
    let text = bytes.strip_suffix(b"\r\n").unwrap_or(&bytes);
    Ok(String::from_utf8_lossy(text).into_owned())
}

/// INFO's JSON, or why the first line is not NATS.
fn parse_info(first: &str) -> Result<Info, String> {
    let Some(json) = first.strip_prefix("INFO ") else {
        let shown: String = first.chars().take(60).collect();
        return Err(format!(
            "expected INFO, the server sent \"{}\"; is this a NATS server?",
            shown.escape_default()
        ));
    };
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("INFO is not JSON: {e}"))?;
    let text = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_string);
    let flag = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    };
    Ok(Info {
        version: text("version"),
        name: text("server_name"),
        jetstream: flag("jetstream"),
        tls_required: flag("tls_required"),
    })
}

/// CONNECT with the credentials, then PING: the server's PONG means it took both.
fn connect_line(config: &Config, tls: bool) -> String {
    let mut fields = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "tls_required": tls,
        "name": "healthprobe",
        "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": 1,
    });
    if let (Some(user), Some(pass)) = (&config.username, &config.password) {
        fields["user"] = user.as_str().into();
        fields["pass"] = pass.as_str().into();
    }
    if let Some(token) = &config.token {
        fields["auth_token"] = token.as_str().into();
    }
    format!("CONNECT {fields}\r\nPING\r\n")
}

fn run(config: &Config, budget: &Budget) -> Result<Info, Fail> {
    let conn: TcpConn = tcp::connect(&config.address, budget).map_err(Fail::Tcp)?;
    let mut link = Framed::new(conn).max(MAX_LINE);
    let info = parse_info(&line(&mut link, "INFO")?).map_err(Fail::Protocol)?;
    // NATS upgrades to TLS after its INFO, when either side requires it.
    let tls = match config.tls.server_name() {
        Some(name) => Some(name.to_string()),
        None if info.tls_required => {
            return Err(Fail::Protocol(
                "the server requires TLS; give tls=true (and --tls-ca for its CA)".into(),
            ));
        }
        None => None,
    };
    if let Some(name) = &tls {
        link = link.start_tls(name).map_err(Fail::Tcp)?;
    }
    link.send(connect_line(config, tls.is_some()).as_bytes(), "PONG")?;
    loop {
        let reply = line(&mut link, "PONG")?;
        match reply.as_str() {
            "PONG" => return Ok(info),
            "PING" => link.send(b"PONG\r\n", "PONG")?,
            // A server may send INFO again (cluster changes), or +OK in verbose mode.
            r if r.starts_with("INFO ") || r == "+OK" => {}
            r => {
                let words = r
                    .strip_prefix("-ERR ")
                    .map(|w| w.trim().trim_matches('\'').to_string());
                return Err(match words {
                    Some(words) => Fail::Refused(words),
                    None => Fail::Protocol(format!(
                        "expected PONG, the server sent \"{}\"",
                        r.chars().take(60).collect::<String>().escape_default()
                    )),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthprobe_sdk::testing::Script;

    #[test]
    fn info_is_read_and_another_service_is_named() {
        let info = parse_info(
            r#"INFO {"server_id":"X","server_name":"n1","version":"2.9.10","jetstream":true}"#,
        )
        .unwrap();
        assert_eq!(info.version.as_deref(), Some("2.9.10"));
        assert!(info.jetstream && !info.tls_required);
        let err = parse_info("+PONG").unwrap_err();
        assert!(err.contains("is this a NATS server?"), "{err}");
    }

    #[test]
    fn connect_carries_the_credentials_as_json() {
        let config = Config {
            address: "127.0.0.1:4222".into(),
            username: Some("u".into()),
            password: Some("p\"q".into()),
            token: None,
            tls: Tls::Off,
        };
        let line = connect_line(&config, false);
        assert!(line.ends_with("\r\nPING\r\n"), "{line}");
        assert!(line.contains(r#""pass":"p\"q""#), "{line}");
        assert!(line.contains(r#""user":"u""#), "{line}");
    }

    #[test]
    fn lines_are_read_whole() {
        let mut link = Framed::new(
            Script::new([b"INFO {}\r\n-ERR 'Authorization Violation'\r\n".to_vec()]).chunk(4),
        );
        assert_eq!(line(&mut link, "INFO").unwrap(), "INFO {}");
        assert_eq!(
            line(&mut link, "PONG").unwrap(),
            "-ERR 'Authorization Violation'"
        );
    }
}
