//! The bundled `mysql` probe (MySQL and MariaDB): reads the server's handshake and,
//! given a user name, logs in and sends `COM_PING`.

mod auth;
mod protocol;

use healthprobe_sdk::tcp::{self, FrameError, Framed, Link, TcpError, Tls};
use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};

use protocol::{Handshake, HandshakeError, ServerError};

struct MysqlProbe;

impl Probe for MysqlProbe {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "mysql",
            env!("CARGO_PKG_VERSION"),
            "Checks a MySQL or MariaDB server: without username, that it sends its handshake \
             (accepts connections); with username, that the login succeeds and COM_PING is \
             answered. Supports mysql_native_password, caching_sha2_password and \
             sha256_password; with tls, the login runs over TLS.",
        )
        .param(ParamSpec::required(
            "address",
            "Server as host:port, for example 127.0.0.1:3306.",
        ))
        .param(ParamSpec::optional(
            "username",
            "Log in as this user and send COM_PING, for example username=monitor. Without \
             it only the handshake is read; MySQL counts such aborted connections, so give a \
             user for frequent checks of a remote server.",
        ))
        .param(
            ParamSpec::optional(
                "password",
                "Password of username, for example password=s3cret (empty: no password).",
            )
            .default(""),
        )
        .param(ParamSpec::optional(
            "database",
            "Default database to select at login, for example database=app; the login \
             fails if it does not exist or the user may not use it.",
        ))
        .params(Tls::params(true))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let address = params.required_str("address")?.trim();
        tcp::parse_address(address)
            .map_err(|reason| CheckError::invalid_param("address", reason))?;
        let username = params.str("username");
        if username == Some("") {
            return Err(CheckError::invalid_param(
                "username",
                "expected a user name such as monitor, got an empty value",
            ));
        }
        // Given ones only: the declared default of password is no reason to refuse.
        for name in ["password", "database"] {
            if params.contains(name) && username.is_none() {
                return Err(CheckError::invalid_config(format!(
                    "{name}= needs username= (without a user the probe does not log in)"
                )));
            }
        }
        let credentials = match username {
            Some(user) => Some(Credentials {
                username: user,
                password: params.required_str("password")?.as_bytes(),
                database: params.str("database").filter(|d| !d.is_empty()),
            }),
            None => None,
        };

        let tls = Tls::from_params(params, address, true)?;
        let outcome = match tcp::connect(address, &budget) {
            Ok(conn) => run_tls(Session::new(conn), credentials.as_ref(), &tls),
            Err(e) => Err(Failure::Tcp(e)),
        };
        let elapsed_ms = budget.elapsed().as_millis();
        let result = match outcome {
            Ok(report) => report.into_result(address, elapsed_ms),
            Err(Failure::Tcp(e)) => e.into_verdict()?,
            Err(failure) => failure.into_result(address, credentials.as_ref()),
        };
        Ok(result
            .detail("address", address)
            .detail("elapsed-ms", elapsed_ms))
    }
}

healthprobe_sdk::export_probe!(MysqlProbe);

/// What to log in with.
struct Credentials<'a> {
    username: &'a str,
    password: &'a [u8],
    database: Option<&'a str>,
}

/// Why a check did not end healthy.
#[derive(Debug)]
enum Failure {
    /// Connecting, reading or writing failed (refused, timeout, …).
    Tcp(TcpError),
    /// The server sent ERR instead of its handshake.
    Refused(ServerError),
    /// The server closed the connection; the text says during what.
    Closed(&'static str),
    /// The peer does not speak the MySQL protocol as expected.
    Protocol(String),
    /// The login failed with an ERR packet.
    Login(ServerError, Box<Handshake>),
    /// The server wants an authentication plugin the probe does not have.
    Plugin(String, Box<Handshake>),
    /// The login worked but COM_PING got an ERR.
    Ping(ServerError, Box<Handshake>),
    /// `tls=require`, and the server's handshake does not offer TLS.
    NoTls(Box<Handshake>),
}

impl Failure {
    fn into_result(self, address: &str, credentials: Option<&Credentials<'_>>) -> CheckResult {
        let user = credentials.map_or("", |c| c.username);
        match self {
            Failure::Tcp(e) => CheckResult::unhealthy(e.to_string()).detail("error", e.kind()),
            Failure::Refused(e) => error_result(
                format!("{address} refused the connection: {e}"),
                "server-error",
                &e,
            ),
            Failure::Closed(when) => {
                CheckResult::unhealthy(format!("{address} closed the connection {when}"))
                    .detail("error", "closed")
            }
            Failure::Protocol(what) => {
                CheckResult::unhealthy(format!("{address} is not a MySQL server: {what}"))
                    .detail("error", "protocol")
            }
            Failure::Login(e, hs) => with_server(
                error_result(
                    format!("login as '{user}' to {address} failed: {e}"),
                    "login",
                    &e,
                ),
                &hs,
            ),
            Failure::Plugin(plugin, hs) => with_server(
                CheckResult::unhealthy(format!(
                    "{address} wants auth plugin '{plugin}' for '{user}', which the probe does \
                     not support (it supports {}, {} and {})",
                    auth::NATIVE,
                    auth::CACHING_SHA2,
                    auth::SHA256
                ))
                .detail("error", "auth-plugin")
                .detail("auth-plugin", plugin),
                &hs,
            ),
            Failure::Ping(e, hs) => with_server(
                error_result(format!("COM_PING to {address} failed: {e}"), "ping", &e),
                &hs,
            ),
            Failure::NoTls(hs) => with_server(
                CheckResult::unhealthy(format!(
                    "{address} does not offer TLS (no ssl-cert configured); give tls=prefer \
                     to accept plain TCP"
                ))
                .detail("error", "no-tls"),
                &hs,
            ),
        }
    }
}

fn error_result(message: String, kind: &str, e: &ServerError) -> CheckResult {
    let result = CheckResult::unhealthy(message)
        .detail("error", kind)
        .detail("error-code", e.code);
    match &e.sqlstate {
        Some(state) => result.detail("sqlstate", state),
        None => result,
    }
}

fn with_server(result: CheckResult, hs: &Handshake) -> CheckResult {
    result
        .detail("server-version", &hs.server_version)
        .detail("connection-id", hs.connection_id)
}

/// What a healthy check found.
#[derive(Debug)]
struct Report {
    handshake: Handshake,
    /// The user logged in as and the plugin that worked, when the probe logged in.
    login: Option<(String, String)>,
    /// Whether the connection switched to TLS.
    tls: bool,
}

impl Report {
    fn into_result(self, address: &str, elapsed_ms: u128) -> CheckResult {
        let product = self.handshake.product();
        let result = match &self.login {
            None => CheckResult::healthy(format!(
                "{product} at {address} accepting connections (handshake in {elapsed_ms} ms)"
            )),
            Some((user, plugin)) => CheckResult::healthy(format!(
                "{product} at {address}: logged in as '{user}', COM_PING OK in {elapsed_ms} ms"
            ))
            .detail("auth-plugin", plugin),
        };
        let result = if self.tls {
            result.detail("tls", true)
        } else {
            result
        };
        with_server(result, &self.handshake)
    }
}

/// A connection with packet framing and sequence ids.
struct Session<L> {
    link: Framed<L>,
    /// The sequence id of the next packet the probe sends.
    seq: u8,
}

impl<L: Link> Session<L> {
    fn new(link: L) -> Self {
        Session {
            // A header and the largest payload `read_packet` accepts.
            link: Framed::new(link).max(4 + protocol::MAX_PACKET),
            seq: 0,
        }
    }

    /// The session with TLS under it, after the SSLRequest.
    fn start_tls(self, server_name: &str) -> Result<Self, Failure> {
        Ok(Session {
            link: self.link.start_tls(server_name).map_err(Failure::Tcp)?,
            seq: self.seq,
        })
    }

    /// Read one packet's payload; `when` names the step for a closed connection.
    fn read_packet(&mut self, when: &'static str) -> Result<Vec<u8>, Failure> {
        let frame_error = |e: FrameError| match e {
            FrameError::Closed { step, .. } => Failure::Closed(step),
            FrameError::Tcp { error, .. } => Failure::Tcp(error),
            other => Failure::Protocol(other.to_string()),
        };
        let header = self.link.read_exact(4, when).map_err(frame_error)?;
        let header: [u8; 4] = [header[0], header[1], header[2], header[3]];
        let (len, seq) = protocol::packet_header(header);
        if len > protocol::MAX_PACKET {
            return Err(Failure::Protocol(format!(
                "a packet of {len} bytes (header {})",
                hex_prefix(&header)
            )));
        }
        let payload = self.link.read_exact(len, when).map_err(frame_error)?;
        self.seq = seq.wrapping_add(1);
        Ok(payload)
    }

    fn write_packet(&mut self, payload: &[u8]) -> Result<(), Failure> {
        let bytes = protocol::frame(self.seq, payload);
        self.seq = self.seq.wrapping_add(1);
        self.link.link_mut().send(&bytes).map_err(Failure::Tcp)
    }

    /// Start a new command: sequence ids restart at 0.
    fn command(&mut self, command: u8) -> Result<(), Failure> {
        self.seq = 0;
        self.write_packet(&[command])
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Read the handshake and, with credentials, log in and ping: [`run_tls`] without TLS,
/// on a session the unit tests keep to read what was written.
#[cfg(test)]
fn run<L: Link>(
    session: &mut Session<L>,
    credentials: Option<&Credentials<'_>>,
) -> Result<Report, Failure> {
    let handshake = read_handshake(session)?;
    finish(session, handshake, credentials, false)
}

/// [`run`], switching to TLS after the handshake if `tls` asks for it.
fn run_tls<L: Link>(
    mut session: Session<L>,
    credentials: Option<&Credentials<'_>>,
    tls: &Tls,
) -> Result<Report, Failure> {
    let handshake = read_handshake(&mut session)?;
    let mut secure = false;
    if let Some(name) = tls.server_name() {
        if handshake.capabilities & protocol::CLIENT_SSL != 0 {
            let with_db = credentials.is_some_and(|c| c.database.is_some());
            let caps = protocol::client_capabilities(handshake.capabilities, with_db);
            session.write_packet(&protocol::ssl_request(caps))?;
            session = session.start_tls(name)?;
            secure = true;
        } else if matches!(tls, Tls::Require(_)) {
            return Err(Failure::NoTls(Box::new(handshake)));
        }
    }
    finish(&mut session, handshake, credentials, secure)
}

/// The server's first packet, its handshake.
fn read_handshake<L: Link>(session: &mut Session<L>) -> Result<Handshake, Failure> {
    let first = session.read_packet("before sending its handshake")?;
    match protocol::parse_handshake(&first) {
        Ok(hs) => Ok(hs),
        Err(HandshakeError::Server(e)) => Err(Failure::Refused(e)),
        Err(HandshakeError::Malformed(what)) => Err(Failure::Protocol(format!(
            "its first packet is {what} (starts {})",
            hex_prefix(&first)
        ))),
    }
}

/// With credentials, log in (over TLS if `secure`) and ping.
fn finish<L: Link>(
    session: &mut Session<L>,
    handshake: Handshake,
    credentials: Option<&Credentials<'_>>,
    secure: bool,
) -> Result<Report, Failure> {
    let Some(credentials) = credentials else {
        return Ok(Report {
            handshake,
            login: None,
            tls: secure,
        });
    };
    let plugin = login(session, &handshake, credentials, secure)?;
    session.command(protocol::COM_PING)?;
    let reply = session.read_packet("after COM_PING")?;
    match reply.first() {
        Some(0x00) => {}
        Some(0xff) => {
            let e = protocol::parse_err(&reply).map_err(Failure::Protocol)?;
            return Err(Failure::Ping(e, Box::new(handshake)));
        }
        _ => {
            return Err(Failure::Protocol(format!(
                "it answered COM_PING with {}",
                hex_prefix(&reply)
            )));
        }
    }
    // Best effort: a polite goodbye keeps "aborted connection" notes out of the server's
    // log; the verdict is already known.
    let _ = session.command(protocol::COM_QUIT);
    Ok(Report {
        handshake,
        login: Some((credentials.username.to_string(), plugin)),
        tls: secure,
    })
}

/// Rounds of AuthSwitch / AuthMoreData a login may take before the probe gives up
/// (a real server needs at most three).
const MAX_AUTH_ROUNDS: usize = 6;

/// Send `HandshakeResponse41` and follow the server's authentication exchange until OK;
/// returns the plugin that succeeded.
fn login<L: Link>(
    session: &mut Session<L>,
    handshake: &Handshake,
    credentials: &Credentials<'_>,
    tls: bool,
) -> Result<String, Failure> {
    let caps = handshake.capabilities;
    if caps & protocol::CLIENT_PROTOCOL_41 == 0 || caps & protocol::CLIENT_SECURE_CONNECTION == 0 {
        return Err(Failure::Plugin(
            "mysql_old_password (a server without the 4.1 protocol)".to_string(),
            Box::new(handshake.clone()),
        ));
    }
    // Start with the server's default plugin if the probe has it; otherwise answer as
    // mysql_native_password and let the server switch to what the user needs.
    let mut plugin = handshake
        .auth_plugin
        .clone()
        .filter(|p| auth::supported(p))
        .unwrap_or_else(|| auth::NATIVE.to_string());
    let mut nonce = handshake.auth_data.clone();
    let password = credentials.password;
    let response = auth::first_response(&plugin, password, &nonce);
    let mut client_caps = protocol::client_capabilities(caps, credentials.database.is_some());
    if tls {
        client_caps |= protocol::CLIENT_SSL;
    }
    session.write_packet(&protocol::handshake_response(
        client_caps,
        &protocol::Login {
            username: credentials.username,
            auth_response: &response,
            database: credentials.database,
            auth_plugin: &plugin,
        },
    ))?;

    let mut asked_for_key = false;
    for _ in 0..MAX_AUTH_ROUNDS {
        let packet = session.read_packet("during login")?;
        match packet.first() {
            Some(0x00) => return Ok(plugin),
            Some(0xff) => {
                let e = protocol::parse_err(&packet).map_err(Failure::Protocol)?;
                return Err(Failure::Login(e, Box::new(handshake.clone())));
            }
            Some(0xfe) => {
                let switch = protocol::parse_auth_switch(&packet);
                if !auth::supported(&switch.plugin) {
                    return Err(Failure::Plugin(switch.plugin, Box::new(handshake.clone())));
                }
                plugin = switch.plugin;
                nonce = switch.data;
                asked_for_key = false;
                session.write_packet(&auth::first_response(&plugin, password, &nonce))?;
            }
            Some(0x01) => {
                let data = &packet[1..];
                let answer = if plugin == auth::CACHING_SHA2 && !asked_for_key {
                    match data.first() {
                        // The OK packet follows.
                        Some(&auth::FAST_AUTH_OK) => continue,
                        Some(&auth::FULL_AUTH_NEEDED) => {
                            asked_for_key = true;
                            vec![auth::REQUEST_PUBLIC_KEY_SHA2]
                        }
                        _ => {
                            return Err(Failure::Protocol(format!(
                                "unexpected caching_sha2_password data {}",
                                hex_prefix(data)
                            )));
                        }
                    }
                } else if plugin == auth::CACHING_SHA2 || plugin == auth::SHA256 {
                    // The server's RSA public key, in PEM.
                    auth::encrypt_password(password, &nonce, data).map_err(Failure::Protocol)?
                } else {
                    return Err(Failure::Protocol(format!(
                        "unexpected AuthMoreData for {plugin}"
                    )));
                };
                session.write_packet(&answer)?;
            }
            _ => {
                return Err(Failure::Protocol(format!(
                    "unexpected packet during login: {}",
                    hex_prefix(&packet)
                )));
            }
        }
    }
    Err(Failure::Protocol(format!(
        "login did not finish after {MAX_AUTH_ROUNDS} rounds"
    )))
}

#[cfg(test)]
mod tests;
