//! The endpoints that read the latest results: `/livez` and `/readyz` (kube-apiserver's
//! conventions), `/health` (`application/health+json`) and `/metrics`.

use std::fmt::Write as _;
use std::sync::Arc;

use super::check::{Served, Status};
use super::metrics::{METRICS, metrics};
use crate::report::Verdict;
use crate::text;

/// An HTTP answer: status, content type, body.
pub type Answer = (u16, &'static str, String);

/// The content type of plain answers.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// Answers one GET request for `path` with `query` (without the `?`).
pub fn answer(checks: &[Arc<Served>], path: &str, query: &str) -> Answer {
    let verbose = query
        .split('&')
        .any(|p| p == "verbose" || p.starts_with("verbose="));
    match path.trim_end_matches('/') {
        "/livez" => group(checks, "liveness", "livez", verbose),
        "/readyz" => group(checks, "readiness", "readyz", verbose),
        "/health" => health(checks),
        "/metrics" => match metrics(checks) {
            Ok(text) => (200, METRICS, text),
            Err(e) => (500, TEXT, format!("cannot write the metrics: {e}\n")),
        },
        p => {
            for (prefix, group_name) in [("/livez/", "liveness"), ("/readyz/", "readiness")] {
                if let Some(name) = p.strip_prefix(prefix) {
                    return match checks
                        .iter()
                        .find(|c| c.name == name && c.groups.iter().any(|g| g == group_name))
                    {
                        Some(c) => one(c),
                        None => (
                            404,
                            TEXT,
                            format!("no check {name} in the {group_name} group\n"),
                        ),
                    };
                }
            }
            (
                404,
                TEXT,
                "not found; try /livez, /readyz, /health or /metrics\n".into(),
            )
        }
    }
}

/// `/livez` or `/readyz`: 200 `ok` when every check of the group passes, else 503; with
/// `?verbose`, one `[+]name ok` or `[-]name failed: reason` line per check, as
/// kube-apiserver writes them.
fn group(checks: &[Arc<Served>], group: &str, endpoint: &str, verbose: bool) -> Answer {
    let mut body = String::new();
    let mut pass = true;
    for check in checks
        .iter()
        .filter(|c| c.groups.iter().any(|g| g == group))
    {
        let status = check.status();
        pass &= status.pass;
        if verbose {
            if status.pass {
                let _ = writeln!(body, "[+]{} ok", check.name);
            } else {
                let _ = writeln!(
                    body,
                    "[-]{} failed: {}",
                    check.name,
                    text::one_line(&status.message)
                );
            }
        }
    }
    let code = if pass { 200 } else { 503 };
    if verbose {
        let _ = writeln!(
            body,
            "{endpoint} check {}",
            if pass { "passed" } else { "failed" }
        );
    } else if pass {
        body.push_str("ok");
    } else {
        let _ = write!(body, "{endpoint} check failed");
    }
    (code, TEXT, body)
}

fn one(check: &Served) -> Answer {
    let status = check.status();
    if status.pass {
        (200, TEXT, "ok".into())
    } else {
        (
            503,
            TEXT,
            format!("{} failed: {}", check.name, text::one_line(&status.message)),
        )
    }
}

/// `/health`, in the IETF draft "Health Check Response Format for HTTP APIs": `status`
/// pass, warn (a degraded check) or fail, and one entry per check.
fn health(checks: &[Arc<Served>]) -> Answer {
    let statuses: Vec<(&Served, Status)> = checks.iter().map(|c| (&**c, c.status())).collect();
    let overall = if statuses.iter().any(|(_, s)| !s.pass) {
        "fail"
    } else if statuses.iter().any(|(_, s)| s.verdict == Verdict::Degraded) {
        "warn"
    } else {
        "pass"
    };
    let mut entries = serde_json::Map::new();
    for (check, s) in &statuses {
        let status = match (s.pass, s.verdict) {
            (true, Verdict::Degraded) => "warn",
            (true, _) => "pass",
            (false, _) => "fail",
        };
        let mut entry = serde_json::json!({
            "componentId": check.name,
            "componentType": "component",
            "status": status,
            "output": s.message,
            "affectedEndpoints": check.groups,
        });
        if let Some(d) = s.duration {
            entry["observedValue"] = serde_json::json!(d.as_secs_f64());
            entry["observedUnit"] = "s".into();
        }
        if let Some(t) = s.time {
            entry["time"] = humantime::format_rfc3339_millis(t).to_string().into();
        }
        entries.insert(format!("{}:run", check.name), serde_json::json!([entry]));
    }
    let body = serde_json::json!({
        "status": overall,
        "description": "healthprobe serve",
        "checks": entries,
    });
    let code = if overall == "fail" { 503 } else { 200 };
    (code, "application/health+json", format!("{body:#}\n"))
}
