//! The host's imports: one module per interface a probe can import, each owning its
//! per-run context, its linker registration and its `inspect` entry. None names the host
//! state: each `add_to_linker` is generic over the store's data and reaches its context
//! through a getter (or a wasmtime view trait), and builds it from the run's
//! [`RunInputs`]; `state.rs` wires them to `HostState`. A new import is a module here, its
//! entry in [`CAPABILITIES`], a field of `HostState` with its line in `HostState::new` and
//! in `state::add_to_linker`, and the WIT.
//!
//! - [`wasi`]: WASI 0.2, its context built from the sandbox's grants;
//! - [`lookup`]: `wasi:sockets/ip-name-lookup`, shadowed by a per-name policy check;
//! - [`sockets`]: WASI's socket constructors, shadowed by a cap on live sockets;
//! - [`http`]: `healthprobe:probe/http`, the host's HTTP client;
//! - [`wasi_http`]: `wasi:http/outgoing-handler`, the standard HTTP client interface, under
//!   the same rules;
//! - [`tls`]: `wasi:tls/types`, TLS over the probe's own TCP streams, with the operator's
//!   trust.

pub mod http;
pub mod lookup;
pub mod sockets;
pub mod tls;
pub mod wasi;
pub mod wasi_http;

use std::time::Instant;

use wasmtime::component::Component;

use crate::activity::Activity;
use crate::limits::{Exceeded, Limits};
use crate::sandbox::Sandbox;
use crate::stdio::Capture;
use sockets::Held;

/// What every import builds its per-run context from (`new(&RunInputs)`), made once per
/// run by the runner: the grants, the caps and the deadline, and the records the caller
/// reads after the store is gone (the host call in flight, the cap that was hit, the
/// sockets held, the captured output).
pub struct RunInputs<'a> {
    /// What the probe is granted.
    pub sandbox: &'a Sandbox,
    /// The run's caps and its configured timeout (for messages).
    pub limits: &'a Limits,
    /// When the run must be over: every host call's timeout derives from it.
    pub deadline: Instant,
    /// The host call in flight.
    pub activity: &'a Activity,
    /// The first cap the run hit.
    pub exceeded: &'a Exceeded,
    /// The sockets the probe holds.
    pub held: &'a Held,
    /// The guest's stdout.
    pub stdout: &'a Capture,
    /// The guest's stderr.
    pub stderr: &'a Capture,
}

/// A capability as an operator thinks of it, and the imports that ask for it.
#[derive(Debug)]
pub struct Capability {
    /// Short machine name, for JSON.
    pub key: &'static str,
    /// The capability in words.
    pub description: &'static str,
    /// The interfaces (without their version) that ask for it.
    pub interfaces: &'static [&'static str],
    /// Whether a sandbox grants it, and what exactly.
    pub grant: fn(&Sandbox) -> (bool, String),
}

/// Every capability, in the order `inspect` lists them.
pub const CAPABILITIES: &[&Capability] = &[
    &http::CAPABILITY,
    &wasi_http::CAPABILITY,
    &wasi::TCP,
    &tls::CAPABILITY,
    &wasi::UDP,
    &lookup::CAPABILITY,
    &wasi::FILES,
    &wasi::ENVIRONMENT,
    &wasi::STDIN,
    &wasi::OUTPUT,
    &wasi::CLOCKS,
    &wasi::RANDOM,
];

/// What one import of a component is to the host.
#[derive(Debug, Clone, Copy)]
pub enum Import {
    /// It asks for this capability.
    Asks(&'static Capability),
    /// It grants nothing by itself (streams, polling, shared types).
    Plumbing,
    /// healthprobe does not provide it: the component cannot be linked.
    NotProvided,
}

/// Classifies an import by its interface name (`wasi:sockets/tcp@0.2.6`).
pub fn import_kind(import: &str) -> Import {
    let iface = import.split('@').next().unwrap_or(import);
    if let Some(c) = CAPABILITIES.iter().find(|c| c.interfaces.contains(&iface)) {
        return Import::Asks(c);
    }
    if [http::PLUMBING, wasi_http::PLUMBING, wasi::PLUMBING]
        .iter()
        .any(|p| p.contains(&iface))
    {
        return Import::Plumbing;
    }
    Import::NotProvided
}

/// The capabilities a component's imports ask for, in [`CAPABILITIES`] order, and the
/// imports healthprobe does not provide at all.
pub fn capabilities(component: &Component) -> (Vec<&'static Capability>, Vec<String>) {
    let mut caps: Vec<&'static Capability> = Vec::new();
    let mut unknown = Vec::new();
    for (name, _) in component.component_type().imports(component.engine()) {
        match import_kind(name) {
            Import::Asks(c) if !caps.iter().any(|k| k.key == c.key) => caps.push(c),
            Import::NotProvided => unknown.push(name.to_string()),
            Import::Asks(_) | Import::Plumbing => {}
        }
    }
    // By key: a `const` may be copied wherever it is used, so addresses prove nothing.
    let rank = |c: &&Capability| CAPABILITIES.iter().position(|k| k.key == c.key);
    caps.sort_by_key(rank);
    (caps, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_interface_belongs_to_one_capability() {
        let mut seen: Vec<&str> = Vec::new();
        for c in CAPABILITIES {
            for i in c.interfaces {
                assert!(!seen.contains(i), "{i} twice");
                seen.push(i);
            }
        }
        for i in http::PLUMBING
            .iter()
            .chain(wasi_http::PLUMBING)
            .chain(wasi::PLUMBING)
        {
            assert!(matches!(import_kind(i), Import::Plumbing), "{i}");
        }
        assert!(matches!(
            import_kind("wasi:sockets/tcp@0.2.6"),
            Import::Asks(c) if c.key == "tcp"
        ));
        assert!(matches!(
            import_kind("test:missing/api@0.1.0"),
            Import::NotProvided
        ));
    }
}
