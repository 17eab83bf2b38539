//! A runtime-only healthprobe has no compiler, and `oci://` probes are components, which
//! need one: such a probe is refused in words, and nothing here can contact a registry.

use std::time::Instant;

use crate::flags::OciArgs;
use crate::report::Failure;
use crate::runner::ProbeSource;

/// How long a pull may take outside `run`; unused here.
pub const PULL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The scheme that marks a probe as an OCI reference.
pub const SCHEME: &str = "oci://";

/// Whether a probe argument names an OCI reference (starts with `oci://`).
pub fn is_oci(text: &str) -> bool {
    text.starts_with(SCHEME)
}

/// An `oci://` probe, which this build never has.
#[derive(Debug, Clone)]
pub enum Probe {}

impl Probe {
    /// Never called: there is no such probe.
    pub fn label(&self) -> String {
        match *self {}
    }

    /// Never called: there is no such probe.
    pub fn name(&self) -> String {
        match *self {}
    }

    /// Never called: there is no such probe.
    pub fn manifest_digest(&self) -> Option<String> {
        match *self {}
    }

    /// Never called: there is no such probe.
    pub fn component(&self) -> Result<(std::path::PathBuf, String), Failure> {
        match *self {}
    }
}

/// What the operator allows of `oci://` probes: nothing, here.
#[derive(Debug, Clone, Default)]
pub struct Access;

impl Access {
    /// Refuses every `oci://` probe.
    pub fn probe(&self, text: &str) -> Result<Probe, Failure> {
        Err(Failure::BadInput(format!(
            "{}: this healthprobe is runtime-only (bundled probes and .cwasm files), and an oci:// probe is a component to compile; run it with the full healthprobe, or pull it and `healthprobe compile` it there",
            crate::text::excerpt(text, 200)
        )))
    }
}

/// Nothing to pull.
pub fn fetch<'a>(
    _sources: impl IntoIterator<Item = (&'a mut ProbeSource, u64, Instant)>,
    _args: &OciArgs,
) -> Result<Vec<String>, Failure> {
    Ok(Vec::new())
}
