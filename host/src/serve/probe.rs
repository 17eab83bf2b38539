//! `/probe`, blackbox_exporter's endpoint: the modules of the checks file, a request checked
//! against them, and the answer as Prometheus gauges.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::run_by_the_clock;
use super::endpoints::{Answer, TEXT};
use super::metrics::{METRICS, encode};
use crate::checks::Module;
use crate::report::Report;
use crate::runner::{ProbeSource, RunConfig, Runner};
use crate::text;

/// A `/probe` module as `serve` runs it.
#[derive(Debug)]
pub struct ServedModule {
    /// Its name in the checks file.
    pub name: String,
    source: ProbeSource,
    params: Vec<(String, String)>,
    target: String,
    config: RunConfig,
}

impl ServedModule {
    /// The modules to serve, with their grants resolved.
    pub(super) fn new(
        modules: Vec<Module>,
        grants: &crate::flags::GrantArgs,
    ) -> Result<Vec<ServedModule>, crate::Failure> {
        modules
            .into_iter()
            .map(|m| {
                let config = m.settings.run_config(grants)?;
                Ok(ServedModule {
                    name: m.name,
                    source: m.source,
                    params: m.settings.params,
                    target: m.target,
                    config,
                })
            })
            .collect()
    }
}

/// How much of Prometheus's scrape timeout `/probe` leaves for the answer to travel, as
/// blackbox_exporter does.
pub const SCRAPE_OFFSET: Duration = Duration::from_millis(500);

/// A `/probe` request, checked and ready to run: the module's probe with the target set,
/// under the module's timeout or the scrape's.
#[derive(Debug)]
pub struct ProbeRequest {
    source: ProbeSource,
    params: Vec<(String, String)>,
    config: RunConfig,
}

/// `GET /probe?module=M&target=T`, as blackbox_exporter answers it: runs module `M` with
/// its target parameter set to `T`, now, under the module's timeout or the scrape's
/// (`X-Prometheus-Scrape-Timeout-Seconds` less [`SCRAPE_OFFSET`]) if shorter. The target is
/// reached under the module's grants only (loopback unless it grants more), so `/probe` is
/// no proxy to anywhere. This checks the request; a bad one gets its answer (400) here.
pub fn probe_request(
    modules: &[ServedModule],
    query: &str,
    scrape_timeout: Option<&str>,
) -> Result<ProbeRequest, Answer> {
    let bad = |why: String| (400, TEXT, why + "\n");
    let mut module = None;
    let mut target = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "module" => module = Some(value.into_owned()),
            "target" => target = Some(value.into_owned()),
            _ => {}
        }
    }
    let names = || {
        modules
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(module_name) = module else {
        return Err(bad(format!(
            "give module=NAME; the modules are {}",
            names()
        )));
    };
    let Some(module) = modules.iter().find(|m| m.name == module_name) else {
        return Err(bad(format!(
            "unknown module {module_name}; the modules are {}",
            names()
        )));
    };
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        return Err(bad(format!(
            "give target=…, the {} of module {module_name}",
            module.target
        )));
    };
    let mut config = module.config.clone();
    if let Some(header) = scrape_timeout {
        let scrape = match header.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > SCRAPE_OFFSET.as_secs_f64() => {
                Duration::from_secs_f64(s) - SCRAPE_OFFSET
            }
            _ => {
                return Err(bad(format!(
                    "X-Prometheus-Scrape-Timeout-Seconds: {header}: expected more than {} seconds",
                    SCRAPE_OFFSET.as_secs_f64()
                )));
            }
        };
        config.limits.timeout = config.limits.timeout.min(scrape);
    }
    let mut params: Vec<(String, String)> = module
        .params
        .iter()
        .filter(|(k, _)| *k != module.target)
        .cloned()
        .collect();
    params.push((module.target.clone(), target));
    Ok(ProbeRequest {
        source: module.source.clone(),
        params,
        config,
    })
}

impl ProbeRequest {
    /// Runs the probe on `probes` (see [`run_by_the_clock`]) and answers with
    /// `probe_success`, `probe_duration_seconds`, blackbox_exporter's metrics of what the
    /// probe measured and its other numeric details, as gauges.
    pub async fn answer(self, probes: &tokio::runtime::Handle, runner: Arc<Runner>) -> Answer {
        let start = Instant::now();
        let bundled = match &self.source {
            ProbeSource::Bundled(b) => Some(b.name),
            ProbeSource::File(_) | ProbeSource::Oci(_) => None,
        };
        let report = run_by_the_clock(probes, runner, self.source, self.params, self.config).await;
        gauges(&report, start.elapsed(), bundled)
    }
}

/// A `/probe` answer for `report`, a run of `bundled` (the module's bundled probe, if it is
/// one) that took `took`: the verdict as a comment, then the gauges.
fn gauges(report: &Report, took: Duration, bundled: Option<&str>) -> Answer {
    // The verdict, for a person reading the answer; Prometheus skips comments.
    let verdict = format!(
        "# {}\n",
        text::one_line(&crate::output::render(report, crate::output::Format::Text))
    );
    match super::blackbox::registry(report, took, bundled).and_then(|r| encode(&r)) {
        Ok(text) => (200, METRICS, verdict + &text),
        Err(e) => (500, TEXT, format!("cannot write the metrics: {e}\n")),
    }
}
