//! The bundled `memcached` probe (placeholder while it is being written).

use healthprobe_sdk::{Budget, CheckError, CheckResult, Params, Probe, ProbeInfo};

struct Placeholder;

impl Probe for Placeholder {
    fn describe() -> ProbeInfo {
        ProbeInfo::new("memcached", env!("CARGO_PKG_VERSION"), "Not written yet.")
    }

    fn check(_params: &Params, _budget: Budget) -> Result<CheckResult, CheckError> {
        Err(CheckError::invalid_config("not written yet"))
    }
}

healthprobe_sdk::export_probe!(Placeholder);
