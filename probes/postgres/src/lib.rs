//! The bundled `postgres` probe.
//!
//! Without `password` or `query` it works like `pg_isready`: it sends a
//! StartupMessage and judges the first answer, and a server that asks for
//! credentials (or refuses them) is accepting connections. With either, it
//! logs in (cleartext, MD5 or SCRAM-SHA-256, checking the server's SCRAM
//! signature) and runs `query` with the simple query protocol.

mod scram;
mod wire;

use std::fmt;
use std::time::Instant;

use healthprobe_sdk::tcp::{self, FrameError, Framed, TcpConn, TcpError, Tls};
use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};

use wire::{Message, NotPostgres, ServerError};

/// The query run after a login when none is given.
const DEFAULT_QUERY: &str = "SELECT 1";
/// The user when none is given.
const DEFAULT_USER: &str = "postgres";
/// The longest query text or value quoted in a message.
const QUOTE_CHARS: usize = 60;

struct PostgresProbe;

impl Probe for PostgresProbe {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "postgres",
            env!("CARGO_PKG_VERSION"),
            "Checks a PostgreSQL server. By default like pg_isready: healthy when the server \
             answers a connection attempt, even by asking for a password, and unhealthy while \
             it is starting up, shutting down, in recovery or out of connection slots. With \
             password or query it logs in (cleartext, MD5 or SCRAM-SHA-256) and runs the query. \
             With tls it asks for TLS first (SSLRequest), as libpq's sslmode does.",
        )
        .param(ParamSpec::required(
            "address",
            "PostgreSQL server as host:port, for example 127.0.0.1:5432.",
        ))
        .param(
            ParamSpec::optional(
                "username",
                "Role to connect as, for example username=monitor.",
            )
            .default(DEFAULT_USER),
        )
        // No `.default(..)`: the default is not a fixed value but the user name.
        .param(ParamSpec::optional(
            "database",
            "Database to connect to, for example database=app; the default is the user name.",
        ))
        .param(ParamSpec::optional(
            "password",
            "Password for a full login (cleartext, MD5 or SCRAM-SHA-256, as the server asks), \
             for example password=s3cret; then query is run too.",
        ))
        .param(
            ParamSpec::optional(
                "query",
                "SQL run after the login with the simple query protocol; an error is unhealthy. \
                 Giving it logs in even without a password (for trust setups), \
                 for example query=SELECT count(*) FROM pg_stat_activity.",
            )
            .default(DEFAULT_QUERY),
        )
        .params(Tls::params(true))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let config = Config::from_params(params)?;
        let start = Instant::now();
        let mut session_info = Info::default();
        let outcome = run(&config, &budget, &mut session_info);
        let elapsed_ms = start.elapsed().as_millis();
        let result = verdict(&config, outcome, session_info.auth.as_ref(), elapsed_ms)?;
        let mut result = result
            .detail("address", &config.address)
            .detail("username", &config.user)
            .detail("database", &config.database)
            .detail("elapsed-ms", elapsed_ms);
        if let Some(auth) = session_info.auth {
            result = result.detail("auth", auth.to_string());
        }
        if let Some(version) = session_info.server_version {
            result = result.detail("server-version", version);
        }
        if config.tls != Tls::Off {
            result = result.detail("tls", session_info.tls);
        }
        Ok(result)
    }
}

healthprobe_sdk::export_probe!(PostgresProbe);

/// The parameters, checked.
#[derive(Debug)]
struct Config {
    address: String,
    user: String,
    database: String,
    password: Option<String>,
    /// The query to run after logging in; `None` is the pg_isready mode.
    query: Option<String>,
    tls: Tls,
}

impl Config {
    fn from_params(params: &Params) -> Result<Config, CheckError> {
        let address = params.required_str("address")?.trim().to_string();
        tcp::parse_address(&address)
            .map_err(|reason| CheckError::invalid_param("address", reason))?;
        let user = params.required_parse("username", text("username", "monitor"))?;
        let database = params
            .parse("database", text("database", "app"))?
            .unwrap_or_else(|| user.clone());
        // Not trimmed: a password may begin or end with a space.
        let password = params.str("password").map(str::to_string);
        match &password {
            Some(p) if p.is_empty() => {
                return Err(CheckError::invalid_param(
                    "password",
                    "is empty; leave it out for the pg_isready check, or give query= to log in without one",
                ));
            }
            Some(p) if p.contains('\0') => {
                return Err(CheckError::invalid_param(
                    "password",
                    "must not contain a NUL character",
                ));
            }
            _ => {}
        }
        // The query's default is for a login with a password: without either the
        // probe does not log in (pg_isready mode).
        let query = if params.contains("query") || password.is_some() {
            Some(params.required_parse("query", text("query", "'SELECT 1'"))?)
        } else {
            None
        };
        let tls = Tls::from_params(params, &address, true)?;
        Ok(Config {
            address,
            user,
            database,
            password,
            query,
            tls,
        })
    }

    fn logs_in(&self) -> bool {
        self.query.is_some()
    }
}

/// A parser for a text parameter that must be neither empty nor hold a NUL; its
/// error is the reason for the operator.
fn text(name: &str, example: &str) -> impl FnOnce(&str) -> Result<String, String> {
    move |v| {
        if v.is_empty() {
            Err(format!(
                "is empty; give a value such as {name}={example}, or leave it out"
            ))
        } else if v.contains('\0') {
            Err("must not contain a NUL character".to_string())
        } else {
            Ok(v.to_string())
        }
    }
}

/// What the session learnt on the way, for the details.
#[derive(Debug, Default)]
struct Info {
    auth: Option<Auth>,
    server_version: Option<String>,
    /// Whether the connection is TLS.
    tls: bool,
}

/// How the server treated the login.
#[derive(Debug)]
enum Auth {
    /// It let the probe in without asking for credentials.
    Trust,
    /// It asked for this method, by the operator's name for it (see [`method_name`]).
    Method(String),
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Trust => f.write_str("trust"),
            Auth::Method(method) => f.write_str(method),
        }
    }
}

/// What the server said, when it said something.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// pg_isready mode: the server answers. `refused` is the login error it sent
    /// (a wrong user or database still means it accepts connections).
    Accepting { refused: Option<ServerError> },
    /// The server refuses connections for now (starting up, shutting down, full).
    NotAccepting(ServerError),
    /// An ErrorResponse during the login.
    LoginFailed(ServerError),
    /// The server asks for a password and none was given.
    NeedsPassword(String),
    /// The server asks for a method the probe does not speak.
    Unsupported(String),
    /// The SCRAM exchange went wrong on the client's side of it.
    ScramFailed(String),
    /// The query failed.
    QueryFailed(ServerError),
    /// The query ran: rows (when it returns rows), command tag and first value.
    Queried {
        rows: Option<u64>,
        tag: String,
        first: Option<String>,
    },
    /// A valid message that makes no sense at this point.
    Unexpected { during: &'static str, what: String },
}

/// Why no usable answer arrived, with what was being waited for.
#[derive(Debug)]
enum Fail {
    /// With what was going on, such as `no reply to PING`.
    Tcp(TcpError, Option<String>),
    NotPostgres(NotPostgres, &'static str),
    Closed(&'static str),
    /// `tls=require` and the server answered the SSLRequest with N.
    NoTls,
}

/// A connection that reads whole backend messages.
struct Session {
    conn: Framed<TcpConn>,
}

impl Session {
    /// Connect (with TLS first if asked for) and send the StartupMessage.
    fn start(config: &Config, budget: &Budget, info: &mut Info) -> Result<Session, Fail> {
        let mut conn = tcp::connect(&config.address, budget).map_err(|e| Fail::Tcp(e, None))?;
        if let Some(name) = config.tls.server_name() {
            conn.write_all(&wire::SSL_REQUEST)
                .map_err(|e| Fail::Tcp(e, Some(format!("sending {SSL_REQUEST}"))))?;
            let answer = conn
                .read_some(1)
                .map_err(|e| Fail::Tcp(e, Some(format!("no reply to {SSL_REQUEST}"))))?;
            match answer.first() {
                Some(b'S') => {
                    conn = conn.start_tls(name).map_err(|e| Fail::Tcp(e, None))?;
                    info.tls = true;
                }
                Some(b'N') if matches!(config.tls, Tls::Prefer(_)) => {}
                Some(b'N') => return Err(Fail::NoTls),
                None => return Err(Fail::Closed(SSL_REQUEST)),
                Some(other) => {
                    return Err(Fail::NotPostgres(
                        NotPostgres(format!("byte 0x{other:02x} instead of S or N")),
                        SSL_REQUEST,
                    ));
                }
            }
        }
        // `wire::parse` refuses a message over its cap before the buffer holds it.
        let mut session = Session {
            conn: Framed::new(conn).max(wire::MAX_MESSAGE + 5),
        };
        session.send(&wire::startup(&config.user, &config.database), STARTUP)?;
        Ok(session)
    }

    fn send(&mut self, data: &[u8], during: &'static str) -> Result<(), Fail> {
        self.conn
            .link_mut()
            .write_all(data)
            .map_err(|e| Fail::Tcp(e, Some(format!("sending {during}"))))
    }

    /// The next backend message, reading as much as it needs within the budget.
    fn next(&mut self, during: &'static str) -> Result<Message, Fail> {
        self.conn
            .read_with(during, |buf| wire::parse(buf).map_err(|e| e.0))
            .map_err(|e| match e {
                FrameError::Tcp { step, error } => {
                    Fail::Tcp(error, Some(format!("no reply to {step}")))
                }
                FrameError::Closed { step, .. } => Fail::Closed(step),
                FrameError::Malformed { step, reason } => {
                    Fail::NotPostgres(NotPostgres(reason), step)
                }
                FrameError::TooLarge { step, size, max } => Fail::NotPostgres(
                    NotPostgres(format!(
                        "a message of {size} bytes, more than the {max} accepted"
                    )),
                    step,
                ),
            })
    }
}

/// The SQLSTATE classes that mean "not accepting connections now": 57 (operator
/// intervention: starting up, shutting down, recovery) and 53 (insufficient
/// resources: too many connections, out of memory or disk).
fn refuses_connections(e: &ServerError) -> bool {
    matches!(e.class(), "57" | "53")
}

const SSL_REQUEST: &str = "the SSLRequest";
const STARTUP: &str = "the startup message";
const AUTH: &str = "the login";
const QUERY: &str = "the query";

/// The whole conversation: startup and login, then the query if there is one.
fn run(config: &Config, budget: &Budget, info: &mut Info) -> Result<Outcome, Fail> {
    let mut session = Session::start(config, budget, info)?;
    if let Some(outcome) = Login::new(&mut session, config, info).run()? {
        return Ok(outcome);
    }
    let Some(query) = &config.query else {
        // Trust authentication: logged in, which is more than pg_isready asks.
        let _ = session.send(&wire::terminate(), AUTH);
        return Ok(Outcome::Accepting { refused: None });
    };
    let outcome = run_query(&mut session, query)?;
    // The session is over either way; a failed goodbye changes nothing.
    let _ = session.send(&wire::terminate(), QUERY);
    Ok(outcome)
}

/// The startup phase, from the StartupMessage to ReadyForQuery: the server's
/// first answer, and the login when the probe logs in.
struct Login<'a> {
    session: &'a mut Session,
    config: &'a Config,
    info: &'a mut Info,
    /// What the server is answering, for messages.
    during: &'static str,
    scram: Option<scram::Scram>,
    awaiting: Option<scram::AwaitingFinal>,
    scram_verified: bool,
}

impl<'a> Login<'a> {
    fn new(session: &'a mut Session, config: &'a Config, info: &'a mut Info) -> Self {
        Login {
            session,
            config,
            info,
            during: STARTUP,
            scram: None,
            awaiting: None,
            scram_verified: false,
        }
    }

    /// Read the server's messages up to ReadyForQuery, answering its authentication
    /// requests. `Some` is an outcome reached without a query, `None` that the
    /// server is ready for one.
    fn run(mut self) -> Result<Option<Outcome>, Fail> {
        loop {
            let message = self.session.next(self.during)?;
            let outcome = match message.tag {
                b'R' => self.on_auth_request(&message.body)?,
                b'E' => Some(readiness(self.config, ServerError::parse(&message.body))),
                b'S' => {
                    let (name, value) = wire::parameter_status(&message.body);
                    if name == "server_version" {
                        self.info.server_version = Some(value);
                    }
                    None
                }
                // BackendKeyData, NoticeResponse, NegotiateProtocolVersion: nothing to judge.
                b'K' | b'N' | b'v' => None,
                b'Z' => return Ok(None),
                other => Some(unexpected(
                    self.during,
                    &format!("a '{}' message", other as char),
                )),
            };
            if outcome.is_some() {
                return Ok(outcome);
            }
        }
    }

    /// An Authentication message; `Some` ends the check.
    fn on_auth_request(&mut self, body: &[u8]) -> Result<Option<Outcome>, Fail> {
        let Some((code, data)) = wire::auth_request(body) else {
            return Ok(Some(unexpected(
                self.during,
                "a truncated authentication request",
            )));
        };
        match code {
            0 => Ok(self.on_auth_ok()),
            11 => self.on_sasl_continue(data),
            12 => Ok(self.on_sasl_final(data)),
            _ => self.on_credentials_request(code, data),
        }
    }

    /// AuthenticationOk: logged in, unless the SCRAM exchange is unfinished.
    fn on_auth_ok(&mut self) -> Option<Outcome> {
        if self.scram.is_some() && !self.scram_verified {
            return Some(Outcome::ScramFailed(
                "the server accepted the login without proving it knows the password (no SCRAM signature)".into(),
            ));
        }
        self.info.auth.get_or_insert(Auth::Trust);
        self.during = AUTH;
        None
    }

    /// AuthenticationSASLContinue: the server-first message, answered with the client-final one.
    fn on_sasl_continue(&mut self, data: &[u8]) -> Result<Option<Outcome>, Fail> {
        let Some(state) = &self.scram else {
            return Ok(Some(unexpected(
                self.during,
                "a SASL continuation before SASL",
            )));
        };
        let (client_final, next) = match state.client_final(data) {
            Ok(done) => done,
            Err(e) => return Ok(Some(Outcome::ScramFailed(e.0))),
        };
        self.session
            .send(&wire::sasl_response(client_final.as_bytes()), AUTH)?;
        self.awaiting = Some(next);
        Ok(None)
    }

    /// AuthenticationSASLFinal: the server's proof that it knows the password.
    fn on_sasl_final(&mut self, data: &[u8]) -> Option<Outcome> {
        let Some(state) = &self.awaiting else {
            return Some(unexpected(self.during, "a SASL final message out of turn"));
        };
        if let Err(e) = state.verify(data) {
            return Some(Outcome::ScramFailed(e.0));
        }
        self.scram_verified = true;
        None
    }

    /// The server asks for credentials: in pg_isready mode that is the answer,
    /// otherwise the password goes out as the method wants it.
    fn on_credentials_request(&mut self, code: i32, data: &[u8]) -> Result<Option<Outcome>, Fail> {
        let method = method_name(code, data);
        self.info.auth = Some(Auth::Method(method.clone()));
        if !self.config.logs_in() {
            // Closing without an answer is what libpq does when it has no
            // password, and the server logs nothing for it.
            return Ok(Some(Outcome::Accepting { refused: None }));
        }
        let config = self.config;
        let Some(password) = &config.password else {
            return Ok(Some(Outcome::NeedsPassword(method)));
        };
        self.during = AUTH;
        match code {
            3 => self.session.send(&wire::password(password), AUTH)?,
            5 => {
                let Some(salt) = data.get(..4) else {
                    return Ok(Some(unexpected(self.during, "an MD5 request without salt")));
                };
                let salt = [salt[0], salt[1], salt[2], salt[3]];
                let hashed = scram::md5_password(&config.user, password, salt);
                self.session.send(&wire::password(&hashed), AUTH)?;
            }
            10 if wire::sasl_mechanisms(data)
                .iter()
                .any(|m| m == scram::MECHANISM) =>
            {
                let state = scram::Scram::new(password);
                self.session.send(
                    &wire::sasl_initial(scram::MECHANISM, state.client_first().as_bytes()),
                    AUTH,
                )?;
                self.scram = Some(state);
            }
            _ => return Ok(Some(Outcome::Unsupported(method))),
        }
        Ok(None)
    }
}

/// What an ErrorResponse before ReadyForQuery says about the server's readiness.
fn readiness(config: &Config, error: ServerError) -> Outcome {
    if refuses_connections(&error) {
        Outcome::NotAccepting(error)
    } else if config.logs_in() {
        Outcome::LoginFailed(error)
    } else {
        Outcome::Accepting {
            refused: Some(error),
        }
    }
}

/// Send the query and read its results up to ReadyForQuery.
fn run_query(session: &mut Session, query: &str) -> Result<Outcome, Fail> {
    session.send(&wire::query(query), QUERY)?;
    let (mut rows, mut tag, mut first) = (None::<u64>, String::new(), None);
    loop {
        let message = session.next(QUERY)?;
        match message.tag {
            b'T' => {
                rows.get_or_insert(0);
            }
            b'D' => {
                let count = rows.get_or_insert(0);
                if *count == 0 {
                    first = wire::first_value(&message.body).map(|v| quote(&v));
                }
                *count += 1;
            }
            b'C' => tag = wire::take_cstring(&message.body).0,
            b'I' => tag = "empty query".to_string(),
            b'E' => return Ok(Outcome::QueryFailed(ServerError::parse(&message.body))),
            b'N' | b'S' => {}
            b'Z' => return Ok(Outcome::Queried { rows, tag, first }),
            other => return Ok(unexpected(QUERY, &format!("a '{}' message", other as char))),
        }
    }
}

fn unexpected(during: &'static str, what: &str) -> Outcome {
    Outcome::Unexpected {
        during,
        what: what.to_string(),
    }
}

/// The operator's name for an authentication request.
fn method_name(code: i32, data: &[u8]) -> String {
    if code == 10 {
        let mechanisms = wire::sasl_mechanisms(data);
        if mechanisms.is_empty() {
            "SASL".to_string()
        } else {
            format!("SASL {}", mechanisms.join(", "))
        }
    } else {
        match wire::auth_name(code) {
            Some(name) => name.to_string(),
            None => format!("an unknown method (code {code})"),
        }
    }
}

/// `text` on one line, shortened for a message.
fn quote(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > QUOTE_CHARS {
        format!("{}…", text.chars().take(QUOTE_CHARS).collect::<String>())
    } else {
        text
    }
}

/// The check's result for an outcome; `Err` only for an invalid address.
fn verdict(
    config: &Config,
    outcome: Result<Outcome, Fail>,
    auth: Option<&Auth>,
    elapsed_ms: u128,
) -> Result<CheckResult, CheckError> {
    let address = &config.address;
    let server_error = |result: CheckResult, e: &ServerError| {
        let mut result = result
            .detail("error", "server")
            .detail("sqlstate", &e.code)
            .detail("severity", &e.severity);
        if let Some(detail) = &e.detail {
            result = result.detail("server-detail", detail);
        }
        if let Some(hint) = &e.hint {
            result = result.detail("hint", hint);
        }
        result
    };
    Ok(match outcome {
        Ok(Outcome::Accepting { refused: None }) => {
            let how = match auth {
                Some(Auth::Trust) | None => "logged in without a password".to_string(),
                Some(Auth::Method(method)) => format!("asked for {method} authentication"),
            };
            CheckResult::healthy(format!(
                "{address} is accepting connections ({how}) in {elapsed_ms} ms"
            ))
        }
        Ok(Outcome::Accepting { refused: Some(e) }) => server_error(
            CheckResult::healthy(format!(
                "{address} is accepting connections (refused this login: {e}) in {elapsed_ms} ms"
            )),
            &e,
        ),
        Ok(Outcome::NotAccepting(e)) => server_error(
            CheckResult::unhealthy(format!("{address} is not accepting connections: {e}")),
            &e,
        ),
        Ok(Outcome::LoginFailed(e)) => server_error(
            CheckResult::unhealthy(format!("login to {address} failed: {e}")),
            &e,
        ),
        Ok(Outcome::QueryFailed(e)) => {
            server_error(CheckResult::unhealthy(format!("query failed: {e}")), &e)
        }
        Ok(Outcome::NeedsPassword(method)) => CheckResult::unhealthy(format!(
            "{address} asks for a password ({method}) but no password= was given"
        ))
        .detail("error", "needs-password"),
        Ok(Outcome::Unsupported(method)) => CheckResult::unhealthy(format!(
            "{address} asks for {method} authentication, which the postgres probe does not support \
             (it speaks cleartext, MD5 and SCRAM-SHA-256 without channel binding)"
        ))
        .detail("error", "unsupported-auth"),
        Ok(Outcome::ScramFailed(why)) => {
            CheckResult::unhealthy(format!("SCRAM login to {address} failed: {why}"))
                .detail("error", "scram")
        }
        Ok(Outcome::Queried { rows, tag, first }) => {
            let query = quote(config.query.as_deref().unwrap_or_default().as_bytes());
            let mut message = match rows {
                Some(1) => format!("{query} returned 1 row in {elapsed_ms} ms"),
                Some(n) => format!("{query} returned {n} rows in {elapsed_ms} ms"),
                None if tag.eq_ignore_ascii_case(&query) => {
                    format!("{query} completed in {elapsed_ms} ms")
                }
                None => format!("{query} completed ({tag}) in {elapsed_ms} ms"),
            };
            if let Some(value) = &first {
                message.push_str(&format!(", first value: {value}"));
            }
            let mut result = CheckResult::healthy(message).detail("command", tag);
            if let Some(rows) = rows {
                result = result.detail("rows", rows);
            }
            result
        }
        Ok(Outcome::Unexpected { during, what }) => {
            CheckResult::unhealthy(format!("{address} sent {what} during {during}"))
                .detail("error", "protocol")
        }
        Err(Fail::Tcp(e, during)) => {
            let mut result = e.into_verdict()?;
            if let Some(during) = during {
                result.message.push_str(&format!(" ({during})"));
            }
            result
        }
        Err(Fail::NotPostgres(e, during)) => {
            CheckResult::unhealthy(format!("{address} answered {during} with {e}"))
                .detail("error", "protocol")
        }
        Err(Fail::Closed(during)) => {
            CheckResult::unhealthy(format!("{address} closed the connection during {during}"))
                .detail("error", "closed")
        }
        Err(Fail::NoTls) => CheckResult::unhealthy(format!(
            "{address} does not offer TLS (ssl = off); give tls=prefer to accept plain TCP"
        ))
        .detail("error", "no-tls"),
    })
}

#[cfg(test)]
mod tests;
