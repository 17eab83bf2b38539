//! The bundled `ldap` probe: a bind (anonymous, or simple with a DN and password), then
//! optionally a base search of an entry that must exist, over plain LDAP, LDAPS (TLS from
//! the first byte) or StartTLS. Results are reported with the server's result code, its
//! name (RFC 4511) and its diagnostic message. The few messages a health check needs are
//! encoded here (BER, `ber.rs`): the LDAP crates for Rust are built on tokio.

mod ber;

use std::time::Instant;

use healthprobe_sdk::tcp::{self, FrameError, Framed, Link, TcpConn, TcpError, Tls};
use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};

/// The longest message read: a health check's answers are small.
const MAX_MESSAGE: usize = 256 * 1024;

/// StartTLS's extended operation (RFC 4511, 4.14).
const START_TLS: &str = "1.3.6.1.4.1.1466.20037";

struct Ldap;

impl Probe for Ldap {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "ldap",
            env!("CARGO_PKG_VERSION"),
            "Binds to an LDAP server (anonymously, or with bind-dn and password) and, with \
             base, reads that entry with a base search; over plain LDAP, StartTLS (tls) or \
             LDAPS (implicit-tls). Failures carry the server's result code and message.",
        )
        .param(ParamSpec::required(
            "address",
            "The server as host:port, for example 127.0.0.1:389 (636 for LDAPS).",
        ))
        .param(ParamSpec::optional(
            "bind-dn",
            "DN to bind as (simple bind), for example bind-dn=cn=monitor,dc=example,dc=org; \
             anonymous without it.",
        ))
        .param(ParamSpec::optional(
            "password",
            "The bind DN's password; needs bind-dn. Give it by reference, for example \
             password@file=/run/secrets/ldap.",
        ))
        .param(ParamSpec::optional(
            "base",
            "Also read this entry (a base search; the root DSE when empty), for example \
             base=dc=example,dc=org.",
        ))
        .param(Tls::implicit_param(636))
        .params(Tls::params(true))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let config = Config::from_params(params)?;
        let start = Instant::now();
        let outcome = run(&config, &budget);
        let elapsed_ms = start.elapsed().as_millis();
        let result = match outcome {
            Ok(tls) => {
                let who = match &config.bind_dn {
                    Some(dn) => format!("as {dn}"),
                    None => "anonymously".into(),
                };
                let mut message = format!("bound to {} {who}", config.address);
                if let Some(base) = &config.base {
                    message.push_str(&format!(", read {}", shown_dn(base)));
                }
                if tls {
                    message.push_str(", over TLS");
                }
                CheckResult::healthy(format!("{message} in {elapsed_ms} ms")).detail("tls", tls)
            }
            Err(Fail::Result { step, result }) => CheckResult::unhealthy(format!(
                "{step} at {} failed: {}",
                config.address,
                result.shown()
            ))
            .detail("error", result_name(result.code))
            .detail("code", result.code),
            Err(Fail::Frame(e)) => e.verdict(&config.address),
            Err(Fail::Tcp(e)) => e.into_verdict()?,
        };
        Ok(result
            .detail("address", &config.address)
            .detail("elapsed-ms", elapsed_ms))
    }
}

healthprobe_sdk::export_probe!(Ldap);

fn shown_dn(dn: &str) -> String {
    if dn.is_empty() {
        "the root DSE".into()
    } else {
        dn.to_string()
    }
}

/// The parameters, checked.
#[derive(Debug)]
struct Config {
    address: String,
    bind_dn: Option<String>,
    password: Option<String>,
    base: Option<String>,
    starttls: Tls,
    implicit: Option<String>,
}

impl Config {
    fn from_params(params: &Params) -> Result<Config, CheckError> {
        let address = params.required_str("address")?.trim().to_string();
        tcp::parse_address(&address)
            .map_err(|reason| CheckError::invalid_param("address", reason))?;
        let bind_dn = params.str("bind-dn").map(str::to_string);
        let password = params.str("password").map(str::to_string);
        if password.is_some() && bind_dn.is_none() {
            return Err(CheckError::invalid_config(
                "password= needs bind-dn= (a simple bind names who logs in)",
            ));
        }
        let (implicit, starttls) = Tls::from_params_implicit(params, &address)?;
        Ok(Config {
            address,
            bind_dn,
            password,
            base: params.str("base").map(str::to_string),
            starttls,
            implicit,
        })
    }
}

/// An LDAPResult: the code, the matched DN and the diagnostic message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LdapResult {
    code: u32,
    message: String,
}

impl LdapResult {
    fn shown(&self) -> String {
        let mut shown = format!("{} ({})", result_name(self.code), self.code);
        if !self.message.is_empty() {
            shown.push_str(&format!(
                ": {}",
                self.message.chars().take(200).collect::<String>()
            ));
        }
        shown
    }
}

/// RFC 4511's name of a result code.
fn result_name(code: u32) -> &'static str {
    match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        11 => "adminLimitExceeded",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "error",
    }
}

enum Fail {
    Tcp(TcpError),
    Frame(FrameError),
    /// An operation the server answered with another result than success.
    Result {
        step: &'static str,
        result: LdapResult,
    },
}

impl From<FrameError> for Fail {
    fn from(e: FrameError) -> Self {
        Fail::Frame(e)
    }
}

/// An LDAPMessage: the message id and the operation.
fn message(id: u32, op: Vec<u8>) -> Vec<u8> {
    let mut body = ber::integer(0x02, id);
    body.extend(op);
    ber::tlv(0x30, &body)
}

fn bind(dn: &str, password: &str) -> Vec<u8> {
    let mut body = ber::integer(0x02, 3);
    body.extend(ber::tlv(0x04, dn.as_bytes()));
    body.extend(ber::tlv(0x80, password.as_bytes()));
    ber::tlv(0x60, &body)
}

fn search_base(base: &str) -> Vec<u8> {
    let mut body = ber::tlv(0x04, base.as_bytes());
    body.extend(ber::integer(0x0a, 0)); // baseObject
    body.extend(ber::integer(0x0a, 0)); // neverDerefAliases
    body.extend(ber::integer(0x02, 1)); // sizeLimit
    body.extend(ber::integer(0x02, 0)); // timeLimit
    body.extend(ber::tlv(0x01, &[0])); // typesOnly: false
    body.extend(ber::tlv(0x87, b"objectClass")); // (objectClass=*)
    body.extend(ber::tlv(0x30, &ber::tlv(0x04, b"1.1"))); // no attributes
    ber::tlv(0x63, &body)
}

fn start_tls() -> Vec<u8> {
    ber::tlv(0x77, &ber::tlv(0x80, START_TLS.as_bytes()))
}

/// The next LDAPMessage: its id, the operation's tag and value.
fn read<L: Link>(
    link: &mut Framed<L>,
    step: &'static str,
) -> Result<(u32, u8, Vec<u8>), FrameError> {
    link.read_with(step, |buf| {
        if let Some(&first) = buf.first()
            && first != 0x30
        {
            let shown: String = buf
                .iter()
                .take(40)
                .flat_map(|b| std::ascii::escape_default(*b))
                .map(char::from)
                .collect();
            return Err(format!(
                "expected an LDAP message (0x30), got {first:#04x}; the server sent \"{shown}\"; \
                 is this an LDAP server?"
            ));
        }
        let Some((_, value, used)) = ber::read(buf)? else {
            return Ok(None);
        };
        let parts = ber::elements(value)?;
        let (Some((0x02, id)), Some((tag, op))) = (parts.first(), parts.get(1)) else {
            return Err("an LDAP message without an id and an operation".into());
        };
        Ok(Some(((ber::number(id), *tag, op.to_vec()), used)))
    })
}

/// The LDAPResult in an operation's value.
fn result(op: &[u8]) -> Result<LdapResult, String> {
    let parts = ber::elements(op)?;
    let (Some((0x0a, code)), Some((0x04, _)), Some((0x04, message))) =
        (parts.first(), parts.get(1), parts.get(2))
    else {
        return Err("an LDAPResult without a code, a matched DN and a message".into());
    };
    Ok(LdapResult {
        code: ber::number(code),
        message: String::from_utf8_lossy(message).into_owned(),
    })
}

/// Sends `op` as message `id` and reads until the response of tag `done` to it.
fn exchange<L: Link>(
    link: &mut Framed<L>,
    id: u32,
    op: Vec<u8>,
    step: &'static str,
    done: u8,
) -> Result<LdapResult, Fail> {
    link.send(&message(id, op), step)?;
    loop {
        let (got, tag, value) = read(link, step)?;
        // A notice of disconnection (id 0) carries the reason too.
        if (got == id && tag == done) || got == 0 {
            let result = result(&value)
                .map_err(|reason| Fail::Frame(FrameError::Malformed { step, reason }))?;
            return if result.code == 0 {
                Ok(result)
            } else {
                Err(Fail::Result { step, result })
            };
        }
        // A search's entries come before its result.
    }
}

fn run(config: &Config, budget: &Budget) -> Result<bool, Fail> {
    let conn: TcpConn = match &config.implicit {
        Some(name) => tcp::connect_with(&config.address, &Tls::Require(name.clone()), budget),
        None => tcp::connect(&config.address, budget),
    }
    .map_err(Fail::Tcp)?;
    let mut tls = config.implicit.is_some();
    let mut link = Framed::new(conn).max(MAX_MESSAGE);
    let mut id = 1;
    if !tls {
        let name = match &config.starttls {
            Tls::Off => None,
            Tls::Prefer(name) | Tls::Require(name) => Some(name.clone()),
        };
        if let Some(name) = name {
            match exchange(&mut link, id, start_tls(), "StartTLS", 0x78) {
                Ok(_) => {
                    link = link.start_tls(&name).map_err(Fail::Tcp)?;
                    tls = true;
                }
                // prefer: a server that cannot start TLS is spoken to in plain.
                Err(Fail::Result { .. }) if matches!(config.starttls, Tls::Prefer(_)) => {}
                Err(e) => return Err(e),
            }
            id += 1;
        }
    }
    let dn = config.bind_dn.as_deref().unwrap_or_default();
    let password = config.password.as_deref().unwrap_or_default();
    exchange(&mut link, id, bind(dn, password), "the bind", 0x61)?;
    id += 1;
    if let Some(base) = &config.base {
        exchange(&mut link, id, search_base(base), "the search", 0x65)?;
    }
    // Unbind: a polite goodbye, not waited for.
    let _ = link.send(&message(id + 1, ber::tlv(0x42, &[])), "unbind");
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthprobe_sdk::testing::Script;

    #[test]
    fn a_bind_and_its_refusal_are_read() {
        // BindResponse: invalidCredentials (49), no matched DN, a message.
        let refused = message(
            1,
            ber::tlv(
                0x61,
                &[
                    ber::integer(0x0a, 49),
                    ber::tlv(0x04, b""),
                    ber::tlv(0x04, b"bad password"),
                ]
                .concat(),
            ),
        );
        let mut link = Framed::new(Script::new([Vec::new(), refused]).chunk(5));
        let Err(Fail::Result { step, result }) =
            exchange(&mut link, 1, bind("cn=x", "y"), "the bind", 0x61)
        else {
            panic!("not refused");
        };
        assert_eq!(step, "the bind");
        assert_eq!(result.shown(), "invalidCredentials (49): bad password");
    }

    #[test]
    fn another_protocol_is_named() {
        let mut link = Framed::new(Script::new([Vec::new(), b"HTTP/1.1 400 Bad".to_vec()]));
        let Err(Fail::Frame(e)) = exchange(&mut link, 1, bind("", ""), "the bind", 0x61) else {
            panic!("not refused");
        };
        assert!(e.to_string().contains("is this an LDAP server?"), "{e}");
    }
}
