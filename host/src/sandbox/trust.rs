//! The TLS trust an operator sets (`--tls-ca`, `--tls-client-cert`, `--tls-client-key`),
//! applied by the host to every TLS connection of a run: the `http` import's, `wasi:http`'s
//! and `wasi:tls`'s. The files are read once, by the host, before the probe starts: a probe
//! asks for TLS to a server name and never sees a private key.
//!
//! Without `--tls-ca` the roots are the Mozilla set compiled into the binary, so a
//! HEALTHCHECK works in an image without a CA bundle; `--tls-ca` replaces them (as curl's
//! `--cacert` does), for services whose certificates a private CA signs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::{CertificateError, ClientConfig};

use crate::text;

/// Who a run trusts and who it is.
#[derive(Clone)]
pub struct Trust(Arc<Inner>);

struct Inner {
    /// The CA file and its certificates; `None` for the built-in roots.
    ca: Option<(PathBuf, Vec<CertificateDer<'static>>)>,
    /// The client certificate file and its chain, the key file and the key.
    client: Option<Identity>,
    verified: Arc<ClientConfig>,
    unverified: Arc<ClientConfig>,
}

struct Identity {
    cert: PathBuf,
    key_path: PathBuf,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.write_str(&self.describe())
    }
}

/// Equal when the same certificates and key would be used: a reload with a rotated
/// certificate at the same path is a change.
impl PartialEq for Trust {
    fn eq(&self, other: &Self) -> bool {
        let ca = |t: &Trust| t.0.ca.as_ref().map(|(_, c)| c.clone());
        let id = |t: &Trust| {
            t.0.client
                .as_ref()
                .map(|i| (i.chain.clone(), i.key.secret_der().to_vec()))
        };
        ca(self) == ca(other) && id(self) == id(other)
    }
}

/// A trust file that cannot be used: the key it was given by, the path and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}", path = path.display())]
pub struct BadFile {
    /// `tls-ca`, `tls-client-cert` or `tls-client-key`.
    pub key: &'static str,
    /// The file as given.
    pub path: PathBuf,
    /// What is wrong and what to do.
    pub why: String,
}

impl Default for Trust {
    /// The built-in roots and no client certificate.
    fn default() -> Self {
        static DEFAULT: LazyLock<Trust> = LazyLock::new(|| {
            Trust::build(None, None).expect("the built-in roots make a configuration")
        });
        DEFAULT.clone()
    }
}

impl Trust {
    /// Reads the CA file and the client certificate and key, if given (both or neither).
    pub fn load(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Self, BadFile> {
        if ca.is_none() && cert.is_none() && key.is_none() {
            return Ok(Self::default());
        }
        let ca = ca
            .map(|path| {
                let certs = read_certs(path, "tls-ca")?;
                Ok::<_, BadFile>((path.to_path_buf(), certs))
            })
            .transpose()?;
        let client = match (cert, key) {
            (None, None) => None,
            (Some(cert), None) => {
                return Err(BadFile {
                    key: "tls-client-cert",
                    path: cert.to_path_buf(),
                    why: "a client certificate needs its key; give --tls-client-key too".into(),
                });
            }
            (None, Some(key)) => {
                return Err(BadFile {
                    key: "tls-client-key",
                    path: key.to_path_buf(),
                    why: "a key needs its certificate; give --tls-client-cert too".into(),
                });
            }
            (Some(cert), Some(key_path)) => {
                let chain = read_certs(cert, "tls-client-cert")?;
                let bad = |why: String| BadFile {
                    key: "tls-client-key",
                    path: key_path.to_path_buf(),
                    why,
                };
                let bytes = std::fs::read(key_path)
                    .map_err(|e| bad(format!("cannot read it: {}", text::io_error(&e))))?;
                let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
                    bad(
                        "no private key in it; give a PEM file with a PKCS#8, PKCS#1 (RSA) or \
                         SEC1 (EC) key"
                            .into(),
                    )
                })?;
                Some(Identity {
                    cert: cert.to_path_buf(),
                    key_path: key_path.to_path_buf(),
                    chain,
                    key,
                })
            }
        };
        Self::build(ca, client)
    }

    fn build(
        ca: Option<(PathBuf, Vec<CertificateDer<'static>>)>,
        client: Option<Identity>,
    ) -> Result<Self, BadFile> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = || {
            ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports TLS 1.2 and 1.3")
        };
        let mut roots = rustls::RootCertStore::empty();
        match &ca {
            Some((path, certs)) => {
                for cert in certs {
                    roots.add(cert.clone()).map_err(|e| BadFile {
                        key: "tls-ca",
                        path: path.clone(),
                        why: format!("a certificate in it cannot be a root: {e}"),
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let verified = builder().with_root_certificates(roots);
        let unverified = builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider.clone())));
        let (verified, unverified) = match &client {
            None => (
                verified.with_no_client_auth(),
                unverified.with_no_client_auth(),
            ),
            Some(id) => {
                let bad = |e: rustls::Error| BadFile {
                    key: "tls-client-key",
                    path: id.key_path.clone(),
                    why: format!(
                        "the key does not go with the certificate, or is of a kind TLS \
                         cannot use: {e}"
                    ),
                };
                (
                    verified
                        .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                        .map_err(bad)?,
                    unverified
                        .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                        .map_err(bad)?,
                )
            }
        };
        Ok(Trust(Arc::new(Inner {
            ca,
            client,
            verified: Arc::new(verified),
            unverified: Arc::new(unverified),
        })))
    }

    /// The client configuration: verifying the server's certificate, or (when the operator
    /// allowed insecure TLS and the connection asks for it) not.
    pub fn config(&self, verify: bool) -> Arc<ClientConfig> {
        if verify {
            self.0.verified.clone()
        } else {
            self.0.unverified.clone()
        }
    }

    /// The trust in words, for `inspect`: `the built-in Mozilla roots` or `CAs from FILE`,
    /// and the client certificate if any.
    pub fn describe(&self) -> String {
        let mut s = match &self.0.ca {
            Some((path, certs)) => format!(
                "{} CA certificate{} from {}",
                certs.len(),
                if certs.len() == 1 { "" } else { "s" },
                path.display()
            ),
            None => "the built-in Mozilla roots".to_string(),
        };
        if let Some(id) = &self.0.client {
            s.push_str(&format!(", client certificate {}", id.cert.display()));
        }
        s
    }
}

fn read_certs(path: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, BadFile> {
    let bad = |why: String| BadFile {
        key,
        path: path.to_path_buf(),
        why,
    };
    let bytes =
        std::fs::read(path).map_err(|e| bad(format!("cannot read it: {}", text::io_error(&e))))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM file of certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "no certificate in it; give a PEM file with -----BEGIN CERTIFICATE----- blocks".into(),
        ));
    }
    Ok(certs)
}

/// A TLS failure in words, naming the cause an operator can act on: `certificate expired
/// on 2026-01-01T00:00:00Z`, `unknown issuer`, `name mismatch: certificate is for …`.
pub fn words(e: &rustls::Error) -> String {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::ExpiredContext { not_after, .. } => {
                format!("certificate expired on {}", date(*not_after))
            }
            CertificateError::Expired => "certificate expired".into(),
            CertificateError::NotValidYetContext { not_before, .. } => {
                format!("certificate not valid before {}", date(*not_before))
            }
            CertificateError::NotValidYet => "certificate not valid yet".into(),
            CertificateError::UnknownIssuer => "unknown issuer: no trusted CA signed the \
                 certificate (give the CA with --tls-ca)"
                .into(),
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => format!(
                "name mismatch: certificate is for {}, not {}",
                if presented.is_empty() {
                    "no name".to_string()
                } else {
                    presented
                        .iter()
                        .map(|p| bare_name(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                expected.to_str()
            ),
            CertificateError::NotValidForName => "name mismatch".into(),
            CertificateError::BadSignature => "bad certificate signature: the CA of that name \
                 did not sign it (is --tls-ca the right CA?)"
                .into(),
            CertificateError::Revoked => "certificate revoked".into(),
            CertificateError::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
                // A self-signed certificate made with CA:TRUE, the most common home-made one.
                Some(webpki::Error::CaUsedAsEndEntity) => "the server's certificate is a CA \
                     certificate (basicConstraints CA:TRUE), which TLS refuses as a server's \
                     own; give the server a certificate that CA signed"
                    .into(),
                _ => format!("certificate refused: {}", other.0),
            },
            other => format!("certificate refused: {other:?}"),
        },
        rustls::Error::AlertReceived(A::CertificateRequired) => "the server requires a client \
             certificate; give --tls-client-cert and --tls-client-key"
            .into(),
        rustls::Error::AlertReceived(A::BadCertificate | A::UnknownCA | A::DecryptError) => {
            format!(
                "the server refused the client certificate ({e}); give one its CA signed with \
                 --tls-client-cert and --tls-client-key"
            )
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!("the peer does not speak TLS, or not on this port ({e})")
        }
        other => other.to_string(),
    }
}

/// The rustls error inside an I/O error from a TLS stream, in words; other I/O errors
/// as they are.
pub fn io_words(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(r) => words(r),
        None => e.to_string(),
    }
}

/// A certificate's fingerprint, subject, issuer and DNS names (empty where it cannot be
/// read), as blackbox_exporter labels `probe_ssl_last_chain_info`.
pub fn describe_cert(cert: &CertificateDer<'_>) -> crate::activity::CertInfo {
    use sha2::Digest;
    let fingerprint_sha256 = sha2::Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let parsed = x509_parser::parse_x509_certificate(cert)
        .ok()
        .map(|(_, c)| c);
    // Go's order and spelling (blackbox_exporter's labels): `CN=x,O=y`, most specific first.
    let name = |n: &x509_parser::x509::X509Name<'_>| {
        let mut parts: Vec<String> = n
            .iter_rdn()
            .flat_map(|rdn| rdn.iter())
            .filter_map(|a| {
                let registry = x509_parser::objects::oid_registry();
                let key = x509_parser::objects::oid2abbrev(a.attr_type(), registry).ok()?;
                Some(format!("{key}={}", a.as_str().ok()?))
            })
            .collect();
        parts.reverse();
        parts.join(",")
    };
    let sans = parsed
        .as_ref()
        .and_then(|c| c.subject_alternative_name().ok().flatten())
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    crate::activity::CertInfo {
        fingerprint_sha256,
        subject: parsed
            .as_ref()
            .map(|c| name(c.subject()))
            .unwrap_or_default(),
        issuer: parsed
            .as_ref()
            .map(|c| name(c.issuer()))
            .unwrap_or_default(),
        subject_alternative: sans,
    }
}

/// When `cert` (DER) expires, in seconds since the Unix epoch; `None` if it cannot be read
/// or expired before 1970.
pub fn not_after(cert: &CertificateDer<'_>) -> Option<u64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    u64::try_from(parsed.validity().not_after.timestamp()).ok()
}

/// A name rustls presents as `DnsName("db.example.com")` or `IpAddress(10.0.0.1)`, bare.
fn bare_name(presented: &str) -> &str {
    presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map_or(presented, |inner| inner.trim_matches('"'))
}

fn date(t: UnixTime) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(t.as_secs());
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Accepts any certificate (`--allow-insecure-tls`); the handshake's signatures are still
/// checked, so the connection is encrypted, only not authenticated.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_names_read_bare() {
        assert_eq!(bare_name("DnsName(\"db.example.com\")"), "db.example.com");
        assert_eq!(bare_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(bare_name("plain"), "plain");
    }

    #[test]
    fn a_ca_certificate_as_the_servers_is_explained() {
        let e = rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(webpki::Error::CaUsedAsEndEntity),
        )));
        assert!(words(&e).starts_with("the server's certificate is a CA certificate"));
    }

    #[test]
    fn expiry_is_a_date() {
        let e = rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_609_459_200)),
        });
        assert_eq!(words(&e), "certificate expired on 2021-01-01T00:00:00Z");
    }
}
