//! The settings of a run: command-line options over the policy file over the defaults.
//!
//! The flag groups of `crate::flags` are the command line's part; a caller without a
//! command line (a checks file, a test) passes their defaults. The policy file is
//! `crate::policy`, read into the same groups; the grants are built in
//! `crate::sandbox::grants`.

use std::path::Path;

use crate::flags::{GrantArgs, LimitArgs};
use crate::limits::{CodeLimits, Limits};
use crate::params::{Given, Source};
use crate::policy::Policy;
use crate::report::Failure;
use crate::runner::RunConfig;
use crate::sandbox::{Sandbox, grants};

/// Everything `run` needs besides the probe, except the grants (see [`Settings::sandbox`]).
#[derive(Debug)]
pub struct Settings {
    /// Time, fuel and memory caps.
    pub limits: Limits,
    /// The pinned SHA-256, if any.
    pub sha256: Option<String>,
    /// The policy file's grants (none without one), under the command line's.
    pub file_grants: GrantArgs,
    /// What the settings came from, for messages (`policy file P`, or a check in a
    /// checks file).
    subject: String,
    /// The probe's parameters in order: the policy file's, then the command line's (a key
    /// given on the command line replaces the file's values for it).
    pub params: Vec<(String, String)>,
    /// The values no output may show: those read by reference, and those of parameters
    /// whose names declare them secret.
    pub secrets: Vec<String>,
}

/// Merges the command line over the policy file over the defaults.
pub fn resolve(
    file: Option<&Path>,
    limits: &LimitArgs,
    sha256: Option<&str>,
    cli_params: &[Given],
) -> Result<Settings, Failure> {
    let (policy, subject) = match file {
        Some(path) => (
            Policy::load(path)?,
            format!("policy file {}", path.display()),
        ),
        None => (Policy::default(), "policy file".to_string()),
    };
    let mut settings = resolve_file(policy, subject, limits)?;
    if let Some(h) = sha256 {
        settings.sha256 = Some(h.to_string());
    }
    settings
        .params
        .retain(|(key, _)| !cli_params.iter().any(|g| g.name == *key));
    for given in cli_params {
        if given.secret {
            settings.secrets.push(given.value.clone());
        }
        settings
            .params
            .push((given.name.clone(), given.value.clone()));
    }
    Ok(settings)
}

/// Resolves a policy file's (or a check's) settings under the command line's `limits`;
/// `subject` names where they came from in messages.
pub fn resolve_file(
    policy: Policy,
    subject: String,
    limits: &LimitArgs,
) -> Result<Settings, Failure> {
    let given = limits.clone().or(policy.limits);
    let d = Limits::default();
    let limits = Limits {
        timeout: given.timeout.unwrap_or(d.timeout),
        fuel: given.fuel.unwrap_or(d.fuel),
        max_memory: given.max_memory.unwrap_or(d.max_memory),
        max_sockets: given.max_sockets.unwrap_or(d.max_sockets),
        code: CodeLimits {
            max_size: given.code.max_size.unwrap_or(d.code.max_size),
            max_function_size: given
                .code
                .max_function_size
                .unwrap_or(d.code.max_function_size),
            max_code_size: given.code.max_code_size.unwrap_or(d.code.max_code_size),
        },
        ..d
    };

    let mut params = Vec::new();
    let mut secrets = Vec::new();
    for (key, value) in policy.params.iter().flatten() {
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        for v in values {
            let given =
                param(key, v).map_err(|why| bad_key(&subject, &format!("params.{key}"), why))?;
            if given.secret {
                secrets.push(given.value.clone());
            }
            params.push((given.name, given.value));
        }
    }
    Ok(Settings {
        limits,
        sha256: policy.sha256,
        file_grants: policy.grants,
        subject,
        params,
        secrets,
    })
}

/// A parameter's value in a file: a string, number or boolean as it is, or a secret by
/// reference, `{ file = "/run/secrets/db" }` or `{ env = "DB_PASSWORD" }`, read now.
fn param(key: &str, value: &toml::Value) -> Result<Given, String> {
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Table(t) => {
            let source = match (t.len(), t.get("file"), t.get("env")) {
                (1, Some(toml::Value::String(path)), None) => Source::File(path.into()),
                (1, None, Some(toml::Value::String(var))) => Source::Env(var.clone()),
                _ => {
                    return Err(
                        "a secret by reference is { file = \"PATH\" } or { env = \"VARIABLE\" }"
                            .into(),
                    );
                }
            };
            // The caller names the file and `params.KEY`; the error names the source.
            let value = source.read()?;
            return Ok(Given {
                name: key.to_string(),
                value,
                secret: true,
            });
        }
        other => {
            return Err(format!(
                "expected a string, number, boolean, {{ file = … }}, {{ env = … }} or a list of them, got {}",
                other.type_str()
            ));
        }
    };
    Ok(Given::new(key.to_string(), text))
}

impl Settings {
    /// Builds the grants (resolving granted host names, which may block on DNS: call it
    /// once the watchdog runs) and returns the whole run configuration.
    pub fn run_config(&self, grants: &GrantArgs) -> Result<RunConfig, Failure> {
        Ok(RunConfig {
            limits: self.limits.clone(),
            sandbox: self.sandbox(grants)?,
            sha256: self.sha256.clone(),
            report_sha256: false,
            secrets: self.secrets.clone(),
        })
    }

    /// The grants: a list on the command line replaces the file's list.
    pub fn sandbox(&self, grants: &GrantArgs) -> Result<Sandbox, Failure> {
        grants::build(grants, &self.file_grants, &|key, why| {
            bad_key(&self.subject, key, why)
        })
    }
}

fn bad_key(subject: &str, key: &str, why: String) -> Failure {
    Failure::BadInput(format!("{subject}: {key}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::CodeLimitArgs;

    #[test]
    fn errors_name_the_flag_or_the_policy_file_key() {
        let missing = "/nonexistent/healthprobe-test-dir";
        let from_flag = GrantArgs {
            allow_read: Some(vec![missing.into()]),
            ..GrantArgs::default()
        };
        let none = resolve(None, &LimitArgs::default(), None, &[]).unwrap();
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
        let e = resolve(Some(&file), &LimitArgs::default(), None, &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.toml: allow-udp: invalid pattern 'a..b'") && e.contains("(line 2)"),
            "{e}"
        );
        std::fs::write(&file, format!("allow-read = [\"{missing}\"]\n")).unwrap();
        let settings = resolve(Some(&file), &LimitArgs::default(), None, &[]).unwrap();
        let e = settings
            .sandbox(&GrantArgs::default())
            .unwrap_err()
            .to_string();
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
        let flags = LimitArgs {
            max_sockets: Some(3),
            code: CodeLimitArgs {
                max_code_size: Some(1 << 20),
                ..CodeLimitArgs::default()
            },
            ..LimitArgs::default()
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
        let limits = resolve(None, &LimitArgs::default(), None, &[])
            .unwrap()
            .limits;
        assert_eq!(limits.max_sockets, Limits::default().max_sockets);
        assert_eq!(limits.code, CodeLimits::default());

        std::fs::write(&file, "max-code-size = \"lots\"\n").unwrap();
        let e = resolve(Some(&file), &LimitArgs::default(), None, &[]).unwrap_err();
        assert!(e.to_string().contains("p.toml: max-code-size: "), "{e}");
    }
}
