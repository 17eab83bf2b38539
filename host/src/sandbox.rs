//! What a probe is granted: network (TCP, UDP, name lookup, HTTP), read-only directories,
//! environment variables, insecure TLS. Everything not granted is denied.

use std::path::PathBuf;

use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::policy::{self, Denial, NetPolicy, Proto};
use crate::runner::Failure;
use crate::stdio::Capture;

/// The grants of one run.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// TCP, name lookup and the `http` import (`--allow-net`).
    pub net: NetPolicy,
    /// UDP (`--allow-udp`); off when empty.
    pub udp: NetPolicy,
    /// Directories the probe may read, at the same paths inside (`--allow-read`).
    pub read: Vec<PathBuf>,
    /// Environment variables the probe sees (`--env`).
    pub env: Vec<(String, String)>,
    /// Whether the `http` import may skip certificate verification on request
    /// (`--allow-insecure-tls`).
    pub insecure_tls: bool,
}

impl Sandbox {
    /// The default: loopback TCP and HTTP only, nothing else.
    pub fn loopback() -> Self {
        Self {
            net: NetPolicy::new(Proto::Tcp, &policy::default_grants(), |_| Ok(Vec::new()))
                .expect("the default grants resolve nothing"),
            udp: NetPolicy::deny_all(Proto::Udp),
            read: Vec::new(),
            env: Vec::new(),
            insecure_tls: false,
        }
    }

    /// Nothing at all, for `describe` (which must not do I/O).
    pub fn nothing() -> Self {
        Self {
            net: NetPolicy::deny_all(Proto::Tcp),
            ..Self::loopback()
        }
    }

    /// Every denial recorded so far, TCP first.
    pub fn denials(&self) -> Vec<Denial> {
        let mut d = self.net.denials();
        d.extend(self.udp.denials());
        d
    }

    /// Whether the probe may look `name` up; a refusal is recorded.
    pub fn check_lookup(&self, name: &str) -> bool {
        self.udp.allows_lookup(name) || self.net.check_lookup(name)
    }

    /// The guest's WASI context: clocks and random always; stdout/stderr into the
    /// captures; stdin empty; sockets, directories and variables only as granted.
    pub fn wasi_ctx(&self, stdout: &Capture, stderr: &Capture) -> Result<WasiCtx, Failure> {
        let mut b = WasiCtxBuilder::new();
        b.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(!self.net.is_empty())
            .allow_udp(!self.udp.is_empty())
            // Lookups are checked name by name by `crate::lookup`, which shadows WASI's.
            .allow_ip_name_lookup(true);
        let (net, udp) = (self.net.clone(), self.udp.clone());
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
        for dir in &self.read {
            let guest = dir.to_string_lossy();
            b.preopened_dir(dir, guest.as_ref(), FsPerms::ReadOnly)
                .map_err(|e| {
                    Failure::BadInput(format!(
                        "--allow-read {}: cannot open the directory: {e}; give an existing directory",
                        dir.display()
                    ))
                })?;
        }
        for (k, v) in &self.env {
            b.env(k, v);
        }
        Ok(b.build())
    }
}
