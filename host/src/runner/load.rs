//! Loading a probe, the steps in order: find and hash it ([`super::source`]), check a
//! pinned SHA-256, reuse what this runner linked before, else compile or load its code
//! ([`super::compile`]) and link it ([`super::link`]).

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::activity::Activity;
use crate::bundled;
use crate::fsio::KnownKeys;
use crate::limits::CodeLimits;
use crate::report::Failure;

use crate::text;

use super::compile::COMPILING;
use super::source::{Code, ProbeSource, identify};
use super::world::LinkedProbe;
use super::{Runner, Shared};

/// Loads a bundled probe's code where it lies, once per process. wasmtime registers the
/// address range of every loaded image in a process-wide table and aborts on a second
/// image at the same addresses; so concurrent first runs of one bundled probe (`serve`,
/// `run --config`), a runner's cache evicting it while a run still holds it, or a second
/// runner, must all get the one component loaded in place: the first load keeps it for
/// the process (its memory stays anyway). Another engine's runner gets a copy instead.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn in_place(
    b: &'static bundled::Bundled,
    engine: &Engine,
    broken: &dyn Fn(String) -> Failure,
) -> Result<Component, Failure> {
    static LOADED: std::sync::Mutex<Vec<(&'static str, Component)>> =
        std::sync::Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = loaded.iter().find(|(name, _)| *name == b.name) {
        if Engine::same(c.engine(), engine) {
            return Ok(c.clone());
        }
        // SAFETY: as for the bytes in place; copied, they belong to wasmtime alone.
        #[allow(unsafe_code)]
        let copy = unsafe { Component::deserialize(engine, b.precompiled().map_err(broken)?) };
        return copy.map_err(|e| broken(text::chain(&e)));
    }
    // SAFETY: the bytes were made by `build.rs` with this binary's engine settings
    // (runner/engine_config.rs); wasmtime still checks them. In place, they live for the process and
    // nothing writes to them (`Bundled::in_place`); the lock above makes this the only
    // image ever loaded from them.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize_raw(engine, b.in_place().map_err(broken)?) }
        .map_err(|e| broken(text::chain(&e)))?;
    loaded.push((b.name, component.clone()));
    Ok(component)
}

/// Linked probes a runner keeps: more distinct probes than a checks file holds in practice.
const MAX_LINKED: usize = 256;

impl Runner {
    /// Reads, verifies, compiles (or loads precompiled) and links the component; `shared`
    /// receives its sha256 and how its code was obtained.
    pub(super) async fn load(
        &self,
        source: &ProbeSource,
        limits: &CodeLimits,
        shared: Option<&Shared>,
    ) -> Result<LinkedProbe, Failure> {
        let pinned = shared.and_then(|s| s.sha256.as_deref());
        let code = identify(
            source,
            limits,
            pinned.is_some() || shared.is_some_and(|s| s.report_sha256),
            self.known_keys(),
        )?;
        if let Some(shared) = shared {
            let digest = code.digest();
            if let (Some(expected), Some(digest)) = (pinned, digest)
                && !expected.eq_ignore_ascii_case(digest)
            {
                return Err(Failure::BadInput(format!(
                    "sha256 mismatch: the probe is {digest}, --sha256 pins {expected}; refusing to run it"
                )));
            }
            *shared.sha256_seen.lock().unwrap_or_else(|e| e.into_inner()) =
                digest.map(str::to_owned);
        }
        let key = code.key().map(str::to_owned);
        if let Some(pre) = key.as_deref().and_then(|k| self.cached(k)) {
            return Ok(pre);
        }
        // One compile at a time, and none twice: a server loading ten thousand checks of
        // three probes starts them all at once, and every first run but three finds the
        // code linked here when its turn comes.
        let _compiling = self.compiling.lock().await;
        if let Some(pre) = key.as_deref().and_then(|k| self.cached(k)) {
            return Ok(pre);
        }
        let activity = shared.map(|s| s.activity.clone()).unwrap_or_default();
        let (component, how) = self.component(code, limits, &activity).await?;
        if let Some(shared) = shared {
            *shared.code_seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(how);
        }
        let pre = self.link(&component)?;
        if let Some(key) = key {
            let mut linked = self.linked.lock().unwrap_or_else(|e| e.into_inner());
            // A bound, so a runner fed ever-changing files cannot grow without limit.
            if linked.len() >= MAX_LINKED {
                linked.clear();
            }
            linked.insert(key, pre.clone());
        }
        Ok(pre)
    }

    /// The compile cache's index of component files, if there is a cache.
    fn known_keys(&self) -> Option<&dyn KnownKeys> {
        #[cfg(feature = "compiler")]
        return self.cache.as_ref().map(|c| c as &dyn KnownKeys);
        #[cfg(not(feature = "compiler"))]
        None
    }

    fn cached(&self, digest: &str) -> Option<LinkedProbe> {
        let linked = self.linked.lock().unwrap_or_else(|e| e.into_inner());
        linked.get(digest).cloned()
    }

    /// The compiled component for `code`, and how it was obtained, for `--verbose`.
    pub(crate) async fn component(
        &self,
        code: Code,
        limits: &CodeLimits,
        activity: &Activity,
    ) -> Result<(Component, String), Failure> {
        match code {
            Code::Bundled(b) => {
                let broken = |why: String| {
                    Failure::BadInput(format!(
                        "the bundled probe {} does not load into this engine: {why}; this healthprobe was built wrongly, rebuild it",
                        b.name
                    ))
                };
                let engine = &self.aot()?.engine;
                #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
                let component = in_place(b, engine, &broken)?;
                // SAFETY: the bytes were made by `build.rs` with this binary's engine
                // settings (runner/engine_config.rs); wasmtime still checks them.
                #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
                #[allow(unsafe_code)]
                let component =
                    unsafe { Component::deserialize(engine, b.precompiled().map_err(broken)?) }
                        .map_err(|e| broken(text::chain(&e)))?;
                Ok((component, "precompiled when healthprobe was built".into()))
            }
            Code::File(file) => {
                if let Some(kind) = file.precompiled {
                    let component = match file.sha256 {
                        // Hashed (pinned, or for --verbose): what runs is what was hashed.
                        Some(_) => self.deserialize(kind, &file.read()?)?,
                        None => self.deserialize_file(kind, &file)?,
                    };
                    return Ok((component, "precompiled file (healthprobe compile)".into()));
                }
                // Named by the timeout if the deadline hits the compile.
                activity.set(Some(COMPILING.into()));
                let compiled = self.compile_cached(&file, limits).await;
                activity.set(None);
                compiled
            }
        }
    }
}
