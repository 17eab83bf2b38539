//! Probes from OCI registries: `oci://REGISTRY/REPO@sha256:DIGEST` wherever a probe path
//! is taken, and the `pull` and `push` commands.
//!
//! A probe travels as a "Wasm OCI artifact", the layout `wkg` and the CNCF TAG Runtime's
//! Wasm OCI artifact specification write: an image manifest whose config has the media type
//! `application/vnd.wasm.config.v0+json` and whose one layer, `application/wasm`, is the
//! component ([`artifact`]).
//!
//! Two digests are involved, and they are not the same thing:
//! - the **manifest digest**, what `oci://…@sha256:` pins: the SHA-256 of the manifest,
//!   which names the layer by its digest, so it pins the component too;
//! - the **layer digest**: the SHA-256 of the component file itself, what `run --sha256`
//!   pins for a file and what `inspect` reports as `sha256`.
//!
//! Pulled artifacts are kept by digest in the compile cache's directory ([`store`]), and
//! both digests are checked again from the stored bytes on every use. The network is only
//! touched by `pull` and `push`, and by the other commands when given `--pull`
//! ([`registry`]); a run of a stored probe never contacts a registry.

pub mod artifact;
mod credentials;
pub mod registry;
pub mod store;

use std::fmt;
use std::time::Instant;

use crate::flags::OciArgs;
use crate::report::Failure;
use crate::runner::ProbeSource;

pub use registry::Registry;
pub use store::{Store, Stored};

/// The scheme that marks a probe as an OCI reference.
pub const SCHEME: &str = "oci://";

/// How long a pull may take outside `run` (`inspect --pull`, `compile --pull`, `serve
/// --pull`), where no check's deadline bounds it.
pub const PULL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A reference to an artifact in a registry: `REGISTRY/REPO:TAG` or `REGISTRY/REPO@sha256:HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    /// The manifest's SHA-256 in hex, when pinned.
    digest: Option<String>,
}

impl Reference {
    /// Parses a reference, with or without `oci://`. A reference with both a tag and a
    /// digest is pinned by the digest (the tag is kept only for messages).
    pub fn parse(text: &str) -> Result<Self, Failure> {
        let bare = text.strip_prefix(SCHEME).unwrap_or(text);
        let bad = |why: String| {
            Failure::BadInput(format!(
                "bad OCI reference '{}': {why}; write oci://REGISTRY/REPO@sha256:DIGEST (or REGISTRY/REPO:TAG)",
                crate::text::excerpt(text, 200)
            ))
        };
        if bare.is_empty() {
            return Err(bad("it is empty".into()));
        }
        let parsed: oci_client::Reference = bare.parse().map_err(|e| bad(format!("{e}")))?;
        let digest = match parsed.digest() {
            None => None,
            Some(d) => Some(sha256_hex(d).ok_or_else(|| {
                bad(format!(
                    "only sha256 digests are supported (64 hex digits after sha256:), not {}",
                    crate::text::excerpt(d, 80)
                ))
            })?),
        };
        Ok(Reference {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag: parsed.tag().map(str::to_string),
            digest,
        })
    }

    /// The manifest digest in hex, when the reference is pinned.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The registry's host (and port).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The same artifact pinned by `digest` (hex), the tag dropped.
    pub fn pinned(&self, digest: &str) -> Self {
        Reference {
            digest: Some(digest.to_string()),
            tag: None,
            ..self.clone()
        }
    }

    /// The reference as the OCI client takes it.
    pub(crate) fn client(&self) -> oci_client::Reference {
        match (&self.digest, &self.tag) {
            (Some(d), _) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                format!("sha256:{d}"),
            ),
            (None, tag) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone().unwrap_or_else(|| "latest".into()),
            ),
        }
    }

    /// The last part of the repository, for a file name (`compile`'s and `pull`'s output).
    pub fn name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        match (&self.digest, &self.tag) {
            (Some(d), _) => write!(f, "@sha256:{d}"),
            (None, Some(t)) => write!(f, ":{t}"),
            (None, None) => write!(f, ":latest"),
        }
    }
}

/// Whether a probe argument names an OCI reference (starts with `oci://`).
pub fn is_oci(text: &str) -> bool {
    text.starts_with(SCHEME)
}

/// The hex of a `sha256:HEX` digest, lower case, if that is what it is.
pub fn sha256_hex(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    crate::flags::parse_sha256(hex).ok()
}

/// An `oci://` probe: its reference, and the store it is read from.
#[derive(Debug, Clone)]
pub struct Probe {
    /// As given, or pinned once a tag was resolved.
    pub reference: Reference,
    /// Where pulled artifacts are kept.
    pub store: Store,
}

impl Probe {
    /// The name used in messages: the reference.
    pub fn label(&self) -> String {
        self.reference.to_string()
    }

    /// A file name for it: the repository's last part.
    pub fn name(&self) -> String {
        self.reference.name().to_string()
    }

    /// The manifest digest (hex) the reference pins, if it is pinned.
    pub fn manifest_digest(&self) -> Option<String> {
        self.reference.digest().map(str::to_string)
    }

    /// The stored component file and its SHA-256 (the layer digest, hex), or why the
    /// probe cannot be read.
    pub fn component(&self) -> Result<(std::path::PathBuf, String), Failure> {
        let stored = self.stored()?;
        Ok((stored.path, stored.layer))
    }

    /// The stored artifact, checked against both digests' first half (the manifest is
    /// read and hashed here; the component is hashed when it is read to run), or why it
    /// cannot be used.
    pub fn stored(&self) -> Result<Stored, Failure> {
        let Some(digest) = self.reference.digest() else {
            return Err(Failure::BadInput(
                "a tag is resolved only at the registry: give --pull with --allow-tags, or pin the digest `healthprobe pull` prints".into(),
            ));
        };
        self.store.lookup(digest)?.ok_or_else(|| {
            Failure::BadInput(format!(
                "not pulled yet (looked in {}): run `healthprobe pull {}` first (with the same --cache-dir), or give --pull",
                self.store.dir().display(),
                self.reference
            ))
        })
    }
}

/// What the operator allows for `oci://` probes, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The store; `None` when no cache directory is known.
    pub store: Option<Store>,
    /// References by tag are accepted (resolved at the registry).
    pub allow_tags: bool,
}

impl Access {
    /// The `oci://` probe `text` names, if the operator allows it.
    pub fn probe(&self, text: &str) -> Result<Probe, Failure> {
        let reference = Reference::parse(text)?;
        if reference.digest().is_none() && !self.allow_tags {
            return Err(Failure::BadInput(format!(
                "a reference by tag can move to other code: pin it by digest (oci://…@sha256:…, as `healthprobe pull {reference}` prints), or allow tags with --allow-tags --pull"
            )));
        }
        let store = self.store.clone().ok_or_else(|| {
            Failure::BadInput(
                "no directory to keep pulled probes in: give --cache-dir DIR (or set HEALTHPROBE_CACHE_DIR)"
                    .into(),
            )
        })?;
        Ok(Probe { reference, store })
    }
}

/// With `--pull`, pulls every `oci://` source among `sources` that is a tag or not stored
/// yet, each refused over its size limit and ended by its deadline, and pins tags to the
/// digest they resolved to; without it, does nothing (a source not stored is refused when
/// it is read). Returns a line per registry contact for the log (`resolved …`, `pulled …`).
pub fn fetch<'a>(
    sources: impl IntoIterator<Item = (&'a mut ProbeSource, u64, Instant)>,
    args: &OciArgs,
) -> Result<Vec<String>, Failure> {
    if !args.pull {
        return Ok(Vec::new());
    }
    let mut wanted = Vec::new();
    for (source, max_size, until) in sources {
        if let ProbeSource::Oci(probe) = source {
            let stored = match probe.reference.digest() {
                Some(d) => probe.store.lookup(d)?.is_some(),
                None => false,
            };
            if !stored {
                wanted.push((probe, max_size, until));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let registry = Registry::new(registry::Options {
        ca: args.registry_ca.clone(),
        ca_flag: "--registry-ca",
        insecure: args.registry.insecure_registry,
    })?;
    let mut lines = Vec::new();
    for (probe, max_size, until) in wanted {
        let pulled = registry.pull(&probe.reference, &probe.store, max_size, until)?;
        if probe.reference.digest().is_none() {
            lines.push(format!(
                "resolved {} to {}",
                probe.reference, pulled.reference
            ));
        }
        if !pulled.already {
            lines.push(pulled.summary());
        }
        probe.reference = pulled.reference;
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_parse_with_and_without_the_scheme() {
        let r = Reference::parse(&format!("oci://127.0.0.1:5000/probes/tcp@sha256:{HEX}")).unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.digest(), Some(HEX));
        assert_eq!(r.name(), "tcp");
        assert_eq!(
            r.to_string(),
            format!("oci://127.0.0.1:5000/probes/tcp@sha256:{HEX}")
        );
        let t = Reference::parse("registry.example:443/a/b:v1").unwrap();
        assert_eq!(t.digest(), None);
        assert_eq!(t.to_string(), "oci://registry.example:443/a/b:v1");
        assert_eq!(t.pinned(HEX).digest(), Some(HEX));
        // Both: the digest pins it.
        let both = Reference::parse(&format!("r.example/a:v1@sha256:{HEX}")).unwrap();
        assert_eq!(both.to_string(), format!("oci://r.example/a@sha256:{HEX}"));
    }

    #[test]
    fn bad_references_say_what_to_write() {
        for bad in [
            "oci://",
            "oci://Registry/UPPER",
            "r.example/a@sha512:abcd",
            "r.example/a@sha256:12",
        ] {
            let e = Reference::parse(bad).unwrap_err().to_string();
            assert!(e.contains("bad OCI reference"), "{bad}: {e}");
            assert!(
                e.contains("oci://REGISTRY/REPO@sha256:DIGEST"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn tags_need_the_operators_permission() {
        let dir = tempfile::tempdir().unwrap();
        let access = Access {
            store: Some(Store::new(dir.path())),
            allow_tags: false,
        };
        let e = access
            .probe("oci://r.example/a:v1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("by tag") && e.contains("--allow-tags"), "{e}");
        assert!(
            access
                .probe(&format!("oci://r.example/a@sha256:{HEX}"))
                .is_ok()
        );
        let allowed = Access {
            allow_tags: true,
            ..access
        };
        assert!(allowed.probe("oci://r.example/a:v1").is_ok());
    }
}
