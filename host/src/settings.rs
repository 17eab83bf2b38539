//! The settings of a run: command-line options over the policy file over the defaults.
//!
//! Everything here is plain data: the commands turn their flags into [`LimitOverrides`]
//! and [`GrantOverrides`] (see `crate::flags`), so a caller without a command line (a
//! checks file, a test) resolves settings the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::limits::{CodeLimits, Limits};
use crate::report::Failure;
use crate::runner::RunConfig;
use crate::sandbox::Sandbox;
use crate::sandbox::network::{self, Grant, NetPolicy, Proto};
use crate::sandbox::trust::Trust;
use crate::text;

/// Caps given by the caller (the command line); `None` leaves the policy file's or the
/// default.
#[derive(Debug, Clone, Default)]
pub struct LimitOverrides {
    /// The run's deadline.
    pub timeout: Option<Duration>,
    /// Fuel.
    pub fuel: Option<u64>,
    /// Memory cap in bytes.
    pub max_memory: Option<u64>,
    /// Socket cap.
    pub max_sockets: Option<usize>,
    /// Largest probe file, in bytes.
    pub max_size: Option<u64>,
    /// Largest function body, in bytes.
    pub max_function_size: Option<u64>,
    /// Largest sum of function bodies, in bytes.
    pub max_code_size: Option<u64>,
}

/// Grants given by the caller (the command line); a non-empty list replaces the policy
/// file's.
#[derive(Debug, Clone, Default)]
pub struct GrantOverrides {
    /// TCP, HTTP and name-lookup patterns.
    pub allow_net: Vec<Grant>,
    /// UDP patterns.
    pub allow_udp: Vec<Grant>,
    /// Read-only directories.
    pub allow_read: Vec<PathBuf>,
    /// Environment variables, `NAME` or `NAME=VALUE`.
    pub env: Vec<String>,
    /// Whether insecure TLS may be requested.
    pub allow_insecure_tls: bool,
    /// CA certificates that replace the built-in roots.
    pub tls_ca: Option<PathBuf>,
    /// The client certificate (chain) for mutual TLS.
    pub tls_client_cert: Option<PathBuf>,
    /// Its private key.
    pub tls_client_key: Option<PathBuf>,
}

/// A SHA-256 given as 64 hex digits, normalised to lower case.
pub fn parse_sha256(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "expected 64 hex digits, got '{}'",
            text::excerpt(s, 80)
        ))
    }
}

/// A duration like `500ms`, `2s` or `1m`, greater than zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration like 500ms, 2s or 1m"))?;
    if d.is_zero() {
        return Err("the timeout must be greater than zero".into());
    }
    Ok(d)
}

/// A size like `64MiB`, greater than zero.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = s
        .parse()
        .map_err(|e| format!("{e}; expected a size like 64MiB or 512KiB"))?;
    if size.as_u64() == 0 {
        return Err("the size must be greater than zero".into());
    }
    Ok(size.as_u64())
}

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

/// Everything `run` needs besides the probe, except the grants (see [`Settings::sandbox`]).
#[derive(Debug)]
pub struct Settings {
    /// Time, fuel and memory caps.
    pub limits: Limits,
    /// The pinned SHA-256, if any.
    pub sha256: Option<String>,
    /// The policy file's contents (empty without one), for the grants.
    pub file: PolicyFile,
    /// What the settings came from, for messages (`policy file P`, or a check in a
    /// checks file).
    subject: String,
    /// The probe's parameters in order: the policy file's, then the command line's (a key
    /// given on the command line replaces the file's values for it).
    pub params: Vec<(String, String)>,
}

/// Merges the command line over the policy file over the defaults.
pub fn resolve(
    file: Option<&Path>,
    limits: &LimitOverrides,
    sha256: Option<&str>,
    cli_params: &[(String, String)],
) -> Result<Settings, Failure> {
    let (pf, subject) = match file {
        Some(path) => (
            PolicyFile::load(path)?,
            format!("policy file {}", path.display()),
        ),
        None => (PolicyFile::default(), "policy file".to_string()),
    };
    let mut settings = resolve_file(pf, subject, limits)?;
    if let Some(h) = sha256 {
        settings.sha256 = Some(h.to_string());
    }
    settings
        .params
        .retain(|(key, _)| !cli_params.iter().any(|(k, _)| k == key));
    settings.params.extend(cli_params.iter().cloned());
    Ok(settings)
}

/// Resolves a policy file's (or a check's) settings under the command line's `limits`;
/// `subject` names where they came from in messages.
pub fn resolve_file(
    pf: PolicyFile,
    subject: String,
    limits: &LimitOverrides,
) -> Result<Settings, Failure> {
    let bad = |key: &str, why: String| bad_key(&subject, key, why);

    let defaults = Limits::default();
    let timeout = match (limits.timeout, &pf.timeout) {
        (Some(t), _) => t,
        (None, Some(s)) => parse_duration(s).map_err(|e| bad("timeout", e))?,
        (None, None) => defaults.timeout,
    };
    let size =
        |flag: Option<u64>, key: &str, file: &Option<String>, default: u64| match (flag, file) {
            (Some(m), _) => Ok(m),
            (None, Some(s)) => parse_size(s).map_err(|e| bad(key, e)),
            (None, None) => Ok(default),
        };
    let max_memory = size(
        limits.max_memory,
        "max-memory",
        &pf.max_memory,
        defaults.max_memory,
    )?;
    let code = CodeLimits {
        max_size: size(
            limits.max_size,
            "max-size",
            &pf.max_size,
            defaults.code.max_size,
        )?,
        max_function_size: size(
            limits.max_function_size,
            "max-function-size",
            &pf.max_function_size,
            defaults.code.max_function_size,
        )?,
        max_code_size: size(
            limits.max_code_size,
            "max-code-size",
            &pf.max_code_size,
            defaults.code.max_code_size,
        )?,
    };
    let limits = Limits {
        timeout,
        fuel: limits.fuel.or(pf.fuel).unwrap_or(defaults.fuel),
        max_memory,
        max_sockets: limits
            .max_sockets
            .or(pf.max_sockets)
            .unwrap_or(defaults.max_sockets),
        code,
        ..defaults
    };

    let sha256 = match &pf.sha256 {
        Some(h) => Some(parse_sha256(h).map_err(|e| bad("sha256", e))?),
        None => None,
    };

    let mut params = Vec::new();
    for (key, value) in pf.params.iter().flatten() {
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
    Ok(Settings {
        limits,
        sha256,
        file: pf,
        subject,
        params,
    })
}

impl Settings {
    /// Builds the grants (resolving granted host names, which may block on DNS: call it
    /// once the watchdog runs) and returns the whole run configuration.
    pub fn run_config(&self, grants: &GrantOverrides) -> Result<RunConfig, Failure> {
        Ok(RunConfig {
            limits: self.limits.clone(),
            sandbox: self.sandbox(grants)?,
            sha256: self.sha256.clone(),
            report_sha256: false,
        })
    }

    /// The grants: a list on the command line replaces the file's list.
    pub fn sandbox(&self, grants: &GrantOverrides) -> Result<Sandbox, Failure> {
        sandbox(&self.file, grants, &|key, why| {
            bad_key(&self.subject, key, why)
        })
    }
}

fn bad_key(subject: &str, key: &str, why: String) -> Failure {
    Failure::BadInput(format!("{subject}: {key}: {why}"))
}

/// Where a list came from, so an error names what the user wrote: the flag, or the
/// policy file's key.
#[derive(Clone, Copy)]
enum From {
    Flag,
    File,
}

/// The command line's list when it gave one, else the policy file's.
fn cli_over_file<T: Clone>(cli: &[T], file: &Option<Vec<T>>) -> (Vec<T>, From) {
    if cli.is_empty() {
        (file.clone().unwrap_or_default(), From::File)
    } else {
        (cli.to_vec(), From::Flag)
    }
}

fn sandbox(
    pf: &PolicyFile,
    grants: &GrantOverrides,
    bad: &dyn Fn(&str, String) -> Failure,
) -> Result<Sandbox, Failure> {
    // An error about a value names the flag it came from, or the policy file and its key.
    let problem = |from: &From, key: &str, value: &str, why: String| match from {
        From::Flag => Failure::BadInput(format!("--{key} {value}: {why}")),
        From::File => bad(key, format!("{value}: {why}")),
    };
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
        .unwrap_or_else(network::default_grants);
    let udp = patterns(&grants.allow_udp, &pf.allow_udp, "allow-udp")?.unwrap_or_default();
    let policy = |proto, list: &[Grant]| {
        NetPolicy::new(proto, list, NetPolicy::system_resolve)
            .map_err(|e| Failure::BadInput(e.to_string()))
    };

    let mut read = Vec::new();
    let (dirs, from) = cli_over_file(&grants.allow_read, &pf.allow_read);
    for dir in dirs {
        let full = std::fs::canonicalize(&dir)
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| {
                problem(
                    &from,
                    "allow-read",
                    &dir.display().to_string(),
                    "no such directory; give an existing directory to grant read access to".into(),
                )
            })?;
        read.push(full);
    }

    let mut env = Vec::new();
    let (vars, from) = cli_over_file(&grants.env, &pf.env);
    for var in vars {
        let (name, value) = match var.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => {
                let value = std::env::var(&var).map_err(|_| {
                    problem(
                        &from,
                        "env",
                        &var,
                        format!(
                            "not set in healthprobe's environment; set it, or give {var}=VALUE"
                        ),
                    )
                })?;
                (var.clone(), value)
            }
        };
        if name.is_empty() {
            return Err(problem(
                &from,
                "env",
                &var,
                "empty variable name; give NAME or NAME=VALUE".into(),
            ));
        }
        env.push((name, value));
    }

    // A flag replaces the file's key; the certificate and its key go together, so either
    // flag replaces both of the file's.
    let flag = |cli: &Option<PathBuf>| cli.as_ref().map(|p| (p.clone(), From::Flag));
    let file = |f: &Option<PathBuf>| f.as_ref().map(|p| (p.clone(), From::File));
    let ca = flag(&grants.tls_ca).or_else(|| file(&pf.tls_ca));
    let (cert, key) = if grants.tls_client_cert.is_some() || grants.tls_client_key.is_some() {
        (flag(&grants.tls_client_cert), flag(&grants.tls_client_key))
    } else {
        (file(&pf.tls_client_cert), file(&pf.tls_client_key))
    };
    let path = |p: &Option<(PathBuf, From)>| p.as_ref().map(|(p, _)| p.clone());
    let tls = Trust::load(
        path(&ca).as_deref(),
        path(&cert).as_deref(),
        path(&key).as_deref(),
    )
    .map_err(|e| {
        let from = [&ca, &cert, &key]
            .into_iter()
            .flatten()
            .find(|(p, _)| *p == e.path)
            .map_or(From::Flag, |(_, f)| *f);
        problem(&from, e.key, &e.path.display().to_string(), e.why)
    })?;

    Ok(Sandbox {
        net: policy(Proto::Tcp, &net)?,
        udp: policy(Proto::Udp, &udp)?,
        read,
        env,
        insecure_tls: grants.allow_insecure_tls || pf.allow_insecure_tls.unwrap_or(false),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("abc").unwrap_err().contains("like 500ms"));
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn errors_name_the_flag_or_the_policy_file_key() {
        let missing = "/nonexistent/healthprobe-test-dir";
        let from_flag = GrantOverrides {
            allow_read: vec![missing.into()],
            ..GrantOverrides::default()
        };
        let none = resolve(None, &LimitOverrides::default(), None, &[]).unwrap();
        let e = none.sandbox(&from_flag).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("--allow-read {missing}: no such directory")),
            "{e}"
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(
            &file,
            format!("allow-read = [\"{missing}\"]\nallow-udp = [\"a..b\"]\n"),
        )
        .unwrap();
        let settings = resolve(Some(&file), &LimitOverrides::default(), None, &[]).unwrap();
        let e = settings
            .sandbox(&GrantOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("allow-udp: invalid pattern 'a..b'") && !e.contains("--allow-net"),
            "{e}"
        );
        let fixed = GrantOverrides {
            allow_udp: vec!["127.0.0.1".parse().unwrap()],
            ..GrantOverrides::default()
        };
        let e = settings.sandbox(&fixed).unwrap_err().to_string();
        assert!(
            e.contains(&format!("p.toml: allow-read: {missing}: no such directory"))
                && !e.contains("--allow-read"),
            "{e}"
        );
    }

    #[test]
    fn caps_come_from_the_flag_over_the_policy_file_over_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(
            &file,
            "max-sockets = 7\nmax-size = \"1MiB\"\nmax-function-size = \"8KiB\"\n\
             max-code-size = \"64KiB\"\n",
        )
        .unwrap();
        let flags = LimitOverrides {
            max_sockets: Some(3),
            max_code_size: Some(1 << 20),
            ..LimitOverrides::default()
        };
        let limits = resolve(Some(&file), &flags, None, &[]).unwrap().limits;
        assert_eq!(limits.max_sockets, 3);
        assert_eq!(
            limits.code,
            CodeLimits {
                max_size: 1 << 20,
                max_function_size: 8 << 10,
                max_code_size: 1 << 20,
            }
        );
        let limits = resolve(None, &LimitOverrides::default(), None, &[])
            .unwrap()
            .limits;
        assert_eq!(limits.max_sockets, Limits::default().max_sockets);
        assert_eq!(limits.code, CodeLimits::default());

        std::fs::write(&file, "max-code-size = \"lots\"\n").unwrap();
        let e = resolve(Some(&file), &LimitOverrides::default(), None, &[]).unwrap_err();
        assert!(e.to_string().contains("p.toml: max-code-size: "), "{e}");
    }
}
