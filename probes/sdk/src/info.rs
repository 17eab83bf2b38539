//! Builders for the WIT records a probe returns.

use std::fmt::Display;

use crate::{CheckError, CheckResult, ParamProblem, ParamSpec, ProbeInfo, Status, Value};

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

    /// Add a detail (shown with `--format json`, and a gauge on `serve`'s `/probe` when it
    /// is a number), for example `.detail("status", 200)`: numbers and booleans keep
    /// their type, text is text. For any other value, pass its text
    /// (`.detail("age", humantime::format_duration(age).to_string())`).
    pub fn detail(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.details.push((name.into(), value.into()));
        self
    }

    /// The value of the first detail called `name`.
    pub fn detail_value(&self, name: &str) -> Option<&Value> {
        self.details.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The text of the first detail called `name`, if it is text.
    pub fn get_detail(&self, name: &str) -> Option<&str> {
        match self.detail_value(name)? {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
}

impl Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Text(t) => f.write_str(t),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::Flag(b) => write!(f, "{b}"),
        }
    }
}

impl From<&str> for Value {
    fn from(t: &str) -> Self {
        Value::Text(t.to_string())
    }
}

impl From<String> for Value {
    fn from(t: String) -> Self {
        Value::Text(t)
    }
}

impl From<&String> for Value {
    fn from(t: &String) -> Self {
        Value::Text(t.clone())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Flag(b)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

impl From<f32> for Value {
    fn from(n: f32) -> Self {
        Value::Number(n.into())
    }
}

/// Whole numbers that always fit an `s64`.
macro_rules! integer {
    ($($t:ty)*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self {
                Value::Integer(n.into())
            }
        }
    )*};
}
integer!(i8 i16 i32 i64 u8 u16 u32);

/// Whole numbers that may not fit an `s64`: a larger one is sent as a `number`.
macro_rules! wide_integer {
    ($($t:ty)*) => {$(
        impl From<$t> for Value {
            // Above 2^63 a detail is an approximation either way.
            #[allow(clippy::cast_precision_loss)]
            fn from(n: $t) -> Self {
                i64::try_from(n).map_or(Value::Number(n as f64), Value::Integer)
            }
        }
    )*};
}
wide_integer!(u64 usize u128 i128 isize);

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
