//! The bundled `tcp` probe: healthy when a TCP connection to `address` is accepted.

use std::time::Instant;

use healthprobe_sdk::tcp;
use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};

struct TcpProbe;

impl Probe for TcpProbe {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "tcp",
            env!("CARGO_PKG_VERSION"),
            "Opens a TCP connection and reports whether it is accepted.",
        )
        .param(ParamSpec::required(
            "address",
            "Where to connect, as host:port, for example 127.0.0.1:6379 or [::1]:5432.",
        ))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let address = params.required_str("address")?.trim();
        tcp::parse_address(address)
            .map_err(|reason| CheckError::invalid_param("address", reason))?;

        let start = Instant::now();
        let outcome = tcp::connect(address, &budget);
        let elapsed_ms = start.elapsed().as_millis();
        let result = match outcome {
            Ok(conn) => CheckResult::healthy(format!("connected to {address} in {elapsed_ms} ms"))
                .detail("peer", conn.peer_addr()),
            Err(e) => e.into_verdict()?,
        };
        Ok(result
            .detail("address", address)
            .detail("elapsed-ms", elapsed_ms))
    }
}

healthprobe_sdk::export_probe!(TcpProbe);

#[cfg(test)]
mod tests {
    use super::*;
    use healthprobe_sdk::Status;

    fn run(address: &str) -> Result<CheckResult, CheckError> {
        TcpProbe::check(
            &Params::from_pairs([("address", address)]),
            Budget::new(5_000),
        )
    }

    #[test]
    fn describe_documents_address() {
        let info = TcpProbe::describe();
        assert_eq!(info.name, "tcp");
        assert_eq!(info.params.len(), 1);
        assert!(info.params[0].required);
    }

    #[test]
    fn address_without_port_is_invalid() {
        for bad in ["localhost", "127.0.0.1:", "::1:80", "host:99999"] {
            match run(bad) {
                Err(CheckError::InvalidParam(p)) => assert_eq!(p.name, "address"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    // These use the native socket stack; the same code runs over WASI sockets.
    #[test]
    fn accepted_and_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let ok = run(&address).unwrap();
        assert_eq!(ok.status, Status::Healthy);
        assert!(
            ok.message
                .starts_with(&format!("connected to {address} in ")),
            "{}",
            ok.message
        );
        drop(listener);

        let refused = run(&address).unwrap();
        assert_eq!(refused.status, Status::Unhealthy);
        assert_eq!(refused.message, format!("connection to {address} refused"));
        assert_eq!(refused.get_detail("error"), Some("refused"));
    }
}
