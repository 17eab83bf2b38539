//! The grants of a run, from the command line over the policy file: network and UDP
//! patterns, read-only directories, environment variables, TLS trust. Every value that
//! cannot be used is refused here, naming the flag or the file's key it came from.

use std::path::PathBuf;

use crate::flags::GrantArgs;
use crate::report::Failure;
use crate::sandbox::Sandbox;
use crate::sandbox::network::{self, Grant, NetPolicy, Proto};
use crate::sandbox::trust::Trust;

/// Where a list came from, so an error names what the user wrote: the flag, or the
/// policy file's key.
#[derive(Clone, Copy)]
enum From {
    Flag,
    File,
}

/// The command line's list when it gave one, else the policy file's.
fn cli_over_file<T: Clone>(cli: &Option<Vec<T>>, file: &Option<Vec<T>>) -> (Vec<T>, From) {
    match (cli, file) {
        (Some(cli), _) => (cli.clone(), From::Flag),
        (None, file) => (file.clone().unwrap_or_default(), From::File),
    }
}

/// The sandbox that the command line's `grants` and the policy file's `pf` grant: a list
/// on the command line replaces the file's list. `bad` words an error about the file's
/// `key`.
pub fn build(
    grants: &GrantArgs,
    pf: &GrantArgs,
    bad: &dyn Fn(&str, String) -> Failure,
) -> Result<Sandbox, Failure> {
    // An error about a value names the flag it came from, or the policy file and its key.
    let problem = |from: &From, key: &str, value: &str, why: String| match from {
        From::Flag => Failure::BadInput(format!("--{key} {value}: {why}")),
        From::File => bad(key, format!("{value}: {why}")),
    };
    let net = (grants.allow_net.clone())
        .or_else(|| pf.allow_net.clone())
        .unwrap_or_else(network::default_grants);
    let (udp, _) = cli_over_file(&grants.allow_udp, &pf.allow_udp);
    let policy = |proto, list: &[Grant]| {
        NetPolicy::new(proto, list, NetPolicy::system_resolve)
            .map_err(|e| Failure::BadInput(e.to_string()))
    };

    let mut read = Vec::new();
    let (dirs, from) = cli_over_file(&grants.allow_read, &pf.allow_read);
    for dir in dirs {
        let full = std::fs::canonicalize(&dir)
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| {
                problem(
                    &from,
                    "allow-read",
                    &dir.display().to_string(),
                    "no such directory; give an existing directory to grant read access to".into(),
                )
            })?;
        read.push(full);
    }

    let mut env = Vec::new();
    let (vars, from) = cli_over_file(&grants.env, &pf.env);
    for var in vars {
        let (name, value) = match var.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => {
                let value = std::env::var(&var).map_err(|_| {
                    problem(
                        &from,
                        "env",
                        &var,
                        format!(
                            "not set in healthprobe's environment; set it, or give {var}=VALUE"
                        ),
                    )
                })?;
                (var.clone(), value)
            }
        };
        if name.is_empty() {
            return Err(problem(
                &from,
                "env",
                &var,
                "empty variable name; give NAME or NAME=VALUE".into(),
            ));
        }
        env.push((name, value));
    }

    // A flag replaces the file's key; the certificate and its key go together, so either
    // flag replaces both of the file's.
    let flag = |cli: &Option<PathBuf>| cli.as_ref().map(|p| (p.clone(), From::Flag));
    let file = |f: &Option<PathBuf>| f.as_ref().map(|p| (p.clone(), From::File));
    let ca = flag(&grants.tls_ca).or_else(|| file(&pf.tls_ca));
    let (cert, key) = if grants.tls_client_cert.is_some() || grants.tls_client_key.is_some() {
        (flag(&grants.tls_client_cert), flag(&grants.tls_client_key))
    } else {
        (file(&pf.tls_client_cert), file(&pf.tls_client_key))
    };
    let path = |p: &Option<(PathBuf, From)>| p.as_ref().map(|(p, _)| p.clone());
    let tls = Trust::load(
        path(&ca).as_deref(),
        path(&cert).as_deref(),
        path(&key).as_deref(),
    )
    .map_err(|e| {
        let from = [&ca, &cert, &key]
            .into_iter()
            .flatten()
            .find(|(p, _)| *p == e.path)
            .map_or(From::Flag, |(_, f)| *f);
        problem(&from, e.key, &e.path.display().to_string(), e.why)
    })?;

    Ok(Sandbox {
        net: policy(Proto::Tcp, &net)?,
        udp: policy(Proto::Udp, &udp)?,
        read,
        env,
        insecure_tls: grants
            .allow_insecure_tls
            .or(pf.allow_insecure_tls)
            .unwrap_or(false),
        tls,
    })
}
