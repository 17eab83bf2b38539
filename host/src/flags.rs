//! Flag groups shared by several commands (as wasmtime's CLI shares its option groups),
//! and the parsers of their values.
//!
//! Each cap and grant is declared once, here: the same field is a flag (clap) and a key of
//! a `--policy` file or a checks file's table (serde, through [`crate::policy`]), parsed by
//! the same function, documented by the same comment (the flag's help). A new cap is one
//! field here and its use where the run is set up ([`crate::settings`] or
//! [`crate::sandbox::grants`]); the compiler points at [`LimitArgs::or`] and the other
//! merges, which build their structs field by field. A caller without a command line
//! passes the groups' defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::output::Format;
use crate::sandbox::network::Grant;
use crate::text;

/// Caps on a run. Each overrides the policy file, which overrides the default.
#[derive(Debug, Clone, PartialEq, Args, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct LimitArgs {
    /// Deadline for the whole run, host calls included (`500ms`, `2s`, `1m`) [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(deserialize_with = "de::duration")]
    pub timeout: Option<Duration>,

    /// WebAssembly fuel: roughly the number of instructions the probe may execute
    /// [default: 10000000000].
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,

    /// Largest size of each linear memory of the probe (`64MiB`, `512KiB`) [default: 64MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    #[serde(deserialize_with = "de::size")]
    pub max_memory: Option<u64>,

    /// Sockets (TCP and UDP) the probe may hold open at once [default: 100].
    #[arg(long, value_name = "N")]
    pub max_sockets: Option<usize>,

    /// Read from a file's table as a group of its own (see [`crate::policy`]).
    #[command(flatten)]
    #[serde(skip)]
    pub code: CodeLimitArgs,
}

impl LimitArgs {
    /// These caps, with what they leave out taken from `under` (the flags over a policy
    /// file, a check over the checks file's defaults).
    pub fn or(self, under: Self) -> Self {
        Self {
            timeout: self.timeout.or(under.timeout),
            fuel: self.fuel.or(under.fuel),
            max_memory: self.max_memory.or(under.max_memory),
            max_sockets: self.max_sockets.or(under.max_sockets),
            code: self.code.or(under.code),
        }
    }
}

/// Caps on the probe file and its code, checked before anything is compiled.
#[derive(Debug, Clone, PartialEq, Args, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct CodeLimitArgs {
    /// Largest probe file, `.wasm` or `.cwasm` [default: 64MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    #[serde(deserialize_with = "de::size")]
    pub max_size: Option<u64>,

    /// Largest function in a component to compile, in bytes of WebAssembly code; compiling
    /// memory grows with it [default: 512KiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    #[serde(deserialize_with = "de::size")]
    pub max_function_size: Option<u64>,

    /// Largest sum of all functions in a component to compile, in bytes of WebAssembly
    /// code; the compiled code is kept in memory [default: 16MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    #[serde(deserialize_with = "de::size")]
    pub max_code_size: Option<u64>,
}

impl CodeLimitArgs {
    /// These caps over `under`'s, as [`LimitArgs::or`].
    pub fn or(self, under: Self) -> Self {
        Self {
            max_size: self.max_size.or(under.max_size),
            max_function_size: self.max_function_size.or(under.max_function_size),
            max_code_size: self.max_code_size.or(under.max_code_size),
        }
    }

    /// These caps alone, the others left to the policy file and the defaults (for the
    /// commands that compile but do not run).
    pub fn limits(&self) -> LimitArgs {
        LimitArgs {
            code: self.clone(),
            ..LimitArgs::default()
        }
    }
}

/// What the probe is granted. Everything is denied unless granted here (or in the policy
/// file), except TCP and HTTP to loopback. A list given replaces the one under it (a file
/// may give an empty list: `allow-net = []` denies all network).
#[derive(Debug, Clone, PartialEq, Args, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct GrantArgs {
    /// Allow TCP, HTTP and name lookups to HOST, HOST:PORT, IP, IP:PORT, CIDR, *:PORT or *
    /// (repeatable). Replaces the default, loopback only (127.0.0.0/8, ::1, localhost).
    #[arg(long, value_name = "PATTERN")]
    #[serde(deserialize_with = "de::parsed_list")]
    pub allow_net: Option<Vec<Grant>>,

    /// Allow UDP to the same kinds of patterns (repeatable); UDP is off by default.
    #[arg(long, value_name = "PATTERN")]
    #[serde(deserialize_with = "de::parsed_list")]
    pub allow_udp: Option<Vec<Grant>>,

    /// Let the probe read directory PATH (read-only, at the same path) (repeatable).
    #[arg(long, value_name = "PATH")]
    pub allow_read: Option<Vec<PathBuf>>,

    /// Pass environment variable NAME (its current value) or set NAME=VALUE (repeatable).
    #[arg(long, value_name = "NAME[=VALUE]")]
    pub env: Option<Vec<String>>,

    /// Allow TLS without certificate verification: HTTP requests that ask for it, and
    /// every wasi:http and wasi:tls connection (which cannot ask).
    // A flag that takes no value and is absent (None) unless given, so that a file's
    // `false` can still override the defaults' `true`.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub allow_insecure_tls: Option<bool>,

    /// Trust the CA certificates in FILE (PEM) for the probe's TLS connections, instead of
    /// the built-in Mozilla roots.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// Present the certificate in FILE (PEM, the chain from the leaf) when a server asks
    /// for one (mutual TLS); needs --tls-client-key. The probe never sees the key.
    #[arg(long, value_name = "FILE")]
    pub tls_client_cert: Option<PathBuf>,

    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-client-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_client_key: Option<PathBuf>,
}

impl GrantArgs {
    /// These grants over `under`'s, list by list, as [`LimitArgs::or`].
    pub fn or(self, under: Self) -> Self {
        Self {
            allow_net: self.allow_net.or(under.allow_net),
            allow_udp: self.allow_udp.or(under.allow_udp),
            allow_read: self.allow_read.or(under.allow_read),
            env: self.env.or(under.env),
            allow_insecure_tls: self.allow_insecure_tls.or(under.allow_insecure_tls),
            tls_ca: self.tls_ca.or(under.tls_ca),
            tls_client_cert: self.tls_client_cert.or(under.tls_client_cert),
            tls_client_key: self.tls_client_key.or(under.tls_client_key),
        }
    }
}

/// Where a `.wasm` probe's compiled code is kept between runs (bundled probes and
/// `.cwasm` files need no compiling).
#[derive(Debug, Args, Default)]
pub struct CacheArgs {
    #[command(flatten)]
    pub dir: CacheDirArgs,

    /// Compile `.wasm` probes in memory every time, without the cache.
    #[arg(long)]
    pub no_cache: bool,
}

/// The cache's directory, where pulled `oci://` probes are kept too.
#[derive(Debug, Args, Default)]
pub struct CacheDirArgs {
    /// Keep compiled `.wasm` probes, and pulled `oci://` probes, in DIR [default:
    /// $HEALTHPROBE_CACHE_DIR, else the platform cache directory, such as
    /// ~/.cache/healthprobe]; if it cannot be written, a probe is compiled in memory.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl CacheDirArgs {
    /// The directory: `--cache-dir`, else the environment variable (empty counts as
    /// unset), else the platform's cache directory.
    #[cfg(feature = "compiler")]
    pub fn dir(&self) -> Option<PathBuf> {
        use crate::cache::{Cache, ENV};
        let from_env = std::env::var_os(ENV)
            .filter(|v| !v.is_empty())
            .map(Into::into);
        self.cache_dir
            .clone()
            .or(from_env)
            .or_else(|| Cache::platform().map(|c| c.dir().to_path_buf()))
    }

    /// No cache, so no directory, without a compiler.
    #[cfg(not(feature = "compiler"))]
    pub fn dir(&self) -> Option<PathBuf> {
        None
    }

    /// What the operator allows of `oci://` probes: tags with `oci.allow_tags`, and the
    /// store in this directory.
    pub fn oci(&self, oci: &OciArgs) -> crate::oci::Access {
        #[cfg(feature = "compiler")]
        return crate::oci::Access {
            store: self.dir().map(|d| crate::oci::Store::new(&d)),
            allow_tags: oci.allow_tags,
        };
        #[cfg(not(feature = "compiler"))]
        {
            let _ = oci;
            crate::oci::Access
        }
    }
}

impl CacheArgs {
    /// The compile cache the options ask for: none with `--no-cache`, else in
    /// [`CacheDirArgs::dir`].
    #[cfg(feature = "compiler")]
    pub fn cache(&self) -> Option<crate::cache::Cache> {
        if self.no_cache {
            return None;
        }
        self.dir.dir().map(crate::cache::Cache::new)
    }

    /// See [`CacheDirArgs::oci`].
    pub fn oci(&self, oci: &OciArgs) -> crate::oci::Access {
        self.dir.oci(oci)
    }

    /// The compile cache for `sources`, with file writes confined (Landlock) to its
    /// directory, created if missing: the only place a command that runs or inspects a
    /// probe writes to, and only when a probe is a component file to compile, or `pulls`
    /// (the store of pulled probes is there). Call it before the command's first thread
    /// starts, so every thread inherits the rules.
    #[cfg(feature = "compiler")]
    pub fn open<'a>(
        &self,
        sources: impl IntoIterator<Item = &'a crate::runner::ProbeSource>,
        pulls: bool,
    ) -> crate::runner::CacheHandle {
        use crate::runner::ProbeSource;
        let cache = self.cache();
        let compiles = sources
            .into_iter()
            .any(|s| matches!(s, ProbeSource::File(_) | ProbeSource::Oci(_)));
        let dir = self
            .dir
            .dir()
            .filter(|_| (compiles && cache.is_some()) || pulls);
        let writable = dir
            .as_deref()
            .filter(|d| std::fs::create_dir_all(d).is_ok());
        crate::confine::limit_writes(writable.as_slice());
        crate::runner::CacheHandle::new(cache)
    }

    /// Without a compiler there is no cache, and a command that runs or inspects a probe
    /// writes nothing.
    #[cfg(not(feature = "compiler"))]
    pub fn open<'a>(
        &self,
        _sources: impl IntoIterator<Item = &'a crate::runner::ProbeSource>,
        _pulls: bool,
    ) -> crate::runner::CacheHandle {
        crate::confine::limit_writes(&[]);
        crate::runner::CacheHandle::default()
    }
}

/// Where `oci://` probes may come from, for the commands that run or read a probe.
#[derive(Debug, Clone, Args, Default)]
pub struct OciArgs {
    /// Pull `oci://` probes that are not stored yet (in the cache directory) before
    /// running them. Without it nothing contacts a registry, and a probe not pulled before
    /// (`healthprobe pull`) is refused.
    #[arg(long)]
    pub pull: bool,

    /// Accept `oci://` probes by tag: each is resolved at the registry (so it needs
    /// --pull) and the digest it resolved to is printed. Without it, only references
    /// pinned by digest (`@sha256:…`) are accepted.
    #[arg(long, requires = "pull")]
    pub allow_tags: bool,

    /// Trust this CA certificate (PEM) for registries, beside the system's CAs.
    #[arg(long, value_name = "FILE")]
    pub registry_ca: Option<PathBuf>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How registries are spoken to.
#[derive(Debug, Clone, Args, Default)]
pub struct RegistryArgs {
    /// Speak plain HTTP to the registry instead of HTTPS (for a registry on loopback or a
    /// private network): the probe's bytes are still checked against their digest.
    #[arg(long)]
    pub insecure_registry: bool,
}

/// A SHA-256 given as 64 hex digits, normalised to lower case.
pub fn parse_sha256(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "expected 64 hex digits, got '{}'",
            text::excerpt(s, 80)
        ))
    }
}

/// A duration like `500ms`, `2s` or `1m`, greater than zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration like 500ms, 2s or 1m"))?;
    if d.is_zero() {
        return Err("the timeout must be greater than zero".into());
    }
    Ok(d)
}

/// A size like `64MiB`, greater than zero.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = s
        .parse()
        .map_err(|e| format!("{e}; expected a size like 64MiB or 512KiB"))?;
    if size.as_u64() == 0 {
        return Err("the size must be greater than zero".into());
    }
    Ok(size.as_u64())
}

/// A file's values through the flags' parsers, so that a value means the same in both.
pub(crate) mod de {
    use std::str::FromStr;
    use std::time::Duration;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    /// Text parsed by `parse`, its error as serde's.
    fn parsed<'de, D: Deserializer<'de>, T>(
        d: D,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map(Some).map_err(D::Error::custom)
    }

    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        parsed(d, super::parse_duration)
    }

    pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        parsed(d, super::parse_size)
    }

    pub fn sha256<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        parsed(d, super::parse_sha256)
    }

    /// A list of texts, each parsed as clap parses the repeated flag.
    pub fn parsed_list<'de, D: Deserializer<'de>, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| s.parse().map_err(D::Error::custom))
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

/// The output format, for every command.
#[derive(Debug, Args, Default)]
pub struct FormatArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Output options of the commands that run a probe.
#[derive(Debug, Args)]
pub struct OutputArgs {
    #[command(flatten)]
    pub format: FormatArgs,

    /// Print nothing; only the exit status tells the result.
    #[arg(long, short, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Also print the probe's own stdout/stderr, its SHA-256 and timings (on stderr).
    #[arg(long, short)]
    pub verbose: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("abc").unwrap_err().contains("like 500ms"));
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert!(parse_size("lots").is_err());
    }
}
