//! WASI 0.2 (wasmtime-wasi), with the sandbox in front: the guest's WASI context is built
//! from the grants, so sockets, directories and variables exist only as granted.

use wasmtime::component::{HasData, Linker};
use wasmtime_wasi::p2::bindings::random::{insecure, random};
use wasmtime_wasi::random::WasiRandomCtx;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiView};

use crate::imports::{Capability, RunInputs};
use crate::limits::Limiter;
use crate::report::Failure;
use crate::sandbox::Sandbox;
use crate::sandbox::network::Grant;

/// Registers every WASI 0.2 interface, random bytes capped by `--max-memory`.
/// `T`'s [`WasiView`] serves WASI; `random` the capped random interfaces.
pub fn add_to_linker<T: WasiView + 'static>(
    linker: &mut Linker<T>,
    random: fn(&mut T) -> CappedRandom<'_>,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    linker.allow_shadowing(true);
    random::add_to_linker::<T, CappedRandom<'static>>(linker, random)?;
    insecure::add_to_linker::<T, CappedRandom<'static>>(linker, random)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// WASI's random numbers, with the length of a byte request checked against the memory
/// cap before the host allocates the buffer (wasmtime-wasi's own cap is a fixed 64 MiB,
/// and reports an untyped error).
pub struct CappedRandom<'a> {
    /// WASI's random context.
    pub ctx: &'a mut WasiRandomCtx,
    /// The run's memory cap.
    pub limiter: &'a Limiter,
}

impl HasData for CappedRandom<'static> {
    type Data<'a> = CappedRandom<'a>;
}

impl random::Host for CappedRandom<'_> {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.limiter.host_buffer(len)?;
        random::Host::get_random_bytes(self.ctx, len)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        random::Host::get_random_u64(self.ctx)
    }
}

impl insecure::Host for CappedRandom<'_> {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.limiter.host_buffer(len)?;
        insecure::Host::get_insecure_random_bytes(self.ctx, len)
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        insecure::Host::get_insecure_random_u64(self.ctx)
    }
}

/// The guest's WASI context: clocks and random always; stdout/stderr into the captures;
/// stdin empty; sockets, directories and variables only as `sandbox` grants.
pub fn ctx(run: &RunInputs) -> Result<WasiCtx, Failure> {
    let (sandbox, stdout, stderr) = (run.sandbox, run.stdout, run.stderr);
    let mut b = WasiCtxBuilder::new();
    b.stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(!sandbox.net.is_empty())
        .allow_udp(!sandbox.udp.is_empty())
        // Lookups are checked name by name by `super::lookup`, which shadows WASI's.
        .allow_ip_name_lookup(true);
    let (net, udp) = (sandbox.net.clone(), sandbox.udp.clone());
    b.socket_addr_check(move |addr, use_| {
        let (net, udp) = (net.clone(), udp.clone());
        Box::pin(async move {
            // The implicit bind to the wildcard address that precedes a connect or a
            // send; binding anything else would be serving, not probing.
            let implicit_bind = addr.ip().is_unspecified() && addr.port() == 0;
            match use_ {
                SocketAddrUse::TcpConnect => net.check(addr, None),
                SocketAddrUse::TcpBind => implicit_bind,
                SocketAddrUse::UdpBind => implicit_bind,
                SocketAddrUse::UdpSend => udp.check(addr, None),
                SocketAddrUse::UdpReceive => udp.allows(addr),
                // Probes check services; they do not serve.
                SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => false,
            }
        })
    });
    for dir in &sandbox.read {
        let guest = dir.to_string_lossy();
        b.preopened_dir(dir, guest.as_ref(), FsPerms::ReadOnly)
            .map_err(|e| {
                Failure::BadInput(format!(
                    "cannot open the directory granted for reading, {}: {e}; grant an existing directory",
                    dir.display()
                ))
            })?;
    }
    for (k, v) in &sandbox.env {
        b.env(k, v);
    }
    Ok(b.build())
}

/// WASI interfaces that grant nothing by themselves: streams, polling, the network
/// handle, shared types, exit.
pub const PLUMBING: &[&str] = &[
    "wasi:io/error",
    "wasi:io/streams",
    "wasi:io/poll",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:cli/exit",
];

/// TCP connections.
pub const TCP: Capability = Capability {
    key: "tcp",
    description: "network: TCP connections",
    interfaces: &["wasi:sockets/tcp", "wasi:sockets/tcp-create-socket"],
    grant: net_grant,
};

/// UDP.
pub const UDP: Capability = Capability {
    key: "udp",
    description: "network: UDP",
    interfaces: &["wasi:sockets/udp", "wasi:sockets/udp-create-socket"],
    grant: |sandbox| {
        if sandbox.udp.grants().is_empty() {
            (false, "not granted (--allow-udp)".into())
        } else {
            (true, format!("to {}", list(sandbox.udp.grants())))
        }
    },
};

/// Read-only directories.
pub const FILES: Capability = Capability {
    key: "files",
    description: "files",
    interfaces: &["wasi:filesystem/types", "wasi:filesystem/preopens"],
    grant: |sandbox| {
        if sandbox.read.is_empty() {
            return (false, "not granted (--allow-read)".into());
        }
        let dirs: Vec<String> = sandbox
            .read
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        (true, format!("read-only: {}", dirs.join(", ")))
    },
};

/// Environment variables.
pub const ENVIRONMENT: Capability = Capability {
    key: "environment",
    description: "environment variables",
    interfaces: &["wasi:cli/environment"],
    grant: |sandbox| {
        if sandbox.env.is_empty() {
            return (false, "none granted (--env)".into());
        }
        let names: Vec<&str> = sandbox.env.iter().map(|(k, _)| k.as_str()).collect();
        (true, names.join(", "))
    },
};

/// Standard input: always empty.
pub const STDIN: Capability = Capability {
    key: "stdin",
    description: "standard input",
    interfaces: &["wasi:cli/stdin", "wasi:cli/terminal-stdin"],
    grant: |_| (false, "never (always empty)".into()),
};

/// Standard output and error: captured.
pub const OUTPUT: Capability = Capability {
    key: "output",
    description: "standard output and error",
    interfaces: &[
        "wasi:cli/stdout",
        "wasi:cli/stderr",
        "wasi:cli/terminal-stdout",
        "wasi:cli/terminal-stderr",
        "wasi:cli/terminal-input",
        "wasi:cli/terminal-output",
    ],
    grant: |_| (true, "captured, capped; shown with --verbose".into()),
};

/// Clocks.
pub const CLOCKS: Capability = Capability {
    key: "clocks",
    description: "clocks",
    interfaces: &["wasi:clocks/monotonic-clock", "wasi:clocks/wall-clock"],
    grant: |_| (true, "always".into()),
};

/// Random numbers.
pub const RANDOM: Capability = Capability {
    key: "random",
    description: "random numbers",
    interfaces: &[
        "wasi:random/random",
        "wasi:random/insecure",
        "wasi:random/insecure-seed",
    ],
    grant: |_| (true, "always".into()),
};

/// TCP and the `http` import share the `--allow-net` grants.
pub(crate) fn net_grant(sandbox: &Sandbox) -> (bool, String) {
    if sandbox.net.grants().is_empty() {
        (false, "not granted (--allow-net)".into())
    } else {
        (true, format!("to {}", list(sandbox.net.grants())))
    }
}

fn list(grants: &[Grant]) -> String {
    grants
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
