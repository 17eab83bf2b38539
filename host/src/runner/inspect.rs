//! [`Runner::inspect`]: what `healthprobe inspect` shows of a probe, read without running
//! its check.

use crate::bindings::healthprobe::probe::types::ProbeInfo;
use crate::imports::{self, Capability};
use crate::limits::Limits;
use crate::report::Failure;

use super::{ProbeSource, Runner, identify};

/// A probe as `inspect` shows it.
#[derive(Debug)]
pub struct Inspection {
    /// Its size as given (a bundled probe's before precompiling).
    pub size: u64,
    /// Its SHA-256.
    pub sha256: String,
    /// How its native code was obtained (precompiled, from the cache, compiled).
    pub code: String,
    /// The capabilities its imports ask for, in `inspect`'s order.
    pub capabilities: Vec<&'static Capability>,
    /// The imports healthprobe does not provide (the probe cannot run).
    pub unsupported: Vec<String>,
    /// What the probe says of itself, or why it could not be linked or described.
    pub info: Result<ProbeInfo, Failure>,
}

impl Runner {
    /// Loads `source` as a run does (a `.wasm` through the compile cache: inspecting then
    /// costs what a cached run costs, and warms the cache), reads its imports, and links
    /// it and calls `describe` if it can: a component that cannot be linked or described
    /// still shows what it asks for. `Err` only when it cannot be loaded at all.
    pub async fn inspect(
        &self,
        source: &ProbeSource,
        limits: &Limits,
    ) -> Result<Inspection, Failure> {
        let code = identify(source, &limits.code, true, None)?;
        let sha256 = code.digest().unwrap_or_default().to_owned();
        let size = code.size();
        let (component, how) = self
            .component(code, &limits.code, &Default::default())
            .await?;
        let (capabilities, unsupported) = imports::capabilities(&component);
        let info = match self.link(&component) {
            Ok(pre) => self.describe_linked(&pre, limits).await,
            Err(f) => Err(f),
        };
        Ok(Inspection {
            size,
            sha256,
            code: how,
            capabilities,
            unsupported,
            info,
        })
    }
}
