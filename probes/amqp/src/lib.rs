//! The bundled `amqp` probe: the AMQP 0-9-1 connection handshake (RabbitMQ's protocol) to
//! `Connection.OpenOk`: the protocol header, `Start`/`StartOk` with PLAIN credentials,
//! `Tune`/`TuneOk`, `Open` of the virtual host, then `Close`. A refusal is reported with the
//! server's reply code and text (`403 ACCESS_REFUSED - Login was refused …`). The frames are
//! encoded here: the AMQP crates for Rust are built on tokio or threads.

use std::time::Instant;

use healthprobe_sdk::tcp::{self, FrameError, Framed, Link, TcpConn, TcpError, Tls};
use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};

/// The largest frame read before Tune says otherwise: `Connection.Start` lists the
/// server's properties, a few KiB.
const MAX_FRAME: usize = 128 * 1024;

const FRAME_METHOD: u8 = 1;
const FRAME_END: u8 = 0xce;

/// Class and method ids (AMQP 0-9-1, class `connection`).
const START: (u16, u16) = (10, 10);
const START_OK: (u16, u16) = (10, 11);
const TUNE: (u16, u16) = (10, 30);
const TUNE_OK: (u16, u16) = (10, 31);
const OPEN: (u16, u16) = (10, 40);
const OPEN_OK: (u16, u16) = (10, 41);
const CLOSE: (u16, u16) = (10, 50);

struct Amqp;

impl Probe for Amqp {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "amqp",
            env!("CARGO_PKG_VERSION"),
            "Opens an AMQP 0-9-1 connection (RabbitMQ): the handshake with PLAIN credentials \
             to Connection.OpenOk on the virtual host; a refusal is reported with the \
             server's reply code and text.",
        )
        .param(ParamSpec::required(
            "address",
            "The broker as host:port, for example 127.0.0.1:5672 (5671 with tls=true).",
        ))
        .param(ParamSpec::optional("username", "User for PLAIN.").default("guest"))
        .param(
            ParamSpec::optional(
                "password",
                "That user's password. Give it by reference, for example \
                 password@file=/run/secrets/rabbitmq.",
            )
            .default("guest"),
        )
        .param(ParamSpec::optional("vhost", "The virtual host to open.").default("/"))
        .params(Tls::params(false))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let config = Config::from_params(params)?;
        let start = Instant::now();
        let outcome = run(&config, &budget);
        let elapsed_ms = start.elapsed().as_millis();
        let result = match outcome {
            Ok(server) => {
                let product = match (&server.product, &server.version) {
                    (Some(p), Some(v)) => format!(" ({p} {v})"),
                    (Some(p), None) => format!(" ({p})"),
                    _ => String::new(),
                };
                let mut result = CheckResult::healthy(format!(
                    "Connection.OpenOk from {}{product} for vhost {} in {elapsed_ms} ms",
                    config.address, config.vhost
                ));
                if let Some(v) = server.version {
                    result = result.detail("server-version", v);
                }
                if let Some(p) = server.product {
                    result = result.detail("server-product", p);
                }
                result
            }
            Err(Fail::Closed { step, code, text }) => CheckResult::unhealthy(format!(
                "{} closed the connection at {step}: {code} {text}",
                config.address
            ))
            .detail("error", "refused")
            .detail("code", code),
            Err(Fail::Frame(e)) => {
                let mut result = e.verdict(&config.address);
                // RabbitMQ drops the connection without a word on wrong credentials when
                // a client does not ask it to say why (this one does).
                if let FrameError::Closed {
                    step: "Connection.Tune",
                    ..
                } = &e
                {
                    result.message.push_str(" (wrong user name or password?)");
                }
                result
            }
            Err(Fail::Tcp(e)) => e.into_verdict()?,
        };
        Ok(result
            .detail("address", &config.address)
            .detail("vhost", &config.vhost)
            .detail("elapsed-ms", elapsed_ms))
    }
}

healthprobe_sdk::export_probe!(Amqp);

/// The parameters, checked.
#[derive(Debug)]
struct Config {
    address: String,
    username: String,
    password: String,
    vhost: String,
    tls: Tls,
}

impl Config {
    fn from_params(params: &Params) -> Result<Config, CheckError> {
        let address = params.required_str("address")?.trim().to_string();
        tcp::parse_address(&address)
            .map_err(|reason| CheckError::invalid_param("address", reason))?;
        let short = |name: &str| -> Result<String, CheckError> {
            let value = params.required_str(name)?.to_string();
            if value.len() > 255 {
                return Err(CheckError::invalid_param(name, "longer than 255 bytes"));
            }
            Ok(value)
        };
        Ok(Config {
            tls: Tls::from_params(params, &address, false)?,
            address,
            username: params.required_str("username")?.to_string(),
            password: params.required_str("password")?.to_string(),
            vhost: short("vhost")?,
        })
    }
}

/// What the server said of itself in `Connection.Start`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Server {
    product: Option<String>,
    version: Option<String>,
}

enum Fail {
    Tcp(TcpError),
    Frame(FrameError),
    /// `Connection.Close` from the server, during `step`.
    Closed {
        step: &'static str,
        code: u16,
        text: String,
    },
}

impl From<FrameError> for Fail {
    fn from(e: FrameError) -> Self {
        Fail::Frame(e)
    }
}

fn shortstr(out: &mut Vec<u8>, s: &str) {
    out.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&s.as_bytes()[..s.len().min(255)]);
}

fn longstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(s);
}

/// A method frame on channel 0.
fn method((class, method): (u16, u16), args: &[u8]) -> Vec<u8> {
    let mut payload = class.to_be_bytes().to_vec();
    payload.extend_from_slice(&method.to_be_bytes());
    payload.extend_from_slice(args);
    let mut frame = vec![FRAME_METHOD, 0, 0];
    frame.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    frame.extend(payload);
    frame.push(FRAME_END);
    frame
}

/// The next method frame: its class and method ids and arguments (heartbeats skipped).
fn read<L: Link>(
    link: &mut Framed<L>,
    step: &'static str,
    first: bool,
) -> Result<((u16, u16), Vec<u8>), FrameError> {
    loop {
        let frame = link.read_with(step, |buf| {
            // A server that refuses the protocol version answers with its own header.
            if buf.starts_with(b"AMQP") {
                return Err(format!(
                    "the server answered with the protocol header {:?}: it does not speak AMQP 0-9-1",
                    &buf[..buf.len().min(8)]
                ));
            }
            if let Some(&kind) = buf.first()
                && (first && kind != FRAME_METHOD || !matches!(kind, 1..=4 | 8))
            {
                let shown: String = buf
                    .iter()
                    .take(40)
                    .flat_map(|b| std::ascii::escape_default(*b))
                    .map(char::from)
                    .collect();
                return Err(format!(
                    "expected an AMQP frame, the server sent \"{shown}\"; is this an AMQP 0-9-1 broker?"
                ));
            }
            if buf.len() < 7 {
                return Ok(None);
            }
            let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
            if size > MAX_FRAME {
                return Err(format!("a frame of {size} bytes"));
            }
            let Some(end) = buf.get(7 + size) else {
                return Ok(None);
            };
            if *end != FRAME_END {
                return Err("a frame without its end marker".into());
            }
            Ok(Some(((buf[0], buf[7..7 + size].to_vec()), 8 + size)))
        })?;
        let (kind, payload) = frame;
        if kind != FRAME_METHOD {
            continue;
        }
        if payload.len() < 4 {
            return Err(FrameError::Malformed {
                step,
                reason: "a method frame too short for its ids".into(),
            });
        }
        let ids = (
            u16::from_be_bytes([payload[0], payload[1]]),
            u16::from_be_bytes([payload[2], payload[3]]),
        );
        return Ok((ids, payload[4..].to_vec()));
    }
}

/// The client-properties table: the product, and the capability that makes RabbitMQ say
/// why it refuses a login (`Connection.Close` with 403) instead of dropping the connection.
fn client_properties() -> Vec<u8> {
    let mut capabilities = Vec::new();
    shortstr(&mut capabilities, "authentication_failure_close");
    capabilities.extend_from_slice(&[b't', 1]);
    let mut table = Vec::new();
    shortstr(&mut table, "product");
    table.push(b'S');
    longstr(&mut table, b"healthprobe");
    shortstr(&mut table, "capabilities");
    table.push(b'F');
    longstr(&mut table, &capabilities);
    let mut out = Vec::new();
    longstr(&mut out, &table);
    out
}

/// How many bytes a field value of `kind` takes in a table, after its type byte.
fn field_size(kind: u8, rest: &[u8]) -> Option<usize> {
    let long = || {
        let n = rest.get(..4)?;
        Some(4 + u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
    };
    Some(match kind {
        b't' | b'b' | b'B' => 1,
        b's' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'D' => 5,
        b'l' | b'L' | b'd' | b'T' => 8,
        b'V' => 0,
        b'S' | b'F' | b'A' | b'x' => long()?,
        _ => return None,
    })
}

/// The server's product and version from `Connection.Start`'s server-properties table.
fn server_properties(args: &[u8]) -> Server {
    let mut server = Server::default();
    // version-major, version-minor, then the table (a long length, then entries).
    let Some(table_len) = args.get(2..6) else {
        return server;
    };
    let len = u32::from_be_bytes([table_len[0], table_len[1], table_len[2], table_len[3]]) as usize;
    let Some(mut table) = args.get(6..6 + len) else {
        return server;
    };
    while let Some(&key_len) = table.first() {
        let key_len = usize::from(key_len);
        let (Some(key), Some(&kind)) = (table.get(1..1 + key_len), table.get(1 + key_len)) else {
            break;
        };
        let rest = &table[2 + key_len..];
        let Some(size) = field_size(kind, rest).filter(|n| *n <= rest.len()) else {
            break;
        };
        if kind == b'S' {
            let value = String::from_utf8_lossy(&rest[4..size]).into_owned();
            match key {
                b"product" => server.product = Some(value),
                b"version" => server.version = Some(value),
                _ => {}
            }
        }
        table = &rest[size..];
    }
    server
}

/// Reads the next method, which must be `want`; a `Connection.Close` is the refusal.
fn expect<L: Link>(
    link: &mut Framed<L>,
    step: &'static str,
    want: (u16, u16),
    first: bool,
) -> Result<Vec<u8>, Fail> {
    let (ids, args) = read(link, step, first)?;
    if ids == want {
        return Ok(args);
    }
    if ids == CLOSE && args.len() >= 3 {
        let code = u16::from_be_bytes([args[0], args[1]]);
        let n = usize::from(args[2]);
        let text = String::from_utf8_lossy(args.get(3..3 + n).unwrap_or_default()).into_owned();
        // Acknowledge, as the protocol asks; the verdict does not wait for it.
        let _ = link.send(&method((10, 51), &[]), step);
        return Err(Fail::Closed { step, code, text });
    }
    Err(Fail::Frame(FrameError::Malformed {
        step,
        reason: format!("expected {step}, got method {}.{}", ids.0, ids.1),
    }))
}

fn run(config: &Config, budget: &Budget) -> Result<Server, Fail> {
    let conn: TcpConn =
        tcp::connect_with(&config.address, &config.tls, budget).map_err(Fail::Tcp)?;
    let mut link = Framed::new(conn).max(MAX_FRAME + 8);
    link.send(b"AMQP\x00\x00\x09\x01", "Connection.Start")?;
    let start = expect(&mut link, "Connection.Start", START, true)?;
    let server = server_properties(&start);

    let mut args = client_properties();
    shortstr(&mut args, "PLAIN");
    longstr(
        &mut args,
        format!("\0{}\0{}", config.username, config.password).as_bytes(),
    );
    shortstr(&mut args, "en_US");
    link.send(&method(START_OK, &args), "Connection.Tune")?;

    let tune = expect(&mut link, "Connection.Tune", TUNE, false)?;
    // Accept the server's limits, with no heartbeats: the connection lasts one check.
    let mut tune_ok = tune.get(..6).unwrap_or(&[0; 6]).to_vec();
    tune_ok.extend_from_slice(&[0, 0]);
    link.send(&method(TUNE_OK, &tune_ok), "Connection.OpenOk")?;

    let mut open = Vec::new();
    shortstr(&mut open, &config.vhost);
    shortstr(&mut open, ""); // reserved
    open.push(0); // reserved bit
    link.send(&method(OPEN, &open), "Connection.OpenOk")?;
    expect(&mut link, "Connection.OpenOk", OPEN_OK, false)?;

    // Close politely: reply 200, no class or method.
    let mut close = 200u16.to_be_bytes().to_vec();
    shortstr(&mut close, "healthprobe done");
    close.extend_from_slice(&[0, 0, 0, 0]);
    let _ = link.send(&method(CLOSE, &close), "Connection.CloseOk");
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthprobe_sdk::testing::Script;

    fn start_frame() -> Vec<u8> {
        // A nested table first, as RabbitMQ sends its capabilities.
        let mut table = Vec::new();
        shortstr(&mut table, "capabilities");
        table.push(b'F');
        longstr(&mut table, &[1, b'x', b't', 1]);
        for (k, v) in [("product", "RabbitMQ"), ("version", "3.10.8")] {
            shortstr(&mut table, k);
            table.push(b'S');
            longstr(&mut table, v.as_bytes());
        }
        let mut args = vec![0, 9];
        longstr(&mut args, &table);
        longstr(&mut args, b"PLAIN AMQPLAIN");
        longstr(&mut args, b"en_US");
        method(START, &args)
    }

    #[test]
    fn start_is_read_and_a_close_is_the_refusal() {
        let mut close = 403u16.to_be_bytes().to_vec();
        shortstr(&mut close, "ACCESS_REFUSED - Login was refused");
        close.extend_from_slice(&[0, 10, 0, 11]);
        let mut link =
            Framed::new(Script::new([Vec::new(), start_frame(), method(CLOSE, &close)]).chunk(9));
        link.send(b"AMQP\x00\x00\x09\x01", "x").unwrap();
        let start = expect(&mut link, "Connection.Start", START, true)
            .ok()
            .unwrap();
        assert_eq!(
            server_properties(&start),
            Server {
                product: Some("RabbitMQ".into()),
                version: Some("3.10.8".into())
            }
        );
        link.send(b"x", "x").unwrap();
        let Err(Fail::Closed { code, text, .. }) =
            expect(&mut link, "Connection.Tune", TUNE, false)
        else {
            panic!("not refused");
        };
        assert_eq!(
            (code, text.as_str()),
            (403, "ACCESS_REFUSED - Login was refused")
        );
    }

    #[test]
    fn another_protocol_is_named() {
        let mut link = Framed::new(Script::new([b"HTTP/1.1 400 Bad".to_vec()]));
        let Err(Fail::Frame(e)) = expect(&mut link, "Connection.Start", START, true) else {
            panic!("not refused");
        };
        assert!(
            e.to_string().contains("is this an AMQP 0-9-1 broker?"),
            "{e}"
        );
    }
}
