//! The MySQL client/server protocol, as far as a health check needs it: packet framing,
//! the initial handshake (protocol 10), ERR/OK packets, `HandshakeResponse41` and
//! `AuthSwitchRequest`. Pure functions over bytes, so they are unit-tested natively.

use std::fmt;

/// `CLIENT_LONG_PASSWORD`; MariaDB reads this bit as `CLIENT_MYSQL` (a MySQL-style client).
pub const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
/// The handshake response names a database.
pub const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
/// The 4.1 protocol (ERR packets carry a SQLSTATE).
pub const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
/// Client supports transactions (harmless, expected by every server).
pub const CLIENT_TRANSACTIONS: u32 = 0x0000_2000;
/// TLS: the server offers it; the client asks for it with an SSLRequest.
pub const CLIENT_SSL: u32 = 0x0000_0800;
/// 4.1 authentication (the scramble is 20 bytes).
pub const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
/// Pluggable authentication: the handshake names the server's default plugin.
pub const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
/// The auth response is length-encoded (so it may be longer than 250 bytes).
pub const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x0020_0000;

/// Largest packet the probe accepts: the handshake, an ERR or a PEM public key are far
/// smaller, so anything bigger means the peer is not a MySQL server.
pub const MAX_PACKET: usize = 64 * 1024;

/// `COM_QUIT`: ends the session politely so the server does not log an aborted connection.
pub const COM_QUIT: u8 = 0x01;
/// `COM_PING`: the server answers OK when it can run commands.
pub const COM_PING: u8 = 0x0e;

/// Split a packet header into payload length and sequence id.
pub fn packet_header(header: [u8; 4]) -> (usize, u8) {
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    (len, header[3])
}

/// Frame `payload` as one packet with sequence id `seq`.
pub fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    // The probe's packets are a few hundred bytes at most, far under the 16 MiB split.
    let len = payload.len().min(0xff_ffff);
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&[len as u8, (len >> 8) as u8, (len >> 16) as u8, seq]);
    out.extend_from_slice(&payload[..len]);
    out
}

/// An ERR packet: the server's error code, SQLSTATE and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The error number, for example 1045.
    pub code: u16,
    /// The SQLSTATE, for example `28000`; absent in errors sent before the handshake.
    pub sqlstate: Option<String>,
    /// The server's message.
    pub message: String,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sqlstate {
            Some(state) => write!(f, "{} ({state}) {}", self.code, self.message),
            None => write!(f, "{} {}", self.code, self.message),
        }
    }
}

/// Parse an ERR packet (first byte 0xff).
///
/// The `#` and SQLSTATE are present whenever the 4.1 protocol is on, and also in most
/// errors a server sends instead of its handshake; older servers omit them there.
pub fn parse_err(payload: &[u8]) -> Result<ServerError, String> {
    let rest = payload.strip_prefix(&[0xff]).ok_or("not an ERR packet")?;
    let (code, rest) = match rest {
        [lo, hi, rest @ ..] => (u16::from_le_bytes([*lo, *hi]), rest),
        _ => return Err("ERR packet too short".to_string()),
    };
    let (sqlstate, message) = match rest {
        [b'#', state @ ..] if state.len() >= 5 => (
            Some(String::from_utf8_lossy(&state[..5]).into_owned()),
            &state[5..],
        ),
        _ => (None, rest),
    };
    Ok(ServerError {
        code,
        sqlstate,
        message: String::from_utf8_lossy(message).trim().to_string(),
    })
}

/// The server's initial handshake packet (protocol version 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The version string as sent, for example `5.5.5-10.11.6-MariaDB-0+deb12u1`.
    pub server_version: String,
    /// The server's id for this connection (`CONNECTION_ID()`).
    pub connection_id: u32,
    /// The server's capability flags (lower and upper halves joined).
    pub capabilities: u32,
    /// The nonce for the password scramble (20 bytes from 4.1 servers).
    pub auth_data: Vec<u8>,
    /// The server's default authentication plugin, when it announces one.
    pub auth_plugin: Option<String>,
}

impl Handshake {
    /// The product and a short version, for messages: `MariaDB 10.11.6` or `MySQL 8.0.36`.
    pub fn product(&self) -> String {
        let version = &self.server_version;
        if let Some(at) = version.find("-MariaDB") {
            // MariaDB 10.x prefixes "5.5.5-" so that old replication code parses it.
            let short = &version[..at];
            let short = short.strip_prefix("5.5.5-").unwrap_or(short);
            format!("MariaDB {short}")
        } else {
            let short = version.split('-').next().unwrap_or(version);
            format!("MySQL {short}")
        }
    }
}

/// Why the first packet is not a usable handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The server sent an ERR packet instead (too many connections, host blocked, …).
    Server(ServerError),
    /// The bytes are not a MySQL handshake; the text says what was wrong.
    Malformed(String),
}

/// Read a NUL-terminated string from the front of `data`.
fn take_cstr(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = data.iter().position(|&b| b == 0)?;
    Some((&data[..nul], &data[nul + 1..]))
}

fn take<const N: usize>(data: &[u8]) -> Option<([u8; N], &[u8])> {
    let head = data.get(..N)?.try_into().ok()?;
    Some((head, &data[N..]))
}

/// Parse the server's first packet.
pub fn parse_handshake(payload: &[u8]) -> Result<Handshake, HandshakeError> {
    let malformed = |what: &str| HandshakeError::Malformed(what.to_string());
    match payload.first() {
        Some(0xff) => {
            return Err(HandshakeError::Server(
                parse_err(payload).map_err(HandshakeError::Malformed)?,
            ));
        }
        Some(10) => {}
        Some(v) => {
            return Err(HandshakeError::Malformed(format!(
                "protocol version {v}, expected 10"
            )));
        }
        None => return Err(malformed("an empty packet")),
    }
    let truncated = || malformed("a truncated handshake");
    let (version, rest) = take_cstr(&payload[1..]).ok_or_else(truncated)?;
    let (id, rest) = take::<4>(rest).ok_or_else(truncated)?;
    let (part1, rest) = take::<8>(rest).ok_or_else(truncated)?;
    let (_filler, rest) = take::<1>(rest).ok_or_else(truncated)?;
    let (caps_lo, rest) = take::<2>(rest).ok_or_else(truncated)?;
    let mut capabilities = u32::from(u16::from_le_bytes(caps_lo));
    let mut auth_data = part1.to_vec();
    let mut auth_plugin = None;
    // Servers before 4.1 stop here; later ones add charset, status, the upper
    // capabilities, the scramble's second part and the plugin name.
    if let Some((_charset_status, rest)) = take::<3>(rest) {
        let (caps_hi, rest) = take::<2>(rest).ok_or_else(truncated)?;
        capabilities |= u32::from(u16::from_le_bytes(caps_hi)) << 16;
        let (data_len, rest) = take::<1>(rest).ok_or_else(truncated)?;
        // Ten reserved bytes (MariaDB keeps its extended capabilities in the last four).
        let (_reserved, mut rest) = take::<10>(rest).ok_or_else(truncated)?;
        if capabilities & CLIENT_SECURE_CONNECTION != 0 {
            let len = usize::from(data_len[0]).saturating_sub(8).max(13);
            let part2 = rest.get(..len).ok_or_else(truncated)?;
            // The second part ends with a NUL that is not part of the nonce.
            let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
            auth_data.extend_from_slice(part2);
            rest = &rest[len..];
        }
        if capabilities & CLIENT_PLUGIN_AUTH != 0 {
            // Some 5.5 servers omit the final NUL: the name then runs to the end.
            let name = take_cstr(rest).map_or(rest, |(name, _)| name);
            if !name.is_empty() {
                auth_plugin = Some(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Ok(Handshake {
        server_version: String::from_utf8_lossy(version).into_owned(),
        connection_id: u32::from_le_bytes(id),
        capabilities,
        auth_data,
        auth_plugin,
    })
}

/// What the client sends in its `HandshakeResponse41`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login<'a> {
    /// The user name.
    pub username: &'a str,
    /// The plugin's first answer (the password scramble).
    pub auth_response: &'a [u8],
    /// The default database, if any.
    pub database: Option<&'a str>,
    /// The plugin that computed `auth_response`.
    pub auth_plugin: &'a str,
}

/// The capability flags the probe asks for, given the server's.
pub fn client_capabilities(server: u32, with_db: bool) -> u32 {
    let mut wanted = CLIENT_LONG_PASSWORD
        | CLIENT_PROTOCOL_41
        | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
    if with_db {
        wanted |= CLIENT_CONNECT_WITH_DB;
    }
    wanted & server
}

/// utf8mb4_general_ci: every server since 5.5.3 knows it.
const CHARSET_UTF8MB4: u8 = 45;

/// Encode an `SSLRequest` payload: the first 32 bytes of a `HandshakeResponse41`, with
/// `CLIENT_SSL` among the `capabilities`; the TLS handshake follows, then the full response.
pub fn ssl_request(capabilities: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&(capabilities | CLIENT_SSL).to_le_bytes());
    out.extend_from_slice(&(16u32 << 20).to_le_bytes());
    out.push(CHARSET_UTF8MB4);
    out.extend_from_slice(&[0; 23]);
    out
}

/// Encode a `HandshakeResponse41` payload for the negotiated `capabilities`.
pub fn handshake_response(capabilities: u32, login: &Login<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + login.username.len() + login.auth_response.len());
    out.extend_from_slice(&capabilities.to_le_bytes());
    out.extend_from_slice(&(16u32 << 20).to_le_bytes()); // max packet size: 16 MiB
    out.push(CHARSET_UTF8MB4);
    out.extend_from_slice(&[0; 23]);
    out.extend_from_slice(login.username.as_bytes());
    out.push(0);
    if capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        put_lenenc(&mut out, login.auth_response.len() as u64);
        out.extend_from_slice(login.auth_response);
    } else {
        // Scrambles are 20 or 32 bytes, well within the one-byte length.
        let len = login.auth_response.len().min(255);
        out.push(len as u8);
        out.extend_from_slice(&login.auth_response[..len]);
    }
    if capabilities & CLIENT_CONNECT_WITH_DB != 0 {
        out.extend_from_slice(login.database.unwrap_or_default().as_bytes());
        out.push(0);
    }
    if capabilities & CLIENT_PLUGIN_AUTH != 0 {
        out.extend_from_slice(login.auth_plugin.as_bytes());
        out.push(0);
    }
    out
}

/// Append a length-encoded integer.
fn put_lenenc(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=250 => out.push(n as u8),
        251..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// An `AuthSwitchRequest` (0xfe): the server wants another plugin, with a fresh nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSwitch {
    /// The plugin to use.
    pub plugin: String,
    /// Its nonce (the trailing NUL removed).
    pub data: Vec<u8>,
}

/// Parse an `AuthSwitchRequest`. A bare 0xfe is the pre-4.1 request for the old
/// (`mysql_old_password`) scramble.
pub fn parse_auth_switch(payload: &[u8]) -> AuthSwitch {
    let rest = payload.get(1..).unwrap_or_default();
    if rest.is_empty() {
        return AuthSwitch {
            plugin: "mysql_old_password".to_string(),
            data: Vec::new(),
        };
    }
    let (name, data) = take_cstr(rest).unwrap_or((rest, &[]));
    let data = data.strip_suffix(&[0]).unwrap_or(data);
    AuthSwitch {
        plugin: String::from_utf8_lossy(name).into_owned(),
        data: data.to_vec(),
    }
}

/// Byte fixtures shared by the unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    /// The first packet of MariaDB 10.11.19 from Debian 12, captured on the wire (payload
    /// only): version, connection id 6, nonce, capabilities, mysql_native_password.
    pub const MARIADB_HANDSHAKE: &[u8] =
        b"\x0a5.5.5-10.11.19-MariaDB-0+deb12u1\x00\x06\x00\x00\x00\
        s,}UpS.)\x00\xfe\xf7\x08\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00\
        %z\\;Sq\\[2&fR\x00mysql_native_password\x00";
}

#[cfg(test)]
mod tests {
    use super::tests_support::MARIADB_HANDSHAKE;
    use super::*;

    /// A handshake laid out as MySQL 8.0 sends it, defaulting to caching_sha2_password.
    const MYSQL8_HANDSHAKE: &[u8] = b"\x0a8.0.36\x00\x0b\x00\x00\x00\
        abcdefgh\x00\xff\xff\xff\x02\x00\xff\xdf\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\
        ijklmnopqrst\x00caching_sha2_password\x00";

    #[test]
    fn mariadb_handshake() {
        let hs = parse_handshake(MARIADB_HANDSHAKE).unwrap();
        assert_eq!(hs.server_version, "5.5.5-10.11.19-MariaDB-0+deb12u1");
        assert_eq!(hs.product(), "MariaDB 10.11.19");
        assert_eq!(hs.connection_id, 6);
        assert_eq!(hs.auth_data, b"s,}UpS.)%z\\;Sq\\[2&fR");
        assert_eq!(hs.auth_plugin.as_deref(), Some("mysql_native_password"));
        assert_ne!(hs.capabilities & CLIENT_PROTOCOL_41, 0);
        assert_ne!(hs.capabilities & CLIENT_PLUGIN_AUTH, 0);
    }

    #[test]
    fn mysql8_handshake() {
        let hs = parse_handshake(MYSQL8_HANDSHAKE).unwrap();
        assert_eq!(hs.product(), "MySQL 8.0.36");
        assert_eq!(hs.connection_id, 11);
        assert_eq!(hs.auth_data, b"abcdefghijklmnopqrst");
        assert_eq!(hs.auth_plugin.as_deref(), Some("caching_sha2_password"));
        // MariaDB 11 dropped the 5.5.5- prefix.
        let hs = Handshake {
            server_version: "11.4.2-MariaDB".into(),
            ..hs
        };
        assert_eq!(hs.product(), "MariaDB 11.4.2");
    }

    #[test]
    fn err_instead_of_handshake() {
        // MariaDB's "too many connections" before the handshake, with and without SQLSTATE.
        let with_state = b"\xff\x10\x04#08004Too many connections";
        assert_eq!(
            parse_handshake(with_state),
            Err(HandshakeError::Server(ServerError {
                code: 1040,
                sqlstate: Some("08004".into()),
                message: "Too many connections".into(),
            }))
        );
        let blocked = b"\xff\x69\x04Host '10.0.0.9' is blocked because of many connection errors";
        match parse_handshake(blocked) {
            Err(HandshakeError::Server(e)) => {
                assert_eq!(e.code, 1129);
                assert_eq!(e.sqlstate, None);
                assert_eq!(
                    e.to_string(),
                    "1129 Host '10.0.0.9' is blocked because of many connection errors"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn not_a_handshake() {
        for (bytes, want) in [
            (&b"HTTP/1.1 400 Bad Request"[..], "protocol version 72"),
            (b"", "empty"),
            (b"\x0a8.0", "truncated"),
            (b"\x0a8.0\x00\x01\x00\x00\x00abc", "truncated"),
        ] {
            match parse_handshake(bytes) {
                Err(HandshakeError::Malformed(m)) => assert!(m.contains(want), "{m}"),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn err_packets() {
        let e = parse_err(
            b"\xff\x15\x04#28000Access denied for user 'probe'@'localhost' (using password: YES)",
        )
        .unwrap();
        assert_eq!(
            e.to_string(),
            "1045 (28000) Access denied for user 'probe'@'localhost' (using password: YES)"
        );
        assert_eq!(parse_err(b"\xff\x15\x04").unwrap().to_string(), "1045 ");
        assert!(parse_err(b"\xff\x15").is_err());
        assert!(parse_err(b"\xff").is_err());
        assert!(parse_err(b"\x00").is_err());
    }

    #[test]
    fn framing() {
        assert_eq!(frame(0, &[COM_PING]), vec![1, 0, 0, 0, COM_PING]);
        assert_eq!(packet_header([0x34, 0x12, 0x01, 7]), (0x01_1234, 7));
    }

    #[test]
    fn response_layout() {
        let caps = client_capabilities(0xffff_ffff, true);
        let login = Login {
            username: "probe",
            auth_response: &[0xaa; 20],
            database: Some("app"),
            auth_plugin: "mysql_native_password",
        };
        let bytes = handshake_response(caps, &login);
        assert_eq!(u32::from_le_bytes(bytes[..4].try_into().unwrap()), caps);
        assert_eq!(bytes[8], 45);
        assert_eq!(&bytes[9..32], &[0; 23]);
        let rest = &bytes[32..];
        assert_eq!(&rest[..6], b"probe\0");
        assert_eq!(rest[6], 20);
        assert_eq!(&rest[7..27], &[0xaa; 20]);
        assert_eq!(&rest[27..], b"app\0mysql_native_password\0");

        // Without CONNECT_WITH_DB and lenenc data, a server still gets a 1-byte length.
        let old = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION;
        let bytes = handshake_response(client_capabilities(old, false), &login);
        assert_eq!(&bytes[32..], [&b"probe\0\x14"[..], &[0xaa; 20]].concat());
    }

    #[test]
    fn lenenc() {
        for (n, want) in [
            (0u64, vec![0]),
            (250, vec![250]),
            (251, vec![0xfc, 251, 0]),
            (0x1_0000, vec![0xfd, 0, 0, 1]),
        ] {
            let mut out = Vec::new();
            put_lenenc(&mut out, n);
            assert_eq!(out, want, "{n}");
        }
    }

    #[test]
    fn auth_switch() {
        let sw = parse_auth_switch(b"\xfemysql_native_password\x00ABCDEFGHIJKLMNOPQRST\x00");
        assert_eq!(sw.plugin, "mysql_native_password");
        assert_eq!(sw.data, b"ABCDEFGHIJKLMNOPQRST");
        let ed = parse_auth_switch(b"\xfeclient_ed25519\x00ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
        assert_eq!(ed.plugin, "client_ed25519");
        assert_eq!(ed.data.len(), 32);
        assert_eq!(parse_auth_switch(b"\xfe").plugin, "mysql_old_password");
    }
}
