//! Command-line parameters (`KEY=VALUE`, or a secret by reference: `KEY@file=PATH`,
//! `KEY@env=VAR`), their validation against `describe`, and the values no output may show.

use std::path::{Path, PathBuf};

use crate::bindings::healthprobe::probe::types::ProbeInfo;

/// Largest secret file read, in bytes: a password or a token, not a document.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// What stands in an output for a secret's value.
pub const REDACTED: &str = "[redacted]";

/// Where the host reads a parameter's value from, so that it never travels in argv, an
/// image's HEALTHCHECK or a pod spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file (a Docker secret, a Kubernetes secret volume: `/run/secrets/db`).
    File(PathBuf),
    /// An environment variable of healthprobe's.
    Env(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
        }
    }
}

impl Source {
    /// The value, read by the host: a file's contents without one trailing newline (as
    /// `echo … > file` and `docker secret create` leave it), or the variable's value. An
    /// error names the source, never what was read.
    pub fn read(&self) -> Result<String, String> {
        let bad = |why: String| format!("{self}: {why}");
        let text = match self {
            Source::File(path) => read_secret_file(path).map_err(bad)?,
            Source::Env(var) => std::env::var(var).map_err(|e| {
                bad(match e {
                    std::env::VarError::NotPresent => "not set in healthprobe's environment".into(),
                    std::env::VarError::NotUnicode(_) => "not valid UTF-8".into(),
                })
            })?,
        };
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        Ok(text.to_string())
    }
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read it: {}", crate::text::io_error(&e)))?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {}", crate::text::io_error(&e)))?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(format!(
            "larger than {}; a secret file holds the value alone",
            crate::text::size(MAX_SECRET_BYTES)
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".into())
}

/// A parameter as given: its name, its value, and whether the value is a secret (read by
/// reference, or a parameter whose name says it is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    /// The parameter's name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// Whether no output may show the value.
    pub secret: bool,
}

impl Given {
    /// A value given as it is; secret if the parameter's name says so.
    pub fn new(name: String, value: String) -> Self {
        let secret = is_secret_name(&name);
        Given {
            name,
            value,
            secret,
        }
    }

    /// A value the host reads from `source`: always secret. An error names the parameter
    /// and the source.
    pub fn read(name: String, source: &Source) -> Result<Self, String> {
        let value = source
            .read()
            .map_err(|why| format!("parameter {name}: {why}"))?;
        Ok(Given {
            name,
            value,
            secret: true,
        })
    }
}

/// Whether a parameter's name declares its value secret: `password`, `token`, `secret`,
/// or a name ending in `-password`, `-token`, `-secret` or `-key` (`api-key`). Probes
/// declare a secret parameter by naming it so, which every WIT version can say.
pub fn is_secret_name(name: &str) -> bool {
    ["password", "token", "secret"].contains(&name)
        || ["-password", "-token", "-secret", "-key"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

/// Reads a command-line parameter: `KEY=VALUE` (split at the first `=`; values may
/// contain `=`), `KEY@file=PATH` or `KEY@env=VAR` (the value read by the host; `@` is in
/// no parameter's name, so neither can be mistaken for a value).
pub fn parse_arg(arg: &str) -> Result<Given, String> {
    let (key, value) = parse_pair(arg)?;
    match key.split_once('@') {
        None => Ok(Given::new(key, value)),
        Some((name, "file")) if !name.is_empty() => {
            Given::read(name.to_string(), &Source::File(value.into()))
        }
        Some((name, "env")) if !name.is_empty() => {
            Given::read(name.to_string(), &Source::Env(value))
        }
        Some(_) => Err(format!(
            "'{}': give a parameter as KEY=VALUE, or its value by reference as KEY@file=PATH or KEY@env=VARIABLE",
            crate::text::excerpt(&key, 80)
        )),
    }
}

/// Splits `KEY=VALUE` at the first `=`; values may contain `=`.
pub fn parse_pair(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!(
            "expected a parameter as KEY=VALUE, got '{}'; run `healthprobe list` to see each probe's parameters",
            crate::text::excerpt(arg, 80)
        )),
    }
}

/// Checks the given parameters against the probe's own description: every name known,
/// every required one present, a non-repeatable one at most once.
pub fn validate(info: &ProbeInfo, args: &[(String, String)]) -> Result<(), String> {
    let known = || {
        info.params
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (name, _) in args {
        let Some(spec) = info.params.iter().find(|p| &p.name == name) else {
            return Err(format!(
                "unknown parameter '{}' for probe {}; known parameters: {}",
                crate::text::excerpt(name, 80),
                info.name,
                known()
            ));
        };
        if !spec.repeatable && args.iter().filter(|(n, _)| n == name).count() > 1 {
            return Err(format!(
                "parameter '{name}' given more than once; probe {} accepts it once",
                info.name
            ));
        }
    }
    for spec in info.params.iter().filter(|p| p.required) {
        if !args.iter().any(|(n, _)| n == &spec.name) {
            return Err(format!(
                "missing required parameter '{}' for probe {} ({}); give it as {}=VALUE",
                spec.name, info.name, spec.description, spec.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::healthprobe::probe::types::ParamSpec;

    fn info() -> ProbeInfo {
        let spec = |name: &str, required, repeatable| ParamSpec {
            name: name.into(),
            description: format!("the {name}"),
            required,
            default: None,
            repeatable,
        };
        ProbeInfo {
            name: "http".into(),
            version: "0.1.0".into(),
            description: "d".into(),
            params: vec![spec("url", true, false), spec("header", false, true)],
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn secrets_come_by_reference_and_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db");
        std::fs::write(&file, "s3cret=x\n").unwrap();
        let given = parse_arg(&format!("password@file={}", file.display())).unwrap();
        assert_eq!(
            (given.name.as_str(), given.value.as_str(), given.secret),
            ("password", "s3cret=x", true)
        );
        // Only one trailing newline goes; a value may end in spaces.
        std::fs::write(&file, "a \r\n\n").unwrap();
        assert_eq!(
            parse_arg(&format!("x@file={}", file.display()))
                .unwrap()
                .value,
            "a \r\n"
        );
        let missing = parse_arg("password@file=/nonexistent/db").unwrap_err();
        assert!(
            missing.starts_with("parameter password: file /nonexistent/db: cannot read it"),
            "{missing}"
        );
        let unset = parse_arg("token@env=HEALTHPROBE_TEST_UNSET_VARIABLE").unwrap_err();
        assert!(unset.contains("environment variable HEALTHPROBE_TEST_UNSET_VARIABLE: not set"));
        assert!(
            parse_arg("password@vault=x")
                .unwrap_err()
                .contains("KEY@file=PATH")
        );
        assert!(parse_arg("password=inline").unwrap().secret);
        assert!(parse_arg("api-key=inline").unwrap().secret);
        assert!(!parse_arg("url=http://x/").unwrap().secret);
        std::fs::write(&file, vec![b'a'; MAX_SECRET_BYTES as usize + 1]).unwrap();
        assert!(
            parse_arg(&format!("x@file={}", file.display()))
                .unwrap_err()
                .contains("larger than")
        );
    }

    #[test]
    fn pairs_split_at_the_first_equals() {
        assert_eq!(
            parse_pair("expect-json=/a=b").unwrap(),
            ("expect-json".into(), "/a=b".into())
        );
        assert_eq!(parse_pair("body=").unwrap(), ("body".into(), String::new()));
        assert!(parse_pair("novalue").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_pair("=x").is_err());
    }

    #[test]
    fn validation_names_the_problem() {
        let i = info();
        assert!(
            validate(
                &i,
                &pairs(&[("url", "u"), ("header", "a:1"), ("header", "b:2")])
            )
            .is_ok()
        );
        let e = validate(&i, &pairs(&[("url", "u"), ("bogus", "1")])).unwrap_err();
        assert!(
            e.contains("unknown parameter 'bogus'") && e.contains("url, header"),
            "{e}"
        );
        let e = validate(&i, &pairs(&[])).unwrap_err();
        assert!(e.contains("missing required parameter 'url'"), "{e}");
        let e = validate(&i, &pairs(&[("url", "a"), ("url", "b")])).unwrap_err();
        assert!(e.contains("more than once"), "{e}");
    }
}
