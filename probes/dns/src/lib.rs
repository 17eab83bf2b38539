//! The bundled `dns` probe: resolves a name through the host's resolver (WASI name
//! lookup, under the host's network policy) and checks that it has the expected addresses.

use core::net::IpAddr;
use std::time::Instant;

use healthprobe_sdk::tcp::{self, TcpError};
use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};

/// Most addresses listed in a message; the rest are counted.
const LISTED: usize = 8;

struct Dns;

impl Probe for Dns {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "dns",
            env!("CARGO_PKG_VERSION"),
            "Resolves a host name with the system resolver and checks the addresses; names other than localhost need --allow-net NAME (or --allow-net '*').",
        )
        .param(ParamSpec::required(
            "name",
            "The host name to resolve, for example name=localhost or name=db.internal (the latter with --allow-net db.internal).",
        ))
        .param(
            ParamSpec::optional(
                "expect",
                "An IP address the name must resolve to (among others); give it once per address, for example expect=127.0.0.1 expect=::1.",
            )
            .repeatable(),
        )
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let name = params.required_str("name")?.trim();
        check_name(name).map_err(|reason| CheckError::invalid_param("name", reason))?;
        let expected = params
            .list("expect")
            .into_iter()
            .map(parse_ip)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| CheckError::invalid_param("expect", reason))?;

        let start = Instant::now();
        let outcome = tcp::resolve_host(name, &budget);
        let elapsed_ms = start.elapsed().as_millis();
        let result = match outcome {
            Ok(found) => judge(name, &found, &expected, elapsed_ms)
                .detail("addresses", join(&found, usize::MAX))
                .detail("count", found.len()),
            Err(e) => failure(name, &e).detail("error", e.kind()),
        };
        Ok(result.detail("name", name).detail("elapsed-ms", elapsed_ms))
    }
}

healthprobe_sdk::export_probe!(Dns);

/// The verdict on the addresses `found` for `name`.
fn judge(name: &str, found: &[IpAddr], expected: &[IpAddr], elapsed_ms: u128) -> CheckResult {
    let missing: Vec<IpAddr> = expected
        .iter()
        .filter(|ip| !found.contains(ip))
        .copied()
        .collect();
    let list = join(found, LISTED);
    if !missing.is_empty() {
        return CheckResult::unhealthy(format!(
            "{name} resolved to {list}, not to the expected {}",
            join(&missing, LISTED)
        ))
        .detail("error", "mismatch")
        .detail("missing", join(&missing, usize::MAX));
    }
    if expected.is_empty() {
        CheckResult::healthy(format!("{name} resolved to {list} in {elapsed_ms} ms"))
    } else {
        CheckResult::healthy(format!(
            "{name} resolved to {list} in {elapsed_ms} ms, including the expected {}",
            join(expected, LISTED)
        ))
    }
}

/// The unhealthy verdict for a lookup that failed.
fn failure(name: &str, e: &TcpError) -> CheckResult {
    CheckResult::unhealthy(match e {
        // The host puts its own account first (naming the --allow-net grant); this says
        // which step of the probe it was.
        TcpError::Denied { .. } => format!("lookup of {name} denied by the host"),
        TcpError::Timeout { .. } => format!("timeout resolving {name}"),
        TcpError::Resolve { reason, .. } => format!("cannot resolve {name}: {reason}"),
        other => other.to_string(),
    })
}

/// Check that `name` looks like a host name (or an IP address), so that a typo is
/// reported as such rather than as a failed lookup.
fn check_name(name: &str) -> Result<(), String> {
    if parse_ip(name).is_ok() {
        return Ok(());
    }
    let bare = name.strip_suffix('.').unwrap_or(name);
    let valid_label = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if bare.is_empty() || bare.len() > 253 || !bare.split('.').all(valid_label) {
        return Err(format!(
            "expected a host name such as localhost or db.example.com (letters, digits, '-' and '.'), got '{name}'"
        ));
    }
    Ok(())
}

/// An IP address, IPv6 with or without brackets.
fn parse_ip(text: &str) -> Result<IpAddr, String> {
    let text = text.trim();
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse()
        .map_err(|_| format!("expected an IP address such as 127.0.0.1 or ::1, got '{text}'"))
}

/// At most `max` addresses, comma-separated, and how many more there are.
fn join(ips: &[IpAddr], max: usize) -> String {
    let mut text = ips
        .iter()
        .take(max)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if ips.len() > max {
        text.push_str(&format!(" and {} more", ips.len() - max));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthprobe_sdk::Status;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| parse_ip(s).unwrap()).collect()
    }

    #[test]
    fn names() {
        for good in [
            "localhost",
            "db.example.com",
            "db.example.com.",
            "_srv.x-y.z",
            "127.0.0.1",
            "::1",
            "[::1]",
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "", "a b", "a..b", "-a.b", "a-.b", "http://x", "x:53", "é.com",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn expected_addresses() {
        assert_eq!(
            parse_ip("[::1]"),
            Ok(IpAddr::from(core::net::Ipv6Addr::LOCALHOST))
        );
        assert_eq!(
            parse_ip("nope").unwrap_err(),
            "expected an IP address such as 127.0.0.1 or ::1, got 'nope'"
        );
    }

    #[test]
    fn verdicts() {
        let found = ips(&["127.0.0.1", "::1"]);
        let ok = judge("localhost", &found, &[], 1);
        assert_eq!(ok.status, Status::Healthy);
        assert_eq!(ok.message, "localhost resolved to 127.0.0.1, ::1 in 1 ms");

        let ok = judge("localhost", &found, &ips(&["::1"]), 1);
        assert_eq!(
            ok.message,
            "localhost resolved to 127.0.0.1, ::1 in 1 ms, including the expected ::1"
        );

        let bad = judge("localhost", &found, &ips(&["127.0.0.1", "10.0.0.1"]), 1);
        assert_eq!(bad.status, Status::Unhealthy);
        assert_eq!(
            bad.message,
            "localhost resolved to 127.0.0.1, ::1, not to the expected 10.0.0.1"
        );
        assert_eq!(bad.get_detail("missing"), Some("10.0.0.1"));

        let many: Vec<IpAddr> = (1..=10).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        assert!(join(&many, LISTED).ends_with("10.0.0.8 and 2 more"));
    }

    #[test]
    fn failures() {
        let denied = TcpError::Denied {
            address: "example.com".into(),
            action: "resolving",
        };
        assert_eq!(
            failure("example.com", &denied).message,
            "lookup of example.com denied by the host"
        );
        let missing = TcpError::Resolve {
            address: "nosuch.invalid".into(),
            reason: "no such host, or it has no addresses".into(),
        };
        assert_eq!(
            failure("nosuch.invalid", &missing).message,
            "cannot resolve nosuch.invalid: no such host, or it has no addresses"
        );
    }

    #[test]
    fn bad_params() {
        for (pairs, name) in [
            (vec![("name", "a b")], "name"),
            (
                vec![("name", "localhost"), ("expect", "localhost")],
                "expect",
            ),
            (
                vec![("name", "localhost"), ("expect", "300.1.1.1")],
                "expect",
            ),
        ] {
            match Dns::check(&Params::from_pairs(pairs.clone()), Budget::new(1000)) {
                Err(CheckError::InvalidParam(p)) => assert_eq!(p.name, name, "{pairs:?}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn describe_documents_every_param() {
        let info = Dns::describe();
        let names: Vec<_> = info.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["name", "expect"]);
        assert!(info.params[1].repeatable);
        assert!(
            info.params
                .iter()
                .all(|p| p.description.contains("for example"))
        );
    }

    #[test]
    fn literal_addresses_need_no_lookup() {
        let ok = Dns::check(
            &Params::from_pairs([("name", "127.0.0.1"), ("expect", "127.0.0.1")]),
            Budget::new(1000),
        )
        .unwrap();
        assert_eq!(ok.status, Status::Healthy, "{}", ok.message);
    }
}
