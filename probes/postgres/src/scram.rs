//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it, without channel
//! binding (the probe does not speak TLS), and the older MD5 password hash.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The only SASL mechanism the probe offers.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// More PBKDF2 rounds than this is taken as a hostile or broken server (PostgreSQL
/// uses 4096 unless `scram_iterations` says otherwise).
const MAX_ITERATIONS: u32 = 1_000_000;

/// The GS2 header for "no channel binding": what `c=biws` encodes.
const GS2_HEADER: &str = "n,,";

/// Why a SCRAM exchange failed, as shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramError(pub String);

/// The client's side of one SCRAM-SHA-256 exchange.
pub struct Scram {
    password: Vec<u8>,
    client_nonce: String,
    client_first_bare: String,
}

/// The state after the client-final message: what the server must prove.
pub struct AwaitingFinal {
    server_signature: [u8; 32],
}

impl Scram {
    /// Start an exchange with a fresh random nonce.
    ///
    /// PostgreSQL takes the user from the startup message and ignores the SCRAM
    /// user name, so it is left empty, as libpq does. The password is used as
    /// given: the SASLprep normalisation the RFC asks for changes nothing for
    /// ASCII passwords, and PostgreSQL itself falls back to the raw bytes when
    /// normalisation fails.
    pub fn new(password: &str) -> Scram {
        Scram::with_nonce("", password, &healthprobe_sdk::random::nonce(18))
    }

    /// An exchange with a given user name and nonce (for known test vectors).
    pub fn with_nonce(user: &str, password: &str, nonce: &str) -> Scram {
        Scram {
            password: password.as_bytes().to_vec(),
            client_nonce: nonce.to_string(),
            client_first_bare: format!("n={user},r={nonce}"),
        }
    }

    /// The client-first message, sent with the mechanism name.
    pub fn client_first(&self) -> String {
        format!("{GS2_HEADER}{}", self.client_first_bare)
    }

    /// Answer the server-first message (`r=…,s=…,i=…`) with the client proof.
    pub fn client_final(&self, server_first: &[u8]) -> Result<(String, AwaitingFinal), ScramError> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| ScramError("the SCRAM server-first message is not UTF-8".into()))?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = Some(v),
                Some(("e", v)) => {
                    return Err(ScramError(format!("SCRAM error from the server: {v}")));
                }
                _ => {}
            }
        }
        let bad = |what: &str| ScramError(format!("malformed SCRAM server-first message: {what}"));
        let nonce = nonce.ok_or_else(|| bad("no nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError(
                "the server's SCRAM nonce does not extend the client's".into(),
            ));
        }
        let salt = BASE64
            .decode(salt.ok_or_else(|| bad("no salt"))?)
            .map_err(|_| bad("the salt is not base64"))?;
        let iterations: u32 = iterations
            .ok_or_else(|| bad("no iteration count"))?
            .parse()
            .map_err(|_| bad("the iteration count is not a number"))?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(bad(&format!(
                "{iterations} iterations (expected 1 to {MAX_ITERATIONS})"
            )));
        }

        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(&self.password, &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c={},r={nonce}", BASE64.encode(GS2_HEADER));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        let server_signature = hmac(&server_key, auth_message.as_bytes());
        Ok((
            format!("{without_proof},p={}", BASE64.encode(proof)),
            AwaitingFinal { server_signature },
        ))
    }
}

impl AwaitingFinal {
    /// Check the server-final message (`v=…`): only a server that knows the
    /// password's verifier can produce the signature.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let text = String::from_utf8_lossy(server_final);
        for attr in text.split(',') {
            match attr.split_once('=') {
                Some(("e", v)) => {
                    return Err(ScramError(format!("SCRAM error from the server: {v}")));
                }
                Some(("v", v)) => {
                    let signature = BASE64.decode(v.trim()).map_err(|_| {
                        ScramError("the SCRAM server signature is not base64".into())
                    })?;
                    return if signature == self.server_signature {
                        Ok(())
                    } else {
                        Err(ScramError(
                            "the server's SCRAM signature is wrong: it does not hold this password's verifier".into(),
                        ))
                    };
                }
                _ => {}
            }
        }
        Err(ScramError(
            "the SCRAM server-final message has no signature".into(),
        ))
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The answer to AuthenticationMD5Password:
/// `"md5" + hex(md5(hex(md5(password + user)) + salt))`.
pub fn md5_password(user: &str, password: &str, salt: [u8; 4]) -> String {
    let inner = hex(&Md5::digest(
        [password.as_bytes(), user.as_bytes()].concat(),
    ));
    let outer = hex(&Md5::digest([inner.as_bytes(), &salt[..]].concat()));
    format!("md5{outer}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SCRAM-SHA-256 example exchange of RFC 7677, section 3.
    #[test]
    fn rfc7677_test_vector() {
        let scram = Scram::with_nonce("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(scram.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let (client_final, awaiting) = scram
            .client_final(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            client_final,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            awaiting.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Ok(())
        );
        let wrong = awaiting
            .verify(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert!(wrong.0.contains("signature is wrong"), "{wrong:?}");
        assert!(
            awaiting
                .verify(b"e=invalid-proof")
                .unwrap_err()
                .0
                .contains("invalid-proof")
        );
    }

    #[test]
    fn server_first_is_checked() {
        let scram = Scram::with_nonce("", "pw", "abc");
        for (bad, why) in [
            ("r=xyz123,s=AAAA,i=4096", "does not extend"),
            ("r=abc,s=AAAA,i=4096", "does not extend"),
            ("r=abcdef,s=!!,i=4096", "not base64"),
            ("r=abcdef,s=AAAA,i=0", "iterations"),
            ("r=abcdef,s=AAAA,i=99999999", "iterations"),
            ("r=abcdef,s=AAAA", "no iteration count"),
            ("e=other-error", "other-error"),
        ] {
            let err = scram.client_final(bad.as_bytes()).err().unwrap();
            assert!(err.0.contains(why), "{bad}: {err:?}");
        }
    }

    #[test]
    fn fresh_nonces_differ() {
        let a = Scram::new("pw").client_first();
        let b = Scram::new("pw").client_first();
        assert_ne!(a, b);
        assert!(
            a.starts_with("n,,n=,r=") && a.len() == "n,,n=,r=".len() + 24,
            "{a}"
        );
    }

    /// Computed with Python: `"md5" + md5(md5(b"pencil" + b"user").hexdigest().encode() + bytes([1, 2, 3, 4])).hexdigest()`.
    #[test]
    fn md5_answer() {
        assert_eq!(
            md5_password("user", "pencil", [1, 2, 3, 4]),
            MD5_PENCIL_USER_1234
        );
    }

    const MD5_PENCIL_USER_1234: &str = "md54376eb6913b38f9aaff38dc7cf19ca76";
}
