//! What the user sees: the one renderer of results and errors, as a text line or a JSON
//! object, for every command; and printing that never panics on a closed stdout.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::bindings::healthprobe::probe::types::ParamSpec;
use crate::report::{Detail, Report, Verdict};
use crate::text::{excerpt, one_line};

/// Docker keeps only this much of a health check's output.
pub const MAX_OUTPUT: usize = 4096;
/// The longest message line, so JSON details and `--verbose` output still fit.
const MAX_MESSAGE: usize = 1024;

/// Output format of every command that reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// One line: `healthy: …`, `unhealthy: …`, `error: …`.
    #[default]
    Text,
    /// One JSON object.
    Json,
}

/// The result of a command that could not do its work (exit 3): `error: SUBJECT: message`
/// (or `error: message` without a subject), or the same as a JSON object.
pub fn render_error(subject: &str, message: &str, format: Format) -> String {
    render(
        &Report::new(Verdict::Error, subject, message, Duration::ZERO),
        format,
    )
}

/// Prints [`render_error`] and returns exit status 3.
pub fn fail(subject: &str, message: &str, format: Format) -> ExitCode {
    // Nothing more can be said if stdout is gone; the status still tells.
    let _ = print_line(&render_error(subject, message, format));
    ExitCode::from(crate::EXIT_ERROR)
}

/// Writes `line` and a newline to stdout and flushes it. A closed or broken stdout is an
/// error for the caller, never a panic (`println!` would panic, and the release build
/// aborts on panics).
pub fn print_line(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

/// Writes `text` to stderr as it is, in one write, ignoring failure: stderr carries notes
/// (`--verbose`, serve's log), and a closed, broken or full stderr must change neither the
/// verdict nor the exit status. `eprint!` would panic there, and the release build aborts on
/// panics.
pub fn print_err(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// A detail as JSON: numbers and flags as themselves, text cut to 256 bytes.
fn json_value(value: &Detail) -> serde_json::Value {
    match value {
        Detail::Text(t) => serde_json::Value::String(excerpt(t, 256)),
        typed => serde_json::to_value(typed).unwrap_or(serde_json::Value::Null),
    }
}

/// Renders a report as the single stdout line (text) or object (JSON), at most
/// [`MAX_OUTPUT`] bytes.
pub fn render(report: &Report, format: Format) -> String {
    let message = excerpt(&one_line(&report.message), MAX_MESSAGE);
    let out = match format {
        Format::Text => {
            let status = report.verdict.as_str();
            if report.probe.is_empty() {
                format!("{status}: {message}")
            } else {
                format!("{status}: {}: {message}", report.probe)
            }
        }
        Format::Json => {
            let mut details = serde_json::Map::new();
            let mut budget = MAX_OUTPUT.saturating_sub(message.len() + report.probe.len() + 200);
            for (k, v) in &report.details {
                let v = json_value(v);
                let size = k.len() + v.to_string().len() + 4;
                if size > budget {
                    break;
                }
                budget -= size;
                details.insert(k.clone(), v);
            }
            let probe = (!report.probe.is_empty()).then_some(&report.probe);
            serde_json::json!({
                "status": report.verdict,
                "probe": probe,
                "message": message,
                "elapsed_ms": u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
                "details": details,
            })
            .to_string()
        }
    };
    excerpt(&out, MAX_OUTPUT - 1)
}

/// Renders the verdict of several checks as one JSON object: the combined status and
/// message, and one entry per check (name, probe, status, message, time, details), at most
/// [`MAX_OUTPUT`] bytes: details are left out first, then the checks' messages are cut.
pub fn render_checks(combined: &Report, results: &[(&str, Report)]) -> String {
    let millis = |r: &Report| u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX);
    let object = |room: usize, details: bool| {
        let checks: Vec<serde_json::Value> = results
            .iter()
            .map(|(name, r)| {
                let mut entry = serde_json::json!({
                    "name": name,
                    "probe": r.probe,
                    "status": r.verdict,
                    "message": excerpt(&one_line(&r.message), room),
                    "elapsed_ms": millis(r),
                });
                if details {
                    entry["details"] = r
                        .details
                        .iter()
                        .map(|(k, v)| (k.clone(), json_value(v)))
                        .collect::<serde_json::Map<_, _>>()
                        .into();
                }
                entry
            })
            .collect();
        serde_json::json!({
            "status": combined.verdict,
            "message": excerpt(&one_line(&combined.message), room.max(MAX_MESSAGE / 2)),
            "elapsed_ms": millis(combined),
            "checks": checks,
        })
        .to_string()
    };
    let mut room = MAX_MESSAGE;
    for details in [true, false] {
        let out = object(room, details);
        if out.len() < MAX_OUTPUT {
            return out;
        }
    }
    while room > 16 {
        room /= 2;
        let out = object(room, false);
        if out.len() < MAX_OUTPUT {
            return out;
        }
    }
    excerpt(&object(16, false), MAX_OUTPUT - 1)
}

/// Renders the captured guest output for `--verbose`, with the host's own `notes` after
/// it, within `room` bytes.
pub fn render_guest_output(report: &Report, notes: &[String], room: usize) -> String {
    let mut out = String::new();
    for (label, (kept, dropped)) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
        if kept.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(kept);
        let mut section = format!("--- probe {label} ---\n{}", text.trim_end());
        if *dropped > 0 {
            section.push_str(&format!("\n[{dropped} more bytes not kept]"));
        }
        out.push_str(&section);
        out.push('\n');
    }
    if let Some(digest) = &report.sha256 {
        out.push_str(&format!("sha256: {digest}\n"));
    }
    if let Some(code) = &report.code {
        out.push_str(&format!("code: {code}\n"));
    }
    out.push_str(&format!("elapsed: {} ms\n", report.elapsed.as_millis()));
    for note in notes {
        out.push_str(note);
        out.push('\n');
    }
    excerpt(&out, room)
}

/// `[required, default: GET, repeatable]`, or nothing, for a parameter listing.
pub fn param_notes(p: &ParamSpec) -> String {
    let mut notes = Vec::new();
    if p.required {
        notes.push("required".to_string());
    }
    if let Some(d) = &p.default {
        notes.push(format!("default: {d}"));
    }
    if p.repeatable {
        notes.push("repeatable".to_string());
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!(" [{}]", notes.join(", "))
    }
}

/// A parameter as a JSON object, for `list` and `inspect`.
pub fn param_json(p: &ParamSpec) -> serde_json::Value {
    serde_json::json!({
        "name": p.name,
        "description": p.description,
        "required": p.required,
        "default": p.default,
        "repeatable": p.repeatable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_stay_one_line_and_small() {
        let report = Report {
            details: vec![("k".into(), "v".repeat(100_000).into())],
            ..Report::new(
                Verdict::Unhealthy,
                "x",
                "a\nb".repeat(10_000),
                Duration::from_millis(3),
            )
        };
        for f in [Format::Text, Format::Json] {
            let out = render(&report, f);
            assert!(
                out.len() < MAX_OUTPUT && !out.contains('\n'),
                "{}",
                out.len()
            );
        }
    }
}
