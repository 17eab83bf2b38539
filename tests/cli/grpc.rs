//! The `grpc` probe against a real gRPC Health Checking Protocol v1 server: tonic with
//! tonic-health, on a loopback listener, in its own tokio runtime.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::{HealthReporter, health_reporter};

use std::process::Command;

use nix::sys::signal::Signal;

use crate::servers::{Server, find_binary, in_path, server_dir};
use crate::support::{SilentServer, closed_port, healthprobe};

/// A tonic server with the standard health service. An interceptor records the
/// `x-api-key` metadata of every call and, when `required_key` is set, answers
/// UNAUTHENTICATED to calls without that key.
pub(crate) struct HealthServer {
    addr: SocketAddr,
    reporter: HealthReporter,
    keys_seen: Arc<Mutex<Vec<String>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HealthServer {
    fn start(required_key: Option<&str>) -> Self {
        Self::start_with(required_key, None)
    }

    /// [`start`](Self::start), serving TLS (with ALPN `h2`, as tonic does) with `tls`'s
    /// certificate if given.
    pub(crate) fn start_with(required_key: Option<&str>, tls: Option<&crate::tls::Pem>) -> Self {
        Self::start_tls(required_key, tls, None)
    }

    /// [`start_with`](Self::start_with); with `client_ca`, a client certificate that CA
    /// signed is required.
    pub(crate) fn start_tls(
        required_key: Option<&str>,
        tls: Option<&crate::tls::Pem>,
        client_ca: Option<&std::path::Path>,
    ) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (reporter, service) = health_reporter();
        let keys_seen = Arc::new(Mutex::new(Vec::new()));
        let seen = keys_seen.clone();
        let required = required_key.map(str::to_string);
        let interceptor = move |request: tonic::Request<()>| {
            let key = request
                .metadata()
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            seen.lock().unwrap().push(key.clone().unwrap_or_default());
            match &required {
                Some(want) if key.as_deref() != Some(want.as_str()) => {
                    Err(tonic::Status::unauthenticated("x-api-key missing or wrong"))
                }
                _ => Ok(request),
            }
        };
        let service = tonic::service::interceptor::InterceptedService::new(service, interceptor);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut builder = tonic::transport::Server::builder();
        if let Some(pem) = tls {
            let identity = tonic::transport::Identity::from_pem(
                std::fs::read(&pem.cert).unwrap(),
                std::fs::read(&pem.key).unwrap(),
            );
            let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
            if let Some(ca) = client_ca {
                config = config.client_ca_root(tonic::transport::Certificate::from_pem(
                    std::fs::read(ca).unwrap(),
                ));
            }
            builder = builder.tls_config(config).unwrap();
        }
        runtime.spawn(
            builder
                .add_service(service)
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        HealthServer {
            addr,
            reporter,
            keys_seen,
            runtime: Some(runtime),
        }
    }

    fn set(&self, service: &str, status: ServingStatus) {
        self.runtime
            .as_ref()
            .unwrap()
            .block_on(self.reporter.set_service_status(service, status));
    }

    pub(crate) fn address(&self) -> String {
        format!("address={}", self.addr)
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[test]
fn grpc_whole_server_serving_is_healthy() {
    let server = HealthServer::start(None);
    healthprobe(["run", "grpc", &server.address()]).expect(
        0,
        "healthy: grpc: ",
        &[&server.addr.to_string(), "whole server", "SERVING"],
    );
}

#[test]
fn grpc_named_service_serving_is_healthy() {
    let server = HealthServer::start(None);
    server.set("helloworld.Greeter", ServingStatus::Serving);
    healthprobe([
        "run",
        "grpc",
        &server.address(),
        "service=helloworld.Greeter",
    ])
    .expect(
        0,
        "healthy: grpc: ",
        &["service 'helloworld.Greeter'", "is SERVING"],
    );
}

#[test]
fn grpc_not_serving_is_unhealthy_with_the_status() {
    let server = HealthServer::start(None);
    server.set("orders", ServingStatus::NotServing);
    healthprobe(["run", "grpc", &server.address(), "service=orders"]).expect(
        1,
        "unhealthy: grpc: ",
        &["service 'orders'", "NOT_SERVING"],
    );
    // The whole server too, and back.
    server.set("", ServingStatus::NotServing);
    healthprobe(["run", "grpc", &server.address()]).expect(
        1,
        "unhealthy: grpc: ",
        &["whole server", "is NOT_SERVING"],
    );
    server.set("", ServingStatus::Serving);
    healthprobe(["run", "grpc", &server.address()]).expect(0, "healthy: grpc: ", &["SERVING"]);
}

#[test]
fn grpc_unknown_service_is_unhealthy_with_not_found() {
    let server = HealthServer::start(None);
    healthprobe(["run", "grpc", &server.address(), "service=no.such.Service"]).expect(
        1,
        "unhealthy: grpc: ",
        &[
            "service 'no.such.Service'",
            "grpc-status 5 NOT_FOUND",
            // tonic-health's own message.
            "service not registered",
        ],
    );
}

#[test]
fn grpc_metadata_reaches_the_server() {
    let server = HealthServer::start(Some("s3cret"));
    healthprobe(["run", "grpc", &server.address()]).expect(
        1,
        "unhealthy: grpc: ",
        &[
            "grpc-status 16 UNAUTHENTICATED",
            "x-api-key missing or wrong",
        ],
    );
    healthprobe([
        "run",
        "grpc",
        &server.address(),
        "metadata=X-Api-Key: s3cret",
        "metadata=x-other:1",
    ])
    .expect(0, "healthy: grpc: ", &["SERVING"]);
    assert_eq!(*server.keys_seen.lock().unwrap(), ["", "s3cret"]);
}

#[test]
fn grpc_authority_is_accepted_by_the_server() {
    let server = HealthServer::start(None);
    healthprobe([
        "run",
        "grpc",
        &server.address(),
        "authority=api.internal:443",
    ])
    .expect(0, "healthy: grpc: ", &["SERVING"]);
}

#[test]
fn grpc_refused_is_unhealthy() {
    let addr = closed_port();
    healthprobe(["run", "grpc", &format!("address={addr}")]).expect(
        1,
        "unhealthy: grpc: ",
        &["refused", &addr.to_string()],
    );
}

#[test]
fn grpc_silent_server_times_out_within_the_deadline() {
    let server = SilentServer::start();
    healthprobe([
        "run",
        "grpc",
        &format!("address={}", server.addr),
        "--timeout",
        "2s",
    ])
    .expect(1, "unhealthy: grpc: ", &["timeout"]);
    assert_eq!(server.accepted(), 1);
}

#[test]
fn grpc_http1_server_is_unhealthy_saying_so() {
    // Python's http.server: a real HTTP/1 server that answers the HTTP/2 preface (tiny_http
    // just waits for more, which would end as a timeout).
    let Some(python) = find_binary("python3", &in_path("python3")) else {
        return;
    };
    let dir = server_dir();
    let root = dir.path().to_path_buf();
    let server = Server::start(dir, Signal::SIGTERM, |port| {
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg("--directory")
            .arg(&root)
            .arg(port.to_string());
        cmd
    });
    healthprobe(["run", "grpc", &format!("address={}", server.address())]).expect(
        1,
        "unhealthy: grpc: ",
        &["not an HTTP/2 server", "it answered"],
    );
}

#[test]
fn grpc_bad_metadata_is_exit_3() {
    for (bad, needle) in [
        ("metadata=no-colon", "name:value"),
        ("metadata=grpc-timeout:1S", "reserved"),
        ("metadata=x-key:tab\there", "printable ASCII"),
    ] {
        healthprobe(["run", "grpc", "address=127.0.0.1:1", bad]).expect(
            3,
            "error: grpc: ",
            &["metadata", needle],
        );
    }
}
