//! TLS over a [`TcpConn`]: the handshake (the host's `wasi:tls`, under the operator's
//! trust), what it told, and the `tls` and `server-name` parameters every TCP probe shares.

use super::{TcpConn, TcpError, TcpStream, connect, parse_address, sys};
use crate::{Budget, CheckError};

/// What a TLS handshake told about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPeer {
    /// The application protocol the server chose (ALPN), for example `h2`.
    pub protocol: Option<String>,
    /// When its certificate expires, in seconds since the Unix epoch.
    pub not_after: Option<u64>,
    /// The TLS version, for example `TLSv1.3`.
    pub version: String,
}

/// The earliest certificate expiry seen in this check's handshakes (0: none yet). A probe
/// runs one check per instance, single-threaded.
static EARLIEST_EXPIRY: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn record_expiry(not_after: Option<u64>) {
    use core::sync::atomic::Ordering;
    if let Some(t) = not_after.filter(|t| *t > 0) {
        let _ = EARLIEST_EXPIRY.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |e| {
            Some(if e == 0 { t } else { e.min(t) })
        });
    }
}

/// The TLS version of this check's last handshake.
static LAST_VERSION: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The TLS version of this check's last handshake, and forget it: the SDK adds it to the
/// result as the `tls-version` detail (`TLSv1.3`).
pub(crate) fn take_tls_version() -> Option<String> {
    LAST_VERSION.lock().ok()?.take()
}

/// The earliest expiry of the certificates this check's TLS handshakes saw, and forget it:
/// the SDK adds it to the result as the `ssl-earliest-cert-expiry` detail (seconds since
/// the epoch; the name and meaning of blackbox_exporter's metric).
pub(crate) fn take_earliest_expiry() -> Option<u64> {
    match EARLIEST_EXPIRY.swap(0, core::sync::atomic::Ordering::Relaxed) {
        0 => None,
        t => Some(t),
    }
}

impl TcpConn {
    /// The same connection with TLS on top: the handshake with `server_name` (the name
    /// or IP address the server's certificate must be for), within the budget. Which CAs
    /// to trust and which client certificate to present are the operator's, set on the
    /// host (`--tls-ca`, `--tls-client-cert`); the probe never sees them.
    pub fn start_tls(self, server_name: &str) -> Result<TcpConn, TcpError> {
        self.start_tls_alpn(server_name, &[])
    }

    /// [`start_tls`](Self::start_tls), offering the application protocols `alpn` (most
    /// preferred first; `h2` for gRPC). Which one the server chose is in
    /// [`tls_peer`](Self::tls_peer).
    pub fn start_tls_alpn(self, server_name: &str, alpn: &[&str]) -> Result<TcpConn, TcpError> {
        self.check_budget("connecting")?;
        let TcpConn {
            stream,
            address,
            peer,
            budget,
            tls: _,
        } = self;
        match stream.inner.into_tls(server_name, alpn, &budget) {
            Ok((inner, tls)) => {
                record_expiry(tls.not_after);
                if let Ok(mut last) = LAST_VERSION.lock() {
                    *last = Some(tls.version.clone());
                }
                Ok(TcpConn {
                    stream: TcpStream { inner },
                    address,
                    peer,
                    budget,
                    tls: Some(tls),
                })
            }
            Err(sys::Fail::Timeout) => Err(TcpError::timeout(
                &address,
                "in the TLS handshake with",
                Some(&budget),
            )),
            Err(e) => Err(TcpError::from_sys(&address, "connecting", e, Some(&budget))),
        }
    }
}

/// Whether and how a probe speaks TLS: its `tls` and `server-name` parameters, the same
/// in every bundled TCP probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Plain TCP (`tls=false`, the default).
    Off,
    /// TLS if the server offers it, plain otherwise (`tls=prefer`; only for protocols
    /// that negotiate TLS, such as PostgreSQL's and MySQL's).
    Prefer(String),
    /// TLS or nothing (`tls=true` or `tls=require`), to this server name.
    Require(String),
}

impl Tls {
    /// The parameter specs: `tls` (with `prefer` if the protocol negotiates TLS) and
    /// `server-name`.
    pub fn params(negotiated: bool) -> [crate::ParamSpec; 2] {
        let tls = if negotiated {
            "Speak TLS: true (or require) refuses a server without it, prefer falls back to \
             plain TCP if the server does not offer it, false (or disable) never asks; for \
             example tls=require. The CA and client certificate are the operator's: \
             --tls-ca, --tls-client-cert."
        } else {
            "Speak TLS over the connection: true or false, for example tls=true. The CA and \
             client certificate are the operator's: --tls-ca, --tls-client-cert."
        };
        [
            crate::ParamSpec::optional("tls", tls).default("false"),
            crate::ParamSpec::optional(
                "server-name",
                "The name the server's certificate must be for, when it is not the host of \
                 the address, for example server-name=db.internal.",
            ),
        ]
    }

    /// Reads `tls` and `server-name`; the server name defaults to the host of `address`.
    pub fn from_params(
        params: &crate::Params,
        address: &str,
        negotiated: bool,
    ) -> Result<Tls, CheckError> {
        let name = || {
            params
                .str("server-name")
                .map(str::trim)
                .map(str::to_string)
                .or_else(|| parse_address(address).ok().map(|(h, _)| h.to_string()))
                .unwrap_or_default()
        };
        let tls = match params.str("tls").map(str::trim) {
            None | Some("false" | "disable") => Tls::Off,
            Some("true" | "require") => Tls::Require(name()),
            Some("prefer") if negotiated => Tls::Prefer(name()),
            Some(other) => {
                let expected = if negotiated {
                    "true, false, require, prefer or disable"
                } else {
                    "true or false"
                };
                return Err(CheckError::invalid_param(
                    "tls",
                    format!("expected {expected}, got '{other}'"),
                ));
            }
        };
        if tls == Tls::Off && params.contains("server-name") {
            return Err(CheckError::invalid_param(
                "server-name",
                "only used with TLS; give tls=true too",
            ));
        }
        Ok(tls)
    }

    /// The `implicit-tls` parameter of a protocol that can also start with TLS (SMTPS,
    /// LDAPS) besides negotiating it (`tls`, STARTTLS); `port` is the usual port for it.
    pub fn implicit_param(port: u16) -> crate::ParamSpec {
        crate::ParamSpec::optional(
            "implicit-tls",
            format!(
                "TLS from the first byte (usually port {port}) instead of negotiating it with \
                 tls=; true or false."
            ),
        )
        .default("false")
    }

    /// Reads `implicit-tls`, `tls` and `server-name` for such a protocol: TLS to start with
    /// (the server name, when `implicit-tls=true`), or how to negotiate it
    /// ([`Tls::from_params`] with `prefer`).
    pub fn from_params_implicit(
        params: &crate::Params,
        address: &str,
    ) -> Result<(Option<String>, Tls), CheckError> {
        let implicit = params
            .parse("implicit-tls", crate::parse_bool)?
            .unwrap_or(false);
        if !implicit {
            return Ok((None, Tls::from_params(params, address, true)?));
        }
        if !matches!(
            params.str("tls").map(str::trim),
            None | Some("false" | "disable")
        ) {
            return Err(CheckError::invalid_config(
                "implicit-tls=true starts with TLS; leave out tls= (which negotiates it)",
            ));
        }
        let name = params
            .str("server-name")
            .map(str::trim)
            .map(str::to_string)
            .or_else(|| parse_address(address).ok().map(|(h, _)| h.to_string()))
            .unwrap_or_default();
        Ok((Some(name), Tls::Off))
    }

    /// The server name, unless TLS is off.
    pub fn server_name(&self) -> Option<&str> {
        match self {
            Tls::Off => None,
            Tls::Prefer(name) | Tls::Require(name) => Some(name),
        }
    }
}

/// [`connect`], then TLS at once if `tls` asks for it (for protocols that start with the
/// handshake: Redis, memcached, gRPC, plain TCP services).
pub fn connect_with(address: &str, tls: &Tls, budget: &Budget) -> Result<TcpConn, TcpError> {
    let conn = connect(address, budget)?;
    match tls.server_name() {
        Some(name) => conn.start_tls(name),
        None => Ok(conn),
    }
}
