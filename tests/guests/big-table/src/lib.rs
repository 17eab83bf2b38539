//! A probe whose function table is larger than the host allows: instantiation must fail
//! with the table limit, not crash or run.

use healthprobe_sdk::{Budget, CheckError, CheckResult, Params, Probe, ProbeInfo};

struct BigTable;

impl Probe for BigTable {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "big-table",
            "0.0.0",
            "Has a huge function table (test only).",
        )
    }

    fn check(_params: &Params, _budget: Budget) -> Result<CheckResult, CheckError> {
        // An indirect call keeps a function pointer, so the table is really used.
        let f: fn() -> &'static str = std::hint::black_box(|| "ran");
        Ok(CheckResult::healthy(f()))
    }
}

healthprobe_sdk::export_probe!(BigTable);
