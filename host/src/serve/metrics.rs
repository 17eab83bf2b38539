//! `/metrics`, and the Prometheus text format `/probe` shares.

use std::sync::Arc;

use super::check::{Served, VERDICTS};

/// The text format's content type.
pub(super) const METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `registry`'s metrics in Prometheus's text format.
pub(super) fn encode(registry: &prometheus::Registry) -> prometheus::Result<String> {
    use prometheus::Encoder as _;
    let mut out = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

/// A detail's name as a metric name: lower case, `_` for anything else.
pub(super) fn metric_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `/metrics`, in Prometheus's text format: each check's success, duration and runs, and
/// the process's own memory, CPU, file descriptors and start time.
pub(super) fn metrics(checks: &[Arc<Served>]) -> prometheus::Result<String> {
    use prometheus::{GaugeVec, IntCounterVec, Opts};
    let success = GaugeVec::new(
        Opts::new(
            "healthprobe_check_success",
            "Whether the check's latest result passes (1) or not (0; failed, stale or none yet).",
        ),
        &["check"],
    )?;
    let duration = GaugeVec::new(
        Opts::new(
            "healthprobe_check_duration_seconds",
            "How long the check's latest run took.",
        ),
        &["check"],
    )?;
    let runs = IntCounterVec::new(
        Opts::new(
            "healthprobe_check_runs_total",
            "Runs of the check since it was (re)loaded, by result.",
        ),
        &["check", "result"],
    )?;
    for check in checks {
        let status = check.status();
        let name = check.name.as_str();
        success
            .with_label_values(&[name])
            .set(f64::from(u8::from(status.pass)));
        if let Some(d) = status.duration {
            duration.with_label_values(&[name]).set(d.as_secs_f64());
        }
        for (verdict, n) in VERDICTS.iter().zip(check.runs()) {
            runs.with_label_values(&[name, verdict.as_str()]).inc_by(n);
        }
    }
    let registry = prometheus::Registry::new();
    registry.register(Box::new(success))?;
    registry.register(Box::new(duration))?;
    registry.register(Box::new(runs))?;
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    encode(&registry)
}
