//! `/probe`'s gauges, in blackbox_exporter's vocabulary: for the bundled probes that have a
//! blackbox prober counterpart (http, tcp, dns, grpc), the metric names, labels, units and
//! meanings blackbox_exporter gives what they measure, so that its dashboards and alert
//! rules work unchanged; every other numeric detail as `probe_<probe>_<detail>`, in base
//! units (a `…-ms` detail becomes `…_seconds`). What a probe cannot measure is left out,
//! never made up (the README's table says which).

use std::net::IpAddr;
use std::time::Duration;

use prometheus::{Gauge, GaugeVec, Opts, Registry};

use crate::activity::Exchange;
use crate::report::{
    Detail, Report, SSL_EXPIRY_DETAIL as SSL_EXPIRY, TLS_VERSION_DETAIL as TLS_VERSION, Verdict,
};

/// The gauges of one answer, registered as they are set.
struct Gauges {
    registry: Registry,
}

impl Gauges {
    fn set(&self, name: &str, help: &str, value: f64) -> prometheus::Result<()> {
        let gauge = Gauge::new(name, help)?;
        gauge.set(value);
        self.registry.register(Box::new(gauge))
    }

    /// A gauge with labels, one sample per set of label values.
    fn labelled(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        samples: &[(&[&str], f64)],
    ) -> prometheus::Result<()> {
        let vec = GaugeVec::new(Opts::new(name, help), labels)?;
        for (values, value) in samples {
            vec.with_label_values(values).set(*value);
        }
        self.registry.register(Box::new(vec))
    }
}

/// A report's details by name, each taken at most once: what a mapping uses is not
/// repeated under its generic name.
struct Details<'a> {
    details: Vec<(&'a str, &'a Detail)>,
}

impl<'a> Details<'a> {
    fn take(&mut self, name: &str) -> Option<&'a Detail> {
        let i = self.details.iter().position(|(n, _)| *n == name)?;
        Some(self.details.remove(i).1)
    }

    fn number(&mut self, name: &str) -> Option<f64> {
        self.take(name)?.as_f64()
    }

    fn text(&mut self, name: &str) -> Option<String> {
        self.take(name).map(ToString::to_string)
    }
}

/// The registry of a `/probe` answer: `probe_success` and `probe_duration_seconds`, the
/// blackbox metrics of `bundled` (the module's bundled probe, if it is one), and the
/// probe's other numeric details.
pub(super) fn registry(
    report: &Report,
    took: Duration,
    bundled: Option<&str>,
) -> prometheus::Result<Registry> {
    let gauges = Gauges {
        registry: Registry::new(),
    };
    let pass = matches!(report.verdict, Verdict::Healthy | Verdict::Degraded);
    gauges.set(
        "probe_success",
        "Displays whether or not the probe was a success",
        f64::from(u8::from(pass)),
    )?;
    gauges.set(
        "probe_duration_seconds",
        "Returns how long the probe took to complete in seconds",
        took.as_secs_f64(),
    )?;
    let mut details = Details {
        details: report
            .details
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect(),
    };
    // The host's own details are about the run, not the service (a count of dropped
    // details stays, as `probe_<probe>_details_dropped`).
    for host in ["cause", "limit", "denied"] {
        details.take(host);
    }
    match bundled {
        Some("http") => http(&gauges, report.http.as_ref(), &mut details)?,
        Some("tcp") => {
            ip_address(&gauges, report.connected.map(|a| a.ip()))?;
            // An expect step the server's answer did not match.
            let failed = details
                .take("error")
                .is_some_and(|e| e.to_string() == "no-match");
            gauges.set(
                "probe_failed_due_to_regex",
                "Indicates if probe failed due to regex",
                f64::from(u8::from(failed)),
            )?;
        }
        Some("dns") => dns(&gauges, pass, &mut details)?,
        Some("grpc") => {
            ip_address(&gauges, report.connected.map(|a| a.ip()))?;
            grpc(&gauges, &mut details)?;
        }
        _ => {}
    }
    tls(&gauges, &mut details)?;
    let prefix = crate::serve::metrics::metric_name(&report.probe);
    for (key, value) in details.details {
        let Some(mut number) = value.as_f64() else {
            continue;
        };
        let mut name = format!("probe_{prefix}_{}", crate::serve::metrics::metric_name(key));
        let mut help = format!("The {} probe's detail {key}", report.probe);
        // Base units, as Prometheus's conventions ask: seconds, not milliseconds.
        if let Some(stem) = name.strip_suffix("_ms") {
            name = format!("{stem}_seconds");
            number /= 1000.0;
            help.push_str(", in seconds");
        }
        // A detail whose name clashes with one already given is left out.
        let _ = gauges.set(&name, &help, number);
    }
    Ok(gauges.registry)
}

/// blackbox_exporter's `probe_ip_protocol` (4 or 6) and `probe_ip_addr_hash`, once an
/// address was chosen.
fn ip_address(gauges: &Gauges, address: Option<IpAddr>) -> prometheus::Result<()> {
    let Some(address) = address else {
        return Ok(());
    };
    gauges.set(
        "probe_ip_protocol",
        "Specifies whether probe ip protocol is IP4 or IP6",
        if address.is_ipv6() { 6.0 } else { 4.0 },
    )?;
    gauges.set(
        "probe_ip_addr_hash",
        "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
        f64::from(ip_hash(address)),
    )
}

/// blackbox_exporter's hash of an address: 32-bit FNV-1a over its 4 (IPv4) or 16 bytes.
fn ip_hash(address: IpAddr) -> u32 {
    let bytes = match address.to_canonical() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The http prober's metrics: every one blackbox_exporter always gives (0 when the probe
/// got no response, as blackbox's), then the ones it gives only when they apply.
fn http(
    gauges: &Gauges,
    exchange: Option<&Exchange>,
    details: &mut Details<'_>,
) -> prometheus::Result<()> {
    let none = Exchange::default();
    let x = exchange.unwrap_or(&none);
    let phase = |name: &'static str, d: Duration| (name, d.as_secs_f64());
    let phases = [
        phase("resolve", x.resolve),
        phase("connect", x.connect),
        phase("tls", x.tls_time),
        phase("processing", x.processing),
        phase("transfer", x.transfer),
    ];
    let samples: Vec<(&[&str], f64)> = phases
        .iter()
        .map(|(name, secs)| (std::slice::from_ref(name), *secs))
        .collect();
    gauges.labelled(
        "probe_http_duration_seconds",
        "Duration of http request by phase, summed over all redirects",
        &["phase"],
        &samples,
    )?;
    let status = details.number("status");
    // Go's ContentLength: -1 for a response that does not say, 0 for no response.
    let content_length = details
        .number("content-length")
        .unwrap_or(if status.is_some() { -1.0 } else { 0.0 });
    let body = details.number("body-bytes").unwrap_or(0.0);
    let regex = details.number("body-mismatch").unwrap_or(0.0);
    for (name, help, value) in [
        (
            "probe_http_content_length",
            "Length of http content response",
            content_length,
        ),
        (
            "probe_http_uncompressed_body_length",
            "Length of uncompressed response body",
            body,
        ),
        (
            "probe_http_redirects",
            "The number of redirects",
            f64::from(x.redirects),
        ),
        (
            "probe_http_ssl",
            "Indicates if SSL was used for the final redirect",
            f64::from(u8::from(x.ssl && x.tls.is_some())),
        ),
        (
            "probe_http_status_code",
            "Response HTTP status code",
            status.unwrap_or(0.0),
        ),
        (
            "probe_http_version",
            "Returns the version of HTTP of the probe response",
            x.version.unwrap_or(0.0),
        ),
        (
            "probe_failed_due_to_regex",
            "Indicates if probe failed due to regex",
            regex,
        ),
    ] {
        gauges.set(name, help, value)?;
    }
    if let Some(modified) = details.number("last-modified") {
        gauges.set(
            "probe_http_last_modified_timestamp_seconds",
            "Returns the Last-Modified HTTP response header in unixtime",
            modified,
        )?;
    }
    if let Some(exchange) = exchange {
        gauges.set(
            "probe_dns_lookup_time_seconds",
            "Returns the time taken for probe dns lookup in seconds",
            exchange.resolve.as_secs_f64(),
        )?;
        ip_address(gauges, exchange.address)?;
    }
    if let Some(tls) = exchange.and_then(|x| x.tls.as_ref()).filter(|_| x.ssl) {
        if let Some(leaf) = &tls.leaf {
            gauges.labelled(
                "probe_ssl_last_chain_info",
                "Contains SSL leaf certificate information",
                &[
                    "fingerprint_sha256",
                    "subject",
                    "issuer",
                    "subjectalternative",
                ],
                &[(
                    &[
                        &leaf.fingerprint_sha256,
                        &leaf.subject,
                        &leaf.issuer,
                        &leaf.subject_alternative,
                    ],
                    1.0,
                )],
            )?;
        }
        if let Some(expiry) = tls.earliest_expiry {
            // One chain, as the server sent it: its earliest expiry is the chain's.
            #[allow(clippy::cast_precision_loss)]
            gauges.set(
                "probe_ssl_last_chain_expiry_timestamp_seconds",
                "Returns last SSL chain expiry in timestamp",
                expiry as f64,
            )?;
        }
    }
    Ok(())
}

/// The dns prober's answer counts, from a lookup through the host's resolver.
fn dns(gauges: &Gauges, pass: bool, details: &mut Details<'_>) -> prometheus::Result<()> {
    let answers = details.number("count");
    gauges.set(
        "probe_dns_query_succeeded",
        "Displays whether or not the query was executed successfully",
        f64::from(u8::from(answers.is_some() || pass)),
    )?;
    gauges.set(
        "probe_dns_answer_rrs",
        "Returns number of entries in the answer resource record list",
        answers.unwrap_or(0.0),
    )
}

/// The grpc prober's status and serving status: every serving status is given, 1 for
/// the one the server answered (none when it did not), as blackbox_exporter does.
fn grpc(gauges: &Gauges, details: &mut Details<'_>) -> prometheus::Result<()> {
    let ssl = details.details.iter().any(|(k, _)| *k == TLS_VERSION);
    gauges.set(
        "probe_grpc_ssl",
        "Indicates if SSL was used for the connection",
        f64::from(u8::from(ssl)),
    )?;
    let serving = details.text("status");
    // The call's gRPC status: 0 (OK) when the health service answered; unknown (left out)
    // when no call was made.
    let code = details
        .number("grpc-status")
        .or(serving.as_ref().map(|_| 0.0));
    if let Some(code) = code {
        gauges.set("probe_grpc_status_code", "Response gRPC status code", code)?;
    }
    let statuses = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
    let samples: Vec<(&[&str], f64)> = statuses
        .iter()
        .map(|s| {
            let seen = serving.as_deref() == Some(*s);
            (std::slice::from_ref(s), f64::from(u8::from(seen)))
        })
        .collect();
    gauges.labelled(
        "probe_grpc_healthcheck_response",
        "Response HealthCheck response",
        &["serving_status"],
        &samples,
    )
}

/// The TLS metrics any probe gives through its details.
fn tls(gauges: &Gauges, details: &mut Details<'_>) -> prometheus::Result<()> {
    if let Some(expiry) = details.number(SSL_EXPIRY) {
        gauges.set(
            "probe_ssl_earliest_cert_expiry",
            "Returns last SSL chain expiry in unixtime",
            expiry,
        )?;
    }
    if let Some(version) = details.text(TLS_VERSION) {
        tls_version(gauges, &version)?;
    }
    Ok(())
}

/// `probe_tls_version_info`, with the version spelled as blackbox_exporter spells it
/// (`TLS 1.3`; the SDK's detail says `TLSv1.3`, as rustls does).
fn tls_version(gauges: &Gauges, version: &str) -> prometheus::Result<()> {
    let version = version.replace("TLSv", "TLS ");
    gauges.labelled(
        "probe_tls_version_info",
        "Returns the TLS version used or NaN when unknown",
        &["version"],
        &[(&[&version], 1.0)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_hash_as_blackbox_exporter_hashes_them() {
        // blackbox_exporter 0.23 answers probe_ip_addr_hash 3.668918509e+09 for 127.0.0.1.
        assert_eq!(ip_hash("127.0.0.1".parse().unwrap()), 3_668_918_509);
        assert_ne!(
            ip_hash("::1".parse().unwrap()),
            ip_hash("127.0.0.1".parse().unwrap())
        );
    }
}
