//! The `--policy` file: grants, caps, a pinned digest and parameters in TOML, one key per
//! command-line option. A checks file's `[checks.NAME]`, `[modules.NAME]` and `[defaults]`
//! tables take the same keys.
//!
//! The keys are declared here and the flags in `crate::flags`, not once for both: a flag is
//! parsed by clap into its type, while a file's value stays text until
//! `crate::settings` parses it with the same parser, so that an error names the file and
//! the key (`policy file P: timeout: …`). Sharing one struct through serde's `flatten`
//! loses exactly that: toml's error positions (line numbers) and the key's name, and it
//! cannot refuse unknown keys in a nested table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::report::Failure;
use crate::text;

/// A `--policy` file. Unknown keys are refused, so a typo cannot silently drop a grant or
/// a cap.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyFile {
    /// Pinned SHA-256 of the probe.
    pub sha256: Option<String>,
    /// Run deadline, e.g. `"2s"`.
    pub timeout: Option<String>,
    /// Fuel.
    pub fuel: Option<u64>,
    /// Memory cap, e.g. `"32MiB"`.
    pub max_memory: Option<String>,
    /// Socket cap.
    pub max_sockets: Option<usize>,
    /// Largest probe file, e.g. `"64MiB"`.
    pub max_size: Option<String>,
    /// Largest function body, e.g. `"512KiB"`.
    pub max_function_size: Option<String>,
    /// Largest sum of function bodies, e.g. `"16MiB"`.
    pub max_code_size: Option<String>,
    /// Network grants (TCP, HTTP, lookups).
    pub allow_net: Option<Vec<String>>,
    /// UDP grants.
    pub allow_udp: Option<Vec<String>>,
    /// Read-only directories.
    pub allow_read: Option<Vec<PathBuf>>,
    /// Environment variables, `NAME` or `NAME=VALUE`.
    pub env: Option<Vec<String>>,
    /// Whether insecure TLS may be requested.
    pub allow_insecure_tls: Option<bool>,
    /// CA certificates (PEM) that replace the built-in roots.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub tls_client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_client_key: Option<PathBuf>,
    /// Probe parameters; a list gives a repeatable parameter several values.
    pub params: Option<BTreeMap<String, toml::Value>>,
}

impl PolicyFile {
    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Self, Failure> {
        let bad = |why: String| Failure::BadInput(format!("policy file {}: {why}", path.display()));
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read it: {}", text::io_error(&e))))?;
        toml::from_str(&text)
            .map_err(|e| bad(e.message().to_string() + &location(&text, &e, "a policy file")))
    }

    /// This file, with what it leaves out taken from `defaults`; of the parameters, each
    /// key it gives replaces the defaults' values for that key.
    pub fn over(self, defaults: PolicyFile) -> PolicyFile {
        let params = match (self.params, defaults.params) {
            (Some(mine), Some(mut base)) => {
                base.extend(mine);
                Some(base)
            }
            (mine, base) => mine.or(base),
        };
        PolicyFile {
            sha256: self.sha256.or(defaults.sha256),
            timeout: self.timeout.or(defaults.timeout),
            fuel: self.fuel.or(defaults.fuel),
            max_memory: self.max_memory.or(defaults.max_memory),
            max_sockets: self.max_sockets.or(defaults.max_sockets),
            max_size: self.max_size.or(defaults.max_size),
            max_function_size: self.max_function_size.or(defaults.max_function_size),
            max_code_size: self.max_code_size.or(defaults.max_code_size),
            allow_net: self.allow_net.or(defaults.allow_net),
            allow_udp: self.allow_udp.or(defaults.allow_udp),
            allow_read: self.allow_read.or(defaults.allow_read),
            env: self.env.or(defaults.env),
            allow_insecure_tls: self.allow_insecure_tls.or(defaults.allow_insecure_tls),
            tls_ca: self.tls_ca.or(defaults.tls_ca),
            tls_client_cert: self.tls_client_cert.or(defaults.tls_client_cert),
            tls_client_key: self.tls_client_key.or(defaults.tls_client_key),
            params,
        }
    }
}

/// Where in `text` a parse error is, for the message about `what` (a policy file, a
/// checks file).
pub(crate) fn location(text: &str, e: &toml::de::Error, what: &str) -> String {
    e.span()
        .map(|span| {
            let line = 1 + text[..span.start.min(text.len())].matches('\n').count();
            format!(" (line {line}); see the README for the keys {what} takes")
        })
        .unwrap_or_default()
}
