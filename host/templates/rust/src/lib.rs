//! {{name}}: a healthprobe probe. Sends one GET through the host's HTTP client and checks
//! the status code.
//!
//! ```sh
//! healthprobe run target/wasm32-wasip2/release/{{crate}}.wasm url=http://127.0.0.1:8080/health
//! ```

use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo, http};

struct ThisProbe;

impl Probe for ThisProbe {
    fn describe() -> ProbeInfo {
        ProbeInfo::new("{{name}}", env!("CARGO_PKG_VERSION"), "Checks that a URL answers with the expected status.")
            .param(ParamSpec::required(
                "url",
                "The URL to request, for example http://127.0.0.1:8080/health.",
            ))
            .param(
                ParamSpec::optional("expect-status", "The status code that means healthy, for example 204.")
                    .default("200"),
            )
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        // A bad value is the operator's mistake: an error naming the parameter (exit 3).
        let url = params.required_str("url")?;
        let expected = params.required_parse("expect-status", |v| {
            v.parse::<u16>().map_err(|_| "expected a status code such as 200".to_string())
        })?;
        // No answer at all is a verdict too: unhealthy, with the host's reason.
        let response = match http::Request::get(url).timeout(budget.remaining()).send() {
            Ok(response) => response,
            Err(e) => return Ok(CheckResult::unhealthy(format!("{url}: {e}"))),
        };
        Ok(verdict(url, response.status, expected).detail("status", response.status))
    }
}

/// The verdict for a status: the check's logic, apart from any I/O, so it is tested natively.
fn verdict(url: &str, status: u16, expected: u16) -> CheckResult {
    if status == expected {
        CheckResult::healthy(format!("HTTP {status} from {url}"))
    } else {
        CheckResult::unhealthy(format!("HTTP {status} from {url} (expected {expected})"))
    }
}

healthprobe_sdk::export_probe!(ThisProbe);

// `cargo test` runs these natively, on the build machine.
#[cfg(test)]
mod tests {
    use super::*;
    use healthprobe_sdk::Status;
    use healthprobe_sdk::testing::{assert_documented, invalid_param, params};

    #[test]
    fn the_expected_status_is_healthy_any_other_is_not() {
        assert_eq!(verdict("u", 200, 200).status, Status::Healthy);
        let r = verdict("http://x/health", 503, 200);
        assert_eq!(r.status, Status::Unhealthy);
        assert_eq!(r.message, "HTTP 503 from http://x/health (expected 200)");
    }

    #[test]
    fn parameters_are_documented_and_checked() {
        let info = ThisProbe::describe();
        assert_documented(&info, &["url", "expect-status"]);
        let p = params([("url", "http://x/"), ("expect-status", "OK")], &info);
        let (name, reason) = invalid_param(ThisProbe::check(&p, Budget::new(1_000)));
        assert_eq!((name.as_str(), reason.as_str()), ("expect-status", "expected a status code such as 200"));
    }
}
