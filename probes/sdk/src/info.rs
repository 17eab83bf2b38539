//! Builders for the WIT records a probe returns.

use std::fmt::Display;

use crate::{CheckError, CheckResult, ParamProblem, ParamSpec, ProbeInfo, Status};

impl ProbeInfo {
    /// A probe description with no parameters yet; add them with [`ProbeInfo::param`].
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        ProbeInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            params: Vec::new(),
        }
    }

    /// Add one accepted parameter.
    pub fn param(mut self, spec: ParamSpec) -> Self {
        self.params.push(spec);
        self
    }

    /// Add several, such as [`crate::tcp::Tls::params`].
    pub fn params(mut self, specs: impl IntoIterator<Item = ParamSpec>) -> Self {
        self.params.extend(specs);
        self
    }
}

impl ParamSpec {
    /// A parameter the check cannot run without.
    pub fn required(name: impl Into<String>, description: impl Into<String>) -> Self {
        ParamSpec {
            name: name.into(),
            description: description.into(),
            required: true,
            default: None,
            repeatable: false,
        }
    }

    /// A parameter that may be left out.
    pub fn optional(name: impl Into<String>, description: impl Into<String>) -> Self {
        ParamSpec {
            required: false,
            ..ParamSpec::required(name, description)
        }
    }

    /// The value used when the parameter is not given, as shown to operators.
    ///
    /// The SDK fills it in before [`crate::Probe::check`] runs, so the probe reads
    /// it like a given value (for example with [`crate::Params::required_str`])
    /// and does not repeat it. A default that is not a fixed value, such as
    /// another parameter's value, cannot be declared here: describe it in the
    /// description and apply it in `check`.
    pub fn default(mut self, value: impl Into<String>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// Allow the parameter to be given more than once (read it with [`crate::Params::list`]).
    pub fn repeatable(mut self) -> Self {
        self.repeatable = true;
        self
    }
}

impl CheckResult {
    /// A result with the given verdict and one-line message and no details.
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        CheckResult {
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// The service works as expected.
    pub fn healthy(message: impl Into<String>) -> Self {
        Self::new(Status::Healthy, message)
    }

    /// The service works but something is off (counted as healthy, with a warning).
    pub fn degraded(message: impl Into<String>) -> Self {
        Self::new(Status::Degraded, message)
    }

    /// The service does not work.
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self::new(Status::Unhealthy, message)
    }

    /// Add a detail (shown with `--format json`), for example `.detail("status", 200)`.
    pub fn detail(mut self, name: impl Into<String>, value: impl Display) -> Self {
        self.details.push((name.into(), value.to_string()));
        self
    }

    /// The value of the first detail called `name`.
    pub fn get_detail(&self, name: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl CheckError {
    /// A parameter value is malformed; `reason` says what was expected.
    pub fn invalid_param(name: impl Into<String>, reason: impl Into<String>) -> Self {
        CheckError::InvalidParam(ParamProblem {
            name: name.into(),
            reason: reason.into(),
        })
    }

    /// The parameters are inconsistent with each other or otherwise unusable.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        CheckError::InvalidConfig(message.into())
    }
}
