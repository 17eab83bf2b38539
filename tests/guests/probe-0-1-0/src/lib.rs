//! A probe as built before `healthprobe:probe@0.1.1`, from that release's WIT (kept in
//! `wit/` here as it was): its `check` takes no list of defaulted parameters and returns
//! text details. The host must still run it unchanged, and fill in no defaults.

wit_bindgen::generate!({ path: "wit", world: "probe" });

use healthprobe::probe::types::{ParamSpec, Status};

struct Old;

impl Guest for Old {
    fn describe() -> ProbeInfo {
        ProbeInfo {
            name: "old".into(),
            version: "0.1.0".into(),
            description: "Reports the parameters it was given.".into(),
            params: vec![ParamSpec {
                name: "greeting".into(),
                description: "A parameter with a declared default.".into(),
                required: false,
                default: Some("hi".into()),
                repeatable: false,
            }],
        }
    }

    fn check(params: Vec<(String, String)>, _budget_ms: u64) -> Result<CheckResult, CheckError> {
        let given: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Ok(CheckResult {
            status: Status::Healthy,
            message: format!("given: [{}]", given.join(" ")),
            details: vec![("count".into(), params.len().to_string())],
        })
    }
}

export!(Old);
