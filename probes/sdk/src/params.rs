//! Typed access to the operator's parameters.

use std::time::Duration;

use crate::{CheckError, Pair, ParamSpec};

/// The parameters of one check: the `name=value` pairs given by the operator,
/// and the declared default of every parameter that was not given.
///
/// The host fills in the [`ParamSpec::default()`] values of
/// [`Probe::describe`](crate::Probe::describe) and says which it filled in, so
/// [`Params::contains`] still tells a default from the operator's value; in a native test
/// [`Params::with_defaults`] does the same. So a default is declared once, in `describe`,
/// and a parameter that has one is always there:
///
/// ```
/// # use healthprobe_sdk::{ParamSpec, Params, parse_duration};
/// # use std::time::Duration;
/// let specs = [ParamSpec::optional("wait", "How long to wait.").default("1s")];
/// let given = Params::from_pairs([("wait", "1.5s")]).with_defaults(&specs);
/// assert_eq!(given.required_parse("wait", parse_duration)?, Duration::from_millis(1500));
/// let absent = Params::default().with_defaults(&specs);
/// assert_eq!(absent.str("wait"), Some("1s"));
/// assert_eq!(absent.required_parse("wait", parse_duration)?, Duration::from_secs(1));
/// # Ok::<(), healthprobe_sdk::CheckError>(())
/// ```
///
/// Every typed getter returns `Ok(None)` when the parameter is absent (neither
/// given nor defaulted) and [`CheckError::InvalidParam`] (with a reason saying
/// what was expected) when its value does not parse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<Pair>,
    /// The declared defaults of the parameters not in `pairs`.
    defaults: Vec<Pair>,
}

impl Params {
    /// Wrap the pairs passed to `check`, without defaults (see [`Params::with_defaults`]).
    pub fn new(pairs: Vec<Pair>) -> Self {
        Params {
            pairs,
            defaults: Vec::new(),
        }
    }

    /// The parameters as the host passes them to `check`: the operator's values followed
    /// by the declared defaults it filled in, which `defaulted` names.
    pub fn from_host(params: Vec<Pair>, defaulted: &[String]) -> Self {
        let (defaults, pairs) = params
            .into_iter()
            .partition(|(name, _)| defaulted.contains(name));
        Params { pairs, defaults }
    }

    /// Build parameters from `(name, value)` pairs, for example in tests.
    ///
    /// Add the probe's defaults as [`export_probe!`](crate::export_probe) does with
    /// `.with_defaults(&MyProbe::describe().params)`.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        Params::new(
            pairs
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        )
    }

    /// Fill in the [`ParamSpec::default()`] of every parameter in `specs` that was not given.
    ///
    /// The host does this before calling [`Probe::check`](crate::Probe::check); a native
    /// test does it with `.with_defaults(&MyProbe::describe().params)`. A parameter given or
    /// already defaulted is left as it is.
    pub fn with_defaults(mut self, specs: &[ParamSpec]) -> Self {
        let missing: Vec<Pair> = specs
            .iter()
            .filter(|spec| !self.contains(&spec.name))
            .filter(|spec| !self.defaults.iter().any(|(name, _)| *name == spec.name))
            .filter_map(|spec| Some((spec.name.clone(), spec.default.clone()?)))
            .collect();
        self.defaults.extend(missing);
        self
    }

    /// The pairs the operator gave, in the order given (without filled-in defaults).
    pub fn pairs(&self) -> &[Pair] {
        &self.pairs
    }

    /// Whether the operator gave the parameter; a filled-in default does not count.
    pub fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    /// The value of `name` (its first occurrence), or its default, if any.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .chain(&self.defaults)
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, or [`CheckError::InvalidParam`] if it has none.
    ///
    /// A parameter with a declared default always has a value.
    pub fn required_str(&self, name: &str) -> Result<&str, CheckError> {
        self.str(name)
            .ok_or_else(|| CheckError::invalid_param(name, "is required but was not given"))
    }

    /// The value of `name`, or `default` if it has none.
    ///
    /// For a default that is not a fixed value (one that [`ParamSpec::default()`]
    /// cannot declare), such as another parameter's value.
    pub fn string_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.str(name).unwrap_or(default)
    }

    /// Every value of a repeatable parameter, in the order given, or its default if not given.
    pub fn list(&self, name: &str) -> Vec<&str> {
        let given = if self.contains(name) {
            &self.pairs
        } else {
            &self.defaults
        };
        given
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A signed integer such as `-3` or `42`.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, CheckError> {
        self.parse(name, |v| {
            v.parse::<i64>()
                .map_err(|_| format!("expected an integer, got '{v}'"))
        })
    }

    /// A non-negative integer such as `0` or `6379`.
    pub fn u64(&self, name: &str) -> Result<Option<u64>, CheckError> {
        self.parse(name, |v| {
            v.parse::<u64>()
                .map_err(|_| format!("expected a non-negative integer, got '{v}'"))
        })
    }

    /// A duration such as `500ms`, `2s`, `1.5s`, `1m` or `1h 30m` (see [`parse_duration`]).
    pub fn duration(&self, name: &str) -> Result<Option<Duration>, CheckError> {
        self.parse(name, parse_duration)
    }

    /// A boolean: `true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0` (see [`parse_bool`]).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, CheckError> {
        self.parse(name, parse_bool)
    }

    /// Parse the value of `name` with `parse`, whose error is the reason shown to the operator.
    pub fn parse<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, CheckError> {
        match self.str(name) {
            None => Ok(None),
            Some(v) => parse(v.trim())
                .map(Some)
                .map_err(|reason| CheckError::invalid_param(name, reason)),
        }
    }

    /// Parse the value of `name` with `parse`, or [`CheckError::InvalidParam`] if it has none.
    ///
    /// For a parameter with a declared default, which always has a value.
    pub fn required_parse<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, CheckError> {
        self.parse(name, parse)?
            .ok_or_else(|| CheckError::invalid_param(name, "is required but was not given"))
    }
}

impl From<Vec<Pair>> for Params {
    fn from(pairs: Vec<Pair>) -> Self {
        Params::new(pairs)
    }
}

/// Parse a duration such as `500ms`, `2s`, `1.5s`, `1m` or `1h 30m`.
///
/// A unit is required: a bare `5` is refused because it is ambiguous.
/// The error is a reason for the operator.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let expected = || format!("expected a duration like 500ms or 2s, got '{text}'");
    if text.is_empty() || text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(expected());
    }
    humantime::parse_duration(text).map_err(|_| expected())
}

/// Parse a boolean: `true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0` (any case).
///
/// The error is a reason for the operator.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!(
            "expected true/false, yes/no or 1/0, got '{}'",
            text.trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamProblem;

    fn problem(e: CheckError) -> ParamProblem {
        match e {
            CheckError::InvalidParam(p) => p,
            other => panic!("expected InvalidParam, got {other:?}"),
        }
    }

    #[test]
    fn strings_and_lists() {
        let p = Params::from_pairs([("url", "http://x"), ("header", "A: 1"), ("header", "B:2")]);
        assert_eq!(p.str("url"), Some("http://x"));
        assert_eq!(p.str("nope"), None);
        assert_eq!(p.required_str("url").unwrap(), "http://x");
        let e = problem(p.required_str("method").unwrap_err());
        assert_eq!(e.name, "method");
        assert_eq!(p.string_or("method", "GET"), "GET");
        assert_eq!(p.list("header"), vec!["A: 1", "B:2"]);
        assert!(p.list("none").is_empty());
        assert!(p.contains("url"));
    }

    fn specs() -> Vec<ParamSpec> {
        vec![
            ParamSpec::required("url", "URL to request."),
            ParamSpec::optional("method", "Request method.").default("GET"),
            ParamSpec::optional("header", "Request header.")
                .default("Accept: */*")
                .repeatable(),
            ParamSpec::optional("body", "Request body."),
            ParamSpec::optional("follow", "Whether to follow redirects.").default("yes"),
        ]
    }

    #[test]
    fn defaults_fill_in_what_was_not_given() {
        let p = Params::from_pairs([("url", "http://x")]).with_defaults(&specs());
        assert_eq!(p.str("method"), Some("GET"));
        assert_eq!(p.required_str("method").unwrap(), "GET");
        assert_eq!(p.list("header"), ["Accept: */*"]);
        assert_eq!(p.bool("follow").unwrap(), Some(true));
        assert!(p.required_parse("follow", parse_bool).unwrap());
        // The operator did not give them, and a probe may need to know that.
        assert!(!p.contains("method"));
        assert_eq!(p.pairs(), [("url".to_string(), "http://x".to_string())]);
    }

    #[test]
    fn given_values_win_over_defaults() {
        let p = Params::from_pairs([
            ("method", "HEAD"),
            ("header", "A: 1"),
            ("follow", "no"),
            ("header", "B: 2"),
        ])
        .with_defaults(&specs());
        assert_eq!(p.str("method"), Some("HEAD"));
        assert_eq!(p.list("header"), ["A: 1", "B: 2"]);
        assert!(!p.required_parse("follow", parse_bool).unwrap());
        let p = Params::from_pairs([("method", "")]).with_defaults(&specs());
        assert_eq!(p.str("method"), Some(""));
        // A malformed value is the operator's error, not replaced by the default.
        let p = Params::from_pairs([("follow", "maybe")]).with_defaults(&specs());
        let e = problem(p.required_parse("follow", parse_bool).unwrap_err());
        assert_eq!(e.reason, "expected true/false, yes/no or 1/0, got 'maybe'");
    }

    #[test]
    fn parameters_without_a_default_stay_absent() {
        let p = Params::default().with_defaults(&specs());
        assert_eq!(p.str("body"), None);
        assert!(p.list("body").is_empty());
        assert!(!p.contains("body"));
        let e = problem(p.required_str("url").unwrap_err());
        assert_eq!(
            (e.name.as_str(), e.reason.as_str()),
            ("url", "is required but was not given")
        );
        let e = problem(
            Params::default()
                .required_parse("follow", parse_bool)
                .unwrap_err(),
        );
        assert_eq!(e.name, "follow");
    }

    #[test]
    fn numbers() {
        let p = Params::from_pairs([("a", "-3"), ("b", "42"), ("c", "x1")]);
        assert_eq!(p.integer("a").unwrap(), Some(-3));
        assert_eq!(p.u64("b").unwrap(), Some(42));
        assert_eq!(p.u64("missing").unwrap(), None);
        let e = problem(p.u64("a").unwrap_err());
        assert_eq!(e.reason, "expected a non-negative integer, got '-3'");
        let e = problem(p.integer("c").unwrap_err());
        assert_eq!(
            (e.name.as_str(), e.reason.as_str()),
            ("c", "expected an integer, got 'x1'")
        );
    }

    #[test]
    fn durations() {
        for (text, ms) in [
            ("500ms", 500),
            ("2s", 2000),
            ("1m", 60_000),
            ("1.5s", 1500),
            ("1h 30m", 5_400_000),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for text in ["abc", "", "5", "1.5", "-2s", "2 parsecs"] {
            let err = parse_duration(text).unwrap_err();
            assert!(
                err.starts_with("expected a duration like 500ms or 2s"),
                "{text}: {err}"
            );
        }
        let p = Params::from_pairs([("t", "abc")]);
        let e = problem(p.duration("t").unwrap_err());
        assert_eq!(e.reason, "expected a duration like 500ms or 2s, got 'abc'");
    }

    #[test]
    fn bools() {
        for t in ["true", "YES", "1", "on"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["false", "No", "0", "off"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        let p = Params::from_pairs([("f", "maybe")]);
        let e = problem(p.bool("f").unwrap_err());
        assert_eq!(e.reason, "expected true/false, yes/no or 1/0, got 'maybe'");
    }
}
