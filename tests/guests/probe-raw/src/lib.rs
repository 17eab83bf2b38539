//! A probe written against the repository's WIT with bare `wit-bindgen`, as a probe in
//! another language is: nothing but the host fills in its declared defaults, and it
//! returns one detail of each type.

wit_bindgen::generate!({ path: "../../../wit", world: "probe" });

use healthprobe::probe::types::{ParamSpec, Status, Value};

struct Raw;

fn spec(name: &str, default: Option<&str>) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        description: "A parameter.".into(),
        required: false,
        default: default.map(Into::into),
        repeatable: false,
    }
}

impl Guest for Raw {
    fn describe() -> ProbeInfo {
        ProbeInfo {
            name: "raw".into(),
            version: "0.0.0".into(),
            description: "Reports its parameters and one detail of each type.".into(),
            params: vec![spec("greeting", Some("hi")), spec("name", None)],
        }
    }

    fn check(
        params: Vec<(String, String)>,
        defaulted: Vec<String>,
        _budget_ms: u64,
    ) -> Result<Report, CheckError> {
        let seen: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Ok(Report {
            status: Status::Healthy,
            message: format!(
                "params: [{}] defaulted: [{}]",
                seen.join(" "),
                defaulted.join(" ")
            ),
            details: vec![
                ("text".into(), Value::Text("a b".into())),
                ("integer".into(), Value::Integer(-42)),
                ("number".into(), Value::Number(1.5)),
                ("flag".into(), Value::Flag(true)),
            ],
        })
    }
}

export!(Raw);
