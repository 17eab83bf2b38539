//! The bundled `redis` probe: `PING` must answer `PONG`, after `AUTH` when a
//! password is given, and the replication role must match when `role` is given.

mod resp;

use std::time::Instant;

use healthprobe_sdk::tcp::{self, FrameError, Framed, TcpConn, TcpError, Tls};
use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};

use resp::{NotResp, Reply};

struct RedisProbe;

impl Probe for RedisProbe {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "redis",
            env!("CARGO_PKG_VERSION"),
            "Sends PING to a Redis server (after AUTH when a password is given) and expects PONG; \
             optionally checks the replication role. A server that is loading, paused, busy or \
             refuses the credentials is unhealthy, with its own error text.",
        )
        .param(ParamSpec::required(
            "address",
            "Redis server as host:port, for example 127.0.0.1:6379.",
        ))
        .param(ParamSpec::optional(
            "password",
            "Password sent with AUTH before PING (requirepass, or the ACL user's password), \
             for example password=s3cret.",
        ))
        .param(ParamSpec::optional(
            "username",
            "ACL user name for AUTH username password (Redis 6+); needs password, \
             for example username=monitor.",
        ))
        .param(ParamSpec::optional(
            "role",
            "Expected replication role, master or replica (from ROLE, or INFO replication \
             where ROLE is not allowed), for example role=master.",
        ))
        .params(Tls::params(false))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let config = Config::from_params(params)?;
        let start = Instant::now();
        let result = run(&config, &budget);
        let elapsed_ms = start.elapsed().as_millis();
        let result = match result {
            Ok(Outcome::Pong { role }) => {
                let mut message = format!("PONG from {} in {elapsed_ms} ms", config.address);
                if let Some(role) = &role {
                    message.push_str(&format!(", role {role}"));
                }
                let result = CheckResult::healthy(message);
                match role {
                    Some(role) => result.detail("role", role),
                    None => result,
                }
            }
            Ok(Outcome::WrongRole { role }) => CheckResult::unhealthy(format!(
                "role is {role}, expected {} ({} answers PONG)",
                config.role.map_or("", Role::name),
                config.address
            ))
            .detail("role", role),
            Ok(Outcome::ServerError { step, text }) => {
                let code = text.split_whitespace().next().unwrap_or("ERR").to_string();
                CheckResult::unhealthy(format!("{step} at {} failed: {text}", config.address))
                    .detail("error", code)
            }
            Ok(Outcome::Unexpected { step, reply }) => {
                CheckResult::unhealthy(format!("{} answered {step} with {reply}", config.address))
                    .detail("error", "protocol")
            }
            Err(Fail::Tcp(e, step)) => {
                let mut result = e.into_verdict()?;
                if let Some(step) = step {
                    result.message.push_str(&format!(" ({step})"));
                }
                result
            }
            Err(Fail::NotResp(e, step)) => {
                CheckResult::unhealthy(format!("{} answered {step} with {e}", config.address))
                    .detail("error", "protocol")
            }
            Err(Fail::Closed(step)) => CheckResult::unhealthy(format!(
                "{} closed the connection without answering {step}",
                config.address
            ))
            .detail("error", "closed"),
        };
        Ok(result
            .detail("address", &config.address)
            .detail("elapsed-ms", elapsed_ms))
    }
}

healthprobe_sdk::export_probe!(RedisProbe);

/// A replication role the operator can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Master,
    Replica,
}

impl Role {
    fn parse(text: &str) -> Result<Role, String> {
        match text.to_ascii_lowercase().as_str() {
            "master" => Ok(Role::Master),
            // Redis itself still says `slave` in ROLE and INFO.
            "replica" | "slave" => Ok(Role::Replica),
            _ => Err(format!("expected master or replica, got '{text}'")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Replica => "replica",
        }
    }

    /// The operator's name for a role as Redis reports it (`slave` is a replica).
    fn reported(role: &str) -> String {
        match role {
            "slave" => "replica".to_string(),
            other => other.to_string(),
        }
    }
}

/// The parameters, checked.
#[derive(Debug)]
struct Config {
    address: String,
    password: Option<String>,
    username: Option<String>,
    tls: Tls,
    role: Option<Role>,
}

impl Config {
    fn from_params(params: &Params) -> Result<Config, CheckError> {
        let address = params.required_str("address")?.trim().to_string();
        tcp::parse_address(&address)
            .map_err(|reason| CheckError::invalid_param("address", reason))?;
        let password = params.str("password").map(str::to_string);
        if password.as_deref() == Some("") {
            return Err(CheckError::invalid_param(
                "password",
                "is empty; leave it out when the server needs no password",
            ));
        }
        let username = params.str("username").map(|u| u.trim().to_string());
        match (&username, &password) {
            (Some(u), _) if u.is_empty() => {
                return Err(CheckError::invalid_param(
                    "username",
                    "is empty; give an ACL user name such as username=monitor, or leave it out",
                ));
            }
            (Some(_), None) => {
                return Err(CheckError::invalid_param(
                    "username",
                    "needs password= as well: Redis authenticates a user with AUTH username password",
                ));
            }
            _ => {}
        }
        let role = params.parse("role", Role::parse)?;
        let tls = Tls::from_params(params, &address, false)?;
        Ok(Config {
            address,
            password,
            username,
            tls,
            role,
        })
    }
}

/// What the server said, when it said something.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// PONG, and the role when one was asked for (already checked).
    Pong { role: Option<String> },
    /// PONG, but the role differs from the expected one.
    WrongRole { role: String },
    /// An error reply (`-LOADING …`), quoted as the server sent it.
    ServerError { step: &'static str, text: String },
    /// A valid reply of the wrong kind.
    Unexpected { step: &'static str, reply: String },
}

/// Why no usable answer arrived, with the command being waited for.
#[derive(Debug)]
enum Fail {
    /// With what was going on, such as `no reply to PING`.
    Tcp(TcpError, Option<String>),
    NotResp(NotResp, &'static str),
    Closed(&'static str),
}

/// A connection that reads whole replies.
struct Session {
    conn: Framed<TcpConn>,
}

impl Session {
    fn send(&mut self, data: &[u8], step: &'static str) -> Result<(), Fail> {
        self.conn
            .link_mut()
            .write_all(data)
            .map_err(|e| Fail::Tcp(e, Some(format!("sending {step}"))))
    }

    /// The next reply, reading as much as it needs within the budget.
    fn reply(&mut self, step: &'static str) -> Result<Reply, Fail> {
        self.conn
            .read_with(step, |buf| resp::parse(buf).map_err(|e| e.0))
            .map_err(|e| match e {
                FrameError::Tcp { step, error } => {
                    Fail::Tcp(error, Some(format!("no reply to {step}")))
                }
                FrameError::Closed { step, .. } => Fail::Closed(step),
                FrameError::Malformed { step, reason } => Fail::NotResp(NotResp(reason), step),
                FrameError::TooLarge { step, .. } => {
                    Fail::NotResp(NotResp("a reply of more than 1 MiB".to_string()), step)
                }
            })
    }
}

fn run(config: &Config, budget: &Budget) -> Result<Outcome, Fail> {
    let conn =
        tcp::connect_with(&config.address, &config.tls, budget).map_err(|e| Fail::Tcp(e, None))?;
    // A line that never ends is not Redis either: no reply is longer than the largest
    // bulk string `resp::parse` accepts, and a little.
    let mut session = Session {
        conn: Framed::new(conn).max(resp::MAX_BULK + 1024),
    };

    // One write for all commands: a single round trip when the server is healthy.
    let mut out = Vec::new();
    if let Some(password) = &config.password {
        out.extend(match &config.username {
            Some(user) => resp::command(&[b"AUTH", user.as_bytes(), password.as_bytes()]),
            None => resp::command(&[b"AUTH", password.as_bytes()]),
        });
    }
    out.extend(resp::command(&[b"PING"]));
    if config.role.is_some() {
        out.extend(resp::command(&[b"ROLE"]));
    }
    let first = if config.password.is_some() {
        "AUTH"
    } else {
        "PING"
    };
    session.send(&out, first)?;

    if config.password.is_some() {
        match session.reply("AUTH")? {
            Reply::Simple(s) if s == "OK" => {}
            Reply::Error(text) => return Ok(Outcome::ServerError { step: "AUTH", text }),
            other => {
                return Ok(Outcome::Unexpected {
                    step: "AUTH",
                    reply: other.describe(),
                });
            }
        }
    }
    match session.reply("PING")? {
        Reply::Simple(s) if s == "PONG" => {}
        Reply::Error(text) => return Ok(Outcome::ServerError { step: "PING", text }),
        other => {
            return Ok(Outcome::Unexpected {
                step: "PING",
                reply: other.describe(),
            });
        }
    }
    let Some(expected) = config.role else {
        return Ok(Outcome::Pong { role: None });
    };

    let role = match session.reply("ROLE")? {
        Reply::Error(role_error) => {
            // ROLE may be renamed away or denied by an ACL; INFO often is not.
            session.send(&resp::command(&[b"INFO", b"replication"]), "INFO")?;
            match session.reply("INFO replication")? {
                Reply::Bulk(Some(info)) => match resp::role_from_info(&info) {
                    Some(role) => role,
                    None => {
                        return Ok(Outcome::Unexpected {
                            step: "INFO replication",
                            reply: "no role: line".to_string(),
                        });
                    }
                },
                Reply::Error(info_error) => {
                    return Ok(Outcome::ServerError {
                        step: "ROLE",
                        text: format!("{role_error}; INFO replication: {info_error}"),
                    });
                }
                other => {
                    return Ok(Outcome::Unexpected {
                        step: "INFO replication",
                        reply: other.describe(),
                    });
                }
            }
        }
        reply => match resp::role_from_role(&reply) {
            Some(role) => role,
            None => {
                return Ok(Outcome::Unexpected {
                    step: "ROLE",
                    reply: reply.describe(),
                });
            }
        },
    };
    Ok(judge_role(&Role::reported(&role), expected))
}

/// PONG has arrived: the verdict on the `role` the server reported.
fn judge_role(role: &str, expected: Role) -> Outcome {
    if role == expected.name() {
        Outcome::Pong {
            role: Some(role.to_string()),
        }
    } else {
        Outcome::WrongRole {
            role: resp::excerpt(role),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthprobe_sdk::{Status, testing};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, CheckError> {
        Config::from_params(&Params::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn describe_documents_every_parameter() {
        testing::assert_documented(
            &RedisProbe::describe(),
            &[
                "address",
                "password",
                "username",
                "role",
                "tls",
                "server-name",
            ],
        );
    }

    #[test]
    fn parameters_are_checked() {
        let c = config(&[("address", "127.0.0.1:6379"), ("role", "Replica")]).unwrap();
        assert_eq!(c.role, Some(Role::Replica));
        let (name, why) = testing::invalid_param(config(&[("address", "127.0.0.1")]));
        assert_eq!(name, "address");
        assert!(why.contains("host:port"), "{why}");
        let (name, why) = testing::invalid_param(config(&[("address", "h:1"), ("role", "leader")]));
        assert_eq!(
            (name.as_str(), why.as_str()),
            ("role", "expected master or replica, got 'leader'")
        );
        let (name, why) =
            testing::invalid_param(config(&[("address", "h:1"), ("username", "app")]));
        assert_eq!(name, "username");
        assert!(why.contains("password"), "{why}");
        let (name, _) = testing::invalid_param(config(&[("address", "h:1"), ("password", "")]));
        assert_eq!(name, "password");
    }

    #[test]
    fn roles_compare_in_the_operators_words() {
        assert_eq!(
            judge_role(&Role::reported("slave"), Role::Replica),
            Outcome::Pong {
                role: Some("replica".into())
            }
        );
        assert_eq!(
            judge_role(&Role::reported("master"), Role::Replica),
            Outcome::WrongRole {
                role: "master".into()
            }
        );
        assert_eq!(
            judge_role(&Role::reported("sentinel"), Role::Master),
            Outcome::WrongRole {
                role: "sentinel".into()
            }
        );
    }

    /// Runs the probe against a one-connection fake that expects `request` and
    /// answers `reply`. The real server is exercised by tests/cli/redis.rs; this
    /// covers the reply handling byte for byte.
    fn against(
        params: &[(&str, &str)],
        request: &'static [u8],
        reply: &'static [u8],
    ) -> CheckResult {
        conversation(params, &[(request, reply)])
    }

    /// Like [`against`], for several exchanges in turn.
    fn conversation(
        params: &[(&str, &str)],
        exchanges: &[(&'static [u8], &'static [u8])],
    ) -> CheckResult {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let exchanges = exchanges.to_vec();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for (request, reply) in exchanges {
                let mut got = vec![0; request.len()];
                s.read_exact(&mut got).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(request)
                );
                s.write_all(reply).unwrap();
            }
        });
        let mut pairs = vec![("address", address.as_str())];
        pairs.extend_from_slice(params);
        let result = RedisProbe::check(&Params::from_pairs(pairs), Budget::new(5_000)).unwrap();
        server.join().unwrap();
        result
    }

    #[test]
    fn pong_is_healthy() {
        let r = against(&[], b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n");
        assert_eq!(r.status, Status::Healthy);
        assert!(
            r.message.starts_with("PONG from 127.0.0.1:"),
            "{}",
            r.message
        );
    }

    #[test]
    fn auth_error_is_quoted() {
        let r = against(
            &[("username", "app"), ("password", "nope")],
            b"*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$4\r\nnope\r\n*1\r\n$4\r\nPING\r\n",
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n-NOAUTH Authentication required.\r\n",
        );
        assert_eq!(r.status, Status::Unhealthy);
        assert!(
            r.message.ends_with(
                " failed: WRONGPASS invalid username-password pair or user is disabled."
            ),
            "{}",
            r.message
        );
        assert!(r.message.starts_with("AUTH at 127.0.0.1:"), "{}", r.message);
        assert_eq!(r.get_detail("error"), Some("WRONGPASS"));
    }

    #[test]
    fn loading_is_unhealthy() {
        let r = against(
            &[],
            b"*1\r\n$4\r\nPING\r\n",
            b"-LOADING Redis is loading the dataset in memory\r\n",
        );
        assert_eq!(r.status, Status::Unhealthy);
        assert!(
            r.message
                .ends_with("failed: LOADING Redis is loading the dataset in memory"),
            "{}",
            r.message
        );
    }

    #[test]
    fn role_falls_back_to_info() {
        let r = conversation(
            &[("role", "replica")],
            &[
                (
                    b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nROLE\r\n",
                    b"+PONG\r\n-NOPERM this user has no permissions to run the 'role' command\r\n",
                ),
                (
                    b"*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n",
                    b"$27\r\n# Replication\r\nrole:slave\r\n\r\n",
                ),
            ],
        );
        assert_eq!(r.status, Status::Healthy, "{}", r.message);
        assert!(r.message.ends_with(", role replica"), "{}", r.message);
    }

    #[test]
    fn role_mismatch_is_unhealthy() {
        let r = against(
            &[("role", "replica")],
            b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nROLE\r\n",
            b"+PONG\r\n*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n",
        );
        assert_eq!(r.status, Status::Unhealthy);
        assert!(
            r.message.starts_with("role is master, expected replica"),
            "{}",
            r.message
        );
    }

    #[test]
    fn not_redis_and_early_close_are_unhealthy() {
        let r = against(
            &[],
            b"*1\r\n$4\r\nPING\r\n",
            b"HTTP/1.1 400 Bad Request\r\n\r\n",
        );
        assert_eq!(r.status, Status::Unhealthy);
        assert!(r.message.contains("not a Redis reply"), "{}", r.message);
        let r = against(&[], b"*1\r\n$4\r\nPING\r\n", b"");
        assert_eq!(r.status, Status::Unhealthy);
        assert!(
            r.message
                .contains("closed the connection without answering PING"),
            "{}",
            r.message
        );
    }

    #[test]
    fn silent_server_times_out_naming_the_command() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let r = RedisProbe::check(
            &Params::from_pairs([("address", address.as_str())]),
            Budget::new(300),
        )
        .unwrap();
        assert_eq!(r.status, Status::Unhealthy);
        // `timeout after 300 ms reading …`: how long it waited, and for what.
        assert!(
            r.message.starts_with("timeout after ")
                && r.message
                    .ends_with(&format!(" reading {address} (no reply to PING)")),
            "{}",
            r.message
        );
        assert_eq!(r.get_detail("error"), Some("timeout"));
    }
}
