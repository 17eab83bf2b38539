//! The two worlds a probe may target, behind one type: `probe` (from
//! `healthprobe:probe@0.1.1`: typed details, declared defaults filled in by the host) and
//! `probe-text` (0.1.0's world: text details, no defaults filled in), which components
//! built before 0.1.1 target.

use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store};

use crate::bindings::healthprobe::probe::types::{
    CheckError, CheckResult, ProbeInfo, Report, Value,
};
use crate::bindings::text::{ProbeText, ProbeTextPre};
use crate::bindings::{Probe, ProbePre};
use crate::state::HostState;

/// A linked probe of either world.
#[derive(Clone)]
pub(crate) enum LinkedProbe {
    /// World `probe`.
    Typed(ProbePre<HostState>),
    /// World `probe-text`.
    Text(ProbeTextPre<HostState>),
}

/// An instance of a linked probe.
pub(crate) enum Instance {
    Typed(Probe),
    Text(ProbeText),
}

impl LinkedProbe {
    /// The probe's exports checked against world `probe`, else against `probe-text`; the
    /// error is `probe`'s, the world new probes target.
    pub fn new(pre: InstancePre<HostState>) -> wasmtime::Result<Self> {
        match ProbePre::new(pre.clone()) {
            Ok(typed) => Ok(Self::Typed(typed)),
            Err(e) => ProbeTextPre::new(pre).map(Self::Text).map_err(|_| e),
        }
    }

    /// The engine it was compiled for.
    pub fn engine(&self) -> &Engine {
        match self {
            Self::Typed(p) => p.engine(),
            Self::Text(p) => p.engine(),
        }
    }

    /// A new instance in `store`.
    pub async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Self::Typed(p) => Instance::Typed(p.instantiate_async(store).await?),
            Self::Text(p) => Instance::Text(p.instantiate_async(store).await?),
        })
    }
}

impl Instance {
    /// Calls `describe`.
    pub async fn describe(&self, store: &mut Store<HostState>) -> wasmtime::Result<ProbeInfo> {
        match self {
            Self::Typed(p) => p.call_describe(store).await,
            Self::Text(p) => p.call_describe(store).await,
        }
    }

    /// Calls `check` with the operator's `params` (already validated against `info`):
    /// for world `probe`, followed by the declared default of each parameter not given.
    /// A `probe-text` result's details become text values.
    pub async fn check(
        &self,
        store: &mut Store<HostState>,
        params: &[(String, String)],
        info: &ProbeInfo,
        budget_ms: u64,
    ) -> wasmtime::Result<Result<Report, CheckError>> {
        match self {
            Self::Typed(p) => {
                let mut all = params.to_vec();
                let mut defaulted = Vec::new();
                for spec in &info.params {
                    if let Some(default) = &spec.default
                        && !params.iter().any(|(name, _)| *name == spec.name)
                    {
                        all.push((spec.name.clone(), default.clone()));
                        defaulted.push(spec.name.clone());
                    }
                }
                p.call_check(store, &all, &defaulted, budget_ms).await
            }
            Self::Text(p) => Ok(p.call_check(store, params, budget_ms).await?.map(from_text)),
        }
    }
}

fn from_text(r: CheckResult) -> Report {
    Report {
        status: r.status,
        message: r.message,
        details: r
            .details
            .into_iter()
            .map(|(name, value)| (name, Value::Text(value)))
            .collect(),
    }
}
