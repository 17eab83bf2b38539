//! `healthprobe inspect PROBE`: what a probe is, what it asks for, what it would get.

use std::process::ExitCode;

use wasmtime::component::Component;

use crate::cli::{InspectArgs, LimitArgs};
use crate::output::{self, Format};
use crate::policy::Grant;
use crate::runner::{self, Limits, ProbeSource, Runner};
use crate::sandbox::Sandbox;
use crate::settings;

/// A capability, as an operator thinks of it, with the imports that ask for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    /// `healthprobe:probe/http`.
    Http,
    /// `wasi:sockets/tcp`.
    Tcp,
    /// `wasi:sockets/udp`.
    Udp,
    /// `wasi:sockets/ip-name-lookup`.
    NameLookup,
    /// `wasi:filesystem/*`.
    Files,
    /// `wasi:cli/environment`.
    Environment,
    /// `wasi:cli/stdin`.
    Stdin,
    /// `wasi:cli/stdout`, `stderr`, terminals.
    Output,
    /// `wasi:clocks/*`.
    Clocks,
    /// `wasi:random/*`.
    Random,
}

impl Capability {
    /// Classifies an import by interface name (`wasi:sockets/tcp@0.2.6`); `None` for
    /// plumbing that grants nothing by itself (streams, polling, the network handle,
    /// shared types, exit).
    pub fn of_import(name: &str) -> Option<Result<Self, ()>> {
        let iface = name.split('@').next().unwrap_or(name);
        Some(Ok(match iface {
            "healthprobe:probe/http" => Capability::Http,
            "wasi:sockets/tcp" | "wasi:sockets/tcp-create-socket" => Capability::Tcp,
            "wasi:sockets/udp" | "wasi:sockets/udp-create-socket" => Capability::Udp,
            "wasi:sockets/ip-name-lookup" => Capability::NameLookup,
            "wasi:filesystem/types" | "wasi:filesystem/preopens" => Capability::Files,
            "wasi:cli/environment" => Capability::Environment,
            "wasi:cli/stdin" | "wasi:cli/terminal-stdin" => Capability::Stdin,
            "wasi:cli/stdout"
            | "wasi:cli/stderr"
            | "wasi:cli/terminal-stdout"
            | "wasi:cli/terminal-stderr"
            | "wasi:cli/terminal-input"
            | "wasi:cli/terminal-output" => Capability::Output,
            "wasi:clocks/monotonic-clock" | "wasi:clocks/wall-clock" => Capability::Clocks,
            "wasi:random/random" | "wasi:random/insecure" | "wasi:random/insecure-seed" => {
                Capability::Random
            }
            "healthprobe:probe/types"
            | "wasi:io/error"
            | "wasi:io/streams"
            | "wasi:io/poll"
            | "wasi:sockets/network"
            | "wasi:sockets/instance-network"
            | "wasi:cli/exit" => return None,
            _ => return Some(Err(())),
        }))
    }

    /// The capability in words.
    pub fn describe(self) -> &'static str {
        match self {
            Capability::Http => "HTTP requests (host client)",
            Capability::Tcp => "network: TCP connections",
            Capability::Udp => "network: UDP",
            Capability::NameLookup => "network: name lookup",
            Capability::Files => "files",
            Capability::Environment => "environment variables",
            Capability::Stdin => "standard input",
            Capability::Output => "standard output and error",
            Capability::Clocks => "clocks",
            Capability::Random => "random numbers",
        }
    }

    /// Short machine name for JSON.
    pub fn key(self) -> &'static str {
        match self {
            Capability::Http => "http",
            Capability::Tcp => "tcp",
            Capability::Udp => "udp",
            Capability::NameLookup => "name-lookup",
            Capability::Files => "files",
            Capability::Environment => "environment",
            Capability::Stdin => "stdin",
            Capability::Output => "output",
            Capability::Clocks => "clocks",
            Capability::Random => "random",
        }
    }

    /// Whether `sandbox` grants it, and what exactly.
    pub fn grant(self, sandbox: &Sandbox) -> (bool, String) {
        let list = |g: &[Grant]| {
            g.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let names = |g: &[Grant]| {
            g.iter()
                .filter_map(|g| match g {
                    Grant::Any => Some("*".to_string()),
                    Grant::Host(h, _) => Some(h.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        match self {
            Capability::Http | Capability::Tcp if sandbox.net.grants().is_empty() => {
                (false, "not granted (--allow-net)".into())
            }
            Capability::Http | Capability::Tcp => {
                (true, format!("to {}", list(sandbox.net.grants())))
            }
            Capability::Udp if sandbox.udp.grants().is_empty() => {
                (false, "not granted (--allow-udp)".into())
            }
            Capability::Udp => (true, format!("to {}", list(sandbox.udp.grants()))),
            Capability::NameLookup => {
                let mut n = names(sandbox.net.grants());
                n.extend(names(sandbox.udp.grants()));
                if n.is_empty() {
                    (
                        false,
                        "not granted (grant a host name with --allow-net)".into(),
                    )
                } else {
                    (true, format!("for {}", n.join(", ")))
                }
            }
            Capability::Files if sandbox.read.is_empty() => {
                (false, "not granted (--allow-read)".into())
            }
            Capability::Files => (
                true,
                format!(
                    "read-only: {}",
                    sandbox
                        .read
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Capability::Environment if sandbox.env.is_empty() => {
                (false, "none granted (--env)".into())
            }
            Capability::Environment => (
                true,
                sandbox
                    .env
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Capability::Stdin => (false, "never (always empty)".into()),
            Capability::Output => (true, "captured, capped; shown with --verbose".into()),
            Capability::Clocks | Capability::Random => (true, "always".into()),
        }
    }
}

/// The capabilities a component's imports ask for, and the imports healthprobe does not
/// provide at all.
pub fn capabilities(component: &Component) -> (Vec<Capability>, Vec<String>) {
    let mut caps = Vec::new();
    let mut unknown = Vec::new();
    for (name, _) in component.component_type().imports(component.engine()) {
        match Capability::of_import(name) {
            Some(Ok(c)) if !caps.contains(&c) => caps.push(c),
            Some(Err(())) => unknown.push(name.to_string()),
            _ => {}
        }
    }
    caps.sort();
    (caps, unknown)
}

/// Prints the inspection; exit 3 if the probe could not be run as it stands.
pub fn execute(args: InspectArgs) -> Result<ExitCode, crate::Error> {
    let fail = |message: String| super::bad_input(&args.probe, &message);
    let source = match ProbeSource::resolve(&args.probe) {
        Ok(s) => s,
        Err(f) => return fail(f.to_string()),
    };
    let sandbox = match settings::resolve(args.policy.as_deref(), &LimitArgs::default(), None, &[])
        .and_then(|s| s.sandbox(&args.grants))
    {
        Ok(s) => s,
        Err(f) => return fail(f.to_string()),
    };
    let (code, sha256) = match runner::identify(&source) {
        Ok(x) => x,
        Err(f) => return fail(f.to_string()),
    };
    let size = code.size();
    let runner = Runner::new()?;
    let rt = super::runtime()?;
    let limits = Limits::default();
    let inspected = rt.block_on(async {
        let (component, _) = runner.component(code, &sha256).await?;
        let (caps, unknown) = capabilities(&component);
        let info = match runner.link(&component) {
            Ok(pre) => Some(runner.describe_linked(&pre, &limits).await),
            Err(f) => Some(Err(f)),
        };
        Ok::<_, runner::Failure>((caps, unknown, info))
    });
    rt.shutdown_background();
    let (caps, unknown, info) = match inspected {
        Ok(x) => x,
        Err(f) => return fail(f.to_string()),
    };
    let (info, problem) = match info {
        Some(Ok(i)) => (Some(i), None),
        Some(Err(f)) => (None, Some(f.to_string())),
        None => (None, None),
    };

    let source_text = match &source {
        ProbeSource::Bundled(b) => format!("bundled ({})", b.name),
        ProbeSource::File(p) => p.display().to_string(),
    };
    match args.format {
        Format::Json => {
            let v = serde_json::json!({
                "probe": info.as_ref().map(|i| &i.name),
                "version": info.as_ref().map(|i| &i.version),
                "description": info.as_ref().map(|i| &i.description),
                "source": source_text,
                "size": size,
                "sha256": sha256,
                "params": info.as_ref().map(|i| i.params.iter().map(output::param_json).collect::<Vec<_>>()),
                "capabilities": caps.iter().map(|c| {
                    let (granted, detail) = c.grant(&sandbox);
                    serde_json::json!({"capability": c.key(), "description": c.describe(), "granted": granted, "detail": detail})
                }).collect::<Vec<_>>(),
                "unsupported_imports": unknown,
                "error": problem,
            });
            println!("{v}");
        }
        Format::Text => {
            match &info {
                Some(i) => println!("{} {}: {}", i.name, i.version, i.description),
                None => println!("{}: (could not describe itself)", source.label()),
            }
            println!("source:  {source_text}");
            println!("size:    {size} bytes");
            println!("sha256:  {sha256}");
            if let Some(i) = &info {
                println!("parameters:");
                for p in &i.params {
                    let notes = output::param_notes(p);
                    println!("  {}{notes}: {}", p.name, p.description);
                }
            }
            println!("asks for:");
            let width = caps.iter().map(|c| c.describe().len()).max().unwrap_or(0);
            for c in &caps {
                let (granted, detail) = c.grant(&sandbox);
                let mark = if granted { "granted" } else { "DENIED " };
                println!("  {:width$}  {mark}  {detail}", c.describe());
            }
            for u in &unknown {
                println!("  {u}  NOT PROVIDED by healthprobe: the probe cannot run");
            }
            if let Some(p) = &problem {
                println!("{}", output::error_line(p));
            }
        }
    }
    Ok(ExitCode::from(if problem.is_some() {
        crate::EXIT_ERROR
    } else {
        0
    }))
}
