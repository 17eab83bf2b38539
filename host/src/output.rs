//! What the user sees: the result line, JSON, and the formatting helpers behind messages.

use std::time::Duration;

use crate::bindings::healthprobe::probe::types::ParamSpec;
use crate::runner::{Report, Verdict};

/// Docker keeps only this much of a health check's output.
pub const MAX_OUTPUT: usize = 4096;
/// The longest message line, so JSON details and `--verbose` output still fit.
const MAX_MESSAGE: usize = 1024;

/// Output format of `run` and `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// One line: `healthy: …`, `unhealthy: …`, `error: …`.
    #[default]
    Text,
    /// One JSON object.
    Json,
}

/// The `error: …` line for a failure before any probe ran.
pub fn error_line(message: &str) -> String {
    format!("error: {}", excerpt(&one_line(message), MAX_MESSAGE))
}

/// Renders a report as the single stdout line (text) or object (JSON), at most
/// [`MAX_OUTPUT`] bytes.
pub fn render(report: &Report, format: Format) -> String {
    let message = excerpt(&one_line(&report.message), MAX_MESSAGE);
    let out = match format {
        Format::Text => {
            let status = match report.verdict {
                Verdict::Healthy => "healthy",
                Verdict::Degraded => "degraded",
                Verdict::Unhealthy => "unhealthy",
                Verdict::Error => "error",
            };
            format!("{status}: {}: {message}", report.probe)
        }
        Format::Json => {
            let mut details = serde_json::Map::new();
            let mut budget = MAX_OUTPUT.saturating_sub(message.len() + report.probe.len() + 200);
            for (k, v) in &report.details {
                let v = excerpt(v, 256);
                if k.len() + v.len() + 8 > budget {
                    break;
                }
                budget -= k.len() + v.len() + 8;
                details.insert(k.clone(), serde_json::Value::String(v));
            }
            serde_json::json!({
                "status": report.verdict,
                "probe": report.probe,
                "message": message,
                "elapsed_ms": u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
                "details": details,
            })
            .to_string()
        }
    };
    excerpt(&out, MAX_OUTPUT - 1)
}

/// Renders the captured guest output for `--verbose`, within `room` bytes.
pub fn render_guest_output(report: &Report, room: usize) -> String {
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

/// A duration the way operators write them: `2s`, `500ms`, `1.5s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        format!("{}µs", d.as_micros())
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A byte count in binary units: `64 MiB`.
pub fn size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        return format!("{} MiB", bytes / MIB);
    }
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// An error and its sources, joined with `: `.
pub fn chain(err: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    one_line(&parts.join(": "))
}

/// An I/O error without the `(os error N)` suffix.
pub fn io_error(err: &std::io::Error) -> String {
    let s = err.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

/// At most `max` bytes of `s`, cut at a character boundary, with `…` when cut.
pub fn excerpt(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Newlines and control characters folded into spaces: the result is one line.
fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_control())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_flags() {
        assert_eq!(duration(Duration::from_secs(2)), "2s");
        assert_eq!(duration(Duration::from_millis(500)), "500ms");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn excerpt_cuts_on_char_boundaries() {
        let s = "é".repeat(10);
        let e = excerpt(&s, 7);
        assert!(e.len() <= 7 && e.ends_with('…'), "{e}");
        assert_eq!(excerpt("abc", 3), "abc");
    }

    #[test]
    fn reports_stay_one_line_and_small() {
        let report = Report {
            verdict: Verdict::Unhealthy,
            probe: "x".into(),
            message: "a\nb".repeat(10_000),
            details: vec![("k".into(), "v".repeat(100_000))],
            elapsed: Duration::from_millis(3),
            stdout: (vec![], 0),
            stderr: (vec![], 0),
            sha256: None,
            code: None,
        };
        for f in [Format::Text, Format::Json] {
            let out = render(&report, f);
            assert!(
                out.len() < MAX_OUTPUT && !out.contains('\n'),
                "{}",
                out.len()
            );
        }
        assert_eq!(size(64 * 1024 * 1024), "64 MiB");
        assert_eq!(size(1536), "1.5 KiB");
    }
}
