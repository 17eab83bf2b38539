//! Talking to a registry: pulling an artifact into the store, pushing a component, and
//! the failures of both in words. The OCI distribution protocol (tokens, chunked uploads,
//! digests) is the ORAS project's `oci-client`; rustls with the process's ring provider
//! carries it, trusting the system's CAs and the operator's `--tls-ca`.
//!
//! Each operation runs on a thread of its own with its own runtime, so it can be called
//! from anywhere (a command, or serve's reload), and ends by its deadline: a hung
//! registry is a timeout, never a hung command.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use oci_client::Client;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;

use super::Reference;
use super::artifact::{self, Artifact, Descriptor};
use super::credentials::Credentials;
use super::store::{self, Store};
use crate::report::Failure;
use crate::text;

/// How the command line reaches registries.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A CA certificate (PEM) to trust for registries, beside the system's.
    pub ca: Option<PathBuf>,
    /// The flag that gives it, for messages (`--tls-ca`, `--registry-ca`).
    pub ca_flag: &'static str,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
}

/// A registry client with the operator's trust and credentials.
pub struct Registry {
    client: Client,
    credentials: Credentials,
    options: Options,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("credentials", &self.credentials)
            .field("options", &self.options)
            .finish()
    }
}

/// An artifact in the store after a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// Pinned by its manifest digest.
    pub reference: Reference,
    /// The component's SHA-256 (the layer digest), hex.
    pub layer: String,
    /// The component's size.
    pub size: u64,
    /// The component file in the store.
    pub path: PathBuf,
    /// It was in the store already: nothing was downloaded.
    pub already: bool,
}

impl Pulled {
    /// One line for the log or the terminal.
    pub fn summary(&self) -> String {
        format!(
            "{} {} (component sha256:{}, {})",
            if self.already { "stored" } else { "pulled" },
            self.reference,
            self.layer,
            text::size(self.size)
        )
    }
}

/// A component pushed.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The reference pushed to, pinned by the new manifest's digest.
    pub reference: Reference,
    /// The component's SHA-256 (the layer digest), hex.
    pub layer: String,
}

impl Registry {
    /// A client with the options' trust, and the Docker config file's credentials.
    pub fn new(options: Options) -> Result<Self, Failure> {
        // reqwest takes the process's provider: ring, as everything else here (no aws-lc).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = ClientConfig {
            protocol: if options.insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            // An index is read and refused in words (`artifact::parse`), not resolved to a
            // platform's image.
            platform_resolver: None,
            user_agent: concat!("healthprobe/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        if let Some(ca) = &options.ca {
            let data = std::fs::read(ca).map_err(|e| {
                Failure::BadInput(format!(
                    "cannot read {} {}: {}",
                    options.ca_flag,
                    ca.display(),
                    text::io_error(&e)
                ))
            })?;
            config.extra_root_certificates = vec![Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            }];
        }
        let client = Client::try_from(config).map_err(|e| {
            Failure::BadInput(format!(
                "cannot set up the registry client ({}); is {} a PEM certificate?",
                chain(&e),
                options.ca_flag
            ))
        })?;
        Ok(Registry {
            client,
            credentials: Credentials::load()?,
            options,
        })
    }

    /// Pulls `reference` into `store` (unless its digest is stored already), refusing a
    /// component over `max_size` before downloading it; by `until`.
    pub fn pull(
        &self,
        reference: &Reference,
        store: &Store,
        max_size: u64,
        until: Instant,
    ) -> Result<Pulled, Failure> {
        if let Some(hex) = reference.digest()
            && let Some(s) = store.lookup(hex)?
        {
            return Ok(Pulled {
                reference: reference.clone(),
                layer: s.layer,
                size: s.size,
                path: s.path,
                already: true,
            });
        }
        self.within(
            until,
            "pulling",
            reference,
            self.pull_async(reference, store, max_size),
        )
    }

    /// Pushes `component` (read from `file`) to `reference`, a tag.
    pub fn push(
        &self,
        component: &[u8],
        reference: &Reference,
        until: Instant,
    ) -> Result<Pushed, Failure> {
        if reference.digest().is_some() {
            return Err(Failure::BadInput(format!(
                "push to a tag, not a digest ({reference}): the digest is the manifest's, which push makes and prints"
            )));
        }
        let created = created();
        let config = artifact::config(component, &created)
            .map_err(|why| Failure::BadInput(format!("cannot push it: it is {why}")))?;
        self.within(
            until,
            "pushing to",
            reference,
            self.push_async(component, config, reference),
        )
    }

    /// Runs `work` on a thread of its own, by `until`.
    fn within<T: Send>(
        &self,
        until: Instant,
        doing: &str,
        reference: &Reference,
        work: impl std::future::Future<Output = Result<T, Failure>> + Send,
    ) -> Result<T, Failure> {
        let budget = until.saturating_duration_since(Instant::now());
        let timed_out = || {
            Failure::BadInput(format!(
                "timeout {doing} it: the registry at {} did not answer in the {} left; check that it is up, or allow more time (--timeout)",
                reference.registry(),
                text::duration(budget)
            ))
        };
        if budget.is_zero() {
            return Err(timed_out());
        }
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let rt = crate::runner::runtime()?;
                    let outcome = rt.block_on(async { tokio::time::timeout(budget, work).await });
                    // A name lookup may still be running on the blocking pool; the
                    // deadline stands.
                    rt.shutdown_background();
                    outcome.map_err(|_| timed_out())?
                })
                .join()
                .unwrap_or_else(|_| Err(Failure::Setup("the registry client panicked".into())))
        })
    }

    async fn pull_async(
        &self,
        reference: &Reference,
        store: &Store,
        max_size: u64,
    ) -> Result<Pulled, Failure> {
        let target = reference.client();
        let auth = self.credentials.for_registry(reference.registry());
        let (bytes, _) = self
            .client
            .pull_manifest_raw(&target, &auth, artifact::ACCEPTED)
            .await
            .map_err(|e| self.words(e, reference))?;
        if bytes.len() as u64 > store::MAX_MANIFEST {
            return Err(Failure::BadInput(format!(
                "the registry sent a manifest of {}, which no Wasm artifact has",
                text::size(bytes.len() as u64)
            )));
        }
        let manifest = store::sha256(&bytes);
        if let Some(pinned) = reference.digest()
            && pinned != manifest
        {
            return Err(mismatch("manifest", pinned, &manifest));
        }
        let pinned = reference.pinned(&manifest);
        let Artifact { layer } = artifact::parse(&bytes).map_err(Failure::BadInput)?;
        if layer.size > max_size {
            return Err(Failure::BadInput(format!(
                "its component is {} (as its manifest says), over the size limit of {}; nothing was downloaded; raise --max-size if you trust it",
                text::size(layer.size),
                text::size(max_size)
            )));
        }
        if !stored_whole(store, &layer) {
            self.download(&pinned, store, &layer).await?;
        }
        store
            .keep_manifest(&bytes)
            .map_err(|e| cannot_store(store, &e))?;
        Ok(Pulled {
            reference: pinned,
            path: store.blob_path(&layer.hex),
            layer: layer.hex,
            size: layer.size,
            already: false,
        })
    }

    /// Streams the layer into the store, hashing it and holding it to the manifest's size.
    async fn download(
        &self,
        reference: &Reference,
        store: &Store,
        layer: &Descriptor,
    ) -> Result<(), Failure> {
        use sha2::Digest;
        let descriptor = OciDescriptor {
            media_type: layer.media_type.clone(),
            digest: format!("sha256:{}", layer.hex),
            size: i64::try_from(layer.size).unwrap_or(i64::MAX),
            ..OciDescriptor::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(&reference.client(), &descriptor)
            .await
            .map_err(|e| self.words(e, reference))?;
        let mut file = store.new_blob().map_err(|e| cannot_store(store, &e))?;
        let mut hasher = sha2::Sha256::new();
        let mut total = 0u64;
        let mut head = Vec::with_capacity(8);
        while let Some(piece) = stream.next().await {
            let piece = match piece {
                Ok(p) => p,
                // The client checks the digest too, at the end; ours below says it in words.
                Err(e) if is_digest_error(&e) => break,
                Err(e) => {
                    return Err(Failure::BadInput(format!(
                        "the download of its component failed: {}",
                        text::io_error(&e)
                    )));
                }
            };
            total += piece.len() as u64;
            if total > layer.size {
                return Err(Failure::BadInput(format!(
                    "the registry sent more than the {} its manifest gives for the component; refused",
                    text::size(layer.size)
                )));
            }
            let room = 8usize.saturating_sub(head.len()).min(piece.len());
            head.extend_from_slice(&piece[..room]);
            hasher.update(&piece);
            file.write_all(&piece)
                .map_err(|e| cannot_store(store, &e))?;
        }
        let got = format!("{:x}", hasher.finalize());
        if total != layer.size || got != layer.hex {
            return Err(mismatch("component (layer)", &layer.hex, &got));
        }
        // Only components come from a registry: a `.cwasm` would run as native code.
        if !wasmparser::Parser::is_component(&head) {
            return Err(Failure::BadInput(
                "its layer is not a WebAssembly component; only components are taken from a registry (never a precompiled .cwasm, which runs as native code)".into(),
            ));
        }
        store
            .keep_blob(file, &layer.hex)
            .map_err(|e| cannot_store(store, &e))
    }

    async fn push_async(
        &self,
        component: &[u8],
        config: Vec<u8>,
        reference: &Reference,
    ) -> Result<Pushed, Failure> {
        let target = reference.client();
        let auth = self.credentials.for_registry(reference.registry());
        let words = |e| self.words(e, reference);
        self.client
            .auth(&target, &auth, oci_client::RegistryOperation::Push)
            .await
            .map_err(words)?;
        let layer = Descriptor::layer(component);
        let config_descriptor = Descriptor::config(&config);
        let manifest = artifact::manifest(&config_descriptor, &layer);
        for (bytes, hex) in [
            (component.to_vec(), &layer.hex),
            (config, &config_descriptor.hex),
        ] {
            self.client
                .push_blob(&target, bytes, &format!("sha256:{hex}"))
                .await
                .map_err(words)?;
        }
        let media_type = artifact::MANIFEST
            .parse()
            .expect("the manifest media type is a header value");
        let digest = store::sha256(&manifest);
        self.client
            .push_manifest_raw(&target, manifest, media_type)
            .await
            .map_err(words)?;
        Ok(Pushed {
            reference: reference.pinned(&digest),
            layer: layer.hex,
        })
    }

    /// A registry failure in words: what happened and what to do.
    fn words(&self, e: OciDistributionError, reference: &Reference) -> Failure {
        let registry = reference.registry();
        let why = match &e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => {
                format!("unauthorised: {}", self.credentials.advice(registry))
            }
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let said = envelope
                    .errors
                    .iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                    )
                }) {
                    format!("not found at {registry} ({said}); check the repository, tag or digest")
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    format!(
                        "unauthorised ({said}): {}",
                        self.credentials.advice(registry)
                    )
                } else {
                    format!("the registry refused it: {said}")
                }
            }
            OciDistributionError::ServerError {
                code: 401 | 403, ..
            } => format!("unauthorised: {}", self.credentials.advice(registry)),
            OciDistributionError::ServerError { code: 404, .. } => {
                format!("not found at {registry} (HTTP 404); check the repository, tag or digest")
            }
            OciDistributionError::ServerError { code, message, .. } => format!(
                "the registry answered HTTP {code}: {}{}",
                text::excerpt(&text::one_line(message), 200),
                if *code == 400 && message.contains("HTTPS") && self.options.insecure {
                    "; it speaks HTTPS: leave out --insecure-registry"
                } else {
                    ""
                }
            ),
            OciDistributionError::DigestError(d) => {
                format!("digest mismatch: {d}; the registry's content does not match the digest")
            }
            OciDistributionError::UnsupportedMediaTypeError(t) => format!(
                "not a Wasm component artifact (its manifest's media type is {})",
                text::excerpt(t, 100)
            ),
            OciDistributionError::RequestError(r) => self.unreachable(r, registry),
            other => chain(other),
        };
        Failure::BadInput(why)
    }

    /// A failure to talk to the registry at all, told apart by the error's type.
    fn unreachable(&self, e: &(dyn std::error::Error + 'static), registry: &str) -> String {
        for err in causes(e) {
            if let Some(tls) = err.downcast_ref::<rustls::Error>() {
                return self.tls_words(tls, registry);
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        return format!(
                            "registry {registry} unreachable: connection refused; check the address and that the registry is running"
                        );
                    }
                    std::io::ErrorKind::TimedOut => {
                        return format!("registry {registry} did not answer in time");
                    }
                    _ => {}
                }
            }
        }
        format!("registry {registry} unreachable: {}", chain(e))
    }

    fn tls_words(&self, e: &rustls::Error, registry: &str) -> String {
        use rustls::{CertificateError, Error};
        let flag = self.options.ca_flag;
        match e {
            Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "TLS with {registry} failed: unknown issuer: no trusted CA signed its certificate; give the registry's CA with {flag}"
            ),
            Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => format!(
                "TLS with {registry} failed: it does not speak TLS on this port ({e}); for a plain-HTTP registry give --insecure-registry"
            ),
            other => format!(
                "TLS with {registry} failed: {}",
                crate::sandbox::trust::words(other)
            ),
        }
    }
}

/// Whether a stored blob already holds this layer (pulled for another manifest).
fn stored_whole(store: &Store, layer: &Descriptor) -> bool {
    std::fs::read(store.blob_path(&layer.hex))
        .map(|bytes| store::sha256(&bytes) == layer.hex)
        .unwrap_or(false)
}

fn is_digest_error(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|i| {
        i.is::<oci_client::errors::DigestError>() || i.is::<OciDistributionError>()
    })
}

fn mismatch(what: &str, expected: &str, got: &str) -> Failure {
    Failure::BadInput(format!(
        "digest mismatch: the {what} the registry sent has sha256:{got}, not sha256:{expected}; nothing was kept (check the digest, or whether the registry serves what was pushed)"
    ))
}

fn cannot_store(store: &Store, e: &std::io::Error) -> Failure {
    Failure::BadInput(format!(
        "cannot write to the store of pulled probes {}: {}; give a writable --cache-dir",
        store.dir().display(),
        text::io_error(e)
    ))
}

/// An error and its causes, the errors an I/O error wraps included (its `source` skips
/// them: rustls's error inside hyper's inside reqwest's is found only this way).
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        out.push(err);
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    out
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    text::one_line(&out)
}

/// The config's `created`: `SOURCE_DATE_EPOCH` when set (a reproducible push makes the
/// same manifest digest from the same component), else now.
fn created() -> String {
    let at = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|secs| std::time::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or_else(std::time::SystemTime::now);
    humantime::format_rfc3339_seconds(at).to_string()
}
