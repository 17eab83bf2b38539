//! The bundled `memcached` probe: sends `version` over the text protocol and expects
//! `VERSION x.y.z`. A server started with `-Y AUTHFILE` (text-protocol authentication)
//! answers `CLIENT_ERROR unauthenticated` until the client logs in, which is done only
//! then, and only with the operator's `username` and `password`.

use std::time::Instant;

use healthprobe_sdk::tcp::{self, TcpConn, TcpError, Tls};
use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};

/// Longest reply line read; a `VERSION` line is a few dozen bytes.
const MAX_LINE: usize = 1024;

/// Longest reply quoted in a message.
const QUOTE_CHARS: usize = 200;

struct Memcached;

impl Probe for Memcached {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "memcached",
            env!("CARGO_PKG_VERSION"),
            "Sends `version` over memcached's text protocol and expects VERSION; memcached has no password unless started with -Y (then give username and password).",
        )
        .param(ParamSpec::required(
            "address",
            "The memcached server as host:port, for example 127.0.0.1:11211.",
        ))
        .param(ParamSpec::optional(
            "username",
            "User for a server started with -Y AUTHFILE (text-protocol authentication), for example username=probe; used only if the server asks for it.",
        ))
        .param(ParamSpec::optional(
            "password",
            "That user's password from the -Y AUTHFILE, for example password=s3cret; needs username.",
        ))
        .params(Tls::params(false))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let address = params.required_str("address")?.trim();
        tcp::parse_address(address)
            .map_err(|reason| CheckError::invalid_param("address", reason))?;
        let credentials = credentials(params.str("username"), params.str("password"))?;
        let tls = Tls::from_params(params, address, false)?;

        let start = Instant::now();
        let outcome = tcp::connect_with(address, &tls, &budget)
            .map_err(Failure::Tcp)
            .and_then(|mut conn| converse(&mut conn, credentials.as_ref()));
        let elapsed_ms = start.elapsed().as_millis();
        let result = match outcome {
            Ok(version) => CheckResult::healthy(format!(
                "VERSION {version} from {address} in {elapsed_ms} ms"
            ))
            .detail("version", version),
            Err(Failure::Tcp(TcpError::Timeout {
                action: "reading" | "writing",
                ..
            })) => {
                CheckResult::unhealthy(format!("timeout waiting for {address} to answer `version`"))
                    .detail("error", "timeout")
            }
            Err(Failure::Tcp(e)) => e.into_verdict()?,
            Err(Failure::Reply(reply)) => {
                let (message, kind) = reply.describe(address, credentials.is_some());
                CheckResult::unhealthy(message).detail("error", kind)
            }
        };
        Ok(result
            .detail("address", address)
            .detail("elapsed-ms", elapsed_ms))
    }
}

healthprobe_sdk::export_probe!(Memcached);

/// `username` and `password`, both or neither.
fn credentials(
    username: Option<&str>,
    password: Option<&str>,
) -> Result<Option<(String, String)>, CheckError> {
    match (username, password) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(CheckError::invalid_param(
            "password",
            "is required with username (memcached -Y checks both)",
        )),
        (None, Some(_)) => Err(CheckError::invalid_param(
            "username",
            "is required with password (memcached -Y checks both)",
        )),
        (Some(user), Some(password)) => {
            // The server splits the login at the first space and ends it at the line end.
            if user.is_empty() || user.contains([' ', '\r', '\n']) {
                return Err(CheckError::invalid_param(
                    "username",
                    format!("expected a user name without spaces or line breaks, got '{user}'"),
                ));
            }
            if password.contains(['\r', '\n']) {
                return Err(CheckError::invalid_param(
                    "password",
                    "must not contain line breaks",
                ));
            }
            Ok(Some((user.to_string(), password.to_string())))
        }
    }
}

/// Why the check failed.
enum Failure {
    /// Connecting, reading or writing failed.
    Tcp(TcpError),
    /// The server answered, but not with VERSION (or refused the login).
    Reply(Reply),
}

impl From<TcpError> for Failure {
    fn from(e: TcpError) -> Self {
        Failure::Tcp(e)
    }
}

/// `version`, logging in first if the server asks for it and credentials were given.
fn converse(conn: &mut TcpConn, credentials: Option<&(String, String)>) -> Result<String, Failure> {
    let first = ask(conn, b"version\r\n")?;
    let reply = match (Reply::parse(&first), credentials) {
        (Reply::Unauthenticated, Some((user, password))) => {
            let login = format!("{user} {password}");
            // `-Y` takes the login as the data of a `set`; the key is ignored.
            let mut request = format!("set healthprobe 0 0 {}\r\n", login.len()).into_bytes();
            request.extend_from_slice(login.as_bytes());
            request.extend_from_slice(b"\r\n");
            match Reply::parse(&ask(conn, &request)?) {
                Reply::Stored => Reply::parse(&ask(conn, b"version\r\n")?),
                Reply::ClientError(text) => return Err(Failure::Reply(Reply::LoginFailed(text))),
                other => return Err(Failure::Reply(other)),
            }
        }
        (reply, _) => reply,
    };
    match reply {
        Reply::Version(version) => Ok(version),
        other => Err(Failure::Reply(other)),
    }
}

/// Send `request` and read one reply line.
fn ask(conn: &mut TcpConn, request: &[u8]) -> Result<Vec<u8>, TcpError> {
    conn.write_all(request)?;
    conn.read_until(b"\r\n", MAX_LINE)
}

/// One reply line, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    /// `VERSION x.y.z`.
    Version(String),
    /// `STORED`, the answer to a successful login.
    Stored,
    /// `CLIENT_ERROR unauthenticated`: the server runs with `-Y`.
    Unauthenticated,
    /// The login was refused, with the server's text.
    LoginFailed(String),
    /// `ERROR`: the server does not know the command.
    Error,
    /// `CLIENT_ERROR …`.
    ClientError(String),
    /// `SERVER_ERROR …`, for example out of memory.
    ServerError(String),
    /// The connection closed before a whole line arrived (what arrived, if anything).
    Closed(String),
    /// Anything else (not memcached?).
    Other(String),
}

impl Reply {
    /// Classify the bytes read for one reply.
    fn parse(data: &[u8]) -> Reply {
        let Some(line) = data.strip_suffix(b"\r\n") else {
            // `read_until` stops short of the line end only at EOF or when the line is
            // too long for memcached.
            return if data.len() >= MAX_LINE {
                Reply::Other(quote(data))
            } else {
                Reply::Closed(quote(data))
            };
        };
        if line.contains(&b'\n') {
            // More than one line: a pipelined answer this probe did not ask for.
            return Reply::Other(quote(line));
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if let Some(version) = text.strip_prefix("VERSION ") {
            Reply::Version(quote(version.trim().as_bytes()))
        } else if text == "STORED" {
            Reply::Stored
        } else if text == "ERROR" {
            Reply::Error
        } else if text == "CLIENT_ERROR unauthenticated" {
            Reply::Unauthenticated
        } else if text.starts_with("CLIENT_ERROR") {
            Reply::ClientError(quote(text.as_bytes()))
        } else if text.starts_with("SERVER_ERROR") {
            Reply::ServerError(quote(text.as_bytes()))
        } else {
            Reply::Other(quote(text.as_bytes()))
        }
    }

    /// The unhealthy message and the `error` detail for a reply that is not healthy.
    fn describe(&self, address: &str, had_credentials: bool) -> (String, &'static str) {
        match self {
            Reply::Unauthenticated if had_credentials => (
                format!("{address} still answered CLIENT_ERROR unauthenticated after the login"),
                "auth",
            ),
            Reply::Unauthenticated => (
                format!(
                    "CLIENT_ERROR unauthenticated from {address}: the server requires a login (memcached -Y); give username= and password="
                ),
                "auth",
            ),
            Reply::LoginFailed(text) => (format!("{text} (login to {address})"), "auth"),
            Reply::Error => (
                format!(
                    "{address} answered ERROR to `version`: not a memcached text-protocol port?"
                ),
                "protocol",
            ),
            Reply::ClientError(text) | Reply::ServerError(text) => {
                (format!("{text} from {address}"), "server-error")
            }
            Reply::Closed(got) if got.is_empty() => (
                format!("{address} closed the connection without answering `version`"),
                "closed",
            ),
            Reply::Closed(got) => (
                format!(
                    "{address} closed the connection after '{got}' without finishing its answer"
                ),
                "closed",
            ),
            Reply::Other(text) => (
                format!("unexpected answer to `version` from {address}: '{text}'"),
                "protocol",
            ),
            // Out of turn: STORED to `version`, or VERSION to the login.
            Reply::Stored => (
                format!("unexpected answer STORED from {address}"),
                "protocol",
            ),
            Reply::Version(v) => (
                format!("unexpected answer VERSION {v} from {address} to the login"),
                "protocol",
            ),
        }
    }
}

/// `bytes` on one line for a message: printable ASCII as is, the rest escaped; cut at
/// [`QUOTE_CHARS`].
fn quote(bytes: &[u8]) -> String {
    let mut out: String = bytes
        .iter()
        .take(QUOTE_CHARS)
        .map(|&b| match b {
            // Quotes stay as they are: the message quotes with '…' only for the eye.
            b'\'' | b'"' => char::from(b).to_string(),
            _ => std::ascii::escape_default(b).map(char::from).collect(),
        })
        .collect();
    if bytes.len() > QUOTE_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthprobe_sdk::Status;

    #[test]
    fn replies() {
        assert_eq!(
            Reply::parse(b"VERSION 1.6.18\r\n"),
            Reply::Version("1.6.18".into())
        );
        assert_eq!(Reply::parse(b"ERROR\r\n"), Reply::Error);
        assert_eq!(Reply::parse(b"STORED\r\n"), Reply::Stored);
        assert_eq!(
            Reply::parse(b"CLIENT_ERROR unauthenticated\r\n"),
            Reply::Unauthenticated
        );
        assert_eq!(
            Reply::parse(b"SERVER_ERROR out of memory\r\n"),
            Reply::ServerError("SERVER_ERROR out of memory".into())
        );
        assert_eq!(
            Reply::parse(b"CLIENT_ERROR authentication failure\r\n"),
            Reply::ClientError("CLIENT_ERROR authentication failure".into())
        );
        assert_eq!(Reply::parse(b""), Reply::Closed(String::new()));
        assert_eq!(Reply::parse(b"VERS"), Reply::Closed("VERS".into()));
        assert_eq!(Reply::parse(b"+PONG\r\n"), Reply::Other("+PONG".into()));
        assert_eq!(
            Reply::parse(b"HTTP/1.1 400\x00\r\n"),
            Reply::Other("HTTP/1.1 400\\x00".into())
        );
        assert!(matches!(Reply::parse(&[b'x'; MAX_LINE]), Reply::Other(_)));
    }

    #[test]
    fn messages_quote_the_server() {
        let a = "127.0.0.1:11211";
        let (msg, kind) =
            Reply::ServerError("SERVER_ERROR out of memory".into()).describe(a, false);
        assert_eq!(msg, "SERVER_ERROR out of memory from 127.0.0.1:11211");
        assert_eq!(kind, "server-error");
        let (msg, _) = Reply::Error.describe(a, false);
        assert!(msg.contains("answered ERROR"), "{msg}");
        let (msg, kind) = Reply::Unauthenticated.describe(a, false);
        assert!(msg.contains("username= and password="), "{msg}");
        assert_eq!(kind, "auth");
        let (msg, _) =
            Reply::LoginFailed("CLIENT_ERROR authentication failure".into()).describe(a, true);
        assert_eq!(
            msg,
            "CLIENT_ERROR authentication failure (login to 127.0.0.1:11211)"
        );
        let (msg, _) = Reply::Other("+PONG".into()).describe(a, false);
        assert_eq!(
            msg,
            "unexpected answer to `version` from 127.0.0.1:11211: '+PONG'"
        );
    }

    #[test]
    fn bad_params() {
        for (pairs, name) in [
            (vec![("address", "localhost")], "address"),
            (vec![("address", "h:1"), ("username", "u")], "password"),
            (vec![("address", "h:1"), ("password", "p")], "username"),
            (
                vec![("address", "h:1"), ("username", "a b"), ("password", "p")],
                "username",
            ),
            (
                vec![
                    ("address", "h:1"),
                    ("username", "u"),
                    ("password", "p\r\nflush_all"),
                ],
                "password",
            ),
        ] {
            match Memcached::check(&Params::from_pairs(pairs.clone()), Budget::new(1000)) {
                Err(CheckError::InvalidParam(p)) => assert_eq!(p.name, name, "{pairs:?}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn describe_documents_every_param() {
        let info = Memcached::describe();
        let names: Vec<_> = info.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["address", "username", "password", "tls", "server-name"]
        );
        assert!(
            info.params
                .iter()
                .all(|p| p.description.contains("for example"))
        );
        assert!(info.description.contains("no password"));
    }

    #[test]
    fn refused_is_unhealthy() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let result = Memcached::check(
            &Params::from_pairs([("address", address.as_str())]),
            Budget::new(2000),
        )
        .unwrap();
        assert_eq!(result.status, Status::Unhealthy);
        assert_eq!(result.message, format!("connection to {address} refused"));
    }
}
