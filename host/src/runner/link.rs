//! Linking a component against the host's imports, and checking it is a probe.

use wasmtime::Engine;
use wasmtime::Precompiled;
use wasmtime::component::Component;

use crate::report::Failure;

use crate::text;

use super::Runner;
use super::world::LinkedProbe;

impl Runner {
    /// Loads code made by [`Runner::precompile`] the way `run` loads a `.cwasm`, and links
    /// it: `compile` refuses, with `run`'s message, a component that `run` could not run.
    pub fn check_precompiled(&self, compiled: &[u8]) -> Result<(), Failure> {
        let component = self.deserialize(Precompiled::Component, compiled)?;
        self.link(&component).map(drop)
    }

    /// Links a component against the host's imports and checks its exports.
    pub(crate) fn link(&self, component: &Component) -> Result<LinkedProbe, Failure> {
        let backend = [self.aot.get(), self.jit_if_made()]
            .into_iter()
            .flatten()
            .find(|b| Engine::same(&b.engine, component.engine()))
            .ok_or_else(|| {
                Failure::Setup("the component is from another runner's engine".into())
            })?;
        let pre = backend.linker_for(component)?.instantiate_pre(component).map_err(|e| {
            Failure::BadInput(format!(
                "cannot be linked: {}; healthprobe provides healthprobe:probe/http@0.1.1 (which serves 0.1.0 too) and WASI 0.2 (wasi:http and wasi:tls included); see `healthprobe inspect` for what the probe imports",
                text::chain(&e)
            ))
        })?;
        LinkedProbe::new(pre).map_err(|e| {
            Failure::BadInput(format!(
                "not a healthprobe probe: {}; it must export `describe` and `check` of the world healthprobe:probe/probe@0.1.1 (or of 0.1.0's, probe-text)",
                text::chain(&e)
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::runner::{Code, Runner, runtime};

    #[test]
    fn every_import_of_every_bundled_probe_is_provided_and_named() {
        let runner = Runner::new().unwrap();
        let rt = runtime().unwrap();
        for b in &crate::bundled::BUNDLED {
            let (component, _) = rt
                .block_on(runner.component(
                    Code::Bundled(b),
                    &crate::limits::CodeLimits::default(),
                    &Default::default(),
                ))
                .unwrap();
            let (caps, unknown) = crate::imports::capabilities(&component);
            assert!(unknown.is_empty(), "{}: {unknown:?}", b.name);
            assert!(!caps.is_empty(), "{}", b.name);
            runner.link(&component).unwrap();
        }
    }
}
