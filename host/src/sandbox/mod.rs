//! What a probe is granted: network (TCP, UDP, name lookup, HTTP), read-only directories,
//! environment variables, insecure TLS, and the TLS trust. Everything not granted is denied.

pub mod grants;
pub mod network;
pub mod trust;

use std::path::PathBuf;

use network::{Denial, NetPolicy, Proto};
use trust::Trust;

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
    /// The CA and client certificate of every TLS connection (`--tls-ca`,
    /// `--tls-client-cert`, `--tls-client-key`).
    pub tls: Trust,
}

impl Sandbox {
    /// The default: loopback TCP and HTTP only, nothing else.
    pub fn loopback() -> Self {
        Self {
            net: NetPolicy::new(Proto::Tcp, &network::default_grants(), |_| Ok(Vec::new()))
                .expect("the default grants resolve nothing"),
            udp: NetPolicy::deny_all(Proto::Udp),
            read: Vec::new(),
            env: Vec::new(),
            insecure_tls: false,
            tls: Trust::default(),
        }
    }

    /// Nothing at all, for `describe` (which must not do I/O).
    pub fn nothing() -> Self {
        Self {
            net: NetPolicy::deny_all(Proto::Tcp),
            ..Self::loopback()
        }
    }

    /// The same grants with logs of denials of their own, for one run: a long-lived
    /// server runs one check's or module's grants many times, and one run's denial must
    /// never show in another's report.
    pub fn for_run(&self) -> Self {
        Self {
            net: self.net.for_run(),
            udp: self.udp.for_run(),
            ..self.clone()
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
}
