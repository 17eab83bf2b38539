//! Flag groups shared by several commands (as wasmtime's CLI shares its option groups).
//! Each turns into the plain data [`crate::settings`] resolves, so nothing below the
//! command line depends on clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::output::Format;
use crate::sandbox::network::Grant;
use crate::settings::{self, GrantOverrides, LimitOverrides};

/// Caps on a run. Each overrides the policy file, which overrides the default.
#[derive(Debug, Args, Default)]
pub struct LimitArgs {
    /// Deadline for the whole run, host calls included (`500ms`, `2s`, `1m`) [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = settings::parse_duration)]
    pub timeout: Option<Duration>,

    /// WebAssembly fuel: roughly the number of instructions the probe may execute
    /// [default: 10000000000].
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,

    /// Largest size of each linear memory of the probe (`64MiB`, `512KiB`) [default: 64MiB].
    #[arg(long, value_name = "SIZE", value_parser = settings::parse_size)]
    pub max_memory: Option<u64>,

    /// Sockets (TCP and UDP) the probe may hold open at once [default: 100].
    #[arg(long, value_name = "N")]
    pub max_sockets: Option<usize>,

    #[command(flatten)]
    pub code: CodeLimitArgs,
}

/// Caps on the probe file and its code, checked before anything is compiled.
#[derive(Debug, Args, Default)]
pub struct CodeLimitArgs {
    /// Largest probe file, `.wasm` or `.cwasm` [default: 64MiB].
    #[arg(long, value_name = "SIZE", value_parser = settings::parse_size)]
    pub max_size: Option<u64>,

    /// Largest function in a component to compile, in bytes of WebAssembly code; compiling
    /// memory grows with it [default: 512KiB].
    #[arg(long, value_name = "SIZE", value_parser = settings::parse_size)]
    pub max_function_size: Option<u64>,

    /// Largest sum of all functions in a component to compile, in bytes of WebAssembly
    /// code; the compiled code is kept in memory [default: 16MiB].
    #[arg(long, value_name = "SIZE", value_parser = settings::parse_size)]
    pub max_code_size: Option<u64>,
}

impl CodeLimitArgs {
    /// The caps given on the command line (only these; other limits left to the policy
    /// file and the defaults).
    pub fn overrides(&self) -> LimitOverrides {
        LimitOverrides {
            max_size: self.max_size,
            max_function_size: self.max_function_size,
            max_code_size: self.max_code_size,
            ..LimitOverrides::default()
        }
    }
}

impl LimitArgs {
    /// The caps given on the command line.
    pub fn overrides(&self) -> LimitOverrides {
        LimitOverrides {
            timeout: self.timeout,
            fuel: self.fuel,
            max_memory: self.max_memory,
            max_sockets: self.max_sockets,
            max_size: self.code.max_size,
            max_function_size: self.code.max_function_size,
            max_code_size: self.code.max_code_size,
        }
    }
}

/// What the probe is granted. Everything is denied unless granted here (or in the policy
/// file), except TCP and HTTP to loopback.
#[derive(Debug, Args, Default)]
pub struct GrantArgs {
    /// Allow TCP, HTTP and name lookups to HOST, HOST:PORT, IP, IP:PORT, CIDR, *:PORT or *
    /// (repeatable). Replaces the default, loopback only (127.0.0.0/8, ::1, localhost).
    #[arg(long, value_name = "PATTERN")]
    pub allow_net: Vec<Grant>,

    /// Allow UDP to the same kinds of patterns (repeatable); UDP is off by default.
    #[arg(long, value_name = "PATTERN")]
    pub allow_udp: Vec<Grant>,

    /// Let the probe read directory PATH (read-only, at the same path) (repeatable).
    #[arg(long, value_name = "PATH")]
    pub allow_read: Vec<PathBuf>,

    /// Pass environment variable NAME (its current value) or set NAME=VALUE (repeatable).
    #[arg(long, value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,

    /// Allow TLS without certificate verification: HTTP requests that ask for it, and
    /// every wasi:http and wasi:tls connection (which cannot ask).
    #[arg(long)]
    pub allow_insecure_tls: bool,

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
    /// The grants given on the command line.
    pub fn overrides(&self) -> GrantOverrides {
        GrantOverrides {
            allow_net: self.allow_net.clone(),
            allow_udp: self.allow_udp.clone(),
            allow_read: self.allow_read.clone(),
            env: self.env.clone(),
            allow_insecure_tls: self.allow_insecure_tls,
            tls_ca: self.tls_ca.clone(),
            tls_client_cert: self.tls_client_cert.clone(),
            tls_client_key: self.tls_client_key.clone(),
        }
    }
}

/// Where a `.wasm` probe's compiled code is kept between runs (bundled probes and
/// `.cwasm` files need no compiling).
#[derive(Debug, Args, Default)]
pub struct CacheArgs {
    /// Keep compiled `.wasm` probes in DIR [default: $HEALTHPROBE_CACHE_DIR, else the
    /// platform cache directory, such as ~/.cache/healthprobe]; if it cannot be written,
    /// the probe is compiled in memory.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile `.wasm` probes in memory every time, without the cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl CacheArgs {
    /// The compile cache the options ask for: `--no-cache`, else `--cache-dir`, else the
    /// environment variable (empty counts as unset), else the platform's cache directory.
    #[cfg(feature = "compiler")]
    pub fn cache(&self) -> Option<crate::cache::Cache> {
        use crate::cache::{Cache, ENV};
        if self.no_cache {
            return None;
        }
        let from_env = std::env::var_os(ENV)
            .filter(|v| !v.is_empty())
            .map(Into::into);
        match self.cache_dir.clone().or(from_env) {
            Some(dir) => Some(Cache::new(dir)),
            None => Cache::platform(),
        }
    }

    /// The compile cache for `sources`, with file writes confined (Landlock) to its
    /// directory, created if missing: the only place a command that runs or inspects a
    /// probe writes to, and only when a probe is a component file to compile. Call it
    /// before the command's first thread starts, so every thread inherits the rules.
    #[cfg(feature = "compiler")]
    pub fn open<'a>(
        &self,
        sources: impl IntoIterator<Item = &'a crate::runner::ProbeSource>,
    ) -> crate::runner::CacheHandle {
        let cache = self.cache();
        let compiles = sources
            .into_iter()
            .any(|s| matches!(s, crate::runner::ProbeSource::File(_)));
        let writable = cache
            .as_ref()
            .filter(|_| compiles)
            .and_then(|c| std::fs::create_dir_all(c.dir()).ok().map(|()| c.dir()));
        crate::confine::limit_writes(writable.as_slice());
        crate::runner::CacheHandle::new(cache)
    }

    /// Without a compiler there is no cache, and a command that runs or inspects a probe
    /// writes nothing.
    #[cfg(not(feature = "compiler"))]
    pub fn open<'a>(
        &self,
        _sources: impl IntoIterator<Item = &'a crate::runner::ProbeSource>,
    ) -> crate::runner::CacheHandle {
        crate::confine::limit_writes(&[]);
        crate::runner::CacheHandle::default()
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
