//! Host implementation of `wasi:sockets/ip-name-lookup` with the network policy in front.
//!
//! wasmtime-wasi can only switch name lookup on or off as a whole. A lookup is itself
//! traffic (a DNS query can carry data out), so a probe may resolve only names the
//! operator granted; this module shadows WASI's `resolve-addresses` with a check and
//! delegates everything else.

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::SocketError;
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, Host, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress, Network};

use crate::sandbox::network::Grant;

use crate::imports::Capability;
use crate::imports::sockets::{Sockets, SocketsView};
use crate::sandbox::Sandbox;

/// What `inspect` says the import asks for.
pub const CAPABILITY: Capability = Capability {
    key: "name-lookup",
    description: "network: name lookup",
    interfaces: &["wasi:sockets/ip-name-lookup"],
    grant,
};

/// Only names granted by name may be looked up.
fn grant(sandbox: &Sandbox) -> (bool, String) {
    let names: Vec<String> = [sandbox.net.grants(), sandbox.udp.grants()]
        .into_iter()
        .flatten()
        .filter_map(|g| match g {
            Grant::Any => Some("*".to_string()),
            Grant::Host(h, _) => Some(h.clone()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        (
            false,
            "not granted (grant a host name with --allow-net)".into(),
        )
    } else {
        (true, format!("for {}", names.join(", ")))
    }
}

/// Replaces WASI's `ip-name-lookup` in `linker` (which must already hold WASI) with the
/// policy-checked one.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> SocketsView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    ip_name_lookup::add_to_linker::<T, Sockets>(linker, get)?;
    linker.allow_shadowing(false);
    Ok(())
}

impl Host for SocketsView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        if !self.sandbox.check_lookup(&name) {
            return Err(ErrorCode::AccessDenied.into());
        }
        self.cap.activity.called(format!("name lookup of {name}"));
        Host::resolve_addresses(&mut self.sockets, network, for_wasi(name))
    }
}

/// The name WASI's resolver is given for `name`, which the policy allowed. A literal
/// needs no lookup: WASI gets it in the form it parses itself, so `127.0.0.1.` never
/// becomes a DNS query; a name goes in lower case, `localhost` without its trailing dot.
fn for_wasi(name: String) -> String {
    match crate::sandbox::network::ip_literal(&name) {
        Some(ip) => ip.to_string(),
        None => crate::sandbox::network::resolver_name(&name),
    }
}

impl HostResolveAddressStream for SocketsView<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        HostResolveAddressStream::resolve_next_address(&mut self.sockets, stream)
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        HostResolveAddressStream::subscribe(&mut self.sockets, stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        HostResolveAddressStream::drop(&mut self.sockets, stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasi_gets_literals_and_localhost_in_the_form_that_needs_no_dns() {
        for (name, expected) in [
            ("127.0.0.1.", "127.0.0.1"),
            ("[::1]", "::1"),
            ("localhost.", "localhost"),
            ("LOCALHOST.", "localhost"),
            ("db.internal.", "db.internal."),
            ("DB.Internal", "db.internal"),
        ] {
            assert_eq!(for_wasi(name.to_string()), expected, "{name}");
        }
    }
}
