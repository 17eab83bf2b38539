//! The bundled `file` probe: a heartbeat file exists and was modified recently, for
//! workers that have no network endpoint to probe.
//!
//! The probe reads only the file's metadata, through WASI's filesystem; the host grants
//! nothing unless the operator passes `--allow-read DIR` (a directory, which the guest
//! then sees at the same absolute path).

use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, SystemTime};

use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};

/// How far in the future a modification time may be before it counts as clock trouble:
/// file systems round timestamps, and the writer's clock may run slightly ahead.
const FUTURE_TOLERANCE: Duration = Duration::from_secs(2);

struct FileProbe;

impl Probe for FileProbe {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "file",
            env!("CARGO_PKG_VERSION"),
            "Checks that a heartbeat file exists and, with max-age, that it was modified recently; needs --allow-read DIR for the directory that holds it.",
        )
        .param(ParamSpec::required(
            "path",
            "Absolute path of the file, for example path=/run/worker/heartbeat (run with --allow-read /run/worker).",
        ))
        .param(ParamSpec::optional(
            "max-age",
            "Longest time since the last modification, for example max-age=30s or max-age=5m; without it only existence is checked.",
        ))
    }

    fn check(params: &Params, _budget: Budget) -> Result<CheckResult, CheckError> {
        let path = normalize(params.required_str("path")?.trim())
            .map_err(|reason| CheckError::invalid_param("path", reason))?;
        let path = path.as_str();
        let max_age = params.duration("max-age")?;
        if max_age.is_some_and(|d| d.is_zero()) {
            return Err(CheckError::invalid_param(
                "max-age",
                "must be more than zero, for example 30s",
            ));
        }

        let result = match granted_dirs() {
            Some(dirs) if !dirs.iter().any(|d| is_under(path, d)) => not_granted(path, &dirs),
            _ => examine(path, max_age),
        };
        let mut result = result.detail("path", path);
        if let Some(max) = max_age {
            result = result.detail("max-age", humantime::format_duration(max).to_string());
        }
        Ok(result)
    }
}

healthprobe_sdk::export_probe!(FileProbe);

/// The verdict on `path` from its metadata.
fn examine(path: &str, max_age: Option<Duration>) -> CheckResult {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let modified = meta.modified().ok();
            let mut result = judge(path, modified, SystemTime::now(), max_age)
                .detail("size", meta.len())
                .detail("kind", if meta.is_dir() { "directory" } else { "file" });
            if let Some(t) = modified {
                result =
                    result.detail("modified", humantime::format_rfc3339_seconds(t).to_string());
            }
            result
        }
        Err(e) => unreadable(path, e.kind(), &e.to_string()),
    }
}

/// The directories the host granted (`--allow-read`, as the guest sees them), or `None`
/// where that cannot be known (natively, in tests).
///
/// WASI reports a path outside every granted directory as missing, the same as a file
/// that does not exist; the list tells the two apart.
#[cfg(all(target_os = "wasi", target_env = "p2"))]
fn granted_dirs() -> Option<Vec<String>> {
    Some(
        wasi::filesystem::preopens::get_directories()
            .into_iter()
            .map(|(_, dir)| dir)
            .collect(),
    )
}

#[cfg(not(all(target_os = "wasi", target_env = "p2")))]
fn granted_dirs() -> Option<Vec<String>> {
    None
}

/// Whether `path` is `dir` or inside it (both absolute and normalized).
fn is_under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The verdict on a path no grant covers.
fn not_granted(path: &str, dirs: &[String]) -> CheckResult {
    let granted = if dirs.is_empty() {
        "none".to_string()
    } else {
        dirs.join(", ")
    };
    CheckResult::unhealthy(format!(
        "{path} is not readable: no --allow-read grant covers it (granted: {granted}); pass --allow-read {} (the directory that holds it)",
        parent(path)
    ))
    .detail("error", "not-granted")
}

/// The directory that holds `path`.
fn parent(path: &str) -> String {
    Path::new(path)
        .parent()
        .map_or_else(|| "/".to_string(), |p| p.display().to_string())
}

/// An absolute path with `.`, `..` and repeated slashes resolved by their text, as the
/// host grants directories by their canonical paths and WASI refuses a `..` that climbs
/// out of a granted directory.
fn normalize(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "expected an absolute path such as /run/worker/heartbeat, got '{path}'"
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The verdict on a file that exists, modified at `modified` (if the file system says).
fn judge(
    path: &str,
    modified: Option<SystemTime>,
    now: SystemTime,
    max_age: Option<Duration>,
) -> CheckResult {
    let Some(modified) = modified else {
        return match max_age {
            Some(_) => CheckResult::unhealthy(format!(
                "{path} exists, but the file system gives no modification time to check max-age against"
            ))
            .detail("error", "no-mtime"),
            None => CheckResult::healthy(format!("{path} exists")),
        };
    };
    match now.duration_since(modified) {
        Ok(age) => {
            let result = match max_age {
                Some(max) if age > max => CheckResult::unhealthy(format!(
                    "{path} is stale: modified {} ago, max-age {}",
                    human(age),
                    human(max)
                ))
                .detail("error", "stale"),
                Some(max) => CheckResult::healthy(format!(
                    "{path} modified {} ago (max-age {})",
                    human(age),
                    human(max)
                )),
                None => {
                    CheckResult::healthy(format!("{path} exists (modified {} ago)", human(age)))
                }
            };
            result.detail("age-ms", age.as_millis())
        }
        Err(e) => {
            let ahead = e.duration();
            if ahead <= FUTURE_TOLERANCE {
                let fresh = match max_age {
                    Some(max) => format!("{path} modified just now (max-age {})", human(max)),
                    None => format!("{path} exists (modified just now)"),
                };
                return CheckResult::healthy(fresh).detail("age-ms", 0);
            }
            let result = match max_age {
                // A writer that set a future time and then died would look fresh until
                // that time comes, so its age cannot vouch for anything.
                Some(_) => CheckResult::unhealthy(format!(
                    "{path} was modified {} in the future (clock trouble?), so its age cannot be checked against max-age",
                    human(ahead)
                ))
                .detail("error", "future"),
                None => CheckResult::healthy(format!(
                    "{path} exists (modified {} in the future)",
                    human(ahead)
                )),
            };
            result.detail("future-ms", ahead.as_millis())
        }
    }
}

/// The verdict on a path whose metadata could not be read.
fn unreadable(path: &str, kind: ErrorKind, text: &str) -> CheckResult {
    let (message, error) = match kind {
        ErrorKind::NotFound => (format!("{path} does not exist"), "not-found"),
        ErrorKind::NotADirectory => (
            format!("{path} does not exist (a part of the path is not a directory)"),
            "not-found",
        ),
        // WASI refuses a symbolic link that leads out of the granted directory as "not
        // permitted" (or "not capable"), like a file the host itself may not read.
        ErrorKind::PermissionDenied => (
            format!(
                "{path} is not readable: {text}; if it is a symbolic link out of the granted directory, grant the directory it points to with --allow-read"
            ),
            "denied",
        ),
        _ if text.contains("apabilit") => (
            format!(
                "{path} is not readable: {text}; if it is a symbolic link out of the granted directory, grant the directory it points to with --allow-read"
            ),
            "denied",
        ),
        _ => (format!("cannot read {path}: {text}"), "io"),
    };
    CheckResult::unhealthy(message).detail("error", error)
}

/// A duration for people: whole seconds from a second on (`3m 20s`), else milliseconds.
fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthprobe_sdk::Status;

    const P: &str = "/run/worker/heartbeat";

    fn at(now: SystemTime, ago_secs: i64) -> SystemTime {
        if ago_secs >= 0 {
            now - Duration::from_secs(ago_secs.unsigned_abs())
        } else {
            now + Duration::from_secs(ago_secs.unsigned_abs())
        }
    }

    #[test]
    fn fresh_stale_and_existing() {
        let now = SystemTime::now();
        let minute = Some(Duration::from_secs(60));

        let fresh = judge(P, Some(at(now, 12)), now, minute);
        assert_eq!(fresh.status, Status::Healthy);
        assert_eq!(
            fresh.message,
            "/run/worker/heartbeat modified 12s ago (max-age 1m)"
        );

        let stale = judge(P, Some(at(now, 303)), now, minute);
        assert_eq!(stale.status, Status::Unhealthy);
        assert_eq!(
            stale.message,
            "/run/worker/heartbeat is stale: modified 5m 3s ago, max-age 1m"
        );
        assert_eq!(stale.get_detail("error"), Some("stale"));

        let exists = judge(P, Some(at(now, 7200)), now, None);
        assert_eq!(exists.status, Status::Healthy);
        assert_eq!(
            exists.message,
            "/run/worker/heartbeat exists (modified 2h ago)"
        );
    }

    #[test]
    fn future_modification_times() {
        let now = SystemTime::now();
        // Within the tolerance: just written by a clock slightly ahead.
        let ok = judge(P, Some(at(now, -1)), now, Some(Duration::from_secs(10)));
        assert_eq!(ok.status, Status::Healthy);
        assert!(ok.message.contains("just now"), "{}", ok.message);

        let future = judge(P, Some(at(now, -3600)), now, Some(Duration::from_secs(10)));
        assert_eq!(future.status, Status::Unhealthy);
        assert_eq!(
            future.message,
            "/run/worker/heartbeat was modified 1h in the future (clock trouble?), so its age cannot be checked against max-age"
        );
        let exists = judge(P, Some(at(now, -3600)), now, None);
        assert_eq!(exists.status, Status::Healthy);
        assert!(exists.message.contains("1h in the future"));
    }

    #[test]
    fn unreadable_paths() {
        let missing = unreadable(P, ErrorKind::NotFound, "No such file or directory");
        assert_eq!(missing.message, "/run/worker/heartbeat does not exist");
        let link = unreadable(
            P,
            ErrorKind::PermissionDenied,
            "Operation not permitted (os error 63)",
        );
        assert_eq!(
            link.message,
            "/run/worker/heartbeat is not readable: Operation not permitted (os error 63); if it is a symbolic link out of the granted directory, grant the directory it points to with --allow-read"
        );
        assert_eq!(link.get_detail("error"), Some("denied"));
        let capability = unreadable(
            P,
            ErrorKind::Other,
            "Capabilities insufficient (os error 76)",
        );
        assert_eq!(capability.get_detail("error"), Some("denied"));
        let other = unreadable(P, ErrorKind::Other, "Input/output error");
        assert_eq!(
            other.message,
            "cannot read /run/worker/heartbeat: Input/output error"
        );
    }

    #[test]
    fn grants() {
        assert!(is_under(P, "/run/worker"));
        assert!(is_under(P, "/run/worker/"));
        assert!(is_under(P, "/"));
        assert!(is_under(P, P));
        assert!(!is_under(P, "/run/work"));
        assert!(!is_under("/run", "/run/worker"));

        let none = not_granted(P, &[]);
        assert_eq!(
            none.message,
            "/run/worker/heartbeat is not readable: no --allow-read grant covers it (granted: none); pass --allow-read /run/worker (the directory that holds it)"
        );
        assert_eq!(none.get_detail("error"), Some("not-granted"));
        let other = not_granted(P, &["/tmp".into(), "/var".into()]);
        assert!(
            other.message.contains("(granted: /tmp, /var)"),
            "{}",
            other.message
        );
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize("/tmp/a/../b/./c").unwrap(), "/tmp/b/c");
        assert_eq!(normalize("//tmp//x/").unwrap(), "/tmp/x");
        assert_eq!(normalize("/..").unwrap(), "/");
        assert!(normalize("tmp/x").unwrap_err().contains("absolute path"));
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_millis(200_900)), "3m 20s");
    }

    #[test]
    fn bad_params() {
        for (pairs, name) in [
            (vec![("path", "heartbeat")], "path"),
            (vec![("path", P), ("max-age", "soon")], "max-age"),
            (vec![("path", P), ("max-age", "30")], "max-age"),
            (vec![("path", P), ("max-age", "0s")], "max-age"),
        ] {
            match FileProbe::check(&Params::from_pairs(pairs.clone()), Budget::new(1000)) {
                Err(CheckError::InvalidParam(p)) => assert_eq!(p.name, name, "{pairs:?}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn describe_documents_every_param() {
        let info = FileProbe::describe();
        let names: Vec<_> = info.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["path", "max-age"]);
        assert!(
            info.params
                .iter()
                .all(|p| p.description.contains("for example"))
        );
    }
}
