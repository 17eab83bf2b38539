//! Checks files: several named checks in one TOML file, each with the keys of a `--policy`
//! file plus `probe`, `groups` and `interval`, over an optional `[defaults]` table; and
//! the one verdict their results make.
//!
//! ```toml
//! [defaults]
//! timeout = "2s"
//!
//! [checks.api]
//! probe = "http"
//! params = { url = "http://127.0.0.1:8080/health" }
//! groups = ["liveness", "readiness"]
//!
//! [modules.http_2xx]          # a check template for `serve`'s /probe
//! probe = "http"
//! target = "url"
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::flags::{LimitArgs, OciArgs, de};
use crate::oci;
use crate::policy::{Policy, Table, fields};
use crate::report::{Failure, Report, Verdict};
use crate::runner::ProbeSource;
use crate::settings::{self, Settings};
use crate::text;

/// The group a check is in when it names none.
pub const DEFAULT_GROUP: &str = "readiness";
/// How often `serve` runs a check that gives no interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The file as written. Unknown keys are refused, with their line, as in a policy file.
#[derive(Debug, Default)]
struct ChecksFile {
    defaults: Entry,
    checks: Vec<(String, Entry)>,
    modules: Vec<(String, Entry)>,
}

impl ChecksFile {
    fn parse(text: &str) -> Result<Self, String> {
        let root = Table::parse(text)?;
        root.refuse_unknown(&["defaults", "checks", "modules"])?;
        let entries = |key: &str| {
            root.tables(key)?
                .into_iter()
                .map(|(name, table)| {
                    let entry =
                        Entry::read(&table).map_err(|why| format!("[{key}.{name}]: {why}"))?;
                    Ok((name, entry))
                })
                .collect::<Result<Vec<_>, String>>()
        };
        let defaults = match root.table("defaults")? {
            Some(table) => Entry::read(&table).map_err(|why| format!("[defaults]: {why}"))?,
            None => Entry::default(),
        };
        Ok(Self {
            defaults,
            checks: entries("checks")?,
            modules: entries("modules")?,
        })
    }
}

/// One `[checks.NAME]`, `[modules.NAME]` or `[defaults]` table: the keys of a policy file
/// and these.
#[derive(Debug, Default, Clone, PartialEq)]
struct Entry {
    own: Own,
    policy: Policy,
}

/// The keys of a checks file's table that a policy file does not take.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct Own {
    probe: Option<String>,
    groups: Option<Vec<String>>,
    #[serde(deserialize_with = "de::duration")]
    interval: Option<Duration>,
    target: Option<String>,
}

impl Entry {
    fn read(table: &Table) -> Result<Self, String> {
        table.refuse_unknown(&[fields::<Own>(), &Policy::keys()].concat())?;
        Ok(Self {
            own: table.read()?,
            policy: Policy::read(table)?,
        })
    }

    /// This entry, with what it leaves out taken from `defaults` (which give no probe and
    /// no target).
    fn over(self, defaults: &Entry) -> Entry {
        let d = defaults.clone();
        Entry {
            own: Own {
                groups: self.own.groups.or(d.own.groups),
                interval: self.own.interval.or(d.own.interval),
                ..self.own
            },
            policy: self.policy.or(d.policy),
        }
    }
}

/// A check, ready to run.
#[derive(Debug)]
pub struct Check {
    /// Its name in the file.
    pub name: String,
    /// What to run.
    pub source: ProbeSource,
    /// Its caps, pin, parameters and grants.
    pub settings: Settings,
    /// The groups it belongs to (`serve`'s `/livez` and `/readyz`).
    pub groups: Vec<String>,
    /// How often `serve` runs it.
    pub interval: Duration,
    /// Its table with the defaults applied: a reload keeps a check whose table is equal.
    pub definition: Definition,
}

/// A check's table in the file, with the defaults applied, and a digest of its parameters
/// as read (so that a secret file rotated since is a change a reload applies, and no copy
/// of a secret is kept for it); only compared.
#[derive(Debug, PartialEq)]
pub struct Definition(Entry, [u8; 32], String);

impl Definition {
    fn new(entry: &Entry, params: &[(String, String)], source: &ProbeSource) -> Self {
        use sha2::Digest;
        let mut digest = sha2::Sha256::new();
        for (name, value) in params {
            // Lengths first, so that no two lists hash alike.
            for part in [name, value] {
                digest.update((part.len() as u64).to_le_bytes());
                digest.update(part.as_bytes());
            }
        }
        // With the source as resolved: an `oci://` tag that moved is a change.
        Definition(entry.clone(), digest.finalize().into(), source.label())
    }
}

/// A `/probe` module: a check whose `target` parameter comes with each request.
#[derive(Debug)]
pub struct Module {
    /// Its name in the file.
    pub name: String,
    /// What to run.
    pub source: ProbeSource,
    /// Its caps, pin, parameters and grants.
    pub settings: Settings,
    /// The parameter the request's target fills.
    pub target: String,
}

/// A loaded checks file.
#[derive(Debug)]
pub struct Checks {
    /// The checks, by name.
    pub checks: Vec<Check>,
    /// The modules, by name.
    pub modules: Vec<Module>,
}

impl Checks {
    /// Reads `path`. Limits given on the command line (`limits`) apply to every check, as
    /// they do over a policy file.
    pub fn load(path: &Path, limits: &LimitArgs, oci: &oci::Access) -> Result<Self, Failure> {
        let subject = format!("checks file {}", path.display());
        let bad = |why: String| Failure::BadInput(format!("{subject}: {why}"));
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read it: {}", text::io_error(&e))))?;
        let file = ChecksFile::parse(&text).map_err(|why| {
            bad(format!(
                "{why}; see the README for the keys a checks file takes"
            ))
        })?;
        // A file of modules alone is a /probe server's.
        if file.checks.is_empty() && file.modules.is_empty() {
            return Err(bad(
                "it has no checks; add a [checks.NAME] table with a probe".into(),
            ));
        }
        if file.defaults.own.probe.is_some() || file.defaults.own.target.is_some() {
            return Err(bad(
                "[defaults]: probe and target belong in each check or module, not in the defaults"
                    .into(),
            ));
        }
        // Relative probe paths are the file's neighbours, wherever it is run from.
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |table: &str, name: &str, entry: &Entry| {
            let subject = format!("{subject}, [{table}.{name}]");
            let entry = entry.clone().over(&file.defaults);
            let probe = entry.own.probe.as_deref().ok_or_else(|| {
                Failure::BadInput(format!(
                    "{subject}: no probe; give probe = \"NAME\" (a bundled probe, a .wasm, a .cwasm or an oci:// reference)"
                ))
            })?;
            let source = source(probe, &dir, oci)
                .map_err(|f| Failure::BadInput(format!("{subject}: probe: {f}")))?;
            let settings = settings::resolve_file(entry.policy.clone(), subject.clone(), limits)?;
            Ok::<_, Failure>((subject, entry, source, settings))
        };
        let mut checks = Vec::new();
        for (name, entry) in &file.checks {
            check_name(name).map_err(|why| bad(format!("[checks.{name}]: {why}")))?;
            let (subject, entry, source, settings) = resolve("checks", name, entry)?;
            let definition = Definition::new(&entry, &settings.params, &source);
            if entry.own.target.is_some() {
                return Err(Failure::BadInput(format!(
                    "{subject}: target: only a [modules.NAME] takes a target"
                )));
            }
            let groups = entry
                .own
                .groups
                .unwrap_or_else(|| vec![DEFAULT_GROUP.to_string()]);
            if let Some(bad_group) = groups.iter().find(|g| check_name(g).is_err()) {
                return Err(Failure::BadInput(format!(
                    "{subject}: groups: '{bad_group}' is not a group name (letters, digits, - and _)"
                )));
            }
            let interval = entry.own.interval.unwrap_or(DEFAULT_INTERVAL);
            checks.push(Check {
                name: name.clone(),
                source,
                settings,
                groups,
                interval,
                definition,
            });
        }
        let mut modules = Vec::new();
        for (name, entry) in &file.modules {
            check_name(name).map_err(|why| bad(format!("[modules.{name}]: {why}")))?;
            let (subject, entry, source, settings) = resolve("modules", name, entry)?;
            let target = entry.own.target.ok_or_else(|| {
                Failure::BadInput(format!(
                    "{subject}: no target; give target = \"PARAM\", the parameter a request's target fills (url, address, …)"
                ))
            })?;
            modules.push(Module {
                name: name.clone(),
                source,
                settings,
                target,
            });
        }
        Ok(Checks { checks, modules })
    }

    /// With `--pull`, pulls the `oci://` probes of the checks and modules that are tags or
    /// not stored yet, each by `until` of its settings, and pins tags to the digests they
    /// resolved to. Returns a line per registry contact, for the log.
    pub fn fetch(
        &mut self,
        args: &OciArgs,
        until: impl Fn(&Settings) -> Instant,
    ) -> Result<Vec<String>, Failure> {
        let mut lines = Vec::new();
        let checks = self.checks.iter_mut().map(|c| {
            (
                "checks",
                &c.name,
                &mut c.source,
                &c.settings,
                Some(&mut c.definition),
            )
        });
        let modules = self
            .modules
            .iter_mut()
            .map(|m| ("modules", &m.name, &mut m.source, &m.settings, None));
        for (table, name, source, settings, definition) in checks.chain(modules) {
            let pulled = oci::fetch(
                [(&mut *source, settings.limits.code.max_size, until(settings))],
                args,
            )
            .map_err(|f| {
                Failure::BadInput(format!("[{table}.{name}]: probe {}: {f}", source.label()))
            })?;
            if let Some(d) = definition {
                d.2 = source.label();
            }
            lines.extend(pulled);
        }
        Ok(lines)
    }

    /// The checks named (all of them when none is), or the refusal naming the unknown
    /// ones and the ones there are.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Check>, Failure> {
        if self.checks.is_empty() {
            return Err(Failure::BadInput(
                "the checks file has no checks, only modules (which serve's /probe runs); add a [checks.NAME] table with a probe".into(),
            ));
        }
        if names.is_empty() {
            return Ok(self.checks.iter().collect());
        }
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| !self.checks.iter().any(|c| &c.name == *n))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(Failure::BadInput(format!(
                "no check named {} in the checks file; it has {}",
                unknown.join(", "),
                self.checks
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(self
            .checks
            .iter()
            .filter(|c| names.contains(&c.name))
            .collect())
    }
}

/// A probe named in a checks file: a bundled probe, or a file relative to the checks
/// file's directory.
fn source(probe: &str, dir: &Path, oci: &oci::Access) -> Result<ProbeSource, Failure> {
    if crate::bundled::find(probe).is_some() || oci::is_oci(probe) {
        return ProbeSource::resolve(probe, oci);
    }
    let path = dir.join(probe);
    if !path.exists() {
        return Err(Failure::BadInput(format!(
            "unknown probe '{probe}': not a bundled probe ({}) and no file {}; a relative path is taken from the checks file's directory",
            crate::bundled::names().join(", "),
            path.display()
        )));
    }
    Ok(ProbeSource::File(path))
}

/// Names of checks, modules and groups appear in URLs and metric labels.
fn check_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err("a name of letters, digits, - and _ only".into())
    }
}

/// The one verdict of several checks' reports: an error if any check could not run, else
/// unhealthy if any failed, else degraded if any is, else healthy. The message names every
/// check that is not healthy, with its own message.
pub fn combine(results: &[(&str, Report)], elapsed: Duration) -> Report {
    let count = |v: Verdict| results.iter().filter(|(_, r)| r.verdict == v).count();
    let (errors, failed, degraded) = (
        count(Verdict::Error),
        count(Verdict::Unhealthy),
        count(Verdict::Degraded),
    );
    let total = results.len();
    let plural = |n: usize| if n == 1 { "check" } else { "checks" };
    let named = |v: Verdict| {
        results
            .iter()
            .filter(|(_, r)| r.verdict == v)
            .map(|(name, r)| format!("{name}: {}", r.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let (verdict, message) = if errors > 0 {
        (
            Verdict::Error,
            format!(
                "{errors} of {total} {} could not run: {}",
                plural(total),
                named(Verdict::Error)
            ),
        )
    } else if failed > 0 {
        (
            Verdict::Unhealthy,
            format!(
                "{failed} of {total} {} failed: {}",
                plural(total),
                named(Verdict::Unhealthy)
            ),
        )
    } else if degraded > 0 {
        (
            Verdict::Degraded,
            format!(
                "{total} {} passed, {degraded} degraded: {}",
                plural(total),
                named(Verdict::Degraded)
            ),
        )
    } else {
        let names: Vec<&str> = results.iter().map(|(n, _)| *n).collect();
        (
            Verdict::Healthy,
            format!("{total} {} passed ({})", plural(total), names.join(", ")),
        )
    };
    Report::new(verdict, "", message, elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Checks, Failure> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checks.toml");
        std::fs::write(&path, text).unwrap();
        Checks::load(&path, &LimitArgs::default(), &Default::default())
    }

    #[test]
    fn checks_take_policy_keys_over_the_defaults() {
        let checks = load(
            r#"
[defaults]
timeout = "2s"
interval = "30s"
params = { address = "127.0.0.1:1" }

[checks.api]
probe = "http"
params = { url = "http://127.0.0.1:8080/health" }
groups = ["liveness", "readiness"]
timeout = "1s"

[checks.cache]
probe = "redis"

[modules.http_2xx]
probe = "http"
target = "url"
params = { expect-status = "200-299" }
"#,
        )
        .unwrap();
        let api = &checks.checks[0];
        assert_eq!(api.name, "api");
        assert_eq!(api.settings.limits.timeout, Duration::from_secs(1));
        assert_eq!(api.groups, ["liveness", "readiness"]);
        assert_eq!(api.interval, Duration::from_secs(30));
        // A check's params table replaces none of the defaults' other keys.
        assert!(
            api.settings
                .params
                .contains(&("address".into(), "127.0.0.1:1".into()))
        );
        let cache = &checks.checks[1];
        assert_eq!(cache.settings.limits.timeout, Duration::from_secs(2));
        assert_eq!(cache.groups, [DEFAULT_GROUP]);
        assert_eq!(checks.modules[0].target, "url");
    }

    #[test]
    fn mistakes_are_refused_with_where_they_are() {
        let err = |text: &str| load(text).unwrap_err().to_string();
        let e = err("[checks.api]\nprobe = \"http\"\ntimeuot = \"2s\"\n");
        assert!(e.contains("timeuot") && e.contains("(line 3)"), "{e}");
        let e =
            err("[defaults]\ntimeout = \"1s\"\n[checks.a]\nprobe = \"tcp\"\n\n  \"bogus\" = 1\n");
        assert!(e.contains("bogus") && e.contains("(line 6)"), "{e}");
        let e = err("[checks.api]\nparams = { url = \"x\" }\n");
        assert!(e.contains("[checks.api]: no probe"), "{e}");
        let e = err("[checks.api]\nprobe = \"http\"\ntimeout = \"soon\"\n");
        assert!(e.contains("[checks.api]: timeout"), "{e}");
        let e = err("[checks.api]\nprobe = \"nosuch\"\n");
        assert!(
            e.contains("[checks.api]: probe: unknown probe 'nosuch'"),
            "{e}"
        );
        let e = err("[checks.api]\nprobe = \"http\"\ntarget = \"url\"\n");
        assert!(e.contains("only a [modules.NAME]"), "{e}");
        let e = err("[modules.m]\nprobe = \"http\"\n[checks.a]\nprobe = \"tcp\"\n");
        assert!(e.contains("[modules.m]: no target"), "{e}");
        let e = err("[checks.\"a b\"]\nprobe = \"tcp\"\n");
        assert!(e.contains("letters, digits"), "{e}");
        let e = err("[defaults]\ntimeout = \"1s\"\n");
        assert!(e.contains("no checks"), "{e}");
        // Modules alone make a file for serve's /probe, and nothing for run --config.
        let modules = load("[modules.m]\nprobe = \"http\"\ntarget = \"url\"\n").unwrap();
        let e = modules.select(&[]).unwrap_err().to_string();
        assert!(e.contains("has no checks, only modules"), "{e}");
        let e = err("[defaults]\nprobe = \"tcp\"\n[checks.a]\nprobe = \"tcp\"\n");
        assert!(e.contains("not in the defaults"), "{e}");
    }

    fn report(verdict: Verdict, message: &str) -> Report {
        Report::new(verdict, "", message, Duration::ZERO)
    }

    #[test]
    fn the_verdict_names_every_check_that_is_not_healthy() {
        let ok = report(Verdict::Healthy, "fine");
        let r = combine(&[("a", ok.clone()), ("b", ok.clone())], Duration::ZERO);
        assert_eq!(
            (r.verdict, r.message.as_str()),
            (Verdict::Healthy, "2 checks passed (a, b)")
        );
        let slow = report(Verdict::Degraded, "slow");
        let r = combine(&[("a", ok.clone()), ("b", slow)], Duration::ZERO);
        assert_eq!(r.verdict, Verdict::Degraded);
        assert_eq!(r.message, "2 checks passed, 1 degraded: b: slow");
        let down = report(Verdict::Unhealthy, "timeout after 2s");
        let r = combine(
            &[("a", ok.clone()), ("cache", down.clone())],
            Duration::ZERO,
        );
        assert_eq!(r.verdict, Verdict::Unhealthy);
        assert_eq!(r.message, "1 of 2 checks failed: cache: timeout after 2s");
        let broken = report(Verdict::Error, "unknown parameter 'x'");
        let r = combine(&[("a", down), ("b", broken)], Duration::ZERO);
        assert_eq!(r.verdict, Verdict::Error);
        assert_eq!(
            r.message,
            "1 of 2 checks could not run: b: unknown parameter 'x'"
        );
    }
}
