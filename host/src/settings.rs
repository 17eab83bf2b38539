//! The settings of a run: command-line options over the policy file over the defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{self, GrantArgs, LimitArgs};
use crate::policy::{self, Grant, NetPolicy, Proto};
use crate::runner::{Failure, Limits, RunConfig};
use crate::sandbox::Sandbox;

/// A `--policy` file. Unknown keys are refused, so a typo cannot silently drop a grant or
/// a cap.
#[derive(Debug, Default, Deserialize)]
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
    /// Probe parameters; a list gives a repeatable parameter several values.
    pub params: Option<BTreeMap<String, toml::Value>>,
}

impl PolicyFile {
    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Self, Failure> {
        let bad = |why: String| Failure::BadInput(format!("policy file {}: {why}", path.display()));
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read it: {}", crate::output::io_error(&e))))?;
        toml::from_str(&text).map_err(|e| bad(e.message().to_string() + &location(&text, &e)))
    }
}

fn location(text: &str, e: &toml::de::Error) -> String {
    e.span()
        .map(|span| {
            let line = 1 + text[..span.start.min(text.len())].matches('\n').count();
            format!(" (line {line}); see the README for the keys a policy file takes")
        })
        .unwrap_or_default()
}

/// Everything `run` needs besides the probe, except the grants (see [`Settings::sandbox`]).
#[derive(Debug)]
pub struct Settings {
    /// Time, fuel and memory caps.
    pub limits: Limits,
    /// The pinned SHA-256, if any.
    pub sha256: Option<String>,
    /// The policy file's contents (empty without one), for the grants.
    pub file: PolicyFile,
    /// The policy file's name, for messages.
    file_name: String,
    /// The probe's parameters in order: the policy file's, then the command line's (a key
    /// given on the command line replaces the file's values for it).
    pub params: Vec<(String, String)>,
}

/// Merges the command line over the policy file over the defaults.
pub fn resolve(
    file: Option<&Path>,
    limits: &LimitArgs,
    sha256: Option<&str>,
    cli_params: &[(String, String)],
) -> Result<Settings, Failure> {
    let (pf, file_name) = match file {
        Some(path) => (PolicyFile::load(path)?, path.display().to_string()),
        None => (PolicyFile::default(), String::new()),
    };
    let bad = |key: &str, why: String| bad_key(&file_name, key, why);

    let defaults = Limits::default();
    let timeout = match (limits.timeout, &pf.timeout) {
        (Some(t), _) => t,
        (None, Some(s)) => cli::parse_duration(s).map_err(|e| bad("timeout", e))?,
        (None, None) => defaults.timeout,
    };
    let max_memory = match (limits.max_memory, &pf.max_memory) {
        (Some(m), _) => m,
        (None, Some(s)) => cli::parse_size(s).map_err(|e| bad("max-memory", e))?,
        (None, None) => defaults.max_memory,
    };
    let limits = Limits {
        timeout,
        fuel: limits.fuel.or(pf.fuel).unwrap_or(defaults.fuel),
        max_memory,
        ..defaults
    };

    let sha256 = match (sha256, &pf.sha256) {
        (Some(h), _) => Some(h.to_string()),
        (None, Some(h)) => Some(cli::parse_sha256(h).map_err(|e| bad("sha256", e))?),
        (None, None) => None,
    };

    let mut params = Vec::new();
    for (key, value) in pf.params.iter().flatten() {
        if cli_params.iter().any(|(k, _)| k == key) {
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        for v in values {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(bad(
                        &format!("params.{key}"),
                        format!(
                            "expected a string, number, boolean or a list of them, got {}",
                            other.type_str()
                        ),
                    ));
                }
            };
            params.push((key.clone(), text));
        }
    }
    params.extend(cli_params.iter().cloned());

    Ok(Settings {
        limits,
        sha256,
        file: pf,
        file_name,
        params,
    })
}

impl Settings {
    /// Builds the grants (resolving granted host names, which may block on DNS: call it
    /// once the watchdog runs) and returns the whole run configuration.
    pub fn run_config(&self, grants: &GrantArgs) -> Result<RunConfig, Failure> {
        Ok(RunConfig {
            limits: self.limits.clone(),
            sandbox: self.sandbox(grants)?,
            sha256: self.sha256.clone(),
        })
    }

    /// The grants: a list on the command line replaces the file's list.
    pub fn sandbox(&self, grants: &GrantArgs) -> Result<Sandbox, Failure> {
        sandbox(&self.file, grants, &|key, why| {
            bad_key(&self.file_name, key, why)
        })
    }
}

fn bad_key(file: &str, key: &str, why: String) -> Failure {
    Failure::BadInput(format!("policy file {file}: {key}: {why}"))
}

/// The command line's list when it gave one, else the policy file's.
fn cli_over_file<T: Clone>(cli: &[T], file: &Option<Vec<T>>) -> Vec<T> {
    if cli.is_empty() {
        file.clone().unwrap_or_default()
    } else {
        cli.to_vec()
    }
}

fn sandbox(
    pf: &PolicyFile,
    grants: &GrantArgs,
    bad: &dyn Fn(&str, String) -> Failure,
) -> Result<Sandbox, Failure> {
    let patterns = |cli: &[Grant],
                    file: &Option<Vec<String>>,
                    key: &str|
     -> Result<Option<Vec<Grant>>, Failure> {
        if !cli.is_empty() {
            return Ok(Some(cli.to_vec()));
        }
        file.as_ref()
            .map(|list| {
                list.iter()
                    .map(|p| p.parse::<Grant>().map_err(|e| bad(key, e.to_string())))
                    .collect()
            })
            .transpose()
    };
    let net = patterns(&grants.allow_net, &pf.allow_net, "allow-net")?
        .unwrap_or_else(policy::default_grants);
    let udp = patterns(&grants.allow_udp, &pf.allow_udp, "allow-udp")?.unwrap_or_default();
    let policy = |proto, list: &[Grant]| {
        NetPolicy::new(proto, list, NetPolicy::system_resolve)
            .map_err(|e| Failure::BadInput(e.to_string()))
    };

    let mut read = Vec::new();
    for dir in cli_over_file(&grants.allow_read, &pf.allow_read) {
        let full = std::fs::canonicalize(&dir)
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| {
                Failure::BadInput(format!(
                    "--allow-read {}: no such directory; give an existing directory to grant read access to",
                    dir.display()
                ))
            })?;
        read.push(full);
    }

    let mut env = Vec::new();
    for var in cli_over_file(&grants.env, &pf.env) {
        let (name, value) = match var.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => {
                let value = std::env::var(&var).map_err(|_| {
                    Failure::BadInput(format!(
                        "--env {var}: not set in healthprobe's environment; set it, or give {var}=VALUE"
                    ))
                })?;
                (var.clone(), value)
            }
        };
        if name.is_empty() {
            return Err(Failure::BadInput(format!(
                "--env {var}: empty variable name; give NAME or NAME=VALUE"
            )));
        }
        env.push((name, value));
    }

    Ok(Sandbox {
        net: policy(Proto::Tcp, &net)?,
        udp: policy(Proto::Udp, &udp)?,
        read,
        env,
        insecure_tls: grants.allow_insecure_tls || pf.allow_insecure_tls.unwrap_or(false),
    })
}
