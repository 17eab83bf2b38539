//! Command-line parameters (`KEY=VALUE`) and their validation against `describe`.

use crate::bindings::healthprobe::probe::types::ProbeInfo;

/// Splits `KEY=VALUE` at the first `=`; values may contain `=`.
pub fn parse_pair(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!(
            "expected a parameter as KEY=VALUE, got '{}'; run `healthprobe list` to see each probe's parameters",
            crate::text::excerpt(arg, 80)
        )),
    }
}

/// Checks the given parameters against the probe's own description: every name known,
/// every required one present, a non-repeatable one at most once.
pub fn validate(info: &ProbeInfo, args: &[(String, String)]) -> Result<(), String> {
    let known = || {
        info.params
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (name, _) in args {
        let Some(spec) = info.params.iter().find(|p| &p.name == name) else {
            return Err(format!(
                "unknown parameter '{}' for probe {}; known parameters: {}",
                crate::text::excerpt(name, 80),
                info.name,
                known()
            ));
        };
        if !spec.repeatable && args.iter().filter(|(n, _)| n == name).count() > 1 {
            return Err(format!(
                "parameter '{name}' given more than once; probe {} accepts it once",
                info.name
            ));
        }
    }
    for spec in info.params.iter().filter(|p| p.required) {
        if !args.iter().any(|(n, _)| n == &spec.name) {
            return Err(format!(
                "missing required parameter '{}' for probe {} ({}); give it as {}=VALUE",
                spec.name, info.name, spec.description, spec.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::healthprobe::probe::types::ParamSpec;

    fn info() -> ProbeInfo {
        let spec = |name: &str, required, repeatable| ParamSpec {
            name: name.into(),
            description: format!("the {name}"),
            required,
            default: None,
            repeatable,
        };
        ProbeInfo {
            name: "http".into(),
            version: "0.1.0".into(),
            description: "d".into(),
            params: vec![spec("url", true, false), spec("header", false, true)],
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn pairs_split_at_the_first_equals() {
        assert_eq!(
            parse_pair("expect-json=/a=b").unwrap(),
            ("expect-json".into(), "/a=b".into())
        );
        assert_eq!(parse_pair("body=").unwrap(), ("body".into(), String::new()));
        assert!(parse_pair("novalue").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_pair("=x").is_err());
    }

    #[test]
    fn validation_names_the_problem() {
        let i = info();
        assert!(
            validate(
                &i,
                &pairs(&[("url", "u"), ("header", "a:1"), ("header", "b:2")])
            )
            .is_ok()
        );
        let e = validate(&i, &pairs(&[("url", "u"), ("bogus", "1")])).unwrap_err();
        assert!(
            e.contains("unknown parameter 'bogus'") && e.contains("url, header"),
            "{e}"
        );
        let e = validate(&i, &pairs(&[])).unwrap_err();
        assert!(e.contains("missing required parameter 'url'"), "{e}");
        let e = validate(&i, &pairs(&[("url", "a"), ("url", "b")])).unwrap_err();
        assert!(e.contains("more than once"), "{e}");
    }
}
